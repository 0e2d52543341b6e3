//! Fault families and the plan of faults one seed draws.

use crate::rng::Rng;
use std::fmt;
use std::str::FromStr;

/// A family of faults the simulator can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultFamily {
    /// Messages delayed by up to several block intervals, with jitter that reorders them.
    Delay,
    /// Messages lost.
    Loss,
    /// The nodes split into two groups that cannot reach each other, then heal.
    Partition,
    /// Nodes stop (losing all but their synced store) and restart later.
    Crash,
    /// One authority stops for good (at most f): the others must go on without it.
    Silence,
    /// Byzantine twins: a second node with an authority's key, the network split between them.
    Twins,
}

impl FaultFamily {
    /// Every family, in a fixed order.
    pub const ALL: [FaultFamily; 6] = [
        FaultFamily::Delay,
        FaultFamily::Loss,
        FaultFamily::Partition,
        FaultFamily::Crash,
        FaultFamily::Silence,
        FaultFamily::Twins,
    ];

    /// The name used on the command line and in package manifests.
    pub fn name(self) -> &'static str {
        match self {
            FaultFamily::Delay => "delay",
            FaultFamily::Loss => "loss",
            FaultFamily::Partition => "partition",
            FaultFamily::Crash => "crash",
            FaultFamily::Silence => "silence",
            FaultFamily::Twins => "twins",
        }
    }
}

impl fmt::Display for FaultFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultFamily {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        FaultFamily::ALL.into_iter().find(|family| family.name() == name).ok_or_else(|| {
            let known: Vec<&str> = FaultFamily::ALL.iter().map(|family| family.name()).collect();
            format!("unknown fault family `{name}` (known: {}, or all, or none)", known.join(", "))
        })
    }
}

/// Parses `--faults`: a comma-separated list, `all` (what the engine tolerates) or `none`.
pub fn parse_families(text: &str, tolerated: &[FaultFamily]) -> Result<Vec<FaultFamily>, String> {
    match text.trim() {
        "all" => Ok(tolerated.to_vec()),
        "none" | "" => Ok(Vec::new()),
        list => {
            let mut families: Vec<FaultFamily> =
                list.split(',').map(|name| name.trim().parse()).collect::<Result<_, _>>()?;
            families.sort();
            families.dedup();
            Ok(families)
        }
    }
}

/// A change of the simulated world at a point of virtual time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Extra delay on every message, up to this many milliseconds (0 ends it).
    Delay {
        /// Largest extra delay.
        extra_max_ms: u64,
    },
    /// Every message is lost with this probability (0 ends it).
    Loss {
        /// Parts per million.
        ppm: u64,
    },
    /// Nodes in different groups cannot reach each other (one group id per node).
    Partition {
        /// Group of each node.
        groups: Vec<u8>,
    },
    /// Every node reaches every other again.
    Heal,
    /// The node stops.
    Crash {
        /// Node index.
        node: usize,
    },
    /// The node starts again from its store.
    Restart {
        /// Node index.
        node: usize,
    },
}

/// The faults of one seed: timed actions, and the twins (extra nodes) it runs with.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    /// Actions by virtual time (milliseconds after the start of the run).
    pub actions: Vec<(u64, FaultAction)>,
    /// Authorities (by index) that get a twin, and the side (0 or 1) of every node.
    pub twins: Vec<usize>,
    /// When the last fault heals (Byzantine twins never do); 0 without faults.
    pub healed_at_ms: u64,
}

/// Draws the plan of one seed: every fault starts and heals inside `[window_ms.0, window_ms.1)`.
pub fn draw_plan(
    rng: &mut Rng,
    families: &[FaultFamily],
    authorities: usize,
    interval_ms: u64,
    window_ms: (u64, u64),
) -> FaultPlan {
    let mut plan = FaultPlan::default();
    let (start_ms, end_ms) = window_ms;
    let span_ms = end_ms.saturating_sub(start_ms).max(1);
    let within = |rng: &mut Rng| {
        let from = start_ms + rng.below(span_ms / 2);
        let to = from + rng.between(span_ms / 8, end_ms.saturating_sub(from).max(span_ms / 8 + 1));
        (from, to.min(end_ms))
    };
    let byzantine_max = (authorities.saturating_sub(1)) / 3;
    for family in families {
        match family {
            FaultFamily::Delay => {
                let (from, to) = within(rng);
                let extra_max_ms = rng.between(interval_ms / 2, interval_ms * 3);
                plan.actions.push((from, FaultAction::Delay { extra_max_ms }));
                plan.actions.push((to, FaultAction::Delay { extra_max_ms: 0 }));
            }
            FaultFamily::Loss => {
                let (from, to) = within(rng);
                let ppm = rng.between(50_000, 400_000);
                plan.actions.push((from, FaultAction::Loss { ppm }));
                plan.actions.push((to, FaultAction::Loss { ppm: 0 }));
            }
            FaultFamily::Partition => {
                for _ in 0..rng.between(1, 2) {
                    let (from, to) = within(rng);
                    let groups = split(rng, authorities);
                    plan.actions.push((from, FaultAction::Partition { groups }));
                    plan.actions.push((to, FaultAction::Heal));
                }
            }
            FaultFamily::Crash => {
                let crashes = rng.between(1, byzantine_max.max(1) as u64) as usize;
                let mut nodes: Vec<usize> = (0..authorities).collect();
                for _ in 0..crashes.min(authorities) {
                    let node = nodes.remove(rng.below(nodes.len() as u64) as usize);
                    let (from, to) = within(rng);
                    plan.actions.push((from, FaultAction::Crash { node }));
                    plan.actions.push((to, FaultAction::Restart { node }));
                }
            }
            FaultFamily::Silence => {
                // Never one the crash family restarts: silence is for good.
                let restarted: Vec<usize> = plan
                    .actions
                    .iter()
                    .filter_map(|(_, action)| match action {
                        FaultAction::Restart { node } => Some(*node),
                        _ => None,
                    })
                    .collect();
                let candidates: Vec<usize> = (0..authorities).filter(|node| !restarted.contains(node)).collect();
                if byzantine_max >= 1 && !candidates.is_empty() {
                    let node = candidates[rng.below(candidates.len() as u64) as usize];
                    let (from, _) = within(rng);
                    plan.actions.push((from, FaultAction::Crash { node }));
                }
            }
            FaultFamily::Twins => {
                let twins = rng.between(1, byzantine_max.max(1) as u64) as usize;
                let mut nodes: Vec<usize> = (0..authorities).collect();
                for _ in 0..twins.min(authorities) {
                    plan.twins.push(nodes.remove(rng.below(nodes.len() as u64) as usize));
                }
            }
        }
    }
    keep_faulty_within(&mut plan, byzantine_max);
    plan.actions.sort_by_key(|(at, _)| *at);
    plan.healed_at_ms = plan.actions.iter().map(|(at, _)| *at).max().unwrap_or(0);
    plan
}

/// Keeps the keys that are faulty for good — Byzantine twins and silenced authorities —
/// at most `byzantine_max` (f), the most any engine can stay live with: a silenced
/// authority beyond that budget is dropped from the plan.
fn keep_faulty_within(plan: &mut FaultPlan, byzantine_max: usize) {
    let restarted: Vec<usize> = plan
        .actions
        .iter()
        .filter_map(|(_, action)| match action {
            FaultAction::Restart { node } => Some(*node),
            _ => None,
        })
        .collect();
    let mut budget = byzantine_max.saturating_sub(plan.twins.len());
    plan.actions.retain(|(_, action)| match action {
        FaultAction::Crash { node } if !restarted.contains(node) => {
            let keep = budget > 0 && !plan.twins.contains(node);
            budget = budget.saturating_sub(usize::from(keep));
            keep
        }
        _ => true,
    });
}

/// Two non-empty groups of `nodes` (for two or more nodes).
fn split(rng: &mut Rng, nodes: usize) -> Vec<u8> {
    loop {
        let groups: Vec<u8> = (0..nodes).map(|_| (rng.next_u64() & 1) as u8).collect();
        if nodes < 2 || (groups.contains(&0) && groups.contains(&1)) {
            return groups;
        }
    }
}
