//! A contributor alone in its leaf (`manifest::alone`). The leaf's partial sum over a manifest
//! of one contributor is that contributor's share at each position, and it goes to the parent
//! group: `t` points held across leaf and parent members (a coalition below the threshold of
//! each group) would rebuild the value. So no group sums such a manifest: the contributor is
//! left out. The privacy checker (`check::Combinations`) flagged it on 8 of these 60 seeds
//! before; every run is checked by `run_checked` (exactness, agreement, privacy).

use grove_protocol::engine::Event;
use grove_protocol::harness::{Byzantine, Cluster, HarnessConfig, LaunchParams};
use grove_protocol::ids::{ComputationId, GroupId, NodeId};
use rand_chacha::rand_core::RngCore;
use std::collections::{BTreeMap, BTreeSet};

const COMMISSIONER: usize = 0;

/// g = 5, t = 3, 4 leaf groups under fan-in 2, 20 contributors on 40 nodes: about one seed in
/// eight puts a contributor alone in a leaf.
fn setup(seed: u64) -> (Cluster, ComputationId) {
    let mut c = Cluster::new(HarnessConfig::new(40, seed));
    for i in 1..=20 {
        let v = (c.rng().next_u64() % 2001) as f64 - 1000.0;
        c.set_counted_contribution(i, &[v]);
    }
    let id = c.launch(COMMISSIONER, &LaunchParams::new(5, 3, 4, 2, 1));
    (c, id)
}

/// Contributors alone in their leaf.
fn alone(c: &Cluster, id: &ComputationId) -> BTreeMap<NodeId, GroupId> {
    let plan = c.plan(id).expect("plan");
    let mut by_leaf: BTreeMap<GroupId, Vec<NodeId>> = BTreeMap::new();
    for i in 1..=20 {
        let n = c.node_id(i);
        by_leaf.entry(plan.leaf_of(&n)).or_default().push(n);
    }
    by_leaf
        .into_iter()
        .filter(|(_, cs)| cs.len() == 1)
        .map(|(leaf, cs)| (cs[0], leaf))
        .collect()
}

/// Manifests refused as inconsistent with what the refusing position holds.
fn refused(c: &Cluster) -> usize {
    c.events
        .iter()
        .filter(|(_, _, e)| {
            matches!(e, Event::MessageRejected { reason, .. }
                if reason == "a manifest that leaves out an item this position holds")
        })
        .count()
}

#[test]
fn a_contributor_alone_in_its_leaf_is_left_out_and_exposed_to_no_coalition() {
    let mut seeds_with_one_alone = 0;
    for seed in 20_000..20_060u64 {
        let (mut c, id) = setup(seed);
        let lone = alone(&c, &id);
        // Panics on an exposure, a disagreement or an inexact sum.
        let o = c.run_checked(&id);
        assert!(o.released.is_some(), "seed {seed}: nothing released");
        let expected: BTreeSet<NodeId> = o
            .contributors
            .iter()
            .filter(|n| !lone.contains_key(n))
            .copied()
            .collect();
        assert_eq!(
            o.included, expected,
            "seed {seed}: only the lone are left out"
        );
        // The lone contributor's leaf agrees on the empty manifest (its parent does not cut it).
        for leaf in lone.values() {
            let adopted: BTreeSet<(u8, u64)> = c
                .events
                .iter()
                .filter_map(|(_, _, e)| match e {
                    Event::ManifestAdopted {
                        group,
                        position,
                        version,
                        ..
                    } if group == leaf => Some((*position, version.count)),
                    _ => None,
                })
                .collect();
            assert!(
                adopted.len() >= 3 && adopted.iter().all(|(_, count)| *count == 0),
                "seed {seed}: leaf {leaf:?} adopted {adopted:?}"
            );
        }
        // Every honest member accepts the empty manifest at once: it stands for the manifest
        // of one, so the contributor it would have kept is not held against it.
        assert_eq!(
            refused(&c),
            0,
            "seed {seed}: an honest manifest was refused"
        );
        seeds_with_one_alone += usize::from(!lone.is_empty());
    }
    assert!(seeds_with_one_alone >= 5, "too few seeds exercise the rule");
}

/// A member that claims in its reports to have adopted what it holds (a manifest of the
/// lone contributor) is refused by every honest position, which would otherwise adopt it on
/// its word and send the contributor's shares to the parent: the claim carries no certificate.
#[test]
fn a_member_claiming_a_manifest_of_a_lone_contributor_is_refused() {
    let (mut c, id) = setup(20_011);
    let lone = alone(&c, &id);
    let (&contributor, &leaf) = lone
        .iter()
        .next()
        .expect("seed 20011 has a lone contributor");
    let plan = c.plan(&id).unwrap();
    for position in [2, 4] {
        let liar = c.index_of(&plan.member(leaf, position)).unwrap();
        assert_ne!(liar, COMMISSIONER);
        c.byzantine(
            liar,
            Byzantine {
                claim_held: true,
                ..Byzantine::default()
            },
        );
    }
    let o = c.run_checked(&id);
    assert!(
        !o.included.contains(&contributor),
        "the lone contributor was summed"
    );
    // Refused for want of a certificate: no honest position accepts a manifest of one, so no
    // quorum signs one (a certified claim is adopted without checking what the position holds).
    let unproven = c
        .events
        .iter()
        .filter(|(_, _, e)| {
            matches!(e, Event::MessageRejected { reason, .. }
                if reason == "a claimed adoption without a certificate of accepts from a quorum and t positions")
        })
        .count();
    assert!(unproven > 0, "no claim was refused");
}
