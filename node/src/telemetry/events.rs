//! Broadcast what the node does (blocks, transactions, plugin states) to whoever listens.
//!
//! The node loop publishes into a bounded [`tokio::sync::broadcast`] channel and never
//! waits: a subscriber that falls behind loses the oldest events and is told how many
//! with a [`Event::Lagged`] event. Publishing with nobody listening costs one atomic load.

use nest_chain::slot::SlotStatus;
use nest_sdk::Hash32;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Events kept for a slow subscriber before it starts losing the oldest.
pub const EVENTS_QUEUED_MAX: usize = 1024;
/// Blocks with more transactions than this publish one `txs_committed` summary instead
/// of one `tx_committed` event per transaction.
pub const TX_EVENTS_PER_BLOCK_MAX: usize = 1000;

/// Something the node did, as subscribers receive it (JSON tagged by `type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A block became final and durable.
    BlockCommitted {
        /// Chain id.
        chain: String,
        /// Block height.
        height: u64,
        /// Block hash.
        hash: Hash32,
        /// Number of transactions in the block.
        txs: usize,
    },
    /// A transaction is in a committed block.
    TxCommitted {
        /// Chain id.
        chain: String,
        /// Transaction hash.
        hash: Hash32,
        /// Block height.
        height: u64,
        /// Position in the block.
        index: u32,
    },
    /// A block with more than [`TX_EVENTS_PER_BLOCK_MAX`] transactions was committed.
    TxsCommitted {
        /// Chain id.
        chain: String,
        /// Block height.
        height: u64,
        /// Number of transactions.
        count: usize,
    },
    /// A plugin instance changed state (disabled, enabled, replaced).
    PluginState {
        /// Manifest id of the plugin.
        plugin: String,
        /// The new state (`running`, `disabled`, ...).
        state: String,
        /// Why, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Something happened in the resource market (a strategy installed, a quote, ...).
    Market {
        /// What: `strategy_installed`, `strategy_rolled_back`, `quote`, ...
        what: String,
        /// The SKU.
        sku: String,
        /// Details, as JSON text.
        detail: String,
    },
    /// A device frame was accepted or rejected (see `devices::pipeline`).
    DeviceFrame {
        /// Radio id.
        radio: String,
        /// The sender's link address (empty when unknown, e.g. a dropped fragment sequence).
        link_address: String,
        /// The device's µID, once decoded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<Hash32>,
        /// The frame's counter, once decoded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        counter: Option<u64>,
        /// `accepted` or `rejected`.
        status: String,
        /// Rejection reason code.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// This subscriber fell behind and lost events.
    Lagged {
        /// How many events it missed.
        missed: u64,
    },
}

impl Event {
    /// The chain the event is about, if any.
    pub fn chain(&self) -> Option<&str> {
        match self {
            Event::BlockCommitted { chain, .. }
            | Event::TxCommitted { chain, .. }
            | Event::TxsCommitted { chain, .. } => Some(chain),
            Event::PluginState { .. } | Event::Market { .. } | Event::DeviceFrame { .. } | Event::Lagged { .. } => None,
        }
    }

    /// Whether a stream filtered on `chain` (none: every chain) shows this event: events
    /// about no chain pass every filter.
    pub fn is_about(&self, chain: Option<&str>) -> bool {
        match (chain, self.chain()) {
            (Some(wanted), Some(about)) => wanted == about,
            _ => true,
        }
    }

    /// A plugin's current state, from its slot status.
    pub fn plugin_state(status: &SlotStatus) -> Event {
        Event::PluginState { plugin: status.id.clone(), state: status.state.clone(), reason: status.reason.clone() }
    }
}

/// The node's event channel; cheap to clone, every clone publishes into the same channel.
#[derive(Clone, Debug)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus keeping [`EVENTS_QUEUED_MAX`] events per subscriber.
    pub fn new() -> EventBus {
        let (sender, _) = broadcast::channel(EVENTS_QUEUED_MAX);
        EventBus { sender }
    }

    /// Publishes an event; never blocks, drops it when nobody listens.
    pub fn publish(&self, event: Event) {
        let _ = self.sender.send(event);
    }

    /// Whether anyone listens (lets publishers skip building events).
    pub fn has_subscribers(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// A new subscription, starting with the next event published.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Publishes a committed block and its transactions (one summary for large blocks).
    pub fn block_committed(&self, chain: &str, height: u64, hash: Hash32, tx_hashes: &[Hash32]) {
        if !self.has_subscribers() {
            return;
        }
        self.publish(Event::BlockCommitted { chain: chain.into(), height, hash, txs: tx_hashes.len() });
        if tx_hashes.len() > TX_EVENTS_PER_BLOCK_MAX {
            self.publish(Event::TxsCommitted { chain: chain.into(), height, count: tx_hashes.len() });
            return;
        }
        for (index, hash) in tx_hashes.iter().enumerate() {
            self.publish(Event::TxCommitted { chain: chain.into(), hash: *hash, height, index: index as u32 });
        }
    }
}

/// The next event for `receiver`: [`Event::Lagged`] after lost events, `None` once the
/// bus is gone.
pub async fn next_event(receiver: &mut broadcast::Receiver<Event>) -> Option<Event> {
    match receiver.recv().await {
        Ok(event) => Some(event),
        Err(broadcast::error::RecvError::Lagged(missed)) => Some(Event::Lagged { missed }),
        Err(broadcast::error::RecvError::Closed) => None,
    }
}

/// The chain runtime and plugin slots publish on the bus.
impl nest_chain::telemetry::Events for EventBus {
    fn block_committed(&self, chain: &str, height: u64, hash: Hash32, tx_hashes: &[Hash32]) {
        EventBus::block_committed(self, chain, height, hash, tx_hashes);
    }

    fn plugin_state(&self, status: &SlotStatus) {
        self.publish(Event::plugin_state(status));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(count: usize) -> Vec<Hash32> {
        (0..count).map(|i| crate::crypto::sha256(&i.to_le_bytes())).collect()
    }

    #[tokio::test]
    async fn block_with_few_txs_publishes_one_event_per_tx_then_summary_for_large_blocks() {
        let bus = EventBus::new();
        let mut receiver = bus.subscribe();
        bus.block_committed("main", 7, Hash32::ZERO, &hashes(2));
        let first = next_event(&mut receiver).await.unwrap();
        assert_eq!(first, Event::BlockCommitted { chain: "main".into(), height: 7, hash: Hash32::ZERO, txs: 2 });
        assert!(matches!(next_event(&mut receiver).await, Some(Event::TxCommitted { index: 0, height: 7, .. })));
        assert!(matches!(next_event(&mut receiver).await, Some(Event::TxCommitted { index: 1, .. })));
        bus.block_committed("main", 8, Hash32::ZERO, &hashes(TX_EVENTS_PER_BLOCK_MAX + 1));
        assert!(matches!(next_event(&mut receiver).await, Some(Event::BlockCommitted { height: 8, .. })));
        let summary = next_event(&mut receiver).await.unwrap();
        assert_eq!(
            summary,
            Event::TxsCommitted { chain: "main".into(), height: 8, count: TX_EVENTS_PER_BLOCK_MAX + 1 }
        );
    }

    #[tokio::test]
    async fn slow_subscriber_is_told_how_many_events_it_missed() {
        let bus = EventBus::new();
        let mut receiver = bus.subscribe();
        for height in 0..(EVENTS_QUEUED_MAX as u64 + 10) {
            bus.publish(Event::TxsCommitted { chain: "main".into(), height, count: 0 });
        }
        assert_eq!(next_event(&mut receiver).await, Some(Event::Lagged { missed: 10 }));
        assert!(matches!(next_event(&mut receiver).await, Some(Event::TxsCommitted { height: 10, .. })));
    }

    #[tokio::test]
    async fn disabled_slot_publishes_its_new_state() {
        let bus = EventBus::new();
        let mut receiver = bus.subscribe();
        let mut slot = nest_chain::slot::Slot::new((), "poa", "consensus-poa", "0.1.0", "{}");
        slot.attach_events(&(std::sync::Arc::new(bus.clone()) as nest_chain::telemetry::EventSink));
        slot.disable("panicked: boom".into());
        let expected = Event::PluginState {
            plugin: "poa".into(),
            state: "disabled".into(),
            reason: Some("panicked: boom".into()),
        };
        assert_eq!(next_event(&mut receiver).await, Some(expected));
    }

    #[test]
    fn a_chain_filter_keeps_that_chains_events_and_those_about_no_chain() {
        let block = Event::BlockCommitted { chain: "main".into(), height: 1, hash: Hash32::ZERO, txs: 0 };
        let lagged = Event::Lagged { missed: 1 };
        assert!(block.is_about(Some("main")) && block.is_about(None));
        assert!(!block.is_about(Some("side")));
        assert!(lagged.is_about(Some("side")) && lagged.is_about(None));
    }

    #[test]
    fn events_are_json_tagged_by_type() {
        let event = Event::PluginState { plugin: "poa".into(), state: "disabled".into(), reason: Some("panic".into()) };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "plugin_state", "plugin": "poa", "state": "disabled", "reason": "panic"})
        );
        assert_eq!(serde_json::to_value(Event::Lagged { missed: 3 }).unwrap()["type"], "lagged");
    }
}
