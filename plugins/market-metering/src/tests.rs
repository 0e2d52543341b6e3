use super::*;
use nest_sdk::Tier;
use nest_sdk::testing::{LocalHost, market::*};

fn policy(host: &LocalHost) -> Metering {
    Metering::new(QuoteConfig { quote_valid_ms: 1_000 }, host.host()).unwrap()
}

fn tiered_terms() -> Terms {
    let mut terms = terms(10);
    terms.tiers = vec![Tier { from_units: 0, unit_price: 10 }, Tier { from_units: 100, unit_price: 5 }].into();
    terms
}

#[test]
fn time_metered_quote_prices_the_duration() {
    let host = LocalHost::from_seed([2; 32]);
    host.set_price("wifi", 3);
    let mut request = request("wifi", 1);
    request.duration_s = 600;
    assert_eq!(policy(&host).quote(request).unwrap().price, 1_800);
}

#[test]
fn lock_covers_the_most_units_at_tier_prices() {
    let host = LocalHost::from_seed([2; 32]);
    let matches = policy(&host).clear(round(tiered_terms(), vec![order(1, 150, 1_250)], 1_000, 5)).unwrap();
    assert_eq!(matches[0].price, 100 * 10 + 50 * 5);
    assert!(policy(&host).clear(round(tiered_terms(), vec![order(1, 150, 1_249)], 1_000, 5)).is_err());
}

#[test]
fn settle_pays_used_units_after_acceptance_or_timeout() {
    let host = LocalHost::from_seed([2; 32]);
    let market = policy(&host);
    let terms = terms(7);
    assert!(market.settle(&terms, usage(4, 70, false, true, 2_500)).is_err(), "no report");
    assert!(market.settle(&terms, usage(4, 70, true, false, 2_500)).is_err(), "not accepted, before deadline");
    assert_eq!(market.settle(&terms, usage(4, 70, true, true, 2_500)).unwrap(), 28);
    assert_eq!(market.settle(&terms, usage(4, 70, true, false, 61_000)).unwrap(), 28, "accepted by timeout");
    assert_eq!(market.settle(&terms, usage(99, 70, true, true, 2_500)).unwrap(), 70, "capped at locked units");
}

#[test]
fn tiers_must_start_at_zero_and_increase() {
    let host = LocalHost::from_seed([2; 32]);
    let market = policy(&host);
    market.check_terms(&tiered_terms()).unwrap();
    let mut bad = tiered_terms();
    bad.tiers = vec![Tier { from_units: 5, unit_price: 1 }].into();
    assert!(market.check_terms(&bad).unwrap_err().to_string().contains("unit 0"));
    bad.tiers = vec![Tier { from_units: 0, unit_price: 1 }, Tier { from_units: 0, unit_price: 2 }].into();
    assert!(market.check_terms(&bad).unwrap_err().to_string().contains("strictly increasing"));
}
