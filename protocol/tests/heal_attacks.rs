//! Attacks on heals, share pulls and send-ahead, played on the cluster harness with
//! `Cluster::inject` and the harness's fault hooks. Each test fails when its defence is removed
//! (the mutation checks are listed in ARCHITECTURE.md, "Heals, share pulls and send-ahead").

use grove_protocol::engine::Event;
use grove_protocol::harness::{Cluster, HarnessConfig, LaunchParams};
use grove_protocol::ids::{ComputationId, GroupId, NodeId, Position, Version};
use grove_protocol::limits::MAX_HEAL_GO_ANSWERS;
use grove_protocol::message::{Body, HealGoMsg, HealQueryMsg, Message, ShareQueryMsg, Slot};
use grove_protocol::record::Record;
use rand_chacha::rand_core::RngCore;
use std::collections::BTreeMap;

const COMMISSIONER: usize = 0;

/// `nodes` nodes; nodes `1..=contributors` contribute vectors of `len` integers.
fn setup(nodes: usize, contributors: usize, len: usize, seed: u64) -> Cluster {
    let mut c = Cluster::new(HarnessConfig::new(nodes, seed));
    for i in 1..=contributors {
        let values: Vec<f64> = (0..len)
            .map(|_| (c.rng().next_u64() % 2001) as f64 - 1000.0)
            .collect();
        c.set_counted_contribution(i, &values);
    }
    c
}

/// g = 5, t = 3, 4 leaf groups under fan-in 2.
fn small_params() -> LaunchParams {
    LaunchParams::new(5, 3, 4, 2, 6)
}

fn leaf(index: u32) -> GroupId {
    GroupId { level: 0, index }
}

fn member(c: &Cluster, id: &ComputationId, group: GroupId, position: Position) -> usize {
    let plan = c.plan(id).expect("plan");
    c.index_of(&plan.member(group, position))
        .expect("member in cluster")
}

/// The positions of `group` whose member persisted `contributor`'s share.
fn holders(c: &Cluster, id: &ComputationId, group: GroupId, contributor: NodeId) -> Vec<Position> {
    (1..=5)
        .filter(|p| {
            c.durable(member(c, id, group, *p)).iter().any(|r| {
                matches!(r, Record::ShareHeld { computation, group: g, contributor: x, .. }
                    if computation == id && *g == group && *x == contributor)
            })
        })
        .collect()
}

/// One contributor of leaf 0 reaches only `t` of its positions and dies; the members holding
/// its share send ahead a version with it, but the two that report late (holding it) are not
/// among the reports the leader decides on, so the group adopts a version without it. The
/// parent positions then hold the sum of the version sent ahead and of the adopted one.
fn cut_after_send_ahead(seed: u64) -> (Cluster, ComputationId) {
    let contributors = 40;
    // A probe run finds which positions the victim's three shares reach (the harness is
    // deterministic: the second run sends the same shares).
    let victim_and_holders = |c: &mut Cluster| -> Option<(usize, ComputationId)> {
        let id = c.launch(COMMISSIONER, &small_params());
        let plan = c.plan(&id).expect("plan");
        let victim = (1..=contributors).find(|i| plan.leaf_of(&c.node_id(*i)) == leaf(0))?;
        Some((victim, id))
    };
    let mut probe = setup(60, contributors, 6, seed);
    let (victim, id) = victim_and_holders(&mut probe).expect("leaf 0 has a contributor");
    probe.crash_after_sends(victim, "share", 3);
    probe.run(probe.now.plus(1_000_000));
    let held = holders(&probe, &id, leaf(0), probe.node_id(victim));
    assert_eq!(
        held.len(),
        3,
        "the victim's share reached t positions: {held:?}"
    );
    assert!(
        held.contains(&1),
        "the first full vector goes to position 1"
    );

    let mut c = setup(60, contributors, 6, seed);
    let (v, id) = victim_and_holders(&mut c).expect("same plan");
    assert_eq!(v, victim);
    c.crash_after_sends(victim, "share", 3);
    // The holders other than the round-0 leader (position 1) report late: the leader decides
    // on its own report and those of the two positions that never got the victim's share.
    for p in held.iter().filter(|p| **p != 1) {
        let m = member(&c, &id, leaf(0), *p);
        c.slow_sends(m, "report", 2_000_000);
    }
    c.run(c.now.plus(60_000_000));
    (c, id)
}

#[test]
fn a_version_sent_ahead_and_another_adopted_expose_no_difference() {
    let (c, id) = cut_after_send_ahead(11);
    let o = c
        .outcome(&id)
        .expect("the result is exact over its reported set");
    assert!(o.released.is_some(), "the computation releases");
    // The victim's share reached t members, yet it is not in the result: the leaf adopted a
    // version other than the one its holders sent ahead.
    let plan = c.plan(&id).expect("plan");
    let victim = o
        .contributors
        .iter()
        .find(|n| plan.leaf_of(n) == leaf(0) && !o.included.contains(n));
    assert!(victim.is_some(), "a contributor of leaf 0 was cut: {o:?}");
    let sent_ahead = c
        .events
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::SentAhead { group, .. } if *group == leaf(0)))
        .count();
    assert!(sent_ahead >= 1, "a leaf-0 member sent ahead");
    // The parent positions got the partial sent ahead sealed, and the key of a version the leaf
    // did not adopt never comes: no node holds two versions' points, so no coalition below the
    // threshold combines the cut contributor's share.
    assert!(
        c.privacy_violations().is_empty(),
        "privacy: {:?}",
        c.privacy_violations()
    );
}

/// Runs until every position of `group` adopted a manifest; returns its version.
fn run_until_adopted(c: &mut Cluster, group: GroupId, g: u8) -> Version {
    let limit = c.now.plus(30_000_000);
    loop {
        let now = c.now;
        c.run_until(now.plus(5_000));
        let adopted: BTreeMap<Position, Version> = c
            .events
            .iter()
            .filter_map(|(_, _, e)| match e {
                Event::ManifestAdopted {
                    group: gr,
                    position,
                    version,
                    ..
                } if *gr == group => Some((*position, *version)),
                _ => None,
            })
            .collect();
        if adopted.len() == usize::from(g) {
            return adopted[&1];
        }
        assert!(c.now < limit, "{group:?} never adopted at every position");
    }
}

fn heal_parts_sent(c: &Cluster) -> u64 {
    c.traffic.by_kind.get("heal-part").map_or(0, |k| k.0)
}

fn heal_go(
    id: ComputationId,
    round: u32,
    child: GroupId,
    to: Position,
    version: Version,
    helpers: Vec<(Position, NodeId)>,
) -> Message {
    Message {
        computation: id,
        round,
        to: Some(Slot {
            group: child,
            position: to,
        }),
        body: Body::HealGo(HealGoMsg {
            child,
            target: 1,
            version: version.digest,
            helpers: helpers.iter().map(|h| h.0).collect(),
            helper_nodes: helpers.iter().map(|h| h.1).collect(),
        }),
    }
}

/// A parent member (at target 1) colludes with the backups of two positions of its child: it
/// sends the child's honest member at position 2 a go naming those backups as the other
/// helpers. Their pairwise masks are the colluders' own, so the term would come back unmasked:
/// the honest member's point of the child's sum, one honest helper at a time. The member
/// refuses a go whose helpers are not the nodes it sees serving their positions.
#[test]
fn heal_helpers_chosen_by_the_requester_are_refused() {
    let mut c = setup(60, 40, 6, 21);
    let id = c.launch(COMMISSIONER, &small_params());
    let version = run_until_adopted(&mut c, leaf(0), 5);
    let plan = c.plan(&id).expect("plan");
    let parent = plan.parent(leaf(0)).expect("leaf 0 has a parent");
    let attacker = member(&c, &id, parent, 1);
    let honest = plan.member(leaf(0), 2);
    let h = c.index_of(&honest).expect("in cluster");
    let colluders: Vec<NodeId> = [3, 4]
        .iter()
        .map(|p| *plan.backups(leaf(0), *p).first().expect("a backup"))
        .collect();
    let before = heal_parts_sent(&c);
    let chosen = vec![(2, honest), (3, colluders[0]), (4, colluders[1])];
    c.inject(
        attacker,
        h,
        &heal_go(id, 7, leaf(0), 2, version, chosen),
        1_000,
    );
    let now = c.now;
    c.run_until(now.plus(200_000));
    assert_eq!(
        heal_parts_sent(&c),
        before,
        "the honest member answered a go naming colluding backups"
    );
    assert_eq!(c.rejections(h, "heal-go", "not seen serving"), 1);

    // The same go naming the members that serve those positions is answered: the refusal is
    // about the helpers, not about the injected go.
    let members = vec![
        (2, honest),
        (3, plan.member(leaf(0), 3)),
        (4, plan.member(leaf(0), 4)),
    ];
    c.inject(
        attacker,
        h,
        &heal_go(id, 8, leaf(0), 2, version, members),
        1_000,
    );
    let now = c.now;
    c.run_until(now.plus(200_000));
    assert_eq!(heal_parts_sent(&c), before + 1);
}

/// A parent member asks one child member again and again (fresh go ids, valid helpers): past
/// `MAX_HEAL_GO_ANSWERS` for its target, the member refuses.
#[test]
fn heal_gos_past_the_bound_per_target_are_refused() {
    let mut c = setup(60, 40, 6, 22);
    let id = c.launch(COMMISSIONER, &small_params());
    let version = run_until_adopted(&mut c, leaf(0), 5);
    let plan = c.plan(&id).expect("plan");
    let parent = plan.parent(leaf(0)).expect("leaf 0 has a parent");
    let requester = member(&c, &id, parent, 1);
    let h = member(&c, &id, leaf(0), 2);
    let members: Vec<(Position, NodeId)> = [2, 3, 4]
        .iter()
        .map(|p| (*p, plan.member(leaf(0), *p)))
        .collect();
    let before = heal_parts_sent(&c);
    let extra = 3;
    for round in 0..MAX_HEAL_GO_ANSWERS + extra {
        c.inject(
            requester,
            h,
            &heal_go(id, 100 + round, leaf(0), 2, version, members.clone()),
            1_000 + u64::from(round) * 1_000,
        );
    }
    let now = c.now;
    c.run_until(now.plus(300_000));
    assert_eq!(
        heal_parts_sent(&c) - before,
        u64::from(MAX_HEAL_GO_ANSWERS),
        "one answer per go up to the bound"
    );
    assert_eq!(c.rejections(h, "heal-go", "past the bound"), extra as usize);
}

/// As above, with the child member restarted once it answered `MAX_HEAL_GO_ANSWERS` gos: the
/// count is persisted before each answer (`Record::HealGoAnswered`), so a requester cannot
/// crash the member (or wait for a restart) to get more masked terms.
#[test]
fn the_heal_go_bound_survives_a_restart() {
    let mut c = setup(60, 40, 6, 22);
    let id = c.launch(COMMISSIONER, &small_params());
    let version = run_until_adopted(&mut c, leaf(0), 5);
    let plan = c.plan(&id).expect("plan");
    let parent = plan.parent(leaf(0)).expect("leaf 0 has a parent");
    let requester = member(&c, &id, parent, 1);
    let h = member(&c, &id, leaf(0), 2);
    let members: Vec<(Position, NodeId)> = [2, 3, 4]
        .iter()
        .map(|p| (*p, plan.member(leaf(0), *p)))
        .collect();
    let before = heal_parts_sent(&c);
    for round in 0..MAX_HEAL_GO_ANSWERS {
        c.inject(
            requester,
            h,
            &heal_go(id, 100 + round, leaf(0), 2, version, members.clone()),
            1_000 + u64::from(round) * 1_000,
        );
    }
    let now = c.now;
    c.run_until(now.plus(300_000));
    assert_eq!(heal_parts_sent(&c) - before, u64::from(MAX_HEAL_GO_ANSWERS));
    // A restart too short for anyone to fail the member over.
    let now = c.now;
    c.crash_at(h, now.plus(1_000));
    c.restart_at(h, now.plus(2_000));
    c.run_until(now.plus(10_000));
    assert_eq!(c.restarts(h), 1);
    let extra = 3;
    for round in 0..extra {
        c.inject(
            requester,
            h,
            &heal_go(id, 200 + round, leaf(0), 2, version, members.clone()),
            1_000 + u64::from(round) * 1_000,
        );
    }
    let now = c.now;
    c.run_until(now.plus(300_000));
    assert_eq!(
        heal_parts_sent(&c) - before,
        u64::from(MAX_HEAL_GO_ANSWERS),
        "the restarted member answered past the bound"
    );
    assert_eq!(c.rejections(h, "heal-go", "past the bound"), extra as usize);
}

/// A backup of position 2 of leaf 0 pulls a contributor's share for that position while the
/// member is alive (it holds the share). The contributor did not fail over to it, so the backup
/// gets nothing: the point stays with the member alone.
#[test]
fn a_share_query_from_a_backup_while_the_member_lives_is_refused() {
    let mut c = setup(60, 40, 6, 23);
    let id = c.launch(COMMISSIONER, &small_params());
    run_until_adopted(&mut c, leaf(0), 5);
    let plan = c.plan(&id).expect("plan");
    let contributor = (1..=40)
        .find(|i| plan.leaf_of(&c.node_id(*i)) == leaf(0))
        .expect("leaf 0 has a contributor");
    let backup = *plan.backups(leaf(0), 2).first().expect("a backup");
    let b = c.index_of(&backup).expect("in cluster");
    let query = Message {
        computation: id,
        round: 0,
        to: None,
        body: Body::ShareQuery(ShareQueryMsg {
            group: leaf(0),
            position: 2,
        }),
    };
    c.inject(b, contributor, &query, 1_000);
    let now = c.now;
    c.run_until(now.plus(300_000));
    let x = c.node_id(contributor);
    let pulled = c.durable(b).iter().any(|r| {
        matches!(r, Record::ShareHeld { computation, contributor: y, .. }
            if *computation == id && *y == x)
    });
    assert!(!pulled, "the backup holds the contributor's share");
    assert_eq!(
        c.rejections(contributor, "share-query", "did not fail over"),
        1
    );
    assert!(c.is_alive(member(&c, &id, leaf(0), 2)));
    let o = c.run_checked(&id);
    assert!(o.released.is_some());
}

/// Two peers outside the request's candidate set (never admitted: not in the directory
/// snapshot the request was planned over) see the request: one contributes, the other
/// declines. Their leaf members refuse both (`Rejection::NotACandidate`): an outsider's share
/// would enter the result, and its decline would count towards closing its leaf early.
#[test]
fn shares_and_declines_from_outside_the_candidate_set_are_refused() {
    let mut c = setup(60, 40, 6, 31);
    let (outsider, decliner) = (5, 50);
    c.leave_out_of_directory(outsider);
    c.leave_out_of_directory(decliner);
    let id = c.launch(COMMISSIONER, &small_params());
    let o = c.run_checked(&id);
    assert!(o.released.is_some(), "{:?}", o.failures);
    let refused = |kind| {
        (0..c.len())
            .map(|n| c.rejections(n, kind, "candidate set"))
            .sum::<usize>()
    };
    // Every failed expectation at once, so that one mutation shows each check's effect.
    let mut wrong = Vec::new();
    if o.included.contains(&c.node_id(outsider)) {
        wrong.push("the outsider's contribution is in the result".to_string());
    }
    if o.included.len() != 39 {
        wrong.push(format!(
            "{} contributors included, not the 39 admitted",
            o.included.len()
        ));
    }
    if refused("share") == 0 {
        wrong.push("no share refused".into());
    }
    if refused("decline") == 0 {
        wrong.push("no decline refused".into());
    }
    assert!(wrong.is_empty(), "{wrong:?}");
}

/// A parent member floods a backup of a child position with heal queries. The backup serves
/// no position of the child, so each query would make it ask the child's other `g - 1`
/// positions for their adopted manifest (`heal::ask_for_adoption`); it asks at most once per
/// `heal_attempt`, so 50 queries within one attempt cost what one costs. Measured as the
/// difference between two identical runs, one with a single query and one with 50.
#[test]
fn heal_queries_flooding_a_backup_make_it_ask_once_per_attempt() {
    let reports_after = |queries: u32| {
        let mut c = setup(60, 40, 6, 23);
        let id = c.launch(COMMISSIONER, &small_params());
        run_until_adopted(&mut c, leaf(0), 5);
        let plan = c.plan(&id).expect("plan");
        let parent = plan.parent(leaf(0)).expect("leaf 0 has a parent");
        let requester = member(&c, &id, parent, 1);
        let backup = plan
            .backups(leaf(0), 2)
            .iter()
            .find(|n| (1..=5).all(|p| plan.member(leaf(0), p) != **n))
            .and_then(|n| c.index_of(n))
            .expect("a backup of position 2 serving no position of the leaf");
        for q in 0..queries {
            let query = Message {
                computation: id,
                round: 0,
                to: Some(Slot {
                    group: leaf(0),
                    position: 2,
                }),
                body: Body::HealQuery(HealQueryMsg {
                    child: leaf(0),
                    target: 1,
                }),
            };
            c.inject(requester, backup, &query, 1_000 + u64::from(q) * 100);
        }
        let now = c.now;
        c.run_until(now.plus(300_000));
        c.traffic.by_kind.get("report").map_or(0, |k| k.0)
    };
    let one = reports_after(1);
    let many = reports_after(50);
    assert!(one > 0);
    assert_eq!(many, one, "50 queries cost more reports than one");
}
