//! A member accepts a proposal only once it has reported in its group
//! (`agreement::on_manifest`). A member still collecting holds nothing to check a proposal
//! against (`agreement::consistent`), so before, a lying round-0 leader that proposed at once
//! (before any share or partial reached its group) had its nearly empty manifest accepted by
//! every member. No later leader may pass over a manifest that many members accepted (it may
//! have been adopted: `agreement::proposal`), and the members, once they hold shares, refuse
//! it: the group never adopted and its contributors were left out (issue 15, found in
//! session 22 when the harness's equivocating root leader proposed from 3 of 5 reports).

use grove_protocol::engine::Event;
use grove_protocol::harness::{Byzantine, Cluster, HarnessConfig, LaunchParams};
use grove_protocol::ids::{ComputationId, Digest, GroupId, Version};
use grove_protocol::message::{Body, Item, Manifest, ManifestMsg, Message};
use grove_protocol::record::Record;
use rand_chacha::rand_core::RngCore;

const COMMISSIONER: usize = 0;

/// 60 nodes, 40 contributors; g = 5, t = 3, 4 leaf groups under fan-in 2 (levels of 4, 2 and
/// 1 groups), as in `tests/byzantine.rs`, with a deadline inside `run_checked`'s minute.
fn setup(seed: u64) -> (Cluster, LaunchParams) {
    let mut c = Cluster::new(HarnessConfig::new(60, seed));
    for i in 1..=40 {
        let values: Vec<f64> = (0..4)
            .map(|_| (c.rng().next_u64() % 2001) as f64 - 1000.0)
            .collect();
        c.set_counted_contribution(i, &values);
    }
    let mut p = LaunchParams::new(5, 3, 4, 2, 4);
    p.lifetime = 30_000_000;
    (c, p)
}

/// The member leading round 0 of `group` (position 1) lies: right at the launch, before
/// anything reached its group, it sends `manifest` as its round-0 proposal to every other
/// candidate of the group, and from then on every proposal, vote and report it sends names the
/// empty manifest (`Byzantine::propose_empty`: it claims to have accepted it). Returns the liar.
fn lie_at_once(c: &mut Cluster, id: &ComputationId, group: GroupId, manifest: Manifest) -> usize {
    let plan = c.plan(id).expect("the commissioner plans at launch");
    let liar = c.index_of(&plan.member(group, 1)).expect("member");
    assert_ne!(liar, COMMISSIONER, "pick another place for the liar");
    let proposal = Message {
        computation: *id,
        round: 0,
        body: Body::Manifest(ManifestMsg {
            group,
            leader: 1,
            manifest,
        }),
        to: None,
    };
    for p in 1..=plan.g {
        for node in plan.candidates(group, p) {
            let to = c.index_of(&node).expect("a candidate of the plan");
            if to != liar {
                c.inject(liar, to, &proposal, 1_000);
            }
        }
    }
    c.byzantine(
        liar,
        Byzantine {
            propose_empty: true,
            ..Byzantine::default()
        },
    );
    liar
}

/// Members of `group` (liar excepted) that persisted an acceptance of `manifest`.
fn members_accepting(
    c: &Cluster,
    id: &ComputationId,
    group: GroupId,
    liar: usize,
    manifest: &Manifest,
) -> usize {
    let plan = c.plan(id).expect("plan");
    (1..=plan.g)
        .map(|p| c.index_of(&plan.member(group, p)).unwrap())
        .filter(|m| *m != liar)
        .filter(|m| {
            c.durable(*m).iter().any(|r| {
                matches!(r, Record::ManifestAccepted { computation, group: g, manifest: x, .. }
                    if computation == id && *g == group && x == manifest)
            })
        })
        .count()
}

/// Positions of `group` that adopted, over every node.
fn adoptions(c: &Cluster, group: GroupId) -> usize {
    c.events
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::ManifestAdopted { group: g, .. } if *g == group))
        .count()
}

/// A leaf's round-0 leader proposes the empty manifest (the stand-in for a manifest of one,
/// which drops every contributor of the leaf) before any share reached the leaf. Before the
/// rule the four honest members, holding no share yet, accepted it, and the leaf never
/// adopted: its contributors were left out of the result.
#[test]
fn a_leaf_leader_proposing_at_once_does_not_stall_its_leaf() {
    let (mut c, p) = setup(7);
    let id = c.launch(COMMISSIONER, &p);
    let leaf = GroupId { level: 0, index: 1 };
    let empty = Manifest { items: Vec::new() };
    let liar = lie_at_once(&mut c, &id, leaf, empty.clone());
    let o = c.run_checked(&id);
    let accepted = members_accepting(&c, &id, leaf, liar, &empty);
    assert!(o.released.is_some(), "nothing released: {:?}", o.failures);
    assert!(
        adoptions(&c, leaf) >= 3,
        "the leaf did not adopt ({accepted} honest members accepted the early proposal)"
    );
    assert_eq!(
        o.included, o.contributors,
        "a contributor was left out ({accepted} honest members accepted the early proposal)"
    );
    assert_eq!(accepted, 0, "a member accepted before it reported");
}

/// The root's round-0 leader proposes, before any leaf adopted, a manifest of one made-up
/// version of one child. Before the rule the root's honest members, holding no partial yet,
/// accepted it, and the root never adopted: nothing was released (session 22's stall, there
/// from an equivocating leader proposing early).
#[test]
fn a_root_leader_proposing_at_once_does_not_stall_the_root() {
    let (mut c, p) = setup(4);
    let id = c.launch(COMMISSIONER, &p);
    let plan = c.plan(&id).expect("plan");
    let root = plan.root();
    let child = GroupId {
        level: root.level - 1,
        index: 0,
    };
    let bogus = Manifest {
        items: vec![Item::Child {
            group: child,
            version: Version {
                digest: Digest([7; 32]),
                count: 1,
            },
        }],
    };
    let liar = lie_at_once(&mut c, &id, root, bogus.clone());
    let o = c.run_checked(&id);
    let accepted = members_accepting(&c, &id, root, liar, &bogus);
    assert!(
        o.released.is_some(),
        "nothing released ({accepted} honest members accepted the early proposal): {:?}",
        o.failures
    );
    assert_eq!(o.included, o.contributors, "a contributor was left out");
    assert_eq!(accepted, 0, "a member accepted before it reported");
}
