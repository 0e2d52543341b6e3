//! The DAG chain under the simulator (ADR 0015): nodes that receive units in any order,
//! lose some, and are cut apart execute every checkpoint alike, and resolve every double
//! spend the same way.

use nest_sim::dag::{DAG_FAULTS, DagSpec, DagWorld};

fn spec(nodes: usize) -> DagSpec {
    DagSpec { nodes, checkpoints: 12, interval_ms: 1_000, faults: DAG_FAULTS.to_vec() }
}

fn run_clean(spec: &DagSpec, seeds: std::ops::Range<u64>) -> (u64, u64) {
    let (mut units, mut double_spends) = (0, 0);
    for seed in seeds {
        let outcome = DagWorld::new(spec, seed).expect("world").run();
        assert!(outcome.violations.is_empty(), "seed {seed}: {:?}", outcome.violations);
        units += outcome.units;
        double_spends += outcome.double_spends;
    }
    (units, double_spends)
}

#[test]
fn a_dag_under_delay_loss_and_partitions_agrees_over_200_seeds_at_4_nodes() {
    let (units, double_spends) = run_clean(&spec(4), 0..200);
    assert!(units > 200 * 20, "a load ran: {units} units");
    assert!(double_spends > 200, "double spends were sent: {double_spends}");
}

#[test]
fn a_dag_agrees_over_50_seeds_at_7_nodes() {
    run_clean(&spec(7), 1_000..1_050);
}

#[test]
fn the_same_seed_gives_the_same_dag_run_over_50_seeds() {
    for seed in 0..50 {
        let first = DagWorld::new(&spec(4), seed).expect("world").run();
        let second = DagWorld::new(&spec(4), seed).expect("world").run();
        assert_eq!(first.event_digest, second.event_digest, "seed {seed}");
        assert_eq!(first.events, second.events);
    }
}

/// Seed 1 (4 nodes) and seed 1001 (7 nodes) found tips that no walk from the newest
/// checkpoint reaches, left behind for good once a checkpoint could not name them all:
/// units now approve the oldest tip besides the walk's.
#[test]
fn the_seeds_that_left_tips_behind_stay_clean() {
    run_clean(&spec(4), 1..2);
    run_clean(&spec(7), 1_001..1_002);
}

/// Seed 2513 (4 nodes, 50 checkpoints) found a node that asked one random peer for the
/// units a checkpoint named, and fell behind for good when only another peer held them:
/// a node now asks every peer, at once when it learns the checkpoint and on each retry.
#[test]
fn the_seed_that_starved_a_fetching_node_stays_clean() {
    let spec = DagSpec { checkpoints: 50, ..spec(4) };
    run_clean(&spec, 2_513..2_514);
}
