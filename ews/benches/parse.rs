//! EWS parsing throughput: this crate's incremental reader, whole and fed in chunks
//! through the framer, against the `ews` crate (serde over quick-xml) and quick-xml's raw
//! event reader, on the same bytes.
//!
//! Run: `cargo bench -p exmux-ews --bench parse -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use exmux_ews::operation::EwsOperation;
use exmux_ews::ops::framer::{Framer, ListKind};
use exmux_ews::ops::sync::{FindItem, FindItemReader, SyncFolderItems, SyncItemsReader};
use exmux_ews::sample;
use std::hint::black_box;

fn raw_events(bytes: &[u8]) -> usize {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut n = 0;
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Eof => return n,
            _ => n += 1,
        }
    }
}

/// Reads `bytes` as the `*_streamed` client calls do: in 16 KiB chunks through the
/// framer, parsing each change or item, then decoding the skeleton.
fn chunked(bytes: &[u8], is_sync: bool) -> usize {
    let kind = if is_sync {
        ListKind::SyncChanges
    } else {
        ListKind::FindItems
    };
    let mut framer = Framer::new(kind);
    let mut n = 0;
    for piece in bytes.chunks(16 * 1024) {
        framer.push(piece);
        while let Some(fragment) = framer.next_fragment() {
            if is_sync {
                black_box(fragment.parse_change().unwrap());
            } else {
                black_box(fragment.parse_item().unwrap());
            }
            n += 1;
        }
    }
    let skeleton = framer.finish();
    if is_sync {
        black_box(SyncFolderItems::parse_response(&skeleton).unwrap());
    } else {
        black_box(FindItem::parse_response(&skeleton).unwrap());
    }
    n
}

fn bench(c: &mut Criterion) {
    let inputs = [
        (
            "SyncFolderItems/512",
            sample::sync_folder_items_response(512).unwrap(),
        ),
        (
            "SyncFolderItems/5000",
            sample::sync_folder_items_response(5000).unwrap(),
        ),
        ("FindItem/1000", sample::find_item_response(1000).unwrap()),
    ];
    for (name, bytes) in &inputs {
        let mut group = c.benchmark_group(*name);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        let is_sync = name.starts_with("Sync");
        group.bench_with_input(BenchmarkId::new("exmux", bytes.len()), bytes, |b, bytes| {
            b.iter(|| {
                if is_sync {
                    let reader = SyncItemsReader::new(black_box(bytes)).unwrap();
                    let mut n = 0;
                    for change in reader {
                        black_box(change.unwrap());
                        n += 1;
                    }
                    n
                } else {
                    let reader = FindItemReader::new(black_box(bytes)).unwrap();
                    let mut n = 0;
                    for item in reader {
                        black_box(item.unwrap());
                        n += 1;
                    }
                    n
                }
            })
        });
        group.bench_with_input(
            BenchmarkId::new("exmux-chunked", bytes.len()),
            bytes,
            |b, bytes| b.iter(|| chunked(black_box(bytes), is_sync)),
        );
        group.bench_with_input(BenchmarkId::new("ews-crate", bytes.len()), bytes, |b, bytes| {
            b.iter(|| {
                if is_sync {
                    let env = ews::soap::Envelope::<ews::sync_folder_items::SyncFolderItemsResponse>::from_xml_document(black_box(bytes)).unwrap();
                    black_box(env.body.response_messages.response_messages.len())
                } else {
                    let env = ews::soap::Envelope::<ews::find_item::FindItemResponse>::from_xml_document(black_box(bytes)).unwrap();
                    black_box(env.body.response_messages.response_messages.len())
                }
            })
        });
        group.bench_with_input(
            BenchmarkId::new("quick-xml-raw", bytes.len()),
            bytes,
            |b, bytes| b.iter(|| raw_events(black_box(bytes))),
        );
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
