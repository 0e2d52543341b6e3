use super::*;
use crate::ledger::staking::{DelegateView, StakingTx};
use crate::ledger::test_chain::TestChain;
use crate::ledger::tx::TxBody;
use crate::ledger::validators::set_at;
use nest_sdk::PublicKey;

const N: u32 = 3;
const ACCOUNTS: u8 = 6;
const FUNDS: u64 = 1_000_000;

fn key(byte: u8) -> PublicKey {
    PublicKey([byte; 32])
}

fn node_key(byte: u8) -> PublicKey {
    PublicKey([byte + 100; 32])
}

/// Round 0's delegates: genesis validators 201, 202, 203.
fn genesis_members() -> Vec<Member> {
    (1..=N as u8).map(|i| Member { key: PublicKey([200 + i; 32]), power: 1 }).collect()
}

fn dpos_chain() -> TestChain {
    let funded: Vec<(PublicKey, u64)> = (1..=ACCOUNTS).map(|a| (key(a), FUNDS)).collect();
    let accounts: Vec<_> = Ledger::genesis(&funded).unwrap().accounts().map(|(k, a)| (*k, *a)).collect();
    let first = ValidatorSet { from_height: 1, members: genesis_members() };
    let params = DposParams { delegates: N };
    let ledger = Ledger::from_state(accounts, [first.record(), params.record()]);
    TestChain::from_genesis(ledger, key(ACCOUNTS + 1))
}

fn staking(chain: &mut TestChain, from: u8, body: StakingTx) -> Result<(), crate::ledger::TxError> {
    chain.run(key(from), TxBody::Staking(body))
}

fn ranked(ledger: &Ledger) -> Vec<DelegateView> {
    staking::delegates(|prefix| ledger.records_with_prefix(prefix).map(|(k, v)| (k.to_vec(), v.to_vec())).collect())
}

fn keys(set: &ValidatorSet) -> Vec<PublicKey> {
    set.members.iter().map(|member| member.key).collect()
}

#[test]
fn rounds_are_n_heights_and_each_set_is_written_a_round_ahead() {
    let params = DposParams { delegates: 3 };
    assert_eq!((params.round_of(1), params.round_of(3), params.round_of(4)), (0, 0, 1));
    assert_eq!((params.first_height(0), params.first_height(2)), (1, 7));
    assert_eq!(params.round_chosen_at(1), Some(1));
    assert_eq!(params.round_chosen_at(2), None);
    assert_eq!(params.round_chosen_at(4), Some(2));
    assert_eq!(params.round_chosen_at(0), None);
    assert!(DposParams { delegates: 0 }.check(0).is_err());
    let error = DposParams { delegates: 3 }.check(2).unwrap_err();
    assert!(error.contains("exactly its 3 delegates"), "{error}");
}

#[test]
fn too_few_delegates_keep_the_genesis_set() {
    let mut chain = dpos_chain();
    chain.advance_to(3 * u64::from(N));
    for height in 1..=3 * u64::from(N) + u64::from(N) {
        let set = chain.ledger.validators_at(height).expect("a set");
        assert_eq!(set.members, genesis_members(), "height {height}");
    }
}

#[test]
fn votes_change_the_delegates_two_rounds_later_and_never_mid_round() {
    let mut chain = dpos_chain();
    // Heights 1..=4 register four delegates (round 0: 1..=3, round 1: 4..=6).
    for account in 1..=4u8 {
        let name = format!("d{account}");
        staking(&mut chain, account, StakingTx::RegisterDelegate { node_key: node_key(account), name }).unwrap();
    }
    // Account 5 stakes at height 5 and backs delegates 2, 3 and 4 at height 6, the last
    // block of round 1.
    staking(&mut chain, 5, StakingTx::Stake { amount: 500 }).unwrap();
    staking(&mut chain, 5, StakingTx::Vote { delegates: vec![key(2), key(3), key(4)] }).unwrap();
    assert_eq!(chain.height, 6);
    chain.advance_to(20);
    let params = chain.ledger.dpos_params().unwrap();
    let sorted = |mut keys: Vec<PublicKey>| {
        keys.sort_by_key(|key| key.0);
        keys
    };
    // Round 1 was chosen at height 1 from genesis (no delegates): genesis's set goes on.
    assert_eq!(chain.ledger.validators_at(params.first_height(1)).unwrap().members, genesis_members());
    // Round 2 was chosen at height 4 from the state of height 3: delegates 1, 2, 3, no votes.
    let round_2 = keys(&chain.ledger.validators_at(params.first_height(2)).unwrap());
    assert_eq!(sorted(round_2), sorted(vec![node_key(1), node_key(2), node_key(3)]));
    // The vote of round 1 counts from round 3, chosen at height 7 from the state of height 6.
    let round_3 = keys(&chain.ledger.validators_at(params.first_height(3)).unwrap());
    assert_eq!(sorted(round_3.clone()), sorted(vec![node_key(2), node_key(3), node_key(4)]));
    let seed = staking::round_seed(3, &chain.hash_at(6));
    assert_eq!(round_3, staking::round_order(&ranked(&chain.ledger), N as usize, &seed));
    // The round's record keeps what the order was computed from.
    let record = chain.ledger.dpos_round(3).unwrap();
    assert_eq!((record.chosen_at, record.seed), (7, Some(seed)));
    let elected: Vec<(PublicKey, u128)> = record.elected.iter().map(|d| (d.node_key, d.votes)).collect();
    assert_eq!(elected, vec![(node_key(2), 500), (node_key(3), 500), (node_key(4), 500)]);
    assert_eq!(chain.ledger.dpos_round(1).unwrap().seed, None);
    // A set starts only at a round's first height.
    for set in chain.ledger.validator_sets() {
        assert_eq!((set.from_height - 1) % u64::from(N), 0, "set from {}", set.from_height);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    /// Any sequence of registrations, stakes and votes: the set of every round is the
    /// documented rule applied to the state at the end of round r − 2 and the hash of
    /// its last block (or the set before it, when fewer than N delegates are
    /// registered), and it is the same at every height of the round.
    #[test]
    fn every_round_follows_the_rule(ops in proptest::collection::vec((1..=ACCOUNTS, 0u8..4, 1u64..400, 0u8..64), 1..40)) {
        let mut chain = dpos_chain();
        let mut states = vec![chain.ledger.clone()];
        for (account, kind, amount, picks) in ops {
            let body = match kind {
                0 => StakingTx::RegisterDelegate { node_key: node_key(account), name: format!("d{account}") },
                1 => StakingTx::Stake { amount },
                2 => StakingTx::Unstake { amount: amount / 2 },
                _ => StakingTx::Vote { delegates: (1..=ACCOUNTS).filter(|i| picks & (1 << i) != 0).map(key).collect() },
            };
            let _ = staking(&mut chain, account, body);
            states.push(chain.ledger.clone());
        }
        let params = chain.ledger.dpos_params().unwrap();
        let sets = chain.ledger.validator_sets();
        let last_round = params.round_of(chain.height);
        for round in 1..=last_round {
            let first = params.first_height(round);
            let chosen_at = params.first_height(round - 1);
            let before = &states[(chosen_at - 1) as usize];
            let ranked_then = ranked(before);
            let expected = if ranked_then.len() < N as usize {
                keys(set_at(&sets, first - 1).unwrap())
            } else {
                staking::round_order(&ranked_then, N as usize, &staking::round_seed(round, &chain.hash_at(chosen_at - 1)))
            };
            for height in first..first + u64::from(N) {
                proptest::prop_assert_eq!(keys(set_at(&sets, height).unwrap()), expected.clone(), "round {} height {}", round, height);
            }
        }
    }
}
