//! Commit certificates: the proof that a validator set decided a unit, in one format that
//! engines, the host's block API, light clients and relays all read.
//!
//! A certificate holds precommits for one value (`host.hash(unit bytes)`) in one round
//! of one height, each a signature over [`precommit_message`]. It proves the decision
//! when its distinct signers are members of the height's validator set and hold more
//! than two thirds of its voting power ([`CommitCertificate::check`]).

use crate::consensus::Validator;
use crate::types::{Hash32, PublicKey, Signature};
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::BTreeSet;

/// Domain prefix of the message a validator signs to vote (prevote or precommit).
pub const VOTE_DOMAIN: &[u8] = b"nest/bft/vote/v1";
/// The vote-kind byte of a prevote in [`vote_message`].
pub const PREVOTE_TAG: u8 = 1;
/// The vote-kind byte of a precommit in [`vote_message`].
pub const PRECOMMIT_TAG: u8 = 2;

/// The two voting steps of a Tendermint-style round.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
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

    /// Its byte in [`vote_message`].
    pub fn tag(self) -> u8 {
        match self {
            VoteKind::Prevote => PREVOTE_TAG,
            VoteKind::Precommit => PRECOMMIT_TAG,
        }
    }
}

/// A signed prevote or precommit.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
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
    /// The bytes the validator signed.
    pub fn message(&self) -> Vec<u8> {
        vote_message(self.kind.tag(), self.height, self.round, self.value.as_ref())
    }

    /// Whether the signature verifies, with `verify` doing the Ed25519 check.
    pub fn verifies(&self, verify: impl Fn(&PublicKey, &[u8], &Signature) -> bool) -> bool {
        verify(&self.validator, &self.message(), &self.signature)
    }
}

/// Proof that a validator signed two different votes of one kind at one height and
/// round: what an engine reports as evidence, and what the ledger records once per
/// offence.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct DoubleVote {
    /// The vote seen first.
    pub first: Vote,
    /// The conflicting vote.
    pub second: Vote,
}

impl DoubleVote {
    /// Whether the proof holds: one validator, height, round and kind; two values; both
    /// signatures valid.
    pub fn verifies(&self, verify: impl Fn(&PublicKey, &[u8], &Signature) -> bool) -> bool {
        let (a, b) = (&self.first, &self.second);
        a.validator == b.validator
            && (a.kind, a.height, a.round) == (b.kind, b.height, b.round)
            && a.value != b.value
            && a.verifies(&verify)
            && b.verifies(&verify)
    }

    /// Decodes a proof; `None` unless `bytes` is exactly one.
    pub fn decode(bytes: &[u8]) -> Option<DoubleVote> {
        borsh::from_slice(bytes).ok()
    }
}

/// The position in a set of `members` whose turn it is to propose agreement round
/// `round` at `height` when turns go in the ledger's order (DPoS, ADR 0013):
/// `(height − 1 + round) mod members`.
pub fn in_order_turn(height: u64, round: u32, members: usize) -> usize {
    let turn = height.saturating_sub(1).wrapping_add(u64::from(round)) % (members.max(1) as u64);
    turn as usize
}

/// Domain prefix of the message a proposer signs.
pub const PROPOSAL_DOMAIN: &[u8] = b"nest/bft/proposal/v1";

/// A proposal's signed facts without its unit: what a proposer's signature covers, and
/// half of a [`DoubleProposal`].
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct SignedProposal {
    /// The height.
    pub height: u64,
    /// The round.
    pub round: u32,
    /// The round in which 2f+1 prevoted the unit (the proposer's validRound), or `None`
    /// for a new unit.
    pub valid_round: Option<u32>,
    /// The unit's digest (`host.hash(unit bytes)`).
    pub value: Hash32,
    /// The proposer.
    pub proposer: PublicKey,
    /// Its signature over [`proposal_message`].
    pub signature: Signature,
}

impl SignedProposal {
    /// Whether the signature verifies, with `verify` doing the Ed25519 check.
    pub fn verifies(&self, verify: impl Fn(&PublicKey, &[u8], &Signature) -> bool) -> bool {
        let message = proposal_message(self.height, self.round, self.valid_round, &self.value);
        verify(&self.proposer, &message, &self.signature)
    }
}

/// Proof that a validator signed two different proposals for one height and round.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct DoubleProposal {
    /// The proposal seen first.
    pub first: SignedProposal,
    /// The conflicting proposal.
    pub second: SignedProposal,
}

impl DoubleProposal {
    /// Whether the proof holds: one proposer, height and round; two proposals; both
    /// signatures valid.
    pub fn verifies(&self, verify: impl Fn(&PublicKey, &[u8], &Signature) -> bool) -> bool {
        let (a, b) = (&self.first, &self.second);
        a.proposer == b.proposer
            && (a.height, a.round) == (b.height, b.round)
            && (a.value, a.valid_round) != (b.value, b.valid_round)
            && a.verifies(&verify)
            && b.verifies(&verify)
    }
}

/// One offence a BFT engine proves, in the encoding its `Evidence` effects carry and
/// evidence transactions hold. Variants are only ever added last.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Offence {
    /// Two prevotes or two precommits.
    DoubleVote(DoubleVote),
    /// Two proposals.
    DoubleProposal(DoubleProposal),
    /// A proposal signed by a validator whose turn it was not. Only a schedule the
    /// ledger knows can judge it: DPoS's turns in round order (ADR 0013).
    OutOfTurn(SignedProposal),
}

/// What kind of offence, in evidence record keys and for operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OffenceKind {
    /// Two prevotes.
    Prevote,
    /// Two precommits.
    Precommit,
    /// Two proposals.
    Proposal,
    /// A proposal out of turn.
    OutOfTurn,
}

impl OffenceKind {
    /// Its byte in evidence record keys.
    pub fn tag(self) -> u8 {
        match self {
            OffenceKind::Prevote => 0,
            OffenceKind::Precommit => 1,
            OffenceKind::Proposal => 2,
            OffenceKind::OutOfTurn => 3,
        }
    }

    /// The name operators read.
    pub fn name(self) -> &'static str {
        match self {
            OffenceKind::Prevote => "prevote",
            OffenceKind::Precommit => "precommit",
            OffenceKind::Proposal => "proposal",
            OffenceKind::OutOfTurn => "out_of_turn",
        }
    }
}

impl Offence {
    /// Decodes an offence; `None` unless `bytes` is exactly one (other engines'
    /// evidence, such as PoA's, is not).
    pub fn decode(bytes: &[u8]) -> Option<Offence> {
        borsh::from_slice(bytes).ok()
    }

    /// The offending validator (of the first message; [`Offence::verifies`] checks the
    /// second is the same one's).
    pub fn offender(&self) -> PublicKey {
        match self {
            Offence::DoubleVote(proof) => proof.first.validator,
            Offence::DoubleProposal(proof) => proof.first.proposer,
            Offence::OutOfTurn(proposal) => proposal.proposer,
        }
    }

    /// The height and round of the offence.
    pub fn height_round(&self) -> (u64, u32) {
        match self {
            Offence::DoubleVote(proof) => (proof.first.height, proof.first.round),
            Offence::DoubleProposal(proof) => (proof.first.height, proof.first.round),
            Offence::OutOfTurn(proposal) => (proposal.height, proposal.round),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> OffenceKind {
        match self {
            Offence::DoubleVote(proof) if proof.first.kind == VoteKind::Prevote => OffenceKind::Prevote,
            Offence::DoubleVote(_) => OffenceKind::Precommit,
            Offence::DoubleProposal(_) => OffenceKind::Proposal,
            Offence::OutOfTurn(_) => OffenceKind::OutOfTurn,
        }
    }

    /// The two signed values (`None`: nil).
    pub fn values(&self) -> [Option<Hash32>; 2] {
        match self {
            Offence::DoubleVote(proof) => [proof.first.value, proof.second.value],
            Offence::DoubleProposal(proof) => [Some(proof.first.value), Some(proof.second.value)],
            Offence::OutOfTurn(proposal) => [Some(proposal.value), None],
        }
    }

    /// Whether the proof's signatures hold (one signer, height and round; two messages;
    /// both signed — or, out of turn, the one proposal signed; whose turn it was is the
    /// ledger's to check).
    pub fn verifies(&self, verify: impl Fn(&PublicKey, &[u8], &Signature) -> bool) -> bool {
        match self {
            Offence::DoubleVote(proof) => proof.verifies(verify),
            Offence::DoubleProposal(proof) => proof.verifies(verify),
            Offence::OutOfTurn(proposal) => proposal.verifies(verify),
        }
    }
}

/// The precommits that decided a unit.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CommitCertificate {
    /// The decided height.
    pub height: u64,
    /// The round whose precommits decided.
    pub round: u32,
    /// The decided value (`host.hash(unit bytes)`).
    pub value: Hash32,
    /// Distinct validators and their precommit signatures, in key order.
    pub signatures: Vec<(PublicKey, Signature)>,
}

/// Why a certificate does not prove a decision.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CertificateError {
    /// It is for another height than the one it was checked at.
    #[error("certificate for height {found} checked at height {expected}")]
    Height {
        /// The height it names.
        found: u64,
        /// The height checked.
        expected: u64,
    },
    /// More signatures than validators.
    #[error("certificate for height {height} holds {signatures} signatures for {validators} validators")]
    TooMany {
        /// The height.
        height: u64,
        /// Signatures held.
        signatures: usize,
        /// Members of the set.
        validators: usize,
    },
    /// A signer outside the set.
    #[error("certificate for height {height}: {key} is not a validator")]
    NotValidator {
        /// The height.
        height: u64,
        /// The signer.
        key: PublicKey,
    },
    /// A signer listed twice.
    #[error("certificate for height {height}: {key} signs twice")]
    Twice {
        /// The height.
        height: u64,
        /// The signer.
        key: PublicKey,
    },
    /// A signature that does not verify.
    #[error("certificate for height {height}: the precommit of {key} does not verify")]
    BadSignature {
        /// The height.
        height: u64,
        /// The signer.
        key: PublicKey,
    },
    /// Not enough power.
    #[error("certificate for height {height} carries {power} of {total} voting power, not more than two thirds")]
    NoQuorum {
        /// The height.
        height: u64,
        /// Power of the signers.
        power: u64,
        /// Total power of the set.
        total: u64,
    },
}

impl CommitCertificate {
    /// Decodes a certificate; `None` unless `bytes` is exactly one certificate (other
    /// engines' certificates, such as a PoA seal, are not).
    pub fn decode(bytes: &[u8]) -> Option<CommitCertificate> {
        borsh::from_slice(bytes).ok()
    }

    /// Checks the certificate against the validator set of `height`, verifying each
    /// signature with `verify`; returns the signers' power.
    pub fn check(
        &self,
        height: u64,
        validators: &[Validator],
        verify: impl Fn(&PublicKey, &[u8], &Signature) -> bool,
    ) -> Result<u64, CertificateError> {
        if self.height != height {
            return Err(CertificateError::Height { found: self.height, expected: height });
        }
        if self.signatures.len() > validators.len() {
            return Err(CertificateError::TooMany {
                height,
                signatures: self.signatures.len(),
                validators: validators.len(),
            });
        }
        let message = precommit_message(height, self.round, &self.value);
        let mut signers = BTreeSet::new();
        let mut power: u64 = 0;
        for (key, signature) in &self.signatures {
            let member = validators.iter().find(|validator| validator.key == *key);
            let Some(member) = member else { return Err(CertificateError::NotValidator { height, key: *key }) };
            if !signers.insert(*key) {
                return Err(CertificateError::Twice { height, key: *key });
            }
            if !verify(key, &message, signature) {
                return Err(CertificateError::BadSignature { height, key: *key });
            }
            power = power.saturating_add(member.power);
        }
        let total = validators.iter().fold(0u64, |sum, validator| sum.saturating_add(validator.power));
        if u128::from(power) * 3 <= u128::from(total) * 2 {
            return Err(CertificateError::NoQuorum { height, power, total });
        }
        Ok(power)
    }
}

/// The bytes a validator signs to vote: `b"nest/bft/vote/v1" ++ kind (1 prevote, 2
/// precommit) ++ height (u64 LE) ++ round (u32 LE) ++ 0 for nil, or 1 ++ value`.
pub fn vote_message(kind_tag: u8, height: u64, round: u32, value: Option<&Hash32>) -> Vec<u8> {
    let mut message = Vec::with_capacity(VOTE_DOMAIN.len() + 1 + 8 + 4 + 1 + Hash32::LEN);
    message.extend_from_slice(VOTE_DOMAIN);
    message.push(kind_tag);
    message.extend_from_slice(&height.to_le_bytes());
    message.extend_from_slice(&round.to_le_bytes());
    match value {
        None => message.push(0),
        Some(value) => {
            message.push(1);
            message.extend_from_slice(value.as_bytes());
        }
    }
    message
}

/// The bytes of a precommit for `value`: what every signature of a certificate covers.
pub fn precommit_message(height: u64, round: u32, value: &Hash32) -> Vec<u8> {
    vote_message(PRECOMMIT_TAG, height, round, Some(value))
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
