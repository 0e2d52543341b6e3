//! Configuration of the DAG chain type, with its defaults and range checks.

use nest_sdk::{ConfigError, PARENTS_MAX};
use serde::Deserialize;

/// Default [`DagConfig::approvals`]: each unit approves two tips, as in IOTA.
pub const DEFAULT_APPROVALS: u32 = 2;
/// Default [`DagConfig::pow_bits`]: about 65,000 hashes per unit (ADR 0015 measured
/// 3.6 ms median on one core of this project's machine).
pub const DEFAULT_POW_BITS: u32 = 16;
/// Largest accepted [`DagConfig::pow_bits`]: 2^24 hashes are seconds on a device already.
pub const POW_BITS_MAX: u32 = 24;
/// Default [`DagConfig::alpha`], IOTA's.
pub const DEFAULT_ALPHA: f64 = 0.001;
/// Largest accepted [`DagConfig::alpha`]: beyond it the walk always takes the heaviest
/// approver, and the weights' exponentials underflow.
pub const ALPHA_MAX: f64 = 10.0;
/// Default [`DagConfig::max_unit_bytes`]: device traffic is small.
pub const DEFAULT_MAX_UNIT_BYTES: u32 = 64 * 1024;
/// Smallest accepted [`DagConfig::max_unit_bytes`].
pub const MIN_MAX_UNIT_BYTES: u32 = 1024;
/// Default [`DagConfig::max_txs_per_unit`].
pub const DEFAULT_MAX_TXS_PER_UNIT: u32 = 256;
/// Default [`DagConfig::max_pending_units`].
pub const DEFAULT_MAX_PENDING_UNITS: u32 = 10_000;
/// Largest accepted [`DagConfig::max_pending_units`] (the tangle's own bound is higher).
pub const MAX_PENDING_UNITS_MAX: u32 = 200_000;

/// The chain type's configuration table from the node manifest.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DagConfig {
    /// Tips each new unit approves (fewer when fewer distinct tips exist).
    #[serde(default = "default_approvals")]
    pub approvals: u32,
    /// Leading zero bits a unit's hash must have.
    #[serde(default = "default_pow_bits")]
    pub pow_bits: u32,
    /// The tip walk's α: 0 walks uniformly, larger values follow the heavier approvers.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Largest encoded unit accepted or built, in bytes.
    #[serde(default = "default_max_unit_bytes")]
    pub max_unit_bytes: u32,
    /// Most transactions in one unit.
    #[serde(default = "default_max_txs_per_unit")]
    pub max_txs_per_unit: u32,
    /// Most units held that no checkpoint has made final; inserts beyond are refused
    /// until a checkpoint confirms some.
    #[serde(default = "default_max_pending_units")]
    pub max_pending_units: u32,
}

impl Default for DagConfig {
    fn default() -> Self {
        Self {
            approvals: DEFAULT_APPROVALS,
            pow_bits: DEFAULT_POW_BITS,
            alpha: DEFAULT_ALPHA,
            max_unit_bytes: DEFAULT_MAX_UNIT_BYTES,
            max_txs_per_unit: DEFAULT_MAX_TXS_PER_UNIT,
            max_pending_units: DEFAULT_MAX_PENDING_UNITS,
        }
    }
}

fn default_approvals() -> u32 {
    DEFAULT_APPROVALS
}

fn default_pow_bits() -> u32 {
    DEFAULT_POW_BITS
}

fn default_alpha() -> f64 {
    DEFAULT_ALPHA
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

impl DagConfig {
    /// Checks the ranges that serde cannot express.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.approvals < 1 || self.approvals as usize > PARENTS_MAX {
            return Err(ConfigError::new("approvals", format!("must be 1 to {PARENTS_MAX}")));
        }
        if self.pow_bits > POW_BITS_MAX {
            return Err(ConfigError::new("pow_bits", format!("must be at most {POW_BITS_MAX}")));
        }
        if !self.alpha.is_finite() || !(0.0..=ALPHA_MAX).contains(&self.alpha) {
            return Err(ConfigError::new("alpha", format!("must be a number from 0 to {ALPHA_MAX}")));
        }
        if self.max_unit_bytes < MIN_MAX_UNIT_BYTES {
            return Err(ConfigError::new("max_unit_bytes", format!("must be at least {MIN_MAX_UNIT_BYTES}")));
        }
        if self.max_txs_per_unit < 1 {
            return Err(ConfigError::new("max_txs_per_unit", "must be at least 1"));
        }
        if self.max_pending_units < 1 || self.max_pending_units > MAX_PENDING_UNITS_MAX {
            return Err(ConfigError::new("max_pending_units", format!("must be 1 to {MAX_PENDING_UNITS_MAX}")));
        }
        Ok(())
    }
}
