//! Serve devices and radios over HTTP: the devices registered on chain, this node's
//! readings, the radios with their link counters, and (admin) sending through a radio.
//!
//! Routes: `GET /v1/devices`, `GET /v1/devices/{uid}`,
//! `GET /v1/devices/{uid}/readings?from_ms=&to_ms=&limit=`, `GET /v1/radios`, and
//! `POST /v1/admin/radios/{id}/send` with `{"link_address": .., "frame_hex": ..}`.

use super::{ApiError, ApiState, ask, bad_request};
use crate::node::{DeviceOp, Request};
use crate::store::readings::READINGS_PER_QUERY_MAX;
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use nest_sdk::Hash32;
use serde::Deserialize;

/// Largest frame the admin route sends (the driver's MTU applies on top; larger than
/// any valid frame, so oversized frames can be sent on purpose to test receivers).
pub const RADIO_SEND_BYTES_MAX: usize = 64 * 1024;

/// The public device and radio routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/devices", get(list))
        .route("/v1/devices/{uid}", get(show))
        .route("/v1/devices/{uid}/readings", get(readings))
        .route("/v1/radios", get(radios))
}

/// The admin radio routes, relative to `/v1/admin`.
pub fn admin_routes() -> Router<ApiState> {
    Router::new().route("/radios/{id}/send", post(send))
}

async fn device_op(state: &ApiState, op: DeviceOp) -> Result<Response, ApiError> {
    let answer = ask(state, |reply| Request::Devices { op, reply }).await?;
    Ok(Json(answer).into_response())
}

fn parse_uid(text: &str) -> Result<Hash32, ApiError> {
    crate::crypto::hash_from_hex(text).map_err(|e| bad_request(format!("device µID: {e}")))
}

async fn list(State(state): State<ApiState>) -> Result<Response, ApiError> {
    device_op(&state, DeviceOp::List).await
}

async fn show(State(state): State<ApiState>, Path(uid): Path<String>) -> Result<Response, ApiError> {
    let uid = parse_uid(&uid)?;
    device_op(&state, DeviceOp::Show { uid }).await
}

/// `?from_ms=&to_ms=&limit=`: all optional (everything, at most the query limit).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadingsQuery {
    #[serde(default)]
    from_ms: Option<u64>,
    #[serde(default)]
    to_ms: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn readings(
    State(state): State<ApiState>,
    Path(uid): Path<String>,
    query: Result<Query<ReadingsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let uid = parse_uid(&uid)?;
    let Query(query) = query.map_err(|e| bad_request(format!("query: {}", e.body_text())))?;
    let op = DeviceOp::Readings {
        uid,
        from_ms: query.from_ms.unwrap_or(0),
        to_ms: query.to_ms.unwrap_or(u64::MAX),
        limit: query.limit.unwrap_or(READINGS_PER_QUERY_MAX),
    };
    device_op(&state, op).await
}

async fn radios(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let status = state
        .status
        .read()
        .map_err(|_| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "status unavailable".into()))?
        .radios
        .clone();
    Ok(Json(status).into_response())
}

/// A frame to send through a radio.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    link_address: String,
    frame_hex: String,
}

async fn send(
    State(state): State<ApiState>,
    Path(radio): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (link_address, bytes) = parse_send(&body)?;
    device_op(&state, DeviceOp::Send { radio, link_address, bytes }).await
}

/// Reads the body of `POST /v1/admin/radios/{id}/send`: the link address and the frame,
/// at most [`RADIO_SEND_BYTES_MAX`] bytes (public for the fuzz target `api_json`).
pub fn parse_send(body: &[u8]) -> Result<(String, Vec<u8>), ApiError> {
    let body: SendBody = serde_json::from_slice(body).map_err(|e| bad_request(format!("body: {e}")))?;
    let bytes = hex::decode(body.frame_hex.trim()).map_err(|e| bad_request(format!("frame_hex: {e}")))?;
    if bytes.len() > RADIO_SEND_BYTES_MAX {
        return Err(bad_request(format!("frame of {} bytes exceeds {RADIO_SEND_BYTES_MAX}", bytes.len())));
    }
    Ok((body.link_address, bytes))
}
