//! `exmux demo`: the scenario exmux exists for, played against the emulator.
//!
//! A message is marked read and deleted a few milliseconds later, while the notice of
//! the read change is still in flight. Meanwhile a second client (another EWS client,
//! so another server session) marks one message read, deletes another and creates a
//! new one. The embedder's replica is built from the events alone, plus its own
//! writes, and compared with the server's view at the end.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use exmux_core::Secret;
use exmux_core::auth::Credentials;
use exmux_emulator::server::EmulatorHandle;
use exmux_emulator::server::FaultKind;
use exmux_ews::client::EwsClient;
use exmux_ews::ops::Shape;
use exmux_ews::ops::items::{CreateItem, DeleteItem, ItemUpdate, UpdateItem};
use exmux_ews::ops::sync::FindItem;
use exmux_ews::types::{
    BaseShape, ConflictResolution, DeleteType, DistinguishedFolder, FolderRef, Item, ItemId,
    ItemKind, MessageDisposition, PropertyPath, Traversal,
};
use exmux_router::backend::ews::mapi_item_id;
use exmux_router::core::{Event, Origin};
use exmux_router::ids::{BackendItemId, ItemKey};
use exmux_router::transport::{Transport, TransportError, TransportOptions};
use exmux_router::{Backend, Config, Operation, Preset};
use serde::Serialize;

const MAILBOX: &str = "user1@example.test";
const PASSWORD: &str = "password1";
/// Messages in the inbox before the scenario starts.
const SEED_MESSAGES: usize = 6;

/// How long the emulator delays this transport's delete in the overlap step: long
/// enough for the notice and the sync it starts on a loaded machine.
const OVERLAP_HOLD: Duration = Duration::from_millis(1000);

/// When the second client changes the message in the overlap step, counted from the
/// moment the server starts delaying the delete. It is well inside [`OVERLAP_HOLD`].
const OVERLAP_CHANGE_AFTER: Duration = Duration::from_millis(30);

/// Why the demo could not run to its summary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The emulator did not start.
    #[error("the emulator did not start on 127.0.0.1: {0}")]
    Emulator(String),
    /// The routing needs a backend this build cannot carry yet.
    #[error("routing {routing} cannot run: {source}")]
    RoutingUnavailable {
        /// The routing.
        routing: &'static str,
        /// The transport's refusal, naming the operations and the backend.
        source: TransportError,
    },
    /// A step of the scenario failed.
    #[error("demo step {step} failed: {message}")]
    Step {
        /// The step.
        step: &'static str,
        /// What failed.
        message: String,
    },
}

fn step(step: &'static str) -> impl Fn(String) -> DemoError {
    move |message| DemoError::Step { step, message }
}

/// One event the embedder received.
#[derive(Clone, Debug, Serialize)]
pub struct DemoEvent {
    /// `initial` for the first sync, `scenario` for the events after it.
    pub phase: &'static str,
    /// The event's kind: `changed`, `read`, `deleted`, `full-resync`, `sync-failed`.
    pub kind: &'static str,
    /// The item key, when the event is about an item.
    pub item: Option<u64>,
    /// Who made the change.
    pub origin: Option<String>,
    /// The read state, when reported.
    pub read: Option<bool>,
}

/// The summary of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The routing played: `ews`, `mapi` or `hybrid`.
    pub routing: &'static str,
    /// Remote changes delivered to the embedder.
    pub remote_delivered: u64,
    /// This transport's own changes recognised and not delivered.
    pub own_dropped: u64,
    /// Changes to items this transport deleted, dropped.
    pub superseded_dropped: u64,
    /// Changes of unknown origin delivered.
    pub unknown_delivered: u64,
    /// Full resyncs; the scenario must cause none.
    pub full_resyncs: u64,
    /// True when the replica built from the events equals the server's mailbox.
    pub replica_matches_server: bool,
    /// The item marked read and deleted by this transport.
    pub deleted_item: u64,
    /// The item this transport deleted while the second client changed it.
    pub overlap_item: u64,
    /// Messages on the server at the end.
    pub server_items: usize,
    /// Messages in the replica at the end.
    pub replica_items: usize,
    /// The events, in delivery order.
    pub events: Vec<DemoEvent>,
}

impl Summary {
    /// Returns true when the run met the demo's contract: no full resync and a replica
    /// equal to the server's mailbox.
    pub fn passed(&self) -> bool {
        self.full_resyncs == 0 && self.replica_matches_server
    }
}

/// Returns the name of a preset.
pub fn routing_name(preset: Preset) -> &'static str {
    match preset {
        Preset::Ews => "ews",
        Preset::Mapi => "mapi",
        _ => "hybrid",
    }
}

fn mime(subject: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.test>\r\nTo: {MAILBOX}\r\nSubject: {subject}\r\n\
         Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@example.test>\r\n\r\nHello.\r\n"
    )
    .into_bytes()
}

fn credentials() -> Credentials {
    Credentials::Basic {
        username: MAILBOX.to_owned(),
        password: Secret::new(PASSWORD),
    }
}

fn inbox() -> FolderRef {
    FolderRef::distinguished(DistinguishedFolder::Inbox)
}

/// Starts the emulator on an ephemeral loopback port, over plain HTTP, with its EWS,
/// MAPI/HTTP and autodiscover endpoints and the system clock.
///
/// # Errors
/// [`DemoError::Emulator`] when the server cannot bind or start.
pub async fn start_emulator(record: Option<PathBuf>) -> Result<EmulatorHandle, DemoError> {
    crate::emulator::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), record)
        .await
        .map_err(|error| DemoError::Emulator(error.to_string()))
}

/// The messages of the inbox as the server reports them: EWS id to read state.
async fn server_view(client: &EwsClient) -> Result<BTreeMap<String, Option<bool>>, String> {
    let items = client
        .find_items_all(&FindItem {
            traversal: Traversal::Shallow,
            shape: Shape {
                base: BaseShape::IdOnly,
                include_mime_content: false,
                additional: vec![PropertyPath::Field("message:IsRead".to_owned())],
            },
            page: None,
            parents: vec![inbox()],
        })
        .await
        .map_err(|error| error.to_string())?;
    Ok(items
        .into_iter()
        .filter_map(|item| Some((item.item_id?.id, item.is_read)))
        .collect())
}

/// The embedder's replica: item key to read state, built from events and own writes.
#[derive(Default)]
struct Replica {
    items: BTreeMap<ItemKey, Option<bool>>,
    events: Vec<DemoEvent>,
    phase: &'static str,
}

impl Replica {
    fn apply(&mut self, event: &Event) -> Option<DemoEvent> {
        let (kind, item, origin, read) = match event {
            Event::ItemChanged {
                item, origin, read, ..
            } => {
                let entry = self.items.entry(*item).or_insert(None);
                if read.is_some() {
                    *entry = *read;
                }
                ("changed", Some(*item), Some(*origin), *read)
            }
            Event::ReadStateChanged {
                item, origin, read, ..
            } => {
                self.items.insert(*item, Some(*read));
                ("read", Some(*item), Some(*origin), Some(*read))
            }
            Event::ItemDeleted { item, origin, .. } => {
                self.items.remove(item);
                ("deleted", Some(*item), Some(*origin), None)
            }
            Event::FullResync { .. } => ("full-resync", None, None, None),
            Event::SyncFailed { .. } => ("sync-failed", None, None, None),
            _ => return None,
        };
        let event = DemoEvent {
            phase: self.phase,
            kind,
            item: item.map(|item| item.0),
            origin: origin.map(|origin: Origin| origin.to_string()),
            read,
        };
        self.events.push(event.clone());
        Some(event)
    }
}

/// Plays the scenario with `preset` and returns its summary. `on_event` sees every
/// event the embedder receives, as it is applied.
///
/// # Errors
/// [`DemoError::RoutingUnavailable`] for a routing that needs the MAPI backend while the
/// transport carries EWS only; [`DemoError::Emulator`] or [`DemoError::Step`] when a
/// step fails.
pub async fn run(
    preset: Preset,
    record: Option<PathBuf>,
    on_event: impl Fn(&DemoEvent) + Send + Sync + 'static,
) -> Result<Summary, DemoError> {
    let routing = routing_name(preset);
    let emulator = start_emulator(record).await?;
    let result = play(&emulator, routing, on_event).await;
    emulator.shutdown().await;
    result
}

async fn play(
    emulator: &EmulatorHandle,
    routing: &'static str,
    on_event: impl Fn(&DemoEvent) + Send + Sync + 'static,
) -> Result<Summary, DemoError> {
    // The second client: its own EWS client, so its own server session.
    let other = EwsClient::builder(emulator.ews_url(), MAILBOX, credentials())
        .build()
        .map_err(|error| step("second client")(error.to_string()))?;
    let mut seeded = Vec::new();
    for index in 0..SEED_MESSAGES {
        let mut item = Item::new(ItemKind::Message);
        item.mime_content = Some(STANDARD.encode(mime(&format!("seed-{index}"))));
        item.is_read = Some(false);
        let created = other
            .call(&CreateItem {
                disposition: Some(MessageDisposition::SaveOnly),
                saved_folder: Some(inbox()),
                items: vec![item],
            })
            .await
            .map_err(|error| step("seed the inbox")(error.to_string()))?
            .into_single("CreateItem")
            .map_err(|error| step("seed the inbox")(error.to_string()))?;
        seeded.extend(created.into_iter().filter_map(|item| item.item_id));
    }

    let config = Config::from_toml_str(&format!(
        "[server]\nmailbox = \"{MAILBOX}\"\news_url = \"{}\"\nmapi_url = \"{}\"\nuser_dn = \"{}\"\n\n\
         [auth]\nmethod = \"basic\"\nusername = \"{MAILBOX}\"\npassword_env = \"EXMUX_DEMO_PASSWORD\"\n\n\
         [routing]\npreset = \"{routing}\"\n",
        emulator.ews_url(),
        emulator.mapi_emsmdb_url(),
        exmux_emulator::mapi::legacy_dn(MAILBOX),
    ))
    .map_err(|error| step("configuration")(error.to_string()))?;
    let options = TransportOptions {
        credentials: Some(credentials()),
        tick: Duration::from_millis(100),
        ..TransportOptions::default()
    };
    let (transport, mut events) = match Transport::connect(&config, options).await {
        Ok(connected) => connected,
        Err(source @ TransportError::BackendNotOffered { .. }) => {
            return Err(DemoError::RoutingUnavailable { routing, source });
        }
        Err(error) => return Err(step("connect")(error.to_string())),
    };

    let replica = Arc::new(Mutex::new(Replica {
        phase: "initial",
        ..Replica::default()
    }));
    let applier = {
        let replica = Arc::clone(&replica);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let applied = replica
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .apply(&event);
                if let Some(applied) = applied {
                    on_event(&applied);
                }
            }
        })
    };

    let folder = transport
        .add_folder("inbox")
        .await
        .map_err(|error| step("add the inbox")(error.to_string()))?;
    transport
        .subscribe(&[folder])
        .await
        .map_err(|error| step("subscribe")(error.to_string()))?;
    transport
        .sync(folder)
        .map_err(|error| step("initial sync")(error.to_string()))?;
    settle(&transport, &replica, SEED_MESSAGES).await;
    lock(&replica).phase = "scenario";

    // The seeded ids are EWS ids; a sync over MAPI/HTTP knows the items by the MAPI
    // ids those EWS ids carry.
    let sync_backend = config.routing.backend_for(Operation::SyncItems);
    let backend_id = |ews_id: &str| match sync_backend {
        Backend::Mapi => mapi_item_id(ews_id),
        _ => Some(BackendItemId::Ews(ews_id.to_owned())),
    };
    let key_of = |id: &ItemId| {
        backend_id(&id.id)
            .and_then(|backend| transport.item_key(&backend))
            .ok_or_else(|| step("initial sync")(format!("item {} was not synced", id.id)))
    };
    let [target, remote_read, remote_delete, overlap, ..] = seeded.as_slice() else {
        return Err(step("seed the inbox")("too few messages".to_owned()));
    };
    let target_key = key_of(target)?;

    // The second client works concurrently with this transport's read-then-delete.
    let remote = {
        let other = other.clone();
        let remote_read = remote_read.clone();
        let remote_delete = remote_delete.clone();
        tokio::spawn(async move { remote_changes(&other, remote_read, remote_delete).await })
    };

    transport
        .set_read(target_key, true)
        .await
        .map_err(|error| step("mark read")(error.to_string()))?;
    lock(&replica).items.insert(target_key, Some(true));
    tokio::time::sleep(Duration::from_millis(5)).await;
    transport
        .delete(target_key)
        .await
        .map_err(|error| step("delete")(error.to_string()))?;
    lock(&replica).items.remove(&target_key);

    remote
        .await
        .map_err(|error| step("second client")(error.to_string()))?
        .map_err(step("second client"))?;

    // The delete and a remote change overlap: the server delays this transport's delete
    // of another message for 1 s (an emulator delay fault) while the second client
    // marks that message read 30 ms into the delay. Over EWS, the sync that the notice
    // starts reports the change before the delete lands, and the router drops it as
    // superseded. A MAPI/HTTP session sends one request at a time, so its sync runs
    // after the delete and reports only the deletion.
    tokio::time::sleep(Duration::from_millis(300)).await;
    transport.wait_idle().await;
    lock(&replica).phase = "overlap";
    let overlap_key = key_of(overlap)?;
    let delete_path = match config.routing.backend_for(Operation::Delete) {
        Backend::Mapi => "/mapi/",
        _ => "/EWS/",
    };
    let faults = emulator.faults();
    let delays_before = faults.fired(FaultKind::Delay);
    faults.delay_responses(delete_path, 1, OVERLAP_HOLD);
    let (deleted, changed) = tokio::join!(transport.delete(overlap_key), async {
        // The change goes out once the server is holding the delete, so it cannot take
        // the delay itself.
        while faults.fired(FaultKind::Delay) == delays_before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(OVERLAP_CHANGE_AFTER).await;
        mark_read(&other, overlap.clone()).await
    });
    deleted.map_err(|error| step("overlapping delete")(error.to_string()))?;
    changed.map_err(step("second client"))?;
    lock(&replica).items.remove(&overlap_key);

    // Notices are hints: after they have arrived and been synced, one more sync stands
    // for the embedder's periodic catch-up and proves nothing was left behind.
    tokio::time::sleep(Duration::from_millis(300)).await;
    transport.wait_idle().await;
    transport
        .sync(folder)
        .map_err(|error| step("catch-up sync")(error.to_string()))?;
    transport.wait_idle().await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let server: BTreeMap<BackendItemId, Option<bool>> = server_view(&other)
        .await
        .map_err(step("read the server"))?
        .into_iter()
        .filter_map(|(id, read)| Some((backend_id(&id)?, read)))
        .collect();
    let replica_view: BTreeMap<BackendItemId, Option<bool>> = {
        let replica = lock(&replica);
        replica
            .items
            .iter()
            .filter_map(|(key, read)| Some((transport.backend_id(*key, sync_backend)?, *read)))
            .collect()
    };
    let replica_count = lock(&replica).items.len();
    let counters = transport.counters();
    drop(transport);
    let _ = applier.await;
    let events = lock(&replica).events.clone();

    Ok(Summary {
        routing,
        remote_delivered: counters.remote_delivered,
        own_dropped: counters.own_dropped,
        superseded_dropped: counters.superseded_dropped,
        unknown_delivered: counters.unknown_delivered,
        full_resyncs: counters.full_resyncs,
        replica_matches_server: replica_view == server && replica_count == server.len(),
        deleted_item: target_key.0,
        overlap_item: overlap_key.0,
        server_items: server.len(),
        replica_items: replica_count,
        events,
    })
}

fn lock(replica: &Mutex<Replica>) -> std::sync::MutexGuard<'_, Replica> {
    replica
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits until the replica holds `expected` items and the transport is idle, for at
/// most two seconds.
async fn settle(transport: &Transport, replica: &Mutex<Replica>, expected: usize) {
    for _ in 0..200 {
        transport.wait_idle().await;
        if lock(replica).items.len() >= expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Marks a message read as the second client.
async fn mark_read(other: &EwsClient, item: ItemId) -> Result<(), String> {
    other
        .call(&UpdateItem {
            conflict_resolution: ConflictResolution::AlwaysOverwrite,
            disposition: MessageDisposition::SaveOnly,
            changes: vec![(ItemId::new(item.id), vec![ItemUpdate::SetIsRead(true)])],
        })
        .await
        .map_err(|error| error.to_string())?
        .into_single("UpdateItem")
        .map_err(|error| error.to_string())?;
    Ok(())
}

async fn remote_changes(other: &EwsClient, read: ItemId, delete: ItemId) -> Result<(), String> {
    mark_read(other, read).await?;
    other
        .call(&DeleteItem {
            delete_type: DeleteType::HardDelete,
            item_ids: vec![ItemId::new(delete.id)],
        })
        .await
        .map_err(|error| error.to_string())?
        .into_single("DeleteItem")
        .map_err(|error| error.to_string())?;
    let mut item = Item::new(ItemKind::Message);
    item.mime_content = Some(STANDARD.encode(mime("remote-new")));
    item.is_read = Some(false);
    other
        .call(&CreateItem {
            disposition: Some(MessageDisposition::SaveOnly),
            saved_folder: Some(inbox()),
            items: vec![item],
        })
        .await
        .map_err(|error| error.to_string())?
        .into_single("CreateItem")
        .map_err(|error| error.to_string())?;
    Ok(())
}
