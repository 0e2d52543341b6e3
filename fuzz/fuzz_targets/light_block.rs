#![no_main]
//! Fuzz target `light_block`: see `src/light_block.rs`.

#[allow(dead_code)]
#[path = "../src/light_block.rs"]
mod light_block;

libfuzzer_sys::fuzz_target!(|data: &[u8]| light_block::run(data));
