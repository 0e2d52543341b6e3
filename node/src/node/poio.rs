//! Prove this node's Proof-of-i/o contributions: once per round of a chain that rewards
//! them, a liveness attestation and the answer to its storage challenge, read from this
//! node's own store (a node that lost the challenged block cannot answer).
//!
//! A round's contributions are sent once its first block is committed (the block that
//! records [`RoundStart`]), which leaves the rest of that round and the whole next one
//! for them to be included. The transactions are signed by the node key, which pays
//! their fees.

use super::{LoopState, QueryError};
use crate::ledger::poio::{self, PoioParams, PoioTx, RoundRewards, RoundStart};
use crate::ledger::tx::{SignedTx, TxBody, UnsignedTx, gas_of};
use nest_sdk::PublicKey;
use std::collections::BTreeSet;

/// Rounds remembered as proven, per chain: older ones are past their grace round.
const ROUNDS_REMEMBERED: u64 = 4;

/// Which rounds this node has proven, per chain.
#[derive(Default)]
pub struct Prover {
    proven: BTreeSet<(String, u64)>,
}

impl LoopState {
    /// Sends this round's contributions on every chain that rewards them, once.
    pub(super) fn poio_tick(&mut self) {
        for index in 0..self.chains.len() {
            let chain = &self.chains[index];
            let ledger = chain.ledger();
            let (Some(_), Some(dpos)) = (ledger.poio_params(), ledger.dpos_params()) else { continue };
            let round = dpos.round_of(chain.committed_height().max(1));
            let Some(start) = ledger.poio_round_start(round) else { continue };
            let chain_id = chain.id().to_string();
            if !self.poio.proven.insert((chain_id.clone(), round)) {
                continue;
            }
            self.poio.proven.retain(|(id, proven)| *id != chain_id || proven + ROUNDS_REMEMBERED > round);
            let me = self.key.public_key();
            if !may_prove(ledger, chain.committed_height() + 1, &me) {
                continue;
            }
            let prove = self.manifest.chain.iter().find(|entry| entry.id == chain_id).map(|entry| entry.prove);
            let prove = prove.unwrap_or_default();
            let mut bodies = Vec::new();
            if prove.uptime {
                bodies.push(PoioTx::Alive { round, start: start.start });
            }
            if prove.storage {
                match self.storage_answer(index, round, &start, &me) {
                    Ok(Some(answer)) => bodies.push(answer),
                    Ok(None) => {}
                    Err(error) => tracing::warn!(chain = %chain_id, round, %error, "storage challenge not answered"),
                }
            }
            self.submit_poio(index, bodies);
        }
    }

    /// The answer to this node's storage challenge of `round`, from its store; `None`
    /// when the round has no challenge.
    fn storage_answer(
        &mut self,
        index: usize,
        round: u64,
        start: &RoundStart,
        me: &PublicKey,
    ) -> Result<Option<PoioTx>, String> {
        let Some((block_index, _)) = poio::challenge(start, me) else { return Ok(None) };
        let chain = &mut self.chains[index];
        let block = chain.ledger().poio_tx_block(block_index).ok_or(format!("no block #{block_index} recorded"))?;
        let chain_id = chain.id().to_string();
        let stored = self
            .store
            .block_by_height(&chain_id, block.height)
            .map_err(|e| e.to_string())?
            .ok_or(format!("block {} is not in this node's store", block.height))?;
        let unit = chain
            .chain_type()
            .call(|c| c.decode(stored.unit.as_slice().into()))
            .map_err(|e| format!("decoding block {}: {e}", block.height))?;
        let txs: Vec<Vec<u8>> = unit.txs.iter().map(|tx| tx.to_vec()).collect();
        poio::answer(round, start, me, &block, &txs)
            .map(Some)
            .ok_or(format!("block {} in the store does not match its recorded root", block.height))
    }

    fn submit_poio(&mut self, index: usize, bodies: Vec<PoioTx>) {
        let key = self.key.clone();
        let chain = &mut self.chains[index];
        let chain_id = chain.id().to_string();
        let status = chain.status();
        let mut submitted: Vec<SignedTx> = Vec::new();
        for body in bodies {
            let body = TxBody::Poio(body);
            let fee = gas_of(&body).saturating_mul(status.gas_price);
            let nonce = chain.pending_nonce(&key.public_key());
            let tx = UnsignedTx { chain: status.genesis_hash, from: key.public_key(), nonce, fee, body }.sign(&key);
            match chain.admit(vec![(tx.hash(), tx.clone())]).remove(0) {
                Ok(()) => submitted.push(tx),
                Err(error) => tracing::warn!(chain = %chain_id, %error, "proof-of-i/o transaction not admitted"),
            }
        }
        self.gossip_txs(&chain_id, submitted);
    }
}

/// Whether `node` may send contributions at `height`: a member of the set in force or a
/// registered delegate's node key (what the ledger accepts).
fn may_prove(ledger: &crate::ledger::Ledger, height: u64, node: &PublicKey) -> bool {
    let in_set = ledger.validators_at(height).is_some_and(|set| set.members.iter().any(|m| m.key == *node));
    in_set || ledger.record(&crate::ledger::staking::node_key_record(node)).is_some()
}

/// A chain's Proof-of-i/o, as `GET /v1/chains/{id}/poio` shows it.
#[derive(Debug, serde::Serialize)]
pub struct PoioView {
    /// Chain id.
    pub chain: String,
    /// Height of the committed state it comes from.
    pub height: u64,
    /// The round that height is in.
    pub round: u64,
    /// Cap, per-round pool and weights in force.
    pub params: PoioParams,
    /// Tokens minted so far; never above `params.cap`.
    pub issued: u64,
}

/// One round's Proof-of-i/o, as `GET /v1/chains/{id}/poio/rounds/{n}` shows it.
#[derive(Debug, serde::Serialize)]
pub struct PoioRoundView {
    /// Chain id.
    pub chain: String,
    /// The round.
    pub round: u64,
    /// What its first block recorded (the basis of its attestations and challenges).
    pub start: RoundStart,
    /// Its settlement, once the first block of round `round + 2` is committed.
    pub settled: Option<RoundRewards>,
}

fn poio_of(
    runtime: &super::chain::ChainRuntime,
    chain: &str,
) -> Result<(PoioParams, crate::ledger::rounds::DposParams), QueryError> {
    let ledger = runtime.ledger();
    match (ledger.poio_params(), ledger.dpos_params()) {
        (Some(poio), Some(dpos)) => Ok((poio, dpos)),
        _ => Err(QueryError::NotFound(format!("chain {chain} has no Proof-of-i/o rewards"))),
    }
}

/// The chain's parameters and what was minted.
pub(super) fn poio_view(runtime: &mut super::chain::ChainRuntime, chain: String) -> Result<PoioView, QueryError> {
    let (params, dpos) = poio_of(runtime, &chain)?;
    let height = runtime.committed_height();
    let issued = runtime.ledger().poio_issued();
    Ok(PoioView { chain, height, round: dpos.round_of(height.max(1)), params, issued })
}

/// One round's start and settlement.
pub(super) fn poio_round_view(
    runtime: &mut super::chain::ChainRuntime,
    chain: String,
    round: u64,
) -> Result<PoioRoundView, QueryError> {
    poio_of(runtime, &chain)?;
    let ledger = runtime.ledger();
    let start = ledger
        .poio_round_start(round)
        .ok_or_else(|| QueryError::NotFound(format!("round {round} of chain {chain} has not started")))?;
    Ok(PoioRoundView { chain, round, start, settled: ledger.poio_rewards(round) })
}
