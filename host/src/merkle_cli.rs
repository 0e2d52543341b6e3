//! Run `nestd merkle verify`: check one RFC 6962 inclusion proof offline, with nothing
//! but the command line (the figures `GET /v1/chains/{id}/txs/{hash}/proof` returns).
//!
//! Exit status: 0 when the proof holds, 1 with the reason when it does not, 2 (clap's)
//! when the command line is malformed — a hash that is not 64 hex characters included.

use crate::ledger::merkle::verify_inclusion;
use nest_sdk::Hash32;

/// `nestd merkle ...`
#[derive(clap::Subcommand, Debug)]
pub enum MerkleCommand {
    /// Check that a leaf is in a tree: RFC 9162 §2.1.3.2 over RFC 6962 hashes.
    Verify {
        /// The leaf's RFC 6962 hash, sha256(0x00 ++ leaf) (a proof's `leaf_hash`), hex.
        #[arg(long, value_parser = parse_hash)]
        leaf_hash: Hash32,
        /// The leaf's position, from 0.
        #[arg(long)]
        index: u64,
        /// Leaves in the tree (a block's `tx_count`).
        #[arg(long)]
        size: u64,
        /// The tree head (a block's `tx_root`), hex.
        #[arg(long, value_parser = parse_hash)]
        root: Hash32,
        /// The audit path from the leaf up, comma-separated hex hashes; empty for a one-leaf tree.
        #[arg(long, value_parser = parse_path, default_value = "")]
        proof: AuditPath,
    },
}

/// An audit path as the command line gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditPath(pub Vec<Hash32>);

fn parse_hash(text: &str) -> Result<Hash32, String> {
    crate::crypto::hash_from_hex(text)
}

fn parse_path(text: &str) -> Result<AuditPath, String> {
    if text.trim().is_empty() {
        return Ok(AuditPath(Vec::new()));
    }
    let hashes = text
        .split(',')
        .enumerate()
        .map(|(position, item)| parse_hash(item).map_err(|e| format!("hash #{} of the path {e}", position + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AuditPath(hashes))
}

/// Runs a `nestd merkle` command; the error is the reason the proof does not hold.
pub fn run(command: MerkleCommand) -> Result<(), String> {
    match command {
        MerkleCommand::Verify { leaf_hash, index, size, root, proof } => {
            verify_inclusion(&leaf_hash, index, size, &proof.0, &root)
                .map_err(|e| format!("the proof does not hold: {e}"))?;
            println!("ok: leaf {leaf_hash} is #{index} of the {size} leaves under root {root}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_comma_separated_hashes_and_may_be_empty() {
        assert_eq!(parse_path("").unwrap(), AuditPath(Vec::new()));
        let one = "ab".repeat(32);
        assert_eq!(parse_path(&format!("{one},{one}")).unwrap().0.len(), 2);
        let error = parse_path(&format!("{one},xyz")).unwrap_err();
        assert!(error.starts_with("hash #2 of the path must be 64 hex characters"), "{error}");
    }
}
