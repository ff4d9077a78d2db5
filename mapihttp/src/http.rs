//! The HTTP layer of MAPI over HTTP (MS-OXCMAPIHTTP 2.2.2, 2.2.3): request headers per
//! request type, the classification of a response head, and an incremental reader for
//! the response body. That body starts with a text preamble (PROCESSING, PENDING, DONE,
//! then the additional headers X-ElapsedTime and X-StartTime), and the binary body follows.
//!
//! Nothing here performs I/O: the caller feeds bytes as they arrive.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fmt;
use std::str::FromStr;

use exmux_core::Secret;
use http::StatusCode;
use http::header::{CONTENT_TYPE, COOKIE, HeaderMap, HeaderName, HeaderValue, SET_COOKIE};
use uuid::Uuid;

/// `Content-Type` of every MAPI/HTTP request and success response.
pub const CONTENT_TYPE_MAPI: &str = "application/mapi-http";

/// Header names used by MAPI over HTTP (MS-OXCMAPIHTTP 2.2.3.1 and 2.2.3.3).
pub mod names {
    /// Request type (request and echo).
    pub const X_REQUEST_TYPE: &str = "x-requesttype";
    /// `{GUID}:counter` of the session context and request.
    pub const X_REQUEST_ID: &str = "x-requestid";
    /// `{GUID}:counter` of the client instance.
    pub const X_CLIENT_INFO: &str = "x-clientinfo";
    /// Client version, e.g. `Outlook/16.0.17928.20114`.
    pub const X_CLIENT_APPLICATION: &str = "x-clientapplication";
    /// Protocol-level result of the request.
    pub const X_RESPONSE_CODE: &str = "x-responsecode";
    /// Milliseconds between keep-alives.
    pub const X_PENDING_PERIOD: &str = "x-pendingperiod";
    /// Milliseconds the session context lives without requests.
    pub const X_EXPIRATION_INFO: &str = "x-expirationinfo";
    /// Server version.
    pub const X_SERVER_APPLICATION: &str = "x-serverapplication";
}

/// The request type of an HTTP request (X-RequestType, MS-OXCMAPIHTTP 2.2.3.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum RequestType {
    /// Mailbox: create a session context.
    Connect,
    /// Mailbox: run a ROP batch.
    Execute,
    /// Mailbox: destroy the session context.
    Disconnect,
    /// Mailbox: wait for notifications.
    NotificationWait,
    /// Either endpoint: keep-alive probe.
    Ping,
    /// Address book: create a session context.
    Bind,
    /// Address book: destroy the session context.
    Unbind,
    /// Any other address book request type, kept as sent.
    Other(String),
}

impl RequestType {
    /// Returns the header value as the specification spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Connect => "Connect",
            Self::Execute => "Execute",
            Self::Disconnect => "Disconnect",
            Self::NotificationWait => "NotificationWait",
            Self::Ping => "PING",
            Self::Bind => "Bind",
            Self::Unbind => "Unbind",
            Self::Other(name) => name,
        }
    }

    /// Parses a header value; servers compare request types case-insensitively.
    pub fn parse(value: &str) -> Self {
        const KNOWN: [RequestType; 7] = [
            RequestType::Connect,
            RequestType::Execute,
            RequestType::Disconnect,
            RequestType::NotificationWait,
            RequestType::Ping,
            RequestType::Bind,
            RequestType::Unbind,
        ];
        KNOWN
            .into_iter()
            .find(|known| known.as_str().eq_ignore_ascii_case(value))
            .unwrap_or_else(|| Self::Other(value.to_owned()))
    }
}

impl fmt::Display for RequestType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `{GUID}:counter` value, the form of X-RequestId and X-ClientInfo
/// (MS-OXCMAPIHTTP 2.2.3.1.2 and 2.2.3.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct GuidCounter {
    /// Fixed per session context (X-RequestId) or per client instance (X-ClientInfo).
    pub guid: Uuid,
    /// Strictly increasing per request (X-RequestId).
    pub counter: u64,
}

impl GuidCounter {
    /// Returns the same GUID with the next counter value.
    pub fn next(self) -> Self {
        Self {
            guid: self.guid,
            counter: self.counter.wrapping_add(1),
        }
    }
}

impl fmt::Display for GuidCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{{}}}:{}",
            self.guid.hyphenated().to_string().to_uppercase(),
            self.counter
        )
    }
}

/// A `{GUID}:counter` value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not of the form {{GUID}}:counter")]
pub struct BadGuidCounter {
    /// The value as received.
    pub value: String,
}

impl FromStr for GuidCounter {
    type Err = BadGuidCounter;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let bad = || BadGuidCounter {
            value: value.to_owned(),
        };
        let (guid, counter) = value.trim().split_once(':').ok_or_else(bad)?;
        let guid = guid
            .strip_prefix('{')
            .and_then(|g| g.strip_suffix('}'))
            .ok_or_else(bad)?;
        Ok(Self {
            guid: Uuid::parse_str(guid).map_err(|_| bad())?,
            counter: counter.parse().map_err(|_| bad())?,
        })
    }
}

/// The cookies of one session context, kept opaque (MS-OXCMAPIHTTP 3.1.5.1): every
/// cookie the server set is sent back on every later request of that context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionCookies {
    cookies: Vec<(String, Secret)>,
}

impl SessionCookies {
    /// Returns true when no cookie is held (before the first Connect).
    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }

    /// Names of the cookies held, for diagnostics (values stay secret).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.cookies.iter().map(|(name, _)| name.as_str())
    }

    /// Stores or replaces one cookie.
    pub fn set(&mut self, name: &str, value: Secret) {
        match self.cookies.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.cookies.push((name.to_owned(), value)),
        }
    }

    /// Applies the `Set-Cookie` headers of a response, but only when the response came
    /// from the MAPI/HTTP endpoint itself (it carries X-ResponseCode): a proxy's or an
    /// authentication layer's response must not move the sequence cookie. Returns whether
    /// the cookies were applied. Attributes (path, expiry) are ignored.
    pub fn apply_response(&mut self, headers: &HeaderMap) -> bool {
        if !headers.contains_key(names::X_RESPONSE_CODE) {
            return false;
        }
        for value in headers.get_all(SET_COOKIE) {
            let Ok(text) = value.to_str() else {
                continue;
            };
            let pair = text.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                self.set(name.trim(), Secret::new(value.trim()));
            }
        }
        true
    }

    /// Returns the `Cookie` header value, marked sensitive, or `None` when empty.
    pub fn header_value(&self) -> Option<HeaderValue> {
        if self.cookies.is_empty() {
            return None;
        }
        let text = self
            .cookies
            .iter()
            .map(|(name, value)| format!("{name}={}", value.expose()))
            .collect::<Vec<_>>()
            .join("; ");
        let mut value = HeaderValue::from_str(&text).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

/// Identifying headers of one request: the fields that change from request to request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeaders {
    /// X-RequestType.
    pub request_type: RequestType,
    /// X-RequestId: the session context's GUID and this request's counter.
    pub request_id: GuidCounter,
    /// X-ClientInfo: the client instance's GUID and its context counter.
    pub client_info: GuidCounter,
    /// X-ClientApplication, e.g. `Outlook/16.0.17928.20114`.
    pub client_application: String,
}

/// A header value that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "request header {name} cannot carry the value given (control characters or non-ASCII); fix the configured value"
)]
pub struct BadHeaderValue {
    /// The header at fault.
    pub name: &'static str,
}

impl RequestHeaders {
    /// Builds the header set of a request (MS-OXCMAPIHTTP 2.2.3.1): Content-Type,
    /// X-RequestType, X-RequestId, X-ClientInfo, X-ClientApplication and, when the
    /// context has any, Cookie (sensitive). Content-Length is left to the HTTP client.
    ///
    /// # Errors
    ///
    /// [`BadHeaderValue`] when the client application or request type contains characters
    /// a header cannot carry.
    pub fn to_header_map(&self, cookies: &SessionCookies) -> Result<HeaderMap, BadHeaderValue> {
        let mut map = HeaderMap::new();
        map.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_MAPI));
        let mut put = |name: &'static str, value: String| -> Result<(), BadHeaderValue> {
            let value = HeaderValue::from_str(&value).map_err(|_| BadHeaderValue { name })?;
            map.insert(HeaderName::from_static(name), value);
            Ok(())
        };
        put(names::X_REQUEST_TYPE, self.request_type.as_str().to_owned())?;
        put(names::X_REQUEST_ID, self.request_id.to_string())?;
        put(names::X_CLIENT_INFO, self.client_info.to_string())?;
        put(names::X_CLIENT_APPLICATION, self.client_application.clone())?;
        if let Some(cookie) = cookies.header_value() {
            map.insert(COOKIE, cookie);
        }
        Ok(map)
    }

    /// Reads the identifying headers of a request, as the emulator receives it.
    ///
    /// # Errors
    ///
    /// [`RequestHeaderError`] naming the header that is missing or malformed.
    pub fn from_header_map(headers: &HeaderMap) -> Result<Self, RequestHeaderError> {
        let text = |name: &'static str| -> Result<&str, RequestHeaderError> {
            let value = headers
                .get(name)
                .ok_or(RequestHeaderError::Missing { name })?;
            value
                .to_str()
                .map_err(|_| RequestHeaderError::Malformed { name })
        };
        let parse = |name: &'static str| -> Result<GuidCounter, RequestHeaderError> {
            text(name)?
                .parse()
                .map_err(|_| RequestHeaderError::Malformed { name })
        };
        Ok(Self {
            request_type: RequestType::parse(text(names::X_REQUEST_TYPE)?),
            request_id: parse(names::X_REQUEST_ID)?,
            client_info: parse(names::X_CLIENT_INFO)?,
            client_application: text(names::X_CLIENT_APPLICATION)
                .map(str::to_owned)
                .unwrap_or_default(),
        })
    }
}

/// A request header the server needs that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestHeaderError {
    /// The header is absent (response code 7, Missing Header).
    #[error("request header {name} is missing")]
    Missing {
        /// Header name.
        name: &'static str,
    },
    /// The header does not parse (response code 4, Invalid Header).
    #[error("request header {name} is malformed")]
    Malformed {
        /// Header name.
        name: &'static str,
    },
}

/// X-ResponseCode (MS-OXCMAPIHTTP 2.2.3.3.3). Codes 14 to 18 follow two public
/// implementations of the table; the specification text reached stops at 13.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum ResponseCode {
    /// 0: success; a binary body follows the preamble.
    Success,
    /// 1.
    UnknownFailure,
    /// 2.
    InvalidVerb,
    /// 3.
    InvalidPath,
    /// 4.
    InvalidHeader,
    /// 5.
    InvalidRequestType,
    /// 6: reconnect.
    InvalidContextCookie,
    /// 7.
    MissingHeader,
    /// 8: authenticate.
    AnonymousNotAllowed,
    /// 9: split the batch.
    TooLarge,
    /// 10: the session context expired or is unknown; reconnect.
    ContextNotFound,
    /// 11: the cookie belongs to another user.
    NoPrivilege,
    /// 12.
    InvalidRequestBody,
    /// 13: reconnect.
    MissingCookie,
    /// 14.
    Reserved,
    /// 15: stale sequence cookie or two requests in flight; reconnect.
    InvalidSequence,
    /// 16: the endpoint is disabled on this server.
    EndpointDisabled,
    /// 17.
    InvalidResponse,
    /// 18: retry later.
    EndpointShuttingDown,
    /// Any other value.
    Other(u32),
}

impl ResponseCode {
    /// Maps the numeric value.
    pub fn from_u32(value: u32) -> Self {
        match value {
            0 => Self::Success,
            1 => Self::UnknownFailure,
            2 => Self::InvalidVerb,
            3 => Self::InvalidPath,
            4 => Self::InvalidHeader,
            5 => Self::InvalidRequestType,
            6 => Self::InvalidContextCookie,
            7 => Self::MissingHeader,
            8 => Self::AnonymousNotAllowed,
            9 => Self::TooLarge,
            10 => Self::ContextNotFound,
            11 => Self::NoPrivilege,
            12 => Self::InvalidRequestBody,
            13 => Self::MissingCookie,
            14 => Self::Reserved,
            15 => Self::InvalidSequence,
            16 => Self::EndpointDisabled,
            17 => Self::InvalidResponse,
            18 => Self::EndpointShuttingDown,
            other => Self::Other(other),
        }
    }

    /// Returns the numeric value.
    pub fn as_u32(self) -> u32 {
        match self {
            Self::Success => 0,
            Self::UnknownFailure => 1,
            Self::InvalidVerb => 2,
            Self::InvalidPath => 3,
            Self::InvalidHeader => 4,
            Self::InvalidRequestType => 5,
            Self::InvalidContextCookie => 6,
            Self::MissingHeader => 7,
            Self::AnonymousNotAllowed => 8,
            Self::TooLarge => 9,
            Self::ContextNotFound => 10,
            Self::NoPrivilege => 11,
            Self::InvalidRequestBody => 12,
            Self::MissingCookie => 13,
            Self::Reserved => 14,
            Self::InvalidSequence => 15,
            Self::EndpointDisabled => 16,
            Self::InvalidResponse => 17,
            Self::EndpointShuttingDown => 18,
            Self::Other(value) => value,
        }
    }

    /// Returns true for the codes whose recovery is a new Connect with the old cookies
    /// (MS-OXCMAPIHTTP 3.2.5.6): 6, 10, 13 and 15.
    pub fn needs_reconnect(self) -> bool {
        matches!(
            self,
            Self::InvalidContextCookie
                | Self::ContextNotFound
                | Self::MissingCookie
                | Self::InvalidSequence
        )
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({self:?})", self.as_u32())
    }
}

/// Facts from the status line and headers of a MAPI/HTTP response, before the body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResponseHead {
    /// X-RequestType echoed by the server, when present.
    pub request_type: Option<RequestType>,
    /// X-PendingPeriod in milliseconds (default 30000).
    pub pending_period_ms: u64,
    /// X-ExpirationInfo in milliseconds, when present.
    pub expiration_ms: Option<u64>,
    /// X-ServerApplication, when present.
    pub server_application: Option<String>,
}

/// A response head that does not lead to a binary body. Each variant is a separate
/// outcome with its own recovery; none carries an empty MAPI code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// HTTP 200 with a non-zero X-ResponseCode: the endpoint refused the request and the
    /// body is diagnostic text.
    #[error(
        "MAPI/HTTP endpoint rejected the request with X-ResponseCode {code}; the body is diagnostic text"
    )]
    Refused {
        /// The code.
        code: ResponseCode,
    },
    /// HTTP status other than 200: the response did not come from a working endpoint
    /// (a proxy, load balancer or the authentication layer).
    #[error(
        "MAPI/HTTP request got HTTP {status} ({}) instead of 200; {}",
        if *.has_response_code { "with X-ResponseCode" } else { "without X-ResponseCode" },
        match .status { 401 => "authenticate again, then retry", 500..=599 => "retry with back-off, keeping the session cookies", _ => "the URL or a front end is misconfigured" }
    )]
    HttpStatus {
        /// The status code.
        status: u16,
        /// Whether X-ResponseCode was present anyway.
        has_response_code: bool,
    },
    /// HTTP 200 without X-ResponseCode: something in front of the endpoint sent it.
    #[error(
        "MAPI/HTTP response has HTTP 200 but no X-ResponseCode; it did not come from the endpoint: retry with back-off"
    )]
    MissingResponseCode,
    /// X-ResponseCode is present but not a number.
    #[error("MAPI/HTTP response has a malformed X-ResponseCode `{value}`")]
    BadResponseCode {
        /// The value received.
        value: String,
    },
    /// X-ResponseCode 0 but the body is HTML, not a MAPI/HTTP body.
    #[error(
        "MAPI/HTTP response says success but its Content-Type is `{content_type}`; treat it as a failed request"
    )]
    HtmlBody {
        /// The Content-Type received.
        content_type: String,
    },
}

impl HeadError {
    /// Returns true when retrying the same request later, with the same cookies, is the
    /// right recovery (a 5xx or a response from in front of the endpoint).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::HttpStatus { status, .. } => (500..=599).contains(status),
            Self::MissingResponseCode => true,
            Self::Refused { code } => matches!(
                code,
                ResponseCode::UnknownFailure
                    | ResponseCode::InvalidResponse
                    | ResponseCode::EndpointShuttingDown
            ),
            _ => false,
        }
    }

    /// Returns true when the server requires authentication.
    pub fn needs_authentication(&self) -> bool {
        matches!(self, Self::HttpStatus { status: 401, .. })
            || matches!(
                self,
                Self::Refused {
                    code: ResponseCode::AnonymousNotAllowed
                }
            )
    }
}

impl ResponseHead {
    /// Classifies a response by status and headers (MS-OXCMAPIHTTP 2.2.3.3): only an
    /// HTTP 200 with X-ResponseCode 0 and a non-HTML content type leads to a body.
    ///
    /// # Errors
    ///
    /// [`HeadError`], one variant per outcome.
    pub fn classify(status: StatusCode, headers: &HeaderMap) -> Result<Self, HeadError> {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let code = headers.get(names::X_RESPONSE_CODE);
        if status != StatusCode::OK {
            return Err(HeadError::HttpStatus {
                status: status.as_u16(),
                has_response_code: code.is_some(),
            });
        }
        let Some(code) = code else {
            return Err(HeadError::MissingResponseCode);
        };
        let code_text = code.to_str().unwrap_or("").trim();
        let value: u32 = code_text.parse().map_err(|_| HeadError::BadResponseCode {
            value: String::from_utf8_lossy(code.as_bytes()).into_owned(),
        })?;
        let code = ResponseCode::from_u32(value);
        if code != ResponseCode::Success {
            return Err(HeadError::Refused { code });
        }
        if let Some(content_type) = text(CONTENT_TYPE.as_str())
            && content_type.to_ascii_lowercase().starts_with("text/html")
        {
            return Err(HeadError::HtmlBody {
                content_type: content_type.to_owned(),
            });
        }
        Ok(Self {
            request_type: text(names::X_REQUEST_TYPE).map(RequestType::parse),
            pending_period_ms: text(names::X_PENDING_PERIOD)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(30_000),
            expiration_ms: text(names::X_EXPIRATION_INFO).and_then(|v| v.trim().parse().ok()),
            server_application: text(names::X_SERVER_APPLICATION).map(str::to_owned),
        })
    }
}

/// A keep-alive or completion token of the response preamble (MS-OXCMAPIHTTP 2.2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum MetaTag {
    /// The server accepted the request.
    Processing,
    /// The server is still working (one per X-PendingPeriod).
    Pending,
    /// Processing finished; additional headers follow.
    Done,
}

/// The additional headers that follow DONE in the body (MS-OXCMAPIHTTP 2.2.3.3).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AdditionalHeaders {
    /// X-ElapsedTime as sent: milliseconds per the specification, seconds on gromox.
    pub elapsed_time: Option<u64>,
    /// X-StartTime, an RFC 1123 date, as sent.
    pub start_time: Option<String>,
    /// Every header line in order, including the two above.
    pub all: Vec<(String, String)>,
}

/// Limits of [`ResponseReader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderLimits {
    /// Most bytes of additional headers after DONE.
    pub max_header_bytes: usize,
    /// Most bytes of binary body.
    pub max_body_bytes: usize,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: 8 * 1024,
            // An Execute response carries at most MaxRopOut (0x40000 typical) of ROP
            // output plus an auxiliary buffer; 16 MiB leaves ample room.
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Error of a response body whose framing is incomplete, corrupt or too large.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// The stream ended before the binary body could start.
    #[error(
        "MAPI/HTTP response body ended at byte {offset} while {state}; the connection closed early"
    )]
    Incomplete {
        /// Bytes received in all.
        offset: usize,
        /// Part of the body the reader was waiting for.
        state: &'static str,
    },
    /// The bytes are not a MAPI/HTTP response preamble.
    #[error("MAPI/HTTP response body is corrupt at byte {offset}: {what}")]
    Corrupt {
        /// Offset in the body.
        offset: usize,
        /// Description of the bytes found.
        what: String,
    },
    /// The body starts with HTML: a diagnostic page, not a MAPI/HTTP body.
    #[error("MAPI/HTTP response body is an HTML page, not a MAPI/HTTP body; the request failed")]
    HtmlBody,
    /// More bytes than the limits allow.
    #[error(
        "MAPI/HTTP response {part} exceeds its limit of {limit} bytes; raise ReaderLimits if the server is trusted"
    )]
    OverLimit {
        /// "additional headers" or "body".
        part: &'static str,
        /// The limit.
        limit: usize,
    },
}

/// One step of [`ResponseReader::next_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadEvent {
    /// More bytes are needed before anything new can be reported.
    NeedMore,
    /// A keep-alive token (PROCESSING or PENDING): reset the read timeout.
    KeepAlive(MetaTag),
    /// DONE and the additional headers were read; the binary body follows.
    Headers(AdditionalHeaders),
    /// In the binary body: keep feeding until the stream ends, then call
    /// [`ResponseReader::finish`].
    InBody,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Tokens,
    Headers,
    Body,
}

/// Incremental reader of a response body (after de-chunking): keep-alive tokens with
/// or without line ends, DONE, the additional headers, then the binary body.
#[derive(Debug, Clone)]
pub struct ResponseReader {
    limits: ReaderLimits,
    state: State,
    buf: Vec<u8>,
    // Bytes of `buf` already consumed; bytes before it are dropped when convenient.
    pos: usize,
    // Total bytes dropped from the front of `buf`, for error offsets.
    dropped: usize,
    headers: AdditionalHeaders,
    header_bytes: usize,
    keep_alives: usize,
}

impl Default for ResponseReader {
    fn default() -> Self {
        Self::new(ReaderLimits::default())
    }
}

impl ResponseReader {
    /// Creates a reader with the given limits.
    pub fn new(limits: ReaderLimits) -> Self {
        Self {
            limits,
            state: State::Tokens,
            buf: Vec::new(),
            pos: 0,
            dropped: 0,
            headers: AdditionalHeaders::default(),
            header_bytes: 0,
            keep_alives: 0,
        }
    }

    /// Number of PROCESSING and PENDING tokens seen so far.
    pub fn keep_alives(&self) -> usize {
        self.keep_alives
    }

    /// Appends received bytes.
    ///
    /// # Errors
    ///
    /// [`FramingError::OverLimit`] when the body grows past its limit.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), FramingError> {
        if self.state != State::Body && self.pos > 0 {
            self.buf.drain(..self.pos);
            self.dropped += self.pos;
            self.pos = 0;
        }
        if self.state == State::Body
            && self.buf.len() - self.pos + data.len() > self.limits.max_body_bytes
        {
            return Err(FramingError::OverLimit {
                part: "body",
                limit: self.limits.max_body_bytes,
            });
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Reports the next token or the additional headers, or that more bytes are needed.
    ///
    /// # Errors
    ///
    /// [`FramingError::Corrupt`] or [`FramingError::HtmlBody`] for bytes that are not a
    /// preamble, [`FramingError::OverLimit`] for oversized headers or body.
    pub fn next_event(&mut self) -> Result<ReadEvent, FramingError> {
        loop {
            match self.state {
                State::Tokens => {
                    let rest = self.buf.get(self.pos..).unwrap_or(&[]);
                    // Line ends are optional after keep-alives: gromox sends a bare
                    // `PENDING` chunk, so skip any CR and LF between tokens.
                    let skip = rest
                        .iter()
                        .take_while(|&&b| b == b'\r' || b == b'\n')
                        .count();
                    self.pos += skip;
                    let rest = rest.get(skip..).unwrap_or(&[]);
                    if rest.is_empty() {
                        return Ok(ReadEvent::NeedMore);
                    }
                    if rest.first() == Some(&b'<') {
                        return Err(FramingError::HtmlBody);
                    }
                    let tokens: [(&[u8], MetaTag); 3] = [
                        (b"PROCESSING", MetaTag::Processing),
                        (b"PENDING", MetaTag::Pending),
                        (b"DONE", MetaTag::Done),
                    ];
                    let mut matched = None;
                    let mut partial = false;
                    for (text, tag) in tokens {
                        if rest.starts_with(text) {
                            matched = Some((text.len(), tag));
                            break;
                        }
                        if text.starts_with(rest) {
                            partial = true;
                        }
                    }
                    match matched {
                        Some((len, MetaTag::Done)) => {
                            // DONE ends with a line end that is part of the grammar.
                            let after = rest.get(len..).unwrap_or(&[]);
                            let eol = if after.starts_with(b"\r\n") {
                                2
                            } else if after.starts_with(b"\n") {
                                1
                            } else if after.is_empty() || after == b"\r" {
                                return Ok(ReadEvent::NeedMore);
                            } else {
                                return Err(self.corrupt(len, "DONE is not followed by a line end"));
                            };
                            self.pos += len + eol;
                            self.state = State::Headers;
                        }
                        Some((len, tag)) => {
                            self.pos += len;
                            self.keep_alives += 1;
                            return Ok(ReadEvent::KeepAlive(tag));
                        }
                        None if partial => return Ok(ReadEvent::NeedMore),
                        None => {
                            let shown: String =
                                String::from_utf8_lossy(rest).chars().take(16).collect();
                            return Err(self.corrupt(
                                0,
                                &format!("expected PROCESSING, PENDING or DONE, found `{shown}`"),
                            ));
                        }
                    }
                }
                State::Headers => {
                    let rest = self.buf.get(self.pos..).unwrap_or(&[]);
                    let Some(newline) = rest.iter().position(|&b| b == b'\n') else {
                        if self.header_bytes + rest.len() > self.limits.max_header_bytes {
                            return Err(FramingError::OverLimit {
                                part: "additional headers",
                                limit: self.limits.max_header_bytes,
                            });
                        }
                        return Ok(ReadEvent::NeedMore);
                    };
                    self.header_bytes += newline + 1;
                    if self.header_bytes > self.limits.max_header_bytes {
                        return Err(FramingError::OverLimit {
                            part: "additional headers",
                            limit: self.limits.max_header_bytes,
                        });
                    }
                    let line = rest.get(..newline).unwrap_or(&[]);
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.is_empty() {
                        self.pos += newline + 1;
                        self.state = State::Body;
                        return Ok(ReadEvent::Headers(std::mem::take(&mut self.headers)));
                    }
                    let Ok(line) = std::str::from_utf8(line) else {
                        return Err(self.corrupt(0, "additional header line is not text"));
                    };
                    let Some((name, value)) = line.split_once(':') else {
                        return Err(self.corrupt(0, "additional header line has no colon"));
                    };
                    let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
                    if name.eq_ignore_ascii_case("X-ElapsedTime") {
                        self.headers.elapsed_time = value.parse().ok();
                    } else if name.eq_ignore_ascii_case("X-StartTime") {
                        self.headers.start_time = Some(value.clone());
                    }
                    self.headers.all.push((name, value));
                    self.pos += newline + 1;
                }
                State::Body => {
                    if self.buf.len() - self.pos > self.limits.max_body_bytes {
                        return Err(FramingError::OverLimit {
                            part: "body",
                            limit: self.limits.max_body_bytes,
                        });
                    }
                    return Ok(ReadEvent::InBody);
                }
            }
        }
    }

    fn corrupt(&self, at: usize, what: &str) -> FramingError {
        FramingError::Corrupt {
            offset: self.dropped + self.pos + at,
            what: what.to_owned(),
        }
    }

    /// Ends the stream and returns the binary body.
    ///
    /// # Errors
    ///
    /// [`FramingError::Incomplete`] when the stream ended before the empty line after
    /// the additional headers; the errors of [`ResponseReader::next_event`] for bytes
    /// still unread.
    pub fn finish(mut self) -> Result<Vec<u8>, FramingError> {
        loop {
            match self.next_event()? {
                ReadEvent::KeepAlive(_) | ReadEvent::Headers(_) => continue,
                ReadEvent::InBody => {
                    let body = self.buf.split_off(self.pos);
                    return Ok(body);
                }
                ReadEvent::NeedMore => {
                    return Err(FramingError::Incomplete {
                        offset: self.dropped + self.buf.len(),
                        state: match self.state {
                            State::Tokens => "waiting for DONE",
                            State::Headers => "reading the additional headers",
                            State::Body => "reading the body",
                        },
                    });
                }
            }
        }
    }
}

/// A whole response body split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramedBody {
    /// PROCESSING and PENDING tokens seen.
    pub keep_alives: usize,
    /// The headers after DONE.
    pub headers: AdditionalHeaders,
    /// The binary body (empty for PING).
    pub body: Vec<u8>,
}

/// Splits a complete response body (after de-chunking) into preamble and binary body.
///
/// # Errors
///
/// As [`ResponseReader::finish`], with default limits.
pub fn parse_body(bytes: &[u8]) -> Result<FramedBody, FramingError> {
    let mut reader = ResponseReader::default();
    reader.feed(bytes)?;
    let mut headers = AdditionalHeaders::default();
    loop {
        match reader.next_event()? {
            ReadEvent::KeepAlive(_) => {}
            ReadEvent::Headers(h) => headers = h,
            ReadEvent::InBody | ReadEvent::NeedMore => break,
        }
    }
    let keep_alives = reader.keep_alives();
    let body = reader.finish()?;
    Ok(FramedBody {
        keep_alives,
        headers,
        body,
    })
}

/// Writes a success response body preamble as a server does: PROCESSING, `pending`
/// PENDING tokens, DONE, X-ElapsedTime, X-StartTime and the empty line.
pub fn write_preamble(pending: usize, elapsed_ms: u64, start_time: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"PROCESSING\r\n");
    for _ in 0..pending {
        out.extend_from_slice(b"PENDING\r\n");
    }
    out.extend_from_slice(b"DONE\r\n");
    out.extend_from_slice(format!("X-ElapsedTime: {elapsed_ms}\r\n").as_bytes());
    out.extend_from_slice(format!("X-StartTime: {start_time}\r\n\r\n").as_bytes());
}

/// Fuzz entry point, shared by the cargo-fuzz target and a stable test: reads `data` as
/// a response body in one piece and in two pieces split at every offset given by the
/// first byte, and checks both readings agree.
///
/// # Panics
///
/// Panics only when the two readings differ, which is the bug the fuzzer looks for.
#[doc(hidden)]
#[allow(clippy::panic)]
pub fn fuzz_check(data: &[u8]) {
    let whole = parse_body(data);
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (head, tail) = data.split_at(split);
    let streamed = read_in_two_pieces(head, tail);
    match (&whole, &streamed) {
        (Ok(a), Ok(b)) if a.body == *b => {}
        (Err(_), Err(_)) => {}
        _ => panic!("whole and split readings differ at split {split}: {whole:?} vs {streamed:?}"),
    }
}

fn read_in_two_pieces(head: &[u8], tail: &[u8]) -> Result<Vec<u8>, FramingError> {
    let mut reader = ResponseReader::default();
    reader.feed(head)?;
    while !matches!(
        reader.next_event()?,
        ReadEvent::NeedMore | ReadEvent::InBody
    ) {}
    reader.feed(tail)?;
    reader.finish()
}
