#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Rules of the mailbox store: ids, change tracking, tombstones, sync, notices, faults.

use std::sync::Arc;
use std::time::Duration;

use exmux_core::ManualClock;
use exmux_emulator::store::*;

fn store() -> (Store, ManualClock) {
    let clock = ManualClock::default();
    let store = Store::new(StoreOptions {
        seed: 7,
        clock: Arc::new(clock.clone()),
        ..StoreOptions::default()
    });
    (store, clock)
}

fn inbox(store: &Store) -> Fid {
    store.well_known_folder(WellKnownFolder::Inbox).unwrap()
}

fn note(subject: &str) -> NewItem {
    NewItem {
        content: NewItemContent::Props(ItemProps {
            subject: subject.to_owned(),
            ..ItemProps::default()
        }),
        ..NewItem::default()
    }
}

fn full_sync(store: &Store, state: &SyncState) -> Vec<ContentSyncBatch> {
    let mut batches = Vec::new();
    let mut state = state.clone();
    loop {
        let batch = store.sync_contents(&state, SyncOptions::default()).unwrap();
        state = batch.state.clone();
        let more = batch.more_available;
        batches.push(batch);
        if !more {
            return batches;
        }
    }
}

#[test]
fn well_known_folders_exist() {
    let (store, _) = store();
    let top = store
        .well_known_folder(WellKnownFolder::MsgFolderRoot)
        .unwrap();
    let names: Vec<_> = store
        .child_folders(top)
        .iter()
        .map(|folder| folder.display_name.clone())
        .collect();
    for name in [
        "Inbox",
        "Drafts",
        "Sent Items",
        "Deleted Items",
        "Outbox",
        "Junk Email",
        "Calendar",
        "Contacts",
    ] {
        assert!(names.contains(&name.to_owned()), "missing {name}");
    }
    let calendar = store.well_known_folder(WellKnownFolder::Calendar).unwrap();
    assert_eq!(
        store.folder(calendar).unwrap().container_class.as_deref(),
        Some("IPF.Appointment")
    );
}

#[test]
fn same_seed_gives_same_store() {
    let (a, _) = store();
    let (b, _) = store();
    assert_eq!(a.replica_guid(), b.replica_guid());
    let c = Store::new(StoreOptions {
        seed: 8,
        ..StoreOptions::default()
    });
    assert_ne!(a.replica_guid(), c.replica_guid());
}

#[test]
fn change_number_grows_on_every_change() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let first = store
        .create_item(session, inbox(&store), note("a"))
        .unwrap();
    let read = store.set_read(session, first.id, true).unwrap();
    let second = store
        .update_item(
            session,
            first.id,
            ItemUpdate::default(),
            &ImportStamp::default(),
        )
        .unwrap();
    assert!(read.read_cn > first.cn);
    assert!(second.cn > read.read_cn);
    assert_eq!(store.current_globcnt(), second.cn.0);
}

#[test]
fn modification_keeps_id_changes_key() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let created = store
        .create_item(session, inbox(&store), note("a"))
        .unwrap();
    assert_eq!(created.change_key.to_bytes().len(), 22);
    assert_eq!(created.change_key.namespace(), store.replica_guid());

    let update = ItemUpdate {
        subject: Some("b".to_owned()),
        ..ItemUpdate::default()
    };
    let updated = store
        .update_item(session, created.id, update, &ImportStamp::default())
        .unwrap();
    assert_eq!(updated.id, created.id);
    assert_ne!(updated.change_key, created.change_key);

    let item = store.item(created.id).unwrap();
    assert_eq!(item.props.subject, "b");
    assert_eq!(item.stamp.session, session);
    assert!(item.stamp.pcl.includes(&updated.change_key));
    assert!(item.stamp.pcl.includes(&created.change_key));
    assert_eq!(item.stamp.pcl.entries().len(), 1);
}

#[test]
fn read_change_keeps_change_key() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let created = store
        .create_item(session, inbox(&store), note("a"))
        .unwrap();
    let read = store.set_read(session, created.id, true).unwrap();
    let item = store.item(created.id).unwrap();
    assert!(item.props.read);
    assert_eq!(item.stamp.cn, created.cn);
    assert_eq!(item.stamp.change_key, created.change_key);
    assert_eq!(item.read_cn, Some(read.read_cn));
}

#[test]
fn imported_change_key_kept_as_given() {
    let (mut store, _) = store();
    let session = store.open_session("ics");
    let own = Guid([0xab; 16]);
    let change_key = Xid::new(own, &[0, 0, 0, 0, 0, 9]).unwrap();
    let mut pcl = Pcl::new();
    pcl.merge_xid(&change_key);
    let new = NewItem {
        import: ImportStamp {
            change_key: Some(change_key.clone()),
            pcl: Some(pcl.clone()),
        },
        ..note("imported")
    };
    let created = store.create_item(session, inbox(&store), new).unwrap();
    assert_eq!(created.change_key, change_key);
    let item = store.item(created.id).unwrap();
    assert_eq!(item.stamp.pcl, pcl);

    // A later server-side change keeps the client's namespace in the PCL.
    let updated = store
        .update_item(
            session,
            created.id,
            ItemUpdate::default(),
            &ImportStamp::default(),
        )
        .unwrap();
    let item = store.item(updated.id).unwrap();
    assert!(item.stamp.pcl.includes(&change_key));
    assert_eq!(item.stamp.pcl.entries().len(), 2);
}

#[test]
fn move_gives_new_id_and_tombstone() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let drafts = store.well_known_folder(WellKnownFolder::Drafts).unwrap();
    let created = store
        .create_item(session, inbox(&store), note("a"))
        .unwrap();
    let moved = store.move_item(session, created.id, drafts).unwrap();
    assert_ne!(moved.id, created.id);
    assert!(store.item(created.id).is_none());
    assert_eq!(store.item(moved.id).unwrap().folder, drafts);
    let tombstone = store.item_tombstone(created.id).unwrap();
    assert_eq!(tombstone.moved_to, Some(moved.id));
    assert_eq!(tombstone.parent, inbox(&store));
}

#[test]
fn copy_is_a_new_item() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let created = store
        .create_item(session, inbox(&store), note("a"))
        .unwrap();
    let copied = store.copy_item(session, created.id, inbox(&store)).unwrap();
    assert_ne!(copied.id, created.id);
    assert_ne!(copied.change_key, created.change_key);
    assert!(store.item(created.id).is_some());
    assert_eq!(store.item(copied.id).unwrap().props.subject, "a");
}

#[test]
fn delete_leaves_tombstone() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let created = store
        .create_item(session, inbox(&store), note("a"))
        .unwrap();
    let cn = store.delete_item(session, created.id).unwrap();
    assert!(store.item(created.id).is_none());
    assert_eq!(store.item_tombstone(created.id).unwrap().cn, cn);
    assert!(matches!(
        store.delete_item(session, created.id),
        Err(StoreError::ItemNotFound { .. })
    ));
}

#[test]
fn mime_item_gets_properties() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let mime =
        b"From: Ann <ann@example.test>\r\nTo: user1@example.test\r\nSubject: Hi\r\n\r\nBody\r\n"
            .to_vec();
    let new = NewItem {
        content: NewItemContent::Mime(mime.clone()),
        ..NewItem::default()
    };
    let created = store.create_item(session, inbox(&store), new).unwrap();
    let item = store.item(created.id).unwrap();
    assert_eq!(item.props.subject, "Hi");
    assert_eq!(
        item.props.sender.as_ref().unwrap().address,
        "ann@example.test"
    );
    assert_eq!(item.size, mime.len() as u64);
    assert_eq!(item.mime.as_deref(), Some(mime.as_slice()));
    assert!(item.props.received.is_some());
}

#[test]
fn folder_rules() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let top = store
        .well_known_folder(WellKnownFolder::MsgFolderRoot)
        .unwrap();
    let import = ImportStamp::default();

    let a = store
        .create_folder(session, top, "A", Some("IPF.Note"), &import)
        .unwrap();
    assert!(matches!(
        store.create_folder(session, top, "a", None, &import),
        Err(StoreError::FolderNameTaken { .. })
    ));
    let b = store
        .create_folder(session, a.id, "B", None, &import)
        .unwrap();
    let renamed = store.rename_folder(session, a.id, "A2", &import).unwrap();
    assert_eq!(renamed.id, a.id);
    assert_ne!(renamed.change_key, a.change_key);
    assert!(matches!(
        store.move_folder(session, a.id, b.id),
        Err(StoreError::FolderCycle { .. })
    ));
    assert!(matches!(
        store.rename_folder(session, inbox(&store), "x", &import),
        Err(StoreError::WellKnownFolder { .. })
    ));

    let item = store.create_item(session, b.id, note("in b")).unwrap();
    store.move_folder(session, b.id, top).unwrap();
    assert_eq!(store.folder(b.id).unwrap().parent, Some(top));
    store.move_folder(session, b.id, a.id).unwrap();

    store.delete_folder(session, a.id).unwrap();
    assert!(store.folder(a.id).is_none());
    assert!(store.folder(b.id).is_none());
    assert!(store.folder_tombstone(b.id).is_some());
    assert!(store.item(item.id).is_none());
}

#[test]
fn list_items_pages() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    for i in 0..5 {
        store
            .create_item(session, inbox(&store), note(&format!("{i}")))
            .unwrap();
    }
    let options = ListOptions {
        offset: 0,
        max_entries: 2,
        associated: false,
    };
    let page = store.list_items(inbox(&store), options).unwrap();
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.total, 5);
    assert!(page.more_available);
    let last = store
        .list_items(
            inbox(&store),
            ListOptions {
                offset: 4,
                ..options
            },
        )
        .unwrap();
    assert_eq!(last.items.len(), 1);
    assert!(!last.more_available);
}

#[test]
fn expired_session_rejected() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    store.expire_session(session);
    assert!(matches!(
        store.create_item(session, inbox(&store), note("a")),
        Err(StoreError::SessionExpired { .. })
    ));
    assert!(matches!(
        store.create_item(SessionId(999), inbox(&store), note("a")),
        Err(StoreError::UnknownSession { .. })
    ));
}

#[test]
fn sync_reports_create_modify_delete_read() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let folder = inbox(&store);
    let a = store.create_item(session, folder, note("a")).unwrap();
    let b = store.create_item(session, folder, note("b")).unwrap();
    let c = store.create_item(session, folder, note("c")).unwrap();

    let first = store
        .sync_contents(
            &SyncState::empty(SyncKind::Contents, folder),
            SyncOptions::default(),
        )
        .unwrap();
    assert_eq!(first.changes.len(), 3);
    assert!(
        first
            .changes
            .iter()
            .all(|change| change.kind == ChangeKind::Created)
    );
    assert!(!first.more_available);

    store
        .update_item(
            session,
            a.id,
            ItemUpdate::default(),
            &ImportStamp::default(),
        )
        .unwrap();
    store.delete_item(session, b.id).unwrap();
    store.set_read(session, c.id, true).unwrap();

    let second = store
        .sync_contents(&first.state, SyncOptions::default())
        .unwrap();
    assert_eq!(second.changes.len(), 1);
    assert_eq!(second.changes[0].kind, ChangeKind::Modified);
    assert_eq!(second.changes[0].item.mid, a.id);
    assert_eq!(second.deletions, vec![b.id]);
    assert_eq!(second.read_changes.len(), 1);
    assert_eq!(second.read_changes[0].mid, c.id);
    assert!(second.read_changes[0].read);

    let third = store
        .sync_contents(&second.state, SyncOptions::default())
        .unwrap();
    assert!(
        third.changes.is_empty() && third.deletions.is_empty() && third.read_changes.is_empty()
    );
}

#[test]
fn sync_pages_with_more_available() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let folder = inbox(&store);
    for i in 0..5 {
        store
            .create_item(session, folder, note(&format!("{i}")))
            .unwrap();
    }
    let options = SyncOptions {
        max_changes: 2,
        include_fai: false,
    };
    let mut state = SyncState::empty(SyncKind::Contents, folder);
    let mut sizes = Vec::new();
    loop {
        let batch = store.sync_contents(&state, options).unwrap();
        sizes.push(batch.changes.len());
        state = batch.state;
        if !batch.more_available {
            break;
        }
    }
    assert_eq!(sizes, vec![2, 2, 1]);
}

#[test]
fn checkpoint_hides_own_upload() {
    let (mut store, _) = store();
    let session = store.open_session("ics");
    let other = store.open_session("other");
    let folder = inbox(&store);
    let batches = full_sync(&store, &SyncState::empty(SyncKind::Contents, folder));
    let mut state = batches.last().unwrap().state.clone();

    let own = store.create_item(session, folder, note("mine")).unwrap();
    state.checkpoint(&own, false);
    let theirs = store.create_item(other, folder, note("theirs")).unwrap();

    let batch = store.sync_contents(&state, SyncOptions::default()).unwrap();
    let mids: Vec<Mid> = batch.changes.iter().map(|change| change.item.mid).collect();
    assert_eq!(mids, vec![theirs.id]);
}

#[test]
fn sync_state_bytes_round_trip() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let folder = inbox(&store);
    store.create_item(session, folder, note("a")).unwrap();
    let batch = store
        .sync_contents(
            &SyncState::empty(SyncKind::Contents, folder),
            SyncOptions::default(),
        )
        .unwrap();
    let bytes = batch.state.to_bytes();
    assert_eq!(SyncState::from_bytes(&bytes).unwrap(), batch.state);
    for cut in 0..bytes.len() {
        assert_eq!(
            SyncState::from_bytes(&bytes[..cut]),
            Err(SyncStateRejection::Unparsable),
            "cut at {cut}"
        );
    }
}

#[test]
fn sync_rejects_bad_states() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let folder = inbox(&store);
    let drafts = store.well_known_folder(WellKnownFolder::Drafts).unwrap();
    store.create_item(session, folder, note("a")).unwrap();
    let state = full_sync(&store, &SyncState::empty(SyncKind::Contents, folder))
        .pop()
        .unwrap()
        .state;

    let reason = |result: Result<ContentSyncBatch, StoreError>| match result {
        Err(StoreError::InvalidSyncState { reason, .. }) => reason,
        other => panic!("expected an invalid sync state, got {other:?}"),
    };

    let mut future = state.clone();
    future.seen.insert(Globcnt::new(1_000_000).unwrap());
    assert_eq!(
        reason(store.sync_contents(&future, SyncOptions::default())),
        SyncStateRejection::FromTheFuture
    );

    let hierarchy = SyncState {
        kind: SyncKind::Hierarchy,
        ..state.clone()
    };
    assert_eq!(
        reason(store.sync_contents(&hierarchy, SyncOptions::default())),
        SyncStateRejection::FolderMismatch
    );

    let other = Store::new(StoreOptions {
        seed: 99,
        ..StoreOptions::default()
    });
    assert_eq!(
        reason(other.sync_contents(&state, SyncOptions::default())),
        SyncStateRejection::OtherStore
    );

    store.invalidate_sync_states(folder).unwrap();
    assert_eq!(
        reason(store.sync_contents(&state, SyncOptions::default())),
        SyncStateRejection::Invalidated
    );
    let fresh = full_sync(&store, &SyncState::empty(SyncKind::Contents, folder))
        .pop()
        .unwrap()
        .state;
    assert!(store.sync_contents(&fresh, SyncOptions::default()).is_ok());

    // Other folders' states stay valid.
    let drafts_state = SyncState::empty(SyncKind::Contents, drafts);
    assert!(
        store
            .sync_contents(&drafts_state, SyncOptions::default())
            .is_ok()
    );
}

#[test]
fn hierarchy_sync_reports_changes() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let top = store
        .well_known_folder(WellKnownFolder::MsgFolderRoot)
        .unwrap();
    let import = ImportStamp::default();
    let empty = SyncState::empty(SyncKind::Hierarchy, top);
    let first = store
        .sync_hierarchy(&empty, SyncOptions::default())
        .unwrap();
    assert_eq!(first.changes.len(), 8);

    let a = store
        .create_folder(session, top, "A", None, &import)
        .unwrap();
    let b = store
        .create_folder(session, a.id, "B", None, &import)
        .unwrap();
    store.rename_folder(session, a.id, "A2", &import).unwrap();
    let second = store
        .sync_hierarchy(&first.state, SyncOptions::default())
        .unwrap();
    let fids: Vec<Fid> = second
        .changes
        .iter()
        .map(|change| change.folder.fid)
        .collect();
    assert_eq!(fids, vec![a.id, b.id], "parent before child");

    store.delete_folder(session, a.id).unwrap();
    let third = store
        .sync_hierarchy(&second.state, SyncOptions::default())
        .unwrap();
    assert_eq!(third.deletions, vec![a.id, b.id]);
    assert!(third.changes.is_empty());
}

#[test]
fn subscription_receives_own_changes_in_order() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let folder = inbox(&store);
    let drafts = store.well_known_folder(WellKnownFolder::Drafts).unwrap();
    let scope = SubscriptionScope::Folders([folder].into_iter().collect());
    let sub = store
        .subscribe(session, scope, EventKinds::ALL, None)
        .unwrap();

    let a = store
        .create_item(
            session,
            folder,
            NewItem {
                new_mail: true,
                ..note("a")
            },
        )
        .unwrap();
    store.set_read(session, a.id, true).unwrap();
    let moved = store.move_item(session, a.id, drafts).unwrap();
    store
        .create_item(session, drafts, note("elsewhere"))
        .unwrap();

    let batch = store.poll_notices(sub, None, 10).unwrap();
    let kinds: Vec<EventKind> = batch.notices.iter().map(|notice| notice.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::Created,
            EventKind::NewMail,
            EventKind::Modified,
            EventKind::Moved
        ]
    );
    assert!(batch.notices.iter().all(|notice| notice.session == session));
    assert!(
        batch
            .notices
            .windows(2)
            .all(|w| w[0].watermark < w[1].watermark)
    );
    let last = batch.notices.last().unwrap();
    assert_eq!(last.object, ObjectId::Item(moved.id));
    assert_eq!(last.old_object, Some(ObjectId::Item(a.id)));
    assert_eq!(last.old_parent, Some(folder));

    // Unacknowledged notices come again; acknowledged ones do not.
    assert_eq!(store.poll_notices(sub, None, 10).unwrap().notices.len(), 4);
    let after = store.poll_notices(sub, Some(batch.watermark), 10).unwrap();
    assert!(after.notices.is_empty());
    assert_eq!(after.watermark, batch.watermark);
}

#[test]
fn subscription_filters_kinds_and_pages() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let folder = inbox(&store);
    let kinds: EventKinds = [EventKind::Deleted].into_iter().collect();
    let sub = store
        .subscribe(session, SubscriptionScope::Store, kinds, None)
        .unwrap();
    let mut mids = Vec::new();
    for i in 0..3 {
        mids.push(
            store
                .create_item(session, folder, note(&format!("{i}")))
                .unwrap()
                .id,
        );
    }
    for mid in &mids {
        store.delete_item(session, *mid).unwrap();
    }
    let batch = store.poll_notices(sub, None, 2).unwrap();
    assert_eq!(batch.notices.len(), 2);
    assert!(batch.more_available);
    assert!(
        batch
            .notices
            .iter()
            .all(|notice| notice.kind == EventKind::Deleted)
    );
}

#[test]
fn subscription_expires() {
    let (mut store, clock) = store();
    let session = store.open_session("test");
    let sub = store
        .subscribe(
            session,
            SubscriptionScope::Store,
            EventKinds::ALL,
            Some(Duration::from_secs(60)),
        )
        .unwrap();
    clock.advance(Duration::from_secs(59));
    assert!(store.poll_notices(sub, None, 10).is_ok());
    clock.advance(Duration::from_secs(61));
    assert!(matches!(
        store.poll_notices(sub, None, 10),
        Err(StoreError::SubscriptionExpired { .. })
    ));

    let other = store
        .subscribe(session, SubscriptionScope::Store, EventKinds::ALL, None)
        .unwrap();
    store.expire_subscription(other);
    assert!(matches!(
        store.poll_notices(other, None, 10),
        Err(StoreError::SubscriptionExpired { .. })
    ));
}

#[test]
fn notice_delay_and_reorder() {
    let (mut store, clock) = store();
    let session = store.open_session("test");
    let folder = inbox(&store);
    let sub = store
        .subscribe(session, SubscriptionScope::Store, EventKinds::ALL, None)
        .unwrap();

    store.delay_next_notice(sub, Duration::from_secs(5));
    let a = store.create_item(session, folder, note("a")).unwrap();
    let b = store.create_item(session, folder, note("b")).unwrap();
    let batch = store.poll_notices(sub, None, 10).unwrap();
    assert_eq!(batch.notices.len(), 1);
    assert_eq!(batch.notices[0].object, ObjectId::Item(b.id));
    clock.advance(Duration::from_secs(5));
    let batch = store.poll_notices(sub, Some(batch.watermark), 10).unwrap();
    assert_eq!(batch.notices.len(), 1);
    assert_eq!(batch.notices[0].object, ObjectId::Item(a.id));

    store.reorder_next_notices(sub);
    let c = store.create_item(session, folder, note("c")).unwrap();
    let d = store.create_item(session, folder, note("d")).unwrap();
    let batch = store.poll_notices(sub, Some(batch.watermark), 10).unwrap();
    let objects: Vec<ObjectId> = batch.notices.iter().map(|notice| notice.object).collect();
    assert_eq!(objects, vec![ObjectId::Item(d.id), ObjectId::Item(c.id)]);
}

#[test]
fn front_end_faults_taken_in_order() {
    let (mut store, _) = store();
    let one = store.open_session("one");
    let two = store.open_session("two");
    store.inject_front_end_fault(Some(two), FrontEndFault::DropConnection);
    let busy = FrontEndFault::ServerBusy {
        back_off: Duration::from_millis(250),
    };
    store.inject_front_end_fault(None, busy);
    assert_eq!(store.take_front_end_fault(one), Some(busy));
    assert_eq!(store.take_front_end_fault(one), None);
    assert_eq!(
        store.take_front_end_fault(two),
        Some(FrontEndFault::DropConnection)
    );
}

#[test]
fn rewritten_change_key_is_synced() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let folder = inbox(&store);
    let created = store.create_item(session, folder, note("a")).unwrap();
    let state = full_sync(&store, &SyncState::empty(SyncKind::Contents, folder))
        .pop()
        .unwrap()
        .state;
    let rewritten = store.rewrite_change_key(created.id).unwrap();
    assert_ne!(rewritten.change_key, created.change_key);
    let item = store.item(created.id).unwrap();
    assert_eq!(item.stamp.session, SessionId::SYSTEM);
    let batch = store.sync_contents(&state, SyncOptions::default()).unwrap();
    assert_eq!(batch.changes.len(), 1);
    assert_eq!(batch.changes[0].item.stamp.change_key, rewritten.change_key);
}

#[test]
fn hierarchy_sync_pages() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let top = store
        .well_known_folder(WellKnownFolder::MsgFolderRoot)
        .unwrap();
    let import = ImportStamp::default();
    let parent = store
        .create_folder(session, top, "P", None, &import)
        .unwrap();
    store
        .create_folder(session, parent.id, "C", None, &import)
        .unwrap();

    let options = SyncOptions {
        max_changes: 3,
        include_fai: false,
    };
    let mut state = SyncState::empty(SyncKind::Hierarchy, top);
    let mut seen = Vec::new();
    loop {
        let batch = store.sync_hierarchy(&state, options).unwrap();
        assert!(batch.changes.len() <= 3);
        seen.extend(batch.changes.iter().map(|change| change.folder.fid));
        state = batch.state;
        if !batch.more_available {
            break;
        }
    }
    assert_eq!(seen.len(), 10);
    let parent_at = seen.iter().position(|fid| *fid == parent.id).unwrap();
    assert_eq!(parent_at, 8, "the subfolder comes after its parent");
}

#[test]
fn store_is_send_and_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Store>();
    let (mut store, _) = store();
    let session = store.open_session("test");
    let fork = store.clone();
    store
        .create_item(session, inbox(&store), note("a"))
        .unwrap();
    assert_eq!(
        fork.list_items(inbox(&fork), ListOptions::default())
            .unwrap()
            .total,
        0
    );
}

#[test]
fn folder_counts_track_read_and_fai() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let folder = inbox(&store);
    let a = store.create_item(session, folder, note("a")).unwrap();
    store.create_item(session, folder, note("b")).unwrap();
    let fai = NewItem {
        associated: true,
        ..note("view settings")
    };
    store.create_item(session, folder, fai).unwrap();
    store.set_read(session, a.id, true).unwrap();
    let counts = store.folder_counts(folder).unwrap();
    assert_eq!(counts.total, 2);
    assert_eq!(counts.unread, 1);
    assert_eq!(counts.associated, 1);
}

#[test]
fn fai_items_sync_only_when_requested() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let folder = inbox(&store);
    store.create_item(session, folder, note("normal")).unwrap();
    let fai = NewItem {
        associated: true,
        ..note("view settings")
    };
    let fai = store.create_item(session, folder, fai).unwrap();
    let empty = SyncState::empty(SyncKind::Contents, folder);

    let normal_only = store.sync_contents(&empty, SyncOptions::default()).unwrap();
    assert_eq!(normal_only.changes.len(), 1);
    assert!(!normal_only.changes[0].item.associated);

    let options = SyncOptions {
        include_fai: true,
        ..SyncOptions::default()
    };
    let later = store.sync_contents(&normal_only.state, options).unwrap();
    let mids: Vec<Mid> = later.changes.iter().map(|change| change.item.mid).collect();
    assert_eq!(mids, vec![fai.id]);
    assert!(later.state.seen_fai.contains(fai.cn.0));
}

#[test]
fn mime_update_keeps_read_flag() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let first = b"From: a@example.test\r\nSubject: One\r\n\r\nx\r\n".to_vec();
    let second = b"From: b@example.test\r\nSubject: Two\r\n\r\ny\r\n".to_vec();
    let new = NewItem {
        content: NewItemContent::Mime(first),
        ..NewItem::default()
    };
    let created = store.create_item(session, inbox(&store), new).unwrap();
    store.set_read(session, created.id, true).unwrap();
    let update = ItemUpdate {
        mime: Some(second.clone()),
        ..ItemUpdate::default()
    };
    store
        .update_item(session, created.id, update, &ImportStamp::default())
        .unwrap();
    let item = store.item(created.id).unwrap();
    assert_eq!(item.props.subject, "Two");
    assert_eq!(
        item.props.sender.as_ref().unwrap().address,
        "b@example.test"
    );
    assert!(item.props.read);
    assert_eq!(item.mime.as_deref(), Some(second.as_slice()));
}

#[test]
fn empty_mime_rejected() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let before = store.current_globcnt();
    let new = NewItem {
        content: NewItemContent::Mime(Vec::new()),
        ..NewItem::default()
    };
    assert!(matches!(
        store.create_item(session, inbox(&store), new),
        Err(StoreError::InvalidMime { length: 0, .. })
    ));
    assert_eq!(store.current_globcnt(), before, "nothing committed");
}

#[test]
fn folder_notices_name_parents() {
    let (mut store, _) = store();
    let session = store.open_session("test");
    let top = store
        .well_known_folder(WellKnownFolder::MsgFolderRoot)
        .unwrap();
    let import = ImportStamp::default();
    let sub = store
        .subscribe(session, SubscriptionScope::Store, EventKinds::ALL, None)
        .unwrap();
    let a = store
        .create_folder(session, top, "A", None, &import)
        .unwrap();
    store.move_folder(session, a.id, inbox(&store)).unwrap();
    store.delete_folder(session, a.id).unwrap();
    let notices = store.poll_notices(sub, None, 10).unwrap().notices;
    let kinds: Vec<EventKind> = notices.iter().map(|notice| notice.kind).collect();
    assert_eq!(
        kinds,
        vec![EventKind::Created, EventKind::Moved, EventKind::Deleted]
    );
    assert_eq!(notices[1].old_parent, Some(top));
    assert_eq!(notices[1].parent, inbox(&store));
    assert_eq!(notices[2].object, ObjectId::Folder(a.id));
}

#[test]
fn same_operations_replay_identically() {
    let replay = || {
        let (mut store, clock) = store();
        let session = store.open_session("test");
        let folder = inbox(&store);
        let drafts = store.well_known_folder(WellKnownFolder::Drafts).unwrap();
        let sub = store
            .subscribe(session, SubscriptionScope::Store, EventKinds::ALL, None)
            .unwrap();
        for i in 0..20 {
            clock.advance(Duration::from_millis(5));
            let created = store
                .create_item(session, folder, note(&format!("{i}")))
                .unwrap();
            if i % 3 == 0 {
                store.move_item(session, created.id, drafts).unwrap();
            } else if i % 3 == 1 {
                store.set_read(session, created.id, true).unwrap();
            }
        }
        store.poll_notices(sub, None, 5).unwrap();
        format!("{store:?}")
    };
    assert_eq!(replay(), replay());
}
