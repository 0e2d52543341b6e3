//! Measure the market: quotes through a Lua pricing strategy and order matching, each
//! against a native Rust baseline in the same run.
//!
//! Quotes: the surge strategy (`scripts/pricing/surge.lua`) in the node's pricing
//! sandbox, directly and through the price-tag policy's `quote` (host service, JSON
//! context), against the same surge function written in Rust. Matching: an auction
//! round of `ROUND_BIDS` bids cleared by the auction policy, and `LOCKS` immediate
//! orders applied as ledger transactions (records, escrow), against a native sort of the
//! same bids. One thread: the figures are per core. Targets: ≥ 300 000 quotes/s,
//! ≥ 100 000 orders/s.
//!
//! The policies are the signed `.so` files, packaged and loaded through the real loader:
//! build them first (`cargo build --release -p market-price-tag -p market-auction`).

#![allow(missing_docs)]

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use nest_host::crypto::SecretKey;
use nest_host::ledger::market::{MarketRules, MarketTx, TermsRecord};
use nest_host::ledger::{BlockEnv, ChainParams, Ledger, SignedTx, TxBody, UnsignedTx};
use nest_host::loader::{self, LoadOptions, TrustStore};
use nest_host::market::{PricingContext, Strategies};
use nest_host::node::services::NodeServices;
use nest_host::package;
use nest_host::store::Store;
use nest_sdk::market::MarketBox;
use nest_sdk::testing::market::{order, round, terms};
use nest_sdk::{Hash32, PublicKey, QuoteRequest, Signature};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::median_ns;

const SURGE: &str = include_str!("../../scripts/pricing/surge.lua");
const ROUND_BIDS: usize = 256;
const LOCKS: usize = 1_000;
const PARAMS: ChainParams = ChainParams { chain: Hash32([7; 32]), gas_price: 0 };

/// The surge strategy in Rust: the baseline a Lua strategy is compared with.
fn native_surge(context: &PricingContext) -> (u64, u64) {
    let utilization = context.utilization.clamp(0.0, 1.0);
    let factor = if utilization > 0.5 { 1.0 + (utilization - 0.5) * 6.0 } else { 1.0 };
    ((100.0 * factor + 0.5).floor() as u64, 30_000)
}

fn plugin_library(lib_name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("bench path");
    let deps = exe.parent().expect("deps dir");
    let file = format!("lib{lib_name}.so");
    [deps.join(&file), deps.join("..").join(&file)]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{file} not found near {}: build the market plugins first", deps.display()))
}

/// A policy instance from its signed package, loaded through the real loader.
fn policy(crate_dir: &str, lib_name: &str, host: &nest_sdk::Host, dir: &Path) -> MarketBox {
    let vendor = SecretKey::from_seed([3; 32]);
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins").join(crate_dir).join("plugin.toml");
    let out = dir.join(crate_dir);
    package::pack(&source, &plugin_library(lib_name), &out, &vendor).expect("pack");
    let mut trust = TrustStore::new();
    trust.add("bench", vendor.public_key());
    let library = loader::load(&out, &LoadOptions { trust, allow_unsigned: false }).expect("load");
    // Libraries are never unloaded by the host: keep this one for the process.
    let library: &'static loader::LoadedLibrary = Box::leak(Box::new(library));
    library.new_market("{}", host).expect("instance")
}

fn context(index: u64) -> PricingContext {
    PricingContext { sku: "wifi".into(), units: 1, utilization: (index % 100) as f64 / 100.0, ..Default::default() }
}

/// `LOCKS` immediate orders from distinct buyers against one price-tag SKU, and the
/// ledger holding that SKU.
fn lock_workload(dir: &Path) -> (Ledger, Vec<SignedTx>) {
    let provider = PublicKey([1; 32]);
    let buyers: Vec<PublicKey> = (0..LOCKS as u64)
        .map(|i| {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&(i + 2).to_le_bytes());
            PublicKey(bytes)
        })
        .collect();
    let mut allocations: Vec<(PublicKey, u64)> = buyers.iter().map(|b| (*b, 1_000_000)).collect();
    allocations.push((provider, 1_000_000));
    let mut ledger = Ledger::genesis(&allocations).expect("distinct keys");
    let host = nest_sdk::testing::LocalHost::from_seed([5; 32]).host();
    let price_tag = policy("market-price-tag", "market_price_tag", &host, dir);
    ledger.set_markets(MarketRules::new([("market-price-tag".to_string(), price_tag)]));
    let unsigned = |from, nonce, body| SignedTx {
        tx: UnsignedTx { chain: PARAMS.chain, from, nonce, fee: 0, body: TxBody::Market(body) },
        signature: Signature::default(),
    };
    let shelve = MarketTx::Shelve {
        sku: "wifi".into(),
        policy: "market-price-tag".into(),
        resource: "network".into(),
        unit: "s".into(),
        location: String::new(),
        units_available: u64::MAX / 2,
        terms: TermsRecord { unit_price: 3, deadline_ms: 60_000, ..Default::default() },
    };
    let env = BlockEnv { height: 1, parent: Hash32::ZERO, time_ms: 0, proposer: provider };
    let outcome = ledger.execute(&[unsigned(provider, 0, shelve)], &env, &PARAMS, true);
    ledger.commit(&outcome.changes);
    let locks = buyers
        .iter()
        .map(|buyer| unsigned(*buyer, 0, MarketTx::Lock { sku: "wifi".into(), units: 10, max_price: 30 }))
        .collect();
    (ledger, locks)
}

fn per_second(ns: f64) -> f64 {
    1e9 / ns
}

fn market(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store")).expect("store");
    let strategies = Strategies::shared().expect("sandbox");
    strategies.lock().expect("registry").install(&store, "wifi", SURGE, 0).expect("surge installs");
    let key = Arc::new(SecretKey::from_seed([9; 32]));
    let quoting_host = NodeServices::market_host(key, "bench", strategies.clone());
    let mut quoting = policy("market-price-tag", "market_price_tag", &quoting_host, &dir.path().join("quote"));
    let registry = strategies.lock().expect("registry");
    let request = QuoteRequest {
        sku: "wifi".into(),
        units: 3,
        duration_s: 0,
        now_ms: 0,
        context_json: r#"{"units":3,"utilization":0.8}"#.into(),
    };

    let auction_host = nest_sdk::testing::LocalHost::from_seed([4; 32]).host();
    let auction = policy("market-auction", "market_auction", &auction_host, &dir.path().join("auction"));
    let mut auction_terms = terms(0);
    auction_terms.round_end_ms = 1;
    auction_terms.reserve_price = 10;
    let bids: Vec<_> = (0..ROUND_BIDS).map(|i| order(i as u8, 1, 100 + (i as u64 * 7919) % 10_000)).collect();
    let auction_round = round(auction_terms, bids.clone(), 1, 10);
    let (ledger, locks) = lock_workload(&dir.path().join("locks"));
    let env = BlockEnv { height: 2, parent: Hash32::ZERO, time_ms: 10, proposer: PublicKey([1; 32]) };

    let mut group = c.benchmark_group("market");
    let mut index = 0u64;
    group.bench_function("quote/native", |b| {
        b.iter(|| {
            index += 1;
            black_box(native_surge(&context(index)))
        })
    });
    group.bench_function("quote/lua", |b| {
        b.iter(|| {
            index += 1;
            black_box(registry.price("wifi", &context(index)).expect("price"))
        })
    });
    drop(registry);
    group.bench_function("quote/policy+lua", |b| b.iter(|| black_box(quoting.quote(request.clone()))));
    group.bench_function("clear_auction_256/policy", |b| b.iter(|| black_box(auction.clear(auction_round.clone()))));
    group.bench_function("lock_1000/ledger", |b| b.iter(|| black_box(ledger.execute(&locks, &env, &PARAMS, true))));
    group.finish();

    let registry = strategies.lock().expect("registry");
    let mut i = 0u64;
    let native_ns = median_ns(
        || {
            i += 1;
            black_box(native_surge(&context(i)));
        },
        1_000_000,
    );
    let lua_ns = median_ns(
        || {
            i += 1;
            black_box(registry.price("wifi", &context(i)).expect("price"));
        },
        100_000,
    );
    drop(registry);
    let policy_ns = median_ns(|| drop(black_box(quoting.quote(request.clone()))), 100_000);
    let native_sort_ns = median_ns(
        || {
            let mut sorted = bids.clone();
            sorted.sort_by_key(|bid| (std::cmp::Reverse(bid.max_price), bid.placed_at_ms, bid.id.0));
            black_box(sorted.get(1).map(|second| second.max_price));
        },
        2_000,
    );
    let auction_ns = median_ns(|| drop(black_box(auction.clear(auction_round.clone()))), 2_000);
    let ledger_ns = median_ns(|| drop(black_box(ledger.execute(&locks, &env, &PARAMS, true))), 5);
    let bids_n = ROUND_BIDS as f64;
    println!("market quotes per second per core (medians of 9 samples, same run):");
    println!("  native Rust surge      {:>12.0}/s", per_second(native_ns));
    println!(
        "  Lua surge (sandbox)    {:>12.0}/s  ratio native/Lua {:.1}  (target >= 300000/s)",
        per_second(lua_ns),
        lua_ns / native_ns
    );
    println!(
        "  price-tag quote + Lua  {:>12.0}/s  ratio native/policy {:.1}",
        per_second(policy_ns),
        policy_ns / native_ns
    );
    println!("market matching, orders per second per core:");
    println!("  native sort of {ROUND_BIDS} bids {:>12.0}/s", bids_n * per_second(native_sort_ns));
    println!(
        "  auction policy clear   {:>12.0}/s  ratio policy/native {:.1}  (target >= 100000/s)",
        bids_n * per_second(auction_ns),
        auction_ns / native_sort_ns
    );
    println!(
        "  ledger lock txs        {:>12.0}/s  ({LOCKS} immediate orders per block: policy clear, escrow, records)",
        LOCKS as f64 * per_second(ledger_ns)
    );
}

criterion_group!(benches, market);
criterion_main!(benches);
