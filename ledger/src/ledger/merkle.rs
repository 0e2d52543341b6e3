//! Compute Merkle roots and inclusion proofs over transaction ids, as RFC 6962 §2.1 defines
//! them, so that any RFC 6962 (or RFC 9162) verifier accepts Nest's proofs.
//!
//! Leaves are hashed as `sha256(0x00 ++ leaf)` and inner nodes as
//! `sha256(0x01 ++ left ++ right)`, so a leaf can never pass for an inner node; the last
//! node of a level is never duplicated. A transaction's leaf is its 32-byte id. The one
//! departure from the RFC is the root of no leaves, `sha256(b"nest/merkle/empty")` rather
//! than the hash of the empty string; an empty tree has no inclusion proofs, so verifiers
//! never meet it.

use crate::crypto::{sha256, sha256_parts};
use nest_sdk::Hash32;

const LEAF_PREFIX: &[u8] = &[0x00];
const NODE_PREFIX: &[u8] = &[0x01];
const EMPTY_DOMAIN: &[u8] = b"nest/merkle/empty";

/// Why an inclusion proof does not hold, in the order RFC 9162 §2.1.3.2 checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    IndexOutOfRange {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        size: u64,
    },
    /// The path has more hashes than a tree of this size has levels above the leaf.
    PathTooLong {
        /// Hashes in the path.
        len: usize,
    },
    /// The path stops before it reaches the root of a tree of this size.
    PathTooShort {
        /// Hashes in the path.
        len: usize,
    },
    /// The path leads to another root.
    RootMismatch {
        /// The root the leaf and path hash to.
        computed: Hash32,
    },
}

impl std::fmt::Display for ProofError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProofError::IndexOutOfRange { index, size } => {
                write!(f, "leaf index {index} is not below the tree size {size}")
            }
            ProofError::PathTooLong { len } => {
                write!(f, "the audit path has {len} hashes, more than a tree of this size and index needs")
            }
            ProofError::PathTooShort { len } => {
                write!(f, "the audit path has {len} hashes, fewer than a tree of this size and index needs")
            }
            ProofError::RootMismatch { computed } => {
                write!(f, "the leaf and audit path hash to root {computed}, not to the expected root")
            }
        }
    }
}

impl std::error::Error for ProofError {}

/// The RFC 6962 hash of one leaf's bytes: `sha256(0x00 ++ leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash32 {
    sha256_parts(&[LEAF_PREFIX, leaf])
}

fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    sha256_parts(&[NODE_PREFIX, &left.0, &right.0])
}

/// The level above `level`: pairs hashed, an odd last node promoted.
///
/// Building bottom-up and promoting the odd node gives the tree RFC 6962 §2.1 defines
/// top-down (split at the largest power of two below the size): the promoted node is the
/// root of the right subtree that the split leaves smaller.
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

/// The Merkle root of `leaves`, in order: each leaf (a transaction id) hashed with
/// [`leaf_hash`] of its 32 bytes.
pub fn merkle_root(leaves: &[Hash32]) -> Hash32 {
    let hashes: Vec<Hash32> = leaves.iter().map(|leaf| leaf_hash(&leaf.0)).collect();
    root_of_leaf_hashes(&hashes)
}

/// The Merkle tree head over leaves already hashed with [`leaf_hash`].
pub fn root_of_leaf_hashes(hashes: &[Hash32]) -> Hash32 {
    if hashes.is_empty() {
        return sha256(EMPTY_DOMAIN);
    }
    let mut level = hashes.to_vec();
    while level.len() > 1 {
        level = parent_level(&level);
    }
    level[0]
}

/// The RFC 6962 audit path of `leaves[index]` (transaction ids), from the leaf up: the
/// sibling hashes only, whose sides the verifier derives from the index and the size.
/// `None` if `index` is out of range.
pub fn inclusion_path(leaves: &[Hash32], index: usize) -> Option<Vec<Hash32>> {
    let hashes: Vec<Hash32> = leaves.iter().map(|leaf| leaf_hash(&leaf.0)).collect();
    path_of_leaf_hashes(&hashes, index)
}

/// [`inclusion_path`] over leaves already hashed with [`leaf_hash`].
pub fn path_of_leaf_hashes(hashes: &[Hash32], index: usize) -> Option<Vec<Hash32>> {
    if index >= hashes.len() {
        return None;
    }
    let mut path = Vec::new();
    let mut level = hashes.to_vec();
    let mut position = index;
    while level.len() > 1 {
        // A promoted node has no sibling at this level and adds nothing to the path.
        if let Some(sibling) = level.get(position ^ 1) {
            path.push(*sibling);
        }
        level = parent_level(&level);
        position /= 2;
    }
    Some(path)
}

/// Checks that the leaf whose RFC 6962 hash is `leaf_hash` sits at `index` in the tree of
/// `size` leaves whose head is `root`, by the algorithm of RFC 9162 §2.1.3.2.
///
/// The proof binds the index but not the size on its own: a tree of another size can
/// share this leaf's path shape. Whoever checks it must take `size` from the same signed
/// source as `root` (a block header's `tx_count` next to its `tx_root`).
pub fn verify_inclusion(
    leaf_hash: &Hash32,
    index: u64,
    size: u64,
    path: &[Hash32],
    root: &Hash32,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut node, mut last) = (index, size - 1);
    let mut computed = *leaf_hash;
    for sibling in path {
        if last == 0 {
            return Err(ProofError::PathTooLong { len: path.len() });
        }
        if node & 1 == 1 || node == last {
            computed = node_hash(sibling, &computed);
            // A right-most node without a sibling is promoted: skip the levels it climbs alone.
            while node & 1 == 0 && node != 0 {
                node >>= 1;
                last >>= 1;
            }
        } else {
            computed = node_hash(&computed, sibling);
        }
        node >>= 1;
        last >>= 1;
    }
    if last != 0 {
        return Err(ProofError::PathTooShort { len: path.len() });
    }
    if computed != *root {
        return Err(ProofError::RootMismatch { computed });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(count: u8) -> Vec<Hash32> {
        (0..count).map(|i| Hash32([i + 1; 32])).collect()
    }

    fn hashed(leaves: &[Hash32]) -> Vec<Hash32> {
        leaves.iter().map(|leaf| leaf_hash(&leaf.0)).collect()
    }

    fn hex32(text: &str) -> Hash32 {
        Hash32(hex::decode(text).unwrap().try_into().unwrap())
    }

    /// RFC 6962 §2.1 written top-down as the RFC states it: split at the largest power of
    /// two below the size. The crate builds bottom-up; the two must agree.
    fn split(size: usize) -> usize {
        let mut k = 1;
        while k * 2 < size {
            k *= 2;
        }
        k
    }

    fn reference_root(hashes: &[Hash32]) -> Hash32 {
        match hashes {
            [single] => *single,
            _ => {
                let k = split(hashes.len());
                node_hash(&reference_root(&hashes[..k]), &reference_root(&hashes[k..]))
            }
        }
    }

    fn reference_path(index: usize, hashes: &[Hash32]) -> Vec<Hash32> {
        if hashes.len() == 1 {
            return Vec::new();
        }
        let k = split(hashes.len());
        let (mut path, sibling) = if index < k {
            (reference_path(index, &hashes[..k]), reference_root(&hashes[k..]))
        } else {
            (reference_path(index - k, &hashes[k..]), reference_root(&hashes[..k]))
        };
        path.push(sibling);
        path
    }

    #[test]
    fn empty_tree_has_the_domain_root() {
        assert_eq!(merkle_root(&[]), sha256(b"nest/merkle/empty"));
        assert_eq!(inclusion_path(&[], 0), None);
    }

    #[test]
    fn roots_for_one_to_five_leaves_follow_the_construction() {
        let l = hashed(&leaves(5));
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

    /// The Certificate Transparency reference tree: its eight leaves, the published tree
    /// head for each size, and two published audit paths.
    #[test]
    fn the_certificate_transparency_reference_vectors_hold() {
        let data = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let hashes: Vec<Hash32> = data.iter().map(|d| leaf_hash(&hex::decode(d).unwrap())).collect();
        for size in 1..=8 {
            assert_eq!(root_of_leaf_hashes(&hashes[..size]), hex32(roots[size - 1]), "size {size}");
        }
        let published = [
            (
                0,
                [
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                [
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        let root = hex32(roots[7]);
        for (index, path) in published {
            let path: Vec<Hash32> = path.iter().map(|h| hex32(h)).collect();
            assert_eq!(path_of_leaf_hashes(&hashes, index).unwrap(), path, "leaf {index}");
            assert_eq!(verify_inclusion(&hashes[index], index as u64, 8, &path, &root), Ok(()));
        }
    }

    #[test]
    fn leaf_and_node_hashes_are_domain_separated() {
        let a = Hash32([1; 32]);
        let b = Hash32([2; 32]);
        // A two-leaf root is not the hash of the concatenated leaves nor a leaf hash.
        let root = merkle_root(&[a, b]);
        assert_ne!(root, sha256_parts(&[&a.0, &b.0]));
        assert_ne!(root, leaf_hash(&a.0));
        // An inner node presented as a single leaf gives a different root.
        assert_ne!(merkle_root(&[node_hash(&leaf_hash(&a.0), &leaf_hash(&b.0))]), root);
    }

    /// Every leaf of every tree of 1 to 64 leaves: the path is the RFC's, it verifies, and
    /// each single-bit change of the path, the index or the root is refused.
    #[test]
    fn every_proof_of_trees_up_to_64_leaves_verifies_and_no_flipped_bit_does() {
        let all: Vec<Hash32> = (0..64u16).map(|i| sha256(&i.to_be_bytes())).collect();
        for size in 1..=all.len() {
            let tree = &all[..size];
            let hashes = hashed(tree);
            let root = merkle_root(tree);
            assert_eq!(root, reference_root(&hashes), "size {size}");
            for index in 0..size {
                let path = inclusion_path(tree, index).unwrap();
                assert_eq!(path, reference_path(index, &hashes), "size {size}, leaf {index}");
                let (leaf, at, n) = (&hashes[index], index as u64, size as u64);
                assert_eq!(verify_inclusion(leaf, at, n, &path, &root), Ok(()), "size {size}, leaf {index}");
                for bit in 0..256 {
                    for step in 0..path.len() {
                        let mut bad = path.clone();
                        bad[step].0[bit / 8] ^= 1 << (bit % 8);
                        assert!(verify_inclusion(leaf, at, n, &bad, &root).is_err(), "path[{step}] bit {bit}");
                    }
                    let mut bad_root = root;
                    bad_root.0[bit / 8] ^= 1 << (bit % 8);
                    assert!(verify_inclusion(leaf, at, n, &path, &bad_root).is_err(), "root bit {bit}");
                    let mut bad_leaf = *leaf;
                    bad_leaf.0[bit / 8] ^= 1 << (bit % 8);
                    assert!(verify_inclusion(&bad_leaf, at, n, &path, &root).is_err(), "leaf bit {bit}");
                }
                for bit in 0..64 {
                    let moved = at ^ (1 << bit);
                    assert!(verify_inclusion(leaf, moved, n, &path, &root).is_err(), "index bit {bit}");
                }
                assert_eq!(inclusion_path(tree, size), None);
            }
        }
    }

    /// RFC 6962 proofs do not bind the tree size by themselves: the size comes signed with
    /// the root (for Nest, `tx_count` in the header). A changed size passes the path check
    /// only when the tree of that size gives the leaf a path of the same shape; the test
    /// pins that this is the only way through, so a checker that takes the size from the
    /// header refuses every other size.
    #[test]
    fn a_changed_size_passes_only_where_the_path_shape_is_the_same() {
        let all: Vec<Hash32> = (0..64u16).map(|i| sha256(&i.to_be_bytes())).collect();
        for size in 1..=all.len() {
            let hashes = hashed(&all[..size]);
            let root = root_of_leaf_hashes(&hashes);
            for index in 0..size {
                let path = path_of_leaf_hashes(&hashes, index).unwrap();
                for bit in 0..64 {
                    let changed = (size as u64) ^ (1 << bit);
                    if verify_inclusion(&hashes[index], index as u64, changed, &path, &root).is_ok() {
                        let other: Vec<Hash32> = (0..changed).map(|i| sha256(&i.to_be_bytes())).collect();
                        let other_path = path_of_leaf_hashes(&other, index).unwrap();
                        assert_eq!(other_path.len(), path.len(), "size {size} -> {changed}, leaf {index}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_proof_names_what_is_wrong() {
        let tree = leaves(5);
        let hashes = hashed(&tree);
        let root = merkle_root(&tree);
        let path = inclusion_path(&tree, 2).unwrap();
        assert_eq!(
            verify_inclusion(&hashes[2], 5, 5, &path, &root),
            Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
        );
        let mut long = path.clone();
        long.push(root);
        assert_eq!(verify_inclusion(&hashes[2], 2, 5, &long, &root), Err(ProofError::PathTooLong { len: 4 }));
        assert_eq!(verify_inclusion(&hashes[2], 2, 5, &path[..2], &root), Err(ProofError::PathTooShort { len: 2 }));
        assert!(matches!(verify_inclusion(&hashes[3], 2, 5, &path, &root), Err(ProofError::RootMismatch { .. })));
    }
}
