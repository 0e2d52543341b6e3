//! Split frames larger than a radio's MTU into fragments and reassemble them, bounded.
//!
//! A fragment is a 7-byte header followed by a slice of the frame:
//!
//! | offset | field        | value                                      |
//! |--------|--------------|--------------------------------------------|
//! | 0      | magic        | `0xF7 0x4E`                                |
//! | 2      | version      | `1`                                        |
//! | 3      | `message_id` | `u16` little-endian, chosen by the sender  |
//! | 5      | `index`      | `u8`, 0-based position of this fragment    |
//! | 6      | `count`      | `u8`, fragments in the message (1..=255)   |
//!
//! The frame is the concatenation of the fragments' bodies in index order. A frame
//! that fits the MTU and does not start with the magic goes on the air as is
//! (an envelope starts with its version byte `1`, so it never does). The receiver's
//! [`Reassembler`] is sans-IO: the caller gives the time, and everything it keeps is
//! bounded by [`ReassemblyLimits`].

use std::collections::HashMap;

/// First two bytes of every fragment.
pub const FRAGMENT_MAGIC: [u8; 2] = [0xF7, 0x4E];
/// Fragment format version.
pub const FRAGMENT_VERSION: u8 = 1;
/// Bytes of the fragment header.
pub const FRAGMENT_HEADER_BYTES: usize = 7;
/// Most fragments one message can have (the `count` field is one byte).
pub const FRAGMENTS_PER_MESSAGE_MAX: usize = 255;

/// Why a frame cannot be fragmented.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    /// Nothing to send.
    #[error("cannot fragment an empty frame")]
    EmptyFrame,
    /// The MTU leaves no room for a fragment body after the header.
    #[error("MTU of {mtu_bytes} bytes leaves no room after the {FRAGMENT_HEADER_BYTES}-byte fragment header")]
    MtuTooSmall {
        /// The MTU given.
        mtu_bytes: u32,
    },
    /// The frame would need more than [`FRAGMENTS_PER_MESSAGE_MAX`] fragments.
    #[error(
        "a {frame_bytes}-byte frame needs {needed} fragments at MTU {mtu_bytes}, more than {FRAGMENTS_PER_MESSAGE_MAX}"
    )]
    TooManyFragments {
        /// Frame length.
        frame_bytes: usize,
        /// MTU given.
        mtu_bytes: u32,
        /// Fragments it would take.
        needed: usize,
    },
}

/// The parsed header of one fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHeader {
    /// Sender-chosen id shared by the fragments of one message.
    pub message_id: u16,
    /// Position of this fragment.
    pub index: u8,
    /// Fragments in the message.
    pub count: u8,
}

/// Splits `frame` into fragments of at most `mtu_bytes`, or returns it whole when it fits.
pub fn fragment(frame: &[u8], mtu_bytes: u32, message_id: u16) -> Result<Vec<Vec<u8>>, FragmentError> {
    if frame.is_empty() {
        return Err(FragmentError::EmptyFrame);
    }
    let mtu = mtu_bytes as usize;
    if frame.len() <= mtu && !frame.starts_with(&FRAGMENT_MAGIC) {
        return Ok(vec![frame.to_vec()]);
    }
    let body_bytes =
        mtu.checked_sub(FRAGMENT_HEADER_BYTES).filter(|b| *b > 0).ok_or(FragmentError::MtuTooSmall { mtu_bytes })?;
    let needed = frame.len().div_ceil(body_bytes);
    let count = u8::try_from(needed).map_err(|_| FragmentError::TooManyFragments {
        frame_bytes: frame.len(),
        mtu_bytes,
        needed,
    })?;
    let fragments = frame
        .chunks(body_bytes)
        .enumerate()
        .map(|(index, body)| {
            let header = FragmentHeader { message_id, index: index as u8, count };
            let mut bytes = Vec::with_capacity(FRAGMENT_HEADER_BYTES + body.len());
            bytes.extend_from_slice(&header.encode());
            bytes.extend_from_slice(body);
            bytes
        })
        .collect();
    Ok(fragments)
}

impl FragmentHeader {
    /// The 7 header bytes.
    pub fn encode(&self) -> [u8; FRAGMENT_HEADER_BYTES] {
        let id = self.message_id.to_le_bytes();
        [FRAGMENT_MAGIC[0], FRAGMENT_MAGIC[1], FRAGMENT_VERSION, id[0], id[1], self.index, self.count]
    }

    /// Parses the header of bytes that start with [`FRAGMENT_MAGIC`].
    fn parse(bytes: &[u8]) -> Result<(Self, &[u8]), FragmentReject> {
        let header = bytes.get(..FRAGMENT_HEADER_BYTES).ok_or(FragmentReject::Truncated { len: bytes.len() })?;
        if header[2] != FRAGMENT_VERSION {
            return Err(FragmentReject::UnsupportedVersion(header[2]));
        }
        let parsed =
            Self { message_id: u16::from_le_bytes([header[3], header[4]]), index: header[5], count: header[6] };
        if parsed.count == 0 || parsed.index >= parsed.count {
            return Err(FragmentReject::BadIndex { index: parsed.index, count: parsed.count });
        }
        Ok((parsed, &bytes[FRAGMENT_HEADER_BYTES..]))
    }
}

/// Bounds on what a [`Reassembler`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Messages being reassembled at once; the oldest is evicted beyond it.
    pub partial_messages_max: usize,
    /// Bytes held in partial messages; the oldest are evicted beyond it.
    pub partial_bytes_max: usize,
    /// Largest `count` accepted (at most [`FRAGMENTS_PER_MESSAGE_MAX`]).
    pub fragments_per_message_max: u8,
    /// A partial message older than this (from its first fragment) is dropped.
    pub timeout_ms: u64,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        Self {
            partial_messages_max: 64,
            partial_bytes_max: 256 * 1024,
            fragments_per_message_max: 64,
            timeout_ms: 30_000,
        }
    }
}

/// Why one fragment was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentReject {
    /// Shorter than the header.
    #[error("fragment truncated: {len} bytes, header needs {FRAGMENT_HEADER_BYTES}")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// Unknown fragment format version.
    #[error("fragment version {0} is not supported (expected {FRAGMENT_VERSION})")]
    UnsupportedVersion(u8),
    /// `count` is zero or `index` is not below it.
    #[error("fragment index {index} is not below its count {count}")]
    BadIndex {
        /// Index field.
        index: u8,
        /// Count field.
        count: u8,
    },
    /// `count` above [`ReassemblyLimits::fragments_per_message_max`].
    #[error("fragment count {count} exceeds the limit of {max}")]
    TooManyFragments {
        /// Count field.
        count: u8,
        /// The limit.
        max: u8,
    },
    /// A fragment with no body.
    #[error("fragment {index} has an empty body")]
    EmptyBody {
        /// Index field.
        index: u8,
    },
    /// `count` disagrees with earlier fragments of the same message; the partial is dropped.
    #[error("fragment count {count} disagrees with {expected} seen earlier for message {message_id}")]
    Inconsistent {
        /// Message id.
        message_id: u16,
        /// Count first seen.
        expected: u8,
        /// Count in this fragment.
        count: u8,
    },
    /// This index already arrived for the message.
    #[error("duplicate fragment {index} of message {message_id}")]
    Duplicate {
        /// Message id.
        message_id: u16,
        /// Index field.
        index: u8,
    },
    /// The fragment alone is larger than the partial-bytes bound.
    #[error("fragment body of {len} bytes exceeds the partial-bytes bound")]
    TooLarge {
        /// Body length.
        len: usize,
    },
}

/// What one call to [`Reassembler::push`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reassembly {
    /// A whole frame: unfragmented bytes passed through, or the last missing fragment.
    Complete(Vec<u8>),
    /// Stored; the message still misses fragments.
    Pending,
    /// Not used, with the reason.
    Rejected(FragmentReject),
}

/// Counters of what a [`Reassembler`] did, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Unfragmented frames passed through.
    pub passed_through: u64,
    /// Messages completed from fragments.
    pub completed: u64,
    /// Fragments rejected as malformed (truncated, version, index, count, empty, too large).
    pub malformed: u64,
    /// Duplicate fragments ignored.
    pub duplicates: u64,
    /// Partial messages dropped because a fragment's count disagreed.
    pub inconsistent: u64,
    /// Partial messages evicted to stay within the bounds.
    pub evicted: u64,
    /// Partial messages dropped after the timeout.
    pub timed_out: u64,
}

/// A message being reassembled.
struct Partial {
    bodies: Vec<Option<Vec<u8>>>,
    received: usize,
    bytes: usize,
    first_ms: u64,
}

/// Sans-IO reassembly of fragments, keyed by link address and message id.
pub struct Reassembler {
    limits: ReassemblyLimits,
    partials: HashMap<(String, u16), Partial>,
    partial_bytes: usize,
    stats: ReassemblyStats,
}

impl Reassembler {
    /// An empty reassembler with these bounds.
    pub fn new(limits: ReassemblyLimits) -> Self {
        Self { limits, partials: HashMap::new(), partial_bytes: 0, stats: ReassemblyStats::default() }
    }

    /// Counters so far.
    pub fn stats(&self) -> ReassemblyStats {
        self.stats
    }

    /// Messages currently partial.
    pub fn partial_messages(&self) -> usize {
        self.partials.len()
    }

    /// Bytes currently held in partial messages.
    pub fn partial_bytes(&self) -> usize {
        self.partial_bytes
    }

    /// Takes the bytes of one frame from `link_address`, received at `now_ms`.
    pub fn push(&mut self, link_address: &str, bytes: &[u8], now_ms: u64) -> Reassembly {
        self.expire(now_ms);
        if !bytes.starts_with(&FRAGMENT_MAGIC) {
            self.stats.passed_through += 1;
            return Reassembly::Complete(bytes.to_vec());
        }
        match self.accept(link_address, bytes, now_ms) {
            Ok(outcome) => outcome,
            Err(reject) => {
                match reject {
                    FragmentReject::Duplicate { .. } => self.stats.duplicates += 1,
                    FragmentReject::Inconsistent { .. } => self.stats.inconsistent += 1,
                    _ => self.stats.malformed += 1,
                }
                Reassembly::Rejected(reject)
            }
        }
    }

    /// Drops partial messages older than the timeout; returns how many.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let timeout_ms = self.limits.timeout_ms;
        let expired: Vec<(String, u16)> = self
            .partials
            .iter()
            .filter(|(_, partial)| now_ms.saturating_sub(partial.first_ms) >= timeout_ms)
            .map(|(key, _)| key.clone())
            .collect();
        for key in &expired {
            self.remove(key);
        }
        self.stats.timed_out += expired.len() as u64;
        expired.len()
    }

    fn accept(&mut self, link_address: &str, bytes: &[u8], now_ms: u64) -> Result<Reassembly, FragmentReject> {
        let (header, body) = FragmentHeader::parse(bytes)?;
        let max = self.limits.fragments_per_message_max;
        if header.count > max {
            return Err(FragmentReject::TooManyFragments { count: header.count, max });
        }
        if body.is_empty() {
            return Err(FragmentReject::EmptyBody { index: header.index });
        }
        if body.len() > self.limits.partial_bytes_max {
            return Err(FragmentReject::TooLarge { len: body.len() });
        }
        let key = (link_address.to_owned(), header.message_id);
        self.check_against_partial(&key, header)?;
        self.make_room(&key, body.len());
        let partial = self.partials.entry(key.clone()).or_insert_with(|| Partial {
            bodies: vec![None; header.count as usize],
            received: 0,
            bytes: 0,
            first_ms: now_ms,
        });
        partial.bodies[header.index as usize] = Some(body.to_vec());
        partial.received += 1;
        partial.bytes += body.len();
        self.partial_bytes += body.len();
        if partial.received < partial.bodies.len() {
            return Ok(Reassembly::Pending);
        }
        let Some(done) = self.remove(&key) else { return Ok(Reassembly::Pending) };
        self.stats.completed += 1;
        Ok(Reassembly::Complete(done.bodies.into_iter().flatten().flatten().collect()))
    }

    /// Rejects a fragment that repeats or contradicts what is held for its message.
    fn check_against_partial(&mut self, key: &(String, u16), header: FragmentHeader) -> Result<(), FragmentReject> {
        let Some(partial) = self.partials.get(key) else { return Ok(()) };
        let expected = partial.bodies.len();
        if expected != header.count as usize {
            self.remove(key);
            return Err(FragmentReject::Inconsistent {
                message_id: header.message_id,
                expected: expected as u8,
                count: header.count,
            });
        }
        if partial.bodies[header.index as usize].is_some() {
            return Err(FragmentReject::Duplicate { message_id: header.message_id, index: header.index });
        }
        Ok(())
    }

    /// Evicts the oldest partials until one more body fits both bounds.
    fn make_room(&mut self, key: &(String, u16), body_bytes: usize) {
        let opens_new = !self.partials.contains_key(key);
        loop {
            let too_many = opens_new && self.partials.len() >= self.limits.partial_messages_max;
            let too_big = self.partial_bytes + body_bytes > self.limits.partial_bytes_max;
            if !(too_many || too_big) {
                return;
            }
            let Some(oldest) = self.partials.iter().min_by_key(|(_, p)| p.first_ms).map(|(k, _)| k.clone()) else {
                return;
            };
            self.remove(&oldest);
            self.stats.evicted += 1;
            if &oldest == key {
                // The message itself was evicted: it starts over with this fragment.
                return self.make_room(key, body_bytes);
            }
        }
    }

    fn remove(&mut self, key: &(String, u16)) -> Option<Partial> {
        let partial = self.partials.remove(key)?;
        self.partial_bytes -= partial.bytes;
        Some(partial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    fn limits() -> ReassemblyLimits {
        ReassemblyLimits { fragments_per_message_max: 255, ..ReassemblyLimits::default() }
    }

    fn frame(rng: &mut Rng, len: usize) -> Vec<u8> {
        let mut bytes = rng.bytes(len);
        bytes[0] = 1; // an envelope's first byte
        bytes
    }

    #[test]
    fn round_trip_at_many_mtus() {
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        for mtu in [8_u32, 11, 20, 51, 115, 222, 244, 1280] {
            for len in [1, 7, 8, 50, 51, 52, 222, 1000, 1112] {
                let original = frame(&mut rng, len);
                let Ok(fragments) = fragment(&original, mtu, len as u16) else {
                    assert!(len.div_ceil(mtu as usize - FRAGMENT_HEADER_BYTES) > 255);
                    continue;
                };
                assert!(fragments.iter().all(|f| f.len() <= mtu as usize), "mtu {mtu} len {len}");
                let mut reassembler = Reassembler::new(limits());
                let outcomes: Vec<_> = fragments.iter().map(|f| reassembler.push("dev", f, 0)).collect();
                assert_eq!(outcomes.last(), Some(&Reassembly::Complete(original.clone())), "mtu {mtu} len {len}");
                assert!(outcomes[..outcomes.len() - 1].iter().all(|o| *o == Reassembly::Pending));
                assert_eq!(reassembler.partial_bytes(), 0);
            }
        }
    }

    #[test]
    fn out_of_order_duplicates_and_interleaving() {
        let mut rng = Rng(42);
        for round in 0..200 {
            let mut reassembler = Reassembler::new(limits());
            let a = frame(&mut rng, 100 + round);
            let b = frame(&mut rng, 300 + round);
            let mut pieces: Vec<(&str, Vec<u8>)> = Vec::new();
            pieces.extend(fragment(&a, 30, 1).unwrap().into_iter().map(|f| ("a", f)));
            pieces.extend(fragment(&b, 30, 1).unwrap().into_iter().map(|f| ("b", f)));
            let duplicate = pieces[rng.below(pieces.len())].clone();
            pieces.push(duplicate);
            for i in (1..pieces.len()).rev() {
                pieces.swap(i, rng.below(i + 1));
            }
            let mut complete = Vec::new();
            for (link, bytes) in &pieces {
                if let Reassembly::Complete(frame) = reassembler.push(link, bytes, 0) {
                    complete.push((*link, frame));
                }
            }
            complete.sort();
            assert_eq!(complete, vec![("a", a), ("b", b)]);
            assert!(reassembler.stats().duplicates <= 1);
        }
    }

    #[test]
    fn truncated_sequence_times_out() {
        let mut reassembler = Reassembler::new(ReassemblyLimits { timeout_ms: 1_000, ..limits() });
        let fragments = fragment(&[1; 100], 20, 9).unwrap();
        for f in &fragments[..fragments.len() - 1] {
            assert_eq!(reassembler.push("dev", f, 10), Reassembly::Pending);
        }
        assert_eq!(reassembler.expire(500), 0);
        assert_eq!(reassembler.expire(1_010), 1);
        assert_eq!(reassembler.stats().timed_out, 1);
        assert_eq!(reassembler.partial_bytes(), 0);
        // The late last fragment starts a new partial that never completes.
        assert_eq!(reassembler.push("dev", &fragments[fragments.len() - 1], 1_020), Reassembly::Pending);
    }

    #[test]
    fn bounds_evict_oldest() {
        let limits = ReassemblyLimits { partial_messages_max: 2, partial_bytes_max: 100, ..limits() };
        let mut reassembler = Reassembler::new(limits);
        for id in 0..5_u16 {
            let first = fragment(&[1; 60], 40, id).unwrap().remove(0);
            assert_eq!(reassembler.push("dev", &first, u64::from(id)), Reassembly::Pending);
            assert!(reassembler.partial_messages() <= 2);
            assert!(reassembler.partial_bytes() <= 100);
        }
        assert_eq!(reassembler.stats().evicted, 3);
    }

    #[test]
    fn bad_fragments_are_counted() {
        let mut reassembler =
            Reassembler::new(ReassemblyLimits { fragments_per_message_max: 4, partial_bytes_max: 16, ..limits() });
        let header = |index, count| FragmentHeader { message_id: 3, index, count }.encode().to_vec();
        let with_body = |mut h: Vec<u8>, len| {
            h.extend(std::iter::repeat_n(7, len));
            h
        };
        let cases = [
            (vec![0xF7, 0x4E, 1], "truncated"),
            (with_body(header(2, 2), 1), "bad index"),
            (with_body(header(0, 0), 1), "zero count"),
            (with_body(header(0, 9), 1), "too many"),
            (header(0, 2), "empty body"),
            (with_body(header(0, 2), 17), "too large"),
        ];
        for (bytes, what) in &cases {
            assert!(matches!(reassembler.push("dev", bytes, 0), Reassembly::Rejected(_)), "{what}");
        }
        let mut wrong_version = with_body(header(0, 2), 1);
        wrong_version[2] = 2;
        assert_eq!(
            reassembler.push("dev", &wrong_version, 0),
            Reassembly::Rejected(FragmentReject::UnsupportedVersion(2))
        );
        assert_eq!(reassembler.stats().malformed, 7);
        assert_eq!(reassembler.push("dev", &with_body(header(0, 2), 1), 0), Reassembly::Pending);
        let inconsistent = reassembler.push("dev", &with_body(header(1, 3), 1), 0);
        assert!(matches!(inconsistent, Reassembly::Rejected(FragmentReject::Inconsistent { expected: 2, .. })));
        assert_eq!(reassembler.partial_messages(), 0);
    }

    #[test]
    fn garbage_never_panics_and_stays_bounded() {
        let mut rng = Rng(7);
        let limits = ReassemblyLimits { partial_messages_max: 8, partial_bytes_max: 2_000, ..limits() };
        let mut reassembler = Reassembler::new(limits);
        for step in 0..20_000_u64 {
            let len = rng.below(64);
            let mut bytes = rng.bytes(len);
            if len >= 2 && rng.below(2) == 0 {
                bytes[..2].copy_from_slice(&FRAGMENT_MAGIC);
                if len >= 3 {
                    bytes[2] = FRAGMENT_VERSION;
                }
            }
            let link = ["a", "b", "c"][rng.below(3)];
            let _ = reassembler.push(link, &bytes, step);
            assert!(reassembler.partial_messages() <= 8);
            assert!(reassembler.partial_bytes() <= 2_000);
        }
    }

    #[test]
    fn small_frames_pass_through_and_magic_is_escaped() {
        assert_eq!(fragment(&[1, 2, 3], 51, 0).unwrap(), vec![vec![1, 2, 3]]);
        let tricky = [0xF7, 0x4E, 1, 2];
        let fragments = fragment(&tricky, 51, 5).unwrap();
        assert_eq!(fragments.len(), 1);
        assert_ne!(fragments[0], tricky);
        let mut reassembler = Reassembler::new(limits());
        assert_eq!(reassembler.push("x", &fragments[0], 0), Reassembly::Complete(tricky.to_vec()));
        assert_eq!(fragment(&[], 51, 0), Err(FragmentError::EmptyFrame));
        assert_eq!(fragment(&[1; 100], 7, 0), Err(FragmentError::MtuTooSmall { mtu_bytes: 7 }));
        assert!(matches!(fragment(&[1; 2000], 8, 0), Err(FragmentError::TooManyFragments { needed: 2000, .. })));
    }
}
