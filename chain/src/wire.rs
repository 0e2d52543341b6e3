//! What the runtime exchanges with the network edge: blocks as peers sync them, and its
//! verdict on a gossip message. The network crate carries them; they live here so that
//! the runtime needs no network code.

/// One committed block as sync carries it.
#[derive(borsh::BorshSerialize, borsh::BorshDeserialize, Clone, Debug, PartialEq, Eq)]
pub struct SyncBlock {
    /// Height.
    pub height: u64,
    /// The unit bytes as the chain type encodes them.
    pub unit: Vec<u8>,
    /// The commit certificate as the consensus engine encodes it.
    pub certificate: Vec<u8>,
    /// The proof that the block is final, as the consensus engine encodes it (empty
    /// when the serving node has none).
    pub finality: Vec<u8>,
}

/// What the node decided about a gossip message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: forward it to other peers.
    Accept,
    /// Invalid: drop it and lower the sender's score.
    Reject,
    /// Not useful (e.g. stale) but not malicious: drop it without penalty.
    Ignore,
}

impl Verdict {
    /// The verdict's name in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Reject => "reject",
            Verdict::Ignore => "ignore",
        }
    }
}
