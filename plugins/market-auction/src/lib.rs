//! Sell a lot by sealed-bid auction: a Nest market policy.
//!
//! Bids are collected (each locks its maximum in escrow) until the round ends. At the
//! first clearing after the end, the lot — every unit the SKU still offers — goes to the
//! highest valid bid at the second-highest bid's price, never below the reserve
//! (`reserve_price × units`). Ties go to the earlier bid, then the smaller order id, so
//! every node picks the same winner. The operator's strategy prices the reserve.

use nest_sdk::market::rules::{self, QuoteConfig, StrategyQuoter};
use nest_sdk::{ConfigError, Host, MarketPolicy, Match, Order, PluginError, Quote, QuoteRequest, Round, Terms, Usage};
use std::cmp::Reverse;

/// The auction policy.
pub struct Auction {
    quoter: StrategyQuoter,
}

/// The order in which bids win: highest price, then earliest, then smallest id.
fn rank(order: &Order) -> (Reverse<u64>, u64, [u8; 32]) {
    (Reverse(order.max_price), order.placed_at_ms, order.id.0)
}

impl MarketPolicy for Auction {
    type Config = QuoteConfig;

    fn check_config(config: &QuoteConfig) -> Result<(), ConfigError> {
        config.check()
    }

    fn new(config: QuoteConfig, host: Host) -> Result<Self, PluginError> {
        Ok(Self { quoter: StrategyQuoter::new(config, host) })
    }

    fn quote(&mut self, request: QuoteRequest) -> Result<Quote, PluginError> {
        self.quoter.quote(&request, request.units)
    }

    fn check_terms(&self, terms: &Terms) -> Result<(), PluginError> {
        if terms.round_end_ms == 0 {
            return Err(PluginError::rejected("an auction needs round_end_ms"));
        }
        if terms.deadline_ms == 0 {
            return Err(PluginError::rejected("deadline_ms must be positive"));
        }
        if !terms.tiers.is_empty() {
            return Err(PluginError::rejected("an auction has no tiers"));
        }
        Ok(())
    }

    fn clear(&self, round: Round) -> Result<Vec<Match>, PluginError> {
        if round.now_ms < round.terms.round_end_ms {
            return Err(PluginError::rejected(format!("the round is open until {} ms", round.terms.round_end_ms)));
        }
        let lot_units = round.units_available;
        let reserve = rules::total(lot_units, round.terms.reserve_price)?;
        let mut valid: Vec<&Order> =
            round.orders.iter().filter(|o| o.units == lot_units && o.max_price >= reserve && lot_units > 0).collect();
        valid.sort_by_key(|order| rank(order));
        let Some(winner) = valid.first() else { return Ok(Vec::new()) };
        let price = valid.get(1).map_or(reserve, |second| second.max_price.max(reserve));
        Ok(vec![Match { order_id: winner.id, buyer: winner.buyer, units: lot_units, price }])
    }

    fn settle(&self, _terms: &Terms, usage: Usage) -> Result<u64, PluginError> {
        if usage.reported || usage.confirmed {
            Ok(usage.escrow)
        } else {
            Err(PluginError::rejected("delivery is neither reported by the provider nor confirmed by the buyer"))
        }
    }
}

nest_sdk::export_plugin! {
    name: "market-auction",
    vendor: "Nest",
    description: "Market policy: sealed-bid second-price auction with a reserve price.",
    market: Auction,
}

#[cfg(test)]
mod tests;
