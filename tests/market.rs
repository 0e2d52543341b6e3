//! The resource market on real `nestd` processes: policies loaded as signed `.so` files,
//! strategies installed from the console, escrow and settlement on chain, every node
//! agreeing on the balances.

use nest_host::{crypto::SecretKey, node::AccountView};
use nest_sdk::PublicKey;
use nest_tests::node::{NodeProcess, wait_until, write_devnet_nodes};
use nest_tests::workspace_root;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

const BLOCK_INTERVAL_MS: u64 = 200;
const FUNDS: u64 = 10_000_000;
/// Fee of a market transaction on the devnet (gas 2 000 at gas price 1).
const MARKET_FEE: u64 = 2_000;
const WAIT: Duration = Duration::from_secs(60);

/// Node keys written before the devnet so genesis can fund them; extra funded keys.
fn funded_keys(dir: &Path, nodes: usize, extra: usize) -> (Vec<SecretKey>, Vec<PathBuf>) {
    let mut keys = Vec::new();
    for index in 1..=nodes {
        let node_dir = dir.join(format!("node-{index}"));
        std::fs::create_dir_all(&node_dir).unwrap();
        let key = SecretKey::from_seed([index as u8 + 100; 32]);
        key.write(&node_dir.join("node.key")).unwrap();
        keys.push(key);
    }
    let mut files = Vec::new();
    for index in 0..extra {
        let key = SecretKey::from_seed([index as u8 + 200; 32]);
        let file = dir.join(format!("buyer-{index}.key"));
        key.write(&file).unwrap();
        keys.push(key);
        files.push(file);
    }
    (keys, files)
}

fn devnet(dir: &Path, nodes: usize, extra: usize) -> (Vec<NodeProcess>, Vec<SecretKey>, Vec<PathBuf>) {
    let (keys, files) = funded_keys(dir, nodes, extra);
    let allocations = keys.iter().map(|k| (k.public_key(), FUNDS)).collect();
    // One authority: every fee goes to node 1, so the other balances are exact.
    let devnet = write_devnet_nodes(dir, BLOCK_INTERVAL_MS, allocations, nodes, 1);
    let processes: Vec<NodeProcess> = devnet.manifests.iter().map(|m| NodeProcess::start(m)).collect();
    if nodes > 1 {
        wait_until(WAIT, "peers to connect", || processes.iter().all(|n| n.status().peers >= 1));
    }
    (processes, keys, files)
}

fn token(node: &NodeProcess) -> String {
    let data = node_data_dir(node);
    std::fs::read_to_string(data.join("api.token")).unwrap().trim().to_string()
}

fn node_data_dir(node: &NodeProcess) -> PathBuf {
    node.manifest().parent().expect("node dir").join("data")
}

/// Evaluates Lua on `node` (a fresh console session); the first value, or the error text.
fn lua(node: &NodeProcess, code: &str) -> Result<Value, String> {
    eval_at(&node.url, &token(node), code)
}

fn eval_at(url: &str, token: &str, code: &str) -> Result<Value, String> {
    let response = ureq::post(&format!("{url}/v1/admin/eval"))
        .set("authorization", &format!("Bearer {token}"))
        .send_json(json!({ "code": code }));
    match response {
        Ok(response) => {
            let body: Value = response.into_json().unwrap();
            // A binding that succeeds returns its one value, no trailing nil the console would print.
            let values = body["values"].as_array().cloned().unwrap_or_default();
            assert!(values.len() <= 1 || values[1..].iter().any(|v| !v.is_null()), "{code}: stray nil in {values:?}");
            Ok(values.first().cloned().unwrap_or(Value::Null))
        }
        Err(ureq::Error::Status(_, response)) => {
            let body: Value = response.into_json().unwrap_or_default();
            Err(body["error"].as_str().unwrap_or_default().to_string())
        }
        Err(other) => panic!("eval: {other}"),
    }
}

fn lua_ok(node: &NodeProcess, code: &str) -> Value {
    lua(node, code).unwrap_or_else(|error| panic!("{code}: {error}\nlog:\n{}", node.log_text()))
}

fn lua_err(node: &NodeProcess, code: &str) -> String {
    match lua(node, code) {
        Ok(value) => panic!("{code}: expected an error, got {value}"),
        Err(error) => error,
    }
}

fn account(node: &NodeProcess, key: &PublicKey) -> AccountView {
    node.client().get(&format!("/v1/chains/main/accounts/{key}")).expect("account")
}

fn get(node: &NodeProcess, path: &str) -> Value {
    node.client().get(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn locks(node: &NodeProcess) -> Vec<Value> {
    get(node, "/v1/chains/main/market/locks").as_array().cloned().unwrap_or_default()
}

fn lock_on(node: &NodeProcess, id: &str) -> Option<Value> {
    locks(node).into_iter().find(|lock| lock["id"] == id)
}

/// Waits until `id`'s lock on `node` satisfies `check` (`None`: the lock is gone).
fn wait_lock(node: &NodeProcess, id: &str, what: &str, check: impl Fn(Option<&Value>) -> bool) {
    wait_until(WAIT, what, || check(lock_on(node, id).as_ref()));
}

/// Waits until `key`'s committed nonce reaches `nonce` on every node: its transactions landed.
fn wait_nonce(nodes: &[&NodeProcess], key: &PublicKey, nonce: u64) {
    wait_until(WAIT, "the transactions to commit", || nodes.iter().all(|n| account(n, key).nonce >= nonce));
}

fn quoted(text: &str) -> String {
    format!("{text:?}")
}

#[test]
fn two_nodes_meter_wifi_with_the_surge_strategy_and_agree_on_balances() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, keys, _) = devnet(dir.path(), 2, 0);
    let (a, b) = (&nodes[0], &nodes[1]);
    let (provider, buyer) = (keys[0].public_key(), keys[1].public_key());
    let surge = workspace_root().join("scripts/pricing/surge.lua").display().to_string();

    let installed = lua_ok(a, &format!("return market('wifi'):strategy({})", quoted(&surge)));
    assert_eq!(installed["version"], 1);
    let quote = lua_ok(a, "return market('wifi'):quote{units = 1, utilization = 0.75, policy = 'market-metering'}");
    assert_eq!(quote["unit_price"], 250, "surge at 75 % utilization: {quote}");
    let chart = lua_ok(a, "return market('wifi'):chart{points = 5}");
    assert!(chart.as_str().unwrap().contains("100.0% |########################################| 400"), "{chart}");
    // Node B's buying policy starts looking before anything is for sale.
    let buying = {
        let (url, token) = (b.url.clone(), token(b));
        let code = "return market.buy{resource = 'network', units = 600, max_unit_price = 150, max_total = 100000, wait_ms = 20000}";
        std::thread::spawn(move || eval_at(&url, &token, code))
    };
    std::thread::sleep(Duration::from_millis(500));
    lua_ok(
        a,
        "return market('wifi'):shelve{policy = 'market-metering', resource = 'network', unit = 's', units = 3600, deadline_ms = 5000, location = 'lab'}",
    );
    wait_until(WAIT, "the SKU on node B", || {
        get(b, "/v1/chains/main/market/skus").as_array().is_some_and(|s| !s.is_empty())
    });
    let sku = get(b, "/v1/chains/main/market/skus/wifi");
    assert_eq!(sku["record"]["terms"]["unit_price"], 100, "shelved at the strategy's price: {sku}");

    let bought = buying.join().unwrap().unwrap_or_else(|error| panic!("buying policy: {error}"));
    let lock = bought["lock"].as_str().unwrap().to_string();
    assert_eq!((bought["sku"].as_str(), bought["price"].as_u64()), (Some("wifi"), Some(60_000)));
    wait_lock(a, &lock, "the lock on node A", |l| l.is_some());
    assert_eq!(get(b, "/v1/chains/main/market/demands").as_array().map(Vec::len), Some(1), "the buyer's demand");

    wait_lock(b, &lock, "the lock on node B", |l| l.is_some());
    let watcher = {
        let (url, token) = (b.url.clone(), token(b));
        std::thread::spawn(move || eval_at(&url, &token, "return watch{type = 'market', count = 1}"))
    };
    std::thread::sleep(Duration::from_millis(500));
    lua_ok(a, &format!("return market.report({}, 240)", quoted(&lock)));
    wait_lock(b, &lock, "the usage report on node B", |l| l.is_some_and(|l| !l["reported"].is_null()));
    assert_eq!(watcher.join().unwrap(), Ok(json!(1)), "node B's watch saw node A's committed report");
    lua_ok(b, &format!("return market.confirm({})", quoted(&lock)));
    wait_lock(a, &lock, "the confirmation on node A", |l| l.is_some_and(|l| l["confirmed"] == true));
    lua_ok(a, &format!("return market.settle({})", quoted(&lock)));
    wait_lock(a, &lock, "the settlement on node A", |l| l.is_none());
    wait_lock(b, &lock, "the settlement on node B", |l| l.is_none());
    wait_nonce(&[a, b], &provider, 3);

    // The buyer paid 240 s at 100 µNEST and three fees; node 1 also proposes every block.
    let buyer_fees = 3 * MARKET_FEE;
    for node in [a, b] {
        assert_eq!(account(node, &buyer).balance, FUNDS - 24_000 - buyer_fees);
        assert_eq!(account(node, &provider).balance, FUNDS + 24_000 + buyer_fees);
    }
    let heights: Vec<u64> = [a, b].iter().map(|n| n.main_chain().height).collect();
    let height = *heights.iter().min().unwrap();
    let digest =
        |n: &NodeProcess| get(n, &format!("/v1/chains/main/blocks/{height}?txs=hashes"))["state_digest"].clone();
    assert_eq!(digest(a), digest(b), "same state on both nodes at height {height}");
}

#[test]
fn price_tag_auction_and_cpp_flows_settle_and_refund_on_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, keys, files) = devnet(dir.path(), 1, 3);
    let node = &nodes[0];
    let provider = keys[0].public_key();
    let as_buyer = |index: usize| format!("from_key_file = {}", quoted(&files[index].display().to_string()));
    lua_ok(node, "return market('spot'):strategy('return function(ctx) return 300 end')");

    // Price tag: pay the marked price on delivery.
    lua_ok(node, "return market('spot'):shelve{policy = 'market-price-tag', resource = 'parking', units = 4}");
    wait_nonce(&[node], &provider, 1);
    let lock = lua_ok(node, &format!("return market('spot'):lock{{units = 2, max_price = 600, {}}}", as_buyer(0)));
    let lock = lock.as_str().unwrap().to_string();
    wait_lock(node, &lock, "the price-tag lock", |l| l.is_some_and(|l| l["escrow"] == 600));
    lua_ok(node, &format!("return market.report({}, 2)", quoted(&lock)));
    wait_lock(node, &lock, "the delivery report", |l| l.is_some_and(|l| !l["reported"].is_null()));
    lua_ok(node, &format!("return market.settle({})", quoted(&lock)));
    wait_lock(node, &lock, "the price-tag settlement", |l| l.is_none());
    assert_eq!(account(node, &keys[1].public_key()).balance, FUNDS - 600 - MARKET_FEE);

    // Auction: three sealed bids, a reserve; the winner pays the second price.
    let round_end_ms = now_ms() + 4_000;
    lua_ok(node, "return market('lot'):strategy('return function(ctx) return 100 end')");
    lua_ok(
        node,
        &format!(
            "return market('lot'):shelve{{policy = 'market-auction', resource = 'slot', units = 1, round_end_ms = {round_end_ms}, reserve_price = 150}}"
        ),
    );
    wait_nonce(&[node], &provider, 4);
    for (buyer, bid) in [(0, 400), (1, 900), (2, 120)] {
        lua_ok(node, &format!("return market('lot'):bid{{units = 1, max_price = {bid}, {}}}", as_buyer(buyer)));
    }
    wait_until(WAIT, "three bids", || {
        get(node, "/v1/chains/main/market/skus/lot")["bids"].as_array().map(Vec::len) == Some(3)
    });
    let early = lua_err(node, "return market('lot'):close()");
    assert!(early.contains("open until"), "{early}");
    wait_until(WAIT, "the round to end", || now_ms() > round_end_ms + 2 * BLOCK_INTERVAL_MS);
    let late = lua_err(node, &format!("return market('lot'):bid{{units = 1, max_price = 5000, {}}}", as_buyer(0)));
    assert!(late.contains("closed at"), "{late}");
    lua_ok(node, "return market('lot'):close()");
    wait_until(WAIT, "the auction to clear", || {
        get(node, "/v1/chains/main/market/skus/lot")["bids"].as_array().map(Vec::len) == Some(0)
    });
    let book = get(node, "/v1/chains/main/market/skus/lot");
    let won = &book["locks"][0];
    assert_eq!(
        (won["escrow"].as_u64(), won["buyer"].as_str()),
        (Some(400), Some(keys[2].public_key().to_hex().as_str())),
        "{book}"
    );
    let loser = account(node, &keys[3].public_key());
    assert_eq!(loser.balance, FUNDS - MARKET_FEE, "the bid under the reserve is refunded");

    // Cost per purchase: confirmation pays; an unconfirmed lock is refunded after its deadline.
    lua_ok(node, "return market('feed'):strategy('return function(ctx) return 700 end')");
    lua_ok(
        node,
        "return market('feed'):shelve{policy = 'market-cpp', resource = 'data', units = 10, deadline_ms = 2000}",
    );
    wait_nonce(&[node], &provider, 6);
    let paid = lua_ok(node, &format!("return market('feed'):lock{{units = 1, max_price = 700, {}}}", as_buyer(2)));
    let paid = paid.as_str().unwrap().to_string();
    wait_lock(node, &paid, "the cpp lock", |l| l.is_some());
    lua_ok(node, &format!("return market.confirm({}, 0, {{{}}})", quoted(&paid), as_buyer(2)));
    wait_lock(node, &paid, "the cpp confirmation", |l| l.is_some_and(|l| l["confirmed"] == true));
    lua_ok(node, &format!("return market.settle({})", quoted(&paid)));
    wait_lock(node, &paid, "the cpp settlement", |l| l.is_none());
    let unpaid = lua_ok(node, &format!("return market('feed'):lock{{units = 1, max_price = 700, {}}}", as_buyer(2)));
    let unpaid = unpaid.as_str().unwrap().to_string();
    wait_lock(node, &unpaid, "the second cpp lock", |l| l.is_some());
    let too_soon = lua_err(node, &format!("return market.refund({}, 0, {{{}}})", quoted(&unpaid), as_buyer(2)));
    assert!(too_soon.contains("no refund"), "{too_soon}");
    std::thread::sleep(Duration::from_millis(2_500));
    lua_ok(node, &format!("return market.refund({}, 0, {{{}}})", quoted(&unpaid), as_buyer(2)));
    wait_lock(node, &unpaid, "the cpp refund", |l| l.is_none());
}

#[test]
fn a_strategy_replaced_live_keeps_the_market_running_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, _, _) = devnet(dir.path(), 1, 0);
    let node = nodes.pop().unwrap();
    lua_ok(&node, "return market('wifi'):strategy('return function(ctx) return 10 end')");
    lua_ok(&node, "return market('wifi'):shelve{policy = 'market-metering', units = 100}");
    wait_until(WAIT, "the SKU", || get(&node, "/v1/chains/main/market/skus").as_array().is_some_and(|s| !s.is_empty()));
    assert_eq!(lua_ok(&node, "return market('wifi'):quote{units = 5}")["price"], 50);

    let watcher = {
        let (url, token) = (node.url.clone(), token(&node));
        std::thread::spawn(move || eval_at(&url, &token, "return watch{type = 'market', count = 1}"))
    };
    std::thread::sleep(Duration::from_millis(500));
    let replaced = lua_ok(&node, "return market('wifi'):strategy(function(ctx)\n  return 20 + ctx.units\nend)");
    assert_eq!(replaced["version"], 2);
    assert_eq!(watcher.join().unwrap(), Ok(json!(1)), "watch saw the market event");
    assert_eq!(lua_ok(&node, "return market('wifi'):quote{units = 5}")["unit_price"], 25);

    let broken = lua_err(&node, "return market('wifi'):strategy(function(ctx) return 'cheap' end)");
    assert!(broken.contains("returned a string, expected a number"), "{broken}");
    let looping = lua_err(&node, "return market('wifi'):strategy(function(ctx) while true do end end)");
    assert!(looping.contains("budget"), "{looping}");
    assert_eq!(lua_ok(&node, "return market('wifi'):quote{units = 5}")["unit_price"], 25, "still version 2");

    let manifest = node_manifest(&node);
    assert!(node.stop(), "clean stop");
    let node = NodeProcess::start(&manifest);
    let versions = lua_ok(&node, "return market('wifi'):versions()");
    let rows = versions.as_array().cloned().unwrap_or_default();
    let active: Vec<(u64, bool)> =
        rows.iter().map(|r| (r["version"].as_u64().unwrap_or(0), r["active"] == true)).collect();
    assert_eq!(active, [(1, false), (2, true)], "{versions}");
    let source = lua_ok(&node, "return market('wifi'):source(2)");
    assert!(source.as_str().is_some_and(|s| s.starts_with("return function")), "{source}");
    assert_eq!(lua_ok(&node, "return market('wifi'):quote{units = 5}")["unit_price"], 25);
    lua_ok(&node, "return market('wifi'):rollback(1)");
    assert_eq!(lua_ok(&node, "return market('wifi'):quote{units = 5}")["unit_price"], 10);

    // Without the policy its SKU uses, the node refuses to run the chain.
    assert!(node.stop(), "clean stop");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let without = text.replace("[[market]]\nid = \"metering\"\nplugin = \"metering\"\n", "");
    assert_ne!(text, without, "the devnet manifest has a metering market");
    std::fs::write(&manifest, without).unwrap();
    let output =
        std::process::Command::new(nest_tests::node::nestd_binary()).arg("run").arg(&manifest).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("uses market policy market-metering, which this node does not load"), "{stderr}");
}

#[test]
fn bad_market_input_is_refused_with_its_reason_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, keys, files) = devnet(dir.path(), 1, 2);
    let node = &nodes[0];
    let as_buyer = |index: usize| format!("from_key_file = {}", quoted(&files[index].display().to_string()));
    lua_ok(node, "return market('wifi'):shelve{policy = 'market-metering', units = 100, unit_price = 5}");
    wait_nonce(&[node], &keys[0].public_key(), 1);

    let unknown = lua_err(node, "return market('nope'):lock{units = 1, max_price = 10}");
    assert!(unknown.contains("unknown SKU \"nope\""), "{unknown}");
    let too_low = lua_err(node, &format!("return market('wifi'):lock{{units = 100, max_price = 1, {}}}", as_buyer(0)));
    assert!(too_low.contains("above the order's maximum"), "{too_low}");
    lua_ok(
        node,
        "return market('big'):shelve{policy = 'market-price-tag', units = 10, unit_price = 4611686018427387904}",
    );
    wait_nonce(&[node], &keys[0].public_key(), 2);
    let overflow = lua_err(
        node,
        &format!("return market('big'):lock{{units = 4, max_price = 9223372036854775807, {}}}", as_buyer(0)),
    );
    assert!(overflow.contains("overflow"), "{overflow}");
    let negative = lua_err(node, "return market('wifi'):lock{units = -1, max_price = 10}");
    assert_eq!(negative, "console:1: market(\"wifi\"):lock: units must not be negative, got -1");
    let policy = lua_err(node, "return market('x'):shelve{policy = 'market-nope', units = 1, unit_price = 1}");
    assert!(policy.contains("market policy market-nope is not loaded"), "{policy}");

    let lock = lua_ok(node, &format!("return market('wifi'):lock{{units = 10, max_price = 50, {}}}", as_buyer(0)));
    let lock = lock.as_str().unwrap().to_string();
    wait_lock(node, &lock, "the lock", |l| l.is_some());
    let stranger = lua_err(node, &format!("return market.settle({}, 0, {{{}}})", quoted(&lock), as_buyer(1)));
    assert!(stranger.contains("only its provider or buyer"), "{stranger}");
    lua_ok(node, &format!("return market.report({}, 4)", quoted(&lock)));
    wait_lock(node, &lock, "the report", |l| l.is_some_and(|l| !l["reported"].is_null()));
    lua_ok(node, &format!("return market.confirm({}, 0, {{{}}})", quoted(&lock), as_buyer(0)));
    wait_lock(node, &lock, "the confirmation", |l| l.is_some_and(|l| l["confirmed"] == true));
    lua_ok(node, &format!("return market.settle({})", quoted(&lock)));
    wait_lock(node, &lock, "the settlement", |l| l.is_none());
    let twice = lua_err(node, &format!("return market.settle({})", quoted(&lock)));
    assert!(twice.contains("no open lock"), "{twice}");

    // Over HTTP, a malformed context names the field.
    let response = ureq::post(&format!("{}/v1/market/quote/wifi", node.url)).send_json(json!({ "units": -3 }));
    let Err(ureq::Error::Status(code, _)) = response else { panic!("a negative unit count must be refused") };
    assert!((400..500).contains(&code), "{code}");
    assert_eq!(account(node, &keys[1].public_key()).balance, FUNDS - 20 - 2 * MARKET_FEE, "buyer paid 4 units");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn node_manifest(node: &NodeProcess) -> PathBuf {
    node.manifest().to_path_buf()
}
