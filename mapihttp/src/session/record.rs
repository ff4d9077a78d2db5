//! An optional hook that receives every HTTP exchange of the session, so a user can record
//! a session and attach it to a bug report.
//!
//! The session calls the [`Recorder`] once per exchange, after the whole response body
//! was read (or the request failed without a response), with the request's headers and
//! body and the response's headers and body. The values of `Authorization`,
//! `Proxy-Authorization`, `Cookie`, `Set-Cookie` and the tokens of `WWW-Authenticate`
//! are replaced by [`REDACTED`] before the recorder receives them. Bodies are passed as
//! sent: MAPI/HTTP bodies carry no credentials.
//!
//! NOTE: an exchange whose response fails while its body is read (a silence timeout,
//! a body over the limit, a dropped connection) is not recorded at all.

use std::fmt;

use http::HeaderMap;

use crate::body::{ExecuteRequest, WireBody as _};

pub use exmux_core::redact::REDACTED;

/// One HTTP exchange as the session sent and received it, secrets replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Exchange<'a> {
    /// The request type and, for Execute, the first ROP: `Connect`,
    /// `Execute-RopLogon`, `NotificationWait`.
    pub operation: String,
    /// The session's description of the request (`open folder`, `sync contents`).
    pub purpose: &'static str,
    /// The request target: the URL's path and query.
    pub target: String,
    /// The request headers the session set, in order, with secrets replaced. HTTP
    /// libraries add `Content-Length` themselves, so it may be missing.
    pub request_headers: Vec<(String, String)>,
    /// The request body as sent.
    pub request_body: &'a [u8],
    /// The response status; `None` when the request failed before a response arrived.
    pub status: Option<u16>,
    /// The response headers, in order, with secrets replaced.
    pub response_headers: Vec<(String, String)>,
    /// The response body as received, PROCESSING/PENDING/DONE preamble included.
    pub response_body: &'a [u8],
}

/// A hook the session calls with each exchange; see the module documentation.
pub trait Recorder: Send + Sync + fmt::Debug {
    /// Records one exchange. Failing to store it must not fail the request, so
    /// nothing is returned.
    fn record(&self, exchange: &Exchange<'_>);
}

pub(crate) use exmux_core::redact::redacted_headers;

/// Names an exchange by its `X-RequestType` and, for Execute, the first ROP of the
/// request's ROP buffer (`Execute-RopLogon`). A body that does not decode keeps the
/// request type alone.
pub(crate) fn operation_name(headers: &HeaderMap, body: &[u8]) -> String {
    let request_type = headers
        .get("x-requesttype")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("POST")
        .to_owned();
    if !request_type.eq_ignore_ascii_case("Execute") {
        return request_type;
    }
    let first_rop = ExecuteRequest::decode(body)
        .ok()
        .and_then(|request| crate::ext::decode_payload(&request.rop_buffer).ok())
        .and_then(|payload| crate::rop::decode_request_buffer(&payload).ok())
        .and_then(|buffer| buffer.rops.first().map(|rop| rop.rop_id()));
    match first_rop {
        Some(id) => format!("{request_type}-{}", crate::rop::rop_id::name(id)),
        None => request_type,
    }
}

impl super::transport::Transport {
    /// Hands one exchange to the recorder, when one is set. `sent` is the request's
    /// headers as sent, cloned only while recording.
    pub(crate) fn record_exchange(
        &self,
        purpose: &'static str,
        sent: Option<&HeaderMap>,
        request_body: &[u8],
        response: Option<(u16, &HeaderMap, &[u8])>,
    ) {
        let (Some(recorder), Some(sent)) = (&self.recorder, sent) else {
            return;
        };
        let target = match reqwest::Url::parse(&self.url) {
            Ok(url) => match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_owned(),
            },
            Err(_) => self.url.clone(),
        };
        let (status, response_headers, response_body) = match response {
            Some((status, headers, body)) => (Some(status), redacted_headers(headers), body),
            None => (None, Vec::new(), &[][..]),
        };
        recorder.record(&Exchange {
            operation: operation_name(sent, request_body),
            purpose,
            target,
            request_headers: redacted_headers(sent),
            request_body,
            status,
            response_headers,
            response_body,
        });
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn undecodable_execute_keeps_request_type() {
        let mut headers = HeaderMap::new();
        headers.insert("x-requesttype", HeaderValue::from_static("Execute"));
        assert_eq!(operation_name(&headers, b"not a body"), "Execute");
        headers.insert("x-requesttype", HeaderValue::from_static("PING"));
        assert_eq!(operation_name(&headers, b""), "PING");
    }
}
