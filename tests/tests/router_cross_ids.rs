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
