//! No password, token, NTLM hash or cookie reaches a log line, an error message or a
//! `Debug` output, neither as text nor in base64 or hex.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use exmux_core::Secret;
use exmux_core::auth::oauth::{CachedToken, OAuthConfig, OAuthTokenProvider, TokenCache};
use exmux_core::auth::{
    AuthScheme, Credentials, NtlmHandshake, StaticToken, TokenProvider, basic_header,
    parse_challenges,
};
use exmux_core::http::{HttpOptions, ProxySetting};
use md4::{Digest, Md4};

const PASSWORD: &str = "Pa55-leak-canary-Xq9";
const TOKEN: &str = "eyJleGFtcGxlIjoidG9rZW4ifQ.leak-canary-token";
const REFRESH: &str = "refresh-leak-canary-0.AXkA";
const COOKIE: &str = "X-BackEndCookie=leak-canary-cookie";

/// Lists every form in which a secret could leak: text, base64, NT hash.
fn forms(secret: &str) -> Vec<String> {
    let mut forms = vec![
        secret.to_owned(),
        STANDARD.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
        STANDARD.encode(format!("user1:{secret}")),
        STANDARD.encode(format!("user1@example.test:{secret}")),
    ];
    let utf16: Vec<u8> = secret.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let nt_hash = Md4::digest(&utf16);
    forms.push(nt_hash.iter().map(|byte| format!("{byte:02x}")).collect());
    forms.push(nt_hash.iter().map(|byte| format!("{byte:02X}")).collect());
    forms.push(STANDARD.encode(nt_hash));
    forms
}

fn assert_clean(what: &str, text: &str) {
    for secret in [PASSWORD, TOKEN, REFRESH, COOKIE] {
        for form in forms(secret) {
            assert!(!text.contains(&form), "{what} leaks {form:?}: {text}");
        }
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn credentials() -> Vec<Credentials> {
    vec![
        Credentials::Basic {
            username: "user1".to_owned(),
            password: Secret::new(PASSWORD),
        },
        Credentials::Ntlm {
            username: "EXAMPLE\\user1".to_owned(),
            password: Secret::new(PASSWORD),
        },
        Credentials::Negotiate {
            username: "user1@example.test".to_owned(),
            password: Secret::new(PASSWORD),
        },
        Credentials::Bearer(Arc::new(StaticToken(Secret::new(TOKEN)))),
    ]
}

#[test]
fn debug_outputs_redact() {
    for credentials in credentials() {
        assert_clean("Credentials Debug", &format!("{credentials:?}"));
        assert_clean("Credentials pretty Debug", &format!("{credentials:#?}"));
    }

    let header = basic_header("user1", &Secret::new(PASSWORD));
    assert_clean("Basic header Debug", &format!("{header:?} {header}"));
    assert_clean("cookie Debug", &format!("{:?}", Secret::new(COOKIE)));

    let mut handshake =
        NtlmHandshake::new(AuthScheme::Ntlm, "EXAMPLE\\user1", &Secret::new(PASSWORD)).unwrap();
    handshake.negotiate_header().unwrap();
    assert_clean("NtlmHandshake Debug", &format!("{handshake:?}"));

    let token = CachedToken {
        access_token: Secret::new(TOKEN),
        refresh_token: Some(Secret::new(REFRESH)),
        issued_at_millis: 0,
        expires_at_millis: 1,
        scopes: vec![],
    };
    assert_clean("CachedToken Debug", &format!("{token:?}"));

    let options = HttpOptions {
        proxy: ProxySetting::Url {
            url: Secret::new(format!("http://user1:{PASSWORD}@127.0.0.1:3128")),
            no_proxy: None,
        },
        ..HttpOptions::default()
    };
    assert_clean("HttpOptions Debug", &format!("{options:?}"));
}

#[test]
fn handshake_logs_and_errors_redact() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();

    tracing::subscriber::with_default(subscriber, || {
        let mut handshake =
            NtlmHandshake::new(AuthScheme::Ntlm, "EXAMPLE\\user1", &Secret::new(PASSWORD)).unwrap();
        handshake.negotiate_header().unwrap();

        // A well-formed challenge yields a type 3 message; a corrupt one yields an error
        // whose message must stay clean too.
        let challenge = parse_challenges([
            "NTLM TlRMTVNTUAACAAAADgAOADgAAAAVgoniASNFZ4mrze8AAAAAAAAAAHQAdABGAAAACgA5OAAAAA9FAFgAQQBNAFAATABFAAIADgBFAFgAQQBNAFAATABFAAEACgBNAEIAWAAwADEABAAYAGUAeABhAG0AcABsAGUALgB0AGUAcwB0AAMAJABtAGIAeAAwADEALgBlAHgAYQBtAHAAbABlAC4AdABlAHMAdAAHAAgAAICTUc5n0QEAAAAA",
        ])
        .unwrap();
        handshake.authenticate_header(&challenge).unwrap();

        let mut broken =
            NtlmHandshake::new(AuthScheme::Ntlm, "EXAMPLE\\user1", &Secret::new(PASSWORD)).unwrap();
        broken.negotiate_header().unwrap();
        let garbage = parse_challenges(["NTLM TlRMTVNTUAACAAAAAAAAAAAAAAA="]).unwrap();
        let error = broken.authenticate_header(&garbage).unwrap_err();
        assert_clean("NTLM error", &format!("{error} {error:?}"));
    });

    let logged = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert_clean("trace log", &logged);
}

#[tokio::test]
async fn token_provider_errors_redact() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("tokens.json");
    TokenCache::new(&path)
        .store(&CachedToken {
            access_token: Secret::new(TOKEN),
            refresh_token: Some(Secret::new(REFRESH)),
            issued_at_millis: 0,
            expires_at_millis: 0,
            scopes: vec![],
        })
        .unwrap();

    let mut config = OAuthConfig::new("client", "tenant", &path).unwrap();
    // Nothing listens on port 9 on loopback, so the refresh fails quickly.
    config.authority = url::Url::parse("http://127.0.0.1:9/").unwrap();
    let clock = Arc::new(exmux_core::ManualClock::default());
    let provider = OAuthTokenProvider::new(config, reqwest::Client::new(), clock);

    assert_clean("provider Debug", &format!("{provider:?}"));
    let error = provider.access_token().await.unwrap_err();
    assert_clean("refresh error", &format!("{error} {error:?}"));

    let file = std::fs::read_to_string(&path).unwrap();
    assert!(
        file.contains(TOKEN),
        "the cache file itself stores the token"
    );
}
