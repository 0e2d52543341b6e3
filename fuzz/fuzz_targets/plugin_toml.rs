#![no_main]
//! Fuzz target `plugin_toml`: see `src/plugin_toml.rs`.
//!
//! The modules are compiled into this binary rather than linked from the nest-fuzz
//! library: each plugin crate exports the same abi_stable root-module symbol, so a binary
//! may link only one plugin.

#[allow(dead_code)]
#[path = "../src/plugin_toml.rs"]
mod plugin_toml;

libfuzzer_sys::fuzz_target!(|data: &[u8]| plugin_toml::run(data));
