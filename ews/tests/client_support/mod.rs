//! A scripted EWS server on 127.0.0.1 for the client tests, and helpers shared by them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use exmux_core::ManualClock;
use exmux_core::auth::BoxFuture;
use exmux_ews::client::Sleeper;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub peer: SocketAddr,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    }
}

/// One scripted response.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Body chunks, sent in order with `chunk_delay` between them.
    pub chunks: Vec<Bytes>,
    pub chunk_delay: Duration,
    /// Delay before the status line.
    pub delay: Duration,
    /// Cut the connection after the chunks instead of ending the body.
    pub drop_after: bool,
}

impl Canned {
    pub fn new(status: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            chunks: vec![body.into()],
            chunk_delay: Duration::ZERO,
            delay: Duration::ZERO,
            drop_after: false,
        }
    }

    pub fn xml(status: u16, body: impl Into<Bytes>) -> Self {
        Self::new(status, "text/xml; charset=utf-8", body)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Responder = Box<dyn FnMut(&Seen) -> Canned + Send>;

/// The scripted server. Responses come from `responder`, which sees each request.
pub struct MockServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl MockServer {
    /// Starts a server whose responses come from a queue, in order. When the queue is
    /// empty it returns 599, so a test sees the extra request.
    pub async fn with_queue(answers: Vec<Canned>) -> Self {
        let queue = Arc::new(Mutex::new(VecDeque::from(answers)));
        Self::start(Box::new(move |_seen| {
            queue
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| Canned::new(599, "text/plain", "no answer scripted"))
        }))
        .await
    }

    pub async fn start(responder: Responder) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let responder = Arc::new(Mutex::new(responder));
        let seen_for_server = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    return;
                };
                let seen = Arc::clone(&seen_for_server);
                let responder = Arc::clone(&responder);
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let seen = Arc::clone(&seen);
                            let responder = Arc::clone(&responder);
                            async move {
                                let (parts, body) = request.into_parts();
                                let body = body.collect().await.unwrap().to_bytes();
                                let record = Seen {
                                    peer,
                                    headers: parts.headers,
                                    body: String::from_utf8_lossy(&body).into_owned(),
                                };
                                seen.lock().unwrap().push(record.clone());
                                let canned = (responder.lock().unwrap())(&record);
                                Ok::<_, Infallible>(respond(canned).await)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}/EWS/Exchange.asmx", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

type ChunkStream = StreamBody<tokio_stream_shim::Receiver<Result<Frame<Bytes>, std::io::Error>>>;

async fn respond(canned: Canned) -> http::Response<ChunkStream> {
    tokio::time::sleep(canned.delay).await;
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    let chunks = canned.chunks.clone();
    let delay = canned.chunk_delay;
    let drop_after = canned.drop_after;
    tokio::spawn(async move {
        for chunk in chunks {
            if sender.send(Ok(Frame::data(chunk))).await.is_err() {
                return;
            }
            tokio::time::sleep(delay).await;
        }
        if drop_after {
            let _ = sender
                .send(Err(std::io::Error::other("connection cut by the test")))
                .await;
        }
    });
    let mut builder = http::Response::builder().status(canned.status);
    for (name, value) in &canned.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(StreamBody::new(tokio_stream_shim::Receiver(receiver)))
        .unwrap()
}

/// A minimal `Stream` over a tokio mpsc receiver, to avoid a dependency on
/// tokio-stream.
pub mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct Receiver<T>(pub tokio::sync::mpsc::Receiver<T>);

    impl<T> futures_util::Stream for Receiver<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

/// A [`Sleeper`] that advances a `ManualClock` instead of waiting, and records each
/// wait.
#[derive(Debug, Clone)]
pub struct ClockSleeper {
    pub clock: ManualClock,
    pub slept: Arc<Mutex<Vec<Duration>>>,
}

impl ClockSleeper {
    pub fn new(clock: ManualClock) -> Self {
        Self {
            clock,
            slept: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn total(&self) -> Duration {
        self.slept.lock().unwrap().iter().sum()
    }
}

impl Sleeper for ClockSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        self.slept.lock().unwrap().push(duration);
        self.clock.advance(duration);
        Box::pin(async {})
    }
}

/// Reads a shared case input, or `None` to skip outside CI when the folder is absent.
pub fn case(name: &str) -> Option<String> {
    let path = exmux_testkit::shared_path(&format!("cases/inputs/{name}"))?;
    Some(std::fs::read_to_string(path).unwrap())
}

/// Wraps `body` in a minimal response envelope (the children of soap:Body).
pub fn envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">{body}</s:Body></s:Envelope>"#
    )
}
