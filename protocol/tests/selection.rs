//! Selection of aggregators, from the engines' side: the plan is seeded by a future beacon
//! round (verified against the configured chain), and every honest node applies the
//! candidate-set rule of its membership view at intake. Each test names the defence it shows;
//! each fails when that defence is removed (the mutation checks are in the report of the
//! change that added them).

use ed25519_dalek::SigningKey;
use grove_protocol::beacon::{plan_seed, Beacon, BeaconError, Round, Scheme, TestChain};
use grove_protocol::engine::{
    Command, CommandError, Engine, Event, Identity, Output, RefusalKind, Rejection,
};
use grove_protocol::harness::LaunchParams;
use grove_protocol::ids::{ComputationId, GroupId, Micros, NodeId};
use grove_protocol::membership::{
    AdmissionPolicy, Certificate, Checkpoint, IssuerKey, MemberMessage, Membership,
    MembershipConfig, ViewRule, DEFAULT_MIN_KNOWN_PPM,
};
use grove_protocol::plan::{request_seed, PeerKeys, Plan, PlanCache, SortedDirectory};
use grove_protocol::request::{
    BeaconRef, CommissionerKey, PrivacyParams, Request, SignedRequest, TreeParams,
};
use grove_protocol::seal;
use grove_protocol::snapshot::DirectorySnapshot;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Membership epochs of two minutes; identities must be two epochs old to be selected.
const EPOCH: u64 = 120_000_000;
const MIN_AGE: u64 = 2;
/// Requests are made in epoch 10, long after every identity of the network was admitted.
const NOW: Micros = Micros(10 * EPOCH + 1_000_000);

fn chain() -> TestChain {
    TestChain::new(
        Scheme::BlsUnchainedG1Rfc9380,
        b"grove selection tests",
        0,
        3,
    )
}

fn beacon() -> Arc<Beacon> {
    Arc::new(Beacon::new(chain().info()).expect("the test chain's key parses"))
}

fn identity(i: u64) -> Identity {
    let secret = grove_protocol::ids::hash_parts("selection/x25519", &[&i.to_le_bytes()]);
    Identity {
        node: NodeId::from_public_bytes(&seal::x25519_public(&secret)),
        x25519_secret: secret,
        ed25519_secret: grove_protocol::ids::hash_parts("selection/ed25519", &[&i.to_le_bytes()]),
    }
}

fn entry(id: &Identity) -> (NodeId, PeerKeys) {
    (id.node, id.keys())
}

fn issuer(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// The network's admission policy: two issuers with a quota of 1,000 each.
fn policy() -> AdmissionPolicy {
    let mut issuers = BTreeMap::new();
    issuers.insert(IssuerKey(issuer(1).verifying_key().to_bytes()), 1_000);
    issuers.insert(IssuerKey(issuer(2).verifying_key().to_bytes()), 1_000);
    AdmissionPolicy::new(issuers, MIN_AGE).expect("a small policy")
}

/// A network: `honest` identities certified by issuer 1, and `colluding` ones the commissioner
/// runs, certified by issuer 2 (admitted: identities cost a slot of an issuer's quota, they are
/// not impossible). Every node's view holds every certificate since epoch 0.
struct Net {
    honest: Vec<Identity>,
    colluding: Vec<Identity>,
    checkpoint: Arc<Checkpoint>,
}

impl Net {
    fn new(honest: u64, colluding: u64) -> Net {
        let honest: Vec<Identity> = (0..honest).map(identity).collect();
        let colluding: Vec<Identity> = (0..colluding).map(|i| identity(1_000_000 + i)).collect();
        let mut certs = Vec::new();
        for (serial, id) in honest.iter().enumerate() {
            certs.push(Certificate::issue(&issuer(1), id.node, serial as u32, 0));
        }
        for (serial, id) in colluding.iter().enumerate() {
            certs.push(Certificate::issue(&issuer(2), id.node, serial as u32, 0));
        }
        Net {
            honest,
            colluding,
            checkpoint: Arc::new(Checkpoint::new(0, certs)),
        }
    }

    fn view(&self, me: &Identity) -> Arc<Mutex<Membership>> {
        Arc::new(Mutex::new(Membership::new(
            me.node,
            policy(),
            MembershipConfig {
                epoch_micros: EPOCH,
                ..MembershipConfig::default()
            },
            self.checkpoint.clone(),
            [7; 32],
            Micros(EPOCH),
        )))
    }

    /// An honest node's engine: the test chain's beacon and its view's candidate rule.
    fn engine(&self, me: &Identity) -> Engine {
        self.engine_with_view(me, self.view(me))
    }

    fn engine_with_view(&self, me: &Identity, view: Arc<Mutex<Membership>>) -> Engine {
        Engine::new(me.clone(), [3; 32], Arc::new(PlanCache::default()))
            .with_beacon(beacon())
            .with_candidate_rule(Arc::new(ViewRule {
                view,
                min_known_ppm: DEFAULT_MIN_KNOWN_PPM,
            }))
    }

    fn everyone(&self) -> Vec<(NodeId, PeerKeys)> {
        self.honest
            .iter()
            .chain(&self.colluding)
            .map(entry)
            .collect()
    }
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

/// g = 3, t = 2, two leaf groups under fan-in 2 (three groups, nine positions).
fn request(id: u8, commissioner: NodeId, beacon: Option<BeaconRef>) -> Request {
    let p = LaunchParams::new(3, 2, 2, 2, 1);
    Request {
        id: ComputationId([id; 32]),
        commissioner: CommissionerKey(key().verifying_key().to_bytes()),
        commissioner_node: commissioner,
        directory: None,
        beacon,
        created_at: NOW,
        deadline: NOW.plus(p.lifetime),
        query: String::new(),
        contribution: p.spec.clone(),
        max_contributors: p.max_contributors,
        privacy: PrivacyParams {
            g: 3,
            t: 2,
            k_min: 1,
        },
        tree: TreeParams {
            leaf_groups: 2,
            fan_in: 2,
            backups: 1,
            timeouts: p.timeouts,
        },
    }
}

/// The first round of the test chain published after `NOW`.
fn next_round() -> BeaconRef {
    let b = beacon();
    BeaconRef {
        chain_hash: b.info().chain_hash,
        round: b.first_round_after(NOW),
    }
}

/// Every event the engine emitted since the last drain (persist records are dropped).
fn events(engine: &mut Engine) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        match engine.poll_output() {
            Output::Event(e) => out.push(e),
            Output::Idle { .. } => return out,
            _ => {}
        }
    }
}

fn accepted(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::RequestAccepted { .. }))
}

fn refused(events: &[Event]) -> Option<RefusalKind> {
    events.iter().find_map(|e| match e {
        Event::RequestRefused { reason, .. } => Some(reason.kind),
        _ => None,
    })
}

/// Defence: the plan is drawn only once the named round is known, from its randomness.
/// The engine holds a valid request until its round arrives; the plan's seed is
/// `plan_seed(request, chain, round, randomness)`, not a hash of the id the commissioner chose.
#[test]
fn a_request_is_planned_only_once_its_round_arrives_and_from_its_randomness() {
    let net = Net::new(30, 0);
    let snapshot = DirectorySnapshot::new(net.everyone());
    let named = next_round();
    let signed = SignedRequest::sign(request(1, net.honest[0].node, Some(named)), &key());
    let mut plans = Vec::new();
    for me in &net.honest[1..] {
        let mut e = net.engine(me);
        e.handle_request(
            NOW,
            net.honest[0].node,
            signed.clone(),
            Some(snapshot.clone()),
        );
        let before = events(&mut e);
        assert!(!accepted(&before), "planned before its round: {before:?}");
        assert_eq!(refused(&before), None);
        assert_eq!(e.awaited_rounds(), vec![named.round]);
        assert!(e.plan(&signed.request.id).is_none());
        let at = beacon().round_time(named.round);
        e.handle_beacon(at, chain().round(named.round))
            .expect("a valid round");
        assert!(accepted(&events(&mut e)));
        plans.push(e.plan(&signed.request.id).expect("planned").clone());
    }
    let randomness = beacon()
        .verify(named.round, &chain().round(named.round))
        .unwrap();
    let seed = plan_seed(
        &signed.request.signing_bytes(),
        &named.chain_hash,
        named.round,
        &randomness,
    );
    for plan in &plans {
        assert_eq!(plan, &plans[0], "every node plans identically");
        assert_eq!(plan.seed, seed);
    }
    assert_ne!(seed, request_seed(&signed.request, None));
}

/// Defence: a round is verified against the configured chain's key. A round whose signature
/// is bad, or a valid round of another chain (a key the commissioner holds), is refused and
/// counted, and plans nothing; the genuine round then plans the request.
#[test]
fn a_beacon_round_with_a_bad_signature_or_from_another_chain_is_refused() {
    let net = Net::new(30, 0);
    let snapshot = DirectorySnapshot::new(net.everyone());
    let named = next_round();
    let signed = SignedRequest::sign(request(2, net.honest[0].node, Some(named)), &key());
    let at = beacon().round_time(named.round);
    let mut e = net.engine(&net.honest[1]);
    e.handle_request(NOW, net.honest[0].node, signed.clone(), Some(snapshot));
    events(&mut e);

    // Another round's valid signature presented as the named round's.
    let mut forged = chain().round(named.round);
    forged.signature = chain().round(named.round + 1).signature;
    assert_eq!(e.handle_beacon(at, forged), Err(BeaconError::BadSignature));
    // The named round, signed by another chain's key (the commissioner's own test chain).
    let theirs = TestChain::new(Scheme::BlsUnchainedG1Rfc9380, b"the commissioner's", 0, 3);
    assert_eq!(
        e.handle_beacon(at, theirs.round(named.round)),
        Err(BeaconError::BadSignature)
    );
    // Bytes that are no curve point.
    let garbage = Round {
        round: named.round,
        signature: vec![0x5a; 48],
        previous_signature: Vec::new(),
    };
    assert!(e.handle_beacon(at, garbage).is_err());
    assert_eq!(e.rejections().get(&Rejection::BadBeaconRound), Some(&3));
    assert!(!accepted(&events(&mut e)));
    assert!(e.plan(&signed.request.id).is_none());

    e.handle_beacon(at, chain().round(named.round))
        .expect("the genuine round");
    assert!(accepted(&events(&mut e)));
}

/// Defence: the request itself must name a future round of this node's chain, seen before the
/// round is out: a request naming no round, another chain, a past round, or one first seen
/// after its round was published (so possibly picked among many after the randomness was
/// known) is refused.
#[test]
fn a_request_naming_no_round_another_chain_or_a_past_round_is_refused() {
    let net = Net::new(30, 0);
    let snapshot = DirectorySnapshot::new(net.everyone());
    let named = next_round();
    let c = net.honest[0].node;
    let cases = [
        ("no round", request(3, c, None), NOW),
        (
            "another chain",
            request(
                4,
                c,
                Some(BeaconRef {
                    chain_hash: [0xee; 32],
                    round: named.round,
                }),
            ),
            NOW,
        ),
        (
            "a past round",
            request(
                5,
                c,
                Some(BeaconRef {
                    round: named.round - 1,
                    ..named
                }),
            ),
            NOW,
        ),
        (
            "seen after its round was out",
            request(6, c, Some(named)),
            beacon().round_time(named.round).plus(61_000_000),
        ),
    ];
    for (what, req, at) in cases {
        let mut e = net.engine(&net.honest[1]);
        e.handle_request(
            at,
            c,
            SignedRequest::sign(req, &key()),
            Some(snapshot.clone()),
        );
        assert_eq!(
            refused(&events(&mut e)),
            Some(RefusalKind::Beacon),
            "{what}"
        );
    }
}

/// Defence: the candidate-set rule at intake. A commissioner that plans over a snapshot of
/// only its own (admitted) identities is refused by every honest node.
#[test]
fn a_commissioner_planning_over_only_its_own_identities_is_refused_by_every_honest_node() {
    let net = Net::new(40, 12);
    let own = DirectorySnapshot::new(net.colluding.iter().map(entry).collect());
    let signed = SignedRequest::sign(
        request(7, net.colluding[0].node, Some(next_round())),
        &key(),
    );
    for me in &net.honest {
        let mut e = net.engine(me);
        e.handle_request(
            NOW,
            net.colluding[0].node,
            signed.clone(),
            Some(own.clone()),
        );
        assert_eq!(
            refused(&events(&mut e)),
            Some(RefusalKind::Candidates),
            "{:?} accepted a snapshot of the commissioner's identities",
            me.node
        );
    }
}

/// Defence: the stated fraction. A snapshot that leaves out more than 10% of the peers a node
/// knew (here 20% of the honest nodes, those the commissioner would rather not see selected)
/// is refused by every honest node it lists; one that leaves out 5% is accepted.
#[test]
fn a_snapshot_leaving_out_more_than_the_stated_fraction_of_known_peers_is_refused() {
    let net = Net::new(40, 4);
    let keep = |dropped: usize| -> Vec<(NodeId, PeerKeys)> {
        net.honest[dropped..]
            .iter()
            .chain(&net.colluding)
            .map(entry)
            .collect()
    };
    let named = next_round();
    for (dropped, refuse) in [(8, true), (2, false)] {
        let snapshot = DirectorySnapshot::new(keep(dropped));
        let signed = SignedRequest::sign(
            request(8 + dropped as u8, net.colluding[0].node, Some(named)),
            &key(),
        );
        for me in &net.honest[dropped..] {
            let mut e = net.engine(me);
            e.handle_request(
                NOW,
                net.colluding[0].node,
                signed.clone(),
                Some(snapshot.clone()),
            );
            let got = refused(&events(&mut e));
            if refuse {
                assert_eq!(got, Some(RefusalKind::Candidates), "{dropped} dropped");
            } else {
                assert_eq!(got, None, "{dropped} dropped");
            }
        }
    }
}

/// Defence: only admitted, old enough identities can be candidates, so none other is ever
/// selected. A snapshot that adds identities no issuer certified, or identities certified too
/// recently (younger than the identity age), is refused by every honest node.
#[test]
fn an_unadmitted_or_too_young_identity_is_never_selected() {
    let net = Net::new(40, 0);
    let strangers: Vec<Identity> = (0..5).map(|i| identity(2_000_000 + i)).collect();
    let mut with_strangers = net.everyone();
    with_strangers.extend(strangers.iter().map(entry));
    // Young identities: certified by issuer 2 in the request's own epoch.
    let young: Vec<Identity> = (0..5).map(|i| identity(3_000_000 + i)).collect();
    let young_certs: Vec<Certificate> = young
        .iter()
        .enumerate()
        .map(|(s, id)| Certificate::issue(&issuer(2), id.node, s as u32, NOW.0 / EPOCH))
        .collect();
    let mut with_young = net.everyone();
    with_young.extend(young.iter().map(entry));
    let named = next_round();
    for (n, (what, entries)) in [("unadmitted", with_strangers), ("too young", with_young)]
        .into_iter()
        .enumerate()
    {
        let snapshot = DirectorySnapshot::new(entries);
        let signed = SignedRequest::sign(
            request(20 + n as u8, net.honest[0].node, Some(named)),
            &key(),
        );
        for me in &net.honest[1..] {
            let view = net.view(me);
            view.lock()
                .unwrap()
                .handle_message(
                    net.honest[0].node,
                    MemberMessage::Push {
                        entries: young_certs.clone(),
                    },
                    NOW,
                )
                .expect("young certificates are admitted");
            let mut e = net.engine_with_view(me, view);
            e.handle_request(
                NOW,
                net.honest[0].node,
                signed.clone(),
                Some(snapshot.clone()),
            );
            assert_eq!(
                refused(&events(&mut e)),
                Some(RefusalKind::Candidates),
                "{what}"
            );
        }
    }
    // Over an honest snapshot, a hundred rounds' plans place only admitted identities.
    let admitted: BTreeSet<NodeId> = net.honest.iter().map(|i| i.node).collect();
    let dir = SortedDirectory::new(net.everyone());
    let b = beacon();
    for r in 0..100 {
        let round = named.round + r;
        let req = request(30, net.honest[0].node, Some(BeaconRef { round, ..named }));
        let randomness = b.verify(round, &chain().round(round)).unwrap();
        let plan = Plan::build(&req, &request_seed(&req, Some(&randomness)), &dir).unwrap();
        for g in plan.groups() {
            for p in 1..=plan.g {
                assert!(plan.candidates(g, p).all(|n| admitted.contains(&n)));
            }
        }
    }
}

/// Defence: a contributor checks that every node that may receive its shares (its leaf's
/// members and backups) is a candidate it can verify when it contributes. Here it accepted the
/// request, then learnt that the issuer of one of its leaf members equivocated on that
/// member's serial (so neither identity is admitted any more): it refuses to send it shares.
#[test]
fn a_contributor_refuses_to_share_with_a_leaf_member_it_can_no_longer_verify() {
    let net = Net::new(30, 0);
    let snapshot = DirectorySnapshot::new(net.everyone());
    let named = next_round();
    let signed = SignedRequest::sign(request(40, net.honest[0].node, Some(named)), &key());
    let me = &net.honest[1];
    let view = net.view(me);
    let mut e = net.engine_with_view(me, view.clone());
    e.handle_request(NOW, net.honest[0].node, signed.clone(), Some(snapshot));
    e.handle_beacon(beacon().round_time(named.round), chain().round(named.round))
        .unwrap();
    assert!(accepted(&events(&mut e)));
    let plan = e.plan(&signed.request.id).unwrap().clone();
    let leaf: GroupId = plan.leaf_of(&me.node);
    let victim = *plan
        .members(leaf)
        .iter()
        .find(|n| **n != me.node)
        .expect("another member");
    let serial = net.honest.iter().position(|i| i.node == victim).unwrap() as u32;
    let evidence = Certificate::issue(&issuer(1), identity(9_999_999).node, serial, 0);
    view.lock()
        .unwrap()
        .handle_message(
            net.honest[2].node,
            MemberMessage::Push {
                entries: vec![evidence],
            },
            NOW,
        )
        .unwrap();
    let result = e.handle_command(
        NOW,
        Command::Contribute {
            computation: signed.request.id,
            values: vec![0.5],
        },
    );
    assert!(
        matches!(&result, Err(CommandError::Refused(r)) if r.kind == RefusalKind::Candidates),
        "{result:?}"
    );
}

/// Defence: the seed is unknown when the request is signed. A commissioner with 10% admitted
/// colluders grinds request ids: for each draw it tries `TRIES` ids and sends the one whose
/// plan (as far as it can compute it before the round: everything but the randomness) puts
/// the most colluders in a target contributor's leaf. The real plan, seeded by the round,
/// gives it no more seats than a commissioner that picks its id at random. Measured over
/// `DRAWS` rounds; the bound is four standard deviations of the difference.
#[test]
fn grinding_request_ids_with_ten_percent_colluders_gets_no_better_placement_than_chance() {
    const DRAWS: u64 = 400;
    const TRIES: u8 = 48;
    let net = Net::new(180, 20);
    let colluders: BTreeSet<NodeId> = net.colluding.iter().map(|i| i.node).collect();
    let dir = SortedDirectory::new(net.everyone());
    let target = net.honest[7].node;
    let b = beacon();
    let named = next_round();
    let seats = |req: &Request, randomness: Option<&grove_protocol::beacon::Randomness>| {
        let plan = Plan::build(req, &request_seed(req, randomness), &dir).unwrap();
        let leaf = plan.leaf_of(&target);
        plan.members(leaf)
            .iter()
            .filter(|n| colluders.contains(n))
            .count() as u64
    };
    let (mut ground, mut random) = (0u64, 0u64);
    let (mut ground_exposed, mut random_exposed) = (0u64, 0u64);
    for d in 0..DRAWS {
        let round = named.round + d;
        let named = BeaconRef { round, ..named };
        let mut req = request(0, net.colluding[0].node, Some(named));
        req.tree.leaf_groups = 4;
        req.privacy = PrivacyParams {
            g: 5,
            t: 3,
            k_min: 1,
        };
        let with_id = |i: u8| {
            let mut r = req.clone();
            r.id = ComputationId(grove_protocol::ids::hash_parts(
                "grind",
                &[&d.to_le_bytes(), &[i]],
            ));
            r
        };
        // The grinder's pick: the id whose plan, computed without the round's randomness,
        // seats the most colluders in the target's leaf.
        let best = (0..TRIES)
            .max_by_key(|&i| (seats(&with_id(i), None), std::cmp::Reverse(i)))
            .unwrap();
        let randomness = b.verify(round, &chain().round(round)).unwrap();
        let g = seats(&with_id(best), Some(&randomness));
        let r = seats(&with_id(TRIES), Some(&randomness));
        ground += g;
        random += r;
        ground_exposed += u64::from(g >= 3);
        random_exposed += u64::from(r >= 3);
    }
    let n = (DRAWS * 5) as f64;
    eprintln!(
        "leaf seats held by colluders over {DRAWS} draws: ground ids {ground} ({:.3}), \
         random ids {random} ({:.3}); leaves with >= t colluders: {ground_exposed} vs {random_exposed}",
        ground as f64 / n,
        random as f64 / n
    );
    // Each of the 5 seats is a colluder's with probability about 0.1: the variance of a
    // total is at most n * 0.25, of the difference of two at most twice that.
    let bound = 4.0 * (2.0 * n * 0.25f64).sqrt();
    assert!(
        (ground as f64) <= random as f64 + bound,
        "grinding gained seats: {ground} vs {random} (bound {bound:.0})"
    );
    // And no more than chance allows in absolute terms: 10% of the seats plus 4 sigma.
    assert!((ground as f64) <= 0.1 * n + 4.0 * (n * 0.09).sqrt());
    assert!(ground_exposed <= random_exposed + 12);
}

/// Drain rule: the round's randomness is recorded before the request, so a restarted engine
/// rebuilds the same plan from its records; a commissioner that launched before its round was
/// out recorded the launch first, waits for the round again after a restart, and plans then.
#[test]
fn the_round_survives_a_restart_for_members_and_for_a_waiting_commissioner() {
    let net = Net::new(30, 0);
    let snapshot = DirectorySnapshot::new(net.everyone());
    let named = next_round();
    let at = beacon().round_time(named.round);
    let drain = |e: &mut Engine, records: &mut Vec<grove_protocol::record::Record>| loop {
        match e.poll_output() {
            Output::Persist(r) => records.push(r),
            Output::Idle { .. } => return,
            _ => {}
        }
    };
    // A member.
    let signed = SignedRequest::sign(request(50, net.honest[0].node, Some(named)), &key());
    let me = &net.honest[1];
    let mut e = net.engine(me);
    let mut records = Vec::new();
    e.handle_request(
        NOW,
        net.honest[0].node,
        signed.clone(),
        Some(snapshot.clone()),
    );
    e.handle_beacon(at, chain().round(named.round)).unwrap();
    drain(&mut e, &mut records);
    let plan = e.plan(&signed.request.id).expect("planned").clone();
    let restored = Engine::restore(
        me.clone(),
        [3; 32],
        Arc::new(PlanCache::default()),
        records,
        at,
    );
    assert_eq!(restored.plan(&signed.request.id), Some(&plan));

    // The commissioner, restarted between its launch and the round.
    let commissioner = &net.honest[0];
    let signed = SignedRequest::sign(request(51, commissioner.node, Some(named)), &key());
    let mut c = net.engine(commissioner);
    let mut records = Vec::new();
    c.handle_command(
        NOW,
        Command::Launch {
            request: Box::new(signed.clone()),
            finish_signature: grove_protocol::engine::sign_finish(&signed.request.id, &key()),
            directory: snapshot.clone(),
        },
    )
    .expect("launched");
    drain(&mut c, &mut records);
    assert!(c.plan(&signed.request.id).is_none());
    let mut c = Engine::restore(
        commissioner.clone(),
        [3; 32],
        Arc::new(PlanCache::default()),
        records,
        NOW,
    )
    .with_beacon(beacon());
    assert_eq!(c.awaited_rounds(), vec![named.round]);
    c.handle_beacon(at, chain().round(named.round)).unwrap();
    assert!(accepted(&events(&mut c)));
    let mut member = net.engine(&net.honest[2]);
    member.handle_request(NOW, commissioner.node, signed.clone(), Some(snapshot));
    member
        .handle_beacon(at, chain().round(named.round))
        .unwrap();
    assert_eq!(
        c.plan(&signed.request.id),
        member.plan(&signed.request.id),
        "the commissioner plans as every member does"
    );
}

/// The whole protocol with the beacon on (harness): requests name the next round of the
/// cluster's test chain, every engine plans when it is published, from its randomness, and
/// the result is exact. The commissioner crashes between its launch and the round, restarts
/// from its records (`Launching`), plans when the round comes, and releases.
#[test]
fn a_computation_seeded_by_the_beacon_releases_the_exact_sum_also_across_a_restart() {
    use grove_protocol::harness::{Cluster, HarnessConfig};
    for crash in [false, true] {
        let mut c = Cluster::new(HarnessConfig::new(60, 31));
        c.use_beacon();
        for i in 1..=40 {
            c.set_counted_contribution(i, &[i as f64, -(i as f64)]);
        }
        let mut p = LaunchParams::new(5, 3, 4, 2, 2);
        // Shares go out once the round is published (up to a second after the request).
        p.timeouts.share_window += 1_000_000;
        if crash {
            c.crash_at(0, c.now.plus(100_000));
            c.restart_at(0, c.now.plus(300_000));
        }
        let id = c.launch(0, &p);
        let plan = c.plan(&id).expect("the cluster's view of the plan");
        // Past the round (at most a second away): every engine planned, from the beacon seed.
        c.run_until(c.now.plus(1_100_000));
        let request = c.engine(5).unwrap().request(&id).unwrap().request.clone();
        assert!(request.beacon.is_some());
        assert_ne!(plan.seed, request_seed(&request, None));
        let mut planned = 0;
        for i in 0..c.len() {
            if let Some(own) = c.engine(i).and_then(|e| e.plan(&id)) {
                assert_eq!(own, &*plan);
                planned += 1;
            }
        }
        assert_eq!(planned, c.len(), "crash: {crash}");
        let o = c.run_checked(&id);
        let released = o.released.as_ref().expect("a result was released");
        assert_eq!(released.version.count, 40, "crash: {crash}");
        assert_eq!(o.included, o.contributors);
    }
}
