//! A ledger that executes one transaction per block, for the body modules' tests.

use super::state::{BlockEnv, BlockOutcome, ChainParams, Ledger};
use super::tx::{SignedTx, TxBody, TxError, UnsignedTx, gas_of};
use nest_sdk::{Hash32, PublicKey, Signature};
use std::collections::BTreeMap;

/// The chain every test chain names.
pub const CHAIN: Hash32 = Hash32([7; 32]);
/// One token per unit of gas.
pub const PARAMS: ChainParams = ChainParams { chain: CHAIN, gas_price: 1 };

/// Funded accounts, their nonces and the height; every block checks that the state
/// digest it computed is the one the committed state has.
pub struct TestChain {
    /// The state.
    pub ledger: Ledger,
    /// Height of the last block.
    pub height: u64,
    proposer: PublicKey,
    nonces: BTreeMap<PublicKey, u64>,
    /// Block hashes by height: SHA-256 of the height and the state digest it reached.
    hashes: Vec<Hash32>,
    /// The transactions each block applied, by height (genesis: none).
    pub blocks: Vec<Vec<SignedTx>>,
}

impl TestChain {
    /// A chain whose genesis funds `funded`; `proposer` seals (and earns the fees of) every block.
    pub fn new(funded: &[(PublicKey, u64)], proposer: PublicKey) -> TestChain {
        TestChain::from_genesis(Ledger::genesis(funded).unwrap(), proposer)
    }

    /// A chain from a genesis state built by the test (records of its own).
    pub fn from_genesis(ledger: Ledger, proposer: PublicKey) -> TestChain {
        TestChain {
            ledger,
            height: 0,
            proposer,
            nonces: BTreeMap::new(),
            hashes: vec![Hash32([0xC0; 32])],
            blocks: vec![Vec::new()],
        }
    }

    /// The hash the test chain gives block `height` (genesis is 0): every block's differs.
    pub fn hash_at(&self, height: u64) -> Hash32 {
        self.hashes[height as usize]
    }

    /// Executes `body` from `from`, paying its gas, in a block of its own; the reason if
    /// refused (a refused transaction changes nothing).
    pub fn run(&mut self, from: PublicKey, body: TxBody) -> Result<(), TxError> {
        let tx = self.tx(from, body);
        let outcome = self.block(&[tx]);
        match outcome.rejected.into_iter().next() {
            Some((_, error)) => Err(error),
            None => {
                *self.nonces.entry(from).or_default() += 1;
                Ok(())
            }
        }
    }

    /// `body` from `from` with its next nonce and its gas as fee (unsigned: execution
    /// does not check signatures). The nonce advances only once a block applies it
    /// through [`TestChain::run`].
    pub fn tx(&self, from: PublicKey, body: TxBody) -> SignedTx {
        let fee = gas_of(&body);
        let nonce = *self.nonces.get(&from).unwrap_or(&0);
        SignedTx { tx: UnsignedTx { chain: CHAIN, from, nonce, fee, body }, signature: Signature::default() }
    }

    /// Empty blocks until `height`.
    pub fn advance_to(&mut self, height: u64) {
        while self.height < height {
            self.block(&[]);
        }
    }

    /// Executes `txs` in one block; what it applied and refused.
    pub fn block(&mut self, txs: &[SignedTx]) -> BlockOutcome {
        self.height += 1;
        let parent = *self.hashes.last().expect("genesis hash");
        let env = BlockEnv { height: self.height, parent, time_ms: 1_000 * self.height, proposer: self.proposer };
        let outcome = self.ledger.execute(txs, &env, &PARAMS, false);
        self.ledger.commit(&outcome.changes);
        assert_eq!(self.ledger.state_digest(), outcome.state_digest);
        self.hashes.push(crate::crypto::sha256_parts(&[&self.height.to_be_bytes(), &outcome.state_digest.0]));
        self.blocks.push(outcome.applied.iter().map(|index| txs[*index].clone()).collect());
        outcome
    }
}
