//! Run a local devnet of several `nestd run` processes on 127.0.0.1, for `nestd up --nodes N`
//! (`--consensus poa|bft`).

use crate::client::Client;
use crate::crypto::SecretKey;
use crate::devnet::{self, Consensus, DevnetSpec};
use crate::node::status::NodeStatus;
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// How long a node may take to serve its API after it is started.
const NODE_START_TIMEOUT_S: u64 = 30;
/// How long the nodes may take to connect and produce a block.
const DEVNET_READY_TIMEOUT_S: u64 = 60;

/// One node process of the devnet.
pub(crate) struct NodeProcess {
    /// The node's name, its directory's (`node-2`).
    pub(crate) name: String,
    pub(crate) child: Child,
    /// The API base URL, once the node wrote its address (empty before).
    pub(crate) url: String,
    /// The file that receives the node's stderr.
    pub(crate) log: PathBuf,
    /// The manifest it runs.
    pub(crate) manifest: PathBuf,
}

/// The devnet `nestd up` writes in `dir`: `nodes` nodes, all of them PoA authorities or
/// BFT validators, each node's own account funded to pay the anchors of its devices'
/// readings; node-1's API on `api_port` (0: any free port).
pub fn devnet_spec(
    dir: PathBuf,
    consensus: Consensus,
    block_interval_ms: u64,
    api_port: u16,
    nodes: usize,
) -> Result<DevnetSpec, String> {
    let nodes = nodes.max(1);
    let allocations = crate::devices::devnet::node_allocations(&dir, nodes)?;
    Ok(DevnetSpec {
        dir,
        consensus,
        block_interval_ms,
        api_port,
        allocations,
        block_txs_max: 20_000,
        mempool_txs_max: 200_000,
        plugin_dir: devnet::library_dir(),
        nodes,
        authorities: nodes,
    })
}

/// Writes the devnet, starts every node, prints a summary and a status line, and
/// stops them all (SIGTERM) on Ctrl-C or SIGTERM.
pub fn up(spec: &DevnetSpec, mqtt_broker: Option<&str>) -> Result<(), String> {
    // Listening before any node starts: a SIGTERM that came before the listener would
    // end `nestd up` by the default action and leave its nodes running.
    let signals = StopSignals::listen()?;
    let net = devnet::write(spec)?;
    let udp_radio = crate::devices::devnet::add_devnet_radios(&net.manifest, mqtt_broker)?;
    let mut nodes = start_nodes(&net.manifests)?;
    // Registered before the banner: the banner's transfer uses the faucet's key too, and
    // two senders reading one next nonce would refuse one another's transaction.
    if let Err(error) = crate::devices::devnet::register_sim_devices(&nodes[0].url, &net.faucet_key) {
        eprintln!("warning: the simulated devices are not registered: {error}");
    }
    print_summary(spec, &net, &nodes, udp_radio, mqtt_broker);
    let stop = Arc::new(AtomicBool::new(false));
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    let status_line = {
        let stop = stop.clone();
        std::thread::spawn(move || status_line(&urls, &stop))
    };
    signals.wait();
    stop.store(true, Ordering::Relaxed);
    let _ = status_line.join();
    eprintln!();
    stop_all(&mut nodes);
    Ok(())
}

/// Starts a node per manifest, each with a new log, and waits until they are connected
/// and the chain has a block past genesis; stops them all when any fails.
pub(crate) fn start_nodes(manifests: &[PathBuf]) -> Result<Vec<NodeProcess>, String> {
    let mut nodes = Vec::with_capacity(manifests.len());
    for manifest in manifests {
        match start_node(manifest) {
            Ok(node) => nodes.push(node),
            Err(error) => {
                stop_all(&mut nodes);
                return Err(error);
            }
        }
    }
    if let Err(error) = wait_ready(&nodes) {
        stop_all(&mut nodes);
        return Err(error);
    }
    Ok(nodes)
}

fn start_node(manifest: &Path) -> Result<NodeProcess, String> {
    let log = node_log(manifest);
    let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut node = spawn_node(manifest, file)?;
    wait_api(&mut node, Duration::from_secs(NODE_START_TIMEOUT_S))?;
    Ok(node)
}

/// The log file of the node whose manifest is `manifest`: `nestd.log` beside it.
pub(crate) fn node_log(manifest: &Path) -> PathBuf {
    manifest.with_file_name("nestd.log")
}

/// Starts `nestd run <manifest>` (this very binary) with its stderr going to `log`,
/// after removing the node's old `data/api.addr`, so that [`wait_api`] reads the new one.
pub(crate) fn spawn_node(manifest: &Path, log: std::fs::File) -> Result<NodeProcess, String> {
    let dir = manifest.parent().ok_or("manifest without a directory")?;
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let _ = std::fs::remove_file(api_addr_file(manifest));
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(exe);
    command.arg("run").arg(manifest).stdout(Stdio::null()).stderr(log);
    // SAFETY: `prctl` is async-signal-safe, the only kind of call allowed between fork
    // and exec. A node gets SIGTERM when the process that started it dies, even by
    // SIGKILL, so that no devnet node outlives its `nestd up` or `nestd soak`. (Linux
    // sends it when the *thread* that spawned the node ends: both spawn from their main
    // thread.)
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(|e| format!("cannot start nestd run: {e}"))?;
    Ok(NodeProcess { name, child, url: String::new(), log: node_log(manifest), manifest: manifest.to_path_buf() })
}

/// Where a node writes its API address once it serves.
pub(crate) fn api_addr_file(manifest: &Path) -> PathBuf {
    manifest.with_file_name("data").join("api.addr")
}

/// Waits until the node wrote its API address (it serves from then on) and sets its URL;
/// kills it when it does not within `timeout`.
pub(crate) fn wait_api(node: &mut NodeProcess, timeout: Duration) -> Result<(), String> {
    let addr_file = api_addr_file(&node.manifest);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(addr) = read_api_addr(&addr_file) {
            node.url = format!("http://{addr}");
            return Ok(());
        }
        if let Ok(Some(status)) = node.child.try_wait() {
            return Err(format!("{} exited with {status}; see {}", node.name, node.log.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = node.child.kill();
    let _ = node.child.wait();
    Err(format!("{} did not start within {} s; see {}", node.name, timeout.as_secs(), node.log.display()))
}

/// The address in a node's `api.addr`, once the file is whole. The node creates the file
/// and then writes the address and a newline into it, so a reader can find it empty or
/// unfinished: that is "not yet". Taken as the address, an empty file gave the URL
/// `http://` and a node that stayed unreachable to its caller (the likely cause of the
/// one failure of a 1000-kill crash soak, where the node itself ran on).
fn read_api_addr(file: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(file).ok()?;
    text.strip_suffix('\n')?.parse().ok()
}

/// Waits until every node has a peer and the chain has a block past genesis.
fn wait_ready(nodes: &[NodeProcess]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(DEVNET_READY_TIMEOUT_S);
    while Instant::now() < deadline {
        let statuses: Vec<Option<NodeStatus>> =
            nodes.iter().map(|n| Client::new(&n.url).get("/v1/status").ok()).collect();
        let ready = statuses.iter().all(|status| {
            status.as_ref().is_some_and(|s| s.peers >= 1 && s.chains.first().is_some_and(|c| c.height >= 1))
        });
        if ready {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!(
        "the nodes did not connect and produce a block within {DEVNET_READY_TIMEOUT_S} s; see the nestd.log files"
    ))
}

fn print_summary(
    spec: &DevnetSpec,
    net: &devnet::Devnet,
    nodes: &[NodeProcess],
    udp_radio: SocketAddr,
    mqtt_broker: Option<&str>,
) {
    let faucet = SecretKey::read(&net.faucet_key).map(|k| k.public_key().to_hex()).unwrap_or_default();
    println!("Nest devnet is up: {} nodes ({})", nodes.len(), spec.dir.display());
    for node in nodes {
        println!("  {:<8}  {}/v1/status  log {}", node.name, node.url, node.log.display());
    }
    println!("  chain     main: {} + chain-linear", spec.consensus.describe(spec.block_interval_ms));
    println!("  faucet    {faucet} ({})", net.faucet_key.display());
    println!("  plugins   signed with {} (trusted by the manifests)", net.vendor_key.display());
    println!(
        "  console   nest --data-dir {}",
        net.manifests[0].parent().map(|d| d.join("data")).unwrap_or_default().display()
    );
    println!("  dashboard {}/ (node-1's; each node serves its own at its API address)", nodes[0].url);
    print_try(&nodes[0].url, &net.faucet_key, udp_radio, mqtt_broker);
    println!("Ctrl-C stops every node.");
}

/// The end of the devnet's banner: node-1's device radios and commands that work as printed.
pub fn print_try(url: &str, faucet_key: &Path, udp_radio: SocketAddr, mqtt_broker: Option<&str>) {
    println!("  udp radio {udp_radio} on node-1 (radio \"udp\"): nestd device send --to {udp_radio} frame.bin");
    if let Some(broker) = mqtt_broker {
        let (host, port) = broker.rsplit_once(':').unwrap_or((broker, "1883"));
        println!(
            "  mqtt      {broker} on node-1 (radio \"mqtt\"): mosquitto_pub -h {host} -p {port} -t nest/devices/<device>/up -f frame.bin"
        );
    }
    println!("try:");
    println!(
        "  nestd tx transfer --node {url} --key {} --to <account> --amount {TOUR_AMOUNT} --wait   # fee {} on top",
        faucet_key.display(),
        crate::ledger::tx::TRANSFER_GAS * devnet::GAS_PRICE
    );
}

/// The amount the banner and the README's tour transfer: the fee (1000 gas at the
/// devnet's gas price) is paid on top of it.
pub const TOUR_AMOUNT: u64 = 5000;

/// One line, redrawn every second: each node's height and peers, and committed tx/s.
fn status_line(urls: &[String], stop: &AtomicBool) {
    let mut last_txs = 0u64;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1));
        let statuses: Vec<Option<NodeStatus>> =
            urls.iter().map(|url| Client::new(url).get("/v1/status").ok()).collect();
        let cells: Vec<String> = statuses
            .iter()
            .map(|s| match s.as_ref().and_then(|s| s.chains.first().map(|c| (c.height, s.peers))) {
                Some((height, peers)) => format!("{height}/{peers}p"),
                None => "down".to_string(),
            })
            .collect();
        let txs =
            statuses.iter().flatten().filter_map(|s| s.chains.first()).map(|c| c.txs_committed).max().unwrap_or(0);
        eprint!("\rheights {}   tx/s {:>6}   ", cells.join(" "), txs.saturating_sub(last_txs));
        last_txs = txs;
    }
}

/// Ctrl-C and SIGTERM, caught from [`StopSignals::listen`] on: one that arrives while the
/// nodes start is kept and ends [`StopSignals::wait`] at once.
struct StopSignals {
    runtime: tokio::runtime::Runtime,
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> Result<StopSignals, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("signal runtime: {e}"))?;
        let _entered = runtime.enter();
        let terminate = signal(SignalKind::terminate()).map_err(|e| format!("listening for SIGTERM: {e}"))?;
        let interrupt = signal(SignalKind::interrupt()).map_err(|e| format!("listening for Ctrl-C: {e}"))?;
        drop(_entered);
        Ok(StopSignals { runtime, terminate, interrupt })
    }

    fn wait(mut self) {
        self.runtime.block_on(async {
            tokio::select! {
                _ = self.interrupt.recv() => {}
                _ = self.terminate.recv() => {}
            }
        });
    }
}

/// Stops every node with SIGTERM, then kills any that do not exit within 10 s.
pub(crate) fn stop_all(nodes: &mut [NodeProcess]) {
    for node in nodes.iter() {
        // SAFETY: signalling our own child processes.
        unsafe {
            libc::kill(node.child.id() as i32, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for node in nodes.iter_mut() {
        while Instant::now() < deadline && matches!(node.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = node.child.kill();
        let _ = node.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_address_file_counts_once_its_line_is_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("api.addr");
        assert_eq!(read_api_addr(&file), None);
        for unfinished in ["", "127.0.0.1:40", "127.0.0.1:40389"] {
            std::fs::write(&file, unfinished).expect("write");
            assert_eq!(read_api_addr(&file), None, "{unfinished:?}");
        }
        std::fs::write(&file, "127.0.0.1:40389\n").expect("write");
        assert_eq!(read_api_addr(&file), Some(SocketAddr::from(([127, 0, 0, 1], 40389))));
    }
}
