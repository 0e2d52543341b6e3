//! The `nest` console against a real node: in a pseudo-terminal (evaluation, multi-line
//! input, completion, Ctrl-C, history), without a terminal (`-e`, a file, piped stdin,
//! exit codes), files named in the console read where the console runs, and a plugin
//! upgraded from the console keeping its state.

use nest_tests::node::{ConsoleNode, nest_binary, wait_until};
use rexpect::session::{PtySession, spawn_command};
use std::{process::Command, time::Duration};

fn console(node: &ConsoleNode, history: &std::path::Path) -> PtySession {
    let mut command = Command::new(nest_binary());
    command.arg("--data-dir").arg(&node.data_dir).env("NEST_HISTORY", history).env("TERM", "xterm");
    let mut session = spawn_command(command, Some(15_000)).expect("spawn nest in a pty");
    session.exp_string("nest> ").expect("prompt");
    session
}

#[test]
fn console_in_a_terminal_evaluates_completes_cancels_and_keeps_history() {
    let node = ConsoleNode::start();
    let history = node.dir.path().join("history");
    let mut nest = console(&node, &history);

    nest.send_line("node.status().name").unwrap();
    nest.exp_string("node-1").unwrap();
    nest.exp_string("nest> ").unwrap();

    nest.send_line("function add(a, b)").unwrap();
    nest.exp_string("...").unwrap();
    nest.send_line("  return a + b").unwrap();
    nest.exp_string("...").unwrap();
    nest.send_line("end").unwrap();
    nest.exp_string("nest> ").unwrap();
    nest.send_line("add(20, 22)").unwrap();
    nest.exp_string("\r\n42\r\n").unwrap();
    nest.exp_string("nest> ").unwrap();

    nest.send("chain(\"main\"):hea").unwrap();
    nest.send("\t").unwrap();
    nest.flush().unwrap();
    nest.exp_string("head").unwrap();
    nest.send_line("().height >= 0").unwrap();
    nest.exp_string("\r\ntrue\r\n").unwrap();
    nest.exp_string("nest> ").unwrap();

    nest.send_line("while true do end").unwrap();
    std::thread::sleep(Duration::from_millis(700));
    nest.send_control('c').unwrap();
    nest.exp_string("cancelled").unwrap();
    nest.exp_string("nest> ").unwrap();
    // Ctrl-C stops `watch`; what it would have returned (a count) is not shown.
    nest.send_line("watch('blocks')").unwrap();
    nest.exp_string("block_committed").unwrap();
    nest.send_control('c').unwrap();
    let text = nest.exp_string("nest> ").unwrap();
    // The last line printed, leaving out the terminal's own control sequences.
    let mut printed = text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('\u{1b}'));
    assert_eq!(printed.next_back(), Some("cancelled"), "{text:?}");
    // The last line in the history is what the next console recalls.
    nest.send_line("1 + 1").unwrap();
    nest.exp_string("\r\n2\r\n").unwrap();
    nest.exp_string("nest> ").unwrap();
    node.assert_still_producing(3);

    nest.send_control('d').unwrap();
    nest.exp_eof().unwrap();
    let saved = std::fs::read_to_string(&history).expect("history file");
    assert!(saved.contains("add(20, 22)"), "{saved}");

    let mut again = console(&node, &history);
    again.send("\x1b[A").unwrap();
    again.flush().unwrap();
    again.send_line("").unwrap();
    again.exp_string("\r\n2\r\n").unwrap();
    again.exp_string("nest> ").unwrap();
    again.send_control('d').unwrap();
    again.exp_eof().unwrap();
}

#[test]
fn console_without_a_terminal_reports_success_and_failure_by_exit_code() {
    let node = ConsoleNode::start();
    let (status, stdout, _) = node.nest(&["-e", "1 + 41"], None);
    assert_eq!((status, stdout.trim()), (0, "42"));

    let (status, _, stderr) = node.nest(&["-e", "error('boom')"], None);
    assert_eq!(status, 1);
    assert!(stderr.contains("boom"), "{stderr}");

    let (status, _, stderr) = node.nest(&["-e", "1 +* 2"], None);
    assert_eq!(status, 1);
    assert!(stderr.starts_with("error:"), "{stderr}");

    let script = node.dir.path().join("script.lua");
    std::fs::write(&script, "local s = 0\nfor i = 1, 10 do s = s + i end\nreturn s\n").unwrap();
    let (status, stdout, _) = node.nest(&[script.to_str().unwrap()], None);
    assert_eq!((status, stdout.trim()), (0, "55"));

    let (status, stdout, _) = node.nest(&[], Some("return chain('main'):head().height >= 0\n"));
    assert_eq!((status, stdout.trim()), (0, "true"));

    let (status, _, stderr) = Command::new(nest_binary())
        .args(["--url", "http://127.0.0.1:1", "--token-file"])
        .arg(node.data_dir.join("api.token"))
        .args(["-e", "1"])
        .output()
        .map(|o| (o.status.code().unwrap_or(-1), String::new(), String::from_utf8_lossy(&o.stderr).to_string()))
        .unwrap();
    assert_eq!(status, 2, "unreachable node: {stderr}");
}

#[test]
fn consensus_plugin_upgraded_from_the_console_keeps_its_state() {
    let node = ConsoleNode::start();
    let vendor = nest_host::crypto::SecretKey::read(&node.devnet.vendor_key).unwrap();
    let next =
        nest_tests::PluginCrate { dir: "tests/fixtures/consensus-poa-next", lib_name: "fixture_consensus_poa_next" };
    let package = node.dir.path().join("consensus-poa-0.2.0");
    nest_tests::pack_crate(next, &package, &vendor);
    wait_until(Duration::from_secs(10), "a few blocks", || node.node.main_chain().height >= 5);
    let before = node.node.main_chain().height;

    let code = format!("plugins.upgrade('poa', '{}')", package.display());
    let (status, stdout, stderr) = node.nest(&["-e", &code], None);
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert!(stdout.contains("0.2.0"), "{stdout}");

    let status = node.node.status();
    let versions: Vec<(String, String)> = status
        .plugins
        .iter()
        .filter(|p| p.name == "consensus-poa")
        .map(|p| (p.version.clone(), p.state.clone()))
        .collect();
    assert_eq!(versions, vec![("0.1.0".into(), "replaced".into()), ("0.2.0".into(), "active".into())]);
    let chain = node.node.main_chain();
    assert_eq!(
        (chain.plugins.consensus.version.as_str(), chain.plugins.consensus.state.as_str()),
        ("0.2.0", "running")
    );
    assert!(chain.height >= before, "the chain did not go back");
    node.assert_still_producing(5);

    let (status, _, stderr) = node.nest(&["-e", &code], None);
    assert_eq!(status, 1, "upgrading to the running version is refused");
    assert!(stderr.contains("already running"), "{stderr}");
}

#[test]
fn console_bindings_watch_events_transfer_and_read_the_node() {
    let node = ConsoleNode::start();
    let (status, stdout, stderr) = node.nest(&["-e", "watch{type = 'block_committed', count = 2}"], None);
    assert_eq!(status, 0, "{stderr}");
    let events: Vec<&str> = stdout.lines().filter(|l| l.contains("\"block_committed\"")).collect();
    assert_eq!(events.len(), 2, "two streamed events:\n{stdout}");
    assert_eq!(stdout.lines().last(), Some("2"), "watch returns how many it streamed:\n{stdout}");

    let bob = "ab".repeat(32);
    let faucet = node.devnet.faucet_key.display().to_string();
    let code = format!("return tx.transfer{{from_key_file = '{faucet}', to = '{bob}', amount = 7}}.status");
    let (status, stdout, stderr) = node.nest(&["-e", &code], None);
    assert_eq!((status, stdout.trim()), (0, "accepted"), "{stderr}");
    wait_until(Duration::from_secs(10), "the transfer to commit", || {
        node.nest(&["-e", &format!("return chain('main'):account('{bob}').balance")], None).1.trim() == "7"
    });

    let (status, stdout, _) = node.nest(
        &["-e", "return #log.tail(5) > 0 and keys.node() == node.status().public_key and peers.count() == 0"],
        None,
    );
    assert_eq!((status, stdout.trim()), (0, "true"));
    let (status, _, stderr) = node.nest(&["-e", "tx.transfer{to = 'zz', amount = 1, from = 'node'}"], None);
    assert_eq!(status, 1);
    assert_eq!(stderr.trim(), "error: console:1: tx.transfer: to must be 64 hex characters, got 2");
}

#[test]
fn files_a_console_function_names_are_read_where_the_console_runs() {
    let node = ConsoleNode::start();
    // The console's working directory: the node (whose working directory is this test's)
    // has no such relative paths.
    let here = tempfile::tempdir().unwrap();
    std::fs::copy(&node.devnet.faucet_key, here.path().join("payer.key")).unwrap();
    std::fs::write(here.path().join("flat.lua"), "return function(ctx) return 42 end").unwrap();
    let nest = |code: &str| node.nest_in(Some(here.path()), &["-e", code], None);

    let account = "ab".repeat(32);
    let transfer = format!(r#"return tx.transfer{{from_key_file = "payer.key", to = "{account}", amount = 5000}}"#);
    let (code, out, err) = nest(&transfer);
    assert_eq!(code, 0, "{out}{err}");
    let installed = nest(r#"return market("wifi"):strategy("flat.lua")"#);
    assert_eq!(installed.0, 0, "{installed:?}");
    let (code, out, err) = nest(r#"return market("wifi"):source(1)"#);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("return 42"), "{out}");

    let (code, _, err) = nest(r#"return market("wifi"):strategy("absent.lua")"#);
    assert_eq!(code, 1);
    assert!(err.contains("strategy file absent.lua (read where the console runs): No such file"), "{err}");
    wait_until(Duration::from_secs(15), "the transfer from the console's key file", || {
        let balance: serde_json::Value =
            node.node.client().get(&format!("/v1/chains/main/accounts/{account}")).unwrap_or_default();
        balance["balance"] == serde_json::json!(5000)
    });
}

#[test]
fn the_console_registers_a_delegate_stakes_and_votes_and_the_api_ranks_it() {
    let node = ConsoleNode::start();
    let faucet = node.devnet.faucet_key.display().to_string();
    let register = format!(
        "local f = '{faucet}'\n\
         assert(dpos.register{{from_key_file = f, node_key = keys.node(), name = 'gateway-1'}}.status == 'accepted')\n\
         return dpos.stake{{from_key_file = f, amount = 5000}}.status"
    );
    let (status, stdout, stderr) = node.nest(&["-e", &register], None);
    assert_eq!((status, stdout.trim()), (0, "accepted"), "{stderr}");
    let delegates = || node.node.client().get::<serde_json::Value>("/v1/chains/main/dpos/delegates").unwrap();
    wait_until(Duration::from_secs(10), "the delegate to be registered", || {
        delegates()["delegates"].as_array().is_some_and(|list| !list.is_empty())
    });
    let delegate = delegates()["delegates"][0].clone();
    assert_eq!(delegate["name"], "gateway-1");
    assert_eq!(delegate["node_key"], node.node.status().public_key.to_string());

    let account = delegate["account"].as_str().unwrap().to_string();
    let vote = format!("return dpos.vote{{from_key_file = '{faucet}', delegates = {{'{account}'}}}}.status");
    let (status, stdout, stderr) = node.nest(&["-e", &vote], None);
    assert_eq!((status, stdout.trim()), (0, "accepted"), "{stderr}");
    wait_until(Duration::from_secs(10), "the vote to count the stake", || delegates()["delegates"][0]["votes"] == 5000);
    let staker: serde_json::Value =
        node.node.client().get(&format!("/v1/chains/main/dpos/accounts/{account}")).unwrap();
    assert_eq!((staker["bonded"].as_u64(), staker["votes"][0].as_str()), (Some(5000), Some(account.as_str())));
    let (status, stdout, _) = node.nest(&["-e", &format!("return dpos.account('{account}').bonded")], None);
    assert_eq!((status, stdout.trim()), (0, "5000"));

    let (status, _, stderr) = node.nest(&["-e", "dpos.vote{from = 'node', delegates = {'zz'}}"], None);
    assert_eq!(status, 1);
    assert_eq!(stderr.trim(), "error: console:1: dpos.vote: delegates entry 1: must be 64 hex characters, got 2");
}
