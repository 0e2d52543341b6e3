//! The unit format: a borsh-encoded header with its parents, the proof-of-work nonce, the
//! proposer's signature, and the transactions.
//!
//! The unit hash is `sha256(b"nest/dag-unit/v1" ‖ borsh(header) ‖ nonce as 8 big-endian
//! bytes)`; its proof of work is that hash having `pow_bits` leading zero bits, so a
//! device searches nonces without re-encoding the header. The proposer signs the hash
//! with its node key. Genesis (height 0) approves only [`Hash32::ZERO`] and carries
//! neither work nor signature: every node builds it alike from the manifest.

use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{Hash32, PluginError, PublicKey, Signature, UnitView};
use sha2::{Digest, Sha256};

/// The only unit format version this crate reads and writes.
pub const UNIT_VERSION: u8 = 1;

/// Domain prefix hashed before the encoded header.
pub const UNIT_HASH_DOMAIN: &[u8] = b"nest/dag-unit/v1";

/// The part of a unit that its hash covers, with the nonce.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Header {
    /// Format version, [`UNIT_VERSION`].
    pub version: u8,
    /// The approved units, distinct; the first is the view's `parent`.
    pub parents: Vec<Hash32>,
    /// 1 + the greatest height among the parents (genesis is 0).
    pub height: u64,
    /// Milliseconds since the Unix epoch; not before any parent's.
    pub timestamp_ms: u64,
    /// The node that attached the unit; its signature covers the hash.
    pub proposer: PublicKey,
    /// Merkle root of `txs`, computed and checked by the host.
    pub tx_root: Hash32,
    /// Number of transactions in the unit.
    pub tx_count: u32,
}

/// A unit as it travels and is stored.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Unit {
    /// The hashed header.
    pub header: Header,
    /// The proof-of-work nonce (hashed after the header).
    pub nonce: u64,
    /// The proposer's signature over the unit hash (all zero for genesis).
    pub signature: Signature,
    /// Encoded transactions, in the order the unit lists them.
    pub txs: Vec<Vec<u8>>,
}

impl Header {
    /// What the hash covers before the nonce: the domain and the encoded header.
    pub fn pow_prefix(&self) -> Result<Vec<u8>, PluginError> {
        let mut bytes = UNIT_HASH_DOMAIN.to_vec();
        self.serialize(&mut bytes).map_err(|error| PluginError::failed(format!("cannot encode header: {error}")))?;
        Ok(bytes)
    }

    /// The unit hash with `nonce`.
    pub fn hash(&self, nonce: u64) -> Result<Hash32, PluginError> {
        Ok(hash_with_nonce(&self.pow_prefix()?, nonce))
    }
}

/// `sha256(prefix ‖ nonce as 8 big-endian bytes)`, as [`tangle::solve_pow`] searches it.
pub fn hash_with_nonce(prefix: &[u8], nonce: u64) -> Hash32 {
    Hash32(Sha256::new().chain_update(prefix).chain_update(nonce.to_be_bytes()).finalize().into())
}

impl Unit {
    /// The unit as the SDK's view, with its hash. DAG units claim no state digest: the
    /// host executes them in the final order a checkpoint gives, not one by one.
    pub fn into_view(self, hash: Hash32) -> UnitView {
        UnitView {
            hash,
            parent: self.header.parents.first().copied().unwrap_or(Hash32::ZERO),
            height: self.header.height,
            timestamp_ms: self.header.timestamp_ms,
            proposer: self.header.proposer,
            tx_root: self.header.tx_root,
            state_digest: Hash32::ZERO,
            txs: self.txs.into_iter().map(Into::into).collect(),
        }
    }
}
