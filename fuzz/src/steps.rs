//! The framing of multi-step inputs: `tag (u8) ++ length (u16 LE) ++ payload`, repeated.
//!
//! A length longer than what is left takes the rest, so every byte string is a valid
//! sequence and mutations keep most of their structure.

/// Most steps read from one input, so one input stays fast.
pub const STEPS_MAX: usize = 256;

/// Iterates over the steps of `data`.
pub fn steps(data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let (&tag, after) = rest.split_first()?;
        let (length, after) = match after {
            [low, high, after @ ..] => (usize::from(u16::from_le_bytes([*low, *high])), after),
            _ => (after.len(), &[][..]),
        };
        let (payload, after) = after.split_at(length.min(after.len()));
        rest = after;
        Some((tag, payload))
    })
    .take(STEPS_MAX)
}

/// Encodes one step (for seeds); a payload longer than `u16::MAX` is cut.
pub fn step(tag: u8, payload: &[u8]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(usize::from(u16::MAX))];
    let mut out = Vec::with_capacity(3 + payload.len());
    out.push(tag);
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reads a little-endian `u64` from the first bytes of `payload` (missing bytes are 0).
pub fn u64_of(payload: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let take = payload.len().min(8);
    bytes[..take].copy_from_slice(&payload[..take]);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip_and_a_short_length_takes_the_rest() {
        let mut data = step(1, b"abc");
        data.extend(step(2, b""));
        data.extend([9, 200, 0, b'x', b'y']);
        let read: Vec<(u8, &[u8])> = steps(&data).collect();
        assert_eq!(read, vec![(1, &b"abc"[..]), (2, &b""[..]), (9, &b"xy"[..])]);
        assert_eq!(steps(&[7]).collect::<Vec<_>>(), vec![(7, &b""[..])]);
    }
}
