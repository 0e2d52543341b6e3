//! Hold pending transactions until a block includes them: bounded overall and per
//! sender, per account in nonce order, blocks filled by fee per byte.
//!
//! Each account's pending transactions form one contiguous run of nonces starting at
//! the account's ledger nonce, and together cost no more than its balance (incoming
//! pending transfers are not counted). Signatures are checked before admission (see
//! `verify.rs`); the mempool checks chain, fee, nonce and balance.
//!
//! Against a flood from one account: a sender holds at most
//! [`Mempool::sender_txs_max`] of the pool (an eighth of it, at least
//! [`SENDER_TXS_MIN`]), so the others' transactions are still admitted; a block takes
//! the account heads paying the most per byte first, and among equal rates one
//! transaction per account per turn, so one account's queue never holds back another's
//! transaction of the same rate for more than a block. A transaction for a nonce already
//! pending replaces it when it pays at least [`REPLACEMENT_BUMP_PERCENT`] more.
//!
//! Against a flood from many accounts: a full pool admits a transaction that pays more
//! per byte than the cheapest account tail (the last pending nonce of another account)
//! by evicting that tail, so cheap spam cannot keep a paying transfer out; evicting a
//! tail keeps every account's nonces contiguous.

use super::state::{ChainParams, Ledger, check_chain_and_fee};
use super::tx::{SignedTx, TxError};
use nest_sdk::{Hash32, PublicKey};
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

/// The fewest pending transactions any sender may have, however small the pool.
pub const SENDER_TXS_MIN: usize = 16;
/// A sender may fill at most this fraction (1/n) of the pool.
pub const SENDER_SHARE_DIVISOR: usize = 8;
/// A replacement pays at least this much more than the transaction it replaces, in
/// percent (and at least 1 more): cheap replacements would let one sender make every
/// node re-gossip its transactions for free.
pub const REPLACEMENT_BUMP_PERCENT: u64 = 10;

/// One pending transaction.
#[derive(Debug)]
struct Pending {
    hash: Hash32,
    tx: SignedTx,
    /// Amount plus fee.
    cost: u64,
    /// Admission sequence number: older transactions have smaller ones.
    seq: u64,
    /// Encoded size, for the fee per byte.
    size_bytes: u64,
}

impl Pending {
    /// This transaction as an account tail in the eviction order.
    fn tail_key(&self, from: PublicKey) -> TailKey {
        (rate_key(self.tx.tx.fee, self.size_bytes), Reverse(self.seq), from)
    }

    /// Whether this pays more per byte than `other` (fee × size, crossed: no rounding).
    fn rate_cmp(&self, other: &Pending) -> Ordering {
        let mine = u128::from(self.tx.tx.fee) * u128::from(other.size_bytes);
        let theirs = u128::from(other.tx.tx.fee) * u128::from(self.size_bytes);
        mine.cmp(&theirs)
    }
}

/// An account's last pending transaction in eviction order: fee per byte (in
/// millionths), then the newest first among equal rates, then the account.
type TailKey = (u128, Reverse<u64>, PublicKey);

/// A fee per byte, in millionths of a unit, as a sortable key.
fn rate_key(fee: u64, size_bytes: u64) -> u128 {
    u128::from(fee) * 1_000_000 / u128::from(size_bytes.max(1))
}

/// The pending transactions of one account, by nonce (contiguous).
#[derive(Debug, Default)]
struct Queue {
    txs: BTreeMap<u64, Pending>,
    /// Sum of the costs of `txs`.
    cost_total: u64,
    /// This account's entry in [`Mempool::tails`], if any.
    tail: Option<TailKey>,
}

impl Queue {
    /// Admission sequence number of the oldest queued transaction (the lowest nonce).
    fn oldest_seq(&self) -> u64 {
        self.txs.first_key_value().map_or(u64::MAX, |(_, p)| p.seq)
    }

    /// Removes the transaction with `nonce`, keeping the cost total in step.
    fn take(&mut self, nonce: u64) -> Option<Pending> {
        let pending = self.txs.remove(&nonce)?;
        // The total is the sum of the queued costs, so it contains this one.
        self.cost_total -= pending.cost;
        Some(pending)
    }
}

/// Pending transactions, at most `txs_max`, per account in nonce order.
#[derive(Debug)]
pub struct Mempool {
    txs_max: usize,
    sender_txs_max: usize,
    accounts: BTreeMap<PublicKey, Queue>,
    /// Every pending id, with the sender and nonce that locate it in `accounts`.
    by_hash: HashMap<Hash32, (PublicKey, u64)>,
    /// Every account's last pending transaction, cheapest first: what a full pool evicts.
    tails: BTreeSet<TailKey>,
    /// Sequence number given to the next admitted transaction.
    next_seq: u64,
}

impl Mempool {
    /// An empty mempool holding at most `txs_max` transactions, an eighth of them (at
    /// least [`SENDER_TXS_MIN`]) from one sender.
    pub fn new(txs_max: usize) -> Mempool {
        let sender_txs_max = (txs_max / SENDER_SHARE_DIVISOR).max(SENDER_TXS_MIN).min(txs_max);
        Mempool {
            txs_max,
            sender_txs_max,
            accounts: BTreeMap::new(),
            by_hash: HashMap::new(),
            tails: BTreeSet::new(),
            next_seq: 0,
        }
    }

    /// Admits a transaction whose signature is already verified; `hash` is its id.
    ///
    /// The nonce must be the next one for the account given the ledger and the
    /// transactions already pending for it (account nonce + pending count), and the
    /// balance must cover amount plus fee of this one and of the pending ones. A known
    /// id is [`TxError::Duplicate`]; a full mempool is [`TxError::MempoolFull`].
    pub fn admit(&mut self, hash: Hash32, tx: SignedTx, ledger: &Ledger, params: &ChainParams) -> Result<(), TxError> {
        if self.by_hash.contains_key(&hash) {
            return Err(TxError::Duplicate);
        }
        check_chain_and_fee(&tx, params)?;
        let from = tx.tx.from;
        self.revalidate(&from, ledger);
        let account = ledger.account(&from);
        let (pending_count, pending_cost) =
            self.accounts.get(&from).map_or((0, 0), |queue| (queue.txs.len(), queue.cost_total));
        let expected = u64::try_from(pending_count)
            .ok()
            .and_then(|count| account.nonce.checked_add(count))
            .ok_or(TxError::Overflow)?;
        if (account.nonce..expected).contains(&tx.tx.nonce) {
            return self.replace(hash, tx, account.balance);
        }
        if tx.tx.nonce != expected {
            return Err(TxError::WrongNonce { expected, got: tx.tx.nonce });
        }
        if pending_count >= self.sender_txs_max {
            return Err(TxError::SenderCapReached { pending: pending_count });
        }
        let cost = tx.tx.cost()?;
        let needed = pending_cost.checked_add(cost).ok_or(TxError::Overflow)?;
        if account.balance < needed {
            let (amount, fee) = (tx.tx.amount(), tx.tx.fee);
            return Err(TxError::InsufficientBalance { balance: account.balance, amount, fee, pending: pending_cost });
        }
        let size_bytes = encoded_size(&tx);
        if self.by_hash.len() >= self.txs_max && !self.evict_cheaper_than(rate_key(tx.tx.fee, size_bytes), &from) {
            return Err(TxError::MempoolFull);
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.saturating_add(1);
        let queue = self.accounts.entry(from).or_default();
        queue.cost_total = needed;
        let pending = Pending { hash, tx, cost, seq, size_bytes };
        queue.txs.insert(expected, pending);
        self.by_hash.insert(hash, (from, expected));
        self.sync_tail(&from);
        Ok(())
    }

    /// Evicts the cheapest tail of an account other than `from` if it pays less per
    /// byte than `rate`; whether it did.
    fn evict_cheaper_than(&mut self, rate: u128, from: &PublicKey) -> bool {
        let Some(&(tail_rate, _, owner)) = self.tails.iter().find(|(_, _, owner)| owner != from) else {
            return false;
        };
        if tail_rate >= rate {
            return false;
        }
        let Some(nonce) = self.accounts.get(&owner).and_then(|queue| queue.txs.last_key_value()).map(|(n, _)| *n)
        else {
            return false;
        };
        if let Some(hash) = self.accounts.get(&owner).and_then(|queue| queue.txs.get(&nonce)).map(|p| p.hash) {
            self.by_hash.remove(&hash);
        }
        self.remove_entry(&owner, nonce);
        true
    }

    /// Puts `from`'s tail entry in step with its queue (after any change to it).
    fn sync_tail(&mut self, from: &PublicKey) {
        let Some(queue) = self.accounts.get_mut(from) else { return };
        let new = queue.txs.last_key_value().map(|(_, pending)| pending.tail_key(*from));
        if queue.tail == new {
            return;
        }
        if let Some(old) = queue.tail.take() {
            self.tails.remove(&old);
        }
        if let Some(new) = new {
            self.tails.insert(new);
        }
        queue.tail = new;
    }

    /// Replaces the pending transaction of the same sender and nonce with `tx`, which
    /// must pay [`REPLACEMENT_BUMP_PERCENT`] more and keep the sender's pending costs
    /// within `balance`; it keeps the replaced one's place in the queue.
    fn replace(&mut self, hash: Hash32, tx: SignedTx, balance: u64) -> Result<(), TxError> {
        let (from, nonce) = (tx.tx.from, tx.tx.nonce);
        let cost = tx.tx.cost()?;
        let queue = self.accounts.get_mut(&from).ok_or(TxError::Overflow)?;
        let old = queue.txs.get(&nonce).ok_or(TxError::Overflow)?;
        let pending_fee = old.tx.tx.fee;
        let bump = (pending_fee.saturating_mul(REPLACEMENT_BUMP_PERCENT) / 100).max(1);
        let minimum = pending_fee.saturating_add(bump);
        if tx.tx.fee < minimum {
            return Err(TxError::ReplacementUnderpriced { pending_fee, minimum, got: tx.tx.fee });
        }
        let needed = (queue.cost_total - old.cost).checked_add(cost).ok_or(TxError::Overflow)?;
        if balance < needed {
            let pending = queue.cost_total - old.cost;
            let (amount, fee) = (tx.tx.amount(), tx.tx.fee);
            return Err(TxError::InsufficientBalance { balance, amount, fee, pending });
        }
        let (old_hash, seq) = (old.hash, old.seq);
        let size_bytes = encoded_size(&tx);
        queue.cost_total = needed;
        queue.txs.insert(nonce, Pending { hash, tx, cost, seq, size_bytes });
        self.by_hash.remove(&old_hash);
        self.by_hash.insert(hash, (from, nonce));
        self.sync_tail(&from);
        Ok(())
    }

    /// Up to `max_txs` transactions for a block, each account's in nonce order: the
    /// account heads paying the most per byte first; among equal rates, one transaction
    /// per account per turn, the account waiting longest first.
    pub fn select(&self, max_txs: usize) -> Vec<SignedTx> {
        let mut cursors: Vec<_> = self.accounts.values().map(|queue| queue.txs.values()).collect();
        let mut heap = BinaryHeap::with_capacity(cursors.len());
        for (account, queue) in self.accounts.values().enumerate() {
            if let Some(head) = cursors[account].next() {
                heap.push(Turn { head, turn: 0, oldest_seq: queue.oldest_seq(), account });
            }
        }
        let mut selected = Vec::with_capacity(max_txs.min(self.len()));
        while selected.len() < max_txs {
            let Some(Turn { head, turn, oldest_seq, account }) = heap.pop() else { break };
            selected.push(head.tx.clone());
            if let Some(next) = cursors[account].next() {
                heap.push(Turn { head: next, turn: turn + 1, oldest_seq, account });
            }
        }
        selected
    }

    /// The most transactions one sender may have pending.
    pub fn sender_txs_max(&self) -> usize {
        self.sender_txs_max
    }

    /// Drops the transactions a committed block included and any that the new ledger
    /// state makes stale (nonce below the account's, or no longer affordable).
    pub fn remove_committed(&mut self, committed: &[SignedTx], ledger: &Ledger) {
        let mut senders = BTreeSet::new();
        for tx in committed {
            senders.insert(tx.tx.from);
            if let Some((from, nonce)) = self.by_hash.remove(&tx.hash()) {
                self.remove_entry(&from, nonce);
            }
        }
        for sender in &senders {
            self.revalidate(sender, ledger);
        }
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Whether the transaction with id `hash` is pending.
    pub fn contains(&self, hash: &Hash32) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// The pending transaction with id `hash`.
    pub fn get(&self, hash: &Hash32) -> Option<&SignedTx> {
        let (from, nonce) = self.by_hash.get(hash)?;
        Some(&self.accounts.get(from)?.txs.get(nonce)?.tx)
    }

    /// The nonce the account's next transaction must carry to be admitted.
    pub fn next_nonce(&self, key: &PublicKey, ledger: &Ledger) -> u64 {
        let account = ledger.account(key);
        match self.accounts.get(key).and_then(|q| q.txs.last_key_value()) {
            Some((nonce, _)) if *nonce >= account.nonce => nonce.saturating_add(1),
            _ => account.nonce,
        }
    }

    /// The most transactions the mempool holds.
    pub fn txs_max(&self) -> usize {
        self.txs_max
    }

    /// Removes one queued entry (already gone from `by_hash`).
    fn remove_entry(&mut self, from: &PublicKey, nonce: u64) {
        let Some(queue) = self.accounts.get_mut(from) else {
            return;
        };
        queue.take(nonce);
        self.forget_if_empty(from);
    }

    /// Keeps an account's tail entry in step, and drops the account once its queue is
    /// empty (with its tail entry).
    fn forget_if_empty(&mut self, from: &PublicKey) {
        let empty = self.accounts.get(from).is_some_and(|queue| queue.txs.is_empty());
        if !empty {
            return self.sync_tail(from);
        }
        if let Some(tail) = self.accounts.remove(from).and_then(|queue| queue.tail) {
            self.tails.remove(&tail);
        }
    }

    /// Brings one account's queue in line with the ledger: drops nonces below the
    /// account's, everything after a gap, and the newest transactions it cannot afford.
    fn revalidate(&mut self, key: &PublicKey, ledger: &Ledger) {
        let Some(queue) = self.accounts.get_mut(key) else {
            return;
        };
        let account = ledger.account(key);
        let first_nonce = queue.txs.first_key_value().map(|(nonce, _)| *nonce);
        if first_nonce == Some(account.nonce) && queue.cost_total <= account.balance {
            return;
        }
        let mut dropped = Vec::new();
        // Stale nonces go; a gap at the front leaves nothing usable behind it.
        let stale: Vec<u64> = queue.txs.range(..account.nonce).map(|(n, _)| *n).collect();
        dropped.extend(stale.into_iter().filter_map(|nonce| queue.take(nonce)));
        if queue.txs.first_key_value().map(|(nonce, _)| *nonce) != Some(account.nonce) {
            dropped.extend(std::mem::take(&mut queue.txs).into_values());
            queue.cost_total = 0;
        }
        while queue.cost_total > account.balance {
            let Some((&newest, _)) = queue.txs.last_key_value() else {
                break;
            };
            dropped.extend(queue.take(newest));
        }
        self.forget_if_empty(key);
        for pending in dropped {
            self.by_hash.remove(&pending.hash);
        }
    }
}

/// One account's next transaction in [`Mempool::select`]: the heap's greatest is taken
/// first.
struct Turn<'a> {
    head: &'a Pending,
    /// Transactions already taken from the account.
    turn: u64,
    /// When the account's oldest pending transaction was admitted.
    oldest_seq: u64,
    account: usize,
}

impl Ord for Turn<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Higher fee per byte, then fewer turns taken, then waiting longer.
        self.head
            .rate_cmp(other.head)
            .then_with(|| other.turn.cmp(&self.turn))
            .then_with(|| other.oldest_seq.cmp(&self.oldest_seq))
            .then_with(|| other.account.cmp(&self.account))
    }
}

impl PartialOrd for Turn<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Turn<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Turn<'_> {}

/// A transaction's encoded size in bytes (at least 1, so rates compare).
fn encoded_size(tx: &SignedTx) -> u64 {
    borsh::object_length(tx).map_or(u64::MAX, |bytes| bytes.max(1) as u64)
}

#[cfg(test)]
mod tests;
