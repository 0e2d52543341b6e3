use super::*;
use nest_ledger::ledger::state::BlockEnv;
use nest_ledger::ledger::{ChainParams, Ledger, SignedTx, TxBody, UnsignedTx};
use nest_sdk::Signature;

fn key(byte: u8) -> PublicKey {
    PublicKey([byte; 32])
}

fn block(height: u64) -> StoredBlock {
    StoredBlock {
        height,
        hash: Hash32([height as u8 + 100; 32]),
        unit: vec![height as u8; 10],
        certificate: vec![0xce, height as u8],
        finality: vec![0xf1, height as u8, 7],
    }
}

#[test]
fn a_block_stored_before_finality_proofs_decodes_with_none() {
    #[derive(BorshSerialize)]
    struct OldBlock {
        height: u64,
        hash: Hash32,
        unit: Vec<u8>,
        certificate: Vec<u8>,
    }
    let old = OldBlock { height: 3, hash: Hash32([3; 32]), unit: vec![1, 2], certificate: vec![9] };
    let decoded: StoredBlock = borsh::from_slice(&borsh::to_vec(&old).unwrap()).unwrap();
    assert_eq!(decoded.finality, Vec::<u8>::new());
    assert_eq!((decoded.height, decoded.unit, decoded.certificate), (3, vec![1, 2], vec![9]));
    let new = block(4);
    assert_eq!(borsh::from_slice::<StoredBlock>(&borsh::to_vec(&new).unwrap()).unwrap(), new);
}

fn head_of(block: &StoredBlock, state_digest: Hash32) -> ChainHead {
    ChainHead { height: block.height, hash: block.hash, timestamp_ms: 1_000 * block.height, state_digest }
}

fn transfer(from: u8, to: u8, nonce: u64) -> SignedTx {
    SignedTx {
        tx: UnsignedTx {
            chain: Hash32([7; 32]),
            from: key(from),
            nonce,
            fee: 1_000,
            body: TxBody::Transfer { to: key(to), amount: 250 },
        },
        signature: Signature::default(),
    }
}

#[test]
fn committed_blocks_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let params = ChainParams { chain: Hash32([7; 32]), gas_price: 1 };
    let mut ledger = Ledger::genesis(&[(key(1), 100_000)]).unwrap();
    let mut tx_ids = Vec::new();
    {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.head("main").unwrap(), None);
        for height in 1..=3u64 {
            let txs = [transfer(1, 2, 2 * (height - 1)), transfer(1, 3, 2 * height - 1)];
            let outcome = ledger.execute(
                &txs,
                &BlockEnv { height: 1, parent: Hash32::ZERO, time_ms: 0, proposer: key(9) },
                &params,
                true,
            );
            assert!(outcome.rejected.is_empty());
            let hashes: Vec<Hash32> = txs.iter().map(SignedTx::hash).collect();
            let block = block(height);
            let head = head_of(&block, outcome.state_digest);
            store.commit_block("main", &block, &hashes, &outcome.changes, &head).unwrap();
            ledger.commit(&outcome.changes);
            tx_ids.push(hashes);
        }
    }
    let store = Store::open(dir.path()).unwrap();
    let head = store.head("main").unwrap().unwrap();
    assert_eq!(head, head_of(&block(3), ledger.state_digest()));
    let restored = Ledger::from_accounts(store.accounts("main").unwrap());
    assert_eq!(restored.state_digest(), head.state_digest);
    assert_eq!(restored.account(&key(9)).balance, 6_000);
    for height in 1..=3u64 {
        assert_eq!(store.block_by_height("main", height).unwrap(), Some(block(height)));
        assert_eq!(store.block_by_hash("main", &block(height).hash).unwrap(), Some(block(height)));
        for (index, id) in tx_ids[height as usize - 1].iter().enumerate() {
            assert_eq!(store.tx_location("main", id).unwrap(), Some((height, index as u32)));
        }
    }
    assert_eq!(store.block_by_height("main", 4).unwrap(), None);
    assert_eq!(store.block_by_hash("main", &Hash32([1; 32])).unwrap(), None);
    assert_eq!(store.tx_location("main", &Hash32([1; 32])).unwrap(), None);
}

#[test]
fn consensus_and_meta_values_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.put_consensus("main", b"vote/5", b"signed").unwrap();
        store.put_meta("node_id", b"abc").unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.get_consensus("main", b"vote/5").unwrap(), Some(b"signed".to_vec()));
    assert_eq!(store.get_consensus("main", b"vote/6").unwrap(), None);
    assert_eq!(store.get_meta("node_id").unwrap(), Some(b"abc".to_vec()));
    assert_eq!(store.get_meta("other").unwrap(), None);
}

#[test]
fn chains_do_not_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let changes: Changes = [(key(1), Account { balance: 5, nonce: 0 })].into();
    let block = block(1);
    store.commit_block("a", &block, &[Hash32([3; 32])], &changes, &head_of(&block, Hash32::ZERO)).unwrap();
    assert_eq!(store.head("b").unwrap(), None);
    assert!(store.accounts("b").unwrap().is_empty());
    assert_eq!(store.block_by_height("b", 1).unwrap(), None);
    assert_eq!(store.block_by_hash("b", &block.hash).unwrap(), None);
    assert_eq!(store.tx_location("b", &Hash32([3; 32])).unwrap(), None);
    // Length prefixes keep "a" + "bc" apart from "ab" + "c".
    store.put_consensus("a", b"bc", b"1").unwrap();
    assert_eq!(store.get_consensus("ab", b"c").unwrap(), None);
    assert_eq!(store.get_consensus("a", b"bc").unwrap(), Some(b"1".to_vec()));
}

#[test]
fn emptied_account_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for (height, balance) in [(1, 5), (2, 0)] {
        let changes: Changes = [(key(1), Account { balance, nonce: 0 })].into();
        let block = block(height);
        let head = head_of(&block, Hash32::ZERO);
        store.commit_block("c", &block, &[], &changes, &head).unwrap();
    }
    assert!(store.accounts("c").unwrap().is_empty());
}

#[test]
fn corrupt_values_give_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let prefix = chain_prefix("main").unwrap();
    store.state.insert(tagged(&prefix, TAG_HEAD, &[]), b"garbage".to_vec()).unwrap();
    let error = store.head("main").unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { what: "chain head", .. }));
    let message = error.to_string();
    assert!(message.contains(&dir.path().display().to_string()) && message.contains("corrupt chain head"), "{message}");
    store.state.insert(tagged(&prefix, TAG_ACCOUNT, &[1; 32]), vec![1, 2, 3]).unwrap();
    assert!(matches!(store.accounts("main").unwrap_err(), StoreError::Corrupt { what: "account", .. }));
    store.state.insert(tagged(&prefix, TAG_ACCOUNT, &[1; 5]), vec![0; 16]).unwrap();
    assert!(matches!(store.accounts("main").unwrap_err(), StoreError::Corrupt { what: "account key", .. }));
    store.blocks.insert(block_key(&prefix, 4), encode(&block(5))).unwrap();
    assert!(matches!(store.block_by_height("main", 4).unwrap_err(), StoreError::Corrupt { what: "block", .. }));
    store.txindex.insert(joined(&prefix, &[2; 32]), vec![0xff; 3]).unwrap();
    assert!(matches!(store.tx_location("main", &Hash32([2; 32])).unwrap_err(), StoreError::Corrupt { .. }));
}

#[test]
fn mismatched_head_and_long_chain_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let head = head_of(&block(2), Hash32::ZERO);
    assert!(matches!(
        store.commit_block("main", &block(1), &[], &Changes::new(), &head),
        Err(StoreError::HeadMismatch { height: 1, head_height: 2, .. })
    ));
    assert_eq!(store.head("main").unwrap(), None, "nothing written");
    let long = "x".repeat(CHAIN_ID_BYTES_MAX + 1);
    assert!(matches!(store.head(&long), Err(StoreError::ChainIdTooLong { size_bytes: 256, max_bytes: 255 })));
    assert!(store.head(&"x".repeat(CHAIN_ID_BYTES_MAX)).is_ok());
}

#[test]
fn records_are_written_deleted_and_read_back_per_chain() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut changes = Changes::new();
    changes.records.insert(b"market/lock/1".to_vec(), Some(vec![1, 2]));
    changes.records.insert(b"device/a".to_vec(), Some(vec![3]));
    let first = block(1);
    store.commit_block("main", &first, &[], &changes, &head_of(&first, Hash32::ZERO)).unwrap();
    let mut deletion = Changes::new();
    deletion.records.insert(b"market/lock/1".to_vec(), None);
    let second = block(2);
    store.commit_block("main", &second, &[], &deletion, &head_of(&second, Hash32::ZERO)).unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.records("main").unwrap(), vec![(b"device/a".to_vec(), vec![3])]);
    assert!(store.records("other").unwrap().is_empty());
}

#[test]
fn pruned_blocks_are_gone_by_height_and_hash_and_the_rest_stay() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for height in 0..=5u64 {
        let block = block(height);
        store.commit_block("main", &block, &[], &Changes::new(), &head_of(&block, Hash32::ZERO)).unwrap();
    }
    assert_eq!(store.prune_blocks("main", 1, 4).unwrap(), 3);
    for height in 1..4u64 {
        assert_eq!(store.block_by_height("main", height).unwrap(), None, "height {height}");
        assert_eq!(store.block_by_hash("main", &block(height).hash).unwrap(), None, "height {height}");
    }
    for height in [0, 4, 5] {
        assert_eq!(store.block_by_height("main", height).unwrap(), Some(block(height)));
    }
    // Pruning again finds nothing left to delete, and the head is untouched.
    assert_eq!(store.prune_blocks("main", 1, 4).unwrap(), 0);
    assert_eq!(store.head("main").unwrap().map(|head| head.height), Some(5));
}
