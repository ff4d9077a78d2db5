#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Runs the fuzz entry points on stable over a few thousand generated inputs each:
//! mutations of captured and encoder-made buffers, plus random bytes. The cargo-fuzz
//! targets call the same functions for longer runs.

use exmux_mapihttp::fxics::{FxWriter, fuzz_stream};
use exmux_mapihttp::ids::Guid;
use exmux_mapihttp::idset::{IcsState, IdSet, IdsetForm, Replica, fuzz_idset};
use exmux_mapihttp::prop::{PropTag, PropValue};
use exmux_mapihttp::rop::fuzz::rop_buffers;

/// A small deterministic generator, so a failure reproduces from the test alone.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() as usize) % n
        }
    }
}

fn mutate(rng: &mut Lcg, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = rng.next() as u8;
            }
            2 => data.truncate(rng.below(data.len() + 1)),
            3 => {
                let i = rng.below(data.len() + 1);
                data.insert(i, [0x00, 0xFF, 0x80, 0x7F, 0xBA, 0x01][rng.below(6)]);
            }
            4 if data.len() > 2 => {
                let i = rng.below(data.len() - 1);
                data[i] = 0xFF;
                data[i + 1] = 0xFF;
            }
            _ => {
                let len = rng.below(16);
                data.extend((0..len).map(|_| rng.next() as u8));
            }
        }
    }
    data
}

fn parse_hex(text: &str) -> Vec<u8> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split_whitespace())
        .filter_map(|pair| u8::from_str_radix(pair, 16).ok())
        .collect()
}

fn shared_seeds(pattern: &str) -> Vec<Vec<u8>> {
    let Some(dir) = exmux_testkit::shared_dir() else {
        return Vec::new();
    };
    let mut seeds = Vec::new();
    for folder in ["captures/mapi", "captures/mapi-gromox"] {
        let Ok(entries) = std::fs::read_dir(dir.join(folder)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.contains(pattern) {
                continue;
            }
            if name.ends_with(".hex") {
                seeds.push(parse_hex(&std::fs::read_to_string(entry.path()).unwrap()));
            } else if name.ends_with(".bin") {
                // Large streams are cut to keep the run short.
                let bytes = std::fs::read(entry.path()).unwrap();
                seeds.push(bytes[..bytes.len().min(2048)].to_vec());
            }
        }
    }
    seeds
}

fn run(entry: fn(&[u8]), seeds: &[Vec<u8>], count: usize, seed: u64) {
    let mut rng = Lcg(seed);
    for seed in seeds {
        entry(seed);
    }
    for i in 0..count {
        let input = if seeds.is_empty() || i % 5 == 0 {
            let len = rng.below(64);
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            let pick = rng.below(seeds.len());
            mutate(&mut rng, &seeds[pick])
        };
        entry(&input);
    }
}

#[test]
fn rop_buffer_entry_point() {
    let mut seeds = shared_seeds("rop");
    seeds.push(vec![0x02, 0x00]);
    run(rop_buffers, &seeds, 4000, 1);
}

#[test]
fn fasttransfer_entry_point() {
    let mut seeds = shared_seeds("fxstream");
    let guid = Guid([3; 16]);
    let mut state = IcsState::default();
    state.idset_given.insert_range(Replica::Guid(guid), 1, 100);
    let mut writer = FxWriter::new();
    writer
        .folder_change(&[])
        .value(PropTag(0x3001_001F), PropValue::Unicode("Inbox".into()))
        .state(&state, false)
        .end();
    seeds.push([&[0u8][..], writer.bytes()].concat());
    run(fuzz_stream, &seeds, 3000, 2);
}

#[test]
fn idset_entry_point() {
    let mut seeds = shared_seeds("idset");
    let mut set = IdSet::new();
    set.insert_range(Replica::Id(1), 0x1000, 0x1010);
    set.insert(Replica::Id(2), 0xFFFF_FFFF_FFFF);
    seeds.push(set.encode(IdsetForm::ReplId));
    run(fuzz_idset, &seeds, 4000, 3);
}
