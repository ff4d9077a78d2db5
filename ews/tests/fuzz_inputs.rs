//! Runs the fuzz targets' entry points over a few thousand generated inputs on stable:
//! mutations (bit flips, truncations, splices, inserted markup) of the shared captures
//! and of bodies this crate writes, plus random bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use exmux_ews::fuzzing::{frame_stream, parse_response};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![
        exmux_ews::sample::sync_folder_items_response(3).unwrap(),
        exmux_ews::sample::find_item_response(2).unwrap(),
    ];
    for dir in ["captures/ews", "captures/ews-gromox", "cases/inputs"] {
        let Some(path) = common::shared(dir) else {
            continue;
        };
        for entry in std::fs::read_dir(path).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "xml") {
                let bytes = std::fs::read(&p).unwrap();
                if bytes.len() < 40_000 {
                    seeds.push(bytes);
                }
            }
        }
    }
    seeds
}

const MARKUP: &[&[u8]] = &[
    b"<",
    b">",
    b"/>",
    b"</x>",
    b"&#x1A;",
    b"&#0;",
    b"&bogus;",
    b"<!DOCTYPE a>",
    b"<![CDATA[",
    b"]]>",
    b"<!--",
    b"-->",
    b"\"",
    b"<?x ?>",
    b"xmlns:t=\"urn:other\"",
];

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.truncate(rng.below(v.len() + 1)),
            2 => {
                let at = rng.below(v.len() + 1);
                let m = MARKUP[rng.below(MARKUP.len())];
                v.splice(at..at, m.iter().copied());
            }
            3 if !v.is_empty() => {
                let a = rng.below(v.len());
                let b = (a + rng.below(64)).min(v.len());
                v.drain(a..b);
            }
            4 => {
                let at = rng.below(v.len() + 1);
                let from = rng.below(other.len() + 1);
                let to = (from + rng.below(200)).min(other.len());
                v.splice(at..at, other[from..to].iter().copied());
            }
            _ => {
                let n = rng.below(32);
                v.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
    v
}

#[test]
fn generated_inputs_never_panic() {
    let seeds = seeds();
    let mut rng = Rng(0x5EED_F0E7);
    for round in 0..3000 {
        let seed = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())];
        let input = if round % 10 == 0 {
            (0..rng.below(300)).map(|_| rng.next() as u8).collect()
        } else {
            mutate(&mut rng, seed, other)
        };
        parse_response(&input);
        frame_stream(&input);
    }
    // The unmutated seeds too, and concatenations as a streaming body would carry them.
    for s in &seeds {
        parse_response(s);
        frame_stream(s);
        frame_stream(&[s.as_slice(), s.as_slice()].concat());
    }
}
