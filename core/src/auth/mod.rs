//! Credentials and the authentication schemes both backends share.
//!
//! The caller chooses the credentials; the HTTP drivers of the EWS and MAPI backends
//! turn them into `Authorization` headers. Bearer tokens come from a [`TokenProvider`]
//! that the embedder implements, so it can refresh tokens on its own schedule.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::Secret;

/// A boxed future, used where a trait must stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a backend authenticates to the server.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Credentials {
    /// HTTP Basic (RFC 7617). Only over TLS in production.
    Basic {
        /// User name, usually the mailbox's address.
        username: String,
        /// Password.
        password: Secret,
    },
    /// NTLM, with the three-message handshake on one connection the client owns.
    Ntlm {
        /// User name, optionally `DOMAIN\user` or `user@domain`.
        username: String,
        /// Password.
        password: Secret,
    },
    /// SPNEGO (Negotiate), falling back to NTLM inside it.
    Negotiate {
        /// User name, optionally `DOMAIN\user` or `user@domain`.
        username: String,
        /// Password.
        password: Secret,
    },
    /// OAuth2 bearer token from an embedder-supplied provider.
    Bearer(Arc<dyn TokenProvider>),
}

/// A source of OAuth2 access tokens, implemented by the embedder.
pub trait TokenProvider: Send + Sync + fmt::Debug {
    /// Returns a valid access token, refreshing it first when it is about to expire.
    fn access_token(&self) -> BoxFuture<'_, Result<Secret, AuthError>>;

    /// Tells the provider that the server rejected `token` (HTTP 401), so the next call
    /// to [`TokenProvider::access_token`] must not return it again.
    fn invalidate(&self, token: &Secret);
}

/// A token provider that always returns the same token, for tests and static tokens.
#[derive(Debug, Clone)]
pub struct StaticToken(pub Secret);

impl TokenProvider for StaticToken {
    fn access_token(&self) -> BoxFuture<'_, Result<Secret, AuthError>> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }

    fn invalidate(&self, _token: &Secret) {}
}

/// Why authentication failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The server rejected the credentials.
    #[error("the server rejected the credentials for {username}: check the user name and password")]
    Rejected {
        /// The user name that was rejected (never the password).
        username: String,
    },
    /// The server offers none of the schemes exmux can use with these credentials.
    #[error("unsupported authentication schemes (offered: {offered}); configure one of them")]
    UnsupportedSchemes {
        /// The schemes the server offered, comma-separated.
        offered: String,
    },
    /// A token provider failed to produce a token.
    #[error("the token provider failed: {reason}")]
    TokenProvider {
        /// What went wrong, without the token.
        reason: String,
    },
    /// The server's challenge could not be parsed.
    #[error("invalid authentication challenge from the server: {reason}")]
    InvalidChallenge {
        /// What was malformed.
        reason: String,
    },
}
