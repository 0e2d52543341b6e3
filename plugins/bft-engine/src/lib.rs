//! The Byzantine fault tolerant state machine that `consensus-bft` and `consensus-dpos`
//! export (a library only: each plugin crate exports it under its own name).
//!
//! It agrees on the next unit by Tendermint's rounds of
//! proposal, prevote and precommit ("The latest gossip on BFT consensus", Buchman, Kwon,
//! Milosevic, 2018), over a validator set with voting power that the ledger decides per
//! height (`Input::Validators`).
//!
//! At each height, rounds run until one decides. In round r the proposer (a rotation
//! weighted by power, [`ValidatorSet::proposer`]) offers a unit — its valid value if it
//! has one, else one the host builds. Validators prevote it if it is valid and they are
//! not locked on another value (or 2f+1 prevoted it in a round no earlier than their
//! lock); on 2f+1 prevotes for it they lock on it and precommit it; 2f+1 precommits of
//! one round decide it. "2f+1" is more than two thirds of the voting power and "f+1"
//! more than one third. Timeouts per step grow with the round; f+1 of the power seen
//! in a higher round moves a validator there. The decided unit goes to the host as
//! `Commit` with its [`CommitCertificate`] (the 2f+1 precommits), which block sync
//! serves and a syncing node checks against the validator set of that height.
//!
//! Safety holds while validators with at most f of the power (less than a third) are
//! Byzantine, whatever the network does; decisions resume once messages flow. Every
//! vote and proposal this node signs is persisted (`Effect::Persist`) before it leaves,
//! with the lock and the valid value, so a restarted validator re-sends what it signed
//! rather than signing anything that conflicts with it. Two conflicting votes (or
//! proposals) of one validator at one height and round are reported as evidence.
//!
//! `docs/adr/0009-bft-engine.md` maps each line of the pseudo-code to the code.

mod config;
mod engine;
mod log;
mod validators;
mod wire;

#[cfg(test)]
mod tests;

pub use config::{
    BftConfig, DEFAULT_MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES_MIN, TIMEOUT_CEILING_MS, TIMEOUT_MS_MAX, TIMEOUT_MS_MIN,
};
pub use engine::{
    BftEngine, FUTURE_MESSAGES_MAX, FUTURE_MESSAGES_PER_PEER_MAX, SNAPSHOT_VERSION, Signed, Stats, Step,
    VALIDATOR_SETS_MAX, check_certificate,
};
pub use log::{FUTURE_PROPOSAL_ROUNDS, FUTURE_ROUNDS_PER_VALIDATOR};
pub use validators::{Rotation, VALIDATORS_MAX, ValidatorSet};
pub use wire::{
    Body, CommitCertificate, DoubleProposalProof, DoubleVoteProof, Envelope, Offence, PROPOSAL_DOMAIN, Proposal,
    SignedProposal, VOTE_DOMAIN, Vote, VoteKind, proposal_message, vote_message,
};

/// The faults under which the engine keeps its guarantees (no two conflicting decisions;
/// decisions resume once the faults heal and 2f+1 of the power is up and connected):
/// message delay, loss and reordering, partitions, crashes with restart, validators down
/// for good (up to f of the power), and Byzantine validators (up to f of the power),
/// which the simulator plays as twins: two nodes running one key. The package declares
/// the same list as `tolerates` in its `plugin.toml`.
pub const TOLERATED_FAULTS: &[&str] = &["delay", "loss", "partition", "crash", "silence", "twins"];
