//! Sell per measured use: a Nest market policy for time- or volume-metered resources.
//!
//! The operator's strategy prices one unit of use (a second, a megabyte); the SKU may add
//! volume tiers. A buyer locks the price of the most units it may use; the provider
//! reports the units used; the buyer accepts the report, or it is accepted by the
//! timeout rule once the lock's deadline passes. The provider receives the tiered price
//! of the units used (at most the escrow); the rest returns to the buyer.

use nest_sdk::market::rules::{self, QuoteConfig, StrategyQuoter};
use nest_sdk::{ConfigError, Host, MarketPolicy, Match, PluginError, Quote, QuoteRequest, Round, Terms, Usage};

/// The metering policy.
pub struct Metering {
    quoter: StrategyQuoter,
}

impl MarketPolicy for Metering {
    type Config = QuoteConfig;

    fn check_config(config: &QuoteConfig) -> Result<(), ConfigError> {
        config.check()
    }

    fn new(config: QuoteConfig, host: Host) -> Result<Self, PluginError> {
        Ok(Self { quoter: StrategyQuoter::new(config, host) })
    }

    fn quote(&mut self, request: QuoteRequest) -> Result<Quote, PluginError> {
        // Time-metered requests price their duration; volume requests their units.
        let units = if request.duration_s > 0 { request.duration_s } else { request.units };
        self.quoter.quote(&request, units)
    }

    fn check_terms(&self, terms: &Terms) -> Result<(), PluginError> {
        rules::check_immediate(terms)?;
        rules::check_tiers(&terms.tiers)
    }

    fn clear(&self, round: Round) -> Result<Vec<Match>, PluginError> {
        // The lock covers the most units the buyer may use, at tier prices.
        rules::clear_immediate(&round, |order, terms| rules::tiered(order.units, terms.unit_price, &terms.tiers))
    }

    fn settle(&self, terms: &Terms, usage: Usage) -> Result<u64, PluginError> {
        if !usage.reported {
            return Err(PluginError::rejected("no usage reported yet"));
        }
        let accepted_by_timeout = usage.now_ms >= usage.locked_at_ms.saturating_add(terms.deadline_ms);
        if !usage.confirmed && !accepted_by_timeout {
            return Err(PluginError::rejected("the buyer has not accepted the report and its deadline has not passed"));
        }
        let used = usage.units_used.min(usage.units_locked);
        Ok(rules::tiered(used, terms.unit_price, &terms.tiers)?.min(usage.escrow))
    }
}

nest_sdk::export_plugin! {
    name: "market-metering",
    vendor: "Nest",
    description: "Market policy: pay per measured use, with volume tiers, from usage reports.",
    market: Metering,
}

#[cfg(test)]
mod tests;
