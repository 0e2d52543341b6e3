//! Several `nestd` processes on 127.0.0.1 form one chain over libp2p: they agree on
//! every block, carry transfers to every node, survive a SIGKILL, and a late node with
//! an empty data directory syncs the whole chain.

use nest_host::{
    api::SubmitAnswer,
    crypto::SecretKey,
    ledger::tx::{TxBody, UnsignedTx},
    node::AccountView,
    wallet,
};
use nest_sdk::PublicKey;
use nest_tests::node::{NodeProcess, wait_until, write_devnet_nodes};
use std::time::Duration;

const BLOCK_INTERVAL_MS: u64 = 300;

fn start_all(manifests: &[std::path::PathBuf]) -> Vec<NodeProcess> {
    manifests.iter().map(|manifest| NodeProcess::start(manifest)).collect()
}

/// The (hash, state digest) of block `height` on `node`.
fn block_at(node: &NodeProcess, height: u64) -> Option<(String, String)> {
    let block: serde_json::Value = node.client().get(&format!("/v1/chains/main/blocks/{height}?txs=hashes")).ok()?;
    Some((block["hash"].as_str()?.to_string(), block["state_digest"].as_str()?.to_string()))
}

/// Waits until every node has committed `height` and all agree on that block.
fn agree_at(nodes: &[NodeProcess], height: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !nodes.iter().all(|node| node.main_chain().height >= height) {
        if std::time::Instant::now() > deadline {
            let heights: Vec<u64> = nodes.iter().map(|node| node.main_chain().height).collect();
            let Some(lagging) = heights.iter().position(|h| *h < height).map(|index| &nodes[index]) else {
                break;
            };
            let log = lagging.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "nodes did not reach height {height}: heights {heights:?}; a lagging node's log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let blocks: Vec<_> = nodes.iter().map(|node| block_at(node, height)).collect();
    assert!(
        blocks.windows(2).all(|pair| pair[0] == pair[1] && pair[0].is_some()),
        "block {height} differs: {blocks:?}"
    );
}

fn account(node: &NodeProcess, key: &PublicKey) -> AccountView {
    node.client().get(&format!("/v1/chains/main/accounts/{key}")).expect("account")
}

#[test]
fn four_nodes_agree_on_blocks_and_carry_transfers_to_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = write_devnet_nodes(dir.path(), BLOCK_INTERVAL_MS, Vec::new(), 4, 4);
    let nodes = start_all(&devnet.manifests);
    wait_until(Duration::from_secs(30), "peers to connect", || nodes.iter().all(|n| n.status().peers >= 1));
    agree_at(&nodes, 8);

    let faucet = SecretKey::read(&devnet.faucet_key).unwrap();
    let bob = SecretKey::from_seed([42; 32]).public_key();
    let (chain, fee) = wallet::chain_terms(&nodes[0].client(), "main").unwrap();
    let tx =
        UnsignedTx { chain, from: faucet.public_key(), nonce: 0, fee, body: TxBody::Transfer { to: bob, amount: 77 } }
            .sign(&faucet);
    let answer: SubmitAnswer =
        nodes[0].client().post("/v1/chains/main/txs", &serde_json::json!({ "tx": hex::encode(tx.encode()) })).unwrap();
    assert_eq!(answer.accepted, 1, "{answer:?}");
    wait_until(Duration::from_secs(60), "the transfer on every node", || {
        nodes.iter().all(|node| account(node, &bob).balance == 77)
    });
    let height = nodes.iter().map(|n| n.main_chain().height).min().unwrap();
    agree_at(&nodes, height);
}

#[test]
fn a_killed_node_even_the_first_leaves_the_others_producing_and_catches_up_when_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = write_devnet_nodes(dir.path(), BLOCK_INTERVAL_MS, Vec::new(), 4, 4);
    let mut nodes = start_all(&devnet.manifests);
    agree_at(&nodes, 4);
    let killed = nodes.remove(0).kill9();
    let before = nodes[0].main_chain().height;
    wait_until(Duration::from_secs(60), "the other three to go on", || {
        nodes.iter().all(|node| node.main_chain().height >= before + 6)
    });
    let restarted = NodeProcess::start(&killed);
    let target = nodes[0].main_chain().height;
    nodes.insert(0, restarted);
    agree_at(&nodes, target + 2);
}

#[test]
fn a_late_node_with_an_empty_data_directory_syncs_the_chain_and_follows() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = write_devnet_nodes(dir.path(), BLOCK_INTERVAL_MS, Vec::new(), 5, 4);
    let mut nodes = start_all(&devnet.manifests[..4]);
    agree_at(&nodes, 20);
    let late_store = devnet.manifests[4].parent().unwrap().join("data/store");
    assert!(!late_store.exists(), "the late node starts with an empty data directory");
    let late = NodeProcess::start(&devnet.manifests[4]);
    let target = nodes[0].main_chain().height;
    nodes.push(late);
    agree_at(&nodes, target);
    agree_at(&nodes, target + 3);
}

/// Waits until the node's network counters satisfy `condition`.
fn network_counters(node: &NodeProcess, what: &str, condition: impl Fn(&nest_host::net::NetStats) -> bool) {
    wait_until(Duration::from_secs(30), what, || node.status().network.as_ref().is_some_and(&condition));
}

#[test]
fn a_hostile_peer_sending_garbage_forged_and_oversized_gossip_is_counted_and_the_node_stays_healthy() {
    use nest_host::net::{Net, NetworkSection, Topic};
    let dir = tempfile::tempdir().unwrap();
    let devnet = write_devnet_nodes(dir.path(), BLOCK_INTERVAL_MS, Vec::new(), 2, 2);
    let nodes = start_all(&devnet.manifests);
    agree_at(&nodes, 3);
    let target = &nodes[0];
    let p2p = std::fs::read_to_string(devnet.manifests[0].parent().unwrap().join("data/p2p.addr")).unwrap();
    let genesis = target.main_chain().genesis_hash;

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let section = NetworkSection {
        bootstrap: vec![p2p.lines().next().unwrap().to_string()],
        message_bytes_max: 8 * 1024 * 1024,
        ..NetworkSection::default()
    };
    let hostile_key = SecretKey::from_seed([66; 32]);
    let (hostile, _events) = runtime
        .block_on(async { tokio::spawn(async move { Net::start(&section, &hostile_key) }).await.unwrap() })
        .unwrap();
    hostile.subscribe("main", &genesis).unwrap();
    wait_until(Duration::from_secs(20), "the hostile peer to connect", || !hostile.peers().is_empty());
    std::thread::sleep(Duration::from_millis(1500));

    let before = target.status().network.unwrap_or_default();
    hostile.publish("main", Topic::Consensus, b"not a consensus message".to_vec()).unwrap();
    hostile.publish("main", Topic::Txs, b"not a transaction batch".to_vec()).unwrap();
    let faucet = SecretKey::read(&devnet.faucet_key).unwrap();
    let mut forged = UnsignedTx {
        chain: genesis,
        from: faucet.public_key(),
        nonce: 0,
        fee: 1_000,
        body: TxBody::Transfer { to: PublicKey([5; 32]), amount: 1 },
    }
    .sign(&faucet);
    forged.signature.0[0] ^= 1;
    hostile.publish("main", Topic::Txs, nest_sdk::borsh::to_vec(&vec![forged.encode()]).unwrap()).unwrap();
    hostile.publish("main", Topic::Consensus, vec![7u8; 4 * 1024 * 1024 + 1024]).unwrap();

    network_counters(target, "the garbage and forged messages to be rejected", |stats| {
        stats.messages_rejected >= before.messages_rejected + 3
    });
    network_counters(target, "the oversized message to be counted", |stats| {
        stats.messages_oversized > before.messages_oversized
    });
    let forged_status: Result<serde_json::Value, _> =
        target.client().get(&format!("/v1/chains/main/txs/{}", forged.hash()));
    assert!(forged_status.is_err(), "the forged transfer never entered the mempool");
    let height = target.main_chain().height;
    agree_at(&nodes, height + 3);
    hostile.shutdown();
}

/// The libp2p peer id of a devnet node, from its `data/p2p.addr`.
fn peer_id(manifest: &std::path::Path) -> String {
    let text = std::fs::read_to_string(manifest.parent().unwrap().join("data/p2p.addr")).unwrap();
    text.lines().next().unwrap().rsplit("/p2p/").next().unwrap().to_string()
}

/// Blocks or unblocks `peer` on `node` through the admin API.
fn set_blocked(node: &NodeProcess, manifest: &std::path::Path, peer: &str, blocked: bool) {
    let token = std::fs::read_to_string(manifest.parent().unwrap().join("data/api.token")).unwrap();
    let action = if blocked { "block" } else { "unblock" };
    let url = format!("{}/v1/admin/peers/{peer}/{action}", node.url);
    ureq::post(&url)
        .set("authorization", &format!("Bearer {}", token.trim()))
        .call()
        .unwrap_or_else(|e| panic!("{url}: {e}"));
}

#[test]
fn a_partition_finalizes_nothing_and_heals_into_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = write_devnet_nodes(dir.path(), BLOCK_INTERVAL_MS, Vec::new(), 4, 4);
    let nodes = start_all(&devnet.manifests);
    agree_at(&nodes, 3);
    let ids: Vec<String> = devnet.manifests.iter().map(|m| peer_id(m)).collect();
    let (left, right) = ([0usize, 1], [2usize, 3]);
    let split = |blocked: bool| {
        for a in left {
            for b in right {
                set_blocked(&nodes[a], &devnet.manifests[a], &ids[b], blocked);
                set_blocked(&nodes[b], &devnet.manifests[b], &ids[a], blocked);
            }
        }
    };
    split(true);
    wait_until(Duration::from_secs(20), "each side to see only itself", || nodes.iter().all(|n| n.status().peers == 1));
    std::thread::sleep(Duration::from_millis(BLOCK_INTERVAL_MS * 12));
    let during: Vec<u64> = nodes.iter().map(|n| n.main_chain().height).collect();
    // Units agreed before the split may still become final; nothing built after it can,
    // as two authorities of four never reach the three distinct proposers finality needs.
    std::thread::sleep(Duration::from_millis(BLOCK_INTERVAL_MS * 8));
    let later: Vec<u64> = nodes.iter().map(|n| n.main_chain().height).collect();
    assert_eq!(during, later, "a side of two authorities finalized during the partition");
    split(false);
    wait_until(Duration::from_secs(30), "the sides to reconnect", || nodes.iter().all(|n| n.status().peers == 3));
    let healed = later.iter().max().unwrap() + 6;
    agree_at(&nodes, healed);
    for height in 1..=healed {
        agree_at(&nodes, height);
    }
}

/// Rewrites a manifest's bootstrap list to the first entry only.
fn bootstrap_to_first_only(manifest: &std::path::Path) {
    let text = std::fs::read_to_string(manifest).unwrap();
    let rewritten: Vec<String> = text
        .lines()
        .map(|line| match line.strip_prefix("bootstrap = [") {
            Some(list) => format!("bootstrap = [{}]", list.trim_end_matches(']').split(", ").next().unwrap_or("")),
            None => line.to_string(),
        })
        .collect();
    std::fs::write(manifest, rewritten.join("\n")).unwrap();
}

#[test]
fn nodes_that_know_only_the_first_node_find_each_other_through_the_dht() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = write_devnet_nodes(dir.path(), BLOCK_INTERVAL_MS, Vec::new(), 4, 4);
    for manifest in &devnet.manifests[2..] {
        bootstrap_to_first_only(manifest);
    }
    let text = std::fs::read_to_string(&devnet.manifests[3]).unwrap();
    assert_eq!(text.lines().find(|l| l.starts_with("bootstrap")).unwrap().matches("/p2p/").count(), 1);
    let nodes = start_all(&devnet.manifests);
    // Node 3 and node 4 are told only of node 1; each finds the other two peers itself.
    wait_until(Duration::from_secs(60), "every node connected to the three others", || {
        nodes.iter().all(|node| node.status().peers == 3)
    });
    agree_at(&nodes, 4);
}
