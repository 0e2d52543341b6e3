//! The Nest node: loads the signed plugins a manifest names, drives each chain's runtime,
//! the network, the radios and device pipeline and the market strategies, and answers
//! requests sent on its channel ([`node::Request`]). It speaks no HTTP: `nest-api` serves the
//! handle, and `nest-host` composes the two into `nestd run`.

pub mod clock;
pub mod devices;
pub mod market;
pub mod node;
pub mod rng;
pub mod telemetry;

/// The crates the node is built from, under the paths its modules use.
pub use nest_ledger::{crypto, ledger};
pub use nest_manifest as manifest;
pub use nest_net as net;
pub use nest_package::{self as package, loader};
pub use nest_script as script;
pub use nest_store as store;
