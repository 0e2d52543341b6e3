use super::*;
use nest_sdk::testing::{LocalHost, market::*};

fn policy(host: &LocalHost) -> PriceTag {
    PriceTag::new(QuoteConfig { quote_valid_ms: 5_000 }, host.host()).unwrap()
}

#[test]
fn quote_is_units_times_the_strategy_price() {
    let host = LocalHost::from_seed([1; 32]);
    host.set_price("parking", 250);
    let quote = policy(&host).quote(request("parking", 4)).unwrap();
    assert_eq!((quote.unit_price, quote.price, quote.valid_until_ms), (250, 1_000, 6_000));
}

#[test]
fn quote_without_a_strategy_names_it() {
    let host = LocalHost::from_seed([1; 32]);
    let error = policy(&host).quote(request("parking", 4)).unwrap_err();
    assert!(error.to_string().contains("pricing strategy `parking`"), "{error}");
}

#[test]
fn clear_locks_the_marked_price_or_refuses_with_the_reason() {
    let host = LocalHost::from_seed([1; 32]);
    let market = policy(&host);
    let matches = market.clear(round(terms(30), vec![order(1, 3, 90)], 10, 2_000)).unwrap();
    assert_eq!(matches[0].price, 90);
    let low = market.clear(round(terms(30), vec![order(1, 3, 89)], 10, 2_000)).unwrap_err();
    assert!(low.to_string().contains("above the order's maximum of 89"), "{low}");
    let many = market.clear(round(terms(30), vec![order(1, 11, 1_000)], 10, 2_000)).unwrap_err();
    assert!(many.to_string().contains("11 units asked, 10 available"), "{many}");
    let overflow = market.clear(round(terms(u64::MAX), vec![order(1, 2, u64::MAX)], 10, 2_000)).unwrap_err();
    assert!(overflow.to_string().contains("overflow"), "{overflow}");
}

#[test]
fn settle_pays_the_escrow_once_delivered() {
    let host = LocalHost::from_seed([1; 32]);
    let market = policy(&host);
    assert_eq!(market.settle(&terms(30), usage(0, 300, true, false, 3_000)).unwrap(), 300);
    assert_eq!(market.settle(&terms(30), usage(0, 300, false, true, 3_000)).unwrap(), 300);
    assert!(market.settle(&terms(30), usage(0, 300, false, false, 3_000)).is_err());
}

#[test]
fn terms_with_tiers_or_a_round_are_refused() {
    let host = LocalHost::from_seed([1; 32]);
    let market = policy(&host);
    market.check_terms(&terms(1)).unwrap();
    let mut round_terms = terms(1);
    round_terms.round_end_ms = 10;
    assert!(market.check_terms(&round_terms).is_err());
    let mut tiered = terms(1);
    tiered.tiers = vec![nest_sdk::Tier { from_units: 0, unit_price: 1 }].into();
    assert!(market.check_terms(&tiered).is_err());
}
