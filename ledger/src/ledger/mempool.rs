//! Hold pending transactions until a block includes them: bounded, ordered by nonce.
//!
//! Each account's pending transactions form one contiguous run of nonces starting at
//! the account's ledger nonce, and together cost no more than its balance (incoming
//! pending transfers are not counted). Signatures are checked before admission (see
//! `verify.rs`); the mempool checks chain, fee, nonce and balance.

use super::state::{ChainParams, Ledger, check_chain_and_fee};
use super::tx::{SignedTx, TxError};
use nest_sdk::{Hash32, PublicKey};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One pending transaction.
#[derive(Debug)]
struct Pending {
    hash: Hash32,
    tx: SignedTx,
    /// Amount plus fee.
    cost: u64,
    /// Admission sequence number: older transactions have smaller ones.
    seq: u64,
}

/// The pending transactions of one account, by nonce (contiguous).
#[derive(Debug, Default)]
struct Queue {
    txs: BTreeMap<u64, Pending>,
    /// Sum of the costs of `txs`.
    cost_total: u64,
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
    accounts: BTreeMap<PublicKey, Queue>,
    /// Every pending id, with the sender and nonce that locate it in `accounts`.
    by_hash: HashMap<Hash32, (PublicKey, u64)>,
    /// Sequence number given to the next admitted transaction.
    next_seq: u64,
}

impl Mempool {
    /// An empty mempool holding at most `txs_max` transactions.
    pub fn new(txs_max: usize) -> Mempool {
        Mempool { txs_max, accounts: BTreeMap::new(), by_hash: HashMap::new(), next_seq: 0 }
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
        if self.by_hash.len() >= self.txs_max {
            return Err(TxError::MempoolFull);
        }
        let account = ledger.account(&from);
        let (pending_count, pending_cost) =
            self.accounts.get(&from).map_or((0, 0), |queue| (queue.txs.len(), queue.cost_total));
        let expected = u64::try_from(pending_count)
            .ok()
            .and_then(|count| account.nonce.checked_add(count))
            .ok_or(TxError::Overflow)?;
        if tx.tx.nonce != expected {
            return Err(TxError::WrongNonce { expected, got: tx.tx.nonce });
        }
        let cost = tx.tx.cost()?;
        let needed = pending_cost.checked_add(cost).ok_or(TxError::Overflow)?;
        if account.balance < needed {
            let (amount, fee) = (tx.tx.amount(), tx.tx.fee);
            return Err(TxError::InsufficientBalance { balance: account.balance, amount, fee, pending: pending_cost });
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.saturating_add(1);
        let queue = self.accounts.entry(from).or_default();
        queue.cost_total = needed;
        let pending = Pending { hash, tx, cost, seq };
        queue.txs.insert(expected, pending);
        self.by_hash.insert(hash, (from, expected));
        Ok(())
    }

    /// Up to `max_txs` transactions for a block: per account in nonce order, accounts
    /// interleaved round-robin, the account waiting longest first.
    pub fn select(&self, max_txs: usize) -> Vec<SignedTx> {
        let mut queues: Vec<&Queue> = self.accounts.values().collect();
        queues.sort_by_key(|queue| queue.oldest_seq());
        let mut cursors: Vec<_> = queues.iter().map(|queue| queue.txs.values()).collect();
        let mut selected = Vec::with_capacity(max_txs.min(self.len()));
        while selected.len() < max_txs && !cursors.is_empty() {
            cursors.retain_mut(|cursor| match cursor.next() {
                Some(pending) if selected.len() < max_txs => {
                    selected.push(pending.tx.clone());
                    true
                }
                Some(_) => true,
                None => false,
            });
        }
        selected
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
        if queue.txs.is_empty() {
            self.accounts.remove(from);
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
        if queue.txs.is_empty() {
            self.accounts.remove(key);
        }
        for pending in dropped {
            self.by_hash.remove(&pending.hash);
        }
    }
}

#[cfg(test)]
mod tests;
