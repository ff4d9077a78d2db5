//! The EWS bug-report cases: each input goes through the codec, and the test checks the
//! behaviour the case asks of the codec (client-side retry and scheduling parts are the
//! HTTP client's).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::read;
use exmux_ews::error::{EwsError, ResponseClass, ResponseCode};
use exmux_ews::operation::{EwsOperation, RequestHeader, decode_response, encode_request};
use exmux_ews::ops::items::*;
use exmux_ews::ops::notify::*;
use exmux_ews::ops::sync::*;
use exmux_ews::types::{DistinguishedFolder, FolderRef, ItemId, ItemKind};

const NS: &str = r#"xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types""#;

fn case(name: &str) -> Option<Vec<u8>> {
    read(&format!("cases/inputs/{name}"))
}

/// The indented body under a `step N` line of a `.txt` case, up to the next line that
/// starts in column 0.
fn step_body(txt: &str, step: &str) -> String {
    let mut lines = txt
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{step} ")));
    lines.next().unwrap_or_else(|| panic!("no {step}"));
    lines
        .take_while(|l| l.starts_with(' ') || l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Wraps a body fragment (a response element, its ResponseMessages, or one message) in a
/// SOAP envelope declaring the usual prefixes.
fn wrap(fragment: &str, op: &str) -> Vec<u8> {
    let f = fragment.trim();
    let inner = if f.starts_with(&format!("<m:{op}Response>")) {
        f.to_string()
    } else if f.starts_with("<m:ResponseMessages") {
        format!("<m:{op}Response>{f}</m:{op}Response>")
    } else {
        format!("<m:{op}Response><m:ResponseMessages>{f}</m:ResponseMessages></m:{op}Response>")
    };
    format!("<soap:Envelope {NS}><soap:Body>{inner}</soap:Body></soap:Envelope>").into_bytes()
}

fn ok<T: EwsOperation>(body: &[u8]) -> T::Response {
    decode_response::<T>(200, Some("text/xml; charset=utf-8"), body).unwrap()
}

#[test]
fn c01_charref_to_control_character_keeps_the_batch() {
    let Some(b) = case("C01-invalid-charref-subject.xml") else {
        return;
    };
    let r = ok::<GetItem>(&b);
    assert_eq!(r.messages.len(), 2);
    let first = &r.messages[0].as_ref().unwrap()[0];
    let second = &r.messages[1].as_ref().unwrap()[0];
    assert!(!first.subject.as_deref().unwrap().contains('\u{FFFD}'));
    let subject = second.subject.as_deref().unwrap();
    assert!(subject.contains('\u{FFFD}'), "{subject:?}");
    assert!(!subject.contains('\u{1A}'));
    assert!(second.item_id.is_some());
    // The same every time.
    assert_eq!(ok::<GetItem>(&b), r);
}

#[test]
fn c01_references_policy() {
    let doc = |text: &str| {
        format!(
            "<soap:Envelope {NS}><soap:Body><m:GetItemResponse><m:ResponseMessages><m:GetItemResponseMessage ResponseClass=\"Success\"><m:ResponseCode>NoError</m:ResponseCode><m:Items><t:Message><t:Subject>{text}</t:Subject></t:Message></m:Items></m:GetItemResponseMessage></m:ResponseMessages></m:GetItemResponse></soap:Body></soap:Envelope>"
        )
    };
    let subject = |text: &str| {
        ok::<GetItem>(doc(text).as_bytes()).messages[0]
            .as_ref()
            .unwrap()[0]
            .subject
            .clone()
            .unwrap()
    };
    assert_eq!(
        subject("a&#x1A;b&#1;c&#xB;d&#0;"),
        "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}"
    );
    assert_eq!(
        subject("tab&#9;lf&#xA;&amp;&lt;&#x1F600;"),
        "tab\tlf\n&<\u{1F600}"
    );
    // An entity that would need a DTD is an error with an offset, as is a DTD.
    let e = decode_response::<GetItem>(200, None, doc("&custom;").as_bytes()).unwrap_err();
    assert!(
        matches!(e, EwsError::MalformedXml { offset, .. } if offset > 0),
        "{e:?}"
    );
    let with_dtd = format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{}", doc("&a;"));
    let e = decode_response::<GetItem>(200, None, with_dtd.as_bytes()).unwrap_err();
    assert!(matches!(e, EwsError::MalformedXml { .. }), "{e:?}");
}

#[test]
fn c03_every_item_kind_and_unknown_elements_keep_the_page() {
    let Some(b) = case("C03-sync-meetingrequest-variant.xml") else {
        return;
    };
    let page = ok::<SyncFolderItems>(&b)
        .into_single("SyncFolderItems")
        .unwrap();
    assert_eq!(page.changes.len(), 6);
    assert!(page.includes_last);
    assert!(!page.sync_state.is_empty());
    let kinds: Vec<ItemKind> = page
        .changes
        .iter()
        .filter_map(|c| match c {
            SyncChange::Create(i) | SyncChange::Update(i) => Some(i.kind.clone()),
            _ => None,
        })
        .collect();
    assert!(kinds.contains(&ItemKind::Message));
    assert!(kinds.contains(&ItemKind::MeetingRequest));
    assert!(kinds.contains(&ItemKind::MeetingCancellation));

    // An element no schema knows becomes a generic item with its id and name.
    let text = String::from_utf8(b.clone())
        .unwrap()
        .replace("MeetingCancellation", "HologramInvite");
    let page2 = ok::<SyncFolderItems>(text.as_bytes())
        .into_single("SyncFolderItems")
        .unwrap();
    assert_eq!(page2.changes.len(), 6);
    assert_eq!(page2.sync_state, page.sync_state);
    let unknown = page2
        .changes
        .iter()
        .find_map(|c| match c {
            SyncChange::Create(i) if i.kind == ItemKind::Other("HologramInvite".into()) => Some(i),
            _ => None,
        })
        .unwrap();
    assert!(unknown.item_id.is_some());
}

#[test]
fn c04_cross_mailbox_move_without_new_ids_is_success() {
    let Some(b) = case("C04-moveitem-cross-mailbox-empty-items.xml") else {
        return;
    };
    let r = ok::<MoveItem>(&b);
    assert_eq!(r.messages.len(), 2);
    assert!(r.messages.iter().all(|m| m == &Ok(None)), "{r:?}");
}

#[test]
fn c05_move_returns_new_id_and_writes_schema_order() {
    let Some(b) = case("C05-moveitem-new-itemid.txt") else {
        return;
    };
    let txt = String::from_utf8(b).unwrap();
    let moved = ok::<MoveItem>(&wrap(&step_body(&txt, "step 2"), "MoveItem"))
        .into_single("MoveItem")
        .unwrap()
        .unwrap();
    assert_eq!(
        moved,
        ItemId {
            id: "AAMkAGV4L2l0ZW0vMDEwMQ==".into(),
            change_key: Some("EAAAAGNrMDAwMmNrMDAwMg==".into())
        }
    );
    let lookup = ok::<GetItem>(&wrap(&step_body(&txt, "step 4"), "GetItem"));
    assert!(lookup.messages[0].as_ref().unwrap_err().is_not_found());

    let req = MoveItem {
        to: FolderRef::Id(exmux_ews::types::FolderId::new(
            "AAEuAGV4L2ZvbGRlci9hcmNoaXZl",
        )),
        item_ids: vec![ItemId {
            id: "AAMkAGV4L2l0ZW0vMDAwMQ==".into(),
            change_key: Some("EAAAAGNrMDAwMWNrMDAwMQ==".into()),
        }],
        return_new_item_ids: Some(true),
    };
    let bytes =
        String::from_utf8(encode_request(&req, &RequestHeader::default()).unwrap()).unwrap();
    let to = bytes.find("<m:ToFolderId>").unwrap();
    let ids = bytes.find("<m:ItemIds>").unwrap();
    let ret = bytes.find("<m:ReturnNewItemIds>").unwrap();
    assert!(to < ids && ids < ret, "{bytes}");
}

#[test]
fn c07_paging_follows_indexed_paging_offset() {
    let Some(b) = case("C07-paging-indexed-offset.txt") else {
        return;
    };
    let txt = String::from_utf8(b).unwrap();
    let mut offset = 0;
    let mut ids = Vec::new();
    let mut requests = 0;
    for step in ["step 2", "step 4", "step 6"] {
        requests += 1;
        let body = wrap(&step_body(&txt, step), "FindItem");
        let reader = FindItemReader::new(&body).unwrap();
        let paging = reader.paging;
        for item in reader {
            ids.push(item.unwrap().item_id.unwrap().id);
        }
        match paging.next_offset("FindItem", offset).unwrap() {
            Some(next) => offset = next,
            None => break,
        }
    }
    ids.sort();
    ids.dedup();
    assert_eq!((ids.len(), requests), (12, 3));

    // An offset that does not advance while more items remain is an error, not the end.
    let stalled = exmux_ews::ops::Paging {
        indexed_paging_offset: Some(5),
        total_items_in_view: Some(12),
        includes_last_item_in_range: false,
    };
    assert!(matches!(
        stalled.next_offset("FindItem", 5),
        Err(EwsError::PagingStalled { offset: 5, .. })
    ));
}

#[test]
fn c09_attribute_only_messagexml_names_the_property() {
    let Some(b) = case("C09-messagexml-attribute-only-fault.xml") else {
        return;
    };
    match decode_response::<FindItem>(500, Some("text/xml; charset=utf-8"), &b) {
        Err(EwsError::Fault(f)) => {
            assert_eq!(f.http_status, 500);
            assert_eq!(f.response_code, Some(ResponseCode::ErrorInvalidPropertySet));
            assert_eq!(
                f.message_xml.offending_property(),
                Some("calendar:IsMeeting")
            );
            assert!(f.message.as_deref().is_some_and(|m| !m.is_empty()));
            assert!(f.to_string().contains("calendar:IsMeeting"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn c10_invalid_sync_state_is_a_distinct_error() {
    let Some(b) = case("C10-invalid-syncstate.xml") else {
        return;
    };
    let r = ok::<SyncFolderItems>(&b);
    let e = r.into_single("SyncFolderItems").unwrap_err();
    assert!(e.is_invalid_sync_state());
    assert!(e.throttle_hint().is_none());
    // The incremental reader reports it the same way and yields no changes.
    let e = SyncItemsReader::new(&b).err().unwrap();
    assert!(e.is_invalid_sync_state());
}

#[test]
fn c11_per_item_results_in_request_order() {
    let Some(b) = case("C11-sync-item-vanished.txt") else {
        return;
    };
    let txt = String::from_utf8(b).unwrap();
    let page = ok::<SyncFolderItems>(&wrap(&step_body(&txt, "step 2"), "SyncFolderItems"))
        .into_single("SyncFolderItems")
        .unwrap();
    assert_eq!(page.sync_state, "H4sIAHN5bmNzdGF0ZS1wbGFjZWhvbGRlci0wMDAy");
    assert_eq!(page.changes.len(), 2);
    let fetched = ok::<GetItem>(&wrap(&step_body(&txt, "step 4"), "GetItem"));
    assert_eq!(fetched.messages.len(), 2);
    let gone = fetched.messages[0].as_ref().unwrap_err();
    assert!(gone.is_not_found());
    assert_eq!(gone.index, 0);
    let y = &fetched.messages[1].as_ref().unwrap()[0];
    assert_eq!(y.item_id.as_ref().unwrap().id, "AAMkAGV4L2l0ZW0vMDAwOQ==");
    assert_eq!(y.subject.as_deref(), Some("Quarterly numbers"));
}

#[test]
fn c13_conflict_is_typed_and_keeps_conflict_count() {
    let Some(b) = case("C13-changekey-conflict.txt") else {
        return;
    };
    let txt = String::from_utf8(b).unwrap();
    let r = ok::<SendItem>(&wrap(&step_body(&txt, "step 8"), "SendItem"));
    let e = r.messages[0].as_ref().unwrap_err();
    assert!(e.is_conflict());
    assert_eq!(e.code, ResponseCode::ErrorIrresolvableConflict);
    // The UpdateItem variant carries ConflictResults.
    let update = r#"<m:UpdateItemResponseMessage ResponseClass="Error"><m:MessageText>conflict</m:MessageText><m:ResponseCode>ErrorIrresolvableConflict</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:Items/><m:ConflictResults><t:Count>1</t:Count></m:ConflictResults></m:UpdateItemResponseMessage>"#;
    let r = ok::<UpdateItem>(&wrap(update, "UpdateItem"));
    let e = r.messages[0].as_ref().unwrap_err();
    assert!(e.is_conflict());
    assert_eq!(e.conflict_count, Some(1));
}

#[test]
fn c15_throttling_inside_a_response_message() {
    let Some(b) = case("C15-serverbusy-responsemessage.xml") else {
        return;
    };
    let r = ok::<GetItem>(&b);
    assert!(r.messages[0].is_ok());
    let e = r.messages[1].as_ref().unwrap_err();
    assert_eq!(e.code, ResponseCode::ErrorServerBusy);
    let hint = e.throttle_hint().unwrap();
    assert_eq!(hint.back_off_millis, Some(5000));
    assert!(hint.lower_concurrency);
    // The text fallback alone gives the same value.
    let mut only_text = e.clone();
    only_text.message_xml.elements.clear();
    only_text.text = Some("... Suggested backoff time 5000 ms.".into());
    assert_eq!(
        only_text.throttle_hint().unwrap().back_off_millis,
        Some(5000)
    );
}

#[test]
fn c16_soap_fault_on_http_500_with_backoff() {
    let Some(b) = case("C16-serverbusy-soapfault-http500.xml") else {
        return;
    };
    let e = decode_response::<FindItem>(500, Some("text/xml; charset=utf-8"), &b).unwrap_err();
    let EwsError::Fault(f) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(f.http_status, 500);
    assert_eq!(f.response_code, Some(ResponseCode::ErrorServerBusy));
    assert_eq!(e.throttle_hint().unwrap().back_off_millis, Some(297_418));
}

#[test]
fn c18_subscription_error_whatever_connection_status() {
    let Some(b) = case("C18-invalid-subscription-status-ok.xml") else {
        return;
    };
    let r = ok::<GetStreamingEvents>(&b);
    let e = r.messages[0].as_ref().unwrap_err();
    assert_eq!(e.class, ResponseClass::Error);
    assert_eq!(e.code, ResponseCode::ErrorInvalidSubscription);
    assert!(e.is_subscription_lost());
    assert_eq!(
        e.subscription_ids,
        vec!["HwBtYngwMS5leGFtcGxlLnRlc3QQAAAAc3ViLTAwMDEtcGxhY2Vob2xkZXI=".to_string()]
    );
}

/// The chunks of a raw chunked HTTP response, as separate byte strings.
fn chunks(raw: &[u8]) -> Vec<Vec<u8>> {
    let start = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut rest = &raw[start..];
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16).unwrap();
        rest = &rest[eol + 2..];
        if size == 0 {
            break;
        }
        out.push(rest[..size].to_vec());
        rest = &rest[size + 2..];
    }
    out
}

#[test]
fn c19_streaming_envelopes_across_chunks() {
    let Some(b) = case("C19-streaming-multi-envelope.txt") else {
        return;
    };
    let marker = b"----- raw HTTP response follows -----";
    let at = b.windows(marker.len()).position(|w| w == marker).unwrap();
    let at = at + b[at..].iter().position(|&c| c == b'\n').unwrap() + 1;
    let chunks = chunks(&b[at..]);
    assert!(chunks.len() >= 3);
    let mut reader = StreamingReader::new();
    let mut docs = Vec::new();
    for c in &chunks {
        reader.push(c);
        while let Some(m) = reader.next_message().unwrap() {
            docs.push(m.into_single("GetStreamingEvents").unwrap());
        }
    }
    assert_eq!(docs.len(), 3);
    let kinds: Vec<EventKind> = docs[0]
        .notifications
        .iter()
        .flat_map(|n| n.events.iter().map(|e| e.kind))
        .collect();
    for k in [EventKind::NewMail, EventKind::Created, EventKind::Modified] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    assert!(docs[1].notifications.is_empty());
    assert_eq!(docs[1].connection_status, Some(ConnectionStatus::Ok));
    assert_eq!(docs[2].connection_status, Some(ConnectionStatus::Closed));

    // Any split gives the same documents.
    let whole: Vec<u8> = chunks.concat();
    for size in [1, 2, 3, 17, 64, 1000] {
        let mut reader = StreamingReader::new();
        let mut n = 0;
        for piece in whole.chunks(size) {
            reader.push(piece);
            while let Some(m) = reader.next_message().unwrap() {
                assert_eq!(m.into_single("GetStreamingEvents").unwrap(), docs[n]);
                n += 1;
            }
        }
        assert_eq!(n, 3, "piece size {size}");
    }
}

#[test]
fn c21_events_are_hints_with_old_ids_and_coalesce() {
    let Some(b) = case("C21-deleted-then-moved-events.txt") else {
        return;
    };
    let txt = String::from_utf8(b).unwrap();
    let events_between = |from: &str, to: &str| -> String {
        let start = txt.find(from).unwrap();
        let start = start + txt[start..].find('\n').unwrap();
        let end = start + txt[start..].find(to).unwrap();
        txt[start..end].to_string()
    };
    let notify = |events: &str| {
        wrap(
            &format!(
                "<m:GetEventsResponseMessage ResponseClass=\"Success\"><m:ResponseCode>NoError</m:ResponseCode><m:Notification><t:SubscriptionId>sub-0001</t:SubscriptionId><t:MoreEvents>false</t:MoreEvents>{events}</m:Notification></m:GetEventsResponseMessage>"
            ),
            "GetEvents",
        )
    };
    let first = ok::<GetEvents>(&notify(&events_between(
        "t=0s   < GetEvents",
        "t=0s   > GetItem",
    )))
    .into_single("GetEvents")
    .unwrap();
    assert_eq!(first.events[0].kind, EventKind::Deleted);
    assert!(!first.events[0].may_fetch());
    assert_eq!(first.events[1].kind, EventKind::Modified);
    assert!(first.events[1].folder_id.is_some());
    let second = ok::<GetEvents>(&notify(&events_between("t=60s  < GetEvents", "--- part B")))
        .into_single("GetEvents")
        .unwrap();
    let moved = &second.events[0];
    assert_eq!(moved.kind, EventKind::Moved);
    assert_eq!(
        moved.old_item_id.as_ref().unwrap().id,
        first.events[0].item_id.as_ref().unwrap().id
    );
    assert_eq!(
        moved.item_id.as_ref().unwrap().id,
        "AAMkAGV4L2l0ZW0vMDEwMg=="
    );
    assert!(moved.old_parent_folder_id.is_some());

    // Part B: Modified, Modified, Deleted on one item plus a folder Modified.
    let item = |kind| {
        let mut e = Event::new(kind);
        e.item_id = Some(ItemId::new("AAMkAGV4L2l0ZW0vMDAwNw=="));
        e
    };
    let mut folder = Event::new(EventKind::Modified);
    folder.folder_id = Some(exmux_ews::types::FolderId::new("calendar-folder"));
    let batch = vec![
        item(EventKind::Modified),
        item(EventKind::Modified),
        item(EventKind::Deleted),
        folder.clone(),
    ];
    let coalesced = coalesce_events(&batch);
    assert_eq!(coalesced.len(), 2);
    assert_eq!(coalesced[0].kind, EventKind::Deleted);
    assert!(!coalesced[0].may_fetch());
    assert_eq!(coalesced[1], folder);
    // A move re-keys: an earlier event on the old id is dropped.
    let coalesced = coalesce_events(&[first.events[0].clone(), moved.clone()]);
    assert_eq!(coalesced, vec![moved.clone()]);
}

#[test]
fn streaming_subscribe_request_shape() {
    let req = Subscribe {
        kind: SubscriptionKind::Streaming,
        folders: vec![FolderRef::distinguished(DistinguishedFolder::Inbox)],
        event_types: vec![EventType::NewMail, EventType::Created],
    };
    let body = String::from_utf8(encode_request(&req, &RequestHeader::default()).unwrap()).unwrap();
    assert!(body.contains("<m:StreamingSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id=\"inbox\"/></t:FolderIds>"));
    assert!(body.contains("<t:RequestServerVersion Version=\"Exchange2013_SP1\"/>"));
}

use exmux_ews::types::EventType;
