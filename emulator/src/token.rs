//! A small OAuth2 token endpoint for the emulator, laid out like the Microsoft identity
//! platform (`/{tenant}/oauth2/v2.0/{devicecode,authorize,token}`), so that the device
//! code (RFC 8628), authorization code with PKCE (RFC 7636) and refresh token grants run
//! end to end on loopback.
//!
//! Tokens are random and short-lived; expiry follows the injected [`Clock`], so a test
//! expires a token by advancing a [`exmux_core::ManualClock`]. Refresh tokens rotate: each
//! use returns a new one and retires the old one.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use exmux_core::{Clock, Secret};
use http::{Request, Response, StatusCode, header};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

/// The grant type of the device code flow (RFC 8628 section 3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Settings of the token endpoint.
#[derive(Clone, Debug)]
pub struct TokenEndpointConfig {
    /// The only client id accepted.
    pub client_id: String,
    /// The user the tokens are issued to.
    pub user: String,
    /// Lifetime of access tokens.
    pub access_lifetime: Duration,
    /// Lifetime of device codes and authorization codes.
    pub code_lifetime: Duration,
    /// The polling interval announced for the device code flow, in seconds.
    pub poll_interval_secs: u64,
    /// How many polls of a device code get `authorization_pending` before the
    /// simulated user has signed in, unless [`TokenEndpoint::approve_device_code`] is
    /// called first.
    pub pending_polls: u32,
}

impl TokenEndpointConfig {
    /// Creates a configuration with five-minute access tokens and ten-minute codes.
    pub fn new(client_id: impl Into<String>, user: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            user: user.into(),
            access_lifetime: Duration::from_secs(300),
            code_lifetime: Duration::from_secs(600),
            poll_interval_secs: 5,
            pending_polls: 1,
        }
    }
}

#[derive(Debug)]
struct DeviceGrant {
    user_code: String,
    scope: String,
    expires_at: u64,
    polls: u32,
    approved: bool,
}

#[derive(Debug)]
struct CodeGrant {
    challenge: String,
    redirect_uri: String,
    scope: String,
    expires_at: u64,
}

#[derive(Debug, Default)]
struct Grants {
    device: HashMap<String, DeviceGrant>,
    codes: HashMap<String, CodeGrant>,
    access: HashMap<String, (u64, String)>,
    refresh: HashMap<String, String>,
}

/// The reason a bearer token was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRejection {
    /// The token was never issued or was revoked.
    #[error("the access token is unknown")]
    Unknown,
    /// The token has expired.
    #[error("the access token has expired")]
    Expired,
}

/// The token endpoint and the registry of the tokens it issued.
pub struct TokenEndpoint {
    config: TokenEndpointConfig,
    clock: Arc<dyn Clock>,
    grants: Mutex<Grants>,
}

impl std::fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEndpoint")
            .field("client_id", &self.config.client_id)
            .field("user", &self.config.user)
            .finish_non_exhaustive()
    }
}

fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// Builds an OAuth2 error response (RFC 6749 section 5.2).
fn oauth_error(code: &str, description: &str) -> Response<Bytes> {
    json_response(
        StatusCode::BAD_REQUEST,
        &serde_json::json!({ "error": code, "error_description": description }),
    )
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl TokenEndpoint {
    /// Creates an endpoint that reads time from `clock`.
    pub fn new(config: TokenEndpointConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            config,
            clock,
            grants: Mutex::new(Grants::default()),
        }
    }

    fn grants(&self) -> std::sync::MutexGuard<'_, Grants> {
        self.grants.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Handles a request under `/{tenant}/oauth2/v2.0/`, or returns `None` for another path.
    pub fn handle(&self, request: &Request<Bytes>) -> Option<Response<Bytes>> {
        let path = request.uri().path();
        let (_tenant, endpoint) = path.trim_start_matches('/').split_once("/oauth2/v2.0/")?;
        let response = match endpoint {
            "devicecode" => self.device_code(request.body()),
            "authorize" => self.authorize(request.uri().query().unwrap_or_default()),
            "token" => self.token(request.body()),
            _ => return None,
        };
        Some(response)
    }

    /// Returns the error response for a missing or unknown client id.
    fn reject_client(&self, fields: &HashMap<String, String>) -> Option<Response<Bytes>> {
        match fields.get("client_id") {
            Some(id) if *id == self.config.client_id => None,
            Some(_) => Some(oauth_error(
                "invalid_client",
                "AADSTS700016: the application was not found",
            )),
            None => Some(oauth_error("invalid_request", "client_id is missing")),
        }
    }

    fn device_code(&self, body: &[u8]) -> Response<Bytes> {
        let fields = form(body);
        if let Some(response) = self.reject_client(&fields) {
            return response;
        }
        let device_code = random_token("emx_dc_");
        let user_code = random_token("")
            .chars()
            .take(8)
            .collect::<String>()
            .to_ascii_uppercase();
        let lifetime = self.config.code_lifetime;
        self.grants().device.insert(
            device_code.clone(),
            DeviceGrant {
                user_code: user_code.clone(),
                scope: fields.get("scope").cloned().unwrap_or_default(),
                expires_at: self.clock.now_millis().saturating_add(millis(lifetime)),
                polls: 0,
                approved: false,
            },
        );
        json_response(
            StatusCode::OK,
            &serde_json::json!({
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": "https://microsoft.com/devicelogin",
                "expires_in": lifetime.as_secs(),
                "interval": self.config.poll_interval_secs,
                "message": format!("To sign in, enter the code {user_code}."),
            }),
        )
    }

    /// Marks the device code with `user_code` as signed in. Returns false when no such
    /// code is pending.
    pub fn approve_device_code(&self, user_code: &str) -> bool {
        let mut grants = self.grants();
        let Some(grant) = grants
            .device
            .values_mut()
            .find(|grant| grant.user_code == user_code)
        else {
            return false;
        };
        grant.approved = true;
        true
    }

    /// Simulates the user's consent in the browser: issues an authorization code and
    /// redirects to the client's `redirect_uri` with it and the `state`.
    fn authorize(&self, query: &str) -> Response<Bytes> {
        let fields = form(query.as_bytes());
        if let Some(response) = self.reject_client(&fields) {
            return response;
        }
        let (Some(redirect_uri), Some(challenge)) =
            (fields.get("redirect_uri"), fields.get("code_challenge"))
        else {
            return oauth_error(
                "invalid_request",
                "redirect_uri and code_challenge are required",
            );
        };
        if fields.get("code_challenge_method").map(String::as_str) != Some("S256") {
            return oauth_error("invalid_request", "code_challenge_method must be S256");
        }

        let code = random_token("emx_ac_");
        self.grants().codes.insert(
            code.clone(),
            CodeGrant {
                challenge: challenge.clone(),
                redirect_uri: redirect_uri.clone(),
                scope: fields.get("scope").cloned().unwrap_or_default(),
                expires_at: self
                    .clock
                    .now_millis()
                    .saturating_add(millis(self.config.code_lifetime)),
            },
        );

        let mut location = url::form_urlencoded::Serializer::new(String::new());
        location.append_pair("code", &code);
        if let Some(state) = fields.get("state") {
            location.append_pair("state", state);
        }
        let separator = if redirect_uri.contains('?') { '&' } else { '?' };
        let target = format!("{redirect_uri}{separator}{}", location.finish());
        let mut response = Response::new(Bytes::new());
        *response.status_mut() = StatusCode::FOUND;
        match header::HeaderValue::from_str(&target) {
            Ok(value) => {
                response.headers_mut().insert(header::LOCATION, value);
                response
            }
            Err(_) => oauth_error(
                "invalid_request",
                "redirect_uri is not a valid header value",
            ),
        }
    }

    fn token(&self, body: &[u8]) -> Response<Bytes> {
        let fields = form(body);
        if let Some(response) = self.reject_client(&fields) {
            return response;
        }
        let now = self.clock.now_millis();
        let grant_type = fields
            .get("grant_type")
            .map(String::as_str)
            .unwrap_or_default();
        let field = |name: &str| fields.get(name).cloned().unwrap_or_default();

        let scope = match grant_type {
            DEVICE_CODE_GRANT => {
                let mut grants = self.grants();
                let device_code = field("device_code");
                let Some(grant) = grants.device.get_mut(&device_code) else {
                    return oauth_error("invalid_grant", "AADSTS70000: the device code is unknown");
                };
                if now >= grant.expires_at {
                    grants.device.remove(&device_code);
                    return oauth_error("expired_token", "AADSTS70019: the device code expired");
                }
                grant.polls = grant.polls.saturating_add(1);
                if !grant.approved && grant.polls <= self.config.pending_polls {
                    return oauth_error(
                        "authorization_pending",
                        "AADSTS70016: the user has not signed in yet",
                    );
                }
                let scope = grant.scope.clone();
                grants.device.remove(&device_code);
                scope
            }
            "authorization_code" => {
                let Some(grant) = self.grants().codes.remove(&field("code")) else {
                    return oauth_error(
                        "invalid_grant",
                        "AADSTS70008: the authorization code is unknown or used",
                    );
                };
                if now >= grant.expires_at {
                    return oauth_error(
                        "invalid_grant",
                        "AADSTS70008: the authorization code expired",
                    );
                }
                if field("redirect_uri") != grant.redirect_uri {
                    return oauth_error(
                        "invalid_grant",
                        "AADSTS50011: redirect_uri does not match",
                    );
                }
                let computed =
                    URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes()));
                if computed != grant.challenge {
                    return oauth_error(
                        "invalid_grant",
                        "AADSTS501481: the code verifier does not match the challenge",
                    );
                }
                grant.scope
            }
            "refresh_token" => {
                let Some(scope) = self.grants().refresh.remove(&field("refresh_token")) else {
                    return oauth_error(
                        "invalid_grant",
                        "AADSTS700082: the refresh token is unknown or expired",
                    );
                };
                scope
            }
            other => {
                return oauth_error(
                    "unsupported_grant_type",
                    &format!("grant_type {other:?} is not supported"),
                );
            }
        };
        self.issue(scope)
    }

    fn issue(&self, scope: String) -> Response<Bytes> {
        let access = random_token("emx_at_");
        let refresh = random_token("emx_rt_");
        let lifetime = self.config.access_lifetime;
        let expires_at = self.clock.now_millis().saturating_add(millis(lifetime));
        {
            let mut grants = self.grants();
            grants
                .access
                .insert(access.clone(), (expires_at, scope.clone()));
            grants.refresh.insert(refresh.clone(), scope.clone());
        }
        tracing::debug!(user = %self.config.user, "issued an access token");
        json_response(
            StatusCode::OK,
            &serde_json::json!({
                "token_type": "Bearer",
                "access_token": access,
                "refresh_token": refresh,
                "expires_in": lifetime.as_secs(),
                "scope": scope,
            }),
        )
    }

    /// Checks a bearer token and returns the user it was issued to.
    ///
    /// # Errors
    ///
    /// [`TokenRejection`] when the token is unknown or expired.
    pub fn check(&self, token: &Secret) -> Result<String, TokenRejection> {
        let grants = self.grants();
        let (expires_at, _) = grants
            .access
            .get(token.expose())
            .ok_or(TokenRejection::Unknown)?;
        if self.clock.now_millis() >= *expires_at {
            return Err(TokenRejection::Expired);
        }
        Ok(self.config.user.clone())
    }

    /// Revokes every refresh token, as a password change does, so the next refresh
    /// fails with `invalid_grant`.
    pub fn revoke_refresh_tokens(&self) {
        self.grants().refresh.clear();
    }
}

impl crate::server::TokenValidator for TokenEndpoint {
    fn validate(&self, token: &Secret) -> Option<String> {
        self.check(token).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exmux_core::ManualClock;

    fn endpoint(clock: &ManualClock) -> TokenEndpoint {
        TokenEndpoint::new(
            TokenEndpointConfig::new("client-1", "user1@example.test"),
            Arc::new(clock.clone()),
        )
    }

    fn post(path: &str, body: &str) -> Request<Bytes> {
        Request::builder()
            .method("POST")
            .uri(path)
            .body(Bytes::from(body.to_owned()))
            .unwrap()
    }

    fn json(response: &Response<Bytes>) -> serde_json::Value {
        serde_json::from_slice(response.body()).unwrap()
    }

    #[test]
    fn device_code_pending_then_tokens_then_expiry() {
        let clock = ManualClock::default();
        let endpoint = endpoint(&clock);
        let issued = json(
            &endpoint
                .handle(&post(
                    "/common/oauth2/v2.0/devicecode",
                    "client_id=client-1&scope=EWS",
                ))
                .unwrap(),
        );
        let device_code = issued["device_code"].as_str().unwrap().to_owned();
        let poll =
            format!("client_id=client-1&grant_type={DEVICE_CODE_GRANT}&device_code={device_code}");

        let first = endpoint
            .handle(&post("/common/oauth2/v2.0/token", &poll))
            .unwrap();
        assert_eq!(json(&first)["error"], "authorization_pending");
        let second = json(
            &endpoint
                .handle(&post("/common/oauth2/v2.0/token", &poll))
                .unwrap(),
        );
        let access = Secret::new(second["access_token"].as_str().unwrap());
        assert_eq!(endpoint.check(&access).unwrap(), "user1@example.test");
        assert_eq!(second["expires_in"], 300);

        clock.advance(Duration::from_secs(300));
        assert_eq!(endpoint.check(&access), Err(TokenRejection::Expired));
        assert_eq!(
            endpoint.check(&Secret::new("forged")),
            Err(TokenRejection::Unknown)
        );
    }

    #[test]
    fn expired_device_code_is_reported() {
        let clock = ManualClock::default();
        let endpoint = endpoint(&clock);
        let issued = json(
            &endpoint
                .handle(&post("/t/oauth2/v2.0/devicecode", "client_id=client-1"))
                .unwrap(),
        );
        clock.advance(Duration::from_secs(601));
        let poll = format!(
            "client_id=client-1&grant_type={DEVICE_CODE_GRANT}&device_code={}",
            issued["device_code"].as_str().unwrap()
        );
        assert_eq!(
            json(
                &endpoint
                    .handle(&post("/t/oauth2/v2.0/token", &poll))
                    .unwrap()
            )["error"],
            "expired_token"
        );
    }

    #[test]
    fn pkce_code_exchange_checks_verifier() {
        let clock = ManualClock::default();
        let endpoint = endpoint(&clock);
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        // RFC 7636 appendix B: the S256 challenge of that verifier.
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        let authorize = Request::builder()
            .uri(format!(
                "/t/oauth2/v2.0/authorize?client_id=client-1&redirect_uri=http%3A%2F%2Flocalhost%3A8400%2F&code_challenge={challenge}&code_challenge_method=S256&state=xyz&scope=EWS"
            ))
            .body(Bytes::new())
            .unwrap();
        let redirect = endpoint.handle(&authorize).unwrap();
        assert_eq!(redirect.status(), StatusCode::FOUND);
        let location = redirect.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            location.starts_with("http://localhost:8400/?code="),
            "{location}"
        );
        assert!(location.ends_with("&state=xyz"), "{location}");
        let code = location
            .split("code=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_owned();

        let exchange = |verifier: &str| {
            format!(
                "client_id=client-1&grant_type=authorization_code&code={code}&redirect_uri=http%3A%2F%2Flocalhost%3A8400%2F&code_verifier={verifier}"
            )
        };
        let wrong = json(
            &endpoint
                .handle(&post("/t/oauth2/v2.0/token", &exchange("wrong")))
                .unwrap(),
        );
        assert_eq!(wrong["error"], "invalid_grant");
        // The failed attempt consumed the code, as authorization codes are single-use.
        let reused = json(
            &endpoint
                .handle(&post("/t/oauth2/v2.0/token", &exchange(verifier)))
                .unwrap(),
        );
        assert_eq!(reused["error"], "invalid_grant");
    }

    #[test]
    fn refresh_tokens_rotate_and_revoke() {
        let clock = ManualClock::default();
        let endpoint = endpoint(&clock);
        let first = json(&endpoint.issue("EWS".to_owned()));
        let refresh = first["refresh_token"].as_str().unwrap().to_owned();
        let body = format!("client_id=client-1&grant_type=refresh_token&refresh_token={refresh}");

        let second = json(
            &endpoint
                .handle(&post("/t/oauth2/v2.0/token", &body))
                .unwrap(),
        );
        assert_ne!(second["access_token"], first["access_token"]);
        let again = json(
            &endpoint
                .handle(&post("/t/oauth2/v2.0/token", &body))
                .unwrap(),
        );
        assert_eq!(again["error"], "invalid_grant");

        endpoint.revoke_refresh_tokens();
        let body = format!(
            "client_id=client-1&grant_type=refresh_token&refresh_token={}",
            second["refresh_token"].as_str().unwrap()
        );
        assert_eq!(
            json(
                &endpoint
                    .handle(&post("/t/oauth2/v2.0/token", &body))
                    .unwrap()
            )["error"],
            "invalid_grant"
        );
    }

    #[test]
    fn wrong_client_and_grant_are_rejected() {
        let endpoint = endpoint(&ManualClock::default());
        let wrong_client = json(
            &endpoint
                .handle(&post(
                    "/t/oauth2/v2.0/token",
                    "client_id=other&grant_type=password",
                ))
                .unwrap(),
        );
        assert_eq!(wrong_client["error"], "invalid_client");
        let wrong_grant = json(
            &endpoint
                .handle(&post(
                    "/t/oauth2/v2.0/token",
                    "client_id=client-1&grant_type=password",
                ))
                .unwrap(),
        );
        assert_eq!(wrong_grant["error"], "unsupported_grant_type");
        assert!(endpoint.handle(&post("/EWS/Exchange.asmx", "")).is_none());
    }
}
