//! Membership: this node's announcements, verified announcements joining the directory, and
//! directory pulls (`/grove/directory-sync/1`). Snapshots, parked requests and the DHT are in
//! `agreement`.

use super::directory::{self, Announcement, Peer};
use super::net;
use super::Node;
use super::{ANNOUNCE_MIN_GAP, SYNC_GAP};
use crate::clock::now_micros;
use grove_protocol::ids::Digest;
use libp2p::gossipsub;
use libp2p::gossipsub::IdentTopic;
use libp2p::request_response;
use std::time::Instant;

impl Node {
    /// Announces at start, when the listen addresses change (both set `announce_due`) and
    /// every `announce_interval`; at most once per [`ANNOUNCE_MIN_GAP`]. A newcomer learns the
    /// others by pulling the directory ([`Node::maybe_sync`]), not by everyone re-announcing
    /// to it: that cost N^2 broadcasts for N joining nodes, each received several times by
    /// every node, and saturated two cores at 100 daemons.
    ///
    /// Each gap is drawn between 3/4 and 5/4 of the interval: nodes started together would
    /// otherwise re-announce together, and every node hears every announcement (200 daemons
    /// on two cores stalled for a minute, in the middle of a computation).
    pub(super) fn maybe_announce(&mut self) {
        let since = self.membership.last_announce.map(|t| t.elapsed());
        let periodic = since.is_none_or(|s| s >= self.membership.next_announce_gap);
        let allowed = since.is_none_or(|s| s >= ANNOUNCE_MIN_GAP);
        if (self.membership.announce_due || periodic) && allowed {
            self.announce();
        }
    }

    pub(super) fn announce(&mut self) {
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
        match self
            .transport
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(IdentTopic::new(net::TOPIC_DIRECTORY), bytes)
        {
            Ok(_) => {
                tracing::debug!("announced");
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

    pub(super) fn on_announcement(&mut self, bytes: &[u8]) {
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
        let mut to_store = Vec::new();
        let mut new_peers = 0;
        for (peer, bytes) in peers {
            if peer.peer_id == self.peer_id {
                continue;
            }
            for addr in &peer.addrs {
                self.transport
                    .swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer.peer_id, addr.clone());
                self.transport
                    .swarm
                    .add_peer_address(peer.peer_id, addr.clone());
            }
            let id = peer.peer_id;
            if let (Some(admission), Some(cert)) = (&mut self.admission, &peer.certificate) {
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
    /// and from different peers, then from a random one every `directory_sync_secs`. The
    /// request carries this node's directory digest, so a pull between equal directories
    /// costs a few bytes.
    pub(super) fn maybe_sync(&mut self) {
        let Some(every) = self.membership.sync.every else {
            return;
        };
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
                    if !self.transport.pulls.allow(peer, Instant::now()) {
                        // Not answered: the asker sees a failed pull and asks again later.
                        self.transport
                            .inbound
                            .count(super::budget::InboundRejection::PullRate);
                        return;
                    }
                    let body =
                        directory::encode_for_sync(&self.membership.directory, &Digest(request));
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
