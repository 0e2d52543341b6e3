//! Own the swarm: turn the handle's commands into libp2p calls and swarm events into `NetEvent`s.

use super::{
    Command, Counters, NetError, NetEvent, NetworkSection, ResponseToken, Shared, SyncRequest, SyncResponse, Topic,
    Verdict,
    behaviour::{NestBehaviour, NestBehaviourEvent, peer_public_key, topic_score_params},
    codec::{RESPONSE_HEADER_BYTES, WireResponse, block_bytes},
    limits::{
        BOOTSTRAP_REDIAL_MAX_MS, BOOTSTRAP_REDIAL_MS, DISCOVERY_ADDRS_PER_PEER_MAX, DISCOVERY_INTERVAL_MS,
        LISTEN_TIMEOUT_MS, RateLimiter, SYNC_REQUESTS_PENDING_MAX, VALIDATIONS_PENDING_MAX,
    },
    lock,
};
use libp2p::{
    Multiaddr, PeerId, Swarm,
    core::transport::ListenerId,
    futures::StreamExt,
    gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash},
    identify, kad,
    request_response::{self, OutboundRequestId},
    swarm::{
        SwarmEvent,
        dial_opts::{DialOpts, PeerCondition},
    },
};
use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::mpsc;

/// Binds every listen address and waits until each has reported its real address.
pub(super) async fn bind(swarm: &mut Swarm<NestBehaviour>, listen: &[Multiaddr]) -> Result<Vec<Multiaddr>, NetError> {
    let mut waiting: HashMap<ListenerId, Multiaddr> = HashMap::new();
    for addr in listen {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| NetError::Listen { addr: addr.to_string(), reason: e.to_string() })?;
        waiting.insert(id, addr.clone());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(LISTEN_TIMEOUT_MS);
    let mut bound = Vec::new();
    while let Some(pending) = waiting.values().next().cloned() {
        let failed = |reason: String| NetError::Listen { addr: pending.to_string(), reason };
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| failed(format!("not bound within {LISTEN_TIMEOUT_MS} ms")))?;
        match event {
            SwarmEvent::NewListenAddr { listener_id, address } => {
                waiting.remove(&listener_id);
                bound.push(address);
            }
            SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                if let Some(addr) = waiting.get(&listener_id) {
                    let reason = reason.err().map_or("closed".to_string(), |e| e.to_string());
                    return Err(NetError::Listen { addr: addr.to_string(), reason });
                }
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                if let Some(addr) = waiting.get(&listener_id) {
                    return Err(NetError::Listen { addr: addr.to_string(), reason: error.to_string() });
                }
            }
            _ => {}
        }
    }
    Ok(bound)
}

/// A bootstrap peer and when to dial it next.
struct BootstrapPeer {
    peer: PeerId,
    addr: Multiaddr,
    dials: u32,
    next_dial_at: Instant,
}

/// The task that owns the swarm.
pub(super) struct SwarmTask {
    swarm: Swarm<NestBehaviour>,
    shared: Arc<Shared>,
    events: mpsc::Sender<NetEvent>,
    message_bytes_max: usize,
    sync_batch_blocks_max: u32,
    rate: RateLimiter<PeerId>,
    /// Inbound sync requests per peer (`sync_requests_per_peer_per_s`).
    sync_rate: RateLimiter<PeerId>,
    sync_rate_per_s: u32,
    chains: HashMap<String, nest_sdk::Hash32>,
    topics: HashMap<TopicHash, (String, Topic)>,
    /// Propagation source of each message handed to the node, until its verdict.
    validations: HashMap<MessageId, PeerId>,
    validations_order: VecDeque<MessageId>,
    requests: HashMap<OutboundRequestId, (PeerId, SyncRequest)>,
    bootstrap: Vec<BootstrapPeer>,
    peers_max: usize,
    discovery: bool,
}

impl SwarmTask {
    pub(super) fn new(
        mut swarm: Swarm<NestBehaviour>,
        section: &NetworkSection,
        bootstrap: Vec<(PeerId, Multiaddr)>,
        shared: Arc<Shared>,
        events: mpsc::Sender<NetEvent>,
    ) -> Self {
        let now = Instant::now();
        let local = *swarm.local_peer_id();
        let bootstrap = if section.enabled() {
            bootstrap
                .into_iter()
                .filter(|(peer, _)| *peer != local)
                .map(|(peer, addr)| BootstrapPeer { peer, addr, dials: 0, next_dial_at: now })
                .collect()
        } else {
            Vec::new()
        };
        for peer in &bootstrap {
            swarm.behaviour_mut().discovery.add_address(&peer.peer, peer.addr.clone());
        }
        Self {
            swarm,
            shared,
            events,
            message_bytes_max: section.message_bytes_max,
            sync_batch_blocks_max: section.sync_batch_blocks_max,
            rate: RateLimiter::new(section.messages_per_peer_per_s),
            sync_rate: RateLimiter::new(section.sync_requests_per_peer_per_s),
            sync_rate_per_s: section.sync_requests_per_peer_per_s,
            chains: HashMap::new(),
            topics: HashMap::new(),
            validations: HashMap::new(),
            validations_order: VecDeque::new(),
            requests: HashMap::new(),
            bootstrap,
            peers_max: section.peers_max as usize,
            discovery: section.discovery,
        }
    }

    /// Runs until `shutdown` or until every handle is dropped.
    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let shared = self.shared.clone();
        let mut redial = tokio::time::interval(Duration::from_millis(BOOTSTRAP_REDIAL_MS));
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut discover = tokio::time::interval(Duration::from_millis(DISCOVERY_INTERVAL_MS));
        discover.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = shared.shutdown.notified() => break,
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.swarm_event(event),
                _ = redial.tick() => self.dial_bootstrap(Instant::now()),
                _ = discover.tick() => self.discover(),
            }
        }
        lock(&shared.peers).clear();
        lock(&shared.agents).clear();
        tracing::info!("network task stopped");
    }

    fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Subscribe { chain, genesis } => self.subscribe(chain, genesis),
            Command::Publish { chain, topic, bytes } => self.publish(&chain, topic, bytes),
            Command::Report { id, from, verdict } => self.report(id, from, verdict),
            Command::RequestBlocks { peer, request } => self.request_blocks(peer, request),
            Command::Block { peer, blocked } => {
                let list = &mut self.swarm.behaviour_mut().blocked;
                if blocked {
                    list.block_peer(peer);
                    tracing::info!(%peer, "peer blocked");
                } else {
                    list.unblock_peer(peer);
                    tracing::info!(%peer, "peer unblocked");
                    // A bootstrap peer is dialled again now, not after its back-off.
                    let now = Instant::now();
                    for bootstrap in self.bootstrap.iter_mut().filter(|b| b.peer == peer) {
                        bootstrap.dials = 0;
                        bootstrap.next_dial_at = now;
                    }
                    self.dial_bootstrap(now);
                }
            }
            Command::AnswerBlocks { reply, response } => {
                let answer = fit_response(response, reply.count_max, self.message_bytes_max);
                // Err: the asker has gone; nothing to do.
                let _ = self.swarm.behaviour_mut().sync.send_response(reply.channel, answer);
            }
        }
    }

    fn subscribe(&mut self, chain: String, genesis: nest_sdk::Hash32) {
        if let Some(old) = self.chains.insert(chain.clone(), genesis) {
            if old == genesis {
                return;
            }
            for topic in [Topic::Txs, Topic::Consensus] {
                let old_topic = IdentTopic::new(topic.name(&chain, &old));
                self.swarm.behaviour_mut().gossipsub.unsubscribe(&old_topic);
                self.topics.remove(&old_topic.hash());
            }
        }
        for topic in [Topic::Txs, Topic::Consensus] {
            let ident = IdentTopic::new(topic.name(&chain, &genesis));
            let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
            if let Err(e) = gossipsub.subscribe(&ident) {
                tracing::warn!(chain, error = %e, "gossip subscription failed");
                continue;
            }
            // Scoring is always on, so setting topic parameters cannot fail.
            let _ = gossipsub.set_topic_params(ident.clone(), topic_score_params());
            self.topics.insert(ident.hash(), (chain.clone(), topic));
        }
    }

    fn publish(&mut self, chain: &str, topic: Topic, bytes: Vec<u8>) {
        let Some(genesis) = self.chains.get(chain) else {
            tracing::warn!(chain, "publish on a chain that is not subscribed");
            return;
        };
        let ident = IdentTopic::new(topic.name(chain, genesis));
        match self.swarm.behaviour_mut().gossipsub.publish(ident, bytes) {
            Ok(_) => Counters::add(&self.counters().published),
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                Counters::add(&self.counters().published_without_peers)
            }
            Err(gossipsub::PublishError::Duplicate) => tracing::debug!(chain, "same bytes published again"),
            Err(e) => tracing::warn!(chain, error = %e, "gossip publish failed"),
        }
    }

    fn report(&mut self, id: MessageId, from: PeerId, verdict: Verdict) {
        let source = self.validations.remove(&id).unwrap_or(from);
        let (acceptance, counter) = match verdict {
            Verdict::Accept => (MessageAcceptance::Accept, &self.shared.counters.accepted),
            Verdict::Reject => (MessageAcceptance::Reject, &self.shared.counters.rejected),
            Verdict::Ignore => (MessageAcceptance::Ignore, &self.shared.counters.ignored),
        };
        Counters::add(counter);
        self.swarm.behaviour_mut().gossipsub.report_message_validation_result(&id, &source, acceptance);
    }

    fn request_blocks(&mut self, peer: PeerId, request: SyncRequest) {
        if self.requests.len() >= SYNC_REQUESTS_PENDING_MAX {
            let response = Err(format!("more than {SYNC_REQUESTS_PENDING_MAX} sync requests in flight"));
            self.emit(NetEvent::BlocksReceived { from: peer, request, response });
            return;
        }
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request.clone());
        self.requests.insert(id, (peer, request));
    }

    fn swarm_event(&mut self, event: SwarmEvent<NestBehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(NestBehaviourEvent::Gossipsub(event)) => self.gossip_event(event),
            SwarmEvent::Behaviour(NestBehaviourEvent::Sync(event)) => self.sync_event(event),
            SwarmEvent::Behaviour(NestBehaviourEvent::Identify(event)) => self.identify_event(event),
            SwarmEvent::Behaviour(NestBehaviourEvent::Discovery(event)) => self.discovery_event(event),
            SwarmEvent::Behaviour(NestBehaviourEvent::Limits(never)) => match never {},
            SwarmEvent::ConnectionEstablished { peer_id, num_established, .. } if num_established.get() == 1 => {
                self.peer_connected(peer_id)
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => self.peer_disconnected(peer_id),
            SwarmEvent::NewListenAddr { address, .. } => {
                let mut addrs = lock(&self.shared.listen_addrs);
                if !addrs.contains(&address) {
                    addrs.push(address);
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => lock(&self.shared.listen_addrs).retain(|a| *a != address),
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, %error, "dial failed")
            }
            _ => {}
        }
    }

    fn peer_connected(&mut self, peer: PeerId) {
        let Some(key) = peer_public_key(&peer) else {
            tracing::warn!(%peer, "peer id holds no Ed25519 key; disconnecting");
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        };
        lock(&self.shared.peers).insert(peer, key);
        if let Some(bootstrap) = self.bootstrap.iter_mut().find(|b| b.peer == peer) {
            bootstrap.dials = 0;
        }
        self.emit(NetEvent::PeerConnected { peer, key });
    }

    fn peer_disconnected(&mut self, peer: PeerId) {
        lock(&self.shared.agents).remove(&peer);
        if lock(&self.shared.peers).remove(&peer).is_none() {
            return;
        }
        self.rate.remove(&peer);
        self.sync_rate.remove(&peer);
        self.emit(NetEvent::PeerDisconnected { peer });
    }

    fn dial_bootstrap(&mut self, now: Instant) {
        for bootstrap in &mut self.bootstrap {
            if now < bootstrap.next_dial_at || self.swarm.is_connected(&bootstrap.peer) {
                continue;
            }
            let options = DialOpts::peer_id(bootstrap.peer)
                .addresses(vec![bootstrap.addr.clone()])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(error) = self.swarm.dial(options) {
                tracing::debug!(peer = %bootstrap.peer, %error, "bootstrap dial not started");
            }
            let wait_ms = (BOOTSTRAP_REDIAL_MS << bootstrap.dials.min(5)).min(BOOTSTRAP_REDIAL_MAX_MS);
            bootstrap.dials = bootstrap.dials.saturating_add(1);
            bootstrap.next_dial_at = now + Duration::from_millis(wait_ms);
        }
    }

    fn identify_event(&mut self, event: identify::Event) {
        if let identify::Event::Received { peer_id, info, .. } = event {
            if lock(&self.shared.peers).contains_key(&peer_id) {
                let agent: String = info.agent_version.chars().take(super::AGENT_CHARS_MAX).collect();
                lock(&self.shared.agents).insert(peer_id, agent);
            }
            for addr in info.listen_addrs.into_iter().take(DISCOVERY_ADDRS_PER_PEER_MAX) {
                self.swarm.behaviour_mut().discovery.add_address(&peer_id, addr.clone());
                self.swarm.add_peer_address(peer_id, addr);
            }
        }
    }

    /// Starts a Kademlia walk for peers (nothing to do while the table is empty).
    fn discover(&mut self) {
        if !self.discovery {
            return;
        }
        if self.swarm.behaviour_mut().discovery.bootstrap().is_err() {
            tracing::trace!("no known peers to discover from yet");
        }
    }

    /// Dials a peer the routing table learned, while there is room for it.
    fn discovery_event(&mut self, event: kad::Event) {
        let kad::Event::RoutingUpdated { peer, addresses, .. } = event else {
            return;
        };
        if !self.discovery {
            return;
        }
        let room = lock(&self.shared.peers).len() < self.peers_max;
        if !room || self.swarm.is_connected(&peer) || self.swarm.behaviour().blocked.blocked_peers().contains(&peer) {
            return;
        }
        let addresses: Vec<Multiaddr> = addresses.iter().take(DISCOVERY_ADDRS_PER_PEER_MAX).cloned().collect();
        let options =
            DialOpts::peer_id(peer).addresses(addresses).condition(PeerCondition::DisconnectedAndNotDialing).build();
        match self.swarm.dial(options) {
            Ok(()) => tracing::debug!(%peer, "dialling a discovered peer"),
            Err(error) => tracing::debug!(%peer, %error, "discovered peer not dialled"),
        }
    }

    fn gossip_event(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message { propagation_source, message_id, message } = event else {
            return;
        };
        let Some((chain, topic)) = self.topics.get(&message.topic).cloned() else {
            return self.drop_message(&message_id, &propagation_source, MessageAcceptance::Ignore);
        };
        if !self.rate.allow(&propagation_source, Instant::now()) {
            Counters::add(&self.counters().rate_limited);
            crate::telemetry::gossip_message(topic.label(), "rate_limited");
            return self.drop_message(&message_id, &propagation_source, MessageAcceptance::Reject);
        }
        if message.data.len() > self.message_bytes_max {
            Counters::add(&self.counters().oversized);
            crate::telemetry::gossip_message(topic.label(), "oversized");
            return self.drop_message(&message_id, &propagation_source, MessageAcceptance::Reject);
        }
        let from = propagation_source;
        let Some(from_key) = peer_public_key(&from) else {
            Counters::add(&self.counters().rejected);
            return self.drop_message(&message_id, &propagation_source, MessageAcceptance::Reject);
        };
        let event = NetEvent::Message { chain, topic, id: message_id.clone(), from, from_key, bytes: message.data };
        if self.emit(event) {
            self.await_verdict(message_id, propagation_source);
        } else {
            Counters::add(&self.counters().ignored);
            self.drop_message(&message_id, &propagation_source, MessageAcceptance::Ignore);
        }
    }

    fn drop_message(&mut self, id: &MessageId, source: &PeerId, acceptance: MessageAcceptance) {
        self.swarm.behaviour_mut().gossipsub.report_message_validation_result(id, source, acceptance);
    }

    fn await_verdict(&mut self, id: MessageId, source: PeerId) {
        if self.validations_order.len() >= VALIDATIONS_PENDING_MAX
            && let Some(oldest) = self.validations_order.pop_front()
        {
            // Gossipsub has long forgotten it too (its history is a few seconds).
            self.validations.remove(&oldest);
        }
        self.validations_order.push_back(id.clone());
        self.validations.insert(id, source);
    }

    fn sync_event(&mut self, event: request_response::Event<SyncRequest, WireResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.blocks_requested(peer, request, channel)
                }
                request_response::Message::Response { request_id, response } => {
                    self.blocks_received(request_id, response)
                }
            },
            request_response::Event::OutboundFailure { request_id, error, .. } => {
                self.blocks_received(request_id, Err(error.to_string()))
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound sync request failed")
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn blocks_requested(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        channel: request_response::ResponseChannel<WireResponse>,
    ) {
        let max = self.sync_batch_blocks_max;
        if !self.sync_rate.allow(&peer, Instant::now()) {
            crate::telemetry::sync_request("rate_limited");
            let reason = format!("over {} sync requests a second (sync_requests_per_peer_per_s)", self.sync_rate_per_s);
            let _ = self.swarm.behaviour_mut().sync.send_response(channel, Err(reason));
            return;
        }
        let refusal = if request.count == 0 || request.count > max {
            Some(format!("count {} is outside 1..={max} (sync_batch_blocks_max)", request.count))
        } else if !self.chains.contains_key(&request.chain) {
            Some(format!("unknown chain \"{}\"", request.chain.escape_debug()))
        } else {
            None
        };
        if let Some(reason) = refusal {
            crate::telemetry::sync_request("refused");
            let _ = self.swarm.behaviour_mut().sync.send_response(channel, Err(reason));
            return;
        }
        let reply = ResponseToken { channel, count_max: request.count };
        self.emit(NetEvent::BlocksRequested { from: peer, request, reply });
    }

    fn blocks_received(&mut self, id: OutboundRequestId, response: WireResponse) {
        let Some((from, request)) = self.requests.remove(&id) else {
            return;
        };
        let response = response.and_then(|response| {
            if response.blocks.len() > request.count as usize {
                return Err(format!("answered {} blocks to a request for {}", response.blocks.len(), request.count));
            }
            Ok(response)
        });
        self.emit(NetEvent::BlocksReceived { from, request, response });
    }

    /// Queues an event for the node; false (and counted) when the queue is full or closed.
    fn emit(&self, event: NetEvent) -> bool {
        if self.events.try_send(event).is_ok() {
            return true;
        }
        Counters::add(&self.counters().events_dropped);
        false
    }
}

/// Cuts a response to the count asked for and to what fits in one frame.
fn fit_response(mut response: SyncResponse, count_max: u32, bytes_max: usize) -> WireResponse {
    response.blocks.truncate(count_max as usize);
    let mut total = RESPONSE_HEADER_BYTES;
    let fitting = response
        .blocks
        .iter()
        .take_while(|block| {
            total = total.saturating_add(block_bytes(block));
            total <= bytes_max
        })
        .count();
    if let Some(first) = response.blocks.first()
        && fitting == 0
    {
        return Err(format!("block {} does not fit in message_bytes_max ({bytes_max})", first.height));
    }
    response.blocks.truncate(fitting);
    Ok(response)
}
