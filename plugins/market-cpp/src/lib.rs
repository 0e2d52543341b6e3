//! Charge per purchase, paid only on the buyer's confirmation: a Nest market policy.
//!
//! Cost per purchase: the buyer locks the price of the purchase; nothing reaches the
//! provider until the buyer confirms the end use (a parking spot taken, a sensor feed
//! consumed). A provider's report does not count. Unconfirmed locks are refunded to the
//! buyer after the SKU's deadline (the ledger's rule, since `settle` refuses them).

use nest_sdk::market::rules::{self, QuoteConfig, StrategyQuoter};
use nest_sdk::{ConfigError, Host, MarketPolicy, Match, PluginError, Quote, QuoteRequest, Round, Terms, Usage};

/// The cost-per-purchase policy.
pub struct CostPerPurchase {
    quoter: StrategyQuoter,
}

impl MarketPolicy for CostPerPurchase {
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
        if usage.confirmed {
            Ok(usage.escrow)
        } else {
            Err(PluginError::rejected("the buyer has not confirmed the purchase"))
        }
    }
}

nest_sdk::export_plugin! {
    name: "market-cpp",
    vendor: "Nest",
    description: "Market policy: cost per purchase, paid only when the buyer confirms the end use.",
    market: CostPerPurchase,
}

#[cfg(test)]
mod tests;
