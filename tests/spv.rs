//! SPV proofs from a running node: every transaction of a committed block has an RFC 6962
//! inclusion proof at `GET /v1/chains/main/txs/{hash}/proof` that leads to the header's
//! `tx_root` with the header's `tx_count` as the tree size, and `nestd merkle verify`
//! checks it offline: exit 0 when it holds, 1 when a bit of it changed, 2 for a
//! malformed command line.

use nest_host::{
    api::{SubmitAnswer, TxProofView},
    crypto::SecretKey,
    ledger::{
        merkle::verify_inclusion,
        tx::{TxBody, UnsignedTx},
    },
    wallet,
};
use nest_sdk::Hash32;
use nest_tests::node::{NodeProcess, nestd_binary, wait_until, write_devnet};
use std::{process::Command, time::Duration};

/// Transfers submitted in one batch, so that blocks hold several and the trees have
/// uneven shapes.
const TRANSFERS: u64 = 11;

fn merkle_verify(leaf_hash: &Hash32, index: u64, size: u64, root: &Hash32, path: &[Hash32]) -> (i32, String) {
    let path: Vec<String> = path.iter().map(|hash| hash.to_hex()).collect();
    let output = Command::new(nestd_binary())
        .args(["merkle", "verify", "--leaf-hash", &leaf_hash.to_hex(), "--index", &index.to_string()])
        .args(["--size", &size.to_string(), "--root", &root.to_hex(), "--proof", &path.join(",")])
        .output()
        .expect("run nestd merkle verify");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

fn committed_proofs(node: &NodeProcess, hashes: &[Hash32]) -> Vec<TxProofView> {
    let mut proofs = Vec::new();
    wait_until(Duration::from_secs(20), "every transfer committed with a proof", || {
        proofs = hashes
            .iter()
            .filter_map(|hash| node.client().get(&format!("/v1/chains/main/txs/{hash}/proof")).ok())
            .collect();
        proofs.len() == hashes.len()
    });
    proofs
}

#[test]
fn every_committed_transaction_has_a_proof_that_verifies_and_a_changed_root_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (SecretKey::from_seed([1; 32]), SecretKey::from_seed([2; 32]));
    let devnet = write_devnet(dir.path(), 300, vec![(alice.public_key(), 1_000_000)]);
    let node = NodeProcess::start(&devnet.manifest);
    wait_until(Duration::from_secs(15), "two blocks", || node.main_chain().height >= 2);

    let (chain, fee) = wallet::chain_terms(&node.client(), "main").unwrap();
    let txs: Vec<_> = (0..TRANSFERS)
        .map(|nonce| {
            let body = TxBody::Transfer { to: bob.public_key(), amount: 10 + nonce };
            UnsignedTx { chain, from: alice.public_key(), nonce, fee, body }.sign(&alice)
        })
        .collect();
    let body = serde_json::json!({ "txs": txs.iter().map(|tx| hex::encode(tx.encode())).collect::<Vec<_>>() });
    let answer: SubmitAnswer = node.client().post("/v1/chains/main/txs", &body).unwrap();
    assert_eq!(answer.accepted, TRANSFERS as usize, "{answer:?}");
    let hashes: Vec<Hash32> = answer.results.iter().map(|r| r.hash.unwrap()).collect();

    for proof in committed_proofs(&node, &hashes) {
        let header = &proof.header;
        let block: serde_json::Value =
            node.client().get(&format!("/v1/chains/main/blocks/{}?txs=hashes", header.height)).unwrap();
        let json = |value| serde_json::to_value(value).unwrap();
        assert_eq!(block["hash"], json(header.hash));
        assert_eq!(block["tx_root"], json(header.tx_root));
        assert_eq!(block["tx_count"], header.tx_count);
        assert_eq!(block["tx_hashes"][proof.leaf_index as usize], json(proof.tx));
        assert_eq!(proof.tree_size, header.tx_count, "the tree size is the header's");
        let holds =
            verify_inclusion(&proof.leaf_hash, proof.leaf_index, header.tx_count, &proof.audit_path, &header.tx_root);
        assert_eq!(holds, Ok(()), "{proof:?}");

        let (code, text) =
            merkle_verify(&proof.leaf_hash, proof.leaf_index, proof.tree_size, &header.tx_root, &proof.audit_path);
        assert_eq!(code, 0, "{text}");
        let mut changed_root = header.tx_root;
        changed_root.0[31] ^= 1;
        let (code, text) =
            merkle_verify(&proof.leaf_hash, proof.leaf_index, proof.tree_size, &changed_root, &proof.audit_path);
        assert_eq!(code, 1, "{text}");
        assert!(text.contains("the proof does not hold"), "{text}");
    }

    let unknown = Hash32([7; 32]);
    let error = node.client().get::<TxProofView>(&format!("/v1/chains/main/txs/{unknown}/proof")).unwrap_err();
    assert!(error.contains("HTTP 404") && error.contains("neither pending nor committed"), "{error}");
    let error = node.client().get::<TxProofView>("/v1/chains/main/txs/not-a-hash/proof").unwrap_err();
    assert!(error.contains("HTTP 400") && error.contains("transaction hash"), "{error}");
}

#[test]
fn a_malformed_command_line_exits_with_2_and_names_the_argument() {
    let root = Hash32([1; 32]).to_hex();
    let output = Command::new(nestd_binary())
        .args(["merkle", "verify", "--leaf-hash", "abc", "--index", "0", "--size", "1", "--root", &root])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--leaf-hash") && stderr.contains("64 hex characters"), "{stderr}");
    let (code, text) = merkle_verify(&Hash32([1; 32]), 0, 1, &Hash32([1; 32]), &[]);
    assert_eq!(code, 0, "a one-leaf tree's root is its leaf hash and its path is empty: {text}");
}
