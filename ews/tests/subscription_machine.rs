#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The subscription state machine, driven by a `ManualClock`: every way of losing a
//! subscription ends in a catch-up sync of the subscribed folders.

use std::time::Duration;

use exmux_core::{Clock, ManualClock};
use exmux_ews::subscription::{
    Action, CatchUpCause, ConnectionStatus, ConnectionTimeout, FolderScope, PullTimeout, State,
    StreamMessage, SubscriptionConfigError, SubscriptionMachine, SubscriptionMode,
};

const SUB: &str = "HwBtYngwMS5leGFtcGxlLnRlc3QQAAAAc3ViLTAwMDEtcGxhY2Vob2xkZXI=";

fn folders() -> FolderScope {
    FolderScope::Folders(vec!["inbox".into(), "AAEuAGV4L2ZvbGRlci90YXNrcw==".into()])
}

fn streaming() -> SubscriptionMode {
    SubscriptionMode::Streaming {
        connection_timeout: ConnectionTimeout::from_minutes(30).unwrap(),
        heartbeat_timeout: Duration::from_secs(90),
    }
}

/// Starts a streaming machine and brings it to an open stream on `SUB`.
fn open_stream(clock: &ManualClock) -> SubscriptionMachine {
    let mut machine = SubscriptionMachine::new(folders(), streaming());
    assert_eq!(
        machine.poll(clock.now()),
        vec![Action::Subscribe(folders())]
    );
    let actions = machine.on_subscribed(SUB.into(), None, clock.now());
    assert_eq!(
        actions,
        vec![
            Action::CatchUp {
                folders: folders(),
                cause: CatchUpCause::Subscribed,
            },
            Action::OpenStream {
                subscription_id: SUB.into(),
                connection_timeout: ConnectionTimeout::MAX,
            },
        ]
    );
    machine
}

fn reopen_actions(cause: CatchUpCause) -> Vec<Action> {
    vec![
        Action::CatchUp {
            folders: folders(),
            cause,
        },
        Action::OpenStream {
            subscription_id: SUB.into(),
            connection_timeout: ConnectionTimeout::MAX,
        },
    ]
}

fn heartbeat() -> StreamMessage<&'static str> {
    StreamMessage {
        status: Some(ConnectionStatus::Ok),
        ..StreamMessage::default()
    }
}

#[test]
fn connection_timeout_range() {
    assert!(ConnectionTimeout::from_minutes(1).is_ok());
    assert_eq!(ConnectionTimeout::from_minutes(30).unwrap().minutes(), 30);
    assert_eq!(
        ConnectionTimeout::from_minutes(0),
        Err(SubscriptionConfigError::ConnectionTimeout { minutes: 0 })
    );
    assert_eq!(
        ConnectionTimeout::from_minutes(31),
        Err(SubscriptionConfigError::ConnectionTimeout { minutes: 31 })
    );
    assert!(PullTimeout::from_minutes(1440).is_ok());
    assert!(PullTimeout::from_minutes(1441).is_err());
    let message = ConnectionTimeout::from_minutes(45).unwrap_err().to_string();
    assert!(message.contains("45"), "{message}");
    assert!(message.contains("1 to 30"), "{message}");
}

#[test]
fn events_delivered_heartbeat_resets_watchdog() {
    let clock = ManualClock::default();
    let mut machine = open_stream(&clock);

    clock.advance(Duration::from_secs(5));
    let step = machine.on_message(
        StreamMessage {
            events: vec!["NewMail", "Created"],
            status: Some(ConnectionStatus::Ok),
            ..StreamMessage::default()
        },
        clock.now(),
    );
    assert_eq!(step.events, vec!["NewMail", "Created"]);
    assert!(step.actions.is_empty());

    // Heartbeats every 45 s keep the stream alive well past the 90 s timeout.
    for _ in 0..10 {
        clock.advance(Duration::from_secs(45));
        assert!(machine.poll(clock.now()).is_empty());
        let step = machine.on_message(heartbeat(), clock.now());
        assert!(step.events.is_empty());
        assert!(step.actions.is_empty());
    }
}

#[test]
fn missed_heartbeat_reopens_same_id() {
    let clock = ManualClock::default();
    let mut machine = open_stream(&clock);
    clock.advance(Duration::from_secs(89));
    assert!(machine.poll(clock.now()).is_empty());
    assert_eq!(
        machine.next_deadline(),
        Some(clock.now() + Duration::from_secs(1))
    );
    clock.advance(Duration::from_secs(1));
    let mut expected = vec![Action::CloseStream];
    expected.extend(reopen_actions(CatchUpCause::HeartbeatMissed));
    assert_eq!(machine.poll(clock.now()), expected);
    // The watchdog restarts with the new stream.
    clock.advance(Duration::from_secs(60));
    assert!(machine.poll(clock.now()).is_empty());
}

#[test]
fn closed_status_reopens_and_keeps_events() {
    let clock = ManualClock::default();
    let mut machine = open_stream(&clock);
    clock.advance(Duration::from_secs(1800));
    let step = machine.on_message(
        StreamMessage {
            events: vec!["Modified"],
            status: Some(ConnectionStatus::Closed),
            ..StreamMessage::default()
        },
        clock.now(),
    );
    assert_eq!(step.events, vec!["Modified"]);
    let mut expected = vec![Action::CloseStream];
    expected.extend(reopen_actions(CatchUpCause::StreamClosed));
    assert_eq!(step.actions, expected);
}

#[test]
fn dropped_connection_reopens_same_id() {
    let clock = ManualClock::default();
    let mut machine = open_stream(&clock);
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        machine.on_stream_ended(clock.now()),
        reopen_actions(CatchUpCause::ConnectionDropped)
    );
    assert!(matches!(machine.state(), State::Streaming { id, .. } if id == SUB));
}

#[test]
fn repeated_drops_back_off_then_resubscribe() {
    let clock = ManualClock::default();
    let mut machine = open_stream(&clock);

    // The first drop reopens at once.
    assert_eq!(
        machine.on_stream_ended(clock.now()),
        reopen_actions(CatchUpCause::ConnectionDropped)
    );

    // Further failures without a document wait 1 s, then 2 s.
    for delay in [1, 2] {
        assert!(machine.on_stream_ended(clock.now()).is_empty());
        assert_eq!(
            machine.next_deadline(),
            Some(clock.now() + Duration::from_secs(delay))
        );
        clock.advance(Duration::from_secs(delay) - Duration::from_millis(1));
        assert!(machine.poll(clock.now()).is_empty());
        clock.advance(Duration::from_millis(1));
        assert_eq!(
            machine.poll(clock.now()),
            reopen_actions(CatchUpCause::ConnectionDropped)
        );
    }

    // The fourth failure gives up on the id and subscribes again after 4 s.
    assert!(machine.on_stream_ended(clock.now()).is_empty());
    clock.advance(Duration::from_secs(3));
    assert!(machine.poll(clock.now()).is_empty());
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        machine.poll(clock.now()),
        vec![Action::Subscribe(folders())]
    );
    let actions = machine.on_subscribed("sub-0002".into(), None, clock.now());
    assert_eq!(
        actions.first(),
        Some(&Action::CatchUp {
            folders: folders(),
            cause: CatchUpCause::ConnectionDropped,
        })
    );

    // A new subscription whose stream fails at once keeps backing off: no tight loop.
    assert!(machine.on_stream_ended(clock.now()).is_empty());
    assert_eq!(
        machine.next_deadline(),
        Some(clock.now() + Duration::from_secs(8))
    );

    // A document resets the count: the next drop reopens at once again.
    clock.advance(Duration::from_secs(8));
    assert_eq!(
        machine.poll(clock.now()),
        vec![Action::Subscribe(folders())]
    );
    machine.on_subscribed("sub-0003".into(), None, clock.now());
    let step = machine.on_message(heartbeat(), clock.now());
    assert!(step.actions.is_empty());
    let actions = machine.on_stream_ended(clock.now());
    assert_eq!(actions.len(), 2);
}

#[test]
fn invalid_subscription_with_status_ok() {
    // The server returns ErrorInvalidSubscription for our id with ConnectionStatus OK.
    // The error code wins, so the machine stops reading and subscribes again.
    let clock = ManualClock::default();
    let mut machine = open_stream(&clock);
    let step: exmux_ews::subscription::Step<&str> = machine.on_message(
        StreamMessage {
            status: Some(ConnectionStatus::Ok),
            error_code: Some("ErrorInvalidSubscription".into()),
            error_subscription_ids: vec![SUB.into()],
            ..StreamMessage::default()
        },
        clock.now(),
    );
    assert_eq!(
        step.actions,
        vec![Action::CloseStream, Action::Subscribe(folders())]
    );
    assert_eq!(machine.state(), &State::Subscribing);

    clock.advance(Duration::from_secs(1));
    let actions = machine.on_subscribed("sub-0002".into(), Some("wm".into()), clock.now());
    assert_eq!(
        actions,
        vec![
            Action::CatchUp {
                folders: folders(),
                cause: CatchUpCause::SubscriptionError("ErrorInvalidSubscription".into()),
            },
            Action::OpenStream {
                subscription_id: "sub-0002".into(),
                connection_timeout: ConnectionTimeout::MAX,
            },
        ]
    );
}

#[test]
fn error_for_other_id_ignored() {
    let clock = ManualClock::default();
    let mut machine = open_stream(&clock);
    let step: exmux_ews::subscription::Step<&str> = machine.on_message(
        StreamMessage {
            error_code: Some("ErrorSubscriptionNotFound".into()),
            // Same letters, other case: ids are case-sensitive base64.
            error_subscription_ids: vec![SUB.to_ascii_lowercase()],
            ..StreamMessage::default()
        },
        clock.now(),
    );
    assert!(step.actions.is_empty());
    assert!(matches!(machine.state(), State::Streaming { .. }));
}

#[test]
fn reopen_rejected_resubscribes() {
    let clock = ManualClock::default();
    let mut machine = open_stream(&clock);
    machine.on_stream_ended(clock.now());
    // The reopened stream returns at once that the id is gone.
    let step: exmux_ews::subscription::Step<&str> = machine.on_message(
        StreamMessage {
            status: Some(ConnectionStatus::Closed),
            error_code: Some(" ErrorSubscriptionNotFound ".into()),
            ..StreamMessage::default()
        },
        clock.now(),
    );
    assert_eq!(
        step.actions,
        vec![Action::CloseStream, Action::Subscribe(folders())]
    );
}

#[test]
fn subscribe_failure_backs_off() {
    let clock = ManualClock::default();
    let mut machine = SubscriptionMachine::new(folders(), streaming());
    assert_eq!(
        machine.poll(clock.now()),
        vec![Action::Subscribe(folders())]
    );
    assert!(machine.on_subscribe_failed(clock.now()).is_empty());
    assert!(machine.poll(clock.now()).is_empty());
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        machine.poll(clock.now()),
        vec![Action::Subscribe(folders())]
    );
    machine.on_subscribe_failed(clock.now());
    clock.advance(Duration::from_secs(3));
    assert!(machine.poll(clock.now()).is_empty());
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        machine.poll(clock.now()),
        vec![Action::Subscribe(folders())]
    );
}

fn pull_mode() -> SubscriptionMode {
    SubscriptionMode::Pull {
        timeout: PullTimeout::from_minutes(10).unwrap(),
        interval: Duration::from_secs(60),
    }
}

#[test]
fn pull_polls_with_watermark() {
    let clock = ManualClock::default();
    let mut machine = SubscriptionMachine::new(FolderScope::WholeMailbox, pull_mode());
    machine.poll(clock.now());
    let actions = machine.on_subscribed("pull-1".into(), Some("wm-0".into()), clock.now());
    assert_eq!(
        actions,
        vec![Action::CatchUp {
            folders: FolderScope::WholeMailbox,
            cause: CatchUpCause::Subscribed,
        }]
    );
    assert!(machine.poll(clock.now()).is_empty());
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        machine.poll(clock.now()),
        vec![Action::GetEvents {
            subscription_id: "pull-1".into(),
            watermark: Some("wm-0".into()),
        }]
    );
    // No second GetEvents while one is in flight.
    assert!(machine.poll(clock.now()).is_empty());

    let step = machine.on_message(
        StreamMessage {
            events: vec!["Created"],
            watermark: Some("wm-1".into()),
            more_events: true,
            ..StreamMessage::default()
        },
        clock.now(),
    );
    assert_eq!(step.events, vec!["Created"]);
    // MoreEvents: poll again at once, from the new watermark.
    assert_eq!(
        machine.poll(clock.now()),
        vec![Action::GetEvents {
            subscription_id: "pull-1".into(),
            watermark: Some("wm-1".into()),
        }]
    );
}

#[test]
fn pull_expiry_resubscribes() {
    let clock = ManualClock::default();
    let mut machine = SubscriptionMachine::new(FolderScope::WholeMailbox, pull_mode());
    machine.poll(clock.now());
    machine.on_subscribed("pull-1".into(), None, clock.now());
    clock.advance(Duration::from_secs(60));
    machine.poll(clock.now());
    // The GetEvents fails in transport, and the client is offline for 10 minutes.
    assert!(machine.on_stream_ended(clock.now()).is_empty());
    clock.advance(Duration::from_secs(600));
    assert_eq!(
        machine.poll(clock.now()),
        vec![Action::Subscribe(FolderScope::WholeMailbox)]
    );
    let actions = machine.on_subscribed("pull-2".into(), None, clock.now());
    assert_eq!(
        actions,
        vec![Action::CatchUp {
            folders: FolderScope::WholeMailbox,
            cause: CatchUpCause::Expired,
        }]
    );
}

#[test]
fn pull_subscription_error_resubscribes() {
    let clock = ManualClock::default();
    let mut machine = SubscriptionMachine::new(FolderScope::WholeMailbox, pull_mode());
    machine.poll(clock.now());
    machine.on_subscribed("pull-1".into(), None, clock.now());
    clock.advance(Duration::from_secs(60));
    machine.poll(clock.now());
    let step: exmux_ews::subscription::Step<&str> = machine.on_message(
        StreamMessage {
            error_code: Some("ErrorExpiredSubscription".into()),
            ..StreamMessage::default()
        },
        clock.now(),
    );
    assert_eq!(
        step.actions,
        vec![Action::Subscribe(FolderScope::WholeMailbox)]
    );
}

mod coalescing {
    use exmux_ews::ops::notify::{Event, EventKind};
    use exmux_ews::subscription::{ItemHint, coalesce_events};
    use exmux_ews::types::{FolderId, ItemId};

    fn item_event(kind: EventKind, item: &str, parent: &str) -> Event {
        let mut event = Event::new(kind);
        event.item_id = Some(ItemId::new(item));
        event.parent_folder_id = Some(FolderId::new(parent));
        event
    }

    fn folder_event(folder: &str, parent: &str) -> Event {
        let mut event = Event::new(EventKind::Modified);
        event.folder_id = Some(FolderId::new(folder));
        event.parent_folder_id = Some(FolderId::new(parent));
        event
    }

    #[test]
    fn deleted_last_means_no_fetch() {
        // A cancelled meeting: two modifications, then the deletion, then the folder.
        let events = vec![
            item_event(EventKind::Modified, "AAMkAGV4L2l0ZW0vMDAwNw==", "calendar"),
            item_event(EventKind::Modified, "AAMkAGV4L2l0ZW0vMDAwNw==", "calendar"),
            item_event(EventKind::Deleted, "AAMkAGV4L2l0ZW0vMDAwNw==", "calendar"),
            folder_event("calendar", "root"),
        ];
        let hints = coalesce_events(&events);
        assert!(hints.changed.is_empty());
        assert_eq!(
            hints.deleted,
            vec![ItemHint {
                item_id: ItemId::new("AAMkAGV4L2l0ZW0vMDAwNw=="),
                parent_folder_id: Some(FolderId::new("calendar")),
            }]
        );
        let folders: Vec<_> = hints
            .folders
            .iter()
            .map(|folder| folder.id.as_str())
            .collect();
        assert_eq!(folders, vec!["calendar", "root"]);
    }

    #[test]
    fn move_rekeys_without_duplicate() {
        let mut moved = item_event(EventKind::Moved, "AAMkAGV4L2l0ZW0vMDEwMg==", "deleteditems");
        moved.old_item_id = Some(ItemId::new("AAMkAGV4L2l0ZW0vMDAwNQ=="));
        moved.old_parent_folder_id = Some(FolderId::new("tasks"));
        let events = vec![
            item_event(EventKind::Modified, "AAMkAGV4L2l0ZW0vMDAwNQ==", "tasks"),
            moved,
        ];
        let hints = coalesce_events(&events);
        // The old id is gone after the move; nothing is fetched or created under it.
        assert!(hints.changed.is_empty());
        assert_eq!(hints.moved.len(), 1);
        assert_eq!(hints.moved[0].0.id, "AAMkAGV4L2l0ZW0vMDAwNQ==");
        assert_eq!(hints.moved[0].1.item_id.id, "AAMkAGV4L2l0ZW0vMDEwMg==");
        let folders: Vec<_> = hints
            .folders
            .iter()
            .map(|folder| folder.id.as_str())
            .collect();
        assert_eq!(folders, vec!["tasks", "deleteditems"]);
    }

    #[test]
    fn ids_differing_in_case_stay_apart() {
        let events = vec![
            item_event(EventKind::Created, "AAMkAQ==", "inbox"),
            item_event(EventKind::Deleted, "aamkaq==", "inbox"),
        ];
        let hints = coalesce_events(&events);
        assert_eq!(hints.changed.len(), 1);
        assert_eq!(hints.deleted.len(), 1);
    }
}
