//! Describe the node's state for the API: a snapshot the node loop publishes.

use nest_chain::slot::SlotStatus;
pub use nest_chain::status::{ChainPlugins, ChainStatus, ConsensusStatus, RoundValue};
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
