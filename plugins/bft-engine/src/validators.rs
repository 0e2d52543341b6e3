//! The validator set of a height as the engine uses it: voting power, the two
//! thresholds, and the proposer rotation weighted by power.

use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{PublicKey, Validator};
use std::collections::BTreeMap;

/// Most members of one set the engine accepts (the ledger's own bound).
pub const VALIDATORS_MAX: usize = 256;

/// 2^64 / φ, odd: the step of the Weyl sequence that spreads proposer turns.
const GOLDEN_STEP: u64 = 0x9E37_79B9_7F4A_7C15;

/// How proposer turns go round a set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rotation {
    /// In proportion to power ([`ValidatorSet::proposer`]): `consensus-bft`.
    #[default]
    Weighted,
    /// In the ledger's order, one turn per height: turn `k = height − 1 + round` goes to
    /// member `k mod n`. DPoS (`consensus-dpos`): a round of n heights, whose set the
    /// ledger lists in its slot order, gives each delegate the height at its position in
    /// round 0, and a round that fails passes the turn to the next delegate (a missed
    /// slot is skipped).
    InOrder,
}

/// One height's validators, checked: distinct keys, power at least 1, total power
/// small enough that `3 × total` fits in `u64`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ValidatorSet {
    /// The first height it signs.
    pub from_height: u64,
    members: Vec<(PublicKey, u64)>,
    total_power: u64,
    powers: BTreeMap<PublicKey, u64>,
}

impl ValidatorSet {
    /// Checks and builds a set.
    pub fn new(from_height: u64, validators: &[Validator]) -> Result<ValidatorSet, String> {
        if validators.is_empty() {
            return Err(format!("the validator set from height {from_height} is empty"));
        }
        if validators.len() > VALIDATORS_MAX {
            return Err(format!(
                "the validator set from height {from_height} has {} members, more than {VALIDATORS_MAX}",
                validators.len()
            ));
        }
        let mut powers = BTreeMap::new();
        let mut total_power: u64 = 0;
        for validator in validators {
            if validator.power == 0 {
                return Err(format!("validator {} has a power of 0", validator.key));
            }
            if powers.insert(validator.key, validator.power).is_some() {
                return Err(format!("validator {} is listed twice", validator.key));
            }
            total_power = total_power
                .checked_add(validator.power)
                .filter(|total| *total <= u64::MAX / 4)
                .ok_or_else(|| format!("the validator set from height {from_height} has too much total power"))?;
        }
        let members = validators.iter().map(|validator| (validator.key, validator.power)).collect();
        Ok(ValidatorSet { from_height, members, total_power, powers })
    }

    /// The voting power of `key`, `None` when it is not a member.
    pub fn power_of(&self, key: &PublicKey) -> Option<u64> {
        self.powers.get(key).copied()
    }

    /// The sum of all powers.
    pub fn total_power(&self) -> u64 {
        self.total_power
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the set has no members (never, once built).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The members in ledger order with their power.
    pub fn members(&self) -> &[(PublicKey, u64)] {
        &self.members
    }

    /// The pseudo-code's 2f+1: more than two thirds of the total power.
    pub fn is_quorum(&self, power: u64) -> bool {
        u128::from(power) * 3 > u128::from(self.total_power) * 2
    }

    /// The pseudo-code's f+1: more than a third of the total power (at least one honest
    /// validator among them).
    pub fn is_one_third(&self, power: u64) -> bool {
        u128::from(power) * 3 > u128::from(self.total_power)
    }

    /// The proposer of `round` at `height` under `rotation`.
    pub fn proposer_by(&self, rotation: Rotation, height: u64, round: u32) -> PublicKey {
        match rotation {
            Rotation::Weighted => self.proposer(height, round),
            Rotation::InOrder => {
                let index = nest_sdk::certificate::in_order_turn(height, round, self.members.len());
                self.members.get(index).map(|(key, _)| *key).unwrap_or_default()
            }
        }
    }

    /// The proposer of `round` at `height`. Turn `k = height + round` takes the point
    /// `frac(k / φ)` of `[0, 1)` (a Weyl sequence), scaled to the total power, and picks
    /// the member whose slice of the cumulative power holds it. Over any run of turns
    /// each member proposes in proportion to its power, up to a small discrepancy, and
    /// the next round of a height moves to another point: no state, same answer on every
    /// node.
    pub fn proposer(&self, height: u64, round: u32) -> PublicKey {
        let turn = height.wrapping_add(u64::from(round));
        let point = turn.wrapping_mul(GOLDEN_STEP);
        let target = ((u128::from(point) * u128::from(self.total_power)) >> 64) as u64;
        let mut cumulative: u64 = 0;
        for (key, power) in &self.members {
            cumulative += power;
            if target < cumulative {
                return *key;
            }
        }
        // `target < total_power` always; the last member covers rounding.
        self.members.last().map(|(key, _)| *key).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(powers: &[u64]) -> ValidatorSet {
        let validators: Vec<Validator> = powers
            .iter()
            .enumerate()
            .map(|(index, power)| Validator { key: PublicKey([index as u8 + 1; 32]), power: *power })
            .collect();
        ValidatorSet::new(1, &validators).unwrap()
    }

    #[test]
    fn thresholds_count_power_strictly_above_the_fraction() {
        let four = set(&[1, 1, 1, 1]);
        assert!(!four.is_quorum(2));
        assert!(four.is_quorum(3));
        assert!(!four.is_one_third(1));
        assert!(four.is_one_third(2));
        let weighted = set(&[5, 1, 1, 2]);
        assert!(!weighted.is_quorum(6));
        assert!(weighted.is_quorum(7));
        assert!(weighted.is_one_third(4));
        assert!(!weighted.is_one_third(3));
    }

    #[test]
    fn in_order_turns_follow_the_ledger_order_one_height_each_and_rounds_pass_the_turn() {
        let equal = set(&[1; 4]);
        let keys: Vec<PublicKey> = equal.members().iter().map(|(key, _)| *key).collect();
        let turns: Vec<PublicKey> = (1..=8).map(|height| equal.proposer_by(Rotation::InOrder, height, 0)).collect();
        assert_eq!(turns, [&keys[..], &keys[..]].concat());
        assert_eq!(equal.proposer_by(Rotation::InOrder, 2, 1), keys[2]);
        assert_eq!(equal.proposer_by(Rotation::InOrder, 4, 1), keys[0]);
        assert_eq!(equal.proposer_by(Rotation::Weighted, 9, 2), equal.proposer(9, 2));
    }

    #[test]
    fn proposer_turns_follow_power() {
        let weighted = set(&[6, 3, 1]);
        let mut turns: BTreeMap<PublicKey, u64> = BTreeMap::new();
        for height in 0..10_000 {
            *turns.entry(weighted.proposer(height, 0)).or_default() += 1;
        }
        let counts: Vec<u64> = weighted.members().iter().map(|(key, _)| turns[key]).collect();
        for (count, expected) in counts.iter().zip([6000u64, 3000, 1000]) {
            assert!(count.abs_diff(expected) <= 10, "{counts:?}");
        }
    }

    #[test]
    fn every_member_proposes_within_a_short_run_and_rounds_move_on() {
        let equal = set(&[1; 7]);
        let proposers: std::collections::BTreeSet<PublicKey> = (0..20).map(|h| equal.proposer(h, 0)).collect();
        assert_eq!(proposers.len(), 7);
        assert_ne!(equal.proposer(5, 0), equal.proposer(5, 1));
    }

    #[test]
    fn bad_sets_are_refused_with_the_reason() {
        let key = PublicKey([1; 32]);
        assert!(ValidatorSet::new(1, &[]).unwrap_err().contains("empty"));
        let zero = ValidatorSet::new(1, &[Validator { key, power: 0 }]).unwrap_err();
        assert!(zero.contains("power of 0"), "{zero}");
        let twice = ValidatorSet::new(1, &[Validator { key, power: 1 }, Validator { key, power: 1 }]).unwrap_err();
        assert!(twice.contains("twice"), "{twice}");
        let heavy = ValidatorSet::new(1, &[Validator { key, power: u64::MAX }]).unwrap_err();
        assert!(heavy.contains("too much"), "{heavy}");
    }
}
