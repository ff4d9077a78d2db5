//! The mailbox store: a protocol-neutral model of one Exchange mailbox with folders,
//! items, change numbers, change keys, sessions, subscriptions and fault injection.
//!
//! Both protocol front ends read and write one [`Store`], so a change made over MAPI is
//! seen over EWS as on a real server. The store does no I/O, takes time from an
//! injectable [`Clock`] and draws its replica GUID from a seeded generator, so a run
//! replays exactly from its seed.

mod error;
mod fault;
mod folders;
pub mod ids;
pub mod idset;
mod items;
mod mime;
pub(crate) use mime::compose_mime;
pub mod model;
pub mod notify;
pub mod session;
pub mod sync;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use exmux_core::{Clock, ManualClock};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use error::{StoreError, SyncStateRejection};
pub use fault::FrontEndFault;
pub use ids::{Cn, Fid, Globcnt, Guid, Mid, Pcl, Xid};
pub use idset::GlobSet;
pub use items::{FolderCounts, ItemPage, ListOptions, NewItem};
pub use model::{
    Attachment, Body, BodyType, ChangeStamp, FlagStatus, Folder, ImportStamp, Importance, Item,
    ItemProps, ItemUpdate, Mailbox, NewItemContent, ReadResult, WellKnownFolder, WriteResult,
};
pub use notify::{
    EventKind, EventKinds, Notice, NoticeBatch, ObjectId, SubscriptionId, SubscriptionScope,
    Watermark,
};
pub use session::{SessionId, SessionInfo};
pub use sync::{
    ChangeKind, ContentSyncBatch, FolderChange, HierarchySyncBatch, ItemChange, ReadChange,
    SyncKind, SyncOptions, SyncState,
};

use notify::Subscription;

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

/// The record of a deleted or moved-away item or folder, kept so a caller can look up
/// what happened to an id a client still has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tombstone {
    /// The folder that contained the object.
    pub parent: Fid,
    /// The change number of the deletion or move.
    pub cn: Cn,
    /// The session that deleted or moved the object.
    pub session: SessionId,
    /// When.
    pub time: SystemTime,
    /// For an item moved away, its new id.
    pub moved_to: Option<Mid>,
}

/// One mailbox: folders, items, change tracking, sessions and subscriptions.
///
/// Every mutation takes the [`SessionId`] that makes it, stamps a new change number
/// from the store-wide counter, and queues notices for the matching subscriptions.
/// Mutations either succeed completely or change nothing. A clone is an independent
/// copy that shares only the clock, which a simulation can use to fork a run.
#[derive(Clone, Debug)]
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
    item_tombstones: BTreeMap<Mid, Tombstone>,
    folder_tombstones: BTreeMap<Fid, Tombstone>,
    /// Soft-deleted items (the dumpster), under the id they had in their folder. Each
    /// keeps `Item::folder`, the folder it was deleted from.
    recoverable_items: BTreeMap<Mid, Item>,
    sessions: BTreeMap<SessionId, SessionInfo>,
    subscriptions: BTreeMap<SubscriptionId, Subscription>,
    next_session: u64,
    next_subscription: u64,
    last_watermark: u64,
    /// Folder -> the change number reserved when its sync states were invalidated.
    sync_invalidations: BTreeMap<Fid, Cn>,
    front_end_faults: Vec<(Option<SessionId>, FrontEndFault)>,
}

impl Store {
    /// Creates a mailbox with the well-known folders, all made by
    /// [`SessionId::SYSTEM`].
    pub fn new(options: StoreOptions) -> Store {
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        let mut guid = [0u8; 16];
        rng.fill_bytes(&mut guid);

        let mut sessions = BTreeMap::new();
        sessions.insert(
            SessionId::SYSTEM,
            SessionInfo {
                id: SessionId::SYSTEM,
                label: "store".to_owned(),
                expired: false,
            },
        );

        let mut store = Store {
            clock: options.clock,
            rng,
            mailbox: options.mailbox,
            replica_guid: Guid(guid),
            counter: 0,
            folders: BTreeMap::new(),
            well_known: BTreeMap::new(),
            items: BTreeMap::new(),
            folder_items: BTreeMap::new(),
            item_tombstones: BTreeMap::new(),
            folder_tombstones: BTreeMap::new(),
            recoverable_items: BTreeMap::new(),
            sessions,
            subscriptions: BTreeMap::new(),
            next_session: 1,
            next_subscription: 1,
            last_watermark: 0,
            sync_invalidations: BTreeMap::new(),
            front_end_faults: Vec::new(),
        };
        store.create_well_known_folders();
        store
    }

    fn create_well_known_folders(&mut self) {
        for folder in WellKnownFolder::ALL {
            // The counter starts at 0 here, so neither call can exhaust it.
            let Ok(fid) = self.next_globcnt("create store").map(Fid) else {
                return;
            };
            let Ok(stamp) = self.new_stamp(
                "create store",
                SessionId::SYSTEM,
                None,
                &ImportStamp::default(),
            ) else {
                return;
            };
            let parent = folder
                .parent()
                .and_then(|parent| self.well_known.get(&parent).copied());
            self.folders.insert(
                fid,
                Folder {
                    fid,
                    parent,
                    display_name: folder.display_name().to_owned(),
                    container_class: folder.container_class().map(str::to_owned),
                    well_known: Some(folder),
                    stamp,
                    created_by: SessionId::SYSTEM,
                },
            );
            self.folder_items.insert(fid, BTreeSet::new());
            self.well_known.insert(folder, fid);
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

    /// Returns the last GLOBCNT assigned to an id or change number. Sync states with a
    /// greater value are rejected as coming from the future.
    pub fn current_globcnt(&self) -> Globcnt {
        Globcnt::saturating(self.counter)
    }

    /// Returns the current time of the store's clock.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Returns the next value of the seeded generator, for callers that need
    /// deterministic randomness tied to the store (such as opaque EWS subscription
    /// tokens).
    pub fn next_random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Opens a session. `label` names it in logs and tests.
    pub fn open_session(&mut self, label: &str) -> SessionId {
        let id = SessionId(self.next_session);
        self.next_session += 1;
        self.sessions.insert(
            id,
            SessionInfo {
                id,
                label: label.to_owned(),
                expired: false,
            },
        );
        id
    }

    /// Closes a session. Its subscriptions stay until unsubscribed or expired, as EWS
    /// subscriptions outlive the request that made them.
    pub fn close_session(&mut self, session: SessionId) {
        if session != SessionId::SYSTEM {
            self.sessions.remove(&session);
        }
    }

    /// Returns a session's record.
    pub fn session(&self, session: SessionId) -> Option<&SessionInfo> {
        self.sessions.get(&session)
    }

    /// Fails unless `session` is open and not expired.
    fn check_session(&self, operation: &'static str, session: SessionId) -> Result<(), StoreError> {
        match self.sessions.get(&session) {
            None => Err(StoreError::UnknownSession { operation, session }),
            Some(info) if info.expired => Err(StoreError::SessionExpired { operation, session }),
            Some(_) => Ok(()),
        }
    }

    /// Takes the next GLOBCNT from the store-wide counter.
    fn next_globcnt(&mut self, operation: &'static str) -> Result<Globcnt, StoreError> {
        let next = self.counter + 1;
        let globcnt = Globcnt::new(next).ok_or(StoreError::CounterExhausted { operation })?;
        self.counter = next;
        Ok(globcnt)
    }

    /// Makes the stamp of a new change: a new change number, the imported change key or
    /// the store's own (replica GUID plus the change number's counter), and the imported
    /// PCL or the old PCL merged with the new change key.
    fn new_stamp(
        &mut self,
        operation: &'static str,
        session: SessionId,
        old: Option<&ChangeStamp>,
        import: &ImportStamp,
    ) -> Result<ChangeStamp, StoreError> {
        let cn = Cn(self.next_globcnt(operation)?);
        let change_key = import
            .change_key
            .clone()
            .unwrap_or_else(|| Xid::from_globcnt(self.replica_guid, cn.0));
        let pcl = match &import.pcl {
            Some(pcl) => pcl.clone(),
            None => {
                let mut pcl = old.map(|stamp| stamp.pcl.clone()).unwrap_or_default();
                pcl.merge_xid(&change_key);
                pcl
            }
        };
        Ok(ChangeStamp {
            cn,
            change_key,
            pcl,
            session,
            time: self.clock.now(),
        })
    }
}
