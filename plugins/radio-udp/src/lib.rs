//! Carry device frames as UDP datagrams on a local network, with multicast discovery.
//!
//! Every datagram received on the unicast socket is one frame (or one fragment, see
//! `nest_sdk::fragment`) from the sender's `ip:port`, which is its link address.
//! `send` fragments a frame to the MTU and sends each fragment as a datagram.
//!
//! Discovery, when configured: the driver joins a multicast group and
//! - answers a probe datagram `NEST-DISCOVER/1` with a unicast
//!   `NEST-GATEWAY/1 <ip:port> <mtu>` naming its unicast socket,
//! - multicasts the same announcement every `announce_interval_ms`,
//!
//! so a device on IP finds the gateway without configuration.

use nest_sdk::{
    ConfigError, FrameSink, Host, LogLevel, PluginError, ROption, RadioDriver, RadioFrame, RadioInfo, SinkStatus,
};
use serde::Deserialize;
use socket2::{Domain, Protocol, Socket, Type};
use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// The probe a device multicasts to find gateways.
pub const DISCOVERY_PROBE: &[u8] = b"NEST-DISCOVER/1";
/// The first word of a gateway's announcement.
pub const ANNOUNCE_PREFIX: &str = "NEST-GATEWAY/1";
/// Largest UDP payload over IPv4.
pub const DATAGRAM_BYTES_MAX: u32 = 65_507;
/// How often the receiving threads look at their stop flag.
const POLL_MS: u64 = 100;

/// Configuration of the UDP radio.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpConfig {
    /// Unicast address to receive frames on, `ip:port`.
    pub bind: String,
    /// Largest datagram sent; larger frames go as fragments.
    #[serde(default = "default_mtu_bytes")]
    pub mtu_bytes: u32,
    /// Link rate reported by `info()` (the LAN's, not measured).
    #[serde(default = "default_bitrate_bps")]
    pub bitrate_bps: u64,
    /// Multicast discovery; off when absent.
    #[serde(default)]
    pub discovery: Option<DiscoveryConfig>,
}

/// Multicast discovery settings.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// IPv4 multicast group.
    #[serde(default = "default_group")]
    pub group: Ipv4Addr,
    /// UDP port of the group.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Address of the interface to join the group on (`127.0.0.1` for the loopback).
    #[serde(default = "default_interface")]
    pub interface: Ipv4Addr,
    /// Time between two multicast announcements.
    #[serde(default = "default_announce_interval_ms")]
    pub announce_interval_ms: u64,
}

fn default_mtu_bytes() -> u32 {
    1200
}
fn default_bitrate_bps() -> u64 {
    100_000_000
}
fn default_group() -> Ipv4Addr {
    Ipv4Addr::new(239, 255, 78, 83)
}
fn default_port() -> u16 {
    47_883
}
fn default_interface() -> Ipv4Addr {
    Ipv4Addr::LOCALHOST
}
fn default_announce_interval_ms() -> u64 {
    5_000
}

/// The UDP radio.
pub struct UdpRadio {
    config: UdpConfig,
    host: Host,
    socket: Option<Arc<UdpSocket>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    message_id: AtomicU16,
}

impl RadioDriver for UdpRadio {
    type Config = UdpConfig;

    fn check_config(config: &UdpConfig) -> Result<(), ConfigError> {
        config.bind.parse::<SocketAddr>().map_err(|e| ConfigError::new("bind", format!("not an ip:port: {e}")))?;
        if !(8..=DATAGRAM_BYTES_MAX).contains(&config.mtu_bytes) {
            return Err(ConfigError::new("mtu_bytes", format!("between 8 and {DATAGRAM_BYTES_MAX}")));
        }
        if let Some(discovery) = &config.discovery {
            if !discovery.group.is_multicast() {
                return Err(ConfigError::new(
                    "discovery.group",
                    format!("{} is not a multicast address", discovery.group),
                ));
            }
            if discovery.announce_interval_ms == 0 {
                return Err(ConfigError::new("discovery.announce_interval_ms", "must be at least 1"));
            }
        }
        Ok(())
    }

    fn new(config: UdpConfig, host: Host) -> Result<Self, PluginError> {
        Ok(Self {
            config,
            host,
            socket: None,
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            message_id: AtomicU16::new(0),
        })
    }

    fn info(&self) -> RadioInfo {
        RadioInfo {
            technology: "udp".into(),
            mtu_bytes: self.config.mtu_bytes,
            bitrate_bps: self.config.bitrate_bps,
            duty_cycle_permille: 1000,
        }
    }

    fn start(&mut self, sink: FrameSink) -> Result<(), PluginError> {
        if self.socket.is_some() {
            return Err(PluginError::failed("the UDP radio is already started"));
        }
        let socket = UdpSocket::bind(&self.config.bind)
            .map_err(|e| PluginError::failed(format!("cannot bind {}: {e}", self.config.bind)))?;
        socket.set_read_timeout(Some(Duration::from_millis(POLL_MS))).map_err(io_failed)?;
        let local = socket.local_addr().map_err(io_failed)?;
        let socket = Arc::new(socket);
        self.stop.store(false, Ordering::SeqCst);
        self.host.log(LogLevel::Info, &format!("receiving device frames on udp {local}"));
        let receiver =
            Receiver { socket: Arc::clone(&socket), sink, host: self.host.clone(), stop: Arc::clone(&self.stop) };
        self.threads.push(spawn("radio-udp-rx", move || {
            let host = receiver.host.clone();
            nest_sdk::radio::run_contained(&host, "radio-udp-rx", || receiver.run());
        })?);
        if let Some(discovery) = self.config.discovery.clone() {
            let announcer = Announcer::open(
                discovery,
                Arc::clone(&socket),
                self.config.mtu_bytes,
                self.host.clone(),
                Arc::clone(&self.stop),
            )?;
            self.threads.push(spawn("radio-udp-discovery", move || {
                let host = announcer.host.clone();
                nest_sdk::radio::run_contained(&host, "radio-udp-discovery", || announcer.run());
            })?);
        }
        self.socket = Some(socket);
        Ok(())
    }

    fn send(&mut self, link_address: &str, payload: &[u8]) -> Result<(), PluginError> {
        let to: SocketAddr = link_address
            .parse()
            .map_err(|e| PluginError::rejected(format!("link address {link_address:?} is not an ip:port: {e}")))?;
        let socket = self.socket.as_ref().ok_or_else(|| PluginError::failed("the UDP radio is not started"))?;
        let message_id = self.message_id.fetch_add(1, Ordering::Relaxed);
        let fragments = nest_sdk::fragment(payload, self.config.mtu_bytes, message_id)
            .map_err(|e| PluginError::rejected(format!("cannot send to {to}: {e}")))?;
        for fragment in fragments {
            socket.send_to(&fragment, to).map_err(|e| PluginError::failed(format!("send to {to}: {e}")))?;
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<(), PluginError> {
        self.stop.store(true, Ordering::SeqCst);
        let panicked = self.threads.drain(..).map(JoinHandle::join).filter(Result::is_err).count();
        self.socket = None;
        if panicked > 0 {
            return Err(PluginError::failed(format!("{panicked} UDP radio thread(s) had panicked")));
        }
        Ok(())
    }
}

impl Drop for UdpRadio {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn io_failed(error: std::io::Error) -> PluginError {
    PluginError::failed(error.to_string())
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, PluginError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .map_err(|e| PluginError::failed(format!("cannot start thread {name}: {e}")))
}

/// Receives datagrams and hands them to the host.
struct Receiver {
    socket: Arc<UdpSocket>,
    sink: FrameSink,
    host: Host,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn run(self) {
        let mut buffer = vec![0; DATAGRAM_BYTES_MAX as usize];
        let dropped = AtomicU64::new(0);
        while !self.stop.load(Ordering::SeqCst) {
            let (len, from) = match self.socket.recv_from(&mut buffer) {
                Ok(received) => received,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
                Err(e) => {
                    self.host.log(LogLevel::Warn, &format!("udp receive failed: {e}"));
                    std::thread::sleep(Duration::from_millis(POLL_MS));
                    continue;
                }
            };
            let frame = RadioFrame {
                link_address: from.to_string().into(),
                payload: buffer[..len].to_vec().into(),
                rssi_dbm: ROption::RNone,
            };
            match self.sink.deliver(frame) {
                SinkStatus::Accepted => {}
                // UDP is lossy by contract; a datagram the host cannot take is dropped.
                SinkStatus::Full => {
                    self.sink.skipped("host_queue_full", 1);
                    if dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                        self.host.log(LogLevel::Warn, "the node's frame queue is full: dropping datagrams");
                    }
                }
                SinkStatus::Closed => return,
            }
        }
    }
}

/// Answers discovery probes and announces the unicast socket on the group.
struct Announcer {
    group_socket: UdpSocket,
    unicast: Arc<UdpSocket>,
    config: DiscoveryConfig,
    announcement: Vec<u8>,
    host: Host,
    stop: Arc<AtomicBool>,
}

impl Announcer {
    fn open(
        config: DiscoveryConfig,
        unicast: Arc<UdpSocket>,
        mtu_bytes: u32,
        host: Host,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, PluginError> {
        let group_socket = group_socket(&config).map_err(|e| {
            PluginError::failed(format!("cannot join {}:{} on {}: {e}", config.group, config.port, config.interface))
        })?;
        // Announcements leave from the unicast socket (so answers name it as the
        // source); it too must send multicast out of the configured interface.
        socket2::SockRef::from(&*unicast).set_multicast_if_v4(&config.interface).map_err(io_failed)?;
        let local = unicast.local_addr().map_err(io_failed)?;
        let announcement = format!("{ANNOUNCE_PREFIX} {local} {mtu_bytes}").into_bytes();
        host.log(LogLevel::Info, &format!("discovery on {}:{} via {}", config.group, config.port, config.interface));
        Ok(Self { group_socket, unicast, config, announcement, host, stop })
    }

    fn run(self) {
        let group = SocketAddr::V4(SocketAddrV4::new(self.config.group, self.config.port));
        let interval = Duration::from_millis(self.config.announce_interval_ms);
        let mut next_announce = Instant::now();
        let mut buffer = [0_u8; 512];
        while !self.stop.load(Ordering::SeqCst) {
            if Instant::now() >= next_announce {
                if let Err(e) = self.unicast.send_to(&self.announcement, group) {
                    self.host.log(LogLevel::Warn, &format!("discovery announcement failed: {e}"));
                }
                next_announce = Instant::now() + interval;
            }
            match self.group_socket.recv_from(&mut buffer) {
                Ok((len, from)) if &buffer[..len] == DISCOVERY_PROBE => {
                    if let Err(e) = self.unicast.send_to(&self.announcement, from) {
                        self.host.log(LogLevel::Warn, &format!("discovery answer to {from} failed: {e}"));
                    }
                }
                // Other gateways' announcements and stray datagrams on the group.
                Ok(_) => {}
                Err(_) => {}
            }
        }
    }
}

/// A socket bound to the group's port, sharing it with other gateways, joined on the interface.
fn group_socket(config: &DiscoveryConfig) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(config.group, config.port)).into())?;
    socket.join_multicast_v4(&config.group, &config.interface)?;
    socket.set_multicast_if_v4(&config.interface)?;
    socket.set_multicast_loop_v4(true)?;
    socket.set_read_timeout(Some(Duration::from_millis(POLL_MS)))?;
    Ok(socket.into())
}

nest_sdk::export_plugin! {
    name: "radio-udp",
    vendor: "Nest",
    description: "UDP radio: device frames as datagrams on a local network, with multicast discovery.",
    radio: UdpRadio,
}

#[cfg(test)]
mod tests {
    use super::*;
    use nest_sdk::{Reassembler, Reassembly, ReassemblyLimits, radio::FrameSinkFfi, testing::LocalHost};
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<RadioFrame>>>);
    impl FrameSinkFfi for Collect {
        fn deliver(&self, frame: RadioFrame) -> SinkStatus {
            self.0.lock().unwrap().push(frame);
            SinkStatus::Accepted
        }
    }

    fn radio(discovery: Option<DiscoveryConfig>) -> UdpRadio {
        let config = UdpConfig { bind: "127.0.0.1:0".into(), mtu_bytes: 64, bitrate_bps: 1, discovery };
        UdpRadio::check_config(&config).unwrap();
        UdpRadio::new(config, LocalHost::from_seed([1; 32]).host()).unwrap()
    }

    fn wait_for(frames: &Collect, count: usize) -> Vec<RadioFrame> {
        for _ in 0..100 {
            let got = frames.0.lock().unwrap().clone();
            if got.len() >= count {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("fewer than {count} frames arrived");
    }

    #[test]
    fn fragmented_frames_round_trip_between_two_radios() {
        let (mut a, mut b) = (radio(None), radio(None));
        let (frames_a, frames_b) = (Collect::default(), Collect::default());
        a.start(FrameSink::new(frames_a.clone())).unwrap();
        b.start(FrameSink::new(frames_b.clone())).unwrap();
        let b_addr = b.socket.as_ref().unwrap().local_addr().unwrap().to_string();
        let frame: Vec<u8> = (0..300_u32).map(|i| (i % 251) as u8 + 1).collect();
        a.send(&b_addr, &frame).unwrap();
        let received = wait_for(&frames_b, 6);
        assert!(received.iter().all(|f| f.payload.len() <= 64));
        let mut reassembler = Reassembler::new(ReassemblyLimits::default());
        let complete: Vec<_> = received
            .iter()
            .filter_map(|f| match reassembler.push(f.link_address.as_str(), &f.payload, 0) {
                Reassembly::Complete(bytes) => Some(bytes),
                _ => None,
            })
            .collect();
        assert_eq!(complete, vec![frame]);
        // The reply goes back to the sender's link address.
        b.send(received[0].link_address.as_str(), b"\x01ack").unwrap();
        assert_eq!(wait_for(&frames_a, 1)[0].payload.as_slice(), b"\x01ack");
        assert!(a.send("not an address", b"x").is_err());
        a.stop().unwrap();
        b.stop().unwrap();
    }

    #[test]
    fn a_probe_on_the_group_is_answered_with_the_unicast_address() {
        let discovery = DiscoveryConfig {
            group: Ipv4Addr::new(239, 255, 78, 84),
            // A free port, so that concurrent runs do not answer each other's probes.
            port: UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(),
            interface: Ipv4Addr::LOCALHOST,
            announce_interval_ms: 60_000,
        };
        let mut gateway = radio(Some(discovery.clone()));
        gateway.start(FrameSink::new(Collect::default())).unwrap();
        let local = gateway.socket.as_ref().unwrap().local_addr().unwrap();
        let device = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket2::SockRef::from(&device).set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
        device.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut buffer = [0; 256];
        let answer = (0..25).find_map(|_| {
            device.send_to(DISCOVERY_PROBE, (discovery.group, discovery.port)).unwrap();
            device.recv_from(&mut buffer).ok().map(|(len, _)| String::from_utf8_lossy(&buffer[..len]).into_owned())
        });
        assert_eq!(answer, Some(format!("{ANNOUNCE_PREFIX} {local} 64")));
        gateway.stop().unwrap();
    }
}
