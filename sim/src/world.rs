//! One seeded run: nodes running the real chain runtime, a virtual clock, an event queue
//! and a network with the faults of the seed's plan.
//!
//! Everything that happens is an event taken from one queue in (time, sequence) order,
//! and every random choice comes from the seed's generator, so a seed always produces
//! the same run; the digest of the processed events proves it.

use crate::check::{Checker, LivenessTimes, Violation};
use crate::engine::Engines;
use crate::faults::{FaultAction, FaultFamily, FaultPlan, draw_plan};
use crate::rng::Rng;
use crate::services::{SimServices, VerifyCache};
use crate::store::MemStore;
use nest_node::crypto::SecretKey;
use nest_node::ledger::evidence::{EVIDENCE_PREFIX, EvidenceRecord, evidence_tx};
use nest_node::ledger::poio::{PoioParams, Weights};
use nest_node::ledger::rounds::DposParams;

/// A DPoS chain's Proof-of-i/o in the simulator: proposers earn per transaction, and
/// every round settles while faults strike.
const SIM_POIO: PoioParams = PoioParams {
    cap: 1_000_000,
    per_round: 1_000,
    weights: Weights { uptime_per_minute: 100, per_tx_verified: 10, storage_per_mib: 1_000 },
};
use nest_chain::runtime::{ChainLimits, ChainParts, ChainRuntime};
use nest_chain::slot::Slot;
use nest_node::ledger::staking::StakingTx;
use nest_node::ledger::tx::{SignedTx, TRANSFER_GAS, TxBody, UnsignedTx};
use nest_node::ledger::validators::{Member, ValidatorSet};
use nest_node::net::SyncBlock;
use nest_node::net::{SyncRequest, SyncResponse};
use nest_node::node::serve::serve;
use nest_sdk::{Hash32, PublicKey};
use sha2::{Digest, Sha256};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::sync::Arc;

/// Genesis time of every simulated chain (milliseconds since the Unix epoch).
const GENESIS_MS: u64 = 1_700_000_000_000;
/// The run starts one interval after genesis.
const START_DELAY_SLOTS: u64 = 1;
/// One-way latency of a healthy link.
const LATENCY_MIN_MS: u64 = 5;
/// Largest one-way latency of a healthy link (jitter reorders messages).
const LATENCY_MAX_MS: u64 = 60;
/// How often a node asks a peer whether it is behind (as the node's sync does).
const SYNC_INTERVAL_MS: u64 = 2_000;
/// Blocks asked for in one sync request.
const SYNC_BATCH_BLOCKS: usize = 128;
/// How often a transaction is submitted to some node.
const TX_INTERVAL_MS: u64 = 400;
/// Accounts funded at genesis that send the transaction load.
const SENDERS: usize = 4;
/// Tokens each sender starts with.
const SENDER_TOKENS: u64 = 1_000_000_000;
/// Largest unit built: the node's default network message bound less the envelope.
const UNIT_BYTES_MAX: usize = 4 * 1024 * 1024 - nest_chain::runtime::UNIT_ENVELOPE_BYTES;
/// Events one run may process before it is stopped as runaway.
const EVENTS_MAX: u64 = 20_000_000;

/// What one run simulates.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// Authorities (distinct keys), each on its own node.
    pub authorities: usize,
    /// Block interval of the chain.
    pub interval_ms: u64,
    /// Length of the run in block intervals.
    pub heights: u64,
    /// Fault families drawn from.
    pub faults: Vec<FaultFamily>,
    /// Submit a transfer load.
    pub transactions: bool,
    /// Votes that make a unit final, instead of 2n/3 + 1 (to watch an unsafe setting fail).
    pub finality_quorum: Option<usize>,
    /// A validator-set change genesis schedules: from this height on, authority i has
    /// power `powers[i]` (0: no longer a validator). Engines that read validators from
    /// the ledger (BFT) follow it.
    pub validator_change: Option<(u64, Vec<u64>)>,
}

/// What one run produced.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// The seed.
    pub seed: u64,
    /// Invariants broken.
    pub violations: Vec<Violation>,
    /// Digest of every processed event, in order.
    pub event_digest: Hash32,
    /// Events processed.
    pub events: u64,
    /// Virtual time simulated.
    pub virtual_ms: u64,
    /// Final height of each node at the end.
    pub final_heights: Vec<u64>,
    /// Fork-choice head height of each node at the end.
    pub head_heights: Vec<u64>,
    /// Distinct offences the engines reported against Byzantine keys (twins).
    pub byzantine_offences: usize,
    /// For each Byzantine key an honest node's engine reported an offence of: the
    /// committed height when it was first reported, and how many heights after its
    /// earliest recorded offence the ledger recorded it (an honest live node's ledger
    /// at the end; `None` when no offence of it is on chain).
    pub evidence_delays: Vec<(PublicKey, u64, Option<u64>)>,
    /// Offences on that ledger by kind (`prevote`, `precommit`, `proposal`).
    pub recorded_offences: std::collections::BTreeMap<&'static str, usize>,
    /// Validator sets on that ledger whose members or order differ from the set before
    /// (DPoS rounds re-elected and re-shuffled).
    pub set_changes: usize,
    /// Of those, the sets whose members differ (a delegate voted in or out).
    pub membership_changes: usize,
}

enum Event {
    Deliver { to: usize, from: usize, bytes: Rc<Vec<u8>> },
    TxGossip { to: usize, from: usize, bytes: Rc<Vec<u8>> },
    Timer { node: usize },
    SyncTick { node: usize },
    SyncServe { peer: usize, asker: usize, from_height: u64 },
    SyncReply { to: usize, from: usize, head_height: u64, blocks: Rc<Vec<SyncBlock>> },
    SubmitTx,
    Fault(FaultAction),
}

impl Event {
    fn tag(&self) -> (u8, usize) {
        match self {
            Event::Deliver { to, .. } => (1, *to),
            Event::TxGossip { to, .. } => (2, *to),
            Event::Timer { node } => (3, *node),
            Event::SyncTick { node } => (4, *node),
            Event::SyncServe { peer, .. } => (5, *peer),
            Event::SyncReply { to, .. } => (6, *to),
            Event::SubmitTx => (7, 0),
            Event::Fault(_) => (8, 0),
        }
    }
}

struct Scheduled {
    at_ms: u64,
    sequence: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.sequence) == (other.at_ms, other.sequence)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at_ms, self.sequence).cmp(&(other.at_ms, other.sequence))
    }
}

/// One simulated node: a key, a durable store, and a runtime while it is up.
struct Node {
    key: Arc<SecretKey>,
    store: MemStore,
    runtime: Option<ChainRuntime>,
    /// A Byzantine twin (or the authority that has one): its key is not honest.
    byzantine: bool,
    /// Twins only reach the nodes of their side; honest nodes have a side too.
    side: u8,
    /// The earliest timer event queued for it.
    timer_at_ms: Option<u64>,
}

/// The network's state: which faults are in force.
#[derive(Default)]
struct Links {
    extra_delay_max_ms: u64,
    loss_ppm: u64,
    groups: Option<Vec<u8>>,
}

/// One seeded run.
pub struct World<'a> {
    spec: &'a RunSpec,
    engines: &'a Engines,
    seed: u64,
    rng: Rng,
    now_ms: u64,
    sequence: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<Node>,
    authorities: Vec<PublicKey>,
    /// The validator sets genesis records (for engines that read them from the ledger).
    validators: Vec<ValidatorSet>,
    links: Links,
    cache: VerifyCache,
    senders: Vec<Arc<SecretKey>>,
    next_sender: usize,
    digest: Sha256,
    events: u64,
    checker: Checker,
    plan: FaultPlan,
    /// Print every node's heights after each call (`NEST_SIM_TRACE=1`), for debugging a seed.
    trace: bool,
}

impl<'a> World<'a> {
    /// Builds the nodes of `seed`'s run and schedules its faults.
    pub fn new(spec: &'a RunSpec, engines: &'a Engines, seed: u64) -> Result<World<'a>, String> {
        let mut rng = Rng::new(seed);
        let keys: Vec<Arc<SecretKey>> = (0..spec.authorities).map(|index| Arc::new(node_key(seed, index))).collect();
        let authorities: Vec<PublicKey> = keys.iter().map(|key| key.public_key()).collect();
        let run_ms = spec.heights * spec.interval_ms;
        let window = (run_ms / 10, run_ms * 6 / 10);
        let plan = draw_plan(&mut rng, &spec.faults, spec.authorities, spec.interval_ms, window);
        let mut nodes: Vec<Node> = keys
            .iter()
            .enumerate()
            .map(|(index, key)| Node {
                key: key.clone(),
                store: MemStore::new(),
                runtime: None,
                byzantine: plan.twins.contains(&index),
                side: (rng.next_u64() & 1) as u8,
                timer_at_ms: None,
            })
            .collect();
        for original in &plan.twins {
            nodes[*original].side = 0;
            nodes.push(Node {
                key: keys[*original].clone(),
                store: MemStore::new(),
                runtime: None,
                byzantine: true,
                side: 1,
                timer_at_ms: None,
            });
        }
        // DPoS: one sender account per delegate to register, stake and vote.
        let sender_count = if engines.is_dpos() { SENDERS.max(spec.authorities) } else { SENDERS };
        let senders = (0..sender_count).map(|index| Arc::new(node_key(seed ^ 0x5e4d, 1000 + index))).collect();
        let honest: Vec<bool> = nodes.iter().map(|node| !node.byzantine).collect();
        let honest_keys = authorities.iter().zip(&nodes).filter(|(_, node)| !node.byzantine).map(|(key, _)| *key);
        let checker = Checker::new(seed, honest, honest_keys.collect());
        let mut world = World {
            spec,
            engines,
            seed,
            rng,
            now_ms: GENESIS_MS + START_DELAY_SLOTS * spec.interval_ms,
            sequence: 0,
            queue: BinaryHeap::new(),
            nodes,
            validators: match engines.is_dpos() {
                true => validator_sets(&authorities[..dpos_delegates(authorities.len())], None),
                false => validator_sets(&authorities, spec.validator_change.as_ref()),
            },
            authorities,
            links: Links::default(),
            cache: VerifyCache::default(),
            senders,
            next_sender: 0,
            digest: Sha256::new(),
            events: 0,
            checker,
            plan,
            trace: std::env::var_os("NEST_SIM_TRACE").is_some(),
        };
        if world.trace {
            for (index, node) in world.nodes.iter().enumerate() {
                eprintln!("node {index} is {}", node.key.public_key());
            }
        }
        world.boot()?;
        Ok(world)
    }

    fn boot(&mut self) -> Result<(), String> {
        let start_ms = self.now_ms;
        for node in 0..self.nodes.len() {
            self.start_node(node)?;
            let offset_ms = self.rng.below(SYNC_INTERVAL_MS);
            self.schedule(start_ms + offset_ms, Event::SyncTick { node });
        }
        for (at_ms, action) in self.plan.actions.clone() {
            self.schedule(start_ms + at_ms, Event::Fault(action));
        }
        if self.spec.transactions {
            self.schedule(start_ms + TX_INTERVAL_MS, Event::SubmitTx);
        }
        Ok(())
    }

    /// Runs to the end and judges the run.
    pub fn run(mut self) -> RunOutcome {
        let start_ms = self.now_ms;
        let end_ms = start_ms + self.spec.heights * self.spec.interval_ms;
        let healed_ms = start_ms + self.plan.healed_at_ms;
        while let Some(Reverse(next)) = self.queue.pop() {
            if next.at_ms > end_ms || self.events >= EVENTS_MAX {
                break;
            }
            self.now_ms = next.at_ms;
            self.events += 1;
            self.record(&next);
            self.handle(next.event);
        }
        self.now_ms = end_ms;
        let finals: Vec<Option<u64>> =
            self.nodes.iter().map(|node| node.runtime.as_ref().map(ChainRuntime::committed_height)).collect();
        let times = LivenessTimes { start_ms, healed_ms, end_ms, interval_ms: self.spec.interval_ms };
        self.checker.check_liveness(&finals, times);
        let byzantine_offences = self.checker.byzantine_offences();
        let recorded = self.recorded_evidence();
        let evidence_delays = self.evidence_delays(&recorded);
        let mut recorded_offences = std::collections::BTreeMap::new();
        for record in &recorded {
            *recorded_offences.entry(record.proof.kind().name()).or_insert(0) += 1;
        }
        let (set_changes, membership_changes) = self.set_changes();
        RunOutcome {
            seed: self.seed,
            set_changes,
            membership_changes,
            byzantine_offences,
            evidence_delays,
            recorded_offences,
            violations: self.checker.into_violations(),
            event_digest: Hash32(self.digest.finalize().into()),
            events: self.events,
            virtual_ms: end_ms - start_ms,
            final_heights: finals.iter().map(|height| height.unwrap_or(0)).collect(),
            head_heights: self
                .nodes
                .iter()
                .map(|node| node.runtime.as_ref().map_or(0, ChainRuntime::tip_height))
                .collect(),
        }
    }

    /// The evidence an honest live node's ledger recorded.
    fn recorded_evidence(&self) -> Vec<EvidenceRecord> {
        let honest = self.nodes.iter().find(|node| !node.byzantine && node.runtime.is_some());
        let Some(runtime) = honest.and_then(|node| node.runtime.as_ref()) else { return Vec::new() };
        runtime
            .ledger()
            .records_with_prefix(EVIDENCE_PREFIX)
            .filter_map(|(_, value)| nest_sdk::borsh::from_slice(value).ok())
            .collect()
    }

    /// How many validator sets on an honest live node's ledger differ from the one before:
    /// in members or order, and in members.
    fn set_changes(&self) -> (usize, usize) {
        let honest = self.nodes.iter().find(|node| !node.byzantine && node.runtime.is_some());
        let Some(runtime) = honest.and_then(|node| node.runtime.as_ref()) else { return (0, 0) };
        let sets = runtime.ledger().validator_sets();
        let keys = |set: &ValidatorSet| {
            let mut keys: Vec<PublicKey> = set.members.iter().map(|member| member.key).collect();
            keys.sort_by_key(|key| key.0);
            keys
        };
        let changed = sets.windows(2).filter(|pair| pair[0].members != pair[1].members).count();
        let moved = sets.windows(2).filter(|pair| keys(&pair[0]) != keys(&pair[1])).count();
        (changed, moved)
    }

    /// Per reported Byzantine key, the smallest inclusion delay in heights of its
    /// `records`.
    fn evidence_delays(&self, records: &[EvidenceRecord]) -> Vec<(PublicKey, u64, Option<u64>)> {
        self.checker
            .byzantine_offenders()
            .into_iter()
            .map(|(offender, reported_at)| {
                let delay = records
                    .iter()
                    .filter(|record| record.proof.offender() == offender)
                    .map(|record| record.included_at.saturating_sub(record.proof.height_round().0))
                    .min();
                (offender, reported_at, delay)
            })
            .collect()
    }

    fn record(&mut self, scheduled: &Scheduled) {
        let (kind, node) = scheduled.event.tag();
        self.digest.update(scheduled.at_ms.to_le_bytes());
        self.digest.update([kind]);
        self.digest.update((node as u64).to_le_bytes());
        if let Event::Deliver { bytes, .. } = &scheduled.event {
            self.digest.update(Sha256::digest(bytes.as_slice()));
        }
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.sequence += 1;
        self.queue.push(Reverse(Scheduled { at_ms, sequence: self.sequence, event }));
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver { to, from, bytes } => self.deliver(to, from, &bytes),
            Event::TxGossip { to, from, bytes } => self.tx_gossip(to, from, &bytes),
            Event::Timer { node } => self.timer(node),
            Event::SyncTick { node } => self.sync_tick(node),
            Event::SyncServe { peer, asker, from_height } => self.sync_serve(peer, asker, from_height),
            Event::SyncReply { to, from, head_height, blocks } => self.sync_reply(to, from, head_height, &blocks),
            Event::SubmitTx => self.submit_tx(),
            Event::Fault(action) => self.fault(action),
        }
    }

    fn start_node(&mut self, index: usize) -> Result<(), String> {
        let node = &self.nodes[index];
        let host = || SimServices::host(node.key.clone(), self.cache.clone());
        let consensus = self.engines.consensus(&self.authorities, self.spec.interval_ms, host())?;
        let chain_type = self.engines.chain_type(self.authorities.len(), self.spec.finality_quorum, host())?;
        let allocations = self.senders.iter().map(|key| (key.public_key(), SENDER_TOKENS)).collect();
        let parts = ChainParts {
            id: "main".into(),
            consensus: Slot::new(consensus, "consensus", self.engines.name(), "sim", "{}"),
            chain_type: Slot::new(chain_type, "chain", "chain-linear", "sim", "{}"),
            limits: ChainLimits {
                block_txs_max: 256,
                unit_bytes_max: UNIT_BYTES_MAX,
                mempool_txs_max: 4096,
                gas_price: 1,
            },
            allocations,
            validators: self.validators.clone(),
            dpos: self
                .engines
                .is_dpos()
                .then_some(DposParams { delegates: dpos_delegates(self.authorities.len()) as u32 }),
            // DPoS runs with Proof-of-i/o: its settlements change every node's state.
            poio: self.engines.is_dpos().then_some(SIM_POIO),
            genesis_timestamp_ms: GENESIS_MS,
            node_key: node.key.public_key(),
            markets: nest_node::ledger::market::MarketRules::new([]),
        };
        let mut runtime = ChainRuntime::open(parts, &node.store).map_err(|error| error.to_string())?;
        runtime.start(&node.store, self.now_ms);
        self.nodes[index].runtime = Some(runtime);
        self.nodes[index].timer_at_ms = None;
        self.after_call(index);
        Ok(())
    }

    /// Whether a message from `from` reaches `to` now.
    fn reachable(&self, from: usize, to: usize) -> bool {
        let (a, b) = (&self.nodes[from], &self.nodes[to]);
        if from == to || a.runtime.is_none() || b.runtime.is_none() {
            return false;
        }
        if (a.byzantine || b.byzantine) && a.side != b.side {
            return false;
        }
        match &self.links.groups {
            Some(groups) => self.group(groups, from) == self.group(groups, to),
            None => true,
        }
    }

    fn group(&self, groups: &[u8], node: usize) -> u8 {
        let authority = self.authority_of(node);
        groups.get(authority).copied().unwrap_or(0)
    }

    /// The authority index whose key the node holds (a twin's original).
    fn authority_of(&self, node: usize) -> usize {
        let key = self.nodes[node].key.public_key();
        self.authorities.iter().position(|authority| *authority == key).unwrap_or(0)
    }

    fn delay_ms(&mut self) -> u64 {
        let base = self.rng.between(LATENCY_MIN_MS, LATENCY_MAX_MS);
        base + self.rng.below(self.links.extra_delay_max_ms.saturating_add(1))
    }

    /// Sends `bytes` from `from` to every other node, each copy delayed or lost on its own.
    fn broadcast(&mut self, from: usize, bytes: Vec<u8>) {
        let bytes = Rc::new(bytes);
        for to in 0..self.nodes.len() {
            if to == from || self.rng.chance_ppm(self.links.loss_ppm) {
                continue;
            }
            let at_ms = self.now_ms + self.delay_ms();
            self.schedule(at_ms, Event::Deliver { to, from, bytes: bytes.clone() });
        }
    }

    /// After any call into a node's runtime: send what it asked, queue its timer, check it.
    fn after_call(&mut self, index: usize) {
        let Some(runtime) = self.nodes[index].runtime.as_mut() else { return };
        let outbound = runtime.take_outbound();
        let timer = runtime.next_timer_ms();
        for bytes in outbound {
            self.broadcast(index, bytes);
        }
        self.report_evidence(index);
        if let Some(at_ms) = timer
            && self.nodes[index].timer_at_ms.is_none_or(|queued| at_ms < queued)
        {
            self.nodes[index].timer_at_ms = Some(at_ms);
            let at_ms = at_ms.max(self.now_ms);
            self.schedule(at_ms, Event::Timer { node: index });
        }
        let node = &self.nodes[index];
        if let Some(runtime) = &node.runtime {
            if self.trace {
                eprintln!(
                    "{} node {index}: final {} head {}",
                    self.now_ms - GENESIS_MS,
                    runtime.committed_height(),
                    runtime.tip_height()
                );
            }
            self.checker.observe(index, runtime, &node.store, self.now_ms);
        }
    }

    fn deliver(&mut self, to: usize, from: usize, bytes: &[u8]) {
        if !self.reachable(from, to) {
            return;
        }
        let from_key = self.nodes[from].key.public_key();
        let node = &mut self.nodes[to];
        let Some(runtime) = node.runtime.as_mut() else { return };
        let (verdict, reason) = runtime.on_consensus_message(&node.store, from_key, bytes.to_vec());
        let sender_ahead = runtime.take_sender_ahead();
        // Gossip lowers the score of a peer whose message is rejected: an honest node
        // must never earn that from another, however far ahead or behind either is.
        if verdict == nest_node::net::Verdict::Reject && !self.nodes[from].byzantine && !self.nodes[to].byzantine {
            let detail = format!(
                "at {} ms node {to} rejected a message of honest node {from}: {}",
                self.now_ms - GENESIS_MS,
                reason.unwrap_or_default()
            );
            self.checker.fail("honest_message_rejected", detail);
        }
        self.after_call(to);
        if sender_ahead {
            self.ask_blocks(to, from);
        }
    }

    fn tx_gossip(&mut self, to: usize, from: usize, bytes: &[u8]) {
        if !self.reachable(from, to) {
            return;
        }
        if let Some(runtime) = self.nodes[to].runtime.as_mut() {
            runtime.on_tx_gossip(bytes);
        }
    }

    fn timer(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        node.timer_at_ms = None;
        let Some(runtime) = node.runtime.as_mut() else { return };
        runtime.tick(&node.store, self.now_ms);
        self.after_call(index);
    }

    fn sync_tick(&mut self, index: usize) {
        self.schedule(self.now_ms + SYNC_INTERVAL_MS, Event::SyncTick { node: index });
        let peers: Vec<usize> = (0..self.nodes.len()).filter(|peer| self.reachable(index, *peer)).collect();
        if peers.is_empty() {
            return;
        }
        let peer = peers[self.rng.below(peers.len() as u64) as usize];
        self.ask_blocks(index, peer);
    }

    fn ask_blocks(&mut self, asker: usize, peer: usize) {
        let Some(runtime) = &self.nodes[asker].runtime else { return };
        let from_height = runtime.committed_height() + 1;
        let at_ms = self.now_ms + self.delay_ms();
        self.schedule(at_ms, Event::SyncServe { peer, asker, from_height });
    }

    fn sync_serve(&mut self, peer: usize, asker: usize, from_height: u64) {
        if !self.reachable(asker, peer) {
            return;
        }
        let node = &self.nodes[peer];
        let Some(runtime) = &node.runtime else { return };
        let request = SyncRequest { chain: runtime.id().to_string(), from_height, count: SYNC_BATCH_BLOCKS as u32 };
        let SyncResponse { head_height, blocks } = serve(&node.store, Some(&runtime.serve_view()), &request);
        if blocks.is_empty() {
            return;
        }
        let at_ms = self.now_ms + self.delay_ms();
        self.schedule(at_ms, Event::SyncReply { to: asker, from: peer, head_height, blocks: Rc::new(blocks) });
    }

    fn sync_reply(&mut self, to: usize, from: usize, head_height: u64, blocks: &[SyncBlock]) {
        if !self.reachable(from, to) {
            return;
        }
        let node = &mut self.nodes[to];
        let Some(runtime) = node.runtime.as_mut() else { return };
        let applied = runtime.apply_synced(&node.store, blocks.to_vec());
        if self.trace {
            let first = blocks.first().map_or(0, |block| block.height);
            let proofs: Vec<usize> = blocks.iter().map(|block| block.finality.len()).collect();
            eprintln!(
                "{} node {to}: synced {} blocks from {first} off node {from}, {applied} new, proof bytes {proofs:?}",
                self.now_ms - GENESIS_MS,
                blocks.len()
            );
        }
        let behind = runtime.committed_height() < head_height;
        self.after_call(to);
        if applied > 0 && behind {
            self.ask_blocks(to, from);
        }
    }

    /// A transfer from one of the funded senders, admitted at a random live node and
    /// gossiped from there.
    fn submit_tx(&mut self) {
        self.schedule(self.now_ms + TX_INTERVAL_MS, Event::SubmitTx);
        let live: Vec<usize> = (0..self.nodes.len()).filter(|index| self.nodes[*index].runtime.is_some()).collect();
        if live.is_empty() {
            return;
        }
        let at = live[self.rng.below(live.len() as u64) as usize];
        let count = self.senders.len();
        let index = self.next_sender % count;
        let sender = self.senders[index].clone();
        self.next_sender += 1;
        let to = self.senders[self.next_sender % count].public_key();
        let body = match self.engines.is_dpos() {
            true => self.staking_body(index),
            false => None,
        };
        let (body, fee) = match body {
            Some(body) => {
                let fee = nest_node::ledger::tx::gas_of(&body);
                (body, fee)
            }
            None => (TxBody::Transfer { to, amount: 1 + self.rng.below(1000) }, TRANSFER_GAS),
        };
        let Some(runtime) = self.nodes[at].runtime.as_mut() else { return };
        let unsigned = UnsignedTx {
            chain: runtime.genesis_hash(),
            from: sender.public_key(),
            nonce: runtime.pending_nonce(&sender.public_key()),
            fee,
            body,
        };
        let signed: SignedTx = unsigned.sign(&sender);
        self.admit_and_gossip(at, signed);
    }

    /// DPoS load for sender `index`: during the first rounds of submissions, register the
    /// delegate of authority `index` (again: a lost registration is retried, a repeated
    /// one refused); later, one transaction in four stakes or re-votes, so rankings and
    /// each round's order keep moving.
    fn staking_body(&mut self, index: usize) -> Option<TxBody> {
        let delegates = self.authorities.len();
        if self.next_sender <= 3 * self.senders.len() && index < delegates {
            let node_key = self.authorities[index];
            return Some(TxBody::Staking(StakingTx::RegisterDelegate { node_key, name: format!("delegate-{index}") }));
        }
        match self.rng.below(8) {
            0 => Some(TxBody::Staking(StakingTx::Stake { amount: 1 + self.rng.below(10_000) })),
            1 => {
                let picked = (0..delegates.min(self.senders.len()))
                    .filter(|_| self.rng.chance_ppm(500_000))
                    .map(|delegate| self.senders[delegate].public_key())
                    .collect();
                Some(TxBody::Staking(StakingTx::Vote { delegates: picked }))
            }
            _ => None,
        }
    }

    /// Admits a transaction at node `at` and gossips it to the others, as a node does.
    fn admit_and_gossip(&mut self, at: usize, signed: SignedTx) {
        let Some(runtime) = self.nodes[at].runtime.as_mut() else { return };
        let encoded = signed.encode();
        let accepted = runtime.admit(vec![(signed.hash(), signed)]);
        if accepted.iter().all(Result::is_err) {
            return;
        }
        let Ok(bytes) = nest_sdk::borsh::to_vec(&vec![encoded]) else { return };
        let bytes = Rc::new(bytes);
        for to in 0..self.nodes.len() {
            if to != at && !self.rng.chance_ppm(self.links.loss_ppm) {
                let at_ms = self.now_ms + self.delay_ms();
                self.schedule(at_ms, Event::TxGossip { to, from: at, bytes: bytes.clone() });
            }
        }
    }

    /// Reports the offences node `index`'s engine proved, as the node does: an
    /// evidence transaction signed with its key.
    fn report_evidence(&mut self, index: usize) {
        let key = self.nodes[index].key.clone();
        let Some(runtime) = self.nodes[index].runtime.as_mut() else { return };
        let proofs = runtime.take_evidence_proofs();
        for proof in proofs {
            let Some(runtime) = self.nodes[index].runtime.as_ref() else { return };
            let tx = evidence_tx(proof, runtime.genesis_hash(), &key, runtime.pending_nonce(&key.public_key()));
            self.admit_and_gossip(index, tx);
        }
    }

    fn fault(&mut self, action: FaultAction) {
        if self.trace {
            eprintln!("{} fault {action:?}", self.now_ms - GENESIS_MS);
        }
        match action {
            FaultAction::Delay { extra_max_ms } => self.links.extra_delay_max_ms = extra_max_ms,
            FaultAction::Loss { ppm } => self.links.loss_ppm = ppm,
            FaultAction::Partition { groups } => self.links.groups = Some(groups),
            FaultAction::Heal => self.links.groups = None,
            FaultAction::Crash { node } => {
                self.nodes[node].runtime = None;
                self.nodes[node].timer_at_ms = None;
            }
            FaultAction::Restart { node } => {
                if self.nodes[node].runtime.is_none()
                    && let Err(reason) = self.start_node(node)
                {
                    self.checker.fail("restart", format!("node {node} could not restart: {reason}"));
                }
            }
        }
    }
}

/// The key of authority `index` in the run of `seed` (fixed, so a replay has the same keys).
fn node_key(seed: u64, index: usize) -> SecretKey {
    let mut material = [0u8; 32];
    material[..8].copy_from_slice(&seed.to_le_bytes());
    material[8..16].copy_from_slice(&(index as u64).to_le_bytes());
    material[16..].copy_from_slice(b"nest/sim/key/v1\0");
    SecretKey::from_seed(material)
}

/// Delegates per DPoS round among `nodes` nodes: one node stands by (so that votes
/// move delegates in and out of the rounds) when the rest still hold the fault budget
/// the run draws for `nodes` (f = (nodes − 1) / 3 down or Byzantine: 3f + 1 delegates);
/// otherwise every node is a delegate.
pub fn dpos_delegates(nodes: usize) -> usize {
    let faults = nodes.saturating_sub(1) / 3;
    if 3 * faults < nodes.saturating_sub(1) { nodes - 1 } else { nodes }
}

/// The validator sets every node records at genesis: each authority with power 1, and
/// the run's scheduled change, if any.
fn validator_sets(authorities: &[PublicKey], change: Option<&(u64, Vec<u64>)>) -> Vec<ValidatorSet> {
    let members = authorities.iter().map(|key| Member { key: *key, power: 1 }).collect();
    let mut sets = vec![ValidatorSet { from_height: 1, members }];
    if let Some((from_height, powers)) = change {
        let members = authorities
            .iter()
            .zip(powers)
            .filter(|(_, power)| **power > 0)
            .map(|(key, power)| Member { key: *key, power: *power })
            .collect();
        sets.push(ValidatorSet { from_height: *from_height, members });
    }
    sets
}
