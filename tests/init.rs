//! `nestd init <dir>` writes a node directory that `nestd check` passes and `nestd run`
//! runs, producing blocks; it refuses a directory that holds files unless `--force`.
//! The steps `manifests/single.toml` documents for filling it by hand work as written.

use nest_host::crypto::SecretKey;
use nest_tests::node::{NodeProcess, nestd_binary, wait_until};
use std::{
    path::Path,
    process::{Command, Output},
    time::Duration,
};

fn nestd(args: &[&str], dir: &Path) -> Output {
    Command::new(nestd_binary()).args(args).arg(dir).env("NEST_LOG", "error").output().expect("run nestd")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn an_initialized_directory_checks_runs_and_produces_blocks() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("node");
    let init = nestd(&["init", "--port", "0", "--block-interval-ms", "200"], &dir);
    let printed = text(&init);
    assert!(init.status.success(), "{printed}");
    let manifest = dir.join("node.toml");
    assert!(printed.contains(&format!("nestd check {}", manifest.display())), "{printed}");
    assert!(printed.contains(&format!("nestd run {}", manifest.display())), "{printed}");
    for file in ["node.key", "vendor.key", "account.key", "packages/consensus-poa/plugin.sig"] {
        assert!(dir.join(file).is_file(), "{file} missing; init printed:\n{printed}");
    }

    let check = Command::new(nestd_binary()).arg("check").arg(&manifest).env("NEST_LOG", "error").output().unwrap();
    let report = text(&check);
    assert!(check.status.success(), "{report}");
    assert!(report.ends_with("ok: the node would start\n"), "{report}");

    let node = NodeProcess::start(&manifest);
    wait_until(Duration::from_secs(30), "height 2", || node.main_chain().height >= 2);
    let account = SecretKey::read(&dir.join("account.key")).expect("account.key").public_key().to_hex();
    assert!(printed.contains(&format!("account.key   account {account}")), "{printed}");
    let balance: serde_json::Value =
        node.client().get(&format!("/v1/chains/main/accounts/{account}")).expect("account of account.key");
    assert_eq!(balance["balance"], serde_json::json!(nest_host::devnet::FAUCET_BALANCE), "{balance}");
    assert!(node.stop(), "nestd run did not stop cleanly on SIGTERM");
}

#[test]
fn a_directory_with_files_is_refused_unless_forced_and_force_keeps_the_keys() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let refused = nestd(&["init"], dir);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("is not empty") && text(&refused).contains("--force"), "{}", text(&refused));
    assert!(!dir.join("node.toml").exists());

    let forced = nestd(&["init", "--force"], dir);
    assert!(forced.status.success(), "{}", text(&forced));
    let key = std::fs::read_to_string(dir.join("node.key")).unwrap();
    let again = nestd(&["init", "--force"], dir);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(std::fs::read_to_string(dir.join("node.key")).unwrap(), key, "--force replaced the node key");
    assert_eq!(std::fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine");
}

/// The commands `manifests/single.toml`'s header gives, continuation lines joined and
/// trailing comments dropped.
fn documented_steps(header: &str) -> Vec<String> {
    let mut steps = Vec::new();
    let mut pending = String::new();
    for line in header.lines().filter_map(|line| line.strip_prefix("#   ")) {
        let line = line.split("  # ").next().unwrap_or_default().trim();
        match line.strip_suffix('\\') {
            Some(start) => pending.push_str(start),
            None => steps.push(format!("{pending}{line}")),
        }
        if !line.ends_with('\\') {
            pending.clear();
        }
    }
    steps
}

#[test]
fn the_steps_in_the_single_manifest_header_make_a_node_that_checks() {
    let root = nest_tests::workspace_root();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // A stand-in for the workspace root: its plugins, its build, a copy of the manifest.
    std::os::unix::fs::symlink(root.join("plugins"), dir.join("plugins")).unwrap();
    std::fs::create_dir(dir.join("target")).unwrap();
    std::os::unix::fs::symlink(nest_tests::target_dir(), dir.join("target/debug")).unwrap();
    std::fs::create_dir(dir.join("manifests")).unwrap();
    let manifest = dir.join("manifests/single.toml");
    std::fs::copy(root.join("manifests/single.toml"), &manifest).unwrap();
    let template = std::fs::read_to_string(&manifest).unwrap();
    let steps = documented_steps(&template);
    let (setup, checks) = steps.split_at(steps.iter().position(|s| s.contains("nestd check")).expect("a check step"));
    assert!(setup.len() >= 4 && checks.len() == 2, "{steps:?}");
    let mut node_key = String::new();
    for step in setup {
        let output = Command::new("sh").arg("-c").arg(step).current_dir(dir).output().unwrap();
        assert!(output.status.success(), "{step}: {}", text(&output));
        if step.contains("nestd keygen") {
            node_key = String::from_utf8_lossy(&output.stdout).trim().to_string();
        }
    }
    let check = || Command::new("sh").arg("-c").arg(&checks[0]).current_dir(dir).env("NEST_LOG", "error").output();
    let unfilled = check().unwrap();
    assert!(!unfilled.status.success());
    assert!(text(&unfilled).contains("[trust]: vendor[0].key: invalid hex"), "{}", text(&unfilled));
    let vendor = std::fs::read_to_string(dir.join(".nest/vendor.key.pub")).unwrap();
    let filled = template
        .replace("REPLACE_WITH_VENDOR_PUBLIC_KEY_HEX_64_CHARS_000000000000000000000", vendor.trim())
        .replace("REPLACE_WITH_NODE_PUBLIC_KEY_HEX", &node_key)
        .replace("REPLACE_WITH_ACCOUNT_PUBLIC_KEY_HEX", &node_key);
    std::fs::write(&manifest, filled).unwrap();
    let output = check().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).ends_with("ok: the node would start\n"), "{}", text(&output));
}
