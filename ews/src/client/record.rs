//! An optional hook that receives every HTTP exchange of the client, so a user can record
//! a session and attach it to a bug report.
//!
//! The client calls the [`Recorder`] once per exchange, when the response head has
//! arrived (or the request failed without one), with the request's headers and body
//! and the response's headers. The values of `Authorization`, `Proxy-Authorization`,
//! `Cookie`, `Set-Cookie` and the tokens of `WWW-Authenticate` are replaced by
//! [`REDACTED`] before the recorder receives them. The response body goes to the
//! [`BodySink`] the recorder returns, chunk by chunk as the client reads it, so a
//! streaming subscription is recorded while it runs.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http::HeaderMap;

use super::transport::BodyStream;

pub use exmux_core::redact::REDACTED;

/// One HTTP exchange as the client sent and received it, secrets replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Exchange {
    /// The EWS operation (`SyncFolderItems`, `GetStreamingEvents`).
    pub operation: &'static str,
    /// The request method (`POST`).
    pub method: String,
    /// The request target: the URL's path and query.
    pub target: String,
    /// The request headers the client set, in order, with secrets replaced. HTTP
    /// libraries add `Host` and `Content-Length` themselves, so those may be missing.
    pub request_headers: Vec<(String, String)>,
    /// The request body as sent.
    pub request_body: Bytes,
    /// The response status; `None` when the request failed before a response arrived.
    pub status: Option<u16>,
    /// The response headers, in order, with secrets replaced.
    pub response_headers: Vec<(String, String)>,
}

/// Receives the response body of one recorded exchange, chunk by chunk. Dropping it
/// ends the body.
pub trait BodySink: Send {
    /// Appends one chunk of the response body.
    fn write(&mut self, chunk: &[u8]);
}

/// A hook the client calls with each exchange; see the module documentation.
pub trait Recorder: Send + Sync + fmt::Debug {
    /// Records one exchange and returns where its response body goes, or `None` to
    /// skip the body (no response, or the recorder failed to store it).
    fn record(&self, exchange: Exchange) -> Option<Box<dyn BodySink>>;
}

pub(crate) use exmux_core::redact::redacted_headers;

/// The request half of an exchange, held until the response head arrives.
pub(crate) struct PendingExchange {
    recorder: Arc<dyn Recorder>,
    exchange: Exchange,
}

impl PendingExchange {
    /// Captures a request about to be sent, when a recorder is set.
    pub(crate) fn begin(
        recorder: Option<&Arc<dyn Recorder>>,
        operation: &'static str,
        url: &url::Url,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Option<Self> {
        let recorder = Arc::clone(recorder?);
        let mut target = url.path().to_owned();
        if let Some(query) = url.query() {
            target.push('?');
            target.push_str(query);
        }
        Some(Self {
            recorder,
            exchange: Exchange {
                operation,
                method: "POST".to_owned(),
                target,
                request_headers: redacted_headers(headers),
                request_body: body.clone(),
                status: None,
                response_headers: Vec::new(),
            },
        })
    }
}

/// Records a request that got no response.
pub(crate) fn failed(pending: Option<PendingExchange>) {
    if let Some(pending) = pending {
        let _ = pending.recorder.record(pending.exchange);
    }
}

/// Records the response head and returns `body` wrapped so that each chunk also goes
/// to the recorder; returns `body` unchanged without a recorder.
pub(crate) fn respond(
    pending: Option<PendingExchange>,
    status: u16,
    headers: &HeaderMap,
    body: BodyStream,
) -> BodyStream {
    let Some(PendingExchange {
        recorder,
        mut exchange,
    }) = pending
    else {
        return body;
    };
    exchange.status = Some(status);
    exchange.response_headers = redacted_headers(headers);
    match recorder.record(exchange) {
        Some(sink) => Box::pin(Tee { inner: body, sink }),
        None => body,
    }
}

/// A body stream that copies each chunk into a sink.
struct Tee {
    inner: BodyStream,
    sink: Box<dyn BodySink>,
}

impl Stream for Tee {
    type Item = Result<Bytes, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            self.sink.write(chunk);
        }
        polled
    }
}
