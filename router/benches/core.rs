//! Throughput of the router core: sync pages of remote changes, and the own-write
//! echo path. Run with `cargo bench -p exmux-router --bench core`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use exmux_router::RouterCore;
use exmux_router::config::Preset;
use exmux_router::core::{
    ChangeKind, CoreOptions, Input, ItemChange, SyncChange, SyncPage, SyncState, WriteIntent,
    WriteOutcome,
};
use exmux_router::ids::{BackendFolderId, BackendItemId};
use exmux_router::journal::ChangeKey;
use exmux_router::operation::{Backend, Operation};

const ITEMS: u64 = 1_000;

fn change(mid: u64, version: u64) -> SyncChange {
    SyncChange::Item(ItemChange {
        id: BackendItemId::Mapi { fid: 1, mid },
        kind: ChangeKind::Upserted,
        change_key: Some(ChangeKey(version.to_be_bytes().to_vec())),
        predecessors: Vec::new(),
        read: Some(false),
    })
}

fn sync_pages(c: &mut Criterion) {
    let mut group = c.benchmark_group("core");
    group.throughput(Throughput::Elements(ITEMS));

    group.bench_function("remote_changes_1000", |b| {
        let mut core = RouterCore::new(
            uuid::Uuid::from_u128(1),
            Preset::Mapi.routing(),
            CoreOptions::default(),
        );
        let folder = core.register_folder(vec![BackendFolderId::Mapi(1)]);
        let mut version = 0;
        b.iter(|| {
            version += 1;
            core.handle(0, Input::Notice { folder }).unwrap();
            let changes = (1..=ITEMS).map(|mid| change(mid, version)).collect();
            core.handle(
                0,
                Input::SyncPage(SyncPage {
                    folder,
                    changes,
                    new_state: SyncState(version.to_be_bytes().to_vec()),
                    more_available: false,
                }),
            )
            .unwrap();
            core.drain_outputs().len()
        });
    });

    group.bench_function("own_echoes_1000", |b| {
        let mut core = RouterCore::new(
            uuid::Uuid::from_u128(1),
            Preset::Mapi.routing(),
            CoreOptions::default(),
        );
        let folder = core.register_folder(vec![BackendFolderId::Mapi(1)]);
        core.handle(0, Input::Notice { folder }).unwrap();
        let changes = (1..=ITEMS).map(|mid| change(mid, 0)).collect();
        core.handle(
            0,
            Input::SyncPage(SyncPage {
                folder,
                changes,
                new_state: SyncState(vec![0]),
                more_available: false,
            }),
        )
        .unwrap();
        core.drain_outputs();
        b.iter(|| {
            // Write every item through ICS with an assigned key, then sync the echoes.
            let mut echoes = Vec::new();
            for mid in 1..=ITEMS {
                let id = BackendItemId::Mapi { fid: 1, mid };
                let item = core.ids().key_of(&id).unwrap();
                let issued = core
                    .begin_write(
                        0,
                        WriteIntent {
                            operation: Operation::Update,
                            item: Some(item),
                            folder,
                            backend: Backend::Mapi,
                            session: String::new(),
                            assign_change_key: true,
                            read_state: None,
                            target_folder: None,
                        },
                    )
                    .unwrap();
                core.handle(
                    0,
                    Input::WriteResult {
                        write: issued.id,
                        outcome: WriteOutcome::Succeeded {
                            change_key: None,
                            new_id: None,
                        },
                    },
                )
                .unwrap();
                echoes.push(SyncChange::Item(ItemChange {
                    id,
                    kind: ChangeKind::Upserted,
                    change_key: issued.change_key,
                    predecessors: Vec::new(),
                    read: None,
                }));
            }
            core.handle(0, Input::Notice { folder }).unwrap();
            core.handle(
                0,
                Input::SyncPage(SyncPage {
                    folder,
                    changes: echoes,
                    new_state: SyncState(vec![1]),
                    more_available: false,
                }),
            )
            .unwrap();
            core.drain_outputs().len()
        });
    });
    group.finish();
}

criterion_group!(benches, sync_pages);
criterion_main!(benches);
