//! What the engine puts on the wire and in certificates and evidence (all borsh).

use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{Hash32, Host, PublicKey, Signature};

/// Domain prefix of the message a slot leader signs to seal a unit.
pub const SEAL_DOMAIN: &[u8] = b"nest/poa/seal/v1";
/// Domain prefix of the message an authority signs to vote for a unit.
pub const VOTE_DOMAIN: &[u8] = b"nest/poa/vote/v1";

/// A consensus message between PoA nodes.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum PoaMessage {
    /// A unit sealed by the leader of `slot`.
    Block {
        /// The slot the unit was proposed in.
        slot: u64,
        /// The unit, in the chain type's encoding.
        unit: Vec<u8>,
        /// The leader's seal over `slot` and the unit's digest ([`seal_message`]).
        signature: Signature,
    },
    /// An authority vouches for the unit its fork choice holds as head at `height`; it
    /// votes at most once per height.
    Vote {
        /// Height of the unit.
        height: u64,
        /// The unit's hash (the chain type's).
        unit_hash: Hash32,
        /// The voting authority.
        voter: PublicKey,
        /// The voter's signature over [`vote_message`].
        signature: Signature,
    },
    /// A [`PoaMessage::Vote`] sent again while finality stalls. `sent_ms` only makes its
    /// bytes differ from every earlier sending: gossip drops a message whose bytes it has
    /// already seen, so an identical copy would never reach a peer that missed it.
    VoteAgain {
        /// Height of the unit.
        height: u64,
        /// The unit's hash (the chain type's).
        unit_hash: Hash32,
        /// The voting authority.
        voter: PublicKey,
        /// The voter's signature over [`vote_message`].
        signature: Signature,
        /// When the sender sent it again, in milliseconds since the Unix epoch.
        sent_ms: u64,
    },
}

/// The certificate of a committed unit: who sealed it, for which slot.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Seal {
    /// The slot the unit was proposed in.
    pub slot: u64,
    /// The slot leader.
    pub signer: PublicKey,
    /// The signature over [`seal_message`].
    pub signature: Signature,
}

/// A seal and the digest (`host.hash(unit bytes)`) it covers.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SealedDigest {
    /// The seal.
    pub seal: Seal,
    /// SHA-256 of the unit bytes.
    pub unit_digest: Hash32,
}

/// Proof that a leader sealed two different units for one slot: the bytes of
/// [`nest_sdk::Effect::Evidence`].
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct EquivocationProof {
    /// The seal seen first.
    pub first: SealedDigest,
    /// The conflicting seal.
    pub second: SealedDigest,
}

/// The bytes a leader signs: `b"nest/poa/seal/v1" ++ slot (u64 LE) ++ unit_digest`.
pub fn seal_message(slot: u64, unit_digest: &Hash32) -> Vec<u8> {
    let mut message = Vec::with_capacity(SEAL_DOMAIN.len() + 8 + Hash32::LEN);
    message.extend_from_slice(SEAL_DOMAIN);
    message.extend_from_slice(&slot.to_le_bytes());
    message.extend_from_slice(unit_digest.as_bytes());
    message
}

/// The bytes an authority signs to vote: `b"nest/poa/vote/v1" ++ height (u64 LE) ++ unit_hash`.
pub fn vote_message(height: u64, unit_hash: &Hash32) -> Vec<u8> {
    let mut message = Vec::with_capacity(VOTE_DOMAIN.len() + 8 + Hash32::LEN);
    message.extend_from_slice(VOTE_DOMAIN);
    message.extend_from_slice(&height.to_le_bytes());
    message.extend_from_slice(unit_hash.as_bytes());
    message
}

/// Proof that an authority voted for two different units at one height: the bytes of
/// [`nest_sdk::Effect::Evidence`].
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct DoubleVoteProof {
    /// The voter.
    pub voter: PublicKey,
    /// The height voted at twice.
    pub height: u64,
    /// The first unit and signature seen.
    pub first: (Hash32, Signature),
    /// The conflicting unit and signature.
    pub second: (Hash32, Signature),
}

/// Proof that a unit is final: a quorum of authorities' votes for it at its height.
/// Stored with the final block (`Effect::Certify`) and served with it by sync, so that a
/// node that missed the votes learns them and reaches the same final unit.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct FinalityProof {
    /// Height of the unit.
    pub height: u64,
    /// The unit's hash (the chain type's).
    pub unit_hash: Hash32,
    /// Distinct voters and their signatures over [`vote_message`]`(height, unit_hash)`.
    pub votes: Vec<(PublicKey, Signature)>,
}

impl SealedDigest {
    /// Whether the seal's signature verifies over its slot and digest.
    pub fn verifies(&self, host: &Host) -> bool {
        let message = seal_message(self.seal.slot, &self.unit_digest);
        host.verify(&self.seal.signer, &message, &self.seal.signature)
    }
}

impl EquivocationProof {
    /// Whether the proof holds: one signer, one slot, two digests, both seals valid.
    pub fn verifies(&self, host: &Host) -> bool {
        self.first.seal.signer == self.second.seal.signer
            && self.first.seal.slot == self.second.seal.slot
            && self.first.unit_digest != self.second.unit_digest
            && self.first.verifies(host)
            && self.second.verifies(host)
    }
}

/// The signatures the engine verifies to accept `bytes`, for the host to verify off the
/// loop ([`nest_sdk::ConsensusEngine::message_signatures`]): a vote's. A block's seal is
/// not listed: whose it must be depends on the slot's leader, which only the engine's
/// configuration knows, and there is one block per slot.
pub fn message_signatures(bytes: &[u8]) -> Vec<nest_sdk::SignedBytes> {
    let vote = |height: u64, unit_hash: Hash32, voter: PublicKey, signature: Signature| {
        let message = nest_sdk::RVec::from(vote_message(height, &unit_hash));
        vec![nest_sdk::SignedBytes { key: voter, message, signature }]
    };
    match borsh::from_slice::<PoaMessage>(bytes) {
        Ok(PoaMessage::Vote { height, unit_hash, voter, signature }) => vote(height, unit_hash, voter, signature),
        Ok(PoaMessage::VoteAgain { height, unit_hash, voter, signature, .. }) => {
            vote(height, unit_hash, voter, signature)
        }
        Ok(PoaMessage::Block { .. }) | Err(_) => Vec::new(),
    }
}
