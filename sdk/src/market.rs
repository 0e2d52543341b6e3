//! Market policies: how a shelved resource (SKU) is priced, matched and settled.
//!
//! A policy decides the selling mechanism — a marked price, metering, an auction,
//! cost per purchase. The number itself comes from the operator's pricing strategy,
//! which the policy runs through [`crate::Host::price`]. Matching and settlement enter
//! the chain, so they must be deterministic: integers only, no clock but `now_ms` given.

use crate::{
    config::ConfigError,
    error::PluginError,
    export::guard,
    host::Host,
    types::{Hash32, PublicKey},
};
use abi_stable::{
    StableAbi, sabi_trait,
    std_types::{RBox, RResult, RString, RVec},
};
use serde::de::DeserializeOwned;

/// A request for a price.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct QuoteRequest {
    /// The SKU asked for.
    pub sku: RString,
    /// How many units.
    pub units: u64,
    /// For how long, in seconds (0 when the SKU is not time-based).
    pub duration_s: u64,
    /// Time of the request, milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// Further context for the strategy (utilization, demand rate, history) as JSON.
    pub context_json: RString,
}

/// A price offered for a request.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// Total price in the chain's smallest token unit.
    pub price: u64,
    /// The quote holds until this time, milliseconds since the Unix epoch.
    pub valid_until_ms: u64,
}

/// A demand or bid for an SKU.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Order {
    /// Order id (hash of the transaction that placed it).
    pub id: Hash32,
    /// The SKU.
    pub sku: RString,
    /// The buyer's account.
    pub buyer: PublicKey,
    /// Units wanted.
    pub units: u64,
    /// Highest total price the buyer accepts.
    pub max_price: u64,
    /// When the order was placed, milliseconds since the Unix epoch.
    pub placed_at_ms: u64,
}

/// An order matched at a price.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// The order.
    pub order_id: Hash32,
    /// The buyer's account.
    pub buyer: PublicKey,
    /// Units sold.
    pub units: u64,
    /// Total price to lock in escrow.
    pub price: u64,
}

/// Usage reported for a matched order.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    /// The order.
    pub order_id: Hash32,
    /// Units actually used (seconds, bytes, ...).
    pub units_used: u64,
    /// Amount locked in escrow for the order.
    pub escrow: u64,
}

/// A market policy, as a vendor writes it.
pub trait MarketPolicy: Send + Sized + 'static {
    /// The policy's configuration.
    type Config: DeserializeOwned;

    /// Checks a parsed configuration beyond its types.
    fn check_config(_config: &Self::Config) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Builds an instance.
    fn new(config: Self::Config, host: Host) -> Result<Self, PluginError>;

    /// Prices a request.
    fn quote(&mut self, request: QuoteRequest) -> Result<Quote, PluginError>;

    /// Takes an order into the book.
    fn bid(&mut self, order: Order) -> Result<(), PluginError>;

    /// Matches the book at `now_ms`.
    fn clear(&mut self, now_ms: u64) -> Result<Vec<Match>, PluginError>;

    /// Computes the amount the seller receives for reported usage (the rest is refunded).
    fn settle(&mut self, usage: Usage) -> Result<u64, PluginError>;
}

/// The FFI face of a market policy instance.
#[sabi_trait]
pub trait MarketFfi: Send {
    /// See [`MarketPolicy::quote`].
    fn quote(&mut self, request: QuoteRequest) -> RResult<Quote, PluginError>;
    /// See [`MarketPolicy::bid`].
    fn bid(&mut self, order: Order) -> RResult<(), PluginError>;
    /// See [`MarketPolicy::clear`].
    fn clear(&mut self, now_ms: u64) -> RResult<RVec<Match>, PluginError>;
    /// See [`MarketPolicy::settle`].
    #[sabi(last_prefix_field)]
    fn settle(&mut self, usage: Usage) -> RResult<u64, PluginError>;
}

/// An owned market policy instance behind the boundary.
pub type MarketBox = MarketFfi_TO<'static, RBox<()>>;

/// Adapts a [`MarketPolicy`] to [`MarketFfi`], catching panics.
pub struct MarketAdapter<M>(pub M);

impl<M: MarketPolicy> MarketFfi for MarketAdapter<M> {
    fn quote(&mut self, request: QuoteRequest) -> RResult<Quote, PluginError> {
        guard(|| self.0.quote(request))
    }
    fn bid(&mut self, order: Order) -> RResult<(), PluginError> {
        guard(|| self.0.bid(order))
    }
    fn clear(&mut self, now_ms: u64) -> RResult<RVec<Match>, PluginError> {
        guard(|| self.0.clear(now_ms).map(RVec::from))
    }
    fn settle(&mut self, usage: Usage) -> RResult<u64, PluginError> {
        guard(|| self.0.settle(usage))
    }
}
