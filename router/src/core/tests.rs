#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use crate::config::Preset;
use crate::journal::ChangeKey;

const NOW: u64 = 1_704_067_200_000;

struct Harness {
    core: RouterCore,
    folder: FolderKey,
}

fn harness() -> Harness {
    harness_with(CoreOptions::default())
}

fn harness_with(options: CoreOptions) -> Harness {
    let mut core = RouterCore::new(Uuid::from_u128(0xe4), Preset::Ews.routing(), options);
    let folder = core.register_folder(vec![BackendFolderId::Ews("inbox".into())]);
    Harness { core, folder }
}

fn id(name: &str) -> BackendItemId {
    BackendItemId::Ews(name.into())
}

fn key(byte: u8) -> ChangeKey {
    ChangeKey(vec![byte; 4])
}

fn item(name: &str, kind: ChangeKind, change_key: u8) -> SyncChange {
    SyncChange::Item(ItemChange {
        id: id(name),
        kind,
        change_key: Some(key(change_key)),
        predecessors: Vec::new(),
        read: None,
    })
}

fn split(outputs: Vec<Output>) -> (Vec<Event>, Vec<Request>) {
    let mut events = Vec::new();
    let mut requests = Vec::new();
    for output in outputs {
        match output {
            Output::Event(Event::SyncStateAdvanced { .. }) => {}
            Output::Event(event) => events.push(event),
            Output::Request(request) => requests.push(request),
        }
    }
    (events, requests)
}

impl Harness {
    fn notice(&mut self) -> Vec<Request> {
        self.core
            .handle(
                NOW,
                Input::Notice {
                    folder: self.folder,
                },
            )
            .unwrap();
        split(self.core.drain_outputs()).1
    }

    fn page(
        &mut self,
        changes: Vec<SyncChange>,
        state: &str,
        more: bool,
    ) -> (Vec<Event>, Vec<Request>) {
        self.core
            .handle(
                NOW,
                Input::SyncPage(SyncPage {
                    folder: self.folder,
                    changes,
                    new_state: SyncState(state.as_bytes().to_vec()),
                    more_available: more,
                }),
            )
            .unwrap();
        split(self.core.drain_outputs())
    }

    // One complete sync round triggered by a notice.
    fn sync(&mut self, changes: Vec<SyncChange>, state: &str) -> Vec<Event> {
        let requests = self.notice();
        assert_eq!(requests.len(), 1, "{requests:?}");
        self.page(changes, state, false).0
    }

    fn item_key(&self, name: &str) -> ItemKey {
        self.core.ids().key_of(&id(name)).unwrap()
    }

    fn write(&mut self, operation: Operation, name: &str, read: Option<bool>) -> WriteId {
        let item = self.item_key(name);
        self.core
            .begin_write(
                NOW,
                WriteIntent {
                    operation,
                    item: Some(item),
                    folder: self.folder,
                    backend: Backend::Ews,
                    session: String::new(),
                    assign_change_key: false,
                    read_state: read,
                    target_folder: None,
                },
            )
            .unwrap()
            .id
    }

    fn succeed(&mut self, write: WriteId, change_key: Option<u8>) {
        self.core
            .handle(
                NOW,
                Input::WriteResult {
                    write,
                    outcome: WriteOutcome::Succeeded {
                        change_key: change_key.map(key),
                        new_id: None,
                    },
                },
            )
            .unwrap();
    }

    // Syncs two items, a and b, into the router.
    fn seeded() -> Self {
        let mut harness = harness();
        let events = harness.sync(
            vec![
                item("a", ChangeKind::Created, 1),
                item("b", ChangeKind::Created, 1),
            ],
            "s1",
        );
        assert_eq!(events.len(), 2);
        harness
    }
}

#[test]
fn notice_starts_sync_from_stored_state() {
    let mut harness = Harness::seeded();
    let requests = harness.notice();
    assert_eq!(
        requests,
        vec![Request::Sync {
            folder: harness.folder,
            backend: Backend::Ews,
            folder_id: Some(BackendFolderId::Ews("inbox".into())),
            from: SyncState(b"s1".to_vec()),
        }]
    );
}

#[test]
fn notices_coalesce_into_one_followup() {
    let mut harness = harness();
    assert_eq!(harness.notice().len(), 1);
    assert_eq!(harness.notice().len(), 0);
    assert_eq!(harness.notice().len(), 0);
    let (_, requests) = harness.page(Vec::new(), "s1", false);
    assert_eq!(requests.len(), 1, "one follow-up for three notices");
    let (_, requests) = harness.page(Vec::new(), "s2", false);
    assert!(requests.is_empty());
}

#[test]
fn more_available_continues_round() {
    let mut harness = harness();
    harness.notice();
    let (_, requests) = harness.page(vec![item("a", ChangeKind::Created, 1)], "p1", true);
    assert!(matches!(&requests[..], [Request::Sync { from, .. }] if from.0 == b"p1"));
    assert_eq!(
        harness.core.state().folders[&harness.folder].rounds_started,
        1
    );
}

#[test]
fn remote_change_delivered() {
    let mut harness = Harness::seeded();
    let events = harness.sync(vec![item("a", ChangeKind::Modified, 2)], "s2");
    assert!(matches!(
        &events[..],
        [Event::ItemChanged {
            origin: Origin::Remote,
            kind: ChangeKind::Modified,
            ..
        }]
    ));
    assert_eq!(harness.core.counters().remote_delivered, 3);
}

#[test]
fn own_change_dropped_by_change_key() {
    let mut harness = Harness::seeded();
    let write = harness.write(Operation::Update, "a", None);
    harness.succeed(write, Some(7));
    let events = harness.sync(vec![item("a", ChangeKind::Modified, 7)], "s2");
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(harness.core.counters().own_dropped, 1);
}

#[test]
fn own_change_delivered_when_asked() {
    let mut harness = harness_with(CoreOptions {
        deliver_local: true,
        ..CoreOptions::default()
    });
    harness.sync(vec![item("a", ChangeKind::Created, 1)], "s1");
    let write = harness.write(Operation::Update, "a", None);
    harness.succeed(write, Some(7));
    let events = harness.sync(vec![item("a", ChangeKind::Modified, 7)], "s2");
    assert!(matches!(
        &events[..],
        [Event::ItemChanged {
            origin: Origin::Local,
            ..
        }]
    ));
    assert_eq!(harness.core.counters().own_delivered, 1);
}

#[test]
fn assigned_change_key_matches_after_lost_result() {
    let mut harness = Harness::seeded();
    let item = harness.item_key("a");
    let issued = harness
        .core
        .begin_write(
            NOW,
            WriteIntent {
                operation: Operation::Update,
                item: Some(item),
                folder: harness.folder,
                backend: Backend::Mapi,
                session: "session-1".into(),
                assign_change_key: true,
                read_state: None,
                target_folder: None,
            },
        )
        .unwrap();
    let assigned = issued.change_key.clone().unwrap();
    assert!(harness.core.state().change_keys.is_own(&assigned));
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Lost,
            },
        )
        .unwrap();

    let change = SyncChange::Item(ItemChange {
        id: id("a"),
        kind: ChangeKind::Modified,
        change_key: Some(assigned.clone()),
        predecessors: Vec::new(),
        read: None,
    });
    let events = harness.sync(vec![change], "s2");
    assert_eq!(
        events,
        vec![Event::ChangeKeyLearned {
            folder: harness.folder,
            item,
            change_key: assigned,
        }]
    );
    assert_eq!(harness.core.counters().own_dropped, 1);
}

#[test]
fn lost_write_makes_change_unknown() {
    let mut harness = Harness::seeded();
    let write = harness.write(Operation::Update, "a", None);
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write,
                outcome: WriteOutcome::Lost,
            },
        )
        .unwrap();
    let events = harness.sync(vec![item("a", ChangeKind::Modified, 9)], "s2");
    assert!(matches!(
        &events[..],
        [Event::ItemChanged {
            origin: Origin::Unknown,
            ..
        }]
    ));
    assert_eq!(harness.core.counters().unknown_delivered, 1);
}

#[test]
fn lost_write_in_predecessors_is_remote() {
    let mut harness = Harness::seeded();
    let item = harness.item_key("a");
    let issued = harness
        .core
        .begin_write(
            NOW,
            WriteIntent {
                operation: Operation::Update,
                item: Some(item),
                folder: harness.folder,
                backend: Backend::Mapi,
                session: String::new(),
                assign_change_key: true,
                read_state: None,
                target_folder: None,
            },
        )
        .unwrap();
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Lost,
            },
        )
        .unwrap();
    let change = SyncChange::Item(ItemChange {
        id: id("a"),
        kind: ChangeKind::Modified,
        change_key: Some(key(9)),
        predecessors: vec![issued.change_key.unwrap(), key(1)],
        read: None,
    });
    let events = harness.sync(vec![change], "s2");
    assert!(matches!(
        &events[..],
        [Event::ItemChanged {
            origin: Origin::Remote,
            ..
        }]
    ));
}

#[test]
fn pending_write_holds_change_until_result() {
    let mut harness = Harness::seeded();
    let write = harness.write(Operation::Update, "a", None);
    let events = harness.sync(vec![item("a", ChangeKind::Modified, 7)], "s2");
    assert!(events.is_empty(), "held while the write is pending");
    harness.succeed(write, Some(7));
    let (events, _) = split(harness.core.drain_outputs());
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(harness.core.counters().own_dropped, 1);
    assert!(harness.core.state().held.is_empty());
}

#[test]
fn held_changes_keep_item_order() {
    let mut harness = Harness::seeded();
    let write = harness.write(Operation::Update, "a", None);
    harness.sync(
        vec![
            item("a", ChangeKind::Modified, 5),
            SyncChange::ReadState {
                id: id("a"),
                read: true,
            },
        ],
        "s2",
    );
    harness.succeed(write, Some(4));
    // The round started before the write settled, so change key 5 may be older or
    // newer than the write's 4: the item is fetched instead of guessed.
    let (events, requests) = split(harness.core.drain_outputs());
    assert!(events.is_empty(), "{events:?}");
    assert!(matches!(&requests[..], [Request::Verify { id: verify, .. }] if *verify == id("a")));

    harness
        .core
        .handle(
            NOW,
            Input::FetchResult {
                folder: harness.folder,
                id: id("a"),
                outcome: FetchOutcome::Found {
                    change_key: Some(key(5)),
                    read: Some(true),
                },
            },
        )
        .unwrap();
    let (events, _) = split(harness.core.drain_outputs());
    assert!(
        matches!(
            &events[..],
            [
                Event::ItemChanged {
                    origin: Origin::Remote,
                    ..
                },
                Event::ReadStateChanged { read: true, .. }
            ]
        ),
        "{events:?}"
    );
}

#[test]
fn change_from_round_before_write_fetched() {
    let mut harness = Harness::seeded();
    harness.notice();
    let write = harness.write(Operation::Update, "a", None);
    harness.succeed(write, Some(7));
    // The page was computed before the write reached the server.
    let (events, requests) = harness.page(vec![item("a", ChangeKind::Modified, 1)], "s2", false);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(requests.len(), 1);
    harness
        .core
        .handle(
            NOW,
            Input::FetchResult {
                folder: harness.folder,
                id: id("a"),
                outcome: FetchOutcome::Found {
                    change_key: Some(key(7)),
                    read: None,
                },
            },
        )
        .unwrap();
    let (events, _) = split(harness.core.drain_outputs());
    assert!(
        events.is_empty(),
        "the current state is our own write: {events:?}"
    );
    assert_eq!(harness.core.counters().own_dropped, 1);
}

#[test]
fn read_state_matches_own_write_by_value() {
    let mut harness = Harness::seeded();
    let write = harness.write(Operation::Update, "a", Some(true));
    harness.succeed(write, None);
    let events = harness.sync(
        vec![SyncChange::ReadState {
            id: id("a"),
            read: true,
        }],
        "s2",
    );
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(harness.core.counters().own_dropped, 1);
}

#[test]
fn read_state_after_remote_touch_is_remote() {
    let mut harness = Harness::seeded();
    let write = harness.write(Operation::Update, "a", Some(true));
    harness.succeed(write, None);
    // Another client marks it unread, then read again, and the sync reports both.
    let events = harness.sync(
        vec![
            SyncChange::ReadState {
                id: id("a"),
                read: false,
            },
            SyncChange::ReadState {
                id: id("a"),
                read: true,
            },
        ],
        "s2",
    );
    assert!(
        matches!(
            &events[..],
            [
                Event::ReadStateChanged {
                    origin: Origin::Remote,
                    read: false,
                    ..
                },
                Event::ReadStateChanged {
                    origin: Origin::Remote,
                    read: true,
                    ..
                }
            ]
        ),
        "{events:?}"
    );
}

#[test]
fn change_after_local_delete_superseded() {
    let mut harness = Harness::seeded();
    let write = harness.write(Operation::Delete, "a", None);
    harness.succeed(write, None);
    let events = harness.sync(vec![item("a", ChangeKind::Modified, 3)], "s2");
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(harness.core.counters().superseded_dropped, 1);
}

// The scenario exmux exists for: a message is marked read and deleted while the read
// notice is in flight, and another client changes other messages meanwhile.
#[test]
fn read_then_delete_race_scenario() {
    let mut harness = Harness::seeded();
    harness.sync(vec![item("c", ChangeKind::Created, 1)], "s2");

    let read = harness.write(Operation::Update, "a", Some(true));
    harness.succeed(read, Some(2));
    // The notice of the read change starts a sync at once; the delete goes out while
    // that sync is in flight.
    assert_eq!(harness.notice().len(), 1);
    let delete = harness.write(Operation::Delete, "a", None);
    harness.succeed(delete, None);
    harness
        .core
        .handle(
            NOW,
            Input::Notice {
                folder: harness.folder,
            },
        )
        .unwrap();

    // The in-flight sync reports the read change and another client's edit of b.
    let (events, requests) = harness.page(
        vec![
            SyncChange::ReadState {
                id: id("a"),
                read: true,
            },
            item("b", ChangeKind::Modified, 2),
        ],
        "s3",
        false,
    );
    assert_eq!(
        requests.len(),
        1,
        "the notice during the sync gets one follow-up"
    );
    assert!(
        matches!(
            &events[..],
            [Event::ItemChanged {
                origin: Origin::Remote,
                ..
            }]
        ),
        "{events:?}"
    );

    // The follow-up reports the deletion and another remote edit of c.
    let (events, _) = harness.page(
        vec![
            SyncChange::Deleted { id: id("a") },
            item("c", ChangeKind::Modified, 2),
        ],
        "s4",
        false,
    );
    assert!(
        matches!(
            &events[..],
            [Event::ItemChanged {
                origin: Origin::Remote,
                ..
            }]
        ),
        "{events:?}"
    );

    let counters = harness.core.counters();
    assert_eq!(counters.full_resyncs, 0);
    assert_eq!(
        counters.superseded_dropped, 1,
        "the read change of the deleted item"
    );
    assert_eq!(counters.own_dropped, 1, "the deletion");
    assert_eq!(counters.unknown_delivered, 0);
}

#[test]
fn unknown_item_modification_verified() {
    let mut harness = Harness::seeded();
    let events = harness.sync(vec![item("z", ChangeKind::Modified, 4)], "s2");
    assert!(events.is_empty());
    let state = harness.core.state();
    assert_eq!(state.held[&id("z")].reason, HoldReason::AwaitVerify);

    harness
        .core
        .handle(
            NOW,
            Input::FetchResult {
                folder: harness.folder,
                id: id("z"),
                outcome: FetchOutcome::NotFound,
            },
        )
        .unwrap();
    assert!(harness.core.drain_outputs().is_empty());
    assert_eq!(harness.core.counters().unverified_dropped, 1);
    assert_eq!(harness.core.counters().full_resyncs, 0);
    assert!(harness.core.ids().key_of(&id("z")).is_none());
}

#[test]
fn unknown_item_found_is_delivered() {
    let mut harness = Harness::seeded();
    harness.notice();
    let (_, requests) = harness.page(vec![item("z", ChangeKind::Modified, 4)], "s2", false);
    assert!(matches!(&requests[..], [Request::Verify { id: verify, .. }] if *verify == id("z")));
    harness
        .core
        .handle(
            NOW,
            Input::FetchResult {
                folder: harness.folder,
                id: id("z"),
                outcome: FetchOutcome::Found {
                    change_key: Some(key(5)),
                    read: Some(false),
                },
            },
        )
        .unwrap();
    let (events, _) = split(harness.core.drain_outputs());
    assert!(matches!(
        &events[..],
        [Event::ItemChanged { origin: Origin::Remote, change_key: Some(found), .. }] if *found == key(5)
    ));
}

#[test]
fn invalid_sync_state_resyncs_by_id() {
    let mut harness = Harness::seeded();
    let a = harness.item_key("a");
    let b = harness.item_key("b");
    harness.notice();
    harness
        .core
        .handle(
            NOW,
            Input::SyncFailed {
                folder: harness.folder,
                failure: SyncFailure::InvalidSyncState,
            },
        )
        .unwrap();
    let (events, requests) = split(harness.core.drain_outputs());
    assert!(matches!(
        &events[..],
        [Event::FullResync {
            reason: ResyncReason::SyncStateRejected,
            ..
        }]
    ));
    assert!(matches!(&requests[..], [Request::Sync { from, .. }] if from.is_empty()));

    // The server re-sends a unchanged and a new item; b is gone.
    let (events, _) = harness.page(
        vec![
            item("a", ChangeKind::Created, 1),
            item("n", ChangeKind::Created, 1),
        ],
        "r1",
        false,
    );
    assert_eq!(harness.item_key("a"), a, "a keeps its key");
    assert!(
        matches!(
            &events[..],
            [
                Event::ItemChanged { kind: ChangeKind::Created, .. },
                Event::ItemDeleted { item, origin: Origin::Remote, .. }
            ] if *item == b
        ),
        "{events:?}"
    );
    assert_eq!(harness.core.counters().full_resyncs, 1);
}

#[test]
fn silently_discarded_state_detected() {
    let mut harness = Harness::seeded();
    let a = harness.item_key("a");
    let events = harness.sync(vec![item("a", ChangeKind::Created, 1)], "s2");
    assert!(
        matches!(
            &events[..],
            [
                Event::FullResync {
                    reason: ResyncReason::ServerDiscardedSyncState,
                    ..
                },
                Event::ItemDeleted { .. }
            ]
        ),
        "{events:?}"
    );
    assert_eq!(harness.item_key("a"), a);
    assert_eq!(
        harness.core.ids().len(),
        1,
        "a is not duplicated and b is gone"
    );
}

#[test]
fn replayed_page_is_idempotent() {
    let mut harness = Harness::seeded();
    harness.sync(vec![item("a", ChangeKind::Modified, 2)], "s2");
    let events = harness.sync(vec![item("a", ChangeKind::Modified, 2)], "s2");
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(harness.core.counters().full_resyncs, 0);
}

#[test]
fn journal_retired_after_sync_passes() {
    let mut harness = Harness::seeded();
    let write = harness.write(Operation::Update, "a", None);
    harness.succeed(write, Some(7));
    assert_eq!(harness.core.state().journal.len(), 1);
    harness.sync(vec![item("a", ChangeKind::Modified, 7)], "s2");
    assert_eq!(harness.core.state().journal.len(), 0);
}

#[test]
fn sync_in_flight_keeps_journal_entry() {
    let mut harness = Harness::seeded();
    harness.notice();
    let write = harness.write(Operation::Update, "a", None);
    harness.succeed(write, Some(7));
    // This round started before the write settled, so it may not reflect it.
    harness.page(Vec::new(), "s2", false);
    assert_eq!(harness.core.state().journal.len(), 1);
    harness.sync(vec![item("a", ChangeKind::Modified, 7)], "s3");
    assert_eq!(harness.core.state().journal.len(), 0);
    assert_eq!(harness.core.counters().own_dropped, 1);
}

#[test]
fn deleted_item_forgotten_after_retire() {
    let mut harness = Harness::seeded();
    let write = harness.write(Operation::Delete, "a", None);
    harness.succeed(write, None);
    harness.sync(vec![SyncChange::Deleted { id: id("a") }], "s2");
    assert!(harness.core.ids().key_of(&id("a")).is_none());
    assert_eq!(harness.core.ids().len(), 1);
}

#[test]
fn retryable_failure_retries_on_tick() {
    let mut harness = harness();
    harness.notice();
    harness
        .core
        .handle(
            NOW,
            Input::SyncFailed {
                folder: harness.folder,
                failure: SyncFailure::Other {
                    message: "HTTP 503".into(),
                    retryable: true,
                },
            },
        )
        .unwrap();
    let (events, _) = split(harness.core.drain_outputs());
    let retry_at = match &events[..] {
        [
            Event::SyncFailed {
                retry_at_millis: Some(at),
                ..
            },
        ] => *at,
        other => panic!("{other:?}"),
    };
    assert_eq!(retry_at, NOW + 1_000);
    harness.core.handle(retry_at - 1, Input::Tick).unwrap();
    assert!(harness.core.drain_outputs().is_empty());
    harness.core.handle(retry_at, Input::Tick).unwrap();
    let (_, requests) = split(harness.core.drain_outputs());
    assert_eq!(requests.len(), 1);
}

#[test]
fn pending_write_times_out_as_lost() {
    let mut harness = Harness::seeded();
    let write = harness.write(Operation::Update, "a", None);
    let timeout = CoreOptions::default().write_timeout_millis;
    harness.core.handle(NOW + timeout, Input::Tick).unwrap();
    assert_eq!(
        harness.core.state().journal.get(write).unwrap().status,
        WriteStatus::Lost
    );
}

#[test]
fn unexpected_page_rejected() {
    let mut harness = Harness::seeded();
    let before = harness.core.state().clone();
    let result = harness.core.handle(
        NOW,
        Input::SyncPage(SyncPage {
            folder: harness.folder,
            changes: vec![item("a", ChangeKind::Modified, 9)],
            new_state: SyncState(b"x".to_vec()),
            more_available: false,
        }),
    );
    assert_eq!(
        result,
        Err(CoreError::UnexpectedSyncResult {
            folder: harness.folder
        })
    );
    assert_eq!(harness.core.state(), &before);
}

#[test]
fn write_to_unknown_item_rejected() {
    let mut harness = harness();
    let result = harness.core.begin_write(
        NOW,
        WriteIntent {
            operation: Operation::Delete,
            item: Some(ItemKey(99)),
            folder: harness.folder,
            backend: Backend::Ews,
            session: String::new(),
            assign_change_key: false,
            read_state: None,
            target_folder: None,
        },
    );
    assert_eq!(
        result,
        Err(CoreError::UnknownItem {
            operation: Operation::Delete,
            item: ItemKey(99)
        })
    );
    assert!(harness.core.state().journal.is_empty());
}

#[test]
fn move_rekeys_and_drops_echo() {
    let mut harness = Harness::seeded();
    let archive = harness
        .core
        .register_folder(vec![BackendFolderId::Ews("archive".into())]);
    let a = harness.item_key("a");
    let issued = harness
        .core
        .begin_write(
            NOW,
            WriteIntent {
                operation: Operation::Move,
                item: Some(a),
                folder: harness.folder,
                backend: Backend::Ews,
                session: String::new(),
                assign_change_key: false,
                read_state: None,
                target_folder: Some(archive),
            },
        )
        .unwrap();
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Succeeded {
                    change_key: Some(key(8)),
                    new_id: Some(id("a-moved")),
                },
            },
        )
        .unwrap();
    assert_eq!(harness.item_key("a-moved"), a);
    assert_eq!(harness.core.ids().get(a).unwrap().folder, archive);

    let events = harness.sync(vec![SyncChange::Deleted { id: id("a") }], "s2");
    assert!(events.is_empty(), "{events:?}");
    harness
        .core
        .handle(NOW, Input::Notice { folder: archive })
        .unwrap();
    harness.core.drain_outputs();
    harness
        .core
        .handle(
            NOW,
            Input::SyncPage(SyncPage {
                folder: archive,
                changes: vec![item("a-moved", ChangeKind::Created, 8)],
                new_state: SyncState(b"t1".to_vec()),
                more_available: false,
            }),
        )
        .unwrap();
    let (events, _) = split(harness.core.drain_outputs());
    assert!(events.is_empty(), "{events:?}");
    // The source's deletion of the old id and the target's report of the new one.
    assert_eq!(harness.core.counters().own_dropped, 2);
}

#[test]
fn restore_marks_pending_writes_lost() {
    let mut harness = Harness::seeded();
    let write = harness.write(Operation::Update, "a", None);
    harness.notice();
    let saved = serde_json::to_string(harness.core.state()).unwrap();
    let state: RouterState = serde_json::from_str(&saved).unwrap();
    assert_eq!(&state, harness.core.state());

    let mut core = RouterCore::restore(state, Preset::Ews.routing(), CoreOptions::default());
    assert_eq!(
        core.state().journal.get(write).unwrap().status,
        WriteStatus::Lost
    );
    core.handle(NOW, Input::Tick).unwrap();
    let (_, requests) = split(core.drain_outputs());
    assert!(matches!(&requests[..], [Request::Sync { from, .. }] if from.0 == b"s1"));
}

#[test]
fn restored_allocator_continues_counter() {
    let mut harness = Harness::seeded();
    let item = harness.item_key("a");
    let intent = WriteIntent {
        operation: Operation::Update,
        item: Some(item),
        folder: harness.folder,
        backend: Backend::Mapi,
        session: String::new(),
        assign_change_key: true,
        read_state: None,
        target_folder: None,
    };
    let first = harness.core.begin_write(NOW, intent.clone()).unwrap();
    let state = harness.core.state().clone();
    let mut core = RouterCore::restore(state, Preset::Mapi.routing(), CoreOptions::default());
    let second = core.begin_write(NOW, intent).unwrap();
    assert_ne!(first.change_key, second.change_key);
}

// The sync that reports a new item can outrun the response of the create that made it.
#[test]
fn create_echo_before_result_waits_for_id() {
    let mut harness = Harness::seeded();
    let issued = harness
        .core
        .begin_write(
            NOW,
            WriteIntent {
                operation: Operation::Create,
                item: None,
                folder: harness.folder,
                backend: Backend::Ews,
                session: String::new(),
                assign_change_key: false,
                read_state: None,
                target_folder: None,
            },
        )
        .unwrap();
    let events = harness.sync(vec![item("n", ChangeKind::Created, 5)], "s2");
    assert!(events.is_empty(), "{events:?}");

    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Succeeded {
                    change_key: Some(key(5)),
                    new_id: Some(id("n")),
                },
            },
        )
        .unwrap();
    let (events, _) = split(harness.core.drain_outputs());
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(harness.item_key("n"), issued.item);
    assert_eq!(harness.core.ids().len(), 3);
    assert!(harness.core.state().held.is_empty());
    assert_eq!(harness.core.counters().own_dropped, 1);
}

#[test]
fn new_item_after_lost_create_is_unknown() {
    let mut harness = Harness::seeded();
    let issued = harness
        .core
        .begin_write(
            NOW,
            WriteIntent {
                operation: Operation::Create,
                item: None,
                folder: harness.folder,
                backend: Backend::Ews,
                session: String::new(),
                assign_change_key: false,
                read_state: None,
                target_folder: None,
            },
        )
        .unwrap();
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Lost,
            },
        )
        .unwrap();
    let events = harness.sync(vec![item("n", ChangeKind::Created, 5)], "s2");
    assert!(
        matches!(
            events.as_slice(),
            [Event::ItemChanged {
                origin: Origin::Unknown,
                ..
            }]
        ),
        "{events:?}"
    );
}

#[test]
fn held_changes_released_after_own_move() {
    let mut harness = Harness::seeded();
    let archive = harness
        .core
        .register_folder(vec![BackendFolderId::Ews("archive".into())]);
    let a = harness.item_key("a");
    let issued = harness
        .core
        .begin_write(
            NOW,
            WriteIntent {
                operation: Operation::Move,
                item: Some(a),
                folder: harness.folder,
                backend: Backend::Ews,
                session: String::new(),
                assign_change_key: false,
                read_state: None,
                target_folder: Some(archive),
            },
        )
        .unwrap();
    let events = harness.sync(vec![SyncChange::Deleted { id: id("a") }], "s2");
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(harness.core.state().held.len(), 1);

    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Succeeded {
                    change_key: Some(key(1)),
                    new_id: Some(id("a-moved")),
                },
            },
        )
        .unwrap();
    let (events, _) = split(harness.core.drain_outputs());
    assert!(events.is_empty(), "{events:?}");
    assert!(harness.core.state().held.is_empty());
}

#[test]
fn moved_item_with_rewritten_key_is_not_a_discarded_state() {
    let mut harness = Harness::seeded();
    let archive = harness
        .core
        .register_folder(vec![BackendFolderId::Ews("archive".into())]);
    let sync_archive = |harness: &mut Harness, changes: Vec<SyncChange>, state: &str| {
        harness
            .core
            .handle(NOW, Input::Notice { folder: archive })
            .unwrap();
        harness.core.drain_outputs();
        harness
            .core
            .handle(
                NOW,
                Input::SyncPage(SyncPage {
                    folder: archive,
                    changes,
                    new_state: SyncState(state.as_bytes().to_vec()),
                    more_available: false,
                }),
            )
            .unwrap();
        split(harness.core.drain_outputs()).0
    };
    sync_archive(&mut harness, vec![item("x", ChangeKind::Created, 3)], "t1");

    let a = harness.item_key("a");
    let issued = harness
        .core
        .begin_write(
            NOW,
            WriteIntent {
                operation: Operation::Move,
                item: Some(a),
                folder: harness.folder,
                backend: Backend::Ews,
                session: String::new(),
                assign_change_key: false,
                read_state: None,
                target_folder: Some(archive),
            },
        )
        .unwrap();
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Succeeded {
                    change_key: Some(key(1)),
                    new_id: Some(id("a-moved")),
                },
            },
        )
        .unwrap();

    // The server rewrote the moved item's change key before the target was synced.
    let events = sync_archive(
        &mut harness,
        vec![item("a-moved", ChangeKind::Created, 9)],
        "t2",
    );
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, Event::FullResync { .. })),
        "{events:?}"
    );
    assert_eq!(harness.core.counters().full_resyncs, 0);
}

#[test]
fn item_change_with_read_state_predating_own_read_write_fetched() {
    let mut harness = Harness::seeded();
    // The round starts, the read-state write settles, then the round's page arrives.
    let requests = harness.notice();
    assert_eq!(requests.len(), 1);
    let write = harness.write(Operation::Update, "a", Some(true));
    harness.succeed(write, None);

    let (events, requests) = harness.page(
        vec![SyncChange::Item(ItemChange {
            id: id("a"),
            kind: ChangeKind::Modified,
            change_key: Some(key(2)),
            predecessors: Vec::new(),
            read: Some(false),
        })],
        "s2",
        false,
    );
    assert!(events.is_empty(), "{events:?}");
    assert!(
        matches!(requests.as_slice(), [Request::Verify { .. }]),
        "{requests:?}"
    );
}

#[test]
fn move_without_returned_key_matches_kept_change_key() {
    let mut harness = Harness::seeded();
    let archive = harness
        .core
        .register_folder(vec![BackendFolderId::Ews("archive".into())]);
    let a = harness.item_key("a");
    let issued = harness
        .core
        .begin_write(
            NOW,
            WriteIntent {
                operation: Operation::Move,
                item: Some(a),
                folder: harness.folder,
                backend: Backend::Mapi,
                session: "s".into(),
                assign_change_key: false,
                read_state: None,
                target_folder: Some(archive),
            },
        )
        .unwrap();
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Succeeded {
                    change_key: None,
                    new_id: Some(id("a-moved")),
                },
            },
        )
        .unwrap();
    harness
        .core
        .handle(NOW, Input::Notice { folder: archive })
        .unwrap();
    harness.core.drain_outputs();
    harness
        .core
        .handle(
            NOW,
            Input::SyncPage(SyncPage {
                folder: archive,
                changes: vec![item("a-moved", ChangeKind::Created, 1)],
                new_state: SyncState(b"t1".to_vec()),
                more_available: false,
            }),
        )
        .unwrap();
    let (events, _) = split(harness.core.drain_outputs());
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(harness.core.counters().own_dropped, 1);
}

// Another client moves away the item our create made before any sync of the folder
// reported it, so no sync ever reports its deletion. The first complete round that
// started after the create settled deletes it because it did not report it.
#[test]
fn created_item_gone_before_first_report_deleted() {
    let mut harness = Harness::seeded();
    let issued = harness
        .core
        .begin_write(
            NOW,
            WriteIntent {
                operation: Operation::Create,
                item: None,
                folder: harness.folder,
                backend: Backend::Ews,
                session: String::new(),
                assign_change_key: false,
                read_state: None,
                target_folder: None,
            },
        )
        .unwrap();
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Succeeded {
                    change_key: Some(key(5)),
                    new_id: Some(id("n")),
                },
            },
        )
        .unwrap();
    assert!(harness.core.drain_outputs().is_empty());

    let events = harness.sync(Vec::new(), "s2");
    assert_eq!(
        events,
        vec![Event::ItemDeleted {
            folder: harness.folder,
            item: issued.item,
            origin: Origin::Remote,
        }]
    );
    assert!(harness.core.ids().get(issued.item).is_none());
}

// The same round shape keeps an item that a sync did report.
#[test]
fn created_item_reported_once_is_kept() {
    let mut harness = Harness::seeded();
    let issued = harness
        .core
        .begin_write(
            NOW,
            WriteIntent {
                operation: Operation::Create,
                item: None,
                folder: harness.folder,
                backend: Backend::Ews,
                session: String::new(),
                assign_change_key: false,
                read_state: None,
                target_folder: None,
            },
        )
        .unwrap();
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Succeeded {
                    change_key: Some(key(5)),
                    new_id: Some(id("n")),
                },
            },
        )
        .unwrap();
    let events = harness.sync(vec![item("n", ChangeKind::Created, 5)], "s2");
    assert!(events.is_empty(), "{events:?}");
    let events = harness.sync(Vec::new(), "s3");
    assert!(events.is_empty(), "{events:?}");
    assert!(harness.core.ids().get(issued.item).is_some());
}

// The response of an older write that arrives after a newer write's keeps the newer
// write's change key, which the next sync then reports as our own.
#[test]
fn late_older_write_result_keeps_newer_key() {
    let mut harness = Harness::seeded();
    let older = harness.write(Operation::Update, "a", None);
    let newer = harness.write(Operation::Update, "a", None);
    harness.succeed(newer, Some(9));
    harness.succeed(older, Some(8));
    let a = harness.item_key("a");
    assert_eq!(harness.core.ids().get(a).unwrap().change_key, Some(key(9)));

    let events = harness.sync(vec![item("a", ChangeKind::Modified, 9)], "s2");
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(harness.core.ids().get(a).unwrap().change_key, Some(key(9)));
}

// A move is journaled in its target folder. When the target's sync retires a move
// whose outcome was lost, the source's later deletion may still be its echo.
#[test]
fn deletion_after_retired_lost_move_is_unknown() {
    let mut harness = Harness::seeded();
    let archive = harness
        .core
        .register_folder(vec![BackendFolderId::Ews("archive".into())]);
    let a = harness.item_key("a");
    let issued = harness
        .core
        .begin_write(
            NOW,
            WriteIntent {
                operation: Operation::Move,
                item: Some(a),
                folder: harness.folder,
                backend: Backend::Ews,
                session: String::new(),
                assign_change_key: false,
                read_state: None,
                target_folder: Some(archive),
            },
        )
        .unwrap();
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Lost,
            },
        )
        .unwrap();
    for state in ["t1", "t2"] {
        harness
            .core
            .handle(NOW, Input::Notice { folder: archive })
            .unwrap();
        harness
            .core
            .handle(
                NOW,
                Input::SyncPage(SyncPage {
                    folder: archive,
                    changes: Vec::new(),
                    new_state: SyncState(state.as_bytes().to_vec()),
                    more_available: false,
                }),
            )
            .unwrap();
    }
    assert!(harness.core.state().journal.get(issued.id).is_none());
    harness.core.drain_outputs();

    let events = harness.sync(vec![SyncChange::Deleted { id: id("a") }], "s2");
    assert_eq!(
        events,
        vec![Event::ItemDeleted {
            folder: harness.folder,
            item: a,
            origin: Origin::Unknown,
        }]
    );
}

// A change held for a fetch is classified when the fetch returns, so a later round
// must not retire the lost write that makes it Unknown.
#[test]
fn held_item_keeps_journal_entries() {
    let mut harness = Harness::seeded();
    let update = harness.write(Operation::Update, "a", None);
    harness.notice();
    harness.succeed(update, Some(5));
    let lost = harness.write(Operation::Update, "a", None);
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: lost,
                outcome: WriteOutcome::Lost,
            },
        )
        .unwrap();
    // The round started before the update settled, so its change is fetched.
    let (events, requests) = harness.page(vec![item("a", ChangeKind::Modified, 6)], "s2", false);
    assert!(events.is_empty(), "{events:?}");
    assert!(
        matches!(requests.as_slice(), [Request::Verify { .. }]),
        "{requests:?}"
    );

    let events = harness.sync(Vec::new(), "s3");
    assert!(events.is_empty(), "{events:?}");
    assert!(harness.core.state().journal.get(lost).is_some());

    harness
        .core
        .handle(
            NOW,
            Input::FetchResult {
                folder: harness.folder,
                id: id("a"),
                outcome: FetchOutcome::Found {
                    change_key: Some(key(6)),
                    read: None,
                },
            },
        )
        .unwrap();
    let (events, _) = split(harness.core.drain_outputs());
    assert!(
        matches!(
            events.as_slice(),
            [Event::ItemChanged {
                origin: Origin::Unknown,
                ..
            }]
        ),
        "{events:?}"
    );
}

// A change stamped from exmux's own namespace is ours even when no journal entry
// contains the key any more.
#[test]
fn own_namespace_key_is_local_without_entry() {
    let mut harness = Harness::seeded();
    let a = harness.item_key("a");
    let own = harness
        .core
        .state
        .change_keys
        .clone()
        .allocate()
        .unwrap()
        .to_change_key();
    let change = SyncChange::Item(ItemChange {
        id: id("a"),
        kind: ChangeKind::Modified,
        change_key: Some(own.clone()),
        predecessors: Vec::new(),
        read: None,
    });
    let events = harness.sync(vec![change], "s2");
    assert_eq!(
        events,
        vec![Event::ChangeKeyLearned {
            folder: harness.folder,
            item: a,
            change_key: own,
        }]
    );
    assert_eq!(harness.core.counters().remote_delivered, 2);
}

// A sync computed before our move can report the old id after the move's response
// rebound the item: the change is older than the target's report, and the deletion
// is the move's echo. Neither makes a new item.
#[test]
fn old_id_after_own_move_is_not_new_item() {
    let mut harness = Harness::seeded();
    let archive = harness
        .core
        .register_folder(vec![BackendFolderId::Ews("archive".into())]);
    let a = harness.item_key("a");
    let issued = harness
        .core
        .begin_write(
            NOW,
            WriteIntent {
                operation: Operation::Move,
                item: Some(a),
                folder: harness.folder,
                backend: Backend::Ews,
                session: String::new(),
                assign_change_key: false,
                read_state: None,
                target_folder: Some(archive),
            },
        )
        .unwrap();
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Succeeded {
                    change_key: Some(key(8)),
                    new_id: Some(id("a-moved")),
                },
            },
        )
        .unwrap();

    let events = harness.sync(vec![item("a", ChangeKind::Modified, 7)], "s2");
    assert!(events.is_empty(), "{events:?}");
    let events = harness.sync(vec![SyncChange::Deleted { id: id("a") }], "s3");
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(harness.core.ids().len(), 2);
    assert_eq!(harness.core.ids().moved_away_key(&id("a")), None);
}

// A full resync that no longer reports an item deletes it even when a write of ours
// to it had a lost outcome, and marks the deletion Unknown.
#[test]
fn full_resync_deletes_item_after_lost_write() {
    let mut harness = Harness::seeded();
    let a = harness.item_key("a");
    let write = harness.write(Operation::Delete, "a", None);
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write,
                outcome: WriteOutcome::Lost,
            },
        )
        .unwrap();
    harness.notice();
    harness
        .core
        .handle(
            NOW,
            Input::SyncFailed {
                folder: harness.folder,
                failure: SyncFailure::InvalidSyncState,
            },
        )
        .unwrap();
    harness.core.drain_outputs();

    let (events, _) = harness.page(vec![item("b", ChangeKind::Created, 1)], "r1", false);
    assert_eq!(
        events,
        vec![Event::ItemDeleted {
            folder: harness.folder,
            item: a,
            origin: Origin::Unknown,
        }]
    );
}

// The embedder never learned the outcome of a lost read-state write, so the echo of
// that state is delivered, marked Unknown.
#[test]
fn read_echo_of_lost_write_is_unknown() {
    let mut harness = Harness::seeded();
    let a = harness.item_key("a");
    let write = harness.write(Operation::Update, "a", Some(true));
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write,
                outcome: WriteOutcome::Lost,
            },
        )
        .unwrap();
    let events = harness.sync(
        vec![SyncChange::ReadState {
            id: id("a"),
            read: true,
        }],
        "s2",
    );
    assert_eq!(
        events,
        vec![Event::ReadStateChanged {
            folder: harness.folder,
            item: a,
            origin: Origin::Unknown,
            read: true,
        }]
    );
}

// A full resync cannot delete an item with a pending write of ours, but the next
// complete round that does not report it can: the new sync state never held it.
#[test]
fn full_resync_item_with_pending_write_checked_later() {
    let mut harness = Harness::seeded();
    let a = harness.item_key("a");
    let write = harness.write(Operation::Update, "a", None);
    harness.notice();
    harness
        .core
        .handle(
            NOW,
            Input::SyncFailed {
                folder: harness.folder,
                failure: SyncFailure::InvalidSyncState,
            },
        )
        .unwrap();
    harness.core.drain_outputs();
    let (events, _) = harness.page(vec![item("b", ChangeKind::Created, 1)], "r1", false);
    assert!(events.is_empty(), "{events:?}");
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write,
                outcome: WriteOutcome::Failed,
            },
        )
        .unwrap();

    let events = harness.sync(Vec::new(), "r2");
    assert_eq!(
        events,
        vec![Event::ItemDeleted {
            folder: harness.folder,
            item: a,
            origin: Origin::Remote,
        }]
    );
}

// A new item held for a pending create's response may come from an earlier create
// whose response was lost; that create's entry stays until the item is classified.
#[test]
fn held_new_item_keeps_lost_create_entry() {
    let mut harness = Harness::seeded();
    let create = WriteIntent {
        operation: Operation::Create,
        item: None,
        folder: harness.folder,
        backend: Backend::Ews,
        session: String::new(),
        assign_change_key: false,
        read_state: None,
        target_folder: None,
    };
    let lost = harness.core.begin_write(NOW, create.clone()).unwrap();
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: lost.id,
                outcome: WriteOutcome::Lost,
            },
        )
        .unwrap();
    let pending = harness.core.begin_write(NOW, create).unwrap();
    let events = harness.sync(vec![item("n1", ChangeKind::Created, 5)], "s2");
    assert!(events.is_empty(), "{events:?}");
    let events = harness.sync(Vec::new(), "s3");
    assert!(events.is_empty(), "{events:?}");

    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: pending.id,
                outcome: WriteOutcome::Succeeded {
                    change_key: Some(key(6)),
                    new_id: Some(id("n2")),
                },
            },
        )
        .unwrap();
    let (events, _) = split(harness.core.drain_outputs());
    assert!(
        matches!(
            events.as_slice(),
            [Event::ItemChanged {
                origin: Origin::Unknown,
                ..
            }]
        ),
        "{events:?}"
    );
}

#[test]
fn bind_backend_id_maps_other_backend() {
    let mut harness = Harness::seeded();
    let a = harness.item_key("a");
    let b = harness.item_key("b");
    let mapi = BackendItemId::Mapi { fid: 1, mid: 2 };
    harness.core.bind_backend_id(a, mapi.clone()).unwrap();
    assert_eq!(harness.core.ids().key_of(&mapi), Some(a));
    assert_eq!(harness.item_key("a"), a);

    let conflict = harness.core.bind_backend_id(b, mapi.clone());
    assert!(
        matches!(conflict, Err(CoreError::IdBoundElsewhere { bound, .. }) if bound == a),
        "{conflict:?}"
    );
    assert_eq!(harness.core.ids().key_of(&mapi), Some(a));

    let unknown = harness.core.bind_backend_id(ItemKey(99), id("z"));
    assert!(
        matches!(unknown, Err(CoreError::UnknownItemKey { .. })),
        "{unknown:?}"
    );
}

// The checkpoint of an upload replaces the sync state only when nothing moved on
// since the upload started, and then the created item is not expected in a download.
#[test]
fn upload_checkpoint_taken_when_idle() {
    let mut harness = Harness::seeded();
    let issued = harness
        .core
        .begin_write(
            NOW,
            WriteIntent {
                operation: Operation::Create,
                item: None,
                folder: harness.folder,
                backend: Backend::Mapi,
                session: String::new(),
                assign_change_key: true,
                read_state: None,
                target_folder: None,
            },
        )
        .unwrap();
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Succeeded {
                    change_key: None,
                    new_id: Some(id("n")),
                },
            },
        )
        .unwrap();

    // A checkpoint from an older base is ignored.
    harness
        .core
        .handle(
            NOW,
            Input::UploadCheckpoint {
                folder: harness.folder,
                base: SyncState(b"s0".to_vec()),
                checkpoint: SyncState(b"old".to_vec()),
                writes: vec![issued.id],
            },
        )
        .unwrap();
    assert!(harness.core.drain_outputs().is_empty());

    harness
        .core
        .handle(
            NOW,
            Input::UploadCheckpoint {
                folder: harness.folder,
                base: SyncState(b"s1".to_vec()),
                checkpoint: SyncState(b"c1".to_vec()),
                writes: vec![issued.id],
            },
        )
        .unwrap();
    let requests = harness.notice();
    assert!(matches!(&requests[..], [Request::Sync { from, .. }] if from.0 == b"c1"));
    let (events, _) = harness.page(Vec::new(), "c2", false);
    assert!(events.is_empty(), "{events:?}");
    assert!(harness.core.ids().get(issued.item).is_some());
}

// A Created change held from a full resync and released during the next round is
// the full resync's report, not a sign that the server discarded the new state.
#[test]
fn held_full_resync_change_not_discarded_state() {
    let mut harness = Harness::seeded();
    let write = harness.write(Operation::Update, "a", Some(true));
    harness.notice();
    harness
        .core
        .handle(
            NOW,
            Input::SyncFailed {
                folder: harness.folder,
                failure: SyncFailure::InvalidSyncState,
            },
        )
        .unwrap();
    harness.core.drain_outputs();
    let (events, _) = harness.page(
        vec![
            item("a", ChangeKind::Created, 1),
            item("b", ChangeKind::Created, 1),
        ],
        "r1",
        false,
    );
    assert!(events.is_empty(), "{events:?}");

    let requests = harness.notice();
    assert_eq!(requests.len(), 1, "{requests:?}");
    harness.succeed(write, Some(3));
    let (events, _) = split(harness.core.drain_outputs());
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, Event::FullResync { .. })),
        "{events:?}"
    );
    assert_eq!(harness.core.counters().full_resyncs, 1);
}

// Our create's item that we then delete with a lost response is never reported, so
// the next complete round deletes it, marked Unknown.
#[test]
fn unreported_arrival_after_lost_delete_unknown() {
    let mut harness = Harness::seeded();
    let issued = harness
        .core
        .begin_write(
            NOW,
            WriteIntent {
                operation: Operation::Create,
                item: None,
                folder: harness.folder,
                backend: Backend::Ews,
                session: String::new(),
                assign_change_key: false,
                read_state: None,
                target_folder: None,
            },
        )
        .unwrap();
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Succeeded {
                    change_key: Some(key(5)),
                    new_id: Some(id("n")),
                },
            },
        )
        .unwrap();
    let delete = harness.write(Operation::Delete, "n", None);
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: delete,
                outcome: WriteOutcome::Lost,
            },
        )
        .unwrap();

    let events = harness.sync(Vec::new(), "s2");
    assert_eq!(
        events,
        vec![Event::ItemDeleted {
            folder: harness.folder,
            item: issued.item,
            origin: Origin::Unknown,
        }]
    );
}

impl Harness {
    // Starts a create, lets an incremental round report its item "n" before the
    // create's result, and has the server reject that round's sync state, so a full
    // resync is in flight when the function returns.
    fn create_reported_before_resync(&mut self) -> IssuedWrite {
        let issued = self
            .core
            .begin_write(
                NOW,
                WriteIntent {
                    operation: Operation::Create,
                    item: None,
                    folder: self.folder,
                    backend: Backend::Ews,
                    session: String::new(),
                    assign_change_key: false,
                    read_state: None,
                    target_folder: None,
                },
            )
            .unwrap();
        self.notice();
        let (events, _) = self.page(vec![item("n", ChangeKind::Created, 5)], "s2", true);
        assert!(events.is_empty(), "{events:?}");
        self.core
            .handle(
                NOW,
                Input::SyncFailed {
                    folder: self.folder,
                    failure: SyncFailure::InvalidSyncState,
                },
            )
            .unwrap();
        self.core.drain_outputs();
        issued
    }

    fn create_succeeded(&mut self, write: WriteId) {
        self.core
            .handle(
                NOW,
                Input::WriteResult {
                    write,
                    outcome: WriteOutcome::Succeeded {
                        change_key: Some(key(5)),
                        new_id: Some(id("n")),
                    },
                },
            )
            .unwrap();
        self.core.drain_outputs();
    }
}

// Another client deleted the created item before the full resync ran. The change
// that the rejected round reported is released during the resync and must not count
// as reported by it.
#[test]
fn full_resync_deletes_created_item_reported_before() {
    let mut harness = Harness::seeded();
    let issued = harness.create_reported_before_resync();
    harness.create_succeeded(issued.id);

    let pages = vec![
        item("a", ChangeKind::Created, 1),
        item("b", ChangeKind::Created, 1),
    ];
    let (events, _) = harness.page(pages, "r1", false);
    let deleted: Vec<ItemKey> = events
        .iter()
        .filter_map(|event| match event {
            Event::ItemDeleted { item, .. } => Some(*item),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, vec![issued.item]);
}

#[test]
fn full_resync_keeps_created_item_it_reported() {
    let mut harness = Harness::seeded();
    let issued = harness.create_reported_before_resync();
    let (events, _) = harness.page(vec![item("n", ChangeKind::Created, 5)], "r1", true);
    assert!(events.is_empty(), "{events:?}");
    harness.create_succeeded(issued.id);

    let pages = vec![
        item("a", ChangeKind::Created, 1),
        item("b", ChangeKind::Created, 1),
    ];
    let (events, _) = harness.page(pages, "r2", false);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(harness.item_key("n"), issued.item);
}

// The fetch that verifies a change finds the item gone while our delete of it is
// still in flight, so the deletion waits for the delete's result and is our own.
#[test]
fn fetch_not_found_during_own_delete_local() {
    let mut harness = Harness::seeded();
    let a = harness.item_key("a");
    harness.notice();
    let update = harness.write(Operation::Update, "a", None);
    harness.succeed(update, Some(7));
    let (_, requests) = harness.page(vec![item("a", ChangeKind::Modified, 1)], "s2", false);
    assert_eq!(requests.len(), 1, "{requests:?}");

    let delete = harness.write(Operation::Delete, "a", None);
    harness
        .core
        .handle(
            NOW,
            Input::FetchResult {
                folder: harness.folder,
                id: id("a"),
                outcome: FetchOutcome::NotFound,
            },
        )
        .unwrap();
    let (events, _) = split(harness.core.drain_outputs());
    assert!(events.is_empty(), "{events:?}");

    harness.succeed(delete, None);
    let (events, _) = split(harness.core.drain_outputs());
    let remote: Vec<&Event> = events
        .iter()
        .filter(|event| {
            matches!(event, Event::ItemDeleted { item, origin: Origin::Remote, .. } if *item == a)
        })
        .collect();
    assert!(remote.is_empty(), "{events:?}");
}

fn send_intent(folder: FolderKey) -> WriteIntent {
    WriteIntent {
        operation: Operation::Send,
        item: None,
        folder,
        backend: Backend::Ews,
        session: String::new(),
        assign_change_key: false,
        read_state: None,
        target_folder: None,
    }
}

// The transport learns the id and change key of the sent copy from Sent Items, so the
// copy's arrival is recognised as this transport's own.
#[test]
fn sent_copy_with_learned_id_is_local() {
    let mut harness = harness();
    let issued = harness
        .core
        .begin_write(NOW, send_intent(harness.folder))
        .unwrap();
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Succeeded {
                    change_key: Some(key(7)),
                    new_id: Some(id("sent")),
                },
            },
        )
        .unwrap();

    let events = harness.sync(vec![item("sent", ChangeKind::Created, 7)], "s1");
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(harness.item_key("sent"), issued.item);
    assert_eq!(harness.core.counters().own_dropped, 1);
    assert_eq!(harness.core.counters().remote_delivered, 0);
}

// Exchange files the sent copy asynchronously, so the transport may not find it: the
// copy then arrives with its origin open, never as another client's item.
#[test]
fn sent_copy_not_found_is_unknown() {
    let mut harness = harness();
    let issued = harness
        .core
        .begin_write(NOW, send_intent(harness.folder))
        .unwrap();
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Lost,
            },
        )
        .unwrap();

    let events = harness.sync(vec![item("sent", ChangeKind::Created, 7)], "s1");
    assert!(
        matches!(
            events.as_slice(),
            [Event::ItemChanged {
                origin: Origin::Unknown,
                ..
            }]
        ),
        "{events:?}"
    );
    assert_eq!(harness.core.counters().unknown_delivered, 1);
}

// A copy reported before the send's result waits for it instead of getting a second key.
#[test]
fn sent_copy_before_result_waits() {
    let mut harness = harness();
    let issued = harness
        .core
        .begin_write(NOW, send_intent(harness.folder))
        .unwrap();
    let events = harness.sync(vec![item("sent", ChangeKind::Created, 7)], "s1");
    assert!(events.is_empty(), "{events:?}");

    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Succeeded {
                    change_key: Some(key(7)),
                    new_id: Some(id("sent")),
                },
            },
        )
        .unwrap();
    let (events, _) = split(harness.core.drain_outputs());
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(harness.item_key("sent"), issued.item);
}

#[test]
fn send_with_item_key_rejected() {
    let mut harness = Harness::seeded();
    let mut intent = send_intent(harness.folder);
    intent.item = Some(harness.item_key("a"));
    let error = harness.core.begin_write(NOW, intent).unwrap_err();
    assert!(
        matches!(
            error,
            CoreError::InvalidWrite {
                operation: Operation::Send,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(harness.core.state().journal.len(), 0);
}

#[test]
fn forget_folder_drops_state_items_and_journal() {
    let mut harness = Harness::seeded();
    let other = harness
        .core
        .register_folder(vec![BackendFolderId::Ews("other".into())]);
    harness
        .core
        .handle(NOW, Input::Notice { folder: other })
        .unwrap();
    harness
        .core
        .handle(
            NOW,
            Input::SyncPage(SyncPage {
                folder: other,
                changes: vec![item("x", ChangeKind::Created, 1)],
                new_state: SyncState(b"o1".to_vec()),
                more_available: false,
            }),
        )
        .unwrap();
    let kept = harness.item_key("x");
    let write = harness.write(Operation::Update, "a", Some(true));
    let items_before = harness.core.ids().len();

    harness.core.forget_folder(harness.folder).unwrap();

    assert!(!harness.core.state().folders.contains_key(&harness.folder));
    assert!(harness.core.ids().key_of(&id("a")).is_none());
    assert!(harness.core.ids().key_of(&id("b")).is_none());
    assert_eq!(harness.core.ids().len(), items_before - 2);
    assert!(
        harness.core.ids().get(kept).is_some(),
        "other folders keep items"
    );
    assert!(harness.core.state().journal.get(write).is_none());
    assert!(harness.core.state().journal.is_empty());
}

// A sync of a forgotten folder is never requested, and a late result for it changes
// nothing.
#[test]
fn forgotten_folder_rejects_late_results() {
    let mut harness = Harness::seeded();
    let write = harness.write(Operation::Delete, "a", None);
    let requests = harness.notice();
    assert_eq!(requests.len(), 1);

    harness.core.forget_folder(harness.folder).unwrap();

    let page = harness.core.handle(
        NOW,
        Input::SyncPage(SyncPage {
            folder: harness.folder,
            changes: vec![SyncChange::Deleted { id: id("a") }],
            new_state: SyncState(b"s2".to_vec()),
            more_available: false,
        }),
    );
    assert_eq!(
        page,
        Err(CoreError::UnknownFolder {
            folder: harness.folder
        })
    );
    let result = harness.core.handle(
        NOW,
        Input::WriteResult {
            write,
            outcome: WriteOutcome::Failed,
        },
    );
    assert_eq!(result, Err(CoreError::UnknownWrite { write }));
    let notice = harness.core.handle(
        NOW,
        Input::Notice {
            folder: harness.folder,
        },
    );
    assert_eq!(
        notice,
        Err(CoreError::UnknownFolder {
            folder: harness.folder
        })
    );
    harness.core.handle(NOW, Input::Tick).unwrap();
    let (events, requests) = split(harness.core.drain_outputs());
    assert!(events.is_empty(), "{events:?}");
    assert!(requests.is_empty(), "{requests:?}");
}

#[test]
fn forget_unknown_folder_rejected() {
    let mut harness = harness();
    let missing = FolderKey(99);
    assert_eq!(
        harness.core.forget_folder(missing),
        Err(CoreError::UnknownFolder { folder: missing })
    );
    assert_eq!(harness.core.state().folders.len(), 1);
}

#[test]
fn set_folder_id_replaces_same_backend() {
    let mut harness = harness();
    harness
        .core
        .set_folder_id(harness.folder, BackendFolderId::Ews("moved".into()))
        .unwrap();
    harness
        .core
        .set_folder_id(harness.folder, BackendFolderId::Mapi(7))
        .unwrap();
    let ids = &harness.core.state().folders[&harness.folder].ids;
    assert_eq!(
        ids,
        &vec![
            BackendFolderId::Ews("moved".into()),
            BackendFolderId::Mapi(7)
        ]
    );
    let requests = harness.notice();
    assert!(
        matches!(
            requests.as_slice(),
            [Request::Sync { folder_id: Some(BackendFolderId::Ews(text)), .. }] if text == "moved"
        ),
        "{requests:?}"
    );
}

#[test]
fn fetch_during_own_write_waits_for_result() {
    let mut harness = Harness::seeded();
    let a = harness.item_key("a");
    // The round starts, then a read-state write settles, so the round's page may
    // predate it and the item is fetched.
    harness.notice();
    let mark_read = harness.write(Operation::Update, "a", Some(true));
    harness.succeed(mark_read, Some(2));
    let changed = SyncChange::Item(ItemChange {
        id: id("a"),
        kind: ChangeKind::Modified,
        change_key: Some(key(2)),
        predecessors: Vec::new(),
        read: Some(false),
    });
    let (_, requests) = harness.page(vec![changed], "s2", false);
    assert!(
        matches!(requests.as_slice(), [Request::Verify { .. }]),
        "{requests:?}"
    );

    // A categorise goes out before the fetch runs, and the fetch returns its result.
    let categorise = harness.write(Operation::Update, "a", None);
    harness
        .core
        .handle(
            NOW,
            Input::FetchResult {
                folder: harness.folder,
                id: id("a"),
                outcome: FetchOutcome::Found {
                    change_key: Some(key(3)),
                    read: Some(true),
                },
            },
        )
        .unwrap();
    let (events, _) = split(harness.core.drain_outputs());
    assert!(events.is_empty(), "{events:?}");

    harness.succeed(categorise, Some(3));
    let (events, _) = split(harness.core.drain_outputs());
    let remote: Vec<&Event> = events
        .iter()
        .filter(|event| {
            matches!(event, Event::ItemChanged { item, origin: Origin::Remote, .. } if *item == a)
        })
        .collect();
    assert!(remote.is_empty(), "{events:?}");
}

#[test]
fn same_key_new_read_state_is_read_change() {
    let mut harness = Harness::seeded();
    let a = harness.item_key("a");
    // A full resync reports every item whole: here with the change key the router
    // stores and another client's read state.
    let changed = SyncChange::Item(ItemChange {
        id: id("a"),
        kind: ChangeKind::Created,
        change_key: Some(key(1)),
        predecessors: Vec::new(),
        read: Some(true),
    });
    let events = harness.sync(vec![changed], "s2");

    let item_changes = events
        .iter()
        .filter(|event| matches!(event, Event::ItemChanged { .. }))
        .count();
    assert_eq!(item_changes, 0, "{events:?}");
    assert!(
        events.iter().any(|event| matches!(
            event,
            Event::ReadStateChanged { item, origin: Origin::Remote, read: true, .. } if *item == a
        )),
        "{events:?}"
    );
}

#[test]
fn fetch_of_id_moved_meanwhile_dropped() {
    let mut harness = Harness::seeded();
    let archive = harness
        .core
        .register_folder(vec![BackendFolderId::Ews("archive".into())]);
    let a = harness.item_key("a");
    // The round starts, then a content write settles, so the round's change to a may
    // predate it and a is fetched.
    harness.notice();
    let update = harness.write(Operation::Update, "a", None);
    harness.succeed(update, Some(2));
    let (_, requests) = harness.page(vec![item("a", ChangeKind::Modified, 3)], "s2", false);
    assert!(
        matches!(requests.as_slice(), [Request::Verify { .. }]),
        "{requests:?}"
    );

    // Our move of a succeeds before the fetch of its old id returns.
    let moved = harness
        .core
        .begin_write(
            NOW,
            WriteIntent {
                operation: Operation::Move,
                item: Some(a),
                folder: harness.folder,
                backend: Backend::Ews,
                session: String::new(),
                assign_change_key: false,
                read_state: None,
                target_folder: Some(archive),
            },
        )
        .unwrap();
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: moved.id,
                outcome: WriteOutcome::Succeeded {
                    change_key: Some(key(4)),
                    new_id: Some(id("a-moved")),
                },
            },
        )
        .unwrap();
    harness.core.drain_outputs();

    harness
        .core
        .handle(
            NOW,
            Input::FetchResult {
                folder: harness.folder,
                id: id("a"),
                outcome: FetchOutcome::Found {
                    change_key: Some(key(3)),
                    read: Some(false),
                },
            },
        )
        .unwrap();
    let (events, _) = split(harness.core.drain_outputs());
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(harness.core.ids().key_of(&id("a")), None);

    // The source folder's deletion of the old id is the move's echo.
    let events = harness.sync(vec![SyncChange::Deleted { id: id("a") }], "s3");
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn unreported_arrival_kept_during_own_write() {
    let mut harness = Harness::seeded();
    let issued = harness
        .core
        .begin_write(
            NOW,
            WriteIntent {
                operation: Operation::Create,
                item: None,
                folder: harness.folder,
                backend: Backend::Ews,
                session: String::new(),
                assign_change_key: false,
                read_state: None,
                target_folder: None,
            },
        )
        .unwrap();
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Succeeded {
                    change_key: Some(key(5)),
                    new_id: Some(id("n")),
                },
            },
        )
        .unwrap();
    harness.core.drain_outputs();

    // A round that does not report the new item completes while a write to it is
    // pending, so the write's response still hands the item to the embedder.
    let update = harness.write(Operation::Update, "n", None);
    let events = harness.sync(Vec::new(), "s2");
    assert!(events.is_empty(), "{events:?}");
    assert!(harness.core.ids().get(issued.item).is_some());

    // The next complete round after the write settled removes it.
    harness.succeed(update, Some(6));
    let events = harness.sync(Vec::new(), "s3");
    assert_eq!(
        events,
        vec![Event::ItemDeleted {
            folder: harness.folder,
            item: issued.item,
            origin: Origin::Remote,
        }]
    );
}

#[test]
fn full_resync_keeps_arrival_settled_during_round() {
    let mut harness = Harness::seeded();
    harness.notice();
    harness
        .core
        .handle(
            NOW,
            Input::SyncFailed {
                folder: harness.folder,
                failure: SyncFailure::InvalidSyncState,
            },
        )
        .unwrap();
    harness.core.drain_outputs();

    // Our create settles while the full resync is in flight, so its pages may predate
    // the new item.
    let issued = harness
        .core
        .begin_write(
            NOW,
            WriteIntent {
                operation: Operation::Create,
                item: None,
                folder: harness.folder,
                backend: Backend::Ews,
                session: String::new(),
                assign_change_key: false,
                read_state: None,
                target_folder: None,
            },
        )
        .unwrap();
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: issued.id,
                outcome: WriteOutcome::Succeeded {
                    change_key: Some(key(5)),
                    new_id: Some(id("n")),
                },
            },
        )
        .unwrap();
    harness.core.drain_outputs();

    let (events, _) = harness.page(
        vec![
            item("a", ChangeKind::Created, 1),
            item("b", ChangeKind::Created, 1),
        ],
        "r1",
        false,
    );
    assert!(events.is_empty(), "{events:?}");
    assert!(harness.core.ids().get(issued.item).is_some());

    // A round that starts after the create and does not report the item shows it gone.
    let events = harness.sync(Vec::new(), "r2");
    assert_eq!(
        events,
        vec![Event::ItemDeleted {
            folder: harness.folder,
            item: issued.item,
            origin: Origin::Remote,
        }]
    );
}

// Another client moved the created item away before the full resync ran, and the
// create's response releases the older report only after the resync completed.
#[test]
fn release_after_full_resync_not_a_report() {
    let mut harness = Harness::seeded();
    let issued = harness.create_reported_before_resync();
    let pages = vec![
        item("a", ChangeKind::Created, 1),
        item("b", ChangeKind::Created, 1),
    ];
    let (events, _) = harness.page(pages, "r1", false);
    assert!(events.is_empty(), "{events:?}");

    harness.create_succeeded(issued.id);
    let events = harness.sync(Vec::new(), "r2");
    assert_eq!(
        events,
        vec![Event::ItemDeleted {
            folder: harness.folder,
            item: issued.item,
            origin: Origin::Remote,
        }]
    );
}

impl Harness {
    fn fetch_found(
        &mut self,
        name: &str,
        change_key: u8,
        read: bool,
    ) -> (Vec<Event>, Vec<Request>) {
        self.core
            .handle(
                NOW,
                Input::FetchResult {
                    folder: self.folder,
                    id: id(name),
                    outcome: FetchOutcome::Found {
                        change_key: Some(key(change_key)),
                        read: Some(read),
                    },
                },
            )
            .unwrap();
        split(self.core.drain_outputs())
    }
}

// A mark-read of ours goes out and settles while a fetch of the item is in flight,
// and the fetch ran before the server applied it.
#[test]
fn fetch_before_settled_write_fetched_again() {
    let mut harness = Harness::seeded();
    harness.notice();
    let categorise = harness.write(Operation::Update, "a", None);
    harness.succeed(categorise, Some(7));
    let (_, requests) = harness.page(vec![item("a", ChangeKind::Modified, 1)], "s2", false);
    assert!(
        matches!(requests.as_slice(), [Request::Verify { .. }]),
        "{requests:?}"
    );

    let mark_read = harness.write(Operation::Update, "a", Some(true));
    harness.succeed(mark_read, None);
    let (events, requests) = harness.fetch_found("a", 7, false);
    assert!(
        events.is_empty(),
        "the fetched read state predates our write: {events:?}"
    );
    assert!(
        matches!(requests.as_slice(), [Request::Verify { id: fetched, .. }] if *fetched == id("a")),
        "{requests:?}"
    );

    let (events, requests) = harness.fetch_found("a", 7, true);
    assert!(events.is_empty(), "{events:?}");
    assert!(requests.is_empty(), "{requests:?}");
    let read_echo = SyncChange::ReadState {
        id: id("a"),
        read: true,
    };
    let events = harness.sync(vec![read_echo], "s3");
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(harness.core.counters().remote_delivered, 2);
}

// A change held for a pending write came from the round before a full resync that
// no longer reports the item, because another client deleted it meanwhile.
#[test]
fn full_resync_decides_later_about_held_item() {
    let mut harness = Harness::seeded();
    let a = harness.item_key("a");
    let flag = harness.write(Operation::Update, "a", None);
    let read = SyncChange::ReadState {
        id: id("a"),
        read: true,
    };
    let events = harness.sync(vec![read], "s2");
    assert!(events.is_empty(), "{events:?}");

    harness.notice();
    harness
        .core
        .handle(
            NOW,
            Input::SyncFailed {
                folder: harness.folder,
                failure: SyncFailure::InvalidSyncState,
            },
        )
        .unwrap();
    harness.core.drain_outputs();
    let (events, _) = harness.page(vec![item("b", ChangeKind::Created, 1)], "r1", false);
    assert!(events.is_empty(), "{events:?}");
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: flag,
                outcome: WriteOutcome::Failed,
            },
        )
        .unwrap();
    harness.core.drain_outputs();

    let events = harness.sync(Vec::new(), "r2");
    assert_eq!(
        events,
        vec![Event::ItemDeleted {
            folder: harness.folder,
            item: a,
            origin: Origin::Remote,
        }]
    );
}

// The connection drops after the first page of a full resync, and the retry goes on
// from that page's state, so it does not report a again.
#[test]
fn full_resync_retry_keeps_reported_items() {
    let mut harness = Harness::seeded();
    harness.notice();
    harness
        .core
        .handle(
            NOW,
            Input::SyncFailed {
                folder: harness.folder,
                failure: SyncFailure::InvalidSyncState,
            },
        )
        .unwrap();
    harness.core.drain_outputs();
    let (events, _) = harness.page(vec![item("a", ChangeKind::Created, 1)], "p1", true);
    assert!(events.is_empty(), "{events:?}");
    harness
        .core
        .handle(
            NOW,
            Input::SyncFailed {
                folder: harness.folder,
                failure: SyncFailure::Other {
                    message: "connection dropped".into(),
                    retryable: true,
                },
            },
        )
        .unwrap();
    harness.core.drain_outputs();
    harness.core.handle(NOW + 60_000, Input::Tick).unwrap();
    let (_, requests) = split(harness.core.drain_outputs());
    assert!(
        matches!(requests.as_slice(), [Request::Sync { from, .. }] if from.0 == b"p1"),
        "{requests:?}"
    );

    let (events, _) = harness.page(vec![item("b", ChangeKind::Created, 1)], "r1", false);
    assert!(
        events.is_empty(),
        "a was reported by the first page: {events:?}"
    );
}

// A round reports another client's new item while our create is pending, and the
// item leaves the folder before the full resync that follows. The create's response
// is lost, which releases the item only after that resync completed without it.
#[test]
fn new_item_released_after_full_resync_checked() {
    let mut harness = Harness::seeded();
    let create = WriteIntent {
        operation: Operation::Create,
        item: None,
        folder: harness.folder,
        backend: Backend::Ews,
        session: String::new(),
        assign_change_key: false,
        read_state: None,
        target_folder: None,
    };
    let pending = harness.core.begin_write(NOW, create).unwrap();
    let events = harness.sync(vec![item("n", ChangeKind::Created, 5)], "s2");
    assert!(events.is_empty(), "{events:?}");

    harness.notice();
    harness
        .core
        .handle(
            NOW,
            Input::SyncFailed {
                folder: harness.folder,
                failure: SyncFailure::InvalidSyncState,
            },
        )
        .unwrap();
    harness.core.drain_outputs();
    let pages = vec![
        item("a", ChangeKind::Created, 1),
        item("b", ChangeKind::Created, 1),
    ];
    let (events, _) = harness.page(pages, "r1", false);
    assert!(events.is_empty(), "{events:?}");
    harness
        .core
        .handle(
            NOW,
            Input::WriteResult {
                write: pending.id,
                outcome: WriteOutcome::Lost,
            },
        )
        .unwrap();
    let (events, _) = split(harness.core.drain_outputs());
    assert!(
        matches!(
            events.as_slice(),
            [Event::ItemChanged {
                origin: Origin::Unknown,
                ..
            }]
        ),
        "{events:?}"
    );
    let n = harness.item_key("n");

    let events = harness.sync(Vec::new(), "r2");
    let deleted = Event::ItemDeleted {
        folder: harness.folder,
        item: n,
        origin: Origin::Remote,
    };
    assert!(events.contains(&deleted), "{events:?}");
}

// The response of a mark-unread arrives after the response of a later mark-read and
// after a round that retired the mark-read's settled entry.
#[test]
fn late_response_keeps_newer_read_state() {
    let mut harness = Harness::seeded();
    let a = harness.item_key("a");
    let mark_unread = harness.write(Operation::Update, "a", Some(false));
    let mark_read = harness.write(Operation::Update, "a", Some(true));
    harness.succeed(mark_read, None);
    let events = harness.sync(Vec::new(), "s2");
    assert!(events.is_empty(), "{events:?}");

    harness.succeed(mark_unread, None);
    let read = harness.core.ids().get(a).unwrap().read;
    assert_eq!(read, Some(true));
}

// The response of a mark-unread arrives after the response of a later mark-read,
// during a round that then retires the mark-read's entry. Another client's
// mark-unread that a later round reports is not our echo.
#[test]
fn retire_keeps_later_write_of_item() {
    let mut harness = Harness::seeded();
    let a = harness.item_key("a");
    let mark_unread = harness.write(Operation::Update, "a", Some(false));
    let mark_read = harness.write(Operation::Update, "a", Some(true));
    harness.succeed(mark_read, None);
    harness.notice();
    harness.succeed(mark_unread, None);
    let (events, _) = harness.page(Vec::new(), "s2", false);
    assert!(events.is_empty(), "{events:?}");

    let other = SyncChange::ReadState {
        id: id("a"),
        read: false,
    };
    let events = harness.sync(vec![other], "s3");
    assert_eq!(
        events,
        vec![Event::ReadStateChanged {
            folder: harness.folder,
            item: a,
            origin: Origin::Remote,
            read: false,
        }]
    );
}

// A round reports another client's change while the fetch of the item is in flight,
// and the fetch ran before that change.
#[test]
fn change_during_fetch_fetched_again() {
    let mut harness = Harness::seeded();
    let a = harness.item_key("a");
    harness.notice();
    let categorise = harness.write(Operation::Update, "a", None);
    harness.succeed(categorise, Some(7));
    let (_, requests) = harness.page(vec![item("a", ChangeKind::Modified, 1)], "s2", false);
    assert!(
        matches!(requests.as_slice(), [Request::Verify { .. }]),
        "{requests:?}"
    );
    let events = harness.sync(vec![item("a", ChangeKind::Modified, 9)], "s3");
    assert!(events.is_empty(), "{events:?}");

    let (events, requests) = harness.fetch_found("a", 7, false);
    assert!(events.is_empty(), "{events:?}");
    assert!(
        matches!(requests.as_slice(), [Request::Verify { id: fetched, .. }] if *fetched == id("a")),
        "{requests:?}"
    );

    let (events, requests) = harness.fetch_found("a", 9, false);
    assert!(requests.is_empty(), "{requests:?}");
    assert!(
        matches!(
            events.first(),
            Some(Event::ItemChanged { item, origin: Origin::Remote, change_key: Some(found), .. })
                if *item == a && *found == key(9)
        ),
        "{events:?}"
    );
}
