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
//! - a peer with a protocol message of this node awaiting its ack or waiting to leave;
//! - a peer of a computation this node holds state for ([`Workmates`]): the candidates of the
//!   groups it serves or backs up, of their parents and children, and of the leaf it
//!   contributes to, the contributors of the leaves it serves, the commissioner, and for the
//!   commissioner the root's candidates. Both ends draw these from the same plan, so neither
//!   closes the connection the other is about to send on: a receiver sees nothing of a request
//!   until it has read it whole (libp2p hands the daemon only complete requests), and closing
//!   a connection on which a share or a partial sum was being read failed that send at its
//!   sender ("connection closed before a response"), which failed it over and dialed again;
//! - a peer this node exchanged a protocol message or a directory pull with, or connected to,
//!   within [`CONNECTION_LINGER`] (a computation's peers, a Kademlia query or a pull in
//!   progress).
//!
//! The least recently used go first, down to the target. Above [`CONNECTION_CEILING`] (64),
//! peers of the directory used within the linger go too, down to the ceiling (newcomers not
//! in the directory yet keep their linger: they join through this node). A connection that
//! takes the node above the ceiling prunes at once, not at the next tick
//! ([`Connections::over_ceiling`]): a Kademlia lookup of a hot key dials its ~20 closest peers
//! within milliseconds, and the nodes closest to it take every node's lookups, so between two
//! ticks a node stood up to 17 above the ceiling (81 at 200 nodes, once idle). A node left with no
//! connection at all dials its routing table again every [`REJOIN_INTERVAL`]. A peer let go is dialed again on
//! demand: every send carries the directory's addresses of its peer (`drain.rs`), Kademlia
//! dials from its routing table (which keeps disconnected peers), and gossipsub grafts a new
//! mesh peer among the connected subscribers when its mesh falls below `mesh_n_low`.
//! A peer that starts a stream at the moment its idle connection is closed sees its send fail
//! and fails it over (the engine's unreachable path), as for any lost connection.

use super::directory::node_id_of;
use grove_protocol::ids::{ComputationId, GroupId, NodeId};
use grove_protocol::plan::Plan;
use libp2p::PeerId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Connections a node keeps when it has nothing else to keep them for (the config's
/// `connection_target` overrides it): above it, the pruning closes what the node does not
/// need. Its mesh peers (6 to 12 per topic, two topics) and a computation's peers are kept
/// whatever the target. Issue 15's goal is at most 64 per node at 200 nodes.
pub const CONNECTION_TARGET: usize = 48;
/// How often a node with no connection at all dials its routing table's peers again (its
/// bootstrap peers first of all): a newcomer whose only connection was closed before it
/// learned anyone (its bootstrap peer, flooded by newcomers, let it go) waited for Kademlia's
/// periodic bootstrap, 5 minutes, which is off now (`net`).
pub const REJOIN_INTERVAL: Duration = Duration::from_secs(5);
/// Connections a node holds at most for peers it does not work with: above it, the pruning
/// closes even those used within [`CONNECTION_LINGER`] (Kademlia queries, pulls, inbound
/// connections of other nodes' queries), least recently used first; only mesh peers, peers
/// awaited and a computation's peers stay beyond it. Issue 15's goal, 64 per node. Without it,
/// the linger kept every connection of a burst of queries: at 200 nodes a node held up to 166
/// once idle. A target above it (`connection_target`) raises it to the target.
pub const CONNECTION_CEILING: usize = 64;
/// How often the daemon closes the connections it does not need.
pub const PRUNE_TICK: Duration = Duration::from_secs(2);
/// How long a peer stays needed after its last message, pull or connection: longer than a
/// Kademlia query or a directory pull on a live network, and than the gaps between one
/// computation's phases on a small one.
pub const CONNECTION_LINGER: Duration = Duration::from_secs(10);
/// How long after a connection to a peer closed a new connection this node dials to it counts
/// as a re-dial (`Connections::redials`): the pruning's own cost, when something dials back
/// the peers it let go.
pub const REDIAL_WINDOW: Duration = Duration::from_secs(60);
/// Largest number of peers whose last use is remembered; beyond, the oldest is forgotten
/// (a forgotten peer is only the first to be let go).
pub const MAX_USE_RECORDS: usize = 4_096;

/// When each peer was last used, and what pruning did.
#[derive(Debug)]
pub struct Connections {
    /// The number of connected peers above which pruning starts.
    pub target: usize,
    last_used: BTreeMap<PeerId, Instant>,
    /// The peers of each computation this node holds state for (plans never change, so
    /// each is drawn once).
    work: BTreeMap<ComputationId, Workmates>,
    /// Peers disconnected by pruning so far (`grove status`).
    pub pruned: u64,
    /// Protocol sends that failed because their connection closed before the ack
    /// (`grove status`): on a network where no node stops, each is a connection closed
    /// under a send, by this node or by its peer.
    pub sends_cut: u64,
    /// When the last connection to each peer closed (at most `MAX_USE_RECORDS`).
    closed: BTreeMap<PeerId, Instant>,
    /// When this node, with no connection, last dialed its routing table's peers again.
    last_rejoin: Option<Instant>,
    /// Why each dial in progress was started ([`DialCause`]), until it succeeds or fails.
    dialing: BTreeMap<PeerId, DialCause>,
    /// Connections this node dialed, by cause (`grove status`).
    pub dials: BTreeMap<&'static str, u64>,
    /// Of those, the ones to a peer whose connection closed within [`REDIAL_WINDOW`], by
    /// cause (`grove status`): what dials back the peers the pruning let go.
    pub redials: BTreeMap<&'static str, u64>,
    /// The `kademlia_query` dials by the kind of query in progress when each started
    /// ([`QueryKind`], `grove status`).
    pub query_dials: BTreeMap<&'static str, u64>,
}

/// Which Kademlia queries were in progress when a dial started (libp2p does not say which
/// query asked for it): the kind of all of them when they are of one kind, else `Mixed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryKind {
    /// Kademlia's bootstrap (a lookup of the node's own key and of a random key per bucket).
    Bootstrap,
    /// A lookup of a trusted commissioner's active requests (`agreement::Poll`).
    RequestLookup,
    /// A lookup of a directory snapshot a request names.
    SnapshotFetch,
    /// A put of a record (a snapshot, this node's active requests).
    PutRecord,
    /// Any other query.
    Other,
    /// Queries of more than one kind.
    Mixed,
}

impl QueryKind {
    pub fn name(self) -> &'static str {
        match self {
            QueryKind::Bootstrap => "bootstrap",
            QueryKind::RequestLookup => "request_lookup",
            QueryKind::SnapshotFetch => "snapshot_fetch",
            QueryKind::PutRecord => "put_record",
            QueryKind::Other => "other",
            QueryKind::Mixed => "mixed",
        }
    }

    /// The kind of the queries `kinds` (none: `None`).
    pub fn of(kinds: impl IntoIterator<Item = QueryKind>) -> Option<QueryKind> {
        kinds
            .into_iter()
            .reduce(|a, b| if a == b { a } else { QueryKind::Mixed })
    }
}

/// Why the daemon dialed a peer, as it can tell when the swarm reports the dial (libp2p does
/// not say which behaviour asked): the first that holds, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialCause {
    /// A protocol message of this node awaits its hand-over or ack to the peer.
    Send,
    /// The peer's Kademlia bucket has a pending entry: Kademlia dials a bucket's least recently
    /// connected entry, when it is disconnected, to see whether a newcomer may replace it.
    KademliaLivenessCheck,
    /// A Kademlia query (a lookup of requests or of a snapshot, a put, a bootstrap) is in
    /// progress: it dials the peers closest to its key. The kind of the queries in progress.
    KademliaQuery(QueryKind),
    /// Anything else: a bootstrap address, the membership gossip, a directory pull.
    Other,
}

impl DialCause {
    pub fn name(self) -> &'static str {
        match self {
            DialCause::Send => "send",
            DialCause::KademliaLivenessCheck => "kademlia_liveness_check",
            DialCause::KademliaQuery(_) => "kademlia_query",
            DialCause::Other => "other",
        }
    }
}

impl Connections {
    pub fn new(target: usize) -> Connections {
        Connections {
            target,
            last_used: BTreeMap::new(),
            work: BTreeMap::new(),
            pruned: 0,
            sends_cut: 0,
            closed: BTreeMap::new(),
            dialing: BTreeMap::new(),
            dials: BTreeMap::new(),
            redials: BTreeMap::new(),
            query_dials: BTreeMap::new(),
            last_rejoin: None,
        }
    }

    /// Whether a node holding `connected` connections should dial its routing table's peers
    /// again at `now`: it holds none, and its last attempt was [`REJOIN_INTERVAL`] ago or more
    /// (the attempt is recorded).
    pub fn rejoin_due(&mut self, connected: usize, now: Instant) -> bool {
        let due = connected == 0
            && self
                .last_rejoin
                .is_none_or(|t| now.saturating_duration_since(t) >= REJOIN_INTERVAL);
        if due {
            self.last_rejoin = Some(now);
        }
        due
    }

    /// The swarm started dialing `peer` for `cause`.
    pub fn dialing(&mut self, peer: PeerId, cause: DialCause) {
        if self.dialing.len() >= MAX_USE_RECORDS && !self.dialing.contains_key(&peer) {
            self.dialing.pop_first();
        }
        self.dialing.insert(peer, cause);
    }

    /// A dial to `peer` failed.
    pub fn dial_failed(&mut self, peer: &PeerId) {
        self.dialing.remove(peer);
    }

    /// A connection to `peer` was established at `now` (`dialed`: by this node): it counts as
    /// a use. Returns the dial's cause if it is a re-dial (the peer's last connection closed
    /// within [`REDIAL_WINDOW`]), with how long ago that was.
    pub fn established(
        &mut self,
        peer: PeerId,
        dialed: bool,
        now: Instant,
    ) -> Option<(DialCause, Duration)> {
        self.used(peer, now);
        let cause = self.dialing.remove(&peer);
        let closed = self.closed.remove(&peer);
        if !dialed {
            return None;
        }
        let cause = cause.unwrap_or(DialCause::Other);
        *self.dials.entry(cause.name()).or_default() += 1;
        if let DialCause::KademliaQuery(kind) = cause {
            *self.query_dials.entry(kind.name()).or_default() += 1;
        }
        let ago = now.saturating_duration_since(closed?);
        if ago >= REDIAL_WINDOW {
            return None;
        }
        *self.redials.entry(cause.name()).or_default() += 1;
        Some((cause, ago))
    }

    /// The last connection to `peer` closed at `now`.
    pub fn closed(&mut self, peer: PeerId, now: Instant) {
        self.closed
            .retain(|_, t| now.saturating_duration_since(*t) < REDIAL_WINDOW);
        if self.closed.len() >= MAX_USE_RECORDS && !self.closed.contains_key(&peer) {
            self.closed.pop_first();
        }
        self.closed.insert(peer, now);
    }

    /// Brings the peers of computations in progress up to date: `computations` are those
    /// the engine holds state for, with their plans and commissioners; a computation no
    /// longer held is forgotten, a new one's peers are drawn from its plan.
    pub fn follow_work<'a>(
        &mut self,
        me: &NodeId,
        computations: impl Iterator<Item = (ComputationId, &'a Plan, NodeId)>,
    ) {
        let mut held = BTreeSet::new();
        for (id, plan, commissioner) in computations {
            held.insert(id);
            self.work
                .entry(id)
                .or_insert_with(|| Workmates::of(plan, me, commissioner));
        }
        self.work.retain(|id, _| held.contains(id));
    }

    /// Whether `node` is a peer of a computation in progress; `plan` gives a computation's
    /// plan (for the contributors of the leaves this node serves).
    pub fn works_with<'a>(
        &self,
        node: &NodeId,
        plan: &impl Fn(&ComputationId) -> Option<&'a Plan>,
    ) -> bool {
        self.work.iter().any(|(id, w)| {
            w.nodes.contains(node)
                || (!w.served_leaves.is_empty()
                    && plan(id).is_some_and(|p| w.served_leaves.contains(&p.leaf_of(node))))
        })
    }

    /// The connections a node holds at most for peers it does not work with:
    /// [`CONNECTION_CEILING`], or the target if higher.
    pub fn ceiling(&self) -> usize {
        self.target.max(CONNECTION_CEILING)
    }

    /// Whether a node that holds `connected` connections, one of them just established,
    /// prunes at once rather than at the next [`PRUNE_TICK`]: it is above the ceiling. Between
    /// ticks, a burst of Kademlia dials (this node's lookup) or of inbound connections (other
    /// nodes' lookups of a key close to it) otherwise stood above it: at 200 nodes, a node held
    /// 79 two seconds after its own lookup of a commissioner's requests had dialed 15 peers.
    pub fn over_ceiling(&self, connected: usize) -> bool {
        connected > self.ceiling()
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

    /// The peers to disconnect now: of `connected`, those not used within
    /// [`CONNECTION_LINGER`], not kept by the
    /// caller (`keep`: mesh peers, peers awaited) and no peers of a computation in progress
    /// (`plan` gives each computation's plan), least recently used first, as many as
    /// `connected` exceeds the target by; and above [`CONNECTION_CEILING`] (or the target if
    /// higher), recently used ones too, least recently used first, down to it. Forgets the
    /// uses of peers no longer connected and out of the linger.
    pub fn to_close<'a>(
        &mut self,
        connected: &BTreeSet<PeerId>,
        keep: impl Fn(&PeerId) -> bool,
        plan: impl Fn(&ComputationId) -> Option<&'a Plan>,
        now: Instant,
    ) -> Vec<PeerId> {
        self.to_close_known(connected, keep, plan, |_| true, now)
    }

    /// [`Connections::to_close`] where only the peers `known` (in this node's directory) may
    /// go within their linger above the ceiling: a newcomer that dialed this node to join
    /// (its directory pull, its identify, its first announcement) keeps its connection for
    /// the linger, as below the ceiling.
    pub fn to_close_known<'a>(
        &mut self,
        connected: &BTreeSet<PeerId>,
        keep: impl Fn(&PeerId) -> bool,
        plan: impl Fn(&ComputationId) -> Option<&'a Plan>,
        known: impl Fn(&PeerId) -> bool,
        now: Instant,
    ) -> Vec<PeerId> {
        let recent = |t: &Instant| now.saturating_duration_since(*t) < CONNECTION_LINGER;
        self.last_used
            .retain(|p, t| connected.contains(p) || recent(t));
        let excess = connected.len().saturating_sub(self.target);
        if excess == 0 {
            return Vec::new();
        }
        // Never used first, then the least recently used: the idle ones come before the
        // recent ones.
        let mut free: Vec<(Option<Instant>, PeerId)> = connected
            .iter()
            .map(|p| (self.last_used.get(p).copied(), *p))
            .filter(|(_, p)| !keep(p) && !self.works_with(&node_id_of(p), &plan))
            .collect();
        free.sort();
        let idle = free
            .iter()
            .filter(|(t, _)| !t.as_ref().is_some_and(recent))
            .count();
        // Recent peers go above the ceiling only if known; the idle ones come first.
        let mut at = 0;
        free.retain(|(t, p)| {
            at += 1;
            at <= idle || !t.as_ref().is_some_and(recent) || known(p)
        });
        let over_ceiling = connected.len().saturating_sub(self.ceiling());
        free.truncate(excess.min(idle).max(over_ceiling));
        self.pruned += free.len() as u64;
        free.into_iter().map(|(_, p)| p).collect()
    }
}

/// The peers this node works with in one computation, drawn from its plan: whom it sends to
/// and who sends to it, in every role it may take (member or backup of a position,
/// contributor, commissioner).
#[derive(Debug, Default)]
pub struct Workmates {
    /// The candidates (members and backups) of every group this node serves or backs up, of
    /// their parents and children and of the leaf it contributes to; the commissioner; for the
    /// commissioner, the root's candidates.
    nodes: BTreeSet<NodeId>,
    /// The leaves this node serves or backs up: their contributors send to it
    /// (`Plan::leaf_of`, asked only of peers about to be closed).
    served_leaves: BTreeSet<GroupId>,
}

impl Workmates {
    pub fn of(plan: &Plan, me: &NodeId, commissioner: NodeId) -> Workmates {
        let groups: BTreeSet<GroupId> = plan
            .roles_of(me)
            .iter()
            .chain(plan.backup_roles_of(me))
            .map(|(g, _)| *g)
            .collect();
        let served_leaves = groups.iter().filter(|g| g.level == 0).copied().collect();
        let mut near: BTreeSet<GroupId> = BTreeSet::new();
        for g in &groups {
            near.insert(*g);
            near.extend(plan.parent(*g));
            near.extend(plan.children(*g));
        }
        near.insert(plan.leaf_of(me));
        // The commissioner hears from the root alone, not from the root's children: taking
        // the root in as if it served there kept every child group's candidates (at fan-in 16,
        // up to 160 peers) open above the connection ceiling.
        if *me == commissioner {
            near.insert(plan.root());
        }
        let mut nodes: BTreeSet<NodeId> = near
            .iter()
            .flat_map(|g| (1..=plan.g).flat_map(move |p| plan.candidates(*g, p)))
            .collect();
        nodes.insert(commissioner);
        nodes.remove(me);
        Workmates {
            nodes,
            served_leaves,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_plan(_: &ComputationId) -> Option<&'static Plan> {
        None
    }

    fn peers(n: usize) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = (0..n).map(|_| PeerId::random()).collect();
        v.sort();
        v
    }

    /// A dial during queries of one kind counts for that kind, during several for `mixed`,
    /// and only Kademlia-query dials are broken down.
    #[test]
    fn query_dials_are_counted_by_kind() {
        use QueryKind::*;
        assert_eq!(QueryKind::of([]), None);
        assert_eq!(QueryKind::of([Bootstrap, Bootstrap]), Some(Bootstrap));
        assert_eq!(QueryKind::of([RequestLookup, PutRecord]), Some(Mixed));
        let mut c = Connections::new(4);
        let now = Instant::now();
        let p = peers(3);
        c.dialing(p[0], DialCause::KademliaQuery(Bootstrap));
        c.dialing(p[1], DialCause::KademliaQuery(RequestLookup));
        c.dialing(p[2], DialCause::Send);
        for q in &p {
            c.established(*q, true, now);
        }
        assert_eq!(c.dials.get("kademlia_query"), Some(&2));
        assert_eq!(c.query_dials.get("bootstrap"), Some(&1));
        assert_eq!(c.query_dials.get("request_lookup"), Some(&1));
        assert_eq!(c.query_dials.values().sum::<u64>(), 2);
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
        assert!(c.to_close(&connected, |_| false, no_plan, now).is_empty());
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
        let closed = c.to_close(&connected, |q| *q == p[1], no_plan, now);
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
        assert!(c
            .to_close(&connected, |q| keep.contains(q), no_plan, now)
            .is_empty());
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

    /// Above the ceiling, peers used within the linger go too, least recently used first,
    /// down to the ceiling; kept ones stay. Without the ceiling the linger kept all of a burst
    /// of query connections (a node held 166 once idle at 200 nodes).
    #[test]
    fn recent_peers_go_above_the_ceiling() {
        let n = CONNECTION_CEILING + 20;
        let p = peers(n);
        let mut c = Connections::new(8);
        let now = Instant::now() + Duration::from_secs(100);
        for (i, peer) in p.iter().enumerate() {
            c.used(*peer, now - Duration::from_millis(n as u64 - i as u64));
        }
        let connected: BTreeSet<PeerId> = p.iter().copied().collect();
        let closed = c.to_close(&connected, |q| *q == p[0], no_plan, now);
        // p0 is kept; the 20 least recently used of the others go (p1..p20).
        assert_eq!(closed, p[1..=20].to_vec());
        // A target above the ceiling raises it.
        let mut c = Connections::new(n);
        assert!(c.to_close(&connected, |_| false, no_plan, now).is_empty());
        // Peers not in the directory (newcomers joining through this node) stay within
        // their linger; idle ones go first whatever they are.
        let mut c = Connections::new(8);
        for (i, peer) in p.iter().enumerate().skip(1) {
            c.used(*peer, now - Duration::from_millis(n as u64 - i as u64));
        }
        let known = |q: &PeerId| p[40..].contains(q);
        let closed = c.to_close_known(&connected, |_| false, no_plan, known, now);
        let mut want = vec![p[0]];
        want.extend(&p[40..59]);
        assert_eq!(closed, want);
    }

    /// A burst of new connections (a Kademlia lookup's dials, or other nodes' lookups) never
    /// stands above the ceiling when each prunes at once above it (`over_ceiling`): the idle
    /// peers go first, then the least recently used of the others, and the burst's own peers
    /// stay. Pruned only at the tick, a node of 64 that dialed 20 peers held 84 until it.
    #[test]
    fn a_burst_of_connections_never_stands_above_the_ceiling() {
        let p = keyed_peers(CONNECTION_CEILING as u8 + 20);
        let (held, burst) = p.split_at(CONNECTION_CEILING);
        let mut c = Connections::new(CONNECTION_TARGET);
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(100);
        // Of the 64 held: 12 mesh peers, 30 idle, 22 used within the linger.
        let mesh: BTreeSet<PeerId> = held[..12].iter().copied().collect();
        for (i, peer) in held.iter().enumerate() {
            let t = if i < 42 {
                t0
            } else {
                now - Duration::from_secs(1)
            };
            c.used(*peer, t + Duration::from_millis(i as u64));
        }
        let mut connected: BTreeSet<PeerId> = held.iter().copied().collect();
        let mut most = connected.len();
        for (i, peer) in burst.iter().enumerate() {
            let at = now + Duration::from_millis(i as u64);
            c.established(*peer, true, at);
            connected.insert(*peer);
            if c.over_ceiling(connected.len()) {
                let close = c.to_close(&connected, |q| mesh.contains(q), no_plan, at);
                for q in close {
                    connected.remove(&q);
                }
            }
            most = most.max(connected.len());
        }
        assert!(
            most <= CONNECTION_CEILING,
            "{most} connections held during the burst, above the ceiling {CONNECTION_CEILING}"
        );
        assert!(mesh.is_subset(&connected), "a mesh peer was closed");
        assert!(
            burst.iter().all(|q| connected.contains(q)),
            "a peer of the burst was closed while idle ones were held"
        );
        // A target above the ceiling raises it.
        assert!(!Connections::new(100).over_ceiling(100));
        assert!(Connections::new(8).over_ceiling(CONNECTION_CEILING + 1));
    }

    /// A node with no connection dials again, at most every `REJOIN_INTERVAL`; a connected
    /// one does not. Without it, a newcomer whose bootstrap peer let it go before it learned
    /// anyone stayed alone (at 200 nodes, 40 directories of 200 stayed incomplete).
    #[test]
    fn an_isolated_node_dials_again_at_intervals() {
        let mut c = Connections::new(8);
        let t0 = Instant::now();
        assert!(!c.rejoin_due(3, t0));
        assert!(c.rejoin_due(0, t0));
        assert!(!c.rejoin_due(0, t0 + REJOIN_INTERVAL / 2));
        assert!(c.rejoin_due(0, t0 + REJOIN_INTERVAL));
        assert!(!c.rejoin_due(1, t0 + REJOIN_INTERVAL * 3));
    }

    /// `n` peers from fixed keys (their node ids are those of the directory).
    fn keyed_peers(n: u8) -> Vec<PeerId> {
        (0..n)
            .map(|i| {
                let key = libp2p::identity::Keypair::ed25519_from_bytes([i + 1; 32]).unwrap();
                key.public().to_peer_id()
            })
            .collect()
    }

    /// The plan of a request over `peers`: 4 leaves, fan-in 2, `g = 5`, one backup each.
    fn plan_over(peers: &[PeerId], commissioner: NodeId) -> Plan {
        use grove_protocol::plan::{PeerKeys, SortedDirectory};
        use grove_protocol::request::{sample_request, Request};
        let request = Request {
            commissioner_node: commissioner,
            ..sample_request(7, 4, 2, 5, 3, 1)
        };
        let directory = SortedDirectory::new(
            peers
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let keys = PeerKeys {
                        x25519: [i as u8; 32],
                        ed25519: [!(i as u8); 32],
                    };
                    (node_id_of(p), keys)
                })
                .collect(),
        );
        let seed = grove_protocol::plan::request_seed(&request, None);
        Plan::build(&request, &seed, &directory).unwrap()
    }

    /// A leaf member's pruning, at a target of 0 with every connection idle, keeps the peers
    /// of its computation: its group's other members and their backups, its parent group,
    /// the contributors of its leaf and the commissioner; it closes the others. Without the
    /// protection a peer about to send a share or a partial sum was closed just as it sent
    /// (the storm of "connection closed before a response" in a 30-node run at target 8).
    /// Once the computation is no longer held, its peers go too.
    #[test]
    fn the_peers_of_a_computation_in_progress_are_kept() {
        let p = keyed_peers(40);
        let commissioner = node_id_of(&p[0]);
        let plan = plan_over(&p, commissioner);
        let leaf = GroupId { level: 0, index: 0 };
        let me_node = plan.member(leaf, 1);
        let me = *p.iter().find(|q| node_id_of(q) == me_node).unwrap();
        let by_node = |n: NodeId| *p.iter().find(|q| node_id_of(q) == n).unwrap();
        let fellow = by_node(plan.member(leaf, 2));
        let parent = by_node(plan.member(plan.parent(leaf).unwrap(), 1));
        let mine = Workmates::of(&plan, &me_node, commissioner);
        let contributor = *p
            .iter()
            .find(|q| {
                plan.leaf_of(&node_id_of(q)) == leaf
                    && !mine.nodes.contains(&node_id_of(q))
                    && **q != me
            })
            .expect("a contributor of the leaf that holds no position near it");
        let stranger = p
            .iter()
            .filter(|q| {
                let n = node_id_of(q);
                **q != me && !mine.nodes.contains(&n) && plan.leaf_of(&n) != leaf
            })
            .count();
        assert!(stranger > 0, "some peers are none of the computation's");

        let mut c = Connections::new(0);
        let id = plan.computation;
        c.follow_work(&me_node, [(id, &plan, commissioner)].into_iter());
        let connected: BTreeSet<PeerId> = p.iter().copied().filter(|q| *q != me).collect();
        let now = Instant::now() + Duration::from_secs(100);
        let plans = |q: &ComputationId| (*q == id).then_some(&plan);
        let closed: BTreeSet<PeerId> = c
            .to_close(&connected, |_| false, plans, now)
            .into_iter()
            .collect();
        for (what, peer) in [
            ("a fellow member", fellow),
            ("a parent member", parent),
            ("a contributor of the leaf", contributor),
            ("the commissioner", p[0]),
        ] {
            assert!(!closed.contains(&peer), "{what} was closed");
        }
        assert_eq!(closed.len(), stranger, "the others are closed");

        c.follow_work(&me_node, std::iter::empty());
        let closed = c.to_close(&connected, |_| false, plans, now);
        assert_eq!(
            closed.len(),
            connected.len(),
            "a finished computation keeps none"
        );
    }

    /// The commissioner keeps the root's candidates (they send it their reports and shares
    /// of the result), but not those of the root's children, which never send to it; a
    /// contributor keeps the candidates of the leaf it sends its shares to.
    #[test]
    fn the_commissioner_keeps_the_root_and_a_contributor_its_leaf() {
        let p = keyed_peers(120);
        let commissioner = node_id_of(&p[0]);
        let plan = plan_over(&p, commissioner);
        let mine = Workmates::of(&plan, &commissioner, commissioner);
        for pos in 1..=plan.g {
            for n in plan.candidates(plan.root(), pos) {
                assert!(n == commissioner || mine.nodes.contains(&n));
            }
        }
        // Peers that are candidates of a child of the root and of nothing the commissioner
        // works with (it serves no position here: checked, else the set is not this simple).
        assert!(plan.roles_of(&commissioner).is_empty());
        assert!(plan.backup_roles_of(&commissioner).is_empty());
        let candidate_of =
            |g: GroupId, n: &NodeId| (1..=plan.g).any(|p| plan.candidates(g, p).any(|c| c == *n));
        let plan = &plan;
        let root_children_only: Vec<NodeId> = plan
            .children(plan.root())
            .into_iter()
            .flat_map(|g| (1..=plan.g).flat_map(move |p| plan.candidates(g, p)))
            .filter(|n| {
                *n != commissioner
                    && !candidate_of(plan.root(), n)
                    && !candidate_of(plan.leaf_of(&commissioner), n)
            })
            .collect();
        assert!(!root_children_only.is_empty(), "the test needs such peers");
        for n in &root_children_only {
            assert!(
                !mine.nodes.contains(n),
                "a candidate of a child of the root only is kept"
            );
        }
        let contributor = p
            .iter()
            .map(node_id_of)
            .find(|n| {
                *n != commissioner
                    && plan.roles_of(n).is_empty()
                    && plan.backup_roles_of(n).is_empty()
            })
            .expect("a node with no position");
        let theirs = Workmates::of(plan, &contributor, commissioner);
        let leaf = plan.leaf_of(&contributor);
        for pos in 1..=plan.g {
            for n in plan.candidates(leaf, pos) {
                assert!(theirs.nodes.contains(&n));
            }
        }
        assert!(theirs.served_leaves.is_empty());
        assert!(theirs.nodes.contains(&commissioner));
    }
}
