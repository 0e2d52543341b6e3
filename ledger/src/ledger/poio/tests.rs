use super::*;
use crate::ledger::staking::StakingTx;
use crate::ledger::test_chain::TestChain;
use crate::ledger::tx::TxBody;
use crate::ledger::validators::{Member, ValidatorSet};
use proptest::prelude::*;

const N: u32 = 3;
const FUNDS: u64 = 1_000_000;
const PARAMS: PoioParams = PoioParams {
    cap: 2_500,
    per_round: 1_000,
    weights: Weights { uptime_per_minute: 600, per_tx_verified: 1, storage_per_mib: 1_000_000 },
};

fn key(byte: u8) -> PublicKey {
    PublicKey([byte; 32])
}

/// Round 0's delegates, who are also the nodes that prove contributions.
fn member(index: u8) -> PublicKey {
    key(200 + index)
}

/// The test chain's proposer (every block's).
const PROPOSER: u8 = 7;

fn poio_chain(params: PoioParams) -> TestChain {
    let mut funded: Vec<(PublicKey, u64)> = (1..=3).map(|a| (key(a), FUNDS)).collect();
    funded.extend((1..=N as u8).map(|i| (member(i), FUNDS)));
    let accounts: Vec<_> = Ledger::genesis(&funded).unwrap().accounts().map(|(k, a)| (*k, *a)).collect();
    let members = (1..=N as u8).map(|i| Member { key: member(i), power: 1 }).collect();
    let first = ValidatorSet { from_height: 1, members };
    let ledger = Ledger::from_state(accounts, [first.record(), DposParams { delegates: N }.record(), params.record()]);
    TestChain::from_genesis(ledger, key(PROPOSER))
}

fn transfer(chain: &mut TestChain) {
    chain.run(key(1), TxBody::Transfer { to: key(2), amount: 5 }).unwrap();
}

fn poio(chain: &mut TestChain, node: PublicKey, body: PoioTx) -> Result<(), TxError> {
    chain.run(node, TxBody::Poio(body))
}

fn attest(chain: &mut TestChain, node: PublicKey, round: u64) -> Result<(), TxError> {
    let start = chain.ledger.poio_round_start(round).expect("round started").start;
    poio(chain, node, PoioTx::Alive { round, start })
}

/// The node's answer from the test chain's blocks, as a node answers from its store.
fn storage_answer(chain: &TestChain, round: u64, node: &PublicKey) -> PoioTx {
    let start = chain.ledger.poio_round_start(round).expect("round started");
    let (index, _) = challenge(&start, node).expect("a challenge");
    let block = chain.ledger.poio_tx_block(index).expect("the challenged block");
    let txs: Vec<Vec<u8>> = chain.blocks[block.height as usize].iter().map(SignedTx::encode).collect();
    answer(round, &start, node, &block, &txs).expect("an answer")
}

fn balance(chain: &TestChain, account: &PublicKey) -> u64 {
    chain.ledger.account(account).balance
}

#[test]
fn proven_contributions_are_paid_in_proportion_within_the_round_pool() {
    let mut chain = poio_chain(PARAMS);
    for _ in 1..=3 {
        transfer(&mut chain);
    }
    // Block 4 opens round 1. In blocks 5 and 6 the first member attests and answers; in
    // block 7 (round 2, the grace round) the second attests; the third proves nothing.
    chain.advance_to(4);
    attest(&mut chain, member(1), 1).unwrap();
    let answer = storage_answer(&chain, 1, &member(1));
    poio(&mut chain, member(1), answer).unwrap();
    attest(&mut chain, member(2), 1).unwrap();
    let before: Vec<u64> = (1..=3).map(|i| balance(&chain, &member(i))).collect();
    // Round 1 is settled by the first block of round 3 (height 10).
    chain.advance_to(10);
    let settled = chain.ledger.poio_rewards(1).expect("round 1 settled");
    assert_eq!(settled.settled_at, 10);
    assert_eq!(settled.duration_ms, 3_000, "three blocks a second apart");
    let amount = |node: PublicKey| settled.rewards.iter().find(|r| r.node == node).map_or(0, |r| r.amount);
    let (first, second, third) = (amount(member(1)), amount(member(2)), amount(member(3)));
    assert!(first > second && second > 0, "{settled:?}");
    assert_eq!(third, 0, "nothing proven, nothing paid: {settled:?}");
    assert!(settled.rewards.iter().any(|r| r.node == key(PROPOSER) && r.contribution.txs_verified == 2));
    let paid: u64 = settled.rewards.iter().map(|r| r.amount).sum();
    assert!(paid <= settled.pool && settled.pool == PARAMS.per_round, "{settled:?}");
    // Fees paid in round 1 came out before; the reward is minted on top.
    assert_eq!(balance(&chain, &member(1)), before[0] + first);
    assert_eq!(balance(&chain, &member(2)), before[1] + second);
    assert_eq!(chain.ledger.poio_contribution(1, &member(1)), None, "settled contributions are forgotten");
    let round0 = chain.ledger.poio_rewards(0).expect("round 0 settled").rewards.iter().map(|r| r.amount).sum::<u64>();
    assert_eq!(chain.ledger.poio_issued(), round0 + paid);
}

#[test]
fn a_node_that_cannot_produce_the_challenged_transaction_is_refused() {
    let mut chain = poio_chain(PARAMS);
    // One block of three transactions: the audit path has two hashes.
    let txs: Vec<SignedTx> =
        (1..=3).map(|from| chain.tx(key(from), TxBody::Transfer { to: key(9), amount: 1 })).collect();
    assert!(chain.block(&txs).rejected.is_empty());
    chain.advance_to(4);
    let PoioTx::Storage { round, tx, path } = storage_answer(&chain, 1, &member(1)) else { unreachable!() };
    // Another transaction of the chain, or a path changed in one bit, proves nothing.
    let other = chain.blocks.iter().flatten().map(SignedTx::encode).find(|bytes| *bytes != tx).unwrap();
    let error = poio(&mut chain, member(1), PoioTx::Storage { round, tx: other, path: path.clone() }).unwrap_err();
    assert!(error.to_string().contains("wrong storage answer for round 1"), "{error}");
    assert_eq!(path.len(), 2);
    let mut bent = path.clone();
    bent[1].0[0] ^= 1;
    let bent_answer = PoioTx::Storage { round, tx: tx.clone(), path: bent };
    assert!(matches!(poio(&mut chain, member(1), bent_answer), Err(TxError::Poio(PoioError::WrongAnswer { .. }))));
    // The other members' challenges pick their own transaction: member 1's answer is
    // theirs only when the draw agrees.
    poio(&mut chain, member(1), PoioTx::Storage { round, tx: tx.clone(), path: path.clone() }).unwrap();
    let again = poio(&mut chain, member(1), PoioTx::Storage { round, tx, path }).unwrap_err();
    assert!(again.to_string().contains("already answered its challenge"), "{again}");
    assert_eq!(chain.ledger.poio_contribution(1, &member(1)).map(|c| c.storage_bytes > 0), Some(true));
}

#[test]
fn attestations_name_the_round_start_and_only_nodes_may_send_them() {
    let mut chain = poio_chain(PARAMS);
    // A registered delegate's node key takes part (key 1, registered by account 3).
    chain.run(key(3), TxBody::Staking(StakingTx::RegisterDelegate { node_key: key(1), name: "one".into() })).unwrap();
    chain.advance_to(4);
    // Round 0 has no storage challenge: no block had transactions before it.
    assert!(storage_answer_or_none(&chain, 0).is_none());
    let wrong = PoioTx::Alive { round: 1, start: Hash32([9; 32]) };
    let error = poio(&mut chain, member(1), wrong).unwrap_err();
    assert!(matches!(error, TxError::Poio(PoioError::WrongStart { round: 1, .. })), "{error}");
    let error = attest(&mut chain, key(2), 1).unwrap_err();
    assert!(matches!(error, TxError::Poio(PoioError::NotANode(_))), "{error}");
    attest(&mut chain, key(1), 1).unwrap();
    attest(&mut chain, member(2), 1).unwrap();
    let error = attest(&mut chain, member(2), 1).unwrap_err();
    assert!(error.to_string().contains("already attested liveness for round 1"), "{error}");
    // Round 1 takes attestations in rounds 1 and 2 only: height 10 is round 3.
    chain.advance_to(9);
    let late = attest(&mut chain, member(3), 1).unwrap_err();
    assert!(matches!(late, TxError::Poio(PoioError::RoundClosed { round: 1, current: 3 })), "{late}");
}

fn storage_answer_or_none(chain: &TestChain, round: u64) -> Option<(u64, u64)> {
    let start = chain.ledger.poio_round_start(round)?;
    challenge(&start, &member(1)).map(|(block, leaf)| (block, leaf(1)))
}

#[test]
fn weights_change_once_two_thirds_of_the_set_approve_them() {
    let mut chain = poio_chain(PARAMS);
    let weights = Weights { uptime_per_minute: 1, per_tx_verified: 2, storage_per_mib: 3 };
    let error = poio(&mut chain, key(1), PoioTx::Weights(weights)).unwrap_err();
    assert!(matches!(error, TxError::Poio(PoioError::NotAValidator(_))), "{error}");
    poio(&mut chain, member(1), PoioTx::Weights(weights)).unwrap();
    poio(&mut chain, member(1), PoioTx::Weights(weights)).unwrap();
    assert_eq!(chain.ledger.poio_params().unwrap().weights, PARAMS.weights, "one approver counts once");
    poio(&mut chain, member(2), PoioTx::Weights(weights)).unwrap();
    assert_eq!(chain.ledger.poio_params().unwrap().weights, PARAMS.weights, "2 of 3 are not above two thirds");
    poio(&mut chain, member(3), PoioTx::Weights(weights)).unwrap();
    assert_eq!(chain.ledger.poio_params().unwrap().weights, weights, "floor(2·3/3) + 1 = 3 approve");
}

#[test]
fn a_chain_without_proof_of_io_refuses_its_transactions() {
    let mut chain = TestChain::new(&[(member(1), FUNDS)], key(PROPOSER));
    let error = poio(&mut chain, member(1), PoioTx::Alive { round: 0, start: Hash32::ZERO }).unwrap_err();
    assert!(matches!(error, TxError::Poio(PoioError::Disabled)), "{error}");
}

#[test]
fn split_never_pays_more_than_the_pool_even_for_huge_scores() {
    assert_eq!(split(100, &[1, 1, 1]), vec![33, 33, 33]);
    assert_eq!(split(100, &[0, 0]), vec![0, 0]);
    let huge = split(u64::MAX, &[u128::MAX, u128::MAX / 3, 1]);
    assert!(huge.iter().map(|a| u128::from(*a)).sum::<u128>() <= u128::from(u64::MAX));
    assert!(huge[0] > huge[1]);
}

/// One step of a random run: which members attest, answer, or send transfers, in which
/// block.
#[derive(Clone, Debug)]
enum Step {
    Transfer,
    Alive(u8),
    Storage(u8),
    Empty,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => Just(Step::Transfer),
        2 => (1..=N as u8).prop_map(Step::Alive),
        2 => (1..=N as u8).prop_map(Step::Storage),
        1 => Just(Step::Empty),
    ]
}

fn play(chain: &mut TestChain, step: &Step) {
    let round = chain.ledger.dpos_params().unwrap().round_of(chain.height + 1);
    let started = chain.ledger.poio_round_start(round);
    let result = match step {
        Step::Transfer => chain.run(key(1), TxBody::Transfer { to: key(2), amount: 1 }),
        Step::Alive(node) if started.is_some() => attest(chain, member(*node), round),
        Step::Storage(node) if started.is_some_and(|start| challenge(&start, &member(*node)).is_some()) => {
            let answer = storage_answer(chain, round, &member(*node));
            poio(chain, member(*node), answer)
        }
        _ => {
            chain.advance_to(chain.height + 1);
            Ok(())
        }
    };
    // A refusal (a second attestation in a round) is part of the run, not a failure.
    let _ = result;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever is proven, minted rewards never pass the cap nor a round's pool, the
    /// issued total is what the settled rounds paid, and every minted token is in a
    /// balance.
    #[test]
    fn rewards_never_exceed_the_cap_or_the_round_pool(
        steps in proptest::collection::vec(step(), 1..60),
        cap in 0u64..5_000,
        per_round in 0u64..2_000,
    ) {
        let params = PoioParams { cap: cap.max(per_round), per_round, ..PARAMS };
        let mut chain = poio_chain(params);
        let supply = chain.ledger.total_supply();
        for step in &steps {
            play(&mut chain, step);
        }
        let issued = chain.ledger.poio_issued();
        prop_assert!(issued <= params.cap, "issued {issued} above cap {}", params.cap);
        let mut paid_total = 0u64;
        let last_round = chain.ledger.dpos_params().unwrap().round_of(chain.height);
        for round in 0..=last_round {
            if let Some(settled) = chain.ledger.poio_rewards(round) {
                let paid: u64 = settled.rewards.iter().map(|r| r.amount).sum();
                prop_assert!(paid <= settled.pool && settled.pool <= per_round, "round {round}: {settled:?}");
                paid_total += paid;
            }
        }
        prop_assert_eq!(issued, paid_total);
        // Fees move between accounts; rewards are the only tokens minted.
        prop_assert_eq!(chain.ledger.total_supply(), supply + u128::from(issued));
    }
}
