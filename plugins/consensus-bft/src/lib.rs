//! Agree on the next unit by Byzantine fault tolerant consensus: Tendermint's rounds over
//! the ledger's validator set. The state machine is `bft-engine`'s (see its documentation
//! and ADR 0009); this crate is the signed plugin that exports it.

pub use bft_engine::*;

nest_sdk::export_plugin! {
    name: "consensus-bft",
    vendor: "Nest",
    description: "Byzantine fault tolerant consensus: Tendermint rounds of proposal, prevote and precommit over a weighted validator set.",
    consensus: BftEngine,
}
