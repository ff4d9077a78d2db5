//! Errors of the session client, grouped by who is at fault: the server rejected the
//! request, the server broke the protocol, a proxy in front of the server responded,
//! the network failed, or the caller misused the session.

use crate::body::BodyError;
use crate::ext::ExtError;
use crate::fxics::FxError;
use crate::http::{FramingError, HeadError, ResponseCode};
use crate::rop::RopError;
use exmux_core::auth::AuthError;

/// An error of a MAPI/HTTP session operation. Every variant names the operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The server rejected the credentials (HTTP 401 after authentication).
    #[error("{operation}: authentication failed: {source}")]
    Auth {
        /// The operation.
        operation: &'static str,
        /// The authentication layer's error.
        source: AuthError,
    },
    /// HTTP 503 or another 5xx, or a response without X-ResponseCode, so a proxy in
    /// front of the mailbox server responded. The session's cookies were kept.
    #[error("{operation}: the server is unavailable ({head}); retry later")]
    Unavailable {
        /// The operation.
        operation: &'static str,
        /// The classified response head.
        head: HeadError,
    },
    /// A response that is neither a MAPI/HTTP response nor a retryable failure, such as
    /// an HTML page with X-ResponseCode 0, or a 3xx or 4xx other than 401.
    #[error("{operation}: unexpected HTTP answer: {head}")]
    UnexpectedAnswer {
        /// The operation.
        operation: &'static str,
        /// The classified response head.
        head: HeadError,
    },
    /// The endpoint refused the request with a non-zero X-ResponseCode that reconnecting
    /// does not cure (or that came back right after a fresh Connect).
    #[error(
        "{operation}: the MAPI/HTTP endpoint refused the request with X-ResponseCode {code}{}",
        if *.after_reconnect { " again right after a fresh Connect; the endpoint or its routing is broken, report it to the server's administrator" } else { "" }
    )]
    Refused {
        /// The operation.
        operation: &'static str,
        /// The code.
        code: ResponseCode,
        /// Whether the code came back on a session context created just before.
        after_reconnect: bool,
    },
    /// The session context was lost (expired, stale sequence, server-specific refusal)
    /// while a write was in flight. The session reconnected, but the write is not
    /// replayed because repeating it is not known to be safe.
    #[error(
        "{operation}: the session context was lost (X-ResponseCode {code}); the session reconnected but did not repeat this write: read the object's state and write again if needed"
    )]
    WriteNotReplayed {
        /// The operation.
        operation: &'static str,
        /// The code that ended the old context.
        code: ResponseCode,
    },
    /// The session context was lost while a write batch was being sent in several
    /// Execute requests, after the server had processed the first `applied` of its
    /// `total` requests (in batch order). The session reconnected but did not send the
    /// rest, and the applied requests stay applied.
    #[error(
        "{operation}: the session context was lost (X-ResponseCode {code}) after the server applied the first {applied} of {total} requests of the batch; the session reconnected but did not send the rest: read the objects' state and write the remainder again if needed"
    )]
    WritePartlyApplied {
        /// The operation.
        operation: &'static str,
        /// The code that ended the old context.
        code: ResponseCode,
        /// How many leading requests of the batch the server processed.
        applied: usize,
        /// The number of requests in the batch.
        total: usize,
    },
    /// The session context was replaced while a batch used raw server handles of the
    /// old one (a table, a download or upload context), which died with it. The session
    /// is connected again; start the operation over.
    #[error(
        "{operation}: the session context was replaced and the server objects this request used are gone; start the operation again"
    )]
    HandlesLost {
        /// The operation.
        operation: &'static str,
    },
    /// The response body could not be read or decoded.
    #[error("{operation}: malformed response: {reason}")]
    Protocol {
        /// The operation.
        operation: &'static str,
        /// The malformed part.
        reason: String,
    },
    /// A request-level failure status in the response body (StatusCode or ErrorCode).
    #[error("{operation}: the server returned {field} 0x{value:08X}")]
    Status {
        /// The operation.
        operation: &'static str,
        /// "StatusCode" or "ErrorCode".
        field: &'static str,
        /// The value.
        value: u32,
    },
    /// Connect returned an error code (for example 0x80040115 for an unknown user DN).
    #[error(
        "Connect: the server refused the user DN `{user_dn}` with error 0x{error_code:08X}; check the configured user_dn (autodiscover's LegacyDN)"
    )]
    ConnectRefused {
        /// The DN sent.
        user_dn: String,
        /// The error code.
        error_code: u32,
    },
    /// A ROP failed.
    #[error("{operation}: {rop} failed with 0x{code:08X}")]
    Rop {
        /// The operation.
        operation: &'static str,
        /// The ROP's name.
        rop: &'static str,
        /// ReturnValue.
        code: u32,
    },
    /// A ROP response is missing or has an unexpected shape.
    #[error("{operation}: {rop} response missing or of the wrong shape")]
    MissingResponse {
        /// The operation.
        operation: &'static str,
        /// The ROP's name.
        rop: &'static str,
    },
    /// The server processed none of the requests left in a batch (RopBufferTooSmall,
    /// MS-OXCROPS 2.2.15.1) although MaxRopOut was already at least SizeNeeded, so
    /// sending them again cannot make progress.
    #[error(
        "{operation}: the server's output buffer is too small for the next ROP ({size_needed} bytes needed, MaxRopOut was {max_rop_out}); the server limits its responses below that, so read the value in smaller pieces (a stream) or raise the server's limit"
    )]
    BufferTooSmall {
        /// The operation.
        operation: &'static str,
        /// SizeNeeded.
        size_needed: u16,
        /// The MaxRopOut of the last request sent.
        max_rop_out: u32,
    },
    /// The network failed before a complete answer arrived. For a write, its outcome is
    /// unknown.
    #[error("{operation}: transport failure: {reason}")]
    Transport {
        /// The operation.
        operation: &'static str,
        /// The failure (never a header value).
        reason: String,
    },
    /// The caller misused the session: a handle from before a Disconnect, a request too
    /// large, bad configuration.
    #[error("{operation}: {reason}")]
    Usage {
        /// The operation.
        operation: &'static str,
        /// The problem and the fix.
        reason: String,
    },
    /// The server rejected an ICS sync state.
    #[error(
        "{operation}: the server rejected the stored sync state (0x{code:08X}); a full resynchronization of the folder is needed"
    )]
    InvalidSyncState {
        /// The operation.
        operation: &'static str,
        /// The ROP's ReturnValue.
        code: u32,
    },
}

impl SessionError {
    /// Returns true when retrying the operation later, on the same session, can help.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. }
                | Self::Transport { .. }
                | Self::WriteNotReplayed { .. }
                | Self::WritePartlyApplied { .. }
                | Self::HandlesLost { .. }
        )
    }

    /// Returns true when the credentials need attention.
    pub fn needs_authentication(&self) -> bool {
        matches!(self, Self::Auth { .. })
    }

    pub(crate) fn protocol(operation: &'static str, error: impl std::fmt::Display) -> Self {
        Self::Protocol {
            operation,
            reason: error.to_string(),
        }
    }
}

impl From<(&'static str, BodyError)> for SessionError {
    fn from((operation, error): (&'static str, BodyError)) -> Self {
        Self::protocol(operation, error)
    }
}

impl From<(&'static str, ExtError)> for SessionError {
    fn from((operation, error): (&'static str, ExtError)) -> Self {
        Self::protocol(operation, error)
    }
}

impl From<(&'static str, RopError)> for SessionError {
    fn from((operation, error): (&'static str, RopError)) -> Self {
        Self::protocol(operation, error)
    }
}

impl From<(&'static str, FramingError)> for SessionError {
    fn from((operation, error): (&'static str, FramingError)) -> Self {
        Self::protocol(operation, error)
    }
}

impl From<(&'static str, FxError)> for SessionError {
    fn from((operation, error): (&'static str, FxError)) -> Self {
        Self::protocol(operation, error)
    }
}
