//! Keep the operator's pricing strategies: versioned Lua functions per SKU, run in the sandbox.
//!
//! A strategy is Lua source whose chunk returns `function(ctx) ... return price end`
//! (µNEST per unit, optionally a second value: validity in ms). Installing compiles the
//! source in the node's pricing sandbox and tries it on a sample context; a source that
//! does not compile, errors, exceeds its budget or answers something other than a
//! non-negative number is refused and the active version stays. Versions are node-local
//! (never chain state): they are written to the store's meta keyspace and reloaded on start.

use crate::script::{LuaLimits, ScriptError, Session};
use crate::store::{Store, StoreError};
use mlua::{Function, Table, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// Longest strategy source, in bytes.
pub const SOURCE_BYTES_MAX: usize = 16 * 1024;
/// Versions kept per SKU (the oldest is dropped beyond this).
pub const VERSIONS_MAX: usize = 32;
/// SKUs with a strategy on one node.
pub const SKUS_MAX: usize = 256;
/// Longest SKU id, in bytes.
pub const SKU_BYTES_MAX: usize = 64;
/// VM instructions one strategy call may run.
pub const CALL_INSTRUCTIONS_MAX: u64 = 1_000_000;
/// Memory of the pricing sandbox, in bytes.
pub const MEMORY_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Highest price a strategy may answer (µNEST per unit): a u64 beyond float precision is no price.
pub const UNIT_PRICE_MAX: u64 = 1 << 53;

const INDEX_KEY: &str = "market/strategies";
const SKU_KEY_PREFIX: &str = "market/strategy/";

/// What a strategy sees: the request and the node's view of demand.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PricingContext {
    /// The SKU.
    pub sku: String,
    /// Units asked for.
    pub units: u64,
    /// Duration asked for, in seconds.
    pub duration_s: u64,
    /// Share of the SKU's capacity in use, 0.0 to 1.0.
    pub utilization: f64,
    /// Demands seen per minute for this SKU.
    pub demand_rate: f64,
    /// Hour of the day (UTC), 0 to 23.
    pub hour: u64,
    /// Purchases the requester made from this node before.
    pub requester_history: u64,
    /// Chain height.
    pub height: u64,
    /// Time of the request, ms since the epoch.
    pub now_ms: u64,
}

impl PricingContext {
    /// A context with some load, used to try a strategy at install time.
    pub fn sample(sku: &str) -> Self {
        Self {
            sku: sku.to_string(),
            units: 1,
            duration_s: 60,
            utilization: 0.5,
            demand_rate: 1.0,
            hour: 12,
            ..Default::default()
        }
    }
}

/// One installed version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyVersion {
    /// 1, 2, ... per SKU.
    pub version: u32,
    /// The Lua source.
    pub source: String,
    /// When it was installed (node clock), ms since the epoch.
    pub installed_at_ms: u64,
}

/// An SKU's versions as stored and listed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyHistory {
    /// The version quotes use.
    pub active: u32,
    /// Installed versions, oldest first.
    pub versions: Vec<StrategyVersion>,
}

/// A strategy answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Priced {
    /// µNEST per unit.
    pub unit_price: u64,
    /// How long the price holds, in ms, when the strategy said.
    pub valid_ms: Option<u64>,
    /// The version that answered.
    pub version: u32,
}

/// Why a strategy gave no price or could not be installed.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum StrategyError {
    /// No strategy for the SKU.
    #[error("no pricing strategy is installed for SKU \"{0}\"")]
    Unknown(String),
    /// The SKU id is empty, too long or has characters outside a-z, A-Z, 0-9, `-`, `_`, `.`.
    #[error("SKU id \"{0}\": use 1 to {SKU_BYTES_MAX} of a-z A-Z 0-9 - _ .")]
    BadSku(String),
    /// The source is too long.
    #[error("strategy for \"{sku}\": source of {bytes} bytes exceeds {SOURCE_BYTES_MAX}")]
    TooLarge {
        /// SKU.
        sku: String,
        /// Size.
        bytes: usize,
    },
    /// The node already has strategies for [`SKUS_MAX`] SKUs.
    #[error("this node already prices {SKUS_MAX} SKUs")]
    Full,
    /// The Lua failed (syntax, runtime error, budget, memory).
    #[error("strategy for \"{sku}\" v{version}: {error}")]
    Script {
        /// SKU.
        sku: String,
        /// Version that failed (the candidate at install time).
        version: u32,
        /// The sandbox's error.
        error: ScriptError,
    },
    /// The strategy returned something other than a non-negative number.
    #[error("strategy for \"{sku}\" v{version}: {what}")]
    NotAPrice {
        /// SKU.
        sku: String,
        /// Version.
        version: u32,
        /// What it returned instead.
        what: String,
    },
    /// No such version to roll back to.
    #[error("SKU \"{sku}\" has no strategy version {version}")]
    NoVersion {
        /// SKU.
        sku: String,
        /// Asked version.
        version: u32,
    },
    /// The context JSON does not parse.
    #[error("pricing context: {0}")]
    BadContext(String),
    /// The store failed.
    #[error("{0}")]
    Store(String),
}

impl From<StoreError> for StrategyError {
    fn from(error: StoreError) -> Self {
        Self::Store(error.to_string())
    }
}

struct Loaded {
    history: StrategyHistory,
    function: Function,
    /// The SKU id as a Lua string, made once.
    sku: mlua::LuaString,
}

/// Fills the context table and calls the strategy in one call into Lua: setting the
/// fields from Rust costs a protected call each, several times the strategy itself.
const DRIVER: &str =
    "return function(f, t, sku, units, duration_s, utilization, demand_rate, hour, history, height, now_ms)
  t.sku = sku; t.units = units; t.duration_s = duration_s; t.utilization = utilization
  t.demand_rate = demand_rate; t.hour = hour; t.requester_history = history; t.height = height
  t.now_ms = now_ms
  return f(t)
end";

/// The node's strategies and the sandbox that runs them.
pub struct Strategies {
    session: Session,
    /// Reused for every call: filling a table is cheaper than creating one.
    context: Table,
    /// Fills `context` and calls a strategy (see [`DRIVER`]).
    driver: Function,
    skus: BTreeMap<String, Loaded>,
    no_cancel: AtomicBool,
}

/// The registry as plugins' host services and the node loop share it.
pub type SharedStrategies = Arc<Mutex<Strategies>>;

fn check_sku(sku: &str) -> Result<(), StrategyError> {
    let ok = !sku.is_empty()
        && sku.len() <= SKU_BYTES_MAX
        && sku.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok { Ok(()) } else { Err(StrategyError::BadSku(sku.to_string())) }
}

impl Strategies {
    /// An empty registry with its own sandbox.
    pub fn new() -> Result<Self, ScriptError> {
        let limits = LuaLimits {
            memory_bytes_max: MEMORY_BYTES_MAX,
            instructions_max: CALL_INSTRUCTIONS_MAX,
            ..Default::default()
        };
        let session = Session::new(limits)?;
        let context = session.lua().create_table().map_err(|e| ScriptError::Runtime { message: e.to_string() })?;
        let no_cancel = AtomicBool::new(false);
        let driver = session.load_function("pricing driver", DRIVER, &no_cancel)?;
        Ok(Self { session, context, driver, skus: BTreeMap::new(), no_cancel })
    }

    /// A registry shared behind a mutex.
    pub fn shared() -> Result<SharedStrategies, ScriptError> {
        Ok(Arc::new(Mutex::new(Self::new()?)))
    }

    /// Loads every stored SKU's active version; a stored version that no longer compiles
    /// is skipped (and reported), the others load.
    pub fn load(&mut self, store: &Store) -> Result<Vec<String>, StrategyError> {
        let mut problems = Vec::new();
        for sku in self.stored_index(store)? {
            let Some(bytes) = store.get_meta(&format!("{SKU_KEY_PREFIX}{sku}"))? else { continue };
            let history: StrategyHistory =
                serde_json::from_slice(&bytes).map_err(|e| StrategyError::Store(format!("strategy {sku}: {e}")))?;
            let Some(active) = history.versions.iter().find(|v| v.version == history.active) else { continue };
            match self.compile(&sku, active.version, &active.source) {
                Ok(function) => {
                    let sku_string = self.lua_string(&sku)?;
                    self.skus.insert(sku, Loaded { history, function, sku: sku_string });
                }
                Err(error) => problems.push(error.to_string()),
            }
        }
        Ok(problems)
    }

    fn stored_index(&self, store: &Store) -> Result<Vec<String>, StrategyError> {
        match store.get_meta(INDEX_KEY)? {
            Some(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| StrategyError::Store(format!("{INDEX_KEY}: {e}")))
            }
            None => Ok(Vec::new()),
        }
    }

    fn persist(&self, store: &Store, sku: &str) -> Result<(), StrategyError> {
        if let Some(loaded) = self.skus.get(sku) {
            let bytes = serde_json::to_vec(&loaded.history).map_err(|e| StrategyError::Store(e.to_string()))?;
            store.put_meta(&format!("{SKU_KEY_PREFIX}{sku}"), &bytes)?;
        }
        let index: Vec<&String> = self.skus.keys().collect();
        let bytes = serde_json::to_vec(&index).map_err(|e| StrategyError::Store(e.to_string()))?;
        store.put_meta(INDEX_KEY, &bytes)?;
        Ok(())
    }

    fn lua_string(&self, text: &str) -> Result<mlua::LuaString, StrategyError> {
        self.session.lua().create_string(text).map_err(|e| StrategyError::Store(format!("SKU id {text}: {e}")))
    }

    fn compile(&self, sku: &str, version: u32, source: &str) -> Result<Function, StrategyError> {
        let script = |error| StrategyError::Script { sku: sku.to_string(), version, error };
        let function = self.session.load_function(&format!("strategy {sku} v{version}"), source, &self.no_cancel);
        function.map_err(script)
    }

    /// Installs `source` as the SKU's next version and makes it active, after it compiled
    /// and priced a sample context; otherwise the active version stays and the error says why.
    pub fn install(&mut self, store: &Store, sku: &str, source: &str, now_ms: u64) -> Result<u32, StrategyError> {
        check_sku(sku)?;
        if source.len() > SOURCE_BYTES_MAX {
            return Err(StrategyError::TooLarge { sku: sku.to_string(), bytes: source.len() });
        }
        if !self.skus.contains_key(sku) && self.skus.len() >= SKUS_MAX {
            return Err(StrategyError::Full);
        }
        let version = self.skus.get(sku).and_then(|l| l.history.versions.last()).map_or(1, |v| v.version + 1);
        let function = self.compile(sku, version, source)?;
        let sku_string = self.lua_string(sku)?;
        self.run(&sku_string, version, &function, &PricingContext::sample(sku))?;
        let entry = self.skus.entry(sku.to_string());
        let loaded = entry.or_insert_with(|| Loaded {
            history: StrategyHistory::default(),
            function: function.clone(),
            sku: sku_string,
        });
        loaded.history.versions.push(StrategyVersion { version, source: source.to_string(), installed_at_ms: now_ms });
        if loaded.history.versions.len() > VERSIONS_MAX {
            loaded.history.versions.remove(0);
        }
        loaded.history.active = version;
        loaded.function = function;
        self.persist(store, sku)?;
        Ok(version)
    }

    /// Makes an installed version active again.
    pub fn rollback(&mut self, store: &Store, sku: &str, version: u32) -> Result<u32, StrategyError> {
        let loaded = self.skus.get(sku).ok_or_else(|| StrategyError::Unknown(sku.to_string()))?;
        let chosen = loaded.history.versions.iter().find(|v| v.version == version);
        let chosen = chosen.ok_or_else(|| StrategyError::NoVersion { sku: sku.to_string(), version })?;
        let function = self.compile(sku, version, &chosen.source.clone())?;
        if let Some(loaded) = self.skus.get_mut(sku) {
            loaded.history.active = version;
            loaded.function = function;
        }
        self.persist(store, sku)?;
        Ok(version)
    }

    /// An SKU's versions.
    pub fn history(&self, sku: &str) -> Result<StrategyHistory, StrategyError> {
        self.skus.get(sku).map(|l| l.history.clone()).ok_or_else(|| StrategyError::Unknown(sku.to_string()))
    }

    /// SKUs with a strategy and their active versions.
    pub fn list(&self) -> Vec<(String, u32)> {
        self.skus.iter().map(|(sku, l)| (sku.clone(), l.history.active)).collect()
    }

    /// Prices `context` with the SKU's active strategy.
    pub fn price(&self, sku: &str, context: &PricingContext) -> Result<Priced, StrategyError> {
        let loaded = self.skus.get(sku).ok_or_else(|| StrategyError::Unknown(sku.to_string()))?;
        self.run(&loaded.sku, loaded.history.active, &loaded.function, context)
    }

    /// Prices a JSON context (the host service plugins call).
    pub fn price_json(&self, sku: &str, context_json: &str) -> Result<Priced, StrategyError> {
        let mut context: PricingContext =
            serde_json::from_str(context_json).map_err(|e| StrategyError::BadContext(e.to_string()))?;
        context.sku = sku.to_string();
        self.price(sku, &context)
    }

    fn run(
        &self,
        sku_string: &mlua::LuaString,
        version: u32,
        function: &Function,
        context: &PricingContext,
    ) -> Result<Priced, StrategyError> {
        let script = |error| StrategyError::Script { sku: sku_string.to_string_lossy(), version, error };
        let c = context;
        let args = (
            function.clone(),
            self.context.clone(),
            sku_string.clone(),
            c.units,
            c.duration_s,
            c.utilization,
            c.demand_rate,
            c.hour,
            c.requester_history,
            c.height,
            c.now_ms,
        );
        let values = self.session.call_multi(&self.driver, args, &self.no_cancel).map_err(script)?;
        let not_a_price = |what: String| StrategyError::NotAPrice { sku: sku_string.to_string_lossy(), version, what };
        let unit_price = match values.first() {
            Some(value) => as_amount(value).map_err(|what| not_a_price(format!("price: {what}")))?,
            None => return Err(not_a_price("returned nothing, expected a price".into())),
        };
        let valid_ms = match values.get(1) {
            None | Some(Value::Nil) => None,
            Some(value) => Some(as_amount(value).map_err(|what| not_a_price(format!("validity: {what}")))?),
        };
        Ok(Priced { unit_price, valid_ms, version })
    }
}

/// A non-negative number as an integer amount (floats round to the nearest integer).
fn as_amount(value: &Value) -> Result<u64, String> {
    let number = match value {
        Value::Integer(integer) => *integer as f64,
        Value::Number(number) => *number,
        other => return Err(format!("returned a {}, expected a number", other.type_name())),
    };
    if !number.is_finite() || number < 0.0 || number.round() > UNIT_PRICE_MAX as f64 {
        return Err(format!("{number} is not an amount (0 to {UNIT_PRICE_MAX})"));
    }
    Ok(number.round() as u64)
}

#[cfg(test)]
mod tests;
