//! Devices: the node's pipeline and keys (`nest_node::devices`), and the tools that
//! drive them from outside — the `nestd device` CLI and the devnet's simulated devices.

pub use nest_node::devices::*;

pub mod cli;
pub mod devnet;
