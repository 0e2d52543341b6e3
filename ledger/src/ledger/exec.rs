//! Apply one transaction on a layered view of the state: what each body may read and write.
//!
//! A block executes on four layers, newest first: the transaction's own writes, the
//! block's earlier transactions (`overlay`), the agreed but not yet final ancestors
//! (`prior`) and the committed [`Ledger`]. [`TxContext`] reads through them and records
//! writes in its own layer only, so a transaction that fails leaves nothing behind: the
//! caller drops the context's changes whole.
//!
//! Modules that add transaction kinds (market, devices) receive a `TxContext` after the
//! framework has checked the nonce and charged the fee.

use super::state::{Account, BlockEnv, Changes, Ledger};
use super::tx::{SignedTx, TxBody, TxError};
use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{Hash32, PublicKey};

/// Longest record key, in bytes.
pub const RECORD_KEY_BYTES_MAX: usize = 128;
/// Largest record value, in bytes.
pub const RECORD_VALUE_BYTES_MAX: usize = 16 * 1024;

/// The state as one transaction sees it, and the writes it makes.
pub struct TxContext<'a> {
    ledger: &'a Ledger,
    prior: &'a Changes,
    overlay: &'a Changes,
    env: &'a BlockEnv,
    tx: &'a SignedTx,
    touched: Changes,
}

impl<'a> TxContext<'a> {
    pub(super) fn new(
        ledger: &'a Ledger,
        prior: &'a Changes,
        overlay: &'a Changes,
        env: &'a BlockEnv,
        tx: &'a SignedTx,
    ) -> TxContext<'a> {
        TxContext { ledger, prior, overlay, env, tx, touched: Changes::new() }
    }

    /// The validator set the committed ledger records for `height` (sets are written
    /// for heights above the block that writes them, so a past height's set is final).
    pub fn validators_at(&self, height: u64) -> Option<super::validators::ValidatorSet> {
        self.ledger.validators_at(height)
    }

    /// Where and when the block executes.
    pub fn env(&self) -> &'a BlockEnv {
        self.env
    }

    /// The transaction being applied; its sender is `tx().tx.from`.
    pub fn tx(&self) -> &'a SignedTx {
        self.tx
    }

    /// The transaction id (see [`SignedTx::hash`]): a unique, deterministic name for
    /// whatever the transaction creates.
    pub fn tx_id(&self) -> Hash32 {
        self.tx.hash()
    }

    /// The market policies execution may call.
    pub fn markets(&self) -> &'a super::market::MarketRules {
        self.ledger.markets()
    }

    /// The account's value in this view; the default account if it does not exist.
    pub fn account(&self, key: &PublicKey) -> Account {
        [&self.touched, self.overlay, self.prior]
            .into_iter()
            .find_map(|layer| layer.accounts.get(key))
            .copied()
            .unwrap_or_else(|| self.ledger.account(key))
    }

    /// Replaces an account's value (the framework's nonce bump).
    pub(super) fn set_account(&mut self, key: PublicKey, account: Account) {
        self.touched.accounts.insert(key, account);
    }

    /// Takes `amount` from `key`'s balance.
    pub fn debit(&mut self, key: &PublicKey, amount: u64) -> Result<(), TxError> {
        let mut account = self.account(key);
        account.balance = account.balance.checked_sub(amount).ok_or(TxError::InsufficientBalance {
            balance: account.balance,
            amount,
            fee: 0,
            pending: 0,
        })?;
        self.touched.accounts.insert(*key, account);
        Ok(())
    }

    /// Adds `amount` to `key`'s balance.
    pub fn credit(&mut self, key: &PublicKey, amount: u64) -> Result<(), TxError> {
        let mut account = self.account(key);
        account.balance = account.balance.checked_add(amount).ok_or(TxError::Overflow)?;
        self.touched.accounts.insert(*key, account);
        Ok(())
    }

    /// The raw value of a record in this view.
    pub fn record_bytes(&self, key: &[u8]) -> Option<Vec<u8>> {
        for layer in [&self.touched, self.overlay, self.prior] {
            if let Some(value) = layer.records.get(key) {
                return value.clone();
            }
        }
        self.ledger.record(key).map(<[u8]>::to_vec)
    }

    /// The record at `key`, decoded; an error if the stored bytes are not a `T`.
    pub fn record<T: BorshDeserialize>(&self, key: &[u8]) -> Result<Option<T>, TxError> {
        match self.record_bytes(key) {
            None => Ok(None),
            Some(bytes) => borsh::from_slice(&bytes)
                .map(Some)
                .map_err(|_| TxError::CorruptRecord { key: String::from_utf8_lossy(key).into_owned() }),
        }
    }

    /// Writes a record; keys and values are bounded so that state stays small.
    pub fn put_record<T: BorshSerialize>(&mut self, key: Vec<u8>, value: &T) -> Result<(), TxError> {
        let bytes = borsh::to_vec(value).expect("borsh into a Vec");
        if key.len() > RECORD_KEY_BYTES_MAX {
            return Err(TxError::RecordTooLarge {
                what: "key",
                size_bytes: key.len(),
                max_bytes: RECORD_KEY_BYTES_MAX,
            });
        }
        if bytes.len() > RECORD_VALUE_BYTES_MAX {
            return Err(TxError::RecordTooLarge {
                what: "value",
                size_bytes: bytes.len(),
                max_bytes: RECORD_VALUE_BYTES_MAX,
            });
        }
        self.touched.records.insert(key, Some(bytes));
        Ok(())
    }

    /// Deletes a record (a no-op if it does not exist).
    pub fn delete_record(&mut self, key: &[u8]) {
        self.touched.records.insert(key.to_vec(), None);
    }

    /// Every record whose key starts with `prefix` in this view, in key order.
    pub fn records_with_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        super::rounds::records_with_prefix(self.ledger, &[self.prior, self.overlay, &self.touched], prefix)
    }

    /// The writes made so far.
    pub(super) fn into_changes(self) -> Changes {
        self.touched
    }
}

/// Applies the body of `tx` (nonce and fee already handled by the caller).
pub(super) fn apply_body(ctx: &mut TxContext<'_>) -> Result<(), TxError> {
    match &ctx.tx().tx.body {
        TxBody::Transfer { to, amount } => ctx.credit(to, *amount),
        TxBody::Market(body) => super::market::apply(ctx, body),
        TxBody::Device(body) => super::device::apply(ctx, body),
        TxBody::Evidence(proof) => super::evidence::apply(ctx, proof),
        TxBody::Staking(body) => super::staking::apply(ctx, body),
        TxBody::Poio(body) => super::poio::apply(ctx, body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::tx::UnsignedTx;
    use nest_sdk::Signature;

    fn key(byte: u8) -> PublicKey {
        PublicKey([byte; 32])
    }

    fn sample_tx() -> SignedTx {
        let body = TxBody::Transfer { to: key(2), amount: 1 };
        let tx = UnsignedTx { chain: Hash32([7; 32]), from: key(1), nonce: 0, fee: 0, body };
        SignedTx { tx, signature: Signature([0; 64]) }
    }

    fn layer(records: &[(&str, Option<&str>)]) -> Changes {
        let mut changes = Changes::new();
        for (key, value) in records {
            changes.records.insert(key.as_bytes().to_vec(), value.map(|v| v.as_bytes().to_vec()));
        }
        changes
    }

    #[test]
    fn records_read_through_the_layers_newest_first() {
        let ledger = Ledger::from_state([], [(b"m/a".to_vec(), b"ledger".to_vec()), (b"m/b".to_vec(), b"b".to_vec())]);
        let prior = layer(&[("m/a", Some("prior")), ("m/c", Some("c"))]);
        let overlay = layer(&[("m/b", None)]);
        let env = BlockEnv::proposed_by(key(9));
        let tx = sample_tx();
        let mut ctx = TxContext::new(&ledger, &prior, &overlay, &env, &tx);
        ctx.put_record(b"m/d".to_vec(), &7u32).unwrap();
        assert_eq!(ctx.record_bytes(b"m/a"), Some(b"prior".to_vec()));
        assert_eq!(ctx.record_bytes(b"m/b"), None);
        assert_eq!(ctx.record::<u32>(b"m/d").unwrap(), Some(7));
        let keys: Vec<Vec<u8>> = ctx.records_with_prefix(b"m/").into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![b"m/a".to_vec(), b"m/c".to_vec(), b"m/d".to_vec()]);
        assert!(matches!(ctx.record::<u64>(b"m/a"), Err(TxError::CorruptRecord { .. })));
    }

    #[test]
    fn oversized_records_are_refused() {
        let ledger = Ledger::from_accounts([]);
        let (prior, overlay, env, tx) = (Changes::new(), Changes::new(), BlockEnv::proposed_by(key(9)), sample_tx());
        let mut ctx = TxContext::new(&ledger, &prior, &overlay, &env, &tx);
        let long_key = vec![b'k'; RECORD_KEY_BYTES_MAX + 1];
        assert!(matches!(ctx.put_record(long_key, &0u8), Err(TxError::RecordTooLarge { what: "key", .. })));
        let big_value = vec![0u8; RECORD_VALUE_BYTES_MAX];
        assert!(matches!(
            ctx.put_record(b"k".to_vec(), &big_value),
            Err(TxError::RecordTooLarge { what: "value", .. })
        ));
        assert!(ctx.into_changes().is_empty());
    }

    #[test]
    fn record_changes_move_the_digest_and_restore_identically() {
        let mut ledger = Ledger::from_accounts([(key(1), Account { balance: 5, nonce: 0 })]);
        let before = ledger.state_digest();
        ledger.commit(&layer(&[("x/1", Some("one")), ("x/2", Some("two"))]));
        let with_records = ledger.state_digest();
        assert_ne!(before, with_records);
        let restored = Ledger::from_state(
            ledger.accounts().map(|(k, a)| (*k, *a)),
            ledger.records().map(|(k, v)| (k.to_vec(), v.to_vec())),
        );
        assert_eq!(restored.state_digest(), with_records);
        ledger.commit(&layer(&[("x/1", None), ("x/2", None)]));
        assert_eq!(ledger.state_digest(), before);
        assert_eq!(ledger.records().count(), 0);
    }
}
