//! Recently asked-for blocks, answered without reading them again.
//!
//! A committed block never changes, so its API view can be kept once built. A client
//! that polls the newest blocks (an explorer, the dashboard) or hammers one height is
//! answered from here; only a height not asked for recently costs the block reader a
//! store read, a decode and a certificate check (on the blocking pool, off the node
//! loop), and the per-client rate limit bounds those.

use crate::node::BlockView;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// Block views kept at most; the least recently used goes first.
pub const BLOCK_VIEWS_CACHED_MAX: usize = 256;
/// Transactions a kept view may list: a view of a larger block is not kept (it would
/// pin megabytes for one block).
const CACHED_VIEW_TXS_MAX: usize = 2_000;

struct Entry {
    view: Arc<BlockView>,
    used: u64,
}

/// Kept views by chain and height, and the use clock that orders them.
#[derive(Default)]
struct Kept {
    entries: HashMap<(String, u64), Entry>,
    clock: u64,
}

/// Views by chain and height.
#[derive(Default)]
pub struct BlockCache {
    kept: Mutex<Kept>,
}

impl BlockCache {
    /// The view of `chain`'s block at `height`, if kept.
    pub fn get(&self, chain: &str, height: u64) -> Option<Arc<BlockView>> {
        let mut kept = self.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        kept.clock += 1;
        let clock = kept.clock;
        let entry = kept.entries.get_mut(&(chain.to_string(), height))?;
        entry.used = clock;
        Some(entry.view.clone())
    }

    /// Keeps a committed block's view (unless it lists too many transactions).
    pub fn put(&self, chain: &str, view: Arc<BlockView>) {
        if view.txs.len() > CACHED_VIEW_TXS_MAX {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        kept.clock += 1;
        let used = kept.clock;
        if kept.entries.len() >= BLOCK_VIEWS_CACHED_MAX
            && let Some(oldest) = kept.entries.iter().min_by_key(|(_, entry)| entry.used).map(|(key, _)| key.clone())
        {
            kept.entries.remove(&oldest);
        }
        kept.entries.insert((chain.to_string(), view.header.height), Entry { view, used });
    }

    /// Views kept now.
    pub fn len(&self) -> usize {
        self.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).entries.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nest_sdk::{Hash32, PublicKey};

    fn view(height: u64) -> Arc<BlockView> {
        Arc::new(BlockView {
            header: crate::node::HeaderView {
                height,
                hash: Hash32([height as u8; 32]),
                parent: Hash32::ZERO,
                timestamp_ms: 0,
                proposer: PublicKey([1; 32]),
                tx_root: Hash32::ZERO,
                tx_count: 0,
                state_digest: Hash32::ZERO,
                certificate: String::new(),
                finality: String::new(),
            },
            commit: None,
            round: None,
            tx_hashes: Vec::new(),
            txs: Vec::new(),
        })
    }

    #[test]
    fn keeps_the_most_recently_used_views_within_the_bound() {
        let cache = BlockCache::default();
        for height in 0..BLOCK_VIEWS_CACHED_MAX as u64 {
            cache.put("main", view(height));
        }
        assert!(cache.get("main", 0).is_some(), "height 0 is now the most recently used");
        cache.put("main", view(1_000));
        assert_eq!(cache.len(), BLOCK_VIEWS_CACHED_MAX);
        assert!(cache.get("main", 1).is_none(), "the least recently used went");
        assert!(cache.get("main", 0).is_some());
        assert_eq!(cache.get("main", 1_000).map(|view| view.header.height), Some(1_000));
        assert!(cache.get("other", 0).is_none(), "chains are apart");
    }
}
