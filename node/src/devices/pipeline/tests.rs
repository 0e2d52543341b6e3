use super::*;
use crate::devices::{FrameSpec, keys::DeviceKey, signed_envelope};
use crate::store::Store;
use nest_sdk::{PublicKey, ROption, device::device_uid};

const HARDWARE_ID: &[u8] = b"unit-device";

fn record(key: &DeviceKey, last_counter: u64, revoked: bool) -> DeviceRecord {
    DeviceRecord {
        public_key: key.public_key().to_vec(),
        owner: PublicKey([1; 32]),
        class: "test".into(),
        revoked,
        registered_height: 1,
        last_counter,
        readings_anchored: 0,
        last_anchor_height: 0,
    }
}

fn ledger_with(record: &DeviceRecord) -> Ledger {
    let key = device_key(&Hash32(device_uid(HARDWARE_ID)));
    Ledger::from_state([], [(key, borsh::to_vec(record).unwrap())])
}

/// A pipeline whose pool's verdicts are dropped: the tests hand verdicts in themselves.
fn pipeline(dir: &std::path::Path) -> (DevicePipeline, Store) {
    let store = Store::open(dir).unwrap();
    let readings = Readings::open(&store).unwrap();
    let pool = VerifyPool::start(1, |_| true);
    (DevicePipeline::new(vec!["radio".into()], pool, readings, EventBus::new()), store)
}

fn job(key: &DeviceKey, seq: u64, counter: u64) -> VerifyJob {
    let spec = FrameSpec { hardware_id: HARDWARE_ID, counter, timestamp_ms: counter, kind: 0, payload: vec![7] };
    let envelope = signed_envelope(key, &spec).unwrap();
    VerifyJob {
        seq,
        radio: 0,
        link_address: "dev".into(),
        bytes: envelope.encode(),
        envelope,
        public_key: key.public_key().to_vec(),
        received_ms: 0,
    }
}

#[test]
fn verdicts_are_taken_in_arrival_order_whatever_order_the_workers_finish_in() {
    let dir = tempfile::tempdir().unwrap();
    let (mut pipeline, _store) = pipeline(dir.path());
    let key = DeviceKey::from_seed(b"k");
    let ledger = ledger_with(&record(&key, 0, false));
    // Frame 1 (counter 2) comes back before frame 0 (counter 1): it waits for it.
    pipeline.verdicts(vec![(job(&key, 1, 2), true)], Some(&ledger));
    assert_eq!(pipeline.link_stats(0).unwrap().accepted, 0);
    pipeline.verdicts(vec![(job(&key, 0, 1), true)], Some(&ledger));
    let stats = pipeline.link_stats(0).unwrap();
    assert_eq!((stats.accepted, stats.rejected), (2, 0));
    // A later frame repeating counter 2 is a replay; a bad signature is counted as such.
    pipeline.verdicts(vec![(job(&key, 2, 2), true), (job(&key, 3, 3), false)], Some(&ledger));
    let stats = pipeline.link_stats(0).unwrap();
    assert_eq!(stats.rejected_by_reason.get("replayed_counter"), Some(&1));
    assert_eq!(stats.rejected_by_reason.get("bad_signature"), Some(&1));
    let anchor = pipeline.take_anchor(&ledger).unwrap();
    assert_eq!(anchor.entries.len(), 1);
    let entry = &anchor.entries[0];
    assert_eq!((entry.first_counter, entry.last_counter, entry.count), (1, 2, 2));
    let hashes: Vec<Hash32> = anchor.readings.iter().map(|(_, _, r)| r.reading_hash).collect();
    assert_eq!(entry.root, merkle_root(&hashes));
}

#[test]
fn frames_are_refused_by_reason_before_verification() {
    let dir = tempfile::tempdir().unwrap();
    let (mut pipeline, _store) = pipeline(dir.path());
    let key = DeviceKey::from_seed(b"k");
    let frame = |bytes: Vec<u8>| RadioFrame {
        link_address: "dev".into(),
        payload: bytes.into(),
        rssi_dbm: ROption::RSome(-90),
    };
    let reading = job(&key, 0, 5).bytes;
    let cases: [(Ledger, Vec<u8>, &str); 5] = [
        (ledger_with(&record(&key, 0, true)), reading.clone(), "revoked"),
        (ledger_with(&record(&key, 5, false)), reading.clone(), "replayed_counter"),
        (Ledger::from_state([], []), reading.clone(), "unknown_device"),
        (ledger_with(&record(&key, 0, false)), vec![1; FRAME_BYTES_MAX + 1], "oversized"),
        (ledger_with(&record(&key, 0, false)), vec![9, 9, 9], "garbage"),
    ];
    for (ledger, bytes, reason) in cases {
        let before = pipeline.link_stats(0).unwrap().rejected_by_reason.get(reason).copied().unwrap_or(0);
        pipeline.frame(0, frame(bytes), Some(&ledger), 0);
        let after = pipeline.link_stats(0).unwrap().rejected_by_reason.get(reason).copied().unwrap_or(0);
        assert_eq!(after, before + 1, "{reason}");
    }
    let stats = pipeline.link_stats(0).unwrap();
    assert_eq!((stats.frames_in, stats.rssi_last_dbm, stats.rssi_avg_dbm), (5, Some(-90), Some(-90)));
}

#[test]
fn random_bytes_never_panic_and_partial_fragments_expire_as_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (mut pipeline, _store) = pipeline(dir.path());
    let key = DeviceKey::from_seed(b"k");
    let ledger = ledger_with(&record(&key, 0, false));
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    for round in 0..3_000usize {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut bytes: Vec<u8> = (0..round % 300).map(|i| (state >> (i % 56)) as u8).collect();
        if round % 3 == 0 && bytes.len() > 3 {
            bytes[..3].copy_from_slice(&[0xF7, 0x4E, 1]);
        }
        let frame = RadioFrame { link_address: "x".into(), payload: bytes.into(), rssi_dbm: ROption::RNone };
        pipeline.frame(0, frame, Some(&ledger), round as u64);
    }
    let fragments = crate::devices::link_frames(&job(&key, 0, 1).envelope, Some(40), 3).unwrap();
    let frame = RadioFrame { link_address: "y".into(), payload: fragments[0].clone().into(), rssi_dbm: ROption::RNone };
    let before = pipeline.link_stats(0).unwrap().rejected_by_reason.get("truncated_fragments").copied().unwrap_or(0);
    pipeline.frame(0, frame, Some(&ledger), 10_000);
    pipeline.tick(10_000 + REASSEMBLY_TIMEOUT_MS);
    let after = pipeline.link_stats(0).unwrap().rejected_by_reason.get("truncated_fragments").copied().unwrap_or(0);
    assert!(after > before, "the partial sequence is counted as truncated when it expires");
    assert_eq!(pipeline.link_stats(0).unwrap().partial_messages, 0);
}
