//! Incremental synchronization of folder contents and hierarchy in the terms of ICS
//! (MS-OXCFXICS): a client-held state of sets, and batches of changes computed from it.

use super::Store;
use super::error::{StoreError, SyncStateRejection};
use super::ids::{Cn, Fid, Globcnt, Guid, Mid};
use super::idset::GlobSet;
use super::model::{Folder, Item, ReadResult, WriteResult};

/// The kind of synchronization a state belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyncKind {
    /// The items of one folder (ICS contents sync, EWS SyncFolderItems).
    Contents,
    /// The folders below one folder (ICS hierarchy sync, EWS SyncFolderHierarchy).
    Hierarchy,
}

/// A client-held sync state: the ICS state properties of MS-OXCFXICS 2.2.1.1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncState {
    /// The kind of sync.
    pub kind: SyncKind,
    /// The folder the state is for.
    pub folder: Fid,
    /// The replica GUID of the store that made the state, when known. A state built from
    /// MAPI IDSETs carries none.
    pub replica: Option<Guid>,
    /// MetaTagIdsetGiven: ids (MIDs or FIDs) the client holds.
    pub given: GlobSet,
    /// MetaTagCnsetSeen: change numbers of content changes the client has seen.
    pub seen: GlobSet,
    /// MetaTagCnsetSeenFAI: the same for folder-associated items.
    pub seen_fai: GlobSet,
    /// MetaTagCnsetRead: change numbers of read-state changes the client has seen.
    pub read: GlobSet,
}

impl SyncState {
    /// Creates the empty state a client starts a full sync from.
    pub fn empty(kind: SyncKind, folder: Fid) -> Self {
        Self {
            kind,
            folder,
            replica: None,
            given: GlobSet::new(),
            seen: GlobSet::new(),
            seen_fai: GlobSet::new(),
            read: GlobSet::new(),
        }
    }
}

impl SyncState {
    /// Adds the result of this client's own upload to the state (an ICS checkpoint,
    /// MS-OXCFXICS 3.3.5.6), so the next download leaves the change out: the id joins
    /// IdsetGiven and the change number joins CnsetSeen (or CnsetSeenFAI when
    /// `associated`).
    pub fn checkpoint<Id: Into<Globcnt> + Copy>(
        &mut self,
        write: &WriteResult<Id>,
        associated: bool,
    ) {
        self.given.insert(write.id.into());
        if associated {
            self.seen_fai.insert(write.cn.0);
        } else {
            self.seen.insert(write.cn.0);
        }
    }

    /// Adds this client's own read-state change to CnsetRead.
    pub fn checkpoint_read(&mut self, read: &ReadResult) {
        self.read.insert(read.read_cn.0);
    }

    /// Removes an id this client deleted or moved out of the folder from IdsetGiven.
    pub fn checkpoint_removal(&mut self, id: impl Into<Globcnt>) {
        self.given.remove(id.into());
    }

    /// Returns whether every set is empty: the state of a first, full sync.
    pub fn is_empty(&self) -> bool {
        self.given.is_empty()
            && self.seen.is_empty()
            && self.seen_fai.is_empty()
            && self.read.is_empty()
    }

    /// Serializes the state to the opaque bytes an EWS front end hands out as
    /// SyncState (before base64).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&STATE_MAGIC);
        out.push(STATE_VERSION);
        out.push(match self.kind {
            SyncKind::Contents => 1,
            SyncKind::Hierarchy => 2,
        });
        out.extend_from_slice(&self.folder.0.to_bytes());
        match self.replica {
            Some(guid) => {
                out.push(1);
                out.extend_from_slice(&guid.0);
            }
            None => out.push(0),
        }
        for set in [&self.given, &self.seen, &self.seen_fai, &self.read] {
            let count = u32::try_from(set.range_count()).unwrap_or(u32::MAX);
            out.extend_from_slice(&count.to_le_bytes());
            for (first, last) in set.ranges().take(count as usize) {
                out.extend_from_slice(&first.to_bytes());
                out.extend_from_slice(&last.to_bytes());
            }
        }
        out
    }

    /// Reads bytes written by [`SyncState::to_bytes`].
    ///
    /// # Errors
    ///
    /// [`SyncStateRejection::Unparsable`] when the bytes are not such a state; a range
    /// count larger than the bytes that follow is rejected before any allocation.
    pub fn from_bytes(bytes: &[u8]) -> Result<SyncState, SyncStateRejection> {
        let mut reader = Reader { bytes };
        if reader.take::<4>()? != STATE_MAGIC || reader.take::<1>()? != [STATE_VERSION] {
            return Err(SyncStateRejection::Unparsable);
        }
        let kind = match reader.take::<1>()? {
            [1] => SyncKind::Contents,
            [2] => SyncKind::Hierarchy,
            _ => return Err(SyncStateRejection::Unparsable),
        };
        let folder = Fid(Globcnt::from_bytes(reader.take::<6>()?));
        let replica = match reader.take::<1>()? {
            [0] => None,
            [1] => Some(Guid(reader.take::<16>()?)),
            _ => return Err(SyncStateRejection::Unparsable),
        };

        let mut sets = [
            GlobSet::new(),
            GlobSet::new(),
            GlobSet::new(),
            GlobSet::new(),
        ];
        for set in &mut sets {
            let count = u32::from_le_bytes(reader.take::<4>()?);
            if u64::from(count) * 12 > reader.bytes.len() as u64 {
                return Err(SyncStateRejection::Unparsable);
            }
            for _ in 0..count {
                let first = Globcnt::from_bytes(reader.take::<6>()?);
                let last = Globcnt::from_bytes(reader.take::<6>()?);
                if first > last {
                    return Err(SyncStateRejection::Unparsable);
                }
                set.insert_range(first, last);
            }
        }
        if !reader.bytes.is_empty() {
            return Err(SyncStateRejection::Unparsable);
        }

        let [given, seen, seen_fai, read] = sets;
        Ok(SyncState {
            kind,
            folder,
            replica,
            given,
            seen,
            seen_fai,
            read,
        })
    }
}

const STATE_MAGIC: [u8; 4] = *b"XMSS";
const STATE_VERSION: u8 = 1;

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SyncStateRejection> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<N>()
            .ok_or(SyncStateRejection::Unparsable)?;
        self.bytes = rest;
        Ok(*head)
    }
}

impl From<Mid> for Globcnt {
    fn from(mid: Mid) -> Globcnt {
        mid.0
    }
}

impl From<Fid> for Globcnt {
    fn from(fid: Fid) -> Globcnt {
        fid.0
    }
}

/// Limits of one sync batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncOptions {
    /// The largest number of entries (changes, deletions and read-state changes
    /// together) in one batch; at least 1 is used.
    pub max_changes: usize,
    /// Whether a contents sync includes folder-associated (FAI) items.
    pub include_fai: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            max_changes: 512,
            include_fai: false,
        }
    }
}

/// Whether a reported object is new to the client or a new version of one it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeKind {
    /// The id was not in IdsetGiven.
    Created,
    /// The id was in IdsetGiven.
    Modified,
}

/// A created or modified item, with its whole current version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemChange {
    /// Created or modified.
    pub kind: ChangeKind,
    /// The item as it is now.
    pub item: Item,
}

/// A read-state change of an item whose content the client already has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadChange {
    /// The item.
    pub mid: Mid,
    /// The read flag now.
    pub read: bool,
    /// The read-state change number.
    pub read_cn: Cn,
}

/// One batch of a contents sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentSyncBatch {
    /// Created and modified items, in change number order.
    pub changes: Vec<ItemChange>,
    /// Ids in IdsetGiven that are no longer in the folder (deleted or moved away).
    pub deletions: Vec<Mid>,
    /// Read-state changes, in read change number order.
    pub read_changes: Vec<ReadChange>,
    /// The state after applying this batch; sync again from it while
    /// `more_available`.
    pub state: SyncState,
    /// Whether changes remain after this batch.
    pub more_available: bool,
}

/// A created or modified folder, with its whole current version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderChange {
    /// Created or modified.
    pub kind: ChangeKind,
    /// The folder as it is now.
    pub folder: Folder,
}

/// One batch of a hierarchy sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HierarchySyncBatch {
    /// Created and modified folders, parents before children.
    pub changes: Vec<FolderChange>,
    /// Folder ids in IdsetGiven that are no longer below the synced folder.
    pub deletions: Vec<Fid>,
    /// The state after applying this batch.
    pub state: SyncState,
    /// Whether changes remain after this batch.
    pub more_available: bool,
}

impl Store {
    /// Returns the next batch of changes to the items of `state.folder` since `state`,
    /// as ICS computes them (MS-OXCFXICS 3.2.5.3 and 3.2.5.6). Items whose change number
    /// is not in CnsetSeen (CnsetSeenFAI for FAI items) are created or modified. Ids in
    /// IdsetGiven that are no longer in the folder are deleted. Items whose read-state
    /// change number is not in CnsetRead have read-state changes. Sync again from the
    /// returned state while `more_available`.
    ///
    /// # Errors
    ///
    /// [`StoreError::FolderNotFound`], or [`StoreError::InvalidSyncState`] when the
    /// state is for another kind of sync, another folder or another store, names change
    /// numbers or ids the store has not assigned, or was invalidated.
    pub fn sync_contents(
        &self,
        state: &SyncState,
        options: SyncOptions,
    ) -> Result<ContentSyncBatch, StoreError> {
        let fid = state.folder;
        self.check_sync_state(state, SyncKind::Contents)?;
        let mids = self
            .folder_items
            .get(&fid)
            .ok_or(StoreError::FolderNotFound {
                operation: "sync folder items",
                fid,
            })?;
        let items: Vec<&Item> = mids
            .iter()
            .filter_map(|mid| self.items.get(mid))
            .filter(|item| options.include_fai || !item.associated)
            .collect();
        let seen_set = |item: &Item| {
            if item.associated {
                &state.seen_fai
            } else {
                &state.seen
            }
        };

        let mut changed: Vec<&Item> = items
            .iter()
            .copied()
            .filter(|item| !seen_set(item).contains(item.stamp.cn.0))
            .collect();
        changed.sort_by_key(|item| item.stamp.cn);

        let deleted: Vec<Mid> = state
            .given
            .iter()
            .map(Mid)
            .filter(|mid| !mids.contains(mid))
            .collect();

        let mut read_changed: Vec<(&Item, Cn)> = items
            .iter()
            .copied()
            .filter(|item| seen_set(item).contains(item.stamp.cn.0))
            .filter_map(|item| {
                let read_cn = item.read_cn?;
                (!state.read.contains(read_cn.0)).then_some((item, read_cn))
            })
            .collect();
        read_changed.sort_by_key(|(_, read_cn)| *read_cn);

        let mut budget = options.max_changes.max(1);
        let mut next = state.clone();
        next.replica = Some(self.replica_guid);

        let mut changes = Vec::new();
        for item in changed.iter().take(budget) {
            let kind = if state.given.contains(item.mid.0) {
                ChangeKind::Modified
            } else {
                ChangeKind::Created
            };
            next.given.insert(item.mid.0);
            if item.associated {
                next.seen_fai.insert(item.stamp.cn.0);
            } else {
                next.seen.insert(item.stamp.cn.0);
            }
            if let Some(read_cn) = item.read_cn {
                next.read.insert(read_cn.0);
            }
            changes.push(ItemChange {
                kind,
                item: (*item).clone(),
            });
        }
        budget -= changes.len();

        let deletions: Vec<Mid> = deleted.iter().copied().take(budget).collect();
        for mid in &deletions {
            next.given.remove(mid.0);
        }
        budget -= deletions.len();

        let read_changes: Vec<ReadChange> = read_changed
            .iter()
            .take(budget)
            .map(|(item, read_cn)| ReadChange {
                mid: item.mid,
                read: item.props.read,
                read_cn: *read_cn,
            })
            .collect();
        for change in &read_changes {
            next.read.insert(change.read_cn.0);
        }

        let more_available = changes.len() < changed.len()
            || deletions.len() < deleted.len()
            || read_changes.len() < read_changed.len();
        if !more_available {
            // Everything up to now is reported, so the sets can cover the whole range.
            let current = self.current_globcnt();
            let first = Globcnt::saturating(1);
            next.seen.insert_range(first, current);
            next.read.insert_range(first, current);
            if options.include_fai {
                next.seen_fai.insert_range(first, current);
            }
        }
        self.mark_valid(&mut next);

        Ok(ContentSyncBatch {
            changes,
            deletions,
            read_changes,
            state: next,
            more_available,
        })
    }

    /// Returns the next batch of changes to the folders below `state.folder` since
    /// `state`, as an ICS hierarchy sync computes them. Folders whose change number is
    /// not in CnsetSeen are created or modified, parents before children. Folder ids in
    /// IdsetGiven that are no longer below the folder are deleted.
    ///
    /// # Errors
    ///
    /// As [`Store::sync_contents`].
    pub fn sync_hierarchy(
        &self,
        state: &SyncState,
        options: SyncOptions,
    ) -> Result<HierarchySyncBatch, StoreError> {
        let fid = state.folder;
        self.check_sync_state(state, SyncKind::Hierarchy)?;
        self.check_folder("sync folder hierarchy", fid)?;

        let descendants = self.descendant_folders(fid);
        let present: std::collections::BTreeSet<Fid> =
            descendants.iter().map(|(_, folder)| folder.fid).collect();

        let mut changed: Vec<(usize, &Folder)> = descendants
            .iter()
            .copied()
            .filter(|(_, folder)| !state.seen.contains(folder.stamp.cn.0))
            .collect();
        changed.sort_by_key(|(depth, folder)| (*depth, folder.stamp.cn));

        let deleted: Vec<Fid> = state
            .given
            .iter()
            .map(Fid)
            .filter(|fid| !present.contains(fid))
            .collect();

        let mut budget = options.max_changes.max(1);
        let mut next = state.clone();
        next.replica = Some(self.replica_guid);

        let mut changes = Vec::new();
        for (_, folder) in changed.iter().take(budget) {
            let kind = if state.given.contains(folder.fid.0) {
                ChangeKind::Modified
            } else {
                ChangeKind::Created
            };
            next.given.insert(folder.fid.0);
            next.seen.insert(folder.stamp.cn.0);
            changes.push(FolderChange {
                kind,
                folder: (*folder).clone(),
            });
        }
        budget -= changes.len();

        let deletions: Vec<Fid> = deleted.iter().copied().take(budget).collect();
        for fid in &deletions {
            next.given.remove(fid.0);
        }

        let more_available = changes.len() < changed.len() || deletions.len() < deleted.len();
        if !more_available {
            next.seen
                .insert_range(Globcnt::saturating(1), self.current_globcnt());
        }
        self.mark_valid(&mut next);

        Ok(HierarchySyncBatch {
            changes,
            deletions,
            state: next,
            more_available,
        })
    }

    /// Checks that the store accepts `state` for a sync of `kind`.
    fn check_sync_state(&self, state: &SyncState, kind: SyncKind) -> Result<(), StoreError> {
        let reject = |reason| StoreError::InvalidSyncState {
            fid: state.folder,
            reason,
        };
        if state.kind != kind {
            return Err(reject(SyncStateRejection::FolderMismatch));
        }
        if state.replica.is_some_and(|guid| guid != self.replica_guid) {
            return Err(reject(SyncStateRejection::OtherStore));
        }
        let current = self.current_globcnt();
        let from_future = [&state.given, &state.seen, &state.seen_fai, &state.read]
            .iter()
            .any(|set| set.max().is_some_and(|max| max > current));
        if from_future {
            return Err(reject(SyncStateRejection::FromTheFuture));
        }
        if let Some(marker) = self.sync_invalidations.get(&state.folder) {
            let marked = state.seen.contains(marker.0)
                || state.seen_fai.contains(marker.0)
                || state.read.contains(marker.0);
            if !state.is_empty() && !marked {
                return Err(reject(SyncStateRejection::Invalidated));
            }
        }
        Ok(())
    }

    /// Marks a state made now as made after the folder's last invalidation.
    fn mark_valid(&self, state: &mut SyncState) {
        if let Some(marker) = self.sync_invalidations.get(&state.folder) {
            state.seen.insert(marker.0);
        }
    }

    /// Checks a state against this store without syncing: what an EWS front end does
    /// with a SyncState it received.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidSyncState`] as for [`Store::sync_contents`].
    pub fn validate_sync_state(&self, state: &SyncState) -> Result<(), StoreError> {
        self.check_sync_state(state, state.kind)
    }
}
