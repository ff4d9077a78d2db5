//! Helpers shared by the server tests: starting an emulator on 127.0.0.1 and building
//! clients that trust its certificate.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use exmux_core::Secret;
use exmux_emulator::server::{Emulator, EmulatorHandle, EmulatorOptions};

pub const USER: &str = "user1@example.test";
pub const PASSWORD: &str = "s3cret-Passw0rd";
pub const TOKEN: &str = "static-bearer-token-42";

/// Options for a plain-HTTP emulator with known credentials and a static bearer token.
pub fn plain_options() -> EmulatorOptions {
    EmulatorOptions {
        tls: false,
        password: Secret::new(PASSWORD),
        bearer_token: Some(Secret::new(TOKEN)),
        shutdown_grace: Duration::from_secs(2),
        ..EmulatorOptions::default()
    }
}

pub async fn start_plain() -> EmulatorHandle {
    Emulator::start(plain_options()).await.unwrap()
}

/// A reqwest client that ignores proxy settings from the environment, so loopback
/// requests never leave the machine.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A client that trusts only the emulator's CA.
pub fn tls_client(emulator: &EmulatorHandle) -> reqwest::Client {
    let ca =
        reqwest::Certificate::from_pem(emulator.ca_certificate_pem().unwrap().as_bytes()).unwrap();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .tls_certs_only([ca])
        .build()
        .unwrap()
}
