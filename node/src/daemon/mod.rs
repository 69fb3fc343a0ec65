//! `grove daemon`: one tokio event loop that owns the engine, the libp2p swarm and the store.
//!
//! The drain rule: after each input (a message, a timer expiry, a command) the loop drains
//! `Engine::poll_output` until `Output::Idle`. `Persist` records are appended to the store's
//! engine log and committed before any later `Send` or `Broadcast` is performed (consecutive
//! records are committed together, right before the next send or at idle). The next deadline
//! is a tokio sleep. Time given to the engine is microseconds since the Unix epoch.
//!
//! Routing only: the loop maps `NodeId`s to `PeerId`s through the peer directory, carries
//! `Send`s by request-response and `Broadcast`s by gossipsub, and never interprets protocol
//! messages beyond that, except to read a request's commissioner and query when it passes by,
//! which the owner's consent policy needs (see `consent`).

use crate::config::Keys;
use crate::control::ControlReply;
use crate::store::Store;
use directory::{Directory, Snapshots};
use grove_protocol::engine::Engine;
use grove_protocol::ids::{ComputationId, Micros, NodeId};
use grove_protocol::message::Message;
use libp2p::{Multiaddr, PeerId, Swarm};
use net::Behaviour;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

mod agreement;
mod bootstrap;
pub mod budget;
mod commands;
pub mod connections;
pub mod directory;
mod drain;
mod event_loop;
mod events;
pub mod hook;
mod jobs;
pub mod membership;
pub mod net;
mod owner;
mod pending;
mod sends;
mod transport;

pub use bootstrap::run;

pub use sends::MAX_PENDING_SENDS;

/// Largest number of messages the node queues to itself.
pub const MAX_LOOPBACK: usize = 4096;
/// Largest number of `compute` commands waiting for their result.
pub const MAX_WAITERS: usize = grove_protocol::limits::MAX_COMPUTATIONS;
/// Largest number of records returned by `records list --collection`.
pub const MAX_LISTED_RECORDS: usize = 10_000;
/// The grid the loop's housekeeping (announcements, pulls, the view's timer, expired owner
/// requests, beacon rounds) runs on: at most this long after its work is due, and only then
/// (`event_loop`).
const ANNOUNCE_TICK: Duration = Duration::from_millis(250);
/// Shortest gap between two announcements.
const ANNOUNCE_MIN_GAP: Duration = Duration::from_secs(3);
/// How often a commissioner re-stores its active requests in the DHT. (Kademlia refreshes
/// its routing table on its own, every 5 minutes: a bootstrap every 30 s by every node was
/// most of an idle 40-node network's CPU.)
const REPUBLISH_INTERVAL: Duration = Duration::from_secs(30);
/// Shortest gap between two directory pulls.
const SYNC_GAP: Duration = Duration::from_secs(5);

pub struct DaemonArgs {
    pub data_dir: PathBuf,
    pub listen: Vec<String>,
    pub bootstrap: Vec<String>,
    pub exit_on_stdin_eof: bool,
    /// Serve the owner's console on this loopback address (overrides `console_listen`).
    pub console: Option<String>,
}

struct Waiter {
    reply: mpsc::Sender<ControlReply>,
    started: Instant,
    /// The launched query, to decode the released sum into a table.
    compiled: grove_protocol::query::CompiledQuery,
    /// Peers in the directory the plan was built from.
    directory_peers: usize,
}

/// The daemon: who this node is, its engine and store, and its parts, each tended by the
/// files named beside it.
struct Node {
    data_dir: PathBuf,
    keys: Keys,
    me: NodeId,
    peer_id: PeerId,
    x25519_public: [u8; 32],
    /// The libp2p key's Ed25519 public key, which the directory lists beside the X25519 key.
    ed25519_public: [u8; 32],
    engine: Engine,
    store: Arc<Store>,
    /// The engine's next deadline (`event_loop` sleeps until it).
    next_deadline: Option<Micros>,
    /// The swarm and what travels on it (`transport`, `drain`).
    transport: Transport,
    /// The peer directory and how it grows (`membership`, `agreement`).
    membership: Membership,
    /// Requests waiting for the owner (trust mode "ask", `pending`; consent and audit in
    /// `owner`): end of each one's share window. The store's pending table holds them across
    /// restarts.
    pending: BTreeMap<ComputationId, Micros>,
    /// Local commands (`commands`, `events`).
    control: Control,
    /// The beacon rounds this node fetches for the requests it holds (`crate::beacon`), when
    /// the config names a chain.
    beacon: Option<crate::beacon::Fetcher>,
    /// Whether a beacon round was awaited at the last fetch (the next housekeeping runs even
    /// if none is awaited any more: the fetcher then forgets its retries).
    rounds_awaited: bool,
    /// The admitted set and this node's certificate (`crate::admission`), when the config has
    /// an `[admission]` section: the engine's candidate rule reads the same view.
    admission: Option<crate::admission::Admission>,
    /// The engine's CPU work (a contributor's proof), run off the event loop (`jobs`).
    jobs: jobs::Jobs,
}

/// The swarm, the sends awaiting their acknowledgement, and the traffic counters.
struct Transport {
    swarm: Swarm<Behaviour>,
    /// The inbound budgets' node side (its codec holds the same): room in use, breaches.
    inbound: std::sync::Arc<budget::NodeBudget>,
    /// When this node last answered each peer's directory pull (`directory::PullLimiter`).
    pulls: directory::PullLimiter,
    /// Sends awaiting their ack, each with its deadline (`net::message_deadline`).
    pending_sends: sends::PendingSends,
    /// Messages the engine sent to this node itself (one node may serve two positions of a
    /// plan after a failover).
    loopback: VecDeque<Message>,
    sent_by_kind: BTreeMap<&'static str, u64>,
    received_by_kind: BTreeMap<&'static str, u64>,
    /// When each peer was last used, for closing the connections not needed (`connections`).
    connections: connections::Connections,
}

/// The peer directory, this node's announcements, directory pulls, and the snapshots and
/// parked requests of directory agreement.
struct Membership {
    directory: Directory,
    /// Snapshots a request may name, handed to the engine with it.
    snapshots: Snapshots,
    listen_addrs: Vec<Multiaddr>,
    announce_due: bool,
    last_announce: Option<Instant>,
    announce_interval: Duration,
    /// The gap before the next periodic announcement (`announce_interval`, jittered).
    next_announce_gap: Duration,
    /// Directory pulls made after the start.
    sync: SyncState,
    /// Directory agreement and late joining through Kademlia (`agreement`).
    agreement: agreement::State,
    /// The admission view's gossip in flight and the bytes membership costs (`membership`).
    gossip: membership::Gossip,
}

/// The commissioner's waiting `compute` commands, the console, and the daemon's lifetime.
struct Control {
    waiters: BTreeMap<ComputationId, Waiter>,
    /// The owner's console, when it is served (`crate::console`).
    console: Option<crate::console::Console>,
    started: Instant,
    shutdown: bool,
}

/// How long a peer that answered a directory pull with bytes that do not decode is not asked
/// again (`SyncState::undecodable`).
const PULL_PENALTY: Duration = Duration::from_secs(30 * 60);
/// Largest number of peers held as penalised; beyond it the oldest penalty is forgotten.
const MAX_PENALISED_PULL_PEERS: usize = 1024;

/// The directory pulls of [`Node::maybe_sync`].
#[derive(Default)]
struct SyncState {
    /// `directory_sync_secs`; `None`: no pulls.
    every: Option<Duration>,
    /// Pulls answered in a row that brought no peer this node lacked (a pull that brings news
    /// sets it back to 0, so the next two pulls come soon: [`SyncState::gap`]).
    answered: u64,
    /// The peer of the last pull (the next asks another if it can).
    last_peer: Option<PeerId>,
    last: Option<Instant>,
    /// The pull in flight and when it was handed over: its answer is a round-trip sample.
    asked: Option<(libp2p::request_response::OutboundRequestId, Instant)>,
    /// Round trips to peers (`crate::latency`), for the planner of `grove compute`.
    rtt: crate::latency::RttEstimate,
    /// Peers whose answer did not decode, and when: not asked again for [`PULL_PENALTY`].
    penalised: BTreeMap<PeerId, Instant>,
}

impl SyncState {
    /// How long after the last pull the next one is due, or `None` if this node pulls no
    /// more. A node pulls [`SYNC_GAP`] apart until two pulls in a row brought nothing new
    /// (at the start, and again after any pull that brought news: while directories are still
    /// filling, a peer asked early may not know everyone yet); then, if it is admitted
    /// (`gossip_repairs`: its view's gossip and anti-entropy repair what it misses) it stops,
    /// and otherwise it pulls every `directory_sync_secs`. A node that is not admitted must
    /// keep pulling: admitted peers refuse its anti-entropy, and they announce by gossip to
    /// admitted peers only.
    fn gap(&self, gossip_repairs: bool) -> Option<Duration> {
        let every = self.every?;
        match (self.answered < 2, gossip_repairs) {
            (true, _) => Some(SYNC_GAP),
            (false, true) => None,
            (false, false) => Some(every),
        }
    }

    /// Counts an answered pull that brought `new` peers this node lacked.
    fn answered(&mut self, new: usize) {
        self.answered = if new > 0 { 0 } else { self.answered + 1 };
    }

    /// `peer` answered a pull with bytes that do not decode (an honest node sends what
    /// `directory::encode_for_sync` makes): it is not asked again for [`PULL_PENALTY`]. Its
    /// answer neither brings news nor counts as quiet, so a hostile peer cannot end this
    /// node's start-up pulls early; and since it is not asked again, it cannot keep this node
    /// pulling either (a node whose only peers answer so stops pulling, [`SyncState::choose`]).
    fn undecodable(&mut self, peer: PeerId, now: Instant) {
        self.asked = None;
        self.penalised
            .retain(|_, at| now.saturating_duration_since(*at) < PULL_PENALTY);
        if self.penalised.len() >= MAX_PENALISED_PULL_PEERS && !self.penalised.contains_key(&peer) {
            if let Some(oldest) = self
                .penalised
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(p, _)| *p)
            {
                self.penalised.remove(&oldest);
            }
        }
        self.penalised.insert(peer, now);
    }

    /// The peer to pull from among the `connected` ones: a random one other than the last
    /// asked, else the last one; never a peer penalised less than [`PULL_PENALTY`] ago.
    fn choose(
        &self,
        connected: impl Iterator<Item = PeerId>,
        now: Instant,
        rng: &mut impl rand::Rng,
    ) -> Option<PeerId> {
        use rand::seq::IteratorRandom;
        let penalised = |p: &PeerId| {
            self.penalised
                .get(p)
                .is_some_and(|at| now.saturating_duration_since(*at) < PULL_PENALTY)
        };
        let allowed: Vec<PeerId> = connected.filter(|p| !penalised(p)).collect();
        let last = self.last_peer.filter(|p| allowed.contains(p));
        allowed
            .iter()
            .filter(|p| Some(**p) != self.last_peer)
            .copied()
            .choose(rng)
            .or(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pulls stay [`SYNC_GAP`] apart while they bring news, and only an admitted node stops
    /// after two quiet ones. Fails if a node that is not admitted stops pulling (its
    /// anti-entropy is refused, so it would never learn an admitted node that announced only
    /// by gossip), or if news does not bring the next pull forward (a peer pulled early, its
    /// own directory still filling, left a node 30 s short of the network).
    #[test]
    fn pulls_come_soon_while_they_bring_news_and_only_admitted_nodes_stop() {
        let every = Duration::from_secs(30);
        let mut s = SyncState {
            every: Some(every),
            ..SyncState::default()
        };
        assert_eq!(s.gap(true), Some(SYNC_GAP));
        s.answered(3);
        s.answered(2);
        assert_eq!(s.gap(true), Some(SYNC_GAP), "the last pull brought news");
        assert_eq!(s.gap(false), Some(SYNC_GAP));
        s.answered(0);
        // One quiet pull may have asked a peer that knows no more than this node.
        assert_eq!(s.gap(false), Some(SYNC_GAP), "one quiet pull is not enough");
        s.answered(0);
        assert_eq!(s.gap(true), None, "admitted: gossip repairs from here");
        assert_eq!(s.gap(false), Some(every), "not admitted: pulls go on");
        s.answered(1);
        assert_eq!(
            s.gap(false),
            Some(SYNC_GAP),
            "news brings the next pull forward"
        );
        assert_eq!(SyncState::default().gap(false), None, "no pulls configured");
    }

    /// A peer that answers a pull with bytes that do not decode is not asked again: a node
    /// whose only peer answers so pulls once, not every `SYNC_GAP` for ever; with other peers,
    /// it asks them, and the penalty ends after `PULL_PENALTY`. Fails if the undecodable answer
    /// is ignored (the peer is asked again at the next gap).
    #[test]
    fn a_peer_answering_undecodable_bytes_is_not_asked_again() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let hostile = PeerId::random();
        let honest: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        let mut s = SyncState {
            every: Some(Duration::from_secs(30)),
            ..SyncState::default()
        };
        let t0 = Instant::now();
        // Its only connected peer answers garbage.
        let only = || std::iter::once(hostile);
        assert_eq!(s.choose(only(), t0, &mut rng), Some(hostile));
        s.last_peer = Some(hostile);
        s.undecodable(hostile, t0);
        let mut pulls = 0;
        for k in 1..=100u32 {
            let at = t0 + SYNC_GAP * k;
            if s.choose(only(), at, &mut rng).is_some() {
                pulls += 1;
            }
        }
        assert_eq!(pulls, 0, "kept pulling from the peer that answered garbage");
        // With others connected it asks only them.
        for k in 1..=100u32 {
            let at = t0 + SYNC_GAP * k;
            let peers = honest.iter().copied().chain(only());
            let p = s.choose(peers, at, &mut rng).expect("a peer");
            assert_ne!(p, hostile);
            s.last_peer = Some(p);
        }
        // The garbage did not count as a quiet answer: two honest quiet ones are still due.
        assert_eq!(s.gap(true), Some(SYNC_GAP));
        // After the penalty it may be asked again.
        s.last_peer = None;
        assert_eq!(s.choose(only(), t0 + PULL_PENALTY, &mut rng), Some(hostile));
        // The penalties held are bounded.
        for _ in 0..2 * MAX_PENALISED_PULL_PEERS {
            s.undecodable(PeerId::random(), t0);
        }
        assert_eq!(s.penalised.len(), MAX_PENALISED_PULL_PEERS);
    }
    use crate::control::ComputeParams;
    use crate::owner::query;
    use grove_protocol::drain::{drain as drain_engine, Effects};
    use grove_protocol::engine::Identity;
    use grove_protocol::engine::{sign_finish, Command};
    use grove_protocol::engine::{Event, Output};
    use grove_protocol::plan::PlanCache;
    use grove_protocol::record::Record;
    use grove_protocol::request::{CommissionerKey, SignedRequest};
    use grove_protocol::snapshot::DirectorySnapshot;

    /// What a drain did, in order.
    #[derive(Debug, PartialEq)]
    enum Effect {
        /// A send or broadcast, with the number of records durable when it left.
        Out { kind: &'static str, durable: usize },
    }

    #[derive(Default)]
    struct Fake {
        durable: Vec<Record>,
        log: Vec<Effect>,
        out: VecDeque<(NodeId, Message)>,
        fail_persist: bool,
    }

    impl Effects for Fake {
        type Error = anyhow::Error;
        fn persist(&mut self, records: Vec<Record>) -> anyhow::Result<()> {
            anyhow::ensure!(!self.fail_persist, "disk full");
            self.durable.extend(records);
            Ok(())
        }
        fn send(&mut self, to: NodeId, message: Message) -> anyhow::Result<()> {
            self.log.push(Effect::Out {
                kind: message.kind(),
                durable: self.durable.len(),
            });
            self.out.push_back((to, message));
            Ok(())
        }
        fn broadcast(&mut self, message: Message) -> anyhow::Result<()> {
            self.log.push(Effect::Out {
                kind: message.kind(),
                durable: self.durable.len(),
            });
            Ok(())
        }
        fn event(&mut self, _engine: &mut Engine, _event: Event) -> anyhow::Result<()> {
            Ok(())
        }
    }

    /// A two-node network (requests refuse `t < 2`): node A is the commissioner, a member of
    /// the one group and a contributor; node B the other member and a contributor.
    fn engines() -> (Engine, Engine, SignedRequest, Vec<u8>, DirectorySnapshot) {
        let secrets = [[3u8; 32], [8u8; 32]];
        let nodes = [NodeId([5u8; 32]), NodeId([9u8; 32])];
        let identities: Vec<Identity> = nodes
            .iter()
            .zip(&secrets)
            .map(|(n, s)| Identity {
                node: *n,
                x25519_secret: *s,
                ed25519_secret: [s[0] + 1; 32],
            })
            .collect();
        let directory =
            DirectorySnapshot::new(identities.iter().map(|i| (i.node, i.keys())).collect());
        let plans = Arc::new(PlanCache::default());
        let engine =
            |i: usize| Engine::new(identities[i].clone(), [1u8 + i as u8; 32], plans.clone());
        let key = ed25519_dalek::SigningKey::from_bytes(&[4u8; 32]);
        let params = ComputeParams {
            query: "SELECT sum(f), count(*) FROM c CLIP f TO [0, 1000] SCALE 0".into(),
            g: 2,
            t: 2,
            k_min: 1,
            leaf_groups: Some(1),
            fan_in: 2,
            max_contributors: Some(10),
            share_window_ms: 100,
            lifetime_secs: 60,
        };
        let id = ComputationId([6u8; 32]);
        let request = query::build_request(
            &params,
            id,
            CommissionerKey(key.verifying_key().to_bytes()),
            nodes[0],
            Micros(1_000_000),
            2,
        )
        .expect("the query compiles");
        let finish = sign_finish(&id, &key);
        (
            engine(0),
            engine(1),
            SignedRequest::sign(request, &key),
            finish,
            directory,
        )
    }

    /// One drain: the next deadline and the messages the node sent, with their receivers.
    type Drain<'a> = &'a mut dyn FnMut(&mut Engine) -> (Option<Micros>, Vec<(NodeId, Message)>);

    /// Runs the computation to its end, draining node A through `drain` and node B by hand;
    /// the request reaches B as the broadcast would. True once A closed it.
    fn run(drain: Drain) -> bool {
        let (mut a, mut b, request, finish, directory) = engines();
        let (node_a, node_b) = (a.node_id(), b.node_id());
        let mut now = Micros(1_000_000);
        let _ = a.handle_command(
            now,
            Command::Launch {
                request: Box::new(request.clone()),
                finish_signature: finish,
                directory: directory.clone(),
            },
        );
        let values = vec![7.0, 1.0, 1.0];
        let id = request.request.id;
        let drain_b = |b: &mut Engine| {
            let mut sent = Vec::new();
            loop {
                match b.poll_output() {
                    Output::Send { to, message } => sent.push((to, message)),
                    Output::Idle { next_deadline } => return (next_deadline, sent),
                    _ => {}
                }
            }
        };
        b.handle_request(now, node_a, request, Some(directory));
        let _ = b.handle_command(
            now,
            Command::Contribute {
                computation: id,
                values: values.clone(),
            },
        );
        let _ = a.handle_command(
            now,
            Command::Contribute {
                computation: id,
                values,
            },
        );
        let (mut next_a, first) = drain(&mut a);
        let mut inbox: VecDeque<(NodeId, Message)> = first.into();
        let mut next_b = None;
        for _ in 0..1000 {
            let (n, more) = drain(&mut a);
            next_a = n.or(next_a);
            inbox.extend(more);
            let (n, more) = drain_b(&mut b);
            next_b = n.or(next_b);
            inbox.extend(more);
            if let Some((to, m)) = inbox.pop_front() {
                if to == node_b {
                    b.handle_message(now, node_a, m);
                } else {
                    a.handle_message(now, node_b, m);
                }
            } else if let Some(d) = [next_a, next_b].into_iter().flatten().min() {
                now = now.max(d);
                (next_a, next_b) = (None, None);
                a.handle_timeout(now);
                b.handle_timeout(now);
            } else {
                return a.computations().next().is_none();
            }
        }
        false
    }

    #[test]
    fn every_send_leaves_after_the_records_emitted_before_it() {
        // The raw output sequence of node A's engine, by hand.
        let mut raw = Vec::new();
        let mut persisted = 0usize;
        let finished = run(&mut |engine| {
            let mut sent = Vec::new();
            loop {
                match engine.poll_output() {
                    Output::Persist(_) => persisted += 1,
                    Output::Send { to, message } => {
                        raw.push(Effect::Out {
                            kind: message.kind(),
                            durable: persisted,
                        });
                        sent.push((to, message));
                    }
                    Output::Broadcast { message } => raw.push(Effect::Out {
                        kind: message.kind(),
                        durable: persisted,
                    }),
                    Output::Event(_) => {}
                    Output::Work(job) => engine.run_job_inline(job),
                    Output::Idle { next_deadline } => return (next_deadline, sent),
                }
            }
        });
        assert!(finished, "the two-node computation did not finish");
        // The same run through the daemon's drain.
        let mut fake = Fake::default();
        let finished = run(&mut |engine| {
            let next = drain_engine(engine, &mut fake).expect("persist succeeds");
            (next, fake.out.drain(..).collect())
        });
        assert!(finished);
        // Shares, reports, manifests, the root's count shares and release share, the request
        // and the completion note: each after the records emitted before it.
        assert!(raw.len() >= 6, "{raw:?}");
        assert_eq!(
            fake.log, raw,
            "a send left before the records emitted ahead of it"
        );
        assert_eq!(fake.durable.len(), persisted);
    }

    #[test]
    fn a_failed_persist_stops_the_drain_before_any_send() {
        let (mut engine, _, request, finish, directory) = engines();
        engine
            .handle_command(
                Micros(1_000_000),
                Command::Launch {
                    request: Box::new(request),
                    finish_signature: finish,
                    directory,
                },
            )
            .expect("the launch is valid");
        let mut fake = Fake {
            fail_persist: true,
            ..Fake::default()
        };
        assert!(drain_engine(&mut engine, &mut fake).is_err());
        assert!(fake.log.is_empty(), "{:?}", fake.log);
    }
}
