//! Autodiscover through the emulator's HTTP server, whose authentication layer checks
//! NTLM, Basic and bearer credentials, with the autodiscover handler mounted on it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use exmux_autodiscover::{Autodiscover, AutodiscoverOptions, LoopbackMap, Method};
use exmux_core::Secret;
use exmux_core::auth::{Credentials, StaticToken};
use exmux_emulator::autodiscover::{AutodiscoverConfig, AutodiscoverMailbox};
use exmux_emulator::server::{
    AuthOptions, AuthScheme, ChallengeStyle, Emulator, EmulatorHandle, EmulatorOptions, RouteAuth,
    full_response, handler_fn,
};

const PASSWORD: &str = "Emu-leak-canary-77";

async fn start(schemes: Vec<AuthScheme>, style: ChallengeStyle) -> EmulatorHandle {
    start_with_tls(schemes, style, false).await
}

async fn start_with_tls(
    schemes: Vec<AuthScheme>,
    style: ChallengeStyle,
    tls: bool,
) -> EmulatorHandle {
    let options = EmulatorOptions {
        tls,
        password: Secret::new(PASSWORD),
        bearer_token: Some(Secret::new("static-bearer-token-1")),
        auth: AuthOptions {
            schemes,
            challenge_style: style,
            ..AuthOptions::default()
        },
        ..EmulatorOptions::default()
    };
    let handle = Emulator::start(options).await.unwrap();
    let config = AutodiscoverConfig::new(AutodiscoverMailbox {
        address: "user1@example.test".to_owned(),
        display_name: "User One".to_owned(),
        legacy_dn: "/o=Emulator/cn=Recipients/cn=user1".to_owned(),
        ews_url: handle.ews_url(),
        emsmdb_url: handle.mapi_emsmdb_url(),
        nspi_url: handle.mapi_nspi_url(),
        deployment_id: "00000000-0000-0000-0000-000000000001".to_owned(),
    });
    let config = Arc::new(config);
    handle.mount(
        "/autodiscover/",
        RouteAuth::Required,
        handler_fn(move |request, _context| {
            let config = config.clone();
            async move {
                let response = exmux_emulator::autodiscover::handle(&request, &config)
                    .unwrap_or_else(|| {
                        let mut response = http::Response::new(bytes::Bytes::new());
                        *response.status_mut() = http::StatusCode::NOT_FOUND;
                        response
                    });
                full_response(response)
            }
        }),
    );
    handle
}

fn client(handle: &EmulatorHandle, credentials: Credentials) -> Autodiscover {
    client_with(
        handle,
        credentials,
        &exmux_core::http::HttpOptions::default(),
    )
}

fn client_with(
    handle: &EmulatorHandle,
    credentials: Credentials,
    http_options: &exmux_core::http::HttpOptions,
) -> Autodiscover {
    let mut map = LoopbackMap::new();
    map.insert("example.test", url::Url::parse(handle.base_url()).unwrap());
    let options = AutodiscoverOptions {
        credentials: Some(credentials),
        methods: vec![Method::PoxDomain, Method::Soap],
        loopback: Some(map),
        ..AutodiscoverOptions::default()
    };
    Autodiscover::new(http_options.build_client().unwrap(), options)
}

fn ntlm() -> Credentials {
    Credentials::Ntlm {
        username: "user1@example.test".to_owned(),
        password: Secret::new(PASSWORD),
    }
}

#[tokio::test]
async fn ntlm_handshake_with_both_challenge_styles() {
    for style in [ChallengeStyle::SeparateHeaders, ChallengeStyle::OneHeader] {
        let handle = start(vec![AuthScheme::Basic, AuthScheme::Ntlm], style).await;
        let found = client(&handle, ntlm())
            .discover("user1@example.test")
            .await
            .unwrap();
        assert_eq!(found.source.method, Method::PoxDomain, "{style:?}");
        assert_eq!(found.settings.ews_url, Some(handle.ews_url()), "{style:?}");
        handle.shutdown().await;
    }
}

#[tokio::test]
async fn negotiate_falls_back_to_offered_ntlm() {
    let handle = start(vec![AuthScheme::Ntlm], ChallengeStyle::SeparateHeaders).await;
    let negotiate = Credentials::Negotiate {
        username: "user1@example.test".to_owned(),
        password: Secret::new(PASSWORD),
    };
    let found = client(&handle, negotiate)
        .discover("user1@example.test")
        .await
        .unwrap();
    assert_eq!(found.source.method, Method::PoxDomain);
    handle.shutdown().await;
}

#[tokio::test]
async fn ntlm_with_wrong_password_is_rejected() {
    let handle = start(vec![AuthScheme::Ntlm], ChallengeStyle::SeparateHeaders).await;
    let wrong = Credentials::Ntlm {
        username: "user1@example.test".to_owned(),
        password: Secret::new("not-the-password"),
    };
    let error = client(&handle, wrong)
        .discover("user1@example.test")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("rejected the credentials"),
        "{error}"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn basic_and_bearer_pass_the_server() {
    let handle = start(
        vec![AuthScheme::Basic, AuthScheme::Bearer],
        ChallengeStyle::OneHeader,
    )
    .await;
    let basic = Credentials::Basic {
        username: "user1@example.test".to_owned(),
        password: Secret::new(PASSWORD),
    };
    assert!(
        client(&handle, basic)
            .discover("user1@example.test")
            .await
            .is_ok()
    );

    let bearer = Credentials::Bearer(Arc::new(StaticToken(Secret::new("static-bearer-token-1"))));
    assert!(
        client(&handle, bearer)
            .discover("user1@example.test")
            .await
            .is_ok()
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn results_and_errors_carry_no_secret() {
    let handle = start(vec![AuthScheme::Basic], ChallengeStyle::SeparateHeaders).await;
    let basic = Credentials::Basic {
        username: "user1@example.test".to_owned(),
        password: Secret::new(PASSWORD),
    };
    let found = client(&handle, basic.clone())
        .discover("user1@example.test")
        .await
        .unwrap();
    let wrong_domain = client(&handle, basic)
        .discover("user1@other.test")
        .await
        .unwrap_err();

    let forms = [
        PASSWORD.to_owned(),
        STANDARD.encode(PASSWORD),
        STANDARD.encode(format!("user1@example.test:{PASSWORD}")),
    ];
    let texts = [
        serde_json::to_string(&found).unwrap(),
        format!("{found:?}"),
        format!("{wrong_domain} {wrong_domain:?}"),
        format!("{:?}", client(&handle, ntlm())),
    ];
    for text in &texts {
        for form in &forms {
            assert!(!text.contains(form.as_str()), "leaked {form:?} in {text}");
        }
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn tls_needs_the_ca_bundle_or_the_danger_option() {
    let handle = start_with_tls(
        vec![AuthScheme::Basic],
        ChallengeStyle::SeparateHeaders,
        true,
    )
    .await;
    assert!(handle.base_url().starts_with("https://"));
    let basic = Credentials::Basic {
        username: "user1@example.test".to_owned(),
        password: Secret::new(PASSWORD),
    };

    // Verification is on by default, and the emulator's CA is not a built-in root.
    let error = client(&handle, basic.clone())
        .discover("user1@example.test")
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .to_ascii_lowercase()
            .contains("certificate"),
        "{error}"
    );

    let folder = tempfile::tempdir().unwrap();
    let bundle = folder.path().join("ca.pem");
    std::fs::write(&bundle, handle.ca_certificate_pem().unwrap()).unwrap();
    let trusted = exmux_core::http::HttpOptions {
        ca_bundle: Some(bundle),
        ..exmux_core::http::HttpOptions::default()
    };
    let found = client_with(&handle, basic.clone(), &trusted)
        .discover("user1@example.test")
        .await
        .unwrap();
    assert_eq!(found.settings.ews_url, Some(handle.ews_url()));

    let reckless = exmux_core::http::HttpOptions {
        danger_accept_invalid_certs: true,
        ..exmux_core::http::HttpOptions::default()
    };
    assert!(
        client_with(&handle, basic, &reckless)
            .discover("user1@example.test")
            .await
            .is_ok()
    );
    handle.shutdown().await;
}

/// Builds a client over a shared reqwest client that keeps no idle connection, so a
/// handshake that relied on the pool would send each leg on a new connection.
fn client_without_pool(handle: &EmulatorHandle, credentials: Credentials) -> Autodiscover {
    let mut map = LoopbackMap::new();
    map.insert("example.test", url::Url::parse(handle.base_url()).unwrap());
    let options = AutodiscoverOptions {
        credentials: Some(credentials),
        methods: vec![Method::PoxDomain],
        loopback: Some(map),
        ..AutodiscoverOptions::default()
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    Autodiscover::new(http, options)
}

#[tokio::test]
async fn ntlm_runs_on_an_owned_connection() {
    let handle = start(vec![AuthScheme::Ntlm], ChallengeStyle::SeparateHeaders).await;
    let found = client_without_pool(&handle, ntlm())
        .discover("user1@example.test")
        .await
        .unwrap();
    assert_eq!(found.source.method, Method::PoxDomain);
    assert_eq!(found.settings.ews_url, Some(handle.ews_url()));
    handle.shutdown().await;
}

#[tokio::test]
async fn negotiate_spnego_on_an_owned_connection() {
    let handle = start(
        vec![AuthScheme::Negotiate, AuthScheme::Basic],
        ChallengeStyle::SeparateHeaders,
    )
    .await;
    let negotiate = Credentials::Negotiate {
        username: "user1@example.test".to_owned(),
        password: Secret::new(PASSWORD),
    };
    let found = client_without_pool(&handle, negotiate)
        .discover("user1@example.test")
        .await
        .unwrap();
    assert_eq!(found.source.method, Method::PoxDomain);
    assert_eq!(found.settings.ews_url, Some(handle.ews_url()));
    handle.shutdown().await;
}

#[tokio::test]
async fn negotiate_wrong_password_is_rejected() {
    let handle = start(vec![AuthScheme::Negotiate], ChallengeStyle::SeparateHeaders).await;
    let wrong = Credentials::Negotiate {
        username: "user1@example.test".to_owned(),
        password: Secret::new("not-the-password-3f"),
    };
    let error = client_without_pool(&handle, wrong)
        .discover("user1@example.test")
        .await
        .unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(text.contains("rejected the credentials"), "{text}");
    assert!(!text.contains("not-the-password-3f"), "{text}");
    handle.shutdown().await;
}

#[tokio::test]
async fn owned_connection_times_out() {
    // A server that accepts connections and never responds.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut open_sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open_sockets.push(socket);
        }
    });

    let mut map = LoopbackMap::new();
    map.insert(
        "example.test",
        url::Url::parse(&format!("http://{address}")).unwrap(),
    );
    let options = AutodiscoverOptions {
        credentials: Some(ntlm()),
        methods: vec![Method::PoxDomain],
        loopback: Some(map),
        request_timeout: std::time::Duration::from_millis(200),
        ..AutodiscoverOptions::default()
    };
    let http = exmux_core::http::HttpOptions::default()
        .build_client()
        .unwrap();
    let error = Autodiscover::new(http, options)
        .discover("user1@example.test")
        .await
        .unwrap_err();
    let attempts = error.attempts();
    assert_eq!(attempts.len(), 1, "{error}");
    let failure = attempts[0].failure.as_deref().unwrap_or_default();
    assert!(failure.contains("timed out after 200 ms"), "{failure}");
    silent.abort();
}

#[tokio::test]
async fn ntlm_over_tls_trusts_the_ca_bundle() {
    let handle = start_with_tls(
        vec![AuthScheme::Ntlm],
        ChallengeStyle::SeparateHeaders,
        true,
    )
    .await;
    let folder = tempfile::tempdir().unwrap();
    let bundle = folder.path().join("ca.pem");
    std::fs::write(&bundle, handle.ca_certificate_pem().unwrap()).unwrap();
    let trusted = exmux_core::http::HttpOptions {
        ca_bundle: Some(bundle),
        ..exmux_core::http::HttpOptions::default()
    };

    let mut map = LoopbackMap::new();
    map.insert("example.test", url::Url::parse(handle.base_url()).unwrap());
    let discover = |owned_tls| {
        let options = AutodiscoverOptions {
            credentials: Some(ntlm()),
            methods: vec![Method::PoxDomain],
            loopback: Some(map.clone()),
            owned_tls,
            ..AutodiscoverOptions::default()
        };
        Autodiscover::new(trusted.build_client().unwrap(), options)
    };

    // The platform's roots do not include the emulator's CA.
    let error = discover(None)
        .discover("user1@example.test")
        .await
        .unwrap_err();
    let failure = error.attempts()[0].failure.clone().unwrap_or_default();
    assert!(
        failure.to_ascii_lowercase().contains("certificate"),
        "{failure}"
    );

    let found = discover(Some(trusted.tls_config().unwrap()))
        .discover("user1@example.test")
        .await
        .unwrap();
    assert_eq!(found.settings.ews_url, Some(handle.ews_url()));
    handle.shutdown().await;
}
