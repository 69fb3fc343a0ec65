//! A frozen peer directory as a plan reads it, and its digest (what `Request::directory` names).
//!
//! A plan is a function of the request and a directory, so every node must plan over the same
//! directory. The driver (the node's daemon, the harness, the simulator) hands the engine the
//! snapshot with the request ([`crate::engine::Engine::handle_request`], or
//! [`crate::engine::Command::Launch`] for its commissioner); the engine records it
//! ([`crate::record::Record::Directory`]) before the request itself, builds the plan from it,
//! and on restore rebuilds the plan from that record. The engine never asks anyone for a
//! directory.

use crate::ids::{Digest, NodeId};
use crate::plan::{PeerDirectory, PeerKeys, SortedDirectory};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;

/// Domain tag of snapshot digests.
/// (v2: each entry holds the peer's Ed25519 key after its X25519 key.)
const SNAPSHOT_DOMAIN: &str = "grove/directory-snapshot/v2";

/// The digest of a directory as the plan sees it: the `(NodeId, X25519 key, Ed25519 key)`
/// triples in node order.
pub fn snapshot_digest(entries: &[(NodeId, PeerKeys)]) -> Digest {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(entries.len() * 3);
    for (node, keys) in entries {
        parts.push(&node.0);
        parts.push(&keys.x25519);
        parts.push(&keys.ed25519);
    }
    Digest::of(SNAPSHOT_DOMAIN, &parts)
}

/// The `(NodeId, PeerKeys)` pairs of a directory, in node order (one entry per node), with
/// their digest. Cloning shares the entries: the engines of one process (a simulator of a
/// million nodes) hold one copy, and so do their records.
#[derive(Clone)]
pub struct DirectorySnapshot(Arc<Inner>);

struct Inner {
    digest: Digest,
    directory: SortedDirectory,
}

impl DirectorySnapshot {
    /// Sorts the entries by node and keeps the first of each node's.
    pub fn new(entries: Vec<(NodeId, PeerKeys)>) -> DirectorySnapshot {
        let directory = SortedDirectory::new(entries);
        let digest = snapshot_digest(directory.entries());
        DirectorySnapshot(Arc::new(Inner { digest, directory }))
    }

    pub fn digest(&self) -> Digest {
        self.0.digest
    }

    /// The entries, in node order.
    pub fn entries(&self) -> &[(NodeId, PeerKeys)] {
        self.0.directory.entries()
    }

    pub fn len(&self) -> usize {
        self.0.directory.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.directory.is_empty()
    }

    /// The snapshot as the planner walks it.
    pub fn directory(&self) -> &dyn PeerDirectory {
        &self.0.directory
    }
}

/// The digest and the size: a snapshot may hold a million entries.
impl std::fmt::Debug for DirectorySnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectorySnapshot")
            .field("digest", &self.digest())
            .field("peers", &self.len())
            .finish()
    }
}

impl PartialEq for DirectorySnapshot {
    fn eq(&self, other: &DirectorySnapshot) -> bool {
        // The digest covers every entry in order.
        self.0.digest == other.0.digest
    }
}

impl Eq for DirectorySnapshot {}

/// Encoded as its entries; the digest is computed again when it is read.
impl Serialize for DirectorySnapshot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.entries().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for DirectorySnapshot {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<DirectorySnapshot, D::Error> {
        Vec::<(NodeId, PeerKeys)>::deserialize(deserializer).map(DirectorySnapshot::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::hash_parts;

    fn entries(n: u64) -> Vec<(NodeId, PeerKeys)> {
        (0..n)
            .map(|i| {
                let keys = PeerKeys {
                    x25519: [i as u8; 32],
                    ed25519: [!(i as u8); 32],
                };
                (NodeId(hash_parts("t", &[&i.to_le_bytes()])), keys)
            })
            .collect()
    }

    #[test]
    fn digest_is_of_the_sorted_entries_and_survives_encoding() {
        let mut e = entries(20);
        let sorted = DirectorySnapshot::new(e.clone());
        e.reverse();
        let reversed = DirectorySnapshot::new(e.clone());
        assert_eq!(sorted.digest(), reversed.digest());
        let mut in_order = e;
        in_order.sort_by_key(|a| a.0);
        assert_eq!(sorted.digest(), snapshot_digest(&in_order));
        // Another key for one node is another directory.
        let mut other_x = in_order.clone();
        other_x[3].1.x25519 = [0xee; 32];
        assert_ne!(DirectorySnapshot::new(other_x).digest(), sorted.digest());
        in_order[3].1.ed25519 = [0xee; 32];
        assert_ne!(DirectorySnapshot::new(in_order).digest(), sorted.digest());
        let bytes = postcard::to_allocvec(&sorted).unwrap();
        let back: DirectorySnapshot = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.digest(), sorted.digest());
        assert_eq!(back.entries(), sorted.entries());
    }
}
