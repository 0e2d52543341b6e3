//! Administer plugins at run time: list, inspect, disable, enable, upgrade.
//!
//! An upgrade loads the new package through the same verifying loader, builds every
//! replacement instance first and hands each one its predecessor's `snapshot()`; only
//! when all of them are ready are they swapped in, so a failed upgrade changes nothing.
//! Libraries are never unloaded: the old package stays in memory, reported `replaced`.

use super::{LoopState, Package, QueryError, now_ms, services::NodeServices, slot::Slot};
use crate::loader::{self, LoadedLibrary};
use nest_sdk::{
    Host, PluginKind, RSlice, chain::ChainTypeBox, consensus::ConsensusBox, market::MarketBox, radio::RadioBox,
};
use serde::{Deserialize, Serialize};
use std::{path::PathBuf, sync::Arc};

/// An operation on the plugins loaded under one manifest id.
#[derive(Debug, Clone)]
pub enum PluginOp {
    /// Every package, active and replaced.
    List,
    /// One package and its instances.
    Inspect {
        /// Manifest id.
        id: String,
    },
    /// Stop calling every instance of the plugin.
    Disable {
        /// Manifest id.
        id: String,
    },
    /// Resume the instances (a panicked one is rebuilt fresh from the same library).
    Enable {
        /// Manifest id.
        id: String,
    },
    /// Replace every instance with one from a new signed package, state handed over.
    Upgrade {
        /// Manifest id.
        id: String,
        /// Directory of the new package.
        package: PathBuf,
    },
}

/// One instance of a plugin, by where it runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstanceEntry {
    /// Where it runs: `chain main consensus`, `radio lab`, `market wifi`.
    pub role: String,
    /// Version the instance runs.
    pub version: String,
    /// `running`, `disabled` or `failed`.
    pub state: String,
    /// Why it was disabled, or the error it failed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A package with its instances.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginEntry {
    /// The package.
    #[serde(flatten)]
    pub package: super::status::PackageStatus,
    /// Its instances (empty for a replaced package).
    pub instances: Vec<InstanceEntry>,
}

/// Where an instance lives.
#[derive(Clone, Copy)]
enum Role {
    Consensus(usize),
    ChainType(usize),
    Radio(usize),
    Market(usize),
}

/// A replacement instance, built before anything is swapped.
enum Fresh {
    Consensus(ConsensusBox),
    ChainType(ChainTypeBox),
    Radio(RadioBox),
    Market(MarketBox),
}

impl LoopState {
    /// Runs one plugin operation.
    pub(super) fn plugin_op(&mut self, op: PluginOp) -> Result<Vec<PluginEntry>, QueryError> {
        match op {
            PluginOp::List => Ok(self.packages.iter().map(|p| self.entry(p)).collect()),
            PluginOp::Inspect { id } => Ok(vec![self.entry(self.active(&id)?)]),
            PluginOp::Disable { id } => {
                self.active(&id)?;
                for role in self.roles(&id) {
                    self.with_slot(role, |slot| slot.disable("disabled by the operator".into()));
                }
                self.inspect(&id)
            }
            PluginOp::Enable { id } => self.enable(&id),
            PluginOp::Upgrade { id, package } => self.upgrade(&id, package),
        }
    }

    fn inspect(&self, id: &str) -> Result<Vec<PluginEntry>, QueryError> {
        Ok(vec![self.entry(self.active(id)?)])
    }

    fn active(&self, id: &str) -> Result<&Package, QueryError> {
        self.packages
            .iter()
            .find(|p| p.id == id && p.replaced_by.is_none())
            .ok_or_else(|| QueryError::NotFound(format!("no plugin \"{id}\" on this node")))
    }

    fn entry(&self, package: &Package) -> PluginEntry {
        let instances = if package.replaced_by.is_some() { Vec::new() } else { self.instances(&package.id) };
        PluginEntry { package: package.status(), instances }
    }

    fn instances(&self, id: &str) -> Vec<InstanceEntry> {
        let mut entries = Vec::new();
        let mut push = |role: String, status: &super::slot::SlotStatus| {
            entries.push(InstanceEntry {
                role,
                version: status.version.clone(),
                state: status.state.clone(),
                reason: status.reason.clone(),
            });
        };
        for chain in &self.chains {
            let (consensus, chain_type) = chain.slot_statuses();
            if consensus.id == id {
                push(format!("chain {} consensus", chain.id()), consensus);
            }
            if chain_type.id == id {
                push(format!("chain {} chain-type", chain.id()), chain_type);
            }
        }
        for (part, _) in &self.radios {
            if part.slot.status().id == id {
                push(format!("radio {}", part.id), part.slot.status());
            }
        }
        for part in &self.markets {
            if part.slot.status().id == id {
                push(format!("market {}", part.id), part.slot.status());
            }
        }
        entries
    }

    fn roles(&self, id: &str) -> Vec<Role> {
        let mut roles = Vec::new();
        for (index, chain) in self.chains.iter().enumerate() {
            let (consensus, chain_type) = chain.slot_statuses();
            if consensus.id == id {
                roles.push(Role::Consensus(index));
            }
            if chain_type.id == id {
                roles.push(Role::ChainType(index));
            }
        }
        roles.extend(
            self.radios.iter().enumerate().filter(|(_, (p, _))| p.slot.status().id == id).map(|(i, _)| Role::Radio(i)),
        );
        roles.extend(
            self.markets.iter().enumerate().filter(|(_, p)| p.slot.status().id == id).map(|(i, _)| Role::Market(i)),
        );
        roles
    }

    /// Applies `f` to the slot at `role`, whatever its instance type.
    fn with_slot(&mut self, role: Role, f: impl FnOnce(&mut dyn SlotControl)) {
        match role {
            Role::Consensus(i) => f(self.chains[i].consensus_slot()),
            Role::ChainType(i) => f(self.chains[i].chain_type()),
            Role::Radio(i) => f(&mut self.radios[i].0.slot),
            Role::Market(i) => f(&mut self.markets[i].slot),
        }
    }

    fn enable(&mut self, id: &str) -> Result<Vec<PluginEntry>, QueryError> {
        let library = self.active(id)?.library.clone();
        let roles = self.roles(id);
        let panicked: Vec<Role> = roles.iter().copied().filter(|role| self.slot_panicked(*role)).collect();
        let fresh = self.build_all(&library, &panicked, false)?;
        for (role, instance) in panicked.iter().zip(fresh) {
            self.swap(*role, instance, &library);
        }
        for role in roles {
            self.with_slot(role, |slot| slot.resume_instance());
            self.restart(role);
        }
        self.inspect(id)
    }

    fn slot_panicked(&mut self, role: Role) -> bool {
        let mut panicked = false;
        self.with_slot(role, |slot| panicked = slot.was_panicked());
        panicked
    }

    fn upgrade(&mut self, id: &str, package: PathBuf) -> Result<Vec<PluginEntry>, QueryError> {
        let old = self.active(id)?.library.clone();
        let new = loader::load(&package, &super::load_options(&self.manifest))
            .map_err(|e| QueryError::Failed(e.to_string()))?;
        check_upgrade(&old, &new)?;
        let new = Arc::new(new);
        let roles = self.roles(id);
        let fresh = self.build_all(&new, &roles, true)?;
        for (role, instance) in roles.iter().zip(fresh) {
            self.swap(*role, instance, &new);
            self.restart(*role);
        }
        let version = new.info.version.to_string();
        tracing::info!(plugin = %id, from = %old.info.version, to = %version, "plugin upgraded");
        if let Some(package) = self.packages.iter_mut().find(|p| p.id == id && p.replaced_by.is_none()) {
            package.replaced_by = Some(version);
        }
        self.packages.push(Package { id: id.to_string(), library: new, replaced_by: None });
        self.inspect(id)
    }

    /// Builds replacements for `roles` from `library`; with `hand_over`, each receives its
    /// predecessor's snapshot. Fails as a whole: nothing is swapped on error.
    fn build_all(
        &mut self,
        library: &LoadedLibrary,
        roles: &[Role],
        hand_over: bool,
    ) -> Result<Vec<Fresh>, QueryError> {
        roles.iter().map(|role| self.build(library, *role, hand_over)).collect()
    }

    fn host_for(&self, role: Role) -> Host {
        let label = match role {
            Role::Consensus(i) => format!("{}/consensus", self.chains[i].id()),
            Role::ChainType(i) => format!("{}/chain_type", self.chains[i].id()),
            Role::Radio(i) => format!("radio/{}", self.radios[i].0.id),
            Role::Market(i) => format!("market/{}", self.markets[i].id),
        };
        match role {
            Role::Consensus(_) => NodeServices::consensus_host(self.key.clone(), &label, self.prechecker.verified()),
            _ => NodeServices::host(self.key.clone(), &label),
        }
    }

    fn build(&mut self, library: &LoadedLibrary, role: Role, hand_over: bool) -> Result<Fresh, QueryError> {
        let host = self.host_for(role);
        let failed = |what: &str, error: String| QueryError::Failed(format!("{what}: {error}"));
        match role {
            Role::Consensus(i) => {
                let slot = self.chains[i].consensus_slot();
                let snapshot = if hand_over && slot.is_running() {
                    slot.call(|c| c.snapshot()).map(|s| s.into_vec()).ok()
                } else {
                    None
                };
                let mut fresh = library
                    .new_consensus(slot.config_json(), &host)
                    .map_err(|e| failed("new instance", e.to_string()))?;
                if let Some(bytes) = snapshot.filter(|b| !b.is_empty()) {
                    fresh
                        .restore(RSlice::from_slice(&bytes))
                        .into_result()
                        .map_err(|e| failed("restore", e.to_string()))?;
                }
                Ok(Fresh::Consensus(fresh))
            }
            Role::ChainType(i) => {
                let head = self.chains[i].head_ref();
                let slot = self.chains[i].chain_type();
                let snapshot = if hand_over && slot.is_running() {
                    slot.call(|c| c.snapshot()).map(|s| s.into_vec()).ok()
                } else {
                    None
                };
                let mut fresh = library
                    .new_chain_type(slot.config_json(), &host)
                    .map_err(|e| failed("new instance", e.to_string()))?;
                fresh.start(head).into_result().map_err(|e| failed("start", e.to_string()))?;
                if let Some(bytes) = snapshot.filter(|b| !b.is_empty()) {
                    fresh
                        .restore(RSlice::from_slice(&bytes))
                        .into_result()
                        .map_err(|e| failed("restore", e.to_string()))?;
                }
                Ok(Fresh::ChainType(fresh))
            }
            Role::Radio(i) => {
                let config = self.radios[i].0.slot.config_json().to_string();
                library.new_radio(&config, &host).map(Fresh::Radio).map_err(|e| failed("new instance", e.to_string()))
            }
            Role::Market(i) => {
                let config = self.markets[i].slot.config_json().to_string();
                library.new_market(&config, &host).map(Fresh::Market).map_err(|e| failed("new instance", e.to_string()))
            }
        }
    }

    fn swap(&mut self, role: Role, fresh: Fresh, library: &LoadedLibrary) {
        let (name, version) = (library.info.name.as_str(), library.info.version.as_str());
        match (role, fresh) {
            (Role::Consensus(i), Fresh::Consensus(instance)) => {
                self.chains[i].consensus_slot().replace(instance, name, version);
                self.prechecker.set_lister(self.chains[i].id(), library.message_signatures());
            }
            (Role::ChainType(i), Fresh::ChainType(instance)) => {
                let config = self.chains[i].chain_type().config_json().to_owned();
                self.chains[i].chain_type().replace(instance, name, version);
                let host = NodeServices::host(self.key.clone(), &format!("{}/chain_type/reader", self.chains[i].id()));
                match library.new_chain_type(&config, &host) {
                    Ok(decoder) => self.reader.set_decoder(self.chains[i].id(), decoder),
                    Err(error) => {
                        tracing::warn!(chain = %self.chains[i].id(), %error, "block reader keeps the old chain type's decoder")
                    }
                }
            }
            (Role::Radio(i), Fresh::Radio(instance)) => self.replace_radio(i, instance, name, version),
            (Role::Market(i), Fresh::Market(instance)) => self.markets[i].slot.replace(instance, name, version),
            _ => unreachable!("replacements are built for their own role"),
        }
    }

    /// Re-arms a consensus engine after its slot changed (it resumes at the committed
    /// head); starts a radio driver whose start had failed.
    fn restart(&mut self, role: Role) {
        match role {
            Role::Consensus(i) => self.chains[i].start(&self.store, now_ms()),
            Role::Radio(i) => self.restart_radio(i),
            Role::ChainType(_) | Role::Market(_) => {}
        }
    }
}

/// Refuses a package that is not a newer release of the same plugin.
fn check_upgrade(old: &LoadedLibrary, new: &LoadedLibrary) -> Result<(), QueryError> {
    if new.info.name != old.info.name {
        return Err(QueryError::Failed(format!(
            "the package holds plugin {}, not an upgrade of {}",
            new.info.name, old.info.name
        )));
    }
    if new.library_sha256 == old.library_sha256 {
        return Err(QueryError::Failed(format!(
            "{} {} is already running (same library)",
            new.info.name, new.info.version
        )));
    }
    let missing: Vec<PluginKind> = old.kinds().into_iter().filter(|k| !new.kinds().contains(k)).collect();
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|k| k.name()).collect();
        return Err(QueryError::Failed(format!("the new version no longer provides {}", names.join(", "))));
    }
    Ok(())
}

/// What plugin administration needs of a slot, whatever its instance type.
trait SlotControl {
    fn disable(&mut self, reason: String);
    fn resume_instance(&mut self);
    fn was_panicked(&self) -> bool;
}

impl<T> SlotControl for Slot<T> {
    fn disable(&mut self, reason: String) {
        Slot::disable(self, reason);
    }
    fn resume_instance(&mut self) {
        if let Err(error) = self.resume() {
            tracing::warn!(%error, "plugin not resumed");
        }
    }
    fn was_panicked(&self) -> bool {
        self.panicked()
    }
}
