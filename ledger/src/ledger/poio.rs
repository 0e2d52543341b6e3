//! Proof-of-i/o: rewards for the nodes that carry a DPoS chain, from a capped pool.
//!
//! Proof-of-i/o is not consensus. It pays, from tokens minted up to a cap fixed at
//! genesis, the node keys that *prove* three contributions (ADR 0014):
//!
//! - **uptime**: a signed liveness attestation ([`PoioTx::Alive`]) naming the hash of
//!   the block that ended the round before ([`RoundStart::start`]), which nobody knew
//!   before that block; credited with the round's duration in milliseconds;
//! - **transactions verified**: each block's proposer is credited with the
//!   transactions it applied: its seal over the block is its signed statement that it
//!   verified them;
//! - **storage**: a storage challenge each round: a seed from chain data
//!   (`sha256("nest/poio/challenge/v1" ++ start ++ node key)`) picks one earlier
//!   block with transactions and one of its transactions; the node answers
//!   ([`PoioTx::Storage`]) with the transaction's bytes and their RFC 6962 audit path to
//!   the root this module recorded when the block executed. Credited with the bytes of
//!   transactions the chain held when the round began.
//!
//! Contributions of round `r` count while round `r` or `r + 1` runs (one round of grace
//! to answer), and round `r` is settled by the first block of round `r + 2`: its pool is
//! `min(per_round, cap − issued)`, split in proportion to each node's score (weights per
//! minute of uptime, per transaction verified, per MiB proven), rounded down. What the
//! rounding leaves, and a round nobody contributed to, is never minted: `issued` never
//! exceeds `cap`. Weights change when at least `floor(2n/3) + 1` members of the
//! validator set in force approve the same weights ([`PoioTx::Weights`]).
//!
//! Only node keys that may seal blocks take part: a member of the set in force or the
//! node key of a registered delegate.
//!
//! Records (keys under `poio/`): `poio/params`, `poio/issued` (u64), `poio/chain`
//! ([`ChainTally`]), `poio/b/<k BE>` ([`TxBlock`], the k-th block with transactions),
//! `poio/r/<r BE>` ([`RoundStart`]), `poio/c/<r BE><node>` ([`Contribution`]),
//! `poio/p/<r BE>` ([`RoundRewards`]), `poio/w/<weights hash>` (approvals).

use super::exec::TxContext;
use super::merkle;
use super::rounds::{DPOS_PARAMS_KEY, DposParams};
use super::state::{BlockEnv, Changes, Ledger};
use super::tx::{SignedTx, TxError};
use crate::crypto;
use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{Hash32, PublicKey};

/// Key prefix of every Proof-of-i/o record.
pub const POIO_PREFIX: &[u8] = b"poio/";
/// Key of the parameters (absent on chains without Proof-of-i/o).
pub const POIO_PARAMS_KEY: &[u8] = b"poio/params";
const ISSUED_KEY: &[u8] = b"poio/issued";
const CHAIN_KEY: &[u8] = b"poio/chain";
const BLOCK_PREFIX: &[u8] = b"poio/b/";
const ROUND_PREFIX: &[u8] = b"poio/r/";
const CONTRIBUTION_PREFIX: &[u8] = b"poio/c/";
const REWARD_PREFIX: &[u8] = b"poio/p/";
const APPROVAL_PREFIX: &[u8] = b"poio/w/";
/// Domain prefix of a storage challenge.
pub const CHALLENGE_DOMAIN: &[u8] = b"nest/poio/challenge/v1";
/// Gas of a liveness attestation or a weights approval.
pub const ATTEST_GAS: u64 = 300;
/// Gas of a storage answer, before its bytes.
pub const STORAGE_BASE_GAS: u64 = 500;
/// Gas per byte of a storage answer's transaction.
pub const STORAGE_BYTE_GAS: u64 = 1;
/// Longest audit path an answer may carry (a tree of up to 2^32 leaves).
pub const PATH_HASHES_MAX: usize = 32;
/// Milliseconds in a minute and bytes in a MiB: the units the weights are given in.
const MINUTE_MS: u128 = 60_000;
const MIB_BYTES: u128 = 1 << 20;

/// What one unit of each contribution earns, relative to the others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Weights {
    /// Per minute of attested uptime.
    pub uptime_per_minute: u64,
    /// Per transaction verified.
    pub per_tx_verified: u64,
    /// Per MiB of chain data a node proved it holds.
    pub storage_per_mib: u64,
}

/// The chain's Proof-of-i/o parameters, written at genesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct PoioParams {
    /// Most tokens ever minted as rewards.
    pub cap: u64,
    /// Most tokens minted per round.
    pub per_round: u64,
    /// The weights in force.
    pub weights: Weights,
}

impl PoioParams {
    /// The parameters' ledger record: key and value.
    pub fn record(&self) -> (Vec<u8>, Vec<u8>) {
        (POIO_PARAMS_KEY.to_vec(), borsh::to_vec(self).unwrap_or_default())
    }

    /// Checks the parameters: a round's pool within the cap.
    pub fn check(&self) -> Result<(), String> {
        if self.per_round > self.cap {
            return Err(format!("per_round {} is above the cap {}", self.per_round, self.cap));
        }
        Ok(())
    }
}

/// Blocks with transactions and their bytes, so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct ChainTally {
    /// Blocks with at least one transaction.
    pub tx_blocks: u64,
    /// Bytes of their transactions.
    pub tx_bytes: u64,
}

/// A block with transactions, as storage challenges address it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct TxBlock {
    /// Its height.
    pub height: u64,
    /// The RFC 6962 root of its transaction ids (the header's `tx_root`).
    pub root: Hash32,
    /// Its transactions.
    pub count: u64,
}

/// What the first block of a round recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct RoundStart {
    /// Hash of the block before the round (the last of the round before).
    pub start: Hash32,
    /// Timestamp of the round's first block.
    pub time_ms: u64,
    /// The chain's blocks with transactions and their bytes, before the round.
    pub chain: ChainTally,
}

/// A node's proven contributions in one round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Contribution {
    /// It attested liveness.
    pub alive: bool,
    /// Transactions in the blocks it proposed.
    pub txs_verified: u64,
    /// Bytes its storage answer proved (0: none or wrong).
    pub storage_bytes: u64,
}

/// One node's reward for a round.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Reward {
    /// The node key paid.
    pub node: PublicKey,
    /// What it proved.
    pub contribution: Contribution,
    /// Tokens minted to it.
    pub amount: u64,
}

/// How a round was settled.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct RoundRewards {
    /// Height of the block that settled it.
    pub settled_at: u64,
    /// The round's duration, credited per attestation.
    pub duration_ms: u64,
    /// The pool: `min(per_round, cap − issued)`.
    pub pool: u64,
    /// The weights it was scored with.
    pub weights: Weights,
    /// Each contributing node's reward, in node key order.
    pub rewards: Vec<Reward>,
}

/// A Proof-of-i/o transaction, sent by a node key.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoioTx {
    /// The sender was up in `round`: it knows the block that ended the round before.
    Alive {
        /// The round attested.
        round: u64,
        /// Hash of the last block before it ([`RoundStart::start`]).
        start: Hash32,
    },
    /// The answer to the sender's storage challenge of `round`.
    Storage {
        /// The round whose challenge it answers.
        round: u64,
        /// The challenged transaction's bytes (an encoded signed transaction).
        tx: Vec<u8>,
        /// Its RFC 6962 audit path to the block's transaction root, leaf up.
        path: Vec<Hash32>,
    },
    /// The sender, a member of the validator set in force, approves these weights.
    Weights(Weights),
}

/// Why a Proof-of-i/o transaction was refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum PoioError {
    /// The chain has no Proof-of-i/o.
    #[error("this chain has no Proof-of-i/o rewards")]
    Disabled,
    /// The sender may not take part.
    #[error("{0} is neither in the validator set nor a registered delegate's node key")]
    NotANode(PublicKey),
    /// The sender is not in the set that approves weights.
    #[error("{0} is not in the validator set in force, which approves weights")]
    NotAValidator(PublicKey),
    /// The round is not open to contributions in this block.
    #[error("round {round} takes contributions in rounds {round} and {}, this block is in round {current}", round + 1)]
    RoundClosed {
        /// The round named.
        round: u64,
        /// The block's round.
        current: u64,
    },
    /// The attestation names another block.
    #[error("round {round} started after block {expected}, not {given}")]
    WrongStart {
        /// The round.
        round: u64,
        /// The hash recorded.
        expected: Hash32,
        /// The hash given.
        given: Hash32,
    },
    /// Counted already.
    #[error("{node} already {what} for round {round}")]
    Duplicate {
        /// The node.
        node: PublicKey,
        /// What it did.
        what: &'static str,
        /// The round.
        round: u64,
    },
    /// Nothing to challenge yet.
    #[error("round {0} has no storage challenge: no block had transactions before it")]
    NoChallenge(u64),
    /// The storage answer does not prove the challenged transaction.
    #[error("wrong storage answer for round {round}: {reason}")]
    WrongAnswer {
        /// The round.
        round: u64,
        /// What failed.
        reason: String,
    },
}

impl PoioError {
    /// A stable snake_case code for API clients and metrics labels.
    pub fn code(&self) -> &'static str {
        "poio"
    }
}

/// Gas of a Proof-of-i/o transaction.
pub fn gas_of(body: &PoioTx) -> u64 {
    match body {
        PoioTx::Alive { .. } | PoioTx::Weights(_) => ATTEST_GAS,
        PoioTx::Storage { tx, path, .. } => STORAGE_BASE_GAS
            .saturating_add(STORAGE_BYTE_GAS.saturating_mul(tx.len() as u64))
            .saturating_add(32u64.saturating_mul(path.len() as u64)),
    }
}

fn round_key(prefix: &[u8], round: u64) -> Vec<u8> {
    [prefix, &round.to_be_bytes()[..]].concat()
}

fn contribution_key(round: u64, node: &PublicKey) -> Vec<u8> {
    [CONTRIBUTION_PREFIX, &round.to_be_bytes()[..], &node.0[..]].concat()
}

/// The key of the `index`-th block with transactions (from 0).
fn block_key(index: u64) -> Vec<u8> {
    round_key(BLOCK_PREFIX, index)
}

/// Which block with transactions, and which of its transactions, `node`'s storage
/// challenge of a round names: `sha256(domain ++ start ++ node)`, its first eight bytes
/// (big endian) modulo the blocks with transactions, its next eight modulo that block's
/// transactions. A 64-bit draw reduced modulo counts below 2^32 is biased by less than
/// 2^-32. `None` when no block had transactions.
pub fn challenge(start: &RoundStart, node: &PublicKey) -> Option<(u64, impl Fn(u64) -> u64)> {
    if start.chain.tx_blocks == 0 {
        return None;
    }
    let draw = crypto::sha256_parts(&[CHALLENGE_DOMAIN, &start.start.0, &node.0]);
    let word = |at: usize| u64::from_be_bytes(draw.0[at..at + 8].try_into().unwrap_or_default());
    let (block, leaf) = (word(0) % start.chain.tx_blocks, word(8));
    Some((block, move |count: u64| leaf % count.max(1)))
}

/// The answer to `node`'s storage challenge of `round`, from the challenged block's
/// transactions (encoded, in block order) as the node's store holds them; `None` when
/// the round has no challenge or the transactions are not the recorded block's.
pub fn answer(round: u64, start: &RoundStart, node: &PublicKey, block: &TxBlock, txs: &[Vec<u8>]) -> Option<PoioTx> {
    let (_, leaf_of) = challenge(start, node)?;
    let ids: Vec<Hash32> = txs.iter().map(|tx| crypto::sha256(tx)).collect();
    if ids.len() as u64 != block.count || merkle::merkle_root(&ids) != block.root {
        return None;
    }
    let leaf = usize::try_from(leaf_of(block.count)).ok()?;
    let path = merkle::inclusion_path(&ids, leaf)?;
    Some(PoioTx::Storage { round, tx: txs.get(leaf)?.clone(), path })
}

/// The layered state a block hook reads and writes: the ledger, then the block's
/// not-yet-final ancestors, then what the block wrote so far, then the hook's writes.
struct Hook<'a> {
    ledger: &'a Ledger,
    prior: &'a Changes,
    overlay: &'a Changes,
    touched: Changes,
}

impl Hook<'_> {
    fn bytes(&self, key: &[u8]) -> Option<Vec<u8>> {
        for layer in [&self.touched, self.overlay, self.prior] {
            if let Some(value) = layer.records.get(key) {
                return value.clone();
            }
        }
        self.ledger.record(key).map(<[u8]>::to_vec)
    }

    fn get<T: BorshDeserialize>(&self, key: &[u8]) -> Option<T> {
        self.bytes(key).and_then(|bytes| borsh::from_slice(&bytes).ok())
    }

    fn put<T: BorshSerialize>(&mut self, key: Vec<u8>, value: &T) {
        self.touched.records.insert(key, Some(borsh::to_vec(value).unwrap_or_default()));
    }

    fn prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        super::rounds::records_with_prefix(self.ledger, &[self.prior, self.overlay, &self.touched], prefix)
    }

    /// Mints `amount` to `node`; the new balance, or `None` on overflow (nothing minted).
    fn mint(&mut self, node: &PublicKey, amount: u64) -> Option<()> {
        let mut account = [&self.touched, self.overlay, self.prior]
            .into_iter()
            .find_map(|layer| layer.accounts.get(node))
            .copied()
            .unwrap_or_else(|| self.ledger.account(node));
        account.balance = account.balance.checked_add(amount)?;
        self.touched.accounts.insert(*node, account);
        Some(())
    }
}

/// What a block of a Proof-of-i/o chain writes before its transactions: when it opens
/// round `r`, the round's [`RoundStart`] and the settlement of round `r − 2`.
pub fn round_start_changes(ledger: &Ledger, prior: &Changes, overlay: &Changes, env: &BlockEnv) -> Changes {
    let mut hook = Hook { ledger, prior, overlay, touched: Changes::new() };
    let (Some(params), Some(dpos)) = (hook.get::<PoioParams>(POIO_PARAMS_KEY), hook.get::<DposParams>(DPOS_PARAMS_KEY))
    else {
        return Changes::new();
    };
    if env.height != dpos.first_height(dpos.round_of(env.height)) {
        return Changes::new();
    }
    let round = dpos.round_of(env.height);
    let chain = hook.get::<ChainTally>(CHAIN_KEY).unwrap_or_default();
    hook.put(round_key(ROUND_PREFIX, round), &RoundStart { start: env.parent, time_ms: env.time_ms, chain });
    if let Some(settled) = round.checked_sub(2) {
        settle(&mut hook, &params, settled, env.height);
    }
    hook.touched
}

/// Pays round `round`'s pool to its contributors and forgets their contributions.
fn settle(hook: &mut Hook<'_>, params: &PoioParams, round: u64, height: u64) {
    let duration_ms = match (
        hook.get::<RoundStart>(&round_key(ROUND_PREFIX, round)),
        hook.get::<RoundStart>(&round_key(ROUND_PREFIX, round + 1)),
    ) {
        (Some(first), Some(next)) => next.time_ms.saturating_sub(first.time_ms),
        _ => 0,
    };
    let contributions: Vec<(PublicKey, Contribution)> = hook
        .prefix(&round_key(CONTRIBUTION_PREFIX, round))
        .into_iter()
        .filter_map(|(key, value)| {
            let node = PublicKey(key.get(CONTRIBUTION_PREFIX.len() + 8..)?.try_into().ok()?);
            Some((node, borsh::from_slice(&value).ok()?))
        })
        .collect();
    let issued = hook.get::<u64>(ISSUED_KEY).unwrap_or(0);
    let pool = params.per_round.min(params.cap.saturating_sub(issued));
    let scores: Vec<u128> =
        contributions.iter().map(|(_, contribution)| score(contribution, duration_ms, &params.weights)).collect();
    let amounts = split(pool, &scores);
    let mut rewards = Vec::with_capacity(contributions.len());
    let mut minted = 0u64;
    for ((node, contribution), amount) in contributions.into_iter().zip(amounts) {
        hook.touched.records.insert(contribution_key(round, &node), None);
        let amount = if amount > 0 && hook.mint(&node, amount).is_some() { amount } else { 0 };
        minted = minted.saturating_add(amount);
        rewards.push(Reward { node, contribution, amount });
    }
    hook.put(ISSUED_KEY.to_vec(), &issued.saturating_add(minted));
    let record = RoundRewards { settled_at: height, duration_ms, pool, weights: params.weights, rewards };
    hook.put(round_key(REWARD_PREFIX, round), &record);
}

/// A contribution's score, in units of `1 / (60,000 · 2^20)` so that every weight's unit
/// (per minute, per transaction, per MiB) is exact in integers.
pub fn score(contribution: &Contribution, duration_ms: u64, weights: &Weights) -> u128 {
    let uptime_ms = if contribution.alive { u128::from(duration_ms) } else { 0 };
    let uptime = uptime_ms.saturating_mul(u128::from(weights.uptime_per_minute)).saturating_mul(MIB_BYTES);
    let txs = u128::from(contribution.txs_verified)
        .saturating_mul(u128::from(weights.per_tx_verified))
        .saturating_mul(MINUTE_MS * MIB_BYTES);
    let storage = u128::from(contribution.storage_bytes)
        .saturating_mul(u128::from(weights.storage_per_mib))
        .saturating_mul(MINUTE_MS);
    uptime.saturating_add(txs).saturating_add(storage)
}

/// `pool` split in proportion to `scores`, each share rounded down: the shares never sum
/// above `pool`. Scores are shifted right together until their sum fits 64 bits, so that
/// `pool · score` fits 128.
pub fn split(pool: u64, scores: &[u128]) -> Vec<u64> {
    let mut shift = 0;
    let total = loop {
        let total = scores.iter().fold(0u128, |sum, score| sum.saturating_add(shifted(*score, shift)));
        if total <= u128::from(u64::MAX) {
            break total;
        }
        shift += 1;
    };
    scores
        .iter()
        .map(|score| {
            if total == 0 {
                return 0;
            }
            let share = u128::from(pool) * shifted(*score, shift) / total;
            u64::try_from(share).unwrap_or(0)
        })
        .collect()
}

/// `score >> shift`, 0 once the shift passes the width.
fn shifted(score: u128, shift: u32) -> u128 {
    score.checked_shr(shift).unwrap_or(0)
}

/// What a block of a Proof-of-i/o chain writes after its transactions: its proposer's
/// credit for the transactions it applied, and, when it has any, its transaction root
/// for later storage challenges.
pub fn block_end_changes(
    ledger: &Ledger,
    prior: &Changes,
    overlay: &Changes,
    env: &BlockEnv,
    applied: &[&SignedTx],
) -> Changes {
    let mut hook = Hook { ledger, prior, overlay, touched: Changes::new() };
    let (Some(_), Some(dpos)) = (hook.get::<PoioParams>(POIO_PARAMS_KEY), hook.get::<DposParams>(DPOS_PARAMS_KEY))
    else {
        return Changes::new();
    };
    if applied.is_empty() {
        return Changes::new();
    }
    let round = dpos.round_of(env.height);
    let key = contribution_key(round, &env.proposer);
    let mut contribution = hook.get::<Contribution>(&key).unwrap_or_default();
    contribution.txs_verified = contribution.txs_verified.saturating_add(applied.len() as u64);
    hook.put(key, &contribution);
    let encoded: Vec<Vec<u8>> = applied.iter().map(|tx| tx.encode()).collect();
    let ids: Vec<Hash32> = encoded.iter().map(|bytes| crypto::sha256(bytes)).collect();
    let mut chain = hook.get::<ChainTally>(CHAIN_KEY).unwrap_or_default();
    let block = TxBlock { height: env.height, root: merkle::merkle_root(&ids), count: ids.len() as u64 };
    hook.put(block_key(chain.tx_blocks), &block);
    chain.tx_blocks = chain.tx_blocks.saturating_add(1);
    let bytes: u64 = encoded.iter().map(|tx| tx.len() as u64).sum();
    chain.tx_bytes = chain.tx_bytes.saturating_add(bytes);
    hook.put(CHAIN_KEY.to_vec(), &chain);
    hook.touched
}

/// Applies a Proof-of-i/o transaction of `ctx`'s sender.
pub fn apply(ctx: &mut TxContext<'_>, body: &PoioTx) -> Result<(), TxError> {
    let params = ctx.record::<PoioParams>(POIO_PARAMS_KEY)?.ok_or(PoioError::Disabled)?;
    let dpos = ctx.record::<DposParams>(DPOS_PARAMS_KEY)?.ok_or(PoioError::Disabled)?;
    let sender = ctx.tx().tx.from;
    match body {
        PoioTx::Alive { round, start } => {
            let (key, mut contribution, round_start) = open_round(ctx, &dpos, *round, sender)?;
            if round_start.start != *start {
                return Err(PoioError::WrongStart { round: *round, expected: round_start.start, given: *start }.into());
            }
            if contribution.alive {
                return Err(PoioError::Duplicate { node: sender, what: "attested liveness", round: *round }.into());
            }
            contribution.alive = true;
            ctx.put_record(key, &contribution)
        }
        PoioTx::Storage { round, tx, path } => {
            let (key, mut contribution, round_start) = open_round(ctx, &dpos, *round, sender)?;
            if contribution.storage_bytes > 0 {
                return Err(PoioError::Duplicate { node: sender, what: "answered its challenge", round: *round }.into());
            }
            check_answer(ctx, &round_start, *round, sender, tx, path)?;
            contribution.storage_bytes = round_start.chain.tx_bytes.max(1);
            ctx.put_record(key, &contribution)
        }
        PoioTx::Weights(weights) => approve(ctx, params, sender, *weights),
    }
}

/// The contribution record of `sender` for `round`, when `round` takes contributions in
/// this block and `sender` may make them.
fn open_round(
    ctx: &TxContext<'_>,
    dpos: &DposParams,
    round: u64,
    sender: PublicKey,
) -> Result<(Vec<u8>, Contribution, RoundStart), TxError> {
    let current = dpos.round_of(ctx.env().height);
    if current != round && current != round.saturating_add(1) {
        return Err(PoioError::RoundClosed { round, current }.into());
    }
    let round_start =
        ctx.record::<RoundStart>(&round_key(ROUND_PREFIX, round))?.ok_or(PoioError::RoundClosed { round, current })?;
    let in_set = ctx.validators_at(ctx.env().height).is_some_and(|set| set.members.iter().any(|m| m.key == sender));
    let delegate = ctx.record_bytes(&super::staking::node_key_record(&sender)).is_some();
    if !in_set && !delegate {
        return Err(PoioError::NotANode(sender).into());
    }
    let key = contribution_key(round, &sender);
    let contribution = ctx.record::<Contribution>(&key)?.unwrap_or_default();
    Ok((key, contribution, round_start))
}

fn check_answer(
    ctx: &TxContext<'_>,
    round_start: &RoundStart,
    round: u64,
    sender: PublicKey,
    tx: &[u8],
    path: &[Hash32],
) -> Result<(), TxError> {
    let wrong = |reason: String| TxError::from(PoioError::WrongAnswer { round, reason });
    let (index, leaf_of) = challenge(round_start, &sender).ok_or(PoioError::NoChallenge(round))?;
    let block = ctx.record::<TxBlock>(&block_key(index))?.ok_or_else(|| wrong(format!("no block #{index}")))?;
    if path.len() > PATH_HASHES_MAX {
        return Err(wrong(format!("{} path hashes, at most {PATH_HASHES_MAX}", path.len())));
    }
    let leaf = leaf_of(block.count);
    let leaf_hash = merkle::leaf_hash(&crypto::sha256(tx).0);
    merkle::verify_inclusion(&leaf_hash, leaf, block.count, path, &block.root)
        .map_err(|error| wrong(format!("transaction {leaf} of block {}: {error}", block.height)))
}

/// Records `sender`'s approval of `weights`; with enough approvals from the set in
/// force, they replace the weights.
fn approve(
    ctx: &mut TxContext<'_>,
    mut params: PoioParams,
    sender: PublicKey,
    weights: Weights,
) -> Result<(), TxError> {
    let members = ctx.validators_at(ctx.env().height).map(|set| set.members).unwrap_or_default();
    if !members.iter().any(|member| member.key == sender) {
        return Err(PoioError::NotAValidator(sender).into());
    }
    let key = [APPROVAL_PREFIX, &crypto::sha256(&borsh::to_vec(&weights).unwrap_or_default()).0[..]].concat();
    let mut approvers = ctx.record::<Vec<PublicKey>>(&key)?.unwrap_or_default();
    // Approvers that left the set no longer count, and are dropped.
    approvers.retain(|key| members.iter().any(|member| member.key == *key));
    if !approvers.contains(&sender) {
        approvers.push(sender);
    }
    let needed = members.len() * 2 / 3 + 1;
    if approvers.len() >= needed {
        params.weights = weights;
        ctx.put_record(POIO_PARAMS_KEY.to_vec(), &params)?;
        ctx.delete_record(&key);
        return Ok(());
    }
    ctx.put_record(key, &approvers)
}

impl Ledger {
    /// The chain's Proof-of-i/o parameters, when it has them.
    pub fn poio_params(&self) -> Option<PoioParams> {
        self.record(POIO_PARAMS_KEY).and_then(|bytes| borsh::from_slice(bytes).ok())
    }

    /// Tokens minted as rewards so far.
    pub fn poio_issued(&self) -> u64 {
        self.record(ISSUED_KEY).and_then(|bytes| borsh::from_slice(bytes).ok()).unwrap_or(0)
    }

    /// What the first block of `round` recorded.
    pub fn poio_round_start(&self, round: u64) -> Option<RoundStart> {
        self.record(&round_key(ROUND_PREFIX, round)).and_then(|bytes| borsh::from_slice(bytes).ok())
    }

    /// How `round` was settled, once it was.
    pub fn poio_rewards(&self, round: u64) -> Option<RoundRewards> {
        self.record(&round_key(REWARD_PREFIX, round)).and_then(|bytes| borsh::from_slice(bytes).ok())
    }

    /// The `index`-th block with transactions.
    pub fn poio_tx_block(&self, index: u64) -> Option<TxBlock> {
        self.record(&block_key(index)).and_then(|bytes| borsh::from_slice(bytes).ok())
    }

    /// `node`'s contribution to `round` so far (committed blocks only).
    pub fn poio_contribution(&self, round: u64, node: &PublicKey) -> Option<Contribution> {
        self.record(&contribution_key(round, node)).and_then(|bytes| borsh::from_slice(bytes).ok())
    }
}

#[cfg(test)]
#[path = "poio/tests.rs"]
mod tests;
