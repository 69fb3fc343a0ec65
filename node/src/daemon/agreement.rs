//! Directory agreement and late joining through Kademlia (the design is in `directory`).
//!
//! - The commissioner stores the directory snapshot its request names under
//!   `snapshot_record_key(digest)`, and its active requests (the very bytes it broadcast) under
//!   `active_requests_key(commissioner key)`.
//! - A request whose snapshot this node lacks is parked (not yet given to the engine, whose
//!   replay check would refuse it later) while the snapshot is fetched; it is then handed to
//!   the engine, or, if the snapshot cannot be fetched, declined with a reason in the audit log.
//!   Messages of the computation that arrive meanwhile wait in the engine's early queue.
//! - A node looks up the active requests of the commissioners it trusts when it starts and
//!   when it trusts a new one, so a node that starts after the gossip broadcast still finds
//!   and joins a computation while its share window is open; then on a back-off ([`Poll`]:
//!   from [`ACTIVE_REQUESTS_POLL`], doubled by each lookup that brings nothing new, up to
//!   [`poll_cap`]), for the requests gossip missed.
//!   Kademlia values are not authenticated, but every request in them is signed and goes
//!   through the engine's checks: a forged value can hide requests, never forge one.

use super::Node;
use crate::clock::now_micros;
use crate::daemon::directory::{self, Snapshot};
use grove_protocol::codec;
use grove_protocol::ids::{ComputationId, Digest, Micros, NodeId};
use grove_protocol::message::{Body, Message};
use grove_protocol::snapshot::DirectorySnapshot;
use libp2p::kad::{self, GetRecordOk, QueryResult, Quorum, Record, RecordKey};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Largest number of requests parked while their snapshot is fetched.
pub const MAX_PARKED_REQUESTS: usize = 64;
/// How many times a snapshot is looked up before the request is declined.
pub const SNAPSHOT_FETCH_ATTEMPTS: u32 = 3;
/// Largest number of active requests a commissioner keeps in its DHT record.
pub const MAX_PUBLISHED_REQUESTS: usize = 64;
/// Largest value of an active-requests record.
pub const MAX_ACTIVE_REQUESTS_BYTES: usize = 4 * 1024 * 1024;
/// Largest number of trusted commissioners looked up in one poll.
pub const MAX_LOOKED_UP_COMMISSIONERS: usize = 16;
/// Largest number of requests remembered as already handed to the engine (so that a request
/// found again in a commissioner's DHT record is not handed over twice). Not the engine's replay set, which is
/// `grove_protocol::limits::MAX_SEEN_REQUESTS` and refuses a request it saw whatever this
/// forgets; the two had one name and two values.
pub const MAX_HANDED_REQUESTS: usize = 4096;
/// The wait before the second lookup of a trusted commissioner's active requests (the first
/// is at once): each lookup that brings no request this node lacked doubles the wait, up to
/// [`poll_cap`]; one that brings one sets it back to this.
pub const ACTIVE_REQUESTS_POLL: Duration = Duration::from_secs(10);
/// The longest wait between two lookups of one commissioner's requests, whatever the network.
pub const MIN_POLL_CAP: Duration = Duration::from_secs(60);
/// The longest wait between two lookups of one commissioner's requests on a large network:
/// the bound on how late the lookups find a request this node missed by gossip.
pub const MAX_POLL_CAP: Duration = Duration::from_secs(600);
/// Peers of the directory per second of the cap: with every node polling one commissioner at
/// the cap, the peers closest to its key answer about one lookup per second each (a lookup
/// that finds nothing asks all of them), up to `MAX_POLL_CAP` seconds' worth of peers.
pub const PEERS_PER_CAP_SECOND: usize = 1;
/// The shortest gap between two passes over the trusted commissioners' lookups: a lookup
/// still in flight when its poll is due is looked at again this much later, not at once.
pub const LOOKUP_TICK: Duration = Duration::from_secs(2);

/// When the daemon next goes over the trusted commissioners' lookups ([`Node::poll_requests`]):
/// at the earliest poll's due time, but not within [`LOOKUP_TICK`] of the last pass
/// (`last`); `None` with no poll (no commissioner trusted, or before the first lookup): a
/// new trust (`look_for_requests`) makes its own pass. Until session 26 a 2 s tick woke every
/// daemon and read the trust list from the store whether a lookup was due or not: a node at
/// the cap (60 to 600 s) did so 30 to 300 times per lookup.
pub fn next_pass(polls: impl IntoIterator<Item = Instant>, last: Instant) -> Option<Instant> {
    polls
        .into_iter()
        .min()
        .map(|due| due.max(last + LOOKUP_TICK))
}

/// The longest wait between two lookups of one commissioner's requests on a network whose
/// directory holds `peers` peers: `peers` seconds, within [`MIN_POLL_CAP`] and
/// [`MAX_POLL_CAP`].
pub fn poll_cap(peers: usize) -> Duration {
    let secs = (peers / PEERS_PER_CAP_SECOND) as u64;
    Duration::from_secs(secs).clamp(MIN_POLL_CAP, MAX_POLL_CAP)
}

/// When a node looks up one trusted commissioner's active requests next.
///
/// A lookup of a key with no record (no request active: a network at rest) asks all the ~20
/// peers closest to the key, dialing those it is not connected to, and every node asks the
/// same peers; at a fixed 10 s that kept every node's connections above its target and made
/// each of those peers answer N/10 lookups per second. Gossip is how requests reach running
/// nodes; the lookups are for the nodes it missed. So the wait doubles while lookups bring
/// nothing new, and each wait is drawn from its second half, so that nodes started together
/// do not ask at the same moments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Poll {
    /// The wait after the next lookup, before jitter.
    pub wait: Duration,
    /// When the next lookup is due.
    pub next: Instant,
}

impl Poll {
    /// A commissioner to look up at `now` (newly trusted, or the node just started).
    pub fn due(now: Instant) -> Poll {
        Poll {
            wait: ACTIVE_REQUESTS_POLL,
            next: now,
        }
    }

    /// A lookup starts at `now`: the next is due after the current wait, drawn in its second
    /// half by `jitter` (in `[0, 1)`), and the wait after it doubles, up to `cap`. A node in
    /// the broadcast topic's mesh (`meshed`) hears requests by gossip: its next lookup waits
    /// the cap at once. The short waits are for a node that is not (yet) in the mesh: at 200
    /// nodes, every node trusting the commissioner within half a minute made 615 lookups
    /// of a key with no record in the next 45 s, each dialing ~27 of the peers closest to the
    /// key (16,596 dials), and an idle daemon's CPU rose from 0.9 to 5.8 ms/s.
    pub fn started(self, now: Instant, cap: Duration, jitter: f64, meshed: bool) -> Poll {
        let wait = if meshed { cap } else { self.wait.min(cap) };
        Poll {
            wait: (self.wait * 2).min(cap).max(ACTIVE_REQUESTS_POLL),
            next: now + jittered(wait, jitter),
        }
    }

    /// A lookup brought a request this node had not seen (gossip missed it): the next is due
    /// within [`ACTIVE_REQUESTS_POLL`], and the waits start over from there.
    pub fn found_new(self, now: Instant, jitter: f64) -> Poll {
        Poll {
            wait: ACTIVE_REQUESTS_POLL * 2,
            next: self.next.min(now + jittered(ACTIVE_REQUESTS_POLL, jitter)),
        }
    }
}

/// `wait` drawn in its second half: `wait * (1 + jitter) / 2`, `jitter` in `[0, 1)`.
pub fn jittered(wait: Duration, jitter: f64) -> Duration {
    wait.mul_f64((1.0 + jitter.clamp(0.0, 1.0)) / 2.0)
}

/// The node's Kademlia agreement state and its traffic counters.
#[derive(Default)]
pub struct State {
    /// Snapshot lookups in flight: digest and attempt number.
    fetches: HashMap<kad::QueryId, (Digest, u32)>,
    /// Requests waiting for their snapshot, by digest: (sender, message).
    parked: BTreeMap<Digest, Vec<(NodeId, Message)>>,
    /// Active-request lookups in flight, by commissioner key.
    lookups: HashMap<kad::QueryId, [u8; 32]>,
    /// This node's own active requests (as commissioner): deadline and broadcast bytes.
    published: BTreeMap<ComputationId, (Micros, Vec<u8>)>,
    /// Requests this node broadcast in the last drain, to publish.
    pub(super) outgoing: Vec<(ComputationId, Micros, Vec<u8>)>,
    /// Requests already handed to the engine (or declined), with their deadline.
    seen: BTreeMap<ComputationId, Micros>,
    /// Whether the first lookup of active requests was made.
    looked_up: bool,
    /// When each trusted commissioner is looked up next.
    polls: BTreeMap<[u8; 32], Poll>,
    pub(super) stats: Stats,
}

#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Stats {
    /// Bytes of protocol messages this node sent (request-response payloads and broadcasts).
    pub bytes_sent: u64,
    /// Of which shares (what the node uploaded as a contributor, sealed, with headers).
    pub share_bytes_sent: u64,
    /// Bytes of protocol messages this node received.
    pub bytes_received: u64,
    pub snapshots_published: u64,
    pub snapshots_fetched: u64,
    pub snapshot_fetch_failures: u64,
    /// Requests found in the DHT that this node had not received by gossip.
    pub requests_found_in_dht: u64,
    /// Lookups of trusted commissioners' active requests this node started.
    pub request_lookups: u64,
    /// Record lookups (of active requests or snapshots) other peers asked this node.
    pub record_lookups_answered: u64,
}

impl State {
    pub(super) fn note_broadcast(&mut self, message: &Message, bytes: &[u8]) {
        if let Body::Request(signed) = &message.body {
            self.outgoing
                .push((signed.request.id, signed.request.deadline, bytes.to_vec()));
        }
    }
}

fn expiry(deadline: Micros) -> Instant {
    Instant::now() + Duration::from_micros(deadline.0.saturating_sub(now_micros().0))
}

impl Node {
    /// A request broadcast (by gossip or found in the DHT): handed to the engine once this
    /// node can plan it.
    pub(super) fn on_request_message(
        &mut self,
        from: NodeId,
        message: Message,
    ) -> anyhow::Result<()> {
        let Body::Request(signed) = &message.body else {
            return Ok(());
        };
        let id = signed.request.id;
        // Only a request that could be accepted is worth a lookup; the engine refuses the others.
        // Nothing of a request is kept here: consent reads the request the engine accepted.
        let plausible = signed.verify_signature().is_ok()
            && signed.request.validate_params().is_ok()
            && signed.request.deadline > now_micros();
        if plausible {
            // Junk (a bad signature) never takes a place in the seen list.
            self.mark_seen(id, signed.request.deadline);
        }
        let snapshot = self
            .membership
            .snapshots
            .directory_for(&self.membership.directory, &signed.request);
        let digest = match signed.request.directory {
            // A request the engine holds or remembers needs no snapshot (it is a duplicate or
            // a replay); only one that could be accepted is worth a lookup.
            Some(d) if plausible && snapshot.is_none() && !self.engine.knows_request(&id) => d,
            _ => {
                self.count_received(&message);
                return self.hand_request(from, message, snapshot);
            }
        };
        let parked: usize = self
            .membership
            .agreement
            .parked
            .values()
            .map(Vec::len)
            .sum();
        if parked >= MAX_PARKED_REQUESTS {
            self.audit(
                Some(&id),
                "declined",
                format!(
                    "too many requests wait for directory snapshots; snapshot {digest} not fetched"
                ),
            );
            return Ok(());
        }
        tracing::info!("computation {id}: fetching directory snapshot {digest} from the DHT");
        let first = !self.membership.agreement.parked.contains_key(&digest);
        self.membership
            .agreement
            .parked
            .entry(digest)
            .or_default()
            .push((from, message));
        if first {
            self.fetch_snapshot(digest, 1);
        }
        Ok(())
    }

    /// Gives the engine a request with the directory snapshot this node holds for it (`None`:
    /// the engine refuses it, unless it holds or remembers it).
    fn hand_request(
        &mut self,
        from: NodeId,
        message: Message,
        snapshot: Option<DirectorySnapshot>,
    ) -> anyhow::Result<()> {
        if let Body::Request(signed) = message.body {
            self.engine
                .handle_request(now_micros(), from, *signed, snapshot);
        }
        self.drain()
    }

    fn mark_seen(&mut self, id: ComputationId, deadline: Micros) {
        let now = now_micros();
        self.membership.agreement.seen.retain(|_, d| *d > now);
        if self.membership.agreement.seen.len() >= MAX_HANDED_REQUESTS {
            if let Some(first) = self.membership.agreement.seen.keys().next().copied() {
                self.membership.agreement.seen.remove(&first);
            }
        }
        self.membership.agreement.seen.insert(id, deadline);
    }

    fn fetch_snapshot(&mut self, digest: Digest, attempt: u32) {
        let key = RecordKey::new(&directory::snapshot_record_key(&digest));
        let q = self.transport.swarm.behaviour_mut().kad.get_record(key);
        self.membership
            .agreement
            .fetches
            .insert(q, (digest, attempt));
    }

    /// Stores a frozen snapshot in the DHT (the node keeps it in its own record store too, so
    /// it answers lookups even if no other peer took a copy).
    pub(super) fn publish_snapshot(
        &mut self,
        snapshot: &Snapshot,
        deadline: Micros,
    ) -> anyhow::Result<()> {
        let bytes = snapshot.encode().ok_or_else(|| {
            anyhow::anyhow!(
                "the directory snapshot of {} peers is over {} bytes",
                snapshot.peers.len(),
                directory::MAX_SNAPSHOT_BYTES
            )
        })?;
        let mut record = Record::new(directory::snapshot_record_key(&snapshot.digest), bytes);
        record.expires = Some(expiry(deadline));
        self.transport
            .swarm
            .behaviour_mut()
            .kad
            .put_record(record, Quorum::One)
            .map_err(|e| anyhow::anyhow!("cannot store the directory snapshot: {e}"))?;
        self.membership.agreement.stats.snapshots_published += 1;
        Ok(())
    }

    /// Publishes the requests this node broadcast in the last drain.
    pub(super) fn publish_outgoing_requests(&mut self) {
        if self.membership.agreement.outgoing.is_empty() {
            return;
        }
        let mine = self.keys.commissioner.verifying_key().to_bytes();
        for (id, deadline, bytes) in std::mem::take(&mut self.membership.agreement.outgoing) {
            // Only this node's own requests: it may relay others' in the future.
            let own = codec::decode(&bytes).is_ok_and(
                |m| matches!(&m.body, Body::Request(s) if s.request.commissioner.0 == mine),
            );
            if own {
                self.membership
                    .agreement
                    .published
                    .insert(id, (deadline, bytes));
            }
        }
        self.republish_requests();
    }

    /// Drops a finished computation from this node's active requests.
    pub(super) fn unpublish_request(&mut self, id: &ComputationId) {
        if self.membership.agreement.published.remove(id).is_some() {
            self.republish_requests();
        }
    }

    /// Puts this node's active requests in the DHT again (they change, and records expire).
    pub(super) fn republish_requests(&mut self) {
        let now = now_micros();
        let published = &mut self.membership.agreement.published;
        published.retain(|_, (deadline, _)| *deadline > now);
        while published.len() > MAX_PUBLISHED_REQUESTS {
            // Keep the ones that end last.
            if let Some(id) = published
                .iter()
                .min_by_key(|(_, (d, _))| *d)
                .map(|(id, _)| *id)
            {
                published.remove(&id);
            }
        }
        let mine = self.keys.commissioner.verifying_key().to_bytes();
        let key = directory::active_requests_key(&mine);
        let Some(last) = published.values().map(|(d, _)| *d).max() else {
            self.transport
                .swarm
                .behaviour_mut()
                .kad
                .remove_record(&RecordKey::new(&key));
            return;
        };
        let list: Vec<&Vec<u8>> = published.values().map(|(_, b)| b).collect();
        let value = match postcard::to_allocvec(&list) {
            Ok(v) if v.len() <= MAX_ACTIVE_REQUESTS_BYTES => v,
            _ => {
                tracing::warn!("the active requests do not fit a DHT record");
                return;
            }
        };
        let mut record = Record::new(key, value);
        record.expires = Some(expiry(last));
        if let Err(e) = self
            .transport
            .swarm
            .behaviour_mut()
            .kad
            .put_record(record, Quorum::One)
        {
            tracing::warn!("cannot store the active requests: {e}");
        }
    }

    /// Looks up the active requests of every commissioner this node trusts, itself excepted,
    /// now (the node started, or trusts a new one), and starts their waits over.
    pub(super) fn look_for_requests(&mut self) {
        self.poll_requests(true);
    }

    /// When [`poll_requests`](Self::poll_requests) next has a lookup to start ([`next_pass`]).
    pub(super) fn requests_due(&self, last: Instant) -> Option<Instant> {
        next_pass(
            self.membership.agreement.polls.values().map(|p| p.next),
            last,
        )
    }

    /// Looks up the active requests of the trusted commissioners whose lookup is due
    /// ([`Poll`]); `all`: of every one, now.
    pub(super) fn poll_requests(&mut self, all: bool) {
        let trusted = match self.store.trust_list() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("cannot read the trust list: {e}");
                return;
            }
        };
        let mine = self.keys.commissioner.verifying_key().to_bytes();
        let now = Instant::now();
        let cap = poll_cap(self.membership.directory.len());
        let broadcast = libp2p::gossipsub::IdentTopic::new(super::net::TOPIC_BROADCAST).hash();
        let meshed = self
            .transport
            .swarm
            .behaviour()
            .gossipsub
            .mesh_peers(&broadcast)
            .next()
            .is_some();
        let keys: Vec<[u8; 32]> = trusted
            .iter()
            .take(MAX_LOOKED_UP_COMMISSIONERS)
            .filter_map(|entry| parse_key(&entry.key))
            // A node that trusts its own key holds its own requests: once its record is
            // gone from its store (the computation closed), looking it up dialed the peers
            // closest to the key every poll for nothing.
            .filter(|key| *key != mine)
            .collect();
        self.membership
            .agreement
            .polls
            .retain(|k, _| keys.contains(k));
        for key in keys {
            let agreement = &mut self.membership.agreement;
            let in_flight = agreement.lookups.values().any(|k| *k == key);
            let poll = agreement.polls.entry(key).or_insert_with(|| Poll::due(now));
            if all {
                *poll = Poll::due(now);
            }
            if poll.next > now || in_flight {
                continue;
            }
            *poll = poll.started(now, cap, rand::random(), meshed);
            let q = self
                .transport
                .swarm
                .behaviour_mut()
                .kad
                .get_record(RecordKey::new(&directory::active_requests_key(&key)));
            let agreement = &mut self.membership.agreement;
            agreement.lookups.insert(q, key);
            agreement.stats.request_lookups += 1;
        }
        self.membership.agreement.looked_up = true;
    }

    /// The first lookup of active requests happens once the routing table has a peer.
    pub(super) fn on_routing_updated(&mut self) {
        if !self.membership.agreement.looked_up {
            self.look_for_requests();
        }
    }

    pub(super) fn on_kad(&mut self, event: kad::Event) -> anyhow::Result<()> {
        match event {
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => match result {
                QueryResult::GetRecord(result) => {
                    if let Some((digest, attempt)) =
                        self.membership.agreement.fetches.get(&id).copied()
                    {
                        self.on_snapshot_progress(id, digest, attempt, result, step.last)?;
                    } else if let Some(key) = self.membership.agreement.lookups.get(&id).copied() {
                        if let Ok(GetRecordOk::FoundRecord(r)) = result {
                            // One copy is enough: the next poll asks again. Every node polls
                            // every trusted commissioner's key, and a lookup that went on to
                            // every holder made each holder answer (and, with connections
                            // that follow the work, be dialed by) every node every poll.
                            self.membership.agreement.lookups.remove(&id);
                            if let Some(mut q) =
                                self.transport.swarm.behaviour_mut().kad.query_mut(&id)
                            {
                                q.finish();
                            }
                            // A request gossip missed: look again soon, there may be others.
                            if self.on_active_requests(&key, &r.record.value)? > 0 {
                                let agreement = &mut self.membership.agreement;
                                if let Some(poll) = agreement.polls.get_mut(&key) {
                                    *poll = poll.found_new(Instant::now(), rand::random());
                                }
                            }
                        } else if step.last {
                            self.membership.agreement.lookups.remove(&id);
                        }
                    }
                }
                // Each step of a bootstrap (libp2p's own, or a rejoin's) ends it once the
                // routing table is filled (`net::end_bootstrap_if_filled`).
                QueryResult::Bootstrap(_) => {
                    super::net::end_bootstrap_if_filled(
                        &mut self.transport.swarm.behaviour_mut().kad,
                    );
                }
                QueryResult::PutRecord(Err(e)) => {
                    // Quorum failures are expected on tiny networks: the node keeps its copy.
                    tracing::debug!("a DHT record was not replicated: {e}");
                }
                _ => {}
            },
            kad::Event::InboundRequest {
                request: kad::InboundRequest::GetRecord { .. },
            } => self.membership.agreement.stats.record_lookups_answered += 1,
            kad::Event::RoutingUpdated { peer, .. } => {
                tracing::debug!("kademlia routing table now has {peer}");
                self.on_routing_updated();
            }
            _ => {}
        }
        Ok(())
    }

    fn on_snapshot_progress(
        &mut self,
        id: kad::QueryId,
        digest: Digest,
        attempt: u32,
        result: Result<GetRecordOk, kad::GetRecordError>,
        last: bool,
    ) -> anyhow::Result<()> {
        let why = match result {
            Ok(GetRecordOk::FoundRecord(r)) => {
                match directory::verify_snapshot(&r.record.value, &digest) {
                    Ok(snapshot) => {
                        self.membership.agreement.fetches.remove(&id);
                        if let Some(mut q) = self.transport.swarm.behaviour_mut().kad.query_mut(&id)
                        {
                            q.finish();
                        }
                        return self.on_snapshot(snapshot);
                    }
                    // Someone stored a bad copy: keep listening for a good one.
                    Err(e) => format!("a copy was rejected: {e}"),
                }
            }
            Ok(GetRecordOk::FinishedWithNoAdditionalRecord { .. }) => "no copy found".into(),
            Err(e) => e.to_string(),
        };
        if !last {
            tracing::debug!("snapshot {digest}: {why}");
            return Ok(());
        }
        self.membership.agreement.fetches.remove(&id);
        if attempt < SNAPSHOT_FETCH_ATTEMPTS {
            tracing::info!("snapshot {digest}: {why}; looking again");
            self.fetch_snapshot(digest, attempt + 1);
            return Ok(());
        }
        self.membership.agreement.stats.snapshot_fetch_failures += 1;
        for (_, message) in self
            .membership
            .agreement
            .parked
            .remove(&digest)
            .unwrap_or_default()
        {
            self.audit(
                Some(&message.computation),
                "declined",
                format!(
                    "this node's directory differs from the snapshot {digest} the request was planned over, and the snapshot could not be fetched ({why}): no share was sent"
                ),
            );
        }
        Ok(())
    }

    /// A verified snapshot: its peers join the directory (with their addresses, so the node
    /// can reach them), and the requests that waited for it go to the engine.
    fn on_snapshot(&mut self, snapshot: Snapshot) -> anyhow::Result<()> {
        self.membership.agreement.stats.snapshots_fetched += 1;
        tracing::info!(
            "fetched directory snapshot {} ({} peers)",
            snapshot.digest,
            snapshot.peers.len()
        );
        self.learn_peers(snapshot.peers.clone());
        self.membership.snapshots.add(&snapshot);
        let planned = snapshot.for_plan();
        for (from, message) in self
            .membership
            .agreement
            .parked
            .remove(&snapshot.digest)
            .unwrap_or_default()
        {
            self.count_received(&message);
            self.hand_request(from, message, Some(planned.clone()))?;
        }
        Ok(())
    }

    /// A commissioner's active requests: the ones this node has not seen go the gossip way.
    /// Returns how many of them carry their commissioner's valid signature: each brings the
    /// next lookup closer ([`Poll::found_new`]), and a forged record must not (it could
    /// otherwise hold every node that reads it at the shortest wait).
    fn on_active_requests(
        &mut self,
        commissioner: &[u8; 32],
        value: &[u8],
    ) -> anyhow::Result<usize> {
        let agreement = &self.membership.agreement;
        let engine = &self.engine;
        let unseen = unseen_requests(commissioner, value, now_micros(), |id| {
            agreement.seen.contains_key(id) || engine.request(id).is_some()
        });
        let mut new = 0;
        for (message, signed) in unseen {
            let Body::Request(request) = &message.body else {
                continue;
            };
            let from = request.request.commissioner_node;
            tracing::info!(
                "computation {}: request found in the DHT",
                request.request.id
            );
            self.membership.agreement.stats.requests_found_in_dht += 1;
            new += usize::from(signed);
            self.on_request_message(from, message)?;
        }
        Ok(new)
    }
}

/// The requests of an active-requests record (`value`, bounded) that are `commissioner`'s,
/// not past their deadline at `now` and not `known` to this node, each with whether its
/// signature is valid (only those count as new for the back-off: the caller still hands
/// every one to the gossip path, which refuses a forgery).
fn unseen_requests(
    commissioner: &[u8; 32],
    value: &[u8],
    now: Micros,
    known: impl Fn(&ComputationId) -> bool,
) -> Vec<(Message, bool)> {
    if value.len() > MAX_ACTIVE_REQUESTS_BYTES {
        return Vec::new();
    }
    let Ok(list) = postcard::from_bytes::<Vec<Vec<u8>>>(value) else {
        tracing::debug!("an undecodable active-requests record");
        return Vec::new();
    };
    let mut out = Vec::new();
    for bytes in list.iter().take(MAX_PUBLISHED_REQUESTS) {
        let Ok(message) = codec::decode(bytes) else {
            continue;
        };
        let Body::Request(signed) = &message.body else {
            continue;
        };
        let r = &signed.request;
        if r.commissioner.0 != *commissioner || r.deadline <= now || known(&r.id) {
            continue;
        }
        let valid = signed.verify_signature().is_ok();
        out.push((message, valid));
    }
    out
}

fn parse_key(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The waits between the lookups of one commissioner from `t0`, each drawn with `jitter`,
    /// none bringing a new request.
    fn waits(peers: usize, jitter: f64, n: usize) -> Vec<Duration> {
        let t0 = Instant::now();
        let mut poll = Poll::due(t0);
        let mut at = t0;
        let mut out = Vec::new();
        for _ in 0..n {
            assert!(poll.next >= at);
            at = poll.next;
            poll = poll.started(at, poll_cap(peers), jitter, false);
            out.push(poll.next - at);
        }
        out
    }

    /// Lookups that find nothing double their wait up to the cap: at 16 peers 10, 20, 40, then
    /// 60 s (before jitter). At a fixed 10 s every node of a network at rest asked the ~20
    /// peers closest to the commissioner's key, dialing them, every 10 s.
    #[test]
    fn lookups_that_find_nothing_back_off_to_the_cap() {
        let s = Duration::from_secs;
        assert_eq!(
            waits(16, 1.0, 6),
            vec![s(10), s(20), s(40), s(60), s(60), s(60)]
        );
        assert_eq!(
            waits(300, 1.0, 7),
            vec![s(10), s(20), s(40), s(80), s(160), s(300), s(300)]
        );
        // The shortest draw is half the wait.
        assert_eq!(waits(16, 0.0, 5), vec![s(5), s(10), s(20), s(30), s(30)]);
    }

    /// A node in the broadcast mesh hears requests by gossip: after a lookup, its next one
    /// waits the cap (drawn in its second half), not the short base wait; one not in the mesh
    /// keeps the short waits. Fails if the mesh is ignored (the next lookup within 10 s).
    #[test]
    fn a_node_in_the_mesh_looks_up_at_the_cap() {
        let t0 = Instant::now();
        let cap = poll_cap(200);
        let meshed = Poll::due(t0).started(t0, cap, 1.0, true);
        assert_eq!(meshed.next - t0, cap);
        assert_eq!(Poll::due(t0).started(t0, cap, 0.0, true).next - t0, cap / 2);
        // After a request gossip missed, one quick look again, then the cap.
        let found = meshed.found_new(t0, 1.0);
        assert_eq!(found.next - t0, ACTIVE_REQUESTS_POLL);
        let next = found.started(found.next, cap, 1.0, true);
        assert_eq!(next.next - found.next, cap);
        // Not in the mesh (a node starting): the short waits.
        let alone = Poll::due(t0).started(t0, cap, 1.0, false);
        assert_eq!(alone.next - t0, ACTIVE_REQUESTS_POLL);
    }

    /// The cap follows the directory (a second per peer), within its bounds: the lookups of
    /// all nodes at the cap ask each peer near the key about once a second, and a request that
    /// gossip missed is found within 10 minutes at most.
    #[test]
    fn the_cap_grows_with_the_network_within_bounds() {
        assert_eq!(poll_cap(0), MIN_POLL_CAP);
        assert_eq!(poll_cap(16), MIN_POLL_CAP);
        assert_eq!(poll_cap(200), Duration::from_secs(200));
        assert_eq!(poll_cap(100_000), MAX_POLL_CAP);
        for peers in [60, 200, 600] {
            // Mean wait at the cap is three quarters of it (jitter uniform in its second half).
            let per_node = 1.0 / (0.75 * poll_cap(peers).as_secs_f64());
            let at_key = peers as f64 * per_node;
            assert!(at_key <= 1.34, "{peers} peers: {at_key} lookups per second");
        }
    }

    /// A lookup that brings a request gossip missed makes the next one due within the base
    /// wait, and the waits start over; an earlier due lookup is not put off.
    #[test]
    fn a_missed_request_starts_the_waits_over() {
        let t0 = Instant::now();
        let cap = poll_cap(16);
        let mut poll = Poll::due(t0);
        for _ in 0..5 {
            let at = poll.next;
            poll = poll.started(at, cap, 1.0, false);
        }
        let now = poll.next - Duration::from_secs(50);
        let found = poll.found_new(now, 1.0);
        assert_eq!(found.next, now + ACTIVE_REQUESTS_POLL);
        let after = found.started(found.next, cap, 1.0, false);
        assert_eq!(after.next - found.next, 2 * ACTIVE_REQUESTS_POLL);
        // Due sooner already: kept.
        let soon = Poll {
            wait: cap,
            next: now + Duration::from_secs(1),
        };
        assert_eq!(soon.found_new(now, 1.0).next, soon.next);
    }

    /// A record's requests count as new for the back-off only with their commissioner's
    /// valid signature: a forged one (here, a signature byte flipped) is still handed on (the
    /// gossip path refuses it) but does not reset the waits. Fails with every unseen request
    /// counted.
    #[test]
    fn only_validly_signed_unseen_requests_count_as_new() {
        use grove_protocol::encoding::ContributionSpec;
        use grove_protocol::request::{sample_request, CommissionerKey, SignedRequest};
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let commissioner = key.verifying_key().to_bytes();
        let message = |id: u8, forge: bool, deadline: u64| {
            let request = grove_protocol::request::Request {
                commissioner: CommissionerKey(commissioner),
                deadline: Micros(deadline),
                contribution: ContributionSpec::counted(1, 0.0, 1.0, 0),
                ..sample_request(id, 1, 2, 3, 2, 0)
            };
            let mut signed = SignedRequest::sign(request, &key);
            if forge {
                signed.signature[0] ^= 1;
            }
            let message = Message {
                computation: ComputationId([id; 32]),
                round: 0,
                body: Body::Request(Box::new(signed)),
                to: None,
            };
            codec::encode(&message).unwrap()
        };
        let now = Micros(1_000);
        let list = vec![
            message(1, false, 5_000), // valid and unseen: new
            message(2, true, 5_000),  // forged: handed on, not new
            message(3, false, 5_000), // valid but known
            message(4, false, 500),   // valid but past its deadline
        ];
        let value = postcard::to_allocvec(&list).unwrap();
        let known = |id: &ComputationId| *id == ComputationId([3; 32]);
        let unseen = unseen_requests(&commissioner, &value, now, known);
        let got: Vec<(u8, bool)> = unseen
            .iter()
            .map(|(m, valid)| (m.computation.0[0], *valid))
            .collect();
        assert_eq!(got, vec![(1, true), (2, false)]);
        // Another commissioner's record brings nothing.
        assert!(unseen_requests(&[9; 32], &value, now, known).is_empty());
    }

    /// The lookups' pass is due at the earliest poll, no sooner than a tick after the last
    /// pass, and never with no poll: a node at rest wakes for its lookups only (the fixed 2 s
    /// tick before it woke a node 300 times in the 10 minutes counted here).
    #[test]
    fn the_lookups_wake_the_node_only_when_one_is_due() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(next_pass([], t0), None);
        assert_eq!(next_pass([t0 + s(90), t0 + s(45)], t0), Some(t0 + s(45)));
        // Overdue (a lookup still in flight when its poll came due): a tick after the last pass.
        assert_eq!(next_pass([t0], t0), Some(t0 + LOOKUP_TICK));
        // A node at the cap of a 200-node network: one pass per wait, not one per tick.
        let cap = poll_cap(200);
        let mut poll = Poll::due(t0).started(t0, cap, 1.0, true);
        let (mut last, mut passes) = (t0, 0);
        while let Some(at) = next_pass([poll.next], last) {
            if at >= t0 + s(600) {
                break;
            }
            passes += 1;
            poll = poll.started(at, cap, 1.0, true);
            last = at;
        }
        assert_eq!(passes, 2, "{passes} passes in 10 minutes");
    }

    #[test]
    fn jitter_draws_in_the_second_half() {
        let w = Duration::from_secs(40);
        assert_eq!(jittered(w, 0.0), Duration::from_secs(20));
        assert_eq!(jittered(w, 0.5), Duration::from_secs(30));
        assert_eq!(jittered(w, 1.0), w);
        assert_eq!(jittered(w, 7.0), w);
    }
}
