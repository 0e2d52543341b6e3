//! Give a console session the market: `market(sku)` objects and the `market` table.
//!
//! `market("wifi")` has `:strategy(f | source | "file.lua")`, `:versions()`,
//! `:rollback(v)`, `:quote(ctx)`, `:chart{...}`, `:shelve{...}`, `:update{...}`,
//! `:withdraw()`, `:lock{...}`, `:bid{...}`, `:close()`, `:book()`, `:prices()`;
//! the table has `skus()`, `demands()`, `locks()`, `strategies()`, `demand{...}`,
//! `report(lock, units)`, `confirm(lock)`, `settle(lock)`, `refund(lock)` and `buy{...}`,
//! the buying policy. Every operation is a [`MarketOp`] through [`ops::market`].

use super::ConsoleContext;
use crate::crypto::SecretKey;
use crate::ledger::market::{MarketTx, TermsRecord};
use crate::ledger::tx::{TxBody, UnsignedTx, gas_of};
use crate::market::{MarketOp, PricingContext};
use crate::node::QueryError;
use crate::ops;
use mlua::{Function, Lua, LuaSerdeExt, Table, Value};
use nest_sdk::Hash32;
use serde_json::Value as Json;
use std::sync::{Arc, atomic::Ordering};
use std::time::{Duration, Instant};

/// Methods of the value `market(sku)` returns (also offered by completion).
pub const MARKET_METHODS: [&str; 13] = [
    "strategy", "versions", "rollback", "quote", "chart", "shelve", "update", "withdraw", "lock", "bid", "close",
    "book", "prices",
];
/// Width of the bars of `:chart`, in characters.
const CHART_WIDTH: usize = 40;
/// Offers the buying policy considers.
const BUY_OFFERS_MAX: usize = 64;
/// How often the buying policy looks again for an offer while it waits.
const BUY_POLL_MS: u64 = 200;

/// The text of the chunk being evaluated, so `:strategy(function ... end)` can store the
/// function's source (set by `session::evaluate`).
pub struct ChunkText(pub String);

fn runtime(message: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(message.into())
}

fn failed(error: QueryError) -> mlua::Error {
    runtime(error.to_string())
}

fn to_lua(lua: &Lua, value: &Json) -> mlua::Result<Value> {
    lua.to_value(value)
}

fn ask(ctx: &ConsoleContext, op: MarketOp) -> mlua::Result<Json> {
    ops::market(&ctx.node.requests, op).map_err(failed)
}

/// The source of a Lua function defined in the current chunk, as a chunk returning it.
fn function_source(lua: &Lua, function: &Function) -> mlua::Result<String> {
    let info = function.info();
    let (Some(first), Some(last)) = (info.line_defined, info.last_line_defined) else {
        return Err(runtime("strategy: pass a Lua function, its source text, or a .lua file path"));
    };
    let chunk = lua.app_data_ref::<ChunkText>().ok_or_else(|| runtime("strategy: no chunk text"))?;
    let lines: Vec<&str> = chunk.0.lines().skip(first.saturating_sub(1)).take(last + 1 - first).collect();
    let text = lines.join("\n");
    let start = text.find("function").ok_or_else(|| runtime("strategy: function source not found"))?;
    let end = text.rfind("end").ok_or_else(|| runtime("strategy: function source not found"))? + 3;
    if end <= start {
        return Err(runtime("strategy: function source not found"));
    }
    Ok(format!("return {}", &text[start..end]))
}

/// A strategy argument: a function, a `.lua` file path, or source text.
fn strategy_source(lua: &Lua, value: Value) -> mlua::Result<String> {
    match value {
        Value::Function(function) => function_source(lua, &function),
        Value::String(text) => {
            let text = text.to_str()?.to_string();
            if text.ends_with(".lua") && !text.contains('\n') {
                std::fs::read_to_string(&text).map_err(|e| runtime(format!("strategy file {text}: {e}")))
            } else {
                Ok(text)
            }
        }
        other => Err(runtime(format!("strategy: expected a function, source or file, not a {}", other.type_name()))),
    }
}

fn context_from(lua: &Lua, value: Option<Value>) -> mlua::Result<PricingContext> {
    match value {
        None | Some(Value::Nil) => Ok(PricingContext::default()),
        Some(value) => lua.from_value(value).map_err(|e| runtime(format!("pricing context: {e}"))),
    }
}

/// The signing key of a market call: `from_key_file = "path"`, else the node key.
fn signer(ctx: &ConsoleContext, args: &Table) -> mlua::Result<Arc<SecretKey>> {
    match args.get::<Option<String>>("from_key_file")? {
        Some(path) => {
            SecretKey::read(std::path::Path::new(&path)).map(Arc::new).map_err(|e| runtime(format!("{path}: {e}")))
        }
        None => Ok(ctx.node.key.clone()),
    }
}

/// Signs and submits a market transaction; returns its id.
fn send(ctx: &ConsoleContext, args: &Table, body: MarketTx) -> mlua::Result<String> {
    let chain: String = args.get::<Option<String>>("chain")?.unwrap_or_else(|| "main".into());
    let key = signer(ctx, args)?;
    let status = ctx.node.status.read().map(|s| s.clone()).map_err(|_| runtime("status unavailable"))?;
    let chain_status =
        status.chains.iter().find(|c| c.id == chain).ok_or_else(|| runtime(format!("no chain \"{chain}\"")))?;
    let body = TxBody::Market(body);
    let fee = gas_of(&body).saturating_mul(chain_status.gas_price);
    let nonce = ops::account(&ctx.node.requests, &chain, key.public_key()).map_err(failed)?.next_nonce;
    let tx = UnsignedTx { chain: chain_status.genesis_hash, from: key.public_key(), nonce, fee, body }.sign(&key);
    let answer = ask(ctx, MarketOp::Submit { chain, tx: Box::new(tx) })?;
    Ok(answer["hash"].as_str().unwrap_or_default().to_string())
}

/// A non-negative integer field of an argument table, with a message naming it.
fn amount(args: &Table, field: &str) -> mlua::Result<u64> {
    match args.get::<Value>(field)? {
        Value::Integer(value) if value >= 0 => Ok(value as u64),
        Value::Nil => Err(runtime(format!("{field}: missing"))),
        other => Err(runtime(format!("{field}: expected a non-negative integer, got {}", other.to_string()?))),
    }
}

fn lock_id(text: &str) -> mlua::Result<Hash32> {
    Hash32::from_hex(text).map_err(|e| runtime(format!("lock id: {e}")))
}

fn terms_from(args: &Table) -> mlua::Result<TermsRecord> {
    let tiers: Option<Vec<Vec<u64>>> = args.get("tiers")?;
    let tiers = tiers
        .unwrap_or_default()
        .into_iter()
        .map(|tier| match tier.as_slice() {
            [from, price] => Ok((*from, *price)),
            _ => Err(runtime("tiers: each tier is {from_units, unit_price}")),
        })
        .collect::<mlua::Result<Vec<_>>>()?;
    Ok(TermsRecord {
        unit_price: args.get::<Option<u64>>("unit_price")?.unwrap_or(0),
        reserve_price: args.get::<Option<u64>>("reserve_price")?.unwrap_or(0),
        tiers,
        deadline_ms: args.get::<Option<u64>>("deadline_ms")?.unwrap_or(60_000),
        round_end_ms: args.get::<Option<u64>>("round_end_ms")?.unwrap_or(0),
    })
}

/// The unit price for new terms: given, or what the SKU's strategy quotes now.
fn priced_terms(ctx: &ConsoleContext, sku: &str, args: &Table) -> mlua::Result<TermsRecord> {
    let mut terms = terms_from(args)?;
    if args.get::<Option<u64>>("unit_price")?.is_none() {
        let context = PricingContext { units: 1, ..PricingContext::default() };
        let policy = args.get::<Option<String>>("policy")?;
        let quote = ask(ctx, MarketOp::Quote { sku: sku.to_string(), policy, context })?;
        terms.unit_price = quote["unit_price"].as_u64().unwrap_or(0);
        if terms.round_end_ms != 0 && terms.reserve_price == 0 {
            terms.reserve_price = terms.unit_price;
        }
    }
    Ok(terms)
}

/// A text chart of `(utilization, unit price)` points, one bar per line.
fn text_chart(sku: &str, points: &[Json]) -> String {
    let price = |p: &Json| p["unit_price"].as_u64().unwrap_or(0);
    let top = points.iter().map(price).max().unwrap_or(0).max(1);
    let mut text = format!("{sku}: unit price (µNEST) over utilization\n");
    for point in points {
        let bar = (price(point) as u128 * CHART_WIDTH as u128 / top as u128) as usize;
        let utilization = point["utilization"].as_f64().unwrap_or(0.0) * 100.0;
        text.push_str(&format!(
            "{utilization:>5.1}% |{:<width$}| {}\n",
            "#".repeat(bar),
            price(point),
            width = CHART_WIDTH
        ));
    }
    text
}

fn sku_methods(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<Table> {
    let methods = lua.create_table()?;
    let id = |this: &Table| this.get::<String>("sku");
    let c = ctx.clone();
    methods.set(
        "strategy",
        lua.create_function(move |lua, (this, value): (Table, Value)| {
            let source = strategy_source(lua, value)?;
            to_lua(lua, &ask(&c, MarketOp::InstallStrategy { sku: id(&this)?, source })?)
        })?,
    )?;
    let c = ctx.clone();
    methods.set(
        "versions",
        lua.create_function(move |lua, this: Table| {
            to_lua(lua, &ask(&c, MarketOp::Strategies { sku: Some(id(&this)?) })?)
        })?,
    )?;
    let c = ctx.clone();
    methods.set(
        "rollback",
        lua.create_function(move |lua, (this, version): (Table, u32)| {
            to_lua(lua, &ask(&c, MarketOp::Rollback { sku: id(&this)?, version })?)
        })?,
    )?;
    let c = ctx.clone();
    methods.set(
        "quote",
        lua.create_function(move |lua, (this, context): (Table, Option<Table>)| {
            let policy = context.as_ref().map(|c| c.get::<Option<String>>("policy")).transpose()?.flatten();
            let context = context_from(lua, context.map(Value::Table))?;
            to_lua(lua, &ask(&c, MarketOp::Quote { sku: id(&this)?, policy, context })?)
        })?,
    )?;
    let c = ctx.clone();
    methods.set(
        "chart",
        lua.create_function(move |lua, (this, args): (Table, Option<Table>)| {
            let points = args.as_ref().map(|a| a.get::<Option<usize>>("points")).transpose()?.flatten().unwrap_or(11);
            let context = context_from(lua, args.map(Value::Table))?;
            let sku = id(&this)?;
            let series = ask(&c, MarketOp::Chart { sku: sku.clone(), points, context })?;
            Ok(text_chart(&sku, series.as_array().map(Vec::as_slice).unwrap_or_default()))
        })?,
    )?;
    install_trading(lua, ctx, &methods)?;
    Ok(methods)
}

fn install_trading(lua: &Lua, ctx: &Arc<ConsoleContext>, methods: &Table) -> mlua::Result<()> {
    let id = |this: &Table| this.get::<String>("sku");
    let c = ctx.clone();
    methods.set(
        "shelve",
        lua.create_function(move |_, (this, args): (Table, Table)| {
            let sku = id(&this)?;
            let terms = priced_terms(&c, &sku, &args)?;
            let body = MarketTx::Shelve {
                sku,
                policy: args.get("policy")?,
                resource: args.get::<Option<String>>("resource")?.unwrap_or_else(|| "network".into()),
                unit: args.get::<Option<String>>("unit")?.unwrap_or_else(|| "unit".into()),
                location: args.get::<Option<String>>("location")?.unwrap_or_default(),
                units_available: amount(&args, "units")?,
                terms,
            };
            send(&c, &args, body)
        })?,
    )?;
    let c = ctx.clone();
    methods.set(
        "update",
        lua.create_function(move |_, (this, args): (Table, Table)| {
            let sku = id(&this)?;
            let terms = priced_terms(&c, &sku, &args)?;
            send(&c, &args, MarketTx::Update { sku, units_available: amount(&args, "units")?, terms })
        })?,
    )?;
    methods.set("withdraw", sku_method(lua, ctx, |sku| MarketTx::Withdraw { sku })?)?;
    methods.set("close", sku_method(lua, ctx, |sku| MarketTx::Close { sku })?)?;
    methods.set("lock", order_method(lua, ctx, |sku, units, max_price| MarketTx::Lock { sku, units, max_price })?)?;
    methods.set("bid", order_method(lua, ctx, |sku, units, max_price| MarketTx::Bid { sku, units, max_price })?)?;
    let c = ctx.clone();
    methods.set(
        "book",
        lua.create_function(move |lua, (this, chain): (Table, Option<String>)| {
            let chain = chain.unwrap_or_else(|| "main".into());
            to_lua(lua, &ask(&c, MarketOp::Book { chain, sku: id(&this)? })?)
        })?,
    )?;
    let c = ctx.clone();
    methods.set(
        "prices",
        lua.create_function(move |lua, (this, chain): (Table, Option<String>)| {
            let chain = chain.unwrap_or_else(|| "main".into());
            let book = ask(&c, MarketOp::Book { chain, sku: id(&this)? })?;
            to_lua(lua, &book["recent_prices"])
        })?,
    )?;
    Ok(())
}

/// `market(sku):withdraw([args])` and `:close([args])`: a transaction naming the SKU.
fn sku_method(lua: &Lua, ctx: &Arc<ConsoleContext>, body: fn(String) -> MarketTx) -> mlua::Result<Function> {
    let c = ctx.clone();
    lua.create_function(move |lua, (this, args): (Table, Option<Table>)| {
        let args = args.map_or_else(|| lua.create_table(), Ok)?;
        send(&c, &args, body(this.get("sku")?))
    })
}

/// `market(sku):lock{units=, max_price=}` and `:bid{...}`: an order on the SKU.
fn order_method(
    lua: &Lua,
    ctx: &Arc<ConsoleContext>,
    body: fn(String, u64, u64) -> MarketTx,
) -> mlua::Result<Function> {
    let c = ctx.clone();
    lua.create_function(move |_, (this, args): (Table, Table)| {
        let order = body(this.get("sku")?, amount(&args, "units")?, amount(&args, "max_price")?);
        send(&c, &args, order)
    })
}

/// `market.report(lock, units [, args])` and the other lock operations.
fn lock_function(lua: &Lua, ctx: &Arc<ConsoleContext>, body: fn(Hash32, u64) -> MarketTx) -> mlua::Result<Function> {
    let c = ctx.clone();
    lua.create_function(move |lua, (lock, units, args): (String, Option<u64>, Option<Table>)| {
        let args = args.map_or_else(|| lua.create_table(), Ok)?;
        send(&c, &args, body(lock_id(&lock)?, units.unwrap_or(0)))
    })
}

/// Installs `market` (callable: `market(sku)`) as a global.
pub fn install(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<()> {
    let meta = lua.create_table()?;
    meta.set("__index", sku_methods(lua, ctx)?)?;
    let market = lua.create_table()?;
    let chain_listing = |op: fn(String) -> MarketOp| {
        let c = ctx.clone();
        lua.create_function(move |lua, chain: Option<String>| {
            to_lua(lua, &ask(&c, op(chain.unwrap_or_else(|| "main".into())))?)
        })
    };
    market.set("skus", chain_listing(|chain| MarketOp::Skus { chain })?)?;
    market.set("demands", chain_listing(|chain| MarketOp::Demands { chain })?)?;
    market.set("locks", chain_listing(|chain| MarketOp::Locks { chain, party: None })?)?;
    let c = ctx.clone();
    market.set(
        "strategies",
        lua.create_function(move |lua, ()| to_lua(lua, &ask(&c, MarketOp::Strategies { sku: None })?))?,
    )?;
    let c = ctx.clone();
    market.set(
        "demand",
        lua.create_function(move |_, args: Table| {
            let body = MarketTx::PostDemand {
                resource: args.get("resource")?,
                units: amount(&args, "units")?,
                max_price: amount(&args, "max_price")?,
                location: args.get::<Option<String>>("location")?.unwrap_or_default(),
            };
            send(&c, &args, body)
        })?,
    )?;
    market.set("report", lock_function(lua, ctx, |lock, units_used| MarketTx::Report { lock, units_used })?)?;
    market.set("confirm", lock_function(lua, ctx, |lock, _| MarketTx::Confirm { lock })?)?;
    market.set("settle", lock_function(lua, ctx, |lock, _| MarketTx::Settle { lock })?)?;
    market.set("refund", lock_function(lua, ctx, |lock, _| MarketTx::Refund { lock })?)?;
    let c = ctx.clone();
    market.set("buy", lua.create_function(move |lua, args: Table| buy(lua, &c, args))?)?;
    let call_meta = lua.create_table()?;
    call_meta.set(
        "__call",
        lua.create_function(move |lua, (_, sku): (Table, String)| {
            let object = lua.create_table()?;
            object.set("sku", sku)?;
            object.set_metatable(Some(meta.clone()))?;
            Ok(object)
        })?,
    )?;
    market.set_metatable(Some(call_meta))?;
    lua.globals().set("market", market)
}

/// What the operator allows one purchase of the buying policy.
struct BuyLimits {
    resource: String,
    units: u64,
    max_unit_price: u64,
    /// Most the purchase may cost: `max_total`, at most `units × max_unit_price`.
    budget: u64,
    location: Option<String>,
}

impl BuyLimits {
    fn from_args(args: &Table) -> mlua::Result<BuyLimits> {
        let units = amount(args, "units")?;
        let max_unit_price = amount(args, "max_unit_price")?;
        let max_total = args.get::<Option<u64>>("max_total")?.unwrap_or(u64::MAX);
        Ok(BuyLimits {
            resource: args.get("resource")?,
            units,
            max_unit_price,
            budget: max_total.min(units.saturating_mul(max_unit_price)),
            location: args.get("location")?,
        })
    }

    /// Whether an SKU (as listed) sells at once, enough units, within the limits.
    fn admits(&self, sku: &Json) -> bool {
        let unit_price = sku["terms"]["unit_price"].as_u64().unwrap_or(u64::MAX);
        sku["resource"] == *self.resource.as_str()
            && sku["terms"]["round_end_ms"] == 0
            && sku["units_available"].as_u64().unwrap_or(0) >= self.units
            && self.location.as_ref().is_none_or(|place| sku["location"] == *place.as_str())
            && unit_price <= self.max_unit_price
            && unit_price.saturating_mul(self.units) <= self.budget
    }
}

/// The buying policy: `market.buy{resource=, units=, max_unit_price=, max_total=?,
/// location=?, prefer=function(a, b) return a_is_better end?, demand=true?, wait_ms=0?}`.
///
/// Posts a demand (unless `demand = false`), looks at the chain's SKUs of that resource
/// that sell at once with enough units within the operator's limits (`max_unit_price`
/// per unit, `max_total` for the purchase, `location`), orders them by `prefer`
/// (default: cheapest) and locks the best. With `wait_ms`, it keeps looking (every
/// [`BUY_POLL_MS`], until Ctrl-C) for an offer to appear. Returns
/// `{sku=, lock=, price=, demand=}`, or `nil` and the reason when no offer fits.
fn buy(lua: &Lua, ctx: &ConsoleContext, args: Table) -> mlua::Result<(Value, Option<String>)> {
    let limits = BuyLimits::from_args(&args)?;
    let chain: String = args.get::<Option<String>>("chain")?.unwrap_or_else(|| "main".into());
    let wait = Duration::from_millis(args.get::<Option<u64>>("wait_ms")?.unwrap_or(0));
    let demand = if args.get::<Option<bool>>("demand")?.unwrap_or(true) {
        let body = MarketTx::PostDemand {
            resource: limits.resource.clone(),
            units: limits.units,
            max_price: limits.budget,
            location: limits.location.clone().unwrap_or_default(),
        };
        Some(send(ctx, &args, body)?)
    } else {
        None
    };
    let started = Instant::now();
    let offers = loop {
        let skus = ask(ctx, MarketOp::Skus { chain: chain.clone() })?;
        let listed = skus.as_array().map(Vec::as_slice).unwrap_or_default();
        let offers: Vec<Json> = listed.iter().filter(|sku| limits.admits(sku)).take(BUY_OFFERS_MAX).cloned().collect();
        if !offers.is_empty() || started.elapsed() >= wait || ctx.cancel.load(Ordering::Relaxed) {
            break offers;
        }
        std::thread::sleep(Duration::from_millis(BUY_POLL_MS));
    };
    let price_of = |sku: &Json| sku["terms"]["unit_price"].as_u64().unwrap_or(u64::MAX);
    let mut offers = offers;
    offers.sort_by_key(price_of);
    if let Some(prefer) = args.get::<Option<Function>>("prefer")? {
        offers = prefer_sort(lua, &prefer, offers)?;
    }
    let Some(best) = offers.first() else {
        let BuyLimits { resource, units, max_unit_price, .. } = &limits;
        return Ok((
            Value::Nil,
            Some(format!("no {resource} offer of {units} units within {max_unit_price} µNEST per unit")),
        ));
    };
    let sku = best["id"].as_str().unwrap_or_default().to_string();
    let price = price_of(best).saturating_mul(limits.units);
    let lock = send(ctx, &args, MarketTx::Lock { sku: sku.clone(), units: limits.units, max_price: price })?;
    let answer = serde_json::json!({ "sku": sku, "lock": lock, "price": price, "demand": demand });
    Ok((to_lua(lua, &answer)?, None))
}

/// Orders offers with the operator's `prefer(a, b)` (true when `a` is better), stably.
fn prefer_sort(lua: &Lua, prefer: &Function, offers: Vec<Json>) -> mlua::Result<Vec<Json>> {
    let mut sorted: Vec<Json> = Vec::with_capacity(offers.len());
    for offer in offers {
        let mut at = sorted.len();
        for (index, placed) in sorted.iter().enumerate() {
            if prefer.call::<bool>((to_lua(lua, &offer)?, to_lua(lua, placed)?))? {
                at = index;
                break;
            }
        }
        sorted.insert(at, offer);
    }
    Ok(sorted)
}
