#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The operations the transport carries over MAPI/HTTP, against the emulator, with the
//! resulting mailbox compared with what the same operation over EWS shows.

use std::collections::BTreeSet;
use std::time::Duration;

use exmux_core::Secret;
use exmux_core::auth::Credentials;
use exmux_emulator::server::EmulatorHandle;
use exmux_mapihttp::prop::{PropValue, TaggedValue, tags};
use exmux_mapihttp::session::{MapiSession, SessionConfig};
use exmux_router::Config;
use exmux_router::core::{Event, Origin};
use exmux_router::transport::{Events, MAPI_FOLDER_PREFIX, Transport, TransportOptions};

fn credentials() -> Credentials {
    Credentials::Basic {
        username: exmux::emulator::MAILBOX.to_owned(),
        password: Secret::new(exmux::emulator::PASSWORD),
    }
}

async fn emulator() -> EmulatorHandle {
    exmux::emulator::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap()
}

/// Returns a second client: a MAPI/HTTP session of its own.
fn other_client(handle: &EmulatorHandle) -> MapiSession {
    MapiSession::new(SessionConfig::new(
        handle.mapi_emsmdb_url(),
        exmux_emulator::mapi::legacy_dn(exmux::emulator::MAILBOX),
        credentials(),
        exmux_core::http::HttpOptions::default()
            .build_client()
            .unwrap(),
    ))
}

async fn connect(handle: &EmulatorHandle, routing: &str) -> (Transport, Events) {
    let config = Config::from_toml_str(&format!(
        "[server]\nmailbox = \"user1@example.test\"\news_url = \"{}\"\nmapi_url = \"{}\"\nuser_dn = \"{}\"\n\
         [auth]\nmethod = \"basic\"\nusername = \"user1@example.test\"\npassword_env = \"UNUSED\"\n\
         [routing]\npreset = \"{routing}\"\n",
        handle.ews_url(),
        handle.mapi_emsmdb_url(),
        exmux_emulator::mapi::legacy_dn(exmux::emulator::MAILBOX),
    ))
    .unwrap();
    let options = TransportOptions {
        credentials: Some(credentials()),
        tick: Duration::from_millis(50),
        ..TransportOptions::default()
    };
    Transport::connect(&config, options).await.unwrap()
}

fn drain(events: &mut Events) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(event) = events.try_recv() {
        out.push(event);
    }
    out
}

fn subject(text: &str) -> Vec<TaggedValue> {
    vec![TaggedValue {
        tag: tags::PID_TAG_SUBJECT,
        value: PropValue::Unicode(text.to_owned()),
    }]
}

/// What `exmux sync` does: list the folders, add each, sync each. Under the `mapi` and
/// `hybrid` routings the listing is an ICS hierarchy download, and a folder that is
/// not distinguished gets a MAPI folder id, so its items sync over MAPI/HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_folder_syncs_over_mapi() {
    let handle = emulator().await;
    let other = other_client(&handle);
    let logon = other.connect().await.unwrap();
    let (projects, _) = other
        .create_folder(logon.ipm_subtree(), "Projects")
        .await
        .unwrap();
    other
        .create_message(projects, subject("in projects"), false)
        .await
        .unwrap();

    for routing in ["mapi", "hybrid"] {
        let (transport, mut events) = connect(&handle, routing).await;
        let folders = transport.remote_folders().await.unwrap();
        let listed = folders
            .iter()
            .find(|folder| folder.name == "Projects")
            .unwrap_or_else(|| panic!("{routing}: Projects not listed in {folders:?}"));
        assert_eq!(listed.mapi_id, Some(projects.0), "{routing}");
        assert_eq!(listed.id, format!("{MAPI_FOLDER_PREFIX}{:#x}", projects.0));
        let inbox = folders
            .iter()
            .find(|folder| folder.mapi_id == Some(logon.inbox().0))
            .unwrap();
        assert_eq!(
            inbox.id, "inbox",
            "{routing}: distinguished folders keep their name"
        );

        let mut keys = Vec::new();
        for folder in &folders {
            keys.push(transport.add_folder(&folder.id).await.unwrap());
        }
        let projects_key = transport.add_folder(&listed.id).await.unwrap();
        assert!(
            keys.contains(&projects_key),
            "adding twice gives the same key"
        );
        for key in &keys {
            transport.sync(*key).unwrap();
            transport.wait_idle().await;
        }

        let changed: Vec<_> = drain(&mut events)
            .into_iter()
            .filter_map(|event| match event {
                Event::ItemChanged { folder, origin, .. } if folder == projects_key => Some(origin),
                _ => None,
            })
            .collect();
        assert_eq!(changed, vec![Origin::Remote], "{routing}");
        assert_eq!(transport.counters().full_resyncs, 0, "{routing}");
    }
}

/// Differential: the folder tree listed over MAPI/HTTP names the same folders as the
/// one listed over EWS, after folders were created over each protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hierarchy_over_mapi_matches_hierarchy_over_ews() {
    let handle = emulator().await;
    let other = other_client(&handle);
    let logon = other.connect().await.unwrap();
    other
        .create_folder(logon.ipm_subtree(), "Made over MAPI")
        .await
        .unwrap();
    let (over_ews, _ews_events) = connect(&handle, "ews").await;
    over_ews
        .ews()
        .unwrap()
        .call(&exmux_ews::ops::folders::CreateFolder {
            parent: exmux_ews::types::FolderRef::distinguished(
                exmux_ews::types::DistinguishedFolder::MsgFolderRoot,
            ),
            folders: vec![exmux_ews::types::Folder::named("Made over EWS")],
        })
        .await
        .unwrap();

    let (over_mapi, _mapi_events) = connect(&handle, "mapi").await;
    let names = |folders: Vec<exmux_router::transport::RemoteFolder>| {
        folders
            .into_iter()
            .map(|folder| folder.name)
            .collect::<BTreeSet<_>>()
    };
    let ews_names = names(over_ews.remote_folders().await.unwrap());
    let mapi_names = names(over_mapi.remote_folders().await.unwrap());
    assert!(mapi_names.contains("Made over EWS"), "{mapi_names:?}");
    assert!(ews_names.contains("Made over MAPI"), "{ews_names:?}");
    assert_eq!(ews_names, mapi_names);
}
