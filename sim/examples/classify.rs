//! Triage of failing schedules: counts the broken invariants by their detail (item
//! names and message ids left out) with the first seeds of each class, or prints the
//! shortest trace of one seed.
//!
//! ```sh
//! cargo run --release -p exmux-sim --example classify -- ews 20000
//! cargo run --release -p exmux-sim --example classify -- ews 153 trace
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use exmux_sim::{Mode, run_schedule, shrink};

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: classify MODE SEEDS | classify MODE SEED trace";
    let mode: Mode = args.next().expect(usage).parse().expect(usage);
    let number: u64 = args.next().expect(usage).parse().expect(usage);

    if args.next().as_deref() == Some("trace") {
        let outcome = shrink(mode, number);
        for violation in &outcome.violations {
            println!("broken: {}: {}", violation.invariant, violation.detail);
        }
        for line in &outcome.trace {
            println!("{line}");
        }
        return;
    }

    let mut classes: BTreeMap<String, (u64, Vec<u64>)> = BTreeMap::new();
    for seed in 0..number {
        let outcome = run_schedule(mode, seed, None, false);
        for violation in outcome.violations {
            let first = violation.detail.split(';').next().unwrap_or_default();
            let class = first
                .split_whitespace()
                .filter(|word| !word.starts_with("mid:") && !word.starts_with("item-"))
                .collect::<Vec<_>>()
                .join(" ");
            let entry = classes.entry(class).or_default();
            entry.0 += 1;
            if entry.1.len() < 5 {
                entry.1.push(seed);
            }
        }
    }

    let mut sorted: Vec<_> = classes.into_iter().collect();
    sorted.sort_by_key(|(_, (count, _))| std::cmp::Reverse(*count));
    for (class, (count, seeds)) in sorted {
        println!("{count:>8}  {class}  (seeds {seeds:?})");
    }
}
