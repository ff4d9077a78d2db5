#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The operations the transport carries over MAPI/HTTP, against the emulator, with the
//! resulting mailbox compared with what the same operation over EWS shows.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use exmux_core::Secret;
use exmux_core::auth::Credentials;
use exmux_emulator::server::EmulatorHandle;
use exmux_mapihttp::prop::{PropValue, TaggedValue, tags};
use exmux_mapihttp::session::{MapiSession, SessionConfig, mime};
use exmux_router::Config;
use exmux_router::core::{Event, Origin};
use exmux_router::ids::BackendItemId;
use exmux_router::transport::{Events, MAPI_FOLDER_PREFIX, Transport, TransportOptions};
use exmux_router::{Backend, ItemKey};

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

/// Returns the `[routing]` body of a named preset.
fn preset(name: &str) -> String {
    format!("preset = \"{name}\"")
}

/// Connects a transport with `routing` as the body of `[routing]`.
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
        let (transport, mut events) = connect(&handle, &preset(routing)).await;
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
    let (over_ews, _ews_events) = connect(&handle, &preset("ews")).await;
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

    let (over_mapi, _mapi_events) = connect(&handle, &preset("mapi")).await;
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

/// Creates a message from MIME in the inbox over EWS, as another client would.
async fn deliver_over_ews(handle: &EmulatorHandle, mime: &str) {
    let client = exmux_ews::client::EwsClient::builder(
        handle.ews_url(),
        exmux::emulator::MAILBOX,
        credentials(),
    )
    .build()
    .unwrap();
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

/// Syncs the inbox with `routing` and returns the keys of the items it holds.
async fn inbox_items(handle: &EmulatorHandle, routing: &str) -> (Transport, Vec<ItemKey>) {
    let (transport, mut events) = connect(handle, routing).await;
    let inbox = transport.add_folder("inbox").await.unwrap();
    transport.sync(inbox).unwrap();
    transport.wait_idle().await;
    let items: BTreeSet<ItemKey> = drain(&mut events)
        .into_iter()
        .filter_map(|event| match event {
            Event::ItemChanged { item, .. } => Some(item),
            _ => None,
        })
        .collect();
    (transport, items.into_iter().collect())
}

/// Returns subject to (sender, plain-text body) of every inbox message, fetched as
/// MIME with `routing`.
async fn fetched_inbox(
    handle: &EmulatorHandle,
    routing: &str,
) -> BTreeMap<String, (Option<(Option<String>, String)>, Option<String>)> {
    let (transport, items) = inbox_items(handle, routing).await;
    let mut out = BTreeMap::new();
    for item in items {
        let bytes = transport.fetch_mime(item).await.unwrap();
        let (message, _) = mime::parse(&bytes).unwrap();
        let body = message.body_text.map(|text| text.trim().to_owned());
        out.insert(message.subject.unwrap_or_default(), (message.from, body));
    }
    out
}

/// Differential: MIME fetched over MAPI/HTTP (composed from the message's properties)
/// carries the same subject, sender and text as the MIME EWS returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_over_mapi_matches_fetch_over_ews() {
    let handle = emulator().await;
    deliver_over_ews(
        &handle,
        "From: Alice <alice@example.test>\r\nTo: user1@example.test\r\nSubject: fetched\r\n\
         Message-ID: <fetched@example.test>\r\n\r\nHello fetched.\r\n",
    )
    .await;

    let over_mapi = fetched_inbox(&handle, &preset("mapi")).await;
    let over_ews = fetched_inbox(&handle, &preset("ews")).await;
    let (from, body) = over_mapi.get("fetched").unwrap();
    assert_eq!(
        from,
        &Some((Some("Alice".to_owned()), "alice@example.test".to_owned()))
    );
    assert_eq!(body.as_deref(), Some("Hello fetched."));
    assert_eq!(over_mapi, over_ews);
}

fn message(subject: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.test>\r\nTo: user1@example.test\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@example.test>\r\n\r\nHello {subject}.\r\n"
    )
    .into_bytes()
}

/// Returns the sorted subjects of the messages in `folder`, read over MAPI/HTTP.
async fn subjects_over_mapi(handle: &EmulatorHandle, folder: &str) -> Vec<String> {
    let session = other_client(handle);
    let logon = session.connect().await.unwrap();
    let fid = match folder {
        "inbox" => logon.inbox(),
        "deleteditems" => logon.deleted_items(),
        "sentitems" => logon.sent_items(),
        other => panic!("no folder id for {other}"),
    };
    let columns = [tags::PID_TAG_SUBJECT];
    let rows = session.contents_table(fid, &columns).await.unwrap();
    let mut subjects: Vec<String> = rows
        .iter()
        .map(|row| match row.get(&columns, tags::PID_TAG_SUBJECT) {
            Some(exmux_mapihttp::prop::RowCell::Value(PropValue::Unicode(text))) => text.clone(),
            other => panic!("subject cell {other:?}"),
        })
        .collect();
    subjects.sort();
    subjects
}

/// Returns the sorted subjects of the messages in `folder`, synced and fetched over EWS.
async fn subjects_over_ews(handle: &EmulatorHandle, folder: &str) -> Vec<String> {
    let (transport, mut events) = connect(handle, &preset("ews")).await;
    let key = transport.add_folder(folder).await.unwrap();
    transport.sync(key).unwrap();
    transport.wait_idle().await;
    let items: BTreeSet<ItemKey> = drain(&mut events)
        .into_iter()
        .filter_map(|event| match event {
            Event::ItemChanged { item, .. } => Some(item),
            _ => None,
        })
        .collect();
    let mut subjects = Vec::new();
    for item in items {
        let bytes = transport.fetch_mime(item).await.unwrap();
        let (message, _) = mime::parse(&bytes).unwrap();
        subjects.push(message.subject.unwrap_or_default());
    }
    subjects.sort();
    subjects
}

/// Plays create, copy and move with one named routing and returns the events of the
/// sync that follows them.
async fn create_copy_move(handle: &EmulatorHandle, routing: &str) -> Vec<Event> {
    let (transport, mut events) = connect(handle, &preset(routing)).await;
    let inbox = transport.add_folder("inbox").await.unwrap();
    let deleted = transport.add_folder("deleteditems").await.unwrap();
    for folder in [inbox, deleted] {
        transport.sync(folder).unwrap();
        transport.wait_idle().await;
    }
    drain(&mut events);

    let kept = transport.create(inbox, &message("kept")).await.unwrap();
    let moved = transport.create(inbox, &message("moved")).await.unwrap();
    let copy = transport.copy_item(kept, deleted).await.unwrap();
    assert_ne!(copy, kept, "{routing}: a copy gets its own key");
    transport.move_item(moved, deleted).await.unwrap();

    for folder in [inbox, deleted] {
        transport.sync(folder).unwrap();
        transport.wait_idle().await;
    }
    assert_eq!(transport.counters().full_resyncs, 0, "{routing}");
    drain(&mut events)
}

/// Differential: create, copy and move over MAPI/HTTP leave the mailbox as the same
/// operations over EWS do, each observed over the other protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_copy_move_match_across_protocols() {
    let over_mapi = emulator().await;
    let mapi_events = create_copy_move(&over_mapi, "mapi").await;
    let over_ews = emulator().await;
    create_copy_move(&over_ews, "ews").await;

    for folder in ["inbox", "deleteditems"] {
        let after_mapi = subjects_over_ews(&over_mapi, folder).await;
        let after_ews = subjects_over_mapi(&over_ews, folder).await;
        assert_eq!(after_mapi, after_ews, "{folder}");
    }
    assert!(
        subjects_over_ews(&over_mapi, "inbox")
            .await
            .contains(&"kept".to_owned())
    );
    assert_eq!(
        subjects_over_ews(&over_mapi, "deleteditems").await,
        ["kept", "moved"]
    );

    // The creations, the copy and the moved message come back in the next download
    // recognised as the transport's own: the transport finds the ids that
    // RopMoveCopyMessages withholds in the target's contents table.
    let remote: Vec<_> = mapi_events
        .iter()
        .filter(|event| {
            matches!(
                event,
                Event::ItemChanged {
                    origin: Origin::Remote,
                    ..
                }
            )
        })
        .collect();
    assert!(remote.is_empty(), "{remote:?}");
}

/// Plays every folder operation and a send with one named routing.
async fn folders_and_send(handle: &EmulatorHandle, routing: &str) {
    let (transport, _events) = connect(handle, &preset(routing)).await;
    let root = transport.add_folder("msgfolderroot").await.unwrap();
    let projects = transport.create_folder(root, "Projects").await.unwrap();
    let archive = transport.create_folder(root, "Archive").await.unwrap();
    let scratch = transport.create_folder(root, "Scratch").await.unwrap();
    transport
        .rename_folder(projects, "Projects 2026")
        .await
        .unwrap();
    transport.move_folder(projects, archive).await.unwrap();
    transport.delete_folder(scratch).await.unwrap();
    transport.send(&message("sent")).await.unwrap();
}

/// Returns the names of the folders directly under the IPM subtree and under `Archive`, read over
/// MAPI/HTTP.
async fn tree_over_mapi(handle: &EmulatorHandle) -> (BTreeSet<String>, BTreeSet<String>) {
    let session = other_client(handle);
    let logon = session.connect().await.unwrap();
    let top = session
        .hierarchy_table(logon.ipm_subtree(), false)
        .await
        .unwrap();
    let archive = top
        .iter()
        .find(|row| row.display_name == "Archive")
        .unwrap()
        .folder_id;
    let names = |rows: Vec<exmux_mapihttp::session::FolderRow>| {
        rows.into_iter()
            .map(|row| row.display_name)
            .collect::<BTreeSet<_>>()
    };
    let under_archive = session.hierarchy_table(archive, false).await.unwrap();
    (names(top), names(under_archive))
}

/// Returns the names of every folder under the IPM subtree, listed over EWS.
async fn names_over_ews(handle: &EmulatorHandle) -> BTreeSet<String> {
    let (transport, _events) = connect(handle, &preset("ews")).await;
    transport
        .remote_folders()
        .await
        .unwrap()
        .into_iter()
        .map(|folder| folder.name)
        .collect()
}

/// Differential: creating, renaming, moving and deleting folders and sending a message
/// over MAPI/HTTP leave the mailbox as the same operations over EWS do, each observed
/// over the other protocol and over MAPI/HTTP for the tree's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_and_send_match_across_protocols() {
    let over_mapi = emulator().await;
    folders_and_send(&over_mapi, "mapi").await;
    let over_ews = emulator().await;
    folders_and_send(&over_ews, "ews").await;

    let names = names_over_ews(&over_mapi).await;
    assert!(names.contains("Projects 2026"), "{names:?}");
    assert!(names.contains("Archive"), "{names:?}");
    assert!(!names.contains("Projects"), "{names:?}");
    assert!(!names.contains("Scratch"), "{names:?}");

    let (top, under_archive) = tree_over_mapi(&over_mapi).await;
    assert!(!top.contains("Projects 2026"), "{top:?}");
    assert_eq!(under_archive, BTreeSet::from(["Projects 2026".to_owned()]));
    assert_eq!((top, under_archive), tree_over_mapi(&over_ews).await);

    let sent_over_mapi = subjects_over_ews(&over_mapi, "sentitems").await;
    assert_eq!(sent_over_mapi, ["sent"]);
    assert_eq!(
        sent_over_mapi,
        subjects_over_mapi(&over_ews, "sentitems").await
    );
}

/// Each write over MAPI/HTTP is journaled with the session that made it: the GUID the
/// session sends in X-ClientInfo. EWS has no session, so its writes name none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_names_the_mapi_session() {
    let handle = emulator().await;
    deliver_over_ews(
        &handle,
        "From: a@example.test\r\nSubject: journaled\r\n\r\nHi.\r\n",
    )
    .await;

    let (mapi, items) = inbox_items(&handle, &preset("mapi")).await;
    mapi.set_read(items[0], true).await.unwrap();
    let (ews, items) = inbox_items(&handle, &preset("ews")).await;
    ews.set_read(items[0], false).await.unwrap();

    let mapi_state = mapi.state();
    let mapi_entry = mapi_state.journal.iter().last().unwrap();
    assert_eq!(mapi_entry.backend, exmux_router::Backend::Mapi);
    // A hyphenated GUID: 8-4-4-4-12 hexadecimal digits.
    let groups: Vec<usize> = mapi_entry.session.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{:?}", mapi_entry.session);
    assert!(
        mapi_entry
            .session
            .chars()
            .all(|c| c == '-' || c.is_ascii_hexdigit()),
        "{:?}",
        mapi_entry.session
    );
    let ews_state = ews.state();
    let ews_entry = ews_state.journal.iter().last().unwrap();
    assert_eq!(ews_entry.backend, exmux_router::Backend::Ews);
    assert_eq!(ews_entry.session, "");
}

/// Returns (To, Cc) addresses of the one message in Sent Items, read from the store.
fn sent_recipients(handle: &EmulatorHandle) -> (Vec<String>, Vec<String>) {
    use exmux_emulator::store::{ListOptions, WellKnownFolder};
    let store = handle.store().lock().unwrap();
    let sent = store.well_known_folder(WellKnownFolder::SentItems).unwrap();
    let page = store.list_items(sent, ListOptions::default()).unwrap();
    assert_eq!(page.items.len(), 1, "one sent copy");
    let item = page.items[0];
    let addresses = |list: &[exmux_emulator::store::Mailbox]| {
        list.iter().map(|m| m.address.clone()).collect::<Vec<_>>()
    };
    (addresses(&item.props.to), addresses(&item.props.cc))
}

/// A send over MAPI/HTTP carries the MIME message's To and Cc as recipient rows
/// (RopModifyRecipients, MS-OXCMSG 2.2.3.5), so the sent copy has the recipients that the
/// same send over EWS gives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_keeps_recipients_over_both_backends() {
    let mime = b"From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>, carol@example.test\r\n\
Cc: Dan <dan@example.test>\r\nSubject: recipients\r\nMessage-ID: <recipients@example.test>\r\n\r\nHello.\r\n";
    let mut results = Vec::new();
    for routing in ["mapi", "ews"] {
        let handle = emulator().await;
        let (transport, _events) = connect(&handle, &preset(routing)).await;
        transport.send(mime).await.unwrap();
        results.push(sent_recipients(&handle));
    }
    let expected = (
        vec![
            "bob@example.test".to_owned(),
            "carol@example.test".to_owned(),
        ],
        vec!["dan@example.test".to_owned()],
    );
    assert_eq!(results[0], expected, "over MAPI/HTTP");
    assert_eq!(results[1], expected, "over EWS");
}

/// A send is journaled as the creation of its copy in Sent Items. The transport reads the
/// copy's id and change key back, so the next sync of Sent Items drops the copy as the
/// transport's own instead of delivering it as another client's message. A message
/// without a Message-ID gets one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_copy_is_own_change_over_both_backends() {
    let mime = b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: no id\r\n\r\nHello.\r\n";
    for routing in ["mapi", "ews", "hybrid"] {
        let handle = emulator().await;
        let (transport, mut events) = connect(&handle, &preset(routing)).await;
        let sent = transport.add_folder("sentitems").await.unwrap();
        transport.sync(sent).unwrap();
        transport.wait_idle().await;
        drain(&mut events);
        let before = transport.counters();

        transport.send(mime).await.unwrap();
        transport.sync(sent).unwrap();
        transport.wait_idle().await;

        let delivered: Vec<Event> = drain(&mut events)
            .into_iter()
            .filter(|event| {
                matches!(
                    event,
                    Event::ItemChanged { .. } | Event::ReadStateChanged { .. }
                )
            })
            .collect();
        assert!(delivered.is_empty(), "{routing}: {delivered:?}");
        let after = transport.counters();
        assert_eq!(after.own_dropped, before.own_dropped + 1, "{routing}");
        assert_eq!(after.remote_delivered, before.remote_delivered, "{routing}");
        assert_eq!(
            after.unknown_delivered, before.unknown_delivered,
            "{routing}"
        );

        let store = handle.store().lock().unwrap();
        let sent_fid = store
            .well_known_folder(exmux_emulator::store::WellKnownFolder::SentItems)
            .unwrap();
        let page = store
            .list_items(sent_fid, exmux_emulator::store::ListOptions::default())
            .unwrap();
        assert_eq!(page.items.len(), 1, "{routing}: one sent copy");
        if let Some(stored) = &page.items[0].mime {
            let text = String::from_utf8_lossy(stored);
            assert!(
                text.starts_with("Message-ID: <"),
                "{routing}: the send added a Message-ID: {text}"
            );
        }
    }
}

/// A deleted folder is forgotten with its items and journal entries, so no later sync
/// requests it from the server. A moved folder keeps syncing under its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_folder_forgotten_moved_folder_syncs() {
    for routing in ["mapi", "ews", "hybrid"] {
        let handle = emulator().await;
        let (transport, mut events) = connect(&handle, &preset(routing)).await;
        let root = transport.add_folder("msgfolderroot").await.unwrap();
        let scratch = transport.create_folder(root, "Scratch").await.unwrap();
        let projects = transport.create_folder(root, "Projects").await.unwrap();
        let archive = transport.create_folder(root, "Archive").await.unwrap();
        let item = transport.create(scratch, &message("doomed")).await.unwrap();
        transport.create(projects, &message("kept")).await.unwrap();
        for folder in [scratch, projects] {
            transport.sync(folder).unwrap();
        }
        transport.wait_idle().await;
        drain(&mut events);

        transport.delete_folder(scratch).await.unwrap();
        transport.move_folder(projects, archive).await.unwrap();
        transport
            .create(projects, &message("after move"))
            .await
            .unwrap();
        assert!(transport.sync(scratch).is_err(), "{routing}");
        transport.sync(projects).unwrap();
        transport.wait_idle().await;

        let state = transport.state();
        assert!(!state.folders.contains_key(&scratch), "{routing}");
        assert!(state.ids.get(item).is_none(), "{routing}");
        assert!(
            state.journal.iter().all(|entry| entry.folder != scratch),
            "{routing}"
        );
        let failed: Vec<Event> = drain(&mut events)
            .into_iter()
            .filter(|event| matches!(event, Event::SyncFailed { .. }))
            .collect();
        assert!(failed.is_empty(), "{routing}: {failed:?}");
    }
}

/// A creation over MAPI/HTTP goes through ICS import, whose checkpoint state becomes
/// the folder's sync state, so the next download does not report the creations at all:
/// nothing is delivered and nothing is dropped as the transport's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_checkpoint_keeps_creation_out() {
    let handle = emulator().await;
    let (transport, mut events) = connect(&handle, &preset("mapi")).await;
    let inbox = transport.add_folder("inbox").await.unwrap();
    transport.sync(inbox).unwrap();
    transport.wait_idle().await;
    drain(&mut events);
    let before = transport.counters();

    let first = transport.create(inbox, &message("first")).await.unwrap();
    let second = transport.create(inbox, &message("second")).await.unwrap();
    transport.sync(inbox).unwrap();
    transport.wait_idle().await;

    let after = transport.counters();
    assert_eq!(after.own_dropped, before.own_dropped, "{after:?}");
    assert_eq!(after.remote_delivered, before.remote_delivered, "{after:?}");
    assert_eq!(after.full_resyncs, 0, "{after:?}");
    let item_events: Vec<_> = drain(&mut events)
        .into_iter()
        .filter(|event| {
            matches!(
                event,
                Event::ItemChanged { .. }
                    | Event::ReadStateChanged { .. }
                    | Event::ItemDeleted { .. }
                    | Event::ChangeKeyLearned { .. }
            )
        })
        .collect();
    assert!(item_events.is_empty(), "{item_events:?}");
    assert_eq!(
        subjects_over_ews(&handle, "inbox").await,
        ["first", "second"]
    );
    assert_ne!(first, second);
}

/// A read-state update and a delete over MAPI/HTTP go through ICS import too, so the
/// next download from the checkpoint state reports neither of them: nothing is
/// delivered and nothing is dropped as the transport's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_checkpoint_keeps_read_and_delete_out() {
    let handle = emulator().await;
    let other = other_client(&handle);
    let logon = other.connect().await.unwrap();
    for text in ["read me", "delete me"] {
        other
            .create_message(logon.inbox(), subject(text), false)
            .await
            .unwrap();
    }
    let (transport, mut events) = connect(&handle, &preset("mapi")).await;
    let inbox = transport.add_folder("inbox").await.unwrap();
    transport.sync(inbox).unwrap();
    transport.wait_idle().await;
    let items: Vec<ItemKey> = drain(&mut events)
        .into_iter()
        .filter_map(|event| match event {
            Event::ItemChanged { item, .. } => Some(item),
            _ => None,
        })
        .collect();
    assert_eq!(items.len(), 2, "{items:?}");
    let before = transport.counters();

    transport.set_read(items[0], true).await.unwrap();
    transport.delete(items[1]).await.unwrap();
    transport.sync(inbox).unwrap();
    transport.wait_idle().await;

    let after = transport.counters();
    assert_eq!(after.own_dropped, before.own_dropped, "{after:?}");
    assert_eq!(after.remote_delivered, before.remote_delivered, "{after:?}");
    assert_eq!(after.full_resyncs, 0, "{after:?}");
    let item_events: Vec<_> = drain(&mut events)
        .into_iter()
        .filter(|event| {
            matches!(
                event,
                Event::ItemChanged { .. }
                    | Event::ReadStateChanged { .. }
                    | Event::ItemDeleted { .. }
                    | Event::ChangeKeyLearned { .. }
            )
        })
        .collect();
    assert!(item_events.is_empty(), "{item_events:?}");

    let store = handle.store().lock().unwrap();
    let inbox_fid = store
        .well_known_folder(exmux_emulator::store::WellKnownFolder::Inbox)
        .unwrap();
    let page = store
        .list_items(inbox_fid, exmux_emulator::store::ListOptions::default())
        .unwrap();
    let left: Vec<(&str, bool)> = page
        .items
        .iter()
        .map(|item| (item.props.subject.as_str(), item.props.read))
        .collect();
    assert_eq!(left, [("read me", true)]);
}

/// Syncs the inbox with a named routing of its own and returns the id of each message
/// as that routing's backend reports it.
async fn inbox_ids(handle: &EmulatorHandle, routing: &str) -> Vec<BackendItemId> {
    let (transport, mut events) = connect(handle, &preset(routing)).await;
    let inbox = transport.add_folder("inbox").await.unwrap();
    transport.sync(inbox).unwrap();
    transport.wait_idle().await;
    drain(&mut events)
        .into_iter()
        .filter_map(|event| match event {
            Event::ItemChanged { id, .. } => Some(id),
            _ => None,
        })
        .collect()
}

/// Syncs the inbox's one message with `routing` and marks it read over the other
/// backend. Returns the transport and the message's key.
async fn write_over_other_backend(handle: &EmulatorHandle, routing: &str) -> (Transport, ItemKey) {
    deliver_over_ews(handle, &String::from_utf8(message("bound")).unwrap()).await;
    let (transport, items) = inbox_items(handle, routing).await;
    let [item] = items[..] else {
        panic!("one inbox message expected, got {items:?}");
    };
    transport.set_read(item, true).await.unwrap();
    (transport, item)
}

/// An item synced over MAPI/HTTP and written over EWS: the EWS id the write built is
/// bound to it and carries the entry id of the message an EWS sync reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ews_write_binds_mapi_synced_item() {
    let handle = emulator().await;
    let routing = "preset = \"mapi\"\nupdate = \"ews\"";
    let (transport, item) = write_over_other_backend(&handle, routing).await;

    let Some(BackendItemId::Ews(bound)) = transport.backend_id(item, Backend::Ews) else {
        panic!("no EWS id bound to {item}");
    };
    assert_eq!(
        transport.item_key(&BackendItemId::Ews(bound.clone())),
        Some(item)
    );
    assert!(transport.backend_id(item, Backend::Mapi).is_some());

    let reported = inbox_ids(&handle, "ews").await;
    let [BackendItemId::Ews(reported)] = &reported[..] else {
        panic!("one EWS id expected, got {reported:?}");
    };
    let bound_entry = exmux_ews::ids::decode_ews_id(&bound).unwrap();
    let reported_entry = exmux_ews::ids::decode_ews_id(reported).unwrap();
    assert_eq!(bound_entry.to_bytes(), reported_entry.to_bytes());
    // RopLogon's MailboxGuid is in the little-endian GUID layout of MS-DTYP 2.3.4.2, the
    // layout the id builder reads, so the built id is the one EWS reports, text and all,
    // and an EWS sync finds the item under the same key.
    assert_eq!(&bound, reported);
    assert_eq!(
        transport.item_key(&BackendItemId::Ews(reported.clone())),
        Some(item)
    );
}

/// An item synced over EWS and written over MAPI/HTTP keeps one key: the MAPI ids
/// decoded from its ItemId are bound to it, and they are the ids a MAPI download
/// reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapi_write_binds_ews_synced_item() {
    let handle = emulator().await;
    let routing = "preset = \"ews\"\nupdate = \"mapi\"";
    let (transport, item) = write_over_other_backend(&handle, routing).await;

    let bound = transport.backend_id(item, Backend::Mapi);
    let reported = inbox_ids(&handle, "mapi").await;
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!(bound.as_ref(), reported.first());
    assert_eq!(transport.item_key(&reported[0]), Some(item));
    assert!(transport.backend_id(item, Backend::Ews).is_some());
}

/// A create and a send carry the message's attachments over both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_send_keep_attachments_over_both_backends() {
    let mime = b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: with file\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nSee the file.\r\n\
--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgc=\r\n--b1--\r\n";
    for routing in ["mapi", "ews"] {
        let handle = emulator().await;
        let (transport, _events) = connect(&handle, &preset(routing)).await;
        let inbox = transport.add_folder("inbox").await.unwrap();
        transport.create(inbox, mime).await.unwrap();
        transport.send(mime).await.unwrap();

        let store = handle.store().lock().unwrap();
        for folder in [
            exmux_emulator::store::WellKnownFolder::Inbox,
            exmux_emulator::store::WellKnownFolder::SentItems,
        ] {
            let fid = store.well_known_folder(folder).unwrap();
            let page = store
                .list_items(fid, exmux_emulator::store::ListOptions::default())
                .unwrap();
            let item = page
                .items
                .iter()
                .find(|item| item.props.subject == "with file")
                .unwrap_or_else(|| panic!("{routing}: no message in {folder:?}"));
            let attachments = &item.props.attachments;
            assert_eq!(attachments.len(), 1, "{routing} {folder:?}");
            assert_eq!(attachments[0].data, [0, 1, 2, 3, 4, 5, 6, 7], "{routing}");
            assert_eq!(
                attachments[0].file_name.as_deref(),
                Some("data.bin"),
                "{routing}"
            );
        }
    }
}
