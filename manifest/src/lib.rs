//! Parse a node manifest and resolve its relative paths.
//!
//! The manifest is TOML. Every error names the file, the table and the key, e.g.
//! `single.toml: [[chain]] id="main": consensus.config.block_interval_ms: …`; those the
//! TOML parser finds (syntax, unknown keys, wrong types) also give the line and column
//! (`locate`). The checks that need no plugin report every problem they find.

mod locate;

pub use locate::TextPosition;
use nest_ledger::ledger::validators::{Member, ValidatorSet, check_schedule};
pub use nest_net::NetworkSection;
use nest_sdk::PublicKey;
use serde::{Deserialize, Serialize};
use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// A problem in a manifest, located by file, table and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The manifest file.
    pub file: String,
    /// Line and column, for what the TOML parser found.
    pub position: Option<TextPosition>,
    /// The table, e.g. `[[chain]] id="main"` (empty for the whole file).
    pub table: String,
    /// The dotted key inside the table (may be empty).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(TextPosition { line, column }) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        f.write_str(": ")?;
        if !self.table.is_empty() {
            write!(f, "{}: ", self.table)?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ManifestError {}

/// `[node]`: who this node is and where it keeps its data.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Human-readable node name.
    pub name: String,
    /// Data directory (relative to the manifest's directory).
    pub data_dir: PathBuf,
    /// Node key file (relative to the manifest's directory).
    pub key: PathBuf,
}

/// `[api]`: the HTTP API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Address to listen on; loopback unless `allow_non_loopback` is set.
    #[serde(default = "default_api_listen")]
    pub listen: SocketAddr,
    /// Allows a listen address that is not loopback.
    #[serde(default)]
    pub allow_non_loopback: bool,
    /// Largest request body accepted.
    #[serde(default = "default_body_bytes_max")]
    pub body_bytes_max: usize,
    /// Time a request may take before it is cut off.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Requests in progress at once; more are answered 503 at once, not queued.
    #[serde(default = "default_concurrent_requests_max")]
    pub concurrent_requests_max: usize,
    /// Admin requests per second per token, on average; more are answered 429.
    #[serde(default = "default_admin_requests_per_second")]
    pub admin_requests_per_second: u32,
    /// Admin requests per token allowed at once before the rate applies.
    #[serde(default = "default_admin_burst")]
    pub admin_burst: u32,
    /// Public requests per second per client address, on average; more are answered 429.
    #[serde(default = "default_public_requests_per_second")]
    pub public_requests_per_second: u32,
    /// Public requests per client address allowed at once before the rate applies.
    #[serde(default = "default_public_burst")]
    pub public_burst: u32,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self {
            listen: default_api_listen(),
            allow_non_loopback: false,
            body_bytes_max: default_body_bytes_max(),
            request_timeout_ms: default_request_timeout_ms(),
            concurrent_requests_max: default_concurrent_requests_max(),
            admin_requests_per_second: default_admin_requests_per_second(),
            admin_burst: default_admin_burst(),
            public_requests_per_second: default_public_requests_per_second(),
            public_burst: default_public_burst(),
        }
    }
}

fn default_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7300))
}
fn default_body_bytes_max() -> usize {
    16 * 1024 * 1024
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_concurrent_requests_max() -> usize {
    256
}
fn default_admin_requests_per_second() -> u32 {
    50
}
fn default_admin_burst() -> u32 {
    100
}
fn default_public_requests_per_second() -> u32 {
    500
}
fn default_public_burst() -> u32 {
    1000
}

/// One trusted vendor key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VendorKey {
    /// Vendor name, for messages.
    pub name: String,
    /// Ed25519 public key, hex.
    pub key: String,
}

/// `[trust]`: which vendors may sign the plugins this node loads.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSection {
    /// Loads packages without a valid signature (development only; warns at every start).
    #[serde(default)]
    pub allow_unsigned: bool,
    /// Trusted vendor keys.
    #[serde(default)]
    pub vendor: Vec<VendorKey>,
}

/// `[[plugin]]`: a package to load, under a local id.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginEntry {
    /// Local id that chains, radios and markets refer to.
    pub id: String,
    /// Package directory (relative to the manifest's directory).
    pub package: PathBuf,
}

/// A plugin reference with its configuration table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginUse {
    /// Id of a `[[plugin]]`.
    pub plugin: String,
    /// The plugin's own configuration, checked by the plugin.
    #[serde(default = "empty_table")]
    pub config: toml::Table,
}

fn empty_table() -> toml::Table {
    toml::Table::new()
}

/// One genesis allocation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    /// Account public key, hex.
    pub account: String,
    /// Initial balance.
    pub balance: u64,
}

/// One genesis validator: a node key and its voting power.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorEntry {
    /// The validator's node public key, hex.
    pub key: String,
    /// Its voting power (at least 1).
    #[serde(default = "default_power")]
    pub power: u64,
}

fn default_power() -> u64 {
    1
}

/// A validator set scheduled at genesis to take over at a later height.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorChange {
    /// The first height the set signs.
    pub from_height: u64,
    /// The set.
    pub validators: Vec<ValidatorEntry>,
}

/// A plugin the chain requires, pinned by name, version and optionally library hash.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// Plugin name as in its `plugin.toml`.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// SHA-256 of the library, hex.
    #[serde(default)]
    pub library_sha256: Option<String>,
}

/// `[chain.genesis]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisSection {
    /// Genesis timestamp, milliseconds since the Unix epoch.
    #[serde(default)]
    pub timestamp_ms: u64,
    /// Initial balances.
    #[serde(default)]
    pub allocations: Vec<Allocation>,
    /// Plugins every node of this chain must load (name, version, hash).
    #[serde(default)]
    pub require: Vec<Requirement>,
    /// The validator set from height 1, for engines that take it from the ledger (BFT);
    /// empty for engines with their own authority list (PoA).
    #[serde(default)]
    pub validators: Vec<ValidatorEntry>,
    /// Later sets, each from its height on (a ledger record like the first).
    #[serde(default)]
    pub validator_changes: Vec<ValidatorChange>,
    /// For a DPoS chain: its rounds (`genesis.validators` are round 0's delegates, in
    /// slot order; the ledger chooses every later round's).
    #[serde(default)]
    pub dpos: Option<DposSection>,
}

/// `[chain.genesis.dpos]`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DposSection {
    /// Delegates per round, which is also the number of heights in a round.
    pub delegates: u32,
    /// Proof-of-i/o rewards for the nodes that carry the chain (none when absent).
    #[serde(default)]
    pub poio: Option<PoioSection>,
}

/// `[chain.genesis.dpos.poio]`: the reward pool and the weights of each contribution.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PoioSection {
    /// Most tokens ever minted as rewards.
    pub cap: u64,
    /// Most tokens minted per round.
    pub per_round: u64,
    /// Weight per minute of attested uptime.
    pub uptime_per_minute: u64,
    /// Weight per transaction verified.
    pub per_tx_verified: u64,
    /// Weight per MiB of chain data proven.
    pub storage_per_mib: u64,
}

impl PoioSection {
    /// The ledger's parameters.
    pub fn params(&self) -> nest_ledger::ledger::poio::PoioParams {
        use nest_ledger::ledger::poio::{PoioParams, Weights};
        let weights = Weights {
            uptime_per_minute: self.uptime_per_minute,
            per_tx_verified: self.per_tx_verified,
            storage_per_mib: self.storage_per_mib,
        };
        PoioParams { cap: self.cap, per_round: self.per_round, weights }
    }
}

/// `[chain.prove]`: which Proof-of-i/o contributions this node proves on the chain.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProveSection {
    /// Attest liveness each round.
    #[serde(default = "yes")]
    pub uptime: bool,
    /// Answer each round's storage challenge from this node's store (a node that does
    /// not keep the chain's history sets it to false, and earns no storage reward).
    #[serde(default = "yes")]
    pub storage: bool,
}

impl Default for ProveSection {
    fn default() -> Self {
        ProveSection { uptime: true, storage: true }
    }
}

fn yes() -> bool {
    true
}

impl GenesisSection {
    /// The validator sets the genesis block records, first set first. Keys that are not
    /// hex are an error naming the entry.
    pub fn validator_sets(&self) -> Result<Vec<ValidatorSet>, (String, String)> {
        let mut sets = Vec::new();
        if !self.validators.is_empty() {
            sets.push(ValidatorSet { from_height: 1, members: members("genesis.validators", &self.validators)? });
        } else if !self.validator_changes.is_empty() {
            return Err(("genesis.validator_changes".into(), "changes need a first set in genesis.validators".into()));
        }
        for (index, change) in self.validator_changes.iter().enumerate() {
            let path = format!("genesis.validator_changes[{index}]");
            let members = members(&format!("{path}.validators"), &change.validators)?;
            sets.push(ValidatorSet { from_height: change.from_height, members });
        }
        check_schedule(&sets).map_err(|error| ("genesis.validators".to_string(), error.to_string()))?;
        if let Some(dpos) = self.dpos {
            let params = nest_ledger::ledger::rounds::DposParams { delegates: dpos.delegates };
            params.check(self.validators.len()).map_err(|message| ("genesis.dpos.delegates".to_string(), message))?;
            if !self.validator_changes.is_empty() {
                let message = "a DPoS chain's ledger chooses its sets: no validator_changes".to_string();
                return Err(("genesis.validator_changes".into(), message));
            }
            if let Some(poio) = dpos.poio {
                poio.params().check().map_err(|message| ("genesis.dpos.poio".to_string(), message))?;
            }
        }
        Ok(sets)
    }
}

fn members(path: &str, entries: &[ValidatorEntry]) -> Result<Vec<Member>, (String, String)> {
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            PublicKey::from_hex(&entry.key)
                .map(|key| Member { key, power: entry.power })
                .map_err(|error| (format!("{path}[{index}].key"), error.to_string()))
        })
        .collect()
}

/// `[[chain]]`: a chain this node takes part in.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChainEntry {
    /// Chain id, e.g. `main`.
    pub id: String,
    /// The chain-type plugin and its config.
    pub chain_type: PluginUse,
    /// The consensus plugin and its config.
    pub consensus: PluginUse,
    /// Tokens charged per gas unit.
    #[serde(default = "default_gas_price")]
    pub gas_price: u64,
    /// Most transactions in one block.
    #[serde(default = "default_block_txs_max")]
    pub block_txs_max: usize,
    /// Most transactions waiting in the mempool.
    #[serde(default = "default_mempool_txs_max")]
    pub mempool_txs_max: usize,
    /// Genesis state.
    pub genesis: GenesisSection,
    /// What this node proves for Proof-of-i/o rewards, on a chain that has them.
    #[serde(default)]
    pub prove: ProveSection,
    /// Committed blocks this node keeps, newest first: older ones (all but genesis) are
    /// deleted from its store. 0 keeps every block. A pruning node cannot serve the
    /// blocks it dropped to a peer that syncs, nor answer a storage challenge for them.
    #[serde(default)]
    pub keep_blocks: u64,
}

/// The fewest blocks a pruning node keeps: its head and the one before.
pub const KEEP_BLOCKS_MIN: u64 = 2;

fn default_gas_price() -> u64 {
    1
}
fn default_block_txs_max() -> usize {
    20_000
}
fn default_mempool_txs_max() -> usize {
    200_000
}

/// A plugin instance outside any chain: a `[[radio]]` or a `[[market]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceEntry {
    /// Instance id.
    pub id: String,
    /// Id of a `[[plugin]]` of the table's kind.
    pub plugin: String,
    /// The instance's configuration, checked by the plugin.
    #[serde(default = "empty_table")]
    pub config: toml::Table,
}

/// `[[radio]]`: a radio driver instance.
pub type RadioEntry = InstanceEntry;

/// `[[market]]`: a market policy instance.
pub type MarketEntry = InstanceEntry;

/// A parsed manifest with paths resolved against its directory.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[node]`.
    pub node: NodeSection,
    /// `[api]`.
    #[serde(default)]
    pub api: ApiSection,
    /// `[trust]`.
    #[serde(default)]
    pub trust: TrustSection,
    /// `[network]`: listen and bootstrap addresses, peer limits.
    #[serde(default)]
    pub network: NetworkSection,
    /// `[[plugin]]`.
    #[serde(default)]
    pub plugin: Vec<PluginEntry>,
    /// `[[chain]]`.
    #[serde(default)]
    pub chain: Vec<ChainEntry>,
    /// `[[radio]]`.
    #[serde(default)]
    pub radio: Vec<RadioEntry>,
    /// `[[market]]`.
    #[serde(default)]
    pub market: Vec<MarketEntry>,
    /// `[lua]`: limits of operator Lua (console sessions, pricing strategies).
    #[serde(default)]
    pub lua: nest_script::LuaLimits,
    /// The manifest file, as given.
    #[serde(skip)]
    pub file: PathBuf,
}

impl Manifest {
    /// Reads and parses a manifest; resolves relative paths against its directory.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            file: path.display().to_string(),
            position: None,
            table: String::new(),
            key: String::new(),
            message: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Parses manifest text that came from `path`; the first problem is the error.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let (manifest, mut problems) = Self::parse_all(text, path)?;
        if problems.is_empty() { Ok(manifest) } else { Err(problems.remove(0)) }
    }

    /// Reads and parses a manifest, like [`Manifest::load`], but keeps every structural
    /// problem beside the manifest, so a dry run can report them all.
    pub fn load_all(path: &Path) -> Result<(Manifest, Vec<ManifestError>), ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            file: path.display().to_string(),
            position: None,
            table: String::new(),
            key: String::new(),
            message: e.to_string(),
        })?;
        Self::parse_all(&text, path)
    }

    /// Parses manifest text from `path`. Text the TOML parser refuses is the error (it
    /// stops at its first problem); every structural problem after that is returned
    /// beside the manifest.
    pub fn parse_all(text: &str, path: &Path) -> Result<(Manifest, Vec<ManifestError>), ManifestError> {
        let mut manifest: Manifest = toml::from_str(text).map_err(|error| toml_error(text, path, &error))?;
        manifest.file = path.to_path_buf();
        manifest.resolve_paths();
        let problems = manifest.check_structure();
        Ok((manifest, problems))
    }

    fn base_dir(&self) -> PathBuf {
        self.file.parent().map(Path::to_path_buf).unwrap_or_default()
    }

    fn resolve_paths(&mut self) {
        let base = self.base_dir();
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.node.data_dir);
        resolve(&mut self.node.key);
        for plugin in &mut self.plugin {
            resolve(&mut plugin.package);
        }
    }

    /// An error located in this manifest.
    pub fn error(&self, table: impl Into<String>, key: impl Into<String>, message: impl Into<String>) -> ManifestError {
        ManifestError {
            file: self.file.display().to_string(),
            position: None,
            table: table.into(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// Checks what needs no plugin: unique ids, references, keys, allocations, API
    /// address. Returns every problem found.
    fn check_structure(&self) -> Vec<ManifestError> {
        let mut problems = self.check_unique_ids();
        problems.extend(self.check_api().err());
        problems.extend(self.check_network().err());
        for (index, vendor) in self.trust.vendor.iter().enumerate() {
            if let Err(e) = PublicKey::from_hex(&vendor.key) {
                let key = format!("vendor[{index}].key");
                problems.push(self.error("[trust]", key, format!("{} ({})", e, vendor.name)));
            }
        }
        for chain in &self.chain {
            problems.extend(self.check_chain(chain));
        }
        for radio in &self.radio {
            problems
                .extend(self.check_reference(&format!("[[radio]] id=\"{}\"", radio.id), "plugin", &radio.plugin).err());
        }
        for market in &self.market {
            let table = format!("[[market]] id=\"{}\"", market.id);
            problems.extend(self.check_reference(&table, "plugin", &market.plugin).err());
        }
        problems
    }

    fn check_unique_ids(&self) -> Vec<ManifestError> {
        let groups: [(&str, Vec<&str>); 4] = [
            ("[[plugin]]", self.plugin.iter().map(|p| p.id.as_str()).collect()),
            ("[[chain]]", self.chain.iter().map(|c| c.id.as_str()).collect()),
            ("[[radio]]", self.radio.iter().map(|r| r.id.as_str()).collect()),
            ("[[market]]", self.market.iter().map(|m| m.id.as_str()).collect()),
        ];
        let mut problems = Vec::new();
        for (table, ids) in groups {
            let mut seen = std::collections::BTreeSet::new();
            for id in ids {
                let table = format!("{table} id=\"{id}\"");
                if !valid_id(id) {
                    problems.push(self.error(table, "id", "ids use only a-z, 0-9, '-' and '_' (1 to 64 characters)"));
                } else if !seen.insert(id) {
                    problems.push(self.error(table, "id", format!("duplicate id \"{id}\"")));
                }
            }
        }
        problems
    }

    fn check_api(&self) -> Result<(), ManifestError> {
        if !self.api.listen.ip().is_loopback() && !self.api.allow_non_loopback {
            return Err(self.error(
                "[api]",
                "listen",
                format!(
                    "{} is not a loopback address; set allow_non_loopback = true to expose the API",
                    self.api.listen
                ),
            ));
        }
        let limits = [
            ("body_bytes_max", self.api.body_bytes_max as u64),
            ("request_timeout_ms", self.api.request_timeout_ms),
            ("concurrent_requests_max", self.api.concurrent_requests_max as u64),
            ("admin_requests_per_second", u64::from(self.api.admin_requests_per_second)),
            ("admin_burst", u64::from(self.api.admin_burst)),
            ("public_requests_per_second", u64::from(self.api.public_requests_per_second)),
            ("public_burst", u64::from(self.api.public_burst)),
        ];
        if let Some((key, _)) = limits.iter().find(|(_, value)| *value == 0) {
            return Err(self.error("[api]", *key, "must be at least 1"));
        }
        Ok(())
    }

    fn check_network(&self) -> Result<(), ManifestError> {
        use nest_net::NetError;
        self.network.check().map_err(|error| match error {
            NetError::Listen { addr, reason } => self.error("[network]", "listen", format!("\"{addr}\": {reason}")),
            NetError::Bootstrap { addr, reason } => {
                self.error("[network]", "bootstrap", format!("\"{addr}\": {reason}"))
            }
            NetError::Config { key, reason } => self.error("[network]", key, reason),
            other => self.error("[network]", "", other.to_string()),
        })
    }

    /// Refuses a reference to a plugin id no `[[plugin]]` declares.
    pub fn check_reference(&self, table: &str, key: &str, plugin_id: &str) -> Result<(), ManifestError> {
        if self.plugin.iter().any(|p| p.id == plugin_id) {
            return Ok(());
        }
        let known: Vec<&str> = self.plugin.iter().map(|p| p.id.as_str()).collect();
        Err(self.error(table, key, format!("unknown plugin \"{plugin_id}\" (declared: {})", list_or_none(&known))))
    }

    fn check_chain(&self, chain: &ChainEntry) -> Vec<ManifestError> {
        let table = chain_table(chain);
        let mut problems = Vec::new();
        problems.extend(self.check_reference(&table, "chain_type.plugin", &chain.chain_type.plugin).err());
        problems.extend(self.check_reference(&table, "consensus.plugin", &chain.consensus.plugin).err());
        if chain.block_txs_max == 0 || chain.mempool_txs_max == 0 {
            problems.push(self.error(&table, "block_txs_max", "block_txs_max and mempool_txs_max must be at least 1"));
        }
        if chain.keep_blocks != 0 && chain.keep_blocks < KEEP_BLOCKS_MIN {
            let message = format!("keep at least {KEEP_BLOCKS_MIN} blocks, or 0 to keep every block");
            problems.push(self.error(&table, "keep_blocks", message));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (index, allocation) in chain.genesis.allocations.iter().enumerate() {
            let key = format!("genesis.allocations[{index}].account");
            match PublicKey::from_hex(&allocation.account) {
                Err(e) => problems.push(self.error(&table, &key, e)),
                Ok(account) if !seen.insert(account) => {
                    problems.push(self.error(&table, key, format!("account {} is allocated twice", allocation.account)))
                }
                Ok(_) => {}
            }
        }
        if let Err((key, message)) = chain.genesis.validator_sets() {
            problems.push(self.error(&table, key, message));
        }
        problems
    }
}

/// The table label used in messages about a chain.
pub fn chain_table(chain: &ChainEntry) -> String {
    format!("[[chain]] id=\"{}\"", chain.id)
}

/// Converts a plugin's TOML config table to the JSON the SDK expects.
pub fn config_json(table: &toml::Table) -> String {
    serde_json::to_string(table).unwrap_or_else(|_| "{}".to_string())
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() { "none".to_string() } else { items.join(", ") }
}

/// The TOML parser's error, located: line and column, table and key (its own message
/// carries a multi-line source excerpt; this keeps only the one-line reason).
fn toml_error(text: &str, path: &Path, error: &toml::de::Error) -> ManifestError {
    let location = error.span().map(|span| locate::locate(text, span.start));
    let (table, key) = location.as_ref().map(|l| (l.table.clone(), l.key.clone())).unwrap_or_default();
    ManifestError {
        file: path.display().to_string(),
        position: location.map(|l| l.position),
        table,
        key,
        message: error.message().trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[node]
name = "n1"
data_dir = "data"
key = "node.key"

[[plugin]]
id = "poa"
package = "plugins/consensus-poa"

[[plugin]]
id = "linear"
package = "plugins/chain-linear"

[[chain]]
id = "main"
chain_type = { plugin = "linear" }
consensus = { plugin = "poa", config = { block_interval_ms = 1000 } }
genesis = { allocations = [{ account = "0101010101010101010101010101010101010101010101010101010101010101", balance = 5 }] }
"#;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("/etc/nest/single.toml"))
    }

    #[test]
    fn good_manifest_resolves_paths_against_its_directory() {
        let manifest = parse(GOOD).unwrap();
        assert_eq!(manifest.node.data_dir, PathBuf::from("/etc/nest/data"));
        assert_eq!(manifest.plugin[0].package, PathBuf::from("/etc/nest/plugins/consensus-poa"));
        assert_eq!(config_json(&manifest.chain[0].consensus.config), r#"{"block_interval_ms":1000}"#);
    }

    #[test]
    fn duplicate_plugin_id_is_named() {
        let text = GOOD.replace("id = \"linear\"", "id = \"poa\"");
        let error = parse(&text).unwrap_err().to_string();
        assert_eq!(error, "/etc/nest/single.toml: [[plugin]] id=\"poa\": id: duplicate id \"poa\"");
    }

    #[test]
    fn unknown_plugin_reference_is_named() {
        let text = GOOD.replace("plugin = \"poa\"", "plugin = \"pbft\"");
        let error = parse(&text).unwrap_err().to_string();
        assert_eq!(
            error,
            "/etc/nest/single.toml: [[chain]] id=\"main\": consensus.plugin: unknown plugin \"pbft\" (declared: poa, linear)"
        );
    }

    #[test]
    fn unknown_key_and_bad_account_are_reported() {
        let error = parse(&GOOD.replace("name = \"n1\"", "name = \"n1\"\ncolour = 1")).unwrap_err().to_string();
        assert!(error.starts_with("/etc/nest/single.toml:4:1: [node]: colour: unknown field `colour`"), "{error}");
        let error = parse(&GOOD.replace("\"0101", "\"zz01")).unwrap_err().to_string();
        assert!(error.contains("genesis.allocations[0].account: invalid hex"), "{error}");
    }

    #[test]
    fn a_wrong_type_is_located_by_line_column_table_and_key() {
        let error = parse(&GOOD.replace("id = \"linear\"\npackage", "id = \"linear\"\npackage = 7\nx")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "/etc/nest/single.toml:13:11: [[plugin]] id=\"linear\": package: invalid type: integer `7`, expected path string"
        );
        let error = parse(&GOOD.replace("balance = 5", "balance = -5")).unwrap_err().to_string();
        assert!(
            error.starts_with(
                "/etc/nest/single.toml:19:118: [[chain]] id=\"main\": genesis.allocations[0].balance: invalid value"
            ),
            "{error}"
        );
        let error = parse("[node]\nname = \"n1\"\nkey = \"k\"\n").unwrap_err().to_string();
        assert_eq!(error, "/etc/nest/single.toml:1:1: [node]: missing field `data_dir`");
    }

    #[test]
    fn every_structural_problem_is_reported_not_only_the_first() {
        let text = format!(
            "{}\n[api]\nadmin_burst = 0\n",
            GOOD.replace("id = \"linear\"", "id = \"poa\"").replace("plugin = \"linear\"", "plugin = \"pbft\"")
        );
        let (_, problems) = Manifest::parse_all(&text, Path::new("/etc/nest/single.toml")).unwrap();
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            [
                "/etc/nest/single.toml: [[plugin]] id=\"poa\": id: duplicate id \"poa\"",
                "/etc/nest/single.toml: [api]: admin_burst: must be at least 1",
                "/etc/nest/single.toml: [[chain]] id=\"main\": chain_type.plugin: unknown plugin \"pbft\" (declared: poa, poa)",
            ]
        );
    }

    #[test]
    fn genesis_validator_sets_are_read_and_bad_ones_named() {
        let one = "0101010101010101010101010101010101010101010101010101010101010101";
        let two = "0202020202020202020202020202020202020202020202020202020202020202";
        let with = |validators: &str| GOOD.replace("balance = 5 }] }", &format!("balance = 5 }}], {validators} }}"));
        let text = with(&format!(
            r#"validators = [{{ key = "{one}", power = 3 }}, {{ key = "{two}" }}], validator_changes = [{{ from_height = 10, validators = [{{ key = "{two}", power = 2 }}] }}]"#
        ));
        let sets = parse(&text).unwrap().chain[0].genesis.validator_sets().unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!((sets[0].from_height, sets[0].members[0].power, sets[0].members[1].power), (1, 3, 1));
        assert_eq!((sets[1].from_height, sets[1].members[0].power), (10, 2));
        let twice = with(&format!(r#"validators = [{{ key = "{one}" }}, {{ key = "{one}" }}]"#));
        let error = parse(&twice).unwrap_err().to_string();
        assert!(error.contains("genesis.validators: the validator set from height 1 lists"), "{error}");
        let bad_key = with(r#"validators = [{ key = "zz" }]"#);
        let error = parse(&bad_key).unwrap_err().to_string();
        assert!(error.contains("genesis.validators[0].key"), "{error}");
        let orphan =
            with(&format!(r#"validator_changes = [{{ from_height = 5, validators = [{{ key = "{one}" }}] }}]"#));
        let error = parse(&orphan).unwrap_err().to_string();
        assert!(error.contains("changes need a first set in genesis.validators"), "{error}");
    }

    #[test]
    fn a_dpos_genesis_lists_exactly_its_delegates_and_no_changes() {
        let one = "0101010101010101010101010101010101010101010101010101010101010101";
        let with = |rest: &str| GOOD.replace("balance = 5 }] }", &format!("balance = 5 }}], {rest} }}"));
        let good = with(&format!(r#"validators = [{{ key = "{one}" }}], dpos = {{ delegates = 1 }}"#));
        assert_eq!(parse(&good).unwrap().chain[0].genesis.dpos.map(|dpos| dpos.delegates), Some(1));
        let short = with(&format!(r#"validators = [{{ key = "{one}" }}], dpos = {{ delegates = 3 }}"#));
        let error = parse(&short).unwrap_err().to_string();
        assert!(error.contains("genesis.dpos.delegates: a DPoS genesis lists exactly its 3 delegates"), "{error}");
        let changes = with(&format!(
            r#"validators = [{{ key = "{one}" }}], validator_changes = [{{ from_height = 5, validators = [{{ key = "{one}" }}] }}], dpos = {{ delegates = 1 }}"#
        ));
        let error = parse(&changes).unwrap_err().to_string();
        assert!(error.contains("genesis.validator_changes: a DPoS chain's ledger chooses its sets"), "{error}");
        let poio = |per_round: u64| {
            with(&format!(
                r#"validators = [{{ key = "{one}" }}], dpos = {{ delegates = 1, poio = {{ cap = 100, per_round = {per_round}, uptime_per_minute = 1, per_tx_verified = 1, storage_per_mib = 1 }} }}"#
            ))
        };
        let params = parse(&poio(10)).unwrap().chain[0].genesis.dpos.and_then(|dpos| dpos.poio).map(|p| p.params());
        assert_eq!(params.map(|p| (p.cap, p.per_round)), Some((100, 10)));
        let error = parse(&poio(101)).unwrap_err().to_string();
        assert!(error.contains("genesis.dpos.poio: per_round 101 is above the cap 100"), "{error}");
        let keep =
            |blocks: u64| GOOD.replacen("id = \"main\"\n", &format!("id = \"main\"\nkeep_blocks = {blocks}\n"), 1);
        assert!(keep(1).contains("keep_blocks = 1"));
        let error = parse(&keep(1)).unwrap_err().to_string();
        assert!(error.contains("keep_blocks: keep at least 2 blocks, or 0 to keep every block"), "{error}");
        assert_eq!(parse(&keep(2)).unwrap().chain[0].keep_blocks, 2);
    }

    #[test]
    fn non_loopback_api_needs_explicit_consent() {
        let text = format!("{GOOD}\n[api]\nlisten = \"0.0.0.0:7300\"\n");
        let error = parse(&text).unwrap_err().to_string();
        assert!(error.contains("[api]: listen: 0.0.0.0:7300 is not a loopback address"), "{error}");
        let text = format!("{GOOD}\n[api]\nlisten = \"0.0.0.0:7300\"\nallow_non_loopback = true\n");
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn network_section_has_defaults_and_bad_addresses_are_named() {
        let manifest = parse(GOOD).unwrap();
        assert_eq!(manifest.network.listen, vec!["/ip4/127.0.0.1/tcp/0".to_string()]);
        assert_eq!((manifest.network.peers_max, manifest.network.sync_batch_blocks_max), (50, 256));
        let text = format!("{GOOD}\n[network]\nbootstrap = [\"/ip4/127.0.0.1/tcp/9000\"]\n");
        let error = parse(&text).unwrap_err().to_string();
        assert_eq!(
            error,
            "/etc/nest/single.toml: [network]: bootstrap: \"/ip4/127.0.0.1/tcp/9000\": no /p2p/<peer id> at the end"
        );
    }

    #[test]
    fn api_limits_have_defaults_and_zero_is_refused() {
        let manifest = parse(GOOD).unwrap();
        assert_eq!(manifest.api.concurrent_requests_max, 256);
        assert_eq!((manifest.api.admin_requests_per_second, manifest.api.admin_burst), (50, 100));
        let text = format!("{GOOD}\n[api]\nadmin_burst = 0\n");
        let error = parse(&text).unwrap_err().to_string();
        assert_eq!(error, "/etc/nest/single.toml: [api]: admin_burst: must be at least 1");
    }
}
