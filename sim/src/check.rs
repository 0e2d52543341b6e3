//! The invariants every run is judged by, checked as it runs.
//!
//! - **agreement**: no two honest nodes finalize different units at one height;
//! - **state**: equal state digests at equal final heights;
//! - **double-sign**: no honest key signs two conflicting messages — any node's engine
//!   reporting evidence against an honest key is proof of it (the evidence carries the
//!   two signed messages);
//! - **liveness**: after the last fault heals, every honest live node keeps finalizing:
//!   its last new final unit is within [`LIVENESS_SLOTS`] block intervals of the end.

use crate::store::MemStore;
use nest_chain::runtime::ChainRuntime;
use nest_node::store::ChainStore;
use nest_sdk::{Hash32, PublicKey};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// An honest live node must have finalized a unit within this many block intervals of
/// the end of the run (and after the last fault healed).
pub const LIVENESS_SLOTS: u64 = 16;
/// Violations kept per run (the first ones matter; the rest follow from them).
const VIOLATIONS_MAX: usize = 16;

/// The times a liveness check needs, in virtual milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug)]
pub struct LivenessTimes {
    /// Start of the run.
    pub start_ms: u64,
    /// When the last fault healed.
    pub healed_ms: u64,
    /// End of the run.
    pub end_ms: u64,
    /// Block interval.
    pub interval_ms: u64,
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The seed of the run.
    pub seed: u64,
    /// `agreement`, `state`, `double-sign`, `liveness` or `restart`.
    pub kind: String,
    /// What was seen.
    pub detail: String,
}

/// What the checker remembers of one run.
pub struct Checker {
    seed: u64,
    honest: Vec<bool>,
    honest_keys: BTreeSet<PublicKey>,
    /// The first final unit seen at each height, and the node that finalized it.
    finals: BTreeMap<u64, (Hash32, usize)>,
    /// The first state digest seen at each final height, and the node.
    digests: BTreeMap<u64, (Hash32, usize)>,
    seen_height: Vec<u64>,
    last_final_ms: Vec<u64>,
    reported: BTreeSet<(PublicKey, String)>,
    /// Offences reported against keys that are not honest (twins), distinct.
    byzantine: BTreeSet<(PublicKey, String)>,
    /// The committed height of the honest node that first reported an offence by
    /// each Byzantine key.
    first_reported: std::collections::BTreeMap<PublicKey, u64>,
    violations: Vec<Violation>,
}

impl Checker {
    /// A checker for nodes whose honesty is `honest` (by node index).
    pub fn new(seed: u64, honest: Vec<bool>, honest_keys: BTreeSet<PublicKey>) -> Self {
        let nodes = honest.len();
        Self {
            seed,
            honest,
            honest_keys,
            finals: BTreeMap::new(),
            digests: BTreeMap::new(),
            seen_height: vec![0; nodes],
            last_final_ms: vec![0; nodes],
            reported: BTreeSet::new(),
            byzantine: BTreeSet::new(),
            first_reported: Default::default(),
            violations: Vec::new(),
        }
    }

    /// Records a broken invariant.
    pub fn fail(&mut self, kind: &str, detail: String) {
        if self.violations.len() < VIOLATIONS_MAX {
            self.violations.push(Violation { seed: self.seed, kind: kind.into(), detail });
        }
    }

    /// Checks node `index` after a call into its runtime.
    pub fn observe(&mut self, index: usize, runtime: &ChainRuntime, store: &MemStore, now_ms: u64) {
        self.check_evidence(index, runtime);
        if !self.honest[index] {
            return;
        }
        let committed = runtime.committed_height();
        if committed <= self.seen_height[index] {
            return;
        }
        for height in self.seen_height[index] + 1..=committed {
            match store.block_by_height(runtime.id(), height) {
                Ok(Some(block)) => self.check_final(index, height, block.hash),
                _ => self.fail(
                    "agreement",
                    format!("node {index} reports height {committed} final but lacks block {height}"),
                ),
            }
        }
        self.seen_height[index] = committed;
        self.last_final_ms[index] = now_ms;
        self.check_digest(index, committed, runtime.state_digest());
    }

    fn check_final(&mut self, index: usize, height: u64, hash: Hash32) {
        if let Some((first, by)) = first_differing(&mut self.finals, height, hash, index) {
            self.fail(
                "agreement",
                format!("height {height}: node {by} finalized {first}, node {index} finalized {hash}"),
            );
        }
    }

    fn check_digest(&mut self, index: usize, height: u64, digest: Hash32) {
        if let Some((first, by)) = first_differing(&mut self.digests, height, digest, index) {
            self.fail("state", format!("height {height}: node {by} has state {first}, node {index} has {digest}"));
        }
    }

    fn check_evidence(&mut self, index: usize, runtime: &ChainRuntime) {
        let mut offences = Vec::new();
        for (offender, reason) in runtime.evidence() {
            if self.honest_keys.contains(offender) {
                offences.push((*offender, reason.clone()));
            } else if self.byzantine.len() < VIOLATIONS_MAX * 64 {
                self.byzantine.insert((*offender, reason.clone()));
                // Only what honest nodes saw counts: a twin's face may see its twin's
                // messages, but its own reports compete with its twin's for one nonce.
                if self.honest.get(index).copied().unwrap_or(false) {
                    self.first_reported.entry(*offender).or_insert(runtime.committed_height());
                }
            }
        }
        for (offender, reason) in offences {
            if self.reported.insert((offender, reason.clone())) {
                self.fail("double-sign", format!("node {index} holds evidence against honest {offender}: {reason}"));
            }
        }
    }

    /// Checks at the end of the run that every honest live node kept finalizing after
    /// `healed_ms`; `finals` is each node's final height (`None` when it is down). Times
    /// in the report are virtual milliseconds since `start_ms`.
    pub fn check_liveness(&mut self, finals: &[Option<u64>], times_ms: LivenessTimes) {
        let LivenessTimes { start_ms, healed_ms, end_ms, interval_ms } = times_ms;
        let due_ms = end_ms.saturating_sub(LIVENESS_SLOTS * interval_ms).max(healed_ms);
        for (index, final_height) in finals.iter().enumerate() {
            let Some(final_height) = final_height else { continue };
            if self.honest[index] && self.last_final_ms[index] < due_ms {
                let detail = format!(
                    "node {index} finalized nothing from {} ms to the end at {} ms (final height {final_height}, last new final unit at {} ms, faults healed at {} ms)",
                    due_ms - start_ms,
                    end_ms - start_ms,
                    self.last_final_ms[index].saturating_sub(start_ms),
                    healed_ms - start_ms
                );
                self.fail("liveness", detail);
            }
        }
    }

    /// The Byzantine keys some honest node's engine reported an offence of, each with
    /// the committed height of the node that reported it first.
    pub fn byzantine_offenders(&self) -> std::collections::BTreeMap<PublicKey, u64> {
        self.first_reported.clone()
    }

    /// Distinct offences reported against Byzantine keys.
    pub fn byzantine_offences(&self) -> usize {
        self.byzantine.len()
    }

    /// The violations found.
    pub fn into_violations(self) -> Vec<Violation> {
        self.violations
    }
}

/// Records `value` as seen first at `height` by node `index`, or returns the first value
/// (and its node) when it differs.
fn first_differing(
    seen: &mut BTreeMap<u64, (Hash32, usize)>,
    height: u64,
    value: Hash32,
    index: usize,
) -> Option<(Hash32, usize)> {
    let (first, by) = *seen.entry(height).or_insert((value, index));
    (first != value).then_some((first, by))
}
