//! Links several plugin rlibs into one binary (tests that run an engine with
//! chain-linear): each plugin crate also exports the same abi_stable root-module symbol
//! (`export_plugin!`, needed in its `.so`), so such a binary may hold that symbol twice.
//! Whether the linker pulls both in depends on how rustc split the crates into object
//! files (a non-incremental build merges them). No code here reads the symbol (the loader
//! looks it up in `.so` files only); the linker is told to keep the first.

fn main() {
    println!("cargo:rustc-link-arg=-Wl,--allow-multiple-definition");
}
