//! The streaming ICS contents download against the emulator: cut across many
//! RopFastTransferSourceGetBuffer calls by a small buffer size, it delivers the same
//! changes, deletions, read-state changes and final state as the collecting download.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use exmux_core::auth::Credentials;
use exmux_core::http::{HttpOptions, ProxySetting};
use exmux_core::{ManualClock, Secret};
use exmux_emulator::mapi::{MapiFrontEnd, MapiOptions, legacy_dn};
use exmux_emulator::server::{Emulator, EmulatorHandle, EmulatorOptions};
use exmux_emulator::store::{Mid, NewItem, NewItemContent, WellKnownFolder};
use exmux_mapihttp::ids::ObjectId;
use exmux_mapihttp::session::{ContentsSync, MapiSession, SessionConfig, StreamOptions, SyncState};

/// Small enough that one message's change spans several GetBuffer responses.
const SMALL_BUFFER: u16 = 96;

const MESSAGES: usize = 30;

async fn start() -> (EmulatorHandle, Arc<MapiFrontEnd>, ManualClock) {
    let clock = ManualClock::new(1_800_000_000_000);
    let emulator = Emulator::start(EmulatorOptions {
        tls: false,
        clock: Arc::new(clock.clone()),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    let front = MapiFrontEnd::mount(&emulator, MapiOptions::default());
    (emulator, front, clock)
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

fn deliver(emulator: &EmulatorHandle, count: usize) -> Vec<Mid> {
    let mut store = emulator.store().lock().unwrap();
    let session = store.open_session("delivery");
    let inbox = store.well_known_folder(WellKnownFolder::Inbox).unwrap();
    (0..count)
        .map(|n| {
            let mime = format!(
                "From: Sender <sender@example.test>\r\nTo: User One <user1@example.test>\r\nSubject: message {n}\r\nDate: Fri, 04 Dec 2026 12:00:00 +0000\r\n\r\nBody of message {n}, long enough to cross a buffer or two.\r\n"
            );
            store
                .create_item(
                    session,
                    inbox,
                    NewItem {
                        content: NewItemContent::Mime(mime.into_bytes()),
                        new_mail: true,
                        ..NewItem::default()
                    },
                )
                .unwrap()
                .id
        })
        .collect()
}

/// Runs the streaming download with a small buffer and joins its parts, returning the
/// joined result and the number of parts.
async fn streamed(
    session: &MapiSession,
    folder: ObjectId,
    state: &SyncState,
) -> (ContentsSync, usize) {
    let mut joined = ContentsSync {
        changes: Vec::new(),
        deleted: Vec::new(),
        no_longer_in_scope: Vec::new(),
        read: Vec::new(),
        unread: Vec::new(),
        state: state.clone(),
    };
    let mut parts = 0;
    let final_state = session
        .sync_contents_streaming(
            folder,
            state,
            StreamOptions::with_buffer_size(SMALL_BUFFER),
            |part| {
                parts += 1;
                assert_eq!(&part.state, state, "a part carries the input state");
                joined.changes.extend(part.changes);
                joined.deleted.extend(part.deleted);
                joined.no_longer_in_scope.extend(part.no_longer_in_scope);
                joined.read.extend(part.read);
                joined.unread.extend(part.unread);
                Ok(())
            },
        )
        .await
        .unwrap();
    joined.state = final_state;
    (joined, parts)
}

#[tokio::test]
async fn streaming_matches_collecting_download() {
    let (emulator, _front, clock) = start().await;
    let mids = deliver(&emulator, MESSAGES);
    let session = session(&emulator, &clock);
    let info = session.connect().await.unwrap();
    let inbox = info.inbox();

    let collected = session
        .sync_contents(inbox, &SyncState::default())
        .await
        .unwrap();
    let (stream, parts) = streamed(&session, inbox, &SyncState::default()).await;
    assert_eq!(collected.changes.len(), MESSAGES);
    assert!(
        parts > MESSAGES,
        "only {parts} parts for {MESSAGES} messages"
    );
    assert_eq!(stream.changes, collected.changes);
    assert_eq!(stream.deleted, collected.deleted);
    assert_eq!(stream.read, collected.read);
    assert_eq!(stream.state, collected.state);

    {
        let mut store = emulator.store().lock().unwrap();
        let other = store.open_session("another client");
        for mid in &mids[..4] {
            store.delete_item(other, *mid).unwrap();
        }
        for mid in &mids[4..9] {
            store.set_read(other, *mid, true).unwrap();
        }
    }

    let later = session
        .sync_contents(inbox, &collected.state)
        .await
        .unwrap();
    let (later_stream, _) = streamed(&session, inbox, &collected.state).await;
    let deleted: Vec<ObjectId> = mids[..4].iter().map(|m| ObjectId(m.to_u64())).collect();
    for mid in &deleted {
        assert!(
            later.deleted.contains(mid) || later.no_longer_in_scope.contains(mid),
            "{mid:?} missing from {later:?}"
        );
    }
    for mid in &mids[4..9] {
        let mid = ObjectId(mid.to_u64());
        assert!(
            later.read.contains(&mid) || later.changes.iter().any(|c| c.message_id == Some(mid)),
            "{mid:?} marked read but not reported in {later:?}"
        );
    }
    assert_eq!(later_stream.changes, later.changes);
    assert_eq!(later_stream.deleted, later.deleted);
    assert_eq!(later_stream.no_longer_in_scope, later.no_longer_in_scope);
    assert_eq!(later_stream.read, later.read);
    assert_eq!(later_stream.unread, later.unread);
    assert_eq!(later_stream.state, later.state);
}

#[tokio::test]
async fn streaming_stops_on_callback_error() {
    let (emulator, _front, clock) = start().await;
    deliver(&emulator, 5);
    let session = session(&emulator, &clock);
    let info = session.connect().await.unwrap();

    let mut calls = 0;
    let result = session
        .sync_contents_streaming(
            info.inbox(),
            &SyncState::default(),
            StreamOptions::with_buffer_size(SMALL_BUFFER),
            |_| {
                calls += 1;
                Err(exmux_mapihttp::session::SessionError::MissingResponse {
                    operation: "test",
                    rop: "callback",
                })
            },
        )
        .await;
    assert!(result.is_err());
    assert_eq!(calls, 1);
}
