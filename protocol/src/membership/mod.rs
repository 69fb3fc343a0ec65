//! Membership: who may be selected, and which candidate sets a node accepts.
//!
//! - [`admission`]: certificates from issuers named in the config, with a quota per issuer
//!   enforced by serial numbers, and an identity age before selection (identities cost).
//! - [`view`]: the sans-IO state machine that replicates the admitted set by gossip over a
//!   bounded routing set and anti-entropy (no node talks to every other).
//! - this module: selection of a position's node from a beacon seed, and the candidate-set
//!   rule a node applies to a request.

pub mod admission;
pub mod view;

pub use admission::{AdmissionError, AdmissionPolicy, Certificate, IssuerKey};
pub use view::{
    Checkpoint, Member, MemberMessage, MemberOutput, Membership, MembershipConfig, MembershipError,
    MembershipStats, VerifiedCertificates, CHECKPOINT_BYTES_PER_ENTRY,
};

use crate::ids::{hash_parts, Micros, NodeId};
use crate::limits::{MAX_CANDIDATES, MAX_SELECTION_SCAN};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The share of the eligible peers a node knew before a request that the request's candidate
/// set must include, in parts per million (the stated fraction: a commissioner may leave out
/// at most 10% of them, for peers its own view lacks).
pub const DEFAULT_MIN_KNOWN_PPM: u32 = 900_000;

/// The candidate-set rule as the engine applies it at request intake
/// (`Engine::with_candidate_rule`): the driver's membership view behind it.
pub trait CandidateRule: Send + Sync {
    /// [`Membership::check_candidates`] with the deployment's stated fraction.
    fn check(&self, candidates: &[NodeId], created_at: Micros) -> Result<(), CandidateRefusal>;
    /// Whether `node` is admitted and old enough to be selected for a request created at
    /// `created_at` (a contributor checks its leaf members with it).
    fn verifies(&self, node: &NodeId, created_at: Micros) -> bool;
}

/// A node's membership view as its engine's candidate rule. The driver keeps feeding the view
/// (gossip, timers) through the same lock.
pub struct ViewRule {
    pub view: Arc<Mutex<Membership>>,
    pub min_known_ppm: u32,
}

impl ViewRule {
    fn view(&self) -> std::sync::MutexGuard<'_, Membership> {
        // A poisoned lock only means another thread panicked while holding it; the view's
        // updates are whole-entry inserts, so it is still consistent.
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl CandidateRule for ViewRule {
    fn check(&self, candidates: &[NodeId], created_at: Micros) -> Result<(), CandidateRefusal> {
        self.view()
            .check_candidates(candidates, created_at, self.min_known_ppm)
    }
    fn verifies(&self, node: &NodeId, created_at: Micros) -> bool {
        let view = self.view();
        let epoch = view.epoch_of(created_at);
        view.is_eligible(node, epoch)
    }
}

/// Why a node refuses a request's candidate set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CandidateRefusal {
    #[error("candidate set lists {count} identities (limit {limit})")]
    TooMany { count: usize, limit: usize },
    #[error("candidate {node:?} is listed twice")]
    Duplicate { node: NodeId },
    #[error("candidate {node:?} is not an admitted identity old enough to be selected")]
    NotAdmitted { node: NodeId },
    #[error("candidate set omits this node, which is eligible")]
    OmitsSelf,
    #[error("candidate set includes {included} of the {known} eligible peers this node knew before the request (at least {required} required)")]
    OmitsKnownPeers {
        known: u64,
        included: u64,
        required: u64,
    },
}

/// The point of the id ring where selection of `index` starts: `H("grove/select/v1", seed,
/// index)`. [`Membership::select`] and the plan (`plan.rs`, over a request's candidates) both
/// take the first eligible unused identity at or after it.
pub fn selection_point(seed: &[u8; 32], index: u64) -> NodeId {
    NodeId(hash_parts("grove/select/v1", &[seed, &index.to_be_bytes()]))
}

/// Where `node` sits on the ring a plan drawn from `seed` selects on:
/// `H("grove/select/key/v1", seed, node)`. Re-keyed by every seed, so that no identity can be
/// chosen (its key ground) to sit after a large gap, which would make it selected more often
/// than its share.
pub fn ring_key(seed: &[u8; 32], node: &NodeId) -> NodeId {
    NodeId(hash_parts("grove/select/key/v1", &[seed, &node.0]))
}

impl Membership {
    /// The node placed at `index` (a position of the plan) by `seed` (the beacon seed): the
    /// first identity eligible at `epoch` at or after the point `hash(seed, index)` on the id
    /// ring. Every node with the same view places every index identically; a view that lacks
    /// or adds an identity moves only the indices whose point falls next to it.
    pub fn select(&self, seed: &[u8; 32], index: u64, epoch: u64) -> Option<NodeId> {
        self.ring_from(selection_point(seed, index))
            .take(MAX_SELECTION_SCAN)
            .find(|c| self.policy().eligible_from(c.epoch, epoch))
            .map(|c| c.node)
    }

    /// The candidate-set rule. A node refuses a request whose explicit candidate set
    /// - lists an identity that is not admitted and old enough at the request's epoch,
    /// - omits this node while it is eligible, or
    /// - includes fewer than `min_known_ppm` (parts per million) of the eligible peers this
    ///   node knew before the request was created,
    ///
    /// so a commissioner cannot plan over a directory of its own identities, nor drop the
    /// honest nodes it dislikes. Cost: one pass over the candidates and one over the view.
    pub fn check_candidates(
        &self,
        candidates: &[NodeId],
        created_at: Micros,
        min_known_ppm: u32,
    ) -> Result<(), CandidateRefusal> {
        if candidates.len() > MAX_CANDIDATES {
            return Err(CandidateRefusal::TooMany {
                count: candidates.len(),
                limit: MAX_CANDIDATES,
            });
        }
        let epoch = self.epoch_of(created_at);
        let mut set = BTreeSet::new();
        for node in candidates {
            if !set.insert(*node) {
                return Err(CandidateRefusal::Duplicate { node: *node });
            }
            if !self.is_eligible(node, epoch) {
                return Err(CandidateRefusal::NotAdmitted { node: *node });
            }
        }
        if self.is_eligible(&self.me(), epoch) && !set.contains(&self.me()) {
            return Err(CandidateRefusal::OmitsSelf);
        }
        let mut known = 0u64;
        let mut included = 0u64;
        for c in self.admitted() {
            if c.node == self.me() || !self.policy().eligible_from(c.epoch, epoch) {
                continue;
            }
            if self.known_since(&c.node).is_some_and(|t| t < created_at) {
                known += 1;
                if set.contains(&c.node) {
                    included += 1;
                }
            }
        }
        let required = (known * u64::from(min_known_ppm)).div_ceil(1_000_000);
        if included < required {
            return Err(CandidateRefusal::OmitsKnownPeers {
                known,
                included,
                required,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
