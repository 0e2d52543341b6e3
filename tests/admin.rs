//! The admin side of the API on a real node: admin routes need the token from the
//! `0600` token file, are rate limited per token, bodies over the limit and requests
//! over the concurrency limit are refused at once, `/metrics` counts blocks and plugin
//! calls, the event stream delivers committed blocks and transactions, and a
//! non-loopback listen address needs explicit consent.

use nest_host::{
    api::SubmitAnswer,
    crypto::SecretKey,
    ledger::tx::{TxBody, UnsignedTx},
    wallet,
};
use nest_tests::node::{NodeProcess, metric_value, nestd_binary, wait_until, write_devnet};
use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};
use tungstenite::{Message, client::IntoClientRequest, stream::MaybeTlsStream};

/// A single-node devnet whose `[api]` table also holds `extra_api` lines.
fn devnet_with_api(dir: &Path, extra_api: &str) -> PathBuf {
    let devnet = write_devnet(dir, 200, Vec::new());
    let text = std::fs::read_to_string(&devnet.manifest).unwrap();
    let listen = "listen = \"127.0.0.1:0\"\n";
    assert!(text.contains(listen), "the devnet manifest has an [api] listen line:\n{text}");
    std::fs::write(&devnet.manifest, text.replace(listen, &format!("{listen}{extra_api}\n"))).unwrap();
    devnet.manifest
}

fn token_path(manifest: &Path) -> PathBuf {
    manifest.parent().unwrap().join("data/api.token")
}

fn token(manifest: &Path) -> String {
    std::fs::read_to_string(token_path(manifest)).unwrap().trim().to_string()
}

/// GETs `path` with an optional bearer token; returns status, `retry-after` and body.
fn get(node: &NodeProcess, path: &str, token: Option<&str>) -> (u16, Option<String>, String) {
    let mut request = ureq::get(&format!("{}{path}", node.url));
    if let Some(token) = token {
        request = request.set("authorization", &format!("Bearer {token}"));
    }
    let response = match request.call() {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(other) => panic!("GET {path}: {other}"),
    };
    let status = response.status();
    let retry_after = response.header("retry-after").map(str::to_string);
    (status, retry_after, response.into_string().unwrap_or_default())
}

fn error_of(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    value["error"].as_str().unwrap_or_else(|| panic!("no error in {body}")).to_string()
}

/// Opens the event stream; `Err(status)` when the upgrade is refused.
fn events(
    node: &NodeProcess,
    query: &str,
    token: Option<&str>,
) -> Result<tungstenite::WebSocket<MaybeTlsStream<TcpStream>>, u16> {
    let url = format!("{}/v1/admin/events{query}", node.url.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = token {
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    match tungstenite::connect(request) {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("event stream: {other}"),
    }
}

/// The next JSON event; `None` when nothing comes within the socket's read timeout.
fn next_event(socket: &mut tungstenite::WebSocket<MaybeTlsStream<TcpStream>>) -> Option<serde_json::Value> {
    loop {
        match socket.read() {
            Ok(Message::Text(text)) => return Some(serde_json::from_str(text.as_str()).unwrap()),
            Ok(_) => continue,
            Err(tungstenite::Error::Io(error))
                if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                return None;
            }
            Err(other) => panic!("event stream: {other}"),
        }
    }
}

fn set_read_timeout(socket: &tungstenite::WebSocket<MaybeTlsStream<TcpStream>>, timeout: Duration) {
    match socket.get_ref() {
        MaybeTlsStream::Plain(stream) => stream.set_read_timeout(Some(timeout)).unwrap(),
        _ => unreachable!("plain TCP on 127.0.0.1"),
    }
}

#[test]
fn admin_routes_answer_401_without_the_right_token_and_200_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = devnet_with_api(dir.path(), "");
    let node = NodeProcess::start(&manifest);
    let token = token(&manifest);
    let wrong = "0".repeat(64);
    for path in ["/v1/admin/config", "/v1/admin/events", "/v1/admin/events?chain=main", "/v1/admin/no-such-route"] {
        let (missing, _, missing_body) = get(&node, path, None);
        let (wrong_status, _, wrong_body) = get(&node, path, Some(&wrong));
        assert_eq!((missing, wrong_status), (401, 401), "{path}");
        assert_eq!(missing_body, wrong_body, "{path}: a missing and a wrong token get the same answer");
        assert!(error_of(&missing_body).contains("Bearer"), "{missing_body}");
    }
    assert_eq!(events(&node, "", None).err(), Some(401));
    assert_eq!(events(&node, "", Some(&wrong)).err(), Some(401));
    assert!(events(&node, "", Some(&token)).is_ok(), "the event stream opens with the token");
    let (status, _, body) = get(&node, "/v1/admin/config", Some(&token));
    assert_eq!(status, 200, "{body}");
    let config: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(config["node"]["name"], node.status().name);
    assert_eq!(config["api"]["concurrent_requests_max"], 256);
    assert_eq!(config["chain"][0]["id"], "main");
    assert_eq!(config["file"], manifest.display().to_string());
    assert_eq!(get(&node, "/v1/admin/no-such-route", Some(&token)).0, 404);
    assert_eq!(get(&node, "/v1/status", None).0, 200, "public routes stay open");
    assert_eq!(get(&node, "/metrics", None).0, 200, "/metrics is public");
}

#[test]
fn admin_burst_over_the_rate_limit_gets_429_with_retry_after_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = devnet_with_api(dir.path(), "admin_requests_per_second = 5\nadmin_burst = 5");
    let node = NodeProcess::start(&manifest);
    let token = token(&manifest);
    let answers: Vec<(u16, Option<String>, String)> =
        (0..12).map(|_| get(&node, "/v1/admin/config", Some(&token))).collect();
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(statuses[..5], [200; 5], "the burst passes: {statuses:?}");
    let limited = answers.iter().find(|a| a.0 == 429).unwrap_or_else(|| panic!("no 429 in {statuses:?}"));
    assert_eq!(limited.1.as_deref(), Some("1"), "retry-after in whole seconds");
    assert!(error_of(&limited.2).contains("5 requests per second, burst 5"), "{}", limited.2);
    assert_eq!(get(&node, "/v1/status", None).0, 200, "public routes are not rate limited");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&node, "/v1/admin/config", Some(&token)).0, 200, "admin requests pass again after a second");
}

/// Declares a body over the 16 MiB limit, waits for the answer before sending any of it.
fn declared_oversized_body_status(node: &NodeProcess, path: &str, token: &str) -> String {
    let address = node.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let length = 20 * 1024 * 1024;
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {length}\r\nexpect: 100-continue\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut status = String::new();
    BufReader::new(stream).read_line(&mut status).unwrap();
    status
}

#[test]
fn body_over_body_bytes_max_is_refused_with_413_on_admin_and_public_routes() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = devnet_with_api(dir.path(), "");
    let node = NodeProcess::start(&manifest);
    let token = token(&manifest);
    for path in ["/v1/admin/config", "/v1/chains/main/txs"] {
        let status = declared_oversized_body_status(&node, path, &token);
        assert!(status.starts_with("HTTP/1.1 413"), "{path}: {status}");
    }
}

#[test]
fn requests_over_concurrent_requests_max_are_shed_with_503_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = devnet_with_api(dir.path(), "concurrent_requests_max = 1");
    let node = NodeProcess::start(&manifest);
    // Holds the only request slot: a submission whose body is still arriving.
    let address = node.url.trim_start_matches("http://").to_string();
    let mut upload = TcpStream::connect(&address).unwrap();
    let head = format!(
        "POST /v1/chains/main/txs HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{{\"txs\": [\""
    );
    upload.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let answers: Vec<(u16, Option<String>, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4).map(|_| scope.spawn(|| get(&node, "/v1/status", None))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let shed: Vec<&(u16, Option<String>, String)> = answers.iter().filter(|a| a.0 == 503).collect();
    assert!(!shed.is_empty(), "at least one request is shed: {answers:?}");
    assert!(error_of(&shed[0].2).contains("node busy: 1 requests in progress"), "{}", shed[0].2);
    assert!(started.elapsed() < Duration::from_secs(5), "shed requests are answered at once, not queued");
    drop(upload);
    wait_until(Duration::from_secs(10), "the slot to free up", || get(&node, "/v1/status", None).0 == 200);
}

#[test]
fn metrics_count_committed_blocks_plugin_calls_and_requests() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = devnet_with_api(dir.path(), "");
    let node = NodeProcess::start(&manifest);
    wait_until(Duration::from_secs(15), "two blocks", || node.main_chain().height >= 2);
    let blocks = "nest_blocks_committed_total{chain=\"main\"}";
    let first = get(&node, "/metrics", None).2;
    let before = metric_value(&first, blocks).unwrap_or_else(|| panic!("no {blocks} in\n{first}"));
    assert!(before >= 1.0, "{first}");
    assert!(metric_value(&first, "nest_plugin_calls_total{plugin=\"poa\"}").unwrap_or(0.0) > 0.0, "{first}");
    assert!(metric_value(&first, "nest_plugin_calls_total{plugin=\"linear\"}").unwrap_or(0.0) > 0.0, "{first}");
    assert!(metric_value(&first, "nest_chain_height{chain=\"main\"}").unwrap_or(0.0) >= 1.0, "{first}");
    assert_eq!(metric_value(&first, "nest_peers"), Some(0.0), "{first}");
    assert!(first.contains("nest_mempool_txs{chain=\"main\"}"), "{first}");
    assert!(first.contains("nest_http_requests_total{route=\"/v1/status\",status=\"200\"}"), "{first}");
    get(&node, "/v1/chains/main/accounts/xyz", None);
    let height = node.main_chain().height;
    wait_until(Duration::from_secs(10), "more blocks", || node.main_chain().height >= height + 2);
    let second = get(&node, "/metrics", None).2;
    assert!(metric_value(&second, blocks).unwrap() > before, "{blocks} grows\n{second}");
    assert!(
        metric_value(&second, "nest_inputs_rejected_total{reason=\"malformed_request\"}").unwrap_or(0.0) >= 1.0,
        "{second}"
    );
}

/// Runs `promtool check metrics` (Debian's `prometheus` package) on `text`; its
/// complaints, if any.
fn promtool_complaints(text: &str) -> Option<String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool (Debian package prometheus; ./test.sh installs it): {e}"));
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (!output.status.success() || !said.trim().is_empty()).then_some(said)
}

/// An operator alerts on rates: every series the node's manifest implies exists from the
/// first scrape, before its first event, and the whole output passes promtool's lint.
#[test]
fn metrics_exist_at_zero_from_the_start_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = devnet_with_api(dir.path(), "");
    let node = NodeProcess::start(&manifest);
    let text = get(&node, "/metrics", None).2;
    for series in [
        "nest_evidence_reports_total{chain=\"main\"} 0",
        "nest_plugin_errors_total{plugin=\"poa\"} 0",
        "nest_gossip_messages_total{topic=\"consensus\",verdict=\"reject\"} 0",
        "nest_sync_requests_total{outcome=\"served\"} 0",
        "nest_inputs_rejected_total{reason=\"bad_signature\"} 0",
        "nest_lua_limit_hits_total{limit=\"memory\"} 0",
    ] {
        assert!(text.contains(series), "{series} missing from the first scrape:\n{text}");
    }
    for histogram in [
        "nest_commit_latency_seconds_count{chain=\"main\"}",
        "nest_block_interval_seconds_bucket{chain=\"main\",le=\"0.25\"}",
        "nest_plugin_call_duration_seconds_count{plugin=\"linear\"}",
    ] {
        assert!(text.contains(histogram), "{histogram} missing from the first scrape:\n{text}");
    }
    wait_until(Duration::from_secs(15), "two blocks", || node.main_chain().height >= 2);
    let text = get(&node, "/metrics", None).2;
    assert!(metric_value(&text, "nest_commit_latency_seconds_count{chain=\"main\"}").unwrap_or(0.0) >= 1.0, "{text}");
    assert!(metric_value(&text, "nest_http_request_duration_seconds_count{route=\"/metrics\"}").unwrap_or(0.0) >= 1.0);
    if let Some(complaints) = promtool_complaints(&text) {
        panic!("promtool check metrics:\n{complaints}\non:\n{text}");
    }
}

#[test]
fn event_stream_delivers_committed_blocks_and_transactions_filtered_by_chain() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = write_devnet(dir.path(), 200, Vec::new());
    let node = NodeProcess::start(&devnet.manifest);
    let token = token(&devnet.manifest);
    let mut stream = events(&node, "?chain=main", Some(&token)).unwrap();
    set_read_timeout(&stream, Duration::from_secs(10));
    let mut heights = Vec::new();
    while heights.len() < 2 {
        let event = next_event(&mut stream).expect("a block within 10 s");
        if event["type"] == "block_committed" {
            assert_eq!(event["chain"], "main", "{event}");
            assert_eq!(event["hash"].as_str().unwrap().len(), 64, "{event}");
            heights.push(event["height"].as_u64().unwrap());
        }
    }
    assert_eq!(heights[1], heights[0] + 1, "consecutive blocks: {heights:?}");

    let faucet = SecretKey::read(&devnet.faucet_key).unwrap();
    let (chain, fee) = wallet::chain_terms(&node.client(), "main").unwrap();
    let body = TxBody::Transfer { to: SecretKey::from_seed([9; 32]).public_key(), amount: 5 };
    let tx = UnsignedTx { chain, from: faucet.public_key(), nonce: 0, fee, body }.sign(&faucet);
    let submitted: SubmitAnswer =
        node.client().post("/v1/chains/main/txs", &serde_json::json!({ "tx": hex::encode(tx.encode()) })).unwrap();
    assert_eq!(submitted.accepted, 1, "{submitted:?}");
    let hash = tx.hash().to_hex();
    let committed = loop {
        let event = next_event(&mut stream).expect("the transfer's event within 10 s");
        if event["type"] == "tx_committed" && event["hash"] == hash.as_str() {
            break event;
        }
    };
    assert_eq!(committed["chain"], "main");
    assert_eq!(committed["index"], 0);

    let mut other = events(&node, "?chain=other", Some(&token)).unwrap();
    set_read_timeout(&other, Duration::from_millis(1500));
    assert_eq!(next_event(&mut other), None, "no events of chain main on a stream for chain other");
    assert!(node.stop(), "the node stops cleanly on SIGTERM with event streams open");
}

/// Runs `nestd <args>`; returns whether it succeeded and its output (stdout, then
/// stderr). Kills it after 30 s.
fn nestd(args: &[&str]) -> (bool, String) {
    let mut child = Command::new(nestd_binary())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nestd");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("nestd {args:?} still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut output = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut output).unwrap();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut output).unwrap();
    (status.success(), output)
}

#[test]
fn token_file_is_private_stable_across_restarts_and_refused_when_others_can_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = devnet_with_api(dir.path(), "");
    let node = NodeProcess::start(&manifest);
    let path = token_path(&manifest);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let first = token(&manifest);
    assert_eq!(first.len(), 64);
    assert!(node.stop(), "the node stops cleanly");
    let node = NodeProcess::start(&manifest);
    assert_eq!(token(&manifest), first, "the token survives a restart");
    assert_eq!(get(&node, "/v1/admin/config", Some(&first)).0, 200);
    assert!(node.stop());

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, output) = nestd(&["run", manifest.to_str().unwrap()]);
    assert!(!ok, "nestd run refuses a token file others can read");
    assert!(output.contains("api.token: readable by group or others (mode 644)"), "{output}");
}

#[test]
fn non_loopback_listen_without_consent_is_refused_by_check_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = write_devnet(dir.path(), 200, Vec::new());
    let text = std::fs::read_to_string(&devnet.manifest).unwrap();
    std::fs::write(&devnet.manifest, text.replace("listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:0\"")).unwrap();
    let manifest = devnet.manifest.to_str().unwrap();
    for command in ["check", "run"] {
        let (ok, output) = nestd(&[command, manifest]);
        assert!(!ok, "nestd {command} refuses a non-loopback listen address");
        assert!(output.contains("[api]: listen: 0.0.0.0:0 is not a loopback address"), "{command}: {output}");
    }
}
