//! The `[http]` and `[auth]` sections of the configuration reach the transport's
//! connections: a transport built from a configuration alone trusts the CA bundle it
//! names and reads the password from the file it names, over EWS and over MAPI/HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use exmux_emulator::mapi::legacy_dn;
use exmux_emulator::server::{Emulator, EmulatorHandle, EmulatorOptions};
use exmux_router::Config;
use exmux_router::transport::{Transport, TransportOptions};

async fn tls_emulator() -> EmulatorHandle {
    Emulator::start(EmulatorOptions {
        tls: true,
        ..EmulatorOptions::default()
    })
    .await
    .unwrap()
}

/// Builds a configuration for `handle` with `routing` as its preset and `http` as the
/// body of its `[http]` section. The password is read from a file written in `dir`.
fn config(handle: &EmulatorHandle, dir: &std::path::Path, routing: &str, http: &str) -> Config {
    let password = dir.join("password");
    std::fs::write(&password, "password1\n").unwrap();
    Config::from_toml_str(&format!(
        "[server]\nmailbox = \"user1@example.test\"\news_url = \"{}\"\nmapi_url = \"{}\"\nuser_dn = \"{}\"\n\
         [auth]\nmethod = \"basic\"\nusername = \"user1@example.test\"\npassword_file = {:?}\n\
         [routing]\npreset = \"{routing}\"\n[http]\n{http}\n",
        handle.ews_url(),
        handle.mapi_emsmdb_url(),
        legacy_dn("user1@example.test"),
        password.display().to_string(),
    ))
    .unwrap()
}

/// Connects and lists the remote folders, which needs at least one request to succeed.
async fn list_folders(config: &Config) -> Result<usize, String> {
    let (transport, _events) = Transport::connect(config, TransportOptions::default())
        .await
        .map_err(|error| error.to_string())?;
    transport
        .remote_folders()
        .await
        .map(|folders| folders.len())
        .map_err(|error| error.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_bundle_from_config_reaches_both_backends() {
    let handle = tls_emulator().await;
    assert!(handle.ews_url().starts_with("https://"));
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("emulator-ca.pem");
    std::fs::write(&ca, handle.ca_certificate_pem().unwrap()).unwrap();
    let http = format!(
        "ca_bundle = {:?}\nproxy = \"none\"",
        ca.display().to_string()
    );
    for routing in ["ews", "mapi"] {
        let folders = list_folders(&config(&handle, dir.path(), routing, &http))
            .await
            .unwrap_or_else(|error| panic!("{routing}: {error}"));
        assert!(folders > 0, "{routing}: no folders listed");
    }
}

/// Without the CA bundle the emulator's certificate is not trusted: verification stays
/// on by default, so the same configuration fails instead of connecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_bundle_the_certificate_is_refused() {
    let handle = tls_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    for routing in ["ews", "mapi"] {
        let result = list_folders(&config(&handle, dir.path(), routing, "proxy = \"none\"")).await;
        assert!(
            result.is_err(),
            "{routing}: connected without trusting the CA"
        );
    }
}
