//! Apply market transactions: shelve SKUs, take orders and bids, hold escrow, settle, refund.
//!
//! All market state is ledger records under `market/`:
//!
//! - `market/sku/<sku>` — an [`Sku`]: provider, policy plugin, selling [`TermsRecord`],
//!   units left, recent prices;
//! - `market/bid/<sku>/<bid id>` — a sealed [`Bid`] of an auction; its maximum is escrowed;
//! - `market/lock/<lock id>` — a [`Lock`]: escrow of a matched order until it is settled
//!   or refunded;
//! - `market/demand/<demand id>` — a posted [`Demand`] (an advert: no escrow).
//!
//! Escrow is the sum of bid maxima and lock amounts held in records. Every transaction
//! moves tokens between balances and escrow with checked arithmetic, so the sum of
//! balances plus escrow changes only by fees moving to the proposer (property-tested).
//!
//! Matching and settlement amounts come from the SKU's market policy plugin through
//! [`MarketRules`]: deterministic functions of the record values and the block time.

mod rules;

pub use rules::MarketRules;

use super::exec::TxContext;
use super::tx::TxError;
use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{Hash32, PublicKey};
use nest_sdk::{Order, Round, Terms, Tier, Usage};

/// Gas of a market transaction.
pub const MARKET_GAS: u64 = 2_000;
/// Gas of closing an auction round, per bid it clears.
pub const CLOSE_GAS_PER_BID: u64 = 500;
/// Open bids one auction SKU holds.
pub const BIDS_PER_SKU_MAX: usize = nest_sdk::market::ROUND_ORDERS_MAX;
/// Longest SKU id, in bytes.
pub const SKU_BYTES_MAX: usize = 64;
/// Longest free-text field (unit, location, resource), in bytes.
pub const TEXT_BYTES_MAX: usize = 128;
/// Recent prices kept per SKU.
pub const RECENT_PRICES_MAX: usize = 16;

/// Record-key prefix of SKUs.
pub const SKU_PREFIX: &[u8] = b"market/sku/";
/// Record-key prefix of auction bids.
pub const BID_PREFIX: &[u8] = b"market/bid/";
/// Record-key prefix of locks.
pub const LOCK_PREFIX: &[u8] = b"market/lock/";
/// Record-key prefix of demands.
pub const DEMAND_PREFIX: &[u8] = b"market/demand/";

/// An SKU's selling terms as recorded on chain (see [`nest_sdk::Terms`]).
#[derive(
    BorshSerialize, BorshDeserialize, Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
pub struct TermsRecord {
    /// µNEST per unit: the value the provider's strategy answered.
    pub unit_price: u64,
    /// Lowest auction price per unit, µNEST.
    #[serde(default)]
    pub reserve_price: u64,
    /// Volume tiers `(from_units, unit_price)`.
    #[serde(default)]
    pub tiers: Vec<(u64, u64)>,
    /// How long a lock waits for delivery, ms.
    pub deadline_ms: u64,
    /// End of the bidding round (auctions), ms since the epoch; 0 otherwise.
    #[serde(default)]
    pub round_end_ms: u64,
}

impl TermsRecord {
    /// The terms as a policy receives them.
    pub fn to_sdk(&self) -> Terms {
        let tiers: Vec<Tier> = self
            .tiers
            .iter()
            .map(|(from_units, unit_price)| Tier { from_units: *from_units, unit_price: *unit_price })
            .collect();
        Terms {
            unit_price: self.unit_price,
            reserve_price: self.reserve_price,
            tiers: tiers.into(),
            deadline_ms: self.deadline_ms,
            round_end_ms: self.round_end_ms,
        }
    }
}

/// A shelved SKU.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Sku {
    /// The selling account.
    pub provider: PublicKey,
    /// Name of the market policy plugin (e.g. `market-metering`).
    pub policy: String,
    /// Kind of resource (`network`, `power`, `parking`, ...), what demands name.
    pub resource: String,
    /// What one unit is (`s`, `MB`, `purchase`).
    pub unit: String,
    /// Where (free text: coordinates, a place name).
    pub location: String,
    /// Units still for sale.
    pub units_available: u64,
    /// Selling terms.
    pub terms: TermsRecord,
    /// Units sold so far.
    pub units_sold: u64,
    /// Recent matches `(block time ms, unit price µNEST)`, newest last.
    pub recent_prices: Vec<(u64, u64)>,
}

/// A sealed auction bid; `max_price` is held in escrow.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Bid {
    /// The bidder.
    pub buyer: PublicKey,
    /// Units bid for.
    pub units: u64,
    /// The bid (total µNEST), escrowed.
    pub max_price: u64,
    /// Block time of the bid.
    pub placed_at_ms: u64,
}

/// Escrow of a matched order.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Lock {
    /// The SKU.
    pub sku: String,
    /// The seller.
    pub provider: PublicKey,
    /// The buyer.
    pub buyer: PublicKey,
    /// Policy plugin that settles it.
    pub policy: String,
    /// Terms at the time of the lock.
    pub terms: TermsRecord,
    /// Units bought.
    pub units: u64,
    /// µNEST held.
    pub escrow: u64,
    /// Block time of the lock.
    pub locked_at_ms: u64,
    /// Usage reported by the provider: `(units used, block time)`.
    pub reported: Option<(u64, u64)>,
    /// Whether the buyer confirmed.
    pub confirmed: bool,
}

/// A buyer's posted demand: what it wants, for providers to see (no escrow).
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Demand {
    /// The buyer.
    pub buyer: PublicKey,
    /// Kind of resource (`network`, `power`, `parking`, ...).
    pub resource: String,
    /// Units wanted.
    pub units: u64,
    /// Highest total price, µNEST.
    pub max_price: u64,
    /// Where.
    pub location: String,
    /// Block time it was posted.
    pub placed_at_ms: u64,
}

/// What a market transaction does.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MarketTx {
    /// Put an SKU on sale (the sender is its provider).
    Shelve {
        /// SKU id.
        sku: String,
        /// Policy plugin name.
        policy: String,
        /// Kind of resource.
        resource: String,
        /// Unit.
        unit: String,
        /// Location.
        location: String,
        /// Units for sale.
        units_available: u64,
        /// Terms.
        terms: TermsRecord,
    },
    /// Change an SKU's units and terms (provider only; no open bids).
    Update {
        /// SKU id.
        sku: String,
        /// Units for sale.
        units_available: u64,
        /// Terms.
        terms: TermsRecord,
    },
    /// Take an SKU off sale (provider only; no open bids).
    Withdraw {
        /// SKU id.
        sku: String,
    },
    /// Post a demand.
    PostDemand {
        /// Kind of resource.
        resource: String,
        /// Units.
        units: u64,
        /// Highest total price.
        max_price: u64,
        /// Where.
        location: String,
    },
    /// Withdraw one's demand.
    CancelDemand {
        /// Demand id (the posting transaction's id).
        demand: Hash32,
    },
    /// Place a sealed bid in an auction round; `max_price` goes to escrow.
    Bid {
        /// SKU id.
        sku: String,
        /// Units.
        units: u64,
        /// The bid, total µNEST.
        max_price: u64,
    },
    /// Withdraw one's bid before the round ends; its escrow returns.
    CancelBid {
        /// SKU id.
        sku: String,
        /// Bid id.
        bid: Hash32,
    },
    /// Clear an auction after its round: the winner's lock is made, other bids refunded.
    Close {
        /// SKU id.
        sku: String,
    },
    /// Buy at once: the policy prices the order and that price goes to escrow.
    Lock {
        /// SKU id.
        sku: String,
        /// Units.
        units: u64,
        /// Highest total price accepted.
        max_price: u64,
    },
    /// The provider reports usage (or delivery) of a lock.
    Report {
        /// Lock id.
        lock: Hash32,
        /// Units used.
        units_used: u64,
    },
    /// The buyer confirms delivery, the report, or the end use.
    Confirm {
        /// Lock id.
        lock: Hash32,
    },
    /// Pay out a lock as its policy rules (provider or buyer).
    Settle {
        /// Lock id.
        lock: Hash32,
    },
    /// Return a lock's escrow to the buyer after its deadline, if it cannot be settled.
    Refund {
        /// Lock id.
        lock: Hash32,
    },
}

/// Why a market transaction was refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum MarketError {
    /// No such SKU.
    #[error("unknown SKU \"{0}\"")]
    UnknownSku(String),
    /// The SKU id is taken.
    #[error("SKU \"{0}\" is already shelved")]
    SkuExists(String),
    /// A text field is empty, too long or not printable.
    #[error("{field}: {reason}")]
    BadText {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A quantity that must be positive is zero.
    #[error("{0} must be positive")]
    Zero(&'static str),
    /// The sender is not the SKU's provider.
    #[error("only the provider of SKU \"{0}\" may do this")]
    NotProvider(String),
    /// The sender is not a party of the lock (or not the right one).
    #[error("lock {lock}: only its {role} may do this")]
    NotParty {
        /// Lock id.
        lock: Hash32,
        /// The party that may.
        role: &'static str,
    },
    /// No such lock: never made, or already settled or refunded.
    #[error("no open lock {0} (never made, or already settled or refunded)")]
    UnknownLock(Hash32),
    /// No such bid or demand of the sender.
    #[error("no {what} {id} of the sender")]
    UnknownOrder {
        /// `bid` or `demand`.
        what: &'static str,
        /// Its id.
        id: Hash32,
    },
    /// The policy is not loaded on this node: it cannot apply market transactions for it.
    #[error("market policy {0} is not loaded on this node")]
    PolicyNotLoaded(String),
    /// The policy refused (terms, price above the maximum, not settleable yet, ...).
    #[error("{policy}: {reason}")]
    Policy {
        /// Policy name.
        policy: String,
        /// Its reason.
        reason: String,
    },
    /// The SKU sells by auction: use `bid`, or it sells at once: use `lock`.
    #[error("SKU \"{sku}\" {how}")]
    WrongMode {
        /// SKU id.
        sku: String,
        /// How it sells.
        how: &'static str,
    },
    /// The round is over: no more bids or cancellations.
    #[error("the auction round of \"{sku}\" closed at {round_end_ms} ms")]
    RoundClosed {
        /// SKU id.
        sku: String,
        /// End of the round.
        round_end_ms: u64,
    },
    /// The round is still open: it cannot be cleared yet.
    #[error("the auction round of \"{sku}\" is open until {round_end_ms} ms")]
    RoundOpen {
        /// SKU id.
        sku: String,
        /// End of the round.
        round_end_ms: u64,
    },
    /// The SKU has open bids (cannot change or withdraw), or has too many.
    #[error("SKU \"{sku}\" has {bids} open bids")]
    OpenBids {
        /// SKU id.
        sku: String,
        /// How many.
        bids: usize,
    },
    /// Usage was already reported, or the lock already confirmed.
    #[error("lock {lock}: already {what}")]
    Already {
        /// Lock id.
        lock: Hash32,
        /// `reported` or `confirmed`.
        what: &'static str,
    },
    /// A refund before the deadline, or of a lock that can be settled.
    #[error("lock {lock}: no refund: {reason}")]
    NotRefundable {
        /// Lock id.
        lock: Hash32,
        /// Why.
        reason: String,
    },
    /// An amount would overflow.
    #[error("amount overflow in {0}")]
    Overflow(&'static str),
}

fn market(error: MarketError) -> TxError {
    TxError::Market(error)
}

/// Gas of a market transaction body.
pub fn gas_of(body: &MarketTx) -> u64 {
    match body {
        MarketTx::Close { .. } => MARKET_GAS + CLOSE_GAS_PER_BID * BIDS_PER_SKU_MAX as u64,
        _ => MARKET_GAS,
    }
}

fn sku_key(sku: &str) -> Vec<u8> {
    [SKU_PREFIX, sku.as_bytes()].concat()
}

fn bid_prefix(sku: &str) -> Vec<u8> {
    [BID_PREFIX, sku.as_bytes(), b"/"].concat()
}

fn bid_key(sku: &str, bid: &Hash32) -> Vec<u8> {
    [bid_prefix(sku).as_slice(), bid.to_hex().as_bytes()].concat()
}

fn lock_key(lock: &Hash32) -> Vec<u8> {
    [LOCK_PREFIX, lock.to_hex().as_bytes()].concat()
}

fn demand_key(demand: &Hash32) -> Vec<u8> {
    [DEMAND_PREFIX, demand.to_hex().as_bytes()].concat()
}

fn check_text(field: &'static str, text: &str, max_bytes: usize, allow_empty: bool) -> Result<(), TxError> {
    let reason = if text.is_empty() && !allow_empty {
        Some("empty".to_string())
    } else if text.len() > max_bytes {
        Some(format!("{} bytes, at most {max_bytes}", text.len()))
    } else if text.chars().any(char::is_control) {
        Some("control characters".to_string())
    } else {
        None
    };
    reason.map_or(Ok(()), |reason| Err(market(MarketError::BadText { field, reason })))
}

fn check_sku_id(sku: &str) -> Result<(), TxError> {
    check_text("sku", sku, SKU_BYTES_MAX, false)?;
    if !sku.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
        return Err(market(MarketError::BadText { field: "sku", reason: "use a-z A-Z 0-9 - _ .".into() }));
    }
    Ok(())
}

fn positive(what: &'static str, value: u64) -> Result<(), TxError> {
    if value == 0 { Err(market(MarketError::Zero(what))) } else { Ok(()) }
}

/// Applies a market transaction for its sender, at the block's time.
pub fn apply(ctx: &mut TxContext<'_>, body: &MarketTx) -> Result<(), TxError> {
    match body {
        MarketTx::Shelve { sku, policy, resource, unit, location, units_available, terms } => {
            let text = ShelfText { policy, resource, unit, location };
            shelve(ctx, sku, text, *units_available, terms)
        }
        MarketTx::Update { sku, units_available, terms } => update(ctx, sku, *units_available, terms),
        MarketTx::Withdraw { sku } => withdraw(ctx, sku),
        MarketTx::PostDemand { resource, units, max_price, location } => {
            post_demand(ctx, resource, *units, *max_price, location)
        }
        MarketTx::CancelDemand { demand } => cancel_demand(ctx, demand),
        MarketTx::Bid { sku, units, max_price } => bid(ctx, sku, *units, *max_price),
        MarketTx::CancelBid { sku, bid } => cancel_bid(ctx, sku, bid),
        MarketTx::Close { sku } => close(ctx, sku),
        MarketTx::Lock { sku, units, max_price } => lock(ctx, sku, *units, *max_price),
        MarketTx::Report { lock, units_used } => report(ctx, lock, *units_used),
        MarketTx::Confirm { lock } => confirm(ctx, lock),
        MarketTx::Settle { lock } => settle(ctx, lock),
        MarketTx::Refund { lock } => refund(ctx, lock),
    }
}

fn sender(ctx: &TxContext<'_>) -> PublicKey {
    ctx.tx().tx.from
}

fn load_sku(ctx: &TxContext<'_>, sku: &str) -> Result<Sku, TxError> {
    ctx.record::<Sku>(&sku_key(sku))?.ok_or_else(|| market(MarketError::UnknownSku(sku.to_string())))
}

fn own_sku(ctx: &TxContext<'_>, sku: &str) -> Result<Sku, TxError> {
    let record = load_sku(ctx, sku)?;
    if record.provider != sender(ctx) {
        return Err(market(MarketError::NotProvider(sku.to_string())));
    }
    Ok(record)
}

fn open_bids(ctx: &TxContext<'_>, sku: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    ctx.records_with_prefix(&bid_prefix(sku))
}

fn refuse_open_bids(ctx: &TxContext<'_>, sku: &str) -> Result<(), TxError> {
    let bids = open_bids(ctx, sku).len();
    if bids > 0 {
        return Err(market(MarketError::OpenBids { sku: sku.to_string(), bids }));
    }
    Ok(())
}

fn check_terms(ctx: &TxContext<'_>, policy: &str, terms: &TermsRecord) -> Result<(), TxError> {
    ctx.markets().check_terms(policy, &terms.to_sdk()).map_err(market)
}

/// The text fields of a shelved SKU.
struct ShelfText<'a> {
    policy: &'a str,
    resource: &'a str,
    unit: &'a str,
    location: &'a str,
}

fn shelve(
    ctx: &mut TxContext<'_>,
    sku: &str,
    text: ShelfText<'_>,
    units_available: u64,
    terms: &TermsRecord,
) -> Result<(), TxError> {
    let ShelfText { policy, resource, unit, location } = text;
    check_sku_id(sku)?;
    check_text("policy", policy, TEXT_BYTES_MAX, false)?;
    check_text("resource", resource, TEXT_BYTES_MAX, false)?;
    check_text("unit", unit, TEXT_BYTES_MAX, false)?;
    check_text("location", location, TEXT_BYTES_MAX, true)?;
    positive("units_available", units_available)?;
    if ctx.record_bytes(&sku_key(sku)).is_some() {
        return Err(market(MarketError::SkuExists(sku.to_string())));
    }
    check_terms(ctx, policy, terms)?;
    let record = Sku {
        provider: sender(ctx),
        policy: policy.to_string(),
        resource: resource.to_string(),
        unit: unit.to_string(),
        location: location.to_string(),
        units_available,
        terms: terms.clone(),
        units_sold: 0,
        recent_prices: Vec::new(),
    };
    ctx.put_record(sku_key(sku), &record)
}

fn update(ctx: &mut TxContext<'_>, sku: &str, units_available: u64, terms: &TermsRecord) -> Result<(), TxError> {
    let mut record = own_sku(ctx, sku)?;
    refuse_open_bids(ctx, sku)?;
    check_terms(ctx, &record.policy, terms)?;
    record.units_available = units_available;
    record.terms = terms.clone();
    ctx.put_record(sku_key(sku), &record)
}

fn withdraw(ctx: &mut TxContext<'_>, sku: &str) -> Result<(), TxError> {
    own_sku(ctx, sku)?;
    refuse_open_bids(ctx, sku)?;
    ctx.delete_record(&sku_key(sku));
    Ok(())
}

fn post_demand(
    ctx: &mut TxContext<'_>,
    resource: &str,
    units: u64,
    max_price: u64,
    location: &str,
) -> Result<(), TxError> {
    check_text("resource", resource, TEXT_BYTES_MAX, false)?;
    check_text("location", location, TEXT_BYTES_MAX, true)?;
    positive("units", units)?;
    positive("max_price", max_price)?;
    let demand = Demand {
        buyer: sender(ctx),
        resource: resource.to_string(),
        units,
        max_price,
        location: location.to_string(),
        placed_at_ms: ctx.env().time_ms,
    };
    ctx.put_record(demand_key(&ctx.tx_id()), &demand)
}

fn cancel_demand(ctx: &mut TxContext<'_>, id: &Hash32) -> Result<(), TxError> {
    let key = demand_key(id);
    match ctx.record::<Demand>(&key)? {
        Some(demand) if demand.buyer == sender(ctx) => {
            ctx.delete_record(&key);
            Ok(())
        }
        _ => Err(market(MarketError::UnknownOrder { what: "demand", id: *id })),
    }
}

fn bid(ctx: &mut TxContext<'_>, sku: &str, units: u64, max_price: u64) -> Result<(), TxError> {
    let record = load_sku(ctx, sku)?;
    if record.terms.round_end_ms == 0 {
        return Err(market(MarketError::WrongMode { sku: sku.to_string(), how: "sells at once: use lock" }));
    }
    if ctx.env().time_ms >= record.terms.round_end_ms {
        return Err(market(MarketError::RoundClosed { sku: sku.to_string(), round_end_ms: record.terms.round_end_ms }));
    }
    positive("units", units)?;
    positive("max_price", max_price)?;
    let bids = open_bids(ctx, sku).len();
    if bids >= BIDS_PER_SKU_MAX {
        return Err(market(MarketError::OpenBids { sku: sku.to_string(), bids }));
    }
    let buyer = sender(ctx);
    ctx.debit(&buyer, max_price)?;
    let placed = Bid { buyer, units, max_price, placed_at_ms: ctx.env().time_ms };
    ctx.put_record(bid_key(sku, &ctx.tx_id()), &placed)
}

fn cancel_bid(ctx: &mut TxContext<'_>, sku: &str, id: &Hash32) -> Result<(), TxError> {
    let record = load_sku(ctx, sku)?;
    if ctx.env().time_ms >= record.terms.round_end_ms {
        return Err(market(MarketError::RoundClosed { sku: sku.to_string(), round_end_ms: record.terms.round_end_ms }));
    }
    let key = bid_key(sku, id);
    match ctx.record::<Bid>(&key)? {
        Some(placed) if placed.buyer == sender(ctx) => {
            ctx.delete_record(&key);
            ctx.credit(&placed.buyer, placed.max_price)
        }
        _ => Err(market(MarketError::UnknownOrder { what: "bid", id: *id })),
    }
}

fn decode_bids(ctx: &TxContext<'_>, sku: &str) -> Result<Vec<(Hash32, Bid)>, TxError> {
    let prefix_len = bid_prefix(sku).len();
    let mut bids = Vec::new();
    for (key, bytes) in open_bids(ctx, sku) {
        let corrupt = || TxError::CorruptRecord { key: String::from_utf8_lossy(&key).into_owned() };
        let id = std::str::from_utf8(&key[prefix_len..]).ok().and_then(|hex| Hash32::from_hex(hex).ok());
        let bid: Bid = borsh::from_slice(&bytes).map_err(|_| corrupt())?;
        bids.push((id.ok_or_else(corrupt)?, bid));
    }
    // Placement order, so the policy sees the same sequence on every node.
    bids.sort_by_key(|(id, bid)| (bid.placed_at_ms, id.0));
    Ok(bids)
}

fn close(ctx: &mut TxContext<'_>, sku: &str) -> Result<(), TxError> {
    let mut record = load_sku(ctx, sku)?;
    let round_end_ms = record.terms.round_end_ms;
    if round_end_ms == 0 {
        return Err(market(MarketError::WrongMode { sku: sku.to_string(), how: "sells at once: nothing to close" }));
    }
    if ctx.env().time_ms < round_end_ms {
        return Err(market(MarketError::RoundOpen { sku: sku.to_string(), round_end_ms }));
    }
    let bids = decode_bids(ctx, sku)?;
    let orders: Vec<Order> = bids
        .iter()
        .map(|(id, bid)| Order {
            id: *id,
            buyer: bid.buyer,
            units: bid.units,
            max_price: bid.max_price,
            placed_at_ms: bid.placed_at_ms,
        })
        .collect();
    let round = Round {
        terms: record.terms.to_sdk(),
        orders: orders.into(),
        units_available: record.units_available,
        now_ms: ctx.env().time_ms,
    };
    let matches = ctx.markets().clear(&record.policy, round).map_err(market)?;
    for (id, bid) in &bids {
        ctx.delete_record(&bid_key(sku, id));
        let won = matches.iter().find(|m| m.order_id == *id);
        let price = match won {
            Some(matched) if matched.price <= bid.max_price && matched.buyer == bid.buyer => matched.price,
            Some(_) => return Err(policy_broke(&record.policy, "matched a bid above its maximum")),
            None => 0,
        };
        ctx.credit(&bid.buyer, bid.max_price - price)?;
        if let Some(matched) = won {
            open_lock(ctx, &mut record, sku, *id, matched.buyer, matched.units, price)?;
        }
    }
    // The round is over: the SKU stays shelved with its round closed.
    ctx.put_record(sku_key(sku), &record)
}

fn policy_broke(policy: &str, what: &str) -> TxError {
    market(MarketError::Policy { policy: policy.to_string(), reason: what.to_string() })
}

/// Records a lock of `escrow` (already taken from the buyer) and the sale on the SKU.
fn open_lock(
    ctx: &mut TxContext<'_>,
    record: &mut Sku,
    sku: &str,
    id: Hash32,
    buyer: PublicKey,
    units: u64,
    escrow: u64,
) -> Result<(), TxError> {
    let now_ms = ctx.env().time_ms;
    record.units_available = record
        .units_available
        .checked_sub(units)
        .ok_or_else(|| policy_broke(&record.policy, "sold more units than available"))?;
    record.units_sold = record.units_sold.checked_add(units).ok_or(market(MarketError::Overflow("units sold")))?;
    record.recent_prices.push((now_ms, escrow / units.max(1)));
    if record.recent_prices.len() > RECENT_PRICES_MAX {
        record.recent_prices.remove(0);
    }
    let lock = Lock {
        sku: sku.to_string(),
        provider: record.provider,
        buyer,
        policy: record.policy.clone(),
        terms: record.terms.clone(),
        units,
        escrow,
        locked_at_ms: now_ms,
        reported: None,
        confirmed: false,
    };
    ctx.put_record(lock_key(&id), &lock)
}

fn lock(ctx: &mut TxContext<'_>, sku: &str, units: u64, max_price: u64) -> Result<(), TxError> {
    let mut record = load_sku(ctx, sku)?;
    if record.terms.round_end_ms != 0 {
        return Err(market(MarketError::WrongMode { sku: sku.to_string(), how: "sells by auction: use bid" }));
    }
    positive("units", units)?;
    let buyer = sender(ctx);
    let id = ctx.tx_id();
    let order = Order { id, buyer, units, max_price, placed_at_ms: ctx.env().time_ms };
    let round = Round {
        terms: record.terms.to_sdk(),
        orders: vec![order].into(),
        units_available: record.units_available,
        now_ms: ctx.env().time_ms,
    };
    let matches = ctx.markets().clear(&record.policy, round).map_err(market)?;
    let [matched] = matches.as_slice() else {
        return Err(policy_broke(&record.policy, "did not match the order"));
    };
    if matched.order_id != id || matched.buyer != buyer || matched.price > max_price || matched.units != units {
        return Err(policy_broke(&record.policy, "matched other than the order"));
    }
    ctx.debit(&buyer, matched.price)?;
    open_lock(ctx, &mut record, sku, id, buyer, units, matched.price)?;
    ctx.put_record(sku_key(sku), &record)
}

fn load_lock(ctx: &TxContext<'_>, id: &Hash32) -> Result<Lock, TxError> {
    ctx.record::<Lock>(&lock_key(id))?.ok_or(market(MarketError::UnknownLock(*id)))
}

fn report(ctx: &mut TxContext<'_>, id: &Hash32, units_used: u64) -> Result<(), TxError> {
    let mut lock = load_lock(ctx, id)?;
    if lock.provider != sender(ctx) {
        return Err(market(MarketError::NotParty { lock: *id, role: "provider" }));
    }
    if lock.reported.is_some() {
        return Err(market(MarketError::Already { lock: *id, what: "reported" }));
    }
    lock.reported = Some((units_used, ctx.env().time_ms));
    ctx.put_record(lock_key(id), &lock)
}

fn confirm(ctx: &mut TxContext<'_>, id: &Hash32) -> Result<(), TxError> {
    let mut lock = load_lock(ctx, id)?;
    if lock.buyer != sender(ctx) {
        return Err(market(MarketError::NotParty { lock: *id, role: "buyer" }));
    }
    if lock.confirmed {
        return Err(market(MarketError::Already { lock: *id, what: "confirmed" }));
    }
    lock.confirmed = true;
    ctx.put_record(lock_key(id), &lock)
}

fn usage(lock: &Lock, id: &Hash32, now_ms: u64) -> Usage {
    Usage {
        order_id: *id,
        units_locked: lock.units,
        units_used: lock.reported.map_or(0, |(used, _)| used),
        escrow: lock.escrow,
        reported: lock.reported.is_some(),
        confirmed: lock.confirmed,
        locked_at_ms: lock.locked_at_ms,
        reported_at_ms: lock.reported.map_or(0, |(_, at)| at),
        now_ms,
    }
}

fn settle(ctx: &mut TxContext<'_>, id: &Hash32) -> Result<(), TxError> {
    let lock = load_lock(ctx, id)?;
    let from = sender(ctx);
    if from != lock.provider && from != lock.buyer {
        return Err(market(MarketError::NotParty { lock: *id, role: "provider or buyer" }));
    }
    let payout = ctx
        .markets()
        .settle(&lock.policy, &lock.terms.to_sdk(), usage(&lock, id, ctx.env().time_ms))
        .map_err(market)?;
    let refund =
        lock.escrow.checked_sub(payout).ok_or_else(|| policy_broke(&lock.policy, "paid out more than the escrow"))?;
    ctx.delete_record(&lock_key(id));
    ctx.credit(&lock.provider, payout)?;
    ctx.credit(&lock.buyer, refund)
}

fn refund(ctx: &mut TxContext<'_>, id: &Hash32) -> Result<(), TxError> {
    let lock = load_lock(ctx, id)?;
    let from = sender(ctx);
    if from != lock.provider && from != lock.buyer {
        return Err(market(MarketError::NotParty { lock: *id, role: "provider or buyer" }));
    }
    let now_ms = ctx.env().time_ms;
    let deadline_ms = lock.locked_at_ms.saturating_add(lock.terms.deadline_ms);
    if now_ms < deadline_ms {
        return Err(market(MarketError::NotRefundable {
            lock: *id,
            reason: format!("its deadline is {deadline_ms} ms"),
        }));
    }
    if ctx.markets().settle(&lock.policy, &lock.terms.to_sdk(), usage(&lock, id, now_ms)).is_ok() {
        return Err(market(MarketError::NotRefundable { lock: *id, reason: "it can be settled".into() }));
    }
    ctx.delete_record(&lock_key(id));
    ctx.credit(&lock.buyer, lock.escrow)
}

/// Sum of all escrow held in market records (bids and locks) of a record listing.
pub fn escrow_total<'a>(records: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Result<u128, String> {
    let mut total: u128 = 0;
    for (key, value) in records {
        let amount = if key.starts_with(LOCK_PREFIX) {
            borsh::from_slice::<Lock>(value).map_err(|e| e.to_string())?.escrow
        } else if key.starts_with(BID_PREFIX) {
            borsh::from_slice::<Bid>(value).map_err(|e| e.to_string())?.max_price
        } else {
            0
        };
        total += u128::from(amount);
    }
    Ok(total)
}
