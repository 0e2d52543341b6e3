use super::*;
use chain_dag::{DagChain, DagConfig};
use nest_ledger::crypto::SecretKey;
use nest_ledger::ledger::tx::{TxBody, UnsignedTx};
use nest_sdk::{
    ChainType,
    abi_stable::{sabi_trait::TD_Opaque, std_types::RBox},
    chain::{ChainTypeAdapter, ChainTypeFfi_TO},
    testing::LocalHost,
};

const GENESIS_MS: u64 = 1_000;

fn alice() -> SecretKey {
    SecretKey::from_seed([11; 32])
}

/// A node's DAG runtime: its own node key, the shared genesis (alice holds 1,000).
fn node(seed: u8, config: DagConfig) -> (DagRuntime, PublicKey) {
    let local = LocalHost::from_seed([seed; 32]);
    let key = local.host().public_key();
    let mut chain = DagChain::new(config, local.host()).expect("config");
    let ledger = Ledger::genesis(&[(alice().public_key(), 1_000)]).expect("genesis");
    let request = genesis_request(&ledger, GENESIS_MS);
    let genesis = chain.build(request).expect("genesis");
    let genesis = chain.decode(&genesis).expect("decode").to_ref();
    chain.start(genesis).expect("start");
    let boxed = ChainTypeFfi_TO::from_ptr(RBox::new(ChainTypeAdapter(chain)), TD_Opaque);
    let params = ChainParams { chain: genesis.hash, gas_price: 0 };
    (DagRuntime::new(boxed, genesis, ledger, params), key)
}

fn fast() -> DagConfig {
    DagConfig { pow_bits: 6, ..DagConfig::default() }
}

fn transfer(runtime: &DagRuntime, nonce: u64, to: u8, amount: u64) -> SignedTx {
    UnsignedTx {
        chain: runtime.params.chain,
        from: alice().public_key(),
        nonce,
        fee: 0,
        body: TxBody::Transfer { to: PublicKey([to; 32]), amount },
    }
    .sign(&alice())
}

#[test]
fn a_double_spend_sent_to_two_nodes_applies_once_and_the_same_on_both() {
    let (mut a, key_a) = node(1, fast());
    let (mut b, key_b) = node(2, fast());
    let to_bob = transfer(&a, 0, 2, 600);
    let to_carol = transfer(&b, 0, 3, 600);
    let unit_a = a.attach(std::slice::from_ref(&to_bob), 2_000, key_a).expect("attach on a");
    let unit_b = b.attach(std::slice::from_ref(&to_carol), 2_000, key_b).expect("attach on b");
    assert_eq!(a.receive(&unit_b).expect("a takes b's").inserted.len(), 1);
    assert_eq!(b.receive(&unit_a).expect("b takes a's").inserted.len(), 1);
    let tips = a.tips().expect("tips");
    assert_eq!(tips.len(), 2);
    assert_eq!(b.tips().expect("tips"), tips);

    let on_a = a.checkpoint(&tips).expect("checkpoint on a");
    let on_b = b.checkpoint(&tips).expect("checkpoint on b");
    assert_eq!(on_a, on_b, "the same order, the same skips, the same digest");
    assert_eq!(on_a.applied.len(), 1);
    assert_eq!(on_a.skipped.len(), 1);
    assert_eq!(on_a.skipped[0].reason, TxError::WrongNonce { expected: 1, got: 0 });
    let winner = on_a.applied[0];
    assert!(winner == to_bob.hash() || winner == to_carol.hash());
    assert_eq!(a.ledger().account(&alice().public_key()).balance, 400);
    let paid = [PublicKey([2; 32]), PublicKey([3; 32])].map(|to| a.ledger().account(&to).balance);
    assert_eq!(paid.iter().sum::<u64>(), 600, "exactly one of the two was paid");
    assert_eq!(on_a.number, 1);
}

#[test]
fn a_unit_before_its_parent_waits_and_joins_when_the_parent_arrives() {
    let (mut a, key_a) = node(1, fast());
    let (mut b, _) = node(2, fast());
    let first = a.attach(&[transfer(&a, 0, 2, 1)], 2_000, key_a).expect("first");
    let second = a.attach(&[transfer(&a, 1, 2, 1)], 3_000, key_a).expect("second");
    let waiting = b.receive(&second).expect("orphan");
    assert!(waiting.inserted.is_empty());
    assert_eq!(waiting.missing.len(), 1);
    assert_eq!(b.orphans(), 1);
    let joined = b.receive(&first).expect("parent");
    assert_eq!(joined.inserted.len(), 2, "the parent and the orphan it completed");
    assert_eq!(b.orphans(), 0);
    assert_eq!(b.tips().expect("tips"), a.tips().expect("tips"));
    assert_eq!(b.receive(&second).expect("again"), Received::default(), "a unit held is taken once");
}

#[test]
fn orphans_are_bounded() {
    let (mut a, key_a) = node(1, fast());
    let (b, _) = node(2, fast());
    let mut b = b.with_limits(DagLimits { orphans_max: 1 });
    a.attach(&[transfer(&a, 0, 2, 1)], 2_000, key_a).expect("first");
    let second = a.attach(&[transfer(&a, 1, 2, 1)], 3_000, key_a).expect("second");
    let third = a.attach(&[transfer(&a, 2, 2, 1)], 4_000, key_a).expect("third");
    b.receive(&second).expect("one orphan");
    assert_eq!(b.receive(&third), Err(DagError::OrphansFull(1)));
}

#[test]
fn a_unit_with_a_bad_transaction_or_root_is_refused() {
    let (mut a, key_a) = node(1, fast());
    let (mut b, _) = node(2, fast());
    let mut forged = transfer(&a, 0, 2, 1);
    forged.tx.body = TxBody::Transfer { to: PublicKey([2; 32]), amount: 999 };
    let bad_signature = a.attach(&[forged], 2_000, key_a);
    assert!(
        matches!(bad_signature, Err(DagError::Transaction { error: TxError::BadSignature, .. })),
        "{bad_signature:?}"
    );

    let good = transfer(&a, 0, 2, 1);
    let request = BuildRequest {
        parent: Hash32::ZERO,
        height: 1,
        timestamp_ms: 2_000,
        proposer: key_a,
        tx_root: Hash32([7; 32]),
        state_digest: Hash32::ZERO,
        txs: vec![RVec::from(good.encode())].into(),
    };
    let wrong_root = a.chain_type.build(request).into_result().expect("the chain type only carries the root");
    assert!(matches!(b.receive(&wrong_root), Err(DagError::TxRoot(_))));
    assert!(matches!(b.receive(&[1, 2, 3]), Err(DagError::ChainType(_))));
}

#[test]
fn a_checkpoint_waits_for_units_it_names_and_finalizes_each_once() {
    let (mut a, key_a) = node(1, fast());
    let (mut b, _) = node(2, fast());
    let unit = a.attach(&[transfer(&a, 0, 2, 5)], 2_000, key_a).expect("attach");
    let tips = a.tips().expect("tips");
    assert_eq!(b.checkpoint(&tips), Err(DagError::Missing(tips.clone())));
    b.receive(&unit).expect("receive");
    let first = b.checkpoint(&tips).expect("checkpoint");
    assert_eq!(first.units.len(), 1);
    let again = b.checkpoint(&tips).expect("repeated");
    assert!(again.units.is_empty() && again.applied.is_empty());
    assert_eq!(again.state_digest, first.state_digest);
    assert_eq!(b.ledger().account(&PublicKey([2; 32])).balance, 5);
}
