//! The network's metrics, reported through the `metrics` facade to whichever recorder
//! the process installed (the node's Prometheus exporter). The label sets are public so
//! that the exporter can create every series at zero from the start.

use metrics::counter;

/// Gossip topics, for `nest_gossip_messages_total`.
pub const GOSSIP_TOPICS: [&str; 2] = ["txs", "consensus"];
/// Gossip verdicts: the node's three, then the network's own two.
pub const GOSSIP_VERDICTS: [&str; 5] = ["accept", "reject", "ignore", "rate_limited", "oversized"];
/// Outcomes of inbound block-sync requests, for `nest_sync_requests_total`.
pub const SYNC_OUTCOMES: [&str; 3] = ["served", "refused", "rate_limited"];

/// A gossip message on `topic` (`txs`, `consensus`) got `verdict` (`accept`, `reject`,
/// `ignore` from the node; `rate_limited`, `oversized` from the network's own checks).
pub fn gossip_message(topic: &'static str, verdict: &'static str) {
    counter!("nest_gossip_messages_total", "topic" => topic, "verdict" => verdict).increment(1);
}

/// An inbound block-sync request ended with `outcome` (`served`, `refused`, `rate_limited`).
pub fn sync_request(outcome: &'static str) {
    counter!("nest_sync_requests_total", "outcome" => outcome).increment(1);
}
