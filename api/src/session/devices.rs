//! Give a console session's Lua the node's radios and devices: `radios` and `devices`.
//!
//! `radios.list()`, `radios.stats(id)` (link counters, driver state and error, skipped
//! frames by reason), `radios.send(id, link_address, hex)`;
//! `devices.list()`, `devices.show(uid)`, `devices.readings(uid, from_ms, to_ms, limit)`,
//! `devices.uid(hardware_id)`, and the owner's transactions `devices.register{...}`,
//! `devices.transfer{...}`, `devices.revoke{...}` signed with `from = "node"` or
//! `from_key_file = "path"`. Like every binding, each is a thin adapter over
//! [`crate::ops`] (the requests the HTTP routes send) or the status snapshot.

use super::ConsoleContext;
use super::args::{Fields, runtime};
use super::bindings::{find_chain, function, saturating_usize};
use crate::crypto::SecretKey;
use crate::ledger::device::DeviceTx;
use crate::ledger::tx::{TxBody, UnsignedTx, gas_of};
use crate::node::{DeviceOp, QueryError};
use crate::ops;
use mlua::{Lua, LuaSerdeExt, Table, Value, serde::SerializeOptions};
use nest_sdk::{Hash32, device::device_uid};
use std::sync::Arc;

/// Readings `devices.readings` returns when no limit is given.
const READINGS_DEFAULT: usize = 100;

fn to_lua<T: serde::Serialize>(lua: &Lua, value: &T) -> mlua::Result<Value> {
    lua.to_value_with(value, SerializeOptions::new().serialize_none_to_null(false).serialize_unit_to_null(false))
}

fn failed(error: QueryError) -> mlua::Error {
    runtime(error.to_string())
}

/// Installs `radios` and `devices` as globals.
pub fn install(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<()> {
    lua.globals().set("radios", radios_table(lua, ctx)?)?;
    lua.globals().set("devices", devices_table(lua, ctx)?)?;
    Ok(())
}

fn radio_statuses(ctx: &ConsoleContext) -> mlua::Result<Vec<crate::node::status::RadioStatus>> {
    ctx.node.status.read().map(|s| s.radios.clone()).map_err(|_| runtime("status unavailable"))
}

fn radios_table(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    let c = ctx.clone();
    table.set("list", lua.create_function(move |lua, ()| to_lua(lua, &radio_statuses(&c)?))?)?;
    let c = ctx.clone();
    table.set(
        "stats",
        function(lua, "radios.stats", move |lua, args| {
            let id = args.string(0, "id")?;
            let radio = radio_statuses(&c)?.into_iter().find(|r| r.id == id);
            let radio = radio.ok_or_else(|| args.error(format!("no radio {id:?} on this node")))?;
            to_lua(lua, &radio_stats(radio))
        })?,
    )?;
    let c = ctx.clone();
    table.set(
        "send",
        function(lua, "radios.send", move |lua, args| {
            let (radio, link_address) = (args.string(0, "radio")?, args.string(1, "link_address")?);
            let frame = args.string(2, "frame")?;
            let bytes = hex::decode(frame.trim()).map_err(|e| args.error(format!("frame must be hex: {e}")))?;
            let op = DeviceOp::Send { radio, link_address, bytes };
            to_lua(lua, &ops::devices(&c.node.requests, op).map_err(failed)?)
        })?,
    )?;
    Ok(table)
}

/// A radio's link counters with its driver's state (`running`, `failed`, `disabled`),
/// the error it failed with, and the frames it skipped by reason.
fn radio_stats(radio: crate::node::status::RadioStatus) -> serde_json::Value {
    let mut stats = serde_json::to_value(&radio.link).unwrap_or_default();
    stats["state"] = radio.plugin.state.into();
    if let Some(error) = radio.plugin.reason {
        stats["error"] = error.into();
    }
    stats["skipped"] = serde_json::json!(radio.skipped);
    stats
}

fn devices_table(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    let c = ctx.clone();
    table.set(
        "list",
        lua.create_function(move |lua, ()| {
            to_lua(lua, &ops::devices(&c.node.requests, DeviceOp::List).map_err(failed)?)
        })?,
    )?;
    let c = ctx.clone();
    table.set(
        "show",
        function(lua, "devices.show", move |lua, args| {
            let op = DeviceOp::Show { uid: args.hash(0, "uid")? };
            to_lua(lua, &ops::devices(&c.node.requests, op).map_err(failed)?)
        })?,
    )?;
    let c = ctx.clone();
    table.set(
        "readings",
        function(lua, "devices.readings", move |lua, args| {
            let op = DeviceOp::Readings {
                uid: args.hash(0, "uid")?,
                from_ms: args.optional_integer(1, "from_ms")?.unwrap_or(0),
                to_ms: args.optional_integer(2, "to_ms")?.unwrap_or(u64::MAX),
                limit: args.optional_integer(3, "limit")?.map_or(READINGS_DEFAULT, saturating_usize),
            };
            to_lua(lua, &ops::devices(&c.node.requests, op).map_err(failed)?)
        })?,
    )?;
    table.set(
        "uid",
        function(lua, "devices.uid", |_, args| Ok(hex::encode(device_uid(args.string(0, "hardware_id")?.as_bytes()))))?,
    )?;
    for (name, shown_as) in
        [("register", "devices.register"), ("transfer", "devices.transfer"), ("revoke", "devices.revoke")]
    {
        let c = ctx.clone();
        let owner = function(lua, shown_as, move |lua, args| {
            owner_tx(lua, &c, name, &args.required_fields(0, "the transaction")?)
        })?;
        table.set(name, owner)?;
    }
    Ok(table)
}

/// The device named by `uid = "hex"` or `hardware_id = "text"`.
fn device_of(fields: &Fields) -> mlua::Result<Hash32> {
    match (fields.optional_hash("uid")?, fields.optional_string("hardware_id")?) {
        (Some(uid), _) => Ok(uid),
        (None, Some(hardware_id)) => Ok(Hash32(device_uid(hardware_id.as_bytes()))),
        (None, None) => Err(runtime(format!("{}: give uid = \"hex\" or hardware_id = \"text\"", fields.function()))),
    }
}

/// The body of `devices.register/transfer/revoke{...}`.
fn body_of(name: &str, fields: &Fields) -> mlua::Result<DeviceTx> {
    let device_uid = device_of(fields)?;
    match name {
        "register" => {
            let key = fields.string("public_key")?;
            let public_key =
                hex::decode(key.trim()).map_err(|e| fields.error("public_key", format!("must be hex: {e}")))?;
            let class = fields.optional_string("class")?.unwrap_or_else(|| "sensor".into());
            Ok(DeviceTx::Register { device_uid, public_key, class })
        }
        "transfer" => Ok(DeviceTx::Transfer { device_uid, new_owner: fields.account("to")? }),
        _ => Ok(DeviceTx::Revoke { device_uid }),
    }
}

/// Signs a device transaction with `from = "node"` or `from_key_file = "path"` and submits it.
fn owner_tx(lua: &Lua, ctx: &ConsoleContext, name: &str, fields: &Fields) -> mlua::Result<Value> {
    submit_signed(lua, ctx, fields, TxBody::Device(body_of(name, fields)?))
}

/// Signs `body` with `from = "node"` or `from_key_file = "path"` of `fields`, at the
/// chain's gas price and the account's next nonce, submits it on `fields`' chain and
/// returns the submission's result.
pub(super) fn submit_signed(lua: &Lua, ctx: &ConsoleContext, fields: &Fields, body: TxBody) -> mlua::Result<Value> {
    let chain = fields.chain()?;
    let function = fields.function();
    let owned;
    let key: &SecretKey = match (fields.optional_string("from_key_file")?, fields.optional_string("from")?) {
        (Some(path), _) => {
            owned = ctx.key_file(&path).map_err(|e| runtime(format!("{function}: {e}")))?;
            &owned
        }
        (None, Some(from)) if from == "node" => &ctx.node.key,
        _ => return Err(runtime(format!("{function}: give from_key_file = \"path\" or from = \"node\""))),
    };
    let status = ctx.node.status.read().map(|s| s.clone()).map_err(|_| runtime("status unavailable"))?;
    let terms = find_chain(&status, function, &chain)?;
    let nonce = ops::account(&ctx.node.requests, &chain, key.public_key()).map_err(failed)?.next_nonce;
    let fee = gas_of(&body).saturating_mul(terms.gas_price);
    let tx = UnsignedTx { chain: terms.genesis_hash, from: key.public_key(), nonce, fee, body }.sign(key);
    let answer = ops::submit(&ctx.node.requests, &chain, vec![tx]).map_err(failed)?;
    to_lua(lua, &answer.results.first())
}
