//! `nestd up` as an operator runs it: one process that writes the devnet and starts a
//! `nestd run` process per node. With `--consensus bft` the four nodes are the
//! validators of the chain's genesis and decide each height in Tendermint rounds: every
//! node commits the same blocks, each carrying its certificate.
//!
//! The README's device tour runs against `nestd up` as written: device keygen, register,
//! frame, `nestd device send` to the UDP radio the banner prints, and the reading anchored
//! on chain; the banner's own transfer command works as printed.

use nest_host::{client::Client, node::status::NodeStatus};
use nest_tests::node::nestd_binary;
use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const NODES: usize = 4;
const BLOCK_INTERVAL_MS: u64 = 300;
/// Every node must reach this height.
const HEIGHT: u64 = 5;
/// The block whose certificate and hash are compared.
const CHECKED_HEIGHT: u64 = 3;
/// How long the nodes may take to start and reach [`HEIGHT`].
const HEIGHT_TIMEOUT: Duration = Duration::from_secs(45);

/// How long `nestd up` may take to print its banner (its nodes connected, a block made).
const BANNER_TIMEOUT: Duration = Duration::from_secs(90);

/// Held by each test while its devnet runs: two four-node devnets at once overload a
/// small machine, and neither test is about sharing it.
static ONE_DEVNET_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A `nestd up` process in a process group of its own, so that its nodes can be stopped
/// with it whatever happens to the test: dropping it signals the whole group.
struct Up {
    child: Child,
    /// The devnet directory, `.devnet` in the working directory.
    dir: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
    temp: tempfile::TempDir,
}

impl Up {
    fn start(args: &[&str]) -> Up {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join(".devnet");
        let (stdout, stderr) = (temp.path().join("up.stdout"), temp.path().join("up.stderr"));
        let child = Command::new(nestd_binary())
            .arg("up")
            .arg("--dir")
            .arg(&dir)
            .args(["--port", "0", "--nodes", &NODES.to_string()])
            .args(args)
            .env("NEST_LOG", "info")
            .current_dir(temp.path())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn nestd up");
        Up { child, dir, stdout, stderr, temp }
    }

    /// The directory `nestd up` runs in: the README's commands run here.
    fn cwd(&self) -> &Path {
        self.temp.path()
    }

    /// The banner, once `nestd up` printed it whole.
    fn banner(&mut self) -> String {
        let deadline = Instant::now() + BANNER_TIMEOUT;
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(&self.stdout).unwrap_or_default();
            if text.contains("Ctrl-C stops") {
                return text;
            }
            assert!(!self.exited(), "nestd up exited early\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no banner within {BANNER_TIMEOUT:?}\n{}", self.logs());
    }

    fn node_dir(&self, index: usize) -> PathBuf {
        self.dir.join(format!("node-{index}"))
    }

    /// What went wrong, as far as the logs tell: `nestd up`'s output and the end of
    /// each node's log.
    fn logs(&self) -> String {
        let mut text = format!("nestd up:\n{}\n", std::fs::read_to_string(&self.stderr).unwrap_or_default());
        for index in 1..=NODES {
            let log = std::fs::read_to_string(self.node_dir(index).join("nestd.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            text.push_str(&format!("node-{index} log ends:\n{}\n", tail.join("\n")));
        }
        text
    }

    /// The API URL of each node, once each has written its address.
    fn urls(&self) -> Option<Vec<String>> {
        (1..=NODES)
            .map(|index| {
                let addr = std::fs::read_to_string(self.node_dir(index).join("data/api.addr")).ok()?;
                Some(format!("http://{}", addr.trim()))
            })
            .collect()
    }

    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM to `nestd up` alone, as a service manager would send it; true if it
    /// exited successfully within 20 s (it stops its nodes first). Sent once its status
    /// line shows: only then does it handle the signal.
    fn stop(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && !self.exited() {
            if std::fs::read_to_string(&self.stderr).is_ok_and(|text| text.contains("heights ")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let group = self.child.id() as i32;
        // SAFETY: signalling the process group this test created (`nestd up` and its nodes).
        unsafe {
            libc::kill(-group, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !self.exited() {
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above; whatever is left of the group is killed.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn status(url: &str) -> Option<NodeStatus> {
    Client::new(url).get("/v1/status").ok()
}

fn main_height(status: &NodeStatus) -> Option<u64> {
    status.chains.iter().find(|chain| chain.id == "main").map(|chain| chain.height)
}

/// Waits until every node serves its API and has committed [`HEIGHT`]; returns the URLs.
fn wait_for_height(up: &mut Up) -> Vec<String> {
    let deadline = Instant::now() + HEIGHT_TIMEOUT;
    let mut heights = Vec::new();
    while Instant::now() < deadline {
        assert!(!up.exited(), "nestd up exited early\n{}", up.logs());
        if let Some(urls) = up.urls() {
            heights = urls.iter().map(|url| status(url).as_ref().and_then(main_height)).collect();
            if heights.iter().all(|height| height.is_some_and(|h| h >= HEIGHT)) {
                return urls;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the nodes did not all reach height {HEIGHT} within {HEIGHT_TIMEOUT:?}: {heights:?}\n{}", up.logs());
}

/// Block `height` on the node at `url`, as the API serves it.
fn block(url: &str, height: u64) -> serde_json::Value {
    Client::new(url)
        .get(&format!("/v1/chains/main/blocks/{height}?txs=hashes"))
        .unwrap_or_else(|error| panic!("block {height} on {url}: {error}"))
}

fn node_key(dir: &Path) -> String {
    nest_host::crypto::SecretKey::read(&dir.join("node.key")).expect("node key").public_key().to_hex()
}

#[test]
fn nestd_up_with_bft_runs_four_validators_that_commit_the_same_certified_blocks() {
    let _devnet = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let started = Instant::now();
    let mut up = Up::start(&["--consensus", "bft", "--block-interval-ms", &BLOCK_INTERVAL_MS.to_string()]);
    let urls = wait_for_height(&mut up);
    let reached = started.elapsed();

    let validators: Vec<String> = (1..=NODES).map(|index| node_key(&up.node_dir(index))).collect();
    let mut hashes = Vec::with_capacity(NODES);
    for url in &urls {
        let status = status(url).unwrap_or_else(|| panic!("status of {url}\n{}", up.logs()));
        let chain = status.chains.iter().find(|chain| chain.id == "main").expect("chain main");
        assert_eq!(chain.plugins.consensus.name, "consensus-bft", "{url}");
        assert_eq!(chain.plugins.consensus.state, "running", "{url}: {:?}", chain.plugins.consensus.reason);
        let block = block(url, CHECKED_HEIGHT);
        let certificate = block["certificate"].as_str().unwrap_or_default();
        assert!(!certificate.is_empty(), "block {CHECKED_HEIGHT} on {url} has no certificate: {block}");
        // The API reads it as a commit certificate checked against the genesis validators.
        let commit = &block["commit"];
        assert_eq!(commit["valid"], true, "block {CHECKED_HEIGHT} on {url}: {commit}");
        assert_eq!(commit["total_power"], NODES as u64, "{commit}");
        let power = commit["power"].as_u64().unwrap_or_default();
        assert!(power * 3 > NODES as u64 * 2, "more than two thirds signed: {commit}");
        let signers = commit["signers"].as_array().map(Vec::len).unwrap_or_default();
        assert_eq!(signers as u64, power, "every signer has power 1: {commit}");
        let proposer = block["proposer"].as_str().unwrap_or_default();
        assert!(validators.iter().any(|key| key == proposer), "proposer {proposer} is no validator");
        hashes.push(block["hash"].as_str().unwrap_or_default().to_string());
    }
    assert!(
        hashes.windows(2).all(|pair| pair[0] == pair[1]) && !hashes[0].is_empty(),
        "the nodes disagree on block {CHECKED_HEIGHT}: {hashes:?}"
    );
    // The engine reports where it stands: the status API and the console show it.
    let first = status(&urls[0]).expect("status");
    let consensus = first.chains[0].consensus.clone().expect("the BFT engine reports its status");
    assert!(consensus.height > CHECKED_HEIGHT, "{consensus:?}");
    assert!(
        consensus.counters.get("heights_decided").is_some_and(|decided| *decided >= CHECKED_HEIGHT),
        "{consensus:?}"
    );
    let token = std::fs::read_to_string(up.node_dir(1).join("data/api.token")).expect("api token");
    let shown: serde_json::Value = ureq::post(&format!("{}/v1/admin/eval", urls[0]))
        .set("authorization", &format!("Bearer {}", token.trim()))
        .send_json(serde_json::json!({ "code": "return chain('main'):consensus()" }))
        .expect("console eval")
        .into_json()
        .expect("json");
    let shown = &shown["values"][0];
    assert_eq!(shown["engine"], "consensus-bft", "{shown}");
    assert!(shown["status"]["step"].is_string() && shown["status"]["round"].is_u64(), "{shown}");
    assert_eq!(shown["last_certificate"]["valid"], true, "{shown}");
    let evidence: serde_json::Value = Client::new(&urls[0]).get("/v1/chains/main/evidence").expect("evidence");
    assert_eq!(evidence, serde_json::json!([]), "honest validators commit no offence");
    let heights: Vec<Option<u64>> = urls.iter().map(|url| status(url).as_ref().and_then(main_height)).collect();
    eprintln!("height {HEIGHT} on every node after {reached:?}; heights now {heights:?}");

    assert!(up.stop(), "nestd up did not stop cleanly on SIGTERM\n{}", up.logs());
    assert!(urls.iter().all(|url| status(url).is_none()), "a node still serves after nestd up stopped");
}

/// The word after `label` on the banner line that starts with it (after indentation).
fn banner_field<'a>(banner: &'a str, label: &str) -> &'a str {
    banner
        .lines()
        .find_map(|line| line.trim_start().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `{label}` in the banner:\n{banner}"))
}

/// The shell block of the README that holds `marker`, as lines without their comments.
fn readme_block(marker: &str) -> Vec<String> {
    let readme = include_str!("../README.md");
    let block = readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("```").map(|(block, _)| block))
        .find(|block| block.contains(marker))
        .unwrap_or_else(|| panic!("no README sh block with {marker}"));
    block.lines().map(|line| line.split(" #").next().unwrap_or_default().trim().to_string()).collect()
}

/// Runs a README command line in `cwd`: `./target/debug/nestd` is the built binary,
/// `placeholders` are replaced, and `extra` arguments appended. Returns stdout.
fn run_readme_line(cwd: &Path, line: &str, placeholders: &[(&str, &str)], extra: &[&str]) -> String {
    let mut line = line.to_string();
    for (placeholder, value) in placeholders {
        line = line.replace(placeholder, value);
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"./target/debug/nestd"), "{line}");
    let output =
        Command::new(nestd_binary()).args(&words[1..]).args(extra).current_dir(cwd).output().expect("run nestd");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "`{line}` failed:\n{stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[test]
fn the_readme_device_tour_reaches_an_anchored_reading_through_the_udp_radio_nestd_up_prints() {
    let _devnet = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut up = Up::start(&[]);
    let banner = up.banner();
    let url = banner_field(&banner, "node-1").trim_end_matches("/v1/status").to_string();
    let udp_radio = banner_field(&banner, "udp radio").to_string();
    let cwd = up.cwd().to_path_buf();
    let tour = readme_block("device send");
    let line = |start: &str| {
        tour.iter()
            .find(|line| line.starts_with(&format!("./target/debug/nestd device {start}")))
            .unwrap_or_else(|| panic!("no `nestd device {start}` in the README's device tour: {tour:?}"))
            .clone()
    };
    // The README's commands reach node-1 at the default --node; this devnet's port is free-chosen.
    let node = ["--node", url.as_str()];
    let keygen = run_readme_line(&cwd, &line("keygen"), &[], &[]);
    let uid = keygen.lines().find_map(|l| l.strip_prefix("uid ")).expect("keygen prints the µID").trim().to_string();
    run_readme_line(&cwd, &line("register"), &[], &node);
    run_readme_line(&cwd, &line("frame"), &[], &[]);
    let sent = run_readme_line(&cwd, &line("send"), &[("<udp radio address>", &udp_radio)], &[]);
    assert!(sent.contains(&format!("to {udp_radio}")), "{sent}");

    let curl = tour.iter().find(|line| line.starts_with("curl")).expect("the tour reads the device");
    assert!(curl.ends_with("/v1/devices/<µID>"), "{curl}");
    let client = Client::new(&url);
    let deadline = Instant::now() + Duration::from_secs(45);
    let device = loop {
        let device: Option<serde_json::Value> = client.get(&format!("/v1/devices/{uid}")).ok();
        if let Some(device) = device.filter(|d| d["last_counter"] == 1) {
            break device;
        }
        assert!(Instant::now() < deadline, "the sent reading was not anchored within 45 s\n{}", up.logs());
        std::thread::sleep(Duration::from_millis(200));
    };
    let reading = &device["readings"][0];
    assert_eq!((reading["radio"].as_str(), reading["payload_text"].as_str()), (Some("udp"), Some("21.5C")), "{device}");
    assert!(reading["anchor"]["tx"].is_string(), "the reading carries its anchor: {device}");
    assert_eq!(device["anchors"][0]["count"], 1, "{device}");
    run_readme_line(&cwd, &line("revoke"), &[], &node);
    let revoked: serde_json::Value = client.get(&format!("/v1/devices/{uid}")).expect("device");
    assert_eq!(revoked["revoked"], true, "{revoked}");

    // The banner's transfer, as printed, moves its amount (the fee is paid on top).
    let transfer = banner.lines().map(str::trim).find(|l| l.starts_with("nestd tx transfer")).expect("transfer");
    let account = run_readme_line(&cwd, "./target/debug/nestd keygen --out bob.key", &[], &[]).trim().to_string();
    let transfer = transfer.split(" #").next().unwrap_or_default().replacen("nestd", "./target/debug/nestd", 1);
    run_readme_line(&cwd, &transfer, &[("<account>", &account)], &[]);
    let bob: serde_json::Value = client.get(&format!("/v1/chains/main/accounts/{account}")).expect("account");
    let amount = nest_host::up::TOUR_AMOUNT;
    assert_eq!(bob["balance"], amount, "{bob}");
    assert!(up.stop(), "nestd up did not stop cleanly on SIGTERM\n{}", up.logs());
}
