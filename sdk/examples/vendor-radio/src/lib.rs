//! Carry device frames as UDP datagrams: a Nest radio driver.
//!
//! Every datagram received on `listen` becomes one frame whose link address is the
//! sender's `ip:port`; `send` sends one datagram to an `ip:port` link address.

use nest_sdk::serde::Deserialize;
use nest_sdk::{
    ConfigError, FrameSink, Host, LogLevel, PluginError, ROption, RadioDriver, RadioFrame,
    RadioInfo, SinkStatus,
};
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Largest UDP payload over IPv4.
const DATAGRAM_BYTES_MAX: u32 = 65_507;
/// How often the receive thread looks at its stop flag.
const RECEIVE_POLL_MS: u64 = 200;

/// The `config` table of a `[[radio]]` that uses this driver.
#[derive(Debug, Deserialize)]
#[serde(crate = "nest_sdk::serde", deny_unknown_fields)]
pub struct UdpConfig {
    /// Address to receive datagrams on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Largest frame sent or delivered; longer datagrams are dropped.
    #[serde(default = "default_mtu_bytes")]
    pub mtu_bytes: u32,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7400))
}

fn default_mtu_bytes() -> u32 {
    1200
}

/// A radio whose air is a UDP socket.
pub struct UdpRadio {
    config: UdpConfig,
    host: Host,
    socket: Option<UdpSocket>,
    running: Arc<AtomicBool>,
    receiver: Option<JoinHandle<()>>,
}

impl RadioDriver for UdpRadio {
    type Config = UdpConfig;

    fn check_config(config: &UdpConfig) -> Result<(), ConfigError> {
        if config.mtu_bytes == 0 || config.mtu_bytes > DATAGRAM_BYTES_MAX {
            return Err(ConfigError::new(
                "mtu_bytes",
                format!("must be between 1 and {DATAGRAM_BYTES_MAX}"),
            ));
        }
        Ok(())
    }

    fn new(config: UdpConfig, host: Host) -> Result<Self, PluginError> {
        // No socket, no thread yet: `nestd check` builds instances too.
        Ok(Self {
            config,
            host,
            socket: None,
            running: Arc::new(AtomicBool::new(false)),
            receiver: None,
        })
    }

    fn info(&self) -> RadioInfo {
        RadioInfo {
            technology: "udp".into(),
            mtu_bytes: self.config.mtu_bytes,
            bitrate_bps: 100_000_000,
            duty_cycle_permille: 1000,
        }
    }

    fn start(&mut self, sink: FrameSink) -> Result<(), PluginError> {
        if self.receiver.is_some() {
            return Err(PluginError::failed("the radio is already started"));
        }
        let failed =
            |what: &str, error: std::io::Error| PluginError::failed(format!("{what}: {error}"));
        let socket = UdpSocket::bind(self.config.listen)
            .map_err(|e| failed(&format!("bind {}", self.config.listen), e))?;
        socket
            .set_read_timeout(Some(Duration::from_millis(RECEIVE_POLL_MS)))
            .map_err(|e| failed("set timeout", e))?;
        let receive_socket = socket.try_clone().map_err(|e| failed("clone socket", e))?;
        self.running.store(true, Ordering::SeqCst);
        let (running, host, mtu_bytes) = (
            self.running.clone(),
            self.host.clone(),
            self.config.mtu_bytes as usize,
        );
        let thread = std::thread::Builder::new()
            .name("vendor-radio".into())
            .spawn(move || receive(&receive_socket, &sink, &running, &host, mtu_bytes))
            .map_err(|e| failed("spawn receive thread", e))?;
        self.socket = Some(socket);
        self.receiver = Some(thread);
        Ok(())
    }

    fn send(&mut self, link_address: &str, payload: &[u8]) -> Result<(), PluginError> {
        let to: SocketAddr = link_address.parse().map_err(|_| {
            PluginError::rejected(format!("`{link_address}` is not an ip:port address"))
        })?;
        if payload.len() > self.config.mtu_bytes as usize {
            return Err(PluginError::rejected(format!(
                "{} bytes exceed the MTU",
                payload.len()
            )));
        }
        let socket = self
            .socket
            .as_ref()
            .ok_or_else(|| PluginError::failed("the radio is not started"))?;
        socket
            .send_to(payload, to)
            .map_err(|e| PluginError::failed(format!("send to {to}: {e}")))?;
        Ok(())
    }

    fn stop(&mut self) -> Result<(), PluginError> {
        self.running.store(false, Ordering::SeqCst);
        let joined = self.receiver.take().map_or(Ok(()), JoinHandle::join);
        self.socket = None;
        joined.map_err(|_| PluginError::failed("the receive thread panicked"))
    }
}

impl Drop for UdpRadio {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The receive thread: datagrams become frames until `running` turns false.
fn receive(
    socket: &UdpSocket,
    sink: &FrameSink,
    running: &AtomicBool,
    host: &Host,
    mtu_bytes: usize,
) {
    let mut buffer = vec![0u8; DATAGRAM_BYTES_MAX as usize];
    let mut dropped: u64 = 0;
    while running.load(Ordering::SeqCst) {
        let (length, from) = match socket.recv_from(&mut buffer) {
            Ok(received) => received,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                continue;
            }
            Err(error) => {
                host.log(LogLevel::Warn, &format!("receive failed: {error}"));
                std::thread::sleep(Duration::from_millis(RECEIVE_POLL_MS));
                continue;
            }
        };
        if length > mtu_bytes {
            dropped += 1;
            continue;
        }
        let frame = RadioFrame {
            link_address: from.to_string().into(),
            payload: buffer[..length].to_vec().into(),
            rssi_dbm: ROption::RNone,
        };
        match sink.deliver(frame) {
            SinkStatus::Accepted => {}
            SinkStatus::Full => dropped += 1,
            SinkStatus::Closed => break,
        }
    }
    if dropped > 0 {
        host.log(
            LogLevel::Info,
            &format!("dropped {dropped} frame(s): over the MTU or host queue full"),
        );
    }
}

nest_sdk::export_plugin! {
    name: "vendor-radio",
    vendor: "Acme Devices",
    description: "Device frames as UDP datagrams: one datagram, one frame.",
    radio: UdpRadio,
}

#[cfg(test)]
mod tests {
    use super::*;
    use nest_sdk::config::parse;
    use nest_sdk::radio::FrameSinkFfi;
    use nest_sdk::testing::LocalHost;
    use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

    /// A bounded sink that hands frames to the test.
    #[derive(Clone)]
    struct Collect(SyncSender<RadioFrame>);

    impl FrameSinkFfi for Collect {
        fn deliver(&self, frame: RadioFrame) -> SinkStatus {
            match self.0.try_send(frame) {
                Ok(()) => SinkStatus::Accepted,
                Err(TrySendError::Full(_)) => SinkStatus::Full,
                Err(TrySendError::Disconnected(_)) => SinkStatus::Closed,
            }
        }
    }

    fn started_radio() -> (UdpRadio, Receiver<RadioFrame>) {
        let config = parse(r#"{"listen": "127.0.0.1:0"}"#).unwrap();
        let mut radio = UdpRadio::new(config, LocalHost::from_seed([7; 32]).host()).unwrap();
        let (frames_in, frames) = sync_channel(8);
        radio.start(FrameSink::new(Collect(frames_in))).unwrap();
        (radio, frames)
    }

    #[test]
    fn sent_frame_reaches_the_device_and_its_answer_becomes_a_frame() {
        let (mut radio, frames) = started_radio();
        let device = UdpSocket::bind("127.0.0.1:0").unwrap();
        device
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let device_address = device.local_addr().unwrap().to_string();

        radio.send(&device_address, b"ping").unwrap();
        let mut buffer = [0u8; 16];
        let (length, radio_address) = device.recv_from(&mut buffer).unwrap();
        assert_eq!(&buffer[..length], b"ping");

        device.send_to(b"pong", radio_address).unwrap();
        let frame = frames.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(frame.payload.as_slice(), b"pong");
        assert_eq!(frame.link_address.as_str(), device_address);
        radio.stop().unwrap();
    }

    #[test]
    fn bad_input_is_rejected_not_panicked_on() {
        let (mut radio, _frames) = started_radio();
        let error = radio.send("not an address", b"x").unwrap_err();
        assert!(matches!(error, PluginError::Rejected { .. }), "{error}");
        let error = radio.send("127.0.0.1:9", &[0; 1201]).unwrap_err();
        assert!(matches!(error, PluginError::Rejected { .. }), "{error}");
    }

    #[test]
    fn config_errors_name_the_key() {
        let error = parse::<UdpConfig>(r#"{"mtu_bytes": "big"}"#).unwrap_err();
        assert_eq!(error.path, "mtu_bytes");
        let config: UdpConfig = parse(r#"{"mtu_bytes": 0}"#).unwrap();
        assert_eq!(
            UdpRadio::check_config(&config).unwrap_err().path,
            "mtu_bytes"
        );
        let defaults: UdpConfig = parse("{}").unwrap();
        assert_eq!(defaults.listen.port(), 7400);
    }
}
