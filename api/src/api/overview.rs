//! Serve what an overview of the node needs beyond `/v1/status`: recent blocks, the
//! process's CPU and memory, and a public stream of committed blocks.
//!
//! Routes: `GET /v1/chains/{chain}/blocks?to=&limit=` (summaries of the newest
//! committed blocks, newest first, with the final and best heights), `GET /v1/process`
//! (uptime, CPU time, resident memory) and `GET /v1/events/blocks?chain=` (WebSocket:
//! `block_committed` events, and `lagged` when the reader fell behind).
//!
//! The block stream is public because what it carries — height, hash and transaction
//! count of each committed block — is public through `GET /v1/chains/{id}/blocks/{h}`
//! anyway; the full event stream (transactions, plugin states, device frames) stays
//! behind the token at `/v1/admin/events`. Anyone who reaches the API may open a block
//! stream, so these have their own limit, [`BLOCK_STREAMS_MAX`], apart from the admin's.

use super::{ApiError, ApiState, bad_request, off_loop};
use crate::http::json_error;
use crate::node::recent::{BLOCK_SUMMARIES_MAX, RecentBlocks};
use crate::telemetry::events::Event;
use axum::{
    Extension, Json, Router,
    extract::{Path, Query, State, WebSocketUpgrade, rejection::QueryRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Public block streams open at once; more are answered 503.
pub const BLOCK_STREAMS_MAX: usize = 16;
/// Block summaries when the query does not say.
const BLOCK_SUMMARIES_DEFAULT: usize = 20;

/// The overview routes.
pub fn routes() -> Router<ApiState> {
    let streams = Arc::new(Semaphore::new(BLOCK_STREAMS_MAX));
    Router::new()
        .route("/v1/chains/{chain}/blocks", get(recent_blocks))
        .route("/v1/process", get(process))
        .route("/v1/events/blocks", get(block_stream).layer(Extension(streams)))
}

/// `?to=&limit=`: the newest height wanted and how many blocks, both optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlocksQuery {
    #[serde(default)]
    to: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn recent_blocks(
    State(state): State<ApiState>,
    Path(chain): Path<String>,
    query: Result<Query<BlocksQuery>, QueryRejection>,
) -> Result<Json<RecentBlocks>, ApiError> {
    let Query(query) = query.map_err(|e| bad_request(format!("query: {}", e.body_text())))?;
    let limit = query.limit.unwrap_or(BLOCK_SUMMARIES_DEFAULT);
    if limit > BLOCK_SUMMARIES_MAX {
        return Err(bad_request(format!(
            "limit {limit} is above {BLOCK_SUMMARIES_MAX}, the most blocks one answer holds"
        )));
    }
    let to_height = query.to;
    let reader = state.reader.clone();
    off_loop(move || reader.recent_blocks(&chain, to_height, limit)).await.map(Json)
}

/// `GET /v1/process`: this node process's uptime, CPU time and memory (read from `/proc`
/// off the async workers).
async fn process() -> Result<Json<crate::procfs::ProcessUsage>, ApiError> {
    tokio::task::spawn_blocking(crate::procfs::own_usage)
        .await
        .map(Json)
        .map_err(|_| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "reading /proc failed".into()))
}

/// `?chain=<id>` keeps one chain's blocks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    #[serde(default)]
    chain: Option<String>,
}

/// `GET /v1/events/blocks` (WebSocket): committed blocks as JSON text frames.
async fn block_stream(
    State(state): State<ApiState>,
    Extension(streams): Extension<Arc<Semaphore>>,
    query: Result<Query<StreamQuery>, QueryRejection>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Ok(Query(query)) = query else {
        return bad_request("query: only ?chain=<id> is understood").into_response();
    };
    let Ok(permit) = streams.try_acquire_owned() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{BLOCK_STREAMS_MAX} block streams are open, the limit; retry later, or poll /v1/status"),
        );
    };
    let receiver = state.events.subscribe();
    let keep = move |event: &Event| is_public(event) && event.is_about(query.chain.as_deref());
    upgrade.on_upgrade(move |socket| crate::http::stream_events(socket, receiver, keep, permit))
}

/// Whether the public block stream carries `event`: committed blocks, and the notice
/// that the reader missed some (so it knows to re-read the list).
fn is_public(event: &Event) -> bool {
    matches!(event, Event::BlockCommitted { .. } | Event::Lagged { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nest_sdk::Hash32;

    #[test]
    fn the_public_stream_carries_blocks_and_lag_notices_only() {
        let block = Event::BlockCommitted { chain: "main".into(), height: 3, hash: Hash32::ZERO, txs: 1 };
        let tx = Event::TxCommitted { chain: "main".into(), hash: Hash32::ZERO, height: 3, index: 0 };
        let plugin = Event::PluginState { plugin: "poa".into(), state: "disabled".into(), reason: None };
        assert!(is_public(&block) && is_public(&Event::Lagged { missed: 2 }));
        assert!(!is_public(&tx) && !is_public(&plugin));
        assert!(block.is_about(Some("main")) && block.is_about(None) && !block.is_about(Some("side")));
    }
}
