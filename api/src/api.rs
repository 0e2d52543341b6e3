//! Serve the node's HTTP API: public status, blocks, accounts, transaction submission
//! and metrics, and the token-guarded admin routes.
//!
//! Handlers never touch chain state themselves: reads of the status snapshot are
//! lock-and-clone, committed blocks come from a cache or the block reader
//! (`node::reader`, on tokio's blocking pool, off the node loop), everything else is a
//! [`Request`] to the node loop over its bounded channel. Signatures of submitted transactions are verified here, spread over the
//! cores, before the loop sees them; the loop then only checks nonces and balances.
//!
//! Around every route, outermost first: request counting, load shedding at
//! `concurrent_requests_max` (503 at once, never queued), `request_timeout_ms` (408),
//! `body_bytes_max` (413). Admin routes add the token check (401) and the per-token rate
//! limit (429).

mod block_cache;
mod market;
pub use devices::admin_routes as devices_admin_routes;
pub use market::admin_routes as market_admin_routes;
mod devices;
mod dpos;
pub use devices::parse_send;
pub mod dashboard;
mod overview;
mod proof;
pub use crate::node::HeaderView;
pub use proof::TxProofView;

use crate::auth::Token;
use crate::http::EVENT_STREAMS_MAX;
use crate::ledger::{
    tx::{SignedTx, TxError},
    verify::verify_batch,
};
use crate::manifest::Manifest;
use crate::node::{QueryError, Request, status::SharedStatus};
use crate::telemetry::events::EventBus;
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use metrics_exporter_prometheus::PrometheusHandle;
use nest_sdk::Hash32;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, mpsc};
use tokio::sync::{Semaphore, oneshot};

/// Most transactions in one submission.
pub const TXS_PER_REQUEST_MAX: usize = 20_000;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The node loop's request channel.
    pub requests: mpsc::SyncSender<Request>,
    /// The status snapshot.
    pub status: SharedStatus,
    /// The node's events.
    pub events: EventBus,
    /// The admin token.
    pub token: Arc<Token>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// The running manifest.
    pub manifest: Arc<Manifest>,
    /// Open event streams, at most [`EVENT_STREAMS_MAX`].
    pub event_streams: Arc<Semaphore>,
    /// The node key (console sessions may sign as the node).
    pub key: Arc<crate::crypto::SecretKey>,
    /// Block views answered without the node loop.
    pub blocks: Arc<block_cache::BlockCache>,
    /// Reads and decodes committed blocks off the node loop.
    pub reader: crate::node::reader::BlockReader,
}

impl ApiState {
    /// The state for a node's API.
    pub fn new(node: &crate::node::Node, token: Arc<Token>, metrics: PrometheusHandle) -> ApiState {
        ApiState {
            requests: node.requests.clone(),
            status: node.status.clone(),
            events: node.events.clone(),
            token,
            metrics,
            manifest: Arc::new(node.manifest.clone()),
            event_streams: Arc::new(Semaphore::new(EVENT_STREAMS_MAX)),
            key: node.key.clone(),
            blocks: Arc::new(block_cache::BlockCache::default()),
            reader: node.reader.clone(),
        }
    }
}

/// API limits from the manifest's `[api]`.
pub struct ApiLimits {
    /// Largest request body.
    pub body_bytes_max: usize,
    /// Time a request may take.
    pub request_timeout_ms: u64,
    /// Requests in progress at once; more are answered 503.
    pub concurrent_requests_max: usize,
    /// Admin requests per second per token, on average.
    pub admin_requests_per_second: u32,
    /// Admin requests per token at once.
    pub admin_burst: u32,
    /// Public requests per second per client address, on average.
    pub public_requests_per_second: u32,
    /// Public requests per client address at once.
    pub public_burst: u32,
}

impl ApiLimits {
    /// The limits of a manifest's `[api]`.
    pub fn from_manifest(manifest: &Manifest) -> ApiLimits {
        let api = &manifest.api;
        ApiLimits {
            body_bytes_max: api.body_bytes_max,
            request_timeout_ms: api.request_timeout_ms,
            concurrent_requests_max: api.concurrent_requests_max,
            admin_requests_per_second: api.admin_requests_per_second,
            admin_burst: api.admin_burst,
            public_requests_per_second: api.public_requests_per_second,
            public_burst: api.public_burst,
        }
    }
}

/// The rejection codes `nest_inputs_rejected_total` counts from the start (named with the
/// node's metrics).
pub use crate::telemetry::metrics::INPUT_REJECTION_CODES;

/// The public routes: status, blocks, accounts, transactions, and the dashboard.
pub fn public_routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/chains/{chain}/blocks/{height}", get(block))
        .route("/v1/chains/{chain}/blocks/{height}/unit", get(raw_unit))
        .route("/v1/chains/{chain}/accounts/{account}", get(account))
        .route("/v1/chains/{chain}/evidence", get(evidence))
        .route("/v1/chains/{chain}/txs", post(submit))
        .route("/v1/chains/{chain}/txs/{hash}", get(tx_status))
        .merge(market::public_routes())
        .merge(devices::routes())
        .merge(overview::routes())
        .merge(proof::routes())
        .merge(dpos::routes())
        .merge(dashboard::routes())
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
            QueryError::Refused(message) => ApiError(StatusCode::BAD_REQUEST, message),
        }
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    crate::telemetry::metrics::input_rejected("malformed_request");
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
    let view = block_view(&state, &chain, height).await?;
    if hashes_only {
        let mut view = (*view).clone();
        view.txs.clear();
        return Ok(Json(view).into_response());
    }
    Ok(Json(&*view).into_response())
}

/// The stored bytes of a committed unit, its certificate and finality proof, in hex:
/// what a light client checks a certificate over.
#[derive(Serialize, Deserialize, Debug)]
pub struct RawUnitView {
    /// The unit's height.
    pub height: u64,
    /// The unit in the chain type's encoding.
    pub unit: String,
    /// The engine's certificate.
    pub certificate: String,
    /// The engine's finality proof (empty when it has none).
    pub finality: String,
}

async fn raw_unit(
    State(state): State<ApiState>,
    Path((chain, height)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let height: u64 =
        height.parse().map_err(|_| bad_request(format!("height must be a non-negative integer, got \"{height}\"")))?;
    let reader = state.reader.clone();
    let stored = off_loop(move || reader.raw_unit(&chain, height)).await?;
    Ok(Json(RawUnitView {
        height,
        unit: hex::encode(&stored.unit),
        certificate: hex::encode(&stored.certificate),
        finality: hex::encode(&stored.finality),
    })
    .into_response())
}

/// The committed block at `height`, from the cache or else from the block reader, off
/// the node loop.
async fn block_view(state: &ApiState, chain: &str, height: u64) -> Result<Arc<crate::node::BlockView>, ApiError> {
    if let Some(view) = state.blocks.get(chain, height) {
        return Ok(view);
    }
    let (reader, id) = (state.reader.clone(), chain.to_owned());
    let view = Arc::new(off_loop(move || reader.block(&id, height)).await?);
    state.blocks.put(chain, view.clone());
    Ok(view)
}

/// Runs a blocking read on tokio's blocking pool.
async fn off_loop<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, QueryError> + Send + 'static,
) -> Result<T, ApiError> {
    let answer = tokio::task::spawn_blocking(read)
        .await
        .map_err(|_| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "the block read failed".into()))?;
    Ok(answer?)
}

async fn account(
    State(state): State<ApiState>,
    Path((chain, account)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let account = crate::crypto::account_from_hex(&account).map_err(|e| bad_request(format!("account: {e}")))?;
    let view = ask(&state, |reply| Request::Account { chain, account, reply }).await?;
    Ok(Json(view).into_response())
}

/// The consensus offences the chain recorded (double votes and double proposals, once each).
async fn evidence(State(state): State<ApiState>, Path(chain): Path<String>) -> Result<Response, ApiError> {
    let view = ask(&state, |reply| Request::Evidence { chain, reply }).await?;
    Ok(Json(view).into_response())
}

async fn tx_status(
    State(state): State<ApiState>,
    Path((chain, hash)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let hash = crate::crypto::hash_from_hex(&hash).map_err(|e| bad_request(format!("transaction hash: {e}")))?;
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
    let texts = parse_submission(&body)?;
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

/// Reads the body of `POST /v1/chains/{id}/txs`: the hex transactions it carries, at least
/// one and at most [`TXS_PER_REQUEST_MAX`] (public for the fuzz target `api_json`).
pub fn parse_submission(body: &[u8]) -> Result<Vec<String>, ApiError> {
    let submission: Submission = serde_json::from_slice(body).map_err(|e| bad_request(format!("body: {e}")))?;
    let texts: Vec<String> = submission.tx.into_iter().chain(submission.txs).collect();
    if texts.is_empty() {
        return Err(bad_request("body: give \"tx\" (one hex transaction) or \"txs\" (a list)"));
    }
    if texts.len() > TXS_PER_REQUEST_MAX {
        crate::telemetry::metrics::input_rejected("too_many_txs");
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{} transactions in one request; the limit is {TXS_PER_REQUEST_MAX}", texts.len()),
        ));
    }
    Ok(texts)
}

/// A submitted transaction decoded and verified with its hash, or why not (with its hash
/// when it decoded).
pub type Checked = Result<(Hash32, SignedTx), (Option<Hash32>, TxError)>;

/// Decodes each hex transaction and verifies all signatures in one parallel batch.
pub fn decode_and_verify(texts: Vec<String>) -> Vec<Checked> {
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
                Err(error) => {
                    crate::telemetry::metrics::input_rejected(error.code());
                    TxResult {
                        index,
                        hash,
                        status: "rejected".into(),
                        code: Some(error.code().into()),
                        reason: Some(error.to_string()),
                    }
                }
            }
        })
        .collect();
    let accepted = results.iter().filter(|r| r.status == "accepted").count();
    SubmitAnswer { accepted, rejected: results.len() - accepted, results }
}
