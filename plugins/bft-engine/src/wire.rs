//! What the engine puts on the wire, in commit certificates and in evidence (all borsh).

use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{Hash32, Host, PublicKey, RVec, Signature, SignedBytes};

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

/// Most signatures listed for one message. A certificate with more is refused by the
/// engine's cheap count check before any signature is verified, so listing them would
/// only let a peer buy verification work with one message.
pub const LISTED_SIGNATURES_MAX: usize = 256;

/// The signatures the engine verifies to accept `bytes`, for the host to verify off the
/// loop ([`nest_sdk::ConsensusEngine::message_signatures`]); none for bytes that do not
/// decode (the engine rejects them without verifying anything).
pub fn message_signatures(bytes: &[u8], host: &Host) -> Vec<SignedBytes> {
    let Ok(envelope) = borsh::from_slice::<Envelope>(bytes) else { return Vec::new() };
    let signed = |key: PublicKey, message: Vec<u8>, signature: Signature| SignedBytes {
        key,
        message: RVec::from(message),
        signature,
    };
    match envelope.body {
        Body::Proposal(proposal) => {
            let value = host.hash(&proposal.unit);
            let message = proposal_message(proposal.height, proposal.round, proposal.valid_round, &value);
            vec![signed(proposal.proposer, message, proposal.signature)]
        }
        Body::Vote(vote) => vec![signed(vote.validator, vote.message(), vote.signature)],
        Body::ProposalSeen(seen) => {
            let message = proposal_message(seen.height, seen.round, seen.valid_round, &seen.value);
            vec![signed(seen.proposer, message, seen.signature)]
        }
        Body::Decided { certificate, .. } if certificate.signatures.len() <= LISTED_SIGNATURES_MAX => {
            let message =
                nest_sdk::certificate::precommit_message(certificate.height, certificate.round, &certificate.value);
            certificate.signatures.into_iter().map(|(key, signature)| signed(key, message.clone(), signature)).collect()
        }
        Body::Decided { .. } => Vec::new(),
    }
}
