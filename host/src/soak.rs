//! Kill the nodes of a local devnet with SIGKILL at random moments and restart them,
//! checking after each restart that no final block was lost, that every node holds the
//! same block at every final height and that the chain keeps finalizing (`nestd soak`).
//!
//! The devnet is the one `nestd up` runs (the same manifests, radios and simulated
//! devices, whose anchors put transactions in the blocks), written in a fresh directory;
//! its nodes are `nestd run` processes of this binary. The kill schedule follows from a
//! seed ([`plan`]). One node is down at a time: with four validators the other three keep
//! the quorum of PoA and BFT, so the chain goes on while a node is down.
//!
//! A failed run stops the nodes, keeps the directory and names the seed, the kill, the
//! node and what was seen.

pub mod commit_log;
pub mod plan;

use crate::client::Client;
use crate::devnet::Consensus;
use crate::node::status::{ChainStatus, NodeStatus};
use crate::rng::Rng;
use crate::up::{self, NodeProcess};
use commit_log::CommitLog;
use nest_sdk::Hash32;
use plan::{KillPlan, Moment};
use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// The chain the soak watches (the devnet's only chain).
const CHAIN: &str = "main";
/// Final heights below the newly checked ones compared again on every node after each
/// restart, drawn at random: a restarted node must still hold what it held before.
const RANDOM_RECHECKS: usize = 3;
/// How often a kill waiting for a new final block asks the node for its height.
const COMMIT_POLL_MS: u64 = 5;
/// How often a kill waiting for a restarted node's first commit reads its log.
const LOG_POLL_MS: u64 = 2;
/// How often the other waits ask the nodes for their heights.
const POLL_MS: u64 = 50;
/// Lines of a node's log quoted when it exits by itself.
const LOG_TAIL_LINES: usize = 12;
/// Separates the stream of random rechecks from the kill schedule's, so that the schedule
/// does not depend on the heights the nodes reach.
const RECHECK_STREAM: u64 = 0x5ca1_ab1e_0ddb_a115;

/// Options of `nestd soak`.
#[derive(clap::Args, Debug, Clone)]
pub struct SoakOptions {
    /// SIGKILLs to deliver.
    #[arg(long, default_value_t = 100)]
    pub kills: u64,
    /// Seed of the kill schedule (default: drawn from the clock; printed either way).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The chain's consensus engine.
    #[arg(long, value_enum, default_value_t = Consensus::Poa)]
    pub consensus: Consensus,
    /// Block interval of the chain: PoA's slot, BFT's wait after each decision.
    #[arg(long, default_value_t = 500)]
    pub block_interval_ms: u64,
    /// Nodes of the devnet, each a `nestd run` process; any of them may be killed.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// How many of the nodes (the first ones) are PoA authorities or BFT validators
    /// (default: all of them).
    #[arg(long)]
    pub validators: Option<usize>,
    /// How long a restarted node may take to serve, then to catch up, and the chain to
    /// finalize past the height it had before a kill, each.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
    /// Directory of the devnet; must not exist yet (default: a new one in the temporary
    /// directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the devnet directory after a run that passes (a failed run always keeps it).
    #[arg(long)]
    pub keep: bool,
}

/// Runs the soak: writes and starts the devnet, delivers the kills of the seed's
/// schedule, checks after each restart, prints a summary; an error names the violation.
pub fn run(options: &SoakOptions) -> Result<(), String> {
    check_options(options)?;
    let seed = options.seed.unwrap_or_else(seed_from_clock);
    let dir = new_devnet_dir(options.dir.as_deref(), seed)?;
    println!("soak: seed {seed}, devnet in {}", dir.display());
    println!("  replay: {}", replay_command(options, seed));
    let started = Instant::now();
    let nodes = match start_devnet(options, &dir) {
        Ok(nodes) => nodes,
        Err(error) => return Err(format!("the devnet did not start: {error}; kept in {}", dir.display())),
    };
    let plans = plan::schedule(seed, options.kills, options.nodes, options.block_interval_ms);
    let mut soak = Soak::new(options, seed, nodes, started);
    let outcome = soak.run(&plans);
    let mut running: Vec<NodeProcess> = soak.nodes.drain(..).flatten().collect();
    up::stop_all(&mut running);
    match outcome {
        Ok(()) => {
            soak.stats.store_checks = soak.commit_logs.iter().map(|log| log.runs_checked).sum();
            print_summary(options, seed, &soak.stats, started.elapsed());
            finish_dir(&dir, options.keep);
            Ok(())
        }
        Err(violation) => Err(format!(
            "soak failed (seed {seed}): {violation}\n  devnet kept in {} (node logs: node-*/nestd.log)\n  replay: {}",
            dir.display(),
            replay_command(options, seed)
        )),
    }
}

fn check_options(options: &SoakOptions) -> Result<(), String> {
    if options.kills == 0 {
        return Err("--kills must be at least 1".into());
    }
    if options.nodes < 2 {
        return Err("--nodes must be at least 2: the soak checks that the nodes agree".into());
    }
    if options.validators.is_some_and(|validators| validators == 0 || validators > options.nodes) {
        return Err(format!("--validators must be between 1 and --nodes ({})", options.nodes));
    }
    if options.block_interval_ms == 0 || options.timeout_s == 0 {
        return Err("--block-interval-ms and --timeout-s must be at least 1".into());
    }
    Ok(())
}

fn seed_from_clock() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    Rng::new(nanos as u64 ^ u64::from(std::process::id())).next_u64()
}

/// The command that runs the same schedule on the same devnet shape.
fn replay_command(options: &SoakOptions, seed: u64) -> String {
    let validators = options.validators.map(|v| format!(" --validators {v}")).unwrap_or_default();
    format!(
        "nestd soak --seed {seed} --kills {} --consensus {} --block-interval-ms {} --nodes {}{validators}",
        options.kills,
        options.consensus.id(),
        options.block_interval_ms,
        options.nodes
    )
}

/// The devnet's directory, created empty: `dir` when given (it must not exist yet), else
/// a new one in the temporary directory.
fn new_devnet_dir(dir: Option<&Path>, seed: u64) -> Result<PathBuf, String> {
    let dir = match dir {
        Some(dir) if dir.exists() => {
            return Err(format!("{} exists: the soak starts a new devnet in a directory of its own", dir.display()));
        }
        Some(dir) => dir.to_path_buf(),
        None => std::env::temp_dir().join(format!("nest-soak-{seed}-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

fn finish_dir(dir: &Path, keep: bool) {
    if keep {
        println!("devnet kept in {}", dir.display());
    } else if let Err(error) = std::fs::remove_dir_all(dir) {
        eprintln!("warning: cannot remove {}: {error}", dir.display());
    }
}

/// Writes the devnet `nestd up` would (no fixed ports), starts its nodes and waits until
/// they are connected and finalizing; registers node-1's simulated devices.
fn start_devnet(options: &SoakOptions, dir: &Path) -> Result<Vec<NodeProcess>, String> {
    let mut spec = up::devnet_spec(dir.to_path_buf(), options.consensus, options.block_interval_ms, 0, options.nodes)?;
    spec.authorities = options.validators.unwrap_or(options.nodes);
    let net = crate::devnet::write(&spec)?;
    crate::devices::devnet::add_devnet_radios(&net.manifest, None)?;
    let nodes = up::start_nodes(&net.manifests)?;
    if let Err(error) = crate::devices::devnet::register_sim_devices(&nodes[0].url, &net.faucet_key) {
        eprintln!("warning: the simulated devices are not registered (the blocks stay empty): {error}");
    }
    Ok(nodes)
}

/// What the soak counted.
#[derive(Default)]
struct Stats {
    /// Kills delivered, by moment.
    kills: BTreeMap<Moment, u64>,
    /// Mid-sync kills that struck while the node was still behind the others.
    mid_sync_behind: u64,
    /// Start-up kills that struck before the node served its API.
    start_up_before_serving: u64,
    /// Restarts followed by every check: the last of each series of kills.
    restarts_checked: u64,
    /// From a restart to the node's API answering with its chain, per checked restart.
    start_up_ms: Vec<f64>,
    /// From a restart to the node holding the final height the others had when it
    /// served, per checked restart.
    catch_up_ms: Vec<f64>,
    /// Final heights compared on every node, each once, and random ones compared again.
    heights_compared: u64,
    rechecks: u64,
    /// The height every node had reached at the last check.
    final_height: u64,
    /// Runs of a restarted node whose first commit, read from its log, followed every
    /// block its earlier runs logged as committed.
    store_checks: u64,
}

/// A running soak: the nodes (`None` while one is down) and what was seen.
struct Soak<'a> {
    options: &'a SoakOptions,
    nodes: Vec<Option<NodeProcess>>,
    /// Each node's manifest, node-1 first.
    manifests: Vec<PathBuf>,
    /// The highest final height each node reported, with its block's hash: after a
    /// restart the node must serve at least that height.
    reported: Vec<(u64, Hash32)>,
    /// What each node had reported when it was last killed: after its restart it must
    /// hold that very block at that height.
    before_kill: Vec<(u64, Hash32)>,
    /// What each node's log showed it committed, run after run.
    commit_logs: Vec<CommitLog>,
    /// Every final height up to here was found the same block on every node.
    checked_to: u64,
    rechecks: Rng,
    stats: Stats,
    started: Instant,
    /// Kills delivered so far: the number of the last one.
    kill_number: u64,
}

/// The two blocks at one final height: these must be equal on every node.
#[derive(serde::Deserialize, PartialEq, Eq, Clone, Copy)]
struct BlockSeen {
    hash: Hash32,
    state_digest: Hash32,
}

impl<'a> Soak<'a> {
    fn new(options: &'a SoakOptions, seed: u64, nodes: Vec<NodeProcess>, started: Instant) -> Self {
        let count = nodes.len();
        Soak {
            options,
            manifests: nodes.iter().map(|node| node.manifest.clone()).collect(),
            nodes: nodes.into_iter().map(Some).collect(),
            reported: vec![(0, Hash32::ZERO); count],
            before_kill: vec![(0, Hash32::ZERO); count],
            commit_logs: (0..count).map(|_| CommitLog::default()).collect(),
            checked_to: 0,
            rechecks: Rng::new(seed ^ RECHECK_STREAM),
            stats: Stats::default(),
            started,
            kill_number: 0,
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.options.timeout_s)
    }

    /// Carries out the schedule, one series at a time: a kill of a running node, then
    /// the kills that strike it again while it restarts, then the checks.
    fn run(&mut self, plans: &[KillPlan]) -> Result<(), String> {
        let mut start = 0;
        while start < plans.len() {
            let follow_ups = plans[start + 1..].iter().take_while(|plan| plan.moment.is_follow_up()).count();
            let series = &plans[start..start + 1 + follow_ups];
            self.run_series(series).map_err(|what| self.after_last_kill(plans, &what))?;
            start += series.len();
        }
        Ok(())
    }

    /// `what` went wrong, placed after the last kill delivered.
    fn after_last_kill(&self, plans: &[KillPlan], what: &str) -> String {
        let delivered = self.kill_number as usize;
        match delivered.checked_sub(1).and_then(|index| plans.get(index)) {
            Some(plan) => format!(
                "after kill {delivered} of {} (node-{}, {}): {what}",
                plans.len(),
                plan.victim + 1,
                plan.moment.describe()
            ),
            None => format!("before the first kill: {what}"),
        }
    }

    fn run_series(&mut self, series: &[KillPlan]) -> Result<(), String> {
        let victim = series[0].victim;
        let height_before = self.highest_final_height()?;
        self.kill_running(series[0])?;
        for (index, plan) in series.iter().enumerate() {
            self.sleep_watching(Duration::from_millis(plan.downtime_ms))?;
            let restarted = self.restart(victim)?;
            match series.get(index + 1) {
                Some(next) if next.moment == Moment::StartUp => self.kill_starting(*next, restarted)?,
                Some(next) => self.kill_syncing(*next, restarted)?,
                None => self.check_restart(victim, restarted, height_before)?,
            }
        }
        Ok(())
    }

    /// Kills a running node at a steady moment or right after it reports a new final block.
    fn kill_running(&mut self, plan: KillPlan) -> Result<(), String> {
        if plan.moment == Moment::AfterCommit {
            self.wait_new_final_block(plan.victim)?;
        } else {
            self.sleep_watching(Duration::from_millis(plan.delay_ms))?;
            self.chain_of(plan.victim)?;
        }
        let note = format!(" at final height {}", self.reported[plan.victim].0);
        self.kill(plan, &note)
    }

    /// Polls the node until its final height grows; the kill follows within milliseconds.
    fn wait_new_final_block(&mut self, victim: usize) -> Result<(), String> {
        let height = self.chain_of(victim)?.height;
        let deadline = Instant::now() + self.timeout();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(COMMIT_POLL_MS));
            if self.chain_of(victim)?.height > height {
                return Ok(());
            }
        }
        Err(format!("node-{} finalized no block past height {height} in {} s", victim + 1, self.options.timeout_s))
    }

    /// Kills the node being restarted `plan.delay_ms` after its restart, whether or not
    /// it serves yet.
    fn kill_starting(&mut self, plan: KillPlan, restarted: Instant) -> Result<(), String> {
        let at = restarted + Duration::from_millis(plan.delay_ms);
        self.sleep_watching(at.saturating_duration_since(Instant::now()))?;
        let serving = up::api_addr_file(&self.manifest(plan.victim)?).exists();
        self.stats.start_up_before_serving += u64::from(!serving);
        let stage = if serving { "serving already" } else { "not serving yet" };
        self.kill(plan, &format!(", {} ms after its restart ({stage})", plan.delay_ms))
    }

    /// Waits until the restarted node's log shows its first commit — most often a block
    /// fetched from a peer, as it was down for a while — and kills it `plan.delay_ms`
    /// later, while it is still behind the others unless it caught up that fast.
    fn kill_syncing(&mut self, plan: KillPlan, restarted: Instant) -> Result<(), String> {
        let deadline = restarted + self.timeout();
        while self.read_commit_log(plan.victim)?.is_none() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "node-{} committed no block within {} s of its restart",
                    plan.victim + 1,
                    self.options.timeout_s
                ));
            }
            self.sleep_watching(Duration::from_millis(LOG_POLL_MS))?;
        }
        self.sleep_watching(Duration::from_millis(plan.delay_ms))?;
        self.read_commit_log(plan.victim)?;
        let height = self.commit_logs[plan.victim].highest();
        let others = self.others_highest(plan.victim)?;
        let behind = height < others;
        self.stats.mid_sync_behind += u64::from(behind);
        let note = if behind {
            format!(", having committed {height} of the others' {others}")
        } else {
            format!(", caught up already at {height}")
        };
        self.kill(plan, &note)
    }

    /// SIGKILLs the plan's victim and reaps it.
    fn kill(&mut self, plan: KillPlan, note: &str) -> Result<(), String> {
        self.kill_number += 1;
        let Some(mut node) = self.nodes[plan.victim].take() else {
            return Err(format!("node-{} is not running", plan.victim + 1));
        };
        // Child::kill sends SIGKILL: the node gets no chance to flush or close anything.
        let _ = node.child.kill();
        let _ = node.child.wait();
        *self.stats.kills.entry(plan.moment).or_default() += 1;
        self.before_kill[plan.victim] = self.reported[plan.victim];
        self.say(&format!(
            "kill {}/{}: node-{} {}{note}",
            self.kill_number,
            self.options.kills,
            plan.victim + 1,
            plan.moment.describe()
        ));
        Ok(())
    }

    /// Starts the node again, its log appended to the one it had, once the log of the run
    /// that was killed passed the store check.
    fn restart(&mut self, victim: usize) -> Result<Instant, String> {
        self.read_commit_log(victim)?;
        self.commit_logs[victim].new_run();
        let manifest = self.manifest(victim)?;
        let log = up::node_log(&manifest);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let _ = writeln!(file, "--- nestd soak: restarted after kill {} ---", self.kill_number);
        let node = up::spawn_node(&manifest, file)?;
        self.nodes[victim] = Some(node);
        Ok(Instant::now())
    }

    /// Reads what the node logged since the last read: its current run's first commit,
    /// once; an error when that commit shows the store lost blocks (see [`CommitLog`]).
    fn read_commit_log(&mut self, index: usize) -> Result<Option<u64>, String> {
        let log = up::node_log(&self.manifest(index)?);
        self.commit_logs[index].read(&log, CHAIN).map_err(|what| format!("node-{}: {what}", index + 1))
    }

    fn manifest(&self, index: usize) -> Result<PathBuf, String> {
        self.manifests.get(index).cloned().ok_or_else(|| format!("no node-{}", index + 1))
    }

    /// Waits until the restarted node serves its chain, and checks that it serves at least
    /// the final height it reported before it was killed; returns that first status.
    fn wait_serving(&mut self, victim: usize, restarted: Instant) -> Result<ChainStatus, String> {
        let timeout = self.timeout();
        let node = self.nodes[victim].as_mut().ok_or_else(|| format!("node-{} is not running", victim + 1))?;
        up::wait_api(node, timeout).map_err(|error| format!("{error}\n{}", log_tail(&node.log)))?;
        let deadline = restarted + timeout;
        loop {
            self.check_alive()?;
            // Not through `try_chain_of`, which would record the new height before the check.
            let answer = self
                .fetch_status(victim)
                .and_then(|status| main_chain(status).ok_or_else(|| format!("no chain {CHAIN} in its status yet")));
            match answer {
                Ok(chain) => {
                    self.check_nothing_lost(victim, &chain)?;
                    return Ok(chain);
                }
                Err(error) if Instant::now() >= deadline => {
                    return Err(format!(
                        "node-{} wrote its API address but does not serve its chain within {} s of its restart: {error}",
                        victim + 1,
                        self.options.timeout_s
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(POLL_MS)),
            }
        }
    }

    /// Check (1): a node serves, from its first answer on, every final block it reported.
    fn check_nothing_lost(&mut self, victim: usize, first: &ChainStatus) -> Result<(), String> {
        let (height, hash) = self.reported[victim];
        if first.height < height {
            return Err(format!(
                "final blocks lost: node-{} reported final height {height} (block {hash}) before the kill, \
                 and serves final height {} (block {}) after its restart",
                victim + 1,
                first.height,
                first.head_hash
            ));
        }
        self.observe(victim, first);
        Ok(())
    }

    /// After the last restart of a series: the node serves what it had, catches up with
    /// the others, every node finalizes past the height the chain had before the series,
    /// and every node holds the same blocks.
    fn check_restart(&mut self, victim: usize, restarted: Instant, height_before: u64) -> Result<(), String> {
        let first = self.wait_serving(victim, restarted)?;
        let start_up = restarted.elapsed();
        let target = self.others_highest(victim)?;
        self.wait_height(victim, target, restarted)?;
        let catch_up = restarted.elapsed();
        self.wait_all_past(height_before)?;
        let first_commit = self.read_commit_log(victim)?;
        let compared = self.check_agreement(victim)?;
        self.stats.restarts_checked += 1;
        self.stats.start_up_ms.push(start_up.as_secs_f64() * 1e3);
        self.stats.catch_up_ms.push(catch_up.as_secs_f64() * 1e3);
        let store = match first_commit {
            Some(height) => format!("its store held {}", height - 1),
            None => "no commit logged yet".to_string(),
        };
        self.say(&format!(
            "  node-{} back ({store}): served at final height {} in {:.1} s, caught up to {target} in {:.1} s; \
             heights {compared} agree on every node",
            victim + 1,
            first.height,
            start_up.as_secs_f64(),
            catch_up.as_secs_f64()
        ));
        Ok(())
    }

    /// Waits until node `index` holds final height `target` (its catch-up).
    fn wait_height(&mut self, index: usize, target: u64, restarted: Instant) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout();
        loop {
            let chain = self.chain_of(index)?;
            if chain.height >= target {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "node-{} did not catch up: {:.0} s after its restart it is at final height {}, \
                     the others were at {target} when it came back ({})",
                    index + 1,
                    restarted.elapsed().as_secs_f64(),
                    chain.height,
                    self.describe_heights()
                ));
            }
            std::thread::sleep(Duration::from_millis(POLL_MS));
        }
    }

    /// Check (3): every node finalizes a block above `height`, the chain's final height
    /// before the series of kills began.
    fn wait_all_past(&mut self, height: u64) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout();
        loop {
            if self.lowest_final_height()? > height {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the chain stopped finalizing: not every node passed final height {height} within {} s ({})",
                    self.options.timeout_s,
                    self.describe_heights()
                ));
            }
            std::thread::sleep(Duration::from_millis(POLL_MS));
        }
    }

    /// Check (2): every node holds the same block at each final height they all reached
    /// since the last check, and at a few older ones drawn at random; the restarted node
    /// still holds the block it reported last before the kill. Returns the range checked.
    fn check_agreement(&mut self, victim: usize) -> Result<String, String> {
        let lowest = self.lowest_final_height()?;
        let fresh = self.checked_to + 1..=lowest;
        for height in fresh.clone() {
            self.check_height(height)?;
            self.stats.heights_compared += 1;
        }
        for _ in 0..RANDOM_RECHECKS.min(self.checked_to as usize) {
            let height = self.rechecks.between(1, self.checked_to);
            self.check_height(height)?;
            self.stats.rechecks += 1;
        }
        self.check_reported_block(victim)?;
        self.checked_to = self.checked_to.max(lowest);
        self.stats.final_height = lowest;
        Ok(format!("{}..={}", fresh.start(), fresh.end()))
    }

    /// Compares the block at `height` on every node.
    fn check_height(&mut self, height: u64) -> Result<(), String> {
        let mut first: Option<(usize, BlockSeen)> = None;
        for index in 0..self.nodes.len() {
            let seen = self.block_of(index, height)?;
            match first {
                None => first = Some((index, seen)),
                Some((other, expected)) if expected != seen => {
                    return Err(format!(
                        "nodes disagree at final height {height}: node-{} has block {} (state {}), \
                         node-{} has block {} (state {})",
                        other + 1,
                        expected.hash,
                        expected.state_digest,
                        index + 1,
                        seen.hash,
                        seen.state_digest
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The node's block at the height it last reported before the kill must be the one it
    /// reported then.
    fn check_reported_block(&mut self, victim: usize) -> Result<(), String> {
        let (height, hash) = self.before_kill[victim];
        if height == 0 {
            return Ok(());
        }
        let seen = self.block_of(victim, height)?;
        if seen.hash != hash {
            return Err(format!(
                "node-{} reported block {hash} final at height {height} before the kill and holds block {} there after its restart",
                victim + 1,
                seen.hash
            ));
        }
        Ok(())
    }

    fn block_of(&mut self, index: usize, height: u64) -> Result<BlockSeen, String> {
        let url = self.url(index)?;
        Client::new(&url).get(&format!("/v1/chains/{CHAIN}/blocks/{height}?txs=hashes")).map_err(|error| {
            format!("node-{} reports final height {height} or more but does not serve its block: {error}", index + 1)
        })
    }

    fn url(&self, index: usize) -> Result<String, String> {
        match &self.nodes[index] {
            Some(node) if !node.url.is_empty() => Ok(node.url.clone()),
            _ => Err(format!("node-{} is not serving", index + 1)),
        }
    }

    /// The node's chain status (and a record of what it reported); an error when it does
    /// not answer or a node exited by itself.
    fn chain_of(&mut self, index: usize) -> Result<ChainStatus, String> {
        self.check_alive()?;
        self.try_chain_of(index)
            .ok_or_else(|| format!("node-{} does not answer /v1/status with chain {CHAIN}", index + 1))
    }

    fn try_chain_of(&mut self, index: usize) -> Option<ChainStatus> {
        let chain = self.fetch_status(index).ok().and_then(main_chain)?;
        self.observe(index, &chain);
        Some(chain)
    }

    /// The node's status; the error says why not, with the URL.
    fn fetch_status(&self, index: usize) -> Result<NodeStatus, String> {
        Client::new(&self.url(index)?).get("/v1/status")
    }

    /// Remembers the highest final height a node reported, with its block.
    fn observe(&mut self, index: usize, chain: &ChainStatus) {
        if chain.height > self.reported[index].0 {
            self.reported[index] = (chain.height, chain.head_hash);
        }
    }

    /// The final heights of the nodes that serve (`None`: down, or restarted and not yet
    /// known to serve).
    fn heights(&mut self) -> Result<Vec<Option<u64>>, String> {
        (0..self.nodes.len())
            .map(|index| match &self.nodes[index] {
                Some(node) if !node.url.is_empty() => self.chain_of(index).map(|chain| Some(chain.height)),
                _ => Ok(None),
            })
            .collect()
    }

    fn highest_final_height(&mut self) -> Result<u64, String> {
        Ok(self.heights()?.into_iter().flatten().max().unwrap_or(0))
    }

    fn lowest_final_height(&mut self) -> Result<u64, String> {
        Ok(self.heights()?.into_iter().flatten().min().unwrap_or(0))
    }

    /// The highest final height of the nodes other than `index`.
    fn others_highest(&mut self, index: usize) -> Result<u64, String> {
        let heights = self.heights()?;
        Ok(heights.iter().enumerate().filter(|(other, _)| *other != index).filter_map(|(_, h)| *h).max().unwrap_or(0))
    }

    /// `node-1 at 80 with 3 peers, node-2 not answering, ...`.
    fn describe_heights(&self) -> String {
        let cells: Vec<String> = (0..self.nodes.len())
            .map(|index| {
                let status = self.fetch_status(index).ok();
                match status.as_ref().and_then(|status| status.chains.iter().find(|chain| chain.id == CHAIN)) {
                    Some(chain) => {
                        format!("node-{} at {} with {} peers", index + 1, chain.height, status_peers(&status))
                    }
                    None => format!("node-{} not answering", index + 1),
                }
            })
            .collect();
        cells.join(", ")
    }

    /// Sleeps `duration`, checking every [`POLL_MS`] that no node exited by itself.
    fn sleep_watching(&mut self, duration: Duration) -> Result<(), String> {
        let until = Instant::now() + duration;
        loop {
            self.check_alive()?;
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            std::thread::sleep(left.min(Duration::from_millis(POLL_MS)));
        }
    }

    /// An error naming any node that exited without being killed, with its log's end.
    fn check_alive(&mut self) -> Result<(), String> {
        for node in self.nodes.iter_mut().flatten() {
            if let Ok(Some(status)) = node.child.try_wait() {
                return Err(format!("{} exited by itself with {status}\n{}", node.name, log_tail(&node.log)));
            }
        }
        Ok(())
    }

    /// A progress line, stamped with the time since the soak started.
    fn say(&self, line: &str) {
        println!("[{:>7.1} s] {line}", self.started.elapsed().as_secs_f64());
    }
}

fn main_chain(status: NodeStatus) -> Option<ChainStatus> {
    status.chains.into_iter().find(|chain| chain.id == CHAIN)
}

fn status_peers(status: &Option<NodeStatus>) -> usize {
    status.as_ref().map_or(0, |status| status.peers)
}

/// The last lines of a node's log, indented, for an error message.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    format!("  {} ends:\n    {}", log.display(), tail.join("\n    "))
}

fn print_summary(options: &SoakOptions, seed: u64, stats: &Stats, wall: Duration) {
    let kills: u64 = stats.kills.values().sum();
    let by_moment: Vec<String> = stats
        .kills
        .iter()
        .map(|(moment, count)| match moment {
            Moment::MidSync => format!("{} {count} ({} while behind)", moment.describe(), stats.mid_sync_behind),
            Moment::StartUp => {
                format!("{} {count} ({} before it served)", moment.describe(), stats.start_up_before_serving)
            }
            _ => format!("{} {count}", moment.describe()),
        })
        .collect();
    let seconds = |values: &[f64], quantile: f64| crate::bench::percentile(values, quantile) / 1e3;
    println!(
        "soak passed: seed {seed}, {} on {} nodes",
        options.consensus.describe(options.block_interval_ms),
        options.nodes
    );
    println!("  kills        {kills} ({})", by_moment.join(", "));
    println!("  restarts     {kills}; {} checked after their series of kills", stats.restarts_checked);
    println!(
        "  start-up     median {:.2} s, p99 {:.2} s (restart to serving its chain)",
        seconds(&stats.start_up_ms, 0.5),
        seconds(&stats.start_up_ms, 0.99)
    );
    println!(
        "  catch-up     median {:.2} s, p99 {:.2} s (restart to the others' final height)",
        seconds(&stats.catch_up_ms, 0.5),
        seconds(&stats.catch_up_ms, 0.99)
    );
    println!(
        "  final height {} on every node; {} heights compared on every node, {} compared again at random",
        stats.final_height, stats.heights_compared, stats.rechecks
    );
    if stats.store_checks == 0 {
        println!(
            "  store        NOT CHECKED: the node logs show no `block committed` lines (does NEST_LOG hide them?)"
        );
    } else {
        println!(
            "  store        {} restarted runs began above every block their node had logged committed",
            stats.store_checks
        );
    }
    println!("  violations   0");
    println!("  wall time    {:.0} s", wall.as_secs_f64());
}
