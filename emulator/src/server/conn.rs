//! Accepting connections and serving requests: TLS, body limits, authentication, fault
//! switches, recording and the hand-over to the routed handler.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::{Instrument as _, debug, info, info_span, warn};

use super::auth::{AuthOutcome, Authenticator, ConnectionAuth};
use super::builtin::text_response;
use super::record::{BodyRecord, PendingRecord, RecordLabel, Recorder};
use super::routing::{
    AuthenticatedUser, DropConnection, EmuResponse, RequestContext, ResponseBody, RouteAuth,
    Router, SharedState,
};

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the connection tasks share.
pub(crate) struct Server {
    pub(crate) state: Arc<SharedState>,
    pub(crate) router: RwLock<Router>,
    pub(crate) authenticator: Authenticator,
    pub(crate) recorder: Option<Recorder>,
    pub(crate) max_request_body: usize,
    pub(crate) next_connection: AtomicU64,
    pub(crate) next_request: AtomicU64,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("state", &self.state)
            .field("recording", &self.recorder.is_some())
            .finish_non_exhaustive()
    }
}

/// One TCP connection's state.
#[derive(Debug)]
struct Connection {
    id: u64,
    peer: SocketAddr,
    tls: bool,
    auth: Mutex<ConnectionAuth>,
}

/// The service's error, on which hyper closes the connection without a response.
#[derive(Debug, thiserror::Error)]
#[error("connection closed without a response ({0})")]
struct CloseConnection(&'static str);

/// Accepts connections until `shutdown` is cancelled, then drains them for at most
/// `grace` and aborts the rest.
pub(crate) async fn accept_loop(
    server: Arc<Server>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let id = server.next_connection.fetch_add(1, Ordering::Relaxed);
                    let span = info_span!("connection", connection_id = id, %peer, tls = tls.is_some());
                    let task = serve_connection(
                        Arc::clone(&server),
                        stream,
                        peer,
                        id,
                        tls.clone(),
                        shutdown.clone(),
                    );
                    connections.spawn(task.instrument(span));
                }
                Err(error) => {
                    // Usually a full file table; waiting briefly avoids a busy loop.
                    warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);

    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            open = connections.len(),
            grace_ms = grace.as_millis(),
            "connections still open after the shutdown grace period; closing them"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    info!("emulator stopped");
}

async fn serve_connection(
    server: Arc<Server>,
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) {
    debug!("connection accepted");
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, "setting TCP_NODELAY failed");
    }
    let connection = Arc::new(Connection {
        id,
        peer,
        tls: tls.is_some(),
        auth: Mutex::new(ConnectionAuth::default()),
    });

    match tls {
        Some(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls_stream)) => serve_io(server, connection, tls_stream, shutdown).await,
                Ok(Err(error)) => debug!(%error, "TLS handshake failed"),
                Err(_) => debug!("TLS handshake timed out"),
            }
        }
        None => serve_io(server, connection, stream, shutdown).await,
    }
    debug!("connection closed");
}

async fn serve_io<I>(
    server: Arc<Server>,
    connection: Arc<Connection>,
    io: I,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let server = Arc::clone(&server);
        let connection = Arc::clone(&connection);
        async move { handle_request(server, connection, request).await }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let serving = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(serving);

    let result = tokio::select! {
        result = serving.as_mut() => result,
        () = shutdown.cancelled() => {
            serving.as_mut().graceful_shutdown();
            serving.await
        }
    };
    if let Err(error) = result {
        debug!(%error, "connection ended with an error");
    }
}

async fn handle_request(
    server: Arc<Server>,
    connection: Arc<Connection>,
    request: http::Request<Incoming>,
) -> Result<http::Response<ServerBody>, CloseConnection> {
    let request_id = server.next_request.fetch_add(1, Ordering::Relaxed);
    let span = info_span!(
        "request",
        connection_id = connection.id,
        request_id,
        method = %request.method(),
        path = %request.uri().path(),
        status = tracing::field::Empty,
    );
    route_request(&server, &connection, request, request_id)
        .instrument(span)
        .await
}

async fn route_request(
    server: &Server,
    connection: &Connection,
    request: http::Request<Incoming>,
    request_id: u64,
) -> Result<http::Response<ServerBody>, CloseConnection> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, server.max_request_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            let text = format!(
                "413 Payload Too Large: the emulator reads at most {} bytes of a request body\n",
                server.max_request_body
            );
            let response = text_response(StatusCode::PAYLOAD_TOO_LARGE, Bytes::from(text));
            return Ok(server.finish(response, &parts.uri, None));
        }
        Err(error) => {
            debug!(%error, "reading the request body failed");
            return Err(CloseConnection("the request body could not be read"));
        }
    };

    let pending = server
        .recorder
        .as_ref()
        .map(|recorder| recorder.begin(&parts, &body));
    let request = http::Request::from_parts(parts, body);
    let uri = request.uri().clone();
    let path = uri.path();

    let route = {
        let router = server
            .router
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        router.find(path).cloned()
    };
    let Some(route) = route else {
        let text = format!("404 Not Found: nothing is mounted at {path}\n");
        return Ok(server.finish(
            text_response(StatusCode::NOT_FOUND, Bytes::from(text)),
            &uri,
            pending,
        ));
    };

    let user = match route.auth {
        RouteAuth::Anonymous => AuthenticatedUser {
            name: String::new(),
            scheme: None,
        },
        RouteAuth::Required => {
            let outcome = {
                let mut auth = connection
                    .auth
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                server
                    .authenticator
                    .authenticate(request.headers(), &mut auth)
            };
            match outcome {
                AuthOutcome::Authenticated(user) => user,
                AuthOutcome::Challenge(response) => {
                    return Ok(server.finish(response, &uri, pending));
                }
            }
        }
    };

    let faults = server.state.faults.take_for_request(path);
    if faults.drop {
        warn!("fault: closing the connection without answering");
        if let (Some(recorder), Some(pending)) = (&server.recorder, pending) {
            recorder.respond(pending, None, None, None);
        }
        // NOTE: on HTTP/2 hyper answers a service error with RST_STREAM, so only this
        // stream ends and the connection stays open.
        return Err(CloseConnection("drop_connection fault"));
    }
    if let Some(back_off) = faults.busy {
        warn!(
            back_off_ms = back_off.as_millis(),
            "fault: answering server busy"
        );
        let mut response = route
            .handler
            .busy_response(&request, back_off)
            .unwrap_or_else(|| busy_response(back_off));
        if response.extensions().get::<RecordLabel>().is_none() {
            response.extensions_mut().insert(RecordLabel {
                case: Some("server-busy".to_owned()),
                ..RecordLabel::default()
            });
        }
        return Ok(server.finish(response, &uri, pending));
    }
    if let Some(delay) = faults.delay {
        warn!(delay_ms = delay.as_millis(), "fault: delaying the response");
        tokio::time::sleep(delay).await;
    }

    let context = RequestContext {
        user,
        state: Arc::clone(&server.state),
        connection_id: connection.id,
        request_id,
        peer: connection.peer,
        tls: connection.tls,
    };
    let response = route.handler.handle(request, context).await;
    if response.extensions().get::<DropConnection>().is_some() {
        debug!("the handler asked to close the connection without answering");
        if let (Some(recorder), Some(pending)) = (&server.recorder, pending) {
            recorder.respond(pending, None, None, None);
        }
        return Err(CloseConnection("closed by the handler"));
    }
    Ok(server.finish(response, &uri, pending))
}

impl Server {
    /// Turns a handler's response into hyper's, records it and logs the status.
    fn finish(
        &self,
        response: EmuResponse,
        uri: &http::Uri,
        pending: Option<PendingRecord>,
    ) -> http::Response<ServerBody> {
        let (mut parts, body) = response.into_parts();
        let label = parts.extensions.remove::<RecordLabel>();
        tracing::Span::current().record("status", parts.status.as_u16());
        info!(status = parts.status.as_u16(), "request served");

        let record = match (&self.recorder, pending) {
            (Some(recorder), Some(pending)) => recorder.respond(
                pending,
                Some(parts.status),
                Some(&parts.headers),
                label.as_ref(),
            ),
            _ => None,
        };

        let body = match body {
            ResponseBody::Full(bytes) => {
                if let Some(mut record) = record {
                    record.push(&bytes);
                }
                ServerBody::Full(Some(bytes))
            }
            ResponseBody::Stream(receiver) => ServerBody::Stream(Box::new(StreamState {
                receiver,
                cut_after: self.state.faults.take_stream_cut(uri.path()),
                cut_yielded: false,
                sent: 0,
                shutdown: Box::pin(self.state.shutdown.clone().cancelled_owned()),
                record,
            })),
        };
        http::Response::from_parts(parts, body)
    }
}

/// Builds the generic "server busy" response: HTTP 503 with `Retry-After` in whole
/// seconds, rounded up (RFC 9110 10.2.3). Front ends use it for the store's server-busy
/// fault where their protocol has no shape of its own.
pub fn busy_response(back_off: Duration) -> EmuResponse {
    let seconds = back_off.as_millis().div_ceil(1000);
    let mut response = text_response(
        StatusCode::SERVICE_UNAVAILABLE,
        Bytes::from(format!(
            "503 Service Unavailable: server busy, retry after {seconds} s\n"
        )),
    );
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The body hyper sends: complete bytes, or chunks from a handler's channel.
pub(crate) enum ServerBody {
    Full(Option<Bytes>),
    Stream(Box<StreamState>),
}

pub(crate) struct StreamState {
    receiver: mpsc::Receiver<Bytes>,
    /// End with an error after this many chunks (the cut-stream fault).
    cut_after: Option<usize>,
    cut_yielded: bool,
    sent: usize,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    record: Option<BodyRecord>,
}

/// The error that ends a cut stream; hyper closes the connection on it, so the client
/// sees a chunked body without its last chunk.
#[derive(Debug, thiserror::Error)]
#[error("the streaming response was cut by the cut_stream fault")]
pub(crate) struct StreamCut;

impl Body for ServerBody {
    type Data = Bytes;
    type Error = StreamCut;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamCut>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
            Self::Stream(stream) => {
                if stream.cut_after == Some(stream.sent) {
                    // Yield once first: hyper flushes what it has buffered when the body
                    // is pending, but discards unflushed chunks when the body fails.
                    if !stream.cut_yielded {
                        stream.cut_yielded = true;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    warn!(
                        chunks = stream.sent,
                        "fault: cutting the streaming response"
                    );
                    return Poll::Ready(Some(Err(StreamCut)));
                }
                if stream.shutdown.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                match stream.receiver.poll_recv(cx) {
                    Poll::Ready(Some(chunk)) => {
                        stream.sent += 1;
                        if let Some(record) = &mut stream.record {
                            record.push(&chunk);
                        }
                        Poll::Ready(Some(Ok(Frame::data(chunk))))
                    }
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            Self::Stream(_) => SizeHint::default(),
        }
    }
}
