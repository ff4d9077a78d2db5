#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Items synced over EWS and then fetched, updated and deleted over MAPI/HTTP, against
//! the emulator. The MAPI ids come from the entry id inside the EWS ItemId, mapped
//! through the MAPI logon's replica map.

use std::collections::BTreeSet;
use std::time::Duration;

use exmux_core::Secret;
use exmux_core::auth::Credentials;
use exmux_emulator::server::EmulatorHandle;
use exmux_router::core::Event;
use exmux_router::transport::{Events, Transport, TransportOptions};
use exmux_router::{Config, ItemKey};

fn credentials() -> Credentials {
    Credentials::Basic {
        username: exmux::emulator::MAILBOX.to_owned(),
        password: Secret::new(exmux::emulator::PASSWORD),
    }
}

async fn connect(handle: &EmulatorHandle, routing: &str) -> (Transport, Events) {
    let config = Config::from_toml_str(&format!(
        "[server]\nmailbox = \"user1@example.test\"\news_url = \"{}\"\nmapi_url = \"{}\"\nuser_dn = \"{}\"\n\
         [auth]\nmethod = \"basic\"\nusername = \"user1@example.test\"\npassword_env = \"UNUSED\"\n\
         [routing]\n{routing}\n",
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

async fn deliver_over_ews(handle: &EmulatorHandle, subject: &str) {
    let client = exmux_ews::client::EwsClient::builder(
        handle.ews_url(),
        exmux::emulator::MAILBOX,
        credentials(),
    )
    .build()
    .unwrap();
    let mime = format!(
        "From: Alice <alice@example.test>\r\nTo: user1@example.test\r\nSubject: {subject}\r\n\r\nHello.\r\n"
    );
    let mut item = exmux_ews::types::Item::new(exmux_ews::types::ItemKind::Message);
    item.mime_content = Some(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        mime,
    ));
    client
        .call(&exmux_ews::ops::items::CreateItem {
            disposition: Some(exmux_ews::types::MessageDisposition::SaveOnly),
            saved_folder: Some(exmux_ews::types::FolderRef::distinguished(
                exmux_ews::types::DistinguishedFolder::Inbox,
            )),
            items: vec![item],
        })
        .await
        .unwrap()
        .into_single("CreateItem")
        .unwrap();
}

/// Under a routing that syncs over EWS and fetches, updates and deletes over MAPI/HTTP,
/// an item learned only over EWS is fetched, marked read and deleted over MAPI/HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ews_synced_item_written_over_mapi() {
    let handle = exmux::emulator::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    deliver_over_ews(&handle, "synced over ews").await;

    let (transport, mut events) = connect(
        &handle,
        "default = \"ews\"\nfetch = \"mapi\"\nupdate = \"mapi\"\ndelete = \"mapi\"",
    )
    .await;
    let inbox = transport.add_folder("inbox").await.unwrap();
    transport.sync(inbox).unwrap();
    transport.wait_idle().await;
    let mut items = BTreeSet::new();
    while let Some(event) = events.try_recv() {
        if let Event::ItemChanged { item, .. } = event {
            items.insert(item);
        }
    }
    let items: Vec<ItemKey> = items.into_iter().collect();
    assert_eq!(items.len(), 1);
    assert_eq!(
        transport.backend_id(items[0], exmux_router::Backend::Mapi),
        None,
        "the item was learned over EWS only"
    );

    let bytes = transport.fetch_mime(items[0]).await.unwrap();
    let (message, _) = exmux_mapihttp::session::mime::parse(&bytes).unwrap();
    assert_eq!(message.subject.as_deref(), Some("synced over ews"));

    transport.set_read(items[0], true).await.unwrap();
    transport.delete(items[0]).await.unwrap();

    // A fresh transport over EWS alone finds the inbox empty.
    let (ews_only, mut ews_events) = connect(&handle, "preset = \"ews\"").await;
    let inbox = ews_only.add_folder("inbox").await.unwrap();
    ews_only.sync(inbox).unwrap();
    ews_only.wait_idle().await;
    let mut remaining = 0;
    while let Some(event) = ews_events.try_recv() {
        if matches!(event, Event::ItemChanged { .. }) {
            remaining += 1;
        }
    }
    assert_eq!(
        remaining, 0,
        "the delete over MAPI/HTTP reached the mailbox"
    );
}

/// Under a routing that syncs over MAPI/HTTP and fetches, updates and deletes over EWS,
/// an item learned only over MAPI/HTTP gets an EWS ItemId built from its folder and
/// message ids, and is fetched, marked read and deleted over EWS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapi_synced_item_written_over_ews() {
    let handle = exmux::emulator::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    deliver_over_ews(&handle, "synced over mapi").await;

    let (transport, mut events) = connect(
        &handle,
        "default = \"mapi\"\nfetch = \"ews\"\nupdate = \"ews\"\ndelete = \"ews\"",
    )
    .await;
    let inbox = transport.add_folder("inbox").await.unwrap();
    transport.sync(inbox).unwrap();
    transport.wait_idle().await;
    let mut items = BTreeSet::new();
    while let Some(event) = events.try_recv() {
        if let Event::ItemChanged { item, .. } = event {
            items.insert(item);
        }
    }
    let items: Vec<ItemKey> = items.into_iter().collect();
    assert_eq!(items.len(), 1);
    assert_eq!(
        transport.backend_id(items[0], exmux_router::Backend::Ews),
        None,
        "the item was learned over MAPI/HTTP only"
    );

    let bytes = transport.fetch_mime(items[0]).await.unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("Subject: synced over mapi"), "{text}");

    transport.set_read(items[0], true).await.unwrap();
    let (ews_only, mut ews_events) = connect(&handle, "preset = \"ews\"").await;
    let ews_inbox = ews_only.add_folder("inbox").await.unwrap();
    ews_only.sync(ews_inbox).unwrap();
    ews_only.wait_idle().await;
    let mut read = Vec::new();
    while let Some(event) = ews_events.try_recv() {
        if let Event::ItemChanged { read: state, .. } = event {
            read.push(state);
        }
    }
    assert_eq!(read, [Some(true)], "the read flag set over EWS");

    transport.delete(items[0]).await.unwrap();
    ews_only.sync(ews_inbox).unwrap();
    ews_only.wait_idle().await;
    let mut deleted = 0;
    while let Some(event) = ews_events.try_recv() {
        if matches!(event, Event::ItemDeleted { .. }) {
            deleted += 1;
        }
    }
    assert_eq!(deleted, 1, "the delete over EWS reached the mailbox");
}

/// A folder listed over MAPI/HTTP gets an EWS FolderId built from its folder id, and a
/// folder added by its EWS FolderId gets the MAPI folder id its entry id carries, so
/// each is synced and written over either backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_ids_derived_across_backends() {
    let handle = exmux::emulator::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let (ews_only, _) = connect(&handle, "preset = \"ews\"").await;
    let root = ews_only.add_folder("msgfolderroot").await.unwrap();
    ews_only.create_folder(root, "Projects").await.unwrap();

    // Listed over MAPI/HTTP, renamed over EWS.
    let (transport, _events) = connect(&handle, "default = \"mapi\"\nfolder = \"ews\"").await;
    let listed = transport.remote_folders().await.unwrap();
    let projects = listed
        .iter()
        .find(|folder| folder.name == "Projects")
        .unwrap();
    assert!(
        projects
            .id
            .starts_with(exmux_router::transport::MAPI_FOLDER_PREFIX)
    );
    let key = transport.add_folder(&projects.id).await.unwrap();
    transport.rename_folder(key, "Projects 2026").await.unwrap();

    // Listed over EWS, synced over MAPI/HTTP.
    let ews_listed = ews_only.remote_folders().await.unwrap();
    let renamed = ews_listed
        .iter()
        .find(|folder| folder.name == "Projects 2026")
        .unwrap();
    let (mapi_sync, mut events) = connect(&handle, "default = \"mapi\"").await;
    let key = mapi_sync.add_folder(&renamed.id).await.unwrap();
    mapi_sync.sync(key).unwrap();
    mapi_sync.wait_idle().await;
    let mut failures = Vec::new();
    while let Some(event) = events.try_recv() {
        if let Event::SyncFailed { message, .. } = event {
            failures.push(message);
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
    let state = mapi_sync.state();
    let folder = state.folders.get(&key).unwrap();
    assert!(
        folder
            .ids
            .iter()
            .any(|id| matches!(id, exmux_router::ids::BackendFolderId::Mapi(_))),
        "{:?}",
        folder.ids
    );
}

/// Under the hybrid routing (sync over MAPI/HTTP, fetch over EWS), a read change for an
/// item the router does not hold is checked with GetItem over EWS, through the ItemId
/// built from the MAPI ids, and delivered with the read state EWS returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_item_verified_over_fetch_route() {
    let handle = exmux::emulator::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    deliver_over_ews(&handle, "forgotten").await;

    let (first, _events) = connect(&handle, "preset = \"hybrid\"").await;
    let inbox = first.add_folder("inbox").await.unwrap();
    first.sync(inbox).unwrap();
    first.wait_idle().await;
    let mut state = first.state();
    drop(first);
    let keys: Vec<ItemKey> = state.ids.live_items_in(inbox);
    assert_eq!(keys.len(), 1);
    state.ids.remove(keys[0]);

    // Another client marks the message read; the next download reports only that.
    let (ews_only, _) = connect(&handle, "preset = \"ews\"").await;
    let ews_inbox = ews_only.add_folder("inbox").await.unwrap();
    ews_only.sync(ews_inbox).unwrap();
    ews_only.wait_idle().await;
    let key = ews_only.state().ids.live_items_in(ews_inbox)[0];
    ews_only.set_read(key, true).await.unwrap();

    let config = Config::from_toml_str(&format!(
        "[server]\nmailbox = \"user1@example.test\"\news_url = \"{}\"\nmapi_url = \"{}\"\nuser_dn = \"{}\"\n\
         [auth]\nmethod = \"basic\"\nusername = \"user1@example.test\"\npassword_env = \"UNUSED\"\n\
         [routing]\npreset = \"hybrid\"\n",
        handle.ews_url(),
        handle.mapi_emsmdb_url(),
        exmux_emulator::mapi::legacy_dn(exmux::emulator::MAILBOX),
    ))
    .unwrap();
    let options = TransportOptions {
        credentials: Some(credentials()),
        tick: Duration::from_millis(50),
        state: Some(state),
        ..TransportOptions::default()
    };
    let (second, mut events) = Transport::connect(&config, options).await.unwrap();
    let inbox = second.add_folder("inbox").await.unwrap();
    second.sync(inbox).unwrap();
    second.wait_idle().await;
    let mut changed = Vec::new();
    while let Some(event) = events.try_recv() {
        if let Event::ItemChanged { read, .. } = event {
            changed.push(read);
        }
    }
    assert_eq!(
        changed,
        [Some(true)],
        "GetItem over EWS reported the read state"
    );
}
