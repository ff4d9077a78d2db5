#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The demo scenario end to end over loopback: a message marked read and deleted a few
//! milliseconds later while a second client changes other messages.

use exmux::demo::{self, DemoError};
use exmux_router::Preset;
use exmux_router::transport::TransportError;
use exmux_router::{Backend, Operation};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ews_routing_keeps_the_replica_equal_to_the_server() {
    let summary = demo::run(Preset::Ews, None, |_| {}).await.unwrap();

    assert_eq!(summary.routing, "ews");
    assert_eq!(summary.full_resyncs, 0, "{summary:#?}");
    assert!(summary.replica_matches_server, "{summary:#?}");
    assert_eq!(summary.unknown_delivered, 0);
    // The read change and the delete are this transport's own: neither reaches the
    // embedder, whether the sync saw the read flag before the delete or not.
    assert!(summary.own_dropped >= 1, "{summary:#?}");
    let about_deleted: Vec<_> = summary
        .events
        .iter()
        .filter(|event| event.phase == "scenario" && event.item == Some(summary.deleted_item))
        .collect();
    assert!(about_deleted.is_empty(), "{about_deleted:#?}");
    // The second client's three changes arrive as remote changes: one read flag, one
    // deletion, one new message.
    let remote: Vec<_> = summary
        .events
        .iter()
        .filter(|event| event.phase == "scenario")
        .collect();
    assert!(
        remote
            .iter()
            .all(|event| event.origin.as_deref() == Some("remote"))
    );
    assert!(
        remote
            .iter()
            .any(|event| event.kind == "read" && event.read == Some(true))
    );
    assert!(remote.iter().any(|event| event.kind == "deleted"));
    assert!(remote.iter().any(|event| event.kind == "changed"));
    assert_eq!(summary.server_items, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapi_routings_say_they_cannot_run_rather_than_fake_it() {
    for preset in [Preset::Mapi, Preset::Hybrid] {
        let error = demo::run(preset, None, |_| {}).await.unwrap_err();
        let DemoError::RoutingUnavailable { source, .. } = &error else {
            panic!("unexpected {error}");
        };
        let TransportError::BackendNotOffered {
            backend,
            operations,
            ..
        } = source
        else {
            panic!("unexpected {source}");
        };
        assert_eq!(*backend, Backend::Mapi);
        assert!(operations.contains(&Operation::SyncItems));
        assert_eq!(
            operations.contains(&Operation::Fetch),
            preset == Preset::Mapi
        );
        assert!(error.to_string().contains("sync_items"), "{error}");
    }
}
