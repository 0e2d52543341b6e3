//! Serve peers' block-sync requests off the node loop.
//!
//! A peer asking for blocks must not delay consensus: the requests go from the network
//! bridge straight to this server's own thread, which reads committed blocks from the
//! store (a clone of the node's fjall handles) and the agreed, not yet final branch from
//! a view the node loop publishes when its head or tip moves. The queue is bounded; a
//! request that finds it full is dropped (the peer's request fails and it asks another
//! peer), and the network task limits each peer's request rate before that.

use crate::net::{NetHandle, ResponseToken, SyncBlock, SyncRequest, SyncResponse};
use crate::store::{ChainStore, Store};
use crate::telemetry::metrics;
pub use nest_chain::serve_view::ServeView;
use std::{
    collections::HashMap,
    sync::{Arc, RwLock, mpsc},
};

/// Sync requests waiting for the server at most.
pub const SYNC_SERVE_QUEUE_MAX: usize = 32;
/// Blocks one answer carries at most (the asker and the network bound it too).
const SERVE_BATCH_BLOCKS_MAX: usize = 128;

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
    // A node that pruned the blocks asked for has a gap below its branch: it serves
    // nothing rather than blocks whose parents the peer cannot have.
    let contiguous = view.tip_branch.first().is_none_or(|block| block.height <= next_height);
    if contiguous {
        blocks.extend(view.tip_branch.iter().filter(|block| block.height >= next_height).take(room).cloned());
    }
    let head_height = view.tip_height.max(blocks.last().map_or(0, |block| block.height));
    SyncResponse { head_height, blocks }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Changes;
    use crate::store::{ChainHead, StoredBlock};
    use nest_sdk::Hash32;

    fn sync_block(height: u64) -> SyncBlock {
        SyncBlock { height, unit: vec![height as u8], certificate: Vec::new(), finality: Vec::new() }
    }

    /// A store with blocks 0..=4 committed, blocks 1 and 2 pruned, and a branch of 5, 6.
    fn pruned_store() -> (tempfile::TempDir, Store, ServeView) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for height in 0..=4u64 {
            let hash = Hash32([height as u8 + 1; 32]);
            let block =
                StoredBlock { height, hash, unit: vec![height as u8], certificate: Vec::new(), finality: Vec::new() };
            let head = ChainHead { height, hash, timestamp_ms: 0, state_digest: Hash32::ZERO };
            store.commit_block("main", &block, &[], &Changes::new(), &head).unwrap();
        }
        store.prune_blocks("main", 1, 3).unwrap();
        let view = ServeView {
            committed_height: 4,
            tip_height: 6,
            tip_branch: vec![sync_block(5), sync_block(6)],
            ..ServeView::default()
        };
        (dir, store, view)
    }

    fn heights(store: &Store, view: &ServeView, from_height: u64) -> Vec<u64> {
        let request = SyncRequest { chain: "main".into(), from_height, count: 10 };
        serve(store, Some(view), &request).blocks.iter().map(|block| block.height).collect()
    }

    #[test]
    fn a_pruned_node_serves_no_branch_above_a_gap() {
        let (_dir, store, view) = pruned_store();
        assert_eq!(heights(&store, &view, 3), vec![3, 4, 5, 6], "what it keeps, then its branch");
        assert_eq!(heights(&store, &view, 5), vec![5, 6]);
        assert_eq!(heights(&store, &view, 1), Vec::<u64>::new(), "block 1 is gone: nothing, not 5 and 6");
    }
}
