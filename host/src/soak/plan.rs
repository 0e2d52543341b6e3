//! Draw a soak's kill schedule from its seed: which node each SIGKILL hits, at which kind
//! of moment, after how long, and how long the node stays down.
//!
//! The schedule depends on the seed and the run's shape only, never on what the nodes do,
//! so `--seed` replays the same schedule (the nodes' own timing still differs between
//! runs: the moments are real time).

use crate::rng::Rng;

/// Share of kills, in parts per million, that hit the node being restarted again, while it
/// starts or while it catches up, instead of a running node.
const FOLLOW_UP_PPM: u64 = 300_000;
/// Longest wait, in block intervals, before a kill at a steady moment.
const STEADY_DELAY_INTERVALS_MAX: u64 = 2;
/// Longest time a killed node stays down, in block intervals.
const DOWNTIME_INTERVALS_MAX: u64 = 4;
/// Time a node stays down before a restart that is killed while catching up, in block
/// intervals: long enough that it has blocks to fetch for a while (each is synced to its
/// store in turn).
const DOWNTIME_BEFORE_SYNC_INTERVALS: (u64, u64) = (10, 20);
/// Longest wait after a restarted node's first commit before a mid-sync kill.
const MID_SYNC_DELAY_MS_MAX: u64 = 20;
/// Longest wait after a restart before a kill during start-up: a debug `nestd run` takes
/// 0.5 to 1.3 s to load its plugins, open its store and serve on two busy cores, so most
/// of these kills land before it serves (from process start to the store's recovery) and
/// the others just after.
pub const START_UP_KILL_WINDOW_MS: u64 = 1_000;

/// When a kill strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Moment {
    /// At a random time while every node runs.
    Steady,
    /// As soon as the node reports a new final block: the block was just written.
    AfterCommit,
    /// While the node that was just restarted starts: loading plugins, opening the
    /// store, starting to serve.
    StartUp,
    /// While the node that was just restarted fetches the blocks it missed: right after
    /// its first commit.
    MidSync,
}

impl Moment {
    /// Whether the kill hits the node being restarted rather than a running one.
    pub fn is_follow_up(self) -> bool {
        matches!(self, Moment::StartUp | Moment::MidSync)
    }

    /// How the summary and the progress lines name it.
    pub fn describe(self) -> &'static str {
        match self {
            Moment::Steady => "steady",
            Moment::AfterCommit => "after a commit",
            Moment::StartUp => "during start-up",
            Moment::MidSync => "mid-sync",
        }
    }
}

/// One SIGKILL of the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KillPlan {
    /// Index of the node to kill (0 is node-1). A follow-up kill names the node the kill
    /// before it hit.
    pub victim: usize,
    /// When it strikes.
    pub moment: Moment,
    /// Steady: wait this long first. Start-up: this long after the restart. Mid-sync: this
    /// long after the restarted node's first commit. After a commit: unused (0).
    pub delay_ms: u64,
    /// How long the node stays down before its restart.
    pub downtime_ms: u64,
}

/// The schedule of `kills` SIGKILLs on a devnet of `nodes` nodes whose blocks come every
/// `block_interval_ms`; the first kill always hits a running node.
pub fn schedule(seed: u64, kills: u64, nodes: usize, block_interval_ms: u64) -> Vec<KillPlan> {
    let mut rng = Rng::new(seed);
    let moments: Vec<Moment> = (0..kills).map(|index| draw_moment(&mut rng, index == 0)).collect();
    let mut plans: Vec<KillPlan> = Vec::with_capacity(moments.len());
    for (index, moment) in moments.iter().enumerate() {
        let victim = match plans.last() {
            Some(previous) if moment.is_follow_up() => previous.victim,
            _ => rng.below(nodes.max(1) as u64) as usize,
        };
        let next_is_mid_sync = moments.get(index + 1) == Some(&Moment::MidSync);
        let delay_ms = draw_delay_ms(&mut rng, *moment, block_interval_ms);
        let downtime_ms = draw_downtime_ms(&mut rng, next_is_mid_sync, block_interval_ms);
        plans.push(KillPlan { victim, moment: *moment, delay_ms, downtime_ms });
    }
    plans
}

fn draw_moment(rng: &mut Rng, first: bool) -> Moment {
    let follow_up = rng.chance_ppm(FOLLOW_UP_PPM);
    let coin = rng.below(2) == 0;
    match (follow_up && !first, coin) {
        (true, true) => Moment::StartUp,
        (true, false) => Moment::MidSync,
        (false, true) => Moment::Steady,
        (false, false) => Moment::AfterCommit,
    }
}

fn draw_delay_ms(rng: &mut Rng, moment: Moment, block_interval_ms: u64) -> u64 {
    match moment {
        Moment::Steady => rng.below(block_interval_ms.saturating_mul(STEADY_DELAY_INTERVALS_MAX) + 1),
        Moment::AfterCommit => 0,
        Moment::StartUp => rng.below(START_UP_KILL_WINDOW_MS + 1),
        Moment::MidSync => rng.below(MID_SYNC_DELAY_MS_MAX + 1),
    }
}

fn draw_downtime_ms(rng: &mut Rng, next_is_mid_sync: bool, block_interval_ms: u64) -> u64 {
    let (low, high) = if next_is_mid_sync { DOWNTIME_BEFORE_SYNC_INTERVALS } else { (0, DOWNTIME_INTERVALS_MAX) };
    rng.between(block_interval_ms.saturating_mul(low), block_interval_ms.saturating_mul(high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_fixes_the_schedule() {
        assert_eq!(schedule(7, 200, 4, 300), schedule(7, 200, 4, 300));
        assert_ne!(schedule(7, 200, 4, 300), schedule(8, 200, 4, 300));
    }

    #[test]
    fn follow_ups_hit_the_node_just_killed_and_never_come_first() {
        let plans = schedule(11, 2_000, 4, 300);
        assert_eq!(plans.len(), 2_000);
        assert!(!plans[0].moment.is_follow_up());
        for pair in plans.windows(2) {
            if pair[1].moment.is_follow_up() {
                assert_eq!(pair[1].victim, pair[0].victim);
            }
        }
    }

    #[test]
    fn every_moment_and_every_node_comes_up_and_a_mid_sync_kill_follows_a_long_downtime() {
        let plans = schedule(3, 2_000, 4, 300);
        for moment in [Moment::Steady, Moment::AfterCommit, Moment::StartUp, Moment::MidSync] {
            assert!(plans.iter().any(|plan| plan.moment == moment), "{moment:?}");
        }
        for node in 0..4 {
            assert!(plans.iter().any(|plan| plan.victim == node), "node {node}");
        }
        for pair in plans.windows(2) {
            let (low, high) = if pair[1].moment == Moment::MidSync { (3_000, 6_000) } else { (0, 1_200) };
            assert!((low..=high).contains(&pair[0].downtime_ms), "{pair:?}");
        }
    }
}
