//! What the engine puts on the wire, in commit certificates and in evidence (all borsh).

use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{Hash32, Host, PublicKey, Signature};

/// Domain prefix of the message a proposer signs.
pub const PROPOSAL_DOMAIN: &[u8] = b"nest/bft/proposal/v1";
pub use nest_sdk::certificate::VOTE_DOMAIN;

pub use nest_sdk::certificate::{DoubleVote as DoubleVoteProof, Vote, VoteKind};

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

/// Whether a vote's signature verifies, checked by the host.
pub fn vote_verifies(vote: &Vote, host: &Host) -> bool {
    vote.verifies(|key, message, signature| host.verify(key, message, signature))
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
