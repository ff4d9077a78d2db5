#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property: an incremental hierarchy sync from any earlier state, applied to the folder
//! tree of that state, reconstructs the current tree exactly, with every folder's latest
//! change key, and never reports a folder before its parent.

use std::collections::BTreeMap;

use exmux_emulator::store::*;
use proptest::prelude::*;

/// The copy of one folder that a sync client keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Replica {
    parent: Option<Fid>,
    name: String,
    change_key: Xid,
}

type Tree = BTreeMap<Fid, Replica>;

#[derive(Clone, Debug)]
enum Op {
    Create {
        session: usize,
        parent: usize,
        name: u8,
    },
    Rename {
        session: usize,
        folder: usize,
        name: u8,
    },
    Move {
        session: usize,
        folder: usize,
        parent: usize,
    },
    Delete {
        session: usize,
        folder: usize,
    },
    Snapshot,
}

fn op() -> impl Strategy<Value = Op> {
    let session = 0..2usize;
    let index = 0..64usize;
    prop_oneof![
        4 => (session.clone(), index.clone(), any::<u8>())
            .prop_map(|(session, parent, name)| Op::Create { session, parent, name }),
        2 => (session.clone(), index.clone(), any::<u8>())
            .prop_map(|(session, folder, name)| Op::Rename { session, folder, name }),
        2 => (session.clone(), index.clone(), index.clone())
            .prop_map(|(session, folder, parent)| Op::Move { session, folder, parent }),
        1 => (session, index).prop_map(|(session, folder)| Op::Delete { session, folder }),
        2 => Just(Op::Snapshot),
    ]
}

fn replica_of(folder: &Folder) -> Replica {
    Replica {
        parent: folder.parent,
        name: folder.display_name.clone(),
        change_key: folder.stamp.change_key.clone(),
    }
}

fn truth(store: &Store, root: Fid) -> Tree {
    store
        .descendant_folders(root)
        .into_iter()
        .map(|(_, folder)| (folder.fid, replica_of(folder)))
        .collect()
}

fn sync_into(
    store: &Store,
    root: Fid,
    state: &SyncState,
    tree: &mut Tree,
    batch: usize,
) -> SyncState {
    let options = SyncOptions {
        max_changes: batch,
        include_fai: false,
    };
    let mut state = state.clone();
    loop {
        let result = store.sync_hierarchy(&state, options).unwrap();
        assert!(result.changes.len() + result.deletions.len() <= batch);

        for change in &result.changes {
            let parent = change.folder.parent.unwrap();
            assert!(
                parent == root || tree.contains_key(&parent),
                "folder {} reported before its parent {parent}",
                change.folder.fid
            );
            tree.insert(change.folder.fid, replica_of(&change.folder));
        }
        for fid in &result.deletions {
            tree.remove(fid);
        }

        state = result.state;
        if !result.more_available {
            return state;
        }
    }
}

fn run(ops: Vec<Op>, batch: usize) {
    let mut store = Store::new(StoreOptions {
        seed: 3,
        ..StoreOptions::default()
    });
    let sessions = [store.open_session("one"), store.open_session("two")];
    let root = store
        .well_known_folder(WellKnownFolder::MsgFolderRoot)
        .unwrap();
    let import = ImportStamp::default();
    let mut snapshots: Vec<(SyncState, Tree)> = Vec::new();

    for op in ops {
        // Folders are picked by index among the current subtree, the root included.
        let mut folders: Vec<Fid> = vec![root];
        folders.extend(truth(&store, root).into_keys());
        let pick = |index: usize| folders[index % folders.len()];

        // Rejected operations (a duplicate name, a well-known folder, a cycle) change
        // nothing, so the property must hold after them too.
        match op {
            Op::Create {
                session,
                parent,
                name,
            } => {
                let _ = store.create_folder(
                    sessions[session],
                    pick(parent),
                    &format!("f{name}"),
                    None,
                    &import,
                );
            }
            Op::Rename {
                session,
                folder,
                name,
            } => {
                let _ = store.rename_folder(
                    sessions[session],
                    pick(folder),
                    &format!("r{name}"),
                    &import,
                );
            }
            Op::Move {
                session,
                folder,
                parent,
            } => {
                let _ = store.move_folder(sessions[session], pick(folder), pick(parent));
            }
            Op::Delete { session, folder } => {
                let _ = store.delete_folder(sessions[session], pick(folder));
            }
            Op::Snapshot => {
                let mut tree = Tree::new();
                let empty = SyncState::empty(SyncKind::Hierarchy, root);
                let state = sync_into(&store, root, &empty, &mut tree, batch);
                assert_eq!(tree, truth(&store, root), "full hierarchy sync");
                snapshots.push((state, tree));
            }
        }
    }

    for (state, mut tree) in snapshots {
        sync_into(&store, root, &state, &mut tree, batch);
        assert_eq!(tree, truth(&store, root), "incremental hierarchy sync");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn hierarchy_sync_reconstructs_tree(
        ops in prop::collection::vec(op(), 1..50),
        batch in 1usize..5,
    ) {
        run(ops, batch);
    }
}
