//! The client built from `HttpOptions` sends requests through the configured proxy, and
//! `NO_PROXY`-style exceptions bypass it. The proxy and the direct target are both
//! listeners on 127.0.0.1; the proxied host name is never resolved.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use exmux_core::Secret;
use exmux_core::http::{HttpOptions, ProxySetting};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Starts a listener that reports each request's first line and answers `200 ok`.
async fn listener() -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = socket.accept().await {
            let sender = sender.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    let Ok(read) = stream.read(&mut buffer).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    head.extend_from_slice(&buffer[..read]);
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let _ = sender.send(text.lines().next().unwrap_or_default().to_owned());
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (address, receiver)
}

#[tokio::test]
async fn explicit_proxy_receives_absolute_uri() {
    let (proxy, mut seen) = listener().await;
    let options = HttpOptions {
        proxy: ProxySetting::Url {
            url: Secret::new(format!("http://{proxy}")),
            no_proxy: None,
        },
        ..HttpOptions::default()
    };
    let client = options.build_client().unwrap();
    let response = client
        .get("http://mail.example.test/EWS/Exchange.asmx")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(
        seen.recv().await.unwrap(),
        "GET http://mail.example.test/EWS/Exchange.asmx HTTP/1.1"
    );
}

#[tokio::test]
async fn no_proxy_exception_goes_direct() {
    let (proxy, mut proxied) = listener().await;
    let (direct, mut direct_seen) = listener().await;
    let options = HttpOptions {
        proxy: ProxySetting::Url {
            url: Secret::new(format!("http://{proxy}")),
            no_proxy: Some("127.0.0.1".to_owned()),
        },
        ..HttpOptions::default()
    };
    let client = options.build_client().unwrap();
    let response = client
        .get(format!("http://{direct}/health"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(direct_seen.recv().await.unwrap(), "GET /health HTTP/1.1");
    assert!(proxied.try_recv().is_err());
}

#[tokio::test]
async fn disabled_proxy_goes_direct() {
    let (direct, mut seen) = listener().await;
    let options = HttpOptions {
        proxy: ProxySetting::Disabled,
        ..HttpOptions::default()
    };
    let response = options
        .build_client()
        .unwrap()
        .get(format!("http://{direct}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(seen.recv().await.unwrap(), "GET /x HTTP/1.1");
}
