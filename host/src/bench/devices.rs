//! Measure device frames on a local node: frames verified and accepted per second
//! against this machine's P-256 verify ceiling measured in the same run, and the latency
//! from a frame's publication to its reading anchored on chain.
//!
//! The node runs as a `nestd run` process with a UDP radio (radio-udp) on 127.0.0.1;
//! the frames are signed before the clock starts and sent as datagrams, keeping at most
//! [`FRAMES_IN_FLIGHT_MAX`] unanswered so the node's bounded queues are not overrun
//! (a frame the node cannot queue is dropped by the UDP driver, as UDP allows).
//! Latency is measured one frame at a time, through radio-mqtt on a private Mosquitto
//! broker when `mosquitto` is installed: from the start of the real `mosquitto_pub`
//! until the node shows the reading anchored in a final block (without Mosquitto, from
//! the UDP send).

use super::{NodeProcess, finish, percentile, tempfile_dir, write_json};
use crate::client::Client;
use crate::devices::{FrameSpec, keys::DeviceKey, signed_envelope};
use crate::devnet::{self, DevnetSpec};
use crate::node::status::RadioStatus;
use nest_sdk::device::{KIND_READING, device_uid};
use serde::Serialize;
use std::{
    net::UdpSocket,
    path::PathBuf,
    time::{Duration, Instant},
};

/// Frames sent but not yet accepted or rejected by the node: below what the kernel's
/// default UDP receive buffer holds (about 270 datagrams of this size), so a burst is
/// not dropped before the driver reads it.
const FRAMES_IN_FLIGHT_MAX: u64 = 192;
/// How often the sender looks at the node's link counters.
const POLL_MS: u64 = 2;
/// Longest a run waits for the node to catch up or anchor.
const SETTLE_TIMEOUT_S: u64 = 120;

/// Options of `nestd bench devices`.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceBenchOptions {
    /// Frames to send.
    #[arg(long, default_value_t = 20_000)]
    pub frames: u64,
    /// Distinct devices sending them.
    #[arg(long, default_value_t = 32)]
    pub devices: u32,
    /// Bytes of each reading's payload.
    #[arg(long, default_value_t = 32)]
    pub payload_bytes: usize,
    /// Readings timed from publication to anchored.
    #[arg(long, default_value_t = 20)]
    pub latency_samples: usize,
    /// Block interval of the node's PoA chain.
    #[arg(long, default_value_t = 500)]
    pub block_interval_ms: u64,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Keep the devnet directory (node log, data) after the run.
    #[arg(long)]
    pub keep: bool,
}

/// The figures of one run.
#[derive(Serialize, Debug)]
pub struct DeviceBenchReport {
    /// Frames sent.
    pub frames_sent: u64,
    /// Frames the node accepted (verified, fresh counter, stored).
    pub frames_accepted: u64,
    /// Frames the node rejected.
    pub frames_rejected: u64,
    /// Frames lost before the node saw them (UDP).
    pub frames_lost: u64,
    /// Seconds from the first send to the last verdict.
    pub elapsed_s: f64,
    /// Accepted frames per second.
    pub accepted_per_s: f64,
    /// P-256 verifications per second on one core (median of 5 samples).
    pub verify_per_s_single_core: f64,
    /// Cores available.
    pub cores: usize,
    /// Verifications per second with one thread per core verifying at once: the median
    /// of three samples before and three after the run.
    pub verify_ceiling_per_s: f64,
    /// accepted per second ÷ ceiling.
    pub ratio_to_ceiling: f64,
    /// CPU seconds the node process used while the frames were sent and judged.
    pub node_cpu_s: f64,
    /// Share of that CPU time the accepted frames' verifications account for (accepted
    /// frames ÷ single-core verify rate ÷ node CPU time): how much of the node's work is
    /// the verification itself, whatever else loads the machine.
    pub verify_share_of_node_cpu: f64,
    /// Readings anchored on chain by the end of the run.
    pub readings_anchored: u64,
    /// How the latency frames were published (`udp` or `mosquitto_pub`).
    pub latency_transport: String,
    /// Publication to anchored in a final block, median, milliseconds.
    pub anchor_latency_p50_ms: f64,
    /// Same, 99th percentile.
    pub anchor_latency_p99_ms: f64,
    /// Block interval used.
    pub block_interval_ms: u64,
}

/// Runs the benchmark and prints the report as text and JSON.
pub fn run(options: &DeviceBenchOptions) -> Result<(), String> {
    if options.frames == 0 || options.devices == 0 {
        return Err("--frames and --devices must be at least 1".into());
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    eprintln!("measuring the P-256 verify ceiling on this machine...");
    let single_core = measure_p256_verify_rate();
    let ceiling_before = measure_p256_ceiling(cores, 3);
    let dir = tempfile_dir()?;
    let port = free_udp_port()?;
    let spec = DevnetSpec {
        dir: dir.clone(),
        consensus: devnet::Consensus::Poa,
        block_interval_ms: options.block_interval_ms,
        api_port: 0,
        allocations: crate::devices::devnet::node_allocations(&dir, 1)?,
        block_txs_max: 20_000,
        mempool_txs_max: 100_000,
        plugin_dir: devnet::library_dir(),
        nodes: 1,
        authorities: 1,
    };
    let net = devnet::write(&spec)?;
    add_udp_radio(&net.manifest, port)?;
    let broker = Broker::start(&dir)?;
    if let Some(broker) = &broker {
        broker.add_radio(&net.manifest)?;
    }
    let mut node = NodeProcess::spawn(&net.manifest)?;
    let result = drive(options, &node, &net.faucet_key, port, broker.as_ref(), cores, single_core).map(|mut report| {
        // The machine's load may change during the run: the ceiling is the median of
        // parallel samples taken before and after it.
        let mut samples = ceiling_before;
        samples.extend(measure_p256_ceiling(cores, 3));
        report.verify_ceiling_per_s = percentile(&samples, 0.5);
        report.ratio_to_ceiling = report.accepted_per_s / report.verify_ceiling_per_s;
        report
    });
    node.stop();
    drop(broker);
    let report = finish(&dir, options.keep, result)?;
    print_report(&report);
    write_json(options.json.as_deref(), &report)
}

/// P-256 verifications per second with `threads` threads verifying at once (the
/// machine as it is loaded right now): the sum of the threads' rates over one sample.
fn measure_p256_parallel_rate(threads: usize) -> f64 {
    let handles: Vec<_> = (0..threads).map(|_| std::thread::spawn(|| p256_verify_sample(400))).collect();
    handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
}

/// Median of `samples` parallel measurements.
fn measure_p256_ceiling(threads: usize, samples: usize) -> Vec<f64> {
    (0..samples).map(|_| measure_p256_parallel_rate(threads)).collect()
}

/// P-256 verifications per second on one thread: median of 5 samples.
fn measure_p256_verify_rate() -> f64 {
    let mut samples: Vec<f64> = (0..5).map(|_| p256_verify_sample(400)).collect();
    samples.sort_by(f64::total_cmp);
    samples[2]
}

/// Verifications per second on this thread over `duration_ms`.
fn p256_verify_sample(duration_ms: u64) -> f64 {
    let key = DeviceKey::from_seed(b"bench");
    let public_key = key.public_key();
    let messages: Vec<(Vec<u8>, [u8; 64])> = (0..64u32)
        .map(|i| {
            let message = i.to_le_bytes().repeat(40);
            let signature = key.sign(&message);
            (message, signature)
        })
        .collect();
    let start = Instant::now();
    let mut verified = 0usize;
    while start.elapsed() < Duration::from_millis(duration_ms) {
        verified += messages.iter().filter(|(m, s)| crate::devices::keys::verify(&public_key, m, s)).count();
    }
    verified as f64 / start.elapsed().as_secs_f64()
}

fn free_udp_port() -> Result<u16, String> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("no free UDP port: {e}"))?;
    socket.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Adds radio-udp on `127.0.0.1:<port>` to the node's manifest.
fn add_udp_radio(manifest: &std::path::Path, port: u16) -> Result<(), String> {
    let mut text = std::fs::read_to_string(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    text.push_str(&format!(
        "\n[[radio]]\nid = \"udp\"\nplugin = \"udp\"\nconfig = {{ bind = \"127.0.0.1:{port}\" }}\n"
    ));
    std::fs::write(manifest, text).map_err(|e| format!("{}: {e}", manifest.display()))
}

/// Puts one device's frame on the air (UDP datagram or `mosquitto_pub`).
type Publish<'a> = dyn Fn(&[u8], &BenchDevice) -> Result<(), String> + 'a;

/// A device of the run.
struct BenchDevice {
    hardware_id: String,
    key: DeviceKey,
}

fn bench_devices(count: u32) -> Vec<BenchDevice> {
    (0..count)
        .map(|i| {
            let hardware_id = format!("bench-device-{i}");
            BenchDevice { key: DeviceKey::from_seed(hardware_id.as_bytes()), hardware_id }
        })
        .collect()
}

fn drive(
    options: &DeviceBenchOptions,
    node: &NodeProcess,
    faucet_key: &std::path::Path,
    port: u16,
    broker: Option<&Broker>,
    cores: usize,
    single_core: f64,
) -> Result<DeviceBenchReport, String> {
    let client = Client::new(&node.url);
    let devices = bench_devices(options.devices);
    register_all(&node.url, faucet_key, &devices)?;
    eprintln!("signing {} frames...", options.frames);
    let frames = sign_frames(options, &devices);
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let target = format!("127.0.0.1:{port}");
    eprintln!("sending...");
    let cpu_before = process_cpu_s(node.child.id());
    let start = Instant::now();
    let mut sent = 0u64;
    let mut seen = 0u64;
    for frame in &frames {
        while sent - seen >= FRAMES_IN_FLIGHT_MAX {
            std::thread::sleep(Duration::from_millis(POLL_MS));
            seen = verdicts(&link(&client)?);
        }
        socket.send_to(frame, &target).map_err(|e| format!("send: {e}"))?;
        sent += 1;
    }
    let settled = wait_settled(&client, sent)?;
    let elapsed_s = start.elapsed().as_secs_f64();
    let node_cpu_s = process_cpu_s(node.child.id()) - cpu_before;
    let accepted = settled.link.accepted;
    let last = frames_per_device(options);
    let publish = |frame: &[u8], device: &BenchDevice| match broker {
        Some(broker) => broker.publish(&device.hardware_id, frame),
        None => socket.send_to(frame, &target).map(|_| ()).map_err(|e| format!("send: {e}")),
    };
    let latencies = anchor_latencies(options, &client, &devices, &publish, last)?;
    let readings_anchored = anchored_total(&client, &devices)?;
    let ceiling = single_core * cores as f64;
    let accepted_per_s = accepted as f64 / elapsed_s;
    Ok(DeviceBenchReport {
        frames_sent: sent,
        frames_accepted: accepted,
        frames_rejected: settled.link.rejected,
        frames_lost: sent.saturating_sub(verdicts(&settled)),
        elapsed_s,
        accepted_per_s,
        verify_per_s_single_core: single_core,
        cores,
        verify_ceiling_per_s: ceiling,
        ratio_to_ceiling: accepted_per_s / ceiling,
        node_cpu_s,
        verify_share_of_node_cpu: accepted as f64 / single_core / node_cpu_s,
        readings_anchored,
        latency_transport: if broker.is_some() { "mosquitto_pub" } else { "udp" }.into(),
        anchor_latency_p50_ms: percentile(&latencies, 0.50),
        anchor_latency_p99_ms: percentile(&latencies, 0.99),
        block_interval_ms: options.block_interval_ms,
    })
}

/// User and system CPU seconds of process `pid` so far (from `/proc/<pid>/stat`).
fn process_cpu_s(pid: u32) -> f64 {
    crate::procfs::usage(pid).cpu_time_ms.unwrap_or(0) as f64 / 1000.0
}

fn frames_per_device(options: &DeviceBenchOptions) -> u64 {
    options.frames.div_ceil(u64::from(options.devices))
}

/// Registers every device (owner: the faucet) and waits until they are committed.
fn register_all(url: &str, faucet_key: &std::path::Path, devices: &[BenchDevice]) -> Result<(), String> {
    let keys: Vec<(String, Vec<u8>)> =
        devices.iter().map(|d| (d.hardware_id.clone(), d.key.public_key().to_vec())).collect();
    crate::devices::devnet::register_devices(url, faucet_key, &keys, "bench").map(|_| ())
}

/// Signs the readings, round-robin over the devices, counters from 1.
fn sign_frames(options: &DeviceBenchOptions, devices: &[BenchDevice]) -> Vec<Vec<u8>> {
    let payload = vec![0x5A; options.payload_bytes];
    (0..options.frames)
        .map(|index| {
            let device = &devices[(index % u64::from(options.devices)) as usize];
            let counter = index / u64::from(options.devices) + 1;
            let spec = FrameSpec {
                hardware_id: device.hardware_id.as_bytes(),
                counter,
                timestamp_ms: counter,
                kind: KIND_READING,
                payload: payload.clone(),
            };
            signed_envelope(&device.key, &spec).map(|e| e.encode()).unwrap_or_default()
        })
        .collect()
}

fn link(client: &Client) -> Result<RadioStatus, String> {
    let radios: Vec<RadioStatus> = client.get("/v1/radios")?;
    radios.into_iter().find(|r| r.id == "udp").ok_or_else(|| "the node has no radio \"udp\"".into())
}

fn verdicts(radio: &RadioStatus) -> u64 {
    radio.link.accepted + radio.link.rejected
}

/// Waits until the node has judged every frame it received and received no more for a while.
fn wait_settled(client: &Client, sent: u64) -> Result<RadioStatus, String> {
    let deadline = Instant::now() + Duration::from_secs(SETTLE_TIMEOUT_S);
    let mut last = link(client)?;
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(POLL_MS));
        let now = link(client)?;
        if verdicts(&now) >= sent {
            return Ok(now);
        }
        if verdicts(&now) != verdicts(&last) || now.link.frames_in != last.link.frames_in {
            quiet_since = Instant::now();
        } else if verdicts(&now) == now.link.frames_in && quiet_since.elapsed() > Duration::from_millis(500) {
            return Ok(now);
        }
        last = now;
    }
    Err(format!("the node did not judge the frames within {SETTLE_TIMEOUT_S} s"))
}

/// Sends one reading at a time from the first device and waits until it is anchored.
fn anchor_latencies(
    options: &DeviceBenchOptions,
    client: &Client,
    devices: &[BenchDevice],
    publish: &Publish<'_>,
    after_counter: u64,
) -> Result<Vec<f64>, String> {
    let device = &devices[0];
    let uid = hex::encode(device_uid(device.hardware_id.as_bytes()));
    let mut latencies = Vec::with_capacity(options.latency_samples);
    for sample in 0..options.latency_samples as u64 {
        let counter = after_counter + 1 + sample;
        let spec = FrameSpec {
            hardware_id: device.hardware_id.as_bytes(),
            counter,
            timestamp_ms: counter,
            kind: KIND_READING,
            payload: b"latency".to_vec(),
        };
        let frame = signed_envelope(&device.key, &spec).map_err(|e| e.to_string())?.encode();
        let start = Instant::now();
        publish(&frame, device)?;
        wait_anchored(client, &uid, counter)?;
        latencies.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(latencies)
}

/// Polls the device until its anchored counter reaches `counter`.
pub(crate) fn wait_anchored(client: &Client, uid: &str, counter: u64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(SETTLE_TIMEOUT_S);
    while Instant::now() < deadline {
        let device: serde_json::Value = client.get(&format!("/v1/devices/{uid}"))?;
        if device["last_counter"].as_u64() >= Some(counter) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
    Err(format!("reading {counter} of {uid} not anchored within {SETTLE_TIMEOUT_S} s"))
}

fn anchored_total(client: &Client, devices: &[BenchDevice]) -> Result<u64, String> {
    let mut total = 0;
    for device in devices {
        let uid = hex::encode(device_uid(device.hardware_id.as_bytes()));
        let shown: serde_json::Value = client.get(&format!("/v1/devices/{uid}"))?;
        total += shown["readings_anchored"].as_u64().unwrap_or(0);
    }
    Ok(total)
}

fn print_report(report: &DeviceBenchReport) {
    println!(
        "nestd bench devices: one PoA node on 127.0.0.1, radio-udp (block interval {} ms)",
        report.block_interval_ms
    );
    println!(
        "  frames           {} sent, {} accepted, {} rejected, {} lost before the node",
        report.frames_sent, report.frames_accepted, report.frames_rejected, report.frames_lost
    );
    println!(
        "  throughput       {:.0} frames/s verified and accepted over {:.2} s",
        report.accepted_per_s, report.elapsed_s
    );
    println!(
        "  verify ceiling   {:.0} frames/s: P-256 verifications on {} threads at once, before and after the run (one thread alone: {:.0}/s)",
        report.verify_ceiling_per_s, report.cores, report.verify_per_s_single_core
    );
    println!("  ratio            {:.2} of the ceiling (target >= 0.50)", report.ratio_to_ceiling);
    println!(
        "  node CPU         {:.2} s, of which the accepted frames' P-256 verifications are {:.0}%",
        report.node_cpu_s,
        report.verify_share_of_node_cpu * 100.0
    );
    println!("  anchored         {} readings on chain", report.readings_anchored);
    println!(
        "  anchor latency   p50 {:.0} ms, p99 {:.0} ms ({} to anchored in a final block)",
        report.anchor_latency_p50_ms, report.anchor_latency_p99_ms, report.latency_transport
    );
    println!("{}", serde_json::to_string(report).unwrap_or_default());
}

/// A private Mosquitto broker for the latency samples; stopped when dropped.
struct Broker {
    child: std::process::Child,
    port: u16,
    dir: PathBuf,
}

impl Broker {
    /// Starts `mosquitto` on a free port, or `None` when it is not installed.
    fn start(dir: &std::path::Path) -> Result<Option<Broker>, String> {
        let binary =
            ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].into_iter().find(|p| std::path::Path::new(p).exists());
        let Some(binary) = binary else {
            eprintln!("mosquitto is not installed: latency is measured from the UDP send");
            return Ok(None);
        };
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let config = dir.join("mosquitto.conf");
        std::fs::write(&config, format!("listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n"))
            .map_err(|e| format!("{}: {e}", config.display()))?;
        let child = std::process::Command::new(binary)
            .arg("-c")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start mosquitto: {e}"))?;
        let broker = Broker { child, port, dir: dir.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("mosquitto did not listen on port {port}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Some(broker))
    }

    /// Adds radio-mqtt on this broker to the node's manifest.
    fn add_radio(&self, manifest: &std::path::Path) -> Result<(), String> {
        let mut text = std::fs::read_to_string(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
        text.push_str(&format!(
            "\n[[radio]]\nid = \"mqtt\"\nplugin = \"mqtt\"\nconfig = {{ broker = \"127.0.0.1:{}\", client_id = \"nest-bench\" }}\n",
            self.port
        ));
        std::fs::write(manifest, text).map_err(|e| format!("{}: {e}", manifest.display()))
    }

    /// Publishes `frame` on the device's up topic with the real `mosquitto_pub` (QoS 1).
    fn publish(&self, device: &str, frame: &[u8]) -> Result<(), String> {
        let file = self.dir.join("frame.bin");
        std::fs::write(&file, frame).map_err(|e| format!("{}: {e}", file.display()))?;
        let status = std::process::Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-q",
                "1",
                "-t",
                &format!("nest/devices/{device}/up"),
                "-f",
            ])
            .arg(&file)
            .status()
            .map_err(|e| format!("cannot run mosquitto_pub: {e}"))?;
        if status.success() { Ok(()) } else { Err(format!("mosquitto_pub exited with {status}")) }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
