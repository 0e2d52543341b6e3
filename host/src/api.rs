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
pub use market::admin_routes as market_admin_routes;
mod devices;
mod dpos;
pub use devices::parse_send;
pub mod dashboard;
mod overview;
mod proof;
pub use crate::node::HeaderView;
pub use proof::TxProofView;

use crate::admin::{
    self,
    auth::{self, Token},
    events::EventBus,
    json_error,
    rate::{self, RateLimiter},
};
use crate::ledger::{
    tx::{SignedTx, TxError},
    verify::verify_batch,
};
use crate::manifest::Manifest;
use crate::node::{QueryError, Request, status::SharedStatus};
use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, MatchedPath, Path, Query, State},
    http::{StatusCode, header::CONTENT_TYPE},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use metrics_exporter_prometheus::PrometheusHandle;
use nest_sdk::Hash32;
use serde::{Deserialize, Serialize};
use std::{
    sync::{Arc, mpsc},
    time::Duration,
};
use tokio::sync::{Semaphore, oneshot};
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
    /// The node's events.
    pub events: EventBus,
    /// The admin token.
    pub token: Arc<Token>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// The running manifest.
    pub manifest: Arc<Manifest>,
    /// Open event streams, at most [`admin::EVENT_STREAMS_MAX`].
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
            event_streams: Arc::new(Semaphore::new(admin::EVENT_STREAMS_MAX)),
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

/// Codes `nest_inputs_rejected_total` counts from the start (at zero): the request's
/// own and the common transaction ones; rarer codes appear at their first use.
pub const INPUT_REJECTION_CODES: &[&str] = &[
    "malformed_request",
    "too_many_txs",
    "malformed",
    "too_large",
    "bad_signature",
    "wrong_chain",
    "wrong_nonce",
    "insufficient_balance",
    "fee_too_low",
    "mempool_full",
    "duplicate",
    "sender_cap_reached",
    "replacement_underpriced",
];

/// The whole API: public routes, `/metrics`, admin routes, and the limits around them.
pub fn router(state: ApiState, limits: &ApiLimits) -> Router {
    let slots = Arc::new(RequestSlots {
        semaphore: Semaphore::new(limits.concurrent_requests_max),
        max: limits.concurrent_requests_max,
    });
    let per_client = Arc::new(RateLimiter::new(limits.public_requests_per_second, limits.public_burst));
    public_routes()
        .layer(middleware::from_fn_with_state(per_client, rate::limit_per_client))
        .route("/metrics", get(metrics))
        .nest("/v1/admin", admin_router(&state, limits))
        .with_state(state)
        .layer(DefaultBodyLimit::max(limits.body_bytes_max))
        // Refuses a declared Content-Length over the limit before reading any of the body.
        .layer(RequestBodyLimitLayer::new(limits.body_bytes_max))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(limits.request_timeout_ms),
        ))
        .layer(middleware::from_fn_with_state(slots, shed_load))
        .layer(middleware::from_fn(count_request))
}

/// The public routes: status, blocks, accounts, transactions, and the dashboard.
fn public_routes() -> Router<ApiState> {
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

/// The admin routes (relative to `/v1/admin`) behind the token check and the per-token
/// rate limit. Unknown admin paths answer 404 only to a valid token.
pub fn admin_router(state: &ApiState, limits: &ApiLimits) -> Router<ApiState> {
    let limiter = Arc::new(RateLimiter::new(limits.admin_requests_per_second, limits.admin_burst));
    admin::admin_routes()
        .merge(devices::admin_routes())
        .fallback(admin::not_found)
        .layer(middleware::from_fn_with_state(limiter, rate::limit_per_token))
        .layer(middleware::from_fn_with_state(state.token.clone(), auth::require_token))
}

/// Request slots shared by every route.
struct RequestSlots {
    semaphore: Semaphore,
    max: usize,
}

/// Middleware: answers 503 at once when `concurrent_requests_max` requests are in progress.
async fn shed_load(State(slots): State<Arc<RequestSlots>>, request: axum::extract::Request, next: Next) -> Response {
    let Ok(_permit) = slots.semaphore.try_acquire() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("node busy: {} requests in progress, the limit; retry later", slots.max),
        );
    };
    next.run(request).await
}

/// Middleware: counts each answer by route pattern and status.
async fn count_request(request: axum::extract::Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    admin::metrics::http_request(
        route.as_deref().unwrap_or("unmatched"),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(state): State<ApiState>) -> Response {
    state.metrics.run_upkeep();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()).into_response()
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
    admin::metrics::input_rejected("malformed_request");
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
        admin::metrics::input_rejected("too_many_txs");
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
                    admin::metrics::input_rejected(error.code());
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
