//! `describe_error` names the kind of a failed request, the host and what to check,
//! without reqwest's nested wrappers. Every target is a socket on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use exmux_core::http::{HttpOptions, describe_error};
use tokio::io::AsyncWriteExt;

fn client() -> reqwest::Client {
    HttpOptions::default().build_client().unwrap()
}

/// Starts a listener on 127.0.0.1 that writes `reply` on every connection and closes it.
async fn answer_every_connection(reply: &'static [u8]) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(reply).await;
        }
    });
    address
}

#[tokio::test]
async fn refused_connection_names_host_and_port() {
    // The port was free a moment ago, so nothing listens on it now.
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = socket.local_addr().unwrap();
    drop(socket);

    let error = client()
        .get(format!("http://{address}/EWS/Exchange.asmx"))
        .send()
        .await
        .unwrap_err();
    let text = describe_error(&error);

    assert!(text.contains(&address.to_string()), "{text}");
    assert!(text.contains("refused the connection"), "{text}");
    assert!(!text.contains("error sending request"), "{text}");
}

#[tokio::test]
async fn https_to_plain_port_is_tls_failure() {
    let address =
        answer_every_connection(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;

    let error = client()
        .get(format!("https://{address}/mapi/emsmdb/"))
        .send()
        .await
        .unwrap_err();
    let text = describe_error(&error);

    assert!(
        text.starts_with(&format!("TLS with {address} failed")),
        "{text}"
    );
    assert!(text.contains("ca_bundle"), "{text}");
}

#[tokio::test]
async fn response_cut_short_is_a_read_failure() {
    // The header announces 100 bytes, and the connection closes after 5.
    let address =
        answer_every_connection(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort").await;

    let response = client()
        .get(format!("http://{address}/"))
        .send()
        .await
        .unwrap();
    let error = response.bytes().await.unwrap_err();
    let text = describe_error(&error);

    assert!(
        text.starts_with(&format!("reading the response from {address} failed")),
        "{text}"
    );
}
