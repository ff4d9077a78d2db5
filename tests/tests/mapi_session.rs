//! The MAPI/HTTP session client against the emulator on loopback: every operation, the
//! own-change exclusion of ICS checkpoints, session expiry in the middle of a download,
//! the open-source server's behaviours, and a NotificationWait held for minutes of the
//! injected clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use exmux_core::auth::Credentials;
use exmux_core::http::{HttpOptions, ProxySetting};
use exmux_core::{ManualClock, Secret};
use exmux_emulator::mapi::{MapiFrontEnd, MapiOptions, Quirks, legacy_dn};
use exmux_emulator::server::{Emulator, EmulatorHandle, EmulatorOptions};
use exmux_emulator::store::{NewItem, NewItemContent, WellKnownFolder};
use exmux_mapihttp::ids::{Guid, ObjectId};
use exmux_mapihttp::prop::{PropValue, TaggedValue, tags};
use exmux_mapihttp::session::{
    CodeNumbering, MapiSession, MessageImport, NoticeKind, SessionConfig, SessionError, SyncState,
    XidSource, mime,
};

const EXMUX_GUID: Guid = Guid([0xE1; 16]);
const OTHER_GUID: Guid = Guid([0x07; 16]);

struct Rig {
    emulator: EmulatorHandle,
    front: Arc<MapiFrontEnd>,
    clock: ManualClock,
}

async fn rig(quirks: Quirks) -> Rig {
    let clock = ManualClock::new(1_800_000_000_000);
    let emulator = Emulator::start(EmulatorOptions {
        tls: false,
        clock: Arc::new(clock.clone()),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    let mut options = MapiOptions::default();
    options.quirks = quirks;
    let front = MapiFrontEnd::mount(&emulator, options);
    Rig {
        emulator,
        front,
        clock,
    }
}

fn session(rig: &Rig, numbering: CodeNumbering) -> MapiSession {
    let mut config = SessionConfig::new(
        rig.emulator.mapi_emsmdb_url(),
        legacy_dn("user1@example.test"),
        Credentials::Basic {
            username: "user1@example.test".to_owned(),
            password: Secret::new("password1"),
        },
        HttpOptions {
            proxy: ProxySetting::Disabled,
            ..HttpOptions::default()
        }
        .build_client()
        .unwrap(),
    );
    config.clock = Arc::new(rig.clock.clone());
    config.numbering = numbering;
    config.retry_delay = Duration::from_millis(5);
    MapiSession::new(config)
}

fn inbox(rig: &Rig) -> ObjectId {
    let store = rig.emulator.store().lock().unwrap();
    ObjectId(
        store
            .well_known_folder(WellKnownFolder::Inbox)
            .unwrap()
            .to_u64(),
    )
}

fn deliver(rig: &Rig, subject: &str) -> ObjectId {
    let mut store = rig.emulator.store().lock().unwrap();
    let session = store.open_session("delivery");
    let inbox = store.well_known_folder(WellKnownFolder::Inbox).unwrap();
    let mime = format!(
        "From: Sender <sender@example.test>\r\nTo: User One <user1@example.test>\r\nSubject: {subject}\r\nDate: Fri, 04 Dec 2026 12:00:00 +0000\r\n\r\nBody of {subject}\r\n"
    );
    let created = store
        .create_item(
            session,
            inbox,
            NewItem {
                content: NewItemContent::Mime(mime.into_bytes()),
                new_mail: true,
                ..NewItem::default()
            },
        )
        .unwrap();
    ObjectId(created.id.to_u64())
}

#[tokio::test]
async fn connect_hierarchy_and_contents_sync() {
    let rig = rig(Quirks::default()).await;
    let a = deliver(&rig, "first");
    let b = deliver(&rig, "second");
    let session = session(&rig, CodeNumbering::Spec);
    let info = session.connect().await.unwrap();
    assert!(info.replica_guid(info.inbox()).is_some());
    assert_eq!(info.inbox(), inbox(&rig));

    let folders = session
        .hierarchy_table(info.ipm_subtree(), false)
        .await
        .unwrap();
    assert!(
        folders.iter().any(|f| f.folder_id == info.inbox()),
        "{folders:?}"
    );

    let sync = session
        .sync_contents(info.inbox(), &SyncState::default())
        .await
        .unwrap();
    let mids: Vec<ObjectId> = sync.changes.iter().filter_map(|c| c.message_id).collect();
    assert!(mids.contains(&a), "{mids:?}");
    assert!(mids.contains(&b), "{mids:?}");
    for change in &sync.changes {
        assert!(change.change_key.is_some());
        assert!(change.predecessors.is_some());
    }
    let again = session
        .sync_contents(info.inbox(), &sync.state)
        .await
        .unwrap();
    assert!(again.changes.is_empty());

    let props = session
        .get_properties(
            info.inbox(),
            a,
            &[tags::PID_TAG_SUBJECT, tags::PID_TAG_CHANGE_KEY],
        )
        .await
        .unwrap();
    assert_eq!(props[0].1, Some(PropValue::Unicode("first".to_owned())));

    let rows = session
        .contents_table(info.inbox(), &[tags::PID_TAG_MID, tags::PID_TAG_SUBJECT])
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    session.disconnect().await.unwrap();
}

#[tokio::test]
async fn checkpoint_excludes_own_imports() {
    let rig = rig(Quirks::default()).await;
    let mid = deliver(&rig, "to be flagged");
    let mine = session(&rig, CodeNumbering::Spec);
    let theirs = session(&rig, CodeNumbering::Spec);
    let inbox = inbox(&rig);
    let base = mine
        .sync_contents(inbox, &SyncState::default())
        .await
        .unwrap();
    let item = base
        .changes
        .iter()
        .find(|c| c.message_id == Some(mid))
        .unwrap()
        .clone();

    let exmux = XidSource::new(EXMUX_GUID, 0);
    let xid = exmux.next();
    let imported = mine
        .import_message_change(
            inbox,
            &base.state,
            MessageImport {
                source_key: item.source_key.clone(),
                previous: item.predecessors.clone().unwrap_or_default(),
                change_key: xid,
                set: vec![TaggedValue {
                    tag: tags::PID_TAG_SUBJECT,
                    value: PropValue::Unicode("flagged by exmux".to_owned()),
                }],
                last_modified: 134_000_000_000_000_000,
            },
        )
        .await
        .unwrap();

    // The server kept exmux's change key as given.
    let props = mine
        .get_properties(
            inbox,
            mid,
            &[tags::PID_TAG_CHANGE_KEY, tags::PID_TAG_SUBJECT],
        )
        .await
        .unwrap();
    assert_eq!(props[0].1, Some(PropValue::Binary(xid.to_vec())));
    assert_eq!(
        props[1].1,
        Some(PropValue::Unicode("flagged by exmux".to_owned()))
    );

    // From the checkpoint, the own import is not downloaded again.
    let after_own = mine.sync_contents(inbox, &imported.state).await.unwrap();
    assert!(after_own.changes.is_empty(), "{:?}", after_own.changes);

    // Another session's import with another GUID appears, with its change key.
    let theirs_base = theirs
        .sync_contents(inbox, &SyncState::default())
        .await
        .unwrap();
    let their_item = theirs_base
        .changes
        .iter()
        .find(|c| c.message_id == Some(mid))
        .unwrap();
    let other = XidSource::new(OTHER_GUID, 100);
    theirs
        .import_message_change(
            inbox,
            &theirs_base.state,
            MessageImport {
                source_key: their_item.source_key.clone(),
                previous: their_item.predecessors.clone().unwrap_or_default(),
                change_key: other.next(),
                set: vec![],
                last_modified: 134_000_000_000_000_001,
            },
        )
        .await
        .unwrap();
    let after_theirs = mine.sync_contents(inbox, &imported.state).await.unwrap();
    assert_eq!(after_theirs.changes.len(), 1);
    let change = &after_theirs.changes[0];
    assert_eq!(change.change_xid.unwrap().namespace, OTHER_GUID);
    assert!(
        change.predecessors.as_ref().unwrap().xids().contains(&xid),
        "the other change's PCL includes exmux's change"
    );
}

#[tokio::test]
async fn message_writes_over_mapi() {
    let rig = rig(Quirks::default()).await;
    let a = deliver(&rig, "alpha");
    let b = deliver(&rig, "beta");
    let c = deliver(&rig, "gamma");
    let session = session(&rig, CodeNumbering::Spec);
    let info = session.connect().await.unwrap();
    let inbox = info.inbox();
    let base = session
        .sync_contents(inbox, &SyncState::default())
        .await
        .unwrap();

    // Read state through RopSetReadFlags comes back as a read-state change.
    session.set_read_flags(inbox, &[a], true).await.unwrap();
    let sync = session.sync_contents(inbox, &base.state).await.unwrap();
    assert!(
        sync.read.contains(&a) || sync.changes.iter().any(|ch| ch.message_id == Some(a)),
        "{sync:?}"
    );

    // Read state through ICS import is left out of the download from the checkpoint.
    let key_b = base
        .changes
        .iter()
        .find(|ch| ch.message_id == Some(b))
        .unwrap()
        .source_key
        .clone();
    let checkpoint = session
        .import_read_states(inbox, &sync.state, &[(key_b, true)])
        .await
        .unwrap();
    let sync = session.sync_contents(inbox, &checkpoint).await.unwrap();
    assert!(!sync.read.contains(&b), "{sync:?}");

    // Copy: the new id is learned from the next download of the destination.
    let deleted_items = info.deleted_items();
    let dest_base = session
        .sync_contents(deleted_items, &SyncState::default())
        .await
        .unwrap();
    session
        .move_copy_messages(inbox, deleted_items, &[c], true)
        .await
        .unwrap();
    let dest = session
        .sync_contents(deleted_items, &dest_base.state)
        .await
        .unwrap();
    assert_eq!(dest.changes.len(), 1);
    assert_ne!(dest.changes[0].message_id, Some(c));

    // Move, then delete: both show as removals from the inbox.
    session
        .move_copy_messages(inbox, deleted_items, &[c], false)
        .await
        .unwrap();
    session.delete_messages(inbox, &[a]).await.unwrap();
    let sync = session.sync_contents(inbox, &sync.state).await.unwrap();
    let removed: Vec<ObjectId> = sync
        .deleted
        .iter()
        .chain(&sync.no_longer_in_scope)
        .copied()
        .collect();
    assert!(removed.contains(&a), "{sync:?}");
    assert!(removed.contains(&c), "{sync:?}");

    // Create with ordinary ROPs returns the id and the server's change key.
    let (mid, key) = session
        .create_message(
            inbox,
            vec![TaggedValue {
                tag: tags::PID_TAG_SUBJECT,
                value: PropValue::Unicode("made over MAPI".to_owned()),
            }],
            false,
        )
        .await
        .unwrap();
    assert!(key.is_some());
    let sync2 = session.sync_contents(inbox, &sync.state).await.unwrap();
    let created = sync2
        .changes
        .iter()
        .find(|ch| ch.message_id == Some(mid))
        .unwrap();
    assert_eq!(created.change_key, key);
}

#[tokio::test]
async fn create_from_mime_fetch_and_compose() {
    let rig = rig(Quirks::default()).await;
    let session = session(&rig, CodeNumbering::Spec);
    let inbox = inbox(&rig);
    let (_, props) = mime::parse(
        b"From: Ann <ann@example.test>\r\nTo: User One <user1@example.test>\r\nSubject: imported from MIME\r\nDate: Fri, 04 Dec 2026 12:00:00 +0000\r\n\r\nHello over MAPI\r\n",
    )
    .unwrap();
    let exmux = XidSource::new(EXMUX_GUID, 7);
    let xid = exmux.next();
    let created = session
        .import_new_message(
            inbox,
            &SyncState::default(),
            xid,
            props,
            134_000_000_000_000_000,
        )
        .await
        .unwrap();
    let mid = created
        .message_id
        .expect("the server returned the new message id");

    let message = session.fetch_message(inbox, mid).await.unwrap();
    assert_eq!(message.subject.as_deref(), Some("imported from MIME"));
    let composed = mime::compose(&message).unwrap();
    let (back, _) = mime::parse(&composed).unwrap();
    assert_eq!(back.subject.as_deref(), Some("imported from MIME"));
    assert_eq!(
        back.body_text.as_deref().map(str::trim),
        Some("Hello over MAPI")
    );

    // The creation is exmux's own: the checkpoint keeps it out of the next download,
    // and a download from scratch shows exmux's change key on it.
    let after = session.sync_contents(inbox, &created.state).await.unwrap();
    assert!(after.changes.iter().all(|ch| ch.message_id != Some(mid)));
    let full = session
        .sync_contents(inbox, &SyncState::default())
        .await
        .unwrap();
    let change = full
        .changes
        .iter()
        .find(|ch| ch.message_id == Some(mid))
        .unwrap();
    assert_eq!(change.change_xid, Some(xid));
}

#[tokio::test]
async fn folder_writes_and_hierarchy_sync() {
    let rig = rig(Quirks::default()).await;
    let session = session(&rig, CodeNumbering::Spec);
    let info = session.connect().await.unwrap();
    let top = info.ipm_subtree();
    let base = session
        .sync_hierarchy(top, &SyncState::default())
        .await
        .unwrap();
    assert!(!base.changes.is_empty());

    let (projects, key) = session.create_folder(top, "Projects").await.unwrap();
    assert!(key.is_some());
    let (archive, _) = session.create_folder(top, "Archive").await.unwrap();
    let renamed_key = session
        .rename_folder(projects, "Projects 2026")
        .await
        .unwrap();
    assert!(renamed_key.is_some());
    assert_ne!(renamed_key, key);
    session
        .move_folder(top, archive, projects, "Projects 2026")
        .await
        .unwrap();

    let rows = session.hierarchy_table(archive, false).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].display_name, "Projects 2026");

    let sync = session.sync_hierarchy(top, &base.state).await.unwrap();
    let names: Vec<_> = sync
        .changes
        .iter()
        .filter_map(|c| c.display_name.clone())
        .collect();
    assert!(names.contains(&"Projects 2026".to_owned()), "{names:?}");
    assert!(names.contains(&"Archive".to_owned()), "{names:?}");

    session.delete_folder(top, archive).await.unwrap();
    let after = session.sync_hierarchy(top, &sync.state).await.unwrap();
    assert!(after.deleted.contains(&archive), "{after:?}");
}

#[tokio::test]
async fn send_submits_from_the_outbox() {
    let rig = rig(Quirks::default()).await;
    let session = session(&rig, CodeNumbering::Spec);
    let info = session.connect().await.unwrap();
    let (mid, _) = session
        .create_message(
            info.outbox(),
            vec![TaggedValue {
                tag: tags::PID_TAG_SUBJECT,
                value: PropValue::Unicode("outgoing".to_owned()),
            }],
            true,
        )
        .await
        .unwrap();
    assert_ne!(mid.0, 0);
}

#[tokio::test]
async fn context_expiry_loses_no_change() {
    let rig = rig(Quirks::default()).await;
    deliver(&rig, "before");
    let session = session(&rig, CodeNumbering::Spec);
    let inbox = inbox(&rig);
    let first = session
        .sync_contents(inbox, &SyncState::default())
        .await
        .unwrap();
    let late = deliver(&rig, "after");

    rig.front.faults().expire_next_context();
    let second = session.sync_contents(inbox, &first.state).await.unwrap();
    assert_eq!(session.reconnect_count(), 1);
    assert_eq!(second.changes.len(), 1);
    assert_eq!(second.changes[0].message_id, Some(late));

    // An idle context past X-ExpirationInfo by the injected clock: the same recovery.
    rig.clock.advance(Duration::from_secs(20 * 60));
    let third = session.sync_contents(inbox, &first.state).await.unwrap();
    assert_eq!(third.changes.len(), 1);
    assert_eq!(session.reconnect_count(), 2);
}

#[tokio::test]
async fn stale_sequence_write_typed() {
    let rig = rig(Quirks::default()).await;
    let mid = deliver(&rig, "keep me");
    let session = session(&rig, CodeNumbering::Spec);
    let inbox = inbox(&rig);
    session.connect().await.unwrap();
    rig.front.faults().stale_next_sequence();
    let error = session.delete_messages(inbox, &[mid]).await.unwrap_err();
    assert!(
        matches!(error, SessionError::WriteNotReplayed { .. }),
        "{error}"
    );
    assert!(
        rig.emulator
            .store()
            .lock()
            .unwrap()
            .item(exmux_emulator::store::Mid::from_u64(mid.0).unwrap())
            .is_some()
    );
    session.delete_messages(inbox, &[mid]).await.unwrap();
}

#[tokio::test]
async fn open_source_server_behaviours() {
    let rig = rig(Quirks::gromox()).await;
    let mid = deliver(&rig, "quirky");
    let session = session(&rig, CodeNumbering::ServerSpecific);
    let info = session.connect().await.unwrap();
    // The logon's replica pair differs from the ids' replica.
    assert_ne!(info.logon_replica.0, info.inbox().replid());
    assert!(info.replica_guid(info.inbox()).is_some());
    assert_eq!(
        session.cookie_names(),
        vec!["sid".to_owned(), "sequence".to_owned()]
    );

    let base = session
        .sync_contents(info.inbox(), &SyncState::default())
        .await
        .unwrap();
    session.delete_messages(info.inbox(), &[mid]).await.unwrap();
    let sync = session
        .sync_contents(info.inbox(), &base.state)
        .await
        .unwrap();
    assert!(sync.no_longer_in_scope.contains(&mid), "{sync:?}");

    // Its own code numbering: a stale sequence still leads to a reconnect.
    rig.front.faults().stale_next_sequence();
    session
        .hierarchy_table(info.ipm_subtree(), false)
        .await
        .unwrap();
    assert_eq!(session.reconnect_count(), 1);
}

#[tokio::test]
async fn wrong_password_typed_error() {
    let rig = rig(Quirks::default()).await;
    let mut config = session(&rig, CodeNumbering::Spec).config().clone();
    config.credentials = Credentials::Basic {
        username: "user1@example.test".to_owned(),
        password: Secret::new("wrong-password-9d1"),
    };
    let error = MapiSession::new(config).connect().await.unwrap_err();
    assert!(error.needs_authentication(), "{error}");
    assert!(!format!("{error} {error:?}").contains("wrong-password-9d1"));
}

#[tokio::test]
async fn server_busy_is_retried_for_reads() {
    let rig = rig(Quirks::default()).await;
    let session = session(&rig, CodeNumbering::Spec);
    let info = session.connect().await.unwrap();
    rig.front
        .faults()
        .server_busy_next(Duration::from_millis(1));
    session
        .hierarchy_table(info.ipm_subtree(), false)
        .await
        .unwrap();
    assert_eq!(session.reconnect_count(), 0);
}

#[tokio::test]
async fn notification_wait_held_minutes() {
    let rig = rig(Quirks::default()).await;
    let session = session(&rig, CodeNumbering::Spec);
    session.connect().await.unwrap();
    let mut notices = session.notices();
    session
        .register_notifications(0x04 | 0x08 | 0x10 | 0x02)
        .await
        .unwrap();
    let waiter = session.start_notification_wait();

    // The server holds the wait; five minutes of the injected clock end it without
    // events, and the client sends it again.
    tokio::time::sleep(Duration::from_millis(50)).await;
    rig.clock.advance(Duration::from_secs(5 * 60 + 1));
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A dropped wait is sent again too.
    rig.front.faults().drop_next_notification_wait();
    rig.clock.advance(Duration::from_secs(5 * 60 + 1));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mid = deliver(&rig, "wake up");
    let notice = loop {
        let notice = tokio::time::timeout(Duration::from_secs(10), notices.recv())
            .await
            .unwrap()
            .unwrap();
        if notice.message_id == Some(mid) {
            break notice;
        }
    };
    assert!(
        matches!(notice.kind, NoticeKind::NewMail | NoticeKind::Created),
        "{notice:?}"
    );
    drop(waiter);
}

/// Returns the items of an EWS SyncFolderItems from scratch, created or updated.
async fn ews_items(client: &exmux_ews::client::EwsClient) -> Vec<exmux_ews::types::Item> {
    use exmux_ews::ops::Shape;
    use exmux_ews::ops::sync::{SyncChange, SyncFolderItems};
    use exmux_ews::types::{BaseShape, DistinguishedFolder, FolderRef};
    let response = client
        .call(&SyncFolderItems {
            shape: Shape::base(BaseShape::IdOnly),
            folder: FolderRef::distinguished(DistinguishedFolder::Inbox),
            sync_state: None,
            ignore: Vec::new(),
            max_changes: 512,
        })
        .await
        .unwrap()
        .into_single("SyncFolderItems")
        .unwrap();
    response
        .changes
        .into_iter()
        .filter_map(|change| match change {
            SyncChange::Create(item) | SyncChange::Update(item) => Some(item),
            _ => None,
        })
        .collect()
}

/// Returns the MAPI message id an EWS ItemId carries in its entry id.
fn mapi_id_of(item: &exmux_ews::types::Item) -> u64 {
    let id = exmux_ews::ids::decode_ews_id(&item.item_id.as_ref().unwrap().id).unwrap();
    id.message.unwrap().counter()
}

#[tokio::test]
async fn mapi_change_seen_over_ews_and_back() {
    let rig = rig(Quirks::default()).await;
    let mid = deliver(&rig, "both protocols");
    exmux_emulator::ews::EwsFrontEnd::install(&rig.emulator);
    let ews = exmux_ews::client::EwsClient::builder(
        rig.emulator.ews_url(),
        "user1@example.test",
        Credentials::Basic {
            username: "user1@example.test".to_owned(),
            password: Secret::new("password1"),
        },
    )
    .clock(Arc::new(rig.clock.clone()))
    .build()
    .unwrap();
    let session = session(&rig, CodeNumbering::Spec);
    let inbox = inbox(&rig);

    // A change made over MAPI with exmux's change key is seen over EWS with the same
    // id and the same change key.
    let base = session
        .sync_contents(inbox, &SyncState::default())
        .await
        .unwrap();
    let item = base
        .changes
        .iter()
        .find(|c| c.message_id == Some(mid))
        .unwrap();
    let xid = XidSource::new(EXMUX_GUID, 500).next();
    session
        .import_message_change(
            inbox,
            &base.state,
            MessageImport {
                source_key: item.source_key.clone(),
                previous: item.predecessors.clone().unwrap_or_default(),
                change_key: xid,
                set: vec![TaggedValue {
                    tag: tags::PID_TAG_SUBJECT,
                    value: PropValue::Unicode("changed over MAPI".to_owned()),
                }],
                last_modified: 134_000_000_000_000_000,
            },
        )
        .await
        .unwrap();
    let items = ews_items(&ews).await;
    let seen = items
        .iter()
        .find(|i| mapi_id_of(i) == mid.globcnt().get())
        .expect("the item over EWS");
    let key = exmux_ews::ids::decode_change_key(
        seen.item_id.as_ref().unwrap().change_key.as_ref().unwrap(),
    )
    .unwrap();
    assert_eq!(key, xid.to_vec());

    // A change made over EWS is seen over MAPI with the same change key.
    use exmux_ews::ops::items::{ItemUpdate, UpdateItem};
    use exmux_ews::types::{ConflictResolution, MessageDisposition};
    let checkpoint = session.sync_contents(inbox, &base.state).await.unwrap();
    let updated = ews
        .call(&UpdateItem {
            conflict_resolution: ConflictResolution::AlwaysOverwrite,
            disposition: MessageDisposition::SaveOnly,
            changes: vec![(
                seen.item_id.clone().unwrap(),
                vec![ItemUpdate::SetCategories(vec!["Blue".to_owned()])],
            )],
        })
        .await
        .unwrap();
    let new_id = updated.into_single("UpdateItem").unwrap().item_id.unwrap();
    let ews_key = exmux_ews::ids::decode_change_key(new_id.change_key.as_ref().unwrap()).unwrap();
    let sync = session
        .sync_contents(inbox, &checkpoint.state)
        .await
        .unwrap();
    let change = sync
        .changes
        .iter()
        .find(|c| c.message_id == Some(mid))
        .expect("the EWS change over MAPI");
    assert_eq!(change.change_key.as_ref(), Some(&ews_key));
    assert!(change.predecessors.as_ref().unwrap().xids().contains(&xid));
}

#[tokio::test]
async fn ntlm_owned_connections() {
    let rig = rig(Quirks::default()).await;
    let mut config = session(&rig, CodeNumbering::Spec).config().clone();
    config.credentials = Credentials::Ntlm {
        username: "user1@example.test".to_owned(),
        password: Secret::new("password1"),
    };
    let session = MapiSession::new(config.clone());
    let info = session.connect().await.unwrap();
    let mut notices = session.notices();
    session.register_notifications(0x02 | 0x04).await.unwrap();

    // The NotificationWait takes a second connection and authenticates it too, while
    // sequenced requests keep flowing on the first.
    let waiter = session.start_notification_wait();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rows = session
        .hierarchy_table(info.ipm_subtree(), false)
        .await
        .unwrap();
    assert!(!rows.is_empty());
    let mid = deliver(&rig, "over NTLM");
    let notice = loop {
        let notice = tokio::time::timeout(Duration::from_secs(10), notices.recv())
            .await
            .unwrap()
            .unwrap();
        if notice.message_id == Some(mid) {
            break notice;
        }
    };
    assert!(matches!(
        notice.kind,
        NoticeKind::NewMail | NoticeKind::Created
    ));
    drop(waiter);

    config.credentials = Credentials::Ntlm {
        username: "user1@example.test".to_owned(),
        password: Secret::new("wrong-password-9d1"),
    };
    let error = MapiSession::new(config).connect().await.unwrap_err();
    assert!(error.needs_authentication(), "{error}");
}
