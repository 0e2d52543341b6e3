//! Units of the linear chain type as gossip and sync deliver them: `decode`, `validate`
//! and `insert`, with votes (`attest`) and snapshots (`restore`) between them.

use crate::steps::steps;
use chain_linear::{LinearChain, LinearConfig};
use nest_sdk::{ChainType, Hash32, PublicKey, UnitRef, testing::LocalHost};

/// What a step does, by `tag % 6`.
pub const DECODE: u8 = 0;
/// Validate the unit in the payload.
pub const VALIDATE: u8 = 1;
/// Insert the unit in the payload.
pub const INSERT: u8 = 2;
/// A vote: payload `[unit index, authority index]` into the units seen and [`authorities`].
pub const ATTEST: u8 = 3;
/// Restore the payload as a snapshot.
pub const RESTORE: u8 = 4;
/// Snapshot and restore: must succeed.
pub const SNAPSHOT: u8 = 5;

/// The final unit the chain type starts from.
pub fn genesis() -> UnitRef {
    UnitRef { height: 0, hash: Hash32([0xAA; 32]), timestamp_ms: 0 }
}

/// The authorities whose votes `ATTEST` gives.
pub fn authorities() -> Vec<PublicKey> {
    (1..=3u8).map(|seed| LocalHost::from_seed([seed; 32]).host().public_key()).collect()
}

/// Finality by depth only (first byte even) or by a quorum of 2 votes at depth 1.
pub fn config(selector: u8) -> LinearConfig {
    match selector & 1 {
        0 => LinearConfig { max_pending_units: 8, ..LinearConfig::default() },
        _ => LinearConfig { finality_depth: 1, finality_proposers: 2, max_pending_units: 8, ..LinearConfig::default() },
    }
}

/// The host the chain type hashes with.
pub fn host() -> LocalHost {
    LocalHost::from_seed([1; 32])
}

/// Runs the steps of `data` (after its first byte, the config selector) on a started chain type.
pub fn run(data: &[u8]) {
    let Some((&selector, data)) = data.split_first() else { return };
    let mut chain = LinearChain::new(config(selector), host().host()).expect("the fuzz config is valid");
    chain.start(genesis()).expect("start");
    let authorities = authorities();
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
            }
            INSERT => {
                if chain.insert(payload, &[]).is_ok()
                    && let Ok(view) = chain.decode(payload)
                {
                    seen.push(view.hash);
                }
            }
            ATTEST => {
                let unit = seen[usize::from(payload.first().copied().unwrap_or(0)) % seen.len()];
                let voter = authorities[usize::from(payload.get(1).copied().unwrap_or(0)) % authorities.len()];
                let _ = chain.attest(unit, voter);
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
