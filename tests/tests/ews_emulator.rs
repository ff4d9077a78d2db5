#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The EWS client against the emulator's EWS front end on 127.0.0.1: every operation,
//! paging, throttling, sync state errors and notifications.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use exmux_core::auth::{BoxFuture, Credentials};
use exmux_core::{ManualClock, Secret};
use exmux_emulator::ews::{BusyShape, EwsFrontEnd, Quirk};
use exmux_emulator::server::{EWS_PATH, Emulator, EmulatorHandle, EmulatorOptions};
use exmux_emulator::store::{NewItem, NewItemContent, WellKnownFolder};
use exmux_ews::client::{EwsClient, Sleeper};
use exmux_ews::ops::IndexedPage;
use exmux_ews::ops::Shape;
use exmux_ews::ops::folders::{
    CreateFolder, DeleteFolder, FindFolder, GetFolder, HierarchyChange, MoveFolder,
    SyncFolderHierarchy, UpdateFolder,
};
use exmux_ews::ops::items::{
    AlternateId, ConvertId, CopyItem, CreateItem, DeleteItem, GetItem, ItemUpdate, MoveItem,
    SendItem, UpdateItem,
};
use exmux_ews::ops::notify::{EventKind, GetEvents, Subscribe, SubscriptionKind, Unsubscribe};
use exmux_ews::ops::sync::{FindItem, SyncChange, SyncFolderItems};
use exmux_ews::types::{
    BaseShape, ConflictResolution, DeleteType, DistinguishedFolder, EventType, Folder, FolderRef,
    IdFormat, Item, ItemId, ItemKind, MessageDisposition, PropertyPath, Traversal,
};
use exmux_ews::{EwsError, ResponseCode};

/// A sleeper that advances the test's clock instead of waiting.
#[derive(Debug, Clone)]
struct ClockSleeper {
    clock: ManualClock,
    slept: Arc<Mutex<Vec<Duration>>>,
}

impl Sleeper for ClockSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        self.slept.lock().unwrap().push(duration);
        self.clock.advance(duration);
        Box::pin(async {})
    }
}

struct Setup {
    emulator: EmulatorHandle,
    front_end: EwsFrontEnd,
    client: EwsClient,
    slept: Arc<Mutex<Vec<Duration>>>,
}

async fn setup() -> Setup {
    let clock = ManualClock::default();
    let emulator = Emulator::start(EmulatorOptions {
        tls: false,
        clock: Arc::new(clock.clone()),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    let front_end = EwsFrontEnd::install(&emulator);
    let sleeper = ClockSleeper {
        clock: clock.clone(),
        slept: Arc::default(),
    };
    let slept = Arc::clone(&sleeper.slept);
    let client = EwsClient::builder(
        emulator.ews_url(),
        "user1@example.test",
        Credentials::Basic {
            username: "user1@example.test".to_owned(),
            password: Secret::new("password1"),
        },
    )
    .clock(Arc::new(clock))
    .sleeper(Arc::new(sleeper))
    .build()
    .unwrap();
    Setup {
        emulator,
        front_end,
        client,
        slept,
    }
}

fn inbox() -> FolderRef {
    FolderRef::distinguished(DistinguishedFolder::Inbox)
}

fn mime(subject: &str) -> String {
    let text = format!(
        "From: Alice <alice@example.test>\r\nTo: user1@example.test\r\nSubject: {subject}\r\n\
         Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@example.test>\r\n\r\nHello.\r\n"
    );
    base64::engine::general_purpose::STANDARD.encode(text)
}

async fn create_in(client: &EwsClient, folder: FolderRef, subject: &str) -> ItemId {
    let mut item = Item::new(ItemKind::Message);
    item.mime_content = Some(mime(subject));
    item.is_read = Some(false);
    let response = client
        .call(&CreateItem {
            disposition: Some(MessageDisposition::SaveOnly),
            saved_folder: Some(folder),
            items: vec![item],
        })
        .await
        .unwrap();
    let items = response.into_single("CreateItem").unwrap();
    items[0].item_id.clone().unwrap()
}

fn folder_ref(folder: &Folder) -> FolderRef {
    FolderRef::Id(folder.folder_id.clone().unwrap())
}

#[tokio::test]
async fn folder_operations_round_trip() {
    let setup = setup().await;
    let client = &setup.client;

    let inbox_folder = client
        .call(&GetFolder {
            shape: Shape::base(BaseShape::Default),
            folder_ids: vec![inbox()],
        })
        .await
        .unwrap()
        .into_single("GetFolder")
        .unwrap()
        .remove(0);
    assert_eq!(inbox_folder.display_name.as_deref(), Some("Inbox"));
    assert_eq!(inbox_folder.total_count, Some(0));

    let mut created = Vec::new();
    for name in ["Alpha", "Beta", "Gamma"] {
        let folder = client
            .call(&CreateFolder {
                parent: inbox(),
                folders: vec![Folder::named(name)],
            })
            .await
            .unwrap()
            .into_single("CreateFolder")
            .unwrap()
            .remove(0);
        created.push(folder);
    }

    let found = client
        .find_folders_all(&FindFolder {
            traversal: Traversal::Shallow,
            shape: Shape::base(BaseShape::Default),
            page: Some(IndexedPage {
                max_entries: 2,
                offset: 0,
            }),
            parents: vec![inbox()],
        })
        .await
        .unwrap();
    let names: Vec<_> = found
        .iter()
        .filter_map(|f| f.display_name.clone())
        .collect();
    assert_eq!(names, ["Alpha", "Beta", "Gamma"]);

    let hierarchy = client
        .call(&SyncFolderHierarchy {
            shape: Shape::base(BaseShape::Default),
            folder: None,
            sync_state: None,
        })
        .await
        .unwrap()
        .into_single("SyncFolderHierarchy")
        .unwrap();
    assert!(hierarchy.includes_last);
    assert!(hierarchy.changes.len() >= 3);

    client
        .call(&UpdateFolder {
            renames: vec![(folder_ref(&created[0]), "Alpha 2".to_owned())],
        })
        .await
        .unwrap()
        .into_single("UpdateFolder")
        .unwrap();
    client
        .call(&MoveFolder {
            to: folder_ref(&created[0]),
            folder_ids: vec![folder_ref(&created[1])],
        })
        .await
        .unwrap()
        .into_single("MoveFolder")
        .unwrap();
    client
        .call(&DeleteFolder {
            delete_type: DeleteType::HardDelete,
            folder_ids: vec![folder_ref(&created[2])],
        })
        .await
        .unwrap()
        .into_single("DeleteFolder")
        .unwrap();

    let after = client
        .call(&SyncFolderHierarchy {
            shape: Shape::base(BaseShape::Default),
            folder: None,
            sync_state: Some(hierarchy.sync_state.clone()),
        })
        .await
        .unwrap()
        .into_single("SyncFolderHierarchy")
        .unwrap();
    let deleted: Vec<_> = after
        .changes
        .iter()
        .filter_map(|change| match change {
            HierarchyChange::Delete(id) => Some(id.id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, [created[2].folder_id.clone().unwrap().id]);
    let renamed = after.changes.iter().any(|change| {
        matches!(change, HierarchyChange::Update(f) if f.display_name.as_deref() == Some("Alpha 2"))
    });
    assert!(renamed, "the rename is an update: {:?}", after.changes);

    let distinguished = client
        .call(&DeleteFolder {
            delete_type: DeleteType::HardDelete,
            folder_ids: vec![inbox()],
        })
        .await
        .unwrap();
    let error = distinguished.messages[0].as_ref().unwrap_err();
    assert_eq!(error.code, ResponseCode::ErrorDeleteDistinguishedFolder);
}

#[tokio::test]
async fn item_operations_round_trip() {
    let setup = setup().await;
    let client = &setup.client;
    let id = create_in(client, inbox(), "first").await;
    assert!(id.change_key.is_some());

    let mut shape = Shape::base(BaseShape::IdOnly);
    shape.include_mime_content = true;
    shape.additional = vec![
        PropertyPath::field("item:Subject"),
        PropertyPath::field("message:IsRead"),
    ];
    let got = client
        .call(&GetItem {
            shape,
            item_ids: vec![id.clone(), ItemId::new("AAMkAA==")],
        })
        .await
        .unwrap();
    let item = &got.messages[0].as_ref().unwrap()[0];
    assert_eq!(item.subject.as_deref(), Some("first"));
    assert_eq!(item.is_read, Some(false));
    let mime_bytes = base64::engine::general_purpose::STANDARD
        .decode(item.mime_content.as_ref().unwrap())
        .unwrap();
    assert!(String::from_utf8_lossy(&mime_bytes).contains("Subject: first"));
    assert_eq!(
        got.messages[1].as_ref().unwrap_err().code,
        ResponseCode::ErrorInvalidIdMalformed,
        "one bad id does not hide the good one"
    );

    let updated = client
        .call(&UpdateItem {
            conflict_resolution: ConflictResolution::NeverOverwrite,
            disposition: MessageDisposition::SaveOnly,
            changes: vec![(
                id.clone(),
                vec![
                    ItemUpdate::SetIsRead(true),
                    ItemUpdate::SetFlagStatus("Flagged".to_owned()),
                    ItemUpdate::SetCategories(vec!["Blue".to_owned()]),
                    ItemUpdate::SetImportance("High".to_owned()),
                ],
            )],
        })
        .await
        .unwrap()
        .into_single("UpdateItem")
        .unwrap();
    let new_id = updated.item_id.unwrap();
    assert_eq!(new_id.id, id.id, "the ItemId stays across updates");
    assert_ne!(new_id.change_key, id.change_key, "the ChangeKey changes");

    let stale = client
        .call(&UpdateItem {
            conflict_resolution: ConflictResolution::NeverOverwrite,
            disposition: MessageDisposition::SaveOnly,
            changes: vec![(id.clone(), vec![ItemUpdate::SetIsRead(false)])],
        })
        .await
        .unwrap();
    let error = stale.messages[0].as_ref().unwrap_err();
    assert!(error.is_conflict(), "{error}");

    let full = client
        .call(&GetItem {
            shape: Shape::base(BaseShape::AllProperties),
            item_ids: vec![new_id.clone()],
        })
        .await
        .unwrap()
        .into_single("GetItem")
        .unwrap()
        .remove(0);
    assert_eq!(full.is_read, Some(true));
    assert_eq!(full.flag_status.as_deref(), Some("Flagged"));
    assert_eq!(full.categories, ["Blue"]);
    assert_eq!(full.importance.as_deref(), Some("High"));

    let drafts = FolderRef::distinguished(DistinguishedFolder::Drafts);
    let moved = client
        .call(&MoveItem {
            to: drafts.clone(),
            item_ids: vec![new_id.clone()],
            return_new_item_ids: None,
        })
        .await
        .unwrap()
        .into_single("MoveItem")
        .unwrap()
        .unwrap();
    assert_ne!(moved.id, new_id.id, "a move gives a new id");
    let old = client
        .call(&GetItem {
            shape: Shape::base(BaseShape::IdOnly),
            item_ids: vec![new_id.clone()],
        })
        .await
        .unwrap();
    assert!(old.messages[0].as_ref().unwrap_err().is_not_found());

    let copy = client
        .call(&CopyItem {
            to: inbox(),
            item_ids: vec![moved.clone()],
            return_new_item_ids: None,
        })
        .await
        .unwrap()
        .into_single("CopyItem")
        .unwrap()
        .unwrap();
    assert_ne!(copy.id, moved.id);

    let converted = client
        .call(&ConvertId {
            destination: IdFormat::EntryId,
            source_ids: vec![AlternateId {
                format: IdFormat::EwsId,
                id: copy.id.clone(),
                mailbox: "user1@example.test".to_owned(),
            }],
        })
        .await
        .unwrap()
        .into_single("ConvertId")
        .unwrap()
        .unwrap();
    let entry = base64::engine::general_purpose::STANDARD
        .decode(&converted.id)
        .unwrap();
    assert_eq!(entry.len(), 70, "a message entry id");
    let back = client
        .call(&ConvertId {
            destination: IdFormat::EwsId,
            source_ids: vec![converted],
        })
        .await
        .unwrap()
        .into_single("ConvertId")
        .unwrap()
        .unwrap();
    assert_eq!(back.id, copy.id);
    assert_eq!(
        exmux_ews::ids::decode_ews_id(&copy.id).unwrap().to_bytes(),
        entry
    );

    for (delete_type, target) in [
        (DeleteType::MoveToDeletedItems, moved.clone()),
        (DeleteType::SoftDelete, copy.clone()),
    ] {
        client
            .call(&DeleteItem {
                delete_type,
                item_ids: vec![target],
            })
            .await
            .unwrap()
            .into_single("DeleteItem")
            .unwrap();
    }
    let deleted_items = client
        .find_items_all(&FindItem {
            traversal: Traversal::Shallow,
            shape: Shape::base(BaseShape::Default),
            page: None,
            parents: vec![FolderRef::distinguished(DistinguishedFolder::DeletedItems)],
        })
        .await
        .unwrap();
    assert_eq!(deleted_items.len(), 1);
    let hard = client
        .call(&DeleteItem {
            delete_type: DeleteType::HardDelete,
            item_ids: vec![deleted_items[0].item_id.clone().unwrap()],
        })
        .await
        .unwrap()
        .into_single("DeleteItem");
    assert!(hard.is_ok());

    let draft = create_in(client, drafts, "draft").await;
    client
        .call(&SendItem {
            item_ids: vec![draft],
            saved_folder: None,
            save_copy: true,
        })
        .await
        .unwrap()
        .into_single("SendItem")
        .unwrap();
    let mut sent = Item::new(ItemKind::Message);
    sent.mime_content = Some(mime("sent directly"));
    let response = client
        .call(&CreateItem {
            disposition: Some(MessageDisposition::SendAndSaveCopy),
            saved_folder: None,
            items: vec![sent],
        })
        .await
        .unwrap()
        .into_single("CreateItem")
        .unwrap();
    assert!(
        response.is_empty(),
        "Exchange returns no item for a sent message"
    );
    let sent_items = client
        .find_items_all(&FindItem {
            traversal: Traversal::Shallow,
            shape: Shape::base(BaseShape::Default),
            page: None,
            parents: vec![FolderRef::distinguished(DistinguishedFolder::SentItems)],
        })
        .await
        .unwrap();
    let subjects: Vec<_> = sent_items
        .iter()
        .filter_map(|i| i.subject.clone())
        .collect();
    assert_eq!(subjects, ["draft", "sent directly"]);
}

#[tokio::test]
async fn find_item_pages_by_offset() {
    let setup = setup().await;
    for n in 0..5 {
        create_in(&setup.client, inbox(), &format!("item{n}")).await;
    }
    let items = setup
        .client
        .find_items_all(&FindItem {
            traversal: Traversal::Shallow,
            shape: Shape::base(BaseShape::Default),
            page: Some(IndexedPage {
                max_entries: 2,
                offset: 0,
            }),
            parents: vec![inbox()],
        })
        .await
        .unwrap();
    let subjects: Vec<_> = items.iter().filter_map(|i| i.subject.clone()).collect();
    assert_eq!(subjects, ["item0", "item1", "item2", "item3", "item4"]);

    let page = setup
        .client
        .call(&FindItem {
            traversal: Traversal::Shallow,
            shape: Shape::base(BaseShape::IdOnly),
            page: Some(IndexedPage {
                max_entries: 2,
                offset: 2,
            }),
            parents: vec![inbox()],
        })
        .await
        .unwrap()
        .into_single("FindItem")
        .unwrap();
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.paging.indexed_paging_offset, Some(4));
    assert_eq!(page.paging.total_items_in_view, Some(5));
    assert!(!page.paging.includes_last_item_in_range);
}

fn sync_request(state: Option<String>, max_changes: u32) -> SyncFolderItems {
    SyncFolderItems {
        shape: Shape::base(BaseShape::IdOnly),
        folder: inbox(),
        sync_state: state,
        ignore: Vec::new(),
        max_changes,
    }
}

#[tokio::test]
async fn sync_folder_items_pages_and_increments() {
    let setup = setup().await;
    let client = &setup.client;
    let mut ids = Vec::new();
    for n in 0..7 {
        ids.push(create_in(client, inbox(), &format!("m{n}")).await);
    }

    let mut pages = Vec::new();
    let state = client
        .sync_folder_items(&sync_request(None, 3), |page| pages.push(page))
        .await
        .unwrap();
    let sizes: Vec<_> = pages.iter().map(|page| page.changes.len()).collect();
    assert_eq!(sizes, [3, 3, 1]);
    assert!(pages.last().unwrap().includes_last);
    assert!(
        pages
            .iter()
            .flat_map(|page| &page.changes)
            .all(|change| matches!(change, SyncChange::Create(_)))
    );

    let unchanged = client
        .call(&sync_request(Some(state.clone()), 10))
        .await
        .unwrap()
        .into_single("SyncFolderItems")
        .unwrap();
    assert!(unchanged.changes.is_empty());

    client
        .call(&DeleteItem {
            delete_type: DeleteType::HardDelete,
            item_ids: vec![ids[0].clone()],
        })
        .await
        .unwrap();
    client
        .call(&UpdateItem {
            conflict_resolution: ConflictResolution::AlwaysOverwrite,
            disposition: MessageDisposition::SaveOnly,
            changes: vec![(
                ItemId::new(ids[1].id.clone()),
                vec![ItemUpdate::SetCategories(vec!["Red".to_owned()])],
            )],
        })
        .await
        .unwrap();
    let mut ignored = sync_request(Some(state), 10);
    ignored.ignore = vec![ItemId::new(ids[0].id.clone())];
    let next = client
        .call(&ignored)
        .await
        .unwrap()
        .into_single("SyncFolderItems")
        .unwrap();
    assert_eq!(next.changes.len(), 1, "the ignored deletion is left out");
    assert!(matches!(&next.changes[0], SyncChange::Update(item)
        if item.item_id.as_ref().unwrap().id == ids[1].id));
}

#[tokio::test]
async fn invalid_sync_state_is_reported() {
    let setup = setup().await;
    let client = &setup.client;
    create_in(client, inbox(), "one").await;

    let corrupt = client
        .call(&sync_request(Some("Z2FyYmFnZQ==".to_owned()), 10))
        .await
        .unwrap()
        .into_single("SyncFolderItems")
        .unwrap_err();
    assert!(corrupt.is_invalid_sync_state(), "{corrupt}");

    let state = client
        .sync_folder_items(&sync_request(None, 10), |_| {})
        .await
        .unwrap();
    {
        let mut store = setup.emulator.store().lock().unwrap();
        let inbox = store.well_known_folder(WellKnownFolder::Inbox).unwrap();
        store.invalidate_sync_states(inbox).unwrap();
    }
    let error = client
        .sync_folder_items(&sync_request(Some(state), 10), |_| {})
        .await
        .unwrap_err();
    assert!(
        error.ews().is_some_and(EwsError::is_invalid_sync_state),
        "{error}"
    );

    setup.front_end.enable(Quirk::AcceptCorruptSyncState);
    let resync = client
        .call(&sync_request(Some("Z2FyYmFnZQ==".to_owned()), 10))
        .await
        .unwrap()
        .into_single("SyncFolderItems")
        .unwrap();
    assert_eq!(
        resync.changes.len(),
        1,
        "the quirk silently restarts from empty"
    );
}

#[tokio::test]
async fn server_busy_fault_is_retried_after_back_off() {
    let setup = setup().await;
    setup
        .emulator
        .faults()
        .server_busy(EWS_PATH, 1, Duration::from_millis(3000));
    let response = setup
        .client
        .call(&GetFolder {
            shape: Shape::base(BaseShape::IdOnly),
            folder_ids: vec![inbox()],
        })
        .await
        .unwrap();
    assert!(response.messages[0].is_ok());
    let slept: Duration = setup.slept.lock().unwrap().iter().sum();
    assert!(slept >= Duration::from_millis(3000), "slept {slept:?}");
}

#[tokio::test]
async fn busy_inside_200_is_retried_after_back_off() {
    let setup = setup().await;
    setup
        .front_end
        .busy_in_response_message(2, Duration::from_millis(5000));
    let page = setup
        .client
        .call(&sync_request(None, 10))
        .await
        .unwrap()
        .into_single("SyncFolderItems")
        .unwrap();
    assert!(page.includes_last);
    let slept: Duration = setup.slept.lock().unwrap().iter().sum();
    assert!(slept >= Duration::from_millis(10_000), "slept {slept:?}");
}

#[tokio::test]
async fn stale_response_quirk_never_reaches_the_client() {
    let setup = setup().await;
    setup.front_end.enable(Quirk::StaleResponseAfterFault);
    let session = {
        let mut store = setup.emulator.store().lock().unwrap();
        setup
            .front_end
            .session_for(&mut store, "user1@example.test")
    };
    create_in(&setup.client, inbox(), "before").await;
    setup
        .emulator
        .store()
        .lock()
        .unwrap()
        .inject_front_end_fault(
            Some(session),
            exmux_emulator::store::FrontEndFault::ServerBusy {
                back_off: Duration::from_millis(100),
            },
        );
    let page = setup
        .client
        .call(&sync_request(None, 10))
        .await
        .unwrap()
        .into_single("SyncFolderItems")
        .unwrap();
    assert_eq!(
        page.changes.len(),
        1,
        "a fresh answer, not the stale CreateItem"
    );
}

#[tokio::test]
async fn pull_subscription_sees_own_changes() {
    let setup = setup().await;
    let client = &setup.client;
    let subscription = client
        .call(&Subscribe {
            kind: SubscriptionKind::Pull {
                watermark: None,
                timeout_minutes: 10,
            },
            folders: vec![inbox()],
            event_types: vec![EventType::Created, EventType::Modified, EventType::Deleted],
        })
        .await
        .unwrap()
        .into_single("Subscribe")
        .unwrap();
    let id = create_in(client, inbox(), "watched").await;

    let notification = client
        .call(&GetEvents {
            subscription_id: subscription.subscription_id.clone(),
            watermark: subscription.watermark.clone().unwrap(),
        })
        .await
        .unwrap()
        .into_single("GetEvents")
        .unwrap();
    let created: Vec<_> = notification
        .events
        .iter()
        .filter(|event| event.kind == EventKind::Created)
        .collect();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].item_id.as_ref().unwrap().id, id.id);
    assert!(created[0].watermark.is_some());

    setup.front_end.enable(Quirk::DuplicateModifiedEvents);
    setup.front_end.enable(Quirk::NoChangeKeysInEvents);
    client
        .call(&UpdateItem {
            conflict_resolution: ConflictResolution::AlwaysOverwrite,
            disposition: MessageDisposition::SaveOnly,
            changes: vec![(
                id.clone(),
                vec![ItemUpdate::SetImportance("Low".to_owned())],
            )],
        })
        .await
        .unwrap();
    let again = client
        .call(&GetEvents {
            subscription_id: subscription.subscription_id.clone(),
            watermark: created[0].watermark.clone().unwrap(),
        })
        .await
        .unwrap()
        .into_single("GetEvents")
        .unwrap();
    let modified: Vec<_> = again
        .events
        .iter()
        .filter(|event| event.kind == EventKind::Modified)
        .collect();
    assert_eq!(modified.len(), 2, "one update, two events under the quirk");
    assert!(
        modified
            .iter()
            .all(|e| e.item_id.as_ref().unwrap().change_key.is_none())
    );
    let hints = exmux_ews::subscription::coalesce_events(&again.events);
    assert_eq!(hints.changed.len(), 1, "the client coalesces them");

    client
        .call(&Unsubscribe {
            subscription_id: subscription.subscription_id.clone(),
        })
        .await
        .unwrap()
        .into_single("Unsubscribe")
        .unwrap();
    let gone = client
        .call(&GetEvents {
            subscription_id: subscription.subscription_id,
            watermark: subscription.watermark.unwrap(),
        })
        .await
        .unwrap();
    assert!(
        gone.messages[0]
            .as_ref()
            .unwrap_err()
            .is_subscription_lost()
    );
}

#[tokio::test]
async fn watermark_quirk_is_tolerated() {
    let setup = setup().await;
    setup.front_end.enable(Quirk::NoWatermarks);
    let subscription = setup
        .client
        .call(&Subscribe {
            kind: SubscriptionKind::Pull {
                watermark: None,
                timeout_minutes: 10,
            },
            folders: Vec::new(),
            event_types: vec![EventType::Created],
        })
        .await
        .unwrap()
        .into_single("Subscribe")
        .unwrap();
    assert_eq!(subscription.watermark, None);
    create_in(&setup.client, inbox(), "no watermark").await;
    let notification = setup
        .client
        .call(&GetEvents {
            subscription_id: subscription.subscription_id,
            watermark: "anything".to_owned(),
        })
        .await
        .unwrap()
        .into_single("GetEvents")
        .unwrap();
    assert!(notification.events.iter().all(|e| e.watermark.is_none()));
    assert!(
        notification
            .events
            .iter()
            .any(|e| e.kind == EventKind::Created)
    );
}

#[tokio::test]
async fn mime_read_and_return_ids_quirks() {
    let setup = setup().await;
    setup.front_end.enable(Quirk::MimeItemsStoredRead);
    setup.front_end.enable(Quirk::InvertReturnNewItemIds);
    let mut item = Item::new(ItemKind::Message);
    item.mime_content = Some(mime("read by default"));
    let id = setup
        .client
        .call(&CreateItem {
            disposition: Some(MessageDisposition::SaveOnly),
            saved_folder: Some(inbox()),
            items: vec![item],
        })
        .await
        .unwrap()
        .into_single("CreateItem")
        .unwrap()[0]
        .item_id
        .clone()
        .unwrap();
    let read = setup
        .client
        .call(&GetItem {
            shape: Shape::base(BaseShape::Default),
            item_ids: vec![id.clone()],
        })
        .await
        .unwrap()
        .into_single("GetItem")
        .unwrap()[0]
        .is_read;
    assert_eq!(
        read,
        Some(true),
        "without IsRead=false the quirk stores it read"
    );

    let moved = setup
        .client
        .call(&MoveItem {
            to: FolderRef::distinguished(DistinguishedFolder::Drafts),
            item_ids: vec![id],
            return_new_item_ids: Some(true),
        })
        .await
        .unwrap()
        .into_single("MoveItem")
        .unwrap();
    assert_eq!(moved, None, "the inverted server withholds the new id");

    // The store-level writes are all visible: the item is in Drafts.
    let drafts = setup
        .client
        .find_items_all(&FindItem {
            traversal: Traversal::Shallow,
            shape: Shape::base(BaseShape::IdOnly),
            page: None,
            parents: vec![FolderRef::distinguished(DistinguishedFolder::Drafts)],
        })
        .await
        .unwrap();
    assert_eq!(drafts.len(), 1);
}

#[tokio::test]
async fn store_changes_from_other_sessions_sync() {
    let setup = setup().await;
    {
        let mut store = setup.emulator.store().lock().unwrap();
        let session = store.open_session("mapi client");
        let inbox = store.well_known_folder(WellKnownFolder::Inbox).unwrap();
        store
            .create_item(
                session,
                inbox,
                NewItem {
                    content: NewItemContent::Mime(
                        b"Subject: from MAPI\r\nFrom: a@example.test\r\n\r\nbody\r\n".to_vec(),
                    ),
                    new_mail: true,
                    ..NewItem::default()
                },
            )
            .unwrap();
    }
    let mut shape = Shape::base(BaseShape::IdOnly);
    shape.additional = vec![PropertyPath::field("item:Subject")];
    let mut request = sync_request(None, 10);
    request.shape = shape;
    let page = setup
        .client
        .call(&request)
        .await
        .unwrap()
        .into_single("SyncFolderItems")
        .unwrap();
    assert!(matches!(&page.changes[..], [SyncChange::Create(item)]
        if item.subject.as_deref() == Some("from MAPI")));
}

#[tokio::test]
async fn bearer_token_reaches_the_front_end() {
    let emulator = Emulator::start(EmulatorOptions {
        tls: false,
        bearer_token: Some(Secret::new("static-token")),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    let client = |token: &str| {
        EwsClient::builder(
            emulator.ews_url(),
            "user1@example.test",
            Credentials::Bearer(Arc::new(exmux_core::auth::StaticToken(Secret::new(token)))),
        )
        .build()
        .unwrap()
    };
    let request = GetFolder {
        shape: Shape::base(BaseShape::IdOnly),
        folder_ids: vec![inbox()],
    };
    let response = client("static-token").call(&request).await.unwrap();
    assert!(response.messages[0].is_ok());
    let rejected = client("wrong-token").call(&request).await;
    assert!(rejected.is_err(), "a wrong token must be rejected");
}

#[tokio::test]
async fn explicit_is_read_beats_the_mime_read_quirk() {
    let setup = setup().await;
    setup.front_end.enable(Quirk::MimeItemsStoredRead);
    let id = create_in(&setup.client, inbox(), "kept unread").await;
    let item = setup
        .client
        .call(&GetItem {
            shape: Shape::base(BaseShape::Default),
            item_ids: vec![id],
        })
        .await
        .unwrap()
        .into_single("GetItem")
        .unwrap()
        .remove(0);
    assert_eq!(
        item.is_read,
        Some(false),
        "IsRead=false after MimeContent wins"
    );
}

#[tokio::test]
async fn every_busy_shape_is_retried() {
    for shape in [
        BusyShape::SoapFault,
        BusyShape::Http503,
        BusyShape::InternalErrorWithInnerBusy,
    ] {
        let setup = setup().await;
        setup.front_end.set_busy_shape(shape);
        setup
            .emulator
            .faults()
            .server_busy(EWS_PATH, 1, Duration::from_millis(3000));
        let response = setup
            .client
            .call(&GetFolder {
                shape: Shape::base(BaseShape::IdOnly),
                folder_ids: vec![inbox()],
            })
            .await
            .unwrap();
        assert!(response.messages[0].is_ok(), "{shape:?}");
        let slept: Duration = setup.slept.lock().unwrap().iter().sum();
        assert!(
            slept >= Duration::from_millis(3000),
            "{shape:?} slept {slept:?}"
        );
    }
}

/// MessageXml (MS-OXWSCDATA ResponseMessageType) is free-form, and Exchange names the
/// cause of an ErrorInternalServerError in its `InnerErrorResponseCode` value. An inner
/// ErrorServerBusy inside an HTTP 200 response is throttling, so the client waits
/// `BackOffMilliseconds` and retries.
#[tokio::test]
async fn inner_busy_in_200_message_is_retried() {
    let setup = setup().await;
    setup
        .front_end
        .internal_error_with_inner_busy_in_response_message(2, Duration::from_millis(1500));

    let page = setup
        .client
        .call(&sync_request(None, 10))
        .await
        .unwrap()
        .into_single("SyncFolderItems");

    assert!(page.is_ok(), "{page:?}");
    let slept = setup.slept.lock().unwrap().clone();
    assert_eq!(slept.len(), 2, "one wait per throttled response: {slept:?}");
    for wait in slept {
        assert!(wait >= Duration::from_millis(1500), "waited {wait:?}");
    }
}

#[tokio::test]
async fn internal_error_without_inner_busy_is_not_retried() {
    let setup = setup().await;
    setup.front_end.throttle_in_response_message(
        1,
        ResponseCode::ErrorInternalServerError,
        Some(Duration::from_millis(1500)),
    );

    let page = setup
        .client
        .call(&sync_request(None, 10))
        .await
        .unwrap()
        .into_single("SyncFolderItems");

    let error = page.unwrap_err();
    assert_eq!(
        error.response_code(),
        Some(&ResponseCode::ErrorInternalServerError)
    );
    assert!(setup.slept.lock().unwrap().is_empty());
}

#[tokio::test]
async fn connection_count_throttling_is_retried() {
    let setup = setup().await;
    setup.front_end.throttle_in_response_message(
        1,
        ResponseCode::ErrorExceededConnectionCount,
        None,
    );
    let page = setup
        .client
        .call(&sync_request(None, 10))
        .await
        .unwrap()
        .into_single("SyncFolderItems");
    assert!(page.is_ok(), "{page:?}");
    assert_eq!(
        setup.slept.lock().unwrap().len(),
        1,
        "one wait, then the retry"
    );
}

#[tokio::test]
async fn padded_response_codes_parse() {
    let setup = setup().await;
    setup.front_end.enable(Quirk::PaddedResponseCodes);
    create_in(&setup.client, inbox(), "padded").await;
    let bad = setup
        .client
        .call(&GetItem {
            shape: Shape::base(BaseShape::IdOnly),
            item_ids: vec![ItemId::new("AAMkAA==")],
        })
        .await
        .unwrap();
    assert_eq!(
        bad.messages[0].as_ref().unwrap_err().code,
        ResponseCode::ErrorInvalidIdMalformed
    );
}

#[tokio::test]
async fn sync_state_fault_is_reported_as_invalid() {
    let setup = setup().await;
    setup.front_end.enable(Quirk::InvalidSyncStateAsFault);
    let error = setup
        .client
        .sync_folder_items(&sync_request(Some("Z2FyYmFnZQ==".to_owned()), 10), |_| {})
        .await
        .unwrap_err();
    assert!(
        error.ews().is_some_and(EwsError::is_invalid_sync_state),
        "{error}"
    );
}

#[tokio::test]
async fn read_change_reported_twice_under_quirk() {
    let setup = setup().await;
    setup.front_end.enable(Quirk::ReadChangeAlsoAsUpdate);
    let id = create_in(&setup.client, inbox(), "read elsewhere").await;
    let state = setup
        .client
        .sync_folder_items(&sync_request(None, 10), |_| {})
        .await
        .unwrap();
    {
        let mut store = setup.emulator.store().lock().unwrap();
        let session = store.open_session("other client");
        let entry = exmux_ews::ids::decode_ews_id(&id.id).unwrap();
        let mid = exmux_emulator::store::Mid(
            exmux_emulator::store::Globcnt::new(entry.message.unwrap().counter()).unwrap(),
        );
        store.set_read(session, mid, true).unwrap();
    }
    let page = setup
        .client
        .call(&sync_request(Some(state), 10))
        .await
        .unwrap()
        .into_single("SyncFolderItems")
        .unwrap();
    let kinds: Vec<&str> = page
        .changes
        .iter()
        .map(|change| match change {
            SyncChange::Update(_) => "update",
            SyncChange::ReadFlagChange { is_read: true, .. } => "read",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["update", "read"]);
    assert!(
        page.changes
            .iter()
            .all(|c| c.item_id().unwrap().id == id.id)
    );
}

/// Returns the one change of an incremental SyncFolderItems of `folder` from `state`,
/// and the state after it.
async fn only_change(client: &EwsClient, folder: FolderRef, state: String) -> (SyncChange, String) {
    let mut request = sync_request(Some(state), 10);
    request.folder = folder;
    let page = client
        .call(&request)
        .await
        .unwrap()
        .into_single("SyncFolderItems")
        .unwrap();
    assert_eq!(page.changes.len(), 1, "{:?}", page.changes);
    (page.changes.into_iter().next().unwrap(), page.sync_state)
}

async fn sync_state_of(client: &EwsClient, folder: FolderRef) -> String {
    let mut request = sync_request(None, 100);
    request.folder = folder;
    client.sync_folder_items(&request, |_| {}).await.unwrap()
}

async fn find_in(client: &EwsClient, folder: FolderRef, traversal: Traversal) -> Vec<Item> {
    client
        .find_items_all(&FindItem {
            traversal,
            shape: Shape::base(BaseShape::Default),
            page: None,
            parents: vec![folder],
        })
        .await
        .unwrap()
}

fn subjects(items: &[Item]) -> Vec<&str> {
    items
        .iter()
        .map(|item| item.subject.as_deref().unwrap_or_default())
        .collect()
}

/// MS-OXWSCDATA 2.2.5.9: SoftDelete moves an item to the dumpster. It leaves its folder,
/// so a sync reports it deleted, but it stays recoverable until purged.
#[tokio::test]
async fn soft_delete_is_recoverable() {
    let setup = setup().await;
    let client = &setup.client;
    create_in(client, inbox(), "keep").await;
    let soft = create_in(client, inbox(), "soft").await;
    let state = sync_state_of(client, inbox()).await;

    client
        .call(&DeleteItem {
            delete_type: DeleteType::SoftDelete,
            item_ids: vec![soft.clone()],
        })
        .await
        .unwrap()
        .into_single("DeleteItem")
        .unwrap();

    let (change, state) = only_change(client, inbox(), state).await;
    assert!(
        matches!(&change, SyncChange::Delete(id) if id.id == soft.id),
        "{change:?}"
    );
    let shallow = find_in(client, inbox(), Traversal::Shallow).await;
    assert_eq!(subjects(&shallow), ["keep"]);
    let soft_deleted = find_in(client, inbox(), Traversal::SoftDeleted).await;
    assert_eq!(subjects(&soft_deleted), ["soft"]);
    let deleted_items = find_in(
        client,
        FolderRef::distinguished(DistinguishedFolder::DeletedItems),
        Traversal::Shallow,
    )
    .await;
    assert!(deleted_items.is_empty(), "{deleted_items:?}");

    // Recover it through the store, as an administrator would.
    {
        let mut store = setup.emulator.store().lock().unwrap();
        let session = store.open_session("recovery");
        let inbox_fid = store.well_known_folder(WellKnownFolder::Inbox).unwrap();
        let recoverable: Vec<_> = store
            .recoverable_items(inbox_fid)
            .iter()
            .map(|item| item.mid)
            .collect();
        assert_eq!(recoverable.len(), 1);
        let recovered = store.recover_item(session, recoverable[0]).unwrap();
        assert_ne!(
            recovered.id, recoverable[0],
            "a recovered item gets a new id"
        );
        assert!(store.recoverable_item(recoverable[0]).is_none());
        assert!(store.recover_item(session, recoverable[0]).is_err());
    }

    let (change, _) = only_change(client, inbox(), state).await;
    assert!(
        matches!(&change, SyncChange::Create(item)
            if item.item_id.as_ref().unwrap().id != soft.id),
        "{change:?}"
    );
    let shallow = find_in(client, inbox(), Traversal::Shallow).await;
    assert_eq!(subjects(&shallow), ["keep", "soft"]);
    assert!(
        find_in(client, inbox(), Traversal::SoftDeleted)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn purged_soft_delete_is_gone() {
    let setup = setup().await;
    let client = &setup.client;
    create_in(client, inbox(), "purge me").await;
    let soft = find_in(client, inbox(), Traversal::Shallow).await;
    client
        .call(&DeleteItem {
            delete_type: DeleteType::SoftDelete,
            item_ids: vec![soft[0].item_id.clone().unwrap()],
        })
        .await
        .unwrap();

    {
        let mut store = setup.emulator.store().lock().unwrap();
        let session = store.open_session("purge");
        let inbox_fid = store.well_known_folder(WellKnownFolder::Inbox).unwrap();
        let mid = store.recoverable_items(inbox_fid)[0].mid;
        store.purge_recoverable_item(session, mid).unwrap();
        assert!(store.recoverable_items(inbox_fid).is_empty());
        assert!(store.purge_recoverable_item(session, mid).is_err());
        assert!(store.recover_item(session, mid).is_err());
    }
    assert!(
        find_in(client, inbox(), Traversal::SoftDeleted)
            .await
            .is_empty()
    );
}

/// MS-OXWSCDATA 2.2.5.9: MoveToDeletedItems moves the item to Deleted Items, and
/// HardDelete removes it permanently. Neither leaves a recoverable item behind.
#[tokio::test]
async fn move_to_deleted_items_and_hard_delete() {
    let setup = setup().await;
    let client = &setup.client;
    let deleted_items = FolderRef::distinguished(DistinguishedFolder::DeletedItems);
    let moved = create_in(client, inbox(), "moved").await;
    let hard = create_in(client, inbox(), "hard").await;
    let inbox_state = sync_state_of(client, inbox()).await;
    let deleted_state = sync_state_of(client, deleted_items.clone()).await;

    client
        .call(&DeleteItem {
            delete_type: DeleteType::MoveToDeletedItems,
            item_ids: vec![moved.clone()],
        })
        .await
        .unwrap()
        .into_single("DeleteItem")
        .unwrap();

    let (change, inbox_state) = only_change(client, inbox(), inbox_state).await;
    assert!(
        matches!(&change, SyncChange::Delete(id) if id.id == moved.id),
        "{change:?}"
    );
    let (change, _) = only_change(client, deleted_items.clone(), deleted_state).await;
    assert!(matches!(change, SyncChange::Create(_)), "{change:?}");
    let in_deleted = find_in(client, deleted_items, Traversal::Shallow).await;
    assert_eq!(subjects(&in_deleted), ["moved"]);

    client
        .call(&DeleteItem {
            delete_type: DeleteType::HardDelete,
            item_ids: vec![hard.clone()],
        })
        .await
        .unwrap()
        .into_single("DeleteItem")
        .unwrap();
    let (change, _) = only_change(client, inbox(), inbox_state).await;
    assert!(
        matches!(&change, SyncChange::Delete(id) if id.id == hard.id),
        "{change:?}"
    );
    assert!(
        find_in(client, inbox(), Traversal::SoftDeleted)
            .await
            .is_empty()
    );
}
