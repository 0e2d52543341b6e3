//! Units of the DAG chain type as gossip and sync deliver them: `decode`, `validate`,
//! `insert` and `parents`, with checkpoints and snapshots between them.

use crate::steps::steps;
use chain_dag::{DagChain, DagConfig};
use nest_sdk::{ChainType, Hash32, UnitRef, testing::LocalHost};

/// What a step does, by `tag % 6`.
pub const DECODE: u8 = 0;
/// Validate the unit in the payload (and ask for its parents).
pub const VALIDATE: u8 = 1;
/// Insert the unit in the payload.
pub const INSERT: u8 = 2;
/// A checkpoint: each payload byte picks a unit among those seen.
pub const CHECKPOINT: u8 = 3;
/// Restore the payload as a snapshot.
pub const RESTORE: u8 = 4;
/// Snapshot and restore: must succeed.
pub const SNAPSHOT: u8 = 5;

/// The unit the chain type starts from.
pub fn genesis() -> UnitRef {
    UnitRef { height: 0, hash: Hash32([0xDA; 32]), timestamp_ms: 1_000 }
}

/// No proof of work, so that a mutated unit reaches the checks behind it; a small
/// pending bound, so that the fuzzer reaches it.
pub fn config() -> DagConfig {
    DagConfig { pow_bits: 0, max_pending_units: 8, ..DagConfig::default() }
}

/// The node whose key signs the seeds' units.
pub fn host() -> LocalHost {
    LocalHost::from_seed([2; 32])
}

/// Runs the steps of `data` on a started chain type.
pub fn run(data: &[u8]) {
    let mut chain = DagChain::new(config(), host().host()).expect("the fuzz config is valid");
    chain.start(genesis()).expect("start");
    let mut seen = vec![genesis().hash];
    for (tag, payload) in steps(data) {
        match tag % 6 {
            DECODE => {
                if let Ok(view) = chain.decode(payload) {
                    seen.push(view.hash);
                }
            }
            VALIDATE => {
                let _ = chain.validate(payload);
                let _ = chain.parents(payload);
            }
            INSERT => {
                if chain.insert(payload, &[]).is_ok()
                    && let Ok(view) = chain.decode(payload)
                {
                    seen.push(view.hash);
                    let _ = chain.weight(view.hash);
                }
            }
            CHECKPOINT => {
                let tips: Vec<Hash32> = payload.iter().map(|pick| seen[usize::from(*pick) % seen.len()]).collect();
                let _ = chain.checkpoint(&tips);
                let _ = chain.tips();
            }
            RESTORE => {
                let _ = chain.restore(payload);
            }
            _ => {
                let snapshot = chain.snapshot().expect("a started chain type snapshots");
                chain.restore(&snapshot).expect("a chain type restores its own snapshot");
            }
        }
    }
}
