//! Count what the node does, in Prometheus text format at `/metrics`.
//!
//! Every metric the node exports is named here, once, behind a function; the node loop,
//! the API and the console call these functions. The recorder is installed once per
//! process by [`install`]; before that (and in unit tests) the calls cost next to nothing.

use metrics::{counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
///
/// If another recorder was installed first, the handle renders an empty registry.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            describe();
            peers(0);
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!("nest_blocks_committed_total", "Blocks committed, by chain.");
    describe_counter!("nest_txs_committed_total", "Transactions committed, by chain.");
    describe_gauge!("nest_mempool_txs", "Transactions waiting in the mempool, by chain.");
    describe_gauge!("nest_chain_height", "Height of the last committed block, by chain.");
    describe_gauge!("nest_consensus_height", "Height the consensus engine is deciding, by chain.");
    describe_gauge!("nest_consensus_round", "Round the consensus engine is in at that height, by chain.");
    describe_counter!(
        "nest_consensus_events_total",
        "Consensus engine events (rounds started, timeouts fired, votes received per step), by chain and event."
    );
    describe_counter!(
        "nest_consensus_evidence_total",
        "Offences the consensus engine reported, by chain and offender."
    );
    describe_gauge!("nest_peers", "Connected peers.");
    describe_counter!("nest_plugin_calls_total", "Calls into plugin instances, by plugin id.");
    describe_counter!("nest_plugin_errors_total", "Plugin calls that returned an error, by plugin id.");
    describe_counter!("nest_inputs_rejected_total", "Rejected API inputs, by reason.");
    describe_counter!("nest_lua_evaluations_total", "Lua chunks evaluated.");
    describe_counter!("nest_lua_limit_hits_total", "Lua evaluations stopped by a limit, by limit.");
    describe_counter!("nest_http_requests_total", "HTTP requests answered, by route and status.");
    describe_counter!("nest_device_frames_rejected_total", "Device frames rejected, by reason.");
    describe_counter!(
        "nest_radio_frames_skipped_total",
        "Frames a radio driver reported it did not deliver (duty cycle, lost on the air, queue full), by radio and reason."
    );
    describe_gauge!(
        "nest_radio_up",
        "Whether a radio's driver runs (1) or failed to start or is disabled (0), by radio."
    );
    describe_counter!("nest_radio_start_failures_total", "Radio driver starts that failed, by radio.");
}

/// A block with `txs` transactions was committed on `chain`.
pub fn block_committed(chain: &str, txs: usize) {
    counter!("nest_blocks_committed_total", "chain" => chain.to_owned()).increment(1);
    counter!("nest_txs_committed_total", "chain" => chain.to_owned()).increment(txs as u64);
}

/// What a chain's consensus engine last reported: its height and round as gauges, its
/// counters as `nest_consensus_events_total{chain, event}`.
pub fn consensus_status(chain: &str, status: &crate::node::status::ConsensusStatus) {
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

/// One call into plugin `plugin` (its manifest id).
pub fn plugin_called(plugin: &str) {
    counter!("nest_plugin_calls_total", "plugin" => plugin.to_owned()).increment(1);
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

/// An HTTP request on `route` (the route's pattern, not the path) was answered with `status`.
pub fn http_request(route: &str, status: u16) {
    counter!("nest_http_requests_total", "route" => route.to_owned(), "status" => status.to_string()).increment(1);
}

/// A device frame was rejected for `reason`.
pub fn device_frame_rejected(reason: &'static str) {
    counter!("nest_device_frames_rejected_total", "reason" => reason).increment(1);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_recorder_renders_counters_with_labels() {
        let handle = install();
        block_committed("metrics-test", 3);
        plugin_called("metrics-test-plugin");
        lua_limit_hit("instructions");
        let text = handle.render();
        assert!(text.contains("nest_blocks_committed_total{chain=\"metrics-test\"} 1"), "{text}");
        assert!(text.contains("nest_txs_committed_total{chain=\"metrics-test\"} 3"), "{text}");
        assert!(text.contains("nest_plugin_calls_total{plugin=\"metrics-test-plugin\"} 1"), "{text}");
        assert!(text.contains("nest_lua_limit_hits_total{limit=\"instructions\"} 1"), "{text}");
        assert!(text.contains("nest_peers 0"), "{text}");
    }
}
