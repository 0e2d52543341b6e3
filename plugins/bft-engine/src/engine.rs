//! The Tendermint state machine. `docs/adr/0009-bft-engine.md` maps every line of the
//! published pseudo-code to the function here that carries it out; the line numbers in
//! comments (L22, L36, ...) are the pseudo-code's.

use crate::config::BftConfig;
use crate::log::{Added, FUTURE_PROPOSAL_ROUNDS, HeightLog, ProposalAdded, Validity};
use crate::validators::{Rotation, ValidatorSet};
use crate::wire::*;
use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{
    ConfigError, ConsensusEngine, Counter, Effect, EngineStatus, Hash32, Host, Input, LastCommit, LogLevel, Persisted,
    PluginError, PublicKey, RoundValue, UnitExpectation, Validator,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Most messages for the next height held until this node reaches it.
pub const FUTURE_MESSAGES_MAX: usize = 1024;
/// Most of those from one peer, so that one peer cannot fill the buffer and crowd out
/// the validators' messages (a validator sends its own three and relays the others').
pub const FUTURE_MESSAGES_PER_PEER_MAX: usize = 256;
/// Most validator sets remembered (the current one and changes scheduled after it).
pub const VALIDATOR_SETS_MAX: usize = 64;
/// Upon-rules evaluated at most this many times in a row for one input (each pass that
/// changes nothing ends the loop; a round change needs a few passes).
const EVALUATE_PASSES_MAX: usize = 16;
/// Format version of [`BftEngine::snapshot`].
pub const SNAPSHOT_VERSION: u8 = 2;

/// Persisted key of what this node signed at the height it is deciding ([`Signed`]).
const SIGNED_KEY: &[u8] = b"signed";
/// Persisted key of the unit this node holds as its valid value (for re-proposing it).
const VALID_UNIT_KEY: &[u8] = b"valid_unit";

/// The step of a round; `NewHeight` is the wait between a decision and round 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub enum Step {
    /// Waiting `commit_wait_ms` before round 0 of the height.
    NewHeight,
    /// Waiting for the round's proposal.
    Propose,
    /// Prevoted; waiting for 2f+1 prevotes.
    Prevote,
    /// Precommitted; waiting for a decision or the next round.
    Precommit,
}

impl Step {
    /// The name operators read.
    pub fn name(self) -> &'static str {
        match self {
            Step::NewHeight => "new_height",
            Step::Propose => "propose",
            Step::Prevote => "prevote",
            Step::Precommit => "precommit",
        }
    }
}

/// What a scheduled timeout does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
enum TimeoutKind {
    StartHeight,
    Propose,
    Prevote,
    Precommit,
}

/// Height, round, step, lock and valid value: what `Effect::Status` reports.
type Position = (u64, u32, Step, Option<(u32, Hash32)>, Option<(u32, Hash32)>);

/// A timeout: when, what, for which height and round.
type Timeout = (u64, TimeoutKind, u64, u32);

/// The committed head.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct Head {
    height: u64,
    unit_hash: Hash32,
    timestamp_ms: u64,
}

impl From<LastCommit> for Head {
    fn from(commit: LastCommit) -> Self {
        Self { height: commit.height, unit_hash: commit.unit_hash, timestamp_ms: commit.timestamp_ms }
    }
}

/// What this node signed at one height, and the lock and valid value behind it:
/// persisted before any message that depends on it leaves, handed back on restart so
/// that a restarted validator re-sends what it signed instead of signing anew.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Signed {
    /// The height.
    pub height: u64,
    /// The round this node was in.
    pub round: u32,
    /// lockedRound and lockedValue.
    pub locked: Option<(u32, Hash32)>,
    /// validRound and validValue.
    pub valid: Option<(u32, Hash32)>,
    /// Every vote this node signed at the height.
    pub votes: Vec<Vote>,
    /// Every proposal this node signed at the height.
    pub proposals: Vec<SignedProposal>,
}

/// Counters operators read (the console and the metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Stats {
    /// Rounds started, over all heights.
    pub rounds_started: u64,
    /// Heights decided.
    pub heights_decided: u64,
    /// The round in which the last height was decided.
    pub last_decided_round: u32,
    /// Timeouts fired: propose, prevote, precommit.
    pub timeouts_fired: [u64; 3],
    /// Votes received from peers: prevotes, precommits.
    pub votes_received: [u64; 2],
    /// Offences reported as evidence.
    pub evidence_reported: u64,
}

/// Everything the engine knows; what [`BftEngine::snapshot`] writes.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct EngineState {
    started: bool,
    now_ms: u64,
    head: Option<Head>,
    /// h_p: the height being decided.
    height: u64,
    /// round_p.
    round: u32,
    /// step_p.
    step: Option<Step>,
    /// lockedRound_p and lockedValue_p (`None`: −1 and nil).
    locked: Option<(u32, Hash32)>,
    /// validRound_p and validValue_p.
    valid: Option<(u32, Hash32)>,
    /// decision_p[h_p] is set: the unit went to the host as `Commit`.
    decided: bool,
    log: HeightLog,
    timeouts: BTreeSet<Timeout>,
    /// The round in which L34 (prevote timeout) fired; "for the first time".
    prevote_timer_round: Option<u32>,
    /// The round in which L47 (precommit timeout) fired.
    precommit_timer_round: Option<u32>,
    /// The round in which L36 fired.
    locked_in_round: Option<u32>,
    /// The round whose unit this node asked the host to build.
    awaiting_proposal: Option<u32>,
    signed: Signed,
    /// A persisted [`Signed`] for a height this node has not reached yet.
    restored: Option<Signed>,
    /// The unit bytes of a persisted valid value, with its height.
    restored_valid_unit: Option<(u64, Vec<u8>)>,
    /// A commit certificate for the current height (from sync or a peer) waiting for
    /// the host's check of its unit.
    certified: Option<CommitCertificate>,
    /// Messages for the next height, in arrival order, with the peer that sent each.
    future: VecDeque<(u64, PublicKey, Vec<u8>)>,
    /// The previous height's decided unit and certificate, for peers still voting there.
    last_decision: Option<(u64, Vec<u8>, CommitCertificate)>,
    decided_sent_ms: u64,
    rebroadcast_ms: u64,
    /// What the last `Effect::Status` reported: height, round, step, lock, valid value.
    reported_position: Option<Position>,
    /// Offences already reported at this height: (offender, round, what).
    reported: BTreeSet<(PublicKey, u32, u8)>,
    sets: BTreeMap<u64, ValidatorSet>,
    stats: Stats,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct Snapshot {
    version: u8,
    state: EngineState,
}

/// The BFT engine: one instance per chain on a node.
pub struct BftEngine {
    config: BftConfig,
    /// Whose turn it is to propose (weighted for BFT, in the ledger's order for DPoS).
    rotation: Rotation,
    host: Host,
    me: PublicKey,
    state: EngineState,
    /// When [`Effect::Behind`] was last emitted (not snapshotted: a rate limit only).
    behind_sent_ms: Option<u64>,
}

impl BftEngine {
    /// An engine whose proposers take turns by `rotation` (DPoS runs it in order).
    pub fn with_rotation(config: BftConfig, rotation: Rotation, host: Host) -> Result<Self, PluginError> {
        config.check()?;
        let me = host.public_key();
        Ok(Self { config, rotation, host, me, state: EngineState::default(), behind_sent_ms: None })
    }
}

fn rejected(message: impl Into<String>) -> PluginError {
    PluginError::rejected(message)
}

fn encode<T: BorshSerialize>(value: &T) -> Result<Vec<u8>, PluginError> {
    borsh::to_vec(value).map_err(|error| PluginError::failed(format!("cannot encode: {error}")))
}

/// Evidence kinds in [`EngineState::reported`].
const OFFENCE_PREVOTE: u8 = 0;
const OFFENCE_PRECOMMIT: u8 = 1;
const OFFENCE_PROPOSAL: u8 = 2;
const OFFENCE_OUT_OF_TURN: u8 = 3;

impl BftEngine {
    /// The height being decided, its round and step.
    pub fn position(&self) -> (u64, u32, Step) {
        (self.state.height, self.state.round, self.step())
    }

    /// lockedRound and lockedValue.
    pub fn locked(&self) -> Option<(u32, Hash32)> {
        self.state.locked
    }

    /// validRound and validValue.
    pub fn valid(&self) -> Option<(u32, Hash32)> {
        self.state.valid
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.state.stats
    }

    /// The validator set of `height`, if the host gave one.
    pub fn set_for(&self, height: u64) -> Option<&ValidatorSet> {
        self.state.sets.range(..=height).next_back().map(|(_, set)| set)
    }

    fn step(&self) -> Step {
        self.state.step.unwrap_or(Step::NewHeight)
    }

    fn current_set(&self) -> Result<ValidatorSet, PluginError> {
        let height = self.state.height;
        self.set_for(height).cloned().ok_or_else(|| {
            rejected(format!(
                "no validator set for height {height}: the chain's genesis must list validators (genesis.validators)"
            ))
        })
    }

    fn head(&self) -> Result<&Head, PluginError> {
        match (&self.state.head, self.state.started) {
            (Some(head), true) => Ok(head),
            _ => Err(rejected("the engine has not been started: Input::Start comes first")),
        }
    }

    fn schedule(&mut self, kind: TimeoutKind, after_ms: u64, round: u32) {
        let at_ms = self.state.now_ms.saturating_add(after_ms);
        self.state.timeouts.insert((at_ms, kind, self.state.height, round));
    }

    /// The latest the clock can read now. The engine learns the time only from ticks,
    /// and it always has one due within the re-sending interval while it votes, or
    /// within the commit wait between heights: the clock is at most that far ahead of
    /// the last tick.
    fn latest_now_ms(&self) -> u64 {
        let slack_ms = self.rebroadcast_interval_ms().max(self.config.commit_wait_ms);
        self.state.now_ms.saturating_add(slack_ms)
    }

    fn rebroadcast_interval_ms(&self) -> u64 {
        self.config.timeout_propose_ms
    }

    /// The tick the engine wants next: its earliest timeout, or the next re-sending.
    fn next_timer(&self) -> Option<Effect> {
        let timeout = self.state.timeouts.first().map(|(at_ms, ..)| *at_ms);
        let voting = self.state.started && !self.state.decided && self.step() != Step::NewHeight;
        let resend = voting.then(|| self.state.rebroadcast_ms.saturating_add(self.rebroadcast_interval_ms()));
        let at_ms = match (timeout, resend) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(Effect::TimerAt { at_ms })
    }

    /// `Effect::Status` when the height, round, step, lock or valid value changed since
    /// the last one (with the counters as they are then).
    fn status_if_changed(&mut self) -> Option<Effect> {
        if !self.state.started {
            return None;
        }
        let state = &self.state;
        let position = (state.height, state.round, self.step(), state.locked, state.valid);
        if state.reported_position == Some(position) {
            return None;
        }
        self.state.reported_position = Some(position);
        let round_value = |rv: Option<(u32, Hash32)>| rv.map(|(round, value)| RoundValue { round, value }).into();
        let stats = &self.state.stats;
        let counters = [
            ("rounds_started", stats.rounds_started),
            ("heights_decided", stats.heights_decided),
            ("timeouts_propose", stats.timeouts_fired[0]),
            ("timeouts_prevote", stats.timeouts_fired[1]),
            ("timeouts_precommit", stats.timeouts_fired[2]),
            ("prevotes_received", stats.votes_received[0]),
            ("precommits_received", stats.votes_received[1]),
            ("evidence_reported", stats.evidence_reported),
        ];
        let status = EngineStatus {
            height: position.0,
            round: position.1,
            step: position.2.name().into(),
            locked: round_value(position.3),
            valid: round_value(position.4),
            counters: counters.iter().map(|(name, value)| Counter { name: (*name).into(), value: *value }).collect(),
        };
        Some(Effect::Status { status: nest_sdk::abi_stable::std_types::RBox::new(status) })
    }

    // ---- inputs -------------------------------------------------------------------

    fn on_validators(&mut self, from_height: u64, validators: &[Validator]) -> Result<(), PluginError> {
        let set = ValidatorSet::new(from_height, validators).map_err(rejected)?;
        self.state.sets.insert(from_height, set);
        self.prune_sets();
        Ok(())
    }

    /// Forgets sets replaced before the height being decided, and the farthest changes
    /// beyond [`VALIDATOR_SETS_MAX`].
    fn prune_sets(&mut self) {
        let current = self.state.sets.range(..=self.state.height.max(1)).next_back().map(|(from, _)| *from);
        if let Some(current) = current {
            self.state.sets.retain(|from, _| *from >= current);
        }
        while self.state.sets.len() > VALIDATOR_SETS_MAX {
            self.state.sets.pop_last();
        }
    }

    fn on_start(
        &mut self,
        last_commit: LastCommit,
        now_ms: u64,
        persisted: &[Persisted],
    ) -> Result<Vec<Effect>, PluginError> {
        self.state.now_ms = now_ms;
        self.state.started = true;
        self.restore_persisted(persisted);
        let mut effects = Vec::new();
        self.enter_height(Head::from(last_commit), 0, &mut effects)?;
        Ok(effects)
    }

    /// Takes back what this node signed before a restart. A malformed entry is logged
    /// and skipped.
    fn restore_persisted(&mut self, persisted: &[Persisted]) {
        for entry in persisted {
            let key = entry.key.as_slice();
            let restored = if key == SIGNED_KEY {
                borsh::from_slice::<Signed>(&entry.bytes).map(|signed| self.state.restored = Some(signed))
            } else if key == VALID_UNIT_KEY {
                borsh::from_slice::<(u64, Vec<u8>)>(&entry.bytes)
                    .map(|unit| self.state.restored_valid_unit = Some(unit))
            } else {
                self.host.log(LogLevel::Warn, &format!("persisted consensus entry with unknown key {key:?} ignored"));
                Ok(())
            };
            if let Err(error) = restored {
                self.host.log(LogLevel::Warn, &format!("persisted consensus entry {key:?} ignored: {error}"));
            }
        }
    }

    /// Moves to the height above `head`: a fresh log and round state, round 0 after
    /// `wait_ms` (the restored round, if this node signed at that height before a
    /// restart), and the messages that arrived early for it.
    fn enter_height(&mut self, head: Head, wait_ms: u64, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        let height = head.height.saturating_add(1);
        self.state.head = Some(head);
        self.state.height = height;
        self.state.round = 0;
        self.state.step = Some(Step::NewHeight);
        self.state.locked = None;
        self.state.valid = None;
        self.state.decided = false;
        self.state.log = HeightLog::default();
        self.state.timeouts.clear();
        self.state.prevote_timer_round = None;
        self.state.precommit_timer_round = None;
        self.state.locked_in_round = None;
        self.state.awaiting_proposal = None;
        self.state.certified = None;
        self.state.reported.clear();
        self.state.signed = Signed { height, ..Signed::default() };
        self.prune_sets();
        self.take_restored();
        self.schedule(TimeoutKind::StartHeight, wait_ms, 0);
        let early: Vec<Vec<u8>> = self.drain_future(height);
        for bytes in early {
            // An early message that no longer checks out is dropped like a late one.
            if let Err(error) = self.on_message_bytes(None, &bytes, effects) {
                self.host.log(LogLevel::Debug, &format!("early message for height {height} dropped: {error}"));
            }
        }
        Ok(())
    }

    /// Applies a persisted [`Signed`] for the height just entered: the lock, the valid
    /// value, the round, and the votes signed (which count again and are re-sent
    /// instead of signing anew).
    fn take_restored(&mut self) {
        let height = self.state.height;
        let Some(restored) = self.state.restored.take_if(|signed| signed.height <= height) else { return };
        if restored.height != height {
            return;
        }
        self.state.round = restored.round;
        self.state.locked = restored.locked;
        self.state.valid = restored.valid;
        let valid_unit = self.state.restored_valid_unit.take_if(|(unit_height, _)| *unit_height == height);
        if let (Some((_, value)), Some((_, unit))) = (restored.valid, valid_unit)
            && self.host.hash(&unit) == value
        {
            self.state.log.add_unit(value, unit);
            self.state.log.set_validity(value, Validity::Valid);
        }
        for vote in &restored.votes {
            self.state.log.add_vote(vote.clone(), vote.round.max(restored.round));
        }
        self.state.signed = restored;
    }

    fn drain_future(&mut self, height: u64) -> Vec<Vec<u8>> {
        let mut now = Vec::new();
        self.state.future.retain(|(message_height, _, bytes)| {
            if *message_height == height {
                now.push(bytes.clone());
            }
            *message_height > height
        });
        now
    }

    fn on_tick(&mut self, now_ms: u64) -> Result<Vec<Effect>, PluginError> {
        self.head()?;
        self.state.now_ms = now_ms;
        let mut effects = Vec::new();
        // Sent again first, so that a vote a timeout signs now is not sent twice.
        self.rebroadcast(&mut effects)?;
        while let Some(timeout) = self.state.timeouts.first().copied() {
            if timeout.0 > now_ms {
                break;
            }
            self.state.timeouts.pop_first();
            self.fire(timeout, &mut effects)?;
        }
        self.evaluate(&mut effects)?;
        Ok(effects)
    }

    /// L57, L61, L65 (and the start of a height after its commit wait).
    fn fire(&mut self, (_, kind, height, round): Timeout, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        if height != self.state.height || self.state.decided {
            return Ok(());
        }
        let step = self.step();
        match kind {
            TimeoutKind::StartHeight if step == Step::NewHeight => {
                let round = self.state.round;
                self.start_round(round, effects)?;
            }
            // L57: OnTimeoutPropose.
            TimeoutKind::Propose if round == self.state.round && step == Step::Propose => {
                self.state.stats.timeouts_fired[0] += 1;
                self.state.step = Some(Step::Prevote);
                self.sign_vote(VoteKind::Prevote, None, effects)?;
            }
            // L61: OnTimeoutPrevote.
            TimeoutKind::Prevote if round == self.state.round && step == Step::Prevote => {
                self.state.stats.timeouts_fired[1] += 1;
                self.state.step = Some(Step::Precommit);
                self.sign_vote(VoteKind::Precommit, None, effects)?;
            }
            // L65: OnTimeoutPrecommit.
            TimeoutKind::Precommit if round == self.state.round => {
                self.state.stats.timeouts_fired[2] += 1;
                self.start_round(round.saturating_add(1), effects)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// L11: StartRound. The proposer offers its valid value if it has one, else asks the
    /// host to build a unit; everyone waits `timeout_propose` for the proposal. (The
    /// pseudo-code schedules that timeout only on non-proposers; here the proposer sets
    /// it too, which changes nothing when its proposal goes out, as it then leaves the
    /// propose step in the same call, and moves it on if the host cannot build a unit.)
    fn start_round(&mut self, round: u32, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        self.state.round = round;
        self.state.step = Some(Step::Propose);
        self.state.awaiting_proposal = None;
        self.state.rebroadcast_ms = self.state.now_ms;
        self.state.stats.rounds_started += 1;
        let timeout =
            BftConfig::timeout_ms(self.config.timeout_propose_ms, self.config.timeout_propose_delta_ms, round);
        self.schedule(TimeoutKind::Propose, timeout, round);
        let set = self.current_set()?;
        if set.proposer_by(self.rotation, self.state.height, round) != self.me {
            return Ok(());
        }
        if let Some(signed) = self.state.signed.proposals.iter().find(|proposal| proposal.round == round).cloned() {
            // Signed before a restart: send that one again, never a second one.
            return self.resend_proposal(&signed, effects);
        }
        match self.value_to_repropose(&set) {
            Some((valid_round, value, unit)) => {
                self.propose(unit, Some(valid_round), effects)?;
                self.relay_prevotes_for(valid_round, value, effects)
            }
            None => {
                let head = self.head()?.clone();
                effects.push(Effect::RequestProposal {
                    height: self.state.height,
                    parent: head.unit_hash,
                    timestamp_ms: self.state.now_ms.max(head.timestamp_ms.saturating_add(1)),
                });
                self.state.awaiting_proposal = Some(round);
                Ok(())
            }
        }
    }

    /// L14–L15, widened: the value a proposer proposes again, with its round. The
    /// pseudo-code takes validValue_p, which L36 sets only from 2f+1 prevotes of the
    /// round the node is in; a node that saw such a quorum only later (relayed proofs of
    /// lock) would propose a new value that validators locked on the old one refuse,
    /// round after round until one of them proposes (seed 1225 at 7 nodes: 27 s). So
    /// the value with 2f+1 prevotes in the highest earlier round of this height that
    /// this node holds and found valid is proposed when that round is above
    /// validRound_p. Safety does not rest on the proposer's choice: receivers accept a
    /// re-proposed value only through L28, which checks those 2f+1 prevotes themselves.
    fn value_to_repropose(&self, set: &ValidatorSet) -> Option<(u32, Hash32, Vec<u8>)> {
        let round = self.state.round;
        let log = &self.state.log;
        let proven = log.voted_rounds().into_iter().rev().filter(|voted| *voted < round).find_map(|voted| {
            let values: BTreeSet<Hash32> = log.votes(voted, VoteKind::Prevote).filter_map(|vote| vote.value).collect();
            values.into_iter().find_map(|value| {
                let quorum = set.is_quorum(log.power_for(set, voted, VoteKind::Prevote, Some(&value)));
                (quorum && log.validity(&value) == Some(Validity::Valid)).then_some((voted, value))
            })
        });
        let chosen = match (self.state.valid, proven) {
            (Some(valid), Some(proven)) if proven.0 > valid.0 => Some(proven),
            (Some(valid), _) => Some(valid),
            (None, proven) => proven,
        };
        chosen.and_then(|(valid_round, value)| log.unit(&value).map(|unit| (valid_round, value, unit.clone())))
    }

    fn on_proposal(&mut self, height: u64, unit: Vec<u8>) -> Result<Vec<Effect>, PluginError> {
        self.head()?;
        let round = self.state.round;
        if height != self.state.height || self.state.awaiting_proposal != Some(round) {
            return Err(rejected(format!("proposal for height {height} was not asked for (or no longer wanted)")));
        }
        self.state.awaiting_proposal = None;
        let mut effects = Vec::new();
        if self.step() == Step::Propose && !self.state.decided {
            self.propose(unit, None, &mut effects)?;
            self.evaluate(&mut effects)?;
        }
        Ok(effects)
    }

    /// L16–L19: signs and broadcasts ⟨PROPOSAL, h_p, round_p, proposal, validRound_p⟩,
    /// persisted first; the proposal counts for this node as received.
    fn propose(
        &mut self,
        unit: Vec<u8>,
        valid_round: Option<u32>,
        effects: &mut Vec<Effect>,
    ) -> Result<(), PluginError> {
        let (height, round) = (self.state.height, self.state.round);
        let value = self.host.hash(&unit);
        let signature = self.host.sign(&proposal_message(height, round, valid_round, &value));
        let signed = SignedProposal { height, round, valid_round, value, proposer: self.me, signature };
        self.state.signed.proposals.push(signed.clone());
        self.persist_signed(effects)?;
        // The host built this unit on its own committed state.
        self.state.log.set_validity(value, Validity::Valid);
        let _ = self.state.log.add_proposal(signed, unit.clone());
        let proposal = Proposal { height, round, valid_round, unit, proposer: self.me, signature };
        self.broadcast(Body::Proposal(proposal), effects)
    }

    fn resend_proposal(&mut self, signed: &SignedProposal, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        let Some(unit) = self.state.log.unit(&signed.value).cloned() else { return Ok(()) };
        let proposal = Proposal {
            height: signed.height,
            round: signed.round,
            valid_round: signed.valid_round,
            unit,
            proposer: signed.proposer,
            signature: signed.signature,
        };
        self.broadcast(Body::Proposal(proposal), effects)
    }

    /// Signs a vote of `kind` in the current round, persists it, counts it, and sends
    /// it; a vote this node already signed there (before a restart) is sent again
    /// instead, whatever `value` is now, so that no two of its votes ever conflict.
    fn sign_vote(
        &mut self,
        kind: VoteKind,
        value: Option<Hash32>,
        effects: &mut Vec<Effect>,
    ) -> Result<(), PluginError> {
        let (height, round) = (self.state.height, self.state.round);
        let earlier = self.state.signed.votes.iter().find(|vote| vote.kind == kind && vote.round == round).cloned();
        if let Some(vote) = earlier {
            return self.broadcast(Body::Vote(vote), effects);
        }
        if self.current_set()?.power_of(&self.me).is_none() {
            return Ok(());
        }
        let signature = self.host.sign(&vote_message(kind, height, round, value.as_ref()));
        let vote = Vote { kind, height, round, value, validator: self.me, signature };
        self.state.signed.votes.push(vote.clone());
        self.persist_signed(effects)?;
        self.state.log.add_vote(vote.clone(), round);
        self.broadcast(Body::Vote(vote), effects)
    }

    /// Stores [`Signed`] with the current round, lock and valid value; the host syncs it
    /// before the effects after it (the message it covers).
    fn persist_signed(&mut self, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        self.state.signed.round = self.state.round;
        self.state.signed.locked = self.state.locked;
        self.state.signed.valid = self.state.valid;
        effects.push(Effect::Persist { key: SIGNED_KEY.to_vec().into(), bytes: encode(&self.state.signed)?.into() });
        Ok(())
    }

    fn broadcast(&self, body: Body, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        let bytes = encode(&Envelope { sent_ms: self.state.now_ms, body })?;
        if bytes.len() > self.config.max_message_bytes as usize {
            self.host.log(
                LogLevel::Warn,
                &format!(
                    "consensus message of {} bytes not sent: larger than max_message_bytes = {}",
                    bytes.len(),
                    self.config.max_message_bytes
                ),
            );
            return Ok(());
        }
        effects.push(Effect::Broadcast { bytes: bytes.into() });
        Ok(())
    }

    /// Sends this node's proposal and votes of the current round (and the one before)
    /// again while the height is undecided, every `timeout_propose_ms`: gossip may
    /// have lost them (loss, a partition that healed, a peer that restarted), and the
    /// upon-rules assume messages between correct validators eventually arrive.
    fn rebroadcast(&mut self, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        let due = self.state.rebroadcast_ms.saturating_add(self.rebroadcast_interval_ms());
        if self.state.decided || self.step() == Step::NewHeight || self.state.now_ms < due {
            return Ok(());
        }
        self.state.rebroadcast_ms = self.state.now_ms;
        let round = self.state.round;
        let proposal = self.state.signed.proposals.iter().find(|proposal| proposal.round == round).cloned();
        if let Some(proposal) = proposal {
            self.resend_proposal(&proposal, effects)?;
        }
        let votes: Vec<Vote> = self
            .state
            .signed
            .votes
            .iter()
            .filter(|vote| vote.round == round || vote.round.saturating_add(1) == round)
            .cloned()
            .collect();
        for vote in votes {
            self.broadcast(Body::Vote(vote), effects)?;
        }
        self.relay_round_votes(effects)?;
        self.relay_proof_of_lock(effects)
    }

    /// Relays the other validators' votes of the current and previous round. The
    /// algorithm's liveness assumes gossip: a message one correct validator received
    /// reaches every correct validator. A Byzantine validator may show a vote to some
    /// only; if those votes moved some validators to a higher round (L55, f+1) or past
    /// a timeout (L34, L47) and the rest never see them, the two groups wait in
    /// different rounds for each other (the simulator, seed 5392 at 7 nodes).
    fn relay_round_votes(&self, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        let round = self.state.round;
        let rounds = [round.checked_sub(1), Some(round)];
        let relayed: Vec<Vote> = rounds
            .into_iter()
            .flatten()
            .flat_map(|voted_round| {
                [VoteKind::Prevote, VoteKind::Precommit]
                    .into_iter()
                    .flat_map(move |kind| self.state.log.votes(voted_round, kind))
            })
            .filter(|vote| vote.validator != self.me)
            .cloned()
            .collect();
        for vote in relayed {
            self.broadcast(Body::Vote(vote), effects)?;
        }
        Ok(())
    }

    /// Relays the 2f+1 prevotes that made this node's valid value valid (its proof of
    /// lock). A Byzantine validator may have shown its prevote to some validators only;
    /// a validator locked on a value by such a quorum would then wait forever for peers
    /// that never saw it to accept the value (L28 asks them for those 2f+1 prevotes).
    fn relay_proof_of_lock(&self, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        let Some((valid_round, value)) = self.state.valid else { return Ok(()) };
        self.relay_prevotes_for(valid_round, value, effects)
    }

    /// Relays the prevotes for `value` in `valid_round` this node holds.
    fn relay_prevotes_for(
        &self,
        valid_round: u32,
        value: Hash32,
        effects: &mut Vec<Effect>,
    ) -> Result<(), PluginError> {
        let prevotes: Vec<Vote> = self
            .state
            .log
            .votes(valid_round, VoteKind::Prevote)
            .filter(|vote| vote.value == Some(value))
            .cloned()
            .collect();
        for vote in prevotes {
            self.broadcast(Body::Vote(vote), effects)?;
        }
        Ok(())
    }

    fn on_message(&mut self, from: PublicKey, bytes: &[u8]) -> Result<Vec<Effect>, PluginError> {
        self.head()?;
        let mut effects = Vec::new();
        self.on_message_bytes(Some(from), bytes, &mut effects)?;
        self.evaluate(&mut effects)?;
        Ok(effects)
    }

    /// Handles one message; `from` is the peer that sent it (`None` for a message held
    /// for this height and handled now).
    fn on_message_bytes(
        &mut self,
        from: Option<PublicKey>,
        bytes: &[u8],
        effects: &mut Vec<Effect>,
    ) -> Result<(), PluginError> {
        if bytes.len() > self.config.max_message_bytes as usize {
            return Err(rejected(format!(
                "message of {} bytes exceeds max_message_bytes = {}",
                bytes.len(),
                self.config.max_message_bytes
            )));
        }
        let envelope: Envelope =
            borsh::from_slice(bytes).map_err(|error| rejected(format!("malformed BFT message: {error}")))?;
        let height = match &envelope.body {
            Body::Proposal(proposal) => proposal.height,
            Body::Vote(vote) => vote.height,
            Body::Decided { certificate, .. } => certificate.height,
            Body::ProposalSeen(signed) => signed.height,
        };
        if height < self.state.height {
            self.help_late_peer(height, effects)?;
            return Ok(());
        }
        if height > self.state.height {
            if let Some(from) = from {
                self.hold_for_next_height(height, from, bytes);
                self.note_sender_ahead(height, &envelope.body, effects);
            }
            return Ok(());
        }
        if self.state.decided {
            return Ok(());
        }
        match envelope.body {
            Body::Proposal(proposal) => self.receive_proposal(proposal, effects),
            Body::Vote(vote) => self.receive_vote(vote, effects),
            Body::Decided { unit, certificate } => self.receive_certified(unit, certificate, effects),
            Body::ProposalSeen(signed) => self.receive_proposal_seen(signed, effects),
        }
    }

    /// Messages held for the next height.
    pub fn held_for_next_height(&self) -> usize {
        self.state.future.len()
    }

    /// Holds a message of the next height until this node gets there, within the
    /// buffer's bounds overall and per peer.
    fn hold_for_next_height(&mut self, height: u64, from: PublicKey, bytes: &[u8]) {
        let future = &self.state.future;
        let next = height == self.state.height.saturating_add(1);
        let from_peer = future.iter().filter(|(_, sender, _)| *sender == from).count();
        if next && future.len() < FUTURE_MESSAGES_MAX && from_peer < FUTURE_MESSAGES_PER_PEER_MAX {
            self.state.future.push_back((height, from, bytes.to_vec()));
        }
    }

    /// A message two or more heights ahead: its sender is past blocks this node lacks,
    /// and no message of this node's height may ever come again (its peers voted
    /// there long ago). When a validator of the current set signed it, the host is told
    /// to sync from the sender, at most once per re-sending interval: a forged or
    /// replayed message costs the check of one signature and steers one sync request.
    fn note_sender_ahead(&mut self, height: u64, body: &Body, effects: &mut Vec<Effect>) {
        let due = self.behind_sent_ms.map(|sent_ms| sent_ms.saturating_add(self.rebroadcast_interval_ms()));
        if height < self.state.height.saturating_add(2) || due.is_some_and(|due_ms| self.state.now_ms < due_ms) {
            return;
        }
        let Ok(set) = self.current_set() else { return };
        let signed_by_member = match body {
            Body::Vote(vote) => set.power_of(&vote.validator).is_some() && vote_verifies(vote, &self.host),
            Body::ProposalSeen(signed) => {
                set.power_of(&signed.proposer).is_some() && proposal_verifies(signed, &self.host)
            }
            // Votes are the common case; these would cost a unit's hash or a certificate.
            Body::Proposal(_) | Body::Decided { .. } => false,
        };
        if signed_by_member {
            self.behind_sent_ms = Some(self.state.now_ms);
            effects.push(Effect::Behind { height });
        }
    }

    /// A message of the previous height: its sender still votes there, perhaps because
    /// the precommits that decided never reached it. Sends it (everyone) the decided
    /// unit and certificate, at most once per re-sending interval.
    fn help_late_peer(&mut self, height: u64, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        let due = self.state.decided_sent_ms.saturating_add(self.rebroadcast_interval_ms());
        let Some((decided_height, unit, certificate)) = self.state.last_decision.clone() else { return Ok(()) };
        if decided_height != height || self.state.now_ms < due {
            return Ok(());
        }
        self.state.decided_sent_ms = self.state.now_ms;
        self.broadcast(Body::Decided { unit, certificate }, effects)
    }

    /// A proposal of the current height: from the round's proposer, signed, with a
    /// valid round below its round; the first per round is kept (a second is evidence)
    /// and its unit goes to the host for checking.
    fn receive_proposal(&mut self, proposal: Proposal, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        let signed = SignedProposal {
            height: proposal.height,
            round: proposal.round,
            valid_round: proposal.valid_round,
            value: self.host.hash(&proposal.unit),
            proposer: proposal.proposer,
            signature: proposal.signature,
        };
        if !self.check_signed_proposal(&signed, effects)? {
            return Ok(());
        }
        let (value, unit) = (signed.value, proposal.unit);
        match self.state.log.add_proposal(signed.clone(), unit.clone()) {
            ProposalAdded::New => {
                self.report_double_proposal(&signed, effects)?;
                if signed.proposer != self.me {
                    self.broadcast(Body::ProposalSeen(signed.clone()), effects)?;
                }
                // A new unit is checked against its proposer and this node's clock; a
                // re-proposed one was built in an earlier round, by another proposer.
                let expect = match signed.valid_round {
                    None => UnitExpectation {
                        proposer: Some(signed.proposer).into(),
                        not_before_ms: 0,
                        not_after_ms: self.latest_now_ms().saturating_add(self.config.max_clock_drift_ms),
                    },
                    Some(_) => UnitExpectation::ANY,
                };
                self.check_unit(value, unit, expect, effects);
                Ok(())
            }
            ProposalAdded::Known => Ok(()),
            ProposalAdded::Conflict(_) => self.report_double_proposal(&signed, effects),
        }
    }

    /// Whether a proposal's signed facts are acceptable at this height: from the round's
    /// proposer, with a valid round below its round, signed. `Ok(false)`: a round too
    /// far ahead to keep, or (turns in order) a member's signed proposal out of its
    /// turn, which is reported as evidence rather than refused.
    fn check_signed_proposal(
        &mut self,
        signed: &SignedProposal,
        effects: &mut Vec<Effect>,
    ) -> Result<bool, PluginError> {
        let set = self.current_set()?;
        let (height, round) = (signed.height, signed.round);
        let expected = set.proposer_by(self.rotation, height, round);
        let member = set.power_of(&signed.proposer).is_some();
        if signed.proposer != expected && self.rotation == Rotation::InOrder && member {
            if !proposal_verifies(signed, &self.host) {
                return Err(rejected(format!("proposal for height {height} round {round} does not verify")));
            }
            let what = format!("a proposal out of turn (the turn of {expected})");
            let proof = encode(&Offence::OutOfTurn(signed.clone()))?;
            self.report(signed.proposer, round, OFFENCE_OUT_OF_TURN, &what, proof, effects);
            return Ok(false);
        }
        if signed.proposer != expected {
            return Err(rejected(format!(
                "proposal for height {height} round {round} from {}, but the round's proposer is {expected}",
                signed.proposer
            )));
        }
        if signed.valid_round.is_some_and(|valid_round| valid_round >= round) {
            return Err(rejected(format!("proposal for round {round} carries a valid round that is not below it")));
        }
        if round > self.state.round.saturating_add(FUTURE_PROPOSAL_ROUNDS) {
            return Ok(false);
        }
        if !proposal_verifies(signed, &self.host) {
            return Err(rejected(format!(
                "proposal for height {height} round {round} does not verify against its proposer"
            )));
        }
        Ok(true)
    }

    /// Another validator's word that it received a proposal: evidence when it differs
    /// from one this node holds or heard of; otherwise remembered for comparison.
    fn receive_proposal_seen(&mut self, signed: SignedProposal, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        if !self.check_signed_proposal(&signed, effects)? {
            return Ok(());
        }
        self.report_double_proposal(&signed, effects)?;
        self.state.log.note_seen_elsewhere(signed);
        Ok(())
    }

    /// Reports `signed` with a different proposal of its proposer and round, if any is
    /// known.
    fn report_double_proposal(
        &mut self,
        signed: &SignedProposal,
        effects: &mut Vec<Effect>,
    ) -> Result<(), PluginError> {
        let Some(first) = self.state.log.conflicting_proposal(signed).cloned() else { return Ok(()) };
        let (offender, round) = (signed.proposer, signed.round);
        let proof = Offence::DoubleProposal(DoubleProposalProof { first, second: signed.clone() });
        self.report(offender, round, OFFENCE_PROPOSAL, "two proposals", encode(&proof)?, effects);
        Ok(())
    }

    /// Asks the host to check a unit once (its answer comes as `Verified`).
    fn check_unit(&mut self, value: Hash32, unit: Vec<u8>, expect: UnitExpectation, effects: &mut Vec<Effect>) {
        if self.state.log.validity(&value).is_some() {
            return;
        }
        self.state.log.set_validity(value, Validity::Checking);
        effects.push(Effect::Verify { unit_bytes: unit.into(), expect });
    }

    /// A vote of the current height: a member's, signed; a second, different vote of the
    /// same kind and round is evidence and does not count.
    fn receive_vote(&mut self, vote: Vote, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        let set = self.current_set()?;
        if set.power_of(&vote.validator).is_none() {
            return Err(rejected(format!(
                "vote at height {} from {}, which is not a validator of that height",
                vote.height, vote.validator
            )));
        }
        if !vote_verifies(&vote, &self.host) {
            return Err(rejected(format!(
                "{} at height {} does not verify against its validator",
                vote.kind.name(),
                vote.height
            )));
        }
        let kind_index = usize::from(vote.kind == VoteKind::Precommit);
        self.state.stats.votes_received[kind_index] += 1;
        if let Added::Conflict(first) = self.state.log.add_vote(vote.clone(), self.state.round) {
            let (offence, what) = match vote.kind {
                VoteKind::Prevote => (OFFENCE_PREVOTE, "two prevotes"),
                VoteKind::Precommit => (OFFENCE_PRECOMMIT, "two precommits"),
            };
            let round = vote.round;
            let validator = vote.validator;
            let proof = Offence::DoubleVote(DoubleVoteProof { first, second: vote });
            self.report(validator, round, offence, what, encode(&proof)?, effects);
        }
        Ok(())
    }

    /// Reports an offence once per offender, round and kind.
    fn report(
        &mut self,
        offender: PublicKey,
        round: u32,
        offence: u8,
        what: &str,
        proof: Vec<u8>,
        effects: &mut Vec<Effect>,
    ) {
        if !self.state.reported.insert((offender, round, offence)) {
            return;
        }
        self.state.stats.evidence_reported += 1;
        let reason = format!("{what} at height {} round {round}", self.state.height);
        effects.push(Effect::Evidence { offender, reason: reason.into(), bytes: proof.into() });
    }

    /// A unit with a commit certificate (block sync, or a peer's `Decided`): the
    /// certificate is checked against the height's validator set, then the unit by the
    /// host; a valid one is decided.
    fn receive_certified(
        &mut self,
        unit: Vec<u8>,
        certificate: CommitCertificate,
        effects: &mut Vec<Effect>,
    ) -> Result<(), PluginError> {
        let set = self.current_set()?;
        check_certificate(&self.host, &set, self.state.height, &certificate)?;
        let value = self.host.hash(&unit);
        if value != certificate.value {
            return Err(rejected(format!(
                "the certificate for height {} is for another unit than the one it came with",
                certificate.height
            )));
        }
        self.state.log.add_unit(value, unit.clone());
        match self.state.log.validity(&value) {
            Some(Validity::Valid) => self.decide(value, certificate, effects)?,
            Some(Validity::Checking) => self.state.certified = Some(certificate),
            // Refused (or never checked): a decided unit is checked again without this
            // node's own expectations of time and proposer, only the chain's rules.
            Some(Validity::Invalid) | None => {
                self.state.certified = Some(certificate);
                self.state.log.set_validity(value, Validity::Checking);
                effects.push(Effect::Verify { unit_bytes: unit.into(), expect: UnitExpectation::ANY });
            }
        }
        Ok(())
    }

    fn on_sync(&mut self, unit: Vec<u8>, certificate: &[u8]) -> Result<Vec<Effect>, PluginError> {
        self.head()?;
        let certificate: CommitCertificate = borsh::from_slice(certificate)
            .map_err(|error| rejected(format!("malformed BFT commit certificate: {error}")))?;
        if certificate.height < self.state.height {
            return Err(rejected(format!("stale: height {} is already decided here", certificate.height)));
        }
        if certificate.height > self.state.height {
            return Err(rejected(format!(
                "synced unit for height {} while this node decides height {}",
                certificate.height, self.state.height
            )));
        }
        let mut effects = Vec::new();
        if !self.state.decided {
            self.receive_certified(unit, certificate, &mut effects)?;
        }
        Ok(effects)
    }

    fn on_verified(&mut self, value: Hash32, ok: bool) -> Result<Vec<Effect>, PluginError> {
        self.head()?;
        if self.state.log.validity(&value) != Some(Validity::Checking) {
            return Ok(Vec::new());
        }
        self.state.log.set_validity(value, if ok { Validity::Valid } else { Validity::Invalid });
        let mut effects = Vec::new();
        let certified = self.state.certified.take_if(|certificate| certificate.value == value);
        match certified {
            Some(certificate) if ok => self.decide(value, certificate, &mut effects)?,
            _ => self.evaluate(&mut effects)?,
        }
        Ok(effects)
    }

    /// decision_p[h_p] = v: the unit goes to the host with its certificate; the host
    /// answers with `Committed`, which starts the next height.
    fn decide(
        &mut self,
        value: Hash32,
        certificate: CommitCertificate,
        effects: &mut Vec<Effect>,
    ) -> Result<(), PluginError> {
        let Some(unit) = self.state.log.unit(&value).cloned() else { return Ok(()) };
        self.state.decided = true;
        self.state.stats.heights_decided += 1;
        self.state.stats.last_decided_round = certificate.round;
        let encoded = encode(&certificate)?;
        self.state.last_decision = Some((self.state.height, unit.clone(), certificate));
        effects.push(Effect::Commit { unit_bytes: unit.into(), certificate: encoded.into() });
        Ok(())
    }

    fn on_committed(&mut self, last_commit: LastCommit) -> Result<Vec<Effect>, PluginError> {
        self.head()?;
        let mut effects = Vec::new();
        if last_commit.height >= self.state.height {
            self.enter_height(Head::from(last_commit), self.config.commit_wait_ms, &mut effects)?;
            self.evaluate(&mut effects)?;
        }
        Ok(effects)
    }

    // ---- upon-rules ----------------------------------------------------------------

    /// Evaluates the upon-rules until none fires.
    fn evaluate(&mut self, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        if !self.state.started || self.state.decided {
            return Ok(());
        }
        let set = self.current_set()?;
        for _ in 0..EVALUATE_PASSES_MAX {
            let before = self.progress();
            self.rule_decide(&set, effects)?;
            if self.state.decided || self.step() == Step::NewHeight {
                return Ok(());
            }
            self.rule_skip_round(&set, effects)?;
            self.rule_proposal(&set, effects)?;
            self.rule_prevotes(&set, effects)?;
            self.rule_precommits(&set);
            if self.progress() == before {
                break;
            }
        }
        Ok(())
    }

    /// What the rules change; when a pass leaves it equal, no rule fired.
    #[allow(clippy::type_complexity)]
    fn progress(&self) -> (u32, Step, bool, Option<u32>, Option<u32>, Option<u32>, usize) {
        (
            self.state.round,
            self.step(),
            self.state.decided,
            self.state.prevote_timer_round,
            self.state.precommit_timer_round,
            self.state.locked_in_round,
            self.state.log.vote_count(),
        )
    }

    /// L49: a unit with 2f+1 precommits in some round, known valid, is decided. The
    /// pseudo-code asks for the round's PROPOSAL carrying it; here the unit's bytes may
    /// come from any proposal or a certificate, as long as they hash to the value the
    /// precommits signed (agreement is on that id).
    fn rule_decide(&mut self, set: &ValidatorSet, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        for round in self.state.log.voted_rounds() {
            for (value, power) in self.state.log.precommitted_values(set, round) {
                if !set.is_quorum(power) {
                    continue;
                }
                if self.state.log.is_valid(&value) {
                    let certificate = self.certificate(round, value);
                    return self.decide(value, certificate, effects);
                }
                if let Some(unit) = self.state.log.unit(&value).cloned() {
                    self.check_unit(value, unit, UnitExpectation::ANY, effects);
                }
            }
        }
        Ok(())
    }

    /// The precommits for `value` in `round` this node holds, in key order.
    fn certificate(&self, round: u32, value: Hash32) -> CommitCertificate {
        let signatures = self
            .state
            .log
            .votes(round, VoteKind::Precommit)
            .filter(|vote| vote.value == Some(value))
            .map(|vote| (vote.validator, vote.signature))
            .collect();
        CommitCertificate { height: self.state.height, round, value, signatures }
    }

    /// L55: f+1 of the power sent messages of a higher round: go to the highest such round.
    fn rule_skip_round(&mut self, set: &ValidatorSet, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        let current = self.state.round;
        let target = self
            .state
            .log
            .voted_rounds()
            .into_iter()
            .chain((1..=FUTURE_PROPOSAL_ROUNDS).map(|ahead| current.saturating_add(ahead)))
            .filter(|round| *round > current)
            .filter(|round| set.is_one_third(self.state.log.power_in_round(set, *round)))
            .max();
        if let Some(round) = target {
            self.start_round(round, effects)?;
        }
        Ok(())
    }

    /// L22 and L28: the round's proposal, in the propose step.
    fn rule_proposal(&mut self, set: &ValidatorSet, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        let round = self.state.round;
        if self.step() != Step::Propose {
            return Ok(());
        }
        let Some(proposal) = self.state.log.proposal(round).cloned() else { return Ok(()) };
        let value = proposal.value;
        let acceptable = match proposal.valid_round {
            // L22: a new value; prevote it unless locked on another.
            None => self.state.locked.is_none_or(|(_, locked)| locked == value),
            // L28: a value 2f+1 prevoted in round vr; prevote it if locked no later
            // than vr, or on it.
            Some(valid_round) => {
                let prevoted = self.state.log.power_for(set, valid_round, VoteKind::Prevote, Some(&value));
                if !set.is_quorum(prevoted) {
                    return Ok(());
                }
                self.state.locked.is_none_or(|(locked_round, locked)| locked_round <= valid_round || locked == value)
            }
        };
        let vote = match self.state.log.validity(&value) {
            Some(Validity::Valid) if acceptable => Some(value),
            Some(Validity::Valid) | Some(Validity::Invalid) => None,
            // valid(v) is not known yet: the rule waits for the host's answer.
            Some(Validity::Checking) | None => return Ok(()),
        };
        self.state.step = Some(Step::Prevote);
        self.sign_vote(VoteKind::Prevote, vote, effects)
    }

    /// L34, L36 and L44: prevotes of the current round.
    fn rule_prevotes(&mut self, set: &ValidatorSet, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        let round = self.state.round;
        // L34: 2f+1 prevotes of any values, first time: the prevote timeout.
        if self.step() == Step::Prevote
            && self.state.prevote_timer_round != Some(round)
            && set.is_quorum(self.state.log.power_any(set, round, VoteKind::Prevote))
        {
            self.state.prevote_timer_round = Some(round);
            let timeout =
                BftConfig::timeout_ms(self.config.timeout_prevote_ms, self.config.timeout_prevote_delta_ms, round);
            self.schedule(TimeoutKind::Prevote, timeout, round);
        }
        self.rule_lock(set, effects)?;
        // L44: 2f+1 prevotes for nil.
        if self.step() == Step::Prevote && set.is_quorum(self.state.log.power_for(set, round, VoteKind::Prevote, None))
        {
            self.state.step = Some(Step::Precommit);
            self.sign_vote(VoteKind::Precommit, None, effects)?;
        }
        Ok(())
    }

    /// L36: the round's proposal has 2f+1 prevotes and is valid, first time this round:
    /// lock on it and precommit it (in the prevote step), and take it as valid value.
    fn rule_lock(&mut self, set: &ValidatorSet, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        let round = self.state.round;
        if self.step() < Step::Prevote || self.state.locked_in_round == Some(round) {
            return Ok(());
        }
        let Some(value) = self.state.log.proposal(round).map(|proposal| proposal.value) else { return Ok(()) };
        let prevoted = self.state.log.power_for(set, round, VoteKind::Prevote, Some(&value));
        if !self.state.log.is_valid(&value) || !set.is_quorum(prevoted) {
            return Ok(());
        }
        self.state.locked_in_round = Some(round);
        let precommit = self.step() == Step::Prevote;
        if precommit {
            self.state.locked = Some((round, value));
        }
        self.state.valid = Some((round, value));
        self.persist_valid_unit(value, effects)?;
        if precommit {
            self.state.step = Some(Step::Precommit);
            self.sign_vote(VoteKind::Precommit, Some(value), effects)
        } else {
            self.persist_signed(effects)
        }
    }

    /// Stores the unit of the valid value, so that a restarted proposer can offer it.
    fn persist_valid_unit(&self, value: Hash32, effects: &mut Vec<Effect>) -> Result<(), PluginError> {
        let Some(unit) = self.state.log.unit(&value) else { return Ok(()) };
        let bytes = encode(&(self.state.height, unit))?;
        effects.push(Effect::Persist { key: VALID_UNIT_KEY.to_vec().into(), bytes: bytes.into() });
        Ok(())
    }

    /// L47: 2f+1 precommits of any values in the current round, first time: the
    /// precommit timeout.
    fn rule_precommits(&mut self, set: &ValidatorSet) {
        let round = self.state.round;
        if self.state.precommit_timer_round != Some(round)
            && set.is_quorum(self.state.log.power_any(set, round, VoteKind::Precommit))
        {
            self.state.precommit_timer_round = Some(round);
            let timeout =
                BftConfig::timeout_ms(self.config.timeout_precommit_ms, self.config.timeout_precommit_delta_ms, round);
            self.schedule(TimeoutKind::Precommit, timeout, round);
        }
    }

    fn max_snapshot_bytes(&self) -> usize {
        // The log holds at most a few units and votes per validator and round; a
        // snapshot beyond this many bytes is not one this engine wrote.
        (self.config.max_message_bytes as usize).saturating_mul(64)
    }
}

/// Checks a commit certificate against the validator set of its height: distinct
/// members, each precommit signature valid, more than two thirds of the power.
pub fn check_certificate(
    host: &Host,
    set: &ValidatorSet,
    height: u64,
    certificate: &CommitCertificate,
) -> Result<(), PluginError> {
    let members: Vec<Validator> =
        set.members().iter().map(|(key, power)| Validator { key: *key, power: *power }).collect();
    certificate
        .check(height, &members, |key, message, signature| host.verify(key, message, signature))
        .map(|_| ())
        .map_err(|error| rejected(error.to_string()))
}

impl ConsensusEngine for BftEngine {
    type Config = BftConfig;

    fn check_config(config: &BftConfig) -> Result<(), ConfigError> {
        config.check()
    }

    fn new(config: BftConfig, host: Host) -> Result<Self, PluginError> {
        Self::with_rotation(config, Rotation::Weighted, host)
    }

    fn handle(&mut self, input: Input) -> Result<Vec<Effect>, PluginError> {
        self.dispatch(input)
    }

    fn snapshot(&self) -> Result<Vec<u8>, PluginError> {
        encode(&Snapshot { version: SNAPSHOT_VERSION, state: self.state.clone() })
    }

    fn message_signatures(message: &[u8], host: &Host) -> Vec<nest_sdk::SignedBytes> {
        crate::wire::message_signatures(message, host)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), PluginError> {
        let max_bytes = self.max_snapshot_bytes();
        if bytes.len() > max_bytes {
            return Err(rejected(format!(
                "snapshot of {} bytes is larger than the {max_bytes} bytes allowed",
                bytes.len()
            )));
        }
        // The version comes first, so that another version's layout is named as such
        // rather than as malformed bytes.
        let version = bytes.first().copied().ok_or_else(|| rejected("empty snapshot"))?;
        if version != SNAPSHOT_VERSION {
            return Err(rejected(format!("unsupported snapshot version {version}, expected {SNAPSHOT_VERSION}")));
        }
        let snapshot: Snapshot =
            borsh::from_slice(bytes).map_err(|error| rejected(format!("malformed snapshot: {error}")))?;
        self.state = snapshot.state;
        Ok(())
    }
}

impl BftEngine {
    /// Hands one input to its handler and adds the tick the engine wants next.
    fn dispatch(&mut self, input: Input) -> Result<Vec<Effect>, PluginError> {
        let mut effects = match input {
            Input::Validators { from_height, validators } => {
                self.on_validators(from_height, &validators)?;
                Vec::new()
            }
            Input::Start { last_commit, now_ms, persisted } => self.on_start(last_commit, now_ms, &persisted)?,
            Input::Tick { now_ms } => self.on_tick(now_ms)?,
            Input::Message { from, bytes } => self.on_message(from, &bytes)?,
            Input::Proposal { height, unit_bytes } => self.on_proposal(height, unit_bytes.into_vec())?,
            Input::ProposalFailed { height, reason: _ } => {
                if height == self.state.height {
                    self.state.awaiting_proposal = None;
                }
                Vec::new()
            }
            Input::Verified { unit_digest, ok } => self.on_verified(unit_digest, ok)?,
            Input::Committed { last_commit } => self.on_committed(last_commit)?,
            Input::Sync { unit_bytes, certificate, finality: _ } => {
                self.on_sync(unit_bytes.into_vec(), &certificate)?
            }
            // Decided units are final at once: the fork-choice head is the last of them.
            Input::Head { .. } => Vec::new(),
        };
        effects.extend(self.next_timer());
        effects.extend(self.status_if_changed());
        Ok(effects)
    }
}
