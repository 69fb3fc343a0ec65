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
//! its certificate is admitted by the view. What one peer's gossip may cost this node is
//! bounded per peer: the view's screen of a newcomer's push (`Membership::screen_newcomer`:
//! its own certificate only, checked but for signatures before any signature is, once per
//! window, within its issuer's push budget), [`GossipPeers`] (signature checks per admitted
//! peer and window, a bad announcement silences its sender), [`InFlight`] (sends awaiting one
//! peer's acknowledgement), and the view's own rule for anti-entropy (admitted peers only, one
//! answer per kind per interval).
//!
//! What gossip replaces: an admitted node does not re-announce itself on the directory topic
//! (its first announcement goes to its routing set; the topic carries only a later change of
//! its addresses), and a node with `[admission]` pulls whole directories only twice at start
//! (its bootstrap set, verified announcement by announcement), then relies on anti-entropy.
//! Nodes without `[admission]`, or without a certificate, announce and pull as before.

use super::budget::InboundRejection;
use super::directory::{self, Announcement, Peer};
use super::net::{self, BehaviourEvent, Frame};
use super::Node;
use super::ANNOUNCE_MIN_GAP;
use crate::clock::now_micros;
use grove_protocol::ids::{Digest, NodeId};
use grove_protocol::membership::{Certificate, MemberMessage, MemberOutput, MembershipError};
use libp2p::gossipsub;
use libp2p::gossipsub::IdentTopic;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

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
/// Largest number of gossip sends to one peer awaiting their acknowledgement: a peer that
/// asks for answers and never acknowledges them (libp2p gives up on a request only after
/// `net::MESSAGE_TIMEOUT_CAP`) holds at most this share of [`MAX_GOSSIP_IN_FLIGHT`], so
/// honest gossip to the others keeps its room. 32 pushes carry 8,192 announcements, more than
/// an anti-entropy answer between honest peers holds.
pub const MAX_GOSSIP_IN_FLIGHT_PER_PEER: usize = 32;
/// Span of a peer's gossip budgets ([`GossipPeers`]): the anti-entropy period.
pub const GOSSIP_WINDOW: Duration = Duration::from_secs(10);
/// Largest number of pushed announcements this node verifies for one admitted peer per
/// [`GOSSIP_WINDOW`]; past it, that peer's announcements are skipped (counted, not verified)
/// until the window ends. Only announcements the directory lacks count. A signature check
/// costs about 50 us (two with the certificate's): a peer gets at most about 0.1 s of this
/// node's CPU per window, whatever it sends. An honest peer forwards each new certificate
/// once and answers a pull with the window's certificates this node lacks: more than this
/// only after a partition, and what is skipped comes back in later anti-entropy rounds.
pub const MAX_VERIFIES_PER_PEER: usize = 1024;
/// Largest number of peers whose gossip budgets this node holds at once; past it, the
/// budgets of ended windows are forgotten, and if none has ended, pushes from new peers are
/// refused.
pub const MAX_GOSSIP_PEERS: usize = 4096;

/// One push as it travels: as many of `announcements` as fit one message of at most
/// [`MAX_GOSSIP_ANNOUNCEMENTS`] and [`MAX_GOSSIP_BYTES`], in order, and how many were left out
/// (none unless the announcements are unusually large: the view's pushes, its anti-entropy
/// answers included, hold at most `MAX_MEMBERSHIP_ENTRIES_PER_MESSAGE` = 256 certificates,
/// about 600 bytes each in their announcements). So an answer is one message whatever the
/// window holds; what is left out comes in later anti-entropy rounds.
pub fn pack_push(announcements: Vec<Vec<u8>>) -> (Option<GossipWire>, usize) {
    // Postcard: magic and version, the variant, the list's length, each one's length (a
    // varint of at most 5 bytes each).
    let mut size = GOSSIP_MAGIC.len() + 1 + 1 + 5;
    let total = announcements.len();
    let mut kept = Vec::new();
    for a in announcements {
        if kept.len() >= MAX_GOSSIP_ANNOUNCEMENTS || size + a.len() + 5 > MAX_GOSSIP_BYTES {
            break;
        }
        size += a.len() + 5;
        kept.push(a);
    }
    let left_out = total - kept.len();
    (
        (!kept.is_empty()).then_some(GossipWire::Push(kept)),
        left_out,
    )
}

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
    /// Pushed announcements not verified: over their sender's budget
    /// ([`MAX_VERIFIES_PER_PEER`]).
    pub announcements_skipped: u64,
    /// Pushes cut at an announcement no honest peer sends (malformed, badly signed, without
    /// a certificate); their senders' gossip is refused for a [`GOSSIP_WINDOW`].
    pub gossip_misbehaving: u64,
    /// Gossip sends dropped: no address for the peer, or too many in flight (in all, or to
    /// that peer).
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

/// The gossip sends in flight, the peers' budgets, the traffic counters and whether this
/// node's first announcement went to its routing set.
#[derive(Default)]
pub(super) struct Gossip {
    pub traffic: Traffic,
    in_flight: InFlight<OutboundRequestId>,
    peers: GossipPeers,
    announced: bool,
    /// While this node's first announcement waits for a routing set: the listen addresses it
    /// was signed for (the directory holds it, and the view pushes it from there).
    own_addrs: Option<Vec<libp2p::Multiaddr>>,
}

/// Gossip sends awaiting their acknowledgement, by receiver: at most [`MAX_GOSSIP_IN_FLIGHT`]
/// in all and [`MAX_GOSSIP_IN_FLIGHT_PER_PEER`] to one peer.
#[derive(Debug)]
pub(super) struct InFlight<K> {
    receivers: HashMap<K, PeerId>,
    per_peer: HashMap<PeerId, usize>,
}

impl<K> Default for InFlight<K> {
    fn default() -> Self {
        InFlight {
            receivers: HashMap::new(),
            per_peer: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq> InFlight<K> {
    /// Whether one more send to `peer` fits.
    fn has_room(&self, peer: &PeerId) -> bool {
        self.receivers.len() < MAX_GOSSIP_IN_FLIGHT
            && self.per_peer.get(peer).copied().unwrap_or(0) < MAX_GOSSIP_IN_FLIGHT_PER_PEER
    }

    fn insert(&mut self, id: K, peer: PeerId) {
        if self.receivers.insert(id, peer).is_none() {
            *self.per_peer.entry(peer).or_default() += 1;
        }
    }

    fn contains(&self, id: &K) -> bool {
        self.receivers.contains_key(id)
    }

    /// The send `id` is over (acknowledged or failed).
    fn remove(&mut self, id: &K) {
        let Some(peer) = self.receivers.remove(id) else {
            return;
        };
        if let Some(n) = self.per_peer.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&peer);
            }
        }
    }
}

/// Why a push was refused whole, before any signature check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushRefusal {
    /// From a peer the view does not admit, and not its own certified announcement alone.
    NotOwn,
    /// Too many peers with budgets ([`MAX_GOSSIP_PEERS`]).
    TooSoon,
    /// From a peer that sent a bad announcement in this window.
    Misbehaving,
}

impl PushRefusal {
    fn rejection(self) -> InboundRejection {
        match self {
            PushRefusal::NotOwn => InboundRejection::GossipUnadmitted,
            PushRefusal::TooSoon => InboundRejection::GossipRate,
            PushRefusal::Misbehaving => InboundRejection::GossipMisbehaving,
        }
    }
}

/// One peer's gossip budget in its current [`GOSSIP_WINDOW`].
#[derive(Clone, Copy, Debug)]
struct PeerBudget {
    since: Instant,
    verified: usize,
    misbehaving: bool,
}

/// The work a push from one peer may cost (who sends it, what if they lie, what if they send
/// a million):
/// - a peer the view does not admit may push only its own certified announcement, alone
///   ([`newcomer_certificate`]), and the view screens its certificate before any signature is
///   checked (`Membership::screen_newcomer`: every check but the signatures, once per window,
///   the newcomers' push budget per issuer): that is how a new node joins;
/// - an admitted peer gets at most [`MAX_VERIFIES_PER_PEER`] signature checks per window,
///   counted over the announcements the directory lacks, repeats of one node dropped;
/// - verification stops at the first announcement no honest peer sends (malformed, badly
///   signed, or without a certificate: a node forwards only announcements it verified and
///   whose certificate it admitted), and that peer's gossip is refused for a window from
///   then. A certificate the view refuses is not held against its sender: views of honest
///   nodes can differ (clocks, equivocations learnt, configuration changes).
///
/// Anti-entropy (who may ask, how often) is the view's rule (`Membership::handle_message`).
#[derive(Debug, Default)]
pub struct GossipPeers {
    peers: BTreeMap<PeerId, PeerBudget>,
}

/// The certificate of a push from `peer`, which the view does not admit: it may push only its
/// own announcement, alone, carrying a certificate (read without checking a signature; the
/// view screens the certificate next, `Membership::screen_newcomer`, and only then is any
/// signature checked).
pub fn newcomer_certificate(
    peer: &PeerId,
    announcements: &[Vec<u8>],
) -> Result<Certificate, PushRefusal> {
    let [only] = announcements else {
        return Err(PushRefusal::NotOwn);
    };
    match directory::peek_certificate(only) {
        Some((node, Some(cert))) if node == directory::node_id_of(peer) => Ok(cert),
        _ => Err(PushRefusal::NotOwn),
    }
}

/// The announcements of a push to verify, and how many were skipped for the sender's budget.
#[derive(Debug, PartialEq, Eq)]
pub struct Screened {
    pub verify: Vec<Vec<u8>>,
    pub skipped: usize,
}

impl GossipPeers {
    /// `peer`'s budget at `now` (a fresh one when its window ended), or `None` if no room.
    fn budget(&mut self, peer: PeerId, now: Instant) -> Option<&mut PeerBudget> {
        let live = |b: &PeerBudget| now.saturating_duration_since(b.since) < GOSSIP_WINDOW;
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_GOSSIP_PEERS {
            self.forget(now);
            if self.peers.len() >= MAX_GOSSIP_PEERS {
                return None;
            }
        }
        let fresh = PeerBudget {
            since: now,
            verified: 0,
            misbehaving: false,
        };
        let b = self.peers.entry(peer).or_insert(fresh);
        if !live(b) {
            *b = fresh;
        }
        Some(b)
    }

    /// Forgets the budgets whose window ended.
    pub fn forget(&mut self, now: Instant) {
        self.peers
            .retain(|_, b| now.saturating_duration_since(b.since) < GOSSIP_WINDOW);
    }

    /// Whether `peer` sent a bad announcement less than a [`GOSSIP_WINDOW`] ago (its gossip
    /// is refused).
    pub fn misbehaving(&self, peer: &PeerId, now: Instant) -> bool {
        self.peers.get(peer).is_some_and(|b| {
            b.misbehaving && now.saturating_duration_since(b.since) < GOSSIP_WINDOW
        })
    }

    /// Which of the announcements `peer` pushed to verify. `lacking`: the directory's filter
    /// of the announcements it does not hold yet. (A push from a peer the view does not admit
    /// comes here only once the view screened it in: [`newcomer_certificate`],
    /// `Membership::screen_newcomer`.)
    pub fn screen_push(
        &mut self,
        peer: PeerId,
        announcements: Vec<Vec<u8>>,
        lacking: impl FnOnce(Vec<Vec<u8>>) -> Vec<Vec<u8>>,
        now: Instant,
    ) -> Result<Screened, PushRefusal> {
        let Some(budget) = self.budget(peer, now) else {
            return Err(PushRefusal::TooSoon);
        };
        if budget.misbehaving {
            return Err(PushRefusal::Misbehaving);
        }
        // One announcement per node (the first); an unreadable one stays, to be refused.
        let mut seen = std::collections::BTreeSet::new();
        let distinct: Vec<Vec<u8>> = announcements
            .into_iter()
            .filter(|a| directory::peek_announcement(a).is_none_or(|(node, _)| seen.insert(node)))
            .collect();
        let mut verify = lacking(distinct);
        let room = MAX_VERIFIES_PER_PEER.saturating_sub(budget.verified);
        let skipped = verify.len().saturating_sub(room);
        verify.truncate(room);
        budget.verified += verify.len();
        Ok(Screened { verify, skipped })
    }

    /// Verifies the screened announcements in order, stopping at the first one no honest
    /// peer sends; then `peer` is misbehaving for a [`GOSSIP_WINDOW`] from `now`. Returns the peers
    /// verified before it, each with its certificate, and what was wrong, if anything.
    pub fn verify_push(
        &mut self,
        peer: PeerId,
        announcements: Vec<Vec<u8>>,
        now: Instant,
    ) -> (Vec<(Peer, Vec<u8>)>, Option<String>) {
        let mut good = Vec::with_capacity(announcements.len());
        for a in announcements {
            let wrong = match directory::verify_announcement(&a) {
                Ok(p) if p.certificate.is_some() => {
                    good.push((p, a));
                    continue;
                }
                Ok(_) => "an announcement without a certificate".to_string(),
                Err(e) => e.to_string(),
            };
            // Silent for a whole window from now.
            if let Some(b) = self.budget(peer, now) {
                *b = PeerBudget {
                    since: now,
                    verified: MAX_VERIFIES_PER_PEER,
                    misbehaving: true,
                };
            }
            return (good, Some(wrong));
        }
        (good, None)
    }
}

/// How a refusal of the view counts in `inbound_rejected`: a peer that is not admitted, or
/// that pushes what it may not, is `GossipUnadmitted`; over a rate or budget, `GossipRate`.
fn view_rejection(e: &MembershipError) -> InboundRejection {
    match e {
        MembershipError::TooSoon { .. } | MembershipError::PushBudget { .. } => {
            InboundRejection::GossipRate
        }
        _ => InboundRejection::GossipUnadmitted,
    }
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

    /// When [`maybe_announce`](Self::maybe_announce), [`maybe_sync`](Self::maybe_sync) or
    /// [`gossip_tick`](Self::gossip_tick) next has something to do, as things stand (`None`:
    /// never, until an event changes it): exactly their own conditions, so the event loop
    /// wakes for them only then (`event_loop`). Now when one is due already (e.g. a pull
    /// with no peer connected to ask: it waits for its next tick, as before).
    pub(super) fn membership_due(&self) -> Option<Instant> {
        let now = Instant::now();
        let m = &self.membership;
        let after = |gap: Duration| m.last_announce.map_or(now, |t| t + gap);
        let mut due = Vec::with_capacity(4);
        if m.announce_due {
            due.push(after(ANNOUNCE_MIN_GAP));
        }
        if !self.gossip_announces() {
            due.push(after(m.next_announce_gap.max(ANNOUNCE_MIN_GAP)));
        }
        if let Some(gap) = m.sync.gap(self.gossip_announces()) {
            due.push(m.sync.last.map_or(now, |t| t + gap));
        }
        if let Some(admission) = &self.admission {
            let wait = admission.next_due().0.saturating_sub(now_micros().0);
            due.push(now + Duration::from_micros(wait));
        }
        due.into_iter().min()
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
        if first_push
            && self.membership.gossip.own_addrs.as_ref() == Some(&self.membership.listen_addrs)
        {
            self.push_own();
            return;
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
            self.membership.gossip.own_addrs = Some(self.membership.listen_addrs.clone());
            self.push_own();
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

    /// Has the view push this node's certificate, in the signed announcement the directory
    /// now holds, to its routing set, if it has one yet. The view pushes it again, with
    /// backoff, until an admitted peer shows that it holds it (`Membership::announce`): a
    /// newcomer whose first push was lost everywhere would otherwise stay unknown (its
    /// anti-entropy is refused while no peer admits it).
    fn push_own(&mut self) {
        let Some(admission) = &mut self.admission else {
            return;
        };
        // The view's timer: its first push is due from the start, once it has routing peers.
        admission.tick(now_micros());
        let (pushes, _) = admission.own_push_state();
        self.flush_gossip(None);
        if pushes == 0 {
            self.membership.announce_due = true;
            return;
        }
        tracing::debug!("announced to the routing set");
        self.membership.gossip.announced = true;
        self.membership.gossip.own_addrs = None;
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
        if new_peers > 0 {
            // The directory fills the routing table: a bootstrap libp2p started while it was
            // small only dials from here on.
            net::end_bootstrap_if_filled(&mut self.transport.swarm.behaviour_mut().kad);
        }
        if let Err(e) = self.store.put_announcements(&to_store) {
            tracing::warn!("cannot store {} announcements: {e}", to_store.len());
        }
        new_peers
    }

    /// Pulls the directory from a connected peer: [`SYNC_GAP`](super::SYNC_GAP) apart, from a random peer other
    /// than the last one asked, until two pulls in a row brought nothing new; then, for a
    /// node not admitted, from a random one every `directory_sync_secs` (an admitted node
    /// stops: its view's gossip repairs instead; `SyncState::gap`). The request carries this
    /// node's directory digest, so a pull between equal directories costs a few bytes.
    pub(super) fn maybe_sync(&mut self) {
        let Some(gap) = self.membership.sync.gap(self.gossip_announces()) else {
            return;
        };
        if self.membership.sync.last.is_some_and(|t| t.elapsed() < gap) {
            return;
        }
        let connected: Vec<PeerId> = self.transport.swarm.connected_peers().copied().collect();
        let peer = self.membership.sync.choose(
            connected.into_iter(),
            Instant::now(),
            &mut rand::thread_rng(),
        );
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
        self.membership.sync.last_peer = Some(peer);
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
                            // Not asked again for a while (`SyncState::undecodable`).
                            tracing::warn!("bad directory from {peer}: {e}");
                            self.membership.sync.undecodable(peer, Instant::now());
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
                    self.membership.sync.answered(new);
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

    /// One membership message from `peer`. A push is screened first ([`GossipPeers`]: what
    /// its sender may push and how much of it this node verifies), its announcements are
    /// verified (only those the directory lacks, up to the first bad one), their certificates
    /// go to the view, and only the announcements whose certificate the view then admits join
    /// the directory; the view decides who it answers and how often, and its answers and
    /// forwards leave at once.
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
        let at = Instant::now();
        if self.membership.gossip.peers.misbehaving(&peer, at) {
            self.refuse_gossip(InboundRejection::GossipMisbehaving);
            return;
        }
        let admitted = self.admission.as_ref().is_some_and(|a| a.admits(&from));
        let (message, peers) = match wire {
            GossipWire::Push(announcements) => {
                // Its own announcement alone, from a peer admitted here: if it is one the
                // directory holds already (a newcomer pushing again, its first push having
                // reached this node or another), the view still hears it, to tell the
                // newcomer that it is known (`Membership::handle_message`); no signature is
                // checked for it.
                let known_own = (admitted && announcements.len() == 1)
                    .then(|| directory::peek_announcement(&announcements[0]))
                    .flatten()
                    .filter(|(node, _)| *node == from)
                    .and_then(|_| self.membership.directory.get(&from))
                    .and_then(|p| p.certificate.clone());
                if !admitted {
                    // A newcomer's own announcement: the view screens its certificate before
                    // any signature is checked (the newcomers' push budget is the view's rule,
                    // the simulator's too).
                    let screen = match newcomer_certificate(&peer, &announcements) {
                        Err(refusal) => Err(refusal.rejection()),
                        Ok(cert) => match self.admission.as_mut() {
                            Some(admission) => admission
                                .screen_newcomer(from, &cert, now)
                                .map_err(|e| view_rejection(&e)),
                            None => Err(InboundRejection::GossipUnadmitted),
                        },
                    };
                    if let Err(why) = screen {
                        tracing::debug!("refused a push from {peer}, not admitted: {why:?}");
                        self.refuse_gossip(why);
                        return;
                    }
                }
                let membership = &mut self.membership;
                let directory = &membership.directory;
                let screened = membership.gossip.peers.screen_push(
                    peer,
                    announcements,
                    |a| directory.lacking(a),
                    at,
                );
                let screened = match screened {
                    Ok(s) => s,
                    Err(refusal) => {
                        tracing::debug!("refused a push from {peer}: {refusal:?}");
                        self.refuse_gossip(refusal.rejection());
                        return;
                    }
                };
                let gossip = &mut self.membership.gossip;
                if screened.skipped > 0 {
                    gossip.traffic.announcements_skipped += screened.skipped as u64;
                    self.transport.inbound.count(InboundRejection::GossipRate);
                }
                let (peers, wrong) = gossip.peers.verify_push(peer, screened.verify, at);
                if let Some(wrong) = &wrong {
                    tracing::debug!("refused a pushed announcement from {peer}: {wrong}");
                    gossip.traffic.announcements_refused += 1;
                    gossip.traffic.gossip_misbehaving += 1;
                    self.transport
                        .inbound
                        .count(InboundRejection::GossipMisbehaving);
                }
                let mut certs: Vec<_> = peers
                    .iter()
                    .filter_map(|(p, _)| p.certificate.clone())
                    .collect();
                if certs.is_empty() {
                    match known_own {
                        Some(cert) if wrong.is_none() => certs.push(cert),
                        _ => return,
                    }
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
            if let MembershipError::NotAdmitted { .. }
            | MembershipError::NotOwnCertificate { .. }
            | MembershipError::RefusedCertificate { .. }
            | MembershipError::TooSoon { .. }
            | MembershipError::PushBudget { .. } = e
            {
                self.transport.inbound.count(view_rejection(&e));
            }
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

    /// A gossip message refused whole, counted with its reason.
    fn refuse_gossip(&mut self, why: InboundRejection) {
        self.membership.gossip.traffic.gossip_refused += 1;
        self.transport.inbound.count(why);
    }

    /// The view's timer, then its sends (on the announce tick).
    pub(super) fn gossip_tick(&mut self) {
        self.membership.gossip.peers.forget(Instant::now());
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
    /// not hold with that certificate is left out), in one message ([`pack_push`]).
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
                let (wire, left_out) = pack_push(announcements);
                if left_out > 0 {
                    tracing::debug!("{left_out} announcements left out of a push (size limit)");
                }
                wire.into_iter().collect()
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
        if !gossip.in_flight.has_room(&peer) {
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
        self.membership.gossip.in_flight.insert(id, peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grove_protocol::membership::Certificate;
    use libp2p::identity::Keypair;

    fn key(n: u8) -> Keypair {
        Keypair::ed25519_from_bytes([n; 32]).unwrap()
    }

    /// A signed announcement of `key`, with a certificate for it unless `certified` is false.
    fn announcement(key: &Keypair, certified: bool) -> Vec<u8> {
        let peer = key.public().to_peer_id();
        let issuer = ed25519_dalek::SigningKey::from_bytes(&[0x42; 32]);
        let a = Announcement {
            peer: peer.to_bytes(),
            x25519_public: [9; 32],
            addrs: vec!["/ip4/127.0.0.1/tcp/9".into()],
            issued_at_micros: 1,
            certificate: certified
                .then(|| Certificate::issue(&issuer, directory::node_id_of(&peer), 1, 0)),
        };
        directory::sign_announcement(key, &a).unwrap()
    }

    fn all(a: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        a
    }

    /// A peer the view does not admit may push only its own announcement, alone, carrying a
    /// certificate: anything else is refused before any signature is checked, and its
    /// certificate then goes to the view's screen (`Membership::screen_newcomer`, tested in
    /// the protocol: once per window, the newcomers' push budget per issuer).
    #[test]
    fn an_unadmitted_peer_may_push_only_its_own_certified_announcement_alone() {
        let newcomer = key(1);
        let peer = newcomer.public().to_peer_id();
        let own = announcement(&newcomer, true);
        let uncertified = announcement(&newcomer, false);
        let other = announcement(&key(2), true);
        for push in [
            vec![other.clone()],
            vec![own.clone(), other],
            vec![],
            vec![uncertified],
            vec![vec![0xff; 8]],
        ] {
            assert_eq!(newcomer_certificate(&peer, &push), Err(PushRefusal::NotOwn));
        }
        let cert = newcomer_certificate(&peer, &[own]).unwrap();
        assert_eq!(cert.node, directory::node_id_of(&peer));
    }

    #[test]
    fn a_peer_gets_at_most_its_budget_of_signature_checks_per_window() {
        let mut peers = GossipPeers::default();
        let (a, b) = (key(1).public().to_peer_id(), key(2).public().to_peer_id());
        let t0 = Instant::now();
        // Unreadable announcements each count (each would be checked, and refused).
        let push: Vec<Vec<u8>> = (0..MAX_GOSSIP_ANNOUNCEMENTS)
            .map(|i| (i as u32).to_be_bytes().to_vec())
            .collect();
        let mut verified = 0;
        let mut skipped = 0;
        for _ in 0..2 * MAX_VERIFIES_PER_PEER / MAX_GOSSIP_ANNOUNCEMENTS {
            let s = peers.screen_push(a, push.clone(), all, t0).unwrap();
            verified += s.verify.len();
            skipped += s.skipped;
        }
        assert_eq!(verified, MAX_VERIFIES_PER_PEER);
        assert_eq!(skipped, MAX_VERIFIES_PER_PEER);
        // Another peer keeps its own budget; the next window gives `a` its budget back.
        let s = peers.screen_push(b, push.clone(), all, t0).unwrap();
        assert_eq!(s.verify.len(), MAX_GOSSIP_ANNOUNCEMENTS);
        let s = peers.screen_push(a, push, all, t0 + GOSSIP_WINDOW).unwrap();
        assert_eq!(s.verify.len(), MAX_GOSSIP_ANNOUNCEMENTS);
        // Repeats of one node's announcement are checked once; those the directory holds not
        // at all, nor do they count.
        let one = announcement(&key(3), true);
        let later = t0 + 2 * GOSSIP_WINDOW;
        let s = peers
            .screen_push(a, vec![one.clone(); MAX_GOSSIP_ANNOUNCEMENTS], all, later)
            .unwrap();
        assert_eq!(s.verify, vec![one.clone()]);
        let s = peers
            .screen_push(a, vec![one; 8], |_| Vec::new(), later)
            .unwrap();
        assert!(s.verify.is_empty());
    }

    #[test]
    fn verification_stops_at_the_first_bad_announcement_and_silences_its_sender() {
        let t0 = Instant::now();
        let sender = key(1).public().to_peer_id();
        let good = announcement(&key(2), true);
        let later = announcement(&key(3), true);
        let mut forged = announcement(&key(4), true);
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let uncertified = announcement(&key(5), false);
        for bad in [forged, uncertified, vec![0xff; 8]] {
            let mut peers = GossipPeers::default();
            let push = vec![good.clone(), bad, later.clone()];
            let screened = peers.screen_push(sender, push, all, t0).unwrap();
            assert_eq!(screened.verify.len(), 3);
            let (verified, wrong) = peers.verify_push(sender, screened.verify, t0);
            assert!(wrong.is_some());
            // The one before it stands; the one after it is never checked.
            let nodes: Vec<PeerId> = verified.iter().map(|(p, _)| p.peer_id).collect();
            assert_eq!(nodes, vec![key(2).public().to_peer_id()]);
            // The sender is silenced for a window, and only the sender.
            assert!(peers.misbehaving(&sender, t0));
            assert_eq!(
                peers.screen_push(sender, vec![later.clone()], all, t0),
                Err(PushRefusal::Misbehaving)
            );
            let other = key(6).public().to_peer_id();
            assert!(!peers.misbehaving(&other, t0));
            assert!(!peers.misbehaving(&sender, t0 + GOSSIP_WINDOW));
            assert!(peers
                .screen_push(sender, vec![later.clone()], all, t0 + GOSSIP_WINDOW)
                .is_ok());
        }
        // An honest push verifies whole.
        let mut peers = GossipPeers::default();
        let (verified, wrong) = peers.verify_push(sender, vec![good, later], t0);
        assert_eq!((verified.len(), wrong), (2, None));
        assert!(!peers.misbehaving(&sender, t0));
    }

    #[test]
    fn one_peer_cannot_hold_every_gossip_send_in_flight() {
        let mut in_flight: InFlight<u64> = InFlight::default();
        let hog = key(1).public().to_peer_id();
        let mut id = 0u64;
        while in_flight.has_room(&hog) {
            in_flight.insert(id, hog);
            id += 1;
        }
        assert_eq!(id as usize, MAX_GOSSIP_IN_FLIGHT_PER_PEER);
        // Everyone else still has room, up to the node's total.
        let mut others = 0;
        for n in 2..=u8::MAX {
            let p = key(n).public().to_peer_id();
            while in_flight.has_room(&p) {
                in_flight.insert(id, p);
                id += 1;
                others += 1;
            }
        }
        assert_eq!(others, MAX_GOSSIP_IN_FLIGHT - MAX_GOSSIP_IN_FLIGHT_PER_PEER);
        // An acknowledgement gives its room back to its receiver.
        assert!(in_flight.contains(&0));
        in_flight.remove(&0);
        assert!(!in_flight.contains(&0));
        assert!(in_flight.has_room(&hog));
    }

    /// A push (an anti-entropy answer included) leaves as one message within the size and
    /// count limits, whatever the size of the announcements it carries: counted by number
    /// alone, 256 announcements of 2 kB made a message over `MAX_GOSSIP_BYTES`, which is not
    /// sent at all (nor decoded by the receiver).
    #[test]
    fn a_push_is_one_message_within_the_limits() {
        let big: Vec<Vec<u8>> = (0..300u32)
            .map(|i| {
                let mut a = vec![0u8; 2_000];
                a[..4].copy_from_slice(&i.to_be_bytes());
                a
            })
            .collect();
        let (wire, left_out) = pack_push(big.clone());
        let wire = wire.expect("a message");
        let bytes = encode_gossip(&wire).expect("within MAX_GOSSIP_BYTES");
        let GossipWire::Push(kept) = decode_gossip(&bytes).expect("the receiver decodes it") else {
            panic!("not a push");
        };
        assert_eq!(kept.len() + left_out, 300);
        assert_eq!(kept[..], big[..kept.len()], "in order");
        assert!(
            kept.len() >= MAX_GOSSIP_BYTES / 2_010 - 1,
            "the message is filled"
        );
        // Small ones: the count limit.
        let (wire, left_out) = pack_push(vec![vec![1; 500]; 300]);
        let Some(GossipWire::Push(kept)) = wire else {
            panic!("not a push");
        };
        assert_eq!(
            (kept.len(), left_out),
            (MAX_GOSSIP_ANNOUNCEMENTS, 300 - 256)
        );
        assert_eq!(pack_push(Vec::new()), (None, 0));
    }

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
