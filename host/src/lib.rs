//! Run a Nest node: load signed plugins, drive chains, persist blocks, serve the API.
//!
//! The binary `nestd` (see `main.rs`) is a thin command-line front over this library.

pub mod crypto;
pub mod ledger;
pub mod loader;
pub mod manifest;
pub mod package;
pub mod store;
