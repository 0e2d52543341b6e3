//! Reduce and guard the standard library of a fresh session.

#[path = "pattern.rs"]
mod pattern;
#[cfg(test)]
#[path = "pattern_tests.rs"]
mod pattern_tests;

use super::sandbox::{Denial, Guard};
use mlua::{Function, Lua, LuaString, MultiValue, Table, Value, chunk::ChunkMode};
use pattern::{Capture, Found, Gmatch, Matcher, Meter, PatternError};
use std::sync::{
    Arc,
    atomic::{AtomicU32, AtomicU64, Ordering},
};

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
    install_patterns(lua, guard, &string)?;
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

/// Matching steps one call of `find`, `match`, `gsub` or one step of a `gmatch` iterator may
/// take; each step is also charged to the evaluation's instruction budget.
pub(super) const PATTERN_STEPS_MAX: u64 = 10_000_000;
/// Matching steps paid for at once, by running as many VM instructions.
const PATTERN_STEPS_PER_CHARGE: u64 = 1000;
/// Calls of `gsub` that may be running at once, one inside another's replacement function
/// or `__index`. Each level holds the Rust matcher and mlua's call frames on the thread's
/// stack, more than Lua's C-call limit (200) assumes of a C function, so the nesting is cut
/// well before a 2 MiB thread stack could overflow.
const GSUB_NESTING_MAX: u32 = 32;

/// `charge(steps)` runs `steps` VM instructions (one `FORLOOP` each), so the hook charges
/// them to the budget and checks the cancel flag; `index(t, k)` is `t[k]` with metamethods.
const HELPERS_SOURCE: &str = r#"
local function charge(steps) for _ = 1, steps do end end
local function index(t, k) return t[k] end
return charge, index
"#;

/// What the four pattern functions share.
struct Patterns {
    guard: Arc<Guard>,
    charge: Function,
    index: Function,
    /// The base library's `pcall`, to call replacements and keep their error values.
    pcall: Function,
    /// Steps matched but not yet charged, carried from call to call.
    steps_unpaid: AtomicU64,
    /// `gsub` calls running now, nested through replacement functions.
    gsub_nesting: AtomicU32,
}

/// One running `gsub`, counted in [`Patterns::gsub_nesting`] until dropped.
struct GsubLevel<'p>(&'p Patterns);

impl<'p> GsubLevel<'p> {
    fn enter(patterns: &'p Patterns) -> Result<Self, PatternError> {
        let running = patterns.gsub_nesting.fetch_add(1, Ordering::Relaxed);
        let level = GsubLevel(patterns);
        if running >= GSUB_NESTING_MAX {
            return Err(PatternError::Raise(format!(
                "stack overflow (string.gsub nested more than {GSUB_NESTING_MAX} deep)"
            )));
        }
        Ok(level)
    }
}

impl Drop for GsubLevel<'_> {
    fn drop(&mut self) {
        self.0.gsub_nesting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Replaces `find`, `match`, `gmatch` and `gsub` with the metered matcher.
fn install_patterns(lua: &Lua, guard: &Arc<Guard>, string: &Table) -> mlua::Result<()> {
    let (charge, index): (Function, Function) =
        lua.load(HELPERS_SOURCE).set_name("=sandbox").set_mode(ChunkMode::Text).call(())?;
    let patterns = Arc::new(Patterns {
        guard: Arc::clone(guard),
        charge,
        index,
        pcall: lua.globals().raw_get("pcall")?,
        steps_unpaid: AtomicU64::new(0),
        gsub_nesting: AtomicU32::new(0),
    });
    let find =
        pattern_function(lua, &patterns, "find", |lua, patterns, args| find_or_match(lua, patterns, args, true))?;
    let match_ =
        pattern_function(lua, &patterns, "match", |lua, patterns, args| find_or_match(lua, patterns, args, false))?;
    string.raw_set("find", find)?;
    string.raw_set("match", match_)?;
    string.raw_set("gmatch", pattern_function(lua, &patterns, "gmatch", gmatch)?)?;
    string.raw_set("gsub", pattern_function(lua, &patterns, "gsub", gsub)?)?;
    Ok(())
}

/// Wraps a Rust function that answers `true, results...` or `false, error...` into a C
/// function that returns the results or raises the error as Lua's C library does, so
/// `pcall` sees the same value (an mlua error would reach it as a userdata, and a Lua wrapper
/// would lose the caller's position when called in tail position). The error is
/// `false, message` for `luaL_error`, `false, message, argument` for `luaL_argerror`, or
/// `false, value, true` to raise `value` unchanged.
fn raising(lua: &Lua, function: Function) -> mlua::Result<Function> {
    // SAFETY: the closure only pushes a C closure over the one argument mlua pushed.
    unsafe {
        lua.exec_raw(function, |state| {
            mlua::ffi::lua_pushcclosure(state, raise_or_return, 1);
        })
    }
}

/// The C function made by [`raising`]; its upvalue is the Rust function.
unsafe extern "C-unwind" fn raise_or_return(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    use mlua::ffi;
    // SAFETY: Lua calls this with a valid state and the upvalue set by `raising`. The frame
    // holds no value with a destructor, so Lua errors may unwind through it.
    unsafe {
        let arguments = ffi::lua_gettop(state);
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
        ffi::lua_insert(state, 1);
        ffi::lua_call(state, arguments, ffi::LUA_MULTRET);
        if ffi::lua_toboolean(state, 1) != 0 {
            return ffi::lua_gettop(state) - 1;
        }
        if ffi::lua_isinteger(state, 3) != 0 {
            let argument = ffi::lua_tointeger(state, 3) as std::ffi::c_int;
            ffi::luaL_argerror(state, argument, ffi::lua_tostring(state, 2));
        }
        if ffi::lua_toboolean(state, 3) != 0 {
            ffi::lua_settop(state, 2);
            ffi::lua_error(state);
        }
        ffi::luaL_where(state, 1);
        ffi::lua_pushvalue(state, 2);
        ffi::lua_concat(state, 2);
        ffi::lua_error(state)
    }
}

type PatternBody = fn(&Lua, &Arc<Patterns>, &MultiValue) -> Result<MultiValue, PatternError>;

/// A Rust pattern function: refuses subjects and patterns over their bounds, then answers
/// in the wrappers' `ok, ...` convention.
fn pattern_function(
    lua: &Lua,
    patterns: &Arc<Patterns>,
    name: &'static str,
    body: PatternBody,
) -> mlua::Result<Function> {
    let patterns = Arc::clone(patterns);
    let function = lua.create_function(move |lua, args: MultiValue| {
        check_pattern_bounds(&patterns.guard, name, &args)?;
        answer(lua, body(lua, &patterns, &args))
    })?;
    raising(lua, function)
}

/// Puts a result in the `ok, ...` convention of [`raising`].
fn answer(lua: &Lua, result: Result<MultiValue, PatternError>) -> mlua::Result<MultiValue> {
    match result {
        Ok(mut values) => {
            values.push_front(Value::Boolean(true));
            Ok(values)
        }
        Err(PatternError::Raise(message)) => {
            Ok(MultiValue::from_iter([Value::Boolean(false), Value::String(lua.create_string(message)?)]))
        }
        Err(PatternError::Argument { index, message }) => Ok(MultiValue::from_iter([
            Value::Boolean(false),
            Value::String(lua.create_string(message)?),
            Value::Integer(index as mlua::Integer),
        ])),
        Err(PatternError::Rethrow(value)) => {
            Ok(MultiValue::from_iter([Value::Boolean(false), value, Value::Boolean(true)]))
        }
        Err(PatternError::Host(error)) => Err(error),
    }
}

fn check_pattern_bounds(guard: &Guard, name: &str, args: &MultiValue) -> mlua::Result<()> {
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
    Ok(())
}

/// Counts the steps of one call against [`PATTERN_STEPS_MAX`] and pays for them in VM
/// instructions.
struct StepMeter<'p> {
    name: &'static str,
    patterns: &'p Patterns,
    steps_used: u64,
    steps_unpaid: u64,
}

/// The error a pattern function raises when it runs out of steps (catchable in Lua, so
/// that `pcall` behaves as with any error; the steps were charged to the budget anyway).
fn step_limit_message(function: &str) -> String {
    format!("stopped: string.{function} ran more than {PATTERN_STEPS_MAX} matching steps")
}

/// Whether an uncaught error is a pattern function's step limit (see [`step_limit_message`]).
pub(super) fn is_step_limit(message: &str) -> bool {
    message.contains(&format!("ran more than {PATTERN_STEPS_MAX} matching steps"))
        && message.contains("stopped: string.")
}

impl<'p> StepMeter<'p> {
    fn new(name: &'static str, patterns: &'p Patterns) -> Self {
        let steps_unpaid = patterns.steps_unpaid.swap(0, Ordering::Relaxed);
        Self { name, patterns, steps_used: 0, steps_unpaid }
    }
}

impl Meter for StepMeter<'_> {
    fn charge(&mut self, steps: u64) -> Result<(), PatternError> {
        self.steps_used += steps;
        if self.steps_used > PATTERN_STEPS_MAX {
            return Err(PatternError::Raise(step_limit_message(self.name)));
        }
        self.steps_unpaid += steps;
        if self.steps_unpaid >= PATTERN_STEPS_PER_CHARGE {
            let steps = std::mem::take(&mut self.steps_unpaid);
            self.patterns.charge.call::<()>(steps).map_err(PatternError::Host)?;
        }
        Ok(())
    }
}

impl Drop for StepMeter<'_> {
    fn drop(&mut self) {
        self.patterns.steps_unpaid.fetch_add(self.steps_unpaid, Ordering::Relaxed);
    }
}

/// `string.find (s, pattern [, init [, plain]])` and `string.match (s, pattern [, init])`.
fn find_or_match(
    lua: &Lua,
    patterns: &Arc<Patterns>,
    args: &MultiValue,
    find: bool,
) -> Result<MultiValue, PatternError> {
    let name = if find { "find" } else { "match" };
    let subject = check_string(lua, args, 1)?;
    let pattern = check_string(lua, args, 2)?;
    let subject_bytes = subject.as_bytes();
    let init = optional_integer(lua, args, 3, 1)?;
    let plain = find && args.get(3).is_some_and(|plain| !matches!(plain, Value::Nil | Value::Boolean(false)));
    let mut meter = StepMeter::new(name, patterns);
    let found = pattern::find(&subject_bytes, &pattern.as_bytes(), init, plain, find, &mut meter)?;
    let mut values = MultiValue::new();
    match found {
        None => values.push_back(Value::Nil),
        Some(Found::Range { start, end, captures }) => {
            values.push_back(Value::Integer(start as mlua::Integer));
            values.push_back(Value::Integer(end as mlua::Integer));
            push_captures(lua, &subject_bytes, captures, &mut values)?;
        }
        Some(Found::Captures(captures)) => push_captures(lua, &subject_bytes, captures, &mut values)?,
    }
    Ok(values)
}

/// `string.gmatch (s, pattern [, init])`: an iterator holding the subject and the pattern.
fn gmatch(lua: &Lua, patterns: &Arc<Patterns>, args: &MultiValue) -> Result<MultiValue, PatternError> {
    let subject = check_string(lua, args, 1)?;
    let pattern = check_string(lua, args, 2)?;
    let init = optional_integer(lua, args, 3, 1)?;
    let mut state = Gmatch::new(subject.as_bytes().len(), init);
    let patterns = Arc::clone(patterns);
    let iterator = lua
        .create_function_mut(move |lua, ()| {
            let subject_bytes = subject.as_bytes();
            let mut meter = StepMeter::new("gmatch", &patterns);
            let found = state.next(&subject_bytes, &pattern.as_bytes(), &mut meter);
            let mut values = MultiValue::new();
            let result = found.and_then(|found| match found {
                Some(captures) => push_captures(lua, &subject_bytes, captures, &mut values).map(|()| values),
                None => Ok(values),
            });
            answer(lua, result)
        })
        .and_then(|iterator| raising(lua, iterator))
        .map_err(PatternError::Host)?;
    Ok(MultiValue::from_iter([Value::Function(iterator)]))
}

/// `string.gsub (s, pattern, repl [, n])` with a string, table or function replacement.
fn gsub(lua: &Lua, patterns: &Arc<Patterns>, args: &MultiValue) -> Result<MultiValue, PatternError> {
    let subject = check_string(lua, args, 1)?;
    let pattern = check_string(lua, args, 2)?;
    let subject_bytes = subject.as_bytes();
    let replacements_max = optional_integer(lua, args, 4, subject_bytes.len() as i64 + 1)?;
    let replacement = args.get(2).cloned().unwrap_or(Value::Nil);
    let mut replace_with_string;
    let mut replace_with_value;
    let replace: &mut pattern::Replace<'_, StepMeter<'_>> = match &replacement {
        Value::String(_) | Value::Integer(_) | Value::Number(_) => {
            let text = lua.coerce_string(replacement.clone()).map_err(PatternError::Host)?;
            let text = text.map(|text| text.as_bytes().to_vec()).unwrap_or_default();
            replace_with_string = move |matcher: &Matcher<'_, StepMeter<'_>>, matched, result: &mut Vec<u8>| {
                pattern::add_replacement_string(matcher, &text, matched, result).map(|()| true)
            };
            &mut replace_with_string
        }
        Value::Table(_) | Value::Function(_) => {
            replace_with_value = |matcher: &Matcher<'_, StepMeter<'_>>, matched, result: &mut Vec<u8>| {
                add_replacement_value(lua, patterns, &replacement, matcher, matched, result)
            };
            &mut replace_with_value
        }
        _ => return Err(type_error(args, 3, "string/function/table")),
    };
    let _level = GsubLevel::enter(patterns)?;
    let memory_bytes_max = patterns.guard.limits.memory_bytes_max;
    let result_bytes_max = memory_bytes_max.saturating_sub(lua.used_memory());
    let mut meter = StepMeter::new("gsub", patterns);
    let substituted =
        pattern::gsub(&subject_bytes, &pattern.as_bytes(), replacements_max, result_bytes_max, replace, &mut meter)?;
    let text = match substituted.text {
        Some(text) => lua.create_string(text).map_err(PatternError::Host)?,
        None => subject.clone(),
    };
    Ok(MultiValue::from_iter([Value::String(text), Value::Integer(substituted.count)]))
}

/// Appends what a table or function gives for one match (`add_value`); `nil` or `false`
/// keeps the matched text.
fn add_replacement_value(
    lua: &Lua,
    patterns: &Patterns,
    replacement: &Value,
    matcher: &Matcher<'_, StepMeter<'_>>,
    matched: std::ops::Range<usize>,
    result: &mut Vec<u8>,
) -> Result<bool, PatternError> {
    let subject = matcher.subject();
    let mut arguments = MultiValue::new();
    match replacement {
        Value::Function(_) => {
            arguments.push_back(replacement.clone());
            push_captures(lua, subject, matcher.captures(Some((matched.start, matched.end)))?, &mut arguments)?;
        }
        Value::Table(_) => {
            arguments.push_back(Value::Function(patterns.index.clone()));
            arguments.push_back(replacement.clone());
            arguments.push_back(capture_value(lua, subject, matcher.capture(0, matched.start, matched.end)?)?);
        }
        _ => unreachable!("gsub checked the replacement's type"),
    }
    let mut results = patterns.pcall.call::<MultiValue>(arguments).map_err(PatternError::Host)?.into_iter();
    let succeeded = matches!(results.next(), Some(Value::Boolean(true)));
    let value = results.next().unwrap_or(Value::Nil);
    if !succeeded {
        return Err(rethrow(value));
    }
    match value {
        Value::Nil | Value::Boolean(false) => {
            result.extend_from_slice(&subject[matched]);
            Ok(false)
        }
        Value::String(_) | Value::Integer(_) | Value::Number(_) => {
            let text = lua.coerce_string(value).map_err(PatternError::Host)?;
            result.extend_from_slice(&text.map(|text| text.as_bytes().to_vec()).unwrap_or_default());
            Ok(true)
        }
        other => Err(PatternError::Raise(format!("invalid replacement value (a {})", type_name(&other)))),
    }
}

/// The error a replacement raised, to raise again; Lua's memory error stays a memory error.
fn rethrow(value: Value) -> PatternError {
    match &value {
        Value::String(message) if message.as_bytes().as_ref() == b"not enough memory" => {
            PatternError::Host(mlua::Error::MemoryError("not enough memory".to_string()))
        }
        _ => PatternError::Rethrow(value),
    }
}

fn push_captures(
    lua: &Lua,
    subject: &[u8],
    captures: Vec<Capture>,
    values: &mut MultiValue,
) -> Result<(), PatternError> {
    for capture in captures {
        values.push_back(capture_value(lua, subject, capture)?);
    }
    Ok(())
}

fn capture_value(lua: &Lua, subject: &[u8], capture: Capture) -> Result<Value, PatternError> {
    Ok(match capture {
        Capture::Bytes(range) => Value::String(lua.create_string(&subject[range]).map_err(PatternError::Host)?),
        Capture::Position(position) => Value::Integer(position as mlua::Integer),
    })
}

/// Argument `index` as a string, numbers converted (`luaL_checklstring`).
fn check_string(lua: &Lua, args: &MultiValue, index: usize) -> Result<LuaString, PatternError> {
    let value = args.get(index - 1).cloned().unwrap_or(Value::Nil);
    match lua.coerce_string(value).map_err(PatternError::Host)? {
        Some(text) => Ok(text),
        None => Err(type_error(args, index, "string")),
    }
}

/// Argument `index` as an integer, `default` when absent or nil (`luaL_optinteger`).
fn optional_integer(lua: &Lua, args: &MultiValue, index: usize, default: i64) -> Result<i64, PatternError> {
    let value = match args.get(index - 1) {
        None | Some(Value::Nil) => return Ok(default),
        Some(value) => value.clone(),
    };
    if let Some(integer) = lua.coerce_integer(value.clone()).map_err(PatternError::Host)? {
        return Ok(integer);
    }
    if lua.coerce_number(value).map_err(PatternError::Host)?.is_some() {
        return Err(PatternError::Argument { index, message: "number has no integer representation".to_string() });
    }
    Err(type_error(args, index, "number"))
}

/// `bad argument #i to 'name' (expected expected, got type)` (`luaL_typeerror`).
fn type_error(args: &MultiValue, index: usize, expected: &str) -> PatternError {
    let got = args.get(index - 1).map_or("no value", type_name);
    PatternError::Argument { index, message: format!("{expected} expected, got {got}") }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::LightUserData(_) => "light userdata",
        Value::Integer(_) | Value::Number(_) => "number",
        other => other.type_name(),
    }
}
