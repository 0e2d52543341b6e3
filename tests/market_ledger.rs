//! Market transactions on the ledger, with the four policies loaded from their signed
//! `.so` packages: each policy's flow, refusals with their reasons, and the conservation
//! property — over random sequences of market transactions, the sum of balances plus
//! escrow never changes (fees move to the proposer, a balance).

use nest_host::ledger::market::{MarketRules, MarketTx, TermsRecord, escrow_total};
use nest_host::ledger::{BlockEnv, ChainParams, Ledger, SignedTx, TxBody, TxError, UnsignedTx};
use nest_sdk::{Hash32, PublicKey, Signature};
use nest_tests::{PluginCrate, pack_crate, trusting, vendor_key};
use proptest::prelude::*;
use std::sync::OnceLock;

const CHAIN: Hash32 = Hash32([7; 32]);
const PARAMS: ChainParams = ChainParams { chain: CHAIN, gas_price: 0 };
const PROVIDER: u8 = 1;
const BUYER: u8 = 2;
const OTHER: u8 = 3;
const PROPOSER: u8 = 9;
const START: u64 = 1_000_000;

/// The workspace's market policies: package name and library crate name.
const POLICIES: [(&str, &str); 4] = [
    ("market-price-tag", "market_price_tag"),
    ("market-metering", "market_metering"),
    ("market-auction", "market_auction"),
    ("market-cpp", "market_cpp"),
];

fn key(byte: u8) -> PublicKey {
    PublicKey([byte; 32])
}

/// The four policies, packed, signed and loaded through the real loader once per process
/// (the host never unloads a library either).
fn libraries() -> &'static [(String, nest_host::loader::LoadedLibrary)] {
    static LOADED: OnceLock<Vec<(String, nest_host::loader::LoadedLibrary)>> = OnceLock::new();
    LOADED.get_or_init(|| {
        let vendor = vendor_key(50);
        let dir = Box::leak(Box::new(tempfile::tempdir().expect("tempdir")));
        let options = nest_host::loader::LoadOptions { trust: trusting("nest-tests", &vendor), allow_unsigned: false };
        POLICIES
            .iter()
            .map(|(name, lib_name)| {
                let plugin = PluginCrate { dir: Box::leak(format!("plugins/{name}").into_boxed_str()), lib_name };
                let out = dir.path().join(name);
                pack_crate(plugin, &out, &vendor);
                let library = nest_host::loader::load(&out, &options).unwrap_or_else(|e| panic!("{e}"));
                (name.to_string(), library)
            })
            .collect()
    })
}

/// One rules instance per policy, as the node builds them.
fn rules() -> MarketRules {
    let host = nest_sdk::testing::LocalHost::from_seed([5; 32]).host();
    MarketRules::new(
        libraries().iter().map(|(name, library)| (name.clone(), library.new_market("{}", &host).expect("instance"))),
    )
}

/// A chain in memory: ledger, nonces, block time.
struct Chain {
    ledger: Ledger,
    nonces: std::collections::BTreeMap<u8, u64>,
    time_ms: u64,
    height: u64,
    supply: u128,
}

impl Chain {
    fn new() -> Chain {
        let mut ledger =
            Ledger::genesis(&[(key(PROVIDER), 1_000_000), (key(BUYER), 1_000_000), (key(OTHER), 1_000_000)]).unwrap();
        ledger.set_markets(rules());
        Chain { ledger, nonces: Default::default(), time_ms: START, height: 0, supply: 3_000_000 }
    }

    fn tx(&mut self, from: u8, body: MarketTx) -> SignedTx {
        let nonce = self.nonces.get(&from).copied().unwrap_or(0);
        let tx = UnsignedTx { chain: CHAIN, from: key(from), nonce, fee: 10, body: TxBody::Market(body) };
        SignedTx { tx, signature: Signature::default() }
    }

    /// Applies one transaction in its own block; the reason when it is refused.
    fn send(&mut self, from: u8, body: MarketTx) -> Result<Hash32, TxError> {
        let tx = self.tx(from, body);
        self.height += 1;
        let env = BlockEnv {
            height: self.height,
            parent: nest_sdk::Hash32::ZERO,
            time_ms: self.time_ms,
            proposer: key(PROPOSER),
        };
        let outcome = self.ledger.execute(std::slice::from_ref(&tx), &env, &PARAMS, true);
        if let Some((_, error)) = outcome.rejected.first() {
            return Err(error.clone());
        }
        self.ledger.commit(&outcome.changes);
        *self.nonces.entry(from).or_default() += 1;
        Ok(tx.hash())
    }

    fn balance(&self, who: u8) -> u64 {
        self.ledger.account(&key(who)).balance
    }

    fn escrow(&self) -> u128 {
        escrow_total(self.ledger.records_with_prefix(b"market/")).unwrap()
    }

    /// Balances plus escrow: constant, since fees move to the proposer, a balance.
    fn conserved(&self) -> bool {
        self.ledger.total_supply() + self.escrow() == self.supply
    }
}

fn terms(unit_price: u64) -> TermsRecord {
    TermsRecord { unit_price, reserve_price: 0, tiers: Vec::new(), deadline_ms: 60_000, round_end_ms: 0 }
}

fn shelve(chain: &mut Chain, sku: &str, policy: &str, terms: TermsRecord) {
    let body = MarketTx::Shelve {
        sku: sku.into(),
        policy: policy.into(),
        resource: "network".into(),
        unit: "s".into(),
        location: "lab".into(),
        units_available: 1_000,
        terms,
    };
    chain.send(PROVIDER, body).unwrap();
}

fn reason(result: Result<Hash32, TxError>) -> String {
    result.unwrap_err().to_string()
}

#[test]
fn metering_locks_reports_and_settles_the_used_part() {
    let mut chain = Chain::new();
    shelve(&mut chain, "wifi", "market-metering", terms(5));
    let lock = chain.send(BUYER, MarketTx::Lock { sku: "wifi".into(), units: 600, max_price: 3_000 }).unwrap();
    assert_eq!(chain.balance(BUYER), 1_000_000 - 10 - 3_000);
    assert_eq!(chain.escrow(), 3_000);
    chain.send(PROVIDER, MarketTx::Report { lock, units_used: 240 }).unwrap();
    chain.send(BUYER, MarketTx::Confirm { lock }).unwrap();
    chain.send(PROVIDER, MarketTx::Settle { lock }).unwrap();
    assert_eq!(chain.balance(PROVIDER), 1_000_000 - 3 * 10 + 1_200);
    assert_eq!(chain.balance(BUYER), 1_000_000 - 2 * 10 - 1_200);
    assert_eq!(chain.escrow(), 0);
    assert!(chain.conserved());
    let twice = reason(chain.send(PROVIDER, MarketTx::Settle { lock }));
    assert!(twice.contains("no open lock"), "{twice}");
}

#[test]
fn metering_report_is_accepted_by_timeout() {
    let mut chain = Chain::new();
    shelve(&mut chain, "wifi", "market-metering", terms(5));
    let lock = chain.send(BUYER, MarketTx::Lock { sku: "wifi".into(), units: 10, max_price: 50 }).unwrap();
    chain.send(PROVIDER, MarketTx::Report { lock, units_used: 4 }).unwrap();
    let early = reason(chain.send(PROVIDER, MarketTx::Settle { lock }));
    assert!(early.contains("has not accepted"), "{early}");
    chain.time_ms += 60_000;
    chain.send(PROVIDER, MarketTx::Settle { lock }).unwrap();
    assert_eq!(chain.balance(PROVIDER), 1_000_000 - 3 * 10 + 20);
    assert!(chain.conserved());
}

#[test]
fn price_tag_pays_on_delivery() {
    let mut chain = Chain::new();
    shelve(&mut chain, "parking", "market-price-tag", terms(300));
    let lock = chain.send(BUYER, MarketTx::Lock { sku: "parking".into(), units: 2, max_price: 600 }).unwrap();
    let early = reason(chain.send(PROVIDER, MarketTx::Settle { lock }));
    assert!(early.contains("neither reported"), "{early}");
    chain.send(PROVIDER, MarketTx::Report { lock, units_used: 2 }).unwrap();
    chain.send(BUYER, MarketTx::Settle { lock }).unwrap();
    assert_eq!(chain.balance(PROVIDER), 1_000_000 - 2 * 10 + 600);
    assert!(chain.conserved());
}

#[test]
fn cpp_pays_on_confirmation_and_refunds_after_the_deadline() {
    let mut chain = Chain::new();
    shelve(&mut chain, "feed", "market-cpp", terms(700));
    let confirmed = chain.send(BUYER, MarketTx::Lock { sku: "feed".into(), units: 1, max_price: 700 }).unwrap();
    chain.send(BUYER, MarketTx::Confirm { lock: confirmed }).unwrap();
    chain.send(PROVIDER, MarketTx::Settle { lock: confirmed }).unwrap();
    assert_eq!(chain.balance(PROVIDER), 1_000_000 - 2 * 10 + 700);

    let unconfirmed = chain.send(BUYER, MarketTx::Lock { sku: "feed".into(), units: 1, max_price: 700 }).unwrap();
    let early = reason(chain.send(BUYER, MarketTx::Refund { lock: unconfirmed }));
    assert!(early.contains("deadline"), "{early}");
    chain.time_ms += 60_000;
    let unpaid = reason(chain.send(PROVIDER, MarketTx::Settle { lock: unconfirmed }));
    assert!(unpaid.contains("not confirmed"), "{unpaid}");
    chain.send(BUYER, MarketTx::Refund { lock: unconfirmed }).unwrap();
    assert_eq!(chain.balance(BUYER), 1_000_000 - 4 * 10 - 700);
    assert_eq!(chain.escrow(), 0);
    assert!(chain.conserved());
}

#[test]
fn auction_clears_at_the_second_price_and_refunds_the_rest() {
    let mut chain = Chain::new();
    let mut auction = terms(0);
    auction.reserve_price = 1;
    auction.round_end_ms = START + 10_000;
    let body = MarketTx::Shelve {
        sku: "slot".into(),
        policy: "market-auction".into(),
        resource: "network".into(),
        unit: "slot".into(),
        location: String::new(),
        units_available: 1,
        terms: auction,
    };
    chain.send(PROVIDER, body).unwrap();
    chain.send(BUYER, MarketTx::Bid { sku: "slot".into(), units: 1, max_price: 900 }).unwrap();
    chain.send(OTHER, MarketTx::Bid { sku: "slot".into(), units: 1, max_price: 400 }).unwrap();
    assert_eq!(chain.escrow(), 1_300);
    let open = reason(chain.send(OTHER, MarketTx::Close { sku: "slot".into() }));
    assert!(open.contains("open until"), "{open}");
    chain.time_ms = START + 10_000;
    let late = reason(chain.send(OTHER, MarketTx::Bid { sku: "slot".into(), units: 1, max_price: 5_000 }));
    assert!(late.contains("closed at"), "{late}");
    chain.send(OTHER, MarketTx::Close { sku: "slot".into() }).unwrap();
    assert_eq!(chain.escrow(), 400, "the winner's lock at the second price");
    assert_eq!(chain.balance(OTHER), 1_000_000 - 2 * 10);
    assert_eq!(chain.balance(BUYER), 1_000_000 - 10 - 400);
    assert!(chain.conserved());
}

#[test]
fn bad_inputs_are_refused_with_their_reason_and_nothing_moves() {
    let mut chain = Chain::new();
    shelve(&mut chain, "wifi", "market-metering", terms(5));
    shelve(&mut chain, "dear", "market-price-tag", terms(10_000));
    let before = (chain.balance(BUYER), chain.escrow());
    let cases = [
        (BUYER, MarketTx::Lock { sku: "nope".into(), units: 1, max_price: 5 }, "unknown SKU \"nope\""),
        (BUYER, MarketTx::Lock { sku: "wifi".into(), units: 0, max_price: 5 }, "units must be positive"),
        (BUYER, MarketTx::Lock { sku: "wifi".into(), units: 10, max_price: 49 }, "above the order's maximum"),
        (BUYER, MarketTx::Lock { sku: "wifi".into(), units: 5_000, max_price: u64::MAX }, "5000 units asked"),
        (BUYER, MarketTx::Lock { sku: "dear".into(), units: 900, max_price: u64::MAX }, "insufficient balance"),
        (BUYER, MarketTx::Bid { sku: "wifi".into(), units: 1, max_price: 9 }, "sells at once"),
        (BUYER, MarketTx::Withdraw { sku: "wifi".into() }, "only the provider"),
        (BUYER, MarketTx::Settle { lock: Hash32([4; 32]) }, "no open lock"),
    ];
    for (from, body, expected) in cases {
        let error = reason(chain.send(from, body));
        assert!(error.contains(expected), "{expected}: {error}");
    }
    let overflow = MarketTx::Shelve {
        sku: "big".into(),
        policy: "market-price-tag".into(),
        resource: "network".into(),
        unit: "u".into(),
        location: String::new(),
        units_available: 10,
        terms: terms(u64::MAX),
    };
    chain.send(PROVIDER, overflow).unwrap();
    let error = reason(chain.send(BUYER, MarketTx::Lock { sku: "big".into(), units: 2, max_price: u64::MAX }));
    assert!(error.contains("overflow"), "{error}");
    let unknown = reason(chain.send(
        PROVIDER,
        MarketTx::Shelve {
            sku: "x".into(),
            policy: "market-nope".into(),
            resource: "network".into(),
            unit: "u".into(),
            location: String::new(),
            units_available: 1,
            terms: terms(1),
        },
    ));
    assert!(unknown.contains("market policy market-nope is not loaded"), "{unknown}");
    assert_eq!((chain.balance(BUYER), chain.escrow()), before);

    let lock = chain.send(BUYER, MarketTx::Lock { sku: "wifi".into(), units: 1, max_price: 5 }).unwrap();
    let stranger = reason(chain.send(OTHER, MarketTx::Settle { lock }));
    assert!(stranger.contains("only its provider or buyer"), "{stranger}");
    let not_provider = reason(chain.send(BUYER, MarketTx::Report { lock, units_used: 1 }));
    assert!(not_provider.contains("only its provider"), "{not_provider}");
    assert!(chain.conserved());
}

#[derive(Clone, Debug)]
enum Step {
    Lock { buyer: u8, sku: usize, units: u64, max_price: u64 },
    Bid { buyer: u8, units: u64, max_price: u64 },
    Report { lock: usize, units_used: u64 },
    Confirm { lock: usize },
    Settle { by: u8, lock: usize },
    Refund { by: u8, lock: usize },
    Close { by: u8 },
    Advance { ms: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    let who = prop_oneof![Just(PROVIDER), Just(BUYER), Just(OTHER)];
    prop_oneof![
        (who.clone(), 0..3usize, 0..50u64, 0..20_000u64).prop_map(|(buyer, sku, units, max_price)| Step::Lock {
            buyer,
            sku,
            units,
            max_price
        }),
        (who.clone(), 0..3u64, 0..5_000u64).prop_map(|(buyer, units, max_price)| Step::Bid { buyer, units, max_price }),
        (0..8usize, 0..80u64).prop_map(|(lock, units_used)| Step::Report { lock, units_used }),
        (0..8usize).prop_map(|lock| Step::Confirm { lock }),
        (who.clone(), 0..8usize).prop_map(|(by, lock)| Step::Settle { by, lock }),
        (who.clone(), 0..8usize).prop_map(|(by, lock)| Step::Refund { by, lock }),
        who.prop_map(|by| Step::Close { by }),
        (0..40_000u64).prop_map(|ms| Step::Advance { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever sequence of market transactions runs, applied or refused, the sum of
    /// balances plus escrow never changes (fees only move to the proposer).
    #[test]
    fn balances_plus_escrow_are_conserved(steps in proptest::collection::vec(step(), 1..60)) {
        let mut chain = Chain::new();
        let skus = ["meter", "tag", "cpp"];
        shelve(&mut chain, "meter", "market-metering", terms(7));
        shelve(&mut chain, "tag", "market-price-tag", terms(11));
        shelve(&mut chain, "cpp", "market-cpp", terms(13));
        let mut auction = terms(0);
        auction.reserve_price = 10;
        auction.round_end_ms = START + 30_000;
        let body = MarketTx::Shelve {
            sku: "lot".into(), policy: "market-auction".into(), resource: "network".into(), unit: "lot".into(),
            location: String::new(), units_available: 2, terms: auction,
        };
        chain.send(PROVIDER, body).unwrap();
        let mut locks: Vec<(Hash32, u8)> = Vec::new();
        for step in steps {
            let lock_at = |index: usize| locks.get(index % locks.len().max(1)).copied();
            let result = match step {
                Step::Lock { buyer, sku, units, max_price } => {
                    let result = chain.send(buyer, MarketTx::Lock { sku: skus[sku].into(), units, max_price });
                    if let Ok(id) = result { locks.push((id, buyer)); }
                    result
                }
                Step::Bid { buyer, units, max_price } => chain.send(buyer, MarketTx::Bid { sku: "lot".into(), units, max_price }),
                Step::Report { lock, units_used } => match lock_at(lock) {
                    Some((id, _)) => chain.send(PROVIDER, MarketTx::Report { lock: id, units_used }),
                    None => continue,
                },
                Step::Confirm { lock } => match lock_at(lock) {
                    Some((id, buyer)) => chain.send(buyer, MarketTx::Confirm { lock: id }),
                    None => continue,
                },
                Step::Settle { by, lock } => match lock_at(lock) {
                    Some((id, _)) => chain.send(by, MarketTx::Settle { lock: id }),
                    None => continue,
                },
                Step::Refund { by, lock } => match lock_at(lock) {
                    Some((id, _)) => chain.send(by, MarketTx::Refund { lock: id }),
                    None => continue,
                },
                Step::Close { by } => chain.send(by, MarketTx::Close { sku: "lot".into() }),
                Step::Advance { ms } => { chain.time_ms += ms; continue; }
            };
            let _ = result;
            prop_assert!(chain.conserved(), "supply {} + escrow {} != {}", chain.ledger.total_supply(), chain.escrow(), chain.supply);
        }
    }
}
