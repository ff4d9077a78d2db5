//! Every shared EWS sample goes through the parser: responses into typed values or typed
//! errors, requests through the emulator's request parser. None may panic. One sample per
//! operation is then checked field by field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use exmux_ews::error::{EwsError, ResponseClass, ResponseCode};
use exmux_ews::operation::{EwsOperation, decode_response};
use exmux_ews::ops::folders::*;
use exmux_ews::ops::items::*;
use exmux_ews::ops::notify::*;
use exmux_ews::ops::sync::*;
use exmux_ews::soap;

/// Files that are not well-formed XML (documented in the samples' SOURCES.md).
const NOT_WELL_FORMED: &[&str] = &[
    "getstreamingevents-2.xml",
    "getstreamingevents-3.xml",
    "autodiscover-soap-1.xml",
];

#[test]
fn every_public_sample_parses_or_gives_a_typed_error() {
    let Some(dir) = shared("captures/ews") else {
        return;
    };
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".xml") {
            continue;
        }
        count += 1;
        let body = std::fs::read(&path).unwrap();
        let op = op_of_file(&name);
        let is_request = match soap::parse_request(&body) {
            Ok(req) => !req.body.name.ends_with("Response") && req.body.name != "SendNotification",
            Err(_) => false,
        };
        let result = if is_request {
            parse_request_by_name(&body)
        } else {
            decode_by_name(&op, 200, &body)
        };
        // A push subscription request: exmux implements pull and streaming only.
        if name == "subscribe-3.xml" {
            assert!(
                matches!(
                    result,
                    Err(EwsError::Unexpected {
                        operation: "Subscribe",
                        ..
                    })
                ),
                "{result:?}"
            );
            continue;
        }
        if NOT_WELL_FORMED.contains(&name.as_str()) {
            match result {
                Err(EwsError::MalformedXml { offset, .. }) => assert!(offset > 0, "{name}: offset"),
                other => panic!("{name}: expected a malformed-XML error, got {other:?}"),
            }
            continue;
        }
        match (&name[..], result) {
            (_, Ok(_)) => {}
            // Faults are typed errors with a code.
            (_, Err(EwsError::Fault(f))) => {
                assert!(!f.faultcode.is_empty(), "{name}: empty faultcode")
            }
            // The POX autodiscover answer is not a SOAP envelope at all.
            ("autodiscover-pox-1.xml", Err(EwsError::Unexpected { .. })) => {}
            (_, Err(e)) => panic!("{name} ({op}): {e}"),
        }
    }
    assert!(count >= 55, "only {count} samples found");
}

#[test]
fn every_gromox_exchange_parses_or_gives_a_typed_error() {
    let Some(dir) = shared("captures/ews-gromox") else {
        return;
    };
    let mut responses = 0;
    let mut requests = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let body = std::fs::read(&path).unwrap();
        let op = op_of_file(&name);
        if name.ends_with(".request.xml") {
            requests += 1;
            let r = parse_request_by_name(&body);
            if name.starts_with("86-") {
                assert!(
                    matches!(r, Err(EwsError::MalformedXml { offset, .. }) if offset > 0),
                    "{name}: {r:?}"
                );
            } else {
                r.unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        } else if name.ends_with(".response.xml") {
            responses += 1;
            let headers =
                std::fs::read(dir.join(name.replace(".response.xml", ".response.headers"))).ok();
            let status = status_of(headers.as_deref());
            if op == "GetStreamingEvents" {
                // A streaming body: several envelopes back to back.
                let mut reader = StreamingReader::new();
                reader.push(&body);
                let mut n = 0;
                while let Some(m) = reader
                    .next_message()
                    .unwrap_or_else(|e| panic!("{name}: {e}"))
                {
                    assert!(!m.messages.is_empty());
                    n += 1;
                }
                assert!(n >= 2, "{name}: {n} documents");
                continue;
            }
            let r = decode_by_name(&op, status, &body);
            match (status, r) {
                (200, Ok(_)) => {}
                (500, Err(EwsError::Fault(f))) => assert_eq!(f.http_status, 500, "{name}"),
                (401, Err(EwsError::NotXml { status: 401, .. })) => {}
                (s, other) => panic!("{name} (HTTP {s}): {other:?}"),
            }
        }
    }
    assert!(
        responses >= 50 && requests >= 50,
        "{responses} responses, {requests} requests"
    );
}

fn gromox(prefix: &str, suffix: &str) -> Option<Vec<u8>> {
    let dir = shared("captures/ews-gromox")?;
    let entry = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(prefix) && n.ends_with(suffix)
        })
        .unwrap_or_else(|| panic!("no capture {prefix}*{suffix}"));
    Some(std::fs::read(entry).unwrap())
}

fn ok<T: EwsOperation>(body: &[u8]) -> T::Response {
    decode_response::<T>(200, Some("text/xml"), body).unwrap()
}

#[test]
fn getfolder_fields() {
    let Some(b) = gromox("01-", ".response.xml") else {
        return;
    };
    let r = ok::<GetFolder>(&b);
    let v = r.server_version.as_ref().unwrap();
    assert_eq!(
        (v.major, v.minor, v.major_build, v.minor_build),
        (15, 0, 847, 4040)
    );
    assert_eq!(v.version.as_deref(), Some("V2017_07_11"));
    let f = &r.messages[0].as_ref().unwrap()[0];
    assert_eq!(
        f.folder_id.as_ref().unwrap().id,
        "AAAAALYiIXmS6U9MovOcbWflWUQBAAEAAAClGHtvvNzqHtA8VlcAAAAAAA0AAAI="
    );
    assert_eq!(
        f.folder_id.as_ref().unwrap().change_key.as_deref(),
        Some("AQAAAKUYe2+83Ooe0DxWVwAAAAABmw==")
    );
    assert_eq!(
        f.parent_folder_id.as_ref().unwrap().id,
        "AAAAALYiIXmS6U9MovOcbWflWUQBAAEAAAClGHtvvNzqHtA8VlcAAAAAAAkAAAI="
    );
    assert_eq!(f.folder_class.as_deref(), Some("IPF.Note"));
    assert_eq!(f.display_name.as_deref(), Some("Inbox"));
    assert_eq!(
        (f.total_count, f.child_folder_count, f.unread_count),
        (Some(5), Some(0), Some(0))
    );
}

#[test]
fn getfolder_batch_with_error_keeps_order() {
    let Some(b) = read("captures/ews/getfolder-2.xml") else {
        return;
    };
    let r = ok::<GetFolder>(&b);
    let e = r.messages[0].as_ref().unwrap_err();
    assert_eq!(e.code, ResponseCode::ErrorItemNotFound);
    assert!(e.is_not_found());
    let Some(b) = read("captures/ews/getfolder-3.xml") else {
        return;
    };
    let r = ok::<GetFolder>(&b);
    assert_eq!(r.messages.len(), 2);
    assert!(r.messages.iter().all(|m| m.is_ok()));
}

#[test]
fn findfolder_fields() {
    let Some(b) = gromox("03-", ".response.xml") else {
        return;
    };
    let page = ok::<FindFolder>(&b).into_single("FindFolder").unwrap();
    assert_eq!(page.paging.total_items_in_view, Some(13));
    assert!(page.paging.includes_last_item_in_range);
    assert_eq!(page.folders.len(), 13);
    assert_eq!(page.folders[0].display_name.as_deref(), Some("Sent Items"));
    assert_eq!(
        page.folders[1]
            .folder_id
            .as_ref()
            .unwrap()
            .change_key
            .as_deref(),
        Some("AQAAAKUYe2+83Ooe0DxWVwAAAAABng==")
    );
}

#[test]
fn findfolder_throttling_message() {
    let Some(b) = read("captures/ews/findfolder-1.xml") else {
        return;
    };
    let r = ok::<FindFolder>(&b);
    let e = r.messages[0].as_ref().unwrap_err();
    assert_eq!(e.code, ResponseCode::ErrorTooManyObjectsOpened);
    let hint = e.throttle_hint().unwrap();
    assert!(hint.lower_concurrency);
}

#[test]
fn createfolder_and_deletefolder_fields() {
    let Some(b) = gromox("06-", ".response.xml") else {
        return;
    };
    let r = ok::<CreateFolder>(&b);
    let f = &r.messages[0].as_ref().unwrap()[0];
    assert_eq!(
        f.folder_id.as_ref().unwrap().id,
        "AAAAALYiIXmS6U9MovOcbWflWUQBAAEAAAClGHtvvNzqHtA8VlcAAAAiAAAAAAI="
    );
    let Some(b) = gromox("08-", ".response.xml") else {
        return;
    };
    let r = ok::<DeleteFolder>(&b);
    assert_eq!(r.messages, vec![Ok(())]);
    let Some(b) = read("captures/ews/deletefolder-2.xml") else {
        return;
    };
    let r = ok::<DeleteFolder>(&b);
    assert_eq!(
        r.messages[0].as_ref().unwrap_err().code,
        ResponseCode::ErrorDeleteDistinguishedFolder
    );
    let Some(b) = read("captures/ews/createfolder-3.xml") else {
        return;
    };
    assert_eq!(
        ok::<CreateFolder>(&b).messages[0]
            .as_ref()
            .unwrap_err()
            .code,
        ResponseCode::ErrorFolderExists
    );
}

#[test]
fn createfolder_schema_fault_is_typed() {
    let Some(b) = read("captures/ews/createfolder-4.xml") else {
        return;
    };
    match decode_response::<CreateFolder>(500, Some("text/xml"), &b) {
        Err(EwsError::Fault(f)) => {
            assert_eq!(f.http_status, 500);
            assert_eq!(f.response_code, Some(ResponseCode::ErrorSchemaValidation));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn movefolder_fields() {
    let Some(b) = read("captures/ews/movefolder-1.xml") else {
        return;
    };
    let r = ok::<MoveFolder>(&b);
    let f = &r.messages[0].as_ref().unwrap()[0];
    assert!(f.folder_id.as_ref().unwrap().change_key.is_some());
    let Some(b) = read("captures/ews/movefolder-2.xml") else {
        return;
    };
    assert_eq!(
        ok::<MoveFolder>(&b).messages[0].as_ref().unwrap_err().code,
        ResponseCode::ErrorMoveCopyFailed
    );
}

#[test]
fn updatefolder_response_parses() {
    let Some(b) = gromox("48-", ".response.xml") else {
        return;
    };
    let r = ok::<UpdateFolder>(&b);
    assert_eq!(r.messages.len(), 1);
    assert!(r.messages[0].is_ok());
}

#[test]
fn syncfolderhierarchy_fields() {
    let Some(b) = read("captures/ews/syncfolderhierarchy-1.xml") else {
        return;
    };
    let s = ok::<SyncFolderHierarchy>(&b)
        .into_single("SyncFolderHierarchy")
        .unwrap();
    assert!(!s.sync_state.is_empty());
    assert!(!s.changes.is_empty());
    let Some(b) = read("captures/ews/syncfolderhierarchy-2.xml") else {
        return;
    };
    let e = ok::<SyncFolderHierarchy>(&b)
        .into_single("SyncFolderHierarchy")
        .unwrap_err();
    assert!(e.is_invalid_sync_state());
    let Some(b) = gromox("07-", ".response.xml") else {
        return;
    };
    let s = ok::<SyncFolderHierarchy>(&b)
        .into_single("SyncFolderHierarchy")
        .unwrap();
    assert!(s.changes.iter().any(|c| matches!(c, HierarchyChange::Create(f) if f.display_name.as_deref() == Some("capture-ews folder"))), "{s:?}");
    let Some(b) = gromox("09-", ".response.xml") else {
        return;
    };
    let s = ok::<SyncFolderHierarchy>(&b)
        .into_single("SyncFolderHierarchy")
        .unwrap();
    assert!(
        s.changes
            .iter()
            .any(|c| matches!(c, HierarchyChange::Delete(_))),
        "{s:?}"
    );
}

#[test]
fn syncfolderitems_fields() {
    let Some(b) = gromox("36-", ".response.xml") else {
        return;
    };
    let page = ok::<SyncFolderItems>(&b)
        .into_single("SyncFolderItems")
        .unwrap();
    assert_eq!(
        page.sync_state,
        "AgACARdAEAAAAAEAUgAAAAMAagAAAAMAawACAZZnEAAAAAEAUgAAAAABtAAAAAABtQA="
    );
    assert!(!page.includes_last);
    assert_eq!(page.changes.len(), 2);
    let SyncChange::Create(item) = &page.changes[0] else {
        panic!("{:?}", page.changes[0])
    };
    assert_eq!(item.kind, exmux_ews::types::ItemKind::Message);
    let id = item.item_id.as_ref().unwrap();
    assert_eq!(
        id.id,
        "AAAAALYiIXmS6U9MovOcbWflWUQHAAEAAAClGHtvvNzqHtA8VlcAAAAAAA0AAAEAAAClGHtvvNzqHtA8VlcAAAADAGsAAAM="
    );
    assert_eq!(
        id.change_key.as_deref(),
        Some("AQAAAKUYe2+83Ooe0DxWVwAAAAABtQ==")
    );
    assert_eq!(item.subject.as_deref(), Some("[capture-ews] message 8"));
    assert_eq!(item.is_read, Some(false));
    let received = item.date_time_received.unwrap();
    assert_eq!(
        (
            received.year(),
            received.hour(),
            received.minute(),
            received.second()
        ),
        (2026, 20, 13, 19)
    );
    assert_eq!(received.nanosecond(), 255_076_500);

    let Some(b) = read("captures/ews/syncfolderitems-2.xml") else {
        return;
    };
    let page = ok::<SyncFolderItems>(&b)
        .into_single("SyncFolderItems")
        .unwrap();
    assert!(page.includes_last);
    let SyncChange::Create(item) = &page.changes[0] else {
        panic!("{page:?}")
    };
    assert_eq!(item.kind, exmux_ews::types::ItemKind::MeetingRequest);
    assert_eq!(
        item.item_id,
        Some(exmux_ews::types::ItemId {
            id: "AQApAHRwA==".into(),
            change_key: Some("CwAAABYA".into())
        })
    );
    assert_eq!(item.subject.as_deref(), Some("Budget Q3"));

    let Some(b) = read("captures/ews/syncfolderitems-5.xml") else {
        return;
    };
    let page = ok::<SyncFolderItems>(&b)
        .into_single("SyncFolderItems")
        .unwrap();
    let count = |k: &str| {
        page.changes
            .iter()
            .filter(|c| match c {
                SyncChange::Create(_) => k == "Create",
                SyncChange::Update(_) => k == "Update",
                SyncChange::Delete(_) => k == "Delete",
                SyncChange::ReadFlagChange { .. } => k == "ReadFlagChange",
                _ => false,
            })
            .count()
    };
    assert_eq!(
        [
            count("Create"),
            count("Update"),
            count("Delete"),
            count("ReadFlagChange")
        ],
        [2, 1, 1, 1]
    );
}

#[test]
fn syncfolderitems_iterator_matches_collect() {
    let Some(b) = read("captures/ews/syncfolderitems-5.xml") else {
        return;
    };
    let reader = SyncItemsReader::new(&b).unwrap();
    let state = reader.sync_state.clone();
    let streamed: Vec<SyncChange> = reader.map(|c| c.unwrap()).collect();
    let page = ok::<SyncFolderItems>(&b)
        .into_single("SyncFolderItems")
        .unwrap();
    assert_eq!(page.sync_state, state);
    assert_eq!(page.changes, streamed);
    assert!(streamed.len() >= 4);
}

#[test]
fn syncfolderitems_server_busy_in_http_200() {
    let Some(b) = read("captures/ews/syncfolderitems-6.xml") else {
        return;
    };
    let e = ok::<SyncFolderItems>(&b)
        .into_single("SyncFolderItems")
        .unwrap_err();
    assert_eq!(e.response_code(), Some(&ResponseCode::ErrorServerBusy));
    assert_eq!(e.throttle_hint().unwrap().back_off_millis, Some(5000));
}

#[test]
fn finditem_fields() {
    let Some(b) = gromox("12-", ".response.xml") else {
        return;
    };
    let page = ok::<FindItem>(&b).into_single("FindItem").unwrap();
    assert_eq!(page.paging.indexed_paging_offset, Some(2));
    assert_eq!(page.paging.total_items_in_view, Some(10));
    assert!(!page.paging.includes_last_item_in_range);
    assert_eq!(page.paging.next_offset("FindItem", 0).unwrap(), Some(2));
    assert_eq!(page.items.len(), 2);
    assert_eq!(
        page.items[0].subject.as_deref(),
        Some("[capture-ews] message 5")
    );
    assert_eq!(
        page.items[1]
            .item_id
            .as_ref()
            .unwrap()
            .change_key
            .as_deref(),
        Some("AQAAAKUYe2+83Ooe0DxWVwAAAAABow==")
    );
}

#[test]
fn getitem_fields() {
    let Some(b) = gromox("16-", ".response.xml") else {
        return;
    };
    let r = ok::<GetItem>(&b);
    assert_eq!(r.messages.len(), 3);
    for m in &r.messages {
        let items = m.as_ref().unwrap();
        assert_eq!(items.len(), 1);
        assert!(items[0].item_id.is_some());
        assert!(
            items[0]
                .subject
                .as_deref()
                .unwrap()
                .starts_with("[capture-ews] message")
        );
    }
    let Some(b) = gromox("18-", ".response.xml") else {
        return;
    };
    let r = ok::<GetItem>(&b);
    let mime = r.messages[0].as_ref().unwrap()[0]
        .mime_content
        .clone()
        .unwrap();
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(mime.trim())
        .unwrap();
    assert!(String::from_utf8_lossy(&decoded).contains("Subject:"));
}

#[test]
fn createitem_fields() {
    let Some(b) = gromox("11-", ".response.xml") else {
        return;
    };
    let r = ok::<CreateItem>(&b);
    assert_eq!(r.messages.len(), 4);
    let ids: Vec<_> = r
        .messages
        .iter()
        .map(|m| m.as_ref().unwrap()[0].item_id.clone().unwrap())
        .collect();
    assert!(ids.iter().all(|i| i.change_key.is_some()));
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), 4);
}

#[test]
fn updateitem_fields() {
    let Some(b) = gromox("19-", ".response.xml") else {
        return;
    };
    let r = ok::<UpdateItem>(&b).into_single("UpdateItem").unwrap();
    assert_eq!(
        r.item_id.unwrap().change_key.as_deref(),
        Some("AQAAAKUYe2+83Ooe0DxWVwAAAAABpQ==")
    );
    assert_eq!(r.conflict_count, 0);
    let Some(b) = read("captures/ews/updateitem-2.xml") else {
        return;
    };
    let r = ok::<UpdateItem>(&b).into_single("UpdateItem").unwrap();
    assert!(r.item_id.unwrap().change_key.is_some());
}

#[test]
fn move_and_copy_fields() {
    let Some(b) = gromox("24-", ".response.xml") else {
        return;
    };
    let id = ok::<MoveItem>(&b).into_single("MoveItem").unwrap().unwrap();
    assert_eq!(
        id.id,
        "AAAAALYiIXmS6U9MovOcbWflWUQHAAEAAAClGHtvvNzqHtA8VlcAAAAAAAsAAAEAAAClGHtvvNzqHtA8VlcAAAAHAA8AAAM="
    );
    assert_eq!(
        id.change_key.as_deref(),
        Some("AQAAAKUYe2+83Ooe0DxWVwAAAAABqg==")
    );
    let Some(b) = gromox("26-", ".response.xml") else {
        return;
    };
    let id = ok::<CopyItem>(&b).into_single("CopyItem").unwrap().unwrap();
    assert_eq!(
        id.change_key.as_deref(),
        Some("AQAAAKUYe2+83Ooe0DxWVwAAAAABrA==")
    );
}

#[test]
fn deleteitem_batch_partial_failure() {
    let Some(b) = read("captures/ews/deleteitem-3.xml") else {
        return;
    };
    let r = ok::<DeleteItem>(&b);
    assert_eq!(r.messages.len(), 3);
    let errs: Vec<_> = r.messages.iter().filter_map(|m| m.as_ref().err()).collect();
    assert_eq!(errs.len(), 3);
    assert!(errs.iter().all(|e| e.is_not_found()));
    let Some(b) = read("captures/ews/deleteitem-1.xml") else {
        return;
    };
    let r = ok::<DeleteItem>(&b);
    let e = r.messages.iter().find_map(|m| m.as_ref().err()).unwrap();
    assert_eq!(e.code, ResponseCode::ErrorInternalServerError);
    assert_eq!(
        e.message_xml.inner_error_code(),
        Some(ResponseCode::ErrorQuotaExceededOnDelete)
    );
    assert!(e.throttle_hint().is_none());
}

#[test]
fn subscribe_getevents_unsubscribe_fields() {
    let Some(b) = gromox("61-", ".response.xml") else {
        return;
    };
    let s = ok::<Subscribe>(&b).into_single("Subscribe").unwrap();
    assert_eq!(s.subscription_id, "EwAAAAoAAAA=");
    assert_eq!(s.watermark, None);
    let Some(b) = read("captures/ews/subscribe-2.xml") else {
        return;
    };
    let s = ok::<Subscribe>(&b).into_single("Subscribe").unwrap();
    assert!(s.watermark.is_some());

    let Some(b) = gromox("65-", ".response.xml") else {
        return;
    };
    let n = ok::<GetEvents>(&b).into_single("GetEvents").unwrap();
    assert_eq!(n.subscription_id, "EwAAAAoAAAA=");
    assert!(!n.more_events);
    let first = &n.events[0];
    assert_eq!(first.kind, EventKind::Created);
    assert_eq!(
        first.item_id.as_ref().unwrap().id,
        "AAAAALYiIXmS6U9MovOcbWflWUQHAAEAAAClGHtvvNzqHtA8VlcAAAAAAA0AAAEAAAClGHtvvNzqHtA8VlcAAAADAG0AAAM="
    );
    assert_eq!(first.item_id.as_ref().unwrap().change_key, None);
    assert_eq!(first.watermark, None);
    assert_eq!(
        first.parent_folder_id.as_ref().unwrap().id,
        "AAAAALYiIXmS6U9MovOcbWflWUQBAAEAAAClGHtvvNzqHtA8VlcAAAAAAA0AAAI="
    );
    let folder_event = &n.events[1];
    assert_eq!(folder_event.kind, EventKind::Modified);
    assert!(folder_event.folder_id.is_some());
    assert_eq!(folder_event.unread_count, Some(2));

    let Some(b) = read("captures/ews/getevents-2.xml") else {
        return;
    };
    let n = ok::<GetEvents>(&b).into_single("GetEvents").unwrap();
    assert!(n.events.iter().all(|e| e.watermark.is_some()));

    let Some(b) = gromox("73-", ".response.xml") else {
        return;
    };
    let e = ok::<GetEvents>(&b).into_single("GetEvents").unwrap_err();
    assert_eq!(
        e.response_code(),
        Some(&ResponseCode::ErrorInvalidSubscription)
    );

    let Some(b) = gromox("75-", ".response.xml") else {
        return;
    };
    assert_eq!(ok::<Unsubscribe>(&b).messages, vec![Ok(())]);
    let Some(b) = read("captures/ews/unsubscribe-2.xml") else {
        return;
    };
    let e = ok::<Unsubscribe>(&b)
        .into_single("Unsubscribe")
        .unwrap_err();
    assert_eq!(
        e.response_code(),
        Some(&ResponseCode::ErrorSubscriptionNotFound)
    );
}

#[test]
fn moved_event_carries_old_ids() {
    let Some(b) = read("captures/ews/getevents-2.xml") else {
        return;
    };
    let n = ok::<GetEvents>(&b).into_single("GetEvents").unwrap();
    // The spec example holds at least one item event with an ItemId and ParentFolderId.
    assert!(
        n.events
            .iter()
            .any(|e| e.item_id.is_some() && e.parent_folder_id.is_some())
    );
}

#[test]
fn streaming_capture_through_framer() {
    let Some(raw) = gromox("81-", ".response.raw") else {
        return;
    };
    let body = dechunk(&raw);
    // Feed in small pieces so documents span pushes.
    let mut reader = StreamingReader::new();
    let mut docs = Vec::new();
    for piece in body.chunks(7) {
        reader.push(piece);
        while let Some(m) = reader.next_message().unwrap() {
            docs.push(m);
        }
    }
    assert!(docs.len() >= 2, "{} documents", docs.len());
    let events: usize = docs
        .iter()
        .flat_map(|d| d.messages.iter())
        .filter_map(|m| m.as_ref().ok())
        .map(|m| {
            m.notifications
                .iter()
                .map(|n| n.events.len())
                .sum::<usize>()
        })
        .sum();
    assert!(events > 0);
    let last = docs
        .last()
        .unwrap()
        .messages
        .last()
        .unwrap()
        .as_ref()
        .unwrap();
    assert_eq!(last.connection_status, Some(ConnectionStatus::Closed));
}

/// Removes HTTP/1.1 chunked framing (and the status line and headers in front of it).
pub fn dechunk(raw: &[u8]) -> Vec<u8> {
    let start = if raw.starts_with(b"HTTP/") {
        raw.windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4)
            .unwrap_or(0)
    } else {
        0
    };
    let mut rest = &raw[start..];
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        rest = &rest[eol + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[(size + 2).min(rest.len())..];
    }
    out
}

#[test]
fn unimplemented_operations_give_envelope_class_and_code() {
    for (file, element, class, code) in [
        (
            "resolvenames-2.xml",
            "ResolveNamesResponse",
            ResponseClass::Warning,
            "ErrorNameResolutionMultipleResults",
        ),
        (
            "resolvenames-1.xml",
            "ResolveNamesResponse",
            ResponseClass::Success,
            "NoError",
        ),
        (
            "expanddl-1.xml",
            "ExpandDLResponse",
            ResponseClass::Success,
            "NoError",
        ),
        (
            "getattachment-1.xml",
            "GetAttachmentResponse",
            ResponseClass::Success,
            "NoError",
        ),
        (
            "markasjunk-1.xml",
            "MarkAsJunkResponse",
            ResponseClass::Success,
            "NoError",
        ),
    ] {
        let Some(b) = read(&format!("captures/ews/{file}")) else {
            return;
        };
        let u = soap::parse_generic_response(&b).unwrap();
        assert_eq!(u.element, element, "{file}");
        assert_eq!(u.codes[0], (class, ResponseCode::parse(code)), "{file}");
        // An implemented operation's parser answers the same body with the typed result.
        match decode_response::<GetItem>(200, None, &b) {
            Err(EwsError::NotImplemented(n)) => assert_eq!(n.element, element),
            other => panic!("{file}: {other:?}"),
        }
    }
}

#[test]
fn soap_faults_are_typed_with_backoff() {
    let Some(b) = read("captures/ews/soapfault-3.xml") else {
        return;
    };
    match decode_response::<FindItem>(500, Some("text/xml"), &b) {
        Err(EwsError::Fault(f)) => {
            assert_eq!(f.response_code, Some(ResponseCode::ErrorServerBusy));
            assert_eq!(f.message_xml.back_off_millis(), Some(297_749));
            assert_eq!(f.throttle_hint().unwrap().back_off_millis, Some(297_749));
        }
        other => panic!("{other:?}"),
    }
    let Some(b) = read("captures/ews/soapfault-1.xml") else {
        return;
    };
    let e = decode_response::<FindItem>(500, Some("text/xml"), &b).unwrap_err();
    assert_eq!(e.throttle_hint().unwrap().back_off_millis, Some(0));
    let Some(b) = read("captures/ews/soapfault-2.xml") else {
        return;
    };
    let e = decode_response::<FindItem>(500, Some("text/xml"), &b).unwrap_err();
    assert_eq!(
        e.response_code(),
        Some(&ResponseCode::ErrorExceededConnectionCount)
    );
    assert!(e.throttle_hint().unwrap().lower_concurrency);
}

#[test]
fn gromox_unknown_operation_fault_and_401() {
    let Some(b) = gromox("88-", ".response.xml") else {
        return;
    };
    match decode_response::<GetFolder>(500, Some("text/xml"), &b) {
        Err(EwsError::Fault(f)) => {
            assert_eq!(f.faultcode, "SOAP:Server");
            assert_eq!(f.faultstring, "Unknown request 'FrobnicateItem'.");
            assert_eq!(f.response_code, None);
        }
        other => panic!("{other:?}"),
    }
    let Some(b) = gromox("92-", ".response.xml") else {
        return;
    };
    assert!(matches!(
        decode_response::<GetFolder>(401, None, &b),
        Err(EwsError::NotXml { status: 401, .. })
    ));
}
