//! Evidence of consensus offences on chain: a validator's two conflicting signed votes
//! or proposals (`nest_sdk::certificate::Offence`) become a record anyone can query, at
//! most once per offence.
//!
//! Any account may submit the proof in an `Evidence` transaction; it costs no gas (the
//! reporter gains nothing, and a node reports what its engine saw without holding
//! tokens). The ledger checks the proof itself — one validator, kind, height and round;
//! two values (two proposals differ in unit or valid round); both signatures; the validator a member of its height's set; a height
//! not above the block — so a forged report is refused at execution and never
//! recorded, and a second report of a recorded offence records nothing. The record
//! is `consensus/evidence/<validator><height BE><round BE><kind>` (kind 0 prevote, 1
//! precommit, 2 proposal) and holds the block height it was included at and the proof.

use super::exec::TxContext;
use super::rounds::{DPOS_PARAMS_KEY, DposParams};
use super::tx::TxError;
use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::PublicKey;
use nest_sdk::certificate::{Offence, SignedProposal};

/// Prefix of the evidence records.
pub const EVIDENCE_PREFIX: &[u8] = b"consensus/evidence/";

/// Why an evidence transaction was refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum EvidenceError {
    /// The two messages are not an offence (another validator, step, height or round,
    /// or the same value).
    #[error("the two messages are not one validator's conflicting votes or proposals at one height and round")]
    NotConflicting,
    /// A signature does not verify.
    #[error("a message of the proof is not signed by its validator")]
    BadSignature,
    /// The key was not a validator at that height.
    #[error("{key} was not a validator at height {height}")]
    NotValidator {
        /// The key.
        key: PublicKey,
        /// The height of the votes.
        height: u64,
    },
    /// The offence is above the block that would record it.
    #[error("an offence at height {height} is above the block at height {block_height}")]
    FromTheFuture {
        /// The height of the votes.
        height: u64,
        /// The block's height.
        block_height: u64,
    },
    /// A proposal out of turn on a chain whose turns the ledger does not know.
    #[error("a proposal out of turn can only be judged on a DPoS chain, whose turns the ledger knows")]
    NoTurns,
    /// The proposal was its proposer's turn.
    #[error("height {height} round {round} was {proposer}'s turn: the proposal is not out of turn")]
    InTurn {
        /// The height.
        height: u64,
        /// The agreement round.
        round: u32,
        /// Its proposer.
        proposer: PublicKey,
    },
}

impl EvidenceError {
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            EvidenceError::NotConflicting => "evidence_not_conflicting",
            EvidenceError::BadSignature => "evidence_bad_signature",
            EvidenceError::NotValidator { .. } => "evidence_not_validator",
            EvidenceError::FromTheFuture { .. } => "evidence_from_the_future",
            EvidenceError::NoTurns => "evidence_no_turns",
            EvidenceError::InTurn { .. } => "evidence_in_turn",
        }
    }
}

/// What the ledger stores for one offence.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct EvidenceRecord {
    /// The height of the block that recorded it.
    pub included_at: u64,
    /// The proof.
    pub proof: Offence,
}

/// The record key of the offence `proof` proves.
pub fn evidence_key(proof: &Offence) -> Vec<u8> {
    let (height, round) = proof.height_round();
    let mut key = EVIDENCE_PREFIX.to_vec();
    key.extend_from_slice(&proof.offender().0);
    key.extend_from_slice(&height.to_be_bytes());
    key.extend_from_slice(&round.to_be_bytes());
    key.push(proof.kind().tag());
    key
}

/// The transaction that reports `proof`, signed by `key` (a node's key: it needs no
/// tokens) with the key's next `nonce` on the chain with genesis `chain`.
pub fn evidence_tx(
    proof: Offence,
    chain: nest_sdk::Hash32,
    key: &crate::crypto::SecretKey,
    nonce: u64,
) -> super::tx::SignedTx {
    let body = super::tx::TxBody::Evidence(proof);
    super::tx::UnsignedTx { chain, from: key.public_key(), nonce, fee: 0, body }.sign(key)
}

/// Gas of an evidence transaction: none.
pub fn gas_of(_proof: &Offence) -> u64 {
    0
}

/// Checks and records one offence.
pub fn apply(ctx: &mut TxContext<'_>, proof: &Offence) -> Result<(), TxError> {
    if !conflicting(proof) {
        return Err(EvidenceError::NotConflicting.into());
    }
    let (height, offender) = (proof.height_round().0, proof.offender());
    let block_height = ctx.env().height;
    // An offence at the block's own height is fine (signed in an earlier round of it,
    // or while a node built it); a height above it has no validator set settled yet.
    if height > block_height {
        return Err(EvidenceError::FromTheFuture { height, block_height }.into());
    }
    let member = ctx.validators_at(height).is_some_and(|set| set.members.iter().any(|member| member.key == offender));
    if !member {
        return Err(EvidenceError::NotValidator { key: offender, height }.into());
    }
    if let Offence::OutOfTurn(proposal) = proof {
        check_out_of_turn(ctx, proposal)?;
    }
    if !proof.verifies(crate::crypto::verify) {
        return Err(EvidenceError::BadSignature.into());
    }
    let key = evidence_key(proof);
    // A second report of a recorded offence applies and records nothing: refusing it
    // would leave a gap in its reporter's nonces, and every later report of that
    // reporter would wait behind the gap forever (several nodes report each offence).
    if ctx.record::<EvidenceRecord>(&key)?.is_some() {
        return Ok(());
    }
    ctx.put_record(key, &EvidenceRecord { included_at: block_height, proof: proof.clone() })
}

/// On a DPoS chain, whether a proposal was out of its proposer's turn: height h's
/// agreement round k is the turn of position `(h − 1 + k) mod N` of the round's order
/// (ADR 0013).
fn check_out_of_turn(ctx: &TxContext<'_>, proposal: &SignedProposal) -> Result<(), TxError> {
    if ctx.record::<DposParams>(DPOS_PARAMS_KEY)?.is_none() {
        return Err(EvidenceError::NoTurns.into());
    }
    let (height, round) = (proposal.height, proposal.round);
    let set = ctx.validators_at(height).ok_or(EvidenceError::NotValidator { key: proposal.proposer, height })?;
    let turn = nest_sdk::certificate::in_order_turn(height, round, set.members.len());
    let in_turn = set.members.get(turn).map(|member| member.key);
    if in_turn == Some(proposal.proposer) {
        return Err(EvidenceError::InTurn { height, round, proposer: proposal.proposer }.into());
    }
    Ok(())
}

/// Whether the two messages are one signer's, at one height and round (and step), with
/// different contents; signatures are checked apart, so the error says which fails.
fn conflicting(proof: &Offence) -> bool {
    match proof {
        Offence::DoubleVote(proof) => {
            let (a, b) = (&proof.first, &proof.second);
            a.validator == b.validator
                && (a.kind, a.height, a.round) == (b.kind, b.height, b.round)
                && a.value != b.value
        }
        Offence::DoubleProposal(proof) => {
            let (a, b) = (&proof.first, &proof.second);
            a.proposer == b.proposer
                && (a.height, a.round) == (b.height, b.round)
                && (a.value, a.valid_round) != (b.value, b.valid_round)
        }
        // Whose turn it was is checked against the ledger's rounds.
        Offence::OutOfTurn(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;
    use crate::ledger::state::{BlockEnv, ChainParams, Ledger};
    use crate::ledger::validators::{Member, ValidatorSet};
    use nest_sdk::Hash32;
    use nest_sdk::certificate::{
        DoubleProposal, DoubleVote, SignedProposal, Vote, VoteKind, proposal_message, vote_message,
    };

    const CHAIN: Hash32 = Hash32([7; 32]);

    fn vote(key: &SecretKey, height: u64, value: u8) -> Vote {
        let value = Some(Hash32([value; 32]));
        let signature = key.sign(&vote_message(VoteKind::Prevote.tag(), height, 0, value.as_ref()));
        Vote { kind: VoteKind::Prevote, height, round: 0, value, validator: key.public_key(), signature }
    }

    fn double_vote(first: Vote, second: Vote) -> Offence {
        Offence::DoubleVote(DoubleVote { first, second })
    }

    fn signed_proposal(key: &SecretKey, height: u64, value: u8) -> SignedProposal {
        let value = Hash32([value; 32]);
        let signature = key.sign(&proposal_message(height, 0, None, &value));
        SignedProposal { height, round: 0, valid_round: None, value, proposer: key.public_key(), signature }
    }

    fn ledger_with(validator: &SecretKey) -> Ledger {
        let set = ValidatorSet { from_height: 1, members: vec![Member { key: validator.public_key(), power: 1 }] };
        Ledger::from_state([], [set.record()])
    }

    /// Executes one evidence transaction from a reporter with no tokens at `height`.
    fn run(ledger: &Ledger, proof: Offence, height: u64, nonce: u64) -> Result<Ledger, TxError> {
        let reporter = SecretKey::from_seed([9; 32]);
        let tx = evidence_tx(proof, CHAIN, &reporter, nonce);
        let env = BlockEnv { height, parent: Hash32::ZERO, time_ms: 0, proposer: PublicKey::default() };
        let outcome = ledger.execute(&[tx], &env, &ChainParams { chain: CHAIN, gas_price: 1 }, true);
        if let Some((_, error)) = outcome.rejected.into_iter().next() {
            return Err(error);
        }
        let mut next = ledger.clone();
        next.commit(&outcome.changes);
        Ok(next)
    }

    #[test]
    fn a_double_vote_is_recorded_once_and_free_of_charge_however_often_reported() {
        let validator = SecretKey::from_seed([1; 32]);
        let ledger = ledger_with(&validator);
        let proof = double_vote(vote(&validator, 5, 1), vote(&validator, 5, 2));
        let after = run(&ledger, proof.clone(), 8, 0).expect("recorded");
        let record: EvidenceRecord = borsh::from_slice(after.record(&evidence_key(&proof)).unwrap()).unwrap();
        assert_eq!((record.included_at, &record.proof), (8, &proof));
        // A second report applies (its reporter's nonce moves on) and records nothing.
        let again = run(&after, proof.clone(), 9, 1).expect("a second report applies");
        let record: EvidenceRecord = borsh::from_slice(again.record(&evidence_key(&proof)).unwrap()).unwrap();
        assert_eq!(record.included_at, 8, "the first report's record stays");
    }

    #[test]
    fn forged_or_pointless_evidence_is_refused_with_the_reason() {
        let validator = SecretKey::from_seed([1; 32]);
        let stranger = SecretKey::from_seed([2; 32]);
        let ledger = ledger_with(&validator);
        let same = double_vote(vote(&validator, 5, 1), vote(&validator, 5, 1));
        assert_eq!(run(&ledger, same, 8, 0).unwrap_err(), TxError::Evidence(EvidenceError::NotConflicting));
        let mut second = vote(&validator, 5, 2);
        second.signature = stranger.sign(b"not the vote");
        let forged = double_vote(vote(&validator, 5, 1), second);
        assert_eq!(run(&ledger, forged, 8, 0).unwrap_err(), TxError::Evidence(EvidenceError::BadSignature));
        let outsider = double_vote(vote(&stranger, 5, 1), vote(&stranger, 5, 2));
        let error = run(&ledger, outsider, 8, 0).unwrap_err();
        assert!(matches!(error, TxError::Evidence(EvidenceError::NotValidator { height: 5, .. })), "{error}");
        let future = double_vote(vote(&validator, 9, 1), vote(&validator, 9, 2));
        let error = run(&ledger, future, 8, 0).unwrap_err();
        assert!(matches!(error, TxError::Evidence(EvidenceError::FromTheFuture { .. })), "{error}");
    }

    #[test]
    fn a_double_proposal_is_recorded_under_its_own_kind_and_a_forged_one_refused() {
        let validator = SecretKey::from_seed([1; 32]);
        let ledger = ledger_with(&validator);
        let proposals =
            DoubleProposal { first: signed_proposal(&validator, 5, 1), second: signed_proposal(&validator, 5, 2) };
        let proof = Offence::DoubleProposal(proposals.clone());
        let after = run(&ledger, proof.clone(), 8, 0).expect("recorded");
        let key = evidence_key(&proof);
        assert_eq!(key.last(), Some(&2), "kind 2: proposal");
        let record: EvidenceRecord = borsh::from_slice(after.record(&key).unwrap()).unwrap();
        assert_eq!(record.proof, proof);
        // A prevote offence of the same validator, height and round is another record.
        let votes = double_vote(vote(&validator, 5, 1), vote(&validator, 5, 2));
        assert_ne!(evidence_key(&votes), key);
        let same = DoubleProposal { first: proposals.first.clone(), second: proposals.first.clone() };
        let error = run(&ledger, Offence::DoubleProposal(same), 8, 0).unwrap_err();
        assert_eq!(error, TxError::Evidence(EvidenceError::NotConflicting));
        let mut forged = proposals;
        forged.second.signature = SecretKey::from_seed([2; 32]).sign(b"not the proposal");
        let error = run(&ledger, Offence::DoubleProposal(forged), 8, 0).unwrap_err();
        assert_eq!(error, TxError::Evidence(EvidenceError::BadSignature));
    }

    #[test]
    fn a_proposal_out_of_turn_is_recorded_on_a_dpos_chain_and_only_there() {
        let delegates: Vec<SecretKey> = (1..=4).map(|seed| SecretKey::from_seed([seed; 32])).collect();
        let members = delegates.iter().map(|key| Member { key: key.public_key(), power: 1 }).collect();
        let set = ValidatorSet { from_height: 1, members };
        let dpos = DposParams { delegates: 4 };
        let ledger = Ledger::from_state([], [set.record(), dpos.record()]);
        // Height 6, round 0: position (6 − 1) mod 4 = 1 has the turn.
        let in_turn = Offence::OutOfTurn(signed_proposal(&delegates[1], 6, 1));
        let error = run(&ledger, in_turn, 8, 0).unwrap_err();
        assert!(matches!(error, TxError::Evidence(EvidenceError::InTurn { height: 6, round: 0, .. })), "{error}");
        let out_of_turn = Offence::OutOfTurn(signed_proposal(&delegates[2], 6, 1));
        let after = run(&ledger, out_of_turn.clone(), 8, 0).expect("recorded");
        let key = evidence_key(&out_of_turn);
        assert_eq!(key.last(), Some(&3), "kind 3: out of turn");
        assert!(after.record(&key).is_some());
        let mut forged = signed_proposal(&delegates[2], 6, 1);
        forged.signature = delegates[0].sign(b"not the proposal");
        let error = run(&ledger, Offence::OutOfTurn(forged), 8, 0).unwrap_err();
        assert_eq!(error, TxError::Evidence(EvidenceError::BadSignature));
        // Without DPoS rounds the ledger cannot tell whose turn it was.
        let bft = Ledger::from_state([], [set.record()]);
        let error = run(&bft, out_of_turn, 8, 0).unwrap_err();
        assert_eq!(error, TxError::Evidence(EvidenceError::NoTurns));
    }
}
