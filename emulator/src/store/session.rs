//! Sessions: the identity every mutation records.

use std::fmt;

/// The id of a session: one client connection or logon that reads and writes the store.
/// Every change records the session that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

impl SessionId {
    /// The store itself: the creator of the well-known folders and the author of
    /// background changes such as a rewritten change key.
    pub const SYSTEM: SessionId = SessionId(0);
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session {}", self.0)
    }
}

/// A session's record in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The id.
    pub id: SessionId,
    /// A label the caller chose, such as "ews" or "mapi client 2", for logs.
    pub label: String,
    /// Whether the store has expired the session; operations then fail with
    /// [`super::StoreError::SessionExpired`].
    pub expired: bool,
}
