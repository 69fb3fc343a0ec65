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
//! whole set.

use super::admission::{AdmissionError, AdmissionPolicy, Certificate, IssuerKey};
use crate::ids::{hash_parts, Digest, Micros, NodeId};
use crate::limits::{
    MAX_EQUIVOCATIONS, MAX_MEMBERSHIP_ENTRIES, MAX_MEMBERSHIP_ENTRIES_PER_MESSAGE,
    MAX_MEMBERSHIP_OUTPUTS, MAX_ROUTING_PEERS, MEMBERSHIP_BUCKETS,
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

/// The admitted set up to an epoch: built once (at genesis, or by compaction), shared.
#[derive(Clone, Debug, Default)]
pub struct Checkpoint {
    pub epoch: u64,
    entries: BTreeMap<NodeId, Certificate>,
    by_serial: BTreeMap<(IssuerKey, u32), NodeId>,
}

impl Checkpoint {
    /// Builds a checkpoint from certificates already checked against the policy (the node
    /// checks every certificate of a checkpoint it fetches before it uses it). Certificates
    /// that equivocate on a serial are left out, both of them.
    pub fn new(epoch: u64, certs: impl IntoIterator<Item = Certificate>) -> Checkpoint {
        let mut entries = BTreeMap::new();
        let mut by_serial: BTreeMap<(IssuerKey, u32), NodeId> = BTreeMap::new();
        let mut bad = BTreeSet::new();
        for c in certs {
            let key = (c.issuer, c.serial);
            if let Some(other) = by_serial.get(&key) {
                if *other != c.node {
                    bad.insert(key);
                }
                continue;
            }
            by_serial.insert(key, c.node);
            entries.insert(c.node, c);
        }
        for key in bad {
            if let Some(node) = by_serial.remove(&key) {
                entries.remove(&node);
            }
        }
        Checkpoint {
            epoch,
            entries,
            by_serial,
        }
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// A digest of the whole checkpoint, which names it.
    pub fn digest(&self) -> Digest {
        let mut parts: Vec<u8> = Vec::with_capacity(self.entries.len() * 8);
        for c in self.entries.values() {
            parts.extend_from_slice(&c.fingerprint().to_be_bytes());
        }
        Digest::of(
            "grove/membership-checkpoint",
            &[&self.epoch.to_be_bytes(), &parts],
        )
    }
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
}

/// Counters a driver can print or the simulator can sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MembershipStats {
    pub refused_certificates: u64,
    pub equivocations: u64,
    pub dropped_sends: u64,
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

    /// The certificate under which `node` is admitted, if it is.
    pub fn certificate(&self, node: &NodeId) -> Option<&Certificate> {
        let cert = match self.recent.get(node) {
            Some(r) => &*r.cert,
            None => self.checkpoint.entries.get(node)?,
        };
        if self.equivocated.contains_key(&(cert.issuer, cert.serial)) {
            return None;
        }
        Some(cert)
    }

    /// Whether `node` is admitted and old enough to be selected at `epoch`.
    pub fn is_eligible(&self, node: &NodeId, epoch: u64) -> bool {
        self.certificate(node)
            .is_some_and(|c| self.policy.eligible(c, epoch))
    }

    /// When this node first learnt `node`'s certificate (checkpoint entries: time zero).
    pub fn known_since(&self, node: &NodeId) -> Option<Micros> {
        self.certificate(node)?;
        Some(self.recent.get(node).map_or(Micros::ZERO, |r| r.seen_at))
    }

    /// Every admitted identity, in id order (checkpoint and recent merged).
    pub fn admitted(&self) -> impl Iterator<Item = &Certificate> + '_ {
        Merged::new(self.checkpoint.entries.range(..), self.recent.range(..))
            .filter(move |c| !self.equivocated.contains_key(&(c.issuer, c.serial)))
    }

    /// Admitted identities from `start` on, wrapping around, in id order.
    pub(super) fn ring_from(&self, start: NodeId) -> impl Iterator<Item = &Certificate> + '_ {
        let tail = Merged::new(
            self.checkpoint.entries.range(start..),
            self.recent.range(start..),
        );
        let head = Merged::new(
            self.checkpoint.entries.range(..start),
            self.recent.range(..start),
        );
        tail.chain(head)
            .filter(move |c| !self.equivocated.contains_key(&(c.issuer, c.serial)))
    }

    /// Admits this node's own certificate and pushes it to every routing peer.
    pub fn announce(&mut self, cert: Certificate, now: Micros) -> Result<(), AdmissionError> {
        self.ensure_routing(now);
        let fresh = self.accept(cert.clone(), now)?;
        self.reply_evidence.clear();
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

    /// One message from a peer. Remote input: typed errors, never a panic.
    pub fn handle_message(
        &mut self,
        from: NodeId,
        message: MemberMessage,
        now: Micros,
    ) -> Result<(), MembershipError> {
        self.ensure_routing(now);
        match message {
            MemberMessage::Push { entries } => self.on_push(from, entries, now),
            MemberMessage::Summary {
                from_epoch,
                count,
                digest,
            } => {
                self.check_window(from_epoch, now)?;
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
                self.push_buckets(from, from_epoch, &buckets);
                Ok(())
            }
        }
    }

    /// The next time [`Membership::handle_timeout`] wants to run.
    pub fn poll_timeout(&self) -> Micros {
        self.next_anti_entropy
    }

    /// Runs an anti-entropy round when it is due.
    pub fn handle_timeout(&mut self, now: Micros) {
        self.ensure_routing(now);
        if now < self.next_anti_entropy {
            return;
        }
        self.next_anti_entropy = now.plus(self.config.anti_entropy_micros);
        if self.routing.is_empty() {
            return;
        }
        let peer = self.routing[(self.rng.next_u64() % self.routing.len() as u64) as usize];
        let from_epoch = self.window_start(now);
        let (count, digest) = self.summary(from_epoch);
        self.send(
            peer,
            MemberMessage::Summary {
                from_epoch,
                count,
                digest,
            },
        );
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
        if let Some(existing) = self.certificate(&cert.node) {
            // One certificate per identity: the first one learnt stays.
            let _ = existing;
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
            .or_else(|| self.checkpoint.by_serial.get(&key))
            .copied();
        if let Some(other) = other {
            if other != cert.node {
                let other_cert = self
                    .recent
                    .get(&other)
                    .map(|r| (*r.cert).clone())
                    .or_else(|| self.checkpoint.entries.get(&other).cloned());
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

    fn push_buckets(&mut self, to: NodeId, from_epoch: u64, buckets: &[u16]) {
        let wanted: BTreeSet<usize> = buckets.iter().map(|b| usize::from(*b)).collect();
        let entries: Vec<Certificate> = self
            .in_window(from_epoch)
            .filter(|c| wanted.contains(&Self::bucket_of(&c.node)))
            .cloned()
            .collect();
        for chunk in entries.chunks(MAX_MEMBERSHIP_ENTRIES_PER_MESSAGE) {
            self.send(
                to,
                MemberMessage::Push {
                    entries: chunk.to_vec(),
                },
            );
        }
    }

    /// Draws the routing set once per epoch: peers at random points of the id ring.
    fn ensure_routing(&mut self, now: Micros) {
        let epoch = self.epoch_of(now);
        if self.routing_epoch == Some(epoch) && self.routing.len() >= self.config.routing_peers {
            return;
        }
        self.routing_epoch = Some(epoch);
        let mut chosen = BTreeSet::new();
        let want = self.config.routing_peers.min(self.len().saturating_sub(1));
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
    A: Iterator<Item = (&'a NodeId, &'a Certificate)>,
    B: Iterator<Item = (&'a NodeId, &'a Recent)>,
{
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<'a, A, B> Merged<'a, A, B>
where
    A: Iterator<Item = (&'a NodeId, &'a Certificate)>,
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
    A: Iterator<Item = (&'a NodeId, &'a Certificate)>,
    B: Iterator<Item = (&'a NodeId, &'a Recent)>,
{
    type Item = &'a Certificate;
    fn next(&mut self) -> Option<&'a Certificate> {
        let order = match (self.a.peek(), self.b.peek()) {
            (None, None) => return None,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
        };
        if order == std::cmp::Ordering::Equal {
            // An id in both: the checkpoint's certificate stands.
            self.b.next();
        }
        let take_a = order != std::cmp::Ordering::Greater;
        if take_a {
            self.a.next().map(|(_, c)| c)
        } else {
            self.b.next().map(|(_, r)| &*r.cert)
        }
    }
}
