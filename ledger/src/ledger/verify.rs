//! Verify transaction signatures across the cores and remember which ids passed.
//!
//! A signature is checked once per node, at admission: [`verify_batch`] spreads a batch
//! over the available cores, each core checking its share in batches of
//! [`BATCH_VERIFY_TXS`] signatures with one equation ([`crypto::verify_batch`]); a batch
//! that fails is checked again one signature at a time, so the verdict of each
//! transaction is the verdict of [`SignedTx::verify_signature`]. [`VerifiedCache`]
//! remembers the ids that passed so a transaction seen again (gossip, then a block) is not
//! checked twice. The id covers the signature, so a copy with a different signature is a
//! different entry.

use super::tx::SignedTx;
use crate::crypto;
use nest_sdk::Hash32;
use rayon::prelude::*;
use std::collections::{HashSet, VecDeque};

/// Batches smaller than this are verified on the calling thread.
pub const PARALLEL_BATCH_MIN: usize = 64;

/// Most signatures checked by one batch equation. A batch holding a bad signature is
/// checked again one by one, so this bounds the work one bad signature can waste. On one
/// core of the reference machine, from distinct keys: one by one ~25 000/s; batches of 16
/// to 64 ~45 000/s; 128 ~52 000/s; 512 ~58 000/s.
pub const BATCH_VERIFY_TXS: usize = 64;

/// Fewest signatures worth a batch equation; fewer are checked one by one.
pub const BATCH_VERIFY_TXS_MIN: usize = 4;

/// Whether each transaction's signature is valid, in input order.
///
/// The shares run on rayon's pool of long-lived threads, one per core: a thread spawned
/// per call (as this did first) faulted in a fresh stack and allocator arena every time,
/// 16 % of the nodes' CPU in `nestd bench --nodes 4 --consensus bft` (perf).
pub fn verify_batch(txs: &[SignedTx]) -> Vec<bool> {
    let threads = rayon::current_num_threads();
    if txs.len() < PARALLEL_BATCH_MIN || threads == 1 {
        return verify_here(txs);
    }
    let chunk_len = txs.len().div_ceil(threads);
    txs.par_chunks(chunk_len).flat_map_iter(verify_here).collect()
}

/// Whether each transaction's signature is valid, in input order, checked on the calling
/// thread in batches of [`BATCH_VERIFY_TXS`].
pub fn verify_here(txs: &[SignedTx]) -> Vec<bool> {
    let mut verdicts = Vec::with_capacity(txs.len());
    for batch in txs.chunks(BATCH_VERIFY_TXS) {
        if batch.len() < BATCH_VERIFY_TXS_MIN {
            verdicts.extend(batch.iter().map(SignedTx::verify_signature));
            continue;
        }
        let messages: Vec<Hash32> = batch.iter().map(|tx| tx.tx.signing_hash()).collect();
        let items = || batch.iter().zip(&messages).map(|(tx, message)| (&tx.tx.from, &message.0[..], &tx.signature));
        if crypto::verify_batch(items()) {
            verdicts.extend(std::iter::repeat_n(true, batch.len()));
        } else {
            verdicts.extend(items().map(|(key, message, signature)| crypto::verify(key, message, signature)));
        }
    }
    verdicts
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

    /// Spoils the signature of `tx` in one of four ways, chosen by `how`.
    fn spoil(tx: &mut SignedTx, how: usize) {
        match how % 4 {
            0 => tx.signature.0[3] ^= 0x01,       // R
            1 => tx.signature.0[40] ^= 0x80,      // s
            2 => tx.signature.0[32..].fill(0xff), // s not canonical (above the group order)
            _ => tx.tx.nonce += 1,                // the signed content changed
        }
    }

    #[test]
    fn one_bad_signature_anywhere_in_a_batch_is_exactly_the_one_reported() {
        let clean = signed(BATCH_VERIFY_TXS * 2 + 5);
        assert!(verify_here(&clean).into_iter().all(|ok| ok));
        for position in 0..clean.len() {
            let mut txs = clean.clone();
            spoil(&mut txs[position], position);
            let expected: Vec<bool> = (0..txs.len()).map(|i| i != position).collect();
            assert_eq!(verify_here(&txs), expected, "bad signature at #{position}");
            assert_eq!(verify_batch(&txs), expected, "bad signature at #{position}, across the cores");
        }
    }

    /// Transfers signed once for the property test, from 16 keys.
    fn pool() -> &'static [SignedTx] {
        static POOL: std::sync::OnceLock<Vec<SignedTx>> = std::sync::OnceLock::new();
        POOL.get_or_init(|| {
            let keys: Vec<SecretKey> = (0..16u8).map(|i| SecretKey::from_seed([i + 100; 32])).collect();
            (0..300)
                .map(|i: usize| {
                    let key = &keys[i * 7 % keys.len()];
                    UnsignedTx {
                        chain: Hash32([3; 32]),
                        from: key.public_key(),
                        nonce: i as u64,
                        fee: 1_000 + i as u64,
                        body: TxBody::Transfer { to: PublicKey([i as u8; 32]), amount: 7 },
                    }
                    .sign(key)
                })
                .collect()
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        #[test]
        fn batch_verdicts_equal_single_verification(
            start in 0usize..300,
            len in 0usize..300,
            spoiled in proptest::collection::btree_map(0usize..300, 0usize..4, 0..6),
        ) {
            let pool = pool();
            let mut txs: Vec<SignedTx> = pool.iter().cycle().skip(start).take(len).cloned().collect();
            for (&index, &how) in &spoiled {
                if let Some(tx) = txs.get_mut(index) {
                    spoil(tx, how);
                }
            }
            let single: Vec<bool> = txs.iter().map(SignedTx::verify_signature).collect();
            let expected: Vec<bool> = (0..txs.len()).map(|i| !spoiled.contains_key(&i)).collect();
            proptest::prop_assert_eq!(&single, &expected);
            proptest::prop_assert_eq!(&verify_here(&txs), &single);
            proptest::prop_assert_eq!(&verify_batch(&txs), &single);
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
