//! Serve the node's public HTTP API: status, blocks, accounts, transaction submission.
//!
//! Handlers never touch chain state themselves: reads of the status snapshot are
//! lock-and-clone, everything else is a [`Request`] to the node loop over its bounded
//! channel. Signatures of submitted transactions are verified here, spread over the
//! cores, before the loop sees them; the loop then only checks nonces and balances.

use crate::ledger::{
    tx::{SignedTx, TxError},
    verify::verify_batch,
};
use crate::node::{QueryError, Request, status::SharedStatus};
use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use nest_sdk::{Hash32, PublicKey};
use serde::{Deserialize, Serialize};
use std::{sync::mpsc, time::Duration};
use tokio::sync::oneshot;
use tower_http::{limit::RequestBodyLimitLayer, timeout::TimeoutLayer};

/// Most transactions in one submission.
pub const TXS_PER_REQUEST_MAX: usize = 20_000;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The node loop's request channel.
    pub requests: mpsc::SyncSender<Request>,
    /// The status snapshot.
    pub status: SharedStatus,
}

/// API limits from the manifest.
pub struct ApiLimits {
    /// Largest request body.
    pub body_bytes_max: usize,
    /// Time a request may take.
    pub request_timeout_ms: u64,
}

/// The API's routes with their limits.
pub fn router(state: ApiState, limits: &ApiLimits) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/chains/{chain}/blocks/{height}", get(block))
        .route("/v1/chains/{chain}/accounts/{account}", get(account))
        .route("/v1/chains/{chain}/txs", post(submit))
        .route("/v1/chains/{chain}/txs/{hash}", get(tx_status))
        .with_state(state)
        .layer(DefaultBodyLimit::max(limits.body_bytes_max))
        // Refuses a declared Content-Length over the limit before reading any of the body.
        .layer(RequestBodyLimitLayer::new(limits.body_bytes_max))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(limits.request_timeout_ms),
        ))
}

/// An error answer: a status code and one line saying why.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::NotFound(message) => ApiError(StatusCode::NOT_FOUND, message),
            QueryError::Failed(message) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, message),
        }
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

/// Sends a request to the node loop and waits for its answer.
async fn ask<T>(
    state: &ApiState,
    build: impl FnOnce(oneshot::Sender<Result<T, QueryError>>) -> Request,
) -> Result<T, ApiError> {
    let (reply, answer) = oneshot::channel();
    state.requests.try_send(build(reply)).map_err(|error| match error {
        mpsc::TrySendError::Full(_) => {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "node busy: request queue full, retry later".into())
        }
        mpsc::TrySendError::Disconnected(_) => {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "node is shutting down".into())
        }
    })?;
    let answer = answer.await.map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "node is shutting down".into()))?;
    Ok(answer?)
}

async fn status(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let snapshot = state
        .status
        .read()
        .map_err(|_| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "status unavailable".into()))?
        .clone();
    Ok(Json(snapshot).into_response())
}

/// `?txs=full` (default) lists each transaction; `?txs=hashes` only their hashes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockQuery {
    #[serde(default)]
    txs: Option<String>,
}

async fn block(
    State(state): State<ApiState>,
    Path((chain, height)): Path<(String, String)>,
    Query(query): Query<BlockQuery>,
) -> Result<Response, ApiError> {
    let height: u64 =
        height.parse().map_err(|_| bad_request(format!("height must be a non-negative integer, got \"{height}\"")))?;
    let hashes_only = match query.txs.as_deref() {
        None | Some("full") => false,
        Some("hashes") => true,
        Some(other) => return Err(bad_request(format!("txs must be \"full\" or \"hashes\", got \"{other}\""))),
    };
    let mut view = ask(&state, |reply| Request::Block { chain, height, reply }).await?;
    if hashes_only {
        view.txs.clear();
    }
    Ok(Json(view).into_response())
}

async fn account(
    State(state): State<ApiState>,
    Path((chain, account)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let account = PublicKey::from_hex(&account).map_err(|e| bad_request(format!("account: {e}")))?;
    let view = ask(&state, |reply| Request::Account { chain, account, reply }).await?;
    Ok(Json(view).into_response())
}

async fn tx_status(
    State(state): State<ApiState>,
    Path((chain, hash)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let hash = Hash32::from_hex(&hash).map_err(|e| bad_request(format!("transaction hash: {e}")))?;
    let view = ask(&state, |reply| Request::Tx { chain, hash, reply }).await?;
    Ok(Json(view).into_response())
}

/// A submission: one transaction or a batch, each the hex of its borsh encoding.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Submission {
    #[serde(default)]
    tx: Option<String>,
    #[serde(default)]
    txs: Vec<String>,
}

/// The fate of one submitted transaction.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TxResult {
    /// Position in the submission.
    pub index: usize,
    /// Transaction hash, when it could be decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<Hash32>,
    /// `accepted` or `rejected`.
    pub status: String,
    /// Stable reason code when rejected (`bad_signature`, `wrong_nonce`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer to a submission.
#[derive(Serialize, Deserialize, Debug)]
pub struct SubmitAnswer {
    /// How many were admitted to the mempool.
    pub accepted: usize,
    /// How many were rejected.
    pub rejected: usize,
    /// One entry per submitted transaction, in order.
    pub results: Vec<TxResult>,
}

async fn submit(
    State(state): State<ApiState>,
    Path(chain): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let submission: Submission = serde_json::from_slice(&body).map_err(|e| bad_request(format!("body: {e}")))?;
    let texts: Vec<String> = submission.tx.into_iter().chain(submission.txs).collect();
    if texts.is_empty() {
        return Err(bad_request("body: give \"tx\" (one hex transaction) or \"txs\" (a list)"));
    }
    if texts.len() > TXS_PER_REQUEST_MAX {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{} transactions in one request; the limit is {TXS_PER_REQUEST_MAX}", texts.len()),
        ));
    }
    let checked = tokio::task::spawn_blocking(move || decode_and_verify(texts))
        .await
        .map_err(|_| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "verification task failed".into()))?;
    let admissible: Vec<(Hash32, SignedTx)> = checked.iter().filter_map(|c| c.as_ref().ok().cloned()).collect();
    let admitted = if admissible.is_empty() {
        Vec::new()
    } else {
        ask(&state, |reply| Request::Submit { chain, txs: admissible, reply }).await?
    };
    Ok(Json(merge_results(checked, admitted)).into_response())
}

pub(crate) type Checked = Result<(Hash32, SignedTx), (Option<Hash32>, TxError)>;

/// Decodes each hex transaction and verifies all signatures in one parallel batch.
fn decode_and_verify(texts: Vec<String>) -> Vec<Checked> {
    let decoded: Vec<Checked> = texts
        .iter()
        .map(|text| {
            let bytes = hex::decode(text.trim()).map_err(|e| (None, TxError::Malformed(format!("not hex: {e}"))))?;
            let tx = SignedTx::decode(&bytes).map_err(|e| (None, e))?;
            Ok((crate::crypto::sha256(&bytes), tx))
        })
        .collect();
    let to_verify: Vec<SignedTx> = decoded.iter().filter_map(|d| d.as_ref().ok().map(|(_, tx)| tx.clone())).collect();
    let mut verdicts = verify_batch(&to_verify).into_iter();
    decoded
        .into_iter()
        .map(|entry| {
            let (hash, tx) = entry?;
            if verdicts.next().unwrap_or(false) { Ok((hash, tx)) } else { Err((Some(hash), TxError::BadSignature)) }
        })
        .collect()
}

pub(crate) fn merge_results(checked: Vec<Checked>, admitted: Vec<Result<(), TxError>>) -> SubmitAnswer {
    let mut admitted = admitted.into_iter();
    let results: Vec<TxResult> = checked
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let (hash, outcome) = match entry {
                Ok((hash, _)) => {
                    (Some(hash), admitted.next().unwrap_or(Err(TxError::Malformed("not admitted".into()))))
                }
                Err((hash, error)) => (hash, Err(error)),
            };
            match outcome {
                Ok(()) => TxResult { index, hash, status: "accepted".into(), code: None, reason: None },
                Err(error) => TxResult {
                    index,
                    hash,
                    status: "rejected".into(),
                    code: Some(error.code().into()),
                    reason: Some(error.to_string()),
                },
            }
        })
        .collect();
    let accepted = results.iter().filter(|r| r.status == "accepted").count();
    SubmitAnswer { accepted, rejected: results.len() - accepted, results }
}
