//! Chain types: the shape of units, their validation, fork choice and finality.
//!
//! The host owns the ledger: it selects and executes transactions, then asks the chain
//! type to wrap them into a unit ([`ChainType::build`]). For a received unit it asks the
//! chain type to decode and validate it, re-executes the transactions and compares the
//! state digest. [`ChainType::insert`] adds an agreed unit to the chain type's view and
//! reports the units that became final, in the order the host must apply them.

use crate::{
    config::ConfigError,
    error::PluginError,
    export::guard,
    host::Host,
    types::{Hash32, PublicKey},
};
use abi_stable::{
    StableAbi, sabi_trait,
    std_types::{RBox, ROption, RResult, RSlice, RVec},
};
use serde::de::DeserializeOwned;

/// A position in the chain.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnitRef {
    /// Height (genesis is 0).
    pub height: u64,
    /// Unit hash.
    pub hash: Hash32,
    /// Timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// Everything the host decided for a new unit.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct BuildRequest {
    /// Hash of the parent unit ([`Hash32::ZERO`] for genesis).
    pub parent: Hash32,
    /// Height of the new unit.
    pub height: u64,
    /// Timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The node that proposes the unit (receives its fees).
    pub proposer: PublicKey,
    /// Merkle root of `txs`, computed by the host.
    pub tx_root: Hash32,
    /// Ledger state digest after applying `txs`.
    pub state_digest: Hash32,
    /// Encoded transactions, in execution order.
    pub txs: RVec<RVec<u8>>,
}

/// A decoded unit.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct UnitView {
    /// Unit hash.
    pub hash: Hash32,
    /// Parent hash.
    pub parent: Hash32,
    /// Height.
    pub height: u64,
    /// Timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Proposer's node key.
    pub proposer: PublicKey,
    /// Merkle root of `txs` as claimed by the unit.
    pub tx_root: Hash32,
    /// Ledger state digest after `txs`, as claimed by the unit.
    pub state_digest: Hash32,
    /// Encoded transactions, in execution order.
    pub txs: RVec<RVec<u8>>,
}

impl UnitView {
    /// The unit's position.
    pub fn to_ref(&self) -> UnitRef {
        UnitRef { height: self.height, hash: self.hash, timestamp_ms: self.timestamp_ms }
    }
}

/// What changed after [`ChainType::insert`].
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct InsertReport {
    /// The head chosen by fork choice.
    pub head: UnitRef,
    /// Units that became final, in the order the host must apply them.
    pub finalized: RVec<UnitRef>,
}

/// A chain type, as a vendor writes it.
pub trait ChainType: Send + Sized + 'static {
    /// The chain type's configuration.
    type Config: DeserializeOwned;

    /// Checks a parsed configuration beyond its types.
    fn check_config(_config: &Self::Config) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Builds an instance.
    fn new(config: Self::Config, host: Host) -> Result<Self, PluginError>;

    /// Resumes from the host's last final unit (genesis on a fresh node).
    fn start(&mut self, finalized: UnitRef) -> Result<(), PluginError>;

    /// Wraps executed transactions into a unit.
    fn build(&mut self, request: BuildRequest) -> Result<Vec<u8>, PluginError>;

    /// Decodes a unit and checks its internal consistency (no chain context).
    fn decode(&self, unit: &[u8]) -> Result<UnitView, PluginError>;

    /// Decodes a unit and checks it against the chain: known parent, height, time.
    fn validate(&self, unit: &[u8]) -> Result<UnitView, PluginError>;

    /// Adds an agreed unit; runs fork choice; reports what became final.
    fn insert(&mut self, unit: &[u8], certificate: &[u8]) -> Result<InsertReport, PluginError>;

    /// The current head.
    fn head(&self) -> UnitRef;

    /// Serializes the chain type's state for a hot upgrade.
    fn snapshot(&self) -> Result<Vec<u8>, PluginError> {
        Ok(Vec::new())
    }

    /// Restores state produced by [`ChainType::snapshot`].
    fn restore(&mut self, _bytes: &[u8]) -> Result<(), PluginError> {
        Ok(())
    }

    /// Records that `authority` vouches for the agreed unit `unit_hash` (and so for its
    /// ancestors) and reports what became final. A chain type whose finality does not
    /// count votes keeps the default, which changes nothing.
    fn attest(&mut self, _unit_hash: Hash32, _authority: PublicKey) -> Result<InsertReport, PluginError> {
        Ok(InsertReport { head: self.head(), finalized: RVec::new() })
    }

    /// The units `unit` approves, its [`UnitView::parent`] first, at most
    /// [`PARENTS_MAX`]. A linear chain's unit has one parent: the default decodes the
    /// unit and answers that one. (ABI 10.)
    fn parents(&self, unit: &[u8]) -> Result<Vec<Hash32>, PluginError> {
        Ok(vec![self.decode(unit)?.parent])
    }

    /// The units no held unit approves yet: what a new unit approves, and what a
    /// checkpoint of this chain names. A linear chain's only tip is its head. (ABI 10.)
    fn tips(&self) -> Vec<Hash32> {
        vec![self.head().hash]
    }

    /// A checkpoint that names `tips` was finalized by the main chain: reports the units
    /// that became final under it, in the order the host must execute them. Only a chain
    /// type confirmed by checkpoints (a DAG) implements it; the default refuses. (ABI 10.)
    fn checkpoint(&mut self, _tips: &[Hash32]) -> Result<InsertReport, PluginError> {
        Err(PluginError::rejected("this chain type is not confirmed by checkpoints"))
    }

    /// A held unit's cumulative weight (1 + the units that approve it directly or
    /// indirectly), or `None` where the chain type does not weigh units. (ABI 10.)
    fn weight(&self, _unit: Hash32) -> Option<u64> {
        None
    }
}

/// Most parents one unit may approve, in every chain type (ABI 10).
pub const PARENTS_MAX: usize = 8;

/// The FFI face of a chain type instance.
#[sabi_trait]
pub trait ChainTypeFfi: Send {
    /// See [`ChainType::start`].
    fn start(&mut self, finalized: UnitRef) -> RResult<(), PluginError>;
    /// See [`ChainType::build`].
    fn build(&mut self, request: BuildRequest) -> RResult<RVec<u8>, PluginError>;
    /// See [`ChainType::decode`].
    fn decode(&self, unit: RSlice<'_, u8>) -> RResult<UnitView, PluginError>;
    /// See [`ChainType::validate`].
    fn validate(&self, unit: RSlice<'_, u8>) -> RResult<UnitView, PluginError>;
    /// See [`ChainType::insert`].
    fn insert(&mut self, unit: RSlice<'_, u8>, certificate: RSlice<'_, u8>) -> RResult<InsertReport, PluginError>;
    /// See [`ChainType::head`].
    fn head(&self) -> RResult<UnitRef, PluginError>;
    /// See [`ChainType::snapshot`].
    fn snapshot(&self) -> RResult<RVec<u8>, PluginError>;
    /// See [`ChainType::restore`].
    fn restore(&mut self, bytes: RSlice<'_, u8>) -> RResult<(), PluginError>;
    /// See [`ChainType::attest`].
    #[sabi(last_prefix_field)]
    fn attest(&mut self, unit_hash: Hash32, authority: PublicKey) -> RResult<InsertReport, PluginError>;
    // ABI 10: the methods below are optional in the vtable. A plugin built before them
    // lacks them, and a call falls back to the body here, which answers as a linear
    // chain does.
    /// See [`ChainType::parents`].
    fn parents(&self, unit: RSlice<'_, u8>) -> RResult<RVec<Hash32>, PluginError> {
        self.decode(unit).map(|view| RVec::from(vec![view.parent]))
    }
    /// See [`ChainType::tips`].
    fn tips(&self) -> RResult<RVec<Hash32>, PluginError> {
        self.head().map(|head| RVec::from(vec![head.hash]))
    }
    /// See [`ChainType::checkpoint`].
    fn checkpoint(&mut self, tips: RSlice<'_, Hash32>) -> RResult<InsertReport, PluginError> {
        let _ = tips;
        RResult::RErr(PluginError::rejected("this chain type is not confirmed by checkpoints"))
    }
    /// See [`ChainType::weight`].
    fn weight(&self, unit: Hash32) -> RResult<ROption<u64>, PluginError> {
        let _ = unit;
        RResult::ROk(ROption::RNone)
    }
}

/// An owned chain type instance behind the boundary.
pub type ChainTypeBox = ChainTypeFfi_TO<'static, RBox<()>>;

/// Adapts a [`ChainType`] to [`ChainTypeFfi`], catching panics.
pub struct ChainTypeAdapter<C>(pub C);

impl<C: ChainType> ChainTypeFfi for ChainTypeAdapter<C> {
    fn start(&mut self, finalized: UnitRef) -> RResult<(), PluginError> {
        guard(|| self.0.start(finalized))
    }
    fn build(&mut self, request: BuildRequest) -> RResult<RVec<u8>, PluginError> {
        guard(|| self.0.build(request).map(RVec::from))
    }
    fn decode(&self, unit: RSlice<'_, u8>) -> RResult<UnitView, PluginError> {
        guard(|| self.0.decode(unit.as_slice()))
    }
    fn validate(&self, unit: RSlice<'_, u8>) -> RResult<UnitView, PluginError> {
        guard(|| self.0.validate(unit.as_slice()))
    }
    fn insert(&mut self, unit: RSlice<'_, u8>, certificate: RSlice<'_, u8>) -> RResult<InsertReport, PluginError> {
        guard(|| self.0.insert(unit.as_slice(), certificate.as_slice()))
    }
    fn head(&self) -> RResult<UnitRef, PluginError> {
        guard(|| Ok(self.0.head()))
    }
    fn snapshot(&self) -> RResult<RVec<u8>, PluginError> {
        guard(|| self.0.snapshot().map(RVec::from))
    }
    fn restore(&mut self, bytes: RSlice<'_, u8>) -> RResult<(), PluginError> {
        guard(|| self.0.restore(bytes.as_slice()))
    }
    fn attest(&mut self, unit_hash: Hash32, authority: PublicKey) -> RResult<InsertReport, PluginError> {
        guard(|| self.0.attest(unit_hash, authority))
    }
    fn parents(&self, unit: RSlice<'_, u8>) -> RResult<RVec<Hash32>, PluginError> {
        guard(|| {
            let parents = self.0.parents(unit.as_slice())?;
            if parents.is_empty() || parents.len() > PARENTS_MAX {
                return Err(PluginError::failed(format!(
                    "the chain type named {} parents for a unit; 1 to {PARENTS_MAX} are allowed",
                    parents.len()
                )));
            }
            Ok(RVec::from(parents))
        })
    }
    fn tips(&self) -> RResult<RVec<Hash32>, PluginError> {
        guard(|| Ok(RVec::from(self.0.tips())))
    }
    fn checkpoint(&mut self, tips: RSlice<'_, Hash32>) -> RResult<InsertReport, PluginError> {
        guard(|| self.0.checkpoint(tips.as_slice()))
    }
    fn weight(&self, unit: Hash32) -> RResult<ROption<u64>, PluginError> {
        guard(|| Ok(self.0.weight(unit).into()))
    }
}
