//! Serve a chain's staking state: the ranked delegates and one account's stake and votes.
//!
//! Routes: `GET /v1/chains/{chain}/dpos/delegates` (every delegate with its node key,
//! name and votes, most votes first, ties by account key — the order a DPoS round draws
//! its top N from) and `GET /v1/chains/{chain}/dpos/accounts/{account}` (bonded stake,
//! unbonding amounts with the height each unlocks at, the delegates it approves) and
//! `GET /v1/chains/{chain}/dpos/rounds/{round}` (a round's heights, seed, elected
//! delegates with their votes, slot order, genesis time and pace: enough to recompute
//! the order, ADR 0013). `GET /v1/chains/{chain}/poio` gives the Proof-of-i/o cap,
//! pool, weights and minted total; `GET /v1/chains/{chain}/poio/rounds/{round}` a
//! round's start and, once settled, each node's proven contributions and reward
//! (ADR 0014).

use super::{ApiError, ApiState, ask, bad_request};
use crate::node::{Request, StakingOp};
use axum::{
    Json, Router,
    extract::{Path, State},
    routing::get,
};

/// The staking routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/chains/{chain}/dpos/delegates", get(delegates))
        .route("/v1/chains/{chain}/dpos/accounts/{account}", get(account))
        .route("/v1/chains/{chain}/dpos/rounds/{round}", get(round))
        .route("/v1/chains/{chain}/poio", get(poio))
        .route("/v1/chains/{chain}/poio/rounds/{round}", get(poio_round))
}

async fn staking(state: &ApiState, op: StakingOp) -> Result<Json<serde_json::Value>, ApiError> {
    ask(state, |reply| Request::Staking { op, reply }).await.map(Json)
}

async fn delegates(
    State(state): State<ApiState>,
    Path(chain): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    staking(&state, StakingOp::Delegates { chain }).await
}

async fn account(
    State(state): State<ApiState>,
    Path((chain, account)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let account = crate::crypto::account_from_hex(&account).map_err(|e| bad_request(format!("account: {e}")))?;
    staking(&state, StakingOp::Account { chain, account }).await
}

async fn round(
    State(state): State<ApiState>,
    Path((chain, round)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let round = round_number(&round)?;
    staking(&state, StakingOp::Round { chain, round }).await
}

async fn poio(State(state): State<ApiState>, Path(chain): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    staking(&state, StakingOp::Poio { chain }).await
}

async fn poio_round(
    State(state): State<ApiState>,
    Path((chain, round)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let round = round_number(&round)?;
    staking(&state, StakingOp::PoioRound { chain, round }).await
}

fn round_number(text: &str) -> Result<u64, ApiError> {
    text.parse().map_err(|_| bad_request(format!("round: {text:?} is not a round number")))
}
