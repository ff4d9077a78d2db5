//! `exmux emulator`: the emulator alone, with its EWS, MAPI/HTTP and autodiscover
//! endpoints mounted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use exmux_core::SystemClock;
use exmux_emulator::autodiscover::{AutodiscoverConfig, AutodiscoverMailbox};
use exmux_emulator::ews::EwsFrontEnd;
use exmux_emulator::mapi::{MapiFrontEnd, MapiOptions};
use exmux_emulator::server::{
    Emulator, EmulatorError, EmulatorHandle, EmulatorOptions, RouteAuth, full_response, handler_fn,
};

/// The mailbox every emulator of the command line serves.
pub const MAILBOX: &str = "user1@example.test";
/// Its password (the emulator's default).
pub const PASSWORD: &str = "password1";

/// Starts the emulator on `listen` over plain HTTP with the system clock, mounts the
/// EWS and MAPI/HTTP front ends and autodiscover (POX, SOAP and JSON under
/// `/autodiscover/`), and records every exchange under `record` when given.
///
/// # Errors
/// [`EmulatorError`] when the address cannot be bound.
pub async fn start(
    listen: SocketAddr,
    record: Option<PathBuf>,
) -> Result<EmulatorHandle, EmulatorError> {
    let handle = Emulator::start(EmulatorOptions {
        listen,
        tls: false,
        clock: Arc::new(SystemClock),
        record_dir: record,
        ..EmulatorOptions::default()
    })
    .await?;
    EwsFrontEnd::install(&handle);
    MapiFrontEnd::mount(&handle, MapiOptions::default());

    let config = Arc::new(AutodiscoverConfig::new(AutodiscoverMailbox {
        address: MAILBOX.to_owned(),
        display_name: "User One".to_owned(),
        legacy_dn: exmux_emulator::mapi::legacy_dn(MAILBOX),
        ews_url: handle.ews_url(),
        emsmdb_url: handle.mapi_emsmdb_url(),
        nspi_url: handle.mapi_nspi_url(),
        deployment_id: "00000000-0000-0000-0000-000000000001".to_owned(),
    }));
    handle.mount(
        "/autodiscover/",
        RouteAuth::Required,
        handler_fn(move |request, _context| {
            let config = Arc::clone(&config);
            async move {
                let response = exmux_emulator::autodiscover::handle(&request, &config)
                    .unwrap_or_else(|| {
                        let mut response = http::Response::new(bytes::Bytes::new());
                        *response.status_mut() = http::StatusCode::NOT_FOUND;
                        response
                    });
                full_response(response)
            }
        }),
    );
    // NOTE: the OAuth2 token endpoint (exmux_emulator::token) is not mounted here yet;
    // the command-line emulator accepts Basic and NTLM only.
    Ok(handle)
}
