//! Persist blocks, ledger state and consensus data in fjall.
//!
//! One fjall database per node, six keyspaces: `blocks` (by height, and hash → height),
//! `txindex` (tx id → height and index), `state` (accounts, ledger records and chain
//! head), `consensus` (an engine's persisted data), `meta` (node-wide values) and
//! `readings` (device readings, see [`readings`]). Every key of the first four
//! starts with the chain id, length-prefixed, so two chains never see each other's
//! data; heights are big-endian so they sort. Values are borsh.
//!
//! A committed block is written in one batch synced to disk: after a crash the store
//! holds all of it or none. Every call blocks on disk I/O: call it off the async workers.

use borsh::{BorshDeserialize, BorshSerialize};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use nest_ledger::ledger::{Account, Changes};
use nest_sdk::{Hash32, PublicKey};
use std::path::{Path, PathBuf};

/// Longest chain id accepted, in bytes (its length is stored in one byte).
pub const CHAIN_ID_BYTES_MAX: usize = 255;

/// Tag of a block-by-height key in `blocks`.
const TAG_BLOCK: u8 = b'n';
/// Tag of a hash → height key in `blocks`.
const TAG_BLOCK_HASH: u8 = b'h';
/// Tag of an account key in `state`.
const TAG_ACCOUNT: u8 = b'a';
/// Tag of a ledger record key in `state`.
const TAG_RECORD: u8 = b'r';
/// Tag of the chain head key in `state`.
const TAG_HEAD: u8 = b'H';

/// A ledger record as stored: key and value bytes.
pub type RecordEntry = (Vec<u8>, Vec<u8>);

/// The store could not be opened, read or written.
#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    /// The database could not be opened.
    #[error("{dir}: cannot open the store: {source}")]
    Open {
        /// The data directory.
        dir: String,
        /// fjall's error.
        source: fjall::Error,
    },
    /// A read or write failed.
    #[error("{dir}: {operation} failed: {source}")]
    Io {
        /// The data directory.
        dir: String,
        /// What was being done.
        operation: &'static str,
        /// fjall's error.
        source: fjall::Error,
    },
    /// A stored value or key does not decode.
    #[error("{dir}: corrupt {what} at key {key}")]
    Corrupt {
        /// The data directory.
        dir: String,
        /// What the value should have been.
        what: &'static str,
        /// The key, in hex.
        key: String,
    },
    /// The chain id is longer than [`CHAIN_ID_BYTES_MAX`].
    #[error("chain id of {size_bytes} bytes exceeds the maximum of {max_bytes}")]
    ChainIdTooLong {
        /// Length of the id given.
        size_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// The block and the new head passed to [`Store::commit_block`] disagree.
    #[error("{dir}: block {height} is not the new head (head height {head_height})")]
    HeadMismatch {
        /// The data directory.
        dir: String,
        /// Height of the block.
        height: u64,
        /// Height of the head.
        head_height: u64,
    },
    /// A block lists more transactions than an index can address.
    #[error("block {height} lists {count} transactions, more than the {max} a block can index", max = u32::MAX)]
    TooManyTxs {
        /// Height of the block.
        height: u64,
        /// Transactions listed.
        count: usize,
    },
}

/// The latest committed block of a chain.
#[derive(BorshSerialize, BorshDeserialize, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChainHead {
    /// Height of the block.
    pub height: u64,
    /// Hash of the block.
    pub hash: Hash32,
    /// The block's timestamp, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The ledger's state digest after the block.
    pub state_digest: Hash32,
}

/// A committed block as stored: the chain type's unit bytes and the consensus certificate.
#[derive(BorshSerialize, Clone, Debug, PartialEq, Eq)]
pub struct StoredBlock {
    /// Height of the block.
    pub height: u64,
    /// Hash of the block (of its unit).
    pub hash: Hash32,
    /// The unit, as the chain type encoded it.
    pub unit: Vec<u8>,
    /// The consensus engine's commit certificate.
    pub certificate: Vec<u8>,
    /// The engine's proof that the block is final (`Effect::Certify`); empty when the
    /// engine gave none. Blocks written before it existed decode with it empty.
    pub finality: Vec<u8>,
}

impl BorshDeserialize for StoredBlock {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        let height = u64::deserialize_reader(reader)?;
        let hash = Hash32::deserialize_reader(reader)?;
        let unit = Vec::<u8>::deserialize_reader(reader)?;
        let certificate = Vec::<u8>::deserialize_reader(reader)?;
        // The field came later: a block stored before it ends here.
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest)?;
        let finality = if rest.is_empty() { Vec::new() } else { borsh::from_slice(&rest)? };
        Ok(StoredBlock { height, hash, unit, certificate, finality })
    }
}

/// The node's persistent store.
#[derive(Clone)]
pub struct Store {
    dir: PathBuf,
    db: Database,
    blocks: Keyspace,
    txindex: Keyspace,
    state: Keyspace,
    meta: Keyspace,
    consensus: Keyspace,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open { dir: dir.display().to_string(), source };
        let db = Database::builder(dir).open().map_err(open_error)?;
        let keyspace = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default);
        Ok(Store {
            blocks: keyspace("blocks").map_err(open_error)?,
            txindex: keyspace("txindex").map_err(open_error)?,
            state: keyspace("state").map_err(open_error)?,
            meta: keyspace("meta").map_err(open_error)?,
            consensus: keyspace("consensus").map_err(open_error)?,
            dir: dir.to_path_buf(),
            db,
        })
    }

    /// Writes one committed block in one batch synced to disk: the block (by height),
    /// hash → height, tx id → (height, index) for each id given (in block order), the
    /// changed accounts and records, and the new head. After a crash the store holds all or none.
    pub fn commit_block(
        &self,
        chain: &str,
        block: &StoredBlock,
        tx_hashes: &[Hash32],
        changes: &Changes,
        head: &ChainHead,
    ) -> Result<(), StoreError> {
        if block.height != head.height || block.hash != head.hash {
            return Err(StoreError::HeadMismatch {
                dir: self.dir_name(),
                height: block.height,
                head_height: head.height,
            });
        }
        let prefix = chain_prefix(chain)?;
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        batch.insert(&self.blocks, block_key(&prefix, block.height), encode(block));
        batch.insert(&self.blocks, tagged(&prefix, TAG_BLOCK_HASH, &block.hash.0), encode(&block.height));
        for (index, tx_hash) in tx_hashes.iter().enumerate() {
            let index = u32::try_from(index)
                .map_err(|_| StoreError::TooManyTxs { height: block.height, count: tx_hashes.len() })?;
            batch.insert(&self.txindex, joined(&prefix, &tx_hash.0), encode(&(block.height, index)));
        }
        for (key, value) in &changes.records {
            let record_key = tagged(&prefix, TAG_RECORD, key);
            match value {
                Some(value) => batch.insert(&self.state, record_key, value.as_slice()),
                None => batch.remove(&self.state, record_key),
            }
        }
        for (key, account) in &changes.accounts {
            let account_key = tagged(&prefix, TAG_ACCOUNT, &key.0);
            if *account == Account::default() {
                batch.remove(&self.state, account_key);
            } else {
                batch.insert(&self.state, account_key, encode(account));
            }
        }
        batch.insert(&self.state, tagged(&prefix, TAG_HEAD, &[]), encode(head));
        batch.commit().map_err(|source| self.io("commit block", source))
    }

    /// Deletes the committed blocks at heights `from..below` (those still stored) with
    /// their hash index entries, in one batch; how many it deleted. The transaction
    /// index keeps pointing at their heights: a lookup finds the block gone.
    pub fn prune_blocks(&self, chain: &str, from: u64, below: u64) -> Result<u64, StoreError> {
        let prefix = chain_prefix(chain)?;
        let mut batch = self.db.batch();
        let mut deleted = 0;
        for height in from..below {
            let Some(block) = self.block_by_height(chain, height)? else { continue };
            batch.remove(&self.blocks, block_key(&prefix, height));
            batch.remove(&self.blocks, tagged(&prefix, TAG_BLOCK_HASH, &block.hash.0));
            deleted += 1;
        }
        batch.commit().map_err(|source| self.io("prune blocks", source))?;
        Ok(deleted)
    }

    /// The chain's latest committed block, if any.
    pub fn head(&self, chain: &str) -> Result<Option<ChainHead>, StoreError> {
        let key = tagged(&chain_prefix(chain)?, TAG_HEAD, &[]);
        self.read(&self.state, &key, "chain head")
    }

    /// Every stored account of the chain, in key order.
    pub fn accounts(&self, chain: &str) -> Result<Vec<(PublicKey, Account)>, StoreError> {
        let prefix = tagged(&chain_prefix(chain)?, TAG_ACCOUNT, &[]);
        let mut accounts = Vec::new();
        for item in self.state.prefix(&prefix) {
            let (key, value) = item.into_inner().map_err(|source| self.io("read accounts", source))?;
            let public_key = key
                .get(prefix.len()..)
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .map(PublicKey)
                .ok_or_else(|| self.corrupt("account key", &key))?;
            accounts.push((public_key, self.decode(&key, &value, "account")?));
        }
        Ok(accounts)
    }

    /// Every stored ledger record of the chain, in key order.
    pub fn records(&self, chain: &str) -> Result<Vec<RecordEntry>, StoreError> {
        let prefix = tagged(&chain_prefix(chain)?, TAG_RECORD, &[]);
        let mut records = Vec::new();
        for item in self.state.prefix(&prefix) {
            let (key, value) = item.into_inner().map_err(|source| self.io("read records", source))?;
            records.push((key[prefix.len()..].to_vec(), value.to_vec()));
        }
        Ok(records)
    }

    /// The block at `height`, if stored.
    pub fn block_by_height(&self, chain: &str, height: u64) -> Result<Option<StoredBlock>, StoreError> {
        let key = block_key(&chain_prefix(chain)?, height);
        let block: Option<StoredBlock> = self.read(&self.blocks, &key, "block")?;
        match block {
            Some(block) if block.height != height => Err(self.corrupt("block", &key)),
            other => Ok(other),
        }
    }

    /// The block with `hash`, if stored.
    pub fn block_by_hash(&self, chain: &str, hash: &Hash32) -> Result<Option<StoredBlock>, StoreError> {
        let key = tagged(&chain_prefix(chain)?, TAG_BLOCK_HASH, &hash.0);
        let Some(height) = self.read::<u64>(&self.blocks, &key, "block height")? else {
            return Ok(None);
        };
        match self.block_by_height(chain, height)? {
            Some(block) if block.hash == *hash => Ok(Some(block)),
            _ => Err(self.corrupt("block hash index", &key)),
        }
    }

    /// Where a committed transaction is: block height and index in the block.
    pub fn tx_location(&self, chain: &str, tx_hash: &Hash32) -> Result<Option<(u64, u32)>, StoreError> {
        let key = joined(&chain_prefix(chain)?, &tx_hash.0);
        self.read(&self.txindex, &key, "transaction location")
    }

    /// Stores a consensus engine's value durably (synced before returning).
    pub fn put_consensus(&self, chain: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let key = joined(&chain_prefix(chain)?, key);
        self.put_synced(&self.consensus, key, value, "write consensus data")
    }

    /// A consensus engine's stored value.
    pub fn get_consensus(&self, chain: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let key = joined(&chain_prefix(chain)?, key);
        self.get_raw(&self.consensus, &key, "read consensus data")
    }

    /// Every value a consensus engine stored for the chain, in key order (engine keys).
    pub fn consensus_entries(&self, chain: &str) -> Result<Vec<RecordEntry>, StoreError> {
        let prefix = chain_prefix(chain)?;
        let mut entries = Vec::new();
        for item in self.consensus.prefix(&prefix) {
            let (key, value) = item.into_inner().map_err(|source| self.io("read consensus data", source))?;
            entries.push((key[prefix.len()..].to_vec(), value.to_vec()));
        }
        Ok(entries)
    }

    /// Stores a node-wide value durably.
    pub fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.put_synced(&self.meta, key.as_bytes().to_vec(), value, "write meta")
    }

    /// A node-wide value.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_raw(&self.meta, key.as_bytes(), "read meta")
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn put_synced(
        &self,
        keyspace: &Keyspace,
        key: Vec<u8>,
        value: &[u8],
        operation: &'static str,
    ) -> Result<(), StoreError> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        batch.insert(keyspace, key, value);
        batch.commit().map_err(|source| self.io(operation, source))
    }

    fn get_raw(&self, keyspace: &Keyspace, key: &[u8], operation: &'static str) -> Result<Option<Vec<u8>>, StoreError> {
        let value = keyspace.get(key).map_err(|source| self.io(operation, source))?;
        Ok(value.map(|bytes| bytes.to_vec()))
    }

    /// Reads and decodes one value.
    fn read<T: BorshDeserialize>(
        &self,
        keyspace: &Keyspace,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<T>, StoreError> {
        let Some(value) = keyspace.get(key).map_err(|source| self.io("read", source))? else {
            return Ok(None);
        };
        self.decode(key, &value, what).map(Some)
    }

    fn decode<T: BorshDeserialize>(&self, key: &[u8], value: &[u8], what: &'static str) -> Result<T, StoreError> {
        borsh::from_slice(value).map_err(|_| self.corrupt(what, key))
    }

    fn corrupt(&self, what: &'static str, key: &[u8]) -> StoreError {
        StoreError::Corrupt { dir: self.dir_name(), what, key: hex::encode(key) }
    }

    fn io(&self, operation: &'static str, source: fjall::Error) -> StoreError {
        StoreError::Io { dir: self.dir_name(), operation, source }
    }

    fn dir_name(&self) -> String {
        self.dir.display().to_string()
    }
}

/// The chain id, length-prefixed: `"a"` + `"bc"` never equals `"ab"` + `"c"`.
fn chain_prefix(chain: &str) -> Result<Vec<u8>, StoreError> {
    let length = u8::try_from(chain.len())
        .map_err(|_| StoreError::ChainIdTooLong { size_bytes: chain.len(), max_bytes: CHAIN_ID_BYTES_MAX })?;
    let mut prefix = Vec::with_capacity(1 + chain.len());
    prefix.push(length);
    prefix.extend_from_slice(chain.as_bytes());
    Ok(prefix)
}

fn joined(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    [prefix, rest].concat()
}

fn tagged(prefix: &[u8], tag: u8, rest: &[u8]) -> Vec<u8> {
    [prefix, &[tag], rest].concat()
}

fn block_key(prefix: &[u8], height: u64) -> Vec<u8> {
    tagged(prefix, TAG_BLOCK, &height.to_be_bytes())
}

fn encode<T: BorshSerialize>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).expect("borsh into a Vec")
}

pub mod readings;

/// What a chain runtime reads and writes: the node's fjall [`Store`] in production, an
/// in-memory store with crash semantics in the simulator. Every write is durable when it
/// returns (a crash after it keeps it).
pub trait ChainStore {
    /// The chain's latest committed block, if any.
    fn head(&self, chain: &str) -> Result<Option<ChainHead>, StoreError>;
    /// The block at `height`, if stored.
    fn block_by_height(&self, chain: &str, height: u64) -> Result<Option<StoredBlock>, StoreError>;
    /// Every stored account of the chain, in key order.
    fn accounts(&self, chain: &str) -> Result<Vec<(PublicKey, Account)>, StoreError>;
    /// Every stored ledger record of the chain, in key order.
    fn records(&self, chain: &str) -> Result<Vec<RecordEntry>, StoreError>;
    /// Writes one committed block with its changes and the new head, all or nothing.
    fn commit_block(
        &self,
        chain: &str,
        block: &StoredBlock,
        tx_hashes: &[Hash32],
        changes: &Changes,
        head: &ChainHead,
    ) -> Result<(), StoreError>;
    /// Stores a consensus engine's value.
    fn put_consensus(&self, chain: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Every value the chain's consensus engine stored, in key order.
    fn consensus_entries(&self, chain: &str) -> Result<Vec<RecordEntry>, StoreError>;
}

impl ChainStore for Store {
    fn head(&self, chain: &str) -> Result<Option<ChainHead>, StoreError> {
        Store::head(self, chain)
    }
    fn block_by_height(&self, chain: &str, height: u64) -> Result<Option<StoredBlock>, StoreError> {
        Store::block_by_height(self, chain, height)
    }
    fn accounts(&self, chain: &str) -> Result<Vec<(PublicKey, Account)>, StoreError> {
        Store::accounts(self, chain)
    }
    fn records(&self, chain: &str) -> Result<Vec<RecordEntry>, StoreError> {
        Store::records(self, chain)
    }
    fn commit_block(
        &self,
        chain: &str,
        block: &StoredBlock,
        tx_hashes: &[Hash32],
        changes: &Changes,
        head: &ChainHead,
    ) -> Result<(), StoreError> {
        Store::commit_block(self, chain, block, tx_hashes, changes, head)
    }
    fn put_consensus(&self, chain: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        Store::put_consensus(self, chain, key, value)
    }
    fn consensus_entries(&self, chain: &str) -> Result<Vec<RecordEntry>, StoreError> {
        Store::consensus_entries(self, chain)
    }
}

#[cfg(test)]
mod tests;
