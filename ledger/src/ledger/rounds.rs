//! DPoS rounds in the ledger: which delegates seal each round, and in which order.
//!
//! A chain is DPoS when its genesis writes [`DposParams`] (`dpos/params`). A round is
//! `N = delegates` consecutive heights: round `r` holds heights `r·N + 1 ..= (r + 1)·N`.
//! Its delegates are written as an ordinary validator set (`consensus/validators/`,
//! power 1 each, in slot order), so the host hands them to the engine like any set.
//!
//! **When a round's set is chosen.** The first block of round `r − 1` (height
//! `(r − 1)·N + 1`) writes the set of round `r`, before its own transactions, from the
//! state its parent left: the ranking at the end of round `r − 2`. Round 0's set is
//! genesis's list; block 1 writes round 1's. The host executes only final blocks, so the
//! set of round `r` exists on every node once height `(r − 1)·N + 1` is final, a whole
//! round before round `r` needs it: a node never has to guess a set from blocks that
//! may still be reverted. Votes cast in round `i` therefore change the delegates of round
//! `i + 2` at the earliest, and never in the middle of a round.
//!
//! **Which delegates, in which order.** The top `N` of [`staking::delegates`]' ranking,
//! ordered by [`staking::round_order`] with the seed `staking::round_seed(r, parent)`,
//! where `parent` is the hash of block `(r − 1)·N`, the last block of round `r − 2` (the
//! parent of the block writing the set). When fewer than `N` delegates are registered,
//! round `r` keeps the members of the set in force before it, in their order: a round
//! always has exactly `N` members, so the engine's quorum stays `floor(2N/3) + 1`.

use super::staking;
use super::state::{BlockEnv, Changes, Ledger};
use super::validators::{Member, ValidatorSet};
use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{Hash32, PublicKey};
use std::collections::BTreeMap;

/// Key of the DPoS parameters record (absent on chains that are not DPoS).
pub const DPOS_PARAMS_KEY: &[u8] = b"dpos/params";
/// Prefix of the round records: `dpos/round/<round, u64 big endian>` → [`RoundRecord`].
pub const ROUND_PREFIX: &[u8] = b"dpos/round/";

/// How a round's delegates were chosen, kept so that anyone can recompute its order.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct RoundRecord {
    /// Height of the block that wrote it (the first of the round before).
    pub chosen_at: u64,
    /// The round's seed, `None` when too few delegates were registered and the set before
    /// went on unchanged.
    pub seed: Option<Hash32>,
    /// The elected delegates in ranking order (most votes first), with the votes they
    /// had in the state the election read; empty when the set before went on.
    pub elected: Vec<ElectedDelegate>,
}

/// One elected delegate of a round.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct ElectedDelegate {
    /// Its account.
    pub account: PublicKey,
    /// The key that proposes and votes for it.
    pub node_key: PublicKey,
    /// The bonded stake that approved it.
    pub votes: u128,
}

/// The key of round `round`'s record.
pub fn round_key(round: u64) -> Vec<u8> {
    let mut key = ROUND_PREFIX.to_vec();
    key.extend_from_slice(&round.to_be_bytes());
    key
}
/// Most delegates per round (a validator set's bound).
pub const DELEGATES_MAX: u32 = super::validators::VALIDATORS_MAX as u32;

/// A DPoS chain's parameters, fixed at genesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct DposParams {
    /// Delegates per round, which is also the number of heights in a round (N).
    pub delegates: u32,
}

impl DposParams {
    /// The parameters' ledger record: key and value.
    pub fn record(&self) -> (Vec<u8>, Vec<u8>) {
        (DPOS_PARAMS_KEY.to_vec(), borsh::to_vec(self).unwrap_or_default())
    }

    /// Checks N against the genesis set: 1 ..= [`DELEGATES_MAX`], and genesis lists
    /// exactly N validators.
    pub fn check(&self, genesis_validators: usize) -> Result<(), String> {
        if !(1..=DELEGATES_MAX).contains(&self.delegates) {
            return Err(format!("dpos delegates must be between 1 and {DELEGATES_MAX}, not {}", self.delegates));
        }
        if genesis_validators != self.delegates as usize {
            return Err(format!(
                "a DPoS genesis lists exactly its {} delegates of round 0 as validators, not {genesis_validators}",
                self.delegates
            ));
        }
        Ok(())
    }

    fn blocks(&self) -> u64 {
        u64::from(self.delegates.max(1))
    }

    /// The round that holds `height` (heights start at 1; genesis counts as round 0).
    pub fn round_of(&self, height: u64) -> u64 {
        height.saturating_sub(1) / self.blocks()
    }

    /// The first height of `round`.
    pub fn first_height(&self, round: u64) -> u64 {
        round.saturating_mul(self.blocks()).saturating_add(1)
    }

    /// The round whose set a block at `height` writes, when it opens a round.
    pub fn round_chosen_at(&self, height: u64) -> Option<u64> {
        let opens_round = height >= 1 && (height - 1).is_multiple_of(self.blocks());
        opens_round.then(|| self.round_of(height).saturating_add(1))
    }
}

impl Ledger {
    /// The chain's DPoS parameters, when it is DPoS.
    pub fn dpos_params(&self) -> Option<DposParams> {
        self.record(DPOS_PARAMS_KEY).and_then(|bytes| borsh::from_slice(bytes).ok())
    }

    /// How round `round` was chosen (none for round 0, which is genesis's).
    pub fn dpos_round(&self, round: u64) -> Option<RoundRecord> {
        self.record(&round_key(round)).and_then(|bytes| borsh::from_slice(bytes).ok())
    }
}

/// What a block at `env.height` writes before its transactions: the set of the round two
/// rounds on when it opens a round of a DPoS chain, else nothing. `prior` holds the
/// changes of its not yet final ancestors.
pub fn round_changes(ledger: &Ledger, prior: &Changes, env: &BlockEnv) -> Changes {
    let mut changes = Changes::new();
    let Some(params) = ledger.dpos_params() else { return changes };
    let Some(round) = params.round_chosen_at(env.height) else { return changes };
    let from_height = params.first_height(round);
    let (members, record) = round_members(ledger, prior, &params, round, env);
    let set = ValidatorSet { from_height, members };
    if set.check().is_ok() {
        let (key, value) = set.record();
        changes.records.insert(key, Some(value));
        changes.records.insert(round_key(round), Some(borsh::to_vec(&record).unwrap_or_default()));
    }
    changes
}

fn round_members(
    ledger: &Ledger,
    prior: &Changes,
    params: &DposParams,
    round: u64,
    env: &BlockEnv,
) -> (Vec<Member>, RoundRecord) {
    let ranked = staking::delegates(|prefix| records_with_prefix(ledger, &[prior], prefix));
    let count = params.delegates as usize;
    if ranked.len() < count {
        // Too few delegates: the set in force before the round goes on, as it is.
        let previous = params.first_height(round).saturating_sub(1).max(1);
        let members = validators_at(ledger, prior, previous).map(|set| set.members).unwrap_or_default();
        return (members, RoundRecord { chosen_at: env.height, seed: None, elected: Vec::new() });
    }
    let seed = staking::round_seed(round, &env.parent);
    let elected = ranked
        .iter()
        .take(count)
        .map(|delegate| ElectedDelegate {
            account: delegate.account,
            node_key: delegate.node_key,
            votes: delegate.votes,
        })
        .collect();
    let members = staking::round_order(&ranked, count, &seed).into_iter().map(|key| Member { key, power: 1 }).collect();
    (members, RoundRecord { chosen_at: env.height, seed: Some(seed), elected })
}

/// The set in force at `height`, reading the ledger under `prior`.
fn validators_at(ledger: &Ledger, prior: &Changes, height: u64) -> Option<ValidatorSet> {
    let sets = records_with_prefix(ledger, &[prior], super::validators::VALIDATORS_PREFIX);
    let sets: Vec<ValidatorSet> =
        sets.iter().filter_map(|(key, value)| ValidatorSet::from_record(key, value)).collect();
    super::validators::set_at(&sets, height).cloned()
}

/// The records under `prefix` of the ledger with `layers` applied in order (later layers
/// win; `None` deletes).
pub fn records_with_prefix(ledger: &Ledger, layers: &[&Changes], prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut merged: BTreeMap<Vec<u8>, Vec<u8>> =
        ledger.records_with_prefix(prefix).map(|(key, value)| (key.to_vec(), value.to_vec())).collect();
    for layer in layers {
        for (key, value) in layer.records.range(prefix.to_vec()..).take_while(|(key, _)| key.starts_with(prefix)) {
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
    }
    merged.into_iter().collect()
}

#[cfg(test)]
#[path = "rounds/tests.rs"]
mod tests;
