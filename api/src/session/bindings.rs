//! Give a console session's Lua the node: `node`, `chain(id)`, `plugins`, `peers`,
//! `tx`, `keys`, `log` and `watch`.
//!
//! Each binding is a thin adapter over [`crate::ops`] (the requests the HTTP API sends)
//! or the status snapshot: the console has no implementation of its own of any
//! operation. Bindings run on the evaluation's blocking thread.

use super::ConsoleContext;
use super::args::{self, Args, runtime};
use crate::crypto::SecretKey;
use crate::ledger::tx::{TxBody, UnsignedTx, gas_of};
use crate::node::status::ChainStatus;
use crate::node::{PluginOp, QueryError, status::NodeStatus};
use crate::ops;
use crate::script::Session;
use mlua::{IntoLuaMulti, Lua, LuaSerdeExt, MultiValue, Table, Value, serde::SerializeOptions};
use serde::Serialize;
use std::{path::PathBuf, sync::Arc, sync::atomic::Ordering, time::Duration};
use tokio::sync::broadcast::error::TryRecvError;

/// Methods of the value `chain(id)` returns (also offered by completion).
pub const CHAIN_METHODS: [&str; 6] = ["head", "block", "tx", "digest", "account", "consensus"];
/// Default number of log lines `log.tail()` returns.
const LOG_TAIL_DEFAULT: usize = 20;
/// How often `watch` checks for cancellation while no event arrives.
const WATCH_POLL_MS: u64 = 50;

fn to_lua<T: Serialize>(lua: &Lua, value: &T) -> mlua::Result<Value> {
    lua.to_value_with(value, SerializeOptions::new().serialize_none_to_null(false).serialize_unit_to_null(false))
}

fn failed(error: QueryError) -> mlua::Error {
    mlua::Error::RuntimeError(error.to_string())
}

fn snapshot(ctx: &ConsoleContext) -> mlua::Result<NodeStatus> {
    ctx.node.status.read().map(|s| s.clone()).map_err(|_| mlua::Error::RuntimeError("status unavailable".into()))
}

/// Installs every binding as a global of `session`.
pub fn install(session: &Session, ctx: Arc<ConsoleContext>) -> mlua::Result<()> {
    let lua = session.lua();
    let globals = lua.globals();
    globals.set("node", node_table(lua, &ctx)?)?;
    globals.set("chain", chain_function(lua, &ctx)?)?;
    globals.set("plugins", plugins_table(lua, &ctx)?)?;
    globals.set("peers", peers_table(lua, &ctx)?)?;
    globals.set("tx", tx_table(lua, &ctx)?)?;
    globals.set("keys", keys_table(lua, &ctx)?)?;
    globals.set("log", log_table(lua)?)?;
    globals.set("watch", watch_function(lua, &ctx)?)?;
    super::market::install(lua, &ctx)?;
    super::devices::install(lua, &ctx)?;
    super::dpos::install(lua, &ctx)?;
    session.register_completion_type("chain", &CHAIN_METHODS);
    session.register_completion_type("market", &super::market::MARKET_METHODS);
    Ok(())
}

fn node_table(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    let c = ctx.clone();
    table.set("status", lua.create_function(move |lua, ()| to_lua(lua, &snapshot(&c)?))?)?;
    let c = ctx.clone();
    table.set(
        "info",
        lua.create_function(move |lua, ()| {
            let status = snapshot(&c)?;
            let info = serde_json::json!({
                "name": status.name,
                "public_key": status.public_key,
                "version": status.version,
                "manifest": c.node.manifest_file.display().to_string(),
                "data_dir": c.node.data_dir.display().to_string(),
                "chains": status.chains.iter().map(|ch| ch.id.clone()).collect::<Vec<_>>(),
            });
            to_lua(lua, &info)
        })?,
    )?;
    table.set(
        "stop",
        lua.create_function(|_, ()| {
            tracing::warn!("stop requested from the console");
            // SAFETY: signalling our own process; SIGTERM runs the normal shutdown path.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGTERM);
            }
            Ok("stopping")
        })?,
    )?;
    Ok(table)
}

/// The chain `id` of the node's status; otherwise an error, from `function`, that lists
/// the chains the node has.
pub(super) fn find_chain(status: &NodeStatus, function: &str, id: &str) -> mlua::Result<ChainStatus> {
    if let Some(chain) = status.chains.iter().find(|chain| chain.id == id) {
        return Ok(chain.clone());
    }
    let chains: Vec<String> = status.chains.iter().map(|chain| format!("{:?}", chain.id)).collect();
    let chains = if chains.is_empty() { "it has none".to_string() } else { format!("it has {}", chains.join(", ")) };
    Err(runtime(format!("{function}: no chain {id:?} on this node ({chains})")))
}

/// A method of `chain(id)`: `body` gets the chain (checked to exist) and the arguments.
fn chain_method<R: IntoLuaMulti>(
    lua: &Lua,
    ctx: &Arc<ConsoleContext>,
    name: &'static str,
    body: impl Fn(&Lua, &ConsoleContext, &ChainStatus, &Args) -> mlua::Result<R> + Send + 'static,
) -> mlua::Result<mlua::Function> {
    let c = ctx.clone();
    lua.create_function(move |lua, values: MultiValue| {
        let (id, rest) = args::method(values, "id", &format!("chain(id):{name}"))?;
        let args = Args::new(format!("chain({id:?}):{name}"), rest);
        let chain = find_chain(&snapshot(&c)?, args.function(), &id)?;
        body(lua, &c, &chain, &args)
    })
}

/// `chain(id):consensus()`: the engine, where it stands (height, round, step, lock,
/// valid value, counters, for engines that report them) and the head block's
/// certificate as a commit certificate (for BFT).
fn consensus_view(lua: &Lua, c: &ConsoleContext, chain: &ChainStatus) -> mlua::Result<Value> {
    let head = if chain.height > 0 {
        Some(ops::block(&c.node.requests, &chain.id, chain.height).map_err(failed)?)
    } else {
        None
    };
    let last_certificate = head.as_ref().and_then(|block| block.commit.as_ref()).map(|commit| {
        serde_json::json!({ "height": chain.height, "round": commit.round, "power": commit.power, "total_power": commit.total_power, "signers": commit.signers.len(), "valid": commit.valid })
    });
    let view = serde_json::json!({
        "engine": chain.plugins.consensus.name,
        "state": chain.plugins.consensus.state,
        "status": chain.consensus,
        "last_certificate": last_certificate,
        "evidence": chain.evidence,
    });
    to_lua(lua, &view)
}

fn chain_function(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<mlua::Function> {
    let methods = lua.create_table()?;
    let head = chain_method(lua, ctx, "head", |lua, _, chain, _| {
        to_lua(
            lua,
            &serde_json::json!({ "height": chain.height, "hash": chain.head_hash, "state_digest": chain.state_digest, "timestamp_ms": chain.head_timestamp_ms }),
        )
    })?;
    methods.set("head", head)?;
    methods.set("digest", chain_method(lua, ctx, "digest", |_, _, chain, _| Ok(chain.state_digest.to_hex()))?)?;
    let block = chain_method(lua, ctx, "block", |lua, c, chain, args| {
        let height = args.integer(0, "height")?;
        to_lua(lua, &ops::block(&c.node.requests, &chain.id, height).map_err(failed)?)
    })?;
    methods.set("block", block)?;
    let tx = chain_method(lua, ctx, "tx", |lua, c, chain, args| {
        let hash = args.hash(0, "hash")?;
        to_lua(lua, &ops::tx_status(&c.node.requests, &chain.id, hash).map_err(failed)?)
    })?;
    methods.set("tx", tx)?;
    let account = chain_method(lua, ctx, "account", |lua, c, chain, args| {
        let key = args.account(0, "account")?;
        to_lua(lua, &ops::account(&c.node.requests, &chain.id, key).map_err(failed)?)
    })?;
    methods.set("account", account)?;
    methods.set("consensus", chain_method(lua, ctx, "consensus", |lua, c, chain, _| consensus_view(lua, c, chain))?)?;
    let meta = lua.create_table()?;
    meta.set("__index", methods)?;
    lua.create_function(move |lua, values: MultiValue| {
        let id = Args::new("chain", values).optional_string(0, "id")?;
        let table = lua.create_table()?;
        table.set("id", id.unwrap_or_else(|| "main".to_string()))?;
        table.set_metatable(Some(meta.clone()))?;
        Ok(table)
    })
}

/// A console function named `name` (as messages show it) whose arguments `body` reads.
pub(super) fn function<R: IntoLuaMulti>(
    lua: &Lua,
    name: &'static str,
    body: impl Fn(&Lua, &Args) -> mlua::Result<R> + Send + 'static,
) -> mlua::Result<mlua::Function> {
    lua.create_function(move |lua, values: MultiValue| body(lua, &Args::new(name, values)))
}

fn plugin_op(lua: &Lua, ctx: &ConsoleContext, op: PluginOp) -> mlua::Result<Value> {
    let entries = ops::plugins(&ctx.node.requests, op).map_err(failed)?;
    to_lua(lua, &entries)
}

fn plugins_table(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    let c = ctx.clone();
    table.set("list", lua.create_function(move |lua, ()| plugin_op(lua, &c, PluginOp::List))?)?;
    let plugin_function = |name: &'static str, op: fn(String) -> PluginOp| {
        let c = ctx.clone();
        function(lua, name, move |lua, args| plugin_op(lua, &c, op(args.string(0, "id")?)))
    };
    table.set("inspect", plugin_function("plugins.inspect", |id| PluginOp::Inspect { id })?)?;
    table.set("disable", plugin_function("plugins.disable", |id| PluginOp::Disable { id })?)?;
    table.set("enable", plugin_function("plugins.enable", |id| PluginOp::Enable { id })?)?;
    let c = ctx.clone();
    let upgrade = function(lua, "plugins.upgrade", move |lua, args| {
        let id = args.string(0, "id")?;
        let package = PathBuf::from(args.string(1, "package")?);
        plugin_op(lua, &c, PluginOp::Upgrade { id, package })
    })?;
    table.set("upgrade", upgrade)?;
    Ok(table)
}

fn peers_table(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    let c = ctx.clone();
    table.set("count", lua.create_function(move |_, ()| Ok(snapshot(&c)?.peers))?)?;
    for (name, shown_as, blocked) in [("block", "peers.block", true), ("unblock", "peers.unblock", false)] {
        let c = ctx.clone();
        let block = function(lua, shown_as, move |_, args| {
            ops::block_peer(&c.node.requests, &args.string(0, "peer")?, blocked).map_err(failed)
        })?;
        table.set(name, block)?;
    }
    let c = ctx.clone();
    table.set("list", lua.create_function(move |lua, ()| to_lua(lua, &snapshot(&c)?.peer_list))?)?;
    Ok(table)
}

fn keys_table(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    let c = ctx.clone();
    table.set("node", lua.create_function(move |_, ()| Ok(c.node.key.public_key().to_hex()))?)?;
    let c = ctx.clone();
    table.set(
        "list",
        lua.create_function(move |lua, ()| {
            to_lua(lua, &[serde_json::json!({ "name": "node", "public_key": c.node.key.public_key() })])
        })?,
    )?;
    Ok(table)
}

fn log_table(lua: &Lua) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.set(
        "tail",
        function(lua, "log.tail", |lua, args| {
            let count = args.optional_integer(0, "count")?.map_or(LOG_TAIL_DEFAULT, saturating_usize);
            to_lua(lua, &crate::logring::tail(count))
        })?,
    )?;
    Ok(table)
}

/// `tx.transfer{from_key_file=..., to=..., amount=..., fee=?, nonce=?, chain="main"}`;
/// `from = "node"` signs with the node's own key.
fn tx_table(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    let c = ctx.clone();
    table.set("transfer", function(lua, "tx.transfer", move |lua, args| transfer(lua, &c, args))?)?;
    Ok(table)
}

/// A count as a `usize`, the largest one when it does not fit.
pub(super) fn saturating_usize(count: u64) -> usize {
    usize::try_from(count).unwrap_or(usize::MAX)
}

fn transfer(lua: &Lua, ctx: &ConsoleContext, args: &Args) -> mlua::Result<Value> {
    let fields = args.required_fields(0, "the transfer")?;
    let chain = fields.chain()?;
    let to = fields.account("to")?;
    let amount = fields.integer("amount")?;
    let (fee, nonce) = (fields.optional_integer("fee")?, fields.optional_integer("nonce")?);
    let owned;
    let key: &SecretKey = match (fields.optional_string("from_key_file")?, fields.optional_string("from")?.as_deref()) {
        (Some(path), _) => {
            owned = ctx.key_file(&path).map_err(|e| args.error(e))?;
            &owned
        }
        (None, Some("node")) => &ctx.node.key,
        _ => return Err(args.error("give from_key_file = \"path\" or from = \"node\"")),
    };
    let chain_status = find_chain(&snapshot(ctx)?, args.function(), &chain)?;
    let body = TxBody::Transfer { to, amount };
    let minimum_fee = gas_of(&body).saturating_mul(chain_status.gas_price);
    let nonce = match nonce {
        Some(nonce) => nonce,
        None => ops::account(&ctx.node.requests, &chain, key.public_key()).map_err(failed)?.next_nonce,
    };
    let fee = fee.unwrap_or(minimum_fee);
    let tx = UnsignedTx { chain: chain_status.genesis_hash, from: key.public_key(), nonce, fee, body }.sign(key);
    let answer = ops::submit(&ctx.node.requests, &chain, vec![tx]).map_err(failed)?;
    to_lua(lua, &answer.results.first())
}

/// The event types a `watch` filter name selects: `blocks`, `txs`, `plugins`, `frames`, or an
/// exact event type.
fn watched_types(name: &str) -> Vec<String> {
    match name {
        "blocks" => vec!["block_committed".into()],
        "txs" => vec!["tx_committed".into(), "txs_committed".into()],
        "plugins" => vec!["plugin_state".into()],
        "frames" => vec!["device_frame".into()],
        other => vec![other.to_string()],
    }
}

/// A `watch` filter: `watch()`, `watch("blocks")`, or `watch{type=..., chain=..., count=n}`.
struct WatchFilter {
    types: Option<Vec<String>>,
    chain: Option<String>,
    count: Option<u64>,
}

impl WatchFilter {
    fn from_lua(args: &Args) -> mlua::Result<WatchFilter> {
        match args.value(0) {
            Value::Nil => Ok(WatchFilter { types: None, chain: None, count: None }),
            Value::String(_) => {
                Ok(WatchFilter { types: Some(watched_types(&args.string(0, "name")?)), chain: None, count: None })
            }
            Value::Table(_) => {
                let fields = args.required_fields(0, "filter")?;
                Ok(WatchFilter {
                    types: fields.optional_string("type")?.map(|t| watched_types(&t)),
                    chain: fields.optional_string("chain")?,
                    count: fields.optional_integer("count")?,
                })
            }
            other => Err(args.error(format!(
                "give nothing, a name (\"blocks\", \"txs\", \"plugins\", \"frames\") or a table {{type=, chain=, count=}}, not {}",
                args::describe(other)
            ))),
        }
    }

    fn matches(&self, event: &serde_json::Value) -> bool {
        let type_ok = self.types.as_ref().is_none_or(|types| types.iter().any(|t| event["type"] == *t.as_str()));
        type_ok && self.chain.as_ref().is_none_or(|chain| event["chain"] == *chain.as_str())
    }
}

/// `watch(...)` streams node events into the console until cancelled (Ctrl-C) or until
/// `count` events; returns how many it streamed.
fn watch_function(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<mlua::Function> {
    let c = ctx.clone();
    function(lua, "watch", move |_, args| {
        let filter = WatchFilter::from_lua(args)?;
        let mut events = c.node.events.subscribe();
        let mut streamed = 0u64;
        while filter.count.is_none_or(|n| streamed < n) && !c.cancel.load(Ordering::Relaxed) {
            let event = match events.try_recv() {
                Ok(event) => serde_json::to_value(&event).unwrap_or_default(),
                Err(TryRecvError::Empty) => {
                    std::thread::sleep(Duration::from_millis(WATCH_POLL_MS));
                    continue;
                }
                Err(TryRecvError::Lagged(missed)) => serde_json::json!({ "type": "lagged", "missed": missed }),
                Err(TryRecvError::Closed) => break,
            };
            if filter.matches(&event) {
                (c.stream_event)(event);
                streamed += 1;
            }
        }
        Ok(streamed)
    })
}
