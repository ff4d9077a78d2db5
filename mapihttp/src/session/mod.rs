//! The MAPI/HTTP session client: one mailbox session context over reqwest, with the
//! request sequencing of MS-OXCMAPIHTTP 3.1.5, a ROP batch executor that tracks the
//! server object handle table, reconnection after a lost context, the NotificationWait
//! loop, and the operations a sync engine needs (hierarchy, ICS download and upload,
//! fetch, writes).
//!
//! Sequencing: at most one Connect, Execute or Disconnect is in flight per context (they
//! hold the context lock), while one NotificationWait and any PING may run beside them.
//! Cookies are replaced only from responses that carry X-ResponseCode, that is from the
//! mailbox server itself, and only by sequenced requests.
//!
//! Recovery: a context the server no longer knows (X-ResponseCode 6, 10, 13, 15, or any
//! non-zero code from a server with its own numbering) leads to a Connect with the old
//! cookies (MS-OXCMAPIHTTP 3.2.5.6), a new RopLogon, and the lazy reopening of the
//! folders and messages the caller holds. The failed batch is sent again only when the
//! caller marked it [`Replay::Safe`]. A write gets [`SessionError::WriteNotReplayed`], or
//! [`SessionError::WritePartlyApplied`] when earlier Execute requests of a split batch
//! were applied.

mod batch;
mod context;
mod error;
mod ics;
pub mod mime;
mod notify;
mod ops;
mod read;
mod recipients;
pub mod record;
mod split;
mod streams;
mod transport;
mod write;

pub use batch::{Batch, BatchResult, HandleRef, ObjectHandle};
pub use error::SessionError;
pub use ics::StreamOptions;
pub use notify::{Notice, NoticeKind, NotificationWaiter};
pub use ops::{
    ContentsSync, FolderChange, FolderRow, HierarchySync, ImportedChange, ItemChange,
    MessageImport, StructuredAttachment, StructuredMessage, StructuredRecipient, SyncState,
    XidSource,
};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exmux_core::auth::Credentials;
use exmux_core::http::ProxySetting;
use exmux_core::{Clock, SystemClock};
use http::HeaderMap;
use tracing::Instrument;
use uuid::Uuid;

use crate::body::{
    ConnectRequest, ConnectResponse, DisconnectRequest, DisconnectResponse, ExecuteRequest,
    ExecuteResponse, NotificationWaitRequest, NotificationWaitResponse, Response, WireBody,
};
use crate::ext::{self, EncodeOptions};
use crate::http::{
    GuidCounter, HeadError, RequestHeaders, RequestType, ResponseCode, ResponseHead,
    SessionCookies, parse_body,
};
use crate::ids::{Guid, ObjectId};
use crate::rop::{
    self, ResponseBody, ResponseContext, RopBuffer, RopRequest, RopResponse, RopResult,
};
use split::PartsFault;
use transport::{Answer, Transport};

/// The X-ResponseCode numbering of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CodeNumbering {
    /// The specification's table (MS-OXCMAPIHTTP 2.2.3.3.3): reconnect on 6, 10, 13, 15.
    #[default]
    Spec,
    /// The server has its own numbering (one open-source server does): every non-zero
    /// code on a sequenced request is treated as a lost context and reconnects once.
    ServerSpecific,
}

/// Whether a batch may be sent again after the context was lost under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Replay {
    /// Reads, and writes whose repetition changes nothing (marking read twice).
    Safe,
    /// Writes: after a reconnect the caller gets [`SessionError::WriteNotReplayed`], or
    /// [`SessionError::WritePartlyApplied`] when part of a split batch was applied.
    Never,
}

/// Settings of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The mailbox endpoint, `https://host/mapi/emsmdb/?MailboxId=...`.
    pub url: String,
    /// The user's legacy DN, for Connect and RopLogon.
    pub user_dn: String,
    /// Credentials (Basic or bearer).
    pub credentials: Credentials,
    /// The HTTP client, built with `exmux_core::http::HttpOptions::build_client` so TLS is
    /// verified by default.
    pub http: reqwest::Client,
    /// X-ClientApplication.
    pub client_application: String,
    /// The clock for idle tracking and the keep-alive schedule.
    pub clock: Arc<dyn Clock>,
    /// The server's X-ResponseCode numbering.
    pub numbering: CodeNumbering,
    /// MaxRopOut of Execute requests.
    pub max_rop_out: u32,
    /// Execute flags (MS-OXCRPC 3.1.4.2); compressed and obfuscated replies are decoded
    /// either way.
    pub execute_flags: u32,
    /// Largest response body accepted.
    pub body_limit: usize,
    /// Silence after which a response in progress counts as dead when the server gave
    /// no X-PendingPeriod yet (afterwards, twice the pending period).
    pub silence_timeout: Duration,
    /// Attempts for a read that got HTTP 5xx or a response from a proxy in front of the server.
    pub retry_attempts: u32,
    /// First delay between those attempts; doubled each time.
    pub retry_delay: Duration,
    /// A NotificationWait held longer than this is dropped and sent again.
    pub notification_wait_limit: Duration,
    /// TLS settings of the connections NTLM and Negotiate run on (reqwest's client is
    /// not used for them); `None` verifies against the platform's roots.
    pub owned_tls: Option<Arc<rustls::ClientConfig>>,
    /// The proxy of those connections, reached through a `CONNECT` tunnel; pass the
    /// `proxy` of the `HttpOptions` the reqwest client was built from. By default the
    /// proxy environment variables apply, as they do for reqwest.
    pub owned_proxy: ProxySetting,
    /// A recorder that sees every HTTP exchange, with secrets replaced; `None` records
    /// nothing.
    pub recorder: Option<Arc<dyn record::Recorder>>,
}

impl SessionConfig {
    /// Settings with the defaults: specification numbering, MaxRopOut 0x40000, no
    /// compression requested, 64 MiB body limit, three attempts for reads.
    pub fn new(
        url: impl Into<String>,
        user_dn: impl Into<String>,
        credentials: Credentials,
        http: reqwest::Client,
    ) -> Self {
        Self {
            url: url.into(),
            user_dn: user_dn.into(),
            credentials,
            http,
            client_application: "Outlook/16.0.18025.20000 exmux".to_owned(),
            clock: Arc::new(SystemClock),
            numbering: CodeNumbering::Spec,
            max_rop_out: 0x40000,
            execute_flags: 0,
            body_limit: 64 << 20,
            silence_timeout: Duration::from_secs(65),
            retry_attempts: 3,
            retry_delay: Duration::from_millis(500),
            notification_wait_limit: Duration::from_secs(360),
            owned_tls: None,
            owned_proxy: ProxySetting::FromEnvironment,
            recorder: None,
        }
    }
}

/// The mailbox facts returned by RopLogon and RopLongTermIdFromId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogonInfo {
    /// The 13 special folders of RopLogon (root, deferred action, spooler queue, IPM
    /// subtree, inbox, outbox, sent items, deleted items, common views, schedule,
    /// search, views, shortcuts).
    pub folder_ids: [ObjectId; 13],
    /// The mailbox GUID.
    pub mailbox_guid: Guid,
    /// The replica ids seen in folder ids, each resolved to its GUID with
    /// RopLongTermIdFromId (a real server's RopLogon pair named another replica).
    pub replicas: HashMap<u16, Guid>,
    /// The REPLID/REPLGUID pair of the RopLogon response, for reference only.
    pub logon_replica: (u16, Guid),
}

impl LogonInfo {
    /// Returns the inbox folder id.
    pub fn inbox(&self) -> ObjectId {
        self.folder_ids[4]
    }

    /// Returns the IPM subtree (the top of the user's folders).
    pub fn ipm_subtree(&self) -> ObjectId {
        self.folder_ids[3]
    }

    /// Returns the outbox folder id.
    pub fn outbox(&self) -> ObjectId {
        self.folder_ids[5]
    }

    /// Returns the sent items folder id.
    pub fn sent_items(&self) -> ObjectId {
        self.folder_ids[6]
    }

    /// Returns the deleted items folder id.
    pub fn deleted_items(&self) -> ObjectId {
        self.folder_ids[7]
    }

    /// Returns the replica GUID of an id's REPLID, when known.
    pub fn replica_guid(&self, id: ObjectId) -> Option<Guid> {
        self.replicas.get(&id.replid()).copied()
    }
}

/// How to reopen a held object on a new context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reopen {
    Folder(ObjectId),
    Message {
        folder: ObjectId,
        message: ObjectId,
        mode: u8,
    },
}

#[derive(Debug, Clone, Copy)]
struct Held {
    server: u32,
    generation: u64,
    reopen: Reopen,
}

#[derive(Debug)]
struct Context {
    request_guid: Uuid,
    context_counter: u64,
    connected: bool,
    generation: u64,
    logon: Option<(u32, LogonInfo)>,
    objects: HashMap<u32, Held>,
    next_object: u32,
    subscription: Option<u8>,
}

#[derive(Debug)]
struct Inner {
    config: SessionConfig,
    transport: Transport,
    client_guid: Uuid,
    context: tokio::sync::Mutex<Context>,
    cookies: Mutex<SessionCookies>,
    request_counter: AtomicU64,
    pending_period_ms: AtomicU64,
    last_request_ms: AtomicU64,
    reconnects: AtomicU64,
    notices: tokio::sync::broadcast::Sender<Notice>,
    span: tracing::Span,
}

/// A MAPI/HTTP mailbox session. Clones share one session context.
#[derive(Debug, Clone)]
pub struct MapiSession {
    inner: Arc<Inner>,
}

enum Fault {
    Refused(ResponseCode),
    Other(SessionError),
}

impl MapiSession {
    /// Creates a session; nothing is sent until the first operation or
    /// [`MapiSession::connect`].
    pub fn new(config: SessionConfig) -> Self {
        let span = tracing::info_span!(
            "mapi_session",
            backend = "mapi",
            mailbox = %config.user_dn,
            session = tracing::field::Empty
        );
        let transport = Transport {
            url: config.url.clone(),
            credentials: config.credentials.clone(),
            client: config.http.clone(),
            body_limit: config.body_limit,
            owned: Mutex::new(Vec::new()),
            tls: config.owned_tls.clone(),
            proxy: config.owned_proxy.clone(),
            recorder: config.recorder.clone(),
        };
        let (notices, _) = tokio::sync::broadcast::channel(1024);
        Self {
            inner: Arc::new(Inner {
                transport,
                client_guid: Uuid::new_v4(),
                context: tokio::sync::Mutex::new(Context {
                    request_guid: Uuid::new_v4(),
                    context_counter: 0,
                    connected: false,
                    generation: 0,
                    logon: None,
                    objects: HashMap::new(),
                    next_object: 1,
                    subscription: None,
                }),
                cookies: Mutex::new(SessionCookies::default()),
                request_counter: AtomicU64::new(0),
                pending_period_ms: AtomicU64::new(0),
                last_request_ms: AtomicU64::new(0),
                reconnects: AtomicU64::new(0),
                notices,
                span,
                config,
            }),
        }
    }

    /// Returns the settings.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// Returns how many times the session reconnected after losing its context.
    pub fn reconnect_count(&self) -> u64 {
        self.inner.reconnects.load(Ordering::Relaxed)
    }

    /// Returns the GUID this session sends in X-ClientInfo (MS-OXCMAPIHTTP 2.2.3.1.2),
    /// which names it in the server's logs and in exmux's write journal.
    pub fn client_guid(&self) -> Uuid {
        self.inner.client_guid
    }

    /// Returns the names of the session's cookies (values stay secret).
    pub fn cookie_names(&self) -> Vec<String> {
        self.inner
            .cookies
            .lock()
            .map(|c| c.names().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Receives the notices of this session (hints only: see [`Notice`]).
    pub fn notices(&self) -> tokio::sync::broadcast::Receiver<Notice> {
        self.inner.notices.subscribe()
    }

    /// Milliseconds since the last request of this session, by the session's clock.
    pub fn idle_millis(&self) -> u64 {
        self.inner
            .config
            .clock
            .now_millis()
            .saturating_sub(self.inner.last_request_ms.load(Ordering::Relaxed))
    }

    /// Connects and logs on, unless already done, and returns the logon information.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when Connect, RopLogon or the replica lookup fails.
    pub async fn connect(&self) -> Result<LogonInfo, SessionError> {
        let mut ctx = self.inner.context.lock().await;
        self.ensure_connected(&mut ctx)
            .instrument(self.inner.span.clone())
            .await?;
        ctx.logon
            .as_ref()
            .map(|(_, info)| info.clone())
            .ok_or(SessionError::MissingResponse {
                operation: "connect",
                rop: "RopLogon",
            })
    }

    /// Sends a Disconnect and drops the context and every handle.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when the Disconnect request fails; the local state is dropped
    /// anyway.
    pub async fn disconnect(&self) -> Result<(), SessionError> {
        let mut ctx = self.inner.context.lock().await;
        if !ctx.connected {
            return Ok(());
        }
        let body = DisconnectRequest::default()
            .encode()
            .map_err(|e| SessionError::protocol("Disconnect", e))?;
        let result = self
            .sequenced(&mut ctx, "Disconnect", RequestType::Disconnect, body)
            .instrument(self.inner.span.clone())
            .await;
        ctx.connected = false;
        ctx.logon = None;
        ctx.objects.clear();
        ctx.generation += 1;
        if let Ok(mut cookies) = self.inner.cookies.lock() {
            *cookies = SessionCookies::default();
        }
        match result {
            Ok(answer) => match DisconnectResponse::decode(&answer) {
                Ok(Response::Success(_)) => Ok(()),
                Ok(Response::Failure(f)) => Err(SessionError::Status {
                    operation: "Disconnect",
                    field: "StatusCode",
                    value: f.status_code,
                }),
                Err(e) => Err(SessionError::protocol("Disconnect", e)),
            },
            Err(Fault::Refused(code)) => Err(SessionError::Refused {
                operation: "Disconnect",
                code,
                after_reconnect: false,
            }),
            Err(Fault::Other(e)) => Err(e),
        }
    }

    /// Closes the session: sends Disconnect so the server drops the context at once
    /// instead of waiting for it to expire. Other clones of the session connect again on
    /// their next request.
    ///
    /// # Errors
    ///
    /// As [`MapiSession::disconnect`].
    pub async fn close(self) -> Result<(), SessionError> {
        self.disconnect().await
    }

    /// Sends a PING (MS-OXCMAPIHTTP 2.2.6) with the context's cookies: a keep-alive that
    /// takes no part in the request sequence.
    ///
    /// # Errors
    ///
    /// [`SessionError`] for a failed or refused PING.
    pub async fn ping(&self) -> Result<(), SessionError> {
        let headers = self.headers(RequestType::Ping)?;
        let answer = self
            .inner
            .transport
            .post("PING", headers, Vec::new(), self.silence())
            .await?;
        self.touch();
        classify("PING", &answer).map_err(|fault| match fault {
            Fault::Refused(code) => SessionError::Refused {
                operation: "PING",
                code,
                after_reconnect: false,
            },
            Fault::Other(e) => e,
        })?;
        Ok(())
    }

    /// Spawns a task that sends PING whenever the session has been idle for `every` by
    /// the session's clock, checking once per `check`. Dropping the handle does not stop
    /// it: abort it.
    pub fn spawn_keepalive(&self, every: Duration, check: Duration) -> tokio::task::JoinHandle<()> {
        let session = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(check).await;
                if u128::from(session.idle_millis()) < every.as_millis() {
                    continue;
                }
                if let Err(error) = session.ping().await {
                    tracing::debug!(%error, "keep-alive PING failed");
                }
            }
        })
    }

    /// Registers an object the caller keeps open: a folder opened in `result` at `slot`.
    async fn adopt(&self, result: &BatchResult, slot: u8, reopen: Reopen) -> Option<ObjectHandle> {
        let server = result.handle(slot)?;
        let mut ctx = self.inner.context.lock().await;
        let id = ctx.next_object;
        ctx.next_object += 1;
        ctx.objects.insert(
            id,
            Held {
                server,
                generation: result.generation,
                reopen,
            },
        );
        Some(ObjectHandle(id))
    }

    /// Opens a folder and keeps it open; the session reopens it after a reconnect.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when RopOpenFolder fails.
    pub async fn open_folder(&self, folder: ObjectId) -> Result<ObjectHandle, SessionError> {
        let mut batch = Batch::new();
        let input = batch.input(HandleRef::Logon);
        let output = batch.output();
        let index = batch.push(RopRequest::OpenFolder {
            logon_id: 0,
            input_handle: input,
            output_handle: output,
            folder_id: folder,
            open_mode_flags: 0,
        });
        let result = self.execute("open folder", &batch, Replay::Safe).await?;
        ops::check(&result, index, "open folder")?;
        self.adopt(&result, output, Reopen::Folder(folder))
            .await
            .ok_or(SessionError::MissingResponse {
                operation: "open folder",
                rop: "RopOpenFolder",
            })
    }

    /// Opens a message and keeps it open (read-write when `write`); the session reopens
    /// it after a reconnect.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when RopOpenMessage fails.
    pub async fn open_message(
        &self,
        folder: ObjectId,
        message: ObjectId,
        write: bool,
    ) -> Result<ObjectHandle, SessionError> {
        let mode = if write { 0x01 } else { 0x00 };
        let mut batch = Batch::new();
        let input = batch.input(HandleRef::Logon);
        let output = batch.output();
        let index = batch.push(RopRequest::OpenMessage {
            logon_id: 0,
            input_handle: input,
            output_handle: output,
            code_page_id: 0x0FFF,
            folder_id: folder,
            open_mode_flags: mode,
            message_id: message,
        });
        let result = self.execute("open message", &batch, Replay::Safe).await?;
        ops::check(&result, index, "open message")?;
        self.adopt(
            &result,
            output,
            Reopen::Message {
                folder,
                message,
                mode,
            },
        )
        .await
        .ok_or(SessionError::MissingResponse {
            operation: "open message",
            rop: "RopOpenMessage",
        })
    }

    /// Releases a held object (RopRelease) and drops its entry.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when the Execute fails.
    pub async fn release(&self, handle: ObjectHandle) -> Result<(), SessionError> {
        let mut batch = Batch::new();
        let input = batch.input(HandleRef::Object(handle));
        batch.push(RopRequest::Release {
            logon_id: 0,
            input_handle: input,
        });
        let result = self.execute("release", &batch, Replay::Safe).await;
        self.inner.context.lock().await.objects.remove(&handle.0);
        result.map(|_| ())
    }

    /// Registers for notifications on the whole mailbox (RopRegisterNotification with
    /// WantWholeStore); the session registers again after every reconnect. Notices
    /// arrive on [`MapiSession::notices`] after an Execute or through the
    /// NotificationWait loop.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when the registration fails.
    pub async fn register_notifications(&self, types: u8) -> Result<(), SessionError> {
        {
            let mut ctx = self.inner.context.lock().await;
            ctx.subscription = Some(types);
        }
        let mut batch = Batch::new();
        register_rop(&mut batch, types);
        let result = self
            .execute("register notifications", &batch, Replay::Safe)
            .await?;
        ops::check(&result, 0, "register notifications")
    }

    /// Sends one batch (MS-OXCMAPIHTTP 2.2.4.2) and returns the results aligned with its
    /// requests. Notifications that follow the results are published as notices.
    ///
    /// # Errors
    ///
    /// [`SessionError`]: see the variants; a batch marked [`Replay::Never`] whose context
    /// was lost returns [`SessionError::WriteNotReplayed`] after the reconnect.
    pub async fn execute(
        &self,
        operation: &'static str,
        batch: &Batch,
        replay: Replay,
    ) -> Result<BatchResult, SessionError> {
        let span = tracing::debug_span!(parent: &self.inner.span, "mapi_request", operation, rops = batch.rops.len());
        self.execute_inner(operation, batch, replay)
            .instrument(span)
            .await
    }

    async fn execute_inner(
        &self,
        operation: &'static str,
        batch: &Batch,
        replay: Replay,
    ) -> Result<BatchResult, SessionError> {
        let mut ctx = self.inner.context.lock().await;
        let mut reconnected = false;
        let mut retries = 0u32;
        loop {
            self.ensure_connected(&mut ctx).await?;
            self.reopen_stale(&mut ctx, batch).await?;
            let handles = self.batch_handles(&ctx, batch, operation)?;
            let generation = ctx.generation;
            match self
                .execute_parts(&mut ctx, operation, &batch.rops, handles, &batch.columns)
                .await
            {
                Ok(parts) => {
                    return Ok(BatchResult {
                        results: parts.results,
                        handles: parts.handles,
                        generation,
                    });
                }
                Err(PartsFault {
                    fault: Fault::Refused(code),
                    applied,
                }) if self.is_context_fault(code) => {
                    if reconnected {
                        return Err(SessionError::Refused {
                            operation,
                            code,
                            after_reconnect: true,
                        });
                    }
                    self.reconnect(&mut ctx, code).await?;
                    reconnected = true;
                    if batch.slots.iter().any(|s| matches!(s, HandleRef::Raw(_))) {
                        return Err(SessionError::HandlesLost { operation });
                    }
                    // Earlier Execute requests of a split batch were applied, and the
                    // caller learns how many instead of a plain WriteNotReplayed.
                    if replay == Replay::Never && applied > 0 {
                        return Err(SessionError::WritePartlyApplied {
                            operation,
                            code,
                            applied,
                            total: batch.rops.len(),
                        });
                    }
                    if replay == Replay::Never {
                        return Err(SessionError::WriteNotReplayed { operation, code });
                    }
                }
                Err(PartsFault {
                    fault: Fault::Refused(code),
                    ..
                }) => {
                    return Err(SessionError::Refused {
                        operation,
                        code,
                        after_reconnect: false,
                    });
                }
                // NOTE: when earlier parts of a split batch were applied, this error does
                // not say so (only a context fault reports WritePartlyApplied).
                Err(PartsFault {
                    fault: Fault::Other(error),
                    ..
                }) => {
                    let retryable = matches!(error, SessionError::Unavailable { .. });
                    if retryable
                        && replay == Replay::Safe
                        && retries + 1 < self.inner.config.retry_attempts
                    {
                        let delay = self.inner.config.retry_delay * 2u32.saturating_pow(retries);
                        tracing::debug!(operation, retry = retries + 1, ?delay, %error, "retrying a read");
                        retries += 1;
                        drop(ctx);
                        tokio::time::sleep(delay).await;
                        ctx = self.inner.context.lock().await;
                        continue;
                    }
                    return Err(error);
                }
            }
        }
    }

    pub(crate) fn is_connected_hint(&self) -> bool {
        self.inner
            .context
            .try_lock()
            .map(|c| c.connected)
            .unwrap_or(true)
    }

    /// Returns the logon information, connecting first when needed.
    ///
    /// # Errors
    ///
    /// As [`MapiSession::connect`].
    pub async fn logon_info(&self) -> Result<LogonInfo, SessionError> {
        self.connect().await
    }

    pub(crate) fn span(&self) -> &tracing::Span {
        &self.inner.span
    }
}

fn register_rop(batch: &mut Batch, types: u8) {
    let input = batch.input(HandleRef::Logon);
    let output = batch.output();
    batch.push(RopRequest::RegisterNotification {
        logon_id: 0,
        input_handle: input,
        output_handle: output,
        notification_types: types,
        reserved: 0,
        want_whole_store: true,
        folder_id: ObjectId(0),
        message_id: ObjectId(0),
    });
}

/// Classifies a response head (MS-OXCMAPIHTTP 2.2.3.3): a refusal by the endpoint, a 401,
/// a response from a proxy in front of it, an HTML page.
fn classify(operation: &'static str, answer: &Answer) -> Result<ResponseHead, Fault> {
    match ResponseHead::classify(answer.status, &answer.headers) {
        Ok(head) => Ok(head),
        Err(HeadError::Refused { code }) => Err(Fault::Refused(code)),
        Err(head) if head.needs_authentication() => Err(Fault::Other(SessionError::Auth {
            operation,
            source: exmux_core::auth::AuthError::Rejected {
                username: "the configured user".to_owned(),
            },
        })),
        Err(head) if head.is_retryable() => {
            tracing::warn!(operation, %head, "response from a proxy in front of the mailbox server");
            Err(Fault::Other(SessionError::Unavailable { operation, head }))
        }
        Err(head) => Err(Fault::Other(SessionError::UnexpectedAnswer {
            operation,
            head,
        })),
    }
}
