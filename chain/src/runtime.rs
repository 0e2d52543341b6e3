//! Drive one chain: feed its consensus engine, execute the effects it returns, build,
//! check and commit blocks.
//!
//! Everything here runs on the node loop's thread, one call at a time. A block is
//! written to the store (one batch, fsync) before the ledger in memory moves and before
//! any later effect (such as a broadcast) is executed.

use crate::slot::{Slot, SlotError};
use crate::status::{ChainPlugins, ChainStatus};
use crate::telemetry::{self, EventSink};
use crate::wire::{SyncBlock, Verdict};
use nest_ledger::crypto::sha256;
use nest_ledger::ledger::{
    mempool::Mempool,
    merkle::merkle_root,
    rounds::DposParams,
    state::{BlockEnv, BlockOutcome, ChainParams, Changes, Ledger},
    tx::{SignedTx, TxError},
    validators::{VALIDATORS_PREFIX, ValidatorSet, check_schedule},
    verify::{VerifiedCache, verify_batch},
};
use nest_sdk::{
    BuildRequest, Effect, Hash32, Input, LastCommit, Persisted, PublicKey, RVec, UnitExpectation, UnitRef,
    chain::ChainTypeBox, consensus::ConsensusBox,
};
use nest_store::{ChainHead, ChainStore, StoredBlock};
use std::collections::{BTreeMap, VecDeque};

/// Inputs processed in one drive of the engine before the rest is dropped (a loop guard).
const DRIVE_INPUTS_MAX: usize = 64;
/// Agreed but not yet final units kept in memory.
const PENDING_UNITS_MAX: usize = 1024;
/// Finality proofs kept for units that are not final yet (they may come before the unit).
const FINALITY_PROOFS_MAX: usize = 2 * PENDING_UNITS_MAX;
/// Evidence lines kept for the status report.
const EVIDENCE_KEPT_MAX: usize = 32;
/// Signatures remembered as verified.
const VERIFIED_CACHE_TXS: usize = 1 << 20;
/// Consensus messages waiting for the node loop (or the simulator) to send them; a
/// runtime that is never drained drops the oldest.
const OUTBOUND_MESSAGES_MAX: usize = 1024;

/// Bytes of a consensus message or sync frame kept free around a unit: the engine's
/// envelope and seal, its certificate and finality proof (a quorum of signatures for up
/// to a few hundred authorities) and the framing. A unit is built no larger than the
/// network's `message_bytes_max` less this, so that every unit built can be gossiped
/// and synced.
pub const UNIT_ENVELOPE_BYTES: usize = 64 * 1024;
/// The largest unit to build for a network whose messages are at most
/// `message_bytes_max` bytes: that less [`UNIT_ENVELOPE_BYTES`], or half of it on a
/// network configured smaller than twice the envelope.
pub fn unit_bytes_max(message_bytes_max: usize) -> usize {
    message_bytes_max.saturating_sub(UNIT_ENVELOPE_BYTES).max(message_bytes_max / 2)
}

/// Bytes of a unit besides its transactions (header and length prefixes), counted
/// generously for every chain type.
const UNIT_HEADER_BYTES: usize = 1024;

/// Limits and prices of one chain, from the manifest.
pub struct ChainLimits {
    /// Most transactions in one block.
    pub block_txs_max: usize,
    /// Largest unit built, in bytes (from the network's message bound, see
    /// [`UNIT_ENVELOPE_BYTES`]).
    pub unit_bytes_max: usize,
    /// Most transactions waiting in the mempool.
    pub mempool_txs_max: usize,
    /// Tokens per gas unit.
    pub gas_price: u64,
}

/// A unit this node built or checked, waiting to become final.
struct PendingUnit {
    bytes: Vec<u8>,
    certificate: Vec<u8>,
    view: nest_sdk::UnitView,
    txs: Vec<SignedTx>,
    tx_hashes: Vec<Hash32>,
    /// Outcome of executing `txs` on its parent's state; `outcome.changes` are the
    /// block's own, so committing them in order on the final ledger is exact.
    outcome: BlockOutcome,
}

/// One chain's runtime state.
pub struct ChainRuntime {
    id: String,
    consensus: Slot<ConsensusBox>,
    chain_type: Slot<ChainTypeBox>,
    ledger: Ledger,
    params: ChainParams,
    mempool: Mempool,
    verified: VerifiedCache,
    limits: ChainLimits,
    head: ChainHead,
    genesis_hash: Hash32,
    node_key: PublicKey,
    pending: BTreeMap<Hash32, PendingUnit>,
    /// Finality proofs from `Effect::Certify` for units not final yet, by unit hash.
    proofs: BTreeMap<Hash32, Vec<u8>>,
    /// Units checked through `Effect::Verify`, by digest of their bytes.
    checked: BTreeMap<Hash32, Hash32>,
    /// The head fork choice picked (the committed head, or an agreed unit above it).
    tip: UnitRef,
    /// Inputs to feed the engine after the effect that produced them, in order.
    queued_inputs: VecDeque<Input>,
    /// The validator sets handed to the engine ([`Input::Validators`]) from the one in
    /// force at the next height on.
    validators_sent: Vec<ValidatorSet>,
    /// Every validator set the ledger records, by first height; read again only when a
    /// committed block writes one (a DPoS chain writes one a round).
    validator_sets: std::sync::Arc<Vec<ValidatorSet>>,
    /// The genesis block's timestamp.
    genesis_timestamp_ms: u64,
    /// Proofs of double votes and proposals not yet handed to the node to report on chain.
    evidence_proofs: VecDeque<nest_sdk::certificate::Offence>,
    /// What the engine last reported with `Effect::Status`.
    engine_status: Option<crate::status::ConsensusStatus>,
    /// A received message showed its sender ahead of this node (see
    /// [`ChainRuntime::take_sender_ahead`]).
    sender_ahead: bool,
    /// The engine answered the input being handled with `Effect::Ignore`.
    ignored: bool,
    /// Consensus messages to send, oldest first: the caller drains them
    /// ([`ChainRuntime::take_outbound`]) and hands them to the network.
    outbound: VecDeque<Vec<u8>>,
    next_timer_ms: Option<u64>,
    txs_committed: u64,
    blocks_committed: u64,
    evidence: VecDeque<(PublicKey, String)>,
    events: Option<EventSink>,
}

/// What the node loop needs to open a chain.
pub struct ChainParts {
    /// Chain id.
    pub id: String,
    /// The consensus instance.
    pub consensus: Slot<ConsensusBox>,
    /// The chain-type instance.
    pub chain_type: Slot<ChainTypeBox>,
    /// Limits and prices.
    pub limits: ChainLimits,
    /// Genesis allocations.
    pub allocations: Vec<(PublicKey, u64)>,
    /// Validator sets recorded at genesis (checked), for engines that take them from
    /// the ledger; empty for engines with their own authority list.
    pub validators: Vec<ValidatorSet>,
    /// DPoS parameters recorded at genesis, for a DPoS chain (its rounds' sets are then
    /// written by the ledger, `ledger::rounds`).
    pub dpos: Option<DposParams>,
    /// Proof-of-i/o parameters recorded at genesis, for a DPoS chain that rewards them.
    pub poio: Option<nest_ledger::ledger::poio::PoioParams>,
    /// Genesis timestamp.
    pub genesis_timestamp_ms: u64,
    /// This node's key.
    pub node_key: PublicKey,
    /// The market policies market transactions call.
    pub markets: nest_ledger::ledger::market::MarketRules,
}

/// Opening a chain failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A plugin call failed.
    #[error("chain {chain}: {error}")]
    Plugin {
        /// Chain id.
        chain: String,
        /// The failure.
        error: SlotError,
    },
    /// The store failed.
    #[error("chain {chain}: {error}")]
    Store {
        /// Chain id.
        chain: String,
        /// The failure.
        error: nest_store::StoreError,
    },
    /// Genesis or stored state is inconsistent.
    #[error("chain {chain}: {message}")]
    State {
        /// Chain id.
        chain: String,
        /// What is wrong.
        message: String,
    },
}

/// What a chain's genesis unit is built from: no parent, no transactions, the genesis
/// ledger's digest and time. Every node builds it alike from the manifest, for a linear
/// chain and a DAG alike.
pub fn genesis_request(ledger: &Ledger, timestamp_ms: u64) -> BuildRequest {
    BuildRequest {
        parent: Hash32::ZERO,
        height: 0,
        timestamp_ms,
        proposer: PublicKey::default(),
        tx_root: merkle_root(&[]),
        state_digest: ledger.state_digest(),
        txs: RVec::new(),
    }
}

/// Builds the genesis block of a chain in memory: its bytes, view and ledger.
pub fn build_genesis(parts: &mut ChainParts) -> Result<(Vec<u8>, nest_sdk::UnitView, Ledger), String> {
    let timestamp_ms = parts.genesis_timestamp_ms;
    let ledger = Ledger::genesis(&parts.allocations).map_err(|e| format!("genesis allocations: {e}"))?;
    check_schedule(&parts.validators).map_err(|e| format!("genesis validators: {e}"))?;
    let first_set = parts.validators.first().map_or(0, |set| set.members.len());
    if let Some(dpos) = &parts.dpos {
        dpos.check(first_set).map_err(|e| format!("genesis dpos: {e}"))?;
    }
    // Records join the accounts' state digest, so a chain without validator sets keeps
    // the genesis it always had.
    let accounts: Vec<_> = ledger.accounts().map(|(key, account)| (*key, *account)).collect();
    if let Some(poio) = &parts.poio {
        poio.check().map_err(|e| format!("genesis poio: {e}"))?;
    }
    let records = parts
        .validators
        .iter()
        .map(ValidatorSet::record)
        .chain(parts.dpos.iter().map(DposParams::record))
        .chain(parts.poio.iter().map(nest_ledger::ledger::poio::PoioParams::record));
    let ledger = Ledger::from_state(accounts, records);
    let request = genesis_request(&ledger, timestamp_ms);
    let chain_type = &mut parts.chain_type;
    let bytes = chain_type.call(|c| c.build(request)).map_err(|e| format!("building genesis: {e}"))?.into_vec();
    let view = chain_type.call(|c| c.decode(bytes.as_slice().into())).map_err(|e| format!("decoding genesis: {e}"))?;
    Ok((bytes, view, ledger))
}

impl ChainRuntime {
    /// Opens a chain: restores it from the store, or writes its genesis block.
    pub fn open(mut parts: ChainParts, store: &dyn ChainStore) -> Result<ChainRuntime, ChainError> {
        let chain = parts.id.clone();
        let state = |message: String| ChainError::State { chain: chain.clone(), message };
        let (genesis_bytes, genesis, genesis_ledger) = build_genesis(&mut parts).map_err(state)?;
        let store_error = |error| ChainError::Store { chain: chain.clone(), error };
        let (mut ledger, head) = match store.head(&chain).map_err(store_error)? {
            Some(head) => (Self::restore_ledger(store, &chain, &head, &genesis)?, head),
            None => Self::write_genesis(store, &chain, genesis_bytes, &genesis, genesis_ledger)?,
        };
        ledger.set_markets(parts.markets.clone());
        let params = ChainParams { chain: genesis.hash, gas_price: parts.limits.gas_price };
        let start = UnitRef { height: head.height, hash: head.hash, timestamp_ms: head.timestamp_ms };
        parts
            .chain_type
            .call(|c| c.start(start))
            .map_err(|error| ChainError::Plugin { chain: chain.clone(), error })?;
        let ledger_sets = ledger.validator_sets();
        Ok(ChainRuntime {
            mempool: Mempool::new(parts.limits.mempool_txs_max),
            id: parts.id,
            consensus: parts.consensus,
            chain_type: parts.chain_type,
            ledger,
            params,
            verified: VerifiedCache::new(VERIFIED_CACHE_TXS),
            limits: parts.limits,
            head,
            genesis_hash: genesis.hash,
            node_key: parts.node_key,
            pending: BTreeMap::new(),
            proofs: BTreeMap::new(),
            checked: BTreeMap::new(),
            tip: start,
            queued_inputs: VecDeque::new(),
            validators_sent: Vec::new(),
            validator_sets: std::sync::Arc::new(ledger_sets),
            genesis_timestamp_ms: genesis.timestamp_ms,
            engine_status: None,
            evidence_proofs: VecDeque::new(),
            sender_ahead: false,
            ignored: false,
            outbound: VecDeque::new(),
            next_timer_ms: None,
            txs_committed: 0,
            blocks_committed: 0,
            evidence: VecDeque::new(),
            events: None,
        })
    }

    fn restore_ledger(
        store: &dyn ChainStore,
        chain: &str,
        head: &ChainHead,
        genesis: &nest_sdk::UnitView,
    ) -> Result<Ledger, ChainError> {
        let state = |message: String| ChainError::State { chain: chain.to_string(), message };
        let stored_genesis = store
            .block_by_height(chain, 0)
            .map_err(|error| ChainError::Store { chain: chain.to_string(), error })?
            .ok_or_else(|| state("the store has a head but no genesis block".into()))?;
        if stored_genesis.hash != genesis.hash {
            return Err(state(format!(
                "the data directory holds a chain with genesis {}, but the manifest's genesis is {}",
                stored_genesis.hash, genesis.hash
            )));
        }
        let store_error = |error| ChainError::Store { chain: chain.to_string(), error };
        let accounts = store.accounts(chain).map_err(store_error)?;
        let records = store.records(chain).map_err(store_error)?;
        let ledger = Ledger::from_state(accounts, records);
        if ledger.state_digest() != head.state_digest {
            return Err(state(format!(
                "stored accounts give state digest {}, but block {} recorded {}",
                ledger.state_digest(),
                head.height,
                head.state_digest
            )));
        }
        Ok(ledger)
    }

    fn write_genesis(
        store: &dyn ChainStore,
        chain: &str,
        bytes: Vec<u8>,
        genesis: &nest_sdk::UnitView,
        ledger: Ledger,
    ) -> Result<(Ledger, ChainHead), ChainError> {
        let head = ChainHead {
            height: 0,
            hash: genesis.hash,
            timestamp_ms: genesis.timestamp_ms,
            state_digest: ledger.state_digest(),
        };
        let block =
            StoredBlock { height: 0, hash: genesis.hash, unit: bytes, certificate: Vec::new(), finality: Vec::new() };
        let mut changes: Changes = ledger.accounts().map(|(key, account)| (*key, *account)).collect();
        changes.records = ledger.records().map(|(key, value)| (key.to_vec(), Some(value.to_vec()))).collect();
        store
            .commit_block(chain, &block, &[], &changes, &head)
            .map_err(|error| ChainError::Store { chain: chain.to_string(), error })?;
        Ok((ledger, head))
    }

    /// Publishes committed blocks and plugin state changes on `events`.
    pub fn with_events(mut self, events: &EventSink) -> Self {
        self.consensus.attach_events(events);
        self.chain_type.attach_events(events);
        self.events = Some(events.clone());
        self
    }

    /// The offences (double votes and proposals) the engine proved since the last call,
    /// for the node to submit as evidence transactions.
    pub fn take_evidence_proofs(&mut self) -> Vec<nest_sdk::certificate::Offence> {
        self.evidence_proofs.drain(..).collect()
    }

    /// Chain id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When the engine wants its next tick.
    pub fn next_timer_ms(&self) -> Option<u64> {
        self.next_timer_ms
    }

    /// Starts the consensus engine at the committed head.
    pub fn start(&mut self, store: &dyn ChainStore, now_ms: u64) {
        let persisted = match store.consensus_entries(&self.id) {
            Ok(entries) => {
                entries.into_iter().map(|(key, bytes)| Persisted { key: key.into(), bytes: bytes.into() }).collect()
            }
            Err(error) => {
                tracing::error!(chain = %self.id, %error, "consensus data unreadable; the engine is not started");
                self.consensus.disable(format!("consensus data unreadable: {error}"));
                return;
            }
        };
        self.validators_sent = Vec::new();
        for validators in self.validators_inputs() {
            let _ = self.drive(store, validators);
        }
        let input = Input::Start { last_commit: self.last_commit(), now_ms, persisted };
        let _ = self.drive(store, input);
    }

    /// Delivers a tick if the engine's timer is due (or no timer is set).
    pub fn tick(&mut self, store: &dyn ChainStore, now_ms: u64) {
        if self.next_timer_ms.is_none_or(|at| at <= now_ms) {
            self.next_timer_ms = None;
            let _ = self.drive(store, Input::Tick { now_ms });
        }
    }

    fn last_commit(&self) -> LastCommit {
        LastCommit { height: self.head.height, unit_hash: self.head.hash, timestamp_ms: self.head.timestamp_ms }
    }

    /// Feeds one input to the engine and executes the effects, following up inputs they
    /// produce. Returns whether the engine accepted the first input.
    fn drive(&mut self, store: &dyn ChainStore, first: Input) -> Result<(), SlotError> {
        let mut inputs = VecDeque::from([first]);
        let mut handled = 0;
        let mut first_result = Ok(());
        while let Some(input) = inputs.pop_front() {
            handled += 1;
            if handled > DRIVE_INPUTS_MAX {
                tracing::warn!(chain = %self.id, "consensus engine produced more than {DRIVE_INPUTS_MAX} follow-up inputs; dropping the rest");
                break;
            }
            let effects = match self.consensus.call(|engine| nest_sdk::consensus::handle(engine, input)) {
                Ok(handled) => {
                    if handled.unknown > 0 {
                        tracing::warn!(chain = %self.id, skipped = handled.unknown, "consensus engine asked for effects this host does not know (a newer SDK); skipped");
                    }
                    handled.effects
                }
                Err(error) => {
                    tracing::debug!(chain = %self.id, %error, "consensus input not handled");
                    if handled == 1 {
                        first_result = Err(error);
                    }
                    continue;
                }
            };
            for effect in effects {
                if let Some(next) = self.execute(store, effect) {
                    inputs.push_back(next);
                }
                inputs.extend(self.queued_inputs.drain(..));
            }
        }
        first_result
    }

    fn execute(&mut self, store: &dyn ChainStore, effect: Effect) -> Option<Input> {
        match effect {
            Effect::TimerAt { at_ms } => {
                self.next_timer_ms = Some(self.next_timer_ms.map_or(at_ms, |t| t.min(at_ms)));
                None
            }
            Effect::RequestProposal { height, parent, timestamp_ms } => self.propose(height, parent, timestamp_ms),
            Effect::Verify { unit_bytes, expect } => Some(self.verify(unit_bytes.into_vec(), &expect)),
            Effect::Commit { unit_bytes, certificate } => {
                self.commit(store, unit_bytes.into_vec(), certificate.into_vec())
            }
            Effect::Persist { key, bytes } => {
                if let Err(error) = store.put_consensus(&self.id, &key, &bytes) {
                    tracing::error!(chain = %self.id, %error, "consensus state not persisted; disabling the engine");
                    self.consensus.disable(format!("persist failed: {error}"));
                }
                None
            }
            Effect::Broadcast { bytes } | Effect::Send { bytes, .. } => {
                if self.outbound.len() >= OUTBOUND_MESSAGES_MAX {
                    tracing::warn!(chain = %self.id, "consensus messages not drained; dropping the oldest");
                    self.outbound.pop_front();
                }
                self.outbound.push_back(bytes.into_vec());
                None
            }
            Effect::Attest { unit_hash, authority } => self.attest(store, unit_hash, authority),
            Effect::Certify { unit_hash, proof } => {
                self.keep_proof(unit_hash, proof.into_vec());
                None
            }
            Effect::Status { status } => {
                let status = crate::status::ConsensusStatus::from(&*status);
                if let Some(metrics) = telemetry::metrics() {
                    metrics.consensus_status(&self.id, &status);
                }
                self.engine_status = Some(status);
                None
            }
            Effect::Evidence { offender, reason, bytes } => {
                tracing::warn!(chain = %self.id, %offender, %reason, "consensus evidence");
                if let Some(metrics) = telemetry::metrics() {
                    metrics.evidence(&self.id, &offender);
                }
                // A proof the ledger can check goes on chain (the node reports it).
                if let Some(proof) = nest_sdk::certificate::Offence::decode(&bytes)
                    && self.evidence_proofs.len() < EVIDENCE_KEPT_MAX
                {
                    self.evidence_proofs.push_back(proof);
                }
                if self.evidence.len() == EVIDENCE_KEPT_MAX {
                    self.evidence.pop_front();
                }
                self.evidence.push_back((offender, reason.into_string()));
                None
            }
            Effect::Ignore { reason } => {
                tracing::debug!(chain = %self.id, %reason, "consensus input ignored");
                self.ignored = true;
                None
            }
            Effect::Behind { height } => {
                tracing::debug!(chain = %self.id, height, "a peer is ahead; syncing from it");
                self.sender_ahead = true;
                None
            }
        }
    }

    /// Builds a block on `parent` (the committed head or an agreed, not yet final unit)
    /// from the mempool; a proposal that cannot be built is reported to the engine.
    fn propose(&mut self, height: u64, parent: Hash32, timestamp_ms: u64) -> Option<Input> {
        match self.build_proposal(height, parent, timestamp_ms) {
            Ok(unit_bytes) => Some(Input::Proposal { height, unit_bytes: unit_bytes.into() }),
            Err(reason) => {
                tracing::warn!(chain = %self.id, height, %parent, %reason, "proposal not built");
                Some(Input::ProposalFailed { height, reason: reason.into() })
            }
        }
    }

    fn build_proposal(&mut self, height: u64, parent: Hash32, timestamp_ms: u64) -> Result<Vec<u8>, String> {
        let branch = self.branch_to(&parent).map_err(|reason| format!("unknown parent: {reason}"))?;
        let parent_height = branch.first().map_or(self.head.height, |unit| unit.height);
        if height != parent_height + 1 {
            return Err(format!("height {height} does not follow its parent's height {parent_height}"));
        }
        if self.pending.len() >= PENDING_UNITS_MAX {
            return Err(format!("{PENDING_UNITS_MAX} units already wait to become final (PENDING_UNITS_MAX)"));
        }
        let (prior, included) = self.prior_state(&branch);
        let candidates: Vec<SignedTx> = self
            .mempool
            .select(self.limits.block_txs_max.saturating_add(included.len()))
            .into_iter()
            .filter(|tx| !included.contains(&tx.hash()))
            .take(self.limits.block_txs_max)
            .collect();
        let candidates = within_bytes(candidates, self.limits.unit_bytes_max.saturating_sub(UNIT_HEADER_BYTES));
        let env = BlockEnv { height, parent, time_ms: timestamp_ms, proposer: self.node_key };
        let outcome = self.ledger.execute_on(&prior, &candidates, &env, &self.params, false);
        self.drop_invalid(&candidates, &outcome);
        let txs: Vec<SignedTx> = outcome.applied.iter().map(|index| candidates[*index].clone()).collect();
        let encoded: Vec<Vec<u8>> = txs.iter().map(SignedTx::encode).collect();
        let tx_hashes: Vec<Hash32> = encoded.iter().map(|bytes| sha256(bytes)).collect();
        let request = BuildRequest {
            parent,
            height,
            timestamp_ms,
            proposer: self.node_key,
            tx_root: merkle_root(&tx_hashes),
            state_digest: outcome.state_digest,
            txs: encoded.into_iter().map(RVec::from).collect(),
        };
        let bytes = self.chain_type.call(|c| c.build(request)).map_err(|e| format!("build: {e}"))?.into_vec();
        let view = self.chain_type.call(|c| c.decode(bytes.as_slice().into())).map_err(|e| format!("decode: {e}"))?;
        let unit = PendingUnit { bytes: bytes.clone(), certificate: Vec::new(), view, txs, tx_hashes, outcome };
        self.remember(unit)?;
        Ok(bytes)
    }

    /// Drops from the mempool what can never apply. A stale nonce is left alone: the tx
    /// may sit in a pending ancestor that a longer branch can still replace.
    fn drop_invalid(&mut self, candidates: &[SignedTx], outcome: &BlockOutcome) {
        let invalid: Vec<SignedTx> = outcome
            .rejected
            .iter()
            .filter(|(_, error)| !matches!(error, TxError::WrongNonce { .. }))
            .map(|(index, _)| candidates[*index].clone())
            .collect();
        if !invalid.is_empty() {
            self.mempool.remove_committed(&invalid, &self.ledger);
        }
    }

    /// The agreed, not yet final units from `parent` down to just above the committed
    /// head, newest first; an error if `parent` is not on such a path.
    fn branch_to(&self, parent: &Hash32) -> Result<Vec<&nest_sdk::UnitView>, String> {
        let mut branch = Vec::new();
        let mut cursor = *parent;
        while cursor != self.head.hash {
            let unit = self.pending.get(&cursor).ok_or_else(|| format!("parent {cursor} is not known to this node"))?;
            branch.push(&unit.view);
            cursor = unit.view.parent;
            if branch.len() > PENDING_UNITS_MAX {
                return Err("the branch is longer than the pending bound".into());
            }
        }
        Ok(branch)
    }

    /// The merged changes of `branch` (oldest first, so newer values win) and the hashes
    /// of the transactions it already holds.
    fn prior_state(&self, branch: &[&nest_sdk::UnitView]) -> (Changes, std::collections::BTreeSet<Hash32>) {
        let mut prior = Changes::new();
        let mut included = std::collections::BTreeSet::new();
        for view in branch.iter().rev() {
            if let Some(unit) = self.pending.get(&view.hash) {
                prior.merge(&unit.outcome.changes);
                included.extend(unit.tx_hashes.iter().copied());
            }
        }
        (prior, included)
    }

    fn log_failure(&self, what: &str, error: SlotError) {
        tracing::error!(chain = %self.id, %error, "{what} failed");
    }

    /// Keeps an agreed or checked unit until it is final or pruned. The bound agrees with
    /// the chain type's: a unit that does not fit is refused, never an older one evicted
    /// (the chain type would still hold it and finalization would fail).
    fn remember(&mut self, unit: PendingUnit) -> Result<(), String> {
        if self.pending.len() >= PENDING_UNITS_MAX && !self.pending.contains_key(&unit.view.hash) {
            return Err(format!(
                "unit {}: {PENDING_UNITS_MAX} units already wait to become final (PENDING_UNITS_MAX)",
                unit.view.hash
            ));
        }
        self.pending.insert(unit.view.hash, unit);
        Ok(())
    }

    /// Checks a unit received from a peer against the chain and the engine's
    /// expectation; answers the engine.
    fn verify(&mut self, bytes: Vec<u8>, expect: &UnitExpectation) -> Input {
        let unit_digest = sha256(&bytes);
        let checked = self
            .check_unit(bytes)
            .and_then(|unit| check_expectation(&unit.view, expect).map(|()| unit))
            .and_then(|unit| {
                let hash = unit.view.hash;
                self.remember(unit).map(|()| hash)
            });
        let ok = match checked {
            Ok(hash) => {
                self.checked.insert(unit_digest, hash);
                true
            }
            Err(reason) => {
                tracing::warn!(chain = %self.id, %reason, "unit rejected");
                false
            }
        };
        Input::Verified { unit_digest, ok }
    }

    /// Remembers that a unit above the committed head arrived without its parent: this
    /// node lacks blocks its peers have, and should ask for them now rather than at the
    /// next sync round.
    fn note_missing_parent(&mut self, bytes: &[u8]) {
        let Ok(view) = self.chain_type.call(|c| c.decode(bytes.into())) else { return };
        let parent_known = view.parent == self.head.hash || self.pending.contains_key(&view.parent);
        if view.height > self.head.height.saturating_add(1) && !parent_known {
            self.sender_ahead = true;
        }
    }

    /// Whether the message just handled showed its sender ahead of this node (a unit
    /// without its parent, or the engine's [`Effect::Behind`]): the caller asks that
    /// sender for blocks now rather than at the next sync round.
    pub fn take_sender_ahead(&mut self) -> bool {
        std::mem::take(&mut self.sender_ahead)
    }

    /// Full validation: structure and parent (chain type), signatures, tx root, execution, state digest.
    fn check_unit(&mut self, bytes: Vec<u8>) -> Result<PendingUnit, String> {
        let view = match self.chain_type.call(|c| c.validate(bytes.as_slice().into())) {
            Ok(view) => view,
            Err(error) => {
                self.note_missing_parent(&bytes);
                return Err(error.to_string());
            }
        };
        let branch = self.branch_to(&view.parent).map_err(|reason| format!("unit {}: {reason}", view.hash))?;
        let (prior, _) = self.prior_state(&branch);
        let txs = view
            .txs
            .iter()
            .map(|tx| SignedTx::decode(tx))
            .collect::<Result<Vec<_>, TxError>>()
            .map_err(|e| e.to_string())?;
        let tx_hashes: Vec<Hash32> = view.txs.iter().map(|tx| sha256(tx)).collect();
        if merkle_root(&tx_hashes) != view.tx_root {
            return Err(format!("unit {}: tx root does not match its transactions", view.hash));
        }
        self.check_signatures(&txs, &tx_hashes)?;
        let env =
            BlockEnv { height: view.height, parent: view.parent, time_ms: view.timestamp_ms, proposer: view.proposer };
        let outcome = self.ledger.execute_on(&prior, &txs, &env, &self.params, true);
        if let Some((index, error)) = outcome.rejected.first() {
            return Err(format!("unit {}: transaction {index}: {error}", view.hash));
        }
        if outcome.state_digest != view.state_digest {
            return Err(format!(
                "unit {}: state digest {} differs from executed {}",
                view.hash, view.state_digest, outcome.state_digest
            ));
        }
        Ok(PendingUnit { bytes, certificate: Vec::new(), view, txs, tx_hashes, outcome })
    }

    /// Verifies the signatures not already verified on this node (once per transaction).
    fn check_signatures(&mut self, txs: &[SignedTx], hashes: &[Hash32]) -> Result<(), String> {
        let unseen: Vec<usize> = (0..txs.len()).filter(|i| !self.verified.contains(&hashes[*i])).collect();
        let batch: Vec<SignedTx> = unseen.iter().map(|i| txs[*i].clone()).collect();
        for (position, ok) in verify_batch(&batch).into_iter().enumerate() {
            let index = unseen[position];
            if !ok {
                return Err(format!("transaction {} has a bad signature", hashes[index]));
            }
            self.verified.insert(hashes[index]);
        }
        Ok(())
    }

    /// Inserts an agreed unit into the chain type and commits what became final.
    fn commit(&mut self, store: &dyn ChainStore, bytes: Vec<u8>, certificate: Vec<u8>) -> Option<Input> {
        let digest = sha256(&bytes);
        let known = self.checked.remove(&digest).filter(|hash| self.pending.contains_key(hash));
        let hash = match known {
            Some(hash) => hash,
            None => self.adopt(bytes.clone())?,
        };
        if let Some(unit) = self.pending.get_mut(&hash) {
            unit.certificate = certificate.clone();
        }
        let report = self
            .chain_type
            .call(|c| c.insert(bytes.as_slice().into(), certificate.as_slice().into()))
            .map_err(|e| self.log_failure("insert", e))
            .ok()?;
        self.apply_report(store, report);
        None
    }

    /// Hands a checked vote to the chain type's finality rule.
    fn attest(&mut self, store: &dyn ChainStore, unit_hash: Hash32, authority: PublicKey) -> Option<Input> {
        let report =
            self.chain_type.call(|c| c.attest(unit_hash, authority)).map_err(|e| self.log_failure("attest", e)).ok()?;
        self.apply_report(store, report);
        None
    }

    /// Commits the units the chain type made final, in order, and tells the engine about
    /// the new final unit and the new head.
    fn apply_report(&mut self, store: &dyn ChainStore, report: nest_sdk::InsertReport) {
        let mut committed = false;
        for unit_ref in report.finalized.iter() {
            if !self.finalize(store, unit_ref) {
                break;
            }
            committed = true;
        }
        if committed {
            self.prune_pending();
            let validators = self.validators_inputs();
            self.queued_inputs.extend(validators);
            self.queued_inputs.push_back(Input::Committed { last_commit: self.last_commit() });
        }
        let head = report.head;
        if head.hash != self.tip.hash {
            self.tip = head;
            let branch = self.head_branch(&head.hash);
            let head = LastCommit { height: head.height, unit_hash: head.hash, timestamp_ms: head.timestamp_ms };
            self.queued_inputs.push_back(Input::Head { head, branch });
        }
    }

    /// The validator sets from the height above the committed head on — the one in force
    /// there and those already scheduled for later heights (a DPoS round's set is written
    /// a round ahead) — that the engine has not heard of (at start, and when a commit
    /// writes or reaches a set).
    fn validators_inputs(&mut self) -> Vec<Input> {
        let next = self.head.height.saturating_add(1);
        let sets = self.validator_sets.clone();
        let in_force = nest_ledger::ledger::validators::set_at(&sets, next).map(|set| set.from_height);
        let Some(in_force) = in_force else { return Vec::new() };
        let mut inputs = Vec::new();
        for set in sets.iter().filter(|set| set.from_height >= in_force) {
            if self.validators_sent.contains(set) {
                continue;
            }
            let validators =
                set.members.iter().map(|member| nest_sdk::Validator { key: member.key, power: member.power }).collect();
            inputs.push(Input::Validators { from_height: set.from_height, validators });
            self.validators_sent.push(set.clone());
        }
        self.validators_sent.retain(|set| set.from_height >= in_force);
        inputs
    }

    /// Keeps an engine's finality proof until its unit is written (bounded: a proof for a
    /// unit never seen is dropped first).
    fn keep_proof(&mut self, unit_hash: Hash32, proof: Vec<u8>) {
        if self.proofs.len() >= FINALITY_PROOFS_MAX && !self.proofs.contains_key(&unit_hash) {
            let unseen = self.proofs.keys().find(|hash| !self.pending.contains_key(*hash)).copied();
            match unseen {
                Some(hash) => self.proofs.remove(&hash),
                None => return,
            };
        }
        self.proofs.insert(unit_hash, proof);
    }

    /// The units above the committed head up to `head`, oldest first, as the engine sees them.
    fn head_branch(&self, head: &Hash32) -> RVec<LastCommit> {
        let branch = self.branch_to(head).unwrap_or_default();
        branch
            .iter()
            .rev()
            .map(|view| LastCommit { height: view.height, unit_hash: view.hash, timestamp_ms: view.timestamp_ms })
            .collect()
    }

    /// Forgets agreed units that no longer descend from the committed head (a branch
    /// that lost to the one that became final).
    fn prune_pending(&mut self) {
        let keep: Vec<Hash32> = self.pending.keys().copied().filter(|hash| self.branch_to(hash).is_ok()).collect();
        let pruned: Vec<Hash32> = self.pending.keys().copied().filter(|hash| !keep.contains(hash)).collect();
        self.pending.retain(|hash, _| keep.contains(hash));
        self.checked.retain(|_, hash| keep.contains(hash));
        self.proofs.retain(|hash, _| !pruned.contains(hash));
    }

    /// Checks a unit that was committed without an earlier `Verify` (own proposals are known).
    fn adopt(&mut self, bytes: Vec<u8>) -> Option<Hash32> {
        let view = self
            .chain_type
            .call(|c| c.decode(bytes.as_slice().into()))
            .map_err(|e| self.log_failure("decode", e))
            .ok()?;
        if self.pending.contains_key(&view.hash) {
            return Some(view.hash);
        }
        match self.check_unit(bytes).and_then(|unit| {
            let hash = unit.view.hash;
            self.remember(unit).map(|()| hash)
        }) {
            Ok(hash) => Some(hash),
            Err(reason) => {
                tracing::warn!(chain = %self.id, %reason, "committed unit rejected");
                None
            }
        }
    }

    /// Writes a final unit to the store (fsync), then applies it in memory.
    fn finalize(&mut self, store: &dyn ChainStore, unit_ref: &UnitRef) -> bool {
        let Some(unit) = self.pending.remove(&unit_ref.hash) else {
            tracing::error!(chain = %self.id, hash = %unit_ref.hash, "chain type finalized a unit this node does not hold");
            return false;
        };
        if unit.view.parent != self.head.hash {
            tracing::error!(chain = %self.id, hash = %unit_ref.hash, "chain type finalized a unit whose parent is not final");
            return false;
        }
        let head = ChainHead {
            height: unit.view.height,
            hash: unit.view.hash,
            timestamp_ms: unit.view.timestamp_ms,
            state_digest: unit.outcome.state_digest,
        };
        let finality = self.proofs.remove(&head.hash).unwrap_or_default();
        let block = StoredBlock {
            height: head.height,
            hash: head.hash,
            unit: unit.bytes,
            certificate: unit.certificate,
            finality,
        };
        if let Err(error) = store.commit_block(&self.id, &block, &unit.tx_hashes, &unit.outcome.changes, &head) {
            tracing::error!(chain = %self.id, %error, "block not persisted; the chain stops here");
            self.consensus.disable(format!("store failed: {error}"));
            return false;
        }
        self.ledger.commit(&unit.outcome.changes);
        let writes_a_set = unit.outcome.changes.records.keys().any(|key| key.starts_with(VALIDATORS_PREFIX));
        if writes_a_set {
            self.validator_sets = std::sync::Arc::new(self.ledger.validator_sets());
        }
        self.mempool.remove_committed(&unit.txs, &self.ledger);
        self.txs_committed += unit.txs.len() as u64;
        self.blocks_committed += 1;
        tracing::info!(chain = %self.id, height = head.height, hash = %head.hash, txs = unit.txs.len(), "block committed");
        let interval_ms = head.timestamp_ms.saturating_sub(self.head.timestamp_ms);
        if let Some(metrics) = telemetry::metrics() {
            metrics.block_committed(&self.id, unit.txs.len(), interval_ms, head.timestamp_ms);
        }
        if let Some(events) = &self.events {
            events.block_committed(&self.id, head.height, head.hash, &unit.tx_hashes);
        }
        self.head = head;
        true
    }

    /// The consensus messages the engine asked to send since the last call, oldest first.
    pub fn take_outbound(&mut self) -> Vec<Vec<u8>> {
        self.outbound.drain(..).collect()
    }

    /// Evidence the engine reported (offender, what happened), oldest first, bounded.
    pub fn evidence(&self) -> impl Iterator<Item = &(PublicKey, String)> {
        self.evidence.iter()
    }

    /// The committed state digest (of the head).
    pub fn state_digest(&self) -> Hash32 {
        self.head.state_digest
    }

    /// What the block server needs beyond the store to answer a peer's sync request:
    /// the heights and the agreed branch above the committed head.
    pub fn serve_view(&self) -> crate::serve_view::ServeView {
        crate::serve_view::ServeView {
            committed_height: self.head.height,
            tip_height: self.tip.height,
            tip_branch: self.tip_branch(self.head.height + 1),
            validator_sets: self.validator_sets.clone(),
            dpos: self.ledger.dpos_params(),
        }
    }

    /// The committed head's hash and the tip's: the serve view changes when either does.
    pub fn head_and_tip(&self) -> (Hash32, Hash32) {
        (self.head.hash, self.tip.hash)
    }

    /// The genesis hash (the chain's identity on the network and in transactions).
    pub fn genesis_hash(&self) -> Hash32 {
        self.genesis_hash
    }

    /// The genesis block's timestamp, milliseconds since the Unix epoch.
    pub fn genesis_timestamp_ms(&self) -> u64 {
        self.genesis_timestamp_ms
    }

    /// Height of the newest final block.
    pub fn committed_height(&self) -> u64 {
        self.head.height
    }

    /// Height of the head fork choice picked (final or not).
    pub fn tip_height(&self) -> u64 {
        self.tip.height
    }

    /// The agreed, not yet final units from above the committed head up to the tip, in
    /// height order, from `from_height` on: a peer that was partitioned away needs them
    /// to see this branch.
    pub fn tip_branch(&self, from_height: u64) -> Vec<SyncBlock> {
        let Ok(branch) = self.branch_to(&self.tip.hash) else { return Vec::new() };
        branch
            .iter()
            .rev()
            .filter(|view| view.height >= from_height)
            .filter_map(|view| self.pending.get(&view.hash))
            .map(|unit| SyncBlock {
                height: unit.view.height,
                unit: unit.bytes.clone(),
                certificate: unit.certificate.clone(),
                finality: self.proofs.get(&unit.view.hash).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// Hands a consensus message from a peer to the engine; the verdict for gossip, and
    /// why when it is not accepted. The verdict comes
    /// from the engine's typed answer: a rule broken (`PluginError::Rejected`) lowers
    /// the sender's score; a message of no use here (`Effect::Ignore`: late, early, a
    /// full queue) or a failure of this node's own is dropped without penalty.
    pub fn on_consensus_message(
        &mut self,
        store: &dyn ChainStore,
        from: PublicKey,
        bytes: Vec<u8>,
    ) -> (Verdict, Option<String>) {
        use Verdict;
        self.ignored = false;
        match self.drive(store, Input::Message { from, bytes: bytes.into() }) {
            Ok(()) if std::mem::take(&mut self.ignored) => (Verdict::Ignore, None),
            Ok(()) => (Verdict::Accept, None),
            Err(SlotError::Plugin { error: nest_sdk::PluginError::Rejected { message }, .. }) => {
                (Verdict::Reject, Some(message.into_string()))
            }
            Err(error) => (Verdict::Ignore, Some(error.to_string())),
        }
    }

    /// Admits gossiped transactions (a borsh list of encoded transactions): signatures
    /// are verified once here; a bad one or garbage makes the message rejected.
    pub fn on_tx_gossip(&mut self, bytes: &[u8]) -> Verdict {
        match check_tx_gossip(bytes) {
            Some(txs) => self.admit_gossiped(txs),
            None => Verdict::Reject,
        }
    }

    /// Admits gossiped transactions whose signatures [`check_tx_gossip`] verified; the
    /// verdict: accepted when any entered the mempool, else ignored (already known, or
    /// late: not the sender's fault).
    pub fn admit_gossiped(&mut self, txs: Vec<(Hash32, SignedTx)>) -> Verdict {
        let admitted = self.admit(txs);
        if admitted.iter().any(Result::is_ok) { Verdict::Accept } else { Verdict::Ignore }
    }

    /// Hands blocks fetched by sync to the engine in height order; returns how many new
    /// ones this node now holds (blocks already held are skipped). A block the engine
    /// took but the checks refused does not count, so a node that cannot use a peer's
    /// branch does not ask that peer again at once, forever.
    pub fn apply_synced(&mut self, store: &dyn ChainStore, blocks: Vec<SyncBlock>) -> usize {
        let mut applied = 0;
        for block in blocks {
            if block.height <= self.head.height {
                continue;
            }
            let Ok(view) = self.chain_type.call(|c| c.decode(block.unit.as_slice().into())) else { break };
            // A unit held but not final here still goes to the engine: its certificate
            // or proof of finality may be what this node missed (the votes of a
            // finality proof, or the precommits of a BFT commit certificate). The
            // engine may find nothing new in it, which is no reason to stop.
            let held = self.pending.contains_key(&view.hash);
            let input = Input::Sync {
                unit_bytes: block.unit.into(),
                certificate: block.certificate.into(),
                finality: block.finality.into(),
            };
            let result = self.drive(store, input);
            if held {
                continue;
            }
            if let Err(error) = result {
                tracing::warn!(chain = %self.id, height = block.height, %error, "synced block refused");
                break;
            }
            if !self.pending.contains_key(&view.hash) && self.head.height < view.height {
                break;
            }
            applied += 1;
        }
        applied
    }

    /// Admits transactions whose signatures the caller verified.
    pub fn admit(&mut self, txs: Vec<(Hash32, SignedTx)>) -> Vec<Result<(), TxError>> {
        txs.into_iter()
            .map(|(hash, tx)| {
                let result = self.mempool.admit(hash, tx, &self.ledger, &self.params);
                if result.is_ok() {
                    self.verified.insert(hash);
                }
                result
            })
            .collect()
    }

    /// The ledger (for account queries).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The consensus instance (for plugin administration).
    pub fn consensus_slot(&mut self) -> &mut Slot<ConsensusBox> {
        &mut self.consensus
    }

    /// Identity and state of the consensus and chain-type instances.
    pub fn slot_statuses(&self) -> (&crate::slot::SlotStatus, &crate::slot::SlotStatus) {
        (self.consensus.status(), self.chain_type.status())
    }

    /// The committed head as the chain type knows positions.
    pub fn head_ref(&self) -> UnitRef {
        UnitRef { height: self.head.height, hash: self.head.hash, timestamp_ms: self.head.timestamp_ms }
    }

    /// The chain type instance (for decoding stored blocks).
    pub fn chain_type(&mut self) -> &mut Slot<ChainTypeBox> {
        &mut self.chain_type
    }

    /// The nonce of `account`'s next transaction, counting those in the mempool.
    pub fn pending_nonce(&self, account: &PublicKey) -> u64 {
        self.mempool.next_nonce(account, &self.ledger)
    }

    /// Whether a transaction is waiting in the mempool.
    pub fn is_pending(&self, hash: &Hash32) -> bool {
        self.mempool.contains(hash)
    }

    /// The chain's status line.
    pub fn status(&self) -> ChainStatus {
        ChainStatus {
            id: self.id.clone(),
            height: self.head.height,
            head_hash: self.head.hash,
            state_digest: self.head.state_digest,
            head_timestamp_ms: self.head.timestamp_ms,
            genesis_hash: self.genesis_hash,
            gas_price: self.params.gas_price,
            mempool_txs: self.mempool.len(),
            txs_committed: self.txs_committed,
            blocks_committed: self.blocks_committed,
            evidence: self.evidence.iter().map(|(offender, reason)| format!("{offender}: {reason}")).collect(),
            consensus: self.engine_status.clone(),
            plugins: ChainPlugins {
                chain_type: self.chain_type.status().clone(),
                consensus: self.consensus.status().clone(),
            },
        }
    }
}

/// The longest prefix of `txs` whose encodings (each with its 4-byte length prefix)
/// fit in `budget_bytes`: a block that could not be gossiped or synced would stall the
/// chain on its proposer.
fn within_bytes(txs: Vec<SignedTx>, budget_bytes: usize) -> Vec<SignedTx> {
    let mut used_bytes = 0usize;
    txs.into_iter()
        .take_while(|tx| {
            used_bytes = used_bytes.saturating_add(tx.encode().len() + 4);
            used_bytes <= budget_bytes
        })
        .collect()
}

/// Whether a unit's header says what the engine expects of it (defence against a unit
/// whose seal and header disagree: a proposer credited with fees it did not seal, or a
/// timestamp outside its slot).
fn check_expectation(view: &nest_sdk::UnitView, expect: &UnitExpectation) -> Result<(), String> {
    if let nest_sdk::ROption::RSome(proposer) = expect.proposer
        && view.proposer != proposer
    {
        return Err(format!("unit {} names proposer {} but was sealed by {proposer}", view.hash, view.proposer));
    }
    if view.timestamp_ms < expect.not_before_ms || view.timestamp_ms > expect.not_after_ms {
        return Err(format!(
            "unit {} has timestamp {} ms, outside {}..={} ms that its seal allows",
            view.hash, view.timestamp_ms, expect.not_before_ms, expect.not_after_ms
        ));
    }
    Ok(())
}

/// Decodes a gossiped transaction batch and verifies every signature (in a batch, on the
/// verification pool): the work that needs no chain state, done off the node loop.
/// `None` when any transaction is malformed or forged (the sender broke the rules).
pub fn check_tx_gossip(bytes: &[u8]) -> Option<Vec<(Hash32, SignedTx)>> {
    let encoded = borsh::from_slice::<Vec<Vec<u8>>>(bytes).ok()?;
    let txs = encoded.iter().map(|tx| SignedTx::decode(tx)).collect::<Result<Vec<_>, _>>().ok()?;
    if !verify_batch(&txs).into_iter().all(|ok| ok) {
        return None;
    }
    Some(encoded.iter().map(|tx| sha256(tx)).zip(txs).collect())
}

#[cfg(test)]
mod tests {
    use super::within_bytes;
    use nest_ledger::crypto::SecretKey;
    use nest_ledger::ledger::tx::{SignedTx, TxBody, UnsignedTx};
    use nest_sdk::{Hash32, PublicKey};

    fn transfer(nonce: u64) -> SignedTx {
        let key = SecretKey::from_seed([9; 32]);
        let body = TxBody::Transfer { to: PublicKey([2; 32]), amount: 5 };
        UnsignedTx { chain: Hash32::ZERO, from: key.public_key(), nonce, fee: 1000, body }.sign(&key)
    }

    fn view(proposer: u8, timestamp_ms: u64) -> nest_sdk::UnitView {
        nest_sdk::UnitView {
            hash: Hash32([1; 32]),
            parent: Hash32([2; 32]),
            height: 3,
            timestamp_ms,
            proposer: PublicKey([proposer; 32]),
            tx_root: Hash32::ZERO,
            state_digest: Hash32::ZERO,
            txs: Default::default(),
        }
    }

    #[test]
    fn a_unit_whose_header_disagrees_with_its_seal_is_refused() {
        let expect = nest_sdk::UnitExpectation {
            proposer: nest_sdk::ROption::RSome(PublicKey([7; 32])),
            not_before_ms: 5_000,
            not_after_ms: 5_999,
        };
        assert!(super::check_expectation(&view(7, 5_000), &expect).is_ok());
        assert!(super::check_expectation(&view(7, 5_999), &expect).is_ok());
        let other = super::check_expectation(&view(8, 5_500), &expect).unwrap_err();
        assert!(other.contains("was sealed by"), "{other}");
        let future = super::check_expectation(&view(7, 9_000_000), &expect).unwrap_err();
        assert!(future.contains("outside 5000..=5999"), "{future}");
        assert!(super::check_expectation(&view(7, 4_999), &expect).is_err(), "before its slot");
        assert!(super::check_expectation(&view(9, 1), &nest_sdk::UnitExpectation::ANY).is_ok());
    }

    #[test]
    fn block_building_stops_at_the_byte_budget() {
        let txs: Vec<SignedTx> = (0..10).map(transfer).collect();
        let each = txs[0].encode().len() + 4;
        assert_eq!(within_bytes(txs.clone(), each * 3).len(), 3);
        assert_eq!(within_bytes(txs.clone(), each * 3 + each - 1).len(), 3, "a part of a transaction does not fit");
        assert_eq!(within_bytes(txs.clone(), 0).len(), 0);
        assert_eq!(within_bytes(txs, usize::MAX).len(), 10);
    }
}
