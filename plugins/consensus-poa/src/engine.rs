//! Run the proof-of-authority state machine (the crate's plugin export lives in `lib.rs`).

// The engine's own module tree: `config` and `wire` are siblings at the crate root.
use crate::config::*;
use crate::wire::*;
use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{
    ConfigError, ConsensusEngine, Effect, Hash32, Host, Input, LastCommit, LogLevel, PluginError, PublicKey, RVec,
    Signature,
};
use std::collections::BTreeMap;

/// Most received units kept while the host verifies them.
pub const PENDING_UNITS_MAX: usize = 32;
/// Most slots remembered for equivocation checks; the oldest is forgotten first.
pub const SEEN_SLOTS_MAX: usize = 1024;
/// Most votes remembered (own and received) for double-vote checks; oldest height first.
pub const VOTES_SEEN_MAX: usize = 4096;
/// Votes more than this many heights above the final unit are refused: no honest
/// authority can be that far ahead of the final unit.
pub const VOTE_HEIGHT_AHEAD_MAX: u64 = 1024;
/// Format version of [`PoaEngine::snapshot`].
pub const SNAPSHOT_VERSION: u8 = 2;

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

    fn on_start(&mut self, last_commit: LastCommit, now_ms: u64) -> Vec<Effect> {
        let head = Head::from(last_commit);
        self.state.committed_slot = self.committed_slot_of(&head);
        self.state.final_height = head.height;
        self.state.head = Some(head);
        self.state.started = true;
        self.state.now_ms = now_ms;
        self.state.outstanding = None;
        self.prune();
        vec![self.next_timer(now_ms)]
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
        effects.push(self.next_timer(now_ms));
        Ok(effects)
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
        Ok(vec![
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
            PoaMessage::Vote { height, unit_hash, voter, signature } => {
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
                self.remember_vote(height, voter, unit_hash, signature);
                Ok(vec![Effect::Attest { unit_hash, authority: voter }])
            }
        }
    }

    fn remember_vote(&mut self, height: u64, voter: PublicKey, unit_hash: Hash32, signature: Signature) {
        if self.state.votes.len() >= VOTES_SEEN_MAX {
            self.state.votes.pop_first();
        }
        self.state.votes.insert((height, voter), (unit_hash, signature));
    }

    /// Votes for the new head, once per height: the vote is broadcast and counted here.
    fn vote_for(&mut self, head: &Head) -> Result<Vec<Effect>, PluginError> {
        let voted = self.state.votes.contains_key(&(head.height, self.me));
        if !self.is_authority() || head.height <= self.state.final_height || voted {
            return Ok(Vec::new());
        }
        let signature = self.host.sign(&vote_message(head.height, &head.unit_hash));
        self.remember_vote(head.height, self.me, head.unit_hash, signature);
        let vote = PoaMessage::Vote { height: head.height, unit_hash: head.unit_hash, voter: self.me, signature };
        Ok(vec![
            Effect::Broadcast { bytes: encode(&vote)?.into() },
            Effect::Attest { unit_hash: head.unit_hash, authority: self.me },
        ])
    }

    /// A block fetched by sync: its certificate is the seal its leader signed.
    fn on_sync(&mut self, unit: Vec<u8>, certificate: &[u8]) -> Result<Vec<Effect>, PluginError> {
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
        self.receive_block(seal.slot, unit, seal.signature)
    }

    /// Checks a block's slot and seal; verifies it unless its slot already had one.
    fn receive_block(&mut self, slot: u64, unit: Vec<u8>, signature: Signature) -> Result<Vec<Effect>, PluginError> {
        self.check_slot_time(slot)?;
        let leader = self.leader(slot);
        let unit_digest = self.host.hash(&unit);
        if !self.host.verify(&leader, &seal_message(slot, &unit_digest), &signature) {
            return Err(rejected(format!(
                "seal of the block for slot {slot} does not verify against the slot leader {leader}"
            )));
        }
        if let Some(seen) = self.state.seen.get_mut(&slot) {
            return Ok(seen_again(seen, slot, leader, unit_digest, signature));
        }
        self.accept_block(slot, unit, unit_digest, signature)
    }

    fn check_slot_time(&self, slot: u64) -> Result<(), PluginError> {
        if slot <= self.state.committed_slot {
            return Err(rejected(format!(
                "block for slot {slot} is stale: the committed slot is {}",
                self.state.committed_slot
            )));
        }
        let latest_ms = self.state.now_ms.saturating_add(self.config.max_clock_drift_ms);
        let starts_ms = slot.checked_mul(self.config.block_interval_ms);
        if starts_ms.is_none_or(|starts_ms| starts_ms > latest_ms) {
            return Err(rejected(format!(
                "block for slot {slot} is from the future: the slot starts after {latest_ms} ms (now plus max_clock_drift_ms)"
            )));
        }
        Ok(())
    }

    fn accept_block(
        &mut self,
        slot: u64,
        unit: Vec<u8>,
        unit_digest: Hash32,
        signature: Signature,
    ) -> Result<Vec<Effect>, PluginError> {
        if self.state.pending.len() >= PENDING_UNITS_MAX {
            return Err(rejected(format!(
                "block for slot {slot} dropped: {PENDING_UNITS_MAX} units already await verification (PENDING_UNITS_MAX)"
            )));
        }
        self.remember_slot(slot, unit_digest, signature);
        if self.state.pending.contains_key(&unit_digest) {
            return Ok(Vec::new());
        }
        self.state.pending.insert(unit_digest, PendingUnit { slot, unit: unit.clone(), signature });
        Ok(vec![Effect::Verify { unit_bytes: unit.into(), expect: nest_sdk::UnitExpectation::ANY }])
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
        self.state.final_height = self.state.final_height.max(final_unit.height);
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

    /// Fork choice moved the head: the next proposal builds on it.
    fn on_head(&mut self, head: LastCommit) -> Result<Vec<Effect>, PluginError> {
        self.head()?;
        let head = Head::from(head);
        let stale = self.state.outstanding.as_ref().is_some_and(|outstanding| outstanding.height != head.height + 1);
        if stale {
            self.state.outstanding = None;
        }
        let effects = self.vote_for(&head)?;
        self.state.head = Some(head);
        Ok(effects)
    }

    /// Forgets slots and units at or below the committed slot: they can no longer commit.
    fn prune(&mut self) {
        let committed_slot = self.state.committed_slot;
        self.state.seen.retain(|slot, _| *slot > committed_slot);
        self.state.pending.retain(|_, pending| pending.slot > committed_slot);
        let final_height = self.state.final_height;
        self.state.votes.retain(|(height, _), _| *height > final_height);
    }

    fn max_snapshot_bytes(&self) -> usize {
        let unit_bytes = (self.config.max_message_bytes as usize).saturating_add(128);
        PENDING_UNITS_MAX
            .saturating_mul(unit_bytes)
            .saturating_add(SEEN_SLOTS_MAX.saturating_mul(128))
            .saturating_add(VOTES_SEEN_MAX.saturating_mul(8 + 32 + 32 + 64))
            .saturating_add(1024)
    }

    fn check_state(&self, state: &EngineState) -> Result<(), PluginError> {
        if state.votes.len() > VOTES_SEEN_MAX {
            return Err(rejected(format!("snapshot holds {} votes, more than {VOTES_SEEN_MAX}", state.votes.len())));
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
        Ok(Self { config, host, me, state: EngineState::default() })
    }

    fn handle(&mut self, input: Input) -> Result<Vec<Effect>, PluginError> {
        match input {
            Input::Start { last_commit, now_ms, persisted: _ } => Ok(self.on_start(last_commit, now_ms)),
            Input::Tick { now_ms } => self.on_tick(now_ms),
            Input::Message { from: _, bytes } => self.on_message(&bytes),
            Input::Proposal { height, unit_bytes } => self.on_proposal(height, unit_bytes.into_vec()),
            Input::Verified { unit_digest, ok } => self.on_verified(unit_digest, ok),
            Input::Committed { last_commit } => self.on_committed(last_commit),
            Input::Head { head, branch: _ } => self.on_head(head),
            Input::ProposalFailed { height, reason: _ } => Ok(self.on_proposal_failed(height)),
            Input::Sync { unit_bytes, certificate } => self.on_sync(unit_bytes.into_vec(), &certificate),
        }
    }

    fn snapshot(&self) -> Result<Vec<u8>, PluginError> {
        encode(&Snapshot { version: SNAPSHOT_VERSION, state: self.state.clone() })
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
