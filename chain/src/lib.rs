//! One chain's runtime, free of I/O: the state machine `nestd run` and `nestd sim` both
//! drive (ADR 0008, ADR 0011).
//!
//! - [`runtime`]: [`runtime::ChainRuntime`]: inputs in (ticks, consensus messages,
//!   gossiped transactions, synced blocks), effects out (units to publish, blocks to
//!   commit through [`nest_store::ChainStore`]), the ledger and mempool inside;
//! - [`dag`]: [`dag::DagRuntime`]: a DAG chain's units held as their parents arrive,
//!   executed when a main-chain checkpoint names them (ADR 0015);
//! - [`slot`]: one plugin instance, disabled when it panics;
//! - [`status`]: what a chain reports of itself;
//! - [`serve_view`]: what a block-sync request is answered from beyond the store;
//! - [`wire`]: synced blocks and gossip verdicts, the types the network edge carries;
//! - [`telemetry`]: the metrics and events traits the host implements.
//!
//! No clock (the caller passes `now_ms`), no network, no global state but the metrics
//! sink the host installs.

pub mod dag;
pub mod runtime;
pub mod serve_view;
pub mod slot;
pub mod status;
pub mod telemetry;
pub mod wire;
