#![no_main]
//! Fuzz target `reassembler`: see `src/reassembler.rs`.
//!
//! The modules are compiled into this binary rather than linked from the nest-fuzz
//! library: each plugin crate exports the same abi_stable root-module symbol, so a binary
//! may link only one plugin.

#[allow(dead_code)]
#[path = "../src/reassembler.rs"]
mod reassembler;
#[allow(dead_code)]
#[path = "../src/steps.rs"]
mod steps;

libfuzzer_sys::fuzz_target!(|data: &[u8]| reassembler::run(data));
