//! Evidence of consensus offences on chain: a validator's two conflicting signed votes
//! (`nest_sdk::certificate::DoubleVote`) become a record anyone can query, at most once
//! per offence.
//!
//! Any account may submit the proof in an `Evidence` transaction; it costs no gas (the
//! reporter gains nothing, and a node reports what its engine saw without holding
//! tokens). The ledger checks the proof itself — one validator, kind, height and round;
//! two values; both signatures; the validator a member of its height's set; a height
//! not above the block — so a forged report is refused at execution and never
//! recorded, and a second report of a recorded offence records nothing. The record
//! is `consensus/evidence/<validator><height BE><round BE><kind>` and holds the block
//! height it was included at and the proof.

use super::exec::TxContext;
use super::tx::TxError;
use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::PublicKey;
use nest_sdk::certificate::{DoubleVote, VoteKind};

/// Prefix of the evidence records.
pub const EVIDENCE_PREFIX: &[u8] = b"consensus/evidence/";

/// Why an evidence transaction was refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum EvidenceError {
    /// The two votes are not an offence (another validator, step, height or round, or
    /// the same value).
    #[error("the two votes are not one validator's conflicting votes at one height, round and step")]
    NotConflicting,
    /// A signature does not verify.
    #[error("a vote of the proof is not signed by its validator")]
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
    #[error("votes at height {height} are above the block at height {block_height}")]
    FromTheFuture {
        /// The height of the votes.
        height: u64,
        /// The block's height.
        block_height: u64,
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
        }
    }
}

/// What the ledger stores for one offence.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct EvidenceRecord {
    /// The height of the block that recorded it.
    pub included_at: u64,
    /// The proof.
    pub proof: DoubleVote,
}

/// The record key of the offence `proof` proves.
pub fn evidence_key(proof: &DoubleVote) -> Vec<u8> {
    let vote = &proof.first;
    let mut key = EVIDENCE_PREFIX.to_vec();
    key.extend_from_slice(&vote.validator.0);
    key.extend_from_slice(&vote.height.to_be_bytes());
    key.extend_from_slice(&vote.round.to_be_bytes());
    key.push(match vote.kind {
        VoteKind::Prevote => 0,
        VoteKind::Precommit => 1,
    });
    key
}

/// The transaction that reports `proof`, signed by `key` (a node's key: it needs no
/// tokens) with the key's next `nonce` on the chain with genesis `chain`.
pub fn evidence_tx(
    proof: DoubleVote,
    chain: nest_sdk::Hash32,
    key: &crate::crypto::SecretKey,
    nonce: u64,
) -> super::tx::SignedTx {
    let body = super::tx::TxBody::Evidence(proof);
    super::tx::UnsignedTx { chain, from: key.public_key(), nonce, fee: 0, body }.sign(key)
}

/// Gas of an evidence transaction: none.
pub fn gas_of(_proof: &DoubleVote) -> u64 {
    0
}

/// Checks and records one offence.
pub fn apply(ctx: &mut TxContext<'_>, proof: &DoubleVote) -> Result<(), TxError> {
    let (first, second) = (&proof.first, &proof.second);
    let conflicting = first.validator == second.validator
        && (first.kind, first.height, first.round) == (second.kind, second.height, second.round)
        && first.value != second.value;
    if !conflicting {
        return Err(EvidenceError::NotConflicting.into());
    }
    let block_height = ctx.env().height;
    // Votes at the block's own height are fine (signed in an earlier round of it, or
    // while a node built it); a height above it has no validator set settled yet.
    if first.height > block_height {
        return Err(EvidenceError::FromTheFuture { height: first.height, block_height }.into());
    }
    let member = ctx
        .validators_at(first.height)
        .is_some_and(|set| set.members.iter().any(|member| member.key == first.validator));
    if !member {
        return Err(EvidenceError::NotValidator { key: first.validator, height: first.height }.into());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;
    use crate::ledger::state::{BlockEnv, ChainParams, Ledger};
    use crate::ledger::validators::{Member, ValidatorSet};
    use nest_sdk::Hash32;
    use nest_sdk::certificate::{Vote, vote_message};

    const CHAIN: Hash32 = Hash32([7; 32]);

    fn vote(key: &SecretKey, height: u64, value: u8) -> Vote {
        let value = Some(Hash32([value; 32]));
        let signature = key.sign(&vote_message(VoteKind::Prevote.tag(), height, 0, value.as_ref()));
        Vote { kind: VoteKind::Prevote, height, round: 0, value, validator: key.public_key(), signature }
    }

    fn ledger_with(validator: &SecretKey) -> Ledger {
        let set = ValidatorSet { from_height: 1, members: vec![Member { key: validator.public_key(), power: 1 }] };
        Ledger::from_state([], [set.record()])
    }

    /// Executes one evidence transaction from a reporter with no tokens at `height`.
    fn run(ledger: &Ledger, proof: DoubleVote, height: u64, nonce: u64) -> Result<Ledger, TxError> {
        let reporter = SecretKey::from_seed([9; 32]);
        let tx = evidence_tx(proof, CHAIN, &reporter, nonce);
        let env = BlockEnv { height, time_ms: 0, proposer: PublicKey::default() };
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
        let proof = DoubleVote { first: vote(&validator, 5, 1), second: vote(&validator, 5, 2) };
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
        let same = DoubleVote { first: vote(&validator, 5, 1), second: vote(&validator, 5, 1) };
        assert_eq!(run(&ledger, same, 8, 0).unwrap_err(), TxError::Evidence(EvidenceError::NotConflicting));
        let mut forged = DoubleVote { first: vote(&validator, 5, 1), second: vote(&validator, 5, 2) };
        forged.second.signature = stranger.sign(b"not the vote");
        assert_eq!(run(&ledger, forged, 8, 0).unwrap_err(), TxError::Evidence(EvidenceError::BadSignature));
        let outsider = DoubleVote { first: vote(&stranger, 5, 1), second: vote(&stranger, 5, 2) };
        let error = run(&ledger, outsider, 8, 0).unwrap_err();
        assert!(matches!(error, TxError::Evidence(EvidenceError::NotValidator { height: 5, .. })), "{error}");
        let future = DoubleVote { first: vote(&validator, 9, 1), second: vote(&validator, 9, 2) };
        let error = run(&ledger, future, 8, 0).unwrap_err();
        assert!(matches!(error, TxError::Evidence(EvidenceError::FromTheFuture { .. })), "{error}");
    }
}
