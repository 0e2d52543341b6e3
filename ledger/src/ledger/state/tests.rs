use super::*;
use crate::ledger::state::BlockEnv;
use crate::ledger::tx::{TRANSFER_GAS, TxBody, UnsignedTx};
use nest_sdk::Signature;

const CHAIN: Hash32 = Hash32([7; 32]);
const PARAMS: ChainParams = ChainParams { chain: CHAIN, gas_price: 1 };
const FEE: u64 = TRANSFER_GAS;

fn key(byte: u8) -> PublicKey {
    PublicKey([byte; 32])
}

/// A transfer with a dummy signature: execution does not check signatures.
fn transfer(from: u8, to: u8, amount: u64, nonce: u64, fee: u64) -> SignedTx {
    SignedTx {
        tx: UnsignedTx { chain: CHAIN, from: key(from), nonce, fee, body: TxBody::Transfer { to: key(to), amount } },
        signature: Signature::default(),
    }
}

fn ledger(allocations: &[(u8, u64)]) -> Ledger {
    let allocations: Vec<_> = allocations.iter().map(|(k, b)| (key(*k), *b)).collect();
    Ledger::genesis(&allocations).unwrap()
}

fn account(balance: u64, nonce: u64) -> Account {
    Account { balance, nonce }
}

fn run(ledger: &mut Ledger, txs: &[SignedTx], proposer: u8, strict: bool) -> BlockOutcome {
    let outcome = ledger.execute(txs, &BlockEnv::proposed_by(key(proposer)), &PARAMS, strict);
    ledger.commit(&outcome.changes);
    assert_eq!(ledger.state_digest(), outcome.state_digest);
    outcome
}

#[test]
fn transfer_moves_amount_bumps_nonce_and_pays_fee_to_proposer() {
    let mut ledger = ledger(&[(1, 10_000)]);
    let outcome = run(&mut ledger, &[transfer(1, 2, 500, 0, FEE)], 9, true);
    assert_eq!(outcome.applied, [0]);
    assert!(outcome.rejected.is_empty());
    assert_eq!(outcome.fees, FEE);
    assert_eq!(ledger.account(&key(1)), account(10_000 - 500 - FEE, 1));
    assert_eq!(ledger.account(&key(2)), account(500, 0));
    assert_eq!(ledger.account(&key(9)), account(FEE, 0));
    assert_eq!(outcome.changes.accounts.len(), 3);
    assert_eq!(ledger.total_supply(), 10_000);
}

#[test]
fn consecutive_nonces_apply_in_one_block() {
    let mut ledger = ledger(&[(1, 10_000)]);
    let txs = [transfer(1, 2, 1, 0, FEE), transfer(1, 2, 1, 1, FEE)];
    let outcome = run(&mut ledger, &txs, 9, true);
    assert_eq!(outcome.applied, [0, 1]);
    assert_eq!(ledger.account(&key(1)), account(10_000 - 2 - 2 * FEE, 2));
    assert_eq!(ledger.account(&key(9)).balance, 2 * FEE);
}

#[test]
fn transfer_to_self_moves_only_the_fee() {
    let mut ledger = ledger(&[(1, 5_000)]);
    run(&mut ledger, &[transfer(1, 1, 4_000, 0, FEE)], 9, true);
    assert_eq!(ledger.account(&key(1)), account(5_000 - FEE, 1));
    assert_eq!(ledger.account(&key(9)).balance, FEE);
}

#[test]
fn proposer_paying_itself_keeps_its_fee() {
    let mut ledger = ledger(&[(1, 5_000)]);
    run(&mut ledger, &[transfer(1, 2, 100, 0, FEE)], 1, true);
    assert_eq!(ledger.account(&key(1)), account(4_900, 1));
    assert_eq!(ledger.total_supply(), 5_000);
}

#[test]
fn zero_gas_price_accepts_zero_fee() {
    let ledger = ledger(&[(1, 5)]);
    let free = ChainParams { chain: CHAIN, gas_price: 0 };
    assert_eq!(ledger.check(&transfer(1, 2, 5, 0, 0), &free), Ok(()));
}

#[test]
fn check_reports_each_reason() {
    let ledger = Ledger::from_accounts([
        (key(1), account(2_000, 4)),
        (key(2), account(u64::MAX, 0)),
        (key(3), account(5_000, u64::MAX)),
    ]);
    let mut other_chain = transfer(1, 2, 1, 4, FEE);
    other_chain.tx.chain = Hash32([8; 32]);
    let cases = [
        (other_chain, TxError::WrongChain),
        (transfer(1, 2, 1, 4, 5), TxError::FeeTooLow { minimum: FEE, got: 5 }),
        (transfer(1, 2, 1, 5, FEE), TxError::WrongNonce { expected: 4, got: 5 }),
        (
            transfer(1, 2, 1_001, 4, FEE),
            TxError::InsufficientBalance { balance: 2_000, amount: 1_001, fee: FEE, pending: 0 },
        ),
        (transfer(1, 2, u64::MAX, 4, FEE), TxError::Overflow),
    ];
    for (tx, error) in cases {
        assert_eq!(ledger.check(&tx, &PARAMS), Err(error.clone()));
        let outcome = ledger.execute(&[tx], &BlockEnv::proposed_by(key(9)), &PARAMS, false);
        assert_eq!(outcome.rejected, [(0, error)]);
        assert!(outcome.changes.is_empty());
    }
}

#[test]
fn fee_minimum_overflow_is_an_error() {
    let ledger = ledger(&[(1, 5_000)]);
    let params = ChainParams { chain: CHAIN, gas_price: u64::MAX };
    assert_eq!(ledger.check(&transfer(1, 2, 1, 0, FEE), &params), Err(TxError::Overflow));
}

#[test]
fn nonce_and_balance_overflow_reject_the_tx_without_effect() {
    let ledger = Ledger::from_accounts([
        (key(1), account(5_000, u64::MAX)),
        (key(2), account(u64::MAX, 0)),
        (key(3), account(5_000, 0)),
    ]);
    let txs = [transfer(1, 4, 1, u64::MAX, FEE), transfer(3, 2, 1, 0, FEE)];
    let outcome = ledger.execute(&txs, &BlockEnv::proposed_by(key(9)), &PARAMS, false);
    assert_eq!(outcome.rejected, [(0, TxError::Overflow), (1, TxError::Overflow)]);
    assert!(outcome.changes.is_empty());
    assert_eq!(outcome.state_digest, ledger.state_digest());
}

#[test]
fn strict_execute_stops_at_first_invalid_tx() {
    let ledger = ledger(&[(1, 10_000)]);
    let txs = [transfer(1, 2, 1, 0, FEE), transfer(1, 2, 1, 5, FEE), transfer(1, 2, 1, 1, FEE)];
    let strict = ledger.execute(&txs, &BlockEnv::proposed_by(key(9)), &PARAMS, true);
    assert_eq!(strict.applied, [0]);
    assert_eq!(strict.rejected, [(1, TxError::WrongNonce { expected: 1, got: 5 })]);
    let lenient = ledger.execute(&txs, &BlockEnv::proposed_by(key(9)), &PARAMS, false);
    assert_eq!(lenient.applied, [0, 2]);
    assert_eq!(lenient.rejected.len(), 1);
    assert_eq!(lenient.fees, 2 * FEE);
    assert_eq!(ledger.account(&key(1)), account(10_000, 0), "self unchanged");
}

#[test]
fn execute_sees_earlier_txs_of_the_same_block() {
    // 2 receives from 1, then spends it in the same block.
    let ledger = ledger(&[(1, 10_000)]);
    let txs = [transfer(1, 2, 3_000, 0, FEE), transfer(2, 3, 1_000, 0, FEE)];
    let outcome = ledger.execute(&txs, &BlockEnv::proposed_by(key(9)), &PARAMS, true);
    assert_eq!(outcome.applied, [0, 1]);
    assert_eq!(outcome.changes.accounts[&key(2)], account(1_000, 1));
    assert_eq!(outcome.changes.accounts[&key(3)], account(1_000, 0));
}

#[test]
fn genesis_refuses_duplicates_and_supply_overflow() {
    assert_eq!(Ledger::genesis(&[(key(1), 1), (key(1), 2)]).unwrap_err(), GenesisError::DuplicateAccount(key(1)));
    assert_eq!(Ledger::genesis(&[(key(1), u64::MAX), (key(2), 1)]).unwrap_err(), GenesisError::SupplyOverflow);
    let ledger = Ledger::genesis(&[(key(1), u64::MAX), (key(2), 0)]).unwrap();
    assert_eq!(ledger.len(), 1, "a zero allocation creates no account");
    assert_eq!(ledger.total_supply(), u128::from(u64::MAX));
}

#[test]
fn digest_is_independent_of_insertion_order_and_survives_restore() {
    let accounts: Vec<_> = (1..=20u8).map(|i| (key(i), account(u64::from(i) * 1_000, u64::from(i % 3)))).collect();
    let forward = Ledger::from_accounts(accounts.clone());
    let backward = Ledger::from_accounts(accounts.iter().rev().copied());
    let mut piecewise = Ledger::from_accounts(accounts[..7].to_vec());
    piecewise.commit(&accounts[7..].iter().copied().collect());
    assert_eq!(forward.state_digest(), backward.state_digest());
    assert_eq!(forward.state_digest(), piecewise.state_digest());
    let restored = Ledger::from_accounts(forward.accounts().map(|(k, a)| (*k, *a)));
    assert_eq!(restored.state_digest(), forward.state_digest());
}

#[test]
fn digest_ignores_default_accounts() {
    let with = Ledger::from_accounts([(key(1), account(5, 0)), (key(2), Account::default())]);
    let without = Ledger::from_accounts([(key(1), account(5, 0))]);
    assert_eq!(with.state_digest(), without.state_digest());
    assert_eq!(with.len(), 1);
    assert_eq!(Ledger::from_accounts([]).state_digest(), Sum256::ZERO.digest());
}

#[test]
fn digest_changes_when_any_account_changes() {
    let base = Ledger::from_accounts((1..=5u8).map(|i| (key(i), account(100, 1))));
    let digest = base.state_digest();
    for i in 1..=6u8 {
        for changed in [account(101, 1), account(100, 2), account(0, 0)] {
            if i == 6 && changed == Account::default() {
                continue; // an absent account set to default is no change
            }
            let mut ledger = base.clone();
            ledger.commit(&[(key(i), changed)].into_iter().collect());
            assert_ne!(ledger.state_digest(), digest, "account {i} → {changed:?}");
        }
    }
    // Swapping values between two accounts changes it too.
    let mut swapped = Ledger::from_accounts([(key(1), account(1, 0)), (key(2), account(2, 0))]);
    let before = swapped.state_digest();
    swapped.commit(&[(key(1), account(2, 0)), (key(2), account(1, 0))].into_iter().collect());
    assert_ne!(swapped.state_digest(), before);
}

#[test]
fn sum256_add_and_remove_cancel_and_carry() {
    let all_ones = Sum256([u64::MAX; 4]);
    assert_eq!(all_ones.wrapping_add(Sum256([1, 0, 0, 0])), Sum256::ZERO);
    assert_eq!(Sum256([u64::MAX, 0, 0, 0]).wrapping_add(Sum256([1, 0, 0, 0])), Sum256([0, 1, 0, 0]));
    assert_eq!(Sum256::ZERO.wrapping_neg(), Sum256::ZERO);
    let bytes: [u8; 32] = std::array::from_fn(|i| i as u8);
    assert_eq!(Sum256::from_be_bytes(&bytes).to_be_bytes(), bytes);
    let sum = Sum256::ZERO
        .add(&key(1), &account(5, 1))
        .add(&key(2), &account(6, 0))
        .remove(&key(1), &account(5, 1))
        .remove(&key(2), &account(6, 0));
    assert_eq!(sum, Sum256::ZERO);
}

/// A small deterministic PRNG (SplitMix64) for property-style tests.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

#[test]
fn random_transfer_sequences_conserve_supply_and_agree_with_full_recompute() {
    const ACCOUNTS: u64 = 8;
    for seed in 0..20u64 {
        let mut rng = SplitMix64(seed);
        let mut ledger = ledger(&[(0, 1_000_000), (1, 50_000), (2, 3_000)]);
        let supply = ledger.total_supply();
        for block in 0..30 {
            let txs: Vec<SignedTx> = (0..rng.below(12))
                .map(|_| {
                    let from = rng.below(ACCOUNTS) as u8;
                    let nonce = ledger.account(&key(from)).nonce + rng.below(3);
                    let amount = rng.below(20_000);
                    let fee = FEE + rng.below(3) * 500 - 500;
                    transfer(from, rng.below(ACCOUNTS) as u8, amount, nonce, fee)
                })
                .collect();
            let proposer = rng.below(ACCOUNTS + 1) as u8;
            let outcome = run(&mut ledger, &txs, proposer, false);
            assert_eq!(outcome.applied.len() + outcome.rejected.len(), txs.len(), "seed {seed} block {block}");
            assert_eq!(ledger.total_supply(), supply, "seed {seed} block {block}");
            let sum: u128 = ledger.accounts().map(|(_, a)| u128::from(a.balance)).sum();
            assert_eq!(sum, supply, "seed {seed} block {block}");
        }
        let recomputed = Ledger::from_accounts(ledger.accounts().map(|(k, a)| (*k, *a)));
        assert_eq!(recomputed.state_digest(), ledger.state_digest(), "seed {seed}");
    }
}

#[test]
fn digest_matches_independently_computed_vectors() {
    // Computed with Python hashlib: sum of big-endian element hashes mod 2^256.
    let ledger =
        Ledger::from_accounts([(key(1), account(5, 1)), (key(2), account(6, 0)), (key(3), account(u64::MAX, 7))]);
    assert_eq!(ledger.state_digest().to_hex(), "7241355524f0d08ed1e5729e110aa66a14c45be435b4ee47a14d2f605b130114");
    assert_eq!(
        Ledger::from_accounts([]).state_digest().to_hex(),
        "2c5929fa6481879e7e358352a208727b6bc90b5f7591e93762d4a6ea33b9fda3"
    );
}

#[test]
fn execution_on_pending_ancestors_equals_execution_after_committing_them() {
    let base = ledger(&[(1, 1_000_000), (2, 5_000)]);
    let params = PARAMS;
    let first = [transfer(1, 2, 100, 0, 1_000)];
    let second = [transfer(1, 3, 50, 1, 1_000), transfer(2, 1, 10, 0, 1_000)];

    let parent = base.execute(&first, &BlockEnv::proposed_by(key(9)), &params, true);
    let on_prior = base.execute_on(&parent.changes, &second, &BlockEnv::proposed_by(key(9)), &params, true);

    let mut committed = base.clone();
    committed.commit(&parent.changes);
    let after_commit = committed.execute(&second, &BlockEnv::proposed_by(key(9)), &params, true);

    assert_eq!(
        on_prior.changes, after_commit.changes,
        "a block's own changes do not depend on where its parent's live"
    );
    assert_eq!(on_prior.state_digest, after_commit.state_digest);
    assert!(on_prior.rejected.is_empty());
    committed.commit(&after_commit.changes);
    assert_eq!(committed.state_digest(), on_prior.state_digest);
    assert_eq!(base.account(&key(1)).nonce, 0, "the ledger itself is unchanged");
}

#[test]
fn a_tx_already_in_a_pending_ancestor_is_a_stale_nonce_on_top_of_it() {
    let base = ledger(&[(1, 1_000_000)]);
    let params = PARAMS;
    let tx = [transfer(1, 2, 100, 0, 1_000)];
    let parent = base.execute(&tx, &BlockEnv::proposed_by(key(9)), &params, true);
    let again = base.execute_on(&parent.changes, &tx, &BlockEnv::proposed_by(key(9)), &params, false);
    assert_eq!(again.rejected, vec![(0, TxError::WrongNonce { expected: 1, got: 0 })]);
}
