//! Operator Lua cannot escape its sandbox: each attempt, run with `nest -e` against a
//! real node, is denied or stopped within its limits with a clear message, and the
//! node keeps producing blocks.

use nest_tests::node::ConsoleNode;

/// Runs `code`; expects failure whose stderr contains every one of `needles`.
fn refused(code: &str, needles: &[&str]) {
    let node = ConsoleNode::start();
    let (status, stdout, stderr) = node.nest(&["-e", code], None);
    assert_eq!(status, 1, "`{code}` must fail\nstdout: {stdout}\nstderr: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "`{code}`: stderr lacks {needle:?}\n{stderr}");
    }
    node.assert_still_producing(3);
}

#[test]
fn os_execute_is_absent() {
    refused("os.execute('touch /tmp/nest-escaped')", &["error:", "os"]);
    assert!(!std::path::Path::new("/tmp/nest-escaped").exists());
}

#[test]
fn io_open_is_absent() {
    refused("io.open('/etc/passwd')", &["error:", "io"]);
}

#[test]
fn require_is_absent() {
    refused("require('os')", &["error:", "require"]);
}

#[test]
fn package_loadlib_is_absent() {
    refused("package.loadlib('libc.so.6', 'system')", &["error:", "package"]);
}

#[test]
fn debug_getregistry_is_absent() {
    refused("debug.getregistry()", &["error:", "debug"]);
}

#[test]
fn load_of_bytecode_is_refused() {
    refused("return load('\\27Lua\\84\\0\\25\\147\\13\\10\\26\\10')", &["error:"]);
}

#[test]
fn string_dump_is_absent() {
    refused("string.dump(function() end)", &["error:", "dump"]);
}

#[test]
fn string_metatable_cannot_be_changed() {
    refused("getmetatable('').__index = { evil = function() return 1 end }; return ('x'):evil()", &["error:"]);
}

#[test]
fn busy_loop_is_stopped_by_the_instruction_budget() {
    refused("while true do end", &["error:", "instructions"]);
}

#[test]
fn pcall_cannot_swallow_the_budget() {
    refused("while true do pcall(function() while true do end end) end", &["error:", "instructions"]);
}

#[test]
fn coroutine_loop_is_stopped_by_the_budget() {
    refused(
        "local co = coroutine.create(function() while true do end end) coroutine.resume(co) return 'escaped'",
        &["error:", "instructions"],
    );
}

#[test]
fn huge_string_is_refused() {
    refused("x = ('x'):rep(1e9)", &["error:"]);
}

#[test]
fn doubling_table_hits_the_memory_limit() {
    refused("local t = {} local i = 1 while true do t[i] = ('x'):rep(1024) .. i i = i + 1 end", &["error:", "memory"]);
}

#[test]
fn catastrophic_pattern_is_stopped() {
    refused("return string.rep('a', 1000000):find('.-.-.-.-b')", &["error:", "stopped"]);
}
