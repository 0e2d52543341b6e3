//! `nestd check` reports on a good manifest and names the file, table and key of
//! each problem in broken ones; it exits 0 only when the node would start.

use nest_tests::node::{nestd_binary, write_devnet};
use std::{path::Path, process::Command};

/// Runs `nestd check` on the devnet manifest after `edit`; returns (success, output).
fn check_edited(edit: impl FnOnce(String) -> String) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let devnet = write_devnet(dir.path(), 1000, Vec::new());
    let text = std::fs::read_to_string(&devnet.manifest).unwrap();
    std::fs::write(&devnet.manifest, edit(text)).unwrap();
    run_check(&devnet.manifest)
}

fn run_check(manifest: &Path) -> (bool, String) {
    let output = Command::new(nestd_binary()).arg("check").arg(manifest).env("NEST_LOG", "error").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text.replace(&manifest.display().to_string(), "MANIFEST"))
}

#[test]
fn good_manifest_is_reported_and_passes() {
    let (ok, report) = check_edited(|text| text);
    assert!(ok, "{report}");
    assert!(report.contains("manifest  MANIFEST"), "{report}");
    assert!(
        report.contains("plugin    poa        consensus-poa 0.1.0  [consensus]  signed by local-developer"),
        "{report}"
    );
    assert!(
        report.contains("plugin    linear     chain-linear 0.1.0  [chain-type]  signed by local-developer"),
        "{report}"
    );
    assert!(report.contains("chain     main       chain-linear + consensus-poa  genesis "), "{report}");
    assert!(report.ends_with("ok: the node would start\n"), "{report}");
}

#[test]
fn unknown_plugin_is_named_with_its_table_and_key() {
    let (ok, report) = check_edited(|text| text.replace("plugin = \"poa\"", "plugin = \"pbft\""));
    assert!(!ok);
    assert!(
        report.contains(
            r#"error: MANIFEST: [[chain]] id="main": consensus.plugin: unknown plugin "pbft" (declared: poa, linear, sim, udp, mqtt, price-tag, metering, auction, cpp)"#
        ),
        "{report}"
    );
}

#[test]
fn bad_config_value_is_named_down_to_the_plugin_key() {
    let (ok, report) = check_edited(|text| text.replace("block_interval_ms = 1000", "block_interval_ms = \"fast\""));
    assert!(!ok);
    let expected = r#"error: MANIFEST: [[chain]] id="main": consensus.config.block_interval_ms: invalid type: string "fast", expected an integer"#;
    assert!(report.contains(expected), "{report}");
    let (ok, report) = check_edited(|text| text.replace("block_interval_ms = 1000", "block_interval_ms = 5"));
    assert!(!ok);
    assert!(report.contains(r#"[[chain]] id="main": consensus.config.block_interval_ms: "#), "{report}");
}

#[test]
fn missing_trust_key_refuses_every_plugin_it_signed() {
    let (ok, report) = check_edited(|text| {
        let start = text.find("[[trust.vendor]]").unwrap();
        let end = start + text[start..].find("\n\n").unwrap();
        format!("{}{}", &text[..start], &text[end..])
    });
    assert!(!ok);
    assert!(report.contains(r#"error: MANIFEST: [[plugin]] id="poa": package: "#), "{report}");
    assert!(report.contains("is not trusted by this node"), "{report}");
    assert!(report.contains(r#"[[plugin]] id="linear": package: "#), "{report}");
    assert!(report.contains("problem(s): the node would not start"), "{report}");
}

#[test]
fn duplicate_plugin_id_is_refused() {
    let (ok, report) = check_edited(|text| text.replace("id = \"linear\"", "id = \"poa\""));
    assert!(!ok);
    assert!(report.contains(r#"error: MANIFEST: [[plugin]] id="poa": id: duplicate id "poa""#), "{report}");
}

#[test]
fn every_problem_is_reported_each_with_its_table_and_key() {
    let (ok, report) = check_edited(|text| {
        text.replace("plugin = \"linear\"", "plugin = \"lineer\"")
            .replace("block_interval_ms = 1000", "block_interval_ms = \"fast\"")
            .replace("[api]\n", "[api]\nadmin_burst = 0\n")
    });
    assert!(!ok, "{report}");
    let expected = [
        r#"error: MANIFEST: [api]: admin_burst: must be at least 1"#,
        r#"error: MANIFEST: [[chain]] id="main": chain_type.plugin: unknown plugin "lineer" (declared: poa, linear, sim, udp, mqtt, price-tag, metering, auction, cpp)"#,
        r#"error: MANIFEST: [[chain]] id="main": consensus.config.block_interval_ms: invalid type: string "fast", expected an integer"#,
        "3 problem(s): the node would not start",
    ];
    for line in expected {
        assert!(report.contains(line), "missing {line:?} in\n{report}");
    }
    assert_eq!(report.lines().count(), expected.len(), "each problem once:\n{report}");
}

#[test]
fn an_unreadable_node_key_does_not_hide_the_plugin_config_problems() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = write_devnet(dir.path(), 1000, Vec::new());
    std::fs::remove_file(devnet.manifest.parent().unwrap().join("node.key")).unwrap();
    let text = std::fs::read_to_string(&devnet.manifest).unwrap();
    std::fs::write(&devnet.manifest, text.replace("block_interval_ms = 1000", "block_interval_ms = \"fast\"")).unwrap();
    let (ok, report) = run_check(&devnet.manifest);
    assert!(!ok);
    assert!(report.contains("error: MANIFEST: [node]: key: "), "{report}");
    assert!(report.contains(r#"[[chain]] id="main": consensus.config.block_interval_ms: invalid type"#), "{report}");
    assert!(report.contains("2 problem(s)"), "{report}");
}

#[test]
fn a_toml_error_gives_line_column_table_and_key() {
    let (ok, report) = check_edited(|text| text.replace("name = \"node-1\"\n", "name = \"node-1\"\ncolour = 1\n"));
    assert!(!ok);
    let expected =
        "error: MANIFEST:5:1: [node]: colour: unknown field `colour`, expected one of `name`, `data_dir`, `key`";
    assert!(report.contains(expected), "{report}");
    let (ok, report) = check_edited(|text| text.replace("gas_price = 1\n", "gas_price = \"one\"\n"));
    assert!(!ok);
    assert!(report.contains(r#"[[chain]] id="main": gas_price: invalid type: string "one", expected u64"#), "{report}");
    assert!(!report.contains("at byte"), "{report}");
}

#[test]
fn unreadable_manifest_is_reported() {
    let (ok, report) = run_check(Path::new("/nonexistent/manifest.toml"));
    assert!(!ok);
    assert!(report.contains("error: MANIFEST: No such file or directory"), "{report}");
}

#[test]
fn two_plugin_entries_with_the_same_plugin_name_are_refused() {
    let (ok, report) = check_edited(|text| {
        text.replace(
            "[[plugin]]\nid = \"linear\"",
            "[[plugin]]\nid = \"poa2\"\npackage = \"../packages/consensus-poa\"\n\n[[plugin]]\nid = \"linear\"",
        )
    });
    assert!(!ok);
    assert!(
        report.contains(
            r#"[[plugin]] id="poa2": package: plugin consensus-poa is already loaded as [[plugin]] id="poa""#
        ),
        "{report}"
    );
}

#[test]
fn radio_and_market_plugins_are_checked_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = write_devnet(dir.path(), 1000, Vec::new());
    let vendor = nest_tests::vendor_key(21);
    nest_tests::pack_crate(nest_tests::RADIO_LOOPBACK, &dir.path().join("radio"), &vendor);
    nest_tests::pack_crate(nest_tests::MARKET_FLAT, &dir.path().join("market"), &vendor);
    let extra = format!(
        "\n[[trust.vendor]]\nname = \"fixtures\"\nkey = \"{}\"\n\n[[plugin]]\nid = \"loop\"\npackage = \"../radio\"\n\n[[plugin]]\nid = \"flat\"\npackage = \"../market\"\n\n[[radio]]\nid = \"lab\"\nplugin = \"loop\"\nconfig = {{ mtu_bytes = 64 }}\n\n[[market]]\nid = \"wifi\"\nplugin = \"flat\"\nconfig = {{ price_per_unit = 3 }}\n",
        vendor.public_key()
    );
    let text = std::fs::read_to_string(&devnet.manifest).unwrap();
    let (before_chain, chain) = text.split_at(text.find("[[chain]]").unwrap());
    std::fs::write(&devnet.manifest, format!("{before_chain}{extra}\n{chain}")).unwrap();
    let (ok, report) = run_check(&devnet.manifest);
    assert!(ok, "{report}");
    assert!(report.contains("radio     lab        fixture-radio-loopback"), "{report}");
    assert!(report.contains("market    wifi       fixture-market-flat"), "{report}");
    let broken =
        std::fs::read_to_string(&devnet.manifest).unwrap().replace("price_per_unit = 3", "price_per_unit = \"cheap\"");
    std::fs::write(&devnet.manifest, broken).unwrap();
    let (ok, report) = run_check(&devnet.manifest);
    assert!(!ok);
    assert!(
        report.contains(
            r#"[[market]] id="wifi": config.price_per_unit: invalid type: string "cheap", expected an integer"#
        ),
        "{report}"
    );
}
