//! Configuration of the proof-of-authority engine, with its defaults and range checks.

use nest_sdk::{ConfigError, PublicKey};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Most authorities in one configuration.
pub const AUTHORITIES_MAX: usize = 1024;
/// Smallest accepted [`PoaConfig::block_interval_ms`].
pub const BLOCK_INTERVAL_MS_MIN: u64 = 50;
/// Largest accepted [`PoaConfig::block_interval_ms`] (one hour).
pub const BLOCK_INTERVAL_MS_MAX: u64 = 3_600_000;
/// Default [`PoaConfig::max_clock_drift_ms`].
pub const DEFAULT_MAX_CLOCK_DRIFT_MS: u64 = 500;
/// Largest accepted [`PoaConfig::max_clock_drift_ms`] (one hour).
pub const MAX_CLOCK_DRIFT_MS_MAX: u64 = 3_600_000;
/// Default [`PoaConfig::max_message_bytes`]: an 8 MiB unit plus room for the envelope.
pub const DEFAULT_MAX_MESSAGE_BYTES: u32 = 8 * 1024 * 1024 + 4096;
/// Smallest accepted [`PoaConfig::max_message_bytes`].
pub const MAX_MESSAGE_BYTES_MIN: u32 = 1024;

/// The engine's configuration table from the node manifest.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoaConfig {
    /// The authorities, in slot order (hex Ed25519 public keys); slot `s` belongs to
    /// `authorities[s % authorities.len()]`.
    pub authorities: Vec<PublicKey>,
    /// Length of a slot in milliseconds.
    pub block_interval_ms: u64,
    /// How far ahead of this node's clock a block's slot may start, in milliseconds.
    #[serde(default = "default_max_clock_drift_ms")]
    pub max_clock_drift_ms: u64,
    /// Largest consensus message accepted or sent, in bytes.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u32,
}

fn default_max_clock_drift_ms() -> u64 {
    DEFAULT_MAX_CLOCK_DRIFT_MS
}

fn default_max_message_bytes() -> u32 {
    DEFAULT_MAX_MESSAGE_BYTES
}

impl PoaConfig {
    /// A configuration with `authorities` and `block_interval_ms`, other keys at their defaults.
    pub fn new(authorities: Vec<PublicKey>, block_interval_ms: u64) -> Self {
        Self {
            authorities,
            block_interval_ms,
            max_clock_drift_ms: DEFAULT_MAX_CLOCK_DRIFT_MS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    /// Checks the ranges and uniqueness that serde cannot express.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.check_authorities()?;
        if !(BLOCK_INTERVAL_MS_MIN..=BLOCK_INTERVAL_MS_MAX).contains(&self.block_interval_ms) {
            return Err(ConfigError::new(
                "block_interval_ms",
                format!("must be between {BLOCK_INTERVAL_MS_MIN} and {BLOCK_INTERVAL_MS_MAX}"),
            ));
        }
        if self.max_clock_drift_ms > MAX_CLOCK_DRIFT_MS_MAX {
            return Err(ConfigError::new("max_clock_drift_ms", format!("must be at most {MAX_CLOCK_DRIFT_MS_MAX}")));
        }
        if self.max_message_bytes < MAX_MESSAGE_BYTES_MIN {
            return Err(ConfigError::new("max_message_bytes", format!("must be at least {MAX_MESSAGE_BYTES_MIN}")));
        }
        Ok(())
    }

    fn check_authorities(&self) -> Result<(), ConfigError> {
        if self.authorities.is_empty() {
            return Err(ConfigError::new("authorities", "must list at least one authority"));
        }
        if self.authorities.len() > AUTHORITIES_MAX {
            return Err(ConfigError::new("authorities", format!("must list at most {AUTHORITIES_MAX} authorities")));
        }
        let mut first_index = BTreeMap::new();
        for (index, key) in self.authorities.iter().enumerate() {
            if let Some(first) = first_index.insert(key, index) {
                return Err(ConfigError::new(
                    format!("authorities[{index}]"),
                    format!("duplicate of authorities[{first}]"),
                ));
            }
        }
        Ok(())
    }
}
