//! The signed computation request and its validation.
//! STUB parts marked todo!() are to be implemented (keep every signature and type).

use crate::encoding::ContributionSpec;
use crate::ids::{ComputationId, Micros, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// An ed25519 verifying key, 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CommissionerKey(pub [u8; 32]);

/// Privacy parameters: group size `g`, threshold `t`, minimum contributors `k_min`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivacyParams {
    pub g: u8,
    pub t: u8,
    pub k_min: u64,
}

/// The timers of each phase, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// From creation, how long leaf members collect contributors' shares.
    pub share_window: u64,
    /// After the first item reaches an inner member, how long it waits for the others.
    pub collect_window: u64,
    /// Fallback per level: an inner member of level `l` stops collecting at
    /// `created_at + share_window + l * level_span` even if nothing arrived.
    pub level_span: u64,
    /// How long a leader waits for reports after it starts collecting them.
    pub report_window: u64,
    /// How long a member waits for a manifest before it moves to the next leader.
    pub manifest_timeout: u64,
    /// How long one heal attempt may take before it is retried with fresh masks.
    pub heal_attempt: u64,
    /// How long the commissioner waits for root reports after the first one.
    pub release_window: u64,
}

/// Shape of the tree of groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeParams {
    /// Number of leaf groups (level 0).
    pub leaf_groups: u32,
    /// Children per inner group.
    pub fan_in: u32,
    /// Ordered backups listed per position.
    pub backups: u8,
    pub timeouts: Timeouts,
}

/// What a commissioner asks for. Signed as postcard bytes under a domain tag.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: ComputationId,
    pub commissioner: CommissionerKey,
    /// The node that receives root reports and releases the result.
    pub commissioner_node: NodeId,
    pub created_at: Micros,
    pub deadline: Micros,
    /// The declarative query text (empty for raw vector contributions).
    pub query: String,
    pub contribution: ContributionSpec,
    /// Upper bound on contributors, used by the overflow budget.
    pub max_contributors: u64,
    pub privacy: PrivacyParams,
    pub tree: TreeParams,
}

/// A request with the commissioner's ed25519 signature over
/// `hash_parts("grove/request/v1", [postcard(request)])`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignedRequest {
    pub request: Request,
    /// 64 bytes of ed25519 signature (serde has no 64-byte arrays).
    pub signature: Vec<u8>,
}

#[derive(Debug, Error, PartialEq)]
pub enum RequestError {
    #[error("request signature is invalid")]
    BadSignature,
    #[error("request is malformed: {0}")]
    Malformed(String),
    #[error("request expired at {deadline:?} (now {now:?})")]
    Expired { deadline: Micros, now: Micros },
    #[error("request was created in the future ({created_at:?}, now {now:?})")]
    FromTheFuture { created_at: Micros, now: Micros },
    #[error("request {0} was already seen")]
    Replayed(ComputationId),
}

impl Request {
    /// The bytes the commissioner signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        todo!()
    }
    /// Checks every parameter against its limit (g, t, k_min, tree shape, timeouts,
    /// contribution spec and overflow budget, query size, lifetime).
    pub fn validate_params(&self) -> Result<(), RequestError> {
        todo!()
    }
}

impl SignedRequest {
    pub fn sign(_request: Request, _key: &ed25519_dalek::SigningKey) -> SignedRequest {
        todo!()
    }
    /// Signature and parameters; no time or replay checks.
    pub fn verify_signature(&self) -> Result<(), RequestError> {
        todo!()
    }
}

/// Remembers the ids of accepted requests until their deadline, so that a replayed request is
/// refused. Bounded by `limits::MAX_SEEN_REQUESTS`.
#[derive(Debug, Default, Clone)]
pub struct RequestValidator {
    seen: BTreeMap<ComputationId, Micros>,
}

impl RequestValidator {
    pub fn new() -> RequestValidator {
        RequestValidator::default()
    }
    /// Full check of a fresh request: signature, parameters, creation time within the clock
    /// skew, not expired, not seen before. On success the id is remembered.
    pub fn accept(&mut self, _signed: &SignedRequest, _now: Micros) -> Result<(), RequestError> {
        let _ = &self.seen;
        todo!()
    }
    /// Whether the id was accepted before (and is not yet expired).
    pub fn seen(&self, id: &ComputationId) -> bool {
        self.seen.contains_key(id)
    }
    /// Remembers an id without checks (used when an engine is restored from its records).
    pub fn remember(&mut self, id: ComputationId, deadline: Micros) {
        self.seen.insert(id, deadline);
    }
}
