//! Serve the market over HTTP: public listings and quotes, admin strategy management.
//!
//! Public: `GET /v1/chains/{chain}/market/{skus,demands,locks}`,
//! `GET /v1/chains/{chain}/market/skus/{sku}` (the SKU, its bids, locks and recent
//! prices) and `POST /v1/market/quote/{sku}` (a JSON pricing context). Admin (under
//! `/v1/admin`): `GET /market/strategies[/{sku}]`, `PUT /market/strategies/{sku}` (the
//! Lua source as the body), `POST /market/strategies/{sku}/rollback/{version}`,
//! `GET /market/chart/{sku}?points=n`. Market transactions are submitted like any other
//! at `POST /v1/chains/{chain}/txs`.

use super::{ApiError, ApiState, ask};
use crate::market::{MarketOp, PricingContext};
use crate::node::Request;
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    routing::{get, post},
};
use serde_json::Value;

/// Points of a chart when the query does not say.
const CHART_POINTS_DEFAULT: usize = 11;

async fn market(state: &ApiState, op: MarketOp) -> Result<Json<Value>, ApiError> {
    ask(state, |reply| Request::Market { op, reply }).await.map(Json)
}

/// The public market routes.
pub fn public_routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/chains/{chain}/market/skus", get(skus))
        .route("/v1/chains/{chain}/market/skus/{sku}", get(book))
        .route("/v1/chains/{chain}/market/demands", get(demands))
        .route("/v1/chains/{chain}/market/locks", get(locks))
        .route("/v1/market/quote/{sku}", post(quote))
}

/// The admin market routes, relative to `/v1/admin`.
pub fn admin_routes() -> Router<ApiState> {
    Router::new()
        .route("/market/strategies", get(strategies))
        .route("/market/strategies/{sku}", get(versions).put(install))
        .route("/market/strategies/{sku}/rollback/{version}", post(rollback))
        .route("/market/chart/{sku}", get(chart))
}

async fn skus(State(state): State<ApiState>, Path(chain): Path<String>) -> Result<Json<Value>, ApiError> {
    market(&state, MarketOp::Skus { chain }).await
}

async fn book(
    State(state): State<ApiState>,
    Path((chain, sku)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    market(&state, MarketOp::Book { chain, sku }).await
}

async fn demands(State(state): State<ApiState>, Path(chain): Path<String>) -> Result<Json<Value>, ApiError> {
    market(&state, MarketOp::Demands { chain }).await
}

async fn locks(State(state): State<ApiState>, Path(chain): Path<String>) -> Result<Json<Value>, ApiError> {
    market(&state, MarketOp::Locks { chain, party: None }).await
}

async fn quote(
    State(state): State<ApiState>,
    Path(sku): Path<String>,
    Json(context): Json<PricingContext>,
) -> Result<Json<Value>, ApiError> {
    market(&state, MarketOp::Quote { sku, policy: None, context }).await
}

async fn strategies(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    market(&state, MarketOp::Strategies { sku: None }).await
}

async fn versions(State(state): State<ApiState>, Path(sku): Path<String>) -> Result<Json<Value>, ApiError> {
    market(&state, MarketOp::Strategies { sku: Some(sku) }).await
}

async fn install(
    State(state): State<ApiState>,
    Path(sku): Path<String>,
    source: String,
) -> Result<Json<Value>, ApiError> {
    market(&state, MarketOp::InstallStrategy { sku, source }).await
}

async fn rollback(
    State(state): State<ApiState>,
    Path((sku, version)): Path<(String, u32)>,
) -> Result<Json<Value>, ApiError> {
    market(&state, MarketOp::Rollback { sku, version }).await
}

/// Query of `GET /market/chart/{sku}`.
#[derive(serde::Deserialize)]
struct ChartQuery {
    points: Option<usize>,
}

async fn chart(
    State(state): State<ApiState>,
    Path(sku): Path<String>,
    Query(query): Query<ChartQuery>,
) -> Result<Json<Value>, ApiError> {
    let points = query.points.unwrap_or(CHART_POINTS_DEFAULT);
    market(&state, MarketOp::Chart { sku, points, context: PricingContext::default() }).await
}
