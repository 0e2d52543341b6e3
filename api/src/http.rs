//! What every route shares: the error answer, and the event streams of the admin API and
//! the public block stream. The lowest module of this crate: it uses none of the others.

use crate::telemetry::events;
use axum::{
    Json,
    extract::ws::{Message, WebSocket},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use tokio::sync::{OwnedSemaphorePermit, broadcast};

/// Event streams (`/v1/admin/events`) open at once; more are answered 503.
pub const EVENT_STREAMS_MAX: usize = 64;

/// An error answer: `{"error": "..."}` with `status`.
pub fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// The answer to a missing or wrong token (the same for both).
pub fn unauthorized() -> Response {
    json_error(StatusCode::UNAUTHORIZED, "admin routes need the node's token: Authorization: Bearer <token>")
}

/// Sends the events `keep` accepts to `socket` as JSON text frames until either side
/// closes; the permit counts the stream against its limit while it lasts.
pub async fn stream_events(
    mut socket: WebSocket,
    mut receiver: broadcast::Receiver<events::Event>,
    keep: impl Fn(&events::Event) -> bool,
    _permit: OwnedSemaphorePermit,
) {
    loop {
        tokio::select! {
            event = events::next_event(&mut receiver) => {
                let Some(event) = event else { break };
                if !keep(&event) {
                    continue;
                }
                let Ok(text) = serde_json::to_string(&event) else { continue };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                // Pings are answered by the socket itself; other frames are ignored.
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
}
