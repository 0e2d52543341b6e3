//! The radio plugins as real signed libraries: the MQTT bridge on a real Mosquitto broker
//! (frames from the real `mosquitto_pub`, broker restarts, a full sink), the simulated
//! LoRa radio under its duty cycle, and UDP with discovery, in the loader and in `nestd`.

use nest_host::loader::{self, LoadOptions, LoadedLibrary};
use nest_sdk::{
    PluginError, RadioFrame, Reassembler, Reassembly, ReassemblyLimits, SinkStatus,
    device::DeviceEnvelope,
    radio::{FrameSink, FrameSinkFfi, RadioBox},
    testing::LocalHost,
};
use nest_tests::{
    CollectingSink, PluginCrate, RADIO_MQTT, RADIO_SIM, RADIO_UDP,
    device::TestDevice,
    mosquitto::Mosquitto,
    node::{NodeProcess, unique, wait_until, write_devnet},
    pack_crate, trusting, vendor_key,
};
use radio_sim::{identity::SimIdentity, profiles};
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use std::{
    collections::{BTreeMap, BTreeSet},
    net::{Ipv4Addr, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// A loaded radio plugin, its test host and the temp dir holding its package.
struct Loaded {
    library: LoadedLibrary,
    host: LocalHost,
    _dir: tempfile::TempDir,
}

fn load(plugin: PluginCrate) -> Loaded {
    let key = vendor_key(61);
    let dir = tempfile::tempdir().unwrap();
    pack_crate(plugin, &dir.path().join("pkg"), &key);
    let options = LoadOptions { trust: trusting("nest-tests", &key), allow_unsigned: false };
    let library = loader::load(&dir.path().join("pkg"), &options).unwrap_or_else(|e| panic!("{e}"));
    Loaded { library, host: LocalHost::from_seed([3; 32]), _dir: dir }
}

impl Loaded {
    fn radio(&self, config: &str) -> RadioBox {
        self.library.new_radio(config, &self.host.host()).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn logged(&self, text: &str) -> bool {
        self.host.logs.lock().unwrap().iter().any(|(_, line)| line.contains(text))
    }
}

fn payloads(frames: &[RadioFrame]) -> Vec<String> {
    frames.iter().map(|f| String::from_utf8_lossy(f.payload.as_slice()).into_owned()).collect()
}

/// Publishes probes until the bridge delivers one: its subscription is in place.
fn wait_subscribed(broker: &Mosquitto, delivered: impl Fn() -> usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while delivered() == 0 {
        assert!(Instant::now() < deadline, "the bridge never delivered a probe; broker log:\n{}", broker.log_text());
        broker.publish("nest/devices/probe/up", b"probe");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn mqtt_config(broker: &Mosquitto) -> String {
    format!(
        r#"{{"broker": "{}", "client_id": "nest-t{}", "reconnect_max_ms": 400}}"#,
        broker.address(),
        unique() + u64::from(std::process::id())
    )
}

#[test]
fn mqtt_bridge_loses_no_acknowledged_frame_across_broker_restarts() {
    let mut broker = Mosquitto::start();
    let plugin = load(RADIO_MQTT);
    let mut radio = plugin.radio(&mqtt_config(&broker));
    assert_eq!(radio.info().unwrap().technology.as_str(), "mqtt");
    let sink = CollectingSink::default();
    radio.start(sink.sink().to_box()).unwrap();
    wait_subscribed(&broker, || sink.frames().len());

    let mut acknowledged = Vec::new();
    for round in 0..3 {
        for i in 0..10 {
            let payload = format!("frame-{round}-{i}");
            if broker.publish("nest/devices/dev-7/up", payload.as_bytes()) {
                acknowledged.push(payload);
            }
        }
        // Mid-stream: some frames are still queued or in flight at the broker.
        broker.restart();
    }
    assert_eq!(acknowledged.len(), 30, "the broker was up for every publish");
    wait_until(Duration::from_secs(30), "every acknowledged frame at the sink", || {
        let received: BTreeSet<String> = payloads(&sink.frames()).into_iter().collect();
        acknowledged.iter().all(|p| received.contains(p))
    });
    let frames = sink.frames();
    let from_device = frames.iter().find(|f| f.payload.as_slice() == b"frame-0-0").unwrap();
    assert_eq!(from_device.link_address.as_str(), "dev-7");

    // A command back to the device reaches a real subscriber on its down topic.
    // Sent until the subscriber, which may not have subscribed yet, has one.
    let mut subscriber = broker.subscribe_one("nest/devices/dev-7/down");
    for _ in 0..80 {
        radio.send("dev-7".into(), b"reboot"[..].into()).unwrap();
        std::thread::sleep(Duration::from_millis(250));
        if subscriber.try_wait().unwrap().is_some() {
            break;
        }
    }
    let output = subscriber.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "reboot");
    assert!(plugin.logged("MQTT broker connection lost"), "{:?}", plugin.host.logs.lock().unwrap());
    radio.stop().unwrap();
}

/// A sink that answers Full to its first `refusals` offers, then keeps frames.
#[derive(Clone)]
struct StubbornSink {
    refusals: Arc<AtomicUsize>,
    frames: Arc<Mutex<Vec<RadioFrame>>>,
}

impl FrameSinkFfi for StubbornSink {
    fn deliver(&self, frame: RadioFrame) -> SinkStatus {
        let left = self.refusals.load(Ordering::SeqCst);
        if left > 0 {
            self.refusals.store(left - 1, Ordering::SeqCst);
            return SinkStatus::Full;
        }
        self.frames.lock().unwrap().push(frame);
        SinkStatus::Accepted
    }
}

#[test]
fn mqtt_bridge_holds_frames_while_the_sink_is_full() {
    let broker = Mosquitto::start();
    let plugin = load(RADIO_MQTT);
    let mut radio = plugin.radio(&mqtt_config(&broker));
    let sink = StubbornSink { refusals: Arc::new(AtomicUsize::new(0)), frames: Arc::default() };
    radio.start(FrameSink::new(sink.clone()).to_box()).unwrap();
    let frames = Arc::clone(&sink.frames);
    wait_subscribed(&broker, || frames.lock().unwrap().len());
    sink.frames.lock().unwrap().clear();

    sink.refusals.store(25, Ordering::SeqCst);
    let sent: Vec<String> = (0..8).map(|i| format!("held-{i}")).collect();
    for payload in &sent {
        assert!(broker.publish("nest/devices/dev-1/up", payload.as_bytes()));
    }
    wait_until(Duration::from_secs(20), "all held frames delivered", || {
        payloads(&sink.frames.lock().unwrap()).iter().filter(|p| p.starts_with("held-")).count() >= sent.len()
    });
    assert_eq!(sink.refusals.load(Ordering::SeqCst), 0, "the sink refused frames");
    let received: Vec<String> =
        payloads(&sink.frames.lock().unwrap()).into_iter().filter(|p| p.starts_with("held-")).collect();
    assert_eq!(received, sent, "in order, each once");
    radio.stop().unwrap();
}

#[test]
fn mqtt_config_errors_name_the_key() {
    let plugin = load(RADIO_MQTT);
    let cases = [
        (r#"{"broker": "localhost"}"#, "broker"),
        (r#"{"broker": "h:1", "up_topic": "a/#/b"}"#, "up_topic"),
        (r#"{"broker": "h:1", "down_topic": "x/down"}"#, "down_topic"),
        (r#"{"broker": "h:1", "client_id": ""}"#, "client_id"),
        (r#"{"broker": "h:1", "qos": 2}"#, "qos"),
    ];
    for (config, key) in cases {
        let error = plugin.library.new_radio(config, &plugin.host.host()).err().expect(config);
        assert!(
            matches!(&error, PluginError::InvalidConfig { .. }) && format!("{error:?}").contains(key),
            "{config}: {error:?}"
        );
    }
    let mut radio = plugin.radio(r#"{"broker": "127.0.0.1:9"}"#);
    assert!(matches!(radio.send("a/b".into(), b"x"[..].into()), nest_sdk::RResult::RErr(PluginError::Rejected { .. })));
}

/// Writes a single-node devnet with `radio` appended to its manifest and starts it.
fn node_with_radio(dir: &std::path::Path, radio: &str) -> NodeProcess {
    let devnet = write_devnet(dir, 100, Vec::new());
    let mut manifest = std::fs::read_to_string(&devnet.manifest).unwrap();
    manifest.push_str(radio);
    std::fs::write(&devnet.manifest, manifest).unwrap();
    NodeProcess::start(&devnet.manifest)
}

fn frames_received(node: &NodeProcess, radio: &str) -> u64 {
    node.status().radios.iter().find(|r| r.id == radio).map(|r| r.frames_received).unwrap_or(0)
}

#[test]
fn frames_from_mosquitto_pub_reach_a_node_that_outlives_its_broker() {
    let mut broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let radio = format!(
        "\n[[radio]]\nid = \"broker\"\nplugin = \"mqtt\"\nconfig = {{ broker = \"{}\", client_id = \"nest-n{}\", reconnect_max_ms = 400 }}\n",
        broker.address(),
        std::process::id()
    );
    let node = node_with_radio(dir.path(), &radio);
    wait_until(Duration::from_secs(20), "the bridge to subscribe", || node.log_text().contains("MQTT subscribed"));
    let status = node.status();
    let entry = status.radios.iter().find(|r| r.id == "broker").expect("radio in status");
    assert_eq!(entry.technology, "mqtt");

    let device = TestDevice::new(b"mqtt-device-1");
    for counter in 1..=5 {
        let frame = device.reading(counter, 1_700_000_000_000 + counter, b"t=21.5C");
        assert!(broker.publish("nest/devices/mqtt-device-1/up", &frame));
    }
    wait_until(Duration::from_secs(15), "5 frames at the node", || frames_received(&node, "broker") == 5);

    // The broker goes away: the node keeps producing blocks and says what happened.
    broker.stop();
    let height = node.main_chain().height;
    wait_until(Duration::from_secs(15), "blocks without a broker", || node.main_chain().height >= height + 5);
    wait_until(Duration::from_secs(5), "the loss in the log", || {
        node.log_text().contains("MQTT broker connection lost")
    });
    broker.restart();
    for counter in 6..=8 {
        assert!(broker.publish("nest/devices/mqtt-device-1/up", &device.reading(counter, 0, b"t=21.6C")));
    }
    wait_until(Duration::from_secs(20), "8 frames at the node", || frames_received(&node, "broker") >= 8);
    assert!(node.stop(), "clean stop");
}

#[test]
fn lossy_lora_sim_delivers_signed_readings_within_its_duty_cycle() {
    let plugin = load(RADIO_SIM);
    // SF12: 51-byte frames at 250 bit/s, 1 % duty cycle, 10 % loss. At 1000× a device
    // would read every 30 simulated seconds but may only use 1 % of the air.
    let config = r#"{"profile": "lora-sf12", "devices": 3, "reading_interval_ms": 30000, "time_scale": 1000,
        "seed": 5, "key_seed": "radio-test", "hardware_id_prefix": "lora-"}"#;
    let mut radio = plugin.radio(config);
    let info = radio.info().unwrap();
    assert_eq!(
        (info.technology.as_str(), info.mtu_bytes, info.bitrate_bps, info.duty_cycle_permille),
        ("lora-sf12", 51, 250, 10)
    );
    let sink = CollectingSink::default();
    let started = Instant::now();
    radio.start(sink.sink().to_box()).unwrap();
    std::thread::sleep(Duration::from_secs(5));
    radio.stop().unwrap();
    let simulated_ms = started.elapsed().as_millis() as u64 * 1000;

    let frames = sink.frames();
    assert!(frames.iter().all(|f| f.payload.len() <= 51), "a fragment exceeds the MTU");
    let rssi: Vec<i32> = frames.iter().map(|f| f.rssi_dbm.into_option().expect("the sim reports RSSI")).collect();
    assert!(rssi.iter().all(|r| (-136..=-90).contains(r)), "RSSI above SF12's −136 dBm sensitivity: {rssi:?}");
    let keys: BTreeMap<String, [u8; 65]> = (0..3)
        .map(|i| SimIdentity::derive("radio-test", "lora-", i))
        .map(|d| (d.hardware_id.clone(), d.public_key()))
        .collect();
    let lora_0 = SimIdentity::derive("radio-test", "lora-", 0);
    let public_key_hex: String = lora_0.public_key().iter().map(|b| format!("{b:02x}")).collect();
    assert!(plugin.logged(&format!("simulated device lora-0: uid {}", hex::encode(lora_0.uid))));
    assert!(plugin.logged(&public_key_hex), "the log names each device's public key");
    let mut reassembler = Reassembler::new(ReassemblyLimits::default());
    let mut readings: BTreeMap<String, Vec<DeviceEnvelope>> = BTreeMap::new();
    for frame in &frames {
        let link = frame.link_address.to_string();
        if let Reassembly::Complete(bytes) = reassembler.push(&link, frame.payload.as_slice(), 0) {
            let envelope = DeviceEnvelope::decode(&bytes).expect("a complete reading decodes");
            let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, keys[&link]);
            key.verify(&envelope.signing_message(), &envelope.signature).expect("signed by the derived key");
            readings.entry(link).or_default().push(envelope);
        }
    }
    let profile = profiles::profile("lora-sf12").unwrap();
    let reading_airtime_us: u64 =
        nest_sdk::fragment(&readings.values().next().expect("some reading arrived")[0].encode(), 51, 0)
            .unwrap()
            .iter()
            .map(|f| profile.airtime_us(f.len()))
            .sum();
    let mut sent_readings = 0;
    for (device, envelopes) in &readings {
        let used_us = envelopes.len() as u64 * reading_airtime_us;
        let allowed_us = simulated_ms * 10; // 1 % of the simulated time, in µs
        assert!(used_us <= allowed_us, "{device}: {used_us} µs of air in {simulated_ms} ms");
        let wanted = simulated_ms / 30_000;
        assert!((envelopes.len() as u64) < wanted / 2, "{device}: the duty cycle held back nothing");
        sent_readings += envelopes.iter().map(|e| e.counter).max().unwrap_or(0);
    }
    assert!(sent_readings > 0);
    // With 10 % of fragments lost, some readings sent never completed.
    let complete: u64 = readings.values().map(|e| e.len() as u64).sum();
    assert!(complete < sent_readings, "no loss seen: {complete} of {sent_readings}");
}

#[test]
fn udp_radios_round_trip_fragmented_frames() {
    let plugin = load(RADIO_UDP);
    let mut a = plugin.radio(r#"{"bind": "127.0.0.1:0", "mtu_bytes": 64}"#);
    let port = free_udp_port();
    let mut b = plugin.radio(&format!(r#"{{"bind": "127.0.0.1:{port}", "mtu_bytes": 64}}"#));
    let (sink_a, sink_b) = (CollectingSink::default(), CollectingSink::default());
    a.start(sink_a.sink().to_box()).unwrap();
    b.start(sink_b.sink().to_box()).unwrap();
    let device = TestDevice::new(b"udp-device");
    let frame = device.reading(1, 5, &[7; 200]);
    a.send(format!("127.0.0.1:{port}").as_str().into(), frame.as_slice().into()).unwrap();
    wait_until(Duration::from_secs(5), "the fragments at b", || sink_b.frames().len() >= frame.len().div_ceil(57));
    let mut reassembler = Reassembler::new(ReassemblyLimits::default());
    let fragments = sink_b.frames();
    let whole: Vec<Vec<u8>> = fragments
        .iter()
        .filter_map(|f| match reassembler.push(f.link_address.as_str(), f.payload.as_slice(), 0) {
            Reassembly::Complete(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    assert_eq!(whole, vec![frame]);
    b.send(fragments[0].link_address.as_str().into(), b"\x01ok"[..].into()).unwrap();
    wait_until(Duration::from_secs(5), "the answer at a", || sink_a.frames().len() == 1);
    assert!(matches!(a.send("nowhere".into(), b"x"[..].into()), nest_sdk::RResult::RErr(PluginError::Rejected { .. })));
    a.stop().unwrap();
    b.stop().unwrap();
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_device_discovers_a_node_over_multicast_and_its_datagrams_arrive() {
    let port = free_udp_port();
    let group_port = free_udp_port();
    let dir = tempfile::tempdir().unwrap();
    let radio = format!(
        "\n[[radio]]\nid = \"lan\"\nplugin = \"udp\"\nconfig = {{ bind = \"127.0.0.1:{port}\", discovery = {{ group = \"239.255.78.91\", port = {group_port}, interface = \"127.0.0.1\" }} }}\n"
    );
    let node = node_with_radio(dir.path(), &radio);
    let device = UdpSocket::bind("127.0.0.1:0").unwrap();
    device.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    // The probe leaves through the loopback interface, as it would through a device's LAN.
    socket2::SockRef::from(&device).set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    let mut buffer = [0; 256];
    let announced = (0..50)
        .find_map(|_| {
            device.send_to(b"NEST-DISCOVER/1", (Ipv4Addr::new(239, 255, 78, 91), group_port)).ok()?;
            let (len, _) = device.recv_from(&mut buffer).ok()?;
            Some(String::from_utf8_lossy(&buffer[..len]).into_owned())
        })
        .unwrap_or_else(|| panic!("no answer to the probe; log:\n{}", node.log_text()));
    assert_eq!(announced, format!("NEST-GATEWAY/1 127.0.0.1:{port} 1200"));
    let address = announced.split(' ').nth(1).unwrap();
    let sensor = TestDevice::new(b"udp-sensor");
    for counter in 1..=3 {
        device.send_to(&sensor.reading(counter, 0, b"42"), address).unwrap();
    }
    wait_until(Duration::from_secs(10), "3 datagrams at the node", || frames_received(&node, "lan") == 3);
}

#[test]
fn a_bridge_without_a_broker_retries_and_stops_promptly() {
    let plugin = load(RADIO_MQTT);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut radio = plugin.radio(&format!(r#"{{"broker": "127.0.0.1:{port}", "reconnect_max_ms": 200}}"#));
    radio.start(CollectingSink::default().sink().to_box()).unwrap();
    wait_until(Duration::from_secs(10), "failed attempts in the log", || {
        plugin.host.logs.lock().unwrap().iter().filter(|(_, line)| line.contains("MQTT connect failed")).count() >= 3
    });
    let stopping = Instant::now();
    radio.stop().unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(5), "stop took {:?}", stopping.elapsed());
}
