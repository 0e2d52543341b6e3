//! Validator sets: which keys sign a chain's units at each height, with what voting power.
//!
//! A set is a ledger record, `consensus/validators/<from_height, u64 big endian>`, so it
//! is part of the state digest and every node reads the same set for every height: the
//! set in force at height `h` is the record with the greatest `from_height <= h`.
//! Genesis writes the first set and any changes scheduled for later heights; staking
//! transactions will write changes the same way, always for a height above the block
//! that writes them, so a set changes only at a height boundary.

use super::Ledger;
use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::PublicKey;
use std::collections::BTreeSet;

/// Prefix of the validator-set records.
pub const VALIDATORS_PREFIX: &[u8] = b"consensus/validators/";
/// Most members of one set (its record stays within the ledger's record size bound).
pub const VALIDATORS_MAX: usize = 256;
/// Largest total voting power of one set: quorum arithmetic (`3 × power`) stays in `u64`.
pub const TOTAL_POWER_MAX: u64 = u64::MAX / 4;

/// One member and its voting power.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Member {
    /// The validator's node key.
    pub key: PublicKey,
    /// Its voting power, at least 1.
    pub power: u64,
}

/// The set that signs units from `from_height` on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    /// The first height it signs (at least 1: genesis is not signed).
    pub from_height: u64,
    /// The members, in order.
    pub members: Vec<Member>,
}

/// A validator set that cannot be used.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ValidatorSetError {
    /// No members.
    #[error("the validator set from height {from_height} has no members")]
    Empty {
        /// Its first height.
        from_height: u64,
    },
    /// Too many members.
    #[error("the validator set from height {from_height} has {count} members, more than {VALIDATORS_MAX}")]
    TooMany {
        /// Its first height.
        from_height: u64,
        /// Its member count.
        count: usize,
    },
    /// A key listed twice.
    #[error("the validator set from height {from_height} lists {key} twice")]
    Duplicate {
        /// Its first height.
        from_height: u64,
        /// The key.
        key: PublicKey,
    },
    /// A member with no power.
    #[error("the validator set from height {from_height} gives {key} a power of 0 (at least 1)")]
    ZeroPower {
        /// Its first height.
        from_height: u64,
        /// The key.
        key: PublicKey,
    },
    /// The powers add up to too much.
    #[error("the validator set from height {from_height} has a total power above {TOTAL_POWER_MAX}")]
    PowerOverflow {
        /// Its first height.
        from_height: u64,
    },
    /// A set for genesis.
    #[error("a validator set starts at height 0, but genesis is not signed: the first set starts at height 1")]
    GenesisHeight,
    /// Two sets for one height.
    #[error("two validator sets start at height {from_height}")]
    SameHeight {
        /// The height.
        from_height: u64,
    },
}

impl ValidatorSet {
    /// Checks the members: at least one, at most [`VALIDATORS_MAX`], distinct keys, each
    /// with power, a total of at most [`TOTAL_POWER_MAX`].
    pub fn check(&self) -> Result<(), ValidatorSetError> {
        let from_height = self.from_height;
        if from_height == 0 {
            return Err(ValidatorSetError::GenesisHeight);
        }
        if self.members.is_empty() {
            return Err(ValidatorSetError::Empty { from_height });
        }
        if self.members.len() > VALIDATORS_MAX {
            return Err(ValidatorSetError::TooMany { from_height, count: self.members.len() });
        }
        let mut keys = BTreeSet::new();
        let mut total: u64 = 0;
        for member in &self.members {
            if !keys.insert(member.key) {
                return Err(ValidatorSetError::Duplicate { from_height, key: member.key });
            }
            if member.power == 0 {
                return Err(ValidatorSetError::ZeroPower { from_height, key: member.key });
            }
            total = total
                .checked_add(member.power)
                .filter(|total| *total <= TOTAL_POWER_MAX)
                .ok_or(ValidatorSetError::PowerOverflow { from_height })?;
        }
        Ok(())
    }

    /// The set's ledger record: key and value.
    pub fn record(&self) -> (Vec<u8>, Vec<u8>) {
        let mut key = VALIDATORS_PREFIX.to_vec();
        key.extend_from_slice(&self.from_height.to_be_bytes());
        // Encoding a Vec of fixed-size members into memory cannot fail.
        let value = borsh::to_vec(&self.members).unwrap_or_default();
        (key, value)
    }

    /// Decodes a record written by [`ValidatorSet::record`].
    pub fn from_record(key: &[u8], value: &[u8]) -> Option<ValidatorSet> {
        let height_bytes: [u8; 8] = key.strip_prefix(VALIDATORS_PREFIX)?.try_into().ok()?;
        let members = borsh::from_slice(value).ok()?;
        Some(ValidatorSet { from_height: u64::from_be_bytes(height_bytes), members })
    }
}

/// Checks a schedule of sets (genesis and later changes): each set valid, no two for
/// one height.
pub fn check_schedule(sets: &[ValidatorSet]) -> Result<(), ValidatorSetError> {
    let mut heights = BTreeSet::new();
    for set in sets {
        set.check()?;
        if !heights.insert(set.from_height) {
            return Err(ValidatorSetError::SameHeight { from_height: set.from_height });
        }
    }
    Ok(())
}

impl Ledger {
    /// The validator set in force at `height`: the record with the greatest first height
    /// at or below it (`None` when the chain has none, or its record is malformed).
    pub fn validators_at(&self, height: u64) -> Option<ValidatorSet> {
        let mut key = VALIDATORS_PREFIX.to_vec();
        key.extend_from_slice(&height.to_be_bytes());
        let (found_key, value) = self.record_at_or_below(&key, VALIDATORS_PREFIX)?;
        ValidatorSet::from_record(found_key, value)
    }

    /// Every validator set the chain records, by first height (malformed records left
    /// out): what a reader off the node loop needs to answer [`Ledger::validators_at`].
    pub fn validator_sets(&self) -> Vec<ValidatorSet> {
        self.records_with_prefix(VALIDATORS_PREFIX)
            .filter_map(|(key, value)| ValidatorSet::from_record(key, value))
            .collect()
    }
}

/// The set of `sets` (by first height, as [`Ledger::validator_sets`] lists them) in force
/// at `height`: the one with the greatest first height at or below it.
pub fn set_at(sets: &[ValidatorSet], height: u64) -> Option<&ValidatorSet> {
    sets.iter().rev().find(|set| set.from_height <= height)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(byte: u8, power: u64) -> Member {
        Member { key: PublicKey([byte; 32]), power }
    }

    fn set(from_height: u64, members: Vec<Member>) -> ValidatorSet {
        ValidatorSet { from_height, members }
    }

    #[test]
    fn the_set_in_force_is_the_latest_at_or_below_the_height() {
        let first = set(1, vec![member(1, 1), member(2, 1)]);
        let second = set(10, vec![member(3, 5)]);
        let ledger = Ledger::from_state([], [first.record(), second.record()]);
        assert_eq!(ledger.validators_at(0), None);
        assert_eq!(ledger.validators_at(1), Some(first.clone()));
        assert_eq!(ledger.validators_at(9), Some(first));
        assert_eq!(ledger.validators_at(10), Some(second.clone()));
        assert_eq!(ledger.validators_at(u64::MAX), Some(second));
        let sets = ledger.validator_sets();
        for height in [0, 1, 9, 10, u64::MAX] {
            assert_eq!(set_at(&sets, height), ledger.validators_at(height).as_ref(), "height {height}");
        }
    }

    #[test]
    fn a_chain_without_sets_has_none_even_with_other_records() {
        let ledger = Ledger::from_state([], [(b"consensus/z".to_vec(), vec![1]), (b"a".to_vec(), vec![2])]);
        assert_eq!(ledger.validators_at(5), None);
    }

    #[test]
    fn bad_sets_are_named() {
        assert_eq!(set(0, vec![member(1, 1)]).check(), Err(ValidatorSetError::GenesisHeight));
        assert_eq!(set(1, vec![]).check(), Err(ValidatorSetError::Empty { from_height: 1 }));
        assert_eq!(
            set(2, vec![member(1, 1), member(1, 2)]).check(),
            Err(ValidatorSetError::Duplicate { from_height: 2, key: PublicKey([1; 32]) })
        );
        assert_eq!(
            set(3, vec![member(1, 0)]).check(),
            Err(ValidatorSetError::ZeroPower { from_height: 3, key: PublicKey([1; 32]) })
        );
        assert_eq!(
            set(4, vec![member(1, TOTAL_POWER_MAX), member(2, 1)]).check(),
            Err(ValidatorSetError::PowerOverflow { from_height: 4 })
        );
        let many: Vec<Member> =
            (0..=VALIDATORS_MAX).map(|i| Member { key: PublicKey([0; 32]).with_index(i), power: 1 }).collect();
        assert_eq!(set(5, many).check(), Err(ValidatorSetError::TooMany { from_height: 5, count: VALIDATORS_MAX + 1 }));
        assert_eq!(
            check_schedule(&[set(1, vec![member(1, 1)]), set(1, vec![member(2, 1)])]),
            Err(ValidatorSetError::SameHeight { from_height: 1 })
        );
    }

    #[test]
    fn the_largest_set_fits_in_one_record() {
        let members: Vec<Member> =
            (0..VALIDATORS_MAX).map(|i| Member { key: PublicKey([0; 32]).with_index(i), power: 1 }).collect();
        let (key, value) = set(1, members).record();
        assert!(key.len() <= super::super::exec::RECORD_KEY_BYTES_MAX);
        assert!(value.len() <= super::super::exec::RECORD_VALUE_BYTES_MAX);
    }

    trait WithIndex {
        fn with_index(self, index: usize) -> PublicKey;
    }

    impl WithIndex for PublicKey {
        fn with_index(mut self, index: usize) -> PublicKey {
            self.0[..8].copy_from_slice(&(index as u64).to_be_bytes());
            self
        }
    }
}
