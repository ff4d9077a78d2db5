//! `exmux sim`: the deterministic race simulation of the router core against the
//! emulator's store (crate exmux-sim).

use std::process::ExitCode;

use exmux_sim::{Mode, Summary, run_seeds, shrink};
use indicatif::{ProgressBar, ProgressStyle};

/// Runs `seeds` schedules from seed `from` in `mode` on every core, prints the counts
/// (or one JSON object) and, for the first failing seed, its shortest trace. Exits 1
/// when an exmux mode broke an invariant; the naive model is expected to.
pub fn run(mode: Mode, seeds: u64, from: u64, json: bool) -> ExitCode {
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let bar = ProgressBar::new(seeds);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} schedules, {per_sec}, {elapsed_precise} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let summary = run_seeds(mode, from, seeds, threads, &|done| bar.set_position(done));
    bar.finish_and_clear();

    let failure = summary
        .failing_seeds
        .first()
        .map(|seed| shrink(mode, *seed));
    if json {
        let mut value = serde_json::to_value(&summary).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert(
                "per_invariant".to_owned(),
                summary
                    .per_invariant
                    .iter()
                    .map(|(invariant, count)| {
                        (
                            serde_json::to_value(invariant)
                                .ok()
                                .and_then(|name| name.as_str().map(str::to_owned))
                                .unwrap_or_default(),
                            serde_json::Value::from(*count),
                        )
                    })
                    .collect::<serde_json::Map<_, _>>()
                    .into(),
            );
            object.insert(
                "first_failure".to_owned(),
                serde_json::to_value(&failure).unwrap_or_default(),
            );
        }
        outln!("{value}");
    } else {
        print_summary(&summary);
        if let Some(failure) = &failure {
            outln!();
            outln!(
                "shortest failing schedule: seed {} in mode {} with {} steps (replay: exmux sim --mode {} --seeds 1 --from {})",
                failure.seed,
                failure.mode,
                failure.steps,
                failure.mode,
                failure.seed
            );
            for violation in &failure.violations {
                outln!("  broken: {}: {}", violation.invariant, violation.detail);
            }
            for line in &failure.trace {
                outln!("  {line}");
            }
        }
    }

    if summary.violations > 0 && mode.is_exmux() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_summary(summary: &Summary) {
    outln!("mode                     {}", summary.mode);
    outln!(
        "schedules                {} (seeds {}..{})",
        summary.schedules,
        summary.from,
        summary.from.saturating_add(summary.schedules)
    );
    outln!("schedules with violations {}", summary.violations);
    for (invariant, count) in &summary.per_invariant {
        outln!("  {invariant:<45} {count}");
    }
    outln!("lost changes             {}", summary.lost_changes);
    outln!("echoes delivered         {}", summary.echoes_delivered);
    outln!("full resyncs             {}", summary.full_resyncs);
    outln!("unknown origin           {}", summary.unknown_origin);
    outln!("remote delivered         {}", summary.remote_delivered);
    outln!("own changes dropped      {}", summary.own_dropped);
    outln!("superseded dropped       {}", summary.superseded_dropped);
    outln!("write responses lost     {}", summary.lost_responses);
    outln!(
        "schedules per second     {:.0} on {} threads ({:.1} s)",
        summary.schedules_per_second,
        summary.threads,
        summary.seconds
    );
}
