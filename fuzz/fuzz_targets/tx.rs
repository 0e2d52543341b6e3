#![no_main]
//! Fuzz target `tx`: see `src/tx.rs`.
//!
//! The modules are compiled into this binary rather than linked from the nest-fuzz
//! library: each plugin crate exports the same abi_stable root-module symbol, so a binary
//! may link only one plugin.

#[allow(dead_code)]
#[path = "../src/tx.rs"]
mod tx;

libfuzzer_sys::fuzz_target!(|data: &[u8]| tx::run(data));
