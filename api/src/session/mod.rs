//! Serve console sessions: each WebSocket connection gets its own sandboxed Lua
//! environment inside the node, with the node's bindings installed.
//!
//! Protocol (JSON text frames): the client sends `{"op":"eval","id":N,"code":..}`,
//! `{"op":"complete","id":N,"line":..}` or `{"op":"cancel","id":N}`; the node answers
//! `{"op":"result","id":N,"values":[..],"printed":[..]}`,
//! `{"op":"error","id":N,"kind":..,"message":..,"incomplete":bool}`,
//! `{"op":"completions","id":N,"start":K,"candidates":[..]}`, and streams
//! `{"op":"event","id":N,"event":{..}}` while evaluation N runs `watch(...)`.
//! Evaluations run on blocking threads, one at a time per session; closing the
//! socket cancels the running one.
//!
//! A file a binding names (`strategy("x.lua")`, `from_key_file = "k.key"`) is read where
//! the operator is, the console: the node asks `{"op":"read_file","id":N,"path":..}`
//! during evaluation N and the console answers `{"op":"file","id":N,"content":..}` or
//! `{"op":"file","id":N,"error":..}` ([`FileSource`]). A one-shot `POST /v1/admin/eval`
//! has no console: its files are read on the node, and its messages say so.

pub mod args;
pub mod bindings;
pub mod devices;
pub mod dpos;
pub mod market;

use crate::api::ApiState;
use crate::crypto::SecretKey;
use crate::node::{PluginOp, QueryError};
use crate::node::{Request, status::SharedStatus};
use crate::script::{EvalOutput, LuaLimits, ScriptError, Session};
use crate::telemetry::events::EventBus;
use axum::{
    Json,
    extract::{
        Path, State, WebSocketUpgrade,
        ws::{Message, WebSocket},
    },
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
};

/// Messages waiting to be written to one console's socket.
pub const OUTBOUND_MESSAGES_MAX: usize = 256;
/// Largest message a console may send.
pub const CONSOLE_MESSAGE_BYTES_MAX: usize = 1024 * 1024;
/// Largest file a binding reads (a strategy's source, a key file), from the console or the node.
pub const FILE_BYTES_MAX: usize = 256 * 1024;
/// How long the node waits for the console to send a file it asked for.
pub const FILE_READ_TIMEOUT_MS: u64 = 10_000;
/// How often a wait for a file checks whether the evaluation was cancelled.
const FILE_WAIT_POLL_MS: u64 = 100;

/// Asks the console for a file; the answer is its content or why not.
pub type AskConsole = Box<dyn Fn(&str) -> Result<String, String> + Send + Sync>;

/// Where the files that bindings name are read.
pub enum FileSource {
    /// On the node: for `POST /v1/admin/eval`, which has no console to ask.
    Node,
    /// Where the console runs, asked over the session's socket.
    Console(AskConsole),
}

impl FileSource {
    /// The text of `path`, at most [`FILE_BYTES_MAX`] bytes; an error names the path and
    /// where it was looked for.
    pub fn read(&self, path: &str) -> Result<String, String> {
        let (text, place) = match self {
            FileSource::Node => (read_on_node(path), "read on the node"),
            FileSource::Console(ask) => (ask(path), "read where the console runs"),
        };
        match text {
            Ok(text) if text.len() > FILE_BYTES_MAX => {
                Err(format!("{path} ({place}): larger than {FILE_BYTES_MAX} bytes"))
            }
            Ok(text) => Ok(text),
            Err(error) => Err(format!("{path} ({place}): {error}")),
        }
    }
}

fn read_on_node(path: &str) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.take(FILE_BYTES_MAX as u64 + 1).read_to_string(&mut text).map_err(|e| e.to_string())?;
    Ok(text)
}

/// What every console session needs of the node.
#[derive(Clone)]
pub struct NodeHandles {
    /// The node loop's request channel.
    pub requests: mpsc::SyncSender<Request>,
    /// The status snapshot.
    pub status: SharedStatus,
    /// The node key.
    pub key: Arc<SecretKey>,
    /// Node events.
    pub events: EventBus,
    /// The manifest file.
    pub manifest_file: PathBuf,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Sandbox limits from the manifest.
    pub limits: LuaLimits,
}

/// One session's view of the node, as its bindings see it.
pub struct ConsoleContext {
    /// The node.
    pub node: NodeHandles,
    /// Set to stop the running evaluation (checked by the sandbox and by `watch`).
    pub cancel: Arc<AtomicBool>,
    /// Sends one event to the console for the running evaluation.
    pub stream_event: Box<dyn Fn(Value) + Send + Sync>,
    /// Where the files bindings name are read.
    pub files: FileSource,
}

impl ConsoleContext {
    /// The key in the key file `path`, read where [`ConsoleContext::files`] says.
    pub fn key_file(&self, path: &str) -> Result<SecretKey, String> {
        let text = self.files.read(path)?;
        SecretKey::parse(&text).map_err(|reason| format!("{path}: not a key file: {reason}"))
    }
}

/// Creates a session with the node's bindings installed.
pub fn open_session(
    handles: &NodeHandles,
    cancel: Arc<AtomicBool>,
    stream_event: Box<dyn Fn(Value) + Send + Sync>,
    files: FileSource,
) -> Result<Session, String> {
    let session = Session::new(handles.limits.clone()).map_err(|e| e.to_string())?;
    let context = ConsoleContext { node: handles.clone(), cancel, stream_event, files };
    bindings::install(&session, Arc::new(context)).map_err(|e| format!("installing the node's bindings: {e}"))?;
    Ok(session)
}

/// Evaluates `code` and counts it (and any limit it hit) in the metrics.
pub fn evaluate(session: &Session, code: &str, cancel: &AtomicBool) -> Result<EvalOutput, ScriptError> {
    // `market(sku):strategy(function ... end)` reads the function's source from here.
    session.lua().set_app_data(market::ChunkText(code.to_string()));
    let result = session.eval("console", code, cancel);
    crate::telemetry::metrics::lua_evaluated();
    match &result {
        Err(ScriptError::InstructionLimit { .. }) => crate::telemetry::metrics::lua_limit_hit("instructions"),
        Err(ScriptError::MemoryLimit { .. }) => crate::telemetry::metrics::lua_limit_hit("memory"),
        Err(ScriptError::Output { .. }) => crate::telemetry::metrics::lua_limit_hit("output"),
        Err(ScriptError::PatternSteps { .. }) => crate::telemetry::metrics::lua_limit_hit("pattern_steps"),
        _ => {}
    }
    result
}

/// The answer to an evaluation, as sent to the console.
pub fn eval_message(id: u64, result: Result<EvalOutput, ScriptError>) -> Value {
    match result {
        Ok(output) => json!({ "op": "result", "id": id, "values": output.values, "printed": output.printed }),
        Err(error) => {
            let incomplete = matches!(error, ScriptError::Syntax { incomplete: true, .. });
            json!({ "op": "error", "id": id, "kind": error.kind(), "message": error.to_string(), "incomplete": incomplete })
        }
    }
}

/// A console's message on the session WebSocket (JSON, tagged by `op`); public for the
/// fuzz target `api_json`.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Evaluate a Lua chunk.
    Eval {
        /// The console's number for the evaluation.
        id: u64,
        /// The chunk.
        code: String,
    },
    /// Complete the word before the cursor.
    Complete {
        /// The console's number for the request.
        id: u64,
        /// The line up to the cursor.
        line: String,
    },
    /// Cancel evaluation `id` if it still runs.
    Cancel {
        /// The evaluation.
        id: u64,
    },
    /// The answer to a file the running evaluation asked for.
    File {
        /// The request it answers.
        id: u64,
        /// The file's text.
        #[serde(default)]
        content: Option<String>,
        /// Why the console could not read it.
        #[serde(default)]
        error: Option<String>,
    },
}

/// The answer to the file the running evaluation asked the console for.
type FileAnswer = Result<String, String>;
/// Where the console's answer goes: the waiting evaluation's channel, while it waits.
type PendingFile = Arc<Mutex<Option<mpsc::SyncSender<FileAnswer>>>>;

/// One connected console.
struct Console {
    session: Arc<Mutex<Session>>,
    cancel: Arc<AtomicBool>,
    running: Arc<AtomicU64>,
    busy: Arc<AtomicBool>,
    outbound: tokio::sync::mpsc::Sender<Value>,
    pending_file: PendingFile,
}

/// Serves one console WebSocket until it closes.
pub async fn serve(mut socket: WebSocket, handles: NodeHandles) {
    let (outbound, mut queued) = tokio::sync::mpsc::channel::<Value>(OUTBOUND_MESSAGES_MAX);
    let cancel = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicU64::new(0));
    let stream = {
        let (outbound, running) = (outbound.clone(), running.clone());
        Box::new(move |event: Value| {
            let _ =
                outbound.blocking_send(json!({ "op": "event", "id": running.load(Ordering::Relaxed), "event": event }));
        })
    };
    let pending_file = PendingFile::default();
    let files = FileSource::Console(ask_console(&outbound, &running, &cancel, &pending_file));
    let opened = {
        let (handles, cancel) = (handles.clone(), cancel.clone());
        tokio::task::spawn_blocking(move || open_session(&handles, cancel, stream, files)).await
    };
    let session = match opened {
        Ok(Ok(session)) => session,
        Ok(Err(message)) => {
            let refusal = json!({ "op": "error", "id": 0, "kind": "denied", "message": message, "incomplete": false });
            let _ = socket.send(Message::Text(refusal.to_string().into())).await;
            return;
        }
        Err(_) => return,
    };
    let console = Console {
        session: Arc::new(Mutex::new(session)),
        cancel: cancel.clone(),
        running,
        busy: Arc::new(AtomicBool::new(false)),
        outbound,
        pending_file,
    };
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => console.handle(&text),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            Some(message) = queued.recv() => {
                if socket.send(Message::Text(message.to_string().into())).await.is_err() {
                    break;
                }
            }
        }
    }
    cancel.store(true, Ordering::Relaxed);
}

/// Asks the console for a file on behalf of the running evaluation (on its blocking
/// thread) and waits for the answer, at most [`FILE_READ_TIMEOUT_MS`], giving up at once
/// when the evaluation is cancelled.
fn ask_console(
    outbound: &tokio::sync::mpsc::Sender<Value>,
    running: &Arc<AtomicU64>,
    cancel: &Arc<AtomicBool>,
    pending: &PendingFile,
) -> AskConsole {
    let (outbound, running, cancel, pending) = (outbound.clone(), running.clone(), cancel.clone(), pending.clone());
    Box::new(move |path: &str| {
        let (answer, answers) = mpsc::sync_channel(1);
        *pending.lock().map_err(|_| "the session is unusable after a failure")? = Some(answer);
        let id = running.load(Ordering::Relaxed);
        let asked = outbound.blocking_send(json!({ "op": "read_file", "id": id, "path": path }));
        let result = match asked {
            Ok(()) => wait_for_file(&answers, &cancel),
            Err(_) => Err("the console is gone".to_string()),
        };
        if let Ok(mut pending) = pending.lock() {
            *pending = None;
        }
        result
    })
}

fn wait_for_file(answers: &mpsc::Receiver<FileAnswer>, cancel: &AtomicBool) -> FileAnswer {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(FILE_READ_TIMEOUT_MS);
    while std::time::Instant::now() < deadline {
        if cancel.load(Ordering::Relaxed) {
            return Err("cancelled".to_string());
        }
        match answers.recv_timeout(std::time::Duration::from_millis(FILE_WAIT_POLL_MS)) {
            Ok(answer) => return answer,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err("the console is gone".to_string()),
        }
    }
    Err(format!("the console did not send it within {} s", FILE_READ_TIMEOUT_MS / 1000))
}

impl Console {
    fn send(&self, message: Value) {
        if self.outbound.try_send(message).is_err() {
            tracing::debug!("console too slow: a message was dropped");
        }
    }

    fn handle(&self, text: &str) {
        let message: ClientMessage = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(error) => {
                let message = format!("bad request: {error}");
                return self.send(
                    json!({ "op": "error", "id": 0, "kind": "denied", "message": message, "incomplete": false }),
                );
            }
        };
        match message {
            ClientMessage::Eval { id, code } => self.eval(id, code),
            ClientMessage::Complete { id, line } => self.complete(id, line),
            ClientMessage::Cancel { id } => {
                if self.running.load(Ordering::Relaxed) == id {
                    self.cancel.store(true, Ordering::Relaxed);
                }
            }
            ClientMessage::File { id, content, error } => self.file(id, content, error),
        }
    }

    /// Hands the console's file to the evaluation waiting for it; a file nobody waits for
    /// (another evaluation's, or unasked) is dropped.
    fn file(&self, id: u64, content: Option<String>, error: Option<String>) {
        if self.running.load(Ordering::Relaxed) != id {
            return;
        }
        let Some(waiting) = self.pending_file.lock().ok().and_then(|mut pending| pending.take()) else { return };
        let answer = content.ok_or_else(|| error.unwrap_or_else(|| "the console sent no content".to_string()));
        let _ = waiting.try_send(answer);
    }

    fn eval(&self, id: u64, code: String) {
        if self.busy.swap(true, Ordering::AcqRel) {
            let message = "an evaluation is already running in this session";
            return self
                .send(json!({ "op": "error", "id": id, "kind": "denied", "message": message, "incomplete": false }));
        }
        self.cancel.store(false, Ordering::Relaxed);
        self.running.store(id, Ordering::Relaxed);
        let (session, cancel, busy, outbound) =
            (self.session.clone(), self.cancel.clone(), self.busy.clone(), self.outbound.clone());
        tokio::task::spawn_blocking(move || {
            let result = match session.lock() {
                Ok(session) => evaluate(&session, &code, &cancel),
                Err(_) => Err(ScriptError::Runtime { message: "the session is unusable after a failure".into() }),
            };
            busy.store(false, Ordering::Release);
            let _ = outbound.blocking_send(eval_message(id, result));
        });
    }

    fn complete(&self, id: u64, line: String) {
        let (session, outbound) = (self.session.clone(), self.outbound.clone());
        tokio::task::spawn_blocking(move || {
            // A running evaluation holds the session: offer nothing rather than wait.
            let (start, candidates) = session.try_lock().map(|s| s.complete(&line)).unwrap_or((line.len(), Vec::new()));
            let _ = outbound
                .blocking_send(json!({ "op": "completions", "id": id, "start": start, "candidates": candidates }));
        });
    }
}

impl NodeHandles {
    /// The handles the API state holds.
    pub fn from_api(state: &ApiState) -> NodeHandles {
        NodeHandles {
            requests: state.requests.clone(),
            status: state.status.clone(),
            key: state.key.clone(),
            events: state.events.clone(),
            manifest_file: state.manifest.file.clone(),
            data_dir: state.manifest.node.data_dir.clone(),
            limits: state.manifest.lua.clone(),
        }
    }
}

/// `GET /v1/admin/console`: a console session over a WebSocket.
pub async fn console_socket(ws: WebSocketUpgrade, State(state): State<ApiState>) -> Response {
    let handles = NodeHandles::from_api(&state);
    ws.max_message_size(CONSOLE_MESSAGE_BYTES_MAX).on_upgrade(move |socket| serve(socket, handles))
}

/// Sets its flag when dropped: a one-shot evaluation stops when its request goes away.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The body of `POST /v1/admin/eval`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalRequest {
    /// The Lua chunk.
    pub code: String,
}

/// `POST /v1/admin/eval`: evaluates one chunk in a fresh session (no state kept).
pub async fn eval_once(State(state): State<ApiState>, Json(request): Json<EvalRequest>) -> Response {
    let handles = NodeHandles::from_api(&state);
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let result = tokio::task::spawn_blocking(move || {
        let session = open_session(&handles, cancel.clone(), Box::new(|_| {}), FileSource::Node)
            .map_err(|message| ScriptError::Runtime { message })?;
        evaluate(&session, &request.code, &cancel)
    })
    .await
    .unwrap_or_else(|_| Err(ScriptError::Runtime { message: "the evaluation failed".into() }));
    match result {
        Ok(output) => Json(json!({ "values": output.values, "printed": output.printed })).into_response(),
        Err(error) => {
            (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "error": error.to_string(), "kind": error.kind() })))
                .into_response()
        }
    }
}

fn plugin_answer(result: Result<Vec<crate::node::PluginEntry>, QueryError>) -> Response {
    match result {
        Ok(entries) => Json(entries).into_response(),
        Err(QueryError::NotFound(message)) => {
            (StatusCode::NOT_FOUND, Json(json!({ "error": message }))).into_response()
        }
        Err(QueryError::Failed(message) | QueryError::Refused(message)) => {
            (StatusCode::CONFLICT, Json(json!({ "error": message }))).into_response()
        }
    }
}

async fn plugin_request(state: &ApiState, op: PluginOp) -> Response {
    let requests = state.requests.clone();
    let result = tokio::task::spawn_blocking(move || crate::ops::plugins(&requests, op))
        .await
        .unwrap_or_else(|_| Err(QueryError::Failed("plugin operation failed".into())));
    plugin_answer(result)
}

/// `POST /v1/admin/peers/{peer}/{block|unblock}`.
pub async fn peer_action(State(state): State<ApiState>, Path((peer, action)): Path<(String, String)>) -> Response {
    let blocked = match action.as_str() {
        "block" => true,
        "unblock" => false,
        other => {
            let message = format!("unknown action \"{other}\": block or unblock");
            return (StatusCode::NOT_FOUND, Json(json!({ "error": message }))).into_response();
        }
    };
    let requests = state.requests.clone();
    let result = tokio::task::spawn_blocking(move || crate::ops::block_peer(&requests, &peer, blocked))
        .await
        .unwrap_or_else(|_| Err(QueryError::Failed("peer operation failed".into())));
    match result {
        Ok(()) => Json(json!({ "blocked": blocked })).into_response(),
        Err(error) => (StatusCode::CONFLICT, Json(json!({ "error": error.to_string() }))).into_response(),
    }
}

/// `GET /v1/admin/plugins`: every package and its instances.
pub async fn plugins_list(State(state): State<ApiState>) -> Response {
    plugin_request(&state, PluginOp::List).await
}

/// The body of `POST /v1/admin/plugins/{id}/upgrade`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PluginActionBody {
    /// New package directory (upgrade only).
    #[serde(default)]
    pub package: Option<PathBuf>,
}

/// `POST /v1/admin/plugins/{id}/{inspect|disable|enable|upgrade}`.
pub async fn plugin_action(
    State(state): State<ApiState>,
    Path((id, action)): Path<(String, String)>,
    body: Option<Json<PluginActionBody>>,
) -> Response {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let op = match (action.as_str(), body.package) {
        ("inspect", _) => PluginOp::Inspect { id },
        ("disable", _) => PluginOp::Disable { id },
        ("enable", _) => PluginOp::Enable { id },
        ("upgrade", Some(package)) => PluginOp::Upgrade { id, package },
        ("upgrade", None) => {
            return (StatusCode::BAD_REQUEST, Json(json!({ "error": "upgrade needs {\"package\": \"<dir>\"}" })))
                .into_response();
        }
        (other, _) => {
            let message = format!("unknown action \"{other}\": inspect, disable, enable or upgrade");
            return (StatusCode::NOT_FOUND, Json(json!({ "error": message }))).into_response();
        }
    };
    plugin_request(&state, op).await
}

#[cfg(test)]
mod tests;
