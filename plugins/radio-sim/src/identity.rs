//! Derive a simulated device's hardware id, µID and P-256 key from the config.
//!
//! Device `i` (0-based) of a simulator has:
//! - hardware id: the UTF-8 bytes of `hardware_id_prefix` followed by `i` in decimal
//!   (`sim-device-0`, `sim-device-1`, …); µID = SHA-256 of it;
//! - private key: the P-256 scalar `SHA-256(KEY_DOMAIN ‖ key_seed ‖ 0x00 ‖ i as u32 LE ‖
//!   attempt as u32 LE)` for the first `attempt` = 0, 1, … that is a valid scalar
//!   (below the group order, not zero: attempt 0 in all but ~2⁻³² of cases);
//! - public key: its 65-byte uncompressed SEC1 point.
//!
//! Anyone who knows the config can register the devices on chain; the keys are for
//! simulation only.

use nest_sdk::device::{DeviceEnvelope, device_uid};
use p256::ecdsa::{Signature, SigningKey, signature::Signer};
use sha2::{Digest, Sha256};

/// Domain tag of the key derivation.
pub const KEY_DOMAIN: &[u8] = b"nest/radio-sim/device-key/v1\0";

/// A simulated device's identity.
pub struct SimIdentity {
    /// The hardware id text (also the device's link address).
    pub hardware_id: String,
    /// SHA-256 of the hardware id.
    pub uid: [u8; 32],
    key: SigningKey,
}

impl SimIdentity {
    /// Derives device `index` of a simulator configured with `key_seed` and `hardware_id_prefix`.
    pub fn derive(key_seed: &str, hardware_id_prefix: &str, index: u32) -> Self {
        let hardware_id = format!("{hardware_id_prefix}{index}");
        let uid = device_uid(hardware_id.as_bytes());
        Self { hardware_id, uid, key: derive_key(key_seed, index) }
    }

    /// The 65-byte uncompressed SEC1 public key.
    pub fn public_key(&self) -> [u8; 65] {
        let point = self.key.verifying_key().to_encoded_point(false);
        let mut key = [0; 65];
        key.copy_from_slice(point.as_bytes());
        key
    }

    /// Signs `envelope` in place (ECDSA P-256 SHA-256, fixed `r ‖ s`).
    pub fn sign(&self, envelope: &mut DeviceEnvelope) {
        let signature: Signature = self.key.sign(&envelope.signing_message());
        envelope.signature.copy_from_slice(&signature.to_bytes());
    }
}

fn derive_key(key_seed: &str, index: u32) -> SigningKey {
    (0_u32..)
        .find_map(|attempt| {
            let mut hasher = Sha256::new();
            hasher.update(KEY_DOMAIN);
            hasher.update(key_seed.as_bytes());
            hasher.update([0]);
            hasher.update(index.to_le_bytes());
            hasher.update(attempt.to_le_bytes());
            let scalar: [u8; 32] = hasher.finalize().into();
            SigningKey::from_bytes(&scalar.into()).ok()
        })
        .expect("a valid scalar turns up within a few attempts")
}

#[cfg(test)]
mod tests {
    use super::*;
    use nest_sdk::device::KIND_READING;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    #[test]
    fn derivation_is_deterministic_and_signatures_verify_with_ring() {
        let a = SimIdentity::derive("seed", "sim-", 3);
        let b = SimIdentity::derive("seed", "sim-", 3);
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(a.hardware_id, "sim-3");
        assert_eq!(a.uid, device_uid(b"sim-3"));
        assert_ne!(a.public_key(), SimIdentity::derive("seed", "sim-", 4).public_key());
        assert_ne!(a.public_key(), SimIdentity::derive("other", "sim-", 3).public_key());
        let mut envelope = DeviceEnvelope::unsigned(a.uid, 1, 2, KIND_READING, vec![1, 2, 3]);
        a.sign(&mut envelope);
        let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, a.public_key());
        assert!(key.verify(&envelope.signing_message(), &envelope.signature).is_ok());
        envelope.counter = 2;
        assert!(key.verify(&envelope.signing_message(), &envelope.signature).is_err());
    }
}
