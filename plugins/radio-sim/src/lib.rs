//! Simulate a radio and its devices: signed readings on LoRa, BLE, ZigBee, NB-IoT or WiFi.
//!
//! The driver's thread runs a [`sim::Simulator`] against a simulated clock (real time
//! times `time_scale`) and delivers the fragments that survive the air to the host's
//! sink when their latency has passed. Device identities are derived from the config
//! (see [`identity`]) so a devnet can register the same devices on chain.

pub mod identity;
pub mod profiles;
pub mod sim;

use nest_sdk::{
    ConfigError, FrameSink, Host, LogLevel, PluginError, ROption, RadioDriver, RadioFrame, RadioInfo, SinkStatus,
};
use serde::Deserialize;
use sim::{SimSettings, SimStats, Simulator, Transmission};
use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// Most simulated devices one radio runs.
pub const DEVICES_MAX: u32 = 10_000;
/// Largest `time_scale`.
pub const TIME_SCALE_MAX: u32 = 100_000;
/// Fragments waiting for their delivery time; beyond it new ones are dropped.
pub const IN_FLIGHT_FRAGMENTS_MAX: usize = 65_536;
/// Devices whose identity is logged at start.
pub const IDENTITIES_LOGGED_MAX: usize = 16;
/// Skip reasons reported to the host ([`FrameSink::skipped`]): a reading the device's
/// duty-cycle budget could not cover,
pub const SKIP_DUTY_CYCLE: &str = "duty_cycle";
/// a reading too large to fragment to the profile's MTU,
pub const SKIP_TOO_LARGE: &str = "frame_too_large";
/// a fragment lost on the air,
pub const SKIP_LOST_ON_AIR: &str = "lost_on_air";
/// a fragment dropped because [`IN_FLIGHT_FRAGMENTS_MAX`] were on their way,
pub const SKIP_IN_FLIGHT_FULL: &str = "in_flight_full";
/// and a fragment the host's queue was too full to take.
pub const SKIP_HOST_QUEUE_FULL: &str = "host_queue_full";
/// Longest the driver thread sleeps before it looks at its stop flag again.
const POLL_MS: u64 = 50;

/// Configuration of the simulated radio.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Profile name: `lora-sf7` … `lora-sf12`, `ble`, `zigbee`, `nb-iot`, `wifi`.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// Devices to simulate.
    #[serde(default = "default_devices")]
    pub devices: u32,
    /// Time between two readings of one device (simulated ms).
    #[serde(default = "default_reading_interval_ms")]
    pub reading_interval_ms: u64,
    /// Bytes of each reading's payload (at most 1024).
    #[serde(default = "default_payload_bytes")]
    pub payload_bytes: u32,
    /// Seed of the loss draws and reading phases.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Device `i`'s hardware id is this prefix followed by `i`.
    #[serde(default = "default_hardware_id_prefix")]
    pub hardware_id_prefix: String,
    /// Seed of the device keys.
    #[serde(default = "default_key_seed")]
    pub key_seed: String,
    /// Replaces the profile's loss, in thousandths.
    #[serde(default)]
    pub loss_permille: Option<u32>,
    /// Replaces the profile's duty cycle, in thousandths.
    #[serde(default)]
    pub duty_cycle_permille: Option<u32>,
    /// Window over which the duty cycle is allowed (ETSI: one hour).
    #[serde(default = "default_duty_cycle_window_ms")]
    pub duty_cycle_window_ms: u64,
    /// Simulated ms per real ms (1: real time).
    #[serde(default = "default_time_scale")]
    pub time_scale: u32,
}

fn default_profile() -> String {
    "lora-sf7".into()
}
fn default_devices() -> u32 {
    4
}
fn default_reading_interval_ms() -> u64 {
    10_000
}
fn default_payload_bytes() -> u32 {
    16
}
fn default_seed() -> u64 {
    1
}
fn default_hardware_id_prefix() -> String {
    "sim-device-".into()
}
fn default_key_seed() -> String {
    "nest-radio-sim".into()
}
fn default_duty_cycle_window_ms() -> u64 {
    3_600_000
}
fn default_time_scale() -> u32 {
    1
}

impl SimConfig {
    /// The simulation settings, with the profile's figures overridden by the config.
    pub fn settings(&self, epoch_ms: u64) -> Result<SimSettings, ConfigError> {
        let mut profile = profiles::profile(&self.profile).ok_or_else(|| {
            ConfigError::new(
                "profile",
                format!("unknown profile {:?}; known: {}", self.profile, profiles::names().join(", ")),
            )
        })?;
        if let Some(loss) = self.loss_permille {
            profile.loss_permille = loss;
        }
        if let Some(duty) = self.duty_cycle_permille {
            profile.duty_cycle_permille = duty;
        }
        Ok(SimSettings {
            profile,
            devices: self.devices,
            reading_interval_ms: self.reading_interval_ms,
            payload_bytes: self.payload_bytes,
            seed: self.seed,
            hardware_id_prefix: self.hardware_id_prefix.clone(),
            key_seed: self.key_seed.clone(),
            duty_cycle_window_ms: self.duty_cycle_window_ms,
            epoch_ms,
        })
    }
}

/// The simulated radio.
pub struct SimRadio {
    config: SimConfig,
    host: Host,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RadioDriver for SimRadio {
    type Config = SimConfig;

    fn check_config(config: &SimConfig) -> Result<(), ConfigError> {
        config.settings(0)?;
        let checks: [(bool, &str, String); 7] = [
            (config.devices <= DEVICES_MAX, "devices", format!("at most {DEVICES_MAX}")),
            (config.reading_interval_ms >= 1, "reading_interval_ms", "must be at least 1".into()),
            (
                config.payload_bytes as usize <= nest_sdk::device::ENVELOPE_PAYLOAD_BYTES_MAX,
                "payload_bytes",
                format!("at most {}", nest_sdk::device::ENVELOPE_PAYLOAD_BYTES_MAX),
            ),
            (config.loss_permille.is_none_or(|l| l <= 1000), "loss_permille", "at most 1000".into()),
            (
                config.duty_cycle_permille.is_none_or(|d| (1..=1000).contains(&d)),
                "duty_cycle_permille",
                "between 1 and 1000".into(),
            ),
            (config.duty_cycle_window_ms >= 1, "duty_cycle_window_ms", "must be at least 1".into()),
            (
                (1..=TIME_SCALE_MAX).contains(&config.time_scale),
                "time_scale",
                format!("between 1 and {TIME_SCALE_MAX}"),
            ),
        ];
        match checks.into_iter().find(|(ok, _, _)| !ok) {
            Some((_, path, message)) => Err(ConfigError::new(path, message)),
            None => Ok(()),
        }
    }

    fn new(config: SimConfig, host: Host) -> Result<Self, PluginError> {
        Ok(Self { config, host, stop: Arc::new(AtomicBool::new(false)), thread: None })
    }

    fn info(&self) -> RadioInfo {
        let profile = self.config.settings(0).map(|s| s.profile).unwrap_or(profiles::PROFILES[0]);
        RadioInfo {
            technology: profile.name.into(),
            mtu_bytes: profile.mtu_bytes,
            bitrate_bps: profile.bitrate_bps,
            duty_cycle_permille: profile.duty_cycle_permille,
        }
    }

    fn start(&mut self, sink: FrameSink) -> Result<(), PluginError> {
        if self.thread.is_some() {
            return Err(PluginError::failed("the simulated radio is already started"));
        }
        let epoch_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let settings = self.config.settings(epoch_ms).map_err(|e| PluginError::failed(e.to_string()))?;
        let simulator = Simulator::new(settings);
        self.log_identities(&simulator);
        let run = SimRun {
            simulator,
            time_scale: u64::from(self.config.time_scale),
            sink,
            host: self.host.clone(),
            stop: Arc::clone(&self.stop),
            in_flight: VecDeque::new(),
            dropped_full: 0,
        };
        self.stop.store(false, Ordering::SeqCst);
        let thread = std::thread::Builder::new()
            .name("radio-sim".into())
            .spawn(move || run.run_contained())
            .map_err(|e| PluginError::failed(format!("cannot start the simulation thread: {e}")))?;
        self.thread = Some(thread);
        Ok(())
    }

    fn send(&mut self, link_address: &str, payload: &[u8]) -> Result<(), PluginError> {
        // Downlink to a simulated device: it exists or not; the device does not answer.
        let index = link_address
            .strip_prefix(self.config.hardware_id_prefix.as_str())
            .and_then(|i| i.parse::<u32>().ok())
            .filter(|i| *i < self.config.devices)
            .ok_or_else(|| PluginError::rejected(format!("no simulated device at {link_address:?}")))?;
        let mtu_bytes = self.info().mtu_bytes;
        nest_sdk::fragment(payload, mtu_bytes, 0).map_err(|e| PluginError::rejected(e.to_string()))?;
        self.host.log(LogLevel::Debug, &format!("downlink of {} bytes to simulated device {index}", payload.len()));
        Ok(())
    }

    fn stop(&mut self) -> Result<(), PluginError> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().map_err(|_| PluginError::failed("the simulation thread panicked"))?;
        }
        Ok(())
    }
}

impl SimRadio {
    /// Logs the first devices' µIDs and public keys, so an operator can register them.
    fn log_identities(&self, simulator: &Simulator) {
        for identity in simulator.identities().take(IDENTITIES_LOGGED_MAX) {
            let line = format!(
                "simulated device {}: uid {} public key {}",
                identity.hardware_id,
                hex(&identity.uid),
                hex(&identity.public_key())
            );
            self.host.log(LogLevel::Info, &line);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Drop for SimRadio {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The state the driver thread owns.
struct SimRun {
    simulator: Simulator,
    time_scale: u64,
    sink: FrameSink,
    host: Host,
    stop: Arc<AtomicBool>,
    in_flight: VecDeque<Transmission>,
    dropped_full: u64,
}

impl SimRun {
    /// Runs the simulation; a panic is logged instead of tearing the node down.
    fn run_contained(mut self) {
        let host = self.host.clone();
        nest_sdk::radio::run_contained(&host, "radio-sim", || self.run());
    }

    fn run(&mut self) {
        let started = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            let now_ms = started.elapsed().as_millis() as u64 * self.time_scale;
            self.take_due(now_ms);
            if !self.deliver_due(now_ms) {
                return;
            }
            let next_ms = [self.simulator.next_reading_ms(), self.in_flight.front().map(|t| t.deliver_at_ms)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(u64::MAX);
            let wait_ms = (next_ms.saturating_sub(now_ms) / self.time_scale).clamp(1, POLL_MS);
            std::thread::sleep(Duration::from_millis(wait_ms));
        }
        let stats = self.simulator.stats();
        self.host.log(
            LogLevel::Info,
            &format!(
                "simulation stopped: {} readings sent, {} skipped for duty cycle, {} too large, {} of {} fragments lost, {} dropped on a full queue",
                stats.readings_sent,
                stats.readings_skipped_duty_cycle,
                stats.readings_skipped_too_large,
                stats.fragments_lost,
                stats.fragments_sent,
                self.dropped_full
            ),
        );
    }

    /// Moves new transmissions into the in-flight queue, kept in delivery order, and
    /// reports to the host what the air and the duty cycle kept from it.
    fn take_due(&mut self, now_ms: u64) {
        let before = self.simulator.stats();
        let transmissions = self.simulator.advance(now_ms);
        self.report_skips(before, self.simulator.stats());
        for transmission in transmissions {
            if self.in_flight.len() >= IN_FLIGHT_FRAGMENTS_MAX {
                self.dropped_full += 1;
                self.sink.skipped(SKIP_IN_FLIGHT_FULL, 1);
                continue;
            }
            let at = self.in_flight.partition_point(|t| t.deliver_at_ms <= transmission.deliver_at_ms);
            self.in_flight.insert(at, transmission);
        }
    }

    /// Tells the host how many readings and fragments did not reach it since `before`.
    fn report_skips(&self, before: SimStats, after: SimStats) {
        let skips = [
            (SKIP_DUTY_CYCLE, after.readings_skipped_duty_cycle - before.readings_skipped_duty_cycle),
            (SKIP_TOO_LARGE, after.readings_skipped_too_large - before.readings_skipped_too_large),
            (SKIP_LOST_ON_AIR, after.fragments_lost - before.fragments_lost),
        ];
        for (reason, frames) in skips.into_iter().filter(|(_, frames)| *frames > 0) {
            self.sink.skipped(reason, frames);
        }
    }

    /// Hands the host every fragment whose time has come; false once the host stopped listening.
    fn deliver_due(&mut self, now_ms: u64) -> bool {
        while self.in_flight.front().is_some_and(|t| t.deliver_at_ms <= now_ms) {
            let Some(transmission) = self.in_flight.pop_front() else { break };
            let frame = RadioFrame {
                link_address: transmission.link_address.into(),
                payload: transmission.bytes.into(),
                rssi_dbm: ROption::RSome(transmission.rssi_dbm),
            };
            match self.sink.deliver(frame) {
                SinkStatus::Accepted => {}
                // A radio cannot hold the air: a frame the host cannot take is lost.
                SinkStatus::Full => {
                    self.dropped_full += 1;
                    self.sink.skipped(SKIP_HOST_QUEUE_FULL, 1);
                }
                SinkStatus::Closed => return false,
            }
        }
        true
    }
}

nest_sdk::export_plugin! {
    name: "radio-sim",
    vendor: "Nest",
    description: "Simulated radio: LoRa, BLE, ZigBee, NB-IoT and WiFi profiles with signed device readings.",
    radio: SimRadio,
}
