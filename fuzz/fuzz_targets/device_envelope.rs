#![no_main]
//! Fuzz target `device_envelope`: see `src/device_envelope.rs`.
//!
//! The modules are compiled into this binary rather than linked from the nest-fuzz
//! library: each plugin crate exports the same abi_stable root-module symbol, so a binary
//! may link only one plugin.

#[allow(dead_code)]
#[path = "../src/device_envelope.rs"]
mod device_envelope;

libfuzzer_sys::fuzz_target!(|data: &[u8]| device_envelope::run(data));
