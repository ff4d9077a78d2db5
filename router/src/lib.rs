//! exmux-router: the API that sync engines embed. It routes each operation over EWS or
//! MAPI/HTTP, merges both backends' notices, labels every change with its origin and
//! drops the changes this transport made itself.
//!
//! This crate contains everything without I/O:
//! - [`operation`]: [`Operation`], [`Backend`] and the [`CapabilityTable`];
//! - [`config`]: the TOML configuration, credentials by reference, routing checks;
//! - [`ids`]: stable [`ItemKey`]s and their backend ids;
//! - [`journal`]: the write journal and exmux's own change keys (XIDs);
//! - [`core`]: the [`RouterCore`] state machine: inputs in, events and requests out;
//! - [`persist`]: saving the [`RouterState`] to a file.
//!
//! # Feeding the core
//!
//! The driver passes the current time with each input and issues the requests the
//! core returns. Here a notice starts a sync, the page reports one remote change, and
//! the embedder receives it:
//!
//! ```
//! use exmux_router::config::Preset;
//! use exmux_router::core::{
//!     ChangeKind, CoreOptions, Event, Input, ItemChange, Origin, Output, Request, SyncChange,
//!     SyncPage, SyncState,
//! };
//! use exmux_router::ids::{BackendFolderId, BackendItemId};
//! use exmux_router::RouterCore;
//!
//! let mut core = RouterCore::new(
//!     uuid::Uuid::from_u128(1),
//!     Preset::Hybrid.routing(),
//!     CoreOptions::default(),
//! );
//! let inbox = core.register_folder(vec![BackendFolderId::Mapi(0x1_0001)]);
//! let now = 1_704_067_200_000;
//!
//! core.handle(now, Input::Notice { folder: inbox })?;
//! let Some(Output::Request(Request::Sync { from, .. })) = core.poll_output() else {
//!     panic!("a notice on an idle folder starts a sync");
//! };
//! assert!(from.is_empty());
//!
//! core.handle(now, Input::SyncPage(SyncPage {
//!     folder: inbox,
//!     changes: vec![SyncChange::Item(ItemChange {
//!         id: BackendItemId::Mapi { fid: 0x1_0001, mid: 0x2_0001 },
//!         kind: ChangeKind::Upserted,
//!         change_key: None,
//!         predecessors: Vec::new(),
//!         read: Some(false),
//!     })],
//!     new_state: SyncState(b"state-1".to_vec()),
//!     more_available: false,
//! }))?;
//! let events: Vec<Event> = core
//!     .drain_outputs()
//!     .into_iter()
//!     .filter_map(|output| match output {
//!         Output::Event(event) => Some(event),
//!         _ => None,
//!     })
//!     .collect();
//! assert!(matches!(events[0], Event::ItemChanged { origin: Origin::Remote, .. }));
//! assert_eq!(core.counters().remote_delivered, 1);
//! # Ok::<(), exmux_router::core::CoreError>(())
//! ```

pub mod backend;
pub mod config;
pub mod core;
pub mod ids;
pub mod journal;
pub mod operation;
mod pairs;
pub mod persist;
pub mod transport;

pub use crate::config::{Config, ConfigError, ConfigWarning, Preset, Routing};
pub use crate::core::{RouterCore, RouterState};
pub use crate::ids::{FolderKey, ItemKey};
pub use crate::operation::{Backend, CapabilityTable, Operation, Support};

// Compiles the README's embedding example as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
