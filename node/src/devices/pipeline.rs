//! Take radio frames from arrival to accepted reading: reassemble, decode, look the
//! device up on chain, verify (on the pool), check the counter, store, batch for anchoring.
//!
//! The pipeline lives on the node loop's thread and never blocks it: signatures are
//! checked by [`super::pool::VerifyPool`] and come back as verdicts. Everything it keeps
//! is bounded: partial fragments by the reassembler's limits, the anchor batch by
//! [`ANCHOR_BATCH_READINGS_MAX`], the verify queue by the pool. Every frame ends
//! accepted or rejected with one [`Rejection`] reason, counted per radio.

use super::pool::{VerifyJob, VerifyPool};
use crate::crypto::sha256;
use crate::ledger::device::{ANCHOR_ENTRIES_MAX, AnchorEntry, DeviceRecord, device_key};
use crate::ledger::{Ledger, merkle::merkle_root};
use crate::store::readings::{AnchorRef, Readings, StoredReading};
use crate::telemetry::events::{Event, EventBus};
use nest_sdk::{
    Hash32, RadioFrame,
    device::{DeviceEnvelope, ENVELOPE_BYTES_MAX, EnvelopeError, KIND_MARKET_OFFER, KIND_READING, KIND_TRANSACTION},
    fragment::{FRAGMENT_HEADER_BYTES, FragmentReject, Reassembler, Reassembly, ReassemblyLimits},
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Largest frame a radio may deliver: a whole envelope plus a fragment header.
pub const FRAME_BYTES_MAX: usize = ENVELOPE_BYTES_MAX + FRAGMENT_HEADER_BYTES;
/// Readings waiting to be anchored; beyond it new readings are stored but not anchored.
pub const ANCHOR_BATCH_READINGS_MAX: usize = 100_000;
/// Partial messages kept per radio.
const PARTIAL_MESSAGES_MAX: usize = 256;
/// Bytes of partial messages kept per radio.
const PARTIAL_BYTES_MAX: usize = 512 * 1024;
/// A fragment sequence not completed within this is dropped (and counted truncated).
pub const REASSEMBLY_TIMEOUT_MS: u64 = 5_000;

/// Why a frame was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// The P-256 signature does not verify against the registered key.
    BadSignature,
    /// No device with this µID is registered on chain.
    UnknownDevice,
    /// The device is revoked.
    Revoked,
    /// The counter is not above the device's last accepted one.
    ReplayedCounter,
    /// The frame or its payload is over the limits.
    Oversized,
    /// A fragment sequence never completed, or a fragment was cut short.
    TruncatedFragments,
    /// Bytes that are neither an envelope nor a fragment.
    Garbage,
    /// A kind this node does not handle (market offers without a market).
    UnsupportedKind,
    /// A transaction payload that does not decode, verify or enter the mempool.
    BadTransaction,
    /// The verification queue is full.
    VerifyBusy,
    /// The node has no chain to look devices up in.
    NoChain,
}

impl Rejection {
    /// Every reason, for metrics that exist at zero from the start.
    pub const ALL: [Rejection; 11] = [
        Rejection::BadSignature,
        Rejection::UnknownDevice,
        Rejection::Revoked,
        Rejection::ReplayedCounter,
        Rejection::Oversized,
        Rejection::TruncatedFragments,
        Rejection::Garbage,
        Rejection::UnsupportedKind,
        Rejection::BadTransaction,
        Rejection::VerifyBusy,
        Rejection::NoChain,
    ];

    /// The snake_case code used in stats, events and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Rejection::BadSignature => "bad_signature",
            Rejection::UnknownDevice => "unknown_device",
            Rejection::Revoked => "revoked",
            Rejection::ReplayedCounter => "replayed_counter",
            Rejection::Oversized => "oversized",
            Rejection::TruncatedFragments => "truncated_fragments",
            Rejection::Garbage => "garbage",
            Rejection::UnsupportedKind => "unsupported_kind",
            Rejection::BadTransaction => "bad_transaction",
            Rejection::VerifyBusy => "verify_busy",
            Rejection::NoChain => "no_chain",
        }
    }
}

/// Counters of one radio's link, as the status shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStats {
    /// Frames the driver delivered (fragments count one each).
    pub frames_in: u64,
    /// Frames the node sent through the driver.
    pub frames_out: u64,
    /// Whole envelopes that passed every check.
    pub accepted: u64,
    /// Frames refused, all reasons.
    pub rejected: u64,
    /// Frames refused, by reason code.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Fragment sequences waiting for their missing pieces.
    pub partial_messages: usize,
    /// Signal strength of the last frame that reported one.
    pub rssi_last_dbm: Option<i32>,
    /// Mean signal strength of the frames that reported one.
    pub rssi_avg_dbm: Option<i32>,
    /// Frames that reported a signal strength.
    pub rssi_samples: u64,
    /// Sum of those strengths (for the mean).
    #[serde(skip)]
    rssi_sum_dbm: i64,
}

impl LinkStats {
    fn reject(&mut self, reason: Rejection) {
        self.rejected += 1;
        *self.rejected_by_reason.entry(reason.code().to_string()).or_default() += 1;
    }

    fn rssi(&mut self, rssi_dbm: i32) {
        self.rssi_last_dbm = Some(rssi_dbm);
        self.rssi_samples += 1;
        self.rssi_sum_dbm += i64::from(rssi_dbm);
        let samples = i64::try_from(self.rssi_samples).unwrap_or(i64::MAX);
        self.rssi_avg_dbm = i32::try_from(self.rssi_sum_dbm / samples).ok();
    }
}

/// Anchoring counters, as the status shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorStats {
    /// Readings waiting for the next anchor.
    pub readings_waiting: usize,
    /// Anchor transactions submitted.
    pub txs_submitted: u64,
    /// Readings whose hashes were submitted in anchors.
    pub readings_submitted: u64,
    /// Readings stored but never anchored (batch full, or their anchor was refused).
    pub readings_unanchored: u64,
    /// Why the last anchor was refused, if it was.
    pub last_error: Option<String>,
}

/// One radio's link state.
struct Link {
    id: String,
    stats: LinkStats,
    reassembler: Reassembler,
    /// Partial messages dropped so far (timed out or evicted), to count new ones.
    dropped_partials: u64,
}

/// A reading waiting for its anchor.
struct Waiting {
    counter: u64,
    reading_hash: Hash32,
    reading: StoredReading,
}

/// What the pipeline asks of the node after a verdict.
pub enum Action {
    /// Submit this device-carried transaction (bytes of a `SignedTx`).
    Forward {
        /// The radio it came through.
        radio: usize,
        /// The transaction bytes.
        tx: Vec<u8>,
    },
}

/// The bounds of each radio link's reassembler (public for the fuzz target `reassembler`).
pub fn reassembly_limits() -> ReassemblyLimits {
    ReassemblyLimits {
        partial_messages_max: PARTIAL_MESSAGES_MAX,
        partial_bytes_max: PARTIAL_BYTES_MAX,
        timeout_ms: REASSEMBLY_TIMEOUT_MS,
        ..ReassemblyLimits::default()
    }
}

/// The node's device pipeline.
pub struct DevicePipeline {
    links: Vec<Link>,
    /// Highest counter accepted per device (the node's replay floor).
    highest: HashMap<[u8; 32], u64>,
    pool: VerifyPool,
    readings: Readings,
    waiting: BTreeMap<[u8; 32], Vec<Waiting>>,
    waiting_count: usize,
    anchors: AnchorStats,
    events: EventBus,
    /// Sequence number of the next job offered to the pool.
    next_seq: u64,
    /// Sequence number of the next verdict to take.
    next_verdict: u64,
    /// Verdicts that came back ahead of an earlier one (workers finish out of order).
    early: BTreeMap<u64, (VerifyJob, bool)>,
}

/// A frame's first checks passed: to be verified.
enum Checked {
    Verify(Box<VerifyJob>),
    Rejected(Rejection, Option<[u8; 32]>),
    Pending,
}

impl DevicePipeline {
    /// A pipeline for radios `radio_ids` (in the node's order).
    pub fn new(radio_ids: Vec<String>, pool: VerifyPool, readings: Readings, events: EventBus) -> DevicePipeline {
        let limits = reassembly_limits();
        let links = radio_ids
            .into_iter()
            .map(|id| Link {
                id,
                stats: LinkStats::default(),
                reassembler: Reassembler::new(limits),
                dropped_partials: 0,
            })
            .collect();
        let highest = readings.highest_counters().unwrap_or_else(|error| {
            tracing::error!(%error, "cannot read the stored readings' counters");
            HashMap::new()
        });
        DevicePipeline {
            links,
            highest,
            pool,
            readings,
            waiting: BTreeMap::new(),
            waiting_count: 0,
            anchors: AnchorStats::default(),
            events,
            next_seq: 0,
            next_verdict: 0,
            early: BTreeMap::new(),
        }
    }

    /// The stored readings.
    pub fn readings(&self) -> &Readings {
        &self.readings
    }

    /// Link counters of radio `index`.
    pub fn link_stats(&self, index: usize) -> Option<LinkStats> {
        self.links
            .get(index)
            .map(|link| LinkStats { partial_messages: link.reassembler.partial_messages(), ..link.stats.clone() })
    }

    /// Anchoring counters.
    pub fn anchor_stats(&self) -> AnchorStats {
        AnchorStats { readings_waiting: self.waiting_count, ..self.anchors.clone() }
    }

    /// Counts a frame the node sent through radio `index`.
    pub fn sent(&mut self, index: usize) {
        if let Some(link) = self.links.get_mut(index) {
            link.stats.frames_out += 1;
        }
    }

    /// Takes one frame from radio `index`; `ledger` is the committed state of the
    /// devices' chain (None when the node has no chain).
    pub fn frame(&mut self, index: usize, frame: RadioFrame, ledger: Option<&Ledger>, now_ms: u64) {
        let Some(link) = self.links.get_mut(index) else { return };
        link.stats.frames_in += 1;
        if let nest_sdk::ROption::RSome(rssi) = frame.rssi_dbm {
            link.stats.rssi(rssi);
        }
        let link_address = frame.link_address.to_string();
        let checked = self.check(index, &link_address, frame.payload.as_slice(), ledger, now_ms);
        self.count_dropped_partials(index);
        match checked {
            Checked::Pending => {}
            Checked::Rejected(reason, uid) => self.reject(index, &link_address, reason, uid, None),
            Checked::Verify(mut job) => {
                job.seq = self.next_seq;
                match self.pool.offer(job) {
                    Ok(()) => self.next_seq += 1,
                    Err(job) => {
                        let (uid, counter) = (job.envelope.device_uid, job.envelope.counter);
                        self.reject(index, &link_address, Rejection::VerifyBusy, Some(uid), Some(counter));
                    }
                }
            }
        }
    }

    /// Drops fragment sequences that timed out; counts them as truncated.
    pub fn tick(&mut self, now_ms: u64) {
        for index in 0..self.links.len() {
            self.links[index].reassembler.expire(now_ms);
            self.count_dropped_partials(index);
        }
    }

    fn count_dropped_partials(&mut self, index: usize) {
        let Some(link) = self.links.get_mut(index) else { return };
        let stats = link.reassembler.stats();
        let dropped = stats.timed_out + stats.evicted + stats.inconsistent;
        for _ in link.dropped_partials..dropped {
            link.stats.reject(Rejection::TruncatedFragments);
            crate::telemetry::metrics::device_frame_rejected(&link.id, Rejection::TruncatedFragments.code());
            let frame = FrameEvent { radio: &link.id, link_address: "", device: None, counter: None };
            frame.publish(&self.events, Some(Rejection::TruncatedFragments));
        }
        link.dropped_partials = dropped;
    }

    /// Reassembles, decodes and looks up the device: the cheap checks, on the loop.
    fn check(
        &mut self,
        index: usize,
        link_address: &str,
        bytes: &[u8],
        ledger: Option<&Ledger>,
        now_ms: u64,
    ) -> Checked {
        if bytes.len() > FRAME_BYTES_MAX {
            return Checked::Rejected(Rejection::Oversized, None);
        }
        let whole = match self.links[index].reassembler.push(link_address, bytes, now_ms) {
            Reassembly::Complete(whole) => whole,
            Reassembly::Pending => return Checked::Pending,
            Reassembly::Rejected(FragmentReject::Truncated { .. }) => {
                return Checked::Rejected(Rejection::TruncatedFragments, None);
            }
            Reassembly::Rejected(FragmentReject::TooLarge { .. } | FragmentReject::TooManyFragments { .. }) => {
                return Checked::Rejected(Rejection::Oversized, None);
            }
            Reassembly::Rejected(_) => return Checked::Rejected(Rejection::Garbage, None),
        };
        if whole.len() > ENVELOPE_BYTES_MAX {
            return Checked::Rejected(Rejection::Oversized, None);
        }
        let envelope = match DeviceEnvelope::decode(&whole) {
            Ok(envelope) => envelope,
            Err(EnvelopeError::PayloadTooLarge { .. }) => return Checked::Rejected(Rejection::Oversized, None),
            Err(_) => return Checked::Rejected(Rejection::Garbage, None),
        };
        let uid = envelope.device_uid;
        let Some(ledger) = ledger else { return Checked::Rejected(Rejection::NoChain, Some(uid)) };
        let record = match lookup(ledger, &uid) {
            Ok(record) => record,
            Err(reason) => return Checked::Rejected(reason, Some(uid)),
        };
        if envelope.counter <= self.floor(&uid, &record) {
            return Checked::Rejected(Rejection::ReplayedCounter, Some(uid));
        }
        Checked::Verify(Box::new(VerifyJob {
            seq: 0,
            radio: index,
            link_address: link_address.to_string(),
            envelope,
            bytes: whole,
            public_key: record.public_key,
            received_ms: now_ms,
        }))
    }

    /// The counter a new frame of the device must exceed: what this node accepted and
    /// what the chain anchored.
    fn floor(&self, uid: &[u8; 32], record: &DeviceRecord) -> u64 {
        self.highest.get(uid).copied().unwrap_or(0).max(record.last_counter)
    }

    /// Takes the pool's verdicts in the order the frames arrived (a verdict that
    /// overtook an earlier one waits for it): accepted readings are stored and batched
    /// for anchoring. So a device's counters are judged in arrival order, however the
    /// workers interleave.
    pub fn verdicts(&mut self, verdicts: Vec<(VerifyJob, bool)>, ledger: Option<&Ledger>) -> Vec<Action> {
        self.early.extend(verdicts.into_iter().map(|(job, ok)| (job.seq, (job, ok))));
        let mut in_order = Vec::new();
        while let Some(verdict) = self.early.remove(&self.next_verdict) {
            in_order.push(verdict);
            self.next_verdict += 1;
        }
        let mut actions = Vec::new();
        for (job, ok) in in_order {
            let uid = job.envelope.device_uid;
            let counter = job.envelope.counter;
            let outcome = if !ok {
                Err(Rejection::BadSignature)
            } else {
                // Frames of one device can pass each other on the pool: check again.
                let live = ledger.ok_or(Rejection::NoChain).and_then(|l| lookup(l, &uid));
                live.and_then(|record| {
                    if counter <= self.floor(&uid, &record) { Err(Rejection::ReplayedCounter) } else { Ok(()) }
                })
            };
            match outcome.and_then(|()| self.accept(&job, &mut actions)) {
                Ok(()) => {
                    self.highest.insert(uid, counter);
                    let link = &mut self.links[job.radio];
                    link.stats.accepted += 1;
                    crate::telemetry::metrics::device_frame_accepted(&link.id);
                    let frame = FrameEvent {
                        radio: &link.id,
                        link_address: &job.link_address,
                        device: Some(uid),
                        counter: Some(counter),
                    };
                    frame.publish(&self.events, None);
                }
                Err(reason) => self.reject(job.radio, &job.link_address, reason, Some(uid), Some(counter)),
            }
        }
        actions
    }

    /// Handles an accepted envelope by kind.
    fn accept(&mut self, job: &VerifyJob, actions: &mut Vec<Action>) -> Result<(), Rejection> {
        match job.envelope.kind {
            KIND_READING => {
                self.store_reading(job);
                Ok(())
            }
            KIND_TRANSACTION => {
                actions.push(Action::Forward { radio: job.radio, tx: job.envelope.payload.clone() });
                Ok(())
            }
            KIND_MARKET_OFFER => Err(Rejection::UnsupportedKind),
            _ => Err(Rejection::Garbage),
        }
    }

    fn store_reading(&mut self, job: &VerifyJob) {
        let envelope = &job.envelope;
        let reading_hash = sha256(&job.bytes);
        let reading = StoredReading {
            device_uid: envelope.device_uid,
            counter: envelope.counter,
            timestamp_ms: envelope.timestamp_ms,
            received_ms: job.received_ms,
            radio: self.links[job.radio].id.clone(),
            link_address: job.link_address.clone(),
            reading_hash,
            envelope: job.bytes.clone(),
            anchor: None,
        };
        if let Err(error) = self.readings.put(&reading) {
            tracing::error!(%error, "cannot store a device reading");
        }
        if self.waiting_count >= ANCHOR_BATCH_READINGS_MAX {
            self.anchors.readings_unanchored += 1;
            return;
        }
        self.waiting_count += 1;
        let waiting = Waiting { counter: envelope.counter, reading_hash, reading };
        self.waiting.entry(envelope.device_uid).or_default().push(waiting);
    }

    /// Counts a rejection and tells the event stream.
    pub fn reject(
        &mut self,
        index: usize,
        link_address: &str,
        reason: Rejection,
        device: Option<[u8; 32]>,
        counter: Option<u64>,
    ) {
        let Some(link) = self.links.get_mut(index) else { return };
        link.stats.reject(reason);
        crate::telemetry::metrics::device_frame_rejected(&link.id, reason.code());
        tracing::debug!(radio = %link.id, from = link_address, reason = reason.code(), "device frame rejected");
        let frame = FrameEvent { radio: &link.id, link_address, device, counter };
        frame.publish(&self.events, Some(reason));
    }

    /// Whether readings wait for an anchor.
    pub fn has_waiting(&self) -> bool {
        self.waiting_count > 0
    }

    /// Takes up to [`ANCHOR_ENTRIES_MAX`] devices' waiting readings as anchor entries,
    /// dropping readings the chain anchored meanwhile. The readings are made durable
    /// first: their data is on disk before their hash is on chain.
    pub fn take_anchor(&mut self, ledger: &Ledger) -> Option<PreparedAnchor> {
        if let Err(error) = self.readings.sync() {
            tracing::error!(%error, "cannot sync device readings; anchoring later");
            return None;
        }
        let devices: Vec<[u8; 32]> = self.waiting.keys().take(ANCHOR_ENTRIES_MAX).copied().collect();
        let mut anchor = PreparedAnchor { entries: Vec::new(), readings: Vec::new() };
        for uid in devices {
            let mut batch = self.waiting.remove(&uid).unwrap_or_default();
            self.waiting_count -= batch.len();
            let floor = lookup(ledger, &uid).map(|record| record.last_counter).unwrap_or(u64::MAX);
            let before = batch.len();
            batch.retain(|w| w.counter > floor);
            self.anchors.readings_unanchored += (before - batch.len()) as u64;
            batch.sort_by_key(|w| w.counter);
            let (Some(first), Some(last)) = (batch.first(), batch.last()) else { continue };
            let hashes: Vec<Hash32> = batch.iter().map(|w| w.reading_hash).collect();
            let root = merkle_root(&hashes);
            let entry = AnchorEntry {
                device_uid: Hash32(uid),
                first_counter: first.counter,
                last_counter: last.counter,
                count: u32::try_from(batch.len()).unwrap_or(u32::MAX),
                root,
            };
            anchor.entries.push(entry);
            anchor.readings.extend(batch.into_iter().enumerate().map(|(index, w)| (root, index, w.reading)));
        }
        if anchor.entries.is_empty() { None } else { Some(anchor) }
    }

    /// Records that `anchor` went out in transaction `tx` (or why it was refused).
    pub fn anchored(&mut self, anchor: PreparedAnchor, tx: Result<Hash32, String>) {
        match tx {
            Ok(tx) => {
                self.anchors.txs_submitted += 1;
                self.anchors.readings_submitted += anchor.readings.len() as u64;
                self.anchors.last_error = None;
                for (root, index, mut reading) in anchor.readings {
                    reading.anchor = Some(AnchorRef { tx, root, index: u32::try_from(index).unwrap_or(u32::MAX) });
                    if let Err(error) = self.readings.put(&reading) {
                        tracing::error!(%error, "cannot record a reading's anchor");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, readings = anchor.readings.len(), "anchor transaction refused; readings stay unanchored");
                self.anchors.readings_unanchored += anchor.readings.len() as u64;
                self.anchors.last_error = Some(error);
            }
        }
    }
}

/// What a `device_frame` event says about a frame.
struct FrameEvent<'a> {
    radio: &'a str,
    link_address: &'a str,
    device: Option<[u8; 32]>,
    counter: Option<u64>,
}

impl FrameEvent<'_> {
    /// Publishes the frame's fate; builds nothing when nobody listens.
    fn publish(self, events: &EventBus, rejection: Option<Rejection>) {
        if !events.has_subscribers() {
            return;
        }
        events.publish(Event::DeviceFrame {
            radio: self.radio.to_string(),
            link_address: self.link_address.to_string(),
            device: self.device.map(Hash32),
            counter: self.counter,
            status: if rejection.is_some() { "rejected" } else { "accepted" }.into(),
            reason: rejection.map(|r| r.code().into()),
        });
    }
}

/// Anchor entries ready to be signed, and the readings they cover (root, index, reading).
pub struct PreparedAnchor {
    /// One entry per device.
    pub entries: Vec<AnchorEntry>,
    /// The readings, with their root and position under it.
    pub readings: Vec<(Hash32, usize, StoredReading)>,
}

/// The device's record on chain, if it may send frames.
pub fn lookup(ledger: &Ledger, uid: &[u8; 32]) -> Result<DeviceRecord, Rejection> {
    let bytes = ledger.record(&device_key(&Hash32(*uid))).ok_or(Rejection::UnknownDevice)?;
    let record: DeviceRecord = borsh::from_slice(bytes).map_err(|_| Rejection::UnknownDevice)?;
    if record.revoked {
        return Err(Rejection::Revoked);
    }
    Ok(record)
}

#[cfg(test)]
mod tests;
