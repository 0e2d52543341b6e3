//! Drives a consensus engine through fuzzed inputs: the driver shared by the PoA and BFT targets.
//!
//! The engine is started as the first of a few validators with known keys ([`keys`]).
//! Each step is one [`Input`]; messages come raw, or re-signed by the fixture with the
//! validators' keys, so that the fuzzer gets past the signature checks into the
//! engine's state machine. Digests the engine asked to verify, heights it asked to
//! propose and units it committed are remembered, so `Verified`, `Proposal` and
//! `Committed` answer what the engine is waiting for.

use crate::steps::{steps, u64_of};
use nest_sdk::{
    ConsensusEngine, Effect, Hash32, Input, LastCommit, PublicKey,
    testing::{LocalHost, sha256},
};

/// A message given as is.
pub const MESSAGE: u8 = 0;
/// A message re-signed by the fixture.
pub const SIGNED_MESSAGE: u8 = 1;
/// Time passes by `u64_of(payload) % TICK_MS_MAX` ms.
pub const TICK: u8 = 2;
/// A verdict on a unit the engine asked to verify: `[index, ok (bit 0 clear)]`.
pub const VERIFIED: u8 = 3;
/// The unit the engine asked for, with the payload as unit bytes.
pub const PROPOSAL: u8 = 4;
/// The oldest unit the engine committed becomes final.
pub const COMMITTED: u8 = 5;
/// Fork choice moves the head to the height `u64_of(payload) % 64`.
pub const HEAD: u8 = 6;
/// A synced unit: borsh `(unit, certificate, finality)`, re-signed by the fixture.
pub const SYNC: u8 = 7;
/// The chain type could not build the unit asked for.
pub const PROPOSAL_FAILED: u8 = 8;
/// The payload handed to `restore`.
pub const RESTORE: u8 = 9;
/// A snapshot restored into the engine: must succeed.
pub const SNAPSHOT: u8 = 10;
/// Number of step kinds (`tag % STEP_KINDS`).
pub const STEP_KINDS: u8 = 11;

/// Largest time step.
pub const TICK_MS_MAX: u64 = 10_000;
/// Most remembered requests of each kind.
const REMEMBERED_MAX: usize = 64;

/// The validators' hosts: seeds 1..=count; the engine runs as the first.
pub fn locals(count: u8) -> Vec<LocalHost> {
    (1..=count).map(|seed| LocalHost::from_seed([seed; 32])).collect()
}

/// Their keys.
pub fn keys(locals: &[LocalHost]) -> Vec<PublicKey> {
    locals.iter().map(|local| local.host().public_key()).collect()
}

/// The validator a fuzzed key stands for: picked by its first byte.
pub fn pick<'a>(locals: &'a [LocalHost], key: &PublicKey) -> &'a LocalHost {
    &locals[usize::from(key.0[0]) % locals.len()]
}

/// What the engine was started at.
pub fn genesis() -> LastCommit {
    LastCommit { height: 0, unit_hash: Hash32([0xAA; 32]), timestamp_ms: 0 }
}

/// An engine and how to sign messages for it.
pub trait Fixture {
    /// The engine.
    type Engine: ConsensusEngine;
    /// A started engine.
    fn start(&self) -> Self::Engine;
    /// `payload` decoded as a message, re-signed by the validators it names, encoded.
    fn signed_message(&self, payload: &[u8]) -> Option<Vec<u8>>;
    /// `(unit, certificate, finality)` with the certificate and proof re-signed.
    fn signed_sync(&self, unit: &[u8], certificate: Vec<u8>, finality: Vec<u8>) -> (Vec<u8>, Vec<u8>);
    /// The node key of the peer messages come from.
    fn peer(&self) -> PublicKey;
}

#[derive(Default)]
struct Waiting {
    now_ms: u64,
    verify: Vec<Hash32>,
    proposals: Vec<u64>,
    commits: Vec<Hash32>,
    final_height: u64,
    committed: usize,
}

impl Waiting {
    fn note(&mut self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::Verify { unit_bytes, .. } => remember(&mut self.verify, sha256(unit_bytes)),
                Effect::RequestProposal { height, .. } => remember(&mut self.proposals, *height),
                Effect::Commit { unit_bytes, .. } => {
                    self.committed += 1;
                    remember(&mut self.commits, sha256(unit_bytes));
                }
                _ => {}
            }
        }
    }
}

fn remember<T>(list: &mut Vec<T>, item: T) {
    if list.len() < REMEMBERED_MAX {
        list.push(item);
    }
}

fn take<T: Copy>(list: &mut Vec<T>, index: Option<&u8>) -> Option<T> {
    if list.is_empty() {
        return None;
    }
    let index = usize::from(index.copied().unwrap_or(0)) % list.len();
    Some(list.remove(index))
}

/// Runs the steps of `data` on a started engine of `fixture`; returns how many units it
/// committed (`Effect::Commit`).
pub fn run<F: Fixture>(fixture: &F, data: &[u8]) -> usize {
    let mut engine = fixture.start();
    let mut waiting = Waiting::default();
    for (tag, payload) in steps(data) {
        let Some(input) = input(fixture, &mut engine, &mut waiting, tag % STEP_KINDS, payload) else { continue };
        if let Ok(effects) = engine.handle(input) {
            waiting.note(&effects);
        }
    }
    waiting.committed
}

fn input<F: Fixture>(
    fixture: &F,
    engine: &mut F::Engine,
    waiting: &mut Waiting,
    kind: u8,
    payload: &[u8],
) -> Option<Input> {
    let message = |bytes: Vec<u8>| Input::Message { from: fixture.peer(), bytes: bytes.into() };
    Some(match kind {
        MESSAGE => message(payload.to_vec()),
        SIGNED_MESSAGE => message(fixture.signed_message(payload)?),
        TICK => {
            waiting.now_ms = waiting.now_ms.saturating_add(u64_of(payload) % TICK_MS_MAX);
            Input::Tick { now_ms: waiting.now_ms }
        }
        VERIFIED => {
            let unit_digest = take(&mut waiting.verify, payload.first())?;
            Input::Verified { unit_digest, ok: payload.get(1).is_none_or(|byte| byte & 1 == 0) }
        }
        PROPOSAL => {
            let height = take(&mut waiting.proposals, None)?;
            Input::Proposal { height, unit_bytes: payload.to_vec().into() }
        }
        COMMITTED => {
            let unit_hash = take(&mut waiting.commits, None)?;
            waiting.final_height += 1;
            Input::Committed {
                last_commit: LastCommit { height: waiting.final_height, unit_hash, timestamp_ms: waiting.now_ms },
            }
        }
        HEAD => {
            let head = LastCommit { height: u64_of(payload) % 64, unit_hash: sha256(payload), timestamp_ms: 0 };
            Input::Head { head: head.clone(), branch: vec![head].into() }
        }
        SYNC => {
            let (unit, certificate, finality) =
                borsh::from_slice::<(Vec<u8>, Vec<u8>, Vec<u8>)>(payload).unwrap_or((payload.to_vec(), vec![], vec![]));
            let (certificate, finality) = fixture.signed_sync(&unit, certificate, finality);
            Input::Sync { unit_bytes: unit.into(), certificate: certificate.into(), finality: finality.into() }
        }
        PROPOSAL_FAILED => {
            let height = take(&mut waiting.proposals, None)?;
            Input::ProposalFailed { height, reason: "fuzzed".into() }
        }
        RESTORE => {
            let _ = engine.restore(payload);
            return None;
        }
        _ => {
            if let Ok(snapshot) = engine.snapshot() {
                engine.restore(&snapshot).expect("an engine restores its own snapshot");
            }
            return None;
        }
    })
}
