//! Origin of each reported change, and its delivery.
//!
//! The order of the checks for a change to a known item is the contract:
//! 1. changes to an item with held changes queue behind them (per-item order);
//! 2. a pending write to the item delays the change until the write's result decides;
//! 3. a change to an item this transport deleted is superseded;
//! 4. a change key equal to a journaled write's is `Local`;
//! 5. a write with a lost outcome makes it `Unknown`, unless the predecessor change
//!    list shows that write was overwritten by a later one;
//! 6. anything else is `Remote`.

use std::collections::VecDeque;

use super::{Held, HoldReason, RouterCore};
use crate::core::types::{
    ChangeKind, Event, ItemChange, Origin, Output, Request, ResyncReason, SyncChange,
};
use crate::ids::{BackendItemId, FolderKey, ItemKey};
use crate::journal::{ChangeKey, WriteStatus};
use crate::operation::Operation;

impl RouterCore {
    pub(super) fn apply_change(&mut self, folder: FolderKey, change: SyncChange) {
        let round = self
            .state
            .folders
            .get(&folder)
            .map_or(0, |state| state.rounds_started);
        self.apply_change_in_round(folder, change, round);
    }

    // `round` is the folder's sync round that reported the change. Writes to the item
    // that settled during or after that round may be newer than the change.
    pub(super) fn apply_change_in_round(
        &mut self,
        folder: FolderKey,
        change: SyncChange,
        round: u64,
    ) {
        let id = change.id().clone();
        let known = self.state.ids.key_of(&id);
        if let Some(item) = known {
            self.mark_seen_in_round(folder, item, round);
        }

        if let Some(held) = self.state.held.get_mut(&id) {
            if held.reason == HoldReason::AwaitVerify
                && round >= held.fetch_round
                && !matches!(change, SyncChange::Deleted { .. })
            {
                held.changed_during_fetch = true;
            }
            held.changes.push_back(change);
            held.latest_round = round;
            return;
        }

        let Some(item) = known else {
            self.apply_to_unknown(folder, id, change, round);
            return;
        };

        if self.has_pending_write(item) {
            self.state.held.insert(
                id,
                Held {
                    folder,
                    reason: HoldReason::AwaitWrite,
                    round,
                    latest_round: round,
                    fetched_after_write: 0,
                    fetch_round: 0,
                    changed_during_fetch: false,
                    changes: VecDeque::from([change]),
                },
            );
            return;
        }

        let stale = match &change {
            SyncChange::Deleted { .. } => false,
            SyncChange::ReadState { read, .. } => self.read_may_predate_write(item, *read, round),
            SyncChange::Item(change) => {
                self.item_may_predate_write(item, change, round)
                    || change
                        .read
                        .is_some_and(|read| self.read_may_predate_write(item, read, round))
            }
        };
        if stale {
            self.verify(folder, id, change, round);
            return;
        }

        match change {
            SyncChange::Deleted { .. } => self.apply_deletion(folder, item),
            SyncChange::ReadState { read, .. } => self.apply_read_state(folder, item, read),
            SyncChange::Item(change) => {
                // A change held from an earlier round says nothing about the state the
                // round in flight started from.
                let current =
                    self.state.folders.get(&folder).is_some_and(|state| {
                        state.rounds_started == round && state.round.is_some()
                    });
                self.apply_item_change(folder, item, change, current);
            }
        }
    }

    // A change that matches none of our writes, reported by a round that started
    // before a content write of ours settled, may be the state before that write.
    // Delivering it would overwrite the embedder's newer state, and the write's own
    // echo would then be dropped as Local, so the item is fetched instead.
    fn item_may_predate_write(&self, item: ItemKey, change: &ItemChange, round: u64) -> bool {
        let mut writes = self
            .state
            .journal
            .entries_for(item)
            .filter(|entry| entry.status != WriteStatus::Failed);
        if let Some(reported) = &change.change_key
            && writes
                .clone()
                .any(|entry| entry.change_key.as_ref() == Some(reported))
        {
            return false;
        }
        writes.any(|entry| {
            entry.operation == Operation::Update
                && entry.read_state.is_none()
                && entry
                    .settled_at_round
                    .is_none_or(|settled| settled >= round)
        })
    }

    // The same for a read state that differs from a read-state write of ours.
    fn read_may_predate_write(&self, item: ItemKey, read: bool, round: u64) -> bool {
        self.state.journal.entries_for(item).any(|entry| {
            entry.status != WriteStatus::Failed
                && entry.read_state.is_some_and(|written| written != read)
                && entry
                    .settled_at_round
                    .is_none_or(|settled| settled >= round)
        })
    }

    fn verify(&mut self, folder: FolderKey, id: BackendItemId, change: SyncChange, round: u64) {
        self.state.held.insert(
            id.clone(),
            Held {
                folder,
                reason: HoldReason::AwaitVerify,
                round,
                latest_round: round,
                fetched_after_write: self.state.journal.next_id(),
                fetch_round: self.fetch_round(folder),
                changed_during_fetch: false,
                changes: VecDeque::from([change]),
            },
        );
        self.outputs.push_back(Output::Request(Request::Verify {
            folder,
            backend: self.routing.backend_for(Operation::Fetch),
            id,
        }));
    }

    fn apply_to_unknown(
        &mut self,
        folder: FolderKey,
        id: BackendItemId,
        change: SyncChange,
        round: u64,
    ) {
        // The id our own move replaced: a deletion is the move's echo in the source
        // folder, and any other change was computed before the move and is older than
        // the state the target folder's sync reports under the new id.
        if self.state.ids.moved_away_key(&id).is_some() {
            if matches!(change, SyncChange::Deleted { .. }) {
                self.state.ids.forget_moved_away(&id);
                self.counters.own_dropped += 1;
            } else {
                self.counters.superseded_dropped += 1;
            }
            return;
        }
        match change {
            // Nothing to delete: the embedder never had it.
            SyncChange::Deleted { .. } => {}
            SyncChange::Item(change)
                if matches!(change.kind, ChangeKind::Created | ChangeKind::Upserted) =>
            {
                // A new item may be the result of a create, copy or move of ours whose
                // response has not arrived: its id is learned from that response, so
                // the item waits for it instead of getting a second key.
                if self.arrival_pending(folder) {
                    self.state.held.insert(
                        id,
                        Held {
                            folder,
                            reason: HoldReason::AwaitWrite,
                            round,
                            latest_round: round,
                            fetched_after_write: 0,
                            fetch_round: 0,
                            changed_during_fetch: false,
                            changes: VecDeque::from([SyncChange::Item(change)]),
                        },
                    );
                    return;
                }
                let origin = if self.arrival_lost(folder) {
                    Origin::Unknown
                } else {
                    Origin::Remote
                };
                let item = self.state.ids.key_or_insert(&id, folder);
                self.mark_seen_in_round(folder, item, round);
                self.await_report_after_full_resync(folder, item, round);
                let next_write = self.state.journal.next_id();
                if let Some(record) = self.state.ids.get_mut(item) {
                    record.change_key = change.change_key.clone();
                    record.read = change.read;
                    record.last_remote_seq = next_write;
                }
                self.deliver(
                    origin,
                    Event::ItemChanged {
                        folder,
                        item,
                        id,
                        origin,
                        kind: change.kind,
                        change_key: change.change_key,
                        read: change.read,
                    },
                );
            }
            // A modification of an item the router does not hold may be the echo of
            // an item deleted meanwhile: fetch it before delivering anything.
            change => self.verify(folder, id, change, round),
        }
    }

    // A new item reported by round `round` and released only after a later full resync
    // completed without it may have left the folder before that resync ran. The
    // resync's state lacks the item, so a later round reports it if it still exists,
    // and a later complete round that does not report it removes it.
    fn await_report_after_full_resync(&mut self, folder: FolderKey, item: ItemKey, round: u64) {
        let Some(last_full_round) = self
            .state
            .folders
            .get(&folder)
            .map(|state| state.last_full_round)
            .filter(|last_full_round| *last_full_round > round)
        else {
            return;
        };
        if let Some(record) = self.state.ids.get_mut(item)
            && record.folder == folder
        {
            record.unreported_since_round = Some(last_full_round);
        }
    }

    pub(super) fn apply_deletion(&mut self, folder: FolderKey, item: ItemKey) {
        let (deleted_locally, removal_lost) =
            self.state.ids.get(item).map_or((false, false), |record| {
                (record.deleted_locally, record.removal_lost)
            });
        let removal_unsettled = removal_lost
            || self.state.journal.entries_for(item).any(|entry| {
                matches!(entry.operation, Operation::Delete | Operation::Move)
                    && entry.status == WriteStatus::Lost
            });

        let origin = if deleted_locally {
            Origin::Local
        } else if removal_unsettled {
            Origin::Unknown
        } else {
            Origin::Remote
        };

        if origin == Origin::Local {
            // The record stays until the journal entry retires, so a late change to
            // the item is still recognised as superseded.
        } else if self.state.journal.entries_for(item).next().is_some() {
            if let Some(record) = self.state.ids.get_mut(item) {
                record.deleted_locally = true;
            }
        } else {
            self.state.ids.remove(item);
        }
        self.deliver(
            origin,
            Event::ItemDeleted {
                folder,
                item,
                origin,
            },
        );
    }

    pub(super) fn apply_read_state(&mut self, folder: FolderKey, item: ItemKey, read: bool) {
        let Some(record) = self.state.ids.get(item) else {
            return;
        };
        if record.deleted_locally {
            self.counters.superseded_dropped += 1;
            return;
        }

        let last_remote_seq = record.last_remote_seq;
        let held_read = record.read;
        let last_read_write = self
            .state
            .journal
            .entries_for(item)
            .filter(|entry| entry.read_state.is_some() && entry.status != WriteStatus::Failed)
            .last();
        // The echo of a read-state write whose response was lost may equally be
        // another client's, and the embedder never learned that write's outcome.
        let origin = match last_read_write {
            Some(entry) if entry.read_state == Some(read) && entry.id.0 > last_remote_seq => {
                if entry.status == WriteStatus::Lost {
                    Origin::Unknown
                } else {
                    Origin::Local
                }
            }
            _ if self.has_lost_write(item) => Origin::Unknown,
            _ => Origin::Remote,
        };

        // A remote change to the state the embedder already has is a no-op. After a
        // lost write the embedder's state is not known, so Unknown is always delivered.
        if origin == Origin::Remote && held_read == Some(read) {
            return;
        }
        let next_write = self.state.journal.next_id();
        if let Some(record) = self.state.ids.get_mut(item) {
            record.read = Some(read);
            if origin != Origin::Local {
                record.last_remote_seq = next_write;
            }
        }
        self.deliver(
            origin,
            Event::ReadStateChanged {
                folder,
                item,
                origin,
                read,
            },
        );
    }

    // `current_round` is true when the round in flight reported the change.
    pub(super) fn apply_item_change(
        &mut self,
        folder: FolderKey,
        item: ItemKey,
        change: ItemChange,
        current_round: bool,
    ) {
        let Some(record) = self.state.ids.get(item) else {
            return;
        };
        if record.deleted_locally {
            self.counters.superseded_dropped += 1;
            return;
        }
        let held_key = record.change_key.clone();
        let held_read = record.read;

        let origin = self.origin_of(item, change.change_key.as_ref(), &change.predecessors);

        if change.kind == ChangeKind::Created
            && current_round
            && origin != Origin::Local
            && !self.arrived_by_own_write(item, folder)
        {
            self.note_recreated_item(folder);
        }

        let unchanged = change.change_key.is_some()
            && change.change_key == held_key
            && (change.read.is_none() || change.read == held_read);
        if origin == Origin::Remote && unchanged {
            return;
        }
        // The change key the embedder already has means the content is unchanged, because
        // read-state changes leave the change key alone (MS-OXCFXICS). Only the read
        // state differs, so it is judged by value like a read-state change: the key
        // may be our write's after its journal entry retired, and the read state
        // another client's.
        if origin == Origin::Remote
            && change.change_key.is_some()
            && change.change_key == held_key
            && let Some(read) = change.read
        {
            self.apply_read_state(folder, item, read);
            return;
        }

        // Our own change is dropped, but the embedder holds the key its write's
        // response gave, which this one is not when that response was lost.
        if origin == Origin::Local
            && !self.options.deliver_local
            && let Some(reported) = &change.change_key
            && held_key.as_ref() != Some(reported)
        {
            self.outputs
                .push_back(Output::Event(Event::ChangeKeyLearned {
                    folder,
                    item,
                    change_key: reported.clone(),
                }));
        }

        let next_write = self.state.journal.next_id();
        if let Some(record) = self.state.ids.get_mut(item) {
            if change.change_key.is_some() {
                record.change_key = change.change_key.clone();
            }
            if origin != Origin::Local {
                if change.read.is_some() {
                    record.read = change.read;
                }
                record.last_remote_seq = next_write;
            }
        }
        self.deliver(
            origin,
            Event::ItemChanged {
                folder,
                item,
                id: change.id,
                origin,
                kind: change.kind,
                change_key: change.change_key,
                read: change.read,
            },
        );

        // The change key matches our write, but the read state it carries may come
        // from another client since read-state changes leave the change key alone
        // (MS-OXCFXICS), so it is judged by value on its own. The copy that a send of
        // ours filed has no read state to compare with, because the server chose it, so
        // the first one reported counts as part of the send.
        // NOTE: another client's read-state change to the sent copy made before that
        // first report is taken as ours too, and not delivered.
        if origin == Origin::Local
            && let Some(read) = change.read
        {
            if held_read.is_none() && self.sent_by_us(item, folder) {
                if let Some(record) = self.state.ids.get_mut(item) {
                    record.read = Some(read);
                }
            } else {
                self.apply_read_state(folder, item, read);
            }
        }
    }

    fn origin_of(
        &self,
        item: ItemKey,
        change_key: Option<&ChangeKey>,
        predecessors: &[ChangeKey],
    ) -> Origin {
        let settled = || {
            self.state
                .journal
                .entries_for(item)
                .filter(|entry| entry.status != WriteStatus::Failed)
        };

        if let Some(reported) = change_key
            && settled().any(|entry| entry.change_key.as_ref() == Some(reported))
        {
            return Origin::Local;
        }
        // A key from exmux's own namespace was stamped by an ICS upload of ours, even
        // when its journal entry was retired or its write's response was lost before a
        // move carried the key along (MS-OXCFXICS keeps an imported change key).
        if let Some(reported) = change_key
            && self.state.change_keys.is_own(reported)
        {
            return Origin::Local;
        }

        let mut lost = settled()
            .filter(|entry| entry.status == WriteStatus::Lost)
            .peekable();
        if lost.peek().is_none() {
            return Origin::Remote;
        }
        // A lost write whose change key is among the predecessors did land, and a
        // later change by someone else replaced it.
        let overwritten = lost.all(|entry| {
            entry
                .change_key
                .as_ref()
                .is_some_and(|key| predecessors.contains(key))
        });
        if overwritten {
            Origin::Remote
        } else {
            Origin::Unknown
        }
    }

    // A sync from a non-empty state reported an item the router already maps as new,
    // so the server has treated the state as empty. The round becomes a full resync, so items
    // are matched by id and the ones not re-sent are deleted at its end.
    fn note_recreated_item(&mut self, folder: FolderKey) {
        let Some(round) = self
            .state
            .folders
            .get_mut(&folder)
            .and_then(|state| state.round.as_mut())
        else {
            return;
        };
        if round.full || !round.from_non_empty {
            return;
        }
        round.full = true;
        self.counters.full_resyncs += 1;
        self.outputs.push_back(Output::Event(Event::FullResync {
            folder,
            reason: ResyncReason::ServerDiscardedSyncState,
        }));
    }

    pub(super) fn release_if_settled(&mut self, id: &BackendItemId) {
        let Some(held) = self.state.held.get(id) else {
            return;
        };
        if held.reason != HoldReason::AwaitWrite {
            return;
        }

        let Some(item) = self.state.ids.key_of(id) else {
            if self.arrival_pending(held.folder) {
                return;
            }
            let Some(held) = self.state.held.remove(id) else {
                return;
            };
            let new_item = matches!(
                held.changes.front(),
                Some(SyncChange::Item(change))
                    if matches!(change.kind, ChangeKind::Created | ChangeKind::Upserted)
            );
            if new_item {
                // A new item that none of our writes turned out to create.
                for change in held.changes {
                    self.apply_change_in_round(held.folder, change, held.round);
                }
                self.mark_held_seen(id, held.folder, held.latest_round);
            } else {
                // Our own move or failed create unbound the id: the held changes are
                // about an id that no longer names the item.
                self.counters.superseded_dropped += held.changes.len() as u64;
            }
            return;
        };
        if self.has_pending_write(item) {
            return;
        }

        if let Some(held) = self.state.held.remove(id) {
            for change in held.changes {
                self.apply_change_in_round(held.folder, change, held.round);
            }
            self.mark_held_seen(id, held.folder, held.latest_round);
        }
    }

    // The changes were applied in the round that reported the first of them, but a
    // later round, possibly the full resync in flight, may have reported the item too.
    fn mark_held_seen(&mut self, id: &BackendItemId, folder: FolderKey, latest_round: u64) {
        if let Some(item) = self.state.ids.key_of(id) {
            self.mark_seen_in_round(folder, item, latest_round);
        }
    }

    pub(super) fn deliver_unverified(
        &mut self,
        folder: FolderKey,
        item: ItemKey,
        change: SyncChange,
    ) {
        let origin = Origin::Unknown;
        let event = match change {
            SyncChange::Item(change) => {
                if let Some(record) = self.state.ids.get_mut(item) {
                    record.change_key = change.change_key.clone();
                    record.read = change.read;
                }
                Event::ItemChanged {
                    folder,
                    item,
                    id: change.id,
                    origin,
                    kind: change.kind,
                    change_key: change.change_key,
                    read: change.read,
                }
            }
            SyncChange::ReadState { read, .. } => {
                if let Some(record) = self.state.ids.get_mut(item) {
                    record.read = Some(read);
                }
                Event::ReadStateChanged {
                    folder,
                    item,
                    origin,
                    read,
                }
            }
            SyncChange::Deleted { .. } => {
                self.state.ids.remove(item);
                Event::ItemDeleted {
                    folder,
                    item,
                    origin,
                }
            }
        };
        self.deliver(origin, event);
    }

    fn deliver(&mut self, origin: Origin, event: Event) {
        match origin {
            Origin::Local if !self.options.deliver_local => {
                self.counters.own_dropped += 1;
                return;
            }
            Origin::Local => self.counters.own_delivered += 1,
            Origin::Remote => self.counters.remote_delivered += 1,
            Origin::Unknown => self.counters.unknown_delivered += 1,
        }
        self.outputs.push_back(Output::Event(event));
    }

    pub(super) fn has_pending_write(&self, item: ItemKey) -> bool {
        self.state
            .journal
            .entries_for(item)
            .any(|entry| entry.status == WriteStatus::Pending)
    }

    // A create, copy, move or send (whose copy goes to Sent Items) into `folder` whose
    // response has not arrived.
    pub(super) fn arrival_pending(&self, folder: FolderKey) -> bool {
        self.state.journal.iter().any(|entry| {
            entry.folder == folder
                && entry.status == WriteStatus::Pending
                && entry.operation.adds_item()
        })
    }

    // A create, copy or move into `folder` whose outcome was never learned.
    fn arrival_lost(&self, folder: FolderKey) -> bool {
        self.state.journal.iter().any(|entry| {
            entry.folder == folder
                && entry.status == WriteStatus::Lost
                && entry.operation.adds_item()
        })
    }

    // The item came into `folder` through a create, copy or move of ours, so a sync
    // reporting it as new is expected, not a sign of a discarded sync state.
    fn arrived_by_own_write(&self, item: ItemKey, folder: FolderKey) -> bool {
        self.state
            .journal
            .entries_for(item)
            .any(|entry| entry.folder == folder && entry.operation.adds_item())
    }

    // The item is the copy that a send of ours filed in `folder`.
    fn sent_by_us(&self, item: ItemKey, folder: FolderKey) -> bool {
        self.state
            .journal
            .entries_for(item)
            .any(|entry| entry.folder == folder && entry.operation == Operation::Send)
    }

    fn has_lost_write(&self, item: ItemKey) -> bool {
        self.state
            .journal
            .entries_for(item)
            .any(|entry| entry.status == WriteStatus::Lost)
    }
}
