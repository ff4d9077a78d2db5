#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

//! Bounded runs of every mode, and replay of a seed.

use exmux_sim::{Invariant, Mode, run_schedule, run_seeds, shrink};

/// Seeds per mode in the test suite; the release runs in docs/SIMULATION.md go further.
const SEEDS: u64 = 2_000;

fn explain(mode: Mode, seeds: &[u64]) -> String {
    let Some(seed) = seeds.first() else {
        return String::new();
    };
    let outcome = shrink(mode, *seed);
    format!(
        "seed {} in mode {mode} ({} steps): {:?}\n{}",
        outcome.seed,
        outcome.steps,
        outcome.violations,
        outcome.trace.join("\n")
    )
}

// Every exmux mode must keep every invariant. Runs of a million seeds per mode, in
// release builds, found no broken invariant either, but they take too long for the
// test suite. Counts per invariant make a failure show which one broke.
fn assert_known(mode: Mode, expected: [u64; 5]) {
    let summary = run_seeds(mode, 0, SEEDS, 2, &|_| {});
    assert_eq!(summary.schedules, SEEDS);
    let counts: Vec<u64> = summary
        .per_invariant
        .iter()
        .map(|(_, count)| *count)
        .collect();
    assert_eq!(
        counts,
        expected,
        "{summary:?}\n{}",
        explain(mode, &summary.failing_seeds)
    );
    let idempotent = summary.per_invariant[3].1;
    assert_eq!(idempotent, 0);
}

#[test]
fn ews_routing_breaks_only_known_invariants() {
    assert_known(Mode::Ews, [0, 0, 0, 0, 0]);
}

#[test]
fn mapi_routing_breaks_only_known_invariants() {
    assert_known(Mode::Mapi, [0, 0, 0, 0, 0]);
}

#[test]
fn hybrid_routing_breaks_only_known_invariants() {
    assert_known(Mode::Hybrid, [0, 0, 0, 0, 0]);
}

#[test]
fn naive_ews_client_shows_spurious_full_resyncs() {
    // Spurious full resyncs take a rare interleaving, hence more seeds than above.
    let summary = run_seeds(Mode::NaiveEws, 0, 10 * SEEDS, 2, &|_| {});
    let spurious = summary
        .per_invariant
        .iter()
        .find(|(invariant, _)| *invariant == Invariant::NoSpuriousFullResync)
        .map_or(0, |(_, count)| *count);
    assert!(summary.full_resyncs >= 1, "{summary:?}");
    assert!(spurious >= 1, "{summary:?}");
    assert!(summary.violations >= 1, "{summary:?}");
}

#[test]
fn the_same_seed_replays_the_same_trace() {
    for mode in Mode::ALL {
        for seed in [0, 7, 12_345] {
            let first = run_schedule(mode, seed, None, true);
            let second = run_schedule(mode, seed, None, true);
            assert!(!first.trace.is_empty());
            assert_eq!(first, second, "mode {mode}, seed {seed}");
        }
    }
}

#[test]
fn different_seeds_give_different_schedules() {
    let first = run_schedule(Mode::Hybrid, 1, None, true);
    let second = run_schedule(Mode::Hybrid, 2, None, true);
    assert_ne!(first.trace, second.trace);
}

#[test]
fn traces_have_no_debug_forms() {
    // Rust's Debug output shows as `Some(`, `None`, struct braces or tuple-struct names.
    let debug_marks = ["Some(", "None", " { ", "Globcnt(", "ChangeKey(", "Ews("];
    for mode in Mode::ALL {
        for seed in 0..40 {
            let outcome = run_schedule(mode, seed, None, true);
            for line in &outcome.trace {
                for mark in debug_marks {
                    assert!(!line.contains(mark), "mode {mode}, seed {seed}: {line}");
                }
            }
        }
    }
}
