//! `nestd bench spam`: an honest account's transfer latency on a node flooded with
//! cheap transfers at several times what its blocks can hold, against a quiet window of
//! the same run on the same node.
//!
//! The honest account sends one transfer every [`HONEST_GAP_MS`] paying twice the
//! minimum fee (what a wallet bids under congestion); the spam accounts offer
//! `flood_factor` × (`block_txs_max` ÷ block interval) transfers a second at the minimum
//! fee, signed before the clock starts. Latency is submission to the block that holds
//! the transfer, seen through the public API.

use super::{NodeProcess, finish, percentile, seed, tempfile_dir, write_json};
use crate::api::SubmitAnswer;
use crate::client::Client;
use crate::crypto::SecretKey;
use crate::devnet::{self, DevnetSpec};
use crate::ledger::tx::{SignedTx, TxBody, UnsignedTx};
use crate::node::status::NodeStatus;
use nest_sdk::{Hash32, PublicKey};
use serde::Serialize;
use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// Time between two honest transfers.
const HONEST_GAP_MS: u64 = 200;
/// Spam transfers per HTTP request.
const SPAM_BATCH_TXS: usize = 100;
/// How often the watcher looks for new blocks.
const WATCH_GAP_MS: u64 = 20;

/// Options of `nestd bench spam`.
#[derive(clap::Args, Debug, Clone)]
pub struct SpamBenchOptions {
    /// Seconds of each window (quiet, then flooded).
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Block interval of the chain.
    #[arg(long, default_value_t = 500)]
    pub block_interval_ms: u64,
    /// Transactions a block holds at most (with the interval, the chain's capacity).
    #[arg(long, default_value_t = 200)]
    pub block_txs_max: usize,
    /// Spam offered, in multiples of the chain's capacity.
    #[arg(long, default_value_t = 10.0)]
    pub flood_factor: f64,
    /// Spamming accounts.
    #[arg(long, default_value_t = 64)]
    pub spammers: usize,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Keep the devnet directory after the run.
    #[arg(long)]
    pub keep: bool,
}

/// The figures of one run.
#[derive(Serialize, Debug)]
pub struct SpamReport {
    /// Honest transfers committed in the quiet window.
    pub quiet_txs: usize,
    /// Their latency, median and 99th percentile, milliseconds.
    pub quiet_p50_ms: f64,
    /// 99th percentile.
    pub quiet_p99_ms: f64,
    /// Honest transfers committed under the flood.
    pub flood_txs: usize,
    /// Their latency, median, milliseconds.
    pub flood_p50_ms: f64,
    /// 99th percentile.
    pub flood_p99_ms: f64,
    /// flood p99 ÷ quiet p99 (target ≤ 2).
    pub p99_ratio: f64,
    /// Honest transfers not committed by the end of their window.
    pub honest_lost: usize,
    /// Spam offered, transfers per second.
    pub spam_offered_tx_per_s: f64,
    /// Spam transfers submitted, and how many the node refused at submission.
    pub spam_submitted: usize,
    /// Refused at submission (full pool, sender cap, nonce gaps).
    pub spam_refused: usize,
    /// The chain's capacity, transfers per second.
    pub capacity_tx_per_s: f64,
}

/// Runs the benchmark and prints the report as text and JSON.
pub fn run(options: &SpamBenchOptions) -> Result<(), String> {
    if options.seconds == 0 || options.spammers == 0 || options.block_txs_max == 0 || options.flood_factor <= 0.0 {
        return Err("--seconds, --spammers, --block-txs-max and --flood-factor must be above 0".into());
    }
    let dir = tempfile_dir()?;
    let honest = SecretKey::from_seed(seed(2_000_000));
    let spammers: Vec<SecretKey> = (0..options.spammers).map(|i| SecretKey::from_seed(seed(3_000_000 + i))).collect();
    let mut allocations = vec![(honest.public_key(), 1_000_000_000_000)];
    allocations.extend(spammers.iter().map(|key| (key.public_key(), 1_000_000_000_000)));
    let spec = DevnetSpec {
        dir: dir.clone(),
        consensus: devnet::Consensus::Poa,
        block_interval_ms: options.block_interval_ms,
        api_port: 0,
        allocations,
        block_txs_max: options.block_txs_max,
        mempool_txs_max: options.block_txs_max * 10,
        plugin_dir: devnet::library_dir(),
        nodes: 1,
        authorities: 1,
    };
    let net = devnet::write(&spec)?;
    let mut node = NodeProcess::spawn(&net.manifest)?;
    let result = measure(options, &node.url, &honest, &spammers);
    node.stop();
    let report = finish(&dir, options.keep, result)?;
    print_report(&report);
    write_json(options.json.as_deref(), &report)
}

fn measure(
    options: &SpamBenchOptions,
    url: &str,
    honest: &SecretKey,
    spammers: &[SecretKey],
) -> Result<SpamReport, String> {
    let client = Client::new(url);
    let (chain, fee) = crate::wallet::chain_terms(&client, "main")?;
    let capacity = options.block_txs_max as f64 * 1000.0 / options.block_interval_ms as f64;
    let offered = capacity * options.flood_factor;
    let spam_total = (offered * options.seconds as f64) as usize;
    eprintln!("signing {spam_total} spam transfers from {} accounts...", spammers.len());
    let spam = sign_spam(spammers, spam_total, chain, fee);
    let honest_per_window = (options.seconds * 1000 / HONEST_GAP_MS) as usize;
    let honest_txs: Vec<SignedTx> =
        (0..2 * honest_per_window).map(|nonce| transfer(honest, nonce as u64, chain, fee * 2)).collect();
    let (quiet, flood) = honest_txs.split_at(honest_per_window);
    eprintln!("quiet window: {} s of honest transfers...", options.seconds);
    let quiet_ms = honest_window(url, quiet, None)?;
    eprintln!(
        "flood window: {offered:.0} spam tx/s offered ({:.0}x the chain's {capacity:.0} tx/s)...",
        options.flood_factor
    );
    let refused = AtomicUsize::new(0);
    let flood_ms = honest_window(url, flood, Some((&spam, offered, &refused)))?;
    let (quiet_p99, flood_p99) = (percentile(&quiet_ms, 0.99), percentile(&flood_ms, 0.99));
    Ok(SpamReport {
        quiet_txs: quiet_ms.len(),
        quiet_p50_ms: percentile(&quiet_ms, 0.50),
        quiet_p99_ms: quiet_p99,
        flood_txs: flood_ms.len(),
        flood_p50_ms: percentile(&flood_ms, 0.50),
        flood_p99_ms: flood_p99,
        p99_ratio: flood_p99 / quiet_p99,
        honest_lost: honest_txs.len() - quiet_ms.len() - flood_ms.len(),
        spam_offered_tx_per_s: offered,
        spam_submitted: spam.len(),
        spam_refused: refused.load(Ordering::Relaxed),
        capacity_tx_per_s: capacity,
    })
}

fn transfer(key: &SecretKey, nonce: u64, chain: Hash32, fee: u64) -> SignedTx {
    let body = TxBody::Transfer { to: PublicKey([0xab; 32]), amount: 1 };
    UnsignedTx { chain, from: key.public_key(), nonce, fee, body }.sign(key)
}

/// `total` minimum-fee transfers, the accounts in turn, each account's nonces in order.
fn sign_spam(spammers: &[SecretKey], total: usize, chain: Hash32, fee: u64) -> Vec<SignedTx> {
    (0..total).map(|i| transfer(&spammers[i % spammers.len()], (i / spammers.len()) as u64, chain, fee)).collect()
}

/// The spam of a flood window: the transfers, the rate to offer them at, and the count
/// of those the node refused.
type Flood<'a> = (&'a [SignedTx], f64, &'a AtomicUsize);

/// Sends `honest` one every [`HONEST_GAP_MS`] (with the flood, if any, alongside) and
/// returns the latency of each that committed within the window plus a grace of five
/// seconds.
fn honest_window(url: &str, honest: &[SignedTx], flood: Option<Flood>) -> Result<Vec<f64>, String> {
    let submitted: Mutex<HashMap<Hash32, Instant>> = Mutex::new(HashMap::new());
    let seen: Mutex<HashMap<Hash32, Instant>> = Mutex::new(HashMap::new());
    let (sending, watching) = (AtomicBool::new(true), AtomicBool::new(true));
    let client = Client::new(url);
    let start_height = client.get::<NodeStatus>("/v1/status")?.chains.first().map_or(0, |c| c.height);
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| watch(url, start_height, &seen, &watching));
        if let Some((spam, rate, refused)) = flood {
            let sending = &sending;
            scope.spawn(move || send_spam(url, spam, rate, refused, sending));
        }
        for tx in honest {
            let body = serde_json::json!({ "txs": [hex::encode(tx.encode())] });
            let at = Instant::now();
            if let Ok(answer) = client.post::<SubmitAnswer>("/v1/chains/main/txs", &body)
                && answer.rejected == 0
            {
                submitted.lock().unwrap_or_else(|e| e.into_inner()).insert(tx.hash(), at);
            }
            std::thread::sleep(Duration::from_millis(HONEST_GAP_MS).saturating_sub(at.elapsed()));
        }
        sending.store(false, Ordering::Relaxed);
        std::thread::sleep(Duration::from_secs(5));
        watching.store(false, Ordering::Relaxed);
        watcher.join().map_err(|_| "the block watcher panicked".to_string())
    })??;
    let submitted = submitted.into_inner().unwrap_or_else(|e| e.into_inner());
    let seen = seen.into_inner().unwrap_or_else(|e| e.into_inner());
    let latencies = submitted
        .iter()
        .filter_map(|(hash, at)| seen.get(hash).map(|when| when.duration_since(*at).as_secs_f64() * 1000.0))
        .collect();
    Ok(latencies)
}

/// Offers `spam` at `rate` transfers a second until it runs out or `sending` clears.
fn send_spam(url: &str, spam: &[SignedTx], rate: f64, refused: &AtomicUsize, sending: &AtomicBool) {
    let client = Client::new(url);
    let started = Instant::now();
    for (index, batch) in spam.chunks(SPAM_BATCH_TXS).enumerate() {
        if !sending.load(Ordering::Relaxed) {
            return;
        }
        let due = started + Duration::from_secs_f64((index * SPAM_BATCH_TXS) as f64 / rate);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let hex: Vec<String> = batch.iter().map(|tx| hex::encode(tx.encode())).collect();
        match client.post::<SubmitAnswer>("/v1/chains/main/txs", &serde_json::json!({ "txs": hex })) {
            Ok(answer) => refused.fetch_add(answer.rejected, Ordering::Relaxed),
            Err(_) => refused.fetch_add(batch.len(), Ordering::Relaxed),
        };
    }
}

/// Records when each transaction is first seen in a block above `from_height`.
fn watch(
    url: &str,
    from_height: u64,
    seen: &Mutex<HashMap<Hash32, Instant>>,
    watching: &AtomicBool,
) -> Result<(), String> {
    let client = Client::new(url);
    let mut next = from_height + 1;
    while watching.load(Ordering::Relaxed) {
        let height = client.get::<NodeStatus>("/v1/status")?.chains.first().map_or(0, |c| c.height);
        while next <= height {
            let block: serde_json::Value = client.get(&format!("/v1/chains/main/blocks/{next}?txs=hashes"))?;
            let now = Instant::now();
            let hashes = block["tx_hashes"].as_array().cloned().unwrap_or_default();
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            for hash in hashes.iter().filter_map(|h| h.as_str()).filter_map(|h| crate::crypto::hash_from_hex(h).ok()) {
                seen.entry(hash).or_insert(now);
            }
            next += 1;
        }
        std::thread::sleep(Duration::from_millis(WATCH_GAP_MS));
    }
    Ok(())
}

fn print_report(report: &SpamReport) {
    println!(
        "honest transfer latency: quiet p50 {:.0} ms p99 {:.0} ms ({} txs); under a {:.0} tx/s flood ({:.0}x capacity) \
         p50 {:.0} ms p99 {:.0} ms ({} txs); p99 ratio {:.2} (target <= 2); honest lost {}; spam refused {} of {}",
        report.quiet_p50_ms,
        report.quiet_p99_ms,
        report.quiet_txs,
        report.spam_offered_tx_per_s,
        report.spam_offered_tx_per_s / report.capacity_tx_per_s,
        report.flood_p50_ms,
        report.flood_p99_ms,
        report.flood_txs,
        report.p99_ratio,
        report.honest_lost,
        report.spam_refused,
        report.spam_submitted
    );
    if let Ok(json) = serde_json::to_string(report) {
        println!("{json}");
    }
}
