//! Run many nodes of the real chain runtime in one process, under virtual time and
//! faults, and check consensus invariants as they run (`nestd sim`).
//!
//! Each node is a [`nest_host::node::chain::ChainRuntime`] — the code `nestd run`
//! drives — with its consensus engine and chain type (linked as rlibs, or loaded from a
//! signed package), an in-memory store with crash semantics ([`store::MemStore`]) and
//! host services with real Ed25519 keys ([`services`]). The [`world::World`] of a seed
//! delivers their messages over links with latency, jitter, loss and partitions, crashes
//! and restarts nodes, runs Byzantine twins and a transaction load, and the
//! [`check::Checker`] judges every step. A seed fixes the whole run.

pub mod check;
pub mod cli;
pub mod engine;
pub mod faults;
pub mod rng;
pub mod services;
pub mod store;
pub mod world;

pub use check::Violation;
pub use engine::Engines;
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
}

/// Runs `seeds`, calling `progress` after each; stops early after `stop_after` failing seeds.
pub fn run_seeds(
    spec: &RunSpec,
    engines: &Engines,
    seeds: std::ops::Range<u64>,
    mut progress: impl FnMut(&RunOutcome),
) -> Report {
    let started = Instant::now();
    let mut violations = Vec::new();
    let mut virtual_ms: u64 = 0;
    let mut heights = Vec::new();
    let mut seeds_run = 0;
    for seed in seeds {
        let outcome = run_seed(spec, engines, seed);
        seeds_run += 1;
        virtual_ms += outcome.virtual_ms;
        heights.push(outcome.final_heights.iter().copied().max().unwrap_or(0));
        progress(&outcome);
        violations.extend(outcome.violations);
    }
    let wall_s = started.elapsed().as_secs_f64().max(1e-9);
    heights.sort_unstable();
    Report {
        consensus: engines.name().to_string(),
        nodes: spec.authorities,
        faults: spec.faults.iter().map(|family| family.name().to_string()).collect(),
        heights: spec.heights,
        seeds_run,
        violations,
        seeds_per_s: seeds_run as f64 / wall_s,
        virtual_s_per_wall_s: virtual_ms as f64 / 1000.0 / wall_s,
        wall_s,
        final_height_median: heights.get(heights.len() / 2).copied().unwrap_or(0),
    }
}

/// The command that replays one seed of `spec`.
pub fn replay_command(spec: &RunSpec, consensus: &str, seed: u64) -> String {
    let faults: Vec<&str> = spec.faults.iter().map(|family| family.name()).collect();
    let faults = if faults.is_empty() { "none".to_string() } else { faults.join(",") };
    format!(
        "nestd sim --consensus {consensus} --nodes {} --heights {} --interval-ms {} --faults {faults}{}{} --seeds {seed}..{}",
        spec.authorities,
        spec.heights,
        spec.interval_ms,
        if spec.transactions { "" } else { " --no-txs" },
        spec.finality_quorum.map(|quorum| format!(" --finality-quorum {quorum}")).unwrap_or_default(),
        seed + 1
    )
}
