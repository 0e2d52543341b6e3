use super::*;

const SURGE: &str = include_str!("../../../../scripts/pricing/surge.lua");
const TIME_OF_DAY: &str = include_str!("../../../../scripts/pricing/time_of_day.lua");
const RESERVE: &str = include_str!("../../../../scripts/pricing/auction_reserve.lua");
const RETURNING: &str = include_str!("../../../../scripts/pricing/returning_buyer.lua");

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    (dir, store)
}

fn context(edit: impl FnOnce(&mut PricingContext)) -> PricingContext {
    let mut context = PricingContext::sample("wifi");
    edit(&mut context);
    context
}

fn price(strategies: &Strategies, context: PricingContext) -> u64 {
    strategies.price("wifi", &context).unwrap().unit_price
}

#[test]
fn surge_rises_with_utilization() {
    let (_dir, store) = store();
    let mut strategies = Strategies::new().unwrap();
    strategies.install(&store, "wifi", SURGE, 1).unwrap();
    assert_eq!(price(&strategies, context(|c| c.utilization = 0.2)), 100);
    assert_eq!(price(&strategies, context(|c| c.utilization = 0.75)), 250);
    assert_eq!(price(&strategies, context(|c| c.utilization = 1.0)), 400);
    assert_eq!(strategies.price("wifi", &context(|_| {})).unwrap().valid_ms, Some(30_000));
}

#[test]
fn time_of_day_prices_night_day_and_peak() {
    let (_dir, store) = store();
    let mut strategies = Strategies::new().unwrap();
    strategies.install(&store, "wifi", TIME_OF_DAY, 1).unwrap();
    let at = |hour| price(&strategies, context(|c| c.hour = hour));
    assert_eq!((at(3), at(12), at(18), at(22)), (40, 100, 180, 100));
}

#[test]
fn auction_reserve_follows_demand_with_a_cap() {
    let (_dir, store) = store();
    let mut strategies = Strategies::new().unwrap();
    strategies.install(&store, "wifi", RESERVE, 1).unwrap();
    assert_eq!(price(&strategies, context(|c| c.demand_rate = 0.0)), 500);
    assert_eq!(price(&strategies, context(|c| c.demand_rate = 4.0)), 600);
    assert_eq!(price(&strategies, context(|c| c.demand_rate = 1000.0)), 1_000);
}

#[test]
fn returning_buyers_get_a_bounded_discount() {
    let (_dir, store) = store();
    let mut strategies = Strategies::new().unwrap();
    strategies.install(&store, "wifi", RETURNING, 1).unwrap();
    let after = |purchases| price(&strategies, context(|c| c.requester_history = purchases));
    assert_eq!((after(0), after(2), after(40)), (200, 180, 150));
}

#[test]
fn broken_replacements_are_refused_and_the_active_version_stays() {
    let (_dir, store) = store();
    let mut strategies = Strategies::new().unwrap();
    assert_eq!(strategies.install(&store, "wifi", "return function(ctx) return 7 end", 1).unwrap(), 1);
    let cases = [
        ("return function(ctx) return 'cheap' end", "returned a string"),
        ("return function(ctx) error('no') end", "no"),
        ("return function(ctx) while true do end end", "budget"),
        ("return function(ctx) return -3 end", "not an amount"),
        ("return function(ctx) return 0/0 end", "not an amount"),
        ("return 5", "must return a function"),
        ("return function(ctx", "strategy wifi v2"),
    ];
    for (source, expected) in cases {
        let error = strategies.install(&store, "wifi", source, 2).unwrap_err().to_string();
        assert!(error.contains(expected), "{source}: {error}");
        assert_eq!(
            strategies.price("wifi", &context(|_| {})).unwrap(),
            Priced { unit_price: 7, valid_ms: None, version: 1 }
        );
    }
    assert_eq!(strategies.history("wifi").unwrap().versions.len(), 1);
}

#[test]
fn a_strategy_failing_on_one_context_gives_no_price_and_keeps_its_version() {
    let (_dir, store) = store();
    let mut strategies = Strategies::new().unwrap();
    strategies
        .install(&store, "wifi", "return function(ctx) if ctx.units > 5 then error('too many') end return 3 end", 1)
        .unwrap();
    let error = strategies.price("wifi", &context(|c| c.units = 9)).unwrap_err().to_string();
    assert!(error.contains("too many") && error.contains("v1"), "{error}");
    assert_eq!(price(&strategies, context(|_| {})), 3);
}

#[test]
fn versions_survive_a_reload_and_roll_back_in_one_call() {
    let (dir, store) = store();
    let mut strategies = Strategies::new().unwrap();
    strategies.install(&store, "wifi", "return function(ctx) return 1 end", 1).unwrap();
    strategies.install(&store, "wifi", "return function(ctx) return 2 end", 2).unwrap();
    strategies.install(&store, "spot", "return function(ctx) return 9 end", 3).unwrap();
    drop(store);
    let store = Store::open(&dir.path().join("store")).unwrap();
    let mut reloaded = Strategies::new().unwrap();
    assert!(reloaded.load(&store).unwrap().is_empty());
    assert_eq!(reloaded.list(), vec![("spot".to_string(), 1), ("wifi".to_string(), 2)]);
    assert_eq!(price(&reloaded, context(|_| {})), 2);
    reloaded.rollback(&store, "wifi", 1).unwrap();
    assert_eq!(price(&reloaded, context(|_| {})), 1);
    assert!(matches!(reloaded.rollback(&store, "wifi", 7), Err(StrategyError::NoVersion { .. })));
    let mut again = Strategies::new().unwrap();
    again.load(&store).unwrap();
    assert_eq!(again.history("wifi").unwrap().active, 1);
}

#[test]
fn bad_sku_ids_and_contexts_are_refused() {
    let (_dir, store) = store();
    let mut strategies = Strategies::new().unwrap();
    assert!(matches!(
        strategies.install(&store, "", "return function() return 1 end", 1),
        Err(StrategyError::BadSku(_))
    ));
    assert!(matches!(
        strategies.install(&store, "a/b", "return function() return 1 end", 1),
        Err(StrategyError::BadSku(_))
    ));
    strategies.install(&store, "wifi", "return function() return 1 end", 1).unwrap();
    assert!(matches!(strategies.price_json("wifi", "{\"units\": -1}"), Err(StrategyError::BadContext(_))));
    assert!(matches!(strategies.price_json("nope", "{}"), Err(StrategyError::Unknown(_))));
}
