//! Bound what the network task holds and accepts: named limits and a per-peer rate limiter.

use std::{collections::HashMap, hash::Hash, time::Instant};

/// Commands waiting for the swarm task; a full queue makes `NetHandle` calls fail at once.
pub const COMMANDS_QUEUED_MAX: usize = 1024;
/// Events waiting for the node; when full, gossip is ignored and counted in `events_dropped`.
pub const EVENTS_QUEUED_MAX: usize = 4096;
/// Gossip messages handed to the node and not yet reported; the oldest is forgotten past this.
pub const VALIDATIONS_PENDING_MAX: usize = 8192;
/// Chains one node can subscribe to.
pub const CHAINS_MAX: usize = 64;
/// Longest chain id accepted in a topic or a sync request.
pub const CHAIN_ID_BYTES_MAX: usize = 64;
/// Block sync requests this node has in flight; more are answered with an error at once.
pub const SYNC_REQUESTS_PENDING_MAX: usize = 64;
/// Sync streams open on one connection at once.
pub const SYNC_STREAMS_PER_CONNECTION_MAX: usize = 16;
/// Largest encoded `SyncRequest` frame (a request is a chain id and two integers).
pub const SYNC_REQUEST_BYTES_MAX: usize = 4096;
/// Time a sync request may take, both ways.
pub const SYNC_REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Room a gossip envelope takes beyond its data (topic and protobuf framing; messages carry
/// no author or signature): gossipsub's `max_transmit_size` is `message_bytes_max` plus this.
pub const GOSSIP_ENVELOPE_BYTES: usize = 4096;
/// Gossipsub heartbeat.
pub const GOSSIP_HEARTBEAT_MS: u64 = 500;
/// Heartbeats a received message stays available for validation and forwarding (5 s).
pub const GOSSIP_HISTORY_HEARTBEATS: usize = 10;
/// First wait before a bootstrap peer that is not connected is dialled again; doubles each time.
pub const BOOTSTRAP_REDIAL_MS: u64 = 1_000;
/// Longest wait between two dials of one bootstrap peer.
pub const BOOTSTRAP_REDIAL_MAX_MS: u64 = 30_000;
/// Time `Net::start` waits for each listen address to be bound.
pub const LISTEN_TIMEOUT_MS: u64 = 5_000;
/// Time a connection with no protocol in use stays open.
pub const IDLE_CONNECTION_TIMEOUT_MS: u64 = 60_000;
/// Interval between two Kademlia walks that look for peers not connected yet.
pub const DISCOVERY_INTERVAL_MS: u64 = 10_000;
/// Peer addresses kept per Kademlia bucket entry and learned from one identify message.
pub const DISCOVERY_ADDRS_PER_PEER_MAX: usize = 8;
/// Connections kept to one peer (two, so simultaneous dials in both directions both settle).
pub const CONNECTIONS_PER_PEER_MAX: u32 = 2;

/// A token bucket per peer: `rate_per_s` tokens a second, at most `rate_per_s` saved up.
///
/// Counts in thousandths of a token so the refill needs no floating point.
#[derive(Debug)]
pub struct RateLimiter<K> {
    rate_per_s: u64,
    buckets: HashMap<K, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli_tokens: u64,
    refilled_at: Instant,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter allowing `rate_per_s` messages a second per peer (and bursts of as many).
    pub fn new(rate_per_s: u32) -> Self {
        assert!(rate_per_s > 0, "a rate of zero is refused when the configuration is checked");
        Self { rate_per_s: u64::from(rate_per_s), buckets: HashMap::new() }
    }

    /// Takes one token from `peer`'s bucket; false when it is empty.
    pub fn allow(&mut self, peer: &K, now: Instant) -> bool {
        let capacity = self.rate_per_s * 1000;
        let bucket = self.buckets.entry(peer.clone()).or_insert(Bucket { milli_tokens: capacity, refilled_at: now });
        let elapsed_ms =
            u64::try_from(now.saturating_duration_since(bucket.refilled_at).as_millis()).unwrap_or(u64::MAX);
        if elapsed_ms > 0 {
            let refill = elapsed_ms.saturating_mul(self.rate_per_s);
            bucket.milli_tokens = bucket.milli_tokens.saturating_add(refill).min(capacity);
            bucket.refilled_at = now;
        }
        if bucket.milli_tokens < 1000 {
            return false;
        }
        bucket.milli_tokens -= 1000;
        true
    }

    /// Forgets `peer` (called when it disconnects, so the map holds connected peers only).
    pub fn remove(&mut self, peer: &K) {
        self.buckets.remove(peer);
    }

    /// Peers with a bucket.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True when no peer has a bucket.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_up_to_the_rate_then_refuse_until_refilled() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(10);
        let allowed = (0..25).filter(|_| limiter.allow(&"p", start)).count();
        assert_eq!(allowed, 10);
        assert!(!limiter.allow(&"p", start + Duration::from_millis(50)), "half a token is not a token");
        assert!(limiter.allow(&"p", start + Duration::from_millis(100)));
        let later = start + Duration::from_secs(60);
        let allowed = (0..25).filter(|_| limiter.allow(&"p", later)).count();
        assert_eq!(allowed, 10, "savings are capped at one second of rate");
    }

    #[test]
    fn peers_have_separate_buckets_and_are_forgotten() {
        let now = Instant::now();
        let mut limiter = RateLimiter::new(1);
        assert!(limiter.allow(&"a", now));
        assert!(!limiter.allow(&"a", now));
        assert!(limiter.allow(&"b", now));
        limiter.remove(&"a");
        assert_eq!(limiter.len(), 1);
        assert!(limiter.allow(&"a", now), "a forgotten peer starts with a full bucket");
    }
}
