//! Configuration of the BFT engine: its timeouts, with defaults and range checks.
//! The validators are not configured here: the ledger decides them per height.

use nest_sdk::ConfigError;
use serde::Deserialize;

/// Smallest accepted base timeout, in milliseconds.
pub const TIMEOUT_MS_MIN: u64 = 10;
/// Largest accepted base timeout or per-round increase (one hour), in milliseconds.
pub const TIMEOUT_MS_MAX: u64 = 3_600_000;
/// A timeout never grows beyond this, however high the round (one hour).
pub const TIMEOUT_CEILING_MS: u64 = 3_600_000;
/// Default [`BftConfig::max_message_bytes`]: an 8 MiB unit plus room for the envelope.
pub const DEFAULT_MAX_MESSAGE_BYTES: u32 = 8 * 1024 * 1024 + 4096;
/// Smallest accepted [`BftConfig::max_message_bytes`].
pub const MAX_MESSAGE_BYTES_MIN: u32 = 1024;

/// The engine's configuration table from the node manifest.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BftConfig {
    /// How long a validator waits for the round's proposal before it prevotes nil, in
    /// round 0 (milliseconds).
    #[serde(default = "default_timeout_propose_ms")]
    pub timeout_propose_ms: u64,
    /// How much longer the propose timeout is in each later round (milliseconds).
    #[serde(default = "default_timeout_propose_delta_ms")]
    pub timeout_propose_delta_ms: u64,
    /// How long a validator that saw 2f+1 prevotes of any values waits for 2f+1 for one
    /// value before it precommits nil, in round 0 (milliseconds).
    #[serde(default = "default_timeout_vote_ms")]
    pub timeout_prevote_ms: u64,
    /// How much longer the prevote timeout is in each later round (milliseconds).
    #[serde(default = "default_timeout_vote_delta_ms")]
    pub timeout_prevote_delta_ms: u64,
    /// How long a validator that saw 2f+1 precommits of any values waits for a decision
    /// before it moves to the next round, in round 0 (milliseconds).
    #[serde(default = "default_timeout_vote_ms")]
    pub timeout_precommit_ms: u64,
    /// How much longer the precommit timeout is in each later round (milliseconds).
    #[serde(default = "default_timeout_vote_delta_ms")]
    pub timeout_precommit_delta_ms: u64,
    /// How long after a decision the next height starts (milliseconds): the pace of
    /// blocks when the network is fast, and time for late precommits and transactions.
    #[serde(default = "default_commit_wait_ms")]
    pub commit_wait_ms: u64,
    /// How far ahead of this node's clock a proposed unit's time may be (milliseconds).
    #[serde(default = "default_max_clock_drift_ms")]
    pub max_clock_drift_ms: u64,
    /// Largest consensus message accepted or sent, in bytes.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u32,
}

fn default_timeout_propose_ms() -> u64 {
    1000
}
fn default_timeout_propose_delta_ms() -> u64 {
    500
}
fn default_timeout_vote_ms() -> u64 {
    500
}
fn default_timeout_vote_delta_ms() -> u64 {
    250
}
fn default_commit_wait_ms() -> u64 {
    500
}
fn default_max_clock_drift_ms() -> u64 {
    500
}
fn default_max_message_bytes() -> u32 {
    DEFAULT_MAX_MESSAGE_BYTES
}

impl Default for BftConfig {
    fn default() -> Self {
        Self {
            timeout_propose_ms: default_timeout_propose_ms(),
            timeout_propose_delta_ms: default_timeout_propose_delta_ms(),
            timeout_prevote_ms: default_timeout_vote_ms(),
            timeout_prevote_delta_ms: default_timeout_vote_delta_ms(),
            timeout_precommit_ms: default_timeout_vote_ms(),
            timeout_precommit_delta_ms: default_timeout_vote_delta_ms(),
            commit_wait_ms: default_commit_wait_ms(),
            max_clock_drift_ms: default_max_clock_drift_ms(),
            max_message_bytes: default_max_message_bytes(),
        }
    }
}

impl BftConfig {
    /// Checks the ranges that serde cannot express.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bases = [
            ("timeout_propose_ms", self.timeout_propose_ms),
            ("timeout_prevote_ms", self.timeout_prevote_ms),
            ("timeout_precommit_ms", self.timeout_precommit_ms),
        ];
        for (key, value) in bases {
            if !(TIMEOUT_MS_MIN..=TIMEOUT_MS_MAX).contains(&value) {
                return Err(ConfigError::new(key, format!("must be between {TIMEOUT_MS_MIN} and {TIMEOUT_MS_MAX}")));
            }
        }
        let others = [
            ("timeout_propose_delta_ms", self.timeout_propose_delta_ms),
            ("timeout_prevote_delta_ms", self.timeout_prevote_delta_ms),
            ("timeout_precommit_delta_ms", self.timeout_precommit_delta_ms),
            ("commit_wait_ms", self.commit_wait_ms),
            ("max_clock_drift_ms", self.max_clock_drift_ms),
        ];
        for (key, value) in others {
            if value > TIMEOUT_MS_MAX {
                return Err(ConfigError::new(key, format!("must be at most {TIMEOUT_MS_MAX}")));
            }
        }
        if self.max_message_bytes < MAX_MESSAGE_BYTES_MIN {
            return Err(ConfigError::new("max_message_bytes", format!("must be at least {MAX_MESSAGE_BYTES_MIN}")));
        }
        Ok(())
    }

    /// The timeout of a step in `round`: base + round × delta, at most [`TIMEOUT_CEILING_MS`].
    pub fn timeout_ms(base_ms: u64, delta_ms: u64, round: u32) -> u64 {
        base_ms.saturating_add(delta_ms.saturating_mul(u64::from(round))).min(TIMEOUT_CEILING_MS)
    }
}
