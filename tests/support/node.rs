//! Run real `nestd` processes on 127.0.0.1 and talk to them over HTTP.

use super::target_dir;
use nest_host::{
    client::Client,
    devnet::{self, Consensus, Devnet, DevnetSpec},
    node::status::{ChainStatus, NodeStatus},
};
use nest_sdk::PublicKey;
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The `nestd` binary of this build; panics with "build first" when it is missing.
pub fn nestd_binary() -> PathBuf {
    let path = target_dir().join("nestd");
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    path
}

/// Writes a single-node devnet (PoA + linear chain, signed with a developer key) in `dir`.
pub fn write_devnet(dir: &Path, block_interval_ms: u64, allocations: Vec<(PublicKey, u64)>) -> Devnet {
    write_devnet_nodes(dir, block_interval_ms, allocations, 1, 1)
}

/// Writes a devnet of `nodes` nodes, the first `authorities` of them PoA authorities.
pub fn write_devnet_nodes(
    dir: &Path,
    block_interval_ms: u64,
    allocations: Vec<(PublicKey, u64)>,
    nodes: usize,
    authorities: usize,
) -> Devnet {
    write_devnet_engine(dir, Consensus::Poa, block_interval_ms, allocations, nodes, authorities)
}

/// Writes a devnet of `nodes` nodes on `consensus`, the first `authorities` of them PoA
/// authorities or BFT validators (power 1 each, in the chain's genesis).
pub fn write_devnet_engine(
    dir: &Path,
    consensus: Consensus,
    block_interval_ms: u64,
    allocations: Vec<(PublicKey, u64)>,
    nodes: usize,
    authorities: usize,
) -> Devnet {
    let spec = DevnetSpec {
        consensus,
        nodes,
        authorities,
        dir: dir.to_path_buf(),
        block_interval_ms,
        api_port: 0,
        allocations,
        block_txs_max: 20_000,
        mempool_txs_max: 100_000,
        plugin_dir: target_dir(),
    };
    devnet::write(&spec).unwrap_or_else(|e| panic!("writing the devnet: {e}"))
}

/// Polls `condition` every 50 ms until it holds; panics with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {} s waiting for {what}", timeout.as_secs());
}

/// A `nestd run` child process; killed when dropped.
pub struct NodeProcess {
    child: Child,
    manifest: PathBuf,
    log: PathBuf,
    /// The API base URL.
    pub url: String,
}

impl NodeProcess {
    /// Starts `nestd run <manifest>` and waits until its API answers.
    pub fn start(manifest: &Path) -> NodeProcess {
        let dir = manifest.parent().expect("manifest in a directory");
        let addr_file = dir.join("data/api.addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = dir.join(format!("nestd-{}.log", crate::node::unique()));
        let child = Command::new(nestd_binary())
            .arg("run")
            .arg(manifest)
            .env("NEST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn nestd");
        let mut node = NodeProcess { child, manifest: manifest.to_path_buf(), log, url: String::new() };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(addr) = std::fs::read_to_string(&addr_file) {
                node.url = format!("http://{}", addr.trim());
                if node.client().get::<NodeStatus>("/v1/status").is_ok() {
                    return node;
                }
            }
            if let Ok(Some(exit)) = node.child.try_wait() {
                panic!("nestd exited with {exit} before serving; log:\n{}", node.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nestd did not serve within 30 s; log:\n{}", node.log_text());
    }

    /// The manifest it runs.
    pub fn manifest(&self) -> &Path {
        &self.manifest
    }

    /// The value of the `/metrics` line whose series (name and labels) is `series`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let text = ureq::get(&format!("{}/metrics", self.url)).call().ok()?.into_string().ok()?;
        metric_value(&text, series)
    }

    /// The node's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An API client.
    pub fn client(&self) -> Client {
        Client::new(&self.url)
    }

    /// The node's API base URL (`http://127.0.0.1:port`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The node's status.
    pub fn status(&self) -> NodeStatus {
        self.client().get("/v1/status").unwrap_or_else(|e| panic!("status: {e}\nlog:\n{}", self.log_text()))
    }

    /// The status of chain `main`.
    pub fn main_chain(&self) -> ChainStatus {
        self.status().chains.into_iter().find(|c| c.id == "main").expect("chain main")
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process with SIGKILL (no chance to clean up) and waits for it.
    pub fn kill9(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.manifest.clone()
    }

    /// Stops the process with SIGTERM and waits; returns its exit success.
    pub fn stop(mut self) -> bool {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A number unique within this test process (for file names).
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The `nest` console binary of this build; panics with "build first" when missing.
pub fn nest_binary() -> PathBuf {
    let path = target_dir().join("nest");
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    path
}

/// A devnet node (100 ms blocks) and the data directory a console attaches to.
pub struct ConsoleNode {
    /// The running node.
    pub node: NodeProcess,
    /// Its data directory (holds `api.addr` and `api.token`).
    pub data_dir: PathBuf,
    /// The devnet's files.
    pub devnet: Devnet,
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
}

impl ConsoleNode {
    /// Starts a devnet node.
    pub fn start() -> ConsoleNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let devnet = write_devnet(dir.path(), 100, Vec::new());
        let node = NodeProcess::start(&devnet.manifest);
        let data_dir = devnet.manifest.parent().expect("node dir").join("data");
        ConsoleNode { node, data_dir, devnet, dir }
    }

    /// Runs `nest <args>` against this node; returns (exit code, stdout, stderr).
    pub fn nest(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        self.nest_in(None, args, stdin)
    }

    /// Runs `nest <args>` in working directory `dir` (default: this process's).
    pub fn nest_in(&self, dir: Option<&Path>, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        use std::io::Write;
        let mut command = Command::new(nest_binary());
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        command.arg("--data-dir").arg(&self.data_dir).args(args);
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn nest");
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.unwrap_or_default().as_bytes());
        }
        let output = child.wait_with_output().expect("nest output");
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).to_string();
        (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
    }

    /// Waits until the chain is at least `blocks` past `from`: the node kept working.
    pub fn assert_still_producing(&self, blocks: u64) {
        let from = self.node.main_chain().height;
        wait_until(Duration::from_secs(15), "the node to keep producing blocks", || {
            self.node.main_chain().height >= from + blocks
        });
    }
}

/// The value of the metric line of `text` whose series (name and labels) is `series`.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}
