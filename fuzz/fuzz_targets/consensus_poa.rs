#![no_main]
//! Fuzz target `consensus_poa`: see `src/consensus_poa.rs`.
//!
//! The modules are compiled into this binary rather than linked from the nest-fuzz
//! library: each plugin crate exports the same abi_stable root-module symbol, so a binary
//! may link only one plugin.

#[allow(dead_code)]
#[path = "../src/consensus_poa.rs"]
mod consensus_poa;
#[allow(dead_code)]
#[path = "../src/engine.rs"]
mod engine;
#[allow(dead_code)]
#[path = "../src/steps.rs"]
mod steps;

libfuzzer_sys::fuzz_target!(|data: &[u8]| consensus_poa::run(data));
