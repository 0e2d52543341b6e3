//! What the engine puts on the wire, in commit certificates and in evidence (all borsh).

use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{Hash32, Host, PublicKey, Signature};

/// Domain prefix of the message a proposer signs.
pub const PROPOSAL_DOMAIN: &[u8] = b"nest/bft/proposal/v1";
pub use nest_sdk::certificate::VOTE_DOMAIN;

/// The two voting steps of a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub enum VoteKind {
    /// The first vote of a round: the proposal is acceptable (or nil).
    Prevote,
    /// The second: 2f+1 prevoted the value (or nil); 2f+1 precommits decide.
    Precommit,
}

impl VoteKind {
    /// The name operators read.
    pub fn name(self) -> &'static str {
        match self {
            VoteKind::Prevote => "prevote",
            VoteKind::Precommit => "precommit",
        }
    }

    fn tag(self) -> u8 {
        match self {
            VoteKind::Prevote => nest_sdk::certificate::PREVOTE_TAG,
            VoteKind::Precommit => nest_sdk::certificate::PRECOMMIT_TAG,
        }
    }
}

/// A signed prevote or precommit.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Vote {
    /// Prevote or precommit.
    pub kind: VoteKind,
    /// The height voted at.
    pub height: u64,
    /// The round voted in.
    pub round: u32,
    /// The value (`host.hash(unit bytes)`), or `None` for nil.
    pub value: Option<Hash32>,
    /// The voting validator.
    pub validator: PublicKey,
    /// Its signature over [`vote_message`].
    pub signature: Signature,
}

impl Vote {
    /// Whether the signature verifies against the validator's key.
    pub fn verifies(&self, host: &Host) -> bool {
        let message = vote_message(self.kind, self.height, self.round, self.value.as_ref());
        host.verify(&self.validator, &message, &self.signature)
    }
}

/// A signed proposal: the round's proposer offers `unit`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    /// The height proposed at.
    pub height: u64,
    /// The round proposed in.
    pub round: u32,
    /// The round in which 2f+1 prevoted this unit (the proposer's validRound), or `None`
    /// for a new unit (the pseudo-code's −1).
    pub valid_round: Option<u32>,
    /// The unit, in the chain type's encoding.
    pub unit: Vec<u8>,
    /// The proposer.
    pub proposer: PublicKey,
    /// Its signature over [`proposal_message`] of the unit's digest.
    pub signature: Signature,
}

/// What travels between validators.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Body {
    /// A proposal.
    Proposal(Proposal),
    /// A prevote or precommit.
    Vote(Vote),
    /// A decided unit and its certificate, sent to a validator still voting at that
    /// height (its messages arrive after the others moved on).
    Decided {
        /// The unit, in the chain type's encoding.
        unit: Vec<u8>,
        /// The 2f+1 precommits that decided it.
        certificate: CommitCertificate,
    },
}

/// A consensus message: `sent_ms` makes a message sent again differ in bytes from its
/// earlier sending, which gossip would otherwise drop as already seen.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Envelope {
    /// When the sender sent it, in milliseconds since the Unix epoch.
    pub sent_ms: u64,
    /// The message.
    pub body: Body,
}

pub use nest_sdk::certificate::CommitCertificate;

/// Proof that a validator signed two different votes of one kind at one height and
/// round: the bytes of `Effect::Evidence`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct DoubleVoteProof {
    /// The vote seen first.
    pub first: Vote,
    /// The conflicting vote.
    pub second: Vote,
}

impl DoubleVoteProof {
    /// Whether the proof holds: one validator, height, round and kind; two values; both signed.
    pub fn verifies(&self, host: &Host) -> bool {
        let (a, b) = (&self.first, &self.second);
        a.validator == b.validator
            && (a.kind, a.height, a.round) == (b.kind, b.height, b.round)
            && a.value != b.value
            && a.verifies(host)
            && b.verifies(host)
    }
}

/// A proposal's signed facts without its unit.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedProposal {
    /// The height.
    pub height: u64,
    /// The round.
    pub round: u32,
    /// The valid round it carried.
    pub valid_round: Option<u32>,
    /// The unit's digest.
    pub value: Hash32,
    /// The proposer.
    pub proposer: PublicKey,
    /// Its signature over [`proposal_message`].
    pub signature: Signature,
}

impl SignedProposal {
    /// Whether the signature verifies.
    pub fn verifies(&self, host: &Host) -> bool {
        let message = proposal_message(self.height, self.round, self.valid_round, &self.value);
        host.verify(&self.proposer, &message, &self.signature)
    }
}

/// Proof that a proposer signed two different proposals for one height and round.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct DoubleProposalProof {
    /// The proposal seen first.
    pub first: SignedProposal,
    /// The conflicting proposal.
    pub second: SignedProposal,
}

impl DoubleProposalProof {
    /// Whether the proof holds: one proposer, height and round; two proposals; both signed.
    pub fn verifies(&self, host: &Host) -> bool {
        let (a, b) = (&self.first, &self.second);
        a.proposer == b.proposer
            && (a.height, a.round) == (b.height, b.round)
            && (a.value, a.valid_round) != (b.value, b.valid_round)
            && a.verifies(host)
            && b.verifies(host)
    }
}

/// The bytes a validator signs to vote (the SDK's format, which certificates use).
pub fn vote_message(kind: VoteKind, height: u64, round: u32, value: Option<&Hash32>) -> Vec<u8> {
    nest_sdk::certificate::vote_message(kind.tag(), height, round, value)
}

/// The bytes a proposer signs: `b"nest/bft/proposal/v1" ++ height (u64 LE) ++ round (u32
/// LE) ++ 0 for no valid round, or 1 ++ valid round (u32 LE) ++ the unit's digest`.
pub fn proposal_message(height: u64, round: u32, valid_round: Option<u32>, value: &Hash32) -> Vec<u8> {
    let mut message = Vec::with_capacity(PROPOSAL_DOMAIN.len() + 8 + 4 + 5 + Hash32::LEN);
    message.extend_from_slice(PROPOSAL_DOMAIN);
    message.extend_from_slice(&height.to_le_bytes());
    message.extend_from_slice(&round.to_le_bytes());
    match valid_round {
        None => message.push(0),
        Some(valid_round) => {
            message.push(1);
            message.extend_from_slice(&valid_round.to_le_bytes());
        }
    }
    message.extend_from_slice(value.as_bytes());
    message
}
