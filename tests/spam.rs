//! A flood from one funded account does not stop another account's transfer: the
//! spammer fills its share of the mempool and is refused beyond it, and the other
//! transfer is admitted and committed within three blocks.

use nest_host::{
    api::SubmitAnswer,
    crypto::SecretKey,
    ledger::tx::{SignedTx, TxBody, UnsignedTx},
    wallet,
};
use nest_sdk::{Hash32, PublicKey};
use nest_tests::node::{NodeProcess, wait_until, write_devnet};
use std::time::Duration;

/// The pool of this test's node; one sender may fill an eighth of it.
const MEMPOOL_TXS: usize = 4_000;
const SENDER_TXS_MAX: usize = MEMPOOL_TXS / 8;
/// Transactions a block takes: the flood needs several blocks to drain.
const BLOCK_TXS: usize = 200;
const FLOOD_TXS: u64 = 4_200;

fn transfer(from: &SecretKey, chain: Hash32, nonce: u64, to: PublicKey, fee: u64) -> SignedTx {
    UnsignedTx { chain, from: from.public_key(), nonce, fee, body: TxBody::Transfer { to, amount: 1 } }.sign(from)
}

fn submit(node: &NodeProcess, txs: &[SignedTx]) -> SubmitAnswer {
    let body = serde_json::json!({ "txs": txs.iter().map(|tx| hex::encode(tx.encode())).collect::<Vec<_>>() });
    node.client().post("/v1/chains/main/txs", &body).expect("submit")
}

#[test]
fn a_flood_from_one_account_fills_its_share_and_another_transfer_commits_within_three_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let (spammer, alice, bob) =
        (SecretKey::from_seed([21; 32]), SecretKey::from_seed([22; 32]), SecretKey::from_seed([23; 32]));
    let devnet =
        write_devnet(dir.path(), 200, vec![(spammer.public_key(), u64::MAX / 4), (alice.public_key(), 1_000_000)]);
    let text = std::fs::read_to_string(&devnet.manifest).unwrap();
    let text = text
        .replace("block_txs_max = 20000", &format!("block_txs_max = {BLOCK_TXS}"))
        .replace("mempool_txs_max = 100000", &format!("mempool_txs_max = {MEMPOOL_TXS}"));
    assert!(text.contains(&format!("mempool_txs_max = {MEMPOOL_TXS}")), "the devnet manifest changed shape");
    std::fs::write(&devnet.manifest, text).unwrap();
    let node = NodeProcess::start(&devnet.manifest);
    wait_until(Duration::from_secs(15), "two blocks", || node.main_chain().height >= 2);
    let (chain, fee) = wallet::chain_terms(&node.client(), "main").unwrap();

    let flood: Vec<SignedTx> =
        (0..FLOOD_TXS).map(|nonce| transfer(&spammer, chain, nonce, bob.public_key(), fee)).collect();
    let mut refused_for_cap = 0;
    let mut accepted = 0;
    for chunk in flood.chunks(1_000) {
        let answer = submit(&node, chunk);
        accepted += answer.accepted;
        refused_for_cap += answer.results.iter().filter(|r| r.code.as_deref() == Some("sender_cap_reached")).count();
    }
    // Blocks may drain some of the flood while it is submitted, freeing room.
    assert!(accepted >= SENDER_TXS_MAX, "the spammer fills its share: {accepted} accepted");
    assert!(refused_for_cap > 0, "and is refused beyond it");
    assert!(node.main_chain().height < 2 + FLOOD_TXS / BLOCK_TXS as u64, "the flood outlasts the test");

    let honest = transfer(&alice, chain, 0, bob.public_key(), fee);
    let submitted_at = node.main_chain().height;
    let answer = submit(&node, std::slice::from_ref(&honest));
    assert_eq!(answer.accepted, 1, "another account is admitted during the flood: {:?}", answer.results);
    let (height, _) = wallet::wait_committed(&node.client(), "main", &honest, Duration::from_secs(30)).unwrap();
    assert!(height <= submitted_at + 3, "submitted at height {submitted_at}, committed at {height}");
}
