//! Reduce and guard the standard library of a fresh session.

use super::sandbox::{Denial, Guard};
use mlua::{Function, Lua, LuaString, MultiValue, Table, Value, chunk::ChunkMode};
use std::sync::Arc;

/// Base functions removed: they load code (`load` accepts bytecode) or write to stderr.
const BASE_REMOVED: &[&str] = &["load", "loadfile", "dofile", "require", "loadstring", "warn"];

/// Re-raises a sticky stop after every protected call, and makes the string metatable read-only.
const PROTECT_SOURCE: &str = r#"
local check, pcall, xpcall, resume, wrap, getmetatable, setmetatable, error = ...
local function pass(...)
    check()
    return ...
end
_G.pcall = function(...) return pass(pcall(...)) end
_G.xpcall = function(...) return pass(xpcall(...)) end
coroutine.resume = function(...) return pass(resume(...)) end
coroutine.wrap = function(body)
    local resume_wrapped = wrap(body)
    return function(...) return pass(resume_wrapped(...)) end
end
local string_metatable = getmetatable("")
string_metatable.__metatable = setmetatable({}, {
    __index = string_metatable,
    __newindex = function() error("the string metatable is read-only", 2) end,
    __metatable = false,
})
"#;

/// Installs the guarded library; returns the `string` table (for completion of string values).
pub(super) fn install(lua: &Lua, guard: &Arc<Guard>) -> mlua::Result<Table> {
    let globals = lua.globals();
    for name in BASE_REMOVED {
        globals.raw_set(*name, Value::Nil)?;
    }
    globals.raw_set("collectgarbage", collectgarbage(lua)?)?;
    globals.raw_set("print", print(lua, guard, globals.raw_get("tostring")?)?)?;
    let string: Table = globals.raw_get("string")?;
    string.raw_set("dump", Value::Nil)?;
    for name in ["find", "match", "gmatch", "gsub"] {
        let original: Function = string.raw_get(name)?;
        string.raw_set(name, pattern_function(lua, guard, name, original)?)?;
    }
    string.raw_set("rep", rep(lua, guard, string.raw_get("rep")?)?)?;
    protect(lua, guard, &globals)?;
    globals.raw_set("setmetatable", setmetatable(lua)?)?;
    Ok(string)
}

fn protect(lua: &Lua, guard: &Arc<Guard>, globals: &Table) -> mlua::Result<()> {
    let check_guard = Arc::clone(guard);
    let check = lua.create_function(move |_, ()| match check_guard.stop_error() {
        Some(error) => Err(error),
        None => Ok(()),
    })?;
    let coroutine: Table = globals.raw_get("coroutine")?;
    let args = (
        check,
        globals.raw_get::<Function>("pcall")?,
        globals.raw_get::<Function>("xpcall")?,
        coroutine.raw_get::<Function>("resume")?,
        coroutine.raw_get::<Function>("wrap")?,
        globals.raw_get::<Function>("getmetatable")?,
        globals.raw_get::<Function>("setmetatable")?,
        globals.raw_get::<Function>("error")?,
    );
    lua.load(PROTECT_SOURCE).set_name("=sandbox").set_mode(ChunkMode::Text).call::<()>(args)
}

/// `setmetatable` that refuses `__gc`: finalizers run with hooks disabled, so neither the
/// budget nor the cancel flag could stop one. Lua marks a table for finalization only if
/// its metatable has `__gc` when it is set, so adding the field later has no effect.
fn setmetatable(lua: &Lua) -> mlua::Result<Function> {
    lua.create_function(|_, (value, metatable): (Value, Value)| {
        let Value::Table(table) = value else {
            return Err(mlua::Error::runtime(format!(
                "bad argument #1 to 'setmetatable' (table expected, got {})",
                value.type_name()
            )));
        };
        let metatable = match metatable {
            Value::Nil => None,
            Value::Table(metatable) => Some(metatable),
            _ => return Err(mlua::Error::runtime("bad argument #2 to 'setmetatable' (nil or table expected)")),
        };
        let protected =
            table.metatable().is_some_and(|current| !matches!(current.raw_get("__metatable"), Ok(Value::Nil)));
        if protected {
            return Err(mlua::Error::runtime("cannot change a protected metatable"));
        }
        if metatable.as_ref().is_some_and(|metatable| !matches!(metatable.raw_get("__gc"), Ok(Value::Nil))) {
            return Err(deny("setmetatable: __gc metamethods are not allowed".to_string()));
        }
        table.set_metatable(metatable)?;
        Ok(table)
    })
}

/// `collectgarbage("count")` only: the other options would let a script drive the collector.
fn collectgarbage(lua: &Lua) -> mlua::Result<Function> {
    lua.create_function(|lua, option: Option<LuaString>| {
        match option.as_ref().map(|option| option.as_bytes().to_vec()) {
            Some(option) if option == b"count" => Ok(lua.used_memory() as f64 / 1024.0),
            _ => Err(mlua::Error::external(Denial("collectgarbage: only \"count\" is allowed".to_string()))),
        }
    })
}

/// `print` into the evaluation's bounded output instead of the node's stdout.
fn print(lua: &Lua, guard: &Arc<Guard>, tostring: Function) -> mlua::Result<Function> {
    let guard = Arc::clone(guard);
    lua.create_function(move |_, args: MultiValue| {
        let mut line = String::new();
        for (index, value) in args.into_iter().enumerate() {
            if index > 0 {
                line.push('\t');
            }
            line.push_str(&tostring.call::<LuaString>(value)?.to_string_lossy());
            if line.len() > guard.limits.output_bytes_max {
                break;
            }
        }
        guard.print(line)
    })
}

/// A pattern function that refuses subjects and patterns over their bounds before matching.
fn pattern_function(lua: &Lua, guard: &Arc<Guard>, name: &'static str, original: Function) -> mlua::Result<Function> {
    let guard = Arc::clone(guard);
    lua.create_function(move |_, args: MultiValue| {
        let limits = &guard.limits;
        let subject_bytes = string_bytes(args.front());
        if subject_bytes > limits.pattern_subject_bytes_max {
            return Err(deny(format!(
                "string.{name}: subject of {subject_bytes} bytes exceeds pattern_subject_bytes_max ({})",
                limits.pattern_subject_bytes_max
            )));
        }
        let pattern_bytes = string_bytes(args.get(1));
        if pattern_bytes > limits.pattern_bytes_max {
            return Err(deny(format!(
                "string.{name}: pattern of {pattern_bytes} bytes exceeds pattern_bytes_max ({})",
                limits.pattern_bytes_max
            )));
        }
        original.call::<MultiValue>(args)
    })
}

/// `string.rep` that refuses, before allocating, a result the session has no room for.
fn rep(lua: &Lua, guard: &Arc<Guard>, original: Function) -> mlua::Result<Function> {
    let guard = Arc::clone(guard);
    lua.create_function(move |lua, (text, count, separator): (LuaString, mlua::Integer, Option<LuaString>)| {
        let text_bytes = text.as_bytes().len() as u128;
        let separator_bytes = separator.as_ref().map_or(0, |separator| separator.as_bytes().len()) as u128;
        let count = u128::try_from(count).unwrap_or(0);
        let result_bytes = (text_bytes * count).saturating_add(separator_bytes * count.saturating_sub(1));
        let memory_bytes_max = guard.limits.memory_bytes_max;
        let room_bytes = memory_bytes_max.saturating_sub(lua.used_memory());
        if result_bytes > room_bytes as u128 {
            return Err(deny(format!(
                "string.rep: result of {result_bytes} bytes exceeds the {room_bytes} bytes left \
                 under memory_bytes_max ({memory_bytes_max})"
            )));
        }
        original.call::<LuaString>((text, count as mlua::Integer, separator))
    })
}

/// Length of a string argument; numbers (converted by Lua) and other types are short.
fn string_bytes(value: Option<&Value>) -> usize {
    match value {
        Some(Value::String(text)) => text.as_bytes().len(),
        _ => 0,
    }
}

fn deny(what: String) -> mlua::Error {
    mlua::Error::external(Denial(what))
}
