//! One schedule: the store, the client under test, the messages in flight and the
//! seeded scheduler that picks what happens next.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use exmux_core::ManualClock;
use exmux_emulator::store::{
    ChangeKind as StoreChangeKind, ContentSyncBatch, Fid, FlagStatus, ImportStamp, ItemUpdate,
    ListOptions, Mid, NewItem, SessionId, Store, StoreError, StoreOptions, SyncKind, SyncOptions,
    SyncState as StoreSyncState, WellKnownFolder, Xid,
};
use exmux_router::Preset;
use exmux_router::core::{
    ChangeKind, CoreOptions, Event, FetchOutcome, Input, ItemChange, Origin, Output, Phase,
    Request, ResyncReason, SyncChange, SyncFailure, SyncPage, SyncState, WriteIntent, WriteOutcome,
};
use exmux_router::ids::{BackendFolderId, BackendItemId, FolderKey, ItemKey};
use exmux_router::journal::{ChangeKey, WriteId};
use exmux_router::{Backend, Operation, RouterCore};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Invariant, Mode, Outcome, Stats, Violation};

/// The simulated clock's start: 2024-01-01T00:00:00Z.
const START_MILLIS: u64 = 1_704_067_200_000;
/// How long the naive client ignores changes to an item it wrote.
const NAIVE_WINDOW_MILLIS: u64 = 5_000;
/// How far the drain phase moves time: past every retry and write timeout.
const DRAIN_JUMP_MILLIS: u64 = 400_000;
/// Rounds of the drain phase before a schedule counts as not settling.
const DRAIN_ROUNDS: usize = 8;

/// The author of a change in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Author {
    /// The client under test (exmux or the naive model).
    Own,
    /// Another client.
    Other,
    /// The server by itself.
    Server,
}

/// The embedder's copy of one item.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Copy {
    folder: usize,
    id: BackendItemId,
    change_key: Option<Vec<u8>>,
    read: Option<bool>,
}

/// One change the embedder applies to its replica, logged to replay the stream.
#[derive(Clone, Debug)]
enum ReplicaOp {
    Upsert {
        key: u64,
        folder: usize,
        id: BackendItemId,
        change_key: Option<Vec<u8>>,
        read: Option<bool>,
    },
    SetRead {
        key: u64,
        read: bool,
    },
    /// The response of an own write to an item the embedder holds: it never creates
    /// the item again, because a late response can follow the item's deletion.
    Update {
        key: u64,
        change_key: Option<Vec<u8>>,
        read: Option<bool>,
    },
    Remove {
        key: u64,
    },
}

fn apply_op(replica: &mut BTreeMap<u64, Copy>, op: &ReplicaOp) {
    match op {
        ReplicaOp::Upsert {
            key,
            folder,
            id,
            change_key,
            read,
        } => {
            let copy = replica.entry(*key).or_insert_with(|| Copy {
                folder: *folder,
                id: id.clone(),
                change_key: None,
                read: None,
            });
            copy.folder = *folder;
            copy.id = id.clone();
            if change_key.is_some() {
                copy.change_key.clone_from(change_key);
            }
            if read.is_some() {
                copy.read = *read;
            }
        }
        ReplicaOp::SetRead { key, read } => {
            if let Some(copy) = replica.get_mut(key) {
                copy.read = Some(*read);
            }
        }
        ReplicaOp::Update {
            key,
            change_key,
            read,
        } => {
            let Some(copy) = replica.get_mut(key) else {
                return;
            };
            if change_key.is_some() {
                copy.change_key.clone_from(change_key);
            }
            if read.is_some() {
                copy.read = *read;
            }
        }
        ReplicaOp::Remove { key } => {
            replica.remove(key);
        }
    }
}

/// A replica copy as the check compares it: folder, change key, read state.
type HeldCopy = (usize, Option<Vec<u8>>, Option<bool>);

/// The replica changes the embedder applies when a write of its own succeeds.
#[derive(Clone, Debug)]
enum Effect {
    None,
    Ops(Vec<ReplicaOp>),
}

/// A sync response: a page in the backend's shape, or a failure.
#[derive(Clone, Debug)]
enum SyncReply {
    Page {
        changes: Vec<SyncChange>,
        state: Vec<u8>,
        more: bool,
    },
    Failed(SyncFailure),
}

/// A message in flight. The scheduler delivers them in any order.
#[derive(Clone, Debug)]
enum Pending {
    Notice {
        folder: usize,
    },
    SyncCall {
        folder: usize,
        from: Vec<u8>,
    },
    SyncReply {
        folder: usize,
        reply: SyncReply,
    },
    VerifyCall {
        folder: usize,
        id: BackendItemId,
    },
    VerifyReply {
        folder: usize,
        id: BackendItemId,
        outcome: FetchOutcome,
    },
    WriteReply {
        token: u64,
        outcome: WriteOutcome,
        effect: Effect,
        ids: Vec<BackendItemId>,
        checkpoint: Option<Checkpoint>,
    },
    Resubscribe,
}

/// The checkpoint state that an ICS upload of the MAPI backend returns with its
/// response (RopSynchronizationGetTransferState on the upload context).
#[derive(Clone, Debug)]
struct Checkpoint {
    folder: usize,
    /// The folder's sync state that the upload context started from.
    base: Vec<u8>,
    /// That state with the upload's own change added.
    state: Vec<u8>,
}

/// The naive EWS client's state of one folder.
#[derive(Clone, Debug, Default)]
struct NaiveFolder {
    state: Vec<u8>,
    syncing: bool,
    dirty: bool,
}

/// A model of the usual EWS client: notices trigger folder syncs, a change to an item it
/// does not hold triggers a full resync, and items it wrote recently are ignored.
#[derive(Debug, Default)]
struct Naive {
    folders: [NaiveFolder; 2],
    index: HashMap<BackendItemId, u64>,
    next_key: u64,
    recent: HashMap<BackendItemId, u64>,
    next_token: u64,
}

/// The client under test.
#[derive(Debug)]
enum Client {
    Exmux(Box<RouterCore>),
    Naive(Box<Naive>),
}

/// Per-request fault probabilities, zero in the drain phase.
#[derive(Clone, Copy, Debug)]
struct Faults {
    busy: f64,
    dropped: f64,
    lost_response: f64,
    notice_dropped: f64,
    notice_duplicated: f64,
}

const ACTIVE_FAULTS: Faults = Faults {
    busy: 0.05,
    dropped: 0.04,
    lost_response: 0.06,
    notice_dropped: 0.15,
    notice_duplicated: 0.1,
};

const NO_FAULTS: Faults = Faults {
    busy: 0.0,
    dropped: 0.0,
    lost_response: 0.0,
    notice_dropped: 0.0,
    notice_duplicated: 0.0,
};

/// The embedder's writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteKind {
    MarkRead,
    Flag,
    Categorise,
    Delete,
    Move,
    Copy,
    Create,
}

impl WriteKind {
    /// Returns the name of the write in traces.
    fn name(self) -> &'static str {
        match self {
            WriteKind::MarkRead => "mark-read",
            WriteKind::Flag => "flag",
            WriteKind::Categorise => "categorise",
            WriteKind::Delete => "delete",
            WriteKind::Move => "move",
            WriteKind::Copy => "copy",
            WriteKind::Create => "create",
        }
    }
}

const WRITE_KINDS: [WriteKind; 7] = [
    WriteKind::MarkRead,
    WriteKind::Flag,
    WriteKind::Categorise,
    WriteKind::Delete,
    WriteKind::Move,
    WriteKind::Copy,
    WriteKind::Create,
];

impl WriteKind {
    fn operation(self) -> Operation {
        match self {
            WriteKind::MarkRead | WriteKind::Flag | WriteKind::Categorise => Operation::Update,
            WriteKind::Delete => Operation::Delete,
            WriteKind::Move => Operation::Move,
            WriteKind::Copy => Operation::Copy,
            WriteKind::Create => Operation::Create,
        }
    }
}

/// One schedule's world.
pub(crate) struct World {
    mode: Mode,
    rng: ChaCha8Rng,
    clock: ManualClock,
    now: u64,
    store: Store,
    /// The sessions of the client under test: the EWS one and every MAPI one it opened.
    own_sessions: Vec<SessionId>,
    ews_session: SessionId,
    mapi_session: SessionId,
    other: SessionId,
    fids: [Fid; 2],
    keys: [FolderKey; 2],
    client: Client,
    faults: Faults,
    pending: Vec<Pending>,
    notices_down: bool,
    replica: BTreeMap<u64, Copy>,
    log: Vec<ReplicaOp>,
    /// The author of each (message id, change key) the adapters reported.
    key_author: HashMap<(u64, Vec<u8>), Author>,
    /// The message id and author of the write that made each change key. A move keeps
    /// the change key, so the key alone does not name the mover.
    key_maker: HashMap<Vec<u8>, (u64, Author)>,
    /// The last writer and value of each item's read state.
    read_writer: HashMap<u64, (Author, bool)>,
    invalidations: [u32; 2],
    rejections: [u32; 2],
    resync_events: [u32; 2],
    own_category: u32,
    stats: Stats,
    violations: Vec<Violation>,
    trace: Option<Vec<String>>,
}

macro_rules! trace {
    ($world:expr, $($arg:tt)*) => {
        if let Some(trace) = $world.trace.as_mut() {
            trace.push(format!("t+{:>6} ms  {}", $world.now - START_MILLIS, format_args!($($arg)*)));
        }
    };
}

fn ews_id(mid: Mid) -> BackendItemId {
    BackendItemId::Ews(format!("{:x}", mid.to_u64()))
}

fn mid_of(id: &BackendItemId) -> Option<Mid> {
    match id {
        BackendItemId::Ews(text) => u64::from_str_radix(text, 16).ok().and_then(Mid::from_u64),
        BackendItemId::Mapi { mid, .. } => Mid::from_u64(*mid),
        _ => None,
    }
}

fn key_bytes(xid: &Xid) -> Vec<u8> {
    xid.to_bytes()
}

impl World {
    /// Builds the world of `seed`: a new store with two folders the client syncs, the
    /// client's sessions and another client's. `None` when the store lacks its
    /// well-known folders.
    pub(crate) fn new(mode: Mode, seed: u64, traced: bool) -> Option<Self> {
        let clock = ManualClock::new(START_MILLIS);
        let mut store = Store::new(StoreOptions {
            seed,
            clock: Arc::new(clock.clone()),
            mailbox: "user1@example.test".to_owned(),
        });
        let inbox = store.well_known_folder(WellKnownFolder::Inbox)?;
        let drafts = store.well_known_folder(WellKnownFolder::Drafts)?;
        let fids = [inbox, drafts];
        let ews_session = store.open_session("exmux-ews");
        let mapi_session = store.open_session("exmux-mapi");
        let other = store.open_session("other client");

        let client = match mode {
            Mode::NaiveEws => Client::Naive(Box::default()),
            Mode::Ews | Mode::Mapi | Mode::Hybrid => {
                let preset = match mode {
                    Mode::Ews => Preset::Ews,
                    Mode::Mapi => Preset::Mapi,
                    _ => Preset::Hybrid,
                };
                let namespace = uuid_from_seed(seed);
                Client::Exmux(Box::new(RouterCore::new(
                    namespace,
                    preset.routing(),
                    CoreOptions::default(),
                )))
            }
        };

        let mut world = World {
            mode,
            rng: ChaCha8Rng::seed_from_u64(seed),
            clock,
            now: START_MILLIS,
            store,
            own_sessions: vec![ews_session, mapi_session],
            ews_session,
            mapi_session,
            other,
            fids,
            keys: [FolderKey(0); 2],
            client,
            faults: ACTIVE_FAULTS,
            pending: Vec::new(),
            notices_down: false,
            replica: BTreeMap::new(),
            log: Vec::new(),
            key_author: HashMap::new(),
            key_maker: HashMap::new(),
            read_writer: HashMap::new(),
            invalidations: [0; 2],
            rejections: [0; 2],
            resync_events: [0; 2],
            own_category: 0,
            stats: Stats::default(),
            violations: Vec::new(),
            trace: traced.then(Vec::new),
        };
        if let Client::Exmux(core) = &mut world.client {
            for (index, fid) in fids.iter().enumerate() {
                let key = core.register_folder(vec![
                    BackendFolderId::Ews(format!("{:x}", fid.to_u64())),
                    BackendFolderId::Mapi(fid.to_u64()),
                ]);
                if let Some(slot) = world.keys.get_mut(index) {
                    *slot = key;
                }
            }
        }
        Some(world)
    }

    fn index_of(&self, key: FolderKey) -> usize {
        usize::from(self.keys[1] == key)
    }

    /// Runs the schedule: a few items to start, `steps` seeded choices, then the drain
    /// phase and the invariant checks.
    pub(crate) fn run(mut self, steps: Option<u32>, seed: u64) -> Outcome {
        let steps = steps.unwrap_or_else(|| self.rng.random_range(4..=20));

        // Every schedule starts from the client having synced a few items.
        for _ in 0..self.rng.random_range(1..=3) {
            let folder = self.rng.random_range(0..2);
            self.other_create(folder);
            self.register_keys();
        }
        self.pending.clear();
        self.notice_all();
        self.drain_once();
        trace!(self, "--- setup done, {} steps follow", steps);

        for _ in 0..steps {
            self.step();
        }

        trace!(self, "--- drain");
        self.faults = NO_FAULTS;
        let mut settled = false;
        for _ in 0..DRAIN_ROUNDS {
            self.drain_once();
            self.now += DRAIN_JUMP_MILLIS;
            self.clock.set_millis(self.now);
            self.tick();
            self.notice_all();
            self.drain_once();
            if self.quiescent() {
                settled = true;
                break;
            }
        }
        if !settled {
            let detail = match &self.client {
                Client::Exmux(core) => {
                    let busy = core
                        .state()
                        .folders
                        .values()
                        .filter(|folder| folder.phase != Phase::Idle)
                        .count();
                    format!(
                        "the client never settled: {} messages in flight, {} held changes, {busy} folders not idle",
                        self.pending.len(),
                        core.state().held.len(),
                    )
                }
                Client::Naive(_) => format!(
                    "the client never settled: {} messages in flight",
                    self.pending.len()
                ),
            };
            self.violate(Invariant::Quiescence, detail);
        }
        self.check();

        Outcome {
            seed,
            mode: self.mode,
            steps,
            violations: self.violations,
            stats: self.stats,
            trace: self.trace.unwrap_or_default(),
        }
    }

    fn violate(&mut self, invariant: Invariant, detail: String) {
        trace!(self, "VIOLATION {invariant}: {detail}");
        self.violations.push(Violation { invariant, detail });
    }

    fn step(&mut self) {
        // Mostly quick steps, and now and then a stall of seconds (a slow server, a
        // notice held up), longer than the naive client's window.
        self.now += if self.rng.random_bool(0.1) {
            self.rng.random_range(1_000..8_000)
        } else {
            self.rng.random_range(0..400)
        };
        self.clock.set_millis(self.now);
        let deliver_weight = if self.pending.is_empty() { 0 } else { 45 };
        let roll = self.rng.random_range(0..(30 + 18 + 7 + deliver_weight));
        if roll < 30 {
            self.own_write();
        } else if roll < 48 {
            self.other_write();
        } else if roll < 55 {
            self.fault();
        } else {
            self.deliver_one();
        }
        self.register_keys();
    }

    fn drain_once(&mut self) {
        // Each delivery may queue more; the bound only stops a client that loops.
        for _ in 0..10_000 {
            if self.pending.is_empty() {
                return;
            }
            self.deliver_one();
        }
    }

    fn quiescent(&self) -> bool {
        if !self.pending.is_empty() {
            return false;
        }
        match &self.client {
            Client::Exmux(core) => {
                let state = core.state();
                state.held.is_empty()
                    && state
                        .folders
                        .values()
                        .all(|folder| folder.phase == Phase::Idle)
            }
            Client::Naive(naive) => naive.folders.iter().all(|folder| !folder.syncing),
        }
    }

    fn notice_all(&mut self) {
        self.pending.push(Pending::Notice { folder: 0 });
        self.pending.push(Pending::Notice { folder: 1 });
    }

    /// Queues the server's notice for a change in `folder`: dropped, duplicated or
    /// delivered late (every pending message is delivered in seeded order).
    fn notify(&mut self, folder: usize) {
        if self.notices_down {
            trace!(self, "notice for folder {folder} lost: not subscribed");
            return;
        }
        if self.rng.random_bool(self.faults.notice_dropped) {
            trace!(self, "notice for folder {folder} dropped");
            return;
        }
        self.pending.push(Pending::Notice { folder });
        if self.rng.random_bool(self.faults.notice_duplicated) {
            self.pending.push(Pending::Notice { folder });
        }
    }

    fn author_of(&self, session: SessionId) -> Author {
        if session == SessionId::SYSTEM {
            Author::Server
        } else if self.own_sessions.contains(&session) {
            Author::Own
        } else {
            Author::Other
        }
    }

    /// Notes the maker of every change key the last store write made.
    fn register_keys(&mut self) {
        for folder in 0..2 {
            for mid in self.items_in(folder) {
                let Some(item) = self.store.item(mid) else {
                    continue;
                };
                let author = self.author_of(item.stamp.session);
                self.key_maker
                    .entry(key_bytes(&item.stamp.change_key))
                    .or_insert((mid.to_u64(), author));
            }
        }
    }

    /// Returns the author of the state a sync reports for `item`. A change key made on this
    /// message id names its writer. A key that a move carried over names the mover,
    /// unless someone else made it and the embedder's replica does not contain it.
    /// Then the state carries that other change, which the embedder has not seen.
    fn change_author(&self, item: &exmux_emulator::store::Item) -> Author {
        let key = key_bytes(&item.stamp.change_key);
        let mid = item.mid.to_u64();
        let embedder_has_key = self
            .replica
            .values()
            .any(|copy| copy.change_key.as_ref() == Some(&key));
        match self.key_maker.get(&key) {
            Some((made_on, maker)) if *made_on == mid => *maker,
            Some((_, maker)) if *maker != Author::Own && !embedder_has_key => *maker,
            Some(_) => self.author_of(item.created_by),
            None => self.author_of(item.stamp.session),
        }
    }

    fn items_in(&self, folder: usize) -> Vec<Mid> {
        self.store
            .list_items(self.fids[folder], ListOptions::default())
            .map(|page| page.items.iter().map(|item| item.mid).collect())
            .unwrap_or_default()
    }

    // ---- other clients and faults -------------------------------------------------

    fn other_create(&mut self, folder: usize) {
        let new = NewItem {
            new_mail: true,
            ..NewItem::default()
        };
        if let Ok(result) = self.store.create_item(self.other, self.fids[folder], new) {
            trace!(
                self,
                "other client creates {} in folder {folder}", result.id
            );
            self.notify(folder);
        }
    }

    fn other_write(&mut self) {
        let folder = self.rng.random_range(0..2);
        let items = self.items_in(folder);
        let choice = self.rng.random_range(0..6);
        if items.is_empty() || choice == 0 {
            self.other_create(folder);
            return;
        }
        let mid = items[self.rng.random_range(0..items.len())];
        let session = self.other;
        match choice {
            1 | 2 => {
                let read = self.rng.random_bool(0.5);
                if self.store.set_read(session, mid, read).is_ok() {
                    self.read_writer.insert(mid.to_u64(), (Author::Other, read));
                    trace!(self, "other client sets {mid} read={read}");
                    self.notify(folder);
                }
            }
            3 => {
                let update = ItemUpdate {
                    flag: Some(FlagStatus::Complete),
                    ..ItemUpdate::default()
                };
                if self
                    .store
                    .update_item(session, mid, update, &ImportStamp::default())
                    .is_ok()
                {
                    trace!(self, "other client flags {mid}");
                    self.notify(folder);
                }
            }
            4 => {
                if self.store.delete_item(session, mid).is_ok() {
                    trace!(self, "other client deletes {mid}");
                    self.notify(folder);
                }
            }
            _ => {
                let target = 1 - folder;
                if let Ok(result) = self.store.move_item(session, mid, self.fids[target]) {
                    trace!(
                        self,
                        "other client moves {mid} to folder {target} as {}", result.id
                    );
                    self.notify(folder);
                    self.notify(target);
                }
            }
        }
    }

    fn fault(&mut self) {
        match self.rng.random_range(0..4) {
            0 => {
                let folder = self.rng.random_range(0..2);
                if self.store.invalidate_sync_states(self.fids[folder]).is_ok() {
                    self.invalidations[folder] += 1;
                    trace!(
                        self,
                        "FAULT: the server invalidates folder {folder}'s sync states"
                    );
                }
            }
            1 => {
                let folder = self.rng.random_range(0..2);
                let items = self.items_in(folder);
                if items.is_empty() {
                    return;
                }
                let mid = items[self.rng.random_range(0..items.len())];
                if self.store.rewrite_change_key(mid).is_ok() {
                    trace!(self, "FAULT: the server rewrites {mid}'s change key");
                    self.notify(folder);
                }
            }
            _ => {
                let uses_mapi = matches!(self.mode, Mode::Mapi | Mode::Hybrid);
                if uses_mapi {
                    self.store.expire_session(self.mapi_session);
                    trace!(self, "FAULT: the MAPI session expires");
                } else {
                    trace!(self, "FAULT: the EWS subscription expires");
                }
                if !self.notices_down {
                    self.notices_down = true;
                    self.pending.push(Pending::Resubscribe);
                }
            }
        }
    }

    fn tick(&mut self) {
        if let Client::Exmux(core) = &mut self.client {
            let _ = core.handle(self.now, Input::Tick);
        }
        self.drain_outputs();
    }

    // ---- delivery ------------------------------------------------------------------

    fn deliver_one(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let index = self.rng.random_range(0..self.pending.len());
        let message = self.pending.swap_remove(index);
        match message {
            Pending::Notice { folder } => {
                trace!(self, "notice for folder {folder} arrives");
                self.on_notice(folder);
            }
            Pending::Resubscribe => {
                self.notices_down = false;
                if matches!(self.mode, Mode::Mapi | Mode::Hybrid)
                    && self
                        .store
                        .session(self.mapi_session)
                        .is_some_and(|info| info.expired)
                {
                    self.reconnect();
                }
                trace!(self, "resubscribed: a sync of every folder follows");
                self.on_notice(0);
                self.on_notice(1);
            }
            Pending::SyncCall { folder, from } => self.serve_sync(folder, &from),
            Pending::SyncReply { folder, reply } => self.on_sync_reply(folder, reply),
            Pending::VerifyCall { folder, id } => self.serve_verify(folder, id),
            Pending::VerifyReply {
                folder,
                id,
                outcome,
            } => {
                trace!(self, "verify reply for {id}: {}", fetch_text(&outcome));
                if let Client::Exmux(core) = &mut self.client {
                    let _ = core.handle(
                        self.now,
                        Input::FetchResult {
                            folder: self.keys[folder],
                            id,
                            outcome,
                        },
                    );
                }
                self.drain_outputs();
            }
            Pending::WriteReply {
                token,
                outcome,
                effect,
                ids,
                checkpoint,
            } => self.on_write_reply(token, outcome, effect, &ids, checkpoint),
        }
    }

    fn on_notice(&mut self, folder: usize) {
        match &mut self.client {
            Client::Exmux(core) => {
                let _ = core.handle(
                    self.now,
                    Input::Notice {
                        folder: self.keys[folder],
                    },
                );
                self.drain_outputs();
            }
            Client::Naive(naive) => {
                let state = &mut naive.folders[folder];
                if state.syncing {
                    state.dirty = true;
                } else {
                    state.syncing = true;
                    let from = state.state.clone();
                    self.pending.push(Pending::SyncCall { folder, from });
                }
            }
        }
    }

    fn reconnect(&mut self) {
        let session = self.store.open_session("exmux-mapi");
        self.own_sessions.push(session);
        self.mapi_session = session;
        trace!(self, "MAPI session reconnected");
    }

    fn sync_backend(&self) -> Backend {
        match self.mode {
            Mode::Ews | Mode::NaiveEws => Backend::Ews,
            Mode::Mapi | Mode::Hybrid => Backend::Mapi,
        }
    }

    /// The server computes a sync batch now; the reply arrives later.
    fn serve_sync(&mut self, folder: usize, from: &[u8]) {
        let backend = self.sync_backend();
        if backend == Backend::Mapi
            && self
                .store
                .session(self.mapi_session)
                .is_some_and(|info| info.expired)
        {
            self.reconnect();
            let reply = SyncReply::Failed(SyncFailure::Other {
                message: "session expired".to_owned(),
                retryable: true,
            });
            self.pending.push(Pending::SyncReply { folder, reply });
            return;
        }
        if self.rng.random_bool(self.faults.busy) {
            trace!(self, "FAULT: server busy on a sync of folder {folder}");
            let reply = SyncReply::Failed(SyncFailure::Other {
                message: "server busy".to_owned(),
                retryable: true,
            });
            self.pending.push(Pending::SyncReply { folder, reply });
            return;
        }
        if self.rng.random_bool(self.faults.dropped) {
            trace!(
                self,
                "FAULT: connection dropped on a sync of folder {folder}"
            );
            let reply = SyncReply::Failed(SyncFailure::Other {
                message: "connection dropped".to_owned(),
                retryable: true,
            });
            self.pending.push(Pending::SyncReply { folder, reply });
            return;
        }

        let fid = self.fids[folder];
        let state = if from.is_empty() {
            Ok(StoreSyncState::empty(SyncKind::Contents, fid))
        } else {
            StoreSyncState::from_bytes(from)
        };
        let options = SyncOptions {
            max_changes: self.rng.random_range(1..=4),
            include_fai: false,
        };
        let batch = match state {
            Ok(state) => self.store.sync_contents(&state, options),
            Err(reason) => Err(StoreError::InvalidSyncState { fid, reason }),
        };
        let reply = match batch {
            Ok(batch) => {
                let changes = self.adapt(backend, fid, &batch);
                SyncReply::Page {
                    changes,
                    state: batch.state.to_bytes(),
                    more: batch.more_available,
                }
            }
            Err(StoreError::InvalidSyncState { .. }) => {
                self.rejections[folder] += 1;
                trace!(self, "the server rejects folder {folder}'s sync state");
                SyncReply::Failed(SyncFailure::InvalidSyncState)
            }
            Err(error) => SyncReply::Failed(SyncFailure::Other {
                message: error.to_string(),
                retryable: false,
            }),
        };
        self.pending.push(Pending::SyncReply { folder, reply });
    }

    /// Turns a store batch into the shape the backend's sync result has: EWS
    /// SyncFolderItems (Create and Update with ChangeKey, ReadFlagChange, Delete) or a
    /// MAPI ICS download (message changes with change key and PCL, read-state sets,
    /// deletions).
    fn adapt(&mut self, backend: Backend, fid: Fid, batch: &ContentSyncBatch) -> Vec<SyncChange> {
        let id_of = |mid: Mid| match backend {
            Backend::Ews => ews_id(mid),
            _ => BackendItemId::Mapi {
                fid: fid.to_u64(),
                mid: mid.to_u64(),
            },
        };
        let mut changes = Vec::with_capacity(
            batch.changes.len() + batch.deletions.len() + batch.read_changes.len(),
        );
        for change in &batch.changes {
            let item = &change.item;
            let change_key = key_bytes(&item.stamp.change_key);
            let author = self.change_author(item);
            self.key_author
                .insert((item.mid.to_u64(), change_key.clone()), author);
            let (kind, predecessors) = match backend {
                Backend::Ews => (
                    match change.kind {
                        StoreChangeKind::Created => ChangeKind::Created,
                        _ => ChangeKind::Modified,
                    },
                    Vec::new(),
                ),
                _ => (
                    ChangeKind::Upserted,
                    item.stamp
                        .pcl
                        .entries()
                        .iter()
                        .map(|xid| ChangeKey(key_bytes(xid)))
                        .collect(),
                ),
            };
            changes.push(SyncChange::Item(ItemChange {
                id: id_of(item.mid),
                kind,
                change_key: Some(ChangeKey(change_key)),
                predecessors,
                read: Some(item.props.read),
            }));
        }
        for mid in &batch.deletions {
            changes.push(SyncChange::Deleted { id: id_of(*mid) });
        }
        for change in &batch.read_changes {
            changes.push(SyncChange::ReadState {
                id: id_of(change.mid),
                read: change.read,
            });
        }
        changes
    }

    fn serve_verify(&mut self, folder: usize, id: BackendItemId) {
        let outcome = if self.rng.random_bool(self.faults.busy) {
            trace!(self, "FAULT: server busy on a fetch of {id}");
            FetchOutcome::Failed { retryable: true }
        } else {
            match mid_of(&id).and_then(|mid| self.store.item(mid)) {
                Some(item) if item.folder == self.fids[folder] => {
                    let change_key = key_bytes(&item.stamp.change_key);
                    let author = self.change_author(item);
                    self.key_author
                        .insert((item.mid.to_u64(), change_key.clone()), author);
                    FetchOutcome::Found {
                        change_key: Some(ChangeKey(change_key)),
                        read: Some(item.props.read),
                    }
                }
                _ => FetchOutcome::NotFound,
            }
        };
        self.pending.push(Pending::VerifyReply {
            folder,
            id,
            outcome,
        });
    }

    fn on_sync_reply(&mut self, folder: usize, reply: SyncReply) {
        if let SyncReply::Page { changes, more, .. } = &reply {
            trace!(
                self,
                "sync reply for folder {folder}: {} changes{}{}",
                changes.len(),
                if *more { ", more" } else { "" },
                changes_text(changes)
            );
        } else {
            if let SyncReply::Failed(failure) = &reply {
                trace!(
                    self,
                    "sync reply for folder {folder}: {}",
                    failure_text(failure)
                );
            }
        }
        match &mut self.client {
            Client::Exmux(core) => {
                let input = match reply {
                    SyncReply::Page {
                        changes,
                        state,
                        more,
                    } => Input::SyncPage(SyncPage {
                        folder: self.keys[folder],
                        changes,
                        new_state: SyncState(state),
                        more_available: more,
                    }),
                    SyncReply::Failed(failure) => Input::SyncFailed {
                        folder: self.keys[folder],
                        failure,
                    },
                };
                let _ = core.handle(self.now, input);
                self.drain_outputs();
            }
            Client::Naive(_) => self.naive_sync_reply(folder, reply),
        }
    }

    // ---- the embedder's writes -----------------------------------------------------

    fn own_write(&mut self) {
        let kind = WRITE_KINDS[self.rng.random_range(0..WRITE_KINDS.len())];
        let candidates: Vec<(u64, usize, BackendItemId)> = self
            .replica
            .iter()
            .map(|(key, copy)| (*key, copy.folder, copy.id.clone()))
            .collect();
        let (key, folder, mid) = if kind == WriteKind::Create {
            (None, self.rng.random_range(0..2), None)
        } else {
            if candidates.is_empty() {
                return;
            }
            let (key, folder, id) = candidates[self.rng.random_range(0..candidates.len())].clone();
            (Some(key), folder, mid_of(&id))
        };
        if kind != WriteKind::Create && mid.is_none() {
            return;
        }
        let read = self.rng.random_bool(0.5);
        let backend = match &self.client {
            Client::Exmux(core) => core.routing().backend_for(kind.operation()),
            Client::Naive(_) => Backend::Ews,
        };
        let target = 1 - folder;

        // Announce the write to the client before it goes out.
        let (token, item_key, assigned) = match &mut self.client {
            Client::Exmux(core) => {
                let stamps = backend == Backend::Mapi
                    && matches!(
                        kind,
                        WriteKind::Flag
                            | WriteKind::Categorise
                            | WriteKind::Create
                            | WriteKind::Copy
                    );
                let intent = WriteIntent {
                    operation: kind.operation(),
                    item: key.map(ItemKey),
                    folder: self.keys[folder],
                    backend,
                    session: String::new(),
                    assign_change_key: stamps,
                    read_state: (kind == WriteKind::MarkRead).then_some(read),
                    target_folder: matches!(kind, WriteKind::Move | WriteKind::Copy)
                        .then_some(self.keys[target]),
                };
                match core.begin_write(self.now, intent) {
                    Ok(issued) => (
                        issued.id.0,
                        issued.item.0,
                        issued
                            .change_key
                            .and_then(|key| Xid::from_bytes(&key.0).ok()),
                    ),
                    Err(error) => {
                        self.violate(
                            Invariant::Quiescence,
                            format!("begin_write failed: {error}"),
                        );
                        return;
                    }
                }
            }
            Client::Naive(naive) => {
                naive.next_token += 1;
                // A copy is a new item in the replica, like a created one.
                let item_key = match key {
                    Some(key) if kind != WriteKind::Copy => key,
                    _ => {
                        naive.next_key += 1;
                        naive.next_key
                    }
                };
                (naive.next_token, item_key, None)
            }
        };
        if let (Client::Naive(naive), Some(mid)) = (&mut self.client, mid) {
            naive.recent.insert(ews_id(mid), self.now);
        }
        // The MAPI backend sends creates, read-state updates and deletes through ICS
        // import, whose upload context starts from the folder's stored sync state when
        // the folder syncs over MAPI/HTTP.
        let upload_base: Option<Vec<u8>> = match &self.client {
            Client::Exmux(core)
                if backend == Backend::Mapi
                    && matches!(
                        kind,
                        WriteKind::Create | WriteKind::MarkRead | WriteKind::Delete
                    ) =>
            {
                core.state()
                    .folders
                    .get(&self.keys[folder])
                    .filter(|state| state.sync_backend == Backend::Mapi)
                    .map(|state| state.sync_state.0.clone())
            }
            _ => None,
        };
        let mut upload_state = upload_base.as_ref().and_then(|base| {
            if base.is_empty() {
                Some(StoreSyncState::empty(SyncKind::Contents, self.fids[folder]))
            } else {
                StoreSyncState::from_bytes(base).ok()
            }
        });

        let session = match backend {
            Backend::Ews => self.ews_session,
            _ => self.mapi_session,
        };
        let id_of = |fid: Fid, mid: Mid| match backend {
            Backend::Ews => ews_id(mid),
            _ => BackendItemId::Mapi {
                fid: fid.to_u64(),
                mid: mid.to_u64(),
            },
        };
        let value = if self.trace.is_some() && kind == WriteKind::MarkRead {
            format!(" read={read}")
        } else {
            String::new()
        };
        trace!(
            self,
            "exmux writes {}{value} on {} in folder {folder} over {backend}",
            kind.name(),
            mid.map_or_else(|| "a new item".to_owned(), |mid| mid.to_string())
        );

        if self.rng.random_bool(self.faults.busy) {
            trace!(self, "FAULT: server busy, the write is refused");
            self.push_reply(token, WriteOutcome::Failed, Effect::None, Vec::new());
            return;
        }
        if self.rng.random_bool(self.faults.dropped) {
            trace!(
                self,
                "FAULT: connection dropped before the write reached the server"
            );
            self.push_reply(token, WriteOutcome::Lost, Effect::None, Vec::new());
            return;
        }

        let import = ImportStamp {
            change_key: assigned.clone(),
            pcl: None,
        };
        let fids = self.fids;
        let result: Result<(WriteOutcome, Effect, Vec<BackendItemId>), StoreError> =
            match (kind, mid) {
                (WriteKind::MarkRead, Some(mid)) => {
                    self.store.set_read(session, mid, read).map(|result| {
                        if let Some(state) = &mut upload_state {
                            state.checkpoint_read(&result);
                        }
                        self.read_writer.insert(mid.to_u64(), (Author::Own, read));
                        // EWS UpdateItem returns the item's ChangeKey; ICS read-state uploads
                        // return nothing.
                        let change_key = match backend {
                            Backend::Ews => self
                                .store
                                .item(mid)
                                .map(|item| key_bytes(&item.stamp.change_key)),
                            _ => None,
                        };
                        let ops = vec![ReplicaOp::Update {
                            key: item_key,
                            change_key: change_key.clone(),
                            read: Some(read),
                        }];
                        (
                            WriteOutcome::Succeeded {
                                change_key: change_key.map(ChangeKey),
                                new_id: None,
                            },
                            Effect::Ops(ops),
                            vec![id_of(fids[folder], mid)],
                        )
                    })
                }
                (WriteKind::Flag | WriteKind::Categorise, Some(mid)) => {
                    self.own_category += 1;
                    let update = if kind == WriteKind::Flag {
                        ItemUpdate {
                            flag: Some(FlagStatus::Flagged),
                            ..ItemUpdate::default()
                        }
                    } else {
                        ItemUpdate {
                            categories: Some(vec![format!("c{}", self.own_category)]),
                            ..ItemUpdate::default()
                        }
                    };
                    self.store
                        .update_item(session, mid, update, &import)
                        .map(|result| {
                            let change_key = key_bytes(&result.change_key);
                            (
                                WriteOutcome::Succeeded {
                                    change_key: (backend == Backend::Ews)
                                        .then(|| ChangeKey(change_key.clone())),
                                    new_id: None,
                                },
                                Effect::Ops(vec![ReplicaOp::Update {
                                    key: item_key,
                                    change_key: Some(change_key),
                                    read: None,
                                }]),
                                vec![id_of(fids[folder], mid)],
                            )
                        })
                }
                (WriteKind::Delete, Some(mid)) => self.store.delete_item(session, mid).map(|_| {
                    if let Some(state) = &mut upload_state {
                        state.checkpoint_removal(mid);
                    }
                    (
                        WriteOutcome::Succeeded {
                            change_key: None,
                            new_id: None,
                        },
                        Effect::Ops(vec![ReplicaOp::Remove { key: item_key }]),
                        vec![id_of(fids[folder], mid)],
                    )
                }),
                (WriteKind::Move, Some(mid)) => {
                    self.store
                        .move_item(session, mid, fids[target])
                        .map(|result| {
                            let change_key = key_bytes(&result.change_key);
                            let new_id = id_of(fids[target], result.id);
                            (
                                WriteOutcome::Succeeded {
                                    change_key: (backend == Backend::Ews)
                                        .then(|| ChangeKey(change_key.clone())),
                                    new_id: Some(new_id.clone()),
                                },
                                // A move response carries no read state, so the
                                // embedder keeps the one in its replica, and a sync of the
                                // target folder must report another client's change.
                                Effect::Ops(vec![ReplicaOp::Upsert {
                                    key: item_key,
                                    folder: target,
                                    id: new_id.clone(),
                                    change_key: Some(change_key),
                                    read: None,
                                }]),
                                vec![id_of(fids[folder], mid), new_id],
                            )
                        })
                }
                (WriteKind::Copy, Some(mid)) => {
                    // EWS CopyItem copies on the server; the MAPI backend copies through an
                    // ICS upload of a new message stamped with exmux's change key, so the
                    // copy's id and change key are known at once.
                    let original = self.store.item(mid).map(|item| item.props.clone());
                    let copied = match (backend, original) {
                        (Backend::Ews, _) => self.store.copy_item(session, mid, fids[target]),
                        (_, Some(props)) => self.store.create_item(
                            session,
                            fids[target],
                            NewItem {
                                content: exmux_emulator::store::NewItemContent::Props(props),
                                import: import.clone(),
                                ..NewItem::default()
                            },
                        ),
                        (_, None) => Err(StoreError::ItemNotFound {
                            operation: "copy item",
                            mid,
                        }),
                    };
                    copied.map(|result| {
                        let change_key = key_bytes(&result.change_key);
                        let new_id = id_of(fids[target], result.id);
                        let read_now = self.store.item(result.id).map(|item| item.props.read);
                        (
                            WriteOutcome::Succeeded {
                                change_key: (backend == Backend::Ews)
                                    .then(|| ChangeKey(change_key.clone())),
                                new_id: Some(new_id.clone()),
                            },
                            Effect::Ops(vec![ReplicaOp::Upsert {
                                key: item_key,
                                folder: target,
                                id: new_id.clone(),
                                change_key: Some(change_key),
                                read: read_now,
                            }]),
                            vec![new_id],
                        )
                    })
                }
                _ => {
                    let new = NewItem {
                        import: import.clone(),
                        ..NewItem::default()
                    };
                    self.store
                        .create_item(session, fids[folder], new)
                        .map(|result| {
                            if let Some(state) = &mut upload_state {
                                state.checkpoint(&result, false);
                            }
                            let change_key = key_bytes(&result.change_key);
                            let new_id = id_of(fids[folder], result.id);
                            (
                                WriteOutcome::Succeeded {
                                    change_key: (backend == Backend::Ews)
                                        .then(|| ChangeKey(change_key.clone())),
                                    new_id: Some(new_id.clone()),
                                },
                                Effect::Ops(vec![ReplicaOp::Upsert {
                                    key: item_key,
                                    folder,
                                    id: new_id.clone(),
                                    change_key: Some(change_key),
                                    read: Some(false),
                                }]),
                                vec![new_id],
                            )
                        })
                }
            };

        match result {
            Ok((outcome, effect, ids)) => {
                self.notify(folder);
                if matches!(kind, WriteKind::Move | WriteKind::Copy) {
                    self.notify(target);
                }
                if self.rng.random_bool(self.faults.lost_response) {
                    trace!(
                        self,
                        "FAULT: the server applied the write; its response is lost"
                    );
                    self.push_reply(token, WriteOutcome::Lost, Effect::None, ids);
                } else {
                    let checkpoint =
                        upload_base
                            .zip(upload_state)
                            .map(|(base, state)| Checkpoint {
                                folder,
                                base,
                                state: state.to_bytes(),
                            });
                    self.pending.push(Pending::WriteReply {
                        token,
                        outcome,
                        effect,
                        ids,
                        checkpoint,
                    });
                }
            }
            Err(StoreError::SessionExpired { .. }) => {
                self.reconnect();
                self.push_reply(token, WriteOutcome::Failed, Effect::None, Vec::new());
            }
            Err(error) => {
                trace!(self, "the server refuses the write: {error}");
                self.push_reply(token, WriteOutcome::Failed, Effect::None, Vec::new());
            }
        }
    }

    fn push_reply(
        &mut self,
        token: u64,
        outcome: WriteOutcome,
        effect: Effect,
        ids: Vec<BackendItemId>,
    ) {
        self.pending.push(Pending::WriteReply {
            token,
            outcome,
            effect,
            ids,
            checkpoint: None,
        });
    }

    fn on_write_reply(
        &mut self,
        token: u64,
        outcome: WriteOutcome,
        effect: Effect,
        ids: &[BackendItemId],
        checkpoint: Option<Checkpoint>,
    ) {
        trace!(self, "write {token} reply: {}", write_text(&outcome));
        if outcome == WriteOutcome::Lost {
            self.stats.lost_responses += 1;
        }
        let mut ops = match effect {
            Effect::Ops(ops) => ops,
            Effect::None => Vec::new(),
        };
        if let Client::Exmux(core) = &mut self.client {
            let _ = core.handle(
                self.now,
                Input::WriteResult {
                    write: WriteId(token),
                    outcome,
                },
            );
            // The transport hands the upload's checkpoint to the core after the result,
            // from the same response.
            if let Some(checkpoint) = checkpoint {
                let _ = core.handle(
                    self.now,
                    Input::UploadCheckpoint {
                        folder: self.keys[checkpoint.folder],
                        base: SyncState(checkpoint.base),
                        checkpoint: SyncState(checkpoint.state),
                        writes: vec![WriteId(token)],
                    },
                );
            }
            // Responses arrive in any order. The embedder takes the item's change key
            // and read state after its write from the router, which keeps the newest
            // ones, instead of the response's.
            for op in &mut ops {
                match op {
                    ReplicaOp::Update {
                        key,
                        change_key,
                        read,
                    } => {
                        if let Some(record) = core.ids().get(ItemKey(*key)) {
                            change_key
                                .clone_from(&record.change_key.as_ref().map(|key| key.0.clone()));
                            *read = record.read;
                        }
                    }
                    // A MAPI move returns no change key, so the embedder has only the
                    // one the router expects the moved item to keep.
                    ReplicaOp::Upsert {
                        key, change_key, ..
                    } => {
                        if let Some(record) = core.ids().get(ItemKey(*key)) {
                            change_key
                                .clone_from(&record.change_key.as_ref().map(|key| key.0.clone()));
                        }
                    }
                    _ => {}
                }
            }
        }
        for op in ops {
            self.apply(op);
        }
        match &mut self.client {
            Client::Exmux(_) => self.drain_outputs(),
            Client::Naive(naive) => {
                // The naive client indexes the ids its writes produced and forgets the
                // ones they replaced.
                for id in ids {
                    match self.replica.iter().find(|(_, copy)| &copy.id == id) {
                        Some((key, _)) => naive.index.insert(id.clone(), *key),
                        None => naive.index.remove(id),
                    };
                    naive.recent.insert(id.clone(), self.now);
                }
            }
        }
    }

    fn apply(&mut self, op: ReplicaOp) {
        apply_op(&mut self.replica, &op);
        self.log.push(op);
    }

    // ---- the router core's outputs -------------------------------------------------

    fn drain_outputs(&mut self) {
        let Client::Exmux(core) = &mut self.client else {
            return;
        };
        let outputs = core.drain_outputs();
        for output in outputs {
            match output {
                Output::Request(Request::Sync { folder, from, .. }) => {
                    let folder = self.index_of(folder);
                    self.pending.push(Pending::SyncCall {
                        folder,
                        from: from.0,
                    });
                }
                Output::Request(Request::Verify { folder, id, .. }) => {
                    let folder = self.index_of(folder);
                    self.pending.push(Pending::VerifyCall { folder, id });
                }
                Output::Event(event) => self.on_event(event),
                _ => {}
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::ItemChanged {
                folder,
                item,
                id,
                origin,
                change_key,
                read,
                ..
            } => {
                trace!(
                    self,
                    "event: {item} changed ({origin}) id {id} read {}",
                    read_text(read)
                );
                let folder = self.index_of(folder);
                let author = change_key.as_ref().and_then(|key| {
                    let mid = mid_of(&id)?.to_u64();
                    self.key_author.get(&(mid, key.0.clone())).copied()
                });
                self.count_origin(origin, author, "item change", item);
                self.apply(ReplicaOp::Upsert {
                    key: item.0,
                    folder,
                    id,
                    change_key: change_key.map(|key| key.0),
                    read,
                });
            }
            Event::ReadStateChanged {
                item, origin, read, ..
            } => {
                trace!(self, "event: {item} read={read} ({origin})");
                let author = self
                    .replica
                    .get(&item.0)
                    .and_then(|copy| mid_of(&copy.id))
                    .and_then(|mid| self.read_writer.get(&mid.to_u64()))
                    .filter(|(_, value)| *value == read)
                    .map(|(author, _)| *author);
                self.count_origin(origin, author, "read state", item);
                self.apply(ReplicaOp::SetRead { key: item.0, read });
            }
            Event::ItemDeleted { item, origin, .. } => {
                trace!(self, "event: {item} deleted ({origin})");
                let author = self
                    .replica
                    .get(&item.0)
                    .and_then(|copy| mid_of(&copy.id))
                    .and_then(|mid| self.store.item_tombstone(mid))
                    .map(|tombstone| self.author_of(tombstone.session));
                self.count_origin(origin, author, "deletion", item);
                self.apply(ReplicaOp::Remove { key: item.0 });
            }
            Event::ChangeKeyLearned {
                item, change_key, ..
            } => {
                trace!(self, "event: {item} has change key {change_key} (own)");
                self.apply(ReplicaOp::Update {
                    key: item.0,
                    change_key: Some(change_key.0),
                    read: None,
                });
            }
            Event::FullResync { folder, reason } => {
                trace!(
                    self,
                    "event: full resync of {folder} ({})",
                    resync_text(&reason)
                );
                let folder = self.index_of(folder);
                self.resync_events[folder] += 1;
                self.stats.full_resyncs += 1;
            }
            _ => {}
        }
    }

    fn count_origin(&mut self, origin: Origin, author: Option<Author>, what: &str, item: ItemKey) {
        match origin {
            Origin::Remote => {
                self.stats.remote_delivered += 1;
                if author == Some(Author::Own) {
                    self.stats.echoes_delivered += 1;
                    self.violate(
                        Invariant::NoEchoAsRemote,
                        format!("own {what} of {item} delivered as remote"),
                    );
                }
            }
            Origin::Unknown => self.stats.unknown_origin += 1,
            Origin::Local => self.stats.own_delivered += 1,
            _ => {}
        }
    }

    // ---- the naive client ----------------------------------------------------------

    fn naive_sync_reply(&mut self, folder: usize, reply: SyncReply) {
        let (changes, state, more) = match reply {
            SyncReply::Page {
                changes,
                state,
                more,
            } => (changes, state, more),
            SyncReply::Failed(SyncFailure::InvalidSyncState) => {
                self.naive_full_resync(folder, "the sync state was rejected");
                return;
            }
            SyncReply::Failed(_) => {
                // The naive client simply asks again.
                if let Some(naive) = self.naive() {
                    let from = naive.folders[folder].state.clone();
                    self.pending.push(Pending::SyncCall { folder, from });
                }
                return;
            }
        };

        for change in changes {
            let id = change.id().clone();
            let now = self.now;
            let Some(naive) = self.naive() else {
                return;
            };
            let known = naive.index.get(&id).copied();
            let recent = naive
                .recent
                .get(&id)
                .is_some_and(|at| now.saturating_sub(*at) < NAIVE_WINDOW_MILLIS);
            let author = mid_of(&id).map(|mid| self.naive_author(&change, mid));
            match change {
                SyncChange::Item(item) => {
                    if recent {
                        trace!(self, "naive: ignores {id}, written recently");
                        continue;
                    }
                    let key = match (known, item.kind) {
                        (Some(key), _) => key,
                        (None, ChangeKind::Created) => {
                            let Some(naive) = self.naive() else {
                                return;
                            };
                            naive.next_key += 1;
                            let key = naive.next_key;
                            naive.index.insert(id.clone(), key);
                            key
                        }
                        (None, _) => {
                            self.naive_full_resync(folder, "a change to an item it does not hold");
                            return;
                        }
                    };
                    self.naive_delivered(author);
                    self.apply(ReplicaOp::Upsert {
                        key,
                        folder,
                        id,
                        change_key: item.change_key.map(|key| key.0),
                        read: item.read,
                    });
                }
                SyncChange::ReadState { read, .. } => {
                    if recent {
                        trace!(self, "naive: ignores {id}, written recently");
                        continue;
                    }
                    let Some(key) = known else {
                        self.naive_full_resync(folder, "a read change to an item it does not hold");
                        return;
                    };
                    self.naive_delivered(author);
                    self.apply(ReplicaOp::SetRead { key, read });
                }
                SyncChange::Deleted { .. } => {
                    if let Some(key) = known {
                        self.naive_delivered(author);
                        if let Some(naive) = self.naive() {
                            naive.index.remove(&id);
                        }
                        self.apply(ReplicaOp::Remove { key });
                    }
                }
                _ => {}
            }
        }

        let Client::Naive(naive) = &mut self.client else {
            return;
        };
        let state_of = &mut naive.folders[folder];
        state_of.state = state;
        if more {
            let from = state_of.state.clone();
            self.pending.push(Pending::SyncCall { folder, from });
        } else if state_of.dirty {
            state_of.dirty = false;
            let from = state_of.state.clone();
            self.pending.push(Pending::SyncCall { folder, from });
        } else {
            state_of.syncing = false;
        }
    }

    fn naive(&mut self) -> Option<&mut Naive> {
        match &mut self.client {
            Client::Naive(naive) => Some(naive),
            Client::Exmux(_) => None,
        }
    }

    fn naive_author(&self, change: &SyncChange, mid: Mid) -> Author {
        match change {
            SyncChange::Item(item) => item
                .change_key
                .as_ref()
                .and_then(|key| self.key_author.get(&(mid.to_u64(), key.0.clone())))
                .copied()
                .unwrap_or(Author::Other),
            SyncChange::ReadState { read, .. } => self
                .read_writer
                .get(&mid.to_u64())
                .filter(|(_, value)| value == read)
                .map_or(Author::Other, |(author, _)| *author),
            _ => self
                .store
                .item_tombstone(mid)
                .map_or(Author::Other, |tombstone| self.author_of(tombstone.session)),
        }
    }

    fn naive_delivered(&mut self, author: Option<Author>) {
        self.stats.remote_delivered += 1;
        if author == Some(Author::Own) {
            self.stats.echoes_delivered += 1;
            self.violate(
                Invariant::NoEchoAsRemote,
                "naive: own change delivered as remote".to_owned(),
            );
        }
    }

    fn naive_full_resync(&mut self, folder: usize, why: &str) {
        trace!(self, "naive: FULL RESYNC of folder {folder}: {why}");
        self.stats.full_resyncs += 1;
        self.resync_events[folder] += 1;
        let held: Vec<u64> = self
            .replica
            .iter()
            .filter(|(_, copy)| copy.folder == folder)
            .map(|(key, _)| *key)
            .collect();
        for key in held {
            self.apply(ReplicaOp::Remove { key });
        }
        let Client::Naive(naive) = &mut self.client else {
            return;
        };
        naive.index.retain(|_, key| self.replica.contains_key(key));
        let state_of = &mut naive.folders[folder];
        state_of.state.clear();
        state_of.dirty = false;
        state_of.syncing = true;
        self.pending.push(Pending::SyncCall {
            folder,
            from: Vec::new(),
        });
    }

    // ---- the invariants ------------------------------------------------------------

    fn check(&mut self) {
        // 1. The replica equals the server's folders, with the latest change keys.
        let mut expected: BTreeMap<u64, (usize, Vec<u8>, bool)> = BTreeMap::new();
        for folder in 0..2 {
            for mid in self.items_in(folder) {
                if let Some(item) = self.store.item(mid) {
                    expected.insert(
                        mid.to_u64(),
                        (folder, key_bytes(&item.stamp.change_key), item.props.read),
                    );
                }
            }
        }
        let mut held: BTreeMap<u64, HeldCopy> = BTreeMap::new();
        let mut problems = Vec::new();
        for (key, copy) in &self.replica {
            let Some(mid) = mid_of(&copy.id) else {
                problems.push(format!(
                    "replica item {key} has an id the server never made"
                ));
                continue;
            };
            if held
                .insert(
                    mid.to_u64(),
                    (copy.folder, copy.change_key.clone(), copy.read),
                )
                .is_some()
            {
                problems.push(format!("replica holds {mid} twice"));
            }
        }
        for (mid, (folder, change_key, read)) in &expected {
            let mid_text =
                Mid::from_u64(*mid).map_or_else(|| mid.to_string(), |mid| mid.to_string());
            match held.remove(mid) {
                None => problems.push(format!("replica lacks {mid_text} of folder {folder}")),
                Some((held_folder, held_key, held_read)) => {
                    if held_folder != *folder {
                        problems.push(format!("replica has {mid_text} in the wrong folder"));
                    }
                    if held_key.as_ref() != Some(change_key) {
                        problems.push(format!("replica has a stale change key for {mid_text}"));
                    }
                    if held_read != Some(*read) {
                        problems.push(format!(
                            "replica has read={} for {mid_text}, server {read}",
                            read_text(held_read)
                        ));
                    }
                }
            }
        }
        for mid in held.keys() {
            let mid_text =
                Mid::from_u64(*mid).map_or_else(|| mid.to_string(), |mid| mid.to_string());
            problems.push(format!(
                "replica holds {mid_text}, which the server does not"
            ));
        }
        self.stats.lost_changes += problems.len() as u64;
        if !problems.is_empty() {
            self.violate(Invariant::ReplicaMatchesServer, problems.join("; "));
        }

        // 3. No full resync except one per rejected sync state.
        for folder in 0..2 {
            let events = self.resync_events[folder];
            let rejections = self.rejections[folder];
            if events != rejections || rejections > self.invalidations[folder] {
                self.violate(
                    Invariant::NoSpuriousFullResync,
                    format!(
                        "folder {folder}: {events} full resyncs, {rejections} rejected states, {} invalidations",
                        self.invalidations[folder]
                    ),
                );
            }
        }

        // 4. Applying the stream twice gives the same replica.
        let mut once = BTreeMap::new();
        for op in &self.log {
            apply_op(&mut once, op);
        }
        let mut twice = once.clone();
        for op in &self.log {
            apply_op(&mut twice, op);
        }
        if once != twice || once != self.replica {
            self.violate(
                Invariant::IdempotentStream,
                "applying the event stream twice changes the replica".to_owned(),
            );
        }

        if let Client::Exmux(core) = &self.client {
            let counters = core.counters();
            self.stats.own_dropped += counters.own_dropped;
            self.stats.superseded_dropped += counters.superseded_dropped;
        }
    }
}

fn uuid_from_seed(seed: u64) -> uuid::Uuid {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6578_6d75_785f_6e73);
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// Formats a read state for traces: `true`, `false` or `unknown`.
fn read_text(read: Option<bool>) -> String {
    read.map_or_else(|| "unknown".to_owned(), |read| read.to_string())
}

fn key_text(key: Option<&ChangeKey>) -> String {
    key.map_or_else(|| "none".to_owned(), ToString::to_string)
}

/// Formats a sync page's changes for traces: `: ` and the entries separated by `; `.
fn changes_text(changes: &[SyncChange]) -> String {
    if changes.is_empty() {
        return String::new();
    }
    let entries: Vec<String> = changes
        .iter()
        .map(|change| match change {
            SyncChange::Item(change) => {
                let kind = match change.kind {
                    ChangeKind::Created => "created",
                    ChangeKind::Modified => "modified",
                    _ => "changed",
                };
                format!(
                    "{kind} {} key {} read {}",
                    change.id,
                    key_text(change.change_key.as_ref()),
                    read_text(change.read)
                )
            }
            SyncChange::ReadState { id, read } => format!("read state of {id} is {read}"),
            SyncChange::Deleted { id } => format!("deleted {id}"),
            other => format!("change to {}", other.id()),
        })
        .collect();
    format!(": {}", entries.join("; "))
}

fn write_text(outcome: &WriteOutcome) -> String {
    match outcome {
        WriteOutcome::Succeeded { change_key, new_id } => {
            let mut text = format!("succeeded, key {}", key_text(change_key.as_ref()));
            if let Some(id) = new_id {
                text.push_str(&format!(", new id {id}"));
            }
            text
        }
        WriteOutcome::Failed => "failed".to_owned(),
        WriteOutcome::Lost => "lost".to_owned(),
        _ => "ended otherwise".to_owned(),
    }
}

fn fetch_text(outcome: &FetchOutcome) -> String {
    match outcome {
        FetchOutcome::Found { change_key, read } => format!(
            "found, key {} read {}",
            key_text(change_key.as_ref()),
            read_text(*read)
        ),
        FetchOutcome::NotFound => "not found".to_owned(),
        FetchOutcome::Failed { retryable: true } => "failed, retryable".to_owned(),
        FetchOutcome::Failed { retryable: false } => "failed".to_owned(),
        _ => "ended otherwise".to_owned(),
    }
}

fn failure_text(failure: &SyncFailure) -> String {
    match failure {
        SyncFailure::InvalidSyncState => "sync state rejected".to_owned(),
        SyncFailure::Other { message, retryable } => {
            let retry = if *retryable { ", retryable" } else { "" };
            format!("failed ({message}){retry}")
        }
        _ => "failed".to_owned(),
    }
}

fn resync_text(reason: &ResyncReason) -> &'static str {
    match reason {
        ResyncReason::SyncStateRejected => "sync state rejected",
        ResyncReason::ServerDiscardedSyncState => "server discarded the sync state",
        _ => "other reason",
    }
}
