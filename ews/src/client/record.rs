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
use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, SET_COOKIE, WWW_AUTHENTICATE};

use super::transport::BodyStream;

/// The text that replaces a secret in a recorded header.
pub const REDACTED: &str = "[redacted]";

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

/// Returns `headers` as name and value pairs with the secret values replaced.
pub(crate) fn redacted_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let text = String::from_utf8_lossy(value.as_bytes());
            let redacted = if name == AUTHORIZATION || name == PROXY_AUTHORIZATION {
                redact_credentials(&text)
            } else if name == COOKIE {
                redact_cookies(&text)
            } else if name == SET_COOKIE {
                redact_set_cookie(&text)
            } else if name == WWW_AUTHENTICATE {
                text.split(", ")
                    .map(redact_challenge)
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                text.into_owned()
            };
            (name.as_str().to_owned(), redacted)
        })
        .collect()
}

/// Replaces the credentials of an `Authorization` value and keeps its scheme
/// (`Basic [redacted]`).
fn redact_credentials(value: &str) -> String {
    match value.split_once(' ') {
        Some((scheme, _)) => format!("{scheme} {REDACTED}"),
        None => REDACTED.to_owned(),
    }
}

/// Replaces the values of a `Cookie` header and keeps the cookie names.
fn redact_cookies(value: &str) -> String {
    value
        .split(';')
        .map(|pair| match pair.trim().split_once('=') {
            Some((name, _)) => format!("{name}={REDACTED}"),
            None => REDACTED.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Replaces the value of a `Set-Cookie` and keeps its cookie name and attributes.
fn redact_set_cookie(value: &str) -> String {
    let (pair, attributes) = value.split_once(';').unwrap_or((value, ""));
    let cookie = match pair.split_once('=') {
        Some((name, _)) => format!("{}={REDACTED}", name.trim()),
        None => REDACTED.to_owned(),
    };
    if attributes.is_empty() {
        cookie
    } else {
        format!("{cookie};{attributes}")
    }
}

/// Replaces the token of one challenge (`NTLM TlRM...`) and keeps auth parameters such
/// as `realm="..."`, which are not secret.
fn redact_challenge(part: &str) -> String {
    let Some((scheme, rest)) = part.trim().split_once(' ') else {
        return part.to_owned();
    };
    let is_token = !rest.is_empty()
        && rest.trim_end_matches('=').bytes().all(|byte| {
            byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    if is_token {
        format!("{scheme} {REDACTED}")
    } else {
        part.to_owned()
    }
}

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

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn secrets_replaced_names_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        );
        headers.insert(
            COOKIE,
            HeaderValue::from_static("X-BackEndOverrideCookie=abc; other=1"),
        );
        headers.insert(
            SET_COOKIE,
            HeaderValue::from_static("X-BackEndOverrideCookie=s3cr3t; path=/EWS; HttpOnly"),
        );
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("NTLM TlRMTVNTUAACAAAA==, Basic realm=\"x\""),
        );
        headers.insert("soapaction", HeaderValue::from_static("GetItem"));

        let redacted = redacted_headers(&headers);
        let value = |name: &str| {
            redacted
                .iter()
                .find(|(header, _)| header == name)
                .map(|(_, value)| value.as_str())
        };
        assert_eq!(value("authorization"), Some("Basic [redacted]"));
        assert_eq!(
            value("cookie"),
            Some("X-BackEndOverrideCookie=[redacted]; other=[redacted]")
        );
        assert_eq!(
            value("set-cookie"),
            Some("X-BackEndOverrideCookie=[redacted]; path=/EWS; HttpOnly")
        );
        assert_eq!(
            value("www-authenticate"),
            Some("NTLM [redacted], Basic realm=\"x\"")
        );
        assert_eq!(value("soapaction"), Some("GetItem"));
    }

    #[test]
    fn authorization_without_scheme_fully_replaced() {
        assert_eq!(redact_credentials("opaque"), REDACTED);
    }
}
