//! Configuration of the linear chain type, with its defaults and range checks.

use nest_sdk::ConfigError;
use serde::Deserialize;

/// Default [`LinearConfig::max_unit_bytes`]: 8 MiB.
pub const DEFAULT_MAX_UNIT_BYTES: u32 = 8 * 1024 * 1024;
/// Default [`LinearConfig::max_txs_per_unit`].
pub const DEFAULT_MAX_TXS_PER_UNIT: u32 = 50_000;
/// Default [`LinearConfig::max_pending_units`].
pub const DEFAULT_MAX_PENDING_UNITS: u32 = 1024;
/// Smallest accepted [`LinearConfig::max_unit_bytes`].
pub const MIN_MAX_UNIT_BYTES: u32 = 1024;
/// Largest accepted [`LinearConfig::finality_depth`].
pub const MAX_FINALITY_DEPTH: u32 = 1000;

/// Largest accepted [`LinearConfig::finality_proposers`].
pub const MAX_FINALITY_PROPOSERS: u32 = 1024;

/// The chain type's configuration table from the node manifest.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearConfig {
    /// A unit is final when it is this many units below the head, on the head's branch;
    /// 0 makes every unit final as soon as it is inserted.
    #[serde(default)]
    pub finality_depth: u32,
    /// With a value above 0, the quorum: a unit is final once this many distinct
    /// authorities voted for exactly that unit (votes for its descendants and proposing
    /// do not count), and its ancestors with it. For a PoA chain of n authorities,
    /// floor(2n/3) + 1: two quorums share an authority, and a minority partition never
    /// finalizes. `finality_depth` then also applies, counted from the highest known
    /// unit on the voted unit's branch.
    #[serde(default)]
    pub finality_proposers: u32,
    /// Largest encoded unit accepted or built, in bytes.
    #[serde(default = "default_max_unit_bytes")]
    pub max_unit_bytes: u32,
    /// Most transactions in one unit.
    #[serde(default = "default_max_txs_per_unit")]
    pub max_txs_per_unit: u32,
    /// Most units kept above the final unit (not yet final); inserts beyond are rejected.
    #[serde(default = "default_max_pending_units")]
    pub max_pending_units: u32,
}

impl Default for LinearConfig {
    fn default() -> Self {
        Self {
            finality_depth: 0,
            finality_proposers: 0,
            max_unit_bytes: DEFAULT_MAX_UNIT_BYTES,
            max_txs_per_unit: DEFAULT_MAX_TXS_PER_UNIT,
            max_pending_units: DEFAULT_MAX_PENDING_UNITS,
        }
    }
}

fn default_max_unit_bytes() -> u32 {
    DEFAULT_MAX_UNIT_BYTES
}

fn default_max_txs_per_unit() -> u32 {
    DEFAULT_MAX_TXS_PER_UNIT
}

fn default_max_pending_units() -> u32 {
    DEFAULT_MAX_PENDING_UNITS
}

impl LinearConfig {
    /// Checks the ranges that serde cannot express.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.max_unit_bytes < MIN_MAX_UNIT_BYTES {
            return Err(ConfigError::new("max_unit_bytes", format!("must be at least {MIN_MAX_UNIT_BYTES}")));
        }
        if self.finality_depth > MAX_FINALITY_DEPTH {
            return Err(ConfigError::new("finality_depth", format!("must be at most {MAX_FINALITY_DEPTH}")));
        }
        if self.finality_proposers > MAX_FINALITY_PROPOSERS {
            return Err(ConfigError::new("finality_proposers", format!("must be at most {MAX_FINALITY_PROPOSERS}")));
        }
        if self.max_txs_per_unit < 1 {
            return Err(ConfigError::new("max_txs_per_unit", "must be at least 1"));
        }
        if self.max_pending_units <= self.finality_depth {
            return Err(ConfigError::new(
                "max_pending_units",
                format!(
                    "must be greater than finality_depth ({}), or no unit could ever become final",
                    self.finality_depth
                ),
            ));
        }
        Ok(())
    }
}
