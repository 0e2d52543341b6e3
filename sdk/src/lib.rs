//! Define the stable boundary between the `nestd` host and its plugins.
//!
//! A plugin is a `cdylib` that depends on this crate only. It implements one or more
//! of the four plugin kinds as plain Rust traits — [`ConsensusEngine`],
//! [`ChainType`], [`RadioDriver`], [`MarketPolicy`] — and exports them with one
//! [`export_plugin!`] line. The macro builds the abi_stable root module and wraps every
//! entry point so that a panic inside the plugin becomes [`PluginError::Panicked`]
//! instead of unwinding into the host.
//!
//! **Plugins are synchronous, sans-IO state machines.** The host owns time, randomness,
//! keys, network, storage and threads: a plugin receives inputs and returns effects.
//! Radio drivers are the one exception and run their own threads.
//!
//! Opaque payloads (units, consensus messages) cross the boundary as bytes; inside a
//! plugin, encode them with [`borsh`], the canonical encoding of Nest.

// abi_stable's `#[sabi_trait]` expands to impls inside a const block.
#![allow(non_local_definitions)]

pub mod certificate;
pub mod chain;
pub mod config;
pub mod consensus;
pub mod device;
pub mod error;
#[doc(hidden)]
pub mod export;
pub mod fragment;
pub mod host;
pub mod market;
pub mod radio;
#[cfg(feature = "testing")]
pub mod testing;
pub mod types;

pub use abi_stable;
pub use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
pub use borsh;
pub use chain::{BuildRequest, ChainType, InsertReport, PARENTS_MAX, UnitRef, UnitView};
pub use config::ConfigError;
pub use consensus::{
    ConsensusEngine, Counter, Effect, EngineStatus, Input, LastCommit, Persisted, RoundValue, SignedBytes,
    UnitExpectation, Validator,
};
pub use device::{DeviceEnvelope, EnvelopeError, device_uid};
pub use error::PluginError;
pub use export::{MessageSignatures, PluginInfo, PluginKind, PluginModule, PluginModuleRef};
pub use fragment::{
    FragmentError, FragmentReject, Reassembler, Reassembly, ReassemblyLimits, ReassemblyStats, fragment,
};
pub use host::{Host, HostServices, LogLevel};
pub use market::{MarketPolicy, Match, Order, Quote, QuoteRequest, Round, Terms, Tier, Usage};
pub use radio::{FrameSink, RadioDriver, RadioFrame, RadioInfo, SinkStatus};
pub use serde;
pub use types::{Hash32, PublicKey, Signature};

/// Version of the plugin ABI defined by this crate.
///
/// Written into every package's `plugin.toml` as `sdk_abi`; the host refuses a package
/// whose number is outside [`ABI_COMPATIBLE_MIN`]..=`ABI_VERSION` before it opens the
/// library. Bumped whenever a type that crosses the boundary changes (6 added
/// [`consensus::Input::Validators`] and [`consensus::Effect::Status`]; 7 added
/// [`radio::FrameSinkFfi::skipped`], a defaulted method at the end of the sink's vtable;
/// 8 added [`consensus::Effect::Behind`] and [`consensus::Effect::Ignore`]; 9 added
/// [`PluginModule::consensus_message_signatures`], a field at the end of the root module
/// that older libraries lack; 10 added the chain type's [`chain::ChainTypeFfi::parents`],
/// `tips`, `checkpoint` and `weight` for chains of several parents, optional methods at
/// the end of its vtable that answer as a linear chain when a plugin lacks them).
pub const ABI_VERSION: u32 = 10;

/// The oldest plugin ABI this SDK's host still loads: packages declaring an `sdk_abi`
/// from this up to [`ABI_VERSION`] are accepted. ABI 5 is the first whose boundary enums
/// are extensible ([`consensus::Input_NE`], [`consensus::Effect_NE`]), so that a later
/// additive change can raise [`ABI_VERSION`] and keep this; a breaking change raises
/// both.
pub const ABI_COMPATIBLE_MIN: u32 = 5;
