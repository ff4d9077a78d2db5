#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Recordings made by the emulator (the `captures/` layout) replayed through the
//! decoder of `exmux decode`: the committed set under `captures/`, and fresh ones.

use std::path::{Path, PathBuf};

use exmux::decode::{Kind, decode, to_text};
use exmux_core::Secret;
use exmux_core::auth::Credentials;
use exmux_mapihttp::session::{MapiSession, SessionConfig};
use exmux_router::Preset;

fn workspace_captures(protocol: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../captures")
        .join(protocol)
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

/// `NNN-Operation-case.direction.part` -> (operation, direction).
fn name_parts(path: &Path) -> (String, String) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut dots = name.split('.');
    let stem = dots.next().unwrap();
    let direction = dots.next().unwrap().to_owned();
    let operation = stem.split('-').nth(1).unwrap().to_owned();
    (operation, direction)
}

fn with_headers(body_path: &Path) -> Vec<u8> {
    let headers_path = PathBuf::from(body_path.to_string_lossy().replace(".body", ".headers"));
    let mut bytes = std::fs::read(headers_path).unwrap();
    if !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    bytes.push(b'\n');
    bytes.extend(std::fs::read(body_path).unwrap());
    bytes
}

fn check_ews_recording(dir: &Path) -> usize {
    let bodies = files(dir, ".body");
    for body_path in &bodies {
        let (operation, direction) = name_parts(body_path);
        let body = std::fs::read(body_path).unwrap();
        if operation == "GetStreamingEvents" && direction == "response" {
            // A streaming response is a sequence of envelopes, not one document.
            continue;
        }
        let decoded = decode(Kind::Ews, &body, None).unwrap();
        let expected = if direction == "request" {
            operation.clone()
        } else {
            format!("{operation}Response")
        };
        assert_eq!(
            decoded.json["operation"].as_str(),
            Some(expected.as_str()),
            "{}",
            body_path.display()
        );
        // The same file with its HTTP headers in front decodes to the same envelope.
        let framed = decode(Kind::Ews, &with_headers(body_path), None).unwrap();
        assert_eq!(framed.json["envelope"], decoded.json["envelope"]);
        assert!(framed.json["headers"]["content-type"].is_string());
        assert!(!to_text(&decoded.json).is_empty());
    }
    bodies.len()
}

#[test]
fn committed_ews_captures_decode() {
    let dir = workspace_captures("ews");
    let count = check_ews_recording(&dir);
    assert!(count >= 10, "captures/ews holds {count} bodies");

    // The read echo: the sync after this transport's UpdateItem reports the read flag
    // without a change key, which is why the router matches read states by value.
    let echo = std::fs::read(dir.join("014-SyncFolderItems-read-echo.response.body")).unwrap();
    let text = to_text(&decode(Kind::Ews, &echo, None).unwrap().json);
    assert!(text.contains("ReadFlagChange"), "{text}");
    assert!(text.contains("IsRead: true"), "{text}");
}

#[test]
fn committed_headers_hold_no_credentials() {
    for protocol in ["ews", "mapi"] {
        for path in files(&workspace_captures(protocol), ".headers") {
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                let lower = line.to_ascii_lowercase();
                if lower.starts_with("authorization:") || lower.starts_with("cookie:") {
                    assert!(line.contains("[redacted]"), "{}: {line}", path.display());
                }
            }
            assert!(!text.contains("password1"), "{}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_demo_recording_decodes() {
    let dir = tempfile::tempdir().unwrap();
    demo::run(Preset::Ews, Some(dir.path().to_owned()), |_| {})
        .await
        .unwrap();
    let count = check_ews_recording(&dir.path().join("ews"));
    assert!(count >= 20, "the demo recorded {count} bodies");
}

use exmux::demo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapi_logon_recording_decodes_down_to_rops() {
    let dir = tempfile::tempdir().unwrap();
    let handle = exmux::emulator::start("127.0.0.1:0".parse().unwrap(), Some(dir.path().into()))
        .await
        .unwrap();
    let http = exmux_core::http::HttpOptions::default()
        .build_client()
        .unwrap();
    let session = MapiSession::new(SessionConfig::new(
        handle.mapi_emsmdb_url(),
        exmux_emulator::mapi::legacy_dn(exmux::emulator::MAILBOX),
        Credentials::Basic {
            username: exmux::emulator::MAILBOX.to_owned(),
            password: Secret::new(exmux::emulator::PASSWORD),
        },
        http,
    ));
    session.connect().await.unwrap();
    session.disconnect().await.unwrap();
    handle.shutdown().await;

    let recorded = dir.path().join("mapi");
    if let Ok(target) = std::env::var("EXMUX_KEEP_MAPI_RECORDING") {
        // Opt-in: copy the recording out, to refresh captures/mapi by hand.
        for path in files(&recorded, "") {
            std::fs::copy(&path, Path::new(&target).join(path.file_name().unwrap())).unwrap();
        }
    }
    let bodies = files(&recorded, ".body");
    let mut saw_logon = false;
    for body_path in &bodies {
        let (_, direction) = name_parts(body_path);
        let kind = if direction == "request" {
            Kind::MapiRequest
        } else {
            Kind::MapiResponse
        };
        // The request headers carry X-RequestType; responses take it from the request.
        let request_headers = PathBuf::from(
            body_path
                .to_string_lossy()
                .replace(".response.body", ".request.headers")
                .replace(".request.body", ".request.headers"),
        );
        let request_type = std::fs::read_to_string(request_headers)
            .unwrap()
            .lines()
            .find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("x-requesttype:")
                    .map(|value| value.trim().to_owned())
            });
        let decoded = decode(kind, &with_headers(body_path), request_type.as_deref())
            .unwrap_or_else(|error| panic!("{}: {error}", body_path.display()));
        let text = to_text(&decoded.json);
        saw_logon |= text.contains("Logon");
    }
    assert!(bodies.len() >= 4, "recorded {} MAPI bodies", bodies.len());
    assert!(saw_logon, "no RopLogon in the recording");
}
