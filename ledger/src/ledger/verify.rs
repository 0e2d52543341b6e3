//! Verify transaction signatures across the cores and remember which ids passed.
//!
//! A signature is checked once per node, at admission: [`verify_batch`] spreads a batch
//! over the available cores, and [`VerifiedCache`] remembers the ids that passed so a
//! transaction seen again (gossip, then a block) is not checked twice. The id covers the
//! signature, so a copy with a different signature is a different entry.

use super::tx::SignedTx;
use nest_sdk::Hash32;
use std::collections::{HashSet, VecDeque};
use std::num::NonZeroUsize;

/// Batches smaller than this are verified on the calling thread.
pub const PARALLEL_BATCH_MIN: usize = 64;

/// Whether each transaction's signature is valid, in input order.
pub fn verify_batch(txs: &[SignedTx]) -> Vec<bool> {
    let threads = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    if txs.len() < PARALLEL_BATCH_MIN || threads == 1 {
        return txs.iter().map(SignedTx::verify_signature).collect();
    }
    let chunk_len = txs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = txs
            .chunks(chunk_len)
            .map(|chunk| scope.spawn(move || chunk.iter().map(SignedTx::verify_signature).collect::<Vec<_>>()))
            .collect();
        workers.into_iter().flat_map(|worker| worker.join().expect("signature verification does not panic")).collect()
    })
}

/// A bounded set of transaction ids whose signature verified; the oldest is evicted
/// first when full.
#[derive(Debug)]
pub struct VerifiedCache {
    entries_max: usize,
    entries: HashSet<Hash32>,
    order: VecDeque<Hash32>,
}

impl VerifiedCache {
    /// An empty cache holding at most `entries_max` ids (0 caches nothing).
    pub fn new(entries_max: usize) -> VerifiedCache {
        VerifiedCache { entries_max, entries: HashSet::new(), order: VecDeque::new() }
    }

    /// Records that `hash` verified; returns whether it was new.
    pub fn insert(&mut self, hash: Hash32) -> bool {
        if self.entries_max == 0 || self.entries.contains(&hash) {
            return false;
        }
        while self.order.len() >= self.entries_max {
            if let Some(oldest) = self.order.pop_front() {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(hash);
        self.order.push_back(hash);
        true
    }

    /// Whether `hash` is known to have verified.
    pub fn contains(&self, hash: &Hash32) -> bool {
        self.entries.contains(hash)
    }

    /// Number of ids held.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The most ids the cache holds.
    pub fn entries_max(&self) -> usize {
        self.entries_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;
    use crate::ledger::tx::{TxBody, UnsignedTx};
    use nest_sdk::PublicKey;

    fn signed(count: usize) -> Vec<SignedTx> {
        let keys: Vec<SecretKey> = (0..4u8).map(|i| SecretKey::from_seed([i; 32])).collect();
        (0..count)
            .map(|i| {
                let key = &keys[i % keys.len()];
                UnsignedTx {
                    chain: Hash32([1; 32]),
                    from: key.public_key(),
                    nonce: i as u64,
                    fee: 1_000,
                    body: TxBody::Transfer { to: PublicKey([2; 32]), amount: 1 },
                }
                .sign(key)
            })
            .collect()
    }

    #[test]
    fn batch_flags_exactly_the_bad_signatures() {
        for count in [0, 1, 10, PARALLEL_BATCH_MIN, 301] {
            let mut txs = signed(count);
            let bad: Vec<usize> = (0..count).filter(|i| i % 37 == 5).collect();
            for &i in &bad {
                txs[i].signature.0[10] ^= 0x40;
            }
            let results = verify_batch(&txs);
            assert_eq!(results.len(), count);
            for (i, ok) in results.iter().enumerate() {
                assert_eq!(*ok, !bad.contains(&i), "{count} txs, #{i}");
            }
        }
    }

    #[test]
    fn cache_evicts_oldest_first_and_stays_bounded() {
        let mut cache = VerifiedCache::new(3);
        let hash = |i: u8| Hash32([i; 32]);
        for i in 0..3 {
            assert!(cache.insert(hash(i)));
        }
        assert!(!cache.insert(hash(1)), "already present");
        assert!(cache.insert(hash(3)));
        assert_eq!(cache.len(), 3);
        assert!(!cache.contains(&hash(0)));
        assert!((1..=3).all(|i| cache.contains(&hash(i))));
    }

    #[test]
    fn zero_capacity_cache_holds_nothing() {
        let mut cache = VerifiedCache::new(0);
        assert!(!cache.insert(Hash32([1; 32])));
        assert!(cache.is_empty());
    }
}
