//! Describe the node's state for the API: a snapshot the node loop publishes.

use super::slot::SlotStatus;
use nest_sdk::{Hash32, PublicKey};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};

/// A loaded plugin package.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PackageStatus {
    /// Manifest id.
    pub id: String,
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// Kinds the library provides.
    pub kinds: Vec<String>,
    /// SHA-256 of the library that was loaded.
    pub library_sha256: Hash32,
    /// Vendor whose key signed it; absent when loaded unsigned.
    pub signed_by: Option<String>,
    /// `active`, or `replaced` after an upgrade.
    pub state: String,
    /// The version that replaced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

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

/// One radio driver instance.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RadioStatus {
    /// Radio id.
    pub id: String,
    /// Technology reported by the driver.
    pub technology: String,
    /// MTU reported by the driver.
    pub mtu_bytes: u32,
    /// Frames the driver delivered.
    pub frames_received: u64,
    /// Frames (readings or fragments, one each) the driver reported it did not deliver,
    /// by reason: `duty_cycle`, `lost_on_air`, `host_queue_full`, ... (see the driver).
    #[serde(default)]
    pub skipped: std::collections::BTreeMap<String, u64>,
    /// Link counters: frames in and out, accepted, rejected by reason, signal strength.
    #[serde(default)]
    pub link: crate::devices::pipeline::LinkStats,
    /// The driver instance.
    pub plugin: SlotStatus,
}

/// One market policy instance.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MarketStatus {
    /// Market id.
    pub id: String,
    /// The policy instance.
    pub plugin: SlotStatus,
}

/// A connected peer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Its node key.
    pub key: PublicKey,
    /// What it said it runs (`nestd/<version>`), once identify has answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

/// The whole node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Node name.
    pub name: String,
    /// Node public key.
    pub public_key: PublicKey,
    /// nestd version.
    pub version: String,
    /// Connected peers.
    pub peers: usize,
    /// Connected peers: libp2p peer id and node key.
    #[serde(default)]
    pub peer_list: Vec<PeerInfo>,
    /// Network counters (gossip accepted, rejected, rate-limited, oversized), when the
    /// node has a network.
    #[serde(default)]
    pub network: Option<crate::net::NetStats>,
    /// Chains.
    pub chains: Vec<ChainStatus>,
    /// Loaded packages.
    pub plugins: Vec<PackageStatus>,
    /// Radio drivers.
    pub radios: Vec<RadioStatus>,
    /// Market policies.
    pub markets: Vec<MarketStatus>,
    /// Anchoring of device readings.
    #[serde(default)]
    pub device_anchors: crate::devices::pipeline::AnchorStats,
}

/// The status shared between the node loop (writer) and the API (readers).
pub type SharedStatus = Arc<RwLock<NodeStatus>>;
