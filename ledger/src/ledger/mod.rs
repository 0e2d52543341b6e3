//! Keep accounts, verify and apply transactions, compute state digests.
//!
//! - [`tx`]: transactions, their encoding, signing hash, id and rejection reasons.
//! - [`verify`]: signature checks spread over the cores, and the cache of checked ids.
//! - [`mempool`]: pending transactions, bounded, ordered by nonce per account.
//! - [`state`]: accounts and records, block execution and the incremental state digest.
//! - [`exec`]: the layered view one transaction executes on ([`exec::TxContext`]).
//! - [`market`]: resource-market transactions: SKUs, bids, escrow, settlement.
//! - [`device`]: device registration, ownership, revocation and reading anchors.
//! - [`merkle`]: transaction roots and inclusion proofs for light clients.
//! - [`evidence`]: validators' conflicting votes recorded on chain, once per offence.
//! - [`validators`]: validator sets with voting power, as ledger records per height.
//! - [`staking`]: stakes, delegates and approval votes weighted by stake (DPoS).
//! - [`rounds`]: DPoS rounds: each round's delegates, chosen two rounds ahead.
//! - [`poio`]: Proof-of-i/o: proven uptime, verification and storage, paid from a cap.
//!
//! Everything here is a pure function of its inputs: no I/O, no clock, no randomness.

pub mod device;
pub mod evidence;
pub mod exec;
pub mod market;
pub mod mempool;
pub mod merkle;
pub mod poio;
pub mod rounds;
pub mod staking;
pub mod state;
#[cfg(test)]
pub(crate) mod test_chain;
pub mod tx;
pub mod validators;
pub mod verify;

pub use mempool::Mempool;
pub use state::{Account, BlockEnv, BlockOutcome, ChainParams, Changes, GenesisError, Ledger};
pub use tx::{SignedTx, TxBody, TxError, UnsignedTx};
pub use verify::{VerifiedCache, verify_batch};
