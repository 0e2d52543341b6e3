//! Bridge device frames from an MQTT broker to the node, at least once.
//!
//! Devices publish frames to `nest/devices/<device>/up` (the filter is configurable;
//! its `+` level is the device's link address) and the node publishes commands to
//! `nest/devices/<device>/down`. The bridge subscribes with QoS 1 under a fixed client
//! id and a persistent session (`clean_session = false`), and acknowledges a frame
//! only once the host's sink took it: a frame the broker acknowledged to its publisher
//! stays queued at the broker until the node has it, across a broker restart (with
//! broker persistence) or a bridge reconnect. When the sink is full the frame is held
//! and offered again; the broker stops sending once its in-flight window is unacked.
//! A frame may therefore arrive twice (a redelivery after a reconnect); the node's
//! replay check by envelope counter drops the copy.
//!
//! The MQTT client runs on the driver's own thread with its own small runtime. Broker
//! loss is logged and retried with exponential back-off; a panic on the thread is
//! caught and logged, and the node keeps running.

mod bridge;

use bridge::{Bridge, BridgeOptions};
use nest_sdk::{ConfigError, FrameSink, Host, PluginError, RadioDriver, RadioInfo};
use rumqttc::{Client, QoS};
use serde::Deserialize;
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
};

/// Largest MQTT packet the client accepts; a larger one breaks the connection, so
/// brokers should set `message_size_limit` at or below it.
pub const PACKET_BYTES_MAX: usize = 1024 * 1024;
/// Requests (acks, commands) queued towards the client's event loop.
pub const REQUESTS_MAX: usize = 1024;

/// Configuration of the MQTT bridge.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker address, `host:port`.
    pub broker: String,
    /// Fixed client id: the broker keeps this session's queue while the bridge is away.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Topic filter of device frames; its first `+` level is the device's link address.
    #[serde(default = "default_up_topic")]
    pub up_topic: String,
    /// Topic of commands to a device; `{device}` is replaced by its link address.
    #[serde(default = "default_down_topic")]
    pub down_topic: String,
    /// MTU reported by `info()`: the largest frame devices are expected to publish.
    #[serde(default = "default_mtu_bytes")]
    pub mtu_bytes: u32,
    /// Frames larger than this are acknowledged and dropped (logged), not delivered.
    #[serde(default = "default_frame_bytes_max")]
    pub frame_bytes_max: u32,
    /// MQTT keep-alive.
    #[serde(default = "default_keep_alive_s")]
    pub keep_alive_s: u64,
    /// First reconnect delay; doubled after each failure up to `reconnect_max_ms`.
    #[serde(default = "default_reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay.
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
}

fn default_client_id() -> String {
    "nest-gateway".into()
}
fn default_up_topic() -> String {
    "nest/devices/+/up".into()
}
fn default_down_topic() -> String {
    "nest/devices/{device}/down".into()
}
fn default_mtu_bytes() -> u32 {
    2048
}
fn default_frame_bytes_max() -> u32 {
    65_536
}
fn default_keep_alive_s() -> u64 {
    10
}
fn default_reconnect_min_ms() -> u64 {
    100
}
fn default_reconnect_max_ms() -> u64 {
    5_000
}

impl MqttConfig {
    /// Host and port of the broker.
    fn broker_address(&self) -> Result<(String, u16), ConfigError> {
        let (host, port) =
            self.broker.rsplit_once(':').ok_or_else(|| ConfigError::new("broker", "expected host:port"))?;
        let port = port.parse::<u16>().map_err(|e| ConfigError::new("broker", format!("bad port {port:?}: {e}")))?;
        if host.is_empty() {
            return Err(ConfigError::new("broker", "the host is empty"));
        }
        Ok((host.to_string(), port))
    }
}

/// The MQTT bridge.
pub struct MqttRadio {
    config: MqttConfig,
    host: Host,
    client: Option<Client>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RadioDriver for MqttRadio {
    type Config = MqttConfig;

    fn check_config(config: &MqttConfig) -> Result<(), ConfigError> {
        config.broker_address()?;
        if config.client_id.is_empty() || config.client_id.len() > 23 {
            // MQTT 3.1.1 §3.1.3.1: servers must accept 1–23 characters.
            return Err(ConfigError::new("client_id", "must be 1 to 23 characters"));
        }
        bridge::device_level(&config.up_topic).map_err(|m| ConfigError::new("up_topic", m))?;
        if !config.down_topic.contains("{device}") || config.down_topic.contains(['+', '#']) {
            return Err(ConfigError::new("down_topic", "must contain {device} and no wildcard"));
        }
        if config.frame_bytes_max as usize > PACKET_BYTES_MAX / 2 || config.frame_bytes_max == 0 {
            return Err(ConfigError::new("frame_bytes_max", format!("between 1 and {}", PACKET_BYTES_MAX / 2)));
        }
        if config.keep_alive_s < 5 {
            return Err(ConfigError::new("keep_alive_s", "at least 5"));
        }
        if config.reconnect_min_ms == 0 || config.reconnect_max_ms < config.reconnect_min_ms {
            return Err(ConfigError::new("reconnect_max_ms", "reconnect_min_ms ≥ 1 and reconnect_max_ms ≥ it"));
        }
        Ok(())
    }

    fn new(config: MqttConfig, host: Host) -> Result<Self, PluginError> {
        Ok(Self { config, host, client: None, stop: Arc::new(AtomicBool::new(false)), thread: None })
    }

    fn info(&self) -> RadioInfo {
        RadioInfo {
            technology: "mqtt".into(),
            mtu_bytes: self.config.mtu_bytes,
            // The broker link is TCP on a LAN; the figure is nominal.
            bitrate_bps: 100_000_000,
            duty_cycle_permille: 1000,
        }
    }

    fn start(&mut self, sink: FrameSink) -> Result<(), PluginError> {
        if self.thread.is_some() {
            return Err(PluginError::failed("the MQTT bridge is already started"));
        }
        let (broker_host, broker_port) =
            self.config.broker_address().map_err(|e| PluginError::failed(e.to_string()))?;
        let options = BridgeOptions {
            broker_host,
            broker_port,
            client_id: self.config.client_id.clone(),
            up_topic: self.config.up_topic.clone(),
            frame_bytes_max: self.config.frame_bytes_max as usize,
            keep_alive_s: self.config.keep_alive_s,
            reconnect_min_ms: self.config.reconnect_min_ms,
            reconnect_max_ms: self.config.reconnect_max_ms,
        };
        self.stop.store(false, Ordering::SeqCst);
        let (bridge, client) = Bridge::new(options, sink, self.host.clone(), Arc::clone(&self.stop))
            .map_err(|m| PluginError::failed(format!("cannot set up the MQTT client: {m}")))?;
        let thread = std::thread::Builder::new()
            .name("radio-mqtt".into())
            .spawn(move || bridge.run_contained())
            .map_err(|e| PluginError::failed(format!("cannot start the MQTT thread: {e}")))?;
        self.client = Some(client);
        self.thread = Some(thread);
        Ok(())
    }

    fn send(&mut self, link_address: &str, payload: &[u8]) -> Result<(), PluginError> {
        if link_address.is_empty() || link_address.contains(['/', '+', '#']) {
            return Err(PluginError::rejected(format!("{link_address:?} is not a device topic level")));
        }
        let client = self.client.as_ref().ok_or_else(|| PluginError::failed("the MQTT bridge is not started"))?;
        let topic = self.config.down_topic.replace("{device}", link_address);
        client
            .try_publish(topic.as_str(), QoS::AtLeastOnce, false, payload.to_vec())
            .map_err(|e| PluginError::failed(format!("cannot queue the command to {topic}: {e}")))
    }

    fn stop(&mut self) -> Result<(), PluginError> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(client) = self.client.take() {
            let _ = client.try_disconnect();
        }
        if let Some(thread) = self.thread.take() {
            thread.join().map_err(|_| PluginError::failed("the MQTT thread panicked"))?;
        }
        Ok(())
    }
}

impl Drop for MqttRadio {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

nest_sdk::export_plugin! {
    name: "radio-mqtt",
    vendor: "Nest",
    description: "MQTT bridge: device frames from a broker's topics, commands published back, at-least-once.",
    radio: MqttRadio,
}
