//! The unit format: a borsh-encoded header and its transactions.

use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{Hash32, Host, PluginError, PublicKey, UnitView};

/// The only unit format version this crate reads and writes.
pub const UNIT_VERSION: u8 = 1;

/// Domain prefix hashed before the encoded header to give the unit hash.
pub const UNIT_HASH_DOMAIN: &[u8] = b"nest/unit/v1";

/// Encoded size of a [`Header`] in bytes.
pub const HEADER_BYTES: usize = 1 + 32 + 8 + 8 + 32 + 32 + 32 + 4;

/// Encoded size of a borsh length prefix in bytes.
const LENGTH_PREFIX_BYTES: usize = 4;

/// The part of a unit that its hash covers.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Header {
    /// Format version, [`UNIT_VERSION`].
    pub version: u8,
    /// Hash of the parent unit ([`Hash32::ZERO`] for genesis).
    pub parent: Hash32,
    /// Height: the parent's height plus one (genesis is 0).
    pub height: u64,
    /// Milliseconds since the Unix epoch; strictly greater than the parent's.
    pub timestamp_ms: u64,
    /// The node that built the unit.
    pub proposer: PublicKey,
    /// Merkle root of `txs`, computed and checked by the host.
    pub tx_root: Hash32,
    /// Ledger state digest after `txs`, computed and checked by the host.
    pub state_digest: Hash32,
    /// Number of transactions in the unit.
    pub tx_count: u32,
}

/// A unit as it travels and is stored: header and transactions.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Unit {
    /// The hashed header.
    pub header: Header,
    /// Encoded transactions, in execution order.
    pub txs: Vec<Vec<u8>>,
}

impl Header {
    /// The unit hash: `host.hash(b"nest/unit/v1" ++ borsh(header))`.
    pub fn hash(&self, host: &Host) -> Result<Hash32, PluginError> {
        let mut bytes = Vec::with_capacity(UNIT_HASH_DOMAIN.len() + HEADER_BYTES);
        bytes.extend_from_slice(UNIT_HASH_DOMAIN);
        self.serialize(&mut bytes).map_err(|error| PluginError::failed(format!("cannot encode header: {error}")))?;
        Ok(host.hash(&bytes))
    }
}

impl Unit {
    /// Encoded size of a unit carrying `txs`, without encoding it (saturates on overflow).
    pub fn encoded_len(txs: &[impl AsRef<[u8]>]) -> usize {
        txs.iter().fold(HEADER_BYTES + LENGTH_PREFIX_BYTES, |total, tx| {
            total.saturating_add(LENGTH_PREFIX_BYTES).saturating_add(tx.as_ref().len())
        })
    }

    /// The unit as the SDK's view, with its hash.
    pub fn into_view(self, hash: Hash32) -> UnitView {
        UnitView {
            hash,
            parent: self.header.parent,
            height: self.header.height,
            timestamp_ms: self.header.timestamp_ms,
            proposer: self.header.proposer,
            tx_root: self.header.tx_root,
            state_digest: self.header.state_digest,
            txs: self.txs.into_iter().map(Into::into).collect(),
        }
    }
}
