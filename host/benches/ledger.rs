//! Measure the ledger's hot paths: signature checks, block execution, mempool, Merkle roots.

#![allow(missing_docs)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use nest_host::crypto::SecretKey;
use nest_host::ledger::merkle::merkle_root;
use nest_host::ledger::{BlockEnv, ChainParams, Ledger, Mempool, SignedTx, TxBody, UnsignedTx, verify_batch};
use nest_sdk::{Hash32, PublicKey};
use std::hint::black_box;

const TXS: usize = 1_000;
const SENDERS: usize = 50;
const PARAMS: ChainParams = ChainParams { chain: Hash32([7; 32]), gas_price: 1 };

/// `TXS` signed transfers from `SENDERS` funded accounts, in valid nonce order, and the
/// ledger they apply to.
fn workload() -> (Ledger, Vec<SignedTx>) {
    let keys: Vec<SecretKey> = (0..SENDERS).map(|i| SecretKey::from_seed([i as u8; 32])).collect();
    let allocations: Vec<(PublicKey, u64)> = keys.iter().map(|k| (k.public_key(), 1_000_000_000)).collect();
    let ledger = Ledger::genesis(&allocations).expect("distinct keys");
    let txs = (0..TXS)
        .map(|i| {
            let key = &keys[i % SENDERS];
            UnsignedTx {
                chain: PARAMS.chain,
                from: key.public_key(),
                nonce: (i / SENDERS) as u64,
                fee: 1_000,
                body: TxBody::Transfer { to: PublicKey([(i % 251) as u8; 32]), amount: 1 },
            }
            .sign(key)
        })
        .collect();
    (ledger, txs)
}

fn benches(c: &mut Criterion) {
    let (ledger, txs) = workload();
    let env = BlockEnv { height: 1, parent: Hash32::ZERO, time_ms: 0, proposer: PublicKey([255; 32]) };
    let mut group = c.benchmark_group("ledger");
    group.throughput(Throughput::Elements(TXS as u64));
    group.bench_function("verify_batch_1000", |b| b.iter(|| verify_batch(black_box(&txs))));
    group.bench_function("execute_1000_transfers", |b| b.iter(|| ledger.execute(black_box(&txs), &env, &PARAMS, true)));
    let outcome = ledger.execute(&txs, &env, &PARAMS, true);
    group.bench_function("commit_1000_transfers", |b| {
        b.iter_batched(
            || ledger.clone(),
            |mut ledger| ledger.commit(black_box(&outcome.changes)),
            BatchSize::LargeInput,
        )
    });
    let hashes: Vec<Hash32> = txs.iter().map(SignedTx::hash).collect();
    group.bench_function("mempool_admit_select_1000", |b| {
        b.iter(|| {
            let mut pool = Mempool::new(TXS);
            for (hash, tx) in hashes.iter().zip(&txs) {
                pool.admit(*hash, tx.clone(), &ledger, &PARAMS).expect("valid workload");
            }
            pool.select(TXS)
        })
    });
    group.bench_function("merkle_root_1000", |b| b.iter(|| merkle_root(black_box(&hashes))));
    group.finish();
}

criterion_group!(ledger_benches, benches);
criterion_main!(ledger_benches);
