//! Answer public block queries off the node loop.
//!
//! A committed block never changes, so whoever holds the store can serve it: the reader
//! reads it from a clone of the node's fjall handles, decodes it with a chain-type
//! instance of its own (one per chain, built from the same library and config as the
//! chain's, replaced when an upgrade replaces that library), and checks a BFT block's
//! certificate against the validator sets the loop publishes with each chain's serve
//! view. The API calls it on tokio's blocking pool; the loop answers the console's block
//! queries with the same code.

use super::recent::{BlockSummary, RecentBlocks, heights_newest_first};
use super::serve::{ServeView, ServeViews};
use super::{BlockView, CommitView, HeaderView, QueryError, SignerView, TxView};
use crate::ledger::{
    tx::SignedTx,
    validators::{ValidatorSet, set_at},
};
use crate::store::{Store, StoredBlock};
use nest_sdk::{PublicKey, UnitView, chain::ChainTypeBox};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
};

/// Reads and decodes committed blocks for the API, on any thread.
#[derive(Clone)]
pub struct BlockReader {
    store: Store,
    views: ServeViews,
    decoders: Arc<RwLock<HashMap<String, Arc<Mutex<ChainTypeBox>>>>>,
}

impl BlockReader {
    /// A reader of `store`, with the chains' published `views`.
    pub fn new(store: Store, views: ServeViews) -> BlockReader {
        BlockReader { store, views, decoders: Arc::default() }
    }

    /// Sets the chain-type instance that decodes `chain`'s units.
    pub fn set_decoder(&self, chain: &str, decoder: ChainTypeBox) {
        let mut decoders = self.decoders.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        decoders.insert(chain.to_owned(), Arc::new(Mutex::new(decoder)));
    }

    /// The committed block of `chain_id` at `height`, with its transactions.
    pub fn block(&self, chain_id: &str, height: u64) -> Result<BlockView, QueryError> {
        let (stored, unit) = self.stored_unit(chain_id, height)?;
        let view = self.view(chain_id)?;
        let txs = unit
            .txs
            .iter()
            .map(|bytes| SignedTx::decode(bytes).map(|tx| TxView { hash: crate::crypto::sha256(bytes), tx }))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| QueryError::Failed(format!("stored block {height}: {e}")))?;
        let validators = set_at(&view.validator_sets, unit.height);
        Ok(BlockView {
            header: HeaderView {
                height: unit.height,
                hash: unit.hash,
                parent: unit.parent,
                timestamp_ms: unit.timestamp_ms,
                proposer: unit.proposer,
                tx_root: unit.tx_root,
                tx_count: txs.len() as u64,
                state_digest: unit.state_digest,
                certificate: hex::encode(&stored.certificate),
                finality: hex::encode(&stored.finality),
            },
            commit: commit_view(validators, unit.height, &stored.certificate),
            round: view.dpos.map(|dpos| dpos.round_of(unit.height)),
            tx_hashes: txs.iter().map(|t| t.hash).collect(),
            txs,
        })
    }

    /// Summaries of up to `limit` committed blocks of `chain_id` ending at `to_height`.
    pub fn recent_blocks(
        &self,
        chain_id: &str,
        to_height: Option<u64>,
        limit: usize,
    ) -> Result<RecentBlocks, QueryError> {
        let view = self.view(chain_id)?;
        let (final_height, best_height) = (view.committed_height, view.tip_height);
        let blocks = heights_newest_first(final_height, to_height, limit)
            .map(|height| self.block_summary(chain_id, height))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RecentBlocks { chain: chain_id.to_string(), final_height, best_height, blocks })
    }

    fn block_summary(&self, chain_id: &str, height: u64) -> Result<BlockSummary, QueryError> {
        let (stored, unit) = self.stored_unit(chain_id, height)?;
        Ok(BlockSummary {
            height: unit.height,
            hash: unit.hash,
            timestamp_ms: unit.timestamp_ms,
            proposer: unit.proposer,
            tx_count: unit.txs.len(),
            certificate_bytes: stored.certificate.len(),
            finality_bytes: stored.finality.len(),
        })
    }

    fn view(&self, chain_id: &str) -> Result<Arc<ServeView>, QueryError> {
        let views = self.views.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        views.get(chain_id).cloned().ok_or_else(|| no_chain(chain_id))
    }

    /// The committed unit of `chain_id` at `height` exactly as stored (the chain type's
    /// encoding), with its certificate and finality proof: what a light client checks a
    /// commit certificate over (BFT signs the digest of the whole unit).
    pub fn raw_unit(&self, chain_id: &str, height: u64) -> Result<StoredBlock, QueryError> {
        self.stored_unit(chain_id, height).map(|(stored, _)| stored)
    }

    fn stored_unit(&self, chain_id: &str, height: u64) -> Result<(StoredBlock, UnitView), QueryError> {
        let decoder = self.decoders.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(chain_id).cloned();
        let decoder = decoder.ok_or_else(|| no_chain(chain_id))?;
        let stored = self
            .store
            .block_by_height(chain_id, height)
            .map_err(|e| QueryError::Failed(e.to_string()))?
            .ok_or_else(|| QueryError::NotFound(format!("chain \"{chain_id}\" has no block at height {height}")))?;
        let unit = decoder
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .decode(stored.unit.as_slice().into())
            .into_result()
            .map_err(|e| QueryError::Failed(format!("decoding stored block {height}: {e}")))?;
        Ok((stored, unit))
    }
}

fn no_chain(chain_id: &str) -> QueryError {
    QueryError::NotFound(format!("no chain \"{chain_id}\" on this node"))
}

/// Reads a block's certificate as a commit certificate and checks it against
/// `validators`, the set in force at `height`.
fn commit_view(validators: Option<&ValidatorSet>, height: u64, certificate: &[u8]) -> Option<CommitView> {
    let certificate = nest_sdk::certificate::CommitCertificate::decode(certificate)?;
    let set = validators?;
    let validators: Vec<nest_sdk::Validator> =
        set.members.iter().map(|member| nest_sdk::Validator { key: member.key, power: member.power }).collect();
    let power_of = |key: &PublicKey| validators.iter().find(|v| v.key == *key).map_or(0, |v| v.power);
    let signers: Vec<SignerView> =
        certificate.signatures.iter().map(|(key, _)| SignerView { key: *key, power: power_of(key) }).collect();
    let checked = certificate.check(height, &validators, crate::crypto::verify);
    Some(CommitView {
        round: certificate.round,
        value: certificate.value,
        power: signers.iter().map(|signer| signer.power).sum(),
        total_power: validators.iter().map(|v| v.power).sum(),
        signers,
        valid: checked.is_ok(),
        error: checked.err().map(|error| error.to_string()),
    })
}
