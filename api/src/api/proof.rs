//! Serve transaction inclusion proofs for light clients:
//! `GET /v1/chains/{chain}/txs/{hash}/proof`.
//!
//! The proof is RFC 6962's audit path over the block's transaction ids (see
//! `ledger::merkle`), with the header it belongs to: the header's `tx_root` is the tree
//! head and its `tx_count` the tree size, so a client that trusts the header (through
//! its finality proof) needs nothing else. The path is computed here, from the cached
//! block view, not on the node loop; the loop only answers where the transaction is.

use super::{ApiError, ApiState, ask, bad_request, block_view};
use crate::ledger::merkle::{inclusion_path, leaf_hash};
use crate::node::{BlockView, HeaderView, Request, TxStatus};
use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::get,
};
use nest_sdk::Hash32;
use serde::{Deserialize, Serialize};

/// The proof route.
pub fn routes() -> Router<ApiState> {
    Router::new().route("/v1/chains/{chain}/txs/{hash}/proof", get(tx_proof))
}

/// A transaction's inclusion proof: RFC 6962's inputs to the RFC 9162 §2.1.3.2 check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxProofView {
    /// The chain.
    pub chain: String,
    /// The transaction id (the leaf's data).
    pub tx: Hash32,
    /// `sha256(0x00 ++ tx)`, the leaf hash the path starts from.
    pub leaf_hash: Hash32,
    /// The transaction's position in its block.
    pub leaf_index: u64,
    /// Transactions in the block; equal to `header.tx_count`.
    pub tree_size: u64,
    /// Sibling hashes from the leaf up to the root.
    pub audit_path: Vec<Hash32>,
    /// The committed block's header; `header.tx_root` is the root the path leads to.
    pub header: HeaderView,
}

async fn tx_proof(
    State(state): State<ApiState>,
    Path((chain, hash)): Path<(String, String)>,
) -> Result<Json<TxProofView>, ApiError> {
    let hash = crate::crypto::hash_from_hex(&hash).map_err(|e| bad_request(format!("transaction hash: {e}")))?;
    let status = ask(&state, |reply| Request::Tx { chain: chain.clone(), hash, reply }).await?;
    let (height, index) = match status {
        TxStatus::Committed { height, index } => (height, index as usize),
        TxStatus::Pending => {
            return Err(ApiError(
                StatusCode::CONFLICT,
                format!("transaction {hash} is pending in the mempool: it has a proof once a committed block holds it"),
            ));
        }
    };
    let block = block_view(&state, &chain, height).await?;
    let proof = prove(&chain, &block, hash, index)?;
    Ok(Json(proof))
}

/// The proof that `hash` sits at `index` in `block`.
fn prove(chain: &str, block: &BlockView, hash: Hash32, index: usize) -> Result<TxProofView, ApiError> {
    let misplaced = || {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "the index places transaction {hash} at #{index} of block {}, which holds another",
                block.header.height
            ),
        )
    };
    if block.tx_hashes.get(index) != Some(&hash) {
        return Err(misplaced());
    }
    let audit_path = inclusion_path(&block.tx_hashes, index).ok_or_else(misplaced)?;
    Ok(TxProofView {
        chain: chain.to_owned(),
        tx: hash,
        leaf_hash: leaf_hash(&hash.0),
        leaf_index: index as u64,
        tree_size: block.tx_hashes.len() as u64,
        audit_path,
        header: block.header.clone(),
    })
}
