//! The HTTP-level fault switches: server busy (generic and through a front end's hook),
//! dropped connections, delayed responses and cut streaming responses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server_common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use exmux_core::auth::BoxFuture;
use exmux_emulator::server::{
    EmuRequest, EmuResponse, FaultKind, Handler, RequestContext, ResponseBody, RouteAuth,
    busy_response, drop_connection_response, handler_fn,
};
use server_common::*;

async fn post_ews(
    emulator: &exmux_emulator::server::EmulatorHandle,
) -> reqwest::Result<reqwest::Response> {
    client()
        .post(emulator.ews_url())
        .basic_auth(USER, Some(PASSWORD))
        .body("<x/>")
        .send()
        .await
}

#[tokio::test]
async fn server_busy_answers_503_with_retry_after() {
    let emulator = start_plain().await;
    emulator
        .faults()
        .server_busy("/EWS/", 2, Duration::from_millis(2500));

    for _ in 0..2 {
        let response = post_ews(&emulator).await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "3");
    }
    assert_eq!(post_ews(&emulator).await.unwrap().status(), 501);
    assert_eq!(emulator.faults().fired(FaultKind::ServerBusy), 2);
}

#[tokio::test]
async fn server_busy_only_on_its_path() {
    let emulator = start_plain().await;
    emulator
        .faults()
        .server_busy("/mapi/", 1, Duration::from_secs(1));

    assert_eq!(post_ews(&emulator).await.unwrap().status(), 501);
    let response = client()
        .post(emulator.mapi_emsmdb_url())
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
}

#[tokio::test]
async fn server_busy_needs_authentication_first() {
    let emulator = start_plain().await;
    emulator.faults().server_busy("", 1, Duration::from_secs(1));

    let response = client().post(emulator.ews_url()).send().await.unwrap();
    assert_eq!(response.status(), 401);
    // The switch is still armed for the authenticated request.
    assert_eq!(post_ews(&emulator).await.unwrap().status(), 503);
}

/// A front end with its own busy response, as the EWS front end returns a SOAP fault.
struct SoapLike;

impl Handler for SoapLike {
    fn handle(
        &self,
        _request: EmuRequest,
        _context: RequestContext,
    ) -> BoxFuture<'static, EmuResponse> {
        Box::pin(async { http::Response::new(ResponseBody::from("normal")) })
    }

    fn busy_response(&self, _request: &EmuRequest, back_off: Duration) -> Option<EmuResponse> {
        let body = format!(
            "<Fault>ErrorServerBusy BackOffMilliseconds={}</Fault>",
            back_off.as_millis()
        );
        let mut response = http::Response::new(ResponseBody::from(body));
        *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        Some(response)
    }
}

#[tokio::test]
async fn server_busy_uses_front_end_hook() {
    let emulator = start_plain().await;
    emulator.mount(
        "/EWS/Exchange.asmx",
        RouteAuth::Required,
        Arc::new(SoapLike),
    );
    emulator
        .faults()
        .server_busy("/EWS/", 1, Duration::from_millis(297_418));

    let response = post_ews(&emulator).await.unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(
        response.text().await.unwrap(),
        "<Fault>ErrorServerBusy BackOffMilliseconds=297418</Fault>"
    );
    assert_eq!(
        post_ews(&emulator).await.unwrap().text().await.unwrap(),
        "normal"
    );
}

#[tokio::test]
async fn drop_connection_closes_without_answer() {
    let emulator = start_plain().await;
    emulator.faults().drop_connections("/EWS/", 2);

    for _ in 0..2 {
        let error = post_ews(&emulator).await.unwrap_err();
        assert!(!error.is_status(), "{error:?}");
        assert!(!error.is_timeout(), "{error:?}");
    }
    assert_eq!(post_ews(&emulator).await.unwrap().status(), 501);
    assert_eq!(emulator.faults().fired(FaultKind::DropConnection), 2);
}

#[tokio::test]
async fn delay_holds_the_response() {
    let emulator = start_plain().await;
    emulator
        .faults()
        .delay_responses("/EWS/", 1, Duration::from_millis(300));

    let quick_client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let error = quick_client
        .post(emulator.ews_url())
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");

    assert_eq!(emulator.faults().fired(FaultKind::Delay), 1);
    let response = quick_client
        .post(emulator.ews_url())
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 501);
}

fn mount_streamer(emulator: &exmux_emulator::server::EmulatorHandle) {
    emulator.mount(
        "/stream",
        RouteAuth::Anonymous,
        handler_fn(|_request, _context| async move {
            let (sender, body) = ResponseBody::channel(8);
            tokio::spawn(async move {
                for index in 0..3 {
                    if sender.send(format!("chunk{index};")).await.is_err() {
                        return;
                    }
                }
            });
            http::Response::new(body)
        }),
    );
}

async fn read_stream(
    emulator: &exmux_emulator::server::EmulatorHandle,
) -> (Vec<Bytes>, Option<reqwest::Error>) {
    let mut response = client()
        .get(format!("{}/stream", emulator.base_url()))
        .send()
        .await
        .unwrap();
    let mut chunks = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => chunks.push(chunk),
            Ok(None) => return (chunks, None),
            Err(error) => return (chunks, Some(error)),
        }
    }
}

/// Reads a whole HTTP/1.1 exchange off a raw socket, so the test checks the chunked
/// framing exactly as sent.
async fn raw_get(emulator: &exmux_emulator::server::EmulatorHandle, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let mut stream = tokio::net::TcpStream::connect(emulator.local_addr())
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(received).unwrap()
}

#[tokio::test]
async fn cut_stream_ends_body_early() {
    let emulator = start_plain().await;
    mount_streamer(&emulator);
    emulator.faults().cut_streams("/stream", 1, 2);

    let cut = raw_get(&emulator, "/stream").await;
    assert!(cut.starts_with("HTTP/1.1 200 OK\r\n"), "{cut}");
    assert!(cut.contains("transfer-encoding: chunked"), "{cut}");
    assert!(
        cut.ends_with("\r\n7\r\nchunk0;\r\n7\r\nchunk1;\r\n"),
        "{cut}"
    );
    assert_eq!(emulator.faults().fired(FaultKind::CutStream), 1);

    let whole = raw_get(&emulator, "/stream").await;
    assert!(whole.ends_with("7\r\nchunk2;\r\n0\r\n\r\n"), "{whole}");

    let (chunks, error) = read_stream(&emulator).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(chunks.concat(), b"chunk0;chunk1;chunk2;");
}

#[tokio::test]
async fn clear_disarms_every_switch() {
    let emulator = start_plain().await;
    emulator.faults().drop_connections("", 5);
    emulator.faults().server_busy("", 5, Duration::from_secs(1));
    emulator.faults().clear();
    assert_eq!(post_ews(&emulator).await.unwrap().status(), 501);
}

#[tokio::test]
async fn handler_can_drop_the_connection() {
    let emulator = start_plain().await;
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    emulator.mount(
        "/EWS/Exchange.asmx",
        RouteAuth::Required,
        handler_fn(move |_request, _context| {
            let first = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            async move {
                if first {
                    drop_connection_response()
                } else {
                    http::Response::new(ResponseBody::from("normal"))
                }
            }
        }),
    );

    let error = post_ews(&emulator).await.unwrap_err();
    assert!(!error.is_status(), "{error:?}");
    let response = post_ews(&emulator).await.unwrap();
    assert_eq!(response.text().await.unwrap(), "normal");
}

#[tokio::test]
async fn busy_helper_rounds_retry_after_up() {
    let response = busy_response(Duration::from_millis(1001));
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "2");

    let response = busy_response(Duration::ZERO);
    assert_eq!(response.headers()["retry-after"], "0");
}
