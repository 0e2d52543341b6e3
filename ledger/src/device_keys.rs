//! Hold device P-256 keys, sign envelopes as a device does, and check device keys and
//! signatures.
//!
//! A device's key normally never leaves its secure element; these keys exist for the
//! vendor and operator tools (`nestd device keygen`, `nestd device frame`), the
//! simulated devices and the tests. Key files hold the hex of a PKCS#8 document and are
//! written with mode `0600`, like the node's Ed25519 keys. Verification uses ring's
//! `ECDSA_P256_SHA256_FIXED`; the point check of a public key registered on chain uses
//! the `p256` crate, because ring does not expose one.

use crate::crypto::{KeyError, sha256_parts};
use ring::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, UnparsedPublicKey},
};
use std::{fs, io::Write, os::unix::fs::OpenOptionsExt, path::Path};

/// Length of an uncompressed SEC1 P-256 public key (`0x04 ‖ x ‖ y`).
pub const PUBLIC_KEY_BYTES: usize = 65;
/// Length of a fixed `r ‖ s` P-256 signature.
pub const SIGNATURE_BYTES: usize = 64;
/// Domain of the deterministic key derivation of [`DeviceKey::from_seed`].
const SEED_DOMAIN: &[u8] = b"nest/device-key/v1\0";
/// PKCS#8 v1 document of a P-256 key, up to the 32-byte private scalar (RFC 5915 inside).
const PKCS8_PREFIX: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420";
/// Between the private scalar and the 65-byte public key.
const PKCS8_MIDDLE: &str = "a144034200";

/// A public key that cannot be a device key.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum PublicKeyError {
    /// Not 65 bytes.
    #[error("device public key must be {PUBLIC_KEY_BYTES} bytes (uncompressed SEC1), got {0}")]
    Length(usize),
    /// Not an uncompressed point.
    #[error("device public key must start with 0x04 (uncompressed SEC1), got 0x{0:02x}")]
    NotUncompressed(u8),
    /// The coordinates are not a point of P-256.
    #[error("device public key is not a point on the P-256 curve")]
    NotOnCurve,
}

/// Checks that `bytes` is an uncompressed SEC1 point of P-256 (not the identity).
pub fn check_public_key(bytes: &[u8]) -> Result<(), PublicKeyError> {
    if bytes.len() != PUBLIC_KEY_BYTES {
        return Err(PublicKeyError::Length(bytes.len()));
    }
    if bytes[0] != 0x04 {
        return Err(PublicKeyError::NotUncompressed(bytes[0]));
    }
    p256::PublicKey::from_sec1_bytes(bytes).map(|_| ()).map_err(|_| PublicKeyError::NotOnCurve)
}

/// Whether `signature` is a valid P-256 ECDSA (SHA-256, fixed `r ‖ s`) signature of
/// `message` by `public_key`.
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key).verify(message, signature).is_ok()
}

/// A device's P-256 key pair.
pub struct DeviceKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    rng: SystemRandom,
}

impl DeviceKey {
    /// A fresh random key.
    pub fn generate() -> Result<DeviceKey, KeyError> {
        let rng = SystemRandom::new();
        let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        DeviceKey::from_pkcs8(document.as_ref()).map_err(KeyError::Generate)
    }

    /// A key derived from `seed` (deterministic: simulated devices, tests, benchmarks).
    /// The private scalar is `sha256(domain ‖ seed ‖ attempt)` for the first attempt
    /// that is a valid scalar.
    pub fn from_seed(seed: &[u8]) -> DeviceKey {
        for attempt in 0u32.. {
            let scalar = sha256_parts(&[SEED_DOMAIN, seed, &attempt.to_le_bytes()]);
            if let Some(key) = DeviceKey::from_scalar(&scalar.0) {
                return key;
            }
        }
        unreachable!("a valid P-256 scalar is found within a few attempts")
    }

    /// The key whose private scalar is `scalar` (big-endian); `None` when it is zero or
    /// not below the group order.
    pub fn from_scalar(scalar: &[u8; 32]) -> Option<DeviceKey> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let secret = p256::SecretKey::from_slice(scalar).ok()?;
        let public = secret.public_key().to_encoded_point(false);
        let mut document = hex::decode(PKCS8_PREFIX).expect("constant hex");
        document.extend_from_slice(scalar);
        document.extend_from_slice(&hex::decode(PKCS8_MIDDLE).expect("constant hex"));
        document.extend_from_slice(public.as_bytes());
        DeviceKey::from_pkcs8(&document).ok()
    }

    /// Parses a PKCS#8 document holding a P-256 key.
    pub fn from_pkcs8(document: &[u8]) -> Result<DeviceKey, String> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, document, &rng)
            .map_err(|e| format!("not a P-256 PKCS#8 key: {e}"))?;
        Ok(DeviceKey { pair, pkcs8: document.to_vec(), rng })
    }

    /// Reads a key file written by [`DeviceKey::write`].
    pub fn read(path: &Path) -> Result<DeviceKey, KeyError> {
        let text =
            fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.display().to_string(), source })?;
        let invalid = |reason: String| KeyError::Invalid { path: path.display().to_string(), reason };
        let document = hex::decode(text.trim()).map_err(|e| invalid(format!("not hex: {e}")))?;
        DeviceKey::from_pkcs8(&document).map_err(invalid)
    }

    /// Writes the key to a new file readable only by its owner; refuses to overwrite.
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io { path: path.display().to_string(), source };
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
        writeln!(file, "{}", hex::encode(&self.pkcs8)).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// The public key, uncompressed SEC1.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_BYTES] {
        let mut out = [0u8; PUBLIC_KEY_BYTES];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// Signs `message` (ECDSA P-256, SHA-256, fixed `r ‖ s`).
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_BYTES] {
        let signature = self.pair.sign(&self.rng, message).expect("ECDSA signing with the system random source");
        let mut out = [0u8; SIGNATURE_BYTES];
        out.copy_from_slice(signature.as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let key = DeviceKey::generate().unwrap();
        let signature = key.sign(b"reading 42");
        assert!(verify(&key.public_key(), b"reading 42", &signature));
        assert!(!verify(&key.public_key(), b"reading 43", &signature));
        let mut bad = signature;
        bad[10] ^= 1;
        assert!(!verify(&key.public_key(), b"reading 42", &bad));
        let other = DeviceKey::generate().unwrap();
        assert!(!verify(&other.public_key(), b"reading 42", &signature));
    }

    #[test]
    fn seeded_keys_are_deterministic_and_valid() {
        let a = DeviceKey::from_seed(b"sensor-1");
        let b = DeviceKey::from_seed(b"sensor-1");
        let c = DeviceKey::from_seed(b"sensor-2");
        assert_eq!(a.public_key(), b.public_key());
        assert_ne!(a.public_key(), c.public_key());
        assert_eq!(check_public_key(&a.public_key()), Ok(()));
        assert!(verify(&b.public_key(), b"m", &a.sign(b"m")));
    }

    #[test]
    fn key_files_round_trip_and_refuse_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        let key = DeviceKey::generate().unwrap();
        key.write(&path).unwrap();
        assert_eq!(DeviceKey::read(&path).unwrap().public_key(), key.public_key());
        assert!(key.write(&path).is_err());
        std::fs::write(dir.path().join("bad.key"), "zz").unwrap();
        let error = DeviceKey::read(&dir.path().join("bad.key")).err().unwrap();
        assert!(error.to_string().contains("not hex"), "{error}");
    }

    #[test]
    fn public_key_check_names_the_problem() {
        let key = DeviceKey::from_seed(b"x").public_key();
        assert_eq!(check_public_key(&key[..64]), Err(PublicKeyError::Length(64)));
        let mut compressed = key;
        compressed[0] = 0x02;
        assert_eq!(check_public_key(&compressed), Err(PublicKeyError::NotUncompressed(2)));
        let mut off_curve = key;
        off_curve[64] ^= 1;
        assert_eq!(check_public_key(&off_curve), Err(PublicKeyError::NotOnCurve));
        assert_eq!(check_public_key(&[0x04; 65]), Err(PublicKeyError::NotOnCurve));
    }
}
