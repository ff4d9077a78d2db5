//! The emulator's MAPI over HTTP front end (MS-OXCMAPIHTTP): `/mapi/emsmdb/` for the
//! mailbox and enough of `/mapi/nspi/` for a client to bind, over the same [`Store`] the
//! EWS front end serves.
//!
//! The front end keeps one session context per Connect, identified by a context cookie
//! and guarded by a sequence cookie that changes on every Connect and Execute
//! (MS-OXCMAPIHTTP 3.2.5). Every request is first decided synchronously by
//! [`MapiFrontEnd::process`], which does no I/O apart from taking the store lock. Only
//! the framing of the response and the parking of a NotificationWait are asynchronous. Time comes from
//! the emulator's clock, so a context expiry or a five-minute NotificationWait runs in
//! milliseconds in a test that advances a `ManualClock`.
//!
//! By default the front end follows the specification. [`Quirks`] has one named switch
//! per behaviour observed on a real open-source server, so a client can be tested
//! against each of them: its response-code numbering, its cookie names, sequence drift,
//! foreign replica ids, deletions reported only as "no longer in scope", notifications
//! out of order after RopPending, and its keep-alive framing.
//!
//! Messages carry recipients and file attachments (afByValue) read and written with the
//! attachment ROPs and property streams. Known gap: the address book serves only Bind,
//! Unbind and PING.
//!
//! [`Store`]: crate::store::Store

mod attachments;
mod context;
mod folder_import;
mod ics;
mod props;
mod recipients;
mod restrict;
mod rops;
mod streams;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use exmux_core::Secret;
use exmux_core::auth::BoxFuture;
use exmux_mapihttp::body::{
    BindRequest, BindSuccess, ConnectRequest, ConnectSuccess, DisconnectRequest, ErrorCodeSuccess,
    ExecuteRequest, ExecuteSuccess, NotificationWaitRequest, NotificationWaitSuccess, Response,
    UnbindRequest, WireBody, execute_flags,
};
use exmux_mapihttp::ext::{self, EncodeOptions};
use exmux_mapihttp::http::{CONTENT_TYPE_MAPI, names};
use exmux_mapihttp::rop::{self, RopBuffer, RopResponse, error_code};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue, StatusCode};
use tracing::{debug, warn};

use crate::server::{
    EmuRequest, EmuResponse, EmulatorHandle, Handler, MAPI_EMSMDB_PATH, MAPI_NSPI_PATH,
    RequestContext, ResponseBody, RouteAuth, SharedState, busy_response, drop_connection_response,
};
use crate::store::FrontEndFault;

use context::{Context, Contexts};

/// The real-server behaviours the front end can act out instead of the specification's.
/// Every switch is off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Quirks {
    /// `gromox_cookies`: name the session cookies `sid` and `sequence` instead of
    /// Exchange's `MapiContext` and `MapiSequence`.
    pub gromox_cookies: bool,
    /// `own_response_codes`: number X-ResponseCode as the open-source server does (1
    /// missing request type, 2 context gone, 6 no cookies, 7 stale sequence, 8 unknown
    /// request type) instead of the specification's table (MS-OXCMAPIHTTP 2.2.3.3.3).
    pub own_response_codes: bool,
    /// `sequence_drift`: after a request is rejected, move the context's sequence on
    /// without telling the client (no Set-Cookie), so its next Execute fails as stale and
    /// only a Connect with the old cookies recovers the context.
    pub sequence_drift: bool,
    /// `foreign_logon_replica`: return from RopLogon with replica id 5 and a GUID of its own,
    /// while every FID and MID keeps replica id 1, whose GUID only RopLongTermIdFromId
    /// reveals.
    pub foreign_logon_replica: bool,
    /// `deletions_as_out_of_scope`: report deletions in an ICS download only in
    /// MetaTagIdsetNoLongerInScope, with no MetaTagIdsetDeleted.
    pub deletions_as_out_of_scope: bool,
    /// `notify_out_of_order`: after a RopPending, deliver the remaining notifications of
    /// the context in reverse order.
    pub notify_out_of_order: bool,
    /// `gromox_framing`: send keep-alives as a bare `PENDING` without a line end, repeat
    /// `PROCESSING` before `DONE`, and give X-ElapsedTime in seconds.
    pub gromox_framing: bool,
}

impl Quirks {
    /// Returns every switch on: the open-source server of the captures as closely as the front
    /// end can act it out.
    pub fn gromox() -> Quirks {
        Quirks {
            gromox_cookies: true,
            own_response_codes: true,
            sequence_drift: true,
            foreign_logon_replica: true,
            deletions_as_out_of_scope: true,
            notify_out_of_order: true,
            gromox_framing: true,
        }
    }
}

/// Settings of a MAPI front end.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MapiOptions {
    /// The real-server behaviours to act out.
    pub quirks: Quirks,
    /// X-PendingPeriod: time between PENDING keep-alives of a parked NotificationWait.
    /// Default 30 s (MS-OXCMAPIHTTP 2.2.3.3.5).
    pub pending_period: Duration,
    /// X-ExpirationInfo: a context without requests for this long is gone. Default 15
    /// minutes, as the captured server announced.
    pub expiration: Duration,
    /// The maximum time a NotificationWait is held without events. Default 5 minutes
    /// (MS-OXCRPC 3.3.4.1, EcDoAsyncWaitEx).
    pub notification_wait: Duration,
    /// The most RopNotify entries appended to one Execute response; the rest wait behind
    /// a RopPending. Default 64.
    pub max_notifications_per_response: usize,
    /// How often a parked NotificationWait looks at the clock and the queues, in real
    /// time. Default 5 ms.
    pub wait_poll: Duration,
    /// X-ServerApplication.
    pub server_application: String,
    /// The largest response ROP buffer, in bytes, that one Execute returns before it
    /// ends with RopBufferTooSmall (MS-OXCROPS 2.2.15.1); the request's MaxRopOut
    /// lowers it further. Default 0xFFFF, the most one extended-buffer segment carries.
    pub max_rop_out: u32,
}

impl Default for MapiOptions {
    fn default() -> Self {
        MapiOptions {
            quirks: Quirks::default(),
            pending_period: Duration::from_secs(30),
            expiration: Duration::from_secs(900),
            notification_wait: Duration::from_secs(300),
            max_notifications_per_response: 64,
            wait_poll: Duration::from_millis(5),
            server_application: "Exchange/15.02.1544.004".to_owned(),
            max_rop_out: u32::from(u16::MAX),
        }
    }
}

/// Faults a test arms on the front end; each fires once per arming, on the next request
/// it applies to.
#[derive(Debug, Default)]
pub struct MapiFaults {
    armed: Mutex<Armed>,
}

#[derive(Debug, Default)]
struct Armed {
    expire_next: u32,
    stale_next: u32,
    busy_next: Vec<Duration>,
    drop_wait_next: u32,
}

impl MapiFaults {
    /// Expires the context of the next request that names one, as if it had been idle
    /// past X-ExpirationInfo: that request gets "context not found".
    pub fn expire_next_context(&self) {
        lock(&self.armed).expire_next += 1;
    }

    /// Rejects the next sequenced request (Connect excluded) as carrying a stale sequence
    /// cookie.
    pub fn stale_next_sequence(&self) {
        lock(&self.armed).stale_next += 1;
    }

    /// Rejects the next request as "server busy" (HTTP 503 with Retry-After), asking the
    /// client to wait `back_off`.
    pub fn server_busy_next(&self, back_off: Duration) {
        lock(&self.armed).busy_next.push(back_off);
    }

    /// Closes the connection of the next NotificationWait without a response.
    pub fn drop_next_notification_wait(&self) {
        lock(&self.armed).drop_wait_next += 1;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The reason a request was rejected at the HTTP level, mapped to an X-ResponseCode by
/// [`Failure::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The HTTP method is not POST.
    InvalidVerb,
    /// X-RequestType is absent.
    MissingRequestType,
    /// X-RequestType names no request of this endpoint.
    UnknownRequestType,
    /// X-RequestId or X-ClientInfo is absent.
    MissingHeader,
    /// The request carries no context cookie.
    MissingCookie,
    /// The context cookie names no live context (never made, disconnected or expired).
    ContextNotFound,
    /// The sequence cookie is not the context's current one.
    StaleSequence,
    /// The body does not decode.
    InvalidBody,
}

impl Failure {
    /// Returns the X-ResponseCode of this failure: the specification's number
    /// (MS-OXCMAPIHTTP 2.2.3.3.3), or with `own_numbering` the open-source server's.
    pub fn code(self, own_numbering: bool) -> u32 {
        if own_numbering {
            // NOTE: missing header and invalid body were not observed on that server;
            // 4 and 12 are kept from the specification for them.
            return match self {
                // NOTE: that server's code for a method other than POST was not observed;
                // 2 is kept from the specification.
                Failure::InvalidVerb => 2,
                Failure::MissingRequestType => 1,
                Failure::ContextNotFound => 2,
                Failure::MissingCookie => 6,
                Failure::StaleSequence => 7,
                Failure::UnknownRequestType => 8,
                Failure::MissingHeader => 4,
                Failure::InvalidBody => 12,
            };
        }
        match self {
            Failure::InvalidVerb => 2,
            Failure::MissingRequestType | Failure::MissingHeader => 7,
            Failure::UnknownRequestType => 5,
            Failure::MissingCookie => 13,
            Failure::ContextNotFound => 10,
            Failure::StaleSequence => 15,
            Failure::InvalidBody => 12,
        }
    }
}

/// The endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/mapi/emsmdb/`.
    Emsmdb,
    /// `/mapi/nspi/`.
    Nspi,
}

/// The parts of a request that [`MapiFrontEnd::process`] reads.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// X-RequestType, if present.
    pub request_type: Option<String>,
    /// Whether X-RequestId and X-ClientInfo are both present.
    pub has_ids: bool,
    /// The request's cookies by name.
    pub cookies: HashMap<String, Secret>,
    /// The body.
    pub body: Bytes,
}

impl Incoming {
    /// Reads the parts the front end needs from an HTTP request.
    pub fn from_request(endpoint: Endpoint, request: &EmuRequest) -> Incoming {
        let headers = request.headers();
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let mut cookies = HashMap::new();
        for value in headers.get_all(COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            for pair in value.split(';') {
                if let Some((name, value)) = pair.split_once('=') {
                    cookies.insert(name.trim().to_owned(), Secret::new(value.trim()));
                }
            }
        }
        Incoming {
            endpoint,
            request_type: text(names::X_REQUEST_TYPE).map(str::to_owned),
            has_ids: text(names::X_REQUEST_ID).is_some() && text(names::X_CLIENT_INFO).is_some(),
            cookies,
            body: request.body().clone(),
        }
    }
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// X-ResponseCode 0: the binary body (empty for PING) after the preamble.
    Reply {
        /// Cookies to set.
        set_cookies: Vec<(String, Secret)>,
        /// The binary body.
        body: Vec<u8>,
    },
    /// A non-zero X-ResponseCode with a short diagnostic text.
    Rejected {
        /// The failure.
        failure: Failure,
        /// The X-ResponseCode.
        code: u32,
    },
    /// A NotificationWait to park on a context.
    Wait {
        /// The context.
        context: u64,
        /// Cookies to set.
        set_cookies: Vec<(String, Secret)>,
    },
    /// Respond with "server busy".
    Busy(Duration),
    /// Close the connection without a response.
    Drop,
}

/// The MAPI/HTTP front end: a [`Handler`] for both endpoints.
#[derive(Debug)]
pub struct MapiFrontEnd {
    state: Arc<SharedState>,
    options: MapiOptions,
    contexts: Mutex<Contexts>,
    shared: Mutex<rops::Shared>,
    faults: MapiFaults,
    /// Execute requests that ran a ROP batch.
    executes: AtomicU64,
    /// Execute responses that ended with RopBufferTooSmall.
    too_small: AtomicU64,
}

impl MapiFrontEnd {
    /// Creates a front end over the emulator's shared state.
    pub fn new(state: Arc<SharedState>, options: MapiOptions) -> Arc<MapiFrontEnd> {
        Arc::new(MapiFrontEnd {
            state,
            options,
            contexts: Mutex::new(Contexts::default()),
            shared: Mutex::new(rops::Shared::default()),
            faults: MapiFaults::default(),
            executes: AtomicU64::new(0),
            too_small: AtomicU64::new(0),
        })
    }

    /// Creates a front end and mounts it under [`MAPI_EMSMDB_PATH`] and
    /// [`MAPI_NSPI_PATH`] of a running emulator, replacing what was there. The emulator
    /// starts with a default front end mounted; mount another one to switch quirks on or
    /// to reach its fault switches.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), exmux_emulator::server::EmulatorError> {
    /// use exmux_emulator::mapi::{MapiFrontEnd, MapiOptions, Quirks};
    /// use exmux_emulator::server::{Emulator, EmulatorOptions};
    ///
    /// let emulator = Emulator::start(EmulatorOptions::default()).await?;
    /// let mut options = MapiOptions::default();
    /// options.quirks = Quirks::gromox();
    /// let front = MapiFrontEnd::mount(&emulator, options);
    /// front.faults().expire_next_context();
    /// # Ok(())
    /// # }
    /// ```
    pub fn mount(handle: &EmulatorHandle, options: MapiOptions) -> Arc<MapiFrontEnd> {
        let front = MapiFrontEnd::new(Arc::clone(handle.state()), options);
        handle.mount(
            MAPI_EMSMDB_PATH,
            RouteAuth::Required,
            Arc::new(EndpointHandler {
                front: Arc::clone(&front),
                endpoint: Endpoint::Emsmdb,
            }),
        );
        handle.mount(
            MAPI_NSPI_PATH,
            RouteAuth::Required,
            Arc::new(EndpointHandler {
                front: Arc::clone(&front),
                endpoint: Endpoint::Nspi,
            }),
        );
        front
    }

    /// Returns the fault switches of this front end.
    pub fn faults(&self) -> &MapiFaults {
        &self.faults
    }

    /// Returns the options this front end runs with.
    pub fn options(&self) -> &MapiOptions {
        &self.options
    }

    /// Returns how many Execute requests ran a ROP batch, and how many of those
    /// responses ended with RopBufferTooSmall.
    pub fn execute_counts(&self) -> (u64, u64) {
        (
            self.executes.load(Ordering::Relaxed),
            self.too_small.load(Ordering::Relaxed),
        )
    }

    /// Returns the number of live session contexts (both endpoints).
    pub fn context_count(&self) -> usize {
        lock(&self.contexts).len()
    }

    /// Returns the store session of a context, by context cookie value, so a test can inject
    /// store faults (such as `Store::expire_session`) aimed at one MAPI context.
    pub fn store_session(&self, context_cookie: &str) -> Option<crate::store::SessionId> {
        lock(&self.contexts)
            .by_cookie(&Secret::new(context_cookie))
            .map(|context| context.session)
    }

    fn cookie_names(&self) -> (&'static str, &'static str) {
        if self.options.quirks.gromox_cookies {
            ("sid", "sequence")
        } else {
            ("MapiContext", "MapiSequence")
        }
    }

    fn reject(&self, failure: Failure) -> Outcome {
        Outcome::Rejected {
            failure,
            code: failure.code(self.options.quirks.own_response_codes),
        }
    }

    /// Decides one request: checks headers, cookies, sequence and expiry, runs it against
    /// the store, and returns the response to send. A NotificationWait that finds nothing
    /// queued comes back as [`Outcome::Wait`] for the caller to park.
    pub fn process(&self, incoming: &Incoming) -> Outcome {
        let now = self.state.clock.now_millis();
        let Some(request_type) = incoming.request_type.as_deref() else {
            return self.reject(Failure::MissingRequestType);
        };
        let kind = RequestKind::parse(incoming.endpoint, request_type);
        let Some(kind) = kind else {
            let mut contexts = lock(&self.contexts);
            self.drift(&mut contexts, incoming);
            return self.reject(Failure::UnknownRequestType);
        };
        if !incoming.has_ids {
            return self.reject(Failure::MissingHeader);
        }

        {
            let mut armed = lock(&self.faults.armed);
            if !armed.busy_next.is_empty() {
                return Outcome::Busy(armed.busy_next.remove(0));
            }
            if kind == RequestKind::NotificationWait && armed.drop_wait_next > 0 {
                armed.drop_wait_next -= 1;
                return Outcome::Drop;
            }
        }

        let mut contexts = lock(&self.contexts);
        let expiration = u64::try_from(self.options.expiration.as_millis()).unwrap_or(u64::MAX);
        let expired = contexts.expire_idle(now, expiration);
        if !expired.is_empty() {
            let mut store = lock(&self.state.store);
            for context in expired {
                context.close(&mut store);
            }
        }

        if matches!(kind, RequestKind::Connect | RequestKind::Bind) {
            return self.connect(&mut contexts, incoming, kind, now);
        }

        let (context_name, sequence_name) = self.cookie_names();
        let Some(cookie) = incoming.cookies.get(context_name) else {
            return self.reject(Failure::MissingCookie);
        };
        if lock(&self.faults.armed).expire_next > 0
            && let Some(context) = contexts.remove_by_cookie(cookie)
        {
            lock(&self.faults.armed).expire_next -= 1;
            context.close(&mut lock(&self.state.store));
        }
        let drift_token = contexts.fresh_token();
        let Some(context) = contexts.by_cookie_mut(cookie) else {
            return self.reject(Failure::ContextNotFound);
        };
        {
            let mut store = lock(&self.state.store);
            match store.take_front_end_fault(context.session) {
                Some(FrontEndFault::ServerBusy { back_off }) => return Outcome::Busy(back_off),
                Some(FrontEndFault::DropConnection) => return Outcome::Drop,
                _ => {}
            }
            if store
                .session(context.session)
                .is_none_or(|session| session.expired)
            {
                drop(store);
                if let Some(context) = contexts.remove_by_cookie(cookie) {
                    context.close(&mut lock(&self.state.store));
                }
                return self.reject(Failure::ContextNotFound);
            }
        }
        context.last_activity = now;

        let sequenced = matches!(kind, RequestKind::Execute | RequestKind::Disconnect);
        if sequenced {
            let stale_fault = {
                let mut armed = lock(&self.faults.armed);
                let fire = armed.stale_next > 0;
                if fire {
                    armed.stale_next -= 1;
                }
                fire
            };
            let sent = incoming.cookies.get(sequence_name);
            if stale_fault || sent != Some(&context.sequence) {
                debug!(
                    context = context.id,
                    "MAPI request with a stale sequence cookie"
                );
                if self.options.quirks.sequence_drift {
                    context.sequence = drift_token;
                }
                return self.reject(Failure::StaleSequence);
            }
        }

        match kind {
            RequestKind::Execute => self.execute(&mut contexts, cookie, incoming),
            RequestKind::Disconnect | RequestKind::Unbind => {
                self.disconnect(&mut contexts, cookie, incoming, kind)
            }
            RequestKind::Ping => Outcome::Reply {
                set_cookies: vec![(context_name.to_owned(), cookie.clone())],
                body: Vec::new(),
            },
            RequestKind::NotificationWait => {
                if NotificationWaitRequest::decode(&incoming.body).is_err() {
                    return self.reject(Failure::InvalidBody);
                }
                let id = context.id;
                Outcome::Wait {
                    context: id,
                    set_cookies: vec![(context_name.to_owned(), cookie.clone())],
                }
            }
            RequestKind::Connect | RequestKind::Bind => self.reject(Failure::UnknownRequestType),
        }
    }

    /// Acts out `sequence_drift` for a rejected request that named a live context.
    fn drift(&self, contexts: &mut Contexts, incoming: &Incoming) {
        if !self.options.quirks.sequence_drift {
            return;
        }
        let (context_name, _) = self.cookie_names();
        let Some(cookie) = incoming.cookies.get(context_name) else {
            return;
        };
        let token = contexts.fresh_token();
        if let Some(context) = contexts.by_cookie_mut(cookie) {
            warn!(
                context = context.id,
                "sequence_drift quirk: the context's sequence moved on without a Set-Cookie"
            );
            context.sequence = token;
        }
    }

    fn connect(
        &self,
        contexts: &mut Contexts,
        incoming: &Incoming,
        kind: RequestKind,
        now: u64,
    ) -> Outcome {
        let body = match kind {
            RequestKind::Bind => {
                if BindRequest::decode(&incoming.body).is_err() {
                    return self.reject(Failure::InvalidBody);
                }
                let success = BindSuccess {
                    error_code: 0,
                    server_guid: self.state.mailbox.mailbox_guid,
                    aux: Vec::new(),
                };
                Response::Success(success).encode()
            }
            _ => {
                let Ok(request) = ConnectRequest::decode(&incoming.body) else {
                    return self.reject(Failure::InvalidBody);
                };
                if !self.user_dn_matches(&request.user_dn) {
                    // A real server reports an unknown UserDn in the success layout with
                    // a non-zero ErrorCode and sets no cookies.
                    let success = ConnectSuccess {
                        error_code: 0x8004_0115,
                        polls_max: 0,
                        retry_count: 0,
                        retry_delay: 0,
                        dn_prefix: String::new(),
                        display_name: String::new(),
                        aux: Vec::new(),
                    };
                    return match Response::Success(success).encode() {
                        Ok(body) => Outcome::Reply {
                            set_cookies: Vec::new(),
                            body,
                        },
                        Err(_) => self.reject(Failure::InvalidBody),
                    };
                }
                let success = ConnectSuccess {
                    error_code: 0,
                    polls_max: 60_000,
                    retry_count: 6,
                    retry_delay: 10_000,
                    dn_prefix: String::new(),
                    display_name: self.state.mailbox.address.clone(),
                    aux: Vec::new(),
                };
                Response::Success(success).encode()
            }
        };
        let Ok(body) = body else {
            return self.reject(Failure::InvalidBody);
        };

        // Connect with the cookies of an old context tears that context down and makes a
        // new one, whatever its sequence (MS-OXCMAPIHTTP 3.2.5.6).
        let (context_name, sequence_name) = self.cookie_names();
        let mut store = lock(&self.state.store);
        if let Some(old) = incoming
            .cookies
            .get(context_name)
            .and_then(|cookie| contexts.remove_by_cookie(cookie))
        {
            old.close(&mut store);
        }
        let label = match kind {
            RequestKind::Bind => "mapi nspi",
            _ => "mapi emsmdb",
        };
        let session = store.open_session(label);
        drop(store);
        let context = contexts.create(session, kind == RequestKind::Bind, now);
        Outcome::Reply {
            set_cookies: vec![
                (context_name.to_owned(), context.cookie.clone()),
                (sequence_name.to_owned(), context.sequence.clone()),
            ],
            body,
        }
    }

    fn user_dn_matches(&self, user_dn: &str) -> bool {
        let local = self
            .state
            .mailbox
            .address
            .split('@')
            .next()
            .unwrap_or_default();
        let last = user_dn.rsplit("cn=").next().unwrap_or(user_dn);
        user_dn.is_empty()
            || last
                .to_ascii_lowercase()
                .ends_with(&local.to_ascii_lowercase())
            || last.eq_ignore_ascii_case(&self.state.mailbox.address)
            || user_dn.eq_ignore_ascii_case(&self.legacy_dn())
    }

    /// Returns the user's legacy DN as this emulator hands it out.
    pub fn legacy_dn(&self) -> String {
        legacy_dn(&self.state.mailbox.address)
    }

    fn disconnect(
        &self,
        contexts: &mut Contexts,
        cookie: &Secret,
        incoming: &Incoming,
        kind: RequestKind,
    ) -> Outcome {
        let decoded = match kind {
            RequestKind::Unbind => UnbindRequest::decode(&incoming.body).map(|_| ()),
            _ => DisconnectRequest::decode(&incoming.body).map(|_| ()),
        };
        if decoded.is_err() {
            return self.reject(Failure::InvalidBody);
        }
        let (context_name, sequence_name) = self.cookie_names();
        let Some(context) = contexts.remove_by_cookie(cookie) else {
            return self.reject(Failure::ContextNotFound);
        };
        let sequence = context.sequence.clone();
        context.close(&mut lock(&self.state.store));
        // The captured server answered Unbind with 1 for success.
        let error_code =
            u32::from(kind == RequestKind::Unbind && self.options.quirks.own_response_codes);
        match Response::Success(ErrorCodeSuccess {
            error_code,
            aux: Vec::new(),
        })
        .encode()
        {
            Ok(body) => Outcome::Reply {
                set_cookies: vec![
                    (context_name.to_owned(), cookie.clone()),
                    (sequence_name.to_owned(), sequence),
                ],
                body,
            },
            Err(_) => self.reject(Failure::InvalidBody),
        }
    }

    fn execute(&self, contexts: &mut Contexts, cookie: &Secret, incoming: &Incoming) -> Outcome {
        let Ok(request) = ExecuteRequest::decode(&incoming.body) else {
            return self.reject(Failure::InvalidBody);
        };
        let new_sequence = contexts.fresh_token();
        let Some(context) = contexts.by_cookie_mut(cookie) else {
            return self.reject(Failure::ContextNotFound);
        };
        let options = EncodeOptions {
            compress: request.flags & execute_flags::NO_COMPRESSION == 0,
            xor: request.flags & execute_flags::NO_XOR_MAGIC == 0,
        };

        // The response goes out as one extended-buffer segment, whose u16 Size caps it;
        // a batch with more output ends with RopBufferTooSmall instead of being chained.
        let rop_out = self.run_rops(context, &request);
        let (error_code, rop_buffer) = match rop_out {
            Ok(bytes) => match ext::encode_chain(&[&bytes], options) {
                Ok(buffer) => (0, buffer),
                Err(_) => (error_code::BUFFER_TOO_SMALL, Vec::new()),
            },
            Err(code) => (code, Vec::new()),
        };
        context.sequence = new_sequence;
        let (context_name, sequence_name) = self.cookie_names();
        let set_cookies = vec![
            (context_name.to_owned(), cookie.clone()),
            (sequence_name.to_owned(), context.sequence.clone()),
        ];
        let success = ExecuteSuccess {
            error_code,
            flags: 0,
            rop_buffer,
            aux: Vec::new(),
        };
        match Response::Success(success).encode() {
            Ok(body) => Outcome::Reply { set_cookies, body },
            Err(_) => self.reject(Failure::InvalidBody),
        }
    }

    /// Runs the ROP batch of an Execute and returns the response ROP buffer, or the
    /// Execute ErrorCode that fails the whole batch.
    fn run_rops(&self, context: &mut Context, request: &ExecuteRequest) -> Result<Vec<u8>, u32> {
        let payload = ext::decode_payload(&request.rop_buffer).map_err(|error| {
            debug!(%error, "Execute with a malformed extended buffer");
            error_code::RPC_FORMAT
        })?;
        let batch = rop::decode_request_buffer(&payload).map_err(|error| {
            debug!(%error, "Execute with a malformed ROP buffer");
            error_code::RPC_FORMAT
        })?;
        let mut store = lock(&self.state.store);
        let mut shared = lock(&self.shared);
        let mut env = rops::Env {
            store: &mut store,
            shared: &mut shared,
            quirks: self.options.quirks,
            mailbox: &self.state.mailbox,
        };
        let limit = usize::try_from(request.max_rop_out.min(self.options.max_rop_out))
            .unwrap_or(usize::MAX)
            .min(usize::from(u16::MAX));
        let mut output = rops::execute_batch(context, &mut env, batch, limit);
        self.executes.fetch_add(1, Ordering::Relaxed);
        if matches!(output.rops.last(), Some(RopResponse::BufferTooSmall { .. })) {
            self.too_small.fetch_add(1, Ordering::Relaxed);
        }
        context.collect_notices(&mut store, &shared.keys);
        self.append_notifications(context, &mut output, limit);
        // A response field over its wire limit is a bug in the emulator, not the client.
        // Returning a format error logs it and keeps the connection usable.
        rop::try_encode_response_buffer(&output).map_err(|error| {
            warn!(%error, "a ROP response cannot be encoded");
            error_code::RPC_FORMAT
        })
    }

    /// Appends queued RopNotify entries while they fit in `limit` bytes, then RopPending
    /// when some stay queued. A response that ends with RopBufferTooSmall gets neither,
    /// because that ROP must stay the last response (MS-OXCROPS 2.2.15.1), so the
    /// notifications wait for the next Execute.
    fn append_notifications(
        &self,
        context: &mut Context,
        output: &mut RopBuffer<RopResponse>,
        limit: usize,
    ) {
        if output
            .rops
            .iter()
            .any(|rop| matches!(rop, RopResponse::BufferTooSmall { .. }))
        {
            return;
        }
        let max = self.options.max_notifications_per_response.max(1);
        // RopSize, the handle table, the responses so far and room for RopPending.
        let mut used = 2
            + 4 * output.handles.len()
            + output.rops.iter().map(rops::encoded_len).sum::<usize>()
            + 3;
        let mut appended = 0;
        while appended < max {
            let Some(size) = context.queued.front().map(rops::encoded_len) else {
                break;
            };
            if used + size > limit {
                break;
            }
            let Some(notify) = context.queued.pop_front() else {
                break;
            };
            output.rops.push(notify);
            used += size;
            appended += 1;
        }
        if !context.queued.is_empty() {
            output.rops.push(RopResponse::Pending {
                session_index: context.session_index,
            });
            if self.options.quirks.notify_out_of_order {
                warn!(
                    context = context.id,
                    "notify_out_of_order quirk: the notifications after RopPending come reversed"
                );
                context.queued.make_contiguous().reverse();
            }
        }
    }

    /// Returns whether the context of a parked NotificationWait has notifications, or `None` when
    /// the context is gone.
    fn has_events(&self, context_id: u64) -> Option<bool> {
        let mut contexts = lock(&self.contexts);
        let context = contexts.by_id_mut(context_id)?;
        let mut store = lock(&self.state.store);
        let shared = lock(&self.shared);
        context.collect_notices(&mut store, &shared.keys);
        Some(!context.queued.is_empty())
    }

    fn touch(&self, context_id: u64) {
        let now = self.state.clock.now_millis();
        if let Some(context) = lock(&self.contexts).by_id_mut(context_id) {
            context.last_activity = now;
        }
    }

    async fn respond(self: Arc<Self>, endpoint: Endpoint, request: EmuRequest) -> EmuResponse {
        let incoming = Incoming::from_request(endpoint, &request);
        let started = self.state.clock.now_millis();
        let outcome = if request.method() == http::Method::POST {
            self.process(&incoming)
        } else {
            self.reject(Failure::InvalidVerb)
        };
        let echo = EchoHeaders::from(request.headers(), incoming.request_type.as_deref());
        match outcome {
            Outcome::Busy(back_off) => busy_response(back_off),
            Outcome::Drop => drop_connection_response(),
            Outcome::Rejected { failure, code } => self.rejected_response(&echo, failure, code),
            Outcome::Reply { set_cookies, body } => {
                let (sender, stream) = ResponseBody::channel(4);
                let response = self.success_head(&echo, &set_cookies, stream);
                let tail = self.final_chunk(started, &body);
                tokio::spawn(async move {
                    if sender
                        .send(Bytes::from_static(b"PROCESSING\r\n"))
                        .await
                        .is_ok()
                    {
                        let _ = sender.send(Bytes::from(tail)).await;
                    }
                });
                response
            }
            Outcome::Wait {
                context,
                set_cookies,
            } => {
                let (sender, stream) = ResponseBody::channel(4);
                let response = self.success_head(&echo, &set_cookies, stream);
                let front = Arc::clone(&self);
                tokio::spawn(async move {
                    front.park(context, started, sender).await;
                });
                response
            }
        }
    }

    /// Holds a NotificationWait until the context has notifications, the wait's limit
    /// passes on the clock, the emulator shuts down or the client goes away, writing one
    /// PENDING per X-PendingPeriod of clock time meanwhile.
    async fn park(&self, context: u64, started: u64, sender: crate::server::ChunkSender) {
        if sender
            .send(Bytes::from_static(b"PROCESSING\r\n"))
            .await
            .is_err()
        {
            return;
        }
        let limit = u64::try_from(self.options.notification_wait.as_millis()).unwrap_or(u64::MAX);
        let period = u64::try_from(self.options.pending_period.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut keep_alives_sent = 0_u64;
        let event_pending = loop {
            let now = self.state.clock.now_millis();
            match self.has_events(context) {
                Some(true) => break 1,
                None => break 0,
                Some(false) => {}
            }
            let elapsed = now.saturating_sub(started);
            if elapsed >= limit || self.state.shutdown.is_cancelled() {
                break 0;
            }
            let due = elapsed / period;
            while keep_alives_sent < due {
                // The context stays alive while its NotificationWait is parked.
                self.touch(context);
                let keep_alive: &'static [u8] = if self.options.quirks.gromox_framing {
                    b"PENDING"
                } else {
                    b"PENDING\r\n"
                };
                if sender.send(Bytes::from_static(keep_alive)).await.is_err() {
                    return;
                }
                keep_alives_sent += 1;
            }
            tokio::select! {
                () = tokio::time::sleep(self.options.wait_poll) => {}
                () = sender.closed() => return,
                () = self.state.shutdown.cancelled() => {}
            }
        };
        self.touch(context);
        let body = Response::Success(NotificationWaitSuccess {
            error_code: 0,
            event_pending,
            aux: Vec::new(),
        })
        .encode()
        .unwrap_or_default();
        let tail = self.final_chunk(started, &body);
        let _ = sender.send(Bytes::from(tail)).await;
    }

    /// Builds the last chunk of a success response: DONE, the additional headers
    /// (MS-OXCMAPIHTTP 2.2.3.3.7 and 2.2.3.3.8), the empty line and the binary body.
    fn final_chunk(&self, started: u64, body: &[u8]) -> Vec<u8> {
        let elapsed_ms = self.state.clock.now_millis().saturating_sub(started);
        let mut tail = Vec::with_capacity(body.len() + 96);
        let elapsed = if self.options.quirks.gromox_framing {
            // That server repeats PROCESSING before DONE and counts X-ElapsedTime in
            // seconds.
            tail.extend_from_slice(b"PROCESSING\r\n");
            elapsed_ms / 1000
        } else {
            elapsed_ms
        };
        tail.extend_from_slice(b"DONE\r\n");
        tail.extend_from_slice(
            format!(
                "X-ElapsedTime: {elapsed}\r\nX-StartTime: {}\r\n\r\n",
                http_date(started)
            )
            .as_bytes(),
        );
        tail.extend_from_slice(body);
        tail
    }

    fn common_headers(&self, headers: &mut HeaderMap, echo: &EchoHeaders, code: u32) {
        for (name, value) in [
            (names::X_REQUEST_TYPE, &echo.request_type),
            (names::X_REQUEST_ID, &echo.request_id),
            (names::X_CLIENT_INFO, &echo.client_info),
        ] {
            if let Some(value) = value {
                headers.insert(name, value.clone());
            }
        }
        headers.insert(names::X_RESPONSE_CODE, HeaderValue::from(code));
        headers.insert(
            names::X_PENDING_PERIOD,
            HeaderValue::from(
                u64::try_from(self.options.pending_period.as_millis()).unwrap_or(u64::MAX),
            ),
        );
        headers.insert(
            names::X_EXPIRATION_INFO,
            HeaderValue::from(
                u64::try_from(self.options.expiration.as_millis()).unwrap_or(u64::MAX),
            ),
        );
        if let Ok(value) = HeaderValue::from_str(&self.options.server_application) {
            headers.insert(names::X_SERVER_APPLICATION, value);
        }
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private"));
    }

    fn success_head(
        &self,
        echo: &EchoHeaders,
        set_cookies: &[(String, Secret)],
        body: ResponseBody,
    ) -> EmuResponse {
        let mut response = http::Response::new(body);
        let headers = response.headers_mut();
        self.common_headers(headers, echo, 0);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_MAPI));
        for (name, value) in set_cookies {
            if let Ok(value) =
                HeaderValue::from_str(&format!("{name}={}; path=/mapi/", value.expose()))
            {
                headers.append(SET_COOKIE, value);
            }
        }
        response
    }

    fn rejected_response(&self, echo: &EchoHeaders, failure: Failure, code: u32) -> EmuResponse {
        let text = format!(
            "<html><head><title>MAPI over HTTP error</title></head><body>X-ResponseCode {code}: {failure:?}</body></html>"
        );
        let mut response = http::Response::new(ResponseBody::from(text));
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        // The server with its own numbering echoes no request headers on an error reply.
        let no_echo = EchoHeaders {
            request_type: None,
            request_id: None,
            client_info: None,
        };
        let echo = if self.options.quirks.own_response_codes {
            &no_echo
        } else {
            echo
        };
        self.common_headers(headers, echo, code);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
        response
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestKind {
    Connect,
    Execute,
    Disconnect,
    NotificationWait,
    Ping,
    Bind,
    Unbind,
}

impl RequestKind {
    fn parse(endpoint: Endpoint, value: &str) -> Option<RequestKind> {
        let known: &[(&str, RequestKind)] = match endpoint {
            Endpoint::Emsmdb => &[
                ("Connect", RequestKind::Connect),
                ("Execute", RequestKind::Execute),
                ("Disconnect", RequestKind::Disconnect),
                ("NotificationWait", RequestKind::NotificationWait),
                ("PING", RequestKind::Ping),
            ],
            // NOTE: the address book answers only Bind, Unbind and PING; name lookups
            // (GetMatches, ResolveNames and the rest) are refused as unknown.
            Endpoint::Nspi => &[
                ("Bind", RequestKind::Bind),
                ("Unbind", RequestKind::Unbind),
                ("PING", RequestKind::Ping),
            ],
        };
        known
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(value))
            .map(|(_, kind)| *kind)
    }
}

struct EchoHeaders {
    request_type: Option<HeaderValue>,
    request_id: Option<HeaderValue>,
    client_info: Option<HeaderValue>,
}

impl EchoHeaders {
    fn from(headers: &HeaderMap, request_type: Option<&str>) -> EchoHeaders {
        EchoHeaders {
            request_type: request_type.and_then(|value| HeaderValue::from_str(value).ok()),
            request_id: headers.get(names::X_REQUEST_ID).cloned(),
            client_info: headers.get(names::X_CLIENT_INFO).cloned(),
        }
    }
}

/// Mounts a front end with default options under both MAPI/HTTP paths of a routing
/// table; the server calls this at start.
pub(crate) fn mount_default(router: &mut crate::server::Router, state: &Arc<SharedState>) {
    let front = MapiFrontEnd::new(Arc::clone(state), MapiOptions::default());
    for (path, endpoint) in [
        (MAPI_EMSMDB_PATH, Endpoint::Emsmdb),
        (MAPI_NSPI_PATH, Endpoint::Nspi),
    ] {
        let handler = EndpointHandler {
            front: Arc::clone(&front),
            endpoint,
        };
        router.mount(path, RouteAuth::Required, Arc::new(handler));
    }
}

/// The handler mounted for one endpoint.
struct EndpointHandler {
    front: Arc<MapiFrontEnd>,
    endpoint: Endpoint,
}

impl Handler for EndpointHandler {
    fn handle(
        &self,
        request: EmuRequest,
        _context: RequestContext,
    ) -> BoxFuture<'static, EmuResponse> {
        let front = Arc::clone(&self.front);
        let endpoint = self.endpoint;
        Box::pin(async move { front.respond(endpoint, request).await })
    }
}

/// Returns the legacy DN this emulator gives a mailbox address: `/o=exmux/ou=Exchange
/// Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=<local part>`.
pub fn legacy_dn(address: &str) -> String {
    let local = address.split('@').next().unwrap_or(address);
    format!("/o=exmux/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn={local}")
}

/// Formats clock milliseconds as the RFC 1123 date of X-StartTime.
fn http_date(millis: u64) -> String {
    let seconds = i64::try_from(millis / 1000).unwrap_or(i64::MAX);
    let Ok(time) = time::OffsetDateTime::from_unix_timestamp(seconds) else {
        return String::new();
    };
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let day = DAYS
        .get(usize::from(time.weekday().number_days_from_monday()))
        .copied()
        .unwrap_or("Mon");
    let month = MONTHS
        .get(usize::from(u8::from(time.month())).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{day}, {:02} {month} {} {:02}:{:02}:{:02} GMT",
        time.day(),
        time.year(),
        time.hour(),
        time.minute(),
        time.second()
    )
}
