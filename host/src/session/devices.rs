//! Give a console session's Lua the node's radios and devices: `radios` and `devices`.
//!
//! `radios.list()`, `radios.stats(id)`, `radios.send(id, link_address, hex)`;
//! `devices.list()`, `devices.show(uid)`, `devices.readings(uid, from_ms, to_ms, limit)`,
//! `devices.uid(hardware_id)`, and the owner's transactions `devices.register{...}`,
//! `devices.transfer{...}`, `devices.revoke{...}` signed with `from = "node"` or
//! `from_key_file = "path"`. Like every binding, each is a thin adapter over
//! [`crate::ops`] (the requests the HTTP routes send) or the status snapshot.

use super::ConsoleContext;
use crate::crypto::SecretKey;
use crate::ledger::device::DeviceTx;
use crate::ledger::tx::{TxBody, UnsignedTx, gas_of};
use crate::node::{DeviceOp, QueryError};
use crate::ops;
use mlua::{Lua, LuaSerdeExt, Table, Value, serde::SerializeOptions};
use nest_sdk::{Hash32, PublicKey, device::device_uid};
use std::sync::Arc;

/// Readings `devices.readings` returns when no limit is given.
const READINGS_DEFAULT: usize = 100;

fn to_lua<T: serde::Serialize>(lua: &Lua, value: &T) -> mlua::Result<Value> {
    lua.to_value_with(value, SerializeOptions::new().serialize_none_to_null(false).serialize_unit_to_null(false))
}

fn runtime(message: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(message.into())
}

fn failed(error: QueryError) -> mlua::Error {
    runtime(error.to_string())
}

fn parse_uid(text: &str) -> mlua::Result<Hash32> {
    Hash32::from_hex(text).map_err(|e| runtime(format!("device µID: {e}")))
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
        lua.create_function(move |lua, id: String| {
            let radio = radio_statuses(&c)?.into_iter().find(|r| r.id == id);
            let radio = radio.ok_or_else(|| runtime(format!("no radio \"{id}\" on this node")))?;
            to_lua(lua, &radio.link)
        })?,
    )?;
    let c = ctx.clone();
    table.set(
        "send",
        lua.create_function(move |lua, (radio, link_address, frame_hex): (String, String, String)| {
            let bytes = hex::decode(frame_hex.trim()).map_err(|e| runtime(format!("frame (hex): {e}")))?;
            let op = DeviceOp::Send { radio, link_address, bytes };
            to_lua(lua, &ops::devices(&c.node.requests, op).map_err(failed)?)
        })?,
    )?;
    Ok(table)
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
        lua.create_function(move |lua, uid: String| {
            let op = DeviceOp::Show { uid: parse_uid(&uid)? };
            to_lua(lua, &ops::devices(&c.node.requests, op).map_err(failed)?)
        })?,
    )?;
    let c = ctx.clone();
    table.set(
        "readings",
        lua.create_function(
            move |lua, (uid, from_ms, to_ms, limit): (String, Option<u64>, Option<u64>, Option<usize>)| {
                let op = DeviceOp::Readings {
                    uid: parse_uid(&uid)?,
                    from_ms: from_ms.unwrap_or(0),
                    to_ms: to_ms.unwrap_or(u64::MAX),
                    limit: limit.unwrap_or(READINGS_DEFAULT),
                };
                to_lua(lua, &ops::devices(&c.node.requests, op).map_err(failed)?)
            },
        )?,
    )?;
    table.set(
        "uid",
        lua.create_function(|_, hardware_id: String| Ok(hex::encode(device_uid(hardware_id.as_bytes()))))?,
    )?;
    for name in ["register", "transfer", "revoke"] {
        let c = ctx.clone();
        table.set(name, lua.create_function(move |lua, args: Table| owner_tx(lua, &c, name, &args))?)?;
    }
    Ok(table)
}

/// The device named by `uid = "hex"` or `hardware_id = "text"`.
fn device_of(args: &Table) -> mlua::Result<Hash32> {
    match (args.get::<Option<String>>("uid")?, args.get::<Option<String>>("hardware_id")?) {
        (Some(uid), _) => parse_uid(&uid),
        (None, Some(hardware_id)) => Ok(Hash32(device_uid(hardware_id.as_bytes()))),
        (None, None) => Err(runtime("give uid = \"hex\" or hardware_id = \"text\"")),
    }
}

/// The body of `devices.register/transfer/revoke{...}`.
fn body_of(name: &str, args: &Table) -> mlua::Result<DeviceTx> {
    let device_uid = device_of(args)?;
    match name {
        "register" => {
            let key: String =
                args.get::<Option<String>>("public_key")?.ok_or_else(|| runtime("give public_key = \"hex\""))?;
            let public_key = hex::decode(key.trim()).map_err(|e| runtime(format!("public_key: {e}")))?;
            let class = args.get::<Option<String>>("class")?.unwrap_or_else(|| "sensor".into());
            Ok(DeviceTx::Register { device_uid, public_key, class })
        }
        "transfer" => {
            let to: String = args.get::<Option<String>>("to")?.ok_or_else(|| runtime("give to = \"account\""))?;
            let new_owner = PublicKey::from_hex(&to).map_err(|e| runtime(format!("to: {e}")))?;
            Ok(DeviceTx::Transfer { device_uid, new_owner })
        }
        _ => Ok(DeviceTx::Revoke { device_uid }),
    }
}

/// Signs a device transaction with `from = "node"` or `from_key_file = "path"` and submits it.
fn owner_tx(lua: &Lua, ctx: &ConsoleContext, name: &str, args: &Table) -> mlua::Result<Value> {
    let body = TxBody::Device(body_of(name, args)?);
    let chain: String = args.get::<Option<String>>("chain")?.unwrap_or_else(|| "main".into());
    let owned;
    let key: &SecretKey = match (args.get::<Option<String>>("from_key_file")?, args.get::<Option<String>>("from")?) {
        (Some(path), _) => {
            owned = SecretKey::read(std::path::Path::new(&path)).map_err(|e| runtime(e.to_string()))?;
            &owned
        }
        (None, Some(from)) if from == "node" => &ctx.node.key,
        _ => return Err(runtime("give from_key_file = \"path\" or from = \"node\"")),
    };
    let status = ctx.node.status.read().map(|s| s.clone()).map_err(|_| runtime("status unavailable"))?;
    let terms = status.chains.iter().find(|ch| ch.id == chain);
    let terms = terms.ok_or_else(|| runtime(format!("no chain \"{chain}\" on this node")))?;
    let nonce = ops::account(&ctx.node.requests, &chain, key.public_key()).map_err(failed)?.next_nonce;
    let fee = gas_of(&body).saturating_mul(terms.gas_price);
    let tx = UnsignedTx { chain: terms.genesis_hash, from: key.public_key(), nonce, fee, body }.sign(key);
    let answer = ops::submit(&ctx.node.requests, &chain, vec![tx]).map_err(failed)?;
    to_lua(lua, &answer.results.first())
}
