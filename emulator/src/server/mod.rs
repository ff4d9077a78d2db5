//! The emulator's HTTP server: one hyper server on 127.0.0.1, plain HTTP or HTTPS, that
//! authenticates every request, applies the HTTP-level fault switches, optionally
//! records the exchange, and hands the request to the handler mounted for its path.
//!
//! ```no_run
//! # async fn demo() -> Result<(), exmux_emulator::server::EmulatorError> {
//! use exmux_emulator::server::{Emulator, EmulatorOptions};
//!
//! let emulator = Emulator::start(EmulatorOptions::default()).await?;
//! println!("EWS at {}", emulator.ews_url());
//! emulator.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod auth;
mod builtin;
mod conn;
pub mod faults;
mod ntlm;
pub mod record;
pub mod routing;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use exmux_core::{Clock, ManualClock, Secret};
use rand::{RngCore as _, SeedableRng as _};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use auth::{AuthOptions, AuthScheme, ChallengeStyle, TokenValidator};
pub use conn::busy_response;
pub use faults::{FaultKind, FaultSwitches};
pub use record::RecordLabel;
pub use routing::{
    AuthenticatedUser, ChunkSender, DropConnection, EmuRequest, EmuResponse, Handler, MailboxFacts,
    RequestContext, ResponseBody, RouteAuth, Router, SharedState, StreamClosed,
    drop_connection_response, full_response, handler_fn,
};
pub use tls::TlsIdentity;

use crate::store::{Store, StoreOptions};

/// The path of the EWS endpoint.
pub const EWS_PATH: &str = "/EWS/Exchange.asmx";
/// The path prefix of both MAPI/HTTP endpoints.
pub const MAPI_PREFIX: &str = "/mapi/";
/// The path of the MAPI/HTTP mailbox endpoint (MS-OXCMAPIHTTP 2.2.1).
pub const MAPI_EMSMDB_PATH: &str = "/mapi/emsmdb/";
/// The path of the MAPI/HTTP address book endpoint (MS-OXCMAPIHTTP 2.2.1).
pub const MAPI_NSPI_PATH: &str = "/mapi/nspi/";
/// The path of the POX autodiscover endpoint.
pub const AUTODISCOVER_PATH: &str = "/Autodiscover/Autodiscover.xml";
/// The path of the health endpoint, which needs no authentication.
pub const HEALTH_PATH: &str = "/health";

/// The settings of an emulator, passed to [`Emulator::start`].
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// The address to listen on. Use port 0 for any free port; the default is
    /// `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Serve HTTPS with a certificate made at start (see [`EmulatorHandle::tls`]) when
    /// true, plain HTTP when false. Default: true.
    pub tls: bool,
    /// The seed of the store's id generator and of the mailbox GUID.
    pub seed: u64,
    /// The clock of the store and of every protocol timer. Default: a
    /// [`ManualClock`] at its default start.
    pub clock: Arc<dyn Clock>,
    /// The mailbox's SMTP address. Default: `user1@example.test`.
    pub mailbox: String,
    /// The user name Basic and NTLM accept. Default: the mailbox address.
    pub username: String,
    /// The password Basic and NTLM accept.
    pub password: Secret,
    /// A bearer token accepted as the configured user, besides the tokens registered
    /// validators accept.
    pub bearer_token: Option<Secret>,
    /// The accepted schemes and the shape of the `401` challenges.
    pub auth: AuthOptions,
    /// When set, every exchange is written to this folder in the `captures/` layout.
    pub record_dir: Option<PathBuf>,
    /// The maximum request body the server reads, in bytes. Larger requests get HTTP 413.
    /// Default: 64 MiB.
    pub max_request_body: usize,
    /// The time [`EmulatorHandle::shutdown`] waits for open requests before it closes
    /// their connections. Default: 5 seconds.
    pub shutdown_grace: Duration,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        let mailbox = "user1@example.test".to_owned();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: true,
            seed: 0,
            clock: Arc::new(ManualClock::default()),
            username: mailbox.clone(),
            mailbox,
            password: Secret::new("password1"),
            bearer_token: None,
            auth: AuthOptions::default(),
            record_dir: None,
            max_request_body: 64 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// An error that kept the emulator from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// The listening socket could not be bound.
    #[error(
        "binding the emulator to {address} failed: {source}; choose another port or use port 0"
    )]
    Bind {
        /// The requested address.
        address: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The listen address is not a loopback address.
    #[error("the emulator listens only on loopback addresses, not {address}; use 127.0.0.1 or ::1")]
    NotLoopback {
        /// The requested address.
        address: SocketAddr,
    },
    /// Making the certificate or the TLS configuration failed.
    #[error("setting up TLS failed while trying to {step}: {reason}")]
    Tls {
        /// The step that failed.
        step: &'static str,
        /// The library's message.
        reason: String,
    },
    /// The recording folder could not be created.
    #[error(
        "creating the recording folder {path} failed: {source}; check the path and permissions"
    )]
    RecordDir {
        /// The folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The mailbox address has no `@domain` part.
    #[error("the mailbox address {address:?} has no domain; use a form like user1@example.test")]
    MailboxAddress {
        /// The configured address.
        address: String,
    },
}

/// The entry point: starts emulators.
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// Binds the listener, makes the certificate when TLS is on, creates the store and
    /// starts serving the default routes: `/health`, the EWS front end at [`EWS_PATH`]
    /// and the MAPI/HTTP front end under [`MAPI_PREFIX`]. [`EmulatorHandle::mount`]
    /// replaces a route.
    ///
    /// # Errors
    ///
    /// [`EmulatorError`] when the address is not loopback or cannot be bound, when
    /// TLS setup or the recording folder fails, or when the mailbox has no domain.
    pub async fn start(options: EmulatorOptions) -> Result<EmulatorHandle, EmulatorError> {
        if !options.listen.ip().is_loopback() {
            return Err(EmulatorError::NotLoopback {
                address: options.listen,
            });
        }
        let Some((_, domain)) = options.mailbox.split_once('@') else {
            return Err(EmulatorError::MailboxAddress {
                address: options.mailbox.clone(),
            });
        };
        let domain = domain.to_owned();

        let tls = if options.tls {
            Some(TlsIdentity::generate()?)
        } else {
            None
        };
        let recorder = match &options.record_dir {
            Some(dir) => {
                Some(
                    record::Recorder::new(dir).map_err(|source| EmulatorError::RecordDir {
                        path: dir.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| EmulatorError::Bind {
                    address: options.listen,
                    source,
                })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                address: options.listen,
                source,
            })?;

        let scheme = if tls.is_some() { "https" } else { "http" };
        let base_url = match local_addr {
            SocketAddr::V4(v4) => format!("{scheme}://{}:{}", v4.ip(), v4.port()),
            SocketAddr::V6(v6) => format!("{scheme}://[{}]:{}", v6.ip(), v6.port()),
        };

        // A separate stream from the store's, so the GUID does not depend on how the
        // store consumes its generator.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(options.seed ^ 0x6d61_696c_626f_7800);
        let mut guid_bytes = [0_u8; 16];
        rng.fill_bytes(&mut guid_bytes);
        let mailbox_guid = uuid::Builder::from_random_bytes(guid_bytes).into_uuid();

        #[allow(
            clippy::needless_update,
            reason = "the store may add options with defaults"
        )]
        let store = Store::new(StoreOptions {
            seed: options.seed,
            clock: Arc::clone(&options.clock),
            mailbox: options.mailbox.clone(),
            ..StoreOptions::default()
        });

        let validators = auth::TokenValidators::default();
        let shutdown = CancellationToken::new();
        let state = Arc::new(SharedState {
            store: Arc::new(Mutex::new(store)),
            clock: Arc::clone(&options.clock),
            faults: Arc::new(FaultSwitches::default()),
            mailbox: MailboxFacts {
                address: options.mailbox.clone(),
                domain,
                mailbox_guid,
                username: options.username.clone(),
                base_url: base_url.clone(),
            },
            validators: validators.clone(),
            shutdown: shutdown.clone(),
        });

        let mut router = Router::default();
        builtin::mount_defaults(&mut router);
        crate::mapi::mount_default(&mut router, &state);
        let server = Arc::new(conn::Server {
            state: Arc::clone(&state),
            router: RwLock::new(router),
            authenticator: auth::Authenticator {
                options: options.auth.clone(),
                username: options.username.clone(),
                password: options.password.clone(),
                bearer_token: options.bearer_token.clone(),
                validators,
            },
            recorder,
            max_request_body: options.max_request_body,
            next_connection: AtomicU64::new(1),
            next_request: AtomicU64::new(1),
        });

        info!(%base_url, tls = tls.is_some(), "emulator listening");
        let task = tokio::spawn(conn::accept_loop(
            Arc::clone(&server),
            listener,
            tls.as_ref().map(TlsIdentity::server_config),
            shutdown.clone(),
            options.shutdown_grace,
        ));

        Ok(EmulatorHandle {
            server,
            base_url,
            local_addr,
            tls,
            shutdown,
            task: Some(task),
        })
    }
}

/// A running emulator. Dropping it stops the server in the background; call
/// [`EmulatorHandle::shutdown`] to wait for the stop.
#[derive(Debug)]
pub struct EmulatorHandle {
    server: Arc<conn::Server>,
    base_url: String,
    local_addr: SocketAddr,
    tls: Option<TlsIdentity>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl EmulatorHandle {
    /// The base URL, `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The EWS endpoint, `<base>/EWS/Exchange.asmx`.
    pub fn ews_url(&self) -> String {
        format!("{}{EWS_PATH}", self.base_url)
    }

    /// The MAPI/HTTP mailbox endpoint with its `MailboxId` parameter,
    /// `<base>/mapi/emsmdb/?MailboxId=<guid>@<domain>` (MS-OXCMAPIHTTP 2.2.1).
    pub fn mapi_emsmdb_url(&self) -> String {
        format!(
            "{}{MAPI_EMSMDB_PATH}?MailboxId={}",
            self.base_url,
            self.mailbox_id()
        )
    }

    /// The MAPI/HTTP address book endpoint with its `MailboxId` parameter.
    pub fn mapi_nspi_url(&self) -> String {
        format!(
            "{}{MAPI_NSPI_PATH}?MailboxId={}",
            self.base_url,
            self.mailbox_id()
        )
    }

    /// The POX autodiscover endpoint.
    pub fn autodiscover_url(&self) -> String {
        format!("{}{AUTODISCOVER_PATH}", self.base_url)
    }

    /// The `MailboxId` value: the mailbox GUID, `@`, the domain.
    pub fn mailbox_id(&self) -> String {
        let facts = &self.server.state.mailbox;
        format!("{}@{}", facts.mailbox_guid, facts.domain)
    }

    /// The shared state: store, clock, fault switches and mailbox facts.
    pub fn state(&self) -> &Arc<SharedState> {
        &self.server.state
    }

    /// The mailbox store.
    pub fn store(&self) -> &Arc<Mutex<Store>> {
        &self.server.state.store
    }

    /// The HTTP-level fault switches.
    pub fn faults(&self) -> &Arc<FaultSwitches> {
        &self.server.state.faults
    }

    /// The TLS identity whose CA clients must trust, or `None` for plain HTTP.
    pub fn tls(&self) -> Option<&TlsIdentity> {
        self.tls.as_ref()
    }

    /// The CA certificate in PEM form, or `None` for plain HTTP.
    pub fn ca_certificate_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(TlsIdentity::ca_pem)
    }

    /// Mounts `handler` under `prefix`, replacing any route with that prefix. Requests
    /// already running keep their old handler.
    pub fn mount(&self, prefix: impl Into<String>, auth: RouteAuth, handler: Arc<dyn Handler>) {
        let mut router = self
            .server
            .router
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        router.mount(prefix, auth, handler);
    }

    /// Registers a validator for bearer tokens, such as the token endpoint's.
    pub fn register_token_validator(&self, validator: Arc<dyn TokenValidator>) {
        self.server.state.validators.register(validator);
    }

    /// Stops accepting connections, ends streaming responses, waits up to
    /// [`EmulatorOptions::shutdown_grace`] for requests in flight, then closes every
    /// connection.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "the emulator's accept loop ended abnormally");
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
