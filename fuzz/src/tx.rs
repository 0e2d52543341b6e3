//! Transactions as the API, gossip and blocks deliver them: `SignedTx::decode`.

use nest_ledger::ledger::{SignedTx, tx::gas_of};

/// Decodes `data`; a transaction that decodes must encode back to the same bytes (its
/// hash is the hash of those bytes, so two encodings of one transaction would be two ids).
pub fn run(data: &[u8]) {
    let Ok(tx) = SignedTx::decode(data) else { return };
    assert_eq!(tx.encode(), data, "a decoded transaction must re-encode to its bytes");
    let _ = (tx.hash(), tx.tx.signing_hash(), tx.tx.cost(), gas_of(&tx.tx.body));
    let _ = tx.verify_signature();
}
