//! The async [`Transport`]: the backend clients, the [`RouterCore`] and the tasks that
//! drive it with the real clock.
//!
//! The transport feeds the core every backend result and issues the requests the core
//! returns (syncs and verification fetches) on tasks of their own. Every write goes
//! through the core's journal before it is sent, and its outcome is reported back, so
//! the core can tell this transport's changes from other clients' changes. Events go to
//! the [`Events`] stream returned by [`Transport::connect`].
//!
//! Backends: the transport carries every operation over EWS and over MAPI/HTTP (ICS
//! download and import, the message and folder ROPs, RopRegisterNotification). An
//! operation routed to a backend without a session fails with
//! [`TransportError::BackendNotOffered`], naming it, and nothing is sent over the other
//! backend instead. An item or folder known only by its id on one backend is written
//! over the other through an id derived from it (see [`Transport::add_folder`]).
//!
//! [`TransportOptions::recorder`] takes a [`CaptureRecorder`] that writes every HTTP
//! exchange of both backends to a folder, for bug reports.
//!
//! # Example
//!
//! ```no_run
//! use exmux_router::Config;
//! use exmux_router::core::Event;
//! use exmux_router::transport::{Transport, TransportOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load("exmux.toml".as_ref())?;
//! let (transport, mut events) = Transport::connect(&config, TransportOptions::default()).await?;
//! let inbox = transport.add_folder("inbox").await?;
//! transport.subscribe(&[inbox]).await?;
//! transport.sync(inbox)?;
//! while let Some(event) = events.recv().await {
//!     if let Event::ItemChanged { item, origin, .. } = event {
//!         println!("{item} changed ({origin})");
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use exmux_core::auth::Credentials;
use exmux_core::{Clock, SystemClock};
use exmux_ews::client::notifications::{NotificationEvent, SubscriptionDriver};
use exmux_ews::client::record::Recorder as EwsRecorder;
use exmux_ews::client::{ClientError, EwsClient, MessageOutcomes};
use exmux_ews::operation::{EwsOperation, Response as EwsResponse};
use exmux_ews::ops::Shape;
use exmux_ews::ops::folders::{
    CreateFolder, DeleteFolder, FindFolder, GetFolder, MoveFolder, UpdateFolder,
};
use exmux_ews::ops::items::{
    AlternateId, ConvertId, CopyItem, CreateItem, DeleteItem, GetItem, ItemUpdate, MoveItem,
    UpdateItem,
};
use exmux_ews::ops::sync::SyncFolderItems;
use exmux_ews::subscription::{FolderScope, SubscriptionMode};
use exmux_ews::types::{
    BaseShape, ConflictResolution, DeleteType, DistinguishedFolder, EventType, Folder, FolderId,
    FolderRef, IdFormat, Item, ItemId, ItemKind, MessageDisposition, PropertyPath, Traversal,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

mod mapi;
mod record;
mod send;

pub use record::CaptureRecorder;

use exmux_mapihttp::ids::{ObjectId, Xid};
use exmux_mapihttp::session::record::Recorder as MapiRecorder;
use exmux_mapihttp::session::{NotificationWaiter, SessionError, SyncState as MapiSyncState};

use crate::backend::ews as ews_adapter;
use crate::backend::mapi as mapi_adapter;
use crate::config::{AuthMethod, Config, ConfigError};
use crate::core::{
    CoreError, CoreOptions, Counters, Event, FetchOutcome, Input, IssuedWrite, Output, Phase,
    Request, RouterCore, RouterState, SyncFailure, SyncState, WriteIntent, WriteOutcome,
};
use crate::ids::{BackendFolderId, BackendItemId, FolderKey, ItemKey};
use crate::journal::WriteId;
use crate::operation::{Backend, Operation};

/// The maximum number of changes per SyncFolderItems page (MaxChangesReturned, 1 to
/// 512).
const MAX_CHANGES_PER_PAGE: u32 = 512;

/// The operations the transport can carry over MAPI/HTTP.
const MAPI_CARRIED: [Operation; 11] = [
    Operation::SyncHierarchy,
    Operation::SyncItems,
    Operation::Fetch,
    Operation::Create,
    Operation::Move,
    Operation::Copy,
    Operation::Send,
    Operation::Folder,
    Operation::Update,
    Operation::Delete,
    Operation::Subscribe,
];

/// Options of [`Transport::connect`].
pub struct TransportOptions {
    /// Tunables of the core.
    pub core: CoreOptions,
    /// A persisted state to resume from; `None` starts fresh with a random namespace.
    pub state: Option<RouterState>,
    /// Credentials to use instead of the ones the configuration names (for example an
    /// embedder's OAuth2 token provider).
    pub credentials: Option<Credentials>,
    /// The clock the core's times come from.
    pub clock: Arc<dyn Clock>,
    /// How often time-based work of the core (retries, write timeouts, journal
    /// retirement) is checked.
    pub tick: Duration,
    /// The EWS notification mode: streaming or pull.
    pub subscription: SubscriptionMode,
    /// Writes every HTTP exchange of both backends to a folder when set (`--record`).
    pub recorder: Option<Arc<CaptureRecorder>>,
    /// Runs autodiscover from `[server] mailbox` when set and a routed backend's endpoint
    /// (`ews_url`, or `mapi_url` and `user_dn`) is missing from the configuration. The
    /// discovered values fill only the missing keys. The credentials of the transport
    /// are used unless these options name their own. `None` (the default) never runs
    /// it, so a missing endpoint is [`TransportError::BackendNotOffered`].
    pub autodiscover: Option<exmux_autodiscover::AutodiscoverOptions>,
}

impl Default for TransportOptions {
    fn default() -> Self {
        Self {
            core: CoreOptions::default(),
            state: None,
            credentials: None,
            clock: Arc::new(SystemClock),
            tick: Duration::from_millis(500),
            subscription: SubscriptionMode::streaming(),
            recorder: None,
            autodiscover: None,
        }
    }
}

impl fmt::Debug for TransportOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportOptions")
            .field("core", &self.core)
            .field("resume", &self.state.is_some())
            .field("tick", &self.tick)
            .field("subscription", &self.subscription)
            .field("recorder", &self.recorder)
            .field("autodiscover", &self.autodiscover.is_some())
            .finish_non_exhaustive()
    }
}

/// An error connecting the transport or carrying out an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The configuration or one of its secrets could not be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Operations are routed to a backend the server or this transport does not offer.
    #[error(
        "operations {} are routed to {backend}, which is not available: {reason}; route them to {alternative} in [routing]",
        operations.iter().map(|operation| operation.key()).collect::<Vec<_>>().join(", "),
        alternative = match backend { Backend::Ews => "mapi", Backend::Mapi => "ews" }
    )]
    BackendNotOffered {
        /// The backend.
        backend: Backend,
        /// The operations routed to it.
        operations: Vec<Operation>,
        /// The reason it is not available.
        reason: String,
    },
    /// The configuration names no mailbox.
    #[error("[server] mailbox is missing: add the mailbox's SMTP address")]
    MissingMailbox,
    /// Autodiscover, run because the configuration lacks an endpoint, found none.
    #[error(
        "autodiscover for {address} failed: {source}; set the endpoints in [server] (ews_url, mapi_url, user_dn) instead"
    )]
    Autodiscover {
        /// The address discovered from.
        address: String,
        /// Every attempt and why it failed.
        source: exmux_autodiscover::DiscoverError,
    },
    /// An EWS call failed.
    #[error("{operation} over EWS failed: {source}")]
    Ews {
        /// The operation.
        operation: Operation,
        /// The client's error.
        source: ClientError,
    },
    /// A MAPI/HTTP call failed.
    #[error("{operation} over MAPI/HTTP failed: {source}")]
    Mapi {
        /// The operation.
        operation: Operation,
        /// The session's error.
        source: SessionError,
    },
    /// The server answered a write with an error; nothing changed.
    #[error("{operation} of {item} was rejected by the server: {message}")]
    Rejected {
        /// The operation.
        operation: Operation,
        /// The item.
        item: String,
        /// The server's message.
        message: String,
    },
    /// The item has no id on the backend its operation is routed to.
    #[error("{item} has no {backend} id yet: sync its folder over {backend} first")]
    NoBackendId {
        /// The item.
        item: ItemKey,
        /// The backend.
        backend: Backend,
    },
    /// The router core refused the input.
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// The events of a [`Transport`], in the order the core produced them.
#[derive(Debug)]
pub struct Events(mpsc::UnboundedReceiver<Event>);

impl Events {
    /// Waits for the next event; `None` once the transport is dropped.
    pub async fn recv(&mut self) -> Option<Event> {
        self.0.recv().await
    }

    /// Returns the next event if one is queued.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.0.try_recv().ok()
    }
}

/// The prefix of the folder reference [`Transport::remote_folders`] returns for a
/// folder listed over MAPI/HTTP that has no distinguished name: `mapi:` and the folder
/// id in hexadecimal (`mapi:0x1c0000000001`).
pub const MAPI_FOLDER_PREFIX: &str = "mapi:";

/// A folder of the mailbox as the server lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFolder {
    /// The folder reference to pass to [`Transport::add_folder`]: its EWS id when listed
    /// over EWS; over MAPI/HTTP its distinguished name (`inbox`) or
    /// [`MAPI_FOLDER_PREFIX`] and its folder id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its item count, when reported.
    pub total_count: Option<u32>,
    /// Its MAPI folder id (FID), when listed over MAPI/HTTP.
    pub mapi_id: Option<u64>,
}

/// Parses a [`MAPI_FOLDER_PREFIX`] folder reference into its folder id.
fn parse_mapi_folder(folder: &str) -> Option<u64> {
    let hex = folder.strip_prefix(MAPI_FOLDER_PREFIX)?;
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    u64::from_str_radix(hex, 16).ok()
}

struct Shared {
    core: Mutex<RouterCore>,
    ews: Option<EwsClient>,
    mapi: Option<mapi::MapiBackend>,
    // Kept alive while the transport runs: dropping it stops the NotificationWait loop.
    waiter: Mutex<Option<NotificationWaiter>>,
    clock: Arc<dyn Clock>,
    // The mailbox address, whose domain names the Message-ID a send adds.
    mailbox: String,
    events: mpsc::UnboundedSender<Event>,
    // EWS folder ids (and distinguished names) to folder keys, for notices.
    folders: Mutex<BTreeMap<String, FolderKey>>,
    // MAPI folder ids to folder keys, for notices.
    mapi_folders: Mutex<BTreeMap<u64, FolderKey>>,
    // Requests issued and not yet answered, for `wait_idle`.
    in_flight: AtomicUsize,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// The transport: see the module documentation.
pub struct Transport {
    shared: Arc<Shared>,
    subscription: SubscriptionMode,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("ews", &self.shared.ews.is_some())
            .field("mapi", &self.shared.mapi.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        for task in lock(&self.shared.tasks).drain(..) {
            task.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while the lock was held cannot leave the core half-updated: every core
    // method either applies an input whole or returns an error.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn credentials(config: &Config, clock: Arc<dyn Clock>) -> Result<Credentials, TransportError> {
    // An oauth2 configuration needs a token cache that a sign-in filled (`exmux login`);
    // without `token_cache` the embedder passes `TransportOptions::credentials` with its
    // own token provider.
    let Some(token_cache) = config
        .auth
        .token_cache
        .clone()
        .or_else(|| (config.auth.method != AuthMethod::Oauth2).then(std::path::PathBuf::new))
    else {
        return Err(ConfigError::MissingOAuth2Key { key: "token_cache" }.into());
    };
    Ok(config.credentials(token_cache, clock)?)
}

/// Returns whether a backend that operations are routed to lacks an endpoint key.
fn endpoints_missing(config: &Config) -> bool {
    Operation::ALL
        .into_iter()
        .map(|operation| config.routing.backend_for(operation))
        .any(|backend| match backend {
            Backend::Mapi => config.server.mapi_url.is_none() || config.server.user_dn.is_none(),
            _ => config.server.ews_url.is_none(),
        })
}

/// Runs autodiscover from `[server] mailbox` and returns `config` with its missing
/// endpoint keys filled from the discovered settings. Keys the configuration sets are
/// kept.
async fn discover_endpoints(
    config: &Config,
    credentials: &Credentials,
    mut options: exmux_autodiscover::AutodiscoverOptions,
) -> Result<Config, TransportError> {
    let address = config
        .server
        .mailbox
        .clone()
        .ok_or(TransportError::MissingMailbox)?;
    if options.credentials.is_none() {
        options.credentials = Some(credentials.clone());
    }
    if options.owned_tls.is_none() {
        options.owned_tls = Some(config.http.tls_config().map_err(ConfigError::from)?);
    }
    if matches!(
        options.owned_proxy,
        exmux_core::http::ProxySetting::FromEnvironment
    ) {
        options.owned_proxy = config.http.proxy.clone();
    }

    let http = config.http.build_client().map_err(ConfigError::from)?;
    let discovery = exmux_autodiscover::Autodiscover::new(http, options)
        .discover(&address)
        .await
        .map_err(|source| TransportError::Autodiscover {
            address: address.clone(),
            source,
        })?;
    tracing::info!(
        %address,
        source = ?discovery.source,
        "autodiscover supplied the missing endpoints"
    );

    let mut config = config.clone();
    let settings = discovery.settings;
    let server = &mut config.server;
    if server.ews_url.is_none() {
        server.ews_url = settings.ews_url;
    }
    if server.mapi_url.is_none() {
        server.mapi_url = settings.mapi_emsmdb_url;
    }
    if server.user_dn.is_none() {
        server.user_dn = settings.legacy_dn;
    }
    Ok(config)
}

fn item_shape() -> Shape {
    Shape {
        base: BaseShape::IdOnly,
        include_mime_content: false,
        additional: vec![PropertyPath::Field("message:IsRead".to_owned())],
    }
}

fn ews_folder_ref(id: &str) -> FolderRef {
    match DistinguishedFolder::parse(id) {
        Some(name) => FolderRef::distinguished(name),
        None => FolderRef::Id(FolderId {
            id: id.to_owned(),
            change_key: None,
        }),
    }
}

impl Transport {
    /// Connects with `config`: checks that every routed backend is offered, builds the
    /// backend clients and starts the tick task. Folders are added with
    /// [`Transport::add_folder`].
    ///
    /// # Errors
    /// [`TransportError::BackendNotOffered`] naming the operations routed to a backend
    /// without an endpoint or not carried by this transport,
    /// [`TransportError::MissingMailbox`], [`TransportError::Config`] for an unreadable
    /// secret, [`TransportError::Ews`] when the EWS client cannot be built.
    pub async fn connect(
        config: &Config,
        mut options: TransportOptions,
    ) -> Result<(Transport, Events), TransportError> {
        let discovered;
        let mut early_credentials = None;
        let config = match options.autodiscover.take() {
            Some(autodiscover) if endpoints_missing(config) => {
                let credentials = match options.credentials.take() {
                    Some(credentials) => credentials,
                    None => credentials(config, Arc::clone(&options.clock))?,
                };
                discovered = discover_endpoints(config, &credentials, autodiscover).await?;
                early_credentials = Some(credentials);
                &discovered
            }
            _ => config,
        };
        for backend in [Backend::Ews, Backend::Mapi] {
            let operations: Vec<Operation> = Operation::ALL
                .into_iter()
                .filter(|operation| config.routing.backend_for(*operation) == backend)
                .collect();
            if operations.is_empty() {
                continue;
            }
            if config.server.endpoint(backend).is_none() {
                return Err(TransportError::BackendNotOffered {
                    backend,
                    operations,
                    reason: format!(
                        "the configuration names no {} endpoint (set [server] {}; `exmux discover ADDRESS` finds it)",
                        backend.key(),
                        match backend {
                            Backend::Mapi => "mapi_url and user_dn",
                            _ => "ews_url",
                        }
                    ),
                });
            }
            if backend == Backend::Mapi {
                let unsupported: Vec<Operation> = operations
                    .iter()
                    .copied()
                    .filter(|operation| !MAPI_CARRIED.contains(operation))
                    .collect();
                if !unsupported.is_empty() {
                    tracing::warn!(
                        operations = ?unsupported,
                        "these operations are routed to MAPI/HTTP, which this transport does not carry them over yet; calling them fails"
                    );
                }
                if config.server.user_dn.is_none() {
                    return Err(TransportError::BackendNotOffered {
                        backend,
                        operations,
                        reason: "[server] user_dn is missing; MAPI Connect needs the user's legacy DN (autodiscover returns it)".to_owned(),
                    });
                }
            }
        }

        let mailbox = config
            .server
            .mailbox
            .clone()
            .ok_or(TransportError::MissingMailbox)?;
        let credentials = match early_credentials.or(options.credentials) {
            Some(credentials) => credentials,
            None => credentials(config, Arc::clone(&options.clock))?,
        };
        let ews = match &config.server.ews_url {
            Some(url) => Some({
                let mut builder =
                    EwsClient::builder(url.clone(), mailbox.clone(), credentials.clone())
                        .clock(Arc::clone(&options.clock))
                        .http_options(config.http.clone());
                if let Some(recorder) = &options.recorder {
                    builder = builder.recorder(Arc::clone(recorder) as Arc<dyn EwsRecorder>);
                }
                builder.build().map_err(|source| TransportError::Ews {
                    operation: Operation::SyncItems,
                    source,
                })?
            }),
            None => None,
        };
        let uses_mapi = Operation::ALL
            .into_iter()
            .any(|operation| config.routing.backend_for(operation) == Backend::Mapi);
        let mapi = match (&config.server.mapi_url, &config.server.user_dn) {
            (Some(url), Some(user_dn)) if uses_mapi => Some(
                mapi::MapiBackend::connect(
                    url,
                    user_dn,
                    credentials,
                    &config.http,
                    Arc::clone(&options.clock),
                    options
                        .recorder
                        .clone()
                        .map(|recorder| recorder as Arc<dyn MapiRecorder>),
                )
                .await
                .map_err(|source| TransportError::Mapi {
                    operation: Operation::SyncItems,
                    source,
                })?,
            ),
            _ => None,
        };

        let state = options
            .state
            .unwrap_or_else(|| RouterState::new(Uuid::new_v4()));
        let core = RouterCore::restore(state, config.routing, options.core);
        let (sender, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            ews,
            mapi,
            waiter: Mutex::new(None),
            clock: options.clock,
            mailbox,
            events: sender,
            folders: Mutex::new(BTreeMap::new()),
            mapi_folders: Mutex::new(BTreeMap::new()),
            in_flight: AtomicUsize::new(0),
            tasks: Mutex::new(Vec::new()),
        });

        // Restored folders are known by their EWS ids already.
        {
            let core = lock(&shared.core);
            let mut folders = lock(&shared.folders);
            let mut mapi_folders = lock(&shared.mapi_folders);
            for (key, folder) in &core.state().folders {
                for id in &folder.ids {
                    match id {
                        BackendFolderId::Ews(text) => {
                            folders.insert(text.clone(), *key);
                        }
                        BackendFolderId::Mapi(fid) => {
                            mapi_folders.insert(*fid, *key);
                        }
                    }
                }
            }
        }
        // Outputs queued by the restore (verification fetches) go out now.
        let outputs = lock(&shared.core).drain_outputs();
        Shared::dispatch(&shared, outputs);

        let ticker = {
            let shared = Arc::downgrade(&shared);
            let period = options.tick;
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(period);
                loop {
                    interval.tick().await;
                    let Some(shared) = shared.upgrade() else {
                        return;
                    };
                    let _ = Shared::handle(&shared, Input::Tick);
                }
            })
        };
        lock(&shared.tasks).push(ticker);

        Ok((
            Transport {
                shared,
                subscription: options.subscription,
            },
            Events(receiver),
        ))
    }

    /// Returns the EWS client, for calls the transport does not wrap; `None` when the
    /// configuration names no EWS endpoint.
    pub fn ews(&self) -> Option<&EwsClient> {
        self.shared.ews.as_ref()
    }

    fn ews_client(&self, operation: Operation) -> Result<&EwsClient, TransportError> {
        self.shared
            .ews
            .as_ref()
            .ok_or_else(|| TransportError::BackendNotOffered {
                backend: Backend::Ews,
                operations: vec![operation],
                reason: "the configuration names no ews endpoint".to_owned(),
            })
    }

    /// Adds a folder by EWS folder id, distinguished name (`inbox`) or
    /// [`MAPI_FOLDER_PREFIX`] reference and returns its key. Over EWS the folder's id is
    /// resolved with GetFolder, so notices that name it by id reach it. Over MAPI/HTTP a
    /// distinguished name maps to the folder id the logon returned, and an EWS id to the
    /// folder id its entry id carries. A folder listed over MAPI/HTTP gets an EWS id
    /// built from its folder id.
    ///
    /// # Errors
    /// [`TransportError::Ews`] when GetFolder fails (an unknown folder, say);
    /// [`TransportError::BackendNotOffered`] when neither backend can name the folder.
    pub async fn add_folder(&self, folder: &str) -> Result<FolderKey, TransportError> {
        let mut ids = Vec::new();
        let mut ews_id = None;
        let listed_fid = parse_mapi_folder(folder);
        // A folder listed over MAPI/HTTP has no EWS id to look up: its EWS id is built
        // from its folder id below.
        if let (Some(ews), None) = (&self.shared.ews, listed_fid) {
            let fail = |source| TransportError::Ews {
                operation: Operation::SyncHierarchy,
                source,
            };
            let found = ews
                .call(&GetFolder {
                    shape: Shape::base(BaseShape::IdOnly),
                    folder_ids: vec![ews_folder_ref(folder)],
                })
                .await
                .map_err(fail)?
                .into_single("GetFolder")
                .map_err(|source| {
                    fail(ClientError::Ews {
                        operation: "GetFolder",
                        source,
                    })
                })?;
            let id = found
                .into_iter()
                .next()
                .and_then(|found| found.folder_id)
                .map_or_else(|| folder.to_owned(), |id| id.id);
            ids.push(BackendFolderId::Ews(id.clone()));
            ews_id = Some(id);
        }
        // The MAPI folder id: the listed one, the logon's for a distinguished name, or
        // the one the EWS FolderId's entry id carries.
        let mapi_id = self.shared.mapi.as_ref().and_then(|mapi| {
            listed_fid
                .or_else(|| mapi.folder_id(folder))
                .or_else(|| ews_id.as_deref().and_then(|id| mapi.fid_of_ews_folder(id)))
        });
        if let Some(fid) = mapi_id {
            ids.push(BackendFolderId::Mapi(fid));
        }
        if ews_id.is_none()
            && self.shared.ews.is_some()
            && let (Some(fid), Some(mapi)) = (listed_fid, &self.shared.mapi)
            && let Some(id) = mapi.ews_folder_id(fid)
        {
            ids.push(BackendFolderId::Ews(id.clone()));
            ews_id = Some(id);
        }
        if ids.is_empty() {
            return Err(TransportError::BackendNotOffered {
                backend: Backend::Mapi,
                operations: vec![Operation::SyncItems],
                reason: format!(
                    "folder {folder:?} has no MAPI folder id: use a distinguished name such as inbox"
                ),
            });
        }

        let key = lock(&self.shared.core).register_folder(ids);
        {
            let mut folders = lock(&self.shared.folders);
            if let Some(id) = ews_id {
                folders.insert(id, key);
            }
            folders.insert(folder.to_owned(), key);
        }
        if let Some(fid) = mapi_id {
            lock(&self.shared.mapi_folders).insert(fid, key);
        }
        Ok(key)
    }

    /// Lists every mail folder under the IPM subtree (`msgfolderroot`), over the
    /// backend `sync_hierarchy` is routed to: FindFolder over EWS, an ICS hierarchy
    /// download over MAPI/HTTP.
    ///
    /// # Errors
    /// [`TransportError::Ews`] when FindFolder fails; [`TransportError::Mapi`] when the
    /// hierarchy download fails; [`TransportError::BackendNotOffered`] when the routed
    /// backend has no session.
    pub async fn remote_folders(&self) -> Result<Vec<RemoteFolder>, TransportError> {
        if self.routed_to_mapi(Operation::SyncHierarchy) {
            let mapi = self.mapi_backend(Operation::SyncHierarchy)?;
            let folders = mapi
                .folders()
                .await
                .map_err(|source| TransportError::Mapi {
                    operation: Operation::SyncHierarchy,
                    source,
                })?;
            return Ok(folders
                .into_iter()
                .map(|(fid, name)| RemoteFolder {
                    id: mapi
                        .distinguished_name(fid)
                        .map_or_else(|| format!("{MAPI_FOLDER_PREFIX}{fid:#x}"), str::to_owned),
                    name,
                    total_count: None,
                    mapi_id: Some(fid),
                })
                .collect());
        }
        let folders = self
            .ews_client(Operation::SyncHierarchy)?
            .find_folders_all(&FindFolder {
                traversal: Traversal::Deep,
                shape: Shape::base(BaseShape::Default),
                page: None,
                parents: vec![FolderRef::distinguished(DistinguishedFolder::MsgFolderRoot)],
            })
            .await
            .map_err(|source| TransportError::Ews {
                operation: Operation::SyncHierarchy,
                source,
            })?;
        Ok(folders
            .into_iter()
            .filter_map(|folder| {
                Some(RemoteFolder {
                    id: folder.folder_id?.id,
                    name: folder.display_name.unwrap_or_default(),
                    total_count: folder.total_count,
                    mapi_id: None,
                })
            })
            .collect())
    }

    /// Starts an incremental sync of `folder` from its stored state, as a notice
    /// would. A sync already running is followed by one more.
    ///
    /// # Errors
    /// [`TransportError::Core`] for an unknown folder.
    pub fn sync(&self, folder: FolderKey) -> Result<(), TransportError> {
        Shared::handle(&self.shared, Input::Notice { folder })?;
        Ok(())
    }

    /// Subscribes to change notices of `folders`; each notice schedules a coalesced
    /// sync of its folder. The subscription runs on its own task until the transport
    /// is dropped; a lost subscription is renewed and its folders synced again.
    ///
    /// # Errors
    /// None today; the signature leaves room for a subscribe that is confirmed first.
    pub async fn subscribe(&self, folders: &[FolderKey]) -> Result<(), TransportError> {
        let over_mapi = lock(&self.shared.core)
            .routing()
            .backend_for(Operation::Subscribe)
            == Backend::Mapi;
        if over_mapi {
            return self.subscribe_mapi(folders).await;
        }
        let ids: Vec<String> = {
            let core = lock(&self.shared.core);
            folders
                .iter()
                .filter_map(|key| core.state().folders.get(key))
                .flat_map(|folder| folder.ids.iter())
                .filter_map(|id| match id {
                    BackendFolderId::Ews(text) => Some(text.clone()),
                    BackendFolderId::Mapi(_) => None,
                })
                .collect()
        };
        let mut driver = SubscriptionDriver::new(
            self.ews_client(Operation::Subscribe)?.clone(),
            FolderScope::Folders(ids),
            self.subscription,
            vec![
                EventType::Created,
                EventType::Modified,
                EventType::Deleted,
                EventType::Moved,
                EventType::Copied,
                EventType::NewMail,
            ],
        );
        let shared = Arc::downgrade(&self.shared);
        let all: Vec<FolderKey> = folders.to_vec();
        let task = tokio::spawn(async move {
            loop {
                let next = driver.next().await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let notices: Vec<FolderKey> = match next {
                    Ok(NotificationEvent::Events(events)) => {
                        let map = lock(&shared.folders);
                        let mut keys = Vec::new();
                        for event in &events {
                            for id in ews_adapter::notice_folders(event) {
                                if let Some(key) = map.get(&id)
                                    && !keys.contains(key)
                                {
                                    keys.push(*key);
                                }
                            }
                        }
                        keys
                    }
                    Ok(_) => all.clone(),
                    Err(error) => {
                        tracing::warn!(%error, "the EWS subscription stopped; sync folders explicitly");
                        return;
                    }
                };
                for folder in notices {
                    let _ = Shared::handle(&shared, Input::Notice { folder });
                }
            }
        });
        lock(&self.shared.tasks).push(task);
        Ok(())
    }

    // Registers for the whole mailbox's notices (RopRegisterNotification) and turns
    // every notice on a registered folder into a sync of that folder.
    async fn subscribe_mapi(&self, folders: &[FolderKey]) -> Result<(), TransportError> {
        let Some(mapi) = &self.shared.mapi else {
            return Err(TransportError::BackendNotOffered {
                backend: Backend::Mapi,
                operations: vec![Operation::Subscribe],
                reason: "no MAPI/HTTP session is connected".to_owned(),
            });
        };
        let mut notices = mapi.session.notices();
        mapi.session
            .register_notifications(mapi::NOTIFICATION_TYPES)
            .await
            .map_err(|source| TransportError::Mapi {
                operation: Operation::Subscribe,
                source,
            })?;
        *lock(&self.shared.waiter) = Some(mapi.session.start_notification_wait());

        let shared = Arc::downgrade(&self.shared);
        let all: Vec<FolderKey> = folders.to_vec();
        let task = tokio::spawn(async move {
            loop {
                let received = notices.recv().await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let keys: Vec<FolderKey> = match received {
                    Ok(notice) => {
                        let map = lock(&shared.mapi_folders);
                        mapi_adapter::notice_folders(&notice)
                            .into_iter()
                            .filter_map(|fid| map.get(&fid).copied())
                            .collect()
                    }
                    // Notices were dropped: every folder may have changed.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => all.clone(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                for folder in keys {
                    let _ = Shared::handle(&shared, Input::Notice { folder });
                }
            }
        });
        lock(&self.shared.tasks).push(task);
        Ok(())
    }

    /// Waits until no sync, verification or write is in flight and no change is held.
    /// Notices that arrive later start new work; this only says that nothing is
    /// running now.
    pub async fn wait_idle(&self) {
        loop {
            if self.is_idle() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn is_idle(&self) -> bool {
        if self.shared.in_flight.load(Ordering::SeqCst) > 0 {
            return false;
        }
        let core = lock(&self.shared.core);
        core.state().held.is_empty()
            && core
                .state()
                .folders
                .values()
                .all(|folder| folder.phase == Phase::Idle)
    }

    /// Returns the counters of the core.
    pub fn counters(&self) -> Counters {
        lock(&self.shared.core).counters()
    }

    /// Returns a copy of the router state, to persist it.
    pub fn state(&self) -> RouterState {
        lock(&self.shared.core).state().clone()
    }

    /// Returns the id of `item` on `backend`, when known.
    pub fn backend_id(&self, item: ItemKey, backend: Backend) -> Option<BackendItemId> {
        lock(&self.shared.core).ids().backend_id(item, backend)
    }

    /// Returns the key of the item a backend knows by `id`.
    pub fn item_key(&self, id: &BackendItemId) -> Option<ItemKey> {
        lock(&self.shared.core).ids().key_of(id)
    }

    /// Sets an item's read state (the `update` operation).
    ///
    /// # Errors
    /// [`TransportError::Rejected`] when the server refuses, [`TransportError::Ews`]
    /// when the call fails (the write is journaled as lost when its outcome is unknown),
    /// [`TransportError::Core`] for an unknown item.
    pub async fn set_read(&self, item: ItemKey, read: bool) -> Result<(), TransportError> {
        if self.routed_to_mapi(Operation::Update) {
            return self.write_mapi(Operation::Update, item, Some(read)).await;
        }
        let ews = self.ews_client(Operation::Update)?;
        let (issued, id) = self.begin(Operation::Update, Some(item), None, Some(read))?;
        let result = ews
            .call(&UpdateItem {
                conflict_resolution: ConflictResolution::AlwaysOverwrite,
                disposition: MessageDisposition::SaveOnly,
                changes: vec![(ItemId::new(id), vec![ItemUpdate::SetIsRead(read)])],
            })
            .await
            .map(|response| {
                response.into_single("UpdateItem").map(|updated| {
                    updated
                        .item_id
                        .and_then(|id| id.change_key)
                        .map(|key| ews_adapter::change_key(&key))
                })
            });
        self.finish(Operation::Update, item, &issued, result, |change_key| {
            (change_key, None)
        })
    }

    /// Deletes an item (the `delete` operation), into Deleted Items.
    ///
    /// # Errors
    /// As [`Transport::set_read`].
    pub async fn delete(&self, item: ItemKey) -> Result<(), TransportError> {
        if self.routed_to_mapi(Operation::Delete) {
            return self.write_mapi(Operation::Delete, item, None).await;
        }
        let ews = self.ews_client(Operation::Delete)?;
        let (issued, id) = self.begin(Operation::Delete, Some(item), None, None)?;
        let result = ews
            .call(&DeleteItem {
                delete_type: DeleteType::MoveToDeletedItems,
                item_ids: vec![ItemId::new(id)],
            })
            .await
            .map(|response| response.into_single("DeleteItem"));
        self.finish(Operation::Delete, item, &issued, result, |()| (None, None))
    }

    /// Moves an item to `target` (the `move` operation). Over EWS the item keeps its
    /// key. Over MAPI/HTTP, RopMoveCopyMessages returns no new id, so the next download
    /// of `target` reports the moved message as a new item.
    ///
    /// # Errors
    /// As [`Transport::set_read`].
    pub async fn move_item(&self, item: ItemKey, target: FolderKey) -> Result<(), TransportError> {
        if self.routed_to_mapi(Operation::Move) {
            self.move_copy_mapi(Operation::Move, item, target).await?;
            return Ok(());
        }
        let target_id = self.folder_ews_id(target)?;
        let ews = self.ews_client(Operation::Move)?;
        let (issued, id) = self.begin(Operation::Move, Some(item), Some(target), None)?;
        let result = ews
            .call(&MoveItem {
                to: ews_folder_ref(&target_id),
                item_ids: vec![ItemId::new(id)],
                return_new_item_ids: Some(true),
            })
            .await
            .map(|response| response.into_single("MoveItem"));
        self.finish(Operation::Move, item, &issued, result, |new_id| {
            let change_key = new_id
                .as_ref()
                .and_then(|id| id.change_key.as_deref())
                .map(ews_adapter::change_key);
            (change_key, new_id.map(|id| BackendItemId::Ews(id.id)))
        })
    }

    /// Creates a message from MIME bytes in `folder` (the `create` operation) and
    /// returns its key.
    ///
    /// # Errors
    /// As [`Transport::set_read`].
    pub async fn create(&self, folder: FolderKey, mime: &[u8]) -> Result<ItemKey, TransportError> {
        if self.routed_to_mapi(Operation::Create) {
            return self.create_mapi(folder, mime).await;
        }
        let folder_id = self.folder_ews_id(folder)?;
        let ews = self.ews_client(Operation::Create)?;
        let issued = Shared::begin_write(
            &self.shared,
            WriteIntent {
                operation: Operation::Create,
                item: None,
                folder,
                backend: Backend::Ews,
                session: String::new(),
                assign_change_key: false,
                read_state: None,
                target_folder: None,
            },
        )?;
        let mut message = Item::new(ItemKind::Message);
        message.mime_content = Some(STANDARD.encode(mime));
        let result = ews
            .call(&CreateItem {
                disposition: Some(MessageDisposition::SaveOnly),
                saved_folder: Some(ews_folder_ref(&folder_id)),
                items: vec![message],
            })
            .await
            .map(|response| response.into_single("CreateItem"));
        let item = issued.item;
        self.finish(Operation::Create, item, &issued, result, |items| {
            let id = items.into_iter().next().and_then(|item| item.item_id);
            let change_key = id
                .as_ref()
                .and_then(|id| id.change_key.as_deref())
                .map(ews_adapter::change_key);
            (change_key, id.map(|id| BackendItemId::Ews(id.id)))
        })?;
        Ok(item)
    }

    /// Fetches an item's MIME content (the `fetch` operation): GetItem with MimeContent
    /// over EWS; over MAPI/HTTP the message's properties, bodies and attachments,
    /// written as MIME that is equivalent to the server's but not byte-identical.
    ///
    /// # Errors
    /// [`TransportError::NoBackendId`], [`TransportError::Ews`],
    /// [`TransportError::Mapi`], or [`TransportError::Rejected`] when the server has no
    /// such item.
    pub async fn fetch_mime(&self, item: ItemKey) -> Result<Vec<u8>, TransportError> {
        if self.routed_to_mapi(Operation::Fetch) {
            return self.fetch_mime_mapi(item).await;
        }
        let id = self.ews_item_id(Operation::Fetch, item)?;
        let fail = |source| TransportError::Ews {
            operation: Operation::Fetch,
            source,
        };
        let items = self
            .ews_client(Operation::Fetch)?
            .call(&GetItem {
                shape: Shape {
                    base: BaseShape::IdOnly,
                    include_mime_content: true,
                    additional: Vec::new(),
                },
                item_ids: vec![ItemId::new(id)],
            })
            .await
            .map_err(fail)?
            .into_single("GetItem")
            .map_err(|source| {
                fail(ClientError::Ews {
                    operation: "GetItem",
                    source,
                })
            })?;
        let mime = items
            .into_iter()
            .next()
            .and_then(|item| item.mime_content)
            .unwrap_or_default();
        STANDARD
            .decode(mime.as_bytes())
            .map_err(|error| TransportError::Rejected {
                operation: Operation::Fetch,
                item: item.to_string(),
                message: format!("the MimeContent is not base64: {error}"),
            })
    }

    fn folder_ews_id(&self, folder: FolderKey) -> Result<String, TransportError> {
        let core = lock(&self.shared.core);
        core.state()
            .folders
            .get(&folder)
            .and_then(|state| {
                state.ids.iter().find_map(|id| match id {
                    BackendFolderId::Ews(text) => Some(text.clone()),
                    BackendFolderId::Mapi(_) => None,
                })
            })
            .ok_or(TransportError::Core(CoreError::UnknownFolder { folder }))
    }

    /// Copies an item to `target` (the `copy` operation) and returns the key allocated
    /// for the copy. Over EWS, CopyItem returns the copy's id and the key is bound to
    /// it. Over MAPI/HTTP, RopMoveCopyMessages returns no id, so the key stays unbound
    /// and the copy arrives at the next download of `target` as a new item.
    ///
    /// # Errors
    /// As [`Transport::set_read`].
    pub async fn copy_item(
        &self,
        item: ItemKey,
        target: FolderKey,
    ) -> Result<ItemKey, TransportError> {
        if self.routed_to_mapi(Operation::Copy) {
            return self.move_copy_mapi(Operation::Copy, item, target).await;
        }
        let target_id = self.folder_ews_id(target)?;
        let ews = self.ews_client(Operation::Copy)?;
        let (issued, id) = self.begin(Operation::Copy, Some(item), Some(target), None)?;
        let result = ews
            .call(&CopyItem {
                to: ews_folder_ref(&target_id),
                item_ids: vec![ItemId::new(id)],
                return_new_item_ids: Some(true),
            })
            .await
            .map(|response| response.into_single("CopyItem"));
        self.finish(Operation::Copy, issued.item, &issued, result, |new_id| {
            let change_key = new_id
                .as_ref()
                .and_then(|id| id.change_key.as_deref())
                .map(ews_adapter::change_key);
            (change_key, new_id.map(|id| BackendItemId::Ews(id.id)))
        })?;
        Ok(issued.item)
    }

    /// Creates a folder named `name` under `parent` (the `folder` operation) and
    /// returns its key: CreateFolder over EWS, RopCreateFolder over MAPI/HTTP.
    ///
    /// # Errors
    /// [`TransportError::Ews`], [`TransportError::Mapi`],
    /// [`TransportError::Rejected`] (a folder of that name exists, say), or
    /// [`TransportError::BackendNotOffered`] when `parent` has no id on the backend.
    pub async fn create_folder(
        &self,
        parent: FolderKey,
        name: &str,
    ) -> Result<FolderKey, TransportError> {
        let operation = Operation::Folder;
        let id = if self.routed_to_mapi(operation) {
            let mapi = self.mapi_backend(operation)?;
            let (parent_fid, _) = self.folder_mapi(operation, parent)?;
            let (fid, _) = mapi
                .session
                .create_folder(ObjectId(parent_fid), name)
                .await
                .map_err(|source| TransportError::Mapi { operation, source })?;
            BackendFolderId::Mapi(fid.0)
        } else {
            let parent_id = self.folder_ews_id(parent)?;
            let created = self
                .call_ews(
                    operation,
                    &CreateFolder {
                        parent: ews_folder_ref(&parent_id),
                        folders: vec![Folder::named(name)],
                    },
                )
                .await?;
            let id = created
                .into_iter()
                .next()
                .and_then(|folder| folder.folder_id)
                .ok_or_else(|| TransportError::Rejected {
                    operation,
                    item: name.to_owned(),
                    message: "CreateFolder returned no FolderId".to_owned(),
                })?;
            BackendFolderId::Ews(id.id)
        };

        // The new folder gets its id on the other backend too, when it can be derived,
        // so notices and operations over either backend reach it.
        let mut ids = vec![id.clone()];
        if let Some(mapi) = &self.shared.mapi {
            match &id {
                BackendFolderId::Ews(text) => {
                    ids.extend(mapi.fid_of_ews_folder(text).map(BackendFolderId::Mapi));
                }
                BackendFolderId::Mapi(fid) if self.shared.ews.is_some() => {
                    ids.extend(mapi.ews_folder_id(*fid).map(BackendFolderId::Ews));
                }
                BackendFolderId::Mapi(_) => {}
            }
        }
        let key = lock(&self.shared.core).register_folder(ids.clone());
        for id in ids {
            match id {
                BackendFolderId::Ews(text) => {
                    lock(&self.shared.folders).insert(text, key);
                }
                BackendFolderId::Mapi(fid) => {
                    lock(&self.shared.mapi_folders).insert(fid, key);
                }
            }
        }
        Ok(key)
    }

    /// Renames `folder` (the `folder` operation): UpdateFolder over EWS,
    /// RopSetProperties on PidTagDisplayName over MAPI/HTTP.
    ///
    /// # Errors
    /// As [`Transport::create_folder`].
    pub async fn rename_folder(&self, folder: FolderKey, name: &str) -> Result<(), TransportError> {
        let operation = Operation::Folder;
        if self.routed_to_mapi(operation) {
            let mapi = self.mapi_backend(operation)?;
            let (fid, _) = self.folder_mapi(operation, folder)?;
            mapi.session
                .rename_folder(ObjectId(fid), name)
                .await
                .map_err(|source| TransportError::Mapi { operation, source })?;
            return Ok(());
        }
        let id = self.folder_ews_id(folder)?;
        self.call_ews(
            operation,
            &UpdateFolder {
                renames: vec![(ews_folder_ref(&id), name.to_owned())],
            },
        )
        .await?;
        Ok(())
    }

    /// Moves `folder` under `to` (the `folder` operation): MoveFolder over EWS,
    /// RopMoveFolder over MAPI/HTTP. The folder keeps its key and sync state. A MAPI
    /// folder id does not change on a move; an EWS FolderId that MoveFolder returns
    /// changed replaces the stored one.
    ///
    /// # Errors
    /// As [`Transport::create_folder`]; over MAPI/HTTP also
    /// [`TransportError::BackendNotOffered`] when the folder is not in the IPM subtree.
    pub async fn move_folder(
        &self,
        folder: FolderKey,
        to: FolderKey,
    ) -> Result<(), TransportError> {
        let operation = Operation::Folder;
        if self.routed_to_mapi(operation) {
            let mapi = self.mapi_backend(operation)?;
            let (fid, _) = self.folder_mapi(operation, folder)?;
            let (to_fid, _) = self.folder_mapi(operation, to)?;
            let (parent, name) = self.mapi_parent(mapi, folder, fid).await?;
            mapi.session
                .move_folder(ObjectId(parent), ObjectId(to_fid), ObjectId(fid), &name)
                .await
                .map_err(|source| TransportError::Mapi { operation, source })?;
            return Ok(());
        }
        let id = self.folder_ews_id(folder)?;
        let to_id = self.folder_ews_id(to)?;
        let moved = self
            .call_ews(
                operation,
                &MoveFolder {
                    to: ews_folder_ref(&to_id),
                    folder_ids: vec![ews_folder_ref(&id)],
                },
            )
            .await?;
        let new_id = moved
            .into_iter()
            .next()
            .and_then(|moved| moved.folder_id)
            .map(|moved| moved.id)
            .filter(|new_id| *new_id != id);
        if let Some(new_id) = new_id {
            lock(&self.shared.core).set_folder_id(folder, BackendFolderId::Ews(new_id.clone()))?;
            let mut folders = lock(&self.shared.folders);
            folders.remove(&id);
            folders.insert(new_id, folder);
        }
        Ok(())
    }

    /// Deletes `folder` and its contents permanently (the `folder` operation):
    /// DeleteFolder with HardDelete over EWS, RopDeleteFolder over MAPI/HTTP. Then the
    /// router drops the folder's state, items and journal entries
    /// ([`RouterCore::forget_folder`]), so no later sync requests it from the server.
    /// The folder key is invalid from then on. No event is sent for the items.
    ///
    /// # Errors
    /// As [`Transport::move_folder`].
    pub async fn delete_folder(&self, folder: FolderKey) -> Result<(), TransportError> {
        let operation = Operation::Folder;
        if self.routed_to_mapi(operation) {
            let mapi = self.mapi_backend(operation)?;
            let (fid, _) = self.folder_mapi(operation, folder)?;
            let (parent, _) = self.mapi_parent(mapi, folder, fid).await?;
            mapi.session
                .delete_folder(ObjectId(parent), ObjectId(fid))
                .await
                .map_err(|source| TransportError::Mapi { operation, source })?;
        } else {
            let id = self.folder_ews_id(folder)?;
            self.call_ews(
                operation,
                &DeleteFolder {
                    delete_type: DeleteType::HardDelete,
                    folder_ids: vec![ews_folder_ref(&id)],
                },
            )
            .await?;
        }
        lock(&self.shared.core).forget_folder(folder)?;
        lock(&self.shared.folders).retain(|_, key| *key != folder);
        lock(&self.shared.mapi_folders).retain(|_, key| *key != folder);
        Ok(())
    }

    // Returns the parent folder id and display name of MAPI folder `fid`.
    async fn mapi_parent(
        &self,
        mapi: &mapi::MapiBackend,
        folder: FolderKey,
        fid: u64,
    ) -> Result<(u64, String), TransportError> {
        let operation = Operation::Folder;
        let row = mapi
            .folder_row(fid)
            .await
            .map_err(|source| TransportError::Mapi { operation, source })?;
        let Some((Some(parent), name)) = row.map(|row| (row.parent_id, row.display_name)) else {
            return Err(TransportError::BackendNotOffered {
                backend: Backend::Mapi,
                operations: vec![operation],
                reason: format!(
                    "folder {folder} (folder id {fid:#x}) is not under the IPM subtree, or its parent is unknown"
                ),
            });
        };
        Ok((parent.0, name))
    }

    // Calls a single-response EWS operation and turns its error into the transport's.
    async fn call_ews<O, T>(&self, operation: Operation, request: &O) -> Result<T, TransportError>
    where
        O: EwsOperation<Response = EwsResponse<T>>,
        EwsResponse<T>: MessageOutcomes,
    {
        self.ews_client(operation)?
            .call(request)
            .await
            .map_err(|source| TransportError::Ews { operation, source })?
            .into_single(O::NAME)
            .map_err(|error| TransportError::Rejected {
                operation,
                item: O::NAME.to_owned(),
                message: error.to_string(),
            })
    }

    // Creates a message over MAPI/HTTP by ICS import (MS-OXCFXICS
    // RopSynchronizationImportMessageChange), stamped with a change key from exmux's
    // namespace so that any later download shows it as this transport's own.
    // The checkpoint state the import returns goes to the core as an upload checkpoint,
    // so the next download from it leaves the creation out. When the core cannot take
    // it (a sync round in flight, or the state moved on), the download reports the
    // creation, and the journal marks it local by its change key.
    async fn create_mapi(&self, folder: FolderKey, mime: &[u8]) -> Result<ItemKey, TransportError> {
        let operation = Operation::Create;
        let mapi = self.mapi_backend(operation)?;
        let (fid, state) = self.folder_mapi(operation, folder)?;
        let base = self.mapi_sync_base(folder);
        // Parsed here too, so a message that cannot be parsed fails before it is journaled.
        exmux_mapihttp::session::mime::parse(mime)
            .map_err(|source| TransportError::Mapi { operation, source })?;

        let issued = Shared::begin_write(
            &self.shared,
            WriteIntent {
                operation,
                item: None,
                folder,
                backend: Backend::Mapi,
                session: mapi.session_label(),
                assign_change_key: true,
                read_state: None,
                target_folder: None,
            },
        )?;
        let xid = issued
            .change_key
            .as_ref()
            .and_then(|key| Xid::decode(&key.0, 0).ok());
        let result = match xid {
            Some(xid) => {
                mapi.session
                    .import_new_message_from_mime(
                        ObjectId(fid),
                        &state,
                        xid,
                        mime,
                        self.now_filetime(),
                    )
                    .await
            }
            None => Err(SessionError::Usage {
                operation: "import new message",
                reason: "the router assigned no XID change key to the creation".to_owned(),
            }),
        };
        let outcome = match &result {
            Ok(imported) => WriteOutcome::Succeeded {
                change_key: issued.change_key.clone(),
                new_id: imported
                    .message_id
                    .map(|mid| BackendItemId::Mapi { fid, mid: mid.0 }),
            },
            Err(error) => mapi::failure_outcome(error),
        };
        Shared::report_write(&self.shared, issued.id, outcome)?;
        let imported = result.map_err(|source| TransportError::Mapi { operation, source })?;
        Shared::report_checkpoint(&self.shared, folder, base, &imported.state, issued.id)?;
        Ok(issued.item)
    }

    // Returns the stored sync state of `folder` when the folder syncs over MAPI/HTTP,
    // the base an ICS upload checkpoint must match. A folder synced over EWS has an EWS
    // state, which a MAPI checkpoint must not replace.
    fn mapi_sync_base(&self, folder: FolderKey) -> Option<SyncState> {
        let core = lock(&self.shared.core);
        core.state()
            .folders
            .get(&folder)
            .filter(|state| state.sync_backend == Backend::Mapi)
            .map(|state| state.sync_state.clone())
    }

    // Moves or copies a message over MAPI/HTTP (RopMoveCopyMessages) and returns the
    // key of the moved item or the copy. The ROP returns neither the new message id nor
    // a change key, so the transport reads the target's contents table before and after
    // it and reports the one message that appeared, with its change key, as the new id.
    // The next download of `target` then matches that message to the journal entry.
    async fn move_copy_mapi(
        &self,
        operation: Operation,
        item: ItemKey,
        target: FolderKey,
    ) -> Result<ItemKey, TransportError> {
        let mapi = self.mapi_backend(operation)?;
        let (target_fid, _) = self.folder_mapi(operation, target)?;
        let (fid, mid) = self.mapi_item_id(operation, item).await?;
        let folder = lock(&self.shared.core)
            .ids()
            .get(item)
            .map(|record| record.folder)
            .ok_or(CoreError::UnknownItem { operation, item })?;

        let issued = Shared::begin_write(
            &self.shared,
            WriteIntent {
                operation,
                item: Some(item),
                folder,
                backend: Backend::Mapi,
                session: mapi.session_label(),
                assign_change_key: false,
                read_state: None,
                target_folder: Some(target),
            },
        )?;
        // A failed read leaves the new id unknown, and the core then learns the message
        // from the next download as it would without this lookup.
        let before = mapi.message_change_keys(target_fid).await.ok();
        let result = mapi
            .session
            .move_copy_messages(
                ObjectId(fid),
                ObjectId(target_fid),
                &[ObjectId(mid)],
                operation == Operation::Copy,
            )
            .await;
        let mut outcome = mapi::write_outcome(&result);
        if let WriteOutcome::Succeeded { change_key, new_id } = &mut outcome
            && let Some(before) = before
            && let Ok(after) = mapi.message_change_keys(target_fid).await
        {
            let known_key = lock(&self.shared.core)
                .ids()
                .get(item)
                .and_then(|record| record.change_key.clone());
            let expected = (operation == Operation::Move)
                .then_some(known_key)
                .flatten();
            if let Some((new_mid, key)) = mapi::appeared_message(&before, after, expected.as_ref())
            {
                *new_id = Some(BackendItemId::Mapi {
                    fid: target_fid,
                    mid: new_mid,
                });
                *change_key = key.map(crate::journal::ChangeKey);
            }
        }
        Shared::report_write(&self.shared, issued.id, outcome)?;
        result.map_err(|source| TransportError::Mapi { operation, source })?;
        Ok(issued.item)
    }

    // Returns the MAPI folder id of `folder` and its stored sync state, as a MAPI
    // state (empty when the stored one was saved by EWS).
    fn folder_mapi(
        &self,
        operation: Operation,
        folder: FolderKey,
    ) -> Result<(u64, MapiSyncState), TransportError> {
        let core = lock(&self.shared.core);
        let state = core
            .state()
            .folders
            .get(&folder)
            .ok_or(TransportError::Core(CoreError::UnknownFolder { folder }))?;
        let fid = state
            .ids
            .iter()
            .find_map(|id| match id {
                BackendFolderId::Mapi(fid) => Some(*fid),
                BackendFolderId::Ews(_) => None,
            })
            .ok_or_else(|| TransportError::BackendNotOffered {
                backend: Backend::Mapi,
                operations: vec![operation],
                reason: format!(
                    "folder {folder} has no MAPI folder id: add it by a distinguished name or from remote_folders over MAPI/HTTP"
                ),
            })?;
        let sync_state = if state.sync_backend == Backend::Mapi {
            MapiSyncState::from_bytes(&state.sync_state.0).unwrap_or_default()
        } else {
            MapiSyncState::default()
        };
        Ok((fid, sync_state))
    }

    // Returns the clock's time as a FILETIME (100 ns ticks since 1601).
    fn now_filetime(&self) -> u64 {
        const UNIX_EPOCH_AS_FILETIME: u64 = 116_444_736_000_000_000;
        self.shared
            .clock
            .now_millis()
            .saturating_mul(10_000)
            .saturating_add(UNIX_EPOCH_AS_FILETIME)
    }

    // Fetches a message's properties, bodies and attachments over MAPI/HTTP and writes
    // them as MIME. The capability table marks this partial: the MIME is equivalent to
    // the server's, not byte-identical.
    async fn fetch_mime_mapi(&self, item: ItemKey) -> Result<Vec<u8>, TransportError> {
        let mapi = self.mapi_backend(Operation::Fetch)?;
        let (fid, mid) = self.mapi_item_id(Operation::Fetch, item).await?;
        let fail = |source| TransportError::Mapi {
            operation: Operation::Fetch,
            source,
        };
        let message = mapi
            .session
            .fetch_message(ObjectId(fid), ObjectId(mid))
            .await
            .map_err(fail)?;
        exmux_mapihttp::session::mime::compose(&message).map_err(fail)
    }

    // Returns the MAPI folder and message ids of `item`.
    async fn mapi_item_id(
        &self,
        operation: Operation,
        item: ItemKey,
    ) -> Result<(u64, u64), TransportError> {
        let ews_id = {
            let core = lock(&self.shared.core);
            let record = core
                .ids()
                .get(item)
                .ok_or(CoreError::UnknownItem { operation, item })?;
            if let Some(ids) = record.mapi {
                return Ok(ids);
            }
            record.ews.clone()
        };
        let missing = TransportError::NoBackendId {
            item,
            backend: Backend::Mapi,
        };
        let Some(ews_id) = ews_id else {
            return Err(missing);
        };

        // An item learned over EWS: its ItemId carries the MAPI entry id, whose database
        // GUIDs map to replica ids through the logon's replica map. An id in another
        // layout goes through EWS ConvertId to its entry id first. The ids found are
        // bound to the item, so later writes skip the conversion, and a MAPI download
        // reports the item under the same key.
        let mapi = self.mapi_backend(operation)?;
        let replid_of = |guid: &[u8; 16]| mapi.replid_of(guid);
        if let Some(BackendItemId::Mapi { fid, mid }) =
            crate::backend::ews::mapi_item_id_with(&ews_id, replid_of)
        {
            self.bind_converted_id(item, BackendItemId::Mapi { fid, mid });
            return Ok((fid, mid));
        }
        let Some(entry_id) = self.convert_to_entry_id(&ews_id).await else {
            return Err(missing);
        };
        let entry = exmux_ews::ids::EntryId::parse(&entry_id).map_err(|_| missing)?;
        let (Some(message), Some(fid_replid)) =
            (entry.message, replid_of(&entry.folder.database_guid))
        else {
            return Err(TransportError::NoBackendId {
                item,
                backend: Backend::Mapi,
            });
        };
        let Some(mid_replid) = replid_of(&message.database_guid) else {
            return Err(TransportError::NoBackendId {
                item,
                backend: Backend::Mapi,
            });
        };
        let object = |replid, counter| {
            ObjectId::from_parts(replid, exmux_mapihttp::ids::GlobCnt::from_bytes(counter)).0
        };
        let fid = object(fid_replid, entry.folder.global_counter);
        let mid = object(mid_replid, message.global_counter);
        self.bind_converted_id(item, BackendItemId::Mapi { fid, mid });
        Ok((fid, mid))
    }

    // Binds an id converted from the item's id on the other backend. A binding the core
    // rejects (the id already names another item, because both backends synced the
    // message under separate keys) is logged and skipped, since the write itself can
    // go ahead with the converted id.
    fn bind_converted_id(&self, item: ItemKey, id: BackendItemId) {
        if let Err(error) = lock(&self.shared.core).bind_backend_id(item, id) {
            tracing::warn!(%item, %error, "binding a converted item id failed");
        }
    }

    // Asks the server for the entry id of an EWS id (ConvertId, MS-OXWSCVTID 3.1.4.1),
    // for ids whose layout exmux does not decode. `None` when there is no EWS client
    // or the server cannot convert it.
    async fn convert_to_entry_id(&self, ews_id: &str) -> Option<Vec<u8>> {
        let ews = self.shared.ews.as_ref()?;
        let converted = ews
            .call(&ConvertId {
                destination: IdFormat::EntryId,
                source_ids: vec![AlternateId {
                    format: IdFormat::EwsId,
                    id: ews_id.to_owned(),
                    mailbox: ews.mailbox().to_owned(),
                }],
            })
            .await
            .ok()?
            .into_single("ConvertId")
            .ok()??;
        STANDARD.decode(converted.id.as_bytes()).ok()
    }

    // Returns the EWS id of `item`: the one a sync over EWS reported, or, for an item
    // learned over MAPI/HTTP, the ItemId built from its folder and message ids. A built
    // id is bound to the item, so an EWS sync that reports the same id text reports
    // the item under the same key.
    // NOTE: the id text includes the mailbox GUID. Against the emulator, whose RopLogon
    // MailboxGuid is not in MS-DTYP layout, the built text differs from the EWS one.
    fn ews_item_id(&self, operation: Operation, item: ItemKey) -> Result<String, TransportError> {
        let (ews, mapi_ids) = {
            let core = lock(&self.shared.core);
            let record = core
                .ids()
                .get(item)
                .ok_or(CoreError::UnknownItem { operation, item })?;
            (record.ews.clone(), record.mapi)
        };
        if let Some(id) = ews {
            return Ok(id);
        }
        let built = mapi_ids
            .zip(self.shared.mapi.as_ref())
            .and_then(|((fid, mid), mapi)| mapi.ews_item_id(fid, mid))
            .ok_or(TransportError::NoBackendId {
                item,
                backend: Backend::Ews,
            })?;
        self.bind_converted_id(item, BackendItemId::Ews(built.clone()));
        Ok(built)
    }

    fn mapi_backend(&self, operation: Operation) -> Result<&mapi::MapiBackend, TransportError> {
        self.shared
            .mapi
            .as_ref()
            .ok_or_else(|| TransportError::BackendNotOffered {
                backend: Backend::Mapi,
                operations: vec![operation],
                reason: "no MAPI/HTTP session is connected".to_owned(),
            })
    }

    fn routed_to_mapi(&self, operation: Operation) -> bool {
        lock(&self.shared.core).routing().backend_for(operation) == Backend::Mapi
    }

    // Rejects an operation routed to MAPI/HTTP that the transport does not carry over
    // it, instead of sending it over EWS behind the configuration's back. Every
    // operation is carried today, so this guards operations added later.
    fn check_carried(&self, operation: Operation) -> Result<(), TransportError> {
        if self.routed_to_mapi(operation) && !MAPI_CARRIED.contains(&operation) {
            return Err(TransportError::BackendNotOffered {
                backend: Backend::Mapi,
                operations: vec![operation],
                reason: "this version of the transport carries every operation over MAPI/HTTP"
                    .to_owned(),
            });
        }
        Ok(())
    }

    /// Returns the operations the routing sends to a backend this transport does not
    /// carry them over yet; calling one fails with
    /// [`TransportError::BackendNotOffered`].
    pub fn uncarried_operations(&self) -> Vec<Operation> {
        Operation::ALL
            .into_iter()
            .filter(|operation| self.check_carried(*operation).is_err())
            .collect()
    }

    // Journals and issues a read-state update or a delete over MAPI/HTTP through ICS
    // import (RopSynchronizationImportReadStateChanges, RopSynchronizationImportDeletes;
    // MS-OXCFXICS 2.2.3.2.4), as `create_mapi` does for a creation. The checkpoint
    // state the import returns goes to the core as an upload checkpoint, so the next
    // download leaves the change out. When the core cannot take it, the download
    // reports the change, and the journal recognises it by value or as our delete.
    async fn write_mapi(
        &self,
        operation: Operation,
        item: ItemKey,
        read_state: Option<bool>,
    ) -> Result<(), TransportError> {
        let mapi = self.mapi_backend(operation)?;
        let (fid, mid) = self.mapi_item_id(operation, item).await?;
        let folder = {
            let core = lock(&self.shared.core);
            let record = core
                .ids()
                .get(item)
                .ok_or(CoreError::UnknownItem { operation, item })?;
            record.folder
        };
        let source_key = mapi.source_key(mid).ok_or(TransportError::NoBackendId {
            item,
            backend: Backend::Mapi,
        })?;
        // The upload starts from the folder's stored state only when that state names
        // the same folder. Otherwise it starts empty and its checkpoint is not kept.
        let (state, base) = match self.folder_mapi(operation, folder) {
            Ok((folder_fid, state)) if folder_fid == fid => (state, self.mapi_sync_base(folder)),
            _ => (MapiSyncState::default(), None),
        };

        let issued = Shared::begin_write(
            &self.shared,
            WriteIntent {
                operation,
                item: Some(item),
                folder,
                backend: Backend::Mapi,
                session: mapi.session_label(),
                assign_change_key: false,
                read_state,
                target_folder: None,
            },
        )?;
        let result = match read_state {
            Some(read) => {
                mapi.session
                    .import_read_states(ObjectId(fid), &state, &[(source_key, read)])
                    .await
            }
            // A soft delete, like RopDeleteMessages (RopHardDeleteMessages is the hard one).
            None => {
                mapi.session
                    .import_deletes(ObjectId(fid), &state, &[source_key], false)
                    .await
            }
        };
        let outcome = match &result {
            Ok(_) => WriteOutcome::Succeeded {
                change_key: None,
                new_id: None,
            },
            Err(error) => mapi::failure_outcome(error),
        };
        Shared::report_write(&self.shared, issued.id, outcome)?;
        let checkpoint = result.map_err(|source| TransportError::Mapi { operation, source })?;
        Shared::report_checkpoint(&self.shared, folder, base, &checkpoint, issued.id)?;
        Ok(())
    }

    // Journals a write of an existing item and returns its EWS id.
    fn begin(
        &self,
        operation: Operation,
        item: Option<ItemKey>,
        target_folder: Option<FolderKey>,
        read_state: Option<bool>,
    ) -> Result<(IssuedWrite, String), TransportError> {
        let item = item.ok_or(CoreError::InvalidWrite {
            operation,
            expected: "an item key",
        })?;
        let id = self.ews_item_id(operation, item)?;
        let folder = lock(&self.shared.core)
            .ids()
            .get(item)
            .map(|record| record.folder)
            .ok_or(CoreError::UnknownItem { operation, item })?;
        let issued = Shared::begin_write(
            &self.shared,
            WriteIntent {
                operation,
                item: Some(item),
                folder,
                backend: Backend::Ews,
                session: String::new(),
                assign_change_key: false,
                read_state,
                target_folder,
            },
        )?;
        Ok((issued, id))
    }

    // Reports a write's outcome to the core and turns a failure into an error.
    fn finish<T>(
        &self,
        operation: Operation,
        item: ItemKey,
        issued: &IssuedWrite,
        result: Result<Result<T, exmux_ews::EwsError>, ClientError>,
        success: impl FnOnce(T) -> (Option<crate::journal::ChangeKey>, Option<BackendItemId>),
    ) -> Result<(), TransportError> {
        let (outcome, error) = match ews_write_result(operation, &item.to_string(), result) {
            Ok(value) => {
                let (change_key, new_id) = success(value);
                (WriteOutcome::Succeeded { change_key, new_id }, None)
            }
            Err(failure) => {
                let (outcome, error) = *failure;
                (outcome, Some(error))
            }
        };
        Shared::report_write(&self.shared, issued.id, outcome)?;
        match error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

// Splits the result of an EWS write into its value, or the write's outcome and the
// error to return. `item` names what was written, for the error.
fn ews_write_result<T>(
    operation: Operation,
    item: &str,
    result: Result<Result<T, exmux_ews::EwsError>, ClientError>,
) -> Result<T, Box<(WriteOutcome, TransportError)>> {
    let rejected = |message: String| {
        Box::new((
            WriteOutcome::Failed,
            TransportError::Rejected {
                operation,
                item: item.to_owned(),
                message,
            },
        ))
    };
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(rejected(error.to_string())),
        // A response that was read and decoded proves the server's result. Any other
        // failure leaves the outcome unknown.
        Err(ClientError::Ews { source: error, .. }) => Err(rejected(error.to_string())),
        Err(source) => Err(Box::new((
            WriteOutcome::Lost,
            TransportError::Ews { operation, source },
        ))),
    }
}

impl Shared {
    fn begin_write(shared: &Arc<Shared>, intent: WriteIntent) -> Result<IssuedWrite, CoreError> {
        let now = shared.clock.now_millis();
        let (issued, outputs) = {
            let mut core = lock(&shared.core);
            let issued = core.begin_write(now, intent)?;
            (issued, core.drain_outputs())
        };
        Shared::dispatch(shared, outputs);
        Ok(issued)
    }

    fn handle(shared: &Arc<Shared>, input: Input) -> Result<(), CoreError> {
        let now = shared.clock.now_millis();
        let outputs = {
            let mut core = lock(&shared.core);
            core.handle(now, input)?;
            core.drain_outputs()
        };
        Shared::dispatch(shared, outputs);
        Ok(())
    }

    // Hands the outcome of the journaled write `write` to the core.
    fn report_write(
        shared: &Arc<Shared>,
        write: WriteId,
        outcome: WriteOutcome,
    ) -> Result<(), CoreError> {
        Shared::handle(shared, Input::WriteResult { write, outcome })
    }

    // Hands the checkpoint of an ICS upload that carried `write` to the core, when the
    // upload started from the folder's stored sync state `base`.
    fn report_checkpoint(
        shared: &Arc<Shared>,
        folder: FolderKey,
        base: Option<SyncState>,
        checkpoint: &MapiSyncState,
        write: WriteId,
    ) -> Result<(), CoreError> {
        let Some(base) = base else {
            return Ok(());
        };
        Shared::handle(
            shared,
            Input::UploadCheckpoint {
                folder,
                base,
                checkpoint: SyncState(checkpoint.to_bytes()),
                writes: vec![write],
            },
        )
    }

    fn dispatch(shared: &Arc<Shared>, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Event(event) => {
                    // A dropped receiver means the embedder stopped listening.
                    let _ = shared.events.send(event);
                }
                Output::Request(request) => {
                    shared.in_flight.fetch_add(1, Ordering::SeqCst);
                    let worker = Arc::clone(shared);
                    tokio::spawn(async move {
                        let input = worker.execute(request).await;
                        if let Some(input) = input
                            && let Err(error) = Shared::handle(&worker, input)
                        {
                            tracing::debug!(%error, "the core dropped a late result");
                        }
                        worker.in_flight.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            }
        }
    }

    async fn execute(&self, request: Request) -> Option<Input> {
        match request {
            Request::Sync {
                folder,
                folder_id,
                from,
                ..
            } => {
                if let (Some(BackendFolderId::Mapi(fid)), Some(mapi)) = (&folder_id, &self.mapi) {
                    return Some(mapi.sync(folder, *fid, &from).await);
                }
                let (Some(BackendFolderId::Ews(folder_id)), Some(ews)) = (folder_id, &self.ews)
                else {
                    return Some(Input::SyncFailed {
                        folder,
                        failure: SyncFailure::Other {
                            message: format!("{folder} has no folder id on its sync backend"),
                            retryable: false,
                        },
                    });
                };
                // A state the other backend saved cannot be read here: start over.
                let sync_state = ews_adapter::sync_state_text(&from).unwrap_or(None);
                let result = ews
                    .call(&SyncFolderItems {
                        shape: item_shape(),
                        folder: ews_folder_ref(&folder_id),
                        sync_state,
                        ignore: Vec::new(),
                        max_changes: MAX_CHANGES_PER_PAGE,
                    })
                    .await
                    .and_then(|response| {
                        response
                            .into_single("SyncFolderItems")
                            .map_err(|source| ClientError::Ews {
                                operation: "SyncFolderItems",
                                source,
                            })
                    });
                Some(match result {
                    Ok(page) => Input::SyncPage(ews_adapter::sync_page(folder, page)),
                    Err(error) => Input::SyncFailed {
                        folder,
                        failure: ews_adapter::sync_failure(&error),
                    },
                })
            }
            Request::Verify {
                folder,
                backend,
                id,
            } => {
                // The core names the syncing backend's id. When the fetch route names the
                // other backend, the check goes there with the id derived from it, and
                // the result is reported under the core's id. An id that cannot be
                // derived is checked over its own backend.
                let derived = match (&id, backend, &self.mapi) {
                    (BackendItemId::Mapi { fid, mid }, Backend::Ews, Some(mapi))
                        if self.ews.is_some() =>
                    {
                        mapi.ews_item_id(*fid, *mid).map(BackendItemId::Ews)
                    }
                    (BackendItemId::Ews(text), Backend::Mapi, Some(mapi)) => {
                        ews_adapter::mapi_item_id_with(text, |guid| mapi.replid_of(guid))
                    }
                    _ => None,
                };
                let input = self
                    .verify_over(folder, derived.unwrap_or_else(|| id.clone()))
                    .await;
                Some(match input {
                    Input::FetchResult {
                        folder, outcome, ..
                    } => Input::FetchResult {
                        folder,
                        id,
                        outcome,
                    },
                    other => other,
                })
            }
        }
    }

    // Checks that an item exists over the backend its id belongs to.
    async fn verify_over(&self, folder: FolderKey, id: BackendItemId) -> Input {
        if let (BackendItemId::Mapi { .. }, Some(mapi)) = (&id, &self.mapi) {
            return mapi.verify(folder, id).await;
        }
        let (BackendItemId::Ews(text), Some(ews)) = (&id, &self.ews) else {
            return Input::FetchResult {
                folder,
                id,
                outcome: FetchOutcome::Failed { retryable: false },
            };
        };
        let result = ews
            .call(&GetItem {
                shape: item_shape(),
                item_ids: vec![ItemId::new(text.clone())],
            })
            .await;
        let outcome = match result {
            Ok(response) => match response.messages.into_iter().next() {
                Some(Ok(items)) => {
                    let item = items.into_iter().next();
                    FetchOutcome::Found {
                        change_key: item
                            .as_ref()
                            .and_then(|item| item.item_id.as_ref())
                            .and_then(|id| id.change_key.as_deref())
                            .map(ews_adapter::change_key),
                        read: item.and_then(|item| item.is_read),
                    }
                }
                Some(Err(error)) if error.is_not_found() => FetchOutcome::NotFound,
                _ => FetchOutcome::Failed { retryable: false },
            },
            Err(error) => FetchOutcome::Failed {
                retryable: error.is_retryable(),
            },
        };
        Input::FetchResult {
            folder,
            id,
            outcome,
        }
    }
}
