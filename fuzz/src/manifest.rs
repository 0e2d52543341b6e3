//! Node manifests (TOML): parsing and the structural checks of `nestd check`.

use nest_api::manifest::{Manifest, config_json};
use std::path::Path;

/// Parses `data` as a manifest, runs its structural checks and what reads the result:
/// the validator sets of each chain, the plugin configs as JSON, the manifest as JSON
/// (`GET /v1/admin/config`).
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok((manifest, _problems)) = Manifest::parse_all(text, Path::new("/fuzz/node.toml")) else { return };
    for chain in &manifest.chain {
        let _ = (config_json(&chain.chain_type.config), config_json(&chain.consensus.config));
        let _ = chain.genesis.validator_sets();
    }
    let _ = serde_json::to_value(&manifest);
}
