#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every operation the transport carries over EWS, against the emulator, with the
//! resulting mailbox observed over the other protocol (a MAPI/HTTP session reading the
//! contents tables), and the events the embedder receives for them.

use std::collections::BTreeMap;
use std::time::Duration;

use exmux_core::Secret;
use exmux_core::auth::Credentials;
use exmux_emulator::server::EmulatorHandle;
use exmux_mapihttp::ids::ObjectId;
use exmux_mapihttp::prop::RowCell;
use exmux_mapihttp::prop::{PropValue, tags};
use exmux_mapihttp::session::{MapiSession, SessionConfig};
use exmux_router::core::Event;
use exmux_router::transport::{Events, Transport, TransportOptions};
use exmux_router::{Config, Preset};

/// MSGFLAG_READ of PidTagMessageFlags (MS-OXCMSG 2.2.1.6).
const MSGFLAG_READ: i32 = 0x1;

fn credentials() -> Credentials {
    Credentials::Basic {
        username: exmux::emulator::MAILBOX.to_owned(),
        password: Secret::new(exmux::emulator::PASSWORD),
    }
}

fn mime(subject: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.test>\r\nTo: user1@example.test\r\nSubject: {subject}\r\n\
         Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@example.test>\r\n\r\nHello {subject}.\r\n"
    )
    .into_bytes()
}

async fn connect(handle: &EmulatorHandle) -> (Transport, Events) {
    let config = Config::from_toml_str(&format!(
        "[server]\nmailbox = \"user1@example.test\"\news_url = \"{}\"\n\
         [auth]\nmethod = \"basic\"\nusername = \"user1@example.test\"\npassword_env = \"UNUSED\"\n\
         [routing]\npreset = \"ews\"\n",
        handle.ews_url()
    ))
    .unwrap();
    assert_eq!(config.routing, Preset::Ews.routing());
    let options = TransportOptions {
        credentials: Some(credentials()),
        tick: Duration::from_millis(50),
        ..TransportOptions::default()
    };
    Transport::connect(&config, options).await.unwrap()
}

/// Subject to read state of every message in `folder`, read over MAPI/HTTP.
async fn mapi_view(session: &MapiSession, folder: ObjectId) -> BTreeMap<String, bool> {
    let columns = [tags::PID_TAG_SUBJECT, tags::PID_TAG_MESSAGE_FLAGS];
    let rows = session.contents_table(folder, &columns).await.unwrap();
    rows.iter()
        .map(|row| {
            let subject = match row.get(&columns, tags::PID_TAG_SUBJECT) {
                Some(RowCell::Value(PropValue::Unicode(text))) => text.clone(),
                other => panic!("subject cell {other:?}"),
            };
            let read = match row.get(&columns, tags::PID_TAG_MESSAGE_FLAGS) {
                Some(RowCell::Value(PropValue::I32(flags))) => flags & MSGFLAG_READ != 0,
                other => panic!("flags cell {other:?}"),
            };
            (subject, read)
        })
        .collect()
}

fn drain(events: &mut Events) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(event) = events.try_recv() {
        out.push(event);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ews_writes_are_seen_over_mapi_and_never_echoed() {
    let handle = exmux::emulator::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let session = MapiSession::new(SessionConfig::new(
        handle.mapi_emsmdb_url(),
        exmux_emulator::mapi::legacy_dn(exmux::emulator::MAILBOX),
        credentials(),
        exmux_core::http::HttpOptions::default()
            .build_client()
            .unwrap(),
    ));
    let logon = session.connect().await.unwrap();

    let (transport, mut events) = connect(&handle).await;
    let inbox = transport.add_folder("inbox").await.unwrap();
    let deleted = transport.add_folder("deleteditems").await.unwrap();
    transport.sync(inbox).unwrap();
    transport.wait_idle().await;

    // create
    let first = transport.create(inbox, &mime("first")).await.unwrap();
    let second = transport.create(inbox, &mime("second")).await.unwrap();
    assert_eq!(
        mapi_view(&session, logon.inbox()).await,
        BTreeMap::from([("first".into(), false), ("second".into(), false)])
    );

    // fetch
    let content = transport.fetch_mime(first).await.unwrap();
    assert!(String::from_utf8_lossy(&content).contains("Subject: first"));

    // update (read state)
    transport.set_read(first, true).await.unwrap();
    assert_eq!(
        mapi_view(&session, logon.inbox()).await.get("first"),
        Some(&true)
    );

    // move: the item keeps its key and gets the new folder's id
    let before = transport.backend_id(second, exmux_router::Backend::Ews);
    transport.move_item(second, deleted).await.unwrap();
    let after = transport.backend_id(second, exmux_router::Backend::Ews);
    assert!(
        after.is_some() && after != before,
        "{before:?} -> {after:?}"
    );
    assert_eq!(
        mapi_view(&session, logon.deleted_items()).await,
        BTreeMap::from([("second".into(), false)])
    );

    // delete (into Deleted Items)
    transport.delete(first).await.unwrap();
    assert!(mapi_view(&session, logon.inbox()).await.is_empty());
    assert_eq!(
        mapi_view(&session, logon.deleted_items()).await.len(),
        2,
        "delete moves to Deleted Items"
    );

    // The inbox sync that follows reports only this transport's own writes: nothing
    // is delivered, and no full resync is asked for.
    transport.sync(inbox).unwrap();
    transport.wait_idle().await;
    let delivered: Vec<Event> = drain(&mut events)
        .into_iter()
        .filter(|event| !matches!(event, Event::SyncStateAdvanced { .. }))
        .collect();
    assert!(delivered.is_empty(), "{delivered:#?}");

    // Deleted Items: the moved message is known by the id MoveItem returned, so it is
    // never reported as a new item.
    transport.sync(deleted).unwrap();
    transport.wait_idle().await;
    let delivered: Vec<Event> = drain(&mut events)
        .into_iter()
        .filter(|event| !matches!(event, Event::SyncStateAdvanced { .. }))
        .collect();
    assert!(
        !delivered
            .iter()
            .any(|event| matches!(event, Event::ItemChanged { item, .. } if *item == second)),
        "{delivered:#?}"
    );
    // NOTE: DeleteItem with MoveToDeletedItems returns no id for the message it puts in
    // Deleted Items, so that message arrives there as a new item of origin remote; and
    // the moved message's first sync in its new folder reports its read state as a
    // remote change, because the router has no read state for it yet. Both are
    // idempotent upserts of the true state, not echoes the embedder must undo.
    assert_eq!(transport.counters().full_resyncs, 0);

    session.disconnect().await.unwrap();
    drop(transport);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_persists_and_second_sync_reports_only_changes() {
    let handle = exmux::emulator::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let (transport, mut events) = connect(&handle).await;
    let inbox = transport.add_folder("inbox").await.unwrap();
    transport.create(inbox, &mime("kept")).await.unwrap();
    transport.sync(inbox).unwrap();
    transport.wait_idle().await;
    let state = transport.state();
    drop(transport);
    drain(&mut events);

    // A second client adds a message while the transport is down.
    let other = exmux_ews::client::EwsClient::builder(
        handle.ews_url(),
        exmux::emulator::MAILBOX,
        credentials(),
    )
    .build()
    .unwrap();
    let mut item = exmux_ews::types::Item::new(exmux_ews::types::ItemKind::Message);
    item.mime_content = Some(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        mime("later"),
    ));
    other
        .call(&exmux_ews::ops::items::CreateItem {
            disposition: Some(exmux_ews::types::MessageDisposition::SaveOnly),
            saved_folder: Some(exmux_ews::types::FolderRef::distinguished(
                exmux_ews::types::DistinguishedFolder::Inbox,
            )),
            items: vec![item],
        })
        .await
        .unwrap();

    let config_text = format!(
        "[server]\nmailbox = \"user1@example.test\"\news_url = \"{}\"\n\
         [auth]\nmethod = \"basic\"\nusername = \"user1@example.test\"\npassword_env = \"UNUSED\"\n\
         [routing]\npreset = \"ews\"\n",
        handle.ews_url()
    );
    let config = Config::from_toml_str(&config_text).unwrap();
    let (transport, mut events) = Transport::connect(
        &config,
        TransportOptions {
            state: Some(state),
            credentials: Some(credentials()),
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap();
    let again = transport.add_folder("inbox").await.unwrap();
    assert_eq!(again, inbox, "a restored folder keeps its key");
    transport.sync(again).unwrap();
    transport.wait_idle().await;
    let changed: Vec<Event> = drain(&mut events)
        .into_iter()
        .filter(|event| matches!(event, Event::ItemChanged { .. }))
        .collect();
    assert_eq!(changed.len(), 1, "only the new message: {changed:#?}");
    drop(transport);
    handle.shutdown().await;
}
