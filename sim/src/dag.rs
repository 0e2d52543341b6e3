//! One seeded run of a DAG chain (ADR 0015): N nodes, each a [`DagRuntime`] over the
//! `chain-dag` chain type, attach units carrying a transfer load with double spends;
//! units travel over links with latency, jitter and loss, across partitions that form and
//! heal; missing parents and units a checkpoint names are fetched from peers.
//!
//! The main chain is modelled by its output: every `interval_ms` a rotating proposer
//! names its tips in checkpoint k, and every node learns checkpoint k after its own
//! delay, in the main chain's order, as a finalized main chain delivers it. (Checkpoints
//! as real main-chain transactions are the next step of ADR 0015.)
//!
//! Invariants: every node that executes checkpoint k gets the same units, the same
//! applied and skipped transactions and the same state digest; of the two transactions of
//! a double spend exactly one applies; after the faults heal, every node executes every
//! checkpoint and every submitted transaction is settled (applied, or skipped as the
//! later of a double spend).

use crate::{Violation, faults::FaultFamily, rng::Rng};
use chain_dag::{DagChain, DagConfig};
use nest_chain::dag::{CheckpointOutcome, DagError, DagRuntime, genesis_request};
use nest_node::crypto::{SecretKey, sha256_parts};
use nest_node::ledger::{
    state::{ChainParams, Ledger},
    tx::{SignedTx, TxBody, UnsignedTx},
};
use nest_sdk::{
    ChainType, Hash32, PublicKey,
    abi_stable::{sabi_trait::TD_Opaque, std_types::RBox},
    chain::{ChainTypeAdapter, ChainTypeFfi_TO},
};
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::{cmp::Reverse, sync::Arc, time::Instant};

/// Genesis time of every simulated DAG.
const GENESIS_MS: u64 = 1_000_000;
/// Accounts of the load, each funded at genesis.
const ACCOUNTS: usize = 8;
/// Each account's genesis balance.
const BALANCE: u64 = 1_000_000;
/// Proof of work in the simulation: cheap, the same checks.
const POW_BITS: u32 = 6;
/// Checkpoints after the last fault with no faults, so that every node's tips get named.
const DRAIN_EXTRA: u64 = 3;
/// Intervals after the last checkpoint in which nodes may still fetch what it names.
const RECOVERY_INTERVALS: u64 = 3;

/// What one DAG run is.
#[derive(Clone, Debug)]
pub struct DagSpec {
    /// Nodes attaching units.
    pub nodes: usize,
    /// Checkpoints under load (faults happen among them).
    pub checkpoints: u64,
    /// Virtual time between checkpoints, in milliseconds.
    pub interval_ms: u64,
    /// Fault families: delay, loss, partition.
    pub faults: Vec<FaultFamily>,
}

/// The fault families a DAG run draws from: its units need no agreement to be held,
/// so crashes and twins have nothing to break that these do not.
pub const DAG_FAULTS: [FaultFamily; 3] = [FaultFamily::Delay, FaultFamily::Loss, FaultFamily::Partition];

/// What one DAG run showed.
#[derive(Clone, Debug)]
pub struct DagOutcome {
    /// The seed.
    pub seed: u64,
    /// Broken invariants.
    pub violations: Vec<Violation>,
    /// Digest of every event in order: the same seed gives the same digest.
    pub event_digest: Hash32,
    /// Events run.
    pub events: u64,
    /// Virtual time run.
    pub virtual_ms: u64,
    /// Units attached.
    pub units: u64,
    /// Double spends sent (pairs).
    pub double_spends: u64,
    /// Checkpoints executed by the slowest node.
    pub checkpoints_min: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// An account's transfer (or a double spend's two halves) reaches nodes.
    Load,
    /// A unit reaches `to`.
    Deliver { to: usize, from: usize, bytes: Vec<u8> },
    /// `asker` asks `holder` for units.
    Fetch { holder: usize, asker: usize, wanted: Vec<Hash32> },
    /// The main chain finalizes checkpoint `number`.
    Decide { number: u64 },
    /// `node` learns checkpoint `number`.
    Learn { node: usize, number: u64, tips: Vec<Hash32> },
    /// `node` asks again for what it lacks.
    Retry { node: usize },
}

struct Node {
    runtime: DagRuntime,
    key: Arc<SecretKey>,
    /// Every unit this node ever held, as its store would keep them.
    units: HashMap<Hash32, Vec<u8>>,
    /// Checkpoints learnt but not executed yet, by number.
    learnt: BTreeMap<u64, Vec<Hash32>>,
    executed: u64,
}

/// One seeded DAG run.
pub struct DagWorld {
    spec: DagSpec,
    seed: u64,
    rng: Rng,
    now_ms: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    sequence: u64,
    nodes: Vec<Node>,
    accounts: Vec<SecretKey>,
    /// Each account's next nonce, and whether its last transaction is still unsettled.
    nonces: Vec<(u64, Option<Hash32>)>,
    /// Every transaction sent, unsettled until a checkpoint applies or skips it.
    unsettled: HashSet<Hash32>,
    /// Double spends: the two halves.
    conflicts: Vec<(Hash32, Hash32)>,
    /// The first outcome seen of each checkpoint.
    outcomes: BTreeMap<u64, CheckpointOutcome>,
    applied: HashSet<Hash32>,
    partition: Option<Vec<usize>>,
    digest: Hash32,
    events: u64,
    attached: u64,
    violations: Vec<Violation>,
    end_ms: u64,
    faults_end_ms: u64,
}

impl DagWorld {
    /// A world for `seed`.
    pub fn new(spec: &DagSpec, seed: u64) -> Result<DagWorld, String> {
        let accounts: Vec<SecretKey> =
            (0..ACCOUNTS).map(|i| SecretKey::from_seed(sha256_parts(&[b"dag-account", &[i as u8]]).0)).collect();
        let allocations: Vec<(PublicKey, u64)> = accounts.iter().map(|key| (key.public_key(), BALANCE)).collect();
        let nodes = (0..spec.nodes).map(|i| new_node(i, &allocations)).collect::<Result<Vec<_>, String>>()?;
        let faults_end_ms = GENESIS_MS + spec.checkpoints * spec.interval_ms;
        let mut world = DagWorld {
            spec: spec.clone(),
            seed,
            rng: Rng::new(seed),
            now_ms: GENESIS_MS,
            queue: BinaryHeap::new(),
            sequence: 0,
            nodes,
            nonces: vec![(0, None); accounts.len()],
            accounts,
            unsettled: HashSet::new(),
            conflicts: Vec::new(),
            outcomes: BTreeMap::new(),
            applied: HashSet::new(),
            partition: None,
            digest: Hash32::ZERO,
            events: 0,
            attached: 0,
            violations: Vec::new(),
            end_ms: faults_end_ms + (spec.nodes as u64 + DRAIN_EXTRA) * spec.interval_ms,
            faults_end_ms,
        };
        world.schedule(GENESIS_MS + 1, Event::Load);
        for number in 1..=world.checkpoints_total() {
            world.schedule(GENESIS_MS + number * spec.interval_ms, Event::Decide { number });
        }
        for node in 0..spec.nodes {
            world.schedule(GENESIS_MS + spec.interval_ms / 2 + node as u64, Event::Retry { node });
        }
        Ok(world)
    }

    fn checkpoints_total(&self) -> u64 {
        self.spec.checkpoints + self.spec.nodes as u64 + DRAIN_EXTRA
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.sequence += 1;
        self.queue.push(Reverse((at_ms, self.sequence, event)));
    }

    fn faulty(&self, family: FaultFamily) -> bool {
        self.now_ms < self.faults_end_ms && self.spec.faults.contains(&family)
    }

    fn fail(&mut self, kind: &str, detail: String) {
        if self.violations.len() < 16 {
            self.violations.push(Violation { seed: self.seed, kind: kind.into(), detail });
        }
    }

    /// Runs to the end and checks what must hold there.
    pub fn run(mut self) -> DagOutcome {
        while let Some(Reverse((at_ms, _, event))) = self.queue.pop() {
            if at_ms > self.stop_ms() {
                break;
            }
            self.now_ms = at_ms;
            self.record(&event);
            self.handle(event);
        }
        self.check_end();
        DagOutcome {
            seed: self.seed,
            violations: self.violations,
            event_digest: self.digest,
            events: self.events,
            virtual_ms: self.now_ms.saturating_sub(GENESIS_MS),
            units: self.attached,
            double_spends: self.conflicts.len() as u64,
            checkpoints_min: self.nodes.iter().map(|node| node.executed).min().unwrap_or(0),
        }
    }

    fn record(&mut self, event: &Event) {
        self.events += 1;
        let text = format!("{}:{event:?}", self.now_ms);
        self.digest = sha256_parts(&[&self.digest.0, text.as_bytes()]);
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Load => self.load(),
            Event::Deliver { to, from, bytes } => self.deliver(to, from, &bytes),
            Event::Fetch { holder, asker, wanted } => self.serve(holder, asker, &wanted),
            Event::Decide { number } => self.decide(number),
            Event::Learn { node, number, tips } => {
                self.nodes[node].learnt.insert(number, tips);
                let missing = self.execute_learnt(node);
                self.fetch_from_all(node, missing);
            }
            Event::Retry { node } => self.retry(node),
        }
    }

    /// One account sends a transfer to a node; one time in five, a double spend: two
    /// transfers with one nonce to two nodes at once. An account sends again only once
    /// its last transaction settled, so the only conflicts are the double spends.
    fn load(&mut self) {
        if self.now_ms < self.faults_end_ms {
            let next = self.now_ms + self.rng.between(self.spec.interval_ms / 8, self.spec.interval_ms / 3);
            self.schedule(next, Event::Load);
        }
        let account = self.rng.below(self.accounts.len() as u64) as usize;
        let (nonce, last) = self.nonces[account];
        if last.is_some_and(|hash| self.unsettled.contains(&hash)) {
            return;
        }
        let first = self.rng.below(self.nodes.len() as u64) as usize;
        let tx = self.transfer(account, nonce, 1);
        self.nonces[account] = (nonce + 1, Some(tx.hash()));
        self.unsettled.insert(tx.hash());
        if self.nodes.len() > 1 && self.rng.chance_ppm(200_000) {
            let second = (first + 1 + self.rng.below(self.nodes.len() as u64 - 1) as usize) % self.nodes.len();
            let twin = self.transfer(account, nonce, 2);
            self.unsettled.insert(twin.hash());
            self.conflicts.push((tx.hash(), twin.hash()));
            self.attach(second, twin);
        }
        self.attach(first, tx);
    }

    fn transfer(&self, account: usize, nonce: u64, to: u8) -> SignedTx {
        let chain = self.nodes[0].runtime.params().chain;
        UnsignedTx {
            chain,
            from: self.accounts[account].public_key(),
            nonce,
            fee: 0,
            body: TxBody::Transfer { to: PublicKey([to; 32]), amount: 1 + nonce % 7 },
        }
        .sign(&self.accounts[account])
    }

    fn attach(&mut self, node: usize, tx: SignedTx) {
        let proposer = self.nodes[node].key.public_key();
        let bytes = match self.nodes[node].runtime.attach(&[tx], self.now_ms, proposer) {
            Ok(bytes) => bytes,
            Err(error) => return self.fail("attach", format!("node {node}: {error}")),
        };
        self.attached += 1;
        self.keep(node, &bytes);
        for to in (0..self.nodes.len()).filter(|to| *to != node) {
            self.send(node, to, Event::Deliver { to, from: node, bytes: bytes.clone() });
        }
    }

    /// Sends over the link `from` → `to`: latency with jitter, and, while faults last,
    /// loss and a partition's cut.
    fn send(&mut self, from: usize, to: usize, event: Event) {
        if let Some(side) = &self.partition
            && side.contains(&from) != side.contains(&to)
        {
            return;
        }
        if self.faulty(FaultFamily::Loss) && self.rng.chance_ppm(100_000) {
            return;
        }
        let jitter = if self.faulty(FaultFamily::Delay) { self.rng.below(self.spec.interval_ms) } else { 0 };
        let at_ms = self.now_ms + 10 + self.rng.below(40) + jitter;
        self.schedule(at_ms, event);
    }

    fn keep(&mut self, node: usize, bytes: &[u8]) {
        if let Ok(view) = self.nodes[node].runtime.decode(bytes) {
            self.nodes[node].units.insert(view.hash, bytes.to_vec());
        }
    }

    fn deliver(&mut self, to: usize, from: usize, bytes: &[u8]) {
        match self.nodes[to].runtime.receive(bytes) {
            Ok(received) => {
                self.keep(to, bytes);
                if !received.missing.is_empty() {
                    self.send(to, from, Event::Fetch { holder: from, asker: to, wanted: received.missing });
                }
                if !received.inserted.is_empty() {
                    self.execute_learnt(to);
                }
            }
            Err(DagError::OrphansFull(_)) => {}
            Err(error) => self.fail("unit", format!("node {to} refused node {from}'s unit: {error}")),
        }
    }

    fn serve(&mut self, holder: usize, asker: usize, wanted: &[Hash32]) {
        let found: Vec<Vec<u8>> =
            wanted.iter().filter_map(|hash| self.nodes[holder].units.get(hash).cloned()).collect();
        for bytes in found {
            self.send(holder, asker, Event::Deliver { to: asker, from: holder, bytes });
        }
    }

    /// The main chain finalizes checkpoint `number`: its proposer names its tips; each
    /// node learns it after its own delay, in order.
    fn decide(&mut self, number: u64) {
        self.draw_partition(number);
        let proposer = (number % self.nodes.len() as u64) as usize;
        let mut tips = match self.nodes[proposer].runtime.tips() {
            Ok(tips) => tips,
            Err(error) => return self.fail("checkpoint", format!("node {proposer}: {error}")),
        };
        tips.truncate(chain_dag::CHECKPOINT_TIPS_MAX);
        for node in 0..self.nodes.len() {
            let delay = self.rng.below(self.spec.interval_ms / 2);
            self.schedule(self.now_ms + delay, Event::Learn { node, number, tips: tips.clone() });
        }
    }

    /// While faults last, a partition forms for a checkpoint interval one time in four.
    fn draw_partition(&mut self, number: u64) {
        self.partition = None;
        if self.faulty(FaultFamily::Partition) && self.nodes.len() > 1 && number % 4 == 1 {
            let size = 1 + self.rng.below(self.nodes.len() as u64 - 1) as usize;
            let mut side: Vec<usize> = (0..self.nodes.len()).collect();
            for i in (1..side.len()).rev() {
                side.swap(i, self.rng.below(i as u64 + 1) as usize);
            }
            side.truncate(size);
            self.partition = Some(side);
        }
    }

    /// Executes the learnt checkpoints in order while their units are held; returns the
    /// units the next one names that are not held.
    fn execute_learnt(&mut self, node: usize) -> Vec<Hash32> {
        loop {
            let next = self.nodes[node].executed + 1;
            let Some(tips) = self.nodes[node].learnt.get(&next).cloned() else { return Vec::new() };
            match self.nodes[node].runtime.checkpoint(&tips) {
                Ok(outcome) => {
                    self.nodes[node].learnt.remove(&next);
                    self.nodes[node].executed = next;
                    self.compare(node, outcome);
                }
                Err(DagError::Missing(missing)) => return missing,
                Err(error) => {
                    self.fail("checkpoint", format!("node {node}, checkpoint {next}: {error}"));
                    return Vec::new();
                }
            }
        }
    }

    fn compare(&mut self, node: usize, outcome: CheckpointOutcome) {
        let number = outcome.number;
        match self.outcomes.get(&number) {
            Some(first) if *first != outcome => self.fail(
                "agreement",
                format!(
                    "node {node} executed checkpoint {number} as {} units, digest {}; another node as {} units, digest {}",
                    outcome.units.len(),
                    outcome.state_digest,
                    first.units.len(),
                    first.state_digest
                ),
            ),
            Some(_) => {}
            None => {
                for hash in outcome.applied.iter().chain(outcome.skipped.iter().map(|skip| &skip.tx)) {
                    self.unsettled.remove(hash);
                }
                self.applied.extend(outcome.applied.iter().copied());
                self.outcomes.insert(number, outcome);
            }
        }
    }

    /// Asks a peer again for what this node lacks: the units its next checkpoint names,
    /// and its orphans' parents.
    /// Asks every peer again for what this node lacks: the units its next checkpoint
    /// names, and its orphans' parents. (Asking one random peer let a node that lacked a
    /// chain of units only one peer held fall behind for good: seed 2513.)
    fn retry(&mut self, node: usize) {
        if self.now_ms < self.stop_ms() {
            self.schedule(self.now_ms + self.spec.interval_ms / 2, Event::Retry { node });
        }
        let next = self.nodes[node].executed + 1;
        let mut wanted = self.nodes[node].runtime.wanted();
        if let Some(tips) = self.nodes[node].learnt.get(&next) {
            wanted.extend(tips.iter().filter(|tip| !self.nodes[node].runtime.holds(tip)));
        }
        self.fetch_from_all(node, wanted);
    }

    fn fetch_from_all(&mut self, node: usize, wanted: Vec<Hash32>) {
        if wanted.is_empty() {
            return;
        }
        for holder in (0..self.nodes.len()).filter(|holder| *holder != node) {
            self.send(node, holder, Event::Fetch { holder, asker: node, wanted: wanted.clone() });
        }
    }

    /// When the run stops: time after the last checkpoint for the slowest node to fetch
    /// what it names.
    fn stop_ms(&self) -> u64 {
        self.end_ms + RECOVERY_INTERVALS * self.spec.interval_ms
    }

    fn check_end(&mut self) {
        let total = self.checkpoints_total();
        for node in 0..self.nodes.len() {
            if self.nodes[node].executed != total {
                let executed = self.nodes[node].executed;
                self.fail("liveness", format!("node {node} executed {executed} of {total} checkpoints"));
            }
        }
        for (first, second) in self.conflicts.clone() {
            let both = [first, second].iter().filter(|hash| self.applied.contains(hash)).count();
            if both != 1 {
                self.fail("double-spend", format!("{both} of the double spend {first} / {second} applied"));
            }
        }
        if !self.unsettled.is_empty() {
            let count = self.unsettled.len();
            self.fail("liveness", format!("{count} transactions neither applied nor skipped at the end"));
        }
    }
}

/// A node: its key, its `chain-dag` instance started at the shared genesis, its runtime.
fn new_node(index: usize, allocations: &[(PublicKey, u64)]) -> Result<Node, String> {
    let key = Arc::new(SecretKey::from_seed(sha256_parts(&[b"dag-node", &[index as u8]]).0));
    let host = crate::services::SimServices::host(key.clone(), crate::services::VerifyCache::default());
    let config = DagConfig { pow_bits: POW_BITS, ..DagConfig::default() };
    let mut chain = DagChain::new(config, host).map_err(|e| e.to_string())?;
    let ledger = Ledger::genesis(allocations).map_err(|e| e.to_string())?;
    let request = genesis_request(&ledger, GENESIS_MS);
    let genesis = chain.build(request).map_err(|e| e.to_string())?;
    let genesis = chain.decode(&genesis).map_err(|e| e.to_string())?.to_ref();
    chain.start(genesis).map_err(|e| e.to_string())?;
    let boxed = ChainTypeFfi_TO::from_ptr(RBox::new(ChainTypeAdapter(chain)), TD_Opaque);
    let params = ChainParams { chain: genesis.hash, gas_price: 0 };
    let runtime = DagRuntime::new(boxed, genesis, ledger, params);
    Ok(Node { runtime, key, units: HashMap::new(), learnt: BTreeMap::new(), executed: 0 })
}

/// Runs `seeds` on `jobs` threads (seeds are independent runs), reporting each outcome
/// to `progress`; the report counts seeds, violations and speed as `nestd sim` prints
/// them for a linear chain.
pub fn run_seeds(
    spec: &DagSpec,
    seeds: std::ops::Range<u64>,
    jobs: usize,
    progress: impl Fn(&DagOutcome) + Sync,
) -> crate::Report {
    let started = Instant::now();
    let next = std::sync::atomic::AtomicU64::new(seeds.start);
    let outcomes: Vec<DagOutcome> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs.clamp(1, 64))
            .map(|_| {
                scope.spawn(|| {
                    let mut outcomes = Vec::new();
                    loop {
                        let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if seed >= seeds.end {
                            return outcomes;
                        }
                        let outcome = run_seed(spec, seed);
                        progress(&outcome);
                        outcomes.push(outcome);
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|worker| worker.join().unwrap_or_default()).collect()
    });
    let wall_s = started.elapsed().as_secs_f64().max(1e-9);
    let mut violations: Vec<Violation> = outcomes.iter().flat_map(|outcome| outcome.violations.clone()).collect();
    violations.sort_by_key(|violation| violation.seed);
    let virtual_s: f64 = outcomes.iter().map(|outcome| outcome.virtual_ms as f64 / 1000.0).sum();
    let mut finals: Vec<u64> = outcomes.iter().map(|outcome| outcome.checkpoints_min).collect();
    finals.sort_unstable();
    crate::Report {
        consensus: "dag (chain-dag; checkpoints from a modelled main chain)".into(),
        nodes: spec.nodes,
        faults: spec.faults.iter().map(|family| family.name().to_string()).collect(),
        heights: spec.checkpoints,
        seeds_run: outcomes.len() as u64,
        violations,
        seeds_per_s: outcomes.len() as f64 / wall_s,
        virtual_s_per_wall_s: virtual_s / wall_s,
        wall_s,
        final_height_median: finals.get(finals.len() / 2).copied().unwrap_or(0),
        final_heights: finals,
    }
}

/// One seed; a world that cannot be set up is a violation of its own.
pub fn run_seed(spec: &DagSpec, seed: u64) -> DagOutcome {
    match DagWorld::new(spec, seed) {
        Ok(world) => world.run(),
        Err(reason) => DagOutcome {
            seed,
            violations: vec![Violation { seed, kind: "setup".into(), detail: reason }],
            event_digest: Hash32::ZERO,
            events: 0,
            virtual_ms: 0,
            units: 0,
            double_spends: 0,
            checkpoints_min: 0,
        },
    }
}
