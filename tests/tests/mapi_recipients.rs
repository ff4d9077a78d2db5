//! Message recipients over MAPI/HTTP against the emulator on loopback: created and sent
//! with RopModifyRecipients, stored as the mailbox's To, Cc and Bcc lists, and read back
//! from the rows of RopOpenMessage and RopReadRecipients.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use exmux_core::auth::Credentials;
use exmux_core::http::{HttpOptions, ProxySetting};
use exmux_core::{ManualClock, Secret};
use exmux_emulator::mapi::legacy_dn;
use exmux_emulator::server::{Emulator, EmulatorHandle, EmulatorOptions};
use exmux_emulator::store::{ListOptions, Mailbox, Mid, NewItem, NewItemContent, WellKnownFolder};
use exmux_mapihttp::ids::ObjectId;
use exmux_mapihttp::prop::{PropValue, TaggedValue, tags};
use exmux_mapihttp::session::{MapiSession, SessionConfig, SessionError, StructuredRecipient};

async fn emulator(clock: &ManualClock) -> EmulatorHandle {
    Emulator::start(EmulatorOptions {
        tls: false,
        clock: Arc::new(clock.clone()),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap()
}

fn session(emulator: &EmulatorHandle, clock: &ManualClock) -> MapiSession {
    let mut config = SessionConfig::new(
        emulator.mapi_emsmdb_url(),
        legacy_dn("user1@example.test"),
        Credentials::Basic {
            username: "user1@example.test".to_owned(),
            password: Secret::new("password1"),
        },
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

fn recipient(kind: u32, name: &str, address: &str) -> StructuredRecipient {
    StructuredRecipient {
        recipient_type: kind,
        name: Some(name.to_owned()),
        address: address.to_owned(),
    }
}

fn mailbox(name: &str, address: &str) -> Mailbox {
    Mailbox {
        name: name.to_owned(),
        address: address.to_owned(),
    }
}

fn subject(text: &str) -> Vec<TaggedValue> {
    vec![TaggedValue {
        tag: tags::PID_TAG_SUBJECT,
        value: PropValue::Unicode(text.to_owned()),
    }]
}

#[tokio::test]
async fn create_stores_to_cc_bcc() {
    let clock = ManualClock::new(1_800_000_000_000);
    let emulator = emulator(&clock).await;
    let session = session(&emulator, &clock);
    let info = session.connect().await.unwrap();
    let list = vec![
        recipient(1, "Ann Example", "ann@example.test"),
        recipient(2, "Bob Example", "bob@example.test"),
        recipient(3, "Cy Example", "cy@example.test"),
        recipient(1, "Dee Example", "dee@example.test"),
    ];

    let (mid, _) = session
        .create_message_with_recipients(info.inbox(), subject("with recipients"), &list, false)
        .await
        .unwrap();

    {
        let store = emulator.store().lock().unwrap();
        let item = store.item(Mid::from_u64(mid.0).unwrap()).unwrap();
        assert_eq!(
            item.props.to,
            vec![
                mailbox("Ann Example", "ann@example.test"),
                mailbox("Dee Example", "dee@example.test")
            ]
        );
        assert_eq!(
            item.props.cc,
            vec![mailbox("Bob Example", "bob@example.test")]
        );
        assert_eq!(
            item.props.bcc,
            vec![mailbox("Cy Example", "cy@example.test")]
        );
    }

    // Read back in row order: To first, then Cc, then Bcc.
    let fetched = session.fetch_message(info.inbox(), mid).await.unwrap();
    let expected = vec![
        list[0].clone(),
        list[3].clone(),
        list[1].clone(),
        list[2].clone(),
    ];
    assert_eq!(fetched.recipients, expected);
}

#[tokio::test]
async fn fetch_reads_past_open_message_rows() {
    let clock = ManualClock::new(1_800_000_000_000);
    let emulator = emulator(&clock).await;
    let session = session(&emulator, &clock);
    let info = session.connect().await.unwrap();
    // More recipients than one RopOpenMessage returns, so RopReadRecipients runs.
    let list: Vec<StructuredRecipient> = (0..40)
        .map(|i| {
            recipient(
                1 + i % 2,
                &format!("Person {i}"),
                &format!("p{i}@example.test"),
            )
        })
        .collect();

    let (mid, _) = session
        .create_message_with_recipients(info.inbox(), subject("many recipients"), &list, false)
        .await
        .unwrap();
    let fetched = session.fetch_message(info.inbox(), mid).await.unwrap();

    assert_eq!(fetched.recipients.len(), list.len());
    let to: Vec<&str> = fetched
        .recipients
        .iter()
        .filter(|r| r.recipient_type == 1)
        .map(|r| r.address.as_str())
        .collect();
    let expected_to: Vec<String> = (0..40)
        .step_by(2)
        .map(|i| format!("p{i}@example.test"))
        .collect();
    assert_eq!(to, expected_to);
}

#[tokio::test]
async fn fetch_reads_mime_recipients() {
    let clock = ManualClock::new(1_800_000_000_000);
    let emulator = emulator(&clock).await;
    let mid = {
        let mut store = emulator.store().lock().unwrap();
        let delivery = store.open_session("delivery");
        let inbox = store.well_known_folder(WellKnownFolder::Inbox).unwrap();
        let mime = "From: Sender <sender@example.test>\r\nTo: User One <user1@example.test>\r\nCc: Other <other@example.test>\r\nSubject: delivered\r\n\r\nbody\r\n";
        store
            .create_item(
                delivery,
                inbox,
                NewItem {
                    content: NewItemContent::Mime(mime.as_bytes().to_vec()),
                    ..NewItem::default()
                },
            )
            .unwrap()
            .id
    };
    let session = session(&emulator, &clock);
    let info = session.connect().await.unwrap();

    let fetched = session
        .fetch_message(info.inbox(), ObjectId(mid.to_u64()))
        .await
        .unwrap();

    assert_eq!(
        fetched.recipients,
        vec![
            recipient(1, "User One", "user1@example.test"),
            recipient(2, "Other", "other@example.test"),
        ]
    );
}

#[tokio::test]
async fn send_keeps_recipients_in_sent_items() {
    let clock = ManualClock::new(1_800_000_000_000);
    let emulator = emulator(&clock).await;
    let session = session(&emulator, &clock);
    let info = session.connect().await.unwrap();
    let list = vec![recipient(1, "Ann Example", "ann@example.test")];

    session
        .create_message_with_recipients(info.outbox(), subject("sent"), &list, true)
        .await
        .unwrap();

    let store = emulator.store().lock().unwrap();
    let sent = store.well_known_folder(WellKnownFolder::SentItems).unwrap();
    let page = store.list_items(sent, ListOptions::default()).unwrap();
    let copy = page
        .items
        .iter()
        .find(|item| item.props.subject == "sent")
        .expect("the sent message in Sent Items");
    assert_eq!(
        copy.props.to,
        vec![mailbox("Ann Example", "ann@example.test")]
    );
}

#[tokio::test]
async fn unknown_recipient_type_rejected() {
    let clock = ManualClock::new(1_800_000_000_000);
    let emulator = emulator(&clock).await;
    let session = session(&emulator, &clock);
    let info = session.connect().await.unwrap();

    let error = session
        .create_message_with_recipients(
            info.inbox(),
            subject("bad type"),
            &[recipient(9, "X", "x@example.test")],
            false,
        )
        .await
        .unwrap_err();

    assert!(matches!(error, SessionError::Usage { .. }), "{error}");
}
