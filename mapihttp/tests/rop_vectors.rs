#![allow(clippy::unwrap_used, clippy::expect_used)]
//! ROP vectors: specification examples, synthetic vectors, the two Outlook captures and
//! the gromox session, decoded to their documented values and re-encoded.

use exmux_mapihttp::ids::{Guid, ObjectId};
use exmux_mapihttp::notify::table_event;
use exmux_mapihttp::prop::{PropTag, PropValue, Reader, Restriction, RowCell, tags};
use exmux_mapihttp::rop::{
    ResponseBody, ResponseContext, RopBuffer, RopError, RopRequest, RopResponse, RopResult,
    decode_request_buffer, decode_response_buffer, decode_response_buffer_partial,
    encode_request_buffer, encode_response_buffer, rop_id,
};
use std::path::PathBuf;

fn parse_hex(text: &str) -> Vec<u8> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split_whitespace())
        .map(|pair| u8::from_str_radix(pair, 16).unwrap())
        .collect()
}

fn vector(dir: &str, name: &str) -> Option<Vec<u8>> {
    let path: PathBuf = exmux_testkit::shared_path(&format!("{dir}/{name}"))?;
    Some(parse_hex(&std::fs::read_to_string(path).unwrap()))
}

fn result(response: &RopResponse) -> &RopResult {
    response.as_result().expect("an ordinary ROP response")
}

#[test]
fn query_rows_request_spec_example() {
    let Some(bytes) = vector("captures/mapi", "rop-queryrows-request-1.hex") else {
        return;
    };
    let request = RopRequest::decode(&mut Reader::new(&bytes)).unwrap();
    assert_eq!(
        request,
        RopRequest::QueryRows {
            logon_id: 0,
            input_handle: 0,
            query_rows_flags: 0,
            forward_read: true,
            row_count: 0x32,
        }
    );
    let mut out = Vec::new();
    request.encode(&mut out);
    assert_eq!(out, bytes);
}

#[test]
fn table_status_spec_examples() {
    for (name, id) in [
        ("rop-setcolumns-response-1.hex", rop_id::SET_COLUMNS),
        ("rop-sorttable-response-1.hex", rop_id::SORT_TABLE),
    ] {
        let Some(bytes) = vector("captures/mapi", name) else {
            return;
        };
        let response = RopResponse::decode(&mut Reader::new(&bytes), None, None).unwrap();
        let r = result(&response);
        assert_eq!(r.rop_id, id, "{name}");
        assert_eq!(r.handle_index, 1, "{name}");
        assert_eq!(r.return_value, 0, "{name}");
        assert_eq!(r.body, ResponseBody::TableStatus(0), "{name}");
        let mut out = Vec::new();
        response.encode(&mut out);
        assert_eq!(out, bytes, "{name}");
    }
}

#[test]
fn rules_table_spec_example() {
    let Some(bytes) = vector("captures/mapi", "rop-getrulestable-response-1.hex") else {
        return;
    };
    let response = RopResponse::decode(&mut Reader::new(&bytes), None, None).unwrap();
    let r = result(&response);
    assert_eq!((r.rop_id, r.handle_index, r.return_value), (0x3F, 1, 0));
    assert_eq!(r.body, ResponseBody::Empty);
}

#[test]
fn query_rows_response_without_columns_stops_at_rows() {
    let Some(bytes) = vector("captures/mapi", "rop-queryrows-response-1.hex") else {
        return;
    };
    // The column set is in a part of MS-OXORULE that the vector does not include, so the
    // decoder gets as far as Origin and RowCount and then returns MissingColumns.
    let error = RopResponse::decode(&mut Reader::new(&bytes), None, None).unwrap_err();
    assert!(matches!(
        error,
        RopError::MissingColumns {
            offset: 0,
            handle_index: 1,
            ..
        }
    ));
    assert_eq!(bytes[6], 0x02, "Origin BOOKMARK_END");
    assert_eq!(u16::from_le_bytes([bytes[7], bytes[8]]), 1, "RowCount");
}

#[test]
fn query_rows_response_with_inferred_columns() {
    let Some(bytes) = vector("captures/mapi", "rop-queryrows-response-1.hex") else {
        return;
    };
    // The vector leaves out its column set, so this one is only chosen to fit its 26
    // fixed-size value bytes: an I8, an I4, an I2, an I4, an I8, then a string. The test pins that the row decoder
    // consumes the whole buffer and ends on the rule name "Project X".
    let columns = [
        PropTag(0x6674_0014),
        PropTag(0x6677_0003),
        PropTag(0x6676_0002),
        PropTag(0x6678_0003),
        PropTag(0x6679_0014),
        PropTag(0x6682_001F),
    ];
    let mut reader = Reader::new(&bytes);
    let response = RopResponse::decode(&mut reader, None, Some(&columns)).unwrap();
    assert!(reader.is_empty());
    let ResponseBody::QueryRows { origin, rows } = &result(&response).body else {
        panic!()
    };
    assert_eq!(*origin, 2);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].cells.last().unwrap().value(),
        Some(&PropValue::Unicode("Project X".into()))
    );
    let mut out = Vec::new();
    response.encode(&mut out);
    assert_eq!(out, bytes);
}

#[test]
fn logon_response_synthetic() {
    let Some(bytes) = vector("captures/mapi", "rop-logon-response-synthetic-1.hex") else {
        return;
    };
    let partial = decode_response_buffer_partial(&bytes).unwrap();
    assert_eq!(partial.stopped, None);
    assert_eq!(partial.handles, vec![0x1A]);
    let ResponseBody::Logon(logon) = &result(&partial.rops[0]).body else {
        panic!()
    };
    assert_eq!(logon.logon_flags, 1);
    for (i, id) in logon.folder_ids.iter().enumerate() {
        assert_eq!(id.replid(), 1);
        assert_eq!(id.globcnt().get(), i as u64 + 1);
    }
    assert_eq!(logon.response_flags, 0x07);
    assert_eq!(logon.repl_id, 1);
    assert_eq!(logon.logon_time, [30, 15, 10, 2, 4, 12]);
    assert_eq!(logon.logon_year, 2025);
    let again = encode_response_buffer(&RopBuffer {
        rops: partial.rops,
        handles: partial.handles,
    });
    assert_eq!(again, bytes);
}

#[test]
fn register_notification_request_synthetic() {
    let Some(bytes) = vector(
        "captures/mapi",
        "rop-registernotification-request-synthetic-1.hex",
    ) else {
        return;
    };
    let request = RopRequest::decode(&mut Reader::new(&bytes)).unwrap();
    assert_eq!(
        request,
        RopRequest::RegisterNotification {
            logon_id: 0,
            input_handle: 1,
            output_handle: 2,
            notification_types: 0x1C,
            reserved: 0,
            want_whole_store: false,
            folder_id: ObjectId(0x0D00_0000_0000_0001),
            message_id: ObjectId(0),
        }
    );
    let mut out = Vec::new();
    request.encode(&mut out);
    assert_eq!(out, bytes);
}

#[test]
fn notify_and_pending_synthetic() {
    let Some(modified) = vector("captures/mapi", "rop-notify-objectmodified-synthetic-1.hex")
    else {
        return;
    };
    let response = RopResponse::decode(&mut Reader::new(&modified), None, None).unwrap();
    let RopResponse::Notify {
        notification_handle,
        logon_id,
        data,
    } = &response
    else {
        panic!()
    };
    assert_eq!((*notification_handle, *logon_id), (0x2B, 0));
    assert_eq!(data.flags, 0x8010);
    assert_eq!(data.folder_id.unwrap().globcnt().get(), 0x0D);
    assert_eq!(data.message_id.unwrap().globcnt().get(), 0x1234);
    assert_eq!(
        data.tags.as_deref(),
        Some(
            &[
                tags::PID_TAG_MESSAGE_FLAGS,
                tags::PID_TAG_LAST_MODIFICATION_TIME,
                tags::PID_TAG_CHANGE_KEY
            ][..]
        )
    );
    let mut out = Vec::new();
    response.encode(&mut out);
    assert_eq!(out, modified);

    let table = vector("captures/mapi", "rop-notify-tablerowadded-synthetic-2.hex").unwrap();
    let response = RopResponse::decode(&mut Reader::new(&table), None, None).unwrap();
    let RopResponse::Notify {
        notification_handle,
        data,
        ..
    } = &response
    else {
        panic!()
    };
    assert_eq!(*notification_handle, 0x2C);
    let event = data.table.as_ref().unwrap();
    assert_eq!(event.event_type, table_event::ROW_ADDED);
    assert_eq!(event.row_message.unwrap().0.globcnt().get(), 0x1235);
    assert_eq!(
        event.insert_after_message.unwrap().0.globcnt().get(),
        0x1234
    );
    let row = event
        .row(&[tags::PID_TAG_MID, tags::PID_TAG_SUBJECT])
        .unwrap()
        .unwrap();
    assert_eq!(row.cells[1].value(), Some(&PropValue::Unicode("XY".into())));
    let mut out = Vec::new();
    response.encode(&mut out);
    assert_eq!(out, table);

    let pending = vector("captures/mapi", "rop-pending-synthetic-1.hex").unwrap();
    let response = RopResponse::decode(&mut Reader::new(&pending), None, None).unwrap();
    assert_eq!(response, RopResponse::Pending { session_index: 1 });
}

#[test]
fn outlook_capture_one_requests() {
    let Some(bytes) = vector("captures/mapi", "rop-request-buffer-1.hex") else {
        return;
    };
    let buffer = decode_request_buffer(&bytes).unwrap();
    assert_eq!(buffer.handles, vec![0x45]);
    let ids: Vec<u8> = buffer.rops.iter().map(RopRequest::rop_id).collect();
    assert_eq!(ids, vec![0x0D, 0x0E, 0x0A, 0x32, 0x07]);
    let RopRequest::ModifyRecipients { columns, rows, .. } = &buffer.rops[1] else {
        panic!()
    };
    assert_eq!(columns[0], PropTag(0x0FFE_0003));
    assert_eq!(rows.len(), 1);
    let RopRequest::SetProperties { values, .. } = &buffer.rops[2] else {
        panic!()
    };
    assert_eq!(values[0].tag, tags::PID_TAG_SUBJECT_PREFIX);
    assert_eq!(values[0].value, PropValue::Unicode(String::new()));
    assert_eq!(values[1].tag, tags::PID_TAG_NORMALIZED_SUBJECT);
    assert_eq!(values[1].value, PropValue::Unicode("test".into()));
    assert_eq!(
        buffer.rops[3],
        RopRequest::SubmitMessage {
            logon_id: 0,
            input_handle: 0,
            submit_flags: 0
        }
    );
    let RopRequest::GetPropertiesSpecific { tags: wanted, .. } = &buffer.rops[4] else {
        panic!()
    };
    assert_eq!(wanted, &vec![tags::PID_TAG_CHANGE_KEY]);
    assert_eq!(encode_request_buffer(&buffer), bytes);
}

#[test]
fn outlook_capture_two_requests() {
    let Some(bytes) = vector("captures/mapi", "rop-request-buffer-2.hex") else {
        return;
    };
    let buffer = decode_request_buffer(&bytes).unwrap();
    assert_eq!(
        buffer.handles,
        vec![
            0x75,
            0xFFFF_FFFF,
            0x71,
            0xFFFF_FFFF,
            0xFFFF_FFFF,
            0xFFFF_FFFF
        ]
    );
    let ids: Vec<u8> = buffer.rops.iter().map(RopRequest::rop_id).collect();
    assert_eq!(ids, vec![0x05, 0x12, 0x4F, 0x02, 0x02, 0x29, 0x07]);
    let RopRequest::FindRow {
        restriction: Some(Restriction::And(parts)),
        ..
    } = &buffer.rops[2]
    else {
        panic!("FindRow with an AND restriction")
    };
    assert!(matches!(parts[0], Restriction::Property { .. }));
    assert!(matches!(parts[1], Restriction::Bitmask { mask: 1, .. }));
    assert!(
        parts
            .iter()
            .any(|p| matches!(p, Restriction::Content { .. }))
    );
    let RopRequest::OpenFolder { folder_id, .. } = &buffer.rops[3] else {
        panic!()
    };
    assert_eq!(*folder_id, ObjectId(0x0951_3300_0000_0001));
    assert_eq!(folder_id.globcnt().get(), 0x33_5109);
    let RopRequest::RegisterNotification {
        notification_types,
        want_whole_store,
        ..
    } = &buffer.rops[5]
    else {
        panic!()
    };
    assert_eq!((*notification_types, *want_whole_store), (0x78, false));
    assert_eq!(encode_request_buffer(&buffer), bytes);
}

/// The gromox exchanges with ROP buffers, and the number of ROP responses each holds.
const GROMOX: &[&str] = &[
    "05-Execute-roplogon",
    "06-Execute-multi-logon-openfolder-contents-plain",
    "07-Execute-multi-flags0-allow-compression-xor",
    "08-Execute-multi-flags0-request-compressed-xored",
    "09-Execute-hierarchy-root-depth-longtermid",
    "10-Execute-openmessage-getpropertiesspecific",
    "11-Execute-setreadflags-clear-read-own-table-open",
    "12-Execute-ics-syncconfigure-contents-emptystate-getbuffer",
    "13-Execute-ics-getbuffer-1",
    "14-Execute-ics-getbuffer-2",
    "17-Execute-N-logon-register-inbox-and-store-contents-table",
    "19-Execute-C-logon-register-inbox-contents-table",
    "22-Execute-C-modify-message2-setproperties-save-readback",
    "23-Execute-N-collect-notifications-empty-batch",
    "28-Execute-N-collect-after-EWS-changes",
    "29-Execute-deletemessages-message5",
];

/// Reads a gromox `.rops.hex` file: the decoded ROP buffer of one segment.
fn gromox_rops(prefix: &str, side: &str) -> Option<Vec<u8>> {
    vector("captures/mapi-gromox", &format!("{prefix}.{side}.rops.hex"))
}

#[test]
fn gromox_requests_round_trip() {
    for prefix in GROMOX {
        let Some(bytes) = gromox_rops(prefix, "request") else {
            return;
        };
        let buffer = decode_request_buffer(&bytes).unwrap_or_else(|e| panic!("{prefix}: {e}"));
        assert_eq!(encode_request_buffer(&buffer), bytes, "{prefix}");
    }
}

#[test]
fn gromox_responses_decode_with_requests() {
    // The table of session N was set up in exchange 17; its later notifications carry
    // rows of that column set, which the test does not need to decode here.
    for prefix in GROMOX {
        let Some(request_bytes) = gromox_rops(prefix, "request") else {
            return;
        };
        let response_bytes = gromox_rops(prefix, "response").unwrap();
        let requests = decode_request_buffer(&request_bytes).unwrap();
        let context = ResponseContext {
            requests: &requests.rops,
            ..Default::default()
        };
        let responses = decode_response_buffer(&response_bytes, &context)
            .unwrap_or_else(|e| panic!("{prefix}: {e}"));
        let answered = requests.rops.iter().filter(|q| q.has_response()).count();
        let results = responses
            .rops
            .iter()
            .filter(|r| r.as_result().is_some())
            .count();
        assert_eq!(results, answered, "{prefix}");
        for response in &responses.rops {
            if let Some(r) = response.as_result() {
                assert_eq!(r.return_value, 0, "{prefix}: {}", rop_id::name(r.rop_id));
            }
        }
        assert_eq!(
            encode_response_buffer(&responses),
            response_bytes,
            "{prefix}"
        );
    }
}

#[test]
fn gromox_contents_table_rows() {
    let prefix = "06-Execute-multi-logon-openfolder-contents-plain";
    let Some(request_bytes) = gromox_rops(prefix, "request") else {
        return;
    };
    let requests = decode_request_buffer(&request_bytes).unwrap();
    let RopRequest::Logon {
        essdn, open_flags, ..
    } = &requests.rops[0]
    else {
        panic!()
    };
    assert!(essdn.starts_with(b"/o="));
    assert!(essdn.ends_with(b"/cn=Recipients/cn=0100000001000000-user1"));
    assert_eq!(*open_flags, 0x0100_0000);
    let response_bytes = gromox_rops(prefix, "response").unwrap();
    let context = ResponseContext {
        requests: &requests.rops,
        ..Default::default()
    };
    let responses = decode_response_buffer(&response_bytes, &context).unwrap();
    assert_eq!(responses.handles, vec![1, 2, 3]);

    let ResponseBody::Logon(logon) = &result(&responses.rops[0]).body else {
        panic!()
    };
    assert_eq!(logon.repl_id, 5);
    assert_eq!(
        logon.repl_guid,
        Guid::parse_str("7c0150f0-87c2-4a24-881d-25ee2522f721").unwrap()
    );
    assert_eq!(
        logon.mailbox_guid,
        Guid::parse_str("792122b6-e992-4c4f-a2f3-9c6d67e55944").unwrap()
    );
    assert_eq!(
        logon.folder_ids[4],
        ObjectId(0x0D00_0000_0000_0001),
        "Inbox"
    );
    assert_eq!(result(&responses.rops[2]).body, ResponseBody::RowCount(10));

    let ResponseBody::QueryRows { origin, rows } = &result(&responses.rops[4]).body else {
        panic!()
    };
    assert_eq!(*origin, 2);
    assert_eq!(rows.len(), 10);
    let first = &rows[0];
    assert!(!first.flagged);
    assert_eq!(
        first.cells[0],
        RowCell::Value(PropValue::I64(0x0000_0300_0000_0001))
    );
    assert_eq!(
        first.cells[1],
        RowCell::Value(PropValue::Unicode("peer smoke test".into()))
    );
    assert_eq!(first.cells[2], RowCell::Value(PropValue::I32(3)));
    let PropValue::Binary(change_key) = first.cells[3].value().unwrap() else {
        panic!()
    };
    let xid = exmux_mapihttp::ids::Xid::decode(change_key, 0).unwrap();
    assert_eq!(
        xid.namespace,
        Guid::parse_str("00000001-18a5-6f7b-bcdc-ea1ed03c5657").unwrap()
    );
    assert_eq!(xid.globcnt().unwrap().get(), 0x1E);
    let time = first.cells[4].value().unwrap().as_datetime().unwrap();
    assert_eq!(
        time,
        time::macros::datetime!(2026-12-04 19:37:59.0324157 UTC)
    );
    assert_eq!(
        rows[8].cells[1],
        RowCell::Value(PropValue::Unicode(
            "[capture-mapi] message 4 (with attachment)".into()
        ))
    );
    assert_eq!(rows[8].cells[2], RowCell::Value(PropValue::I32(0x13)));
}

#[test]
fn gromox_notifications_after_ews_changes() {
    let prefix = "28-Execute-N-collect-after-EWS-changes";
    let Some(bytes) = gromox_rops(prefix, "response") else {
        return;
    };
    let partial = decode_response_buffer_partial(&bytes).unwrap();
    assert_eq!(partial.stopped, None);
    let flags: Vec<u16> = partial
        .rops
        .iter()
        .map(|r| match r {
            RopResponse::Notify { data, .. } => data.flags,
            other => panic!("not a notification: {other:?}"),
        })
        .collect();
    assert_eq!(flags.len(), 15);
    assert_eq!(flags.iter().filter(|f| **f == 0x8004).count(), 2);
    assert_eq!(flags.iter().filter(|f| **f == 0x8100).count(), 4);
    assert_eq!(flags.iter().filter(|f| **f == 0x3010).count(), 8);
    assert_eq!(flags.iter().filter(|f| **f == 0x8010).count(), 1);
}

#[test]
fn gromox_responses_partial_decode_extent() {
    // Without requests, every response decodes except those carrying rows of an unknown
    // column set (QueryRows) or of the request's tags (GetPropertiesSpecific).
    let Some(bytes) = gromox_rops(
        "06-Execute-multi-logon-openfolder-contents-plain",
        "response",
    ) else {
        return;
    };
    let partial = decode_response_buffer_partial(&bytes).unwrap();
    assert_eq!(
        partial.rops.len(),
        4,
        "Logon, OpenFolder, GetContentsTable, SetColumns"
    );
    let stop = partial.stopped.unwrap();
    assert_eq!(stop.rop_id, rop_id::QUERY_ROWS);
    assert!(matches!(stop.error, RopError::MissingColumns { .. }));
}

#[test]
fn unknown_rop_keeps_bytes() {
    let bytes = [0x04, 0x00, 0xEE, 0x00, 0x11, 0x22];
    let error = RopRequest::decode(&mut Reader::with_base(&bytes[2..], 2)).unwrap_err();
    assert_eq!(
        error,
        RopError::UnknownRop {
            rop_id: 0xEE,
            offset: 2,
            bytes: vec![0x11, 0x22]
        }
    );
}

#[test]
fn failed_responses_use_short_form() {
    let requests = [RopRequest::OpenFolder {
        logon_id: 0,
        input_handle: 0,
        output_handle: 1,
        folder_id: ObjectId(1),
        open_mode_flags: 0,
    }];
    let bytes = [0x08, 0x00, 0x02, 0x01, 0x0F, 0x01, 0x04, 0x80];
    let context = ResponseContext {
        requests: &requests,
        ..Default::default()
    };
    let decoded = decode_response_buffer(&bytes, &context).unwrap();
    let r = result(&decoded.rops[0]);
    assert_eq!(r.return_value, 0x8004_010F);
    assert_eq!(r.body, ResponseBody::Empty);
    assert_eq!(encode_response_buffer(&decoded), bytes);
}

#[test]
fn outlook_rgbin_decompresses_to_rop_requests() {
    // The rgbIn bytes carry RPC_HEADER_EXT with LZ77 compression; the ext module removes
    // that layer, and the result is the ROP input buffer decoded above.
    for n in [1, 2] {
        let Some(rgbin) = vector("captures/mapi", &format!("rgbin-compressed-{n}.hex")) else {
            return;
        };
        let payload = exmux_mapihttp::ext::decode_payload(&rgbin).unwrap();
        let expected = vector("captures/mapi", &format!("rop-request-buffer-{n}.hex")).unwrap();
        assert_eq!(payload, expected, "capture {n}");
        let buffer = decode_request_buffer(&payload).unwrap();
        assert_eq!(encode_request_buffer(&buffer), payload, "capture {n}");
    }
}

#[test]
fn gromox_response_bodies_carry_the_rop_buffers() {
    // The saved body starts with the PROCESSING/DONE meta lines, then the Execute response:
    // StatusCode, ErrorCode, Flags, RopBufferSize, then the extended buffer. The ext module
    // strips RPC_HEADER_EXT and the ROP bytes must equal the decoded `.rops.hex` file.
    let prefix = "06-Execute-multi-logon-openfolder-contents-plain";
    let Some(path) =
        exmux_testkit::shared_path(&format!("captures/mapi-gromox/{prefix}.response.body"))
    else {
        return;
    };
    let saved = std::fs::read(path).unwrap();
    let meta_end = saved.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &saved[meta_end..];
    let rop_buffer_size = u32::from_le_bytes(body[12..16].try_into().unwrap()) as usize;
    let extended = &body[16..16 + rop_buffer_size];
    let payload = exmux_mapihttp::ext::decode_payload(extended).unwrap();
    assert_eq!(payload, gromox_rops(prefix, "response").unwrap());
}

#[test]
fn failure_responses_with_fields() {
    // ecServerBusy on GetBuffer carries BackoffTime in place of the status fields.
    let busy = [0x4E, 0x02, 0x80, 0x04, 0x00, 0x00, 0xE8, 0x03, 0x00, 0x00];
    let response = RopResponse::decode(&mut Reader::new(&busy), None, None).unwrap();
    assert_eq!(result(&response).body, ResponseBody::BackoffTime(1000));

    // ecWrongServer on RopLogon names the server to use.
    let redirect = [
        0xFE, 0x00, 0x78, 0x04, 0x00, 0x00, 0x01, 0x03, b'm', b'x', 0x00,
    ];
    let response = RopResponse::decode(&mut Reader::new(&redirect), None, None).unwrap();
    assert_eq!(
        result(&response).body,
        ResponseBody::LogonRedirect {
            logon_flags: 1,
            server_name: b"mx".to_vec()
        }
    );

    // ecDstNullObject on a move names the destination handle index.
    let null_destination = [
        0x33, 0x01, 0x03, 0x05, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01,
    ];
    let response = RopResponse::decode(&mut Reader::new(&null_destination), None, None).unwrap();
    assert_eq!(
        result(&response).body,
        ResponseBody::NullDestination {
            destination_handle: 2,
            partial_completion: true
        }
    );

    // The ecWarnWithErrors warning of GetPropertyIdsFromNames keeps the ids.
    let warning = [0x56, 0x01, 0x80, 0x03, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00];
    let response = RopResponse::decode(&mut Reader::new(&warning), None, None).unwrap();
    assert_eq!(result(&response).body, ResponseBody::PropertyIds(vec![0]));

    // A failed DeleteMessages keeps PartialCompletion.
    let delete = [0x1E, 0x01, 0x05, 0x00, 0x07, 0x80, 0x01];
    let response = RopResponse::decode(&mut Reader::new(&delete), None, None).unwrap();
    assert_eq!(
        result(&response).body,
        ResponseBody::PartialCompletion(true)
    );

    for bytes in [&busy[..], &redirect, &null_destination, &warning, &delete] {
        let response = RopResponse::decode(&mut Reader::new(bytes), None, None).unwrap();
        let mut out = Vec::new();
        response.encode(&mut out);
        assert_eq!(out, bytes);
    }
}

/// ServerNameSize is one byte and counts the terminating NUL (MS-OXCROPS 2.2.3.1.3). A
/// redirect whose 255-byte name has no NUL must encode back to the same bytes, not to a
/// size that wraps to zero (found by the mapi_rop_response fuzz target).
#[test]
fn logon_redirect_long_name_round_trips() {
    let mut wire = vec![0xFE, 0x00, 0x78, 0x04, 0x00, 0x00, 0x00, 0xFF];
    wire.extend(std::iter::repeat_n(b'x', 255));
    let response = RopResponse::decode(&mut Reader::new(&wire), None, None).unwrap();
    let ResponseBody::LogonRedirect { server_name, .. } = &result(&response).body else {
        panic!("not a redirect: {response:?}");
    };
    assert_eq!(server_name.len(), 255);
    let mut out = Vec::new();
    response.encode(&mut out);
    assert_eq!(out, wire);

    // A terminated name keeps its NUL and its size on the way back out.
    let mut wire = vec![0xFE, 0x00, 0x78, 0x04, 0x00, 0x00, 0x00, 0xFF];
    wire.extend(std::iter::repeat_n(b'y', 254));
    wire.push(0);
    let response = RopResponse::decode(&mut Reader::new(&wire), None, None).unwrap();
    let mut out = Vec::new();
    response.encode(&mut out);
    assert_eq!(out, wire);
}

/// RopBackoff (MS-OXCROPS 2.2.15.2.1) in place of the response it delays: LogonId,
/// Duration, two BackoffRop entries, then AdditionalData. The delayed response and
/// those after it are missing, so the buffer ends with the backoff.
#[test]
fn backoff_replaces_delayed_responses() {
    let backoff = [
        0xF9, 0x00, // RopId, LogonId
        0xE8, 0x03, 0x00, 0x00, // Duration 1000 ms
        0x02, // BackoffRopCount
        0x15, 0xF4, 0x01, 0x00, 0x00, // RopQueryRows, 500 ms
        0x4E, 0xD0, 0x07, 0x00, 0x00, // RopFastTransferSourceGetBuffer, 2000 ms
        0x03, 0x00, 0xAA, 0xBB, 0xCC, // AdditionalDataSize 3, AdditionalData
    ];
    let mut list = vec![0x12, 0x01, 0, 0, 0, 0, 0x00]; // RopSetColumns answered
    list.extend_from_slice(&backoff);
    let mut bytes = vec![u8::try_from(list.len() + 2).unwrap(), 0];
    bytes.extend_from_slice(&list);
    bytes.extend_from_slice(&[1, 0, 0, 0]);

    let requests = [
        RopRequest::SetColumns {
            logon_id: 0,
            input_handle: 1,
            set_columns_flags: 0,
            tags: vec![PropTag(0x0037_001F)],
        },
        RopRequest::QueryRows {
            logon_id: 0,
            input_handle: 1,
            query_rows_flags: 0,
            forward_read: true,
            row_count: 50,
        },
    ];
    let context = ResponseContext {
        requests: &requests,
        ..Default::default()
    };
    let decoded = decode_response_buffer(&bytes, &context).unwrap();
    assert_eq!(decoded.rops.len(), 2);
    let RopResponse::Backoff(backoff) = &decoded.rops[1] else {
        panic!("second entry is not RopBackoff: {:?}", decoded.rops[1]);
    };
    assert_eq!(backoff.logon_id, 0);
    assert_eq!(backoff.duration, 1000);
    assert_eq!(backoff.rops.len(), 2);
    assert_eq!(backoff.rops[0].rop_id, rop_id::QUERY_ROWS);
    assert_eq!(backoff.rops[0].duration, 500);
    assert_eq!(
        backoff.rops[1].rop_id,
        rop_id::FAST_TRANSFER_SOURCE_GET_BUFFER
    );
    assert_eq!(backoff.rops[1].duration, 2000);
    assert_eq!(backoff.additional_data, vec![0xAA, 0xBB, 0xCC]);
    assert_eq!(encode_response_buffer(&decoded), bytes);
}
