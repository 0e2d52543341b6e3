//! Console bindings refuse wrong arguments with messages that name the function, the
//! argument and what it must be.

use super::*;
use crate::node::status::NodeStatus;
use std::sync::RwLock;

/// A node with one chain, `main`, whose loop never answers (no test here reaches it).
fn handles() -> NodeHandles {
    let chain = json!({
        "id": "main", "height": 7, "head_hash": "11".repeat(32), "state_digest": "22".repeat(32),
        "head_timestamp_ms": 1, "genesis_hash": "33".repeat(32), "gas_price": 1, "mempool_txs": 0,
        "txs_committed": 0, "blocks_committed": 0, "evidence": [],
        "plugins": {
            "chain_type": { "id": "linear", "name": "chain-linear", "version": "0.1.0", "state": "running" },
            "consensus": { "id": "poa", "name": "consensus-poa", "version": "0.1.0", "state": "running" },
        },
    });
    let status = json!({
        "name": "node-1", "public_key": "44".repeat(32), "version": "0", "peers": 0, "chains": [chain],
        "plugins": [], "radios": [], "markets": [],
    });
    let status: NodeStatus = serde_json::from_value(status).expect("a status");
    let (requests, _) = mpsc::sync_channel(1);
    NodeHandles {
        requests,
        status: Arc::new(RwLock::new(status)),
        key: Arc::new(SecretKey::generate().expect("a key")),
        events: EventBus::new(),
        manifest_file: PathBuf::from("node.toml"),
        data_dir: PathBuf::from("data"),
        limits: crate::script::LuaLimits::default(),
    }
}

/// The message of the error `code` raises in a console session.
fn error_of(code: &str) -> String {
    error_reading(code, FileSource::Node)
}

/// The message of the error `code` raises in a session whose files come from `files`.
fn error_reading(code: &str, files: FileSource) -> String {
    let cancel = Arc::new(AtomicBool::new(false));
    let session = open_session(&handles(), cancel.clone(), Box::new(|_| {}), files).expect("a session");
    match evaluate(&session, code, &cancel) {
        Ok(output) => panic!("{code}: expected an error, got {:?}", output.values),
        Err(error) => error.to_string(),
    }
}

#[test]
fn a_wrong_argument_type_names_the_function_the_argument_and_the_type() {
    let account = "ab".repeat(32);
    let cases = [
        (r#"chain("main"):block("three")"#, r#"chain("main"):block: height must be an integer, got string "three""#),
        (r#"chain("main"):block(-1)"#, r#"chain("main"):block: height must not be negative, got -1"#),
        (r#"chain("main"):block()"#, r#"chain("main"):block: height must be an integer, got nil"#),
        (r#"chain("main").block(3)"#, "chain(id):block: call it with a colon, as in chain(id):block(...)"),
        ("chain(7)", "chain: id must be a string, got number 7"),
        (r#"chain("main"):account("abc")"#, r#"chain("main"):account: account must be 64 hex characters, got 3"#),
        (r#"chain("main"):tx(5)"#, r#"chain("main"):tx: hash must be a string, got number 5"#),
        (r#"tx.transfer{from = "node", to = "abc", amount = 10}"#, "tx.transfer: to must be 64 hex characters, got 3"),
        ("tx.transfer(10)", "tx.transfer: the transfer must be a table, got number 10"),
        (
            &format!(r#"tx.transfer{{from = "node", to = "{account}", amount = "10"}}"#),
            r#"tx.transfer: amount must be an integer, got string "10""#,
        ),
        (
            &format!(r#"tx.transfer{{from = "node", to = "{account}", amount = 10, fee = 1.5}}"#),
            "tx.transfer: fee must be an integer, got number 1.5",
        ),
        (
            &format!(r#"tx.transfer{{to = "{account}", amount = 10}}"#),
            r#"tx.transfer: give from_key_file = "path" or from = "node""#,
        ),
        ("plugins.inspect(1)", "plugins.inspect: id must be a string, got number 1"),
        (r#"plugins.upgrade("poa")"#, "plugins.upgrade: package must be a string, got nil"),
        ("peers.block()", "peers.block: peer must be a string, got nil"),
        (r#"log.tail("x")"#, r#"log.tail: count must be an integer, got string "x""#),
        (
            "watch(5)",
            r#"watch: give nothing, a name ("blocks", "txs", "plugins", "frames") or a table {type=, chain=, count=}, not number 5"#,
        ),
        ("watch{count = -2}", "watch: count must not be negative, got -2"),
        ("market(5)", "market: sku must be a string, got number 5"),
        (
            r#"market("wifi"):lock{units = -1, max_price = 10}"#,
            r#"market("wifi"):lock: units must not be negative, got -1"#,
        ),
        (r#"market("wifi"):lock{units = 1}"#, r#"market("wifi"):lock: max_price must be an integer, got nil"#),
        (r#"market("wifi"):lock()"#, r#"market("wifi"):lock: the order must be a table, got nil"#),
        (
            r#"market("wifi").lock{units = 1, max_price = 1}"#,
            "market(sku):lock: call it with a colon, as in market(sku):lock(...)",
        ),
        (
            r#"market("wifi"):rollback("one")"#,
            r#"market("wifi"):rollback: version must be an integer, got string "one""#,
        ),
        (r#"market("wifi"):rollback(4294967296)"#, r#"market("wifi"):rollback: no version 4294967296"#),
        (
            r#"market("wifi"):strategy(5)"#,
            r#"market("wifi"):strategy: strategy must be a function, its source or a .lua file, got number 5"#,
        ),
        (
            r#"market("wifi"):shelve{policy = "p", units = 1, unit_price = 1, tiers = {{1}}}"#,
            r#"market("wifi"):shelve: tiers must be a list of {from_units, unit_price}"#,
        ),
        (
            r#"market("wifi"):chart{points = "many"}"#,
            r#"market("wifi"):chart: points must be an integer, got string "many""#,
        ),
        ("market.report(\"abc\", 3)", "market.report: lock must be 64 hex characters, got 3"),
        (&format!("market.report(\"{account}\")"), "market.report: units must be an integer, got nil"),
        (&format!("market.settle(\"{account}\", 5, 6)"), "market.settle: options must be a table, got number 6"),
        (&format!("market.settle(\"{account}\", \"x\")"), "market.settle: options must be a table, got string \"x\""),
        ("market.buy{resource = \"network\", units = 1}", "market.buy: max_unit_price must be an integer, got nil"),
        (
            "market.buy{resource = \"network\", units = 1, max_unit_price = 2, prefer = 3}",
            "market.buy: prefer must be a function, got number 3",
        ),
        (
            "market.demand{resource = 1, units = 1, max_price = 1}",
            "market.demand: resource must be a string, got number 1",
        ),
        ("market.skus(1)", "market.skus: chain must be a string, got number 1"),
        ("devices.show(\"zz\")", "devices.show: uid must be 64 hex characters, got 2"),
        (
            &format!("devices.readings(\"{account}\", \"yesterday\")"),
            r#"devices.readings: from_ms must be an integer, got string "yesterday""#,
        ),
        ("devices.uid()", "devices.uid: hardware_id must be a string, got nil"),
        (
            "devices.register{hardware_id = \"h\", from = \"node\"}",
            "devices.register: public_key must be a string, got nil",
        ),
        (
            "devices.register{hardware_id = \"h\", public_key = \"xyz\"}",
            "devices.register: public_key must be hex: Odd number of digits",
        ),
        (
            "devices.transfer{hardware_id = \"h\", to = \"abc\"}",
            "devices.transfer: to must be 64 hex characters, got 3",
        ),
        ("devices.revoke{}", r#"devices.revoke: give uid = "hex" or hardware_id = "text""#),
        ("radios.stats(\"lab\")", r#"radios.stats: no radio "lab" on this node"#),
        ("radios.send(\"lab\", \"a\", \"zz\")", "radios.send: frame must be hex: Invalid character 'z' at position 0"),
    ];
    for (code, message) in cases {
        assert_eq!(error_of(&format!("return {code}")), format!("console:1: {message}"), "{code}");
    }
}

#[test]
fn every_method_of_a_chain_the_node_lacks_says_so() {
    let account = "ab".repeat(32);
    for call in ["head()", "digest()", "block(3)", &format!("tx(\"{account}\")"), &format!("account(\"{account}\")")] {
        let method = call.split('(').next().unwrap_or_default();
        assert_eq!(
            error_of(&format!("return chain(\"nope\"):{call}")),
            format!(r#"console:1: chain("nope"):{method}: no chain "nope" on this node (it has "main")"#),
            "{call}"
        );
    }
    let transfer = format!(r#"return tx.transfer{{from = "node", to = "{account}", amount = 5, chain = "nope"}}"#);
    assert_eq!(error_of(&transfer), r#"console:1: tx.transfer: no chain "nope" on this node (it has "main")"#);
    let lock = r#"return market("wifi"):lock{units = 1, max_price = 2, chain = "nope"}"#;
    assert_eq!(error_of(lock), r#"console:1: market("wifi"):lock: no chain "nope" on this node (it has "main")"#);
    let revoke = r#"return devices.revoke{hardware_id = "h", from = "node", chain = "nope"}"#;
    assert_eq!(error_of(revoke), r#"console:1: devices.revoke: no chain "nope" on this node (it has "main")"#);
}

/// A console that has one file, `keys/owner.key`, holding `key_text`, and records what it was asked.
fn console_with_key(key_text: String, asked: Arc<Mutex<Vec<String>>>) -> FileSource {
    FileSource::Console(Box::new(move |path: &str| {
        asked.lock().expect("asked").push(path.to_string());
        match path {
            "keys/owner.key" => Ok(key_text.clone()),
            _ => Err("No such file or directory (os error 2)".to_string()),
        }
    }))
}

#[test]
fn a_key_file_is_read_where_the_console_runs_and_a_missing_one_says_where_it_was_looked_for() {
    let account = "ab".repeat(32);
    let asked = Arc::new(Mutex::new(Vec::new()));
    let transfer = |path: &str| {
        format!(r#"return tx.transfer{{from_key_file = "{path}", to = "{account}", amount = 5, chain = "nope"}}"#)
    };
    // The key is the console's: reading it succeeds, and the transfer goes as far as the chain.
    let dir = tempfile::tempdir().expect("tempdir");
    SecretKey::from_seed([7; 32]).write(&dir.path().join("owner.key")).expect("write key");
    let key_text = std::fs::read_to_string(dir.path().join("owner.key")).expect("key text");
    let error = error_reading(&transfer("keys/owner.key"), console_with_key(key_text.clone(), asked.clone()));
    assert_eq!(error, r#"console:1: tx.transfer: no chain "nope" on this node (it has "main")"#);
    let error = error_reading(&transfer("elsewhere.key"), console_with_key(key_text.clone(), asked.clone()));
    assert_eq!(
        error,
        "console:1: tx.transfer: elsewhere.key (read where the console runs): No such file or directory (os error 2)"
    );
    assert_eq!(*asked.lock().unwrap(), ["keys/owner.key", "elsewhere.key"]);
    let error = error_reading(&transfer("keys/owner.key"), console_with_key("zz".into(), asked.clone()));
    assert!(error.starts_with("console:1: tx.transfer: keys/owner.key: not a key file: not hex"), "{error}");
    // Without a console (one-shot eval), the node reads its own files and says so.
    let error = error_of(&transfer("/nonexistent/owner.key"));
    assert!(error.starts_with("console:1: tx.transfer: /nonexistent/owner.key (read on the node): "), "{error}");
}

#[test]
fn a_strategy_file_is_read_where_the_console_runs() {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let error =
        error_reading(r#"return market("wifi"):strategy("surge.lua")"#, console_with_key(String::new(), asked.clone()));
    assert_eq!(
        error,
        r#"console:1: market("wifi"):strategy: strategy file surge.lua (read where the console runs): No such file or directory (os error 2)"#
    );
    assert_eq!(*asked.lock().unwrap(), ["surge.lua"]);
}
