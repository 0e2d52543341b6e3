//! Run devnets whose first node has a radio, register devices with the real `nestd
//! device` CLI, build signed frames, and read link counters and device records.

use super::node::{NodeProcess, nestd_binary, wait_until, write_devnet_nodes};
use nest_host::devices::{FrameSpec, keys::DeviceKey, link_frames, signed_envelope};
use nest_host::devnet::Devnet;
use nest_sdk::device::{KIND_READING, device_uid};
use serde_json::Value;
use std::{path::Path, process::Command, time::Duration};

/// A simulated device: its hardware id and P-256 key.
pub struct TestDevice {
    /// Hardware id (its µID is the SHA-256 of it).
    pub hardware_id: String,
    /// The device key.
    pub key: DeviceKey,
}

impl TestDevice {
    /// A device with a key derived from its hardware id.
    pub fn new(hardware_id: &str) -> TestDevice {
        TestDevice { hardware_id: hardware_id.into(), key: DeviceKey::from_seed(hardware_id.as_bytes()) }
    }

    /// µID, hex.
    pub fn uid(&self) -> String {
        hex::encode(device_uid(self.hardware_id.as_bytes()))
    }

    /// The envelope bytes of a reading.
    pub fn reading(&self, counter: u64, payload: &str) -> Vec<u8> {
        self.frames(counter, payload, None).remove(0)
    }

    /// The link frames of a reading, fragmented to `mtu_bytes` when given.
    pub fn frames(&self, counter: u64, payload: &str, mtu_bytes: Option<u32>) -> Vec<Vec<u8>> {
        let spec = FrameSpec {
            hardware_id: self.hardware_id.as_bytes(),
            counter,
            timestamp_ms: 1_700_000_000_000 + counter,
            kind: KIND_READING,
            payload: payload.as_bytes().to_vec(),
        };
        let envelope = signed_envelope(&self.key, &spec).expect("valid envelope");
        link_frames(&envelope, mtu_bytes, counter as u16).expect("fragments")
    }
}

/// The µID (hex) of device `index` of the devnet's simulated radio.
pub fn sim_device_uid(index: u32) -> String {
    let hardware_id = format!("{}{index}", nest_host::devices::devnet::SIM_HARDWARE_ID_PREFIX);
    hex::encode(device_uid(hardware_id.as_bytes()))
}

/// Runs `nestd <args>`; panics with its output when it fails. Returns stdout.
pub fn nestd(args: &[&str]) -> String {
    let output = Command::new(nestd_binary()).args(args).output().expect("run nestd");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "nestd {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// Registers `device` (owner: the devnet's faucet) through `nestd device register --wait`.
pub fn register(node: &NodeProcess, devnet: &Devnet, device: &TestDevice) {
    let public_key = hex::encode(device.key.public_key());
    let faucet = devnet.faucet_key.display().to_string();
    let args = ["device", "register", "--key", &faucet, "--node", &node.url, "--hardware-id", &device.hardware_id];
    let mut args = args.to_vec();
    args.extend(["--public-key", &public_key, "--class", "thermometer", "--wait"]);
    nestd(&args);
}

/// Revokes `device` through `nestd device revoke --wait`.
pub fn revoke(node: &NodeProcess, devnet: &Devnet, device: &TestDevice) {
    let faucet = devnet.faucet_key.display().to_string();
    let uid = device.uid();
    nestd(&["device", "revoke", "--key", &faucet, "--node", &node.url, "--uid", &uid, "--wait"]);
}

/// Writes a devnet of `nodes` nodes (one authority) whose first node loads `plugin`,
/// packed and signed with the devnet's vendor key, as radio `radio_id` with `config`
/// (an inline TOML table).
pub fn devnet_with_radio(dir: &Path, nodes: usize, plugin: super::PluginCrate, radio_id: &str, config: &str) -> Devnet {
    let devnet = funded_devnet(dir, nodes);
    let vendor = nest_host::crypto::SecretKey::read(&devnet.vendor_key).expect("vendor key");
    let package = dir.join("packages").join(plugin.lib_name);
    super::pack_crate(plugin, &package, &vendor);
    let plugin_table = format!("[[plugin]]\nid = \"radio\"\npackage = \"{}\"\n\n", package.display());
    add_radio(&devnet, &plugin_table, "radio", radio_id, config);
    devnet
}

/// Writes a devnet whose first node runs the devnet's own radio plugin `plugin_id`
/// (`sim`, `udp`, `mqtt`) as radio `radio_id` with `config`.
pub fn devnet_with_own_radio(dir: &Path, nodes: usize, plugin_id: &str, radio_id: &str, config: &str) -> Devnet {
    let devnet = funded_devnet(dir, nodes);
    add_radio(&devnet, "", plugin_id, radio_id, config);
    devnet
}

/// A devnet of `nodes` nodes (one authority, 200 ms blocks) whose node accounts can pay
/// for anchors.
pub fn funded_devnet(dir: &Path, nodes: usize) -> Devnet {
    let allocations = nest_host::devices::devnet::node_allocations(dir, nodes).expect("node keys");
    write_devnet_nodes(dir, 200, allocations, nodes, 1)
}

/// Puts `plugin_table` and a `[[radio]]` table before the first node's chain.
fn add_radio(devnet: &Devnet, plugin_table: &str, plugin_id: &str, radio_id: &str, config: &str) {
    let radio = format!("[[radio]]\nid = \"{radio_id}\"\nplugin = \"{plugin_id}\"\nconfig = {config}\n\n");
    let text = std::fs::read_to_string(&devnet.manifest).expect("manifest");
    let (before_chain, chain) = text.split_at(text.find("[[chain]]").expect("a chain table"));
    std::fs::write(&devnet.manifest, format!("{before_chain}{plugin_table}{radio}{chain}")).expect("write manifest");
}

/// The admin token of the node started from `manifest`.
pub fn admin_token(manifest: &Path) -> String {
    let path = manifest.parent().expect("node dir").join("data/api.token");
    std::fs::read_to_string(path).expect("token file").trim().to_string()
}

/// Sends `frame` through the node's radio `radio` (admin route), as if received back.
pub fn radio_send(node: &NodeProcess, token: &str, radio: &str, link_address: &str, frame: &[u8]) {
    let url = format!("{}/v1/admin/radios/{radio}/send", node.url);
    let body = serde_json::json!({ "link_address": link_address, "frame_hex": hex::encode(frame) });
    ureq::post(&url)
        .set("authorization", &format!("Bearer {token}"))
        .send_json(body)
        .unwrap_or_else(|e| panic!("radio send: {e}"));
}

/// The link counters of radio `radio` on `node`.
pub fn link_stats(node: &NodeProcess, radio: &str) -> Value {
    radio_status(node, radio)["link"].clone()
}

/// Frames rejected for `reason` on radio `radio`.
pub fn rejected(node: &NodeProcess, radio: &str, reason: &str) -> u64 {
    link_stats(node, radio)["rejected_by_reason"][reason].as_u64().unwrap_or(0)
}

/// The device as `node` shows it (record on chain, anchors, local readings), if registered.
pub fn device(node: &NodeProcess, uid: &str) -> Option<Value> {
    node.client().get(&format!("/v1/devices/{uid}")).ok()
}

/// Waits until every node shows the device's readings anchored up to `counter`.
pub fn wait_anchored(nodes: &[NodeProcess], uid: &str, counter: u64) {
    wait_until(Duration::from_secs(60), &format!("counter {counter} of {uid} anchored on every node"), || {
        nodes.iter().all(|node| device(node, uid).is_some_and(|d| d["last_counter"].as_u64() >= Some(counter)))
    });
}

/// Runs `send` and waits until radio `radio` of `node` counted one more rejection for `reason`.
pub fn expect_rejected(node: &NodeProcess, radio: &str, what: &str, reason: &str, send: impl FnOnce()) {
    let before = rejected(node, radio, reason);
    send();
    wait_until(Duration::from_secs(15), &format!("{what} rejected as {reason}"), || {
        rejected(node, radio, reason) == before + 1
    });
}

/// Runs the console (`nest --data-dir <node's data> -e code`) against the node started
/// from `manifest`; returns (exit code, stdout, stderr).
pub fn console(manifest: &Path, code: &str) -> (i32, String, String) {
    let data_dir = manifest.parent().expect("node dir").join("data");
    let output = Command::new(super::node::nest_binary())
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["-e", code])
        .output()
        .expect("run nest");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).to_string();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

/// The value of metric `name` on `node`'s `/metrics` whose labels include every one of
/// `labels`, if the node exports it.
pub fn metric(node: &NodeProcess, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = ureq::get(&format!("{}/metrics", node.url)).call().ok()?.into_string().ok()?;
    text.lines().filter(|line| line.starts_with(name)).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let rest = series.strip_prefix(name)?;
        let wanted = labels.iter().all(|(key, value)| rest.contains(&format!("{key}=\"{value}\"")));
        (rest.is_empty() || rest.starts_with('{')).then_some(())?;
        if wanted { value.parse().ok() } else { None }
    })
}

/// Radio `radio` as `node`'s `/v1/radios` shows it.
pub fn radio_status(node: &NodeProcess, radio: &str) -> Value {
    let radios: Value = node.client().get("/v1/radios").expect("radios");
    radios
        .as_array()
        .and_then(|list| list.iter().find(|r| r["id"] == radio))
        .cloned()
        .unwrap_or_else(|| panic!("no radio {radio} in {radios}"))
}
