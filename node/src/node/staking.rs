//! Answer staking queries from a chain's committed ledger: the ranked delegates and an
//! account's stake and votes (see `ledger::staking`).

use super::{LoopState, QueryError};
use crate::ledger::staking::{self, DelegateView, Staker};
use nest_sdk::{Hash32, PublicKey};
use serde::Serialize;

/// A staking query.
#[derive(Debug)]
pub enum StakingOp {
    /// Every delegate with its votes, most votes first (ties by account key).
    Delegates {
        /// Chain id.
        chain: String,
    },
    /// An account's bonded stake, unbonding amounts and votes.
    Account {
        /// Chain id.
        chain: String,
        /// The account.
        account: PublicKey,
    },
    /// How a DPoS round was chosen: its seed, delegates and slot order.
    Round {
        /// Chain id.
        chain: String,
        /// The round.
        round: u64,
    },
    /// The chain's Proof-of-i/o parameters and what was minted so far.
    Poio {
        /// Chain id.
        chain: String,
    },
    /// A round's Proof-of-i/o: its start, its challenges' basis and its settlement.
    PoioRound {
        /// Chain id.
        chain: String,
        /// The round.
        round: u64,
    },
}

/// A DPoS round: everything needed to recompute its order (ADR 0012, 0013).
#[derive(Debug, Serialize)]
pub struct RoundView {
    /// Chain id.
    pub chain: String,
    /// The round.
    pub round: u64,
    /// Its first and last heights (a round is `delegates_per_round` heights).
    pub first_height: u64,
    /// See `first_height`.
    pub last_height: u64,
    /// N: delegates per round, and heights per round.
    pub delegates_per_round: u32,
    /// Height of the block that chose it (the first of the round before; 0: genesis).
    pub chosen_at: u64,
    /// `sha256("nest/dpos/round/v1" ‖ round ‖ hash of block chosen_at − 1)`; `null` for
    /// round 0 (genesis's order) and for a round that kept the set before it.
    pub seed: Option<Hash32>,
    /// The block whose hash the seed comes from, when there is a seed.
    pub seed_block: Option<u64>,
    /// The slot order: the delegates' node keys; height h of the round is proposed (in
    /// its first agreement round) by `order[(h − 1) mod N]`.
    pub order: Vec<PublicKey>,
    /// The elected delegates, most votes first, with the votes they had when elected.
    pub delegates: Vec<RoundDelegateView>,
    /// The chain's genesis time, milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    /// The pace of blocks the engine is configured with (its wait after a decision).
    pub block_interval_ms: Option<u64>,
    /// Height of the committed state this answer comes from.
    pub committed_height: u64,
}

/// One elected delegate of a round.
#[derive(Debug, Serialize)]
pub struct RoundDelegateView {
    /// Its account.
    pub account: PublicKey,
    /// The key that proposes and votes for it.
    pub node_key: PublicKey,
    /// Its name, as registered.
    pub name: Option<String>,
    /// The bonded stake that approved it when the round was chosen.
    pub votes: u128,
}

/// The ranked delegates of a chain at its committed height.
#[derive(Debug, Serialize)]
pub struct DelegatesView {
    /// Chain id.
    pub chain: String,
    /// Height of the committed state they come from.
    pub height: u64,
    /// The delegates, most votes first.
    pub delegates: Vec<DelegateView>,
}

/// An account's staking state at a chain's committed height.
#[derive(Debug, Serialize)]
pub struct StakerView {
    /// The account.
    pub account: PublicKey,
    /// Height of the committed state it comes from.
    pub height: u64,
    /// Its stake and votes.
    #[serde(flatten)]
    pub staker: Staker,
}

impl LoopState {
    /// Answers a staking query as JSON.
    pub(super) fn staking_op(&mut self, op: StakingOp) -> Result<serde_json::Value, QueryError> {
        match op {
            StakingOp::Delegates { chain } => {
                let runtime = self.chain(&chain)?;
                let ledger = runtime.ledger();
                let delegates = staking::delegates(|prefix| {
                    ledger.records_with_prefix(prefix).map(|(key, value)| (key.to_vec(), value.to_vec())).collect()
                });
                to_json(&DelegatesView { chain, height: runtime.committed_height(), delegates })
            }
            StakingOp::Account { chain, account } => {
                let runtime = self.chain(&chain)?;
                let ledger = runtime.ledger();
                let staker = staking::staker_of(|key| ledger.record(key).map(<[u8]>::to_vec), &account);
                to_json(&StakerView { account, height: runtime.committed_height(), staker })
            }
            StakingOp::Round { chain, round } => {
                let runtime = self.chain(&chain)?;
                let view = round_view(runtime, chain, round)?;
                to_json(&view)
            }
            StakingOp::Poio { chain } => to_json(&super::poio::poio_view(self.chain(&chain)?, chain)?),
            StakingOp::PoioRound { chain, round } => {
                to_json(&super::poio::poio_round_view(self.chain(&chain)?, chain, round)?)
            }
        }
    }
}

fn round_view(runtime: &mut super::chain::ChainRuntime, chain: String, round: u64) -> Result<RoundView, QueryError> {
    let block_interval_ms = pace_ms(runtime.consensus_slot().config_json());
    let ledger = runtime.ledger();
    let params = ledger
        .dpos_params()
        .ok_or_else(|| QueryError::NotFound(format!("chain {chain} is not DPoS: it has no rounds")))?;
    let first_height = params.first_height(round);
    let set = ledger.validators_at(first_height).filter(|set| set.from_height == first_height).ok_or_else(|| {
        QueryError::NotFound(format!(
            "round {round} of chain {chain} is not chosen yet: block {} chooses it",
            params.first_height(round.saturating_sub(1))
        ))
    })?;
    let record = ledger.dpos_round(round);
    let names: std::collections::BTreeMap<PublicKey, String> = staking::delegates(|prefix| {
        ledger.records_with_prefix(prefix).map(|(key, value)| (key.to_vec(), value.to_vec())).collect()
    })
    .into_iter()
    .map(|delegate| (delegate.node_key, delegate.name))
    .collect();
    let delegates = record
        .as_ref()
        .map(|record| {
            record
                .elected
                .iter()
                .map(|elected| RoundDelegateView {
                    account: elected.account,
                    node_key: elected.node_key,
                    name: names.get(&elected.node_key).cloned(),
                    votes: elected.votes,
                })
                .collect()
        })
        .unwrap_or_default();
    let seed = record.as_ref().and_then(|record| record.seed);
    Ok(RoundView {
        chain,
        round,
        first_height,
        last_height: params.first_height(round.saturating_add(1)).saturating_sub(1),
        delegates_per_round: params.delegates,
        chosen_at: record.as_ref().map_or(0, |record| record.chosen_at),
        seed_block: seed.and(record.as_ref().map(|record| record.chosen_at.saturating_sub(1))),
        seed,
        order: set.members.iter().map(|member| member.key).collect(),
        delegates,
        genesis_time_ms: runtime.genesis_timestamp_ms(),
        block_interval_ms,
        committed_height: runtime.committed_height(),
    })
}

/// The pace of blocks in an engine's configuration: BFT's and DPoS's wait after a
/// decision, PoA's slot.
fn pace_ms(config_json: &str) -> Option<u64> {
    let config: serde_json::Value = serde_json::from_str(config_json).ok()?;
    ["commit_wait_ms", "block_interval_ms"].iter().find_map(|key| config.get(key)?.as_u64())
}

fn to_json(value: &impl Serialize) -> Result<serde_json::Value, QueryError> {
    serde_json::to_value(value).map_err(|e| QueryError::Failed(e.to_string()))
}
