//! Run the node's side of the resource market: pricing strategies, quotes, the API.
//!
//! Chain state of the market (SKUs, orders, escrow) lives in `ledger::market`; what is
//! here is node-local: the operator's Lua pricing strategies ([`strategy`]), quoting
//! through the market policy plugins, and the routes and console bindings over them.
//! See `docs/adr/0005-market.md`.

pub mod strategy;

pub use strategy::{PricingContext, SharedStrategies, Strategies, StrategyError};

/// Points of a utilization chart (the console's text chart).
pub const CHART_POINTS_MAX: usize = 101;

/// A market operation the node loop performs (from the API or the console).
#[derive(Clone, Debug, PartialEq)]
pub enum MarketOp {
    /// Install a new strategy version for an SKU (it becomes active if it works).
    InstallStrategy {
        /// SKU id.
        sku: String,
        /// Lua source returning the strategy function.
        source: String,
    },
    /// Make an earlier version active.
    Rollback {
        /// SKU id.
        sku: String,
        /// Version to restore.
        version: u32,
    },
    /// Every SKU with a strategy (no `sku`) or one SKU's versions.
    Strategies {
        /// SKU id.
        sku: Option<String>,
    },
    /// A quote through the SKU's policy and strategy, without trading.
    Quote {
        /// SKU id.
        sku: String,
        /// The policy plugin to quote with, for an SKU not shelved yet.
        policy: Option<String>,
        /// The strategy's context.
        context: PricingContext,
    },
    /// Submit a signed market transaction after a dry run on the committed state: a
    /// transaction the market would refuse is answered with the reason, not queued.
    Submit {
        /// Chain id.
        chain: String,
        /// The transaction.
        tx: Box<crate::ledger::SignedTx>,
    },
    /// Every shelved SKU of a chain.
    Skus {
        /// Chain id.
        chain: String,
    },
    /// One SKU with its open bids and locks (its order book) and recent prices.
    Book {
        /// Chain id.
        chain: String,
        /// SKU id.
        sku: String,
    },
    /// Every posted demand of a chain.
    Demands {
        /// Chain id.
        chain: String,
    },
    /// Open locks of a chain, all or those where `party` is provider or buyer.
    Locks {
        /// Chain id.
        chain: String,
        /// Filter by party.
        party: Option<nest_sdk::PublicKey>,
    },
    /// The strategy's unit price at `points` utilizations from 0 to 1.
    Chart {
        /// SKU id.
        sku: String,
        /// Number of points, 2 to [`CHART_POINTS_MAX`].
        points: usize,
        /// The rest of the context.
        context: PricingContext,
    },
}
