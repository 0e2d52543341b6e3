//! One DAG chain's runtime, without I/O (ADR 0015): units attached by any node, held
//! once their parents are, and executed only when a checkpoint the main chain finalized
//! names them, in the order the chain type gives.
//!
//! - [`DagRuntime::attach`]: this node's transactions become a unit (the chain type picks
//!   the parents and does the work); the caller publishes the bytes.
//! - [`DagRuntime::receive`]: a peer's unit. A unit whose parents are not all held waits
//!   among the orphans (bounded) and the caller is told which parents to fetch; a unit
//!   whose transactions do not decode, are signed wrongly or do not match its root is
//!   refused. Nothing here depends on the ledger's state, so every node holds the same
//!   units whatever it executed.
//! - [`DagRuntime::checkpoint`]: the main chain finalized a checkpoint naming `tips`. The
//!   units under them that were not final become final and execute in order. A
//!   transaction that cannot apply there — the later of a double spend — is skipped and
//!   reported with its reason; the unit carrying it stays valid, and its other
//!   transactions apply.

use nest_ledger::ledger::{
    merkle::merkle_root,
    state::{BlockEnv, ChainParams, Ledger},
    tx::{SignedTx, TxError},
    verify::verify_batch,
};
use nest_sdk::{BuildRequest, Hash32, PluginError, PublicKey, RVec, UnitRef, chain::ChainTypeBox};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Default [`DagLimits::orphans_max`].
pub const ORPHANS_MAX: usize = 4_096;

/// Bounds of a DAG runtime's queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DagLimits {
    /// Units held while their parents are fetched; more are refused.
    pub orphans_max: usize,
}

impl Default for DagLimits {
    fn default() -> Self {
        DagLimits { orphans_max: ORPHANS_MAX }
    }
}

/// Why a unit or a checkpoint was not taken.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DagError {
    /// The chain type refused it (the message says why).
    #[error("{0}")]
    ChainType(String),
    /// A transaction in it does not decode.
    #[error("unit {unit}: transaction {index}: {error}")]
    Transaction {
        /// The unit.
        unit: Hash32,
        /// Position in the unit.
        index: usize,
        /// Why.
        error: TxError,
    },
    /// Its transactions do not hash to the root it claims.
    #[error("unit {0}: its transactions do not match its tx_root")]
    TxRoot(Hash32),
    /// The orphan queue is full.
    #[error("{0} units already wait for their parents, the limit")]
    OrphansFull(usize),
    /// A checkpoint names units this node does not hold yet: fetch them, then retry.
    #[error("the checkpoint names {} units this node does not hold", .0.len())]
    Missing(Vec<Hash32>),
}

impl From<PluginError> for DagError {
    fn from(error: PluginError) -> Self {
        DagError::ChainType(error.to_string())
    }
}

/// What [`DagRuntime::receive`] did with a unit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Units that joined the tangle: this one and the orphans it completed.
    pub inserted: Vec<Hash32>,
    /// Parents to fetch before the unit can join (empty when it joined).
    pub missing: Vec<Hash32>,
}

/// One transaction of a final unit that did not apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The unit that carries it.
    pub unit: Hash32,
    /// The transaction's hash.
    pub tx: Hash32,
    /// Why it could not apply at its place in the final order.
    pub reason: TxError,
}

/// What one checkpoint made final and what executing it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointOutcome {
    /// 1 for the first checkpoint of this chain.
    pub number: u64,
    /// The units that became final, in execution order.
    pub units: Vec<UnitRef>,
    /// The transactions applied, in order.
    pub applied: Vec<Hash32>,
    /// The transactions skipped, in order.
    pub skipped: Vec<Skipped>,
    /// The ledger's state digest after the checkpoint.
    pub state_digest: Hash32,
}

pub use crate::runtime::genesis_request;

/// A DAG chain's units, its ledger and its checkpoints.
pub struct DagRuntime {
    chain_type: ChainTypeBox,
    ledger: Ledger,
    params: ChainParams,
    limits: DagLimits,
    held: HashSet<Hash32>,
    /// The bytes of held units no checkpoint made final yet (bounded by the chain type's
    /// pending bound); a final unit's bytes are dropped once executed.
    bodies: HashMap<Hash32, Vec<u8>>,
    /// Units waiting for parents, by hash, with the parents they wait for.
    orphans: BTreeMap<Hash32, (Vec<u8>, Vec<Hash32>)>,
    checkpoints: u64,
}

impl DagRuntime {
    /// A runtime whose chain type was started at `genesis`, with the genesis ledger and
    /// the chain's parameters (`params.chain` is the genesis hash).
    pub fn new(chain_type: ChainTypeBox, genesis: UnitRef, ledger: Ledger, params: ChainParams) -> DagRuntime {
        DagRuntime {
            chain_type,
            ledger,
            params,
            limits: DagLimits::default(),
            held: HashSet::from([genesis.hash]),
            bodies: HashMap::new(),
            orphans: BTreeMap::new(),
            checkpoints: 0,
        }
    }

    /// The same runtime with other queue bounds.
    pub fn with_limits(mut self, limits: DagLimits) -> DagRuntime {
        self.limits = limits;
        self
    }

    /// The ledger as the last checkpoint left it.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The chain's parameters (its genesis hash, its gas price).
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// Decodes a unit (no chain context).
    pub fn decode(&self, bytes: &[u8]) -> Result<nest_sdk::UnitView, DagError> {
        Ok(self.chain_type.decode(bytes.into()).into_result()?)
    }

    /// The parents the orphans wait for that are not held: what to fetch again.
    pub fn wanted(&self) -> Vec<Hash32> {
        let mut wanted: Vec<Hash32> = self
            .orphans
            .values()
            .flat_map(|(_, missing)| missing.iter())
            .filter(|parent| !self.held.contains(parent) && !self.orphans.contains_key(parent))
            .copied()
            .collect();
        wanted.sort_by_key(|hash| hash.0);
        wanted.dedup();
        wanted
    }

    /// Checkpoints executed so far.
    pub fn checkpoints(&self) -> u64 {
        self.checkpoints
    }

    /// Whether the unit is held (joined the tangle).
    pub fn holds(&self, unit: &Hash32) -> bool {
        self.held.contains(unit)
    }

    /// Units waiting for parents.
    pub fn orphans(&self) -> usize {
        self.orphans.len()
    }

    /// The tangle's tips: what a checkpoint of this node would name.
    pub fn tips(&self) -> Result<Vec<Hash32>, DagError> {
        Ok(self.chain_type.tips().into_result()?.into_vec())
    }

    /// A held unit's cumulative weight.
    pub fn weight(&self, unit: Hash32) -> Result<Option<u64>, DagError> {
        Ok(self.chain_type.weight(unit).into_result()?.into_option())
    }

    /// Wraps `txs` into a unit of this node's, holds it, and returns its bytes to publish.
    pub fn attach(&mut self, txs: &[SignedTx], time_ms: u64, proposer: PublicKey) -> Result<Vec<u8>, DagError> {
        let encoded: Vec<Vec<u8>> = txs.iter().map(SignedTx::encode).collect();
        let hashes: Vec<Hash32> = txs.iter().map(SignedTx::hash).collect();
        let request = BuildRequest {
            parent: Hash32::ZERO,
            height: 1,
            timestamp_ms: time_ms,
            proposer,
            tx_root: merkle_root(&hashes),
            state_digest: Hash32::ZERO,
            txs: encoded.into_iter().map(RVec::from).collect(),
        };
        let bytes = self.chain_type.build(request).into_result()?.into_vec();
        let received = self.receive(&bytes)?;
        if !received.missing.is_empty() {
            return Err(DagError::ChainType("the chain type built a unit on parents it does not hold".into()));
        }
        Ok(bytes)
    }

    /// Takes a peer's unit: holds it when its parents are held, else keeps it until they
    /// are and says which to fetch.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Received, DagError> {
        let view = self.chain_type.decode(bytes.into()).into_result()?;
        if self.held.contains(&view.hash) || self.orphans.contains_key(&view.hash) {
            return Ok(Received::default());
        }
        check_transactions(&view)?;
        let parents = self.chain_type.parents(bytes.into()).into_result()?.into_vec();
        let missing: Vec<Hash32> = parents.into_iter().filter(|parent| !self.held.contains(parent)).collect();
        if !missing.is_empty() {
            if self.orphans.len() >= self.limits.orphans_max {
                return Err(DagError::OrphansFull(self.orphans.len()));
            }
            self.orphans.insert(view.hash, (bytes.to_vec(), missing.clone()));
            return Ok(Received { inserted: Vec::new(), missing });
        }
        self.chain_type.insert(bytes.into(), (&[][..]).into()).into_result()?;
        self.held.insert(view.hash);
        self.bodies.insert(view.hash, bytes.to_vec());
        let mut inserted = vec![view.hash];
        self.adopt_orphans(&mut inserted);
        Ok(Received { inserted, missing: Vec::new() })
    }

    /// Inserts every orphan whose parents are now all held, until none is left to adopt.
    /// An orphan the chain type refuses once its parents are known is dropped.
    fn adopt_orphans(&mut self, inserted: &mut Vec<Hash32>) {
        loop {
            let ready: Vec<Hash32> = self
                .orphans
                .iter()
                .filter(|(_, (_, missing))| missing.iter().all(|parent| self.held.contains(parent)))
                .map(|(hash, _)| *hash)
                .collect();
            if ready.is_empty() {
                return;
            }
            for hash in ready {
                let Some((bytes, _)) = self.orphans.remove(&hash) else { continue };
                if self.chain_type.insert(bytes.as_slice().into(), (&[][..]).into()).into_result().is_ok() {
                    self.held.insert(hash);
                    self.bodies.insert(hash, bytes);
                    inserted.push(hash);
                }
            }
        }
    }

    /// Executes the checkpoint that names `tips`: the units that become final, in the
    /// chain type's order, each transaction applied or skipped with its reason.
    pub fn checkpoint(&mut self, tips: &[Hash32]) -> Result<CheckpointOutcome, DagError> {
        let missing: Vec<Hash32> = tips.iter().filter(|tip| !self.held.contains(tip)).copied().collect();
        if !missing.is_empty() {
            return Err(DagError::Missing(missing));
        }
        let report = self.chain_type.checkpoint(tips.into()).into_result()?;
        self.checkpoints += 1;
        let mut outcome = CheckpointOutcome {
            number: self.checkpoints,
            units: report.finalized.to_vec(),
            applied: Vec::new(),
            skipped: Vec::new(),
            state_digest: Hash32::ZERO,
        };
        let units = outcome.units.clone();
        for unit in units {
            // A final unit the chain type reports was inserted here, so its bytes are held.
            let Some(bytes) = self.bodies.remove(&unit.hash) else {
                return Err(DagError::ChainType(format!(
                    "the chain type made unit {} final, which was never inserted",
                    unit.hash
                )));
            };
            let view = self.chain_type.decode(bytes.as_slice().into()).into_result()?;
            self.execute_unit(&view, &mut outcome);
        }
        outcome.state_digest = self.ledger.state_digest();
        Ok(outcome)
    }

    fn execute_unit(&mut self, view: &nest_sdk::UnitView, outcome: &mut CheckpointOutcome) {
        // Checked on receipt: every transaction decodes.
        let txs: Vec<SignedTx> = view.txs.iter().filter_map(|tx| SignedTx::decode(tx).ok()).collect();
        let env =
            BlockEnv { height: view.height, parent: view.parent, time_ms: view.timestamp_ms, proposer: view.proposer };
        let result = self.ledger.execute(&txs, &env, &self.params, false);
        self.ledger.commit(&result.changes);
        let hashes: Vec<Hash32> = txs.iter().map(SignedTx::hash).collect();
        outcome.applied.extend(result.applied.iter().map(|index| hashes[*index]));
        outcome.skipped.extend(result.rejected.into_iter().map(|(index, reason)| Skipped {
            unit: view.hash,
            tx: hashes[index],
            reason,
        }));
    }
}

/// A unit's transactions decode, are signed by their senders and hash to its root:
/// checks of the unit alone, the same on every node.
fn check_transactions(view: &nest_sdk::UnitView) -> Result<(), DagError> {
    let mut txs = Vec::with_capacity(view.txs.len());
    for (index, bytes) in view.txs.iter().enumerate() {
        let tx = SignedTx::decode(bytes).map_err(|error| DagError::Transaction { unit: view.hash, index, error })?;
        txs.push(tx);
    }
    if let Some(index) = verify_batch(&txs).iter().position(|valid| !valid) {
        return Err(DagError::Transaction { unit: view.hash, index, error: TxError::BadSignature });
    }
    let hashes: Vec<Hash32> = txs.iter().map(SignedTx::hash).collect();
    if merkle_root(&hashes) != view.tx_root {
        return Err(DagError::TxRoot(view.hash));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
