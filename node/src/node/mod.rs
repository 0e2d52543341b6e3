//! Assemble a node from its manifest and run its loop.
//!
//! [`prepare`] loads and verifies every plugin and builds the plugin instances (this is
//! also what `nestd check` runs). [`Node::start`] opens the store, opens each chain and
//! starts the node loop on its own thread: one thread owns every chain and plugin
//! instance and handles a closed set of [`Request`]s, one at a time, so plugin calls
//! never re-enter. The HTTP API talks to the loop through a bounded channel.

mod admin;
/// The chain runtime, in its own crate (ADR 0011).
pub use nest_chain::runtime as chain;
mod devices;
mod evidence;
mod market;
mod network;
mod poio;
pub mod precheck;
mod prune;
mod radios;
pub mod reader;
pub mod recent;
pub mod serve;
pub mod services;
pub use nest_chain::slot;
mod staking;
pub mod status;

use crate::crypto::SecretKey;
use crate::ledger::tx::{SignedTx, TxError};
use crate::loader::{self, LoadOptions, LoadedLibrary, TrustStore};
use crate::manifest::{ChainEntry, Manifest, chain_table, config_json};
use crate::net::{NetEvent, NetHandle};
use crate::store::Store;
use crate::telemetry::{events::EventBus, metrics};
use chain::{ChainLimits, ChainParts, ChainRuntime};
use nest_sdk::{Hash32, PluginKind, PublicKey, RadioFrame, market::MarketBox, radio::RadioBox};
use serde::Serialize;
use services::NodeServices;
use slot::Slot;
use status::{MarketStatus, NodeStatus, PackageStatus, RadioStatus, SharedStatus};
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, RwLock, mpsc},
    time::Duration,
};
use tokio::sync::oneshot;

/// Requests waiting for the node loop; senders see "busy" beyond this.
pub const REQUESTS_QUEUED_MAX: usize = 1024;
/// Longest the loop sleeps without ticking its chains.
const TICK_FALLBACK_MS: u64 = 1000;

pub use crate::clock::now_ms;

/// What the metrics of a node running `manifest` are labelled with: its chains, plugins
/// and radios, and every reason the device pipeline rejects a frame for.
pub fn known_labels(manifest: &Manifest) -> metrics::KnownLabels {
    metrics::KnownLabels {
        chains: manifest.chain.iter().map(|chain| chain.id.clone()).collect(),
        plugins: manifest.plugin.iter().map(|plugin| plugin.id.clone()).collect(),
        radios: manifest.radio.iter().map(|radio| radio.id.clone()).collect(),
        device_rejections: crate::devices::pipeline::Rejection::ALL.iter().map(|reason| reason.code()).collect(),
    }
}

/// A plugin package loaded under its manifest id.
pub struct Package {
    /// Manifest id.
    pub id: String,
    /// The loaded library.
    pub library: Arc<LoadedLibrary>,
    /// The version that replaced it (libraries are never unloaded, only replaced).
    pub replaced_by: Option<String>,
}

impl Package {
    /// The package as the status reports it.
    pub fn status(&self) -> PackageStatus {
        PackageStatus {
            id: self.id.clone(),
            name: self.library.info.name.to_string(),
            version: self.library.info.version.to_string(),
            kinds: self.library.kinds().iter().map(|k| k.name().to_string()).collect(),
            library_sha256: self.library.library_sha256,
            signed_by: self.library.signed_by.clone(),
            state: if self.replaced_by.is_some() { "replaced".into() } else { "active".into() },
            replaced_by: self.replaced_by.clone(),
        }
    }
}

/// A radio driver instance and its manifest id.
pub struct RadioPart {
    /// Radio id.
    pub id: String,
    /// The driver.
    pub slot: Slot<RadioBox>,
    /// Frames its driver reported skipped, by reason (kept across driver upgrades).
    pub skips: Arc<radios::SkipCounts>,
    /// Whether its driver's `start` succeeded (its threads run).
    pub started: bool,
}

/// A market policy instance and its manifest id.
pub struct MarketPart {
    /// Market id.
    pub id: String,
    /// The policy.
    pub slot: Slot<MarketBox>,
}

/// Everything built from a manifest, before any state is opened.
pub struct Prepared {
    /// The manifest.
    pub manifest: Manifest,
    /// The node key.
    pub key: Arc<SecretKey>,
    /// Loaded packages, in manifest order.
    pub packages: Vec<Package>,
    /// Chains, ready to open.
    pub chains: Vec<ChainParts>,
    /// Radio drivers, not yet started.
    pub radios: Vec<RadioPart>,
    /// Market policies.
    pub markets: Vec<MarketPart>,
    /// The operator's pricing strategies, lent to market policies.
    pub strategies: crate::market::SharedStrategies,
    /// Signatures verified off the loop, which consensus engines' `verify` looks up.
    pub verified: Arc<precheck::VerifiedSignatures>,
    /// Each chain's function listing a consensus message's signatures, where its
    /// consensus library has one.
    pub listers: BTreeMap<String, nest_sdk::MessageSignatures>,
    /// Per chain, a chain-type instance of its own for the block reader.
    pub decoders: BTreeMap<String, nest_sdk::chain::ChainTypeBox>,
}

/// Loads and verifies every plugin, validates every plugin config through its plugin,
/// and builds the instances. Returns every problem found, each located in the manifest.
pub fn prepare(manifest: Manifest) -> Result<Prepared, Vec<String>> {
    let (prepared, errors) = prepare_all(manifest).map_err(|error| vec![error])?;
    if errors.is_empty() { Ok(prepared) } else { Err(errors) }
}

/// Like [`prepare`], but goes as far as it can past each problem and returns what it
/// built beside every problem it found (a dry run reports them all). Without a readable
/// node key the instances are built with a stand-in key, so their configs are still
/// checked; the problems then include the key's. Fails only when the pricing sandbox
/// cannot be made.
pub fn prepare_all(manifest: Manifest) -> Result<(Prepared, Vec<String>), String> {
    let strategies = crate::market::Strategies::shared().map_err(|e| format!("pricing sandbox: {e}"))?;
    let mut errors = Vec::new();
    let key = SecretKey::read(&manifest.node.key).unwrap_or_else(|error| {
        errors.push(manifest.error("[node]", "key", error.to_string()).to_string());
        SecretKey::from_seed([0; 32])
    });
    let key = Arc::new(key);
    let packages = load_packages(&manifest, &mut errors);
    refuse_duplicate_names(&manifest, &packages, &mut errors);
    let libraries: BTreeMap<&str, &Arc<LoadedLibrary>> = packages.iter().map(|p| (p.id.as_str(), &p.library)).collect();
    let verified = Arc::new(precheck::VerifiedSignatures::default());
    let mut chains = Vec::new();
    let mut listers = BTreeMap::new();
    let mut decoders = BTreeMap::new();
    for entry in &manifest.chain {
        match prepare_chain(&manifest, entry, &libraries, (&key, &verified)) {
            Ok(parts) => chains.push(parts),
            Err(mut chain_errors) => errors.append(&mut chain_errors),
        }
        let lister = libraries.get(entry.consensus.plugin.as_str()).and_then(|library| library.message_signatures());
        if let Some(lister) = lister {
            listers.insert(entry.id.clone(), lister);
        }
        if let Some(decoder) = reader_decoder(entry, &libraries, &key) {
            decoders.insert(entry.id.clone(), decoder);
        }
    }
    let radios = prepare_radios(&manifest, &libraries, &key, &mut errors);
    let markets = prepare_markets(&manifest, &libraries, &key, &strategies, &mut errors);
    let rules = market::build_rules(&manifest, &libraries, &key, &mut errors);
    chains.iter_mut().for_each(|chain| chain.markets = rules.clone());
    Ok((Prepared { manifest, key, packages, chains, radios, markets, strategies, verified, listers, decoders }, errors))
}

/// A second instance of `entry`'s chain type, for the block reader; `None` when the
/// chain's own could not be built (its problem is reported there).
fn reader_decoder(
    entry: &ChainEntry,
    libraries: &BTreeMap<&str, &Arc<LoadedLibrary>>,
    key: &Arc<SecretKey>,
) -> Option<nest_sdk::chain::ChainTypeBox> {
    let library = libraries.get(entry.chain_type.plugin.as_str())?;
    let host = NodeServices::host(key.clone(), &format!("{}/chain_type/reader", entry.id));
    library.new_chain_type(&config_json(&entry.chain_type.config), &host).ok()
}

/// The trust store and unsigned policy the manifest sets.
pub fn load_options(manifest: &Manifest) -> LoadOptions {
    let mut trust = TrustStore::new();
    for vendor in &manifest.trust.vendor {
        if let Ok(key) = PublicKey::from_hex(&vendor.key) {
            trust.add(&vendor.name, key);
        }
    }
    LoadOptions { trust, allow_unsigned: manifest.trust.allow_unsigned }
}

fn load_packages(manifest: &Manifest, errors: &mut Vec<String>) -> Vec<Package> {
    let options = load_options(manifest);
    let mut packages = Vec::new();
    for entry in &manifest.plugin {
        let table = format!("[[plugin]] id=\"{}\"", entry.id);
        match loader::load(&entry.package, &options) {
            Ok(library) => {
                packages.push(Package { id: entry.id.clone(), library: Arc::new(library), replaced_by: None })
            }
            Err(error) => errors.push(manifest.error(table, "package", error.to_string()).to_string()),
        }
    }
    packages
}

/// Refuses two `[[plugin]]` entries that load plugins of the same name.
fn refuse_duplicate_names(manifest: &Manifest, packages: &[Package], errors: &mut Vec<String>) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for package in packages {
        let name = package.library.info.name.as_str();
        if let Some(first) = seen.insert(name, &package.id) {
            let message = format!("plugin {name} is already loaded as [[plugin]] id=\"{first}\"");
            errors.push(manifest.error(format!("[[plugin]] id=\"{}\"", package.id), "package", message).to_string());
        }
    }
}

/// Finds a package by id and checks it provides `kind` and accepts `config`.
fn resolve<'a>(
    manifest: &Manifest,
    libraries: &BTreeMap<&str, &'a Arc<LoadedLibrary>>,
    table: &str,
    key_prefix: &str,
    plugin_id: &str,
    kind: PluginKind,
    config: &toml::Table,
) -> Result<&'a Arc<LoadedLibrary>, String> {
    let plugin_key = if key_prefix.is_empty() { "plugin".to_string() } else { format!("{key_prefix}.plugin") };
    let Some(library) = libraries.get(plugin_id).copied() else {
        // An undeclared plugin is a structural problem, reported in the same words.
        manifest.check_reference(table, &plugin_key, plugin_id).map_err(|undeclared| undeclared.to_string())?;
        return Err(manifest.error(table, plugin_key, format!("plugin \"{plugin_id}\" did not load")).to_string());
    };
    if !library.kinds().contains(&kind) {
        let provides: Vec<&str> = library.kinds().iter().map(|k| k.name()).collect();
        let message = format!("plugin \"{plugin_id}\" is not a {kind} plugin (it provides {})", provides.join(", "));
        return Err(manifest.error(table, plugin_key, message).to_string());
    }
    library
        .check_config(kind, &config_json(config))
        .map_err(|error| config_error(manifest, table, key_prefix, error))?;
    Ok(library)
}

fn config_error(manifest: &Manifest, table: &str, key_prefix: &str, error: nest_sdk::PluginError) -> String {
    let config_key = if key_prefix.is_empty() { "config".to_string() } else { format!("{key_prefix}.config") };
    match error {
        nest_sdk::PluginError::InvalidConfig { path, message } => {
            let key = if path.is_empty() { config_key } else { format!("{config_key}.{path}") };
            manifest.error(table, key, message.to_string()).to_string()
        }
        other => manifest.error(table, config_key, other.to_string()).to_string(),
    }
}

fn prepare_chain(
    manifest: &Manifest,
    entry: &ChainEntry,
    libraries: &BTreeMap<&str, &Arc<LoadedLibrary>>,
    (key, verified): (&Arc<SecretKey>, &Arc<precheck::VerifiedSignatures>),
) -> Result<ChainParts, Vec<String>> {
    let table = chain_table(entry);
    let chain_type_use = &entry.chain_type;
    let consensus_use = &entry.consensus;
    let chain_type_lib = resolve(
        manifest,
        libraries,
        &table,
        "chain_type",
        &chain_type_use.plugin,
        PluginKind::ChainType,
        &chain_type_use.config,
    );
    let consensus_lib = resolve(
        manifest,
        libraries,
        &table,
        "consensus",
        &consensus_use.plugin,
        PluginKind::Consensus,
        &consensus_use.config,
    );
    let (chain_type_lib, consensus_lib) = match (chain_type_lib, consensus_lib) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => return Err([a.err(), b.err()].into_iter().flatten().collect()),
    };
    check_requirements(manifest, entry, &[chain_type_lib, consensus_lib]).map_err(|e| vec![e])?;
    let label = |role: &str| format!("{}/{role}", entry.id);
    let instance_error =
        |key: &str, error: nest_sdk::PluginError| vec![manifest.error(&table, key, error.to_string()).to_string()];
    let chain_type = chain_type_lib
        .new_chain_type(&config_json(&chain_type_use.config), &NodeServices::host(key.clone(), &label("chain_type")))
        .map_err(|e| instance_error("chain_type", e))?;
    let consensus = consensus_lib
        .new_consensus(
            &config_json(&consensus_use.config),
            &NodeServices::consensus_host(key.clone(), &label("consensus"), verified.clone()),
        )
        .map_err(|e| instance_error("consensus", e))?;
    let allocations = entry
        .genesis
        .allocations
        .iter()
        .filter_map(|a| PublicKey::from_hex(&a.account).ok().map(|account| (account, a.balance)))
        .collect();
    let validators = entry
        .genesis
        .validator_sets()
        .map_err(|(key, message)| vec![manifest.error(&table, &key, message).to_string()])?;
    let info = |lib: &LoadedLibrary| (lib.info.name.to_string(), lib.info.version.to_string());
    let (ct_name, ct_version) = info(chain_type_lib);
    let (cs_name, cs_version) = info(consensus_lib);
    Ok(ChainParts {
        id: entry.id.clone(),
        consensus: Slot::new(
            consensus,
            &consensus_use.plugin,
            &cs_name,
            &cs_version,
            &config_json(&consensus_use.config),
        ),
        chain_type: Slot::new(
            chain_type,
            &chain_type_use.plugin,
            &ct_name,
            &ct_version,
            &config_json(&chain_type_use.config),
        ),
        limits: ChainLimits {
            block_txs_max: entry.block_txs_max,
            unit_bytes_max: chain::unit_bytes_max(manifest.network.message_bytes_max),
            mempool_txs_max: entry.mempool_txs_max,
            gas_price: entry.gas_price,
        },
        allocations,
        validators,
        dpos: entry.genesis.dpos.map(|dpos| crate::ledger::rounds::DposParams { delegates: dpos.delegates }),
        poio: entry.genesis.dpos.and_then(|dpos| dpos.poio).map(|poio| poio.params()),
        genesis_timestamp_ms: entry.genesis.timestamp_ms,
        node_key: key.public_key(),
        markets: Default::default(),
    })
}

/// Checks the plugins a chain's genesis pins (name, version, library hash).
fn check_requirements(manifest: &Manifest, entry: &ChainEntry, loaded: &[&Arc<LoadedLibrary>]) -> Result<(), String> {
    let table = chain_table(entry);
    for (index, requirement) in entry.genesis.require.iter().enumerate() {
        let key = format!("genesis.require[{index}]");
        let Some(library) = loaded.iter().find(|l| l.info.name.as_str() == requirement.name) else {
            return Err(manifest
                .error(
                    &table,
                    key,
                    format!(
                        "the chain requires plugin {} but its chain type and consensus are other plugins",
                        requirement.name
                    ),
                )
                .to_string());
        };
        if library.info.version.as_str() != requirement.version {
            let message = format!(
                "the chain requires {} {} but {} is loaded",
                requirement.name, requirement.version, library.info.version
            );
            return Err(manifest.error(&table, key, message).to_string());
        }
        if let Some(hash) = &requirement.library_sha256
            && !hash.eq_ignore_ascii_case(&library.library_sha256.to_hex())
        {
            {
                let message = format!(
                    "the chain requires {} with library sha256 {hash}, loaded {}",
                    requirement.name, library.library_sha256
                );
                return Err(manifest.error(&table, key, message).to_string());
            }
        }
    }
    Ok(())
}

fn prepare_radios(
    manifest: &Manifest,
    libraries: &BTreeMap<&str, &Arc<LoadedLibrary>>,
    key: &Arc<SecretKey>,
    errors: &mut Vec<String>,
) -> Vec<RadioPart> {
    let build = |lib: &LoadedLibrary, config: &str, host: &nest_sdk::Host| lib.new_radio(config, host);
    let host_for = |label: &str| NodeServices::host(key.clone(), label);
    prepare_instances(manifest, &manifest.radio, PluginKind::Radio, libraries, host_for, build, errors)
        .into_iter()
        .map(|(id, slot)| RadioPart { id, slot, skips: Default::default(), started: false })
        .collect()
}

fn prepare_markets(
    manifest: &Manifest,
    libraries: &BTreeMap<&str, &Arc<LoadedLibrary>>,
    key: &Arc<SecretKey>,
    strategies: &crate::market::SharedStrategies,
    errors: &mut Vec<String>,
) -> Vec<MarketPart> {
    let build = |lib: &LoadedLibrary, config: &str, host: &nest_sdk::Host| lib.new_market(config, host);
    let host_for = |label: &str| NodeServices::market_host(key.clone(), label, strategies.clone());
    prepare_instances(manifest, &manifest.market, PluginKind::Market, libraries, host_for, build, errors)
        .into_iter()
        .map(|(id, slot)| MarketPart { id, slot })
        .collect()
}

/// Builds the instances of `[[radio]]` or `[[market]]` tables: plugin resolved, its kind
/// and config checked, an instance made by `build`; every failure goes to `errors`.
fn prepare_instances<T>(
    manifest: &Manifest,
    entries: &[crate::manifest::InstanceEntry],
    kind: PluginKind,
    libraries: &BTreeMap<&str, &Arc<LoadedLibrary>>,
    host_for: impl Fn(&str) -> nest_sdk::Host,
    build: impl Fn(&LoadedLibrary, &str, &nest_sdk::Host) -> Result<T, nest_sdk::PluginError>,
    errors: &mut Vec<String>,
) -> Vec<(String, Slot<T>)> {
    let mut built = Vec::new();
    for entry in entries {
        let table = format!("[[{}]] id=\"{}\"", kind.name(), entry.id);
        let config = config_json(&entry.config);
        let instance = resolve(manifest, libraries, &table, "", &entry.plugin, kind, &entry.config).and_then(|lib| {
            let host = host_for(&format!("{}/{}", kind.name(), entry.id));
            let instance =
                build(lib, &config, &host).map_err(|e| manifest.error(&table, "plugin", e.to_string()).to_string())?;
            Ok(Slot::new(instance, &entry.plugin, &lib.info.name, &lib.info.version, &config))
        });
        match instance {
            Ok(slot) => built.push((entry.id.clone(), slot)),
            Err(error) => errors.push(error),
        }
    }
    built
}

/// An account as the API shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct AccountView {
    /// Account key.
    pub account: PublicKey,
    /// Committed balance.
    pub balance: u64,
    /// Committed nonce (the next transaction's nonce when nothing is pending).
    pub nonce: u64,
    /// Nonce for the next transaction, counting those waiting in the mempool.
    pub next_nonce: u64,
}

/// A transaction's place.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TxStatus {
    /// Waiting in the mempool.
    Pending,
    /// In a committed block.
    Committed {
        /// Block height.
        height: u64,
        /// Position in the block.
        index: u32,
    },
}

/// One offence recorded on chain, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceView {
    /// The validator that signed twice.
    pub offender: PublicKey,
    /// The height of its conflicting votes or proposals.
    pub height: u64,
    /// Their round.
    pub round: u32,
    /// `prevote`, `precommit` or `proposal`.
    pub kind: &'static str,
    /// The two values it signed (`null`: nil).
    pub values: [Option<Hash32>; 2],
    /// The height of the block that recorded it.
    pub included_at: u64,
}

/// Most offences one evidence query lists (oldest keys first).
pub const EVIDENCE_LISTED_MAX: usize = 1000;

fn evidence_views(ledger: &crate::ledger::Ledger) -> Vec<EvidenceView> {
    use crate::ledger::evidence::{EVIDENCE_PREFIX, EvidenceRecord};
    ledger
        .records_with_prefix(EVIDENCE_PREFIX)
        .filter_map(|(_, value)| borsh::from_slice::<EvidenceRecord>(value).ok())
        .take(EVIDENCE_LISTED_MAX)
        .map(|record| {
            let (height, round) = record.proof.height_round();
            EvidenceView {
                offender: record.proof.offender(),
                height,
                round,
                kind: record.proof.kind().name(),
                values: record.proof.values(),
                included_at: record.included_at,
            }
        })
        .collect()
}

/// A commit certificate as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CommitView {
    /// The round whose precommits decided.
    pub round: u32,
    /// The decided value (SHA-256 of the unit bytes).
    pub value: Hash32,
    /// The signers and their voting power, in key order.
    pub signers: Vec<SignerView>,
    /// Power of the signers.
    pub power: u64,
    /// Total power of the height's validator set.
    pub total_power: u64,
    /// Whether the certificate checks against that set (signatures, members, more than
    /// two thirds of the power); `error` says why not.
    pub valid: bool,
    /// Why it does not check, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One signer of a commit certificate.
#[derive(Debug, Clone, Serialize)]
pub struct SignerView {
    /// The validator's key.
    pub key: PublicKey,
    /// Its voting power at the block's height (0 if it is not a validator there).
    pub power: u64,
}

/// A block's header as the API shows it: what a light client checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HeaderView {
    /// Height.
    pub height: u64,
    /// Block hash.
    pub hash: Hash32,
    /// Parent hash.
    pub parent: Hash32,
    /// Timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Proposer's node key.
    pub proposer: PublicKey,
    /// Merkle root of the transactions: the RFC 6962 tree head over their ids.
    pub tx_root: Hash32,
    /// Number of transactions: the tree size.
    pub tx_count: u64,
    /// State digest after the block.
    pub state_digest: Hash32,
    /// Consensus certificate, hex.
    pub certificate: String,
    /// The consensus engine's proof that the block is final, hex (empty if none).
    pub finality: String,
}

/// A block as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BlockView {
    /// The header.
    #[serde(flatten)]
    pub header: HeaderView,
    /// The certificate read as a commit certificate (BFT), checked against the
    /// validator set of the block's height; absent for other engines' certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitView>,
    /// The DPoS round the block belongs to (`(height − 1) / N`); absent on other chains.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round: Option<u64>,
    /// Hashes of the transactions, in order.
    pub tx_hashes: Vec<Hash32>,
    /// Transactions with their hashes (empty with `?txs=hashes`).
    pub txs: Vec<TxView>,
}

/// A transaction inside a block.
#[derive(Debug, Clone, Serialize)]
pub struct TxView {
    /// Transaction hash.
    pub hash: Hash32,
    /// The signed transaction.
    #[serde(flatten)]
    pub tx: SignedTx,
}

/// Why a query failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueryError {
    /// No such chain, block or transaction.
    #[error("{0}")]
    NotFound(String),
    /// The node could not answer.
    #[error("{0}")]
    Failed(String),
    /// The request is invalid (bad input); the message says what and why.
    #[error("{0}")]
    Refused(String),
}

/// Results of admitting a batch of transactions, in order.
pub type AdmitResults = Vec<Result<(), TxError>>;

/// What the API (or a radio) asks of the node loop.
pub enum Request {
    /// Gossiped transactions, decoded and signature-checked off the loop
    /// ([`chain::check_tx_gossip`]; `None`: malformed or forged): admit them and report
    /// the verdict to the network.
    TxGossip {
        /// Chain id.
        chain: String,
        /// The message, for the verdict.
        id: crate::net::MessageId,
        /// The peer that delivered it.
        from: crate::net::PeerId,
        /// The checked transactions with their hashes.
        txs: Option<Vec<(Hash32, SignedTx)>>,
    },
    /// Admit signature-verified transactions into a chain's mempool.
    Submit {
        /// Chain id.
        chain: String,
        /// Transactions with their hashes; signatures already verified.
        txs: Vec<(Hash32, SignedTx)>,
        /// Per-transaction results.
        reply: oneshot::Sender<Result<AdmitResults, QueryError>>,
    },
    /// Read an account.
    Account {
        /// Chain id.
        chain: String,
        /// The account.
        account: PublicKey,
        /// The answer.
        reply: oneshot::Sender<Result<AccountView, QueryError>>,
    },
    /// Read the consensus offences recorded on a chain.
    Evidence {
        /// Chain id.
        chain: String,
        /// The answer.
        reply: oneshot::Sender<Result<Vec<EvidenceView>, QueryError>>,
    },
    /// Read a committed block.
    Block {
        /// Chain id.
        chain: String,
        /// Height.
        height: u64,
        /// The answer.
        reply: oneshot::Sender<Result<BlockView, QueryError>>,
    },
    /// Where a transaction is.
    Tx {
        /// Chain id.
        chain: String,
        /// Transaction hash.
        hash: Hash32,
        /// The answer.
        reply: oneshot::Sender<Result<TxStatus, QueryError>>,
    },
    /// Inspect or administer plugins.
    Plugin {
        /// What to do.
        op: PluginOp,
        /// The affected packages and their instances.
        reply: oneshot::Sender<Result<Vec<admin::PluginEntry>, QueryError>>,
    },
    /// Something happened on the network.
    Net(NetEvent),
    /// Block (or unblock) a peer: its connections close and new ones are refused.
    BlockPeer {
        /// The peer id, as text.
        peer: String,
        /// Block or unblock.
        blocked: bool,
        /// Done, or why not.
        reply: oneshot::Sender<Result<(), QueryError>>,
    },
    /// A radio delivered a frame.
    Frame {
        /// Index of the radio.
        radio: usize,
        /// The frame.
        frame: RadioFrame,
    },
    /// A market operation (strategies, quotes, listings).
    Market {
        /// What to do.
        op: crate::market::MarketOp,
        /// The answer, as JSON.
        reply: oneshot::Sender<Result<serde_json::Value, QueryError>>,
    },
    /// The verification pool checked device frames.
    DeviceVerdicts(Vec<crate::devices::pool::Verdict>),
    /// A device or radio query or command.
    Devices {
        /// What to do.
        op: DeviceOp,
        /// The answer, as JSON.
        reply: oneshot::Sender<Result<serde_json::Value, QueryError>>,
    },
    /// A staking query (see [`staking`]).
    Staking {
        /// What to answer.
        op: StakingOp,
        /// The answer, as JSON.
        reply: oneshot::Sender<Result<serde_json::Value, QueryError>>,
    },
    /// Stop the loop.
    Shutdown,
}

pub use admin::{InstanceEntry, PluginEntry, PluginOp};
pub use devices::DeviceOp;
pub use staking::StakingOp;

/// A running node loop.
pub struct Node {
    /// Where to send requests.
    pub requests: mpsc::SyncSender<Request>,
    /// The latest status.
    pub status: SharedStatus,
    /// The running manifest.
    pub manifest: Manifest,
    /// The node key (signs as the node; never leaves the process).
    pub key: Arc<SecretKey>,
    /// The node's events (blocks, transactions, plugin states).
    pub events: EventBus,
    /// Reads committed blocks off the loop (for the API).
    pub reader: reader::BlockReader,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starting the node failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The manifest or its plugins are not usable.
    #[error("{}", .0.join("\n"))]
    Prepare(Vec<String>),
    /// The data directory could not be opened.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    /// A chain could not be opened.
    #[error("{0}")]
    Chain(#[from] Box<chain::ChainError>),
}

struct LoopState {
    store: Store,
    chains: Vec<ChainRuntime>,
    radios: Vec<(RadioPart, RadioStatus)>,
    markets: Vec<MarketPart>,
    strategies: crate::market::SharedStrategies,
    events: EventBus,
    /// Per chain, the height up to which committed market transactions were published.
    market_heights: BTreeMap<String, u64>,
    packages: Vec<Package>,
    key: Arc<SecretKey>,
    manifest: Manifest,
    /// For radio sinks of replacement driver instances.
    requests: mpsc::SyncSender<Request>,
    /// The peer-to-peer layer, when `[network]` enables it.
    net: Option<NetHandle>,
    /// Block sync in progress.
    sync: network::SyncState,
    /// What the block server reads of each chain (see [`serve`]).
    serve_views: serve::ServeViews,
    /// Each chain's committed head and tip when its serve view was last published.
    served_heads: HashMap<String, (Hash32, Hash32)>,
    status: SharedStatus,
    base_status: NodeStatus,
    /// Device frames, readings and anchors.
    devices: devices::DeviceState,
    /// The Proof-of-i/o rounds this node has proven.
    poio: poio::Prover,
    /// How far each chain's old blocks are pruned (`keep_blocks`).
    pruner: prune::Pruner,
    /// Consensus messages' signatures checked off the loop (an upgrade changes a
    /// chain's listing function).
    prechecker: precheck::Prechecker,
    /// Committed blocks read and decoded for queries (an upgrade changes a chain's
    /// decoder).
    reader: reader::BlockReader,
}

impl Node {
    /// Prepares the manifest, opens the store and every chain, and starts the loop thread.
    pub fn start(manifest: Manifest) -> Result<Node, StartError> {
        Self::start_with(manifest, None)
    }

    /// Starts the node on an already started network (see `run::start`); the bridge
    /// from network events to the loop runs on the current tokio runtime.
    pub fn start_with(
        manifest: Manifest,
        net: Option<(NetHandle, tokio::sync::mpsc::Receiver<NetEvent>)>,
    ) -> Result<Node, StartError> {
        if manifest.trust.allow_unsigned {
            tracing::warn!(manifest = %manifest.file.display(), "allow_unsigned = true: plugins are loaded without signature checks");
        }
        let mut prepared = prepare(manifest).map_err(StartError::Prepare)?;
        crate::telemetry::metrics::install_chain_metrics();
        let events = EventBus::new();
        let sink: nest_chain::telemetry::EventSink = Arc::new(events.clone());
        prepared.radios.iter_mut().for_each(|radio| radio.slot.attach_events(&sink));
        prepared.markets.iter_mut().for_each(|market| market.slot.attach_events(&sink));
        std::fs::create_dir_all(&prepared.manifest.node.data_dir).map_err(|e| {
            StartError::Prepare(vec![prepared.manifest.error("[node]", "data_dir", e.to_string()).to_string()])
        })?;
        let store = Store::open(&prepared.manifest.node.data_dir.join("store"))?;
        market::load_strategies(&prepared.strategies, &store);
        let base_status = base_status(&prepared);
        let manifest = prepared.manifest.clone();
        let mut chains = prepared
            .chains
            .into_iter()
            .map(|parts| ChainRuntime::open(parts, &store).map(|chain| chain.with_events(&sink)).map_err(Box::new))
            .collect::<Result<Vec<_>, _>>()?;
        market::check_required_policies(&chains).map_err(|e| StartError::Prepare(vec![e]))?;
        let (requests, receiver) = mpsc::sync_channel(REQUESTS_QUEUED_MAX);
        let serve_views = serve::ServeViews::default();
        let reader = reader::BlockReader::new(store.clone(), serve_views.clone());
        prepared.decoders.into_iter().for_each(|(chain, decoder)| reader.set_decoder(&chain, decoder));
        let prechecker = precheck::Prechecker::new(
            prepared.verified.clone(),
            NodeServices::host(prepared.key.clone(), "consensus/precheck"),
        );
        prepared.listers.iter().for_each(|(chain, lister)| prechecker.set_lister(chain, Some(*lister)));
        let net = net
            .map(|(handle, net_events)| {
                network::attach(&handle, &mut chains);
                let server = serve::BlockServer::start(store.clone(), serve_views.clone(), handle.clone())?;
                let bridge = network::Bridge { requests: requests.clone(), server, net: handle.clone() };
                network::bridge(net_events, bridge, prechecker.clone());
                Ok::<_, std::io::Error>(handle)
            })
            .transpose()
            .map_err(|e| StartError::Prepare(vec![format!("cannot start the block server: {e}")]))?;
        let radio_ids = prepared.radios.iter().map(|radio| radio.id.clone()).collect();
        let devices = devices::DeviceState::start(&store, radio_ids, &requests, events.clone())?;
        let radios = radios::start_radios(prepared.radios, &requests);
        let status = Arc::new(RwLock::new(base_status.clone()));
        let mut state = LoopState {
            store,
            chains,
            radios,
            markets: prepared.markets,
            strategies: prepared.strategies,
            events: events.clone(),
            packages: prepared.packages,
            key: prepared.key.clone(),
            manifest: manifest.clone(),
            requests: requests.clone(),
            status: status.clone(),
            base_status,
            net,
            sync: network::SyncState::default(),
            serve_views,
            served_heads: HashMap::new(),
            market_heights: BTreeMap::new(),
            devices,
            poio: poio::Prover::default(),
            pruner: prune::Pruner::default(),
            prechecker,
            reader: reader.clone(),
        };
        // The API may answer before the loop's first turn: publish the status and the
        // chains' views (which the block reader reads) before it can.
        state.publish();
        let thread = std::thread::Builder::new()
            .name("nest-node-loop".into())
            .spawn(move || state.run(receiver))
            .map_err(|e| StartError::Prepare(vec![format!("cannot start the node loop: {e}")]))?;
        Ok(Node { requests, status, manifest, key: prepared.key, events, reader, thread: Some(thread) })
    }

    /// Stops the loop and waits for it (drivers stopped, store closed).
    pub fn stop(mut self) {
        let _ = self.requests.send(Request::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn base_status(prepared: &Prepared) -> NodeStatus {
    let plugins = prepared.packages.iter().map(Package::status).collect();
    NodeStatus {
        name: prepared.manifest.node.name.clone(),
        public_key: prepared.key.public_key(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        peers: 0,
        peer_list: Vec::new(),
        network: None,
        chains: Vec::new(),
        plugins,
        radios: Vec::new(),
        markets: Vec::new(),
        device_anchors: Default::default(),
    }
}

impl LoopState {
    fn run(&mut self, receiver: mpsc::Receiver<Request>) {
        let now = now_ms();
        for chain in &mut self.chains {
            chain.start(&self.store, now);
        }
        network::flush(self.net.as_ref(), &mut self.chains);
        self.publish();
        loop {
            let now = now_ms();
            let deadline = self
                .chains
                .iter()
                .filter_map(ChainRuntime::next_timer_ms)
                .min()
                .unwrap_or(u64::MAX)
                .min(now + TICK_FALLBACK_MS)
                .min(self.devices_deadline_ms());
            match receiver.recv_timeout(Duration::from_millis(deadline.saturating_sub(now))) {
                Ok(Request::Shutdown) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Ok(request) => {
                    let device_traffic = matches!(request, Request::Frame { .. } | Request::DeviceVerdicts(_));
                    self.handle(request);
                    network::flush(self.net.as_ref(), &mut self.chains);
                    if device_traffic && !self.devices_publish_due(now_ms()) {
                        // Device frames come by the thousand: the status follows at its own pace.
                        continue;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let now = now_ms();
            for chain in &mut self.chains {
                chain.tick(&self.store, now);
            }
            network::flush(self.net.as_ref(), &mut self.chains);
            self.sync_tick(now);
            self.devices_tick(now);
            self.poio_tick();
            self.prune_tick();
            self.report_evidence();
            self.publish();
            self.publish_committed_market_txs();
        }
        self.stop_radios();
    }

    fn stop_radios(&mut self) {
        for (part, _) in self.radios.iter_mut().filter(|(part, _)| part.started) {
            if let Err(error) = part.slot.call(|r| r.stop()) {
                tracing::warn!(radio = %part.id, %error, "radio driver did not stop cleanly");
            }
        }
    }

    /// Publishes a chain's serve view for the block server when its head or tip moved.
    fn publish_serve_views(&mut self) {
        for chain in &self.chains {
            let heads = chain.head_and_tip();
            if self.served_heads.get(chain.id()) == Some(&heads) {
                continue;
            }
            let view = Arc::new(chain.serve_view());
            if let Ok(mut views) = self.serve_views.write() {
                views.insert(chain.id().to_string(), view);
                self.served_heads.insert(chain.id().to_string(), heads);
            }
        }
    }

    fn publish(&mut self) {
        self.publish_serve_views();
        let mut status = self.base_status.clone();
        status.plugins = self.packages.iter().map(Package::status).collect();
        status.chains = self.chains.iter().map(ChainRuntime::status).collect();
        status.radios = self.radio_statuses();
        status.device_anchors = self.devices.anchor_stats();
        status.markets =
            self.markets.iter().map(|m| MarketStatus { id: m.id.clone(), plugin: m.slot.status().clone() }).collect();
        let peers = self.net.as_ref().map(NetHandle::peers).unwrap_or_default();
        let mut agents = self.net.as_ref().map(NetHandle::agents).unwrap_or_default();
        status.peers = peers.len();
        status.peer_list = peers
            .into_iter()
            .map(|(peer, key)| status::PeerInfo { peer_id: peer.to_string(), key, agent: agents.remove(&peer) })
            .collect();
        status.network = self.net.as_ref().map(NetHandle::stats);
        metrics::peers(status.peers);
        for chain in &status.chains {
            metrics::chain_state(&chain.id, chain.height, chain.mempool_txs);
        }
        if let Ok(mut shared) = self.status.write() {
            *shared = status;
        }
    }

    fn chain(&mut self, id: &str) -> Result<&mut ChainRuntime, QueryError> {
        self.chains
            .iter_mut()
            .find(|c| c.id() == id)
            .ok_or_else(|| QueryError::NotFound(format!("no chain \"{id}\" on this node")))
    }

    fn handle(&mut self, request: Request) {
        match request {
            Request::Submit { chain, txs, reply } => {
                // Copies for gossip only when someone will receive them.
                let has_peers = self.net.as_ref().is_some_and(|net| !net.peers().is_empty());
                let gossip: Vec<SignedTx> =
                    if has_peers { txs.iter().map(|(_, tx)| tx.clone()).collect() } else { Vec::new() };
                let results = self.chain(&chain).map(|c| c.admit(txs));
                if let Ok(results) = &results {
                    let accepted =
                        gossip.into_iter().zip(results).filter(|(_, r)| r.is_ok()).map(|(tx, _)| tx).collect();
                    self.gossip_txs(&chain, accepted);
                }
                let _ = reply.send(results);
            }
            Request::Evidence { chain, reply } => {
                let _ = reply.send(self.chain(&chain).map(|c| evidence_views(c.ledger())));
            }
            Request::Account { chain, account, reply } => {
                let _ = reply.send(self.chain(&chain).map(|c| {
                    let committed = c.ledger().account(&account);
                    AccountView {
                        account,
                        balance: committed.balance,
                        nonce: committed.nonce,
                        next_nonce: c.pending_nonce(&account),
                    }
                }));
            }
            Request::Block { chain, height, reply } => {
                let _ = reply.send(self.reader.block(&chain, height));
            }
            Request::Tx { chain, hash, reply } => {
                let _ = reply.send(self.tx_status(&chain, hash));
            }
            Request::Frame { radio, frame } => {
                if let Some((_, status)) = self.radios.get_mut(radio) {
                    status.frames_received += 1;
                    tracing::debug!(radio = %status.id, from = %frame.link_address, bytes = frame.payload.len(), "radio frame");
                }
                self.on_frame(radio, frame, now_ms());
            }
            Request::DeviceVerdicts(verdicts) => self.on_verdicts(verdicts),
            Request::Devices { op, reply } => self.device_op(op, reply),
            Request::Staking { op, reply } => {
                let _ = reply.send(self.staking_op(op));
            }
            Request::Plugin { op, reply } => {
                let result = self.plugin_op(op);
                // The caller may read the status next: it must already show the change.
                self.publish();
                let _ = reply.send(result);
            }
            Request::Net(event) => self.on_net(event),
            Request::TxGossip { chain, id, from, txs } => self.on_tx_gossip(&chain, id, from, txs),
            Request::BlockPeer { peer, blocked, reply } => {
                let _ = reply.send(self.block_peer(&peer, blocked));
            }
            Request::Market { op, reply } => {
                let _ = reply.send(self.market_op(op));
            }
            Request::Shutdown => {}
        }
    }

    /// The stored block at `height` and its unit as the chain type decodes it.
    fn tx_status(&mut self, chain_id: &str, hash: Hash32) -> Result<TxStatus, QueryError> {
        if self.chain(chain_id)?.is_pending(&hash) {
            return Ok(TxStatus::Pending);
        }
        match self.store.tx_location(chain_id, &hash).map_err(|e| QueryError::Failed(e.to_string()))? {
            Some((height, index)) => Ok(TxStatus::Committed { height, index }),
            None => Err(QueryError::NotFound(format!(
                "transaction {hash} is neither pending nor committed on chain \"{chain_id}\""
            ))),
        }
    }
}
