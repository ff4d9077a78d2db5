#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Streaming notifications end to end: the client's subscription driver against the
//! emulator's GetStreamingEvents, through dropped streams, expired subscriptions and
//! the framing quirks of real servers.

use std::sync::Arc;
use std::time::Duration;

use exmux_core::auth::{BoxFuture, Credentials};
use exmux_core::{ManualClock, Secret};
use exmux_emulator::ews::{EwsFrontEnd, Quirk};
use exmux_emulator::server::{EWS_PATH, Emulator, EmulatorHandle, EmulatorOptions};
use exmux_emulator::store::{NewItem, NewItemContent, WellKnownFolder};
use exmux_ews::client::notifications::{NotificationEvent, SubscriptionDriver};
use exmux_ews::client::{EwsClient, Sleeper};
use exmux_ews::ops::Shape;
use exmux_ews::ops::notify::EventKind;
use exmux_ews::ops::sync::{SyncChange, SyncFolderItems};
use exmux_ews::subscription::{CatchUpCause, FolderScope, SubscriptionMode};
use exmux_ews::types::{BaseShape, DistinguishedFolder, EventType, FolderRef, PropertyPath};

#[derive(Debug, Clone)]
struct ClockSleeper(ManualClock);

impl Sleeper for ClockSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        self.0.advance(duration);
        Box::pin(async {})
    }
}

async fn setup() -> (EmulatorHandle, EwsFrontEnd, EwsClient) {
    let clock = ManualClock::default();
    let emulator = Emulator::start(EmulatorOptions {
        tls: false,
        clock: Arc::new(clock.clone()),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    let front_end = EwsFrontEnd::install(&emulator);
    let client = EwsClient::builder(
        emulator.ews_url(),
        "user1@example.test",
        Credentials::Basic {
            username: "user1@example.test".to_owned(),
            password: Secret::new("password1"),
        },
    )
    .clock(Arc::new(clock.clone()))
    .sleeper(Arc::new(ClockSleeper(clock)))
    .build()
    .unwrap();
    (emulator, front_end, client)
}

fn driver(client: &EwsClient) -> SubscriptionDriver {
    SubscriptionDriver::new(
        client.clone(),
        FolderScope::Folders(vec!["inbox".to_owned()]),
        SubscriptionMode::streaming(),
        vec![EventType::Created],
    )
}

/// Delivers a message into the inbox from another store session, as a MAPI client or
/// mail delivery would.
fn deliver(emulator: &EmulatorHandle, subject: &str) {
    let mut store = emulator.store().lock().unwrap();
    let session = store.open_session("delivery");
    let inbox = store.well_known_folder(WellKnownFolder::Inbox).unwrap();
    let mime = format!("Subject: {subject}\r\nFrom: a@example.test\r\n\r\nbody\r\n");
    store
        .create_item(
            session,
            inbox,
            NewItem {
                content: NewItemContent::Mime(mime.into_bytes()),
                ..NewItem::default()
            },
        )
        .unwrap();
}

async fn next(driver: &mut SubscriptionDriver) -> NotificationEvent {
    tokio::time::timeout(Duration::from_secs(10), driver.next())
        .await
        .expect("the driver reported nothing for 10 s")
        .unwrap()
}

/// Reads reports until `count` CreatedEvents arrived, returning them and the catch-up
/// causes seen on the way.
async fn created_events(
    driver: &mut SubscriptionDriver,
    count: usize,
) -> (Vec<String>, Vec<CatchUpCause>) {
    let mut ids = Vec::new();
    let mut causes = Vec::new();
    while ids.len() < count {
        match next(driver).await {
            NotificationEvent::Events(events) => ids.extend(
                events
                    .iter()
                    .filter(|event| event.kind == EventKind::Created)
                    .map(|event| event.item_id.clone().unwrap().id),
            ),
            NotificationEvent::CatchUp { cause, .. } => causes.push(cause),
            other => panic!("unexpected report {other:?}"),
        }
    }
    (ids, causes)
}

async fn inbox_subjects(client: &EwsClient) -> Vec<String> {
    let mut shape = Shape::base(BaseShape::IdOnly);
    shape.additional = vec![PropertyPath::field("item:Subject")];
    let mut subjects = Vec::new();
    client
        .sync_folder_items(
            &SyncFolderItems {
                shape,
                folder: FolderRef::distinguished(DistinguishedFolder::Inbox),
                sync_state: None,
                ignore: Vec::new(),
                max_changes: 100,
            },
            |page| {
                for change in page.changes {
                    if let SyncChange::Create(item) = change {
                        subjects.extend(item.subject);
                    }
                }
            },
        )
        .await
        .unwrap();
    subjects
}

#[tokio::test]
async fn dropped_stream_resumes_without_losing_events() {
    let (emulator, _front_end, client) = setup().await;
    let mut driver = driver(&client);
    let first = next(&mut driver).await;
    assert!(
        matches!(
            first,
            NotificationEvent::CatchUp {
                cause: CatchUpCause::Subscribed,
                ..
            }
        ),
        "{first:?}"
    );

    // The first stream is cut right after its first chunk.
    emulator.faults().cut_streams(EWS_PATH, 1, 1);
    deliver(&emulator, "before the drop");
    let (before, _) = created_events(&mut driver, 1).await;

    deliver(&emulator, "after the drop");
    let (after, causes) = created_events(&mut driver, 1).await;
    assert!(
        causes.contains(&CatchUpCause::ConnectionDropped),
        "the drop asks for a catch-up sync: {causes:?}"
    );
    assert_ne!(before, after);
    assert_eq!(
        emulator
            .faults()
            .fired(exmux_emulator::server::FaultKind::CutStream),
        1
    );

    // The catch-up sync returns both messages whatever the events reported.
    assert_eq!(
        inbox_subjects(&client).await,
        ["before the drop", "after the drop"]
    );
}

#[tokio::test]
async fn expired_subscription_is_replaced() {
    for held_open in [false, true] {
        expired_subscription_case(held_open).await;
    }
}

/// Expires the driver's subscription. Without `held_open` it dies while its stream is
/// open. With `held_open` it dies before the first stream, and the server keeps that
/// stream open after its Closed status, which the test's clock never ends.
async fn expired_subscription_case(held_open: bool) {
    let (emulator, front_end, client) = setup().await;
    let mut driver = driver(&client);
    next(&mut driver).await;
    if held_open {
        front_end.enable(Quirk::DeadStreamHeldOpen);
    } else {
        deliver(&emulator, "first");
        created_events(&mut driver, 1).await;
    }

    // The driver's subscription is the store's first one.
    emulator
        .store()
        .lock()
        .unwrap()
        .expire_subscription(exmux_emulator::store::SubscriptionId(1));

    let mut causes = Vec::new();
    while !causes
        .iter()
        .any(|cause| matches!(cause, CatchUpCause::SubscriptionError(_)))
    {
        match next(&mut driver).await {
            NotificationEvent::CatchUp { cause, .. } => causes.push(cause),
            other => panic!("unexpected report {other:?}"),
        }
    }

    // The new subscription delivers what happens after it.
    deliver(&emulator, "second");
    let (ids, _) = created_events(&mut driver, 1).await;
    assert_eq!(ids.len(), 1);
}

#[tokio::test]
async fn framing_quirks_deliver_every_event() {
    for quirk in [Quirk::SplitStreamEnvelopes, Quirk::CoalesceStreamEnvelopes] {
        let (emulator, front_end, client) = setup().await;
        front_end.enable(quirk);
        front_end.enable(Quirk::MessagesNamespaceNotification);
        let mut driver = driver(&client);
        next(&mut driver).await;
        deliver(&emulator, "one");
        deliver(&emulator, "two");
        deliver(&emulator, "three");
        let (ids, _) = created_events(&mut driver, 3).await;
        assert_eq!(ids.len(), 3, "{quirk:?}");
    }
}
