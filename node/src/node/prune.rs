//! Drop the committed blocks a chain's `keep_blocks` no longer keeps, a bounded batch per
//! loop turn, so that the loop stays responsive after a restart on a long chain.
//!
//! Committed blocks are final: no fork choice or agreement reads them again. What a
//! pruning node loses is the ability to serve them (sync, block queries) and to answer
//! a storage challenge for them (`node/poio.rs`), which is the point of the option for
//! a node that keeps no history. Genesis is always kept: a restart checks it.

use super::LoopState;
use std::collections::HashMap;

/// Most heights one loop turn prunes.
const PRUNE_HEIGHTS_PER_TURN_MAX: u64 = 1_024;

/// Per chain, the height below which blocks are pruned already (1: nothing yet).
#[derive(Default)]
pub struct Pruner {
    pruned_below: HashMap<String, u64>,
}

impl LoopState {
    /// Prunes each chain whose manifest entry sets `keep_blocks`.
    pub(super) fn prune_tick(&mut self) {
        for chain in &self.chains {
            let keep = self.manifest.chain.iter().find(|entry| entry.id == chain.id()).map_or(0, |e| e.keep_blocks);
            if keep == 0 {
                continue;
            }
            // Heights above `committed − keep` stay: the newest `keep` blocks.
            let below = chain.committed_height().saturating_add(1).saturating_sub(keep);
            let from = *self.pruner.pruned_below.get(chain.id()).unwrap_or(&1);
            if below <= from {
                continue;
            }
            let until = below.min(from.saturating_add(PRUNE_HEIGHTS_PER_TURN_MAX));
            match self.store.prune_blocks(chain.id(), from, until) {
                Ok(deleted) => {
                    if deleted > 0 {
                        tracing::debug!(chain = %chain.id(), from, until, deleted, "pruned blocks");
                    }
                    self.pruner.pruned_below.insert(chain.id().to_string(), until);
                }
                Err(error) => tracing::warn!(chain = %chain.id(), %error, "pruning blocks failed"),
            }
        }
    }
}
