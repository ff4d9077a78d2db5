#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! NTLM connections that the EWS client and the MAPI/HTTP session open themselves go
//! through the configured proxy as a `CONNECT` tunnel (`exmux_core::dial`), to an
//! emulator over HTTPS with certificate verification on. The proxy runs in this test
//! on 127.0.0.1 and counts its tunnels.

use std::sync::{Arc, Mutex};

use exmux_core::auth::Credentials;
use exmux_core::http::{HttpOptions, ProxySetting};
use exmux_core::{ManualClock, Secret};
use exmux_emulator::mapi::{MapiFrontEnd, MapiOptions, legacy_dn};
use exmux_emulator::server::{Emulator, EmulatorHandle, EmulatorOptions};
use exmux_ews::client::EwsClient;
use exmux_ews::ops::Shape;
use exmux_ews::ops::folders::GetFolder;
use exmux_ews::types::{BaseShape, DistinguishedFolder, FolderRef};
use exmux_mapihttp::session::{MapiSession, SessionConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const USER: &str = "user1@example.test";
const PASSWORD: &str = "password1";

/// Starts a CONNECT proxy on 127.0.0.1 that stores the target of each tunnel it opens.
async fn connect_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let tunnels = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&tunnels);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0_u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8(head).unwrap();
                let target = head
                    .strip_prefix("CONNECT ")
                    .and_then(|rest| rest.split(' ').next())
                    .expect("only CONNECT requests reach this proxy")
                    .to_owned();
                let mut upstream = TcpStream::connect(&target).await.unwrap();
                log.lock().unwrap().push(target);
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (format!("http://{address}"), tunnels)
}

async fn https_emulator() -> (EmulatorHandle, tempfile::TempDir, std::path::PathBuf) {
    let emulator = Emulator::start(EmulatorOptions {
        tls: true,
        clock: Arc::new(ManualClock::new(1_800_000_000_000)),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    let folder = tempfile::tempdir().unwrap();
    let bundle = folder.path().join("emulator-ca.pem");
    std::fs::write(&bundle, emulator.ca_certificate_pem().unwrap()).unwrap();
    (emulator, folder, bundle)
}

fn ntlm() -> Credentials {
    Credentials::Ntlm {
        username: USER.to_owned(),
        password: Secret::new(PASSWORD),
    }
}

fn through(proxy: &str, bundle: &std::path::Path) -> HttpOptions {
    HttpOptions {
        ca_bundle: Some(bundle.to_owned()),
        proxy: ProxySetting::Url {
            url: Secret::new(proxy),
            no_proxy: None,
        },
        ..HttpOptions::default()
    }
}

#[tokio::test]
async fn ews_ntlm_through_proxy() {
    let (emulator, _folder, bundle) = https_emulator().await;
    let (proxy, tunnels) = connect_proxy().await;
    let client = EwsClient::builder(emulator.ews_url(), USER, ntlm())
        .http_options(through(&proxy, &bundle))
        .build()
        .unwrap();
    let response = client
        .call(&GetFolder {
            shape: Shape::base(BaseShape::Default),
            folder_ids: vec![FolderRef::distinguished(DistinguishedFolder::Inbox)],
        })
        .await
        .unwrap();
    let folders = response.into_single("GetFolder").unwrap();
    assert_eq!(folders.len(), 1);

    let tunnels = tunnels.lock().unwrap().clone();
    let target = format!("127.0.0.1:{}", emulator.local_addr().port());
    assert!(!tunnels.is_empty(), "no tunnel was opened");
    assert!(tunnels.iter().all(|t| *t == target), "{tunnels:?}");
}

#[tokio::test]
async fn mapi_ntlm_through_proxy() {
    let (emulator, _folder, bundle) = https_emulator().await;
    MapiFrontEnd::mount(&emulator, MapiOptions::default());
    let (proxy, tunnels) = connect_proxy().await;
    let http = through(&proxy, &bundle);
    let mut config = SessionConfig::new(
        emulator.mapi_emsmdb_url(),
        legacy_dn(USER),
        ntlm(),
        http.build_client().unwrap(),
    );
    config.owned_tls = Some(http.tls_config().unwrap());
    config.owned_proxy = http.proxy.clone();
    let session = MapiSession::new(config);
    let info = session.connect().await.unwrap();
    let rows = session
        .hierarchy_table(info.ipm_subtree(), false)
        .await
        .unwrap();
    assert!(!rows.is_empty());

    let tunnels = tunnels.lock().unwrap().clone();
    let target = format!("127.0.0.1:{}", emulator.local_addr().port());
    assert!(!tunnels.is_empty(), "no tunnel was opened");
    assert!(tunnels.iter().all(|t| *t == target), "{tunnels:?}");
}
