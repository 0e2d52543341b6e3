//! Sell at the marked price per unit: a Nest market policy.
//!
//! The operator's strategy marks the unit price; a buyer locks `units × unit_price` in
//! escrow; once the provider reports delivery (or the buyer confirms it) the whole
//! escrow goes to the provider. Unreported, unconfirmed locks are refunded after the
//! SKU's deadline (the ledger's rule).

use nest_sdk::market::rules::{self, QuoteConfig, StrategyQuoter};
use nest_sdk::{ConfigError, Host, MarketPolicy, Match, PluginError, Quote, QuoteRequest, Round, Terms, Usage};

/// The price-tag policy.
pub struct PriceTag {
    quoter: StrategyQuoter,
}

impl MarketPolicy for PriceTag {
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
        rules::check_flat(terms)
    }

    fn clear(&self, round: Round) -> Result<Vec<Match>, PluginError> {
        rules::clear_flat(&round)
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
    name: "market-price-tag",
    vendor: "Nest",
    description: "Market policy: pay the marked price per unit.",
    market: PriceTag,
}

#[cfg(test)]
mod tests;
