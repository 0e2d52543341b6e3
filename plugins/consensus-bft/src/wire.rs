//! What the engine puts on the wire, in commit certificates and in evidence (all borsh).

use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{Hash32, Host, PublicKey, Signature};

pub use nest_sdk::certificate::{
    DoubleProposal as DoubleProposalProof, DoubleVote as DoubleVoteProof, Offence, PROPOSAL_DOMAIN, SignedProposal,
    VOTE_DOMAIN, Vote, VoteKind, proposal_message,
};

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
    /// The signed facts of a proposal a validator received, without its unit: others
    /// compare them with the proposal they hold, so a proposer that showed different
    /// proposals to different validators is caught (evidence) wherever its proposals
    /// did not both travel.
    ProposalSeen(SignedProposal),
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

/// The bytes a validator signs to vote (the SDK's format, which certificates use).
pub fn vote_message(kind: VoteKind, height: u64, round: u32, value: Option<&Hash32>) -> Vec<u8> {
    nest_sdk::certificate::vote_message(kind.tag(), height, round, value)
}

/// Whether a proposal's signature verifies, checked by the host.
pub fn proposal_verifies(proposal: &SignedProposal, host: &Host) -> bool {
    proposal.verifies(|key, message, signature| host.verify(key, message, signature))
}

/// Whether a vote's signature verifies, checked by the host.
pub fn vote_verifies(vote: &Vote, host: &Host) -> bool {
    vote.verifies(|key, message, signature| host.verify(key, message, signature))
}
