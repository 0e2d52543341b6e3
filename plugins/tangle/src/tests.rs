use super::*;
use proptest::prelude::*;

fn unit(byte: u8) -> Hash32 {
    Hash32([byte; 32])
}

/// G ← A, G ← B, {A, B} ← C, C ← D: a diamond above genesis.
fn diamond() -> Tangle {
    let mut tangle = Tangle::new(unit(0));
    tangle.insert(unit(20), &[unit(0)]).unwrap();
    tangle.insert(unit(10), &[unit(0)]).unwrap();
    tangle.insert(unit(30), &[unit(20), unit(10)]).unwrap();
    tangle.insert(unit(40), &[unit(30)]).unwrap();
    tangle
}

#[test]
fn cumulative_weight_counts_each_approver_once_through_a_diamond() {
    let tangle = diamond();
    // Summing the approvers' weights would give 1 + 3 + 3 = 7: D and C twice.
    assert_eq!(tangle.cumulative_weight(&unit(0)), 5);
    assert_eq!(tangle.cumulative_weight(&unit(20)), 3);
    assert_eq!(tangle.cumulative_weight(&unit(30)), 2);
    assert_eq!(tangle.cumulative_weight(&unit(40)), 1);
    assert_eq!(tangle.cumulative_weight(&unit(99)), 0);
    assert_eq!(tangle.tips(), vec![unit(40)]);
}

#[test]
fn the_final_order_places_parents_first_and_ties_by_the_smallest_hash() {
    let tangle = diamond();
    let none = HashSet::new();
    // A (20) and B (10) are both ready after genesis: the smaller hash goes first.
    assert_eq!(tangle.final_order(&[unit(30)], &none), Ok(vec![unit(10), unit(20), unit(30)]));
    let finalized: HashSet<Hash32> = [unit(10), unit(20), unit(30)].into();
    assert_eq!(tangle.final_order(&[unit(40)], &finalized), Ok(vec![unit(40)]));
    assert_eq!(tangle.final_order(&[unit(40)], &none).map(|o| o.len()), Ok(4));
    assert_eq!(tangle.final_order(&[unit(77)], &none), Err(unit(77)), "a tip it does not hold");
    assert_eq!(tangle.final_order(&[unit(0)], &none), Ok(Vec::new()), "genesis is final always");
}

#[test]
fn units_with_bad_parents_are_refused_with_the_reason() {
    let mut tangle = diamond();
    assert_eq!(tangle.insert(unit(50), &[]), Err(TangleError::ParentCount(0)));
    let nine: Vec<Hash32> = (0..9).map(|_| unit(40)).collect();
    assert_eq!(tangle.insert(unit(50), &nine), Err(TangleError::ParentCount(9)));
    assert_eq!(
        tangle.insert(unit(50), &[unit(40), unit(40)]),
        Err(TangleError::DuplicateParent { unit: unit(50), parent: unit(40) })
    );
    assert_eq!(
        tangle.insert(unit(50), &[unit(41)]),
        Err(TangleError::UnknownParent { unit: unit(50), parent: unit(41) })
    );
    assert_eq!(tangle.insert(unit(40), &[unit(30)]), Err(TangleError::Known(unit(40))));
    assert_eq!(tangle.len(), 5, "nothing refused was kept");
    assert!(tangle.insert(unit(50), &[unit(40), unit(10)]).is_ok());
}

#[test]
fn a_walk_ends_at_a_tip_and_a_large_alpha_follows_the_heaviest_approver() {
    // Genesis ← H (approved by three units) and genesis ← L (approved by none).
    let mut tangle = Tangle::new(unit(0));
    tangle.insert(unit(1), &[unit(0)]).unwrap();
    tangle.insert(unit(2), &[unit(0)]).unwrap();
    for child in 3..=5 {
        tangle.insert(unit(child), &[unit(1)]).unwrap();
    }
    let mut seed = 7u64;
    let mut random = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed
    };
    let tips = tangle.tips();
    for _ in 0..50 {
        let tip = tangle.walk(&unit(0), 0.0, &mut random).unwrap();
        assert!(tips.contains(&tip), "{tip} is no tip");
        let heavy = tangle.walk(&unit(0), 100.0, &mut random).unwrap();
        assert_ne!(heavy, unit(2), "α = 100 never steps to the light approver");
    }
    assert_eq!(tangle.walk(&unit(99), 0.001, &mut random), None);
}

#[test]
fn proof_of_work_counts_leading_zero_bits() {
    let mut hash = Hash32([0xff; 32]);
    assert!(pow_ok(&hash, 0));
    assert!(!pow_ok(&hash, 1));
    hash.0[0] = 0x00;
    hash.0[1] = 0x0f;
    assert!(pow_ok(&hash, 12));
    assert!(!pow_ok(&hash, 13));
    assert!(pow_ok(&Hash32([0; 32]), 256));
    let (nonce, found) = solve_pow(b"unit header", 10, 0, 1 << 20).expect("a 10-bit nonce within 2^20 tries");
    assert!(pow_ok(&found, 10));
    assert_eq!(solve_pow(b"unit header", 10, nonce, 1), Some((nonce, found)), "the same nonce, the same hash");
}

/// A random tangle: unit i (1-based, hash from i) approves 1 to 3 earlier units.
fn edges() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (2usize..40).prop_flat_map(|count| {
        (1..=count).map(|index| proptest::collection::vec(0..index, 1..=3)).collect::<Vec<_>>().prop_map(
            |mut parents| {
                for list in &mut parents {
                    list.sort_unstable();
                    list.dedup();
                }
                parents
            },
        )
    })
}

fn hash_of(index: usize) -> Hash32 {
    use sha2::{Digest, Sha256};
    Hash32(Sha256::digest(index.to_be_bytes()).into())
}

/// The tangle built by inserting the units in the order `pick` chooses among those whose
/// parents are all held.
fn build(parents: &[Vec<usize>], mut pick: impl FnMut(usize) -> usize) -> Tangle {
    let mut tangle = Tangle::new(hash_of(0));
    let mut left: Vec<usize> = (1..=parents.len()).collect();
    while !left.is_empty() {
        let ready: Vec<usize> = left
            .iter()
            .copied()
            .filter(|index| parents[index - 1].iter().all(|parent| tangle.contains(&hash_of(*parent))))
            .collect();
        let chosen = ready[pick(ready.len())];
        let unit_parents: Vec<Hash32> = parents[chosen - 1].iter().map(|p| hash_of(*p)).collect();
        tangle.insert(hash_of(chosen), &unit_parents).unwrap();
        left.retain(|index| *index != chosen);
    }
    tangle
}

proptest! {
    /// Two nodes that received the same units in different orders compute the same
    /// weights and the same final order; the order puts every unit after its parents;
    /// and two successive checkpoints make disjoint sets final whose union is the
    /// order of the later checkpoint alone.
    #[test]
    fn every_node_with_the_same_units_computes_the_same_final_order(
        parents in edges(),
        picks in proptest::collection::vec(any::<u64>(), 64),
        split in any::<prop::sample::Index>(),
    ) {
        let first = build(&parents, |_| 0);
        let mut cursor = 0;
        let second = build(&parents, |ready| {
            cursor += 1;
            (picks[cursor % picks.len()] % ready as u64) as usize
        });
        let none = HashSet::new();
        let tips = first.tips();
        prop_assert_eq!(&tips, &second.tips());
        let order = first.final_order(&tips, &none).unwrap();
        prop_assert_eq!(&order, &second.final_order(&tips, &none).unwrap());
        prop_assert_eq!(order.len(), parents.len(), "every unit but genesis is under the tips");
        let position: HashMap<Hash32, usize> = order.iter().enumerate().map(|(i, u)| (*u, i)).collect();
        for unit in &order {
            for parent in first.parents(unit).unwrap() {
                prop_assert!(*parent == first.genesis() || position[parent] < position[unit]);
            }
            prop_assert_eq!(first.cumulative_weight(unit), second.cumulative_weight(unit));
        }
        // A checkpoint on one unit first, then on the tips.
        let middle = order[split.index(order.len())];
        let early = first.final_order(&[middle], &none).unwrap();
        let finalized: HashSet<Hash32> = early.iter().copied().collect();
        let late = first.final_order(&tips, &finalized).unwrap();
        prop_assert!(late.iter().all(|unit| !finalized.contains(unit)));
        prop_assert_eq!(early.len() + late.len(), order.len());
    }
}
