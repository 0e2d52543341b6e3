//! What a chain reports of itself: its heads, mempool, counters, the consensus engine's
//! last status and its plugin instances. The host publishes it in the node's status.

use crate::slot::SlotStatus;
use nest_sdk::Hash32;
use serde::{Deserialize, Serialize};

/// The chain's plugin instances.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChainPlugins {
    /// The chain-type instance.
    pub chain_type: SlotStatus,
    /// The consensus instance.
    pub consensus: SlotStatus,
}

/// Where a consensus engine stands ([`nest_sdk::EngineStatus`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConsensusStatus {
    /// The height being decided.
    pub height: u64,
    /// The round at that height.
    pub round: u32,
    /// The step.
    pub step: String,
    /// The round and value this node is locked on.
    pub locked: Option<RoundValue>,
    /// The round and value it holds as valid.
    pub valid: Option<RoundValue>,
    /// Cumulative counts by name.
    pub counters: std::collections::BTreeMap<String, u64>,
}

/// A round and a value.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoundValue {
    /// The round.
    pub round: u32,
    /// The value (SHA-256 of the unit bytes).
    pub value: Hash32,
}

impl From<&nest_sdk::EngineStatus> for ConsensusStatus {
    fn from(status: &nest_sdk::EngineStatus) -> Self {
        let round_value = |value: &nest_sdk::ROption<nest_sdk::RoundValue>| {
            (*value).into_option().map(|rv| RoundValue { round: rv.round, value: rv.value })
        };
        ConsensusStatus {
            height: status.height,
            round: status.round,
            step: status.step.to_string(),
            locked: round_value(&status.locked),
            valid: round_value(&status.valid),
            counters: status.counters.iter().map(|counter| (counter.name.to_string(), counter.value)).collect(),
        }
    }
}

/// One chain.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChainStatus {
    /// Chain id.
    pub id: String,
    /// Height of the last committed block.
    pub height: u64,
    /// Hash of the last committed block.
    pub head_hash: Hash32,
    /// Ledger state digest at that height.
    pub state_digest: Hash32,
    /// Timestamp of the head, milliseconds since the Unix epoch.
    pub head_timestamp_ms: u64,
    /// Hash of the genesis block (the chain's identity in transactions).
    pub genesis_hash: Hash32,
    /// Tokens charged per gas unit.
    pub gas_price: u64,
    /// Transactions waiting in the mempool.
    pub mempool_txs: usize,
    /// Transactions committed since this process started.
    pub txs_committed: u64,
    /// Blocks committed since this process started.
    pub blocks_committed: u64,
    /// Equivocations and other misbehaviour the consensus engine reported.
    pub evidence: Vec<String>,
    /// Where the consensus engine stands, as it last reported (engines that report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus: Option<ConsensusStatus>,
    /// Plugin instances.
    pub plugins: ChainPlugins,
}
