//! Message properties too large for one ROP, over MAPI/HTTP against the emulator on
//! loopback: written through RopOpenStream, RopWriteStream and RopCommitStream, and
//! read back through RopReadStream after the server returns them as ecMAPIOOM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use exmux_core::auth::Credentials;
use exmux_core::http::{HttpOptions, ProxySetting};
use exmux_core::{ManualClock, Secret};
use exmux_emulator::mapi::legacy_dn;
use exmux_emulator::server::{Emulator, EmulatorHandle, EmulatorOptions};
use exmux_emulator::store::{Mid, NewItem, NewItemContent, WellKnownFolder};
use exmux_mapihttp::ids::ObjectId;
use exmux_mapihttp::prop::{PropValue, TaggedValue, tags};
use exmux_mapihttp::session::{MapiSession, SessionConfig};

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

/// Builds a body of `chars` characters, not all ASCII, with a line number in each line so a
/// lost or repeated chunk changes it.
fn large_body(chars: usize) -> String {
    let mut body = String::new();
    let mut line = 0;
    while body.chars().count() < chars {
        body.push_str(&format!("line {line:05}: grüße aus dem Büro\r\n"));
        line += 1;
    }
    body.chars().take(chars).collect()
}

fn stored_body(emulator: &EmulatorHandle, mid: ObjectId) -> String {
    let store = emulator.store().lock().unwrap();
    let item = store.item(Mid::from_u64(mid.0).unwrap()).unwrap();
    item.props
        .body
        .as_ref()
        .map(|body| body.content.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn large_body_written_through_stream() {
    let clock = ManualClock::new(1_800_000_000_000);
    let emulator = emulator(&clock).await;
    let session = session(&emulator, &clock);
    let info = session.connect().await.unwrap();
    let body = large_body(100_000);

    let (mid, _) = session
        .create_message(
            info.inbox(),
            vec![
                TaggedValue {
                    tag: tags::PID_TAG_SUBJECT,
                    value: PropValue::Unicode("large".to_owned()),
                },
                TaggedValue {
                    tag: tags::PID_TAG_BODY,
                    value: PropValue::Unicode(body.clone()),
                },
            ],
            false,
        )
        .await
        .unwrap();

    assert_eq!(stored_body(&emulator, mid), body);
}

#[tokio::test]
async fn large_body_read_through_stream() {
    let clock = ManualClock::new(1_800_000_000_000);
    let emulator = emulator(&clock).await;
    let body = large_body(60_000);
    let mid = {
        let mut store = emulator.store().lock().unwrap();
        let delivery = store.open_session("delivery");
        let inbox = store.well_known_folder(WellKnownFolder::Inbox).unwrap();
        let mime = format!(
            "From: Sender <sender@example.test>\r\nTo: User One <user1@example.test>\r\nSubject: large\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
        );
        let created = store
            .create_item(
                delivery,
                inbox,
                NewItem {
                    content: NewItemContent::Mime(mime.into_bytes()),
                    ..NewItem::default()
                },
            )
            .unwrap();
        ObjectId(created.id.to_u64())
    };
    let stored = stored_body(&emulator, mid);
    assert!(
        stored.len() > 0x4000,
        "the stored body is only {} bytes",
        stored.len()
    );
    let session = session(&emulator, &clock);
    let info = session.connect().await.unwrap();

    let values = session
        .get_properties(info.inbox(), mid, &[tags::PID_TAG_BODY])
        .await
        .unwrap();
    assert_eq!(values[0].1, Some(PropValue::Unicode(stored.clone())));

    let fetched = session.fetch_message(info.inbox(), mid).await.unwrap();
    assert_eq!(
        fetched.get(tags::PID_TAG_BODY),
        Some(&PropValue::Unicode(stored))
    );
}

#[tokio::test]
async fn small_body_round_trip() {
    let clock = ManualClock::new(1_800_000_000_000);
    let emulator = emulator(&clock).await;
    let session = session(&emulator, &clock);
    let info = session.connect().await.unwrap();
    let body = large_body(2_000);

    let (mid, _) = session
        .create_message(
            info.inbox(),
            vec![TaggedValue {
                tag: tags::PID_TAG_BODY,
                value: PropValue::Unicode(body.clone()),
            }],
            false,
        )
        .await
        .unwrap();
    let values = session
        .get_properties(info.inbox(), mid, &[tags::PID_TAG_BODY])
        .await
        .unwrap();

    assert_eq!(values[0].1, Some(PropValue::Unicode(body)));
}
