#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! The `Negotiate` scheme end to end: the EWS and MAPI/HTTP clients send NTLM inside
//! SPNEGO (RFC 4178), and the emulator accepts it only when the NegTokenInit and the
//! final NegTokenResp arrive on one TCP connection.
//!
//! The emulator offers only `Negotiate`, so a client that fell back to NTLM or Basic
//! would fail. A recording handler in front of the EWS front end notes which scheme
//! and connection authenticated each request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use exmux_core::auth::Credentials;
use exmux_core::http::{HttpOptions, ProxySetting};
use exmux_core::{ManualClock, Secret};
use exmux_emulator::ews::EwsFrontEnd;
use exmux_emulator::mapi::{MapiFrontEnd, MapiOptions, legacy_dn};
use exmux_emulator::server::{
    AuthOptions, AuthScheme, EWS_PATH, Emulator, EmulatorHandle, EmulatorOptions, Handler,
    RouteAuth, handler_fn,
};
use exmux_ews::client::{ClientError, EwsClient};
use exmux_ews::ops::Shape;
use exmux_ews::ops::folders::GetFolder;
use exmux_ews::types::{BaseShape, DistinguishedFolder, FolderRef};
use exmux_mapihttp::session::{MapiSession, SessionConfig};

const USER: &str = "user1@example.test";
const PASSWORD: &str = "password1";

/// What the server saw for one authenticated EWS request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    scheme: Option<AuthScheme>,
    connection_id: u64,
}

/// Starts an emulator that offers only `Negotiate`, with the MAPI/HTTP front end and
/// a recording EWS front end.
async fn start() -> (EmulatorHandle, Arc<Mutex<Vec<Seen>>>) {
    let emulator = Emulator::start(EmulatorOptions {
        tls: false,
        clock: Arc::new(ManualClock::new(1_800_000_000_000)),
        auth: AuthOptions {
            schemes: vec![AuthScheme::Negotiate],
            ..AuthOptions::default()
        },
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();

    let front_end: Arc<dyn Handler> = Arc::new(EwsFrontEnd::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    emulator.mount(
        EWS_PATH,
        RouteAuth::Required,
        handler_fn(move |request, context| {
            log.lock().unwrap().push(Seen {
                scheme: context.user.scheme,
                connection_id: context.connection_id,
            });
            front_end.handle(request, context)
        }),
    );
    MapiFrontEnd::mount(&emulator, MapiOptions::default());
    (emulator, seen)
}

fn negotiate(password: &str) -> Credentials {
    Credentials::Negotiate {
        username: USER.to_owned(),
        password: Secret::new(password),
    }
}

fn direct() -> HttpOptions {
    HttpOptions {
        proxy: ProxySetting::Disabled,
        ..HttpOptions::default()
    }
}

fn ews_client(emulator: &EmulatorHandle, password: &str) -> EwsClient {
    EwsClient::builder(emulator.ews_url(), USER, negotiate(password))
        .http_options(direct())
        .build()
        .unwrap()
}

async fn inbox_name(client: &EwsClient) -> Result<Option<String>, ClientError> {
    let request = GetFolder {
        shape: Shape::base(BaseShape::Default),
        folder_ids: vec![FolderRef::distinguished(DistinguishedFolder::Inbox)],
    };
    let response = client.call(&request).await?;
    let folders = response.into_single("GetFolder").unwrap();
    Ok(folders[0].display_name.clone())
}

fn mapi_session(emulator: &EmulatorHandle, password: &str) -> MapiSession {
    let mut config = SessionConfig::new(
        emulator.mapi_emsmdb_url(),
        legacy_dn(USER),
        negotiate(password),
        direct().build_client().unwrap(),
    );
    config.retry_delay = Duration::from_millis(5);
    MapiSession::new(config)
}

#[tokio::test]
async fn ews_negotiate_spnego_one_connection() {
    let (emulator, seen) = start().await;
    let client = ews_client(&emulator, PASSWORD);

    for _ in 0..3 {
        assert_eq!(inbox_name(&client).await.unwrap().as_deref(), Some("Inbox"));
    }

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        3,
        "the handler runs only for authenticated requests"
    );
    for request in &seen {
        assert_eq!(request.scheme, Some(AuthScheme::Negotiate));
    }
    assert!(
        seen.iter()
            .all(|request| request.connection_id == seen[0].connection_id),
        "later calls reuse the authenticated connection: {seen:?}"
    );
}

#[tokio::test]
async fn ews_negotiate_wrong_password_fails() {
    let (emulator, seen) = start().await;
    let client = ews_client(&emulator, "wrong-password-5e8");

    let error = inbox_name(&client).await.unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(!text.contains("wrong-password-5e8"), "{text}");
    assert!(seen.lock().unwrap().is_empty(), "no request got through");
}

#[tokio::test]
async fn mapi_negotiate_spnego_connects() {
    let (emulator, _) = start().await;
    let session = mapi_session(&emulator, PASSWORD);

    let info = session.connect().await.unwrap();
    let rows = session
        .hierarchy_table(info.ipm_subtree(), false)
        .await
        .unwrap();
    assert!(!rows.is_empty());
}

#[tokio::test]
async fn mapi_negotiate_wrong_password_fails() {
    let (emulator, _) = start().await;
    let session = mapi_session(&emulator, "wrong-password-7a1");

    let error = session.connect().await.unwrap_err();
    assert!(error.needs_authentication(), "{error}");
    assert!(!format!("{error} {error:?}").contains("wrong-password-7a1"));
}
