//! The simulator against the real PoA, BFT and chain-linear: the seeds that found defects
//! stay fixed, the declared faults are survived over hundreds of seeds per size, runs are
//! deterministic, and an unsafe setting is caught (so a pass means something).

use nest_node::loader::LoadOptions;
use nest_sim::{Engines, FaultFamily, RunSpec, run_seed, run_seeds};

fn poa() -> Engines {
    Engines::open("poa", None, &LoadOptions::default()).expect("built-in engine")
}

fn spec(authorities: usize, heights: u64, faults: &[FaultFamily]) -> RunSpec {
    RunSpec {
        authorities,
        interval_ms: 1000,
        heights,
        faults: faults.to_vec(),
        transactions: true,
        finality_quorum: None,
        validator_change: None,
    }
}

fn assert_clean(report: &nest_sim::Report) {
    let shown: Vec<String> =
        report.violations.iter().take(5).map(|v| format!("seed {} {}: {}", v.seed, v.kind, v.detail)).collect();
    assert!(report.violations.is_empty(), "{} violations, first: {shown:#?}", report.violations.len());
}

/// Message delay alone made two honest nodes finalize different blocks at one height
/// with the PoA of ABI 4 (seeds 0 to 4 of this range failed with
/// `agreement`); the locked votes of ADR 0007 must keep every one of them clean.
#[test]
fn the_seeds_that_found_conflicting_finality_stay_clean() {
    let engines = poa();
    let report = run_seeds(&spec(4, 60, &[FaultFamily::Delay]), &engines, 0..20, |_| {});
    assert_clean(&report);
    assert_eq!(report.seeds_run, 20);
}

/// A 2/2 partition left one node unable to learn that blocks were final elsewhere, so
/// its locks never released and finality stopped for all (seed 13); and at seven nodes
/// a unit final on three nodes stayed unknown to the four others (seed 199).
#[test]
fn the_seeds_that_found_stalled_finality_stay_clean() {
    let engines = poa();
    let report = run_seeds(&spec(4, 60, &[FaultFamily::Partition]), &engines, 13..14, |_| {});
    assert_clean(&report);
    let all = engines.tolerated();
    let report = run_seeds(&spec(7, 100, &all), &engines, 199..200, |_| {});
    assert_clean(&report);
}

/// With one authority down for good, a vote it cast before it crashed was known only to
/// the node it reached; the others stayed locked and finality stopped at height 24 for
/// the 176 s left (seed 15, 200 heights). Relaying the votes a node knows, not only its
/// own, lets the others learn it.
#[test]
fn the_seed_that_found_an_unknown_vote_of_a_crashed_authority_stays_clean() {
    let engines = poa();
    let report = run_seeds(&spec(4, 200, &engines.tolerated()), &engines, 15..16, |_| {});
    assert_clean(&report);
    assert!(report.final_height_median > 100, "final height {}", report.final_height_median);
}

#[test]
fn poa_survives_every_fault_it_declares_over_200_seeds_at_4_nodes() {
    let engines = poa();
    let tolerated = engines.tolerated();
    assert_eq!(
        tolerated,
        vec![FaultFamily::Delay, FaultFamily::Loss, FaultFamily::Partition, FaultFamily::Crash],
        "PoA declares the crash-fault families, not twins"
    );
    let report = run_seeds(&spec(4, 60, &tolerated), &engines, 1000..1200, |_| {});
    assert_clean(&report);
    assert!(report.final_height_median >= 30, "finality kept up: median {}", report.final_height_median);
}

#[test]
fn poa_survives_every_fault_it_declares_over_200_seeds_at_7_nodes() {
    let engines = poa();
    let report = run_seeds(&spec(7, 60, &engines.tolerated()), &engines, 2000..2200, |_| {});
    assert_clean(&report);
}

#[test]
fn the_same_seed_gives_the_same_run_over_50_seeds() {
    let engines = poa();
    let spec = spec(4, 60, &engines.tolerated());
    let mut digests = Vec::new();
    for seed in 0..50 {
        let first = run_seed(&spec, &engines, seed);
        let again = run_seed(&spec, &engines, seed);
        assert_eq!(first.event_digest, again.event_digest, "seed {seed}");
        assert_eq!((first.events, &first.final_heights), (again.events, &again.final_heights), "seed {seed}");
        digests.push(first.event_digest);
    }
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), 50, "different seeds give different runs");
}

/// Restarted authorities come back from their synced store: none signs two different
/// votes at one height or seals two blocks in one slot (any node holding such evidence
/// against an honest key is a violation), and each catches up.
#[test]
fn crashed_authorities_restart_without_signing_twice() {
    let engines = poa();
    let report = run_seeds(&spec(4, 60, &[FaultFamily::Crash, FaultFamily::Delay]), &engines, 300..400, |_| {});
    assert_clean(&report);
}

/// The checks can fail: with a quorum of 2 of 4, delay makes honest nodes finalize
/// different blocks, and the simulator reports it with the seed.
#[test]
fn an_unsafe_quorum_is_caught() {
    let engines = poa();
    let mut unsafe_spec = spec(4, 60, &[FaultFamily::Delay]);
    unsafe_spec.finality_quorum = Some(2);
    let report = run_seeds(&unsafe_spec, &engines, 0..10, |_| {});
    let agreement: Vec<_> = report.violations.iter().filter(|v| v.kind == "agreement").collect();
    assert!(!agreement.is_empty(), "a 2-of-4 quorum under delay must split finality: {:?}", report.violations);
    let command = nest_sim::replay_command(&unsafe_spec, &engines, agreement[0].seed);
    assert!(command.contains("--finality-quorum 2") && command.contains("--faults delay"), "{command}");
}

/// PoA does not claim Byzantine safety: under twins (two nodes with one key) the engines
/// report the twin's double votes, and these count against the Byzantine key only.
#[test]
fn twins_are_reported_as_offenders() {
    let engines = poa();
    let outcomes: Vec<_> = (0..10).map(|seed| run_seed(&spec(4, 60, &[FaultFamily::Twins]), &engines, seed)).collect();
    assert!(outcomes.iter().any(|outcome| outcome.byzantine_offences > 0), "twins double-vote and are caught");
    let honest_blamed = outcomes.iter().flat_map(|o| &o.violations).filter(|v| v.kind == "double-sign").count();
    assert_eq!(honest_blamed, 0, "no honest key is blamed for the twin's messages");
}

#[test]
fn seeds_split_over_threads_give_the_same_runs() {
    let engines = poa();
    let spec = spec(4, 60, &engines.tolerated());
    let sequential = run_seeds(&spec, &engines, 0..12, |_| {});
    let parallel = nest_sim::run_seeds_parallel(&spec, poa_result, 0..12, 3, |_| {}).unwrap();
    assert_eq!(parallel.seeds_run, 12);
    assert_eq!(parallel.final_heights, sequential.final_heights);
    assert_eq!(parallel.violations, sequential.violations);
}

fn poa_result() -> Result<Engines, String> {
    Ok(poa())
}

/// An authority down for good (`silence`, which PoA does not declare): safety holds on
/// every seed. Finality resumes in most seeds but not all (ADR 0007, "silent
/// authorities"), so liveness is not asserted here.
#[test]
fn an_authority_down_for_good_never_breaks_safety() {
    let engines = poa();
    let families = [FaultFamily::Silence, FaultFamily::Partition, FaultFamily::Delay];
    let report = run_seeds(&spec(4, 100, &families), &engines, 500..600, |_| {});
    let unsafe_kinds: Vec<_> = report.violations.iter().filter(|v| v.kind != "liveness").collect();
    assert!(unsafe_kinds.is_empty(), "{unsafe_kinds:?}");
    let stalled = report
        .violations
        .iter()
        .filter(|v| v.kind == "liveness")
        .map(|v| v.seed)
        .collect::<std::collections::BTreeSet<_>>();
    assert!(stalled.len() < 10, "finality resumes in most seeds: stalled in {stalled:?}");
}

/// Seed 146 of every crash-type family with silence, at 200 heights, is one where
/// finality stays stopped after an authority went down for good (ADR 0007, "silent
/// authorities"). It must stay safe; if it ever recovers, the ADR's figure is stale.
/// (Seed 47 was such a seed until block sync handed held units to the engine.)
#[test]
fn the_seed_where_silence_still_stalls_finality_stays_safe() {
    let engines = poa();
    let families =
        [FaultFamily::Delay, FaultFamily::Loss, FaultFamily::Partition, FaultFamily::Crash, FaultFamily::Silence];
    let report = run_seeds(&spec(4, 200, &families), &engines, 146..147, |_| {});
    assert!(report.violations.iter().all(|v| v.kind == "liveness"), "{:?}", report.violations);
    assert!(!report.violations.is_empty(), "seed 146 recovers now: update ADR 0007's silent-authorities figure");
    let report = run_seeds(&spec(4, 200, &families), &engines, 47..48, |_| {});
    assert!(report.violations.is_empty(), "seed 47: {:?}", report.violations);
}

fn bft() -> Engines {
    Engines::open("bft", None, &LoadOptions::default()).expect("built-in engine")
}

/// The BFT engine declares every family, Byzantine twins included.
#[test]
fn bft_declares_every_fault_family_and_decides_finality() {
    let engines = bft();
    assert_eq!(engines.finality(), nest_sim::Finality::Decided);
    assert_eq!(
        engines.tolerated(),
        vec![
            FaultFamily::Delay,
            FaultFamily::Loss,
            FaultFamily::Partition,
            FaultFamily::Crash,
            FaultFamily::Silence,
            FaultFamily::Twins
        ]
    );
    assert_eq!(consensus_bft::TOLERATED_FAULTS.len(), engines.tolerated().len());
}

/// Seeds that stalled an earlier version of the engine (ADR 0009): a twin's prevote shown
/// to one side only (twins 24), a node that held the unit it needed to sync (partition
/// 17), unit times judged against a stale clock (all 10), loss (6), and validators split
/// between two rounds (all 5392 at 7 nodes), a laggard that could not find a peer
/// ahead to sync from (all 9515 at 7 nodes), and validators split between a lock and a
/// proof of lock seen too late (all 1225 at 7 nodes).
#[test]
fn the_seeds_that_stalled_bft_stay_clean() {
    let engines = bft();
    for (family, seed) in
        [(vec![FaultFamily::Twins], 24), (vec![FaultFamily::Partition], 17), (vec![FaultFamily::Loss], 6)]
    {
        let report = run_seeds(&spec(4, 100, &family), &engines, seed..seed + 1, |_| {});
        assert_clean(&report);
    }
    let report = run_seeds(&spec(4, 100, &engines.tolerated()), &engines, 10..11, |_| {});
    assert_clean(&report);
    // A twin's round-1 votes moved two validators to round 1 while three stayed in
    // round 0, each group waiting for the other's votes for 89 s, until validators
    // relayed the votes of their round.
    let report = run_seeds(&spec(7, 100, &engines.tolerated()), &engines, 5392..5393, |_| {});
    assert_clean(&report);
    // A validator nine heights behind dropped every vote it heard (too far ahead) and
    // asked random peers for blocks, drawing only others as far behind for 16 s; it now
    // syncs from a validator whose signed vote shows it ahead (`Effect::Behind`).
    let report = run_seeds(&spec(7, 100, &engines.tolerated()), &engines, 9515..9516, |_| {});
    assert_clean(&report);
    // Two validators locked on a value in round 1 of a height; the other three saw its
    // 2f+1 prevotes only later and proposed new values the locked two refused, round
    // after round (27 s), until the proposer re-proposes the proven value (L14 widened).
    let report = run_seeds(&spec(7, 100, &engines.tolerated()), &engines, 1225..1226, |_| {});
    assert_clean(&report);
}

#[test]
fn bft_survives_every_fault_it_declares_over_200_seeds_at_4_nodes() {
    let engines = bft();
    let report = nest_sim::run_seeds_parallel(&spec(4, 60, &engines.tolerated()), bft_result, 1000..1200, 2, |_| {})
        .expect("runs");
    assert_clean(&report);
    assert_eq!(report.seeds_run, 200);
    assert!(report.final_height_median >= 20, "decisions kept up: median {}", report.final_height_median);
}

#[test]
fn bft_survives_every_fault_it_declares_over_200_seeds_at_7_nodes() {
    let engines = bft();
    let report = nest_sim::run_seeds_parallel(&spec(7, 60, &engines.tolerated()), bft_result, 2000..2200, 2, |_| {})
        .expect("runs");
    assert_clean(&report);
    assert_eq!(report.seeds_run, 200);
}

/// Twins sign conflicting votes; the engines report them against the twin's key only,
/// and safety holds.
#[test]
fn bft_reports_twins_and_blames_no_honest_key() {
    let engines = bft();
    let outcomes: Vec<_> = (0..20).map(|seed| run_seed(&spec(4, 60, &[FaultFamily::Twins]), &engines, seed)).collect();
    assert!(outcomes.iter().any(|outcome| outcome.byzantine_offences > 0), "twins equivocate and are caught");
    for outcome in &outcomes {
        assert!(outcome.violations.is_empty(), "seed {}: {:?}", outcome.seed, outcome.violations);
    }
}

#[test]
fn bft_runs_are_deterministic() {
    let engines = bft();
    let spec = spec(4, 60, &engines.tolerated());
    for seed in 0..10 {
        let first = run_seed(&spec, &engines, seed);
        let again = run_seed(&spec, &engines, seed);
        assert_eq!(first.event_digest, again.event_digest, "seed {seed}");
    }
}

fn bft_result() -> Result<Engines, String> {
    Ok(bft())
}

/// A validator-set change genesis schedules (ledger record, handed to the engine when
/// the commit before it lands): new powers, or a validator leaving, keep the chain safe
/// and deciding.
#[test]
fn bft_follows_a_validator_set_change_scheduled_at_genesis() {
    let engines = bft();
    for powers in [vec![2, 2, 2, 1], vec![1, 1, 1, 0]] {
        let mut spec = spec(4, 60, &[FaultFamily::Delay, FaultFamily::Loss]);
        spec.validator_change = Some((15, powers.clone()));
        let report = run_seeds(&spec, &engines, 0..20, |_| {});
        assert_clean(&report);
        assert!(report.final_height_median > 30, "{powers:?}: median {}", report.final_height_median);
    }
}

/// f of 3f + 1 validators equivocate (Byzantine twins: two nodes run each key and sign
/// different proposals and votes): every offender some engine reported (with 10 heights
/// of the run left) has an offence recorded on chain within 10 heights of it in at
/// least 99 % of the seeds where it equivocated, double proposals as well as double
/// votes go on chain, and no honest node commits a conflicting block.
#[test]
fn equivocating_validators_are_recorded_on_chain_within_10_heights() {
    let engines = bft();
    for (nodes, seeds) in [(4, 0..100), (7, 100..150)] {
        let spec = spec(nodes, 60, &[FaultFamily::Twins]);
        let mut offenders = 0;
        let mut recorded_in_time = 0;
        let mut recorded_by_kind = std::collections::BTreeMap::new();
        for seed in seeds {
            let outcome = run_seed(&spec, &engines, seed);
            assert!(outcome.violations.is_empty(), "seed {seed}: {:?}", outcome.violations);
            for (kind, count) in &outcome.recorded_offences {
                *recorded_by_kind.entry(*kind).or_insert(0) += count;
            }
            let final_height = outcome.final_heights.iter().copied().max().unwrap_or(0);
            for (offender, reported_at, delay) in &outcome.evidence_delays {
                // An offence reported in the last 10 heights had no time to be included.
                if reported_at + 10 > final_height {
                    continue;
                }
                offenders += 1;
                if delay.is_some_and(|heights| heights <= 10) {
                    recorded_in_time += 1;
                } else {
                    eprintln!("{nodes} nodes, seed {seed}: offender {offender} recorded after {delay:?} heights");
                }
            }
        }
        assert!(offenders >= 20, "{nodes} nodes: twins equivocated in too few runs ({offenders})");
        assert!(recorded_in_time * 100 >= offenders * 99, "{nodes} nodes: {recorded_in_time} of {offenders} in time");
        eprintln!("{nodes} nodes: {recorded_in_time} of {offenders} offenders recorded within 10 heights");
        eprintln!("{nodes} nodes: offences recorded by kind {recorded_by_kind:?}");
        // Twins propose different units when their key's turn comes, and vote apart.
        for kind in ["prevote", "precommit", "proposal"] {
            assert!(
                recorded_by_kind.get(kind).is_some_and(|count| *count > 0),
                "{nodes} nodes: no {kind} offence recorded"
            );
        }
    }
}

fn dpos() -> Engines {
    Engines::open("dpos", None, &LoadOptions::default()).expect("built-in engine")
}

fn dpos_result() -> Result<Engines, String> {
    Ok(dpos())
}

/// Seeds that failed DPoS's first design (PoA's locked votes with a set per round, ADR
/// 0013): honest delegates reported as equivocating (16), and a permanent stall at a
/// round boundary after a 2|2 partition (26).
#[test]
fn the_seeds_that_refuted_dposs_first_design_stay_clean() {
    let engines = dpos();
    // The faults that design declared (PoA's), so that each seed draws the same plan.
    let faults = [FaultFamily::Delay, FaultFamily::Loss, FaultFamily::Partition, FaultFamily::Crash];
    for seed in [16, 26] {
        let report = run_seeds(&spec(4, 100, &faults), &engines, seed..seed + 1, |_| {});
        assert_clean(&report);
    }
}

/// DPoS is BFT agreement among the ledger's rounds of delegates: it declares BFT's
/// faults, twins included, and decides finality.
#[test]
fn dpos_declares_bfts_faults_and_decides_finality() {
    let engines = dpos();
    assert_eq!(engines.finality(), nest_sim::Finality::Decided);
    assert_eq!(engines.tolerated(), bft().tolerated());
}

/// Under every fault it declares, over 200 seeds: finalized prefixes never conflict,
/// digests agree, decisions resume after the faults heal, no honest key signs twice; and
/// the delegates registered by the load take over, each round in a new order.
#[test]
fn dpos_survives_every_fault_it_declares_over_200_seeds_at_4_nodes() {
    let engines = dpos();
    let set_changes = std::sync::Mutex::new(Vec::new());
    let report =
        nest_sim::run_seeds_parallel(&spec(4, 60, &engines.tolerated()), dpos_result, 3000..3200, 2, |outcome| {
            set_changes.lock().expect("not poisoned").push(outcome.set_changes);
        })
        .expect("runs");
    let mut set_changes = set_changes.into_inner().expect("not poisoned");
    assert_clean(&report);
    assert_eq!(report.seeds_run, 200);
    assert!(report.final_height_median >= 20, "decisions kept up: median {}", report.final_height_median);
    set_changes.sort_unstable();
    let median = set_changes[set_changes.len() / 2];
    assert!(median >= 3, "rounds re-shuffled their delegates: median {median} set changes per run");
}

/// Five nodes, four delegates a round: the staking load votes delegates in and out, and
/// every seed stays clean through the changes of membership.
#[test]
fn dpos_survives_delegates_voted_in_and_out_over_100_seeds_at_5_nodes() {
    let engines = dpos();
    assert_eq!(nest_sim::world::dpos_delegates(5), 4);
    let membership_changes = std::sync::Mutex::new(Vec::new());
    let report =
        nest_sim::run_seeds_parallel(&spec(5, 60, &engines.tolerated()), dpos_result, 3500..3600, 2, |outcome| {
            membership_changes.lock().expect("not poisoned").push(outcome.membership_changes);
        })
        .expect("runs");
    assert_clean(&report);
    let changes = membership_changes.into_inner().expect("not poisoned");
    let with_changes = changes.iter().filter(|count| **count > 0).count();
    assert!(with_changes >= 50, "delegates moved in and out in {with_changes} of 100 runs");
}
