//! Encode and decode the signed device envelope (v1) that devices put on the air.
//!
//! A device has a µID, the SHA-256 of its hardware id ([`device_uid`]), and a P-256
//! key that never leaves it. Each frame it sends is one [`DeviceEnvelope`], borsh
//! encoded:
//!
//! | field          | type       | bytes                       |
//! |----------------|------------|-----------------------------|
//! | `version`      | `u8`       | 1 (always [`ENVELOPE_VERSION`]) |
//! | `device_uid`   | `[u8; 32]` | 32                          |
//! | `counter`      | `u64` LE   | 8                           |
//! | `timestamp_ms` | `u64` LE   | 8                           |
//! | `kind`         | `u8`       | 1 (0 reading, 1 transaction, 2 market offer) |
//! | `payload`      | `Vec<u8>`  | 4 (`u32` LE length) + length, length ≤ 1024 |
//! | `signature`    | `[u8; 64]` | 64 (P-256 ECDSA, fixed `r ‖ s`, big-endian) |
//!
//! The signature is ECDSA P-256 with SHA-256 over [`DeviceEnvelope::signing_message`]:
//! the domain tag `b"nest/device/v1\0"` followed by the encoding above without the
//! signature. Public keys are 65-byte uncompressed SEC1 points (`0x04 ‖ x ‖ y`).
//!
//! This module holds no cryptography: the host verifies, drivers and firmware sign.

use borsh::{BorshDeserialize, BorshSerialize};
use sha2::{Digest, Sha256};

/// The envelope version this module encodes and accepts.
pub const ENVELOPE_VERSION: u8 = 1;
/// Largest payload one envelope carries.
pub const ENVELOPE_PAYLOAD_BYTES_MAX: usize = 1024;
/// Domain tag that starts every signed message, so a device signature over an
/// envelope can never be mistaken for a signature over anything else.
pub const ENVELOPE_SIGNING_DOMAIN: &[u8] = b"nest/device/v1\0";
/// Bytes of an encoded envelope besides its payload.
pub const ENVELOPE_OVERHEAD_BYTES: usize = 1 + 32 + 8 + 8 + 1 + 4 + 64;
/// Largest encoded envelope.
pub const ENVELOPE_BYTES_MAX: usize = ENVELOPE_OVERHEAD_BYTES + ENVELOPE_PAYLOAD_BYTES_MAX;
/// Length of an uncompressed SEC1 P-256 public key.
pub const DEVICE_PUBLIC_KEY_BYTES: usize = 65;

/// Envelope kind: a sensor reading, anchored on chain as a hash.
pub const KIND_READING: u8 = 0;
/// Envelope kind: a transaction the node forwards for the device.
pub const KIND_TRANSACTION: u8 = 1;
/// Envelope kind: an offer the node posts to the market.
pub const KIND_MARKET_OFFER: u8 = 2;
/// Highest kind this version knows.
const KIND_MAX: u8 = KIND_MARKET_OFFER;

/// One signed frame from a device.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct DeviceEnvelope {
    /// Envelope format version; [`ENVELOPE_VERSION`].
    pub version: u8,
    /// The device's µID: SHA-256 of its hardware id.
    pub device_uid: [u8; 32],
    /// Strictly increasing per device; the host rejects replays by it.
    pub counter: u64,
    /// Device's clock at sending, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// What the payload is: [`KIND_READING`], [`KIND_TRANSACTION`], [`KIND_MARKET_OFFER`].
    pub kind: u8,
    /// Kind-specific bytes, at most [`ENVELOPE_PAYLOAD_BYTES_MAX`].
    pub payload: Vec<u8>,
    /// ECDSA P-256 signature (fixed `r ‖ s`) over [`Self::signing_message`].
    pub signature: [u8; 64],
}

/// Why bytes are not a valid envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Fewer bytes than the fixed fields need.
    #[error("envelope truncated: {len} bytes, need at least {needed}")]
    Truncated {
        /// Bytes received.
        len: usize,
        /// Bytes the fields read so far require.
        needed: usize,
    },
    /// The version byte is not one this SDK understands.
    #[error("envelope version {0} is not supported (expected {ENVELOPE_VERSION})")]
    UnsupportedVersion(u8),
    /// The kind byte is not one of the defined kinds.
    #[error("envelope kind {0} is unknown (0 reading, 1 transaction, 2 market offer)")]
    UnknownKind(u8),
    /// The payload length exceeds [`ENVELOPE_PAYLOAD_BYTES_MAX`].
    #[error("envelope payload of {len} bytes exceeds the {ENVELOPE_PAYLOAD_BYTES_MAX}-byte limit")]
    PayloadTooLarge {
        /// Declared or given payload length.
        len: usize,
    },
    /// Bytes remain after the signature.
    #[error("envelope has {extra} trailing bytes after the signature")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

impl DeviceEnvelope {
    /// An unsigned envelope (zero signature) for the current version.
    pub fn unsigned(device_uid: [u8; 32], counter: u64, timestamp_ms: u64, kind: u8, payload: Vec<u8>) -> Self {
        Self { version: ENVELOPE_VERSION, device_uid, counter, timestamp_ms, kind, payload, signature: [0; 64] }
    }

    /// The bytes the device signs: domain tag, then every field but the signature.
    pub fn signing_message(&self) -> Vec<u8> {
        let mut message = Vec::with_capacity(ENVELOPE_SIGNING_DOMAIN.len() + ENVELOPE_BYTES_MAX);
        message.extend_from_slice(ENVELOPE_SIGNING_DOMAIN);
        self.write_unsigned(&mut message);
        message
    }

    /// The envelope's wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(ENVELOPE_OVERHEAD_BYTES + self.payload.len());
        self.write_unsigned(&mut bytes);
        bytes.extend_from_slice(&self.signature);
        bytes
    }

    /// Parses wire bytes, checking version, kind, payload bound and exact length.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let mut reader = Reader { bytes, at: 0 };
        let version = reader.take::<1>()?[0];
        if version != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(version));
        }
        let device_uid = reader.take::<32>()?;
        let counter = u64::from_le_bytes(reader.take::<8>()?);
        let timestamp_ms = u64::from_le_bytes(reader.take::<8>()?);
        let kind = reader.take::<1>()?[0];
        if kind > KIND_MAX {
            return Err(EnvelopeError::UnknownKind(kind));
        }
        let payload_len = u32::from_le_bytes(reader.take::<4>()?) as usize;
        if payload_len > ENVELOPE_PAYLOAD_BYTES_MAX {
            return Err(EnvelopeError::PayloadTooLarge { len: payload_len });
        }
        let payload = reader.take_slice(payload_len)?.to_vec();
        let signature = reader.take::<64>()?;
        let extra = bytes.len() - reader.at;
        if extra != 0 {
            return Err(EnvelopeError::TrailingBytes { extra });
        }
        Ok(Self { version, device_uid, counter, timestamp_ms, kind, payload, signature })
    }

    /// Checks the fields an encoder controls: version, kind, payload bound.
    pub fn check(&self) -> Result<(), EnvelopeError> {
        if self.version != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(self.version));
        }
        if self.kind > KIND_MAX {
            return Err(EnvelopeError::UnknownKind(self.kind));
        }
        if self.payload.len() > ENVELOPE_PAYLOAD_BYTES_MAX {
            return Err(EnvelopeError::PayloadTooLarge { len: self.payload.len() });
        }
        Ok(())
    }

    fn write_unsigned(&self, out: &mut Vec<u8>) {
        out.push(self.version);
        out.extend_from_slice(&self.device_uid);
        out.extend_from_slice(&self.counter.to_le_bytes());
        out.extend_from_slice(&self.timestamp_ms.to_le_bytes());
        out.push(self.kind);
        // Payloads beyond u32 cannot be built from a bounded frame; saturating keeps
        // encode total while decode refuses such a length anyway.
        let len = u32::try_from(self.payload.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&self.payload);
    }
}

/// The µID of a device: SHA-256 of its hardware id.
pub fn device_uid(hardware_id: &[u8]) -> [u8; 32] {
    Sha256::digest(hardware_id).into()
}

/// Cursor over envelope bytes that reports how many bytes a field needed.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take_slice(&mut self, len: usize) -> Result<&'a [u8], EnvelopeError> {
        let needed = self.at.saturating_add(len);
        let slice =
            self.bytes.get(self.at..needed).ok_or(EnvelopeError::Truncated { len: self.bytes.len(), needed })?;
        self.at = needed;
        Ok(slice)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], EnvelopeError> {
        let slice = self.take_slice(N)?;
        let mut array = [0; N];
        array.copy_from_slice(slice);
        Ok(array)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload_len: usize) -> DeviceEnvelope {
        let mut envelope =
            DeviceEnvelope::unsigned(device_uid(b"hw-1"), 7, 1_700_000_000_000, KIND_READING, vec![0xAB; payload_len]);
        envelope.signature = [0x5A; 64];
        envelope
    }

    #[test]
    fn encoding_is_borsh() {
        let envelope = sample(10);
        assert_eq!(envelope.encode(), borsh::to_vec(&envelope).unwrap());
        assert_eq!(envelope.encode().len(), ENVELOPE_OVERHEAD_BYTES + 10);
    }

    #[test]
    fn round_trip_and_signing_message() {
        for len in [0, 1, 200, ENVELOPE_PAYLOAD_BYTES_MAX] {
            let envelope = sample(len);
            assert_eq!(DeviceEnvelope::decode(&envelope.encode()).unwrap(), envelope);
            let message = envelope.signing_message();
            assert!(message.starts_with(ENVELOPE_SIGNING_DOMAIN));
            let encoded = envelope.encode();
            assert_eq!(&message[ENVELOPE_SIGNING_DOMAIN.len()..], &encoded[..encoded.len() - 64]);
        }
    }

    #[test]
    fn rejects_with_reasons() {
        let good = sample(4).encode();
        let mut bad_version = good.clone();
        bad_version[0] = 2;
        assert_eq!(DeviceEnvelope::decode(&bad_version), Err(EnvelopeError::UnsupportedVersion(2)));
        let mut bad_kind = good.clone();
        bad_kind[49] = 9;
        assert_eq!(DeviceEnvelope::decode(&bad_kind), Err(EnvelopeError::UnknownKind(9)));
        let mut huge = good.clone();
        huge[50..54].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(DeviceEnvelope::decode(&huge), Err(EnvelopeError::PayloadTooLarge { len: u32::MAX as usize }));
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(DeviceEnvelope::decode(&trailing), Err(EnvelopeError::TrailingBytes { extra: 1 }));
        assert!(matches!(DeviceEnvelope::decode(&good[..good.len() - 1]), Err(EnvelopeError::Truncated { .. })));
        assert!(matches!(DeviceEnvelope::decode(&[]), Err(EnvelopeError::Truncated { len: 0, needed: 1 })));
        assert_eq!(sample(ENVELOPE_PAYLOAD_BYTES_MAX + 1).check(), Err(EnvelopeError::PayloadTooLarge { len: 1025 }));
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        for round in 0..5_000 {
            let len = round % 1200;
            let bytes: Vec<u8> = (0..len).map(|_| next_byte(&mut state)).collect();
            let _ = DeviceEnvelope::decode(&bytes);
            // Valid prefix with corrupted tail.
            let mut envelope = sample(round % 64).encode();
            let cut = round % envelope.len();
            envelope.truncate(cut);
            assert!(DeviceEnvelope::decode(&envelope).is_err());
        }
    }

    #[test]
    fn uid_is_sha256() {
        assert_eq!(hex::encode(device_uid(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    fn next_byte(state: &mut u64) -> u8 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state >> 24) as u8
    }
}
