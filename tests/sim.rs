//! A vendor's engine under the simulator: the PoA `.so` packed and signed like any
//! vendor package, loaded by the node's loader, declaring its faults in `plugin.toml`.

use nest_host::loader::LoadOptions;
use nest_sim::{Engines, FaultFamily, RunSpec, faults::parse_families, run_seeds};
use nest_tests::{CONSENSUS_POA, pack_crate, trusting, vendor_key};

#[test]
fn a_signed_consensus_package_runs_under_the_simulator_with_the_faults_it_declares() {
    let key = vendor_key(41);
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("consensus-poa");
    let manifest = pack_crate(CONSENSUS_POA, &dir, &key);
    assert_eq!(manifest.tolerates, ["delay", "loss", "partition", "crash"]);
    let options = LoadOptions { trust: trusting("acme", &key), allow_unsigned: false };
    let engines = Engines::open(dir.to_str().unwrap(), None, &options).expect("the signed package loads");
    let faults = parse_families("all", &engines.tolerated()).unwrap();
    assert_eq!(faults, [FaultFamily::Delay, FaultFamily::Loss, FaultFamily::Partition, FaultFamily::Crash]);
    let spec = RunSpec {
        authorities: 4,
        interval_ms: 1000,
        heights: 60,
        faults,
        transactions: true,
        finality_quorum: None,
        validator_change: None,
    };
    let report = run_seeds(&spec, &engines, 0..20, |_| {});
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert!(report.final_height_median >= 30, "median final height {}", report.final_height_median);

    let stranger = LoadOptions { trust: trusting("other", &vendor_key(42)), allow_unsigned: false };
    let refused = Engines::open(dir.to_str().unwrap(), None, &stranger).err().expect("an untrusted vendor is refused");
    assert!(refused.contains("plugin.sig") || refused.contains("trust"), "{refused}");
}
