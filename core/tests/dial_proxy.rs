#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! `exmux_core::dial` through a CONNECT proxy that the test runs on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use exmux_core::Secret;
use exmux_core::dial::{DialError, dial};
use exmux_core::http::{HttpOptions, ProxySetting};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Starts a server that responds `ok` to every connection's first request.
async fn origin() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let head = read_head(&mut socket).await;
                assert!(head.starts_with("GET /ews HTTP/1.1"), "{head}");
                socket
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await
                    .unwrap();
            });
        }
    });
    port
}

async fn read_head(socket: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if socket.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Starts a CONNECT proxy that stores every request head. When `expected` is set, it
/// responds 407 to a request without that `Proxy-Authorization`.
async fn proxy(expected: Option<&'static str>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&heads);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let head = read_head(&mut client).await;
                seen.lock().unwrap().push(head.clone());
                if let Some(value) = expected
                    && !head.contains(&format!("Proxy-Authorization: {value}\r\n"))
                {
                    client
                        .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                        .await
                        .unwrap();
                    return;
                }
                let target = head
                    .strip_prefix("CONNECT ")
                    .and_then(|rest| rest.split(' ').next())
                    .unwrap()
                    .to_owned();
                let mut upstream = TcpStream::connect(target).await.unwrap();
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (port, heads)
}

async fn get_through(stream: &mut exmux_core::dial::OwnedStream) -> String {
    stream
        .write_all(b"GET /ews HTTP/1.1\r\nHost: mail\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0_u8; 64];
    let mut filled = 0;
    while !answer[..filled].ends_with(b"ok") {
        let read = stream.read(&mut answer[filled..]).await.unwrap();
        assert!(read > 0, "connection closed early");
        filled += read;
    }
    String::from_utf8_lossy(&answer[..filled]).into_owned()
}

fn tls() -> Arc<rustls::ClientConfig> {
    HttpOptions::default().tls_config().unwrap()
}

#[tokio::test]
async fn tunnel_through_explicit_proxy_with_credentials() {
    let origin_port = origin().await;
    // base64("alice:s3cret")
    let (proxy_port, heads) = proxy(Some("Basic YWxpY2U6czNjcmV0")).await;
    let setting = ProxySetting::Url {
        url: Secret::new(format!("http://alice:s3cret@127.0.0.1:{proxy_port}")),
        no_proxy: None,
    };
    let url = url::Url::parse(&format!("http://127.0.0.1:{origin_port}/ews")).unwrap();
    let mut stream = dial(&url, &setting, &tls(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        stream.via_proxy(),
        Some(format!("127.0.0.1:{proxy_port}").as_str())
    );
    assert!(get_through(&mut stream).await.ends_with("ok"));
    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 1);
    assert!(
        heads[0].starts_with(&format!("CONNECT 127.0.0.1:{origin_port} HTTP/1.1\r\n")),
        "{}",
        heads[0]
    );
}

#[tokio::test]
async fn no_proxy_entry_connects_directly() {
    let origin_port = origin().await;
    let (proxy_port, heads) = proxy(None).await;
    let setting = ProxySetting::Url {
        url: Secret::new(format!("http://127.0.0.1:{proxy_port}")),
        no_proxy: Some("127.0.0.1".to_owned()),
    };
    let url = url::Url::parse(&format!("http://127.0.0.1:{origin_port}/ews")).unwrap();
    let mut stream = dial(&url, &setting, &tls(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(stream.via_proxy(), None);
    assert!(get_through(&mut stream).await.ends_with("ok"));
    assert!(heads.lock().unwrap().is_empty());
}

#[tokio::test]
async fn rejected_tunnel_hides_password() {
    let origin_port = origin().await;
    let (proxy_port, _) = proxy(Some("Basic c29tZW9uZTplbHNl")).await;
    let setting = ProxySetting::Url {
        url: Secret::new(format!("http://alice:wrong-pw@127.0.0.1:{proxy_port}")),
        no_proxy: None,
    };
    let url = url::Url::parse(&format!("https://127.0.0.1:{origin_port}/ews")).unwrap();
    let error = dial(&url, &setting, &tls(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(error, DialError::Proxy { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("407"), "{text}");
    assert!(!text.contains("wrong-pw"), "{text}");
    // The base64 form of the credentials must not appear either.
    assert!(!text.contains("YWxpY2U6d3JvbmctcHc"), "{text}");
}

#[tokio::test]
async fn non_http_proxy_rejected() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let _ = read_head(&mut socket).await;
        socket.write_all(b"SSH-2.0-OpenSSH\r\n\r\n").await.unwrap();
    });
    let setting = ProxySetting::Url {
        url: Secret::new(format!("127.0.0.1:{port}")),
        no_proxy: None,
    };
    let url = url::Url::parse("http://mail.example/ews").unwrap();
    let error = dial(&url, &setting, &tls(), Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("not HTTP"), "{error}");
}
