//! Build signed device frames as a device's firmware would: a P-256 key, a µID, envelopes.

use nest_sdk::device::{DeviceEnvelope, device_uid};
use ring::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};

/// A device with a fresh P-256 key.
pub struct TestDevice {
    /// Its hardware id.
    pub hardware_id: Vec<u8>,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl TestDevice {
    /// A device whose hardware id is `hardware_id`, with a new random key.
    pub fn new(hardware_id: &[u8]) -> TestDevice {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("generate P-256 key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("P-256 key");
        TestDevice { hardware_id: hardware_id.to_vec(), key, rng }
    }

    /// Its µID (SHA-256 of the hardware id).
    pub fn uid(&self) -> [u8; 32] {
        device_uid(&self.hardware_id)
    }

    /// Its 65-byte uncompressed SEC1 public key.
    pub fn public_key(&self) -> [u8; 65] {
        self.key.public_key().as_ref().try_into().expect("an uncompressed P-256 point is 65 bytes")
    }

    /// A signed envelope of `kind` with `counter`, `timestamp_ms` and `payload`.
    pub fn envelope(&self, counter: u64, timestamp_ms: u64, kind: u8, payload: &[u8]) -> DeviceEnvelope {
        let mut envelope = DeviceEnvelope::unsigned(self.uid(), counter, timestamp_ms, kind, payload.to_vec());
        let signature = self.key.sign(&self.rng, &envelope.signing_message()).expect("sign");
        envelope.signature.copy_from_slice(signature.as_ref());
        envelope
    }

    /// The wire bytes of a signed reading.
    pub fn reading(&self, counter: u64, timestamp_ms: u64, payload: &[u8]) -> Vec<u8> {
        self.envelope(counter, timestamp_ms, nest_sdk::device::KIND_READING, payload).encode()
    }
}
