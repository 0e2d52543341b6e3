//! Run a Nest node: load signed plugins, drive chains, persist blocks, serve the API.
//!
//! The binary `nestd` (see `main.rs`) is a thin command-line front over this library.

pub mod admin;
pub mod api;
pub mod bench;
pub mod check;
pub mod client;
pub mod devices;
pub mod devnet;
pub mod init;
pub mod logring;
pub mod market;
pub mod merkle_cli;
pub mod node;
pub mod ops;
pub mod procfs;
pub mod rng;
pub mod run;
pub mod session;
pub mod soak;
pub mod up;
pub mod wallet;

/// The ledger and the keys and hashes it uses live in `nest-ledger`; they keep their
/// paths here.
pub use nest_ledger::{crypto, ledger};
pub use nest_manifest as manifest;
pub use nest_net as net;
pub use nest_package::{self as package, loader};
pub use nest_script as script;
pub use nest_store as store;
