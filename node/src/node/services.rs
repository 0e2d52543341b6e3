//! Lend the node's key, hashing, logging and pricing strategies to plugin instances.

use super::precheck::VerifiedSignatures;
use crate::crypto::{self, SecretKey};
use crate::market::SharedStrategies;
use nest_sdk::{
    Hash32, Host, HostServices, LogLevel, PublicKey, Signature,
    abi_stable::std_types::{RResult, RSlice, RStr, RString},
};
use std::sync::Arc;

/// Host services for one plugin instance; log lines are tagged with `label`.
#[derive(Clone)]
pub struct NodeServices {
    key: Arc<SecretKey>,
    label: Arc<str>,
    /// The node's pricing strategies (market policies only).
    strategies: Option<SharedStrategies>,
    /// Signatures the bridge verified off the loop (consensus engines only).
    verified: Option<Arc<VerifiedSignatures>>,
}

impl NodeServices {
    /// Services signing with `key`, logging as `label` (e.g. `main/consensus`).
    pub fn host(key: Arc<SecretKey>, label: &str) -> Host {
        Host::new(NodeServices { key, label: Arc::from(label), strategies: None, verified: None })
    }

    /// Services for a consensus engine: `verify` answers from `verified` what the
    /// bridge already verified (see [`super::precheck`]).
    pub fn consensus_host(key: Arc<SecretKey>, label: &str, verified: Arc<VerifiedSignatures>) -> Host {
        Host::new(NodeServices { key, label: Arc::from(label), strategies: None, verified: Some(verified) })
    }

    /// Services for a market policy: also prices with the node's strategies.
    pub fn market_host(key: Arc<SecretKey>, label: &str, strategies: SharedStrategies) -> Host {
        Host::new(NodeServices { key, label: Arc::from(label), strategies: Some(strategies), verified: None })
    }
}

impl HostServices for NodeServices {
    fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    fn sign(&self, message: RSlice<'_, u8>) -> Signature {
        self.key.sign(message.as_slice())
    }

    fn verify(&self, key: &PublicKey, message: RSlice<'_, u8>, signature: &Signature) -> bool {
        match &self.verified {
            Some(verified) => verified.verify(key, message.as_slice(), signature),
            None => crypto::verify(key, message.as_slice(), signature),
        }
    }

    fn hash(&self, bytes: RSlice<'_, u8>) -> Hash32 {
        crypto::sha256(bytes.as_slice())
    }

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        let plugin = &*self.label;
        match level {
            LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            LogLevel::Info => tracing::info!(plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn price(&self, strategy: RStr<'_>, context_json: RStr<'_>) -> RResult<u64, RString> {
        let Some(strategies) = &self.strategies else {
            return RResult::RErr(format!("{} is not a market policy: no pricing strategies", self.label).into());
        };
        let strategies = strategies.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match strategies.price_json(strategy.as_str(), context_json.as_str()) {
            Ok(priced) => RResult::ROk(priced.unit_price),
            Err(error) => RResult::RErr(error.to_string().into()),
        }
    }
}
