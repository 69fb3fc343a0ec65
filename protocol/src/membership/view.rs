//! The membership state machine: a replicated set of admitted identities, kept consistent by
//! push gossip over a bounded routing set and repaired by anti-entropy, without any node
//! talking to every other.
//!
//! State: a checkpoint (the admitted set up to some epoch, immutable, shared by reference; a
//! joining node fetches it once from any peer) plus the recent certificates learnt since.
//! A newly admitted node pushes its certificate to its routing peers; every node that learns a
//! new certificate forwards it to `gossip_fanout` of its routing peers (infect and forward
//! once). Every `anti_entropy_micros` a node sends one routing peer a summary (count and
//! digest) of the certificates of the last `recent_epochs` epochs; on a mismatch the two
//! exchange per-bucket digests and then the certificates of the buckets that differ. No node
//! connects to more than `MAX_ROUTING_PEERS` peers for membership, and no message carries the
//! whole set. Anti-entropy is answered only for admitted peers, once per kind per
//! [`Membership::answer_interval`] each, and a peer not admitted may push only its own
//! certificate ([`Membership::handle_message`]).

use super::admission::{AdmissionError, AdmissionPolicy, Certificate, IssuerKey};
use crate::ids::{hash_parts, Digest, Micros, NodeId};
use crate::limits::{
    MAX_EQUIVOCATIONS, MAX_ISSUERS, MAX_MEMBERSHIP_ENTRIES, MAX_MEMBERSHIP_ENTRIES_PER_MESSAGE,
    MAX_MEMBERSHIP_OUTPUTS, MAX_ROUTING_PEERS, MEMBERSHIP_BUCKETS, MEMBERSHIP_COMPACT_AT,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Parameters of the membership layer (the same for every node of a deployment).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipConfig {
    /// Length of one membership epoch, in microseconds.
    pub epoch_micros: u64,
    /// Routing peers a node forwards each new certificate to.
    pub gossip_fanout: usize,
    /// Size of the routing set (at most `MAX_ROUTING_PEERS`).
    pub routing_peers: usize,
    /// Period of anti-entropy rounds, in microseconds.
    pub anti_entropy_micros: u64,
    /// How many epochs back anti-entropy compares.
    pub recent_epochs: u64,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            epoch_micros: 120 * 1_000_000,
            gossip_fanout: 4,
            routing_peers: 16,
            anti_entropy_micros: 10 * 1_000_000,
            recent_epochs: 4,
        }
    }
}

/// An admitted identity as the view holds it: the certificate without its signature (which
/// verified before the identity was admitted). What selection and the candidate rule read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub node: NodeId,
    pub issuer: IssuerKey,
    pub serial: u32,
    /// The epoch its certificate was issued in (its age counts from it).
    pub epoch: u64,
}

impl Member {
    fn of(cert: &Certificate) -> Member {
        Member {
            node: cert.node,
            issuer: cert.issuer,
            serial: cert.serial,
            epoch: cert.epoch,
        }
    }
}

/// One checkpoint entry, 44 bytes: the id, the issuer as an index into the checkpoint's issuer
/// table, the serial and the issue epoch. Its signature sits at the same index of
/// `Checkpoint::signatures`.
#[derive(Clone, Copy, Debug)]
struct Slot {
    node: NodeId,
    epoch: u32,
    serial: u32,
    issuer: u16,
}

/// The bytes one identity costs a checkpoint: its slot, its 64-byte signature and its place
/// in the serial index (no per-entry allocation: three flat arrays).
pub const CHECKPOINT_BYTES_PER_ENTRY: usize = std::mem::size_of::<Slot>() + 64 + 4;

/// The admitted set up to an epoch: built once (at genesis, or by compaction), shared.
///
/// Stored flat, for a million identities in about 112 MB (`CHECKPOINT_BYTES_PER_ENTRY`):
/// entries sorted by id (the ring, searched by bisection), their signatures in a parallel
/// array (kept so that the node can serve the checkpoint and equivocation evidence), the
/// issuers once each, and the entries' indices sorted by (issuer, serial) for the quota check.
#[derive(Clone, Debug, Default)]
pub struct Checkpoint {
    pub epoch: u64,
    issuers: Vec<IssuerKey>,
    slots: Vec<Slot>,
    signatures: Vec<[u8; 64]>,
    by_serial: Vec<u32>,
}

impl Checkpoint {
    /// Builds a checkpoint from certificates already checked against the policy (the node
    /// checks every certificate of a checkpoint it fetches before it uses it). Certificates
    /// that equivocate on a serial are left out, both of them; so is a second certificate for
    /// one id, and any certificate that a checked one cannot be (a signature that is not 64
    /// bytes, an epoch past `u32::MAX`, more than `MAX_ISSUERS` issuers, more than
    /// `MAX_MEMBERSHIP_ENTRIES` entries).
    pub fn new(epoch: u64, certs: impl IntoIterator<Item = Certificate>) -> Checkpoint {
        // Built in the flat arrays themselves (no wider copy of the set at any point), then
        // sorted in place through index permutations of 4 bytes per entry.
        let certs = certs.into_iter();
        let hint = certs.size_hint().0.min(MAX_MEMBERSHIP_ENTRIES);
        let mut slots: Vec<Slot> = Vec::with_capacity(hint);
        let mut signatures: Vec<[u8; 64]> = Vec::with_capacity(hint);
        let mut issuer_index: BTreeMap<IssuerKey, u16> = BTreeMap::new();
        let mut seen: Vec<IssuerKey> = Vec::new();
        for c in certs {
            if slots.len() >= MAX_MEMBERSHIP_ENTRIES {
                break;
            }
            let (Ok(sig), Ok(e)) = (
                <[u8; 64]>::try_from(c.signature.as_slice()),
                u32::try_from(c.epoch),
            ) else {
                continue;
            };
            let issuer = match issuer_index.get(&c.issuer) {
                Some(i) => *i,
                None if seen.len() < MAX_ISSUERS => {
                    // At most MAX_ISSUERS (1024) issuers: the index fits a u16.
                    let i = seen.len() as u16;
                    issuer_index.insert(c.issuer, i);
                    seen.push(c.issuer);
                    i
                }
                None => continue,
            };
            slots.push(Slot {
                node: c.node,
                epoch: e,
                serial: c.serial,
                issuer,
            });
            signatures.push(sig);
        }
        // The issuer table in key order, so that index order is key order.
        let mut issuers = seen.clone();
        issuers.sort_unstable();
        let remap: Vec<u16> = seen
            .iter()
            // `issuers` holds every key of `seen`.
            .map(|k| issuers.binary_search(k).unwrap_or(0) as u16)
            .collect();
        for s in &mut slots {
            s.issuer = remap[usize::from(s.issuer)];
        }
        let n = slots.len();
        let mut dropped = vec![false; n];
        // Equivocations: a serial of one issuer held by two ids drops every holder; the
        // repeats of one certificate keep the first.
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_unstable_by_key(|i| {
            let s = &slots[*i as usize];
            (s.issuer, s.serial, *i)
        });
        for group in order.chunk_by(|a, b| {
            let (x, y) = (&slots[*a as usize], &slots[*b as usize]);
            (x.issuer, x.serial) == (y.issuer, y.serial)
        }) {
            let first = slots[group[0] as usize].node;
            let reused = group.iter().any(|i| slots[*i as usize].node != first);
            for (k, i) in group.iter().enumerate() {
                if reused || k > 0 {
                    dropped[*i as usize] = true;
                }
            }
        }
        // One certificate per id: the first given stays.
        order.sort_unstable_by_key(|i| (slots[*i as usize].node, *i));
        for pair in order.windows(2) {
            if slots[pair[0] as usize].node == slots[pair[1] as usize].node {
                dropped[pair[1] as usize] = true;
            }
        }
        // `order` is now the id order; keep the survivors and move both arrays into it.
        order.retain(|i| !dropped[*i as usize]);
        drop(dropped);
        let mut gather: Vec<u32> = order;
        permute(&mut slots, &mut signatures, &mut gather);
        let kept = gather.len();
        slots.truncate(kept);
        signatures.truncate(kept);
        slots.shrink_to_fit();
        signatures.shrink_to_fit();
        let mut by_serial: Vec<u32> = (0..kept as u32).collect();
        by_serial.sort_unstable_by_key(|i| {
            let s = &slots[*i as usize];
            (s.issuer, s.serial)
        });
        Checkpoint {
            epoch,
            issuers,
            slots,
            signatures,
            by_serial,
        }
    }
    pub fn len(&self) -> usize {
        self.slots.len()
    }
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
    /// Heap bytes the checkpoint holds (capacities of its arrays).
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.signatures.capacity() * 64
            + self.by_serial.capacity() * 4
            + self.issuers.capacity() * std::mem::size_of::<IssuerKey>()
    }
    fn member(&self, i: usize) -> Member {
        let s = &self.slots[i];
        Member {
            node: s.node,
            // Every slot's issuer index was taken from `issuers` when it was built.
            issuer: self.issuers[usize::from(s.issuer)],
            serial: s.serial,
            epoch: u64::from(s.epoch),
        }
    }
    fn position(&self, node: &NodeId) -> Result<usize, usize> {
        self.slots.binary_search_by(|s| s.node.cmp(node))
    }
    fn get(&self, node: &NodeId) -> Option<Member> {
        self.position(node).ok().map(|i| self.member(i))
    }
    /// The certificate of `node`, with its signature, rebuilt from the flat arrays.
    pub fn certificate(&self, node: &NodeId) -> Option<Certificate> {
        let i = self.position(node).ok()?;
        let m = self.member(i);
        Some(Certificate {
            node: m.node,
            issuer: m.issuer,
            serial: m.serial,
            epoch: m.epoch,
            signature: self.signatures[i].to_vec(),
        })
    }
    /// The id admitted under `(issuer, serial)`, if any.
    fn by_serial(&self, issuer: &IssuerKey, serial: u32) -> Option<NodeId> {
        let idx = self.issuers.binary_search(issuer).ok()? as u16;
        let at = self
            .by_serial
            .binary_search_by(|i| {
                let s = &self.slots[*i as usize];
                (s.issuer, s.serial).cmp(&(idx, serial))
            })
            .ok()?;
        Some(self.slots[self.by_serial[at] as usize].node)
    }
    /// The entries at indices `lo..hi` (in id order).
    fn range(&self, lo: usize, hi: usize) -> impl Iterator<Item = Member> + '_ {
        (lo..hi).map(move |i| self.member(i))
    }
    /// Folds certificates learnt since into the checkpoint, in place (no second copy of the
    /// arrays: they grow by the new entries and are merged from the back). The caller passes
    /// admitted certificates whose id and (issuer, serial) the checkpoint does not hold; any
    /// that break this, or that [`Checkpoint::new`] would leave out, are dropped.
    pub(super) fn absorb(&mut self, certs: Vec<Certificate>) {
        let mut new: Vec<(NodeId, IssuerKey, u32, u32, [u8; 64])> = Vec::new();
        for c in certs {
            let (Ok(sig), Ok(e)) = (
                <[u8; 64]>::try_from(c.signature.as_slice()),
                u32::try_from(c.epoch),
            ) else {
                continue;
            };
            if self.position(&c.node).is_ok() || self.by_serial(&c.issuer, c.serial).is_some() {
                continue;
            }
            new.push((c.node, c.issuer, c.serial, e, sig));
        }
        new.sort_by_key(|a| a.0);
        new.dedup_by(|a, b| a.0 == b.0);
        // Issuers seen for the first time: a new sorted table and every slot's index remapped.
        let mut issuers = self.issuers.clone();
        issuers.extend(new.iter().map(|n| n.1));
        issuers.sort_unstable();
        issuers.dedup();
        if issuers.len() > MAX_ISSUERS {
            issuers.retain(|k| self.issuers.binary_search(k).is_ok());
        }
        new.retain(|n| issuers.binary_search(&n.1).is_ok());
        if issuers != self.issuers {
            let remap: Vec<u16> = self
                .issuers
                .iter()
                // Every old issuer is in the new table (it only grew); at most MAX_ISSUERS.
                .map(|k| issuers.binary_search(k).unwrap_or(0) as u16)
                .collect();
            for s in &mut self.slots {
                s.issuer = remap[usize::from(s.issuer)];
            }
            self.issuers = issuers;
        }
        new.truncate(MAX_MEMBERSHIP_ENTRIES.saturating_sub(self.slots.len()));
        if new.is_empty() {
            return;
        }
        // Merge from the back: both are sorted by id and no id is in both.
        let old = self.slots.len();
        let filler = Slot {
            node: NodeId([0; 32]),
            epoch: 0,
            serial: 0,
            issuer: 0,
        };
        self.slots.resize(old + new.len(), filler);
        self.signatures.resize(old + new.len(), [0; 64]);
        let mut i = old;
        let mut w = self.slots.len();
        while let Some((node, issuer, serial, epoch, sig)) = new.pop() {
            while i > 0 && self.slots[i - 1].node > node {
                i -= 1;
                w -= 1;
                self.slots[w] = self.slots[i];
                self.signatures[w] = self.signatures[i];
            }
            w -= 1;
            self.slots[w] = Slot {
                node,
                epoch,
                serial,
                // Kept above only when its issuer is in the table.
                issuer: self.issuers.binary_search(&issuer).unwrap_or(0) as u16,
            };
            self.signatures[w] = sig;
        }
        self.by_serial.clear();
        self.by_serial.extend(0..self.slots.len() as u32);
        let slots = &self.slots;
        self.by_serial.sort_unstable_by_key(|i| {
            let s = &slots[*i as usize];
            (s.issuer, s.serial)
        });
    }
    /// A digest of the whole checkpoint, which names it.
    pub fn digest(&self) -> Digest {
        let mut parts: Vec<u8> = Vec::with_capacity(self.slots.len() * 8);
        for s in &self.slots {
            if let Some(c) = self.certificate(&s.node) {
                parts.extend_from_slice(&c.fingerprint().to_be_bytes());
            }
        }
        Digest::of(
            "grove/membership-checkpoint",
            &[&self.epoch.to_be_bytes(), &parts],
        )
    }
}

/// Reorders `slots` and `signatures` in place so that entry `k` becomes the one at
/// `order[k]` (`order` lists distinct indices; entries it does not list end up past
/// `order.len()`). Follows each cycle of the permutation once; `order` is used up.
fn permute(slots: &mut [Slot], signatures: &mut [[u8; 64]], order: &mut Vec<u32>) {
    let kept = order.len();
    // Complete the partial permutation with the unlisted indices, in any order.
    let mut listed = vec![false; slots.len()];
    for i in order.iter() {
        listed[*i as usize] = true;
    }
    order.extend((0..slots.len() as u32).filter(|i| !listed[*i as usize]));
    drop(listed);
    for start in 0..order.len() {
        if order[start] as usize == start {
            continue;
        }
        let (slot, sig) = (slots[start], signatures[start]);
        let mut k = start;
        loop {
            let src = order[k] as usize;
            order[k] = k as u32;
            if src == start {
                slots[k] = slot;
                signatures[k] = sig;
                break;
            }
            slots[k] = slots[src];
            signatures[k] = signatures[src];
            k = src;
        }
    }
    order.truncate(kept);
}

/// What travels between membership peers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberMessage {
    /// Certificates (new ones, or the contents of buckets that differ).
    Push { entries: Vec<Certificate> },
    /// Anti-entropy opening: count and digest of the certificates of epochs `>= from_epoch`.
    Summary {
        from_epoch: u64,
        count: u32,
        digest: u64,
    },
    /// The per-bucket digests of the same window, when the summaries differ.
    Buckets { from_epoch: u64, digests: Vec<u64> },
    /// Asks for the certificates of the listed buckets of the window.
    Pull { from_epoch: u64, buckets: Vec<u16> },
}

/// What the machine asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberOutput {
    Send {
        to: NodeId,
        message: MemberMessage,
    },
    /// A certificate was admitted into this node's view (the driver may learn its address).
    Admitted {
        node: NodeId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("message carries {count} entries (limit {limit})")]
    TooManyEntries { count: usize, limit: usize },
    #[error("message carries {count} bucket digests (want {want})")]
    BadBuckets { count: usize, want: usize },
    #[error("anti-entropy window from epoch {from_epoch} is outside the recent epochs")]
    WindowOutOfRange { from_epoch: u64 },
    #[error("membership view is full ({limit} entries)")]
    ViewFull { limit: usize },
    /// Anti-entropy (summary, bucket digests, pull) from a peer this view does not admit.
    #[error("anti-entropy from {from:?}, which this view does not admit")]
    NotAdmitted { from: NodeId },
    /// A push from a peer this view does not admit that is not exactly its own certificate.
    #[error("{from:?} is not admitted here and may push only its own certificate")]
    NotOwnCertificate { from: NodeId },
    /// A newcomer's push whose certificate fails a check that needs no signature (issuer not
    /// named, serial over its quota, epoch ahead): refused before any signature is checked,
    /// and it uses no push budget ([`Membership::screen_newcomer`]).
    #[error("{from:?} pushed a certificate this view refuses: {reason}")]
    RefusedCertificate {
        from: NodeId,
        reason: AdmissionError,
    },
    /// A newcomer's push over the push budget: its second in one window, or over its issuer's
    /// or the node's budget for the window ([`Membership::screen_newcomer`]). Its newcomer
    /// pushes again.
    #[error("push from {from:?}, not admitted here, over the newcomers' push budget")]
    PushBudget { from: NodeId },
    /// An anti-entropy message of a kind this node answered for the same peer less than
    /// [`Membership::answer_interval`] ago (or too many peers answered within it).
    #[error("anti-entropy from {from:?} sooner than one answer per interval")]
    TooSoon { from: NodeId },
}

/// Counters a driver can print or the simulator can sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MembershipStats {
    pub refused_certificates: u64,
    pub equivocations: u64,
    pub dropped_sends: u64,
    /// Anti-entropy messages from peers not admitted here, and pushes from such peers that
    /// were not exactly their own certificate ([`MembershipError::NotAdmitted`],
    /// [`MembershipError::NotOwnCertificate`]).
    pub refused_unadmitted: u64,
    /// Anti-entropy messages over a peer's rate ([`MembershipError::TooSoon`]).
    pub refused_too_soon: u64,
    /// Anti-entropy answers cut to one push of [`MAX_MEMBERSHIP_ENTRIES_PER_MESSAGE`]
    /// certificates.
    pub answers_truncated: u64,
    /// Newcomers' pushes over the push budget ([`MembershipError::PushBudget`]).
    pub refused_over_budget: u64,
}

/// Largest number of peers whose last anti-entropy answers a node remembers at once. Entries
/// older than the answer interval are forgotten at every timer; while it is full of recent
/// ones, anti-entropy from other peers is refused ([`MembershipError::TooSoon`]). An honest
/// node hears from about one peer per period (each of the peers whose routing set holds it
/// opens one round per period with one of its routing peers).
pub const MAX_ANSWERED_PEERS: usize = 4096;

/// Largest number of pushes from peers this view does not admit (newcomers pushing their own
/// certificates) that one issuer's certificates may bring in for a signature check per
/// window ([`Membership::screen_newcomer`]; the window is the anti-entropy period, 10 s). A
/// push is charged only once its certificate passed every check that needs no signature
/// (its sender's own, issuer named, serial within the quota, epoch not ahead): a flood of
/// pushes of made-up identities, strangers' certificates or over-quota serials costs nothing
/// and blocks no one; a forger must name a configured issuer and a serial within its quota,
/// and then holds back only that issuer's newcomers, at this node, for the window (they push
/// again). Honest newcomers push to about 16 routing peers each, so 64 per issuer and 10 s is
/// several joins per second of one issuer at every node.
pub const MAX_NEWCOMER_PUSHES_PER_ISSUER: usize = 64;

/// Largest number of newcomers' pushes one node checks per window, all issuers together: a
/// bound on the signature checks a flood of forgeries naming many issuers costs (1,024 per
/// 10 s, about 0.1 s of CPU at two checks of 50 us; sixteen issuers' budgets).
pub const MAX_NEWCOMER_PUSHES_PER_WINDOW: usize = 1024;

/// Largest number of times a node pushes its own certificate to its routing set while no
/// admitted peer has shown that it holds it ([`Membership::own_confirmed`]): the first push
/// and the re-pushes, [`Membership::own_push_delay`] apart. About 12 minutes in all at the
/// defaults, then the node stops (its next announcement starts again).
pub const MAX_OWN_PUSHES: u32 = 12;

/// The anti-entropy message kinds that make a node answer, one rate slot each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AnswerKind {
    Summary = 0,
    Buckets = 1,
    Pull = 2,
    /// The summary a node sends a peer that pushed its own certificate, which this node now
    /// holds: the newcomer's sign that an admitted peer has it ([`Membership::own_confirmed`]).
    Welcome = 3,
}

/// Answer kinds, one rate slot each.
const ANSWER_KINDS: usize = 4;

/// How many distinct admitted peers, each one this node pushed its own certificate to, must
/// show that they hold it before the node stops pushing it ([`Membership::own_confirmed`]):
/// with one, a single lying peer of the routing set (it answers "I hold it" and drops it)
/// stops the re-push and keeps the newcomer unknown; with two, both confirmers must lie, and
/// the routing set is drawn at random points of the ring by the newcomer itself.
pub const OWN_CONFIRMATIONS: usize = 2;

/// The newcomers' pushes checked in the current window ([`Membership::screen_newcomer`]).
#[derive(Clone, Debug, Default)]
struct NewcomerBudget {
    /// When the window began.
    since: Micros,
    per_issuer: BTreeMap<IssuerKey, usize>,
    total: usize,
    /// The peers whose push was screened in this window (at most
    /// [`MAX_NEWCOMER_PUSHES_PER_WINDOW`]), and whether it was handled since
    /// ([`Membership::handle_message`] does not charge a push its driver screened first).
    peers: BTreeMap<NodeId, bool>,
}

/// This node's own certificate while it pushes it ([`Membership::announce`]).
#[derive(Clone, Debug)]
struct OwnPush {
    cert: Certificate,
    /// Pushes to the routing set so far.
    pushes: u32,
    /// When the next push is due (if not confirmed by then).
    next: Micros,
    /// The peers this node pushed the certificate to (only they can confirm it): at most
    /// `MAX_ROUTING_PEERS` per push, `MAX_OWN_PUSHES` pushes.
    pushed_to: BTreeSet<NodeId>,
    /// The admitted peers among them that showed they hold it.
    confirmers: BTreeSet<NodeId>,
}

#[derive(Clone, Debug)]
struct Recent {
    cert: Arc<Certificate>,
    seen_at: Micros,
}

/// Certificates whose signature already verified, shared by the machines of one process (the
/// simulator runs one per node). An entry is a hash of the exact certificate bytes a verify
/// accepted, so skipping the curve arithmetic for them changes no decision. Nodes do not use
/// it. Cleared when it reaches `MAX_MEMBERSHIP_ENTRIES`.
#[derive(Debug, Default)]
pub struct VerifiedCertificates(std::sync::Mutex<BTreeSet<[u8; 32]>>);

impl VerifiedCertificates {
    fn key(cert: &Certificate) -> [u8; 32] {
        hash_parts(
            "grove/verified-certificate",
            &[
                &cert.node.0,
                &cert.issuer.0,
                &cert.serial.to_be_bytes(),
                &cert.epoch.to_be_bytes(),
                &cert.signature,
            ],
        )
    }
    fn contains(&self, cert: &Certificate) -> bool {
        // A poisoned lock only means another thread panicked; the set is still sound.
        let set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.contains(&Self::key(cert))
    }
    fn insert(&self, cert: &Certificate) {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if set.len() >= MAX_MEMBERSHIP_ENTRIES {
            set.clear();
        }
        set.insert(Self::key(cert));
    }
}

/// One node's membership view and gossip.
pub struct Membership {
    me: NodeId,
    policy: AdmissionPolicy,
    config: MembershipConfig,
    checkpoint: Arc<Checkpoint>,
    recent: BTreeMap<NodeId, Recent>,
    by_serial: BTreeMap<(IssuerKey, u32), NodeId>,
    /// Serials an issuer used twice, with both certificates (the evidence).
    equivocated: BTreeMap<(IssuerKey, u32), Vec<Certificate>>,
    routing: Vec<NodeId>,
    routing_epoch: Option<u64>,
    rng: ChaCha20Rng,
    outputs: VecDeque<MemberOutput>,
    next_anti_entropy: Micros,
    verified: Option<Arc<VerifiedCertificates>>,
    stats: MembershipStats,
    /// Both certificates of the last equivocation found, to forward.
    evidence: Vec<Certificate>,
    /// Evidence of equivocations already known, for the sender of a certificate that uses one.
    reply_evidence: Vec<Certificate>,
    /// When this node last answered each peer's anti-entropy messages, by kind
    /// ([`Membership::answer_interval`]); at most [`MAX_ANSWERED_PEERS`] peers.
    answered: BTreeMap<NodeId, [Option<Micros>; ANSWER_KINDS]>,
    /// This node's own certificate, pushed again until admitted peers show they hold it.
    own: Option<OwnPush>,
    /// What newcomers' pushes may cost this node in the current window.
    newcomers: NewcomerBudget,
}

impl Membership {
    /// A node's machine, starting from a checkpoint. `seed` drives its choices of peers (the
    /// node passes OS randomness, the simulator its seed); `now` places its first timer.
    pub fn new(
        me: NodeId,
        policy: AdmissionPolicy,
        mut config: MembershipConfig,
        checkpoint: Arc<Checkpoint>,
        seed: [u8; 32],
        now: Micros,
    ) -> Membership {
        config.routing_peers = config.routing_peers.min(MAX_ROUTING_PEERS);
        config.gossip_fanout = config.gossip_fanout.min(config.routing_peers);
        config.anti_entropy_micros = config.anti_entropy_micros.max(1);
        config.epoch_micros = config.epoch_micros.max(1);
        let mut rng = ChaCha20Rng::from_seed(seed);
        // Spread the nodes' anti-entropy rounds over one period.
        let phase = rng.next_u64() % config.anti_entropy_micros;
        Membership {
            me,
            policy,
            next_anti_entropy: now.plus(phase),
            config,
            checkpoint,
            recent: BTreeMap::new(),
            by_serial: BTreeMap::new(),
            equivocated: BTreeMap::new(),
            routing: Vec::new(),
            routing_epoch: None,
            rng,
            outputs: VecDeque::new(),
            verified: None,
            stats: MembershipStats::default(),
            evidence: Vec::new(),
            reply_evidence: Vec::new(),
            answered: BTreeMap::new(),
            own: None,
            newcomers: NewcomerBudget::default(),
        }
    }

    /// Shares a set of verified certificates with the other machines of this process.
    pub fn share_verified(&mut self, verified: Arc<VerifiedCertificates>) {
        self.verified = Some(verified);
    }

    pub fn me(&self) -> NodeId {
        self.me
    }
    pub fn policy(&self) -> &AdmissionPolicy {
        &self.policy
    }
    pub fn stats(&self) -> MembershipStats {
        self.stats
    }
    pub fn routing_peers(&self) -> &[NodeId] {
        &self.routing
    }
    /// The routing set at `now`: drawn again when the epoch turned or the set is short of
    /// `routing_peers` (a driver pushes its own announcement to it).
    pub fn routing_at(&mut self, now: Micros) -> &[NodeId] {
        self.ensure_routing(now);
        &self.routing
    }
    pub fn epoch_of(&self, time: Micros) -> u64 {
        time.0 / self.config.epoch_micros
    }
    /// Number of admitted identities this node knows (its size estimate of the network).
    pub fn len(&self) -> usize {
        self.checkpoint.len() + self.recent.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Certificates learnt since the checkpoint (what a node stores beyond it).
    pub fn recent_len(&self) -> usize {
        self.recent.len()
    }

    /// The identity `node` as admitted here, unless its serial was equivocated.
    fn member(&self, node: &NodeId) -> Option<Member> {
        let m = match self.recent.get(node) {
            Some(r) => Member::of(&r.cert),
            None => self.checkpoint.get(node)?,
        };
        if self.equivocated.contains_key(&(m.issuer, m.serial)) {
            return None;
        }
        Some(m)
    }

    /// The certificate under which `node` is admitted, if it is (with its signature).
    pub fn certificate(&self, node: &NodeId) -> Option<Certificate> {
        self.member(node)?;
        match self.recent.get(node) {
            Some(r) => Some((*r.cert).clone()),
            None => self.checkpoint.certificate(node),
        }
    }

    /// Whether `node` is admitted and old enough to be selected at `epoch`.
    pub fn is_eligible(&self, node: &NodeId, epoch: u64) -> bool {
        self.member(node)
            .is_some_and(|m| self.policy.eligible_from(m.epoch, epoch))
    }

    /// When this node first learnt `node`'s certificate (checkpoint entries: time zero).
    pub fn known_since(&self, node: &NodeId) -> Option<Micros> {
        self.member(node)?;
        Some(self.recent.get(node).map_or(Micros::ZERO, |r| r.seen_at))
    }

    /// Heap bytes of this node's own part of the view (the checkpoint is shared and counted
    /// by `Checkpoint::heap_bytes`): an estimate from the recent entries' sizes.
    pub fn recent_heap_bytes(&self) -> usize {
        // Per recent entry: the shared certificate with its signature, its map entry and its
        // serial index entry, with about 16 bytes of B-tree overhead per map entry.
        let cert = std::mem::size_of::<Certificate>() + 64 + 16;
        let entry = std::mem::size_of::<NodeId>() + std::mem::size_of::<Recent>() + 16;
        let serial = std::mem::size_of::<(IssuerKey, u32)>() + std::mem::size_of::<NodeId>() + 16;
        // The anti-entropy answer times of the peers heard within the last interval.
        let answered = std::mem::size_of::<NodeId>()
            + std::mem::size_of::<[Option<Micros>; ANSWER_KINDS]>()
            + 16;
        self.recent.len() * (cert + entry + serial) + self.answered.len() * answered
    }

    /// Every admitted identity, in id order (checkpoint and recent merged).
    pub fn admitted(&self) -> impl Iterator<Item = Member> + '_ {
        Merged::new(
            self.checkpoint.range(0, self.checkpoint.len()),
            self.recent.range(..),
        )
        .filter(move |c| !self.equivocated.contains_key(&(c.issuer, c.serial)))
    }

    /// Admitted identities from `start` on, wrapping around, in id order.
    pub(super) fn ring_from(&self, start: NodeId) -> impl Iterator<Item = Member> + '_ {
        let at = self
            .checkpoint
            .position(&start)
            .unwrap_or_else(|insert_at| insert_at);
        let tail = Merged::new(
            self.checkpoint.range(at, self.checkpoint.len()),
            self.recent.range(start..),
        );
        let head = Merged::new(self.checkpoint.range(0, at), self.recent.range(..start));
        tail.chain(head)
            .filter(move |c| !self.equivocated.contains_key(&(c.issuer, c.serial)))
    }

    /// Admits this node's own certificate and pushes it to every routing peer; then pushes it
    /// again, [`Membership::own_push_delay`] apart and at most [`MAX_OWN_PUSHES`] times in
    /// all, until an admitted peer shows that it holds it ([`Membership::own_confirmed`]): a
    /// newcomer whose first push was lost everywhere is otherwise known to no one (its own
    /// anti-entropy is refused while no peer admits it). A routing set still empty (no peer
    /// known yet) delays the first push to the first call (a timer, or the daemon's retry) that has one.
    /// (A certificate of another node is admitted and pushed once, as before.)
    pub fn announce(&mut self, cert: Certificate, now: Micros) -> Result<(), AdmissionError> {
        self.ensure_routing(now);
        let fresh = self.accept(cert.clone(), now)?;
        self.reply_evidence.clear();
        if cert.node == self.me {
            if fresh || self.own.as_ref().is_none_or(|o| o.cert != cert) {
                self.own = Some(OwnPush {
                    cert,
                    pushes: 0,
                    next: now,
                    pushed_to: BTreeSet::new(),
                    confirmers: BTreeSet::new(),
                });
            }
            self.push_own_if_due(now);
            return Ok(());
        }
        if fresh {
            for to in self.routing.clone() {
                self.send(
                    to,
                    MemberMessage::Push {
                        entries: vec![cert.clone()],
                    },
                );
            }
        }
        Ok(())
    }

    /// Admits a certificate this node's driver learnt from elsewhere than gossip (a directory
    /// pull it asked for, a fetched snapshot, its store), after checking it like any other:
    /// not forwarded, not charged to the push budget (the driver asked for it). True if it
    /// was new and admitted.
    pub fn learn(&mut self, cert: Certificate, now: Micros) -> bool {
        self.ensure_routing(now);
        let fresh = matches!(self.accept(cert, now), Ok(true));
        self.evidence.clear();
        self.reply_evidence.clear();
        fresh
    }

    /// Whether [`OWN_CONFIRMATIONS`] distinct admitted peers, each one this node pushed its
    /// own certificate to, have shown that they hold it: each sent this node anti-entropy (only
    /// admitted peers are answered, and a node opens rounds only with peers it admits; a peer
    /// that admits a pushed own certificate answers with a summary) or a push that carries the
    /// certificate. Fewer are asked for when this node knows fewer other admitted peers (a
    /// network of two); the count is taken again as the view grows, so a peer that was alone
    /// in a newcomer's first view cannot confirm it by itself for good.
    pub fn own_confirmed(&self) -> bool {
        let needed = OWN_CONFIRMATIONS.min(self.len().saturating_sub(1)).max(1);
        self.own
            .as_ref()
            .is_some_and(|o| o.confirmers.len() >= needed)
    }

    /// Whether this node still pushes its own certificate (not confirmed, pushes left).
    fn own_pending(&self) -> bool {
        self.own
            .as_ref()
            .is_some_and(|o| o.pushes < MAX_OWN_PUSHES && !self.own_confirmed())
    }

    /// How many times this node pushed its own certificate to its routing set.
    pub fn own_pushes(&self) -> u32 {
        self.own.as_ref().map_or(0, |o| o.pushes)
    }

    /// The wait after the `pushes`-th push of this node's own certificate before the next: the
    /// anti-entropy period, doubled with each push, at most 8 periods (10, 20, 40, 80, 80 ...
    /// seconds at the defaults).
    pub fn own_push_delay(&self, pushes: u32) -> u64 {
        let doublings = pushes.saturating_sub(1).min(3);
        self.config
            .anti_entropy_micros
            .saturating_mul(1 << doublings)
    }

    /// Pushes this node's own certificate to its routing set if a push is due.
    fn push_own_if_due(&mut self, now: Micros) {
        let Some(own) = &self.own else {
            return;
        };
        if !self.own_pending() || now < own.next {
            return;
        }
        if self.routing.is_empty() {
            // Nobody to push to yet: the push stays due, so the first call that finds a
            // routing peer (the daemon retries at every tick until it has pushed) makes it.
            // Moving it one period later delayed a newcomer's first push by up to 10 s after
            // its first directory pull, long enough for it to become known by that pull alone.
            return;
        }
        let cert = own.cert.clone();
        let pushes = own.pushes + 1;
        let next = now.plus(self.own_push_delay(pushes));
        for to in self.routing.clone() {
            self.send(
                to,
                MemberMessage::Push {
                    entries: vec![cert.clone()],
                },
            );
        }
        let routing = self.routing.clone();
        if let Some(own) = &mut self.own {
            own.pushes = pushes;
            own.next = next;
            own.pushed_to.extend(routing);
        }
    }

    /// Notes what `message` from `from` (admitted here) says about this node's own
    /// certificate: anti-entropy, or a push that carries it, means `from` holds it. Counts
    /// only from a peer this node pushed it to ([`Membership::own_confirmed`]).
    fn note_confirmation(&mut self, from: NodeId, message: &MemberMessage) {
        let Some(own) = &mut self.own else {
            return;
        };
        if !own.pushed_to.contains(&from) {
            return;
        }
        let holds = match message {
            MemberMessage::Push { entries } => entries.contains(&own.cert),
            MemberMessage::Summary { .. }
            | MemberMessage::Buckets { .. }
            | MemberMessage::Pull { .. } => true,
        };
        if holds {
            own.confirmers.insert(from);
        }
    }

    /// Tells a peer that pushed its own certificate, which this node now holds, that it does:
    /// a summary of this node's window (an anti-entropy opening, so the newcomer can also
    /// repair its window), at most once per [`Membership::answer_interval`] per peer.
    fn welcome(&mut self, to: NodeId, now: Micros) {
        if to == self.me || !self.take_slot(to, AnswerKind::Welcome, now) {
            return;
        }
        self.send_summary(to, now);
    }

    /// Sends `to` the count and digest of this node's anti-entropy window at `now` (an
    /// anti-entropy opening, or a welcome).
    fn send_summary(&mut self, to: NodeId, now: Micros) {
        let from_epoch = self.window_start(now);
        let (count, digest) = self.summary(from_epoch);
        self.send(
            to,
            MemberMessage::Summary {
                from_epoch,
                count,
                digest,
            },
        );
    }

    /// One message from a peer. Remote input: typed errors, never a panic.
    ///
    /// Who may send what (`from` is the sender's authenticated identity):
    /// - anti-entropy (`Summary`, `Buckets`, `Pull`) only from a peer this view admits, and
    ///   each kind answered at most once per [`Membership::answer_interval`] per peer: a
    ///   summary of a few bytes asks for 64 bucket digests and a pull for every certificate of
    ///   the window (a thousand times its size and more), so an unadmitted or fast asker is
    ///   refused ([`MembershipError::NotAdmitted`], [`MembershipError::TooSoon`]) and is sent
    ///   nothing. An honest peer opens one round per `anti_entropy_micros` with one of its
    ///   routing peers, and a round makes each side answer each kind at most once;
    /// - a push from any admitted peer (forwards, repairs, evidence), but from a peer not
    ///   admitted here only its own certificate, alone ([`MembershipError::NotOwnCertificate`]):
    ///   that is how a new node joins, and it is all a newcomer has to say.
    pub fn handle_message(
        &mut self,
        from: NodeId,
        message: MemberMessage,
        now: Micros,
    ) -> Result<(), MembershipError> {
        self.ensure_routing(now);
        let admitted = self.member(&from).is_some();
        if admitted && from != self.me {
            self.note_confirmation(from, &message);
        }
        match message {
            MemberMessage::Push { entries } => {
                let own_alone = entries.len() == 1 && entries[0].node == from;
                if !admitted && !own_alone {
                    self.stats.refused_unadmitted += 1;
                    return Err(MembershipError::NotOwnCertificate { from });
                }
                if !admitted {
                    self.charge_newcomer(from, &entries[0], now)?;
                }
                self.on_push(from, entries, now)?;
                if own_alone && self.member(&from).is_some() {
                    self.welcome(from, now);
                }
                Ok(())
            }
            _ if !admitted => {
                self.stats.refused_unadmitted += 1;
                Err(MembershipError::NotAdmitted { from })
            }
            MemberMessage::Summary {
                from_epoch,
                count,
                digest,
            } => {
                self.check_window(from_epoch, now)?;
                self.may_answer(from, AnswerKind::Summary, now)?;
                let (my_count, my_digest) = self.summary(from_epoch);
                if (my_count, my_digest) != (count, digest) {
                    let digests = self.bucket_digests(from_epoch);
                    self.send(
                        from,
                        MemberMessage::Buckets {
                            from_epoch,
                            digests,
                        },
                    );
                }
                Ok(())
            }
            MemberMessage::Buckets {
                from_epoch,
                digests,
            } => {
                self.check_window(from_epoch, now)?;
                if digests.len() != MEMBERSHIP_BUCKETS {
                    return Err(MembershipError::BadBuckets {
                        count: digests.len(),
                        want: MEMBERSHIP_BUCKETS,
                    });
                }
                self.may_answer(from, AnswerKind::Buckets, now)?;
                let mine = self.bucket_digests(from_epoch);
                let differing: Vec<u16> = (0..MEMBERSHIP_BUCKETS)
                    .filter(|b| mine[*b] != digests[*b])
                    .map(|b| b as u16)
                    .collect();
                if differing.is_empty() {
                    return Ok(());
                }
                self.push_buckets(from, from_epoch, &differing);
                self.send(
                    from,
                    MemberMessage::Pull {
                        from_epoch,
                        buckets: differing,
                    },
                );
                Ok(())
            }
            MemberMessage::Pull {
                from_epoch,
                buckets,
            } => {
                self.check_window(from_epoch, now)?;
                if buckets.len() > MEMBERSHIP_BUCKETS
                    || buckets
                        .iter()
                        .any(|b| usize::from(*b) >= MEMBERSHIP_BUCKETS)
                {
                    return Err(MembershipError::BadBuckets {
                        count: buckets.len(),
                        want: MEMBERSHIP_BUCKETS,
                    });
                }
                self.may_answer(from, AnswerKind::Pull, now)?;
                self.push_buckets(from, from_epoch, &buckets);
                Ok(())
            }
        }
    }

    /// Whether this node checks the push of `cert` by `from`, a peer it does not admit, at
    /// `now` (and if so, charges it to the push budget). A driver that checks signatures of its
    /// own before it hands a push to [`Membership::handle_message`] (the daemon verifies the
    /// announcement that carries the certificate) calls this first, and `handle_message` then
    /// does not charge the same push again; a driver that does not (the simulator) leaves it to
    /// `handle_message`. In order, cheapest first, nothing signed checked:
    /// - the certificate must be `from`'s own ([`MembershipError::NotOwnCertificate`]);
    /// - it must pass every check that needs no signature: issuer named, serial within its
    ///   quota, epoch not ahead ([`MembershipError::RefusedCertificate`]); such a refusal uses
    ///   no budget, so a flood of them holds back no one;
    /// - `from` gets one push per window (the anti-entropy period), and the pushes of one
    ///   issuer's certificates at most [`MAX_NEWCOMER_PUSHES_PER_ISSUER`], all of them at most
    ///   [`MAX_NEWCOMER_PUSHES_PER_WINDOW`] ([`MembershipError::PushBudget`]); a refused
    ///   push leaves no entry behind.
    pub fn screen_newcomer(
        &mut self,
        from: NodeId,
        cert: &Certificate,
        now: Micros,
    ) -> Result<(), MembershipError> {
        if cert.node != from {
            self.stats.refused_unadmitted += 1;
            return Err(MembershipError::NotOwnCertificate { from });
        }
        let window = self.config.anti_entropy_micros;
        if now.0.saturating_sub(self.newcomers.since.0) >= window || now < self.newcomers.since {
            self.newcomers = NewcomerBudget {
                since: now,
                ..NewcomerBudget::default()
            };
        }
        if self.newcomers.peers.contains_key(&from) {
            self.stats.refused_over_budget += 1;
            return Err(MembershipError::PushBudget { from });
        }
        if let Err(reason) = self
            .policy
            .check_without_signature(cert, self.epoch_of(now))
        {
            self.stats.refused_certificates += 1;
            return Err(MembershipError::RefusedCertificate { from, reason });
        }
        let issuer = self.newcomers.per_issuer.get(&cert.issuer).copied();
        if issuer.unwrap_or(0) >= MAX_NEWCOMER_PUSHES_PER_ISSUER
            || self.newcomers.total >= MAX_NEWCOMER_PUSHES_PER_WINDOW
        {
            self.stats.refused_over_budget += 1;
            return Err(MembershipError::PushBudget { from });
        }
        *self.newcomers.per_issuer.entry(cert.issuer).or_default() += 1;
        self.newcomers.total += 1;
        self.newcomers.peers.insert(from, false);
        Ok(())
    }

    /// Charges a push of `from`, not admitted here, to the push budget unless its driver
    /// screened it in this window and it was not handled yet.
    fn charge_newcomer(
        &mut self,
        from: NodeId,
        cert: &Certificate,
        now: Micros,
    ) -> Result<(), MembershipError> {
        let in_window = now.0.saturating_sub(self.newcomers.since.0)
            < self.config.anti_entropy_micros
            && now >= self.newcomers.since;
        let screened = in_window && self.newcomers.peers.get(&from) == Some(&false);
        if !screened {
            self.screen_newcomer(from, cert, now)?;
        }
        self.newcomers.peers.insert(from, true);
        Ok(())
    }

    /// Shortest time between two answers to one peer's anti-entropy messages of one kind:
    /// half the anti-entropy period (5 s by default), so that an honest peer, which opens a
    /// round at most once per period, is always answered, with room for delays.
    pub fn answer_interval(&self) -> u64 {
        (self.config.anti_entropy_micros / 2).max(1)
    }

    /// Whether to answer `from`'s anti-entropy message of `kind` at `now` (and if so, takes
    /// its slot).
    fn may_answer(
        &mut self,
        from: NodeId,
        kind: AnswerKind,
        now: Micros,
    ) -> Result<(), MembershipError> {
        if self.take_slot(from, kind, now) {
            Ok(())
        } else {
            self.stats.refused_too_soon += 1;
            Err(MembershipError::TooSoon { from })
        }
    }

    /// Takes `from`'s slot of `kind` at `now`, unless it was taken less than an interval ago
    /// (or [`MAX_ANSWERED_PEERS`] peers have recent slots).
    fn take_slot(&mut self, from: NodeId, kind: AnswerKind, now: Micros) -> bool {
        let interval = self.answer_interval();
        let recent = |t: &Option<Micros>| t.is_some_and(|t| now.0.saturating_sub(t.0) < interval);
        if let Some(slots) = self.answered.get(&from) {
            if recent(&slots[kind as usize]) {
                return false;
            }
        } else if self.answered.len() >= MAX_ANSWERED_PEERS {
            self.answered.retain(|_, slots| slots.iter().any(recent));
            if self.answered.len() >= MAX_ANSWERED_PEERS {
                return false;
            }
        }
        self.answered.entry(from).or_default()[kind as usize] = Some(now);
        true
    }

    /// The next time [`Membership::handle_timeout`] wants to run.
    pub fn poll_timeout(&self) -> Micros {
        match &self.own {
            Some(own) if self.own_pending() => self.next_anti_entropy.min(own.next),
            _ => self.next_anti_entropy,
        }
    }

    /// Pushes this node's own certificate again when due, and runs an anti-entropy round
    /// when it is due (and compacts the recent entries).
    pub fn handle_timeout(&mut self, now: Micros) {
        self.ensure_routing(now);
        self.push_own_if_due(now);
        if now < self.next_anti_entropy {
            return;
        }
        self.compact(now);
        let interval = self.answer_interval();
        self.answered.retain(|_, slots| {
            slots
                .iter()
                .any(|t| t.is_some_and(|t| now.0.saturating_sub(t.0) < interval))
        });
        self.next_anti_entropy = now.plus(self.config.anti_entropy_micros);
        if self.routing.is_empty() {
            return;
        }
        let peer = self.routing[(self.rng.next_u64() % self.routing.len() as u64) as usize];
        self.send_summary(peer, now);
    }

    /// Whether an output waits for [`poll_output`](Self::poll_output).
    pub fn has_output(&self) -> bool {
        !self.outputs.is_empty()
    }

    pub fn poll_output(&mut self) -> Option<MemberOutput> {
        self.outputs.pop_front()
    }

    fn on_push(
        &mut self,
        from: NodeId,
        entries: Vec<Certificate>,
        now: Micros,
    ) -> Result<(), MembershipError> {
        if entries.len() > MAX_MEMBERSHIP_ENTRIES_PER_MESSAGE {
            return Err(MembershipError::TooManyEntries {
                count: entries.len(),
                limit: MAX_MEMBERSHIP_ENTRIES_PER_MESSAGE,
            });
        }
        let mut fresh = Vec::new();
        let mut evidence = Vec::new();
        let mut per_serial: BTreeMap<(IssuerKey, u32), usize> = BTreeMap::new();
        for c in &entries {
            *per_serial.entry((c.issuer, c.serial)).or_default() += 1;
        }
        for cert in entries {
            let key = (cert.issuer, cert.serial);
            if let Some(pair) = self.equivocated.get(&key) {
                // Known here. A sender that pushed one certificate of the pair does not know:
                // it gets the evidence back (a sender that pushed both knows; no echo).
                if per_serial.get(&key) == Some(&1) {
                    self.reply_evidence.extend(pair.iter().cloned());
                }
                continue;
            }
            match self.accept(cert.clone(), now) {
                Ok(true) => fresh.push(cert),
                Ok(false) => {}
                Err(AdmissionError::Equivocation { .. }) => {
                    // Forward the evidence (both certificates), to the sender too: every node
                    // that admitted either one learns that neither counts.
                    evidence.append(&mut self.evidence);
                }
                Err(_) => {}
            }
        }
        if self.len() >= MAX_MEMBERSHIP_ENTRIES {
            return Err(MembershipError::ViewFull {
                limit: MAX_MEMBERSHIP_ENTRIES,
            });
        }
        let mut reply = std::mem::take(&mut self.reply_evidence);
        reply.extend(evidence.iter().cloned());
        if !reply.is_empty() {
            reply.truncate(MAX_MEMBERSHIP_ENTRIES_PER_MESSAGE);
            self.send(from, MemberMessage::Push { entries: reply });
        }
        if !evidence.is_empty() {
            evidence.truncate(MAX_MEMBERSHIP_ENTRIES_PER_MESSAGE);
            fresh.extend(evidence);
            fresh.truncate(MAX_MEMBERSHIP_ENTRIES_PER_MESSAGE);
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let candidates: Vec<NodeId> = self
            .routing
            .iter()
            .copied()
            .filter(|p| *p != from)
            .collect();
        for to in self.sample(&candidates, self.config.gossip_fanout) {
            self.send(
                to,
                MemberMessage::Push {
                    entries: fresh.clone(),
                },
            );
        }
        Ok(())
    }

    /// Admits a certificate: `Ok(true)` when it is new to this node.
    fn accept(&mut self, cert: Certificate, now: Micros) -> Result<bool, AdmissionError> {
        let key = (cert.issuer, cert.serial);
        if self.equivocated.contains_key(&key) {
            return Ok(false);
        }
        if self.member(&cert.node).is_some() {
            // One certificate per identity: the first one learnt stays.
            return Ok(false);
        }
        let shared_ok = self.verified.as_ref().is_some_and(|v| v.contains(&cert));
        let checked = if shared_ok {
            self.policy
                .check_without_signature(&cert, self.epoch_of(now))
        } else {
            self.policy.check(&cert, self.epoch_of(now))
        };
        if let Err(e) = checked {
            self.stats.refused_certificates += 1;
            return Err(e);
        }
        if !shared_ok {
            if let Some(v) = &self.verified {
                v.insert(&cert);
            }
        }
        let other = self
            .by_serial
            .get(&key)
            .copied()
            .or_else(|| self.checkpoint.by_serial(&key.0, key.1));
        if let Some(other) = other {
            if other != cert.node {
                let other_cert = self
                    .recent
                    .get(&other)
                    .map(|r| (*r.cert).clone())
                    .or_else(|| self.checkpoint.certificate(&other));
                let mut pair: Vec<Certificate> = other_cert.into_iter().collect();
                pair.push(cert.clone());
                self.evidence.extend(pair.iter().cloned());
                // The issuer used one serial twice: neither identity counts, now or later.
                self.stats.equivocations += 1;
                if self.equivocated.len() < MAX_EQUIVOCATIONS {
                    self.equivocated.insert(key, pair);
                }
                self.recent.remove(&other);
                self.by_serial.remove(&key);
                return Err(AdmissionError::Equivocation {
                    serial: cert.serial,
                });
            }
        }
        if self.len() >= MAX_MEMBERSHIP_ENTRIES {
            self.stats.refused_certificates += 1;
            return Ok(false);
        }
        let node = cert.node;
        self.by_serial.insert(key, node);
        self.recent.insert(
            node,
            Recent {
                cert: Arc::new(cert),
                seen_at: now,
            },
        );
        self.push_output(MemberOutput::Admitted { node });
        Ok(true)
    }

    /// Folds the recent certificates that no anti-entropy window can still ask for (issued
    /// and learnt more than one epoch before the window's start) into the checkpoint, once
    /// there are [`MEMBERSHIP_COMPACT_AT`] of them: a node's state then costs the
    /// checkpoint's flat bytes per identity, whatever the churn since it started. A folded
    /// identity counts as known since time zero for the candidate rule, like a checkpoint
    /// identity: a request this node first hears more than the window after its creation is
    /// judged as if the node had known it then (stricter: the rule may ask for a peer the
    /// commissioner could not have known).
    fn compact(&mut self, now: Micros) {
        let keep_from = self.window_start(now).saturating_sub(1);
        let keep_since = Micros(keep_from.saturating_mul(self.config.epoch_micros));
        let old: Vec<NodeId> = self
            .recent
            .iter()
            .filter(|(_, r)| r.cert.epoch < keep_from && r.seen_at < keep_since)
            .map(|(n, _)| *n)
            .collect();
        if old.len() < MEMBERSHIP_COMPACT_AT {
            return;
        }
        let mut certs = Vec::with_capacity(old.len());
        for node in old {
            if let Some(r) = self.recent.remove(&node) {
                self.by_serial.remove(&(r.cert.issuer, r.cert.serial));
                certs.push(Arc::unwrap_or_clone(r.cert));
            }
        }
        // The checkpoint is this node's alone unless shared with other machines of one process
        // (the simulator's genesis); then this node gets its own copy.
        Arc::make_mut(&mut self.checkpoint).absorb(certs);
    }

    fn window_start(&self, now: Micros) -> u64 {
        self.epoch_of(now).saturating_sub(self.config.recent_epochs)
    }

    fn check_window(&self, from_epoch: u64, now: Micros) -> Result<(), MembershipError> {
        let start = self.window_start(now);
        // One epoch of slack either way for peers whose clocks sit across a boundary.
        if from_epoch + 1 < start || from_epoch > start + 1 {
            return Err(MembershipError::WindowOutOfRange { from_epoch });
        }
        Ok(())
    }

    fn in_window(&self, from_epoch: u64) -> impl Iterator<Item = &Certificate> + '_ {
        self.recent
            .values()
            .map(|r| &*r.cert)
            .filter(move |c| c.epoch >= from_epoch)
    }

    fn bucket_of(node: &NodeId) -> usize {
        usize::from(node.0[0]) % MEMBERSHIP_BUCKETS
    }

    fn summary(&self, from_epoch: u64) -> (u32, u64) {
        let mut count = 0u32;
        let mut digest = 0u64;
        for c in self.in_window(from_epoch) {
            count = count.saturating_add(1);
            digest ^= c.fingerprint();
        }
        (count, digest)
    }

    fn bucket_digests(&self, from_epoch: u64) -> Vec<u64> {
        let mut digests = vec![0u64; MEMBERSHIP_BUCKETS];
        for c in self.in_window(from_epoch) {
            digests[Self::bucket_of(&c.node)] ^= c.fingerprint();
        }
        digests
    }

    /// Answers with the window's certificates of `buckets`: one push of at most
    /// [`MAX_MEMBERSHIP_ENTRIES_PER_MESSAGE`], whatever the window holds (a pull of a few
    /// bytes must not ask for the whole window). When more differ, a run of them from a random
    /// point is sent (the rest come in later rounds: the asker cannot say which of a bucket's
    /// entries it lacks, so a fixed choice could resend the same ones every round).
    fn push_buckets(&mut self, to: NodeId, from_epoch: u64, buckets: &[u16]) {
        let wanted: BTreeSet<usize> = buckets.iter().map(|b| usize::from(*b)).collect();
        let matching = |c: &&Certificate| wanted.contains(&Self::bucket_of(&c.node));
        let n = self.in_window(from_epoch).filter(matching).count();
        if n == 0 {
            return;
        }
        let cap = MAX_MEMBERSHIP_ENTRIES_PER_MESSAGE;
        let start = if n > cap {
            self.stats.answers_truncated += 1;
            (self.rng.next_u64() % n as u64) as usize
        } else {
            0
        };
        // The entries at positions start.. (wrapping), `cap` of them.
        let entries: Vec<Certificate> = self
            .in_window(from_epoch)
            .filter(matching)
            .enumerate()
            .filter(|(i, _)| (i + n - start) % n < cap)
            .map(|(_, c)| c.clone())
            .collect();
        self.send(to, MemberMessage::Push { entries });
    }

    /// Draws the routing set once per epoch: peers at random points of the id ring.
    fn ensure_routing(&mut self, now: Micros) {
        let epoch = self.epoch_of(now);
        if self.routing_epoch == Some(epoch) && self.routing.len() >= self.config.routing_peers {
            return;
        }
        self.routing_epoch = Some(epoch);
        let mut chosen = BTreeSet::new();
        // The other admitted identities (before a newcomer admits its own certificate, all of
        // them: counting itself there left a newcomer that knows one peer with no routing set).
        let me = usize::from(self.member(&self.me).is_some());
        let want = self.config.routing_peers.min(self.len().saturating_sub(me));
        let mut attempts = 0;
        while chosen.len() < want && attempts < 4 * MAX_ROUTING_PEERS {
            attempts += 1;
            let mut point = [0u8; 32];
            self.rng.fill_bytes(&mut point);
            if let Some(c) = self.ring_from(NodeId(point)).find(|c| c.node != self.me) {
                chosen.insert(c.node);
            }
        }
        self.routing = chosen.into_iter().collect();
    }

    fn sample(&mut self, from: &[NodeId], k: usize) -> Vec<NodeId> {
        let mut pool = from.to_vec();
        let mut out = Vec::with_capacity(k.min(pool.len()));
        while out.len() < k && !pool.is_empty() {
            let i = (self.rng.next_u64() % pool.len() as u64) as usize;
            out.push(pool.swap_remove(i));
        }
        out
    }

    fn send(&mut self, to: NodeId, message: MemberMessage) {
        self.push_output(MemberOutput::Send { to, message });
    }

    fn push_output(&mut self, output: MemberOutput) {
        if self.outputs.len() >= MAX_MEMBERSHIP_OUTPUTS {
            self.stats.dropped_sends += 1;
            return;
        }
        self.outputs.push_back(output);
    }
}

/// Merges the checkpoint's and the recent entries' ranges in id order.
struct Merged<'a, A, B>
where
    A: Iterator<Item = Member>,
    B: Iterator<Item = (&'a NodeId, &'a Recent)>,
{
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<'a, A, B> Merged<'a, A, B>
where
    A: Iterator<Item = Member>,
    B: Iterator<Item = (&'a NodeId, &'a Recent)>,
{
    fn new(a: A, b: B) -> Self {
        Merged {
            a: a.peekable(),
            b: b.peekable(),
        }
    }
}

impl<'a, A, B> Iterator for Merged<'a, A, B>
where
    A: Iterator<Item = Member>,
    B: Iterator<Item = (&'a NodeId, &'a Recent)>,
{
    type Item = Member;
    fn next(&mut self) -> Option<Member> {
        let order = match (self.a.peek(), self.b.peek()) {
            (None, None) => return None,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(ma), Some((kb, _))) => ma.node.cmp(kb),
        };
        if order == std::cmp::Ordering::Equal {
            // An id in both: the checkpoint's certificate stands.
            self.b.next();
        }
        let take_a = order != std::cmp::Ordering::Greater;
        if take_a {
            self.a.next()
        } else {
            self.b.next().map(|(_, r)| Member::of(&r.cert))
        }
    }
}
