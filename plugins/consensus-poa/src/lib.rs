//! Agree on the next unit by proof of authority: a fixed, ordered list of authorities seals blocks in turn.
//!
//! Time is cut into slots: `slot = now_ms / block_interval_ms`, and the leader of a slot
//! is `authorities[slot % authorities.len()]`. In its slot the leader asks the host for
//! a unit ([`Effect::RequestProposal`]), seals it (`host.sign(b"nest/poa/seal/v1" ++
//! slot (u64 LE) ++ host.hash(unit))`), commits it and broadcasts it as a
//! [`PoaMessage::Block`]. Other nodes check the seal against the slot leader, have the
//! host verify the unit ([`Effect::Verify`]) and commit it with the seal as certificate.
//! Two different units sealed for one slot are reported as [`Effect::Evidence`]. The host
//! checks that a unit's header names the slot leader and a time inside the slot.
//!
//! Finality comes from votes (ADR 0007). On every new head an authority votes, once per
//! height and lowest first, for each unit of the head's branch above the final unit, but
//! only while each of its earlier votes above the final height is on that branch or
//! *released* (more than n − q other authorities voted elsewhere at that height, q =
//! floor(2n/3) + 1). The chain type makes a unit final at q direct votes. A vote is
//! persisted ([`Effect::Persist`]) before it is broadcast, and so is a sealed slot, so a
//! restarted node never signs twice; own votes are sent again while finality stalls.
//!
//! The engine is a sans-IO state machine: time arrives as [`Input::Tick`], keys stay in
//! the host, and every bound is named ([`PENDING_UNITS_MAX`], [`SEEN_SLOTS_MAX`],
//! [`VOTES_SEEN_MAX`], [`VOTE_HEIGHT_AHEAD_MAX`], [`VOTES_RESENT_MAX`], `max_message_bytes`).

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
    DoubleVoteProof, EquivocationProof, FinalityProof, PoaMessage, SEAL_DOMAIN, Seal, SealedDigest, VOTE_DOMAIN,
    seal_message, vote_message,
};

pub use engine::*;

/// The faults under which PoA keeps its guarantees (no two conflicting final units;
/// finality resumes once messages flow): honest authorities, any message delay, loss,
/// reordering, network partition, and crashes with restart. `twins` (one authority key
/// run by two nodes, or any Byzantine authority) is not listed: two faces of one key
/// can vote twice at a height, which releases locks and breaks the quorum intersection
/// the safety argument rests on. Double votes are reported as evidence, not prevented.
/// (`delay` includes reordering.) The package declares the same list as `tolerates` in
/// its `plugin.toml`, which is what `nestd sim --faults all` reads.
pub const TOLERATED_FAULTS: &[&str] = &["delay", "loss", "partition", "crash"];

nest_sdk::export_plugin! {
    name: "consensus-poa",
    vendor: "Nest",
    description: "Proof of authority: a fixed, ordered list of authorities signs blocks in turn.",
    consensus: PoaEngine,
}
