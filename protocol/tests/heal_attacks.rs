//! Attacks on heals, share pulls and send-ahead, played on the cluster harness with
//! `Cluster::inject` and the harness's fault hooks. Each test fails when its defence is removed
//! (the mutation checks are listed in ARCHITECTURE.md, "Heals, share pulls and send-ahead").

use grove_protocol::harness::{Cluster, HarnessConfig, LaunchParams};
use grove_protocol::ids::{ComputationId, GroupId, NodeId, Position};
use grove_protocol::record::Record;
use rand_chacha::rand_core::RngCore;

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
        .filter(|(_, _, e)| matches!(e, grove_protocol::engine::Event::SentAhead { group, .. } if *group == leaf(0)))
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
