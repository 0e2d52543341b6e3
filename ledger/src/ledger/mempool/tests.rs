use super::*;
use crate::ledger::state::Account;
use crate::ledger::state::BlockEnv;
use crate::ledger::tx::{TRANSFER_GAS, TxBody, UnsignedTx};
use nest_sdk::Signature;

const CHAIN: Hash32 = Hash32([7; 32]);
const PARAMS: ChainParams = ChainParams { chain: CHAIN, gas_price: 1 };
const FEE: u64 = TRANSFER_GAS;

fn key(byte: u8) -> PublicKey {
    PublicKey([byte; 32])
}

fn transfer(from: u8, amount: u64, nonce: u64) -> SignedTx {
    paying(from, amount, nonce, FEE)
}

fn paying(from: u8, amount: u64, nonce: u64, fee: u64) -> SignedTx {
    SignedTx {
        tx: UnsignedTx { chain: CHAIN, from: key(from), nonce, fee, body: TxBody::Transfer { to: key(200), amount } },
        signature: Signature::default(),
    }
}

fn ledger(allocations: &[(u8, u64)]) -> Ledger {
    let allocations: Vec<_> = allocations.iter().map(|(k, b)| (key(*k), *b)).collect();
    Ledger::genesis(&allocations).unwrap()
}

fn admit(pool: &mut Mempool, tx: SignedTx, ledger: &Ledger) -> Result<(), TxError> {
    pool.admit(tx.hash(), tx, ledger, &PARAMS)
}

/// (sender byte, nonce) of each selected transaction.
fn shape(txs: &[SignedTx]) -> Vec<(u8, u64)> {
    txs.iter().map(|tx| (tx.tx.from.0[0], tx.tx.nonce)).collect()
}

#[test]
fn admits_consecutive_nonces_and_names_the_expected_one() {
    let ledger = ledger(&[(1, 100_000)]);
    let mut pool = Mempool::new(10);
    admit(&mut pool, transfer(1, 1, 0), &ledger).unwrap();
    admit(&mut pool, transfer(1, 1, 1), &ledger).unwrap();
    assert_eq!(admit(&mut pool, transfer(1, 1, 5), &ledger), Err(TxError::WrongNonce { expected: 2, got: 5 }));
    // A pending nonce at the same fee is a replacement that does not pay enough.
    let error = admit(&mut pool, transfer(1, 2, 0), &ledger).unwrap_err();
    assert_eq!(error, TxError::ReplacementUnderpriced { pending_fee: FEE, minimum: FEE + FEE / 10, got: FEE });
    assert_eq!(pool.len(), 2);
    assert_eq!(pool.next_nonce(&key(1), &ledger), 2);
    assert_eq!(pool.next_nonce(&key(9), &ledger), 0);
}

#[test]
fn duplicate_id_is_refused() {
    let ledger = ledger(&[(1, 100_000)]);
    let mut pool = Mempool::new(10);
    let tx = transfer(1, 1, 0);
    admit(&mut pool, tx.clone(), &ledger).unwrap();
    assert_eq!(admit(&mut pool, tx.clone(), &ledger), Err(TxError::Duplicate));
    assert!(pool.contains(&tx.hash()));
    assert_eq!(pool.get(&tx.hash()), Some(&tx));
}

#[test]
fn full_mempool_refuses_and_stays_bounded() {
    let ledger = ledger(&[(1, 100_000), (2, 100_000)]);
    let mut pool = Mempool::new(3);
    for nonce in 0..3 {
        admit(&mut pool, transfer(1, 1, nonce), &ledger).unwrap();
    }
    assert_eq!(admit(&mut pool, transfer(2, 1, 0), &ledger), Err(TxError::MempoolFull));
    assert_eq!(pool.len(), pool.txs_max());
}

#[test]
fn balance_must_cover_pending_txs_too() {
    let ledger = ledger(&[(1, 3_000)]);
    let mut pool = Mempool::new(10);
    admit(&mut pool, transfer(1, 1_000, 0), &ledger).unwrap();
    assert_eq!(
        admit(&mut pool, transfer(1, 1, 1), &ledger),
        Err(TxError::InsufficientBalance { balance: 3_000, amount: 1, fee: FEE, pending: 1_000 + FEE })
    );
    admit(&mut pool, transfer(1, 0, 1), &ledger).unwrap();
}

#[test]
fn chain_and_fee_are_checked() {
    let ledger = ledger(&[(1, 100_000)]);
    let mut pool = Mempool::new(10);
    let mut other = transfer(1, 1, 0);
    other.tx.chain = Hash32([0; 32]);
    assert_eq!(admit(&mut pool, other, &ledger), Err(TxError::WrongChain));
    let mut cheap = transfer(1, 1, 0);
    cheap.tx.fee = 1;
    assert_eq!(admit(&mut pool, cheap, &ledger), Err(TxError::FeeTooLow { minimum: FEE, got: 1 }));
    assert!(pool.is_empty());
}

#[test]
fn select_interleaves_accounts_in_nonce_order_oldest_first() {
    let ledger = ledger(&[(1, 100_000), (2, 100_000), (3, 100_000)]);
    let mut pool = Mempool::new(20);
    // Account 3 arrives first, then 1, then 2.
    for (from, nonce) in [(3, 0), (1, 0), (1, 1), (1, 2), (2, 0), (3, 1)] {
        admit(&mut pool, transfer(from, 1, nonce), &ledger).unwrap();
    }
    assert_eq!(shape(&pool.select(100)), [(3, 0), (1, 0), (2, 0), (3, 1), (1, 1), (1, 2)]);
    assert_eq!(shape(&pool.select(4)), [(3, 0), (1, 0), (2, 0), (3, 1)]);
    assert!(pool.select(0).is_empty());
    let selected = pool.select(100);
    let outcome = ledger.execute(&selected, &BlockEnv::proposed_by(key(9)), &PARAMS, true);
    assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
}

#[test]
fn remove_committed_drops_included_and_stale_txs() {
    let mut ledger = ledger(&[(1, 100_000), (2, 100_000)]);
    let mut pool = Mempool::new(20);
    for nonce in 0..3 {
        admit(&mut pool, transfer(1, 1, nonce), &ledger).unwrap();
    }
    admit(&mut pool, transfer(2, 1, 0), &ledger).unwrap();
    // A block from another proposer includes a different tx with nonce 0 for account 1
    // and the pool's tx 0 for account 2.
    let block = [transfer(1, 77, 0), transfer(2, 1, 0)];
    let outcome = ledger.execute(&block, &BlockEnv::proposed_by(key(9)), &PARAMS, true);
    ledger.commit(&outcome.changes);
    pool.remove_committed(&block, &ledger);
    assert_eq!(shape(&pool.select(100)), [(1, 1), (1, 2)]);
    assert_eq!(pool.len(), 2);
    assert_eq!(pool.next_nonce(&key(1), &ledger), 3);
    admit(&mut pool, transfer(1, 1, 3), &ledger).unwrap();
}

#[test]
fn remove_committed_drops_what_the_sender_can_no_longer_afford() {
    let mut ledger = ledger(&[(1, 10_000)]);
    let mut pool = Mempool::new(20);
    for nonce in 0..3 {
        admit(&mut pool, transfer(1, 2_000, nonce), &ledger).unwrap();
    }
    // Elsewhere, account 1 spent nearly everything with its nonce 0.
    let block = [transfer(1, 5_000, 0)];
    ledger.commit(&ledger.execute(&block, &BlockEnv::proposed_by(key(9)), &PARAMS, true).changes);
    assert_eq!(ledger.account(&key(1)), Account { balance: 4_000, nonce: 1 });
    pool.remove_committed(&block, &ledger);
    assert_eq!(shape(&pool.select(100)), [(1, 1)]);
    let remaining = pool.select(100);
    assert!(ledger.execute(&remaining, &BlockEnv::proposed_by(key(9)), &PARAMS, true).rejected.is_empty());
}

#[test]
fn admission_catches_up_with_a_ledger_that_moved_on() {
    let mut ledger = ledger(&[(1, 100_000)]);
    let mut pool = Mempool::new(20);
    admit(&mut pool, transfer(1, 1, 0), &ledger).unwrap();
    admit(&mut pool, transfer(1, 1, 1), &ledger).unwrap();
    let block = [transfer(1, 1, 0)];
    ledger.commit(&ledger.execute(&block, &BlockEnv::proposed_by(key(9)), &PARAMS, true).changes);
    // remove_committed not called yet: admission still sees the right next nonce.
    assert_eq!(admit(&mut pool, transfer(1, 1, 3), &ledger), Err(TxError::WrongNonce { expected: 2, got: 3 }));
    admit(&mut pool, transfer(1, 1, 2), &ledger).unwrap();
    assert_eq!(shape(&pool.select(100)), [(1, 1), (1, 2)]);
}

#[test]
fn txs_superseded_by_other_versions_are_dropped() {
    let mut ledger = ledger(&[(1, 100_000)]);
    let mut pool = Mempool::new(20);
    admit(&mut pool, transfer(1, 1, 0), &ledger).unwrap();
    admit(&mut pool, transfer(1, 1, 1), &ledger).unwrap();
    // The ledger jumps to nonce 2 through txs this pool never saw.
    let block = [transfer(1, 5, 0), transfer(1, 5, 1)];
    ledger.commit(&ledger.execute(&block, &BlockEnv::proposed_by(key(9)), &PARAMS, true).changes);
    pool.remove_committed(&block, &ledger);
    assert!(pool.is_empty());
}

#[test]
fn one_sender_fills_only_its_share_and_others_are_still_admitted() {
    let ledger = ledger(&[(1, u64::MAX / 2), (2, 100_000)]);
    let mut pool = Mempool::new(256);
    assert_eq!(pool.sender_txs_max(), 32, "an eighth of the pool");
    for nonce in 0..32 {
        admit(&mut pool, transfer(1, 1, nonce), &ledger).unwrap();
    }
    assert_eq!(admit(&mut pool, transfer(1, 1, 32), &ledger), Err(TxError::SenderCapReached { pending: 32 }));
    admit(&mut pool, transfer(2, 1, 0), &ledger).expect("another sender is admitted");
    assert_eq!(Mempool::new(4).sender_txs_max(), 4, "never more than the pool");
    assert_eq!(Mempool::new(64).sender_txs_max(), SENDER_TXS_MIN);
}

#[test]
fn a_higher_fee_replaces_a_pending_nonce_in_place_within_the_balance() {
    let ledger = ledger(&[(1, 10_000)]);
    let mut pool = Mempool::new(10);
    let (first, second) = (transfer(1, 1, 0), transfer(1, 1, 1));
    admit(&mut pool, first.clone(), &ledger).unwrap();
    admit(&mut pool, second.clone(), &ledger).unwrap();
    let richer = paying(1, 1, 0, FEE * 2);
    admit(&mut pool, richer.clone(), &ledger).expect("replaced");
    assert!(!pool.contains(&first.hash()) && pool.contains(&richer.hash()));
    assert_eq!(pool.len(), 2);
    assert_eq!(pool.select(10), vec![richer, second], "the replacement keeps its place");
    // A replacement must stay within the balance with the other pending transactions.
    let error = admit(&mut pool, paying(1, 7_000, 0, FEE * 3), &ledger).unwrap_err();
    assert!(matches!(error, TxError::InsufficientBalance { pending: 1_001, .. }), "{error}");
}

#[test]
fn blocks_take_the_highest_fee_per_byte_first_and_equal_rates_in_turns() {
    let ledger = ledger(&[(1, 1_000_000), (2, 1_000_000), (3, 1_000_000)]);
    let mut pool = Mempool::new(100);
    // Account 1 floods first at the base fee; 2 arrives later paying double; 3 later at
    // the base fee.
    for nonce in 0..5 {
        admit(&mut pool, transfer(1, 1, nonce), &ledger).unwrap();
    }
    admit(&mut pool, paying(2, 1, 0, FEE * 2), &ledger).unwrap();
    admit(&mut pool, transfer(2, 1, 1), &ledger).unwrap();
    admit(&mut pool, transfer(3, 1, 0), &ledger).unwrap();
    let order = shape(&pool.select(4));
    // 2's double fee goes first; then one base-fee transaction per account per turn,
    // those that had fewer turns first, and among them the account waiting longest.
    assert_eq!(order, vec![(2, 0), (1, 0), (3, 0), (1, 1)], "rate first, then one per account per turn");
    assert_eq!(shape(&pool.select(100)).len(), 8);
}

/// Every account has exactly one tail entry, its last pending transaction.
fn assert_tails_in_step(pool: &Mempool) {
    assert_eq!(pool.tails.len(), pool.accounts.len(), "one tail per account");
    for (from, queue) in &pool.accounts {
        let last = queue.txs.last_key_value().map(|(_, pending)| pending.tail_key(*from));
        assert_eq!(queue.tail, last, "tail of {from}");
        assert!(last.is_some_and(|tail| pool.tails.contains(&tail)));
    }
}

#[test]
fn a_full_pool_evicts_the_cheapest_newest_tail_for_a_better_paying_transfer() {
    let senders: Vec<(u8, u64)> = (1..=5).map(|k| (k, 1_000_000)).collect();
    let ledger = ledger(&senders);
    let mut pool = Mempool::new(8);
    // Four spam accounts fill the pool at the minimum fee, two each.
    for from in 1..=4 {
        for nonce in 0..2 {
            admit(&mut pool, transfer(from, 1, nonce), &ledger).unwrap();
        }
    }
    assert_eq!(admit(&mut pool, transfer(5, 1, 0), &ledger), Err(TxError::MempoolFull), "paying the same is refused");
    let paying_more = paying(5, 1, 0, FEE * 2);
    admit(&mut pool, paying_more.clone(), &ledger).unwrap();
    assert_eq!(pool.len(), 8);
    assert!(pool.contains(&paying_more.hash()));
    // The newest of the cheapest tails went: account 4's nonce 1; its nonce 0 stays.
    assert!(!pool.contains(&transfer(4, 1, 1).hash()));
    assert!(pool.contains(&transfer(4, 1, 0).hash()));
    assert_eq!(pool.next_nonce(&key(4), &ledger), 1, "nonces stay contiguous");
    assert_eq!(shape(&pool.select(1)), vec![(5, 0)], "the paying transfer goes first");
    // An account never evicts its own tail to make room for its next nonce.
    assert_eq!(admit(&mut pool, paying(5, 1, 1, FEE * 2), &ledger).map(|_| ()), Ok(()));
    // The newest cheap tail is now account 4's nonce 0, admitted after account 3's nonce 1.
    assert!(!pool.contains(&transfer(4, 1, 0).hash()), "another account's cheap tail went instead");
    assert!(pool.contains(&transfer(3, 1, 1).hash()));
    assert_tails_in_step(&pool);
}

proptest::proptest! {
    /// Whatever mix of admissions, replacements and commits, the tails index matches
    /// the queues and the pool stays within its bound.
    #[test]
    fn the_tails_index_follows_every_change(
        ops in proptest::collection::vec((1u8..=6, 0u64..4, 1u64..4, proptest::bool::ANY), 1..120),
    ) {
        let senders: Vec<(u8, u64)> = (1..=6).map(|k| (k, 50_000)).collect();
        let mut ledger = ledger(&senders);
        let mut pool = Mempool::new(10);
        for (step, (from, nonce, fee_factor, commit)) in ops.into_iter().enumerate() {
            let _ = admit(&mut pool, paying(from, 1 + step as u64, nonce, FEE * fee_factor), &ledger);
            if commit {
                let block = pool.select(3);
                let outcome = ledger.execute(&block, &BlockEnv::proposed_by(key(99)), &PARAMS, true);
                ledger.commit(&outcome.changes);
                pool.remove_committed(&block, &ledger);
            }
            proptest::prop_assert!(pool.len() <= pool.txs_max());
            assert_tails_in_step(&pool);
        }
    }
}
