//! OAuth2 for the command line: device-code (RFC 8628) and authorization-code with PKCE
//! (RFC 7636) sign-in against the Microsoft identity platform or any authority with the
//! same endpoint layout, a token cache file readable only by its owner, and
//! [`OAuthTokenProvider`], which refreshes the access token before it expires.
//!
//! The `oauth2` crate builds and parses the requests; they travel over the caller's
//! `reqwest::Client`, so the CA bundle, proxy and TLS options of [`crate::http`] apply.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, CsrfToken, DeviceAuthorizationUrl,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    StandardDeviceAuthorizationResponse, StandardErrorResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{AuthError, BoxFuture, TokenProvider};
use crate::{Clock, Secret};

/// The Microsoft identity platform, the default authority.
pub const MICROSOFT_AUTHORITY: &str = "https://login.microsoftonline.com/";

/// The delegated scope for EWS on Exchange Online, with `offline_access` for a refresh
/// token. MAPI/HTTP on Exchange Online accepts the same token.
pub const DEFAULT_SCOPES: [&str; 2] = [
    "https://outlook.office365.com/EWS.AccessAsUser.All",
    "offline_access",
];

/// How long before expiry a token is refreshed, by default.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The lifetime assumed when a token response carries no `expires_in`: short, so that a
/// missing field costs a refresh rather than a rejected request.
const ASSUMED_LIFETIME: Duration = Duration::from_secs(300);

/// The sign-in flow the command line runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum OAuthFlow {
    /// Device authorization grant (RFC 8628): the user enters a code on another device.
    DeviceCode,
    /// Authorization code with PKCE (RFC 7636) through a browser and a loopback redirect.
    AuthCode,
}

/// OAuth2 settings from the `[auth]` section (`client_id`, `tenant`, `scopes`, `flow`,
/// `token_cache`, `authority`, `redirect_uri`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OAuthConfig {
    /// The application (client) id registered with the identity provider.
    pub client_id: String,
    /// The tenant: a directory id, a domain, `organizations` or `common`.
    pub tenant: String,
    /// The requested scopes.
    pub scopes: Vec<String>,
    /// The sign-in flow.
    pub flow: OAuthFlow,
    /// The token cache file, created with mode 0600.
    pub token_cache: PathBuf,
    /// The authority base URL; endpoints are `{authority}{tenant}/oauth2/v2.0/...`.
    pub authority: Url,
    /// The redirect URI for the authorization-code flow, such as `http://localhost:8400/`.
    pub redirect_uri: Option<Url>,
    /// How long before expiry the access token is refreshed.
    pub refresh_margin: Duration,
}

impl OAuthConfig {
    /// Creates a configuration for `client_id` and `tenant` with the default authority,
    /// scopes, device-code flow and refresh margin.
    ///
    /// # Errors
    ///
    /// [`AuthError::OAuth`] when the default authority cannot be parsed (a build bug).
    pub fn new(
        client_id: impl Into<String>,
        tenant: impl Into<String>,
        token_cache: impl Into<PathBuf>,
    ) -> Result<Self, AuthError> {
        let authority = Url::parse(MICROSOFT_AUTHORITY).map_err(|error| AuthError::OAuth {
            operation: "configuration",
            reason: format!("invalid default authority: {error}"),
        })?;
        Ok(Self {
            client_id: client_id.into(),
            tenant: tenant.into(),
            scopes: DEFAULT_SCOPES
                .iter()
                .map(|scope| (*scope).to_owned())
                .collect(),
            flow: OAuthFlow::DeviceCode,
            token_cache: token_cache.into(),
            authority,
            redirect_uri: None,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
        })
    }

    /// Returns the endpoint `{authority}{tenant}/oauth2/v2.0/{name}`.
    ///
    /// # Errors
    ///
    /// [`AuthError::OAuth`] when the tenant makes the URL invalid.
    pub fn endpoint(&self, name: &str) -> Result<Url, AuthError> {
        let mut base = self.authority.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        base.join(&format!("{}/oauth2/v2.0/{name}", self.tenant))
            .map_err(|error| AuthError::OAuth {
                operation: "configuration",
                reason: format!(
                    "invalid tenant {:?} for authority {}: {error}",
                    self.tenant, self.authority
                ),
            })
    }
}

/// An access token with its refresh token and expiry, as stored in the cache file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedToken {
    /// The access token.
    pub access_token: Secret,
    /// The refresh token, when the provider issued one.
    pub refresh_token: Option<Secret>,
    /// When the access token was issued, in milliseconds since the Unix epoch; 0 when
    /// unknown.
    pub issued_at_millis: u64,
    /// When the access token expires, in milliseconds since the Unix epoch.
    pub expires_at_millis: u64,
    /// The scopes the token was requested for.
    pub scopes: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    access_token: String,
    refresh_token: Option<String>,
    #[serde(default)]
    issued_at_millis: u64,
    expires_at_millis: u64,
    scopes: Vec<String>,
}

/// The token cache file: JSON, created with mode 0600 and replaced atomically.
#[derive(Clone, Debug)]
pub struct TokenCache {
    path: PathBuf,
}

impl TokenCache {
    /// Creates a handle for the cache file at `path`; nothing is read yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Returns the cache file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, reason: impl Into<String>) -> AuthError {
        AuthError::TokenCache {
            path: self.path.display().to_string(),
            reason: reason.into(),
        }
    }

    /// Reads the cached token, or `None` when the file does not exist.
    ///
    /// # Errors
    ///
    /// [`AuthError::TokenCache`] when the file is readable by group or others (on Unix),
    /// cannot be read, or is not a token cache.
    pub fn load(&self) -> Result<Option<CachedToken>, AuthError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(self.error(format!("cannot read: {error}"))),
        };

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&self.path)
                .map_err(|error| self.error(format!("cannot read its permissions: {error}")))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(self.error(format!(
                    "is accessible to other users (mode {:o}); run `chmod 600` on it or delete it and sign in again",
                    mode & 0o777
                )));
            }
        }

        // serde_json's message names a line and column, never the content.
        let file: CacheFile = serde_json::from_str(&text).map_err(|error| {
            self.error(format!(
                "is not a token cache ({error}); delete it and sign in again"
            ))
        })?;
        Ok(Some(CachedToken {
            access_token: Secret::new(file.access_token),
            refresh_token: file.refresh_token.map(Secret::new),
            issued_at_millis: file.issued_at_millis,
            expires_at_millis: file.expires_at_millis,
            scopes: file.scopes,
        }))
    }

    /// Writes `token` to a temporary file with mode 0600 beside the cache, then renames
    /// it over the cache, so a reader never sees a partial file.
    ///
    /// # Errors
    ///
    /// [`AuthError::TokenCache`] when the folder or file cannot be created or written.
    pub fn store(&self, token: &CachedToken) -> Result<(), AuthError> {
        use std::io::Write as _;

        let file = CacheFile {
            access_token: token.access_token.expose().to_owned(),
            refresh_token: token
                .refresh_token
                .as_ref()
                .map(|secret| secret.expose().to_owned()),
            issued_at_millis: token.issued_at_millis,
            expires_at_millis: token.expires_at_millis,
            scopes: token.scopes.clone(),
        };
        let text = serde_json::to_string_pretty(&file)
            .map_err(|error| self.error(format!("cannot serialize: {error}")))?;

        if let Some(parent) = self
            .path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)
                .map_err(|error| self.error(format!("cannot create its folder: {error}")))?;
        }

        let mut temporary_name = self.path.as_os_str().to_owned();
        temporary_name.push(".tmp");
        let temporary = PathBuf::from(temporary_name);

        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut handle = options.open(&temporary).map_err(|error| {
            self.error(format!("cannot create {}: {error}", temporary.display()))
        })?;

        // The mode given to open() applies only when the file is new.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            handle
                .set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|error| self.error(format!("cannot restrict permissions: {error}")))?;
        }
        handle
            .write_all(text.as_bytes())
            .and_then(|()| handle.sync_all())
            .map_err(|error| self.error(format!("cannot write: {error}")))?;
        drop(handle);

        std::fs::rename(&temporary, &self.path)
            .map_err(|error| self.error(format!("cannot replace the cache: {error}")))
    }
}

/// The code and URL the user needs to finish a device-code sign-in (RFC 8628 section 3.3).
#[derive(Clone, Debug)]
pub struct DeviceCodePrompt {
    /// The page where the user enters the code.
    pub verification_uri: String,
    /// The code to enter. It is short-lived and only useful together with a sign-in.
    pub user_code: String,
    /// How long the code stays valid.
    pub expires_in: Duration,
}

/// A started authorization-code sign-in: open [`AuthCodeRequest::authorize_url`] in a
/// browser, receive the redirect, then call [`OAuthTokenProvider::finish_auth_code`].
#[derive(Debug)]
pub struct AuthCodeRequest {
    /// The URL to open in the browser.
    pub authorize_url: Url,
    /// The `state` value the redirect must carry back (CSRF protection).
    pub state: String,
    pkce_verifier: Secret,
}

/// An [`oauth2::AsyncHttpClient`] over a `reqwest::Client`.
struct OAuthHttp<'a>(&'a reqwest::Client);

/// A failed HTTP exchange with the identity provider.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct OAuthHttpError(String);

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp<'_> {
    type Error = OAuthHttpError;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, OAuthHttpError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|error| OAuthHttpError(error.without_url().to_string()))?;

            let mut builder = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = response
                .bytes()
                .await
                .map_err(|error| OAuthHttpError(error.without_url().to_string()))?;
            builder
                .body(body.to_vec())
                .map_err(|error| OAuthHttpError(error.to_string()))
        })
    }
}

/// Maps an identity provider's refusal to an error. Consent and interaction problems get
/// [`AuthError::InteractionRequired`], whose message asks the user to sign in again.
fn token_error<T>(
    operation: &'static str,
    error: RequestTokenError<OAuthHttpError, StandardErrorResponse<T>>,
) -> AuthError
where
    T: oauth2::ErrorResponseType + std::fmt::Display,
{
    match error {
        RequestTokenError::ServerResponse(response) => {
            let code = response.error().to_string();
            let description = response.error_description().cloned().unwrap_or_default();
            // Microsoft's identity platform reports missing consent as AADSTS65001 and a
            // required MFA or password as AADSTS50076/AADSTS50079 inside invalid_grant.
            let consent = description.contains("AADSTS65001") || code == "consent_required";
            let interaction = code == "interaction_required"
                || code == "login_required"
                || code == "invalid_grant"
                || description.contains("AADSTS50076")
                || description.contains("AADSTS50079");
            if consent {
                return AuthError::InteractionRequired {
                    reason: format!(
                        "the application needs consent for the requested scopes ({description})"
                    ),
                };
            }
            if interaction {
                return AuthError::InteractionRequired {
                    reason: format!(
                        "the identity provider requires a new sign-in or password ({code}: {description})"
                    ),
                };
            }
            AuthError::OAuth {
                operation,
                reason: format!("{code}: {description}"),
            }
        }
        RequestTokenError::Request(error) => AuthError::OAuth {
            operation,
            reason: format!("request failed: {error}; check the network, proxy and authority URL"),
        },
        RequestTokenError::Parse(error, _body) => AuthError::OAuth {
            operation,
            reason: format!("invalid response: {error}"),
        },
        RequestTokenError::Other(reason) => AuthError::OAuth { operation, reason },
    }
}

/// A [`TokenProvider`] backed by OAuth2: it reads the token cache, refreshes the access
/// token [`OAuthConfig::refresh_margin`] before it expires, and stores the new tokens.
///
/// Time comes from the injected [`Clock`], so tests move past an expiry without sleeping.
pub struct OAuthTokenProvider {
    config: OAuthConfig,
    http: reqwest::Client,
    cache: TokenCache,
    clock: Arc<dyn Clock>,
    current: tokio::sync::Mutex<Option<CachedToken>>,
    rejected: Mutex<Option<Secret>>,
}

impl std::fmt::Debug for OAuthTokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthTokenProvider")
            .field("client_id", &self.config.client_id)
            .field("tenant", &self.config.tenant)
            .field("token_cache", &self.cache.path)
            .finish_non_exhaustive()
    }
}

impl OAuthTokenProvider {
    /// Creates a provider; the cache file is read at the first token request.
    pub fn new(config: OAuthConfig, http: reqwest::Client, clock: Arc<dyn Clock>) -> Self {
        let cache = TokenCache::new(config.token_cache.clone());
        Self {
            config,
            http,
            cache,
            clock,
            current: tokio::sync::Mutex::new(None),
            rejected: Mutex::new(None),
        }
    }

    /// Returns the configuration.
    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    fn scopes(&self) -> Vec<Scope> {
        self.config.scopes.iter().cloned().map(Scope::new).collect()
    }

    fn token_url(&self) -> Result<TokenUrl, AuthError> {
        Ok(TokenUrl::from_url(self.config.endpoint("token")?))
    }

    fn to_cached(
        &self,
        response: &BasicTokenResponse,
        previous_refresh: Option<Secret>,
    ) -> CachedToken {
        let lifetime = response.expires_in().unwrap_or(ASSUMED_LIFETIME);
        let lifetime_millis = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
        let now = self.clock.now_millis();
        CachedToken {
            access_token: Secret::new(response.access_token().secret().clone()),
            // A refresh response may omit the refresh token, which then stays valid.
            refresh_token: response
                .refresh_token()
                .map(|token| Secret::new(token.secret().clone()))
                .or(previous_refresh),
            issued_at_millis: now,
            expires_at_millis: now.saturating_add(lifetime_millis),
            scopes: self.config.scopes.clone(),
        }
    }

    async fn install(&self, token: CachedToken) -> Result<(), AuthError> {
        self.cache.store(&token)?;
        *self.current.lock().await = Some(token);
        Ok(())
    }

    /// Runs the device-code flow: requests a code, hands it to `prompt` for display, polls
    /// the token endpoint until the user signs in, and stores the tokens in the cache.
    ///
    /// # Errors
    ///
    /// [`AuthError::InteractionRequired`] when consent is missing, [`AuthError::OAuth`]
    /// when the code expires or a request fails, [`AuthError::TokenCache`] when the cache
    /// cannot be written.
    pub async fn device_code_flow(
        &self,
        prompt: impl FnOnce(&DeviceCodePrompt),
    ) -> Result<(), AuthError> {
        let client = BasicClient::new(ClientId::new(self.config.client_id.clone()))
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(self.token_url()?)
            .set_device_authorization_url(DeviceAuthorizationUrl::from_url(
                self.config.endpoint("devicecode")?,
            ));
        let http = OAuthHttp(&self.http);

        let details: StandardDeviceAuthorizationResponse = client
            .exchange_device_code()
            .add_scopes(self.scopes())
            .request_async(&http)
            .await
            .map_err(|error| token_error("device authorization", error))?;

        prompt(&DeviceCodePrompt {
            verification_uri: details.verification_uri().to_string(),
            user_code: details.user_code().secret().clone(),
            expires_in: details.expires_in(),
        });

        let response = client
            .exchange_device_access_token(&details)
            .request_async(&http, tokio::time::sleep, None)
            .await
            .map_err(|error| token_error("device-code token request", error))?;
        self.install(self.to_cached(&response, None)).await
    }

    /// Starts the authorization-code flow with PKCE (S256) and returns the URL to open.
    ///
    /// # Errors
    ///
    /// [`AuthError::OAuth`] when no `redirect_uri` is configured or the endpoints are
    /// invalid.
    pub fn start_auth_code(&self) -> Result<AuthCodeRequest, AuthError> {
        let redirect = self
            .config
            .redirect_uri
            .clone()
            .ok_or_else(|| AuthError::OAuth {
                operation: "authorization",
                reason:
                    "the auth-code flow needs [auth] redirect_uri, such as http://localhost:8400/"
                        .to_owned(),
            })?;
        let client = BasicClient::new(ClientId::new(self.config.client_id.clone()))
            .set_auth_uri(AuthUrl::from_url(self.config.endpoint("authorize")?))
            .set_redirect_uri(RedirectUrl::from_url(redirect));

        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (authorize_url, state) = client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(self.scopes())
            .set_pkce_challenge(challenge)
            .url();
        Ok(AuthCodeRequest {
            authorize_url,
            state: state.secret().clone(),
            pkce_verifier: Secret::new(verifier.secret().clone()),
        })
    }

    /// Exchanges the authorization `code` from the redirect for tokens and stores them.
    ///
    /// # Errors
    ///
    /// [`AuthError::OAuth`] when `returned_state` differs from the request's state (a
    /// forged redirect) or the exchange fails; [`AuthError::InteractionRequired`] when
    /// consent is missing; [`AuthError::TokenCache`] when the cache cannot be written.
    pub async fn finish_auth_code(
        &self,
        request: AuthCodeRequest,
        code: Secret,
        returned_state: &str,
    ) -> Result<(), AuthError> {
        if returned_state != request.state {
            return Err(AuthError::OAuth {
                operation: "authorization",
                reason: "the redirect's state does not match the request; start the sign-in again"
                    .to_owned(),
            });
        }
        let redirect = self
            .config
            .redirect_uri
            .clone()
            .ok_or_else(|| AuthError::OAuth {
                operation: "authorization",
                reason: "the auth-code flow needs [auth] redirect_uri".to_owned(),
            })?;
        let client = BasicClient::new(ClientId::new(self.config.client_id.clone()))
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(self.token_url()?)
            .set_redirect_uri(RedirectUrl::from_url(redirect));

        let response = client
            .exchange_code(AuthorizationCode::new(code.expose().to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(
                request.pkce_verifier.expose().to_owned(),
            ))
            .request_async(&OAuthHttp(&self.http))
            .await
            .map_err(|error| token_error("authorization code exchange", error))?;
        self.install(self.to_cached(&response, None)).await
    }

    async fn refresh(&self, refresh_token: &Secret) -> Result<CachedToken, AuthError> {
        let client = BasicClient::new(ClientId::new(self.config.client_id.clone()))
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(self.token_url()?);
        let token = RefreshToken::new(refresh_token.expose().to_owned());
        let response = client
            .exchange_refresh_token(&token)
            .add_scopes(self.scopes())
            .request_async(&OAuthHttp(&self.http))
            .await
            .map_err(|error| token_error("token refresh", error))?;
        tracing::debug!(client_id = %self.config.client_id, "refreshed the OAuth2 access token");
        Ok(self.to_cached(&response, Some(refresh_token.clone())))
    }

    fn is_rejected(&self, token: &Secret) -> bool {
        self.rejected
            .lock()
            .map(|rejected| rejected.as_ref() == Some(token))
            .unwrap_or(false)
    }

    async fn current_token(&self) -> Result<Secret, AuthError> {
        let mut current = self.current.lock().await;
        if current.is_none() {
            *current = self.cache.load()?;
        }
        let Some(token) = current.clone() else {
            return Err(AuthError::InteractionRequired {
                reason: format!(
                    "no signed-in account in the token cache {}",
                    self.cache.path.display()
                ),
            });
        };

        // A margin longer than half the token's lifetime would refresh on every call, so
        // short-lived tokens are refreshed at half their lifetime instead.
        let configured = u64::try_from(self.config.refresh_margin.as_millis()).unwrap_or(u64::MAX);
        let margin = if token.issued_at_millis == 0 {
            configured
        } else {
            configured.min(
                token
                    .expires_at_millis
                    .saturating_sub(token.issued_at_millis)
                    / 2,
            )
        };
        let fresh = self.clock.now_millis().saturating_add(margin) < token.expires_at_millis;
        if fresh && !self.is_rejected(&token.access_token) {
            return Ok(token.access_token);
        }

        let Some(refresh_token) = token.refresh_token.clone() else {
            return Err(AuthError::InteractionRequired {
                reason: "the access token expired and no refresh token was issued".to_owned(),
            });
        };
        let renewed = self.refresh(&refresh_token).await?;
        self.cache.store(&renewed)?;
        let access = renewed.access_token.clone();
        *current = Some(renewed);
        Ok(access)
    }
}

impl TokenProvider for OAuthTokenProvider {
    fn access_token(&self) -> BoxFuture<'_, Result<Secret, AuthError>> {
        Box::pin(self.current_token())
    }

    fn invalidate(&self, token: &Secret) {
        if let Ok(mut rejected) = self.rejected.lock() {
            *rejected = Some(token.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    fn token(access: &str, expires_at_millis: u64) -> CachedToken {
        CachedToken {
            access_token: Secret::new(access),
            refresh_token: Some(Secret::new("refresh-secret-value")),
            issued_at_millis: 0,
            expires_at_millis,
            scopes: vec!["scope".to_owned()],
        }
    }

    #[test]
    fn endpoint_joins_authority_and_tenant() {
        let mut config = OAuthConfig::new("client", "contoso.example", "/tmp/unused").unwrap();
        assert_eq!(
            config.endpoint("token").unwrap().as_str(),
            "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/token"
        );
        config.authority = Url::parse("http://127.0.0.1:9/base").unwrap();
        assert_eq!(
            config.endpoint("devicecode").unwrap().as_str(),
            "http://127.0.0.1:9/base/contoso.example/oauth2/v2.0/devicecode"
        );
    }

    #[cfg(unix)]
    #[test]
    fn cache_file_is_owner_only_and_round_trips() {
        use std::os::unix::fs::PermissionsExt as _;

        let folder = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(folder.path().join("nested").join("tokens.json"));
        assert!(cache.load().unwrap().is_none());

        let stored = token("access-secret-value", 42);
        cache.store(&stored).unwrap();
        let mode = std::fs::metadata(cache.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(cache.load().unwrap(), Some(stored));
    }

    #[cfg(unix)]
    #[test]
    fn cache_store_tightens_existing_file() {
        use std::os::unix::fs::PermissionsExt as _;

        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("tokens.json");
        let temporary = folder.path().join("tokens.json.tmp");
        std::fs::write(&temporary, "old").unwrap();
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o644)).unwrap();

        TokenCache::new(&path).store(&token("a", 1)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn cache_readable_by_others_is_rejected() {
        use std::os::unix::fs::PermissionsExt as _;

        let folder = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(folder.path().join("tokens.json"));
        cache.store(&token("access-secret-value", 1)).unwrap();
        std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o644)).unwrap();

        let error = cache.load().unwrap_err();
        let message = error.to_string();
        assert!(message.contains("chmod 600"), "{message}");
        assert!(!message.contains("access-secret-value"));
    }

    #[test]
    fn corrupt_cache_error_hides_content() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("tokens.json");
        std::fs::write(&path, "{\"access_token\": \"leaky-token-value\", ").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let message = TokenCache::new(&path).load().unwrap_err().to_string();
        assert!(message.contains("not a token cache"), "{message}");
        assert!(!message.contains("leaky-token-value"));
    }

    #[tokio::test]
    async fn fresh_cached_token_needs_no_request() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("tokens.json");
        let clock = ManualClock::new(1_000_000);
        TokenCache::new(&path)
            .store(&token("cached-access", 1_000_000 + 3_600_000))
            .unwrap();

        let mut config = OAuthConfig::new("client", "tenant", &path).unwrap();
        // Port 9 on loopback: a refresh attempt here would fail the test.
        config.authority = Url::parse("http://127.0.0.1:9/").unwrap();
        let provider =
            OAuthTokenProvider::new(config, reqwest::Client::new(), Arc::new(clock.clone()));
        assert_eq!(
            provider.access_token().await.unwrap().expose(),
            "cached-access"
        );

        // Inside the refresh margin the provider must refresh, and the refresh fails here.
        clock.advance(Duration::from_secs(3_600 - 299));
        let error = provider.access_token().await.unwrap_err();
        assert!(
            matches!(
                error,
                AuthError::OAuth {
                    operation: "token refresh",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[tokio::test]
    async fn short_token_refreshes_at_half_life() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("tokens.json");
        let clock = ManualClock::new(1_000_000);
        let mut short = token("short-access", 1_000_000 + 300_000);
        short.issued_at_millis = 1_000_000;
        TokenCache::new(&path).store(&short).unwrap();

        let mut config = OAuthConfig::new("client", "tenant", &path).unwrap();
        config.authority = Url::parse("http://127.0.0.1:9/").unwrap();
        let provider =
            OAuthTokenProvider::new(config, reqwest::Client::new(), Arc::new(clock.clone()));

        // The default 300 s margin equals the lifetime, so half the lifetime applies.
        clock.advance(Duration::from_secs(149));
        assert_eq!(
            provider.access_token().await.unwrap().expose(),
            "short-access"
        );
        clock.advance(Duration::from_secs(2));
        assert!(provider.access_token().await.is_err());
    }

    #[tokio::test]
    async fn empty_cache_asks_for_sign_in() {
        let folder = tempfile::tempdir().unwrap();
        let config = OAuthConfig::new("client", "tenant", folder.path().join("none.json")).unwrap();
        let provider = OAuthTokenProvider::new(
            config,
            reqwest::Client::new(),
            Arc::new(ManualClock::default()),
        );
        let error = provider.access_token().await.unwrap_err();
        assert!(error.to_string().contains("exmux login"), "{error}");
    }

    #[test]
    fn auth_code_url_carries_pkce_and_state() {
        let mut config = OAuthConfig::new("client-id-1", "organizations", "/tmp/unused").unwrap();
        config.redirect_uri = Some(Url::parse("http://localhost:8400/").unwrap());
        let provider = OAuthTokenProvider::new(
            config,
            reqwest::Client::new(),
            Arc::new(ManualClock::default()),
        );
        let request = provider.start_auth_code().unwrap();
        let pairs: Vec<(String, String)> =
            request.authorize_url.query_pairs().into_owned().collect();
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        assert_eq!(get("code_challenge_method").as_deref(), Some("S256"));
        assert_eq!(get("state").as_deref(), Some(request.state.as_str()));
        assert_eq!(get("client_id").as_deref(), Some("client-id-1"));
        assert!(get("scope").unwrap().contains("offline_access"));
        assert!(
            !request
                .authorize_url
                .as_str()
                .contains(request.pkce_verifier.expose())
        );
        assert!(!format!("{request:?}").contains(request.pkce_verifier.expose()));
    }
}
