//! Call market policies' deterministic functions during block application.
//!
//! The node builds one rules instance per market policy plugin it loads (from its
//! `[[market]]` entries) and hands them to every chain's ledger. Calls are serialized
//! by a mutex per policy; a policy that panicked is disabled here and every later call
//! fails, so the node refuses market transactions of that policy instead of guessing.

use super::MarketError;
use nest_sdk::market::MarketBox;
use nest_sdk::{Match, PluginError, Round, Terms, Usage};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

struct Policy {
    instance: MarketBox,
    /// Set when the instance panicked: its answers can no longer be trusted.
    disabled: Option<String>,
}

/// The market policies a ledger may call, by plugin name; cheap to clone.
#[derive(Clone, Default)]
pub struct MarketRules {
    policies: Arc<BTreeMap<String, Mutex<Policy>>>,
}

impl std::fmt::Debug for MarketRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.policies.keys()).finish()
    }
}

impl MarketRules {
    /// Rules from policy instances by plugin name.
    pub fn new(instances: impl IntoIterator<Item = (String, MarketBox)>) -> Self {
        let policies = instances
            .into_iter()
            .map(|(name, instance)| (name, Mutex::new(Policy { instance, disabled: None })))
            .collect();
        Self { policies: Arc::new(policies) }
    }

    /// Whether `policy` is loaded.
    pub fn has(&self, policy: &str) -> bool {
        self.policies.contains_key(policy)
    }

    /// Names of the loaded policies.
    pub fn names(&self) -> Vec<String> {
        self.policies.keys().cloned().collect()
    }

    fn call<T>(
        &self,
        policy: &str,
        f: impl FnOnce(&MarketBox) -> nest_sdk::RResult<T, PluginError>,
    ) -> Result<T, MarketError> {
        let entry = self.policies.get(policy).ok_or_else(|| MarketError::PolicyNotLoaded(policy.to_string()))?;
        let mut guard = entry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(reason) = &guard.disabled {
            return Err(MarketError::PolicyNotLoaded(format!("{policy} (disabled: {reason})")));
        }
        match f(&guard.instance).into_result() {
            Ok(value) => Ok(value),
            Err(error) => {
                if error.is_fatal() {
                    tracing::error!(policy, %error, "market policy panicked: disabled");
                    guard.disabled = Some(error.to_string());
                }
                let reason = match error {
                    PluginError::Rejected { message } => message.to_string(),
                    other => other.to_string(),
                };
                Err(MarketError::Policy { policy: policy.to_string(), reason })
            }
        }
    }

    /// See [`nest_sdk::MarketPolicy::check_terms`].
    pub fn check_terms(&self, policy: &str, terms: &Terms) -> Result<(), MarketError> {
        self.call(policy, |m| m.check_terms(terms))
    }

    /// See [`nest_sdk::MarketPolicy::clear`].
    pub fn clear(&self, policy: &str, round: Round) -> Result<Vec<Match>, MarketError> {
        self.call(policy, |m| m.clear(round).map(|matches| matches.into_vec()))
    }

    /// See [`nest_sdk::MarketPolicy::settle`].
    pub fn settle(&self, policy: &str, terms: &Terms, usage: Usage) -> Result<u64, MarketError> {
        self.call(policy, |m| m.settle(terms, usage))
    }
}
