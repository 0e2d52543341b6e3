//! Devices end to end on real `nestd` processes: a device registered with `nestd device
//! register` sends signed readings through a real radio plugin; the node verifies them
//! against the key on chain, stores them and anchors their hashes, and every node sees
//! the anchor. Bad frames (bad signature, unknown µID, revoked device, replayed counter,
//! oversized frame, truncated fragment sequence, garbage) are rejected and counted while
//! the node keeps working.
//!
//! A radio also reports what never reaches the node: readings its duty cycle skipped
//! (counted by reason in `/v1/radios`, the console and `/metrics`), and a driver that
//! could not start (`failed`, with its error, until the operator enables it again).
//!
//! The radios: the loopback fixture (a frame sent through it with the admin route comes
//! back as a received frame, so the test controls exactly what the node receives), the
//! simulated radio of `nestd up`, and radio-mqtt on a real Mosquitto broker with frames
//! written by `nestd device frame` and published by the real `mosquitto_pub`.

use nest_host::{crypto::sha256, ledger::merkle::merkle_root};
use nest_sdk::Hash32;
use nest_tests::{
    RADIO_LOOPBACK,
    devices::{
        TestDevice, admin_token, console, device, devnet_with_own_radio, devnet_with_radio, expect_rejected,
        link_stats, metric, nestd, radio_send, radio_status, register, rejected, revoke, sim_device_uid, wait_anchored,
    },
    node::{NodeProcess, wait_until},
};
use std::time::Duration;

const RADIO: &str = "lab";
/// Large enough for an oversized frame to reach the node.
const LOOPBACK_CONFIG: &str = "{ mtu_bytes = 4096 }";

struct Net {
    nodes: Vec<NodeProcess>,
    devnet: nest_host::devnet::Devnet,
    token: String,
    _dir: tempfile::TempDir,
}

fn start(nodes: usize) -> Net {
    let dir = tempfile::tempdir().unwrap();
    let devnet = devnet_with_radio(dir.path(), nodes, RADIO_LOOPBACK, RADIO, LOOPBACK_CONFIG);
    let started: Vec<NodeProcess> = devnet.manifests.iter().map(|m| NodeProcess::start(m)).collect();
    let token = admin_token(&devnet.manifest);
    Net { nodes: started, devnet, token, _dir: dir }
}

impl Net {
    fn send(&self, frame: &[u8]) {
        radio_send(&self.nodes[0], &self.token, RADIO, "sensor-link", frame);
    }
}

#[test]
fn a_signed_reading_is_verified_stored_and_anchored_on_every_node() {
    let net = start(2);
    wait_until(Duration::from_secs(30), "the nodes to connect", || net.nodes.iter().all(|n| n.status().peers >= 1));
    let thermometer = TestDevice::new("thermo-0001");
    register(&net.nodes[0], &net.devnet, &thermometer);
    let uid = thermometer.uid();
    wait_until(Duration::from_secs(30), "the device on node-2", || device_on(&net.nodes[1], &uid));

    let first = thermometer.reading(1, "21.5C");
    net.send(&first);
    wait_anchored(&net.nodes, &uid, 1);
    for node in &net.nodes {
        let shown = device(node, &uid).unwrap();
        let anchor = &shown["anchors"][0];
        let expected = merkle_root(&[sha256(&first)]);
        assert_eq!(anchor["root"], expected.to_hex(), "{shown}");
        assert_eq!(anchor["gateway"], net.nodes[0].status().public_key.to_hex(), "{shown}");
        assert_eq!(shown["readings_anchored"], 1, "{shown}");
    }
    let readings: serde_json::Value =
        net.nodes[0].client().get(&format!("/v1/devices/{uid}/readings?from_ms=0")).unwrap();
    assert_eq!(readings[0]["payload_text"], "21.5C", "{readings}");
    assert_eq!(readings[0]["reading_hash"], Hash32(sha256(&first).0).to_hex());

    // A reading fragmented to a small MTU is reassembled, then anchored too.
    for fragment in thermometer.frames(2, &"x".repeat(300), Some(64)) {
        net.send(&fragment);
    }
    wait_anchored(&net.nodes, &uid, 2);
    let stats = link_stats(&net.nodes[0], RADIO);
    assert_eq!(stats["accepted"], 2, "{stats}");
    assert_eq!(stats["rejected"], 0, "{stats}");
    let later: serde_json::Value =
        net.nodes[0].client().get(&format!("/v1/devices/{uid}/readings?from_ms=1700000000002")).unwrap();
    assert_eq!(later.as_array().map(Vec::len), Some(1), "time range: {later}");

    // The console sees the same: devices, readings, radios.
    let manifest = &net.devnet.manifest;
    let code = format!("return devices.show(\"{uid}\").readings_anchored");
    assert_eq!(console(manifest, &code).1.trim(), "2");
    let code = format!("return devices.readings(\"{uid}\", 0, 1700000000001)[1].payload_text");
    assert_eq!(console(manifest, &code).1.trim(), "21.5C");
    assert_eq!(console(manifest, "return radios.stats(\"lab\").accepted").1.trim(), "2");
    assert_eq!(console(manifest, "return devices.uid(\"thermo-0001\")").1.trim(), uid);
    let (status, _, stderr) = console(manifest, "return devices.show(\"zz\")");
    assert_eq!(status, 1);
    assert_eq!(stderr.trim(), "error: console:1: devices.show: uid must be 64 hex characters, got 2");
    // An owner's transaction from the console: revoke with the faucet's key file.
    let faucet = net.devnet.faucet_key.display().to_string();
    let code = format!("return devices.revoke{{uid = \"{uid}\", from_key_file = \"{faucet}\"}}.status");
    assert_eq!(console(manifest, &code).1.trim(), "accepted");
    wait_until(Duration::from_secs(30), "the revocation on node-2", || {
        device(&net.nodes[1], &uid).is_some_and(|d| d["revoked"] == true)
    });
}

fn device_on(node: &NodeProcess, uid: &str) -> bool {
    device(node, uid).is_some()
}

#[test]
fn bad_frames_are_rejected_by_reason_and_counted_while_the_node_keeps_working() {
    let net = start(1);
    let node = &net.nodes[0];
    let good = TestDevice::new("meter-0001");
    let revoked = TestDevice::new("meter-0002");
    register(node, &net.devnet, &good);
    register(node, &net.devnet, &revoked);
    revoke(node, &net.devnet, &revoked);

    let expect =
        |what: &str, reason: &str, frame: &[u8]| expect_rejected(node, RADIO, what, reason, || net.send(frame));
    let mut bad_signature = good.reading(1, "42");
    let last = bad_signature.len() - 1;
    bad_signature[last] ^= 0x01;
    expect("a flipped signature bit", "bad_signature", &bad_signature);
    expect("an unregistered device", "unknown_device", &TestDevice::new("stranger").reading(1, "42"));
    expect("a revoked device", "revoked", &revoked.reading(1, "42"));
    expect("a 2000-byte frame", "oversized", &[1u8; 2000]);
    expect("random bytes", "garbage", &[0x42, 0x00, 0x17, 0xff, 0x03]);

    let reading = good.reading(1, "42");
    net.send(&reading);
    wait_anchored(&net.nodes, &good.uid(), 1);
    expect("the same reading again", "replayed_counter", &reading);

    // All fragments but the last: dropped once the reassembly timeout passes.
    let fragments = good.frames(2, &"y".repeat(200), Some(48));
    for fragment in &fragments[..fragments.len() - 1] {
        net.send(fragment);
    }
    wait_until(Duration::from_secs(20), "the truncated sequence to be counted", || {
        rejected(node, RADIO, "truncated_fragments") == 1
    });

    // The node is unaffected: still producing blocks and accepting good frames.
    let height = node.main_chain().height;
    net.send(&good.reading(3, "43"));
    wait_anchored(&net.nodes, &good.uid(), 3);
    assert!(node.main_chain().height > height);
    let stats = link_stats(node, RADIO);
    assert_eq!(stats["accepted"], 2, "{stats}");
    assert_eq!(stats["rejected"], 7, "{stats}");
    // Eight whole frames, and the fragments sent.
    assert_eq!(stats["frames_in"].as_u64(), Some(8 + fragments.len() as u64 - 1), "{stats}");
}

#[test]
fn nestd_device_tools_make_keys_frames_and_refuse_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("device.key");
    let out = nestd(&["device", "keygen", "--out", &key.display().to_string(), "--hardware-id", "hw-7"]);
    assert!(out.contains("public_key 04"), "{out}");
    assert!(out.contains(&format!("uid {}", TestDevice::new("hw-7").uid())), "{out}");
    let frame = dir.path().join("frame.bin");
    let args = ["device", "frame", "--key", &key.display().to_string(), "--hardware-id", "hw-7", "--counter", "5"];
    let mut with_out = args.to_vec();
    let frame_path = frame.display().to_string();
    with_out.extend(["--payload", "hello", "--out", &frame_path]);
    nestd(&with_out);
    let bytes = std::fs::read(&frame).unwrap();
    let envelope = nest_sdk::device::DeviceEnvelope::decode(&bytes).unwrap();
    assert_eq!((envelope.counter, envelope.payload.as_slice()), (5, &b"hello"[..]));
    let public_key = nest_host::devices::keys::DeviceKey::read(&key).unwrap().public_key();
    assert!(nest_host::devices::keys::verify(&public_key, &envelope.signing_message(), &envelope.signature));
    let mut fragmented = args.to_vec();
    let long_payload = "z".repeat(500);
    fragmented.extend(["--payload", &long_payload, "--mtu", "100", "--out", &frame_path]);
    assert!(nestd(&fragmented).contains("fragments"));
    assert!(dir.path().join("frame.bin.5").exists());
    let refused = std::process::Command::new(nest_tests::node::nestd_binary())
        .args(["device", "frame", "--key", &key.display().to_string(), "--hardware-id", "x", "--counter", "1"])
        .args(["--kind", "poem"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--kind must be reading"));
}

#[test]
fn the_devnet_simulated_devices_are_registered_and_their_readings_anchored() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = nest_tests::devices::funded_devnet(dir.path(), 1);
    nest_host::devices::devnet::add_sim_radio(&devnet.manifest).unwrap();
    let node = NodeProcess::start(&devnet.manifest);
    let registered = nest_host::devices::devnet::register_sim_devices(&node.url, &devnet.faucet_key).unwrap();
    assert_eq!(registered, nest_host::devices::devnet::SIM_DEVICES as usize);
    let first = sim_device_uid(0);
    wait_anchored(std::slice::from_ref(&node), &first, 1);
    // BLE sends every reading: those that came before the registrations committed were
    // refused as from unknown devices, and only those.
    let stats = link_stats(&node, "sim");
    let reasons: Vec<&String> = stats["rejected_by_reason"].as_object().map(|r| r.keys().collect()).unwrap_or_default();
    assert!(reasons.iter().all(|reason| *reason == "unknown_device"), "{stats}");
    assert!(stats["accepted"].as_u64() >= Some(1), "{stats}");
    let accepted = stats["accepted"].as_u64().unwrap_or(0);
    wait_until(Duration::from_secs(15), "more readings accepted", || {
        link_stats(&node, "sim")["accepted"].as_u64() > Some(accepted + 1)
    });
    assert_eq!(link_stats(&node, "sim")["rejected"], stats["rejected"], "nothing refused once registered");
    assert_eq!(radio_status(&node, "sim")["skipped"].get("duty_cycle"), None, "BLE has no duty cycle");
    // A second registration pass finds them all on chain.
    assert_eq!(nest_host::devices::devnet::register_sim_devices(&node.url, &devnet.faucet_key).unwrap(), 0);
}

/// `nestd device frame` for `device` into `<dir>/<name>`; extra arguments appended.
fn cli_frame(
    dir: &std::path::Path,
    key: &std::path::Path,
    hardware_id: &str,
    counter: u64,
    name: &str,
    extra: &[&str],
) -> std::path::PathBuf {
    let out = dir.join(name);
    let (key, counter_text, out_text) = (key.display().to_string(), counter.to_string(), out.display().to_string());
    let mut args = vec!["device", "frame", "--key", &key, "--hardware-id", hardware_id, "--counter", &counter_text];
    args.extend(["--payload", "19.0C", "--out", &out_text]);
    args.extend(extra);
    nestd(&args);
    out
}

#[test]
fn over_mqtt_frames_published_by_mosquitto_pub_are_anchored_on_every_node_or_rejected_by_reason() {
    let broker = nest_tests::mosquitto::Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config =
        format!("{{ broker = \"{}\", client_id = \"nest-devices-{}\" }}", broker.address(), nest_tests::node::unique());
    let devnet = devnet_with_own_radio(dir.path(), 2, "mqtt", "mqtt", &config);
    let nodes: Vec<NodeProcess> = devnet.manifests.iter().map(|m| NodeProcess::start(m)).collect();
    wait_until(Duration::from_secs(30), "the nodes to connect", || nodes.iter().all(|n| n.status().peers >= 1));
    let key = dir.path().join("thermo.key");
    nestd(&["device", "keygen", "--out", &key.display().to_string()]);
    let owner = devnet.faucet_key.display().to_string();
    let register = |hardware_id: &str| {
        let args = ["device", "register", "--key", &owner, "--node", &nodes[0].url, "--hardware-id", hardware_id];
        let mut args = args.to_vec();
        let key_text = key.display().to_string();
        args.extend(["--device-key", &key_text, "--wait"]);
        nestd(&args);
    };
    register("thermo-mqtt");
    let publish = |file: &std::path::Path| {
        assert!(broker.publish("nest/devices/thermo-mqtt/up", &std::fs::read(file).unwrap()), "mosquitto_pub failed");
    };
    let first = cli_frame(dir.path(), &key, "thermo-mqtt", 1, "first.bin", &[]);
    publish(&first);
    let uid = TestDevice::new("thermo-mqtt").uid();
    wait_anchored(&nodes, &uid, 1);
    for node in &nodes {
        let shown = device(node, &uid).unwrap();
        let root = merkle_root(&[sha256(&std::fs::read(&first).unwrap())]);
        assert_eq!(shown["anchors"][0]["root"], root.to_hex(), "{shown}");
    }

    let node = &nodes[0];
    let expect = |what: &str, reason: &str, file: &std::path::Path| {
        expect_rejected(node, "mqtt", what, reason, || publish(file))
    };
    expect("the same frame again", "replayed_counter", &first);
    expect(
        "a corrupted signature",
        "bad_signature",
        &cli_frame(dir.path(), &key, "thermo-mqtt", 2, "bad.bin", &["--corrupt-signature"]),
    );
    expect("an unregistered device", "unknown_device", &cli_frame(dir.path(), &key, "stranger", 1, "unknown.bin", &[]));
    register("thermo-revoked");
    nestd(&["device", "revoke", "--key", &owner, "--node", &node.url, "--hardware-id", "thermo-revoked", "--wait"]);
    expect("a revoked device", "revoked", &cli_frame(dir.path(), &key, "thermo-revoked", 1, "revoked.bin", &[]));
    let oversized = dir.path().join("oversized.bin");
    std::fs::write(&oversized, vec![1u8; 3000]).unwrap();
    expect("a 3000-byte frame", "oversized", &oversized);
    let garbage = dir.path().join("garbage.bin");
    std::fs::write(&garbage, b"\x07not a frame").unwrap();
    expect("garbage", "garbage", &garbage);
    let fragments = cli_frame(dir.path(), &key, "thermo-mqtt", 3, "split.bin", &["--mtu", "40"]);
    expect_rejected(node, "mqtt", "a fragment sequence missing its last piece", "truncated_fragments", || {
        for index in 0..3 {
            publish(&std::path::PathBuf::from(format!("{}.{index}", fragments.display())));
        }
    });

    // Unaffected: the next good frame, fragmented, is anchored on every node.
    let last = cli_frame(dir.path(), &key, "thermo-mqtt", 4, "last.bin", &["--mtu", "40"]);
    let mut index = 0;
    while last.with_extension(format!("bin.{index}")).exists() {
        publish(&last.with_extension(format!("bin.{index}")));
        index += 1;
    }
    wait_anchored(&nodes, &uid, 4);
    let stats = link_stats(node, "mqtt");
    assert_eq!(stats["accepted"], 2, "{stats}");
    assert_eq!(stats["rejected"], 7, "{stats}");
}

#[test]
fn readings_the_lora_duty_cycle_skips_are_counted_by_reason_in_the_status_the_console_and_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    // A 134-byte reading is 196 ms of air at SF7; the 1 % duty cycle earns 10 ms a second
    // from an empty budget, so for the first 19 s every reading is skipped, none delivered.
    let config = "{ profile = \"lora-sf7\", devices = 4, reading_interval_ms = 250 }";
    let devnet = devnet_with_own_radio(dir.path(), 1, "sim", "field", config);
    let node = NodeProcess::start(&devnet.manifest);
    let skipped = |node: &NodeProcess| radio_status(node, "field")["skipped"]["duty_cycle"].as_u64().unwrap_or(0);
    wait_until(Duration::from_secs(15), "duty-cycle skips in /v1/radios", || skipped(&node) >= 8);
    let radio = radio_status(&node, "field");
    assert_eq!(radio["link"]["frames_in"], 0, "every reading so far was skipped, none delivered: {radio}");
    assert_eq!(radio["plugin"]["state"], "running", "{radio}");
    let labels = [("radio", "field"), ("reason", "duty_cycle")];
    let exported = metric(&node, "nest_radio_frames_skipped_total", &labels).expect("the skip counter");
    assert!(exported >= 8.0, "nest_radio_frames_skipped_total {exported}");
    let (status, out, _) = console(&devnet.manifest, "return radios.stats(\"field\").skipped.duty_cycle");
    assert_eq!(status, 0);
    assert!(out.trim().parse::<u64>().is_ok_and(|n| n >= 8), "console: {out}");
}

#[test]
fn a_radio_driver_that_cannot_start_is_reported_failed_with_its_error_until_enabled_again() {
    let dir = tempfile::tempdir().unwrap();
    let holder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = holder.local_addr().unwrap().to_string();
    let devnet = devnet_with_own_radio(dir.path(), 1, "udp", "lan", &format!("{{ bind = \"{address}\" }}"));
    let node = NodeProcess::start(&devnet.manifest);
    let radio = radio_status(&node, "lan");
    assert_eq!(radio["plugin"]["state"], "failed", "{radio}");
    let reason = radio["plugin"]["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.starts_with(&format!("start failed: cannot bind {address}")), "{radio}");
    assert_eq!(metric(&node, "nest_radio_up", &[("radio", "lan")]), Some(0.0));
    assert_eq!(metric(&node, "nest_radio_start_failures_total", &[("radio", "lan")]), Some(1.0));
    let (_, state, _) = console(&devnet.manifest, "return radios.stats(\"lan\").state");
    assert_eq!(state.trim(), "failed");
    let (_, error, _) = console(&devnet.manifest, "return radios.stats(\"lan\").error");
    assert_eq!(error.trim(), reason);
    wait_until(Duration::from_secs(20), "blocks without the radio", || node.main_chain().height >= 2);

    // The address freed and the plugin enabled, the driver starts and takes datagrams.
    drop(holder);
    let token = admin_token(&devnet.manifest);
    ureq::post(&format!("{}/v1/admin/plugins/udp/enable", node.url))
        .set("authorization", &format!("Bearer {token}"))
        .call()
        .expect("enable");
    let radio = radio_status(&node, "lan");
    assert_eq!(radio["plugin"]["state"], "running", "{radio}");
    let device = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    device.send_to(b"\x07not a frame", &address).unwrap();
    wait_until(Duration::from_secs(10), "the datagram counted", || radio_status(&node, "lan")["frames_received"] == 1);
    assert_eq!(metric(&node, "nest_radio_up", &[("radio", "lan")]), Some(1.0));
}
