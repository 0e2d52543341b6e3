//! Start radio drivers and take what they report: frames into the node loop, skipped
//! frames into per-radio counters, and a failed start into the driver's state.
//!
//! A driver's threads call the sink; frames go through the loop's bounded request
//! channel, while skip reports only bump counters (they need no loop work, and must not
//! be lost when the queue is full).

use super::{LoopState, RadioPart, Request, status::RadioStatus};
use crate::telemetry::metrics;
use nest_sdk::{
    RStr, RadioFrame, SinkStatus,
    radio::{FrameSinkFfi, SKIP_REASON_BYTES_MAX, SKIP_REASONS_MAX},
};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, mpsc},
};

/// The reason a skip is counted under when the driver's code is unusable or one reason too many.
const SKIP_REASON_OTHER: &str = "other";

/// Frames one radio's driver did not deliver, by reason; shared with its sinks.
#[derive(Debug, Default)]
pub struct SkipCounts(Mutex<BTreeMap<String, u64>>);

impl SkipCounts {
    /// Counts `frames` under `reason`, or under `other` when the code is not snake_case of
    /// at most [`SKIP_REASON_BYTES_MAX`] bytes or the radio already has
    /// [`SKIP_REASONS_MAX`] reasons. Returns the reason counted.
    pub fn record(&self, reason: &str, frames: u64) -> String {
        let Ok(mut counts) = self.0.lock() else { return SKIP_REASON_OTHER.into() };
        let known = counts.contains_key(reason);
        let room = counts.len() + usize::from(!counts.contains_key(SKIP_REASON_OTHER)) < SKIP_REASONS_MAX;
        let reason = if is_reason_code(reason) && (known || room) { reason } else { SKIP_REASON_OTHER };
        let count = counts.entry(reason.to_string()).or_default();
        *count = count.saturating_add(frames);
        reason.to_string()
    }

    /// The counts so far.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|counts| counts.clone()).unwrap_or_default()
    }
}

/// Whether a driver's reason is a code the API and the metrics can carry as it is.
fn is_reason_code(reason: &str) -> bool {
    (1..=SKIP_REASON_BYTES_MAX).contains(&reason.len())
        && reason.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Delivers a radio driver's frames to the node loop without blocking the driver.
#[derive(Clone)]
struct LoopSink {
    radio: usize,
    radio_id: Arc<str>,
    requests: mpsc::SyncSender<Request>,
    skips: Arc<SkipCounts>,
}

impl FrameSinkFfi for LoopSink {
    fn deliver(&self, frame: RadioFrame) -> SinkStatus {
        match self.requests.try_send(Request::Frame { radio: self.radio, frame }) {
            Ok(()) => SinkStatus::Accepted,
            Err(mpsc::TrySendError::Full(_)) => SinkStatus::Full,
            Err(mpsc::TrySendError::Disconnected(_)) => SinkStatus::Closed,
        }
    }

    fn skipped(&self, reason: RStr<'_>, frames: u64) {
        let counted = self.skips.record(reason.as_str(), frames);
        metrics::radio_frames_skipped(&self.radio_id, &counted, frames);
    }
}

/// The sink radio `index` delivers to.
fn loop_sink(index: usize, part: &RadioPart, requests: &mpsc::SyncSender<Request>) -> nest_sdk::FrameSink {
    nest_sdk::FrameSink::new(LoopSink {
        radio: index,
        radio_id: Arc::from(part.id.as_str()),
        requests: requests.clone(),
        skips: part.skips.clone(),
    })
}

/// Starts radio `index`'s driver; a failed start marks the driver `failed` with its error
/// (the node runs on without it) and is counted.
pub(super) fn start_radio(index: usize, part: &mut RadioPart, requests: &mpsc::SyncSender<Request>) {
    let sink = loop_sink(index, part, requests);
    match part.slot.call(|r| r.start(sink.to_box())) {
        Ok(()) => part.started = true,
        Err(error) => {
            part.started = false;
            metrics::radio_start_failed(&part.id);
            if part.slot.is_running() {
                part.slot.fail(format!("start failed: {}", plugin_error_text(&error)));
            }
        }
    }
}

/// The plugin's own message, without the slot's `plugin <id>:` prefix.
fn plugin_error_text(error: &super::slot::SlotError) -> String {
    match error {
        super::slot::SlotError::Plugin { error, .. } => error.to_string(),
        other => other.to_string(),
    }
}

/// Starts every radio driver, in the node's order; a driver that fails is reported, not fatal.
pub(super) fn start_radios(
    radios: Vec<RadioPart>,
    requests: &mpsc::SyncSender<Request>,
) -> Vec<(RadioPart, RadioStatus)> {
    let mut started = Vec::new();
    for (index, mut part) in radios.into_iter().enumerate() {
        let info = part.slot.call(|r| r.info()).ok();
        start_radio(index, &mut part, requests);
        let status = RadioStatus {
            id: part.id.clone(),
            technology: info.as_ref().map(|i| i.technology.to_string()).unwrap_or_default(),
            mtu_bytes: info.map(|i| i.mtu_bytes).unwrap_or(0),
            frames_received: 0,
            skipped: BTreeMap::new(),
            link: Default::default(),
            plugin: part.slot.status().clone(),
        };
        started.push((part, status));
    }
    started
}

impl LoopState {
    /// Starts radio `index` again if its driver is not running threads: after the operator
    /// enabled a driver whose start had failed.
    pub(super) fn restart_radio(&mut self, index: usize) {
        let part = &mut self.radios[index].0;
        if !part.started {
            start_radio(index, part, &self.requests);
        }
    }

    /// Swaps in a new driver instance and starts it.
    pub(super) fn replace_radio(
        &mut self,
        index: usize,
        instance: nest_sdk::radio::RadioBox,
        name: &str,
        version: &str,
    ) {
        let part = &mut self.radios[index].0;
        if part.started && part.slot.is_running() {
            let _ = part.slot.call(|r| r.stop());
        }
        part.slot.replace(instance, name, version);
        start_radio(index, part, &self.requests);
    }

    /// The radios as the status shows them: driver state, skips and link counters now.
    pub(super) fn radio_statuses(&self) -> Vec<RadioStatus> {
        self.radios
            .iter()
            .enumerate()
            .map(|(index, (part, status))| {
                metrics::radio_running(&part.id, part.slot.is_running());
                RadioStatus {
                    plugin: part.slot.status().clone(),
                    skipped: part.skips.snapshot(),
                    link: self.devices.link_stats(index).unwrap_or_default(),
                    ..status.clone()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_are_counted_by_reason_and_odd_or_surplus_reasons_fall_under_other() {
        let counts = SkipCounts::default();
        assert_eq!(counts.record("duty_cycle", 3), "duty_cycle");
        assert_eq!(counts.record("duty_cycle", 2), "duty_cycle");
        assert_eq!(counts.record("Not A Code", 1), "other");
        assert_eq!(counts.record(&"x".repeat(SKIP_REASON_BYTES_MAX + 1), 1), "other");
        assert_eq!(counts.record("", 1), "other");
        for index in 0..2 * SKIP_REASONS_MAX {
            counts.record(&format!("reason_{index}"), 1);
        }
        let snapshot = counts.snapshot();
        assert_eq!(snapshot["duty_cycle"], 5);
        assert_eq!(snapshot.len(), SKIP_REASONS_MAX, "{snapshot:?}");
        assert_eq!(snapshot["other"], 3 + (2 * SKIP_REASONS_MAX as u64 - (SKIP_REASONS_MAX as u64 - 2)));
        assert_eq!(counts.record("duty_cycle", u64::MAX), "duty_cycle");
        assert_eq!(counts.snapshot()["duty_cycle"], u64::MAX, "saturates");
    }
}
