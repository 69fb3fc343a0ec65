//! The signed computation request and its validation.

use crate::encoding::ContributionSpec;
use crate::ids::{ComputationId, Digest, Micros, NodeId};
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

/// The beacon round a request names: the chain (its hash, from the chain's `info`) and the
/// round number, which must be published after the request's creation
/// (`Beacon::check_named_round`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeaconRef {
    pub chain_hash: [u8; 32],
    pub round: u64,
}

/// What a commissioner asks for. Signed as postcard bytes under a domain tag.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: ComputationId,
    pub commissioner: CommissionerKey,
    /// The node that receives root reports and releases the result.
    pub commissioner_node: NodeId,
    /// The digest of the peer directory the commissioner planned over, if it names one: a
    /// node whose own directory differs fetches that snapshot before building the plan. The
    /// engine and the plan never read it (the plan takes the directory as an input).
    pub directory: Option<Digest>,
    /// The future beacon round whose randomness seeds the plan (`beacon.rs`): the plan's seed
    /// is `plan_seed(signing bytes, chain, round, randomness)`, unknown to everyone when the
    /// request is signed. `None`: the seed is a hash of the request id, which the commissioner
    /// chooses; an engine configured with a beacon (`Engine::with_beacon`) refuses such a
    /// request.
    pub beacon: Option<BeaconRef>,
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
        let body = postcard::to_allocvec(self).expect("a request always serializes");
        crate::ids::hash_parts(SIGNING_DOMAIN, &[&body]).to_vec()
    }
    /// Checks every parameter against its limit (`2 <= t <= g`, k_min, tree shape, timeouts,
    /// contribution spec, its cells and overflow budget, query size, lifetime).
    pub fn validate_params(&self) -> Result<(), RequestError> {
        use crate::limits::*;
        let bad = |what: String| Err(RequestError::Malformed(what));
        let PrivacyParams { g, t, k_min } = self.privacy;
        // t = 1 would give every member the plaintext of what it holds.
        if !(2 <= t && t <= g && g <= MAX_GROUP_SIZE) {
            return bad(format!(
                "privacy: need 2 <= t <= g <= {MAX_GROUP_SIZE}, got g = {g}, t = {t}"
            ));
        }
        if k_min < 1 {
            return bad("privacy: k_min must be at least 1".into());
        }
        if self.max_contributors < 1 {
            return bad("max_contributors must be at least 1".into());
        }
        let tree = &self.tree;
        if tree.leaf_groups < 1 {
            return bad("tree: leaf_groups must be at least 1".into());
        }
        if !(2..=MAX_FAN_IN).contains(&tree.fan_in) {
            return bad(format!(
                "tree: fan_in must be in 2..={MAX_FAN_IN}, got {}",
                tree.fan_in
            ));
        }
        if tree.backups > MAX_BACKUPS {
            return bad(format!(
                "tree: at most {MAX_BACKUPS} backups, got {}",
                tree.backups
            ));
        }
        match plan_group_count(tree.leaf_groups, tree.fan_in) {
            Some(n) if n <= u64::from(MAX_PLAN_GROUPS) => {}
            _ => {
                return bad(format!(
                    "tree: more than {MAX_PLAN_GROUPS} groups ({} leaf groups, fan-in {})",
                    tree.leaf_groups, tree.fan_in
                ))
            }
        }
        let to = &tree.timeouts;
        for (name, value) in [
            ("share_window", to.share_window),
            ("collect_window", to.collect_window),
            ("level_span", to.level_span),
            ("report_window", to.report_window),
            ("manifest_timeout", to.manifest_timeout),
            ("heal_attempt", to.heal_attempt),
            ("release_window", to.release_window),
        ] {
            if value == 0 {
                return bad(format!("timeouts: {name} must be positive"));
            }
        }
        if self.deadline <= self.created_at {
            return bad(format!(
                "deadline {:?} is not after created_at {:?}",
                self.deadline, self.created_at
            ));
        }
        let lifetime = self.deadline.0 - self.created_at.0;
        if lifetime > MAX_COMPUTATION_LIFETIME_MICROS {
            return bad(format!(
                "lifetime of {lifetime} us is over the limit of {MAX_COMPUTATION_LIFETIME_MICROS} us"
            ));
        }
        if self.query.len() > MAX_QUERY_BYTES {
            return bad(format!(
                "query of {} bytes is over the limit of {MAX_QUERY_BYTES} bytes",
                self.query.len()
            ));
        }
        self.contribution
            .validate(self.max_contributors)
            .and_then(|()| self.contribution.validate_cells())
            .map_err(|e| RequestError::Malformed(e.to_string()))
    }
}

/// The domain tag of request signatures.
pub const SIGNING_DOMAIN: &str = "grove/request/v1";

/// Number of groups of a tree with `leaf_groups` leaves and the given fan-in: the levels hold
/// `leaf_groups`, then `ceil(previous / fan_in)` groups, up to a single root. `None` if
/// `fan_in < 2` or `leaf_groups == 0` (no such tree).
pub fn plan_group_count(leaf_groups: u32, fan_in: u32) -> Option<u64> {
    if fan_in < 2 || leaf_groups == 0 {
        return None;
    }
    let mut level = u64::from(leaf_groups);
    let mut total = level;
    while level > 1 {
        level = level.div_ceil(u64::from(fan_in));
        total += level;
    }
    Some(total)
}

impl SignedRequest {
    pub fn sign(request: Request, key: &ed25519_dalek::SigningKey) -> SignedRequest {
        use ed25519_dalek::Signer as _;
        let signature = key.sign(&request.signing_bytes()).to_bytes().to_vec();
        SignedRequest { request, signature }
    }
    /// Signature and parameters; no time or replay checks.
    pub fn verify_signature(&self) -> Result<(), RequestError> {
        self.verify_signature_with(None)
    }

    /// [`SignedRequest::verify_signature`], skipping the curve arithmetic if `verified`
    /// already holds these exact bytes.
    fn verify_signature_with(
        &self,
        verified: Option<&VerifiedSignatures>,
    ) -> Result<(), RequestError> {
        let signature: [u8; 64] = self
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| RequestError::BadSignature)?;
        let digest = self.request.signing_bytes();
        let entry = [&self.request.commissioner.0[..], &digest, &signature].concat();
        if !verified.is_some_and(|v| v.contains(&entry)) {
            let signature = ed25519_dalek::Signature::from_bytes(&signature);
            let key = ed25519_dalek::VerifyingKey::from_bytes(&self.request.commissioner.0)
                .map_err(|_| RequestError::BadSignature)?;
            key.verify_strict(&digest, &signature)
                .map_err(|_| RequestError::BadSignature)?;
            if let Some(v) = verified {
                v.insert(entry);
            }
        }
        self.request.validate_params()
    }
}

/// Request signatures already verified, shared by the engines of one process that all check
/// the same request (the simulator runs one engine per node). An entry is the exact bytes a
/// `verify_strict` accepted: the commissioner's key, the signed digest and the signature. The
/// check is a pure function of those bytes, so a later check of the very same bytes can skip
/// the curve arithmetic without changing any decision. Nodes do not use it. At most
/// `MAX_VERIFIED_SIGNATURES` entries (the set is cleared when full).
#[derive(Debug, Default)]
pub struct VerifiedSignatures(std::sync::Mutex<std::collections::BTreeSet<Vec<u8>>>);

/// Entries of a [`VerifiedSignatures`] set.
const MAX_VERIFIED_SIGNATURES: usize = 1024;

impl VerifiedSignatures {
    fn contains(&self, entry: &[u8]) -> bool {
        // A poisoned lock only means another thread panicked; the set is still sound.
        let set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.contains(entry)
    }
    fn insert(&self, entry: Vec<u8>) {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if set.len() >= MAX_VERIFIED_SIGNATURES {
            set.clear();
        }
        set.insert(entry);
    }
}

/// Remembers the ids of accepted requests until their deadline, so that a replayed request is
/// refused. Bounded by `limits::MAX_SEEN_REQUESTS`.
#[derive(Debug, Default, Clone)]
pub struct RequestValidator {
    seen: BTreeMap<ComputationId, Micros>,
    verified: Option<std::sync::Arc<VerifiedSignatures>>,
}

impl RequestValidator {
    pub fn new() -> RequestValidator {
        RequestValidator::default()
    }
    /// Shares a set of verified signatures with other validators of this process.
    pub fn share_verified(&mut self, verified: std::sync::Arc<VerifiedSignatures>) {
        self.verified = Some(verified);
    }
    /// Full check of a fresh request: signature, parameters, creation time within the clock
    /// skew, not expired, not seen before. On success the id is remembered.
    pub fn accept(&mut self, signed: &SignedRequest, now: Micros) -> Result<(), RequestError> {
        signed.verify_signature_with(self.verified.as_deref())?;
        let request = &signed.request;
        if request.created_at > now.plus(crate::limits::MAX_CLOCK_SKEW_MICROS) {
            return Err(RequestError::FromTheFuture {
                created_at: request.created_at,
                now,
            });
        }
        if now >= request.deadline {
            return Err(RequestError::Expired {
                deadline: request.deadline,
                now,
            });
        }
        if self.seen.contains_key(&request.id) {
            return Err(RequestError::Replayed(request.id));
        }
        self.seen.retain(|_, deadline| *deadline > now);
        if self.seen.len() >= crate::limits::MAX_SEEN_REQUESTS {
            let earliest = self
                .seen
                .iter()
                .min_by_key(|(id, deadline)| (**deadline, **id))
                .map(|(id, _)| *id);
            if let Some(id) = earliest {
                self.seen.remove(&id);
            }
        }
        self.seen.insert(request.id, request.deadline);
        Ok(())
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

/// A request of the given shape (for tests that need a plan or a request, not its contents):
/// computation id `[id; 32]`, commissioner key `[1; 32]` on node `[2; 32]`, one value in
/// `[0, 1]`, at most 100 contributors, `k_min` 1 and every timeout 1 microsecond. Tests
/// change what they need with struct update syntax.
#[cfg(any(test, feature = "test-util"))]
pub fn sample_request(id: u8, leaf_groups: u32, fan_in: u32, g: u8, t: u8, backups: u8) -> Request {
    Request {
        id: ComputationId([id; 32]),
        commissioner: CommissionerKey([1; 32]),
        commissioner_node: NodeId([2; 32]),
        directory: None,
        beacon: None,
        created_at: Micros(0),
        deadline: Micros(1_000_000),
        query: String::new(),
        contribution: ContributionSpec::uniform(1, 0.0, 1.0, 0),
        max_contributors: 100,
        privacy: PrivacyParams { g, t, k_min: 1 },
        tree: TreeParams {
            leaf_groups,
            fan_in,
            backups,
            timeouts: Timeouts {
                share_window: 1,
                collect_window: 1,
                level_span: 1,
                report_window: 1,
                manifest_timeout: 1,
                heal_attempt: 1,
                release_window: 1,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::{BoundRange, CellLayout, CountedCell};
    use crate::limits::*;
    use ed25519_dalek::SigningKey;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn request() -> Request {
        let key = key();
        Request {
            id: ComputationId([1u8; 32]),
            commissioner: CommissionerKey(key.verifying_key().to_bytes()),
            commissioner_node: NodeId([2u8; 32]),
            directory: None,
            beacon: None,
            created_at: Micros(100_000_000),
            deadline: Micros(160_000_000),
            query: "SELECT avg(x) FROM local".into(),
            contribution: ContributionSpec {
                length: 4,
                bounds: vec![
                    BoundRange {
                        count: 3,
                        min: 0.0,
                        max: 1.0,
                    },
                    BoundRange {
                        count: 1,
                        min: -5.0,
                        max: 5.0,
                    },
                ],
                scale_digits: 3,
                cells: CellLayout {
                    width: 4,
                    cells: vec![CountedCell {
                        indicator: 0,
                        start: 0,
                        len: 4,
                    }],
                },
                noise: None,
            },
            max_contributors: 1000,
            privacy: PrivacyParams {
                g: 5,
                t: 3,
                k_min: 10,
            },
            tree: TreeParams {
                leaf_groups: 16,
                fan_in: 4,
                backups: 2,
                timeouts: Timeouts {
                    share_window: 5_000_000,
                    collect_window: 1_000_000,
                    level_span: 3_000_000,
                    report_window: 1_000_000,
                    manifest_timeout: 2_000_000,
                    heal_attempt: 2_000_000,
                    release_window: 1_000_000,
                },
            },
        }
    }

    fn signed() -> SignedRequest {
        SignedRequest::sign(request(), &key())
    }

    fn malformed(r: Request) -> bool {
        matches!(r.validate_params(), Err(RequestError::Malformed(_)))
    }

    #[test]
    fn signing_bytes_are_a_domain_separated_hash() {
        let r = request();
        let bytes = r.signing_bytes();
        assert_eq!(bytes.len(), 32);
        let expected =
            crate::ids::hash_parts("grove/request/v1", &[&postcard::to_allocvec(&r).unwrap()]);
        assert_eq!(bytes, expected.to_vec());
        let mut other = r.clone();
        other.max_contributors += 1;
        assert_ne!(other.signing_bytes(), bytes);
    }

    #[test]
    fn a_shared_verified_set_only_skips_the_very_same_bytes() {
        let verified = std::sync::Arc::new(VerifiedSignatures::default());
        let s = signed();
        assert_eq!(s.verify_signature_with(Some(&verified)), Ok(()));
        assert!(verified.0.lock().unwrap().len() == 1);
        // A hit: the same bytes again.
        assert_eq!(s.verify_signature_with(Some(&verified)), Ok(()));
        // Any other bytes are checked in full and refused.
        let mut bad_signature = s.clone();
        bad_signature.signature[10] ^= 1;
        let mut bad_request = s.clone();
        bad_request.request.max_contributors += 1;
        let mut bad_key = s.clone();
        bad_key.request.commissioner.0[0] ^= 1;
        for bad in [bad_signature, bad_request, bad_key] {
            assert_eq!(
                bad.verify_signature_with(Some(&verified)),
                Err(RequestError::BadSignature)
            );
        }
        assert!(verified.0.lock().unwrap().len() == 1);
        // Validators sharing the set still remember their own ids.
        let (mut a, mut b) = (RequestValidator::new(), RequestValidator::new());
        a.share_verified(verified.clone());
        b.share_verified(verified);
        let now = s.request.created_at;
        assert_eq!(a.accept(&s, now), Ok(()));
        assert_eq!(b.accept(&s, now), Ok(()));
        assert_eq!(a.accept(&s, now), Err(RequestError::Replayed(s.request.id)));
    }

    #[test]
    fn sign_verify_round_trip() {
        let s = signed();
        assert_eq!(s.signature.len(), 64);
        assert_eq!(s.verify_signature(), Ok(()));
        // Deterministic (ed25519 signatures are).
        assert_eq!(s, signed());
        // Survives a postcard round trip.
        let bytes = postcard::to_allocvec(&s).unwrap();
        let back: SignedRequest = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.verify_signature(), Ok(()));
    }

    #[test]
    fn any_flipped_byte_of_the_request_breaks_the_signature() {
        // Flip every byte of the serialized request that still decodes to a different request
        // whose parameters are valid: the signature must not verify.
        let s = signed();
        let bytes = postcard::to_allocvec(&s.request).unwrap();
        let mut checked = 0;
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= bit;
                let Ok((r, rest)) = postcard::take_from_bytes::<Request>(&b) else {
                    continue;
                };
                if !rest.is_empty() || r == s.request {
                    continue;
                }
                let tampered = SignedRequest {
                    request: r,
                    signature: s.signature.clone(),
                };
                assert_eq!(
                    tampered.verify_signature(),
                    Err(RequestError::BadSignature),
                    "byte {i} bit {bit:#x}"
                );
                checked += 1;
            }
        }
        assert!(
            checked > bytes.len() / 2,
            "only {checked} tampered requests decoded"
        );
    }

    #[test]
    fn every_field_is_covered_by_the_signature() {
        let s = signed();
        let tamper: Vec<fn(&mut Request)> = vec![
            |r| r.id.0[31] ^= 1,
            |r| r.commissioner_node.0[0] ^= 1,
            |r| r.created_at.0 += 1,
            |r| r.deadline.0 += 1,
            |r| r.query.push(' '),
            |r| r.contribution.scale_digits += 1,
            |r| r.contribution.bounds[0].max = 2.0,
            |r| r.max_contributors += 1,
            |r| r.privacy.k_min += 1,
            |r| r.privacy.t -= 1,
            |r| r.tree.leaf_groups += 1,
            |r| r.tree.fan_in += 1,
            |r| r.tree.backups += 1,
            |r| r.tree.timeouts.release_window += 1,
        ];
        for (i, f) in tamper.iter().enumerate() {
            let mut t = s.clone();
            f(&mut t.request);
            assert_eq!(t.verify_signature(), Err(RequestError::BadSignature), "{i}");
        }
        // The commissioner key itself: another valid key, or bytes that are not a key.
        let mut t = s.clone();
        t.request.commissioner = CommissionerKey(
            SigningKey::from_bytes(&[8u8; 32])
                .verifying_key()
                .to_bytes(),
        );
        assert_eq!(t.verify_signature(), Err(RequestError::BadSignature));
        let mut t = s.clone();
        t.request.commissioner.0[0] ^= 1;
        assert_eq!(t.verify_signature(), Err(RequestError::BadSignature));
    }

    #[test]
    fn flipped_signature_bytes_are_rejected() {
        let s = signed();
        for i in 0..64 {
            for bit in [0x01u8, 0x10, 0x80] {
                let mut t = s.clone();
                t.signature[i] ^= bit;
                assert_eq!(t.verify_signature(), Err(RequestError::BadSignature));
            }
        }
        for len in [0, 32, 63, 65, 128] {
            let mut t = s.clone();
            t.signature.resize(len, 0);
            assert_eq!(t.verify_signature(), Err(RequestError::BadSignature));
        }
    }

    #[test]
    fn signature_by_another_key_is_rejected() {
        let other = SigningKey::from_bytes(&[9u8; 32]);
        // Signed by another key but claiming the commissioner's key.
        let s = SignedRequest::sign(request(), &other);
        assert_eq!(s.verify_signature(), Err(RequestError::BadSignature));
        // Signature copied from another key's request.
        let mut s = signed();
        s.signature = SignedRequest::sign(request(), &other).signature;
        assert_eq!(s.verify_signature(), Err(RequestError::BadSignature));
    }

    #[test]
    fn accept_checks_time_and_replay() {
        let s = signed();
        let r = &s.request;
        // Expired: now at or past the deadline.
        let mut v = RequestValidator::new();
        assert_eq!(
            v.accept(&s, r.deadline),
            Err(RequestError::Expired {
                deadline: r.deadline,
                now: r.deadline
            })
        );
        assert_eq!(
            v.accept(&s, r.deadline.plus(1)),
            Err(RequestError::Expired {
                deadline: r.deadline,
                now: r.deadline.plus(1)
            })
        );
        // From the future: more than the clock skew ahead.
        let now = Micros(r.created_at.0 - MAX_CLOCK_SKEW_MICROS - 1);
        assert_eq!(
            v.accept(&s, now),
            Err(RequestError::FromTheFuture {
                created_at: r.created_at,
                now
            })
        );
        assert!(!v.seen(&r.id));
        // Exactly at the skew bound is fine.
        let mut v2 = RequestValidator::new();
        assert_eq!(
            v2.accept(&s, Micros(r.created_at.0 - MAX_CLOCK_SKEW_MICROS)),
            Ok(())
        );
        // Fresh, then replayed.
        assert_eq!(v.accept(&s, r.created_at), Ok(()));
        assert!(v.seen(&r.id));
        assert_eq!(
            v.accept(&s, r.created_at.plus(1)),
            Err(RequestError::Replayed(r.id))
        );
        // Same id, different (validly signed) content: still a replay.
        let mut changed = request();
        changed.query = "something else".into();
        let changed = SignedRequest::sign(changed, &key());
        assert_eq!(
            v.accept(&changed, r.created_at.plus(2)),
            Err(RequestError::Replayed(r.id))
        );
        // A bad signature is reported before anything else, and not remembered.
        let mut bad = request();
        bad.id = ComputationId([3u8; 32]);
        let mut bad = SignedRequest::sign(bad, &key());
        bad.signature[0] ^= 1;
        assert_eq!(
            v.accept(&bad, r.created_at),
            Err(RequestError::BadSignature)
        );
        assert!(!v.seen(&bad.request.id));
    }

    #[test]
    fn accept_prunes_expired_and_stays_bounded() {
        let mut v = RequestValidator::new();
        // Fill the map with ids remembered without checks.
        for i in 0..MAX_SEEN_REQUESTS as u32 {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            id[31] = 0xff;
            // Two of them expire before the request below is accepted.
            let deadline = if i < 2 {
                Micros(500_000)
            } else {
                Micros(200_000_000 + u64::from(i))
            };
            v.remember(ComputationId(id), deadline);
        }
        let s = signed();
        assert_eq!(v.accept(&s, s.request.created_at), Ok(()));
        assert_eq!(v.seen.len(), MAX_SEEN_REQUESTS - 1);
        // At capacity, the earliest deadline is evicted.
        let mut id2 = request();
        id2.id = ComputationId([4u8; 32]);
        let s2 = SignedRequest::sign(id2, &key());
        assert_eq!(v.accept(&s2, s.request.created_at), Ok(()));
        assert_eq!(v.seen.len(), MAX_SEEN_REQUESTS);
        let mut id3 = request();
        id3.id = ComputationId([5u8; 32]);
        let s3 = SignedRequest::sign(id3, &key());
        assert_eq!(v.accept(&s3, s.request.created_at), Ok(()));
        assert_eq!(v.seen.len(), MAX_SEEN_REQUESTS);
        // s, s2 and s3 share the earliest deadline (160 s); the one with the smallest id went.
        assert!(!v.seen(&s.request.id));
        assert!(v.seen(&s2.request.id));
        assert!(v.seen(&s3.request.id));
    }

    #[test]
    fn valid_params_pass() {
        assert_eq!(request().validate_params(), Ok(()));
        let mut r = request();
        r.privacy = PrivacyParams {
            g: MAX_GROUP_SIZE,
            t: MAX_GROUP_SIZE,
            k_min: 1,
        };
        r.tree.fan_in = MAX_FAN_IN;
        r.tree.backups = MAX_BACKUPS;
        r.tree.leaf_groups = 1;
        r.query = "q".repeat(MAX_QUERY_BYTES);
        r.deadline = r.created_at.plus(MAX_COMPUTATION_LIFETIME_MICROS);
        assert_eq!(r.validate_params(), Ok(()));
        let mut r = request();
        r.privacy.g = 2;
        r.privacy.t = 2;
        r.tree.fan_in = 2;
        assert_eq!(r.validate_params(), Ok(()));
    }

    #[test]
    fn malformed_params_are_rejected() {
        let with = |f: &dyn Fn(&mut Request)| {
            let mut r = request();
            f(&mut r);
            r
        };
        // g, t: t = 1 would hand every member the plaintext
        assert!(malformed(with(&|r| r.privacy.t = 0)));
        assert!(malformed(with(&|r| r.privacy.t = 1)));
        assert!(malformed(with(&|r| {
            r.privacy.g = 1;
            r.privacy.t = 1
        })));
        assert!(malformed(with(&|r| r.privacy.t = r.privacy.g + 1)));
        assert!(malformed(with(&|r| {
            r.privacy.g = 0;
            r.privacy.t = 0
        })));
        assert!(malformed(with(&|r| {
            r.privacy.g = MAX_GROUP_SIZE + 1;
            r.privacy.t = 2
        })));
        // k_min, max_contributors
        assert!(malformed(with(&|r| r.privacy.k_min = 0)));
        assert!(malformed(with(&|r| r.max_contributors = 0)));
        // tree shape
        assert!(malformed(with(&|r| r.tree.leaf_groups = 0)));
        assert!(malformed(with(&|r| r.tree.fan_in = 0)));
        assert!(malformed(with(&|r| r.tree.fan_in = 1)));
        assert!(malformed(with(&|r| r.tree.fan_in = MAX_FAN_IN + 1)));
        assert!(malformed(with(&|r| r.tree.backups = MAX_BACKUPS + 1)));
        assert!(malformed(with(&|r| r.tree.leaf_groups = MAX_PLAN_GROUPS)));
        assert!(malformed(with(&|r| r.tree.leaf_groups = u32::MAX)));
        // timeouts
        for i in 0..7 {
            assert!(malformed(with(&|r| {
                let t = &mut r.tree.timeouts;
                *[
                    &mut t.share_window,
                    &mut t.collect_window,
                    &mut t.level_span,
                    &mut t.report_window,
                    &mut t.manifest_timeout,
                    &mut t.heal_attempt,
                    &mut t.release_window,
                ]
                .into_iter()
                .nth(i)
                .unwrap() = 0;
            })));
        }
        // lifetime
        assert!(malformed(with(&|r| r.deadline = r.created_at)));
        assert!(malformed(
            with(&|r| r.deadline = Micros(r.created_at.0 - 1))
        ));
        assert!(malformed(with(&|r| {
            r.deadline = r.created_at.plus(MAX_COMPUTATION_LIFETIME_MICROS + 1)
        })));
        // query
        assert!(malformed(with(
            &|r| r.query = "q".repeat(MAX_QUERY_BYTES + 1)
        )));
        // contribution spec (validated by encoding.rs)
        assert!(malformed(with(&|r| r.contribution.length = 5)));
        assert!(malformed(with(&|r| {
            r.contribution.bounds[0].min = 2.0;
        })));
        assert!(malformed(with(&|r| {
            r.contribution.bounds[1].max = f64::NAN;
        })));
        // cells: none, an element outside every cell, an indicator not bounded to [0, 1]
        assert!(malformed(with(&|r| r.contribution.cells.cells.clear())));
        assert!(malformed(with(&|r| r.contribution.cells.cells[0].len = 3)));
        assert!(malformed(with(
            &|r| r.contribution.cells.cells[0].indicator = 3
        )));
        assert!(malformed(with(&|r| {
            r.max_contributors = u64::MAX;
            r.contribution.scale_digits = MAX_SCALE_DIGITS;
            r.contribution.bounds[1].max = 1e12;
        })));
        // Malformed parameters fail verification even with a valid signature.
        let s = SignedRequest::sign(with(&|r| r.privacy.k_min = 0), &key());
        assert!(matches!(
            s.verify_signature(),
            Err(RequestError::Malformed(_))
        ));
    }

    #[test]
    fn plan_group_count_sums_the_levels() {
        assert_eq!(plan_group_count(1, 2), Some(1));
        assert_eq!(plan_group_count(2, 2), Some(3));
        assert_eq!(plan_group_count(16, 4), Some(16 + 4 + 1));
        assert_eq!(plan_group_count(17, 4), Some(17 + 5 + 2 + 1));
        assert_eq!(plan_group_count(1000, 1024), Some(1001));
        assert_eq!(plan_group_count(0, 4), None);
        assert_eq!(plan_group_count(4, 1), None);
        assert_eq!(plan_group_count(u32::MAX, 2), Some(2 * u64::from(u32::MAX)));
    }
}
