//! `nestd up` as an operator runs it: one process that writes the devnet and starts a
//! `nestd run` process per node. With `--consensus bft` the four nodes are the
//! validators of the chain's genesis and decide each height in Tendermint rounds: every
//! node commits the same blocks, each carrying its certificate.
//!
//! The README's tour runs against `nestd up` as written and prints what the README shows:
//! a transfer, a device from keygen to a reading anchored through the UDP radio the
//! banner prints, and the market from the console; the files it leaves are ignored by
//! git, and the banner's own transfer command works as printed.

use nest_host::{client::Client, node::status::NodeStatus};
use nest_tests::{
    node::nestd_binary,
    tour::{self, Bindings, Prompt, Step},
    workspace_root,
};
use rexpect::session::{PtySession, spawn_command};
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
        let cwd = temp.path().join("work");
        std::fs::create_dir(&cwd).expect("working directory");
        let dir = cwd.join(".devnet");
        let (stdout, stderr) = (temp.path().join("up.stdout"), temp.path().join("up.stderr"));
        let child = Command::new(nestd_binary())
            .arg("up")
            .arg("--dir")
            .arg(&dir)
            .args(["--port", "0", "--nodes", &NODES.to_string()])
            .args(args)
            .env("NEST_LOG", "info")
            .current_dir(&cwd)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn nestd up");
        Up { child, dir, stdout, stderr, temp }
    }

    /// The directory `nestd up` runs in, as a checkout's root would be: it holds
    /// `.devnet`, and the README's commands run here.
    fn cwd(&self) -> PathBuf {
        self.temp.path().join("work")
    }

    /// A directory of the test's own, outside [`Up::cwd`].
    fn scratch(&self) -> &Path {
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

/// The README's node, where its commands go by default.
const README_NODE: &str = "http://127.0.0.1:7300";
/// How long a read of the tour (a `curl`) may take to show what the README shows: the
/// reading it looks for is anchored with the next block or two.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the transactions submitted so far may take to commit before the next step.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);
/// What the tour's console may take to answer one line.
const CONSOLE_TIMEOUT_MS: u64 = 30_000;

/// The README's tour against `nestd up`, run as a newcomer runs it: in a directory that
/// holds `.devnet` and the checkout's `target` and `scripts`, one step after the other,
/// each once the node has committed what the last one submitted.
struct Tour {
    cwd: PathBuf,
    url: String,
    scratch: PathBuf,
    bindings: Bindings,
    console: Option<PtySession>,
}

impl Tour {
    fn new(up: &Up, url: &str) -> Tour {
        let cwd = up.cwd();
        let target = nest_tests::target_dir();
        std::os::unix::fs::symlink(target.parent().expect("the build directory's parent"), cwd.join("target"))
            .expect("link target");
        std::os::unix::fs::symlink(workspace_root().join("scripts"), cwd.join("scripts")).expect("link scripts");
        Tour {
            cwd,
            url: url.to_string(),
            scratch: up.scratch().to_path_buf(),
            bindings: Bindings::default(),
            console: None,
        }
    }

    /// Runs `step`; the error says what differs from the README.
    fn run(&mut self, step: &Step) -> Result<(), String> {
        self.wait_committed()?;
        let command = self.bindings.substitute(&step.command)?.replace(README_NODE, &self.url);
        match step.prompt {
            Prompt::Shell if command.starts_with("curl ") => {
                let deadline = Instant::now() + READ_TIMEOUT;
                loop {
                    let result = self.shell(&command).and_then(|output| self.check(step, &output));
                    if result.is_ok() || Instant::now() >= deadline {
                        return result;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
            Prompt::Shell => {
                let output = self.shell(&command)?;
                self.check(step, &output)
            }
            Prompt::Console => {
                let output = self.console(&command)?;
                let error_shown = step.output.first().is_some_and(|line| line.starts_with("error"));
                if !error_shown && output.iter().any(|line| line.starts_with("error")) {
                    return Err(format!("the console answered {output:?}"));
                }
                self.check(step, &output)
            }
        }
    }

    fn check(&mut self, step: &Step, output: &[String]) -> Result<(), String> {
        if step.output.is_empty() {
            return Ok(());
        }
        self.bindings
            .check(&step.output, output)
            .map_err(|error| format!("{error}; it printed:\n{}", output.join("\n")))
    }

    /// Runs a command line with `sh`, `NEST_URL` naming this devnet's node-1; its stdout lines.
    fn shell(&self, command: &str) -> Result<Vec<String>, String> {
        let output = Command::new("sh")
            .args(["-c", command])
            .current_dir(&self.cwd)
            .env("NEST_URL", &self.url)
            .output()
            .map_err(|error| format!("sh: {error}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!("failed ({}):\n{stdout}{}", output.status, String::from_utf8_lossy(&output.stderr)));
        }
        Ok(stdout.lines().map(str::to_string).collect())
    }

    /// Evaluates a line in the tour's console (`./target/debug/nest` in a terminal,
    /// results 80 columns wide, opened at its first line); what it printed, without the
    /// echo of the line and the terminal's control sequences.
    fn console(&mut self, line: &str) -> Result<Vec<String>, String> {
        let console = match &mut self.console {
            Some(console) => console,
            None => {
                let mut command = Command::new(self.cwd.join("target/debug/nest"));
                command.current_dir(&self.cwd).env("NEST_HISTORY", self.scratch.join("history"));
                command.env("TERM", "xterm").env("COLUMNS", "80");
                let mut console = spawn_command(command, Some(CONSOLE_TIMEOUT_MS)).map_err(|e| format!("nest: {e}"))?;
                console.exp_string("nest> ").map_err(|e| format!("no prompt: {e}"))?;
                self.console.insert(console)
            }
        };
        console.send_line(line).map_err(|e| e.to_string())?;
        let (before, prompt) =
            console.exp_regex(r"\n[^\n]*nest> ").map_err(|e| format!("no prompt after {line:?}: {e}"))?;
        // The terminal reader hands over each byte as a character: decode them as UTF-8.
        let bytes: Vec<u8> = (before + prompt.trim_end_matches("nest> ")).chars().map(|c| c as u32 as u8).collect();
        let text = String::from_utf8_lossy(&bytes).to_string();
        // The line is echoed, wrapped at the terminal's width, until the line editor turns
        // bracketed paste off on Enter: what the evaluation printed follows.
        let output = text.rsplit_once("\u{1b}[?2004l").map_or(text.as_str(), |(_, output)| output);
        Ok(terminal_lines(output))
    }

    /// Waits until node-1's mempool is empty: what the last step submitted is committed.
    fn wait_committed(&self) -> Result<(), String> {
        let deadline = Instant::now() + COMMIT_TIMEOUT;
        while Instant::now() < deadline {
            let pending =
                status(&self.url).and_then(|s| s.chains.iter().find(|c| c.id == "main").map(|c| c.mempool_txs));
            if pending == Some(0) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("node-1's mempool did not empty within {COMMIT_TIMEOUT:?}"))
    }
}

/// The lines a terminal shows for `text`: escape sequences removed, each line as the
/// last carriage return left it, trailing spaces and empty lines dropped.
fn terminal_lines(text: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            plain.push(c);
            continue;
        }
        // CSI: ESC [ parameters final-byte; other escapes are two characters.
        if chars.next_if_eq(&'[').is_some() {
            while chars.next().is_some_and(|c| !('@'..='~').contains(&c)) {}
        } else {
            chars.next();
        }
    }
    plain
        .split('\n')
        .map(|line| line.rsplit('\r').find(|part| !part.trim().is_empty()).unwrap_or_default().trim_end().to_string())
        .filter(|line| !line.is_empty())
        .collect()
}

/// The entries of `dir` that git would add: files the tour made that `.gitignore` misses.
fn not_ignored(dir: &Path, made_by_the_test: &[&str]) -> Vec<String> {
    let mut missed = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the tour's directory") {
        let name = entry.expect("entry").file_name().to_string_lossy().to_string();
        if made_by_the_test.contains(&name.as_str()) {
            continue;
        }
        let status = Command::new("git")
            .args(["check-ignore", "--no-index", "--quiet", &name])
            .current_dir(workspace_root())
            .status()
            .expect("run git check-ignore");
        if status.code() != Some(0) {
            missed.push(name);
        }
    }
    missed
}

#[test]
fn the_readme_tour_runs_as_written_against_nestd_up_and_prints_what_the_readme_shows() {
    let _devnet = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let steps = tour::steps(include_str!("../README.md"));
    let commands: Vec<&str> = steps.iter().map(|step| step.command.as_str()).collect();
    for command in [
        "./target/debug/nestd keygen",
        "./target/debug/nestd tx transfer",
        "./target/debug/nestd device keygen",
        "./target/debug/nestd device register",
        "./target/debug/nestd device frame",
        "./target/debug/nestd device send",
        "curl -s http://127.0.0.1:7300/v1/devices/",
        "market(\"wifi\"):shelve",
        "market.buy",
        "market.settle",
    ] {
        assert!(commands.iter().any(|c| c.contains(command)), "the README's tour has no `{command}`: {commands:#?}");
    }
    let started = Instant::now();
    let mut up = Up::start(&[]);
    let banner = up.banner();
    let url = banner_field(&banner, "node-1").trim_end_matches("/v1/status").to_string();
    let mut tour = Tour::new(&up, &url);
    // What the README's reader takes from the banner.
    tour.bindings.bind("udp radio", banner_field(&banner, "udp radio"));
    tour.bindings.bind("faucet's account", banner_field(&banner, "faucet"));
    for step in &steps {
        if let Err(error) = tour.run(step) {
            // The error last: a log's tail is what a CI report keeps.
            panic!("{}\nREADME tour, `{}`: {error}", up.logs(), step.command);
        }
    }
    let missed = not_ignored(&up.cwd(), &["target", "scripts"]);
    assert!(missed.is_empty(), "the tour leaves files git would add (.gitignore misses them): {missed:?}");

    // The banner's transfer, as printed, moves its amount (the fee is paid on top).
    let transfer = banner.lines().map(str::trim).find(|l| l.starts_with("nestd tx transfer")).expect("transfer");
    let carol = tour.shell("./target/debug/nestd keygen --out carol.key").expect("keygen").concat();
    let transfer = transfer.replacen("nestd", "./target/debug/nestd", 1).replace("<account>", &carol);
    tour.shell(&transfer).unwrap_or_else(|error| panic!("the banner's `{transfer}`: {error}"));
    let account: serde_json::Value =
        Client::new(&url).get(&format!("/v1/chains/main/accounts/{carol}")).expect("account");
    assert_eq!(account["balance"], nest_host::up::TOUR_AMOUNT, "{account}");
    eprintln!("the README's tour ran in {:?}", started.elapsed());
    assert!(up.stop(), "nestd up did not stop cleanly on SIGTERM\n{}", up.logs());
}
