//! Stable keys for the embedder and their mapping to each backend's ids.
//!
//! An item has one [`ItemKey`] for its whole life in the embedder, even when it is moved
//! (which gives it new backend ids) or written over the other backend. The [`IdMap`]
//! stores, per key, the id of the item on each backend: an EWS ItemId string
//! (MS-OXWSCORE) or a MAPI folder id and message id (MS-OXCDATA).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::journal::ChangeKey;
use crate::operation::Backend;

/// The embedder's stable key for an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ItemKey(pub u64);

impl fmt::Display for ItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "item-{}", self.0)
    }
}

/// The embedder's stable key for a folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FolderKey(pub u64);

impl fmt::Display for FolderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "folder-{}", self.0)
    }
}

/// An item's id on one backend.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum BackendItemId {
    /// An EWS ItemId `Id` attribute (base64 text, opaque to exmux here).
    Ews(String),
    /// A MAPI message: its folder id and message id, both 64-bit ids as MS-OXCDATA
    /// 2.2.1.1 defines them (replica id and global counter).
    Mapi {
        /// Folder id (FID).
        fid: u64,
        /// Message id (MID).
        mid: u64,
    },
}

impl BackendItemId {
    /// Returns the backend this id belongs to.
    pub fn backend(&self) -> Backend {
        match self {
            BackendItemId::Ews(_) => Backend::Ews,
            BackendItemId::Mapi { .. } => Backend::Mapi,
        }
    }
}

impl fmt::Display for BackendItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendItemId::Ews(id) => write!(f, "ews:{id}"),
            BackendItemId::Mapi { fid, mid } => write!(f, "mapi:{fid:#x}/{mid:#x}"),
        }
    }
}

/// A folder's id on one backend.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum BackendFolderId {
    /// An EWS FolderId `Id` attribute, or a distinguished folder name such as `inbox`.
    Ews(String),
    /// A MAPI folder id (FID).
    Mapi(u64),
}

impl BackendFolderId {
    /// Returns the backend this id belongs to.
    pub fn backend(&self) -> Backend {
        match self {
            BackendFolderId::Ews(_) => Backend::Ews,
            BackendFolderId::Mapi(_) => Backend::Mapi,
        }
    }
}

/// The router's record of one item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// The folder the item was last seen in.
    pub folder: FolderKey,
    /// The item's EWS id, when known.
    pub ews: Option<String>,
    /// The item's MAPI folder id and message id, when known.
    pub mapi: Option<(u64, u64)>,
    /// The last change key the router saw for the item, from a sync or a write result.
    pub change_key: Option<ChangeKey>,
    /// The item's read state as last reported or written, when known.
    pub read: Option<bool>,
    /// True after this transport deleted the item: a later change for it is superseded.
    pub deleted_locally: bool,
    /// The journal sequence number current when a remote change to the item was last
    /// delivered. A read-state write with a higher sequence number came after it.
    pub last_remote_seq: u64,
    /// Set when a create, copy or move of ours put the item in `folder`, to the
    /// number of sync rounds of that folder started by then; cleared when a sync of
    /// the folder reports the item. A sync only reports the deletion of an item it has
    /// reported before, so an item that leaves the folder in this window is never
    /// reported gone. A complete later round that does not report it shows it gone.
    #[serde(default)]
    pub unreported_since_round: Option<u64>,
    /// True when a move or delete of ours to the item had a lost outcome and its
    /// journal entry was retired: a later deletion may still be that write's echo.
    /// A move is journaled in its target folder, whose sync can retire the entry
    /// before the source folder's sync reports the deletion.
    #[serde(default)]
    pub removal_lost: bool,
}

impl ItemRecord {
    fn new(folder: FolderKey) -> Self {
        Self {
            folder,
            ews: None,
            mapi: None,
            change_key: None,
            read: None,
            deleted_locally: false,
            last_remote_seq: 0,
            unreported_since_round: None,
            removal_lost: false,
        }
    }
}

/// The mapping between item keys and backend ids.
///
/// Lookups by backend id go through two indexes kept in step with the records;
/// every mutation goes through a method here so they cannot diverge.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    next_item: u64,
    #[serde(with = "crate::pairs")]
    records: BTreeMap<ItemKey, ItemRecord>,
    by_ews: BTreeMap<String, ItemKey>,
    #[serde(with = "crate::pairs")]
    by_mapi: BTreeMap<(u64, u64), ItemKey>,
    // The ids our own moves replaced, until the source folder reports them deleted.
    #[serde(default, with = "crate::pairs")]
    moved_away: BTreeMap<BackendItemId, ItemKey>,
}

impl IdMap {
    /// Returns the key of the item a backend knows by `id`.
    pub fn key_of(&self, id: &BackendItemId) -> Option<ItemKey> {
        match id {
            BackendItemId::Ews(text) => self.by_ews.get(text).copied(),
            BackendItemId::Mapi { fid, mid } => self.by_mapi.get(&(*fid, *mid)).copied(),
        }
    }

    /// Returns what the router stores about `key`.
    pub fn get(&self, key: ItemKey) -> Option<&ItemRecord> {
        self.records.get(&key)
    }

    pub(crate) fn get_mut(&mut self, key: ItemKey) -> Option<&mut ItemRecord> {
        self.records.get_mut(&key)
    }

    /// Returns the id of `key` on `backend`, when known.
    pub fn backend_id(&self, key: ItemKey, backend: Backend) -> Option<BackendItemId> {
        let record = self.records.get(&key)?;
        match backend {
            Backend::Ews => record.ews.clone().map(BackendItemId::Ews),
            Backend::Mapi => record
                .mapi
                .map(|(fid, mid)| BackendItemId::Mapi { fid, mid }),
        }
    }

    /// Returns the number of items mapped.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Returns true when no item is mapped.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Returns the keys of the items the router places in `folder` and has not deleted.
    pub fn live_items_in(&self, folder: FolderKey) -> Vec<ItemKey> {
        self.records
            .iter()
            .filter(|(_, record)| record.folder == folder && !record.deleted_locally)
            .map(|(key, _)| *key)
            .collect()
    }

    /// Returns the keys of every item the router places in `folder`, deleted or not.
    pub fn items_in(&self, folder: FolderKey) -> Vec<ItemKey> {
        self.records
            .iter()
            .filter(|(_, record)| record.folder == folder)
            .map(|(key, _)| *key)
            .collect()
    }

    /// Forgets the ids that moves of ours replaced, for the items for which `is_gone`
    /// returns true.
    pub(crate) fn forget_moved_away_of(&mut self, is_gone: impl Fn(ItemKey) -> bool) {
        self.moved_away.retain(|_, key| !is_gone(*key));
    }

    /// Returns the keys of the items in `folder` that arrived through a write of ours
    /// and that no sync of the folder reported since, with the round count of
    /// [`ItemRecord::unreported_since_round`].
    pub fn unreported_in(&self, folder: FolderKey) -> Vec<(ItemKey, u64)> {
        self.records
            .iter()
            .filter(|(_, record)| record.folder == folder && !record.deleted_locally)
            .filter_map(|(key, record)| Some((*key, record.unreported_since_round?)))
            .collect()
    }

    /// Allocates a key for a new item in `folder`, with no backend id yet.
    pub fn allocate(&mut self, folder: FolderKey) -> ItemKey {
        self.next_item += 1;
        let key = ItemKey(self.next_item);
        self.records.insert(key, ItemRecord::new(folder));
        key
    }

    /// Returns the key for `id`, allocating one in `folder` when the id is new.
    pub fn key_or_insert(&mut self, id: &BackendItemId, folder: FolderKey) -> ItemKey {
        if let Some(key) = self.key_of(id) {
            return key;
        }
        let key = self.allocate(folder);
        self.bind(key, id.clone());
        key
    }

    /// Maps `id` to `key`, replacing the id `key` had on the same backend. This is how
    /// a move re-keys an item: the key stays, the backend id changes.
    pub fn bind(&mut self, key: ItemKey, id: BackendItemId) {
        let Some(record) = self.records.get_mut(&key) else {
            return;
        };
        match id {
            BackendItemId::Ews(text) => {
                if let Some(old) = record.ews.replace(text.clone()) {
                    self.by_ews.remove(&old);
                }
                if let Some(previous) = self.by_ews.insert(text, key)
                    && previous != key
                {
                    Self::unbind_ews_of(&mut self.records, previous);
                }
            }
            BackendItemId::Mapi { fid, mid } => {
                if let Some(old) = record.mapi.replace((fid, mid)) {
                    self.by_mapi.remove(&old);
                }
                if let Some(previous) = self.by_mapi.insert((fid, mid), key)
                    && previous != key
                {
                    Self::unbind_mapi_of(&mut self.records, previous);
                }
            }
        }
    }

    fn unbind_ews_of(records: &mut BTreeMap<ItemKey, ItemRecord>, key: ItemKey) {
        if let Some(record) = records.get_mut(&key) {
            record.ews = None;
        }
    }

    fn unbind_mapi_of(records: &mut BTreeMap<ItemKey, ItemRecord>, key: ItemKey) {
        if let Some(record) = records.get_mut(&key) {
            record.mapi = None;
        }
    }

    /// Moves `key` to `folder` and drops its backend ids, which a move invalidates; the
    /// caller binds the new ids when it learns them.
    pub fn relocate(&mut self, key: ItemKey, folder: FolderKey) {
        let Some(record) = self.records.get_mut(&key) else {
            return;
        };
        record.folder = folder;
        record.unreported_since_round = None;
        if let Some(old) = record.ews.take() {
            self.by_ews.remove(&old);
            self.moved_away.insert(BackendItemId::Ews(old), key);
        }
        if let Some((fid, mid)) = record.mapi.take() {
            self.by_mapi.remove(&(fid, mid));
            self.moved_away
                .insert(BackendItemId::Mapi { fid, mid }, key);
        }
    }

    /// Returns the key of the item that `id` named before a move of ours gave it a
    /// new id, until [`IdMap::forget_moved_away`] is called for `id`.
    pub fn moved_away_key(&self, id: &BackendItemId) -> Option<ItemKey> {
        self.moved_away.get(id).copied()
    }

    /// Forgets an id that a move of ours replaced, once the source folder reported
    /// it deleted.
    pub fn forget_moved_away(&mut self, id: &BackendItemId) {
        self.moved_away.remove(id);
    }

    /// Forgets `key` and its backend ids.
    pub fn remove(&mut self, key: ItemKey) {
        if let Some(record) = self.records.remove(&key) {
            if let Some(old) = record.ews {
                self.by_ews.remove(&old);
            }
            if let Some(old) = record.mapi {
                self.by_mapi.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_stable_across_backends() {
        let mut map = IdMap::default();
        let folder = FolderKey(1);
        let ews = BackendItemId::Ews("AAMk1".into());
        let key = map.key_or_insert(&ews, folder);
        map.bind(key, BackendItemId::Mapi { fid: 1, mid: 2 });
        assert_eq!(
            map.key_of(&BackendItemId::Mapi { fid: 1, mid: 2 }),
            Some(key)
        );
        assert_eq!(map.key_or_insert(&ews, folder), key);
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn move_rekeys_item() {
        let mut map = IdMap::default();
        let old = BackendItemId::Ews("old".into());
        let key = map.key_or_insert(&old, FolderKey(1));
        map.relocate(key, FolderKey(2));
        map.bind(key, BackendItemId::Ews("new".into()));
        assert_eq!(map.key_of(&old), None);
        assert_eq!(map.key_of(&BackendItemId::Ews("new".into())), Some(key));
        assert_eq!(map.get(key).map(|record| record.folder), Some(FolderKey(2)));
    }

    #[test]
    fn remove_clears_indexes() {
        let mut map = IdMap::default();
        let id = BackendItemId::Mapi { fid: 7, mid: 9 };
        let key = map.key_or_insert(&id, FolderKey(1));
        map.remove(key);
        assert_eq!(map.key_of(&id), None);
        assert!(map.is_empty());
    }
}
