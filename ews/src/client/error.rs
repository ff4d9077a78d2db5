//! Errors of the EWS HTTP client.

use std::time::Duration;

use exmux_core::auth::AuthError;

use crate::error::EwsError;
use crate::throttle::ThrottleSignal;

/// The error of an EWS call. Every variant names the operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server returned an EWS error: a SOAP fault, an error
    /// response message, or a body that breaks the protocol.
    #[error("{operation}: {source}")]
    Ews {
        /// The operation.
        operation: &'static str,
        /// The codec's error.
        #[source]
        source: EwsError,
    },

    /// Authentication failed. This is the only variant that means "check the
    /// credentials"; a 500 without a challenge never becomes this.
    #[error("{operation}: authentication failed: {source}")]
    Auth {
        /// The operation.
        operation: &'static str,
        /// The failure, without any secret.
        #[source]
        source: AuthError,
    },

    /// The server returned HTTP 500 with no SOAP body and no authentication challenge,
    /// which is how some servers reject an operation they do not implement. The client
    /// remembers it and fails later calls of the operation at once.
    #[error(
        "{operation}: the server does not support this operation (HTTP {status}: \
         {snippet:?}); other operations are unaffected and the credentials are fine"
    )]
    Unsupported {
        /// The operation.
        operation: &'static str,
        /// The HTTP status of the first rejection.
        status: u16,
        /// The start of the body the server sent.
        snippet: String,
    },

    /// The server kept throttling past the retry policy's limits.
    #[error(
        "{operation}: still throttled ({signal}) after {attempts} retries and {waited:?} of \
         waiting; try again later or raise the retry policy's max_total_wait"
    )]
    Throttled {
        /// The operation.
        operation: &'static str,
        /// The last signal.
        signal: ThrottleSignal,
        /// Retries made.
        attempts: u32,
        /// Total time waited.
        waited: Duration,
    },

    /// An HTTP status with a body that is not EWS, outside the cases above (a proxy's
    /// 502, a 404 for a wrong URL).
    #[error(
        "{operation}: HTTP {status} from the server: {snippet:?}; check the EWS URL and the server"
    )]
    Http {
        /// The operation.
        operation: &'static str,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        snippet: String,
    },

    /// The request did not complete within the configured timeout.
    #[error("{operation}: no answer within {after:?}; the server may be overloaded, retry later")]
    Timeout {
        /// The operation.
        operation: &'static str,
        /// The timeout that passed.
        after: Duration,
    },

    /// The connection failed (DNS, TCP, TLS, a reset, a cut body).
    #[error("{operation}: connection to the EWS endpoint failed: {reason}")]
    Transport {
        /// The operation.
        operation: &'static str,
        /// The HTTP stack's description of the failure.
        reason: String,
    },

    /// The response body passed the configured size limit.
    #[error(
        "{operation}: the response body passed the limit of {limit} bytes; raise max_body_bytes or page smaller"
    )]
    BodyTooLarge {
        /// The operation.
        operation: &'static str,
        /// The limit.
        limit: usize,
    },

    /// The client's configuration is invalid.
    #[error("invalid EWS client configuration: {reason}")]
    Config {
        /// The problem and the setting to change.
        reason: String,
    },
}

impl ClientError {
    /// Returns the EWS error inside, if the server returned one.
    pub fn ews(&self) -> Option<&EwsError> {
        match self {
            Self::Ews { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Returns whether the same request may succeed later without a change: timeouts,
    /// transport failures, exhausted throttling and 5xx responses. An unsupported operation,
    /// an authentication failure and EWS errors are not retryable as they are.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Transport { .. } | Self::Throttled { .. } => true,
            Self::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }
}
