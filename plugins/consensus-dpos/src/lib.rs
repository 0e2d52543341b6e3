//! Agree on the next unit by delegated proof of stake: the delegates that staked votes
//! elect propose blocks in turn, one round of N heights at a time, and Tendermint rounds
//! among them make each block final (ADR 0013).
//!
//! The ledger elects each round's delegates and their order (`ledger::rounds`, ADR 0012
//! and 0013): the top N by stake-weighted approval votes, sorted by `sha256(round seed ‖
//! node key)`, written a round ahead as the validator set of the round's heights. The
//! host hands each set over as [`nest_sdk::Input::Validators`]. At height h, round 0 of
//! the agreement is proposed by the delegate at position `(h − 1) mod N` of the round's
//! order: every delegate proposes once per round, in the round's order. A delegate that
//! misses its turn is skipped: after the propose timeout, round 1 passes the turn to the
//! next delegate. A proposal from anyone but the turn's delegate is refused, and two
//! conflicting proposals or votes of one delegate are evidence.
//!
//! Finality is BFT's: a block is final, and irreversible, when delegates with more than
//! two thirds of the round's seats precommit it — not DPoS's "last irreversible block",
//! which counts delegates that built on a block and is unsafe when an honest delegate
//! switches branches (ADR 0013). The state machine is [`bft_engine::BftEngine`] with
//! [`bft_engine::Rotation::InOrder`]; this crate is its plugin export.

use bft_engine::{BftConfig, BftEngine, Rotation};
use nest_sdk::{ConfigError, ConsensusEngine, Effect, Host, Input, PluginError, SignedBytes};

#[cfg(test)]
mod tests;

/// The faults under which DPoS keeps its guarantees: BFT's, as its agreement is BFT's
/// (declared as `tolerates` in `plugin.toml` for `nestd sim --faults all`).
pub const TOLERATED_FAULTS: &[&str] = bft_engine::TOLERATED_FAULTS;

/// The DPoS engine: BFT agreement among each round's delegates, proposers in turn.
pub struct DposEngine(BftEngine);

impl ConsensusEngine for DposEngine {
    /// The BFT engine's table (timeouts, `commit_wait_ms` as the pace of blocks): the
    /// delegates are not configured, the ledger elects them.
    type Config = BftConfig;

    fn check_config(config: &BftConfig) -> Result<(), ConfigError> {
        config.check()
    }

    fn new(config: BftConfig, host: Host) -> Result<Self, PluginError> {
        BftEngine::with_rotation(config, Rotation::InOrder, host).map(DposEngine)
    }

    fn handle(&mut self, input: Input) -> Result<Vec<Effect>, PluginError> {
        self.0.handle(input)
    }

    fn snapshot(&self) -> Result<Vec<u8>, PluginError> {
        self.0.snapshot()
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), PluginError> {
        self.0.restore(bytes)
    }

    fn message_signatures(message: &[u8], host: &Host) -> Vec<SignedBytes> {
        BftEngine::message_signatures(message, host)
    }
}

nest_sdk::export_plugin! {
    name: "consensus-dpos",
    vendor: "Nest",
    description: "Delegated proof of stake: rounds of delegates elected by staked votes propose in turn; Tendermint rounds among them make each block final.",
    consensus: DposEngine,
}
