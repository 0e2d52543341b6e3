use super::*;
use chain_linear::{LinearChain, LinearConfig};
use nest_sdk::{
    BuildRequest, ChainType, ConsensusEngine, Effect, Hash32, Input, LastCommit, Persisted, PluginError, PublicKey,
    RVec, Signature, UnitRef,
    testing::{LocalHost, sha256},
};
use std::collections::BTreeMap;

const INTERVAL_MS: u64 = 1000;

fn locals(count: u8) -> Vec<LocalHost> {
    (1..=count).map(|seed| LocalHost::from_seed([seed; 32])).collect()
}

fn keys(locals: &[LocalHost]) -> Vec<PublicKey> {
    locals.iter().map(|local| local.host().public_key()).collect()
}

fn genesis() -> LastCommit {
    LastCommit { height: 0, unit_hash: Hash32([0xAA; 32]), timestamp_ms: 0 }
}

/// An engine for `local` among `authorities`, started at genesis at time 0.
fn started(local: &LocalHost, authorities: &[PublicKey]) -> PoaEngine {
    let config = PoaConfig::new(authorities.to_vec(), INTERVAL_MS);
    let mut engine = PoaEngine::new(config, local.host()).expect("valid config");
    let effects = engine
        .handle(Input::Start { last_commit: genesis(), now_ms: 0, persisted: Default::default() })
        .expect("start");
    assert_eq!(effects, vec![Effect::TimerAt { at_ms: INTERVAL_MS }]);
    engine
}

fn tick(engine: &mut PoaEngine, now_ms: u64) -> Vec<Effect> {
    engine.handle(Input::Tick { now_ms }).expect("tick")
}

fn requests(effects: &[Effect]) -> Vec<(u64, u64)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::RequestProposal { height, timestamp_ms, .. } => Some((*height, *timestamp_ms)),
            _ => None,
        })
        .collect()
}

fn committed(engine: &mut PoaEngine, height: u64, timestamp_ms: u64) {
    let last_commit = LastCommit { height, unit_hash: Hash32([height as u8; 32]), timestamp_ms };
    let effects = engine.handle(Input::Committed { last_commit }).expect("committed");
    assert!(effects.is_empty());
}

/// A block message for `slot` sealed by `signer`.
fn block(signer: &LocalHost, slot: u64, unit: &[u8]) -> Vec<u8> {
    let signature = signer.host().sign(&seal_message(slot, &sha256(unit)));
    borsh::to_vec(&PoaMessage::Block { slot, unit: unit.to_vec(), signature }).expect("encode")
}

fn deliver(engine: &mut PoaEngine, bytes: Vec<u8>) -> Result<Vec<Effect>, PluginError> {
    engine.handle(Input::Message { from: PublicKey([0; 32]), bytes: bytes.into() })
}

fn rejection(result: Result<Vec<Effect>, PluginError>) -> String {
    match result {
        Err(PluginError::Rejected { message }) => message.into(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn single_authority_proposes_on_each_new_slot_and_not_twice_for_one() {
    let local = LocalHost::from_seed([1; 32]);
    let mut engine = started(&local, &keys(std::slice::from_ref(&local)));
    let effects = tick(&mut engine, 1000);
    assert_eq!(
        effects,
        vec![
            Effect::RequestProposal { height: 1, parent: genesis().unit_hash, timestamp_ms: 1000 },
            Effect::TimerAt { at_ms: 2000 },
        ]
    );
    assert!(requests(&tick(&mut engine, 1500)).is_empty(), "outstanding");
    let effects =
        engine.handle(Input::Proposal { height: 1, unit_bytes: b"unit-1".to_vec().into() }).expect("proposal");
    assert!(matches!(effects.as_slice(), [Effect::Persist { .. }, Effect::Commit { .. }, Effect::Broadcast { .. }]));
    assert!(requests(&tick(&mut engine, 1700)).is_empty(), "slot already proposed");
    committed(&mut engine, 1, 1000);
    assert!(requests(&tick(&mut engine, 1900)).is_empty(), "slot already committed");
    assert_eq!(requests(&tick(&mut engine, 2000)), vec![(2, 2000)]);
}

#[test]
fn proposal_persists_its_slot_then_seals_commits_and_broadcasts() {
    let local = LocalHost::from_seed([1; 32]);
    let me = local.host().public_key();
    let mut engine = started(&local, &[me]);
    let _ = tick(&mut engine, 3000);
    let effects = engine.handle(Input::Proposal { height: 1, unit_bytes: b"unit".to_vec().into() }).expect("proposal");
    let [Effect::Persist { key, bytes: slot }, Effect::Commit { unit_bytes, certificate }, Effect::Broadcast { bytes }] =
        effects.as_slice()
    else {
        panic!("expected Persist, Commit then Broadcast, got {effects:?}");
    };
    assert_eq!((key.as_slice(), borsh::from_slice::<u64>(slot).expect("slot")), (&b"proposed"[..], 3));
    assert_eq!(unit_bytes.as_slice(), b"unit");
    let seal: Seal = borsh::from_slice(certificate).expect("certificate is a seal");
    assert_eq!((seal.slot, seal.signer), (3, me));
    let sealed = SealedDigest { seal: seal.clone(), unit_digest: sha256(b"unit") };
    assert!(sealed.verifies(&local.host()));
    let Ok(PoaMessage::Block { slot, unit, signature }) = borsh::from_slice(bytes) else {
        panic!("expected a block message");
    };
    assert_eq!((slot, unit.as_slice(), signature), (3, &b"unit"[..], seal.signature));
}

#[test]
fn only_the_slot_leader_requests_a_proposal_and_leaders_rotate() {
    let locals = locals(3);
    let authorities = keys(&locals);
    let mut engines: Vec<PoaEngine> = locals.iter().map(|local| started(local, &authorities)).collect();
    for slot in 1..=6u64 {
        let now_ms = slot * INTERVAL_MS;
        let proposers: Vec<usize> = engines
            .iter_mut()
            .enumerate()
            .filter_map(|(index, engine)| (!requests(&tick(engine, now_ms)).is_empty()).then_some(index))
            .collect();
        assert_eq!(proposers, vec![(slot % 3) as usize], "slot {slot}");
        for engine in &mut engines {
            committed(engine, slot, now_ms);
        }
    }
}

#[test]
fn non_authority_never_proposes() {
    let locals = locals(2);
    let outsider = LocalHost::from_seed([99; 32]);
    let mut engine = started(&outsider, &keys(&locals));
    assert!(!engine.is_authority());
    for slot in 1..=10 {
        let effects = tick(&mut engine, slot * INTERVAL_MS);
        assert_eq!(effects, vec![Effect::TimerAt { at_ms: (slot + 1) * INTERVAL_MS }]);
    }
}

#[test]
fn block_from_the_leader_is_verified_then_committed_on_another_engine() {
    let locals = locals(3);
    let authorities = keys(&locals);
    let mut leader = started(&locals[1], &authorities);
    let mut follower = started(&locals[0], &authorities);
    assert_eq!(requests(&tick(&mut leader, 1000)), vec![(1, 1000)]);
    let effects =
        leader.handle(Input::Proposal { height: 1, unit_bytes: b"unit-1".to_vec().into() }).expect("proposal");
    let [Effect::Persist { .. }, Effect::Commit { certificate, .. }, Effect::Broadcast { bytes }] = effects.as_slice()
    else {
        panic!("unexpected {effects:?}");
    };
    let _ = tick(&mut follower, 1000);
    let effects = deliver(&mut follower, bytes.to_vec()).expect("valid block");
    // The seal binds the header: slot 1's leader as proposer, a timestamp inside slot 1.
    let expect = nest_sdk::UnitExpectation {
        proposer: nest_sdk::ROption::RSome(authorities[1]),
        not_before_ms: 1000,
        not_after_ms: 1999,
    };
    assert_eq!(effects, vec![Effect::Verify { unit_bytes: b"unit-1".to_vec().into(), expect }]);
    assert!(deliver(&mut follower, bytes.to_vec()).expect("duplicate").is_empty());
    let effects = follower.handle(Input::Verified { unit_digest: sha256(b"unit-1"), ok: true }).expect("verified");
    assert_eq!(
        effects,
        vec![Effect::Commit { unit_bytes: b"unit-1".to_vec().into(), certificate: certificate.clone() }]
    );
    let again = follower.handle(Input::Verified { unit_digest: sha256(b"unit-1"), ok: true });
    assert!(again.expect("forgotten").is_empty());
}

#[test]
fn unit_that_fails_verification_is_not_committed() {
    let locals = locals(3);
    let mut follower = started(&locals[0], &keys(&locals));
    let _ = tick(&mut follower, 1000);
    let _ = deliver(&mut follower, block(&locals[1], 1, b"bad")).expect("verify");
    let effects = follower.handle(Input::Verified { unit_digest: sha256(b"bad"), ok: false }).expect("verified");
    assert!(effects.is_empty());
}

/// A follower of three authorities at time 1000 ms (slot 1, led by `locals[1]`).
fn follower_at_slot_one() -> (Vec<LocalHost>, PoaEngine) {
    let locals = locals(3);
    let mut follower = started(&locals[0], &keys(&locals));
    let _ = tick(&mut follower, 1000);
    (locals, follower)
}

#[test]
fn block_signed_by_another_authority_is_rejected() {
    let (locals, mut follower) = follower_at_slot_one();
    let message = rejection(deliver(&mut follower, block(&locals[2], 1, b"unit")));
    assert!(message.contains("does not verify against the slot leader"), "{message}");
}

#[test]
fn block_with_a_bad_signature_is_rejected() {
    let (locals, mut follower) = follower_at_slot_one();
    let mut bytes = block(&locals[1], 1, b"unit");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let message = rejection(deliver(&mut follower, bytes));
    assert!(message.contains("seal of the block for slot 1"), "{message}");
}

/// Why `result` ignored its input (an honest peer's block of no use here).
fn ignored(result: Result<Vec<Effect>, PluginError>) -> String {
    match result.as_deref() {
        Ok([Effect::Ignore { reason }]) => reason.to_string(),
        other => panic!("expected the input ignored, got {other:?}"),
    }
}

/// A block its slot's leader sealed ahead of this node's clock is ignored, not held
/// against the sender (its clock may run ahead); a block for a far slot that its leader
/// did not seal is rejected.
#[test]
fn block_from_a_future_slot_is_ignored_and_a_forged_one_rejected() {
    let (locals, mut follower) = follower_at_slot_one();
    let reason = ignored(deliver(&mut follower, block(&locals[2], 2, b"unit")));
    assert!(reason.contains("from the future"), "{reason}");
    let far = u64::MAX;
    let leader = locals.iter().position(|local| local.host().public_key() == follower.leader(far)).unwrap();
    let reason = ignored(deliver(&mut follower, block(&locals[leader], far, b"unit")));
    assert!(reason.contains("from the future"), "{reason}");
    let forger = &locals[(leader + 1) % locals.len()];
    let message = rejection(deliver(&mut follower, block(forger, far, b"unit")));
    assert!(message.contains("does not verify against the slot leader"), "{message}");
    // Within max_clock_drift_ms (500 ms) of the slot start it is accepted.
    let _ = tick(&mut follower, 1500);
    assert_eq!(deliver(&mut follower, block(&locals[2], 2, b"unit")).expect("ok").len(), 1);
}

#[test]
fn block_for_a_committed_slot_is_ignored() {
    let (locals, mut follower) = follower_at_slot_one();
    committed(&mut follower, 1, 1000);
    let reason = ignored(deliver(&mut follower, block(&locals[1], 1, b"unit")));
    assert!(reason.contains("stale: the committed slot is 1"), "{reason}");
}

#[test]
fn garbage_and_oversized_messages_are_rejected_and_the_engine_stays_usable() {
    let (locals, mut follower) = follower_at_slot_one();
    for garbage in [vec![], vec![7], vec![0; 20], block(&locals[1], 1, b"unit")[..40].to_vec()] {
        let message = rejection(deliver(&mut follower, garbage));
        assert!(message.starts_with("malformed PoA message"), "{message}");
    }
    let mut trailing = block(&locals[1], 1, b"unit");
    trailing.push(0);
    let message = rejection(deliver(&mut follower, trailing));
    assert!(message.starts_with("malformed PoA message"), "{message}");
    let oversized = vec![0; DEFAULT_MAX_MESSAGE_BYTES as usize + 1];
    let message = rejection(deliver(&mut follower, oversized));
    assert!(message.contains("exceeds max_message_bytes"), "{message}");
    let effects = deliver(&mut follower, block(&locals[1], 1, b"unit")).expect("still usable");
    assert_eq!(effects.len(), 1);
}

#[test]
fn inputs_before_start_and_unrequested_proposals_are_rejected() {
    let local = LocalHost::from_seed([1; 32]);
    let config = PoaConfig::new(vec![local.host().public_key()], INTERVAL_MS);
    let mut engine = PoaEngine::new(config, local.host()).expect("engine");
    let message = rejection(engine.handle(Input::Tick { now_ms: 5 }));
    assert!(message.contains("not been started"), "{message}");
    let mut engine = started(&local, &[local.host().public_key()]);
    let proposal = |height: u64| Input::Proposal { height, unit_bytes: b"unit".to_vec().into() };
    let message = rejection(engine.handle(proposal(1)));
    assert!(message.contains("not asked for"), "{message}");
    let _ = tick(&mut engine, 1000);
    let message = rejection(engine.handle(proposal(7)));
    assert!(message.contains("outstanding request is for height 1"), "{message}");
    assert_eq!(engine.handle(proposal(1)).expect("asked for").len(), 3);
}

#[test]
fn equivocation_produces_evidence_with_a_checkable_proof() {
    let (locals, mut follower) = follower_at_slot_one();
    let leader = locals[1].host().public_key();
    assert_eq!(deliver(&mut follower, block(&locals[1], 1, b"one")).expect("first").len(), 1);
    let effects = deliver(&mut follower, block(&locals[1], 1, b"two")).expect("second");
    let [Effect::Evidence { offender, reason, bytes }] = effects.as_slice() else {
        panic!("expected evidence, got {effects:?}");
    };
    assert_eq!(*offender, leader);
    assert_eq!(reason.as_str(), "two blocks signed for slot 1");
    let proof: EquivocationProof = borsh::from_slice(bytes).expect("proof");
    assert_eq!(proof.first.unit_digest, sha256(b"one"));
    assert_eq!(proof.second.unit_digest, sha256(b"two"));
    assert!(proof.verifies(&locals[0].host()));
    assert!(deliver(&mut follower, block(&locals[1], 1, b"three")).expect("third").is_empty());
}

#[test]
fn snapshot_restore_round_trip() {
    let (locals, mut follower) = follower_at_slot_one();
    let _ = deliver(&mut follower, block(&locals[1], 1, b"one")).expect("first");
    let snapshot = follower.snapshot().expect("snapshot");
    let config = PoaConfig::new(keys(&locals), INTERVAL_MS);
    let mut restored = PoaEngine::new(config, locals[0].host()).expect("engine");
    restored.restore(&snapshot).expect("restore");
    assert_eq!(restored.snapshot().expect("snapshot"), snapshot);
    let effects = restored.handle(Input::Verified { unit_digest: sha256(b"one"), ok: true }).expect("verified");
    assert!(matches!(effects.as_slice(), [Effect::Commit { .. }]));
    let message = rejection(restored.restore(&snapshot[..snapshot.len() - 1]).map(|()| vec![]));
    assert!(message.starts_with("malformed snapshot"), "{message}");
    let mut wrong_version = snapshot;
    wrong_version[0] = 9;
    let message = rejection(restored.restore(&wrong_version).map(|()| vec![]));
    assert!(message.contains("snapshot version 9"), "{message}");
}

#[test]
fn config_parses_hex_keys_and_checks_ranges() {
    let locals = locals(3);
    let hex: Vec<String> = keys(&locals).iter().map(PublicKey::to_hex).collect();
    let json = format!(r#"{{"authorities": ["{}"], "block_interval_ms": 1000}}"#, hex[0]);
    let config: PoaConfig = nest_sdk::config::parse(&json).expect("parses");
    assert_eq!(config, PoaConfig::new(vec![keys(&locals)[0]], 1000));
    let missing = nest_sdk::config::parse::<PoaConfig>(r#"{"authorities": []}"#).unwrap_err();
    assert_eq!(missing.message, "missing field `block_interval_ms`");
    let bad_key =
        nest_sdk::config::parse::<PoaConfig>(r#"{"authorities": ["zz"], "block_interval_ms": 1000}"#).unwrap_err();
    assert_eq!(bad_key.path, "authorities[0]");
    let duplicate = PoaConfig::new(vec![keys(&locals)[0], keys(&locals)[1], keys(&locals)[0]], 1000);
    let error = PoaEngine::check_config(&duplicate).unwrap_err();
    assert_eq!((error.path.as_str(), error.message.as_str()), ("authorities[2]", "duplicate of authorities[0]"));
    let cases = [
        (PoaConfig::new(vec![], 1000), "authorities"),
        (PoaConfig::new(keys(&locals), 49), "block_interval_ms"),
        (PoaConfig::new(keys(&locals), 3_600_001), "block_interval_ms"),
        (PoaConfig { max_message_bytes: 10, ..PoaConfig::new(keys(&locals), 1000) }, "max_message_bytes"),
    ];
    for (config, path) in cases {
        assert_eq!(PoaEngine::check_config(&config).unwrap_err().path, path);
    }
}

/// One node: a PoA engine and a linear chain, wired the way the host wires them.
struct Node {
    engine: PoaEngine,
    chain: LinearChain,
    key: PublicKey,
}

impl Node {
    fn new(local: &LocalHost, authorities: &[PublicKey]) -> Self {
        let mut chain = LinearChain::new(LinearConfig::default(), local.host()).expect("chain");
        let genesis = chain.build(build_request(Hash32::ZERO, 0, 0, PublicKey::default())).expect("genesis");
        let genesis = chain.decode(&genesis).expect("genesis").to_ref();
        chain.start(genesis).expect("start");
        let config = PoaConfig::new(authorities.to_vec(), INTERVAL_MS);
        let mut engine = PoaEngine::new(config, local.host()).expect("engine");
        let _ = engine
            .handle(Input::Start { last_commit: to_commit(genesis), now_ms: 0, persisted: Default::default() })
            .expect("start");
        Self { engine, chain, key: local.host().public_key() }
    }

    /// Executes effects like the host: builds proposals, verifies, commits; returns
    /// the messages to broadcast and the heights that became final.
    fn run(&mut self, mut effects: Vec<Effect>) -> (Vec<Vec<u8>>, Vec<u64>) {
        let (mut broadcasts, mut finalized) = (Vec::new(), Vec::new());
        while !effects.is_empty() {
            let mut next = Vec::new();
            for effect in effects {
                next.extend(self.execute(effect, &mut broadcasts, &mut finalized));
            }
            effects = next;
        }
        (broadcasts, finalized)
    }

    fn execute(&mut self, effect: Effect, broadcasts: &mut Vec<Vec<u8>>, finalized: &mut Vec<u64>) -> Vec<Effect> {
        let input = match effect {
            Effect::RequestProposal { height, parent, timestamp_ms } => {
                let unit = self.chain.build(build_request(parent, height, timestamp_ms, self.key)).expect("build");
                Input::Proposal { height, unit_bytes: unit.into() }
            }
            Effect::Verify { unit_bytes, .. } => {
                Input::Verified { unit_digest: sha256(&unit_bytes), ok: self.chain.validate(&unit_bytes).is_ok() }
            }
            Effect::Commit { unit_bytes, certificate } => {
                let report = self.chain.insert(&unit_bytes, &certificate).expect("insert");
                finalized.extend(report.finalized.iter().map(|unit| unit.height));
                Input::Committed { last_commit: to_commit(report.head) }
            }
            Effect::Broadcast { bytes } => {
                broadcasts.push(bytes.into_vec());
                return Vec::new();
            }
            _ => return Vec::new(),
        };
        self.engine.handle(input).expect("engine accepts the host's answer")
    }
}

fn build_request(parent: Hash32, height: u64, timestamp_ms: u64, proposer: PublicKey) -> BuildRequest {
    let tx = format!("tx at height {height}").into_bytes();
    BuildRequest {
        parent,
        height,
        timestamp_ms,
        proposer,
        tx_root: sha256(&tx),
        state_digest: Hash32([height as u8; 32]),
        txs: vec![RVec::from(tx)].into(),
    }
}

fn to_commit(unit: UnitRef) -> LastCommit {
    LastCommit { height: unit.height, unit_hash: unit.hash, timestamp_ms: unit.timestamp_ms }
}

#[test]
fn one_engine_and_one_linear_chain_finalize_ten_blocks() {
    let local = LocalHost::from_seed([1; 32]);
    let mut node = Node::new(&local, &[local.host().public_key()]);
    let mut finalized = Vec::new();
    for slot in 1..=10 {
        let effects = tick(&mut node.engine, slot * INTERVAL_MS);
        let (broadcasts, heights) = node.run(effects);
        assert_eq!(broadcasts.len(), 1, "slot {slot}");
        finalized.extend(heights);
    }
    assert_eq!(finalized, (1..=10).collect::<Vec<u64>>());
    assert_eq!(node.chain.head().height, 10);
}

#[test]
fn three_nodes_agree_on_one_chain() {
    let locals = locals(3);
    let authorities = keys(&locals);
    let mut nodes: Vec<Node> = locals.iter().map(|local| Node::new(local, &authorities)).collect();
    for slot in 1..=9 {
        let now_ms = slot * INTERVAL_MS;
        let mut outbox = Vec::new();
        for (sender, node) in nodes.iter_mut().enumerate() {
            let effects = tick(&mut node.engine, now_ms);
            outbox.extend(node.run(effects).0.into_iter().map(|bytes| (sender, bytes)));
        }
        assert_eq!(outbox.len(), 1, "one block in slot {slot}");
        // Broadcast reaches every peer but the sender.
        for (receiver, node) in nodes.iter_mut().enumerate() {
            for (_, bytes) in outbox.iter().filter(|(sender, _)| *sender != receiver) {
                let effects = match deliver(&mut node.engine, bytes.clone()) {
                    Ok(effects) => effects,
                    Err(error) => panic!("slot {slot}: {error}"),
                };
                let _ = node.run(effects);
            }
        }
    }
    let heads: Vec<UnitRef> = nodes.iter().map(|node| node.chain.head()).collect();
    assert_eq!(heads[0].height, 9);
    assert!(heads.iter().all(|head| *head == heads[0]), "{heads:?}");
}

#[test]
fn synced_block_with_its_leaders_seal_is_verified_and_a_forged_certificate_is_refused() {
    let (locals, mut follower) = follower_at_slot_one();
    let unit = b"synced unit".to_vec();
    let slot = 1;
    let leader = &locals[(slot % locals.len() as u64) as usize];
    let signature = leader.host().sign(&seal_message(slot, &nest_sdk::testing::sha256(&unit)));
    let seal = Seal { slot, signer: leader.host().public_key(), signature };
    let certificate = borsh::to_vec(&seal).unwrap();
    let effects = follower
        .handle(Input::Sync {
            unit_bytes: unit.clone().into(),
            certificate: certificate.into(),
            finality: Default::default(),
        })
        .unwrap();
    assert!(matches!(effects.as_slice(), [Effect::Verify { .. }]), "{effects:?}");

    let other = &locals[((slot + 1) % locals.len() as u64) as usize];
    let forged = Seal { slot, signer: other.host().public_key(), signature };
    let result = follower.handle(Input::Sync {
        unit_bytes: unit.into(),
        certificate: borsh::to_vec(&forged).unwrap().into(),
        finality: Default::default(),
    });
    assert!(rejection(result).contains("not signed by that slot's leader"));
    let garbage = follower.handle(Input::Sync {
        unit_bytes: vec![1].into(),
        certificate: vec![9, 9].into(),
        finality: Default::default(),
    });
    assert!(rejection(garbage).contains("malformed PoA certificate"));
}

#[test]
fn a_block_that_failed_verification_is_verified_again_when_it_comes_back() {
    let (locals, mut follower) = follower_at_slot_one();
    let bytes = block(&locals[1], 1, b"unit whose parent arrives later");
    let first = deliver(&mut follower, bytes.clone()).unwrap();
    let Some(Effect::Verify { unit_bytes, .. }) = first.first() else { panic!("expected Verify, got {first:?}") };
    let unit_digest = nest_sdk::testing::sha256(unit_bytes);
    assert!(follower.handle(Input::Verified { unit_digest, ok: false }).unwrap().is_empty());
    let again = deliver(&mut follower, bytes).unwrap();
    assert!(matches!(again.as_slice(), [Effect::Verify { .. }]), "the block is checked again: {again:?}");
}

fn unit(height: u64, hash_byte: u8) -> LastCommit {
    LastCommit { height, unit_hash: Hash32([hash_byte; 32]), timestamp_ms: height * INTERVAL_MS }
}

/// A new head whose branch above genesis holds units with these hash bytes, from height 1.
fn head_on(hash_bytes: &[u8]) -> Input {
    let branch: Vec<LastCommit> =
        hash_bytes.iter().enumerate().map(|(index, byte)| unit(index as u64 + 1, *byte)).collect();
    let head = branch.last().cloned().unwrap_or_else(genesis);
    Input::Head { head, branch: branch.into() }
}

fn vote(voter: &LocalHost, height: u64, unit_hash: Hash32) -> Vec<u8> {
    let signature = voter.host().sign(&vote_message(height, &unit_hash));
    let message = PoaMessage::Vote { height, unit_hash, voter: voter.host().public_key(), signature };
    borsh::to_vec(&message).expect("encode")
}

/// The own votes in `effects` as (height, unit hash byte), checking that each is
/// persisted under its ring key, then broadcast, then attested.
fn own_votes(local: &LocalHost, effects: &[Effect]) -> Vec<(u64, u8)> {
    assert_eq!(effects.len() % 3, 0, "{effects:?}");
    effects
        .chunks(3)
        .map(|vote| {
            let [
                Effect::Persist { key, bytes: stored },
                Effect::Broadcast { bytes },
                Effect::Attest { unit_hash, authority },
            ] = vote
            else {
                panic!("expected Persist, Broadcast, Attest, got {vote:?}");
            };
            let Ok(PoaMessage::Vote { height, unit_hash: voted, voter, signature }) = borsh::from_slice(bytes) else {
                panic!("expected a vote message");
            };
            assert_eq!((voter, *authority, voted), (local.host().public_key(), voter, *unit_hash));
            assert!(local.host().verify(&voter, &vote_message(height, &voted), &signature));
            let mut expected_key = b"vote/".to_vec();
            expected_key.extend((height % VOTE_KEYS).to_be_bytes());
            assert_eq!(key.as_slice(), expected_key.as_slice());
            assert_eq!(
                borsh::from_slice::<(u64, Hash32, Signature)>(stored).expect("stored"),
                (height, voted, signature)
            );
            (height, voted.0[0])
        })
        .collect()
}

#[test]
fn an_authority_votes_once_per_height_for_its_new_head() {
    let locals = locals(3);
    let mut engine = started(&locals[0], &keys(&locals));
    let effects = engine.handle(head_on(&[7])).expect("head");
    assert_eq!(own_votes(&locals[0], &effects), vec![(1, 7)]);
    // Fork choice moves to another unit at the same height: no second vote.
    assert!(engine.handle(head_on(&[8])).expect("head").is_empty());
    let effects = engine.handle(head_on(&[7, 9])).expect("head");
    assert_eq!(own_votes(&locals[0], &effects), vec![(2, 9)]);
}

#[test]
fn an_authority_votes_at_every_height_of_its_branch_lowest_first() {
    let locals = locals(4);
    let mut engine = started(&locals[0], &keys(&locals));
    let effects = engine.handle(head_on(&[1, 2, 3])).expect("head");
    assert_eq!(own_votes(&locals[0], &effects), vec![(1, 1), (2, 2), (3, 3)]);
    let effects = engine.handle(head_on(&[1, 2, 3, 4, 5])).expect("head");
    assert_eq!(own_votes(&locals[0], &effects), vec![(4, 4), (5, 5)], "only the heights not voted yet");
}

#[test]
fn a_vote_locks_its_height_against_votes_on_another_branch() {
    let locals = locals(4);
    let mut engine = started(&locals[0], &keys(&locals));
    let _ = engine.handle(head_on(&[0x10])).expect("vote for X at 1");
    // Fork choice moves to Y at height 1 and its child: no vote at 1 (voted), none at 2 (locked on X).
    assert!(engine.handle(head_on(&[0x20, 0x21])).expect("head").is_empty());
    // One other vote for Y at 1 is not enough: n − q = 1 others could still leave X a quorum.
    let y = Hash32([0x20; 32]);
    let effects = deliver(&mut engine, vote(&locals[1], 1, y)).expect("vote");
    assert_eq!(effects, vec![Effect::Attest { unit_hash: y, authority: locals[1].host().public_key() }]);
    assert!(engine.handle(head_on(&[0x20, 0x21])).expect("head").is_empty(), "still locked");
}

#[test]
fn a_lock_is_released_once_more_than_n_minus_q_others_voted_elsewhere() {
    let locals = locals(4);
    let mut engine = started(&locals[0], &keys(&locals));
    let _ = engine.handle(head_on(&[0x10])).expect("vote for X at 1");
    assert!(engine.handle(head_on(&[0x20, 0x21])).expect("head").is_empty());
    let y = Hash32([0x20; 32]);
    let _ = deliver(&mut engine, vote(&locals[1], 1, y)).expect("first vote for Y");
    // A vote for X changes nothing: it is no vote elsewhere.
    let effects = deliver(&mut engine, vote(&locals[3], 1, Hash32([0x10; 32]))).expect("vote for X");
    assert_eq!(effects.len(), 1);
    let effects = deliver(&mut engine, vote(&locals[2], 1, y)).expect("second vote for Y");
    let (attest, votes) = effects.split_at(1);
    assert_eq!(attest, [Effect::Attest { unit_hash: y, authority: locals[2].host().public_key() }]);
    assert_eq!(own_votes(&locals[0], votes), vec![(2, 0x21)], "X can no longer gather 3 of 4: vote on Y's branch");
}

#[test]
fn a_restarted_engine_neither_votes_again_at_a_height_nor_seals_again_in_a_slot() {
    let locals = locals(3);
    let authorities = keys(&locals);
    let mut engine = started(&locals[1], &authorities);
    let mut persisted: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut keep = |effects: &[Effect]| {
        for effect in effects {
            if let Effect::Persist { key, bytes } = effect {
                persisted.insert(key.to_vec(), bytes.to_vec());
            }
        }
    };
    assert_eq!(requests(&tick(&mut engine, 1000)), vec![(1, 1000)]);
    keep(&engine.handle(Input::Proposal { height: 1, unit_bytes: b"unit".to_vec().into() }).expect("proposal"));
    keep(&engine.handle(head_on(&[0x10])).expect("vote"));
    assert_eq!(persisted.len(), 2, "the slot and the vote");
    let mut entries: Vec<Persisted> = persisted
        .iter()
        .map(|(key, bytes)| Persisted { key: key.clone().into(), bytes: bytes.clone().into() })
        .collect();
    // Malformed entries are skipped, not fatal.
    for (key, bytes) in [(&b"vote/"[..], &[1u8][..]), (b"unknown", b""), (b"proposed", b"x")] {
        entries.push(Persisted { key: key.to_vec().into(), bytes: bytes.to_vec().into() });
    }
    let mut wrong_key = b"vote/".to_vec();
    wrong_key.extend(7u64.to_be_bytes());
    entries.push(Persisted { key: wrong_key.into(), bytes: persisted[&vote_key_of(1)].clone().into() });

    let mut restarted =
        PoaEngine::new(PoaConfig::new(authorities.clone(), INTERVAL_MS), locals[1].host()).expect("new");
    let start = Input::Start { last_commit: genesis(), now_ms: 1500, persisted: entries.clone().into() };
    let effects = restarted.handle(start).expect("start");
    let me = authorities[1];
    assert_eq!(
        effects,
        vec![Effect::TimerAt { at_ms: 2000 }, Effect::Attest { unit_hash: Hash32([0x10; 32]), authority: me }]
    );
    let warnings = locals[1].logs.lock().expect("logs").iter().filter(|(_, line)| line.contains("ignored")).count();
    assert_eq!(warnings, 4, "each malformed entry is logged");
    assert!(requests(&tick(&mut restarted, 1600)).is_empty(), "slot 1 was sealed before the restart");
    assert!(restarted.handle(head_on(&[0x20])).expect("head").is_empty(), "voted at 1 before the restart");
    let effects = restarted.handle(head_on(&[0x10, 0x11])).expect("head");
    assert_eq!(own_votes(&locals[1], &effects), vec![(2, 0x11)]);

    // A vote at or below the final height is stale: not restored.
    let mut after_final = PoaEngine::new(PoaConfig::new(authorities, INTERVAL_MS), locals[1].host()).expect("new");
    let start = Input::Start { last_commit: unit(1, 0x10), now_ms: 1500, persisted: entries.into() };
    assert_eq!(after_final.handle(start).expect("start"), vec![Effect::TimerAt { at_ms: 2000 }]);
}

fn vote_key_of(height: u64) -> Vec<u8> {
    let mut key = b"vote/".to_vec();
    key.extend((height % VOTE_KEYS).to_be_bytes());
    key
}

/// The heights of the votes broadcast in `effects`.
fn broadcast_vote_heights(effects: &[Effect]) -> Vec<u64> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Broadcast { bytes } => match borsh::from_slice(bytes) {
                Ok(PoaMessage::VoteAgain { height, .. }) => Some(height),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn known_votes_are_sent_again_once_finality_stalls_in_bounded_rounds_that_go_on() {
    let locals = locals(3);
    let mut engine = started(&locals[0], &keys(&locals));
    let branch: Vec<u8> = (1..=70).collect();
    assert_eq!(own_votes(&locals[0], &engine.handle(head_on(&branch)).expect("head")).len(), 70);
    assert!(broadcast_vote_heights(&tick(&mut engine, 1000)).is_empty(), "one slot is not a stall");
    let first = tick(&mut engine, 2000);
    assert_eq!(broadcast_vote_heights(&first), (1..=VOTES_RESENT_MAX as u64).collect::<Vec<_>>());
    // The next round goes on where this one stopped, then starts over.
    let second = tick(&mut engine, 2500);
    let expected: Vec<u64> = (65..=70).chain(1..=58).collect();
    assert_eq!(broadcast_vote_heights(&second), expected);
    // Gossip drops bytes it has seen: each sending differs, and a peer counts it as the vote.
    let again = tick(&mut engine, 3000);
    let at_height_one = |effects: &[Effect]| {
        effects
            .iter()
            .find_map(|effect| match effect {
                Effect::Broadcast { bytes } => match borsh::from_slice(bytes) {
                    Ok(PoaMessage::VoteAgain { height: 1, .. }) => Some(bytes.to_vec()),
                    _ => None,
                },
                _ => None,
            })
            .expect("the vote at height 1 is in the round")
    };
    let (earlier, later) = (at_height_one(&first), at_height_one(&again));
    assert_ne!(earlier, later, "re-sent votes carry the time they were sent");
    let mut peer = started(&locals[1], &keys(&locals));
    let voter = locals[0].host().public_key();
    let expected = vec![Effect::Attest { unit_hash: Hash32([1; 32]), authority: voter }];
    assert_eq!(deliver(&mut peer, later).expect("re-sent vote"), expected);
    committed(&mut engine, 10, 3000);
    assert!(broadcast_vote_heights(&tick(&mut engine, 4000)).is_empty(), "finality moved at 3000 ms");
    let resent = broadcast_vote_heights(&tick(&mut engine, 5500));
    assert!(resent.iter().all(|height| *height > 10), "only votes above the final height: {resent:?}");
}

#[test]
fn votes_received_from_others_are_relayed_while_finality_stalls() {
    let locals = locals(4);
    let mut engine = started(&locals[0], &keys(&locals));
    let unit = Hash32([3; 32]);
    let _ = deliver(&mut engine, vote(&locals[3], 1, unit)).expect("a vote from an authority");
    let relayed: Vec<(u64, PublicKey)> = tick(&mut engine, 2000)
        .iter()
        .filter_map(|effect| match effect {
            Effect::Broadcast { bytes } => match borsh::from_slice(bytes) {
                Ok(PoaMessage::VoteAgain { height, voter, .. }) => Some((height, voter)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(relayed, vec![(1, locals[3].host().public_key())], "the other authority's vote goes on");
}

#[test]
fn a_follower_does_not_vote() {
    let locals = locals(3);
    let follower = LocalHost::from_seed([42; 32]);
    let mut engine = started(&follower, &keys(&locals));
    assert!(engine.handle(head_on(&[7])).expect("head").is_empty());
}

#[test]
fn checked_votes_attest_and_bad_votes_are_refused_or_reported() {
    let locals = locals(3);
    let mut engine = started(&locals[0], &keys(&locals));
    let unit = Hash32([5; 32]);
    let voter = locals[1].host().public_key();
    let effects = deliver(&mut engine, vote(&locals[1], 2, unit)).expect("vote");
    assert_eq!(effects, vec![Effect::Attest { unit_hash: unit, authority: voter }]);
    assert!(deliver(&mut engine, vote(&locals[1], 2, unit)).expect("duplicate").is_empty());
    let double = deliver(&mut engine, vote(&locals[1], 2, Hash32([6; 32]))).expect("double vote");
    assert!(matches!(double.as_slice(), [Effect::Evidence { offender, .. }] if *offender == voter));
    let outsider = LocalHost::from_seed([42; 32]);
    assert!(rejection(deliver(&mut engine, vote(&outsider, 2, unit))).contains("not an authority"));
    let mut forged = vote(&locals[2], 3, unit);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(rejection(deliver(&mut engine, forged)).contains("does not verify"));
    let far = VOTE_HEIGHT_AHEAD_MAX + 1;
    assert!(rejection(deliver(&mut engine, vote(&locals[2], far, unit))).contains("above the final height"));
    committed(&mut engine, 4, 4 * INTERVAL_MS);
    assert!(deliver(&mut engine, vote(&locals[2], 4, unit)).expect("stale vote").is_empty());
}

#[test]
fn tolerated_faults_exclude_twins() {
    assert_eq!(TOLERATED_FAULTS, ["delay", "loss", "partition", "crash"]);
    assert!(!TOLERATED_FAULTS.contains(&"twins"), "a key with two faces can double vote and release locks");
    let quoted: Vec<String> = TOLERATED_FAULTS.iter().map(|family| format!("\"{family}\"")).collect();
    let declared = format!("tolerates = [{}]", quoted.join(", "));
    assert!(include_str!("../plugin.toml").contains(&declared), "plugin.toml declares {declared}");
}

fn sealed_sync(locals: &[LocalHost], unit: &[u8], finality: Vec<u8>) -> Input {
    let slot = 1;
    let leader = &locals[(slot % locals.len() as u64) as usize];
    let signature = leader.host().sign(&seal_message(slot, &sha256(unit)));
    let seal = Seal { slot, signer: leader.host().public_key(), signature };
    Input::Sync {
        unit_bytes: unit.to_vec().into(),
        certificate: borsh::to_vec(&seal).unwrap().into(),
        finality: finality.into(),
    }
}

fn proof_by(voters: &[LocalHost], height: u64, unit_hash: Hash32) -> FinalityProof {
    let votes = voters
        .iter()
        .map(|local| (local.host().public_key(), local.host().sign(&vote_message(height, &unit_hash))))
        .collect();
    FinalityProof { height, unit_hash, votes }
}

#[test]
fn a_synced_finality_proof_hands_its_votes_to_the_chain_type_and_is_certified_again() {
    let (locals, mut follower) = follower_at_slot_one();
    let unit_hash = Hash32([0x51; 32]);
    let proof = proof_by(&locals, 1, unit_hash);
    let effects = follower.handle(sealed_sync(&locals, b"final unit", borsh::to_vec(&proof).unwrap())).unwrap();
    assert!(matches!(effects.first(), Some(Effect::Verify { .. })), "{effects:?}");
    let attested: Vec<PublicKey> = effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Attest { unit_hash: hash, authority } if *hash == unit_hash => Some(*authority),
            _ => None,
        })
        .collect();
    assert_eq!(attested, keys(&locals), "{effects:?}");
    let certified = effects.iter().find_map(|effect| match effect {
        Effect::Certify { unit_hash: hash, proof } if *hash == unit_hash => Some(proof.clone()),
        _ => None,
    });
    let certified: FinalityProof = borsh::from_slice(&certified.expect("certified once a quorum is known")).unwrap();
    assert_eq!(certified.votes.len(), 3);
}

#[test]
fn a_finality_proof_short_of_a_quorum_forged_or_repeating_a_voter_is_refused() {
    let (locals, mut follower) = follower_at_slot_one();
    let unit_hash = Hash32([0x52; 32]);
    let short = proof_by(&locals[1..2], 1, unit_hash);
    let message = rejection(follower.handle(sealed_sync(&locals, b"u", borsh::to_vec(&short).unwrap())));
    assert!(message.contains("fewer than the quorum"), "{message}");
    let mut forged = proof_by(&locals, 1, unit_hash);
    forged.votes[2].1 = Signature([7; 64]);
    let message = rejection(follower.handle(sealed_sync(&locals, b"u", borsh::to_vec(&forged).unwrap())));
    assert!(message.contains("does not verify"), "{message}");
    let mut repeated = proof_by(&locals, 1, unit_hash);
    repeated.votes[2] = repeated.votes[1];
    let message = rejection(follower.handle(sealed_sync(&locals, b"u", borsh::to_vec(&repeated).unwrap())));
    assert!(message.contains("not a distinct authority"), "{message}");
    let message = rejection(follower.handle(sealed_sync(&locals, b"u", vec![0xFF; 9])));
    assert!(message.contains("malformed finality proof"), "{message}");
}

#[test]
fn a_vote_lists_its_signature_for_the_host_and_a_block_lists_none() {
    let all = locals(2);
    let host = all[0].host();
    let listed = PoaEngine::message_signatures(&vote(&all[1], 3, Hash32([7; 32])), &host);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, all[1].host().public_key());
    assert!(host.verify(&listed[0].key, &listed[0].message, &listed[0].signature));
    let mut forged: PoaMessage = borsh::from_slice(&vote(&all[1], 3, Hash32([7; 32]))).unwrap();
    if let PoaMessage::Vote { signature, .. } = &mut forged {
        signature.0[0] ^= 1;
    }
    let listed = PoaEngine::message_signatures(&borsh::to_vec(&forged).unwrap(), &host);
    assert!(!host.verify(&listed[0].key, &listed[0].message, &listed[0].signature));
    let block = PoaMessage::Block { slot: 1, unit: vec![1, 2, 3], signature: Signature([0; 64]) };
    assert!(PoaEngine::message_signatures(&borsh::to_vec(&block).unwrap(), &host).is_empty());
    assert!(PoaEngine::message_signatures(b"not a message", &host).is_empty());
}
