//! Answer staking queries from a chain's committed ledger: the ranked delegates and an
//! account's stake and votes (see `ledger::staking`).

use super::{LoopState, QueryError};
use crate::ledger::staking::{self, DelegateView, Staker};
use nest_sdk::PublicKey;
use serde::Serialize;

/// A staking query.
#[derive(Debug)]
pub enum StakingOp {
    /// Every delegate with its votes, most votes first (ties by account key).
    Delegates {
        /// Chain id.
        chain: String,
    },
    /// An account's bonded stake, unbonding amounts and votes.
    Account {
        /// Chain id.
        chain: String,
        /// The account.
        account: PublicKey,
    },
}

/// The ranked delegates of a chain at its committed height.
#[derive(Debug, Serialize)]
pub struct DelegatesView {
    /// Chain id.
    pub chain: String,
    /// Height of the committed state they come from.
    pub height: u64,
    /// The delegates, most votes first.
    pub delegates: Vec<DelegateView>,
}

/// An account's staking state at a chain's committed height.
#[derive(Debug, Serialize)]
pub struct StakerView {
    /// The account.
    pub account: PublicKey,
    /// Height of the committed state it comes from.
    pub height: u64,
    /// Its stake and votes.
    #[serde(flatten)]
    pub staker: Staker,
}

impl LoopState {
    /// Answers a staking query as JSON.
    pub(super) fn staking_op(&mut self, op: StakingOp) -> Result<serde_json::Value, QueryError> {
        match op {
            StakingOp::Delegates { chain } => {
                let runtime = self.chain(&chain)?;
                let ledger = runtime.ledger();
                let delegates = staking::delegates(|prefix| {
                    ledger.records_with_prefix(prefix).map(|(key, value)| (key.to_vec(), value.to_vec())).collect()
                });
                to_json(&DelegatesView { chain, height: runtime.committed_height(), delegates })
            }
            StakingOp::Account { chain, account } => {
                let runtime = self.chain(&chain)?;
                let ledger = runtime.ledger();
                let staker = staking::staker_of(|key| ledger.record(key).map(<[u8]>::to_vec), &account);
                to_json(&StakerView { account, height: runtime.committed_height(), staker })
            }
        }
    }
}

fn to_json(value: &impl Serialize) -> Result<serde_json::Value, QueryError> {
    serde_json::to_value(value).map_err(|e| QueryError::Failed(e.to_string()))
}
