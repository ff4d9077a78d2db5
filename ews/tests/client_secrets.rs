#![allow(clippy::unwrap_used, clippy::expect_used)]
//! No password, token, cookie or Authorization value reaches a log line or an error,
//! even with every crate logging at TRACE.

mod client_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use client_support::{Canned, MockServer, envelope};
use exmux_core::Secret;
use exmux_core::auth::{Credentials, StaticToken};
use exmux_ews::client::EwsClient;
use exmux_ews::ops::Shape;
use exmux_ews::ops::folders::GetFolder;
use exmux_ews::types::{BaseShape, DistinguishedFolder, FolderRef};

const PASSWORD: &str = "Sup3r-Secret-Passw0rd";
const TOKEN: &str = "eyJhbGciOiJub25lIn0.dG9rZW4tc2VjcmV0.c2ln";
const COOKIE: &str = "be01.example.test~7781secret";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn get_inbox() -> GetFolder {
    GetFolder {
        shape: Shape::base(BaseShape::IdOnly),
        folder_ids: vec![FolderRef::distinguished(DistinguishedFolder::Inbox)],
    }
}

fn ok_body() -> String {
    envelope(
        r#"<m:GetFolderResponse><m:ResponseMessages><m:GetFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Folders><t:Folder><t:FolderId Id="AAEu" ChangeKey="AQ=="/></t:Folder></m:Folders></m:GetFolderResponseMessage></m:ResponseMessages></m:GetFolderResponse>"#,
    )
}

#[tokio::test]
async fn secrets_stay_out_of_logs_and_errors() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::with_queue(vec![
        Canned::xml(200, ok_body()).header(
            "Set-Cookie",
            &format!("X-BackEndOverrideCookie={COOKIE}; path=/"),
        ),
        Canned::new(401, "text/plain", "")
            .header("WWW-Authenticate", "Basic realm=\"mail.example.test\""),
        Canned::new(401, "text/plain", "").header("WWW-Authenticate", "Bearer"),
        Canned::new(401, "text/plain", "").header("WWW-Authenticate", "Bearer"),
    ])
    .await;

    let basic = EwsClient::builder(
        server.url(),
        "user1@example.test",
        Credentials::Basic {
            username: "user1@example.test".into(),
            password: Secret::new(PASSWORD),
        },
    )
    .build()
    .unwrap();
    let mut texts = Vec::new();
    basic.call(&get_inbox()).await.unwrap();
    let error = basic.call(&get_inbox()).await.unwrap_err();
    texts.push(format!("{error} {error:?}"));
    texts.push(format!("{basic:?}"));

    let bearer = EwsClient::builder(
        server.url(),
        "user1@example.test",
        Credentials::Bearer(Arc::new(StaticToken(Secret::new(TOKEN)))),
    )
    .build()
    .unwrap();
    let error = bearer.call(&get_inbox()).await.unwrap_err();
    texts.push(format!("{error} {error:?}"));

    // The secrets really went over the wire, so their absence below means something.
    let requests = server.requests();
    assert!(
        requests[1]
            .header("authorization")
            .unwrap()
            .contains(&STANDARD.encode(format!("user1@example.test:{PASSWORD}")))
    );
    assert!(requests[2].header("authorization").unwrap().contains(TOKEN));

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("GetFolder"),
        "the capture saw no log lines: {log}"
    );
    texts.push(log);

    let forbidden = [
        PASSWORD.to_owned(),
        STANDARD.encode(format!("user1@example.test:{PASSWORD}")),
        STANDARD.encode(PASSWORD),
        TOKEN.to_owned(),
        COOKIE.to_owned(),
    ];
    for text in &texts {
        for secret in &forbidden {
            assert!(
                !text.contains(secret.as_str()),
                "a secret leaked into: {text}"
            );
        }
    }
}
