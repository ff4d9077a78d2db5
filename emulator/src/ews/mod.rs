//! The emulator's EWS front end: `/EWS/Exchange.asmx` served from the mailbox store.
//!
//! Every operation exmux's EWS client uses is implemented on the [`Store`]: folders
//! (GetFolder, FindFolder, CreateFolder, UpdateFolder, MoveFolder, DeleteFolder,
//! SyncFolderHierarchy), items (FindItem, GetItem, CreateItem, UpdateItem, DeleteItem,
//! MoveItem, CopyItem, SendItem, SyncFolderItems), ConvertId, and notifications
//! (Subscribe, GetEvents, GetStreamingEvents, Unsubscribe). Ids carry MAPI entry ids and
//! ChangeKeys carry XIDs in Exchange's layout (see `exmux_ews::ids`); a SyncState is the
//! store's [`SyncState`](crate::store::SyncState) in base64. Notifications include the
//! changes of the subscriber's own requests, as Exchange's do.
//!
//! Each authenticated user gets one store session, opened at its first request and
//! opened again when the store expires it.
//!
//! Faults reachable from tests:
//! - Server busy: the server's
//!   [`FaultSwitches::server_busy`](crate::server::FaultSwitches::server_busy), or the
//!   store's [`FrontEndFault::ServerBusy`] for one session, written in the
//!   [`BusyShape`] set with [`EwsFrontEnd::set_busy_shape`] (by default an HTTP 500 SOAP
//!   fault ErrorServerBusy with `BackOffMilliseconds`).
//! - ErrorServerBusy (or another throttling code) inside an HTTP 200 response message:
//!   [`EwsFrontEnd::busy_in_response_message`] and
//!   [`EwsFrontEnd::throttle_in_response_message`]; an ErrorInternalServerError whose
//!   inner code is ErrorServerBusy, also inside HTTP 200:
//!   [`EwsFrontEnd::internal_error_with_inner_busy_in_response_message`].
//! - A dropped stream: [`FaultSwitches::cut_streams`](crate::server::FaultSwitches::cut_streams)
//!   or the store's [`FrontEndFault::DropConnection`].
//! - An expired subscription: [`EwsFrontEnd::expire_subscription`].
//! - An invalid sync state: [`Store::invalidate_sync_states`].
//!
//! Each deviation of real servers that a client must survive has a switch, [`Quirk`].

mod convert;
mod error;
mod ids;
mod notify;
mod ops;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use exmux_core::auth::BoxFuture;
use exmux_ews::ops::folders::{
    CreateFolder, DeleteFolder, FindFolder, GetFolder, MoveFolder, SyncFolderHierarchy,
    UpdateFolder,
};
use exmux_ews::ops::items::{
    ConvertId, CopyItem, CreateItem, DeleteItem, GetItem, MoveItem, SendItem, UpdateItem,
};
use exmux_ews::ops::notify::{GetEvents, Subscribe, Unsubscribe};
use exmux_ews::ops::sync::{FindItem, SyncFolderItems};
use exmux_ews::types::ServerVersionInfo;
use exmux_ews::xml::Element;
use exmux_ews::{EwsServerOperation, MessageError, Response, ResponseCode, encode_response};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, StatusCode};
use tracing::{debug, warn};

use crate::server::{
    EWS_PATH, EmuRequest, EmuResponse, EmulatorHandle, Handler, RequestContext, ResponseBody,
    RouteAuth, SharedState, drop_connection_response,
};
use crate::store::{FrontEndFault, SessionId, Store, SubscriptionId};

use self::error::{ThrottledMessage, busy_fault, busy_message, request_fault};
use self::ids::IdCodec;

/// A deviation from the specification that real Exchange-compatible servers show and
/// clients must handle. The front end acts each one out while it is switched on with
/// [`EwsFrontEnd::enable`]; all are off by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Quirk {
    /// After a SOAP fault on a connection, the next request on that connection gets the
    /// response of the request before the fault: a stale HTTP 200 that puts a
    /// keep-alive client one response behind. A client that closes the connection after
    /// every fault never sees it.
    StaleResponseAfterFault,
    /// Every ModifiedEvent of an item is delivered twice, as one UpdateItem can produce
    /// several ModifiedEvents on Exchange.
    DuplicateModifiedEvents,
    /// Subscribe returns no Watermark, events carry none, and GetEvents accepts any
    /// watermark.
    NoWatermarks,
    /// Notification events carry ItemIds and FolderIds without ChangeKeys.
    NoChangeKeysInEvents,
    /// A SyncState that cannot be read is taken as empty: a full resync with no error,
    /// instead of ErrorInvalidSyncStateData.
    AcceptCorruptSyncState,
    /// Streaming responses split each SOAP envelope across two chunks, inside a tag,
    /// instead of sending one envelope per chunk.
    SplitStreamEnvelopes,
    /// Streaming responses put one envelope per event, all in one chunk.
    CoalesceStreamEnvelopes,
    /// Streaming notifications are written as `m:Notification` instead of the schema's
    /// `t:Notification`.
    MessagesNamespaceNotification,
    /// CreateItem with MimeContent stores the item as read unless the request sets
    /// IsRead to false.
    MimeItemsStoredRead,
    /// ChangeKeys are not checked: UpdateItem with a stale ChangeKey and
    /// NeverOverwrite succeeds.
    IgnoreChangeKeys,
    /// MoveItem and CopyItem return new ids only when ReturnNewItemIds is absent, and
    /// none when it is true.
    InvertReturnNewItemIds,
    /// GetStreamingEvents on a dead subscription sends its ErrorInvalidSubscription
    /// message with ConnectionStatus Closed at once but keeps the response open for 50
    /// seconds of the emulator's clock. A client must stop reading at the first Closed.
    DeadStreamHeldOpen,
    /// Every ResponseCode is surrounded by whitespace (`<m:ResponseCode>\n NoError\n`).
    PaddedResponseCodes,
    /// An invalid SyncState is reported as an HTTP 200 SOAP fault whose faultcode is
    /// `ErrorInvalidSyncStateData`, with no detail, instead of an error response message.
    InvalidSyncStateAsFault,
    /// A read-state change of an item is reported twice in one sync: as an Update of
    /// the whole item and as a ReadFlagChange.
    ReadChangeAlsoAsUpdate,
}

/// The shape of the "server busy" response when the server's busy switch or the store's
/// [`FrontEndFault::ServerBusy`] fires, as Exchange sends each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BusyShape {
    /// HTTP 500 SOAP fault ErrorServerBusy with `BackOffMilliseconds` in its detail.
    #[default]
    SoapFault,
    /// HTTP 503 with `Retry-After` in whole seconds.
    Http503,
    /// HTTP 500 SOAP fault ErrorInternalServerError whose MessageXml names the inner
    /// code ErrorServerBusy and the back-off.
    InternalErrorWithInnerBusy,
}

impl Quirk {
    /// Every quirk, in declaration order.
    pub const ALL: [Quirk; 15] = [
        Quirk::StaleResponseAfterFault,
        Quirk::DuplicateModifiedEvents,
        Quirk::NoWatermarks,
        Quirk::NoChangeKeysInEvents,
        Quirk::AcceptCorruptSyncState,
        Quirk::SplitStreamEnvelopes,
        Quirk::CoalesceStreamEnvelopes,
        Quirk::MessagesNamespaceNotification,
        Quirk::MimeItemsStoredRead,
        Quirk::IgnoreChangeKeys,
        Quirk::InvertReturnNewItemIds,
        Quirk::DeadStreamHeldOpen,
        Quirk::PaddedResponseCodes,
        Quirk::InvalidSyncStateAsFault,
        Quirk::ReadChangeAlsoAsUpdate,
    ];

    fn bit(self) -> u32 {
        let index = Quirk::ALL
            .iter()
            .position(|quirk| *quirk == self)
            .unwrap_or(0);
        1 << index
    }
}

/// The switched-on quirks at the start of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Quirks(u32);

impl Quirks {
    pub(crate) fn on(self, quirk: Quirk) -> bool {
        self.0 & quirk.bit() != 0
    }
}

/// The EWS front end: a [`Handler`] for [`EWS_PATH`] with its own subscription registry,
/// quirk switches and fault queue. Clones share all of them.
#[derive(Clone, Default)]
pub struct EwsFrontEnd {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EwsFrontEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EwsFrontEnd")
            .field("quirks", &self.inner.quirks.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
pub(crate) struct Inner {
    quirks: AtomicU32,
    /// The heartbeat interval of streaming responses in clock milliseconds; 0 means the
    /// default of 45 seconds.
    heartbeat_millis: std::sync::atomic::AtomicU64,
    sessions: Mutex<HashMap<String, SessionId>>,
    subscriptions: Mutex<HashMap<String, SubscriptionInfo>>,
    busy_messages: Mutex<VecDeque<ThrottledMessage>>,
    busy_shape: Mutex<BusyShape>,
    connections: Mutex<HashMap<u64, ConnectionMemory>>,
}

/// A subscription the front end handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SubscriptionInfo {
    pub(crate) id: SubscriptionId,
    pub(crate) streaming: bool,
}

/// The memory of one connection that [`Quirk::StaleResponseAfterFault`] needs.
#[derive(Default)]
struct ConnectionMemory {
    last_success: Option<Bytes>,
    faulted: bool,
}

/// Exchange's heartbeat interval on streaming responses.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(45);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EwsFrontEnd {
    /// Creates a front end with every quirk off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Mounts a new front end on `emulator` at [`EWS_PATH`], replacing the one it
    /// started with, and returns it so a test can switch quirks and faults.
    pub fn install(emulator: &EmulatorHandle) -> Self {
        let front_end = Self::new();
        emulator.mount(EWS_PATH, RouteAuth::Required, Arc::new(front_end.clone()));
        front_end
    }

    /// Switches `quirk` on.
    pub fn enable(&self, quirk: Quirk) {
        self.inner.quirks.fetch_or(quirk.bit(), Ordering::SeqCst);
    }

    /// Switches `quirk` off.
    pub fn disable(&self, quirk: Quirk) {
        self.inner.quirks.fetch_and(!quirk.bit(), Ordering::SeqCst);
    }

    /// Returns whether `quirk` is on.
    pub fn is_enabled(&self, quirk: Quirk) -> bool {
        self.quirks().on(quirk)
    }

    fn quirks(&self) -> Quirks {
        Quirks(self.inner.quirks.load(Ordering::SeqCst))
    }

    /// Sets the interval between heartbeats of streaming responses, measured on the
    /// emulator's clock. Default: 45 seconds, as Exchange.
    pub fn set_heartbeat_interval(&self, interval: Duration) {
        let millis = u64::try_from(interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.inner.heartbeat_millis.store(millis, Ordering::SeqCst);
    }

    /// Makes the next `count` requests get HTTP 200 responses whose one response
    /// message is ErrorServerBusy with `BackOffMilliseconds` = `back_off`, as Exchange
    /// Online does for SyncFolderItems under its concurrency policy.
    pub fn busy_in_response_message(&self, count: u32, back_off: Duration) {
        self.throttle_in_response_message(count, ResponseCode::ErrorServerBusy, Some(back_off));
    }

    /// Makes the next `count` requests get HTTP 200 responses whose one response
    /// message has the throttling `code` (ErrorServerBusy, ErrorExceededConnectionCount,
    /// ErrorTooManyObjectsOpened) and `BackOffMilliseconds` when `back_off` is given.
    pub fn throttle_in_response_message(
        &self,
        count: u32,
        code: ResponseCode,
        back_off: Option<Duration>,
    ) {
        let throttled = ThrottledMessage {
            code,
            inner: None,
            back_off,
        };
        let mut queue = lock(&self.inner.busy_messages);
        queue.extend((0..count).map(|_| throttled.clone()));
    }

    /// Makes the next `count` requests get HTTP 200 responses whose one response
    /// message is ErrorInternalServerError with the inner code ErrorServerBusy and
    /// `BackOffMilliseconds` = `back_off` in its MessageXml, the `InnerErrorResponseCode`
    /// shape Exchange uses when a failure inside a mailbox operation was throttling.
    pub fn internal_error_with_inner_busy_in_response_message(
        &self,
        count: u32,
        back_off: Duration,
    ) {
        let throttled = ThrottledMessage {
            code: ResponseCode::ErrorInternalServerError,
            inner: Some(ResponseCode::ErrorServerBusy),
            back_off: Some(back_off),
        };
        let mut queue = lock(&self.inner.busy_messages);
        queue.extend((0..count).map(|_| throttled.clone()));
    }

    /// Sets the shape of the "server busy" response. Default: [`BusyShape::SoapFault`].
    pub fn set_busy_shape(&self, shape: BusyShape) {
        *lock(&self.inner.busy_shape) = shape;
    }

    fn busy_reply(&self, back_off: Duration) -> EmuResponse {
        let shape = *lock(&self.inner.busy_shape);
        match shape {
            BusyShape::Http503 => crate::server::busy_response(back_off),
            BusyShape::InternalErrorWithInnerBusy => xml_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                error::inner_busy_fault(back_off),
            ),
            BusyShape::SoapFault => {
                xml_response(StatusCode::INTERNAL_SERVER_ERROR, busy_fault(back_off))
            }
        }
    }

    /// Returns the store's id of a subscription this front end handed out.
    pub fn store_subscription(&self, subscription_id: &str) -> Option<SubscriptionId> {
        lock(&self.inner.subscriptions)
            .get(subscription_id)
            .map(|info| info.id)
    }

    /// Expires a subscription in `store`: its next GetEvents or GetStreamingEvents
    /// gets ErrorExpiredSubscription. Returns false when the id is unknown.
    pub fn expire_subscription(&self, store: &Mutex<Store>, subscription_id: &str) -> bool {
        let Some(id) = self.store_subscription(subscription_id) else {
            return false;
        };
        lock(store).expire_subscription(id);
        true
    }

    /// Returns the store session the front end uses for `user`, opening it if needed.
    pub fn session_for(&self, store: &mut Store, user: &str) -> SessionId {
        let mut sessions = lock(&self.inner.sessions);
        if let Some(session) = sessions.get(user) {
            let usable = store.session(*session).is_some_and(|info| !info.expired);
            if usable {
                return *session;
            }
        }
        let session = store.open_session(&format!("ews {user}"));
        sessions.insert(user.to_owned(), session);
        session
    }

    async fn serve(self, request: EmuRequest, context: RequestContext) -> EmuResponse {
        if request.method() != Method::POST {
            let mut response = xml_response(
                StatusCode::METHOD_NOT_ALLOWED,
                request_fault(
                    ResponseCode::ErrorInvalidRequest,
                    "EWS accepts only POST requests",
                ),
            );
            response
                .headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        let quirks = self.quirks();
        let state = Arc::clone(&context.state);

        let fault = {
            let mut store = lock(&state.store);
            let session = self.session_for(&mut store, &context.user.name);
            store.take_front_end_fault(session)
        };
        match fault {
            Some(FrontEndFault::DropConnection) => return drop_connection_response(),
            Some(FrontEndFault::ServerBusy { back_off }) => {
                self.remember_fault(context.connection_id, quirks);
                return self.busy_reply(back_off);
            }
            _ => {}
        }
        if let Some(stale) = self.take_stale(context.connection_id, quirks) {
            warn!(
                connection = context.connection_id,
                "quirk: returning the stale response of the request before the fault"
            );
            return xml_response(StatusCode::OK, stale.to_vec());
        }

        let parsed = match exmux_ews::soap::parse_request(request.body()) {
            Ok(parsed) => parsed,
            Err(error) => {
                debug!(%error, "EWS request rejected");
                self.remember_fault(context.connection_id, quirks);
                return xml_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    request_fault(
                        ResponseCode::ErrorSchemaValidation,
                        &format!("The request is not a valid EWS request: {error}"),
                    ),
                );
            }
        };
        let operation = parsed.operation().to_owned();
        debug!(%operation, request = context.request_id, "EWS request");

        let busy = lock(&self.inner.busy_messages).pop_front();
        if operation == "GetStreamingEvents" && busy.is_none() {
            return notify::streaming(self.clone(), state, &parsed.body, quirks).await;
        }

        let result = {
            let mut store = lock(&state.store);
            let session = self.session_for(&mut store, &context.user.name);
            let ids = IdCodec::new(state.mailbox.mailbox_guid, &store);
            let mut ctx = ops::Ctx {
                store: &mut store,
                session,
                ids,
                quirks,
                front_end: &self,
                mailbox: &state.mailbox.address,
            };
            dispatch(&mut ctx, &operation, &parsed.body, busy)
        };
        match result {
            Ok(mut body) => {
                if quirks.on(Quirk::PaddedResponseCodes) {
                    body = String::from_utf8_lossy(&body)
                        .replace("<m:ResponseCode>", "<m:ResponseCode>\n  ")
                        .replace("</m:ResponseCode>", "\n</m:ResponseCode>")
                        .into_bytes();
                }
                self.remember_success(context.connection_id, quirks, &body);
                xml_response(StatusCode::OK, body)
            }
            Err(fault) => {
                self.remember_fault(context.connection_id, quirks);
                xml_response(StatusCode::INTERNAL_SERVER_ERROR, fault)
            }
        }
    }

    fn remember_success(&self, connection: u64, quirks: Quirks, body: &[u8]) {
        if quirks.on(Quirk::StaleResponseAfterFault) {
            let mut connections = lock(&self.inner.connections);
            let memory = connections.entry(connection).or_default();
            memory.last_success = Some(Bytes::copy_from_slice(body));
        }
    }

    fn remember_fault(&self, connection: u64, quirks: Quirks) {
        if quirks.on(Quirk::StaleResponseAfterFault) {
            lock(&self.inner.connections)
                .entry(connection)
                .or_default()
                .faulted = true;
        }
    }

    fn take_stale(&self, connection: u64, quirks: Quirks) -> Option<Bytes> {
        if !quirks.on(Quirk::StaleResponseAfterFault) {
            return None;
        }
        let mut connections = lock(&self.inner.connections);
        let memory = connections.get_mut(&connection)?;
        if !memory.faulted {
            return None;
        }
        memory.faulted = false;
        memory.last_success.clone()
    }

    pub(crate) fn register_subscription(&self, token: String, info: SubscriptionInfo) {
        lock(&self.inner.subscriptions).insert(token, info);
    }

    pub(crate) fn subscription(&self, token: &str) -> Option<SubscriptionInfo> {
        lock(&self.inner.subscriptions).get(token).copied()
    }

    pub(crate) fn forget_subscription(&self, token: &str) -> Option<SubscriptionInfo> {
        lock(&self.inner.subscriptions).remove(token)
    }

    pub(crate) fn heartbeat_interval(&self) -> Duration {
        match self.inner.heartbeat_millis.load(Ordering::SeqCst) {
            0 => DEFAULT_HEARTBEAT,
            millis => Duration::from_millis(millis),
        }
    }
}

impl Handler for EwsFrontEnd {
    fn handle(
        &self,
        request: EmuRequest,
        context: RequestContext,
    ) -> BoxFuture<'static, EmuResponse> {
        Box::pin(self.clone().serve(request, context))
    }

    fn busy_response(&self, _request: &EmuRequest, back_off: Duration) -> Option<EmuResponse> {
        let shape = *lock(&self.inner.busy_shape);
        match shape {
            BusyShape::Http503 => None,
            _ => Some(self.busy_reply(back_off)),
        }
    }
}

/// Runs one operation: parse its request, run it on the store (or reply busy), write
/// its response. `Err` carries a SOAP fault body for a request that cannot be read.
fn dispatch(
    ctx: &mut ops::Ctx<'_>,
    operation: &str,
    body: &Element,
    busy: Option<ThrottledMessage>,
) -> Result<Vec<u8>, Vec<u8>> {
    let quirks = ctx.quirks;
    let busy = busy.as_ref();
    match operation {
        "GetFolder" => run::<GetFolder, _>(body, busy, quirks, |op| ops::get_folder(ctx, op)),
        "FindFolder" => run::<FindFolder, _>(body, busy, quirks, |op| ops::find_folder(ctx, op)),
        "CreateFolder" => {
            run::<CreateFolder, _>(body, busy, quirks, |op| ops::create_folder(ctx, op))
        }
        "UpdateFolder" => {
            run::<UpdateFolder, _>(body, busy, quirks, |op| ops::update_folder(ctx, op))
        }
        "MoveFolder" => run::<MoveFolder, _>(body, busy, quirks, |op| ops::move_folder(ctx, op)),
        "DeleteFolder" => {
            run::<DeleteFolder, _>(body, busy, quirks, |op| ops::delete_folder(ctx, op))
        }
        "SyncFolderHierarchy" => {
            run::<SyncFolderHierarchy, _>(body, busy, quirks, |op| ops::sync_hierarchy(ctx, op))
        }
        "SyncFolderItems" => {
            run::<SyncFolderItems, _>(body, busy, quirks, |op| ops::sync_items(ctx, op))
        }
        "FindItem" => run::<FindItem, _>(body, busy, quirks, |op| ops::find_item(ctx, op)),
        "GetItem" => run::<GetItem, _>(body, busy, quirks, |op| ops::get_item(ctx, op)),
        "CreateItem" => run::<CreateItem, _>(body, busy, quirks, |op| ops::create_item(ctx, op)),
        "UpdateItem" => run::<UpdateItem, _>(body, busy, quirks, |op| ops::update_item(ctx, op)),
        "DeleteItem" => run::<DeleteItem, _>(body, busy, quirks, |op| ops::delete_item(ctx, op)),
        "MoveItem" => run::<MoveItem, _>(body, busy, quirks, |op| ops::move_copy_item(ctx, op)),
        "CopyItem" => run::<CopyItem, _>(body, busy, quirks, |op| ops::move_copy_item(ctx, op)),
        "SendItem" => run::<SendItem, _>(body, busy, quirks, |op| ops::send_item(ctx, op)),
        "ConvertId" => run::<ConvertId, _>(body, busy, quirks, |op| ops::convert_id(ctx, op)),
        "Subscribe" => run::<Subscribe, _>(body, busy, quirks, |op| notify::subscribe(ctx, op)),
        "GetEvents" => run::<GetEvents, _>(body, busy, quirks, |op| notify::get_events(ctx, op)),
        "Unsubscribe" => {
            run::<Unsubscribe, _>(body, busy, quirks, |op| notify::unsubscribe(ctx, op))
        }
        "GetStreamingEvents" => {
            run::<exmux_ews::ops::notify::GetStreamingEvents, _>(body, busy, quirks, |_| {
                Response::new(Vec::new())
            })
        }
        other => Err(request_fault(
            ResponseCode::ErrorInvalidRequest,
            &format!("The emulator does not implement the EWS operation {other}."),
        )),
    }
}

fn run<O, T>(
    body: &Element,
    busy: Option<&ThrottledMessage>,
    quirks: Quirks,
    operate: impl FnOnce(O) -> Response<T>,
) -> Result<Vec<u8>, Vec<u8>>
where
    O: EwsServerOperation<Response = Response<T>>,
{
    let op = O::from_request(body).map_err(|error| {
        request_fault(
            ResponseCode::ErrorSchemaValidation,
            &format!("The request failed schema validation: {error}"),
        )
    })?;
    let mut response = match busy {
        Some(throttled) => {
            warn!(
                operation = O::NAME,
                code = %throttled.code,
                inner = ?throttled.inner,
                back_off = ?throttled.back_off,
                "fault: throttling inside HTTP 200"
            );
            Response::new(vec![Err(busy_message(throttled))])
        }
        None => operate(op),
    };
    let invalid_state = response.messages.iter().any(|message| {
        matches!(message, Err(error) if error.code == ResponseCode::ErrorInvalidSyncStateData)
    });
    if invalid_state && quirks.on(Quirk::InvalidSyncStateAsFault) {
        warn!(
            operation = O::NAME,
            "quirk: an invalid SyncState as an HTTP 200 fault"
        );
        return Ok(error::sync_state_fault());
    }
    for (index, message) in response.messages.iter_mut().enumerate() {
        if let Err(error) = message {
            error.index = index;
        }
    }
    encode_response::<O>(&response, Some(&server_version())).map_err(|error| {
        request_fault(
            ResponseCode::ErrorInternalServerError,
            &format!("The emulator could not write the response: {error}"),
        )
    })
}

/// Returns the ServerVersionInfo header of every response: Exchange 2016 (15.1).
pub(crate) fn server_version() -> ServerVersionInfo {
    ServerVersionInfo {
        major: 15,
        minor: 1,
        major_build: 2507,
        minor_build: 6,
        version: Some("V2017_07_11".to_owned()),
    }
}

/// Returns a response with an XML body.
pub(crate) fn xml_response(status: StatusCode, body: Vec<u8>) -> EmuResponse {
    let mut response = http::Response::new(ResponseBody::Full(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    response
}

/// Returns the error of a message as an error of the whole response.
pub(crate) fn single<T>(result: Result<T, MessageError>) -> Response<T> {
    Response::new(vec![result])
}

/// Returns the shared state's store, for the streaming task.
pub(crate) fn store_of(state: &SharedState) -> MutexGuard<'_, Store> {
    lock(&state.store)
}
