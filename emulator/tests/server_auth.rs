//! Authentication before handlers run: Basic, bearer (static and through a registered
//! validator), NTLM bound to the TCP connection, and the shapes of the 401 challenges.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server_common;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use exmux_core::Secret;
use exmux_emulator::server::{
    AuthOptions, AuthScheme, ChallengeStyle, Emulator, EmulatorOptions, TokenValidator,
};
use server_common::*;

fn www_authenticate(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn basic_accepted() {
    let emulator = start_plain().await;
    let response = client()
        .post(emulator.ews_url())
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    // The placeholder front end returns 501 only after authentication succeeded.
    assert_eq!(response.status(), 501);
}

#[tokio::test]
async fn basic_rejected_with_wrong_password() {
    let emulator = start_plain().await;
    let response = client()
        .post(emulator.ews_url())
        .basic_auth(USER, Some("not-the-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(www_authenticate(&response).len(), 3);
}

#[tokio::test]
async fn basic_rejected_with_wrong_user() {
    let emulator = start_plain().await;
    let response = client()
        .post(emulator.ews_url())
        .basic_auth("user2@example.test", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn basic_rejected_when_malformed() {
    let emulator = start_plain().await;
    for value in ["Basic !!!notbase64", "Basic ", "Basic dXNlcjE="] {
        let response = client()
            .post(emulator.ews_url())
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{value}");
    }
}

#[tokio::test]
async fn missing_authorization_gets_401() {
    let emulator = start_plain().await;
    let response = client().post(emulator.ews_url()).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn health_needs_no_authentication() {
    let emulator = start_plain().await;
    let response = client()
        .get(format!("{}/health", emulator.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn static_bearer_accepted() {
    let emulator = start_plain().await;
    let response = client()
        .post(emulator.mapi_emsmdb_url())
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    // Past authentication the MAPI front end rejects the header-less request itself,
    // with HTTP 200 and an X-ResponseCode.
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-responsecode"));
}

#[tokio::test]
async fn unknown_bearer_rejected() {
    let emulator = start_plain().await;
    let response = client()
        .post(emulator.mapi_emsmdb_url())
        .bearer_auth("some-other-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[derive(Debug)]
struct IssuedTokens;

impl TokenValidator for IssuedTokens {
    fn validate(&self, token: &Secret) -> Option<String> {
        (token.expose() == "issued-by-token-endpoint").then(|| "user1@example.test".to_owned())
    }
}

#[tokio::test]
async fn validator_token_accepted() {
    let emulator = start_plain().await;
    let request = || {
        client()
            .post(emulator.ews_url())
            .bearer_auth("issued-by-token-endpoint")
            .send()
    };
    assert_eq!(request().await.unwrap().status(), 401);

    emulator.register_token_validator(Arc::new(IssuedTokens));
    assert_eq!(request().await.unwrap().status(), 501);
}

#[tokio::test]
async fn challenges_separate_by_default() {
    let emulator = start_plain().await;
    let response = client().post(emulator.ews_url()).send().await.unwrap();
    assert_eq!(
        www_authenticate(&response),
        [
            "NTLM",
            "Basic realm=\"127.0.0.1\"",
            "Bearer realm=\"127.0.0.1\""
        ]
    );
}

#[tokio::test]
async fn challenges_joined_in_configured_order() {
    let emulator = Emulator::start(EmulatorOptions {
        auth: AuthOptions {
            schemes: vec![AuthScheme::Bearer, AuthScheme::Basic, AuthScheme::Ntlm],
            challenge_style: ChallengeStyle::OneHeader,
            realm: "mail.example.test".to_owned(),
            bearer_authorization_uri: Some("https://127.0.0.1/oauth2/authorize".to_owned()),
        },
        ..plain_options()
    })
    .await
    .unwrap();
    mount_stub(&emulator);
    let response = client().post(emulator.ews_url()).send().await.unwrap();
    assert_eq!(
        www_authenticate(&response),
        [
            "Bearer realm=\"mail.example.test\", authorization_uri=\"https://127.0.0.1/oauth2/authorize\", \
             Basic realm=\"mail.example.test\", NTLM"
        ]
    );
}

#[tokio::test]
async fn disabled_scheme_rejected() {
    let emulator = Emulator::start(EmulatorOptions {
        auth: AuthOptions {
            schemes: vec![AuthScheme::Basic],
            ..AuthOptions::default()
        },
        ..plain_options()
    })
    .await
    .unwrap();
    mount_stub(&emulator);
    let response = client()
        .post(emulator.ews_url())
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(www_authenticate(&response), ["Basic realm=\"127.0.0.1\""]);
}

/// Sends NEGOTIATE and returns the decoded CHALLENGE.
async fn negotiate(connection: &mut OneConnection, client: &mut NtlmClient) -> Vec<u8> {
    let negotiate = client.step(None);
    let response = connection
        .post(Some(format!("NTLM {}", BASE64.encode(negotiate))))
        .await;
    assert_eq!(response.status(), 401);
    let challenges: Vec<_> = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .collect();
    assert_eq!(challenges.len(), 1, "{challenges:?}");
    let value = challenges[0].to_str().unwrap();
    let token = value
        .strip_prefix("NTLM ")
        .expect("an NTLM challenge with a token");
    let challenge = BASE64.decode(token).unwrap();
    assert_eq!(&challenge[..8], b"NTLMSSP\0");
    assert_eq!(challenge[8], 2, "CHALLENGE_MESSAGE type");
    challenge
}

#[tokio::test]
async fn ntlm_authenticates_the_connection() {
    let emulator = start_plain().await;
    let mut connection = OneConnection::open(&emulator).await;
    let mut client = NtlmClient::new(USER, PASSWORD);

    let challenge = negotiate(&mut connection, &mut client).await;
    let authenticate = client.step(Some(&challenge));
    let response = connection
        .post(Some(format!("NTLM {}", BASE64.encode(authenticate))))
        .await;
    assert_eq!(response.status(), 501, "{:?}", response.body());

    // Later requests on the same connection need no header, as with IIS.
    assert_eq!(connection.post(None).await.status(), 501);

    // Another connection is not authenticated.
    let mut other = OneConnection::open(&emulator).await;
    assert_eq!(other.post(None).await.status(), 401);
}

#[tokio::test]
async fn ntlm_rejects_wrong_password() {
    let emulator = start_plain().await;
    let mut connection = OneConnection::open(&emulator).await;
    let mut client = NtlmClient::new(USER, "wrong-password");

    let challenge = negotiate(&mut connection, &mut client).await;
    let authenticate = client.step(Some(&challenge));
    let response = connection
        .post(Some(format!("NTLM {}", BASE64.encode(authenticate))))
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(connection.post(None).await.status(), 401);
}

#[tokio::test]
async fn ntlm_rejects_wrong_user() {
    let emulator = start_plain().await;
    let mut connection = OneConnection::open(&emulator).await;
    let mut client = NtlmClient::new("user2@example.test", PASSWORD);

    let challenge = negotiate(&mut connection, &mut client).await;
    let authenticate = client.step(Some(&challenge));
    let response = connection
        .post(Some(format!("NTLM {}", BASE64.encode(authenticate))))
        .await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn ntlm_rejects_authenticate_without_mic() {
    let emulator = start_plain().await;
    let mut connection = OneConnection::open(&emulator).await;
    let mut client = NtlmClient::new(USER, PASSWORD);

    let challenge = negotiate(&mut connection, &mut client).await;
    let mut authenticate = client.step(Some(&challenge));
    // Clear NEGOTIATE_TARGET_INFO (0x00800000) in NegotiateFlags at offset 60, which
    // would make the acceptor skip the MIC, its only proof of the password.
    authenticate[62] &= !0x80;
    let response = connection
        .post(Some(format!("NTLM {}", BASE64.encode(authenticate))))
        .await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn ntlm_bound_to_one_connection() {
    let emulator = start_plain().await;
    let mut first = OneConnection::open(&emulator).await;
    let mut second = OneConnection::open(&emulator).await;
    let mut client = NtlmClient::new(USER, PASSWORD);

    let challenge = negotiate(&mut first, &mut client).await;
    let authenticate = client.step(Some(&challenge));
    let response = second
        .post(Some(format!("NTLM {}", BASE64.encode(authenticate))))
        .await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn ntlm_rejects_garbage_token() {
    let emulator = start_plain().await;
    let mut connection = OneConnection::open(&emulator).await;
    for value in ["NTLM ???", "NTLM AAAA", "NTLM TlRMTVNTUAADAAAA"] {
        let response = connection.post(Some(value.to_owned())).await;
        assert_eq!(response.status(), 401, "{value}");
    }
}

#[tokio::test]
async fn ntlm_over_tls() {
    let emulator = Emulator::start(EmulatorOptions {
        tls: true,
        ..plain_options()
    })
    .await
    .unwrap();
    mount_stub(&emulator);
    let mut connection = OneConnection::open_tls(&emulator).await;
    let mut client = NtlmClient::new(USER, PASSWORD);

    let challenge = negotiate(&mut connection, &mut client).await;
    let authenticate = client.step(Some(&challenge));
    let response = connection
        .post(Some(format!("NTLM {}", BASE64.encode(authenticate))))
        .await;
    assert_eq!(response.status(), 501);
    assert_eq!(connection.post(None).await.status(), 501);
}
