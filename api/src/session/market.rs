//! Give a console session the market: `market(sku)` objects and the `market` table.
//!
//! `market("wifi")` has `:strategy(f | source | "file.lua")` (a file is read where the
//! console runs, see [`super::FileSource`]), `:versions()`, `:source(v)`,
//! `:rollback(v)`, `:quote(ctx)`, `:chart{...}`, `:shelve{...}`, `:update{...}`,
//! `:withdraw()`, `:lock{...}`, `:bid{...}`, `:close()`, `:book()`, `:prices()`;
//! the table has `skus()`, `demands()`, `locks()`, `strategies()`, `demand{...}`,
//! `report(lock, units)`, `confirm(lock)`, `settle(lock)`, `refund(lock)` and `buy{...}`,
//! the buying policy. Every operation is a [`MarketOp`] through [`ops::market`].

use super::ConsoleContext;
use super::args::{self, Args, Fields, runtime};
use super::bindings::{find_chain, function, saturating_usize};
use crate::crypto::SecretKey;
use crate::ledger::market::{MarketTx, TermsRecord};
use crate::ledger::tx::{TxBody, UnsignedTx, gas_of};
use crate::market::{MarketOp, PricingContext};
use crate::node::QueryError;
use crate::ops;
use mlua::{Function, IntoLuaMulti, Lua, LuaSerdeExt, MultiValue, Table, Value};
use nest_sdk::Hash32;
use serde_json::Value as Json;
use std::sync::{Arc, atomic::Ordering};
use std::time::{Duration, Instant};

/// Methods of the value `market(sku)` returns (also offered by completion).
pub const MARKET_METHODS: [&str; 14] = [
    "strategy", "versions", "source", "rollback", "quote", "chart", "shelve", "update", "withdraw", "lock", "bid",
    "close", "book", "prices",
];
/// Characters of a strategy's first line `:versions()` shows.
const SOURCE_PREVIEW_CHARS_MAX: usize = 48;
/// Width of the bars of `:chart`, in characters.
const CHART_WIDTH: usize = 40;
/// Offers the buying policy considers.
const BUY_OFFERS_MAX: usize = 64;
/// How often the buying policy looks again for an offer while it waits.
const BUY_POLL_MS: u64 = 200;

/// The text of the chunk being evaluated, so `:strategy(function ... end)` can store the
/// function's source (set by `session::evaluate`).
pub struct ChunkText(pub String);

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

/// A strategy argument: a function, a `.lua` file path (read where the console runs), or
/// source text.
fn strategy_source(lua: &Lua, ctx: &ConsoleContext, args: &Args) -> mlua::Result<String> {
    match args.value(0) {
        Value::Function(function) => function_source(lua, function),
        Value::String(_) => {
            let text = args.string(0, "strategy")?;
            if text.ends_with(".lua") && !text.contains('\n') {
                ctx.files.read(&text).map_err(|e| args.error(format!("strategy file {e}")))
            } else {
                Ok(text)
            }
        }
        other => Err(args
            .error(format!("strategy must be a function, its source or a .lua file, got {}", args::describe(other)))),
    }
}

fn context_from(lua: &Lua, fields: &Fields) -> mlua::Result<PricingContext> {
    if fields.as_table().is_empty() {
        return Ok(PricingContext::default());
    }
    lua.from_value(Value::Table(fields.as_table().clone()))
        .map_err(|e| runtime(format!("{}: pricing context: {e}", fields.function())))
}

/// The signing key of a market call: `from_key_file = "path"`, else the node key.
fn signer(ctx: &ConsoleContext, fields: &Fields) -> mlua::Result<Arc<SecretKey>> {
    match fields.optional_string("from_key_file")? {
        Some(path) => ctx.key_file(&path).map(Arc::new).map_err(|e| runtime(format!("{}: {e}", fields.function()))),
        None => Ok(ctx.node.key.clone()),
    }
}

/// Signs and submits a market transaction; returns its id.
fn send(ctx: &ConsoleContext, fields: &Fields, body: MarketTx) -> mlua::Result<String> {
    let chain = fields.chain()?;
    let key = signer(ctx, fields)?;
    let status = ctx.node.status.read().map(|s| s.clone()).map_err(|_| runtime("status unavailable"))?;
    let chain_status = find_chain(&status, fields.function(), &chain)?;
    let body = TxBody::Market(body);
    let fee = gas_of(&body).saturating_mul(chain_status.gas_price);
    let nonce = ops::account(&ctx.node.requests, &chain, key.public_key()).map_err(failed)?.next_nonce;
    let tx = UnsignedTx { chain: chain_status.genesis_hash, from: key.public_key(), nonce, fee, body }.sign(&key);
    let answer = ask(ctx, MarketOp::Submit { chain, tx: Box::new(tx) })?;
    Ok(answer["hash"].as_str().unwrap_or_default().to_string())
}

/// Tiers of terms: `tiers = {{from_units, unit_price}, ...}`.
fn tiers_from(fields: &Fields) -> mlua::Result<Vec<(u64, u64)>> {
    let Some(tiers) = fields.optional_table("tiers")? else { return Ok(Vec::new()) };
    let shape = || fields.error("tiers", "must be a list of {from_units, unit_price}");
    let mut out = Vec::new();
    for tier in tiers.sequence_values::<Value>() {
        let Value::Table(tier) = tier? else { return Err(shape()) };
        let pair = (tier.raw_get::<Value>(1)?, tier.raw_get::<Value>(2)?, tier.raw_len());
        match pair {
            (Value::Integer(from), Value::Integer(price), 2) if from >= 0 && price >= 0 => {
                out.push((from as u64, price as u64))
            }
            _ => return Err(shape()),
        }
    }
    Ok(out)
}

fn terms_from(fields: &Fields) -> mlua::Result<TermsRecord> {
    Ok(TermsRecord {
        unit_price: fields.optional_integer("unit_price")?.unwrap_or(0),
        reserve_price: fields.optional_integer("reserve_price")?.unwrap_or(0),
        tiers: tiers_from(fields)?,
        deadline_ms: fields.optional_integer("deadline_ms")?.unwrap_or(60_000),
        round_end_ms: fields.optional_integer("round_end_ms")?.unwrap_or(0),
    })
}

/// The unit price for new terms: given, or what the SKU's strategy quotes now.
fn priced_terms(ctx: &ConsoleContext, sku: &str, fields: &Fields) -> mlua::Result<TermsRecord> {
    let mut terms = terms_from(fields)?;
    if fields.optional_integer("unit_price")?.is_none() {
        let context = PricingContext { units: 1, ..PricingContext::default() };
        let policy = fields.optional_string("policy")?;
        let quote = ask(ctx, MarketOp::Quote { sku: sku.to_string(), policy, context })?;
        terms.unit_price = quote["unit_price"].as_u64().unwrap_or(0);
        if terms.round_end_ms != 0 && terms.reserve_price == 0 {
            terms.reserve_price = terms.unit_price;
        }
    }
    Ok(terms)
}

/// An SKU's strategy history as one row per version: its number, whether quotes use
/// it, when it was installed, and its size and first line instead of its whole source.
fn version_rows(history: &Json) -> Json {
    let active = history["active"].as_u64();
    let versions = history["versions"].as_array().map(Vec::as_slice).unwrap_or_default();
    let rows = versions.iter().map(|entry| {
        let source = entry["source"].as_str().unwrap_or_default();
        let first = source.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or_default();
        let mut preview: String = first.chars().take(SOURCE_PREVIEW_CHARS_MAX).collect();
        if first.chars().count() > SOURCE_PREVIEW_CHARS_MAX || source.trim().lines().nth(1).is_some() {
            preview.push('…');
        }
        serde_json::json!({
            "version": entry["version"],
            "active": entry["version"].as_u64() == active,
            "installed_at_ms": entry["installed_at_ms"],
            "lines": source.lines().count(),
            "source": preview,
        })
    });
    Json::Array(rows.collect())
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

/// A method of `market(sku)`: `body` gets the SKU and the arguments.
fn sku_method<R: IntoLuaMulti>(
    lua: &Lua,
    ctx: &Arc<ConsoleContext>,
    name: &'static str,
    body: impl Fn(&Lua, &ConsoleContext, String, &Args) -> mlua::Result<R> + Send + 'static,
) -> mlua::Result<Function> {
    let c = ctx.clone();
    lua.create_function(move |lua, values: MultiValue| {
        let (sku, rest) = args::method(values, "sku", &format!("market(sku):{name}"))?;
        let args = Args::new(format!("market({sku:?}):{name}"), rest);
        body(lua, &c, sku, &args)
    })
}

fn sku_methods(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<Table> {
    let methods = lua.create_table()?;
    let strategy = sku_method(lua, ctx, "strategy", |lua, c, sku, args| {
        let source = strategy_source(lua, c, args)?;
        to_lua(lua, &ask(c, MarketOp::InstallStrategy { sku, source })?)
    })?;
    methods.set("strategy", strategy)?;
    let versions = sku_method(lua, ctx, "versions", |lua, c, sku, _| {
        to_lua(lua, &version_rows(&ask(c, MarketOp::Strategies { sku: Some(sku) })?))
    })?;
    methods.set("versions", versions)?;
    let source = sku_method(lua, ctx, "source", |_, c, sku, args| {
        let history = ask(c, MarketOp::Strategies { sku: Some(sku) })?;
        let version = match args.optional_integer(0, "version")? {
            Some(version) => version,
            None => history["active"].as_u64().unwrap_or_default(),
        };
        let versions = history["versions"].as_array().map(Vec::as_slice).unwrap_or_default();
        let found = versions.iter().find(|v| v["version"].as_u64() == Some(version));
        let found = found.ok_or_else(|| args.error(format!("no version {version}")))?;
        Ok(found["source"].as_str().unwrap_or_default().to_string())
    })?;
    methods.set("source", source)?;
    let rollback = sku_method(lua, ctx, "rollback", |lua, c, sku, args| {
        let version = args.integer(0, "version")?;
        let version = u32::try_from(version).map_err(|_| args.error(format!("no version {version}")))?;
        to_lua(lua, &ask(c, MarketOp::Rollback { sku, version })?)
    })?;
    methods.set("rollback", rollback)?;
    let quote = sku_method(lua, ctx, "quote", |lua, c, sku, args| {
        let fields = args.fields(lua, 0, "the pricing context")?;
        let policy = fields.optional_string("policy")?;
        let context = context_from(lua, &fields)?;
        to_lua(lua, &ask(c, MarketOp::Quote { sku, policy, context })?)
    })?;
    methods.set("quote", quote)?;
    let chart = sku_method(lua, ctx, "chart", |lua, c, sku, args| {
        let fields = args.fields(lua, 0, "the pricing context")?;
        let points = fields.optional_integer("points")?.map_or(11, saturating_usize);
        let context = context_from(lua, &fields)?;
        let series = ask(c, MarketOp::Chart { sku: sku.clone(), points, context })?;
        Ok(text_chart(&sku, series.as_array().map(Vec::as_slice).unwrap_or_default()))
    })?;
    methods.set("chart", chart)?;
    install_trading(lua, ctx, &methods)?;
    Ok(methods)
}

fn install_trading(lua: &Lua, ctx: &Arc<ConsoleContext>, methods: &Table) -> mlua::Result<()> {
    let shelve = sku_method(lua, ctx, "shelve", |_, c, sku, args| {
        let fields = args.required_fields(0, "the offer")?;
        let terms = priced_terms(c, &sku, &fields)?;
        let body = MarketTx::Shelve {
            sku,
            policy: fields.string("policy")?,
            resource: fields.optional_string("resource")?.unwrap_or_else(|| "network".into()),
            unit: fields.optional_string("unit")?.unwrap_or_else(|| "unit".into()),
            location: fields.optional_string("location")?.unwrap_or_default(),
            units_available: fields.integer("units")?,
            terms,
        };
        send(c, &fields, body)
    })?;
    methods.set("shelve", shelve)?;
    let update = sku_method(lua, ctx, "update", |_, c, sku, args| {
        let fields = args.required_fields(0, "the offer")?;
        let terms = priced_terms(c, &sku, &fields)?;
        send(c, &fields, MarketTx::Update { sku, units_available: fields.integer("units")?, terms })
    })?;
    methods.set("update", update)?;
    methods.set("withdraw", sku_transaction(lua, ctx, "withdraw", |sku| MarketTx::Withdraw { sku })?)?;
    methods.set("close", sku_transaction(lua, ctx, "close", |sku| MarketTx::Close { sku })?)?;
    let lock = |sku, units, max_price| MarketTx::Lock { sku, units, max_price };
    methods.set("lock", order_method(lua, ctx, "lock", lock)?)?;
    let bid = |sku, units, max_price| MarketTx::Bid { sku, units, max_price };
    methods.set("bid", order_method(lua, ctx, "bid", bid)?)?;
    let book = sku_method(lua, ctx, "book", |lua, c, sku, args| {
        let chain = args.optional_string(0, "chain")?.unwrap_or_else(|| "main".into());
        to_lua(lua, &ask(c, MarketOp::Book { chain, sku })?)
    })?;
    methods.set("book", book)?;
    let prices = sku_method(lua, ctx, "prices", |lua, c, sku, args| {
        let chain = args.optional_string(0, "chain")?.unwrap_or_else(|| "main".into());
        let book = ask(c, MarketOp::Book { chain, sku })?;
        to_lua(lua, &book["recent_prices"])
    })?;
    methods.set("prices", prices)?;
    Ok(())
}

/// `market(sku):withdraw([args])` and `:close([args])`: a transaction naming the SKU.
fn sku_transaction(
    lua: &Lua,
    ctx: &Arc<ConsoleContext>,
    name: &'static str,
    body: fn(String) -> MarketTx,
) -> mlua::Result<Function> {
    sku_method(lua, ctx, name, move |lua, c, sku, args| send(c, &args.fields(lua, 0, "options")?, body(sku)))
}

/// `market(sku):lock{units=, max_price=}` and `:bid{...}`: an order on the SKU.
fn order_method(
    lua: &Lua,
    ctx: &Arc<ConsoleContext>,
    name: &'static str,
    body: fn(String, u64, u64) -> MarketTx,
) -> mlua::Result<Function> {
    sku_method(lua, ctx, name, move |_, c, sku, args| {
        let fields = args.required_fields(0, "the order")?;
        let order = body(sku, fields.integer("units")?, fields.integer("max_price")?);
        send(c, &fields, order)
    })
}

/// `market.report(lock, units [, args])` and the other lock operations.
fn lock_function(
    lua: &Lua,
    ctx: &Arc<ConsoleContext>,
    name: &'static str,
    body: fn(Hash32, u64) -> MarketTx,
) -> mlua::Result<Function> {
    let c = ctx.clone();
    function(lua, name, move |lua, args| {
        let lock = args.hash(0, "lock")?;
        // `market.report(lock, units, {...})`; the others take the options second, or
        // third after a units argument they ignore (`market.confirm(lock, 0, {...})`,
        // the form scripts written before used).
        let (units, options) = match name {
            "market.report" => (args.integer(1, "units")?, 2),
            _ if matches!(args.value(1), Value::Integer(_) | Value::Number(_)) => (0, 2),
            _ => (0, 1),
        };
        send(&c, &args.fields(lua, options, "options")?, body(lock, units))
    })
}

/// Installs `market` (callable: `market(sku)`) as a global.
pub fn install(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<()> {
    let meta = lua.create_table()?;
    meta.set("__index", sku_methods(lua, ctx)?)?;
    let market = lua.create_table()?;
    let chain_listing = |name: &'static str, op: fn(String) -> MarketOp| {
        let c = ctx.clone();
        function(lua, name, move |lua, args| {
            let chain = args.optional_string(0, "chain")?.unwrap_or_else(|| "main".into());
            to_lua(lua, &ask(&c, op(chain))?)
        })
    };
    market.set("skus", chain_listing("market.skus", |chain| MarketOp::Skus { chain })?)?;
    market.set("demands", chain_listing("market.demands", |chain| MarketOp::Demands { chain })?)?;
    market.set("locks", chain_listing("market.locks", |chain| MarketOp::Locks { chain, party: None })?)?;
    let c = ctx.clone();
    market.set(
        "strategies",
        lua.create_function(move |lua, ()| to_lua(lua, &ask(&c, MarketOp::Strategies { sku: None })?))?,
    )?;
    let c = ctx.clone();
    market.set(
        "demand",
        function(lua, "market.demand", move |_, args| {
            let fields = args.required_fields(0, "the demand")?;
            let body = MarketTx::PostDemand {
                resource: fields.string("resource")?,
                units: fields.integer("units")?,
                max_price: fields.integer("max_price")?,
                location: fields.optional_string("location")?.unwrap_or_default(),
            };
            send(&c, &fields, body)
        })?,
    )?;
    let report = |lock, units_used| MarketTx::Report { lock, units_used };
    market.set("report", lock_function(lua, ctx, "market.report", report)?)?;
    market.set("confirm", lock_function(lua, ctx, "market.confirm", |lock, _| MarketTx::Confirm { lock })?)?;
    market.set("settle", lock_function(lua, ctx, "market.settle", |lock, _| MarketTx::Settle { lock })?)?;
    market.set("refund", lock_function(lua, ctx, "market.refund", |lock, _| MarketTx::Refund { lock })?)?;
    let c = ctx.clone();
    market.set("buy", function(lua, "market.buy", move |lua, args| buy(lua, &c, args))?)?;
    let call_meta = lua.create_table()?;
    call_meta.set(
        "__call",
        lua.create_function(move |lua, values: MultiValue| {
            // `market(sku)`: the table itself comes first.
            let sku = Args::new("market", values).string(1, "sku")?;
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
    fn from_fields(fields: &Fields) -> mlua::Result<BuyLimits> {
        let units = fields.integer("units")?;
        let max_unit_price = fields.integer("max_unit_price")?;
        let max_total = fields.optional_integer("max_total")?.unwrap_or(u64::MAX);
        Ok(BuyLimits {
            resource: fields.string("resource")?,
            units,
            max_unit_price,
            budget: max_total.min(units.saturating_mul(max_unit_price)),
            location: fields.optional_string("location")?,
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
/// `{sku=, lock=, price=, demand=}` alone (so the console prints no stray `nil` after
/// it), or `nil` and the reason when no offer fits.
fn buy(lua: &Lua, ctx: &ConsoleContext, args: &Args) -> mlua::Result<MultiValue> {
    let fields = args.required_fields(0, "the purchase")?;
    let limits = BuyLimits::from_fields(&fields)?;
    let chain = fields.chain()?;
    let wait = Duration::from_millis(fields.optional_integer("wait_ms")?.unwrap_or(0));
    let prefer = match fields.get("prefer")? {
        Value::Nil => None,
        Value::Function(prefer) => Some(prefer),
        other => return Err(fields.error("prefer", format!("must be a function, got {}", args::describe(&other)))),
    };
    let demand = if fields.optional_boolean("demand")?.unwrap_or(true) {
        let body = MarketTx::PostDemand {
            resource: limits.resource.clone(),
            units: limits.units,
            max_price: limits.budget,
            location: limits.location.clone().unwrap_or_default(),
        };
        Some(send(ctx, &fields, body)?)
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
    if let Some(prefer) = prefer {
        offers = prefer_sort(lua, &prefer, offers)?;
    }
    let Some(best) = offers.first() else {
        let BuyLimits { resource, units, max_unit_price, .. } = &limits;
        let why = format!("no {resource} offer of {units} units within {max_unit_price} µNEST per unit");
        return (Value::Nil, why).into_lua_multi(lua);
    };
    let sku = best["id"].as_str().unwrap_or_default().to_string();
    let price = price_of(best).saturating_mul(limits.units);
    let lock = send(ctx, &fields, MarketTx::Lock { sku: sku.clone(), units: limits.units, max_price: price })?;
    let answer = serde_json::json!({ "sku": sku, "lock": lock, "price": price, "demand": demand });
    to_lua(lua, &answer)?.into_lua_multi(lua)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_show_one_row_per_version_with_the_first_line_of_its_source() {
        let history = serde_json::json!({ "active": 2, "versions": [
            { "version": 1, "installed_at_ms": 10, "source": "return function(ctx)\n  return ctx.base\nend\n" },
            { "version": 2, "installed_at_ms": 20, "source": "return function(ctx) return 7 end" },
            { "version": 3, "installed_at_ms": 30, "source": format!("return {}", "1 + ".repeat(20) + "1") },
        ]});
        let rows = serde_json::json!([
            { "version": 1, "active": false, "installed_at_ms": 10, "lines": 3, "source": "return function(ctx)…" },
            { "version": 2, "active": true, "installed_at_ms": 20, "lines": 1, "source": "return function(ctx) return 7 end" },
            { "version": 3, "active": false, "installed_at_ms": 30, "lines": 1, "source": "return 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1…" },
        ]);
        assert_eq!(version_rows(&history), rows);
    }
}
