//! `exmux login`: signs in with the OAuth2 flow that the configuration names and
//! stores the tokens in the token cache, which later commands refresh from.
//!
//! The device-code flow (RFC 8628) prints a code to enter on another device. The
//! authorization-code flow with PKCE (RFC 7636) prints a URL to open in a browser and
//! receives the redirect on the configuration's loopback `redirect_uri`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use exmux_core::auth::oauth::{OAuthFlow, OAuthTokenProvider};
use exmux_core::auth::{AuthError, Credentials};
use exmux_core::http::HttpConfigError;
use exmux_core::{Secret, SystemClock};
use exmux_router::Config;
use exmux_router::config::{AuthMethod, ConfigError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

/// The suffix appended to the configuration file's name for the default token cache
/// (`exmux.toml` gets `exmux.toml.tokens.json` beside it).
pub const TOKEN_CACHE_SUFFIX: &str = ".tokens.json";

/// How long the authorization-code flow waits for the browser's redirect.
pub const REDIRECT_WAIT: Duration = Duration::from_secs(300);

/// The largest redirect request read from the browser, in bytes.
const MAX_REDIRECT_REQUEST: usize = 16 * 1024;

/// The sign-in step the user must take, for the command line to print.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LoginPrompt {
    /// Open `verification_uri` on any device and enter `user_code`.
    DeviceCode {
        /// The page where the code is entered.
        verification_uri: String,
        /// The code to enter.
        user_code: String,
        /// How long the code stays valid.
        expires_in: Duration,
    },
    /// Open `url` in a browser on this machine.
    Browser {
        /// The authorization URL.
        url: String,
    },
}

/// The reason signing in failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configuration does not use OAuth2.
    #[error(
        "[auth] method = \"{method}\" has nothing to sign in to: `exmux login` needs method = \"oauth2\" with client_id and flow"
    )]
    NotOAuth2 {
        /// The configured method.
        method: String,
    },
    /// The `[http]` options cannot build a client.
    #[error(transparent)]
    Http(#[from] HttpConfigError),
    /// The identity provider or the token cache failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The browser's redirect to `redirect_uri` could not be received.
    #[error("cannot receive the sign-in redirect on {redirect_uri}: {reason}")]
    Redirect {
        /// The configured redirect URI.
        redirect_uri: String,
        /// The failure and what to do about it.
        reason: String,
    },
    /// The identity provider redirected back with an error instead of a code.
    #[error(
        "the sign-in was not completed: {error}{}; run `exmux login` again",
        description.as_deref().map(|text| format!(" ({text})")).unwrap_or_default()
    )]
    Denied {
        /// The OAuth2 error code, such as `access_denied` or `consent_required`.
        error: String,
        /// The identity provider's description.
        description: Option<String>,
    },
}

/// Returns the token cache used when `[auth] token_cache` is absent: the configuration
/// file's name with [`TOKEN_CACHE_SUFFIX`] appended, beside it.
pub fn default_token_cache(config_path: &Path) -> PathBuf {
    let mut name = config_path.as_os_str().to_owned();
    name.push(TOKEN_CACHE_SUFFIX);
    PathBuf::from(name)
}

/// Signs in with the flow of `config`, calling `prompt` with what the user must do,
/// and returns the token cache file the tokens were written to.
///
/// # Errors
/// [`LoginError::NotOAuth2`] for another method, [`LoginError::Config`] for an
/// incomplete `[auth]` section, [`LoginError::Http`] for bad `[http]` options,
/// [`LoginError::Auth`] when the identity provider refuses or the cache cannot be
/// written, and [`LoginError::Redirect`] or [`LoginError::Denied`] when the browser's
/// redirect fails.
pub async fn login(
    config: &Config,
    config_path: &Path,
    mut prompt: impl FnMut(&LoginPrompt),
) -> Result<PathBuf, LoginError> {
    if config.auth.method != AuthMethod::Oauth2 {
        let method = serde_json::to_value(config.auth.method)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        return Err(LoginError::NotOAuth2 { method });
    }
    let oauth = config.auth.oauth_config(default_token_cache(config_path))?;
    let cache = oauth.token_cache.clone();
    let flow = oauth.flow;
    let redirect_uri = oauth.redirect_uri.clone();
    let http = config.http.build_client()?;
    let provider = OAuthTokenProvider::new(oauth, http, Arc::new(SystemClock));

    if flow == OAuthFlow::AuthCode {
        let Some(redirect_uri) = redirect_uri else {
            return Err(AuthError::OAuth {
                operation: "authorization",
                reason: "the auth-code flow needs [auth] redirect_uri, such as \
                         http://localhost:8400/"
                    .to_owned(),
            }
            .into());
        };
        let listener = RedirectListener::bind(&redirect_uri).await?;
        let request = provider.start_auth_code()?;
        prompt(&LoginPrompt::Browser {
            url: request.authorize_url.to_string(),
        });
        let (code, state) = listener.receive(REDIRECT_WAIT).await?;
        provider.finish_auth_code(request, code, &state).await?;
    } else {
        provider
            .device_code_flow(|details| {
                prompt(&LoginPrompt::DeviceCode {
                    verification_uri: details.verification_uri.clone(),
                    user_code: details.user_code.clone(),
                    expires_in: details.expires_in,
                });
            })
            .await?;
    }
    Ok(cache)
}

/// The loopback listener that receives the browser's redirect (RFC 8252 section 7.3).
struct RedirectListener {
    listener: tokio::net::TcpListener,
    redirect_uri: Url,
}

impl RedirectListener {
    async fn bind(redirect_uri: &Url) -> Result<Self, LoginError> {
        let failed = |reason: String| LoginError::Redirect {
            redirect_uri: redirect_uri.to_string(),
            reason,
        };
        if redirect_uri.scheme() != "http" {
            return Err(failed(
                "exmux receives the redirect itself, so redirect_uri must be a plain http \
                 URL on localhost, 127.0.0.1 or [::1]"
                    .to_owned(),
            ));
        }
        let host = match redirect_uri.host() {
            Some(url::Host::Domain(name)) if name.eq_ignore_ascii_case("localhost") => {
                "127.0.0.1".to_owned()
            }
            Some(url::Host::Ipv4(address)) if address.is_loopback() => address.to_string(),
            Some(url::Host::Ipv6(address)) if address.is_loopback() => address.to_string(),
            _ => {
                return Err(failed(
                    "the redirect host must be localhost, 127.0.0.1 or [::1]".to_owned(),
                ));
            }
        };
        let port = redirect_uri.port_or_known_default().unwrap_or(80);
        let listener = tokio::net::TcpListener::bind((host.as_str(), port))
            .await
            .map_err(|error| {
                failed(format!(
                    "cannot listen on {host}:{port} ({error}); choose a free port in redirect_uri"
                ))
            })?;
        Ok(Self {
            listener,
            redirect_uri: redirect_uri.clone(),
        })
    }

    /// Waits for the redirect carrying `code` and `state`, and responds to the browser.
    /// Requests for other paths (such as `/favicon.ico`) get a 404 and are skipped.
    async fn receive(self, wait: Duration) -> Result<(Secret, String), LoginError> {
        let failed = |reason: String| LoginError::Redirect {
            redirect_uri: self.redirect_uri.to_string(),
            reason,
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let accepted = tokio::time::timeout_at(deadline, self.listener.accept())
                .await
                .map_err(|_| {
                    failed(format!(
                        "no redirect arrived within {} s; run `exmux login` again",
                        wait.as_secs()
                    ))
                })?;
            let Ok((mut socket, _)) = accepted else {
                continue;
            };
            let Some(target) = read_request_target(&mut socket).await else {
                continue;
            };

            let Ok(url) = self.redirect_uri.join(&target) else {
                respond(&mut socket, "400 Bad Request", "invalid request").await;
                continue;
            };
            if url.path() != self.redirect_uri.path() {
                respond(&mut socket, "404 Not Found", "not found").await;
                continue;
            }

            let mut code = None;
            let mut state = None;
            let mut error = None;
            let mut description = None;
            for (name, value) in url.query_pairs() {
                match name.as_ref() {
                    "code" => code = Some(Secret::new(value.into_owned())),
                    "state" => state = Some(value.into_owned()),
                    "error" => error = Some(value.into_owned()),
                    "error_description" => description = Some(value.into_owned()),
                    _ => {}
                }
            }
            if let Some(error) = error {
                respond(
                    &mut socket,
                    "200 OK",
                    "The sign-in was not completed. Return to the terminal.",
                )
                .await;
                return Err(LoginError::Denied { error, description });
            }
            match (code, state) {
                (Some(code), Some(state)) => {
                    respond(
                        &mut socket,
                        "200 OK",
                        "exmux received the sign-in. You can close this window.",
                    )
                    .await;
                    return Ok((code, state));
                }
                _ => {
                    respond(
                        &mut socket,
                        "400 Bad Request",
                        "the redirect carries no code and state",
                    )
                    .await;
                }
            }
        }
    }
}

/// Reads an HTTP request head and returns its request target, or `None` for a request
/// that is not a complete GET head within [`MAX_REDIRECT_REQUEST`] bytes.
async fn read_request_target(socket: &mut tokio::net::TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buffer = [0_u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buffer))
            .await
            .ok()?
            .ok()?;
        if read == 0 || head.len() + read > MAX_REDIRECT_REQUEST {
            return None;
        }
        head.extend_from_slice(buffer.get(..read)?);
    }
    let text = std::str::from_utf8(&head).ok()?;
    let mut parts = text.lines().next()?.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    (method == "GET").then(|| target.to_owned())
}

async fn respond(socket: &mut tokio::net::TcpStream, status: &str, text: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}\n",
        text.len() + 1
    );
    // The browser's page is a courtesy: the sign-in goes on if it cannot be shown.
    let _ = socket.write_all(response.as_bytes()).await;
    let _ = socket.shutdown().await;
}

/// Builds the credentials that `config` describes, as [`Config::credentials`] does,
/// with the command line's default token cache for `oauth2`, which `exmux login` fills.
///
/// # Errors
/// [`LoginError::Config`] when the secret cannot be read, the section names no secret
/// source, the OAuth2 keys are incomplete or the `[http]` options are invalid.
pub fn credentials(config: &Config, config_path: &Path) -> Result<Credentials, LoginError> {
    Ok(config.credentials(default_token_cache(config_path), Arc::new(SystemClock))?)
}
