#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property: an incremental sync from any earlier state, applied to the folder contents
//! of that state, reconstructs the current contents exactly, with every item's latest
//! change key, whatever the batch size.

use std::collections::BTreeMap;
use std::sync::Arc;

use exmux_core::ManualClock;
use exmux_emulator::store::*;
use proptest::prelude::*;

/// The copy of one item that a sync client keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Replica {
    props: ItemProps,
    change_key: Xid,
    associated: bool,
}

type Contents = BTreeMap<Mid, Replica>;

#[derive(Clone, Debug)]
enum Op {
    Create {
        session: usize,
        folder: usize,
        subject: u8,
        associated: bool,
    },
    Update {
        session: usize,
        item: usize,
        subject: u8,
    },
    SetRead {
        session: usize,
        item: usize,
        read: bool,
    },
    Delete {
        session: usize,
        item: usize,
    },
    Move {
        session: usize,
        item: usize,
        folder: usize,
    },
    Copy {
        session: usize,
        item: usize,
        folder: usize,
    },
    RewriteChangeKey {
        item: usize,
    },
    Snapshot,
}

const SESSIONS: usize = 3;
const FOLDERS: usize = 3;
/// The session that acts as an ICS client of the first folder: it checkpoints its own
/// writes into its state instead of downloading them again.
const ICS_SESSION: usize = 0;

fn op() -> impl Strategy<Value = Op> {
    let session = 0..SESSIONS;
    let folder = 0..FOLDERS;
    let item = 0..64usize;
    prop_oneof![
        4 => (session.clone(), folder.clone(), any::<u8>(), prop::bool::weighted(0.2)).prop_map(
            |(session, folder, subject, associated)| Op::Create { session, folder, subject, associated }
        ),
        3 => (session.clone(), item.clone(), any::<u8>())
            .prop_map(|(session, item, subject)| Op::Update { session, item, subject }),
        3 => (session.clone(), item.clone(), any::<bool>())
            .prop_map(|(session, item, read)| Op::SetRead { session, item, read }),
        2 => (session.clone(), item.clone()).prop_map(|(session, item)| Op::Delete { session, item }),
        2 => (session.clone(), item.clone(), folder.clone())
            .prop_map(|(session, item, folder)| Op::Move { session, item, folder }),
        1 => (session, item.clone(), folder).prop_map(|(session, item, folder)| Op::Copy { session, item, folder }),
        1 => item.prop_map(|item| Op::RewriteChangeKey { item }),
        2 => Just(Op::Snapshot),
    ]
}

fn truth(store: &Store, fid: Fid) -> Contents {
    let mut out = Contents::new();
    for associated in [false, true] {
        let options = ListOptions {
            offset: 0,
            max_entries: usize::MAX,
            associated,
        };
        for item in store.list_items(fid, options).unwrap().items {
            out.insert(item.mid, replica_of(item));
        }
    }
    out
}

fn replica_of(item: &Item) -> Replica {
    Replica {
        props: item.props.clone(),
        change_key: item.stamp.change_key.clone(),
        associated: item.associated,
    }
}

/// Syncs from `state` to the end in batches of `batch` entries, applying each batch to
/// `contents`. Returns the final state and the number of batches.
fn sync_into(
    store: &Store,
    state: &SyncState,
    contents: &mut Contents,
    batch: usize,
) -> (SyncState, usize) {
    let options = SyncOptions {
        max_changes: batch,
        include_fai: true,
    };
    let mut state = state.clone();
    let mut batches = 0;
    loop {
        let result = store.sync_contents(&state, options).unwrap();
        batches += 1;
        let entries = result.changes.len() + result.deletions.len() + result.read_changes.len();
        assert!(
            entries <= batch,
            "batch of {entries} entries exceeds {batch}"
        );
        if result.more_available {
            assert_eq!(entries, batch, "a batch with more available must be full");
        }

        for change in &result.changes {
            let known = contents.contains_key(&change.item.mid);
            assert_eq!(
                known,
                change.kind == ChangeKind::Modified,
                "kind of {}",
                change.item.mid
            );
            contents.insert(change.item.mid, replica_of(&change.item));
        }
        for mid in &result.deletions {
            contents.remove(mid);
        }
        for read in &result.read_changes {
            let replica = contents
                .get_mut(&read.mid)
                .expect("read change for an item the client has");
            replica.props.read = read.read;
        }

        state = result.state;
        if !result.more_available {
            return (state, batches);
        }
    }
}

fn pick(store: &Store, folders: &[Fid], index: usize) -> Option<Mid> {
    let mut all = Vec::new();
    for fid in folders {
        all.extend(truth(store, *fid).into_keys());
    }
    if all.is_empty() {
        return None;
    }
    all.get(index % all.len()).copied()
}

fn run(ops: Vec<Op>, batch: usize) {
    let clock = ManualClock::default();
    let mut store = Store::new(StoreOptions {
        seed: 1,
        clock: Arc::new(clock.clone()),
        ..StoreOptions::default()
    });
    let sessions: Vec<SessionId> = (0..SESSIONS)
        .map(|i| store.open_session(&format!("client {i}")))
        .collect();
    let inbox = store.well_known_folder(WellKnownFolder::Inbox).unwrap();
    let drafts = store.well_known_folder(WellKnownFolder::Drafts).unwrap();
    let top = store
        .well_known_folder(WellKnownFolder::MsgFolderRoot)
        .unwrap();
    let custom = store
        .create_folder(
            sessions[1],
            top,
            "Projects",
            Some("IPF.Note"),
            &ImportStamp::default(),
        )
        .unwrap()
        .id;
    let folders = [inbox, drafts, custom];

    // A store-wide subscription receives every change in order, including the changes
    // of other sessions.
    let watcher = store
        .subscribe(sessions[2], SubscriptionScope::Store, EventKinds::ALL, None)
        .unwrap();
    let mut expected_notices: Vec<(EventKind, SessionId)> = Vec::new();

    // Snapshots of every folder: the state of a complete sync and the contents it gave.
    let mut snapshots: Vec<(Fid, SyncState, Contents)> = Vec::new();
    // The ICS client of the inbox, kept current by its own checkpoints.
    let (mut ics_state, _) = {
        let mut contents = Contents::new();
        let result = sync_into(
            &store,
            &SyncState::empty(SyncKind::Contents, inbox),
            &mut contents,
            batch,
        );
        (result.0, contents)
    };
    let mut ics_contents = truth(&store, inbox);

    for op in ops {
        clock.advance(std::time::Duration::from_millis(10));
        match op {
            Op::Create {
                session,
                folder,
                subject,
                associated,
            } => {
                let fid = folders[folder];
                let new = NewItem {
                    content: NewItemContent::Props(ItemProps {
                        subject: format!("s{subject}"),
                        ..ItemProps::default()
                    }),
                    associated,
                    ..NewItem::default()
                };
                let write = store.create_item(sessions[session], fid, new).unwrap();
                expected_notices.push((EventKind::Created, sessions[session]));
                if session == ICS_SESSION && fid == inbox {
                    ics_state.checkpoint(&write, associated);
                    ics_contents.insert(write.id, replica_of(store.item(write.id).unwrap()));
                }
            }
            Op::Update {
                session,
                item,
                subject,
            } => {
                let Some(mid) = pick(&store, &folders, item) else {
                    continue;
                };
                let update = ItemUpdate {
                    subject: Some(format!("u{subject}")),
                    categories: Some(vec![format!("c{subject}")]),
                    ..ItemUpdate::default()
                };
                let write = store
                    .update_item(sessions[session], mid, update, &ImportStamp::default())
                    .unwrap();
                expected_notices.push((EventKind::Modified, sessions[session]));
                let item = store.item(mid).unwrap();
                if session == ICS_SESSION && item.folder == inbox {
                    ics_state.checkpoint(&write, item.associated);
                    ics_contents.insert(mid, replica_of(item));
                }
            }
            Op::SetRead {
                session,
                item,
                read,
            } => {
                let Some(mid) = pick(&store, &folders, item) else {
                    continue;
                };
                let result = store.set_read(sessions[session], mid, read).unwrap();
                expected_notices.push((EventKind::Modified, sessions[session]));
                let item = store.item(mid).unwrap();
                if session == ICS_SESSION && item.folder == inbox {
                    ics_state.checkpoint_read(&result);
                    if let Some(replica) = ics_contents.get_mut(&mid) {
                        replica.props.read = read;
                    }
                }
            }
            Op::Delete { session, item } => {
                let Some(mid) = pick(&store, &folders, item) else {
                    continue;
                };
                let folder = store.item(mid).unwrap().folder;
                store.delete_item(sessions[session], mid).unwrap();
                expected_notices.push((EventKind::Deleted, sessions[session]));
                if session == ICS_SESSION && folder == inbox {
                    ics_state.checkpoint_removal(mid);
                    ics_contents.remove(&mid);
                }
            }
            Op::Move {
                session,
                item,
                folder,
            }
            | Op::Copy {
                session,
                item,
                folder,
            } => {
                let copy = matches!(op, Op::Copy { .. });
                let Some(mid) = pick(&store, &folders, item) else {
                    continue;
                };
                let source = store.item(mid).unwrap().folder;
                let target = folders[folder];
                let write = if copy {
                    store.copy_item(sessions[session], mid, target).unwrap()
                } else {
                    store.move_item(sessions[session], mid, target).unwrap()
                };
                let kind = if copy {
                    EventKind::Copied
                } else {
                    EventKind::Moved
                };
                expected_notices.push((kind, sessions[session]));
                if session == ICS_SESSION {
                    if !copy && source == inbox {
                        ics_state.checkpoint_removal(mid);
                        ics_contents.remove(&mid);
                    }
                    if target == inbox {
                        let item = store.item(write.id).unwrap();
                        ics_state.checkpoint(&write, item.associated);
                        ics_contents.insert(write.id, replica_of(item));
                    }
                }
            }
            Op::RewriteChangeKey { item } => {
                let Some(mid) = pick(&store, &folders, item) else {
                    continue;
                };
                store.rewrite_change_key(mid).unwrap();
                expected_notices.push((EventKind::Modified, SessionId::SYSTEM));
            }
            Op::Snapshot => {
                for fid in folders {
                    let mut contents = Contents::new();
                    let (state, _) = sync_into(
                        &store,
                        &SyncState::empty(SyncKind::Contents, fid),
                        &mut contents,
                        batch,
                    );
                    assert_eq!(contents, truth(&store, fid), "full sync of {fid}");
                    snapshots.push((fid, state, contents));
                }
            }
        }
    }

    for (fid, state, mut contents) in snapshots {
        sync_into(&store, &state, &mut contents, batch);
        assert_eq!(contents, truth(&store, fid), "incremental sync of {fid}");
    }

    // The ICS client downloads only what others changed, and ends equal too.
    let (_, _) = sync_into(&store, &ics_state, &mut ics_contents, batch);
    assert_eq!(
        ics_contents,
        truth(&store, inbox),
        "ICS client of the inbox"
    );

    let notices = store
        .poll_notices(watcher, None, usize::MAX)
        .unwrap()
        .notices;
    let seen: Vec<(EventKind, SessionId)> = notices
        .iter()
        .map(|notice| (notice.kind, notice.session))
        .collect();
    assert_eq!(
        seen, expected_notices,
        "notices of the store-wide subscription"
    );
    assert!(
        notices
            .windows(2)
            .all(|pair| pair[0].watermark < pair[1].watermark),
        "watermarks increase"
    );

    // A state written to bytes and read back syncs the same.
    let bytes = ics_state.to_bytes();
    assert_eq!(SyncState::from_bytes(&bytes).unwrap(), ics_state);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn incremental_sync_reconstructs_contents(
        ops in prop::collection::vec(op(), 1..60),
        batch in 1usize..5,
    ) {
        run(ops, batch);
    }
}
