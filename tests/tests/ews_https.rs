#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The EWS client over HTTPS against the emulator's generated certificate, with
//! certificate verification on, and the NTLM handshake against the emulator's EWS
//! endpoint on connections the client owns.
//!
//! The emulator's CA reaches the client through `HttpOptions::ca_bundle`, in this
//! process. A recording handler in front of the EWS front end notes which scheme and
//! connection authenticated each request.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use exmux_core::auth::{AuthError, Credentials};
use exmux_core::http::{HttpOptions, ProxySetting};
use exmux_core::{ManualClock, Secret};
use exmux_emulator::ews::EwsFrontEnd;
use exmux_emulator::server::{
    AuthOptions, AuthScheme, EWS_PATH, Emulator, EmulatorHandle, EmulatorOptions, Handler,
    RouteAuth, handler_fn,
};
use exmux_ews::client::{ClientError, EwsClient};
use exmux_ews::ops::Shape;
use exmux_ews::ops::folders::GetFolder;
use exmux_ews::types::{BaseShape, DistinguishedFolder, FolderRef};

const USER: &str = "user1@example.test";
const PASSWORD: &str = "password1";

/// What the server saw for one EWS request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    scheme: Option<AuthScheme>,
    connection_id: u64,
    tls: bool,
}

struct Rig {
    emulator: EmulatorHandle,
    seen: Arc<Mutex<Vec<Seen>>>,
    ca_dir: PathBuf,
}

impl Rig {
    /// Starts an emulator that accepts only `schemes`, with a recording handler in
    /// front of its EWS front end.
    async fn start(tls: bool, schemes: Vec<AuthScheme>) -> Rig {
        let emulator = Emulator::start(EmulatorOptions {
            tls,
            clock: Arc::new(ManualClock::default()),
            auth: AuthOptions {
                schemes,
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
                    tls: context.tls,
                });
                front_end.handle(request, context)
            }),
        );

        let ca_dir = std::env::temp_dir().join(format!(
            "exmux-ews-https-{}-{}",
            std::process::id(),
            emulator.local_addr().port()
        ));
        std::fs::create_dir_all(&ca_dir).unwrap();
        Rig {
            emulator,
            seen,
            ca_dir,
        }
    }

    /// Writes the emulator's CA certificate to a PEM file and returns its path.
    fn ca_bundle(&self) -> PathBuf {
        let path = self.ca_dir.join("emulator-ca.pem");
        std::fs::write(&path, self.emulator.ca_certificate_pem().unwrap()).unwrap();
        path
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.ca_dir).ok();
    }
}

fn basic() -> Credentials {
    Credentials::Basic {
        username: USER.to_owned(),
        password: Secret::new(PASSWORD),
    }
}

fn ntlm(password: &str) -> Credentials {
    Credentials::Ntlm {
        username: USER.to_owned(),
        password: Secret::new(password),
    }
}

fn client(url: &str, credentials: Credentials, http: HttpOptions) -> EwsClient {
    EwsClient::builder(url, USER, credentials)
        .http_options(http)
        .build()
        .unwrap()
}

fn trusting(bundle: PathBuf) -> HttpOptions {
    HttpOptions {
        ca_bundle: Some(bundle),
        proxy: ProxySetting::Disabled,
        ..HttpOptions::default()
    }
}

fn get_inbox() -> GetFolder {
    GetFolder {
        shape: Shape::base(BaseShape::Default),
        folder_ids: vec![FolderRef::distinguished(DistinguishedFolder::Inbox)],
    }
}

async fn inbox_name(client: &EwsClient) -> Result<Option<String>, ClientError> {
    let response = client.call(&get_inbox()).await?;
    let folders = response.into_single("GetFolder").unwrap();
    Ok(folders[0].display_name.clone())
}

fn is_certificate_error(error: &ClientError) -> bool {
    let text = format!("{error:?} {error}").to_lowercase();
    matches!(error, ClientError::Transport { .. }) && text.contains("certificate")
}

#[tokio::test]
async fn untrusted_ca_is_rejected_on_both_paths() {
    let rig = Rig::start(true, vec![AuthScheme::Basic, AuthScheme::Ntlm]).await;
    let url = rig.emulator.ews_url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let pooled = client(&url, basic(), HttpOptions::default());
    let error = inbox_name(&pooled).await.unwrap_err();
    assert!(is_certificate_error(&error), "pooled path: {error:?}");

    let owned = client(&url, ntlm(PASSWORD), HttpOptions::default());
    let error = inbox_name(&owned).await.unwrap_err();
    assert!(is_certificate_error(&error), "owned path: {error:?}");

    assert!(rig.seen().is_empty(), "no request reached the handler");
}

#[tokio::test]
async fn ca_bundle_trusts_emulator_for_basic() {
    let rig = Rig::start(true, vec![AuthScheme::Basic]).await;
    let client = client(&rig.emulator.ews_url(), basic(), trusting(rig.ca_bundle()));

    assert_eq!(inbox_name(&client).await.unwrap().as_deref(), Some("Inbox"));

    let seen = rig.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].scheme, Some(AuthScheme::Basic));
    assert!(seen[0].tls);
}

#[tokio::test]
async fn ca_bundle_only_trusts_emulator() {
    let rig = Rig::start(true, vec![AuthScheme::Basic, AuthScheme::Ntlm]).await;
    let options = HttpOptions {
        ca_bundle_only: true,
        ..trusting(rig.ca_bundle())
    };

    let pooled = client(&rig.emulator.ews_url(), basic(), options.clone());
    assert_eq!(inbox_name(&pooled).await.unwrap().as_deref(), Some("Inbox"));
    let owned = client(&rig.emulator.ews_url(), ntlm(PASSWORD), options);
    assert_eq!(inbox_name(&owned).await.unwrap().as_deref(), Some("Inbox"));

    let schemes: Vec<_> = rig.seen().iter().map(|seen| seen.scheme).collect();
    assert_eq!(schemes, [Some(AuthScheme::Basic), Some(AuthScheme::Ntlm)]);
}

/// NTLM over HTTP (MS-NTHT, after RFC 4559) authenticates the TCP connection, so the
/// NEGOTIATE and AUTHENTICATE requests and the calls after them share one connection.
#[tokio::test]
async fn ntlm_handshake_over_https_owned_connection() {
    let rig = Rig::start(true, vec![AuthScheme::Ntlm]).await;
    let client = client(
        &rig.emulator.ews_url(),
        ntlm(PASSWORD),
        trusting(rig.ca_bundle()),
    );

    for _ in 0..3 {
        assert_eq!(inbox_name(&client).await.unwrap().as_deref(), Some("Inbox"));
    }

    let seen = rig.seen();
    assert_eq!(
        seen.len(),
        3,
        "the handler runs only for authenticated requests"
    );
    for request in &seen {
        assert_eq!(request.scheme, Some(AuthScheme::Ntlm));
        assert!(request.tls);
    }
    assert!(
        seen.iter()
            .all(|request| request.connection_id == seen[0].connection_id),
        "later calls reuse the authenticated connection: {seen:?}"
    );
}

#[tokio::test]
async fn ntlm_handshake_over_plain_http() {
    let rig = Rig::start(false, vec![AuthScheme::Ntlm, AuthScheme::Basic]).await;
    let client = client(
        &rig.emulator.ews_url(),
        ntlm(PASSWORD),
        HttpOptions::default(),
    );

    assert_eq!(inbox_name(&client).await.unwrap().as_deref(), Some("Inbox"));
    assert_eq!(inbox_name(&client).await.unwrap().as_deref(), Some("Inbox"));

    let seen = rig.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].scheme, Some(AuthScheme::Ntlm));
    assert!(!seen[0].tls);
    assert_eq!(seen[0].connection_id, seen[1].connection_id);
}

#[tokio::test]
async fn ntlm_wrong_password_is_an_auth_error() {
    let rig = Rig::start(true, vec![AuthScheme::Ntlm]).await;
    let client = client(
        &rig.emulator.ews_url(),
        ntlm("wrong-password-4c2"),
        trusting(rig.ca_bundle()),
    );

    let error = inbox_name(&client).await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Auth {
                source: AuthError::Rejected { .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.to_string().contains("wrong-password-4c2"), "{error}");
    assert!(rig.seen().is_empty());
}

#[tokio::test]
async fn ntlm_against_basic_only_names_offered_schemes() {
    let rig = Rig::start(true, vec![AuthScheme::Basic]).await;
    let client = client(
        &rig.emulator.ews_url(),
        ntlm(PASSWORD),
        trusting(rig.ca_bundle()),
    );

    let error = inbox_name(&client).await.unwrap_err();
    assert!(
        matches!(
            &error,
            ClientError::Auth {
                source: AuthError::UnsupportedSchemes { offered },
                ..
            } if offered.contains("Basic")
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn danger_accept_invalid_certs_covers_owned_connections() {
    let rig = Rig::start(true, vec![AuthScheme::Ntlm, AuthScheme::Basic]).await;
    let options = HttpOptions {
        danger_accept_invalid_certs: true,
        proxy: ProxySetting::Disabled,
        ..HttpOptions::default()
    };

    let owned = client(&rig.emulator.ews_url(), ntlm(PASSWORD), options.clone());
    assert_eq!(inbox_name(&owned).await.unwrap().as_deref(), Some("Inbox"));
    let pooled = client(&rig.emulator.ews_url(), basic(), options);
    assert_eq!(inbox_name(&pooled).await.unwrap().as_deref(), Some("Inbox"));
}

#[test]
fn missing_ca_bundle_is_a_config_error() {
    let options = trusting(PathBuf::from("/nonexistent/exmux-ca.pem"));
    let error = EwsClient::builder("https://127.0.0.1:1/EWS/Exchange.asmx", USER, basic())
        .http_options(options)
        .build()
        .unwrap_err();
    assert!(matches!(error, ClientError::Config { .. }), "{error:?}");
    assert!(
        error.to_string().contains("/nonexistent/exmux-ca.pem"),
        "{error}"
    );
}

#[test]
fn ca_bundle_without_certificates_is_rejected() {
    let dir = std::env::temp_dir().join(format!("exmux-ews-empty-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("empty.pem");
    std::fs::write(&path, "no certificates here\n").unwrap();

    let error = EwsClient::builder("https://127.0.0.1:1/EWS/Exchange.asmx", USER, basic())
        .http_options(trusting(path))
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("no PEM certificate"), "{error}");
    std::fs::remove_dir_all(dir).ok();
}
