#![no_main]
//! Fuzz target `net_codec`: see `src/net_codec.rs`.
//!
//! The modules are compiled into this binary rather than linked from the nest-fuzz
//! library: each plugin crate exports the same abi_stable root-module symbol, so a binary
//! may link only one plugin.

#[allow(dead_code)]
#[path = "../src/net_codec.rs"]
mod net_codec;

libfuzzer_sys::fuzz_target!(|data: &[u8]| net_codec::run(data));
