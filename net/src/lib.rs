//! Connect the node to its peers: gossip per chain, block sync, bounded in every direction.
//!
//! One tokio task owns the libp2p swarm (TCP + noise + yamux; identify; gossipsub with
//! strict signatures and host validation; request-response for block sync). The node talks
//! to it through a [`NetHandle`] (non-blocking sends into a bounded command queue) and hears
//! from it on a bounded [`NetEvent`] receiver. The node's libp2p identity is its Ed25519
//! node key, so its peer id is stable across restarts and every peer id names a node key.
//!
//! Every gossip message is held until the node reports a [`Verdict`]; only accepted ones are
//! forwarded. Before a message reaches the node, the task drops (and reports as rejected)
//! what is over a peer's rate or over `message_bytes_max`; rejections lower the sender's
//! gossipsub score. See `docs/adr/0004-network.md`.

mod behaviour;
mod codec;
pub mod limits;
mod task;
pub mod telemetry;
#[cfg(test)]
mod tests;

pub use codec::{WireResponse, decode_request_frame, decode_response_frame};
pub use libp2p::{Multiaddr, PeerId, gossipsub::MessageId};

use libp2p::{multiaddr::Protocol, request_response::ResponseChannel};
use limits::{CHAIN_ID_BYTES_MAX, CHAINS_MAX, COMMANDS_QUEUED_MAX, EVENTS_QUEUED_MAX};
pub use nest_chain::wire::{SyncBlock, Verdict};
use serde::{Deserialize, Serialize};
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};
use tokio::sync::mpsc;

/// `[network]`: where the node listens, whom it dials first, and the limits on its peers.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// Multiaddrs to listen on; an empty list turns networking off.
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// Peers dialled at start and re-dialled while not connected: `/ip4/…/tcp/…/p2p/<peer id>`.
    #[serde(default)]
    pub bootstrap: Vec<String>,
    /// Most connections established at once, inbound and outbound together.
    #[serde(default = "default_peers_max")]
    pub peers_max: u32,
    /// Largest gossip message data and largest block sync response frame.
    #[serde(default = "default_message_bytes_max")]
    pub message_bytes_max: usize,
    /// Gossip messages a second accepted from one peer (token bucket, bursts of as many);
    /// more are dropped, counted and reported as rejected.
    #[serde(default = "default_messages_per_peer_per_s")]
    pub messages_per_peer_per_s: u32,
    /// Most blocks asked for or answered in one sync request.
    #[serde(default = "default_sync_batch_blocks_max")]
    pub sync_batch_blocks_max: u32,
    /// Block-sync requests a second answered for one peer (token bucket, bursts of as
    /// many); more are refused with the reason and counted. A node catching up asks one
    /// batch at a time per chain, so this bounds a hammering peer, not an honest one.
    #[serde(default = "default_sync_requests_per_peer_per_s")]
    pub sync_requests_per_peer_per_s: u32,
    /// Find peers beyond the bootstrap list through the Kademlia DHT (on by default; off
    /// keeps a node to the peers it is told of and those that dial it).
    #[serde(default = "default_discovery")]
    pub discovery: bool,
}

impl Default for NetworkSection {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            bootstrap: Vec::new(),
            peers_max: default_peers_max(),
            message_bytes_max: default_message_bytes_max(),
            messages_per_peer_per_s: default_messages_per_peer_per_s(),
            sync_batch_blocks_max: default_sync_batch_blocks_max(),
            sync_requests_per_peer_per_s: default_sync_requests_per_peer_per_s(),
            discovery: default_discovery(),
        }
    }
}

fn default_listen() -> Vec<String> {
    vec!["/ip4/127.0.0.1/tcp/0".to_string()]
}
fn default_peers_max() -> u32 {
    50
}
fn default_message_bytes_max() -> usize {
    4 * 1024 * 1024
}
fn default_messages_per_peer_per_s() -> u32 {
    500
}
fn default_discovery() -> bool {
    true
}
fn default_sync_batch_blocks_max() -> u32 {
    256
}
fn default_sync_requests_per_peer_per_s() -> u32 {
    20
}

/// Addresses and limits of a [`NetworkSection`], parsed and checked.
#[derive(Debug, Clone)]
pub(crate) struct NetworkPlan {
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<(PeerId, Multiaddr)>,
}

impl NetworkSection {
    /// False when `listen` is empty: the node runs alone.
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }

    /// Parses the addresses and checks the limits; errors name the key and the value.
    pub fn check(&self) -> Result<(), NetError> {
        self.plan().map(|_| ())
    }

    pub(crate) fn plan(&self) -> Result<NetworkPlan, NetError> {
        let limits = [
            ("peers_max", self.peers_max as usize),
            ("message_bytes_max", self.message_bytes_max),
            ("messages_per_peer_per_s", self.messages_per_peer_per_s as usize),
            ("sync_batch_blocks_max", self.sync_batch_blocks_max as usize),
            ("sync_requests_per_peer_per_s", self.sync_requests_per_peer_per_s as usize),
        ];
        if let Some((key, _)) = limits.iter().find(|(_, value)| *value == 0) {
            return Err(NetError::Config { key: (*key).to_string(), reason: "must be at least 1".to_string() });
        }
        if self.message_bytes_max > u32::MAX as usize / 2 {
            return Err(NetError::Config { key: "message_bytes_max".into(), reason: "must be below 2 GiB".into() });
        }
        let listen = self
            .listen
            .iter()
            .map(|text| {
                text.parse::<Multiaddr>().map_err(|e| NetError::Listen { addr: text.clone(), reason: e.to_string() })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bootstrap = self.bootstrap.iter().map(|text| parse_bootstrap(text)).collect::<Result<Vec<_>, _>>()?;
        Ok(NetworkPlan { listen, bootstrap })
    }
}

fn parse_bootstrap(text: &str) -> Result<(PeerId, Multiaddr), NetError> {
    let invalid = |reason: String| NetError::Bootstrap { addr: text.to_string(), reason };
    let addr: Multiaddr = text.parse().map_err(|e: libp2p::multiaddr::Error| invalid(e.to_string()))?;
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Ok((peer, addr)),
        _ => Err(invalid("no /p2p/<peer id> at the end".to_string())),
    }
}

/// A network operation failed or a network setting is wrong.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A `listen` address does not parse or could not be bound.
    #[error("[network] listen \"{addr}\": {reason}")]
    Listen {
        /// The address as written.
        addr: String,
        /// What is wrong.
        reason: String,
    },
    /// A `bootstrap` address does not parse or names no peer.
    #[error("[network] bootstrap \"{addr}\": {reason}")]
    Bootstrap {
        /// The address as written.
        addr: String,
        /// What is wrong.
        reason: String,
    },
    /// A limit in `[network]` is out of range.
    #[error("[network] {key}: {reason}")]
    Config {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The node key cannot serve as a libp2p identity.
    #[error("node key: {0}")]
    Key(String),
    /// The transport could not be built.
    #[error("network transport: {0}")]
    Transport(String),
    /// `Net::start` was not called inside a multi-thread tokio runtime.
    #[error("network: {0}")]
    Runtime(String),
    /// A message is larger than `message_bytes_max`.
    #[error("message of {bytes} bytes exceeds message_bytes_max ({max})")]
    Oversized {
        /// Size of the message.
        bytes: usize,
        /// The bound.
        max: usize,
    },
    /// A sync request asks for no blocks or for more than `sync_batch_blocks_max`.
    #[error("sync request for {count} blocks: must be 1 to sync_batch_blocks_max ({max})")]
    BatchSize {
        /// Blocks asked for.
        count: u32,
        /// The bound.
        max: u32,
    },
    /// The chain id is empty, too long, or the node already follows `CHAINS_MAX` chains.
    #[error("chain \"{chain}\": {reason}")]
    Chain {
        /// The chain id.
        chain: String,
        /// What is wrong.
        reason: String,
    },
    /// Publishing on a chain this node has not subscribed to.
    #[error("chain \"{0}\" is not subscribed")]
    NotSubscribed(String),
    /// The command queue is full (`COMMANDS_QUEUED_MAX`); the caller may retry later.
    #[error("network command queue is full ({COMMANDS_QUEUED_MAX} commands)")]
    QueueFull,
    /// The network task has stopped.
    #[error("network task has stopped")]
    Stopped,
}

/// The two gossip topics of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Transactions waiting for a block.
    Txs,
    /// Messages between consensus engines.
    Consensus,
}

impl Topic {
    /// The topic's name in metrics.
    pub fn label(self) -> &'static str {
        self.suffix()
    }

    fn suffix(self) -> &'static str {
        match self {
            Topic::Txs => "txs",
            Topic::Consensus => "consensus",
        }
    }

    /// The topic name: `nest/{chain}/{first 16 hex digits of the genesis hash}/{txs|consensus}`.
    pub fn name(self, chain: &str, genesis: &nest_sdk::Hash32) -> String {
        format!("nest/{chain}/{}/{}", &genesis.to_hex()[..16], self.suffix())
    }
}

/// A block sync request: `count` blocks of `chain` from `from_height` up.
#[derive(borsh::BorshSerialize, borsh::BorshDeserialize, Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    /// Chain id.
    pub chain: String,
    /// First height asked for.
    pub from_height: u64,
    /// Blocks asked for, 1 to `sync_batch_blocks_max`.
    pub count: u32,
}

/// The answer to a [`SyncRequest`].
#[derive(borsh::BorshSerialize, borsh::BorshDeserialize, Clone, Debug, PartialEq, Eq)]
pub struct SyncResponse {
    /// The responder's head height, so the asker knows how far to go.
    pub head_height: u64,
    /// Blocks in height order, at most the count asked for (fewer if the frame would be too large).
    pub blocks: Vec<SyncBlock>,
}

/// Where the answer to one inbound sync request goes; pass it to [`NetHandle::answer_blocks`].
/// Dropping it answers the peer with nothing (its request fails).
#[derive(Debug)]
pub struct ResponseToken {
    channel: ResponseChannel<codec::WireResponse>,
    count_max: u32,
}

/// What the network tells the node.
#[derive(Debug)]
pub enum NetEvent {
    /// A gossip message passed signature, size and rate checks; report a verdict for `id`.
    Message {
        /// Chain id.
        chain: String,
        /// Which of the chain's topics.
        topic: Topic,
        /// Content id (SHA-256 of the bytes), for [`NetHandle::report`].
        id: MessageId,
        /// The peer that delivered it (its author or a relay: gossip names no author).
        from: PeerId,
        /// That peer's Ed25519 node key.
        from_key: nest_sdk::PublicKey,
        /// The message data.
        bytes: Vec<u8>,
    },
    /// A peer asks for blocks; answer with [`NetHandle::answer_blocks`].
    BlocksRequested {
        /// The asking peer.
        from: PeerId,
        /// What it asks for (count already checked against `sync_batch_blocks_max`).
        request: SyncRequest,
        /// Where the answer goes.
        reply: ResponseToken,
    },
    /// The answer to a [`NetHandle::request_blocks`].
    BlocksReceived {
        /// The peer asked.
        from: PeerId,
        /// The request.
        request: SyncRequest,
        /// Its blocks, or why there are none.
        response: Result<SyncResponse, String>,
    },
    /// A peer connected.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// Its node key.
        key: nest_sdk::PublicKey,
    },
    /// A peer's last connection closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
}

/// Counters of the network task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetStats {
    /// Peers connected now.
    pub peers: usize,
    /// Gossip messages the node reported as accepted.
    pub messages_accepted: u64,
    /// Gossip messages the node reported as rejected.
    pub messages_rejected: u64,
    /// Gossip messages the node reported as ignored, or that found the event queue full.
    pub messages_ignored: u64,
    /// Gossip messages dropped because their sender was over `messages_per_peer_per_s`.
    pub messages_rate_limited: u64,
    /// Gossip messages dropped because their data was over `message_bytes_max`.
    pub messages_oversized: u64,
    /// Messages this node published to at least one peer.
    pub messages_published: u64,
    /// Messages this node published while no peer was subscribed to the topic.
    pub messages_published_without_peers: u64,
    /// Events dropped because the node's event queue was full.
    pub events_dropped: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    rejected: AtomicU64,
    ignored: AtomicU64,
    rate_limited: AtomicU64,
    oversized: AtomicU64,
    published: AtomicU64,
    published_without_peers: AtomicU64,
    events_dropped: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Characters of a peer's agent version kept (it is the peer's text).
pub const AGENT_CHARS_MAX: usize = 64;

/// State the handle reads without asking the task.
struct Shared {
    local_peer_id: PeerId,
    message_bytes_max: usize,
    sync_batch_blocks_max: u32,
    listen_addrs: Mutex<Vec<Multiaddr>>,
    peers: Mutex<HashMap<PeerId, nest_sdk::PublicKey>>,
    /// What each connected peer said it runs (identify's agent version, cut to
    /// [`AGENT_CHARS_MAX`]).
    agents: Mutex<HashMap<PeerId, String>>,
    chains: Mutex<HashMap<String, nest_sdk::Hash32>>,
    counters: Counters,
    shutdown: tokio::sync::Notify,
}

/// What the handle asks of the swarm task.
enum Command {
    Subscribe { chain: String, genesis: nest_sdk::Hash32 },
    Publish { chain: String, topic: Topic, bytes: Vec<u8> },
    Report { id: MessageId, from: PeerId, verdict: Verdict },
    RequestBlocks { peer: PeerId, request: SyncRequest },
    AnswerBlocks { reply: ResponseToken, response: SyncResponse },
    Block { peer: PeerId, blocked: bool },
}

/// The peer id a node with `node_key` has on the network (stable across restarts).
pub fn peer_id_of(node_key: &nest_ledger::crypto::SecretKey) -> Result<PeerId, NetError> {
    Ok(behaviour::keypair_from_node_key(node_key)?.public().to_peer_id())
}

/// The network service; [`Net::start`] runs it.
pub struct Net;

impl Net {
    /// Builds the swarm from `section` with the identity of `node_key`, binds every listen
    /// address, dials the bootstrap peers and spawns the swarm task on the current runtime
    /// (which must be a multi-thread tokio runtime).
    pub fn start(
        section: &NetworkSection,
        node_key: &nest_ledger::crypto::SecretKey,
    ) -> Result<(NetHandle, mpsc::Receiver<NetEvent>), NetError> {
        let plan = section.plan()?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| NetError::Runtime("Net::start must run inside a tokio runtime".into()))?;
        if runtime.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return Err(NetError::Runtime("Net::start needs a multi-thread tokio runtime".into()));
        }
        let keypair = behaviour::keypair_from_node_key(node_key)?;
        let mut swarm = behaviour::build_swarm(section, keypair)?;
        let bound = tokio::task::block_in_place(|| runtime.block_on(task::bind(&mut swarm, &plan.listen)))?;
        let shared = Arc::new(Shared {
            local_peer_id: *swarm.local_peer_id(),
            message_bytes_max: section.message_bytes_max,
            sync_batch_blocks_max: section.sync_batch_blocks_max,
            listen_addrs: Mutex::new(bound),
            peers: Mutex::new(HashMap::new()),
            agents: Mutex::new(HashMap::new()),
            chains: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            shutdown: tokio::sync::Notify::new(),
        });
        let (commands, command_receiver) = mpsc::channel(COMMANDS_QUEUED_MAX);
        let (event_sender, events) = mpsc::channel(EVENTS_QUEUED_MAX);
        let swarm_task = task::SwarmTask::new(swarm, section, plan.bootstrap, shared.clone(), event_sender);
        runtime.spawn(swarm_task.run(command_receiver));
        Ok((NetHandle { commands, shared }, events))
    }
}

/// The node's side of the network: cheap to clone; every call returns at once.
#[derive(Clone)]
pub struct NetHandle {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

impl NetHandle {
    /// This node's peer id (derived from its node key).
    pub fn local_peer_id(&self) -> PeerId {
        self.shared.local_peer_id
    }

    /// The addresses the node listens on, ports resolved.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        lock(&self.shared.listen_addrs).clone()
    }

    /// Joins the transaction and consensus topics of `chain` (its genesis in the name keeps
    /// different chains of the same id apart).
    pub fn subscribe(&self, chain: &str, genesis: &nest_sdk::Hash32) -> Result<(), NetError> {
        check_chain_id(chain)?;
        {
            let mut chains = lock(&self.shared.chains);
            if !chains.contains_key(chain) && chains.len() >= CHAINS_MAX {
                return Err(NetError::Chain { chain: chain.into(), reason: format!("more than {CHAINS_MAX} chains") });
            }
            chains.insert(chain.to_string(), *genesis);
        }
        self.send(Command::Subscribe { chain: chain.to_string(), genesis: *genesis })
    }

    /// Publishes `bytes` on a topic of a subscribed chain. With no peer on the topic the
    /// message goes nowhere; that is counted, not an error.
    pub fn publish(&self, chain: &str, topic: Topic, bytes: Vec<u8>) -> Result<(), NetError> {
        if bytes.len() > self.shared.message_bytes_max {
            return Err(NetError::Oversized { bytes: bytes.len(), max: self.shared.message_bytes_max });
        }
        if !lock(&self.shared.chains).contains_key(chain) {
            return Err(NetError::NotSubscribed(chain.to_string()));
        }
        self.send(Command::Publish { chain: chain.to_string(), topic, bytes })
    }

    /// Reports the node's verdict on a message from a [`NetEvent::Message`].
    pub fn report(&self, id: MessageId, from: PeerId, verdict: Verdict) -> Result<(), NetError> {
        self.send(Command::Report { id, from, verdict })
    }

    /// Asks `peer` for blocks; the answer comes as [`NetEvent::BlocksReceived`].
    pub fn request_blocks(&self, peer: PeerId, request: SyncRequest) -> Result<(), NetError> {
        let max = self.shared.sync_batch_blocks_max;
        if request.count == 0 || request.count > max {
            return Err(NetError::BatchSize { count: request.count, max });
        }
        check_chain_id(&request.chain)?;
        self.send(Command::RequestBlocks { peer, request })
    }

    /// Answers a [`NetEvent::BlocksRequested`]. Blocks past the count asked for, or past what
    /// fits in `message_bytes_max`, are left out (the asker asks again from there).
    pub fn answer_blocks(&self, reply: ResponseToken, response: SyncResponse) -> Result<(), NetError> {
        self.send(Command::AnswerBlocks { reply, response })
    }

    /// Connected peers and their node keys.
    pub fn peers(&self) -> Vec<(PeerId, nest_sdk::PublicKey)> {
        lock(&self.shared.peers).iter().map(|(peer, key)| (*peer, *key)).collect()
    }

    /// What each connected peer said it runs (`nestd/<version>` for a Nest node), once
    /// identify has answered.
    pub fn agents(&self) -> HashMap<PeerId, String> {
        lock(&self.shared.agents).clone()
    }

    /// The counters.
    pub fn stats(&self) -> NetStats {
        let counters = &self.shared.counters;
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        NetStats {
            peers: lock(&self.shared.peers).len(),
            messages_accepted: read(&counters.accepted),
            messages_rejected: read(&counters.rejected),
            messages_ignored: read(&counters.ignored),
            messages_rate_limited: read(&counters.rate_limited),
            messages_oversized: read(&counters.oversized),
            messages_published: read(&counters.published),
            messages_published_without_peers: read(&counters.published_without_peers),
            events_dropped: read(&counters.events_dropped),
        }
    }

    /// Blocks a peer (its connections close and new ones are refused) or unblocks it.
    pub fn set_blocked(&self, peer: PeerId, blocked: bool) -> Result<(), NetError> {
        self.send(Command::Block { peer, blocked })
    }

    /// Stops the swarm task; connections close and later calls fail with `Stopped`.
    pub fn shutdown(&self) {
        self.shared.shutdown.notify_one();
    }

    fn send(&self, command: Command) -> Result<(), NetError> {
        self.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => NetError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => NetError::Stopped,
        })
    }
}

fn check_chain_id(chain: &str) -> Result<(), NetError> {
    if chain.is_empty() || chain.len() > CHAIN_ID_BYTES_MAX || chain.contains('/') {
        return Err(NetError::Chain {
            chain: chain.to_string(),
            reason: format!("a chain id is 1 to {CHAIN_ID_BYTES_MAX} bytes without '/'"),
        });
    }
    Ok(())
}

/// Locks a mutex that no code panics while holding (only plain reads and writes happen under it).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
