//! The message log of one height: proposals, votes and the units they carry, with the
//! power tallies the upon-rules ask for.
//!
//! The pseudo-code counts messages per value: "2f+1 ⟨PREVOTE, h, r, id(v)⟩" is about
//! signed prevotes for v from distinct validators, so a validator that signed two
//! values counts towards each (any 2f+1 for v still holds f+1 honest ones). Counting
//! only the first vote seen would let an equivocating validator show one value to some
//! validators and another to the rest, leaving a lock formed with its help impossible
//! for the others to confirm. Bounded: at most [`VALUES_PER_VALIDATOR_MAX`] values per
//! validator, kind and round; rounds above the current one are kept for
//! [`FUTURE_ROUNDS_PER_VALIDATOR`] rounds per validator (its highest); one proposal per
//! round.

use crate::validators::ValidatorSet;
use crate::wire::{SignedProposal, Vote, VoteKind};
use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{Hash32, PublicKey};
use std::collections::{BTreeMap, BTreeSet};

/// Rounds above the current one for which one validator's votes are kept (its highest).
pub const FUTURE_ROUNDS_PER_VALIDATOR: usize = 2;
/// Distinct values kept per validator, kind and round (more from one validator are
/// evidence all the same, but no longer counted).
pub const VALUES_PER_VALIDATOR_MAX: usize = 4;
/// Proposals are kept for rounds up to this many above the current one.
pub const FUTURE_PROPOSAL_ROUNDS: u32 = 2;

/// What happened to a vote offered to the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// New; it counts.
    New,
    /// Already known.
    Known,
    /// The validator already voted otherwise at that kind and round: the earlier vote
    /// (the new one is kept and counts for its own value, within the bound).
    Conflict(Vote),
    /// Not kept: too far ahead of the current round for this validator.
    Dropped,
}

/// What happened to a proposal offered to the log.
#[derive(Debug, PartialEq, Eq)]
pub enum ProposalAdded {
    /// The round's first; kept.
    New,
    /// Already known.
    Known,
    /// The round already has another proposal: that one.
    Conflict(Box<SignedProposal>),
}

/// Whether a unit passed the host's checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Validity {
    /// Asked for; no answer yet.
    Checking,
    /// Valid.
    Valid,
    /// Refused.
    Invalid,
}

/// The log of the height being decided.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct HeightLog {
    votes: BTreeMap<(u32, VoteKind), BTreeMap<PublicKey, Vec<Vote>>>,
    proposals: BTreeMap<u32, SignedProposal>,
    /// Per round, the first proposal others said they received (`ProposalSeen`), kept
    /// only to find a proposer that signed another one.
    seen_elsewhere: BTreeMap<u32, SignedProposal>,
    units: BTreeMap<Hash32, Vec<u8>>,
    validity: BTreeMap<Hash32, Validity>,
}

impl HeightLog {
    /// Adds a checked vote (member, signature, height).
    pub fn add_vote(&mut self, vote: Vote, current_round: u32) -> Added {
        let key = (vote.round, vote.kind);
        if let Some(seen) = self.votes.get(&key).and_then(|votes| votes.get(&vote.validator)) {
            if seen.iter().any(|earlier| earlier.value == vote.value) {
                return Added::Known;
            }
            let first = seen.first().cloned();
            let kept = seen.len() < VALUES_PER_VALIDATOR_MAX;
            if kept && let Some(values) = self.votes.get_mut(&key).and_then(|votes| votes.get_mut(&vote.validator)) {
                values.push(vote);
            }
            return first.map_or(Added::Dropped, Added::Conflict);
        }
        if vote.round > current_round && !self.make_room_ahead(&vote.validator, vote.round, current_round) {
            return Added::Dropped;
        }
        self.votes.entry(key).or_default().insert(vote.validator, vec![vote]);
        Added::New
    }

    /// Keeps at most [`FUTURE_ROUNDS_PER_VALIDATOR`] rounds above the current one per
    /// validator: a new higher round evicts its lowest. Returns whether `round` fits.
    fn make_room_ahead(&mut self, validator: &PublicKey, round: u32, current_round: u32) -> bool {
        let ahead: BTreeSet<u32> = self
            .votes
            .iter()
            .filter(|((voted_round, _), votes)| *voted_round > current_round && votes.contains_key(validator))
            .map(|((voted_round, _), _)| *voted_round)
            .collect();
        if ahead.contains(&round) || ahead.len() < FUTURE_ROUNDS_PER_VALIDATOR {
            return true;
        }
        match ahead.first() {
            Some(lowest) if *lowest < round => {
                for kind in [VoteKind::Prevote, VoteKind::Precommit] {
                    if let Some(votes) = self.votes.get_mut(&(*lowest, kind)) {
                        votes.remove(validator);
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// The votes of one kind in one round (a validator that signed several values
    /// appears once per value).
    pub fn votes(&self, round: u32, kind: VoteKind) -> impl Iterator<Item = &Vote> {
        self.votes.get(&(round, kind)).into_iter().flat_map(|votes| votes.values().flatten())
    }

    /// The validators with a vote of one kind in one round.
    fn voters(&self, round: u32, kind: VoteKind) -> impl Iterator<Item = &PublicKey> {
        self.votes.get(&(round, kind)).into_iter().flat_map(|votes| votes.keys())
    }

    /// Power of the votes of `kind` in `round` for `value` (`None`: nil).
    pub fn power_for(&self, set: &ValidatorSet, round: u32, kind: VoteKind, value: Option<&Hash32>) -> u64 {
        self.votes(round, kind)
            .filter(|vote| vote.value.as_ref() == value)
            .filter_map(|vote| set.power_of(&vote.validator))
            .sum()
    }

    /// Power of the validators with a vote of `kind` in `round`, whatever its value.
    pub fn power_any(&self, set: &ValidatorSet, round: u32, kind: VoteKind) -> u64 {
        self.voters(round, kind).filter_map(|key| set.power_of(key)).sum()
    }

    /// The values with precommits in `round`, each with its power.
    pub fn precommitted_values(&self, set: &ValidatorSet, round: u32) -> BTreeMap<Hash32, u64> {
        let mut powers = BTreeMap::new();
        for vote in self.votes(round, VoteKind::Precommit) {
            if let (Some(value), Some(power)) = (vote.value, set.power_of(&vote.validator)) {
                *powers.entry(value).or_insert(0) += power;
            }
        }
        powers
    }

    /// The rounds that hold any vote.
    pub fn voted_rounds(&self) -> BTreeSet<u32> {
        self.votes.keys().map(|(round, _)| *round).collect()
    }

    /// Power of the distinct validators with any message (vote or proposal) in `round`.
    pub fn power_in_round(&self, set: &ValidatorSet, round: u32) -> u64 {
        let mut senders: BTreeSet<PublicKey> = BTreeSet::new();
        for kind in [VoteKind::Prevote, VoteKind::Precommit] {
            senders.extend(self.voters(round, kind).copied());
        }
        if let Some(proposal) = self.proposals.get(&round) {
            senders.insert(proposal.proposer);
        }
        senders.iter().filter_map(|key| set.power_of(key)).sum()
    }

    /// The proposal of `round`, if received.
    pub fn proposal(&self, round: u32) -> Option<&SignedProposal> {
        self.proposals.get(&round)
    }

    /// Keeps the first proposal of a round and its unit (the caller checked proposer and
    /// signature); returns whether it is new, or the one already kept when it differs.
    pub fn add_proposal(&mut self, proposal: SignedProposal, unit: Vec<u8>) -> ProposalAdded {
        if let Some(seen) = self.proposals.get(&proposal.round) {
            let same = (seen.valid_round, seen.value) == (proposal.valid_round, proposal.value);
            return if same { ProposalAdded::Known } else { ProposalAdded::Conflict(Box::new(seen.clone())) };
        }
        self.units.entry(proposal.value).or_insert(unit);
        self.proposals.insert(proposal.round, proposal);
        ProposalAdded::New
    }

    /// A proposal signed by the same proposer for the same round as `proposal` but
    /// different from it, among those received and those others said they received.
    pub fn conflicting_proposal(&self, proposal: &SignedProposal) -> Option<&SignedProposal> {
        let differs = |seen: &&SignedProposal| (seen.valid_round, seen.value) != (proposal.valid_round, proposal.value);
        let round = proposal.round;
        self.proposals.get(&round).filter(differs).or_else(|| self.seen_elsewhere.get(&round).filter(differs))
    }

    /// Remembers the first proposal others said they received in its round (the caller
    /// checked proposer, signature and round bounds).
    pub fn note_seen_elsewhere(&mut self, proposal: SignedProposal) {
        self.seen_elsewhere.entry(proposal.round).or_insert(proposal);
    }

    /// Remembers a unit's bytes under its digest.
    pub fn add_unit(&mut self, digest: Hash32, unit: Vec<u8>) {
        self.units.entry(digest).or_insert(unit);
    }

    /// The bytes of the unit with `digest`, if known.
    pub fn unit(&self, digest: &Hash32) -> Option<&Vec<u8>> {
        self.units.get(digest)
    }

    /// What the host said about the unit with `digest`.
    pub fn validity(&self, digest: &Hash32) -> Option<Validity> {
        self.validity.get(digest).copied()
    }

    /// Records what the host said (or that it was asked).
    pub fn set_validity(&mut self, digest: Hash32, validity: Validity) {
        self.validity.insert(digest, validity);
    }

    /// Whether `digest` is known valid.
    pub fn is_valid(&self, digest: &Hash32) -> bool {
        self.validity(digest) == Some(Validity::Valid)
    }

    /// Number of votes held (for bounds checks of a restored snapshot).
    pub fn vote_count(&self) -> usize {
        self.votes.values().flat_map(BTreeMap::values).map(Vec::len).sum()
    }
}
