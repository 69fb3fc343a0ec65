//! Identifiers and domain-separated hashing.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;

/// A point in time, in microseconds. The node uses microseconds since the Unix epoch; the
/// simulator and the harness use virtual time. The engine never reads a clock.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Micros(pub u64);

impl Micros {
    pub const ZERO: Micros = Micros(0);
    pub const MAX: Micros = Micros(u64::MAX);
    pub fn from_millis(ms: u64) -> Micros {
        Micros(ms.saturating_mul(1000))
    }
    pub fn plus(self, micros: u64) -> Micros {
        Micros(self.0.saturating_add(micros))
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
}

macro_rules! id32 {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
        pub struct $name(pub [u8; 32]);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex_prefix(&self.0))
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex(&self.0))
            }
        }
    };
}

id32!(
    /// A node's identity in the plan: 32 bytes (the node uses the hash of its libp2p PeerId).
    NodeId
);
id32!(
    /// A computation's id, chosen at random by the commissioner.
    ComputationId
);
id32!(
    /// A SHA-256 digest, used for versions and plan keys.
    Digest
);

/// A group of the tree: level 0 holds the leaf groups; the root is the single group of the
/// top level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupId {
    pub level: u8,
    pub index: u32,
}

/// A position inside a group, `1..=g`; it is also the Shamir evaluation point.
pub type Position = u8;

/// What a partial sum covers: the digest of its manifest and the number of contributors under it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    pub digest: Digest,
    pub count: u64,
}

/// SHA-256 over a domain tag and length-prefixed parts. Every hash in Grove goes through here,
/// each use with its own domain tag.
pub fn hash_parts(domain: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((domain.len() as u32).to_le_bytes());
    h.update(domain.as_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_prefix(bytes: &[u8]) -> String {
    hex(&bytes[..4.min(bytes.len())])
}

impl NodeId {
    /// Derives a node id from any public identity bytes (the node passes its PeerId bytes).
    pub fn from_public_bytes(bytes: &[u8]) -> NodeId {
        NodeId(hash_parts("grove/node-id", &[bytes]))
    }
}

impl Digest {
    pub fn of(domain: &str, parts: &[&[u8]]) -> Digest {
        Digest(hash_parts(domain, parts))
    }
}
