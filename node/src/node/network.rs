//! Connect the node loop to the network: gossip in and out, block sync both ways.
//!
//! Network events reach the loop as [`Request::Net`] through a bridge task (the loop's
//! channel is bounded: a full queue drops gossip, which the network then reports
//! ignored). Every gossiped message is judged by the loop and the verdict reported, so
//! peers that send garbage lose score. A node behind its peers asks one of them for
//! the blocks above its committed height, a bounded batch at a time, and hands each to
//! its consensus engine as `Input::Sync`: synced blocks pass the same checks as gossip.

use super::{LoopState, Request, chain::ChainRuntime};
use crate::ledger::tx::SignedTx;
use crate::net::{NetEvent, NetHandle, PeerId, SyncRequest, SyncResponse, Topic, Verdict};
use crate::telemetry::metrics;
use std::{collections::BTreeMap, sync::mpsc, time::Duration};

/// How often a node asks a peer whether it is behind.
const SYNC_INTERVAL_MS: u64 = 2_000;
/// A sync request not answered within this is given up.
const SYNC_TIMEOUT_MS: u64 = 15_000;
/// Blocks asked for in one request (the peer bounds it too).
const SYNC_BATCH_BLOCKS: u32 = 128;
/// Transactions in one gossip message.
const GOSSIP_TXS_MAX: usize = 2_000;
/// Retries of a full loop queue before an event is dropped.
const BRIDGE_RETRIES_MAX: u32 = 50;
/// Gossiped transaction batches waiting for their signatures to be checked; more are
/// ignored (not held against their sender: this node is the slow one).
const TX_BATCHES_VERIFYING_MAX: usize = 64;
/// Gossiped consensus messages waiting for their signatures to be checked; more are
/// ignored (not held against their sender). A height of a 100-validator BFT chain
/// brings a few hundred.
const CONSENSUS_MESSAGES_CHECKING_MAX: usize = 1_024;

/// Block sync bookkeeping per chain.
#[derive(Default)]
pub(super) struct SyncState {
    /// When each chain's outstanding request was sent.
    in_flight: BTreeMap<String, u64>,
    /// When each chain last asked.
    last_asked: BTreeMap<String, u64>,
    /// Round-robin position among peers.
    next_peer: usize,
}

/// Subscribes every chain's topics and gives each chain the handle for its broadcasts.
pub(super) fn attach(net: &NetHandle, chains: &mut [ChainRuntime]) {
    for chain in chains {
        if let Err(error) = net.subscribe(chain.id(), &chain.genesis_hash()) {
            tracing::error!(chain = %chain.id(), %error, "cannot subscribe to the chain's topics");
        }
    }
}

/// Sends the consensus messages each chain's engine asked for since the last call.
pub(super) fn flush(net: Option<&NetHandle>, chains: &mut [ChainRuntime]) {
    for chain in chains {
        let messages = chain.take_outbound();
        let Some(net) = net else { continue };
        for bytes in messages {
            if let Err(error) = net.publish(chain.id(), Topic::Consensus, bytes) {
                tracing::warn!(chain = %chain.id(), %error, "consensus message not sent");
            }
        }
    }
}

/// Where the bridge sends what it receives.
pub(super) struct Bridge {
    /// The loop's queue.
    pub requests: mpsc::SyncSender<Request>,
    /// Answers peers' sync requests.
    pub server: super::serve::BlockServer,
    /// For verdicts on messages judged before the loop.
    pub net: NetHandle,
}

/// Forwards network events to the loop on the current tokio runtime. Peers' sync
/// requests go to the block server instead, and gossiped transactions and consensus
/// messages to their verifiers first, so that neither waits behind consensus nor makes
/// consensus wait for signature checks.
pub(super) fn bridge(
    mut events: tokio::sync::mpsc::Receiver<NetEvent>,
    bridge: Bridge,
    prechecker: super::precheck::Prechecker,
) {
    let Bridge { requests, server, net } = bridge;
    let (to_verify, batches) = tokio::sync::mpsc::channel(TX_BATCHES_VERIFYING_MAX);
    tokio::spawn(verify_tx_gossip(batches, requests.clone()));
    let (to_check, messages) = tokio::sync::mpsc::channel(CONSENSUS_MESSAGES_CHECKING_MAX);
    tokio::spawn(check_consensus_gossip(messages, requests.clone(), prechecker, net.clone()));
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                NetEvent::BlocksRequested { request, reply, .. } => server.submit(request, reply),
                NetEvent::Message { chain, topic: Topic::Txs, id, from, bytes, .. } => {
                    if let Err(full) = to_verify.try_send((chain, id, from, bytes)) {
                        let (_, id, from, _) = full.into_inner();
                        ignore_unchecked(&net, Topic::Txs, id, from);
                    }
                }
                NetEvent::Message { topic: Topic::Consensus, .. } => {
                    if let Err(full) = to_check.try_send(event)
                        && let NetEvent::Message { id, from, .. } = full.into_inner()
                    {
                        ignore_unchecked(&net, Topic::Consensus, id, from);
                    }
                }
                other => {
                    if !forward(&requests, Request::Net(other)).await {
                        return;
                    }
                }
            }
        }
    });
}

/// Drops a message that found its verifier's queue full, without holding it against
/// its sender: this node is the slow one.
fn ignore_unchecked(net: &NetHandle, topic: Topic, id: crate::net::MessageId, from: PeerId) {
    metrics::gossip_message(topic.label(), Verdict::Ignore.label());
    let _ = net.report(id, from, Verdict::Ignore);
}

/// A gossiped transaction batch waiting for its signatures to be checked.
type TxBatch = (String, crate::net::MessageId, PeerId, Vec<u8>);

/// Checks gossiped transaction batches in arrival order (a later nonce must not pass an
/// earlier one) on the blocking pool, and hands them to the loop.
async fn verify_tx_gossip(mut batches: tokio::sync::mpsc::Receiver<TxBatch>, requests: mpsc::SyncSender<Request>) {
    while let Some((chain, id, from, bytes)) = batches.recv().await {
        let Ok(txs) = tokio::task::spawn_blocking(move || super::chain::check_tx_gossip(&bytes)).await else {
            return;
        };
        if !forward(&requests, Request::TxGossip { chain, id, from, txs }).await {
            return;
        }
    }
}

/// Checks the signatures gossiped consensus messages carry, in arrival order, on the
/// blocking pool ([`super::precheck`]); rejects a message with a forged one and hands
/// the others to the loop, whose engines then find their signatures verified.
async fn check_consensus_gossip(
    mut messages: tokio::sync::mpsc::Receiver<NetEvent>,
    requests: mpsc::SyncSender<Request>,
    prechecker: super::precheck::Prechecker,
    net: NetHandle,
) {
    while let Some(event) = messages.recv().await {
        let checker = prechecker.clone();
        let checking = tokio::task::spawn_blocking(move || {
            let checked = match &event {
                NetEvent::Message { chain, bytes, .. } => checker.check(chain, bytes),
                _ => Ok(()),
            };
            (event, checked)
        });
        let Ok((event, checked)) = checking.await else { return };
        match (event, checked) {
            (NetEvent::Message { id, from, .. }, Err(reason)) => {
                tracing::debug!(peer = %from, %reason, "consensus message rejected before the loop");
                metrics::gossip_message(Topic::Consensus.label(), Verdict::Reject.label());
                let _ = net.report(id, from, Verdict::Reject);
            }
            (event, _) => {
                if !forward(&requests, Request::Net(event)).await {
                    return;
                }
            }
        }
    }
}

/// Hands `request` to the loop, waiting a little while its queue is full; false when the
/// loop has stopped.
async fn forward(requests: &mpsc::SyncSender<Request>, mut request: Request) -> bool {
    for _ in 0..BRIDGE_RETRIES_MAX {
        match requests.try_send(request) {
            Ok(()) => return true,
            Err(mpsc::TrySendError::Full(back)) => {
                request = back;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return false,
        }
    }
    true
}

impl LoopState {
    /// Admits gossiped transactions checked off the loop and reports the verdict.
    pub(super) fn on_tx_gossip(
        &mut self,
        chain: &str,
        id: crate::net::MessageId,
        from: PeerId,
        txs: Option<Vec<(nest_sdk::Hash32, SignedTx)>>,
    ) {
        let Some(net) = self.net.clone() else { return };
        let verdict = match (self.chains.iter_mut().find(|c| c.id() == chain), txs) {
            (None, _) => Verdict::Ignore,
            (Some(_), None) => Verdict::Reject,
            (Some(runtime), Some(txs)) => runtime.admit_gossiped(txs),
        };
        metrics::gossip_message(Topic::Txs.label(), verdict.label());
        let _ = net.report(id, from, verdict);
    }

    /// Handles one network event.
    pub(super) fn on_net(&mut self, event: NetEvent) {
        let Some(net) = self.net.clone() else { return };
        match event {
            NetEvent::Message { chain, topic, id, from, from_key, bytes } => {
                let verdict = match self.chains.iter_mut().find(|c| c.id() == chain) {
                    None => Verdict::Ignore,
                    Some(runtime) => {
                        let verdict = match topic {
                            Topic::Consensus => {
                                let (verdict, reason) = runtime.on_consensus_message(&self.store, from_key, bytes);
                                if let Some(reason) = reason {
                                    tracing::debug!(%chain, peer = %from, ?verdict, %reason, "consensus message not accepted");
                                }
                                verdict
                            }
                            Topic::Txs => runtime.on_tx_gossip(&bytes),
                        };
                        // The sender built on, or voted above, blocks this node lacks: it can serve them.
                        if runtime.take_sender_ahead() {
                            ask_blocks(&net, &mut self.sync, from, runtime, super::now_ms());
                        }
                        verdict
                    }
                };
                metrics::gossip_message(topic.label(), verdict.label());
                let _ = net.report(id, from, verdict);
            }
            // The bridge hands these to the block server; one that got here is dropped,
            // which fails it at the peer.
            NetEvent::BlocksRequested { .. } => metrics::sync_request("refused"),
            NetEvent::BlocksReceived { from, request, response } => self.on_blocks(&net, from, request, response),
            NetEvent::PeerConnected { peer, .. } => {
                for chain in &self.chains {
                    ask_blocks(&net, &mut self.sync, peer, chain, super::now_ms());
                }
            }
            NetEvent::PeerDisconnected { .. } => {}
        }
    }

    fn on_blocks(
        &mut self,
        net: &NetHandle,
        from: PeerId,
        request: SyncRequest,
        response: Result<SyncResponse, String>,
    ) {
        self.sync.in_flight.remove(&request.chain);
        let Some(chain) = self.chains.iter_mut().find(|c| c.id() == request.chain) else { return };
        match response {
            Ok(response) => {
                let applied = chain.apply_synced(&self.store, response.blocks);
                // Go on while the peer's answer brought new blocks and it has more final ones.
                if applied > 0 && chain.committed_height() < response.head_height {
                    let chain = &self.chains.iter().find(|c| c.id() == request.chain).expect("found above");
                    ask_blocks(net, &mut self.sync, from, chain, super::now_ms());
                }
            }
            Err(reason) => tracing::warn!(chain = %request.chain, peer = %from, %reason, "block sync failed"),
        }
    }

    /// Asks a peer, in turn, for blocks above each chain's committed height.
    pub(super) fn sync_tick(&mut self, now_ms: u64) {
        let Some(net) = self.net.clone() else { return };
        let peers = net.peers();
        if peers.is_empty() {
            return;
        }
        for chain in &self.chains {
            let asked = self.sync.last_asked.get(chain.id()).copied().unwrap_or(0);
            if now_ms.saturating_sub(asked) < SYNC_INTERVAL_MS {
                continue;
            }
            self.sync.next_peer = self.sync.next_peer.wrapping_add(1);
            let (peer, _) = peers[self.sync.next_peer % peers.len()];
            ask_blocks(&net, &mut self.sync, peer, chain, now_ms);
        }
    }

    /// Blocks or unblocks a peer given as text.
    pub(super) fn block_peer(&self, peer: &str, blocked: bool) -> Result<(), super::QueryError> {
        let net = self.net.as_ref().ok_or_else(|| super::QueryError::Failed("this node has no network".into()))?;
        let peer: PeerId = peer.parse().map_err(|e| super::QueryError::Failed(format!("peer id \"{peer}\": {e}")))?;
        net.set_blocked(peer, blocked).map_err(|e| super::QueryError::Failed(e.to_string()))
    }

    /// Gossips admitted transactions to the chain's other nodes.
    pub(super) fn gossip_txs(&self, chain: &str, txs: Vec<SignedTx>) {
        let Some(net) = &self.net else { return };
        for batch in txs.chunks(GOSSIP_TXS_MAX) {
            let encoded: Vec<Vec<u8>> = batch.iter().map(SignedTx::encode).collect();
            if let Ok(bytes) = borsh::to_vec(&encoded) {
                let _ = net.publish(chain, Topic::Txs, bytes);
            }
        }
    }
}

/// Sends one sync request for `chain` unless one is in flight (and not timed out).
fn ask_blocks(net: &NetHandle, sync: &mut SyncState, peer: PeerId, chain: &ChainRuntime, now_ms: u64) {
    if sync.in_flight.get(chain.id()).is_some_and(|sent| now_ms.saturating_sub(*sent) < SYNC_TIMEOUT_MS) {
        return;
    }
    let request = SyncRequest {
        chain: chain.id().to_string(),
        from_height: chain.committed_height() + 1,
        count: SYNC_BATCH_BLOCKS,
    };
    if net.request_blocks(peer, request).is_ok() {
        sync.in_flight.insert(chain.id().to_string(), now_ms);
        sync.last_asked.insert(chain.id().to_string(), now_ms);
    }
}
