//! Links several plugin rlibs into one binary: each plugin crate also exports the same
//! abi_stable root-module symbol (`export_plugin!`, needed in its `.so`), so a binary
//! that links two of them (the simulator runs PoA with chain-linear) holds that symbol
//! twice. No code here reads it (the loader looks it up in `.so` files only); the linker
//! is told to keep the first.

fn main() {
    println!("cargo:rustc-link-arg=-Wl,--allow-multiple-definition");
}
