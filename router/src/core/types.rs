//! The inputs, outputs and events of the router core.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{BackendFolderId, BackendItemId, FolderKey, ItemKey};
use crate::journal::{ChangeKey, WriteId};
use crate::operation::{Backend, Operation};

/// A folder's sync state as the backend returned it: the EWS SyncState text
/// (MS-OXWSSYNC) as bytes, or the MAPI ICS state properties serialized by the
/// MAPI backend (MS-OXCFXICS). Opaque to the router; empty means "from the
/// beginning".
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SyncState(pub Vec<u8>);

impl SyncState {
    /// Returns true for the empty state, from which a sync reports every item.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SyncState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SyncState({} bytes)", self.0.len())
    }
}

impl Serialize for SyncState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for SyncState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map(SyncState)
            .map_err(serde::de::Error::custom)
    }
}

/// What kind of item change a sync reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ChangeKind {
    /// The server reports a new item (EWS `Create`).
    Created,
    /// The server reports a change to an item it says the client has (EWS `Update`).
    Modified,
    /// The server reports an item's current state without saying whether it is new
    /// (a MAPI ICS message change, MS-OXCFXICS).
    Upserted,
}

/// One item change in a sync page, with its current change key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemChange {
    /// The item's id on the syncing backend.
    pub id: BackendItemId,
    /// New, modified, or either.
    pub kind: ChangeKind,
    /// The item's change key after the change, when the backend reports it.
    pub change_key: Option<ChangeKey>,
    /// The predecessor change list (PidTagPredecessorChangeList, MS-OXCFXICS
    /// 2.2.1.2.8), when the backend reports it; empty otherwise.
    pub predecessors: Vec<ChangeKey>,
    /// The item's read state, when the change carries it.
    pub read: Option<bool>,
}

/// One entry of a sync page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SyncChange {
    /// An item was created or changed.
    Item(ItemChange),
    /// Only an item's read state changed (EWS `ReadFlagChange`, MAPI ICS read-state
    /// changes, MS-OXCFXICS). Carries no change key.
    ReadState {
        /// The item.
        id: BackendItemId,
        /// The new read state.
        read: bool,
    },
    /// An item was deleted or moved out of the folder.
    Deleted {
        /// The item.
        id: BackendItemId,
    },
}

impl SyncChange {
    /// Returns the id of the item the change is about.
    pub fn id(&self) -> &BackendItemId {
        match self {
            SyncChange::Item(change) => &change.id,
            SyncChange::ReadState { id, .. } | SyncChange::Deleted { id } => id,
        }
    }
}

/// One page of an incremental sync.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPage {
    /// The folder synced.
    pub folder: FolderKey,
    /// The changes, in the server's order.
    pub changes: Vec<SyncChange>,
    /// The state to sync from next.
    pub new_state: SyncState,
    /// True when the server has more changes after this page (EWS
    /// `IncludesLastItemInRange` false, MAPI ICS not yet at the end of the stream).
    pub more_available: bool,
}

/// Why a sync failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncFailure {
    /// The server declared the sync state invalid (EWS `ErrorInvalidSyncStateData`, an
    /// ICS state the server rejects). The only cause of a requested full resync.
    InvalidSyncState,
    /// Any other failure.
    Other {
        /// What failed, for the event (no secrets).
        message: String,
        /// True when the same request may succeed later.
        retryable: bool,
    },
}

/// A write the embedder is about to issue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteIntent {
    /// The operation; must be a write.
    pub operation: Operation,
    /// The item written; `None` for `create` and `send`, which get a new key (for a
    /// send, the key of its copy in Sent Items).
    pub item: Option<ItemKey>,
    /// The folder the write affects: the item's folder, the folder created in, or Sent
    /// Items for a send.
    pub folder: FolderKey,
    /// The backend the write goes over.
    pub backend: Backend,
    /// The backend session that issues it (empty for EWS).
    pub session: String,
    /// True when the backend stamps the change with a change key exmux assigns
    /// (MAPI ICS upload); the core then allocates one from its namespace.
    pub assign_change_key: bool,
    /// The read state written, for a read-state update.
    pub read_state: Option<bool>,
    /// The destination folder of a move or copy.
    pub target_folder: Option<FolderKey>,
}

/// What the core assigned to a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedWrite {
    /// The journal id to report the result under.
    pub id: WriteId,
    /// The item written: the created item's new key for `create`, the sent copy's key
    /// for `send`, the copy's key for `copy`, otherwise the intent's item.
    pub item: ItemKey,
    /// The change key to stamp on the change, when the intent asked for one.
    pub change_key: Option<ChangeKey>,
}

/// How a write ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteOutcome {
    /// The server confirmed the write.
    Succeeded {
        /// The change key the server returned, when it did.
        change_key: Option<ChangeKey>,
        /// The item's new id: of a created item, a moved item, or a copy. `None` when
        /// the server withheld it.
        new_id: Option<BackendItemId>,
    },
    /// The server rejected the write; nothing changed.
    Failed,
    /// The outcome was never learned (a lost response or a timeout).
    Lost,
}

/// How a fetch issued to verify an unknown item ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchOutcome {
    /// The item exists.
    Found {
        /// Its change key, when reported.
        change_key: Option<ChangeKey>,
        /// Its read state, when reported.
        read: Option<bool>,
    },
    /// The server has no such item.
    NotFound,
    /// The fetch failed.
    Failed {
        /// True when the same fetch may succeed later.
        retryable: bool,
    },
}

/// An input to [`crate::RouterCore::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// A change notice (EWS notification, MAPI RopNotify) for a folder: a hint only.
    Notice {
        /// The folder.
        folder: FolderKey,
    },
    /// A page of a sync the core requested.
    SyncPage(SyncPage),
    /// A sync the core requested failed.
    SyncFailed {
        /// The folder.
        folder: FolderKey,
        /// Why.
        failure: SyncFailure,
    },
    /// A journaled write ended.
    WriteResult {
        /// The write.
        write: WriteId,
        /// How it ended.
        outcome: WriteOutcome,
    },
    /// A verification fetch the core requested ended.
    FetchResult {
        /// The folder the core named in the request.
        folder: FolderKey,
        /// The id the core named in the request.
        id: BackendItemId,
        /// How it ended.
        outcome: FetchOutcome,
    },
    /// The checkpoint state of an ICS upload (RopSynchronizationGetTransferState on
    /// the upload context, MS-OXCFXICS). It contains the uploaded changes, so the next
    /// download leaves them out. The core takes it as the folder's sync state only
    /// when no sync is in flight and the folder's state is still `base`, the state the
    /// upload context started from. Otherwise the core ignores it, and the download
    /// reports the changes, which the journal matches by change key.
    UploadCheckpoint {
        /// The folder.
        folder: FolderKey,
        /// The sync state the upload context started from.
        base: SyncState,
        /// The checkpoint state after the upload.
        checkpoint: SyncState,
        /// The journaled writes the upload carried.
        writes: Vec<WriteId>,
    },
    /// Time passed; retries and timeouts fall due.
    Tick,
}

/// A request the driver issues on the core's behalf.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// Sync a folder incrementally from `from` and report the pages with
    /// [`Input::SyncPage`], or the failure with [`Input::SyncFailed`].
    Sync {
        /// The folder.
        folder: FolderKey,
        /// The backend to sync over.
        backend: Backend,
        /// The folder's id on that backend, when registered.
        folder_id: Option<BackendFolderId>,
        /// The state to sync from.
        from: SyncState,
    },
    /// Check that an item exists and report it with [`Input::FetchResult`]. `id` is
    /// the syncing backend's id; the driver converts it when `backend` differs.
    Verify {
        /// The folder the change came from.
        folder: FolderKey,
        /// The backend to fetch over (the `fetch` route).
        backend: Backend,
        /// The item.
        id: BackendItemId,
    },
}

/// Who made a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Origin {
    /// This transport: the journal holds its write with the same change key (or its
    /// delete, or the same read state).
    Local,
    /// Another client or the server.
    Remote,
    /// Possibly this transport: the journal holds a write to the item whose outcome
    /// was never learned.
    Unknown,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Local => "local",
            Origin::Remote => "remote",
            Origin::Unknown => "unknown",
        })
    }
}

/// Why the embedder must resynchronize a folder from scratch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ResyncReason {
    /// The server declared the sync state invalid.
    SyncStateRejected,
    /// The server treated a non-empty sync state as empty and re-sent items the
    /// router already held; the router reconciles them by id.
    ServerDiscardedSyncState,
}

/// An event for the embedder. Events are idempotent upserts, ordered per item.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An item exists with this state: insert or replace it.
    ItemChanged {
        /// The folder.
        folder: FolderKey,
        /// The item.
        item: ItemKey,
        /// The item's id on the syncing backend.
        id: BackendItemId,
        /// Who changed it.
        origin: Origin,
        /// What the server reported.
        kind: ChangeKind,
        /// The change key, when reported.
        change_key: Option<ChangeKey>,
        /// The read state, when reported.
        read: Option<bool>,
    },
    /// Only an item's read state changed: set it (an upsert of the flag).
    ReadStateChanged {
        /// The folder.
        folder: FolderKey,
        /// The item.
        item: ItemKey,
        /// Who changed it.
        origin: Origin,
        /// The read state.
        read: bool,
    },
    /// An item is gone: delete it if held.
    ItemDeleted {
        /// The folder.
        folder: FolderKey,
        /// The item.
        item: ItemKey,
        /// Who deleted it.
        origin: Origin,
    },
    /// The server reports this transport's own change to an item with a change key
    /// that the write's response did not give (the response was lost, or arrived
    /// after a later write's): store it. The change itself is not delivered again.
    ChangeKeyLearned {
        /// The folder.
        folder: FolderKey,
        /// The item.
        item: ItemKey,
        /// The item's change key on the server.
        change_key: ChangeKey,
    },
    /// The folder is being resynchronized from scratch. The items that follow are
    /// reconciled by id; items held but absent at the end get [`Event::ItemDeleted`].
    FullResync {
        /// The folder.
        folder: FolderKey,
        /// Why.
        reason: ResyncReason,
    },
    /// The folder's sync state advanced; persist it with the router state.
    SyncStateAdvanced {
        /// The folder.
        folder: FolderKey,
    },
    /// A sync failed.
    SyncFailed {
        /// The folder.
        folder: FolderKey,
        /// What failed.
        message: String,
        /// When the core retries, in milliseconds since the Unix epoch; `None` when it
        /// does not (the next notice starts a new sync).
        retry_at_millis: Option<u64>,
    },
}

/// An output of the core, taken with [`crate::RouterCore::poll_output`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// An event for the embedder.
    Event(Event),
    /// A request for the driver.
    Request(Request),
}

/// Counts for a summary, since the core was created or restored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Remote changes delivered.
    pub remote_delivered: u64,
    /// Changes recognised as this transport's own and not delivered.
    pub own_dropped: u64,
    /// Own changes delivered because the options ask for them.
    pub own_delivered: u64,
    /// Changes to items this transport deleted, dropped.
    pub superseded_dropped: u64,
    /// Changes of unknown origin delivered.
    pub unknown_delivered: u64,
    /// Changes to unknown items that a fetch showed gone, dropped.
    pub unverified_dropped: u64,
    /// Full resyncs (a rejected sync state, or a state the server silently discarded).
    pub full_resyncs: u64,
}
