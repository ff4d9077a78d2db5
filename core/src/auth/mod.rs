//! Credentials and the authentication schemes both backends share.
//!
//! The caller chooses the credentials; the HTTP drivers of the EWS and MAPI backends
//! turn them into `Authorization` headers. Bearer tokens come from a [`TokenProvider`]
//! that the embedder implements, so it can refresh tokens on its own schedule.
//!
//! - [`challenge`]: `WWW-Authenticate` parsing and the choice of scheme.
//! - [`ntlm`]: NTLM and Negotiate tokens for a handshake the driver runs on one connection.
//! - [`oauth`]: OAuth2 device-code and authorization-code flows, the token cache and
//!   [`oauth::OAuthTokenProvider`].
//! - [`basic_header`] and [`bearer_header`]: `Authorization` values for the other schemes.

pub mod challenge;
pub mod ntlm;
pub mod oauth;

pub use challenge::{AuthScheme, Challenge, choose_challenge, parse_challenges};
pub use ntlm::NtlmHandshake;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::Secret;

/// Builds the `Authorization` value for HTTP Basic (RFC 7617 section 2): the scheme and
/// `base64(username ":" password)` in UTF-8.
pub fn basic_header(username: &str, password: &Secret) -> Secret {
    let pair = format!("{username}:{}", password.expose());
    Secret::new(format!("Basic {}", STANDARD.encode(pair)))
}

/// Builds the `Authorization` value for an OAuth2 bearer token (RFC 6750 section 2.1).
pub fn bearer_header(token: &Secret) -> Secret {
    Secret::new(format!("Bearer {}", token.expose()))
}

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
    /// The server rejected the OAuth2 bearer token, and again the one fetched after it.
    #[error(
        "the server rejected the OAuth2 bearer token, also after a refresh: sign in again \
         (exmux login), or check that the token's audience and scopes fit this server"
    )]
    TokenRejected,
    /// The server offers none of the schemes exmux can use with these credentials.
    #[error("unsupported auth schemes (offered: {offered}): set [auth] method to one of them")]
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
    /// The NTLM or Negotiate handshake failed on the client side.
    #[error("NTLM authentication failed: {reason}")]
    Ntlm {
        /// What failed, without any key material.
        reason: String,
    },
    /// The configured user name has no form NTLM accepts.
    #[error(
        "invalid user name {username:?} for NTLM: {reason}; use user, DOMAIN\\user or user@domain"
    )]
    InvalidUsername {
        /// The user name as configured.
        username: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The identity provider needs the user to sign in again or to grant consent.
    #[error("{reason}: run `exmux login` to sign in again")]
    InteractionRequired {
        /// What the identity provider reported, such as "consent required for scope X".
        reason: String,
    },
    /// An OAuth2 request to the identity provider failed.
    #[error("OAuth2 {operation} failed: {reason}")]
    OAuth {
        /// The request, such as "token refresh" or "device authorization".
        operation: &'static str,
        /// What went wrong, without any token or code.
        reason: String,
    },
    /// The token cache file could not be read or written.
    #[error("token cache {path}: {reason}")]
    TokenCache {
        /// The cache file.
        path: String,
        /// What went wrong and what to do.
        reason: String,
    },
}
