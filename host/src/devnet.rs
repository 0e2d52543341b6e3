//! Write a local devnet: a developer vendor key, the workspace's plugins packaged and
//! signed with it, node keys, a funded faucet account and node manifests.
//!
//! The chain runs one of two engines ([`Consensus`]): PoA, whose authorities are in its
//! own config and whose blocks are final once 2n/3 + 1 authorities voted for them, or
//! BFT, whose validators are in the chain's genesis and whose decided blocks are final
//! at once.
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
const WORKSPACE_PLUGINS: [(&str, &str, &str); 11] = [
    ("poa", "consensus-poa", include_str!("../../plugins/consensus-poa/plugin.toml")),
    ("bft", "consensus-bft", include_str!("../../plugins/consensus-bft/plugin.toml")),
    ("dpos", "consensus-dpos", include_str!("../../plugins/consensus-dpos/plugin.toml")),
    ("linear", "chain-linear", include_str!("../../plugins/chain-linear/plugin.toml")),
    ("sim", "radio-sim", include_str!("../../plugins/radio-sim/plugin.toml")),
    ("udp", "radio-udp", include_str!("../../plugins/radio-udp/plugin.toml")),
    ("mqtt", "radio-mqtt", include_str!("../../plugins/radio-mqtt/plugin.toml")),
    ("price-tag", "market-price-tag", include_str!("../../plugins/market-price-tag/plugin.toml")),
    ("metering", "market-metering", include_str!("../../plugins/market-metering/plugin.toml")),
    ("auction", "market-auction", include_str!("../../plugins/market-auction/plugin.toml")),
    ("cpp", "market-cpp", include_str!("../../plugins/market-cpp/plugin.toml")),
];

/// Gas price of the devnet's chain (µNEST per gas unit).
pub const GAS_PRICE: u64 = 1;

/// Balance of the devnet's faucet account.
pub const FAUCET_BALANCE: u64 = 1_000_000_000_000;

/// The consensus engine of a devnet's chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Consensus {
    /// Proof of authority (consensus-poa): the authorities take turns by time slot; a
    /// block is final once 2n/3 + 1 of them voted for it.
    #[default]
    Poa,
    /// Tendermint-style BFT (consensus-bft): the validators, from the chain's genesis,
    /// decide each height in rounds; a decided block is final at once.
    Bft,
    /// Delegated proof of stake (consensus-dpos): the ledger elects each round's
    /// delegates by staked votes (genesis's validators until enough register); they
    /// propose in the round's order and decide each height as BFT does.
    Dpos,
}

impl Consensus {
    /// The engine's plugin id in the manifests (`poa`, `bft`).
    pub fn id(self) -> &'static str {
        match self {
            Consensus::Poa => "poa",
            Consensus::Bft => "bft",
            Consensus::Dpos => "dpos",
        }
    }

    /// The engine's package name.
    pub fn package(self) -> &'static str {
        match self {
            Consensus::Poa => "consensus-poa",
            Consensus::Bft => "consensus-bft",
            Consensus::Dpos => "consensus-dpos",
        }
    }

    /// How the chain paces its blocks, for summaries: `consensus-poa (block every 1000 ms)`.
    pub fn describe(self, block_interval_ms: u64) -> String {
        match self {
            Consensus::Poa => format!("consensus-poa (block every {block_interval_ms} ms)"),
            Consensus::Bft => format!("consensus-bft (next height {block_interval_ms} ms after each decision)"),
            Consensus::Dpos => format!(
                "consensus-dpos (rounds of elected delegates, next height {block_interval_ms} ms after each decision)"
            ),
        }
    }
}

/// What to write.
pub struct DevnetSpec {
    /// Directory holding everything.
    pub dir: PathBuf,
    /// The chain's consensus engine.
    pub consensus: Consensus,
    /// Block interval of the chain: PoA's slot, BFT's wait after a decision.
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
    /// How many of the nodes (the first ones) take part in consensus: PoA authorities
    /// or BFT validators (power 1 each).
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

/// The key in `path`, created there first when the file does not exist.
pub(crate) fn key_at(path: &Path) -> Result<SecretKey, String> {
    if path.exists() {
        return SecretKey::read(path).map_err(|e| e.to_string());
    }
    let key = SecretKey::generate().map_err(|e| e.to_string())?;
    key.write(path).map_err(|e| e.to_string())?;
    Ok(key)
}

/// The vendor key in `vendor_key` (created on first use), after it packaged and signed
/// the workspace's plugins into `<dir>/packages/`.
pub(crate) fn signed_packages(dir: &Path, plugin_dir: &Path, vendor_key: &Path) -> Result<SecretKey, String> {
    let vendor = key_at(vendor_key)?;
    package_plugins(dir, plugin_dir, &vendor)?;
    Ok(vendor)
}

/// How many plugins [`signed_packages`] writes.
pub const WORKSPACE_PLUGIN_COUNT: usize = WORKSPACE_PLUGINS.len();

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

/// Refuses to reuse a devnet directory written for another number of nodes, authorities,
/// block interval or engine: its chain would not match the new consensus configuration.
fn check_shape(spec: &DevnetSpec) -> Result<(), String> {
    let file = spec.dir.join("devnet.shape");
    let shape = format!(
        "nodes = {}\nauthorities = {}\nblock_interval_ms = {}\nconsensus = {}\n",
        spec.nodes.max(1),
        spec.authorities.clamp(1, spec.nodes.max(1)),
        spec.block_interval_ms,
        spec.consensus.id()
    );
    match fs::read_to_string(&file).map(with_consensus_line) {
        Ok(existing) if existing != shape => Err(format!(
            "{} holds a devnet of another shape ({}); start over with --fresh or use another --dir",
            spec.dir.display(),
            existing.trim().replace('\n', ", ")
        )),
        Ok(_) => Ok(()),
        Err(_) => fs::write(&file, shape).map_err(|e| format!("{}: {e}", file.display())),
    }
}

/// A shape file written before devnets had a choice of engine describes a PoA devnet.
fn with_consensus_line(mut shape: String) -> String {
    if !shape.lines().any(|line| line.starts_with("consensus = ")) {
        shape.push_str("consensus = poa\n");
    }
    shape
}

/// A free TCP port on 127.0.0.1 (bound and released: the node binds it right after).
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener.local_addr().map(|addr| addr.port()).map_err(|e| e.to_string())
}

/// One node, as its manifest needs it.
pub(crate) struct NodePlan {
    pub(crate) name: String,
    pub(crate) key: SecretKey,
    /// The libp2p port (0: any free port); `None` turns networking off.
    pub(crate) p2p_port: Option<u16>,
    pub(crate) api_port: u16,
}

/// Who writes a manifest and where its packages are, relative to it.
pub(crate) struct Layout {
    /// The command, for the manifest's first line.
    pub(crate) written_by: &'static str,
    /// The packages directory, relative to the manifest.
    pub(crate) packages: &'static str,
}

/// A devnet node's manifest is `<dir>/node-k/manifest.toml`, beside `<dir>/packages`.
const DEVNET_LAYOUT: Layout = Layout { written_by: "`nestd up`", packages: "../packages" };

/// Writes (or refreshes) a devnet of `spec.nodes` nodes under `spec.dir`. Keys are
/// kept between runs; the manifests are written anew (same genesis, new ports).
pub fn write(spec: &DevnetSpec) -> Result<Devnet, String> {
    let nodes = spec.nodes.max(1);
    let vendor_key = spec.dir.join("dev-vendor.key");
    fs::create_dir_all(&spec.dir).map_err(|e| format!("{}: {e}", spec.dir.display()))?;
    check_shape(spec)?;
    let vendor = signed_packages(&spec.dir, &spec.plugin_dir, &vendor_key)?;
    let faucet_key = spec.dir.join("faucet.key");
    let faucet = key_at(&faucet_key)?;
    let mut allocations = vec![(faucet.public_key(), FAUCET_BALANCE)];
    allocations.extend(spec.allocations.iter().copied());
    let mut plans = Vec::with_capacity(nodes);
    for index in 1..=nodes {
        let node_dir = spec.dir.join(format!("node-{index}"));
        fs::create_dir_all(&node_dir).map_err(|e| format!("{}: {e}", node_dir.display()))?;
        let api_port = if spec.api_port == 0 { 0 } else { spec.api_port + index as u16 - 1 };
        let p2p_port = Some(if nodes == 1 { 0 } else { free_port()? });
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
        addresses.push(format!("/ip4/127.0.0.1/tcp/{}/p2p/{peer}", plan.p2p_port.unwrap_or(0)));
    }
    let mut manifests = Vec::with_capacity(nodes);
    for (index, plan) in plans.iter().enumerate() {
        // Each node dials every node before it: together a full mesh, with no hub
        // whose loss would split the others.
        let bootstrap = if nodes == 1 { &[][..] } else { &addresses[..index] };
        let text =
            manifest_text(spec, &DEVNET_LAYOUT, &vendor.public_key(), plan, &authorities, bootstrap, &allocations);
        let manifest = spec.dir.join(&plan.name).join("manifest.toml");
        fs::write(&manifest, text).map_err(|e| format!("{}: {e}", manifest.display()))?;
        manifests.push(manifest);
    }
    Ok(Devnet { manifest: manifests[0].clone(), manifests, faucet_key, vendor_key })
}

/// Finality of the devnet's chain. PoA: immediate for one authority; otherwise once more
/// than two thirds of the authorities voted for a block, so a partition's minority side
/// never finalizes and forks heal. BFT: a decided block is final at once.
fn chain_type_config(consensus: Consensus, authorities: usize) -> String {
    match consensus {
        Consensus::Bft | Consensus::Dpos => "{ finality_depth = 0, finality_proposers = 0 }".to_string(),
        Consensus::Poa if authorities <= 1 => "{ finality_depth = 0 }".to_string(),
        Consensus::Poa => format!("{{ finality_proposers = {} }}", authorities * 2 / 3 + 1),
    }
}

/// The BFT engine's timeouts for blocks about every `block_interval_ms` (as the
/// simulator sets them): the next height starts one interval after a decision; a round
/// waits two intervals for its proposal and one for each vote step, each half an
/// interval longer per round.
fn bft_config(block_interval_ms: u64) -> String {
    let interval = block_interval_ms;
    let half = (interval / 2).max(1);
    format!(
        "{{ commit_wait_ms = {interval}, timeout_propose_ms = {}, timeout_propose_delta_ms = {half}, \
         timeout_prevote_ms = {interval}, timeout_prevote_delta_ms = {half}, \
         timeout_precommit_ms = {interval}, timeout_precommit_delta_ms = {half} }}",
        interval.saturating_mul(2)
    )
}

/// The `[chain.consensus]` table's `config` line.
fn consensus_config(spec: &DevnetSpec, authorities: &[PublicKey]) -> String {
    match spec.consensus {
        Consensus::Poa => {
            let keys: Vec<String> = authorities.iter().map(|key| format!("\"{key}\"")).collect();
            format!("{{ block_interval_ms = {}, authorities = [{}] }}", spec.block_interval_ms, keys.join(", "))
        }
        Consensus::Bft | Consensus::Dpos => bft_config(spec.block_interval_ms),
    }
}

/// A node's manifest: the node, its API and network, the vendor key it trusts, the
/// workspace's plugins (of the consensus engines, only the chain's), every market policy,
/// and chain `main` with its engine, finality and genesis.
pub(crate) fn manifest_text(
    spec: &DevnetSpec,
    layout: &Layout,
    vendor: &PublicKey,
    node: &NodePlan,
    authorities: &[PublicKey],
    bootstrap: &[String],
    allocations: &[(PublicKey, u64)],
) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "# A Nest node written by {}. Paths are relative to this file.\n", layout.written_by);
    let _ = writeln!(text, "[node]\nname = \"{}\"\ndata_dir = \"data\"\nkey = \"node.key\"\n", node.name);
    let _ = writeln!(text, "[api]\nlisten = \"127.0.0.1:{}\"\n", node.api_port);
    write_network(&mut text, node.p2p_port, bootstrap);
    let _ = writeln!(text, "# The plugins are signed with this machine's developer key.");
    let _ = writeln!(text, "[[trust.vendor]]\nname = \"local-developer\"\nkey = \"{vendor}\"\n");
    let loaded = WORKSPACE_PLUGINS
        .iter()
        .filter(|(_, name, _)| !name.starts_with("consensus-") || *name == spec.consensus.package());
    for (id, name, _) in loaded {
        let _ = writeln!(text, "[[plugin]]\nid = \"{id}\"\npackage = \"{}/{name}\"\n", layout.packages);
    }
    // Every node loads every market policy: settlement runs on each of them.
    for (id, _, _) in WORKSPACE_PLUGINS.iter().filter(|(_, name, _)| name.starts_with("market-")) {
        let _ = writeln!(text, "[[market]]\nid = \"{id}\"\nplugin = \"{id}\"\n");
    }
    write_chain(&mut text, spec, authorities, allocations);
    text
}

/// The `[network]` table: listening on `p2p_port` and dialling `bootstrap`, or off.
fn write_network(text: &mut String, p2p_port: Option<u16>, bootstrap: &[String]) {
    let Some(port) = p2p_port else {
        let _ = writeln!(text, "# Networking is off; a node that joins others listens and dials, e.g.");
        let _ = writeln!(text, "# listen = [\"/ip4/0.0.0.0/tcp/7400\"], bootstrap = [\"/ip4/…/tcp/…/p2p/<peer id>\"].");
        let _ = writeln!(text, "[network]\nlisten = []\n");
        return;
    };
    let _ = writeln!(text, "[network]\nlisten = [\"/ip4/127.0.0.1/tcp/{port}\"]");
    let quoted: Vec<String> = bootstrap.iter().map(|address| format!("\"{address}\"")).collect();
    let _ = writeln!(text, "bootstrap = [{}]\n", quoted.join(", "));
}

/// What a DPoS devnet's node keys hold at genesis, for their Proof-of-i/o fees.
pub const NODE_BALANCE: u64 = 10_000_000;
/// The share of the genesis supply a DPoS devnet mints as Proof-of-i/o rewards, in
/// percent, and over how many years.
const POIO_SUPPLY_PERCENT: u64 = 5;
const POIO_YEARS: u64 = 3;

/// A DPoS devnet's `poio` table: 5 % of the genesis supply, minted evenly over three
/// years of rounds of `delegates` block intervals.
fn devnet_poio(spec: &DevnetSpec, delegates: usize, allocations: &[(PublicKey, u64)]) -> String {
    let supply: u64 = allocations.iter().fold(0u64, |sum, (_, balance)| sum.saturating_add(*balance));
    let cap = supply / 100 * POIO_SUPPLY_PERCENT;
    let round_ms = spec.block_interval_ms.max(1).saturating_mul(delegates.max(1) as u64);
    let rounds = (POIO_YEARS * 365 * 24 * 3_600_000 / round_ms).max(1);
    let per_round = cap / rounds;
    format!(
        "{{ cap = {cap}, per_round = {per_round}, uptime_per_minute = 100, per_tx_verified = 1, storage_per_mib = 1000 }}"
    )
}

/// The `[[chain]]` table `main` with its consensus and genesis.
fn write_chain(text: &mut String, spec: &DevnetSpec, authorities: &[PublicKey], allocations: &[(PublicKey, u64)]) {
    let _ = writeln!(text, "[[chain]]\nid = \"main\"\ngas_price = {GAS_PRICE}");
    let _ = writeln!(text, "block_txs_max = {}\nmempool_txs_max = {}", spec.block_txs_max, spec.mempool_txs_max);
    let chain_type = chain_type_config(spec.consensus, authorities.len());
    let _ = writeln!(text, "chain_type = {{ plugin = \"linear\", config = {chain_type} }}\n");
    let _ = writeln!(text, "[chain.consensus]\nplugin = \"{}\"", spec.consensus.id());
    let _ = writeln!(text, "config = {}\n", consensus_config(spec, authorities));
    let _ = writeln!(text, "[chain.genesis]\ntimestamp_ms = 0");
    if matches!(spec.consensus, Consensus::Bft | Consensus::Dpos) {
        text.push_str("validators = [\n");
        for key in authorities {
            let _ = writeln!(text, "  {{ key = \"{key}\", power = 1 }},");
        }
        text.push_str("]\n");
    }
    let mut allocations = allocations.to_vec();
    if spec.consensus == Consensus::Dpos {
        // Rounds of as many heights as delegates; genesis's validators are round 0's.
        let poio = devnet_poio(spec, authorities.len(), &allocations);
        let _ = writeln!(text, "dpos = {{ delegates = {}, poio = {poio} }}", authorities.len());
        // Node keys pay the fees of their Proof-of-i/o transactions: the devnet funds
        // the ones it does not fund already.
        let unfunded: Vec<PublicKey> =
            authorities.iter().filter(|key| !allocations.iter().any(|(account, _)| account == *key)).copied().collect();
        allocations.extend(unfunded.into_iter().map(|key| (key, NODE_BALANCE)));
    }
    text.push_str("allocations = [\n");
    for (account, balance) in &allocations {
        let _ = writeln!(text, "  {{ account = \"{account}\", balance = {balance} }},");
    }
    text.push_str("]\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ChainEntry, Manifest};

    const INTERVAL_MS: u64 = 400;

    fn spec(consensus: Consensus) -> DevnetSpec {
        DevnetSpec {
            dir: PathBuf::from("/devnet"),
            consensus,
            block_interval_ms: INTERVAL_MS,
            api_port: 0,
            allocations: Vec::new(),
            block_txs_max: 100,
            mempool_txs_max: 1_000,
            plugin_dir: PathBuf::new(),
            nodes: 4,
            authorities: 4,
        }
    }

    /// Node-1's manifest of a four-node devnet, parsed, and the four node keys.
    fn node_one(consensus: Consensus) -> (Manifest, Vec<PublicKey>) {
        let authorities: Vec<PublicKey> = (1..=4).map(|seed| SecretKey::from_seed([seed; 32]).public_key()).collect();
        let plan =
            NodePlan { name: "node-1".into(), key: SecretKey::from_seed([1; 32]), p2p_port: Some(0), api_port: 0 };
        let vendor = SecretKey::from_seed([9; 32]).public_key();
        let allocations = [(authorities[0], 5)];
        let text = manifest_text(&spec(consensus), &DEVNET_LAYOUT, &vendor, &plan, &authorities, &[], &allocations);
        let manifest = Manifest::parse(&text, Path::new("/devnet/node-1/manifest.toml"))
            .unwrap_or_else(|error| panic!("{error}\n{text}"));
        (manifest, authorities)
    }

    fn main_chain(manifest: &Manifest) -> &ChainEntry {
        manifest.chain.iter().find(|chain| chain.id == "main").expect("chain main")
    }

    fn integer(table: &toml::Table, key: &str) -> Option<i64> {
        table.get(key).and_then(toml::Value::as_integer)
    }

    fn consensus_plugins(manifest: &Manifest) -> Vec<&str> {
        let packages = manifest
            .plugin
            .iter()
            .filter(|p| p.package.file_name().is_some_and(|name| name.to_string_lossy().starts_with("consensus-")));
        packages.map(|p| p.id.as_str()).collect()
    }

    #[test]
    fn a_bft_devnet_lists_every_node_as_a_genesis_validator_and_finalizes_what_is_decided() {
        let (manifest, keys) = node_one(Consensus::Bft);
        let chain = main_chain(&manifest);
        assert_eq!(chain.consensus.plugin, "bft");
        assert_eq!(consensus_plugins(&manifest), ["bft"]);
        let config = &chain.consensus.config;
        assert_eq!(integer(config, "commit_wait_ms"), Some(INTERVAL_MS as i64));
        assert_eq!(integer(config, "timeout_propose_ms"), Some(2 * INTERVAL_MS as i64));
        assert!(config.get("authorities").is_none(), "{config}");
        assert_eq!(integer(&chain.chain_type.config, "finality_depth"), Some(0));
        assert_eq!(integer(&chain.chain_type.config, "finality_proposers"), Some(0));
        let sets = chain.genesis.validator_sets().expect("validator sets");
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].from_height, 1);
        let members: Vec<(PublicKey, u64)> = sets[0].members.iter().map(|m| (m.key, m.power)).collect();
        assert_eq!(members, keys.iter().map(|key| (*key, 1)).collect::<Vec<_>>());
        assert_eq!(chain.genesis.allocations.len(), 1);
    }

    #[test]
    fn a_dpos_devnet_records_rounds_of_its_validators_and_runs_the_dpos_engine() {
        let (manifest, keys) = node_one(Consensus::Dpos);
        let chain = main_chain(&manifest);
        assert_eq!(chain.consensus.plugin, "dpos");
        assert_eq!(consensus_plugins(&manifest), ["dpos"]);
        assert_eq!(chain.genesis.dpos.map(|dpos| dpos.delegates), Some(keys.len() as u32));
        let sets = chain.genesis.validator_sets().expect("validator sets");
        assert_eq!(sets[0].members.len(), keys.len());
        assert_eq!(integer(&chain.chain_type.config, "finality_proposers"), Some(0));
    }

    #[test]
    fn a_poa_devnet_keeps_its_authorities_in_the_engine_config_and_finalizes_on_a_quorum() {
        let (manifest, keys) = node_one(Consensus::Poa);
        let chain = main_chain(&manifest);
        assert_eq!(chain.consensus.plugin, "poa");
        assert_eq!(consensus_plugins(&manifest), ["poa"]);
        let authorities =
            chain.consensus.config.get("authorities").and_then(toml::Value::as_array).expect("authorities");
        assert_eq!(authorities.len(), keys.len());
        assert_eq!(integer(&chain.consensus.config, "block_interval_ms"), Some(INTERVAL_MS as i64));
        assert_eq!(integer(&chain.chain_type.config, "finality_proposers"), Some(3));
        assert!(chain.genesis.validators.is_empty());
    }

    #[test]
    fn a_directory_is_not_reused_for_another_engine_and_an_old_shape_file_means_poa() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spec = spec(Consensus::Poa);
        spec.dir = dir.path().to_path_buf();
        let old = format!("nodes = 4\nauthorities = 4\nblock_interval_ms = {INTERVAL_MS}\n");
        fs::write(dir.path().join("devnet.shape"), old).expect("write shape");
        assert_eq!(check_shape(&spec), Ok(()));
        spec.consensus = Consensus::Bft;
        let error = check_shape(&spec).expect_err("a PoA directory refused for BFT");
        assert!(error.contains("consensus = poa") && error.contains("--fresh"), "{error}");
    }

    #[test]
    fn bft_timeouts_never_overflow() {
        let config = bft_config(u64::MAX);
        assert!(config.contains(&format!("timeout_propose_ms = {}", u64::MAX)), "{config}");
    }
}
