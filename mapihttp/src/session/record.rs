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
use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, SET_COOKIE, WWW_AUTHENTICATE};

use crate::body::{ExecuteRequest, WireBody as _};

/// The text that replaces a secret in a recorded header.
pub const REDACTED: &str = "[redacted]";

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

/// Returns `headers` as name and value pairs with the secret values replaced.
pub(crate) fn redacted_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let text = String::from_utf8_lossy(value.as_bytes());
            let redacted = if name == AUTHORIZATION || name == PROXY_AUTHORIZATION {
                match text.split_once(' ') {
                    Some((scheme, _)) => format!("{scheme} {REDACTED}"),
                    None => REDACTED.to_owned(),
                }
            } else if name == COOKIE {
                text.split(';')
                    .map(|pair| match pair.trim().split_once('=') {
                        Some((cookie, _)) => format!("{cookie}={REDACTED}"),
                        None => REDACTED.to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
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
    fn secrets_replaced_names_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        );
        headers.insert(
            COOKIE,
            HeaderValue::from_static("MapiContext=abc; MapiSequence=1"),
        );
        headers.insert(
            SET_COOKIE,
            HeaderValue::from_static("MapiContext=s3cr3t; path=/mapi/; HttpOnly"),
        );
        headers.insert("x-requesttype", HeaderValue::from_static("Connect"));

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
            Some("MapiContext=[redacted]; MapiSequence=[redacted]")
        );
        assert_eq!(
            value("set-cookie"),
            Some("MapiContext=[redacted]; path=/mapi/; HttpOnly")
        );
        assert_eq!(value("x-requesttype"), Some("Connect"));
    }

    #[test]
    fn challenge_token_replaced_realm_kept() {
        assert_eq!(
            redact_challenge("NTLM TlRMTVNTUAACAAAA=="),
            "NTLM [redacted]"
        );
        assert_eq!(redact_challenge("Basic realm=\"x\""), "Basic realm=\"x\"");
    }

    #[test]
    fn undecodable_execute_keeps_request_type() {
        let mut headers = HeaderMap::new();
        headers.insert("x-requesttype", HeaderValue::from_static("Execute"));
        assert_eq!(operation_name(&headers, b"not a body"), "Execute");
        headers.insert("x-requesttype", HeaderValue::from_static("PING"));
        assert_eq!(operation_name(&headers, b""), "PING");
    }
}
