//! Byzantine aggregators on the cluster harness (`harness/byzantine.rs`): members that vote
//! ahead, propose manifests of one, withhold, equivocate, send root shares off the polynomial
//! and ask for promises of the last round they lead. Each scenario asserts what its defence
//! guarantees, and a seeded sweep mixes the attacks at random places (within what a group
//! tolerates). Every run is checked by the harness: the released sum is exact over the
//! contributor set its version names, no two positions of a group adopt different manifests,
//! and the privacy checker records no exposure.
//!
//! `GROVE_BYZANTINE_SEEDS` sets the number of sweep seeds (default 20).

use grove_protocol::engine::{Event, Failure};
use grove_protocol::harness::{Byzantine, Cluster, LaunchParams, Outcome};
use grove_protocol::ids::{ComputationId, Digest, GroupId, Micros, NodeId, Version};
use grove_protocol::limits::MAX_AGREE_ROUNDS;
use grove_protocol::message::{
    AdoptionCertificate, Body, Item, Manifest, ManifestMsg, Message, ReportMsg, Slot, SolicitMsg,
};
mod common;

use common::{adopted_counts, leaf, rejected};
use rand_chacha::rand_core::RngCore;
use std::collections::BTreeSet;

const COMMISSIONER: usize = 0;

fn setup(nodes: usize, contributors: usize, seed: u64) -> Cluster {
    common::counted_cluster(nodes, contributors, seed)
}

/// g = 5, t = 3, 4 leaf groups under fan-in 2: levels of 4, 2 and 1 groups.
fn params() -> LaunchParams {
    LaunchParams::new(5, 3, 4, 2, 4)
}

/// `params()` with a deadline inside `run_checked`'s 60 s, so that a run that cannot release
/// reports why (missing shares are reported at the deadline).
fn short_lived() -> LaunchParams {
    let mut p = params();
    p.lifetime = 30_000_000;
    p
}

/// The member at `position` of `group`; the scenarios place liars where the commissioner is not
/// (a commissioner that lies only hurts itself).
fn member(c: &Cluster, id: &ComputationId, group: GroupId, position: u8) -> usize {
    let plan = c.plan(id).expect("plan");
    let m = c.index_of(&plan.member(group, position)).expect("member");
    assert_ne!(m, COMMISSIONER, "pick another place for the liar");
    m
}

/// A manifest naming one made-up version of leaf 0 (digest bytes `digest`).
fn bogus(digest: u8) -> Manifest {
    Manifest {
        items: vec![Item::Child {
            group: leaf(0),
            version: Version {
                digest: Digest([digest; 32]),
                count: 1,
            },
        }],
    }
}

/// A report from `position` of group `inner` to its position 3 claiming that the group accepted
/// and adopted `manifest`, with `certificate` as its evidence: what a lying member sends to
/// make a position that cannot vouch adopt it.
fn adoption_claim(
    id: ComputationId,
    inner: GroupId,
    position: u8,
    manifest: Manifest,
    certificate: Option<AdoptionCertificate>,
) -> Message {
    Message {
        computation: id,
        round: 0,
        body: Body::Report(ReportMsg {
            group: inner,
            position,
            serving: true,
            items: Vec::new(),
            accepted: Some((0, manifest.clone())),
            adopted: Some(manifest),
            certificate,
        }),
        to: Some(Slot {
            group: inner,
            position: 3,
        }),
    }
}

/// The certificate the liars at `positions` of `inner` can make for `manifest` in round 0:
/// their own signed accepts (each claims to serve its position).
fn liars_certificate(
    c: &Cluster,
    id: ComputationId,
    inner: GroupId,
    positions: &[u8],
    manifest: &Manifest,
) -> AdoptionCertificate {
    AdoptionCertificate {
        round: 0,
        accepts: positions
            .iter()
            .map(|p| c.signed_accept(member(c, &id, inner, *p), id, inner, 0, manifest, *p, true))
            .collect(),
    }
}

/// A computation over 60 nodes run until just before any leaf adopts, so that the positions of
/// the inner group (1, 0) hold no child version to check a claim against yet: the cluster, the
/// computation, that group, and its members at positions 2 (the liar) and 3 (the victim).
fn inner_group_holding_nothing() -> (Cluster, ComputationId, GroupId, usize, usize) {
    let mut c = setup(60, 40, 2);
    let id = c.launch(COMMISSIONER, &params());
    let inner = GroupId { level: 1, index: 0 };
    let liar = member(&c, &id, inner, 2);
    let victim = member(&c, &id, inner, 3);
    c.run_until(c.now.plus(100_000));
    (c, id, inner, liar, victim)
}

fn released(o: &Outcome) -> &grove_protocol::engine::Released {
    o.released.as_ref().expect("a result was released")
}

#[test]
fn a_candidate_voting_ahead_for_every_round_halts_no_group_the_root_included() {
    let mut c = setup(60, 40, 1);
    let id = c.launch(COMMISSIONER, &params());
    let plan = c.plan(&id).unwrap();
    // A member of the root (position 2, not the first leader) and of a leaf pre-vote.
    let liars = [member(&c, &id, plan.root(), 2), member(&c, &id, leaf(0), 2)];
    for l in liars {
        let b = Byzantine {
            pre_vote: true,
            ..Byzantine::default()
        };
        // The votes ahead go out right at the launch, before any leader can propose (a liar
        // whose first send comes late votes after the real proposals), and the liar is silent
        // otherwise: leading its own rounds honestly, it would end the attack in round 1.
        for (to, m) in b.on_first_send(c.node_id(l), id, &plan) {
            let to = c.index_of(&to).expect("a leader of the plan");
            c.inject(l, to, &m, 1_000);
        }
        c.byzantine(
            l,
            Byzantine {
                withhold: true,
                ..Byzantine::default()
            },
        );
    }
    let o = c.run_checked(&id);
    // A silent liar that is also a contributor sends no share: it is out.
    let silent: BTreeSet<_> = liars.iter().map(|l| c.node_id(*l)).collect();
    let expected: BTreeSet<_> = o.contributors.difference(&silent).copied().collect();
    assert_eq!(o.included, expected, "every honest contributor is in");
}

#[test]
fn a_leader_proposing_a_manifest_of_one_is_refused_and_its_leaf_is_kept_whole() {
    let mut c = setup(60, 40, 7);
    let id = c.launch(COMMISSIONER, &params());
    let group = leaf(1);
    // The round-0 leader of the leaf, and the root's.
    let plan = c.plan(&id).unwrap();
    for l in [member(&c, &id, group, 1), member(&c, &id, plan.root(), 1)] {
        c.byzantine(
            l,
            Byzantine {
                manifest_of_one: true,
                ..Byzantine::default()
            },
        );
    }
    let o = c.run_checked(&id);
    assert_eq!(o.included, o.contributors, "no contributor was dropped");
    assert!(
        !adopted_counts(&c, group).contains(&1),
        "a manifest of one was adopted"
    );
    assert!(rejected(&c, "a manifest that leaves out an item this position holds") > 0);
}

#[test]
fn a_withholding_member_at_every_level_costs_no_contributor() {
    let mut c = setup(60, 40, 3);
    let id = c.launch(COMMISSIONER, &params());
    let plan = c.plan(&id).unwrap();
    let inner = GroupId { level: 1, index: 0 };
    for l in [
        member(&c, &id, leaf(3), 1),
        member(&c, &id, inner, 3),
        member(&c, &id, plan.root(), 4),
    ] {
        c.byzantine(
            l,
            Byzantine {
                withhold: true,
                ..Byzantine::default()
            },
        );
    }
    let o = c.run_checked(&id);
    // A withholding leaf member that is also a contributor sends no share: it is out.
    let withheld: BTreeSet<_> = c.byzantine_nodes().map(|(i, _)| c.node_id(i)).collect();
    let expected: BTreeSet<_> = o.contributors.difference(&withheld).copied().collect();
    assert_eq!(o.included, expected);
}

#[test]
fn a_leader_equivocating_splits_no_group() {
    let mut c = setup(60, 40, 4);
    let id = c.launch(COMMISSIONER, &params());
    let group = leaf(3);
    c.byzantine(
        member(&c, &id, group, 1),
        Byzantine {
            equivocate: true,
            ..Byzantine::default()
        },
    );
    // run_checked fails if two positions of a group adopted different manifests.
    let o = c.run_checked(&id);
    assert_eq!(o.included, o.contributors);
    assert_eq!(adopted_counts(&c, group).len(), 1);
}

/// A member's word that its group adopted a manifest reaches a position that holds nothing to
/// check it against yet (here an inner member before any child partial; in the simulator's 5%
/// Byzantine sweep, a backup that had just taken a position over, and a member whose children
/// were late). It found 3 of 20 runs at 1 %/s where such a position adopted a liar's manifest
/// of one child while the rest of its group adopted the real one. One position's word is not
/// enough: the claim must carry a certificate of signed accepts from a quorum and `t`
/// positions, and the liar can sign only its own.
#[test]
fn one_members_claimed_adoption_does_not_split_a_position_holding_nothing() {
    // Before any leaf adopts: the victim holds no child version.
    let (mut c, id, inner, liar, victim) = inner_group_holding_nothing();
    let manifest = bogus(7);
    let cert = liars_certificate(&c, id, inner, &[2], &manifest);
    let claim = adoption_claim(id, inner, 2, manifest, Some(cert));
    c.inject(liar, victim, &claim, 1_000);
    // run_checked fails if two positions of a group adopted different manifests.
    let o = c.run_checked(&id);
    assert_eq!(o.included, o.contributors);
    assert_eq!(adopted_counts(&c, inner).len(), 1);
}

/// Two colluding members claim that their group adopted the same bogus manifest, to a position
/// that holds nothing to check it against yet, each claim carrying the certificate the two can
/// make: their own signed accepts. With two claims enough (the rule before), the victim adopted
/// it while the rest of the group adopted the real manifest (the simulator's 5% Byzantine sweep
/// found this once: seed 5 at 0.25 %/s). A position now adopts on another's word only with a
/// certificate of signed accepts from a quorum of acceptors and the servers of `t` positions,
/// which `t - 1` colluders cannot make.
#[test]
fn two_colluding_members_claiming_adoption_do_not_split_a_position_holding_nothing() {
    let (mut c, id, inner, _, victim) = inner_group_holding_nothing();
    let manifest = bogus(7);
    let cert = liars_certificate(&c, id, inner, &[2, 4], &manifest);
    for position in [2, 4] {
        let liar = member(&c, &id, inner, position);
        let claim = adoption_claim(id, inner, position, manifest.clone(), Some(cert.clone()));
        c.inject(liar, victim, &claim, 1_000);
    }
    // run_checked fails if two positions of a group adopted different manifests.
    let o = c.run_checked(&id);
    assert_eq!(o.included, o.contributors);
    assert_eq!(adopted_counts(&c, inner).len(), 1);
    assert!(
        rejected(
            &c,
            "a claimed adoption without a certificate of accepts from a quorum and t positions"
        ) >= 2
    );
}

/// A liar pads its certificate with accepts in the names of every other candidate of the group
/// (signed with its own key: it has no other), so that it counts a quorum and every position.
/// The signatures do not verify under the named voters' keys, and the claim is refused.
#[test]
fn a_certificate_with_accepts_forged_in_honest_names_is_refused() {
    let (mut c, id, inner, liar, victim) = inner_group_holding_nothing();
    let manifest = bogus(7);
    let plan = c.plan(&id).unwrap();
    let accepts = (1..=plan.g)
        .flat_map(|p| plan.candidates(inner, p).map(move |n| (p, n)))
        .map(|(p, n)| {
            let mut a = c.signed_accept(liar, id, inner, 0, &manifest, p, true);
            a.voter = n;
            a
        })
        .collect();
    let cert = AdoptionCertificate { round: 0, accepts };
    c.inject(
        liar,
        victim,
        &adoption_claim(id, inner, 2, manifest, Some(cert)),
        1_000,
    );
    let o = c.run_checked(&id);
    assert_eq!(o.included, o.contributors);
    assert_eq!(adopted_counts(&c, inner).len(), 1);
    assert_eq!(
        rejected(
            &c,
            "an accept whose signature does not verify under its voter's key"
        ),
        1
    );
}

/// The members at positions 2 and 4 of every group (`t - 1` per group) vote for their leaders'
/// proposals with signatures that do not verify: each their own signature of the same vote in
/// the next round. A leader checks every vote's signature on receipt and counts none of them;
/// one that counted them would carry them in its certificate, and its group's positions would
/// refuse its adopted report (without the check on receipt, this run has positions refuse
/// their honest leaders' reports). So every signature refusal is of a liar's vote, none of a
/// report, and every contributor is in.
#[test]
fn votes_with_bad_signatures_are_refused_by_the_leader_not_carried_in_its_certificate() {
    let mut c = setup(60, 40, 5);
    let id = c.launch(COMMISSIONER, &params());
    let plan = c.plan(&id).unwrap();
    let mut liars = BTreeSet::new();
    for group in plan.groups() {
        for position in [2, 4] {
            let l = c.index_of(&plan.member(group, position)).expect("member");
            if l == COMMISSIONER {
                continue;
            }
            liars.insert(c.node_id(l));
            c.byzantine(
                l,
                Byzantine {
                    bad_vote_signature: true,
                    ..Byzantine::default()
                },
            );
        }
    }
    let o = c.run_checked(&id);
    assert_eq!(o.included, o.contributors, "no contributor was dropped");
    let refusals: Vec<_> = c
        .events
        .iter()
        .filter_map(|(_, _, e)| match e {
            Event::MessageRejected { from, kind, reason }
                if reason == "an accept whose signature does not verify under its voter's key" =>
            {
                Some((*from, *kind))
            }
            _ => None,
        })
        .collect();
    assert!(
        refusals
            .iter()
            .all(|(from, kind)| *kind == "vote" && liars.contains(from)),
        "a signature refused elsewhere than in a liar's vote: {refusals:?}"
    );
    assert!(!refusals.is_empty(), "no liar's vote was refused");
}

/// A liar that claims adoption of a new manifest in each of many messages buys no work from
/// its victim beyond checking each claim's certificate: the victim sends no question per claim
/// (before certificates, every new manifest was a "first" claim and each message made the
/// victim report to its whole group: a liar's message bought `g - 1`; then one round of
/// questions per claimant).
#[test]
fn a_liar_claiming_many_manifests_buys_one_round_of_questions() {
    const CLAIMS: u8 = 40;
    let reports_with = |claims: u8| {
        let (mut c, id, inner, liar, victim) = inner_group_holding_nothing();
        for k in 0..claims {
            let manifest = bogus(k);
            let cert = liars_certificate(&c, id, inner, &[2], &manifest);
            c.inject(
                liar,
                victim,
                &adoption_claim(id, inner, 2, manifest, Some(cert)),
                1_000,
            );
        }
        let o = c.run_checked(&id);
        assert_eq!(o.included, o.contributors);
        assert_eq!(adopted_counts(&c, inner).len(), 1);
        c.traffic.by_kind.get("report").map_or(0, |(n, _)| *n)
    };
    let one = reports_with(1);
    let many = reports_with(CLAIMS);
    // The injected claims themselves are not sent by the engines; what is left is timing
    // noise (a round of questions would be `g - 1 = 4` reports).
    assert!(
        many <= one + 2 * 4,
        "{CLAIMS} claims made the group send {many} reports, against {one} for one claim"
    );
}

/// A lying leader proposes the empty manifest for a leaf of two contributors (and claims it
/// as accepted and adopted). The empty leaf manifest stands for a manifest of one, and members
/// accepted it while it left out at most one full share besides the one it stands for: most
/// members hold one of the two full shares and a seed share of the other, so the liar dropped
/// the whole leaf. A member holding shares of two contributors now refuses it.
#[test]
fn a_leader_emptying_a_leaf_of_two_contributors_is_refused() {
    // 8 contributors over 4 leaves: the first two seeds whose plan has a leaf of exactly two.
    let mut checked = 0;
    for seed in 1..40 {
        let mut c = setup(60, 8, seed);
        let id = c.launch(COMMISSIONER, &params());
        let plan = c.plan(&id).expect("plan");
        let Some(group) = (0..4).map(leaf).find(|g| {
            (1..=8)
                .filter(|i| plan.leaf_of(&c.node_id(*i)) == *g)
                .count()
                == 2
                && c.index_of(&plan.member(*g, 1)) != Some(COMMISSIONER)
        }) else {
            continue;
        };
        let liar = member(&c, &id, group, 1);
        c.byzantine(
            liar,
            Byzantine {
                propose_empty: true,
                ..Byzantine::default()
            },
        );
        let o = c.run_checked(&id);
        assert!(
            !adopted_counts(&c, group).contains(&0),
            "seed {seed}: the empty manifest was adopted"
        );
        // Both of the leaf's contributors are in (a contributor alone in another leaf is out
        // by design: `manifest::alone`).
        let two: BTreeSet<_> = (1..=8)
            .map(|i| c.node_id(i))
            .filter(|n| plan.leaf_of(n) == group)
            .collect();
        assert!(
            two.is_subset(&o.included),
            "seed {seed}: a contributor of the leaf was dropped"
        );
        assert!(rejected(&c, "a manifest that leaves out an item this position holds") > 0);
        checked += 1;
        if checked == 2 {
            return;
        }
    }
    panic!("fewer than two seeds with a leaf of two contributors");
}

#[test]
fn a_root_member_sending_a_share_off_the_polynomial_is_named_and_left_out() {
    let mut c = setup(60, 40, 5);
    let id = c.launch(COMMISSIONER, &params());
    let plan = c.plan(&id).unwrap();
    let liar = member(&c, &id, plan.root(), 2);
    c.byzantine(
        liar,
        Byzantine {
            bad_root_share: true,
            ..Byzantine::default()
        },
    );
    // Two honest root shares arrive late (within the release window), so that the lying one
    // is among the first `t + 1` (with `t + 1` honest shares first, the commissioner releases
    // without it, correctly).
    for p in [4, 5] {
        let m = member(&c, &id, plan.root(), p);
        c.slow_sends(m, "release-share", 100_000);
    }
    // run_checked fails unless the released sum is exact.
    let o = c.run_checked(&id);
    assert_eq!(released(&o).excluded, vec![2]);
    assert_eq!(o.included, o.contributors);
}

#[test]
fn two_root_members_lying_with_one_withholding_are_named_and_nothing_wrong_is_released() {
    // g = 5, t = 3: four shares with two off the polynomial cannot be corrected (4 < t + 2e),
    // only detected.
    let mut c = setup(60, 40, 6);
    let id = c.launch(COMMISSIONER, &params());
    let plan = c.plan(&id).unwrap();
    for (p, b) in [
        (
            2,
            Byzantine {
                bad_root_share: true,
                ..Byzantine::default()
            },
        ),
        (
            4,
            Byzantine {
                bad_root_share: true,
                ..Byzantine::default()
            },
        ),
        (
            5,
            Byzantine {
                withhold: true,
                ..Byzantine::default()
            },
        ),
    ] {
        c.byzantine(member(&c, &id, plan.root(), p), b);
    }
    let o = c.run_checked(&id);
    assert!(o.released.is_none(), "a wrong result was released");
    assert!(
        o.failures.iter().any(
            |f| matches!(f, Failure::InconsistentRootShares { positions } if !positions.is_empty())
        ),
        "{:?}",
        o.failures
    );
}

#[test]
fn a_lying_root_share_among_exactly_t_shares_is_never_released() {
    // g = 5, t = 3: two root members withhold (they look alive, so no backup takes over) and a
    // third sends a share off the polynomial. Exactly `t` shares reach the commissioner, and
    // any `t` shares lie on one polynomial of degree `t - 1`: released, they would give a
    // wrong sum. Nothing is released, and the positions whose shares never came are named.
    let mut c = setup(60, 40, 8);
    let id = c.launch(COMMISSIONER, &short_lived());
    let plan = c.plan(&id).unwrap();
    let bad = Byzantine {
        bad_root_share: true,
        ..Byzantine::default()
    };
    let silent = Byzantine {
        withhold: true,
        ..Byzantine::default()
    };
    for (p, b) in [(2, bad), (4, silent.clone()), (5, silent)] {
        c.byzantine(member(&c, &id, plan.root(), p), b);
    }
    // run_checked fails if the released sum is not exact over its version.
    let o = c.run_checked(&id);
    assert!(o.released.is_none(), "an unchecked result was released");
    assert!(
        o.failures.iter().any(|f| matches!(
            f,
            Failure::SharesMissing { received: 3, missing } if missing == &vec![4, 5]
        )),
        "{:?}",
        o.failures
    );
}

/// How a lying member of a leaf tries to move its group to the last rounds (`liar_jumping_ahead`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Jump {
    /// It asks every other acceptor for its promise of the last round it leads.
    Solicit,
    /// It proposes the empty manifest in that round to every other acceptor (backups that serve
    /// no position hold nothing to check it against and accept it).
    Proposal,
    /// It reports to each other member in the last round that member leads, which makes an
    /// honest member lead (and promise) that round.
    Reports,
}

/// A lying member of a leaf (at position 4 of g = 5, the leader of round 63, the last below
/// `MAX_AGREE_ROUNDS`) is silent, but for its lies of `jump`, sent while the others are still
/// collecting. An acceptor that promised a late round ignores the leaders of every lower round,
/// and no member's manifest timeout takes it past the limit: without a bound on how far a
/// promise may jump, the leaf never adopted and its contributors were missing from the result.
/// An acceptor now promises or accepts a round at another's request only one past its promise,
/// plus one per manifest timeout since (`agreement::round_in_reach`): the lies are refused, and
/// the honest leaders' rounds adopt (one liar is within the liveness bound,
/// `f <= min(g - t, t - 1)`).
///
/// With `behind`, every node that serves no position (the backups the lies go to among them)
/// runs its clock that far behind the commissioner's and the members': such an acceptor counts
/// the bound from when it had the request, not from the later `created_at`, and the lies sent
/// 100 ms after it are refused as with clocks that agree (subtracting the minute of skew a
/// request tolerates would have put round 63 in reach at once).
fn liar_jumping_ahead(jump: Jump, behind: u64) {
    let mut c = setup(60, 40, 3);
    // Room below the cluster's time for clocks that are behind it.
    c.run_until(Micros(c.now.0 + 2 * behind));
    let id = c.launch(COMMISSIONER, &params());
    let plan = c.plan(&id).unwrap();
    let members: BTreeSet<NodeId> = plan
        .groups()
        .flat_map(|g| (1..=plan.g).map(move |p| (g, p)))
        .map(|(g, p)| plan.member(g, p))
        .collect();
    let behind_nodes: Vec<usize> = (0..c.len())
        .filter(|i| *i != COMMISSIONER && !members.contains(&c.node_id(*i)))
        .collect();
    for i in behind_nodes {
        c.set_clock_behind(i, behind);
    }
    let last = |position: u8| {
        (0..MAX_AGREE_ROUNDS)
            .rev()
            .find(|r| (r % u32::from(plan.g)) as u8 + 1 == position)
            .expect("a round")
    };
    let position = (((MAX_AGREE_ROUNDS - 1) % u32::from(plan.g)) as u8) + 1;
    let group = (0..4)
        .map(leaf)
        .find(|g| c.index_of(&plan.member(*g, position)) != Some(COMMISSIONER))
        .expect("a leaf whose liar is not the commissioner");
    let liar = member(&c, &id, group, position);
    c.byzantine(
        liar,
        Byzantine {
            withhold: true,
            ..Byzantine::default()
        },
    );
    c.run_until(c.now.plus(100_000));
    let mut lies = Vec::new();
    for p in 1..=plan.g {
        for (rank, node) in plan.candidates(group, p).enumerate() {
            let Some(to) = c.index_of(&node).filter(|i| *i != liar) else {
                continue;
            };
            let message = |round, body| Message {
                computation: id,
                round,
                body,
                to: None,
            };
            lies.push((
                to,
                match jump {
                    Jump::Solicit => message(
                        last(position),
                        Body::Solicit(SolicitMsg {
                            group,
                            leader: position,
                        }),
                    ),
                    Jump::Proposal => message(
                        last(position),
                        Body::Manifest(ManifestMsg {
                            group,
                            leader: position,
                            manifest: Manifest { items: Vec::new() },
                        }),
                    ),
                    Jump::Reports if rank == 0 => Message {
                        to: Some(Slot { group, position: p }),
                        ..message(
                            last(p),
                            Body::Report(ReportMsg {
                                group,
                                position,
                                serving: true,
                                items: Vec::new(),
                                accepted: None,
                                adopted: None,
                                certificate: None,
                            }),
                        )
                    },
                    Jump::Reports => continue,
                },
            ));
        }
    }
    for (to, lie) in &lies {
        c.inject(liar, *to, lie, 1_000);
    }
    let o = c.run_checked(&id);
    assert_eq!(
        adopted_counts(&c, group).len(),
        1,
        "the leaf of the liar adopted no manifest (or two)"
    );
    // Every contributor but the liar itself (a silent contributor sends nothing) is in.
    let honest: BTreeSet<_> = o
        .contributors
        .iter()
        .filter(|n| **n != c.node_id(liar))
        .copied()
        .collect();
    assert!(
        honest.is_subset(&o.included),
        "contributors missing from the result: {:?}",
        honest.difference(&o.included).collect::<Vec<_>>()
    );
    assert!(
        rejected(&c, "a round past the limit") >= lies.len(),
        "the liar's {} messages were not all refused",
        lies.len()
    );
}

#[test]
fn a_member_asking_for_promises_of_the_last_round_it_leads_does_not_stall_its_group() {
    liar_jumping_ahead(Jump::Solicit, 0);
}

#[test]
fn a_member_asking_for_promises_of_the_last_round_it_leads_does_not_stall_its_group_of_backups_behind(
) {
    liar_jumping_ahead(Jump::Solicit, 50_000_000);
}

#[test]
fn a_member_proposing_in_the_last_round_it_leads_does_not_stall_its_group() {
    liar_jumping_ahead(Jump::Proposal, 0);
}

#[test]
fn a_member_proposing_in_the_last_round_it_leads_does_not_stall_its_group_of_backups_behind() {
    liar_jumping_ahead(Jump::Proposal, 50_000_000);
}

#[test]
fn a_member_reporting_in_each_members_last_round_does_not_stall_its_group() {
    liar_jumping_ahead(Jump::Reports, 0);
}

struct SweepRun {
    seed: u64,
    liars: usize,
    attacks: String,
    included: usize,
    contributors: usize,
    outcome: String,
}

/// 20 seeds, 10% of the plan's aggregators Byzantine at random places with a random mix of
/// attacks: every run releases the exact sum over its reported set or names the faulty root
/// positions, and the privacy checker records nothing.
///
/// The places are drawn within what ARCHITECTURE.md ("What a group tolerates") says a group
/// tolerates, so that every seed asserts the full property: at most `min(g - t, t - 1)` lying
/// members per group (agreement against claims needs at most `t - 1`, liveness at most
/// `min(g - t, t - 1)`), and at most one root member sending shares off the polynomial
/// (release). Seed 1055 (index 55) drew two `bad_root_share` liars into the root, and a wrong
/// sum was released ("released sum differs from the plaintext sum over the reported set"): past
/// the release bound, two liars whose shares are off by the same amount lie, with two honest
/// shares, on one other polynomial (for some positions of `g = 5`), which is 4 of 5 shares, as
/// many as a release needs. Past the bounds, only privacy must still hold; asserting that alone
/// would test less than redrawing the places (a liar that would exceed a group's bound is
/// drawn again; a second root liar keeps its other attacks, not `bad_root_share`, shown as
/// "(s dropped)").
#[test]
fn sweep_10_percent_byzantine_aggregators() {
    let seeds: u64 = std::env::var("GROVE_BYZANTINE_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut runs = Vec::new();
    for seed in 0..seeds {
        let mut c = setup(80, 60, 1000 + seed);
        let id = c.launch(COMMISSIONER, &short_lived());
        let plan = c.plan(&id).unwrap();
        let mut aggregators: Vec<usize> = plan
            .groups()
            .flat_map(|g| (1..=plan.g).map(move |p| (g, p)))
            .filter_map(|(g, p)| c.index_of(&plan.member(g, p)))
            .filter(|i| *i != COMMISSIONER)
            .collect();
        aggregators.sort();
        aggregators.dedup();
        let n = aggregators.len().div_ceil(10);
        // The members of each group (a node serving two positions of one group counts twice),
        // and the most lying members a group tolerates.
        let groups: Vec<Vec<usize>> = plan
            .groups()
            .map(|g| {
                (1..=plan.g)
                    .filter_map(|p| c.index_of(&plan.member(g, p)))
                    .collect()
            })
            .collect();
        let tolerated = usize::from((plan.g - plan.t).min(plan.t - 1));
        let mut liars = BTreeSet::new();
        while liars.len() < n {
            let k = (c.rng().next_u64() % aggregators.len() as u64) as usize;
            let mut with = liars.clone();
            with.insert(aggregators[k]);
            if groups
                .iter()
                .all(|m| m.iter().filter(|i| with.contains(i)).count() <= tolerated)
            {
                liars = with;
            }
        }
        let root_members: BTreeSet<usize> = (1..=plan.g)
            .filter_map(|p| c.index_of(&plan.member(plan.root(), p)))
            .collect();
        let mut bad_root_shares = 0;
        let mut kinds = Vec::new();
        for l in &liars {
            let bits = c.rng().next_u64();
            let mut b = Byzantine {
                pre_vote: bits & 1 != 0,
                manifest_of_one: bits & 2 != 0,
                withhold: bits & 28 == 0, // one in eight
                equivocate: bits & 32 != 0,
                bad_root_share: bits & 64 != 0,
                propose_empty: false,
                claim_held: false,
                bad_vote_signature: false,
            };
            // One root member off the polynomial at most (the release bound).
            let mut kind = String::new();
            if b.bad_root_share && root_members.contains(l) {
                bad_root_shares += 1;
                if bad_root_shares > 1 {
                    b.bad_root_share = false;
                    kind.push_str("(s dropped)");
                }
            }
            kinds.push(short(&b) + &kind);
            c.byzantine(*l, b);
        }
        let o = c.run_checked(&id);
        let outcome = match (&o.released, o.failures.first()) {
            (Some(r), _) if r.excluded.is_empty() => "released".to_string(),
            (Some(r), _) => format!("released, named {:?}", r.excluded),
            (None, Some(Failure::InconsistentRootShares { positions })) => {
                format!("named {positions:?}")
            }
            // Fewer than `t + 1` shares: nothing unchecked is released, and the positions whose
            // shares never came are named.
            (None, Some(Failure::SharesMissing { missing, .. })) if !missing.is_empty() => {
                format!("missing {missing:?}")
            }
            (None, f) => panic!("seed {seed}: no result and no faulty position named: {f:?}"),
        };
        runs.push(SweepRun {
            seed,
            liars: liars.len(),
            attacks: kinds.join(" "),
            included: o.included.len(),
            contributors: o.contributors.len(),
            outcome,
        });
    }
    println!("seed liars included/contributors outcome        attacks");
    for r in &runs {
        println!(
            "{:>4} {:>5} {:>8}/{:<12} {:<22} {}",
            r.seed, r.liars, r.included, r.contributors, r.outcome, r.attacks
        );
    }
    let count = |prefix: &str| {
        runs.iter()
            .filter(|r| r.outcome.starts_with(prefix))
            .count()
    };
    println!(
        "{} seeds: {} released ({} of them naming a root position), {} named, {} missing",
        runs.len(),
        count("released"),
        count("released, named"),
        count("named"),
        count("missing")
    );
}

/// The attacks of one node, one letter each (v: pre-vote, 1: manifest of one, w: withhold,
/// e: equivocate, s: bad root share).
fn short(b: &Byzantine) -> String {
    let mut s = String::new();
    for (on, ch) in [
        (b.pre_vote, 'v'),
        (b.manifest_of_one, '1'),
        (b.withhold, 'w'),
        (b.equivocate, 'e'),
        (b.bad_root_share, 's'),
    ] {
        if on {
            s.push(ch);
        }
    }
    if s.is_empty() {
        s.push('-');
    }
    s
}
