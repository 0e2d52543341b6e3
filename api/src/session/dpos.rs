//! Give a console session's Lua the chain's staking: `dpos`.
//!
//! `dpos.delegates(chain)` (ranked, with votes), `dpos.account(key, chain)` (bonded,
//! unbonding, votes), `dpos.round(n, chain)` (a DPoS round's seed, elected delegates and
//! order, as `GET /v1/chains/{id}/dpos/rounds/{n}` gives them), `dpos.rewards(chain)` and
//! `dpos.rewards(n, chain)` (Proof-of-i/o: cap, pool, weights, minted; a round's start
//! and settlement), `dpos.weights{uptime_per_minute, per_tx_verified, storage_per_mib}`
//! (a validator's approval of new weights), and the staking transactions `dpos.register{node_key, name}`,
//! `dpos.stake{amount}`, `dpos.unstake{amount}`, `dpos.unlock{}` and
//! `dpos.vote{delegates = {key, ...}}`, each signed with `from = "node"` or
//! `from_key_file = "path"` (and `chain = ...`, default `main`). Thin adapters over
//! [`crate::ops::staking`] and the submission the HTTP route runs.

use super::ConsoleContext;
use super::args::{Fields, runtime};
use super::bindings::function;
use super::devices::submit_signed;
use crate::ledger::staking::StakingTx;
use crate::ledger::tx::TxBody;
use crate::node::StakingOp;
use crate::ops;
use mlua::{Lua, LuaSerdeExt, Table, Value};
use nest_sdk::PublicKey;
use std::sync::Arc;

/// Installs `dpos` as a global.
pub fn install(lua: &Lua, ctx: &Arc<ConsoleContext>) -> mlua::Result<()> {
    let table = lua.create_table()?;
    let c = ctx.clone();
    table.set(
        "delegates",
        function(lua, "dpos.delegates", move |lua, args| {
            let chain = args.optional_string(0, "chain")?.unwrap_or_else(|| "main".into());
            query(lua, &c, StakingOp::Delegates { chain })
        })?,
    )?;
    let c = ctx.clone();
    table.set(
        "account",
        function(lua, "dpos.account", move |lua, args| {
            let account = args.account(0, "account")?;
            let chain = args.optional_string(1, "chain")?.unwrap_or_else(|| "main".into());
            query(lua, &c, StakingOp::Account { chain, account })
        })?,
    )?;
    let c = ctx.clone();
    table.set(
        "round",
        function(lua, "dpos.round", move |lua, args| {
            let round = args.integer(0, "round")?;
            let chain = args.optional_string(1, "chain")?.unwrap_or_else(|| "main".into());
            query(lua, &c, StakingOp::Round { chain, round })
        })?,
    )?;
    let c = ctx.clone();
    table.set(
        "rewards",
        function(lua, "dpos.rewards", move |lua, args| {
            let round = args.optional_integer(0, "round")?;
            let chain = args.optional_string(1, "chain")?.unwrap_or_else(|| "main".into());
            let op = match round {
                Some(round) => StakingOp::PoioRound { chain, round },
                None => StakingOp::Poio { chain },
            };
            query(lua, &c, op)
        })?,
    )?;
    let c = ctx.clone();
    table.set(
        "weights",
        function(lua, "dpos.weights", move |lua, args| {
            let fields = args.required_fields(0, "the weights")?;
            let weights = crate::ledger::poio::Weights {
                uptime_per_minute: fields.integer("uptime_per_minute")?,
                per_tx_verified: fields.integer("per_tx_verified")?,
                storage_per_mib: fields.integer("storage_per_mib")?,
            };
            submit_signed(lua, &c, &fields, TxBody::Poio(crate::ledger::poio::PoioTx::Weights(weights)))
        })?,
    )?;
    let transactions = [
        ("register", "dpos.register"),
        ("stake", "dpos.stake"),
        ("unstake", "dpos.unstake"),
        ("unlock", "dpos.unlock"),
        ("vote", "dpos.vote"),
    ];
    for (name, shown_as) in transactions {
        let c = ctx.clone();
        let transaction = function(lua, shown_as, move |lua, args| {
            let fields = args.required_fields(0, "the transaction")?;
            submit_signed(lua, &c, &fields, TxBody::Staking(body_of(name, &fields)?))
        })?;
        table.set(name, transaction)?;
    }
    lua.globals().set("dpos", table)
}

fn query(lua: &Lua, ctx: &ConsoleContext, op: StakingOp) -> mlua::Result<Value> {
    let answer = ops::staking(&ctx.node.requests, op).map_err(|e| runtime(e.to_string()))?;
    lua.to_value(&answer)
}

/// The body of `dpos.<name>{...}`.
fn body_of(name: &str, fields: &Fields) -> mlua::Result<StakingTx> {
    Ok(match name {
        "register" => {
            StakingTx::RegisterDelegate { node_key: fields.account("node_key")?, name: fields.string("name")? }
        }
        "stake" => StakingTx::Stake { amount: fields.integer("amount")? },
        "unstake" => StakingTx::Unstake { amount: fields.integer("amount")? },
        "unlock" => StakingTx::Unlock,
        _ => StakingTx::Vote { delegates: delegates_of(fields)? },
    })
}

/// `delegates = {"hex key", ...}`.
fn delegates_of(fields: &Fields) -> mlua::Result<Vec<PublicKey>> {
    let list: Table = fields.table("delegates")?;
    let mut delegates = Vec::new();
    for (position, value) in list.sequence_values::<Value>().enumerate() {
        let text = match value? {
            Value::String(text) => text.to_str()?.to_string(),
            other => {
                return Err(fields.error(
                    "delegates",
                    format!("entry {} must be a key in hex, got {}", position + 1, other.type_name()),
                ));
            }
        };
        let key = crate::crypto::account_from_hex(&text)
            .map_err(|e| fields.error("delegates", format!("entry {}: {e}", position + 1)))?;
        delegates.push(key);
    }
    Ok(delegates)
}
