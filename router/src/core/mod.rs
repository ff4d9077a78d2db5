//! The router core: a state machine with no I/O.
//!
//! The driver feeds [`Input`]s with the current time and takes [`Output`]s: events for
//! the embedder and requests to issue. Every write is announced with
//! [`RouterCore::begin_write`] before it goes out. The whole state, including the
//! journal and the change-key namespace, is a [`RouterState`] that serializes.
//!
//! Each folder is in one [`Phase`]: idle, syncing (with a flag that a notice arrived
//! meanwhile), or waiting to retry. A notice starts a sync only from idle, so notices
//! are coalesced into at most one follow-up sync per folder.

mod classify;
pub mod types;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Routing;
use crate::ids::{BackendFolderId, BackendItemId, FolderKey, IdMap, ItemKey};
use crate::journal::{
    ChangeKey, ChangeKeyAllocator, CounterExhausted, Journal, JournalEntry, WriteId, WriteStatus,
};
use crate::operation::{Backend, Operation};
pub use types::*;

/// Tunables of the core. Times are in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreOptions {
    /// Deliver changes recognised as this transport's own (origin `Local`).
    pub deliver_local: bool,
    /// A write with no result after this long is treated as lost.
    pub write_timeout_millis: u64,
    /// Settled journal entries older than this are retired even if their folder is
    /// never synced again.
    pub journal_retention_millis: u64,
    /// The first retry delay after a retryable sync failure; it doubles per failure.
    pub retry_base_millis: u64,
    /// The largest retry delay.
    pub retry_max_millis: u64,
}

impl Default for CoreOptions {
    fn default() -> Self {
        Self {
            deliver_local: false,
            write_timeout_millis: 120_000,
            journal_retention_millis: 24 * 60 * 60 * 1000,
            retry_base_millis: 1_000,
            retry_max_millis: 300_000,
        }
    }
}

/// The sync phase of a folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Phase {
    /// No sync in flight.
    Idle,
    /// A sync round is in flight; `dirty` when a notice arrived since it started.
    Syncing {
        /// A notice arrived during the round, so another round follows it.
        dirty: bool,
    },
    /// A sync failed and is retried at `retry_at_millis`.
    RetryWait {
        /// When to retry.
        retry_at_millis: u64,
    },
}

/// The round of sync in flight for a folder: every page from one request until the
/// server reports no more changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    /// The round started from a non-empty state.
    pub from_non_empty: bool,
    /// The round is a full resync: items held but not reported are deleted at its end.
    pub full: bool,
    /// The items reported in this round.
    pub seen: BTreeSet<ItemKey>,
}

/// A folder the router syncs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderState {
    /// The folder's id on each backend that has been registered.
    pub ids: Vec<BackendFolderId>,
    /// The backend `sync_state` belongs to.
    pub sync_backend: Backend,
    /// The state to sync from next. The embedder persists it with the router state.
    pub sync_state: SyncState,
    /// The sync phase.
    pub phase: Phase,
    /// The number of sync rounds started; journal entries are retired against it.
    pub rounds_started: u64,
    /// Consecutive failed attempts, for the retry delay.
    pub failures: u32,
    /// The round in flight.
    pub round: Option<Round>,
    /// The number of the last full resync round that completed, 0 for none.
    #[serde(default)]
    pub last_full_round: u64,
}

/// The reason changes to one item are held back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum HoldReason {
    /// A write to the item is pending; its result decides the origin.
    AwaitWrite,
    /// The item is unknown and a verification fetch is in flight.
    AwaitVerify,
}

/// Changes to one item held back, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The folder the changes came from.
    pub folder: FolderKey,
    /// Why.
    pub reason: HoldReason,
    /// The folder's sync round that reported the first change.
    pub round: u64,
    /// The folder's sync round that reported the latest change.
    #[serde(default)]
    pub latest_round: u64,
    /// For a verification fetch, the id of the last write journaled when the fetch
    /// went out. A write with a larger id may postdate the fetched state.
    #[serde(default)]
    pub fetched_after_write: u64,
    /// For a verification fetch, the first sync round of the folder whose pages the
    /// server may compute after the fetch: the round in flight when the fetch went
    /// out, or else the next one.
    #[serde(default)]
    pub fetch_round: u64,
    /// A round from `fetch_round` on reported a modification of the item while the
    /// fetch was in flight, so the fetched state may be older than that modification.
    #[serde(default)]
    pub changed_during_fetch: bool,
    /// The changes.
    pub changes: VecDeque<SyncChange>,
}

/// The complete state of the core. Serialize it to persist the router across restarts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterState {
    /// The source of exmux's change keys.
    pub change_keys: ChangeKeyAllocator,
    /// This transport's writes.
    pub journal: Journal,
    /// Item keys and backend ids.
    pub ids: IdMap,
    /// The folders.
    #[serde(with = "crate::pairs")]
    pub folders: BTreeMap<FolderKey, FolderState>,
    /// Changes held back, by item id.
    #[serde(with = "crate::pairs")]
    pub held: BTreeMap<BackendItemId, Held>,
    next_folder: u64,
}

impl RouterState {
    /// Creates an empty state whose change keys use `namespace`. Use a random
    /// (version 4) GUID per installation.
    pub fn new(namespace: Uuid) -> Self {
        Self {
            change_keys: ChangeKeyAllocator::new(namespace),
            journal: Journal::default(),
            ids: IdMap::default(),
            folders: BTreeMap::new(),
            held: BTreeMap::new(),
            next_folder: 0,
        }
    }
}

/// A misuse of the core's API or an input it cannot apply. The core's state is
/// unchanged when one is returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The folder was never registered.
    #[error("folder {folder} is not registered: call register_folder first")]
    UnknownFolder {
        /// The folder.
        folder: FolderKey,
    },
    /// A write names an item the router does not hold.
    #[error("{operation} names item {item}, which the router does not hold")]
    UnknownItem {
        /// The operation.
        operation: Operation,
        /// The item.
        item: ItemKey,
    },
    /// A write names no item where the operation needs one, or names one for `create`.
    #[error("{operation} needs {expected}")]
    InvalidWrite {
        /// The operation.
        operation: Operation,
        /// The missing or unexpected part.
        expected: &'static str,
    },
    /// A result names a write the journal does not hold.
    #[error("write {} is not in the journal, or its result was already reported", write.0)]
    UnknownWrite {
        /// The write.
        write: WriteId,
    },
    /// A sync page or failure arrived for a folder with no sync in flight.
    #[error("sync result for {folder}, which has no sync in flight: drop it")]
    UnexpectedSyncResult {
        /// The folder.
        folder: FolderKey,
    },
    /// An id is bound to an item the router does not hold.
    #[error("item {item} is not in the id map: bind ids only to items the router reported")]
    UnknownItemKey {
        /// The item.
        item: ItemKey,
    },
    /// An id to bind already names another item.
    #[error("{id} already names {bound}, so it cannot name {item}: check the id conversion")]
    IdBoundElsewhere {
        /// The id.
        id: BackendItemId,
        /// The item it names.
        bound: ItemKey,
        /// The item it was to be bound to.
        item: ItemKey,
    },
    /// The change-key counter ran out.
    #[error(transparent)]
    CounterExhausted(#[from] CounterExhausted),
}

/// The router core. See the module documentation.
#[derive(Debug)]
pub struct RouterCore {
    state: RouterState,
    routing: Routing,
    options: CoreOptions,
    outputs: VecDeque<Output>,
    counters: Counters,
}

impl RouterCore {
    /// Creates a core with an empty state.
    pub fn new(namespace: Uuid, routing: Routing, options: CoreOptions) -> Self {
        Self::restore(RouterState::new(namespace), routing, options)
    }

    /// Creates a core from a persisted state. Writes that were pending become lost
    /// (their outcome cannot be learned any more), verification fetches are queued
    /// again at once, and syncs that were in flight are issued again at the first
    /// [`Input::Tick`].
    pub fn restore(mut state: RouterState, routing: Routing, options: CoreOptions) -> Self {
        let pending: Vec<WriteId> = state
            .journal
            .iter()
            .filter(|entry| entry.status == WriteStatus::Pending)
            .map(|entry| entry.id)
            .collect();
        for id in pending {
            let round = state
                .journal
                .get(id)
                .and_then(|entry| state.folders.get(&entry.folder))
                .map_or(0, |folder| folder.rounds_started);
            if let Some(entry) = state.journal.get_mut(id) {
                entry.status = WriteStatus::Lost;
                entry.settled_at_round = Some(round);
            }
        }
        for folder in state.folders.values_mut() {
            if folder.phase != Phase::Idle {
                folder.phase = Phase::RetryWait { retry_at_millis: 0 };
            }
        }

        let mut core = Self {
            state,
            routing,
            options,
            outputs: VecDeque::new(),
            counters: Counters::default(),
        };
        // Changes held for a write that is now lost can be classified at once.
        let held_ids: Vec<BackendItemId> = core
            .state
            .held
            .iter()
            .filter(|(_, held)| held.reason == HoldReason::AwaitWrite)
            .map(|(id, _)| id.clone())
            .collect();
        for id in held_ids {
            core.release_if_settled(&id);
        }
        // Verification fetches in flight died with the process: issue them again.
        let verifying: Vec<(BackendItemId, FolderKey)> = core
            .state
            .held
            .iter()
            .filter(|(_, held)| held.reason == HoldReason::AwaitVerify)
            .map(|(id, held)| (id.clone(), held.folder))
            .collect();
        let fetch_backend = core.routing.backend_for(Operation::Fetch);
        for (id, folder) in verifying {
            core.outputs.push_back(Output::Request(Request::Verify {
                folder,
                backend: fetch_backend,
                id,
            }));
        }
        core
    }

    /// Returns the state, to persist it.
    pub fn state(&self) -> &RouterState {
        &self.state
    }

    /// Returns the counters since creation or restore.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Returns the routing.
    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    /// Returns the item map.
    pub fn ids(&self) -> &IdMap {
        &self.state.ids
    }

    /// Takes the next output, in the order the core produced them.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Takes all outputs.
    pub fn drain_outputs(&mut self) -> Vec<Output> {
        self.outputs.drain(..).collect()
    }

    /// Registers a folder by its backend ids and returns its key. A folder whose id
    /// is already registered keeps its key, and new ids are added to it.
    pub fn register_folder(&mut self, ids: Vec<BackendFolderId>) -> FolderKey {
        let existing = self.state.folders.iter_mut().find(|(_, folder)| {
            folder
                .ids
                .iter()
                .any(|known| ids.iter().any(|id| id == known))
        });
        if let Some((key, folder)) = existing {
            for id in ids {
                if !folder.ids.contains(&id) {
                    folder.ids.push(id);
                }
            }
            return *key;
        }

        self.state.next_folder += 1;
        let key = FolderKey(self.state.next_folder);
        self.state.folders.insert(
            key,
            FolderState {
                ids,
                sync_backend: self.routing.backend_for(Operation::SyncItems),
                sync_state: SyncState::default(),
                phase: Phase::Idle,
                rounds_started: 0,
                failures: 0,
                round: None,
                last_full_round: 0,
            },
        );
        key
    }

    /// Replaces the id that folder `key` has on `id`'s backend with `id`, for a folder
    /// whose id changed (an EWS MoveFolder may return a new FolderId). The sync state
    /// stays, since it names no folder id.
    ///
    /// # Errors
    /// [`CoreError::UnknownFolder`] when `key` is not registered.
    pub fn set_folder_id(&mut self, key: FolderKey, id: BackendFolderId) -> Result<(), CoreError> {
        let folder = self
            .state
            .folders
            .get_mut(&key)
            .ok_or(CoreError::UnknownFolder { folder: key })?;
        folder.ids.retain(|known| known.backend() != id.backend());
        folder.ids.push(id);
        Ok(())
    }

    /// Forgets a folder that this transport deleted: its ids, sync state and phase,
    /// the items the router places in it, their held changes and their journal
    /// entries, pending or not. No event is queued for the forgotten items, because
    /// the embedder deleted the folder itself, and the server reports no folder
    /// deletion in an item sync. A sync result or write result that arrives later for
    /// the folder or its items returns [`CoreError::UnknownFolder`] or
    /// [`CoreError::UnknownWrite`] and changes nothing.
    ///
    /// # Errors
    /// [`CoreError::UnknownFolder`] when `key` is not registered; nothing changes then.
    pub fn forget_folder(&mut self, key: FolderKey) -> Result<(), CoreError> {
        if self.state.folders.remove(&key).is_none() {
            return Err(CoreError::UnknownFolder { folder: key });
        }
        let items: BTreeSet<ItemKey> = self.state.ids.items_in(key).into_iter().collect();
        self.state.journal.remove_where(|entry| {
            entry.folder == key || entry.target_folder == Some(key) || items.contains(&entry.item)
        });
        self.state.held.retain(|_, held| held.folder != key);
        self.state
            .ids
            .forget_moved_away_of(|item| items.contains(&item));
        for item in items {
            self.state.ids.remove(item);
        }
        Ok(())
    }

    /// Records a write about to be issued and returns its journal id, the item key it
    /// concerns and, when asked, the change key to stamp on it.
    ///
    /// # Errors
    /// [`CoreError::UnknownFolder`], [`CoreError::UnknownItem`],
    /// [`CoreError::InvalidWrite`] or [`CoreError::CounterExhausted`]; the journal is
    /// unchanged then.
    pub fn begin_write(
        &mut self,
        now_millis: u64,
        intent: WriteIntent,
    ) -> Result<IssuedWrite, CoreError> {
        if !self.state.folders.contains_key(&intent.folder) {
            return Err(CoreError::UnknownFolder {
                folder: intent.folder,
            });
        }
        if let Some(target) = intent.target_folder
            && !self.state.folders.contains_key(&target)
        {
            return Err(CoreError::UnknownFolder { folder: target });
        }
        if !intent.operation.is_write() {
            return Err(CoreError::InvalidWrite {
                operation: intent.operation,
                expected: "a write operation",
            });
        }
        // A send is journaled like a create in Sent Items, where its copy arrives.
        let creates = matches!(intent.operation, Operation::Create | Operation::Send);
        match (creates, intent.item) {
            (true, Some(_)) => {
                return Err(CoreError::InvalidWrite {
                    operation: intent.operation,
                    expected: "no item key (create and send assign one)",
                });
            }
            (false, None) => {
                return Err(CoreError::InvalidWrite {
                    operation: intent.operation,
                    expected: "an item key",
                });
            }
            (false, Some(item)) if self.state.ids.get(item).is_none() => {
                return Err(CoreError::UnknownItem {
                    operation: intent.operation,
                    item,
                });
            }
            _ => {}
        }
        let needs_target = matches!(intent.operation, Operation::Move | Operation::Copy);
        if needs_target && intent.target_folder.is_none() {
            return Err(CoreError::InvalidWrite {
                operation: intent.operation,
                expected: "a target folder",
            });
        }

        let change_key = if intent.assign_change_key {
            Some(self.state.change_keys.allocate()?.to_change_key())
        } else {
            None
        };

        // A copy is journaled under the copy's own key in the destination folder, and
        // a move in the destination folder, because that is where their echo appears
        // and whose sync retires the entry. The source folder's deletion of a moved
        // item is recognised by the id the move unbinds.
        let (item, folder) = match (intent.operation, intent.item, intent.target_folder) {
            (Operation::Copy, _, Some(target)) => (self.state.ids.allocate(target), target),
            (Operation::Move, Some(item), Some(target)) => (item, target),
            (_, Some(item), _) => (item, intent.folder),
            _ => (self.state.ids.allocate(intent.folder), intent.folder),
        };

        let id = self.state.journal.record(
            intent.operation,
            item,
            folder,
            intent.backend,
            intent.session,
            change_key.clone(),
            intent.read_state,
            intent.target_folder,
            now_millis,
        );
        Ok(IssuedWrite {
            id,
            item,
            change_key,
        })
    }

    /// Applies one input at `now_millis` (milliseconds since the Unix epoch, from the
    /// driver's [`exmux_core::Clock`]) and queues the resulting outputs.
    ///
    /// # Errors
    /// A [`CoreError`] for an input that does not fit the state; nothing is applied
    /// then.
    pub fn handle(&mut self, now_millis: u64, input: Input) -> Result<(), CoreError> {
        match input {
            Input::Notice { folder } => self.on_notice(folder),
            Input::SyncPage(page) => self.on_sync_page(page),
            Input::SyncFailed { folder, failure } => {
                self.on_sync_failed(now_millis, folder, failure)
            }
            Input::WriteResult { write, outcome } => self.on_write_result(write, outcome),
            Input::FetchResult {
                folder,
                id,
                outcome,
            } => {
                self.on_fetch_result(folder, id, outcome);
                Ok(())
            }
            Input::UploadCheckpoint {
                folder,
                base,
                checkpoint,
                writes,
            } => self.on_upload_checkpoint(folder, &base, checkpoint, &writes),
            Input::Tick => {
                self.on_tick(now_millis);
                Ok(())
            }
        }
    }

    fn on_upload_checkpoint(
        &mut self,
        key: FolderKey,
        base: &SyncState,
        checkpoint: SyncState,
        writes: &[WriteId],
    ) -> Result<(), CoreError> {
        let folder = self
            .state
            .folders
            .get_mut(&key)
            .ok_or(CoreError::UnknownFolder { folder: key })?;
        // A round in flight or a state that moved on since the upload started would
        // be overwritten by an older view, and the next download would report changes
        // again that the embedder already has.
        if folder.phase != Phase::Idle || folder.sync_state != *base {
            return Ok(());
        }
        folder.sync_state = checkpoint;
        self.outputs
            .push_back(Output::Event(Event::SyncStateAdvanced { folder: key }));

        // The checkpoint contains the items the upload added, so a later download
        // reports their deletion, and no download reports their arrival. A read-state
        // or delete upload adds no id to the state, so an item that arrived through a
        // copy or move of ours stays unreported until a download reports it.
        for write in writes {
            let Some(item) = self
                .state
                .journal
                .get(*write)
                .filter(|entry| entry.operation.adds_item())
                .map(|entry| entry.item)
            else {
                continue;
            };
            if let Some(record) = self.state.ids.get_mut(item) {
                record.unreported_since_round = None;
            }
        }
        Ok(())
    }

    /// Binds `id` to `item`, so changes reported under `id` go to that item. The
    /// transport calls it for an id it decoded or converted from the item's id on the
    /// other backend (an EWS ItemId carries the MAPI entry id). An id the item
    /// already has on the same backend is replaced.
    ///
    /// # Errors
    /// [`CoreError::UnknownItemKey`] when the router does not hold `item`, and
    /// [`CoreError::IdBoundElsewhere`] when `id` already names another item; nothing
    /// changes then.
    pub fn bind_backend_id(&mut self, item: ItemKey, id: BackendItemId) -> Result<(), CoreError> {
        if self.state.ids.get(item).is_none() {
            return Err(CoreError::UnknownItemKey { item });
        }
        if let Some(bound) = self.state.ids.key_of(&id)
            && bound != item
        {
            return Err(CoreError::IdBoundElsewhere { id, bound, item });
        }
        self.state.ids.bind(item, id);
        Ok(())
    }

    fn on_notice(&mut self, key: FolderKey) -> Result<(), CoreError> {
        let folder = self
            .state
            .folders
            .get_mut(&key)
            .ok_or(CoreError::UnknownFolder { folder: key })?;
        match folder.phase {
            Phase::Idle => self.start_round(key),
            Phase::Syncing { .. } => folder.phase = Phase::Syncing { dirty: true },
            // The retry is already scheduled; it syncs from the same state.
            Phase::RetryWait { .. } => {}
        }
        Ok(())
    }

    fn start_round(&mut self, key: FolderKey) {
        let sync_backend = self.routing.backend_for(Operation::SyncItems);
        let Some(folder) = self.state.folders.get_mut(&key) else {
            return;
        };
        // NOTE: a state saved for the other backend cannot be used, so the folder
        // starts from empty. Items then match by id only where both ids are bound.
        if folder.sync_backend != sync_backend {
            folder.sync_backend = sync_backend;
            folder.sync_state = SyncState::default();
        }
        folder.rounds_started += 1;
        folder.phase = Phase::Syncing { dirty: false };
        // A full resync retried after a failure goes on from the state of its last
        // page, so the items of the pages before still count as reported by it.
        let full_round = folder.round.take().filter(|round| round.full);
        folder.round = Some(Round {
            from_non_empty: !folder.sync_state.is_empty(),
            full: full_round.is_some(),
            seen: full_round.map(|round| round.seen).unwrap_or_default(),
        });
        let request = Request::Sync {
            folder: key,
            backend: sync_backend,
            folder_id: folder
                .ids
                .iter()
                .find(|id| id.backend() == sync_backend)
                .cloned(),
            from: folder.sync_state.clone(),
        };
        self.outputs.push_back(Output::Request(request));
    }

    fn on_sync_page(&mut self, page: SyncPage) -> Result<(), CoreError> {
        let folder = self
            .state
            .folders
            .get(&page.folder)
            .ok_or(CoreError::UnknownFolder {
                folder: page.folder,
            })?;
        if !matches!(folder.phase, Phase::Syncing { .. }) {
            return Err(CoreError::UnexpectedSyncResult {
                folder: page.folder,
            });
        }

        for change in page.changes {
            self.apply_change(page.folder, change);
        }

        let Some(folder) = self.state.folders.get_mut(&page.folder) else {
            return Ok(());
        };
        folder.sync_state = page.new_state;
        folder.failures = 0;
        self.outputs
            .push_back(Output::Event(Event::SyncStateAdvanced {
                folder: page.folder,
            }));

        if page.more_available {
            let request = Request::Sync {
                folder: page.folder,
                backend: folder.sync_backend,
                folder_id: folder
                    .ids
                    .iter()
                    .find(|id| id.backend() == folder.sync_backend)
                    .cloned(),
                from: folder.sync_state.clone(),
            };
            self.outputs.push_back(Output::Request(request));
            return Ok(());
        }

        self.finish_round(page.folder);
        Ok(())
    }

    fn finish_round(&mut self, key: FolderKey) {
        let Some(folder) = self.state.folders.get_mut(&key) else {
            return;
        };
        let round = folder.round.take().unwrap_or_default();
        let completed_round = folder.rounds_started;
        let dirty = matches!(folder.phase, Phase::Syncing { dirty: true });
        folder.phase = Phase::Idle;
        if round.full {
            folder.last_full_round = completed_round;
        }

        // After a full resync, the server has reported every item it holds: the rest
        // are gone, unless a write of ours to them is still pending. A write whose
        // outcome was lost changes nothing about that, and makes the deletion Unknown.
        if round.full {
            for item in self.state.ids.live_items_in(key) {
                if round.seen.contains(&item) {
                    continue;
                }
                // An arrival of ours that settled during the round may postdate the
                // pages, so a later complete round decides, as for any arrival.
                let arrived_during_round = self.state.ids.get(item).is_some_and(|record| {
                    record
                        .unreported_since_round
                        .is_some_and(|since| since >= completed_round)
                });
                if arrived_during_round {
                    continue;
                }
                // The new sync state lacks the item, so a later round reports it if it
                // exists. A later round that does not report it shows it gone. Changes
                // held from an earlier round do not count as that report once released.
                if self.is_held(item) || self.has_pending_write(item) {
                    if let Some(record) = self.state.ids.get_mut(item) {
                        record.unreported_since_round = Some(completed_round);
                    }
                    continue;
                }
                self.apply_deletion(key, item);
            }
        }

        self.drop_unreported_arrivals(key, completed_round);

        // Changes held for a fetch were reported by an earlier round and are classified
        // against the journal when the fetch returns, so their items keep their entries.
        let mut kept_items: BTreeSet<ItemKey> = self
            .state
            .held
            .keys()
            .filter_map(|id| self.state.ids.key_of(id))
            .collect();
        // A response can arrive after the response of a later write to the same item,
        // and it must not overwrite the later write's change key or read state. The
        // later write's entry shows that, so an item with a pending write keeps its
        // entries.
        kept_items.extend(
            self.state
                .journal
                .iter()
                .filter(|entry| entry.status == WriteStatus::Pending)
                .map(|entry| entry.item),
        );
        // A new item held for the response of a create, copy or move is classified
        // against this folder's arrivals once released, so they stay until then.
        let new_item_held = self
            .state
            .held
            .iter()
            .any(|(id, held)| held.folder == key && self.state.ids.key_of(id).is_none());
        if !new_item_held {
            for entry in self.state.journal.retire(key, completed_round, &kept_items) {
                self.note_retired_removal(&entry);
                self.forget_if_deleted(entry.item);
            }
        }

        if dirty {
            self.start_round(key);
        }
    }

    fn on_sync_failed(
        &mut self,
        now_millis: u64,
        key: FolderKey,
        failure: SyncFailure,
    ) -> Result<(), CoreError> {
        let options = self.options;
        let folder = self
            .state
            .folders
            .get_mut(&key)
            .ok_or(CoreError::UnknownFolder { folder: key })?;
        if !matches!(folder.phase, Phase::Syncing { .. }) {
            return Err(CoreError::UnexpectedSyncResult { folder: key });
        }

        match failure {
            SyncFailure::InvalidSyncState => {
                folder.sync_state = SyncState::default();
                folder.round = Some(Round {
                    full: true,
                    ..Round::default()
                });
                folder.phase = Phase::Idle;
                self.counters.full_resyncs += 1;
                self.outputs.push_back(Output::Event(Event::FullResync {
                    folder: key,
                    reason: ResyncReason::SyncStateRejected,
                }));
                self.start_round(key);
            }
            SyncFailure::Other { message, retryable } => {
                folder.failures = folder.failures.saturating_add(1);
                let retry_at_millis = retryable.then(|| {
                    let exponent = folder.failures.saturating_sub(1).min(30);
                    let delay = options
                        .retry_base_millis
                        .saturating_mul(1u64 << exponent)
                        .min(options.retry_max_millis);
                    now_millis.saturating_add(delay)
                });
                // The round is abandoned; a retry or the next notice starts a new one
                // from the last state the server confirmed. A full resync keeps the
                // items its pages reported, because that state already contains them.
                let full_round = folder.round.take().filter(|round| round.full);
                folder.round = full_round.map(|round| Round {
                    full: true,
                    seen: round.seen,
                    ..Round::default()
                });
                folder.phase = match retry_at_millis {
                    Some(retry_at_millis) => Phase::RetryWait { retry_at_millis },
                    None => Phase::Idle,
                };
                self.outputs.push_back(Output::Event(Event::SyncFailed {
                    folder: key,
                    message,
                    retry_at_millis,
                }));
            }
        }
        Ok(())
    }

    fn on_write_result(&mut self, write: WriteId, outcome: WriteOutcome) -> Result<(), CoreError> {
        let entry = self
            .state
            .journal
            .get(write)
            .filter(|entry| entry.status == WriteStatus::Pending)
            .cloned()
            .ok_or(CoreError::UnknownWrite { write })?;
        let round = self
            .state
            .folders
            .get(&entry.folder)
            .map_or(0, |folder| folder.rounds_started);

        let status = match &outcome {
            WriteOutcome::Succeeded { .. } => WriteStatus::Succeeded,
            WriteOutcome::Failed => WriteStatus::Failed,
            WriteOutcome::Lost => WriteStatus::Lost,
        };
        // A moved item keeps its change key (MS-OXCFXICS ImportMessageMove keeps the
        // message's PCL), so a move whose result names no key expects its echo in the
        // target with the key the item had.
        let kept_key = (entry.operation == Operation::Move && entry.change_key.is_none())
            .then(|| {
                self.state
                    .ids
                    .get(entry.item)
                    .and_then(|record| record.change_key.clone())
            })
            .flatten();
        if let Some(journaled) = self.state.journal.get_mut(write) {
            journaled.status = status;
            journaled.settled_at_round = Some(round);
            match &outcome {
                WriteOutcome::Succeeded {
                    change_key: Some(key),
                    ..
                } => journaled.change_key = Some(key.clone()),
                WriteOutcome::Succeeded { .. } => {
                    if let Some(key) = kept_key {
                        journaled.change_key = Some(key);
                    }
                }
                _ => {}
            }
        }

        let item = entry.item;
        // Collected before the outcome rebinds ids: a move unbinds the id that changes
        // were held under, and a create binds the id of a new item held unbound.
        let held: Vec<BackendItemId> = self
            .state
            .held
            .iter()
            .filter(|(id, held)| {
                held.reason == HoldReason::AwaitWrite
                    && match self.state.ids.key_of(id) {
                        Some(key) => key == item,
                        None => held.folder == entry.folder,
                    }
            })
            .map(|(id, _)| id.clone())
            .collect();
        match outcome {
            WriteOutcome::Succeeded { change_key, new_id } => {
                if entry.operation == Operation::Move
                    && let Some(target) = entry.target_folder
                {
                    self.state.ids.relocate(item, target);
                }
                let arrives = entry.operation.adds_item();
                if let Some(id) = new_id {
                    self.state.ids.bind(item, id);
                    if arrives && let Some(record) = self.state.ids.get_mut(item) {
                        record.unreported_since_round = Some(round);
                    }
                }
                // Responses can arrive out of order. The server applied a later
                // write after this one, so a response that arrives after a later
                // write's success must not overwrite that write's key or read state.
                let later = |field: fn(&JournalEntry) -> bool| {
                    self.state.journal.entries_for(item).any(|later| {
                        later.id > write && later.status == WriteStatus::Succeeded && field(later)
                    })
                };
                let newer_key = later(|later| later.change_key.is_some());
                let newer_read = later(|later| later.read_state.is_some());
                if let Some(record) = self.state.ids.get_mut(item) {
                    if let Some(key) = change_key.or(entry.change_key)
                        && !newer_key
                    {
                        record.change_key = Some(key);
                    }
                    if entry.read_state.is_some() && !newer_read {
                        record.read = entry.read_state;
                    }
                    if entry.operation == Operation::Delete {
                        record.deleted_locally = true;
                    }
                }
                // NOTE: a copy whose new id the server withheld (MAPI always, EWS
                // sometimes) keeps no binding. The copy arrives at the next sync as a
                // new item of Remote origin, and the key allocated here stays unused.
            }
            WriteOutcome::Failed => {
                let unbound = self.state.ids.get(item).is_some_and(|record| {
                    record.ews.is_none() && record.mapi.is_none() && !record.deleted_locally
                });
                let creates = matches!(
                    entry.operation,
                    Operation::Create | Operation::Copy | Operation::Send
                );
                if creates && unbound {
                    self.state.ids.remove(item);
                }
            }
            WriteOutcome::Lost => {}
        }

        for id in held {
            self.release_if_settled(&id);
        }
        Ok(())
    }

    fn on_fetch_result(&mut self, key: FolderKey, id: BackendItemId, outcome: FetchOutcome) {
        let Some(held) = self.state.held.get(&id) else {
            return;
        };
        if held.reason != HoldReason::AwaitVerify || held.folder != key {
            return;
        }

        match outcome {
            FetchOutcome::Found { change_key, read } => {
                let Some(held) = self.state.held.remove(&id) else {
                    return;
                };
                // A modification reported while the fetch was in flight may come from
                // a page computed after the fetch, so a new fetch runs after it.
                if held.changed_during_fetch {
                    self.fetch_again(key, id, held);
                    return;
                }
                let known = self.state.ids.key_of(&id);
                if let Some(item) = known
                    && self.has_pending_write(item)
                {
                    self.hold_fetched_state(key, id, change_key, read, held);
                    return;
                }
                // A write of ours that went out and settled while the fetch was in
                // flight may be missing from the fetched state, which would then
                // overwrite the write and make its echo look remote. A new fetch
                // runs after that write.
                if let Some(item) = known
                    && self.wrote_since(item, held.fetched_after_write)
                {
                    self.fetch_again(key, id, held);
                    return;
                }
                if let Some(item) = known {
                    // A known item whose reported change may predate a write of ours:
                    // the fetched state is current and is classified like a change.
                    self.apply_item_change(
                        key,
                        item,
                        ItemChange {
                            id: id.clone(),
                            kind: ChangeKind::Modified,
                            change_key,
                            predecessors: Vec::new(),
                            read: None,
                        },
                        false,
                    );
                    if let Some(read) = read {
                        self.apply_read_state(key, item, read);
                    }
                } else if self.state.ids.moved_away_key(&id).is_some() {
                    // Our move's response unbound the id while the fetch was in
                    // flight. The item lives on under its new id in the target folder,
                    // whose sync reports a state at least as new as this one.
                    self.counters.superseded_dropped += 1;
                } else {
                    let item = self.state.ids.key_or_insert(&id, key);
                    if let Some(record) = self.state.ids.get_mut(item) {
                        record.change_key = change_key.clone();
                        record.read = read;
                        record.last_remote_seq = self.state.journal.next_id();
                    }
                    self.mark_seen(key, item);
                    self.counters.remote_delivered += 1;
                    self.outputs.push_back(Output::Event(Event::ItemChanged {
                        folder: key,
                        item,
                        id: id.clone(),
                        origin: Origin::Remote,
                        kind: ChangeKind::Modified,
                        change_key,
                        read,
                    }));
                }
                // The fetch returned the item's current state, which is newer than
                // every held modification; only a deletion reported after the fetch
                // ran can still apply.
                let deletions = held
                    .changes
                    .into_iter()
                    .filter(|change| matches!(change, SyncChange::Deleted { .. }));
                for change in deletions {
                    self.apply_change(key, change);
                }
            }
            FetchOutcome::NotFound => {
                let Some(held) = self.state.held.remove(&id) else {
                    return;
                };
                // The item is gone, which is a deletion like one a sync reports. It is
                // classified the same way, so a delete of ours still in flight delays it
                // until its result decides the origin.
                match self.state.ids.key_of(&id) {
                    Some(_) => {
                        self.apply_change_in_round(key, SyncChange::Deleted { id }, held.round);
                    }
                    None => self.counters.unverified_dropped += held.changes.len() as u64,
                }
            }
            FetchOutcome::Failed { retryable: true } => {
                self.outputs.push_back(Output::Request(Request::Verify {
                    folder: key,
                    backend: self.routing.backend_for(Operation::Fetch),
                    id,
                }));
            }
            FetchOutcome::Failed { retryable: false } => {
                // Existence cannot be checked, and dropping could lose a change, so
                // the changes are delivered with their origin left open.
                if let Some(held) = self.state.held.remove(&id) {
                    let item = self.state.ids.key_or_insert(&id, key);
                    for change in held.changes {
                        self.deliver_unverified(key, item, change);
                    }
                }
            }
        }
    }

    // Returns true when a write to `item` that did not fail was journaled after write
    // id `after`.
    fn wrote_since(&self, item: ItemKey, after: u64) -> bool {
        self.state
            .journal
            .entries_for(item)
            .any(|entry| entry.id.0 > after && entry.status != WriteStatus::Failed)
    }

    // Returns the first round of folder `key` whose pages may postdate a fetch that
    // goes out now.
    pub(super) fn fetch_round(&self, key: FolderKey) -> u64 {
        self.state.folders.get(&key).map_or(0, |folder| {
            if folder.round.is_some() {
                folder.rounds_started
            } else {
                folder.rounds_started + 1
            }
        })
    }

    // Holds the changes again behind a new verification fetch of `id`.
    fn fetch_again(&mut self, key: FolderKey, id: BackendItemId, held: Held) {
        self.state.held.insert(
            id.clone(),
            Held {
                fetched_after_write: self.state.journal.next_id(),
                fetch_round: self.fetch_round(key),
                changed_during_fetch: false,
                ..held
            },
        );
        self.outputs.push_back(Output::Request(Request::Verify {
            folder: key,
            backend: self.routing.backend_for(Operation::Fetch),
            id,
        }));
    }

    // A write to the item went out while the fetch was in flight, so the fetched state
    // may already contain it, under a change key that only the write's response
    // reveals. The state waits for that response, like a change a sync reports during
    // a pending write, followed by the deletions held behind the fetch.
    fn hold_fetched_state(
        &mut self,
        key: FolderKey,
        id: BackendItemId,
        change_key: Option<ChangeKey>,
        read: Option<bool>,
        held: Held,
    ) {
        let round = self
            .state
            .folders
            .get(&key)
            .map_or(0, |folder| folder.rounds_started);
        let mut changes = VecDeque::from([SyncChange::Item(ItemChange {
            id: id.clone(),
            kind: ChangeKind::Modified,
            change_key,
            predecessors: Vec::new(),
            read,
        })]);
        changes.extend(
            held.changes
                .into_iter()
                .filter(|change| matches!(change, SyncChange::Deleted { .. })),
        );
        self.state.held.insert(
            id,
            Held {
                folder: key,
                reason: HoldReason::AwaitWrite,
                round,
                latest_round: held.latest_round.max(round),
                fetched_after_write: 0,
                fetch_round: 0,
                changed_during_fetch: false,
                changes,
            },
        );
    }

    fn on_tick(&mut self, now_millis: u64) {
        let due: Vec<FolderKey> = self
            .state
            .folders
            .iter()
            .filter(|(_, folder)| {
                matches!(folder.phase, Phase::RetryWait { retry_at_millis } if retry_at_millis <= now_millis)
            })
            .map(|(key, _)| *key)
            .collect();
        for key in due {
            self.start_round(key);
        }

        let timeout = self.options.write_timeout_millis;
        let expired: Vec<WriteId> = self
            .state
            .journal
            .iter()
            .filter(|entry| {
                entry.status == WriteStatus::Pending
                    && now_millis.saturating_sub(entry.issued_at_millis) >= timeout
            })
            .map(|entry| entry.id)
            .collect();
        for write in expired {
            // The filter above selected pending entries, which on_write_result accepts.
            let _ = self.on_write_result(write, WriteOutcome::Lost);
        }

        let cutoff = now_millis.saturating_sub(self.options.journal_retention_millis);
        for entry in self.state.journal.retire_older_than(cutoff) {
            self.note_retired_removal(&entry);
            self.forget_if_deleted(entry.item);
        }
    }

    fn is_held(&self, item: ItemKey) -> bool {
        self.state
            .held
            .keys()
            .any(|id| self.state.ids.key_of(id) == Some(item))
    }

    // Marks an item reported by round `round` of folder `key`. A change that an earlier
    // round reported and that is released only now still shows that the item existed
    // after our write, which is what an incremental round needs to keep an arrival. A
    // full resync reports every item the folder holds, so such a change must not count
    // as reported by it, or the item would survive a resync that no longer reports it.
    pub(super) fn mark_seen_in_round(&mut self, key: FolderKey, item: ItemKey, round: u64) {
        // A full resync that completed after the reporting round did not report the
        // item, so the old report no longer shows that the item exists.
        let superseded = self
            .state
            .folders
            .get(&key)
            .is_some_and(|folder| folder.last_full_round > round);
        if superseded {
            return;
        }
        let counts = self.state.folders.get(&key).is_some_and(|folder| {
            folder.rounds_started == round || !folder.round.as_ref().is_some_and(|round| round.full)
        });
        if counts {
            self.mark_seen(key, item);
        } else if let Some(record) = self.state.ids.get_mut(item)
            && record.folder == key
        {
            // The earlier round still shows that our arrival preceded the full
            // resync, so the resync's end decides about the item.
            record.unreported_since_round = None;
        }
    }

    fn mark_seen(&mut self, key: FolderKey, item: ItemKey) {
        if let Some(round) = self
            .state
            .folders
            .get_mut(&key)
            .and_then(|folder| folder.round.as_mut())
        {
            round.seen.insert(item);
        }
        if let Some(record) = self.state.ids.get_mut(item)
            && record.folder == key
        {
            record.unreported_since_round = None;
        }
    }

    // Round `completed_round` of `key` is complete and started after each of these
    // items arrived through a create, copy or move of ours, so all of its pages were
    // computed after the write. A sync reports every item whose change it has not
    // reported yet, so such an item that the round did not report has left the folder
    // again: another client moved or deleted it. The server never reports that
    // deletion, because the sync state never contained the item. An item with a
    // pending write of ours waits for its result. A pending move or delete decides the
    // origin. The response of a pending copy or create hands the item to the embedder
    // again, so only a round completed after that response may remove the item. After
    // a lost move or delete the deletion is Unknown.
    fn drop_unreported_arrivals(&mut self, key: FolderKey, completed_round: u64) {
        for (item, since) in self.state.ids.unreported_in(key) {
            if since >= completed_round || self.is_held(item) || self.has_pending_write(item) {
                continue;
            }
            self.apply_deletion(key, item);
        }
    }

    fn note_retired_removal(&mut self, entry: &JournalEntry) {
        let removal = matches!(entry.operation, Operation::Move | Operation::Delete);
        if removal
            && entry.status == WriteStatus::Lost
            && let Some(record) = self.state.ids.get_mut(entry.item)
        {
            record.removal_lost = true;
        }
    }

    // Once no journal entry refers to an item this transport deleted, its record can
    // go: the folder's sync state is past the deletion, so no later sync reports it.
    fn forget_if_deleted(&mut self, item: ItemKey) {
        let deleted = self
            .state
            .ids
            .get(item)
            .is_some_and(|record| record.deleted_locally);
        if deleted && self.state.journal.entries_for(item).next().is_none() {
            self.state.ids.remove(item);
        }
    }
}

#[cfg(test)]
mod tests;
