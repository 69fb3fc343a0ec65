//! Membership: this node's announcements, verified announcements joining the directory,
//! directory pulls (`/grove/directory-sync/1`) and, with `[admission]`, the admission view's
//! own gossip. Snapshots, parked requests and the DHT are in `agreement`.
//!
//! **Gossip.** With `[admission]`, the daemon runs the `Membership` machine's messages
//! (`grove_protocol::membership::view`): a node pushes its signed announcement to its routing
//! set once it has one, a node that admits a new certificate forwards it to `gossip_fanout`
//! routing peers, and every 10 s it opens an anti-entropy round with one routing peer. The
//! messages travel on the message protocol (`/grove/message/1`), told apart from the engine's
//! by [`GOSSIP_MAGIC`] ([`Node::intercept_gossip`]). A certificate always rides inside its
//! node's signed announcement ([`GossipWire::Push`]): a node id is a hash of the peer id, so a
//! certificate alone names no key to dial, seal to or verify under; the announcement is signed
//! by the node itself (its addresses and keys can change without its issuer), and it carries
//! the certificate, which the issuer signed. A pushed announcement enters the directory only if
//! its certificate is admitted by the view.
//!
//! What gossip replaces: an admitted node does not re-announce itself on the directory topic
//! (its first announcement goes to its routing set; the topic carries only a later change of
//! its addresses), and a node with `[admission]` pulls whole directories only twice at start
//! (its bootstrap set, verified announcement by announcement), then relies on anti-entropy.
//! Nodes without `[admission]`, or without a certificate, announce and pull as before.

use super::directory::{self, Announcement, Peer};
use super::net::{self, BehaviourEvent, Frame};
use super::Node;
use super::{ANNOUNCE_MIN_GAP, SYNC_GAP};
use crate::clock::now_micros;
use grove_protocol::ids::{Digest, NodeId};
use grove_protocol::membership::{MemberMessage, MemberOutput};
use libp2p::gossipsub;
use libp2p::gossipsub::IdentTopic;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Instant;

/// First bytes of a membership gossip message on the message protocol (the engine's messages
/// start with `grove_protocol::codec::MAGIC`, `GRV\0`).
pub const GOSSIP_MAGIC: [u8; 4] = *b"GRM\0";
/// Version byte after [`GOSSIP_MAGIC`].
pub const GOSSIP_VERSION: u8 = 1;
/// Largest gossip message, in bytes (a push of [`MAX_GOSSIP_ANNOUNCEMENTS`] announcements of
/// about 500 bytes fits; bigger pushes are split).
pub const MAX_GOSSIP_BYTES: usize = 256 * 1024;
/// Largest number of announcements in one push.
pub const MAX_GOSSIP_ANNOUNCEMENTS: usize = 256;
/// Largest number of gossip sends awaiting their acknowledgement; past it, sends are dropped
/// and counted (anti-entropy repairs them).
pub const MAX_GOSSIP_IN_FLIGHT: usize = 1024;

/// A membership message as it travels: the view's [`MemberMessage`], with certificates inside
/// their nodes' signed announcements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GossipWire {
    /// Signed announcements, each carrying its node's certificate.
    Push(Vec<Vec<u8>>),
    Summary {
        from_epoch: u64,
        count: u32,
        digest: u64,
    },
    Buckets {
        from_epoch: u64,
        digests: Vec<u64>,
    },
    Pull {
        from_epoch: u64,
        buckets: Vec<u16>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GossipError {
    #[error("not a membership message")]
    NotGossip,
    #[error("membership message version {0} is not {GOSSIP_VERSION}")]
    Version(u8),
    #[error("membership message of {0} bytes (limit {MAX_GOSSIP_BYTES})")]
    TooLarge(usize),
    #[error("membership message is malformed: {0}")]
    Malformed(String),
    #[error("push of {0} announcements (limit {MAX_GOSSIP_ANNOUNCEMENTS})")]
    TooManyAnnouncements(usize),
    #[error("pushed announcement of {0} bytes (limit {limit})", limit = directory::MAX_ANNOUNCEMENT_BYTES)]
    AnnouncementTooLarge(usize),
}

/// Whether `bytes` on the message protocol are a membership message (not the engine's).
pub fn is_gossip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GOSSIP_MAGIC)
}

/// The bytes of `wire`, or `None` past [`MAX_GOSSIP_BYTES`].
pub fn encode_gossip(wire: &GossipWire) -> Option<Vec<u8>> {
    let mut out = GOSSIP_MAGIC.to_vec();
    out.push(GOSSIP_VERSION);
    out.extend(postcard::to_allocvec(wire).ok()?);
    (out.len() <= MAX_GOSSIP_BYTES).then_some(out)
}

/// Decodes a membership message from a peer, within the size and count limits (remote input:
/// typed errors, never a panic). Signatures are checked by the caller.
pub fn decode_gossip(bytes: &[u8]) -> Result<GossipWire, GossipError> {
    if !is_gossip(bytes) {
        return Err(GossipError::NotGossip);
    }
    if bytes.len() > MAX_GOSSIP_BYTES {
        return Err(GossipError::TooLarge(bytes.len()));
    }
    match bytes.get(GOSSIP_MAGIC.len()) {
        Some(&GOSSIP_VERSION) => {}
        Some(v) => return Err(GossipError::Version(*v)),
        None => return Err(GossipError::Malformed("no version".into())),
    }
    let wire: GossipWire = postcard::from_bytes(&bytes[GOSSIP_MAGIC.len() + 1..])
        .map_err(|e| GossipError::Malformed(e.to_string()))?;
    if let GossipWire::Push(announcements) = &wire {
        if announcements.len() > MAX_GOSSIP_ANNOUNCEMENTS {
            return Err(GossipError::TooManyAnnouncements(announcements.len()));
        }
        if let Some(a) = announcements
            .iter()
            .find(|a| a.len() > directory::MAX_ANNOUNCEMENT_BYTES)
        {
            return Err(GossipError::AnnouncementTooLarge(a.len()));
        }
    }
    Ok(wire)
}

/// What membership costs this node, in messages and bytes (`grove status`'s
/// `membership_traffic`): the view's gossip, the directory topic's announcements, directory
/// pulls. Bytes are the application's payloads (a gossipsub message counts once, whatever the
/// mesh's duplicates).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Traffic {
    pub gossip_sent: u64,
    pub gossip_bytes_sent: u64,
    pub gossip_received: u64,
    pub gossip_bytes_received: u64,
    /// Gossip messages refused whole (undecodable, over a limit, refused by the view).
    pub gossip_refused: u64,
    /// Pushed announcements refused (bad signature, no certificate, certificate not admitted).
    pub announcements_refused: u64,
    /// Gossip sends dropped: no address for the peer, or too many in flight.
    pub gossip_dropped: u64,
    pub topic_published: u64,
    pub topic_bytes_published: u64,
    pub topic_received: u64,
    pub topic_bytes_received: u64,
    pub pulls_sent: u64,
    /// Pull requests and answers, each way.
    pub pull_bytes_sent: u64,
    pub pull_bytes_received: u64,
}

/// The gossip sends in flight, the traffic counters and whether this node's first
/// announcement went to its routing set.
#[derive(Default)]
pub(super) struct Gossip {
    pub traffic: Traffic,
    in_flight: HashSet<OutboundRequestId>,
    announced: bool,
    /// This node's first announcement while it waits for a routing set, with the listen
    /// addresses it was signed for.
    own: Option<(Vec<libp2p::Multiaddr>, Vec<u8>)>,
}

impl Node {
    /// Announces at start, when the listen addresses change (both set `announce_due`) and
    /// every `announce_interval` (an admitted node: not periodically, and its first
    /// announcement by gossip, see the module doc); at most once per [`ANNOUNCE_MIN_GAP`]. A newcomer learns the
    /// others by pulling the directory ([`Node::maybe_sync`]), not by everyone re-announcing
    /// to it: that cost N^2 broadcasts for N joining nodes, each received several times by
    /// every node, and saturated two cores at 100 daemons.
    ///
    /// Each gap is drawn between 3/4 and 5/4 of the interval: nodes started together would
    /// otherwise re-announce together, and every node hears every announcement (200 daemons
    /// on two cores stalled for a minute, in the middle of a computation).
    pub(super) fn maybe_announce(&mut self) {
        let since = self.membership.last_announce.map(|t| t.elapsed());
        // An admitted node with gossip does not re-announce: its certificate and announcement
        // spread by push and anti-entropy (module doc).
        let periodic = !self.gossip_announces()
            && since.is_none_or(|s| s >= self.membership.next_announce_gap);
        let allowed = since.is_none_or(|s| s >= ANNOUNCE_MIN_GAP);
        if (self.membership.announce_due || periodic) && allowed {
            self.announce();
        }
    }

    /// Whether this node spreads its announcement by the view's gossip: it has `[admission]`
    /// and its certificate admits it.
    fn gossip_announces(&self) -> bool {
        self.admission.as_ref().is_some_and(|a| a.own().is_some())
    }

    pub(super) fn announce(&mut self) {
        // The first announcement of an admitted node goes to its routing set, once its view
        // holds a peer (after the first directory pull); it is signed and served to pulls
        // meanwhile.
        let first_push = self.gossip_announces() && !self.membership.gossip.announced;
        if first_push {
            if let Some((addrs, bytes)) = self.membership.gossip.own.clone() {
                if addrs == self.membership.listen_addrs {
                    self.push_own(bytes);
                    return;
                }
            }
        }
        let now = now_micros().0;
        let announcement = Announcement {
            peer: self.peer_id.to_bytes(),
            x25519_public: self.x25519_public,
            addrs: self
                .membership
                .listen_addrs
                .iter()
                .take(directory::MAX_ANNOUNCED_ADDRS)
                .map(|a| a.to_string())
                .collect(),
            issued_at_micros: now,
            certificate: self.admission.as_ref().and_then(|a| a.own().cloned()),
        };
        let bytes = match directory::sign_announcement(&self.keys.libp2p, &announcement) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("cannot sign the announcement: {e}");
                return;
            }
        };
        self.membership.directory.insert_signed(
            Peer {
                peer_id: self.peer_id,
                node: self.me,
                x25519_public: self.x25519_public,
                ed25519_public: self.ed25519_public,
                addrs: self.membership.listen_addrs.clone(),
                issued_at_micros: now,
                certificate: announcement.certificate.clone(),
            },
            bytes.clone(),
        );
        if first_push {
            self.membership.gossip.own =
                Some((self.membership.listen_addrs.clone(), bytes.clone()));
            self.push_own(bytes);
            return;
        }
        let published = bytes.len() as u64;
        match self
            .transport
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(IdentTopic::new(net::TOPIC_DIRECTORY), bytes)
        {
            Ok(_) => {
                tracing::debug!("announced");
                self.membership.gossip.traffic.topic_published += 1;
                self.membership.gossip.traffic.topic_bytes_published += published;
                // Only a published announcement starts the gap: a node with no mesh peers yet
                // retries at the next tick.
                self.membership.last_announce = Some(Instant::now());
                self.membership.announce_due = false;
                self.membership.next_announce_gap = self
                    .membership
                    .announce_interval
                    .mul_f64(rand::Rng::gen_range(&mut rand::thread_rng(), 0.75..1.25));
            }
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                self.membership.announce_due = true;
            }
            Err(e) => {
                tracing::debug!("announcement not published: {e}");
                self.membership.announce_due = true;
            }
        }
    }

    /// Pushes this node's signed announcement to its routing set, if it has one yet.
    fn push_own(&mut self, bytes: Vec<u8>) {
        let Some(admission) = &mut self.admission else {
            return;
        };
        let routing = admission.routing_peers(now_micros());
        if routing.is_empty() {
            self.membership.announce_due = true;
            return;
        }
        for node in routing {
            if let Some(peer) = self.membership.directory.get(&node).map(|p| p.peer_id) {
                self.send_gossip(peer, &GossipWire::Push(vec![bytes.clone()]));
            }
        }
        tracing::debug!("announced to the routing set");
        self.membership.gossip.announced = true;
        self.membership.gossip.own = None;
        self.membership.last_announce = Some(Instant::now());
        self.membership.announce_due = false;
    }

    pub(super) fn on_announcement(&mut self, bytes: &[u8]) {
        self.membership.gossip.traffic.topic_received += 1;
        self.membership.gossip.traffic.topic_bytes_received += bytes.len() as u64;
        match directory::verify_announcement(bytes) {
            Ok(peer) => {
                self.learn_peers(vec![(peer, bytes.to_vec())]);
            }
            Err(e) => tracing::debug!("rejected an announcement: {e}"),
        }
    }

    /// Adds verified peers (from an announcement, a directory pull or a fetched snapshot) to
    /// the directory and to the swarm's address book. Only a new peer, or one whose addresses
    /// or key changed, is written to the store, all in one transaction: a periodic
    /// re-announcement changes nothing a restart needs. Returns how many peers were new.
    pub(crate) fn learn_peers(&mut self, peers: Vec<(Peer, Vec<u8>)>) -> usize {
        self.learn_peers_with(peers, true)
    }

    /// [`Node::learn_peers`]; `admit`: also hand their certificates to the admission view
    /// (gossip hands them itself, first, and keeps only the admitted).
    fn learn_peers_with(&mut self, peers: Vec<(Peer, Vec<u8>)>, admit: bool) -> usize {
        let mut to_store = Vec::new();
        let mut new_peers = 0;
        for (peer, bytes) in peers {
            if peer.peer_id == self.peer_id {
                continue;
            }
            for addr in &peer.addrs {
                let kad = &mut self.transport.swarm.behaviour_mut().kad;
                net::add_routing_address(kad, &peer.peer_id, addr.clone());
                self.transport
                    .swarm
                    .add_peer_address(peer.peer_id, addr.clone());
            }
            let id = peer.peer_id;
            if let (true, Some(admission), Some(cert)) =
                (admit, &mut self.admission, &peer.certificate)
            {
                if admission.learn(peer.node, cert.clone(), now_micros()) {
                    tracing::info!("admission: {id} is admitted");
                }
            }
            let d = &mut self.membership.directory;
            let changed = d.get(&peer.node).is_some_and(|old| {
                old.issued_at_micros < peer.issued_at_micros
                    && (old.addrs != peer.addrs
                        || old.x25519_public != peer.x25519_public
                        || old.certificate != peer.certificate)
            });
            let new = d.insert_signed(peer, bytes.clone());
            if new {
                new_peers += 1;
                tracing::info!("directory: {id} joined ({} peers)", d.len());
            }
            if new || changed {
                to_store.push((id.to_base58(), bytes));
            }
        }
        if let Err(e) = self.store.put_announcements(&to_store) {
            tracing::warn!("cannot store {} announcements: {e}", to_store.len());
        }
        new_peers
    }

    /// Pulls the directory from a connected peer: twice after the start, [`SYNC_GAP`] apart
    /// and from different peers, then (without `[admission]`, whose gossip repairs instead)
    /// from a random one every `directory_sync_secs`. The
    /// request carries this node's directory digest, so a pull between equal directories
    /// costs a few bytes.
    pub(super) fn maybe_sync(&mut self) {
        let Some(every) = self.membership.sync.every else {
            return;
        };
        if self.admission.is_some() && self.membership.sync.answered >= 2 {
            // The bootstrap set is in; the view's anti-entropy repairs what gossip missed.
            return;
        }
        let gap = if self.membership.sync.answered < 2 {
            SYNC_GAP
        } else {
            every
        };
        if self.membership.sync.last.is_some_and(|t| t.elapsed() < gap) {
            return;
        }
        let peer = if self.membership.sync.answered < 2 {
            self.transport
                .swarm
                .connected_peers()
                .find(|p| self.membership.sync.first != Some(**p))
                .copied()
        } else {
            use rand::seq::IteratorRandom;
            self.transport
                .swarm
                .connected_peers()
                .choose(&mut rand::thread_rng())
                .copied()
        };
        let Some(peer) = peer else {
            return;
        };
        tracing::debug!("pulling the directory from {peer}");
        let digest = self.membership.directory.digest();
        let asked = self
            .transport
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, digest.0);
        self.membership.gossip.traffic.pulls_sent += 1;
        self.membership.gossip.traffic.pull_bytes_sent += 1 + digest.0.len() as u64;
        self.membership.sync.first.get_or_insert(peer);
        self.membership.sync.last = Some(Instant::now());
        self.membership.sync.asked = Some((asked, Instant::now()));
    }

    pub(super) fn on_sync(&mut self, event: request_response::Event<[u8; 32], Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    self.membership.gossip.traffic.pull_bytes_received += 1 + request.len() as u64;
                    if !self.transport.pulls.allow(peer, Instant::now()) {
                        // Not answered: the asker sees a failed pull and asks again later.
                        self.transport
                            .inbound
                            .count(super::budget::InboundRejection::PullRate);
                        return;
                    }
                    let body =
                        directory::encode_for_sync(&self.membership.directory, &Digest(request));
                    self.membership.gossip.traffic.pull_bytes_sent += body.len() as u64;
                    let _ = self
                        .transport
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, body);
                }
                request_response::Message::Response {
                    response,
                    request_id,
                } => {
                    self.membership.sync.answered += 1;
                    self.membership.gossip.traffic.pull_bytes_received += response.len() as u64;
                    if let Some((asked, at)) = self.membership.sync.asked {
                        if asked == request_id {
                            self.membership.sync.rtt.record(at.elapsed());
                            self.membership.sync.asked = None;
                        }
                    }
                    let announcements = match directory::decode_sync(&response) {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!("bad directory from {peer}: {e}");
                            return;
                        }
                    };
                    let total = announcements.len();
                    // Only what this node lacks is verified (a signature check each).
                    let unknown = self.membership.directory.lacking(announcements);
                    let peers: Vec<(Peer, Vec<u8>)> = unknown
                        .into_iter()
                        .filter_map(|a| match directory::verify_announcement(&a) {
                            Ok(p) => Some((p, a)),
                            Err(e) => {
                                tracing::debug!("rejected a pulled announcement: {e}");
                                None
                            }
                        })
                        .collect();
                    let new = self.learn_peers(peers);
                    tracing::debug!("pulled {total} peers from {peer}, {new} of them new");
                }
            },
            request_response::Event::OutboundFailure { peer, error, .. } => {
                // Another peer is asked at the next gap.
                tracing::debug!("cannot pull the directory from {peer}: {error}");
            }
            _ => {}
        }
    }
}

impl Node {
    /// Takes the membership messages out of the swarm's events (requests that start with
    /// [`GOSSIP_MAGIC`], and the answers and failures of this node's gossip sends); every
    /// other event is returned for `on_swarm_event`.
    pub(super) fn intercept_gossip(
        &mut self,
        event: SwarmEvent<BehaviourEvent>,
    ) -> Option<SwarmEvent<BehaviourEvent>> {
        use request_response::{Event, Message};
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Messages(Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            })) if is_gossip(&request.bytes) => {
                self.on_gossip_message(peer, &request.bytes);
                // The request's hold on the inbound budgets ends here.
                drop(request);
                let _ = self
                    .transport
                    .swarm
                    .behaviour_mut()
                    .messages
                    .send_response(channel, ());
                None
            }
            SwarmEvent::Behaviour(BehaviourEvent::Messages(Event::Message {
                message: Message::Response { request_id, .. },
                ..
            })) if self.membership.gossip.in_flight.contains(&request_id) => {
                self.membership.gossip.in_flight.remove(&request_id);
                None
            }
            SwarmEvent::Behaviour(BehaviourEvent::Messages(Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            })) if self.membership.gossip.in_flight.contains(&request_id) => {
                // Lost: anti-entropy repairs what it carried.
                self.membership.gossip.in_flight.remove(&request_id);
                tracing::debug!("membership message to {peer} failed: {error}");
                None
            }
            other => Some(other),
        }
    }

    /// One membership message from `peer`. Pushed announcements are verified (only those the
    /// directory lacks), their certificates go to the view, and only the announcements whose
    /// certificate the view then admits join the directory; the view's answers and forwards
    /// leave at once.
    fn on_gossip_message(&mut self, peer: PeerId, bytes: &[u8]) {
        let traffic = &mut self.membership.gossip.traffic;
        traffic.gossip_received += 1;
        traffic.gossip_bytes_received += bytes.len() as u64;
        if self.admission.is_none() {
            traffic.gossip_refused += 1;
            return;
        }
        let wire = match decode_gossip(bytes) {
            Ok(w) => w,
            Err(e) => {
                traffic.gossip_refused += 1;
                tracing::debug!("refused a membership message from {peer}: {e}");
                return;
            }
        };
        let from = directory::node_id_of(&peer);
        let now = now_micros();
        let (message, peers) = match wire {
            GossipWire::Push(announcements) => {
                let mut certs = Vec::new();
                let mut peers = Vec::new();
                for a in self.membership.directory.lacking(announcements) {
                    match directory::verify_announcement(&a) {
                        Ok(p) => match p.certificate.clone() {
                            Some(cert) => {
                                certs.push(cert);
                                peers.push((p, a));
                            }
                            None => self.membership.gossip.traffic.announcements_refused += 1,
                        },
                        Err(e) => {
                            tracing::debug!("refused a pushed announcement from {peer}: {e}");
                            self.membership.gossip.traffic.announcements_refused += 1;
                        }
                    }
                }
                if certs.is_empty() {
                    return;
                }
                (MemberMessage::Push { entries: certs }, peers)
            }
            GossipWire::Summary {
                from_epoch,
                count,
                digest,
            } => (
                MemberMessage::Summary {
                    from_epoch,
                    count,
                    digest,
                },
                Vec::new(),
            ),
            GossipWire::Buckets {
                from_epoch,
                digests,
            } => (
                MemberMessage::Buckets {
                    from_epoch,
                    digests,
                },
                Vec::new(),
            ),
            GossipWire::Pull {
                from_epoch,
                buckets,
            } => (
                MemberMessage::Pull {
                    from_epoch,
                    buckets,
                },
                Vec::new(),
            ),
        };
        let Some(admission) = &mut self.admission else {
            return;
        };
        if let Err(e) = admission.handle(from, message, now) {
            self.membership.gossip.traffic.gossip_refused += 1;
            tracing::debug!("the view refused a membership message from {peer}: {e}");
        }
        let (admitted, refused): (Vec<_>, Vec<_>) = peers
            .into_iter()
            .partition(|(p, _)| admission.admits(&p.node));
        self.membership.gossip.traffic.announcements_refused += refused.len() as u64;
        if !admitted.is_empty() {
            self.learn_peers_with(admitted, false);
        }
        self.flush_gossip(Some((from, peer)));
    }

    /// The view's timer, then its sends (on the announce tick).
    pub(super) fn gossip_tick(&mut self) {
        if let Some(admission) = &mut self.admission {
            admission.tick(now_micros());
            self.flush_gossip(None);
        }
    }

    /// Carries the view's sends: each to its node's peer id (from the directory, or `hint`,
    /// the peer a message just came from), certificates inside their signed announcements.
    fn flush_gossip(&mut self, hint: Option<(NodeId, PeerId)>) {
        let Some(admission) = &mut self.admission else {
            return;
        };
        for output in admission.take_outputs() {
            let MemberOutput::Send { to, message } = output else {
                continue;
            };
            let peer = self
                .membership
                .directory
                .get(&to)
                .map(|p| p.peer_id)
                .or_else(|| hint.filter(|(n, _)| *n == to).map(|(_, p)| p));
            let Some(peer) = peer else {
                self.membership.gossip.traffic.gossip_dropped += 1;
                continue;
            };
            for wire in self.to_wire(message) {
                self.send_gossip(peer, &wire);
            }
        }
    }

    /// The view's message as it travels: a push's certificates replaced by the signed
    /// announcements that carry them (a certificate whose announcement this directory does
    /// not hold with that certificate is left out), split to fit [`MAX_GOSSIP_ANNOUNCEMENTS`].
    fn to_wire(&self, message: MemberMessage) -> Vec<GossipWire> {
        match message {
            MemberMessage::Push { entries } => {
                let directory = &self.membership.directory;
                let announcements: Vec<Vec<u8>> = entries
                    .iter()
                    .filter(|c| {
                        directory
                            .get(&c.node)
                            .is_some_and(|p| p.certificate.as_ref() == Some(*c))
                    })
                    .filter_map(|c| directory.signed(&c.node).map(<[u8]>::to_vec))
                    .collect();
                announcements
                    .chunks(MAX_GOSSIP_ANNOUNCEMENTS)
                    .map(|c| GossipWire::Push(c.to_vec()))
                    .collect()
            }
            MemberMessage::Summary {
                from_epoch,
                count,
                digest,
            } => vec![GossipWire::Summary {
                from_epoch,
                count,
                digest,
            }],
            MemberMessage::Buckets {
                from_epoch,
                digests,
            } => vec![GossipWire::Buckets {
                from_epoch,
                digests,
            }],
            MemberMessage::Pull {
                from_epoch,
                buckets,
            } => vec![GossipWire::Pull {
                from_epoch,
                buckets,
            }],
        }
    }

    fn send_gossip(&mut self, peer: PeerId, wire: &GossipWire) {
        let gossip = &mut self.membership.gossip;
        let Some(bytes) = encode_gossip(wire) else {
            gossip.traffic.gossip_dropped += 1;
            return;
        };
        if gossip.in_flight.len() >= MAX_GOSSIP_IN_FLIGHT {
            gossip.traffic.gossip_dropped += 1;
            return;
        }
        gossip.traffic.gossip_sent += 1;
        gossip.traffic.gossip_bytes_sent += bytes.len() as u64;
        let id = self
            .transport
            .swarm
            .behaviour_mut()
            .messages
            .send_request(&peer, Frame::outbound(bytes));
        self.membership.gossip.in_flight.insert(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gossip_round_trips_and_hostile_bytes_are_typed_errors() {
        let wire = GossipWire::Push(vec![vec![1; 300], vec![2; 400]]);
        let bytes = encode_gossip(&wire).unwrap();
        assert!(is_gossip(&bytes));
        assert_eq!(decode_gossip(&bytes).unwrap(), wire);
        // The engine's messages are never taken for gossip.
        assert!(!is_gossip(&grove_protocol::codec::MAGIC));
        assert_eq!(decode_gossip(b"GRV\0\x02"), Err(GossipError::NotGossip));
        // Another version, garbage, truncation: refused, no panic.
        let mut other = bytes.clone();
        other[GOSSIP_MAGIC.len()] = 9;
        assert_eq!(decode_gossip(&other), Err(GossipError::Version(9)));
        assert!(matches!(
            decode_gossip(&bytes[..bytes.len() - 10]),
            Err(GossipError::Malformed(_))
        ));
        assert!(decode_gossip(&GOSSIP_MAGIC).is_err());
        // Over the limits: too many announcements, one too large, the whole too large.
        let many = GossipWire::Push(vec![vec![0; 4]; MAX_GOSSIP_ANNOUNCEMENTS + 1]);
        let many = encode_gossip(&many).unwrap();
        assert_eq!(
            decode_gossip(&many),
            Err(GossipError::TooManyAnnouncements(
                MAX_GOSSIP_ANNOUNCEMENTS + 1
            ))
        );
        let big = GossipWire::Push(vec![vec![0; directory::MAX_ANNOUNCEMENT_BYTES + 1]]);
        let big = encode_gossip(&big).unwrap();
        assert!(matches!(
            decode_gossip(&big),
            Err(GossipError::AnnouncementTooLarge(_))
        ));
        let huge = GossipWire::Push(vec![vec![0; 1024]; MAX_GOSSIP_BYTES / 1024 + 1]);
        assert!(encode_gossip(&huge).is_none(), "never sent");
        let mut raw = GOSSIP_MAGIC.to_vec();
        raw.push(GOSSIP_VERSION);
        raw.extend(postcard::to_allocvec(&huge).unwrap());
        assert_eq!(decode_gossip(&raw), Err(GossipError::TooLarge(raw.len())));
    }
}
