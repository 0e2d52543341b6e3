#![no_main]
//! Fuzz target `certificate`: see `src/certificate.rs`.
//!
//! The modules are compiled into this binary rather than linked from the nest-fuzz
//! library: each plugin crate exports the same abi_stable root-module symbol, so a binary
//! may link only one plugin.

#[allow(dead_code)]
#[path = "../src/certificate.rs"]
mod certificate;

libfuzzer_sys::fuzz_target!(|data: &[u8]| certificate::run(data));
