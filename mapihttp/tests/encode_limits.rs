#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Lengths and counts that do not fit their wire fields: the encoders reject them with a
//! typed error instead of writing a size that wraps, and the decoders reject what the
//! encoders could not write back.

use exmux_mapihttp::notify::{Notification, notification_type};
use exmux_mapihttp::prop::{PropError, PropTag, PropType, PropValue, Reader, TaggedValue};
use exmux_mapihttp::rop::{
    MAX_ROP_LIST_LEN, ReadRecipientRow, ResponseBody, RopBuffer, RopError, RopRequest, RopResponse,
    RopResult, encode_request_buffer, join_buffer, try_encode_request_buffer,
    try_encode_response_buffer,
};

fn ok_result(rop_id: u8, body: ResponseBody) -> RopResponse {
    RopResponse::Result(RopResult {
        rop_id,
        handle_index: 0,
        return_value: 0,
        body,
    })
}

#[test]
fn join_buffer_rop_size_limit() {
    let list = vec![0u8; MAX_ROP_LIST_LEN];
    let buffer = join_buffer(&list, &[7]).unwrap();
    assert_eq!(buffer.get(..2), Some(&[0xFF, 0xFF][..]));
    assert_eq!(buffer.len(), 2 + MAX_ROP_LIST_LEN + 4);

    let list = vec![0u8; MAX_ROP_LIST_LEN + 1];
    let error = join_buffer(&list, &[]).unwrap_err();
    assert_eq!(
        error,
        RopError::TooLong {
            field: "RopSize",
            len: MAX_ROP_LIST_LEN + 3,
            max: 65_535,
        }
    );
}

#[test]
fn request_buffer_over_rop_size_limit() {
    // Two WriteStream requests of 40,000 bytes each: every field fits, the list does not.
    let request = RopRequest::WriteStream {
        logon_id: 0,
        input_handle: 0,
        data: vec![0x41; 40_000],
    };
    let buffer = RopBuffer {
        rops: vec![request.clone(), request],
        handles: vec![1],
    };
    let error = try_encode_request_buffer(&buffer).unwrap_err();
    assert!(
        matches!(
            error,
            RopError::TooLong {
                field: "RopSize",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(encode_request_buffer(&buffer).is_empty());
}

#[test]
fn write_stream_data_over_u16() {
    let buffer = RopBuffer {
        rops: vec![RopRequest::WriteStream {
            logon_id: 0,
            input_handle: 0,
            data: vec![0; 65_536],
        }],
        handles: vec![1],
    };
    assert_eq!(
        try_encode_request_buffer(&buffer).unwrap_err(),
        RopError::TooLong {
            field: "DataSize",
            len: 65_536,
            max: 65_535,
        }
    );

    // The infallible per-ROP encoder writes nothing rather than a wrapped DataSize.
    let mut out = vec![0xAA];
    buffer.rops[0].encode(&mut out);
    assert_eq!(out, [0xAA]);
}

#[test]
fn set_properties_binary_over_u16() {
    let value = TaggedValue::new(
        PropTag::new(0x1000, PropType::BINARY),
        PropValue::Binary(vec![0; 70_000]),
    )
    .unwrap();
    let buffer = RopBuffer {
        rops: vec![RopRequest::SetProperties {
            logon_id: 0,
            input_handle: 0,
            values: vec![value],
        }],
        handles: vec![1],
    };
    assert_eq!(
        try_encode_request_buffer(&buffer).unwrap_err(),
        RopError::Wire(PropError::TooLong {
            what: "binary value length",
            len: 70_000,
            max: 65_535,
        })
    );
}

#[test]
fn read_recipients_rows_over_u8() {
    let row = ReadRecipientRow {
        row_id: 0,
        recipient_type: 1,
        code_page_id: 0x04E4,
        reserved: 0,
        recipient_row: Vec::new(),
    };
    let buffer = RopBuffer {
        rops: vec![ok_result(
            0x0F,
            ResponseBody::ReadRecipients(vec![row; 256]),
        )],
        handles: vec![1],
    };
    assert_eq!(
        try_encode_response_buffer(&buffer).unwrap_err(),
        RopError::TooLong {
            field: "RowCount",
            len: 256,
            max: 255,
        }
    );
}

#[test]
fn read_stream_response_over_u16() {
    let buffer = RopBuffer {
        rops: vec![ok_result(
            0x2C,
            ResponseBody::ReadStream {
                data: vec![0; 65_536],
            },
        )],
        handles: vec![1],
    };
    assert!(matches!(
        try_encode_response_buffer(&buffer).unwrap_err(),
        RopError::TooLong {
            field: "DataSize",
            ..
        }
    ));
}

#[test]
fn notify_tag_count_all_properties_reserved() {
    // TagCount 0xFFFF means "all properties" with no tags after it, so 65,535 tags
    // cannot be sent.
    let notification = Notification {
        flags: notification_type::OBJECT_MODIFIED,
        folder_id: Some(exmux_mapihttp::ids::ObjectId(1)),
        tag_count: Some(0xFFFF),
        tags: Some(vec![PropTag(0x0037_001F); 65_535]),
        ..Notification::default()
    };
    let mut out = Vec::new();
    let error = notification.try_encode(&mut out).unwrap_err();
    assert!(
        matches!(
            error,
            exmux_mapihttp::notify::NotifyError::Wire(PropError::TooLong {
                what: "TagCount",
                ..
            })
        ),
        "{error:?}"
    );
    assert!(out.is_empty());
}

#[test]
fn logon_essdn_without_nul_rejected() {
    // EssdnSize 3 over "abc" with no terminator. The encoder always writes the NUL, so
    // accepting this would re-encode to other bytes.
    let wire = [
        0xFE, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, b'a',
        b'b', b'c',
    ];
    let error = RopRequest::decode(&mut Reader::new(&wire)).unwrap_err();
    assert_eq!(
        error,
        RopError::Wire(PropError::Unterminated {
            what: "Essdn",
            offset: 14,
        })
    );

    // The terminated form decodes and encodes back to the same bytes.
    let mut wire = wire.to_vec();
    wire[12] = 0x04;
    wire.push(0);
    let request = RopRequest::decode(&mut Reader::new(&wire)).unwrap();
    let mut out = Vec::new();
    request.try_encode(&mut out).unwrap();
    assert_eq!(out, wire);
}
