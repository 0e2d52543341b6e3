//! Serve the node's admin API under `/v1/admin`: configuration, event stream, and the
//! guards every admin route sits behind.
//!
//! Every admin route needs `Authorization: Bearer <token>` (`crate::auth`) and is rate
//! limited per token (`crate::rate`); `server::admin_router` puts these layers around
//! [`admin_routes`]. The event bus and the metrics are the node's (`nest_node::telemetry`).

use crate::telemetry::events;

use crate::api::ApiState;
use crate::http::{EVENT_STREAMS_MAX, json_error, stream_events};
use axum::{
    Json, Router,
    extract::{Query, State, ws::WebSocketUpgrade},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;

/// The admin routes, relative to `/v1/admin`, before the auth and rate-limit layers.
///
/// New admin routes go here (console sessions `/console`, evaluation `/eval`, plugin
/// control `/plugins/{id}/...`): they get the token check and the rate limit for free.
pub fn admin_routes() -> Router<ApiState> {
    Router::new()
        .route("/config", get(config))
        .route("/events", get(events))
        .route("/console", get(crate::session::console_socket))
        .route("/eval", axum::routing::post(crate::session::eval_once))
        .route("/plugins", get(crate::session::plugins_list))
        .route("/plugins/{id}/{action}", axum::routing::post(crate::session::plugin_action))
        .route("/peers/{peer}/{action}", axum::routing::post(crate::session::peer_action))
        .merge(crate::api::market_admin_routes())
}

/// For unknown admin paths, behind the token check (so it reveals no routes).
pub async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "no such admin route")
}

/// `GET /v1/admin/config`: the running manifest (defaults filled in, paths resolved).
async fn config(State(state): State<ApiState>) -> Response {
    match serde_json::to_value(&*state.manifest) {
        Ok(mut value) => {
            value["file"] = state.manifest.file.display().to_string().into();
            Json(value).into_response()
        }
        Err(error) => json_error(StatusCode::INTERNAL_SERVER_ERROR, format!("manifest: {error}")),
    }
}

/// `?chain=<id>` keeps only that chain's events (and those about no chain).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    chain: Option<String>,
}

/// `GET /v1/admin/events` (WebSocket): the node's events as JSON text frames.
async fn events(
    State(state): State<ApiState>,
    Query(query): Query<EventsQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Ok(permit) = state.event_streams.clone().try_acquire_owned() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{EVENT_STREAMS_MAX} event streams are open, the limit; retry later"),
        );
    };
    let receiver = state.events.subscribe();
    let keep = move |event: &events::Event| event.is_about(query.chain.as_deref());
    upgrade.on_upgrade(move |socket| stream_events(socket, receiver, keep, permit))
}
