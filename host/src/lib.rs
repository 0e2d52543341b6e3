//! The tools of `nestd`: `run` composes a node (`nest-node`) with its API (`nest-api`);
//! `up`, `bench`, `devnet`, `soak`, `wallet`, `init`, `check` and the offline CLIs drive
//! nodes from outside, as an operator does.
//!
//! The binary `nestd` (see `main.rs`) is a thin command-line front over this library.

pub mod bench;
pub mod check;
pub mod client;
pub mod devices;
pub mod devnet;
pub mod init;
pub mod merkle_cli;
pub mod run;
pub mod soak;
pub mod up;
pub mod wallet;

/// The node, its HTTP side and the crates they are built from keep their paths here.
pub use nest_api::{admin, api, auth, http, logring, ops, procfs, rate, server, session};
/// The ledger and the keys and hashes it uses live in `nest-ledger`; they keep their
/// paths here.
pub use nest_ledger::{crypto, ledger};
pub use nest_manifest as manifest;
pub use nest_net as net;
pub use nest_node::{market, node, rng, telemetry};
pub use nest_package::{self as package, loader};
pub use nest_script as script;
pub use nest_store as store;
