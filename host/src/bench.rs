//! Measure a local devnet: committed transfers per second, commit latency and memory,
//! against the Ed25519 verification ceilings of this machine measured in the same run
//! (one signature at a time, and in batches as admission checks them).
//!
//! The nodes run as separate `nestd run` processes on 127.0.0.1 with a fresh devnet on
//! PoA or BFT; the transactions are signed before the clock starts, so the figures are
//! the nodes'.

pub mod devices;
pub mod spam;

use crate::api::SubmitAnswer;
use crate::client::Client;
use crate::crypto::SecretKey;
use crate::devnet::{self, DevnetSpec};
use crate::ledger::tx::{SignedTx, TxBody, UnsignedTx};
use crate::ledger::verify;
use crate::node::status::NodeStatus;
use nest_sdk::{Hash32, PublicKey};
use serde::Serialize;
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// Options of `nestd bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchOptions {
    /// Transfers to submit.
    #[arg(long, default_value_t = 100_000)]
    pub txs: usize,
    /// Transfers per HTTP request.
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Distinct sending accounts.
    #[arg(long, default_value_t = 512)]
    pub senders: usize,
    /// Block interval of the chain: PoA's slot, BFT's wait after each decision.
    #[arg(long, default_value_t = 500)]
    pub block_interval_ms: u64,
    /// The chain's consensus engine.
    #[arg(long, value_enum, default_value_t = devnet::Consensus::Poa)]
    pub consensus: devnet::Consensus,
    /// Concurrent submitting clients.
    #[arg(long, default_value_t = 2)]
    pub clients: usize,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Keep the devnet directory (node log, data) after the run.
    #[arg(long)]
    pub keep: bool,
    /// Nodes of the devnet (all PoA authorities or BFT validators, over libp2p); clients
    /// spread over them.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Offer a steady load of this fraction of the verify ceiling (measured first) instead
    /// of submitting everything at once: latency is then that of a node keeping up, not
    /// of a queue draining.
    #[arg(long)]
    pub load: Option<f64>,
    /// Another benchmark than transfers.
    #[command(subcommand)]
    pub target: Option<BenchTarget>,
}

/// The benchmarks besides transfers.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum BenchTarget {
    /// Device frames verified and accepted per second, and publication-to-anchor latency.
    Devices(devices::DeviceBenchOptions),
    /// An honest account's transfer latency under a flood of cheap transfers at several
    /// times the chain's capacity, against a quiet window of the same run.
    Spam(spam::SpamBenchOptions),
}

/// The figures of one run.
#[derive(Serialize, Debug)]
pub struct BenchReport {
    /// Transfers submitted.
    pub txs_submitted: usize,
    /// Transfers the node rejected at submission.
    pub txs_rejected: usize,
    /// Transfers seen committed.
    pub txs_committed: usize,
    /// Seconds from the first submission to the last commit.
    pub elapsed_s: f64,
    /// Committed transfers per second.
    pub committed_tx_per_s: f64,
    /// Commit latency, median, milliseconds (submission to seen committed).
    pub commit_latency_p50_ms: f64,
    /// Commit latency, 99th percentile, milliseconds.
    pub commit_latency_p99_ms: f64,
    /// Nodes in the devnet.
    pub nodes: usize,
    /// Largest node RSS before the load.
    pub idle_rss_mb: f64,
    /// Largest node peak RSS.
    pub peak_rss_mb: f64,
    /// Each node's RSS before the load.
    pub idle_rss_mb_per_node: Vec<f64>,
    /// Each node's peak RSS.
    pub peak_rss_mb_per_node: Vec<f64>,
    /// Ed25519 verifications per second on one core, one signature at a time (median of
    /// 5 samples).
    pub verify_per_s_single_core: f64,
    /// Ed25519 verifications per second on one core, in batches of
    /// [`verify::BATCH_VERIFY_TXS`] from distinct keys, as admission checks them (median of
    /// 5 samples).
    pub batch_verify_per_s_single_core: f64,
    /// Cores available.
    pub cores: usize,
    /// cores × single-core verifications per second ÷ nodes (every node verifies every
    /// transaction once, and the nodes share this machine).
    pub verify_ceiling_tx_per_s: f64,
    /// committed tx/s ÷ ceiling.
    pub ratio_to_ceiling: f64,
    /// cores × single-core batch verifications per second ÷ nodes.
    pub batch_verify_ceiling_tx_per_s: f64,
    /// committed tx/s ÷ batch ceiling.
    pub ratio_to_batch_ceiling: f64,
    /// The chain's consensus engine (`poa`, `bft`).
    pub consensus: &'static str,
    /// Block interval used.
    pub block_interval_ms: u64,
    /// Steady submission rate offered, tx/s (absent: everything submitted at once).
    pub offered_tx_per_s: Option<f64>,
}

/// Runs the benchmark and prints the report as text and JSON.
pub fn run(options: &BenchOptions) -> Result<(), String> {
    match &options.target {
        Some(BenchTarget::Devices(device_options)) => return devices::run(device_options),
        Some(BenchTarget::Spam(spam_options)) => return spam::run(spam_options),
        None => {}
    }
    if options.txs == 0 || options.batch == 0 || options.senders == 0 || options.clients == 0 || options.nodes == 0 {
        return Err("--txs, --batch, --senders, --clients and --nodes must be at least 1".into());
    }
    if options.load.is_some_and(|load| !(load > 0.0 && load <= 10.0)) {
        return Err("--load must be a fraction of the ceiling above 0 (for example 0.65)".into());
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    eprintln!("measuring the Ed25519 verify ceilings on this machine...");
    let rates = measure_verify_rates();
    let dir = tempfile_dir()?;
    let senders: Vec<SecretKey> = (0..options.senders).map(|i| SecretKey::from_seed(seed(i))).collect();
    let spec = DevnetSpec {
        dir: dir.clone(),
        consensus: options.consensus,
        block_interval_ms: options.block_interval_ms,
        api_port: 0,
        allocations: senders.iter().map(|k| (k.public_key(), 1_000_000_000_000)).collect(),
        block_txs_max: 50_000,
        mempool_txs_max: options.txs + 1_000,
        plugin_dir: devnet::library_dir(),
        nodes: options.nodes,
        authorities: options.nodes,
    };
    let net = devnet::write(&spec)?;
    let mut nodes = Vec::with_capacity(net.manifests.len());
    for manifest in &net.manifests {
        match NodeProcess::spawn(manifest) {
            Ok(node) => nodes.push(node),
            Err(error) => {
                nodes.iter_mut().for_each(NodeProcess::stop);
                return Err(error);
            }
        }
    }
    let result = drive(options, &senders, &nodes, cores, rates);
    nodes.iter_mut().for_each(NodeProcess::stop);
    let report = finish(&dir, options.keep, result)?;
    print_report(&report);
    write_json(options.json.as_deref(), &report)
}

/// Removes the run's directory (or says where it is kept) and hands the result on.
fn finish<T>(dir: &Path, keep: bool, result: Result<T, String>) -> Result<T, String> {
    if keep {
        eprintln!("devnet kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

/// Writes the report as pretty JSON to `path`, when given.
fn write_json<T: Serialize>(path: Option<&Path>, report: &T) -> Result<(), String> {
    let Some(path) = path else { return Ok(()) };
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))
}

fn seed(index: usize) -> [u8; 32] {
    let mut seed = [0x5e; 32];
    seed[..8].copy_from_slice(&(index as u64).to_le_bytes());
    seed
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("nest-bench-{}-{}", std::process::id(), crate::node::now_ms()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Ed25519 verifications per second on one thread.
#[derive(Clone, Copy, Debug)]
struct VerifyRates {
    /// One signature at a time ([`SignedTx::verify_signature`]).
    single: f64,
    /// In batches, as admission checks them ([`verify::verify_here`]).
    batch: f64,
}

/// Ed25519 verifications per second on one thread, one at a time and in batches: median
/// of 5 samples each, over transfers from 512 distinct keys (as many as the default
/// senders; a batch gains more when keys repeat).
fn measure_verify_rates() -> VerifyRates {
    let txs: Vec<SignedTx> = (0..512u64)
        .map(|nonce| {
            let key = SecretKey::from_seed(seed(1_000_000 + nonce as usize));
            UnsignedTx {
                chain: Hash32::ZERO,
                from: key.public_key(),
                nonce,
                fee: 1,
                body: TxBody::Transfer { to: PublicKey::default(), amount: 1 },
            }
            .sign(&key)
        })
        .collect();
    let rate = |check: &dyn Fn(&[SignedTx]) -> usize| {
        let mut samples: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                let mut verified = 0usize;
                while start.elapsed() < Duration::from_millis(400) {
                    verified += check(&txs);
                }
                verified as f64 / start.elapsed().as_secs_f64()
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        samples[2]
    };
    VerifyRates {
        single: rate(&|txs| txs.iter().filter(|tx| tx.verify_signature()).count()),
        batch: rate(&|txs| verify::verify_here(txs).into_iter().filter(|ok| *ok).count()),
    }
}

/// A `nestd run` child process.
struct NodeProcess {
    child: Child,
    url: String,
}

impl NodeProcess {
    fn spawn(manifest: &Path) -> Result<NodeProcess, String> {
        let dir = manifest.parent().ok_or("manifest without a directory")?;
        let log = std::fs::File::create(dir.join("node.log")).map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let child = Command::new(exe)
            .arg("run")
            .arg(manifest)
            .env("NEST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start nestd run: {e}"))?;
        let addr_file = dir.join("data/api.addr");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(addr) = std::fs::read_to_string(&addr_file) {
                return Ok(NodeProcess { child, url: format!("http://{}", addr.trim()) });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut process = NodeProcess { child, url: String::new() };
        process.stop();
        Err(format!("the node did not start within 30 s; see {}", dir.join("node.log").display()))
    }

    /// Resident memory now and at its peak, MiB.
    fn rss_mb(&self) -> (f64, f64) {
        let usage = crate::procfs::usage(self.child.id());
        let mib = |bytes: Option<u64>| bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0);
        (mib(usage.rss_bytes), mib(usage.rss_peak_bytes))
    }

    fn stop(&mut self) {
        // SAFETY: sending SIGTERM to our own child process id.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Signs every transfer up front, spread over the cores.
fn sign_all(options: &BenchOptions, senders: &[SecretKey], chain: Hash32, fee: u64) -> Vec<SignedTx> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let chunk = options.txs.div_ceil(cores);
    let mut all = Vec::with_capacity(options.txs);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cores)
            .map(|part| {
                scope.spawn(move || {
                    let range = part * chunk..((part + 1) * chunk).min(options.txs);
                    range
                        .map(|i| {
                            let sender = &senders[i % senders.len()];
                            let nonce = (i / senders.len()) as u64;
                            let to = senders[(i + 1) % senders.len()].public_key();
                            UnsignedTx {
                                chain,
                                from: sender.public_key(),
                                nonce,
                                fee,
                                body: TxBody::Transfer { to, amount: 1 },
                            }
                            .sign(sender)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            all.extend(handle.join().unwrap_or_default());
        }
    });
    all
}

struct Shared {
    submitted_at: Mutex<HashMap<Hash32, Instant>>,
    rejected: AtomicUsize,
    first_reason: Mutex<Option<String>>,
}

fn drive(
    options: &BenchOptions,
    senders: &[SecretKey],
    nodes: &[NodeProcess],
    cores: usize,
    rates: VerifyRates,
) -> Result<BenchReport, String> {
    let client = Client::new(&nodes[0].url);
    wait_connected(nodes)?;
    let (chain, fee) = crate::wallet::chain_terms(&client, "main")?;
    eprintln!("signing {} transfers from {} accounts...", options.txs, options.senders);
    let txs = sign_all(options, senders, chain, fee);
    let batches = client_batches(&txs, options);
    std::thread::sleep(Duration::from_millis(500));
    let idle_rss: Vec<f64> = nodes.iter().map(|n| n.rss_mb().0).collect();
    eprintln!(
        "submitting in {} requests of up to {} from {} clients to {} node(s)...",
        batches.iter().map(Vec::len).sum::<usize>(),
        options.batch,
        options.clients,
        nodes.len()
    );
    let shared = Arc::new(Shared {
        submitted_at: Mutex::new(HashMap::new()),
        rejected: AtomicUsize::new(0),
        first_reason: Mutex::new(None),
    });
    let ceiling = rates.single * cores as f64 / nodes.len() as f64;
    let batch_ceiling = rates.batch * cores as f64 / nodes.len() as f64;
    let offered_tx_per_s = options.load.map(|load| load * ceiling);
    // Each client sends its batches evenly spaced, so that together they offer the rate.
    let batch_gap = offered_tx_per_s
        .map(|rate| Duration::from_secs_f64(options.batch as f64 * options.clients as f64 / rate.max(1.0)));
    if let Some(rate) = offered_tx_per_s {
        eprintln!("offering a steady {rate:.0} tx/s ({:.2} of the ceiling)", rate / ceiling);
    }
    let started = Instant::now();
    let seen: Vec<HashMap<Hash32, Instant>> = std::thread::scope(|scope| {
        for (index, own) in batches.iter().enumerate() {
            let (shared, url) = (&shared, &nodes[index % nodes.len()].url);
            scope.spawn(move || submit_batches(url, own, shared, started, batch_gap));
        }
        let watchers: Vec<_> = nodes
            .iter()
            .map(|node| {
                let shared = &shared;
                scope.spawn(move || watch_commits(&Client::new(&node.url), options.txs, shared))
            })
            .collect();
        watchers.into_iter().map(|w| w.join().unwrap_or_default()).collect()
    });
    let rejected = shared.rejected.load(Ordering::Relaxed);
    if let Some(reason) = shared.first_reason.lock().ok().and_then(|r| r.clone()) {
        eprintln!("first rejection: {reason}");
    }
    let (latencies_ms, last_commit) = committed_everywhere(&seen, &shared);
    let elapsed_s = last_commit.map(|t| t.duration_since(started).as_secs_f64()).unwrap_or(f64::NAN);
    let committed = latencies_ms.len();
    let committed_tx_per_s = committed as f64 / elapsed_s;
    let peak_rss: Vec<f64> = nodes.iter().map(|n| n.rss_mb().1).collect();
    Ok(BenchReport {
        txs_submitted: options.txs,
        txs_rejected: rejected,
        txs_committed: committed,
        elapsed_s,
        committed_tx_per_s,
        commit_latency_p50_ms: percentile(&latencies_ms, 0.50),
        commit_latency_p99_ms: percentile(&latencies_ms, 0.99),
        nodes: nodes.len(),
        idle_rss_mb: idle_rss.iter().copied().fold(0.0, f64::max),
        peak_rss_mb: peak_rss.iter().copied().fold(0.0, f64::max),
        idle_rss_mb_per_node: idle_rss,
        peak_rss_mb_per_node: peak_rss,
        verify_per_s_single_core: rates.single,
        batch_verify_per_s_single_core: rates.batch,
        cores,
        verify_ceiling_tx_per_s: ceiling,
        ratio_to_ceiling: committed_tx_per_s / ceiling,
        batch_verify_ceiling_tx_per_s: batch_ceiling,
        ratio_to_batch_ceiling: committed_tx_per_s / batch_ceiling,
        consensus: options.consensus.id(),
        block_interval_ms: options.block_interval_ms,
        offered_tx_per_s,
    })
}

/// Waits until every node of a multi-node devnet has a peer.
fn wait_connected(nodes: &[NodeProcess]) -> Result<(), String> {
    if nodes.len() == 1 {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let connected = nodes.iter().all(|node| {
            Client::new(&node.url).get::<NodeStatus>("/v1/status").is_ok_and(|s| s.peers + 1 >= nodes.len())
        });
        if connected {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("the nodes did not connect within 30 s".into())
}

/// Latency of each transfer seen committed on every node (the last node's time minus
/// the submission), and when the last of them was seen.
fn committed_everywhere(seen: &[HashMap<Hash32, Instant>], shared: &Shared) -> (Vec<f64>, Option<Instant>) {
    let submitted = shared.submitted_at.lock().unwrap_or_else(|e| e.into_inner());
    let mut latencies = Vec::with_capacity(submitted.len());
    let mut last = None;
    for (hash, at) in submitted.iter() {
        let times: Option<Vec<Instant>> = seen.iter().map(|node| node.get(hash).copied()).collect();
        if let Some(latest) = times.and_then(|t| t.into_iter().max()) {
            latencies.push(latest.duration_since(*at).as_secs_f64() * 1000.0);
            last = Some(last.map_or(latest, |l: Instant| l.max(latest)));
        }
    }
    (latencies, last)
}

type Batch = (Vec<Hash32>, serde_json::Value);

/// Splits the transfers among the clients by sender, each client's in nonce order, so
/// that concurrent requests never reorder one account's nonces.
fn client_batches(txs: &[SignedTx], options: &BenchOptions) -> Vec<Vec<Batch>> {
    (0..options.clients)
        .map(|client| {
            let own: Vec<&SignedTx> = txs
                .iter()
                .enumerate()
                .filter(|(i, _)| (i % options.senders) % options.clients == client)
                .map(|(_, tx)| tx)
                .collect();
            own.chunks(options.batch)
                .map(|chunk| {
                    let hashes = chunk.iter().map(|tx| tx.hash()).collect();
                    let hex: Vec<String> = chunk.iter().map(|tx| hex::encode(tx.encode())).collect();
                    (hashes, serde_json::json!({ "txs": hex }))
                })
                .collect()
        })
        .collect()
}

/// Submits one client's batches in order, the k-th no earlier than `started + k × gap`.
fn submit_batches(url: &str, batches: &[Batch], shared: &Shared, started: Instant, gap: Option<Duration>) {
    let client = Client::new(url);
    for (index, (hashes, body)) in batches.iter().enumerate() {
        if let Some(gap) = gap {
            let due = started + gap.saturating_mul(u32::try_from(index).unwrap_or(u32::MAX));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let now = Instant::now();
        if let Ok(mut map) = shared.submitted_at.lock() {
            map.extend(hashes.iter().map(|h| (*h, now)));
        }
        match client.post::<SubmitAnswer>("/v1/chains/main/txs", body) {
            Ok(answer) => {
                shared.rejected.fetch_add(answer.rejected, Ordering::Relaxed);
                if let Some(result) = answer.results.iter().find(|r| r.status != "accepted") {
                    let mut first = shared.first_reason.lock().unwrap_or_else(|e| e.into_inner());
                    first.get_or_insert_with(|| result.reason.clone().unwrap_or_default());
                }
            }
            Err(error) => {
                shared.rejected.fetch_add(hashes.len(), Ordering::Relaxed);
                let mut first = shared.first_reason.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert(error);
            }
        }
    }
}

/// Follows one node's new blocks until every accepted transfer is seen committed there
/// (or progress stops); returns when each was seen.
fn watch_commits(client: &Client, total: usize, shared: &Shared) -> HashMap<Hash32, Instant> {
    let mut seen = HashMap::with_capacity(total);
    let mut height =
        client.get::<NodeStatus>("/v1/status").ok().and_then(|s| s.chains.first().map(|c| c.height)).unwrap_or(0);
    let mut last_progress = Instant::now();
    while seen.len() + shared.rejected.load(Ordering::Relaxed) < total
        && last_progress.elapsed() < Duration::from_secs(20)
    {
        let Ok(status) = client.get::<NodeStatus>("/v1/status") else {
            continue;
        };
        let head = status.chains.first().map(|c| c.height).unwrap_or(height);
        if head == height {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let seen_at = Instant::now();
        for h in height + 1..=head {
            let Ok(block) = client.get::<serde_json::Value>(&format!("/v1/chains/main/blocks/{h}?txs=hashes")) else {
                continue;
            };
            let hashes = block.get("tx_hashes").and_then(|v| v.as_array()).cloned().unwrap_or_default();
            let submitted = shared.submitted_at.lock().unwrap_or_else(|e| e.into_inner());
            for hash in hashes.iter().filter_map(|v| v.as_str()).filter_map(|s| Hash32::from_hex(s).ok()) {
                if submitted.contains_key(&hash) {
                    seen.insert(hash, seen_at);
                }
            }
        }
        height = head;
        last_progress = Instant::now();
    }
    seen
}

/// The value at `quantile` (0 to 1) of `values`, nearest rank; NaN when there are none.
pub(crate) fn percentile(values: &[f64], quantile: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * quantile).round() as usize]
}

fn print_report(report: &BenchReport) {
    let engine = match report.consensus {
        "bft" => format!("BFT node(s) on 127.0.0.1 (next height {} ms after each decision)", report.block_interval_ms),
        "dpos" => format!(
            "DPoS node(s) on 127.0.0.1 (rounds of elected delegates, next height {} ms after each decision)",
            report.block_interval_ms
        ),
        _ => format!("PoA node(s) on 127.0.0.1 (block interval {} ms)", report.block_interval_ms),
    };
    println!("nestd bench: {} {engine}", report.nodes);
    println!(
        "  committed        {} of {} transfers ({} rejected)",
        report.txs_committed, report.txs_submitted, report.txs_rejected
    );
    match report.offered_tx_per_s {
        Some(rate) => println!("  offered load     {rate:.0} tx/s, steady"),
        None => println!("  offered load     everything at once (queueing counts in latency)"),
    }
    println!("  throughput       {:.0} tx/s over {:.2} s", report.committed_tx_per_s, report.elapsed_s);
    println!(
        "  commit latency   p50 {:.0} ms, p99 {:.0} ms",
        report.commit_latency_p50_ms, report.commit_latency_p99_ms
    );
    let per_node = |values: &[f64]| values.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(" / ");
    println!(
        "  node memory      idle RSS {} MB, peak RSS {} MB",
        per_node(&report.idle_rss_mb_per_node),
        per_node(&report.peak_rss_mb_per_node)
    );
    println!(
        "  verify ceiling   {:.0} tx/s = {} cores x {:.0} Ed25519 verifications/s one by one / {} node(s)",
        report.verify_ceiling_tx_per_s, report.cores, report.verify_per_s_single_core, report.nodes
    );
    println!(
        "  batch ceiling    {:.0} tx/s = {} cores x {:.0} Ed25519 verifications/s in batches / {} node(s) ({:.2}x)",
        report.batch_verify_ceiling_tx_per_s,
        report.cores,
        report.batch_verify_per_s_single_core,
        report.nodes,
        report.batch_verify_per_s_single_core / report.verify_per_s_single_core
    );
    let target = if report.nodes > 1 { 0.60 } else { 0.50 };
    println!(
        "  ratio            {:.2} of the one-by-one ceiling (target >= {target:.2}), {:.2} of the batch ceiling",
        report.ratio_to_ceiling, report.ratio_to_batch_ceiling
    );
    // A PoA slot is the block interval; a BFT height takes its rounds plus the interval.
    let latency_target = if report.consensus == "poa" { "; target < 2" } else { "" };
    println!(
        "  latency          p50 = {:.1}, p99 = {:.1} block intervals (commit = final on every node{latency_target})",
        report.commit_latency_p50_ms / report.block_interval_ms as f64,
        report.commit_latency_p99_ms / report.block_interval_ms as f64
    );
    println!("{}", serde_json::to_string(report).unwrap_or_default());
}
