#![no_main]
//! Fuzz target `unit_dag`: see `src/unit_dag.rs`.
//!
//! The modules are compiled into this binary rather than linked from the nest-fuzz
//! library: each plugin crate exports the same abi_stable root-module symbol, so a binary
//! may link only one plugin.

#[allow(dead_code)]
#[path = "../src/steps.rs"]
mod steps;
#[allow(dead_code)]
#[path = "../src/unit_dag.rs"]
mod unit_dag;

libfuzzer_sys::fuzz_target!(|data: &[u8]| unit_dag::run(data));
