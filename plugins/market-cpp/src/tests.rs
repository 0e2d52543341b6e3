use super::*;
use nest_sdk::testing::{LocalHost, market::*};

fn policy() -> CostPerPurchase {
    CostPerPurchase::new(QuoteConfig { quote_valid_ms: 1_000 }, LocalHost::from_seed([4; 32]).host()).unwrap()
}

#[test]
fn only_a_confirmation_pays() {
    let market = policy();
    assert!(market.settle(&terms(5), usage(1, 50, true, false, 90_000)).is_err(), "a report is not a purchase");
    assert_eq!(market.settle(&terms(5), usage(0, 50, false, true, 2_000)).unwrap(), 50);
}

#[test]
fn lock_is_the_purchase_price() {
    let matches = policy().clear(round(terms(40), vec![order(1, 2, 80)], 2, 5)).unwrap();
    assert_eq!(matches[0].price, 80);
    assert!(policy().clear(round(terms(40), vec![order(1, 3, 200)], 2, 5)).is_err());
}

#[test]
fn quote_uses_the_strategy() {
    let host = LocalHost::from_seed([4; 32]);
    host.set_price("spot-7", 1_500);
    let mut market = CostPerPurchase::new(QuoteConfig { quote_valid_ms: 1 }, host.host()).unwrap();
    assert_eq!(market.quote(request("spot-7", 1)).unwrap().price, 1_500);
}
