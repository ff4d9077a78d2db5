//! The routing table and the handler interface that the protocol front ends implement.
//!
//! A handler sees a request whose body the server has already read in full (within
//! [`EmulatorOptions::max_request_body`](super::EmulatorOptions::max_request_body)) and an
//! authenticated [`RequestContext`]. It answers with either complete bytes or a body
//! written chunk by chunk while the handler waits, which EWS streaming notifications
//! and the MAPI/HTTP PROCESSING/PENDING/DONE framing need.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use exmux_core::Clock;
use exmux_core::auth::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::auth::{AuthScheme, TokenValidators};
use super::faults::FaultSwitches;
use crate::store::Store;

/// A request as handlers see it: head and the complete body.
pub type EmuRequest = http::Request<Bytes>;

/// A response as handlers produce it.
pub type EmuResponse = http::Response<ResponseBody>;

/// The body of an [`EmuResponse`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ResponseBody {
    /// The whole body, sent with a `Content-Length`.
    Full(Bytes),
    /// A body written over time through the matching [`ChunkSender`], sent with chunked
    /// transfer encoding on HTTP/1.1. It ends when every sender is dropped.
    Stream(mpsc::Receiver<Bytes>),
}

impl ResponseBody {
    /// Creates an empty complete body.
    pub fn empty() -> Self {
        Self::Full(Bytes::new())
    }

    /// Creates a streaming body and the sender that writes it. `capacity` is the number
    /// of chunks that may wait unsent before [`ChunkSender::send`] waits for the client.
    pub fn channel(capacity: usize) -> (ChunkSender, Self) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (ChunkSender { sender }, Self::Stream(receiver))
    }
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> Self {
        Self::Full(bytes)
    }
}

impl From<Vec<u8>> for ResponseBody {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Full(Bytes::from(bytes))
    }
}

impl From<&'static str> for ResponseBody {
    fn from(text: &'static str) -> Self {
        Self::Full(Bytes::from_static(text.as_bytes()))
    }
}

impl From<String> for ResponseBody {
    fn from(text: String) -> Self {
        Self::Full(Bytes::from(text))
    }
}

/// A marker a handler puts into its response's extensions to make the server close the
/// connection without sending the response, as a front end does when it acts out the
/// store's dropped-connection fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropConnection;

/// Returns a response that the server does not send: it closes the connection instead.
pub fn drop_connection_response() -> EmuResponse {
    let mut response = http::Response::new(ResponseBody::empty());
    response.extensions_mut().insert(DropConnection);
    response
}

/// Converts a response with a complete body, such as the autodiscover and token
/// endpoints produce, into an [`EmuResponse`].
pub fn full_response(response: http::Response<Bytes>) -> EmuResponse {
    response.map(ResponseBody::Full)
}

/// The writing end of a streaming [`ResponseBody`].
#[derive(Debug, Clone)]
pub struct ChunkSender {
    sender: mpsc::Sender<Bytes>,
}

/// The client disconnected or the server cut the stream (see
/// [`FaultSwitches::cut_streams`]); the handler should stop writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the streaming response is closed: the client disconnected or the stream was cut")]
pub struct StreamClosed;

impl ChunkSender {
    /// Queues `chunk` for sending, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// [`StreamClosed`] when the response is no longer being sent.
    pub async fn send(&self, chunk: impl Into<Bytes>) -> Result<(), StreamClosed> {
        self.sender
            .send(chunk.into())
            .await
            .map_err(|_| StreamClosed)
    }

    /// Returns true once the response is no longer being sent, so a handler parked on a
    /// long wait can give up early.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Waits until the response is no longer being sent.
    pub async fn closed(&self) {
        self.sender.closed().await;
    }
}

/// A protocol front end or any other endpoint mounted in the routing table.
pub trait Handler: Send + Sync + 'static {
    /// Handles one authenticated request and returns its response.
    fn handle(
        &self,
        request: EmuRequest,
        context: RequestContext,
    ) -> BoxFuture<'static, EmuResponse>;

    /// Builds this protocol's "server busy" answer when the server-busy fault fires for a
    /// request routed here, or returns `None` for the generic HTTP 503 with
    /// `Retry-After`. The EWS front end answers with an HTTP 500 SOAP fault
    /// `ErrorServerBusy` carrying `BackOffMilliseconds`, as Exchange does.
    fn busy_response(&self, request: &EmuRequest, back_off: Duration) -> Option<EmuResponse> {
        let _ = (request, back_off);
        None
    }
}

/// Wraps an async closure as a [`Handler`].
pub fn handler_fn<F, Fut>(function: F) -> Arc<dyn Handler>
where
    F: Fn(EmuRequest, RequestContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = EmuResponse> + Send + 'static,
{
    Arc::new(FnHandler(function))
}

struct FnHandler<F>(F);

impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(EmuRequest, RequestContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = EmuResponse> + Send + 'static,
{
    fn handle(
        &self,
        request: EmuRequest,
        context: RequestContext,
    ) -> BoxFuture<'static, EmuResponse> {
        Box::pin((self.0)(request, context))
    }
}

/// Whether a route requires an authenticated user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteAuth {
    /// Basic, NTLM or bearer authentication must succeed before the handler runs.
    Required,
    /// The handler runs for anonymous requests too (health checks, the OAuth2 token
    /// endpoint).
    Anonymous,
}

/// One entry of the routing table.
#[derive(Clone)]
pub struct Route {
    /// The path prefix this route serves, compared ASCII case-insensitively, because
    /// IIS (and so Exchange) treats URL paths that way.
    pub prefix: String,
    /// Whether the route requires authentication.
    pub auth: RouteAuth,
    /// The handler.
    pub handler: Arc<dyn Handler>,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("prefix", &self.prefix)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// Path prefix to handler; the longest matching prefix wins.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Adds `handler` under `prefix`, replacing an earlier route with the same prefix.
    pub fn mount(&mut self, prefix: impl Into<String>, auth: RouteAuth, handler: Arc<dyn Handler>) {
        let prefix = prefix.into();
        self.routes
            .retain(|route| !route.prefix.eq_ignore_ascii_case(&prefix));
        self.routes.push(Route {
            prefix,
            auth,
            handler,
        });
    }

    /// Finds the route for `path`: the longest prefix that matches, ignoring ASCII case.
    pub fn find(&self, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|route| starts_with_ignore_ascii_case(path, &route.prefix))
            .max_by_key(|route| route.prefix.len())
    }

    /// Returns the mounted routes, in mounting order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

pub(crate) fn starts_with_ignore_ascii_case(path: &str, prefix: &str) -> bool {
    path.len() >= prefix.len()
        && path
            .as_bytes()
            .iter()
            .zip(prefix.as_bytes())
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
}

/// The state every handler shares: the mailbox store, the clock, the fault switches and
/// the facts of the mailbox.
pub struct SharedState {
    /// The mailbox store that both protocol front ends serve.
    pub store: Arc<Mutex<Store>>,
    /// The clock of every protocol timer (heartbeats, expiry, back-off hints).
    pub clock: Arc<dyn Clock>,
    /// The HTTP-level fault switches.
    pub faults: Arc<FaultSwitches>,
    /// The mailbox this emulator serves.
    pub mailbox: MailboxFacts,
    /// Cancelled when the emulator shuts down, so handlers parked on a long wait (a
    /// streaming subscription, a NotificationWait) can finish their response.
    pub shutdown: CancellationToken,
    pub(crate) validators: TokenValidators,
}

impl fmt::Debug for SharedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedState")
            .field("clock", &self.clock)
            .field("mailbox", &self.mailbox)
            .finish_non_exhaustive()
    }
}

/// The facts about the emulator's one mailbox that the front ends need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MailboxFacts {
    /// The SMTP address, such as `user1@example.test`.
    pub address: String,
    /// The domain part of [`MailboxFacts::address`].
    pub domain: String,
    /// The mailbox GUID of the MAPI/HTTP `MailboxId` URL parameter, derived from the
    /// seed.
    pub mailbox_guid: uuid::Uuid,
    /// The user name that Basic and NTLM authentication accept.
    pub username: String,
    /// The base URL, `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub base_url: String,
}

/// The user a request was authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    /// The user name: the configured user for Basic and NTLM, the name the validator returned
    /// for bearer tokens, empty on an anonymous route.
    pub name: String,
    /// The scheme the user authenticated with, or `None` on an anonymous route.
    pub scheme: Option<AuthScheme>,
}

/// The per-request data that the server passes to a handler besides the request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The authenticated user.
    pub user: AuthenticatedUser,
    /// The shared state.
    pub state: Arc<SharedState>,
    /// The id of the TCP connection, unique per emulator run, in accept order from 1.
    pub connection_id: u64,
    /// The id of the request, unique per emulator run, from 1.
    pub request_id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether the connection uses TLS.
    pub tls: bool,
}
