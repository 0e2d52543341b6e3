//! The consensus engines and chain types a simulation runs, and the faults each engine
//! says it tolerates.
//!
//! Built-in engines are linked as rlibs (the code of the signed `.so` files); a vendor's
//! engine comes from a signed package through the node's own loader.

use crate::faults::FaultFamily;
use nest_node::loader::{self, LoadOptions, LoadedLibrary};
use nest_sdk::{
    ChainType, ConsensusEngine, Host, PublicKey,
    abi_stable::{sabi_trait::TD_Opaque, std_types::RBox},
    chain::{ChainTypeAdapter, ChainTypeBox, ChainTypeFfi_TO},
    consensus::{ConsensusAdapter, ConsensusBox, ConsensusFfi_TO},
};
use std::path::Path;

/// The built-in PoA's source manifest: its `tolerates` list is the one its signed
/// package carries.
const POA_SOURCE_MANIFEST: &str = include_str!("../../plugins/consensus-poa/plugin.toml");
/// The built-in DPoS engine's source manifest.
const DPOS_SOURCE_MANIFEST: &str = include_str!("../../plugins/consensus-dpos/plugin.toml");
/// The built-in BFT engine's source manifest.
const BFT_SOURCE_MANIFEST: &str = include_str!("../../plugins/consensus-bft/plugin.toml");

/// How units become final in the chain type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finality {
    /// On a quorum of votes the engine attests (PoA): chain-linear's `finality_proposers`.
    Votes,
    /// On commit: the engine commits only what it decided (BFT).
    Decided,
}

impl Finality {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Finality::Votes => "votes",
            Finality::Decided => "decided",
        }
    }
}

impl std::str::FromStr for Finality {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "votes" => Ok(Finality::Votes),
            "decided" => Ok(Finality::Decided),
            other => Err(format!("--finality {other}: votes or decided")),
        }
    }
}

/// Where the consensus engine's code comes from.
pub enum EngineSource {
    /// PoA with chain-linear, linked into the simulator.
    Poa,
    /// The BFT engine with chain-linear, linked into the simulator.
    Bft,
    /// DPoS with chain-linear, linked into the simulator; its rounds come from the ledger.
    Dpos,
    /// A consensus engine loaded from a signed package (with chain-linear as its chain type).
    Package {
        /// The loaded library (boxed: it is large and the built-in variant is empty).
        library: Box<LoadedLibrary>,
        /// The faults its package declares it tolerates.
        tolerated: Vec<FaultFamily>,
    },
}

/// How a run builds each node's plugin instances.
pub struct Engines {
    source: EngineSource,
    name: String,
    finality: Finality,
}

impl Engines {
    /// The engine named on the command line: `poa`, `bft`, or a package directory
    /// (whose finality is `votes` unless `finality` says otherwise).
    pub fn open(consensus: &str, finality: Option<Finality>, options: &LoadOptions) -> Result<Engines, String> {
        match consensus {
            "poa" => {
                let finality = finality.unwrap_or(Finality::Votes);
                return Ok(Engines { source: EngineSource::Poa, name: "poa".into(), finality });
            }
            "bft" => {
                let finality = finality.unwrap_or(Finality::Decided);
                return Ok(Engines { source: EngineSource::Bft, name: "bft".into(), finality });
            }
            "dpos" => {
                let finality = finality.unwrap_or(Finality::Decided);
                return Ok(Engines { source: EngineSource::Dpos, name: "dpos".into(), finality });
            }
            _ => {}
        }
        let dir = Path::new(consensus);
        if !dir.is_dir() {
            return Err(format!(
                "--consensus {consensus}: neither a built-in engine (poa, bft, dpos) nor a package directory"
            ));
        }
        let library = loader::load(dir, options).map_err(|error| error.to_string())?;
        let tolerated = library.manifest.tolerates.iter().map(|name| name.parse()).collect::<Result<_, _>>()?;
        Ok(Engines {
            source: EngineSource::Package { library: Box::new(library), tolerated },
            name: consensus.to_string(),
            finality: finality.unwrap_or(Finality::Votes),
        })
    }

    /// The name runs are reported under (`poa`, or the package directory).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fault families the engine declares it tolerates (what `--faults all` means).
    pub fn tolerated(&self) -> Vec<FaultFamily> {
        match &self.source {
            EngineSource::Poa => tolerated_by(POA_SOURCE_MANIFEST),
            EngineSource::Bft => tolerated_by(BFT_SOURCE_MANIFEST),
            EngineSource::Dpos => tolerated_by(DPOS_SOURCE_MANIFEST),
            EngineSource::Package { tolerated, .. } => tolerated.clone(),
        }
    }

    /// How units become final.
    pub fn finality(&self) -> Finality {
        self.finality
    }

    /// Whether the run is DPoS: its genesis records DPoS rounds, and the load registers
    /// and votes for delegates.
    pub fn is_dpos(&self) -> bool {
        matches!(self.source, EngineSource::Dpos)
    }

    /// A consensus instance for one node. A vote-finality engine gets the authorities
    /// in its config (as PoA takes them); a deciding one gets its timeouts scaled to the
    /// interval, and its validators from the ledger.
    pub fn consensus(&self, authorities: &[PublicKey], interval_ms: u64, host: Host) -> Result<ConsensusBox, String> {
        if self.is_dpos() {
            let config = serde_json::from_str(&bft_config_json(interval_ms)).map_err(|e| e.to_string())?;
            let engine = consensus_dpos::DposEngine::new(config, host).map_err(|e| e.to_string())?;
            return Ok(ConsensusFfi_TO::from_ptr(RBox::new(ConsensusAdapter(engine)), TD_Opaque));
        }
        let config_json = match self.finality {
            Finality::Votes => {
                let keys: Vec<String> = authorities.iter().map(|key| format!("\"{key}\"")).collect();
                format!(r#"{{"authorities": [{}], "block_interval_ms": {interval_ms}}}"#, keys.join(","))
            }
            Finality::Decided => bft_config_json(interval_ms),
        };
        match &self.source {
            EngineSource::Poa => {
                let config = serde_json::from_str(&config_json).map_err(|e| e.to_string())?;
                let engine = consensus_poa::PoaEngine::new(config, host).map_err(|e| e.to_string())?;
                Ok(ConsensusFfi_TO::from_ptr(RBox::new(ConsensusAdapter(engine)), TD_Opaque))
            }
            EngineSource::Bft => {
                let config = serde_json::from_str(&config_json).map_err(|e| e.to_string())?;
                let engine = consensus_bft::BftEngine::new(config, host).map_err(|e| e.to_string())?;
                Ok(ConsensusFfi_TO::from_ptr(RBox::new(ConsensusAdapter(engine)), TD_Opaque))
            }
            EngineSource::Package { library, .. } => {
                library.new_consensus(&config_json, &host).map_err(|e| e.to_string())
            }
            EngineSource::Dpos => Err("DPoS engines are built above".into()),
        }
    }

    /// A chain-type instance for one node: chain-linear, final on `quorum` votes
    /// (2n/3 + 1 unless a run overrides it to explore an unsafe setting), or on commit
    /// for a deciding engine.
    pub fn chain_type(&self, authorities: usize, quorum: Option<usize>, host: Host) -> Result<ChainTypeBox, String> {
        let quorum = match self.finality {
            Finality::Votes => quorum.unwrap_or(authorities * 2 / 3 + 1),
            Finality::Decided => 0,
        };
        let config_json = format!(r#"{{"finality_proposers": {quorum}}}"#);
        let config = serde_json::from_str(&config_json).map_err(|e| e.to_string())?;
        let chain = chain_linear::LinearChain::new(config, host).map_err(|e| e.to_string())?;
        Ok(ChainTypeFfi_TO::from_ptr(RBox::new(ChainTypeAdapter(chain)), TD_Opaque))
    }
}

fn tolerated_by(source_manifest: &str) -> Vec<FaultFamily> {
    nest_node::package::SourceManifest::parse(source_manifest)
        .map(|manifest| manifest.tolerates.iter().filter_map(|name| name.parse().ok()).collect())
        .unwrap_or_default()
}

/// The BFT engine's timeouts for a chain whose blocks come every `interval_ms`: the
/// next height starts one interval after a decision; a round waits two intervals for
/// its proposal and one for each vote step, each a half interval longer per round.
pub fn bft_config_json(interval_ms: u64) -> String {
    let half_ms = (interval_ms / 2).max(1);
    format!(
        r#"{{"commit_wait_ms": {interval_ms}, "timeout_propose_ms": {}, "timeout_propose_delta_ms": {half_ms}, "timeout_prevote_ms": {interval_ms}, "timeout_prevote_delta_ms": {half_ms}, "timeout_precommit_ms": {interval_ms}, "timeout_precommit_delta_ms": {half_ms}}}"#,
        interval_ms * 2
    )
}
