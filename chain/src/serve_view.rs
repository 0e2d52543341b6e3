//! What a peer's block-sync request is answered from beyond the store: the chain's heads
//! and its agreed branch above the committed head, published by the node loop.

use crate::wire::SyncBlock;
use std::sync::Arc;

/// What the server needs of one chain beyond the store: its heads and the agreed branch
/// above the committed head (a peer that was partitioned away needs it to see this one).
#[derive(Clone, Debug, Default)]
pub struct ServeView {
    /// Height of the newest final block.
    pub committed_height: u64,
    /// Height of the head fork choice picked (final or not).
    pub tip_height: u64,
    /// The agreed, not final units above the committed head, in height order.
    pub tip_branch: Vec<SyncBlock>,
    /// The chain's validator sets by first height (for the block reader's certificate
    /// checks; empty for engines with their own authority list).
    pub validator_sets: Arc<Vec<nest_ledger::ledger::validators::ValidatorSet>>,
    /// A DPoS chain's parameters (the block reader shows each block's round).
    pub dpos: Option<nest_ledger::ledger::rounds::DposParams>,
}
