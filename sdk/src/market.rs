//! Define market policies: how a shelved resource (SKU) is quoted, matched and settled.
//!
//! A policy decides the selling mechanism — a marked price, metering, an auction,
//! cost per purchase. It has two faces:
//!
//! - **local**: [`MarketPolicy::quote`] runs on the quoting node only. It may call the
//!   operator's pricing strategy through [`crate::Host::price`]; its answer enters a
//!   chain only as a value inside a signed transaction (the SKU's [`Terms`]).
//! - **deterministic**: [`MarketPolicy::check_terms`], [`MarketPolicy::clear`] and
//!   [`MarketPolicy::settle`] run inside block application on every node. They are pure
//!   functions of their arguments: integers only, no clock but the `now_ms` given, no
//!   state kept between calls, no configuration read, checked arithmetic.

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

/// Most volume tiers a metered SKU may carry.
pub const TIERS_MAX: usize = 8;
/// Most orders one clearing round may hold.
pub const ROUND_ORDERS_MAX: usize = 256;

/// A request for a price (local: never part of block application).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct QuoteRequest {
    /// The SKU asked for; also the name of its pricing strategy.
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
    /// Price of one unit, in µNEST (the strategy's answer).
    pub unit_price: u64,
    /// Total price for the requested units, in µNEST.
    pub price: u64,
    /// The quote holds until this time, milliseconds since the Unix epoch.
    pub valid_until_ms: u64,
}

/// One volume tier of a metered SKU: from `from_units` on, each unit costs `unit_price`.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tier {
    /// First unit (0-based) the tier applies to.
    pub from_units: u64,
    /// Price of each unit in the tier, in µNEST.
    pub unit_price: u64,
}

/// The selling terms of an SKU, as recorded on chain when it is shelved or updated.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Terms {
    /// Price of one unit, in µNEST.
    pub unit_price: u64,
    /// Lowest unit price an auction clears at, in µNEST (0: none).
    pub reserve_price: u64,
    /// Volume tiers (metering), ordered by `from_units`; empty: `unit_price` for all.
    pub tiers: RVec<Tier>,
    /// How long a lock may wait for delivery (and a usage report for acceptance), in ms.
    pub deadline_ms: u64,
    /// End of the bidding round, ms since the epoch; 0 for a policy that sells at once.
    pub round_end_ms: u64,
}

/// A buyer's order against an SKU: a lock request, or a sealed bid.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Order {
    /// Order id (hash of the transaction that placed it).
    pub id: Hash32,
    /// The buyer's account.
    pub buyer: PublicKey,
    /// Units wanted.
    pub units: u64,
    /// Highest total price the buyer accepts, in µNEST.
    pub max_price: u64,
    /// When the order was placed (block time), milliseconds since the epoch.
    pub placed_at_ms: u64,
}

/// Everything one clearing needs, given explicitly.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Round {
    /// The SKU's terms.
    pub terms: Terms,
    /// Orders to clear, in the order they were placed.
    pub orders: RVec<Order>,
    /// Units the SKU can still sell.
    pub units_available: u64,
    /// Block time of the clearing, milliseconds since the epoch.
    pub now_ms: u64,
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
    /// Total price to lock in escrow, in µNEST.
    pub price: u64,
}

/// The state of a lock when settlement is asked for.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    /// The lock (id of the order it came from).
    pub order_id: Hash32,
    /// Units bought.
    pub units_locked: u64,
    /// Units used, as reported by the provider (0 when not reported).
    pub units_used: u64,
    /// Amount locked in escrow, in µNEST.
    pub escrow: u64,
    /// Whether the provider reported usage (or delivery).
    pub reported: bool,
    /// Whether the buyer confirmed (delivery, the report, or the end use).
    pub confirmed: bool,
    /// When the lock was made (block time), ms since the epoch.
    pub locked_at_ms: u64,
    /// When usage was reported (block time), ms since the epoch; 0 when not reported.
    pub reported_at_ms: u64,
    /// Block time of the settlement, ms since the epoch.
    pub now_ms: u64,
}

/// A market policy, as a vendor writes it.
pub trait MarketPolicy: Send + Sized + 'static {
    /// The policy's configuration (used by [`MarketPolicy::quote`] only).
    type Config: DeserializeOwned;

    /// Checks a parsed configuration beyond its types.
    fn check_config(_config: &Self::Config) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Builds an instance.
    fn new(config: Self::Config, host: Host) -> Result<Self, PluginError>;

    /// Prices a request on this node (may run the operator's strategy).
    fn quote(&mut self, request: QuoteRequest) -> Result<Quote, PluginError>;

    /// Deterministic: whether `terms` are valid for this policy.
    fn check_terms(&self, terms: &Terms) -> Result<(), PluginError>;

    /// Deterministic: matches the orders of a round; each match locks its price.
    fn clear(&self, round: Round) -> Result<Vec<Match>, PluginError>;

    /// Deterministic: the amount the provider receives now (the rest of the escrow is
    /// refunded to the buyer); `Rejected` when the lock cannot be settled yet.
    fn settle(&self, terms: &Terms, usage: Usage) -> Result<u64, PluginError>;
}

/// The FFI face of a market policy instance.
#[sabi_trait]
pub trait MarketFfi: Send {
    /// See [`MarketPolicy::quote`].
    fn quote(&mut self, request: QuoteRequest) -> RResult<Quote, PluginError>;
    /// See [`MarketPolicy::check_terms`].
    fn check_terms(&self, terms: &Terms) -> RResult<(), PluginError>;
    /// See [`MarketPolicy::clear`].
    fn clear(&self, round: Round) -> RResult<RVec<Match>, PluginError>;
    /// See [`MarketPolicy::settle`].
    #[sabi(last_prefix_field)]
    fn settle(&self, terms: &Terms, usage: Usage) -> RResult<u64, PluginError>;
}

/// An owned market policy instance behind the boundary.
pub type MarketBox = MarketFfi_TO<'static, RBox<()>>;

/// Adapts a [`MarketPolicy`] to [`MarketFfi`], catching panics.
pub struct MarketAdapter<M>(pub M);

impl<M: MarketPolicy> MarketFfi for MarketAdapter<M> {
    fn quote(&mut self, request: QuoteRequest) -> RResult<Quote, PluginError> {
        guard(|| self.0.quote(request))
    }
    fn check_terms(&self, terms: &Terms) -> RResult<(), PluginError> {
        guard(|| self.0.check_terms(terms))
    }
    fn clear(&self, round: Round) -> RResult<RVec<Match>, PluginError> {
        guard(|| self.0.clear(round).map(RVec::from))
    }
    fn settle(&self, terms: &Terms, usage: Usage) -> RResult<u64, PluginError> {
        guard(|| self.0.settle(terms, usage))
    }
}

/// Shared rules for policies: quoting, checked unit arithmetic, common term checks and
/// the immediate sale.
pub mod rules {
    use super::{Match, Order, PluginError, Quote, QuoteRequest, Round, TIERS_MAX, Terms, Tier};
    use crate::{config::ConfigError, host::Host};
    use serde::Deserialize;

    /// The `config` table most policies take: how long their quotes hold.
    #[derive(Debug, Clone, Deserialize)]
    #[serde(crate = "serde", deny_unknown_fields)]
    pub struct QuoteConfig {
        /// How long a quote holds, in milliseconds.
        #[serde(default = "default_quote_valid_ms")]
        pub quote_valid_ms: u64,
    }

    fn default_quote_valid_ms() -> u64 {
        60_000
    }

    impl QuoteConfig {
        /// Checks the values beyond their types.
        pub fn check(&self) -> Result<(), ConfigError> {
            if self.quote_valid_ms == 0 {
                return Err(ConfigError::new("quote_valid_ms", "must be positive"));
            }
            Ok(())
        }
    }

    /// Quotes with the SKU's strategy: what most policies keep for their local face.
    pub struct StrategyQuoter {
        host: Host,
        quote_valid_ms: u64,
    }

    impl StrategyQuoter {
        /// A quoter pricing through `host` with quotes valid as `config` says.
        pub fn new(config: QuoteConfig, host: Host) -> Self {
            Self { host, quote_valid_ms: config.quote_valid_ms }
        }

        /// A quote for `units` at the unit price the SKU's strategy answers.
        pub fn quote(&self, request: &QuoteRequest, units: u64) -> Result<Quote, PluginError> {
            strategy_quote(&self.host, request, units, self.quote_valid_ms)
        }
    }

    /// A quote for `units` at the unit price the SKU's strategy answers.
    pub fn strategy_quote(
        host: &Host,
        request: &QuoteRequest,
        units: u64,
        quote_valid_ms: u64,
    ) -> Result<Quote, PluginError> {
        let unit_price = strategy_unit_price(host, request)?;
        let price = total(units, unit_price)?;
        Ok(Quote { unit_price, price, valid_until_ms: valid_until(request, quote_valid_ms) })
    }

    /// Clears an immediate sale: each order, in turn, locks `price_of(order)` if the
    /// units are available and the price is within its maximum; otherwise the reason.
    pub fn clear_immediate(
        round: &Round,
        price_of: impl Fn(&Order, &Terms) -> Result<u64, PluginError>,
    ) -> Result<Vec<Match>, PluginError> {
        let mut available = round.units_available;
        let mut matches = Vec::new();
        for order in round.orders.iter() {
            check_order(order, available)?;
            let price = price_of(order, &round.terms)?;
            if price > order.max_price {
                return Err(PluginError::rejected(format!(
                    "{} units cost {price} µNEST, above the order's maximum of {}",
                    order.units, order.max_price
                )));
            }
            available -= order.units;
            matches.push(Match { order_id: order.id, buyer: order.buyer, units: order.units, price });
        }
        Ok(matches)
    }

    /// The unit price the SKU's pricing strategy (named after the SKU) answers.
    pub fn strategy_unit_price(host: &Host, request: &QuoteRequest) -> Result<u64, PluginError> {
        host.price(&request.sku, &request.context_json)
            .map_err(|error| PluginError::rejected(format!("pricing strategy `{}`: {error}", request.sku)))
    }

    /// The end of a quote's validity.
    pub fn valid_until(request: &QuoteRequest, quote_valid_ms: u64) -> u64 {
        request.now_ms.saturating_add(quote_valid_ms)
    }

    /// `units × unit_price`, or a rejection naming the overflow.
    pub fn total(units: u64, unit_price: u64) -> Result<u64, PluginError> {
        units
            .checked_mul(unit_price)
            .ok_or_else(|| PluginError::rejected(format!("{units} units at {unit_price} µNEST overflow")))
    }

    /// Price of `units` under tiers (each tier from its `from_units` to the next tier's).
    pub fn tiered(units: u64, unit_price: u64, tiers: &[Tier]) -> Result<u64, PluginError> {
        if tiers.is_empty() {
            return total(units, unit_price);
        }
        let mut sum: u64 = 0;
        for (index, tier) in tiers.iter().enumerate() {
            if units <= tier.from_units {
                break;
            }
            let end = tiers.get(index + 1).map_or(units, |next| next.from_units.min(units));
            let in_tier = end - tier.from_units;
            sum = sum
                .checked_add(total(in_tier, tier.unit_price)?)
                .ok_or_else(|| PluginError::rejected("tiered price overflows"))?;
        }
        Ok(sum)
    }

    /// Checks tiers: at most [`TIERS_MAX`], the first from 0, strictly increasing.
    pub fn check_tiers(tiers: &[Tier]) -> Result<(), PluginError> {
        if tiers.len() > TIERS_MAX {
            return Err(PluginError::rejected(format!("{} tiers, at most {TIERS_MAX}", tiers.len())));
        }
        if let Some(first) = tiers.first()
            && first.from_units != 0
        {
            return Err(PluginError::rejected("the first tier must start at unit 0"));
        }
        if tiers.windows(2).any(|pair| pair[1].from_units <= pair[0].from_units) {
            return Err(PluginError::rejected("tiers must start at strictly increasing units"));
        }
        Ok(())
    }

    /// Checks what every immediate-sale policy needs: no round, no tiers, a deadline.
    pub fn check_immediate(terms: &Terms) -> Result<(), PluginError> {
        if terms.round_end_ms != 0 {
            return Err(PluginError::rejected("this policy sells at once: round_end_ms must be 0"));
        }
        if terms.deadline_ms == 0 {
            return Err(PluginError::rejected("deadline_ms must be positive"));
        }
        Ok(())
    }

    /// Checks flat immediate terms: no round, a deadline, no tiers.
    pub fn check_flat(terms: &Terms) -> Result<(), PluginError> {
        check_immediate(terms)?;
        if !terms.tiers.is_empty() {
            return Err(PluginError::rejected("this policy sells at one unit price: no tiers"));
        }
        Ok(())
    }

    /// Clears an immediate sale at `units × unit_price` per order.
    pub fn clear_flat(round: &Round) -> Result<Vec<Match>, PluginError> {
        clear_immediate(round, |order, terms| total(order.units, terms.unit_price))
    }

    /// The units of one order an immediate sale can serve, or a rejection.
    pub fn check_order(order: &Order, units_available: u64) -> Result<(), PluginError> {
        if order.units == 0 {
            return Err(PluginError::rejected("an order must ask for at least one unit"));
        }
        if order.units > units_available {
            return Err(PluginError::rejected(format!("{} units asked, {units_available} available", order.units)));
        }
        Ok(())
    }
}
