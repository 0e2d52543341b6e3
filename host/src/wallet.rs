//! Build, sign and submit transactions from a key file, as `nestd tx` does.

use crate::api::SubmitAnswer;
use crate::client::Client;
use crate::crypto::SecretKey;
use crate::ledger::tx::{SignedTx, TxBody, UnsignedTx, gas_of};
use crate::node::{AccountView, TxStatus, status::NodeStatus};
use nest_sdk::{Hash32, PublicKey};
use std::{
    path::Path,
    time::{Duration, Instant},
};

/// A transfer to send.
pub struct Transfer<'a> {
    /// Node API base URL.
    pub node_url: &'a str,
    /// Chain id.
    pub chain: &'a str,
    /// Sender's key file.
    pub key: &'a Path,
    /// Recipient account.
    pub to: PublicKey,
    /// Amount.
    pub amount: u64,
    /// Fee; the chain's minimum when absent.
    pub fee: Option<u64>,
    /// Nonce; the account's next when absent.
    pub nonce: Option<u64>,
    /// Wait until the transaction is committed.
    pub wait: bool,
}

/// The chain's identity and minimum fee for a transfer, from the node's status.
pub fn chain_terms(client: &Client, chain: &str) -> Result<(Hash32, u64), String> {
    let status: NodeStatus = client.get("/v1/status")?;
    let chain_status =
        status.chains.iter().find(|c| c.id == chain).ok_or_else(|| format!("the node has no chain \"{chain}\""))?;
    let body = TxBody::Transfer { to: PublicKey::default(), amount: 0 };
    Ok((chain_status.genesis_hash, gas_of(&body) * chain_status.gas_price))
}

/// Signs and submits a transfer; prints what happened.
pub fn transfer(request: &Transfer<'_>) -> Result<(), String> {
    let client = Client::new(request.node_url);
    let key = SecretKey::read(request.key).map_err(|e| e.to_string())?;
    let (chain_hash, minimum_fee) = chain_terms(&client, request.chain)?;
    let nonce = match request.nonce {
        Some(nonce) => nonce,
        None => {
            client
                .get::<AccountView>(&format!("/v1/chains/{}/accounts/{}", request.chain, key.public_key()))?
                .next_nonce
        }
    };
    let fee = request.fee.unwrap_or(minimum_fee);
    let body = TxBody::Transfer { to: request.to, amount: request.amount };
    let tx = UnsignedTx { chain: chain_hash, from: key.public_key(), nonce, fee, body }.sign(&key);
    let answer: SubmitAnswer = client
        .post(&format!("/v1/chains/{}/txs", request.chain), &serde_json::json!({ "tx": hex::encode(tx.encode()) }))?;
    let result = answer.results.first().ok_or("the node answered with no result")?;
    let hash = result.hash.map(|h| h.to_hex()).unwrap_or_default();
    if result.status != "accepted" {
        return Err(format!("rejected: {}", result.reason.clone().unwrap_or_default()));
    }
    println!("accepted {hash}: {}", transfer_summary(&tx.tx));
    if request.wait {
        let (height, index) = wait_committed(&client, request.chain, &tx, Duration::from_secs(60))?;
        println!("committed at height {height}, index {index}");
    }
    Ok(())
}

/// A transfer in one line, the amount and the fee apart:
/// `5000 from <account> (nonce 0) to <account>, fee 1000`.
pub fn transfer_summary(tx: &UnsignedTx) -> String {
    let to = match &tx.body {
        TxBody::Transfer { to, .. } => to.to_hex(),
        _ => String::new(),
    };
    format!("{} from {} (nonce {}) to {to}, fee {}", tx.amount(), tx.from, tx.nonce, tx.fee)
}

/// Polls until `tx` is committed; returns its height and index.
pub fn wait_committed(client: &Client, chain: &str, tx: &SignedTx, timeout: Duration) -> Result<(u64, u32), String> {
    let hash = tx.hash();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(TxStatus::Committed { height, index }) =
            client.get::<TxStatus>(&format!("/v1/chains/{chain}/txs/{hash}"))
        {
            return Ok((height, index));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("transaction {hash} not committed within {} s", timeout.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_summary_shows_the_amount_and_the_fee_apart() {
        let body = TxBody::Transfer { to: PublicKey([0xbb; 32]), amount: 5_000 };
        let tx = UnsignedTx { chain: Hash32::default(), from: PublicKey([0xaa; 32]), nonce: 3, fee: 1_000, body };
        let (from, to) = ("aa".repeat(32), "bb".repeat(32));
        assert_eq!(transfer_summary(&tx), format!("5000 from {from} (nonce 3) to {to}, fee 1000"));
    }
}
