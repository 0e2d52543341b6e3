//! Give a console session's Lua the node: `node`, `chain(id)`, `plugins`, `peers`,
//! `tx`, `keys`, `log` and `watch`.
//!
//! Each binding is a thin adapter over [`crate::ops`] (the requests the HTTP API sends)
//! or the status snapshot: the console has no implementation of its own of any
//! operation. Bindings run on the evaluation's blocking thread.

use super::ConsoleContext;
use crate::crypto::SecretKey;
use crate::ledger::tx::{TxBody, UnsignedTx, gas_of};
use crate::node::{PluginOp, QueryError, status::NodeStatus};
use crate::ops;
use crate::script::Session;
use mlua::{Lua, LuaSerdeExt, Table, Value, serde::SerializeOptions};
use nest_sdk::{Hash32, PublicKey};
use serde::Serialize;
use std::{path::PathBuf, sync::Arc, sync::atomic::Ordering, time::Duration};
use tokio::sync::broadcast::error::TryRecvError;

/// Methods of the value `chain(id)` returns (also offered by completion).
pub const CHAIN_METHODS: [&str; 5] = ["head", "block", "tx", "digest", "account"];
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

fn chain_function(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<mlua::Function> {
    let methods = lua.create_table()?;
    let c = ctx.clone();
    methods.set(
        "head",
        lua.create_function(move |lua, this: Table| {
            let id: String = this.get("id")?;
            let status = snapshot(&c)?;
            let chain = status.chains.into_iter().find(|ch| ch.id == id);
            let chain = chain.ok_or_else(|| mlua::Error::RuntimeError(format!("no chain \"{id}\" on this node")))?;
            to_lua(lua, &serde_json::json!({ "height": chain.height, "hash": chain.head_hash, "state_digest": chain.state_digest, "timestamp_ms": chain.head_timestamp_ms }))
        })?,
    )?;
    let c = ctx.clone();
    methods.set(
        "digest",
        lua.create_function(move |_, this: Table| {
            let id: String = this.get("id")?;
            let status = snapshot(&c)?;
            let chain = status.chains.into_iter().find(|ch| ch.id == id);
            chain
                .map(|ch| ch.state_digest.to_hex())
                .ok_or_else(|| mlua::Error::RuntimeError(format!("no chain \"{id}\" on this node")))
        })?,
    )?;
    let c = ctx.clone();
    methods.set(
        "block",
        lua.create_function(move |lua, (this, height): (Table, u64)| {
            let id: String = this.get("id")?;
            to_lua(lua, &ops::block(&c.node.requests, &id, height).map_err(failed)?)
        })?,
    )?;
    let c = ctx.clone();
    methods.set(
        "tx",
        lua.create_function(move |lua, (this, hash): (Table, String)| {
            let id: String = this.get("id")?;
            let hash =
                Hash32::from_hex(&hash).map_err(|e| mlua::Error::RuntimeError(format!("transaction hash: {e}")))?;
            to_lua(lua, &ops::tx_status(&c.node.requests, &id, hash).map_err(failed)?)
        })?,
    )?;
    let c = ctx.clone();
    methods.set(
        "account",
        lua.create_function(move |lua, (this, key): (Table, String)| {
            let id: String = this.get("id")?;
            let key = PublicKey::from_hex(&key).map_err(|e| mlua::Error::RuntimeError(format!("account: {e}")))?;
            to_lua(lua, &ops::account(&c.node.requests, &id, key).map_err(failed)?)
        })?,
    )?;
    let meta = lua.create_table()?;
    meta.set("__index", methods)?;
    lua.create_function(move |lua, id: Option<String>| {
        let table = lua.create_table()?;
        table.set("id", id.unwrap_or_else(|| "main".to_string()))?;
        table.set_metatable(Some(meta.clone()))?;
        Ok(table)
    })
}

fn plugin_op(lua: &Lua, ctx: &ConsoleContext, op: PluginOp) -> mlua::Result<Value> {
    let entries = ops::plugins(&ctx.node.requests, op).map_err(failed)?;
    to_lua(lua, &entries)
}

fn plugins_table(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    let c = ctx.clone();
    table.set("list", lua.create_function(move |lua, ()| plugin_op(lua, &c, PluginOp::List))?)?;
    let c = ctx.clone();
    table.set("inspect", lua.create_function(move |lua, id: String| plugin_op(lua, &c, PluginOp::Inspect { id }))?)?;
    let c = ctx.clone();
    table.set("disable", lua.create_function(move |lua, id: String| plugin_op(lua, &c, PluginOp::Disable { id }))?)?;
    let c = ctx.clone();
    table.set("enable", lua.create_function(move |lua, id: String| plugin_op(lua, &c, PluginOp::Enable { id }))?)?;
    let c = ctx.clone();
    table.set(
        "upgrade",
        lua.create_function(move |lua, (id, package): (String, String)| {
            plugin_op(lua, &c, PluginOp::Upgrade { id, package: PathBuf::from(package) })
        })?,
    )?;
    Ok(table)
}

fn peers_table(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    let c = ctx.clone();
    table.set("count", lua.create_function(move |_, ()| Ok(snapshot(&c)?.peers))?)?;
    let c = ctx.clone();
    table.set(
        "block",
        lua.create_function(move |_, peer: String| ops::block_peer(&c.node.requests, &peer, true).map_err(failed))?,
    )?;
    let c = ctx.clone();
    table.set(
        "unblock",
        lua.create_function(move |_, peer: String| ops::block_peer(&c.node.requests, &peer, false).map_err(failed))?,
    )?;
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
        lua.create_function(|lua, count: Option<usize>| {
            to_lua(lua, &crate::logring::tail(count.unwrap_or(LOG_TAIL_DEFAULT)))
        })?,
    )?;
    Ok(table)
}

/// `tx.transfer{from_key_file=..., to=..., amount=..., fee=?, nonce=?, chain="main"}`;
/// `from = "node"` signs with the node's own key.
fn tx_table(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    let c = ctx.clone();
    table.set("transfer", lua.create_function(move |lua, args: Table| transfer(lua, &c, args))?)?;
    Ok(table)
}

fn transfer(lua: &Lua, ctx: &ConsoleContext, args: Table) -> mlua::Result<Value> {
    let chain: String = args.get::<Option<String>>("chain")?.unwrap_or_else(|| "main".into());
    let to: String = args.get("to")?;
    let to = PublicKey::from_hex(&to).map_err(|e| mlua::Error::RuntimeError(format!("to: {e}")))?;
    let amount: u64 = args.get("amount")?;
    let key_file: Option<String> = args.get("from_key_file")?;
    let from: Option<String> = args.get("from")?;
    let owned;
    let key: &SecretKey = match (key_file, from.as_deref()) {
        (Some(path), _) => {
            owned =
                SecretKey::read(std::path::Path::new(&path)).map_err(|e| mlua::Error::RuntimeError(e.to_string()))?;
            &owned
        }
        (None, Some("node")) => &ctx.node.key,
        _ => return Err(mlua::Error::RuntimeError("give from_key_file = \"path\" or from = \"node\"".into())),
    };
    let status = snapshot(ctx)?;
    let chain_status = status
        .chains
        .iter()
        .find(|ch| ch.id == chain)
        .ok_or_else(|| mlua::Error::RuntimeError(format!("no chain \"{chain}\" on this node")))?;
    let body = TxBody::Transfer { to, amount };
    let minimum_fee = gas_of(&body).saturating_mul(chain_status.gas_price);
    let nonce = match args.get::<Option<u64>>("nonce")? {
        Some(nonce) => nonce,
        None => ops::account(&ctx.node.requests, &chain, key.public_key()).map_err(failed)?.next_nonce,
    };
    let fee = args.get::<Option<u64>>("fee")?.unwrap_or(minimum_fee);
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
    fn from_lua(filter: Option<Value>) -> mlua::Result<WatchFilter> {
        match filter {
            None | Some(Value::Nil) => Ok(WatchFilter { types: None, chain: None, count: None }),
            Some(Value::String(name)) => {
                Ok(WatchFilter { types: Some(watched_types(&name.to_str()?)), chain: None, count: None })
            }
            Some(Value::Table(table)) => Ok(WatchFilter {
                types: table.get::<Option<String>>("type")?.map(|t| watched_types(&t)),
                chain: table.get("chain")?,
                count: table.get("count")?,
            }),
            Some(other) => Err(mlua::Error::RuntimeError(format!(
                "watch takes nothing, a name (\"blocks\", \"txs\", \"plugins\") or a table {{type=, chain=, count=}}, not a {}",
                other.type_name()
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
    lua.create_function(move |_, filter: Option<Value>| {
        let filter = WatchFilter::from_lua(filter)?;
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
