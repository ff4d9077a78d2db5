//! A configuration that names only the mailbox: the transport runs autodiscover against
//! the emulator on loopback and fills the missing endpoints of both backends from the
//! discovered settings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use exmux_autodiscover::{AutodiscoverOptions, LoopbackMap, Method};
use exmux_emulator::server::EmulatorHandle;
use exmux_router::Config;
use exmux_router::transport::{Transport, TransportError, TransportOptions};

async fn emulator() -> EmulatorHandle {
    exmux::emulator::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap()
}

/// Autodiscover options that send every request for example.test to `handle`, with POX
/// on the domain only, so nothing leaves loopback.
fn autodiscover(handle: &EmulatorHandle) -> AutodiscoverOptions {
    let mut map = LoopbackMap::new();
    map.insert("example.test", url::Url::parse(handle.base_url()).unwrap());
    AutodiscoverOptions {
        methods: vec![Method::PoxDomain],
        loopback: Some(map),
        ..AutodiscoverOptions::default()
    }
}

fn mailbox_only(dir: &std::path::Path, routing: &str) -> Config {
    let password = dir.join("password");
    std::fs::write(&password, exmux::emulator::PASSWORD).unwrap();
    Config::from_toml_str(&format!(
        "[server]\nmailbox = \"{}\"\n\
         [auth]\nmethod = \"basic\"\nusername = \"{}\"\npassword_file = {:?}\n\
         [routing]\npreset = \"{routing}\"\n",
        exmux::emulator::MAILBOX,
        exmux::emulator::MAILBOX,
        password.display().to_string(),
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_endpoints_come_from_autodiscover() {
    let handle = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    for routing in ["ews", "mapi", "hybrid"] {
        let options = TransportOptions {
            autodiscover: Some(autodiscover(&handle)),
            ..TransportOptions::default()
        };
        let (transport, _events) = Transport::connect(&mailbox_only(dir.path(), routing), options)
            .await
            .unwrap_or_else(|error| panic!("{routing}: {error}"));
        let folders = transport.remote_folders().await.unwrap();
        assert!(!folders.is_empty(), "{routing}: no folders");
    }
}

/// Without autodiscover options the transport never looks the endpoints up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_autodiscover_a_missing_endpoint_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let error = Transport::connect(
        &mailbox_only(dir.path(), "ews"),
        TransportOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, TransportError::BackendNotOffered { .. }),
        "{error:?}"
    );
}

/// An autodiscover that finds nothing is its own error, naming the address and the keys
/// to set instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_autodiscover_names_the_address() {
    let handle = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let mut options = autodiscover(&handle);
    let mut map = LoopbackMap::new();
    // A loopback port that the test bound and closed, so no server listens on it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    map.insert(
        "example.test",
        url::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
    );
    options.loopback = Some(map);
    let error = Transport::connect(
        &mailbox_only(dir.path(), "ews"),
        TransportOptions {
            autodiscover: Some(options),
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, TransportError::Autodiscover { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(exmux::emulator::MAILBOX), "{message}");
    assert!(message.contains("ews_url"), "{message}");
}
