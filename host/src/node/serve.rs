//! Serve peers' block-sync requests off the node loop.
//!
//! A peer asking for blocks must not delay consensus: the requests go from the network
//! bridge straight to this server's own thread, which reads committed blocks from the
//! store (a clone of the node's fjall handles) and the agreed, not yet final branch from
//! a view the node loop publishes when its head or tip moves. The queue is bounded; a
//! request that finds it full is dropped (the peer's request fails and it asks another
//! peer), and the network task limits each peer's request rate before that.

use crate::admin::metrics;
use crate::net::{NetHandle, ResponseToken, SyncBlock, SyncRequest, SyncResponse};
use crate::store::{ChainStore, Store};
use std::{
    collections::HashMap,
    sync::{Arc, RwLock, mpsc},
};

/// Sync requests waiting for the server at most.
pub const SYNC_SERVE_QUEUE_MAX: usize = 32;
/// Blocks one answer carries at most (the asker and the network bound it too).
const SERVE_BATCH_BLOCKS_MAX: usize = 128;

/// What the server needs of one chain beyond the store: its heads and the agreed branch
/// above the committed head (a peer that was partitioned away needs it to see this one).
#[derive(Clone, Debug, Default)]
pub struct ServeView {
    /// Height of the newest final block.
    pub committed_height: u64,
    /// Height of the head fork choice picked (final or not).
    pub tip_height: u64,
    /// The agreed, not final units above the committed head, in height order.
    pub tip_branch: Vec<SyncBlock>,
    /// The chain's validator sets by first height (for the block reader's certificate
    /// checks; empty for engines with their own authority list).
    pub validator_sets: Arc<Vec<crate::ledger::validators::ValidatorSet>>,
    /// A DPoS chain's parameters (the block reader shows each block's round).
    pub dpos: Option<crate::ledger::rounds::DposParams>,
}

/// The views of every chain, published by the node loop and read by the server.
pub type ServeViews = Arc<RwLock<HashMap<String, Arc<ServeView>>>>;

/// The sending side of the server's queue.
#[derive(Clone)]
pub struct BlockServer {
    jobs: mpsc::SyncSender<(SyncRequest, ResponseToken)>,
}

impl BlockServer {
    /// Starts the server thread; it stops when every [`BlockServer`] clone is dropped.
    pub fn start(store: Store, views: ServeViews, net: NetHandle) -> std::io::Result<BlockServer> {
        let (jobs, queue) = mpsc::sync_channel::<(SyncRequest, ResponseToken)>(SYNC_SERVE_QUEUE_MAX);
        std::thread::Builder::new().name("nest-block-server".into()).spawn(move || {
            for (request, reply) in queue {
                let view = views.read().ok().and_then(|views| views.get(&request.chain).cloned());
                let response = serve(&store, view.as_deref(), &request);
                metrics::sync_request("served");
                let _ = net.answer_blocks(reply, response);
            }
        })?;
        Ok(BlockServer { jobs })
    }

    /// Queues a request; when the queue is full the request is dropped, which fails it
    /// at the peer at once.
    pub fn submit(&self, request: SyncRequest, reply: ResponseToken) {
        if self.jobs.try_send((request, reply)).is_err() {
            metrics::sync_request("refused");
        }
    }
}

/// Blocks from `request.from_height` on: committed ones from the store, then the agreed
/// branch of the chain's `view`; with this node's tip height. Nothing for a chain this
/// node does not run (no view).
pub fn serve(store: &dyn ChainStore, view: Option<&ServeView>, request: &SyncRequest) -> SyncResponse {
    let Some(view) = view else {
        return SyncResponse { head_height: 0, blocks: Vec::new() };
    };
    let count = (request.count as usize).min(SERVE_BATCH_BLOCKS_MAX);
    let mut blocks: Vec<SyncBlock> = (request.from_height..)
        .take(count)
        .map_while(|height| match store.block_by_height(&request.chain, height) {
            Ok(Some(block)) => {
                Some(SyncBlock { height, unit: block.unit, certificate: block.certificate, finality: block.finality })
            }
            _ => None,
        })
        .collect();
    // The store may have moved past the view: skip branch units it now holds as final.
    let next_height = blocks.last().map_or(request.from_height, |block| block.height + 1);
    let room = count.saturating_sub(blocks.len());
    blocks.extend(view.tip_branch.iter().filter(|block| block.height >= next_height).take(room).cloned());
    let head_height = view.tip_height.max(blocks.last().map_or(0, |block| block.height));
    SyncResponse { head_height, blocks }
}
