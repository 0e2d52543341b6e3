//! Run the node's side of the resource market: pricing strategies, quotes, the API.
//!
//! Chain state of the market (SKUs, orders, escrow) lives in `ledger::market`; what is
//! here is node-local: the operator's Lua pricing strategies ([`strategy`]), quoting
//! through the market policy plugins, and the routes and console bindings over them.
//! See `docs/adr/0005-market.md`.

pub mod strategy;

pub use strategy::{PricingContext, SharedStrategies, Strategies, StrategyError};

use serde::{Deserialize, Serialize};

/// Points of a utilization chart (the console's text chart).
pub const CHART_POINTS_MAX: usize = 101;

/// A market operation the node loop performs (from the API or the console).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
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
        #[serde(default)]
        sku: Option<String>,
    },
    /// A quote through the SKU's policy and strategy, without trading.
    Quote {
        /// SKU id.
        sku: String,
        /// The strategy's context.
        #[serde(default)]
        context: PricingContext,
    },
    /// The strategy's unit price at `points` utilizations from 0 to 1.
    Chart {
        /// SKU id.
        sku: String,
        /// Number of points, 2 to [`CHART_POINTS_MAX`].
        points: usize,
        /// The rest of the context.
        #[serde(default)]
        context: PricingContext,
    },
}
