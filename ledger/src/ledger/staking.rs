//! Stake tokens, register delegates and vote for them: the ledger side of DPoS.
//!
//! An account registers as a delegate with the node key that will seal its blocks
//! ([`StakingTx::RegisterDelegate`]). Any account bonds part of its balance
//! ([`StakingTx::Stake`]) and approves up to [`VOTES_PER_ACCOUNT_MAX`] delegates
//! ([`StakingTx::Vote`], which replaces its earlier votes): each approved delegate counts
//! the voter's whole bonded stake (approval voting weighted by stake). Unbonding
//! ([`StakingTx::Unstake`]) takes the amount out of the votes at once and makes it
//! spendable [`UNBONDING_BLOCKS`] blocks later, when [`StakingTx::Unlock`] returns every
//! matured amount to the balance.
//!
//! Records (keys under `staking/`):
//! - `staking/d/<account>`: a [`Delegate`] (node key, name, registration height);
//! - `staking/n/<node key>`: the delegate account a node key belongs to (one each);
//! - `staking/s/<account>`: a [`Staker`] (bonded, unbonding amounts, votes);
//! - `staking/t/<delegate account>`: the delegate's tally, the sum of its voters' bonded
//!   stakes (u128), kept exact on every stake, unstake and vote change.
//!
//! Tokens are conserved: a stake leaves the balance and enters `bonded`, an unstake
//! moves it to `unbonding`, an unlock back to the balance ([`staked_total`] counts what
//! the records hold).

use super::exec::TxContext;
use super::tx::TxError;
use crate::crypto;
use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{Hash32, PublicKey};
use std::collections::BTreeSet;

/// Most delegates one account approves (K).
pub const VOTES_PER_ACCOUNT_MAX: usize = 10;
/// Blocks between an unstake and the height from which its amount unlocks.
pub const UNBONDING_BLOCKS: u64 = 120;
/// Most unstaked amounts one account has waiting to unlock.
pub const UNBONDING_ENTRIES_MAX: usize = 16;
/// Longest delegate name, in bytes.
pub const DELEGATE_NAME_BYTES_MAX: usize = 32;
/// Gas of a delegate registration.
pub const REGISTER_GAS: u64 = 5_000;
/// Gas of a stake, unstake or unlock.
pub const STAKE_GAS: u64 = 1_000;
/// Gas of a vote, before its delegates.
pub const VOTE_BASE_GAS: u64 = 500;
/// Gas per delegate a vote names (each tally is rewritten).
pub const VOTE_DELEGATE_GAS: u64 = 200;

/// Key prefix of every staking record.
pub const STAKING_PREFIX: &[u8] = b"staking/";
const DELEGATE_PREFIX: &[u8] = b"staking/d/";
const NODE_KEY_PREFIX: &[u8] = b"staking/n/";
const STAKER_PREFIX: &[u8] = b"staking/s/";
const TALLY_PREFIX: &[u8] = b"staking/t/";

/// A staking transaction.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StakingTx {
    /// Registers the sender as a delegate whose blocks `node_key` seals (once).
    RegisterDelegate {
        /// The node key; no other delegate may use it.
        node_key: PublicKey,
        /// A short printable name, at most [`DELEGATE_NAME_BYTES_MAX`] bytes.
        name: String,
    },
    /// Bonds `amount` of the sender's balance.
    Stake {
        /// Tokens bonded.
        amount: u64,
    },
    /// Starts unbonding `amount` of the sender's bonded stake.
    Unstake {
        /// Tokens unbonded.
        amount: u64,
    },
    /// Returns every unbonded amount whose unbonding period has passed to the balance.
    Unlock,
    /// Approves `delegates` (registered, distinct, at most [`VOTES_PER_ACCOUNT_MAX`]),
    /// replacing the sender's earlier votes; an empty list withdraws them.
    Vote {
        /// Delegate accounts.
        delegates: Vec<PublicKey>,
    },
}

/// A registered delegate.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Delegate {
    /// The key that seals its blocks.
    pub node_key: PublicKey,
    /// Its name.
    pub name: String,
    /// Height of the block that registered it.
    pub registered_height: u64,
}

/// An account's stake and votes.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Staker {
    /// Bonded tokens: they count in the votes.
    pub bonded: u64,
    /// Unstaked amounts and the height from which each unlocks, oldest first.
    pub unbonding: Vec<Unbonding>,
    /// The delegates it approves, in key order.
    pub votes: Vec<PublicKey>,
}

/// An unstaked amount waiting for its unbonding period.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Unbonding {
    /// Tokens.
    pub amount: u64,
    /// The first height at which [`StakingTx::Unlock`] returns them.
    pub unlocks_at: u64,
}

/// Why a staking transaction was refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum StakingError {
    /// The sender is a delegate already.
    #[error("account {0} is already a delegate")]
    AlreadyDelegate(PublicKey),
    /// Another delegate uses the node key.
    #[error("node key {node_key} already seals for delegate {delegate}")]
    NodeKeyTaken {
        /// The node key.
        node_key: PublicKey,
        /// The delegate that has it.
        delegate: PublicKey,
    },
    /// The name is empty, too long or not printable.
    #[error("bad delegate name: {0}")]
    BadName(String),
    /// A stake or unstake of nothing.
    #[error("the amount must be above 0")]
    ZeroAmount,
    /// An unstake of more than is bonded.
    #[error("cannot unstake {amount}: {bonded} bonded")]
    NotBonded {
        /// Tokens asked for.
        amount: u64,
        /// Tokens bonded.
        bonded: u64,
    },
    /// Too many amounts already unbonding.
    #[error("{UNBONDING_ENTRIES_MAX} unstaked amounts are already unbonding: unlock them first")]
    TooManyUnbonding,
    /// Nothing has finished unbonding.
    #[error("nothing to unlock at height {height}: the next amount unlocks at {next}")]
    NothingToUnlock {
        /// The block's height.
        height: u64,
        /// The first height at which something unlocks (0: nothing is unbonding).
        next: u64,
    },
    /// A vote for more delegates than allowed.
    #[error("a vote names {count} delegates, at most {VOTES_PER_ACCOUNT_MAX}")]
    TooManyVotes {
        /// Delegates named.
        count: usize,
    },
    /// A vote names a delegate twice.
    #[error("a vote names delegate {0} twice")]
    DuplicateVote(PublicKey),
    /// A vote names an account that is not a delegate.
    #[error("{0} is not a registered delegate")]
    NotDelegate(PublicKey),
}

impl StakingError {
    /// A stable snake_case code for API clients and metrics labels.
    pub fn code(&self) -> &'static str {
        "staking"
    }
}

/// Gas of a staking transaction.
pub fn gas_of(body: &StakingTx) -> u64 {
    match body {
        StakingTx::RegisterDelegate { .. } => REGISTER_GAS,
        StakingTx::Stake { .. } | StakingTx::Unstake { .. } | StakingTx::Unlock => STAKE_GAS,
        StakingTx::Vote { delegates } => {
            VOTE_BASE_GAS.saturating_add(VOTE_DELEGATE_GAS.saturating_mul(delegates.len() as u64))
        }
    }
}

/// The key of the record naming the delegate that `node_key` seals for: present exactly
/// when `node_key` belongs to a registered delegate.
pub fn node_key_record(node_key: &PublicKey) -> Vec<u8> {
    key(NODE_KEY_PREFIX, node_key)
}

fn key(prefix: &[u8], account: &PublicKey) -> Vec<u8> {
    [prefix, &account.0[..]].concat()
}

/// Applies a staking transaction of `ctx`'s sender.
pub fn apply(ctx: &mut TxContext<'_>, body: &StakingTx) -> Result<(), TxError> {
    let sender = ctx.tx().tx.from;
    match body {
        StakingTx::RegisterDelegate { node_key, name } => register(ctx, sender, *node_key, name),
        StakingTx::Stake { amount } => stake(ctx, sender, *amount),
        StakingTx::Unstake { amount } => unstake(ctx, sender, *amount),
        StakingTx::Unlock => unlock(ctx, sender),
        StakingTx::Vote { delegates } => vote(ctx, sender, delegates),
    }
}

fn register(ctx: &mut TxContext<'_>, sender: PublicKey, node_key: PublicKey, name: &str) -> Result<(), TxError> {
    if ctx.record::<Delegate>(&key(DELEGATE_PREFIX, &sender))?.is_some() {
        return Err(StakingError::AlreadyDelegate(sender).into());
    }
    if let Some(delegate) = ctx.record::<PublicKey>(&key(NODE_KEY_PREFIX, &node_key))? {
        return Err(StakingError::NodeKeyTaken { node_key, delegate }.into());
    }
    check_name(name)?;
    let delegate = Delegate { node_key, name: name.to_owned(), registered_height: ctx.env().height };
    ctx.put_record(key(DELEGATE_PREFIX, &sender), &delegate)?;
    ctx.put_record(key(NODE_KEY_PREFIX, &node_key), &sender)
}

fn check_name(name: &str) -> Result<(), StakingError> {
    if name.is_empty() || name.len() > DELEGATE_NAME_BYTES_MAX {
        return Err(StakingError::BadName(format!("{} bytes, must be 1 to {DELEGATE_NAME_BYTES_MAX}", name.len())));
    }
    if let Some(bad) = name.chars().find(|c| c.is_control()) {
        return Err(StakingError::BadName(format!("control character {:?}", bad)));
    }
    Ok(())
}

fn staker(ctx: &TxContext<'_>, account: &PublicKey) -> Result<Staker, TxError> {
    Ok(ctx.record::<Staker>(&key(STAKER_PREFIX, account))?.unwrap_or_default())
}

fn put_staker(ctx: &mut TxContext<'_>, account: &PublicKey, staker: &Staker) -> Result<(), TxError> {
    if *staker == Staker::default() {
        ctx.delete_record(&key(STAKER_PREFIX, account));
        return Ok(());
    }
    ctx.put_record(key(STAKER_PREFIX, account), staker)
}

fn stake(ctx: &mut TxContext<'_>, sender: PublicKey, amount: u64) -> Result<(), TxError> {
    if amount == 0 {
        return Err(StakingError::ZeroAmount.into());
    }
    ctx.debit(&sender, amount)?;
    let mut staker = staker(ctx, &sender)?;
    staker.bonded = staker.bonded.checked_add(amount).ok_or(TxError::Overflow)?;
    add_to_tallies(ctx, &staker.votes, i128::from(amount))?;
    put_staker(ctx, &sender, &staker)
}

fn unstake(ctx: &mut TxContext<'_>, sender: PublicKey, amount: u64) -> Result<(), TxError> {
    if amount == 0 {
        return Err(StakingError::ZeroAmount.into());
    }
    let mut staker = staker(ctx, &sender)?;
    if amount > staker.bonded {
        return Err(StakingError::NotBonded { amount, bonded: staker.bonded }.into());
    }
    if staker.unbonding.len() >= UNBONDING_ENTRIES_MAX {
        return Err(StakingError::TooManyUnbonding.into());
    }
    staker.bonded -= amount;
    let unlocks_at = ctx.env().height.saturating_add(UNBONDING_BLOCKS);
    staker.unbonding.push(Unbonding { amount, unlocks_at });
    add_to_tallies(ctx, &staker.votes, -i128::from(amount))?;
    put_staker(ctx, &sender, &staker)
}

fn unlock(ctx: &mut TxContext<'_>, sender: PublicKey) -> Result<(), TxError> {
    let height = ctx.env().height;
    let mut staker = staker(ctx, &sender)?;
    let (matured, waiting): (Vec<Unbonding>, Vec<Unbonding>) =
        staker.unbonding.into_iter().partition(|entry| entry.unlocks_at <= height);
    if matured.is_empty() {
        let next = waiting.iter().map(|entry| entry.unlocks_at).min().unwrap_or(0);
        return Err(StakingError::NothingToUnlock { height, next }.into());
    }
    let amount = matured.iter().try_fold(0u64, |sum, entry| sum.checked_add(entry.amount)).ok_or(TxError::Overflow)?;
    ctx.credit(&sender, amount)?;
    staker.unbonding = waiting;
    put_staker(ctx, &sender, &staker)
}

fn vote(ctx: &mut TxContext<'_>, sender: PublicKey, delegates: &[PublicKey]) -> Result<(), TxError> {
    if delegates.len() > VOTES_PER_ACCOUNT_MAX {
        return Err(StakingError::TooManyVotes { count: delegates.len() }.into());
    }
    let mut chosen = BTreeSet::new();
    for delegate in delegates {
        if !chosen.insert(*delegate) {
            return Err(StakingError::DuplicateVote(*delegate).into());
        }
        if ctx.record::<Delegate>(&key(DELEGATE_PREFIX, delegate))?.is_none() {
            return Err(StakingError::NotDelegate(*delegate).into());
        }
    }
    let mut staker = staker(ctx, &sender)?;
    let weight = i128::from(staker.bonded);
    add_to_tallies(ctx, &staker.votes, -weight)?;
    staker.votes = chosen.into_iter().collect();
    add_to_tallies(ctx, &staker.votes, weight)?;
    put_staker(ctx, &sender, &staker)
}

/// Adds `delta` to the tally of each of `delegates`.
fn add_to_tallies(ctx: &mut TxContext<'_>, delegates: &[PublicKey], delta: i128) -> Result<(), TxError> {
    if delta == 0 {
        return Ok(());
    }
    for delegate in delegates {
        let tally_key = key(TALLY_PREFIX, delegate);
        let tally = ctx.record::<u128>(&tally_key)?.unwrap_or(0);
        // A tally is the sum of bonded stakes that include the delegate, so it never
        // goes below the amount taken out; an underflow means a corrupt record.
        let updated = tally.checked_add_signed(delta).ok_or(TxError::Overflow)?;
        if updated == 0 {
            ctx.delete_record(&tally_key);
        } else {
            ctx.put_record(tally_key, &updated)?;
        }
    }
    Ok(())
}

/// A delegate as queries show it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DelegateView {
    /// Its account.
    pub account: PublicKey,
    /// The key that seals its blocks.
    pub node_key: PublicKey,
    /// Its name.
    pub name: String,
    /// Height of the block that registered it.
    pub registered_height: u64,
    /// The sum of its voters' bonded stakes.
    pub votes: u128,
}

/// Every delegate the records hold, ranked: most votes first, ties by account key (the
/// order a DPoS round draws its top N from).
pub fn delegates<'a>(records: impl Fn(&[u8]) -> Vec<(Vec<u8>, Vec<u8>)> + 'a) -> Vec<DelegateView> {
    let tallies: std::collections::BTreeMap<Vec<u8>, u128> = records(TALLY_PREFIX)
        .into_iter()
        .filter_map(|(key, value)| Some((key[TALLY_PREFIX.len()..].to_vec(), borsh::from_slice(&value).ok()?)))
        .collect();
    let mut ranked: Vec<DelegateView> = records(DELEGATE_PREFIX)
        .into_iter()
        .filter_map(|(key, value)| {
            let account = PublicKey(key.get(DELEGATE_PREFIX.len()..)?.try_into().ok()?);
            let delegate: Delegate = borsh::from_slice(&value).ok()?;
            let votes = tallies.get(&account.0[..]).copied().unwrap_or(0);
            let Delegate { node_key, name, registered_height } = delegate;
            Some(DelegateView { account, node_key, name, registered_height, votes })
        })
        .collect();
    ranked.sort_by(|a, b| b.votes.cmp(&a.votes).then(a.account.0.cmp(&b.account.0)));
    ranked
}

/// An account's stake and votes from the records (empty when it has none).
pub fn staker_of(record: impl Fn(&[u8]) -> Option<Vec<u8>>, account: &PublicKey) -> Staker {
    record(&key(STAKER_PREFIX, account)).and_then(|bytes| borsh::from_slice(&bytes).ok()).unwrap_or_default()
}

/// Tokens the staking records hold (bonded and unbonding), for conservation checks.
pub fn staked_total<'a>(records: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Result<u128, String> {
    let mut total = 0u128;
    for (key, value) in records.filter(|(key, _)| key.starts_with(STAKER_PREFIX)) {
        let staker: Staker = borsh::from_slice(value).map_err(|e| format!("{}: {e}", String::from_utf8_lossy(key)))?;
        total +=
            u128::from(staker.bonded) + staker.unbonding.iter().map(|entry| u128::from(entry.amount)).sum::<u128>();
    }
    Ok(total)
}

/// Domain prefix of a round seed.
pub const ROUND_SEED_DOMAIN: &[u8] = b"nest/dpos/round/v1";

/// The seed of DPoS round `round`: `sha256("nest/dpos/round/v1" ++ round (u64 BE) ++
/// previous)`, where `previous` is the hash of the last block of the round before (the
/// genesis hash for round 0). Every node that holds that block computes the same seed,
/// and no delegate can choose it without choosing that block's contents, which it can
/// only do in its own slot (ADR 0012).
pub fn round_seed(round: u64, previous: &Hash32) -> Hash32 {
    crypto::sha256_parts(&[ROUND_SEED_DOMAIN, &round.to_be_bytes(), &previous.0])
}

/// The order of a round's delegates: the top `count` of `ranked` (as [`delegates`] ranks
/// them: most votes first, ties by account key), each placed by `sha256(seed ++ node
/// key)`, ascending, ties (a SHA-256 collision) by node key. A sort by a hash has no
/// modulo bias and moves every delegate, unlike a swap shuffle driven by `seed mod n`;
/// anyone can recompute it from the delegate list and the seed (ADR 0012).
pub fn round_order(ranked: &[DelegateView], count: usize, seed: &Hash32) -> Vec<PublicKey> {
    let mut chosen: Vec<(Hash32, PublicKey)> = ranked
        .iter()
        .take(count)
        .map(|delegate| (crypto::sha256_parts(&[&seed.0, &delegate.node_key.0]), delegate.node_key))
        .collect();
    chosen.sort_by(|a, b| a.0.0.cmp(&b.0.0).then(a.1.0.cmp(&b.1.0)));
    chosen.into_iter().map(|(_, node_key)| node_key).collect()
}

#[cfg(test)]
#[path = "staking/tests.rs"]
mod tests;
