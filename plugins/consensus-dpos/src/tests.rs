use super::*;
use bft_engine::{Body, Envelope, Proposal, proposal_message};
use nest_sdk::{
    Hash32, LastCommit, PublicKey, RVec, Validator,
    testing::{LocalHost, sha256},
};

fn locals(count: u8) -> Vec<LocalHost> {
    (1..=count).map(|seed| LocalHost::from_seed([seed; 32])).collect()
}

fn key(local: &LocalHost) -> PublicKey {
    local.host().public_key()
}

fn set(keys: &[PublicKey]) -> RVec<Validator> {
    keys.iter().map(|key| Validator { key: *key, power: 1 }).collect()
}

/// An engine on `local` whose rounds of 4 heights are `rounds` (first height and order),
/// started at genesis and ticked into height 1.
fn started(local: &LocalHost, rounds: &[(u64, Vec<PublicKey>)]) -> (DposEngine, Vec<Effect>) {
    let mut engine = DposEngine::new(BftConfig::default(), local.host()).expect("valid config");
    for (from_height, keys) in rounds {
        engine.handle(Input::Validators { from_height: *from_height, validators: set(keys) }).expect("validators");
    }
    let genesis = LastCommit { height: 0, unit_hash: Hash32([0xAA; 32]), timestamp_ms: 0 };
    engine.handle(Input::Start { last_commit: genesis, now_ms: 0, persisted: Default::default() }).expect("start");
    let effects = engine.handle(Input::Tick { now_ms: 0 }).expect("tick");
    (engine, effects)
}

fn asks_for_a_proposal(effects: &[Effect]) -> bool {
    effects.iter().any(|effect| matches!(effect, Effect::RequestProposal { height: 1, .. }))
}

fn proposal(signer: &LocalHost, height: u64, round: u32, unit: &[u8]) -> Vec<u8> {
    let signature = signer.host().sign(&proposal_message(height, round, None, &sha256(unit)));
    let body = Body::Proposal(Proposal {
        height,
        round,
        valid_round: None,
        unit: unit.to_vec(),
        proposer: key(signer),
        signature,
    });
    borsh::to_vec(&Envelope { sent_ms: 0, body }).unwrap()
}

#[test]
fn the_delegate_at_the_heights_position_in_the_round_order_proposes_round_zero() {
    let locals = locals(4);
    // The round's order is not key order: the third node is first.
    let order = vec![key(&locals[2]), key(&locals[0]), key(&locals[3]), key(&locals[1])];
    let proposers: Vec<bool> =
        locals.iter().map(|local| asks_for_a_proposal(&started(local, &[(1, order.clone())]).1)).collect();
    assert_eq!(proposers, [false, false, true, false]);
}

#[test]
fn a_delegates_proposal_out_of_turn_is_not_taken_and_is_evidence_and_the_turns_one_is_checked() {
    let locals = locals(4);
    let order: Vec<PublicKey> = locals.iter().map(key).collect();
    let (mut engine, _) = started(&locals[3], &[(1, order)]);
    let out_of_turn = proposal(&locals[1], 1, 0, b"unit");
    let effects = engine.handle(Input::Message { from: PublicKey([0; 32]), bytes: out_of_turn.into() }).unwrap();
    let evidence: Vec<&Effect> = effects.iter().filter(|effect| matches!(effect, Effect::Evidence { .. })).collect();
    let [Effect::Evidence { offender, bytes, .. }] = evidence.as_slice() else { panic!("{effects:?}") };
    assert_eq!(*offender, key(&locals[1]));
    let proof = nest_sdk::certificate::Offence::decode(bytes).expect("an offence");
    assert!(matches!(proof, nest_sdk::certificate::Offence::OutOfTurn(ref p) if p.height == 1 && p.round == 0));
    assert!(!effects.iter().any(|effect| matches!(effect, Effect::Verify { .. })), "not taken: {effects:?}");
    // A stranger's proposal is refused outright (nothing to record against it).
    let stranger = LocalHost::from_seed([9; 32]);
    let refused =
        engine.handle(Input::Message { from: PublicKey([0; 32]), bytes: proposal(&stranger, 1, 0, b"x").into() });
    assert!(refused.is_err(), "{refused:?}");
    let in_turn = proposal(&locals[0], 1, 0, b"unit");
    let effects = engine.handle(Input::Message { from: PublicKey([0; 32]), bytes: in_turn.into() }).unwrap();
    assert!(effects.iter().any(|effect| matches!(effect, Effect::Verify { .. })), "{effects:?}");
}

#[test]
fn a_missed_turn_passes_to_the_next_delegate_in_the_next_round() {
    let locals = locals(4);
    let order: Vec<PublicKey> = locals.iter().map(key).collect();
    let (mut engine, _) = started(&locals[3], &[(1, order)]);
    // Round 1 of height 1 is the second delegate's turn, not the first's.
    let deliver = |engine: &mut DposEngine, bytes: Vec<u8>| {
        engine.handle(Input::Message { from: PublicKey([0; 32]), bytes: bytes.into() }).unwrap()
    };
    let is_evidence = |effects: &[Effect]| effects.iter().any(|effect| matches!(effect, Effect::Evidence { .. }));
    assert!(is_evidence(&deliver(&mut engine, proposal(&locals[0], 1, 1, b"unit"))));
    assert!(!is_evidence(&deliver(&mut engine, proposal(&locals[1], 1, 1, b"unit"))));
}

#[test]
fn the_declared_faults_are_bfts() {
    assert_eq!(TOLERATED_FAULTS, bft_engine::TOLERATED_FAULTS);
    let quoted: Vec<String> = TOLERATED_FAULTS.iter().map(|family| format!("\"{family}\"")).collect();
    let declared = format!("tolerates = [{}]", quoted.join(", "));
    assert!(include_str!("../plugin.toml").contains(&declared), "plugin.toml declares {declared}");
}
