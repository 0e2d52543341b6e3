//! Write a ready single-node directory for `nestd init <dir>`: a node key, a developer
//! vendor key, the workspace's plugins packaged and signed with it, a funded account and
//! a manifest that `nestd check` passes and `nestd run` runs.
//!
//! The packaging, signing and manifest writing are the devnet's (`crate::devnet`): a
//! node made here is a one-node devnet without the simulated radio, networking off,
//! laid out flat in one directory.

use crate::devices::devnet::NODE_BALANCE;
use crate::devnet::{self, Consensus, DevnetSpec, FAUCET_BALANCE, Layout, NodePlan};
use std::{
    fs,
    path::{Path, PathBuf},
};

/// The manifest sits beside its packages.
const INIT_LAYOUT: Layout = Layout { written_by: "`nestd init`", packages: "packages" };

/// What to write.
pub struct InitSpec {
    /// The directory to fill.
    pub dir: PathBuf,
    /// Write into a directory that already holds files (existing key files are kept).
    pub force: bool,
    /// The chain's consensus engine.
    pub consensus: Consensus,
    /// Block interval of the chain: PoA's slot, BFT's wait after a decision.
    pub block_interval_ms: u64,
    /// API port (0: any free port, written to `data/api.addr` at start).
    pub api_port: u16,
    /// Where the workspace's plugin libraries are (see [`devnet::library_dir`]).
    pub plugin_dir: PathBuf,
}

/// What was written, for the operator.
pub struct Initialized {
    /// The manifest, `<dir>/node.toml`.
    pub manifest: PathBuf,
    /// Lines naming each file and what it holds.
    pub files: Vec<String>,
}

/// Writes the node directory; refuses a directory that holds files unless `force`.
pub fn init(spec: &InitSpec) -> Result<Initialized, String> {
    refuse_occupied(&spec.dir, spec.force)?;
    fs::create_dir_all(&spec.dir).map_err(|e| format!("{}: {e}", spec.dir.display()))?;
    let path = |name: &str| spec.dir.join(name);
    let vendor = devnet::signed_packages(&spec.dir, &spec.plugin_dir, &path("vendor.key"))?;
    let node = devnet::key_at(&path("node.key"))?;
    let account = devnet::key_at(&path("account.key"))?;
    let chain = DevnetSpec {
        dir: spec.dir.clone(),
        consensus: spec.consensus,
        block_interval_ms: spec.block_interval_ms,
        api_port: spec.api_port,
        allocations: Vec::new(),
        block_txs_max: 20_000,
        mempool_txs_max: 200_000,
        plugin_dir: spec.plugin_dir.clone(),
        nodes: 1,
        authorities: 1,
    };
    let allocations = [(account.public_key(), FAUCET_BALANCE), (node.public_key(), NODE_BALANCE)];
    let authorities = [node.public_key()];
    let plan = NodePlan { name: node_name(&spec.dir), key: node, p2p_port: None, api_port: spec.api_port };
    let text =
        devnet::manifest_text(&chain, &INIT_LAYOUT, &vendor.public_key(), &plan, &authorities, &[], &allocations);
    let manifest = path("node.toml");
    fs::write(&manifest, text).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let files = vec![
        format!("node.toml     the manifest: chain main on {}", spec.consensus.describe(spec.block_interval_ms)),
        format!(
            "node.key      node key {} (the only authority; its account holds {NODE_BALANCE} µNEST)",
            plan.key.public_key()
        ),
        format!("account.key   account {} with {FAUCET_BALANCE} µNEST at genesis", account.public_key()),
        format!("vendor.key    developer vendor key {} (trusted by node.toml)", vendor.public_key()),
        format!("packages/     {} workspace plugins signed with vendor.key", devnet::WORKSPACE_PLUGIN_COUNT),
    ];
    Ok(Initialized { manifest, files })
}

/// A directory with anything in it is refused without `force`: its keys or data could
/// belong to another node.
fn refuse_occupied(dir: &Path, force: bool) -> Result<(), String> {
    let occupied = match fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
        Err(error) => return Err(format!("{}: {error}", dir.display())),
    };
    if occupied && !force {
        return Err(format!(
            "{} is not empty; choose an empty directory, or pass --force to write into it \
             (existing key files are kept, node.toml and packages/ are rewritten)",
            dir.display()
        ));
    }
    Ok(())
}

/// The node's name: its directory's name, when it is a valid name.
fn node_name(dir: &Path) -> String {
    let name = dir.canonicalize().ok().and_then(|dir| dir.file_name().map(|n| n.to_string_lossy().into_owned()));
    name.filter(|name| !name.is_empty() && !name.contains(['"', '\\', '\n'])).unwrap_or_else(|| "node".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_with_files_is_refused_without_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(refuse_occupied(dir.path(), false), Ok(()));
        assert_eq!(refuse_occupied(&dir.path().join("new"), false), Ok(()));
        fs::write(dir.path().join("notes.txt"), "mine").expect("write");
        let error = refuse_occupied(dir.path(), false).expect_err("refused");
        assert!(error.contains("is not empty") && error.contains("--force"), "{error}");
        assert_eq!(refuse_occupied(dir.path(), true), Ok(()));
    }

    #[test]
    fn a_missing_plugin_library_is_reported_with_the_build_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = InitSpec {
            dir: dir.path().join("node"),
            force: false,
            consensus: Consensus::Poa,
            block_interval_ms: 1000,
            api_port: 0,
            plugin_dir: dir.path().join("no-libraries"),
        };
        let error = init(&spec).err().expect("no libraries, no packages");
        assert!(error.contains("cargo build --workspace"), "{error}");
    }
}
