//! Errors of the EWS codec: SOAP faults, bodies that are not XML, malformed XML,
//! unexpected structure, and per-message errors (MS-OXWSCDATA 2.2.4.67 ResponseMessageType).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fmt;

use crate::xml::Element;

/// Everything that can go wrong encoding a request or decoding a response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EwsError {
    /// The server answered with a SOAP fault (any HTTP status).
    #[error("{0}")]
    Fault(Box<SoapFault>),

    /// The body is not XML at all: an HTML error page, plain text, or nothing.
    #[error(
        "{operation}: HTTP {status} with a non-XML body ({content_type}): {snippet:?}; \
         this is a server or proxy error, not an EWS answer"
    )]
    NotXml {
        /// Operation whose response this was, when known.
        operation: &'static str,
        /// HTTP status code.
        status: u16,
        /// Content-Type header, or `none`.
        content_type: String,
        /// The first characters of the body (lossy UTF-8), for the log.
        snippet: String,
    },

    /// The body looked like XML but is not well-formed (or uses a DTD or an unknown entity).
    #[error("malformed XML at byte {offset}: {reason}")]
    MalformedXml {
        /// Byte offset into the body where the reader stopped.
        offset: u64,
        /// What the reader found.
        reason: String,
    },

    /// Well-formed XML that does not have the structure of the expected EWS message.
    #[error("{operation}: expected {expected}, found {found}")]
    Unexpected {
        /// The operation being decoded.
        operation: &'static str,
        /// What the decoder looked for.
        expected: &'static str,
        /// What was there instead.
        found: String,
    },

    /// A single response message reported an error (ResponseClass Error).
    #[error("{operation}: {error}")]
    Message {
        /// The operation.
        operation: &'static str,
        /// The response message's error.
        error: Box<MessageError>,
    },

    /// A request value cannot be written (for example an empty id list).
    #[error("{operation}: cannot write request: {reason}")]
    InvalidRequest {
        /// The operation.
        operation: &'static str,
        /// What is wrong and what to pass instead.
        reason: String,
    },

    /// The server did not advance the paging offset while saying more items remain.
    #[error(
        "{operation}: paging stalled at offset {offset} with IncludesLastItemInRange=false; \
         restart the enumeration"
    )]
    PagingStalled {
        /// The operation.
        operation: &'static str,
        /// The offset that did not advance.
        offset: u32,
    },

    /// The SOAP body holds a response to an operation this crate does not implement.
    #[error("operation {} is not implemented by exmux (ResponseCode {:?})", .0.element, .0.codes)]
    NotImplemented(Box<UnimplementedResponse>),
}

impl EwsError {
    /// The EWS response code of a fault or a per-message error, if any.
    pub fn response_code(&self) -> Option<&ResponseCode> {
        match self {
            EwsError::Fault(f) => f.response_code.as_ref(),
            EwsError::Message { error, .. } => Some(&error.code),
            _ => None,
        }
    }

    /// The server's throttling hint, when this error carries one (see [`throttle_hint`]).
    pub fn throttle_hint(&self) -> Option<ThrottleHint> {
        match self {
            EwsError::Fault(f) => f.throttle_hint(),
            EwsError::Message { error, .. } => error.throttle_hint(),
            _ => None,
        }
    }

    /// Whether the server said the sync state is invalid; the caller must restart the
    /// folder's sync from an empty state (retrying the same state cannot help).
    pub fn is_invalid_sync_state(&self) -> bool {
        self.response_code() == Some(&ResponseCode::ErrorInvalidSyncStateData)
    }
}

/// A SOAP 1.1 fault (SOAP 1.1 section 4.4) with the EWS detail (MS-OXWSCDATA 2.2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapFault {
    /// HTTP status the fault came with.
    pub http_status: u16,
    /// `faultcode` text as sent (`a:ErrorServerBusy`, `SOAP:Server`, ...).
    pub faultcode: String,
    /// `faultstring` text.
    pub faultstring: String,
    /// The EWS code from `detail/ResponseCode`, or from the faultcode's local part when it
    /// is an EWS code.
    pub response_code: Option<ResponseCode>,
    /// `detail/Message` text.
    pub message: Option<String>,
    /// `detail/MessageXml`, kept as free-form XML.
    pub message_xml: MessageXml,
}

impl SoapFault {
    /// The throttling hint in this fault.
    pub fn throttle_hint(&self) -> Option<ThrottleHint> {
        throttle_hint(
            self.response_code.as_ref(),
            &self.message_xml,
            self.message.as_deref().or(Some(self.faultstring.as_str())),
        )
    }
}

impl fmt::Display for SoapFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SOAP fault (HTTP {}) {}: {}",
            self.http_status, self.faultcode, self.faultstring
        )?;
        if let Some(prop) = self.message_xml.offending_property() {
            write!(f, " (property {prop}; drop it and retry)")?;
        }
        Ok(())
    }
}

/// The error part of one response message (ResponseClass Error, or a Warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageError {
    /// Error or Warning.
    pub class: ResponseClass,
    /// The response code.
    pub code: ResponseCode,
    /// `MessageText`.
    pub text: Option<String>,
    /// `MessageXml`, free-form.
    pub message_xml: MessageXml,
    /// Position of the message in the response (equal to the request item's position).
    pub index: usize,
    /// ConflictResults/Count of an UpdateItem message, when present.
    pub conflict_count: Option<u32>,
    /// ErrorSubscriptionIds of a GetStreamingEvents message.
    pub subscription_ids: Vec<String>,
}

impl MessageError {
    /// The throttling hint of this message, if it is a throttling code.
    pub fn throttle_hint(&self) -> Option<ThrottleHint> {
        throttle_hint(Some(&self.code), &self.message_xml, self.text.as_deref())
    }

    /// The item or folder does not exist (any more); for an id learned from a sync this
    /// means the item is gone.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.code,
            ResponseCode::ErrorItemNotFound | ResponseCode::ErrorFolderNotFound
        )
    }

    /// The ChangeKey was stale: re-read it (IdOnly) and retry once, never blind-retry.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self.code,
            ResponseCode::ErrorIrresolvableConflict
                | ResponseCode::ErrorChangeKeyRequiredForWriteOperations
        )
    }

    /// The subscription is dead: subscribe again and catch up with an incremental sync.
    pub fn is_subscription_lost(&self) -> bool {
        self.code.is_subscription_lost()
    }
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "message {} {:?} {}", self.index, self.class, self.code)?;
        if let Some(text) = &self.text {
            write!(f, ": {text}")?;
        }
        Ok(())
    }
}

/// ResponseClass (MS-OXWSCDATA 2.2.5.24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseClass {
    /// Success.
    Success,
    /// Warning: the operation partly succeeded.
    Warning,
    /// Error.
    Error,
}

impl ResponseClass {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseClass::Success => "Success",
            ResponseClass::Warning => "Warning",
            ResponseClass::Error => "Error",
        }
    }

    /// Parses the wire name (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "Success" => Some(ResponseClass::Success),
            "Warning" => Some(ResponseClass::Warning),
            "Error" => Some(ResponseClass::Error),
            _ => None,
        }
    }
}

macro_rules! response_codes {
    ($($name:ident),* $(,)?) => {
        /// An EWS ResponseCode (MS-OXWSCDATA 2.2.5.24). Codes this crate does not know are
        /// kept as text in [`ResponseCode::Other`].
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        #[allow(missing_docs)]
        pub enum ResponseCode {
            $($name,)*
            /// A code not listed above, as sent (trimmed).
            Other(String),
        }

        impl ResponseCode {
            /// Parses a code, ignoring surrounding whitespace (servers send some).
            pub fn parse(text: &str) -> Self {
                match text.trim() {
                    $(stringify!($name) => ResponseCode::$name,)*
                    other => ResponseCode::Other(other.to_owned()),
                }
            }

            /// The wire name.
            pub fn as_str(&self) -> &str {
                match self {
                    $(ResponseCode::$name => stringify!($name),)*
                    ResponseCode::Other(s) => s,
                }
            }
        }
    };
}

response_codes!(
    NoError,
    ErrorAccessDenied,
    ErrorChangeKeyRequiredForWriteOperations,
    ErrorConnectionFailed,
    ErrorDeleteDistinguishedFolder,
    ErrorExceededConnectionCount,
    ErrorExpiredSubscription,
    ErrorFolderExists,
    ErrorFolderNotFound,
    ErrorImpersonateUserDenied,
    ErrorInternalServerError,
    ErrorInternalServerTransientError,
    ErrorInvalidChangeKey,
    ErrorInvalidIdMalformed,
    ErrorInvalidOperation,
    ErrorInvalidPropertySet,
    ErrorInvalidRequest,
    ErrorInvalidSubscription,
    ErrorInvalidSyncStateData,
    ErrorInvalidWatermark,
    ErrorIrresolvableConflict,
    ErrorItemNotFound,
    ErrorMailboxMoveInProgress,
    ErrorMissedNotificationEvents,
    ErrorMoveCopyFailed,
    ErrorNameResolutionMultipleResults,
    ErrorNameResolutionNoResults,
    ErrorNonExistentMailbox,
    ErrorParentFolderNotFound,
    ErrorQuotaExceeded,
    ErrorQuotaExceededOnDelete,
    ErrorSchemaValidation,
    ErrorServerBusy,
    ErrorStaleObject,
    ErrorSubscriptionAccessDenied,
    ErrorSubscriptionNotFound,
    ErrorTimeoutExpired,
    ErrorTooManyObjectsOpened,
);

impl ResponseCode {
    /// Codes that mean "slow down": honour the back-off and lower the concurrency.
    pub fn is_throttling(&self) -> bool {
        matches!(
            self,
            ResponseCode::ErrorServerBusy
                | ResponseCode::ErrorExceededConnectionCount
                | ResponseCode::ErrorTooManyObjectsOpened
        )
    }

    /// Codes that mean a subscription id is dead whatever ConnectionStatus says.
    pub fn is_subscription_lost(&self) -> bool {
        matches!(
            self,
            ResponseCode::ErrorInvalidSubscription
                | ResponseCode::ErrorSubscriptionNotFound
                | ResponseCode::ErrorExpiredSubscription
                | ResponseCode::ErrorInvalidWatermark
                | ResponseCode::ErrorMissedNotificationEvents
        )
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `MessageXml` (MS-OXWSCDATA 2.2.4.67), kept as free-form XML: servers put
/// `t:Value Name=".."` pairs, attribute-only `t:FieldURI` elements, inner error codes and
/// more there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageXml {
    /// The child elements of MessageXml.
    pub elements: Vec<Element>,
}

impl MessageXml {
    /// The text of `Value[@Name=name]`.
    pub fn value(&self, name: &str) -> Option<&str> {
        fn find<'a>(els: &'a [Element], name: &str) -> Option<&'a str> {
            for e in els {
                if e.name == "Value" && e.attr("Name") == Some(name) {
                    return Some(e.text.trim());
                }
                if let Some(v) = find(&e.children, name) {
                    return Some(v);
                }
            }
            None
        }
        find(&self.elements, name)
    }

    /// `BackOffMilliseconds`, parsed.
    pub fn back_off_millis(&self) -> Option<u64> {
        self.value("BackOffMilliseconds")
            .and_then(|v| v.parse().ok())
    }

    /// The property a request named wrongly (ErrorInvalidPropertySet and similar): the
    /// `FieldURI`, `ExtendedFieldURI` or `IndexedFieldURI` element's attribute.
    pub fn offending_property(&self) -> Option<&str> {
        fn find(els: &[Element]) -> Option<&str> {
            for e in els {
                match &*e.name {
                    "FieldURI" => return e.attr("FieldURI"),
                    "IndexedFieldURI" => return e.attr("FieldURI"),
                    "ExtendedFieldURI" => {
                        return e
                            .attr("PropertyTag")
                            .or(e.attr("PropertyName"))
                            .or(e.attr("PropertyId"));
                    }
                    _ => {}
                }
                if let Some(v) = find(&e.children) {
                    return Some(v);
                }
            }
            None
        }
        find(&self.elements)
    }

    /// The inner error code of an ErrorInternalServerError
    /// (`Value[@Name=InnerErrorResponseCode]`).
    pub fn inner_error_code(&self) -> Option<ResponseCode> {
        self.value("InnerErrorResponseCode")
            .map(ResponseCode::parse)
    }
}

/// A throttling hint: how long the server asks the client to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleHint {
    /// Suggested wait in milliseconds, when the server gave one (0 is kept: it is a value).
    pub back_off_millis: Option<u64>,
    /// The code that carried it (ErrorServerBusy, ErrorExceededConnectionCount, ...):
    /// connection-count codes mean "lower the concurrency".
    pub lower_concurrency: bool,
}

/// Extracts a throttling hint from a fault or a response message: present when the code
/// is a throttling code (or an ErrorInternalServerError whose inner code is one), with
/// `BackOffMilliseconds` from MessageXml, falling back to "Suggested backoff time N ms"
/// in the message text.
pub fn throttle_hint(
    code: Option<&ResponseCode>,
    message_xml: &MessageXml,
    message_text: Option<&str>,
) -> Option<ThrottleHint> {
    let inner = message_xml.inner_error_code();
    let effective = match (code, &inner) {
        (Some(ResponseCode::ErrorInternalServerError), Some(inner)) if inner.is_throttling() => {
            inner.clone()
        }
        (Some(c), _) => c.clone(),
        (None, _) => return None,
    };
    if !effective.is_throttling() {
        return None;
    }
    let back_off_millis = message_xml
        .back_off_millis()
        .or_else(|| message_text.and_then(suggested_backoff))
        // Some servers put the policy text only in MessageXml (`Value Name="ErrorMessage"`).
        .or_else(|| {
            message_xml
                .value("ErrorMessage")
                .and_then(suggested_backoff)
        });
    Some(ThrottleHint {
        back_off_millis,
        lower_concurrency: !matches!(effective, ResponseCode::ErrorServerBusy)
            || message_text.is_some_and(|t| t.contains("Concurren")),
    })
}

/// Parses "... Suggested backoff time 5000 ms" out of a message text.
fn suggested_backoff(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let at = lower.find("backoff time")?;
    let rest = lower.get(at + "backoff time".len()..)?.trim_start();
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// The envelope of a response to an operation exmux does not implement (ResolveNames,
/// ExpandDL, push notifications, ...): its body element and per-message outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnimplementedResponse {
    /// Local name of the body's first element (`ResolveNamesResponse`).
    pub element: String,
    /// ResponseClass and ResponseCode of each response message.
    pub codes: Vec<(ResponseClass, ResponseCode)>,
    /// The body element, for callers that want to look further.
    pub body: Element,
}
