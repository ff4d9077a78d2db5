//! The MAPI/HTTP front end over loopback: mounted at start, served through the HTTP
//! server with chunked PROCESSING/DONE framing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use exmux_emulator::mapi::legacy_dn;
use exmux_emulator::server::{Emulator, EmulatorOptions};
use exmux_mapihttp::body::{ConnectRequest, ConnectResponse, Response, WireBody};
use exmux_mapihttp::http::parse_body;

async fn post(
    client: &reqwest::Client,
    url: &str,
    request_type: &str,
    cookie: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = client
        .post(url)
        .basic_auth("user1@example.test", Some("password1"))
        .header("Content-Type", "application/mapi-http")
        .header("X-RequestType", request_type)
        .header("X-RequestId", "{9A0E1D51-3C84-4B52-9E0B-3D2B6C7A1F00}:1")
        .header("X-ClientInfo", "{4B1D3C2A-1111-4222-8333-944455556666}:1")
        .header("X-ClientApplication", "Outlook/16.0.17928.20114");
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    request.body(body).send().await.unwrap()
}

#[tokio::test]
async fn connect_and_ping_over_loopback() {
    let emulator = Emulator::start(EmulatorOptions {
        tls: false,
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    let url = emulator.mapi_emsmdb_url();
    let client = reqwest::Client::new();

    let connect = ConnectRequest {
        user_dn: legacy_dn("user1@example.test"),
        flags: 0,
        default_code_page: 1252,
        lcid_sort: 0x409,
        lcid_string: 0x409,
        aux: Vec::new(),
    };
    let response = post(&client, &url, "Connect", None, connect.encode().unwrap()).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["x-responsecode"], "0");
    assert_eq!(headers["x-requesttype"], "Connect");
    assert_eq!(
        headers["x-requestid"],
        "{9A0E1D51-3C84-4B52-9E0B-3D2B6C7A1F00}:1"
    );
    assert_eq!(headers["transfer-encoding"], "chunked");
    let cookies: Vec<String> = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    assert!(cookies.iter().any(|c| c.starts_with("MapiContext=")));
    assert!(cookies.iter().any(|c| c.starts_with("MapiSequence=")));

    let framed = parse_body(&response.bytes().await.unwrap()).unwrap();
    assert!(framed.headers.elapsed_time.is_some());
    assert!(framed.headers.start_time.is_some());
    let Response::Success(success) = ConnectResponse::decode(&framed.body).unwrap() else {
        panic!("Connect failed");
    };
    assert_eq!(success.error_code, 0);

    let cookie = cookies.join("; ");
    let ping = post(&client, &url, "PING", Some(&cookie), Vec::new()).await;
    assert_eq!(ping.headers()["x-responsecode"], "0");
    let framed = parse_body(&ping.bytes().await.unwrap()).unwrap();
    assert!(framed.body.is_empty());

    // Without the context cookie the response carries a protocol code, not an HTTP error.
    let orphan = post(&client, &url, "Execute", None, Vec::new()).await;
    assert_eq!(orphan.status(), 200);
    assert_eq!(orphan.headers()["x-responsecode"], "13");

    // Only POST is a MAPI/HTTP request (X-ResponseCode 2, invalid verb).
    let get = client
        .get(&url)
        .basic_auth("user1@example.test", Some("password1"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.headers()["x-responsecode"], "2");

    emulator.shutdown().await;
}
