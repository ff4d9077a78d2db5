//! The write journal and exmux's own change keys.
//!
//! Every write this transport issues is recorded before it goes out, with the change
//! key the server returned or the one exmux assigned. The core compares the change keys
//! of sync results against the journal to tell this transport's own changes from other
//! clients' changes. Entries are retired once the folder's sync has moved past them, so
//! the journal stays bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::ids::{FolderKey, ItemKey};
use crate::operation::{Backend, Operation};

/// A change key as the server reports it: an EWS ChangeKey decoded from base64, or a
/// MAPI PidTagChangeKey (an XID, MS-OXCFXICS). Compared byte for byte.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangeKey(pub Vec<u8>);

impl fmt::Debug for ChangeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChangeKey({})", STANDARD.encode(&self.0))
    }
}

/// Writes the key as base64, the form EWS sends it in.
impl fmt::Display for ChangeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(&self.0))
    }
}

impl Serialize for ChangeKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for ChangeKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map(ChangeKey)
            .map_err(serde::de::Error::custom)
    }
}

/// An XID: a namespace GUID followed by a local id of 1 to 8 bytes, the form of
/// PidTagChangeKey (MS-OXCFXICS, "XID").
///
/// exmux writes its own XIDs with an 8-byte local id, because MS-OXCFXICS ("Foreign
/// Identifiers") requires a client's XIDs to differ in length from the server's
/// 6-byte GLOBCNT ones and to increase with every change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Xid {
    /// The namespace GUID, written in the little-endian GUID layout of MS-OXCDATA.
    pub namespace: Uuid,
    /// The local id.
    pub counter: u64,
}

impl Xid {
    /// The length of the change keys exmux writes: 16 bytes of GUID and 8 of counter.
    pub const OWN_LEN: usize = 24;

    /// Encodes the XID as a change key: the GUID, then the counter as 8 bytes,
    /// big-endian so that byte order follows counter order like a GLOBCNT.
    pub fn to_change_key(self) -> ChangeKey {
        let mut bytes = Vec::with_capacity(Self::OWN_LEN);
        bytes.extend_from_slice(&self.namespace.to_bytes_le());
        bytes.extend_from_slice(&self.counter.to_be_bytes());
        ChangeKey(bytes)
    }

    /// Decodes a change key of 17 to 24 bytes (a GUID and a 1- to 8-byte local id).
    /// Returns `None` for any other length.
    pub fn from_change_key(key: &ChangeKey) -> Option<Self> {
        if !(17..=Self::OWN_LEN).contains(&key.0.len()) {
            return None;
        }
        let (guid, local) = key.0.split_at(16);
        let guid: [u8; 16] = guid.try_into().ok()?;
        let mut counter = [0u8; 8];
        counter.get_mut(8 - local.len()..)?.copy_from_slice(local);
        Some(Xid {
            namespace: Uuid::from_bytes_le(guid),
            counter: u64::from_be_bytes(counter),
        })
    }
}

/// The source of exmux's own change keys: its namespace GUID and the next counter.
/// Persisted with the router state so a restart never reuses a change key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeKeyAllocator {
    namespace: Uuid,
    next: u64,
}

/// The change-key counter ran out of 48-bit values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the change-key counter of namespace {namespace} is exhausted: start a new namespace with a fresh router state"
)]
pub struct CounterExhausted {
    /// The exhausted namespace.
    pub namespace: Uuid,
}

impl ChangeKeyAllocator {
    /// Creates an allocator for `namespace` whose first key has counter 1.
    pub fn new(namespace: Uuid) -> Self {
        Self { namespace, next: 1 }
    }

    /// Returns the namespace GUID.
    pub fn namespace(&self) -> Uuid {
        self.namespace
    }

    /// Allocates the next XID.
    ///
    /// # Errors
    /// [`CounterExhausted`] after 2^64 - 2 keys.
    pub fn allocate(&mut self) -> Result<Xid, CounterExhausted> {
        if self.next == u64::MAX {
            return Err(CounterExhausted {
                namespace: self.namespace,
            });
        }
        let xid = Xid {
            namespace: self.namespace,
            counter: self.next,
        };
        self.next += 1;
        Ok(xid)
    }

    /// Returns true when `key` is an XID this allocator could have written.
    pub fn is_own(&self, key: &ChangeKey) -> bool {
        key.0.len() == Xid::OWN_LEN
            && Xid::from_change_key(key).is_some_and(|xid| xid.namespace == self.namespace)
    }
}

/// The id of one journaled write, unique within a router state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WriteId(pub u64);

/// The status of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WriteStatus {
    /// Issued; no result yet.
    Pending,
    /// The server confirmed it.
    Succeeded,
    /// The server rejected it, so it changed nothing.
    Failed,
    /// The outcome was never learned (a lost response or a timeout).
    Lost,
}

/// One journaled write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The write's id.
    pub id: WriteId,
    /// The operation.
    pub operation: Operation,
    /// The item written.
    pub item: ItemKey,
    /// The folder whose sync shows the write: the item's folder, or the destination
    /// folder of a move or copy.
    pub folder: FolderKey,
    /// The backend the write went over.
    pub backend: Backend,
    /// The backend session that issued it (EWS has none: empty).
    pub session: String,
    /// The change key the server returned or exmux assigned, when known.
    pub change_key: Option<ChangeKey>,
    /// The read state written, for read-state updates.
    pub read_state: Option<bool>,
    /// The destination folder of a move or copy.
    pub target_folder: Option<FolderKey>,
    /// The write's status.
    pub status: WriteStatus,
    /// When the write was issued, in milliseconds since the Unix epoch.
    pub issued_at_millis: u64,
    /// The number of syncs of the folder started when the outcome was learned; a sync
    /// started later reflects the write. `None` while the write is pending.
    pub settled_at_round: Option<u64>,
}

/// The journal of this transport's writes, ordered by [`WriteId`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    next_id: u64,
    #[serde(with = "crate::pairs")]
    entries: BTreeMap<WriteId, JournalEntry>,
    // The writes of each item, so classifying a change does not scan the journal.
    #[serde(with = "crate::pairs")]
    by_item: BTreeMap<ItemKey, BTreeSet<WriteId>>,
}

impl Journal {
    /// Returns the id of the last write recorded, 0 for none. Ids only grow, so this
    /// is also a clock of write order: a later write gets a larger id.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Returns the number of entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns true when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Returns the entry of `id`.
    pub fn get(&self, id: WriteId) -> Option<&JournalEntry> {
        self.entries.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: WriteId) -> Option<&mut JournalEntry> {
        self.entries.get_mut(&id)
    }

    /// Records a new pending write and returns its id.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        &mut self,
        operation: Operation,
        item: ItemKey,
        folder: FolderKey,
        backend: Backend,
        session: String,
        change_key: Option<ChangeKey>,
        read_state: Option<bool>,
        target_folder: Option<FolderKey>,
        now_millis: u64,
    ) -> WriteId {
        self.next_id += 1;
        let id = WriteId(self.next_id);
        self.by_item.entry(item).or_default().insert(id);
        self.entries.insert(
            id,
            JournalEntry {
                id,
                operation,
                item,
                folder,
                backend,
                session,
                change_key,
                read_state,
                target_folder,
                status: WriteStatus::Pending,
                issued_at_millis: now_millis,
                settled_at_round: None,
            },
        );
        id
    }

    /// Returns the entries for `item`, oldest first.
    pub fn entries_for(&self, item: ItemKey) -> impl Iterator<Item = &JournalEntry> + Clone {
        self.by_item
            .get(&item)
            .into_iter()
            .flatten()
            .filter_map(|id| self.entries.get(id))
    }

    fn remove(&mut self, id: WriteId) -> Option<JournalEntry> {
        let entry = self.entries.remove(&id)?;
        if let Some(writes) = self.by_item.get_mut(&entry.item) {
            writes.remove(&id);
            if writes.is_empty() {
                self.by_item.remove(&entry.item);
            }
        }
        Some(entry)
    }

    /// Returns all entries, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &JournalEntry> {
        self.entries.values()
    }

    /// Removes the settled entries of `folder` whose outcome was learned before sync
    /// round `completed_round` started, except those of the items in `in_use`, and
    /// returns the removed entries. An entry stays while an earlier entry of its item
    /// stays, because a change that matches the earlier write is that write's echo
    /// only when no later write replaced its value.
    pub(crate) fn retire(
        &mut self,
        folder: FolderKey,
        completed_round: u64,
        in_use: &BTreeSet<ItemKey>,
    ) -> Vec<JournalEntry> {
        let settled: BTreeSet<WriteId> = self
            .entries
            .values()
            .filter(|entry| {
                entry.folder == folder
                    && !in_use.contains(&entry.item)
                    && entry
                        .settled_at_round
                        .is_some_and(|settled| settled < completed_round)
            })
            .map(|entry| entry.id)
            .collect();
        let retired: Vec<WriteId> = settled
            .iter()
            .copied()
            .filter(|id| {
                let Some(entry) = self.entries.get(id) else {
                    return false;
                };
                self.by_item.get(&entry.item).is_none_or(|writes| {
                    writes.range(..*id).all(|earlier| settled.contains(earlier))
                })
            })
            .collect();
        retired
            .into_iter()
            .filter_map(|id| self.remove(id))
            .collect()
    }

    /// Removes every entry that `forget` selects, settled or not, and returns them.
    pub(crate) fn remove_where(
        &mut self,
        forget: impl Fn(&JournalEntry) -> bool,
    ) -> Vec<JournalEntry> {
        let removed: Vec<WriteId> = self
            .entries
            .values()
            .filter(|entry| forget(entry))
            .map(|entry| entry.id)
            .collect();
        removed
            .into_iter()
            .filter_map(|id| self.remove(id))
            .collect()
    }

    /// Removes settled entries issued before `cutoff_millis`, whatever their folder,
    /// and returns them. This bounds the journal when a folder is never synced again.
    pub(crate) fn retire_older_than(&mut self, cutoff_millis: u64) -> Vec<JournalEntry> {
        let retired: Vec<WriteId> = self
            .entries
            .values()
            .filter(|entry| {
                entry.settled_at_round.is_some() && entry.issued_at_millis < cutoff_millis
            })
            .map(|entry| entry.id)
            .collect();
        retired
            .into_iter()
            .filter_map(|id| self.remove(id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xid_round_trip() {
        let namespace = Uuid::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let xid = Xid {
            namespace,
            counter: 0x0000_1234_5678_9abc,
        };
        let key = xid.to_change_key();
        assert_eq!(key.0.len(), 24);
        assert_eq!(
            key.0.get(16..),
            Some(&[0, 0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc][..])
        );
        // MS-OXCDATA GUID layout: the first three fields little-endian.
        assert_eq!(key.0.get(..4), Some(&[0x67, 0x45, 0x23, 0x01][..]));
        assert_eq!(Xid::from_change_key(&key), Some(xid));
    }

    #[test]
    fn xid_decodes_server_globcnt_length() {
        let mut bytes = vec![0u8; 16];
        bytes.extend_from_slice(&[0, 0, 0, 0, 0x01, 0x02]);
        let xid = Xid::from_change_key(&ChangeKey(bytes)).unwrap();
        assert_eq!(xid.counter, 0x0102);
    }

    #[test]
    fn xid_rejects_wrong_length() {
        assert_eq!(Xid::from_change_key(&ChangeKey(vec![0; 16])), None);
        assert_eq!(Xid::from_change_key(&ChangeKey(vec![0; 25])), None);
    }

    #[test]
    fn own_keys_differ_from_globcnt_length() {
        let allocator = ChangeKeyAllocator::new(Uuid::from_u128(3));
        let mut server_key = Uuid::from_u128(3).to_bytes_le().to_vec();
        server_key.extend_from_slice(&[0, 0, 0, 0, 0, 1]);
        assert!(!allocator.is_own(&ChangeKey(server_key)));
    }

    #[test]
    fn allocator_never_repeats_after_restore() {
        let mut allocator = ChangeKeyAllocator::new(Uuid::from_u128(7));
        let first = allocator.allocate().unwrap();
        let saved = serde_json::to_string(&allocator).unwrap();
        let mut restored: ChangeKeyAllocator = serde_json::from_str(&saved).unwrap();
        let second = restored.allocate().unwrap();
        assert_ne!(first, second);
        assert!(restored.is_own(&second.to_change_key()));
        assert!(!restored.is_own(&ChangeKey(vec![1, 2, 3])));
    }

    #[test]
    fn allocator_reports_exhaustion() {
        let mut allocator = ChangeKeyAllocator {
            namespace: Uuid::from_u128(1),
            next: u64::MAX - 1,
        };
        assert!(allocator.allocate().is_ok());
        assert!(allocator.allocate().is_err());
    }

    #[test]
    fn change_key_serializes_as_base64() {
        let key = ChangeKey(vec![0xff, 0x00, 0x10]);
        let text = serde_json::to_string(&key).unwrap();
        assert_eq!(text, "\"/wAQ\"");
        assert_eq!(serde_json::from_str::<ChangeKey>(&text).unwrap(), key);
    }
}
