use super::*;
use crate::device_keys::DeviceKey;
use crate::ledger::test_chain::{CHAIN, TestChain};
use crate::ledger::tx::{SignedTx, TxBody, UnsignedTx};
use nest_sdk::Signature;
const OWNER: u8 = 1;
const OTHER: u8 = 2;
const GATEWAY: u8 = 3;

fn key(byte: u8) -> PublicKey {
    PublicKey([byte; 32])
}

fn uid(n: u8) -> Hash32 {
    Hash32([n; 32])
}

/// A chain with funded owner, other account and gateway; tracks nonces.
struct Chain(TestChain);

impl Chain {
    fn new() -> Chain {
        let funded = [(key(OWNER), 1_000_000), (key(OTHER), 1_000_000), (key(GATEWAY), 1_000_000)];
        Chain(TestChain::new(&funded, key(9)))
    }

    /// Executes one device transaction from `from` in its own block; the reason if refused.
    fn run(&mut self, from: u8, body: DeviceTx) -> Result<(), TxError> {
        self.0.run(key(from), TxBody::Device(body))
    }

    fn record(&self, device: Hash32) -> Option<DeviceRecord> {
        self.0.ledger.record(&device_key(&device)).map(|bytes| borsh::from_slice(bytes).unwrap())
    }

    fn register(&mut self, from: u8, device: Hash32) -> Result<(), TxError> {
        let public_key = DeviceKey::from_seed(&device.0).public_key().to_vec();
        self.run(from, DeviceTx::Register { device_uid: device, public_key, class: "thermometer".into() })
    }
}

fn entry(device: Hash32, first: u64, last: u64, count: u32) -> AnchorEntry {
    AnchorEntry { device_uid: device, first_counter: first, last_counter: last, count, root: Hash32([0xAA; 32]) }
}

fn device_error(result: Result<(), TxError>) -> DeviceError {
    match result {
        Err(TxError::Device(error)) => error,
        other => panic!("expected a device error, got {other:?}"),
    }
}

#[test]
fn register_stores_key_owner_class_and_height() {
    let mut chain = Chain::new();
    chain.register(OWNER, uid(1)).unwrap();
    let record = chain.record(uid(1)).unwrap();
    assert_eq!(record.owner, key(OWNER));
    assert_eq!(record.class, "thermometer");
    assert_eq!(record.public_key, DeviceKey::from_seed(&[1; 32]).public_key().to_vec());
    assert_eq!((record.revoked, record.last_counter, record.registered_height), (false, 0, 1));
    assert_eq!(device_error(chain.register(OTHER, uid(1))), DeviceError::AlreadyRegistered(uid(1)));
}

#[test]
fn register_refuses_bad_keys_and_classes_with_reasons() {
    let mut chain = Chain::new();
    let mut off_curve = DeviceKey::from_seed(b"k").public_key().to_vec();
    off_curve[64] ^= 1;
    let cases = [
        (vec![4u8; 10], "class", DeviceError::BadKey(PublicKeyError::Length(10))),
        (off_curve, "class", DeviceError::BadKey(PublicKeyError::NotOnCurve)),
    ];
    for (public_key, class, expected) in cases {
        let result = chain.run(OWNER, DeviceTx::Register { device_uid: uid(5), public_key, class: class.into() });
        assert_eq!(device_error(result), expected);
    }
    let good = DeviceKey::from_seed(b"k").public_key().to_vec();
    let long = "x".repeat(DEVICE_CLASS_BYTES_MAX + 1);
    let error =
        device_error(chain.run(OWNER, DeviceTx::Register { device_uid: uid(5), public_key: good, class: long }));
    assert_eq!(error.code(), "bad_device_class");
    assert!(chain.record(uid(5)).is_none(), "a refused registration leaves nothing");
}

#[test]
fn only_the_owner_transfers_and_revokes() {
    let mut chain = Chain::new();
    chain.register(OWNER, uid(1)).unwrap();
    let error = device_error(chain.run(OTHER, DeviceTx::Revoke { device_uid: uid(1) }));
    assert_eq!(error, DeviceError::NotOwner { device: uid(1), owner: key(OWNER) });
    assert!(error.to_string().contains("belongs to"), "{error}");
    chain.run(OWNER, DeviceTx::Transfer { device_uid: uid(1), new_owner: key(OTHER) }).unwrap();
    assert_eq!(chain.record(uid(1)).unwrap().owner, key(OTHER));
    let error = device_error(chain.run(OWNER, DeviceTx::Revoke { device_uid: uid(1) }));
    assert_eq!(error.code(), "not_device_owner");
    chain.run(OTHER, DeviceTx::Revoke { device_uid: uid(1) }).unwrap();
    assert!(chain.record(uid(1)).unwrap().revoked);
    let error = device_error(chain.run(OTHER, DeviceTx::Transfer { device_uid: uid(1), new_owner: key(OWNER) }));
    assert_eq!(error, DeviceError::Revoked(uid(1)));
    let error = device_error(chain.run(OWNER, DeviceTx::Revoke { device_uid: uid(7) }));
    assert_eq!(error, DeviceError::UnknownDevice(uid(7)));
}

#[test]
fn anchors_advance_the_counter_and_refuse_replays() {
    let mut chain = Chain::new();
    chain.register(OWNER, uid(1)).unwrap();
    chain.run(GATEWAY, DeviceTx::Anchor { entries: vec![entry(uid(1), 1, 5, 3)] }).unwrap();
    let record = chain.record(uid(1)).unwrap();
    assert_eq!((record.last_counter, record.readings_anchored, record.last_anchor_height), (5, 3, 2));
    let stored: AnchorRecord = borsh::from_slice(chain.0.ledger.record(&anchor_key(&uid(1), 5)).unwrap()).unwrap();
    assert_eq!((stored.first_counter, stored.count, stored.gateway, stored.time_ms), (1, 3, key(GATEWAY), 2_000));
    let replay = device_error(chain.run(GATEWAY, DeviceTx::Anchor { entries: vec![entry(uid(1), 5, 6, 2)] }));
    assert_eq!(replay, DeviceError::ReplayedCounter { device: uid(1), counter: 5, last_counter: 5 });
    assert_eq!(replay.code(), "replayed_counter");
    chain.run(GATEWAY, DeviceTx::Anchor { entries: vec![entry(uid(1), 6, 6, 1)] }).unwrap();
    assert_eq!(chain.record(uid(1)).unwrap().readings_anchored, 4);
}

#[test]
fn an_anchor_is_all_or_nothing() {
    let mut chain = Chain::new();
    chain.register(OWNER, uid(1)).unwrap();
    let entries = vec![entry(uid(1), 1, 1, 1), entry(uid(9), 1, 1, 1)];
    let error = device_error(chain.run(GATEWAY, DeviceTx::Anchor { entries }));
    assert_eq!(error, DeviceError::UnknownDevice(uid(9)));
    assert_eq!(chain.record(uid(1)).unwrap().last_counter, 0, "the first entry's write was dropped");
    // Two entries of one device in one anchor must advance in order too.
    let entries = vec![entry(uid(1), 1, 2, 2), entry(uid(1), 2, 3, 2)];
    assert_eq!(device_error(chain.run(GATEWAY, DeviceTx::Anchor { entries })).code(), "replayed_counter");
}

#[test]
fn malformed_anchors_are_refused_with_reasons() {
    let mut chain = Chain::new();
    chain.register(OWNER, uid(1)).unwrap();
    chain
        .run(
            OWNER,
            DeviceTx::Register {
                device_uid: uid(2),
                public_key: DeviceKey::from_seed(b"2").public_key().to_vec(),
                class: String::new(),
            },
        )
        .unwrap();
    chain.run(OWNER, DeviceTx::Revoke { device_uid: uid(2) }).unwrap();
    let cases = [
        (vec![], "bad_anchor_size"),
        (vec![entry(uid(1), 1, 1, 1); ANCHOR_ENTRIES_MAX + 1], "bad_anchor_size"),
        (vec![entry(uid(1), 0, 3, 1)], "bad_anchor"),
        (vec![entry(uid(1), 4, 3, 1)], "bad_anchor"),
        (vec![entry(uid(1), 1, 3, 4)], "bad_anchor"),
        (vec![entry(uid(1), 1, 3, 0)], "bad_anchor"),
        (vec![entry(uid(2), 1, 1, 1)], "device_revoked"),
    ];
    for (entries, code) in cases {
        assert_eq!(device_error(chain.run(GATEWAY, DeviceTx::Anchor { entries })).code(), code);
    }
}

#[test]
fn device_txs_encode_and_charge_gas_by_size() {
    let body = DeviceTx::Anchor { entries: vec![entry(uid(1), 1, 1, 1); 3] };
    assert_eq!(gas_of(&body), ANCHOR_BASE_GAS + 3 * ANCHOR_ENTRY_GAS);
    let tx = UnsignedTx { chain: CHAIN, from: key(1), nonce: 0, fee: 1, body: TxBody::Device(body) };
    let signed = SignedTx { tx, signature: Signature::default() };
    assert_eq!(SignedTx::decode(&signed.encode()).unwrap(), signed);
    let full = DeviceTx::Anchor { entries: vec![entry(uid(1), 1, 1, 1); ANCHOR_ENTRIES_MAX] };
    let tx = UnsignedTx { chain: CHAIN, from: key(1), nonce: 0, fee: 1, body: TxBody::Device(full) };
    let size = SignedTx { tx, signature: Signature::default() }.encode().len();
    assert!(size <= crate::ledger::tx::TX_BYTES_MAX, "a full anchor is {size} bytes");
}
