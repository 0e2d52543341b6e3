//! `nestd init <dir>` writes a node directory that `nestd check` passes and `nestd run`
//! runs, producing blocks; it refuses a directory that holds files unless `--force`.

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
