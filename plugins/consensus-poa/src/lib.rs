//! Agree on the next unit by proof of authority: a fixed, ordered list of authorities seals blocks in turn.
//!
//! Time is cut into slots: `slot = now_ms / block_interval_ms`, and the leader of a slot
//! is `authorities[slot % authorities.len()]`. In its slot the leader asks the host for
//! a unit ([`Effect::RequestProposal`]), seals it (`host.sign(b"nest/poa/seal/v1" ++
//! slot (u64 LE) ++ host.hash(unit))`), commits it and broadcasts it as a
//! [`PoaMessage::Block`]. Other nodes check the seal against the slot leader, have the
//! host verify the unit ([`Effect::Verify`]) and commit it with the seal as certificate.
//! Two different units sealed for one slot are reported as [`Effect::Evidence`].
//!
//! The engine is a sans-IO state machine: time arrives as [`Input::Tick`], keys stay in
//! the host, and every bound is named ([`PENDING_UNITS_MAX`], [`SEEN_SLOTS_MAX`],
//! `max_message_bytes`).

mod config;
mod engine;
mod wire;

#[cfg(test)]
mod tests;

pub use config::{
    AUTHORITIES_MAX, BLOCK_INTERVAL_MS_MAX, BLOCK_INTERVAL_MS_MIN, DEFAULT_MAX_CLOCK_DRIFT_MS,
    DEFAULT_MAX_MESSAGE_BYTES, MAX_CLOCK_DRIFT_MS_MAX, MAX_MESSAGE_BYTES_MIN, PoaConfig,
};
pub use wire::{
    DoubleVoteProof, EquivocationProof, PoaMessage, SEAL_DOMAIN, Seal, SealedDigest, VOTE_DOMAIN, seal_message,
    vote_message,
};

pub use engine::*;

nest_sdk::export_plugin! {
    name: "consensus-poa",
    vendor: "Nest",
    description: "Proof of authority: a fixed, ordered list of authorities signs blocks in turn.",
    consensus: PoaEngine,
}
