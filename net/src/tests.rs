//! Real swarms on 127.0.0.1: identity, gossip with validation, limits, block sync, config errors.

use super::{
    behaviour::{keypair_from_node_key, peer_public_key},
    codec::SYNC_PROTOCOL,
    *,
};
use libp2p::{
    SwarmBuilder,
    futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt},
    gossipsub, noise, request_response, tcp, yamux,
};
use nest_ledger::crypto::SecretKey;
use nest_sdk::Hash32;
use std::{
    future::Future,
    io,
    time::{Duration, Instant},
};

const GENESIS: Hash32 = Hash32([5; 32]);
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a test body with a deadline, so a hung network fails instead of blocking the suite.
async fn bounded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_TIMEOUT, body).await.expect("test exceeded its time bound");
}

fn node_key(seed: u8) -> SecretKey {
    SecretKey::from_seed([seed; 32])
}

fn start(seed: u8, section: NetworkSection) -> (NetHandle, mpsc::Receiver<NetEvent>) {
    Net::start(&section, &node_key(seed)).expect("network starts")
}

fn address_of(handle: &NetHandle) -> String {
    format!("{}/p2p/{}", handle.listen_addrs()[0], handle.local_peer_id())
}

fn bootstrapping_to(handle: &NetHandle) -> NetworkSection {
    NetworkSection { bootstrap: vec![address_of(handle)], ..NetworkSection::default() }
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A received gossip message, without the chain (always "main" here).
struct Received {
    topic: Topic,
    id: MessageId,
    from: PeerId,
    from_key: nest_sdk::PublicKey,
    bytes: Vec<u8>,
}

/// The next gossip message within `wait`, skipping other events; `None` if none came.
async fn next_message(events: &mut mpsc::Receiver<NetEvent>, wait: Duration) -> Option<Received> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(NetEvent::Message { chain, topic, id, from, from_key, bytes })) => {
                assert_eq!(chain, "main");
                return Some(Received { topic, id, from, from_key, bytes });
            }
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return None,
        }
    }
}

/// A message with exactly `bytes` within `wait`, skipping everything else.
async fn message_with(events: &mut mpsc::Receiver<NetEvent>, bytes: &[u8], wait: Duration) -> Option<Received> {
    let deadline = Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match next_message(events, left).await {
            Some(message) if message.bytes == bytes => return Some(message),
            Some(_) => continue,
            None => return None,
        }
    }
    None
}

/// Publishes distinct payloads from `sender` until `receiver` gets one (subscriptions take a
/// moment to spread); returns the payload and the message as received.
async fn publish_until_received(
    sender: &NetHandle,
    receiver: &mut mpsc::Receiver<NetEvent>,
    tag: &str,
) -> (Vec<u8>, Received) {
    for attempt in 0..40 {
        let payload = format!("{tag} {attempt}").into_bytes();
        sender.publish("main", Topic::Consensus, payload.clone()).unwrap();
        if let Some(message) = message_with(receiver, &payload, Duration::from_millis(400)).await {
            return (payload, message);
        }
    }
    panic!("no message \"{tag}\" got through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_id_derives_from_the_node_key_and_is_stable() {
    bounded(async {
        let first = keypair_from_node_key(&node_key(1)).unwrap().public().to_peer_id();
        let again = keypair_from_node_key(&node_key(1)).unwrap().public().to_peer_id();
        let other = keypair_from_node_key(&node_key(2)).unwrap().public().to_peer_id();
        assert_eq!(first, again);
        assert_ne!(first, other);
        assert_eq!(peer_public_key(&first), Some(node_key(1).public_key()));

        let generated = SecretKey::generate().unwrap();
        let peer = keypair_from_node_key(&generated).unwrap().public().to_peer_id();
        assert_eq!(peer_public_key(&peer), Some(generated.public_key()));

        let (handle, _events) = start(1, NetworkSection::default());
        assert_eq!(handle.local_peer_id(), first);
        handle.shutdown();
    })
    .await;
}

/// Peers learn through identify that this is `nestd` and which version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_identify_as_nestd_with_its_version() {
    bounded(async {
        let (a, _a_events) = start(21, NetworkSection::default());
        let (b, _b_events) = start(22, bootstrapping_to(&a));
        let expected = format!("nestd/{}", env!("CARGO_PKG_VERSION"));
        wait_until("A hears B's agent", || a.agents().get(&b.local_peer_id()) == Some(&expected)).await;
        wait_until("B hears A's agent", || b.agents().get(&a.local_peer_id()) == Some(&expected)).await;
        b.shutdown();
        wait_until("A forgets B's agent", || a.agents().is_empty()).await;
        a.shutdown();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_reaches_all_nodes_after_acceptance_and_rejections_are_counted() {
    bounded(async {
        let (a, mut a_events) = start(11, NetworkSection::default());
        // Without discovery B and C never meet: whatever C hears from B, A forwarded.
        let alone = |section: NetworkSection| NetworkSection { discovery: false, ..section };
        let (b, _b_events) = start(12, alone(bootstrapping_to(&a)));
        let (c, mut c_events) = start(13, alone(bootstrapping_to(&a)));
        for node in [&a, &b, &c] {
            node.subscribe("main", &GENESIS).unwrap();
        }
        wait_until("A has two peers", || a.peers().len() == 2).await;
        let b_key = node_key(12).public_key();
        assert!(a.peers().contains(&(b.local_peer_id(), b_key)));

        // B is connected to A only: C hears B's message because A accepted it and forwarded it.
        let mut relayed = false;
        for round in 0..20 {
            let (payload, at_a) = publish_until_received(&b, &mut a_events, &format!("commit {round}")).await;
            assert_eq!((at_a.topic, at_a.from, at_a.from_key), (Topic::Consensus, b.local_peer_id(), b_key));
            a.report(at_a.id, at_a.from, Verdict::Accept).unwrap();
            if let Some(at_c) = message_with(&mut c_events, &payload, Duration::from_secs(1)).await {
                // Gossip names no author: C hears it from A, the neighbour that relayed it.
                assert_eq!((at_c.from, at_c.from_key), (a.local_peer_id(), node_key(11).public_key()));
                c.report(at_c.id, at_c.from, Verdict::Accept).unwrap();
                relayed = true;
                break;
            }
        }
        assert!(relayed, "an accepted message was never forwarded from A to C");

        let (payload, at_a) = publish_until_received(&b, &mut a_events, "forged vote").await;
        a.report(at_a.id, at_a.from, Verdict::Reject).unwrap();
        wait_until("A counts the rejection", || a.stats().messages_rejected == 1).await;
        assert!(a.stats().messages_accepted >= 1);
        assert!(
            message_with(&mut c_events, &payload, Duration::from_millis(1500)).await.is_none(),
            "a rejected message must not be forwarded"
        );
        for node in [&a, &b, &c] {
            node.shutdown();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused_locally_and_dropped_from_peers() {
    bounded(async {
        let small = NetworkSection { message_bytes_max: 16 * 1024, ..NetworkSection::default() };
        let (a, mut a_events) = start(21, small.clone());
        a.subscribe("main", &GENESIS).unwrap();
        let error = a.publish("main", Topic::Txs, vec![0; 16 * 1024 + 1]).unwrap_err();
        assert_eq!(error.to_string(), "message of 16385 bytes exceeds message_bytes_max (16384)");

        // B allows larger messages than A: what B sends over A's bound is dropped by A and counted.
        let large = NetworkSection { message_bytes_max: 64 * 1024, ..bootstrapping_to(&a) };
        let (b, _b_events) = start(22, large);
        b.subscribe("main", &GENESIS).unwrap();
        wait_until("A and B connect", || a.peers().len() == 1).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut attempt = 0u8;
        while a.stats().messages_oversized == 0 {
            assert!(Instant::now() < deadline, "the oversized message was never counted");
            attempt = attempt.wrapping_add(1);
            b.publish("main", Topic::Txs, vec![attempt; 16 * 1024 + 100]).unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(
            next_message(&mut a_events, Duration::from_millis(300)).await.is_none(),
            "nothing oversized reaches the node"
        );
        a.shutdown();
        b.shutdown();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_message_rate_is_dropped_and_counted() {
    bounded(async {
        let strict = NetworkSection { messages_per_peer_per_s: 5, ..NetworkSection::default() };
        let (a, mut a_events) = start(31, strict);
        let (b, _b_events) = start(32, bootstrapping_to(&a));
        a.subscribe("main", &GENESIS).unwrap();
        b.subscribe("main", &GENESIS).unwrap();
        wait_until("A and B connect", || a.peers().len() == 1).await;
        let (_, first) = publish_until_received(&b, &mut a_events, "warm up").await;
        a.report(first.id, first.from, Verdict::Accept).unwrap();

        let flood = 200;
        let started = Instant::now();
        for index in 0..flood {
            b.publish("main", Topic::Txs, format!("flood {index}").into_bytes()).unwrap();
        }
        let (mut delivered, mut last_delivery) = (0, started);
        while let Some(message) = next_message(&mut a_events, Duration::from_millis(1500)).await {
            delivered += 1;
            last_delivery = Instant::now();
            a.report(message.id, message.from, Verdict::Ignore).unwrap();
        }
        let stats = a.stats();
        assert!(stats.messages_rate_limited >= 1, "{stats:?}");
        // A full bucket (5) plus 5 a second while the flood lasted (plus the warm-up's refill).
        let allowed = 5 + 1 + (5.0 * last_delivery.duration_since(started).as_secs_f64()).ceil() as u64;
        assert!(delivered <= allowed, "{delivered} messages passed a limit of 5 a second ({allowed} allowed)");
        assert!(delivered + stats.messages_rate_limited <= flood, "{stats:?}");
        println!("rate limit: {delivered} delivered, {stats:?}, over {:?}", last_delivery.duration_since(started));
        a.shutdown();
        b.shutdown();
    })
    .await;
}

async fn next_blocks_requested(events: &mut mpsc::Receiver<NetEvent>) -> (PeerId, SyncRequest, ResponseToken) {
    loop {
        match events.recv().await.expect("events open") {
            NetEvent::BlocksRequested { from, request, reply } => return (from, request, reply),
            _ => continue,
        }
    }
}

async fn next_blocks_received(
    events: &mut mpsc::Receiver<NetEvent>,
) -> (PeerId, SyncRequest, Result<SyncResponse, String>) {
    loop {
        match events.recv().await.expect("events open") {
            NetEvent::BlocksReceived { from, request, response } => return (from, request, response),
            _ => continue,
        }
    }
}

fn blocks(heights: std::ops::RangeInclusive<u64>) -> Vec<SyncBlock> {
    heights
        .map(|height| SyncBlock {
            height,
            unit: vec![height as u8; 32],
            certificate: vec![7; 64],
            finality: vec![8; 96],
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_sync_answers_bounded_batches_and_survives_garbage() {
    bounded(async {
        let (a, mut a_events) = start(41, NetworkSection { sync_batch_blocks_max: 8, ..NetworkSection::default() });
        a.subscribe("main", &GENESIS).unwrap();
        let (b, mut b_events) = start(42, NetworkSection { sync_batch_blocks_max: 1000, ..bootstrapping_to(&a) });
        wait_until("A and B connect", || b.peers().len() == 1).await;

        let request = SyncRequest { chain: "main".into(), from_height: 1, count: 3 };
        b.request_blocks(a.local_peer_id(), request.clone()).unwrap();
        let (asker, asked, reply) = next_blocks_requested(&mut a_events).await;
        assert_eq!((asker, &asked), (b.local_peer_id(), &request));
        // More blocks than asked for are cut to the count.
        a.answer_blocks(reply, SyncResponse { head_height: 10, blocks: blocks(1..=5) }).unwrap();
        let (from, answered, response) = next_blocks_received(&mut b_events).await;
        assert_eq!((from, answered), (a.local_peer_id(), request));
        assert_eq!(response.unwrap(), SyncResponse { head_height: 10, blocks: blocks(1..=3) });

        let too_many = SyncRequest { chain: "main".into(), from_height: 1, count: 9 };
        b.request_blocks(a.local_peer_id(), too_many).unwrap();
        let (_, _, response) = next_blocks_received(&mut b_events).await;
        let error = response.unwrap_err();
        assert!(error.contains("sync_batch_blocks_max"), "{error}");

        let failures = send_garbage(&a).await;
        assert_eq!(failures, 2, "both garbage requests fail on the asker's side");

        let request = SyncRequest { chain: "main".into(), from_height: 4, count: 1 };
        b.request_blocks(a.local_peer_id(), request.clone()).unwrap();
        let (asker, asked, reply) = next_blocks_requested(&mut a_events).await;
        assert_eq!((asker, asked), (b.local_peer_id(), request), "garbage never reached the node");
        a.answer_blocks(reply, SyncResponse { head_height: 10, blocks: blocks(4..=4) }).unwrap();
        let (_, _, response) = next_blocks_received(&mut b_events).await;
        assert_eq!(response.unwrap().blocks, blocks(4..=4));
        a.shutdown();
        b.shutdown();
    })
    .await;
}

/// A peer asking for blocks faster than `sync_requests_per_peer_per_s` is refused with
/// the reason, without reaching the node; within the rate it is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_requests_over_the_per_peer_rate_are_refused_before_the_node() {
    bounded(async {
        let strict = NetworkSection { sync_requests_per_peer_per_s: 3, ..NetworkSection::default() };
        let (a, mut a_events) = start(43, strict);
        a.subscribe("main", &GENESIS).unwrap();
        let (b, mut b_events) = start(44, bootstrapping_to(&a));
        wait_until("A and B connect", || b.peers().len() == 1).await;
        let request = SyncRequest { chain: "main".into(), from_height: 1, count: 1 };
        for _ in 0..10 {
            b.request_blocks(a.local_peer_id(), request.clone()).unwrap();
        }
        let (mut served, mut refused) = (0, 0);
        while served + refused < 10 {
            tokio::select! {
                Some(NetEvent::BlocksRequested { reply, .. }) = a_events.recv() => {
                    a.answer_blocks(reply, SyncResponse { head_height: 1, blocks: blocks(1..=1) }).unwrap();
                }
                (_, _, response) = next_blocks_received(&mut b_events) => match response {
                    Ok(_) => served += 1,
                    Err(error) => {
                        assert!(error.contains("sync_requests_per_peer_per_s"), "{error}");
                        refused += 1;
                    }
                },
            }
        }
        assert!((3..=4).contains(&served), "a burst of the rate is served, got {served}");
        assert_eq!(served + refused, 10);
        a.shutdown();
        b.shutdown();
    })
    .await;
}

/// Writes raw bytes as a sync request and reads whatever comes back.
#[derive(Clone, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = libp2p::StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &Self::Protocol,
        _: &mut T,
    ) -> io::Result<Vec<u8>> {
        Err(io::Error::other("this client serves nothing"))
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        io.take(1 << 20).read_to_end(&mut bytes).await?;
        if bytes.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no answer"));
        }
        Ok(bytes)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&request).await?;
        io.close().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &Self::Protocol,
        _: &mut T,
        _: Vec<u8>,
    ) -> io::Result<()> {
        Err(io::Error::other("this client serves nothing"))
    }
}

/// Sends `target` a frame claiming 1 GiB and a well-framed body that is not borsh;
/// returns how many of the two failed.
async fn send_garbage(target: &NetHandle) -> usize {
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                RawCodec,
                [(SYNC_PROTOCOL, request_response::ProtocolSupport::Outbound)],
                request_response::Config::default(),
            )
        })
        .unwrap()
        .build();
    let peer = target.local_peer_id();
    swarm.add_peer_address(peer, target.listen_addrs()[0].clone());
    let mut huge_claim = (1u32 << 30).to_be_bytes().to_vec();
    huge_claim.extend_from_slice(&[0; 64]);
    let mut not_borsh = 8u32.to_be_bytes().to_vec();
    not_borsh.extend_from_slice(&[0xff; 8]);
    swarm.behaviour_mut().send_request(&peer, huge_claim);
    swarm.behaviour_mut().send_request(&peer, not_borsh);
    let (mut failures, mut answers) = (0, 0);
    while failures + answers < 2 {
        match swarm.select_next_some().await {
            libp2p::swarm::SwarmEvent::Behaviour(request_response::Event::OutboundFailure { .. }) => failures += 1,
            libp2p::swarm::SwarmEvent::Behaviour(request_response::Event::Message { .. }) => answers += 1,
            _ => {}
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_naming_an_author_never_reach_the_node() {
    bounded(async {
        let (a, mut a_events) = start(81, NetworkSection::default());
        a.subscribe("main", &GENESIS).unwrap();
        let victim = keypair_from_node_key(&node_key(82)).unwrap().public().to_peer_id();
        let sent = send_unsigned_as(victim, &a, 5).await;
        assert_eq!(sent, 5, "the forger's messages were sent to A");
        assert!(
            next_message(&mut a_events, Duration::from_secs(1)).await.is_none(),
            "gossip carries no author: a message naming one (here forged) is dropped before the node"
        );
        a.shutdown();
    })
    .await;
}

/// Publishes messages naming `author` (unsigned) on A's consensus topic until `count` of them
/// went out to at least one subscribed peer; returns how many did.
async fn send_unsigned_as(author: PeerId, target: &NetHandle, count: usize) -> usize {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Permissive)
        .heartbeat_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| {
            let behaviour: gossipsub::Behaviour =
                gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Author(author), config)?;
            Ok(behaviour)
        })
        .unwrap()
        .build();
    let topic = gossipsub::IdentTopic::new(Topic::Consensus.name("main", &GENESIS));
    swarm.behaviour_mut().subscribe(&topic).unwrap();
    swarm.dial(target.listen_addrs()[0].clone()).unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let (mut sent, mut attempt) = (0, 0u32);
    while sent < count {
        tokio::select! {
            _ = swarm.select_next_some() => {}
            _ = tick.tick() => {
                attempt += 1;
                let payload = format!("forged {attempt}").into_bytes();
                if swarm.behaviour_mut().publish(topic.clone(), payload).is_ok() {
                    sent += 1;
                }
            }
        }
    }
    // Let the last ones arrive before the swarm is dropped.
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            swarm.select_next_some().await;
        }
    })
    .await;
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_named() {
    bounded(async {
        let key = node_key(51);
        let start_with = |section: NetworkSection| Net::start(&section, &key).err().expect("refused").to_string();

        let error = start_with(NetworkSection { listen: vec!["127.0.0.1:7000".into()], ..NetworkSection::default() });
        assert!(error.starts_with("[network] listen \"127.0.0.1:7000\": "), "{error}");

        let error = start_with(NetworkSection {
            bootstrap: vec!["/ip4/127.0.0.1/tcp/7000".into()],
            ..NetworkSection::default()
        });
        assert_eq!(error, "[network] bootstrap \"/ip4/127.0.0.1/tcp/7000\": no /p2p/<peer id> at the end");

        let error = start_with(NetworkSection { bootstrap: vec!["/ip4/nowhere".into()], ..NetworkSection::default() });
        assert!(error.starts_with("[network] bootstrap \"/ip4/nowhere\": "), "{error}");

        let error = start_with(NetworkSection { messages_per_peer_per_s: 0, ..NetworkSection::default() });
        assert_eq!(error, "[network] messages_per_peer_per_s: must be at least 1");

        let (handle, _events) = start(52, NetworkSection::default());
        let error = handle.publish("side", Topic::Txs, vec![1]).unwrap_err().to_string();
        assert_eq!(error, "chain \"side\" is not subscribed");
        let error = handle
            .request_blocks(handle.local_peer_id(), SyncRequest { chain: "main".into(), from_height: 0, count: 0 });
        assert!(matches!(error, Err(NetError::BatchSize { count: 0, max: 256 })), "{error:?}");
        handle.shutdown();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_listen_list_runs_alone() {
    bounded(async {
        let (handle, _events) = start(61, NetworkSection { listen: vec![], ..NetworkSection::default() });
        assert!(handle.listen_addrs().is_empty());
        handle.subscribe("main", &GENESIS).unwrap();
        handle.publish("main", Topic::Txs, b"alone".to_vec()).unwrap();
        wait_until("the publish is counted", || handle.stats().messages_published_without_peers == 1).await;
        handle.shutdown();
    })
    .await;
}

#[test]
fn start_outside_a_runtime_is_refused() {
    let error = Net::start(&NetworkSection::default(), &node_key(71)).err().expect("refused").to_string();
    assert_eq!(error, "network: Net::start must run inside a tokio runtime");
}
