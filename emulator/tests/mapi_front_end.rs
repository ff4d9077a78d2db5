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
use exmux_mapihttp::body::{
    ConnectRequest, ConnectResponse, ExecuteRequest, NotificationWaitRequest,
    NotificationWaitResponse, Response, WireBody,
};
use exmux_mapihttp::ext::{self, EncodeOptions};
use exmux_mapihttp::http::parse_body;
use exmux_mapihttp::ids::ObjectId;
use exmux_mapihttp::rop::{self, RopBuffer, RopRequest};

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

fn cookies_of(response: &reqwest::Response, jar: &mut Vec<(String, String)>) {
    for value in response.headers().get_all("set-cookie") {
        let pair = value.to_str().unwrap().split(';').next().unwrap();
        let (name, value) = pair.split_once('=').unwrap();
        jar.retain(|(n, _)| n != name);
        jar.push((name.to_owned(), value.to_owned()));
    }
}

fn cookie_header(jar: &[(String, String)]) -> String {
    jar.iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn notification_wait_streams_over_tls() {
    let emulator = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let ca =
        reqwest::Certificate::from_pem(emulator.ca_certificate_pem().unwrap().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let url = emulator.mapi_emsmdb_url();
    let inbox = emulator
        .store()
        .lock()
        .unwrap()
        .well_known_folder(exmux_emulator::store::WellKnownFolder::Inbox)
        .unwrap();
    let mut jar = Vec::new();

    let connect = ConnectRequest {
        user_dn: legacy_dn("user1@example.test"),
        flags: 0,
        default_code_page: 1252,
        lcid_sort: 0x409,
        lcid_string: 0x409,
        aux: Vec::new(),
    };
    let response = post(&client, &url, "Connect", None, connect.encode().unwrap()).await;
    cookies_of(&response, &mut jar);

    // Log on and subscribe to the inbox.
    let requests = vec![
        RopRequest::Logon {
            logon_id: 0,
            output_handle: 0,
            logon_flags: 0x01,
            open_flags: 0x0100_040C,
            store_state: 0,
            essdn: legacy_dn("user1@example.test").into_bytes(),
        },
        RopRequest::RegisterNotification {
            logon_id: 0,
            input_handle: 0,
            output_handle: 1,
            notification_types: 0x04,
            reserved: 0,
            want_whole_store: false,
            folder_id: ObjectId(inbox.to_u64()),
            message_id: ObjectId(0),
        },
    ];
    let buffer = rop::encode_request_buffer(&RopBuffer {
        rops: requests,
        handles: vec![0xFFFF_FFFF; 2],
    });
    let execute = ExecuteRequest {
        flags: 0,
        rop_buffer: ext::encode_chain(&[&buffer], EncodeOptions::default()).unwrap(),
        max_rop_out: 0x40000,
        aux: Vec::new(),
    };
    let response = post(
        &client,
        &url,
        "Execute",
        Some(&cookie_header(&jar)),
        execute.encode().unwrap(),
    )
    .await;
    assert_eq!(response.headers()["x-responsecode"], "0");
    cookies_of(&response, &mut jar);
    response.bytes().await.unwrap();

    // Park a NotificationWait, then change the inbox from the store.
    let wait = tokio::spawn({
        let client = client.clone();
        let url = url.clone();
        let cookie = cookie_header(&jar);
        async move {
            let body = NotificationWaitRequest::default().encode().unwrap();
            let response = post(&client, &url, "NotificationWait", Some(&cookie), body).await;
            assert_eq!(response.headers()["x-responsecode"], "0");
            response.bytes().await.unwrap()
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!wait.is_finished(), "the wait is parked");
    {
        let mut store = emulator.store().lock().unwrap();
        let session = exmux_emulator::store::SessionId::SYSTEM;
        store
            .create_item(session, inbox, Default::default())
            .unwrap();
    }
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), wait)
        .await
        .unwrap()
        .unwrap();
    let framed = parse_body(&body).unwrap();
    let Response::Success(success) = NotificationWaitResponse::decode(&framed.body).unwrap() else {
        panic!("NotificationWait failed");
    };
    assert!(success.has_events());

    emulator.shutdown().await;
}
