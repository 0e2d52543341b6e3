//! Serve the node's devices: P-256 keys, the frame pipeline from radio to anchored
//! reading, and the verification pool. The `nestd device` tools and the devnet's
//! simulated devices are in `nest-host` (`devices::cli`, `devices::devnet`).
//!
//! - [`keys`]: device key files, signing as a device does, verification, key checks.
//! - [`pipeline`]: reassembly, decoding, lookup on chain, counter checks, link stats,
//!   reading storage and anchor batches.
//! - [`pool`]: signature verification on worker threads, off the node loop.
//!
//! The device transactions themselves (register, transfer, revoke, anchor) are in
//! `ledger::device`; the node loop's side is `node::devices`.

pub use nest_ledger::device_keys as keys;
pub mod pipeline;
pub mod pool;

use keys::DeviceKey;
use nest_sdk::device::{DeviceEnvelope, EnvelopeError, device_uid};
use nest_sdk::fragment::{FragmentError, fragment};

/// What a device puts in one frame.
#[derive(Debug, Clone)]
pub struct FrameSpec<'a> {
    /// The device's hardware id (its µID is the SHA-256 of it).
    pub hardware_id: &'a [u8],
    /// Strictly increasing per device.
    pub counter: u64,
    /// The device's clock.
    pub timestamp_ms: u64,
    /// Envelope kind (`nest_sdk::device::KIND_*`).
    pub kind: u8,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

/// A signed envelope, as a device builds it.
pub fn signed_envelope(key: &DeviceKey, spec: &FrameSpec<'_>) -> Result<DeviceEnvelope, EnvelopeError> {
    let mut envelope = DeviceEnvelope::unsigned(
        device_uid(spec.hardware_id),
        spec.counter,
        spec.timestamp_ms,
        spec.kind,
        spec.payload.clone(),
    );
    envelope.check()?;
    envelope.signature = key.sign(&envelope.signing_message());
    Ok(envelope)
}

/// The frames that carry `envelope` over a link of `mtu_bytes` (one frame when it fits
/// or when no MTU is given).
pub fn link_frames(
    envelope: &DeviceEnvelope,
    mtu_bytes: Option<u32>,
    message_id: u16,
) -> Result<Vec<Vec<u8>>, FragmentError> {
    let bytes = envelope.encode();
    match mtu_bytes {
        Some(mtu) => fragment(&bytes, mtu, message_id),
        None => Ok(vec![bytes]),
    }
}
