//! Perform node operations from blocking code: the console's Lua bindings and tools.
//!
//! Every operation is a [`Request`] to the node loop, the same one the HTTP handlers
//! send, so the console and the API share one implementation of each operation.

use crate::api::{Checked, SubmitAnswer, merge_results};
use crate::crypto::sha256;
use crate::ledger::{tx::SignedTx, verify::verify_batch};
use crate::node::{AccountView, BlockView, DeviceOp, PluginEntry, PluginOp, QueryError, Request, TxStatus};
use nest_sdk::{Hash32, PublicKey};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Sends a request to the node loop and blocks until it answers (not on async workers).
pub fn ask_blocking<T>(
    requests: &mpsc::SyncSender<Request>,
    build: impl FnOnce(oneshot::Sender<Result<T, QueryError>>) -> Request,
) -> Result<T, QueryError> {
    let (reply, answer) = oneshot::channel();
    requests.try_send(build(reply)).map_err(|error| match error {
        mpsc::TrySendError::Full(_) => QueryError::Failed("node busy: request queue full, retry later".into()),
        mpsc::TrySendError::Disconnected(_) => QueryError::Failed("node is shutting down".into()),
    })?;
    answer.blocking_recv().map_err(|_| QueryError::Failed("node is shutting down".into()))?
}

/// A committed block.
pub fn block(requests: &mpsc::SyncSender<Request>, chain: &str, height: u64) -> Result<BlockView, QueryError> {
    ask_blocking(requests, |reply| Request::Block { chain: chain.to_string(), height, reply })
}

/// An account.
pub fn account(
    requests: &mpsc::SyncSender<Request>,
    chain: &str,
    account: PublicKey,
) -> Result<AccountView, QueryError> {
    ask_blocking(requests, |reply| Request::Account { chain: chain.to_string(), account, reply })
}

/// Where a transaction is.
pub fn tx_status(requests: &mpsc::SyncSender<Request>, chain: &str, hash: Hash32) -> Result<TxStatus, QueryError> {
    ask_blocking(requests, |reply| Request::Tx { chain: chain.to_string(), hash, reply })
}

/// A plugin operation.
pub fn plugins(requests: &mpsc::SyncSender<Request>, op: PluginOp) -> Result<Vec<PluginEntry>, QueryError> {
    ask_blocking(requests, |reply| Request::Plugin { op, reply })
}

/// A device or radio operation; the answer is JSON.
pub fn devices(requests: &mpsc::SyncSender<Request>, op: DeviceOp) -> Result<serde_json::Value, QueryError> {
    ask_blocking(requests, |reply| Request::Devices { op, reply })
}

/// A staking query; the answer is JSON.
pub fn staking(
    requests: &mpsc::SyncSender<Request>,
    op: crate::node::StakingOp,
) -> Result<serde_json::Value, QueryError> {
    ask_blocking(requests, |reply| Request::Staking { op, reply })
}

/// Blocks (or unblocks) a peer by its peer id.
pub fn block_peer(requests: &mpsc::SyncSender<Request>, peer: &str, blocked: bool) -> Result<(), QueryError> {
    ask_blocking(requests, |reply| Request::BlockPeer { peer: peer.to_string(), blocked, reply })
}

/// Verifies signed transactions and submits them, as `POST /v1/chains/{id}/txs` does.
pub fn submit(
    requests: &mpsc::SyncSender<Request>,
    chain: &str,
    txs: Vec<SignedTx>,
) -> Result<SubmitAnswer, QueryError> {
    let verdicts = verify_batch(&txs);
    let checked: Vec<Checked> = txs
        .into_iter()
        .zip(verdicts)
        .map(|(tx, ok)| {
            let hash = sha256(&tx.encode());
            if ok { Ok((hash, tx)) } else { Err((Some(hash), crate::ledger::tx::TxError::BadSignature)) }
        })
        .collect();
    let admissible: Vec<(Hash32, SignedTx)> = checked.iter().filter_map(|c| c.as_ref().ok().cloned()).collect();
    let admitted = if admissible.is_empty() {
        Vec::new()
    } else {
        ask_blocking(requests, |reply| Request::Submit { chain: chain.to_string(), txs: admissible, reply })?
    };
    Ok(merge_results(checked, admitted))
}

/// A market operation: strategies, quotes, listings, market transactions.
pub fn market(
    requests: &mpsc::SyncSender<Request>,
    op: crate::market::MarketOp,
) -> Result<serde_json::Value, QueryError> {
    ask_blocking(requests, |reply| Request::Market { op, reply })
}
