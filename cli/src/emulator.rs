//! `exmux emulator`: the emulator alone, with its EWS, MAPI/HTTP, autodiscover and
//! OAuth2 token endpoints mounted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use exmux_core::SystemClock;
use exmux_emulator::autodiscover::{AutodiscoverConfig, AutodiscoverMailbox};
use exmux_emulator::ews::EwsFrontEnd;
use exmux_emulator::mapi::{MapiFrontEnd, MapiOptions};
use exmux_emulator::server::{
    Emulator, EmulatorError, EmulatorHandle, EmulatorOptions, RecordLabel, RouteAuth,
    full_response, handler_fn,
};
use exmux_emulator::token::{TokenEndpoint, TokenEndpointConfig};

/// The mailbox every emulator of the command line serves.
pub const MAILBOX: &str = "user1@example.test";
/// Its password (the emulator's default).
pub const PASSWORD: &str = "password1";
/// The only OAuth2 client id the emulator's token endpoint accepts.
pub const OAUTH_CLIENT_ID: &str = "exmux-cli";
/// The tenants whose token endpoint paths (`/{tenant}/oauth2/v2.0/`) the emulator
/// serves: the Microsoft identity platform's two multi-tenant names and the mailbox's
/// domain.
pub const OAUTH_TENANTS: [&str; 3] = ["organizations", "common", "example.test"];

/// Returns the OAuth2 authority (the `authority` of an OAuth2 configuration) of an
/// emulator started by [`start`]: its base URL, under which each tenant of
/// [`OAUTH_TENANTS`] has `oauth2/v2.0/{devicecode,authorize,token}`.
pub fn oauth_authority(handle: &EmulatorHandle) -> String {
    format!("{}/", handle.base_url())
}

/// Returns the token URL of the `organizations` tenant of an emulator started by
/// [`start`].
pub fn token_url(handle: &EmulatorHandle) -> String {
    format!("{}/organizations/oauth2/v2.0/token", handle.base_url())
}

/// Starts the emulator on `listen` over plain HTTP with the system clock. It mounts the
/// EWS and MAPI/HTTP front ends, autodiscover (POX, SOAP and JSON under
/// `/autodiscover/`) and the OAuth2 token endpoint. The token endpoint serves the device
/// code, authorization code with PKCE and refresh grants for [`OAUTH_CLIENT_ID`] under
/// each tenant of [`OAUTH_TENANTS`], and the EWS and MAPI/HTTP endpoints accept its
/// tokens as bearer tokens. Every exchange is recorded under `record` when given, except
/// the token endpoint's bodies, because they contain codes and tokens.
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

    let mut token_config = TokenEndpointConfig::new(OAUTH_CLIENT_ID, MAILBOX);
    // Nobody approves a device code on the emulator, so the first poll gets
    // `authorization_pending` and the second, a second later, gets the tokens.
    token_config.poll_interval_secs = 1;
    let tokens = Arc::new(TokenEndpoint::new(token_config, Arc::new(SystemClock)));
    handle.register_token_validator(tokens.clone());
    for tenant in OAUTH_TENANTS {
        let tokens = Arc::clone(&tokens);
        handle.mount(
            format!("/{tenant}/oauth2/"),
            RouteAuth::Anonymous,
            handler_fn(move |request, _context| {
                let tokens = Arc::clone(&tokens);
                async move {
                    let mut response = tokens.handle(&request).unwrap_or_else(|| {
                        let mut response = http::Response::new(bytes::Bytes::new());
                        *response.status_mut() = http::StatusCode::NOT_FOUND;
                        response
                    });
                    response.extensions_mut().insert(RecordLabel {
                        operation: Some("Token".to_owned()),
                        case: None,
                        secret_bodies: true,
                    });
                    full_response(response)
                }
            }),
        );
    }
    Ok(handle)
}

/// Maximum number of sample messages that `--messages` accepts.
pub const MAX_SEED_MESSAGES: u32 = 100_000;

/// Puts `count` plain-text messages into the Inbox of an emulator started by [`start`],
/// as mail delivered before any client connected: unread, from one sender, with
/// received times one minute apart.
///
/// # Errors
/// The store's error, as text, when an item cannot be created.
pub fn seed_inbox(handle: &EmulatorHandle, count: u32) -> Result<(), String> {
    use exmux_emulator::store::{NewItem, NewItemContent, SessionId, WellKnownFolder};

    let mut store = handle.store().lock().map_err(|_| {
        "the emulator's store is unusable after a panic; restart the emulator".to_owned()
    })?;
    let inbox = store
        .well_known_folder(WellKnownFolder::Inbox)
        .ok_or_else(|| "the emulator's store has no Inbox".to_owned())?;
    let start = time::macros::datetime!(2026-12-01 08:00 UTC);
    for index in 1..=count {
        let date = start + time::Duration::minutes(i64::from(index));
        let date = date
            .format(&time::format_description::well_known::Rfc2822)
            .map_err(|error| format!("message {index}: {error}"))?;
        let mime = format!(
            "From: Alice <alice@example.test>\r\nTo: {MAILBOX}\r\nSubject: Sample message {index}\r\n\
             Date: {date}\r\nMessage-ID: <sample-{index}@example.test>\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\nThis is sample message {index}.\r\n"
        );
        let new = NewItem {
            content: NewItemContent::Mime(mime.into_bytes()),
            ..NewItem::default()
        };
        store
            .create_item(SessionId::SYSTEM, inbox, new)
            .map_err(|error| format!("message {index}: {error}"))?;
    }
    Ok(())
}
