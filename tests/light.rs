//! The light client against real nodes: it follows a PoA and a BFT devnet keeping headers
//! only, proves them with the chain's finality proofs against the validators named in a
//! node manifest, and checks a transfer's inclusion proof (`nestd light` exits 0). Behind
//! a proxy that serves one forged header — a changed field, or a finality proof with a
//! flipped bit — it refuses the header and keeps nothing of that batch.

use nest_host::{
    api::SubmitAnswer,
    crypto::SecretKey,
    devnet::Consensus,
    ledger::tx::{TxBody, UnsignedTx},
    wallet,
};
use nest_light::{LightClient, LightError, cli::LightOptions};
use nest_sdk::Hash32;
use nest_tests::node::{NodeProcess, nestd_binary, wait_until, write_devnet_engine};
use serde_json::Value;
use std::{
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    path::Path,
    process::Command,
    time::Duration,
};

const NODES: usize = 4;
const BLOCK_INTERVAL_MS: u64 = 300;

struct Net {
    nodes: Vec<NodeProcess>,
    manifest: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn devnet(consensus: Consensus, alice: &SecretKey) -> Net {
    let dir = tempfile::tempdir().unwrap();
    let allocations = vec![(alice.public_key(), 1_000_000)];
    let devnet = write_devnet_engine(dir.path(), consensus, BLOCK_INTERVAL_MS, allocations, NODES, NODES);
    let nodes: Vec<NodeProcess> = devnet.manifests.iter().map(|manifest| NodeProcess::start(manifest)).collect();
    wait_until(Duration::from_secs(30), "the first blocks", || nodes[0].main_chain().height >= 3);
    Net { nodes, manifest: devnet.manifests[0].clone(), _dir: dir }
}

fn url(node: &NodeProcess) -> String {
    node.url().to_string()
}

/// A transfer from `alice`, committed; its hash.
fn committed_transfer(node: &NodeProcess, alice: &SecretKey) -> Hash32 {
    let (chain, fee) = wallet::chain_terms(&node.client(), "main").unwrap();
    let body = TxBody::Transfer { to: SecretKey::from_seed([2; 32]).public_key(), amount: 7 };
    let tx = UnsignedTx { chain, from: alice.public_key(), nonce: 0, fee, body }.sign(alice);
    let body = serde_json::json!({ "tx": hex::encode(tx.encode()) });
    let answer: SubmitAnswer = node.client().post("/v1/chains/main/txs", &body).unwrap();
    let hash = answer.results[0].hash.expect("accepted");
    wait_until(Duration::from_secs(30), "the transfer committed", || {
        node.client().get::<Value>(&format!("/v1/chains/main/txs/{hash}/proof")).is_ok()
    });
    hash
}

fn options(url: &str, manifest: &Path) -> LightOptions {
    LightOptions {
        follow: url.to_string(),
        chain: "main".into(),
        manifest: manifest.to_path_buf(),
        genesis: None,
        tx: None,
        once: true,
        interval_ms: 100,
    }
}

/// Syncs until the client holds `height`.
fn synced_to(client: &mut LightClient, height: u64) {
    wait_until(Duration::from_secs(30), "the light client to hold the height", || {
        client.sync().expect("what an honest node serves holds") >= height
    });
}

fn follows_and_checks_a_transfer(consensus: Consensus) {
    let alice = SecretKey::from_seed([1; 32]);
    let net = devnet(consensus, &alice);
    let node = &net.nodes[0];
    let tx = committed_transfer(node, &alice);
    let options = options(&url(node), &net.manifest);
    let trust = nest_light::cli::trust_from_manifest(&options).unwrap();
    let genesis = node.main_chain().genesis_hash;
    let mut client = LightClient::new(&options.follow, "main", trust, Some(genesis));
    let proof: Value = node.client().get(&format!("/v1/chains/main/txs/{tx}/proof")).unwrap();
    let tx_height = proof["header"]["height"].as_u64().unwrap();
    synced_to(&mut client, tx_height);
    assert_eq!(client.headers()[0].hash, genesis);
    let inclusion = client.verify_tx(tx).expect("the transfer is included");
    assert_eq!(inclusion.height, tx_height);
    // A transaction the chain does not hold has no proof to check.
    assert!(client.verify_tx(Hash32([9; 32])).is_err());

    let output = Command::new(nestd_binary())
        .args(["light", "--follow", &options.follow, "--manifest", &net.manifest.display().to_string()])
        .args(["--genesis", &genesis.to_hex(), "--tx", &tx.to_hex()])
        .output()
        .expect("run nestd light");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("tx {tx} included: block {tx_height}")), "{text}");
}

#[test]
fn a_light_client_follows_a_poa_chain_and_checks_a_transfer() {
    follows_and_checks_a_transfer(Consensus::Poa);
}

#[test]
fn a_light_client_follows_a_bft_chain_and_checks_a_transfer() {
    follows_and_checks_a_transfer(Consensus::Bft);
}

/// A proxy in front of `upstream` that passes every request through, except that the
/// block views of `heights` go through `forge`. Serves until the test ends.
fn forging_proxy(upstream: String, heights: std::ops::RangeInclusive<u64>, forge: fn(&mut Value)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let forged = move |path: &str| {
        let height = path.strip_prefix("/v1/chains/main/blocks/").and_then(|rest| rest.strip_suffix("?txs=hashes"));
        height.and_then(|height| height.parse::<u64>().ok()).is_some_and(|height| heights.contains(&height))
    };
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
                line.clear();
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (code, mut body) = match ureq::get(&format!("{upstream}{path}")).call() {
                Ok(response) => (200, response.into_json::<Value>().unwrap_or_default()),
                Err(ureq::Error::Status(code, response)) => (code, response.into_json::<Value>().unwrap_or_default()),
                Err(_) => (502, Value::Null),
            };
            if forged(&path) {
                forge(&mut body);
            }
            let body = body.to_string();
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{address}")
}

fn refused_behind(net: &Net, heights: std::ops::RangeInclusive<u64>, forge: fn(&mut Value)) -> LightError {
    let node = &net.nodes[0];
    let proxy = forging_proxy(url(node), heights, forge);
    let trust = nest_light::cli::trust_from_manifest(&options(&proxy, &net.manifest)).unwrap();
    let mut client = LightClient::new(&proxy, "main", trust, None);
    let error = client.sync().expect_err("a forged header is refused");
    assert_eq!(client.height(), Some(0), "nothing of the batch is kept");
    let output = Command::new(nestd_binary())
        .args(["light", "--follow", &proxy, "--manifest", &net.manifest.display().to_string(), "--once"])
        .output()
        .expect("run nestd light");
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    error
}

#[test]
fn a_light_client_refuses_a_forged_header_and_a_forged_finality_proof() {
    let alice = SecretKey::from_seed([1; 32]);
    let net = devnet(Consensus::Poa, &alice);
    // Block 2 with another state digest under its old hash.
    let error = refused_behind(&net, 2..=2, |block| {
        block["state_digest"] = Value::String("ab".repeat(32));
    });
    assert!(matches!(error, LightError::Forged { height: 2, .. }), "{error}");
    // Every finality proof with its last byte (a signature's) flipped.
    let error = refused_behind(&net, 1..=u64::MAX, |block| {
        let Some(proof) = block["finality"].as_str().filter(|proof| !proof.is_empty()) else { return };
        let mut bytes = hex::decode(proof).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        block["finality"] = Value::String(hex::encode(bytes));
    });
    assert!(matches!(error, LightError::Unproven { .. }), "{error}");
}
