#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The transport's recording hook against the emulator: every HTTP exchange of the EWS
//! client and the MAPI/HTTP session lands in the captures/ layout, with no secret in
//! it, and each body decodes with the decoder of `exmux decode`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use exmux::decode::{Kind, decode};
use exmux_core::Secret;
use exmux_core::auth::Credentials;
use exmux_emulator::server::EmulatorHandle;
use exmux_router::Config;
use exmux_router::transport::{CaptureRecorder, Transport, TransportOptions};

fn credentials() -> Credentials {
    Credentials::Basic {
        username: exmux::emulator::MAILBOX.to_owned(),
        password: Secret::new(exmux::emulator::PASSWORD),
    }
}

async fn connect(handle: &EmulatorHandle, preset: &str, dir: &Path) -> Transport {
    let config = Config::from_toml_str(&format!(
        "[server]\nmailbox = \"user1@example.test\"\news_url = \"{}\"\nmapi_url = \"{}\"\nuser_dn = \"{}\"\n\
         [auth]\nmethod = \"basic\"\nusername = \"user1@example.test\"\npassword_env = \"UNUSED\"\n\
         [routing]\npreset = \"{preset}\"\n",
        handle.ews_url(),
        handle.mapi_emsmdb_url(),
        exmux_emulator::mapi::legacy_dn(exmux::emulator::MAILBOX),
    ))
    .unwrap();
    let options = TransportOptions {
        credentials: Some(credentials()),
        tick: Duration::from_millis(50),
        recorder: Some(Arc::new(CaptureRecorder::create(dir).unwrap())),
        ..TransportOptions::default()
    };
    Transport::connect(&config, options).await.unwrap().0
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Checks that no recorded file contains the password, in clear or in a Basic value.
fn assert_no_secret(dir: &Path) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        exmux::emulator::MAILBOX,
        exmux::emulator::PASSWORD
    ));
    for path in files(dir, "") {
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(exmux::emulator::PASSWORD),
            "{}",
            path.display()
        );
        assert!(!text.contains(&basic), "{}", path.display());
        for line in text.lines() {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("authorization:") || lower.starts_with("cookie:") {
                assert!(line.contains("[redacted]"), "{}: {line}", path.display());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ews_sync_recorded_and_decodable() {
    let handle = exmux::emulator::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let transport = connect(&handle, "ews", dir.path()).await;
    let inbox = transport.add_folder("inbox").await.unwrap();
    transport.sync(inbox).unwrap();
    transport.wait_idle().await;

    let ews = dir.path().join("ews");
    let requests = files(&ews, ".request.body");
    let names: Vec<String> = requests.iter().map(|path| file_name(path)).collect();
    assert_eq!(
        names,
        [
            "001-GetFolder-ok.request.body",
            "002-SyncFolderItems-ok.request.body"
        ]
    );
    for request in &requests {
        let stem = request.to_string_lossy().replace(".request.body", "");
        let operation = file_name(request).split('-').nth(1).unwrap().to_owned();
        let body = std::fs::read(request).unwrap();
        let decoded = decode(Kind::Ews, &body, None).unwrap();
        assert_eq!(decoded.json["operation"].as_str(), Some(operation.as_str()));

        let response = std::fs::read(format!("{stem}.response.body")).unwrap();
        let decoded = decode(Kind::Ews, &response, None).unwrap();
        assert_eq!(
            decoded.json["operation"].as_str(),
            Some(format!("{operation}Response").as_str())
        );
        let head = std::fs::read_to_string(format!("{stem}.response.headers")).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\n"), "{head}");
        let head = std::fs::read_to_string(format!("{stem}.request.headers")).unwrap();
        assert!(
            head.starts_with("POST /EWS/Exchange.asmx HTTP/1.1\n"),
            "{head}"
        );
        assert!(head.contains("Authorization: Basic [redacted]\n"), "{head}");
    }
    assert_no_secret(&ews);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_subscription_recorded_while_open() {
    let handle = exmux::emulator::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let transport = connect(&handle, "ews", dir.path()).await;
    let inbox = transport.add_folder("inbox").await.unwrap();
    transport.subscribe(&[inbox]).await.unwrap();

    // The GetStreamingEvents response stays open; its body file exists while it runs.
    let ews = dir.path().join("ews");
    let mut streaming = Vec::new();
    for _ in 0..200 {
        streaming = files(&ews, ".response.headers")
            .into_iter()
            .filter(|path| file_name(path).contains("-GetStreamingEvents-"))
            .collect();
        if !streaming.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(streaming.len(), 1, "{:?}", files(&ews, ""));
    let body = PathBuf::from(
        streaming[0]
            .to_string_lossy()
            .replace(".response.headers", ".response.body"),
    );
    assert!(body.exists());
    assert_no_secret(&ews);
    drop(transport);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapi_sync_recorded_by_request_type_and_rop() {
    let handle = exmux::emulator::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let transport = connect(&handle, "mapi", dir.path()).await;
    let inbox = transport.add_folder("inbox").await.unwrap();
    transport.sync(inbox).unwrap();
    transport.wait_idle().await;

    let mapi = dir.path().join("mapi");
    let requests = files(&mapi, ".request.body");
    let names: Vec<String> = requests.iter().map(|path| file_name(path)).collect();
    assert!(
        names
            .first()
            .is_some_and(|name| name.starts_with("001-Connect-")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|name| name.starts_with("002-Execute-RopLogon-")),
        "{names:?}"
    );
    for request in &requests {
        let stem = request.to_string_lossy().replace(".request.body", "");
        let head = std::fs::read_to_string(format!("{stem}.request.headers")).unwrap();
        assert!(head.starts_with("POST /mapi/emsmdb/"), "{head}");
        let request_type = head.lines().find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("x-requesttype:")
                .map(|value| value.trim().to_owned())
        });
        let body = std::fs::read(request).unwrap();
        decode(Kind::MapiRequest, &body, request_type.as_deref())
            .unwrap_or_else(|error| panic!("{}: {error}", request.display()));
        let response = std::fs::read(format!("{stem}.response.body")).unwrap();
        decode(Kind::MapiResponse, &response, request_type.as_deref())
            .unwrap_or_else(|error| panic!("{stem}.response.body: {error}"));
    }
    assert_no_secret(&mapi);
    handle.shutdown().await;
}

/// Returns a loopback URL on a port that nothing listens on.
fn closed_port_url(path: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}{path}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_recorded_as_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(CaptureRecorder::create(dir.path()).unwrap());

    let ews = exmux_ews::client::EwsClient::builder(
        closed_port_url("/EWS/Exchange.asmx"),
        exmux::emulator::MAILBOX,
        credentials(),
    )
    .recorder(Arc::clone(&recorder) as Arc<dyn exmux_ews::client::record::Recorder>)
    .build()
    .unwrap();
    let result = ews
        .call(&exmux_ews::ops::folders::GetFolder {
            shape: exmux_ews::ops::Shape::base(exmux_ews::types::BaseShape::IdOnly),
            folder_ids: vec![exmux_ews::types::FolderRef::distinguished(
                exmux_ews::types::DistinguishedFolder::Inbox,
            )],
        })
        .await;
    assert!(result.is_err());

    let mut config = exmux_mapihttp::session::SessionConfig::new(
        closed_port_url("/mapi/emsmdb/?MailboxId=x@example.test"),
        exmux_emulator::mapi::legacy_dn(exmux::emulator::MAILBOX),
        credentials(),
        exmux_core::http::HttpOptions::default()
            .build_client()
            .unwrap(),
    );
    config.recorder =
        Some(Arc::clone(&recorder) as Arc<dyn exmux_mapihttp::session::record::Recorder>);
    let session = exmux_mapihttp::session::MapiSession::new(config);
    assert!(session.connect().await.is_err());

    for (protocol, operation) in [("ews", "GetFolder"), ("mapi", "Connect")] {
        let names: Vec<String> = files(&dir.path().join(protocol), "")
            .iter()
            .map(|path| file_name(path))
            .collect();
        assert!(
            names.contains(&format!("001-{operation}-dropped.request.headers")),
            "{names:?}"
        );
        assert!(
            names.iter().all(|name| !name.contains(".response.")),
            "{names:?}"
        );
    }
    assert_eq!(recorder.failures(), 0);
}
