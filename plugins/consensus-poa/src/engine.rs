//! Run the proof-of-authority state machine (the crate's plugin export lives in `lib.rs`).

// The engine's own module tree: `config` and `wire` are siblings at the crate root.
use crate::config::*;
use crate::wire::*;
use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{
    ConfigError, ConsensusEngine, Effect, Hash32, Host, Input, LastCommit, LogLevel, Persisted, PluginError, PublicKey,
    ROption, RVec, Signature, UnitExpectation,
};
use std::collections::BTreeMap;

/// Most received units kept while the host verifies them.
pub const PENDING_UNITS_MAX: usize = 32;
/// Most slots remembered for equivocation checks; the oldest is forgotten first.
pub const SEEN_SLOTS_MAX: usize = 1024;
/// Most votes remembered (own and received) for double-vote checks and lock releases;
/// when full, the received vote at the greatest height is forgotten first (own votes
/// never are: they are this node's locks).
pub const VOTES_SEEN_MAX: usize = 4096;
/// Votes more than this many heights above the final unit are refused, and this node
/// votes no higher: no honest authority can be that far ahead of the final unit.
pub const VOTE_HEIGHT_AHEAD_MAX: u64 = 1024;
/// Size of the ring of persisted own votes: the vote at height `h` is stored under
/// `b"vote/" ++ (h % VOTE_KEYS)` (u64 big endian). Own votes only exist for heights in
/// `(final, final + VOTE_HEIGHT_AHEAD_MAX]`, so a key is overwritten only once the vote
/// it held is at or below the final height, where it can no longer matter.
pub const VOTE_KEYS: u64 = VOTE_HEIGHT_AHEAD_MAX;
/// Most own votes broadcast again on one tick while finality is stalled, lowest first.
pub const VOTES_RESENT_MAX: usize = 64;
/// Format version of [`PoaEngine::snapshot`].
pub const SNAPSHOT_VERSION: u8 = 3;

/// Persisted key of the last slot this node sealed a unit for.
const PROPOSED_KEY: &[u8] = b"proposed";
/// Prefix of the persisted keys of own votes ([`VOTE_KEYS`]).
const VOTE_KEY_PREFIX: &[u8] = b"vote/";

/// Encoded size of a [`PoaMessage::Block`] without its unit bytes.
const BLOCK_ENVELOPE_BYTES: usize = 1 + 8 + 4 + Signature::LEN;

/// The committed head as the engine remembers it.
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

/// A proposal this node asked the host for and has not received yet.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct Outstanding {
    slot: u64,
    height: u64,
}

/// The first block seen for a slot.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct SeenBlock {
    unit_digest: Hash32,
    signature: Signature,
    equivocation_reported: bool,
}

/// A received block waiting for [`Input::Verified`].
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct PendingUnit {
    slot: u64,
    unit: Vec<u8>,
    signature: Signature,
}

/// Everything the engine knows; what [`PoaEngine::snapshot`] writes.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct EngineState {
    started: bool,
    head: Option<Head>,
    committed_slot: u64,
    now_ms: u64,
    last_proposed_slot: Option<u64>,
    outstanding: Option<Outstanding>,
    /// First block seen per slot, only for slots after `committed_slot`.
    seen: BTreeMap<u64, SeenBlock>,
    /// Received units by digest (`host.hash(unit)`), only for slots after `committed_slot`.
    pending: BTreeMap<Hash32, PendingUnit>,
    /// Height of the final unit.
    final_height: u64,
    /// Votes seen (this node's own included) by height and voter, above `final_height`.
    votes: BTreeMap<(u64, PublicKey), (Hash32, Signature)>,
    /// The last head's branch above `final_height`, ascending and contiguous, at most
    /// [`VOTE_HEIGHT_AHEAD_MAX`] units: what this node votes along.
    branch: Vec<Head>,
    /// When `final_height` last advanced (or the engine started), in milliseconds.
    final_advanced_ms: u64,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct Snapshot {
    version: u8,
    state: EngineState,
}

/// The proof-of-authority engine: one instance per chain on a node.
pub struct PoaEngine {
    config: PoaConfig,
    host: Host,
    me: PublicKey,
    state: EngineState,
    /// The last vote re-sent: the next round goes on after it (not persisted: a
    /// restarted engine starts again from the lowest height).
    resent_last: Option<(u64, PublicKey)>,
}

/// The answer to an input of no use here that breaks no rule ([`Effect::Ignore`]).
fn ignore(reason: String) -> Vec<Effect> {
    vec![Effect::Ignore { reason: reason.into() }]
}

fn rejected(message: impl Into<String>) -> PluginError {
    PluginError::rejected(message)
}

impl PoaEngine {
    /// The leader of `slot`.
    pub fn leader(&self, slot: u64) -> PublicKey {
        let count = self.config.authorities.len() as u64;
        let index = usize::try_from(slot % count).unwrap_or(0);
        self.config.authorities.get(index).copied().unwrap_or_default()
    }

    /// The slot that contains `time_ms`.
    pub fn slot_at(&self, time_ms: u64) -> u64 {
        time_ms / self.config.block_interval_ms
    }

    /// Whether this node's key is one of the authorities.
    pub fn is_authority(&self) -> bool {
        self.config.authorities.contains(&self.me)
    }

    fn head(&self) -> Result<&Head, PluginError> {
        match (&self.state.head, self.state.started) {
            (Some(head), true) => Ok(head),
            _ => Err(rejected("the engine has not been started: Input::Start comes first")),
        }
    }

    fn committed_slot_of(&self, head: &Head) -> u64 {
        if head.height == 0 { 0 } else { self.slot_at(head.timestamp_ms) }
    }

    fn next_timer(&self, now_ms: u64) -> Effect {
        let next_slot = self.slot_at(now_ms).saturating_add(1);
        Effect::TimerAt { at_ms: next_slot.saturating_mul(self.config.block_interval_ms) }
    }

    fn on_start(&mut self, last_commit: LastCommit, now_ms: u64, persisted: &[Persisted]) -> Vec<Effect> {
        let head = Head::from(last_commit);
        self.state.committed_slot = self.committed_slot_of(&head);
        self.state.final_height = head.height;
        self.state.head = Some(head);
        self.state.started = true;
        self.state.now_ms = now_ms;
        self.state.final_advanced_ms = now_ms;
        self.state.outstanding = None;
        self.state.branch.clear();
        self.prune();
        let mut effects = vec![self.next_timer(now_ms)];
        effects.extend(self.restore_persisted(persisted));
        effects
    }

    /// Takes back what this node signed before a restart, so that it never signs twice:
    /// its votes above the final height (counted again here) and its last sealed slot.
    /// A malformed entry is logged and skipped.
    fn restore_persisted(&mut self, persisted: &[Persisted]) -> Vec<Effect> {
        let mut effects = Vec::new();
        for entry in persisted {
            match self.restore_entry(&entry.key, &entry.bytes) {
                Ok(attest) => effects.extend(attest),
                Err(message) => self.host.log(LogLevel::Warn, &format!("persisted consensus entry ignored: {message}")),
            }
        }
        effects
    }

    fn restore_entry(&mut self, key: &[u8], bytes: &[u8]) -> Result<Option<Effect>, String> {
        if key == PROPOSED_KEY {
            let slot: u64 = borsh::from_slice(bytes).map_err(|error| format!("malformed proposed slot: {error}"))?;
            self.state.last_proposed_slot = Some(self.state.last_proposed_slot.map_or(slot, |last| last.max(slot)));
            return Ok(None);
        }
        let Some(index) = key.strip_prefix(VOTE_KEY_PREFIX) else {
            return Err(format!("unknown key {key:?}"));
        };
        let (height, unit_hash, signature): (u64, Hash32, Signature) =
            borsh::from_slice(bytes).map_err(|error| format!("malformed own vote: {error}"))?;
        if index != vote_key(height).get(VOTE_KEY_PREFIX.len()..).unwrap_or_default() {
            return Err(format!("own vote for height {height} is stored under the wrong key {key:?}"));
        }
        let final_height = self.state.final_height;
        if height <= final_height || height > final_height.saturating_add(VOTE_HEIGHT_AHEAD_MAX) {
            return Ok(None);
        }
        if !self.host.verify(&self.me, &vote_message(height, &unit_hash), &signature) {
            return Err(format!("own vote for height {height} is not signed by this node's key {}", self.me));
        }
        if !self.remember_vote(height, self.me, unit_hash, signature) {
            return Err(format!("no room for the own vote at height {height} (VOTES_SEEN_MAX)"));
        }
        Ok(Some(Effect::Attest { unit_hash, authority: self.me }))
    }

    fn on_tick(&mut self, now_ms: u64) -> Result<Vec<Effect>, PluginError> {
        let head = self.head()?.clone();
        self.state.now_ms = now_ms;
        let slot = self.slot_at(now_ms);
        let mut effects = Vec::with_capacity(2);
        if let (true, Some(height)) = (self.may_propose(slot), head.height.checked_add(1)) {
            let slot_start_ms = slot.saturating_mul(self.config.block_interval_ms);
            effects.push(Effect::RequestProposal {
                height,
                parent: head.unit_hash,
                timestamp_ms: slot_start_ms.max(head.timestamp_ms.saturating_add(1)),
            });
            self.state.outstanding = Some(Outstanding { slot, height });
            self.state.last_proposed_slot = Some(slot);
        }
        effects.extend(self.resend_votes(now_ms)?);
        effects.push(self.next_timer(now_ms));
        Ok(effects)
    }

    /// Broadcasts the votes this node knows above the final height again — its own and
    /// those it received — once finality has stalled for two slots, at most
    /// [`VOTES_RESENT_MAX`] a tick, going on where the last round stopped (lowest heights
    /// first, then round again). Gossip may have lost them (a partition, a restart), and
    /// a vote known only to nodes that saw it may be what releases another node's lock
    /// (ADR 0007): relaying the votes of an authority that is down is how the others
    /// learn them. They go as [`PoaMessage::VoteAgain`], whose bytes differ on every tick.
    fn resend_votes(&mut self, now_ms: u64) -> Result<Vec<Effect>, PluginError> {
        let stalled_ms = self.config.block_interval_ms.saturating_mul(2);
        if now_ms.saturating_sub(self.state.final_advanced_ms) < stalled_ms {
            return Ok(Vec::new());
        }
        let above_final = (self.state.final_height.saturating_add(1), PublicKey([0; 32]));
        let after_last = self.resent_last.filter(|last| *last >= above_final).map_or(above_final, |(height, voter)| {
            match voter.0.iter().rposition(|byte| *byte != 0xFF) {
                // The key right after `voter` at the same height.
                Some(_) => (height, next_key(voter)),
                None => (height.saturating_add(1), PublicKey([0; 32])),
            }
        });
        let round: Vec<((u64, PublicKey), (Hash32, Signature))> = self
            .state
            .votes
            .range(after_last..)
            .chain(self.state.votes.range(above_final..after_last))
            .take(VOTES_RESENT_MAX)
            .map(|(key, value)| (*key, *value))
            .collect();
        self.resent_last = round.last().map(|(key, _)| *key);
        round
            .into_iter()
            .map(|((height, voter), (unit_hash, signature))| {
                let vote = PoaMessage::VoteAgain { height, unit_hash, voter, signature, sent_ms: now_ms };
                Ok(Effect::Broadcast { bytes: encode(&vote)?.into() })
            })
            .collect()
    }

    /// Whether this node leads `slot` and may build on the head in it (its slot must be
    /// later than the head's, as unit timestamps increase).
    fn may_propose(&self, slot: u64) -> bool {
        let head_slot = self.state.head.as_ref().map_or(0, |head| self.committed_slot_of(head));
        self.leader(slot) == self.me
            && self.is_authority()
            && slot > self.state.committed_slot
            && slot > head_slot
            && self.state.last_proposed_slot.is_none_or(|last| slot > last)
            && self.state.outstanding.is_none()
    }

    fn on_proposal(&mut self, height: u64, unit: Vec<u8>) -> Result<Vec<Effect>, PluginError> {
        self.head()?;
        let outstanding = self.state.outstanding.clone().ok_or_else(|| {
            rejected(format!("proposal for height {height} was not asked for: no proposal is outstanding"))
        })?;
        if height != outstanding.height {
            return Err(rejected(format!(
                "proposal for height {height} was not asked for: the outstanding request is for height {}",
                outstanding.height
            )));
        }
        self.state.outstanding = None;
        let message_bytes = unit.len().saturating_add(BLOCK_ENVELOPE_BYTES);
        if message_bytes > self.config.max_message_bytes as usize {
            return Err(rejected(format!(
                "proposed unit of {} bytes does not fit in max_message_bytes = {}",
                unit.len(),
                self.config.max_message_bytes
            )));
        }
        let slot = outstanding.slot;
        let unit_digest = self.host.hash(&unit);
        let signature = self.host.sign(&seal_message(slot, &unit_digest));
        self.remember_slot(slot, unit_digest, signature);
        let certificate = encode(&Seal { slot, signer: self.me, signature })?;
        let message = encode(&PoaMessage::Block { slot, unit: unit.clone(), signature })?;
        // Stored before the block leaves, so that a restarted leader never seals a second
        // unit for this slot (the host syncs a Persist before the later effects).
        Ok(vec![
            Effect::Persist { key: PROPOSED_KEY.to_vec().into(), bytes: encode(&slot)?.into() },
            Effect::Commit { unit_bytes: unit.into(), certificate: certificate.into() },
            Effect::Broadcast { bytes: message.into() },
        ])
    }

    fn remember_slot(&mut self, slot: u64, unit_digest: Hash32, signature: Signature) {
        if self.state.seen.len() >= SEEN_SLOTS_MAX {
            self.state.seen.pop_first();
        }
        self.state.seen.insert(slot, SeenBlock { unit_digest, signature, equivocation_reported: false });
    }

    fn on_message(&mut self, bytes: &[u8]) -> Result<Vec<Effect>, PluginError> {
        self.head()?;
        if bytes.len() > self.config.max_message_bytes as usize {
            return Err(rejected(format!(
                "message of {} bytes exceeds max_message_bytes = {}",
                bytes.len(),
                self.config.max_message_bytes
            )));
        }
        let message: PoaMessage =
            borsh::from_slice(bytes).map_err(|error| rejected(format!("malformed PoA message: {error}")))?;
        match message {
            PoaMessage::Block { slot, unit, signature } => self.receive_block(slot, unit, signature),
            PoaMessage::Vote { height, unit_hash, voter, signature }
            | PoaMessage::VoteAgain { height, unit_hash, voter, signature, sent_ms: _ } => {
                self.receive_vote(height, unit_hash, voter, signature)
            }
        }
    }

    /// Checks a vote: an authority's, signed, for a height not yet final and not far
    /// ahead, and the first of that authority at that height (a second, different one is
    /// evidence). A checked vote goes to the chain type's finality rule.
    fn receive_vote(
        &mut self,
        height: u64,
        unit_hash: Hash32,
        voter: PublicKey,
        signature: Signature,
    ) -> Result<Vec<Effect>, PluginError> {
        if !self.config.authorities.contains(&voter) {
            return Err(rejected(format!("vote from {voter}, which is not an authority")));
        }
        if height > self.state.final_height.saturating_add(VOTE_HEIGHT_AHEAD_MAX) {
            return Err(rejected(format!(
                "vote for height {height} is more than {VOTE_HEIGHT_AHEAD_MAX} heights above the final height {}",
                self.state.final_height
            )));
        }
        if !self.host.verify(&voter, &vote_message(height, &unit_hash), &signature) {
            return Err(rejected(format!("vote for height {height} does not verify against its voter {voter}")));
        }
        if height <= self.state.final_height {
            return Ok(Vec::new());
        }
        match self.state.votes.get(&(height, voter)) {
            Some((seen, _)) if *seen == unit_hash => Ok(Vec::new()),
            Some((seen, seen_signature)) => {
                let proof =
                    DoubleVoteProof { voter, height, first: (*seen, *seen_signature), second: (unit_hash, signature) };
                Ok(vec![Effect::Evidence {
                    offender: voter,
                    reason: format!("two votes at height {height}").into(),
                    bytes: encode(&proof)?.into(),
                }])
            }
            None => {
                // A vote with no room left still counts: forgetting it only weakens
                // double-vote checks and lock releases, never safety.
                self.remember_vote(height, voter, unit_hash, signature);
                let mut effects: Vec<Effect> = self.certify_if_quorum(height, &unit_hash)?.into_iter().collect();
                effects.push(Effect::Attest { unit_hash, authority: voter });
                if self.own_vote(height).is_some_and(|own| own != unit_hash) {
                    // It may release this node's lock at `height`.
                    effects.extend(self.vote_on_branch()?);
                }
                Ok(effects)
            }
        }
    }

    /// Remembers a vote within [`VOTES_SEEN_MAX`]; returns whether it was kept. When
    /// full, the received vote at the greatest height makes room if it is above this one:
    /// low heights hold the locks to release next. Own votes are never dropped.
    fn remember_vote(&mut self, height: u64, voter: PublicKey, unit_hash: Hash32, signature: Signature) -> bool {
        if self.state.votes.len() >= VOTES_SEEN_MAX {
            let me = self.me;
            let highest_received = self.state.votes.keys().rev().find(|(_, key)| *key != me).copied();
            match highest_received {
                Some(key) if voter == me || key.0 > height => self.state.votes.remove(&key),
                _ => return false,
            };
        }
        self.state.votes.insert((height, voter), (unit_hash, signature));
        true
    }

    /// The unit this node voted for at `height`, if any.
    fn own_vote(&self, height: u64) -> Option<Hash32> {
        self.state.votes.get(&(height, self.me)).map(|(unit_hash, _)| *unit_hash)
    }

    /// Quorum: floor(2n/3) + 1 of the n authorities.
    fn quorum(&self) -> usize {
        self.config.authorities.len() * 2 / 3 + 1
    }

    /// Whether this node's vote for `unit_hash` at `height` is released: more than
    /// n − q authorities are known to have voted for another unit there, so (honest
    /// authorities voting once per height) it can never gather a quorum.
    fn is_released(&self, height: u64, unit_hash: &Hash32) -> bool {
        let others = self
            .state
            .votes
            .range((height, PublicKey([0; 32]))..=(height, PublicKey([0xFF; 32])))
            .filter(|(_, (voted, _))| voted != unit_hash)
            .count();
        others > self.config.authorities.len().saturating_sub(self.quorum())
    }

    /// Votes along the remembered branch, lowest height first, once per height (ADR
    /// 0007). A unit at height h may get this node's vote only if every own vote at a
    /// height h' in (final, h) is for the branch's unit at h' or is released; the walk
    /// stops at the first height that fails, as every higher one fails too.
    fn vote_on_branch(&mut self) -> Result<Vec<Effect>, PluginError> {
        let final_height = self.state.final_height;
        let Some(first_height) = self.state.branch.first().map(|unit| unit.height) else {
            return Ok(Vec::new());
        };
        // Own votes below the branch have no unit on it to match: they must be released.
        if !self.is_authority() || !self.own_votes_released_below(first_height) {
            return Ok(Vec::new());
        }
        let mut effects = Vec::new();
        for unit in self.state.branch.clone() {
            if unit.height <= final_height {
                continue;
            }
            if unit.height > final_height.saturating_add(VOTE_HEIGHT_AHEAD_MAX) {
                break;
            }
            match self.own_vote(unit.height) {
                None => effects.extend(self.cast_vote(&unit)?),
                Some(voted) if voted == unit.unit_hash || self.is_released(unit.height, &voted) => {}
                Some(_) => break,
            }
        }
        Ok(effects)
    }

    /// Whether every own vote above the final height and below `height` is released.
    fn own_votes_released_below(&self, height: u64) -> bool {
        let final_height = self.state.final_height;
        self.state
            .votes
            .iter()
            .filter(|((voted_height, voter), _)| {
                *voter == self.me && *voted_height > final_height && *voted_height < height
            })
            .all(|((voted_height, _), (voted, _))| self.is_released(*voted_height, voted))
    }

    /// Signs a vote for `unit`, stores it, and broadcasts it only after it is persisted.
    fn cast_vote(&mut self, unit: &Head) -> Result<Vec<Effect>, PluginError> {
        let signature = self.host.sign(&vote_message(unit.height, &unit.unit_hash));
        let stored = encode(&(unit.height, unit.unit_hash, signature))?;
        let vote = PoaMessage::Vote { height: unit.height, unit_hash: unit.unit_hash, voter: self.me, signature };
        let message = encode(&vote)?;
        if !self.remember_vote(unit.height, self.me, unit.unit_hash, signature) {
            return Ok(Vec::new());
        }
        let mut effects = vec![
            Effect::Persist { key: vote_key(unit.height).into(), bytes: stored.into() },
            Effect::Broadcast { bytes: message.into() },
        ];
        effects.extend(self.certify_if_quorum(unit.height, &unit.unit_hash)?);
        effects.push(Effect::Attest { unit_hash: unit.unit_hash, authority: self.me });
        Ok(effects)
    }

    /// A block fetched by sync: its certificate is the seal its leader signed.
    fn on_sync(&mut self, unit: Vec<u8>, certificate: &[u8], finality: &[u8]) -> Result<Vec<Effect>, PluginError> {
        self.head()?;
        if unit.len() > self.config.max_message_bytes as usize {
            return Err(rejected(format!(
                "synced unit of {} bytes exceeds max_message_bytes = {}",
                unit.len(),
                self.config.max_message_bytes
            )));
        }
        let seal: Seal =
            borsh::from_slice(certificate).map_err(|error| rejected(format!("malformed PoA certificate: {error}")))?;
        if seal.signer != self.leader(seal.slot) {
            return Err(rejected(format!("certificate for slot {} is not signed by that slot's leader", seal.slot)));
        }
        let proof = self.check_finality_proof(finality)?;
        let mut effects = self.receive_block(seal.slot, unit, seal.signature)?;
        if let Some(proof) = proof {
            for (voter, signature) in proof.votes {
                effects.extend(self.receive_vote(proof.height, proof.unit_hash, voter, signature)?);
            }
        }
        Ok(effects)
    }

    /// Decodes and checks a synced block's finality proof: at most one vote per
    /// authority, each signed; `None` when the serving node had none.
    fn check_finality_proof(&self, finality: &[u8]) -> Result<Option<FinalityProof>, PluginError> {
        if finality.is_empty() {
            return Ok(None);
        }
        let authorities = self.config.authorities.len();
        let max_bytes = 8 + 32 + 4 + authorities.saturating_mul(32 + 64);
        if finality.len() > max_bytes {
            return Err(rejected(format!(
                "finality proof of {} bytes is larger than {max_bytes} bytes for {authorities} authorities",
                finality.len()
            )));
        }
        let proof: FinalityProof =
            borsh::from_slice(finality).map_err(|error| rejected(format!("malformed finality proof: {error}")))?;
        let mut voters = std::collections::BTreeSet::new();
        let message = vote_message(proof.height, &proof.unit_hash);
        for (voter, signature) in &proof.votes {
            if !self.config.authorities.contains(voter) || !voters.insert(*voter) {
                return Err(rejected(format!(
                    "finality proof at height {}: {voter} is not a distinct authority",
                    proof.height
                )));
            }
            if !self.host.verify(voter, &message, signature) {
                return Err(rejected(format!(
                    "finality proof at height {}: the vote of {voter} does not verify",
                    proof.height
                )));
            }
        }
        if voters.len() < self.quorum() {
            return Err(rejected(format!(
                "finality proof at height {} holds {} votes, fewer than the quorum {}",
                proof.height,
                voters.len(),
                self.quorum()
            )));
        }
        Ok(Some(proof))
    }

    /// The proof that `unit_hash` is final, once a quorum of the votes this node knows at
    /// `height` are for it (emitted once: when the quorum is first reached).
    fn certify_if_quorum(&self, height: u64, unit_hash: &Hash32) -> Result<Option<Effect>, PluginError> {
        let votes: Vec<(PublicKey, Signature)> = self
            .state
            .votes
            .range((height, PublicKey([0; 32]))..=(height, PublicKey([0xFF; 32])))
            .filter(|(_, (voted, _))| voted == unit_hash)
            .map(|((_, voter), (_, signature))| (*voter, *signature))
            .collect();
        if votes.len() != self.quorum() {
            return Ok(None);
        }
        let proof = FinalityProof { height, unit_hash: *unit_hash, votes };
        Ok(Some(Effect::Certify { unit_hash: *unit_hash, proof: encode(&proof)?.into() }))
    }

    /// Checks a block's slot and seal; verifies it unless its slot already had one.
    fn receive_block(&mut self, slot: u64, unit: Vec<u8>, signature: Signature) -> Result<Vec<Effect>, PluginError> {
        if slot <= self.state.committed_slot {
            let committed = self.state.committed_slot;
            return Ok(ignore(format!("block for slot {slot} is stale: the committed slot is {committed}")));
        }
        let leader = self.leader(slot);
        let unit_digest = self.host.hash(&unit);
        if !self.host.verify(&leader, &seal_message(slot, &unit_digest), &signature) {
            return Err(rejected(format!(
                "seal of the block for slot {slot} does not verify against the slot leader {leader}"
            )));
        }
        // Sealed by its leader: a clock ahead of this node's, not a broken rule.
        if let Some(reason) = self.slot_not_started(slot) {
            return Ok(ignore(reason));
        }
        if let Some(seen) = self.state.seen.get_mut(&slot) {
            return Ok(seen_again(seen, slot, leader, unit_digest, signature));
        }
        self.accept_block(slot, unit, unit_digest, signature)
    }

    /// Why a block for `slot` cannot be taken yet: the slot starts after this node's
    /// clock plus the allowed drift.
    fn slot_not_started(&self, slot: u64) -> Option<String> {
        let latest_ms = self.state.now_ms.saturating_add(self.config.max_clock_drift_ms);
        let starts_ms = slot.checked_mul(self.config.block_interval_ms);
        starts_ms.is_none_or(|starts_ms| starts_ms > latest_ms).then(|| {
            format!("block for slot {slot} is from the future: the slot starts after {latest_ms} ms (now plus max_clock_drift_ms)")
        })
    }

    fn accept_block(
        &mut self,
        slot: u64,
        unit: Vec<u8>,
        unit_digest: Hash32,
        signature: Signature,
    ) -> Result<Vec<Effect>, PluginError> {
        if self.state.pending.len() >= PENDING_UNITS_MAX {
            return Ok(ignore(format!(
                "block for slot {slot} dropped: {PENDING_UNITS_MAX} units already await verification (PENDING_UNITS_MAX)"
            )));
        }
        self.remember_slot(slot, unit_digest, signature);
        if self.state.pending.contains_key(&unit_digest) {
            return Ok(Vec::new());
        }
        self.state.pending.insert(unit_digest, PendingUnit { slot, unit: unit.clone(), signature });
        Ok(vec![Effect::Verify { unit_bytes: unit.into(), expect: self.expectation(slot) }])
    }

    /// What a unit sealed for `slot` must say: the slot leader as proposer, a timestamp
    /// inside the slot. Binds the seal to the header, not only to the bytes.
    fn expectation(&self, slot: u64) -> UnitExpectation {
        let interval_ms = self.config.block_interval_ms;
        UnitExpectation {
            proposer: ROption::RSome(self.leader(slot)),
            not_before_ms: slot.saturating_mul(interval_ms),
            not_after_ms: slot.saturating_add(1).saturating_mul(interval_ms).saturating_sub(1),
        }
    }

    fn on_verified(&mut self, unit_digest: Hash32, ok: bool) -> Result<Vec<Effect>, PluginError> {
        self.head()?;
        let Some(pending) = self.state.pending.remove(&unit_digest) else {
            return Ok(Vec::new());
        };
        if !ok {
            // The unit may only lack its parent (a node catching up): let the same block
            // be checked again when it comes back, by gossip or sync.
            if self.state.seen.get(&pending.slot).is_some_and(|seen| seen.unit_digest == unit_digest) {
                self.state.seen.remove(&pending.slot);
            }
            return Ok(Vec::new());
        }
        if pending.slot <= self.state.committed_slot {
            return Ok(Vec::new());
        }
        let certificate =
            encode(&Seal { slot: pending.slot, signer: self.leader(pending.slot), signature: pending.signature })?;
        Ok(vec![Effect::Commit { unit_bytes: pending.unit.into(), certificate: certificate.into() }])
    }

    /// Units up to `last_commit` are final: blocks at or below its slot are stale.
    fn on_committed(&mut self, last_commit: LastCommit) -> Result<Vec<Effect>, PluginError> {
        let head = self.head()?.clone();
        let final_unit = Head::from(last_commit);
        self.state.committed_slot = self.committed_slot_of(&final_unit);
        if final_unit.height > self.state.final_height {
            self.state.final_height = final_unit.height;
            self.state.final_advanced_ms = self.state.now_ms;
        }
        let stale = self.state.outstanding.as_ref().is_some_and(|outstanding| {
            outstanding.slot <= self.state.committed_slot || outstanding.height <= final_unit.height
        });
        if stale {
            self.state.outstanding = None;
        }
        if head.height < final_unit.height {
            self.state.head = Some(final_unit);
        }
        self.prune();
        Ok(Vec::new())
    }

    /// The host could not build the proposal asked for: stop waiting for it.
    fn on_proposal_failed(&mut self, height: u64) -> Vec<Effect> {
        if self.state.outstanding.as_ref().is_some_and(|outstanding| outstanding.height == height) {
            self.state.outstanding = None;
        }
        Vec::new()
    }

    /// Fork choice moved the head: the next proposal builds on it, and this node votes
    /// along its branch.
    fn on_head(&mut self, head: LastCommit, branch: RVec<LastCommit>) -> Result<Vec<Effect>, PluginError> {
        self.head()?;
        let head = Head::from(head);
        let stale = self.state.outstanding.as_ref().is_some_and(|outstanding| outstanding.height != head.height + 1);
        if stale {
            self.state.outstanding = None;
        }
        self.state.head = Some(head);
        self.remember_branch(branch);
        self.vote_on_branch()
    }

    /// Keeps the branch's units above the final height, at most [`VOTE_HEIGHT_AHEAD_MAX`]
    /// of them; a branch whose heights do not follow each other is not voted on.
    fn remember_branch(&mut self, branch: RVec<LastCommit>) {
        let final_height = self.state.final_height;
        let units: Vec<Head> = branch
            .into_iter()
            .filter(|unit| unit.height > final_height)
            .take(VOTE_HEIGHT_AHEAD_MAX as usize)
            .map(Head::from)
            .collect();
        let contiguous = units.windows(2).all(|pair| pair[0].height.checked_add(1) == Some(pair[1].height));
        if !contiguous {
            self.host.log(LogLevel::Warn, "head branch with heights that do not follow each other: not voted on");
            self.state.branch = Vec::new();
            return;
        }
        self.state.branch = units;
    }

    /// Forgets slots and units at or below the committed slot: they can no longer commit.
    fn prune(&mut self) {
        let committed_slot = self.state.committed_slot;
        self.state.seen.retain(|slot, _| *slot > committed_slot);
        self.state.pending.retain(|_, pending| pending.slot > committed_slot);
        let final_height = self.state.final_height;
        self.state.votes.retain(|(height, _), _| *height > final_height);
        self.state.branch.retain(|unit| unit.height > final_height);
    }

    fn max_snapshot_bytes(&self) -> usize {
        let unit_bytes = (self.config.max_message_bytes as usize).saturating_add(128);
        PENDING_UNITS_MAX
            .saturating_mul(unit_bytes)
            .saturating_add(SEEN_SLOTS_MAX.saturating_mul(128))
            .saturating_add(VOTES_SEEN_MAX.saturating_mul(8 + 32 + 32 + 64))
            .saturating_add((VOTE_HEIGHT_AHEAD_MAX as usize).saturating_mul(8 + 32 + 8))
            .saturating_add(1024)
    }

    fn check_state(&self, state: &EngineState) -> Result<(), PluginError> {
        if state.votes.len() > VOTES_SEEN_MAX {
            return Err(rejected(format!("snapshot holds {} votes, more than {VOTES_SEEN_MAX}", state.votes.len())));
        }
        if state.branch.len() > VOTE_HEIGHT_AHEAD_MAX as usize {
            return Err(rejected(format!(
                "snapshot holds a branch of {} units, more than {VOTE_HEIGHT_AHEAD_MAX}",
                state.branch.len()
            )));
        }
        if state.pending.len() > PENDING_UNITS_MAX || state.seen.len() > SEEN_SLOTS_MAX {
            return Err(rejected(format!(
                "snapshot holds {} pending units and {} seen slots, more than {PENDING_UNITS_MAX} and {SEEN_SLOTS_MAX}",
                state.pending.len(),
                state.seen.len()
            )));
        }
        if state.started != state.head.is_some() {
            return Err(rejected("snapshot is started without a head, or the reverse"));
        }
        for (digest, pending) in &state.pending {
            if self.host.hash(&pending.unit) != *digest {
                return Err(rejected(format!(
                    "snapshot pending unit for slot {} does not match its digest {digest}",
                    pending.slot
                )));
            }
            if pending.slot <= state.committed_slot {
                return Err(rejected(format!(
                    "snapshot pending unit for slot {} is not after the committed slot {}",
                    pending.slot, state.committed_slot
                )));
            }
        }
        Ok(())
    }
}

/// A second block for a slot already seen: a duplicate, or equivocation by its leader.
fn seen_again(
    seen: &mut SeenBlock,
    slot: u64,
    leader: PublicKey,
    unit_digest: Hash32,
    signature: Signature,
) -> Vec<Effect> {
    if seen.unit_digest == unit_digest || seen.equivocation_reported {
        return Vec::new();
    }
    seen.equivocation_reported = true;
    let sealed = |unit_digest, signature| SealedDigest { seal: Seal { slot, signer: leader, signature }, unit_digest };
    let proof =
        EquivocationProof { first: sealed(seen.unit_digest, seen.signature), second: sealed(unit_digest, signature) };
    match borsh::to_vec(&proof) {
        Ok(bytes) => vec![Effect::Evidence {
            offender: leader,
            reason: format!("two blocks signed for slot {slot}").into(),
            bytes: RVec::from(bytes),
        }],
        Err(_) => Vec::new(),
    }
}

/// The persisted key of this node's vote at `height`: `b"vote/" ++ (height % VOTE_KEYS)`.
/// The public key that follows `key` in byte order (`key` is not all 0xFF bytes).
fn next_key(key: PublicKey) -> PublicKey {
    let mut bytes = key.0;
    for byte in bytes.iter_mut().rev() {
        if *byte == 0xFF {
            *byte = 0;
        } else {
            *byte += 1;
            break;
        }
    }
    PublicKey(bytes)
}

fn vote_key(height: u64) -> Vec<u8> {
    let mut key = VOTE_KEY_PREFIX.to_vec();
    key.extend_from_slice(&(height % VOTE_KEYS).to_be_bytes());
    key
}

fn encode(value: &impl BorshSerialize) -> Result<Vec<u8>, PluginError> {
    borsh::to_vec(value).map_err(|error| PluginError::failed(format!("cannot encode: {error}")))
}

impl ConsensusEngine for PoaEngine {
    type Config = PoaConfig;

    fn check_config(config: &PoaConfig) -> Result<(), ConfigError> {
        config.check()
    }

    fn new(config: PoaConfig, host: Host) -> Result<Self, PluginError> {
        config.check()?;
        let me = host.public_key();
        if !config.authorities.contains(&me) {
            host.log(
                LogLevel::Info,
                &format!("node key {me} is not an authority: this node follows and never proposes"),
            );
        }
        Ok(Self { config, host, me, state: EngineState::default(), resent_last: None })
    }

    fn handle(&mut self, input: Input) -> Result<Vec<Effect>, PluginError> {
        match input {
            Input::Start { last_commit, now_ms, persisted } => Ok(self.on_start(last_commit, now_ms, &persisted)),
            Input::Tick { now_ms } => self.on_tick(now_ms),
            Input::Message { from: _, bytes } => self.on_message(&bytes),
            Input::Proposal { height, unit_bytes } => self.on_proposal(height, unit_bytes.into_vec()),
            Input::Verified { unit_digest, ok } => self.on_verified(unit_digest, ok),
            Input::Committed { last_commit } => self.on_committed(last_commit),
            Input::Head { head, branch } => self.on_head(head, branch),
            Input::ProposalFailed { height, reason: _ } => Ok(self.on_proposal_failed(height)),
            Input::Sync { unit_bytes, certificate, finality } => {
                self.on_sync(unit_bytes.into_vec(), &certificate, &finality)
            }
            // PoA's authorities are its configuration, in slot order.
            Input::Validators { .. } => Ok(Vec::new()),
        }
    }

    fn snapshot(&self) -> Result<Vec<u8>, PluginError> {
        encode(&Snapshot { version: SNAPSHOT_VERSION, state: self.state.clone() })
    }

    fn message_signatures(message: &[u8], _host: &Host) -> Vec<nest_sdk::SignedBytes> {
        crate::wire::message_signatures(message)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), PluginError> {
        let max_bytes = self.max_snapshot_bytes();
        if bytes.len() > max_bytes {
            return Err(rejected(format!(
                "snapshot of {} bytes is larger than the {max_bytes} bytes the bounds allow",
                bytes.len()
            )));
        }
        let snapshot: Snapshot =
            borsh::from_slice(bytes).map_err(|error| rejected(format!("malformed snapshot: {error}")))?;
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(rejected(format!(
                "unsupported snapshot version {}, expected {SNAPSHOT_VERSION}",
                snapshot.version
            )));
        }
        self.check_state(&snapshot.state)?;
        self.state = snapshot.state;
        Ok(())
    }
}
