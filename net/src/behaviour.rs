//! Compose the node's libp2p behaviour and build its swarm (TCP, noise, yamux).

use super::{
    NetError, NetworkSection,
    codec::{SYNC_PROTOCOL, SyncCodec},
    limits::{
        CONNECTIONS_PER_PEER_MAX, GOSSIP_ENVELOPE_BYTES, GOSSIP_HEARTBEAT_MS, GOSSIP_HISTORY_HEARTBEATS,
        IDLE_CONNECTION_TIMEOUT_MS, SYNC_REQUEST_TIMEOUT_MS, SYNC_STREAMS_PER_CONNECTION_MAX,
    },
};
use libp2p::{
    PeerId, StreamProtocol, Swarm, SwarmBuilder, connection_limits, gossipsub, identify, identity, kad, noise,
    request_response, swarm::NetworkBehaviour, tcp, yamux,
};
use std::time::Duration;

/// Protocol version announced through identify.
const IDENTIFY_PROTOCOL: &str = "/nest/1";
/// What the node says it runs through identify: `nestd/<version>`.
pub fn agent_version() -> String {
    format!("nestd/{}", env!("CARGO_PKG_VERSION"))
}

/// Kademlia protocol of Nest networks: a private DHT, apart from the public IPFS one.
const KADEMLIA_PROTOCOL: StreamProtocol = StreamProtocol::new("/nest/kad/1.0.0");

/// Every protocol a node speaks, polled by the one task that owns the swarm.
#[derive(NetworkBehaviour)]
pub struct NestBehaviour {
    /// Peers the operator blocked (disconnected and refused until unblocked).
    pub blocked: libp2p::allow_block_list::Behaviour<libp2p::allow_block_list::BlockedPeers>,
    /// Refuses connections past `peers_max`.
    pub limits: connection_limits::Behaviour,
    /// Exchanges listen addresses and protocol versions.
    pub identify: identify::Behaviour,
    /// Transactions and consensus messages, one pair of topics per chain.
    pub gossipsub: gossipsub::Behaviour,
    /// Block sync by height range.
    pub sync: request_response::Behaviour<SyncCodec>,
    /// Peer discovery: a Kademlia routing table filled from bootstrap peers and identify,
    /// walked periodically; peers it finds are dialled up to `peers_max`.
    pub discovery: kad::Behaviour<kad::store::MemoryStore>,
}

/// The libp2p identity of a node: its Ed25519 node key, so the peer id survives restarts.
pub fn keypair_from_node_key(node_key: &nest_ledger::crypto::SecretKey) -> Result<identity::Keypair, NetError> {
    let seed = node_key.seed().map_err(NetError::Key)?;
    identity::Keypair::ed25519_from_bytes(seed).map_err(|e| NetError::Key(e.to_string()))
}

/// The Ed25519 node key behind a peer id, when the id inlines one (as every Nest node's does).
pub fn peer_public_key(peer: &PeerId) -> Option<nest_sdk::PublicKey> {
    let multihash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    const IDENTITY_CODE: u64 = 0;
    if multihash.code() != IDENTITY_CODE {
        return None;
    }
    let key = identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    Some(nest_sdk::PublicKey(key.try_into_ed25519().ok()?.to_bytes()))
}

/// Builds the swarm with every limit from `section` applied.
pub fn build_swarm(section: &NetworkSection, keypair: identity::Keypair) -> Result<Swarm<NestBehaviour>, NetError> {
    let gossip_config = gossip_config(section)?;
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(section.peers_max))
        .with_max_established_per_peer(Some(CONNECTIONS_PER_PEER_MAX))
        .with_max_pending_incoming(Some(section.peers_max))
        .with_max_pending_outgoing(Some(section.peers_max));
    let sync_config = request_response::Config::default()
        .with_request_timeout(Duration::from_millis(SYNC_REQUEST_TIMEOUT_MS))
        .with_max_concurrent_streams(SYNC_STREAMS_PER_CONNECTION_MAX);
    let codec = SyncCodec { response_bytes_max: section.message_bytes_max };
    let transport_error = |e: &dyn std::fmt::Display| NetError::Transport(e.to_string());
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| transport_error(&e))?
        .with_behaviour(|key| {
            let mut gossipsub = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gossip_config)?;
            gossipsub.with_peer_score(score_params(), gossipsub::PeerScoreThresholds::default())?;
            let local = key.public().to_peer_id();
            let mut discovery = kad::Behaviour::with_config(
                local,
                kad::store::MemoryStore::new(local),
                kad::Config::new(KADEMLIA_PROTOCOL),
            );
            // Every Nest node answers DHT queries: networks are private, nodes reachable.
            discovery.set_mode(Some(kad::Mode::Server));
            Ok(NestBehaviour {
                blocked: libp2p::allow_block_list::Behaviour::default(),
                limits: connection_limits::Behaviour::new(limits),
                identify: identify::Behaviour::new(
                    identify::Config::new(IDENTIFY_PROTOCOL.to_string(), key.public())
                        .with_agent_version(agent_version()),
                ),
                gossipsub,
                sync: request_response::Behaviour::with_codec(
                    codec,
                    [(SYNC_PROTOCOL, request_response::ProtocolSupport::Full)],
                    sync_config,
                ),
                discovery,
            })
        })
        .map_err(|e| transport_error(&e))?
        .with_swarm_config(|config| {
            config.with_idle_connection_timeout(Duration::from_millis(IDLE_CONNECTION_TIMEOUT_MS))
        })
        .build();
    Ok(swarm)
}

/// Gossipsub for a small permissioned net: messages carry no author, sequence number or
/// gossip signature (what they hold is signed by its writers: transactions, votes,
/// proposals), every message is checked by the host before it is forwarded, ids by
/// content, an explicit size bound, flood publishing.
fn gossip_config(section: &NetworkSection) -> Result<gossipsub::Config, NetError> {
    gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|message: &gossipsub::Message| {
            gossipsub::MessageId::new(&nest_ledger::crypto::sha256(&message.data).0)
        })
        .max_transmit_size(section.message_bytes_max.saturating_add(GOSSIP_ENVELOPE_BYTES))
        .heartbeat_interval(Duration::from_millis(GOSSIP_HEARTBEAT_MS))
        .history_length(GOSSIP_HISTORY_HEARTBEATS)
        .flood_publish(true)
        .build()
        .map_err(|e| NetError::Config { key: "message_bytes_max".into(), reason: e.to_string() })
}

/// Peer scoring without penalties that assume steady traffic (quiet devnets are normal) or
/// distinct addresses (many nodes share one host or NAT in IoT deployments).
fn score_params() -> gossipsub::PeerScoreParams {
    gossipsub::PeerScoreParams { ip_colocation_factor_weight: 0.0, ..Default::default() }
}

/// Per-topic scoring: each message the host rejects costs its sender (squared, decaying).
pub fn topic_score_params() -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.9,
        ..Default::default()
    }
}
