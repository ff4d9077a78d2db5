//! Incremental synchronization of folder contents and hierarchy in the terms of ICS
//! (MS-OXCFXICS): a client-held state of sets, and batches of changes computed from it.

use super::idset::GlobSet;
use super::ids::{Fid, Guid};

/// Which kind of synchronization a state belongs to.
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
