//! An in-memory [`ChainStore`] for one simulated node.
//!
//! Every write through [`ChainStore`] is durable by contract (the node's fjall store
//! syncs each one), so a simulated crash keeps this store and loses everything else the
//! node held: the runtime, its pending units, mempool and engine state.

use nest_node::ledger::{Account, Changes};
use nest_node::store::{ChainHead, ChainStore, RecordEntry, StoreError, StoredBlock};
use nest_sdk::{Hash32, PublicKey};
use std::cell::RefCell;
use std::collections::BTreeMap;

#[derive(Default)]
struct Data {
    blocks: BTreeMap<u64, StoredBlock>,
    head: Option<ChainHead>,
    accounts: BTreeMap<PublicKey, Account>,
    records: BTreeMap<Vec<u8>, Vec<u8>>,
    consensus: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// One node's durable data, for its single chain.
#[derive(Default)]
pub struct MemStore {
    data: RefCell<Data>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ChainStore for MemStore {
    fn head(&self, _chain: &str) -> Result<Option<ChainHead>, StoreError> {
        Ok(self.data.borrow().head)
    }

    fn block_by_height(&self, _chain: &str, height: u64) -> Result<Option<StoredBlock>, StoreError> {
        Ok(self.data.borrow().blocks.get(&height).cloned())
    }

    fn accounts(&self, _chain: &str) -> Result<Vec<(PublicKey, Account)>, StoreError> {
        Ok(self.data.borrow().accounts.iter().map(|(key, account)| (*key, *account)).collect())
    }

    fn records(&self, _chain: &str) -> Result<Vec<RecordEntry>, StoreError> {
        Ok(self.data.borrow().records.iter().map(|(key, value)| (key.clone(), value.clone())).collect())
    }

    fn commit_block(
        &self,
        _chain: &str,
        block: &StoredBlock,
        _tx_hashes: &[Hash32],
        changes: &Changes,
        head: &ChainHead,
    ) -> Result<(), StoreError> {
        let mut data = self.data.borrow_mut();
        data.blocks.insert(block.height, block.clone());
        for (key, value) in &changes.records {
            match value {
                Some(value) => data.records.insert(key.clone(), value.clone()),
                None => data.records.remove(key),
            };
        }
        for (key, account) in &changes.accounts {
            if *account == Account::default() {
                data.accounts.remove(key);
            } else {
                data.accounts.insert(*key, *account);
            }
        }
        data.head = Some(*head);
        Ok(())
    }

    fn put_consensus(&self, _chain: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.data.borrow_mut().consensus.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn consensus_entries(&self, _chain: &str) -> Result<Vec<RecordEntry>, StoreError> {
        Ok(self.data.borrow().consensus.iter().map(|(key, value)| (key.clone(), value.clone())).collect())
    }
}
