//! The engine against the pseudo-code's cases, one upon-rule or timeout per test.

use super::*;
use nest_sdk::{
    ConsensusEngine, Effect, Hash32, Input, LastCommit, Persisted, PluginError, PublicKey, RVec, Validator,
    testing::{LocalHost, sha256},
};

const PROPOSE_MS: u64 = 1000;
const PROPOSE_DELTA_MS: u64 = 500;
const VOTE_MS: u64 = 400;
const VOTE_DELTA_MS: u64 = 200;

fn locals() -> Vec<LocalHost> {
    (1..=4).map(|seed| LocalHost::from_seed([seed; 32])).collect()
}

fn validators(locals: &[LocalHost], powers: &[u64]) -> RVec<Validator> {
    locals
        .iter()
        .zip(powers)
        .map(|(local, power)| Validator { key: local.host().public_key(), power: *power })
        .collect()
}

fn config() -> BftConfig {
    BftConfig {
        timeout_propose_ms: PROPOSE_MS,
        timeout_propose_delta_ms: PROPOSE_DELTA_MS,
        timeout_prevote_ms: VOTE_MS,
        timeout_prevote_delta_ms: VOTE_DELTA_MS,
        timeout_precommit_ms: VOTE_MS,
        timeout_precommit_delta_ms: VOTE_DELTA_MS,
        commit_wait_ms: 500,
        ..BftConfig::default()
    }
}

fn genesis() -> LastCommit {
    LastCommit { height: 0, unit_hash: Hash32([0xAA; 32]), timestamp_ms: 0 }
}

/// An engine on `local` among the four, powers equal unless given, started at genesis at
/// time 0 with `persisted`, and in round 0 of height 1 (after its first tick).
fn started_with(local: &LocalHost, all: &[LocalHost], powers: &[u64], persisted: Vec<Persisted>) -> BftEngine {
    let mut engine = BftEngine::new(config(), local.host()).expect("valid config");
    engine.handle(Input::Validators { from_height: 1, validators: validators(all, powers) }).expect("validators");
    engine.handle(Input::Start { last_commit: genesis(), now_ms: 0, persisted: persisted.into() }).expect("start");
    engine.handle(Input::Tick { now_ms: 0 }).expect("first tick");
    engine
}

/// The validator of `all` that does not propose `round` at height 1, for a node that
/// only votes; and the proposer.
fn roles(all: &[LocalHost], round: u32) -> (usize, usize) {
    let set = ValidatorSet::new(1, &validators(all, &[1; 4])).unwrap();
    let proposer = set.proposer(1, round);
    let proposer_index = all.iter().position(|local| local.host().public_key() == proposer).unwrap();
    ((proposer_index + 1) % all.len(), proposer_index)
}

fn key(local: &LocalHost) -> PublicKey {
    local.host().public_key()
}

fn envelope(body: Body) -> Vec<u8> {
    borsh::to_vec(&Envelope { sent_ms: 0, body }).unwrap()
}

fn vote(signer: &LocalHost, kind: VoteKind, round: u32, value: Option<Hash32>) -> Vote {
    let signature = signer.host().sign(&vote_message(kind, 1, round, value.as_ref()));
    Vote { kind, height: 1, round, value, validator: key(signer), signature }
}

fn proposal(signer: &LocalHost, round: u32, valid_round: Option<u32>, unit: &[u8]) -> Vec<u8> {
    let signature = signer.host().sign(&proposal_message(1, round, valid_round, &sha256(unit)));
    envelope(Body::Proposal(Proposal {
        height: 1,
        round,
        valid_round,
        unit: unit.to_vec(),
        proposer: key(signer),
        signature,
    }))
}

fn deliver(engine: &mut BftEngine, bytes: Vec<u8>) -> Result<Vec<Effect>, PluginError> {
    engine.handle(Input::Message { from: PublicKey([0; 32]), bytes: bytes.into() })
}

fn deliver_vote(engine: &mut BftEngine, vote: Vote) -> Vec<Effect> {
    deliver(engine, envelope(Body::Vote(vote))).expect("vote accepted")
}

/// Delivers a proposal and answers the host's check with `ok`.
fn deliver_proposal(engine: &mut BftEngine, bytes: Vec<u8>, unit: &[u8], ok: bool) -> Vec<Effect> {
    let mut effects = deliver(engine, bytes).expect("proposal accepted");
    if effects.iter().any(|effect| matches!(effect, Effect::Verify { .. })) {
        effects.extend(engine.handle(Input::Verified { unit_digest: sha256(unit), ok }).expect("verified"));
    }
    effects
}

/// The votes this node broadcast, in order.
fn sent_votes(effects: &[Effect]) -> Vec<(VoteKind, u32, Option<Hash32>)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Broadcast { bytes } => match borsh::from_slice::<Envelope>(bytes).ok()?.body {
                Body::Vote(vote) => Some((vote.kind, vote.round, vote.value)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn tick(engine: &mut BftEngine, now_ms: u64) -> Vec<Effect> {
    engine.handle(Input::Tick { now_ms }).expect("tick")
}

/// A voter engine in round 0 that prevoted and precommitted `unit` (locked on it).
fn locked_on(all: &[LocalHost], unit: &[u8]) -> (BftEngine, usize) {
    let (me, proposer) = roles(all, 0);
    let mut engine = started_with(&all[me], all, &[1; 4], Vec::new());
    deliver_proposal(&mut engine, proposal(&all[proposer], 0, None, unit), unit, true);
    let others: Vec<usize> = (0..4).filter(|index| *index != me).take(2).collect();
    for index in others {
        deliver_vote(&mut engine, vote(&all[index], VoteKind::Prevote, 0, Some(sha256(unit))));
    }
    assert_eq!(engine.locked(), Some((0, sha256(unit))));
    (engine, me)
}

/// Moves `engine` to `round` by f+1 prevotes of that round (L55).
fn skip_to(engine: &mut BftEngine, all: &[LocalHost], me: usize, round: u32) {
    let others: Vec<usize> = (0..4).filter(|index| *index != me).take(2).collect();
    for index in others {
        deliver_vote(engine, vote(&all[index], VoteKind::Precommit, round, None));
    }
    assert_eq!(engine.position().1, round);
}

#[test]
fn l22_a_valid_new_proposal_gets_the_prevote_persisted_before_it_leaves() {
    let all = locals();
    let (me, proposer) = roles(&all, 0);
    let mut engine = started_with(&all[me], &all, &[1; 4], Vec::new());
    let unit = b"unit a".to_vec();
    let effects = deliver(&mut engine, proposal(&all[proposer], 0, None, &unit)).unwrap();
    let expect = effects.iter().find_map(|effect| match effect {
        Effect::Verify { expect, .. } => Some(expect.clone()),
        _ => None,
    });
    assert_eq!(expect.expect("the unit goes to the host").proposer, Some(key(&all[proposer])).into());
    assert!(sent_votes(&effects).is_empty(), "no prevote before the host's answer");
    let effects = engine.handle(Input::Verified { unit_digest: sha256(&unit), ok: true }).unwrap();
    assert_eq!(sent_votes(&effects), vec![(VoteKind::Prevote, 0, Some(sha256(&unit)))]);
    let persist = effects.iter().position(|effect| matches!(effect, Effect::Persist { .. })).unwrap();
    let broadcast = effects.iter().position(|effect| matches!(effect, Effect::Broadcast { .. })).unwrap();
    assert!(persist < broadcast);
    assert_eq!(engine.position().2, Step::Prevote);
}

#[test]
fn l22_an_invalid_proposal_gets_a_nil_prevote() {
    let all = locals();
    let (me, proposer) = roles(&all, 0);
    let mut engine = started_with(&all[me], &all, &[1; 4], Vec::new());
    let unit = b"bad unit".to_vec();
    let effects = deliver_proposal(&mut engine, proposal(&all[proposer], 0, None, &unit), &unit, false);
    assert_eq!(sent_votes(&effects), vec![(VoteKind::Prevote, 0, None)]);
}

#[test]
fn a_proposal_from_another_than_the_rounds_proposer_is_refused() {
    let all = locals();
    let (me, _) = roles(&all, 0);
    let mut engine = started_with(&all[me], &all, &[1; 4], Vec::new());
    let error = deliver(&mut engine, proposal(&all[me], 0, None, b"mine")).unwrap_err().to_string();
    assert!(error.contains("the round's proposer is"), "{error}");
}

#[test]
fn l36_2f_plus_1_prevotes_lock_and_precommit_then_l49_decides_with_a_checkable_certificate() {
    let all = locals();
    let unit = b"unit a".to_vec();
    let value = sha256(&unit);
    let (mut engine, me) = locked_on(&all, &unit);
    assert_eq!(engine.valid(), Some((0, value)));
    assert_eq!(engine.position().2, Step::Precommit);
    let others: Vec<usize> = (0..4).filter(|index| *index != me).take(2).collect();
    let mut effects = Vec::new();
    for index in others {
        effects = deliver_vote(&mut engine, vote(&all[index], VoteKind::Precommit, 0, Some(value)));
    }
    let (unit_bytes, certificate) = effects
        .iter()
        .find_map(|effect| match effect {
            Effect::Commit { unit_bytes, certificate } => Some((unit_bytes.to_vec(), certificate.to_vec())),
            _ => None,
        })
        .expect("decided");
    assert_eq!(unit_bytes, unit);
    let certificate: CommitCertificate = borsh::from_slice(&certificate).unwrap();
    assert_eq!((certificate.height, certificate.round, certificate.value), (1, 0, value));
    let set = ValidatorSet::new(1, &validators(&all, &[1; 4])).unwrap();
    check_certificate(&all[0].host(), &set, 1, &certificate).expect("the certificate checks");
}

#[test]
fn l22_locked_on_another_value_prevotes_nil() {
    let all = locals();
    let (mut engine, me) = locked_on(&all, b"unit a");
    skip_to(&mut engine, &all, me, 1);
    let (_, proposer) = roles(&all, 1);
    if proposer == me {
        return; // This node would propose its valid value itself.
    }
    let other = b"unit b".to_vec();
    let effects = deliver_proposal(&mut engine, proposal(&all[proposer], 1, None, &other), &other, true);
    assert_eq!(sent_votes(&effects), vec![(VoteKind::Prevote, 1, None)]);
}

#[test]
fn l28_a_value_prevoted_by_2f_plus_1_after_the_lock_gets_the_prevote() {
    let all = locals();
    let (mut engine, me) = locked_on(&all, b"unit a");
    let round = (2..20).find(|round| roles(&all, *round).1 != me).unwrap();
    skip_to(&mut engine, &all, me, round);
    let other = b"unit b".to_vec();
    // 2f+1 prevoted b in round 1, after this node locked in round 0.
    let prevoters: Vec<usize> = (0..4).filter(|index| *index != me).collect();
    for index in &prevoters {
        deliver_vote(&mut engine, vote(&all[*index], VoteKind::Prevote, 1, Some(sha256(&other))));
    }
    let (_, proposer) = roles(&all, round);
    let effects = deliver_proposal(&mut engine, proposal(&all[proposer], round, Some(1), &other), &other, true);
    assert_eq!(sent_votes(&effects), vec![(VoteKind::Prevote, round, Some(sha256(&other)))]);
}

#[test]
fn l28_a_value_prevoted_before_the_lock_gets_a_nil_prevote() {
    let all = locals();
    let unit = b"unit a".to_vec();
    let (me, proposer0) = roles(&all, 0);
    let mut engine = started_with(&all[me], &all, &[1; 4], Vec::new());
    let other = b"unit b".to_vec();
    // Round 0: 2f+1 prevote b, but this node timed out and prevoted nil.
    tick(&mut engine, PROPOSE_MS);
    let prevoters: Vec<usize> = (0..4).filter(|index| *index != me).collect();
    for index in &prevoters {
        deliver_vote(&mut engine, vote(&all[*index], VoteKind::Prevote, 0, Some(sha256(&other))));
    }
    let _ = proposer0;
    // Round 1: this node locks on a.
    skip_to(&mut engine, &all, me, 1);
    let (_, proposer1) = roles(&all, 1);
    if proposer1 == me {
        return;
    }
    deliver_proposal(&mut engine, proposal(&all[proposer1], 1, None, &unit), &unit, true);
    for index in prevoters.iter().take(2) {
        deliver_vote(&mut engine, vote(&all[*index], VoteKind::Prevote, 1, Some(sha256(&unit))));
    }
    assert_eq!(engine.locked(), Some((1, sha256(&unit))));
    // Round r: b comes back with valid round 0, below the lock.
    let round = (2..20).find(|round| roles(&all, *round).1 != me).unwrap();
    skip_to(&mut engine, &all, me, round);
    let (_, proposer) = roles(&all, round);
    let effects = deliver_proposal(&mut engine, proposal(&all[proposer], round, Some(0), &other), &other, true);
    assert_eq!(sent_votes(&effects), vec![(VoteKind::Prevote, round, None)]);
}

#[test]
fn l57_the_propose_timeout_prevotes_nil_and_grows_per_round() {
    let all = locals();
    let (me, _) = roles(&all, 0);
    let mut engine = started_with(&all[me], &all, &[1; 4], Vec::new());
    assert!(sent_votes(&tick(&mut engine, PROPOSE_MS - 1)).is_empty());
    assert_eq!(sent_votes(&tick(&mut engine, PROPOSE_MS)), vec![(VoteKind::Prevote, 0, None)]);
    assert_eq!(engine.stats().timeouts_fired[0], 1);
    assert_eq!(BftConfig::timeout_ms(PROPOSE_MS, PROPOSE_DELTA_MS, 3), PROPOSE_MS + 3 * PROPOSE_DELTA_MS);
}

#[test]
fn l34_l61_mixed_prevotes_start_the_prevote_timeout_which_precommits_nil() {
    let all = locals();
    let (me, _) = roles(&all, 0);
    let mut engine = started_with(&all[me], &all, &[1; 4], Vec::new());
    tick(&mut engine, PROPOSE_MS);
    let others: Vec<usize> = (0..4).filter(|index| *index != me).collect();
    deliver_vote(&mut engine, vote(&all[others[0]], VoteKind::Prevote, 0, Some(Hash32([1; 32]))));
    let effects = deliver_vote(&mut engine, vote(&all[others[1]], VoteKind::Prevote, 0, Some(Hash32([2; 32]))));
    assert_eq!(effects, vec![Effect::TimerAt { at_ms: PROPOSE_MS + VOTE_MS }]);
    assert!(sent_votes(&tick(&mut engine, PROPOSE_MS + VOTE_MS - 1)).is_empty());
    assert_eq!(sent_votes(&tick(&mut engine, PROPOSE_MS + VOTE_MS)), vec![(VoteKind::Precommit, 0, None)]);
}

#[test]
fn l44_2f_plus_1_nil_prevotes_precommit_nil_at_once() {
    let all = locals();
    let (me, _) = roles(&all, 0);
    let mut engine = started_with(&all[me], &all, &[1; 4], Vec::new());
    tick(&mut engine, PROPOSE_MS);
    let others: Vec<usize> = (0..4).filter(|index| *index != me).take(2).collect();
    let mut effects = Vec::new();
    for index in others {
        effects = deliver_vote(&mut engine, vote(&all[index], VoteKind::Prevote, 0, None));
    }
    assert_eq!(sent_votes(&effects), vec![(VoteKind::Precommit, 0, None)]);
}

#[test]
fn l47_l65_mixed_precommits_start_the_precommit_timeout_which_starts_the_next_round() {
    let all = locals();
    let (me, _) = roles(&all, 0);
    let mut engine = started_with(&all[me], &all, &[1; 4], Vec::new());
    tick(&mut engine, PROPOSE_MS);
    let others: Vec<usize> = (0..4).filter(|index| *index != me).collect();
    deliver_vote(&mut engine, vote(&all[others[0]], VoteKind::Precommit, 0, Some(Hash32([1; 32]))));
    deliver_vote(&mut engine, vote(&all[others[1]], VoteKind::Precommit, 0, None));
    let effects = deliver_vote(&mut engine, vote(&all[others[2]], VoteKind::Precommit, 0, Some(Hash32([2; 32]))));
    assert!(effects.contains(&Effect::TimerAt { at_ms: PROPOSE_MS + VOTE_MS }), "{effects:?}");
    tick(&mut engine, PROPOSE_MS + VOTE_MS);
    assert_eq!(engine.position(), (1, 1, Step::Propose));
}

#[test]
fn l55_f_plus_1_messages_of_a_higher_round_move_this_node_there_but_f_do_not() {
    let all = locals();
    let (me, _) = roles(&all, 0);
    let mut engine = started_with(&all[me], &all, &[1; 4], Vec::new());
    let others: Vec<usize> = (0..4).filter(|index| *index != me).collect();
    deliver_vote(&mut engine, vote(&all[others[0]], VoteKind::Prevote, 7, None));
    assert_eq!(engine.position().1, 0, "one of four is f");
    deliver_vote(&mut engine, vote(&all[others[1]], VoteKind::Precommit, 7, None));
    assert_eq!(engine.position().1, 7);
}

#[test]
fn power_not_members_decides_a_quorum() {
    let all = locals();
    // Total 9: more than two thirds is 7 or more.
    let powers = [2, 2, 2, 3];
    let set = ValidatorSet::new(1, &validators(&all, &powers)).unwrap();
    let proposer = all.iter().position(|local| key(local) == set.proposer(1, 0)).unwrap();
    let me = (0..3).find(|index| *index != proposer).unwrap();
    let mut engine = started_with(&all[me], &all, &powers, Vec::new());
    let unit = b"heavy".to_vec();
    deliver_proposal(&mut engine, proposal(&all[proposer], 0, None, &unit), &unit, true);
    let mut others: Vec<usize> = (0..4).filter(|index| *index != me).collect();
    others.sort_by_key(|index| std::cmp::Reverse(powers[*index]));
    let decided = |effects: &[Effect]| effects.iter().any(|effect| matches!(effect, Effect::Commit { .. }));
    let first = deliver_vote(&mut engine, vote(&all[others[0]], VoteKind::Precommit, 0, Some(sha256(&unit))));
    let second = deliver_vote(&mut engine, vote(&all[others[1]], VoteKind::Precommit, 0, Some(sha256(&unit))));
    assert!(!decided(&first) && !decided(&second), "5 of 9 does not decide");
    let third = deliver_vote(&mut engine, vote(&all[others[2]], VoteKind::Precommit, 0, Some(sha256(&unit))));
    assert!(decided(&third), "7 of 9 decides: {third:?}");
}

#[test]
fn two_votes_of_one_validator_in_one_round_are_evidence_reported_once() {
    let all = locals();
    let (me, _) = roles(&all, 0);
    let mut engine = started_with(&all[me], &all, &[1; 4], Vec::new());
    let offender = (me + 1) % 4;
    deliver_vote(&mut engine, vote(&all[offender], VoteKind::Prevote, 0, Some(Hash32([1; 32]))));
    let effects = deliver_vote(&mut engine, vote(&all[offender], VoteKind::Prevote, 0, Some(Hash32([2; 32]))));
    let proof = effects
        .iter()
        .find_map(|effect| match effect {
            Effect::Evidence { offender: key_seen, bytes, .. } => Some((*key_seen, bytes.to_vec())),
            _ => None,
        })
        .expect("evidence");
    assert_eq!(proof.0, key(&all[offender]));
    let proof = Offence::decode(&proof.1).expect("an offence");
    assert!(matches!(&proof, Offence::DoubleVote(double) if double.first.kind == VoteKind::Prevote));
    assert!(proof.verifies(|key, message, signature| all[0].host().verify(key, message, signature)));
    let again = deliver_vote(&mut engine, vote(&all[offender], VoteKind::Prevote, 0, Some(Hash32([3; 32]))));
    assert!(!again.iter().any(|effect| matches!(effect, Effect::Evidence { .. })));
}

#[test]
fn two_proposals_of_one_proposer_in_one_round_are_evidence_reported_once() {
    let all = locals();
    let (me, proposer) = roles(&all, 0);
    let mut engine = started_with(&all[me], &all, &[1; 4], Vec::new());
    deliver_proposal(&mut engine, proposal(&all[proposer], 0, None, b"first"), b"first", true);
    let effects = deliver(&mut engine, proposal(&all[proposer], 0, None, b"second")).expect("second proposal");
    let reported: Vec<(PublicKey, Vec<u8>)> = effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Evidence { offender, bytes, .. } => Some((*offender, bytes.to_vec())),
            _ => None,
        })
        .collect();
    assert_eq!(reported.len(), 1, "{effects:?}");
    assert_eq!(reported[0].0, key(&all[proposer]));
    let proof = Offence::decode(&reported[0].1).expect("an offence");
    assert_eq!(proof.kind(), nest_sdk::certificate::OffenceKind::Proposal);
    assert_eq!(proof.values(), [Some(sha256(b"first")), Some(sha256(b"second"))]);
    assert!(proof.verifies(|key, message, signature| all[0].host().verify(key, message, signature)));
    let again = deliver(&mut engine, proposal(&all[proposer], 0, None, b"third")).expect("third proposal");
    assert!(!again.iter().any(|effect| matches!(effect, Effect::Evidence { .. })), "{again:?}");
}

/// The signed facts of a proposal, as another validator says it received them.
fn proposal_seen(signer: &LocalHost, round: u32, unit: &[u8]) -> Vec<u8> {
    let value = sha256(unit);
    let signature = signer.host().sign(&proposal_message(1, round, None, &value));
    envelope(Body::ProposalSeen(SignedProposal {
        height: 1,
        round,
        valid_round: None,
        value,
        proposer: key(signer),
        signature,
    }))
}

fn evidence_of(effects: &[Effect]) -> Vec<Offence> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Evidence { bytes, .. } => Offence::decode(bytes),
            _ => None,
        })
        .collect()
}

/// A proposer that showed one proposal to some validators and another to the rest is
/// caught by either side: each validator tells the others the signed facts of the
/// proposal it received (without the unit), and compares theirs with its own.
#[test]
fn a_proposal_shown_to_others_differs_from_the_one_received_is_evidence() {
    let all = locals();
    let (me, proposer) = roles(&all, 0);
    let mut engine = started_with(&all[me], &all, &[1; 4], Vec::new());
    let effects = deliver_proposal(&mut engine, proposal(&all[proposer], 0, None, b"mine"), b"mine", true);
    let told: Vec<SignedProposal> = effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Broadcast { bytes } => match borsh::from_slice::<Envelope>(bytes).ok()?.body {
                Body::ProposalSeen(signed) => Some(signed),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(told.len(), 1, "the validator tells the others what it received: {effects:?}");
    assert_eq!(told[0].value, sha256(b"mine"));
    let same = deliver(&mut engine, proposal_seen(&all[proposer], 0, b"mine")).expect("same proposal seen");
    assert!(evidence_of(&same).is_empty(), "{same:?}");
    let other = deliver(&mut engine, proposal_seen(&all[proposer], 0, b"theirs")).expect("other proposal seen");
    let proofs = evidence_of(&other);
    assert_eq!(proofs.len(), 1, "{other:?}");
    assert_eq!(proofs[0].values(), [Some(sha256(b"mine")), Some(sha256(b"theirs"))]);
    // Heard of first, received after: the proposal still counts, and is evidence.
    let mut engine = started_with(&all[me], &all, &[1; 4], Vec::new());
    deliver(&mut engine, proposal_seen(&all[proposer], 0, b"theirs")).expect("seen first");
    let effects = deliver_proposal(&mut engine, proposal(&all[proposer], 0, None, b"mine"), b"mine", true);
    assert_eq!(evidence_of(&effects).len(), 1, "{effects:?}");
    assert_eq!(sent_votes(&effects), vec![(VoteKind::Prevote, 0, Some(sha256(b"mine")))]);
    // Facts signed by another validator than the round's proposer are refused.
    assert!(deliver(&mut engine, proposal_seen(&all[me], 0, b"forged")).is_err());
}

/// Messages of the next height wait for it, but one peer fills at most its share.
#[test]
fn one_peer_cannot_fill_the_next_heights_buffer() {
    let all = locals();
    let (me, _) = roles(&all, 0);
    let mut engine = started_with(&all[me], &all, &[1; 4], Vec::new());
    let next_height_vote = |round: u32| {
        let signature = all[0].host().sign(&vote_message(VoteKind::Prevote, 2, round, None));
        envelope(Body::Vote(Vote {
            kind: VoteKind::Prevote,
            height: 2,
            round,
            value: None,
            validator: key(&all[0]),
            signature,
        }))
    };
    let flooder = PublicKey([9; 32]);
    for round in 0..(FUTURE_MESSAGES_PER_PEER_MAX as u32 + 50) {
        engine.handle(Input::Message { from: flooder, bytes: next_height_vote(round).into() }).expect("held");
    }
    assert_eq!(engine.held_for_next_height(), FUTURE_MESSAGES_PER_PEER_MAX);
    let other = PublicKey([8; 32]);
    engine.handle(Input::Message { from: other, bytes: next_height_vote(0).into() }).expect("held");
    assert_eq!(engine.held_for_next_height(), FUTURE_MESSAGES_PER_PEER_MAX + 1, "another peer still gets room");
}

/// A validator's vote two heights ahead makes the engine ask the host to sync from its
/// sender, once per re-sending interval; a forged one, or one of the next height (which
/// is held and used), does not.
#[test]
fn a_signed_vote_far_ahead_asks_for_sync_once_per_interval() {
    let all = locals();
    let (me, _) = roles(&all, 0);
    let mut engine = started_with(&all[me], &all, &[1; 4], Vec::new());
    let vote_at = |height: u64, round: u32, forged: bool| {
        let signer = if forged { &all[1] } else { &all[0] };
        let signature = signer.host().sign(&vote_message(VoteKind::Prevote, height, round, None));
        envelope(Body::Vote(Vote {
            kind: VoteKind::Prevote,
            height,
            round,
            value: None,
            validator: key(&all[0]),
            signature,
        }))
    };
    let behind = |effects: &[Effect]| {
        effects
            .iter()
            .filter_map(|effect| if let Effect::Behind { height } = effect { Some(*height) } else { None })
            .collect::<Vec<_>>()
    };
    let peer = PublicKey([9; 32]);
    let send = |engine: &mut BftEngine, bytes: Vec<u8>| {
        engine.handle(Input::Message { from: peer, bytes: bytes.into() }).expect("handled")
    };
    assert!(behind(&send(&mut engine, vote_at(2, 0, false))).is_empty(), "the next height is held, not synced");
    assert!(behind(&send(&mut engine, vote_at(5, 0, true))).is_empty(), "a forged vote steers nothing");
    assert_eq!(behind(&send(&mut engine, vote_at(5, 0, false))), vec![5]);
    assert!(behind(&send(&mut engine, vote_at(6, 0, false))).is_empty(), "once per interval");
    engine.handle(Input::Tick { now_ms: PROPOSE_MS }).expect("tick");
    assert_eq!(behind(&send(&mut engine, vote_at(6, 1, false))), vec![6], "again after the interval");
}

/// The proposals this node broadcast: (round, valid round, value).
fn sent_proposals(effects: &[Effect]) -> Vec<(u32, Option<u32>, Hash32)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Broadcast { bytes } => match borsh::from_slice::<Envelope>(bytes).ok()?.body {
                Body::Proposal(proposal) => Some((proposal.round, proposal.valid_round, sha256(&proposal.unit))),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A proposer that saw 2f+1 prevotes for a value of an earlier round only after it
/// left that round (validValue unset) proposes that value with its round, which
/// validators locked on it accept (L28), instead of a new value they would refuse.
#[test]
fn a_proposer_holding_a_late_proof_of_lock_proposes_that_value_again() {
    let all = locals();
    let ((_, proposer_0), (_, me)) = (roles(&all, 0), roles(&all, 2));
    assert_ne!(proposer_0, me);
    let unit = b"unit of round 0".to_vec();
    let mut engine = started_with(&all[me], &all, &[1; 4], Vec::new());
    deliver_proposal(&mut engine, proposal(&all[proposer_0], 0, None, &unit), &unit, true);
    skip_to(&mut engine, &all, me, 1);
    let others: Vec<usize> = (0..4).filter(|index| *index != me).take(2).collect();
    for index in others {
        deliver_vote(&mut engine, vote(&all[index], VoteKind::Prevote, 0, Some(sha256(&unit))));
    }
    assert_eq!(engine.position().1, 1, "round-0 prevotes do not move a node in round 1");
    let others: Vec<usize> = (0..4).filter(|index| *index != me).take(2).collect();
    let mut effects = Vec::new();
    for index in others {
        effects.extend(deliver_vote(&mut engine, vote(&all[index], VoteKind::Precommit, 2, None)));
    }
    assert_eq!(sent_proposals(&effects), vec![(2, Some(0), sha256(&unit))]);
    assert!(!effects.iter().any(|effect| matches!(effect, Effect::RequestProposal { .. })), "no new value asked for");
}

#[test]
fn a_restarted_validator_sends_what_it_signed_instead_of_signing_anew() {
    let all = locals();
    let (me, proposer) = roles(&all, 0);
    let mut engine = started_with(&all[me], &all, &[1; 4], Vec::new());
    let effects = tick(&mut engine, PROPOSE_MS);
    assert_eq!(sent_votes(&effects), vec![(VoteKind::Prevote, 0, None)]);
    let persisted: Vec<Persisted> = effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Persist { key, bytes } => Some(Persisted { key: key.clone(), bytes: bytes.clone() }),
            _ => None,
        })
        .collect();
    // Killed and restarted: the proposal arrives now, but its nil prevote stands.
    let mut restarted = started_with(&all[me], &all, &[1; 4], persisted);
    let unit = b"late".to_vec();
    let effects = deliver_proposal(&mut restarted, proposal(&all[proposer], 0, None, &unit), &unit, true);
    assert_eq!(sent_votes(&effects), vec![(VoteKind::Prevote, 0, None)]);
}

#[test]
fn a_synced_unit_is_decided_only_with_a_certificate_of_more_than_two_thirds() {
    let all = locals();
    let (me, _) = roles(&all, 0);
    let unit = b"synced".to_vec();
    let value = sha256(&unit);
    let sign = |index: usize| {
        (key(&all[index]), all[index].host().sign(&vote_message(VoteKind::Precommit, 1, 0, Some(&value))))
    };
    let certificate = |signers: Vec<(PublicKey, nest_sdk::Signature)>| {
        borsh::to_vec(&CommitCertificate { height: 1, round: 0, value, signatures: signers }).unwrap()
    };
    let sync = |engine: &mut BftEngine, certificate: Vec<u8>| {
        engine.handle(Input::Sync {
            unit_bytes: unit.clone().into(),
            certificate: certificate.into(),
            finality: RVec::new(),
        })
    };
    let mut engine = started_with(&all[me], &all, &[1; 4], Vec::new());
    let two = sync(&mut engine, certificate(vec![sign(0), sign(1)])).unwrap_err().to_string();
    assert!(two.contains("not more than two thirds"), "{two}");
    let twice = sync(&mut engine, certificate(vec![sign(0), sign(0), sign(1)])).unwrap_err().to_string();
    assert!(twice.contains("signs twice"), "{twice}");
    let stranger = LocalHost::from_seed([9; 32]);
    let forged = (key(&stranger), stranger.host().sign(b"anything"));
    let outsider = sync(&mut engine, certificate(vec![sign(0), sign(1), forged])).unwrap_err().to_string();
    assert!(outsider.contains("is not a validator"), "{outsider}");
    let bad_signature = (key(&all[2]), all[2].host().sign(b"something else"));
    let bad = sync(&mut engine, certificate(vec![sign(0), sign(1), bad_signature])).unwrap_err().to_string();
    assert!(bad.contains("does not verify"), "{bad}");
    let effects = sync(&mut engine, certificate(vec![sign(0), sign(1), sign(2)])).unwrap();
    assert!(effects.iter().any(|effect| matches!(effect, Effect::Verify { .. })));
    let effects = engine.handle(Input::Verified { unit_digest: value, ok: true }).unwrap();
    assert!(effects.iter().any(|effect| matches!(effect, Effect::Commit { .. })), "{effects:?}");
}

#[test]
fn garbage_messages_are_refused_with_the_reason() {
    let all = locals();
    let mut engine = started_with(&all[0], &all, &[1; 4], Vec::new());
    let error = deliver(&mut engine, vec![7; 10]).unwrap_err().to_string();
    assert!(error.contains("malformed BFT message"), "{error}");
    let mut no_set = BftEngine::new(config(), all[0].host()).unwrap();
    let error = no_set
        .handle(Input::Start { last_commit: genesis(), now_ms: 0, persisted: Default::default() })
        .and_then(|_| no_set.handle(Input::Tick { now_ms: 0 }))
        .unwrap_err()
        .to_string();
    assert!(error.contains("genesis.validators"), "{error}");
}

#[test]
fn a_validator_set_change_takes_effect_at_its_height() {
    let all = locals();
    let mut engine = started_with(&all[1], &all, &[1; 4], Vec::new());
    // From height 2 on, validator 0 alone holds all the power.
    let only_first: RVec<Validator> = vec![Validator { key: key(&all[0]), power: 1 }].into();
    engine.handle(Input::Validators { from_height: 2, validators: only_first }).unwrap();
    assert_eq!(engine.set_for(1).map(ValidatorSet::len), Some(4));
    let committed = LastCommit { height: 1, unit_hash: Hash32([1; 32]), timestamp_ms: 10 };
    engine.handle(Input::Committed { last_commit: committed }).unwrap();
    assert_eq!(engine.set_for(2).map(ValidatorSet::len), Some(1));
    tick(&mut engine, 600);
    let unit = b"height 2".to_vec();
    let signature = all[0].host().sign(&proposal_message(2, 0, None, &sha256(&unit)));
    let proposal =
        Proposal { height: 2, round: 0, valid_round: None, unit: unit.clone(), proposer: key(&all[0]), signature };
    let effects = deliver(&mut engine, envelope(Body::Proposal(proposal))).unwrap();
    assert!(effects.iter().any(|effect| matches!(effect, Effect::Verify { .. })));
    let effects = engine.handle(Input::Verified { unit_digest: sha256(&unit), ok: true }).unwrap();
    assert!(sent_votes(&effects).is_empty(), "no longer a validator: it signs nothing");
    // A former validator's vote no longer counts; the one validator's precommit decides.
    let former = vote(&all[2], VoteKind::Precommit, 0, Some(sha256(&unit)));
    let former = Vote {
        height: 2,
        signature: all[2].host().sign(&vote_message(VoteKind::Precommit, 2, 0, Some(&sha256(&unit)))),
        ..former
    };
    assert!(deliver(&mut engine, envelope(Body::Vote(former))).unwrap_err().to_string().contains("not a validator"));
    let precommit = Vote {
        kind: VoteKind::Precommit,
        height: 2,
        round: 0,
        value: Some(sha256(&unit)),
        validator: key(&all[0]),
        signature: all[0].host().sign(&vote_message(VoteKind::Precommit, 2, 0, Some(&sha256(&unit)))),
    };
    let effects = deliver(&mut engine, envelope(Body::Vote(precommit))).unwrap();
    assert!(effects.iter().any(|effect| matches!(effect, Effect::Commit { .. })), "{effects:?}");
}

#[test]
fn each_message_lists_the_signatures_the_engine_checks_and_a_changed_one_fails() {
    let all = locals();
    let host = all[0].host();
    let unit = b"unit".to_vec();
    let value = sha256(&unit);
    let prevote = vote(&all[1], VoteKind::Prevote, 0, Some(value));
    let precommits: Vec<Vote> =
        all[1..].iter().map(|signer| vote(signer, VoteKind::Precommit, 0, Some(value))).collect();
    let certificate = CommitCertificate {
        height: 1,
        round: 0,
        value,
        signatures: precommits.iter().map(|v| (v.validator, v.signature)).collect(),
    };
    let decided = envelope(Body::Decided { unit: unit.clone(), certificate: certificate.clone() });
    let cases = [
        (envelope(Body::Vote(prevote.clone())), 1),
        (proposal(&all[2], 0, None, &unit), 1),
        (proposal_seen(&all[2], 0, &unit), 1),
        (decided, 3),
    ];
    for (bytes, count) in cases {
        let listed = BftEngine::message_signatures(&bytes, &host);
        assert_eq!(listed.len(), count);
        assert!(listed.iter().all(|s| host.verify(&s.key, &s.message, &s.signature)));
    }
    let mut forged = prevote;
    forged.signature.0[0] ^= 1;
    let listed = BftEngine::message_signatures(&envelope(Body::Vote(forged)), &host);
    assert_eq!(listed.len(), 1);
    assert!(!host.verify(&listed[0].key, &listed[0].message, &listed[0].signature));
    assert!(BftEngine::message_signatures(b"not a message", &host).is_empty());
    let mut crowded = certificate;
    crowded.signatures = vec![crowded.signatures[0]; crate::wire::LISTED_SIGNATURES_MAX + 1];
    let crowded = envelope(Body::Decided { unit, certificate: crowded });
    assert!(BftEngine::message_signatures(&crowded, &host).is_empty(), "the engine refuses it by its count");
}
