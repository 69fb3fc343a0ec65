//! Validity proofs in the engine (issue 17): a contributor proves that its contribution
//! satisfies the query's whole validity circuit (one `validity::circuit::CircuitType` proof),
//! its leaf members exchange verifier shares, and a contribution enters a manifest only if
//! they accept it (`engine/validity.rs`).
//!
//! Every scenario runs the harness's result check (the released sum is exactly the plaintext
//! sum over the contributors the version names) and its privacy checker. A lying contributor
//! must be in no manifest any node adopted, and counted as rejected by its leaf's members;
//! every honest contributor is included.
//!
//! Shares live in prio's `Field64` (`field.rs`), and each proven input's sharing is tied to the
//! aggregated shares (`engine/validity.rs`): a contributor that proves one vector and shares
//! another is caught by every member whose share does not match its proven input's share.

mod common;

use common::compiled;
use grove_protocol::engine::{Event, Rejection, ValidityLie};
use grove_protocol::harness::{Cluster, HarnessConfig, LaunchParams, Outcome};
use grove_protocol::ids::{ComputationId, GroupId, NodeId};
use grove_protocol::message::Item;
use grove_protocol::query::{ColumnKind, CompiledQuery, Record, Value};
use grove_protocol::record::Record as Durable;

const COMMISSIONER: usize = 0;
const NODES: usize = 30;
/// Nodes 1..=CONTRIBUTORS contribute.
const CONTRIBUTORS: usize = 20;

const SCALAR: &str = "SELECT sum(x) FROM t CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1 SCALE 0";
const GROUPED: &str = "SELECT count(*), sum(x) FROM t GROUP BY k IN ('a', 'b', 'c') \
                       CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1 SCALE 0";
/// A `sum_vector` whose records are all 4 coordinates of `x / 200` (norm below 1).
const VECTOR: &str = "SELECT sum_vector(w, 4) FROM t CLIP NORM w TO 1 LIMIT PER CONTRIBUTOR 1";
/// SCALAR with DP noise: the noise travels outside the proven vector.
const NOISED: &str = "SELECT sum(x) FROM t CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1 SCALE 0 \
                      WITH PRIVACY EPSILON 1 DELTA 1e-9 HONEST SOURCES 10";

fn record(i: usize) -> Record {
    let key = ["a", "b", "c"][i % 3];
    let x = (i * 7 % 90) as f64;
    [
        ("k".to_string(), Value::Text(key.into())),
        ("x".to_string(), Value::Number(x)),
        ("w".to_string(), Value::NumberArray(vec![x / 200.0; 4])),
    ]
    .into_iter()
    .collect()
}

/// A cluster where nodes 1..=CONTRIBUTORS contribute their one record's evaluation.
fn cluster(query: &str, seed: u64) -> Cluster {
    let q = compiled(query);
    let mut c = Cluster::new(HarnessConfig::new(NODES, seed));
    for i in 1..=CONTRIBUTORS {
        c.set_contribution(i, q.evaluate(&[record(i)]));
    }
    c
}

fn launch(c: &mut Cluster, query: &str) -> ComputationId {
    let mut p = LaunchParams::new(5, 3, 3, 2, 1);
    p.spec = compiled(query).spec().clone();
    c.launch_query(COMMISSIONER, &p, query)
}

/// Runs, checks the result and privacy, and returns the outcome.
fn run(c: &mut Cluster, id: &ComputationId) -> Outcome {
    let o = c.run_checked(id);
    assert!(o.released.is_some(), "nothing released: {:?}", o.failures);
    o
}

/// Whether any node adopted a manifest that names `who`.
fn in_some_manifest(c: &Cluster, who: NodeId) -> bool {
    (0..c.len()).any(|n| {
        c.durable(n).iter().any(|r| match r {
            Durable::ManifestAdopted { manifest, .. } => {
                manifest.items.contains(&Item::Contributor(who))
            }
            _ => false,
        })
    })
}

/// Invalid contributions counted over every node.
fn rejected(c: &Cluster) -> u64 {
    (0..c.len())
        .filter_map(|n| c.engine(n))
        .map(|e| {
            e.rejections()
                .get(&Rejection::InvalidContribution)
                .copied()
                .unwrap_or(0)
        })
        .sum()
}

/// The liar is in no manifest and its leaf's members rejected it (at least `t` of them);
/// every other contributor is included and the result is exact (the harness checked it).
fn assert_left_out(c: &Cluster, o: &Outcome, liar: usize) {
    let liar = c.node_id(liar);
    assert!(!in_some_manifest(c, liar), "the liar entered a manifest");
    assert!(!o.included.contains(&liar));
    assert!(rejected(c) >= 3, "rejections: {}", rejected(c));
    let honest: Vec<NodeId> = (1..=CONTRIBUTORS)
        .map(|i| c.node_id(i))
        .filter(|n| *n != liar)
        .collect();
    for n in &honest {
        assert!(o.included.contains(n), "honest {n:?} left out");
    }
    assert_eq!(o.included.len(), honest.len());
}

fn column(q: &CompiledQuery, kind: ColumnKind) -> usize {
    q.columns().iter().position(|c| c.kind == kind).unwrap()
}

#[test]
fn honest_contributors_are_all_included_and_the_result_is_exact() {
    for (query, seed) in [(SCALAR, 1), (GROUPED, 2)] {
        let mut c = cluster(query, seed);
        let id = launch(&mut c, query);
        let o = run(&mut c, &id);
        assert_eq!(o.included.len(), CONTRIBUTORS, "{query}");
        assert_eq!(rejected(&c), 0, "{query}");
        // The proofs travelled: a validity share with every share.
        let sent = |kind| c.traffic.by_kind.get(kind).map_or(0, |k| k.0);
        assert_eq!(sent("validity-share"), sent("share"), "{query}");
        assert!(sent("verifier-share") > 0, "{query}");
    }
}

/// A leaf member batches its verifier shares (`engine/validity.rs`, "Batching"): it sends each
/// other member of its leaf a message carrying the shares of every contributor it verified
/// since its last one, not one message per contributor. 20 contributors in 3 leaves of 5
/// members: at most 2 messages per ordered pair of members (120 in all), where one per
/// contributor per pair is 400. With one contributor late (its shares 150 ms slower than the
/// others', within the 400 ms share window), the others' batch leaves on its delay and the
/// late one's in another: at most 3 per pair, and it is included.
#[test]
fn verifier_shares_travel_in_batches_not_one_message_per_contributor() {
    let (groups, g) = (3u64, 5u64);
    let pairs = groups * g * (g - 1);
    for (query, seed, late) in [(SCALAR, 11, false), (VECTOR, 12, false), (SCALAR, 13, true)] {
        let mut c = cluster(query, seed);
        if late {
            c.slow_sends(CONTRIBUTORS, "share", 150_000);
            c.slow_sends(CONTRIBUTORS, "validity-share", 150_000);
        }
        let id = launch(&mut c, query);
        let o = run(&mut c, &id);
        assert_eq!(o.included.len(), CONTRIBUTORS, "{query}");
        assert_eq!(rejected(&c), 0, "{query}");
        let sent = |kind| c.traffic.by_kind.get(kind).map_or(0, |k| k.0);
        let verifier = sent("verifier-share");
        assert!(
            verifier >= pairs,
            "{query}: {verifier} verifier-share messages"
        );
        assert!(
            verifier <= if late { 3 } else { 2 } * pairs,
            "{query}: {verifier} verifier-share messages for {pairs} member pairs"
        );
    }
}

#[test]
fn a_value_outside_its_clip_bounds_is_left_out() {
    let q = compiled(SCALAR);
    let mut c = cluster(SCALAR, 3);
    let liar = 4;
    let mut v = q.evaluate(&[record(liar)]);
    v[column(&q, ColumnKind::Sum)] = 1_000.0; // over its CLIP of 100
    c.set_contribution(liar, v);
    c.lie_in_contribution(liar, ValidityLie::Unclipped);
    let id = launch(&mut c, SCALAR);
    let o = run(&mut c, &id);
    assert_left_out(&c, &o, liar);
}

#[test]
fn an_indicator_of_1000_is_left_out() {
    let q = compiled(GROUPED);
    let mut c = cluster(GROUPED, 4);
    let liar = 7;
    let mut v = q.evaluate(&[record(liar)]);
    let width = q.columns().len();
    let ind = column(&q, ColumnKind::Contributor);
    // Row c (index 2): an indicator of 1,000 to lift the cell towards k_min.
    v[2 * width + ind] = 1_000.0;
    c.set_contribution(liar, v);
    c.lie_in_contribution(liar, ValidityLie::Unclipped);
    let id = launch(&mut c, GROUPED);
    let o = run(&mut c, &id);
    assert_left_out(&c, &o, liar);
}

#[test]
fn two_group_by_keys_for_one_record_are_left_out() {
    let q = compiled(GROUPED);
    let mut c = cluster(GROUPED, 5);
    let liar = 9; // its record is in row a (9 % 3 == 0)
    let honest = q.evaluate(&[record(liar)]);
    let width = q.columns().len();
    let mut v = honest.clone();
    // The same record counted under row b as well: every element within its bounds.
    v[width..2 * width].copy_from_slice(&honest[..width]);
    c.set_contribution(liar, v);
    let id = launch(&mut c, GROUPED);
    let o = run(&mut c, &id);
    assert_left_out(&c, &o, liar);
}

#[test]
fn a_forged_proof_is_left_out() {
    for (query, seed) in [(SCALAR, 6), (GROUPED, 7)] {
        let mut c = cluster(query, seed);
        let liar = 11;
        c.lie_in_contribution(liar, ValidityLie::ForgedProof);
        let id = launch(&mut c, query);
        let o = run(&mut c, &id);
        assert_left_out(&c, &o, liar);
    }
}

/// The copy gap, closed: a contributor proves its honest vector and sends a sharing of another
/// one as its aggregated shares (its first element plus 1,000,000). The members whose share is
/// not the one their input share implies (every full-vector position) refuse it, so fewer than
/// `t` hold it and it is in no manifest.
#[test]
fn a_contributor_that_shares_another_vector_than_it_proves_is_left_out() {
    for (query, seed) in [(SCALAR, 8), (GROUPED, 9)] {
        let mut c = cluster(query, seed);
        let liar = 13;
        c.lie_in_contribution(liar, ValidityLie::SharesOther);
        let id = launch(&mut c, query);
        let o = run(&mut c, &id);
        assert_left_out(&c, &o, liar);
    }
}

/// Verifier shares heard by the members of `leaf` that named `liar` (the node serving the
/// lying position) as off the polynomial, counted over those members.
fn named_by_leaf(
    c: &Cluster,
    plan: &grove_protocol::plan::Plan,
    leaf: GroupId,
    liar: NodeId,
) -> usize {
    (1..=plan.g)
        .filter_map(|p| c.index_of(&plan.member(leaf, p)))
        .filter(|n| c.node_id(*n) != liar)
        .map(|n| {
            c.events_at(n)
                .filter(|e| {
                    matches!(e, Event::MessageRejected { from, kind, reason }
                        if *from == liar && *kind == "verifier-share"
                            && *reason == Rejection::WrongVerifierShare.to_string())
                })
                .count()
        })
        .sum()
}

/// A leaf member that lies about its verifier share (off by one, to every other position, for
/// every contributor of its leaf) cannot get an honest contribution rejected: its leaf decides
/// on all five verifier shares, the four honest ones lie on one polynomial, so every member
/// accepts every honest contribution and names the liar (`Rejection::WrongVerifierShare`,
/// counted against the node that sent it). Deciding on the first `t` shares heard instead
/// rejects the contributions of that leaf whenever the liar is among them, unnamed.
#[test]
fn a_leaf_member_lying_about_its_verifier_share_is_named_and_rejects_no_honest_contribution() {
    for (query, seed) in [(SCALAR, 10), (GROUPED, 11)] {
        let mut c = cluster(query, seed);
        let id = launch(&mut c, query);
        let plan = c.plan(&id).expect("plan");
        let leaf = plan.leaf_of(&c.node_id(1));
        let liar = c.index_of(&plan.member(leaf, 1)).expect("member");
        assert_ne!(liar, COMMISSIONER);
        c.lie_in_contribution(liar, ValidityLie::WrongVerifierShare);
        let o = run(&mut c, &id);
        assert_eq!(
            o.included.len(),
            CONTRIBUTORS,
            "{query}: an honest contribution was left out"
        );
        assert_eq!(rejected(&c), 0, "{query}");
        let in_leaf = (1..=CONTRIBUTORS)
            .filter(|i| plan.leaf_of(&c.node_id(*i)) == leaf)
            .count();
        // Every other member of the leaf names the liar once per contributor of the leaf.
        let named = named_by_leaf(&c, &plan, leaf, c.node_id(liar));
        assert_eq!(named, (plan.g as usize - 1) * in_leaf, "{query}");
    }
}

/// The query randomness is unknown to the contributor when it proves. A contributor with a
/// value of 1,000 over its `CLIP` of 100 forges, for its range part, a proof that prio's
/// decision accepts at the randomness it would know if that randomness were fixed with the
/// request (`ValidityLie::KnowsQueryRandomness`: the verifier is affine in the proof, so two
/// proof coordinates solve it). Members derive their randomness from the commitments to every
/// input and proof share (`validity::derived_query_seed`), so the forged proof is opened at
/// other points and rejected. With the members' seed fixed at request time the same liar is
/// included.
#[test]
fn a_contributor_that_knows_the_query_randomness_when_it_proves_is_left_out() {
    let q = compiled(SCALAR);
    let mut c = cluster(SCALAR, 12);
    let liar = 5;
    let mut v = q.evaluate(&[record(liar)]);
    v[column(&q, ColumnKind::Sum)] = 1_000.0;
    c.set_contribution(liar, v);
    c.lie_in_contribution(liar, ValidityLie::KnowsQueryRandomness);
    let id = launch(&mut c, SCALAR);
    let o = run(&mut c, &id);
    assert_left_out(&c, &o, liar);
}

/// A `sum_vector` contribution whose every coordinate is inside its range (`[-1, 1]`) but
/// whose L2 norm (1.8) is over its `CLIP NORM` of 1: only the circuit's norm check rejects it.
#[test]
fn a_vector_over_its_norm_is_left_out() {
    let q = compiled(VECTOR);
    let mut c = cluster(VECTOR, 13);
    let liar = 6;
    let mut v = q.evaluate(&[record(liar)]);
    let coordinates: Vec<usize> = (0..q.columns().len())
        .filter(|i| matches!(q.columns()[*i].kind, ColumnKind::Coordinate(_)))
        .collect();
    assert_eq!(coordinates.len(), 4);
    for i in coordinates {
        v[i] = 0.9;
    }
    c.set_contribution(liar, v);
    c.lie_in_contribution(liar, ValidityLie::Unclipped);
    let id = launch(&mut c, VECTOR);
    let o = run(&mut c, &id);
    assert_left_out(&c, &o, liar);
}

/// With DP noise (`WITH PRIVACY`) validity stays on: every contributor proves its vector and,
/// as a separate part, that its noise is inside the noise's tail; the members hold the noised
/// shares. Every honest contributor is included (the harness checks the released sum against
/// the noised vectors), and a value outside its `CLIP` is left out.
#[test]
fn with_dp_noise_honest_contributors_are_included_and_a_value_outside_its_clip_is_left_out() {
    let q = compiled(NOISED);
    assert!(q.spec().noise.is_some());
    let mut c = cluster(NOISED, 14);
    let liar = 8;
    let mut v = q.evaluate(&[record(liar)]);
    v[column(&q, ColumnKind::Sum)] = 1_000.0;
    c.set_contribution(liar, v);
    c.lie_in_contribution(liar, ValidityLie::Unclipped);
    let id = launch(&mut c, NOISED);
    let o = run(&mut c, &id);
    let sent = |kind| c.traffic.by_kind.get(kind).map_or(0, |k| k.0);
    assert_eq!(sent("validity-share"), sent("share"));
    assert_left_out(&c, &o, liar);
}

/// A query that requires proofs but whose circuit cannot be built: the norm's square could
/// wrap around the modulus (`CircuitError::Norm`), the cheap case of a circuit over the limits
/// (a `sum_vector` over the size limit, `CircuitError::TooLarge`, takes the same path:
/// `CircuitType::of_query` fails).
const UNPROVABLE: &str =
    "SELECT sum_vector(w, 4) FROM t CLIP NORM w TO 100000000 LIMIT PER CONTRIBUTOR 1";

/// A request whose query requires validity proofs that none can make runs with no
/// contribution held: every honest contribution's share is refused by its leaf members
/// (`Rejection::UnprovableRequest`), no manifest names a contributor, nothing is released. A
/// leaf that held unproven contributions would release their sum.
#[test]
fn a_request_whose_contributions_cannot_be_proven_holds_none() {
    use grove_protocol::validity::circuit::CircuitType;
    assert!(CircuitType::of_query(&compiled(UNPROVABLE)).is_err());
    let mut c = cluster(UNPROVABLE, 31);
    let id = launch(&mut c, UNPROVABLE);
    c.run(c.now.plus(60_000_000));
    for i in 1..=CONTRIBUTORS {
        assert!(
            !in_some_manifest(&c, c.node_id(i)),
            "contributor {i} entered a manifest"
        );
    }
    let refused: u64 = (0..c.len())
        .filter_map(|n| c.engine(n))
        .map(|e| {
            e.rejections()
                .get(&Rejection::UnprovableRequest)
                .copied()
                .unwrap_or(0)
        })
        .sum();
    assert!(refused >= CONTRIBUTORS as u64, "refused: {refused}");
    let o = c.outcome(&id);
    assert!(
        o.as_ref().map_or(true, |o| o.released.is_none()),
        "a result was released"
    );
}
