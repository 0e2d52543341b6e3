//! Feed untrusted bytes to every decoder of Nest, for `cargo fuzz` targets and their seeds.
//!
//! Each module is one target: `run(data)` is what the target's `fuzz_target!` calls, and
//! must never panic on any input (a panic is a crash the fuzzer reports). Decoders of a
//! single message take the bytes as they are; state machines (the chain type, the
//! consensus engines, the reassembler) read the bytes as a sequence of [`steps`], each a
//! tag and a payload, so the fuzzer can drive them through many inputs in one run.
//! `seeds` writes the small valid examples committed under `fuzz/seeds/`.

pub mod api_json;
pub mod certificate;
pub mod consensus_bft;
pub mod consensus_poa;
pub mod device_envelope;
pub mod engine;
pub mod light_block;
pub mod manifest;
pub mod net_codec;
pub mod plugin_toml;
pub mod reassembler;
pub mod seeds;
pub mod steps;
pub mod tx;
pub mod unit_dag;
pub mod unit_linear;

/// A target: its name and the function its binary calls.
pub type Target = (&'static str, fn(&[u8]));

/// The fuzz targets, by name (one binary each under `fuzz_targets/`).
pub const TARGETS: &[Target] = &[
    ("tx", tx::run),
    ("unit_linear", unit_linear::run),
    ("unit_dag", unit_dag::run),
    ("consensus_poa", consensus_poa::run),
    ("consensus_bft", consensus_bft::run),
    ("certificate", certificate::run),
    ("net_codec", net_codec::run),
    ("device_envelope", device_envelope::run),
    ("reassembler", reassembler::run),
    ("plugin_toml", plugin_toml::run),
    ("manifest", manifest::run),
    ("api_json", api_json::run),
    ("light_block", light_block::run),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::{fs, path::Path};

    #[test]
    fn every_target_has_a_binary_and_seeds() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for (name, _) in TARGETS {
            assert!(root.join("fuzz_targets").join(format!("{name}.rs")).is_file(), "fuzz_targets/{name}.rs");
            let seeds = fs::read_dir(root.join("seeds").join(name)).map(|dir| dir.count()).unwrap_or(0);
            assert!(seeds > 0, "seeds/{name} holds no seed");
        }
    }

    #[test]
    fn every_committed_seed_runs_without_a_crash() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
        for (name, run) in TARGETS {
            for entry in fs::read_dir(root.join(name)).expect("seed directory") {
                let path = entry.expect("entry").path();
                run(&fs::read(&path).expect("seed"));
            }
        }
    }

    fn seed(target: &str, name: &str) -> Vec<u8> {
        let found = seeds::all().into_iter().find(|(t, n, _)| *t == target && n == name);
        found.map(|(_, _, bytes)| bytes).expect("a known seed")
    }

    #[test]
    fn re_signed_messages_get_past_the_signature_checks_to_a_commit() {
        let poa = engine::run(&consensus_poa::Poa::default(), &seed("consensus_poa", "receive-vote-commit"));
        assert!(poa >= 1, "the PoA engine committed the signed block");
        let bft = engine::run(&consensus_bft::Bft::default(), &seed("consensus_bft", "round-decides"));
        assert!(bft >= 1, "the BFT engine decided the signed proposal");
    }

    #[test]
    fn generated_seeds_run_without_a_crash() {
        for (target, _, bytes) in seeds::all() {
            let (_, run) = TARGETS.iter().find(|(name, _)| *name == target).expect("a known target");
            run(&bytes);
        }
    }
}
