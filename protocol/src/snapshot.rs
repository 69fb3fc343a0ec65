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
use crate::plan::{PeerDirectory, SortedDirectory};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;

/// Domain tag of snapshot digests.
const SNAPSHOT_DOMAIN: &str = "grove/directory-snapshot/v1";

/// The digest of a directory as the plan sees it: the `(NodeId, X25519 key)` pairs in node
/// order.
pub fn snapshot_digest(entries: &[(NodeId, [u8; 32])]) -> Digest {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(entries.len() * 2);
    for (node, key) in entries {
        parts.push(&node.0);
        parts.push(key);
    }
    Digest::of(SNAPSHOT_DOMAIN, &parts)
}

/// The `(NodeId, X25519 key)` pairs of a directory, in node order (one entry per node), with
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
    pub fn new(entries: Vec<(NodeId, [u8; 32])>) -> DirectorySnapshot {
        let directory = SortedDirectory::new(entries);
        let digest = snapshot_digest(directory.entries());
        DirectorySnapshot(Arc::new(Inner { digest, directory }))
    }

    pub fn digest(&self) -> Digest {
        self.0.digest
    }

    /// The entries, in node order.
    pub fn entries(&self) -> &[(NodeId, [u8; 32])] {
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
        Vec::<(NodeId, [u8; 32])>::deserialize(deserializer).map(DirectorySnapshot::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::hash_parts;

    fn entries(n: u64) -> Vec<(NodeId, [u8; 32])> {
        (0..n)
            .map(|i| (NodeId(hash_parts("t", &[&i.to_le_bytes()])), [i as u8; 32]))
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
        in_order[3].1 = [0xee; 32];
        assert_ne!(DirectorySnapshot::new(in_order).digest(), sorted.digest());
        let bytes = postcard::to_allocvec(&sorted).unwrap();
        let back: DirectorySnapshot = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.digest(), sorted.digest());
        assert_eq!(back.entries(), sorted.entries());
    }
}
