//! Recording every exchange in the `captures/` layout with secrets redacted, and the
//! check that no secret reaches a log line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server_common;

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use exmux_emulator::server::{
    Emulator, EmulatorOptions, RecordLabel, ResponseBody, RouteAuth, handler_fn,
};
use server_common::*;

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Reads every file under `dir` as lossy text, for secret searches.
fn all_text(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            text.push_str(&all_text(&path));
        } else {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    text
}

#[tokio::test]
async fn recording_writes_captures_layout() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(EmulatorOptions {
        record_dir: Some(dir.path().to_path_buf()),
        ..plain_options()
    })
    .await
    .unwrap();
    mount_stub(&emulator);

    let soap = "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>\
                <m:GetFolder xmlns:m=\"x\"/></s:Body></s:Envelope>";
    let response = client()
        .post(emulator.ews_url())
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", "text/xml; charset=utf-8")
        .body(soap)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 501);
    let response = client()
        .post(emulator.mapi_emsmdb_url())
        .header("x-requesttype", "Connect")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    emulator.shutdown().await;

    assert_eq!(
        files_in(&dir.path().join("ews")),
        [
            "001-GetFolder-status501.request.body",
            "001-GetFolder-status501.request.headers",
            "001-GetFolder-status501.response.body",
            "001-GetFolder-status501.response.headers",
        ]
    );
    let request_headers = std::fs::read_to_string(
        dir.path()
            .join("ews/001-GetFolder-status501.request.headers"),
    )
    .unwrap();
    assert!(
        request_headers.starts_with("POST /EWS/Exchange.asmx HTTP/1.1\n"),
        "{request_headers}"
    );
    assert!(
        request_headers.contains("\nAuthorization: Basic [redacted]\n"),
        "{request_headers}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ews/001-GetFolder-status501.request.body"))
            .unwrap(),
        soap
    );
    let response_headers = std::fs::read_to_string(
        dir.path()
            .join("ews/001-GetFolder-status501.response.headers"),
    )
    .unwrap();
    assert!(
        response_headers.starts_with("HTTP/1.1 501 Not Implemented\n"),
        "{response_headers}"
    );

    let mapi = files_in(&dir.path().join("mapi"));
    assert!(
        mapi.contains(&"001-Connect-unauthorized.response.headers".to_owned()),
        "{mapi:?}"
    );
    let challenge = std::fs::read_to_string(
        dir.path()
            .join("mapi/001-Connect-unauthorized.response.headers"),
    )
    .unwrap();
    assert!(
        challenge.contains("Www-Authenticate: Basic realm=\"127.0.0.1\"\n"),
        "{challenge}"
    );
}

#[tokio::test]
async fn recording_redacts_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(EmulatorOptions {
        record_dir: Some(dir.path().to_path_buf()),
        ..plain_options()
    })
    .await
    .unwrap();
    mount_stub(&emulator);
    emulator.mount(
        "/mapi/emsmdb/",
        RouteAuth::Required,
        handler_fn(|_request, _context| async move {
            let mut response = http::Response::new(ResponseBody::from("PROCESSING\r\nDONE\r\n"));
            response.headers_mut().append(
                "set-cookie",
                "MapiContext=context-cookie-value; path=/mapi/"
                    .parse()
                    .unwrap(),
            );
            response.headers_mut().append(
                "set-cookie",
                "MapiSequence=sequence-cookie-value; path=/mapi/"
                    .parse()
                    .unwrap(),
            );
            response
        }),
    );

    let response = client()
        .post(emulator.mapi_emsmdb_url())
        .bearer_auth(TOKEN)
        .header(
            "cookie",
            "MapiContext=old-context-value; MapiSequence=old-sequence-value",
        )
        .header("x-requesttype", "Execute")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client()
        .post(emulator.ews_url())
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 501);
    emulator.shutdown().await;

    let text = all_text(dir.path());
    let basic = BASE64.encode(format!("{USER}:{PASSWORD}"));
    for secret in [
        PASSWORD,
        basic.as_str(),
        TOKEN,
        "context-cookie-value",
        "sequence-cookie-value",
        "old-context-value",
        "old-sequence-value",
    ] {
        assert!(!text.contains(secret), "{secret} reached a recording");
    }
    assert!(
        text.contains("Set-Cookie: MapiContext=[redacted]; path=/mapi/\n"),
        "{text}"
    );
    assert!(
        text.contains("Cookie: MapiContext=[redacted]; MapiSequence=[redacted]\n"),
        "{text}"
    );
    assert!(
        text.contains("Authorization: Bearer [redacted]\n"),
        "{text}"
    );
}

#[tokio::test]
async fn recording_skips_secret_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(EmulatorOptions {
        record_dir: Some(dir.path().to_path_buf()),
        ..plain_options()
    })
    .await
    .unwrap();
    mount_stub(&emulator);
    emulator.mount(
        "/oauth2/token",
        RouteAuth::Anonymous,
        handler_fn(|_request, _context| async move {
            let mut response =
                http::Response::new(ResponseBody::from("{\"access_token\":\"issued-secret\"}"));
            response.extensions_mut().insert(RecordLabel {
                operation: Some("Token".to_owned()),
                case: Some("device-code".to_owned()),
                secret_bodies: true,
            });
            response
        }),
    );

    let response = client()
        .post(format!("{}/oauth2/token", emulator.base_url()))
        .body("grant_type=refresh_token&refresh_token=refresh-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.text().await.unwrap(),
        "{\"access_token\":\"issued-secret\"}"
    );
    emulator.shutdown().await;

    assert_eq!(
        files_in(&dir.path().join("http")),
        [
            "001-Token-device-code.request.headers",
            "001-Token-device-code.response.headers"
        ]
    );
    let text = all_text(dir.path());
    assert!(!text.contains("issued-secret"));
    assert!(!text.contains("refresh-secret"));
}

#[tokio::test]
async fn recording_keeps_streamed_body_and_drops() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(EmulatorOptions {
        record_dir: Some(dir.path().to_path_buf()),
        ..plain_options()
    })
    .await
    .unwrap();
    mount_stub(&emulator);
    emulator.mount(
        "/EWS/Exchange.asmx",
        RouteAuth::Required,
        handler_fn(|_request, _context| async move {
            let (sender, body) = ResponseBody::channel(4);
            tokio::spawn(async move {
                for part in ["<a/>", "<b/>", "<c/>"] {
                    sender.send(part).await.unwrap();
                }
            });
            http::Response::new(body)
        }),
    );
    emulator.faults().drop_connections("/EWS/", 1);
    emulator
        .faults()
        .server_busy("/EWS/", 1, Duration::from_secs(2));

    let dropped = client()
        .post(emulator.ews_url())
        .basic_auth(USER, Some(PASSWORD))
        .header(
            "soapaction",
            "\"http://schemas.microsoft.com/exchange/services/2006/messages/GetStreamingEvents\"",
        )
        .send()
        .await;
    assert!(dropped.is_err());
    let busy = client()
        .post(emulator.ews_url())
        .basic_auth(USER, Some(PASSWORD))
        .header(
            "soapaction",
            "\"http://schemas.microsoft.com/exchange/services/2006/messages/GetStreamingEvents\"",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(busy.status(), 503);
    let streamed = client()
        .post(emulator.ews_url())
        .basic_auth(USER, Some(PASSWORD))
        .header(
            "soapaction",
            "\"http://schemas.microsoft.com/exchange/services/2006/messages/GetStreamingEvents\"",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.text().await.unwrap(), "<a/><b/><c/>");
    emulator.shutdown().await;

    let files = files_in(&dir.path().join("ews"));
    assert!(
        files.contains(&"001-GetStreamingEvents-dropped.request.headers".to_owned()),
        "{files:?}"
    );
    assert!(
        files.contains(&"002-GetStreamingEvents-server-busy.response.headers".to_owned()),
        "{files:?}"
    );
    assert!(
        !files.contains(&"001-GetStreamingEvents-dropped.response.headers".to_owned()),
        "{files:?}"
    );
    assert_eq!(
        std::fs::read(
            dir.path()
                .join("ews/003-GetStreamingEvents-ok.response.body")
        )
        .unwrap(),
        b"<a/><b/><c/>"
    );
}

/// A writer that collects every log line of the process.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_never_contain_secrets() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let emulator = start_plain().await;
    let wrong_basic = BASE64.encode(format!("{USER}:wrong-{PASSWORD}"));
    let requests = [
        format!("Basic {}", BASE64.encode(format!("{USER}:{PASSWORD}"))),
        format!("Basic {wrong_basic}"),
        format!("Bearer {TOKEN}"),
        format!("Bearer wrong-{TOKEN}"),
    ];
    for authorization in &requests {
        client()
            .post(emulator.ews_url())
            .header("authorization", authorization)
            .header("cookie", "MapiContext=cookie-secret")
            .send()
            .await
            .unwrap();
    }
    for password in [PASSWORD, "wrong-ntlm-password"] {
        let mut connection = OneConnection::open(&emulator).await;
        let mut ntlm = NtlmClient::new(USER, password);
        let negotiate = ntlm.step(None);
        let response = connection
            .post(Some(format!("NTLM {}", BASE64.encode(negotiate))))
            .await;
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        let challenge = BASE64
            .decode(challenge.strip_prefix("NTLM ").unwrap())
            .unwrap();
        let authenticate = ntlm.step(Some(&challenge));
        connection
            .post(Some(format!("NTLM {}", BASE64.encode(authenticate))))
            .await;
    }
    emulator.faults().drop_connections("", 1);
    let _ = client()
        .post(emulator.ews_url())
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await;
    tokio::time::timeout(Duration::from_secs(5), emulator.shutdown())
        .await
        .unwrap();
    logs.clone().flush().unwrap();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("request served"),
        "the test must capture the server's logs: {text}"
    );
    assert!(text.contains("answering 401"), "{text}");
    assert!(
        text.contains("NTLM authenticate message rejected"),
        "{text}"
    );
    for secret in [
        PASSWORD,
        TOKEN,
        "cookie-secret",
        wrong_basic.as_str(),
        "wrong-ntlm-password",
    ] {
        assert!(!text.contains(secret), "{secret} reached a log line");
    }
    for request in &requests {
        let credentials = request.split_once(' ').unwrap().1;
        assert!(
            !text.contains(credentials),
            "{credentials} reached a log line"
        );
    }
}
