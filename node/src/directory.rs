//! The peer directory and the node's plan provider.
//!
//! Each node announces `(PeerId, X25519 public key, listen addresses)` signed by its libp2p
//! key on the directory gossipsub topic when it joins, when it learns of a new peer, and
//! periodically. The directory is the set of valid announcements received (and the node's
//! own), kept in memory and in the store.
//!
//! **Agreement caveat.** A plan is a function of the request *and the directory*: every node
//! must hold the same directory when a request arrives, or their plans differ and the
//! computation fails. That holds on a connected local network once announcements have spread
//! (the demo and the tests wait for every node to see every other before computing). A
//! DHT-based directory (closest-peer lookups per position, as the design says) is later work.
//!
//! Each computation's plan is built once from a snapshot of the directory, and the snapshot is
//! stored before the plan is used, so a restarted node rebuilds exactly the same plan.

use crate::store::Store;
use grove_protocol::ids::{ComputationId, NodeId};
use grove_protocol::plan::{Plan, PlanError, PlanProvider, SortedDirectory};
use grove_protocol::request::Request;
use libp2p::{identity, Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// Domain tag of announcement signatures.
const ANNOUNCE_DOMAIN: &[u8] = b"grove/directory-announcement/v1";
/// Largest announcement, in bytes.
pub const MAX_ANNOUNCEMENT_BYTES: usize = 8 * 1024;
/// Largest number of listen addresses in one announcement.
pub const MAX_ANNOUNCED_ADDRS: usize = 16;
/// Largest number of peers in the directory.
pub const MAX_DIRECTORY_PEERS: usize = 100_000;
/// Largest number of plans kept in memory.
pub const MAX_CACHED_PLANS: usize = grove_protocol::limits::MAX_COMPUTATIONS;

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
    pub addrs: Vec<Multiaddr>,
    pub issued_at_micros: u64,
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
    if a.addrs.len() > MAX_ANNOUNCED_ADDRS {
        return Err(AnnouncementError::Malformed("too many addresses".into()));
    }
    let addrs = a
        .addrs
        .iter()
        .filter_map(|s| s.parse::<Multiaddr>().ok())
        .collect();
    Ok(Peer {
        node: node_id_of(&peer_id),
        peer_id,
        x25519_public: a.x25519_public,
        addrs,
        issued_at_micros: a.issued_at_micros,
    })
}

/// The node's view of the directory, shared by the event loop and the plan provider.
#[derive(Default)]
pub struct Directory {
    peers: BTreeMap<NodeId, Peer>,
}

impl Directory {
    /// Inserts or refreshes a peer; returns whether it was new.
    pub fn insert(&mut self, peer: Peer) -> bool {
        match self.peers.get(&peer.node) {
            Some(old) if old.issued_at_micros >= peer.issued_at_micros => false,
            Some(_) => {
                self.peers.insert(peer.node, peer);
                false
            }
            None if self.peers.len() >= MAX_DIRECTORY_PEERS => false,
            None => {
                self.peers.insert(peer.node, peer);
                true
            }
        }
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

    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    pub fn snapshot(&self) -> Vec<(NodeId, [u8; 32])> {
        self.peers
            .values()
            .map(|p| (p.node, p.x25519_public))
            .collect()
    }
}

/// Plans from directory snapshots, each stored before its first use.
pub struct NodePlans {
    directory: Arc<Mutex<Directory>>,
    store: Arc<Store>,
    cache: Mutex<BTreeMap<ComputationId, Arc<Plan>>>,
}

impl NodePlans {
    pub fn new(directory: Arc<Mutex<Directory>>, store: Arc<Store>) -> NodePlans {
        NodePlans {
            directory,
            store,
            cache: Mutex::new(BTreeMap::new()),
        }
    }
}

impl PlanProvider for NodePlans {
    fn plan_for(&self, request: &Request) -> Result<Arc<Plan>, PlanError> {
        // A poisoned lock only means a panic elsewhere while the map was consistent.
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(plan) = cache.get(&request.id) {
            return Ok(plan.clone());
        }
        let stored = self
            .store
            .plan_snapshot(&request.id)
            .map_err(|e| PlanError::InvalidTree(format!("plan snapshot unreadable: {e}")))?;
        let snapshot = match stored {
            Some(s) => s,
            None => {
                let s = self
                    .directory
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .snapshot();
                self.store.put_plan_snapshot(&request.id, &s).map_err(|e| {
                    PlanError::InvalidTree(format!("plan snapshot unwritable: {e}"))
                })?;
                s
            }
        };
        let plan = Arc::new(Plan::build(request, &SortedDirectory::new(snapshot))?);
        if cache.len() >= MAX_CACHED_PLANS {
            // Plans are rebuilt from their stored snapshot when needed again.
            if let Some(first) = cache.keys().next().copied() {
                cache.remove(&first);
            }
        }
        cache.insert(request.id, plan.clone());
        Ok(plan)
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
        };
        let bytes = sign_announcement(&key, &a).unwrap();
        let peer = verify_announcement(&bytes).unwrap();
        assert_eq!(peer.peer_id, key.public().to_peer_id());
        assert_eq!(peer.x25519_public, [7; 32]);
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
}
