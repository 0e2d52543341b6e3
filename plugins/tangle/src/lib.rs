//! The tangle: units that approve earlier units, as the DAG chain type keeps them
//! (ADR 0015). Everything here is a pure function of the units held, so that every node
//! holding the same units computes the same weights and the same final order.
//!
//! - [`Tangle::insert`]: a unit joins once all its parents are known; at most
//!   [`PARENTS_MAX`] distinct parents, at most [`UNITS_MAX`] units held.
//! - [`Tangle::cumulative_weight`]: 1 + the number of units that approve it directly or
//!   indirectly, counted once each by one walk with a visited set (summing the
//!   approvers' weights counts a unit reachable along two paths twice).
//! - [`Tangle::walk`]: IOTA's tip selection: from an entry unit, step to an approver
//!   with probability ∝ `exp(α · (W − W_max))` until a tip. Local, not consensus.
//! - [`Tangle::final_order`]: the units a checkpoint makes final, in execution order:
//!   the past cone of its tips minus what is final already, topologically sorted with
//!   ties broken by the smallest hash.
//! - [`pow_ok`]: a unit's proof of work, `pow_bits` leading zero bits of its hash.

use nest_sdk::Hash32;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

/// Most parents one unit approves: the SDK's bound for every chain type.
pub const PARENTS_MAX: usize = nest_sdk::PARENTS_MAX;
/// Most units one tangle holds (the units above the last final checkpoint are bounded
/// by the chain type well below this).
pub const UNITS_MAX: usize = 1_000_000;

/// Why a unit cannot join the tangle.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum TangleError {
    /// Held already.
    #[error("unit {0} is already in the tangle")]
    Known(Hash32),
    /// No parent, or more than allowed.
    #[error("a unit approves 1 to {PARENTS_MAX} parents, not {0}")]
    ParentCount(usize),
    /// A parent named twice.
    #[error("unit {unit} names parent {parent} twice")]
    DuplicateParent {
        /// The unit.
        unit: Hash32,
        /// The parent.
        parent: Hash32,
    },
    /// A parent this tangle does not hold (sync it first).
    #[error("unit {unit} approves {parent}, which this node does not hold")]
    UnknownParent {
        /// The unit.
        unit: Hash32,
        /// The parent.
        parent: Hash32,
    },
    /// The tangle is full.
    #[error("the tangle holds {UNITS_MAX} units already")]
    Full,
}

#[derive(Clone, Debug, Default)]
struct Unit {
    parents: Vec<Hash32>,
    approvers: Vec<Hash32>,
}

/// A set of units and their approval edges, rooted at a genesis unit.
#[derive(Clone, Debug)]
pub struct Tangle {
    genesis: Hash32,
    units: HashMap<Hash32, Unit>,
}

impl Tangle {
    /// A tangle holding only `genesis`.
    pub fn new(genesis: Hash32) -> Tangle {
        Tangle { genesis, units: HashMap::from([(genesis, Unit::default())]) }
    }

    /// The genesis unit.
    pub fn genesis(&self) -> Hash32 {
        self.genesis
    }

    /// Units held, genesis included.
    pub fn len(&self) -> usize {
        self.units.len()
    }

    /// Never: a tangle holds its genesis.
    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Whether `unit` is held.
    pub fn contains(&self, unit: &Hash32) -> bool {
        self.units.contains_key(unit)
    }

    /// The parents of `unit`, if held.
    pub fn parents(&self, unit: &Hash32) -> Option<&[Hash32]> {
        self.units.get(unit).map(|u| u.parents.as_slice())
    }

    /// Adds `unit`, which approves `parents` (all held, distinct, 1 to [`PARENTS_MAX`]).
    pub fn insert(&mut self, unit: Hash32, parents: &[Hash32]) -> Result<(), TangleError> {
        if self.units.contains_key(&unit) {
            return Err(TangleError::Known(unit));
        }
        if parents.is_empty() || parents.len() > PARENTS_MAX {
            return Err(TangleError::ParentCount(parents.len()));
        }
        if self.units.len() >= UNITS_MAX {
            return Err(TangleError::Full);
        }
        let mut seen = HashSet::with_capacity(parents.len());
        for parent in parents {
            if !seen.insert(*parent) {
                return Err(TangleError::DuplicateParent { unit, parent: *parent });
            }
            if !self.units.contains_key(parent) {
                return Err(TangleError::UnknownParent { unit, parent: *parent });
            }
        }
        for parent in parents {
            if let Some(entry) = self.units.get_mut(parent) {
                entry.approvers.push(unit);
            }
        }
        self.units.insert(unit, Unit { parents: parents.to_vec(), approvers: Vec::new() });
        Ok(())
    }

    /// The units no unit approves yet, in hash order.
    pub fn tips(&self) -> Vec<Hash32> {
        let tips: BTreeSet<Hash32> =
            self.units.iter().filter(|(_, unit)| unit.approvers.is_empty()).map(|(hash, _)| *hash).collect();
        tips.into_iter().collect()
    }

    /// 1 + the number of units that approve `unit` directly or indirectly (0 if not held).
    pub fn cumulative_weight(&self, unit: &Hash32) -> u64 {
        if !self.units.contains_key(unit) {
            return 0;
        }
        let mut visited: HashSet<Hash32> = HashSet::from([*unit]);
        let mut queue = VecDeque::from([*unit]);
        while let Some(next) = queue.pop_front() {
            for approver in self.units.get(&next).map(|u| u.approvers.as_slice()).unwrap_or_default() {
                if visited.insert(*approver) {
                    queue.push_back(*approver);
                }
            }
        }
        visited.len() as u64
    }

    /// The past cone of `tips`: the tips and every unit they reach through parents.
    fn past_cone(&self, tips: &[Hash32]) -> HashSet<Hash32> {
        let mut cone: HashSet<Hash32> = tips.iter().copied().filter(|tip| self.units.contains_key(tip)).collect();
        let mut queue: VecDeque<Hash32> = cone.iter().copied().collect();
        while let Some(next) = queue.pop_front() {
            for parent in self.units.get(&next).map(|u| u.parents.as_slice()).unwrap_or_default() {
                if cone.insert(*parent) {
                    queue.push_back(*parent);
                }
            }
        }
        cone
    }

    /// The units a checkpoint naming `tips` makes final, in execution order: the past
    /// cone of `tips` minus `already_final`, each unit after its parents, and among the
    /// units whose parents are all placed, the smallest hash first (Kahn's sort). The
    /// genesis unit counts as final always. A tip this tangle does not hold is an error:
    /// the node syncs it before it executes the checkpoint.
    pub fn final_order(&self, tips: &[Hash32], already_final: &HashSet<Hash32>) -> Result<Vec<Hash32>, Hash32> {
        if let Some(missing) = tips.iter().find(|tip| !self.units.contains_key(tip)) {
            return Err(*missing);
        }
        let cone = self.past_cone(tips);
        let is_new = |unit: &Hash32| *unit != self.genesis && !already_final.contains(unit) && cone.contains(unit);
        // Parents still to place, per unit of the new part of the cone.
        let mut waiting: HashMap<Hash32, usize> = HashMap::new();
        let mut ready = BTreeSet::new();
        for unit in cone.iter().filter(|unit| is_new(unit)) {
            let parents = self.units.get(unit).map(|u| u.parents.as_slice()).unwrap_or_default();
            let count = parents.iter().filter(|parent| is_new(parent)).count();
            if count == 0 {
                ready.insert(*unit);
            } else {
                waiting.insert(*unit, count);
            }
        }
        let mut order = Vec::with_capacity(waiting.len() + ready.len());
        while let Some(unit) = ready.pop_first() {
            order.push(unit);
            for approver in self.units.get(&unit).map(|u| u.approvers.as_slice()).unwrap_or_default() {
                if let Some(count) = waiting.get_mut(approver) {
                    *count -= 1;
                    if *count == 0 {
                        waiting.remove(approver);
                        ready.insert(*approver);
                    }
                }
            }
        }
        Ok(order)
    }

    /// IOTA's weighted walk from `entry` to a tip: at each unit, an approver is chosen
    /// with probability ∝ `exp(α · (W − W_max))` over its approvers' cumulative weights
    /// W, drawing from `random` (uniform `u64`s). α = 0 is a uniform walk; a large α
    /// follows the heaviest approver. `None` if `entry` is not held.
    pub fn walk(&self, entry: &Hash32, alpha: f64, mut random: impl FnMut() -> u64) -> Option<Hash32> {
        let mut at = *entry;
        loop {
            let approvers = &self.units.get(&at)?.approvers;
            if approvers.is_empty() {
                return Some(at);
            }
            // Sorted, so that a seed gives the same walk whatever the insertion order.
            let mut candidates: Vec<(Hash32, u64)> =
                approvers.iter().map(|a| (*a, self.cumulative_weight(a))).collect();
            candidates.sort_by_key(|(hash, _)| hash.0);
            let heaviest = candidates.iter().map(|(_, w)| *w).max().unwrap_or(0);
            let weights: Vec<f64> =
                candidates.iter().map(|(_, w)| (alpha * (*w as f64 - heaviest as f64)).exp()).collect();
            let total: f64 = weights.iter().sum();
            let mut point = (random() >> 11) as f64 / (1u64 << 53) as f64 * total;
            let mut chosen = candidates.len() - 1;
            for (index, weight) in weights.iter().enumerate() {
                if point < *weight {
                    chosen = index;
                    break;
                }
                point -= weight;
            }
            at = candidates[chosen].0;
        }
    }
}

/// Whether `hash` has at least `bits` leading zero bits (a unit's proof of work).
pub fn pow_ok(hash: &Hash32, bits: u32) -> bool {
    let mut left = bits;
    for byte in hash.0 {
        if left == 0 {
            return true;
        }
        let needed = left.min(8);
        if byte.leading_zeros() < needed {
            return false;
        }
        left -= needed;
    }
    left == 0
}

/// The smallest nonce from `start` whose `sha256(prefix ‖ nonce)` meets `bits`, within
/// `tries`; the hash with it. What a device does once per unit.
pub fn solve_pow(prefix: &[u8], bits: u32, start: u64, tries: u64) -> Option<(u64, Hash32)> {
    use sha2::{Digest, Sha256};
    (start..start.saturating_add(tries)).find_map(|nonce| {
        let hash = Hash32(Sha256::new().chain_update(prefix).chain_update(nonce.to_be_bytes()).finalize().into());
        pow_ok(&hash, bits).then_some((nonce, hash))
    })
}

#[cfg(test)]
mod tests;
