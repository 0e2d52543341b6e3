//! The operator's web dashboard on real nodes: the routes it reads (recent blocks, the
//! process's figures, the public block stream) agree with the rest of the API, the page
//! and its assets come with their content types, cache headers and CSP, and in a real
//! headless Chromium (`tests/dashboard/check.py`, Selenium) every view shows what the API
//! says, a new block appears without a reload, the admin view refuses without the token
//! and disables and enables a plugin with it, and the token never appears in a URL.
//!
//! The browser test needs Debian's `chromium`, `chromium-driver` and `python3-selenium`
//! (`./test.sh` installs them); without them it fails and says so. Its screenshots land
//! in `target/dashboard-screenshots/`, and it prints the page-load benchmark
//! (`scripts/bench-dashboard` runs the same against `nestd up`).

use nest_host::devices::devnet::{add_devnet_radios, node_allocations, register_sim_devices};
use nest_tests::{
    devices::nestd,
    node::{ConsoleNode, NodeProcess, wait_until, write_devnet_nodes},
    target_dir, workspace_root,
};
use serde_json::{Value, json};
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

/// How long the devnet may take to connect, register its devices and produce blocks.
const WAIT: Duration = Duration::from_secs(60);
/// The browser devnet's block interval: `nestd up`'s.
const BLOCK_INTERVAL_MS: u64 = 1000;
/// The public block streams one node serves at once (`api::overview::BLOCK_STREAMS_MAX`).
const BLOCK_STREAMS_MAX: usize = 16;

/// Held by each test while its nodes run: a browser beside another devnet overloads a
/// small machine, and neither test is about sharing it.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A single-node devnet (100 ms blocks) and this file's turn to run.
fn lone_node() -> (std::sync::MutexGuard<'static, ()>, ConsoleNode) {
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    (turn, ConsoleNode::start())
}

fn get(node: &NodeProcess, path: &str) -> Value {
    node.client().get(path).unwrap_or_else(|e| panic!("GET {path}: {e}\nlog:\n{}", node.log_text()))
}

/// The status code and error message of a GET the node refuses.
fn refused(node: &NodeProcess, path: &str) -> (u16, String) {
    match ureq::get(&format!("{}{path}", node.url)).call() {
        Err(ureq::Error::Status(code, response)) => {
            let body: Value = response.into_json().unwrap_or_default();
            (code, body["error"].as_str().unwrap_or_default().to_string())
        }
        other => panic!("GET {path} should be refused, got {other:?}"),
    }
}

#[test]
fn recent_blocks_summarize_what_the_block_route_serves_with_final_and_best_heights() {
    let (_turn, console) = lone_node();
    let node = &console.node;
    wait_until(WAIT, "height 5", || node.main_chain().height >= 5);
    let list = get(node, "/v1/chains/main/blocks?limit=3");
    let blocks = list["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 3, "{list}");
    let final_height = list["final_height"].as_u64().unwrap();
    assert_eq!(blocks[0]["height"].as_u64(), Some(final_height), "newest first, from the final height: {list}");
    assert!(list["best_height"].as_u64().unwrap() >= final_height, "{list}");
    for summary in blocks {
        let height = summary["height"].as_u64().unwrap();
        let block = get(node, &format!("/v1/chains/main/blocks/{height}?txs=hashes"));
        for field in ["hash", "timestamp_ms", "proposer", "tx_count"] {
            assert_eq!(summary[field], block[field], "{field} of block {height}");
        }
        assert_eq!(
            summary["certificate_bytes"].as_u64(),
            Some(block["certificate"].as_str().unwrap().len() as u64 / 2)
        );
    }
    let low = get(node, "/v1/chains/main/blocks?to=2&limit=5");
    let heights: Vec<u64> = low["blocks"].as_array().unwrap().iter().map(|b| b["height"].as_u64().unwrap()).collect();
    assert_eq!(heights, vec![2, 1, 0], "down to genesis at most: {low}");
    let (code, message) = refused(node, "/v1/chains/main/blocks?limit=257");
    assert_eq!((code, message.as_str()), (400, "limit 257 is above 256, the most blocks one answer holds"));
    assert_eq!(refused(node, "/v1/chains/side/blocks").0, 404);
}

#[test]
fn process_route_reports_the_node_process_uptime_cpu_and_memory() {
    let (_turn, console) = lone_node();
    let node = &console.node;
    wait_until(WAIT, "height 3", || node.main_chain().height >= 3);
    let process = get(node, "/v1/process");
    let pid = std::fs::read_to_string(format!("/proc/{}/stat", process["pid"])).expect("the pid is a live process");
    assert!(pid.contains("(nestd)"), "the pid is nestd's: {pid}");
    let uptime_ms = process["uptime_ms"].as_u64().unwrap();
    assert!((1..600_000).contains(&uptime_ms), "{process}");
    assert!(process["rss_bytes"].as_u64().unwrap() > 1 << 20, "{process}");
    assert!(process["cpu_time_ms"].as_u64().is_some() && process["threads"].as_u64().unwrap() > 1, "{process}");
    assert!(process["cores"].as_u64().unwrap() >= 1, "{process}");
}

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

/// Opens the public block stream (no token); `Err(status)` when the node refuses it.
fn block_stream(node: &NodeProcess) -> Result<Socket, u16> {
    match tungstenite::connect(format!("{}/v1/events/blocks", node.url.replace("http://", "ws://"))) {
        Ok((socket, _)) => {
            if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = socket.get_ref() {
                tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            }
            Ok(socket)
        }
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("block stream: {other}"),
    }
}

#[test]
fn public_block_stream_sends_committed_blocks_only_without_a_token_within_its_limit() {
    let (_turn, console) = lone_node();
    let node = &console.node;
    let mut socket = block_stream(node).expect("the block stream opens without a token");
    let mut heights = Vec::new();
    while heights.len() < 3 {
        let text = match socket.read().expect("a block within 10 s") {
            tungstenite::Message::Text(text) => text.to_string(),
            _ => continue,
        };
        let event: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(event["type"], "block_committed", "only blocks: {event}");
        assert_eq!(event["hash"].as_str().map(str::len), Some(64), "{event}");
        heights.push(event["height"].as_u64().unwrap());
    }
    assert!(heights.windows(2).all(|pair| pair[1] == pair[0] + 1), "consecutive blocks: {heights:?}");
    let mut more: Vec<Socket> = (1..BLOCK_STREAMS_MAX).map(|_| block_stream(node).expect("within the limit")).collect();
    assert_eq!(block_stream(node).err(), Some(503), "one stream over the limit is refused");
    more.clear();
    drop(socket);
    wait_until(WAIT, "a freed stream slot", || block_stream(node).is_ok());
}

/// The value of `name` in a raw HTTP answer's headers.
fn header(response: &ureq::Response, name: &str) -> String {
    response.header(name).unwrap_or_default().to_string()
}

#[test]
fn dashboard_is_served_from_the_binary_with_content_types_cache_headers_and_csp() {
    let (_turn, console) = lone_node();
    let page = ureq::get(&format!("{}/", console.node.url)).call().expect("GET /");
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "cache-control"), "no-cache");
    let policy = header(&page, "content-security-policy");
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"), "{policy}");
    let html = page.into_string().unwrap();
    let assets: Vec<&str> = html.split('"').filter(|part| part.starts_with("/dashboard/")).collect();
    assert_eq!(assets.len(), 4, "icon twice, style sheet, script: {html}");
    for (suffix, content_type) in
        [(".js", "text/javascript; charset=utf-8"), (".css", "text/css; charset=utf-8"), (".svg", "image/svg+xml")]
    {
        let path = assets.iter().find(|asset| asset.ends_with(suffix)).expect("every kind of asset is linked");
        let asset = ureq::get(&format!("{}{path}", console.node.url)).call().expect("GET an asset");
        assert_eq!(header(&asset, "content-type"), content_type, "{path}");
        assert_eq!(header(&asset, "cache-control"), "public, max-age=31536000, immutable", "{path}");
    }
}

/// A Python that can import Selenium, once Chromium and chromedriver are there too; or
/// what is missing, with how to install it.
fn browser_tools() -> Result<String, String> {
    let candidates = std::env::var("NEST_PYTHON").map(|python| vec![python]).unwrap_or_else(|_| {
        // A pyenv `python3` first on PATH does not see Debian's python3-selenium.
        vec!["python3".into(), "/usr/bin/python3".into()]
    });
    let python = candidates.into_iter().find(|python| {
        Command::new(python).args(["-c", "import selenium"]).output().is_ok_and(|output| output.status.success())
    });
    let mut missing: Vec<&str> = [("/usr/bin/chromium", "chromium"), ("/usr/bin/chromedriver", "chromium-driver")]
        .into_iter()
        .filter(|(tool, _)| !Path::new(tool).exists())
        .map(|(_, package)| package)
        .collect();
    if python.is_none() {
        missing.push("python3-selenium");
    }
    match python {
        Some(python) if missing.is_empty() => Ok(python),
        _ => Err(format!(
            "the dashboard test drives a real browser and needs the Debian packages chromium, chromium-driver \
             and python3-selenium; missing: {}. Run ./test.sh, which installs them, or \
             apt-get install -y chromium chromium-driver python3-selenium",
            missing.join(", ")
        )),
    }
}

/// A committed transfer from the faucet to a fresh account: (tx hash, height, account).
fn committed_transfer(node: &NodeProcess, faucet_key: &Path, dir: &Path) -> (String, u64, String) {
    let key_file = dir.join("receiver.key");
    let account = nestd(&["keygen", "--out", &key_file.display().to_string()]).trim().to_string();
    let faucet = faucet_key.display().to_string();
    let args =
        ["tx", "transfer", "--node", &node.url, "--key", &faucet, "--to", &account, "--amount", "5000", "--wait"];
    let output = nestd(&args);
    let word_after = |prefix: &str| {
        let rest = output.split(prefix).nth(1).unwrap_or_else(|| panic!("no {prefix:?} in:\n{output}"));
        rest.split(|c: char| !c.is_ascii_hexdigit()).next().unwrap_or_default().to_string()
    };
    let height = word_after("committed at height ").parse().expect("a height");
    (word_after("accepted "), height, account)
}

/// Installs a pricing strategy for SKU `wifi` and shelves it, through the admin eval route.
fn shelve_sku(node: &NodeProcess, token: &str) {
    let strategy = std::fs::read_to_string(workspace_root().join("scripts/pricing/surge.lua")).unwrap();
    let code = format!(
        "market(\"wifi\"):strategy([==[{strategy}]==])\n\
         return market(\"wifi\"):shelve{{policy = \"market-metering\", resource = \"network\", unit = \"s\", units = 3600}}"
    );
    let answer = ureq::post(&format!("{}/v1/admin/eval", node.url))
        .set("authorization", &format!("Bearer {token}"))
        .send_json(json!({ "code": code }));
    if let Err(ureq::Error::Status(status, response)) = answer {
        panic!("shelving wifi: {status} {}", response.into_string().unwrap_or_default());
    }
    wait_until(WAIT, "SKU wifi on chain", || get(node, "/v1/chains/main/market/skus").to_string().contains("\"wifi\""));
}

/// A two-node devnet as `nestd up` writes it: node accounts funded (node-1 anchors
/// readings and shelves SKUs), node-1's radios, the simulated devices registered.
/// Returns the nodes, the faucet's key file and node-1's token file.
fn devnet(dir: &Path) -> (Vec<NodeProcess>, PathBuf, PathBuf) {
    let allocations = node_allocations(dir, 2).expect("node keys");
    let net = write_devnet_nodes(dir, BLOCK_INTERVAL_MS, allocations, 2, 2);
    add_devnet_radios(&net.manifest, None).expect("node-1's radios");
    let nodes: Vec<NodeProcess> = net.manifests.iter().map(|manifest| NodeProcess::start(manifest)).collect();
    wait_until(WAIT, "the nodes to connect", || nodes.iter().all(|node| node.status().peers >= 1));
    register_sim_devices(&nodes[0].url, &net.faucet_key).expect("devices registered");
    let token_file = net.manifest.parent().expect("node dir").join("data/api.token");
    (nodes, net.faucet_key, token_file)
}

#[test]
fn dashboard_in_a_real_browser_shows_the_api_live_and_guards_admin_actions_with_the_token() {
    let python = browser_tools().unwrap_or_else(|missing| panic!("{missing}"));
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (nodes, faucet_key, token_file) = devnet(dir.path());
    let node = &nodes[0];
    let (tx_hash, tx_height, account) = committed_transfer(node, &faucet_key, dir.path());
    shelve_sku(node, std::fs::read_to_string(&token_file).unwrap().trim());
    wait_until(WAIT, "a reading of a simulated device", || get(node, "/v1/radios")[0]["link"]["accepted"] != 0);
    let screenshots = target_dir().parent().expect("the build directory's parent").join("dashboard-screenshots");
    let output = Command::new(&python)
        .arg(workspace_root().join("tests/dashboard/check.py"))
        .args(["--url", &node.url, "--token-file", &token_file.display().to_string()])
        .args(["--screenshots", &screenshots.display().to_string(), "--tx-hash", &tx_hash])
        .args(["--tx-height", &tx_height.to_string(), "--account", &account, "--sku", "wifi", "--bench", "3"])
        .output()
        .expect("run tests/dashboard/check.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "the browser checks failed:\n{stdout}\n{stderr}\nnode log:\n{}", node.log_text());
    assert!(screenshots.join("overview.png").exists(), "no screenshots in {}", screenshots.display());
}
