use super::*;
use nest_sdk::{PublicKey, RVec, testing::LocalHost};

fn chain_with(config: LinearConfig) -> LinearChain {
    LinearChain::new(config, LocalHost::from_seed([7; 32]).host()).expect("valid config")
}

/// A build request; the tx root stands in for the host's Merkle root (hash of all txs).
fn request(parent: Hash32, height: u64, timestamp_ms: u64, txs: &[&[u8]]) -> BuildRequest {
    BuildRequest {
        parent,
        height,
        timestamp_ms,
        proposer: PublicKey([9; 32]),
        tx_root: nest_sdk::testing::sha256(&txs.concat()),
        state_digest: Hash32([2; 32]),
        txs: txs.iter().map(|tx| RVec::from(tx.to_vec())).collect(),
    }
}

/// A started chain and its genesis unit.
fn started(config: LinearConfig) -> (LinearChain, UnitRef) {
    let mut chain = chain_with(config);
    let genesis = chain.build(request(Hash32::ZERO, 0, 0, &[])).expect("genesis");
    let genesis = chain.decode(&genesis).expect("decode genesis").to_ref();
    chain.start(genesis).expect("start");
    (chain, genesis)
}

/// Builds a unit on `parent` (height and time follow it) and returns its bytes and position.
fn child(chain: &mut LinearChain, parent: UnitRef, salt: &[u8]) -> (Vec<u8>, UnitRef) {
    let bytes =
        chain.build(request(parent.hash, parent.height + 1, parent.timestamp_ms + 1000, &[salt])).expect("build");
    let unit = chain.decode(&bytes).expect("decode").to_ref();
    (bytes, unit)
}

fn rejection(result: Result<impl std::fmt::Debug, PluginError>) -> String {
    match result {
        Err(PluginError::Rejected { message }) => message.into(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn heights(report: &InsertReport) -> Vec<u64> {
    report.finalized.iter().map(|unit| unit.height).collect()
}

#[test]
fn built_unit_decodes_to_the_request() {
    let (mut chain, genesis) = started(LinearConfig::default());
    let bytes = chain.build(request(genesis.hash, 1, 5, &[b"tx-a", b"tx-b"])).expect("build");
    let view = chain.decode(&bytes).expect("decode");
    assert_eq!(view.parent, genesis.hash);
    assert_eq!((view.height, view.timestamp_ms), (1, 5));
    assert_eq!(view.proposer, PublicKey([9; 32]));
    assert_eq!(view.tx_root, nest_sdk::testing::sha256(b"tx-atx-b"));
    assert_eq!(view.state_digest, Hash32([2; 32]));
    let txs: Vec<Vec<u8>> = view.txs.iter().map(|tx| tx.to_vec()).collect();
    assert_eq!(txs, vec![b"tx-a".to_vec(), b"tx-b".to_vec()]);
    assert_eq!(bytes.len(), Unit::encoded_len(&[b"tx-a", b"tx-b"]));
    let unit: Unit = borsh::from_slice(&bytes).expect("borsh");
    let mut preimage = UNIT_HASH_DOMAIN.to_vec();
    preimage.extend(borsh::to_vec(&unit.header).expect("encode"));
    assert_eq!(view.hash, nest_sdk::testing::sha256(&preimage));
}

#[test]
fn genesis_has_zero_parent_and_height_zero_and_becomes_the_head() {
    let (chain, genesis) = started(LinearConfig::default());
    assert_eq!(genesis.height, 0);
    assert_eq!(chain.head(), genesis);
    let mut builder = chain_with(LinearConfig::default());
    let message = rejection(builder.build(request(Hash32::ZERO, 3, 0, &[])));
    assert!(message.contains("zero parent"), "{message}");
    let message = rejection(builder.build(request(Hash32([5; 32]), 0, 0, &[])));
    assert!(message.contains("genesis"), "{message}");
}

#[test]
fn validate_accepts_a_child_of_the_final_unit() {
    let (mut chain, genesis) = started(LinearConfig::default());
    let (bytes, unit) = child(&mut chain, genesis, b"a");
    assert_eq!(chain.validate(&bytes).expect("valid").to_ref(), unit);
}

#[test]
fn validate_rejects_unknown_parent() {
    let (mut chain, _) = started(LinearConfig::default());
    let bytes = chain.build(request(Hash32([3; 32]), 1, 10, &[])).expect("build");
    let message = rejection(chain.validate(&bytes));
    assert!(message.contains("neither the final unit nor a pending unit"), "{message}");
    let message = rejection(chain.insert(&bytes, &[]));
    assert!(message.contains("parent"), "{message}");
}

#[test]
fn validate_rejects_wrong_height() {
    let (mut chain, genesis) = started(LinearConfig::default());
    let bytes = chain.build(request(genesis.hash, 2, 10, &[])).expect("build");
    let message = rejection(chain.validate(&bytes));
    assert!(message.contains("height 2 does not follow"), "{message}");
}

#[test]
fn validate_rejects_non_increasing_timestamp() {
    let (mut chain, genesis) = started(LinearConfig::default());
    let (bytes, unit) = child(&mut chain, genesis, b"a");
    chain.insert(&bytes, &[]).expect("insert");
    for timestamp_ms in [unit.timestamp_ms, unit.timestamp_ms - 1] {
        let bytes = chain.build(request(unit.hash, 2, timestamp_ms, &[])).expect("build");
        let message = rejection(chain.validate(&bytes));
        assert!(message.contains("is not after its parent"), "{message}");
    }
}

#[test]
fn validate_before_start_is_rejected() {
    let mut chain = chain_with(LinearConfig::default());
    let bytes = chain.build(request(Hash32([1; 32]), 1, 1, &[])).expect("build");
    let message = rejection(chain.validate(&bytes));
    assert!(message.contains("not been started"), "{message}");
}

fn deep(finality_depth: u32) -> LinearConfig {
    LinearConfig { finality_depth, ..LinearConfig::default() }
}

#[test]
fn longer_branch_wins_fork_choice() {
    let (mut chain, genesis) = started(deep(10));
    let (a1, a1_ref) = child(&mut chain, genesis, b"a");
    let (b1, b1_ref) = child(&mut chain, genesis, b"b");
    let (b2, b2_ref) = child(&mut chain, b1_ref, b"b");
    chain.insert(&a1, &[]).expect("a1");
    assert_eq!(chain.head(), a1_ref);
    chain.insert(&b1, &[]).expect("b1");
    let report = chain.insert(&b2, &[]).expect("b2");
    assert_eq!(report.head, b2_ref);
    assert_eq!(chain.head(), b2_ref);
    let (a2, _) = child(&mut chain, a1_ref, b"a");
    let (a3, a3_ref) = {
        let a2_ref = chain.decode(&a2).expect("decode").to_ref();
        child(&mut chain, a2_ref, b"a")
    };
    chain.insert(&a2, &[]).expect("a2");
    assert_eq!(chain.insert(&a3, &[]).expect("a3").head, a3_ref);
}

#[test]
fn equal_heights_pick_the_lower_hash_whatever_the_insert_order() {
    let (mut builder, genesis) = started(deep(10));
    let (a, a_ref) = child(&mut builder, genesis, b"a");
    let (b, b_ref) = child(&mut builder, genesis, b"b");
    let lower = if a_ref.hash < b_ref.hash { a_ref } else { b_ref };
    for order in [[&a, &b], [&b, &a]] {
        let (mut chain, _) = started(deep(10));
        chain.insert(order[0], &[]).expect("first");
        let report = chain.insert(order[1], &[]).expect("second");
        assert_eq!(report.head, lower);
    }
}

#[test]
fn depth_zero_finalizes_on_insert() {
    let (mut chain, genesis) = started(deep(0));
    let (bytes, unit) = child(&mut chain, genesis, b"a");
    let report = chain.insert(&bytes, &[]).expect("insert");
    assert_eq!(report.head, unit);
    assert_eq!(report.finalized.to_vec(), vec![unit]);
    let (next, next_ref) = child(&mut chain, unit, b"a");
    assert_eq!(chain.insert(&next, &[]).expect("insert").finalized.to_vec(), vec![next_ref]);
}

#[test]
fn depth_two_finalizes_two_below_the_head_and_prunes_other_branches() {
    let (mut chain, genesis) = started(deep(2));
    let (a1, a1_ref) = child(&mut chain, genesis, b"a");
    let (b1, b1_ref) = child(&mut chain, genesis, b"b");
    let (a2, a2_ref) = child(&mut chain, a1_ref, b"a");
    let (a3, a3_ref) = child(&mut chain, a2_ref, b"a");
    let (a4, _) = child(&mut chain, a3_ref, b"a");
    assert!(heights(&chain.insert(&a1, &[]).expect("a1")).is_empty());
    assert!(heights(&chain.insert(&b1, &[]).expect("b1")).is_empty());
    assert!(heights(&chain.insert(&a2, &[]).expect("a2")).is_empty());
    let report = chain.insert(&a3, &[]).expect("a3");
    assert_eq!(report.finalized.to_vec(), vec![a1_ref]);
    // b1 no longer descends from the final unit a1: pruned, its children are orphans.
    let (b2, _) = child(&mut chain, b1_ref, b"b");
    let message = rejection(chain.validate(&b2));
    assert!(message.contains("neither the final unit"), "{message}");
    assert_eq!(heights(&chain.insert(&a4, &[]).expect("a4")), vec![2]);
}

#[test]
fn finality_reports_several_units_in_ascending_order() {
    let (mut chain, genesis) = started(deep(2));
    let mut parent = genesis;
    let mut units = Vec::new();
    for _ in 0..4 {
        let (bytes, unit) = child(&mut chain, parent, b"x");
        units.push(bytes);
        parent = unit;
    }
    // Insert a side branch first so the main branch jumps several heights at once.
    for bytes in &units[..3] {
        chain.insert(bytes, &[]).expect("insert");
    }
    assert_eq!(heights(&chain.insert(&units[3], &[]).expect("insert")), vec![2]);
    let mut shallow = started(deep(0)).0;
    let report = shallow.insert(&units[0], &[]).expect("insert");
    assert_eq!(heights(&report), vec![1]);
}

#[test]
fn inserting_a_known_unit_reports_no_new_finals() {
    let (mut chain, genesis) = started(deep(1));
    let (a1, a1_ref) = child(&mut chain, genesis, b"a");
    chain.insert(&a1, &[]).expect("first");
    let again = chain.insert(&a1, &[]).expect("again");
    assert_eq!(again.head, a1_ref);
    assert!(again.finalized.is_empty());
    let (a2, _) = child(&mut chain, a1_ref, b"a");
    assert_eq!(heights(&chain.insert(&a2, &[]).expect("a2")), vec![1]);
    assert!(chain.insert(&a1, &[]).expect("final again").finalized.is_empty());
}

#[test]
fn garbage_bytes_are_rejected() {
    let (chain, _) = started(LinearConfig::default());
    for garbage in [&b""[..], &b"\xff"[..], &[0xAB; 300][..]] {
        let message = rejection(chain.decode(garbage));
        assert!(message.contains("malformed unit") || message.contains("version"), "{message}");
    }
}

#[test]
fn truncated_and_trailing_bytes_are_rejected() {
    let (mut chain, genesis) = started(LinearConfig::default());
    let (bytes, _) = child(&mut chain, genesis, b"payload");
    for cut in [1, HEADER_BYTES, bytes.len() - 1] {
        let message = rejection(chain.decode(&bytes[..cut]));
        assert!(message.starts_with("malformed unit"), "{message}");
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    let message = rejection(chain.decode(&trailing));
    assert!(message.starts_with("malformed unit"), "{message}");
}

#[test]
fn wrong_version_and_tx_count_are_rejected() {
    let (mut chain, genesis) = started(LinearConfig::default());
    let (bytes, _) = child(&mut chain, genesis, b"payload");
    let mut unit: Unit = borsh::from_slice(&bytes).expect("borsh");
    unit.header.version = 2;
    let message = rejection(chain.decode(&borsh::to_vec(&unit).expect("encode")));
    assert!(message.contains("unsupported unit version 2"), "{message}");
    unit.header.version = UNIT_VERSION;
    unit.header.tx_count = 5;
    let message = rejection(chain.decode(&borsh::to_vec(&unit).expect("encode")));
    assert!(message.contains("says 5 transactions but the unit carries 1"), "{message}");
}

#[test]
fn oversized_units_are_rejected_when_built_and_when_decoded() {
    let small = LinearConfig { max_unit_bytes: 1024, max_txs_per_unit: 2, ..LinearConfig::default() };
    let (mut chain, genesis) = started(small);
    let big = vec![0u8; 1024];
    let message = rejection(chain.build(request(genesis.hash, 1, 1, &[&big])));
    assert!(message.contains("max_unit_bytes = 1024"), "{message}");
    let message = rejection(chain.build(request(genesis.hash, 1, 1, &[b"1", b"2", b"3"])));
    assert!(message.contains("max_txs_per_unit = 2"), "{message}");

    let (mut roomy, genesis) = started(LinearConfig::default());
    let bytes = roomy.build(request(genesis.hash, 1, 1, &[&big])).expect("fits the default");
    let message = rejection(chain.decode(&bytes));
    assert!(message.contains("exceeds max_unit_bytes = 1024"), "{message}");
    let many = roomy.build(request(genesis.hash, 1, 1, &[b"1", b"2", b"3"])).expect("fits the default");
    let message = rejection(chain.insert(&many, &[]));
    assert!(message.contains("more than max_txs_per_unit = 2"), "{message}");
}

#[test]
fn pending_tree_is_bounded() {
    let config = LinearConfig { finality_depth: 1, max_pending_units: 2, ..LinearConfig::default() };
    let (mut chain, genesis) = started(config);
    for salt in [b"a", b"b"] {
        let (bytes, _) = child(&mut chain, genesis, salt);
        chain.insert(&bytes, &[]).expect("room left");
    }
    let (bytes, _) = child(&mut chain, genesis, b"c");
    let message = rejection(chain.insert(&bytes, &[]));
    assert!(message.contains("max_pending_units = 2"), "{message}");
    // Still usable: a child of the head finalizes and frees room.
    let head = chain.head();
    let (next, _) = child(&mut chain, head, b"d");
    assert_eq!(heights(&chain.insert(&next, &[]).expect("insert")), vec![1]);
    chain.insert(&bytes, &[]).expect_err("c no longer has a known parent");
}

#[test]
fn snapshot_restore_round_trip() {
    let (mut chain, genesis) = started(deep(2));
    let (a1, a1_ref) = child(&mut chain, genesis, b"a");
    let (b1, _) = child(&mut chain, genesis, b"b");
    let (a2, a2_ref) = child(&mut chain, a1_ref, b"a");
    for bytes in [&a1, &b1, &a2] {
        chain.insert(bytes, &[]).expect("insert");
    }
    let snapshot = chain.snapshot().expect("snapshot");
    let mut restored = chain_with(deep(2));
    restored.restore(&snapshot).expect("restore");
    assert_eq!(restored.head(), a2_ref);
    assert_eq!(restored.snapshot().expect("snapshot"), snapshot);
    let (a3, _) = child(&mut chain, a2_ref, b"a");
    assert_eq!(chain.insert(&a3, &[]).expect("a3"), restored.insert(&a3, &[]).expect("a3"));
}

#[test]
fn restore_rejects_bad_snapshots() {
    let (mut chain, genesis) = started(deep(2));
    let (a1, _) = child(&mut chain, genesis, b"a");
    chain.insert(&a1, &[]).expect("insert");
    let snapshot = chain.snapshot().expect("snapshot");
    let mut restored = chain_with(deep(2));
    let message = rejection(restored.restore(&snapshot[..snapshot.len() - 1]));
    assert!(message.starts_with("malformed snapshot"), "{message}");
    let mut wrong_version = snapshot.clone();
    wrong_version[0] = 9;
    let message = rejection(restored.restore(&wrong_version));
    assert!(message.contains("snapshot version 9"), "{message}");
    let tiny = LinearConfig { finality_depth: 0, max_pending_units: 1, ..LinearConfig::default() };
    let message = rejection(chain_with(tiny).restore(&vec![0; 4096]));
    assert!(message.contains("larger than"), "{message}");
    // A pending unit whose parent is not in the view.
    let mut orphan: Snapshot = borsh::from_slice(&snapshot).expect("borsh");
    if let Some(view) = orphan.view.as_mut() {
        for node in view.pending.values_mut() {
            node.parent = Hash32([4; 32]);
        }
    }
    let message = rejection(restored.restore(&borsh::to_vec(&orphan).expect("encode")));
    assert!(message.contains("does not descend"), "{message}");
    assert_eq!(restored.head().hash, Hash32::ZERO, "a failed restore changes nothing");
}

#[test]
fn config_defaults_and_checks() {
    let parsed: LinearConfig = nest_sdk::config::parse("{}").expect("all optional");
    assert_eq!(parsed, LinearConfig::default());
    assert_eq!(parsed.max_unit_bytes, 8 * 1024 * 1024);
    let unknown = nest_sdk::config::parse::<LinearConfig>(r#"{"finality": 1}"#).unwrap_err();
    assert!(unknown.message.starts_with("unknown field"), "{}", unknown.message);
    let cases = [
        (r#"{"max_unit_bytes": 1023}"#, "max_unit_bytes"),
        (r#"{"finality_depth": 1001}"#, "finality_depth"),
        (r#"{"max_txs_per_unit": 0}"#, "max_txs_per_unit"),
        (r#"{"finality_depth": 5, "max_pending_units": 5}"#, "max_pending_units"),
    ];
    for (json, path) in cases {
        let config: LinearConfig = nest_sdk::config::parse(json).expect("parses");
        assert_eq!(LinearChain::check_config(&config).unwrap_err().path, path, "{json}");
    }
}

/// Builds a unit on `parent` proposed by `proposer`.
fn child_by(chain: &mut LinearChain, parent: UnitRef, proposer: u8) -> (Vec<u8>, UnitRef) {
    let mut req = request(parent.hash, parent.height + 1, parent.timestamp_ms + 1000, &[&[proposer]]);
    req.proposer = PublicKey([proposer; 32]);
    let bytes = chain.build(req).expect("build");
    let unit = chain.decode(&bytes).expect("decode").to_ref();
    (bytes, unit)
}

fn by_quorum(quorum: u32) -> LinearConfig {
    LinearConfig { finality_proposers: quorum, ..LinearConfig::default() }
}

fn voter(byte: u8) -> PublicKey {
    PublicKey([byte; 32])
}

/// Votes for `unit` by each of `voters`; returns the heights the last vote finalized.
fn votes(chain: &mut LinearChain, unit: UnitRef, voters: &[u8]) -> Vec<u64> {
    let mut finalized = Vec::new();
    for byte in voters {
        finalized = heights(&chain.attest(unit.hash, voter(*byte)).unwrap());
    }
    finalized
}

#[test]
fn proposing_units_on_a_branch_finalizes_nothing_under_a_quorum_rule() {
    let (mut chain, genesis) = started(by_quorum(3));
    let mut parent = genesis;
    for proposer in 1..=6 {
        let (bytes, unit) = child_by(&mut chain, parent, proposer);
        assert!(heights(&chain.insert(&bytes, &[]).unwrap()).is_empty(), "proposer {proposer}");
        parent = unit;
    }
}

#[test]
fn a_quorum_of_direct_votes_finalizes_the_unit_and_its_ancestors() {
    let (mut chain, genesis) = started(by_quorum(3));
    let (a, unit_a) = child(&mut chain, genesis, b"a");
    let (b, unit_b) = child(&mut chain, unit_a, b"b");
    chain.insert(&a, &[]).unwrap();
    chain.insert(&b, &[]).unwrap();
    assert!(votes(&mut chain, unit_b, &[1, 1]).is_empty(), "a repeated vote counts once");
    assert!(votes(&mut chain, unit_b, &[2]).is_empty(), "two of three");
    let report = chain.attest(unit_b.hash, voter(3)).unwrap();
    assert_eq!(heights(&report), vec![1, 2], "the voted unit and its ancestors, ascending");
    assert_eq!(report.head.hash, unit_b.hash);
}

#[test]
fn votes_for_a_descendant_do_not_finalize_an_ancestor() {
    let (mut chain, genesis) = started(by_quorum(3));
    let (a, unit_a) = child(&mut chain, genesis, b"a");
    let (b, unit_b) = child(&mut chain, unit_a, b"b");
    let (c, unit_c) = child(&mut chain, unit_b, b"c");
    for unit in [&a, &b, &c] {
        chain.insert(unit, &[]).unwrap();
    }
    // One vote on each unit of the branch: three voters on it, but no unit has three.
    assert!(votes(&mut chain, unit_a, &[1]).is_empty());
    assert!(votes(&mut chain, unit_b, &[2]).is_empty());
    assert!(votes(&mut chain, unit_c, &[3]).is_empty());
    assert!(votes(&mut chain, unit_c, &[4]).is_empty(), "two votes on c, one on b, one on a");
    assert_eq!(votes(&mut chain, unit_a, &[2, 3]), vec![1], "a alone, by its own three votes");
}

#[test]
fn a_vote_that_arrives_before_its_unit_counts_when_the_unit_does() {
    let (mut chain, genesis) = started(by_quorum(3));
    let (a, unit_a) = child(&mut chain, genesis, b"a");
    assert!(votes(&mut chain, unit_a, &[1, 2, 3]).is_empty(), "the unit is not known yet");
    assert_eq!(heights(&chain.insert(&a, &[]).unwrap()), vec![1]);
}

#[test]
fn a_quorum_on_a_branch_fork_choice_does_not_prefer_makes_it_final_and_moves_the_head() {
    let (mut chain, genesis) = started(by_quorum(3));
    let (a, unit_a) = child(&mut chain, genesis, b"a");
    let (long, unit_long) = child(&mut chain, unit_a, b"long");
    let (b, unit_b) = child(&mut chain, genesis, b"b");
    for unit in [&a, &long, &b] {
        chain.insert(unit, &[]).unwrap();
    }
    assert_eq!(chain.head().hash, unit_long.hash);
    assert!(votes(&mut chain, unit_b, &[1, 2]).is_empty());
    let report = chain.attest(unit_b.hash, voter(3)).unwrap();
    assert_eq!(report.finalized.iter().map(|unit| unit.hash).collect::<Vec<_>>(), vec![unit_b.hash]);
    assert_eq!(report.head.hash, unit_b.hash, "the other branch is pruned");
    let (orphan, _) = child(&mut chain, unit_long, b"orphan");
    assert!(chain.validate(&orphan).is_err(), "the losing branch is gone");
}

#[test]
fn a_minority_branch_never_finalizes_and_loses_after_the_heal() {
    let (mut chain, genesis) = started(by_quorum(3));
    let (m1, unit_m1) = child_by(&mut chain, genesis, 1);
    let (n1, unit_n1) = child_by(&mut chain, genesis, 3);
    let (n2, unit_n2) = child_by(&mut chain, unit_n1, 4);
    for unit in [&m1, &n1, &n2] {
        chain.insert(unit, &[]).unwrap();
    }
    assert!(votes(&mut chain, unit_m1, &[1, 2]).is_empty(), "two of four voted m1");
    assert!(votes(&mut chain, unit_n1, &[3, 4]).is_empty(), "two of four voted n1");
    assert!(votes(&mut chain, unit_n2, &[3, 4]).is_empty());
    let report = chain.attest(unit_n2.hash, voter(1)).unwrap();
    assert_eq!(heights(&report), vec![1, 2], "n2 reaches three voters after the heal");
    assert_eq!(report.head.hash, unit_n2.hash);
}

#[test]
fn with_a_depth_a_voted_unit_waits_until_a_unit_is_that_far_above_it() {
    let (mut chain, genesis) = started(LinearConfig { finality_depth: 2, ..by_quorum(2) });
    let (a, unit_a) = child(&mut chain, genesis, b"a");
    let (b, unit_b) = child(&mut chain, unit_a, b"b");
    let (c, _) = child(&mut chain, unit_b, b"c");
    chain.insert(&a, &[]).unwrap();
    assert!(votes(&mut chain, unit_a, &[1, 2]).is_empty(), "nothing above a yet");
    assert!(heights(&chain.insert(&b, &[]).unwrap()).is_empty(), "one above a");
    assert_eq!(heights(&chain.insert(&c, &[]).unwrap()), vec![1], "two above a");
    let (mut early, _) = started(LinearConfig { finality_depth: 1, ..by_quorum(2) });
    for unit in [&a, &b] {
        early.insert(unit, &[]).unwrap();
    }
    assert_eq!(votes(&mut early, unit_a, &[1, 2]), vec![1], "b is already one above a");
}

#[test]
fn a_quorum_of_one_finalizes_on_a_single_vote() {
    let (mut chain, genesis) = started(by_quorum(1));
    let (a, unit_a) = child_by(&mut chain, genesis, 1);
    assert!(heights(&chain.insert(&a, &[]).unwrap()).is_empty(), "proposing is not voting");
    assert_eq!(votes(&mut chain, unit_a, &[1]), vec![1]);
}

#[test]
fn votes_change_nothing_under_a_pure_depth_rule_and_votes_stay_bounded() {
    let (mut chain, genesis) = started(deep(2));
    let (a, unit_a) = child(&mut chain, genesis, b"a");
    chain.insert(&a, &[]).unwrap();
    for byte in 1..=10 {
        assert!(heights(&chain.attest(unit_a.hash, voter(byte)).unwrap()).is_empty());
    }
    let (mut chain, _) = started(LinearConfig { max_pending_units: 2, ..by_quorum(3) });
    for byte in 0..=255u8 {
        chain.attest(Hash32([byte; 32]), voter(byte)).unwrap();
        chain.attest(Hash32([1; 32]), voter(byte)).unwrap();
    }
    let view = chain.view.as_ref().expect("started");
    assert!(view.attesters.len() <= view::voted_units_max(2));
    assert!(view.attesters.values().all(|voters| voters.len() <= 3), "at most the quorum per unit");
    let snapshot = chain.snapshot().unwrap();
    let mut restored = chain_with(LinearConfig { max_pending_units: 2, ..by_quorum(3) });
    restored.restore(&snapshot).expect("a bounded view restores");
}

#[test]
fn fork_choice_follows_the_latest_votes_before_the_length() {
    let (mut chain, genesis) = started(by_quorum(3));
    let (a, unit_a) = child(&mut chain, genesis, b"a");
    let (b, unit_b) = child(&mut chain, genesis, b"b");
    let (b2, unit_b2) = child(&mut chain, unit_b, b"b2");
    for unit in [&a, &b, &b2] {
        chain.insert(unit, &[]).unwrap();
    }
    assert_eq!(chain.head().hash, unit_b2.hash, "without votes the longer branch leads");
    assert!(votes(&mut chain, unit_a, &[1, 2]).is_empty());
    assert!(votes(&mut chain, unit_b2, &[3]).is_empty());
    assert_eq!(chain.head().hash, unit_a.hash, "two latest votes on a outweigh one on the longer branch");
    let (a2, unit_a2) = child(&mut chain, unit_a, b"a2");
    chain.insert(&a2, &[]).unwrap();
    assert_eq!(chain.head().hash, unit_a2.hash, "the head grows on the voted branch");
    assert!(votes(&mut chain, unit_b2, &[4]).is_empty());
    let lower = if unit_a2.hash < unit_b2.hash { unit_a2.hash } else { unit_b2.hash };
    assert_eq!(chain.head().hash, lower, "two against two, equal heights: the lower hash decides");
}
