//! Connections that follow the work: the daemon closes, now and then, connections it does not
//! need, so that the number it holds does not grow with the network.
//!
//! libp2p closes a connection after `net::IDLE_CONNECTION_TIMEOUT` only once no stream is open
//! on it, and gossipsub keeps a stream open on every connection to a subscriber (not only to
//! its mesh peers): without this, every daemon ended up connected to every other (59 per node
//! at 60 nodes, 199 at 200). Every [`PRUNE_TICK`], when the node holds more than its
//! connection target (`connection_target` in the config, [`CONNECTION_TARGET`] by default),
//! it closes (`Swarm::disconnect_peer_id`) connections to peers that are none of:
//!
//! - a gossipsub mesh peer (of any topic): requests, completion notes and announcements reach
//!   every node through the meshes (degree `mesh_n` = 6, at most `mesh_n_high` = 12 per topic);
//! - a peer with a protocol message of this node awaiting its ack;
//! - a peer this node exchanged a protocol message or a directory pull with, or connected to,
//!   within [`CONNECTION_LINGER`] (a computation's peers, a Kademlia query or a pull in
//!   progress).
//!
//! The least recently used go first, down to the target. A peer let go is dialed again on
//! demand: every send carries the directory's addresses of its peer (`drain.rs`), Kademlia
//! dials from its routing table (which keeps disconnected peers), and gossipsub grafts a new
//! mesh peer among the connected subscribers when its mesh falls below `mesh_n_low`.
//! A peer that starts a stream at the moment its idle connection is closed sees its send fail
//! and fails it over (the engine's unreachable path), as for any lost connection.

use libp2p::PeerId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Connections a node keeps when it has nothing else to keep them for (the config's
/// `connection_target` overrides it). The default is `net::MAX_ESTABLISHED_CONNECTIONS`, so
/// nothing is closed: with a target of 32, `scale60` computed exactly (mean 29 connections per
/// node once idle), but `scripts/bench-e2e.sh 200` failed twice ("no version reached the
/// threshold of root positions") where the same binary without closing completed 200/200; until
/// that is understood, closing is opt-in. Issue 15's goal is at most 64 per node.
pub const CONNECTION_TARGET: usize = super::net::MAX_ESTABLISHED_CONNECTIONS as usize;
/// How often the daemon closes the connections it does not need.
pub const PRUNE_TICK: Duration = Duration::from_secs(2);
/// How long a peer stays needed after its last message, pull or connection: longer than a
/// Kademlia query or a directory pull on a live network, and than the gaps between one
/// computation's phases on a small one.
pub const CONNECTION_LINGER: Duration = Duration::from_secs(10);
/// Largest number of peers whose last use is remembered; beyond, the oldest is forgotten
/// (a forgotten peer is only the first to be let go).
pub const MAX_USE_RECORDS: usize = 4_096;

/// When each peer was last used, and what pruning did.
#[derive(Debug)]
pub struct Connections {
    /// The number of connected peers above which pruning starts.
    pub target: usize,
    last_used: BTreeMap<PeerId, Instant>,
    /// Peers disconnected by pruning so far (`grove status`).
    pub pruned: u64,
}

impl Connections {
    pub fn new(target: usize) -> Connections {
        Connections {
            target,
            last_used: BTreeMap::new(),
            pruned: 0,
        }
    }

    /// `peer` was used (a message, a pull, a new connection) at `now`.
    pub fn used(&mut self, peer: PeerId, now: Instant) {
        if self.last_used.len() >= MAX_USE_RECORDS && !self.last_used.contains_key(&peer) {
            let oldest = self
                .last_used
                .iter()
                .min_by_key(|(p, t)| (**t, **p))
                .map(|(p, _)| *p);
            if let Some(p) = oldest {
                self.last_used.remove(&p);
            }
        }
        self.last_used.insert(peer, now);
    }

    /// The peers to disconnect now: of `connected`, those not in `keep` and not used within
    /// [`CONNECTION_LINGER`], least recently used first, as many as `connected` exceeds the
    /// target by. Forgets the uses of peers no longer connected and out of the linger.
    pub fn to_close(
        &mut self,
        connected: &BTreeSet<PeerId>,
        keep: &BTreeSet<PeerId>,
        now: Instant,
    ) -> Vec<PeerId> {
        let recent = |t: &Instant| now.saturating_duration_since(*t) < CONNECTION_LINGER;
        self.last_used
            .retain(|p, t| connected.contains(p) || recent(t));
        let excess = connected.len().saturating_sub(self.target);
        if excess == 0 {
            return Vec::new();
        }
        let mut idle: Vec<(Option<Instant>, PeerId)> = connected
            .iter()
            .filter(|p| !keep.contains(p))
            .map(|p| (self.last_used.get(p).copied(), *p))
            .filter(|(t, _)| !t.as_ref().is_some_and(recent))
            .collect();
        idle.sort();
        idle.truncate(excess);
        self.pruned += idle.len() as u64;
        idle.into_iter().map(|(_, p)| p).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: usize) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = (0..n).map(|_| PeerId::random()).collect();
        v.sort();
        v
    }

    #[test]
    fn the_config_default_is_the_target() {
        assert_eq!(
            crate::config::Config::default().connection_target,
            CONNECTION_TARGET
        );
    }

    #[test]
    fn nothing_is_closed_at_or_below_the_target() {
        let p = peers(4);
        let mut c = Connections::new(4);
        let now = Instant::now();
        let connected: BTreeSet<PeerId> = p.iter().copied().collect();
        assert!(c.to_close(&connected, &BTreeSet::new(), now).is_empty());
    }

    #[test]
    fn the_least_recently_used_idle_peers_go_down_to_the_target() {
        let p = peers(8);
        let mut c = Connections::new(3);
        let t0 = Instant::now();
        // p0..p5 used long ago (p0 oldest), p6 recently; p7 never; p1 is kept (mesh).
        for (i, peer) in p.iter().enumerate().take(6) {
            c.used(*peer, t0 + Duration::from_secs(i as u64));
        }
        let now = t0 + Duration::from_secs(60);
        c.used(p[6], now - Duration::from_secs(1));
        let connected: BTreeSet<PeerId> = p.iter().copied().collect();
        let keep: BTreeSet<PeerId> = [p[1]].into_iter().collect();
        let closed = c.to_close(&connected, &keep, now);
        // 8 connected, target 3: 5 go; never used first, then by age; p1 kept, p6 recent.
        assert_eq!(closed, vec![p[7], p[0], p[2], p[3], p[4]]);
        assert_eq!(c.pruned, 5);
    }

    #[test]
    fn kept_and_recent_peers_stay_even_above_the_target() {
        let p = peers(5);
        let mut c = Connections::new(1);
        let now = Instant::now() + Duration::from_secs(100);
        for peer in &p[2..] {
            c.used(*peer, now);
        }
        let connected: BTreeSet<PeerId> = p.iter().copied().collect();
        let keep: BTreeSet<PeerId> = p[..2].iter().copied().collect();
        assert!(c.to_close(&connected, &keep, now).is_empty());
    }

    #[test]
    fn the_use_records_are_bounded() {
        let mut c = Connections::new(1);
        let t0 = Instant::now();
        let first = PeerId::random();
        c.used(first, t0);
        for i in 0..MAX_USE_RECORDS {
            c.used(PeerId::random(), t0 + Duration::from_millis(1 + i as u64));
        }
        assert_eq!(c.last_used.len(), MAX_USE_RECORDS);
        assert!(!c.last_used.contains_key(&first), "the oldest is forgotten");
    }
}
