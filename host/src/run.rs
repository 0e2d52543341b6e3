//! Run a node with its HTTP API until SIGINT or SIGTERM.

use crate::api::{ApiLimits, ApiState};
use crate::auth::Token;
use crate::manifest::Manifest;
use crate::node::Node;
use crate::telemetry::metrics;
use std::{net::SocketAddr, path::PathBuf};
use tokio::sync::oneshot;

/// A node with its API being served.
pub struct Running {
    node: Option<Node>,
    runtime: tokio::runtime::Runtime,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    /// SIGINT and SIGTERM listeners, installed before the API address is published, so a
    /// signal sent as soon as the node is reachable stops it cleanly instead of killing it.
    signals: std::sync::Mutex<Option<Signals>>,
    /// Where the API listens.
    pub api_addr: SocketAddr,
    /// File holding the API address (in the data directory).
    pub api_addr_file: PathBuf,
}

/// The signals that stop a node.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install(runtime: &tokio::runtime::Runtime) -> Result<Signals, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let _entered = runtime.enter();
        let failed = |e: std::io::Error| format!("cannot watch SIGINT and SIGTERM: {e}");
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).map_err(failed)?,
            terminate: signal(SignalKind::terminate()).map_err(failed)?,
        })
    }
}

/// Starts the node loop and the API. The API address is also written to
/// `<data_dir>/api.addr`, so tools find a node that listens on port 0; the admin token
/// is in `<data_dir>/api.token` (created on first start, mode `0600`).
pub fn start(manifest: Manifest) -> Result<Running, String> {
    let token = Token::ensure(&manifest.node.data_dir)
        .map_err(|e| format!("{}: [api]: cannot use the admin token: {e}", manifest.file.display()))?;
    let metrics = metrics::install();
    metrics::register_known(&crate::node::known_labels(&manifest));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("nest-api")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let listen = manifest.api.listen;
    let limits = ApiLimits::from_manifest(&manifest);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(listen))
        .map_err(|e| format!("{}: [api]: listen: cannot listen on {listen}: {e}", manifest.file.display()))?;
    let api_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let net = start_network(&runtime, &manifest)?;
    let node = {
        // The node loop's bridges to the network are tasks of this runtime.
        let _entered = runtime.enter();
        Node::start_with(manifest, net).map_err(|e| e.to_string())?
    };
    let signals = Signals::install(&runtime)?;
    let api_addr_file = node.manifest.node.data_dir.join("api.addr");
    write_whole(&api_addr_file, &format!("{api_addr}\n"))?;
    let router = nest_api::server::router(ApiState::new(&node, std::sync::Arc::new(token), metrics), &limits);
    let (shutdown, stop) = oneshot::channel::<()>();
    let server = runtime.spawn(async move {
        // The client's address is what the public routes' rate limit counts by.
        let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let served = axum::serve(listener, service).with_graceful_shutdown(async {
            let _ = stop.await;
        });
        if let Err(error) = served.await {
            tracing::error!(%error, "API server stopped");
        }
    });
    tracing::info!(node = %node.manifest.node.name, api = %format!("http://{api_addr}"), "node running");
    Ok(Running {
        node: Some(node),
        runtime,
        shutdown: Some(shutdown),
        server: Some(server),
        signals: std::sync::Mutex::new(Some(signals)),
        api_addr,
        api_addr_file,
    })
}

/// Starts the peer-to-peer layer when `[network]` enables it; writes the node's
/// dialable addresses to `<data_dir>/p2p.addr` (one multiaddr with `/p2p/<id>` a line).
fn start_network(
    runtime: &tokio::runtime::Runtime,
    manifest: &Manifest,
) -> Result<Option<(crate::net::NetHandle, tokio::sync::mpsc::Receiver<crate::net::NetEvent>)>, String> {
    if !manifest.network.enabled() {
        return Ok(None);
    }
    let key = crate::crypto::SecretKey::read(&manifest.node.key).map_err(|e| e.to_string())?;
    let section = manifest.network.clone();
    let started = runtime
        .block_on(runtime.spawn(async move { crate::net::Net::start(&section, &key) }))
        .map_err(|e| format!("the network task failed: {e}"))?
        .map_err(|e| format!("{}: [network]: {e}", manifest.file.display()))?;
    let peer = started.0.local_peer_id();
    let lines: Vec<String> = started.0.listen_addrs().iter().map(|addr| format!("{addr}/p2p/{peer}")).collect();
    std::fs::create_dir_all(&manifest.node.data_dir)
        .map_err(|e| format!("{}: {e}", manifest.node.data_dir.display()))?;
    let file = manifest.node.data_dir.join("p2p.addr");
    write_whole(&file, &(lines.join("\n") + "\n"))?;
    tracing::info!(peer = %peer, addresses = %lines.join(" "), "network listening");
    Ok(Some(started))
}

impl Running {
    /// The node (status and request channel).
    pub fn node(&self) -> &Node {
        self.node.as_ref().expect("node present until stop")
    }

    /// Blocks until SIGINT or SIGTERM.
    pub fn wait_for_signal(&self) {
        let taken = self.signals.lock().ok().and_then(|mut signals| signals.take());
        let Some(mut signals) = taken else {
            tracing::warn!("signals already awaited");
            return;
        };
        self.runtime.block_on(async {
            tokio::select! {
                _ = signals.interrupt.recv() => {}
                _ = signals.terminate.recv() => {}
            }
        });
    }

    /// Stops the API, then the node loop (which closes the store).
    pub fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = self.runtime.block_on(server);
        }
        if let Some(node) = self.node.take() {
            node.stop();
        }
        let _ = std::fs::remove_file(&self.api_addr_file);
        tracing::info!("node stopped");
    }
}

/// Writes `text` to `path` so that a reader sees the old file or the whole new one, never
/// a part: tools poll these files while the node starts (a temporary file, renamed).
fn write_whole(path: &std::path::Path, text: &str) -> Result<(), String> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}
