//! The emulator's HTTP server: start and stop, plain HTTP and HTTPS, routing, body
//! limits, streaming responses and graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server_common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use exmux_emulator::server::{Emulator, EmulatorOptions, ResponseBody, RouteAuth, handler_fn};
use server_common::*;

#[tokio::test]
async fn health_answers_over_plain_http() {
    let emulator = start_plain().await;
    assert!(emulator.base_url().starts_with("http://127.0.0.1:"));

    let response = client()
        .get(format!("{}/health", emulator.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok\n");
    emulator.shutdown().await;
}

#[tokio::test]
async fn urls_follow_exchange_layout() {
    let emulator = start_plain().await;
    let base = emulator.base_url().to_owned();
    let guid = emulator.state().mailbox.mailbox_guid;

    assert_eq!(emulator.ews_url(), format!("{base}/EWS/Exchange.asmx"));
    assert_eq!(
        emulator.mapi_emsmdb_url(),
        format!("{base}/mapi/emsmdb/?MailboxId={guid}@example.test")
    );
    assert_eq!(
        emulator.mapi_nspi_url(),
        format!("{base}/mapi/nspi/?MailboxId={guid}@example.test")
    );
    assert_eq!(
        emulator.autodiscover_url(),
        format!("{base}/Autodiscover/Autodiscover.xml")
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn mailbox_guid_follows_seed() {
    let first = Emulator::start(EmulatorOptions {
        seed: 7,
        ..plain_options()
    })
    .await
    .unwrap();
    let second = Emulator::start(EmulatorOptions {
        seed: 7,
        ..plain_options()
    })
    .await
    .unwrap();
    let third = Emulator::start(EmulatorOptions {
        seed: 8,
        ..plain_options()
    })
    .await
    .unwrap();

    assert_eq!(first.mailbox_id(), second.mailbox_id());
    assert_ne!(first.mailbox_id(), third.mailbox_id());
}

#[tokio::test]
async fn https_with_trusted_ca() {
    let emulator = Emulator::start(EmulatorOptions {
        tls: true,
        ..plain_options()
    })
    .await
    .unwrap();
    assert!(emulator.base_url().starts_with("https://127.0.0.1:"));
    let tls = emulator.tls().unwrap();
    assert!(tls.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(!tls.ca_der().is_empty());
    assert!(!tls.server_der().is_empty());

    let response = tls_client(&emulator)
        .get(format!("{}/health", emulator.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    emulator.shutdown().await;
}

#[tokio::test]
async fn https_certificate_names_localhost() {
    let emulator = Emulator::start(EmulatorOptions {
        tls: true,
        ..plain_options()
    })
    .await
    .unwrap();
    let ca =
        reqwest::Certificate::from_pem(emulator.ca_certificate_pem().unwrap().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([ca])
        .resolve("localhost", emulator.local_addr())
        .build()
        .unwrap();

    let url = format!("https://localhost:{}/health", emulator.local_addr().port());
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn https_rejected_without_the_ca() {
    let emulator = Emulator::start(EmulatorOptions {
        tls: true,
        ..plain_options()
    })
    .await
    .unwrap();
    let other = Emulator::start(EmulatorOptions {
        tls: true,
        ..plain_options()
    })
    .await
    .unwrap();

    // Each emulator has its own CA, so trusting one does not trust the other.
    let result = tls_client(&other)
        .get(format!("{}/health", emulator.base_url()))
        .send()
        .await;
    let error = result.unwrap_err();
    assert!(
        error.is_connect(),
        "expected a TLS connect error, got {error:?}"
    );
}

#[tokio::test]
async fn https_serves_http2_through_alpn() {
    let emulator = Emulator::start(EmulatorOptions {
        tls: true,
        ..plain_options()
    })
    .await
    .unwrap();
    let response = tls_client(&emulator)
        .get(format!("{}/health", emulator.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
}

#[tokio::test]
async fn protocol_front_ends_mounted_by_default() {
    let emulator = Emulator::start(plain_options()).await.unwrap();
    let ews = client()
        .post(emulator.ews_url())
        .basic_auth(USER, Some(PASSWORD))
        .body("<x/>")
        .send()
        .await
        .unwrap();
    // The EWS front end rejects a body that is not a SOAP envelope with a SOAP fault.
    assert_eq!(ews.status(), 500);
    assert!(ews.text().await.unwrap().contains("Fault"));

    let mapi = client()
        .post(emulator.mapi_emsmdb_url())
        .basic_auth(USER, Some(PASSWORD))
        .body("<x/>")
        .send()
        .await
        .unwrap();
    // Every answer of the MAPI/HTTP front end carries X-ResponseCode, errors included.
    assert!(mapi.headers().contains_key("x-responsecode"));
}

#[tokio::test]
async fn unknown_path_answers_404() {
    let emulator = start_plain().await;
    let response = client()
        .get(format!("{}/owa/", emulator.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn mounted_handler_sees_body_and_context() {
    let emulator = start_plain().await;
    // Mounting at the placeholder's prefix replaces the 501 placeholder.
    emulator.mount(
        "/EWS/Exchange.asmx",
        RouteAuth::Required,
        handler_fn(|request, context| async move {
            let text = format!(
                "{} {} {} conn={} req={} user={}",
                request.method(),
                request.uri().path(),
                String::from_utf8_lossy(request.body()),
                context.connection_id,
                context.request_id,
                context.user.name
            );
            http::Response::new(ResponseBody::from(text))
        }),
    );

    // Routes match case-insensitively, as IIS does.
    let response = client()
        .post(format!("{}/ews/exchange.asmx", emulator.base_url()))
        .basic_auth(USER, Some(PASSWORD))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.starts_with("POST /ews/exchange.asmx hello conn="),
        "{text}"
    );
    assert!(text.ends_with("user=user1@example.test"), "{text}");
}

#[tokio::test]
async fn oversized_body_answers_413() {
    let emulator = Emulator::start(EmulatorOptions {
        max_request_body: 1024,
        ..plain_options()
    })
    .await
    .unwrap();
    let response = client()
        .post(emulator.ews_url())
        .basic_auth(USER, Some(PASSWORD))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn streaming_response_arrives_in_chunks() {
    let emulator = start_plain().await;
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    emulator.mount(
        "/stream",
        RouteAuth::Anonymous,
        handler_fn(move |_request, _context| {
            let mut release = release_rx.clone();
            async move {
                let (sender, body) = ResponseBody::channel(4);
                tokio::spawn(async move {
                    sender.send("first;").await.unwrap();
                    // The second chunk waits for the test, proving the first one was
                    // sent while the handler was still writing.
                    release.wait_for(|released| *released).await.unwrap();
                    sender.send("second;").await.unwrap();
                });
                http::Response::new(body)
            }
        }),
    );

    let mut response = client()
        .get(format!("{}/stream", emulator.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    assert_eq!(first, Bytes::from_static(b"first;"));
    release_tx.send(true).unwrap();
    let second = response.chunk().await.unwrap().unwrap();
    assert_eq!(second, Bytes::from_static(b"second;"));
    assert_eq!(response.chunk().await.unwrap(), None);
}

#[tokio::test]
async fn shutdown_refuses_new_connections() {
    let emulator = start_plain().await;
    let url = format!("{}/health", emulator.base_url());
    assert_eq!(client().get(&url).send().await.unwrap().status(), 200);

    emulator.shutdown().await;
    let error = client().get(&url).send().await.unwrap_err();
    assert!(error.is_connect(), "{error:?}");
}

#[tokio::test]
async fn shutdown_lets_running_request_finish() {
    let emulator = start_plain().await;
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
    let entered_tx = Arc::new(std::sync::Mutex::new(Some(entered_tx)));
    emulator.mount(
        "/slow",
        RouteAuth::Anonymous,
        handler_fn(move |_request, _context| {
            let entered_tx = Arc::clone(&entered_tx);
            async move {
                if let Some(tx) = entered_tx.lock().unwrap().take() {
                    tx.send(()).unwrap();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                http::Response::new(ResponseBody::from("done"))
            }
        }),
    );

    let url = format!("{}/slow", emulator.base_url());
    let request = tokio::spawn(async move {
        client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    entered_rx.await.unwrap();
    emulator.shutdown().await;
    assert_eq!(request.await.unwrap(), "done");
}

#[tokio::test]
async fn shutdown_ends_streaming_responses() {
    let emulator = start_plain().await;
    emulator.mount(
        "/stream",
        RouteAuth::Anonymous,
        handler_fn(|_request, context| async move {
            let (sender, body) = ResponseBody::channel(4);
            tokio::spawn(async move {
                sender.send("open;").await.unwrap();
                // A handler parked on a long wait, like a streaming subscription.
                context.state.shutdown.cancelled().await;
                sender.closed().await;
            });
            http::Response::new(body)
        }),
    );

    let mut response = client()
        .get(format!("{}/stream", emulator.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.chunk().await.unwrap().unwrap(),
        Bytes::from_static(b"open;")
    );

    let stopped = tokio::time::timeout(Duration::from_secs(5), emulator.shutdown()).await;
    assert!(
        stopped.is_ok(),
        "shutdown waited for the whole grace period"
    );
    assert_eq!(response.chunk().await.unwrap(), None);
}

#[tokio::test]
async fn listen_address_must_be_loopback() {
    let result = Emulator::start(EmulatorOptions {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..plain_options()
    })
    .await;
    assert!(result.is_err());
}
