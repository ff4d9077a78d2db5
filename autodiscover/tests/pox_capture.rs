//! The POX parser on a real server's response, and the emulator's POX response compared with
//! that response's structure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use bytes::Bytes;
use exmux_autodiscover::pox::{self, PoxAnswer};
use exmux_autodiscover::{Protocol, mailbox_id};
use exmux_emulator::autodiscover::{AutodiscoverConfig, AutodiscoverMailbox};
use quick_xml::Reader;
use quick_xml::events::Event;

fn capture(name: &str) -> Option<Vec<u8>> {
    let path = exmux_testkit::shared_path(&format!("captures/autodiscover-gromox/{name}"))?;
    Some(std::fs::read(path).unwrap())
}

/// Collects every element path (`Autodiscover/Response/User/LegacyDN`, ...) of a document.
fn element_paths(bytes: &[u8]) -> BTreeSet<String> {
    let mut reader = Reader::from_reader(bytes);
    let mut stack: Vec<String> = Vec::new();
    let mut paths = BTreeSet::new();
    let mut buffer = Vec::new();
    loop {
        match reader.read_event_into(&mut buffer).unwrap() {
            Event::Start(start) => {
                stack.push(String::from_utf8(start.local_name().as_ref().to_vec()).unwrap());
                paths.insert(stack.join("/"));
            }
            Event::Empty(start) => {
                let name = String::from_utf8(start.local_name().as_ref().to_vec()).unwrap();
                paths.insert(format!("{}/{name}", stack.join("/")));
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Eof => return paths,
            _ => {}
        }
        buffer.clear();
    }
}

#[test]
fn real_answer_parses_to_settings() {
    let Some(body) = capture("001-autodiscover-pox-outlook.response.body") else {
        return;
    };
    let PoxAnswer::Settings(settings) = pox::parse_response(&body).unwrap() else {
        panic!("expected settings");
    };

    assert_eq!(settings.display_name.as_deref(), Some("User One"));
    assert_eq!(
        settings.legacy_dn.as_deref(),
        Some(
            "/o=Gromox default/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=0100000001000000-user1"
        )
    );
    assert_eq!(
        settings.ews_url.as_deref(),
        Some("https://localhost:18443/EWS/Exchange.asmx")
    );
    let emsmdb = settings.mapi_emsmdb_url.as_deref().unwrap();
    assert_eq!(
        emsmdb,
        "https://localhost:18443/mapi/emsmdb/?MailboxId=75736572-3140-6578-616d-706c01000000@example.test"
    );
    assert_eq!(
        settings.mapi_nspi_url.as_deref(),
        Some(
            "https://localhost:18443/mapi/nspi/?MailboxId=75736572-3140-6578-616d-706c01000000@example.test"
        )
    );
    assert_eq!(
        mailbox_id(emsmdb).as_deref(),
        Some("75736572-3140-6578-616d-706c01000000@example.test")
    );
    for protocol in [
        Protocol::Ews,
        Protocol::MapiHttp,
        Protocol::RpcInternal,
        Protocol::RpcOverHttp,
    ] {
        assert!(settings.protocols.contains(&protocol), "{protocol:?}");
    }
}

#[test]
fn real_request_matches_ours() {
    let Some(body) = capture("001-autodiscover-pox-outlook.request.body") else {
        return;
    };
    let ours = pox::request_body("user1@example.test");
    assert_eq!(element_paths(&body), element_paths(ours.as_bytes()));
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains(pox::RESPONSE_SCHEMA)
    );
}

#[test]
fn emulator_answer_has_real_structure() {
    let Some(real) = capture("001-autodiscover-pox-outlook.response.body") else {
        return;
    };
    let config = AutodiscoverConfig::new(AutodiscoverMailbox {
        address: "user1@example.test".to_owned(),
        display_name: "User One".to_owned(),
        legacy_dn: "/o=Emulator/cn=Recipients/cn=user1".to_owned(),
        ews_url: "https://127.0.0.1:1/EWS/Exchange.asmx".to_owned(),
        emsmdb_url: "https://127.0.0.1:1/mapi/emsmdb/?MailboxId=a@example.test".to_owned(),
        nspi_url: "https://127.0.0.1:1/mapi/nspi/?MailboxId=a@example.test".to_owned(),
        deployment_id: "00000000-0000-0000-0000-000000000001".to_owned(),
    });
    let request_body = pox::request_body("user1@example.test");
    let request = http::Request::builder()
        .method("POST")
        .uri("/Autodiscover/Autodiscover.xml")
        .body(Bytes::from(request_body))
        .unwrap();
    let response = exmux_emulator::autodiscover::handle(&request, &config).unwrap();

    let real_paths = element_paths(&real);
    let our_paths = element_paths(response.body());
    let extra: Vec<&String> = our_paths.difference(&real_paths).collect();
    assert!(
        extra.is_empty(),
        "elements the real server does not send: {extra:?}"
    );
    for required in [
        "Autodiscover/Response/User/LegacyDN",
        "Autodiscover/Response/User/DisplayName",
        "Autodiscover/Response/Account/Protocol/EwsUrl",
        "Autodiscover/Response/Account/Protocol/MailStore/ExternalUrl",
        "Autodiscover/Response/Account/Protocol/AddressBook/ExternalUrl",
    ] {
        assert!(our_paths.contains(required), "missing {required}");
    }

    let PoxAnswer::Settings(settings) = pox::parse_response(response.body()).unwrap() else {
        panic!("expected settings");
    };
    assert_eq!(
        settings.ews_url.as_deref(),
        Some("https://127.0.0.1:1/EWS/Exchange.asmx")
    );
    assert_eq!(
        settings.legacy_dn.as_deref(),
        Some("/o=Emulator/cn=Recipients/cn=user1")
    );
}
