//! The consensus engines and chain types a simulation runs, and the faults each engine
//! says it tolerates.
//!
//! Built-in engines are linked as rlibs (the code of the signed `.so` files); a vendor's
//! engine comes from a signed package through the node's own loader.

use crate::faults::FaultFamily;
use nest_host::loader::{self, LoadOptions, LoadedLibrary};
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

/// Where the consensus engine's code comes from.
pub enum EngineSource {
    /// PoA with chain-linear, linked into the simulator.
    Poa,
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
}

impl Engines {
    /// The engine named on the command line: `poa`, or a package directory.
    pub fn open(consensus: &str, options: &LoadOptions) -> Result<Engines, String> {
        if consensus == "poa" {
            return Ok(Engines { source: EngineSource::Poa, name: "poa".into() });
        }
        let dir = Path::new(consensus);
        if !dir.is_dir() {
            return Err(format!("--consensus {consensus}: neither a built-in engine (poa) nor a package directory"));
        }
        let library = loader::load(dir, options).map_err(|error| error.to_string())?;
        let tolerated = library.manifest.tolerates.iter().map(|name| name.parse()).collect::<Result<_, _>>()?;
        Ok(Engines {
            source: EngineSource::Package { library: Box::new(library), tolerated },
            name: consensus.to_string(),
        })
    }

    /// The name runs are reported under (`poa`, or the package directory).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fault families the engine declares it tolerates (what `--faults all` means).
    pub fn tolerated(&self) -> Vec<FaultFamily> {
        match &self.source {
            EngineSource::Poa => nest_host::package::SourceManifest::parse(POA_SOURCE_MANIFEST)
                .map(|manifest| manifest.tolerates.iter().filter_map(|name| name.parse().ok()).collect())
                .unwrap_or_default(),
            EngineSource::Package { tolerated, .. } => tolerated.clone(),
        }
    }

    /// A consensus instance for one node.
    pub fn consensus(&self, authorities: &[PublicKey], interval_ms: u64, host: Host) -> Result<ConsensusBox, String> {
        let keys: Vec<String> = authorities.iter().map(|key| format!("\"{key}\"")).collect();
        let config_json = format!(r#"{{"authorities": [{}], "block_interval_ms": {interval_ms}}}"#, keys.join(","));
        match &self.source {
            EngineSource::Poa => {
                let config = serde_json::from_str(&config_json).map_err(|e| e.to_string())?;
                let engine = consensus_poa::PoaEngine::new(config, host).map_err(|e| e.to_string())?;
                Ok(ConsensusFfi_TO::from_ptr(RBox::new(ConsensusAdapter(engine)), TD_Opaque))
            }
            EngineSource::Package { library, .. } => {
                library.new_consensus(&config_json, &host).map_err(|e| e.to_string())
            }
        }
    }

    /// A chain-type instance for one node: chain-linear, final on `quorum` votes
    /// (2n/3 + 1 unless a run overrides it to explore an unsafe setting).
    pub fn chain_type(&self, authorities: usize, quorum: Option<usize>, host: Host) -> Result<ChainTypeBox, String> {
        let quorum = quorum.unwrap_or(authorities * 2 / 3 + 1);
        let config_json = format!(r#"{{"finality_proposers": {quorum}}}"#);
        let config = serde_json::from_str(&config_json).map_err(|e| e.to_string())?;
        let chain = chain_linear::LinearChain::new(config, host).map_err(|e| e.to_string())?;
        Ok(ChainTypeFfi_TO::from_ptr(RBox::new(ChainTypeAdapter(chain)), TD_Opaque))
    }
}
