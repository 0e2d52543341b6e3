//! Device envelopes as radios deliver them (`nest_sdk::device::DeviceEnvelope`), and the
//! P-256 keys and signatures they are checked with.

use nest_ledger::device_keys::{self, DeviceKey};
use nest_sdk::device::DeviceEnvelope;

/// The device key signatures are checked against.
pub fn device_key() -> DeviceKey {
    DeviceKey::from_seed(b"nest-fuzz-device")
}

/// Decodes `data`; an envelope that decodes passes its own check, re-encodes to `data`
/// and is verified. `data` is also checked as a device public key.
pub fn run(data: &[u8]) {
    let _ = device_keys::check_public_key(data);
    let Ok(envelope) = DeviceEnvelope::decode(data) else { return };
    assert_eq!(envelope.check(), Ok(()), "a decoded envelope passes its check");
    assert_eq!(envelope.encode(), data, "a decoded envelope re-encodes to its bytes");
    let _ = device_keys::verify(&device_key().public_key(), &envelope.signing_message(), &envelope.signature);
}
