use super::*;
use nest_sdk::testing::{LocalHost, market::*};

fn policy() -> Auction {
    Auction::new(QuoteConfig { quote_valid_ms: 1_000 }, LocalHost::from_seed([3; 32]).host()).unwrap()
}

fn auction_terms(reserve_price: u64) -> Terms {
    let mut terms = terms(0);
    terms.reserve_price = reserve_price;
    terms.round_end_ms = 10_000;
    terms
}

#[test]
fn winner_pays_the_second_highest_bid() {
    let bids = vec![order(1, 5, 300), order(2, 5, 500), order(3, 5, 400)];
    let matches = policy().clear(round(auction_terms(10), bids, 5, 10_000)).unwrap();
    assert_eq!(matches.len(), 1);
    assert_eq!((matches[0].order_id.0[0], matches[0].price, matches[0].units), (2, 400, 5));
}

#[test]
fn reserve_floors_the_price_and_excludes_low_bids() {
    let matches = policy().clear(round(auction_terms(50), vec![order(1, 5, 260), order(2, 5, 240)], 5, 10_000));
    let matches = matches.unwrap();
    assert_eq!((matches[0].order_id.0[0], matches[0].price), (1, 250), "the only valid bid pays the reserve");
    assert!(policy().clear(round(auction_terms(60), vec![order(1, 5, 260)], 5, 10_000)).unwrap().is_empty());
}

#[test]
fn ties_go_to_the_earlier_bid() {
    let matches = policy().clear(round(auction_terms(0), vec![order(7, 1, 90), order(4, 1, 90)], 1, 20_000)).unwrap();
    assert_eq!((matches[0].order_id.0[0], matches[0].price), (4, 90));
}

#[test]
fn clearing_before_the_end_is_refused() {
    let error = policy().clear(round(auction_terms(0), vec![order(1, 1, 9)], 1, 9_999)).unwrap_err();
    assert!(error.to_string().contains("open until 10000"), "{error}");
}

#[test]
fn bids_for_another_lot_size_lose() {
    let matches = policy().clear(round(auction_terms(0), vec![order(1, 2, 900), order(2, 3, 100)], 3, 10_000));
    assert_eq!(matches.unwrap()[0].order_id.0[0], 2);
}

#[test]
fn terms_need_a_round() {
    assert!(policy().check_terms(&terms(1)).is_err());
    policy().check_terms(&auction_terms(1)).unwrap();
}
