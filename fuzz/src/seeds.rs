//! Small valid inputs for each target, plus a few edge cases: the committed seed corpora
//! under `fuzz/seeds/<target>/` (written by `cargo run --example seeds`).

use crate::{
    consensus_bft::Bft,
    consensus_poa::Poa,
    engine::{self, Fixture},
    reassembler,
    steps::step,
    unit_dag, unit_linear,
};
use consensus_bft::{Body, Envelope, Proposal, SignedProposal, Vote, VoteKind};
use consensus_poa::{FinalityProof, PoaMessage, Seal};
use nest_api::{
    net::{SyncBlock, SyncRequest, SyncResponse, WireResponse},
    package::PackageManifest,
};
use nest_ledger::{
    crypto::SecretKey,
    ledger::{SignedTx, TxBody, UnsignedTx, device::DeviceTx, staking::StakingTx},
};
use nest_sdk::{
    BuildRequest, ChainType, Hash32, PluginKind, PublicKey, Signature,
    certificate::{CommitCertificate, DoubleVote, Offence},
    device::{DeviceEnvelope, KIND_READING},
    fragment::fragment,
    testing::{LocalHost, sha256},
};

/// One seed: the target, a file name, the bytes.
pub type Seed = (&'static str, String, Vec<u8>);

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut add = |target: &'static str, items: Vec<(&str, Vec<u8>)>| {
        seeds.extend(items.into_iter().map(|(name, bytes)| (target, name.to_string(), bytes)));
    };
    add("tx", tx());
    add("unit_linear", unit_linear());
    add("unit_dag", unit_dag());
    add("consensus_poa", consensus_poa());
    add("consensus_bft", consensus_bft());
    add("certificate", certificate());
    add("net_codec", net_codec());
    add("device_envelope", device_envelope());
    add("reassembler", reassembler());
    add("plugin_toml", plugin_toml());
    add("manifest", manifest());
    add("api_json", api_json());
    add("light_block", light_block());
    seeds
}

/// A validator the fixtures' `pick` maps to index `index`.
fn picks(index: u8) -> PublicKey {
    PublicKey([index; 32])
}

fn signed(body: TxBody, nonce: u64) -> SignedTx {
    let key = SecretKey::from_seed([7; 32]);
    UnsignedTx { chain: Hash32([0xC1; 32]), from: key.public_key(), nonce, fee: 1000, body }.sign(&key)
}

fn vote(kind: VoteKind, height: u64, round: u32, value: Option<Hash32>, validator: u8) -> Vote {
    Vote { kind, height, round, value, validator: picks(validator), signature: Signature([0; 64]) }
}

/// A double precommit by validator 1, signed by its real key.
fn double_vote() -> DoubleVote {
    let local = LocalHost::from_seed([1; 32]).host();
    let sign = |value: Hash32| {
        let message = consensus_bft::vote_message(VoteKind::Precommit, 3, 0, Some(&value));
        Vote {
            kind: VoteKind::Precommit,
            height: 3,
            round: 0,
            value: Some(value),
            validator: local.public_key(),
            signature: local.sign(&message),
        }
    };
    DoubleVote { first: sign(Hash32([1; 32])), second: sign(Hash32([2; 32])) }
}

fn tx() -> Vec<(&'static str, Vec<u8>)> {
    let transfer = signed(TxBody::Transfer { to: PublicKey([9; 32]), amount: 5000 }, 0);
    let device_key = crate::device_envelope::device_key().public_key().to_vec();
    let register = signed(
        TxBody::Device(DeviceTx::Register {
            device_uid: Hash32([3; 32]),
            public_key: device_key,
            class: "thermo".into(),
        }),
        1,
    );
    let evidence = signed(TxBody::Evidence(Offence::DoubleVote(double_vote())), 2);
    let vote = signed(TxBody::Staking(StakingTx::Vote { delegates: vec![PublicKey([4; 32]), PublicKey([5; 32])] }), 3);
    let register_delegate = signed(
        TxBody::Staking(StakingTx::RegisterDelegate { node_key: PublicKey([6; 32]), name: "gateway-1".into() }),
        4,
    );
    let mut trailing = transfer.encode();
    trailing.push(0);
    vec![
        ("transfer", transfer.encode()),
        ("device-register", register.encode()),
        ("evidence", evidence.encode()),
        ("staking-vote", vote.encode()),
        ("staking-register", register_delegate.encode()),
        ("trailing-byte", trailing),
        ("truncated", transfer.encode()[..40].to_vec()),
        ("empty", Vec::new()),
    ]
}

/// Units at heights 1 and 2 on the fuzzed chain type's genesis, and their hashes.
pub fn linear_units() -> Vec<(Vec<u8>, Hash32)> {
    let host = unit_linear::host();
    let mut chain = chain_linear::LinearChain::new(unit_linear::config(0), host.host()).expect("config");
    chain.start(unit_linear::genesis()).expect("start");
    let mut parent = unit_linear::genesis().hash;
    let mut units = Vec::new();
    for height in 1..=2u64 {
        let request = BuildRequest {
            parent,
            height,
            timestamp_ms: height * 1000,
            proposer: host.host().public_key(),
            tx_root: Hash32([height as u8; 32]),
            state_digest: Hash32([0x5D; 32]),
            txs: vec![signed(TxBody::Transfer { to: PublicKey([9; 32]), amount: height }, height).encode().into()]
                .into(),
        };
        let bytes = chain.build(request).expect("build");
        let hash = chain.decode(&bytes).expect("decode").hash;
        units.push((bytes, hash));
        parent = hash;
    }
    units
}

fn unit_linear() -> Vec<(&'static str, Vec<u8>)> {
    use unit_linear::{ATTEST, DECODE, INSERT, RESTORE, SNAPSHOT, VALIDATE};
    let units = linear_units();
    let (one, two) = (&units[0].0, &units[1].0);
    let chain = |selector: u8, steps: Vec<Vec<u8>>| [vec![selector], steps.concat()].concat();
    vec![
        (
            "two-units-by-depth",
            chain(0, vec![step(VALIDATE, one), step(INSERT, one), step(INSERT, two), step(SNAPSHOT, &[])]),
        ),
        (
            "two-units-by-votes",
            chain(
                1,
                vec![
                    step(INSERT, one),
                    step(INSERT, two),
                    step(DECODE, one),
                    step(ATTEST, &[1, 0]),
                    step(ATTEST, &[1, 1]),
                    step(SNAPSHOT, &[]),
                ],
            ),
        ),
        ("orphan-and-garbage", chain(0, vec![step(INSERT, two), step(DECODE, &[0xFF; 16]), step(RESTORE, &[3, 1])])),
    ]
}

/// Three units on the fuzzed DAG's genesis, each approving the one before, as the fuzzed
/// node built them.
fn dag_units() -> Vec<Vec<u8>> {
    let host = unit_dag::host();
    let mut chain = chain_dag::DagChain::new(unit_dag::config(), host.host()).expect("config");
    chain.start(unit_dag::genesis()).expect("start");
    (1..=3u64)
        .map(|i| {
            let request = BuildRequest {
                parent: Hash32::ZERO,
                height: 1,
                timestamp_ms: 1_000 + i,
                proposer: host.host().public_key(),
                tx_root: Hash32([i as u8; 32]),
                state_digest: Hash32::ZERO,
                txs: vec![signed(TxBody::Transfer { to: PublicKey([9; 32]), amount: i }, i).encode().into()].into(),
            };
            let bytes = chain.build(request).expect("build");
            chain.insert(&bytes, &[]).expect("insert");
            bytes
        })
        .collect()
}

fn unit_dag() -> Vec<(&'static str, Vec<u8>)> {
    use unit_dag::{CHECKPOINT, DECODE, INSERT, RESTORE, SNAPSHOT, VALIDATE};
    let units = dag_units();
    vec![
        (
            "three-units-and-a-checkpoint",
            [
                step(VALIDATE, &units[0]),
                step(INSERT, &units[0]),
                step(INSERT, &units[1]),
                step(INSERT, &units[2]),
                step(CHECKPOINT, &[2]),
                step(SNAPSHOT, &[]),
                step(CHECKPOINT, &[3]),
            ]
            .concat(),
        ),
        ("orphan-and-garbage", [step(INSERT, &units[1]), step(DECODE, &[0xFF; 16]), step(RESTORE, &[1, 0])].concat()),
    ]
}

fn consensus_poa() -> Vec<(&'static str, Vec<u8>)> {
    use engine::{COMMITTED, MESSAGE, PROPOSAL, SIGNED_MESSAGE, SYNC, TICK, VERIFIED};
    let poa = Poa::default();
    let unit = linear_units().remove(0).0;
    let hash = sha256(&unit);
    let block = PoaMessage::Block { slot: 1, unit: unit.clone(), signature: Signature([0; 64]) };
    let vote =
        |voter: u8| PoaMessage::Vote { height: 1, unit_hash: hash, voter: picks(voter), signature: Signature([0; 64]) };
    let again = PoaMessage::VoteAgain {
        height: 1,
        unit_hash: hash,
        voter: picks(2),
        signature: Signature([0; 64]),
        sent_ms: 5,
    };
    let encode = |message: &PoaMessage| borsh::to_vec(message).expect("encode");
    let seal = borsh::to_vec(&Seal { slot: 1, signer: picks(1), signature: Signature([0; 64]) }).expect("seal");
    let proof =
        FinalityProof { height: 1, unit_hash: hash, votes: (0..3).map(|i| (picks(i), Signature([0; 64]))).collect() };
    let sync = borsh::to_vec(&(unit.clone(), seal, borsh::to_vec(&proof).expect("proof"))).expect("sync");
    let tick = |ms: u64| step(TICK, &ms.to_le_bytes());
    let received = [
        tick(1000),
        step(SIGNED_MESSAGE, &encode(&block)),
        step(VERIFIED, &[0, 0]),
        step(SIGNED_MESSAGE, &encode(&vote(1))),
        step(SIGNED_MESSAGE, &encode(&vote(2))),
        step(SIGNED_MESSAGE, &encode(&again)),
        step(COMMITTED, &[]),
    ]
    .concat();
    let proposing = [tick(3000), step(PROPOSAL, &unit), step(COMMITTED, &[]), tick(1000)].concat();
    let signed_block = poa.signed_message(&encode(&block)).expect("a block signs");
    vec![
        ("receive-vote-commit", received),
        ("propose-own-slot", proposing),
        ("sync-with-proof", [step(SYNC, &sync), step(VERIFIED, &[0, 0])].concat()),
        ("raw-signed-block", step(MESSAGE, &signed_block)),
        ("garbage", step(MESSAGE, &[0xFF; 24])),
    ]
}

fn consensus_bft() -> Vec<(&'static str, Vec<u8>)> {
    use engine::{COMMITTED, MESSAGE, PROPOSAL, SIGNED_MESSAGE, SNAPSHOT, SYNC, TICK, VERIFIED};
    let unit = linear_units().remove(0).0;
    let value = sha256(&unit);
    let envelope = |body: Body| borsh::to_vec(&Envelope { sent_ms: 7, body }).expect("encode");
    let proposals: Vec<Vec<u8>> = (0..4)
        .map(|proposer| {
            let proposal = Proposal {
                height: 1,
                round: 0,
                valid_round: None,
                unit: unit.clone(),
                proposer: picks(proposer),
                signature: Signature([0; 64]),
            };
            step(SIGNED_MESSAGE, &envelope(Body::Proposal(proposal)))
        })
        .collect();
    let votes = |kind: VoteKind| -> Vec<u8> {
        (1..4)
            .map(|v| step(SIGNED_MESSAGE, &envelope(Body::Vote(vote(kind, 1, 0, Some(value), v)))))
            .collect::<Vec<_>>()
            .concat()
    };
    let certificate = CommitCertificate {
        height: 1,
        round: 0,
        value,
        signatures: (1..4).map(|v| (picks(v), Signature([0; 64]))).collect(),
    };
    let decided = envelope(Body::Decided { unit: unit.clone(), certificate: certificate.clone() });
    let seen = SignedProposal {
        height: 1,
        round: 0,
        valid_round: None,
        value: Hash32([4; 32]),
        proposer: picks(2),
        signature: Signature([0; 64]),
    };
    let sync =
        borsh::to_vec(&(unit.clone(), borsh::to_vec(&certificate).expect("cert"), Vec::<u8>::new())).expect("sync");
    let tick = |ms: u64| step(TICK, &ms.to_le_bytes());
    let round = [
        vec![tick(1)],
        proposals,
        vec![
            step(VERIFIED, &[0, 0]),
            votes(VoteKind::Prevote),
            votes(VoteKind::Precommit),
            step(COMMITTED, &[]),
            tick(2000),
        ],
    ]
    .concat()
    .concat();
    let timeouts = [tick(1), tick(5000), step(PROPOSAL, &unit), tick(5000), tick(5000), step(SNAPSHOT, &[])].concat();
    vec![
        ("round-decides", round),
        ("timeouts-and-proposal", timeouts),
        ("decided", [tick(1), step(SIGNED_MESSAGE, &decided)].concat()),
        ("proposal-seen", step(SIGNED_MESSAGE, &envelope(Body::ProposalSeen(seen)))),
        ("sync-certificate", [step(SYNC, &sync), step(VERIFIED, &[0, 0])].concat()),
        ("garbage", step(MESSAGE, &[0x03; 40])),
    ]
}

fn certificate() -> Vec<(&'static str, Vec<u8>)> {
    let bft = Bft::default();
    let unit = b"unit".to_vec();
    let certificate = CommitCertificate {
        height: 2,
        round: 1,
        value: Hash32::ZERO,
        signatures: (0..3).map(|v| (picks(v), Signature([0; 64]))).collect(),
    };
    let certificate = bft.sign_certificate(&unit, certificate);
    let double_vote = double_vote();
    vec![
        ("certificate", borsh::to_vec(&certificate).expect("encode")),
        ("offence-double-vote", borsh::to_vec(&Offence::DoubleVote(double_vote.clone())).expect("encode")),
        ("double-vote", borsh::to_vec(&double_vote).expect("encode")),
        ("offence-out-of-turn", borsh::to_vec(&Offence::OutOfTurn(out_of_turn())).expect("encode")),
        ("empty", Vec::new()),
    ]
}

/// A proposal signed by validator 2 of the four (whose turn it need not be).
fn out_of_turn() -> SignedProposal {
    let value = Hash32([4; 32]);
    let signer = LocalHost::from_seed([2; 32]).host();
    let signature = signer.sign(&nest_sdk::certificate::proposal_message(5, 0, None, &value));
    SignedProposal { height: 5, round: 0, valid_round: None, value, proposer: signer.public_key(), signature }
}

/// A block view as the API serves it, with a finality proof of three of the four
/// authorities; and the same with a field changed under the old hash.
fn light_block() -> Vec<(&'static str, Vec<u8>)> {
    let header = chain_linear::Header {
        version: chain_linear::UNIT_VERSION,
        parent: Hash32([1; 32]),
        height: 3,
        timestamp_ms: 3_000,
        proposer: picks(1),
        tx_root: Hash32([2; 32]),
        state_digest: Hash32([3; 32]),
        tx_count: 0,
    };
    let bytes = borsh::to_vec(&header).expect("header");
    let hash = sha256(&[chain_linear::UNIT_HASH_DOMAIN, &bytes].concat());
    let message = consensus_poa::vote_message(3, &hash);
    let votes = (1..=3u8)
        .map(|seed| {
            let host = LocalHost::from_seed([seed; 32]).host();
            (host.public_key(), host.sign(&message))
        })
        .collect();
    let proof = FinalityProof { height: 3, unit_hash: hash, votes };
    let view = |state_digest: Hash32| {
        serde_json::json!({
            "height": 3, "hash": hash, "parent": header.parent, "timestamp_ms": 3_000,
            "proposer": header.proposer, "tx_root": header.tx_root, "tx_count": 0,
            "state_digest": state_digest, "certificate": "", "finality": hex::encode(borsh::to_vec(&proof).expect("proof")),
        })
        .to_string()
        .into_bytes()
    };
    vec![
        ("block-with-proof", view(header.state_digest)),
        ("forged-field", view(Hash32([9; 32]))),
        ("empty", Vec::new()),
    ]
}

fn frame(body: &[u8]) -> Vec<u8> {
    [(body.len() as u32).to_be_bytes().to_vec(), body.to_vec()].concat()
}

fn net_codec() -> Vec<(&'static str, Vec<u8>)> {
    let request = SyncRequest { chain: "main".into(), from_height: 7, count: 3 };
    let units = linear_units();
    let blocks = units
        .iter()
        .enumerate()
        .map(|(index, (unit, _))| SyncBlock {
            height: index as u64 + 1,
            unit: unit.clone(),
            certificate: vec![1; 8],
            finality: Vec::new(),
        })
        .collect();
    let response: WireResponse = Ok(SyncResponse { head_height: 2, blocks });
    let refused: WireResponse = Err("too many requests".into());
    vec![
        ("request", frame(&borsh::to_vec(&request).expect("encode"))),
        ("response", frame(&borsh::to_vec(&response).expect("encode"))),
        ("refused", frame(&borsh::to_vec(&refused).expect("encode"))),
        ("length-over-bound", u32::MAX.to_be_bytes().to_vec()),
        ("short-body", [100u32.to_be_bytes().to_vec(), vec![1, 2, 3]].concat()),
    ]
}

/// A signed reading of `payload_bytes` bytes.
pub fn envelope(counter: u64, payload_bytes: usize) -> Vec<u8> {
    let key = crate::device_envelope::device_key();
    let mut envelope =
        DeviceEnvelope::unsigned([5; 32], counter, 1_700_000_000_000, KIND_READING, vec![b'x'; payload_bytes]);
    envelope.signature = key.sign(&envelope.signing_message());
    envelope.encode()
}

fn device_envelope() -> Vec<(&'static str, Vec<u8>)> {
    let whole = envelope(1, 5);
    vec![
        ("reading", whole.clone()),
        ("reading-full-payload", envelope(2, nest_sdk::device::ENVELOPE_PAYLOAD_BYTES_MAX)),
        ("truncated", whole[..whole.len() - 1].to_vec()),
        ("public-key", crate::device_envelope::device_key().public_key().to_vec()),
        ("version-0", [vec![0], whole[1..].to_vec()].concat()),
    ]
    .into_iter()
    .chain(std::iter::once(("key-check", device_keys_example())))
    .collect()
}

fn device_keys_example() -> Vec<u8> {
    let mut key = crate::device_envelope::device_key().public_key().to_vec();
    key[64] ^= 1;
    key
}

fn reassembler() -> Vec<(&'static str, Vec<u8>)> {
    use reassembler::{PUSH, PUSH_FRAGMENTED, ROUND_TRIP, TICK};
    let whole = envelope(1, 200);
    let pieces = fragment(&whole, 51, 9).expect("fragments");
    let interleaved: Vec<u8> = pieces
        .iter()
        .enumerate()
        .flat_map(|(index, piece)| [step(PUSH, piece), step(PUSH + 4, &pieces[pieces.len() - 1 - index])].concat())
        .collect();
    let mut missing = pieces.clone();
    missing.remove(1);
    let timed_out = [
        missing.iter().map(|piece| step(PUSH, piece)).collect::<Vec<_>>().concat(),
        step(TICK, &6000u64.to_le_bytes()),
    ]
    .concat();
    vec![
        ("interleaved-links", interleaved),
        ("missing-fragment-times-out", timed_out),
        ("unfragmented", step(PUSH, &envelope(2, 10))),
        ("round-trip", [step(ROUND_TRIP + 4 * 40, &whole), step(PUSH_FRAGMENTED + 4 * 20, &whole)].concat()),
    ]
}

fn plugin_toml() -> Vec<(&'static str, Vec<u8>)> {
    let package = PackageManifest {
        name: "consensus-poa".into(),
        version: "0.1.0".into(),
        kinds: vec![PluginKind::Consensus],
        description: "Proof of authority \"quoted\"\tand tabbed".into(),
        sdk_abi: nest_sdk::ABI_VERSION,
        library: "libconsensus_poa.so".into(),
        library_sha256: Hash32([0xAB; 32]),
        vendor_key: PublicKey([0xCD; 32]),
        tolerates: vec!["delay".into(), "crash".into()],
    };
    vec![
        ("package", package.to_canonical_toml().into_bytes()),
        ("source-poa", include_bytes!("../../plugins/consensus-poa/plugin.toml").to_vec()),
        ("source-radio-udp", include_bytes!("../../plugins/radio-udp/plugin.toml").to_vec()),
        (
            "bad-library",
            b"name = \"x\"\nversion = \"1\"\nkinds = [\"radio\"]\nlibrary = \"../x.so\"\ndescription = \"\"\n".to_vec(),
        ),
    ]
}

const BFT_MANIFEST: &str = r#"[node]
name = "node-1"
data_dir = "data"
key = "node.key"

[network]
listen = []

[api]
listen = "127.0.0.1:7300"

[[trust.vendor]]
name = "local-developer"
key = "0101010101010101010101010101010101010101010101010101010101010101"

[[plugin]]
id = "bft"
package = "../packages/consensus-bft"

[[plugin]]
id = "linear"
package = "../packages/chain-linear"

[[chain]]
id = "main"
chain_type = { plugin = "linear", config = { finality_depth = 0 } }
consensus = { plugin = "bft", config = { timeout_propose_ms = 1000 } }

[chain.genesis]
allocations = [{ account = "0202020202020202020202020202020202020202020202020202020202020202", balance = 1000000 }]
validators = [{ key = "0303030303030303030303030303030303030303030303030303030303030303", power = 1 }]
validator_changes = [{ from_height = 10, validators = [{ key = "0404040404040404040404040404040404040404040404040404040404040404", power = 2 }] }]
"#;

fn manifest() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("single", include_bytes!("../../manifests/single.toml").to_vec()),
        ("bft-validators", BFT_MANIFEST.as_bytes().to_vec()),
        ("unknown-key", b"[node]\nname = \"n\"\ncolour = \"red\"\n".to_vec()),
    ]
}

fn api_json() -> Vec<(&'static str, Vec<u8>)> {
    let tx = hex::encode(signed(TxBody::Transfer { to: PublicKey([9; 32]), amount: 1 }, 0).encode());
    vec![
        ("submit-one", format!("{{\"tx\": \"{tx}\"}}").into_bytes()),
        ("submit-batch", format!("{{\"txs\": [\"{tx}\", \"zz\", \"00\"]}}").into_bytes()),
        ("radio-send", br#"{"link_address": "127.0.0.1:9000", "frame_hex": "01ff"}"#.to_vec()),
        ("quote", br#"{"sku": "wifi", "units": 3, "utilization": 0.5, "hour": 20}"#.to_vec()),
        ("eval", br#"{"code": "return node.status()"}"#.to_vec()),
        ("upgrade", br#"{"package": "/tmp/pkg"}"#.to_vec()),
        ("console-file", br#"{"op": "file", "id": 4, "content": "return 1"}"#.to_vec()),
    ]
}
