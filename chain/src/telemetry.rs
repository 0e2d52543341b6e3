//! What the runtime and the plugin slots report, behind two small traits: the host
//! implements them with its Prometheus metrics and its event bus; the simulator installs
//! nothing, and the reports go nowhere.
//!
//! Metrics are process-wide (one sink, [`install_metrics`], as the host's metrics
//! registry is); events belong to an instance ([`Events`], attached per runtime and slot).

use crate::slot::SlotStatus;
use crate::status::ConsensusStatus;
use nest_sdk::{Hash32, PublicKey};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Counters and histograms of chains and plugin calls.
pub trait Metrics: Send + Sync {
    /// A block was committed: its transactions, the time since its parent's timestamp,
    /// and its own timestamp (the sink measures the latency with its clock).
    fn block_committed(&self, chain: &str, txs: usize, interval_ms: u64, timestamp_ms: u64);
    /// The consensus engine reported where it stands.
    fn consensus_status(&self, chain: &str, status: &ConsensusStatus);
    /// The consensus engine reported misbehaviour by `offender`.
    fn evidence(&self, chain: &str, offender: &PublicKey);
    /// A plugin call returned after `elapsed`.
    fn plugin_called(&self, plugin: &str, elapsed: Duration);
    /// A plugin call failed.
    fn plugin_failed(&self, plugin: &str);
}

/// What subscribers of one node hear: committed blocks and plugin state changes.
pub trait Events: Send + Sync {
    /// A block was committed.
    fn block_committed(&self, chain: &str, height: u64, hash: Hash32, tx_hashes: &[Hash32]);
    /// A plugin instance changed state (disabled, failed, resumed, replaced).
    fn plugin_state(&self, status: &SlotStatus);
}

/// An instance's event sink.
pub type EventSink = Arc<dyn Events>;

static METRICS: OnceLock<Box<dyn Metrics>> = OnceLock::new();

/// Installs the process's metrics sink; a second install is ignored (the first stays).
pub fn install_metrics(sink: Box<dyn Metrics>) {
    let _ = METRICS.set(sink);
}

/// The installed metrics sink, if any.
pub(crate) fn metrics() -> Option<&'static dyn Metrics> {
    METRICS.get().map(|sink| sink.as_ref())
}
