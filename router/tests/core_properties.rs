//! Property tests of the router core against a small model of a mailbox server.
//!
//! Random interleavings of remote changes, this transport's writes (with results that
//! arrive late or never), notices, sync pages, restarts and a server that reports
//! modifications of items that no longer exist. After the run settles, the embedder's
//! replica (built only from the events and its own writes) must equal the server, no
//! full resync may have happened, and each item's change keys must arrive in order.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, VecDeque};

use exmux_router::RouterCore;
use exmux_router::config::Preset;
use exmux_router::core::{
    ChangeKind, CoreOptions, Event, FetchOutcome, Input, ItemChange, Output, Request, RouterState,
    SyncChange, SyncPage, SyncState, WriteIntent, WriteOutcome,
};
use exmux_router::ids::{BackendFolderId, BackendItemId, FolderKey, ItemKey};
use exmux_router::journal::{ChangeKey, WriteId};
use exmux_router::operation::{Backend, Operation};
use proptest::prelude::*;

const NOW: u64 = 1_704_067_200_000;
const PAGE_SIZE: usize = 3;

#[derive(Clone, Debug)]
enum Action {
    RemoteCreate,
    RemoteModify(usize),
    RemoteRead(usize, bool),
    RemoteDelete(usize),
    LocalModify(usize, bool),
    LocalRead(usize, bool, bool),
    LocalDelete(usize, bool),
    CompleteWrite,
    Notice,
    Step,
    GhostUpdate,
    Restart,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        2 => Just(Action::RemoteCreate),
        2 => any::<usize>().prop_map(Action::RemoteModify),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(i, r)| Action::RemoteRead(i, r)),
        1 => any::<usize>().prop_map(Action::RemoteDelete),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(i, l)| Action::LocalModify(i, l)),
        2 => (any::<usize>(), any::<bool>(), any::<bool>()).prop_map(|(i, r, l)| Action::LocalRead(i, r, l)),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(i, l)| Action::LocalDelete(i, l)),
        3 => Just(Action::CompleteWrite),
        3 => Just(Action::Notice),
        5 => Just(Action::Step),
        1 => Just(Action::GhostUpdate),
        1 => Just(Action::Restart),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    Content,
    Read,
    Delete,
}

#[derive(Default)]
struct Server {
    next_id: u64,
    version: u64,
    // id -> (change-key version, read)
    items: BTreeMap<String, (u64, bool)>,
    created_at: BTreeMap<String, usize>,
    log: Vec<(String, Entry)>,
    ghosts: Vec<String>,
}

fn change_key(version: u64) -> ChangeKey {
    ChangeKey(version.to_be_bytes().to_vec())
}

fn version_of(key: &ChangeKey) -> u64 {
    u64::from_be_bytes(key.0.as_slice().try_into().unwrap())
}

impl Server {
    fn create(&mut self) {
        self.next_id += 1;
        self.version += 1;
        let id = format!("m{}", self.next_id);
        self.items.insert(id.clone(), (self.version, false));
        self.created_at.insert(id.clone(), self.log.len());
        self.log.push((id, Entry::Content));
    }

    fn modify(&mut self, id: &str) -> Option<u64> {
        self.version += 1;
        let version = self.version;
        let item = self.items.get_mut(id)?;
        item.0 = version;
        self.log.push((id.to_owned(), Entry::Content));
        Some(version)
    }

    fn set_read(&mut self, id: &str, read: bool) -> bool {
        let Some(item) = self.items.get_mut(id) else {
            return false;
        };
        item.1 = read;
        self.log.push((id.to_owned(), Entry::Read));
        true
    }

    fn delete(&mut self, id: &str) -> bool {
        if self.items.remove(id).is_none() {
            return false;
        }
        self.log.push((id.to_owned(), Entry::Delete));
        true
    }

    fn pick(&self, index: usize) -> Option<String> {
        if self.items.is_empty() {
            return None;
        }
        self.items.keys().nth(index % self.items.len()).cloned()
    }

    // Like EWS SyncFolderItems: the changes since `from`, one per item with its latest
    // state, in the order of each item's first change. An item whose changes since
    // `from` only touched the read state is reported as a read-state change.
    fn sync(&mut self, from: &SyncState) -> SyncPage {
        let start = if from.is_empty() {
            0
        } else {
            usize::from_be_bytes(from.0.as_slice().try_into().unwrap())
        };
        // Per item: the position of its first change in range, and whether any
        // change in range touched content.
        let mut first: BTreeMap<&str, (usize, bool)> = BTreeMap::new();
        for (position, (id, entry)) in self.log.iter().enumerate().skip(start) {
            let slot = first.entry(id.as_str()).or_insert((position, false));
            slot.1 |= *entry != Entry::Read;
        }
        let mut ordered: Vec<(usize, &str, bool)> = first
            .into_iter()
            .map(|(id, (position, content))| (position, id, content))
            .collect();
        ordered.sort();

        let mut changes = Vec::new();
        let mut excluded: Vec<&str> = Vec::new();
        for (_, id, content) in ordered {
            if changes.len() == PAGE_SIZE {
                excluded.push(id);
                continue;
            }
            let backend_id = BackendItemId::Ews(id.to_owned());
            changes.push(match self.items.get(id) {
                None => SyncChange::Deleted { id: backend_id },
                Some((_, read)) if !content => SyncChange::ReadState {
                    id: backend_id,
                    read: *read,
                },
                Some((version, read)) => SyncChange::Item(ItemChange {
                    id: backend_id,
                    kind: if self.created_at[id] >= start {
                        ChangeKind::Created
                    } else {
                        ChangeKind::Modified
                    },
                    change_key: Some(change_key(*version)),
                    predecessors: Vec::new(),
                    read: Some(*read),
                }),
            });
        }
        // A page ends just before the first change to an item it did not include, so
        // the next page reports those items.
        let end = self
            .log
            .iter()
            .enumerate()
            .skip(start)
            .find(|(_, (id, _))| excluded.contains(&id.as_str()))
            .map_or(self.log.len(), |(position, _)| position);
        let more_available = end < self.log.len();
        for ghost in self.ghosts.drain(..) {
            changes.push(SyncChange::Item(ItemChange {
                id: BackendItemId::Ews(ghost),
                kind: ChangeKind::Modified,
                change_key: Some(change_key(0)),
                predecessors: Vec::new(),
                read: None,
            }));
        }
        SyncPage {
            folder: FolderKey(0),
            changes,
            new_state: SyncState(end.to_be_bytes().to_vec()),
            more_available,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Replica {
    items: BTreeMap<ItemKey, (Option<u64>, Option<bool>)>,
}

struct World {
    server: Server,
    core: RouterCore,
    folder: FolderKey,
    requests: VecDeque<Request>,
    results: VecDeque<(WriteId, ItemKey, Option<WriteOutcome>)>,
    replica: Replica,
    last_version: BTreeMap<ItemKey, u64>,
    order_violations: Vec<String>,
}

impl World {
    fn new() -> Self {
        let mut core = RouterCore::new(
            uuid::Uuid::from_u128(0xabc),
            Preset::Ews.routing(),
            CoreOptions::default(),
        );
        let folder = core.register_folder(vec![BackendFolderId::Ews("inbox".into())]);
        Self {
            server: Server::default(),
            core,
            folder,
            requests: VecDeque::new(),
            results: VecDeque::new(),
            replica: Replica {
                items: BTreeMap::new(),
            },
            last_version: BTreeMap::new(),
            order_violations: Vec::new(),
        }
    }

    fn input(&mut self, input: Input) {
        self.core.handle(NOW, input).unwrap();
        self.collect();
    }

    fn collect(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Request(request) => self.requests.push_back(request),
                Output::Event(event) => self.apply(event),
                _ => {}
            }
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::ItemChanged {
                item,
                change_key,
                read,
                ..
            } => {
                let version = change_key.as_ref().map(version_of);
                if let Some(version) = version {
                    let last = self.last_version.entry(item).or_insert(0);
                    if version < *last {
                        self.order_violations
                            .push(format!("{item}: version {version} after {last}"));
                    }
                    *last = version;
                }
                let entry = self.replica.items.entry(item).or_insert((None, None));
                entry.0 = version.or(entry.0);
                entry.1 = read.or(entry.1);
            }
            Event::ReadStateChanged { item, read, .. } => {
                self.replica.items.entry(item).or_insert((None, None)).1 = Some(read);
            }
            Event::ItemDeleted { item, .. } => {
                self.replica.items.remove(&item);
            }
            _ => {}
        }
    }

    fn local_key(&self, index: usize) -> Option<(ItemKey, String)> {
        if self.replica.items.is_empty() {
            return None;
        }
        let key = *self
            .replica
            .items
            .keys()
            .nth(index % self.replica.items.len())?;
        match self.core.ids().backend_id(key, Backend::Ews)? {
            BackendItemId::Ews(id) => Some((key, id)),
            _ => None,
        }
    }

    fn write(&mut self, operation: Operation, index: usize, read: Option<bool>, lose: bool) {
        let Some((key, id)) = self.local_key(index) else {
            return;
        };
        let issued = self
            .core
            .begin_write(
                NOW,
                WriteIntent {
                    operation,
                    item: Some(key),
                    folder: self.folder,
                    backend: Backend::Ews,
                    session: String::new(),
                    assign_change_key: false,
                    read_state: read,
                    target_folder: None,
                },
            )
            .unwrap();

        // The embedder applies its own write to its replica at once.
        let outcome = match operation {
            Operation::Delete => {
                self.replica.items.remove(&key);
                if self.server.delete(&id) {
                    WriteOutcome::Succeeded {
                        change_key: None,
                        new_id: None,
                    }
                } else {
                    WriteOutcome::Failed
                }
            }
            _ if read.is_some() => {
                if let Some(entry) = self.replica.items.get_mut(&key) {
                    entry.1 = read;
                }
                if self.server.set_read(&id, read.unwrap_or_default()) {
                    WriteOutcome::Succeeded {
                        change_key: None,
                        new_id: None,
                    }
                } else {
                    WriteOutcome::Failed
                }
            }
            _ => match self.server.modify(&id) {
                Some(version) => WriteOutcome::Succeeded {
                    change_key: Some(change_key(version)),
                    new_id: None,
                },
                None => WriteOutcome::Failed,
            },
        };
        let outcome = if lose { None } else { Some(outcome) };
        self.results.push_back((issued.id, key, outcome));
    }

    fn complete_write(&mut self) {
        let Some((write, key, outcome)) = self.results.pop_front() else {
            return;
        };
        let outcome = match outcome {
            Some(WriteOutcome::Succeeded { change_key, new_id }) => {
                // The embedder learns the new change key of its own edit.
                if let (Some(version), Some(entry)) = (
                    change_key.as_ref().map(version_of),
                    self.replica.items.get_mut(&key),
                ) {
                    entry.0 = Some(version);
                }
                WriteOutcome::Succeeded { change_key, new_id }
            }
            Some(other) => other,
            None => WriteOutcome::Lost,
        };
        self.input(Input::WriteResult { write, outcome });
    }

    fn step(&mut self) {
        let Some(request) = self.requests.pop_front() else {
            return;
        };
        match request {
            Request::Sync { folder, from, .. } => {
                let mut page = self.server.sync(&from);
                page.folder = folder;
                self.input(Input::SyncPage(page));
            }
            Request::Verify { folder, id, .. } => {
                let BackendItemId::Ews(text) = &id else {
                    return;
                };
                let outcome = match self.server.items.get(text) {
                    Some((version, read)) => FetchOutcome::Found {
                        change_key: Some(change_key(*version)),
                        read: Some(*read),
                    },
                    None => FetchOutcome::NotFound,
                };
                self.input(Input::FetchResult {
                    folder,
                    id,
                    outcome,
                });
            }
            _ => {}
        }
    }

    fn restart(&mut self) {
        let saved = serde_json::to_string(self.core.state()).unwrap();
        let state: RouterState = serde_json::from_str(&saved).unwrap();
        self.core = RouterCore::restore(state, Preset::Ews.routing(), CoreOptions::default());
        // In-flight requests and write results die with the process.
        self.requests.clear();
        self.results.clear();
        self.input(Input::Tick);
    }

    fn run(&mut self, action: Action) {
        match action {
            Action::RemoteCreate => self.server.create(),
            Action::RemoteModify(index) => {
                if let Some(id) = self.server.pick(index) {
                    self.server.modify(&id);
                }
            }
            Action::RemoteRead(index, read) => {
                if let Some(id) = self.server.pick(index) {
                    self.server.set_read(&id, read);
                }
            }
            Action::RemoteDelete(index) => {
                if let Some(id) = self.server.pick(index) {
                    self.server.delete(&id);
                }
            }
            Action::LocalModify(index, lose) => self.write(Operation::Update, index, None, lose),
            Action::LocalRead(index, read, lose) => {
                self.write(Operation::Update, index, Some(read), lose)
            }
            Action::LocalDelete(index, lose) => self.write(Operation::Delete, index, None, lose),
            Action::CompleteWrite => self.complete_write(),
            Action::Notice => self.input(Input::Notice {
                folder: self.folder,
            }),
            Action::Step => self.step(),
            Action::GhostUpdate => {
                self.server.next_id += 1;
                let ghost = format!("gone{}", self.server.next_id);
                self.server.ghosts.push(ghost);
            }
            Action::Restart => self.restart(),
        }
    }

    fn drain_requests(&mut self) {
        for _ in 0..10_000 {
            if self.requests.is_empty() {
                return;
            }
            self.step();
        }
        panic!("requests did not drain: {:?}", self.requests.front());
    }

    fn settle(&mut self) {
        while !self.results.is_empty() {
            self.complete_write();
        }
        self.input(Input::Tick);
        for _ in 0..1_000 {
            if self.requests.is_empty() {
                self.input(Input::Notice {
                    folder: self.folder,
                });
                if self.requests.is_empty() {
                    return;
                }
                self.step();
                while !self.requests.is_empty() {
                    self.step();
                }
                // One more round to confirm that nothing is left.
                self.input(Input::Notice {
                    folder: self.folder,
                });
                while !self.requests.is_empty() {
                    self.step();
                }
                return;
            }
            self.step();
        }
        panic!("the run did not settle");
    }

    // The replica keyed by server id.
    fn replica_by_server_id(&self) -> BTreeMap<String, (Option<u64>, Option<bool>)> {
        self.replica
            .items
            .iter()
            .map(|(key, value)| {
                let id = match self.core.ids().backend_id(*key, Backend::Ews) {
                    Some(BackendItemId::Ews(id)) => id,
                    other => format!("unmapped {key}: {other:?}"),
                };
                (id, *value)
            })
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn replica_converges_to_server(actions in proptest::collection::vec(action(), 1..80)) {
        let mut world = World::new();
        for action in actions {
            world.run(action);
        }
        world.settle();

        let expected: BTreeMap<String, (Option<u64>, Option<bool>)> = world
            .server
            .items
            .iter()
            .map(|(id, (version, read))| (id.clone(), (Some(*version), Some(*read))))
            .collect();
        prop_assert_eq!(world.replica_by_server_id(), expected);
        prop_assert_eq!(world.core.counters().full_resyncs, 0);
        prop_assert!(world.order_violations.is_empty(), "{:?}", world.order_violations);
        prop_assert!(world.core.state().held.is_empty(), "{:?}", world.core.state().held);
    }

    #[test]
    fn repeated_sync_delivers_nothing_new(actions in proptest::collection::vec(action(), 1..60)) {
        let mut world = World::new();
        for action in actions {
            world.run(action);
        }
        world.settle();
        let before = world.replica.clone();
        let counters = world.core.counters();

        // Re-syncing a settled folder changes nothing for the embedder.
        world.input(Input::Notice { folder: world.folder });
        world.drain_requests();
        prop_assert_eq!(&world.replica, &before);
        prop_assert_eq!(world.core.counters().remote_delivered, counters.remote_delivered);
    }
}
