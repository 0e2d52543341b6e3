use super::*;
use crate::ledger::state::{BlockEnv, BlockOutcome, ChainParams, Ledger};
use crate::ledger::tx::{SignedTx, TxBody, UnsignedTx};
use nest_sdk::{Hash32, Signature};
use std::collections::BTreeMap;

const CHAIN: Hash32 = Hash32([7; 32]);
const PARAMS: ChainParams = ChainParams { chain: CHAIN, gas_price: 1 };
const FUNDS: u64 = 1_000_000;
const ACCOUNTS: u8 = 5;

fn key(byte: u8) -> PublicKey {
    PublicKey([byte; 32])
}

fn node_key(byte: u8) -> PublicKey {
    PublicKey([byte + 100; 32])
}

/// A chain of funded accounts 1..=ACCOUNTS, one block per transaction.
struct Chain {
    ledger: Ledger,
    nonces: BTreeMap<u8, u64>,
    height: u64,
}

impl Chain {
    fn new() -> Chain {
        let funded: Vec<(PublicKey, u64)> = (1..=ACCOUNTS).map(|a| (key(a), FUNDS)).collect();
        Chain { ledger: Ledger::genesis(&funded).unwrap(), nonces: BTreeMap::new(), height: 0 }
    }

    /// Executes one staking transaction of `from` in a block of its own; the reason if
    /// refused.
    fn run(&mut self, from: u8, body: StakingTx) -> Result<(), TxError> {
        let body = TxBody::Staking(body);
        let fee = crate::ledger::tx::gas_of(&body);
        let nonce = *self.nonces.get(&from).unwrap_or(&0);
        let tx = SignedTx {
            tx: UnsignedTx { chain: CHAIN, from: key(from), nonce, fee, body },
            signature: Signature::default(),
        };
        self.height += 1;
        let env = BlockEnv { height: self.height, time_ms: 1_000 * self.height, proposer: key(ACCOUNTS + 1) };
        let outcome: BlockOutcome = self.ledger.execute(&[tx], &env, &PARAMS, false);
        self.ledger.commit(&outcome.changes);
        assert_eq!(self.ledger.state_digest(), outcome.state_digest);
        match outcome.rejected.into_iter().next() {
            Some((_, error)) => Err(error),
            None => {
                *self.nonces.entry(from).or_default() += 1;
                Ok(())
            }
        }
    }

    /// Empty blocks until `height`.
    fn advance_to(&mut self, height: u64) {
        while self.height < height {
            self.height += 1;
            let env = BlockEnv { height: self.height, time_ms: 1_000 * self.height, proposer: key(ACCOUNTS + 1) };
            let outcome = self.ledger.execute(&[], &env, &PARAMS, false);
            self.ledger.commit(&outcome.changes);
        }
    }

    fn register(&mut self, from: u8) -> Result<(), TxError> {
        self.run(from, StakingTx::RegisterDelegate { node_key: node_key(from), name: format!("delegate-{from}") })
    }

    fn balance(&self, account: u8) -> u64 {
        self.ledger.account(&key(account)).balance
    }

    fn staker(&self, account: u8) -> Staker {
        staker_of(|k| self.ledger.record(k).map(<[u8]>::to_vec), &key(account))
    }

    fn delegates(&self) -> Vec<DelegateView> {
        delegates(|prefix| self.ledger.records_with_prefix(prefix).map(|(k, v)| (k.to_vec(), v.to_vec())).collect())
    }

    fn votes_of(&self, delegate: u8) -> u128 {
        self.delegates().iter().find(|d| d.account == key(delegate)).map_or(0, |d| d.votes)
    }

    /// Every tally equals the sum of the bonded stakes that approve it, and every token
    /// is in a balance or a staking record.
    fn check_invariants(&self) {
        let mut expected: BTreeMap<PublicKey, u128> = BTreeMap::new();
        for (_, value) in self.ledger.records_with_prefix(STAKER_PREFIX) {
            let staker: Staker = borsh::from_slice(value).unwrap();
            for delegate in &staker.votes {
                *expected.entry(*delegate).or_default() += u128::from(staker.bonded);
            }
        }
        for delegate in self.delegates() {
            assert_eq!(delegate.votes, expected.get(&delegate.account).copied().unwrap_or(0), "{delegate:?}");
        }
        let staked = staked_total(self.ledger.records_with_prefix(STAKING_PREFIX)).unwrap();
        assert_eq!(self.ledger.total_supply() + staked, u128::from(FUNDS) * u128::from(ACCOUNTS));
    }
}

fn staking_error(result: Result<(), TxError>) -> StakingError {
    match result {
        Err(TxError::Staking(error)) => error,
        other => panic!("expected a staking error, got {other:?}"),
    }
}

#[test]
fn a_delegate_registers_once_with_a_node_key_of_its_own_and_a_printable_name() {
    let mut chain = Chain::new();
    chain.register(1).unwrap();
    assert_eq!(staking_error(chain.register(1)), StakingError::AlreadyDelegate(key(1)));
    let taken = chain.run(2, StakingTx::RegisterDelegate { node_key: node_key(1), name: "copy".into() });
    assert_eq!(staking_error(taken), StakingError::NodeKeyTaken { node_key: node_key(1), delegate: key(1) });
    for name in ["", "a\nb", &"x".repeat(DELEGATE_NAME_BYTES_MAX + 1)] {
        let refused = chain.run(2, StakingTx::RegisterDelegate { node_key: node_key(2), name: name.into() });
        assert!(matches!(staking_error(refused), StakingError::BadName(_)), "{name:?}");
    }
    let listed = chain.delegates();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].node_key, listed[0].name.as_str(), listed[0].registered_height),
        (node_key(1), "delegate-1", 1)
    );
}

#[test]
fn votes_weigh_the_voters_bonded_stake_and_follow_every_change() {
    let mut chain = Chain::new();
    chain.register(1).unwrap();
    chain.register(2).unwrap();
    chain.run(3, StakingTx::Stake { amount: 500 }).unwrap();
    chain.run(3, StakingTx::Vote { delegates: vec![key(1), key(2)] }).unwrap();
    assert_eq!((chain.votes_of(1), chain.votes_of(2)), (500, 500), "approval: each gets the whole stake");
    chain.run(4, StakingTx::Stake { amount: 200 }).unwrap();
    chain.run(4, StakingTx::Vote { delegates: vec![key(2)] }).unwrap();
    assert_eq!(chain.delegates().iter().map(|d| d.account).collect::<Vec<_>>(), vec![key(2), key(1)]);
    chain.run(3, StakingTx::Stake { amount: 100 }).unwrap();
    assert_eq!((chain.votes_of(1), chain.votes_of(2)), (600, 800));
    chain.run(3, StakingTx::Vote { delegates: vec![key(1)] }).unwrap();
    assert_eq!((chain.votes_of(1), chain.votes_of(2)), (600, 200), "a vote replaces the earlier one");
    chain.run(3, StakingTx::Unstake { amount: 250 }).unwrap();
    assert_eq!(chain.votes_of(1), 350, "unstaked tokens leave the votes at once");
    chain.run(3, StakingTx::Vote { delegates: vec![] }).unwrap();
    assert_eq!(chain.votes_of(1), 0);
    chain.check_invariants();
}

#[test]
fn a_vote_names_registered_distinct_delegates_and_at_most_k() {
    let mut chain = Chain::new();
    chain.register(1).unwrap();
    assert_eq!(
        staking_error(chain.run(3, StakingTx::Vote { delegates: vec![key(2)] })),
        StakingError::NotDelegate(key(2))
    );
    let twice = chain.run(3, StakingTx::Vote { delegates: vec![key(1), key(1)] });
    assert_eq!(staking_error(twice), StakingError::DuplicateVote(key(1)));
    let many: Vec<PublicKey> = (0..=VOTES_PER_ACCOUNT_MAX as u8).map(|i| key(50 + i)).collect();
    let too_many = chain.run(3, StakingTx::Vote { delegates: many });
    assert_eq!(staking_error(too_many), StakingError::TooManyVotes { count: VOTES_PER_ACCOUNT_MAX + 1 });
}

#[test]
fn unstaked_tokens_unlock_after_the_unbonding_period_and_not_before() {
    let mut chain = Chain::new();
    chain.run(3, StakingTx::Stake { amount: 1_000 }).unwrap();
    let staked_balance = chain.balance(3);
    assert_eq!(
        staking_error(chain.run(3, StakingTx::Unstake { amount: 1_001 })),
        StakingError::NotBonded { amount: 1_001, bonded: 1_000 }
    );
    assert_eq!(staking_error(chain.run(3, StakingTx::Stake { amount: 0 })), StakingError::ZeroAmount);
    chain.run(3, StakingTx::Unstake { amount: 400 }).unwrap();
    let unlocks_at = chain.height + UNBONDING_BLOCKS;
    assert_eq!(chain.staker(3).unbonding, vec![Unbonding { amount: 400, unlocks_at }]);
    let early = chain.run(3, StakingTx::Unlock);
    assert_eq!(staking_error(early), StakingError::NothingToUnlock { height: chain.height, next: unlocks_at });
    chain.advance_to(unlocks_at - 1);
    chain.run(3, StakingTx::Unlock).unwrap();
    // A refused transaction pays nothing: the fees are the unstake's and the unlock's.
    let fees = 2 * STAKE_GAS;
    assert_eq!(chain.balance(3), staked_balance + 400 - fees, "unlocked, less the unstake and unlock fees");
    assert_eq!(chain.staker(3), Staker { bonded: 600, unbonding: vec![], votes: vec![] });
    chain.check_invariants();
}

#[test]
fn unbonding_amounts_are_bounded_per_account() {
    let mut chain = Chain::new();
    chain.run(3, StakingTx::Stake { amount: 1_000 }).unwrap();
    for _ in 0..UNBONDING_ENTRIES_MAX {
        chain.run(3, StakingTx::Unstake { amount: 1 }).unwrap();
    }
    assert_eq!(staking_error(chain.run(3, StakingTx::Unstake { amount: 1 })), StakingError::TooManyUnbonding);
}

#[test]
fn a_stake_beyond_the_balance_is_refused_and_changes_nothing() {
    let mut chain = Chain::new();
    let before = chain.ledger.state_digest();
    let refused = chain.run(3, StakingTx::Stake { amount: FUNDS });
    assert!(matches!(refused, Err(TxError::InsufficientBalance { .. })), "{refused:?}");
    assert_eq!(chain.ledger.state_digest(), before, "a refused transaction is skipped whole, its fee too");
    assert_eq!(chain.staker(3), Staker::default());
    chain.check_invariants();
}

fn op(account: u8, kind: u8, amount: u64, picks: u8) -> StakingTx {
    match kind % 5 {
        0 => StakingTx::RegisterDelegate { node_key: node_key(account), name: format!("d{account}") },
        1 => StakingTx::Stake { amount },
        2 => StakingTx::Unstake { amount },
        3 => StakingTx::Unlock,
        _ => StakingTx::Vote { delegates: (1..=ACCOUNTS).filter(|a| picks & (1 << a) != 0).map(key).collect() },
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any sequence of staking transactions, accepted or refused: tallies stay the exact
    /// sums of the approving stakes, no token is made or lost, and the ranking is sorted.
    #[test]
    fn tallies_stay_exact_and_tokens_are_conserved(
        ops in proptest::collection::vec((1..=ACCOUNTS, 0u8..5, 0u64..3_000, 0u8..64, 0u64..200), 1..60)
    ) {
        let mut chain = Chain::new();
        for (account, kind, amount, picks, skip) in ops {
            let _ = chain.run(account, op(account, kind, amount, picks));
            if skip > 150 {
                chain.advance_to(chain.height + UNBONDING_BLOCKS / 2);
            }
            chain.check_invariants();
        }
        let ranked = chain.delegates();
        proptest::prop_assert!(ranked.windows(2).all(|w| (w[0].votes, std::cmp::Reverse(w[0].account.0)) >= (w[1].votes, std::cmp::Reverse(w[1].account.0))));
    }
}
