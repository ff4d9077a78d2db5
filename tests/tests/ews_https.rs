#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The EWS client over HTTPS against the emulator's generated certificate, with
//! certificate verification on.
//!
//! `EwsClient` trusts the platform's roots only, which on Linux come from
//! `SSL_CERT_FILE` when it is set. Setting a variable of this process needs `unsafe`,
//! which the workspace forbids, so the test runs the client in a child process of this
//! test binary whose `SSL_CERT_FILE` is the emulator's CA certificate.

use std::process::Command;
use std::sync::Arc;

use exmux_core::auth::Credentials;
use exmux_core::{ManualClock, Secret};
use exmux_emulator::server::{Emulator, EmulatorOptions};
use exmux_ews::client::EwsClient;
use exmux_ews::ops::Shape;
use exmux_ews::ops::folders::GetFolder;
use exmux_ews::types::{BaseShape, DistinguishedFolder, FolderRef};

const CHILD_URL: &str = "EXMUX_EWS_HTTPS_CHILD_URL";

fn client(url: &str) -> EwsClient {
    EwsClient::builder(
        url,
        "user1@example.test",
        Credentials::Basic {
            username: "user1@example.test".to_owned(),
            password: Secret::new("password1"),
        },
    )
    .build()
    .unwrap()
}

fn get_inbox() -> GetFolder {
    GetFolder {
        shape: Shape::base(BaseShape::Default),
        folder_ids: vec![FolderRef::distinguished(DistinguishedFolder::Inbox)],
    }
}

/// The client side, run only inside the child process that the parent test starts.
#[tokio::test]
async fn child_calls_emulator_over_https() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let inbox = client(&url)
        .call(&get_inbox())
        .await
        .unwrap()
        .into_single("GetFolder")
        .unwrap();
    assert_eq!(inbox[0].display_name.as_deref(), Some("Inbox"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_the_generated_ca_trusted() {
    if std::env::var_os(CHILD_URL).is_some() {
        return;
    }
    let emulator = Emulator::start(EmulatorOptions {
        tls: true,
        clock: Arc::new(ManualClock::default()),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    assert!(emulator.ews_url().starts_with("https://127.0.0.1:"));

    // Without the CA the certificate is rejected: verification is on.
    let untrusted = client(&emulator.ews_url()).call(&get_inbox()).await;
    assert!(untrusted.is_err(), "an unknown CA must be rejected");

    let dir = tempfile_dir();
    let bundle = dir.join("emulator-ca.pem");
    std::fs::write(&bundle, emulator.ca_certificate_pem().unwrap()).unwrap();
    let url = emulator.ews_url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_calls_emulator_over_https", "--nocapture"])
            .env(CHILD_URL, url)
            .env("SSL_CERT_FILE", &bundle)
            .env_remove("SSL_CERT_DIR")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "the child ran the call:\n{stdout}"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// Returns a fresh folder under the system's temporary directory.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("exmux-ews-https-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
