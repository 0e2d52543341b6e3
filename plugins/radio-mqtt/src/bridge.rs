//! Run the MQTT connection on the driver thread: deliver, acknowledge, reconnect.

use crate::{PACKET_BYTES_MAX, REQUESTS_MAX};
use nest_sdk::{FrameSink, Host, LogLevel, ROption, RadioFrame, SinkStatus};
use rumqttc::{Client, Connection, ConnectionError, Event, MqttOptions, Packet, Publish, QoS, RecvTimeoutError};
use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// Frames received but not yet taken by the sink. The broker sends at most its
/// in-flight window (mosquitto: 20) of unacknowledged QoS 1 messages, so this is a
/// safety bound, not a working size.
pub const HELD_FRAMES_MAX: usize = 1024;
/// Longest a connection attempt (TCP and CONNACK) may take.
const CONNECT_TIMEOUT_S: u64 = 3;
/// How long one poll waits while connecting: a connection attempt cut short by the
/// poll's timeout would start over, so it outlasts the attempt.
const CONNECT_POLL_MS: u64 = CONNECT_TIMEOUT_S * 1000 + 500;
/// How long one poll of the connection waits when nothing is held.
const IDLE_POLL_MS: u64 = 100;
/// How long one poll waits while a frame is held for a full sink.
const RETRY_POLL_MS: u64 = 10;

/// What the bridge needs from the config.
pub struct BridgeOptions {
    pub broker_host: String,
    pub broker_port: u16,
    pub client_id: String,
    pub up_topic: String,
    pub frame_bytes_max: usize,
    pub keep_alive_s: u64,
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
}

/// The level of `filter` that names the device (its first `+`), or `None` for the whole topic.
pub fn device_level(filter: &str) -> Result<Option<usize>, String> {
    let levels: Vec<&str> = filter.split('/').collect();
    if filter.is_empty() || levels.iter().any(|l| l.contains(['+', '#']) && l.len() > 1) {
        return Err(format!("{filter:?} is not a valid topic filter"));
    }
    if levels[..levels.len() - 1].contains(&"#") {
        return Err(format!("{filter:?}: # must be the last level"));
    }
    Ok(levels.iter().position(|l| *l == "+"))
}

/// The MQTT connection and what it feeds.
pub struct Bridge {
    options: BridgeOptions,
    device_level: Option<usize>,
    client: Client,
    connection: Connection,
    sink: FrameSink,
    host: Host,
    stop: Arc<AtomicBool>,
    held: VecDeque<Publish>,
    reconnect_ms: u64,
    connected: bool,
    dropped_oversized: u64,
}

impl Bridge {
    /// Builds the client (no connection yet); returns the bridge and a client handle for commands.
    pub fn new(
        options: BridgeOptions,
        sink: FrameSink,
        host: Host,
        stop: Arc<AtomicBool>,
    ) -> Result<(Self, Client), String> {
        let device_level = device_level(&options.up_topic)?;
        let mut mqtt = MqttOptions::new(options.client_id.clone(), options.broker_host.clone(), options.broker_port);
        mqtt.set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(Duration::from_secs(options.keep_alive_s))
            .set_max_packet_size(PACKET_BYTES_MAX, PACKET_BYTES_MAX);
        let (client, mut connection) = Client::new(mqtt, REQUESTS_MAX);
        let mut network = connection.eventloop.network_options();
        network.set_connection_timeout(CONNECT_TIMEOUT_S);
        connection.eventloop.set_network_options(network);
        let handle = client.clone();
        let reconnect_ms = options.reconnect_min_ms;
        let bridge = Self {
            options,
            device_level,
            client,
            connection,
            sink,
            host,
            stop,
            held: VecDeque::new(),
            reconnect_ms,
            connected: false,
            dropped_oversized: 0,
        };
        Ok((bridge, handle))
    }

    /// Runs until stopped; a panic is logged instead of tearing the node down.
    pub fn run_contained(mut self) {
        let host = self.host.clone();
        nest_sdk::radio::run_contained(&host, "radio-mqtt", || self.run());
    }

    fn run(&mut self) {
        self.host.log(
            LogLevel::Info,
            &format!(
                "MQTT bridge to {}:{} as {:?}",
                self.options.broker_host, self.options.broker_port, self.options.client_id
            ),
        );
        while !self.stop.load(Ordering::SeqCst) {
            if !self.offer_held() {
                return;
            }
            let wait_ms = match (self.connected, self.held.is_empty()) {
                (false, _) => CONNECT_POLL_MS,
                (true, true) => IDLE_POLL_MS,
                (true, false) => RETRY_POLL_MS,
            };
            match self.connection.recv_timeout(Duration::from_millis(wait_ms)) {
                Ok(Ok(event)) => self.on_event(event),
                Ok(Err(error)) => self.on_connection_lost(error),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Offers held frames to the sink in order, acknowledging each one taken; false once the host is gone.
    fn offer_held(&mut self) -> bool {
        while let Some(publish) = self.held.front() {
            let frame = RadioFrame {
                link_address: self.link_address(&publish.topic).into(),
                payload: publish.payload.to_vec().into(),
                rssi_dbm: ROption::RNone,
            };
            match self.sink.deliver(frame) {
                SinkStatus::Accepted => {
                    self.ack(publish);
                    self.held.pop_front();
                }
                // Not acknowledged: the broker keeps it; offered again after the next poll.
                SinkStatus::Full => return true,
                SinkStatus::Closed => return false,
            }
        }
        true
    }

    fn ack(&self, publish: &Publish) {
        if let Err(error) = self.client.try_ack(publish) {
            // The frame is delivered; without the ack the broker redelivers it, which
            // the node's replay check absorbs.
            self.host.log(LogLevel::Warn, &format!("cannot queue the ack of {}: {error}", publish.topic));
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Packet::Publish(publish)) => self.on_publish(publish),
            Event::Incoming(Packet::ConnAck(ack)) => {
                self.connected = true;
                self.reconnect_ms = self.options.reconnect_min_ms;
                self.host.log(LogLevel::Info, &format!("MQTT connected (session present: {})", ack.session_present));
                // Also when the session is present: the filter may have changed in the
                // config, and subscribing again to the same filter keeps its queue.
                if let Err(error) = self.client.try_subscribe(self.options.up_topic.as_str(), QoS::AtLeastOnce) {
                    self.host.log(LogLevel::Error, &format!("cannot subscribe {}: {error}", self.options.up_topic));
                }
            }
            Event::Incoming(Packet::SubAck(_)) => {
                self.host.log(LogLevel::Info, &format!("MQTT subscribed to {}", self.options.up_topic));
            }
            _ => {}
        }
    }

    fn on_publish(&mut self, publish: Publish) {
        if publish.payload.len() > self.options.frame_bytes_max {
            self.dropped_oversized += 1;
            self.sink.skipped("oversized", 1);
            self.host.log(
                LogLevel::Warn,
                &format!(
                    "dropped a {}-byte frame on {} (limit {}); {} dropped so far",
                    publish.payload.len(),
                    publish.topic,
                    self.options.frame_bytes_max,
                    self.dropped_oversized
                ),
            );
            // Acknowledged so that it is not redelivered forever.
            self.ack(&publish);
            return;
        }
        if self.held.len() >= HELD_FRAMES_MAX {
            // Left unacknowledged: the broker redelivers it on the next session.
            self.host
                .log(LogLevel::Warn, &format!("{HELD_FRAMES_MAX} frames held; not taking one on {}", publish.topic));
            return;
        }
        self.held.push_back(publish);
    }

    fn on_connection_lost(&mut self, error: ConnectionError) {
        if self.connected {
            self.host.log(LogLevel::Warn, &format!("MQTT broker connection lost: {error}; reconnecting"));
        } else {
            self.host.log(LogLevel::Debug, &format!("MQTT connect failed: {error}; retry in {} ms", self.reconnect_ms));
        }
        self.connected = false;
        // Unacknowledged frames come again from the broker with the resumed session.
        self.held.clear();
        self.sleep_unless_stopped(self.reconnect_ms);
        self.reconnect_ms = (self.reconnect_ms * 2).min(self.options.reconnect_max_ms);
    }

    fn sleep_unless_stopped(&self, total_ms: u64) {
        let mut left_ms = total_ms;
        while left_ms > 0 && !self.stop.load(Ordering::SeqCst) {
            let step = left_ms.min(IDLE_POLL_MS);
            std::thread::sleep(Duration::from_millis(step));
            left_ms -= step;
        }
    }

    /// The device's link address: the topic level under the filter's `+`, else the topic.
    fn link_address(&self, topic: &str) -> String {
        self.device_level.and_then(|level| topic.split('/').nth(level)).unwrap_or(topic).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_levels() {
        assert_eq!(device_level("nest/devices/+/up"), Ok(Some(2)));
        assert_eq!(device_level("plant/#"), Ok(None));
        assert_eq!(device_level("a/b"), Ok(None));
        assert!(device_level("a/#/b").is_err());
        assert!(device_level("a/x+/b").is_err());
        assert!(device_level("").is_err());
    }
}
