#![no_main]
//! Fuzz target `api_json`: see `src/api_json.rs`.
//!
//! The modules are compiled into this binary rather than linked from the nest-fuzz
//! library: each plugin crate exports the same abi_stable root-module symbol, so a binary
//! may link only one plugin.

#[allow(dead_code)]
#[path = "../src/api_json.rs"]
mod api_json;

libfuzzer_sys::fuzz_target!(|data: &[u8]| api_json::run(data));
