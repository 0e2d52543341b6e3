//! Run many nodes of the real chain runtime in one process, under virtual time and
//! faults, and check consensus invariants as they run (`nestd sim`).
//!
//! Each node is a [`nest_chain::runtime::ChainRuntime`] — the code `nestd run`
//! drives — with its consensus engine and chain type (linked as rlibs, or loaded from a
//! signed package), an in-memory store with crash semantics ([`store::MemStore`]) and
//! host services with real Ed25519 keys ([`services`]). The [`world::World`] of a seed
//! delivers their messages over links with latency, jitter, loss and partitions, crashes
//! and restarts nodes, runs Byzantine twins and a transaction load, and the
//! [`check::Checker`] judges every step. A seed fixes the whole run.

pub mod check;
pub mod cli;
pub mod dag;
pub mod engine;
pub mod faults;
pub mod rng;
pub mod services;
pub mod store;
pub mod world;

pub use check::Violation;
pub use engine::{Engines, Finality};
pub use faults::FaultFamily;
pub use world::{RunOutcome, RunSpec, World};

use serde::Serialize;
use std::time::Instant;

/// Runs one seed.
pub fn run_seed(spec: &RunSpec, engines: &Engines, seed: u64) -> RunOutcome {
    match World::new(spec, engines, seed) {
        Ok(world) => world.run(),
        Err(reason) => RunOutcome {
            seed,
            violations: vec![Violation { seed, kind: "setup".into(), detail: reason }],
            event_digest: nest_sdk::Hash32::ZERO,
            events: 0,
            virtual_ms: 0,
            final_heights: Vec::new(),
            head_heights: Vec::new(),
            byzantine_offences: 0,
            evidence_delays: Vec::new(),
            recorded_offences: Default::default(),
            set_changes: 0,
            membership_changes: 0,
        },
    }
}

/// The summary of many seeds (`--json`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The engine run.
    pub consensus: String,
    /// Authorities per run.
    pub nodes: usize,
    /// Fault families drawn from.
    pub faults: Vec<String>,
    /// Block intervals per run.
    pub heights: u64,
    /// Seeds run.
    pub seeds_run: u64,
    /// Every violation, with its seed and kind.
    pub violations: Vec<Violation>,
    /// Seeds per wall-clock second.
    pub seeds_per_s: f64,
    /// Simulated seconds per wall-clock second (one run's virtual time counted once).
    pub virtual_s_per_wall_s: f64,
    /// Wall-clock time of the whole batch.
    pub wall_s: f64,
    /// Median final height reached (of the highest node) per seed.
    pub final_height_median: u64,
    /// The final height reached (of the highest node) in each seed, ascending.
    #[serde(skip)]
    pub final_heights: Vec<u64>,
}

/// Runs `seeds` one after another, calling `progress` after each.
pub fn run_seeds(
    spec: &RunSpec,
    engines: &Engines,
    seeds: std::ops::Range<u64>,
    mut progress: impl FnMut(&RunOutcome),
) -> Report {
    let started = Instant::now();
    let outcomes: Vec<RunOutcome> = seeds
        .map(|seed| {
            let outcome = run_seed(spec, engines, seed);
            progress(&outcome);
            outcome
        })
        .collect();
    summarize(spec, engines.name(), outcomes, started.elapsed().as_secs_f64().max(1e-9))
}

/// Runs `seeds` on `jobs` threads, each with its own engines from `open` (seeds are
/// independent runs, so splitting them changes no outcome); `progress` sees each
/// outcome, in no fixed order across threads.
pub fn run_seeds_parallel(
    spec: &RunSpec,
    open: impl Fn() -> Result<Engines, String> + Sync,
    seeds: std::ops::Range<u64>,
    jobs: usize,
    progress: impl Fn(&RunOutcome) + Sync,
) -> Result<Report, String> {
    let jobs = jobs.clamp(1, 64) as u64;
    let started = Instant::now();
    let next = std::sync::atomic::AtomicU64::new(seeds.start);
    let reports: Vec<Result<Report, String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                scope.spawn(|| {
                    let engines = open()?;
                    let mut outcomes = Vec::new();
                    loop {
                        let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if seed >= seeds.end {
                            break;
                        }
                        let outcome = run_seed(spec, &engines, seed);
                        progress(&outcome);
                        outcomes.push(outcome);
                    }
                    Ok(summarize(spec, engines.name(), outcomes, 0.0))
                })
            })
            .collect();
        workers.into_iter().map(|worker| worker.join().unwrap_or_else(|_| Err("a worker panicked".into()))).collect()
    });
    let wall_s = started.elapsed().as_secs_f64().max(1e-9);
    let mut merged: Option<Report> = None;
    let mut heights = Vec::new();
    let mut virtual_s = 0.0;
    for report in reports {
        let report = report?;
        virtual_s += report.virtual_s_per_wall_s;
        heights.extend(report.final_heights.iter().copied());
        merged = Some(match merged {
            None => report,
            Some(mut all) => {
                all.seeds_run += report.seeds_run;
                all.violations.extend(report.violations);
                all
            }
        });
    }
    let mut report = merged.ok_or("no seeds run")?;
    report.violations.sort_by_key(|violation| violation.seed);
    heights.sort_unstable();
    report.final_heights = heights;
    report.final_height_median = report.final_heights.get(report.final_heights.len() / 2).copied().unwrap_or(0);
    report.wall_s = wall_s;
    report.seeds_per_s = report.seeds_run as f64 / wall_s;
    // Workers summarize with no wall time, which leaves their virtual seconds as totals.
    report.virtual_s_per_wall_s = virtual_s / wall_s;
    Ok(report)
}

/// A report over `outcomes`; with `wall_s` 0 the rates are left as totals.
fn summarize(spec: &RunSpec, consensus: &str, outcomes: Vec<RunOutcome>, wall_s: f64) -> Report {
    let mut violations = Vec::new();
    let mut virtual_ms: u64 = 0;
    let mut heights = Vec::new();
    let seeds_run = outcomes.len() as u64;
    for outcome in outcomes {
        virtual_ms += outcome.virtual_ms;
        heights.push(outcome.final_heights.iter().copied().max().unwrap_or(0));
        violations.extend(outcome.violations);
    }
    heights.sort_unstable();
    let per = |total: f64| if wall_s > 0.0 { total / wall_s } else { total };
    Report {
        consensus: consensus.to_string(),
        nodes: spec.authorities,
        faults: spec.faults.iter().map(|family| family.name().to_string()).collect(),
        heights: spec.heights,
        seeds_run,
        violations,
        seeds_per_s: per(seeds_run as f64),
        virtual_s_per_wall_s: per(virtual_ms as f64 / 1000.0),
        wall_s,
        final_height_median: heights.get(heights.len() / 2).copied().unwrap_or(0),
        final_heights: heights,
    }
}

/// The command that replays one seed of `spec`.
pub fn replay_command(spec: &RunSpec, engines: &Engines, seed: u64) -> String {
    let faults: Vec<&str> = spec.faults.iter().map(|family| family.name()).collect();
    let faults = if faults.is_empty() { "none".to_string() } else { faults.join(",") };
    let consensus = engines.name();
    let finality = engines.finality().name();
    format!(
        "nestd sim --consensus {consensus} --finality {finality} --nodes {} --heights {} --interval-ms {} --faults {faults}{}{} --seeds {seed}..{}",
        spec.authorities,
        spec.heights,
        spec.interval_ms,
        if spec.transactions { "" } else { " --no-txs" },
        spec.finality_quorum.map(|quorum| format!(" --finality-quorum {quorum}")).unwrap_or_default()
            + &spec
                .validator_change
                .as_ref()
                .map(|(height, powers)| {
                    let powers: Vec<String> = powers.iter().map(u64::to_string).collect();
                    format!(" --validator-change {height}:{}", powers.join(","))
                })
                .unwrap_or_default(),
        seed + 1
    )
}
