//! exmux-core's OAuth2 flows and token provider against the emulator's token endpoint on
//! 127.0.0.1: device code, authorization code with PKCE, refresh before expiry under a
//! manual clock, and the sign-in message once the refresh token is revoked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use exmux_core::auth::oauth::{OAuthConfig, OAuthTokenProvider, TokenCache};
use exmux_core::auth::{AuthError, TokenProvider};
use exmux_core::{ManualClock, Secret};
use exmux_emulator::server::TokenValidator;
use exmux_emulator::token::{TokenEndpoint, TokenEndpointConfig, TokenRejection};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

async fn serve(endpoint: Arc<TokenEndpoint>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let endpoint = endpoint.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let endpoint = endpoint.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let bytes = body
                            .collect()
                            .await
                            .map(|body| body.to_bytes())
                            .unwrap_or_default();
                        let response = endpoint
                            .handle(&http::Request::from_parts(parts, bytes))
                            .unwrap_or_else(|| {
                                let mut response = http::Response::new(Bytes::new());
                                *response.status_mut() = http::StatusCode::NOT_FOUND;
                                response
                            });
                        Ok::<_, Infallible>(response.map(Full::new))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

struct Setup {
    endpoint: Arc<TokenEndpoint>,
    provider: OAuthTokenProvider,
    clock: ManualClock,
    cache: TokenCache,
    _folder: tempfile::TempDir,
}

async fn setup() -> Setup {
    let clock = ManualClock::default();
    let mut endpoint_config = TokenEndpointConfig::new("client-1", "user1@example.test");
    endpoint_config.poll_interval_secs = 0;
    endpoint_config.pending_polls = 2;
    let endpoint = Arc::new(TokenEndpoint::new(endpoint_config, Arc::new(clock.clone())));
    let address = serve(endpoint.clone()).await;

    let folder = tempfile::tempdir().unwrap();
    let cache_path = folder.path().join("tokens.json");
    let mut config = OAuthConfig::new("client-1", "organizations", &cache_path).unwrap();
    config.authority = url::Url::parse(&format!("http://{address}/")).unwrap();
    config.redirect_uri = Some(url::Url::parse("http://localhost:8400/").unwrap());
    config.refresh_margin = Duration::from_secs(60);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let provider = OAuthTokenProvider::new(config, http, Arc::new(clock.clone()));
    Setup {
        endpoint,
        provider,
        clock,
        cache: TokenCache::new(cache_path),
        _folder: folder,
    }
}

#[tokio::test]
async fn device_code_then_refresh_before_expiry() {
    let setup = setup().await;
    let mut prompted = None;
    setup
        .provider
        .device_code_flow(|prompt| prompted = Some(prompt.clone()))
        .await
        .unwrap();
    let prompt = prompted.unwrap();
    assert_eq!(prompt.user_code.len(), 8);
    assert_eq!(prompt.verification_uri, "https://microsoft.com/devicelogin");

    let first = setup.provider.access_token().await.unwrap();
    assert_eq!(setup.endpoint.check(&first).unwrap(), "user1@example.test");
    assert_eq!(
        setup.endpoint.validate(&first).as_deref(),
        Some("user1@example.test")
    );
    let cached = setup.cache.load().unwrap().unwrap();
    assert_eq!(cached.access_token, first);

    // 200 s into a 300 s token with a 60 s margin: the same token, no refresh.
    setup.clock.advance(Duration::from_secs(200));
    assert_eq!(setup.provider.access_token().await.unwrap(), first);

    // 241 s in, inside the margin: refreshed, and the cache file follows.
    setup.clock.advance(Duration::from_secs(41));
    let second = setup.provider.access_token().await.unwrap();
    assert_ne!(second, first);
    assert_eq!(setup.endpoint.check(&second).unwrap(), "user1@example.test");
    assert_eq!(setup.cache.load().unwrap().unwrap().access_token, second);

    // The old token expires on the server's clock.
    setup.clock.advance(Duration::from_secs(300));
    assert_eq!(setup.endpoint.check(&first), Err(TokenRejection::Expired));
}

#[tokio::test]
async fn rejected_token_is_refreshed() {
    let setup = setup().await;
    setup.provider.device_code_flow(|_| {}).await.unwrap();
    let first = setup.provider.access_token().await.unwrap();
    setup.provider.invalidate(&first);
    let second = setup.provider.access_token().await.unwrap();
    assert_ne!(first, second);
}

#[tokio::test]
async fn revoked_refresh_asks_for_sign_in() {
    let setup = setup().await;
    setup.provider.device_code_flow(|_| {}).await.unwrap();
    setup.endpoint.revoke_refresh_tokens();
    setup.clock.advance(Duration::from_secs(600));

    let error = setup.provider.access_token().await.unwrap_err();
    assert!(
        matches!(error, AuthError::InteractionRequired { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("exmux login"), "{error}");
}

#[tokio::test]
async fn auth_code_with_pkce() {
    let setup = setup().await;
    let request = setup.provider.start_auth_code().unwrap();

    // The emulator's authorize endpoint consents at once and redirects with the code.
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(request.authorize_url.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::FOUND);
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let pair = |name: &str| {
        location
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
            .unwrap()
    };
    let (code, state) = (pair("code"), pair("state"));

    setup
        .provider
        .finish_auth_code(request, Secret::new(code), &state)
        .await
        .unwrap();
    let token = setup.provider.access_token().await.unwrap();
    assert_eq!(setup.endpoint.check(&token).unwrap(), "user1@example.test");
}

#[tokio::test]
async fn auth_code_with_forged_state_fails() {
    let setup = setup().await;
    let request = setup.provider.start_auth_code().unwrap();
    let error = setup
        .provider
        .finish_auth_code(request, Secret::new("code"), "forged")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("state does not match"),
        "{error}"
    );
}

#[tokio::test]
async fn unknown_client_is_reported() {
    let mut setup = setup().await;
    let mut config = setup.provider.config().clone();
    config.client_id = "other-client".to_owned();
    setup.provider = OAuthTokenProvider::new(
        config,
        reqwest::Client::new(),
        Arc::new(setup.clock.clone()),
    );
    let error = setup.provider.device_code_flow(|_| {}).await.unwrap_err();
    assert!(error.to_string().contains("invalid_client"), "{error}");
}
