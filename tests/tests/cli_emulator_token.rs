#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The OAuth2 token endpoint of the command line's emulator (`exmux emulator`): a token
//! from the device code grant (RFC 8628) is accepted as a bearer token on EWS, and a
//! token it never issued is not.

use std::net::SocketAddr;

use exmux_emulator::server::EmulatorHandle;

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

async fn emulator() -> EmulatorHandle {
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    exmux::emulator::start(listen, None).await.unwrap()
}

/// Encodes `pairs` as `application/x-www-form-urlencoded`, escaping every byte that
/// is not unreserved (RFC 3986 section 2.3).
fn form(pairs: &[(&str, &str)]) -> String {
    let escape = |text: &str| {
        text.bytes()
            .map(|byte| {
                if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                    char::from(byte).to_string()
                } else {
                    format!("%{byte:02X}")
                }
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", escape(name), escape(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Posts a form and returns the status and the JSON body.
async fn post_form(url: &str, pairs: &[(&str, &str)]) -> (reqwest::StatusCode, serde_json::Value) {
    let response = client()
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(pairs))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Runs the device code grant against `tenant` and returns the access token. The
/// emulator returns `authorization_pending` for the first poll, as a server does
/// before the user has signed in.
async fn device_code_token(handle: &EmulatorHandle, tenant: &str) -> String {
    let base = format!(
        "{}{tenant}/oauth2/v2.0",
        exmux::emulator::oauth_authority(handle)
    );
    let (status, grant) = post_form(
        &format!("{base}/devicecode"),
        &[
            ("client_id", exmux::emulator::OAUTH_CLIENT_ID),
            (
                "scope",
                "https://outlook.office365.com/EWS.AccessAsUser.All",
            ),
        ],
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let device_code = grant["device_code"].as_str().unwrap().to_owned();

    let token_url = format!("{base}/token");
    let poll = [
        ("client_id", exmux::emulator::OAUTH_CLIENT_ID),
        ("grant_type", exmux_emulator::token::DEVICE_CODE_GRANT),
        ("device_code", device_code.as_str()),
    ];
    let (status, pending) = post_form(&token_url, &poll).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert_eq!(pending["error"], "authorization_pending");

    let (status, granted) = post_form(&token_url, &poll).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    granted["access_token"].as_str().unwrap().to_owned()
}

async fn get_inbox(handle: &EmulatorHandle, token: &str) -> reqwest::Response {
    client()
        .post(handle.ews_url())
        .bearer_auth(token)
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(GET_INBOX)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn issued_token_is_a_bearer_on_ews() {
    let handle = emulator().await;
    assert_eq!(
        exmux::emulator::token_url(&handle),
        format!("{}/organizations/oauth2/v2.0/token", handle.base_url())
    );

    let token = device_code_token(&handle, "organizations").await;
    let response = get_inbox(&handle, &token).await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let body = response.text().await.unwrap();
    assert!(body.contains("NoError"), "GetFolder answered: {body}");
}

#[tokio::test]
async fn every_listed_tenant_issues_tokens() {
    let handle = emulator().await;
    for tenant in exmux::emulator::OAUTH_TENANTS {
        let token = device_code_token(&handle, tenant).await;
        assert_eq!(
            get_inbox(&handle, &token).await.status(),
            reqwest::StatusCode::OK,
            "token from tenant {tenant}"
        );
    }
}

#[tokio::test]
async fn token_not_issued_is_rejected() {
    let handle = emulator().await;
    let response = get_inbox(&handle, "emx_at_never-issued").await;
    assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_client_gets_no_token() {
    let handle = emulator().await;
    let (status, body) = post_form(
        &exmux::emulator::token_url(&handle),
        &[
            ("client_id", "someone-else"),
            ("grant_type", "refresh_token"),
        ],
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_client");
}
