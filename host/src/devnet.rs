//! Write a local devnet: a developer vendor key, the workspace's plugins packaged and
//! signed with it, node keys, a funded faucet account and node manifests.
//!
//! Everything is written under one directory; keys are created on first use and kept,
//! so running `nestd up` again resumes the same chain.

use crate::crypto::SecretKey;
use crate::package;
use nest_sdk::PublicKey;
use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

/// The workspace's plugins: manifest id, package name, source `plugin.toml`.
const WORKSPACE_PLUGINS: [(&str, &str, &str); 9] = [
    ("poa", "consensus-poa", include_str!("../../plugins/consensus-poa/plugin.toml")),
    ("linear", "chain-linear", include_str!("../../plugins/chain-linear/plugin.toml")),
    ("sim", "radio-sim", include_str!("../../plugins/radio-sim/plugin.toml")),
    ("udp", "radio-udp", include_str!("../../plugins/radio-udp/plugin.toml")),
    ("mqtt", "radio-mqtt", include_str!("../../plugins/radio-mqtt/plugin.toml")),
    ("price-tag", "market-price-tag", include_str!("../../plugins/market-price-tag/plugin.toml")),
    ("metering", "market-metering", include_str!("../../plugins/market-metering/plugin.toml")),
    ("auction", "market-auction", include_str!("../../plugins/market-auction/plugin.toml")),
    ("cpp", "market-cpp", include_str!("../../plugins/market-cpp/plugin.toml")),
];

/// Balance of the devnet's faucet account.
pub const FAUCET_BALANCE: u64 = 1_000_000_000_000;

/// What to write.
pub struct DevnetSpec {
    /// Directory holding everything.
    pub dir: PathBuf,
    /// Block interval of the PoA chain.
    pub block_interval_ms: u64,
    /// API port of the node (0: any free port, see `data/api.addr`).
    pub api_port: u16,
    /// Extra genesis allocations (beyond the faucet).
    pub allocations: Vec<(PublicKey, u64)>,
    /// Most transactions in one block.
    pub block_txs_max: usize,
    /// Most transactions waiting in the mempool.
    pub mempool_txs_max: usize,
    /// Where the workspace's plugin libraries are (see [`library_dir`]).
    pub plugin_dir: PathBuf,
    /// Nodes to write (1: a single node, networking on but alone).
    pub nodes: usize,
    /// How many of the nodes (the first ones) are PoA authorities.
    pub authorities: usize,
}

/// What was written.
pub struct Devnet {
    /// The first node's manifest.
    pub manifest: PathBuf,
    /// Every node's manifest, node-1 first.
    pub manifests: Vec<PathBuf>,
    /// The faucet account's key file.
    pub faucet_key: PathBuf,
    /// The developer vendor key file.
    pub vendor_key: PathBuf,
}

/// Where the workspace's plugin libraries are: `NEST_PLUGIN_DIR`, else next to this binary.
pub fn library_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NEST_PLUGIN_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf)).unwrap_or_default()
}

fn key_at(path: &Path) -> Result<SecretKey, String> {
    if path.exists() {
        return SecretKey::read(path).map_err(|e| e.to_string());
    }
    let key = SecretKey::generate().map_err(|e| e.to_string())?;
    key.write(path).map_err(|e| e.to_string())?;
    Ok(key)
}

/// Packages and signs the workspace's plugins into `<dir>/packages/`.
fn package_plugins(dir: &Path, plugin_dir: &Path, vendor: &SecretKey) -> Result<(), String> {
    let packages = dir.join("packages");
    fs::create_dir_all(&packages).map_err(|e| format!("{}: {e}", packages.display()))?;
    for (_, name, source) in WORKSPACE_PLUGINS {
        let source_path = packages.join(format!("{name}.source.toml"));
        fs::write(&source_path, source).map_err(|e| format!("{}: {e}", source_path.display()))?;
        let library_file =
            source_library(source).ok_or_else(|| format!("{name}: source plugin.toml names no library"))?;
        let library = plugin_dir.join(&library_file);
        if !library.exists() {
            return Err(format!(
                "{} is missing: run `cargo build --workspace` first (or set NEST_PLUGIN_DIR)",
                library.display()
            ));
        }
        let out = packages.join(name);
        if out.exists() {
            fs::remove_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        }
        package::pack(&source_path, &library, &out, vendor).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn source_library(source: &str) -> Option<String> {
    let table: toml::Table = toml::from_str(source).ok()?;
    table.get("library")?.as_str().map(str::to_string)
}

/// Refuses to reuse a devnet directory written for another number of nodes, authorities
/// or block interval: its chain would not match the new consensus configuration.
fn check_shape(spec: &DevnetSpec) -> Result<(), String> {
    let file = spec.dir.join("devnet.shape");
    let shape = format!(
        "nodes = {}\nauthorities = {}\nblock_interval_ms = {}\n",
        spec.nodes.max(1),
        spec.authorities.clamp(1, spec.nodes.max(1)),
        spec.block_interval_ms
    );
    match fs::read_to_string(&file) {
        Ok(existing) if existing != shape => Err(format!(
            "{} holds a devnet of another shape ({}); start over with --fresh or use another --dir",
            spec.dir.display(),
            existing.trim().replace('\n', ", ")
        )),
        Ok(_) => Ok(()),
        Err(_) => fs::write(&file, shape).map_err(|e| format!("{}: {e}", file.display())),
    }
}

/// A free TCP port on 127.0.0.1 (bound and released: the node binds it right after).
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener.local_addr().map(|addr| addr.port()).map_err(|e| e.to_string())
}

/// One node of the devnet, as its manifest needs it.
struct NodePlan {
    name: String,
    key: SecretKey,
    p2p_port: u16,
    api_port: u16,
}

/// Writes (or refreshes) a devnet of `spec.nodes` nodes under `spec.dir`. Keys are
/// kept between runs; the manifests are written anew (same genesis, new ports).
pub fn write(spec: &DevnetSpec) -> Result<Devnet, String> {
    let nodes = spec.nodes.max(1);
    let vendor_key = spec.dir.join("dev-vendor.key");
    fs::create_dir_all(&spec.dir).map_err(|e| format!("{}: {e}", spec.dir.display()))?;
    check_shape(spec)?;
    let vendor = key_at(&vendor_key)?;
    package_plugins(&spec.dir, &spec.plugin_dir, &vendor)?;
    let faucet_key = spec.dir.join("faucet.key");
    let faucet = key_at(&faucet_key)?;
    let mut allocations = vec![(faucet.public_key(), FAUCET_BALANCE)];
    allocations.extend(spec.allocations.iter().copied());
    let mut plans = Vec::with_capacity(nodes);
    for index in 1..=nodes {
        let node_dir = spec.dir.join(format!("node-{index}"));
        fs::create_dir_all(&node_dir).map_err(|e| format!("{}: {e}", node_dir.display()))?;
        let api_port = if spec.api_port == 0 { 0 } else { spec.api_port + index as u16 - 1 };
        let p2p_port = if nodes == 1 { 0 } else { free_port()? };
        plans.push(NodePlan {
            name: format!("node-{index}"),
            key: key_at(&node_dir.join("node.key"))?,
            p2p_port,
            api_port,
        });
    }
    let authorities: Vec<PublicKey> =
        plans.iter().take(spec.authorities.clamp(1, nodes)).map(|p| p.key.public_key()).collect();
    let mut addresses = Vec::with_capacity(nodes);
    for plan in &plans {
        let peer = crate::net::peer_id_of(&plan.key).map_err(|e| e.to_string())?;
        addresses.push(format!("/ip4/127.0.0.1/tcp/{}/p2p/{peer}", plan.p2p_port));
    }
    let mut manifests = Vec::with_capacity(nodes);
    for (index, plan) in plans.iter().enumerate() {
        // Each node dials every node before it: together a full mesh, with no hub
        // whose loss would split the others.
        let bootstrap = if nodes == 1 { &[][..] } else { &addresses[..index] };
        let text = manifest_text(spec, &vendor.public_key(), plan, &authorities, bootstrap, &allocations);
        let manifest = spec.dir.join(&plan.name).join("manifest.toml");
        fs::write(&manifest, text).map_err(|e| format!("{}: {e}", manifest.display()))?;
        manifests.push(manifest);
    }
    Ok(Devnet { manifest: manifests[0].clone(), manifests, faucet_key, vendor_key })
}

/// Finality of the devnet's chain: immediate for one authority; otherwise once more
/// than two thirds of the authorities built on a block, so a partition's minority side
/// never finalizes and forks heal.
fn chain_type_config(authorities: usize) -> String {
    if authorities <= 1 {
        "{ finality_depth = 0 }".to_string()
    } else {
        format!("{{ finality_proposers = {} }}", authorities * 2 / 3 + 1)
    }
}

fn manifest_text(
    spec: &DevnetSpec,
    vendor: &PublicKey,
    node: &NodePlan,
    authorities: &[PublicKey],
    bootstrap: &[String],
    allocations: &[(PublicKey, u64)],
) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "# A Nest devnet node written by `nestd up`.\n");
    let _ = writeln!(text, "[node]\nname = \"{}\"\ndata_dir = \"data\"\nkey = \"node.key\"\n", node.name);
    let _ = writeln!(text, "[api]\nlisten = \"127.0.0.1:{}\"\n", node.api_port);
    let _ = writeln!(text, "[network]\nlisten = [\"/ip4/127.0.0.1/tcp/{}\"]", node.p2p_port);
    let quoted: Vec<String> = bootstrap.iter().map(|address| format!("\"{address}\"")).collect();
    let _ = writeln!(text, "bootstrap = [{}]\n", quoted.join(", "));
    let _ = writeln!(text, "# The plugins are signed with this machine's developer key.");
    let _ = writeln!(text, "[[trust.vendor]]\nname = \"local-developer\"\nkey = \"{vendor}\"\n");
    for (id, name, _) in WORKSPACE_PLUGINS {
        let _ = writeln!(text, "[[plugin]]\nid = \"{id}\"\npackage = \"../packages/{name}\"\n");
    }
    // Every node loads every market policy: settlement runs on each of them.
    for (id, _, _) in WORKSPACE_PLUGINS.iter().filter(|(_, name, _)| name.starts_with("market-")) {
        let _ = writeln!(text, "[[market]]\nid = \"{id}\"\nplugin = \"{id}\"\n");
    }
    let _ = writeln!(text, "[[chain]]\nid = \"main\"\ngas_price = 1");
    let _ = writeln!(text, "block_txs_max = {}\nmempool_txs_max = {}", spec.block_txs_max, spec.mempool_txs_max);
    let _ =
        writeln!(text, "chain_type = {{ plugin = \"linear\", config = {} }}\n", chain_type_config(authorities.len()));
    let _ = writeln!(text, "[chain.consensus]\nplugin = \"poa\"");
    let keys: Vec<String> = authorities.iter().map(|key| format!("\"{key}\"")).collect();
    let _ = writeln!(
        text,
        "config = {{ block_interval_ms = {}, authorities = [{}] }}\n",
        spec.block_interval_ms,
        keys.join(", ")
    );
    let _ = writeln!(text, "[chain.genesis]\ntimestamp_ms = 0\nallocations = [");
    for (account, balance) in allocations {
        let _ = writeln!(text, "  {{ account = \"{account}\", balance = {balance} }},");
    }
    text.push_str("]\n");
    text
}
