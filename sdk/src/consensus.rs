//! Consensus engines: agree on which unit comes next.
//!
//! An engine is a state machine driven by [`Input`]s; each call returns [`Effect`]s that
//! the host executes (send, set a timer, ask the chain type for a proposal, commit).
//! Engines never read the clock: time arrives as [`Input::Tick`].

use crate::{
    config::ConfigError,
    error::PluginError,
    export::guard,
    host::Host,
    types::{Hash32, PublicKey, Signature},
};
use abi_stable::{
    StableAbi,
    nonexhaustive_enum::NonExhaustive,
    sabi_trait,
    std_types::{RBox, ROption, RResult, RSlice, RString, RVec},
};
use serde::de::DeserializeOwned;

/// The last unit the node committed before (re)starting.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct LastCommit {
    /// Its height (0 for genesis).
    pub height: u64,
    /// Its hash.
    pub unit_hash: Hash32,
    /// Its timestamp in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// One value an engine stored with [`Effect::Persist`], handed back on [`Input::Start`].
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Persisted {
    /// The engine's key.
    pub key: RVec<u8>,
    /// The value last stored under it.
    pub bytes: RVec<u8>,
}

/// One member of a validator set and its voting power.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validator {
    /// The validator's node key.
    pub key: PublicKey,
    /// Its voting power (at least 1; quorums count power, not members).
    pub power: u64,
}

/// A cumulative count an engine keeps for operators (exported as a metric).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    /// Its name, lowercase with underscores (`timeouts_propose`).
    pub name: RString,
    /// Its value since the engine started.
    pub value: u64,
}

/// Where an engine stands, for operators: the console, the API and the metrics show the
/// last one it reported with [`Effect::Status`].
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct EngineStatus {
    /// The height being decided.
    pub height: u64,
    /// The round at that height (0 for engines without rounds).
    pub round: u32,
    /// The step, in the engine's words (`propose`, `prevote`, ...).
    pub step: RString,
    /// The round and value this node is locked on, if any.
    pub locked: ROption<RoundValue>,
    /// The round and value it holds as valid (it would propose it), if any.
    pub valid: ROption<RoundValue>,
    /// Cumulative counts (rounds started, timeouts fired, votes received, ...).
    pub counters: RVec<Counter>,
}

/// A round and a value (`host.hash(unit bytes)`).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundValue {
    /// The round.
    pub round: u32,
    /// The value.
    pub value: Hash32,
}

/// What a unit handed to [`Effect::Verify`] must also satisfy, beyond the chain's own
/// checks: the engine knows who may seal it and when, the chain type knows what the
/// unit says. The host refuses a unit whose header disagrees.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct UnitExpectation {
    /// The proposer the unit's header must name (the key that sealed it), if any.
    pub proposer: ROption<PublicKey>,
    /// The unit's timestamp must not be earlier (milliseconds since the Unix epoch).
    pub not_before_ms: u64,
    /// The unit's timestamp must not be later (milliseconds since the Unix epoch).
    pub not_after_ms: u64,
}

impl UnitExpectation {
    /// No expectation: any proposer, any time.
    pub const ANY: UnitExpectation =
        UnitExpectation { proposer: ROption::RNone, not_before_ms: 0, not_after_ms: u64::MAX };
}

/// What the host tells a consensus engine.
///
/// It crosses the boundary as [`Input_NE`] (abi_stable's non-exhaustive enum, with room
/// for variants a later SDK adds): an engine built against this SDK ignores an input it
/// does not know ([`ConsensusAdapter`] does that for it).
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 24], traits(Debug, Clone, PartialEq))))]
pub enum Input {
    /// The node starts or restarts at `last_commit`.
    Start {
        /// The head of the committed chain.
        last_commit: LastCommit,
        /// Wall-clock time in milliseconds since the Unix epoch.
        now_ms: u64,
        /// Everything the engine stored with [`Effect::Persist`] and the store holds
        /// (the last value per key), so that a restarted engine never signs twice.
        persisted: RVec<Persisted>,
    },
    /// Time has passed (a timer fired, or the host's periodic tick).
    Tick {
        /// Wall-clock time in milliseconds since the Unix epoch.
        now_ms: u64,
    },
    /// A consensus message from a peer.
    Message {
        /// The node key of the peer that delivered it: a neighbour, which may have relayed
        /// it (gossip carries no author; the message's own signatures say who wrote it).
        from: PublicKey,
        /// The message, in the engine's own encoding.
        bytes: RVec<u8>,
    },
    /// The chain type built the unit asked for with [`Effect::RequestProposal`].
    Proposal {
        /// Height of the unit.
        height: u64,
        /// The unit, in the chain type's encoding.
        unit_bytes: RVec<u8>,
    },
    /// The host finished checking a unit asked for with [`Effect::Verify`].
    Verified {
        /// SHA-256 of the exact `unit_bytes` given in [`Effect::Verify`] (engines do not
        /// know the chain type's unit format, so this is not the unit's own hash).
        unit_digest: Hash32,
        /// Whether the unit is valid (structure, parent, transactions, state digest).
        ok: bool,
    },
    /// Units up to `last_commit` became final (written to disk; never reverted).
    Committed {
        /// The newest final unit.
        last_commit: LastCommit,
    },
    /// A unit fetched from a peer by block sync, with the certificate that peer stored
    /// for it: the engine checks it as it checks a gossiped one, then asks to `Verify`.
    Sync {
        /// The unit, in the chain type's encoding.
        unit_bytes: RVec<u8>,
        /// The certificate from the unit's `Commit`.
        certificate: RVec<u8>,
        /// The proof that the unit is final, from [`Effect::Certify`] on the serving
        /// node (empty when it had none, e.g. for a unit not final there yet).
        finality: RVec<u8>,
    },
    /// Fork choice moved the head (the unit to build on) to `head`, which need not be
    /// final yet: it may still lose to a longer branch.
    Head {
        /// The new head.
        head: LastCommit,
        /// The units from just above the final unit up to and including `head`, in
        /// ascending height (empty when the head is the final unit): what a vote for the
        /// head vouches for, so that an engine can tell which branch it is on.
        branch: RVec<LastCommit>,
    },
    /// The chain type could not build the unit asked for with
    /// [`Effect::RequestProposal`]: the engine stops waiting for it.
    ProposalFailed {
        /// Height of the unit that was asked for.
        height: u64,
        /// Why, for operators.
        reason: RString,
    },
    /// The validator set that signs units from `from_height` on, until a later
    /// `Validators` says otherwise. The ledger decides it (at genesis, then only at a
    /// height boundary), so every node hands its engine the same set for each height.
    /// The host sends the set of the next height before [`Input::Start`] and again
    /// whenever a commit changes it. Engines whose authority list is their own config
    /// (PoA) ignore it.
    Validators {
        /// The first height this set signs.
        from_height: u64,
        /// The members, in the ledger's order (distinct keys).
        validators: RVec<Validator>,
    },
}

/// What a consensus engine asks the host to do.
///
/// It crosses the boundary as [`Effect_NE`]: a host skips (and logs) an effect from a
/// newer SDK that it cannot execute ([`handle`] reports how many).
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 24], traits(Debug, Clone, PartialEq))))]
#[must_use]
pub enum Effect {
    /// Send to every peer of the chain.
    Broadcast {
        /// The message.
        bytes: RVec<u8>,
    },
    /// Send to one peer.
    Send {
        /// The peer's node key.
        to: PublicKey,
        /// The message.
        bytes: RVec<u8>,
    },
    /// Deliver a [`Input::Tick`] no later than `at_ms`.
    TimerAt {
        /// Wall-clock milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// Ask the chain type to build a unit on `parent`; the answer comes as [`Input::Proposal`].
    RequestProposal {
        /// Height of the unit to build.
        height: u64,
        /// Hash of its parent.
        parent: Hash32,
        /// Timestamp to put in the unit.
        timestamp_ms: u64,
    },
    /// Ask the host to validate a unit; the answer comes as [`Input::Verified`].
    Verify {
        /// The unit, in the chain type's encoding.
        unit_bytes: RVec<u8>,
        /// What the unit's header must say (the sealer as proposer, a time in its slot).
        expect: UnitExpectation,
    },
    /// Store `bytes` under `key` durably (synced to disk) before any later effect of this
    /// call is executed; the last value per key comes back in [`Input::Start`].
    Persist {
        /// Engine-chosen key.
        key: RVec<u8>,
        /// Value.
        bytes: RVec<u8>,
    },
    /// Consensus accepts this unit: the host inserts it into the chain type and applies
    /// what becomes final.
    Commit {
        /// The unit, in the chain type's encoding.
        unit_bytes: RVec<u8>,
        /// Engine-specific proof of agreement (a signature, a quorum certificate).
        certificate: RVec<u8>,
    },
    /// `proof` shows that the unit `unit_hash` is final (for example a quorum of signed
    /// votes): the host stores it with the block and serves it with the block to syncing
    /// nodes and light clients, whose engines check it ([`Input::Sync`]). Emit it before
    /// the effect that makes the unit final, so that the block is written with it.
    Certify {
        /// Hash of the unit (the chain type's hash).
        unit_hash: Hash32,
        /// The proof, in the engine's encoding.
        proof: RVec<u8>,
    },
    /// A peer broke the rules (for example equivocated); `bytes` proves it.
    Evidence {
        /// The offender's key.
        offender: PublicKey,
        /// What happened, for operators.
        reason: RString,
        /// The proof, in the engine's encoding.
        bytes: RVec<u8>,
    },
    /// `authority` vouches for the agreed unit `unit_hash` and, through it, for its
    /// ancestors (a checked vote): the host hands it to the chain type's finality rule
    /// ([`crate::ChainType::attest`]) and applies what becomes final.
    Attest {
        /// Hash of the unit (the chain type's hash, as in [`Input::Head`]).
        unit_hash: Hash32,
        /// The authority whose vote was checked.
        authority: PublicKey,
    },
    /// Where the engine stands now, for operators (emitted when it changes; the host
    /// keeps the last one). Variants are only ever added last: a variant's place is its
    /// number across the boundary.
    Status {
        /// The status (boxed: the enum keeps a fixed size across ABI versions).
        status: RBox<EngineStatus>,
    },
    /// The message being handled shows that its sender's chain is at `height`, more
    /// than one above the height this engine works on. Engines do not keep messages
    /// that far ahead, so block sync is the only way to catch up: the host asks that
    /// sender for blocks now instead of waiting for its next sync round with whichever
    /// peer comes next. Emit it only for a checked message, and not more often than a
    /// sync round, so that a peer cannot steer this node's sync with cheap forgeries.
    /// Added in ABI 8.
    Behind {
        /// The height the message was for.
        height: u64,
    },
    /// The input is well-formed and may come from an honest peer, but is of no use here:
    /// a block for a slot already committed, one whose slot has not started by this
    /// node's clock, one that finds the verification queue full. The host drops a
    /// gossiped message that earned this without forwarding it and without holding it
    /// against its sender, whereas [`crate::PluginError::Rejected`] says the sender broke
    /// the rules and lowers its score. Added in ABI 8.
    Ignore {
        /// Why, for the log.
        reason: RString,
    },
}

/// One signature a consensus message carries: `signature` by `key` over `message`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct SignedBytes {
    /// The signer.
    pub key: PublicKey,
    /// The bytes it signed.
    pub message: RVec<u8>,
    /// Its Ed25519 signature.
    pub signature: Signature,
}

/// A consensus engine, as a vendor writes it.
pub trait ConsensusEngine: Send + Sized + 'static {
    /// The engine's configuration, parsed from its table in the node manifest.
    type Config: DeserializeOwned;

    /// Checks a parsed configuration beyond its types (ranges, non-empty lists).
    fn check_config(_config: &Self::Config) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Builds an instance.
    fn new(config: Self::Config, host: Host) -> Result<Self, PluginError>;

    /// Handles one input and returns the effects for the host to execute, in order.
    fn handle(&mut self, input: Input) -> Result<Vec<Effect>, PluginError>;

    /// Serializes the engine's state for a hot upgrade.
    fn snapshot(&self) -> Result<Vec<u8>, PluginError> {
        Ok(Vec::new())
    }

    /// Restores state produced by [`ConsensusEngine::snapshot`] of an earlier version.
    fn restore(&mut self, _bytes: &[u8]) -> Result<(), PluginError> {
        Ok(())
    }

    /// The signatures that [`ConsensusEngine::handle`] would check through
    /// [`Host::verify`] to accept `message`, a gossiped consensus message, read from its
    /// bytes alone (no instance, no state; `host` for hashing). The host verifies them off
    /// the consensus loop, in batches, before it hands the message to the engine; the
    /// engine's own `host.verify` of those signatures then answers from the host's record
    /// of verified signatures instead of verifying again. A message with a listed
    /// signature that does not verify is rejected without reaching the engine, so list
    /// only signatures every valid message must carry. The default lists none: the engine
    /// verifies on the loop, as before ABI 9.
    fn message_signatures(_message: &[u8], _host: &Host) -> Vec<SignedBytes> {
        Vec::new()
    }
}

/// The FFI face of a consensus engine instance.
#[sabi_trait]
pub trait ConsensusFfi: Send {
    /// See [`ConsensusEngine::handle`]; call it through [`handle`].
    fn handle(&mut self, input: Input_NE) -> RResult<RVec<Effect_NE>, PluginError>;
    /// See [`ConsensusEngine::snapshot`].
    fn snapshot(&self) -> RResult<RVec<u8>, PluginError>;
    /// See [`ConsensusEngine::restore`].
    #[sabi(last_prefix_field)]
    fn restore(&mut self, bytes: RSlice<'_, u8>) -> RResult<(), PluginError>;
}

/// An owned consensus engine instance behind the boundary.
pub type ConsensusBox = ConsensusFfi_TO<'static, RBox<()>>;

/// Adapts a [`ConsensusEngine`] to [`ConsensusFfi`], catching panics.
pub struct ConsensusAdapter<E>(pub E);

impl<E: ConsensusEngine> ConsensusFfi for ConsensusAdapter<E> {
    fn handle(&mut self, input: Input_NE) -> RResult<RVec<Effect_NE>, PluginError> {
        guard(|| match input.into_enum() {
            Ok(input) => self.0.handle(input).map(|effects| effects.into_iter().map(NonExhaustive::new).collect()),
            // An input a newer host added: this engine does not know it and changes nothing.
            Err(_) => Ok(RVec::new()),
        })
    }

    fn snapshot(&self) -> RResult<RVec<u8>, PluginError> {
        guard(|| self.0.snapshot().map(RVec::from))
    }

    fn restore(&mut self, bytes: RSlice<'_, u8>) -> RResult<(), PluginError> {
        guard(|| self.0.restore(bytes.as_slice()))
    }
}

/// The effects of one [`handle`] call the host can execute, and how many it could not
/// (variants of a newer SDK than the host's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handled {
    /// The effects, in order.
    pub effects: Vec<Effect>,
    /// Effects skipped because this SDK does not know them.
    pub unknown: usize,
}

/// Hands `input` to an engine behind the boundary and unwraps its effects.
pub fn handle(engine: &mut ConsensusBox, input: Input) -> RResult<Handled, PluginError> {
    engine.handle(NonExhaustive::new(input)).map(|effects| {
        let mut handled = Handled { effects: Vec::with_capacity(effects.len()), unknown: 0 };
        for effect in effects {
            match effect.into_enum() {
                Ok(effect) => handled.effects.push(effect),
                Err(_) => handled.unknown += 1,
            }
        }
        handled
    })
}
