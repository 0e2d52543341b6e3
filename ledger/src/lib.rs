//! The ledger every Nest node runs, deterministic and free of I/O (key files aside):
//! transactions and their signatures, accounts and records, block execution, the state
//! digest, the mempool, Merkle roots, and the market and device transaction bodies.
//!
//! - [`ledger`]: the ledger itself (see its module documentation).
//! - [`crypto`]: the node's Ed25519 keys, SHA-256.
//! - [`device_keys`]: devices' P-256 keys and the point check of keys registered on chain.
//!
//! The node (`nest-host`) re-exports these as `nest_host::{ledger, crypto}` and
//! `nest_host::devices::keys`; the simulator runs them through the node's chain runtime.

pub mod crypto;
pub mod device_keys;
pub mod ledger;
