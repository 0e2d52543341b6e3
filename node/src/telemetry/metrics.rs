//! Count what the node does, in Prometheus text format at `/metrics`.
//!
//! Every metric the node exports is named here, once, behind a function; the node loop,
//! the API and the console call these functions. The recorder is installed once per
//! process by [`install`]; before that (and in unit tests) the calls cost next to nothing.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::{sync::OnceLock, time::Duration};

/// Histogram buckets for every `_seconds` histogram: from a plugin call (tens of
/// microseconds) to a slow block (tens of seconds).
const SECONDS_BUCKETS: [f64; 16] =
    [0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

use crate::net::telemetry::{GOSSIP_TOPICS, GOSSIP_VERDICTS, SYNC_OUTCOMES};
pub use crate::net::telemetry::{gossip_message, sync_request};
/// Codes `nest_inputs_rejected_total` counts from the start (at zero): the request's
/// own and the common transaction ones; rarer codes appear at their first use.
pub const INPUT_REJECTION_CODES: &[&str] = &[
    "malformed_request",
    "too_many_txs",
    "malformed",
    "too_large",
    "bad_signature",
    "wrong_chain",
    "wrong_nonce",
    "insufficient_balance",
    "fee_too_low",
    "mempool_full",
    "duplicate",
    "sender_cap_reached",
    "replacement_underpriced",
];

/// Lua limits that stop an evaluation.
const LUA_LIMITS: [&str; 3] = ["instructions", "memory", "output"];

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
///
/// If another recorder was installed first, the handle renders an empty registry.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            describe();
            register_node_wide();
            handle
        })
        .clone()
}

/// Every metric the node exports, with its help text: counters, gauges, histograms.
const COUNTERS: &[(&str, &str)] = &[
    ("nest_blocks_committed_total", "Blocks committed, by chain."),
    ("nest_txs_committed_total", "Transactions committed, by chain."),
    (
        "nest_consensus_events_total",
        "Consensus engine events (rounds started, timeouts fired, votes received per step), by chain and event.",
    ),
    ("nest_consensus_evidence_total", "Offences the consensus engine reported, by chain and offender."),
    ("nest_plugin_calls_total", "Calls into plugin instances, by plugin id."),
    ("nest_plugin_errors_total", "Plugin calls that returned an error, by plugin id."),
    ("nest_inputs_rejected_total", "Rejected API inputs, by reason."),
    ("nest_lua_evaluations_total", "Lua chunks evaluated."),
    ("nest_lua_limit_hits_total", "Lua evaluations stopped by a limit, by limit."),
    ("nest_http_requests_total", "HTTP requests answered, by route and status."),
    ("nest_device_frames_rejected_total", "Device frames rejected, by reason."),
    (
        "nest_radio_frames_skipped_total",
        "Frames a radio driver reported it did not deliver (duty cycle, lost on the air, queue full), by radio and reason.",
    ),
    ("nest_radio_start_failures_total", "Radio driver starts that failed, by radio."),
    ("nest_device_frames_accepted_total", "Device frames that passed every check, by radio."),
    ("nest_gossip_messages_total", "Gossip messages received, by topic and verdict."),
    ("nest_sync_requests_total", "Inbound block-sync requests, by outcome."),
    ("nest_evidence_reports_total", "Offences the consensus engine reported, by chain."),
    (
        "nest_consensus_signatures_verified_total",
        "Signatures consensus engines checked, by where they were verified: off_loop (before the consensus loop, looked up there) or on_loop.",
    ),
];
const GAUGES: &[(&str, &str)] = &[
    ("nest_mempool_txs", "Transactions waiting in the mempool, by chain."),
    ("nest_chain_height", "Height of the last committed block, by chain."),
    ("nest_consensus_height", "Height the consensus engine is deciding, by chain."),
    ("nest_consensus_round", "Round the consensus engine is in at that height, by chain."),
    ("nest_peers", "Connected peers."),
    ("nest_radio_up", "Whether a radio's driver runs (1) or failed to start or is disabled (0), by radio."),
];
const HISTOGRAMS: &[(&str, &str)] = &[
    ("nest_block_interval_seconds", "Time between a committed block's timestamp and its parent's, by chain."),
    (
        "nest_commit_latency_seconds",
        "Time from a block's timestamp to its commit on this node (finality latency), by chain.",
    ),
    ("nest_http_request_duration_seconds", "Time to answer an HTTP request, by route."),
    ("nest_plugin_call_duration_seconds", "Time spent in one call into a plugin, by plugin id."),
];

fn describe() {
    for (name, help) in COUNTERS {
        describe_counter!(*name, *help);
    }
    for (name, help) in GAUGES {
        describe_gauge!(*name, *help);
    }
    for (name, help) in HISTOGRAMS {
        describe_histogram!(*name, *help);
    }
}

/// What a node's metrics are labelled with, known from its manifest: every series of
/// these exists at zero from the start, so that an alert on a rate sees it before the
/// first event.
pub struct KnownLabels {
    /// Chain ids.
    pub chains: Vec<String>,
    /// Plugin ids.
    pub plugins: Vec<String>,
    /// Radio ids.
    pub radios: Vec<String>,
    /// Every reason a device frame is rejected for (`devices::pipeline::Rejection`).
    pub device_rejections: Vec<&'static str>,
}

/// Series whose labels are fixed sets: at zero from the recorder's installation.
fn register_node_wide() {
    peers(0);
    for topic in GOSSIP_TOPICS {
        for verdict in GOSSIP_VERDICTS {
            counter!("nest_gossip_messages_total", "topic" => topic, "verdict" => verdict).absolute(0);
        }
    }
    for place in SIGNATURE_CHECK_PLACES {
        counter!("nest_consensus_signatures_verified_total", "where" => place).absolute(0);
    }
    for outcome in SYNC_OUTCOMES {
        counter!("nest_sync_requests_total", "outcome" => outcome).absolute(0);
    }
    for code in INPUT_REJECTION_CODES {
        counter!("nest_inputs_rejected_total", "reason" => *code).absolute(0);
    }
    counter!("nest_lua_evaluations_total").absolute(0);
    for limit in LUA_LIMITS {
        counter!("nest_lua_limit_hits_total", "limit" => limit).absolute(0);
    }
}

/// Puts every series labelled with the node's chains, plugins and radios at zero.
pub fn register_known(known: &KnownLabels) {
    for chain in &known.chains {
        let chain = || chain.clone();
        counter!("nest_blocks_committed_total", "chain" => chain()).absolute(0);
        counter!("nest_txs_committed_total", "chain" => chain()).absolute(0);
        counter!("nest_evidence_reports_total", "chain" => chain()).absolute(0);
        gauge!("nest_chain_height", "chain" => chain()).set(0.0);
        gauge!("nest_mempool_txs", "chain" => chain()).set(0.0);
        gauge!("nest_consensus_height", "chain" => chain()).set(0.0);
        gauge!("nest_consensus_round", "chain" => chain()).set(0.0);
        let _ = histogram!("nest_block_interval_seconds", "chain" => chain());
        let _ = histogram!("nest_commit_latency_seconds", "chain" => chain());
    }
    for plugin in &known.plugins {
        counter!("nest_plugin_calls_total", "plugin" => plugin.clone()).absolute(0);
        counter!("nest_plugin_errors_total", "plugin" => plugin.clone()).absolute(0);
        let _ = histogram!("nest_plugin_call_duration_seconds", "plugin" => plugin.clone());
    }
    for radio in &known.radios {
        counter!("nest_device_frames_accepted_total", "radio" => radio.clone()).absolute(0);
        counter!("nest_radio_start_failures_total", "radio" => radio.clone()).absolute(0);
        for reason in &known.device_rejections {
            counter!("nest_device_frames_rejected_total", "radio" => radio.clone(), "reason" => *reason).absolute(0);
        }
    }
}

/// A block with `txs` transactions was committed on `chain`, `interval_ms` after its
/// parent's timestamp and `latency_ms` after its own (this node's clock).
pub fn block_committed(chain: &str, txs: usize, interval_ms: u64, latency_ms: u64) {
    counter!("nest_blocks_committed_total", "chain" => chain.to_owned()).increment(1);
    counter!("nest_txs_committed_total", "chain" => chain.to_owned()).increment(txs as u64);
    histogram!("nest_block_interval_seconds", "chain" => chain.to_owned()).record(interval_ms as f64 / 1000.0);
    histogram!("nest_commit_latency_seconds", "chain" => chain.to_owned()).record(latency_ms as f64 / 1000.0);
}

/// What a chain's consensus engine last reported: its height and round as gauges, its
/// counters as `nest_consensus_events_total{chain, event}`.
pub fn consensus_status(chain: &str, status: &nest_chain::status::ConsensusStatus) {
    gauge!("nest_consensus_height", "chain" => chain.to_owned()).set(status.height as f64);
    gauge!("nest_consensus_round", "chain" => chain.to_owned()).set(f64::from(status.round));
    for (event, value) in &status.counters {
        counter!("nest_consensus_events_total", "chain" => chain.to_owned(), "event" => event.clone()).absolute(*value);
    }
}

/// The consensus engine reported an offence by `offender`.
pub fn evidence(chain: &str, offender: &nest_sdk::PublicKey) {
    counter!("nest_consensus_evidence_total", "chain" => chain.to_owned(), "offender" => offender.to_string())
        .increment(1);
    counter!("nest_evidence_reports_total", "chain" => chain.to_owned()).increment(1);
}

/// The chain's committed height and mempool size now.
pub fn chain_state(chain: &str, height: u64, mempool_txs: usize) {
    gauge!("nest_chain_height", "chain" => chain.to_owned()).set(height as f64);
    gauge!("nest_mempool_txs", "chain" => chain.to_owned()).set(mempool_txs as f64);
}

/// Connected peers now.
pub fn peers(count: usize) {
    gauge!("nest_peers").set(count as f64);
}

/// One call into plugin `plugin` (its manifest id), which took `elapsed`.
pub fn plugin_called(plugin: &str, elapsed: Duration) {
    counter!("nest_plugin_calls_total", "plugin" => plugin.to_owned()).increment(1);
    histogram!("nest_plugin_call_duration_seconds", "plugin" => plugin.to_owned()).record(elapsed.as_secs_f64());
}

/// A call into plugin `plugin` returned an error.
pub fn plugin_failed(plugin: &str) {
    counter!("nest_plugin_errors_total", "plugin" => plugin.to_owned()).increment(1);
}

/// An API input was rejected; `reason` is a stable code (`bad_signature`, `malformed_request`, ...).
pub fn input_rejected(reason: &'static str) {
    counter!("nest_inputs_rejected_total", "reason" => reason).increment(1);
}

/// A Lua chunk was evaluated (console or strategy).
pub fn lua_evaluated() {
    counter!("nest_lua_evaluations_total").increment(1);
}

/// A Lua evaluation was stopped by `limit` (`memory`, `instructions`, ...).
pub fn lua_limit_hit(limit: &str) {
    counter!("nest_lua_limit_hits_total", "limit" => limit.to_owned()).increment(1);
}

/// An HTTP request on `route` (the route's pattern, not the path) was answered with
/// `status` after `elapsed`.
pub fn http_request(route: &str, status: u16, elapsed: Duration) {
    counter!("nest_http_requests_total", "route" => route.to_owned(), "status" => status.to_string()).increment(1);
    histogram!("nest_http_request_duration_seconds", "route" => route.to_owned()).record(elapsed.as_secs_f64());
}

/// A device frame that arrived on radio `radio` passed every check.
pub fn device_frame_accepted(radio: &str) {
    counter!("nest_device_frames_accepted_total", "radio" => radio.to_owned()).increment(1);
}

/// A device frame that arrived on radio `radio` was rejected for `reason`.
pub fn device_frame_rejected(radio: &str, reason: &'static str) {
    counter!("nest_device_frames_rejected_total", "radio" => radio.to_owned(), "reason" => reason).increment(1);
}

/// Where a consensus engine's signature checks were verified.
const SIGNATURE_CHECK_PLACES: [&str; 2] = ["off_loop", "on_loop"];

/// A consensus engine checked a signature that was verified off the loop (`true`) or
/// that it had verified on the loop.
pub fn consensus_signature_checked(off_loop: bool) {
    let place = SIGNATURE_CHECK_PLACES[usize::from(!off_loop)];
    counter!("nest_consensus_signatures_verified_total", "where" => place).increment(1);
}

/// Radio `radio`'s driver reported `frames` frames it did not deliver, for `reason`.
pub fn radio_frames_skipped(radio: &str, reason: &str, frames: u64) {
    counter!("nest_radio_frames_skipped_total", "radio" => radio.to_owned(), "reason" => reason.to_owned())
        .increment(frames);
}

/// Whether radio `radio`'s driver runs now.
pub fn radio_running(radio: &str, running: bool) {
    gauge!("nest_radio_up", "radio" => radio.to_owned()).set(if running { 1.0 } else { 0.0 });
}

/// Radio `radio`'s driver failed to start.
pub fn radio_start_failed(radio: &str) {
    counter!("nest_radio_start_failures_total", "radio" => radio.to_owned()).increment(1);
}

/// The chain runtime's and plugin slots' reports, as this module's series.
struct ChainMetrics;

impl nest_chain::telemetry::Metrics for ChainMetrics {
    fn block_committed(&self, chain: &str, txs: usize, interval_ms: u64, timestamp_ms: u64) {
        let latency_ms = crate::clock::now_ms().saturating_sub(timestamp_ms);
        block_committed(chain, txs, interval_ms, latency_ms);
    }

    fn consensus_status(&self, chain: &str, status: &nest_chain::status::ConsensusStatus) {
        consensus_status(chain, status);
    }

    fn evidence(&self, chain: &str, offender: &nest_sdk::PublicKey) {
        evidence(chain, offender);
    }

    fn plugin_called(&self, plugin: &str, elapsed: Duration) {
        plugin_called(plugin, elapsed);
    }

    fn plugin_failed(&self, plugin: &str) {
        plugin_failed(plugin);
    }
}

/// Routes the chain runtime's and plugin slots' reports to this module (once per process).
pub fn install_chain_metrics() {
    nest_chain::telemetry::install_metrics(Box::new(ChainMetrics));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_recorder_renders_counters_with_labels() {
        let handle = install();
        block_committed("metrics-test", 3, 1000, 1500);
        plugin_called("metrics-test-plugin", Duration::from_micros(30));
        lua_limit_hit("instructions");
        let text = handle.render();
        assert!(text.contains("nest_blocks_committed_total{chain=\"metrics-test\"} 1"), "{text}");
        assert!(text.contains("nest_txs_committed_total{chain=\"metrics-test\"} 3"), "{text}");
        assert!(text.contains("nest_plugin_calls_total{plugin=\"metrics-test-plugin\"} 1"), "{text}");
        assert!(text.contains("nest_lua_limit_hits_total{limit=\"instructions\"} 1"), "{text}");
        assert!(text.contains("nest_peers 0"), "{text}");
        assert!(text.contains("nest_block_interval_seconds_bucket{chain=\"metrics-test\",le=\"1\"} 1"), "{text}");
    }

    /// Every series of a chain, plugin and radio the manifest names is there before its
    /// first event, histograms included.
    #[test]
    fn known_labels_are_rendered_at_zero_before_any_event() {
        let handle = install();
        register_known(&KnownLabels {
            chains: vec!["zero-chain".into()],
            plugins: vec!["zero-plugin".into()],
            radios: vec!["zero-radio".into()],
            device_rejections: vec!["bad_signature"],
        });
        let text = handle.render();
        for series in [
            "nest_blocks_committed_total{chain=\"zero-chain\"} 0",
            "nest_chain_height{chain=\"zero-chain\"} 0",
            "nest_commit_latency_seconds_count{chain=\"zero-chain\"} 0",
            "nest_plugin_calls_total{plugin=\"zero-plugin\"} 0",
            "nest_plugin_call_duration_seconds_count{plugin=\"zero-plugin\"} 0",
            "nest_device_frames_accepted_total{radio=\"zero-radio\"} 0",
            "nest_device_frames_rejected_total{radio=\"zero-radio\",reason=\"bad_signature\"} 0",
            "nest_gossip_messages_total{topic=\"consensus\",verdict=\"reject\"} 0",
            "nest_sync_requests_total{outcome=\"rate_limited\"} 0",
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
    }
}
