//! Real `nestd run` processes on consensus-dpos: four nodes start with genesis's
//! delegates; four accounts register the nodes' keys as delegates, stake and vote; the
//! ledger elects a round from those votes, and `GET /v1/chains/main/dpos/rounds/{n}`
//! gives what anyone needs to recompute it: the seed from a block hash, the elected
//! delegates with their votes, and the order, ascending by `sha256(seed ‖ node key)`.
//! Every block of the round is proposed by the delegate whose turn it was, and every
//! node holds the same blocks.

use nest_host::{
    api::SubmitAnswer,
    crypto::{SecretKey, sha256},
    devnet::Consensus,
    ledger::{
        staking::StakingTx,
        tx::{TxBody, UnsignedTx, gas_of},
    },
    wallet,
};
use nest_sdk::PublicKey;
use nest_tests::node::{NodeProcess, wait_until, write_devnet_engine};
use serde_json::Value;
use std::{path::Path, time::Duration};

const DELEGATES: usize = 4;
const BLOCK_INTERVAL_MS: u64 = 300;
const FUNDS: u64 = 1_000_000;

fn node_key(manifest: &Path) -> PublicKey {
    let path = manifest.parent().expect("node directory").join("node.key");
    SecretKey::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).public_key()
}

fn key_of(value: &Value) -> PublicKey {
    PublicKey::from_hex(value.as_str().expect("a key")).expect("hex key")
}

/// `account` registers `node_key` as its delegate, stakes `stake` and votes for itself.
fn become_delegate(node: &NodeProcess, account: &SecretKey, node_key: PublicKey, stake: u64) {
    let (chain, _) = wallet::chain_terms(&node.client(), "main").unwrap();
    let bodies = [
        StakingTx::RegisterDelegate { node_key, name: format!("delegate-{}", &node_key.to_string()[..8]) },
        StakingTx::Stake { amount: stake },
        StakingTx::Vote { delegates: vec![account.public_key()] },
    ];
    let txs: Vec<String> = bodies
        .into_iter()
        .enumerate()
        .map(|(nonce, body)| {
            let body = TxBody::Staking(body);
            let fee = gas_of(&body);
            let tx = UnsignedTx { chain, from: account.public_key(), nonce: nonce as u64, fee, body };
            hex::encode(tx.sign(account).encode())
        })
        .collect();
    let answer: SubmitAnswer = node.client().post("/v1/chains/main/txs", &serde_json::json!({ "txs": txs })).unwrap();
    assert_eq!(answer.accepted, 3, "{answer:?}");
}

fn round(node: &NodeProcess, round: u64) -> Option<Value> {
    node.client().get(&format!("/v1/chains/main/dpos/rounds/{round}")).ok()
}

/// The first round with a seed: the first elected from the registered delegates.
fn first_elected_round(node: &NodeProcess) -> Value {
    let mut elected = None;
    wait_until(Duration::from_secs(60), "a round elected from staked votes", || {
        let last = node.main_chain().height / DELEGATES as u64 + 2;
        elected = (1..=last).filter_map(|n| round(node, n)).find(|view| !view["seed"].is_null());
        elected.is_some()
    });
    elected.expect("an elected round")
}

/// A round's slot order.
fn order_of(view: &Value) -> Vec<PublicKey> {
    view["order"].as_array().expect("an order").iter().map(key_of).collect()
}

fn block(node: &NodeProcess, height: u64) -> Value {
    node.client().get(&format!("/v1/chains/main/blocks/{height}?txs=hashes")).unwrap()
}

#[test]
fn delegates_elected_by_staked_votes_take_their_turns_in_an_order_anyone_can_recompute() {
    let dir = tempfile::tempdir().unwrap();
    let accounts: Vec<SecretKey> = (1..=DELEGATES as u8).map(|seed| SecretKey::from_seed([seed; 32])).collect();
    let allocations = accounts.iter().map(|account| (account.public_key(), FUNDS)).collect();
    let devnet = write_devnet_engine(dir.path(), Consensus::Dpos, BLOCK_INTERVAL_MS, allocations, DELEGATES, DELEGATES);
    let nodes: Vec<NodeProcess> = devnet.manifests.iter().map(|manifest| NodeProcess::start(manifest)).collect();
    let keys: Vec<PublicKey> = devnet.manifests.iter().map(|manifest| node_key(manifest)).collect();
    wait_until(Duration::from_secs(30), "the first blocks", || nodes[0].main_chain().height >= 2);
    let genesis_round = round(&nodes[0], 0).expect("round 0");
    assert_eq!(genesis_round["seed"], Value::Null, "round 0 is genesis's order");
    assert_eq!(genesis_round["delegates_per_round"], DELEGATES);

    for (index, account) in accounts.iter().enumerate() {
        become_delegate(&nodes[0], account, keys[index], 1_000 * (index as u64 + 1));
    }
    let elected = first_elected_round(&nodes[0]);
    let number = elected["round"].as_u64().unwrap();

    // The seed: sha256("nest/dpos/round/v1" ‖ round (u64 BE) ‖ hash of the seed block).
    let seed_block = block(&nodes[0], elected["seed_block"].as_u64().unwrap());
    let seed_block_hash = hex::decode(seed_block["hash"].as_str().unwrap()).unwrap();
    let seed = sha256(&[b"nest/dpos/round/v1".as_slice(), &number.to_be_bytes(), &seed_block_hash].concat());
    assert_eq!(elected["seed"], serde_json::to_value(seed).unwrap());
    // The delegates, most votes first, with the stake that voted for them.
    let votes: Vec<(PublicKey, u64)> = elected["delegates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|delegate| (key_of(&delegate["node_key"]), delegate["votes"].as_u64().unwrap()))
        .collect();
    let expected: Vec<(PublicKey, u64)> = (0..DELEGATES).rev().map(|i| (keys[i], 1_000 * (i as u64 + 1))).collect();
    assert_eq!(votes, expected);
    // The order: ascending by sha256(seed ‖ node key).
    let mut recomputed: Vec<PublicKey> = keys.clone();
    recomputed.sort_by_key(|key| sha256(&[seed.0.as_slice(), &key.0].concat()).0);
    let order = order_of(&elected);
    assert_eq!(order, recomputed);

    // Each height of the round is proposed by the delegate at its turn: position
    // (h − 1 + agreement round) mod N of the order.
    let last_height = elected["last_height"].as_u64().unwrap();
    wait_until(Duration::from_secs(60), "the elected round to be final", || {
        nodes.iter().all(|node| node.main_chain().height >= last_height)
    });
    for height in elected["first_height"].as_u64().unwrap()..=last_height {
        let view = block(&nodes[0], height);
        assert_eq!(view["round"], number, "block {height}");
        let agreement_round = view["commit"]["round"].as_u64().expect("a commit certificate");
        assert_eq!(view["commit"]["valid"], true, "block {height}: {}", view["commit"]);
        let turn = ((height - 1 + agreement_round) % DELEGATES as u64) as usize;
        assert_eq!(key_of(&view["proposer"]), order[turn], "block {height}");
        for other in &nodes[1..] {
            assert_eq!(block(other, height)["hash"], view["hash"], "block {height} on every node");
        }
    }
    // The console reads the same round.
    let code = format!("return dpos.round({number}).seed");
    let (status, stdout, stderr) = nest_tests::devices::console(&devnet.manifests[0], &code);
    assert_eq!((status, stdout.trim()), (0, elected["seed"].as_str().unwrap()), "{stderr}");
    // A round not chosen yet, and a chain that is not DPoS, are named as such.
    let error = nodes[0].client().get::<Value>("/v1/chains/main/dpos/rounds/1000000").unwrap_err();
    assert!(error.contains("not chosen yet"), "{error}");
}

/// A delegate that is down misses its turns: each height whose first turn was its own
/// is decided in a later agreement round, proposed by the next delegate in the order,
/// and the chain goes on.
#[test]
fn a_delegate_that_is_down_is_skipped_at_its_turns_and_the_chain_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = write_devnet_engine(dir.path(), Consensus::Dpos, BLOCK_INTERVAL_MS, Vec::new(), DELEGATES, DELEGATES);
    let mut nodes: Vec<NodeProcess> = devnet.manifests.iter().map(|manifest| NodeProcess::start(manifest)).collect();
    wait_until(Duration::from_secs(30), "the first blocks", || nodes[0].main_chain().height >= 2);
    let order = order_of(&round(&nodes[0], 0).expect("round 0"));
    let down = node_key(&devnet.manifests[DELEGATES - 1]);
    nodes.pop().expect("the last node").kill9();
    let killed_at = nodes[0].main_chain().height;
    let until = killed_at + 3 * DELEGATES as u64;
    wait_until(Duration::from_secs(90), "three more rounds without the delegate", || {
        nodes.iter().all(|node| node.main_chain().height >= until)
    });
    let mut skipped = 0;
    for height in killed_at + 2..=until {
        let view = block(&nodes[0], height);
        let agreement_round = view["commit"]["round"].as_u64().expect("a commit certificate");
        let proposer = key_of(&view["proposer"]);
        assert_ne!(proposer, down, "block {height} was proposed by the delegate that is down");
        let turn = ((height - 1 + agreement_round) % DELEGATES as u64) as usize;
        assert_eq!(proposer, order[turn], "block {height}: the proposer of agreement round {agreement_round}");
        if order[((height - 1) % DELEGATES as u64) as usize] == down {
            assert!(agreement_round >= 1, "block {height}: its first turn was the missing delegate's");
            skipped += 1;
        }
    }
    assert!(skipped >= 2, "the missing delegate's turns came up: {skipped}");
}

/// A fifth node, no delegate at genesis, registers and gets more votes than one of the
/// four: from the round elected after that, it proposes at its turns and the delegate
/// it displaced proposes no more.
#[test]
fn a_fifth_node_registers_gets_votes_and_proposes_in_a_later_round() {
    let dir = tempfile::tempdir().unwrap();
    let accounts: Vec<SecretKey> = (1..=5u8).map(|seed| SecretKey::from_seed([seed; 32])).collect();
    let allocations = accounts.iter().map(|account| (account.public_key(), FUNDS)).collect();
    let devnet = write_devnet_engine(dir.path(), Consensus::Dpos, BLOCK_INTERVAL_MS, allocations, 5, DELEGATES);
    let nodes: Vec<NodeProcess> = devnet.manifests.iter().map(|manifest| NodeProcess::start(manifest)).collect();
    let keys: Vec<PublicKey> = devnet.manifests.iter().map(|manifest| node_key(manifest)).collect();
    wait_until(Duration::from_secs(30), "the first blocks", || nodes[4].main_chain().height >= 2);
    let genesis_order = order_of(&round(&nodes[0], 0).expect("round 0"));
    assert!(!genesis_order.contains(&keys[4]), "the fifth node is no delegate at genesis");
    // Node 4's delegate gets the least stake: the fifth takes its seat.
    for (index, stake) in [5_000, 4_000, 3_000, 1_000, 6_000].into_iter().enumerate() {
        become_delegate(&nodes[0], &accounts[index], keys[index], stake);
    }
    let elected = first_elected_round(&nodes[0]);
    let order = order_of(&elected);
    assert!(order.contains(&keys[4]) && !order.contains(&keys[3]), "order {order:?}");
    let (first, last) = (elected["first_height"].as_u64().unwrap(), elected["last_height"].as_u64().unwrap());
    wait_until(Duration::from_secs(60), "the elected round to be final", || nodes[4].main_chain().height >= last);
    let proposers: Vec<PublicKey> =
        (first..=last).map(|height| key_of(&block(&nodes[4], height)["proposer"])).collect();
    assert!(proposers.contains(&keys[4]), "the fifth node proposed in its round: {proposers:?}");
    assert!(!proposers.contains(&keys[3]), "the displaced delegate proposed: {proposers:?}");
}

/// Proof-of-i/o on real nodes: every node attests liveness and answers its storage
/// challenge from its own store each round. The third node keeps only its two newest
/// blocks (`keep_blocks = 2`): the challenged block is usually gone from its store, and
/// those rounds earn it no storage reward. The fourth says it keeps no history
/// (`[chain.prove] storage = false`): it earns for its uptime and the blocks it
/// proposes, never for storage, and less than a storing node that proposed as much.
/// What the API shows as minted is what the settled rounds paid, within the cap.
#[test]
fn proof_of_io_pays_proven_contributions_and_no_storage_reward_to_a_node_that_keeps_none() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = write_devnet_engine(dir.path(), Consensus::Dpos, BLOCK_INTERVAL_MS, Vec::new(), DELEGATES, DELEGATES);
    let pruning = &devnet.manifests[DELEGATES - 2];
    let text =
        std::fs::read_to_string(pruning).unwrap().replacen("id = \"main\"\n", "id = \"main\"\nkeep_blocks = 2\n", 1);
    assert!(text.contains("keep_blocks = 2"));
    std::fs::write(pruning, text).unwrap();
    let keeper_of_nothing = &devnet.manifests[DELEGATES - 1];
    let mut text = std::fs::read_to_string(keeper_of_nothing).unwrap();
    text.push_str("\n[chain.prove]\nstorage = false\n");
    std::fs::write(keeper_of_nothing, text).unwrap();
    let (pruner, no_storage) = (node_key(pruning), node_key(keeper_of_nothing));
    let nodes: Vec<NodeProcess> = devnet.manifests.iter().map(|manifest| NodeProcess::start(manifest)).collect();
    // Round 1's attestations are the first transactions, so round 2 is the first with a
    // storage challenge; it is settled by the first block of round 4.
    let settled = |round: u64| -> Option<Value> {
        let view: Value = nodes[0].client().get(&format!("/v1/chains/main/poio/rounds/{round}")).ok()?;
        (!view["settled"].is_null()).then(|| view["settled"].clone())
    };
    wait_until(Duration::from_secs(90), "rounds 2 to 7 settled", || settled(7).is_some());
    let mut pruner_answered = 0;
    let mut compared = 0;
    for round in 2..=7 {
        let rewards = settled(round).expect("settled")["rewards"].as_array().cloned().unwrap_or_default();
        let of = |node: &PublicKey| rewards.iter().find(|r| key_of(&r["node"]) == *node).cloned();
        let lacking = of(&no_storage).unwrap_or_else(|| panic!("round {round}: no reward for the fourth node"));
        assert_eq!(lacking["contribution"]["storage_bytes"], 0, "round {round}: {lacking}");
        assert_eq!(lacking["contribution"]["alive"], true, "round {round}: {lacking}");
        let pruned = of(&pruner).unwrap_or_else(|| panic!("round {round}: no reward for the pruning node"));
        if pruned["contribution"]["storage_bytes"].as_u64() > Some(0) {
            pruner_answered += 1;
        }
        for manifest in &devnet.manifests[..DELEGATES - 2] {
            let reward = of(&node_key(manifest)).unwrap_or_else(|| panic!("round {round}: a node unpaid: {rewards:?}"));
            let contribution = &reward["contribution"];
            assert!(contribution["storage_bytes"].as_u64() > Some(0), "round {round}: {reward}");
            assert_eq!(contribution["alive"], true, "round {round}: {reward}");
            if contribution["txs_verified"].as_u64() <= lacking["contribution"]["txs_verified"].as_u64() {
                assert!(reward["amount"].as_u64() > lacking["amount"].as_u64(), "round {round}: {reward} vs {lacking}");
                compared += 1;
            }
        }
    }
    assert!(compared > 0, "no round had a storing node that proposed no more than the fourth");
    // The challenge draws among every earlier block with transactions; the pruning node
    // holds the last two, so it answers about one round in six here, not six of six.
    assert!(pruner_answered <= 3, "the pruning node answered {pruner_answered} of 6 challenges");
    let log = nodes[DELEGATES - 2].log_text();
    assert!(log.contains("is not in this node's store"), "the pruning node never missed a challenged block");
    let gone = nodes[DELEGATES - 2].client().get::<Value>("/v1/chains/main/blocks/1").unwrap_err();
    assert!(gone.contains("no block at height 1"), "{gone}");
    let poio: Value = nodes[0].client().get("/v1/chains/main/poio").unwrap();
    let (height, issued) = (poio["height"].as_u64().unwrap(), poio["issued"].as_u64().unwrap());
    assert!(issued <= poio["params"]["cap"].as_u64().unwrap(), "{poio}");
    let paid: u64 = (0..=height / DELEGATES as u64)
        .filter_map(settled)
        .filter(|round| round["settled_at"].as_u64() <= Some(height))
        .flat_map(|round| round["rewards"].as_array().cloned().unwrap_or_default())
        .map(|reward| reward["amount"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(paid, issued, "minted as the API shows it at height {height}");

    // Three of the four delegates (floor(2·4/3) + 1) approve new weights from their
    // consoles; the weights change once the third approval is committed.
    let code =
        "return dpos.weights{uptime_per_minute = 7, per_tx_verified = 8, storage_per_mib = 9, from = \"node\"}.status";
    for manifest in &devnet.manifests[..3] {
        // The node's own proofs take nonces too: a refusal for a nonce race is retried.
        let mut answered = String::new();
        for _ in 0..5 {
            let (status, stdout, stderr) = nest_tests::devices::console(manifest, code);
            answered = format!("{status} {stdout} {stderr}");
            if status == 0 && stdout.trim() == "accepted" {
                break;
            }
            std::thread::sleep(Duration::from_millis(BLOCK_INTERVAL_MS));
        }
        assert!(answered.starts_with("0 accepted"), "{answered}");
    }
    wait_until(Duration::from_secs(30), "the approved weights in force", || {
        let poio: Value = nodes[0].client().get("/v1/chains/main/poio").unwrap();
        poio["params"]["weights"]
            == serde_json::json!({"uptime_per_minute": 7, "per_tx_verified": 8, "storage_per_mib": 9})
    });
    let (status, stdout, stderr) = nest_tests::devices::console(&devnet.manifests[0], "return dpos.rewards().issued");
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.trim().parse::<u64>().unwrap() >= issued, "{stdout}");
}
