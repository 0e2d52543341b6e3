//! A node runs from a manifest: it produces blocks, applies transfers and rejects bad
//! ones with their reasons, restarts after SIGKILL at the same height and state digest,
//! and keeps serving its API when a plugin panics.

use nest_host::{
    api::SubmitAnswer,
    crypto::SecretKey,
    ledger::tx::{SignedTx, TxBody, UnsignedTx},
    node::AccountView,
    wallet,
};
use nest_sdk::{Hash32, PublicKey};
use nest_tests::{
    CONSENSUS_PANIC, PluginCrate,
    node::{NodeProcess, wait_until, write_devnet},
    pack_crate, vendor_key,
};
use std::time::Duration;

const CHAIN_LINEAR: PluginCrate = PluginCrate { dir: "plugins/chain-linear", lib_name: "chain_linear" };

fn transfer(from: &SecretKey, chain: Hash32, nonce: u64, to: PublicKey, amount: u64, fee: u64) -> SignedTx {
    UnsignedTx { chain, from: from.public_key(), nonce, fee, body: TxBody::Transfer { to, amount } }.sign(from)
}

fn submit(node: &NodeProcess, txs: &[SignedTx]) -> SubmitAnswer {
    let body = serde_json::json!({ "txs": txs.iter().map(|tx| hex::encode(tx.encode())).collect::<Vec<_>>() });
    node.client().post("/v1/chains/main/txs", &body).expect("submit")
}

fn account(node: &NodeProcess, key: &PublicKey) -> AccountView {
    node.client().get(&format!("/v1/chains/main/accounts/{key}")).expect("account")
}

#[test]
fn node_produces_blocks_and_applies_transfers_with_reasons_for_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob, poor) =
        (SecretKey::from_seed([1; 32]), SecretKey::from_seed([2; 32]), SecretKey::from_seed([3; 32]));
    let devnet = write_devnet(dir.path(), 200, vec![(alice.public_key(), 1_000_000), (poor.public_key(), 500)]);
    let node = NodeProcess::start(&devnet.manifest);
    wait_until(Duration::from_secs(15), "three blocks", || node.main_chain().height >= 3);

    let (chain, fee) = wallet::chain_terms(&node.client(), "main").unwrap();
    let first = transfer(&alice, chain, 0, bob.public_key(), 1_000, fee);
    let second = transfer(&alice, chain, 1, bob.public_key(), 2_000, fee);
    let mut forged = transfer(&alice, chain, 2, bob.public_key(), 5, fee);
    forged.signature.0[0] ^= 1;
    let gap = transfer(&alice, chain, 7, bob.public_key(), 5, fee);
    let broke = transfer(&poor, chain, 0, bob.public_key(), 10_000, fee);
    let cheap = transfer(&poor, chain, 0, bob.public_key(), 1, 0);
    let answer = submit(&node, &[first.clone(), second.clone(), forged, gap, broke, cheap]);

    let outcome: Vec<(&str, Option<&str>)> =
        answer.results.iter().map(|r| (r.status.as_str(), r.reason.as_deref())).collect();
    assert_eq!(outcome[0], ("accepted", None));
    assert_eq!(outcome[1], ("accepted", None));
    assert_eq!(outcome[2], ("rejected", Some("bad signature")));
    assert_eq!(outcome[3], ("rejected", Some("wrong nonce: expected 2, got 7")));
    assert_eq!(
        outcome[4],
        (
            "rejected",
            Some(format!("insufficient balance: has 500, needs {} (amount 10000 + fee {fee})", 10_000 + fee).as_str())
        )
    );
    assert_eq!(outcome[5], ("rejected", Some(format!("fee too low: minimum {fee}, got 0").as_str())));
    assert_eq!((answer.accepted, answer.rejected), (2, 4));

    let (height, _) = wallet::wait_committed(&node.client(), "main", &second, Duration::from_secs(15)).unwrap();
    let alice_now = account(&node, &alice.public_key());
    assert_eq!((alice_now.balance, alice_now.nonce), (1_000_000 - 3_000 - 2 * fee, 2));
    let bob_now = account(&node, &bob.public_key());
    assert_eq!((bob_now.balance, bob_now.nonce), (3_000, 0));
    let proposer = account(&node, &node.status().public_key);
    assert_eq!(proposer.balance, 2 * fee, "fees go to the block's proposer");

    let block: serde_json::Value = node.client().get(&format!("/v1/chains/main/blocks/{height}")).unwrap();
    let hashes: Vec<&str> = block["txs"].as_array().unwrap().iter().map(|t| t["hash"].as_str().unwrap()).collect();
    assert!(hashes.contains(&second.hash().to_hex().as_str()), "block {height} holds the transfer: {block}");
    wait_until(Duration::from_secs(10), "more blocks", || node.main_chain().height > height + 2);
}

#[test]
fn node_killed_with_sigkill_restarts_at_its_committed_height_and_state_digest() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (SecretKey::from_seed([4; 32]), SecretKey::from_seed([5; 32]));
    let devnet = write_devnet(dir.path(), 100, vec![(alice.public_key(), 1_000_000_000)]);
    let mut node = NodeProcess::start(&devnet.manifest);
    let (chain, fee) = wallet::chain_terms(&node.client(), "main").unwrap();
    for round in 0..4u64 {
        let next = account(&node, &alice.public_key()).next_nonce;
        let txs: Vec<SignedTx> =
            (0..50).map(|i| transfer(&alice, chain, next + i, bob.public_key(), 1 + round, fee)).collect();
        assert_eq!(submit(&node, &txs).accepted, 50);
        std::thread::sleep(Duration::from_millis(120 + 97 * round));
        let before = node.main_chain();
        let manifest = node.kill9();
        node = NodeProcess::start(&manifest);
        let after = node.main_chain();
        assert!(after.height >= before.height, "round {round}: restarted at {} below {}", after.height, before.height);
        let block: serde_json::Value = node.client().get(&format!("/v1/chains/main/blocks/{}", before.height)).unwrap();
        assert_eq!(
            block["hash"].as_str().unwrap(),
            before.head_hash.to_hex(),
            "round {round}: block {} changed",
            before.height
        );
        assert_eq!(
            block["state_digest"].as_str().unwrap(),
            before.state_digest.to_hex(),
            "round {round}: state digest changed"
        );
    }
    let accounts = [alice.public_key(), bob.public_key(), node.status().public_key];
    let total: u64 = accounts.iter().map(|key| account(&node, key).balance).sum();
    assert_eq!(
        total, 1_000_000_000,
        "tokens are conserved across crashes: alice's funds are with alice, bob or the proposer"
    );
    assert_eq!(account(&node, &faucet(&devnet)).balance, nest_host::devnet::FAUCET_BALANCE);
    wait_until(Duration::from_secs(10), "blocks after the last restart", || node.main_chain().height > 3);
}

fn faucet(devnet: &nest_host::devnet::Devnet) -> PublicKey {
    SecretKey::read(&devnet.faucet_key).unwrap().public_key()
}

fn panic_manifest(dir: &std::path::Path, panic_after_ticks: u64) -> std::path::PathBuf {
    let vendor = vendor_key(11);
    pack_crate(CONSENSUS_PANIC, &dir.join("panic"), &vendor);
    pack_crate(CHAIN_LINEAR, &dir.join("linear"), &vendor);
    let node_key = SecretKey::generate().unwrap();
    node_key.write(&dir.join("node.key")).unwrap();
    let manifest = dir.join("manifest.toml");
    let text = format!(
        r#"
[node]
name = "panicky"
data_dir = "data"
key = "node.key"

[api]
listen = "127.0.0.1:0"

[[trust.vendor]]
name = "tests"
key = "{vendor}"

[[plugin]]
id = "panic"
package = "panic"

[[plugin]]
id = "linear"
package = "linear"

[[chain]]
id = "main"
chain_type = {{ plugin = "linear" }}
consensus = {{ plugin = "panic", config = {{ panic_after_ticks = {panic_after_ticks} }} }}
genesis = {{ allocations = [] }}
"#,
        vendor = vendor.public_key()
    );
    std::fs::write(&manifest, text).unwrap();
    manifest
}

#[test]
fn consensus_plugin_that_panics_is_disabled_while_the_node_keeps_serving_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::start(&panic_manifest(dir.path(), 3));
    wait_until(Duration::from_secs(15), "the consensus plugin to be disabled", || {
        node.main_chain().plugins.consensus.state == "disabled"
    });
    let consensus = node.main_chain().plugins.consensus;
    assert!(consensus.reason.as_deref().unwrap_or_default().contains("fixture panic after 3 ticks"), "{consensus:?}");
    assert_eq!(node.main_chain().plugins.chain_type.state, "running");
    for _ in 0..5 {
        assert_eq!(node.status().name, "panicky");
        std::thread::sleep(Duration::from_millis(100));
    }
    let genesis: serde_json::Value = node.client().get("/v1/chains/main/blocks/0").unwrap();
    assert_eq!(genesis["height"], 0);
    assert!(node.is_alive(), "the node process survived the plugin's panic");
    assert!(node.log_text().contains("plugin disabled"), "the log reports the disabled plugin");
    assert!(node.stop(), "the node stops cleanly on SIGTERM");
}

/// Sends a raw request; returns the status code and the body's `error` text.
fn raw(node: &NodeProcess, method: &str, path: &str, body: &str) -> (u16, String) {
    let url = format!("{}{path}", node.url);
    let response = match method {
        "POST" => ureq::post(&url).set("content-type", "application/json").send_string(body),
        _ => ureq::get(&url).call(),
    };
    match response {
        Ok(ok) => (ok.status(), String::new()),
        Err(ureq::Error::Status(code, answer)) => {
            let value: serde_json::Value = answer.into_json().unwrap_or_default();
            (code, value["error"].as_str().unwrap_or_default().to_string())
        }
        Err(other) => panic!("{url}: {other}"),
    }
}

#[test]
fn api_rejects_bad_requests_with_clear_errors_and_keeps_producing_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = write_devnet(dir.path(), 200, Vec::new());
    let node = NodeProcess::start(&devnet.manifest);
    let cases = [
        ("POST", "/v1/chains/main/txs", "not json", 400, "body: expected ident"),
        ("POST", "/v1/chains/main/txs", r#"{"txs": []}"#, 400, "give \"tx\""),
        ("POST", "/v1/chains/main/txs", r#"{"tx": 5}"#, 400, "body: invalid type"),
        ("POST", "/v1/chains/main/txs", r#"{"tx": "aa", "extra": 1}"#, 400, "unknown field `extra`"),
        ("POST", "/v1/chains/nope/txs", &format!(r#"{{"tx": "{}"}}"#, "00".repeat(200)), 200, ""),
        ("GET", "/v1/chains/main/blocks/minus-one", "", 400, "height must be a non-negative integer"),
        ("GET", "/v1/chains/main/blocks/1?txs=some", "", 400, "txs must be \"full\" or \"hashes\""),
        ("GET", "/v1/chains/nope/blocks/0", "", 404, "no chain \"nope\" on this node"),
        ("GET", "/v1/chains/main/blocks/999999", "", 404, "has no block at height 999999"),
        ("GET", "/v1/chains/main/accounts/xyz", "", 400, "account: must be 64 hex characters, got 3"),
        ("GET", "/v1/chains/main/txs/00", "", 400, "transaction hash: must be 64 hex characters, got 2"),
    ];
    for (method, path, body, status, error) in cases {
        let (got_status, got_error) = raw(&node, method, path, body);
        assert_eq!(got_status, status, "{method} {path} {body}: {got_error}");
        assert!(got_error.contains(error), "{method} {path}: {got_error:?} lacks {error:?}");
    }
    let garbage = node
        .client()
        .post::<SubmitAnswer>("/v1/chains/main/txs", &serde_json::json!({ "txs": ["zz", "00ff"] }))
        .unwrap();
    assert_eq!(garbage.rejected, 2);
    assert_eq!(garbage.results[0].code.as_deref(), Some("malformed"));
    assert!(garbage.results[0].reason.as_deref().unwrap().contains("not hex"));
    assert!(declared_oversized_body_status(&node).starts_with("HTTP/1.1 413"), "a body over body_bytes_max is refused");
    let height = node.main_chain().height;
    wait_until(Duration::from_secs(10), "blocks after bad input", || node.main_chain().height > height + 2);
}

/// Declares a body over the 16 MiB limit and waits for the answer before sending it.
fn declared_oversized_body_status(node: &NodeProcess) -> String {
    use std::io::{BufRead, BufReader, Write};
    let address = node.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let length = 20 * 1024 * 1024;
    let request = format!(
        "POST /v1/chains/main/txs HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {length}\r\nexpect: 100-continue\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut status = String::new();
    BufReader::new(stream).read_line(&mut status).unwrap();
    status
}
