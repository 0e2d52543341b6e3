//! The block sync codec (`nest_api::net`): length-prefixed borsh frames from a peer.

use nest_api::net::{decode_request_frame, decode_response_frame};

/// Largest response frame: the network's default `message_bytes_max` (4 MiB).
pub const RESPONSE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Reads `data` as a request frame and as a response frame.
pub fn run(data: &[u8]) {
    let _ = decode_request_frame(data);
    let _ = decode_response_frame(data, RESPONSE_BYTES_MAX);
}
