//! Radio frames through the fragment reassembler (`nest_sdk::fragment`) with the host's
//! limits, then the device envelope decoder, as the host's device pipeline runs them.

use crate::steps::{steps, u64_of};
use nest_api::devices::pipeline::{FRAME_BYTES_MAX, reassembly_limits};
use nest_sdk::{
    device::{DeviceEnvelope, ENVELOPE_BYTES_MAX},
    fragment::{Reassembler, Reassembly, fragment},
};

/// Push the payload as a frame from link `tag / 4 % 3`.
pub const PUSH: u8 = 0;
/// Time passes by `u64_of(payload) % TICK_MS_MAX` and stale partials expire.
pub const TICK: u8 = 1;
/// Fragment the payload at MTU `8 + tag / 4` and reassemble it alone: must give it back.
pub const ROUND_TRIP: u8 = 2;
/// Fragment the payload and push its fragments among the others.
pub const PUSH_FRAGMENTED: u8 = 3;

/// Largest time step.
pub const TICK_MS_MAX: u64 = 10_000;
/// The link addresses frames come from.
pub const LINKS: [&str; 3] = ["10.0.0.1:5000", "10.0.0.2:5000", "lora:00a1"];

struct Pipeline {
    reassembler: Reassembler,
    now_ms: u64,
}

impl Pipeline {
    /// The host's path for one frame: bound, reassembly, envelope.
    fn frame(&mut self, link: &str, bytes: &[u8]) {
        if bytes.len() > FRAME_BYTES_MAX {
            return;
        }
        if let Reassembly::Complete(whole) = self.reassembler.push(link, bytes, self.now_ms)
            && whole.len() <= ENVELOPE_BYTES_MAX
        {
            let _ = DeviceEnvelope::decode(&whole);
        }
        let limits = reassembly_limits();
        assert!(self.reassembler.partial_messages() <= limits.partial_messages_max, "partial messages bounded");
        assert!(self.reassembler.partial_bytes() <= limits.partial_bytes_max, "partial bytes bounded");
    }
}

/// Runs the steps of `data` through one reassembler.
pub fn run(data: &[u8]) {
    let mut pipeline = Pipeline { reassembler: Reassembler::new(reassembly_limits()), now_ms: 0 };
    for (tag, payload) in steps(data) {
        let link = LINKS[usize::from(tag / 4) % LINKS.len()];
        let mtu_bytes = 8 + u32::from(tag / 4);
        match tag % 4 {
            PUSH => pipeline.frame(link, payload),
            TICK => {
                pipeline.now_ms = pipeline.now_ms.saturating_add(u64_of(payload) % TICK_MS_MAX);
                pipeline.reassembler.expire(pipeline.now_ms);
            }
            ROUND_TRIP => round_trip(payload, mtu_bytes, u16::from(tag)),
            _ => {
                for piece in fragment(payload, mtu_bytes, u16::from(tag)).unwrap_or_default() {
                    pipeline.frame(link, &piece);
                }
            }
        }
    }
}

/// A frame split by `fragment` and pushed in order into a fresh reassembler comes back whole.
fn round_trip(frame: &[u8], mtu_bytes: u32, message_id: u16) {
    let limits = reassembly_limits();
    let Ok(pieces) = fragment(frame, mtu_bytes, message_id) else { return };
    if pieces.len() > usize::from(limits.fragments_per_message_max) || frame.len() > limits.partial_bytes_max {
        return;
    }
    let mut reassembler = Reassembler::new(limits);
    let mut last = Reassembly::Pending;
    for (index, piece) in pieces.iter().enumerate() {
        assert!(piece.len() <= mtu_bytes as usize, "a fragment fits the MTU");
        last = reassembler.push(LINKS[0], piece, 0);
        if index + 1 < pieces.len() {
            assert_eq!(last, Reassembly::Pending, "fragment {index} of {} is pending", pieces.len());
        }
    }
    assert_eq!(last, Reassembly::Complete(frame.to_vec()), "the last fragment completes the frame");
}
