#![allow(clippy::unwrap_used, clippy::expect_used)]
//! RopSetMessageReadFlag, RopHardDeleteMessages, RopHardDeleteMessagesAndSubfolders and
//! the FastTransfer copy ROPs: requests and responses written byte by byte from their
//! field layouts, decoded to their fields and encoded back to the same bytes.
//!
//! The layouts come from MS-OXCROPS 2.2.6.11.1, 2.2.12.6.1, 2.2.12.8.1 and 2.2.12.8.2 and
//! MS-OXCFXICS 2.2.3.1.1.1.1 (RopFastTransferSourceCopyTo). Where the reference copy
//! lacks the table (RopFastTransferSourceCopyFolder, RopHardDeleteMessagesAndSubfolders,
//! the RopSetMessageReadFlag response), they were checked against Microsoft's MAPI
//! Inspector parser. RopHardDeleteMessages is assumed to share RopDeleteMessages' layout,
//! because MS-OXCFOLD 2.2.1.12 describes the same operation as a hard delete, but no
//! table of it was read.

use exmux_mapihttp::ids::ObjectId;
use exmux_mapihttp::prop::{PropTag, Reader};
use exmux_mapihttp::rop::{
    ReadStatusChange, ResponseBody, ResponseContext, RopBuffer, RopRequest, RopResponse, RopResult,
    decode_request_buffer, decode_response_buffer, encode_request_buffer, encode_response_buffer,
    rop_id,
};

fn request_round_trip(wire: &[u8], expected: &RopRequest) {
    let mut reader = Reader::new(wire);
    let request = RopRequest::decode(&mut reader).unwrap();
    assert!(reader.is_empty(), "{} left bytes", rop_id::name(wire[0]));
    assert_eq!(&request, expected);
    let mut out = Vec::new();
    request.try_encode(&mut out).unwrap();
    assert_eq!(out, wire);
}

fn result(rop_id: u8, handle_index: u8, return_value: u32, body: ResponseBody) -> RopResponse {
    RopResponse::Result(RopResult {
        rop_id,
        handle_index,
        return_value,
        body,
    })
}

fn response_round_trip(wire: &[u8], request: &RopRequest, expected: &RopResponse) {
    let buffer = RopBuffer {
        rops: vec![expected.clone()],
        handles: vec![0x11],
    };
    let bytes = encode_response_buffer(&buffer);
    assert_eq!(bytes.get(2..2 + wire.len()), Some(wire));
    let requests = [request.clone()];
    let context = ResponseContext {
        requests: &requests,
        ..Default::default()
    };
    assert_eq!(decode_response_buffer(&bytes, &context).unwrap(), buffer);
}

#[test]
fn set_message_read_flag() {
    // LogonId 0, ResponseHandleIndex 1 (the folder), InputHandleIndex 2 (the message),
    // ReadFlags 0x04 | 0x01 (clear the read flag, suppress the receipt).
    let request = RopRequest::SetMessageReadFlag {
        logon_id: 0,
        response_handle: 1,
        input_handle: 2,
        read_flags: 0x05,
    };
    request_round_trip(&[0x11, 0x00, 0x01, 0x02, 0x05], &request);
    assert_eq!(request.response_handle_index(), 1);

    // Private mailbox: ReadStatusChanged 0 and nothing after it.
    let private = result(0x11, 1, 0, ResponseBody::MessageReadFlag { changed: None });
    response_round_trip(&[0x11, 0x01, 0, 0, 0, 0, 0x00], &request, &private);

    // Public folders: ReadStatusChanged 1, LogonId, 24 bytes of ClientData.
    let mut wire = vec![0x11, 0x01, 0, 0, 0, 0, 0x01, 0x03];
    wire.extend(1..=24u8);
    let mut client_data = [0u8; 24];
    for (slot, value) in client_data.iter_mut().zip(1..=24u8) {
        *slot = value;
    }
    let public = result(
        0x11,
        1,
        0,
        ResponseBody::MessageReadFlag {
            changed: Some(ReadStatusChange {
                logon_id: 3,
                client_data,
            }),
        },
    );
    response_round_trip(&wire, &request, &public);

    // A failure carries no fields.
    let failed = result(0x11, 1, 0x8004_010F, ResponseBody::Empty);
    response_round_trip(&[0x11, 0x01, 0x0F, 0x01, 0x04, 0x80], &request, &failed);
}

#[test]
fn hard_delete_messages() {
    let request = RopRequest::HardDeleteMessages {
        logon_id: 0,
        input_handle: 0,
        want_asynchronous: false,
        notify_non_read: true,
        message_ids: vec![
            ObjectId(0x0001_0000_0000_0A01),
            ObjectId(0x0001_0000_0000_0B01),
        ],
    };
    let wire = [
        0x91, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, //
        0x01, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, //
        0x01, 0x0B, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
    ];
    request_round_trip(&wire, &request);

    // PartialCompletion follows ReturnValue on success and on failure.
    let partial = result(0x91, 0, 0x8007_0005, ResponseBody::PartialCompletion(true));
    response_round_trip(
        &[0x91, 0x00, 0x05, 0x00, 0x07, 0x80, 0x01],
        &request,
        &partial,
    );
}

#[test]
fn hard_delete_messages_and_subfolders() {
    let request = RopRequest::HardDeleteMessagesAndSubfolders {
        logon_id: 0,
        input_handle: 1,
        want_asynchronous: true,
        want_delete_associated: true,
    };
    request_round_trip(&[0x92, 0x00, 0x01, 0x01, 0x01], &request);
    let done = result(0x92, 1, 0, ResponseBody::PartialCompletion(false));
    response_round_trip(&[0x92, 0x01, 0, 0, 0, 0, 0x00], &request, &done);
}

#[test]
fn fast_transfer_copy_requests() {
    // RopFastTransferSourceCopyTo: Level, CopyFlags as 4 bytes (BestBody 0x2000),
    // SendOptions (Unicode 0x01), then the tags to leave out.
    let copy_to = RopRequest::FastTransferSourceCopyTo {
        logon_id: 0,
        input_handle: 1,
        output_handle: 2,
        level: 0,
        copy_flags: 0x0000_2000,
        send_options: 0x01,
        tags: vec![PropTag(0x0E12_000D)],
    };
    request_round_trip(
        &[
            0x4D, 0x00, 0x01, 0x02, 0x00, 0x00, 0x20, 0x00, 0x00, 0x01, 0x01, 0x00, 0x0D, 0x00,
            0x12, 0x0E,
        ],
        &copy_to,
    );
    assert_eq!(copy_to.response_handle_index(), 2);

    // RopFastTransferSourceCopyProperties: CopyFlags is one byte here.
    let copy_properties = RopRequest::FastTransferSourceCopyProperties {
        logon_id: 0,
        input_handle: 1,
        output_handle: 2,
        level: 1,
        copy_flags: 0x01,
        send_options: 0x03,
        tags: vec![PropTag(0x0037_001F), PropTag(0x0E07_0003)],
    };
    request_round_trip(
        &[
            0x69, 0x00, 0x01, 0x02, 0x01, 0x01, 0x03, 0x02, 0x00, 0x1F, 0x00, 0x37, 0x00, 0x03,
            0x00, 0x07, 0x0E,
        ],
        &copy_properties,
    );

    // RopFastTransferSourceCopyMessages: the ids come before CopyFlags and SendOptions.
    let copy_messages = RopRequest::FastTransferSourceCopyMessages {
        logon_id: 0,
        input_handle: 1,
        output_handle: 2,
        message_ids: vec![ObjectId(0x0001_0000_0000_0C01)],
        copy_flags: 0x10,
        send_options: 0x00,
    };
    request_round_trip(
        &[
            0x4B, 0x00, 0x01, 0x02, 0x01, 0x00, 0x01, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
            0x10, 0x00,
        ],
        &copy_messages,
    );

    let copy_folder = RopRequest::FastTransferSourceCopyFolder {
        logon_id: 0,
        input_handle: 1,
        output_handle: 2,
        copy_flags: 0x10,
        send_options: 0x01,
    };
    request_round_trip(&[0x4C, 0x00, 0x01, 0x02, 0x10, 0x01], &copy_folder);

    // Each response is OutputHandleIndex and ReturnValue only, and a whole batch of them
    // decodes with its requests.
    let requests = vec![copy_to, copy_properties, copy_messages, copy_folder];
    let responses: Vec<RopResponse> = requests
        .iter()
        .map(|q| result(q.rop_id(), 2, 0, ResponseBody::Empty))
        .collect();
    let request_bytes = encode_request_buffer(&RopBuffer {
        rops: requests.clone(),
        handles: vec![7, 0xFFFF_FFFF],
    });
    assert_eq!(
        decode_request_buffer(&request_bytes).unwrap().rops,
        requests
    );
    let buffer = RopBuffer {
        rops: responses,
        handles: vec![7, 8],
    };
    let bytes = encode_response_buffer(&buffer);
    assert_eq!(bytes.len(), 2 + 4 * 6 + 8);
    let context = ResponseContext {
        requests: &requests,
        ..Default::default()
    };
    assert_eq!(decode_response_buffer(&bytes, &context).unwrap(), buffer);
}
