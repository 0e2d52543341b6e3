//! Define transactions: their canonical encoding, signing hash, id and rejection reasons.
//!
//! A transaction is signed over `sha256(b"nest/tx/v1\0" ++ borsh(UnsignedTx))`; its id is
//! the SHA-256 of the borsh encoding of the whole [`SignedTx`] (signature included).
//! The chain's genesis hash is part of what is signed, so a transaction cannot be
//! replayed on another chain.

use crate::crypto::{self, SecretKey};
use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{Hash32, PublicKey, Signature};

/// Largest encoded transaction accepted from the network or the API, in bytes.
pub const TX_BYTES_MAX: usize = 4096;

/// Gas charged for a [`TxBody::Transfer`].
pub const TRANSFER_GAS: u64 = 1_000;

/// Domain separator of the signing hash.
const SIGNING_DOMAIN: &[u8] = b"nest/tx/v1\0";

/// What a transaction does.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum TxBody {
    /// Moves `amount` tokens from the sender to `to`.
    Transfer {
        /// The receiving account.
        to: PublicKey,
        /// Tokens moved.
        amount: u64,
    },
    /// A resource-market transaction (see `ledger::market`).
    Market(super::market::MarketTx),
    /// Registers, transfers or revokes a device, or anchors device readings.
    Device(super::device::DeviceTx),
    /// Records a validator's conflicting votes or proposals (see `ledger::evidence`).
    Evidence(nest_sdk::certificate::Offence),
    /// Stakes, unstakes, registers a delegate or votes (see `ledger::staking`).
    Staking(super::staking::StakingTx),
    /// A node's proof of uptime or storage, or its approval of reward weights (see
    /// `ledger::poio`).
    Poio(super::poio::PoioTx),
}

/// A transaction before it is signed: the bytes the sender signs.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UnsignedTx {
    /// Genesis hash of the chain the transaction is meant for: no replay across chains.
    pub chain: Hash32,
    /// The sending account; it signs and pays the fee.
    pub from: PublicKey,
    /// Must equal the sender's account nonce when the transaction is applied.
    pub nonce: u64,
    /// Tokens paid to the block proposer; at least `gas_of(body) × gas_price`.
    pub fee: u64,
    /// What the transaction does.
    pub body: TxBody,
}

/// A transaction with the sender's Ed25519 signature over its signing hash.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SignedTx {
    /// The signed content.
    pub tx: UnsignedTx,
    /// Signature by `tx.from` over [`UnsignedTx::signing_hash`].
    pub signature: Signature,
}

/// Why a transaction was refused; the message is what an API client sees.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum TxError {
    /// The bytes do not decode as a transaction.
    #[error("malformed transaction: {0}")]
    Malformed(String),
    /// The encoded transaction exceeds [`TX_BYTES_MAX`].
    #[error("transaction too large: {size_bytes} bytes, maximum {max_bytes}")]
    TooLarge {
        /// Size of the encoding received.
        size_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// The signature does not verify against the sender's key.
    #[error("bad signature")]
    BadSignature,
    /// The transaction names another chain.
    #[error("wrong chain")]
    WrongChain,
    /// The nonce is not the next one for the sender.
    #[error("wrong nonce: expected {expected}, got {got}")]
    WrongNonce {
        /// The nonce the sender must use next.
        expected: u64,
        /// The nonce in the transaction.
        got: u64,
    },
    /// The sender cannot pay amount plus fee (plus what its pending transactions spend).
    #[error("insufficient balance: has {balance}, needs {}", needs(*amount, *fee, *pending))]
    InsufficientBalance {
        /// The sender's balance.
        balance: u64,
        /// What the transaction moves out of the account (a transfer's amount, an escrow).
        amount: u64,
        /// The transaction's fee.
        fee: u64,
        /// What the sender's earlier transactions still in the mempool spend.
        pending: u64,
    },
    /// The fee is below gas × gas price.
    #[error("fee too low: minimum {minimum}, got {got}")]
    FeeTooLow {
        /// The smallest fee accepted.
        minimum: u64,
        /// The fee in the transaction.
        got: u64,
    },
    /// An amount, balance or nonce would overflow.
    #[error("arithmetic overflow")]
    Overflow,
    /// The mempool holds its maximum number of transactions.
    #[error("mempool full")]
    MempoolFull,
    /// The transaction is already pending.
    #[error("duplicate transaction")]
    Duplicate,
    /// A record the transaction reads does not decode as the type its module expects.
    #[error("state record {key} does not decode")]
    CorruptRecord {
        /// The record's key, as text where it is.
        key: String,
    },
    /// A record the transaction would write exceeds its bound.
    #[error("state record {what} too large: {size_bytes} bytes, maximum {max_bytes}")]
    RecordTooLarge {
        /// `key` or `value`.
        what: &'static str,
        /// Its size.
        size_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// A market transaction broke the market's rules.
    #[error(transparent)]
    Market(#[from] super::market::MarketError),
    /// A device transaction was refused.
    #[error(transparent)]
    Device(#[from] super::device::DeviceError),
    /// An evidence transaction was refused.
    #[error(transparent)]
    Evidence(#[from] super::evidence::EvidenceError),
    /// A staking transaction was refused.
    #[error(transparent)]
    Staking(#[from] super::staking::StakingError),
    /// A Proof-of-i/o transaction was refused.
    #[error(transparent)]
    Poio(#[from] super::poio::PoioError),
    /// The sender already has its share of the mempool pending.
    #[error("sender has {pending} transactions pending, the most one sender may have")]
    SenderCapReached {
        /// Its pending transactions.
        pending: usize,
    },
    /// A transaction for a nonce already pending replaces it only with a higher fee.
    #[error(
        "replacement fee too low: the pending transaction pays {pending_fee}, a replacement must pay at least {minimum}, got {got}"
    )]
    ReplacementUnderpriced {
        /// The fee of the pending transaction.
        pending_fee: u64,
        /// The smallest fee that replaces it.
        minimum: u64,
        /// The fee offered.
        got: u64,
    },
}

impl TxError {
    /// A stable snake_case code for API clients and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            TxError::Malformed(_) => "malformed",
            TxError::TooLarge { .. } => "too_large",
            TxError::BadSignature => "bad_signature",
            TxError::WrongChain => "wrong_chain",
            TxError::WrongNonce { .. } => "wrong_nonce",
            TxError::InsufficientBalance { .. } => "insufficient_balance",
            TxError::FeeTooLow { .. } => "fee_too_low",
            TxError::Overflow => "overflow",
            TxError::MempoolFull => "mempool_full",
            TxError::Duplicate => "duplicate",
            TxError::CorruptRecord { .. } => "corrupt_record",
            TxError::RecordTooLarge { .. } => "record_too_large",
            TxError::Market(_) => "market",
            TxError::Device(error) => error.code(),
            TxError::Evidence(error) => error.code(),
            TxError::Staking(error) => error.code(),
            TxError::Poio(error) => error.code(),
            TxError::SenderCapReached { .. } => "sender_cap_reached",
            TxError::ReplacementUnderpriced { .. } => "replacement_underpriced",
        }
    }
}

impl UnsignedTx {
    /// The hash the sender signs: `sha256(b"nest/tx/v1\0" ++ borsh(self))`.
    pub fn signing_hash(&self) -> Hash32 {
        crypto::sha256_parts(&[SIGNING_DOMAIN, &borsh::to_vec(self).expect("borsh into a Vec")])
    }

    /// Signs the transaction with `key` (which should be the key of `from`).
    pub fn sign(self, key: &SecretKey) -> SignedTx {
        let signature = key.sign(&self.signing_hash().0);
        SignedTx { tx: self, signature }
    }

    /// Tokens the sender spends if the transaction applies: amount plus fee.
    pub fn cost(&self) -> Result<u64, TxError> {
        self.amount().checked_add(self.fee).ok_or(TxError::Overflow)
    }

    /// Tokens the body moves out of the sender's account before it applies: a
    /// transfer's amount; 0 for the others (escrow moves inside the body's apply,
    /// checked there).
    pub fn amount(&self) -> u64 {
        match &self.body {
            TxBody::Transfer { amount, .. } => *amount,
            TxBody::Market(_) | TxBody::Device(_) | TxBody::Evidence(_) | TxBody::Staking(_) | TxBody::Poio(_) => 0,
        }
    }
}

/// What an insufficient balance needed, in parts: `1010 (amount 10 + fee 1000)`.
fn needs(amount: u64, fee: u64, pending: u64) -> String {
    let total = u128::from(amount) + u128::from(fee) + u128::from(pending);
    let pending = match pending {
        0 => String::new(),
        pending => format!(" + {pending} for pending transactions"),
    };
    format!("{total} (amount {amount} + fee {fee}{pending})")
}

impl SignedTx {
    /// The canonical (borsh) encoding.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh into a Vec")
    }

    /// Decodes a transaction received from outside: at most [`TX_BYTES_MAX`] bytes,
    /// exactly one transaction (no trailing bytes).
    pub fn decode(bytes: &[u8]) -> Result<SignedTx, TxError> {
        if bytes.len() > TX_BYTES_MAX {
            return Err(TxError::TooLarge { size_bytes: bytes.len(), max_bytes: TX_BYTES_MAX });
        }
        borsh::from_slice(bytes).map_err(|e| TxError::Malformed(e.to_string()))
    }

    /// The transaction id: SHA-256 of [`SignedTx::encode`].
    pub fn hash(&self) -> Hash32 {
        crypto::sha256(&self.encode())
    }

    /// Whether the signature is valid for `tx.from` over the signing hash.
    pub fn verify_signature(&self) -> bool {
        crypto::verify(&self.tx.from, &self.tx.signing_hash().0, &self.signature)
    }
}

/// Gas consumed by a transaction body.
pub fn gas_of(body: &TxBody) -> u64 {
    match body {
        TxBody::Transfer { .. } => TRANSFER_GAS,
        TxBody::Market(body) => super::market::gas_of(body),
        TxBody::Device(body) => super::device::gas_of(body),
        TxBody::Evidence(proof) => super::evidence::gas_of(proof),
        TxBody::Staking(body) => super::staking::gas_of(body),
        TxBody::Poio(body) => super::poio::gas_of(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seed: u8) -> SignedTx {
        let key = SecretKey::from_seed([seed; 32]);
        UnsignedTx {
            chain: Hash32([9; 32]),
            from: key.public_key(),
            nonce: 3,
            fee: 1_000,
            body: TxBody::Transfer { to: PublicKey([2; 32]), amount: 10 },
        }
        .sign(&key)
    }

    #[test]
    fn signed_tx_round_trips_and_verifies() {
        let tx = sample(1);
        assert!(tx.verify_signature());
        let back = SignedTx::decode(&tx.encode()).unwrap();
        assert_eq!(back, tx);
        assert_eq!(back.hash(), tx.hash());
    }

    #[test]
    fn tampered_tx_fails_signature_check() {
        let mut tx = sample(1);
        tx.tx.nonce += 1;
        assert!(!tx.verify_signature());
        let mut tx = sample(1);
        tx.tx.from = SecretKey::from_seed([2; 32]).public_key();
        assert!(!tx.verify_signature());
        let mut tx = sample(1);
        tx.signature.0[0] ^= 1;
        assert!(!tx.verify_signature());
    }

    #[test]
    fn signing_hash_is_domain_separated_and_binds_the_chain() {
        let tx = sample(1).tx;
        let plain = crypto::sha256(&borsh::to_vec(&tx).unwrap());
        assert_ne!(tx.signing_hash(), plain);
        let mut other = tx.clone();
        other.chain = Hash32([8; 32]);
        assert_ne!(tx.signing_hash(), other.signing_hash());
    }

    #[test]
    fn tx_id_covers_the_signature() {
        let a = sample(1);
        let mut b = a.clone();
        b.signature.0[5] ^= 0xff;
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn decode_rejects_garbage() {
        for bytes in [&[][..], &[1, 2, 3][..], &[0xff; 200][..]] {
            let error = SignedTx::decode(bytes).unwrap_err();
            assert_eq!(error.code(), "malformed", "{error}");
            assert!(error.to_string().starts_with("malformed transaction: "));
        }
    }

    #[test]
    fn decode_rejects_unknown_body_variant() {
        let mut bytes = sample(1).encode();
        // chain (32) + from (32) + nonce (8) + fee (8): then the body's variant tag.
        bytes[80] = 7;
        assert_eq!(SignedTx::decode(&bytes).unwrap_err().code(), "malformed");
    }

    #[test]
    fn decode_rejects_trailing_bytes() {
        let mut bytes = sample(1).encode();
        bytes.push(0);
        assert_eq!(SignedTx::decode(&bytes).unwrap_err().code(), "malformed");
    }

    #[test]
    fn decode_rejects_oversized_input_before_parsing() {
        let bytes = vec![0u8; TX_BYTES_MAX + 1];
        assert_eq!(
            SignedTx::decode(&bytes).unwrap_err(),
            TxError::TooLarge { size_bytes: TX_BYTES_MAX + 1, max_bytes: TX_BYTES_MAX }
        );
    }

    #[test]
    fn decode_of_truncated_tx_is_malformed() {
        let bytes = sample(1).encode();
        for cut in [1, 40, bytes.len() - 1] {
            assert_eq!(SignedTx::decode(&bytes[..cut]).unwrap_err().code(), "malformed");
        }
    }

    #[test]
    fn error_messages_read_as_reasons() {
        let cases = [
            (TxError::BadSignature, "bad signature", "bad_signature"),
            (TxError::WrongNonce { expected: 3, got: 5 }, "wrong nonce: expected 3, got 5", "wrong_nonce"),
            (
                TxError::InsufficientBalance { balance: 10, amount: 10, fee: 1000, pending: 0 },
                "insufficient balance: has 10, needs 1010 (amount 10 + fee 1000)",
                "insufficient_balance",
            ),
            (
                TxError::InsufficientBalance { balance: 3000, amount: 1, fee: 1000, pending: 2000 },
                "insufficient balance: has 3000, needs 3001 (amount 1 + fee 1000 + 2000 for pending transactions)",
                "insufficient_balance",
            ),
            (
                TxError::InsufficientBalance { balance: 0, amount: u64::MAX, fee: u64::MAX, pending: 0 },
                "insufficient balance: has 0, needs 36893488147419103230 (amount 18446744073709551615 + fee 18446744073709551615)",
                "insufficient_balance",
            ),
            (TxError::FeeTooLow { minimum: 1000, got: 5 }, "fee too low: minimum 1000, got 5", "fee_too_low"),
            (TxError::WrongChain, "wrong chain", "wrong_chain"),
            (TxError::MempoolFull, "mempool full", "mempool_full"),
            (
                TxError::SenderCapReached { pending: 64 },
                "sender has 64 transactions pending, the most one sender may have",
                "sender_cap_reached",
            ),
            (
                TxError::ReplacementUnderpriced { pending_fee: 1000, minimum: 1100, got: 1050 },
                "replacement fee too low: the pending transaction pays 1000, a replacement must pay at least 1100, got 1050",
                "replacement_underpriced",
            ),
            (TxError::Duplicate, "duplicate transaction", "duplicate"),
            (TxError::Overflow, "arithmetic overflow", "overflow"),
        ];
        for (error, message, code) in cases {
            assert_eq!(error.to_string(), message);
            assert_eq!(error.code(), code);
        }
    }

    #[test]
    fn transfer_costs_amount_plus_fee_and_detects_overflow() {
        let mut tx = sample(1).tx;
        assert_eq!(tx.cost(), Ok(1_010));
        assert_eq!(gas_of(&tx.body), TRANSFER_GAS);
        tx.fee = u64::MAX;
        assert_eq!(tx.cost(), Err(TxError::Overflow));
    }
}
