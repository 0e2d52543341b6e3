//! Head-of-line blocking: a client hammering `GET /v1/chains/main/blocks/{h}` and a peer
//! hammering block-sync requests at a validator do not delay its blocks by more than
//! one interval, against a quiet window of the same run. The client is held to its
//! per-address rate (429s), the peer to its sync rate (`sync_requests_per_peer_per_s`),
//! and what they are served is served off the node loop.

use nest_host::crypto::SecretKey;
use nest_host::net::{Net, NetEvent, NetworkSection, SyncRequest};
use nest_tests::node::{NodeProcess, wait_until, write_devnet_nodes};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

const BLOCK_INTERVAL_MS: u64 = 300;
const WINDOW: Duration = Duration::from_secs(8);
const CLIENT_THREADS: usize = 2;

/// The sum and count of the commit-latency histogram on `node`.
fn commit_latency(node: &NodeProcess) -> (f64, f64) {
    let text = ureq::get(&format!("{}/metrics", node.url)).call().unwrap().into_string().unwrap();
    let read = |series: &str| {
        text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok()).unwrap_or(0.0)
    };
    (read("nest_commit_latency_seconds_sum{chain=\"main\"}"), read("nest_commit_latency_seconds_count{chain=\"main\"}"))
}

/// What one window of the run showed: mean commit latency and the longest gap between
/// consecutive block timestamps, in block intervals.
#[derive(Debug)]
struct Window {
    blocks: u64,
    mean_latency_ms: f64,
    longest_gap_intervals: u64,
}

/// The block at `height`, asked again while the client address is over its rate (the
/// hammering clients share this test's address, 127.0.0.1).
fn block(node: &NodeProcess, height: u64) -> serde_json::Value {
    for _ in 0..20 {
        match node.client().get::<serde_json::Value>(&format!("/v1/chains/main/blocks/{height}?txs=hashes")) {
            Ok(block) => return block,
            Err(error) if error.contains("HTTP 429") => std::thread::sleep(Duration::from_millis(500)),
            Err(error) => panic!("block {height}: {error}"),
        }
    }
    panic!("block {height}: still rate limited after 10 s");
}

/// Runs `during` for [`WINDOW`] and measures the blocks node committed meanwhile.
fn measure(node: &NodeProcess, during: impl FnOnce()) -> Window {
    let (sum_before, count_before) = commit_latency(node);
    let first = node.main_chain().height + 1;
    during();
    // Read from /metrics, which is not rate limited: the status may be, right after the hammer.
    let (sum_after, count_after) = commit_latency(node);
    let last = first + count_after as u64 - count_before as u64 - 1;
    let timestamps: Vec<u64> =
        (first.saturating_sub(1)..=last).map(|height| block(node, height)["timestamp_ms"].as_u64().unwrap()).collect();
    let longest_gap_ms = timestamps.windows(2).map(|pair| pair[1] - pair[0]).max().unwrap_or(0);
    let count = (count_after - count_before).max(1.0);
    Window {
        blocks: last + 1 - first,
        mean_latency_ms: (sum_after - sum_before) / count * 1000.0,
        longest_gap_intervals: longest_gap_ms.div_ceil(BLOCK_INTERVAL_MS),
    }
}

/// Asks `url` for random blocks below `height_max` as fast as it answers until `stop`;
/// counts answers and 429s.
fn hammer_blocks(
    url: String,
    height_max: u64,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    limited: Arc<AtomicU64>,
) {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(5)).build();
    let mut height = 1;
    while !stop.load(Ordering::Relaxed) {
        height = height * 7 % height_max + 1;
        match agent.get(&format!("{url}/v1/chains/main/blocks/{height}")).call() {
            Ok(_) => answered.fetch_add(1, Ordering::Relaxed),
            Err(ureq::Error::Status(429, _)) => limited.fetch_add(1, Ordering::Relaxed),
            Err(other) => panic!("GET block {height}: {other}"),
        };
    }
}

#[test]
fn hammering_block_queries_and_sync_requests_do_not_delay_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = write_devnet_nodes(dir.path(), BLOCK_INTERVAL_MS, Vec::new(), 2, 2);
    let nodes: Vec<NodeProcess> = devnet.manifests.iter().map(|manifest| NodeProcess::start(manifest)).collect();
    let target = &nodes[0];
    wait_until(Duration::from_secs(60), "30 blocks", || target.main_chain().height >= 30);

    let quiet = measure(target, || std::thread::sleep(WINDOW));

    let p2p = std::fs::read_to_string(devnet.manifests[0].parent().unwrap().join("data/p2p.addr")).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let section = NetworkSection { bootstrap: vec![p2p.lines().next().unwrap().to_string()], ..Default::default() };
    let (peer, mut events) = runtime
        .block_on(async { tokio::spawn(async move { Net::start(&section, &SecretKey::from_seed([77; 32])) }).await })
        .unwrap()
        .unwrap();
    wait_until(Duration::from_secs(20), "the hammering peer to connect", || !peer.peers().is_empty());
    let target_peer = peer.peers()[0].0;

    let stop = Arc::new(AtomicBool::new(false));
    let (answered, limited) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (synced, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let height_max = target.main_chain().height;
    let hammered = measure(target, || {
        let clients: Vec<_> = (0..CLIENT_THREADS)
            .map(|_| {
                let (url, stop, answered, limited) =
                    (target.url.clone(), stop.clone(), answered.clone(), limited.clone());
                std::thread::spawn(move || hammer_blocks(url, height_max, stop, answered, limited))
            })
            .collect();
        let request = SyncRequest { chain: "main".into(), from_height: 1, count: 128 };
        let (sync_stop, synced_in, refused_in) = (stop.clone(), synced.clone(), refused.clone());
        let sync_peer = peer.clone();
        let sync_task = runtime.spawn(async move {
            // Keeps 16 requests in flight for as long as the window lasts.
            for _ in 0..16 {
                sync_peer.request_blocks(target_peer, request.clone()).unwrap();
            }
            while !sync_stop.load(Ordering::Relaxed) {
                let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await else {
                    continue;
                };
                if let NetEvent::BlocksReceived { response, .. } = event {
                    let counter = if response.is_ok() { &synced_in } else { &refused_in };
                    counter.fetch_add(1, Ordering::Relaxed);
                    sync_peer.request_blocks(target_peer, request.clone()).unwrap();
                }
            }
        });
        std::thread::sleep(WINDOW);
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.join().unwrap();
        }
        runtime.block_on(sync_task).unwrap();
    });
    peer.shutdown();

    let (answered, limited) = (answered.load(Ordering::Relaxed), limited.load(Ordering::Relaxed));
    let (synced, refused) = (synced.load(Ordering::Relaxed), refused.load(Ordering::Relaxed));
    eprintln!(
        "quiet {quiet:?}; hammered {hammered:?}; block queries answered {answered}, refused 429 {limited}; \
         sync answers {synced}, refused {refused}"
    );
    assert!(answered > 1_000, "the client hammered: {answered} answers");
    assert!(limited > 0, "the client was held to its rate");
    assert!(
        synced > 10 && refused > 0,
        "the peer hammered and was held to its rate: {synced} served, {refused} refused"
    );
    assert!(
        hammered.mean_latency_ms <= quiet.mean_latency_ms + BLOCK_INTERVAL_MS as f64,
        "commit latency grew by more than one interval: quiet {quiet:?}, hammered {hammered:?}"
    );
    assert!(
        hammered.longest_gap_intervals <= quiet.longest_gap_intervals.max(1) + 1,
        "a block came more than one interval late: quiet {quiet:?}, hammered {hammered:?}"
    );
    assert!(hammered.blocks + 2 >= quiet.blocks, "blocks kept coming: quiet {quiet:?}, hammered {hammered:?}");
}
