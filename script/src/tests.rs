//! Every sandbox rule, each escape attempt in its own test.

use super::*;
use serde_json::json;
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

static NOT_CANCELLED: AtomicBool = AtomicBool::new(false);

/// Small limits keep the limit tests fast in debug builds.
fn small_limits() -> LuaLimits {
    LuaLimits { memory_bytes_max: 16 * 1024 * 1024, instructions_max: 2_000_000, ..LuaLimits::default() }
}

fn session() -> Session {
    Session::new(small_limits()).expect("a session with valid limits")
}

fn eval(session: &Session, code: &str) -> Result<EvalOutput, ScriptError> {
    session.eval("console", code, &NOT_CANCELLED)
}

fn values(session: &Session, code: &str) -> Vec<serde_json::Value> {
    match eval(session, code) {
        Ok(output) => output.values,
        Err(error) => panic!("{code}: {error}"),
    }
}

fn error(session: &Session, code: &str) -> ScriptError {
    match eval(session, code) {
        Ok(output) => panic!("{code}: expected an error, got {output:?}"),
        Err(error) => error,
    }
}

fn runtime_message(session: &Session, code: &str) -> String {
    match error(session, code) {
        ScriptError::Runtime { message } => message,
        other => panic!("{code}: expected a runtime error, got {other:?}"),
    }
}

// Libraries.

#[test]
fn os_is_absent() {
    let session = session();
    assert_eq!(
        runtime_message(&session, "os.execute('true')"),
        "console:1: attempt to index a nil value (global 'os')"
    );
}

#[test]
fn io_is_absent() {
    let session = session();
    assert_eq!(
        runtime_message(&session, "io.open('/etc/passwd')"),
        "console:1: attempt to index a nil value (global 'io')"
    );
}

#[test]
fn require_is_absent() {
    let session = session();
    assert_eq!(runtime_message(&session, "require('os')"), "console:1: attempt to call a nil value (global 'require')");
}

#[test]
fn package_is_absent() {
    let session = session();
    assert_eq!(
        runtime_message(&session, "package.loadlib('libc.so.6', 'system')"),
        "console:1: attempt to index a nil value (global 'package')"
    );
}

#[test]
fn debug_is_absent() {
    let session = session();
    assert_eq!(
        runtime_message(&session, "debug.getregistry()"),
        "console:1: attempt to index a nil value (global 'debug')"
    );
}

#[test]
fn load_and_file_loaders_are_absent() {
    let session = session();
    assert_eq!(values(&session, "{load, loadfile, dofile, loadstring, warn}"), vec![json!({})]);
}

#[test]
fn load_of_dumped_bytecode_fails() {
    let session = session();
    assert_eq!(
        runtime_message(&session, "load(string.dump(print))"),
        "console:1: attempt to call a nil value (field 'dump')"
    );
}

#[test]
fn load_of_a_bytecode_string_fails() {
    let session = session();
    assert_eq!(
        runtime_message(&session, r#"load("\27Lua\84\0\25\147\13\10\26\10")"#),
        "console:1: attempt to call a nil value (global 'load')"
    );
}

#[test]
fn a_bytecode_chunk_is_refused_by_eval() {
    let session = session();
    let error = error(&session, "\x1bLuaT\0\x19\u{93}\r\n\x1a\n");
    assert!(
        matches!(&error, ScriptError::Syntax { message, incomplete: false } if message.contains("binary chunk")),
        "{error:?}"
    );
}

#[test]
fn string_dump_is_absent() {
    let session = session();
    assert_eq!(
        runtime_message(&session, "string.dump(function() end)"),
        "console:1: attempt to call a nil value (field 'dump')"
    );
}

#[test]
fn collectgarbage_allows_only_count() {
    let session = session();
    assert!(values(&session, "collectgarbage('count')")[0].as_f64().is_some_and(|kilobytes| kilobytes > 0.0));
    assert_eq!(
        error(&session, "collectgarbage('stop')"),
        ScriptError::Denied { what: "collectgarbage: only \"count\" is allowed".to_string() }
    );
    assert_eq!(error(&session, "collectgarbage()").kind(), "denied");
}

#[test]
fn allowed_libraries_work() {
    let session = session();
    let code = "string.format('%d', 7), table.concat({1, 2}, ','), math.max(1, 5), utf8.char(233), \
                coroutine.wrap(function() coroutine.yield(3) end)()";
    assert_eq!(values(&session, code), vec![json!("7"), json!("1,2"), json!(5), json!("é"), json!(3)]);
}

// The string metatable.

#[test]
fn the_string_metatable_is_read_only() {
    let session = session();
    assert_eq!(
        runtime_message(&session, "getmetatable('').__index = {upper = function() return 'owned' end}"),
        "console:1: the string metatable is read-only"
    );
    assert_eq!(values(&session, "('a'):upper()"), vec![json!("A")]);
}

#[test]
fn rawset_on_the_string_metatable_changes_nothing() {
    let session = session();
    values(&session, "rawset(getmetatable(''), '__index', {upper = function() return 'owned' end})");
    assert_eq!(values(&session, "('a'):upper()"), vec![json!("A")]);
}

#[test]
fn strings_cannot_get_another_metatable() {
    let session = session();
    let message = runtime_message(&session, "setmetatable('', {})");
    assert!(message.starts_with("console:1: bad argument #1 to 'setmetatable'"), "{message}");
}

// Instructions, pcall, coroutines, cancel.

#[test]
fn an_infinite_loop_stops_at_the_instruction_budget() {
    let session = session();
    let error = error(&session, "while true do end");
    assert_eq!(error, ScriptError::InstructionLimit { instructions_max: 2_000_000 });
    assert_eq!(error.to_string(), "stopped: the evaluation exceeded its budget of 2000000 instructions");
    assert_eq!(error.kind(), "limit");
}

#[test]
fn pcall_cannot_swallow_the_budget() {
    let session = session();
    let error = error(&session, "while true do pcall(function() while true do end end) end");
    assert_eq!(error, ScriptError::InstructionLimit { instructions_max: 2_000_000 });
}

#[test]
fn xpcall_cannot_swallow_the_budget() {
    let session = session();
    let code = "while true do xpcall(function() while true do end end, function(e) return e end) end";
    assert_eq!(error(&session, code), ScriptError::InstructionLimit { instructions_max: 2_000_000 });
}

#[test]
fn an_infinite_loop_in_a_coroutine_stops() {
    let session = session();
    let code = "local co = coroutine.create(function() while true do end end) \
                while true do coroutine.resume(co) end";
    assert_eq!(error(&session, code), ScriptError::InstructionLimit { instructions_max: 2_000_000 });
}

#[test]
fn an_infinite_loop_in_a_wrapped_coroutine_stops() {
    let session = session();
    let code = "while true do pcall(coroutine.wrap(function() while true do end end)) end";
    assert_eq!(error(&session, code), ScriptError::InstructionLimit { instructions_max: 2_000_000 });
}

#[test]
fn the_cancel_flag_stops_a_loop_from_another_thread() {
    let limits = LuaLimits { instructions_max: u64::MAX, ..LuaLimits::default() };
    let session = Session::new(limits).expect("session");
    let cancel = Arc::new(AtomicBool::new(false));
    let setter = Arc::clone(&cancel);
    let started = Instant::now();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        setter.store(true, Ordering::Relaxed);
    });
    let result = session.eval("console", "while true do pcall(function() while true do end end) end", &cancel);
    thread.join().expect("setter thread");
    assert_eq!(result, Err(ScriptError::Cancelled));
    assert_eq!(ScriptError::Cancelled.to_string(), "cancelled");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[test]
fn an_evaluation_cancelled_while_a_host_function_runs_ends_cancelled_not_with_its_value() {
    let session = session();
    let cancel = Arc::new(AtomicBool::new(false));
    let setter = Arc::clone(&cancel);
    // Like `watch`: notices the flag, stops and returns what it has.
    let stops = session.lua().create_function(move |_, ()| {
        setter.store(true, Ordering::Relaxed);
        Ok(3)
    });
    session.lua().globals().set("stops", stops.expect("a function")).expect("a global");
    assert_eq!(session.eval("console", "print('x') return stops()", &cancel), Err(ScriptError::Cancelled));
    cancel.store(false, Ordering::Relaxed);
    let next = session.eval("console", "return 1", &cancel).expect("the next evaluation");
    assert_eq!((next.values, next.printed), (vec![json!(1)], Vec::<String>::new()));
}

#[test]
fn the_budget_is_per_evaluation() {
    let session = session();
    assert_eq!(error(&session, "while true do end").kind(), "limit");
    assert_eq!(values(&session, "1 + 1"), vec![json!(2)]);
    // Close to, but under, the budget: it would fail if the last evaluation's count remained.
    assert_eq!(values(&session, "local n = 0 for i = 1, 300000 do n = n + 1 end return n"), vec![json!(300000)]);
}

#[test]
fn call_runs_a_function_under_the_limits() {
    let session = session();
    values(&session, "function spin() while true do end end function double(x) return x * 2 end");
    let spin: mlua::Function = session.lua().globals().get("spin").expect("spin");
    let double: mlua::Function = session.lua().globals().get("double").expect("double");
    assert_eq!(
        session.call(&spin, (), &NOT_CANCELLED),
        Err(ScriptError::InstructionLimit { instructions_max: 2_000_000 })
    );
    assert_eq!(session.call(&double, 21, &NOT_CANCELLED), Ok(mlua::Value::Integer(42)));
}

#[test]
fn host_function_callbacks_run_under_the_budget() {
    let session = session();
    let host =
        session.lua().create_function(|_, callback: mlua::Function| callback.call::<()>(())).expect("host function");
    session.lua().globals().set("host_each", host).expect("binding");
    assert_eq!(
        error(&session, "host_each(function() while true do end end)"),
        ScriptError::InstructionLimit { instructions_max: 2_000_000 }
    );
}

#[test]
fn finalizers_are_refused() {
    let session = session();
    assert_eq!(
        error(&session, "setmetatable({}, {__gc = function() while true do end end})"),
        ScriptError::Denied { what: "setmetatable: __gc metamethods are not allowed".to_string() }
    );
}

#[test]
fn a_finalizer_added_after_setmetatable_never_runs() {
    let session = session();
    values(&session, "local mt = {} setmetatable({}, mt) mt.__gc = function() while true do end end");
    values(&session, "local t = {} for i = 1, 100000 do t[i] = {} end");
    session.lua().gc_collect().expect("collect");
    drop(session);
}

// Memory.

#[test]
fn string_rep_refuses_a_result_over_the_memory_limit() {
    let session = session();
    let error = error(&session, r#"x = ("x"):rep(1e9)"#);
    let ScriptError::Denied { what } = &error else { panic!("{error:?}") };
    assert!(what.starts_with("string.rep: result of 1000000000 bytes exceeds the "), "{what}");
    assert!(what.ends_with("bytes left under memory_bytes_max (16777216)"), "{what}");
    assert_eq!(error.kind(), "denied");
    assert_eq!(values(&session, "('ab'):rep(3, '-')"), vec![json!("ab-ab-ab")]);
}

#[test]
fn a_growing_table_stops_at_the_memory_limit() {
    let session = session();
    let error = error(&session, "t = {} for i = 1, 1e9 do t[i] = i end");
    assert_eq!(error, ScriptError::MemoryLimit { memory_bytes_max: 16 * 1024 * 1024 });
    assert_eq!(error.to_string(), "stopped: the session exceeded its memory limit of 16777216 bytes");
}

#[test]
fn a_doubling_string_stops_at_the_memory_limit() {
    let session = session();
    let error = error(&session, r#"local s = "x" while true do s = s .. s end"#);
    assert_eq!(error, ScriptError::MemoryLimit { memory_bytes_max: 16 * 1024 * 1024 });
}

#[test]
fn memory_is_freed_after_the_memory_limit() {
    let session = session();
    let before = session.lua().used_memory();
    assert_eq!(error(&session, "local t = {} for i = 1, 1e9 do t[i] = i end").kind(), "limit");
    assert!(session.lua().used_memory() < before + 1024 * 1024, "{} bytes still used", session.lua().used_memory());
    assert_eq!(values(&session, "local t = {} for i = 1, 1000 do t[i] = i end return #t"), vec![json!(1000)]);
}

// Patterns.

#[test]
fn a_catastrophic_pattern_on_a_long_subject_is_refused() {
    let session = session();
    assert_eq!(
        error(&session, r#"string.rep("a", 2e6):find(".-.-.-.-b")"#),
        ScriptError::Denied {
            what: "string.find: subject of 2000000 bytes exceeds pattern_subject_bytes_max (1048576)".to_string()
        }
    );
}

#[test]
fn every_pattern_function_bounds_its_subject() {
    let session = session();
    for function in ["find", "match", "gmatch", "gsub"] {
        let code = format!("string.{function}(string.rep('a', 1048577), 'a', '')");
        let error = error(&session, &code);
        assert_eq!(
            error,
            ScriptError::Denied {
                what: format!(
                    "string.{function}: subject of 1048577 bytes exceeds pattern_subject_bytes_max (1048576)"
                )
            }
        );
    }
}

#[test]
fn every_pattern_function_bounds_its_pattern() {
    let session = session();
    for function in ["find", "match", "gmatch", "gsub"] {
        let error = error(&session, &format!("('abc'):{function}(('a'):rep(257), '')"));
        assert_eq!(
            error,
            ScriptError::Denied {
                what: format!("string.{function}: pattern of 257 bytes exceeds pattern_bytes_max (256)")
            }
        );
    }
}

#[test]
fn pattern_functions_work_under_their_bounds() {
    let session = session();
    assert_eq!(values(&session, "('key=value'):match('(%w+)=(%w+)')"), vec![json!("key"), json!("value")]);
    assert_eq!(values(&session, "('a b'):gsub(' ', '_')"), vec![json!("a_b"), json!(1)]);
    assert_eq!(values(&session, "('xyz'):find('y')"), vec![json!(2), json!(2)]);
    assert_eq!(
        values(&session, "local n = 0 for w in ('a b c'):gmatch('%a') do n = n + 1 end return n"),
        vec![json!(3)]
    );
}

// Isolation.

#[test]
fn sessions_do_not_share_globals_or_libraries() {
    let first = session();
    let second = session();
    values(&first, "secret = 42 string.upper = function() return 'owned' end print = nil");
    assert_eq!(values(&second, "secret"), vec![json!(null)]);
    assert_eq!(values(&second, "('a'):upper()"), vec![json!("A")]);
    assert_eq!(eval(&second, "print('still here')").map(|output| output.printed), Ok(vec!["still here".to_string()]));
    assert_eq!(values(&first, "secret"), vec![json!(42)]);
}

#[test]
fn a_session_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Session>();
}

// REPL behaviour and output.

#[test]
fn an_expression_returns_its_value() {
    let session = session();
    assert_eq!(values(&session, "1 + 1"), vec![json!(2)]);
    assert_eq!(values(&session, "1, 'two', nil"), vec![json!(1), json!("two"), json!(null)]);
}

#[test]
fn statements_run_and_keep_globals() {
    let session = session();
    assert_eq!(values(&session, "x = 1"), Vec::<serde_json::Value>::new());
    assert_eq!(values(&session, "x"), vec![json!(1)]);
    assert_eq!(values(&session, "local y = x + 1 return y * 10"), vec![json!(20)]);
}

#[test]
fn print_is_captured() {
    let session = session();
    let output = eval(&session, "print('a', 1, nil, true) print() return 'done'").expect("eval");
    assert_eq!(output.printed, vec!["a\t1\tnil\ttrue".to_string(), String::new()]);
    assert_eq!(output.values, vec![json!("done")]);
}

#[test]
fn print_output_is_bounded() {
    let limits = LuaLimits { output_bytes_max: 1000, ..small_limits() };
    let session = Session::new(limits).expect("session");
    let error = error(&session, "while true do pcall(print, ('x'):rep(100)) end");
    assert_eq!(error, ScriptError::Output { output_bytes_max: 1000 });
    assert_eq!(error.kind(), "limit");
    assert_eq!(values(&session, "print('ok') return 1"), vec![json!(1)]);
}

#[test]
fn results_are_bounded() {
    let limits = LuaLimits { output_bytes_max: 1000, ..small_limits() };
    let session = Session::new(limits).expect("session");
    assert_eq!(error(&session, "('x'):rep(2000)"), ScriptError::Output { output_bytes_max: 1000 });
    assert_eq!(
        error(&session, "local t = {} for i = 1, 1000 do t[i] = i end return t"),
        ScriptError::Output { output_bytes_max: 1000 }
    );
}

#[test]
fn an_unfinished_function_is_an_incomplete_syntax_error() {
    let session = session();
    let error = error(&session, "function f()");
    assert!(
        matches!(&error, ScriptError::Syntax { incomplete: true, message } if message.contains("<eof>")),
        "{error:?}"
    );
    assert_eq!(error.kind(), "syntax");
}

#[test]
fn an_unfinished_table_is_an_incomplete_syntax_error() {
    let session = session();
    assert!(matches!(error(&session, "{1, 2,"), ScriptError::Syntax { incomplete: true, .. }));
}

#[test]
fn a_wrong_operator_is_a_complete_syntax_error() {
    let session = session();
    let error = error(&session, "1 +* 2");
    assert!(
        matches!(&error, ScriptError::Syntax { incomplete: false, message } if message.starts_with("console:1:")),
        "{error:?}"
    );
}

#[test]
fn runtime_errors_are_one_line_with_the_location() {
    let session = session();
    assert_eq!(runtime_message(&session, "foo()"), "console:1: attempt to call a nil value (global 'foo')");
    assert_eq!(runtime_message(&session, "\n\nerror('boom')"), "console:3: boom");
    let message = runtime_message(&session, "string.rep({}, 2)");
    assert!(message.starts_with("console:1: bad argument #1"), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn no_input_panics() {
    let session = session();
    let inputs = [
        "",
        " ",
        "\0",
        "return",
        "...",
        "error()",
        "error(nil)",
        "error({})",
        "error(setmetatable({}, {__tostring = error}))",
        "print(setmetatable({}, {__tostring = function() return {} end}))",
        "coroutine.wrap(error)()",
        "string.rep('x', -1)",
        "string.rep('x', 1, ('y'):rep(10))",
        "('x'):rep(math.maxinteger, 'y')",
        "string.find()",
        "string.gsub('a', 'a', function() error('in gsub') end)",
        "goto x",
        "\u{feff}1",
        "]]",
        "setmetatable(_G, {__index = function() while true do end end}) return undefined_name",
    ];
    for input in inputs {
        let _ = eval(&session, input);
        let _ = session.complete(input);
    }
    assert_eq!(values(&session, "1"), vec![json!(1)]);
}

#[test]
fn limits_are_validated() {
    let tiny = LuaLimits { memory_bytes_max: 1000, ..LuaLimits::default() };
    assert_eq!(
        Session::new(tiny).map(|_| ()),
        Err(ScriptError::Denied {
            what: "lua.memory_bytes_max: 1000 is below the minimum of 1048576 bytes".to_string()
        })
    );
    let limits: LuaLimits = toml::from_str("instructions_max = 5").expect("partial [lua] table");
    assert_eq!(limits, LuaLimits { instructions_max: 5, ..LuaLimits::default() });
    assert!(toml::from_str::<LuaLimits>("instruction_max = 5").is_err());
    let defaults = LuaLimits::default();
    assert_eq!(
        (defaults.memory_bytes_max, defaults.instructions_max, defaults.pattern_subject_bytes_max),
        (64 * 1024 * 1024, 200_000_000, 1024 * 1024)
    );
    assert_eq!((defaults.pattern_bytes_max, defaults.output_bytes_max), (256, 4 * 1024 * 1024));
}

// JSON conversion.

#[test]
fn scalars_convert_to_json() {
    let session = session();
    assert_eq!(
        values(&session, "nil, true, 3, 2.5, 'text', 0/0, 1/0, -1/0"),
        vec![json!(null), json!(true), json!(3), json!(2.5), json!("text"), json!("nan"), json!("inf"), json!("-inf")]
    );
}

#[test]
fn sequences_become_arrays_and_other_tables_objects() {
    let session = session();
    assert_eq!(
        values(&session, "{1, 2, {3}}, {a = 1, [2] = 'b', [true] = 0}, {}, {1, nil, 3}, {[1] = 'x', [3] = 'y'}"),
        vec![
            json!([1, 2, [3]]),
            json!({"a": 1, "2": "b", "true": 0}),
            json!({}),
            json!({"1": 1, "3": 3}),
            json!({"1": "x", "3": "y"}),
        ]
    );
}

#[test]
fn functions_and_userdata_become_their_type_name() {
    let session = session();
    assert_eq!(
        values(&session, "print, coroutine.create(print), {f = print}"),
        vec![json!("<function>"), json!("<thread>"), json!({"f": "<function>"})]
    );
}

#[test]
fn cycles_and_deep_nesting_are_marked() {
    let session = session();
    assert_eq!(
        values(&session, "local t = {name = 't'} t.self = t return t"),
        vec![json!({"name": "t", "self": "<cycle>"})]
    );
    let deep = values(&session, "local t = {} local root = t for i = 1, 40 do t.next = {} t = t.next end return root");
    let mut node = &deep[0];
    for _ in 0..32 {
        node = &node["next"];
    }
    assert_eq!(node, &json!("<depth>"));
}

#[test]
fn shared_tables_that_are_not_cycles_convert_twice() {
    let session = session();
    assert_eq!(values(&session, "local s = {1} return {s, s}"), vec![json!([[1], [1]])]);
}

#[test]
fn conversion_does_not_run_metamethods() {
    let session = session();
    let code = "setmetatable({}, {__index = function() while true do end end, __pairs = error, __len = error})";
    assert_eq!(values(&session, code), vec![json!({})]);
}

// Completion.

#[test]
fn completes_globals() {
    let session = session();
    assert_eq!(session.complete("pr"), (0, vec!["print".to_string()]));
    let (start, candidates) = session.complete("x = coll");
    assert_eq!((start, candidates), (4, vec!["collectgarbage".to_string()]));
}

#[test]
fn completes_fields() {
    let session = session();
    assert_eq!(session.complete("string.fo"), (7, vec!["format".to_string()]));
    assert_eq!(session.complete("string.du"), (7, Vec::<String>::new()));
}

#[test]
fn completes_methods_of_string_values_and_tables() {
    let session = session();
    values(&session, "s = 'text' obj = setmetatable({value = 1}, {__index = {get = function() end, size = 3}})");
    assert_eq!(session.complete("s:up"), (2, vec!["upper".to_string()]));
    assert_eq!(session.complete("obj."), (4, vec!["get".to_string(), "size".to_string(), "value".to_string()]));
    assert_eq!(session.complete("obj:"), (4, vec!["get".to_string()]));
}

#[test]
fn completes_registered_return_types_without_calling() {
    let session = session();
    values(&session, "called = false function chain() called = true return {} end");
    session.register_completion_type("chain", &["head", "block", "height"]);
    assert_eq!(session.complete(r#"chain("main"):h"#), (14, vec!["head".to_string(), "height".to_string()]));
    assert_eq!(session.complete(r#"chain("main"):"#).1, vec!["block", "head", "height"]);
    assert_eq!(values(&session, "called"), vec![json!(false)]);
    assert_eq!(session.complete(r#"other("main"):h"#).1, Vec::<String>::new());
}

#[test]
fn completion_calls_no_index_function() {
    let session = session();
    values(&session, "hits = 0 t = setmetatable({}, {__index = function() hits = hits + 1 return {} end})");
    assert_eq!(session.complete("t.x.y").1, Vec::<String>::new());
    assert_eq!(values(&session, "hits"), vec![json!(0)]);
}

#[test]
fn a_protected_metatable_stays_protected() {
    let session = session();
    values(&session, "t = setmetatable({}, {__metatable = 'locked'})");
    assert_eq!(runtime_message(&session, "setmetatable(t, {})"), "console:1: cannot change a protected metatable");
    assert_eq!(values(&session, "getmetatable(t)"), vec![json!("locked")]);
}

#[test]
fn recursion_through_library_wrappers_ends_with_an_error() {
    let session = session();
    let through_print = "local t = setmetatable({}, {__tostring = function(t) print(t) return 'x' end}) print(t)";
    let message = runtime_message(&session, through_print);
    assert!(message.contains("stack overflow"), "{message}");
    let through_gsub = "local function f(s) return (s:gsub('.', f)) end return f('ab')";
    let message = runtime_message(&session, through_gsub);
    assert!(message.contains("stack overflow"), "{message}");
    let through_pcall = "local function f() return pcall(f) end return f()";
    assert!(eval(&session, through_pcall).is_ok());
}
