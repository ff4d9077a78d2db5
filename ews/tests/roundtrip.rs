//! Write-then-parse round trips for every operation in both directions, schema
//! validation of what this crate writes (xmllint against the official 2010 SP2 schema),
//! and property tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use exmux_ews::error::{MessageError, MessageXml, ResponseClass, ResponseCode};
use exmux_ews::operation::{
    EwsOperation, EwsServerOperation, RequestHeader, Response, decode_request, decode_response,
    encode_request, encode_response,
};
use exmux_ews::ops::folders::*;
use exmux_ews::ops::items::*;
use exmux_ews::ops::notify::*;
use exmux_ews::ops::sync::*;
use exmux_ews::ops::{IndexedPage, Paging, Shape};
use exmux_ews::sample::mail_item;
use exmux_ews::types::*;
use proptest::prelude::*;

fn inbox() -> FolderRef {
    FolderRef::distinguished(DistinguishedFolder::Inbox)
}

fn id(n: u32) -> ItemId {
    ItemId {
        id: format!("AAMkAGV4L2l0ZW0v{n:04}Q=="),
        change_key: Some(format!("EAAAAGNr{n:04}")),
    }
}

fn fid(n: u32) -> FolderId {
    FolderId {
        id: format!("AAEuAGV4L2ZvbGRlci{n:04}"),
        change_key: Some("AQAAAA==".into()),
    }
}

fn not_found(index: usize) -> MessageError {
    MessageError {
        class: ResponseClass::Error,
        code: ResponseCode::ErrorItemNotFound,
        text: Some("The specified object was not found in the store.".into()),
        message_xml: MessageXml::default(),
        index,
        conflict_count: None,
        subscription_ids: Vec::new(),
    }
}

fn folder(n: u32) -> Folder {
    let mut f = Folder::named(&format!("Folder {n}"));
    f.folder_id = Some(fid(n));
    f.parent_folder_id = Some(fid(0));
    f.folder_class = Some("IPF.Note".into());
    f.total_count = Some(n);
    f.child_folder_count = Some(0);
    f.unread_count = Some(1);
    f
}

/// The SOAP body element of an envelope this crate wrote.
fn body_of(envelope: &[u8]) -> String {
    let s = String::from_utf8(envelope.to_vec()).unwrap();
    let start = s.find("<soap:Body>").unwrap() + "<soap:Body>".len();
    let end = s.rfind("</soap:Body>").unwrap();
    s[start..end].to_string()
}

/// Validates a body element against the schema; `None` when xmllint or the schema is
/// missing outside CI.
fn xmllint(body: &str) -> Option<Result<(), String>> {
    let schema = common::shared("schema/ews")?.join("messages.xsd");
    let dir = std::env::temp_dir().join(format!("exmux-ews-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!(
        "body-{}.xml",
        body.len() ^ (body.as_ptr() as usize)
    ));
    std::fs::write(&file, body).unwrap();
    let out = match Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(&schema)
        .arg(&file)
        .output()
    {
        Ok(o) => o,
        Err(_) if std::env::var_os("CI").is_none() => return None,
        Err(e) => panic!("xmllint is required under CI: {e}"),
    };
    let _ = std::fs::remove_file(&file);
    if out.status.success() {
        Some(Ok(()))
    } else {
        Some(Err(String::from_utf8_lossy(&out.stderr).into_owned()))
    }
}

fn check_schema(what: &str, envelope: &[u8]) {
    if let Some(result) = xmllint(&body_of(envelope)) {
        result.unwrap_or_else(|e| panic!("{what} does not validate:\n{e}\n{}", body_of(envelope)));
    }
}

/// Request round trip (client writes, emulator reads) plus schema validation.
fn request<O: EwsServerOperation + PartialEq + std::fmt::Debug>(op: O, validate: bool) {
    let bytes = encode_request(&op, &RequestHeader::default()).unwrap();
    let (req, parsed) = decode_request::<O>(&bytes).unwrap();
    assert_eq!(req.version, Some(ServerVersion::Exchange2013_SP1));
    assert_eq!(parsed, op, "{}", O::NAME);
    if validate {
        check_schema(O::NAME, &bytes);
    }
}

/// Response round trip (emulator writes, client reads) plus schema validation.
fn response<O, T>(r: Response<T>, validate: bool)
where
    O: EwsServerOperation<Response = Response<T>>,
    T: Clone + PartialEq + std::fmt::Debug,
{
    let info = ServerVersionInfo {
        major: 15,
        minor: 1,
        major_build: 2507,
        minor_build: 57,
        version: Some("V2017_07_11".into()),
    };
    let bytes = encode_response::<O>(&r, Some(&info)).unwrap();
    let parsed = decode_response::<O>(200, Some("text/xml; charset=utf-8"), &bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", O::NAME));
    assert_eq!(
        parsed,
        Response {
            server_version: Some(info),
            messages: r.messages.clone()
        },
        "{}",
        O::NAME
    );
    if validate {
        check_schema(&format!("{} response", O::NAME), &bytes);
    }
}

fn shape(base: BaseShape) -> Shape {
    Shape {
        base,
        include_mime_content: false,
        additional: vec![PropertyPath::field("item:Subject")],
    }
}

#[test]
fn requests_round_trip_and_validate() {
    request(
        GetFolder {
            shape: Shape::base(BaseShape::AllProperties),
            folder_ids: vec![inbox(), FolderRef::Id(fid(1))],
        },
        true,
    );
    request(
        FindFolder {
            traversal: Traversal::Deep,
            shape: Shape::base(BaseShape::Default),
            page: Some(IndexedPage {
                max_entries: 100,
                offset: 0,
            }),
            parents: vec![FolderRef::distinguished(DistinguishedFolder::MsgFolderRoot)],
        },
        true,
    );
    request(
        SyncFolderHierarchy {
            shape: Shape::base(BaseShape::IdOnly),
            folder: None,
            sync_state: Some("H4sIAAA=".into()),
        },
        true,
    );
    request(
        SyncFolderItems {
            shape: shape(BaseShape::IdOnly),
            folder: inbox(),
            sync_state: Some("H4sIAAA=".into()),
            ignore: vec![id(1)],
            max_changes: 512,
        },
        true,
    );
    request(
        FindItem {
            traversal: Traversal::Shallow,
            shape: shape(BaseShape::IdOnly),
            page: Some(IndexedPage {
                max_entries: 5,
                offset: 10,
            }),
            parents: vec![inbox()],
        },
        true,
    );
    request(
        GetItem {
            shape: Shape {
                base: BaseShape::IdOnly,
                include_mime_content: true,
                additional: vec![PropertyPath::field("message:IsRead")],
            },
            item_ids: vec![id(1), id(2)],
        },
        true,
    );
    let mut new = Item::new(ItemKind::Message);
    new.mime_content = Some("U3ViamVjdDogaGkNCg0KYm9keQ==".into());
    new.is_read = Some(false);
    request(
        CreateItem {
            disposition: Some(MessageDisposition::SaveOnly),
            saved_folder: Some(inbox()),
            items: vec![new.clone(), new],
        },
        true,
    );
    request(
        UpdateItem {
            conflict_resolution: ConflictResolution::AutoResolve,
            disposition: MessageDisposition::SaveOnly,
            changes: vec![(
                id(1),
                vec![
                    ItemUpdate::SetIsRead(true),
                    ItemUpdate::SetCategories(vec!["A".into(), "B".into()]),
                    ItemUpdate::SetImportance("High".into()),
                    ItemUpdate::Delete(PropertyPath::field("item:Categories")),
                ],
            )],
        },
        true,
    );
    // t:Flag (item:Flag) is an Exchange 2013 element, outside the 2010 SP2 schema.
    request(
        UpdateItem {
            conflict_resolution: ConflictResolution::NeverOverwrite,
            disposition: MessageDisposition::SaveOnly,
            changes: vec![(id(1), vec![ItemUpdate::SetFlagStatus("Flagged".into())])],
        },
        false,
    );
    for dt in [
        DeleteType::HardDelete,
        DeleteType::SoftDelete,
        DeleteType::MoveToDeletedItems,
    ] {
        request(
            DeleteItem {
                delete_type: dt,
                item_ids: vec![id(3)],
            },
            true,
        );
    }
    request(
        MoveItem {
            to: FolderRef::distinguished(DistinguishedFolder::DeletedItems),
            item_ids: vec![id(4)],
            return_new_item_ids: Some(true),
        },
        true,
    );
    request(
        CopyItem {
            to: FolderRef::Distinguished {
                name: DistinguishedFolder::Inbox,
                mailbox: Some("user2@example.test".into()),
            },
            item_ids: vec![id(5)],
            return_new_item_ids: None,
        },
        true,
    );
    request(
        Subscribe {
            kind: SubscriptionKind::Pull {
                watermark: Some("AQAAAA==".into()),
                timeout_minutes: 10,
            },
            folders: vec![inbox()],
            event_types: vec![
                EventType::NewMail,
                EventType::Created,
                EventType::Deleted,
                EventType::Modified,
                EventType::Moved,
                EventType::Copied,
            ],
        },
        true,
    );
    request(
        Subscribe {
            kind: SubscriptionKind::Streaming,
            folders: vec![],
            event_types: vec![EventType::Created],
        },
        true,
    );
    request(
        GetEvents {
            subscription_id: "EwAAAAoAAAA=".into(),
            watermark: "AQAAAA==".into(),
        },
        true,
    );
    request(
        GetStreamingEvents {
            subscription_ids: vec!["a".into(), "b".into()],
            connection_timeout_minutes: 30,
        },
        true,
    );
    request(
        Unsubscribe {
            subscription_id: "EwAAAAoAAAA=".into(),
        },
        true,
    );
    request(
        SendItem {
            item_ids: vec![id(6)],
            saved_folder: Some(FolderRef::distinguished(DistinguishedFolder::SentItems)),
            save_copy: true,
        },
        true,
    );
    request(
        CreateFolder {
            parent: FolderRef::distinguished(DistinguishedFolder::MsgFolderRoot),
            folders: vec![Folder::named("Projects")],
        },
        true,
    );
    request(
        UpdateFolder {
            renames: vec![(FolderRef::Id(fid(2)), "Renamed".into())],
        },
        true,
    );
    request(
        MoveFolder {
            to: inbox(),
            folder_ids: vec![FolderRef::Id(fid(3))],
        },
        true,
    );
    request(
        DeleteFolder {
            delete_type: DeleteType::HardDelete,
            folder_ids: vec![FolderRef::Id(fid(3))],
        },
        true,
    );
    request(
        ConvertId {
            destination: IdFormat::EntryId,
            source_ids: vec![AlternateId {
                format: IdFormat::EwsId,
                id: "AAMkAGV4".into(),
                mailbox: "user1@example.test".into(),
            }],
        },
        true,
    );
}

#[test]
fn requests_reject_values_the_server_cannot_take() {
    let bad = SyncFolderItems {
        shape: Shape::base(BaseShape::IdOnly),
        folder: inbox(),
        sync_state: None,
        ignore: vec![],
        max_changes: 0,
    };
    assert!(encode_request(&bad, &RequestHeader::default()).is_err());
    assert!(
        encode_request(
            &GetItem {
                shape: Shape::base(BaseShape::IdOnly),
                item_ids: vec![]
            },
            &RequestHeader::default()
        )
        .is_err()
    );
    let gse = GetStreamingEvents {
        subscription_ids: vec!["a".into()],
        connection_timeout_minutes: 31,
    };
    assert!(encode_request(&gse, &RequestHeader::default()).is_err());
}

#[test]
fn impersonation_header_is_written_and_read() {
    let header = RequestHeader {
        version: ServerVersion::Exchange2010_SP2,
        impersonation: Some(Impersonation::PrimarySmtpAddress(
            "user2@example.test".into(),
        )),
    };
    let bytes = encode_request(
        &Unsubscribe {
            subscription_id: "x".into(),
        },
        &header,
    )
    .unwrap();
    let (req, _) = decode_request::<Unsubscribe>(&bytes).unwrap();
    assert_eq!(req.version, Some(ServerVersion::Exchange2010_SP2));
    assert_eq!(req.impersonation, header.impersonation);
}

#[test]
fn responses_round_trip_and_validate() {
    response::<GetFolder, _>(
        Response::new(vec![Ok(vec![folder(1)]), Err(not_found(1))]),
        true,
    );
    response::<FindFolder, _>(
        Response::new(vec![Ok(FindFolderResult {
            paging: Paging {
                indexed_paging_offset: Some(2),
                total_items_in_view: Some(9),
                includes_last_item_in_range: false,
            },
            folders: vec![folder(1), folder(2)],
        })]),
        true,
    );
    response::<SyncFolderHierarchy, _>(
        Response::new(vec![Ok(HierarchySync {
            sync_state: "H4sI".into(),
            includes_last: true,
            changes: vec![
                HierarchyChange::Create(folder(1)),
                HierarchyChange::Update(folder(2)),
                HierarchyChange::Delete(fid(3)),
            ],
        })]),
        true,
    );
    let mut plain = mail_item(7);
    plain.flag_status = None;
    let mut meeting = mail_item(8);
    meeting.kind = ItemKind::MeetingRequest;
    meeting.flag_status = None;
    meeting.categories = vec!["x".into(), "y".into()];
    response::<SyncFolderItems, _>(
        Response::new(vec![Ok(ItemSync {
            sync_state: "H4sI".into(),
            includes_last: false,
            changes: vec![
                SyncChange::Create(plain.clone()),
                SyncChange::Update(meeting),
                SyncChange::Delete(id(1)),
                SyncChange::ReadFlagChange {
                    item_id: id(2),
                    is_read: true,
                },
            ],
        })]),
        true,
    );
    response::<SyncFolderItems, _>(
        Response::new(vec![Err(MessageError {
            code: ResponseCode::ErrorInvalidSyncStateData,
            ..not_found(0)
        })]),
        true,
    );
    response::<FindItem, _>(
        Response::new(vec![Ok(FindItemPage {
            paging: Paging {
                indexed_paging_offset: Some(1),
                total_items_in_view: Some(3),
                includes_last_item_in_range: false,
            },
            items: vec![plain.clone()],
        })]),
        true,
    );
    response::<GetItem, _>(
        Response::new(vec![Err(not_found(0)), Ok(vec![plain.clone()])]),
        true,
    );
    response::<CreateItem, _>(
        Response::new(vec![Ok(vec![Item {
            item_id: Some(id(9)),
            ..Item::new(ItemKind::Message)
        }])]),
        true,
    );
    response::<UpdateItem, _>(
        Response::new(vec![Ok(UpdateResult {
            item_id: Some(id(9)),
            conflict_count: 0,
        })]),
        true,
    );
    response::<DeleteItem, _>(Response::new(vec![Ok(()), Err(not_found(1))]), true);
    response::<MoveItem, _>(Response::new(vec![Ok(Some(id(10))), Ok(None)]), true);
    response::<CopyItem, _>(Response::new(vec![Ok(Some(id(11)))]), true);
    response::<Subscribe, _>(
        Response::new(vec![Ok(Subscription {
            subscription_id: "EwAAAAoAAAA=".into(),
            watermark: Some("AQAAAA==".into()),
        })]),
        true,
    );
    let mut created = Event::new(EventKind::Created);
    created.timestamp = Some(time::macros::datetime!(2026-12-04 20:13:20 UTC));
    created.watermark = Some("AQAAAB==".into());
    created.item_id = Some(id(12));
    created.parent_folder_id = Some(fid(1));
    let mut moved = Event::new(EventKind::Moved);
    moved.timestamp = created.timestamp;
    moved.item_id = Some(id(13));
    moved.parent_folder_id = Some(fid(2));
    moved.old_item_id = Some(id(12));
    moved.old_parent_folder_id = Some(fid(1));
    let mut folder_mod = Event::new(EventKind::Modified);
    folder_mod.timestamp = created.timestamp;
    folder_mod.folder_id = Some(fid(1));
    folder_mod.parent_folder_id = Some(fid(0));
    folder_mod.unread_count = Some(3);
    let notification = Notification {
        subscription_id: "EwAAAAoAAAA=".into(),
        previous_watermark: Some("AQAAAA==".into()),
        more_events: false,
        events: vec![created, moved, folder_mod],
    };
    response::<GetEvents, _>(Response::new(vec![Ok(notification.clone())]), true);
    response::<GetStreamingEvents, _>(
        Response::new(vec![Ok(StreamingEvents {
            notifications: vec![notification],
            connection_status: Some(ConnectionStatus::Ok),
        })]),
        true,
    );
    response::<Unsubscribe, _>(Response::new(vec![Ok(())]), true);
    response::<SendItem, _>(Response::new(vec![Ok(())]), true);
    response::<CreateFolder, _>(Response::new(vec![Ok(vec![folder(5)])]), true);
    response::<UpdateFolder, _>(Response::new(vec![Ok(vec![folder(5)])]), true);
    response::<MoveFolder, _>(Response::new(vec![Ok(vec![folder(5)])]), true);
    response::<DeleteFolder, _>(Response::new(vec![Ok(())]), true);
    response::<ConvertId, _>(
        Response::new(vec![Ok(Some(AlternateId {
            format: IdFormat::EntryId,
            id: "AAAAAB==".into(),
            mailbox: "user1@example.test".into(),
        }))]),
        true,
    );
}

#[test]
fn streaming_error_message_round_trips() {
    let err = MessageError {
        code: ResponseCode::ErrorInvalidSubscription,
        subscription_ids: vec!["sub-1".into()],
        ..not_found(0)
    };
    let r: Response<StreamingEvents> = Response::new(vec![Err(err)]);
    let bytes = encode_response::<GetStreamingEvents>(&r, None).unwrap();
    let back = decode_response::<GetStreamingEvents>(200, None, &bytes).unwrap();
    let e = back.messages[0].as_ref().unwrap_err();
    assert!(e.is_subscription_lost());
    assert_eq!(e.subscription_ids, vec!["sub-1".to_string()]);
    check_schema("GetStreamingEvents error", &bytes);
}

fn arb_id() -> impl Strategy<Value = ItemId> {
    (
        "[A-Za-z0-9+/]{8,60}={0,2}",
        proptest::option::of("[A-Za-z0-9+/]{4,30}={0,2}"),
    )
        .prop_map(|(id, change_key)| ItemId { id, change_key })
}

/// Text as it comes back: characters XML 1.0 cannot carry become U+FFFD.
fn as_read(s: &str) -> String {
    s.chars()
        .map(|c| if matches!(c, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}') { '\u{FFFD}' } else { c })
        .collect()
}

fn arb_item() -> impl Strategy<Value = Item> {
    (
        arb_id(),
        any::<String>(),
        proptest::option::of(any::<bool>()),
        proptest::collection::vec("[^\u{0}-\u{1F}]{1,12}", 0..3),
        0i64..4_000_000_000i64,
    )
        .prop_map(|(id, subject, is_read, categories, secs)| {
            let mut item = Item::new(ItemKind::Message);
            item.item_id = Some(id);
            item.subject = Some(subject);
            item.is_read = is_read;
            item.categories = categories;
            item.date_time_received =
                Some(time::OffsetDateTime::from_unix_timestamp(secs).unwrap());
            item
        })
}

fn arb_change() -> impl Strategy<Value = SyncChange> {
    prop_oneof![
        arb_item().prop_map(SyncChange::Create),
        arb_item().prop_map(SyncChange::Update),
        arb_id().prop_map(SyncChange::Delete),
        (arb_id(), any::<bool>())
            .prop_map(|(item_id, is_read)| SyncChange::ReadFlagChange { item_id, is_read }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn sync_page_round_trips(changes in proptest::collection::vec(arb_change(), 0..12), state in "[A-Za-z0-9+/=]{1,80}", last in any::<bool>()) {
        let page = ItemSync { sync_state: state, includes_last: last, changes };
        let bytes = encode_response::<SyncFolderItems>(&Response::new(vec![Ok(page.clone())]), None).unwrap();
        let back = decode_response::<SyncFolderItems>(200, None, &bytes).unwrap().into_single("SyncFolderItems").unwrap();
        let mut expected = page;
        for c in &mut expected.changes {
            if let SyncChange::Create(i) | SyncChange::Update(i) = c {
                i.subject = i.subject.as_deref().map(as_read);
            }
        }
        prop_assert_eq!(back, expected);
    }

    #[test]
    fn item_ids_are_kept_exactly(ids in proptest::collection::vec(arb_id(), 1..8)) {
        let op = GetItem { shape: Shape::base(BaseShape::IdOnly), item_ids: ids.clone() };
        let bytes = encode_request(&op, &RequestHeader::default()).unwrap();
        let (_, back) = decode_request::<GetItem>(&bytes).unwrap();
        prop_assert_eq!(back.item_ids, ids);
    }

    #[test]
    fn response_codes_parse_whatever_the_whitespace(code in "[A-Za-z]{1,30}", pad in "[ \t\r\n]{0,4}") {
        let parsed = ResponseCode::parse(&format!("{pad}{code}{pad}"));
        prop_assert_eq!(parsed.as_str(), code.as_str());
    }
}

#[test]
fn request_write_body_is_deterministic() {
    let op = GetEvents {
        subscription_id: "s".into(),
        watermark: "w".into(),
    };
    let mut w = exmux_ews::XmlWriter::new();
    op.write_body(&mut w).unwrap();
    assert_eq!(
        String::from_utf8(w.into_bytes()).unwrap(),
        format!(
            "<m:GetEvents xmlns:m=\"{}\" xmlns:t=\"{}\"><m:SubscriptionId>s</m:SubscriptionId><m:Watermark>w</m:Watermark></m:GetEvents>",
            exmux_ews::xml::NS_MESSAGES,
            exmux_ews::xml::NS_TYPES
        )
    );
}

#[test]
fn response_without_soap_header_parses() {
    let bytes = encode_response::<Unsubscribe>(&Response::new(vec![Ok(())]), None).unwrap();
    let text = String::from_utf8(bytes)
        .unwrap()
        .replace("<soap:Header></soap:Header>", "");
    assert!(!text.contains("Header"));
    let r = decode_response::<Unsubscribe>(200, None, text.as_bytes()).unwrap();
    assert_eq!(r.server_version, None);
    assert_eq!(r.messages, vec![Ok(())]);
}
