//! Hold account balances and nonces, execute transactions and maintain the state digest.
//!
//! Execution is a pure function of the ledger, the transactions and the chain parameters:
//! integers only, checked arithmetic, ordered maps. [`Ledger::execute`] works on a scratch
//! overlay and returns the accounts it changed; [`Ledger::commit`] applies them once the
//! block is durable.
//!
//! The state digest is an additive multiset hash (see `docs/adr/0002-state-digest.md`):
//! the sum modulo 2^256 of `sha256(b"nest/account/v1" ++ key ++ borsh(account))` over
//! every account that differs from the default, then `sha256(b"nest/state/v1" ++ sum)`.
//! It is updated in O(accounts touched) and does not depend on insertion order.
//! Records (the typed state of other modules: market escrow, devices) enter the same
//! sum as `sha256(b"nest/record/v1" ++ u32_le(key length) ++ key ++ value)`.

use super::exec::{TxContext, apply_body};
use super::tx::{SignedTx, TxError, gas_of};
use crate::crypto::sha256_parts;
use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{Hash32, PublicKey};
use std::collections::BTreeMap;

const ACCOUNT_DOMAIN: &[u8] = b"nest/account/v1";
const STATE_DOMAIN: &[u8] = b"nest/state/v1";
const RECORD_DOMAIN: &[u8] = b"nest/record/v1";

/// The balance and nonce of one account.
#[derive(BorshSerialize, BorshDeserialize, Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Account {
    /// Tokens held.
    pub balance: u64,
    /// Number of transactions the account has sent: the nonce its next one must carry.
    pub nonce: u64,
}

/// Chain-wide parameters that execution depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainParams {
    /// Genesis hash of the chain; set after genesis is built.
    pub chain: Hash32,
    /// Tokens per unit of gas; 0 allowed (no minimum fee).
    pub gas_price: u64,
}

/// Where and when a block executes: the unit's height, timestamp and proposer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockEnv {
    /// Height of the block being executed.
    pub height: u64,
    /// Hash of its parent (what DPoS round seeds are drawn from).
    pub parent: Hash32,
    /// The block's timestamp, milliseconds since the Unix epoch: the only clock of
    /// execution, the same on every node.
    pub time_ms: u64,
    /// The block's proposer; it receives the fees.
    pub proposer: PublicKey,
}

#[cfg(test)]
impl BlockEnv {
    /// A block at height 1 and time 0 by `proposer`, for tests of execution alone.
    pub(crate) fn proposed_by(proposer: PublicKey) -> BlockEnv {
        BlockEnv { height: 1, parent: Hash32::ZERO, time_ms: 0, proposer }
    }
}

/// New values of what a block touched: accounts, and records (`None`: deleted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// New account values.
    pub accounts: BTreeMap<PublicKey, Account>,
    /// New record values by key; `None` deletes the record.
    pub records: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Changes {
    /// No change.
    pub fn new() -> Changes {
        Changes::default()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.records.is_empty()
    }

    /// Lays `newer` over these changes: its values win.
    pub fn merge(&mut self, newer: &Changes) {
        self.accounts.extend(newer.accounts.iter().map(|(key, account)| (*key, *account)));
        self.records.extend(newer.records.iter().map(|(key, value)| (key.clone(), value.clone())));
    }
}

impl FromIterator<(PublicKey, Account)> for Changes {
    fn from_iter<I: IntoIterator<Item = (PublicKey, Account)>>(accounts: I) -> Changes {
        Changes { accounts: accounts.into_iter().collect(), records: BTreeMap::new() }
    }
}

impl<const N: usize> From<[(PublicKey, Account); N]> for Changes {
    fn from(accounts: [(PublicKey, Account); N]) -> Changes {
        accounts.into_iter().collect()
    }
}

/// What executing a block's transactions did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockOutcome {
    /// New values of the accounts touched by the applied transactions.
    pub changes: Changes,
    /// Indices (into the executed slice) of the transactions applied.
    pub applied: Vec<usize>,
    /// Indices of the transactions refused, with the reason.
    pub rejected: Vec<(usize, TxError)>,
    /// The state digest after committing `changes`.
    pub state_digest: Hash32,
    /// Total fees credited to the proposer.
    pub fees: u64,
}

/// Genesis allocations that cannot form a ledger.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum GenesisError {
    /// The same account is allocated twice.
    #[error("genesis allocates account {0} twice")]
    DuplicateAccount(PublicKey),
    /// The allocations add up to more than `u64::MAX` tokens.
    #[error("genesis allocations exceed the maximum total supply of {max} tokens", max = u64::MAX)]
    SupplyOverflow,
}

/// All accounts of one chain, in memory, with their incrementally maintained digest.
#[derive(Clone, Debug)]
pub struct Ledger {
    accounts: BTreeMap<PublicKey, Account>,
    records: BTreeMap<Vec<u8>, Vec<u8>>,
    digest_sum: Sum256,
    supply: u128,
    /// Market policies that market transactions call (not state: the node's plugins).
    markets: super::market::MarketRules,
}

impl Ledger {
    /// A ledger holding the genesis allocations. Zero allocations create no account.
    /// The total must fit in `u64`, so that no balance can ever overflow.
    pub fn genesis(allocations: &[(PublicKey, u64)]) -> Result<Ledger, GenesisError> {
        let mut seen = BTreeMap::new();
        let mut total: u64 = 0;
        for (key, balance) in allocations {
            if seen.insert(*key, *balance).is_some() {
                return Err(GenesisError::DuplicateAccount(*key));
            }
            total = total.checked_add(*balance).ok_or(GenesisError::SupplyOverflow)?;
        }
        Ok(Ledger::from_accounts(seen.into_iter().map(|(key, balance)| (key, Account { balance, nonce: 0 }))))
    }

    /// A ledger restored from stored accounts; default-valued accounts are dropped.
    pub fn from_accounts(accounts: impl IntoIterator<Item = (PublicKey, Account)>) -> Ledger {
        let mut ledger = Ledger {
            accounts: BTreeMap::new(),
            records: BTreeMap::new(),
            digest_sum: Sum256::ZERO,
            supply: 0,
            markets: Default::default(),
        };
        for (key, account) in accounts {
            ledger.set(key, account);
        }
        ledger
    }

    /// A ledger restored from stored accounts and records.
    pub fn from_state(
        accounts: impl IntoIterator<Item = (PublicKey, Account)>,
        records: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Ledger {
        let mut ledger = Ledger::from_accounts(accounts);
        for (key, value) in records {
            ledger.set_record(key, Some(value));
        }
        ledger
    }

    /// The committed value of a record.
    pub fn record(&self, key: &[u8]) -> Option<&[u8]> {
        self.records.get(key).map(Vec::as_slice)
    }

    /// The committed records whose key starts with `prefix`, in key order.
    pub fn records_with_prefix<'a>(&'a self, prefix: &'a [u8]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        self.records
            .range(prefix.to_vec()..)
            .take_while(move |(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.as_slice(), value.as_slice()))
    }

    /// The committed record with the greatest key at or below `key` that starts with
    /// `prefix`.
    pub fn record_at_or_below<'a>(&'a self, key: &[u8], prefix: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
        self.records
            .range(..=key.to_vec())
            .next_back()
            .filter(|(found, _)| found.starts_with(prefix))
            .map(|(key, value)| (key.as_slice(), value.as_slice()))
    }

    /// Every committed record, in key order.
    pub fn records(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.records.iter().map(|(key, value)| (key.as_slice(), value.as_slice()))
    }

    /// Lends the node's market policies to market transactions.
    pub fn set_markets(&mut self, markets: super::market::MarketRules) {
        self.markets = markets;
    }

    /// The market policies market transactions call.
    pub fn markets(&self) -> &super::market::MarketRules {
        &self.markets
    }

    /// The account's current value; the default (empty) account if it does not exist.
    pub fn account(&self, key: &PublicKey) -> Account {
        self.accounts.get(key).copied().unwrap_or_default()
    }

    /// All non-default accounts, in key order.
    pub fn accounts(&self) -> impl Iterator<Item = (&PublicKey, &Account)> {
        self.accounts.iter()
    }

    /// The digest of the current state, identical on every node holding the same state.
    pub fn state_digest(&self) -> Hash32 {
        self.digest_sum.digest()
    }

    /// The sum of all balances.
    pub fn total_supply(&self) -> u128 {
        self.supply
    }

    /// Number of non-default accounts.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether no account holds anything.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Checks that `tx` could apply to the current state: chain, fee, nonce and balance.
    /// The signature is not checked here.
    pub fn check(&self, tx: &SignedTx, params: &ChainParams) -> Result<(), TxError> {
        check_against(&self.account(&tx.tx.from), tx, params)
    }

    /// Executes `txs` in order on a scratch overlay; `self` is unchanged.
    ///
    /// With `strict`, execution stops at the first invalid transaction (validating a
    /// received block: the caller rejects the block); `rejected` then holds that one and
    /// `changes` what came before it. Without, invalid transactions are skipped (building
    /// a block). Fees are credited to `proposer`. Signatures are not checked here: they
    /// are checked once, at admission (see `verify.rs`).
    pub fn execute(&self, txs: &[SignedTx], env: &BlockEnv, params: &ChainParams, strict: bool) -> BlockOutcome {
        self.execute_on(&Changes::new(), txs, env, params, strict)
    }

    /// Executes `txs` on the state this ledger reaches once `prior` is applied (the merged
    /// changes of agreed but not yet final ancestors); `self` is unchanged. The outcome's
    /// `changes` are this block's own (the accounts it touched, with their new values),
    /// and its `state_digest` that of the whole state: ledger, `prior`, then the block.
    pub fn execute_on(
        &self,
        prior: &Changes,
        txs: &[SignedTx],
        env: &BlockEnv,
        params: &ChainParams,
        strict: bool,
    ) -> BlockOutcome {
        // A DPoS round's set is written before the block's transactions (see `rounds`).
        let mut overlay = super::rounds::round_changes(self, prior, env);
        // Proof-of-i/o opens its round and settles the one two rounds back.
        overlay.merge(&super::poio::round_start_changes(self, prior, &overlay, env));
        let mut applied = Vec::new();
        let mut rejected = Vec::new();
        let mut fees: u64 = 0;
        for (index, tx) in txs.iter().enumerate() {
            let result = self.apply_one(prior, &overlay, tx, env, params).and_then(|(touched, fee)| {
                let total = fees.checked_add(fee).ok_or(TxError::Overflow)?;
                Ok((touched, total))
            });
            match result {
                Ok((touched, total)) => {
                    overlay.merge(&touched);
                    fees = total;
                    applied.push(index);
                }
                Err(error) => {
                    rejected.push((index, error));
                    if strict {
                        break;
                    }
                }
            }
        }
        let applied_txs: Vec<&SignedTx> = applied.iter().map(|index| &txs[*index]).collect();
        overlay.merge(&super::poio::block_end_changes(self, prior, &overlay, env, &applied_txs));
        let mut whole = prior.clone();
        whole.merge(&overlay);
        let state_digest = self.digest_after(&whole).digest();
        BlockOutcome { changes: overlay, applied, rejected, state_digest, fees }
    }

    /// Applies the changes of a [`BlockOutcome`] (or changes restored from the store).
    pub fn commit(&mut self, changes: &Changes) {
        for (key, account) in &changes.accounts {
            self.set(*key, *account);
        }
        for (key, value) in &changes.records {
            self.set_record(key.clone(), value.clone());
        }
    }

    /// Applies one transaction on top of `overlay`: what it changes (sender, proposer,
    /// and whatever its body touches) and its fee, or why it cannot apply.
    fn apply_one(
        &self,
        prior: &Changes,
        overlay: &Changes,
        tx: &SignedTx,
        env: &BlockEnv,
        params: &ChainParams,
    ) -> Result<(Changes, u64), TxError> {
        let mut ctx = TxContext::new(self, prior, overlay, env, tx);
        let from = tx.tx.from;
        let mut sender = ctx.account(&from);
        check_against(&sender, tx, params)?;
        sender.nonce = sender.nonce.checked_add(1).ok_or(TxError::Overflow)?;
        ctx.set_account(from, sender);
        ctx.debit(&from, tx.tx.cost()?)?;
        apply_body(&mut ctx)?;
        ctx.credit(&env.proposer, tx.tx.fee)?;
        Ok((ctx.into_changes(), tx.tx.fee))
    }

    /// The digest sum once `changes` are applied, computed from the touched accounts only.
    fn digest_after(&self, changes: &Changes) -> Sum256 {
        let mut sum = self.digest_sum;
        for (key, account) in &changes.accounts {
            sum = sum.remove(key, &self.account(key)).add(key, account);
        }
        for (key, value) in &changes.records {
            sum = sum.remove_record(key, self.record(key)).add_record(key, value.as_deref());
        }
        sum
    }

    /// Sets or deletes one record, keeping the digest in step.
    fn set_record(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.digest_sum = self.digest_sum.remove_record(&key, self.record(&key)).add_record(&key, value.as_deref());
        match value {
            Some(value) => self.records.insert(key, value),
            None => self.records.remove(&key),
        };
    }

    /// Sets one account, keeping the digest and the supply in step.
    fn set(&mut self, key: PublicKey, account: Account) {
        let old = self.account(&key);
        self.digest_sum = self.digest_sum.remove(&key, &old).add(&key, &account);
        // The supply is the sum of the balances held, so it always contains `old`.
        self.supply = self.supply - u128::from(old.balance) + u128::from(account.balance);
        if account == Account::default() {
            self.accounts.remove(&key);
        } else {
            self.accounts.insert(key, account);
        }
    }
}

/// Checks `tx` against the sender's current `account`: chain, fee, nonce, balance.
fn check_against(account: &Account, tx: &SignedTx, params: &ChainParams) -> Result<(), TxError> {
    check_chain_and_fee(tx, params)?;
    if tx.tx.nonce != account.nonce {
        return Err(TxError::WrongNonce { expected: account.nonce, got: tx.tx.nonce });
    }
    let needed = tx.tx.cost()?;
    if account.balance < needed {
        let (amount, fee) = (tx.tx.amount(), tx.tx.fee);
        return Err(TxError::InsufficientBalance { balance: account.balance, amount, fee, pending: 0 });
    }
    Ok(())
}

/// Checks what does not depend on the sender's account: the chain and the minimum fee.
pub(crate) fn check_chain_and_fee(tx: &SignedTx, params: &ChainParams) -> Result<(), TxError> {
    if tx.tx.chain != params.chain {
        return Err(TxError::WrongChain);
    }
    let minimum = gas_of(&tx.tx.body).checked_mul(params.gas_price).ok_or(TxError::Overflow)?;
    if tx.tx.fee < minimum {
        return Err(TxError::FeeTooLow { minimum, got: tx.tx.fee });
    }
    Ok(())
}

/// A 256-bit integer modulo 2^256, as four little-endian `u64` limbs: the additive
/// accumulator of the state digest. Wrapping is the defined group operation here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sum256([u64; 4]);

impl Sum256 {
    const ZERO: Sum256 = Sum256([0; 4]);

    /// The element of an account; the default account contributes nothing.
    fn element(key: &PublicKey, account: &Account) -> Option<Sum256> {
        if *account == Account::default() {
            return None;
        }
        let encoded = borsh::to_vec(account).expect("borsh into a Vec");
        let hash = sha256_parts(&[ACCOUNT_DOMAIN, &key.0, &encoded]);
        Some(Sum256::from_be_bytes(&hash.0))
    }

    fn from_be_bytes(bytes: &[u8; 32]) -> Sum256 {
        let mut limbs = [0u64; 4];
        for (index, chunk) in bytes.rchunks_exact(8).enumerate() {
            limbs[index] = u64::from_be_bytes(chunk.try_into().expect("8-byte chunk"));
        }
        Sum256(limbs)
    }

    fn to_be_bytes(self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        for (index, chunk) in bytes.rchunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&self.0[index].to_be_bytes());
        }
        bytes
    }

    fn wrapping_add(self, other: Sum256) -> Sum256 {
        let mut out = [0u64; 4];
        let mut carry = false;
        for (index, limb) in out.iter_mut().enumerate() {
            let (sum, carry_a) = self.0[index].overflowing_add(other.0[index]);
            let (sum, carry_b) = sum.overflowing_add(u64::from(carry));
            *limb = sum;
            carry = carry_a || carry_b;
        }
        Sum256(out)
    }

    fn wrapping_neg(self) -> Sum256 {
        let inverted = Sum256(self.0.map(|limb| !limb));
        inverted.wrapping_add(Sum256([1, 0, 0, 0]))
    }

    fn add(self, key: &PublicKey, account: &Account) -> Sum256 {
        match Sum256::element(key, account) {
            Some(element) => self.wrapping_add(element),
            None => self,
        }
    }

    fn remove(self, key: &PublicKey, account: &Account) -> Sum256 {
        match Sum256::element(key, account) {
            Some(element) => self.wrapping_add(element.wrapping_neg()),
            None => self,
        }
    }

    /// The element of a record; an absent record contributes nothing.
    fn record_element(key: &[u8], value: Option<&[u8]>) -> Option<Sum256> {
        let value = value?;
        let length = u32::try_from(key.len()).expect("record keys are bounded").to_le_bytes();
        let hash = sha256_parts(&[RECORD_DOMAIN, &length, key, value]);
        Some(Sum256::from_be_bytes(&hash.0))
    }

    fn add_record(self, key: &[u8], value: Option<&[u8]>) -> Sum256 {
        match Sum256::record_element(key, value) {
            Some(element) => self.wrapping_add(element),
            None => self,
        }
    }

    fn remove_record(self, key: &[u8], value: Option<&[u8]>) -> Sum256 {
        match Sum256::record_element(key, value) {
            Some(element) => self.wrapping_add(element.wrapping_neg()),
            None => self,
        }
    }

    fn digest(self) -> Hash32 {
        sha256_parts(&[STATE_DOMAIN, &self.to_be_bytes()])
    }
}

#[cfg(test)]
mod tests;
