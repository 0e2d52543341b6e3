//! Real `nestd run` processes on the BFT engine under crash faults: SIGKILL one of four
//! validators and the other three go on deciding the same blocks; kill two and the chain
//! stops without forking, then resumes when one comes back from its data directory; a
//! late fifth node, no validator, syncs the chain from an empty data directory. Every
//! certificate read through the block API is checked against the genesis validators.
//!
//! The tests take a lock so that their processes do not share two cores with each
//! other: 300 ms heights leave little slack for a starved node.

use consensus_bft::{CommitCertificate, ValidatorSet, check_certificate};
use nest_host::{crypto::SecretKey, devnet::Consensus};
use nest_sdk::{PublicKey, Validator, testing::LocalHost};
use nest_tests::node::{NodeProcess, write_devnet_engine};
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

const BLOCK_INTERVAL_MS: u64 = 300;
const VALIDATORS: usize = 4;
/// How long the validators may take to start and decide the first heights.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long live nodes may take to decide a few more heights after a fault.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(30);

/// One test at a time (see the crate comment).
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A BFT devnet whose nodes can be killed and restarted one by one. Slot `i` holds node
/// `i + 1`; a killed node's slot is empty. Dropping it kills every live node.
struct Devnet {
    manifests: Vec<PathBuf>,
    nodes: Vec<Option<NodeProcess>>,
    keys: Vec<PublicKey>,
    _dir: tempfile::TempDir,
}

impl Devnet {
    /// Writes `nodes` nodes, the first [`VALIDATORS`] of them validators, and starts the
    /// first `started`.
    fn start(nodes: usize, started: usize) -> Devnet {
        let dir = tempfile::tempdir().expect("tempdir");
        let devnet = write_devnet_engine(dir.path(), Consensus::Bft, BLOCK_INTERVAL_MS, Vec::new(), nodes, VALIDATORS);
        let keys = devnet.manifests.iter().map(|manifest| node_key(manifest)).collect();
        let mut net = Devnet { manifests: devnet.manifests, nodes: Vec::new(), keys, _dir: dir };
        net.nodes = (0..nodes).map(|_| None).collect();
        for index in 0..started {
            net.restart(index);
        }
        net
    }

    /// Starts node `index` from whatever its data directory holds.
    fn restart(&mut self, index: usize) {
        assert!(self.nodes[index].is_none(), "node {} already runs", index + 1);
        self.nodes[index] = Some(NodeProcess::start(&self.manifests[index]));
    }

    /// SIGKILLs node `index`.
    fn kill(&mut self, index: usize) {
        let node = self.nodes[index].take().unwrap_or_else(|| panic!("node {} is not running", index + 1));
        node.kill9();
    }

    fn node(&self, index: usize) -> &NodeProcess {
        self.nodes[index].as_ref().unwrap_or_else(|| panic!("node {} is not running", index + 1))
    }

    /// Indices of the running nodes.
    fn live(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|index| self.nodes[*index].is_some()).collect()
    }

    fn height(&self, index: usize) -> u64 {
        self.node(index).main_chain().height
    }

    fn heights(&self, indices: &[usize]) -> Vec<u64> {
        indices.iter().map(|index| self.height(*index)).collect()
    }

    /// The genesis validator set, as the engine builds it.
    fn validator_set(&self) -> ValidatorSet {
        let members: Vec<Validator> =
            self.keys[..VALIDATORS].iter().map(|key| Validator { key: *key, power: 1 }).collect();
        ValidatorSet::new(1, &members).expect("genesis validator set")
    }

    /// The end of each of `indices`' logs, for a failure message.
    fn log_tails(&self, indices: &[usize]) -> String {
        let mut text = String::new();
        for index in indices {
            let log = self.node(*index).log_text();
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            text.push_str(&format!("node-{} log ends:\n{}\n", index + 1, tail.join("\n")));
        }
        text
    }

    /// Waits until every node of `indices` has committed `height`.
    fn wait_for_height(&self, indices: &[usize], height: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let heights = self.heights(indices);
            if heights.iter().all(|h| *h >= height) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "nodes {:?} did not reach height {height} within {timeout:?}: heights {heights:?}\n{}",
                    one_based(indices),
                    self.log_tails(indices)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Asserts that the nodes of `indices` hold the same block at every height from 1 to
    /// `up_to`, each with a certificate that checks against the genesis validators and
    /// names the same decided value; returns each height's certificate (of the first
    /// node).
    fn assert_agree(&self, indices: &[usize], up_to: u64) -> Vec<CommitCertificate> {
        let set = self.validator_set();
        let mut certificates = Vec::new();
        for height in 1..=up_to {
            let blocks: Vec<(String, String)> = indices
                .iter()
                .map(|index| {
                    let block = block(self.node(*index), height)
                        .unwrap_or_else(|| panic!("node-{} serves no block {height}", index + 1));
                    (text(&block, "hash"), text(&block, "state_digest"))
                })
                .collect();
            assert!(
                blocks.windows(2).all(|pair| pair[0] == pair[1]),
                "nodes {:?} disagree on block {height}: {blocks:?}",
                one_based(indices)
            );
            let decided: Vec<CommitCertificate> =
                indices.iter().map(|index| checked_certificate(self.node(*index), *index, height, &set)).collect();
            assert!(
                decided.windows(2).all(|pair| pair[0].value == pair[1].value),
                "nodes {:?} hold certificates of different values at height {height}: {decided:?}",
                one_based(indices)
            );
            certificates.push(decided.into_iter().next().expect("at least one node"));
        }
        certificates
    }

    /// Asserts that no live node reported evidence (an honest key never signs twice).
    fn assert_no_evidence(&self) {
        for index in self.live() {
            let evidence = self.node(index).main_chain().evidence;
            assert!(evidence.is_empty(), "node-{} reports evidence: {evidence:?}", index + 1);
        }
    }

    /// How many signatures node `index`'s engine checked that were verified off the loop,
    /// and how many it verified on the loop.
    fn signature_checks(&self, index: usize) -> (f64, f64) {
        let node = self.node(index);
        let count = |place: &str| {
            node.metric(&format!("nest_consensus_signatures_verified_total{{where=\"{place}\"}}")).unwrap_or(0.0)
        };
        (count("off_loop"), count("on_loop"))
    }

    /// The validators that signed `certificate`, as node numbers (node-1 is 1).
    fn signers(&self, certificate: &CommitCertificate) -> BTreeSet<usize> {
        let number = |key: &PublicKey| 1 + self.keys.iter().position(|k| k == key).expect("a devnet key");
        certificate.signatures.iter().map(|(key, _)| number(key)).collect()
    }
}

fn one_based(indices: &[usize]) -> Vec<usize> {
    indices.iter().map(|index| index + 1).collect()
}

fn node_key(manifest: &Path) -> PublicKey {
    let path = manifest.parent().expect("node directory").join("node.key");
    SecretKey::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).public_key()
}

/// Block `height` as the node's API serves it; `None` when it does not hold it.
fn block(node: &NodeProcess, height: u64) -> Option<serde_json::Value> {
    node.client().get(&format!("/v1/chains/main/blocks/{height}?txs=hashes")).ok()
}

fn text(block: &serde_json::Value, field: &str) -> String {
    let value = block[field].as_str().unwrap_or_default();
    assert!(!value.is_empty(), "block without {field}: {block}");
    value.to_string()
}

/// The certificate of block `height` on `node`: present, decodable, for that height, and
/// holding precommits of more than two thirds of `set`'s power that verify.
fn checked_certificate(node: &NodeProcess, index: usize, height: u64, set: &ValidatorSet) -> CommitCertificate {
    let block = block(node, height).unwrap_or_else(|| panic!("node-{} serves no block {height}", index + 1));
    let encoded = block["certificate"].as_str().unwrap_or_default();
    assert!(!encoded.is_empty(), "block {height} on node-{} carries no certificate: {block}", index + 1);
    let bytes = hex::decode(encoded).unwrap_or_else(|e| panic!("certificate of block {height}: {e}"));
    let certificate: CommitCertificate = nest_sdk::borsh::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("certificate of block {height} on node-{} does not decode: {e}", index + 1));
    let host = LocalHost::from_seed([0; 32]).host();
    check_certificate(&host, set, height, &certificate)
        .unwrap_or_else(|e| panic!("certificate of block {height} on node-{}: {e:?}", index + 1));
    certificate
}

#[test]
fn one_validator_of_four_killed_leaves_three_that_decide_the_same_blocks() {
    let _serial = serial();
    let started = Instant::now();
    let mut net = Devnet::start(VALIDATORS, VALIDATORS);
    net.wait_for_height(&net.live(), 3, START_TIMEOUT);
    let ready = started.elapsed();

    net.kill(0);
    let survivors = net.live();
    let at_kill = *net.heights(&survivors).iter().max().expect("survivors");
    let killed_at = Instant::now();
    net.wait_for_height(&survivors, at_kill + 5, PROGRESS_TIMEOUT);
    let progressed = killed_at.elapsed();

    let common = *net.heights(&survivors).iter().min().expect("survivors");
    let certificates = net.assert_agree(&survivors, common);
    // A height the killed validator may have precommitted before it died is at most
    // one above the survivors' heights then; every later decision is the survivors' own,
    // and three of four power-1 validators are exactly the quorum.
    for certificate in certificates.iter().filter(|c| c.height > at_kill + 1) {
        let signers = net.signers(certificate);
        assert_eq!(signers, one_based(&survivors).into_iter().collect(), "height {} signers", certificate.height);
    }
    net.assert_no_evidence();
    let (off_loop, on_loop) = net.signature_checks(survivors[0]);
    assert!(off_loop > 0.0, "the survivors' engines find gossiped signatures verified before the loop");
    eprintln!(
        "started in {ready:?}; killed node-1 at height {at_kill}; five more heights in {progressed:?}; \
         survivors agree up to {common}; total {:?}; node-{} checked {off_loop} signatures verified off the \
         loop and verified {on_loop} on it",
        started.elapsed(),
        survivors[0] + 1
    );
}

#[test]
fn two_validators_of_four_killed_stop_the_chain_without_a_fork_until_one_restarts() {
    let _serial = serial();
    let started = Instant::now();
    let mut net = Devnet::start(VALIDATORS, VALIDATORS);
    net.wait_for_height(&net.live(), 3, START_TIMEOUT);

    net.kill(1);
    net.kill(3);
    let survivors = net.live();
    // A height whose precommits were on the way may still be decided.
    std::thread::sleep(Duration::from_millis(BLOCK_INTERVAL_MS * 5));
    let stopped = net.heights(&survivors);
    // Long enough for several rounds: each waits 2 intervals for its proposal and 1 for
    // each vote step, half an interval more per round.
    std::thread::sleep(Duration::from_millis(BLOCK_INTERVAL_MS * 15));
    let later = net.heights(&survivors);
    assert_eq!(stopped, later, "two validators of four went on deciding\n{}", net.log_tails(&survivors));
    for index in &survivors {
        assert!(net.nodes[*index].as_mut().expect("survivor").is_alive(), "node-{} died", index + 1);
    }
    let common = *stopped.iter().min().expect("survivors");
    net.assert_agree(&survivors, common);
    let top = *stopped.iter().max().expect("survivors");

    let restarted_at = Instant::now();
    net.restart(3);
    let live = net.live();
    net.wait_for_height(&live, top + 5, PROGRESS_TIMEOUT);
    let resumed = restarted_at.elapsed();
    let common_after = *net.heights(&live).iter().min().expect("live nodes");
    let certificates = net.assert_agree(&live, common_after);
    for certificate in certificates.iter().filter(|c| c.height > top + 1) {
        let signers = net.signers(certificate);
        assert_eq!(signers, one_based(&live).into_iter().collect(), "height {} signers", certificate.height);
    }
    // The restarted validator restored what it had signed: it never signs twice.
    net.assert_no_evidence();
    eprintln!(
        "stopped at heights {stopped:?} (node-1, node-3); node-4 restarted, five more heights in {resumed:?}; \
         three nodes agree up to {common_after}; total {:?}",
        started.elapsed()
    );
}

#[test]
fn a_late_node_that_is_no_validator_syncs_certified_blocks_from_an_empty_data_directory() {
    let _serial = serial();
    let started = Instant::now();
    let late = VALIDATORS;
    let mut net = Devnet::start(VALIDATORS + 1, VALIDATORS);
    let validators = net.live();
    net.wait_for_height(&validators, 15, START_TIMEOUT);
    let store = net.manifests[late].parent().expect("node dir").join("data/store");
    assert!(!store.exists(), "the late node starts with an empty data directory");

    net.restart(late);
    let joined_at = Instant::now();
    let target = *net.heights(&validators).iter().max().expect("validators");
    net.wait_for_height(&[late], target, PROGRESS_TIMEOUT);
    let synced = joined_at.elapsed();
    // It follows, too: it decides nothing itself but takes every new height.
    net.wait_for_height(&[late], target + 3, PROGRESS_TIMEOUT);

    let everyone = net.live();
    let common = *net.heights(&everyone).iter().min().expect("nodes");
    let certificates = net.assert_agree(&everyone, common);
    let late_key = net.keys[late];
    for height in 1..=common {
        let certificate = checked_certificate(net.node(late), late, height, &net.validator_set());
        assert!(
            certificate.signatures.iter().all(|(key, _)| *key != late_key),
            "the late node, no validator, signs block {height}"
        );
    }
    assert_eq!(certificates.len() as u64, common);
    let chain = net.node(late).main_chain();
    assert_eq!(chain.plugins.consensus.state, "running", "{:?}", chain.plugins.consensus.reason);
    net.assert_no_evidence();
    eprintln!(
        "late node served its API and synced the {target} heights then decided in {synced:?}; five nodes agree \
         up to {common}; total {:?}",
        started.elapsed()
    );
}

/// A raw libp2p peer sends decided units with forged certificates — precommits of two of
/// the four validators (their real keys: not more than two thirds of the power) — for
/// the height the node is deciding: each is refused, counted as a rejected message, and
/// the chain goes on with no such unit.
#[test]
fn a_forged_certificate_from_a_raw_peer_is_refused_and_counted() {
    use consensus_bft::{Body, Envelope};
    use nest_host::net::{Net, NetworkSection, Topic};
    let _serial = serial();
    let net = Devnet::start(VALIDATORS, VALIDATORS);
    net.wait_for_height(&net.live(), 3, START_TIMEOUT);
    let target = net.node(0);
    let p2p = std::fs::read_to_string(net.manifests[0].parent().unwrap().join("data/p2p.addr")).unwrap();
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
    let deadline = Instant::now() + Duration::from_secs(20);
    while hostile.peers().is_empty() {
        assert!(Instant::now() < deadline, "the hostile peer did not connect");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));

    let signers: Vec<SecretKey> = net.manifests[..2]
        .iter()
        .map(|manifest| SecretKey::read(&manifest.parent().unwrap().join("node.key")).unwrap())
        .collect();
    let unit = b"a unit no validator decided".to_vec();
    let value = nest_host::crypto::sha256(&unit);
    let rejected_before = target.status().network.unwrap_or_default().messages_rejected;
    // The node decides a height every few hundred milliseconds: aim at the height it is
    // deciding, again and again.
    for attempt in 0..30u64 {
        let height = target.main_chain().height + 1;
        let signatures = signers
            .iter()
            .map(|key| (key.public_key(), key.sign(&nest_sdk::certificate::precommit_message(height, 0, &value))))
            .collect();
        let certificate = CommitCertificate { height, round: 0, value, signatures };
        let envelope = Envelope { sent_ms: attempt, body: Body::Decided { unit: unit.clone(), certificate } };
        hostile.publish("main", Topic::Consensus, nest_sdk::borsh::to_vec(&envelope).unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rejected = target.status().network.unwrap_or_default().messages_rejected;
        if rejected > rejected_before {
            break;
        }
        assert!(Instant::now() < deadline, "no forged certificate was counted as rejected");
        std::thread::sleep(Duration::from_millis(100));
    }
    let height = net.height(0);
    net.wait_for_height(&net.live(), height + 3, PROGRESS_TIMEOUT);
    let common = *net.heights(&net.live()).iter().min().expect("nodes");
    let certificates = net.assert_agree(&net.live(), common);
    assert!(certificates.iter().all(|certificate| certificate.value != value), "the forged unit was never decided");
    hostile.shutdown();
}
