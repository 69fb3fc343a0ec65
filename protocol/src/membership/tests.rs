use super::*;
use crate::limits::{MAX_MEMBERSHIP_ENTRIES_PER_MESSAGE, MAX_ROUTING_PEERS};
use ed25519_dalek::SigningKey;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

const EPOCH: u64 = 120_000_000;

fn issuer(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn node(n: u32) -> NodeId {
    NodeId::from_public_bytes(&n.to_be_bytes())
}

fn policy(quota: u32, min_age: u64) -> AdmissionPolicy {
    let mut issuers = BTreeMap::new();
    issuers.insert(IssuerKey(issuer(1).verifying_key().to_bytes()), quota);
    issuers.insert(IssuerKey(issuer(2).verifying_key().to_bytes()), quota);
    AdmissionPolicy::new(issuers, min_age).unwrap()
}

fn cert(n: u32, epoch: u64) -> Certificate {
    Certificate::issue(&issuer(1), node(n), n, epoch)
}

fn at_epoch(e: u64) -> Micros {
    Micros(e * EPOCH + 1)
}

/// A network of `n` nodes sharing a checkpoint of nodes `0..n` (epoch 0), delivering messages
/// in order, with a switch to drop everything sent to some nodes.
struct Net {
    nodes: Vec<Membership>,
    index: BTreeMap<NodeId, usize>,
    queue: VecDeque<(NodeId, NodeId, MemberMessage)>,
    deaf: BTreeSet<NodeId>,
    sent_to: BTreeMap<NodeId, BTreeSet<NodeId>>,
    now: Micros,
    checkpoint: Arc<Checkpoint>,
}

impl Net {
    fn new(n: u32, min_age: u64) -> Net {
        let cp = Arc::new(Checkpoint::new(0, (0..n).map(|i| cert(i, 0))));
        let mut nodes: Vec<Membership> = Vec::new();
        let mut index = BTreeMap::new();
        for i in 0..n {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_be_bytes());
            index.insert(node(i), nodes.len());
            nodes.push(Membership::new(
                node(i),
                policy(1_000, min_age),
                MembershipConfig::default(),
                cp.clone(),
                seed,
                at_epoch(5),
            ));
        }
        Net {
            nodes,
            index,
            queue: VecDeque::new(),
            deaf: BTreeSet::new(),
            sent_to: BTreeMap::new(),
            now: at_epoch(5),
            checkpoint: cp,
        }
    }

    /// A newcomer `n` that knows the network (it pulled it), not yet known by anyone: its
    /// index.
    fn add_newcomer(&mut self, n: u32) -> usize {
        let mut seed = [7u8; 32];
        seed[..4].copy_from_slice(&n.to_be_bytes());
        let m = Membership::new(
            node(n),
            policy(1_000, 0),
            MembershipConfig::default(),
            self.checkpoint.clone(),
            seed,
            self.now,
        );
        self.index.insert(node(n), self.nodes.len());
        self.nodes.push(m);
        self.nodes.len() - 1
    }

    fn collect(&mut self, i: usize) {
        let from = self.nodes[i].me();
        while let Some(out) = self.nodes[i].poll_output() {
            if let MemberOutput::Send { to, message } = out {
                self.sent_to.entry(from).or_default().insert(to);
                self.queue.push_back((from, to, message));
            }
        }
    }

    fn run(&mut self) {
        let mut steps = 0;
        while let Some((from, to, msg)) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 10_000_000, "gossip does not quiesce");
            if self.deaf.contains(&to) {
                continue;
            }
            let Some(&i) = self.index.get(&to) else {
                continue;
            };
            let _ = self.nodes[i].handle_message(from, msg, self.now);
            self.collect(i);
        }
    }

    fn anti_entropy_round(&mut self) {
        self.now = self
            .now
            .plus(MembershipConfig::default().anti_entropy_micros);
        for i in 0..self.nodes.len() {
            self.nodes[i].handle_timeout(self.now);
            self.collect(i);
        }
        self.run();
    }

    fn knowing(&self, n: &NodeId) -> usize {
        self.nodes
            .iter()
            .filter(|m| m.certificate(n).is_some())
            .count()
    }
}

#[test]
fn certificates_from_unknown_issuers_over_quota_forged_or_from_the_future_are_refused() {
    let p = policy(10, 0);
    assert_eq!(p.check(&cert(3, 4), 4), Ok(()));
    let stranger = Certificate::issue(&issuer(9), node(3), 3, 4);
    assert_eq!(p.check(&stranger, 4), Err(AdmissionError::UnknownIssuer));
    assert_eq!(
        p.check(&cert(10, 4), 4),
        Err(AdmissionError::OverQuota {
            serial: 10,
            quota: 10
        })
    );
    let mut forged = cert(3, 4);
    forged.node = node(4);
    assert_eq!(p.check(&forged, 4), Err(AdmissionError::BadSignature));
    assert!(matches!(
        p.check(&cert(3, 6), 4),
        Err(AdmissionError::FromTheFuture { .. })
    ));
}

#[test]
fn an_issuer_that_reuses_a_serial_loses_both_identities() {
    let mut net = Net::new(30, 0);
    let a = Certificate::issue(&issuer(2), node(1000), 7, 5);
    let b = Certificate::issue(&issuer(2), node(1001), 7, 5);
    net.nodes[0].announce(a, net.now).unwrap();
    net.collect(0);
    net.run();
    for _ in 0..10 {
        net.anti_entropy_round();
    }
    assert_eq!(net.knowing(&node(1000)), 30);
    // Node 5's own push of the second certificate is what an issuer's second customer sends.
    net.queue.push_back((
        node(1001),
        node(5),
        MemberMessage::Push { entries: vec![b] },
    ));
    net.run();
    for _ in 0..10 {
        net.anti_entropy_round();
    }
    // The evidence travels: no node admits either identity any more.
    assert_eq!(net.knowing(&node(1000)), 0);
    assert_eq!(net.knowing(&node(1001)), 0);
}

#[test]
fn an_identity_is_selected_only_once_old_enough() {
    let net = Net::new(2, 3);
    let m = &net.nodes[0];
    let c = cert(0, 0);
    assert!(!m.policy().eligible(&c, 2));
    assert!(m.policy().eligible(&c, 3));
    assert!(!m.is_eligible(&node(0), 2));
    assert!(m.is_eligible(&node(0), 3));
}

#[test]
fn a_new_certificate_reaches_every_node_without_anyone_talking_to_everyone() {
    let n = 200;
    let mut net = Net::new(n, 0);
    for j in 0..5u32 {
        let c = Certificate::issue(&issuer(2), node(10_000 + j), j, 5);
        let at = (j as usize * 37) % n as usize;
        net.nodes[at].announce(c, net.now).unwrap();
        net.collect(at);
    }
    net.run();
    for _ in 0..10 {
        net.anti_entropy_round();
    }
    for j in 0..5u32 {
        assert_eq!(net.knowing(&node(10_000 + j)), n as usize, "join {j}");
    }
    let widest = net.sent_to.values().map(|s| s.len()).max().unwrap();
    // Its own routing peers plus the peers whose routing sets hold it (they open anti-entropy).
    eprintln!("widest fan-out: {widest} peers");
    assert!(
        widest <= 2 * MAX_ROUTING_PEERS,
        "a node sent to {widest} peers"
    );
    for m in &net.nodes {
        assert!(m.routing_peers().len() <= MAX_ROUTING_PEERS);
    }
}

#[test]
fn anti_entropy_repairs_what_gossip_missed() {
    let n = 60;
    let mut net = Net::new(n, 0);
    let deaf: Vec<NodeId> = (0..10).map(node).collect();
    net.deaf.extend(deaf.iter().copied());
    let c = Certificate::issue(&issuer(2), node(20_000), 1, 5);
    net.nodes[30].announce(c, net.now).unwrap();
    net.collect(30);
    net.run();
    for d in &deaf {
        assert!(net.nodes[net.index[d]].certificate(&node(20_000)).is_none());
    }
    net.deaf.clear();
    for _ in 0..60 {
        net.anti_entropy_round();
    }
    // Without anti-entropy (no Summary/Buckets/Pull) the deaf nodes would never learn it.
    assert_eq!(net.knowing(&node(20_000)), n as usize);
}

#[test]
fn hostile_membership_messages_are_typed_errors() {
    let mut net = Net::new(3, 0);
    let now = net.now;
    let m = &mut net.nodes[0];
    let many = vec![cert(1, 0); MAX_MEMBERSHIP_ENTRIES_PER_MESSAGE + 1];
    assert!(matches!(
        m.handle_message(node(1), MemberMessage::Push { entries: many }, now),
        Err(MembershipError::TooManyEntries { .. })
    ));
    let from_epoch = 1;
    assert!(matches!(
        m.handle_message(
            node(1),
            MemberMessage::Buckets {
                from_epoch,
                digests: vec![1; 3]
            },
            now
        ),
        Err(MembershipError::BadBuckets { .. })
    ));
    assert!(matches!(
        m.handle_message(
            node(1),
            MemberMessage::Pull {
                from_epoch,
                buckets: vec![u16::MAX]
            },
            now
        ),
        Err(MembershipError::BadBuckets { .. })
    ));
    assert!(matches!(
        m.handle_message(
            node(1),
            MemberMessage::Summary {
                from_epoch: 1_000,
                count: 0,
                digest: 0
            },
            now
        ),
        Err(MembershipError::WindowOutOfRange { .. })
    ));
    // A forged certificate in a push is refused, not admitted.
    let mut forged = cert(50, 0);
    forged.node = node(51);
    m.handle_message(
        node(1),
        MemberMessage::Push {
            entries: vec![forged],
        },
        now,
    )
    .unwrap();
    assert!(m.certificate(&node(51)).is_none());
    assert_eq!(m.stats().refused_certificates, 1);
}

/// Sends of `m` waiting, by kind: (pushes, bucket digests, pulls, summaries).
fn drained(m: &mut Membership) -> (usize, usize, usize, usize) {
    let mut out = (0, 0, 0, 0);
    while let Some(o) = m.poll_output() {
        match o {
            MemberOutput::Send {
                message: MemberMessage::Push { .. },
                ..
            } => out.0 += 1,
            MemberOutput::Send {
                message: MemberMessage::Buckets { .. },
                ..
            } => out.1 += 1,
            MemberOutput::Send {
                message: MemberMessage::Pull { .. },
                ..
            } => out.2 += 1,
            MemberOutput::Send {
                message: MemberMessage::Summary { .. },
                ..
            } => out.3 += 1,
            MemberOutput::Admitted { .. } => {}
        }
    }
    out
}

/// Node 0 of a network of `n`, with five recent certificates in its anti-entropy window (what
/// a pull asks for), its sends drained.
fn answering_node(n: u32) -> (Membership, Micros) {
    let net = Net::new(n, 0);
    let now = net.now;
    let mut m = net.nodes.into_iter().next().unwrap();
    for j in 0..5u32 {
        let c = Certificate::issue(&issuer(2), node(30_000 + j), j, 5);
        m.announce(c, now).unwrap();
    }
    drained(&mut m);
    (m, now)
}

fn window(m: &Membership, now: Micros) -> u64 {
    m.epoch_of(now)
        .saturating_sub(MembershipConfig::default().recent_epochs)
}

fn summary(from_epoch: u64) -> MemberMessage {
    MemberMessage::Summary {
        from_epoch,
        count: 0,
        digest: 1,
    }
}

fn pull_all(from_epoch: u64) -> MemberMessage {
    MemberMessage::Pull {
        from_epoch,
        buckets: (0..crate::limits::MEMBERSHIP_BUCKETS as u16).collect(),
    }
}

#[test]
fn anti_entropy_from_an_unadmitted_peer_is_refused_and_answered_with_nothing() {
    let (mut m, now) = answering_node(3);
    let w = window(&m, now);
    let stranger = node(999);
    let digests = vec![7; crate::limits::MEMBERSHIP_BUCKETS];
    for message in [
        summary(w),
        MemberMessage::Buckets {
            from_epoch: w,
            digests: digests.clone(),
        },
        pull_all(w),
    ] {
        assert_eq!(
            m.handle_message(stranger, message, now),
            Err(MembershipError::NotAdmitted { from: stranger })
        );
    }
    assert_eq!(drained(&mut m), (0, 0, 0, 0), "a stranger is sent nothing");
    assert_eq!(m.stats().refused_unadmitted, 3);
    // The same three from an admitted peer are answered (the refusals are the rule, not a
    // dead path).
    m.handle_message(node(1), summary(w), now).unwrap();
    m.handle_message(
        node(1),
        MemberMessage::Buckets {
            from_epoch: w,
            digests,
        },
        now,
    )
    .unwrap();
    m.handle_message(node(1), pull_all(w), now).unwrap();
    let (pushes, buckets, pulls, _) = drained(&mut m);
    assert_eq!((buckets, pulls), (1, 1));
    assert_eq!(
        pushes, 2,
        "the window's certificates, for the digests and for the pull"
    );
}

#[test]
fn an_unadmitted_peer_may_push_its_own_certificate_alone() {
    let (mut m, now) = answering_node(3);
    let newcomer = node(999);
    let own = Certificate::issue(&issuer(2), newcomer, 99, 5);
    let other = Certificate::issue(&issuer(2), node(998), 98, 5);
    // Another node's certificate, or its own with others: refused whole, nothing verified.
    for entries in [vec![other.clone()], vec![own.clone(), other.clone()]] {
        assert_eq!(
            m.handle_message(newcomer, MemberMessage::Push { entries }, now),
            Err(MembershipError::NotOwnCertificate { from: newcomer })
        );
    }
    assert!(m.certificate(&node(998)).is_none());
    assert!(m.certificate(&newcomer).is_none());
    assert_eq!(m.stats().refused_unadmitted, 2);
    // Its own certificate alone: admitted, and it may now take part in anti-entropy.
    m.handle_message(newcomer, MemberMessage::Push { entries: vec![own] }, now)
        .unwrap();
    assert!(m.certificate(&newcomer).is_some());
    drained(&mut m);
    m.handle_message(newcomer, summary(window(&m, now)), now)
        .unwrap();
    assert_eq!(drained(&mut m).1, 1, "its summary is answered");
    // Once admitted, it forwards others' certificates like any peer.
    m.handle_message(
        newcomer,
        MemberMessage::Push {
            entries: vec![other],
        },
        now,
    )
    .unwrap();
    assert!(m.certificate(&node(998)).is_some());
}

#[test]
fn anti_entropy_is_answered_once_per_interval_per_peer_and_kind() {
    let (mut m, now) = answering_node(4);
    let w = window(&m, now);
    let interval = m.answer_interval();
    assert_eq!(
        interval,
        MembershipConfig::default().anti_entropy_micros / 2
    );
    // A million-fold flood in one interval gets one answer of each kind.
    let mut refused = 0;
    for _ in 0..1_000 {
        for message in [summary(w), pull_all(w)] {
            if m.handle_message(node(1), message, now).is_err() {
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 1_998);
    assert_eq!(m.stats().refused_too_soon, 1_998);
    let (pushes, buckets, _, _) = drained(&mut m);
    assert_eq!(
        (pushes, buckets),
        (1, 1),
        "one answer to the summary, one to the pull"
    );
    // Another peer is not held back by the first one's flood.
    m.handle_message(node(2), pull_all(w), now).unwrap();
    assert_eq!(drained(&mut m).0, 1);
    // Just before the interval is over: still refused; at its end, answered again.
    let almost = Micros(now.0 + interval - 1);
    assert_eq!(
        m.handle_message(node(1), pull_all(w), almost),
        Err(MembershipError::TooSoon { from: node(1) })
    );
    m.handle_message(node(1), pull_all(w), Micros(now.0 + interval))
        .unwrap();
    assert_eq!(drained(&mut m).0, 1);
}

#[test]
fn the_answer_times_held_are_bounded_and_forgotten() {
    use super::view::MAX_ANSWERED_PEERS;
    let n = MAX_ANSWERED_PEERS as u32 + 2;
    let cp = Arc::new(Checkpoint::new(0, (0..n).map(|i| cert(i, 0))));
    let now = at_epoch(5);
    let mut m = Membership::new(
        node(0),
        policy(n, 0),
        MembershipConfig::default(),
        cp,
        [0; 32],
        now,
    );
    let w = window(&m, now);
    let empty = m.recent_heap_bytes();
    for i in 1..=MAX_ANSWERED_PEERS as u32 {
        m.handle_message(node(i), summary(w), now).unwrap();
    }
    // Full of answers within the interval: the next peer waits.
    let last = node(MAX_ANSWERED_PEERS as u32 + 1);
    assert_eq!(
        m.handle_message(last, summary(w), now),
        Err(MembershipError::TooSoon { from: last })
    );
    assert!(m.recent_heap_bytes() > empty);
    // Past the interval the old answers make room, and the timer forgets them.
    let later = Micros(now.0 + m.answer_interval());
    m.handle_message(last, summary(w), later).unwrap();
    m.handle_timeout(Micros(later.0 + m.answer_interval()));
    assert_eq!(m.recent_heap_bytes(), empty);
}

// The candidate-set rule.

const MIN_KNOWN_PPM: u32 = 900_000;

fn all(n: u32) -> Vec<NodeId> {
    (0..n).map(node).collect()
}

#[test]
fn an_honest_candidate_set_is_accepted() {
    let net = Net::new(20, 0);
    for m in &net.nodes {
        assert_eq!(m.check_candidates(&all(20), net.now, MIN_KNOWN_PPM), Ok(()));
    }
}

#[test]
fn a_snapshot_of_only_the_commissioners_own_identities_is_refused_by_every_honest_node() {
    let net = Net::new(20, 0);
    // Admitted colluders 0..3 (the commissioner's own nodes).
    let own: Vec<NodeId> = (0..3).map(node).collect();
    for m in net.nodes.iter().skip(3) {
        assert!(m.check_candidates(&own, net.now, MIN_KNOWN_PPM).is_err());
    }
    // Unadmitted Sybils.
    let sybils: Vec<NodeId> = (500..520).map(node).collect();
    for m in &net.nodes {
        assert!(matches!(
            m.check_candidates(&sybils, net.now, MIN_KNOWN_PPM),
            Err(CandidateRefusal::NotAdmitted { .. })
        ));
    }
}

#[test]
fn a_set_that_omits_the_node_itself_is_refused() {
    let net = Net::new(20, 0);
    let without_5: Vec<NodeId> = all(20).into_iter().filter(|n| *n != node(5)).collect();
    // 18 of 19 known peers: above the fraction, so only the self rule refuses it.
    assert_eq!(
        net.nodes[5].check_candidates(&without_5, net.now, MIN_KNOWN_PPM),
        Err(CandidateRefusal::OmitsSelf)
    );
    assert_eq!(
        net.nodes[6].check_candidates(&without_5, net.now, MIN_KNOWN_PPM),
        Ok(())
    );
}

#[test]
fn a_set_that_drops_too_many_known_peers_is_refused() {
    let net = Net::new(40, 0);
    // Keeps node 0 and 30 of the other 39: 77% < 90%.
    let thin: Vec<NodeId> = all(31);
    assert!(matches!(
        net.nodes[0].check_candidates(&thin, net.now, MIN_KNOWN_PPM),
        Err(CandidateRefusal::OmitsKnownPeers {
            known: 39,
            included: 30,
            required: 36
        })
    ));
    // 36 of 39 is enough.
    assert_eq!(
        net.nodes[0].check_candidates(&all(37), net.now, MIN_KNOWN_PPM),
        Ok(())
    );
}

#[test]
fn peers_learnt_after_the_request_do_not_count_against_it() {
    let mut net = Net::new(10, 0);
    let created = net.now;
    net.now = net.now.plus(1);
    for j in 0..5u32 {
        let c = Certificate::issue(&issuer(2), node(30_000 + j), j, 5);
        net.nodes[0].announce(c, net.now).unwrap();
    }
    net.collect(0);
    net.run();
    // The request, created before the five joined, lists only the ten it could know.
    assert_eq!(
        net.nodes[0].check_candidates(&all(10), created, MIN_KNOWN_PPM),
        Ok(())
    );
}

#[test]
fn young_identities_cannot_be_candidates() {
    let mut net = Net::new(10, 2);
    let c = Certificate::issue(&issuer(2), node(40_000), 0, 5);
    net.nodes[0].announce(c, net.now).unwrap();
    let mut with_young = all(10);
    with_young.push(node(40_000));
    assert_eq!(
        net.nodes[0].check_candidates(&with_young, net.now, MIN_KNOWN_PPM),
        Err(CandidateRefusal::NotAdmitted { node: node(40_000) })
    );
    assert_eq!(
        net.nodes[0].check_candidates(&with_young, at_epoch(7), MIN_KNOWN_PPM),
        Ok(())
    );
}

// Selection.

#[test]
fn selection_is_identical_across_nodes_and_never_picks_unadmitted_or_young_identities() {
    let mut net = Net::new(50, 2);
    let young = Certificate::issue(&issuer(2), node(50_000), 0, 5);
    net.nodes[0].announce(young, net.now).unwrap();
    net.collect(0);
    net.run();
    let seed = [7u8; 32];
    let epoch = 5;
    let mut hits = BTreeMap::new();
    for index in 0..2_000u64 {
        let first = net.nodes[0].select(&seed, index, epoch).unwrap();
        for m in &net.nodes[1..] {
            assert_eq!(m.select(&seed, index, epoch), Some(first));
        }
        assert!(first != node(50_000), "a too young identity was selected");
        assert!(net.nodes[0].is_eligible(&first, epoch));
        *hits.entry(first).or_insert(0u32) += 1;
    }
    // Once old enough, it can be selected.
    assert!((0..2_000u64).any(|i| net.nodes[0].select(&seed, i, 7) == Some(node(50_000))));
    // Another seed, another placement.
    let other: Vec<_> = (0..50u64)
        .map(|i| net.nodes[0].select(&[8; 32], i, epoch))
        .collect();
    let this: Vec<_> = (0..50u64)
        .map(|i| net.nodes[0].select(&seed, i, epoch))
        .collect();
    assert_ne!(other, this);
    assert!(hits.len() > 40);
}

/// A commissioner with 10% admitted colluders grinds request ids to put colluders in one leaf
/// group. The seed depends on a beacon round published after the request is signed, so the
/// best it can do is grind against a guess of the randomness: its real placements are no
/// better than chance. (Were the seed a hash of the request alone, the grinding would work:
/// the same search against the true seed finds leaves full of colluders.)
#[test]
fn grinding_request_ids_gets_no_better_placement_than_chance() {
    use crate::beacon::{plan_seed, Beacon, Randomness, Scheme, TestChain};
    let n = 200u32;
    let net = Net::new(n, 0);
    let view = &net.nodes[0];
    let colluders: BTreeSet<NodeId> = (0..n / 10).map(node).collect();
    let chain = TestChain::new(Scheme::BlsUnchainedG1Rfc9380, b"grind", 1_700_000_000, 3);
    let info = chain.info();
    let beacon = Beacon::new(info.clone()).unwrap();
    let g = 5u64;
    let epoch = 5;
    let in_leaf = |seed: &[u8; 32]| {
        (0..g)
            .filter(|i| {
                view.select(seed, *i, epoch)
                    .is_some_and(|x| colluders.contains(&x))
            })
            .count() as u64
    };
    let (trials, tries) = (100u64, 100u64);
    let (mut real, mut ground) = (0u64, 0u64);
    for trial in 0..trials {
        let round = 10 + trial;
        // The commissioner's search, before the round exists: a guessed randomness.
        let guess = Randomness([0; 32]);
        let best = (0..tries)
            .max_by_key(|k| {
                let req = [trial.to_be_bytes(), k.to_be_bytes()].concat();
                in_leaf(&plan_seed(&req, &info.chain_hash, round, &guess))
            })
            .unwrap();
        let req = [trial.to_be_bytes(), best.to_be_bytes()].concat();
        let randomness = beacon.verify(round, &chain.round(round)).unwrap();
        real += in_leaf(&plan_seed(&req, &info.chain_hash, round, &randomness));
        // What the same search achieves when the seed is known at signing.
        ground += (0..tries)
            .map(|k| {
                let req = [trial.to_be_bytes(), k.to_be_bytes()].concat();
                in_leaf(&plan_seed(&req, &info.chain_hash, round, &randomness))
            })
            .max()
            .unwrap();
    }
    let real_fraction = real as f64 / (trials * g) as f64;
    let ground_fraction = ground as f64 / (trials * g) as f64;
    eprintln!("colluders per leaf seat: grinding blind {real_fraction:.3}, grinding a known seed {ground_fraction:.3}");
    // Chance: the colluders' share of the ring (about 0.10), measured over unground seeds.
    let chance = (0..2_000u64)
        .map(|k| in_leaf(&crate::ids::hash_parts("chance", &[&k.to_be_bytes()])))
        .sum::<u64>() as f64
        / (2_000 * g) as f64;
    eprintln!("chance {chance:.3}");
    // 500 seats: one standard deviation is about 0.014; allow four.
    assert!(
        real_fraction < chance + 0.056,
        "grinding helped: {real_fraction} against {chance}"
    );
    assert!(
        ground_fraction > 0.3,
        "the search itself is weak: {ground_fraction}"
    );
}

#[test]
fn a_checkpoint_leaves_out_both_identities_of_a_reused_serial_and_keeps_the_rest() {
    // Issuer 1 gives serial 3 to node 3 (as `cert` does) and again to node 9,003.
    let twin = Certificate::issue(&issuer(1), node(9_003), 3, 0);
    let cp = Checkpoint::new(0, (0..50).map(|i| cert(i, 0)).chain([twin, cert(7, 0)]));
    assert_eq!(
        cp.len(),
        49,
        "the two holders of serial 3 are out, the repeat of 7 counted once"
    );
    assert!(cp.certificate(&node(3)).is_none());
    assert!(cp.certificate(&node(9_003)).is_none());
    // What comes back is the certificate that went in, signature and all.
    assert_eq!(cp.certificate(&node(7)), Some(cert(7, 0)));
    assert!(cp.heap_bytes() <= 49 * CHECKPOINT_BYTES_PER_ENTRY + 2 * 32);
}

#[test]
fn a_recent_certificate_reusing_a_checkpoint_serial_removes_both() {
    let net = Net::new(20, 0);
    let mut m = net.nodes.into_iter().next().unwrap();
    // Serial 4 of issuer 1 belongs to node 4 in the checkpoint.
    let reuse = Certificate::issue(&issuer(1), node(5_004), 4, 5);
    m.handle_message(
        node(1),
        MemberMessage::Push {
            entries: vec![reuse],
        },
        at_epoch(5),
    )
    .unwrap();
    assert!(m.certificate(&node(4)).is_none());
    assert!(m.certificate(&node(5_004)).is_none());
    assert_eq!(m.stats().equivocations, 1);
    // The evidence forwarded carries the checkpoint's certificate, which verifies.
    let mut evidence = Vec::new();
    while let Some(out) = m.poll_output() {
        if let MemberOutput::Send {
            message: MemberMessage::Push { entries },
            ..
        } = out
        {
            evidence.extend(entries);
        }
    }
    assert!(evidence.contains(&cert(4, 0)));
    assert!(m.policy().check(&cert(4, 0), 5).is_ok());
}

#[test]
fn the_ring_walks_checkpoint_and_recent_identities_in_id_order() {
    let net = Net::new(300, 0);
    let mut m = net.nodes.into_iter().next().unwrap();
    let joins: Vec<Certificate> = (1_000..1_040)
        .map(|i| Certificate::issue(&issuer(2), node(i), i - 1_000, 5))
        .collect();
    m.handle_message(node(1), MemberMessage::Push { entries: joins }, at_epoch(5))
        .unwrap();
    let mut all: Vec<NodeId> = (0..300).chain(1_000..1_040).map(node).collect();
    all.sort();
    let walked: Vec<NodeId> = m.admitted().map(|c| c.node).collect();
    assert_eq!(walked, all);
    let start = all[123];
    let from: Vec<NodeId> = m.ring_from(start).map(|c| c.node).collect();
    assert_eq!(from[..], [&all[123..], &all[..123]].concat()[..]);
    // Just past an id: the ring starts at the next one.
    let mut past = start.0;
    past[31] = past[31].wrapping_add(1);
    assert_eq!(
        m.ring_from(NodeId(past)).next().map(|c| c.node),
        Some(all[124])
    );
}

#[test]
fn old_recent_certificates_fold_into_the_checkpoint_and_keep_their_meaning() {
    let net = Net::new(20, 2);
    let mut m = net.nodes.into_iter().next().unwrap();
    // 1,200 joins learnt at epoch 5 (issuer 1's serials from 100, issuer 2's from 0).
    let joins: Vec<Certificate> = (0..1_200u32)
        .map(|j| {
            let (who, serial) = if j < 900 { (1, 100 + j) } else { (2, j - 900) };
            Certificate::issue(&issuer(who), node(10_000 + j), serial, 5)
        })
        .collect();
    for chunk in joins.chunks(MAX_MEMBERSHIP_ENTRIES_PER_MESSAGE) {
        m.handle_message(
            node(1),
            MemberMessage::Push {
                entries: chunk.to_vec(),
            },
            at_epoch(5),
        )
        .unwrap();
    }
    while m.poll_output().is_some() {}
    let ring_before: Vec<Member> = m.admitted().collect();
    let seed = [9u8; 32];
    let placed_before: Vec<Option<NodeId>> = (0..500).map(|i| m.select(&seed, i, 20)).collect();
    assert_eq!(m.recent_len(), 1_200);
    // Within the window nothing moves; once no window can ask for them, they fold.
    m.handle_timeout(at_epoch(8));
    assert_eq!(m.recent_len(), 1_200);
    m.handle_timeout(at_epoch(20));
    assert_eq!(m.recent_len(), 0, "the old recent certificates were folded");
    assert_eq!(m.len(), 1_220);
    assert_eq!(m.admitted().collect::<Vec<_>>(), ring_before);
    let placed_after: Vec<Option<NodeId>> = (0..500).map(|i| m.select(&seed, i, 20)).collect();
    assert_eq!(placed_after, placed_before);
    assert!(!m.is_eligible(&node(10_000), 6) && m.is_eligible(&node(10_000), 7));
    assert_eq!(m.certificate(&node(10_950)), Some(joins[950].clone()));
    // A second certificate for a folded identity is not new; a reuse of a folded serial
    // still removes both identities.
    let again = Certificate::issue(&issuer(2), node(10_950), 999, 20);
    let reuse = Certificate::issue(&issuer(1), node(77_777), 105, 20);
    m.handle_message(
        node(1),
        MemberMessage::Push {
            entries: vec![again, reuse],
        },
        at_epoch(20),
    )
    .unwrap();
    assert!(m.certificate(&node(10_950)).is_some());
    assert!(m.certificate(&node(10_005)).is_none());
    assert!(m.certificate(&node(77_777)).is_none());
    assert_eq!(m.stats().equivocations, 1);
}

// A newcomer's own certificate.

fn newcomer_cert(n: u32) -> Certificate {
    Certificate::issue(&issuer(2), node(n), n, 5)
}

/// A network of `n` admitted nodes and a newcomer (500) that has announced itself while
/// every push is lost (every admitted node is deaf); returns the network and the newcomer's
/// index.
fn newcomer_unheard(n: u32) -> (Net, usize) {
    let mut net = Net::new(n, 0);
    let me = net.add_newcomer(500);
    net.deaf.extend((0..n).map(node));
    net.nodes[me].announce(newcomer_cert(500), net.now).unwrap();
    (net, me)
}

/// A newcomer whose first push is lost at every routing peer pushes again (the next anti-
/// entropy period) and is known to everyone a few rounds later; then it stops. Without the
/// re-push no peer ever learns it: its own anti-entropy is refused while no peer admits it,
/// and nobody else has its certificate to spread.
#[test]
fn a_newcomer_whose_first_push_is_lost_everywhere_pushes_again_until_it_is_known() {
    let n = 20;
    // Every push of the first announcement is lost.
    let (mut net, me) = newcomer_unheard(n);
    net.collect(me);
    net.run();
    net.deaf.clear();
    assert_eq!(net.knowing(&node(500)), 1, "only the newcomer holds it");
    assert_eq!(net.nodes[me].own_pushes(), 1);
    assert!(!net.nodes[me].own_confirmed());
    for _ in 0..6 {
        net.anti_entropy_round();
    }
    assert_eq!(
        net.knowing(&node(500)),
        n as usize + 1,
        "every node knows the newcomer a minute later"
    );
    assert!(net.nodes[me].own_confirmed());
    // Confirmed: no more pushes, however long it runs.
    let pushes = net.nodes[me].own_pushes();
    assert_eq!(pushes, 2, "one re-push was enough");
    for _ in 0..100 {
        net.anti_entropy_round();
    }
    assert_eq!(net.nodes[me].own_pushes(), pushes);
}

/// A peer that admits a newcomer's own certificate tells it so (a summary of its window), so
/// a newcomer whose first push went through is confirmed at once and pushes no more. Without
/// that answer, nothing reaches the newcomer until a peer draws it into its routing set (the
/// next epoch), and it would push again meanwhile.
#[test]
fn a_peer_that_admits_a_newcomer_tells_it_and_the_newcomer_stops_pushing() {
    let mut net = Net::new(20, 0);
    let me = net.add_newcomer(500);
    net.nodes[me].announce(newcomer_cert(500), net.now).unwrap();
    net.collect(me);
    net.run();
    assert!(
        net.nodes[me].own_confirmed(),
        "confirmed by the first answer"
    );
    assert_eq!(net.nodes[me].own_pushes(), 1);
    // The welcome is rate-limited like an answer: a flood of the same push gets one.
    let peer = net.nodes[me].routing_peers()[0];
    let p = net.index[&peer];
    drained(&mut net.nodes[p]);
    let now = net.now;
    for _ in 0..100 {
        net.nodes[p]
            .handle_message(
                node(500),
                MemberMessage::Push {
                    entries: vec![newcomer_cert(500)],
                },
                now,
            )
            .unwrap();
    }
    assert_eq!(
        drained(&mut net.nodes[p]).3,
        0,
        "welcomed within the interval"
    );
}

/// A newcomer whose pushes are all lost pushes at growing intervals and stops after
/// `MAX_OWN_PUSHES`: a bounded cost, whatever happens to it.
#[test]
fn a_newcomer_that_is_never_confirmed_pushes_a_bounded_number_of_times() {
    use super::view::MAX_OWN_PUSHES;
    let n = 20;
    let (mut net, me) = newcomer_unheard(n);
    assert_eq!(net.nodes[me].own_pushes(), 1);
    let start = net.now;
    let mut at = vec![0];
    for _ in 0..400 {
        net.anti_entropy_round();
        while at.len() < net.nodes[me].own_pushes() as usize {
            at.push((net.now.0 - start.0) / 1_000_000);
        }
    }
    assert_eq!(net.nodes[me].own_pushes(), MAX_OWN_PUSHES);
    // 10, 20, 40, 80, 80 ... seconds apart (on the 10-second rounds of this network).
    assert_eq!(&at[..6], &[0, 10, 30, 70, 150, 230]);
    assert!(
        net.nodes[me].poll_timeout() > net.now.plus(1),
        "no timer left for it"
    );
}

// Anti-entropy answers are bounded in size.

/// Certificates of `count` identities whose ids all fall into anti-entropy bucket 0.
fn one_bucket(count: usize) -> Vec<Certificate> {
    (1_000_000u32..)
        .filter(|i| usize::from(node(*i).0[0]) % crate::limits::MEMBERSHIP_BUCKETS == 0)
        .take(count)
        .enumerate()
        .map(|(serial, i)| Certificate::issue(&issuer(2), node(i), serial as u32, 5))
        .collect()
}

/// A pull for a window of 400 certificates is answered with one push of at most
/// `MAX_MEMBERSHIP_ENTRIES_PER_MESSAGE`; a push over that size is refused whole; and a
/// lagging peer still gets every certificate over a few rounds, even when they all sit in
/// one bucket (each truncated answer starts at a random point of what differs: always the
/// same first entries would never bring it the rest).
#[test]
fn anti_entropy_answers_are_one_bounded_push_and_still_bring_everything() {
    let cap = MAX_MEMBERSHIP_ENTRIES_PER_MESSAGE;
    let mut net = Net::new(2, 0);
    let certs = one_bucket(400);
    let now = net.now;
    for c in &certs {
        net.nodes[0]
            .handle_message(
                node(1),
                MemberMessage::Push {
                    entries: vec![c.clone()],
                },
                now,
            )
            .unwrap();
    }
    drained(&mut net.nodes[0]);
    let w = window(&net.nodes[0], now);
    net.nodes[0]
        .handle_message(node(1), pull_all(w), now)
        .unwrap();
    let mut answers = Vec::new();
    while let Some(o) = net.nodes[0].poll_output() {
        if let MemberOutput::Send {
            message: MemberMessage::Push { entries },
            ..
        } = o
        {
            answers.push(entries.len());
        }
    }
    assert_eq!(
        answers,
        vec![cap],
        "one push of the cap, not the whole window"
    );
    assert_eq!(net.nodes[0].stats().answers_truncated, 1);
    // The receiver refuses a push over the cap whole.
    let over = MemberMessage::Push {
        entries: certs[..cap + 1].to_vec(),
    };
    assert_eq!(
        net.nodes[1].handle_message(node(0), over, now),
        Err(MembershipError::TooManyEntries {
            count: cap + 1,
            limit: cap
        })
    );
    assert_eq!(net.knowing(&certs[0].node), 1);
    // Rounds of anti-entropy bring node 1 everything, a bounded answer at a time.
    for _ in 0..40 {
        net.anti_entropy_round();
    }
    for c in &certs {
        assert!(net.nodes[1].certificate(&c.node).is_some());
    }
}

/// A newcomer that announces before it knows any peer (its routing set empty, as a daemon's
/// is before its first directory pull answers) pushes at the first call that finds a routing
/// peer, not an anti-entropy period later. Fails if the empty routing set moves the push a
/// period later: the newcomer then becomes known by its pull alone before it pushes (CI saw
/// that in the e2e test `membership_gossip`).
#[test]
fn a_newcomer_that_announces_before_it_knows_a_peer_pushes_as_soon_as_it_knows_one() {
    let now = at_epoch(5);
    let mut m = Membership::new(
        node(500),
        policy(1_000, 0),
        MembershipConfig::default(),
        Arc::new(Checkpoint::new(0, std::iter::empty())),
        [9u8; 32],
        now,
    );
    m.announce(newcomer_cert(500), now).unwrap();
    assert_eq!(m.own_pushes(), 0, "no routing peer, no push yet");
    // A second later its pull brings the network in, then the daemon's next tick.
    let later = Micros(now.0 + 1_000_000);
    for i in 0..5 {
        m.announce(cert(i, 0), later).unwrap();
    }
    m.handle_timeout(later);
    assert_eq!(
        m.own_pushes(),
        1,
        "pushed at the first call with routing peers"
    );
    let pushed_own = std::iter::from_fn(|| m.poll_output()).any(|out| {
        matches!(out, MemberOutput::Send { message: MemberMessage::Push { entries }, .. }
            if entries == vec![newcomer_cert(500)])
    });
    assert!(pushed_own, "its own certificate went out");
}

/// One lying peer cannot stop a newcomer's re-push. The newcomer's first push is lost at every
/// routing peer; one of them (admitted, in its routing set) then opens anti-entropy with it,
/// as if it held the certificate, and another admitted peer it never pushed to does the same.
/// Neither stops the re-push (the first is one confirmer of the two asked for, the second was
/// not pushed to), so the honest routing peers get the certificate and everyone learns it.
/// Fails with one confirmation from any admitted peer: the newcomer stops and stays unknown.
#[test]
fn one_lying_peer_cannot_stop_a_newcomers_re_push() {
    let n = 20;
    let (mut net, me) = newcomer_unheard(n);
    net.collect(me);
    net.run();
    let routing = net.nodes[me].routing_peers().to_vec();
    let liar = routing[0];
    let outsider = (0..n)
        .map(node)
        .find(|p| !routing.contains(p))
        .expect("a peer outside the routing set");
    let w = window(&net.nodes[me], net.now);
    for from in [liar, outsider] {
        net.nodes[me]
            .handle_message(
                from,
                MemberMessage::Summary {
                    from_epoch: w,
                    count: 0,
                    digest: 0,
                },
                net.now,
            )
            .unwrap();
    }
    assert!(
        !net.nodes[me].own_confirmed(),
        "one routing peer and one outsider are not two confirmers"
    );
    net.collect(me);
    // The liar keeps dropping the newcomer's pushes; the others hear them from now on.
    net.deaf.clear();
    net.deaf.insert(liar);
    net.run();
    for _ in 0..6 {
        net.anti_entropy_round();
    }
    assert_eq!(
        net.knowing(&node(500)),
        n as usize,
        "every node but the liar knows the newcomer"
    );
    assert!(net.nodes[me].own_confirmed());
    assert_eq!(net.nodes[me].own_pushes(), 2);
}

/// In a network of two, the one other admitted peer is enough to confirm (no second exists);
/// once the newcomer's view grows, two are asked for again and it pushes on.
#[test]
fn a_newcomer_that_knows_one_peer_is_confirmed_by_it_until_it_knows_more() {
    let mut net = Net::new(1, 0);
    let me = net.add_newcomer(500);
    net.nodes[me].announce(newcomer_cert(500), net.now).unwrap();
    net.collect(me);
    net.run();
    assert!(net.nodes[me].own_confirmed(), "its only peer welcomed it");
    // It learns more of the network: one confirmer is no longer enough.
    let now = net.now;
    for i in 1..10 {
        net.nodes[me].announce(cert(i, 0), now).unwrap();
    }
    assert!(!net.nodes[me].own_confirmed());
}

// Newcomers' pushes: what a flood of them may cost, and who it may hold back.

fn own_push(cert: &Certificate) -> MemberMessage {
    MemberMessage::Push {
        entries: vec![cert.clone()],
    }
}

/// `cert` with a signature that does not verify (a forger's: it names a configured issuer and
/// a serial within its quota, which is all a forger can get right).
fn forged(mut cert: Certificate) -> Certificate {
    cert.signature[0] ^= 1;
    cert
}

/// A flood of pushes from fresh identities whose certificates fail a check that needs no
/// signature (issuer not named, serial over its quota, epoch ahead) uses no push budget, so
/// an honest newcomer still gets in; forgeries that name issuer 1 hold back only issuer 1's
/// newcomers, at this node, for the window. This is the rule `handle_message` applies (the
/// simulator's) and the daemon screens with before it checks a signature. Fails with one
/// budget for every newcomer charged before the cheap checks (the daemon's rule before).
#[test]
fn a_flood_of_pushes_from_fresh_identities_does_not_hold_back_an_honest_newcomer() {
    use super::view::MAX_NEWCOMER_PUSHES_PER_ISSUER;
    let (mut m, now) = answering_node(3);
    let flood = 4 * MAX_NEWCOMER_PUSHES_PER_ISSUER as u32;
    for i in 0..flood {
        let from = node(100_000 + i);
        let cert = match i % 3 {
            0 => Certificate::issue(&issuer(9), from, i, 5),
            1 => Certificate::issue(&issuer(1), from, 5_000 + i, 5),
            _ => Certificate::issue(&issuer(1), from, i, 1_000),
        };
        assert!(matches!(
            m.handle_message(from, own_push(&cert), now),
            Err(MembershipError::RefusedCertificate { .. })
        ));
    }
    // Forgeries naming issuer 1, from as many fresh identities: its budget, then refused.
    let mut over = 0;
    for i in 0..flood {
        let from = node(200_000 + i);
        let cert = forged(Certificate::issue(&issuer(1), from, 100 + i, 5));
        match m.handle_message(from, own_push(&cert), now) {
            Ok(()) => assert!(m.certificate(&from).is_none()),
            Err(MembershipError::PushBudget { .. }) => over += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(over, flood - MAX_NEWCOMER_PUSHES_PER_ISSUER as u32);
    assert_eq!(m.stats().refused_over_budget, u64::from(over));
    // An honest newcomer of issuer 2 gets in.
    let honest = Certificate::issue(&issuer(2), node(999), 99, 5);
    m.handle_message(node(999), own_push(&honest), now).unwrap();
    assert!(
        m.certificate(&node(999)).is_some(),
        "admitted under the flood"
    );
    // Issuer 1's newcomer is held back for the window, and gets in with its next push.
    let held = Certificate::issue(&issuer(1), node(998), 998, 5);
    assert_eq!(
        m.handle_message(node(998), own_push(&held), now),
        Err(MembershipError::PushBudget { from: node(998) })
    );
    let next = now.plus(MembershipConfig::default().anti_entropy_micros);
    m.handle_message(node(998), own_push(&held), next).unwrap();
    assert!(m.certificate(&node(998)).is_some());
}

/// Forgeries naming many issuers: at most `MAX_NEWCOMER_PUSHES_PER_WINDOW` signature checks
/// per window at one node, all issuers together. Fails without the total (every issuer's
/// budget in full).
#[test]
fn newcomers_pushes_are_checked_at_most_a_total_per_window() {
    use super::view::{MAX_NEWCOMER_PUSHES_PER_ISSUER, MAX_NEWCOMER_PUSHES_PER_WINDOW};
    let issuers = (MAX_NEWCOMER_PUSHES_PER_WINDOW / MAX_NEWCOMER_PUSHES_PER_ISSUER + 4) as u8;
    let keys: BTreeMap<IssuerKey, u32> = (1..=issuers)
        .map(|i| (IssuerKey(issuer(i).verifying_key().to_bytes()), 1_000))
        .collect();
    let now = at_epoch(5);
    let mut m = Membership::new(
        node(0),
        AdmissionPolicy::new(keys, 0).unwrap(),
        MembershipConfig::default(),
        Arc::new(Checkpoint::new(0, (0..3).map(|i| cert(i, 0)))),
        [3u8; 32],
        now,
    );
    let mut checked = 0;
    for k in 1..=issuers {
        for s in 0..MAX_NEWCOMER_PUSHES_PER_ISSUER as u32 {
            let from = node(100_000 + u32::from(k) * 1_000 + s);
            let cert = forged(Certificate::issue(&issuer(k), from, s, 5));
            if m.handle_message(from, own_push(&cert), now).is_ok() {
                checked += 1;
            }
        }
    }
    assert_eq!(checked, MAX_NEWCOMER_PUSHES_PER_WINDOW);
    assert_eq!(
        m.stats().refused_certificates,
        MAX_NEWCOMER_PUSHES_PER_WINDOW as u64,
        "one signature refused per push checked"
    );
}

/// A newcomer's push is charged once per window: a driver that screens it first (the daemon,
/// before it checks the announcement's signature) and then hands it to `handle_message` is
/// not charged twice; a second push in the window is refused, whether screened or handed
/// straight in; the next window takes it again.
#[test]
fn a_newcomers_push_is_charged_once_per_window() {
    let (mut m, now) = answering_node(3);
    let a = Certificate::issue(&issuer(2), node(999), 99, 5);
    m.screen_newcomer(node(999), &a, now).unwrap();
    m.handle_message(node(999), own_push(&a), now).unwrap();
    assert!(m.certificate(&node(999)).is_some());
    let b = forged(Certificate::issue(&issuer(2), node(998), 98, 5));
    m.handle_message(node(998), own_push(&b), now).unwrap();
    assert!(m.certificate(&node(998)).is_none());
    assert_eq!(
        m.screen_newcomer(node(998), &b, now),
        Err(MembershipError::PushBudget { from: node(998) })
    );
    assert_eq!(
        m.handle_message(node(998), own_push(&b), now),
        Err(MembershipError::PushBudget { from: node(998) })
    );
    // Not its own: refused before anything else.
    assert_eq!(
        m.screen_newcomer(node(997), &b, now),
        Err(MembershipError::NotOwnCertificate { from: node(997) })
    );
    let next = now.plus(MembershipConfig::default().anti_entropy_micros);
    let b = Certificate::issue(&issuer(2), node(998), 98, 5);
    m.handle_message(node(998), own_push(&b), next).unwrap();
    assert!(m.certificate(&node(998)).is_some());
}
