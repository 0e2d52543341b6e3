//! Compare the cost of calling the PoA engine through its signed, loaded `.so` with the
//! same engine linked directly as an rlib.
//!
//! Two inputs: a `Tick` on a node that is not the slot's leader (almost no work: the
//! call overhead dominates, the worst case for the ratio) and a repeated block message
//! (decode, hash, Ed25519 seal check: a realistic consensus input). The `.so` comes
//! from the build directory next to this benchmark (`cargo build --release
//! --workspace` first); it is packaged, signed and loaded through the real loader.

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

mod support;

use consensus_poa::{PoaEngine, PoaMessage, seal_message};
use criterion::{Criterion, criterion_group, criterion_main};
use nest_host::{
    crypto::SecretKey,
    loader::{self, LoadOptions, TrustStore},
    package,
};
use nest_sdk::{
    ConsensusEngine, Host, Input, LastCommit, RVec,
    consensus::{ConsensusBox, handle},
    testing::{LocalHost, sha256},
};
use std::{hint::black_box, path::PathBuf};
use support::median_ns;

const INTERVAL_MS: u64 = 1000;
const NOW_MS: u64 = 1_000_000 * INTERVAL_MS;

fn config_json(leader: &nest_sdk::PublicKey) -> String {
    format!(r#"{{"authorities": ["{leader}"], "block_interval_ms": {INTERVAL_MS}}}"#)
}

fn start() -> Input {
    Input::Start {
        last_commit: LastCommit { height: 0, unit_hash: nest_sdk::Hash32::ZERO, timestamp_ms: 0 },
        now_ms: NOW_MS,
        persisted: Default::default(),
    }
}

/// A block for the current slot, sealed by the leader.
fn block_message(leader: &LocalHost) -> Vec<u8> {
    let slot = NOW_MS / INTERVAL_MS;
    let unit = vec![7u8; 512];
    let signature = leader.host().sign(&seal_message(slot, &sha256(&unit)));
    nest_sdk::borsh::to_vec(&PoaMessage::Block { slot, unit, signature }).expect("encode")
}

fn plugin_library() -> PathBuf {
    let exe = std::env::current_exe().expect("bench path");
    let deps = exe.parent().expect("deps dir");
    [deps.join("libconsensus_poa.so"), deps.join("../libconsensus_poa.so")]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("libconsensus_poa.so not found near {}: build the workspace first", deps.display()))
}

fn loaded_engine(host: &Host, config: &str, dir: &std::path::Path) -> ConsensusBox {
    let vendor = SecretKey::from_seed([3; 32]);
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/consensus-poa/plugin.toml");
    package::pack(&source, &plugin_library(), &dir.join("poa"), &vendor).expect("pack");
    let mut trust = TrustStore::new();
    trust.add("bench", vendor.public_key());
    let library = loader::load(&dir.join("poa"), &LoadOptions { trust, allow_unsigned: false }).expect("load");
    library.new_consensus(config, host).expect("instance")
}

fn dispatch(c: &mut Criterion) {
    let leader = LocalHost::from_seed([1; 32]);
    let follower = LocalHost::from_seed([2; 32]);
    let config = config_json(&leader.host().public_key());
    let message = block_message(&leader);
    let dir = tempfile::tempdir().expect("tempdir");

    let mut direct =
        PoaEngine::new(nest_sdk::config::parse(&config).expect("config"), follower.host()).expect("engine");
    let _ = direct.handle(start());
    let _ = direct.handle(Input::Message { from: leader.host().public_key(), bytes: message.clone().into() });
    let mut loaded = loaded_engine(&follower.host(), &config, dir.path());
    let _ = handle(&mut loaded, start());
    let _ = handle(&mut loaded, Input::Message { from: leader.host().public_key(), bytes: message.clone().into() });

    let mut group = c.benchmark_group("poa_dispatch");
    group.bench_function("tick/rlib", |b| b.iter(|| black_box(direct.handle(Input::Tick { now_ms: NOW_MS }))));
    group.bench_function("tick/so", |b| b.iter(|| black_box(handle(&mut loaded, Input::Tick { now_ms: NOW_MS }))));
    let from = leader.host().public_key();
    group.bench_function("block_message/rlib", |b| {
        b.iter(|| black_box(direct.handle(Input::Message { from, bytes: RVec::from(message.clone()) })))
    });
    group.bench_function("block_message/so", |b| {
        b.iter(|| black_box(handle(&mut loaded, Input::Message { from, bytes: RVec::from(message.clone()) })))
    });
    group.finish();

    let tick_ratio = median_ns(|| drop(black_box(handle(&mut loaded, Input::Tick { now_ms: NOW_MS }))), 100_000)
        / median_ns(|| drop(black_box(direct.handle(Input::Tick { now_ms: NOW_MS }))), 100_000);
    let message_ratio = median_ns(
        || drop(black_box(handle(&mut loaded, Input::Message { from, bytes: RVec::from(message.clone()) }))),
        200,
    ) / median_ns(
        || drop(black_box(direct.handle(Input::Message { from, bytes: RVec::from(message.clone()) }))),
        200,
    );
    println!(
        "poa_dispatch ratio .so / rlib (medians of 9 samples, same run): tick {tick_ratio:.2}, block_message {message_ratio:.2} (target <= 1.20)"
    );
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
