#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `exmux login` against the command line's emulator: the device-code flow and the
//! authorization-code flow with PKCE store tokens in a cache readable only by its
//! owner, and the cached token then passes the emulator's EWS endpoint.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use exmux::login::{LoginError, LoginPrompt, default_token_cache, login};
use exmux_core::SystemClock;
use exmux_core::auth::TokenProvider;
use exmux_core::auth::oauth::OAuthTokenProvider;
use exmux_emulator::server::EmulatorHandle;
use exmux_router::Config;
use exmux_router::config::ConfigError;

async fn emulator() -> EmulatorHandle {
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    exmux::emulator::start(listen, None).await.unwrap()
}

fn oauth_config(handle: &EmulatorHandle, flow: &str, extra: &str) -> Config {
    Config::from_toml_str(&format!(
        "[server]\nmailbox = \"{mailbox}\"\news_url = \"{ews}\"\n\
         [auth]\nmethod = \"oauth2\"\nclient_id = \"{client}\"\nflow = \"{flow}\"\n\
         authority = \"{authority}\"\nscopes = [\"https://outlook.office365.com/EWS.AccessAsUser.All\", \"offline_access\"]\n{extra}\
         [routing]\npreset = \"ews\"\n",
        mailbox = exmux::emulator::MAILBOX,
        ews = handle.ews_url(),
        client = exmux::emulator::OAUTH_CLIENT_ID,
        authority = exmux::emulator::oauth_authority(handle),
    ))
    .unwrap()
}

/// Checks that the cache exists, is private to its owner, and contains a token that the
/// emulator's EWS endpoint accepts.
async fn assert_usable_cache(config: &Config, config_path: &Path, handle: &EmulatorHandle) {
    let cache = default_token_cache(config_path);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the token cache is readable by others: {mode:o}"
        );
    }

    let oauth = config.auth.oauth_config(cache).unwrap();
    let provider = OAuthTokenProvider::new(oauth, reqwest::Client::new(), Arc::new(SystemClock));
    let token = provider.access_token().await.unwrap();
    let response = reqwest::Client::new()
        .post(handle.ews_url())
        .bearer_auth(token.expose())
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(GET_INBOX)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
}

const GET_INBOX: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
  <soap:Body>
    <m:GetFolder>
      <m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>
      <m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds>
    </m:GetFolder>
  </soap:Body>
</soap:Envelope>"#;

#[tokio::test]
async fn login_device_code_fills_cache() {
    let handle = emulator().await;
    let folder = tempfile::tempdir().unwrap();
    let config_path = folder.path().join("exmux.toml");
    let config = oauth_config(&handle, "device-code", "");

    let mut prompts = Vec::new();
    let cache = login(&config, &config_path, |prompt| prompts.push(prompt.clone()))
        .await
        .unwrap();
    assert_eq!(cache, default_token_cache(&config_path));
    assert_eq!(prompts.len(), 1);
    assert!(
        matches!(&prompts[0], LoginPrompt::DeviceCode { user_code, .. } if !user_code.is_empty()),
        "{prompts:?}"
    );
    assert_usable_cache(&config, &config_path, &handle).await;
}

#[tokio::test]
async fn login_auth_code_receives_redirect() {
    let handle = emulator().await;
    let folder = tempfile::tempdir().unwrap();
    let config_path = folder.path().join("exmux.toml");
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let config = oauth_config(
        &handle,
        "auth-code",
        &format!("redirect_uri = \"http://127.0.0.1:{port}/callback\"\n"),
    );

    // The browser: open the authorization URL, to which the emulator responds with a
    // redirect carrying the code, and follow it to the login's listener.
    let browser = |prompt: &LoginPrompt| {
        let LoginPrompt::Browser { url } = prompt else {
            panic!("expected a browser prompt, got {prompt:?}");
        };
        let url = url.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            // A stray request first, as browsers send for the icon.
            let icon = format!("http://127.0.0.1:{port}/favicon.ico");
            let stray = client.get(icon).send().await.unwrap();
            assert_eq!(stray.status(), reqwest::StatusCode::NOT_FOUND);

            let authorize = client.get(url).send().await.unwrap();
            assert_eq!(authorize.status(), reqwest::StatusCode::FOUND);
            let location = authorize.headers()["location"].to_str().unwrap().to_owned();
            let landing = client.get(location).send().await.unwrap();
            assert_eq!(landing.status(), reqwest::StatusCode::OK);
        });
    };
    login(&config, &config_path, browser).await.unwrap();
    assert_usable_cache(&config, &config_path, &handle).await;
}

#[tokio::test]
async fn login_auth_code_reports_denial() {
    let handle = emulator().await;
    let folder = tempfile::tempdir().unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let config = oauth_config(
        &handle,
        "auth-code",
        &format!("redirect_uri = \"http://localhost:{port}/\"\n"),
    );

    let browser = move |_: &LoginPrompt| {
        tokio::spawn(async move {
            let denial = format!(
                "http://127.0.0.1:{port}/?error=consent_required&error_description=AADSTS65001"
            );
            reqwest::get(denial).await.unwrap();
        });
    };
    let error = login(&config, &folder.path().join("exmux.toml"), browser)
        .await
        .unwrap_err();
    assert!(matches!(error, LoginError::Denied { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("consent_required"), "{message}");
    assert!(message.contains("exmux login"), "{message}");
}

#[tokio::test]
async fn login_needs_oauth2_method() {
    let config = Config::from_toml_str(
        "[auth]\nmethod = \"basic\"\nusername = \"u\"\n[routing]\npreset = \"ews\"\n",
    )
    .unwrap();
    let error = login(&config, Path::new("exmux.toml"), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, LoginError::NotOAuth2 { .. }), "{error:?}");
    assert!(error.to_string().contains("method = \"basic\""), "{error}");
}

/// Discovers the emulator's mailbox with `credentials`, sending example.test to it.
async fn discover_with(
    handle: &EmulatorHandle,
    credentials: exmux_core::auth::Credentials,
) -> Result<exmux_autodiscover::Discovery, exmux_autodiscover::DiscoverError> {
    let mut map = exmux_autodiscover::LoopbackMap::new();
    map.insert(
        "example.test",
        reqwest::Url::parse(handle.base_url()).unwrap(),
    );
    let options = exmux_autodiscover::AutodiscoverOptions {
        credentials: Some(credentials),
        methods: vec![exmux_autodiscover::Method::PoxDomain],
        loopback: Some(map),
        ..exmux_autodiscover::AutodiscoverOptions::default()
    };
    let http = exmux_core::http::HttpOptions::default()
        .build_client()
        .unwrap();
    exmux_autodiscover::Autodiscover::new(http, options)
        .discover(exmux::emulator::MAILBOX)
        .await
}

#[tokio::test]
async fn config_credentials_discover_over_ntlm() {
    let handle = emulator().await;
    let folder = tempfile::tempdir().unwrap();
    let password = folder.path().join("password");
    std::fs::write(&password, format!("{}\n", exmux::emulator::PASSWORD)).unwrap();
    let config = Config::from_toml_str(&format!(
        "[auth]\nmethod = \"ntlm\"\nusername = \"{}\"\npassword_file = \"{}\"\n[routing]\npreset = \"ews\"\n",
        exmux::emulator::MAILBOX,
        password.display()
    ))
    .unwrap();

    let credentials =
        exmux::login::credentials(&config, &folder.path().join("exmux.toml")).unwrap();
    assert!(matches!(
        credentials,
        exmux_core::auth::Credentials::Ntlm { .. }
    ));
    let found = discover_with(&handle, credentials).await.unwrap();
    assert_eq!(found.settings.ews_url, Some(handle.ews_url()));
}

#[tokio::test]
async fn config_credentials_use_login_cache() {
    let handle = emulator().await;
    let folder = tempfile::tempdir().unwrap();
    let config_path = folder.path().join("exmux.toml");
    let config = oauth_config(&handle, "device-code", "");
    login(&config, &config_path, |_| {}).await.unwrap();

    let credentials = exmux::login::credentials(&config, &config_path).unwrap();
    assert!(matches!(
        credentials,
        exmux_core::auth::Credentials::Bearer(_)
    ));
    let found = discover_with(&handle, credentials).await.unwrap();
    assert_eq!(found.settings.ews_url, Some(handle.ews_url()));
}

#[tokio::test]
async fn config_credentials_need_a_secret_source() {
    let config = Config::from_toml_str(
        "[auth]\nmethod = \"basic\"\nusername = \"u\"\n[routing]\npreset = \"ews\"\n",
    )
    .unwrap();
    let error = exmux::login::credentials(&config, Path::new("exmux.toml")).unwrap_err();
    assert!(
        matches!(error, LoginError::Config(ConfigError::SecretFromProvider)),
        "{error:?}"
    );
}
