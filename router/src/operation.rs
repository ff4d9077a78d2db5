//! Operations, backends and the capability table.
//!
//! An [`Operation`] is the unit of routing: the configuration sends each one over a
//! [`Backend`], and the [`CapabilityTable`] says how well each backend can carry it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The unit of routing. Its [`Operation::key`] is the configuration key in `[routing]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Operation {
    /// Incremental sync of the folder hierarchy (EWS SyncFolderHierarchy, MAPI ICS
    /// hierarchy download).
    SyncHierarchy,
    /// Incremental sync of a folder's items (EWS SyncFolderItems, MAPI ICS contents
    /// download), including read-state changes and deletions.
    SyncItems,
    /// Fetching item content (MIME or properties).
    Fetch,
    /// Creating an item.
    Create,
    /// Changing read state, flags, categories or other properties of an item.
    Update,
    /// Deleting an item.
    Delete,
    /// Moving an item to another folder.
    Move,
    /// Copying an item to another folder.
    Copy,
    /// Submitting a message for delivery.
    Send,
    /// Creating, renaming, moving and deleting folders.
    Folder,
    /// Subscribing to change notifications.
    Subscribe,
}

impl Operation {
    /// Every operation, in the order the capability table prints them.
    pub const ALL: [Operation; 11] = [
        Operation::SyncHierarchy,
        Operation::SyncItems,
        Operation::Fetch,
        Operation::Create,
        Operation::Update,
        Operation::Delete,
        Operation::Move,
        Operation::Copy,
        Operation::Send,
        Operation::Folder,
        Operation::Subscribe,
    ];

    /// The operations that change items in a folder. Routing one of them to a backend
    /// other than the folder's sync backend risks the change-key hazard of
    /// [`crate::config::ConfigWarning::SplitWriteAndSync`].
    pub const ITEM_WRITES: [Operation; 5] = [
        Operation::Create,
        Operation::Update,
        Operation::Delete,
        Operation::Move,
        Operation::Copy,
    ];

    /// Returns the configuration key of the operation, such as `sync_items`.
    pub fn key(self) -> &'static str {
        match self {
            Operation::SyncHierarchy => "sync_hierarchy",
            Operation::SyncItems => "sync_items",
            Operation::Fetch => "fetch",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Move => "move",
            Operation::Copy => "copy",
            Operation::Send => "send",
            Operation::Folder => "folder",
            Operation::Subscribe => "subscribe",
        }
    }

    /// Returns true for the writes that add an item to a folder: a create, copy or move
    /// adds it to the folder written to, and a send files a copy in Sent Items.
    pub fn adds_item(self) -> bool {
        matches!(
            self,
            Operation::Create | Operation::Copy | Operation::Move | Operation::Send
        )
    }

    /// Returns true for operations that change server state.
    pub fn is_write(self) -> bool {
        !matches!(
            self,
            Operation::SyncHierarchy
                | Operation::SyncItems
                | Operation::Fetch
                | Operation::Subscribe
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A configuration value that names no operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown operation {0:?}: expected one of sync_hierarchy, sync_items, fetch, create, update, delete, move, copy, send, folder, subscribe"
)]
pub struct UnknownOperation(pub String);

impl FromStr for Operation {
    type Err = UnknownOperation;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|operation| operation.key() == value)
            .ok_or_else(|| UnknownOperation(value.to_owned()))
    }
}

/// A protocol exmux can send an operation over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Backend {
    /// Exchange Web Services (SOAP over HTTPS), crate exmux-ews.
    Ews,
    /// MAPI over HTTP (ROP buffers over HTTPS), crate exmux-mapihttp.
    Mapi,
}

impl Backend {
    /// Every backend, in the order the capability table prints them.
    pub const ALL: [Backend; 2] = [Backend::Ews, Backend::Mapi];

    /// Returns the configuration value of the backend: `ews` or `mapi`.
    pub fn key(self) -> &'static str {
        match self {
            Backend::Ews => "ews",
            Backend::Mapi => "mapi",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A configuration value that names no backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {0:?}: expected \"ews\" or \"mapi\"")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .into_iter()
            .find(|backend| backend.key() == value)
            .ok_or_else(|| UnknownBackend(value.to_owned()))
    }
}

/// How well a backend carries an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Support {
    /// The backend carries the operation with everything a sync engine relies on.
    Full,
    /// The backend carries the operation with a limitation, which the text states.
    Partial(&'static str),
    /// The backend cannot carry the operation.
    None,
}

impl Support {
    /// Returns true when the operation can be routed to the backend (full or partial).
    pub fn is_usable(self) -> bool {
        !matches!(self, Support::None)
    }
}

impl fmt::Display for Support {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Support::Full => f.write_str("full"),
            Support::Partial(reason) => write!(f, "partial: {reason}"),
            Support::None => f.write_str("none"),
        }
    }
}

/// The reason MAPI fetch is partial.
pub const MAPI_MIME_FETCH: &str =
    "MIME is composed from MAPI properties: equivalent to the server's, not byte-identical";
/// The reason MAPI create is partial.
pub const MAPI_MIME_CREATE: &str =
    "MIME is parsed into MAPI properties: the stored item is equivalent, not byte-identical";
/// The reason MAPI copy is partial.
pub const MAPI_COPY_NEW_ID: &str =
    "the server does not return the new message ids; they are learned at the next download";
/// The reason EWS move and copy are partial.
pub const EWS_MOVE_COPY_NEW_ID: &str = "the server may withhold the new item id (for example across mailboxes); it is then learned at the next sync";

/// The support of each operation on each backend.
///
/// [`CapabilityTable::default`] is what the backends of this workspace implement against
/// a server that offers both protocols; [`CapabilityTable::without_backend`] removes a
/// protocol that a server does not offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapabilityTable {
    // Indexed by position in `Operation::ALL`, then `Backend::ALL`.
    entries: [[Support; 2]; 11],
}

impl Default for CapabilityTable {
    fn default() -> Self {
        let mut table = CapabilityTable {
            entries: [[Support::Full; 2]; 11],
        };
        table.set(
            Operation::Fetch,
            Backend::Mapi,
            Support::Partial(MAPI_MIME_FETCH),
        );
        table.set(
            Operation::Create,
            Backend::Mapi,
            Support::Partial(MAPI_MIME_CREATE),
        );
        table.set(
            Operation::Copy,
            Backend::Mapi,
            Support::Partial(MAPI_COPY_NEW_ID),
        );
        table.set(
            Operation::Move,
            Backend::Ews,
            Support::Partial(EWS_MOVE_COPY_NEW_ID),
        );
        table.set(
            Operation::Copy,
            Backend::Ews,
            Support::Partial(EWS_MOVE_COPY_NEW_ID),
        );
        table
    }
}

impl CapabilityTable {
    fn index(operation: Operation, backend: Backend) -> (usize, usize) {
        let row = Operation::ALL
            .iter()
            .position(|candidate| *candidate == operation)
            .unwrap_or(0);
        let column = Backend::ALL
            .iter()
            .position(|candidate| *candidate == backend)
            .unwrap_or(0);
        (row, column)
    }

    /// Returns the support of `operation` on `backend`.
    pub fn support(&self, operation: Operation, backend: Backend) -> Support {
        let (row, column) = Self::index(operation, backend);
        self.entries
            .get(row)
            .and_then(|cells| cells.get(column))
            .copied()
            .unwrap_or(Support::None)
    }

    /// Sets the support of `operation` on `backend`.
    pub fn set(&mut self, operation: Operation, backend: Backend, support: Support) {
        let (row, column) = Self::index(operation, backend);
        if let Some(cell) = self
            .entries
            .get_mut(row)
            .and_then(|cells| cells.get_mut(column))
        {
            *cell = support;
        }
    }

    /// Returns a copy in which `backend` supports nothing, for a server that does not
    /// offer that protocol.
    pub fn without_backend(&self, backend: Backend) -> Self {
        let mut table = self.clone();
        for operation in Operation::ALL {
            table.set(operation, backend, Support::None);
        }
        table
    }

    /// Returns the backends that can carry `operation` (fully or partly).
    pub fn capable_backends(&self, operation: Operation) -> Vec<Backend> {
        Backend::ALL
            .into_iter()
            .filter(|backend| self.support(operation, *backend).is_usable())
            .collect()
    }
}

impl fmt::Display for CapabilityTable {
    /// Prints one line per operation: the key, then the support on EWS and on MAPI.
    /// Partial entries are numbered and their reasons listed below the table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut reasons: Vec<&'static str> = Vec::new();
        writeln!(f, "{:<16} {:<12} {:<12}", "operation", "ews", "mapi")?;
        for operation in Operation::ALL {
            write!(f, "{:<16}", operation.key())?;
            for backend in Backend::ALL {
                let cell = match self.support(operation, backend) {
                    Support::Full => "full".to_owned(),
                    Support::None => "none".to_owned(),
                    Support::Partial(reason) => {
                        let number = match reasons.iter().position(|known| *known == reason) {
                            Some(position) => position + 1,
                            None => {
                                reasons.push(reason);
                                reasons.len()
                            }
                        };
                        format!("partial [{number}]")
                    }
                };
                write!(f, " {cell:<12}")?;
            }
            writeln!(f)?;
        }
        for (position, reason) in reasons.iter().enumerate() {
            writeln!(f, "[{}] {reason}", position + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_keys_round_trip() {
        for operation in Operation::ALL {
            assert_eq!(operation.key().parse::<Operation>(), Ok(operation));
        }
        assert!("sync".parse::<Operation>().is_err());
    }

    #[test]
    fn default_table_partials() {
        let table = CapabilityTable::default();
        assert_eq!(
            table.support(Operation::Copy, Backend::Mapi),
            Support::Partial(MAPI_COPY_NEW_ID)
        );
        assert_eq!(
            table.support(Operation::Fetch, Backend::Mapi),
            Support::Partial(MAPI_MIME_FETCH)
        );
        assert_eq!(table.support(Operation::Fetch, Backend::Ews), Support::Full);
        assert_eq!(
            table.support(Operation::SyncItems, Backend::Mapi),
            Support::Full
        );
    }

    #[test]
    fn table_without_backend() {
        let table = CapabilityTable::default().without_backend(Backend::Mapi);
        assert_eq!(
            table.support(Operation::Update, Backend::Mapi),
            Support::None
        );
        assert_eq!(
            table.capable_backends(Operation::Update),
            vec![Backend::Ews]
        );
    }

    #[test]
    fn table_prints_every_operation() {
        let text = CapabilityTable::default().to_string();
        for operation in Operation::ALL {
            assert!(text.contains(operation.key()), "{text}");
        }
        assert!(text.contains(MAPI_COPY_NEW_ID), "{text}");
        assert!(text.contains("partial [1]"), "{text}");
    }
}
