//! Give a devnet live devices: a simulated radio on node-1 and its devices registered on
//! chain by the faucet when `nestd up` starts, and a UDP radio on node-1 that takes the
//! frames `nestd device send` sends, so a device made by hand reaches the chain too.
//!
//! The keys of radio-sim's devices follow from its config (see the plugin's `identity`
//! module): device `i` has hardware id `<prefix><i>` and the P-256 scalar
//! `SHA-256("nest/radio-sim/device-key/v1\0" ‖ key_seed ‖ 0x00 ‖ i as u32 LE ‖ attempt
//! as u32 LE)` for the first attempt that is a valid scalar, so the devnet derives the
//! same public keys here and registers them.

use super::keys::DeviceKey;
use crate::api::SubmitAnswer;
use crate::client::Client;
use crate::crypto::{SecretKey, sha256_parts};
use crate::ledger::device::DeviceTx;
use crate::ledger::tx::{SignedTx, TxBody, UnsignedTx, gas_of};
use crate::node::{AccountView, status::NodeStatus};
use nest_sdk::{Hash32, PublicKey, device::device_uid};
use std::{path::Path, time::Duration};

/// Balance given at genesis to each node's own account, which pays its anchor fees.
pub const NODE_BALANCE: u64 = 1_000_000_000;

/// Genesis allocations that fund the node accounts of a devnet of `nodes` nodes in `dir`:
/// the node keys are created now where missing (the devnet writer keeps existing keys),
/// so the nodes can pay for the anchors of their devices' readings.
pub fn node_allocations(dir: &Path, nodes: usize) -> Result<Vec<(PublicKey, u64)>, String> {
    let mut allocations = Vec::with_capacity(nodes);
    for index in 1..=nodes.max(1) {
        let node_dir = dir.join(format!("node-{index}"));
        std::fs::create_dir_all(&node_dir).map_err(|e| format!("{}: {e}", node_dir.display()))?;
        let path = node_dir.join("node.key");
        let key = if path.exists() {
            SecretKey::read(&path).map_err(|e| e.to_string())?
        } else {
            let key = SecretKey::generate().map_err(|e| e.to_string())?;
            key.write(&path).map_err(|e| e.to_string())?;
            key
        };
        allocations.push((key.public_key(), NODE_BALANCE));
    }
    Ok(allocations)
}

/// Simulated devices on a devnet's node-1.
pub const SIM_DEVICES: u32 = 4;
/// Seed of their keys.
pub const SIM_KEY_SEED: &str = "nest-devnet";
/// Prefix of their hardware ids.
pub const SIM_HARDWARE_ID_PREFIX: &str = "sim-device-";
/// Time between two readings of one device.
pub const SIM_READING_INTERVAL_MS: u64 = 5_000;
/// Radio profile of the simulator: BLE has no duty-cycle limit, so every reading goes on
/// the air every [`SIM_READING_INTERVAL_MS`] (1 % are lost). At LoRa's 1 % duty cycle a
/// 134-byte reading (196 ms of air time at SF7) fits only every 20 s: at 5 s three
/// readings in four would be skipped.
pub const SIM_PROFILE: &str = "ble";
/// Id of node-1's MQTT radio, with `nestd up --mqtt <broker>`.
pub const MQTT_RADIO_ID: &str = "mqtt";
/// Id of node-1's UDP radio (`[[radio]] id`), the one `nestd device send` reaches.
pub const UDP_RADIO_ID: &str = "udp";
/// Domain of radio-sim's key derivation.
const SIM_KEY_DOMAIN: &[u8] = b"nest/radio-sim/device-key/v1\0";
/// How long the registrations may take to commit.
const REGISTER_TIMEOUT_S: u64 = 60;

/// The key of radio-sim's device `index` under `key_seed`.
pub fn sim_device_key(key_seed: &str, index: u32) -> DeviceKey {
    (0u32..)
        .find_map(|attempt| {
            let scalar = sha256_parts(&[
                SIM_KEY_DOMAIN,
                key_seed.as_bytes(),
                &[0],
                &index.to_le_bytes(),
                &attempt.to_le_bytes(),
            ]);
            DeviceKey::from_scalar(&scalar.0)
        })
        .expect("a valid P-256 scalar turns up within a few attempts")
}

/// Adds the simulated radio (`[[radio]] id = "sim"`) to a devnet node's manifest.
pub fn add_sim_radio(manifest: &Path) -> Result<(), String> {
    let table = format!(
        "\n# Simulated devices (registered on chain by `nestd up`).\n\
         [[radio]]\nid = \"sim\"\nplugin = \"sim\"\nconfig = {{ profile = \"{SIM_PROFILE}\", devices = {SIM_DEVICES}, \
         reading_interval_ms = {SIM_READING_INTERVAL_MS}, key_seed = \"{SIM_KEY_SEED}\", \
         hardware_id_prefix = \"{SIM_HARDWARE_ID_PREFIX}\" }}\n"
    );
    append(manifest, &table)
}

/// Appends `text` to the manifest file.
fn append(manifest: &Path, text: &str) -> Result<(), String> {
    let mut file =
        std::fs::OpenOptions::new().append(true).open(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(|e| format!("{}: {e}", manifest.display()))
}

/// Adds a UDP radio (`[[radio]] id = "udp"`) on a free 127.0.0.1 port to a devnet node's
/// manifest; returns the address it receives frames on.
pub fn add_udp_radio(manifest: &Path) -> Result<std::net::SocketAddr, String> {
    // Bound and released: the node binds it right after, as the devnet's TCP ports.
    let address = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .map_err(|e| format!("no free UDP port on 127.0.0.1: {e}"))?;
    let table = format!(
        "\n# Frames sent with `nestd device send --to {address} <frame file>`.\n\
         [[radio]]\nid = \"{UDP_RADIO_ID}\"\nplugin = \"udp\"\nconfig = {{ bind = \"{address}\" }}\n"
    );
    append(manifest, &table)?;
    Ok(address)
}

/// Adds node-1's radios to its manifest: the simulated devices, the UDP radio and, with a
/// broker (`host:port`), an MQTT radio on it; returns the UDP radio's address.
pub fn add_devnet_radios(manifest: &Path, mqtt_broker: Option<&str>) -> Result<std::net::SocketAddr, String> {
    add_sim_radio(manifest)?;
    if let Some(broker) = mqtt_broker {
        let table = format!(
            "\n# Frames published to nest/devices/<device>/up on the broker.\n\
             [[radio]]\nid = \"{MQTT_RADIO_ID}\"\nplugin = \"mqtt\"\n\
             config = {{ broker = \"{broker}\", client_id = \"nest-devnet-node-1\" }}\n"
        );
        append(manifest, &table)?;
    }
    add_udp_radio(manifest)
}

/// Registers the simulated devices not yet on chain, owned by the faucet; waits until
/// they are committed. Returns how many it registered.
pub fn register_sim_devices(node_url: &str, faucet_key: &Path) -> Result<usize, String> {
    let devices: Vec<(String, Vec<u8>)> = (0..SIM_DEVICES)
        .map(|index| {
            let hardware_id = format!("{SIM_HARDWARE_ID_PREFIX}{index}");
            (hardware_id, sim_device_key(SIM_KEY_SEED, index).public_key().to_vec())
        })
        .collect();
    register_devices(node_url, faucet_key, &devices, &format!("sim/{SIM_PROFILE}"))
}

/// Registers the devices (hardware id, public key) not yet on chain, owned by the key
/// in `owner_key`, and waits until they are committed. Returns how many it registered.
pub fn register_devices(
    node_url: &str,
    owner_key: &Path,
    devices: &[(String, Vec<u8>)],
    class: &str,
) -> Result<usize, String> {
    let client = Client::new(node_url);
    let owner = SecretKey::read(owner_key).map_err(|e| e.to_string())?;
    let status: NodeStatus = client.get("/v1/status")?;
    let chain = status.chains.first().ok_or("the node has no chain")?;
    let chain_id = chain.id.clone();
    let account: AccountView = client.get(&format!("/v1/chains/{chain_id}/accounts/{}", owner.public_key()))?;
    let mut nonce = account.next_nonce;
    let mut last: Option<SignedTx> = None;
    let mut registered = 0;
    for (hardware_id, public_key) in devices {
        let uid = Hash32(device_uid(hardware_id.as_bytes()));
        if client.get::<serde_json::Value>(&format!("/v1/devices/{uid}")).is_ok() {
            continue;
        }
        let body =
            TxBody::Device(DeviceTx::Register { device_uid: uid, public_key: public_key.clone(), class: class.into() });
        let fee = gas_of(&body).saturating_mul(chain.gas_price);
        let tx = UnsignedTx { chain: chain.genesis_hash, from: owner.public_key(), nonce, fee, body }.sign(&owner);
        let answer: SubmitAnswer = client
            .post(&format!("/v1/chains/{chain_id}/txs"), &serde_json::json!({ "tx": hex::encode(tx.encode()) }))?;
        match answer.results.first() {
            Some(result) if result.status == "accepted" => {}
            other => return Err(format!("registering {hardware_id}: {:?}", other.and_then(|r| r.reason.clone()))),
        }
        nonce += 1;
        registered += 1;
        last = Some(tx);
    }
    let Some(last) = last else { return Ok(0) };
    crate::wallet::wait_committed(&client, &chain_id, &last, Duration::from_secs(REGISTER_TIMEOUT_S))?;
    Ok(registered)
}
