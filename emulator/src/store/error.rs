//! The store's error type.

use super::ids::{Fid, Mid};
use super::notify::SubscriptionId;
use super::session::SessionId;

/// An operation the store rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No session has this id.
    #[error("{operation}: unknown {session}; open a session first")]
    UnknownSession {
        /// The operation.
        operation: &'static str,
        /// The session.
        session: SessionId,
    },
    /// The session was expired by the store.
    #[error("{operation}: {session} has expired; open a new session")]
    SessionExpired {
        /// The operation.
        operation: &'static str,
        /// The session.
        session: SessionId,
    },
    /// No folder has this id.
    #[error("{operation}: folder {fid} not found; sync the folder hierarchy again")]
    FolderNotFound {
        /// The operation.
        operation: &'static str,
        /// The folder.
        fid: Fid,
    },
    /// No item has this id.
    #[error("{operation}: item {mid} not found; it may have been moved or deleted")]
    ItemNotFound {
        /// The operation.
        operation: &'static str,
        /// The item.
        mid: Mid,
    },
    /// A well-known folder cannot be deleted, renamed or moved.
    #[error("{operation}: folder {fid} is a well-known folder and cannot be changed this way")]
    WellKnownFolder {
        /// The operation.
        operation: &'static str,
        /// The folder.
        fid: Fid,
    },
    /// A sibling folder already has this display name.
    #[error(
        "{operation}: folder {parent} already has a subfolder named {name:?}; choose another name"
    )]
    FolderNameTaken {
        /// The operation.
        operation: &'static str,
        /// The parent folder.
        parent: Fid,
        /// The name.
        name: String,
    },
    /// A folder cannot be moved below itself.
    #[error("move folder: folder {fid} cannot be moved into its own subtree ({target})")]
    FolderCycle {
        /// The folder to move.
        fid: Fid,
        /// The target parent.
        target: Fid,
    },
    /// The MIME content could not be parsed.
    #[error(
        "{operation}: the MIME content ({length} bytes) could not be parsed as an RFC 5322 message"
    )]
    InvalidMime {
        /// The operation.
        operation: &'static str,
        /// Its length.
        length: usize,
    },
    /// The client-held sync state is not accepted, so the client must start a full sync
    /// from an empty state. EWS reports this as ErrorInvalidSyncStateData.
    #[error("sync of folder {fid}: invalid sync state: {reason}; start again from an empty state")]
    InvalidSyncState {
        /// The folder the sync was for.
        fid: Fid,
        /// The reason for the rejection.
        reason: SyncStateRejection,
    },
    /// No subscription has this id.
    #[error("{operation}: subscription {subscription} not found; subscribe again")]
    SubscriptionNotFound {
        /// The operation.
        operation: &'static str,
        /// The subscription.
        subscription: SubscriptionId,
    },
    /// The subscription was expired by the store or timed out.
    #[error("{operation}: subscription {subscription} has expired; subscribe again")]
    SubscriptionExpired {
        /// The operation.
        operation: &'static str,
        /// The subscription.
        subscription: SubscriptionId,
    },
    /// The 48-bit counter space is exhausted.
    #[error("{operation}: the store's 48-bit id counter is exhausted; create a new store")]
    CounterExhausted {
        /// The operation.
        operation: &'static str,
    },
}

/// The reason a sync state was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncStateRejection {
    /// The bytes are not a sync state of this store's format.
    #[error("the state bytes could not be parsed")]
    Unparsable,
    /// The state was made by another store (another replica GUID).
    #[error("the state belongs to another mailbox store")]
    OtherStore,
    /// The state was made for another folder or another kind of sync.
    #[error("the state was made for another folder or sync kind")]
    FolderMismatch,
    /// The state names change numbers or ids the store has not assigned yet.
    #[error("the state contains change numbers or ids from the future")]
    FromTheFuture,
    /// Fault injection invalidated the folder's sync states.
    #[error("the store invalidated the folder's sync states")]
    Invalidated,
}
