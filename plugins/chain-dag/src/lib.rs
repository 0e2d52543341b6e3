//! A DAG chain type (a tangle) for high-volume device traffic (ADR 0015).
//!
//! Each unit approves up to `approvals` earlier tips, chosen by IOTA's weighted random
//! walk from the newest checkpoint's tip, and carries a proof of work (`pow_bits`
//! leading zero bits of its hash) and its proposer's signature. A unit joins the tangle
//! once every unit it approves is held; nothing is final on arrival. A unit becomes final
//! when a checkpoint the main chain finalized names it or a unit that approves it
//! ([`ChainType::checkpoint`]): the host then executes the checkpoint's past cone, minus
//! what earlier checkpoints made final, in the order [`tangle::Tangle::final_order`]
//! gives, which every node holding the same units computes alike.
//!
//! The chain type keeps the units above its start in memory; `snapshot` hands them to an
//! upgrade. The units a checkpoint made final stay held (the cone of a later checkpoint
//! stops at them), bounded with the rest by [`tangle::UNITS_MAX`].

mod config;
mod unit;

#[cfg(test)]
mod tests;

pub use config::{
    ALPHA_MAX, DEFAULT_ALPHA, DEFAULT_APPROVALS, DEFAULT_MAX_PENDING_UNITS, DEFAULT_MAX_TXS_PER_UNIT,
    DEFAULT_MAX_UNIT_BYTES, DEFAULT_POW_BITS, DagConfig, MAX_PENDING_UNITS_MAX, POW_BITS_MAX,
};
pub use unit::{Header, UNIT_HASH_DOMAIN, UNIT_VERSION, Unit, hash_with_nonce};

use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{
    BuildRequest, ChainType, ConfigError, Hash32, Host, InsertReport, PARENTS_MAX, PluginError, Signature, UnitRef,
    UnitView,
};
use std::collections::{HashMap, HashSet};
use tangle::Tangle;

nest_sdk::export_plugin! {
    name: "chain-dag",
    vendor: "Nest",
    description: "A DAG chain type (tangle): units approve earlier tips, carry a proof of work, and become final when a main-chain checkpoint names them.",
    chain_type: DagChain,
}

/// Format version of [`DagChain::snapshot`].
pub const SNAPSHOT_VERSION: u8 = 1;

/// Most tips one checkpoint names: a main-chain transaction's worth (2 KiB of hashes).
pub const CHECKPOINT_TIPS_MAX: usize = 64;

/// Walks tried per approval before a unit settles for fewer distinct parents.
const WALKS_PER_APPROVAL: u32 = 4;

/// Nonces tried per unit, as a multiple of the expected 2^pow_bits: failing this many is
/// a one-in-e^256 event, so a failure means a broken hash, not bad luck.
const POW_TRIES_FACTOR: u64 = 256;

/// What the chain type knows of a held unit besides its edges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct Held {
    height: u64,
    timestamp_ms: u64,
}

/// The held units and what is final.
#[derive(Clone, Debug)]
struct State {
    tangle: Tangle,
    held: HashMap<Hash32, Held>,
    finals: HashSet<Hash32>,
    /// Where tip walks start: the newest checkpoint's highest tip (the start unit before
    /// any checkpoint).
    entry: Hash32,
    head: UnitRef,
    /// Units built, mixed into the walk's seed so two builds at one instant differ.
    builds: u64,
}

impl State {
    fn new(start: UnitRef) -> State {
        State {
            tangle: Tangle::new(start.hash),
            held: HashMap::from([(start.hash, Held { height: start.height, timestamp_ms: start.timestamp_ms })]),
            finals: HashSet::from([start.hash]),
            entry: start.hash,
            head: start,
            builds: 0,
        }
    }

    fn pending(&self) -> usize {
        self.held.len().saturating_sub(self.finals.len())
    }

    fn unit_ref(&self, hash: Hash32) -> UnitRef {
        let held = self.held.get(&hash).copied().unwrap_or(Held { height: 0, timestamp_ms: 0 });
        UnitRef { height: held.height, hash, timestamp_ms: held.timestamp_ms }
    }

    /// Adds a checked unit; the head is the highest unit, then the smallest hash.
    fn add(&mut self, hash: Hash32, parents: &[Hash32], held: Held) -> Result<(), PluginError> {
        self.tangle.insert(hash, parents).map_err(|error| PluginError::rejected(error.to_string()))?;
        self.held.insert(hash, held);
        if (held.height, std::cmp::Reverse(hash.0)) > (self.head.height, std::cmp::Reverse(self.head.hash.0)) {
            self.head = UnitRef { height: held.height, hash, timestamp_ms: held.timestamp_ms };
        }
        Ok(())
    }

    fn report(&self, finalized: Vec<UnitRef>) -> InsertReport {
        InsertReport { head: self.head, finalized: finalized.into() }
    }
}

/// What a snapshot holds: the start unit, every other held unit in an order parents
/// come first (by height), what is final, and the walk's entry.
#[derive(BorshSerialize, BorshDeserialize)]
struct Snapshot {
    version: u8,
    start: (Hash32, Held),
    units: Vec<(Hash32, Vec<Hash32>, Held)>,
    finals: Vec<Hash32>,
    entry: Hash32,
}

/// The DAG chain type: one instance per chain on a node.
pub struct DagChain {
    config: DagConfig,
    host: Host,
    /// `None` until [`ChainType::start`].
    state: Option<State>,
}

impl DagChain {
    /// The configuration in force.
    pub fn config(&self) -> &DagConfig {
        &self.config
    }

    fn state(&self) -> Result<&State, PluginError> {
        self.state.as_ref().ok_or_else(|| PluginError::rejected("the chain type has not been started"))
    }

    fn state_mut(&mut self) -> Result<&mut State, PluginError> {
        self.state.as_mut().ok_or_else(|| PluginError::rejected("the chain type has not been started"))
    }

    fn check_tx_count(&self, count: usize) -> Result<(), PluginError> {
        if count > self.config.max_txs_per_unit as usize {
            return Err(PluginError::rejected(format!(
                "unit carries {count} transactions, more than max_txs_per_unit = {}",
                self.config.max_txs_per_unit
            )));
        }
        Ok(())
    }

    /// Decodes a unit and checks it on its own — shape, proof of work, signature —
    /// without the tangle; returns it with its hash.
    fn decode_unit(&self, bytes: &[u8]) -> Result<(Unit, Hash32), PluginError> {
        if bytes.len() > self.config.max_unit_bytes as usize {
            return Err(PluginError::rejected(format!(
                "unit of {} bytes exceeds max_unit_bytes = {}",
                bytes.len(),
                self.config.max_unit_bytes
            )));
        }
        let unit: Unit =
            borsh::from_slice(bytes).map_err(|error| PluginError::rejected(format!("malformed unit: {error}")))?;
        let header = &unit.header;
        if header.version != UNIT_VERSION {
            return Err(PluginError::rejected(format!(
                "unsupported unit version {}, expected {UNIT_VERSION}",
                header.version
            )));
        }
        self.check_tx_count(unit.txs.len())?;
        if header.tx_count as usize != unit.txs.len() {
            return Err(PluginError::rejected(format!(
                "unit header says {} transactions but the unit carries {}",
                header.tx_count,
                unit.txs.len()
            )));
        }
        check_parents(header)?;
        let hash = header.hash(unit.nonce)?;
        if header.height == 0 {
            if unit.nonce != 0 || unit.signature != Signature::default() {
                return Err(PluginError::rejected("genesis carries no proof of work and no signature"));
            }
            return Ok((unit, hash));
        }
        if !tangle::pow_ok(&hash, self.config.pow_bits) {
            return Err(PluginError::rejected(format!(
                "unit {hash} lacks its proof of work: its hash needs {} leading zero bits",
                self.config.pow_bits
            )));
        }
        if !self.host.verify(&header.proposer, &hash.0, &unit.signature) {
            return Err(PluginError::rejected(format!(
                "unit {hash} is not signed by its proposer {}",
                header.proposer
            )));
        }
        Ok((unit, hash))
    }

    /// Decodes a unit and checks it against the held units: every parent held, height
    /// one above the highest parent, time not before any parent's.
    fn validate_unit(&self, bytes: &[u8]) -> Result<(Unit, Hash32), PluginError> {
        let (unit, hash) = self.decode_unit(bytes)?;
        let state = self.state()?;
        let header = &unit.header;
        if header.height == 0 {
            if state.held.contains_key(&hash) {
                return Ok((unit, hash));
            }
            return Err(PluginError::rejected("a genesis unit is built by each node from its manifest, not received"));
        }
        let mut top = Held { height: 0, timestamp_ms: 0 };
        for parent in &header.parents {
            let Some(held) = state.held.get(parent) else {
                return Err(PluginError::rejected(format!(
                    "unit {hash} approves {parent}, which this node does not hold"
                )));
            };
            top.height = top.height.max(held.height);
            top.timestamp_ms = top.timestamp_ms.max(held.timestamp_ms);
        }
        if header.height != top.height.saturating_add(1) {
            return Err(PluginError::rejected(format!(
                "unit {hash} claims height {} but its highest parent is at {}",
                header.height, top.height
            )));
        }
        if header.timestamp_ms < top.timestamp_ms {
            return Err(PluginError::rejected(format!(
                "unit {hash} is timed {} ms, before its parent's {} ms",
                header.timestamp_ms, top.timestamp_ms
            )));
        }
        Ok((unit, hash))
    }

    /// The tips a new unit approves. The first (its trunk) is the end of IOTA's weighted
    /// walk from the entry unit; with two or more approvals, the next is the oldest tip
    /// (lowest height, then smallest hash), so that no tip is left behind: a walk from the
    /// entry never reaches a tip that does not approve the entry, and such tips would
    /// otherwise wait for a checkpoint to name them. Further approvals are more walks.
    fn select_parents(&self, state: &State, seed: u64) -> Vec<Hash32> {
        let mut random = SplitMix64(seed);
        let wanted = self.config.approvals as usize;
        let mut parents: Vec<Hash32> = Vec::with_capacity(wanted);
        let trunk = state.tangle.walk(&state.entry, self.config.alpha, || random.next()).unwrap_or(state.entry);
        parents.push(trunk);
        let oldest = state.tangle.tips().into_iter().filter(|tip| *tip != trunk).min_by_key(|tip| {
            let height = state.held.get(tip).map_or(0, |held| held.height);
            (height, tip.0)
        });
        if wanted > 1
            && let Some(oldest) = oldest
        {
            parents.push(oldest);
        }
        for _ in 0..self.config.approvals.saturating_mul(WALKS_PER_APPROVAL) {
            if parents.len() >= wanted {
                break;
            }
            if let Some(tip) = state.tangle.walk(&state.entry, self.config.alpha, || random.next())
                && !parents.contains(&tip)
            {
                parents.push(tip);
            }
        }
        parents
    }

    fn build_genesis(&self, request: BuildRequest, tx_count: u32) -> Result<Vec<u8>, PluginError> {
        if request.parent != Hash32::ZERO {
            return Err(PluginError::rejected("unit at height 0 (genesis) must have the zero parent"));
        }
        let unit = Unit {
            header: Header {
                version: UNIT_VERSION,
                parents: vec![Hash32::ZERO],
                height: 0,
                timestamp_ms: request.timestamp_ms,
                proposer: request.proposer,
                tx_root: request.tx_root,
                tx_count,
            },
            nonce: 0,
            signature: Signature::default(),
            txs: request.txs.into_iter().map(|tx| tx.into_vec()).collect(),
        };
        encode(&unit)
    }
}

/// Parents: 1 to [`PARENTS_MAX`], distinct; the zero hash for genesis alone.
fn check_parents(header: &Header) -> Result<(), PluginError> {
    let count = header.parents.len();
    if count == 0 || count > PARENTS_MAX {
        return Err(PluginError::rejected(format!("a unit approves 1 to {PARENTS_MAX} parents, not {count}")));
    }
    let distinct: HashSet<&Hash32> = header.parents.iter().collect();
    if distinct.len() != count {
        return Err(PluginError::rejected("a unit names one of its parents twice"));
    }
    let zero_parent = header.parents.contains(&Hash32::ZERO);
    match (header.height == 0, zero_parent) {
        (true, _) if header.parents != [Hash32::ZERO] => {
            Err(PluginError::rejected("unit at height 0 (genesis) must approve only the zero hash"))
        }
        (false, true) => Err(PluginError::rejected(format!(
            "unit at height {} approves the zero hash, which only genesis may",
            header.height
        ))),
        _ => Ok(()),
    }
}

fn encode(unit: &Unit) -> Result<Vec<u8>, PluginError> {
    borsh::to_vec(unit).map_err(|error| PluginError::failed(format!("cannot encode unit: {error}")))
}

/// The walk's randomness: local to this node, not part of consensus (any tips are valid
/// parents), seeded from the build so that a replayed build is the same.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A build's seed: the request's root, time and proposer, and the build count.
fn build_seed(request: &BuildRequest, builds: u64) -> u64 {
    let digest = hash_with_nonce(
        &[request.tx_root.0.as_slice(), &request.timestamp_ms.to_be_bytes(), &request.proposer.0].concat(),
        builds,
    );
    u64::from_be_bytes(digest.0[..8].try_into().unwrap_or_default())
}

impl ChainType for DagChain {
    type Config = DagConfig;

    fn check_config(config: &DagConfig) -> Result<(), ConfigError> {
        config.check()
    }

    fn new(config: DagConfig, host: Host) -> Result<Self, PluginError> {
        config.check()?;
        Ok(Self { config, host, state: None })
    }

    fn start(&mut self, finalized: UnitRef) -> Result<(), PluginError> {
        self.state = Some(State::new(finalized));
        Ok(())
    }

    fn build(&mut self, request: BuildRequest) -> Result<Vec<u8>, PluginError> {
        self.check_tx_count(request.txs.len())?;
        let tx_count = u32::try_from(request.txs.len())
            .map_err(|_| PluginError::rejected("too many transactions for one unit"))?;
        if request.height == 0 {
            return self.build_genesis(request, tx_count);
        }
        if request.proposer != self.host.public_key() {
            return Err(PluginError::rejected(format!(
                "a DAG unit is signed by its proposer, and {} is not this node's key",
                request.proposer
            )));
        }
        let state = self.state()?;
        let seed = build_seed(&request, state.builds);
        let parents = self.select_parents(state, seed);
        let top = parents.iter().filter_map(|parent| state.held.get(parent)).fold(
            Held { height: 0, timestamp_ms: 0 },
            |top, held| Held {
                height: top.height.max(held.height),
                timestamp_ms: top.timestamp_ms.max(held.timestamp_ms),
            },
        );
        let header = Header {
            version: UNIT_VERSION,
            parents,
            height: top.height.saturating_add(1),
            timestamp_ms: request.timestamp_ms.max(top.timestamp_ms),
            proposer: request.proposer,
            tx_root: request.tx_root,
            tx_count,
        };
        let tries = POW_TRIES_FACTOR << self.config.pow_bits;
        let (nonce, hash) = tangle::solve_pow(&header.pow_prefix()?, self.config.pow_bits, seed, tries)
            .ok_or_else(|| PluginError::failed(format!("no proof of work found in {tries} nonces")))?;
        let signature = self.host.sign(&hash.0);
        let unit = Unit { header, nonce, signature, txs: request.txs.into_iter().map(|tx| tx.into_vec()).collect() };
        let bytes = encode(&unit)?;
        if bytes.len() > self.config.max_unit_bytes as usize {
            return Err(PluginError::rejected(format!(
                "unit would be {} bytes, more than max_unit_bytes = {}",
                bytes.len(),
                self.config.max_unit_bytes
            )));
        }
        self.state_mut()?.builds += 1;
        Ok(bytes)
    }

    fn decode(&self, unit: &[u8]) -> Result<UnitView, PluginError> {
        let (unit, hash) = self.decode_unit(unit)?;
        Ok(unit.into_view(hash))
    }

    fn validate(&self, unit: &[u8]) -> Result<UnitView, PluginError> {
        let (unit, hash) = self.validate_unit(unit)?;
        Ok(unit.into_view(hash))
    }

    fn insert(&mut self, unit: &[u8], _certificate: &[u8]) -> Result<InsertReport, PluginError> {
        let (unit, hash) = self.validate_unit(unit)?;
        let max_pending_units = self.config.max_pending_units as usize;
        let state = self.state_mut()?;
        if state.held.contains_key(&hash) {
            return Ok(state.report(Vec::new()));
        }
        if state.pending() >= max_pending_units {
            return Err(PluginError::rejected(format!(
                "the tangle holds {} units no checkpoint has made final (max_pending_units = {max_pending_units}); \
                 a checkpoint must confirm some first",
                state.pending()
            )));
        }
        let header = unit.header;
        state.add(hash, &header.parents, Held { height: header.height, timestamp_ms: header.timestamp_ms })?;
        Ok(state.report(Vec::new()))
    }

    fn head(&self) -> UnitRef {
        self.state.as_ref().map(|state| state.head).unwrap_or(UnitRef {
            height: 0,
            hash: Hash32::ZERO,
            timestamp_ms: 0,
        })
    }

    fn parents(&self, unit: &[u8]) -> Result<Vec<Hash32>, PluginError> {
        Ok(self.decode_unit(unit)?.0.header.parents)
    }

    fn tips(&self) -> Vec<Hash32> {
        let mut tips = self.state.as_ref().map(|state| state.tangle.tips()).unwrap_or_default();
        tips.sort_by_key(|tip| tip.0);
        tips
    }

    fn checkpoint(&mut self, tips: &[Hash32]) -> Result<InsertReport, PluginError> {
        if tips.is_empty() || tips.len() > CHECKPOINT_TIPS_MAX {
            return Err(PluginError::rejected(format!(
                "a checkpoint names 1 to {CHECKPOINT_TIPS_MAX} tips, not {}",
                tips.len()
            )));
        }
        let state = self.state_mut()?;
        if let Some(missing) = tips.iter().find(|tip| !state.held.contains_key(tip)) {
            return Err(PluginError::rejected(format!(
                "the checkpoint names unit {missing}, which this node does not hold"
            )));
        }
        let order = state.tangle.final_order(tips, &state.finals).map_err(|missing| {
            PluginError::rejected(format!("unit {missing} under the checkpoint is not held by this node"))
        })?;
        state.finals.extend(order.iter().copied());
        if let Some(highest) =
            tips.iter().map(|tip| state.unit_ref(*tip)).max_by_key(|tip| (tip.height, std::cmp::Reverse(tip.hash.0)))
        {
            state.entry = highest.hash;
        }
        let finalized = order.into_iter().map(|hash| state.unit_ref(hash)).collect();
        Ok(state.report(finalized))
    }

    fn weight(&self, unit: Hash32) -> Option<u64> {
        let state = self.state.as_ref()?;
        state.held.contains_key(&unit).then(|| state.tangle.cumulative_weight(&unit))
    }

    fn snapshot(&self) -> Result<Vec<u8>, PluginError> {
        let state = self.state()?;
        let start = state.tangle.genesis();
        let mut units: Vec<(Hash32, Vec<Hash32>, Held)> = state
            .held
            .iter()
            .filter(|(hash, _)| **hash != start)
            .map(|(hash, held)| (*hash, state.tangle.parents(hash).unwrap_or_default().to_vec(), *held))
            .collect();
        units.sort_by_key(|(hash, _, held)| (held.height, hash.0));
        let mut finals: Vec<Hash32> = state.finals.iter().copied().collect();
        finals.sort_by_key(|hash| hash.0);
        let held_start = state.held.get(&start).copied().unwrap_or(Held { height: 0, timestamp_ms: 0 });
        let snapshot =
            Snapshot { version: SNAPSHOT_VERSION, start: (start, held_start), units, finals, entry: state.entry };
        borsh::to_vec(&snapshot).map_err(|error| PluginError::failed(format!("cannot encode snapshot: {error}")))
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), PluginError> {
        let snapshot: Snapshot =
            borsh::from_slice(bytes).map_err(|error| PluginError::rejected(format!("malformed snapshot: {error}")))?;
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(PluginError::rejected(format!(
                "unsupported snapshot version {}, expected {SNAPSHOT_VERSION}",
                snapshot.version
            )));
        }
        let (start, held_start) = snapshot.start;
        let mut state =
            State::new(UnitRef { height: held_start.height, hash: start, timestamp_ms: held_start.timestamp_ms });
        for (hash, parents, held) in &snapshot.units {
            state.add(*hash, parents, *held)?;
        }
        if let Some(unknown) =
            snapshot.finals.iter().chain([&snapshot.entry]).find(|hash| !state.held.contains_key(hash))
        {
            return Err(PluginError::rejected(format!("snapshot names unit {unknown}, which it does not hold")));
        }
        state.finals = snapshot.finals.into_iter().collect();
        state.entry = snapshot.entry;
        self.state = Some(state);
        Ok(())
    }
}
