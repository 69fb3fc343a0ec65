//! A leader proposes before its report window ends once no missing report could add an item to
//! its manifest (`manifest::settled_manifest`, `agreement::propose_when_ready`). Before, a
//! leaf leader at 200 daemons held four of five reports 3.5 s before its window ended and
//! waited for the fifth, and the levels above waited with it (ARCHITECTURE.md, "The manifest
//! rule").

use grove_protocol::engine::Event;
use grove_protocol::harness::{Cluster, HarnessConfig, LaunchParams};
use grove_protocol::ids::{ComputationId, GroupId, Micros, NodeId};
use grove_protocol::message::Item;
use grove_protocol::record::Record;

const COMMISSIONER: usize = 0;
const NODES: usize = 30;
const CONTRIBUTORS: usize = 24;
const LEAF: GroupId = GroupId { level: 0, index: 0 };
const SHARE_WINDOW: u64 = 300_000;
const REPORT_WINDOW: u64 = 4_000_000;

fn cluster(seed: u64) -> (Cluster, LaunchParams) {
    let mut c = Cluster::new(HarnessConfig::new(NODES, seed));
    for i in 1..=CONTRIBUTORS {
        c.set_counted_contribution(i, &[i as f64, 7.0]);
    }
    let mut p = LaunchParams::new(5, 3, 2, 2, 2);
    p.timeouts.share_window = SHARE_WINDOW;
    // A window long enough that waiting it out shows: the members wait longer for a manifest
    // than the leader waits for reports, so no round times out meanwhile.
    p.timeouts.report_window = REPORT_WINDOW;
    p.timeouts.manifest_timeout = 3 * REPORT_WINDOW;
    p.timeouts.level_span = 3 * REPORT_WINDOW;
    (c, p)
}

/// When the round-0 leader of `LEAF` (position 1) adopted, and the manifest.
fn leader_adoption(c: &Cluster, id: &ComputationId, leader: usize) -> (Micros, Vec<Item>) {
    c.events
        .iter()
        .find_map(|(at, n, e)| match e {
            Event::ManifestAdopted {
                computation,
                group,
                position: 1,
                manifest,
                ..
            } if *n == leader && computation == id && *group == LEAF => {
                Some((*at, manifest.items.clone()))
            }
            _ => None,
        })
        .expect("the leaf's leader adopts")
}

/// The contributors of `LEAF`.
fn leaf_contributors(c: &Cluster, id: &ComputationId) -> Vec<NodeId> {
    let plan = c.plan(id).expect("plan");
    (1..=CONTRIBUTORS)
        .map(|i| c.node_id(i))
        .filter(|n| plan.leaf_of(n) == LEAF)
        .collect()
}

/// One member of a leaf reports 20 s late (a loaded daemon); every contributor's share reached
/// the four others, so its report could add nothing and the leader proposes from four. Without
/// the early rule it waited out its 4 s report window, and the root, which had the other leaf's
/// partial long before, stopped waiting and left the whole leaf out (13 of 24 summed).
#[test]
fn a_leader_missing_one_report_that_could_add_nothing_proposes_before_its_window() {
    let (mut c, p) = cluster(15);
    let launched = c.now;
    let id = c.launch(COMMISSIONER, &p);
    let plan = c.plan(&id).expect("the commissioner plans at launch");
    let leader = c.index_of(&plan.member(LEAF, 1)).unwrap();
    let slow = c.index_of(&plan.member(LEAF, 4)).unwrap();
    c.slow_sends(slow, "report", 20_000_000);
    let o = c.run_checked(&id);
    assert!(o.released.is_some(), "nothing released: {:?}", o.failures);
    assert_eq!(
        o.included.len(),
        CONTRIBUTORS,
        "every contributor is summed"
    );
    let (adopted_at, items) = leader_adoption(&c, &id, leader);
    eprintln!(
        "adopted {} ms after launch",
        (adopted_at.0 - launched.0) / 1000
    );
    let contributors = leaf_contributors(&c, &id);
    assert!(contributors.len() >= 2, "the leaf has contributors");
    for n in &contributors {
        assert!(
            items.contains(&Item::Contributor(*n)),
            "the early manifest names every contributor of the leaf"
        );
    }
    assert!(
        adopted_at.0 < launched.0 + REPORT_WINDOW,
        "the leaf adopted {} ms after launch: it waited for the missing report (its leader's \
         window, {} ms, starts after launch)",
        (adopted_at.0 - launched.0) / 1000,
        REPORT_WINDOW / 1000
    );
}

/// The positions of `LEAF` whose member persisted `contributor`'s share.
fn holders(c: &Cluster, id: &ComputationId, contributor: NodeId) -> Vec<u8> {
    let plan = c.plan(id).expect("plan");
    (1..=5u8)
        .filter(|p| {
            let m = c.index_of(&plan.member(LEAF, *p)).unwrap();
            c.durable(m).iter().any(|r| {
                matches!(r, Record::ShareHeld { computation, group, contributor: x, .. }
                    if computation == id && *group == LEAF && *x == contributor)
            })
        })
        .collect()
}

/// A contributor of the leaf dies after its shares reached `t = 3` positions, and one holder
/// (not the leader) reports 500 ms late: the four reports in show it held by `t - 1`, so the
/// late report could still add it. The leader waits for that report (not for its whole
/// window) and the contributor is summed. Proposing from the four reports would have left it
/// out.
#[test]
fn a_leader_waits_for_a_report_that_could_add_a_contributor() {
    // A probe run finds the victim and which positions its three shares reach (the harness is
    // deterministic: the second run sends the same shares).
    let (mut probe, p) = cluster(15);
    let id = probe.launch(COMMISSIONER, &p);
    let victim = leaf_contributors(&probe, &id)[0];
    let victim_i = probe.index_of(&victim).unwrap();
    probe.crash_after_sends(victim_i, "share", 3);
    probe.run(probe.now.plus(SHARE_WINDOW + 500_000));
    let held = holders(&probe, &id, victim);
    assert_eq!(held.len(), 3, "the victim reached t positions: {held:?}");
    let late = *held
        .iter()
        .find(|p| **p != 1)
        .expect("a holder besides the leader");

    let (mut c, p) = cluster(15);
    let launched = c.now;
    let id = c.launch(COMMISSIONER, &p);
    assert_eq!(leaf_contributors(&c, &id)[0], victim, "same plan");
    c.crash_after_sends(victim_i, "share", 3);
    let plan = c.plan(&id).expect("plan");
    let leader = c.index_of(&plan.member(LEAF, 1)).unwrap();
    let slow = c.index_of(&plan.member(LEAF, late)).unwrap();
    c.slow_sends(slow, "report", 1_500_000);
    c.run(c.now.plus(40_000_000));
    let (adopted_at, items) = leader_adoption(&c, &id, leader);
    eprintln!(
        "adopted {} ms after launch",
        (adopted_at.0 - launched.0) / 1000
    );
    assert!(
        items.contains(&Item::Contributor(victim)),
        "the leader proposed without the report that would add the victim: {items:?}"
    );
    assert!(
        adopted_at.0 < launched.0 + REPORT_WINDOW,
        "the leader waited out its window although every report came ({} ms after launch)",
        (adopted_at.0 - launched.0) / 1000
    );
    let o = c
        .outcome(&id)
        .expect("the result is exact over its reported set");
    assert!(o.released.is_some(), "the computation releases");
    assert!(o.included.contains(&victim), "the victim is summed");
}
