//! Attachments end to end against the emulator on loopback, across protocols. A message
//! created over EWS from MIME is fetched over MAPI/HTTP with its attachments. A message
//! created over MAPI/HTTP from MIME is served by EWS GetItem with them in its
//! MimeContent, and is fetched back over MAPI/HTTP. One attachment is small, and one of
//! 100 KiB goes through property streams both ways.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use exmux_core::auth::Credentials;
use exmux_core::http::{HttpOptions, ProxySetting};
use exmux_core::{ManualClock, Secret};
use exmux_emulator::mapi::legacy_dn;
use exmux_emulator::server::{Emulator, EmulatorHandle, EmulatorOptions};
use exmux_emulator::store::{ListOptions, WellKnownFolder};
use exmux_ews::client::EwsClient;
use exmux_ews::ops::Shape;
use exmux_ews::ops::items::{CreateItem, GetItem};
use exmux_ews::ops::sync::FindItem;
use exmux_ews::types::{
    BaseShape, DistinguishedFolder, FolderRef, Item, ItemKind, MessageDisposition, Traversal,
};
use exmux_mapihttp::ids::{Guid, ObjectId};
use exmux_mapihttp::prop::{PropValue, tags};
use exmux_mapihttp::session::{
    MapiSession, SessionConfig, StructuredAttachment, SyncState, XidSource, mime,
};

const SMALL: &[u8] = b"meeting notes, three lines\r\nsecond\r\nthird\r\n";
const EXMUX_GUID: Guid = Guid([0xE1; 16]);

/// Returns 100 KiB whose bytes depend on their offset, so a lost, repeated or reordered
/// stream chunk changes them.
fn large() -> Vec<u8> {
    (0..100 * 1024u32)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}

/// Builds MIME with a text body, a small text attachment and the large binary one.
fn mime_with_attachments(subject: &str) -> Vec<u8> {
    let encode = |bytes: &[u8]| {
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        let lines: Vec<&str> = text
            .as_bytes()
            .chunks(76)
            .map(|line| std::str::from_utf8(line).unwrap())
            .collect();
        lines.join("\r\n")
    };
    format!(
        "From: Alice <alice@example.test>\r\n\
         To: User One <user1@example.test>\r\n\
         Subject: {subject}\r\n\
         Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
         \r\n\
         --b1\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         See both attachments.\r\n\
         --b1\r\n\
         Content-Type: text/plain; name=\"notes.txt\"\r\n\
         Content-Disposition: attachment; filename=\"notes.txt\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n\
         {small}\r\n\
         --b1\r\n\
         Content-Type: application/octet-stream; name=\"data.bin\"\r\n\
         Content-Disposition: attachment; filename=\"data.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n\
         {large}\r\n\
         --b1--\r\n",
        small = encode(SMALL),
        large = encode(&large()),
    )
    .into_bytes()
}

/// Checks the two attachments that [`mime_with_attachments`] writes.
fn assert_both_attachments(attachments: &[StructuredAttachment]) {
    assert_eq!(attachments.len(), 2);
    assert_eq!(attachments[0].file_name.as_deref(), Some("notes.txt"));
    assert_eq!(attachments[0].mime_type.as_deref(), Some("text/plain"));
    assert_eq!(attachments[0].data, SMALL);
    assert_eq!(attachments[1].file_name.as_deref(), Some("data.bin"));
    assert_eq!(
        attachments[1].mime_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(attachments[1].data.len(), large().len());
    assert_eq!(attachments[1].data, large());
}

async fn emulator(clock: &ManualClock) -> EmulatorHandle {
    Emulator::start(EmulatorOptions {
        tls: false,
        clock: Arc::new(clock.clone()),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap()
}

fn credentials() -> Credentials {
    Credentials::Basic {
        username: "user1@example.test".to_owned(),
        password: Secret::new("password1"),
    }
}

fn session(emulator: &EmulatorHandle, clock: &ManualClock) -> MapiSession {
    let mut config = SessionConfig::new(
        emulator.mapi_emsmdb_url(),
        legacy_dn("user1@example.test"),
        credentials(),
        HttpOptions {
            proxy: ProxySetting::Disabled,
            ..HttpOptions::default()
        }
        .build_client()
        .unwrap(),
    );
    config.clock = Arc::new(clock.clone());
    config.retry_delay = Duration::from_millis(5);
    MapiSession::new(config)
}

fn ews_client(emulator: &EmulatorHandle, clock: &ManualClock) -> EwsClient {
    EwsClient::builder(emulator.ews_url(), "user1@example.test", credentials())
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap()
}

/// Returns the message id of the Inbox item with `subject`, read from the store.
fn inbox_mid(emulator: &EmulatorHandle, subject: &str) -> ObjectId {
    let store = emulator.store().lock().unwrap();
    let inbox = store.well_known_folder(WellKnownFolder::Inbox).unwrap();
    let page = store.list_items(inbox, ListOptions::default()).unwrap();
    let item = page
        .items
        .iter()
        .find(|item| item.props.subject == subject)
        .expect("the item is in the Inbox");
    ObjectId(item.mid.to_u64())
}

/// Returns the MIME that EWS GetItem serves for the Inbox item with `subject`.
async fn ews_mime(client: &EwsClient, subject: &str) -> Vec<u8> {
    let items = client
        .find_items_all(&FindItem {
            traversal: Traversal::Shallow,
            shape: Shape::base(BaseShape::Default),
            page: None,
            parents: vec![FolderRef::distinguished(DistinguishedFolder::Inbox)],
        })
        .await
        .unwrap();
    let id = items
        .iter()
        .find(|item| item.subject.as_deref() == Some(subject))
        .and_then(|item| item.item_id.clone())
        .expect("EWS lists the item");
    let mut shape = Shape::base(BaseShape::IdOnly);
    shape.include_mime_content = true;
    let got = client
        .call(&GetItem {
            shape,
            item_ids: vec![id],
        })
        .await
        .unwrap()
        .into_single("GetItem")
        .unwrap();
    let encoded = got[0].mime_content.as_ref().expect("MimeContent returned");
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .unwrap()
}

#[tokio::test]
async fn ews_created_attachments_fetched_over_mapi() {
    let clock = ManualClock::new(1_800_000_000_000);
    let emulator = emulator(&clock).await;
    let client = ews_client(&emulator, &clock);
    let mut item = Item::new(ItemKind::Message);
    item.mime_content = Some(
        base64::engine::general_purpose::STANDARD.encode(mime_with_attachments("created over ews")),
    );
    client
        .call(&CreateItem {
            disposition: Some(MessageDisposition::SaveOnly),
            saved_folder: Some(FolderRef::distinguished(DistinguishedFolder::Inbox)),
            items: vec![item],
        })
        .await
        .unwrap()
        .into_single("CreateItem")
        .unwrap();

    let session = session(&emulator, &clock);
    let info = session.connect().await.unwrap();
    let mid = inbox_mid(&emulator, "created over ews");
    let message = session.fetch_message(info.inbox(), mid).await.unwrap();

    assert_eq!(message.subject.as_deref(), Some("created over ews"));
    assert_eq!(
        message.get(tags::PID_TAG_HAS_ATTACHMENTS),
        Some(&PropValue::Bool(true))
    );
    assert_both_attachments(&message.attachments);
}

#[tokio::test]
async fn mapi_created_attachments_served_over_ews() {
    let clock = ManualClock::new(1_800_000_000_000);
    let emulator = emulator(&clock).await;
    let session = session(&emulator, &clock);
    let info = session.connect().await.unwrap();
    session
        .create_message_from_mime(
            info.inbox(),
            &mime_with_attachments("created over mapi"),
            false,
        )
        .await
        .unwrap();

    let client = ews_client(&emulator, &clock);
    let served = ews_mime(&client, "created over mapi").await;
    let (parsed, _) = mime::parse(&served).unwrap();
    assert_eq!(parsed.subject.as_deref(), Some("created over mapi"));
    assert_both_attachments(&parsed.attachments);
}

#[tokio::test]
async fn mapi_created_attachments_fetched_over_mapi() {
    let clock = ManualClock::new(1_800_000_000_000);
    let emulator = emulator(&clock).await;
    let session = session(&emulator, &clock);
    let info = session.connect().await.unwrap();
    let (mid, change_key) = session
        .create_message_from_mime(
            info.inbox(),
            &mime_with_attachments("mapi round trip"),
            false,
        )
        .await
        .unwrap();
    assert!(change_key.is_some(), "the change key is read back");

    let message = session.fetch_message(info.inbox(), mid).await.unwrap();
    assert_both_attachments(&message.attachments);
    assert_eq!(
        message.get(tags::PID_TAG_MESSAGE_FLAGS),
        Some(&PropValue::I32(0x10)),
        "mfHasAttach is set and nothing else"
    );

    // Composing MIME from the fetched message keeps both attachments.
    let composed = mime::compose(&message).unwrap();
    let (back, _) = mime::parse(&composed).unwrap();
    assert_both_attachments(&back.attachments);
}

#[tokio::test]
async fn ics_imported_attachments_fetched_over_mapi() {
    let clock = ManualClock::new(1_800_000_000_000);
    let emulator = emulator(&clock).await;
    let session = session(&emulator, &clock);
    let info = session.connect().await.unwrap();
    let xid = XidSource::new(EXMUX_GUID, 7).next();
    let imported = session
        .import_new_message_from_mime(
            info.inbox(),
            &SyncState::default(),
            xid,
            &mime_with_attachments("imported with attachments"),
            134_000_000_000_000_000,
        )
        .await
        .unwrap();
    let mid = imported.message_id.expect("the new message id");

    let message = session.fetch_message(info.inbox(), mid).await.unwrap();
    assert_eq!(message.recipients.len(), 1, "the To recipient is imported");
    assert_eq!(message.recipients[0].address, "user1@example.test");
    assert_both_attachments(&message.attachments);
}

#[tokio::test]
async fn ics_download_carries_attachments() {
    let clock = ManualClock::new(1_800_000_000_000);
    let emulator = emulator(&clock).await;
    let session = session(&emulator, &clock);
    let info = session.connect().await.unwrap();
    let (mid, _) = session
        .create_message_from_mime(
            info.inbox(),
            &mime_with_attachments("downloaded with attachments"),
            false,
        )
        .await
        .unwrap();

    let sync = session
        .sync_contents(info.inbox(), &SyncState::default())
        .await
        .unwrap();
    let change = sync
        .changes
        .iter()
        .find(|change| change.message_id == Some(mid))
        .expect("the download has the message");
    let message = exmux_mapihttp::session::StructuredMessage::from_change(&change.raw);
    assert_both_attachments(&message.attachments);
}
