//! Compute Merkle roots and inclusion proofs over transaction ids.
//!
//! Leaves are hashed as `sha256(0x00 ++ leaf)` and inner nodes as
//! `sha256(0x01 ++ left ++ right)`, so a leaf can never pass for an inner node. A node
//! without a sibling is promoted to the next level unchanged. The root of no leaves is
//! `sha256(b"nest/merkle/empty")`.

use crate::crypto::{sha256, sha256_parts};
use nest_sdk::Hash32;

const LEAF_PREFIX: &[u8] = &[0x00];
const NODE_PREFIX: &[u8] = &[0x01];
const EMPTY_DOMAIN: &[u8] = b"nest/merkle/empty";

/// One step of an inclusion proof: the sibling hash and whether it sits on the right.
pub type ProofStep = (Hash32, bool);

fn leaf_hash(leaf: &Hash32) -> Hash32 {
    sha256_parts(&[LEAF_PREFIX, &leaf.0])
}

fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    sha256_parts(&[NODE_PREFIX, &left.0, &right.0])
}

/// The level above `level`: pairs hashed, an odd last node promoted.
fn parent_level(level: &[Hash32]) -> Vec<Hash32> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [left, right] => node_hash(left, right),
            [single] => *single,
            _ => unreachable!("chunks(2) yields one or two items"),
        })
        .collect()
}

/// The Merkle root of `leaves`, in order.
pub fn merkle_root(leaves: &[Hash32]) -> Hash32 {
    if leaves.is_empty() {
        return sha256(EMPTY_DOMAIN);
    }
    let mut level: Vec<Hash32> = leaves.iter().map(leaf_hash).collect();
    while level.len() > 1 {
        level = parent_level(&level);
    }
    level[0]
}

/// The proof that `leaves[index]` is in the tree, from the leaf up; `None` if `index`
/// is out of range.
pub fn merkle_proof(leaves: &[Hash32], index: usize) -> Option<Vec<ProofStep>> {
    if index >= leaves.len() {
        return None;
    }
    let mut proof = Vec::new();
    let mut level: Vec<Hash32> = leaves.iter().map(leaf_hash).collect();
    let mut position = index;
    while level.len() > 1 {
        let sibling = position ^ 1;
        if let Some(hash) = level.get(sibling) {
            proof.push((*hash, sibling > position));
        }
        level = parent_level(&level);
        position /= 2;
    }
    Some(proof)
}

/// Whether `proof` shows that `leaf` is in the tree whose root is `root`.
pub fn verify_proof(root: &Hash32, leaf: &Hash32, proof: &[ProofStep]) -> bool {
    let computed = proof.iter().fold(leaf_hash(leaf), |hash, (sibling, sibling_on_right)| {
        if *sibling_on_right { node_hash(&hash, sibling) } else { node_hash(sibling, &hash) }
    });
    computed == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(count: u8) -> Vec<Hash32> {
        (0..count).map(|i| Hash32([i + 1; 32])).collect()
    }

    #[test]
    fn empty_tree_has_the_domain_root() {
        assert_eq!(merkle_root(&[]), sha256(b"nest/merkle/empty"));
        assert_eq!(merkle_proof(&[], 0), None);
    }

    #[test]
    fn roots_for_one_to_five_leaves_follow_the_construction() {
        let l: Vec<Hash32> = leaves(5).iter().map(leaf_hash).collect();
        let n01 = node_hash(&l[0], &l[1]);
        let n23 = node_hash(&l[2], &l[3]);
        let expected =
            [l[0], n01, node_hash(&n01, &l[2]), node_hash(&n01, &n23), node_hash(&node_hash(&n01, &n23), &l[4])];
        for (count, root) in (1..=5).zip(expected) {
            assert_eq!(merkle_root(&leaves(count)), root, "{count} leaves");
        }
    }

    #[test]
    fn roots_match_pinned_vectors() {
        // Computed independently (Python hashlib) for leaves [1; 32], [2; 32], ...
        let pinned = [
            "dcffe786ded16d283c663846ad0c4ff26558fccde36ca9d30b2ea19eade9fc0e",
            "3a066e0f40c6a1981ebfa60d2411625d0517ae22c2fc8c7c1784ff8a75c78565",
            "df896896c799531f1fd1e556cea26a6989ab06853bcbfdd3e4f5097a611f658f",
            "3b3c0ce45d11517a54300a196b61497c4165150d72b7782a4548e3984da771b2",
            "c51042bb8b9d81dfc115ef99d0e2cecf1954cfc078d70032d187b46615f01b90",
        ];
        assert_eq!(merkle_root(&[]).to_hex(), "1c4d03c5b36fd17a6df6161bda55c77a1615b18fc1c10626ecffccb304614c0a");
        let computed: Vec<String> = (1..=5).map(|n| merkle_root(&leaves(n)).to_hex()).collect();
        assert_eq!(computed.len(), pinned.len());
        for (count, (got, want)) in computed.iter().zip(pinned).enumerate() {
            assert_eq!(got, want, "{} leaves", count + 1);
        }
    }

    #[test]
    fn leaf_and_node_hashes_are_domain_separated() {
        let a = Hash32([1; 32]);
        let b = Hash32([2; 32]);
        // A two-leaf root is not the hash of the concatenated leaves nor a leaf hash.
        let root = merkle_root(&[a, b]);
        assert_ne!(root, sha256_parts(&[&a.0, &b.0]));
        assert_ne!(root, leaf_hash(&a));
        // An inner node presented as a single leaf gives a different root.
        assert_ne!(merkle_root(&[node_hash(&leaf_hash(&a), &leaf_hash(&b))]), root);
    }

    #[test]
    fn every_proof_verifies_for_one_to_nine_leaves() {
        for count in 1..=9 {
            let leaves = leaves(count);
            let root = merkle_root(&leaves);
            for (index, leaf) in leaves.iter().enumerate() {
                let proof = merkle_proof(&leaves, index).unwrap();
                assert!(verify_proof(&root, leaf, &proof), "{count} leaves, #{index}");
            }
            assert_eq!(merkle_proof(&leaves, leaves.len()), None);
        }
    }

    #[test]
    fn proof_shapes_for_five_leaves() {
        let leaves = leaves(5);
        // The fifth leaf is promoted twice and pairs only at the top.
        let proof = merkle_proof(&leaves, 4).unwrap();
        assert_eq!(proof.len(), 1);
        assert!(!proof[0].1, "sibling of the last leaf is on the left");
        let proof = merkle_proof(&leaves, 0).unwrap();
        assert_eq!(proof.iter().map(|s| s.1).collect::<Vec<_>>(), [true; 3]);
    }

    #[test]
    fn wrong_leaf_or_tampered_proof_fails() {
        let leaves = leaves(5);
        let root = merkle_root(&leaves);
        let proof = merkle_proof(&leaves, 2).unwrap();
        assert!(!verify_proof(&root, &leaves[3], &proof));
        let mut flipped = proof.clone();
        flipped[0].1 = !flipped[0].1;
        assert!(!verify_proof(&root, &leaves[2], &flipped));
        let mut changed = proof;
        changed[1].0.0[0] ^= 1;
        assert!(!verify_proof(&root, &leaves[2], &changed));
    }
}
