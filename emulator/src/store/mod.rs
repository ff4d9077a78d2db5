//! The mailbox store: a protocol-neutral model of one Exchange mailbox with folders,
//! items, change numbers, change keys, sessions, subscriptions and fault injection.
//!
//! Both protocol front ends read and write one [`Store`], so a change made over MAPI is
//! seen over EWS as on a real server. The store does no I/O, takes time from an
//! injectable [`Clock`] and draws its replica GUID from a seeded generator, so a run
//! replays exactly from its seed.

mod error;
pub mod ids;
pub mod idset;
pub mod model;
pub mod notify;
pub mod session;
pub mod sync;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use exmux_core::{Clock, ManualClock};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use error::{StoreError, SyncStateRejection};
pub use ids::{Cn, Fid, Globcnt, Guid, Mid, Pcl, Xid};
pub use idset::GlobSet;
pub use model::{
    Body, BodyType, ChangeStamp, FlagStatus, Folder, Importance, ImportStamp, Item,
    ItemProps, ItemUpdate, Mailbox, NewItemContent, ReadResult, WellKnownFolder, WriteResult,
};
pub use notify::{
    EventKind, EventKinds, Notice, NoticeBatch, ObjectId, SubscriptionId, SubscriptionScope,
    Watermark,
};
pub use session::{SessionId, SessionInfo};
pub use sync::{SyncKind, SyncState};

/// Settings of a new store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The seed of the id generator: the same seed gives the same replica GUID.
    pub seed: u64,
    /// The clock every timestamp and timeout reads.
    pub clock: Arc<dyn Clock>,
    /// The mailbox's SMTP address.
    pub mailbox: String,
}

impl Default for StoreOptions {
    /// Seed 0, a [`ManualClock`] at its default start, and `user1@example.test`.
    fn default() -> Self {
        Self {
            seed: 0,
            clock: Arc::new(ManualClock::default()),
            mailbox: "user1@example.test".to_owned(),
        }
    }
}

/// One mailbox.
#[derive(Debug)]
pub struct Store {
    clock: Arc<dyn Clock>,
    rng: ChaCha8Rng,
    mailbox: String,
    replica_guid: Guid,
    /// The last GLOBCNT handed out, for ids and change numbers alike.
    counter: u64,
    folders: BTreeMap<Fid, Folder>,
    well_known: BTreeMap<WellKnownFolder, Fid>,
    items: BTreeMap<Mid, Item>,
    folder_items: BTreeMap<Fid, BTreeSet<Mid>>,
}

impl Store {
    /// Creates a mailbox with the well-known folders.
    pub fn new(options: StoreOptions) -> Store {
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        let mut guid = [0u8; 16];
        rng.fill_bytes(&mut guid);
        Store {
            clock: options.clock,
            rng,
            mailbox: options.mailbox,
            replica_guid: Guid(guid),
            counter: 0,
            folders: BTreeMap::new(),
            well_known: BTreeMap::new(),
            items: BTreeMap::new(),
            folder_items: BTreeMap::new(),
        }
    }

    /// Returns the mailbox's SMTP address.
    pub fn mailbox(&self) -> &str {
        &self.mailbox
    }

    /// Returns the replica GUID: the namespace of the store's change keys and the GUID
    /// paired with replica id 1 in IDSETs.
    pub fn replica_guid(&self) -> Guid {
        self.replica_guid
    }

    /// Returns the id of a well-known folder.
    pub fn well_known_folder(&self, folder: WellKnownFolder) -> Option<Fid> {
        self.well_known.get(&folder).copied()
    }
}
