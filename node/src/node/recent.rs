//! Answer "what did this chain do lately": summaries of its newest committed blocks.
//!
//! The dashboard's block list and its block-time and tx/s charts need many blocks'
//! heights, times and transaction counts at once; one request for a bounded range
//! costs the block reader (off the loop, `reader`) one store read and one chain-type
//! `decode` per block, without decoding the transactions themselves.

use nest_sdk::{Hash32, PublicKey};
use serde::{Deserialize, Serialize};

/// Most block summaries in one answer.
pub const BLOCK_SUMMARIES_MAX: usize = 256;

/// A committed block, without its transactions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlockSummary {
    /// Height.
    pub height: u64,
    /// Block hash.
    pub hash: Hash32,
    /// Timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Proposer's node key.
    pub proposer: PublicKey,
    /// Number of transactions.
    pub tx_count: usize,
    /// Size of the consensus certificate.
    pub certificate_bytes: usize,
    /// Size of the finality proof (0 when the engine gave none).
    pub finality_bytes: usize,
}

/// A chain's newest committed blocks and how far its fork choice reaches.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecentBlocks {
    /// Chain id.
    pub chain: String,
    /// Height of the last committed (final) block.
    pub final_height: u64,
    /// Height of the head fork choice picked: the final block or an agreed unit above it.
    pub best_height: u64,
    /// Committed blocks, newest first.
    pub blocks: Vec<BlockSummary>,
}

/// The heights to summarize, newest first: at most `limit` (and
/// [`BLOCK_SUMMARIES_MAX`]) ending at `to_height`, or at the final height when it is
/// absent or above it.
pub fn heights_newest_first(final_height: u64, to_height: Option<u64>, limit: usize) -> impl Iterator<Item = u64> {
    let top = to_height.map_or(final_height, |to| to.min(final_height));
    let count = limit.min(BLOCK_SUMMARIES_MAX) as u64;
    (top.saturating_sub(count.saturating_sub(1))..=top).rev().take(count as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heights(final_height: u64, to_height: Option<u64>, limit: usize) -> Vec<u64> {
        heights_newest_first(final_height, to_height, limit).collect()
    }

    #[test]
    fn heights_run_newest_first_from_the_final_height_down_to_genesis_at_most() {
        assert_eq!(heights(10, None, 3), vec![10, 9, 8]);
        assert_eq!(heights(2, None, 10), vec![2, 1, 0]);
        assert_eq!(heights(0, None, 5), vec![0]);
        assert_eq!(heights(10, None, 0), Vec::<u64>::new());
    }

    #[test]
    fn heights_end_at_to_height_but_never_above_the_final_height() {
        assert_eq!(heights(10, Some(4), 2), vec![4, 3]);
        assert_eq!(heights(10, Some(99), 2), vec![10, 9]);
    }

    #[test]
    fn heights_are_bounded_by_the_summaries_max() {
        assert_eq!(heights(10_000, None, usize::MAX).len(), BLOCK_SUMMARIES_MAX);
    }
}
