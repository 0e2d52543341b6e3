use super::*;
use nest_sdk::{PublicKey, RVec, testing::LocalHost};
use proptest::prelude::*;

/// Fast work for tests: 8 bits is 256 hashes on average.
fn config() -> DagConfig {
    DagConfig { pow_bits: 8, ..DagConfig::default() }
}

/// A node's chain type: its own key (from `seed`), started at the shared genesis.
fn node(seed: u8, config: DagConfig) -> (DagChain, LocalHost) {
    let local = LocalHost::from_seed([seed; 32]);
    let mut chain = DagChain::new(config, local.host()).expect("valid config");
    let genesis = chain.build(request(PublicKey([0; 32]), 0, 1_000, &[])).expect("genesis");
    let genesis = chain.decode(&genesis).expect("decode genesis").to_ref();
    chain.start(genesis).expect("start");
    (chain, local)
}

fn request(proposer: PublicKey, height: u64, timestamp_ms: u64, txs: &[&[u8]]) -> BuildRequest {
    BuildRequest {
        parent: Hash32::ZERO,
        height,
        timestamp_ms,
        proposer,
        tx_root: nest_sdk::testing::sha256(&txs.concat()),
        state_digest: Hash32::ZERO,
        txs: txs.iter().map(|tx| RVec::from(tx.to_vec())).collect(),
    }
}

/// Builds a unit on `chain` (as its own node) and inserts it there.
fn attach(chain: &mut DagChain, local: &LocalHost, timestamp_ms: u64, tx: &[u8]) -> (Vec<u8>, UnitView) {
    let key = local.host().public_key();
    let bytes = chain.build(request(key, 1, timestamp_ms, &[tx])).expect("build");
    let view = chain.insert(&bytes, &[]).map(|_| chain.decode(&bytes).expect("decode")).expect("insert");
    (bytes, view)
}

fn rejection(result: Result<impl std::fmt::Debug, PluginError>) -> String {
    match result {
        Err(PluginError::Rejected { message }) => message.into(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn reencode(unit: &Unit) -> Vec<u8> {
    borsh::to_vec(unit).expect("encode")
}

#[test]
fn config_ranges_are_checked_with_the_key_named() {
    assert!(DagConfig::default().check().is_ok());
    for (config, key) in [
        (DagConfig { approvals: 0, ..DagConfig::default() }, "approvals"),
        (DagConfig { approvals: 9, ..DagConfig::default() }, "approvals"),
        (DagConfig { pow_bits: 25, ..DagConfig::default() }, "pow_bits"),
        (DagConfig { alpha: f64::NAN, ..DagConfig::default() }, "alpha"),
        (DagConfig { alpha: -1.0, ..DagConfig::default() }, "alpha"),
        (DagConfig { max_unit_bytes: 10, ..DagConfig::default() }, "max_unit_bytes"),
        (DagConfig { max_txs_per_unit: 0, ..DagConfig::default() }, "max_txs_per_unit"),
        (DagConfig { max_pending_units: 0, ..DagConfig::default() }, "max_pending_units"),
    ] {
        let error = config.check().expect_err("out of range");
        assert_eq!(error.path.as_str(), key, "{error:?}");
    }
}

#[test]
fn genesis_is_the_same_on_every_node_and_is_never_received() {
    let (mut a, _) = node(1, config());
    let (b, _) = node(2, config());
    assert_eq!(a.head(), b.head());
    let genesis = a.build(request(PublicKey([0; 32]), 0, 1_000, &[]));
    let mut other = DagChain::new(config(), LocalHost::from_seed([3; 32]).host()).expect("config");
    other.start(UnitRef { height: 0, hash: Hash32([5; 32]), timestamp_ms: 0 }).expect("start");
    let message = rejection(other.validate(&genesis.expect("genesis")));
    assert!(message.contains("built by each node"), "{message}");
}

#[test]
fn a_unit_approves_held_tips_with_its_work_and_signature() {
    let (mut chain, local) = node(1, config());
    let genesis = chain.head().hash;
    let (_, first) = attach(&mut chain, &local, 2_000, b"a");
    assert_eq!(first.parent, genesis);
    assert_eq!(first.height, 1);
    assert_eq!(first.state_digest, Hash32::ZERO, "DAG units claim no state");
    assert!(tangle::pow_ok(&first.hash, 8));
    // A second and third unit approve what is there: the tips are the newest units.
    let (_, second) = attach(&mut chain, &local, 3_000, b"b");
    assert_eq!(second.parent, first.hash);
    let (bytes, third) = attach(&mut chain, &local, 4_000, b"c");
    assert_eq!(chain.parents(&bytes).expect("parents"), vec![second.hash]);
    assert_eq!(chain.tips(), vec![third.hash]);
    assert_eq!(chain.head().hash, third.hash);
    assert_eq!(chain.weight(genesis), Some(4), "genesis and its three approvers");
    assert_eq!(chain.weight(Hash32([9; 32])), None);
}

#[test]
fn two_tips_are_approved_together() {
    let (mut a, key_a) = node(1, config());
    let (mut b, key_b) = node(2, config());
    // Two nodes attach on genesis at once: two tips.
    let (bytes_a, unit_a) = attach(&mut a, &key_a, 2_000, b"a");
    let (bytes_b, unit_b) = attach(&mut b, &key_b, 2_000, b"b");
    a.insert(&bytes_b, &[]).expect("a takes b's unit");
    b.insert(&bytes_a, &[]).expect("b takes a's unit");
    let mut tips = vec![unit_a.hash, unit_b.hash];
    tips.sort_by_key(|tip| tip.0);
    assert_eq!(a.tips(), tips);
    let (bytes, joined) = attach(&mut a, &key_a, 3_000, b"c");
    let mut parents = a.parents(&bytes).expect("parents");
    parents.sort_by_key(|parent| parent.0);
    assert_eq!(parents, tips, "the walk reaches both tips");
    b.insert(&bytes, &[]).expect("b takes the joining unit");
    assert_eq!(b.tips(), vec![joined.hash]);
}

#[test]
fn a_unit_without_its_work_or_its_signature_is_refused() {
    let (mut chain, local) = node(1, DagConfig { pow_bits: 12, ..config() });
    let key = local.host().public_key();
    let bytes = chain.build(request(key, 1, 2_000, &[b"a"])).expect("build");
    let unit: Unit = borsh::from_slice(&bytes).expect("decode");

    let mut lazy = unit.clone();
    lazy.nonce = lazy.nonce.wrapping_add(1);
    lazy.signature = local.host().sign(&lazy.header.hash(lazy.nonce).expect("hash").0);
    assert!(rejection(chain.validate(&reencode(&lazy))).contains("lacks its proof of work"));

    let mut forged = unit.clone();
    forged.header.proposer = PublicKey([4; 32]);
    let found = tangle::solve_pow(&forged.header.pow_prefix().expect("prefix"), 12, 0, 1 << 20).expect("work");
    forged.nonce = found.0;
    assert!(rejection(chain.validate(&reencode(&forged))).contains("not signed by its proposer"));

    assert!(chain.validate(&bytes).is_ok());
}

#[test]
fn bad_shapes_are_refused_with_their_reason() {
    let (mut chain, local) = node(1, config());
    let key = local.host().public_key();
    let bytes = chain.build(request(key, 1, 2_000, &[b"a"])).expect("build");
    let unit: Unit = borsh::from_slice(&bytes).expect("decode");
    let resign = |mut unit: Unit| {
        let prefix = unit.header.pow_prefix().expect("prefix");
        let (nonce, hash) = tangle::solve_pow(&prefix, 8, 0, 1 << 20).expect("work");
        unit.nonce = nonce;
        unit.signature = local.host().sign(&hash.0);
        reencode(&unit)
    };
    let cases: Vec<(Unit, &str)> = vec![
        (
            {
                let mut u = unit.clone();
                u.header.parents.clear();
                u
            },
            "1 to 8 parents",
        ),
        (
            {
                let mut u = unit.clone();
                u.header.parents = vec![Hash32([1; 32]); 9];
                u
            },
            "1 to 8 parents",
        ),
        (
            {
                let mut u = unit.clone();
                u.header.parents.push(u.header.parents[0]);
                u
            },
            "twice",
        ),
        (
            {
                let mut u = unit.clone();
                u.header.parents = vec![Hash32::ZERO];
                u
            },
            "only genesis",
        ),
        (
            {
                let mut u = unit.clone();
                u.header.parents = vec![Hash32([6; 32])];
                u
            },
            "does not hold",
        ),
        (
            {
                let mut u = unit.clone();
                u.header.height = 5;
                u
            },
            "claims height 5",
        ),
        (
            {
                let mut u = unit.clone();
                u.header.timestamp_ms = 10;
                u
            },
            "before its parent",
        ),
        (
            {
                let mut u = unit.clone();
                u.header.tx_count = 3;
                u
            },
            "says 3 transactions",
        ),
        (
            {
                let mut u = unit.clone();
                u.header.version = 2;
                u
            },
            "unsupported unit version",
        ),
    ];
    for (bad, reason) in cases {
        let message = rejection(chain.insert(&resign(bad), &[]));
        assert!(message.contains(reason), "{reason}: {message}");
    }
    assert!(rejection(chain.validate(&[1, 2, 3])).contains("malformed unit"));
    let other = PublicKey([8; 32]);
    assert!(rejection(chain.build(request(other, 1, 2_000, &[]))).contains("not this node's key"));
    assert_eq!(chain.tips(), vec![chain.head().hash], "nothing refused was kept");
}

#[test]
fn a_checkpoint_makes_its_cone_final_once_in_one_order() {
    let (mut chain, local) = node(1, config());
    let genesis = chain.head().hash;
    let (_, a) = attach(&mut chain, &local, 2_000, b"a");
    let (_, b) = attach(&mut chain, &local, 3_000, b"b");
    let (_, c) = attach(&mut chain, &local, 4_000, b"c");
    let first = chain.checkpoint(&[b.hash]).expect("checkpoint");
    let order: Vec<Hash32> = first.finalized.iter().map(|unit| unit.hash).collect();
    assert_eq!(order, vec![a.hash, b.hash], "genesis was final already; c is not under b");
    assert!(!order.contains(&genesis));
    let second = chain.checkpoint(&[c.hash]).expect("checkpoint");
    assert_eq!(second.finalized.iter().map(|unit| unit.hash).collect::<Vec<_>>(), vec![c.hash]);
    let again = chain.checkpoint(&[c.hash]).expect("a repeated checkpoint");
    assert!(again.finalized.is_empty(), "nothing is final twice");
    let message = rejection(chain.checkpoint(&[Hash32([7; 32])]));
    assert!(message.contains("does not hold"), "{message}");
    assert!(rejection(chain.checkpoint(&[])).contains("1 to 64 tips"));
}

#[test]
fn pending_units_are_bounded_until_a_checkpoint() {
    let (mut chain, local) = node(1, DagConfig { max_pending_units: 2, ..config() });
    attach(&mut chain, &local, 2_000, b"a");
    let (_, b) = attach(&mut chain, &local, 3_000, b"b");
    let key = local.host().public_key();
    let bytes = chain.build(request(key, 1, 4_000, &[b"c"])).expect("build");
    assert!(rejection(chain.insert(&bytes, &[])).contains("max_pending_units = 2"));
    chain.checkpoint(&[b.hash]).expect("checkpoint");
    chain.insert(&bytes, &[]).expect("room after the checkpoint");
}

#[test]
fn a_snapshot_restores_the_same_tangle() {
    let (mut chain, local) = node(1, config());
    let mut units = Vec::new();
    for (i, tx) in [b"a", b"b", b"c", b"d"].iter().enumerate() {
        units.push(attach(&mut chain, &local, 2_000 + i as u64, *tx).1);
    }
    chain.checkpoint(&[units[1].hash]).expect("checkpoint");
    let snapshot = chain.snapshot().expect("snapshot");
    let mut restored = DagChain::new(config(), local.host()).expect("config");
    restored.restore(&snapshot).expect("restore");
    assert_eq!(restored.tips(), chain.tips());
    assert_eq!(restored.head(), chain.head());
    for unit in &units {
        assert_eq!(restored.weight(unit.hash), chain.weight(unit.hash));
    }
    let expected = chain.checkpoint(&[units[3].hash]).expect("checkpoint");
    assert_eq!(restored.checkpoint(&[units[3].hash]).expect("checkpoint"), expected);
    assert!(rejection(restored.restore(&[9, 9])).contains("malformed snapshot"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Nodes that receive the same units in different orders (parents before children)
    /// compute the same final order under the same checkpoints.
    #[test]
    fn nodes_agree_on_the_final_order_whatever_the_arrival_order(
        builders in proptest::collection::vec(0usize..3, 4..14),
        swaps in proptest::collection::vec((0usize..14, 0usize..14), 0..20),
    ) {
        let nodes: Vec<(DagChain, LocalHost)> = (0..3).map(|i| node(i as u8 + 1, config())).collect();
        let mut nodes = nodes;
        let mut built: Vec<(Vec<u8>, u64)> = Vec::new();
        for (i, builder) in builders.iter().enumerate() {
            let (chain, local) = &mut nodes[*builder];
            let (bytes, view) = attach(chain, local, 2_000 + i as u64, &[i as u8]);
            for (j, (other, _)) in nodes.iter_mut().enumerate() {
                if j != *builder {
                    other.insert(&bytes, &[]).expect("every node takes every unit");
                }
            }
            built.push((bytes, view.height));
        }
        // A fresh node receives them shuffled, then sorted by height (parents first).
        let mut arrival = built.clone();
        for (x, y) in swaps {
            let (x, y) = (x % arrival.len(), y % arrival.len());
            arrival.swap(x, y);
        }
        arrival.sort_by_key(|(_, height)| *height);
        let (mut late, _) = node(9, config());
        for (bytes, _) in &arrival {
            late.insert(bytes, &[]).expect("insert");
        }
        let tips = nodes[0].0.tips();
        prop_assert_eq!(late.tips(), tips.clone());
        let expected = nodes[0].0.checkpoint(&tips).expect("checkpoint");
        prop_assert_eq!(late.checkpoint(&tips).expect("checkpoint").finalized, expected.finalized.clone());
        prop_assert_eq!(expected.finalized.len(), built.len(), "every unit is under the tips");
    }
}
