//! The peer directory and its frozen snapshots.
//!
//! Each node announces `(PeerId, X25519 public key, listen addresses)` signed by its libp2p
//! key (an Ed25519 key: the engine signs its accepts and votes with it) on the directory gossipsub topic when it joins, when it learns of a new peer, and
//! periodically. The directory is the set of valid announcements received (and the node's
//! own), kept in memory and in the store. A node whose `[admission]` certificate admits it does
//! not use the topic for that: its announcement travels with its certificate in the admission
//! view's gossip, to its routing set and onwards (`daemon::membership`), and it pulls whole
//! directories only at start.
//!
//! **Agreement.** A plan is a function of the request *and the directory*, so every node must
//! plan over the same directory. The commissioner freezes a snapshot of its directory (the
//! signed announcements it holds), stores it in Kademlia under its digest
//! ([`snapshot_record_key`]), and names the digest in the signed request
//! (`Request::directory`). The digest covers only what the plan reads: the sorted
//! `(NodeId, X25519 key, Ed25519 key)` entries (`grove_protocol::snapshot::snapshot_digest`). A node whose own directory has that
//! digest plans over it; any other node first fetches the snapshot from the DHT, checks every
//! announcement's signature and the digest ([`verify_snapshot`]), adds the peers it lacked to
//! its directory, and plans over the snapshot. A node that cannot fetch it declines and says
//! why in its audit log.
//!
//! The daemon hands the engine the snapshot with the request ([`Snapshots::directory_for`]);
//! the engine records it before the request and builds the plan from it, so a restarted node
//! rebuilds exactly the same plan from its own records.

use grove_protocol::ids::{Digest, NodeId};
use grove_protocol::membership::Certificate;
use grove_protocol::plan::PeerKeys;
use grove_protocol::request::Request;
use grove_protocol::snapshot::{snapshot_digest, DirectorySnapshot};
use libp2p::{identity, Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// Domain tag of announcement signatures.
const ANNOUNCE_DOMAIN: &[u8] = b"grove/directory-announcement/v1";
/// Largest announcement, in bytes.
pub const MAX_ANNOUNCEMENT_BYTES: usize = 8 * 1024;
/// Largest number of listen addresses in one announcement.
pub const MAX_ANNOUNCED_ADDRS: usize = 16;
/// Largest number of peers in the directory.
pub const MAX_DIRECTORY_PEERS: usize = 100_000;
/// Largest encoded directory snapshot (about 250 bytes per peer: some 16,000 peers).
pub const MAX_SNAPSHOT_BYTES: usize = 4 * 1024 * 1024;
/// Largest number of fetched snapshots kept in memory (the engine records its own copy).
pub const MAX_CACHED_SNAPSHOTS: usize = 64;

#[derive(Debug, Error)]
pub enum AnnouncementError {
    #[error("announcement is malformed: {0}")]
    Malformed(String),
    #[error("announcement signature is invalid")]
    BadSignature,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// PeerId bytes.
    pub peer: Vec<u8>,
    pub x25519_public: [u8; 32],
    /// Multiaddrs as text.
    pub addrs: Vec<String>,
    /// When it was issued (microseconds since the Unix epoch); newer replaces older.
    pub issued_at_micros: u64,
    /// The node's admission certificate, when an issuer admitted it (`crate::admission`):
    /// certificates travel with the announcements, by gossip and directory pulls.
    pub certificate: Option<Certificate>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SignedAnnouncement {
    /// postcard(Announcement).
    body: Vec<u8>,
    /// Protobuf encoding of the libp2p public key.
    public_key: Vec<u8>,
    signature: Vec<u8>,
}

/// A verified announcement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub peer_id: PeerId,
    pub node: NodeId,
    pub x25519_public: [u8; 32],
    /// The libp2p public key (Ed25519), which the peer id encodes: the key the peer's accepts
    /// and votes are signed with.
    pub ed25519_public: [u8; 32],
    pub addrs: Vec<Multiaddr>,
    pub issued_at_micros: u64,
    /// The admission certificate the announcement carries, if it is for this node (its
    /// issuer and signature are checked by the admission view, not here).
    pub certificate: Option<Certificate>,
}

impl Peer {
    /// The keys a directory snapshot lists for this peer.
    pub fn keys(&self) -> PeerKeys {
        PeerKeys {
            x25519: self.x25519_public,
            ed25519: self.ed25519_public,
        }
    }
}

/// The Ed25519 public key of a libp2p key; `None` for another kind of key (Grove nodes sign
/// their accepts and votes with their libp2p key, so only Ed25519 ones take part).
pub fn ed25519_public(key: &identity::PublicKey) -> Option<[u8; 32]> {
    key.clone().try_into_ed25519().ok().map(|k| k.to_bytes())
}

/// The Ed25519 secret (seed) of a libp2p key pair, which the engine signs with; `None` for
/// another kind of key.
pub fn ed25519_secret(key: &identity::Keypair) -> Option<[u8; 32]> {
    let pair = key.clone().try_into_ed25519().ok()?;
    pair.secret().as_ref().try_into().ok()
}

pub fn node_id_of(peer: &PeerId) -> NodeId {
    NodeId::from_public_bytes(&peer.to_bytes())
}

fn signing_bytes(body: &[u8]) -> Vec<u8> {
    let mut v = ANNOUNCE_DOMAIN.to_vec();
    v.extend_from_slice(body);
    v
}

pub fn sign_announcement(
    key: &identity::Keypair,
    announcement: &Announcement,
) -> Result<Vec<u8>, AnnouncementError> {
    let body = postcard::to_allocvec(announcement)
        .map_err(|e| AnnouncementError::Malformed(e.to_string()))?;
    let signature = key
        .sign(&signing_bytes(&body))
        .map_err(|e| AnnouncementError::Malformed(e.to_string()))?;
    let signed = SignedAnnouncement {
        body,
        public_key: key.public().encode_protobuf(),
        signature,
    };
    postcard::to_allocvec(&signed).map_err(|e| AnnouncementError::Malformed(e.to_string()))
}

pub fn verify_announcement(bytes: &[u8]) -> Result<Peer, AnnouncementError> {
    if bytes.len() > MAX_ANNOUNCEMENT_BYTES {
        return Err(AnnouncementError::Malformed("too large".into()));
    }
    let signed: SignedAnnouncement =
        postcard::from_bytes(bytes).map_err(|e| AnnouncementError::Malformed(e.to_string()))?;
    let public = identity::PublicKey::try_decode_protobuf(&signed.public_key)
        .map_err(|e| AnnouncementError::Malformed(e.to_string()))?;
    if !public.verify(&signing_bytes(&signed.body), &signed.signature) {
        return Err(AnnouncementError::BadSignature);
    }
    let a: Announcement = postcard::from_bytes(&signed.body)
        .map_err(|e| AnnouncementError::Malformed(e.to_string()))?;
    let peer_id =
        PeerId::from_bytes(&a.peer).map_err(|e| AnnouncementError::Malformed(e.to_string()))?;
    if peer_id != public.to_peer_id() {
        return Err(AnnouncementError::BadSignature);
    }
    let ed25519_public = ed25519_public(&public)
        .ok_or_else(|| AnnouncementError::Malformed("the key is not an Ed25519 key".into()))?;
    if a.addrs.len() > MAX_ANNOUNCED_ADDRS {
        return Err(AnnouncementError::Malformed("too many addresses".into()));
    }
    let addrs = a
        .addrs
        .iter()
        .filter_map(|s| s.parse::<Multiaddr>().ok())
        .collect();
    let node = node_id_of(&peer_id);
    Ok(Peer {
        node,
        peer_id,
        x25519_public: a.x25519_public,
        ed25519_public,
        addrs,
        issued_at_micros: a.issued_at_micros,
        // A certificate names the node it admits: another node's is not this peer's.
        certificate: a.certificate.filter(|c| c.node == node),
    })
}

/// The Kademlia key of the snapshot with this digest.
pub fn snapshot_record_key(digest: &Digest) -> Vec<u8> {
    let mut k = SNAPSHOTS.to_vec();
    k.extend_from_slice(&digest.0);
    k
}

/// The prefix of the Kademlia keys of directory snapshots.
pub const SNAPSHOTS: &[u8] = b"grove/directory-snapshot/";
/// The prefix of the Kademlia keys of commissioners' active requests.
pub const ACTIVE_REQUESTS: &[u8] = b"grove/active-requests/";

/// The Kademlia key under which a commissioner keeps its active requests.
pub fn active_requests_key(commissioner: &[u8; 32]) -> Vec<u8> {
    let mut k = ACTIVE_REQUESTS.to_vec();
    k.extend_from_slice(commissioner);
    k
}

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("snapshot is malformed: {0}")]
    Malformed(String),
    #[error("snapshot holds an invalid announcement: {0}")]
    BadAnnouncement(#[from] AnnouncementError),
    #[error("snapshot has digest {found}, not the {expected} the request names")]
    WrongDigest { expected: Digest, found: Digest },
}

/// A frozen directory: every peer's signed announcement, in node order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotBody {
    pub announcements: Vec<Vec<u8>>,
}

/// A snapshot as a plan uses it, with the verified peers it was made of.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub digest: Digest,
    pub entries: Vec<(NodeId, PeerKeys)>,
    pub peers: Vec<(Peer, Vec<u8>)>,
}

impl Snapshot {
    /// The snapshot as the engine plans over it.
    pub fn for_plan(&self) -> DirectorySnapshot {
        DirectorySnapshot::new(self.entries.clone())
    }

    /// Encodes the snapshot for the DHT; `None` if it is over [`MAX_SNAPSHOT_BYTES`].
    pub fn encode(&self) -> Option<Vec<u8>> {
        let body = SnapshotBody {
            announcements: self.peers.iter().map(|(_, b)| b.clone()).collect(),
        };
        postcard::to_allocvec(&body)
            .ok()
            .filter(|b| b.len() <= MAX_SNAPSHOT_BYTES)
    }
}

/// The answer to a directory pull from a node whose directory has digest `asker` (a
/// [`SnapshotBody`]): every signed announcement this directory holds, or none when the
/// digests are equal. Past [`MAX_SNAPSHOT_BYTES`] (some 20,000 peers) the answer is empty and
/// the asking node learns peers from their announcements alone.
pub fn encode_for_sync(directory: &Directory, asker: &Digest) -> Vec<u8> {
    let empty = || {
        postcard::to_allocvec(&SnapshotBody {
            announcements: Vec::new(),
        })
        .unwrap_or_default()
    };
    if directory.digest() == *asker {
        return empty();
    }
    directory.freeze().encode().unwrap_or_else(empty)
}

/// The node and issue time an announcement claims, read without checking its signature: only
/// to skip verifying one the directory already holds (or a newer one), or one that a gossip
/// push may not carry (`membership::GossipPeers`).
pub fn peek_announcement(bytes: &[u8]) -> Option<(NodeId, u64)> {
    let signed: SignedAnnouncement = postcard::from_bytes(bytes).ok()?;
    let a: Announcement = postcard::from_bytes(&signed.body).ok()?;
    let peer_id = PeerId::from_bytes(&a.peer).ok()?;
    Some((node_id_of(&peer_id), a.issued_at_micros))
}

/// The node and the certificate an announcement claims, read without checking its signature:
/// what a push from a peer the view does not admit is screened by before any signature is
/// checked (`membership::newcomer_certificate`).
pub fn peek_certificate(bytes: &[u8]) -> Option<(NodeId, Option<Certificate>)> {
    let signed: SignedAnnouncement = postcard::from_bytes(bytes).ok()?;
    let a: Announcement = postcard::from_bytes(&signed.body).ok()?;
    let peer_id = PeerId::from_bytes(&a.peer).ok()?;
    Some((node_id_of(&peer_id), a.certificate))
}

/// The announcements of a directory pull's answer or of a snapshot, within the size and
/// count limits, not yet verified (each goes through [`verify_announcement`]).
pub fn decode_sync(bytes: &[u8]) -> Result<Vec<Vec<u8>>, SnapshotError> {
    if bytes.len() > MAX_SNAPSHOT_BYTES {
        return Err(SnapshotError::Malformed("too large".into()));
    }
    let body: SnapshotBody =
        postcard::from_bytes(bytes).map_err(|e| SnapshotError::Malformed(e.to_string()))?;
    if body.announcements.len() > MAX_DIRECTORY_PEERS {
        return Err(SnapshotError::Malformed("too many peers".into()));
    }
    Ok(body.announcements)
}

/// Decodes a snapshot fetched from anyone, checks every announcement and that the snapshot
/// has the `expected` digest.
pub fn verify_snapshot(bytes: &[u8], expected: &Digest) -> Result<Snapshot, SnapshotError> {
    let mut peers = BTreeMap::new();
    for a in decode_sync(bytes)? {
        let peer = verify_announcement(&a)?;
        if peers.insert(peer.node, (peer, a)).is_some() {
            return Err(SnapshotError::Malformed("a peer appears twice".into()));
        }
    }
    let peers: Vec<(Peer, Vec<u8>)> = peers.into_values().collect();
    let entries: Vec<(NodeId, PeerKeys)> = peers.iter().map(|(p, _)| (p.node, p.keys())).collect();
    let digest = snapshot_digest(&entries);
    if digest != *expected {
        return Err(SnapshotError::WrongDigest {
            expected: *expected,
            found: digest,
        });
    }
    Ok(Snapshot {
        digest,
        entries,
        peers,
    })
}

/// The node's view of the directory (the event loop's alone).
#[derive(Default)]
pub struct Directory {
    peers: BTreeMap<NodeId, Peer>,
    /// The signed announcement each peer's entry came from (the node's own once it signed one).
    signed: BTreeMap<NodeId, Vec<u8>>,
}

impl Directory {
    /// Inserts or refreshes a peer; returns whether it was new.
    pub fn insert(&mut self, peer: Peer) -> bool {
        self.insert_inner(peer, None)
    }

    /// Inserts or refreshes a peer from its signed announcement; returns whether it was new.
    pub fn insert_signed(&mut self, peer: Peer, announcement: Vec<u8>) -> bool {
        self.insert_inner(peer, Some(announcement))
    }

    fn insert_inner(&mut self, peer: Peer, announcement: Option<Vec<u8>>) -> bool {
        let node = peer.node;
        let new = match self.peers.get(&node) {
            Some(old) if old.issued_at_micros >= peer.issued_at_micros => return false,
            Some(_) => false,
            None if self.peers.len() >= MAX_DIRECTORY_PEERS => return false,
            None => true,
        };
        self.peers.insert(node, peer);
        match announcement {
            Some(a) => {
                self.signed.insert(node, a);
            }
            None => {
                self.signed.remove(&node);
            }
        }
        new
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn get(&self, node: &NodeId) -> Option<&Peer> {
        self.peers.get(node)
    }

    /// Whether this directory holds `node` as issued at `issued_at_micros` or later.
    pub fn holds(&self, node: &NodeId, issued_at_micros: u64) -> bool {
        self.peers
            .get(node)
            .is_some_and(|p| p.issued_at_micros >= issued_at_micros)
    }

    /// The announcements this directory lacks: those it does not hold as issued at the same
    /// time or later, read without checking signatures, so that only these are verified.
    pub fn lacking(&self, announcements: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        announcements
            .into_iter()
            .filter(|a| peek_announcement(a).is_none_or(|(node, at)| !self.holds(&node, at)))
            .collect()
    }

    /// The signed announcement `node`'s entry came from, if this directory holds one.
    pub fn signed(&self, node: &NodeId) -> Option<&[u8]> {
        self.signed.get(node).map(Vec::as_slice)
    }

    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    pub fn snapshot(&self) -> Vec<(NodeId, PeerKeys)> {
        self.peers.values().map(|p| (p.node, p.keys())).collect()
    }

    /// The digest of [`Directory::snapshot`].
    pub fn digest(&self) -> Digest {
        snapshot_digest(&self.snapshot())
    }

    /// Freezes the peers whose signed announcement this directory holds (every peer but,
    /// before its first announcement, the node itself).
    pub fn freeze(&self) -> Snapshot {
        self.freeze_where(|_| true)
    }

    /// [`Directory::freeze`] over the peers `keep` accepts: with admission on, the commissioner
    /// keeps the admitted identities old enough to be selected, so that no other enters a
    /// request's candidate set.
    pub fn freeze_where(&self, keep: impl Fn(&NodeId) -> bool) -> Snapshot {
        let peers: Vec<(Peer, Vec<u8>)> = self
            .peers
            .values()
            .filter(|p| keep(&p.node))
            .filter_map(|p| self.signed.get(&p.node).map(|a| (p.clone(), a.clone())))
            .collect();
        let entries: Vec<(NodeId, PeerKeys)> =
            peers.iter().map(|(p, _)| (p.node, p.keys())).collect();
        Snapshot {
            digest: snapshot_digest(&entries),
            entries,
            peers,
        }
    }
}

/// The snapshots a request may name: the ones this node froze (as commissioner) or fetched.
#[derive(Default)]
pub struct Snapshots {
    by_digest: BTreeMap<Digest, DirectorySnapshot>,
}

impl Snapshots {
    /// Keeps a snapshot a request may name (the one with the smallest digest goes past the
    /// limit).
    pub fn add(&mut self, snapshot: &Snapshot) {
        if self.by_digest.len() >= MAX_CACHED_SNAPSHOTS
            && !self.by_digest.contains_key(&snapshot.digest)
        {
            if let Some(first) = self.by_digest.keys().next().copied() {
                self.by_digest.remove(&first);
            }
        }
        self.by_digest.insert(snapshot.digest, snapshot.for_plan());
    }

    /// The directory the request's plan is built over, if this node has it: its own
    /// `directory` when the request names none or names that one, else a kept snapshot.
    pub fn directory_for(
        &self,
        directory: &Directory,
        request: &Request,
    ) -> Option<DirectorySnapshot> {
        let own = || DirectorySnapshot::new(directory.snapshot());
        let Some(digest) = request.directory else {
            return Some(own());
        };
        if let Some(kept) = self.by_digest.get(&digest) {
            return Some(kept.clone());
        }
        (directory.digest() == digest).then(own)
    }
}

/// Shortest time between two directory pulls of one peer that this node answers. An honest
/// node pulls twice at start, `SYNC_GAP` (5 s) apart and from two peers, then one peer every
/// `directory_sync_secs` (30 s by default): a pull of 33 bytes can ask for up to
/// [`MAX_SNAPSHOT_BYTES`], so a peer asking faster is not answered (`PullRate` in
/// `grove status`'s `inbound_rejected`).
pub const MIN_PULL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
/// Largest number of peers whose last answered pull this node remembers; beyond, the entries
/// older than [`MIN_PULL_INTERVAL`] are forgotten, and if none is, the pull is refused.
pub const MAX_PULL_PEERS: usize = 4096;

/// When this node last answered each peer's directory pull.
#[derive(Debug, Default)]
pub struct PullLimiter {
    last: BTreeMap<PeerId, std::time::Instant>,
}

impl PullLimiter {
    /// Whether to answer `peer`'s pull at `now` (and if so, remember it).
    pub fn allow(&mut self, peer: PeerId, now: std::time::Instant) -> bool {
        if let Some(t) = self.last.get(&peer) {
            if now.saturating_duration_since(*t) < MIN_PULL_INTERVAL {
                return false;
            }
        }
        if self.last.len() >= MAX_PULL_PEERS && !self.last.contains_key(&peer) {
            self.last
                .retain(|_, t| now.saturating_duration_since(*t) < MIN_PULL_INTERVAL);
            if self.last.len() >= MAX_PULL_PEERS {
                return false;
            }
        }
        self.last.insert(peer, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_verify_and_reject_tampering() {
        let key = identity::Keypair::generate_ed25519();
        let a = Announcement {
            peer: key.public().to_peer_id().to_bytes(),
            x25519_public: [7; 32],
            addrs: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            issued_at_micros: 5,
            certificate: None,
        };
        let bytes = sign_announcement(&key, &a).unwrap();
        let peer = verify_announcement(&bytes).unwrap();
        assert_eq!(peer.peer_id, key.public().to_peer_id());
        assert_eq!(peer.x25519_public, [7; 32]);
        // The key the engine verifies the peer's accepts under is the announcement's key.
        let pair = key.clone().try_into_ed25519().unwrap();
        assert_eq!(peer.ed25519_public, pair.public().to_bytes());
        let signer = ed25519_dalek::SigningKey::from_bytes(&ed25519_secret(&key).unwrap());
        assert_eq!(signer.verifying_key().to_bytes(), peer.ed25519_public);
        assert_eq!(peer.addrs.len(), 1);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            if let Ok(p) = verify_announcement(&b) {
                // Only bytes outside what is signed may change harmlessly (none should).
                assert_eq!(p, peer, "byte {i}");
            }
        }
        // Someone else's key cannot announce this peer.
        let other = identity::Keypair::generate_ed25519();
        let forged = sign_announcement(&other, &a).unwrap();
        assert!(matches!(
            verify_announcement(&forged),
            Err(AnnouncementError::BadSignature)
        ));
    }

    fn signed_peer(x25519: u8, issued_at_micros: u64) -> (Peer, Vec<u8>) {
        let key = identity::Keypair::generate_ed25519();
        let a = Announcement {
            peer: key.public().to_peer_id().to_bytes(),
            x25519_public: [x25519; 32],
            addrs: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            issued_at_micros,
            certificate: None,
        };
        let bytes = sign_announcement(&key, &a).unwrap();
        (verify_announcement(&bytes).unwrap(), bytes)
    }

    #[test]
    fn a_pull_answers_everything_unless_the_digests_match() {
        let mut full = Directory::default();
        let mut partial = Directory::default();
        let peers: Vec<(Peer, Vec<u8>)> = (1..=3).map(|i| signed_peer(i, 10)).collect();
        for (p, b) in &peers {
            full.insert_signed(p.clone(), b.clone());
        }
        partial.insert_signed(peers[0].0.clone(), peers[0].1.clone());

        // A lagging asker gets every signed announcement, each one verifiable.
        let answer = decode_sync(&encode_for_sync(&full, &partial.digest())).unwrap();
        assert_eq!(answer.len(), 3);
        for a in &answer {
            let (node, at) = peek_announcement(a).unwrap();
            assert_eq!(at, 10);
            assert_eq!(verify_announcement(a).unwrap().node, node);
        }
        // What the asker holds (at that issue time or later) is skipped before verifying.
        let unknown = partial.lacking(answer).len();
        assert_eq!(unknown, 2);
        // An asker with the same directory gets nothing.
        assert!(decode_sync(&encode_for_sync(&full, &full.digest()))
            .unwrap()
            .is_empty());
        // Garbage is an error, not a panic.
        assert!(decode_sync(&[0xff; 16]).is_err());
    }

    #[test]
    fn a_peer_pulling_faster_than_the_interval_is_not_answered() {
        let mut limiter = PullLimiter::default();
        let fast = PeerId::random();
        let other = PeerId::random();
        let t0 = std::time::Instant::now();
        assert!(limiter.allow(fast, t0));
        let refused = (1..100)
            .filter(|i| !limiter.allow(fast, t0 + std::time::Duration::from_millis(10 * i)))
            .count();
        assert_eq!(refused, 99, "a hundred pulls in a second: one answered");
        assert!(
            limiter.allow(other, t0),
            "another peer has its own allowance"
        );
        assert!(limiter.allow(fast, t0 + MIN_PULL_INTERVAL));
    }
}
