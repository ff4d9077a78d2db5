//! Deterministic race simulation of the exmux router core against the emulator's store.
//!
//! One *schedule* builds a fresh [`exmux_emulator::store::Store`] and a client under
//! test, then lets a seeded scheduler (ChaCha8) interleave, in any order:
//! - the embedder's writes through the client (mark read or unread, flag, categorise,
//!   delete, move, copy, create), each applied to the store when chosen while its
//!   response arrives later;
//! - another client's writes to the same two folders;
//! - the server's notices, dropped, duplicated and delivered late or out of order;
//! - sync and fetch requests, computed by the store when the server takes them and
//!   answered later, in each backend's shape (EWS SyncFolderItems: Create, Update with
//!   ChangeKey, ReadFlagChange, Delete; MAPI ICS: message changes with change key and
//!   PCL, read-state changes, deletions);
//! - faults: a write applied whose response is lost, a connection dropped before the
//!   server saw a request, server busy, an expired MAPI session, an expired EWS
//!   subscription, invalidated sync states, a background change-key rewrite.
//!
//! Every choice comes from the seed, so [`run_schedule`] with the same mode and seed
//! replays the same trace. After its steps, a schedule drains every message in flight
//! with faults off, lets time pass for retries, syncs every folder once more (the
//! periodic sync a client does anyway) and checks the invariants of [`Invariant`].
//!
//! [`Mode::NaiveEws`] replaces the router core with a model of the usual EWS client, so
//! the harness measures the failures exmux exists to prevent.

mod world;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::world::World;

/// The client under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Mode {
    /// The router core with everything routed over EWS.
    Ews,
    /// The router core with everything routed over MAPI/HTTP.
    Mapi,
    /// The router core with the hybrid routing: MAPI, except fetches over EWS.
    Hybrid,
    /// A model of the usual EWS client: a notice triggers a folder sync, a change to an
    /// item it does not hold triggers a full resync, and changes to items it wrote in
    /// the last five seconds are ignored.
    NaiveEws,
}

impl Mode {
    /// Every mode, in the order the documentation lists them.
    pub const ALL: [Mode; 4] = [Mode::Ews, Mode::Mapi, Mode::Hybrid, Mode::NaiveEws];

    /// Returns true for the modes that run exmux's router core, which must keep every
    /// invariant.
    pub fn is_exmux(self) -> bool {
        self != Mode::NaiveEws
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Ews => "ews",
            Mode::Mapi => "mapi",
            Mode::Hybrid => "hybrid",
            Mode::NaiveEws => "naive-ews",
        })
    }
}

/// A mode name that is not one of `ews`, `mapi`, `hybrid`, `naive-ews`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown simulation mode {name:?}: use ews, mapi, hybrid or naive-ews")]
pub struct UnknownMode {
    /// The name given.
    pub name: String,
}

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|mode| mode.to_string() == name)
            .ok_or_else(|| UnknownMode {
                name: name.to_owned(),
            })
    }
}

/// The invariants checked when a schedule reaches quiescence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Invariant {
    /// The replica equals the server's folders item by item, with the latest change
    /// keys and read states: no lost and no phantom change.
    ReplicaMatchesServer,
    /// No change the client made is delivered as `Remote`.
    NoEchoAsRemote,
    /// No full resync except one per sync state the server rejected after an
    /// invalidating fault.
    NoSpuriousFullResync,
    /// Applying the delivered stream twice gives the same replica.
    IdempotentStream,
    /// Every message was delivered and the client went idle.
    Quiescence,
}

impl Invariant {
    /// Every invariant, in report order.
    pub const ALL: [Invariant; 5] = [
        Invariant::ReplicaMatchesServer,
        Invariant::NoEchoAsRemote,
        Invariant::NoSpuriousFullResync,
        Invariant::IdempotentStream,
        Invariant::Quiescence,
    ];

    fn index(self) -> usize {
        Invariant::ALL
            .iter()
            .position(|invariant| *invariant == self)
            .unwrap_or(0)
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invariant::ReplicaMatchesServer => "replica matches server",
            Invariant::NoEchoAsRemote => "no own change delivered as remote",
            Invariant::NoSpuriousFullResync => "no full resync without a rejected state",
            Invariant::IdempotentStream => "stream applied twice gives the same replica",
            Invariant::Quiescence => "the client settles",
        })
    }
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which.
    pub invariant: Invariant,
    /// What was seen.
    pub detail: String,
}

/// Counts of one schedule, or summed over many.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Differences between the replica and the server at quiescence (missing, stale or
    /// phantom items).
    pub lost_changes: u64,
    /// Changes the client made that were delivered as `Remote`.
    pub echoes_delivered: u64,
    /// Full resyncs.
    pub full_resyncs: u64,
    /// Changes delivered with origin `Unknown` (after lost responses).
    pub unknown_origin: u64,
    /// Changes delivered as `Remote`.
    pub remote_delivered: u64,
    /// Changes delivered as `Local`.
    pub own_delivered: u64,
    /// Own changes recognised and dropped by the router core.
    pub own_dropped: u64,
    /// Changes to items the client had deleted, dropped as superseded.
    pub superseded_dropped: u64,
    /// Write responses lost (applied or not).
    pub lost_responses: u64,
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.lost_changes += other.lost_changes;
        self.echoes_delivered += other.echoes_delivered;
        self.full_resyncs += other.full_resyncs;
        self.unknown_origin += other.unknown_origin;
        self.remote_delivered += other.remote_delivered;
        self.own_delivered += other.own_delivered;
        self.own_dropped += other.own_dropped;
        self.superseded_dropped += other.superseded_dropped;
        self.lost_responses += other.lost_responses;
    }
}

/// The result of one schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// The mode.
    pub mode: Mode,
    /// The number of scheduler steps before the drain phase.
    pub steps: u32,
    /// The invariants broken, empty when all held.
    pub violations: Vec<Violation>,
    /// The counts.
    pub stats: Stats,
    /// The event trace, when asked for.
    pub trace: Vec<String>,
}

/// Runs the schedule of `seed` in `mode`. `steps` overrides the seeded number of steps
/// (the shrinker uses it); `traced` records the event trace.
pub fn run_schedule(mode: Mode, seed: u64, steps: Option<u32>, traced: bool) -> Outcome {
    match World::new(mode, seed, traced) {
        Some(world) => world.run(steps, seed),
        None => Outcome {
            seed,
            mode,
            steps: 0,
            violations: vec![Violation {
                invariant: Invariant::Quiescence,
                detail: "the store has no Inbox or Drafts folder".to_owned(),
            }],
            stats: Stats::default(),
            trace: Vec::new(),
        },
    }
}

/// Replays a failing seed with fewer steps and returns the traced outcome of the
/// shortest schedule that still breaks an invariant (the original one when no shorter
/// one does).
pub fn shrink(mode: Mode, seed: u64) -> Outcome {
    let full = run_schedule(mode, seed, None, true);
    for steps in 0..full.steps {
        let shorter = run_schedule(mode, seed, Some(steps), true);
        if !shorter.violations.is_empty() {
            return shorter;
        }
    }
    full
}

/// Totals over many schedules.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// The mode.
    pub mode: Mode,
    /// The first seed.
    pub from: u64,
    /// Schedules run.
    pub schedules: u64,
    /// Schedules that broke any invariant.
    pub violations: u64,
    /// Schedules that broke each invariant, by name.
    pub per_invariant: Vec<(Invariant, u64)>,
    /// Differences between replica and server at quiescence, summed.
    pub lost_changes: u64,
    /// Own changes delivered as remote, summed.
    pub echoes_delivered: u64,
    /// Full resyncs, summed.
    pub full_resyncs: u64,
    /// Changes of unknown origin delivered, summed.
    pub unknown_origin: u64,
    /// Remote changes delivered, summed.
    pub remote_delivered: u64,
    /// Own changes recognised and dropped, summed.
    pub own_dropped: u64,
    /// Changes superseded by the client's own deletion, summed.
    pub superseded_dropped: u64,
    /// Write responses lost, summed.
    pub lost_responses: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Schedules per second over all threads.
    pub schedules_per_second: f64,
    /// Worker threads.
    pub threads: usize,
    /// The seeds that broke an invariant, the first 20.
    pub failing_seeds: Vec<u64>,
}

/// Runs `count` schedules from seed `from` on `threads` threads (seeds are split
/// round-robin) and sums them. `progress` is called with the number of schedules
/// finished so far, every few hundred schedules per thread.
pub fn run_seeds(
    mode: Mode,
    from: u64,
    count: u64,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Summary {
    let threads = threads.max(1);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let parts: Vec<(u64, Stats, [u64; 5], Vec<u64>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|thread| {
                let done = &done;
                scope.spawn(move || {
                    let mut stats = Stats::default();
                    let mut broken = [0u64; 5];
                    let mut failing = Vec::new();
                    let mut failed = 0u64;
                    let mut local = 0u64;
                    let mut offset = thread;
                    while offset < count {
                        let seed = from.wrapping_add(offset);
                        let outcome = run_schedule(mode, seed, None, false);
                        stats.add(&outcome.stats);
                        if !outcome.violations.is_empty() {
                            failed += 1;
                            if failing.len() < 20 {
                                failing.push(seed);
                            }
                            let mut seen = [false; 5];
                            for violation in &outcome.violations {
                                seen[violation.invariant.index()] = true;
                            }
                            for (count, seen) in broken.iter_mut().zip(seen) {
                                *count += u64::from(seen);
                            }
                        }
                        local += 1;
                        if local.is_multiple_of(256) {
                            let total = done.fetch_add(256, Ordering::Relaxed) + 256;
                            progress(total);
                        }
                        offset += threads as u64;
                    }
                    done.fetch_add(local % 256, Ordering::Relaxed);
                    (failed, stats, broken, failing)
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|handle| handle.join().ok())
            .collect()
    });
    progress(done.load(Ordering::Relaxed));

    let seconds = started.elapsed().as_secs_f64();
    let mut stats = Stats::default();
    let mut broken = [0u64; 5];
    let mut failing_seeds = Vec::new();
    let mut violations = 0;
    for (failed, part, part_broken, failing) in &parts {
        violations += failed;
        stats.add(part);
        for (total, count) in broken.iter_mut().zip(part_broken) {
            *total += count;
        }
        failing_seeds.extend(failing);
    }
    failing_seeds.sort_unstable();
    failing_seeds.truncate(20);
    Summary {
        mode,
        from,
        schedules: count,
        violations,
        per_invariant: Invariant::ALL.into_iter().zip(broken).collect(),
        lost_changes: stats.lost_changes,
        echoes_delivered: stats.echoes_delivered,
        full_resyncs: stats.full_resyncs,
        unknown_origin: stats.unknown_origin,
        remote_delivered: stats.remote_delivered,
        own_dropped: stats.own_dropped,
        superseded_dropped: stats.superseded_dropped,
        lost_responses: stats.lost_responses,
        seconds,
        schedules_per_second: if seconds > 0.0 {
            count as f64 / seconds
        } else {
            0.0
        },
        threads,
        failing_seeds,
    }
}
