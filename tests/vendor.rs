//! The vendor path of `sdk/README.md`, done for real: the out-of-tree example driver is
//! built with cargo, given a vendor key, packed and signed with `nestd plugin`, loaded
//! by a `nestd` node that trusts the key, and delivers the datagrams sent to it.

use nest_tests::{
    node::{NodeProcess, nestd_binary, wait_until, write_devnet},
    workspace_root,
};
use std::{
    net::UdpSocket,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

/// Runs `nestd <args>`; panics with its output unless it succeeds.
fn nestd(args: &[&str], dir: &Path) -> String {
    let output = Command::new(nestd_binary()).args(args).current_dir(dir).output().expect("run nestd");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "nestd {args:?} failed:\n{text}");
    text
}

/// Builds the example with cargo into a target directory shared across runs.
fn build_example(example: &Path) -> PathBuf {
    let target = nest_tests::target_dir().parent().expect("target/debug has a parent").join("vendor-radio");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--manifest-path"])
        .arg(example.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo");
    assert!(output.status.success(), "cargo build of the example failed:\n{}", String::from_utf8_lossy(&output.stderr));
    target.join("debug/libvendor_radio.so")
}

#[test]
fn the_out_of_tree_vendor_driver_builds_signs_loads_and_delivers_frames() {
    let example = workspace_root().join("sdk/examples/vendor-radio");
    let library = build_example(&example);
    let dir = tempfile::tempdir().unwrap();
    let vendor = dir.path().join("vendor");
    std::fs::create_dir_all(&vendor).unwrap();

    nestd(&["plugin", "keygen", "--out", "vendor.key"], &vendor);
    let public_key = std::fs::read_to_string(vendor.join("vendor.key.pub")).unwrap().trim().to_string();
    let package = vendor.join("dist/vendor-radio");
    let packed = nestd(
        &[
            "plugin",
            "pack",
            "--source",
            example.join("plugin.toml").to_str().unwrap(),
            "--library",
            library.to_str().unwrap(),
            "--out",
            package.to_str().unwrap(),
            "--key",
            "vendor.key",
        ],
        &vendor,
    );
    assert!(packed.contains("packed vendor-radio 0.1.0"), "{packed}");
    nestd(&["plugin", "sign", package.to_str().unwrap(), "--key", "vendor.key"], &vendor);
    let verified =
        nestd(&["plugin", "verify", package.to_str().unwrap(), "--trust", &format!("acme={public_key}")], &vendor);
    assert!(verified.contains("ok: vendor-radio 0.1.0 [radio], signed by acme"), "{verified}");

    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let devnet = write_devnet(&dir.path().join("net"), 100, Vec::new());
    let mut manifest = std::fs::read_to_string(&devnet.manifest).unwrap();
    manifest.push_str(&format!(
        "\n[[trust.vendor]]\nname = \"acme\"\nkey = \"{public_key}\"\n\n[[plugin]]\nid = \"acme\"\npackage = \"{}\"\n\n[[radio]]\nid = \"field\"\nplugin = \"acme\"\nconfig = {{ listen = \"127.0.0.1:{port}\", mtu_bytes = 1200 }}\n",
        package.display()
    ));
    std::fs::write(&devnet.manifest, manifest).unwrap();
    let checked = nestd(&["check", devnet.manifest.to_str().unwrap()], dir.path());
    assert!(checked.contains("signed by acme"), "{checked}");

    let node = NodeProcess::start(&devnet.manifest);
    let device = UdpSocket::bind("127.0.0.1:0").unwrap();
    let frames = || node.status().radios.iter().find(|r| r.id == "field").map(|r| r.frames_received).unwrap_or(0);
    for frame in [&b"hello"[..], b"from", b"acme"] {
        device.send_to(frame, ("127.0.0.1", port)).unwrap();
    }
    wait_until(Duration::from_secs(10), "3 frames from the vendor driver", || frames() == 3);
    let status = node.status();
    let radio = status.radios.iter().find(|r| r.id == "field").unwrap();
    assert_eq!((radio.technology.as_str(), radio.mtu_bytes), ("udp", 1200));

    // As the guide's "An accepted frame" does: a registered device's signed reading,
    // sent with `nestd device send`, passes every check of the node.
    let cwd = dir.path();
    let faucet = devnet.faucet_key.display().to_string();
    nestd(&["device", "keygen", "--out", "dev.key", "--hardware-id", "thermo-1"], cwd);
    let register = ["device", "register", "--node", &node.url, "--key", &faucet, "--hardware-id", "thermo-1"];
    nestd(&[&register[..], &["--device-key", "dev.key", "--wait"]].concat(), cwd);
    let frame = ["device", "frame", "--key", "dev.key", "--hardware-id", "thermo-1", "--counter", "1"];
    nestd(&[&frame[..], &["--payload", "21.5C", "--out", "frame.bin"]].concat(), cwd);
    nestd(&["device", "send", "--to", &format!("127.0.0.1:{port}"), "frame.bin"], cwd);
    let accepted = || node.status().radios.iter().find(|r| r.id == "field").map(|r| r.link.accepted).unwrap_or(0);
    wait_until(Duration::from_secs(10), "the reading accepted", || accepted() == 1);
    let link = node.status().radios.into_iter().find(|r| r.id == "field").unwrap().link;
    assert_eq!(link.rejected_by_reason.get("garbage"), Some(&3), "{link:?}");
    assert!(node.stop());
}

#[test]
fn the_guide_shows_the_example_crate_as_it_is() {
    let readme = std::fs::read_to_string(workspace_root().join("sdk/README.md")).unwrap();
    let example = workspace_root().join("sdk/examples/vendor-radio");
    let source = std::fs::read_to_string(example.join("src/lib.rs")).unwrap();
    // Fenced blocks' bodies (after the language line).
    let blocks: Vec<&str> =
        readme.split("```").skip(1).step_by(2).filter_map(|b| b.split_once('\n').map(|(_, body)| body)).collect();
    let block = |start: &str| {
        let body = blocks.iter().find(|b| b.starts_with(start));
        body.unwrap_or_else(|| panic!("sdk/README.md has no block starting {start:?}")).trim().to_string()
    };
    let lib = block("//! Carry device frames as UDP datagrams");
    let tests = block("#[cfg(test)]\nmod tests {\n    use super::*;\n    use nest_sdk::config::parse;");
    assert!(source.contains(lib.as_str()), "the guide's src/lib.rs differs from sdk/examples/vendor-radio/src/lib.rs");
    assert!(source.contains(tests.as_str()), "the guide's tests differ from the example's");
    for (file, start) in
        [("Cargo.toml", "[package]\nname = \"vendor-radio\""), ("plugin.toml", "name = \"vendor-radio\"")]
    {
        let text = std::fs::read_to_string(example.join(file)).unwrap();
        assert_eq!(text.trim(), block(start), "the guide's {file} differs from the example's");
    }
}
