//! The session: one sandboxed Lua state, its limits, and the evaluation entry points.

use super::{complete, convert, stdlib};
use mlua::chunk::ChunkMode;
use mlua::{Function, HookTriggers, IntoLuaMulti, Lua, LuaOptions, MultiValue, StdLib, Table, VmState};
use serde::Deserialize;
use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering},
    },
};

/// Instructions between two calls of the budget and cancel hook.
pub(super) const HOOK_INSTRUCTIONS: u32 = 1000;
/// Smallest accepted `memory_bytes_max`: a fresh state with its libraries needs some room.
pub(super) const MEMORY_BYTES_MIN: usize = 1024 * 1024;

/// The manifest's `[lua]` table: limits of every operator Lua session (all keys optional).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LuaLimits {
    /// Memory one session may hold, in bytes.
    #[serde(default = "default_memory_bytes_max")]
    pub memory_bytes_max: usize,
    /// VM instructions one evaluation (or call) may run, coroutines included.
    #[serde(default = "default_instructions_max")]
    pub instructions_max: u64,
    /// Longest subject `string.find`/`match`/`gmatch`/`gsub` accept, in bytes.
    #[serde(default = "default_pattern_subject_bytes_max")]
    pub pattern_subject_bytes_max: usize,
    /// Longest pattern those functions accept, in bytes.
    #[serde(default = "default_pattern_bytes_max")]
    pub pattern_bytes_max: usize,
    /// Printed text plus JSON results of one evaluation, in bytes.
    #[serde(default = "default_output_bytes_max")]
    pub output_bytes_max: usize,
}

fn default_memory_bytes_max() -> usize {
    64 * 1024 * 1024
}
fn default_instructions_max() -> u64 {
    200_000_000
}
fn default_pattern_subject_bytes_max() -> usize {
    1024 * 1024
}
fn default_pattern_bytes_max() -> usize {
    256
}
fn default_output_bytes_max() -> usize {
    4 * 1024 * 1024
}

impl Default for LuaLimits {
    fn default() -> Self {
        Self {
            memory_bytes_max: default_memory_bytes_max(),
            instructions_max: default_instructions_max(),
            pattern_subject_bytes_max: default_pattern_subject_bytes_max(),
            pattern_bytes_max: default_pattern_bytes_max(),
            output_bytes_max: default_output_bytes_max(),
        }
    }
}

impl LuaLimits {
    /// Checks the limits a session can work with; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.memory_bytes_max < MEMORY_BYTES_MIN {
            return Err(format!(
                "lua.memory_bytes_max: {} is below the minimum of {MEMORY_BYTES_MIN} bytes",
                self.memory_bytes_max
            ));
        }
        if self.instructions_max == 0 {
            return Err("lua.instructions_max: must be positive".to_string());
        }
        if self.output_bytes_max == 0 {
            return Err("lua.output_bytes_max: must be positive".to_string());
        }
        Ok(())
    }
}

/// What one evaluation produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvalOutput {
    /// The chunk's return values, as JSON.
    pub values: Vec<serde_json::Value>,
    /// Lines written by `print`, in order.
    pub printed: Vec<String>,
}

/// Why an evaluation did not complete.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum ScriptError {
    /// The chunk does not parse.
    #[error("{message}")]
    Syntax {
        /// Lua's message, with the location.
        message: String,
        /// The chunk is unfinished: more input could complete it.
        incomplete: bool,
    },
    /// The chunk raised an error.
    #[error("{message}")]
    Runtime {
        /// One line with the Lua location.
        message: String,
    },
    /// The evaluation ran out of instructions.
    #[error("stopped: the evaluation exceeded its budget of {instructions_max} instructions")]
    InstructionLimit {
        /// The budget.
        instructions_max: u64,
    },
    /// The session ran out of memory.
    #[error("stopped: the session exceeded its memory limit of {memory_bytes_max} bytes")]
    MemoryLimit {
        /// The limit.
        memory_bytes_max: usize,
    },
    /// The cancel flag was set.
    #[error("cancelled")]
    Cancelled,
    /// The sandbox refused an operation.
    #[error("denied: {what}")]
    Denied {
        /// The operation and the bound it would break.
        what: String,
    },
    /// Printed text and results exceeded their bound.
    #[error("stopped: the evaluation's output exceeded its limit of {output_bytes_max} bytes")]
    Output {
        /// The bound.
        output_bytes_max: usize,
    },
    /// A string pattern function ran out of matching steps (and nothing caught it).
    #[error("{message}")]
    PatternSteps {
        /// One line with the Lua location.
        message: String,
    },
}

impl ScriptError {
    /// The error's family: `syntax`, `runtime`, `limit`, `cancelled` or `denied`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Syntax { .. } => "syntax",
            Self::Runtime { .. } => "runtime",
            Self::InstructionLimit { .. }
            | Self::MemoryLimit { .. }
            | Self::Output { .. }
            | Self::PatternSteps { .. } => "limit",
            Self::Cancelled => "cancelled",
            Self::Denied { .. } => "denied",
        }
    }
}

/// A refusal raised inside Lua by a guarded library function.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct Denial(pub(super) String);

/// Why the running evaluation must stop; sticky until the evaluation ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Stop {
    Instructions = 1,
    Cancelled = 2,
    Output = 3,
}

/// State shared between the session and the hook and library functions inside Lua.
pub(super) struct Guard {
    pub(super) limits: LuaLimits,
    instructions_used: AtomicU64,
    stop: AtomicU8,
    /// Address of the running evaluation's cancel flag, 0 when none; see [`Armed`].
    cancel_address: Mutex<usize>,
    printed: Mutex<Printed>,
}

#[derive(Default)]
struct Printed {
    lines: Vec<String>,
    bytes: usize,
}

impl Guard {
    fn new(limits: LuaLimits) -> Self {
        Self {
            limits,
            instructions_used: AtomicU64::new(0),
            stop: AtomicU8::new(0),
            cancel_address: Mutex::new(0),
            printed: Mutex::new(Printed::default()),
        }
    }

    pub(super) fn stop(&self) -> Option<Stop> {
        match self.stop.load(Ordering::Relaxed) {
            1 => Some(Stop::Instructions),
            2 => Some(Stop::Cancelled),
            3 => Some(Stop::Output),
            _ => None,
        }
    }

    fn set_stop(&self, stop: Stop) -> mlua::Error {
        // The first reason wins: a later one must not rename why the evaluation stopped.
        let _ = self.stop.compare_exchange(0, stop as u8, Ordering::Relaxed, Ordering::Relaxed);
        self.stop_error().unwrap_or_else(|| mlua::Error::runtime("stopped"))
    }

    /// The error that re-raises a sticky stop, if one is set.
    pub(super) fn stop_error(&self) -> Option<mlua::Error> {
        let error = match self.stop()? {
            Stop::Instructions => ScriptError::InstructionLimit { instructions_max: self.limits.instructions_max },
            Stop::Cancelled => ScriptError::Cancelled,
            Stop::Output => ScriptError::Output { output_bytes_max: self.limits.output_bytes_max },
        };
        Some(mlua::Error::runtime(error.to_string()))
    }

    /// The hook: charges the budget, checks the cancel flag, re-raises a sticky stop.
    fn on_hook(&self) -> mlua::Result<VmState> {
        if let Some(error) = self.stop_error() {
            return Err(error);
        }
        let used = self.instructions_used.fetch_add(u64::from(HOOK_INSTRUCTIONS), Ordering::Relaxed);
        if used.saturating_add(u64::from(HOOK_INSTRUCTIONS)) > self.limits.instructions_max {
            return Err(self.set_stop(Stop::Instructions));
        }
        if self.cancel_requested() {
            return Err(self.set_stop(Stop::Cancelled));
        }
        Ok(VmState::Continue)
    }

    fn cancel_requested(&self) -> bool {
        let address = self.cancel_address.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if *address == 0 {
            return false;
        }
        // SAFETY: a non-zero address is set only by `Armed::new` from a `&AtomicBool` that the
        // `Armed` value borrows; `Armed::drop` resets it under this same lock before that borrow
        // ends, so while the lock is held here the flag is alive.
        let cancel = unsafe { &*(*address as *const AtomicBool) };
        cancel.load(Ordering::Relaxed)
    }

    /// Records one printed line, or stops the evaluation when output would exceed its bound.
    pub(super) fn print(&self, line: String) -> mlua::Result<()> {
        let mut printed = self.printed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let bytes = printed.bytes.saturating_add(line.len()).saturating_add(1);
        if bytes > self.limits.output_bytes_max {
            return Err(self.set_stop(Stop::Output));
        }
        printed.bytes = bytes;
        printed.lines.push(line);
        Ok(())
    }

    /// Bytes of output the evaluation may still produce.
    pub(super) fn output_bytes_left(&self) -> usize {
        let printed = self.printed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.limits.output_bytes_max.saturating_sub(printed.bytes)
    }

    fn take_printed(&self) -> Vec<String> {
        let mut printed = self.printed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::take(&mut *printed).lines
    }

    fn reset(&self) {
        self.instructions_used.store(0, Ordering::Relaxed);
        self.stop.store(0, Ordering::Relaxed);
        *self.printed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Printed::default();
    }
}

/// One evaluation in progress: a fresh budget and the caller's cancel flag.
///
/// Dropping it gives code that runs outside evaluations (finalizers, host calls) a fresh
/// budget too, so even that cannot run forever.
struct Armed<'a> {
    guard: &'a Guard,
    previous_address: usize,
    _cancel: &'a AtomicBool,
}

impl<'a> Armed<'a> {
    fn new(guard: &'a Guard, cancel: &'a AtomicBool) -> Self {
        guard.reset();
        let mut address = guard.cancel_address.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let previous_address = std::mem::replace(&mut *address, cancel as *const AtomicBool as usize);
        Self { guard, previous_address, _cancel: cancel }
    }
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        *self.guard.cancel_address.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = self.previous_address;
        self.guard.reset();
    }
}

/// One operator Lua session: its own Lua state, globals and limits.
pub struct Session {
    // Declared before `lua` so that it is released before the state closes.
    string_library: Table,
    completion_types: Mutex<BTreeMap<String, Vec<String>>>,
    guard: Arc<Guard>,
    lua: Lua,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("limits", &self.guard.limits).finish_non_exhaustive()
    }
}

impl Session {
    /// Creates a session: the reduced libraries, the limits, the hook.
    pub fn new(limits: LuaLimits) -> Result<Session, ScriptError> {
        limits.validate().map_err(|what| ScriptError::Denied { what })?;
        let libraries = StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::UTF8 | StdLib::COROUTINE;
        let lua = Lua::new_with(libraries, LuaOptions::default()).map_err(setup_error)?;
        let guard = Arc::new(Guard::new(limits));
        let string_library = stdlib::install(&lua, &guard).map_err(setup_error)?;
        let hook_guard = Arc::clone(&guard);
        let triggers = HookTriggers::new().every_nth_instruction(HOOK_INSTRUCTIONS);
        lua.set_global_hook(triggers, move |_, _| hook_guard.on_hook()).map_err(setup_error)?;
        lua.set_memory_limit(guard.limits.memory_bytes_max).map_err(setup_error)?;
        Ok(Session { string_library, completion_types: Mutex::new(BTreeMap::new()), guard, lua })
    }

    /// The Lua state, to install host bindings.
    pub fn lua(&self) -> &Lua {
        &self.lua
    }

    /// The limits this session runs under.
    pub fn limits(&self) -> &LuaLimits {
        &self.guard.limits
    }

    /// Evaluates a chunk: first as an expression (`return <code>`), and if that does not
    /// parse, as statements (REPL style, so `1+1` gives 2 and `x = 1` works).
    ///
    /// The instruction budget and the cancel flag apply to everything the chunk runs,
    /// including Lua callbacks of host functions. `print` output is captured into
    /// `printed`; printed text and results together are bounded by `output_bytes_max`.
    pub fn eval(&self, chunk_name: &str, code: &str, cancel: &AtomicBool) -> Result<EvalOutput, ScriptError> {
        let armed = Armed::new(&self.guard, cancel);
        let function = self.compile(chunk_name, code)?;
        let result = function.call::<MultiValue>(());
        drop(function);
        let values = result.map_err(|error| self.classify(&error))?;
        let printed = self.guard.take_printed();
        if cancel.load(Ordering::Relaxed) {
            // A host function that stops on the flag (`watch`) returns normally: what it
            // returns is not the answer to a cancelled evaluation.
            return Err(ScriptError::Cancelled);
        }
        let mut output_bytes_left = self.guard.output_bytes_left();
        drop(armed);
        let values = convert::values_to_json(&values.into_vec(), &mut output_bytes_left)
            .map_err(|_| ScriptError::Output { output_bytes_max: self.guard.limits.output_bytes_max })?;
        Ok(EvalOutput { values, printed })
    }

    /// Calls a Lua function under the same limits as [`Session::eval`]; returns its first value.
    pub fn call(
        &self,
        function: &Function,
        args: impl IntoLuaMulti,
        cancel: &AtomicBool,
    ) -> Result<mlua::Value, ScriptError> {
        let _armed = Armed::new(&self.guard, cancel);
        function.call::<mlua::Value>(args).map_err(|error| self.classify(&error))
    }

    /// Calls a Lua function under the same limits as [`Session::eval`]; returns all its values.
    pub fn call_multi(
        &self,
        function: &Function,
        args: impl IntoLuaMulti,
        cancel: &AtomicBool,
    ) -> Result<Vec<mlua::Value>, ScriptError> {
        let _armed = Armed::new(&self.guard, cancel);
        function.call::<MultiValue>(args).map(MultiValue::into_vec).map_err(|error| self.classify(&error))
    }

    /// Runs a text chunk that must return a function (a pricing strategy's source) and
    /// returns that function; the chunk runs under the same limits as an evaluation.
    pub fn load_function(&self, chunk_name: &str, code: &str, cancel: &AtomicBool) -> Result<Function, ScriptError> {
        let _armed = Armed::new(&self.guard, cancel);
        let chunk = load_text(&self.lua, &format!("={chunk_name}"), code.as_bytes()).map_err(|e| self.classify(&e))?;
        match chunk.call::<mlua::Value>(()).map_err(|error| self.classify(&error))? {
            mlua::Value::Function(function) => Ok(function),
            other => Err(ScriptError::Runtime {
                message: format!("{chunk_name}: the chunk must return a function, it returned a {}", other.type_name()),
            }),
        }
    }

    /// Completion candidates for the identifier path ending at the end of `line`.
    ///
    /// Follows globals, table fields and `__index` tables of metatables without calling
    /// anything; after `f(...)` it offers the methods registered for `f` with
    /// [`Session::register_completion_type`]. Returns the byte where the completed word
    /// starts and the sorted candidates.
    pub fn complete(&self, line: &str) -> (usize, Vec<String>) {
        let types = self.completion_types.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        complete::complete(&self.lua, &self.string_library, &types, line)
    }

    /// Declares that calling global function `function_name` returns a value whose methods
    /// are `methods`, so `function_name(...):` completes to them without calling anything.
    pub fn register_completion_type(&self, function_name: &str, methods: &[&str]) {
        let mut methods: Vec<String> = methods.iter().map(|method| method.to_string()).collect();
        methods.sort();
        methods.dedup();
        let mut types = self.completion_types.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        types.insert(function_name.to_string(), methods);
    }

    /// Compiles `code` as an expression, else as statements; text only.
    fn compile(&self, chunk_name: &str, code: &str) -> Result<Function, ScriptError> {
        let name = format!("={chunk_name}");
        let mut expression_source = b"return ".to_vec();
        expression_source.extend_from_slice(code.as_bytes());
        let expression_error = match load_text(&self.lua, &name, &expression_source) {
            Ok(function) => return Ok(function),
            Err(error) => error,
        };
        match load_text(&self.lua, &name, code.as_bytes()) {
            Ok(function) => Ok(function),
            Err(mlua::Error::SyntaxError { message, incomplete_input }) => {
                let expression_incomplete =
                    matches!(expression_error, mlua::Error::SyntaxError { incomplete_input: true, .. });
                match expression_error {
                    mlua::Error::SyntaxError { message: expression_message, .. }
                        if expression_incomplete && !incomplete_input =>
                    {
                        Err(ScriptError::Syntax { message: expression_message, incomplete: true })
                    }
                    _ => Err(ScriptError::Syntax { message, incomplete: incomplete_input }),
                }
            }
            Err(error) => Err(self.classify(&error)),
        }
    }

    /// Turns an mlua error into a [`ScriptError`]; a sticky stop takes precedence.
    fn classify(&self, error: &mlua::Error) -> ScriptError {
        let limits = &self.guard.limits;
        let classified = match self.guard.stop() {
            Some(Stop::Instructions) => ScriptError::InstructionLimit { instructions_max: limits.instructions_max },
            Some(Stop::Cancelled) => ScriptError::Cancelled,
            Some(Stop::Output) => ScriptError::Output { output_bytes_max: limits.output_bytes_max },
            None => describe(error, limits),
        };
        if matches!(classified, ScriptError::MemoryLimit { .. }) {
            // Whatever the failed evaluation left unreachable goes now, not at the next allocation.
            let _ = self.lua.gc_collect();
        }
        classified
    }
}

/// Compiles a text chunk; binary chunks are refused.
fn load_text(lua: &Lua, name: &str, source: &[u8]) -> mlua::Result<Function> {
    lua.load(source).set_name(name).set_mode(ChunkMode::Text).into_function()
}

fn setup_error(error: mlua::Error) -> ScriptError {
    ScriptError::Runtime { message: format!("cannot create the Lua session: {}", one_line(&error)) }
}

/// Classifies an error raised without a sticky stop.
fn describe(error: &mlua::Error, limits: &LuaLimits) -> ScriptError {
    if let Some(denial) = error.downcast_ref::<Denial>() {
        return ScriptError::Denied { what: denial.0.clone() };
    }
    if is_memory_error(error) {
        return ScriptError::MemoryLimit { memory_bytes_max: limits.memory_bytes_max };
    }
    match error {
        mlua::Error::SyntaxError { message, incomplete_input } => {
            ScriptError::Syntax { message: message.clone(), incomplete: *incomplete_input }
        }
        _ => {
            let message = one_line(error);
            if super::stdlib::is_step_limit(&message) {
                ScriptError::PatternSteps { message }
            } else {
                ScriptError::Runtime { message }
            }
        }
    }
}

fn is_memory_error(error: &mlua::Error) -> bool {
    match error {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. }
        | mlua::Error::WithContext { cause, .. }
        | mlua::Error::BadArgument { cause, .. } => is_memory_error(cause),
        _ => false,
    }
}

/// The error as one line with its Lua location, without mlua's stack traceback.
pub(super) fn one_line(error: &mlua::Error) -> String {
    let message = match error {
        mlua::Error::RuntimeError(message) | mlua::Error::MemoryError(message) => strip_traceback(message).to_string(),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::CallbackError { traceback, cause } => {
            let inner = one_line(cause);
            match traceback_location(traceback) {
                Some(location) if !has_location(&inner) => format!("{location}: {inner}"),
                _ => inner,
            }
        }
        mlua::Error::WithContext { context, cause } => format!("{context}: {}", one_line(cause)),
        mlua::Error::BadArgument { to, pos, name, cause } => {
            let function = to.as_deref().map(|to| format!(" to '{to}'")).unwrap_or_default();
            let name = name.as_deref().map(|name| format!(" '{name}'")).unwrap_or_default();
            format!("bad argument #{pos}{name}{function}: {}", one_line(cause))
        }
        other => strip_traceback(&other.to_string()).to_string(),
    };
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn strip_traceback(message: &str) -> &str {
    match message.find("\nstack traceback:") {
        Some(end) => &message[..end],
        None => message,
    }
}

/// The first Lua (not C) frame of a traceback, e.g. `console:1`.
fn traceback_location(traceback: &str) -> Option<&str> {
    traceback
        .lines()
        .map(str::trim)
        .filter(|frame| !frame.starts_with("[C]"))
        .find_map(|frame| frame.split_once(": in ").map(|(location, _)| location))
}

/// Whether a message already starts with a location `name:line:`.
fn has_location(message: &str) -> bool {
    message.char_indices().filter(|(_, c)| *c == ':').take(8).any(|(index, _)| {
        let rest = &message[index + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with(':')
    })
}
