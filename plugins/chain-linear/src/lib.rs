//! Order agreed units into one main chain: parent links, validation, fork choice, finality.
//!
//! A unit is a borsh-encoded [`Unit`]: a [`Header`] and its transactions. Its hash is
//! `host.hash(b"nest/unit/v1" ++ borsh(header))`. The chain type keeps the final unit
//! and a bounded tree of agreed units above it. Fork choice picks the greatest height,
//! then the lower unit hash, so every node picks the same head. Units that do not
//! descend from the final unit are pruned.
//!
//! Finality has two rules. With `finality_proposers = 0` (single-node devnets) a unit is
//! final when it is `finality_depth` units below the head on the head's branch. With
//! `finality_proposers = q > 0` a unit is final once `q` distinct authorities voted for
//! exactly that unit ([`ChainType::attest`]) and, if `finality_depth > 0`, a known unit
//! on its branch is `finality_depth` above it; its ancestors become final with it, even
//! on a branch fork choice does not prefer. Votes for descendants do not count: an
//! honest authority may vote on two branches at different heights, so only direct votes
//! make two quorums intersect in one unit (ADR 0007).
//!
//! The host computes `tx_root` and `state_digest`; this crate only carries them.

mod config;
mod unit;
mod view;

#[cfg(test)]
mod tests;

pub use config::{
    DEFAULT_MAX_PENDING_UNITS, DEFAULT_MAX_TXS_PER_UNIT, DEFAULT_MAX_UNIT_BYTES, LinearConfig, MAX_FINALITY_DEPTH,
    MIN_MAX_UNIT_BYTES,
};
pub use unit::{HEADER_BYTES, Header, UNIT_HASH_DOMAIN, UNIT_VERSION, Unit};

use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{
    BuildRequest, ChainType, ConfigError, Hash32, Host, InsertReport, PluginError, PublicKey, UnitRef, UnitView,
};
use view::{Finality, Node, View};

nest_sdk::export_plugin! {
    name: "chain-linear",
    vendor: "Nest",
    description: "A main chain: units linked to their parent, longest chain wins, final at a fixed depth.",
    chain_type: LinearChain,
}

/// Format version of [`LinearChain::snapshot`].
pub const SNAPSHOT_VERSION: u8 = 3;

/// Encoded size of one pending entry in a snapshot (key and node).
const SNAPSHOT_ENTRY_BYTES: usize = 32 + 32 + 32 + 8 + 8 + 32;

/// Encoded size of a snapshot without its pending entries (generous).
const SNAPSHOT_FIXED_BYTES: usize = 256;

/// What a snapshot holds.
#[derive(BorshSerialize, BorshDeserialize)]
struct Snapshot {
    version: u8,
    view: Option<View>,
}

/// The linear chain type: one instance per chain on a node.
pub struct LinearChain {
    config: LinearConfig,
    host: Host,
    /// `None` until [`ChainType::start`].
    view: Option<View>,
}

impl LinearChain {
    /// The configuration in force.
    pub fn config(&self) -> &LinearConfig {
        &self.config
    }

    fn view(&self) -> Result<&View, PluginError> {
        self.view.as_ref().ok_or_else(|| PluginError::rejected("the chain type has not been started"))
    }

    /// Decodes and checks a unit on its own; returns it with its hash.
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
        check_genesis_shape(header.parent, header.height)?;
        let hash = header.hash(&self.host)?;
        Ok((unit, hash))
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

    /// Decodes a unit and checks that it extends the view; returns it as a view node.
    fn validate_unit(&self, bytes: &[u8]) -> Result<(Unit, Node), PluginError> {
        let (unit, hash) = self.decode_unit(bytes)?;
        let node = node_of(&unit.header, hash);
        self.view()?.check_extends(&node)?;
        Ok((unit, node))
    }

    fn max_snapshot_bytes(&self) -> usize {
        let vote_entry_bytes =
            32usize.saturating_add(4).saturating_add(32usize.saturating_mul(self.votes_per_unit_max()));
        (self.config.max_pending_units as usize)
            .saturating_mul(SNAPSHOT_ENTRY_BYTES)
            .saturating_add(view::voted_units_max(self.config.max_pending_units).saturating_mul(vote_entry_bytes))
            .saturating_add(SNAPSHOT_FIXED_BYTES)
    }

    /// Voters kept per unit: the quorum, as no more are ever needed.
    fn votes_per_unit_max(&self) -> usize {
        self.config.finality_proposers as usize
    }
}

/// Genesis, and only genesis, has the zero parent and height 0.
fn check_genesis_shape(parent: Hash32, height: u64) -> Result<(), PluginError> {
    match (parent == Hash32::ZERO, height == 0) {
        (true, false) => Err(PluginError::rejected(format!(
            "unit at height {height} has the zero parent, which only genesis may have"
        ))),
        (false, true) => Err(PluginError::rejected("unit at height 0 (genesis) must have the zero parent")),
        _ => Ok(()),
    }
}

/// Adds an extending unit to the view, runs fork choice and finality.
fn insert_node(view: &mut View, node: Node, finality: Finality) -> Result<InsertReport, PluginError> {
    view.pending.insert(node.hash, node);
    let finalized = view.finalize_after_insert(node, finality)?;
    Ok(InsertReport { head: view.head().to_ref(), finalized: finalized.into_iter().map(Node::to_ref).collect() })
}

fn node_of(header: &Header, hash: Hash32) -> Node {
    Node {
        hash,
        parent: header.parent,
        height: header.height,
        timestamp_ms: header.timestamp_ms,
        proposer: header.proposer,
    }
}

impl ChainType for LinearChain {
    type Config = LinearConfig;

    fn check_config(config: &LinearConfig) -> Result<(), ConfigError> {
        config.check()
    }

    fn new(config: LinearConfig, host: Host) -> Result<Self, PluginError> {
        config.check()?;
        Ok(Self { config, host, view: None })
    }

    fn start(&mut self, finalized: UnitRef) -> Result<(), PluginError> {
        self.view = Some(View::new(finalized));
        Ok(())
    }

    fn build(&mut self, request: BuildRequest) -> Result<Vec<u8>, PluginError> {
        self.check_tx_count(request.txs.len())?;
        let encoded_len = Unit::encoded_len(request.txs.as_slice());
        if encoded_len > self.config.max_unit_bytes as usize {
            return Err(PluginError::rejected(format!(
                "unit would be {encoded_len} bytes, more than max_unit_bytes = {}",
                self.config.max_unit_bytes
            )));
        }
        check_genesis_shape(request.parent, request.height)?;
        let tx_count = u32::try_from(request.txs.len())
            .map_err(|_| PluginError::rejected("too many transactions for one unit"))?;
        let unit = Unit {
            header: Header {
                version: UNIT_VERSION,
                parent: request.parent,
                height: request.height,
                timestamp_ms: request.timestamp_ms,
                proposer: request.proposer,
                tx_root: request.tx_root,
                state_digest: request.state_digest,
                tx_count,
            },
            txs: request.txs.into_iter().map(|tx| tx.into_vec()).collect(),
        };
        borsh::to_vec(&unit).map_err(|error| PluginError::failed(format!("cannot encode unit: {error}")))
    }

    fn decode(&self, unit: &[u8]) -> Result<UnitView, PluginError> {
        let (unit, hash) = self.decode_unit(unit)?;
        Ok(unit.into_view(hash))
    }

    fn validate(&self, unit: &[u8]) -> Result<UnitView, PluginError> {
        let (unit, node) = self.validate_unit(unit)?;
        Ok(unit.into_view(node.hash))
    }

    fn insert(&mut self, unit: &[u8], _certificate: &[u8]) -> Result<InsertReport, PluginError> {
        let (_, hash) = self.decode_unit(unit)?;
        let view = self.view()?;
        if view.get(&hash).is_some() {
            return Ok(InsertReport { head: view.head().to_ref(), finalized: Vec::new().into() });
        }
        let (_, node) = self.validate_unit(unit)?;
        let max_pending_units = self.config.max_pending_units as usize;
        let finality = Finality { depth: self.config.finality_depth, proposers: self.config.finality_proposers };
        let view = self.view.as_mut().ok_or_else(|| PluginError::rejected("the chain type has not been started"))?;
        if view.pending.len() < max_pending_units {
            return insert_node(view, node, finality);
        }
        // A full tree still takes a unit whose finality prunes enough: try it on a copy,
        // so that a rejected insert leaves the view unchanged.
        let mut trial = view.clone();
        let report = insert_node(&mut trial, node, finality)?;
        if trial.pending.len() > max_pending_units {
            return Err(PluginError::rejected(format!(
                "pending tree is full: {} units above the final unit (max_pending_units = {max_pending_units})",
                view.pending.len()
            )));
        }
        *view = trial;
        Ok(report)
    }

    fn attest(&mut self, unit_hash: Hash32, authority: PublicKey) -> Result<InsertReport, PluginError> {
        let finality = Finality { depth: self.config.finality_depth, proposers: self.config.finality_proposers };
        let (votes_per_unit_max, voted_units_max) =
            (self.votes_per_unit_max(), view::voted_units_max(self.config.max_pending_units));
        let view = self.view.as_mut().ok_or_else(|| PluginError::rejected("the chain type has not been started"))?;
        let voted = if finality.counts_votes() {
            view.attest(unit_hash, authority, votes_per_unit_max, voted_units_max)
        } else {
            None
        };
        // A quorum on any branch makes that branch final, even one fork choice does not
        // prefer yet: the head then moves onto it, as pruning removes the rest.
        let finalized = match voted {
            Some(node) => view.finalize_after_vote(node, finality)?,
            None => Vec::new(),
        };
        Ok(InsertReport { head: view.head().to_ref(), finalized: finalized.into_iter().map(Node::to_ref).collect() })
    }

    fn head(&self) -> UnitRef {
        self.view.as_ref().map(|view| view.head().to_ref()).unwrap_or(UnitRef {
            height: 0,
            hash: Hash32::ZERO,
            timestamp_ms: 0,
        })
    }

    fn snapshot(&self) -> Result<Vec<u8>, PluginError> {
        let snapshot = Snapshot { version: SNAPSHOT_VERSION, view: self.view.clone() };
        borsh::to_vec(&snapshot).map_err(|error| PluginError::failed(format!("cannot encode snapshot: {error}")))
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), PluginError> {
        let max_bytes = self.max_snapshot_bytes();
        if bytes.len() > max_bytes {
            return Err(PluginError::rejected(format!(
                "snapshot of {} bytes is larger than {max_bytes} bytes allowed by max_pending_units = {}",
                bytes.len(),
                self.config.max_pending_units
            )));
        }
        let snapshot: Snapshot =
            borsh::from_slice(bytes).map_err(|error| PluginError::rejected(format!("malformed snapshot: {error}")))?;
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(PluginError::rejected(format!(
                "unsupported snapshot version {}, expected {SNAPSHOT_VERSION}",
                snapshot.version
            )));
        }
        if let Some(view) = &snapshot.view {
            view.check(self.config.max_pending_units)?;
        }
        self.view = snapshot.view;
        Ok(())
    }
}
