//! Parses one generated response once with one reader, for instruction counts under
//! `valgrind --tool=callgrind`, where criterion's repeated runs would only add noise.
//!
//! Usage: `parse_once READER INPUT`, with READER one of `exmux`, `ews-crate`, `raw` or
//! `none` (generate only, the baseline to subtract) and INPUT one of `sync512`,
//! `sync5000` or `find1000`. See docs/BENCHMARKS.md, "EWS parsing".
//!
//! For peak heap under `valgrind --tool=dhat`, `parse_once dump INPUT > FILE` writes the
//! response to a file and `parse_once READER FILE` parses that file, so the generator's
//! own allocations do not set the peak.
//!
//! `parse_once READER INPUT REPEAT` parses REPEAT times and prints the fastest and the
//! median wall-clock time. The fastest of many runs is the least disturbed by other
//! work on a shared machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use exmux_ews::ops::sync::{FindItemReader, SyncItemsReader};
use exmux_ews::sample;
use std::hint::black_box;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(reader), Some(input)) = (args.get(1), args.get(2)) else {
        eprintln!(
            "usage: parse_once exmux|ews-crate|raw|none|dump sync512|sync5000|find1000|FILE [REPEAT]"
        );
        std::process::exit(2);
    };
    let (bytes, is_sync) = match input.as_str() {
        "sync512" => (sample::sync_folder_items_response(512).unwrap(), true),
        "sync5000" => (sample::sync_folder_items_response(5000).unwrap(), true),
        "find1000" => (sample::find_item_response(1000).unwrap(), false),
        path if std::path::Path::new(path).is_file() => {
            let bytes = std::fs::read(path).unwrap();
            let is_sync = bytes
                .windows(b"SyncFolderItemsResponse".len())
                .any(|w| w == b"SyncFolderItemsResponse");
            (bytes, is_sync)
        }
        other => {
            eprintln!("unknown input {other}");
            std::process::exit(2);
        }
    };
    if reader == "dump" {
        use std::io::Write;
        std::io::stdout().write_all(&bytes).unwrap();
        return;
    }
    let repeat: usize = args.get(3).map_or(1, |n| n.parse().unwrap());
    let mut times = Vec::with_capacity(repeat);
    let mut count = 0;
    for _ in 0..repeat.max(1) {
        let started = std::time::Instant::now();
        count = parse(reader, &bytes, is_sync);
        times.push(started.elapsed());
    }
    if repeat > 1 {
        times.sort();
        let mib = bytes.len() as f64 / (1024.0 * 1024.0);
        let fastest = times[0];
        let median = times[times.len() / 2];
        println!(
            "{reader} {input}: fastest {:.3} ms ({:.1} MiB/s), median {:.3} ms ({:.1} MiB/s) over {repeat} runs",
            fastest.as_secs_f64() * 1e3,
            mib / fastest.as_secs_f64(),
            median.as_secs_f64() * 1e3,
            mib / median.as_secs_f64(),
        );
    }
    println!("{reader} {input}: {} bytes, {count}", bytes.len());
}

/// Parses `bytes` once with `reader` and returns the number of changes, items or events.
fn parse(reader: &str, bytes: &[u8], is_sync: bool) -> usize {
    match reader {
        "none" => 0,
        "exmux" if is_sync => {
            let mut n = 0;
            for change in SyncItemsReader::new(bytes).unwrap() {
                black_box(change.unwrap());
                n += 1;
            }
            n
        }
        "exmux" => {
            let mut n = 0;
            for item in FindItemReader::new(bytes).unwrap() {
                black_box(item.unwrap());
                n += 1;
            }
            n
        }
        "ews-crate" if is_sync => {
            let env = ews::soap::Envelope::<ews::sync_folder_items::SyncFolderItemsResponse>::from_xml_document(bytes).unwrap();
            black_box(env.body.response_messages.response_messages.len())
        }
        "ews-crate" => {
            let env =
                ews::soap::Envelope::<ews::find_item::FindItemResponse>::from_xml_document(bytes)
                    .unwrap();
            black_box(env.body.response_messages.response_messages.len())
        }
        "raw" => {
            let mut reader = quick_xml::Reader::from_reader(bytes);
            let mut n = 0;
            while !matches!(reader.read_event().unwrap(), quick_xml::events::Event::Eof) {
                n += 1;
            }
            n
        }
        other => {
            eprintln!("unknown reader {other}");
            std::process::exit(2);
        }
    }
}
