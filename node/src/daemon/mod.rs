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

use crate::clock::now_micros;
use crate::config::{self, Keys};
use crate::control::{self, ControlReply, Incoming};
use crate::store::Store;
use anyhow::Context;
use directory::{node_id_of, Announcement, Directory, Peer, Snapshots};
use futures::StreamExt;
use grove_protocol::codec;
use grove_protocol::engine::{Engine, Event, Failure, Identity, Output};
use grove_protocol::ids::{hex, ComputationId, Digest, Micros, NodeId};
use grove_protocol::message::{Body, Message};
use grove_protocol::plan::PlanCache;
use grove_protocol::record::Record;
use grove_protocol::seal;
use libp2p::gossipsub::IdentTopic;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, identify, Multiaddr, PeerId, Swarm};
use net::{Behaviour, BehaviourEvent};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

mod agreement;
mod commands;
pub mod directory;
pub mod hook;
pub mod net;
mod owner;
mod pending;

/// Largest number of sends awaiting their ack that the loop remembers (for the unreachable
/// hook); beyond it, a failure is only logged.
pub const MAX_PENDING_SENDS: usize = 16_384;
/// Largest number of messages the node queues to itself.
pub const MAX_LOOPBACK: usize = 4096;
/// Largest number of `compute` commands waiting for their result.
pub const MAX_WAITERS: usize = grove_protocol::limits::MAX_COMPUTATIONS;
/// Largest number of records returned by `records list --collection`.
pub const MAX_LISTED_RECORDS: usize = 10_000;
/// How often the loop checks whether to announce itself.
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

struct Node {
    data_dir: PathBuf,
    engine: Engine,
    swarm: Swarm<Behaviour>,
    store: Arc<Store>,
    directory: Directory,
    /// Snapshots a request may name, handed to the engine with it.
    snapshots: Snapshots,
    keys: Keys,
    me: NodeId,
    peer_id: PeerId,
    x25519_public: [u8; 32],
    waiters: BTreeMap<ComputationId, Waiter>,
    pending_sends: HashMap<OutboundRequestId, (NodeId, Vec<u8>)>,
    loopback: VecDeque<Message>,
    sent_by_kind: BTreeMap<&'static str, u64>,
    received_by_kind: BTreeMap<&'static str, u64>,
    next_deadline: Option<Micros>,
    listen_addrs: Vec<Multiaddr>,
    announce_due: bool,
    last_announce: Option<Instant>,
    announce_interval: Duration,
    /// The gap before the next periodic announcement (`announce_interval`, jittered).
    next_announce_gap: Duration,
    /// Directory pulls made after the start.
    sync: SyncState,
    started: Instant,
    shutdown: bool,
    /// Directory agreement and late joining through Kademlia (`agreement`).
    agreement: agreement::State,
    /// Requests waiting for the owner (trust mode "ask", `pending`): end of each one's share
    /// window. The store's pending table holds them across restarts.
    pending: BTreeMap<ComputationId, Micros>,
    /// The owner's console, when it is served (`crate::console`).
    console: Option<crate::console::Console>,
}

/// The directory pulls of [`Node::maybe_sync`].
#[derive(Default)]
struct SyncState {
    /// `directory_sync_secs`; `None`: no pulls.
    every: Option<Duration>,
    /// Pulls answered so far.
    answered: u64,
    /// The peer of the first pull (the second asks another).
    first: Option<PeerId>,
    last: Option<Instant>,
}

pub async fn run(args: DaemonArgs) -> anyhow::Result<()> {
    let dir = args.data_dir.clone();
    let config = config::load_config(&dir)?;
    let store = Arc::new(
        Store::open(&config::store_path(&dir))
            .with_context(|| format!("cannot open the store in {}", dir.display()))?,
    );
    let keys = config::load_keys(&store)?;
    let peer_id = keys.libp2p.public().to_peer_id();
    let me = node_id_of(&peer_id);
    let x25519_public = seal::x25519_public(&keys.x25519_secret);

    let mut directory = Directory::default();
    {
        let d = &mut directory;
        for bytes in store.announcements()? {
            if let Ok(peer) = directory::verify_announcement(&bytes) {
                d.insert_signed(peer, bytes);
            }
        }
        d.insert(Peer {
            peer_id,
            node: me,
            x25519_public,
            addrs: Vec::new(),
            issued_at_micros: now_micros().0,
        });
    }
    let records = store.engine_records()?;
    let mut contributed = std::collections::BTreeSet::new();
    for r in &records {
        if let Record::Contribution { computation, .. } = r {
            contributed.insert(*computation);
        }
    }
    let restored = records.len();
    let engine = hook::setup_engine(Engine::restore(
        Identity {
            node: me,
            x25519_secret: keys.x25519_secret,
        },
        config::engine_seed(),
        Arc::new(PlanCache::default()),
        records,
        now_micros(),
    ));

    let mut swarm = net::build_swarm(keys.libp2p.clone()).map_err(|e| anyhow::anyhow!(e))?;
    let listen = if args.listen.is_empty() {
        config.listen.clone()
    } else {
        args.listen.clone()
    };
    for a in &listen {
        let addr: Multiaddr = a
            .parse()
            .with_context(|| format!("bad listen address {a}"))?;
        swarm.listen_on(addr)?;
    }
    for topic in [net::TOPIC_BROADCAST, net::TOPIC_DIRECTORY] {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&IdentTopic::new(topic))?;
    }
    // A restarted node knows its peers from the stored directory: give the swarm their
    // addresses before the restored roles send anything, or the first sends fail to dial and
    // fail over away from live members.
    for peer in directory.peers() {
        if peer.peer_id == peer_id {
            continue;
        }
        for addr in &peer.addrs {
            swarm
                .behaviour_mut()
                .kad
                .add_address(&peer.peer_id, addr.clone());
            swarm.add_peer_address(peer.peer_id, addr.clone());
        }
    }
    let mut bootstrap = config.bootstrap.clone();
    bootstrap.extend(args.bootstrap.iter().cloned());
    for b in &bootstrap {
        let addr: Multiaddr = b
            .parse()
            .with_context(|| format!("bad bootstrap address {b}"))?;
        if let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() {
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            swarm.add_peer_address(peer, addr.clone());
        }
        if let Err(e) = swarm.dial(addr) {
            tracing::warn!("cannot dial bootstrap peer {b}: {e}");
        }
    }

    let listener = control::bind(&dir)
        .with_context(|| format!("cannot bind the control socket in {}", dir.display()))?;
    let (ctl_tx, ctl_rx) = mpsc::channel(control::REQUEST_QUEUE);
    // Personal-cloud connectors reach the store through the same queue as the control socket.
    if let Some(listen) = &config.ingest_listen {
        let addr = crate::sources::ingest::start(&dir, listen, ctl_tx.clone()).await?;
        tracing::info!("ingest endpoint on http://{addr}");
    }
    if let Some(nextcloud) = &config.nextcloud {
        crate::sources::webdav::spawn_periodic(nextcloud.clone(), ctl_tx.clone());
    }
    // The owner's console: another client of the same queue (off unless asked for).
    let console = match args.console.as_ref().or(config.console_listen.as_ref()) {
        Some(listen) => Some(crate::console::start(&dir, listen, ctl_tx.clone()).await?),
        None => None,
    };
    tokio::spawn(control::serve(listener, ctl_tx));

    tracing::info!(
        "grove daemon {peer_id} (node {me}) started; {restored} engine records restored"
    );
    let mut node = Node {
        data_dir: dir,
        engine,
        swarm,
        store,
        directory,
        snapshots: Snapshots::default(),
        keys,
        me,
        peer_id,
        x25519_public,
        waiters: BTreeMap::new(),
        pending_sends: HashMap::new(),
        loopback: VecDeque::new(),
        sent_by_kind: BTreeMap::new(),
        received_by_kind: BTreeMap::new(),
        next_deadline: None,
        listen_addrs: Vec::new(),
        announce_due: true,
        last_announce: None,
        announce_interval: Duration::from_secs(config.announce_interval_secs.max(1)),
        next_announce_gap: Duration::from_secs(config.announce_interval_secs.max(1)),
        sync: SyncState {
            every: (config.directory_sync_secs > 0)
                .then(|| Duration::from_secs(config.directory_sync_secs)),
            ..SyncState::default()
        },
        started: Instant::now(),
        shutdown: false,
        agreement: agreement::State::default(),
        pending: BTreeMap::new(),
        console,
    };
    node.load_pending()?;
    node.drain()?;
    // A crash between accepting a request and contributing to it leaves no contribution
    // record: decide on consent again for every open computation without one.
    let open: Vec<ComputationId> = node
        .engine
        .computations()
        .filter(|c| !contributed.contains(*c))
        .copied()
        .collect();
    for id in open {
        node.consent(id);
        node.drain()?;
    }
    let result = node.run(ctl_rx, args.exit_on_stdin_eof).await;
    let _ = std::fs::remove_file(control::socket_path(&node.data_dir));
    result
}

/// Resolves when standard input reaches end of file (the parent that spawned us is gone).
async fn stdin_closed() {
    use tokio::io::AsyncReadExt;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 256];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Where the drain puts the engine's effects.
pub trait Effects {
    /// Makes records durable (in order) before returning.
    fn persist(&mut self, records: &[Record]) -> anyhow::Result<()>;
    fn send(&mut self, to: NodeId, message: Message);
    fn broadcast(&mut self, message: Message);
}

/// The drain rule: polls the engine until `Idle`, committing every pending `Persist` record
/// (consecutive ones together) before the next `Send` or `Broadcast` and at idle, and
/// collecting events for the caller. Returns the next deadline. A failure to persist stops
/// the drain: nothing that depends on an unwritten record may leave.
pub fn drain_engine(
    engine: &mut Engine,
    effects: &mut impl Effects,
    events: &mut Vec<Event>,
) -> anyhow::Result<Option<Micros>> {
    let mut persist: Vec<Record> = Vec::new();
    loop {
        match engine.poll_output() {
            Output::Persist(record) => persist.push(record),
            Output::Send { to, message } => {
                flush(effects, &mut persist)?;
                effects.send(to, message);
            }
            Output::Broadcast { message } => {
                flush(effects, &mut persist)?;
                effects.broadcast(message);
            }
            Output::Event(event) => events.push(event),
            Output::Idle { next_deadline } => {
                flush(effects, &mut persist)?;
                return Ok(next_deadline);
            }
        }
    }
}

fn flush(effects: &mut impl Effects, persist: &mut Vec<Record>) -> anyhow::Result<()> {
    if !persist.is_empty() {
        effects
            .persist(persist)
            .context("cannot persist engine records; stopping before any dependent send")?;
        persist.clear();
    }
    Ok(())
}

/// The daemon's effects: the store, the swarm and the loopback queue.
struct NodeEffects<'a> {
    me: NodeId,
    store: &'a Store,
    swarm: &'a mut Swarm<Behaviour>,
    directory: &'a Directory,
    pending_sends: &'a mut HashMap<OutboundRequestId, (NodeId, Vec<u8>)>,
    loopback: &'a mut VecDeque<Message>,
    sent_by_kind: &'a mut BTreeMap<&'static str, u64>,
    /// Sends that could not be attempted, for the unreachable hook after the drain.
    unreachable: &'a mut Vec<(NodeId, Message, String)>,
    agreement: &'a mut agreement::State,
}

impl Effects for NodeEffects<'_> {
    fn persist(&mut self, records: &[Record]) -> anyhow::Result<()> {
        self.store.append_engine_records(records)?;
        records
            .iter()
            .for_each(|r| hook::observe(hook::Effect::Persisted(r)));
        Ok(())
    }

    fn send(&mut self, to: NodeId, message: Message) {
        hook::observe(hook::Effect::Sending(&message));
        tracing::debug!(
            "send {} to {to}{}",
            message.kind(),
            slot_text(message.to.as_ref())
        );
        *self.sent_by_kind.entry(message.kind()).or_default() += 1;
        if to == self.me {
            if self.loopback.len() >= MAX_LOOPBACK {
                tracing::warn!("loopback queue full; dropping a {} message", message.kind());
                return;
            }
            self.loopback.push_back(message);
            return;
        }
        let bytes = match codec::encode(&message) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("cannot encode a {} message: {e}", message.kind());
                return;
            }
        };
        // The directory's addresses go with the request: the swarm dials through its
        // behaviours' address books, and Kademlia's routing table keeps only 20 peers per
        // distance bucket, so in a network of a few hundred nodes it lacks most of them (at 200
        // daemons, sends to never-met peers failed to dial and their slots failed over).
        let peer = self
            .directory
            .get(&to)
            .map(|p| (p.peer_id, p.addrs.clone()));
        let Some((peer, addrs)) = peer else {
            self.unreachable
                .push((to, message, "the node is not in the directory".into()));
            return;
        };
        self.agreement.stats.bytes_sent += bytes.len() as u64;
        if matches!(message.body, Body::Share(_)) {
            self.agreement.stats.share_bytes_sent += bytes.len() as u64;
        }
        let id = self
            .swarm
            .behaviour_mut()
            .messages
            .send_request_with_addresses(&peer, bytes.clone(), addrs);
        if self.pending_sends.len() < MAX_PENDING_SENDS {
            self.pending_sends.insert(id, (to, bytes));
        }
    }

    fn broadcast(&mut self, message: Message) {
        *self.sent_by_kind.entry(message.kind()).or_default() += 1;
        let bytes = match codec::encode(&message) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("cannot encode a {} broadcast: {e}", message.kind());
                return;
            }
        };
        self.agreement.stats.bytes_sent += bytes.len() as u64;
        self.agreement.note_broadcast(&message, &bytes);
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(IdentTopic::new(net::TOPIC_BROADCAST), bytes)
        {
            tracing::warn!("cannot broadcast a {} message: {e}", message.kind());
        }
    }
}

impl Node {
    async fn run(
        &mut self,
        mut ctl_rx: mpsc::Receiver<Incoming>,
        exit_on_stdin_eof: bool,
    ) -> anyhow::Result<()> {
        let mut announce_tick = tokio::time::interval(ANNOUNCE_TICK);
        let mut republish_tick = tokio::time::interval(REPUBLISH_INTERVAL);
        let mut requests_tick = tokio::time::interval(agreement::ACTIVE_REQUESTS_POLL);
        let mut sigterm =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let stdin_eof = async {
            if exit_on_stdin_eof {
                stdin_closed().await
            } else {
                std::future::pending().await
            }
        };
        tokio::pin!(stdin_eof);
        while !self.shutdown {
            let sleep = match self.next_deadline {
                Some(d) => {
                    let wait = d.0.saturating_sub(now_micros().0);
                    tokio::time::sleep(Duration::from_micros(wait))
                }
                None => tokio::time::sleep(Duration::from_secs(3600)),
            };
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event)?,
                Some(incoming) = ctl_rx.recv() => self.on_control(incoming)?,
                _ = sleep => {
                    if self.next_deadline.is_some() {
                        self.engine.handle_timeout(now_micros());
                        self.drain()?;
                    }
                }
                _ = announce_tick.tick() => {
                    self.maybe_announce();
                    self.maybe_sync();
                    self.expire_pending()?;
                }
                _ = republish_tick.tick() => self.republish_requests(),
                _ = requests_tick.tick() => self.look_for_requests(),
                _ = tokio::signal::ctrl_c() => {
                    tracing::info!("interrupted; shutting down");
                    break;
                }
                _ = sigterm.recv() => {
                    tracing::info!("terminated; shutting down");
                    break;
                }
                _ = &mut stdin_eof => {
                    tracing::info!("standard input closed; shutting down");
                    break;
                }
            }
            self.run_loopback()?;
        }
        if self.shutdown {
            // Let the control connection that asked for the stop write its answer.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Messages the engine sent to this very node, handled like any other input.
    fn run_loopback(&mut self) -> anyhow::Result<()> {
        while let Some(message) = self.loopback.pop_front() {
            self.count_received(&message);
            self.engine.handle_message(now_micros(), self.me, message);
            self.drain()?;
        }
        Ok(())
    }

    fn count_received(&mut self, message: &Message) {
        *self.received_by_kind.entry(message.kind()).or_default() += 1;
    }

    /// The drain rule (see [`drain_engine`]), then the events it collected, in order; an
    /// event may lead to a command (consent) whose outputs are drained in turn. Sends that
    /// could not even be attempted go to the unreachable hook afterwards.
    fn drain(&mut self) -> anyhow::Result<()> {
        loop {
            let mut events = Vec::new();
            let mut unreachable = Vec::new();
            let mut effects = NodeEffects {
                me: self.me,
                store: &self.store,
                swarm: &mut self.swarm,
                directory: &self.directory,
                pending_sends: &mut self.pending_sends,
                loopback: &mut self.loopback,
                sent_by_kind: &mut self.sent_by_kind,
                unreachable: &mut unreachable,
                agreement: &mut self.agreement,
            };
            self.next_deadline = drain_engine(&mut self.engine, &mut effects, &mut events)?;
            self.publish_outgoing_requests();
            // Failed sends go back to the engine (which fails over to backups): drain again.
            let failed = !unreachable.is_empty();
            for (to, message, why) in unreachable {
                self.on_unreachable(to, message, &why);
            }
            if events.is_empty() && !failed {
                return Ok(());
            }
            for event in events {
                self.on_event(event)?;
            }
        }
    }

    /// THE place where a `Send` that could not be delivered ends up (request-response
    /// `OutboundFailure`, or a node missing from the directory): the engine re-sends it to the
    /// position's next candidate. The caller drains afterwards.
    fn on_unreachable(&mut self, to: NodeId, message: Message, why: &str) {
        tracing::warn!(
            "cannot deliver a {} message of computation {} to node {to}: {why}",
            message.kind(),
            message.computation
        );
        self.engine.handle_unreachable(now_micros(), to, message);
    }

    /// Announces at start, when the listen addresses change (both set `announce_due`) and
    /// every `announce_interval`; at most once per [`ANNOUNCE_MIN_GAP`]. A newcomer learns the
    /// others by pulling the directory ([`Node::maybe_sync`]), not by everyone re-announcing
    /// to it: that cost N^2 broadcasts for N joining nodes, each received several times by
    /// every node, and saturated two cores at 100 daemons.
    ///
    /// Each gap is drawn between 3/4 and 5/4 of the interval: nodes started together would
    /// otherwise re-announce together, and every node hears every announcement (200 daemons
    /// on two cores stalled for a minute, in the middle of a computation).
    fn maybe_announce(&mut self) {
        let since = self.last_announce.map(|t| t.elapsed());
        let periodic = since.is_none_or(|s| s >= self.next_announce_gap);
        let allowed = since.is_none_or(|s| s >= ANNOUNCE_MIN_GAP);
        if (self.announce_due || periodic) && allowed {
            self.announce();
        }
    }

    fn announce(&mut self) {
        let now = now_micros().0;
        let announcement = Announcement {
            peer: self.peer_id.to_bytes(),
            x25519_public: self.x25519_public,
            addrs: self
                .listen_addrs
                .iter()
                .take(directory::MAX_ANNOUNCED_ADDRS)
                .map(|a| a.to_string())
                .collect(),
            issued_at_micros: now,
        };
        let bytes = match directory::sign_announcement(&self.keys.libp2p, &announcement) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("cannot sign the announcement: {e}");
                return;
            }
        };
        self.directory.insert_signed(
            Peer {
                peer_id: self.peer_id,
                node: self.me,
                x25519_public: self.x25519_public,
                addrs: self.listen_addrs.clone(),
                issued_at_micros: now,
            },
            bytes.clone(),
        );
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(IdentTopic::new(net::TOPIC_DIRECTORY), bytes)
        {
            Ok(_) => {
                tracing::debug!("announced");
                // Only a published announcement starts the gap: a node with no mesh peers yet
                // retries at the next tick.
                self.last_announce = Some(Instant::now());
                self.announce_due = false;
                self.next_announce_gap = self
                    .announce_interval
                    .mul_f64(rand::Rng::gen_range(&mut rand::thread_rng(), 0.75..1.25));
            }
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                self.announce_due = true;
            }
            Err(e) => {
                tracing::debug!("announcement not published: {e}");
                self.announce_due = true;
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) -> anyhow::Result<()> {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!("listening on {address}/p2p/{}", self.peer_id);
                self.listen_addrs.push(address);
                self.announce_due = true;
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.on_gossip(e)?,
            SwarmEvent::Behaviour(BehaviourEvent::Messages(e)) => self.on_messages(e)?,
            SwarmEvent::Behaviour(BehaviourEvent::Sync(e)) => self.on_sync(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.on_kad(e)?,
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                tracing::debug!("connected to {peer_id}");
            }
            SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                tracing::debug!("connection to {peer_id} closed: {cause:?}");
            }
            _ => {}
        }
        Ok(())
    }

    fn on_gossip(&mut self, event: gossipsub::Event) -> anyhow::Result<()> {
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
        self.agreement.stats.bytes_received += message.data.len() as u64;
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

    fn on_announcement(&mut self, bytes: &[u8]) {
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
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer.peer_id, addr.clone());
                self.swarm.add_peer_address(peer.peer_id, addr.clone());
            }
            let id = peer.peer_id;
            let d = &mut self.directory;
            let changed = d.get(&peer.node).is_some_and(|old| {
                old.issued_at_micros < peer.issued_at_micros
                    && (old.addrs != peer.addrs || old.x25519_public != peer.x25519_public)
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
    fn maybe_sync(&mut self) {
        let Some(every) = self.sync.every else {
            return;
        };
        let gap = if self.sync.answered < 2 {
            SYNC_GAP
        } else {
            every
        };
        if self.sync.last.is_some_and(|t| t.elapsed() < gap) {
            return;
        }
        let peer = if self.sync.answered < 2 {
            self.swarm
                .connected_peers()
                .find(|p| self.sync.first != Some(**p))
                .copied()
        } else {
            use rand::seq::IteratorRandom;
            self.swarm
                .connected_peers()
                .choose(&mut rand::thread_rng())
                .copied()
        };
        let Some(peer) = peer else {
            return;
        };
        tracing::debug!("pulling the directory from {peer}");
        let digest = self.directory.digest();
        self.swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, digest.0);
        self.sync.first.get_or_insert(peer);
        self.sync.last = Some(Instant::now());
    }

    fn on_sync(&mut self, event: request_response::Event<[u8; 32], Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let body = directory::encode_for_sync(&self.directory, &Digest(request));
                    let _ = self.swarm.behaviour_mut().sync.send_response(channel, body);
                }
                request_response::Message::Response { response, .. } => {
                    self.sync.answered += 1;
                    let announcements = match directory::decode_sync(&response) {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!("bad directory from {peer}: {e}");
                            return;
                        }
                    };
                    let total = announcements.len();
                    // Only what this node lacks is verified (a signature check each).
                    let unknown = self.directory.lacking(announcements);
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

    fn on_messages(&mut self, event: request_response::Event<Vec<u8>, ()>) -> anyhow::Result<()> {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    self.agreement.stats.bytes_received += request.len() as u64;
                    match codec::decode(&request) {
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
                        .swarm
                        .behaviour_mut()
                        .messages
                        .send_response(channel, ());
                }
                request_response::Message::Response { request_id, .. } => {
                    self.pending_sends.remove(&request_id);
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => match self.pending_sends.remove(&request_id) {
                Some((to, bytes)) => match codec::decode(&bytes) {
                    Ok(message) => {
                        self.on_unreachable(to, message, &format!("{peer}: {error}"));
                        self.drain()?;
                    }
                    Err(e) => tracing::warn!("send to {peer} failed ({error}); {e}"),
                },
                None => tracing::warn!("a send to {peer} failed: {error}"),
            },
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!("inbound message from {peer} failed: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
        Ok(())
    }

    fn on_event(&mut self, event: Event) -> anyhow::Result<()> {
        match event {
            Event::RequestAccepted { computation, roles } => {
                let commissioner = self
                    .engine
                    .request(&computation)
                    .map(|s| hex(&s.request.commissioner.0))
                    .unwrap_or_default();
                self.audit(
                    Some(&computation),
                    "accepted",
                    format!("request from commissioner {commissioner}; {roles} aggregator positions here"),
                );
                self.consent(computation);
            }
            Event::RequestRefused {
                computation,
                reason,
            } => {
                self.audit(Some(&computation), "refused", reason.to_string());
                if let Some(w) = self.waiters.remove(&computation) {
                    let _ = w.reply.try_send(ControlReply::Error {
                        message: format!("the request was refused: {reason}"),
                    });
                }
            }
            Event::Contributed { computation, group } => {
                tracing::info!(
                    "computation {computation}: shares sent to leaf group {}",
                    group.index
                );
            }
            Event::MessageRejected { from, kind, reason } => {
                tracing::debug!("rejected a {kind} message from {from}: {reason}");
            }
            Event::ManifestAdopted {
                computation,
                group,
                position,
                version,
                ..
            } => {
                tracing::debug!(
                    "computation {computation}: group ({}, {}) position {position} adopted a manifest of {} contributors",
                    group.level, group.index, version.count
                );
            }
            Event::HealDone {
                computation,
                child,
                target,
                ..
            } => tracing::info!(
                "computation {computation}: healed position {target} of group ({}, {})",
                child.level,
                child.index
            ),
            Event::HealGaveUp {
                computation,
                child,
                target,
            } => tracing::warn!(
                "computation {computation}: gave up healing position {target} of group ({}, {})",
                child.level,
                child.index
            ),
            Event::Released(r) => {
                let contributors = r.version.count;
                self.audit(
                    Some(&r.computation),
                    "released",
                    format!("result released over {contributors} contributors"),
                );
                if let Some(w) = self.waiters.remove(&r.computation) {
                    let table = w
                        .compiled
                        .decode_released(&r.values, &r.released, contributors);
                    // A withheld element has no value: null.
                    let values: Vec<Option<f64>> = r
                        .values
                        .iter()
                        .zip(&r.released)
                        .map(|(v, open)| open.then_some(*v))
                        .collect();
                    // Differential privacy: each noisy cell's deviation and 95% interval.
                    let accuracy = w.compiled.accuracy(&r.values, &r.released, contributors);
                    let text = match &accuracy {
                        Some(a) => format!("{table}\n{}", a.to_string().trim_end()),
                        None => table.to_string(),
                    };
                    let completeness = if w.directory_peers == 0 {
                        0.0
                    } else {
                        contributors as f64 / w.directory_peers as f64
                    };
                    let data = json!({
                        "computation": r.computation.to_string(),
                        "query": w.compiled.query().to_string(),
                        "table": table,
                        "text": text,
                        "accuracy": accuracy,
                        "values": values,
                        "contributors": contributors,
                        "directory_peers": w.directory_peers,
                        "completeness": completeness,
                        "version": r.version.digest.to_string(),
                        "elapsed_ms": w.started.elapsed().as_millis() as u64,
                    });
                    let _ = w.reply.try_send(ControlReply::Ok { data });
                }
            }
            Event::Failed {
                computation,
                reason,
            } => {
                let why = match reason {
                    Failure::KMinNotMet { k_min, cells } => format!(
                        "none of the {cells} cells of the result counts k_min = {k_min} contributors: the root group released nothing"
                    ),
                    Failure::NoQuorum { best_holders } => format!(
                        "no version reached the threshold of root positions before the deadline (best: {best_holders})"
                    ),
                    Failure::SharesMissing { received } => format!(
                        "the root agreed, but only {received} root shares arrived before the deadline, fewer than the threshold"
                    ),
                };
                self.audit(Some(&computation), "failed", why.clone());
                if let Some(w) = self.waiters.remove(&computation) {
                    let _ = w.reply.try_send(ControlReply::Error { message: why });
                }
            }
            Event::Closed { computation } => {
                self.forget_pending(&computation);
                self.unpublish_request(&computation);
                tracing::info!("computation {computation} closed");
            }
        }
        Ok(())
    }
}

/// ` for (level, index) position p`, for debug traces of addressed messages.
fn slot_text(slot: Option<&grove_protocol::message::Slot>) -> String {
    slot.map(|s| {
        format!(
            " for ({}, {}) position {}",
            s.group.level, s.group.index, s.position
        )
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::ComputeParams;
    use crate::owner::query;
    use grove_protocol::engine::{sign_finish, Command};
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
        fn persist(&mut self, records: &[Record]) -> anyhow::Result<()> {
            anyhow::ensure!(!self.fail_persist, "disk full");
            self.durable.extend_from_slice(records);
            Ok(())
        }
        fn send(&mut self, to: NodeId, message: Message) {
            self.log.push(Effect::Out {
                kind: message.kind(),
                durable: self.durable.len(),
            });
            self.out.push_back((to, message));
        }
        fn broadcast(&mut self, message: Message) {
            self.log.push(Effect::Out {
                kind: message.kind(),
                durable: self.durable.len(),
            });
        }
    }

    /// A two-node network (requests refuse `t < 2`): node A is the commissioner, a member of
    /// the one group and a contributor; node B the other member and a contributor.
    fn engines() -> (Engine, Engine, SignedRequest, Vec<u8>, DirectorySnapshot) {
        let secrets = [[3u8; 32], [8u8; 32]];
        let nodes = [NodeId([5u8; 32]), NodeId([9u8; 32])];
        let directory = DirectorySnapshot::new(
            nodes
                .iter()
                .zip(&secrets)
                .map(|(n, s)| (*n, seal::x25519_public(s)))
                .collect(),
        );
        let plans = Arc::new(PlanCache::default());
        let engine = |i: usize| {
            Engine::new(
                Identity {
                    node: nodes[i],
                    x25519_secret: secrets[i],
                },
                [1u8 + i as u8; 32],
                plans.clone(),
            )
        };
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
                    Output::Idle { next_deadline } => return (next_deadline, sent),
                }
            }
        });
        assert!(finished, "the two-node computation did not finish");
        // The same run through the daemon's drain.
        let mut fake = Fake::default();
        let finished = run(&mut |engine| {
            let mut events = Vec::new();
            let next = drain_engine(engine, &mut fake, &mut events).expect("persist succeeds");
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
        let mut events = Vec::new();
        assert!(drain_engine(&mut engine, &mut fake, &mut events).is_err());
        assert!(fake.log.is_empty(), "{:?}", fake.log);
    }
}
