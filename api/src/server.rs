//! The whole HTTP server of a node: the public routes (`api`), `/metrics`, and the admin
//! routes (`admin`, with the console's `session` routes) behind the token check and the
//! per-token rate limit, with request counting, load shedding, a timeout and a body limit
//! around every route. The top module of this crate: nothing in it depends on this one.

use crate::api::{self, ApiLimits, ApiState};
use crate::auth;
use crate::rate::{self, RateLimiter};
use crate::{admin, http::json_error};
use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, State},
    http::{StatusCode, header::CONTENT_TYPE},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use std::{sync::Arc, time::Duration};
use tokio::sync::Semaphore;
use tower_http::{limit::RequestBodyLimitLayer, timeout::TimeoutLayer};

/// The whole API: public routes, `/metrics`, admin routes, and the limits around them.
pub fn router(state: ApiState, limits: &ApiLimits) -> Router {
    let slots = Arc::new(RequestSlots {
        semaphore: Semaphore::new(limits.concurrent_requests_max),
        max: limits.concurrent_requests_max,
    });
    let per_client = Arc::new(RateLimiter::new(limits.public_requests_per_second, limits.public_burst));
    api::public_routes()
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

/// The admin routes (relative to `/v1/admin`) behind the token check and the per-token
/// rate limit. Unknown admin paths answer 404 only to a valid token.
pub fn admin_router(state: &ApiState, limits: &ApiLimits) -> Router<ApiState> {
    let limiter = Arc::new(RateLimiter::new(limits.admin_requests_per_second, limits.admin_burst));
    admin::admin_routes()
        .merge(api::devices_admin_routes())
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
    crate::telemetry::metrics::http_request(
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
