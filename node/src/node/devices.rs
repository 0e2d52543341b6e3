//! Run the device pipeline on the node loop: radio frames in, verdicts back from the
//! verification pool, anchor transactions out, and the device and radio queries.
//!
//! Devices live on the node's first chain: their records are read from its committed
//! ledger, and the node anchors readings there with transactions signed by its own key
//! (so the node account pays the fees). One anchor transaction is in the mempool at a
//! time: readings that arrive meanwhile wait for the next one, so anchors follow the
//! block rhythm without a timer of their own.

use super::{LoopState, QueryError, Request};
use crate::devices::pipeline::{Action, DevicePipeline, lookup};
use crate::devices::pool::{Verdict, VerifyPool};
use crate::ledger::device::{ANCHOR_PREFIX, AnchorRecord, DeviceRecord, DeviceTx, uid_of_device_key};
use crate::ledger::tx::{SignedTx, TxBody, UnsignedTx, gas_of};
use crate::store::readings::{READINGS_PER_QUERY_MAX, Readings};
use nest_sdk::{Hash32, RadioFrame};
use serde_json::{Value, json};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Least time between two anchor transactions.
const ANCHOR_INTERVAL_MIN_MS: u64 = 100;
/// While device frames stream in, the loop ticks and publishes its status this often.
const DEVICE_TRAFFIC_TICK_MS: u64 = 5;
/// Most devices `devices.list` returns.
const DEVICES_LISTED_MAX: usize = 10_000;
/// Readings and anchors `devices.show` includes.
const SHOW_RECENT: usize = 10;

/// A device or radio query or command.
#[derive(Debug)]
pub enum DeviceOp {
    /// Every registered device.
    List,
    /// One device: its record, recent anchors and this node's latest readings.
    Show {
        /// µID.
        uid: Hash32,
    },
    /// This node's readings of a device in a time range (device timestamps).
    Readings {
        /// µID.
        uid: Hash32,
        /// From, inclusive.
        from_ms: u64,
        /// To, inclusive.
        to_ms: u64,
        /// Most readings returned.
        limit: usize,
    },
    /// Sends a frame through a radio.
    Send {
        /// Radio id.
        radio: String,
        /// Link address of the receiver.
        link_address: String,
        /// Frame bytes.
        bytes: Vec<u8>,
    },
}

/// The device state the loop keeps.
pub struct DeviceState {
    pipeline: DevicePipeline,
    last_anchor_tx: Option<Hash32>,
    last_anchor_ms: u64,
    last_tick_ms: u64,
    /// A device request skipped the tick and status publication: one is owed soon.
    tick_owed: bool,
}

impl DeviceState {
    /// Opens the readings keyspace and starts the verification pool, whose verdicts come
    /// back as [`Request::DeviceVerdicts`].
    pub fn start(
        store: &crate::store::Store,
        radio_ids: Vec<String>,
        requests: &mpsc::SyncSender<Request>,
        events: crate::telemetry::events::EventBus,
    ) -> Result<DeviceState, crate::store::StoreError> {
        let readings = Readings::open(store)?;
        let sender = requests.clone();
        let workers = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        let pool = VerifyPool::start(workers, move |verdicts| sender.send(Request::DeviceVerdicts(verdicts)).is_ok());
        Ok(DeviceState {
            pipeline: DevicePipeline::new(radio_ids, pool, readings, events),
            last_anchor_tx: None,
            last_anchor_ms: 0,
            last_tick_ms: 0,
            tick_owed: false,
        })
    }

    /// Link counters of radio `index`.
    pub fn link_stats(&self, index: usize) -> Option<crate::devices::pipeline::LinkStats> {
        self.pipeline.link_stats(index)
    }

    /// Anchoring counters.
    pub fn anchor_stats(&self) -> crate::devices::pipeline::AnchorStats {
        self.pipeline.anchor_stats()
    }
}

impl LoopState {
    /// Whether the loop should tick and publish after a device request: at most every
    /// [`DEVICE_TRAFFIC_TICK_MS`] while frames stream in.
    pub(super) fn devices_publish_due(&mut self, now_ms: u64) -> bool {
        if now_ms < self.devices.last_tick_ms + DEVICE_TRAFFIC_TICK_MS {
            self.devices.tick_owed = true;
            return false;
        }
        true
    }

    /// When the loop must wake up at the latest: the owed tick, if a device request
    /// skipped one (so the status never lags device traffic by more than a tick).
    pub(super) fn devices_deadline_ms(&self) -> u64 {
        if self.devices.tick_owed { self.devices.last_tick_ms + DEVICE_TRAFFIC_TICK_MS } else { u64::MAX }
    }

    /// A radio delivered a frame.
    pub(super) fn on_frame(&mut self, radio: usize, frame: RadioFrame, now_ms: u64) {
        let ledger = self.chains.first().map(|chain| chain.ledger());
        self.devices.pipeline.frame(radio, frame, ledger, now_ms);
    }

    /// The pool verified a batch.
    pub(super) fn on_verdicts(&mut self, verdicts: Vec<Verdict>) {
        let ledger = self.chains.first().map(|chain| chain.ledger());
        let actions = self.devices.pipeline.verdicts(verdicts, ledger);
        for action in actions {
            match action {
                Action::Forward { radio, tx } => self.forward_device_tx(radio, &tx),
            }
        }
    }

    /// Submits a transaction a device carried; refused ones count as `bad_transaction`.
    fn forward_device_tx(&mut self, radio: usize, bytes: &[u8]) {
        let result = SignedTx::decode(bytes).map_err(|e| e.to_string()).and_then(|tx| {
            if !tx.verify_signature() {
                return Err("bad signature".to_string());
            }
            self.submit_own(tx)
        });
        if let Err(reason) = result {
            tracing::debug!(%reason, "device transaction refused");
            let reason = crate::devices::pipeline::Rejection::BadTransaction;
            self.devices.pipeline.reject(radio, "", reason, None, None);
        }
    }

    /// Admits a signed transaction to the devices' chain and gossips it.
    fn submit_own(&mut self, tx: SignedTx) -> Result<Hash32, String> {
        let Some(chain) = self.chains.first_mut() else { return Err("the node has no chain".into()) };
        let hash = tx.hash();
        let chain_id = chain.id().to_string();
        chain.admit(vec![(hash, tx.clone())]).remove(0).map_err(|e| e.to_string())?;
        self.gossip_txs(&chain_id, vec![tx]);
        Ok(hash)
    }

    /// Expires fragment sequences and anchors waiting readings when the last anchor left
    /// the mempool.
    pub(super) fn devices_tick(&mut self, now_ms: u64) {
        self.devices.last_tick_ms = now_ms;
        self.devices.tick_owed = false;
        self.devices.pipeline.tick(now_ms);
        if !self.devices.pipeline.has_waiting() || now_ms < self.devices.last_anchor_ms + ANCHOR_INTERVAL_MIN_MS {
            return;
        }
        let Some(chain) = self.chains.first() else { return };
        if self.devices.last_anchor_tx.is_some_and(|hash| chain.is_pending(&hash)) {
            return;
        }
        let Some(anchor) = self.devices.pipeline.take_anchor(chain.ledger()) else { return };
        let status = chain.status();
        let key = self.key.clone();
        let body = TxBody::Device(DeviceTx::Anchor { entries: anchor.entries.clone() });
        let fee = gas_of(&body).saturating_mul(status.gas_price);
        let nonce = chain.pending_nonce(&key.public_key());
        let tx = UnsignedTx { chain: status.genesis_hash, from: key.public_key(), nonce, fee, body }.sign(&key);
        let result = self.submit_own(tx);
        self.devices.last_anchor_tx = result.as_ref().ok().copied();
        self.devices.last_anchor_ms = now_ms;
        self.devices.pipeline.anchored(anchor, result);
    }

    /// Answers a device or radio operation.
    pub(super) fn device_op(&mut self, op: DeviceOp, reply: oneshot::Sender<Result<Value, QueryError>>) {
        let answer = match op {
            DeviceOp::List => self.list_devices(),
            DeviceOp::Show { uid } => self.show_device(&uid),
            DeviceOp::Readings { uid, from_ms, to_ms, limit } => {
                let limit = limit.min(READINGS_PER_QUERY_MAX);
                self.devices
                    .pipeline
                    .readings()
                    .range(&uid.0, from_ms, to_ms, limit)
                    .map(|readings| json!(readings.iter().map(reading_view).collect::<Vec<_>>()))
                    .map_err(|e| QueryError::Failed(e.to_string()))
            }
            DeviceOp::Send { radio, link_address, bytes } => self.radio_send(&radio, &link_address, &bytes),
        };
        let _ = reply.send(answer);
    }

    fn devices_ledger(&self) -> Result<&crate::ledger::Ledger, QueryError> {
        self.chains
            .first()
            .map(|chain| chain.ledger())
            .ok_or_else(|| QueryError::NotFound("the node has no chain".into()))
    }

    fn list_devices(&self) -> Result<Value, QueryError> {
        let ledger = self.devices_ledger()?;
        let devices: Vec<Value> = ledger
            .records_with_prefix(crate::ledger::device::DEVICE_PREFIX)
            .filter_map(|(key, value)| {
                let uid = uid_of_device_key(key)?;
                let record: DeviceRecord = borsh::from_slice(value).ok()?;
                Some(device_view(&uid, &record))
            })
            .take(DEVICES_LISTED_MAX)
            .collect();
        Ok(json!(devices))
    }

    fn show_device(&self, uid: &Hash32) -> Result<Value, QueryError> {
        let ledger = self.devices_ledger()?;
        let bytes = ledger
            .record(&crate::ledger::device::device_key(uid))
            .ok_or_else(|| QueryError::NotFound(format!("no device {uid} on chain")))?;
        let record: DeviceRecord =
            borsh::from_slice(bytes).map_err(|e| QueryError::Failed(format!("device record {uid}: {e}")))?;
        let prefix = [ANCHOR_PREFIX, &uid.0].concat();
        let anchors: Vec<AnchorRecord> =
            ledger.records_with_prefix(&prefix).filter_map(|(_, value)| borsh::from_slice(value).ok()).collect();
        let recent_anchors: Vec<&AnchorRecord> = anchors.iter().rev().take(SHOW_RECENT).collect();
        let readings = self
            .devices
            .pipeline
            .readings()
            .latest(&uid.0, SHOW_RECENT)
            .map_err(|e| QueryError::Failed(e.to_string()))?;
        let mut view = device_view(uid, &record);
        view["anchors"] = json!(recent_anchors);
        view["readings"] = json!(readings.iter().map(reading_view).collect::<Vec<_>>());
        view["usable"] = json!(lookup(ledger, &uid.0).is_ok());
        Ok(view)
    }

    fn radio_send(&mut self, radio: &str, link_address: &str, bytes: &[u8]) -> Result<Value, QueryError> {
        let index = self
            .radios
            .iter()
            .position(|(part, _)| part.id == radio)
            .ok_or_else(|| QueryError::NotFound(format!("no radio \"{radio}\" on this node")))?;
        let part = &mut self.radios[index].0;
        part.slot
            .call(|r| r.send(link_address.into(), bytes.into()))
            .map_err(|e| QueryError::Failed(format!("radio \"{radio}\": {e}")))?;
        self.devices.pipeline.sent(index);
        Ok(json!({ "radio": radio, "link_address": link_address, "bytes": bytes.len() }))
    }
}

/// A device as the API shows it.
fn device_view(uid: &Hash32, record: &DeviceRecord) -> Value {
    let mut view = serde_json::to_value(record).unwrap_or_default();
    view["uid"] = json!(uid);
    view
}

/// A reading as the API shows it: the payload as text when it is UTF-8.
fn reading_view(reading: &crate::store::readings::StoredReading) -> Value {
    let payload = nest_sdk::device::DeviceEnvelope::decode(&reading.envelope).map(|e| e.payload).unwrap_or_default();
    json!({
        "device": Hash32(reading.device_uid),
        "counter": reading.counter,
        "timestamp_ms": reading.timestamp_ms,
        "received_ms": reading.received_ms,
        "radio": reading.radio,
        "link_address": reading.link_address,
        "reading_hash": reading.reading_hash,
        "payload_hex": hex::encode(&payload),
        "payload_text": String::from_utf8(payload).ok(),
        "envelope_hex": hex::encode(&reading.envelope),
        "anchor": reading.anchor,
    })
}
