//! The chain's view: the final unit and the tree of agreed units above it.

use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{Hash32, PluginError, PublicKey, UnitRef};
use std::collections::{BTreeMap, BTreeSet};

/// What the view keeps of a unit: its position and its parent link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Node {
    /// Unit hash.
    pub hash: Hash32,
    /// Parent hash.
    pub parent: Hash32,
    /// Height.
    pub height: u64,
    /// Timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The node that proposed it.
    pub proposer: PublicKey,
}

/// Most units the view keeps votes for: the pending units and as many not seen yet.
pub fn voted_units_max(max_pending_units: u32) -> usize {
    (max_pending_units as usize).saturating_mul(2)
}

/// When units become final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finality {
    /// A unit is final only once it is at least this many units below the head (with
    /// `proposers == 0`), or below a known unit on its branch (with `proposers > 0`).
    pub depth: u32,
    /// With a value above 0 (the quorum q), a unit is final only once at least this many
    /// distinct authorities voted for exactly that unit ([`View::attest`]); votes for its
    /// descendants do not count, as an authority may vote on two branches at different
    /// heights (ADR 0007).
    pub proposers: u32,
}

impl Finality {
    /// Whether votes take part in this rule.
    pub fn counts_votes(&self) -> bool {
        self.proposers > 0
    }

    /// Direct votes a unit needs to be final.
    fn quorum(&self) -> usize {
        self.proposers as usize
    }
}

impl Node {
    /// The SDK's position of this unit.
    pub fn to_ref(self) -> UnitRef {
        UnitRef { height: self.height, hash: self.hash, timestamp_ms: self.timestamp_ms }
    }

    /// Fork choice order: greater height wins, then the lower hash.
    fn beats(&self, other: &Node) -> bool {
        (self.height, std::cmp::Reverse(self.hash)) > (other.height, std::cmp::Reverse(other.hash))
    }
}

/// The final unit and every agreed, not yet final unit that descends from it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct View {
    /// The newest final unit.
    pub final_unit: Node,
    /// Units above the final unit, keyed by hash; all descend from `final_unit`.
    pub pending: BTreeMap<Hash32, Node>,
    /// Authorities that voted for a unit, by unit hash; a vote may arrive before its unit.
    pub attesters: BTreeMap<Hash32, BTreeSet<PublicKey>>,
}

impl View {
    /// A view whose only unit is `final_unit`.
    pub fn new(final_unit: UnitRef) -> Self {
        Self {
            final_unit: Node {
                hash: final_unit.hash,
                parent: Hash32::ZERO,
                height: final_unit.height,
                timestamp_ms: final_unit.timestamp_ms,
                proposer: PublicKey::default(),
            },
            pending: BTreeMap::new(),
            attesters: BTreeMap::new(),
        }
    }

    /// The final unit or a pending unit with this hash.
    pub fn get(&self, hash: &Hash32) -> Option<&Node> {
        if *hash == self.final_unit.hash { Some(&self.final_unit) } else { self.pending.get(hash) }
    }

    /// The head chosen by fork choice: from the final unit, step to the child whose
    /// subtree holds the most authorities' latest votes (each authority counts once, for
    /// the highest pending unit it voted for); ties go to the child whose subtree reaches
    /// higher, then to the lower hash. Without votes this is the longest chain with the
    /// lower-hash tie-break.
    ///
    /// Why votes lead: an authority locked on a unit (ADR 0007) votes only on its
    /// branch, and the units whose locks can still hold lie on one branch, which holds
    /// more latest votes than any other while at most f authorities are silent. Following
    /// the votes puts every node's head there, so the locked ones can vote again and
    /// finality resumes even with an authority down for good.
    pub fn head(&self) -> Node {
        let weights = self.latest_vote_weights();
        let tips = self.subtree_tips();
        let mut children: BTreeMap<Hash32, Vec<&Node>> = BTreeMap::new();
        for node in self.pending.values() {
            children.entry(node.parent).or_default().push(node);
        }
        let mut cursor = self.final_unit;
        while let Some(next) = children.get(&cursor.hash).and_then(|nodes| {
            nodes.iter().copied().max_by_key(|node| {
                let tip = tips.get(&node.hash).copied().unwrap_or(**node);
                (weights.get(&node.hash).copied().unwrap_or(0), tip.height, std::cmp::Reverse(tip.hash))
            })
        }) {
            cursor = *next;
        }
        cursor
    }

    /// For each pending unit, how many authorities' latest votes are for it or a unit above it.
    fn latest_vote_weights(&self) -> BTreeMap<Hash32, usize> {
        let mut latest: BTreeMap<PublicKey, Node> = BTreeMap::new();
        for (hash, voters) in &self.attesters {
            let Some(node) = self.pending.get(hash) else { continue };
            for voter in voters {
                let entry = latest.entry(*voter).or_insert(*node);
                if node.beats(entry) {
                    *entry = *node;
                }
            }
        }
        let mut weights = BTreeMap::new();
        for node in latest.values() {
            self.for_each_ancestor(node, |hash| *weights.entry(hash).or_insert(0) += 1);
        }
        weights
    }

    /// For each pending unit, the best tip (greatest height, then lower hash) above it.
    fn subtree_tips(&self) -> BTreeMap<Hash32, Node> {
        let mut tips: BTreeMap<Hash32, Node> = BTreeMap::new();
        for node in self.pending.values() {
            self.for_each_ancestor(node, |hash| {
                let tip = tips.entry(hash).or_insert(*node);
                if node.beats(tip) {
                    *tip = *node;
                }
            });
        }
        tips
    }

    /// Calls `visit` with `node` and each pending ancestor of it, down to just above the
    /// final unit (bounded by the pending tree).
    fn for_each_ancestor(&self, node: &Node, mut visit: impl FnMut(Hash32)) {
        let mut cursor = Some(*node);
        let mut steps = 0;
        while let Some(unit) = cursor {
            if unit.hash == self.final_unit.hash || steps > self.pending.len() {
                break;
            }
            visit(unit.hash);
            cursor = self.pending.get(&unit.parent).copied();
            steps += 1;
        }
    }

    /// Checks that `node` extends a known unit: parent, height, timestamp.
    pub fn check_extends(&self, node: &Node) -> Result<(), PluginError> {
        let parent = self.get(&node.parent).ok_or_else(|| {
            PluginError::rejected(format!(
                "parent {} of unit at height {} is neither the final unit nor a pending unit",
                node.parent, node.height
            ))
        })?;
        if Some(node.height) != parent.height.checked_add(1) {
            return Err(PluginError::rejected(format!(
                "unit height {} does not follow its parent's height {}",
                node.height, parent.height
            )));
        }
        if node.timestamp_ms <= parent.timestamp_ms {
            return Err(PluginError::rejected(format!(
                "unit timestamp {} ms is not after its parent's timestamp {} ms",
                node.timestamp_ms, parent.timestamp_ms
            )));
        }
        Ok(())
    }

    /// Runs `rule` after `node` was inserted; returns the units that became final in
    /// ascending height order and prunes what no longer descends from the new final unit.
    pub fn finalize_after_insert(&mut self, node: Node, rule: Finality) -> Result<Vec<Node>, PluginError> {
        if !rule.counts_votes() {
            return self.finalize_by_depth(rule);
        }
        // Only `node`'s branch changed: `node` may carry early votes, and it may be the
        // unit that puts a voted ancestor `depth` below a known unit. Highest first.
        let branch = self.branch(node)?;
        let depth = u64::from(rule.depth);
        let target = branch
            .iter()
            .find(|unit| self.has_quorum(&unit.hash, rule) && node.height.saturating_sub(unit.height) >= depth);
        match target.copied() {
            Some(target) => self.finalize_through(target),
            None => Ok(Vec::new()),
        }
    }

    /// Runs `rule` after a vote for the pending unit `unit`: the unit (and so its
    /// ancestors) is final once it has a quorum of direct votes and is deep enough, even
    /// on a branch fork choice does not prefer (pruning then moves the head onto it).
    pub fn finalize_after_vote(&mut self, unit: Node, rule: Finality) -> Result<Vec<Node>, PluginError> {
        if !rule.counts_votes() || !self.has_quorum(&unit.hash, rule) || !self.is_deep_enough(unit, rule)? {
            return Ok(Vec::new());
        }
        self.finalize_through(unit)
    }

    /// The pure depth rule: the unit `depth` below the head, on the head's branch.
    fn finalize_by_depth(&mut self, rule: Finality) -> Result<Vec<Node>, PluginError> {
        let head = self.head();
        let Some(target_height) = head.height.checked_sub(u64::from(rule.depth)) else {
            return Ok(Vec::new());
        };
        match self.branch(head)?.into_iter().find(|node| node.height <= target_height) {
            Some(target) => self.finalize_through(target),
            None => Ok(Vec::new()),
        }
    }

    /// Whether at least the quorum of authorities voted for exactly this unit.
    fn has_quorum(&self, unit_hash: &Hash32, rule: Finality) -> bool {
        self.attesters.get(unit_hash).is_some_and(|voters| voters.len() >= rule.quorum())
    }

    /// Whether a known unit descending from `unit` is at least `depth` above it.
    fn is_deep_enough(&self, unit: Node, rule: Finality) -> Result<bool, PluginError> {
        let Some(tip_height) = unit.height.checked_add(u64::from(rule.depth)) else {
            return Ok(false);
        };
        if tip_height == unit.height {
            return Ok(true);
        }
        // A descendant at a greater height has an ancestor at exactly `tip_height`.
        for candidate in self.pending.values().filter(|node| node.height == tip_height) {
            if self.branch(*candidate)?.iter().any(|node| node.hash == unit.hash) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Makes `target` and its pending ancestors final; returns them in ascending height
    /// order and prunes what no longer descends from `target`.
    fn finalize_through(&mut self, target: Node) -> Result<Vec<Node>, PluginError> {
        let mut finalized = self.branch(target)?;
        finalized.reverse();
        self.final_unit = target;
        self.prune();
        Ok(finalized)
    }

    /// The pending units from `head` down to just above the final unit, head first.
    fn branch(&self, head: Node) -> Result<Vec<Node>, PluginError> {
        let mut branch = Vec::new();
        let mut cursor = head;
        while cursor.hash != self.final_unit.hash {
            branch.push(cursor);
            cursor = *self
                .get(&cursor.parent)
                .ok_or_else(|| PluginError::failed(format!("pending unit {} lost its parent", cursor.hash)))?;
        }
        Ok(branch)
    }

    /// Keeps only the pending units that descend from the final unit, and the votes for
    /// them or for units not seen yet.
    fn prune(&mut self) {
        let kept = self.descendants_of_final();
        let dropped: BTreeSet<Hash32> = self.pending.keys().filter(|hash| !kept.contains(*hash)).copied().collect();
        self.pending.retain(|hash, _| kept.contains(hash));
        let final_hash = self.final_unit.hash;
        self.attesters.retain(|hash, _| *hash != final_hash && !dropped.contains(hash));
    }

    /// Records `authority`'s vote for `unit_hash`; at most `votes_per_unit_max` voters per
    /// unit (no rule needs more) and `voted_units_max` units, so votes cannot grow the view
    /// without bound. Returns the unit if it is pending (its branch may now be final).
    pub fn attest(
        &mut self,
        unit_hash: Hash32,
        authority: PublicKey,
        votes_per_unit_max: usize,
        voted_units_max: usize,
    ) -> Option<Node> {
        if unit_hash == self.final_unit.hash {
            return None;
        }
        if !self.attesters.contains_key(&unit_hash) && self.attesters.len() >= voted_units_max {
            // Forget a vote for a unit never seen before one for a unit that is pending.
            let unseen = self.attesters.keys().find(|hash| !self.pending.contains_key(*hash)).copied()?;
            self.attesters.remove(&unseen);
        }
        let voters = self.attesters.entry(unit_hash).or_default();
        if voters.len() < votes_per_unit_max {
            voters.insert(authority);
        }
        self.pending.get(&unit_hash).copied()
    }

    /// Hashes of the pending units that descend from the final unit.
    fn descendants_of_final(&self) -> BTreeSet<Hash32> {
        let mut by_height: Vec<&Node> = self.pending.values().collect();
        by_height.sort_by_key(|node| (node.height, node.hash));
        let mut kept = BTreeSet::from([self.final_unit.hash]);
        for node in by_height {
            if node.height > self.final_unit.height && kept.contains(&node.parent) {
                kept.insert(node.hash);
            }
        }
        kept.remove(&self.final_unit.hash);
        kept
    }

    /// Checks a view read from a snapshot: bounded, keyed by hash, a tree over the final unit.
    pub fn check(&self, max_pending_units: u32) -> Result<(), PluginError> {
        if self.pending.len() > max_pending_units as usize {
            return Err(PluginError::rejected(format!(
                "snapshot holds {} pending units, more than max_pending_units = {max_pending_units}",
                self.pending.len()
            )));
        }
        if let Some((key, node)) = self.pending.iter().find(|(key, node)| **key != node.hash) {
            return Err(PluginError::rejected(format!("snapshot keys pending unit {} under {key}", node.hash)));
        }
        if self.pending.contains_key(&self.final_unit.hash) {
            return Err(PluginError::rejected("snapshot lists the final unit as pending"));
        }
        if self.attesters.len() > voted_units_max(max_pending_units) {
            return Err(PluginError::rejected(format!(
                "snapshot holds votes for {} units, more than {} allowed by max_pending_units = {max_pending_units}",
                self.attesters.len(),
                voted_units_max(max_pending_units)
            )));
        }
        let kept = self.descendants_of_final();
        if let Some(node) = self.pending.values().find(|node| !kept.contains(&node.hash)) {
            return Err(PluginError::rejected(format!(
                "snapshot pending unit {} does not descend from the final unit",
                node.hash
            )));
        }
        self.pending.values().try_for_each(|node| self.check_extends(node))
    }
}
