//! The metered pattern functions give what Lua 5.4's C functions give, and stop when they should.

use super::super::{EvalOutput, LuaLimits, ScriptError, Session};
use super::PATTERN_STEPS_MAX;
use super::pattern::{self, Found, Meter, PatternError};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

static NOT_CANCELLED: AtomicBool = AtomicBool::new(false);

/// Prints every value with its type, so `1` and `"1"` and `1.0` differ.
const SHOW_SOURCE: &str = r#"
local function show(...)
    local parts = {}
    for i = 1, select('#', ...) do
        local value = select(i, ...)
        if type(value) == 'string' then
            parts[i] = string.format('%q', value)
        elseif type(value) == 'number' then
            parts[i] = math.type(value) .. ':' .. tostring(value)
        else
            parts[i] = tostring(value)
        end
    end
    return '(' .. table.concat(parts, ', ') .. ')'
end
local function all(iterator)
    local out = {}
    for _ = 1, 64 do
        local values = table.pack(iterator())
        if values[1] == nil then break end
        out[#out + 1] = show(table.unpack(values, 1, values.n))
    end
    return table.concat(out)
end
"#;

/// Expressions whose values (or error) must be the same with the C and the Rust matcher.
const CASES: &[&str] = &[
    // find: plain, init, specials.
    r#"("hello world"):find("o w")"#,
    r#"("hello world"):find("o", 5)"#,
    r#"("hello world"):find("o", 6)"#,
    r#"("hello"):find("l", -2)"#,
    r#"("hello"):find("l", -10)"#,
    r#"("hello"):find("", 10)"#,
    r#"("hello"):find("", 6)"#,
    r#"("hello"):find("", 0)"#,
    r#"("hello"):find("xyz")"#,
    r#"("a.b"):find(".", 1, true)"#,
    r#"("a+b"):find("+", 1, true)"#,
    r#"("a+b"):find("a+", 1, true)"#,
    r#"("a+b"):find("a+", 1, false)"#,
    r#"("a+b"):find("a+", 1, nil)"#,
    r#"("a\0b"):find("\0", 1, true)"#,
    r#"("a\0b"):find("%z")"#,
    r#"("abc"):find("b", "2")"#,
    r#"string.find(12345, 34)"#,
    r#"string.match(1.5, "%.")"#,
    // Classes and their complements.
    r#"("hello world"):match("%a+")"#,
    r#"("  x1 "):match("%s*(%w+)%s*")"#,
    r#"("abc123def"):match("%d+")"#,
    r#"("abc123"):match("%D+")"#,
    r#"("A1b2C"):gsub("%u", "_")"#,
    r#"("A1b2C"):gsub("%l", "_")"#,
    r#"("a,b;c!d"):gsub("%p", "")"#,
    r#"("\0\1a\127b"):gsub("%c", "x")"#,
    r#"("deadBEEFz"):match("%x+")"#,
    r#"("a b\tc\n\vd\fe\rf"):gsub("%s", "")"#,
    r##"("x y\1"):gsub("%g", "#")"##,
    r#"("abc1"):find("%A")"#,
    r#"("ab12 "):match("%W")"#,
    r#"("ab12"):match("%S+%X")"#,
    r#"("a\0b"):match("a%zb")"#,
    r#"("a.b"):match("%.(.)")"#,
    // Sets.
    r#"("hello"):match("[aeiou]+")"#,
    r#"("hello"):match("[^aeiou]+")"#,
    r#"("x-y"):match("[a-z]-")"#,
    r#"("a]b"):match("[]]")"#,
    r#"("a]b"):match("[^]]+")"#,
    r#"("a-b"):match("[a%-]+")"#,
    r#"("f9"):match("[%d]")"#,
    r#"("^x^"):match("[%^x]+")"#,
    r#"("-"):match("[-]")"#,
    r#"("a-z"):match("[z-a]")"#,
    r#"("-a"):match("[a-]+")"#,
    r#"("Az09_"):match("[%w_]+")"#,
    r#"("x]"):match("[%]]")"#,
    // Anchors.
    r#"("hello"):find("^h")"#,
    r#"("hello"):find("^e")"#,
    r#"("hello"):find("^e", 2)"#,
    r#"("hello"):find("o$")"#,
    r#"("hello$"):find("o$")"#,
    r#"("a$b"):find("$b")"#,
    r#"("hello"):match("^(h)(e)")"#,
    r#"("hello"):gsub("^h", "H")"#,
    r#"("hhh"):gsub("^h", "")"#,
    r#"("x^y"):match("x^y")"#,
    r#"(""):find("^$")"#,
    r#"(""):match(".*")"#,
    // Quantifiers.
    r#"("aaa"):match("a-")"#,
    r#"("aaab"):match("a-b")"#,
    r#"("aaa"):match("a*")"#,
    r#"("baaa"):match("a+")"#,
    r#"("ab"):match("ab?c?")"#,
    r#"("color colour"):gsub("colou?r", "C")"#,
    r#"("<a><b>"):match("<(.-)>")"#,
    r#"("<a><b>"):match("<(.*)>")"#,
    r#"("aaab"):find(".-.-.-.-b")"#,
    // Captures and positions.
    r#"("key = value"):match("(%w+)%s*=%s*(%w+)")"#,
    r#"("hello"):find("(l)(l)")"#,
    r#"("hello"):match("()ll()")"#,
    r#"("hello"):find("()")"#,
    r#"("abc"):match("((a)(b))")"#,
    r#"("hello"):match("(h)(e)(l)(l)(o)")"#,
    r#"("hello"):match("(h)(x?)")"#,
    // Back-references.
    r#"([[say "hi" ok]]):match("([\"'])(.-)%1")"#,
    r#"("abcabc"):match("(abc)%1")"#,
    r#"("aa"):find("(a)%1")"#,
    r#"("xx"):match("()%1")"#,
    r#"("ab"):match("%1")"#,
    r#"("ab"):match("(a%1)")"#,
    r#"("a"):match("%0")"#,
    // Balance and frontier.
    r#"("f(a(b)c) d"):match("%b()")"#,
    r#"("[[x]]"):find("%b[]")"#,
    r#"("(("):match("%b()")"#,
    r#"("x"):match("%b")"#,
    r#"("x"):match("%bx")"#,
    r#"("THE (quick) fox"):gsub("%f[%a]%a+", "W")"#,
    r#"("hello world"):find("%f[%w]%w+", 2)"#,
    r#"("abc"):find("%f[%z]")"#,
    r#"("abc"):match("%f[a-z].")"#,
    r#"("x"):find("%fa")"#,
    r#"("x"):find("%f")"#,
    // gsub: string, table and function replacements, the count.
    r#"("hello world"):gsub("o", "0")"#,
    r#"("hello world"):gsub("o", "0", 1)"#,
    r#"("hello"):gsub("", "-")"#,
    r#"("abc"):gsub("%w", "%0%0")"#,
    r#"("abc"):gsub("(%w)", "%1-")"#,
    r#"("abc"):gsub("%w", "%%")"#,
    r#"("abc"):gsub("%w", "%2")"#,
    r#"("abc"):gsub("%w", "%x")"#,
    r#"("abc"):gsub("%w", "%")"#,
    r#"("hello world"):gsub("(%w+)", {hello = "HI"})"#,
    r#"("a b"):gsub("%w", {a = 1, b = true})"#,
    r#"("a b"):gsub("%w", {a = false})"#,
    r#"("a b"):gsub("%w", {a = {}})"#,
    r#"("hello world"):gsub("%w+", function(w) return w:upper() end)"#,
    r#"("abc"):gsub("%w", function() end)"#,
    r#"("abc"):gsub("()", function(p) return p end)"#,
    r#"("abc"):gsub("(b)()", function(...) return select('#', ...) end)"#,
    r#"("abc"):gsub(".", {a = 2.5})"#,
    r#"("abc"):gsub("b", 7)"#,
    r#"("abc"):gsub("b", "x", 0)"#,
    r#"("abc"):gsub("b", "x", -1)"#,
    r#"("abc"):gsub("b", "x", 2.0)"#,
    r#"("abc"):gsub("b", "x", 1.5)"#,
    r#"("abc"):gsub("b", "x", "1")"#,
    r#"("abc"):gsub("b")"#,
    r#"("abc"):gsub("b", true)"#,
    r#"("abc"):gsub("x*", "-")"#,
    r#"("abc"):gsub("b*", "-")"#,
    r#"("a.b"):gsub("%.", "%%")"#,
    r#"("abc"):gsub(".", {}, 2)"#,
    r#"("a1b2"):gsub("(%a)(%d)", "%2%1")"#,
    r#"("x"):gsub("()", "%1")"#,
    r#"("abc"):gsub("b", "%1")"#,
    r#"("abc"):gsub("", "")"#,
    // gmatch: captures, empty matches, init.
    r#"all(("one two  three"):gmatch("%a+"))"#,
    r#"all(("k=v, a=b"):gmatch("(%w+)=(%w+)"))"#,
    r#"all(("abc"):gmatch(""))"#,
    r#"all(("abc"):gmatch("x*"))"#,
    r#"all(("abc"):gmatch("b*"))"#,
    r#"all(("hello"):gmatch("()l"))"#,
    r#"all(("abc"):gmatch(".", 2))"#,
    r#"all(("abc"):gmatch(".", -1))"#,
    r#"all(("abc"):gmatch(".", 10))"#,
    r#"all(("^a^a"):gmatch("^a"))"#,
    r#"all(("abc"):gmatch("%"))"#,
    // Malformed patterns and bad arguments.
    r#"("a"):find("%")"#,
    r#"("a"):find("[a")"#,
    r#"("a"):find("[")"#,
    r#"("a"):find("[^")"#,
    r#"("a"):find("[%")"#,
    r#"("a"):find("(")"#,
    r#"("a"):find(")")"#,
    r#"("a"):match(string.rep("(", 33) .. "a" .. string.rep(")", 33))"#,
    r#"("a"):match(string.rep("(", 32) .. "a" .. string.rep(")", 32))"#,
    r#"select(2, pcall(string.find, "a", "%"))"#,
    r#"string.find(nil, "x")"#,
    r#"string.find("x")"#,
    r#"string.find("x", "x", "a")"#,
    r#"string.find("x", "x", 1.5)"#,
    r#"string.match("x", {})"#,
    r#"string.gmatch("x")"#,
    r#"string.gsub("x", "x", "y", {})"#,
];

fn session(limits: LuaLimits) -> Session {
    Session::new(limits).expect("a session with valid limits")
}

fn case_source(expression: &str) -> String {
    format!("{SHOW_SOURCE}\nreturn show(pcall(function() return {expression} end))")
}

/// What the stock Lua state (C `string` library) prints for `expression`.
fn with_c_matcher(lua: &mlua::Lua, expression: &str) -> String {
    let source = case_source(expression);
    match lua.load(source).set_name("=console").eval::<String>() {
        Ok(shown) => shown,
        Err(error) => panic!("{expression}: {error}"),
    }
}

/// What the sandbox (Rust matcher) prints for `expression`.
fn with_rust_matcher(session: &Session, expression: &str) -> String {
    match session.eval("console", &case_source(expression), &NOT_CANCELLED) {
        Ok(EvalOutput { values, .. }) => match values.as_slice() {
            [serde_json::Value::String(shown)] => shown.clone(),
            other => panic!("{expression}: {other:?}"),
        },
        Err(error) => panic!("{expression}: {error}"),
    }
}

#[test]
fn every_case_matches_lua() {
    let lua = mlua::Lua::new();
    let session = session(LuaLimits::default());
    let mut differences = Vec::new();
    for expression in CASES {
        let expected = with_c_matcher(&lua, expression);
        let actual = with_rust_matcher(&session, expression);
        if expected != actual {
            differences.push(format!("{expression}\n  lua:  {expected}\n  nest: {actual}"));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} cases differ:\n{}",
        differences.len(),
        CASES.len(),
        differences.join("\n")
    );
}

#[test]
fn some_cases_give_the_values_the_manual_documents() {
    let session = session(LuaLimits::default());
    let cases = [
        (r#"("hello world"):find("o", -5)"#, r#"(true, integer:8, integer:8)"#),
        (r#"("THE (quick) fox"):find("%f[%a]%a+%f[%A]", 5)"#, r#"(true, integer:6, integer:10)"#),
        (r#"("hello"):gsub("", "-")"#, r#"(true, "-h-e-l-l-o-", integer:6)"#),
        (r#"all(("abc"):gmatch("x*"))"#, r#"(true, "(\"\")(\"\")(\"\")(\"\")")"#),
        (r#"("a"):find("%")"#, r#"(false, "console:26: malformed pattern (ends with '%')")"#),
    ];
    for (expression, expected) in cases {
        assert_eq!(with_rust_matcher(&session, expression), expected, "{expression}");
    }
}

/// A deterministic xorshift generator; a failing fuzz test prints its seed.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn text(&mut self, alphabet: &[&str], length_max: u64) -> String {
        let length = self.next() % (length_max + 1);
        (0..length).map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize]).collect()
    }
}

const PATTERN_PIECES: &[&str] = &[
    "a", "b", "(", ")", ".", "%", "%a", "%d", "%s", "%1", "%2", "%b()", "%f[a]", "%f[%W]", "[ab]", "[^a]", "[a-c]",
    "]", "[", "^", "$", "*", "+", "-", "?", "()", "x", " ",
];
const SUBJECT_PIECES: &[&str] = &["a", "b", "c", "(", ")", " ", "x", "1", "]", "%"];

/// Escapes `text` as a Lua long-bracket-free string literal.
fn literal(text: &str) -> String {
    format!("{text:?}")
}

#[test]
fn random_patterns_match_lua() {
    let seed = 0x5eed_0003_u64;
    let mut random = Xorshift(seed);
    let lua = mlua::Lua::new();
    let session = session(LuaLimits::default());
    for round in 0..400 {
        let pattern = literal(&random.text(PATTERN_PIECES, 6));
        let subject = literal(&random.text(SUBJECT_PIECES, 10));
        let init = (random.next() % 9) as i64 - 4;
        let expressions = [
            format!("string.find({subject}, {pattern}, {init})"),
            format!("string.match({subject}, {pattern})"),
            format!("all(string.gmatch({subject}, {pattern}))"),
            format!("string.gsub({subject}, {pattern}, '<%0>')"),
        ];
        for expression in &expressions {
            let expected = with_c_matcher(&lua, expression);
            let actual = with_rust_matcher(&session, expression);
            assert_eq!(actual, expected, "seed {seed:#x}, round {round}: {expression}");
        }
    }
}

/// Never stops a match.
struct Unmetered;

impl Meter for Unmetered {
    fn charge(&mut self, _steps: u64) -> Result<(), PatternError> {
        Ok(())
    }
}

fn raise_message(result: Result<Option<Found>, PatternError>) -> String {
    match result {
        Err(PatternError::Raise(message)) => message,
        other => panic!("expected a Lua error, got {other:?}"),
    }
}

#[test]
fn deep_patterns_are_too_complex_as_in_lua() {
    let lua = mlua::Lua::new();
    let pattern = "a?".repeat(250);
    let subject = "a".repeat(250);
    let c_error = lua.load(format!("return select(2, pcall(string.find, '{subject}', '{pattern}'))")).eval::<String>();
    assert_eq!(c_error.expect("the C matcher's error"), "pattern too complex");
    let result = pattern::find(subject.as_bytes(), pattern.as_bytes(), 1, false, true, &mut Unmetered);
    assert_eq!(raise_message(result), "pattern too complex");
    let shallow = "a?".repeat(150);
    let result = pattern::find(subject.as_bytes(), shallow.as_bytes(), 1, false, true, &mut Unmetered);
    assert!(matches!(result, Ok(Some(Found::Range { start: 1, end: 150, .. }))), "{result:?}");
}

#[test]
fn random_bytes_never_panic() {
    let seed = 0xdead_beef_u64;
    let mut random = Xorshift(seed);
    for _ in 0..20_000 {
        let pattern: Vec<u8> =
            (0..random.next() % 12).map(|_| b"%[]^$()*+-?.ab\0fz1"[(random.next() % 18) as usize]).collect();
        let subject: Vec<u8> = (0..random.next() % 16).map(|_| (random.next() % 256) as u8).collect();
        let init = (random.next() % 41) as i64 - 20;
        for find in [true, false] {
            let _ = pattern::find(&subject, &pattern, init, random.next().is_multiple_of(2), find, &mut Unmetered);
        }
        let mut gmatch = pattern::Gmatch::new(subject.len(), init);
        for _ in 0..20 {
            if !matches!(gmatch.next(&subject, &pattern, &mut Unmetered), Ok(Some(_))) {
                break;
            }
        }
        let mut replace = |matcher: &pattern::Matcher<'_, Unmetered>, matched, result: &mut Vec<u8>| {
            pattern::add_replacement_string(matcher, b"%0%1%%", matched, result).map(|()| true)
        };
        let _ = pattern::gsub(&subject, &pattern, init, usize::MAX, &mut replace, &mut Unmetered);
    }
}

// Limits.

fn eval_error(session: &Session, code: &str) -> ScriptError {
    match session.eval("console", code, &NOT_CANCELLED) {
        Ok(output) => panic!("{code}: expected an error, got {output:?}"),
        Err(error) => error,
    }
}

const CATASTROPHIC: &str = r#"string.rep("a", 1000000):find(".-.-.-.-b")"#;

#[test]
fn a_catastrophic_pattern_stops_at_the_step_limit() {
    let session = session(LuaLimits::default());
    let started = Instant::now();
    let error = eval_error(&session, CATASTROPHIC);
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_eq!(
        error,
        ScriptError::PatternSteps {
            message: format!("console:1: stopped: string.find ran more than {PATTERN_STEPS_MAX} matching steps")
        }
    );
}

#[test]
fn matching_steps_are_charged_to_the_instruction_budget() {
    let limits = LuaLimits { instructions_max: 1_000_000, ..LuaLimits::default() };
    let session = session(limits);
    let started = Instant::now();
    assert_eq!(eval_error(&session, CATASTROPHIC), ScriptError::InstructionLimit { instructions_max: 1_000_000 });
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
}

#[test]
fn pcall_cannot_repeat_a_catastrophic_match_past_the_budget() {
    let limits = LuaLimits { instructions_max: 25_000_000, ..LuaLimits::default() };
    let session = session(limits);
    let code = r#"local s = string.rep("a", 1000000)
        for _ = 1, 1000 do pcall(string.find, s, ".-.-.-.-b") end"#;
    assert_eq!(eval_error(&session, code), ScriptError::InstructionLimit { instructions_max: 25_000_000 });
}

#[test]
fn the_same_pattern_on_a_short_subject_works() {
    let session = session(LuaLimits::default());
    let output = session.eval("console", r#"(string.rep("a", 20) .. "b"):find(".-.-.-.-b")"#, &NOT_CANCELLED);
    assert_eq!(output.expect("a match").values, vec![serde_json::json!(1), serde_json::json!(21)]);
}

const MANY_MATCHES: &str = r#"local s = string.rep(string.rep("a", 999) .. "b", 1000)
    local count = 0
    for _ in s:gmatch("a-b") do count = count + 1 end
    return count"#;

#[test]
fn gmatch_over_a_long_subject_is_bounded_by_the_budget() {
    let session = session(LuaLimits::default());
    let output = session.eval("console", MANY_MATCHES, &NOT_CANCELLED).expect("within the default budget");
    assert_eq!(output.values, vec![serde_json::json!(1000)]);
    let limits = LuaLimits { instructions_max: 500_000, ..LuaLimits::default() };
    let session = self::session(limits);
    assert_eq!(eval_error(&session, MANY_MATCHES), ScriptError::InstructionLimit { instructions_max: 500_000 });
}

#[test]
fn the_cancel_flag_stops_a_long_match() {
    let session = session(LuaLimits { instructions_max: u64::MAX, ..LuaLimits::default() });
    let cancel = Arc::new(AtomicBool::new(false));
    let setter = Arc::clone(&cancel);
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        setter.store(true, Ordering::Relaxed);
    });
    let started = Instant::now();
    let result = session.eval("console", CATASTROPHIC, &cancel);
    canceller.join().expect("the cancelling thread");
    assert_eq!(result, Err(ScriptError::Cancelled));
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
}

#[test]
fn gsub_refuses_a_result_over_the_memory_limit() {
    let limits = LuaLimits { memory_bytes_max: 16 * 1024 * 1024, ..LuaLimits::default() };
    let session = session(limits);
    let code = r#"string.rep("a", 1000000):gsub("", string.rep("x", 100))"#;
    assert_eq!(eval_error(&session, code), ScriptError::MemoryLimit { memory_bytes_max: 16 * 1024 * 1024 });
}

#[test]
fn gsub_nested_through_replacement_functions_ends_with_an_error() {
    let session = session(LuaLimits::default());
    let code = "local function f(s) return (s:gsub('.', f)) end return select(2, pcall(f, 'ab'))";
    let output = session.eval("console", code, &NOT_CANCELLED).expect("pcall catches the error");
    assert_eq!(
        output.values,
        vec![serde_json::json!("console:1: stack overflow (string.gsub nested more than 32 deep)")]
    );
}

#[test]
fn errors_of_replacement_functions_pass_through_gsub_unchanged() {
    let session = session(LuaLimits::default());
    let code = "local ok, e = pcall(string.gsub, 'a', 'a', function() error({code = 7}) end) return e.code";
    let output = session.eval("console", code, &NOT_CANCELLED).expect("the error table");
    assert_eq!(output.values, vec![serde_json::json!(7)]);
    let code = "return ('a'):gsub('a', function() return string.rep('x', 1 << 40) end)";
    assert!(matches!(eval_error(&session, code), ScriptError::Denied { .. }));
}
