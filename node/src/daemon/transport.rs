//! The swarm's events: gossip (requests, completion notes, announcements), the request-response
//! messages (delivery, acknowledgement, failure) and the traffic counters.

use super::directory::node_id_of;
use super::net::{self, BehaviourEvent};
use super::{hook, Node};
use crate::clock::now_micros;
use grove_protocol::codec;
use grove_protocol::ids::NodeId;
use grove_protocol::message::{Body, Message};
use libp2p::gossipsub::IdentTopic;
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, identify, PeerId};
use std::collections::BTreeSet;

/// ` for (level, index) position p`, for debug traces of addressed messages.
pub(super) fn slot_text(slot: Option<&grove_protocol::message::Slot>) -> String {
    slot.map(|s| {
        format!(
            " for ({}, {}) position {}",
            s.group.level, s.group.index, s.position
        )
    })
    .unwrap_or_default()
}

impl Node {
    /// Closes the connections this node does not need (`connections`): above its target, those
    /// to peers that are not gossipsub mesh peers, have no send of it awaiting its ack or
    /// waiting to leave, are no peers of a computation in progress and were not used lately.
    pub(super) fn prune_connections(&mut self) {
        let swarm = &mut self.transport.swarm;
        let connected: BTreeSet<PeerId> = swarm.connected_peers().copied().collect();
        let now = std::time::Instant::now();
        if self.transport.connections.rejoin_due(connected.len(), now) {
            // Alone: dial the routing table's peers (the bootstrap peers among them) again.
            if swarm.behaviour_mut().kad.bootstrap().is_ok() {
                tracing::info!("no connection: dialing the routing table's peers again");
            }
        }
        if connected.len() <= self.transport.connections.target {
            return;
        }
        let engine = &self.engine;
        let connections = &mut self.transport.connections;
        connections.follow_work(
            &engine.node_id(),
            engine.computations().filter_map(|id| {
                let request = engine.request(id)?;
                Some((*id, engine.plan(id)?, request.request.commissioner_node))
            }),
        );
        let awaiting: BTreeSet<NodeId> = self.transport.pending_sends.destinations();
        let mesh: BTreeSet<PeerId> = swarm
            .behaviour()
            .gossipsub
            .all_mesh_peers()
            .copied()
            .collect();
        let keep = |p: &PeerId| mesh.contains(p) || awaiting.contains(&node_id_of(p));
        let directory = &self.membership.directory;
        let known = |p: &PeerId| directory.get(&node_id_of(p)).is_some();
        let close = connections.to_close_known(&connected, keep, |id| engine.plan(id), known, now);
        for peer in close {
            tracing::debug!("closing the connection to {peer}: not needed");
            let _ = swarm.disconnect_peer_id(peer);
        }
    }

    /// Why the swarm is dialing `peer` (`connections::DialCause`), as far as this node can
    /// tell: a send of its own to the peer, Kademlia's check of a full bucket's entry, a
    /// Kademlia query, or something else.
    fn dial_cause(&mut self, peer: &PeerId) -> super::connections::DialCause {
        use super::connections::{DialCause, QueryKind};
        use super::directory::{ACTIVE_REQUESTS, SNAPSHOTS};
        use libp2p::kad::QueryInfo;
        if self.transport.pending_sends.has_peer(peer) {
            return DialCause::Send;
        }
        let kad = &mut self.transport.swarm.behaviour_mut().kad;
        if kad.kbucket(*peer).is_some_and(|b| b.has_pending()) {
            return DialCause::KademliaLivenessCheck;
        }
        let kinds = kad.iter_queries().map(|q| match q.info() {
            QueryInfo::Bootstrap { .. } => QueryKind::Bootstrap,
            QueryInfo::GetRecord { key, .. } if key.as_ref().starts_with(ACTIVE_REQUESTS) => {
                QueryKind::RequestLookup
            }
            QueryInfo::GetRecord { key, .. } if key.as_ref().starts_with(SNAPSHOTS) => {
                QueryKind::SnapshotFetch
            }
            QueryInfo::PutRecord { .. } => QueryKind::PutRecord,
            _ => QueryKind::Other,
        });
        match QueryKind::of(kinds) {
            Some(kind) => DialCause::KademliaQuery(kind),
            None => DialCause::Other,
        }
    }

    pub(super) fn on_swarm_event(
        &mut self,
        event: SwarmEvent<BehaviourEvent>,
    ) -> anyhow::Result<()> {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!("listening on {address}/p2p/{}", self.peer_id);
                self.membership.listen_addrs.push(address);
                self.membership.announce_due = true;
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.on_gossip(e)?,
            SwarmEvent::Behaviour(BehaviourEvent::Messages(e)) => self.on_messages(e)?,
            SwarmEvent::Behaviour(BehaviourEvent::Sync(e)) => {
                if let request_response::Event::Message { peer, .. } = &e {
                    self.transport
                        .connections
                        .used(*peer, std::time::Instant::now());
                }
                self.on_sync(e)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for addr in info.listen_addrs {
                    let kad = &mut self.transport.swarm.behaviour_mut().kad;
                    net::add_routing_address(kad, &peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.on_kad(e)?,
            SwarmEvent::Dialing {
                peer_id: Some(peer),
                ..
            } => {
                let cause = self.dial_cause(&peer);
                tracing::debug!("dialing {peer}: {}", cause.name());
                self.transport.connections.dialing(peer, cause);
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                ..
            } => self.transport.connections.dial_failed(&peer),
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                tracing::debug!("connected to {peer_id}");
                let now = std::time::Instant::now();
                let connections = &mut self.transport.connections;
                if let Some((cause, ago)) =
                    connections.established(peer_id, endpoint.is_dialer(), now)
                {
                    tracing::debug!(
                        "re-dialed {peer_id} {} ms after its connection closed: {}",
                        ago.as_millis(),
                        cause.name()
                    );
                }
                // A send handed over before its connection was up starts its deadline now.
                self.transport.pending_sends.connected(&peer_id, now);
                // Above the ceiling, prune now: a burst of dials or of inbound connections
                // stood above it until the next tick (`Connections::over_ceiling`).
                let connected = self.transport.swarm.connected_peers().count();
                if self.transport.connections.over_ceiling(connected) {
                    self.prune_connections();
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                cause,
                num_established,
                ..
            } => {
                tracing::debug!("connection to {peer_id} closed: {cause:?}");
                if num_established == 0 {
                    self.transport
                        .connections
                        .closed(peer_id, std::time::Instant::now());
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) fn on_gossip(&mut self, event: gossipsub::Event) -> anyhow::Result<()> {
        let gossipsub::Event::Message { message, .. } = event else {
            return Ok(());
        };
        let directory_topic = IdentTopic::new(net::TOPIC_DIRECTORY).hash();
        if message.topic == directory_topic {
            self.on_announcement(&message.data);
            return Ok(());
        }
        let Some(source) = message.source else {
            return Ok(());
        };
        self.membership.agreement.stats.bytes_received += message.data.len() as u64;
        match codec::decode(&message.data) {
            Ok(m) if matches!(m.body, Body::Request(_)) => {
                self.on_request_message(node_id_of(&source), m)?;
            }
            Ok(m) => {
                self.count_received(&m);
                self.engine
                    .handle_message(now_micros(), node_id_of(&source), m);
                self.drain()?;
            }
            Err(e) => tracing::debug!("undecodable broadcast from {source}: {e}"),
        }
        Ok(())
    }

    pub(super) fn on_messages(
        &mut self,
        event: request_response::Event<net::Frame, ()>,
    ) -> anyhow::Result<()> {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    self.transport
                        .connections
                        .used(peer, std::time::Instant::now());
                    // `request` holds its room in the inbound budgets until this arm ends.
                    self.membership.agreement.stats.bytes_received += request.bytes.len() as u64;
                    match codec::decode(&request.bytes) {
                        Ok(m) => {
                            hook::observe(hook::Effect::Received(&m));
                            tracing::debug!(
                                "received {} from {}{}",
                                m.kind(),
                                node_id_of(&peer),
                                slot_text(m.to.as_ref())
                            );
                            self.count_received(&m);
                            self.engine
                                .handle_message(now_micros(), node_id_of(&peer), m);
                            self.drain()?;
                        }
                        Err(e) => tracing::debug!("undecodable message from {peer}: {e}"),
                    }
                    // Acknowledged once handled (and whatever it caused is persisted).
                    let _ = self
                        .transport
                        .swarm
                        .behaviour_mut()
                        .messages
                        .send_response(channel, ());
                }
                request_response::Message::Response { request_id, .. } => {
                    self.transport
                        .connections
                        .used(peer, std::time::Instant::now());
                    let now = std::time::Instant::now();
                    let late = self.transport.pending_sends.late_ack(&request_id);
                    self.transport.pending_sends.settle(&request_id, true, now);
                    if let Some(late) = late {
                        self.on_late_ack(late);
                    }
                    super::drain::hand_over(
                        &mut self.transport.swarm,
                        &mut self.transport.pending_sends,
                        &peer,
                    );
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if matches!(error, request_response::OutboundFailure::ConnectionClosed) {
                    self.transport.connections.sends_cut += 1;
                }
                let now = std::time::Instant::now();
                let settled = self.transport.pending_sends.settle(&request_id, false, now);
                super::drain::hand_over(
                    &mut self.transport.swarm,
                    &mut self.transport.pending_sends,
                    &peer,
                );
                match settled {
                    Some(p) => match codec::decode(&p.bytes) {
                        Ok(message) => {
                            self.on_unreachable(p.to, message, &format!("{peer}: {error}"));
                            self.drain()?;
                        }
                        Err(e) => tracing::warn!("send to {peer} failed ({error}); {e}"),
                    },
                    // Past its deadline already (`expire_sends`).
                    None => tracing::debug!("a send to {peer} failed: {error}"),
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!("inbound message from {peer} failed: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
        Ok(())
    }

    pub(super) fn count_received(&mut self, message: &Message) {
        *self
            .transport
            .received_by_kind
            .entry(message.kind())
            .or_default() += 1;
    }
}
