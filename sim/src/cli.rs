//! `nestd sim`: run a range of seeds, print failing seeds with the command that replays
//! each, the throughput, and a JSON report on request.

use crate::{
    Engines, FaultFamily, Finality, Report, RunSpec, faults::parse_families, replay_command, run_seeds,
    run_seeds_parallel,
};
use nest_node::loader::LoadOptions;
use nest_node::package::cli::parse_trust;
use std::path::PathBuf;

/// Options of `nestd sim`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimOptions {
    /// The chain type: `linear` (a main chain under `--consensus`) or `dag` (the
    /// chain-dag tangle, confirmed by checkpoints; `--heights` counts checkpoints and
    /// `--interval-ms` is the time between them).
    #[arg(long, default_value = "linear")]
    pub chain: String,
    /// The consensus engine: `poa`, `bft` or `dpos` (built in), or a signed package directory.
    #[arg(long, default_value = "poa")]
    pub consensus: String,
    /// How units become final: `votes` (the engine attests; PoA) or `decided` (the engine
    /// commits only what it decided; BFT). Defaults to the built-in engine's, and to
    /// `votes` for a package.
    #[arg(long)]
    pub finality: Option<Finality>,
    /// Vendor keys trusted for a package engine, as `name=hex` or `hex` (repeatable).
    #[arg(long)]
    pub trust: Vec<String>,
    /// Authorities, each on its own node (Byzantine twins add nodes).
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Seeds to run, as `A..B` (B excluded).
    #[arg(long, default_value = "0..100")]
    pub seeds: String,
    /// Fault families, comma-separated (delay, loss, partition, crash, twins), `all`
    /// (every family the engine declares it tolerates) or `none`.
    #[arg(long, default_value = "all")]
    pub faults: String,
    /// Length of each run in block intervals.
    #[arg(long, default_value_t = 200)]
    pub heights: u64,
    /// Block interval of the simulated chain, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Run without the transfer load.
    #[arg(long)]
    pub no_txs: bool,
    /// Votes that make a unit final, instead of 2n/3 + 1: to watch an unsafe setting fail.
    #[arg(long)]
    pub finality_quorum: Option<usize>,
    /// A validator-set change recorded at genesis, as `HEIGHT:P1,P2,...` (the power of
    /// each authority from HEIGHT on; 0 removes it), for engines that read validators
    /// from the ledger.
    #[arg(long, value_parser = parse_validator_change)]
    pub validator_change: Option<(u64, Vec<u64>)>,
    /// Threads running seeds side by side (seeds are independent runs).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Parses `A..B`.
pub fn parse_seeds(text: &str) -> Result<std::ops::Range<u64>, String> {
    let (from, to) = text.split_once("..").ok_or_else(|| format!("--seeds {text}: expected A..B, e.g. 0..1000"))?;
    let number = |part: &str| part.trim().parse::<u64>().map_err(|e| format!("--seeds {text}: `{part}`: {e}"));
    let (from, to) = (number(from)?, number(to)?);
    if from >= to {
        return Err(format!("--seeds {text}: the range is empty (B is excluded)"));
    }
    Ok(from..to)
}

/// Checks the options and builds the run's spec and engines.
pub fn prepare(options: &SimOptions) -> Result<(RunSpec, Engines), String> {
    if !(1..=64).contains(&options.nodes) {
        return Err(format!("--nodes {}: between 1 and 64", options.nodes));
    }
    if options.heights < 40 {
        return Err(format!(
            "--heights {}: at least 40, so that faults heal with time left to recover",
            options.heights
        ));
    }
    if let Some((_, powers)) = &options.validator_change
        && powers.len() != options.nodes
    {
        return Err(format!("--validator-change: {} powers for {} authorities (--nodes)", powers.len(), options.nodes));
    }
    if options.finality_quorum.is_some_and(|quorum| quorum == 0 || quorum > options.nodes) {
        return Err(format!("--finality-quorum: between 1 and --nodes ({})", options.nodes));
    }
    if !(50..=60_000).contains(&options.interval_ms) {
        return Err(format!("--interval-ms {}: between 50 and 60000", options.interval_ms));
    }
    let load = LoadOptions { trust: parse_trust(&options.trust)?, allow_unsigned: false };
    let engines = Engines::open(&options.consensus, options.finality, &load)?;
    let faults = parse_families(&options.faults, &engines.tolerated())?;
    let spec = RunSpec {
        authorities: options.nodes,
        interval_ms: options.interval_ms,
        heights: options.heights,
        faults,
        transactions: !options.no_txs,
        finality_quorum: options.finality_quorum,
        validator_change: options.validator_change.clone(),
    };
    Ok((spec, engines))
}

/// Runs `nestd sim`; an error (or a violation) makes the exit status non-zero.
pub fn run(options: &SimOptions) -> Result<(), String> {
    let seeds = parse_seeds(&options.seeds)?;
    match options.chain.as_str() {
        "linear" => {}
        "dag" => return run_dag(options, seeds),
        other => return Err(format!("--chain {other}: expected linear or dag")),
    }
    let (spec, engines) = prepare(options)?;
    let untolerated: Vec<&FaultFamily> =
        spec.faults.iter().filter(|family| !engines.tolerated().contains(family)).collect();
    if !untolerated.is_empty() {
        let names: Vec<&str> = untolerated.iter().map(|family| family.name()).collect();
        eprintln!("note: {} does not declare that it tolerates {}", engines.name(), names.join(", "));
    }
    let progress = |outcome: &crate::RunOutcome| {
        if let Some(first) = outcome.violations.first() {
            let replay = replay_command(&spec, &engines, outcome.seed);
            println!(
                "seed {} FAILED {}: {}\n  final heights {:?}, head heights {:?}\n  replay: {replay}",
                outcome.seed, first.kind, first.detail, outcome.final_heights, outcome.head_heights
            );
        }
    };
    let report = if options.jobs > 1 {
        let open = || prepare(options).map(|(_, engines)| engines);
        run_seeds_parallel(&spec, open, seeds, options.jobs, progress)?
    } else {
        run_seeds(&spec, &engines, seeds, progress)
    };
    finish(&report, options.json.as_deref())
}

/// `nestd sim --chain dag`.
fn run_dag(options: &SimOptions, seeds: std::ops::Range<u64>) -> Result<(), String> {
    if !(1..=64).contains(&options.nodes) {
        return Err(format!("--nodes {}: between 1 and 64", options.nodes));
    }
    if !(4..=10_000).contains(&options.heights) {
        return Err(format!("--heights {}: between 4 and 10000 checkpoints", options.heights));
    }
    if !(50..=60_000).contains(&options.interval_ms) {
        return Err(format!("--interval-ms {}: between 50 and 60000", options.interval_ms));
    }
    let faults = parse_families(&options.faults, &crate::dag::DAG_FAULTS)?;
    let spec = crate::dag::DagSpec {
        nodes: options.nodes,
        checkpoints: options.heights,
        interval_ms: options.interval_ms,
        faults,
    };
    let families: Vec<&str> = spec.faults.iter().map(|family| family.name()).collect();
    let replay = |seed: u64| {
        format!(
            "nestd sim --chain dag --nodes {} --heights {} --interval-ms {} --faults {} --seeds {seed}..{}",
            spec.nodes,
            spec.checkpoints,
            spec.interval_ms,
            if families.is_empty() { "none".to_string() } else { families.join(",") },
            seed + 1
        )
    };
    let progress = |outcome: &crate::dag::DagOutcome| {
        if let Some(first) = outcome.violations.first() {
            println!(
                "seed {} FAILED {}: {}\n  replay: {}",
                outcome.seed,
                first.kind,
                first.detail,
                replay(outcome.seed)
            );
        }
    };
    let report = crate::dag::run_seeds(&spec, seeds, options.jobs, progress);
    finish(&report, options.json.as_deref())
}

/// Prints the summary, writes the JSON report when asked, and fails on a violation.
fn finish(report: &Report, json: Option<&std::path::Path>) -> Result<(), String> {
    print_summary(report);
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if report.violations.is_empty() {
        Ok(())
    } else {
        Err(format!("{} violations in {} seeds", report.violations.len(), report.seeds_run))
    }
}

fn print_summary(report: &Report) {
    let faults = if report.faults.is_empty() { "none".to_string() } else { report.faults.join(",") };
    println!(
        "{} seeds of {} on {} nodes, faults {faults}, {} heights: {} violations; {:.2} seeds/s, {:.0} simulated s per wall s ({:.1} s), median final height {}",
        report.seeds_run,
        report.consensus,
        report.nodes,
        report.heights,
        report.violations.len(),
        report.seeds_per_s,
        report.virtual_s_per_wall_s,
        report.wall_s,
        report.final_height_median
    );
}

/// Parses `--validator-change HEIGHT:P1,P2,...`.
fn parse_validator_change(text: &str) -> Result<(u64, Vec<u64>), String> {
    let usage = || format!("--validator-change {text}: expected HEIGHT:P1,P2,... (for example 20:2,2,2,1)");
    let (height, powers) = text.split_once(':').ok_or_else(usage)?;
    let height: u64 = height.trim().parse().map_err(|_| usage())?;
    if height < 2 {
        return Err(format!("--validator-change {text}: the height must be at least 2 (genesis sets height 1)"));
    }
    let powers = powers.split(',').map(|power| power.trim().parse::<u64>()).collect::<Result<Vec<_>, _>>();
    let powers = powers.map_err(|_| usage())?;
    if powers.iter().all(|power| *power == 0) {
        return Err(format!("--validator-change {text}: at least one authority must keep power"));
    }
    Ok((height, powers))
}
