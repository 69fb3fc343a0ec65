//! A contributor's validity proof as a job (`Output::Work`, `engine/validity.rs`, "The proof
//! as a job"): the engine hands it to its driver instead of proving inside the input that
//! asked for it, and takes its result as a later input. The harness runs jobs here as the
//! daemon does (`Cluster::defer_jobs`: the result comes back later, while the node handles
//! other inputs), and every scenario runs its result and privacy checks.

mod common;

use common::{compiled, scalar_record};
use grove_protocol::engine::ValidityLie;
use grove_protocol::harness::{Cluster, HarnessConfig, LaunchParams, Outcome};
use grove_protocol::ids::{ComputationId, Micros};
use grove_protocol::message::{Body, Message, ShareQueryMsg};
use grove_protocol::record::Record as Durable;

const COMMISSIONER: usize = 0;
const NODES: usize = 30;
/// Nodes 1..=CONTRIBUTORS contribute.
const CONTRIBUTORS: usize = 20;
const SCALAR: &str = "SELECT sum(x) FROM t CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1 SCALE 0";
/// How long a proof takes to come back: within the 400 ms share window.
const PROOF_DELAY: u64 = 150_000;

/// Nodes 1..=CONTRIBUTORS contribute; proofs come back `PROOF_DELAY` after they are asked
/// (members verify inline).
fn launched(seed: u64) -> (Cluster, ComputationId, Micros) {
    launched_deferring(seed, "prove", PROOF_DELAY)
}

/// A scalar computation launched over every contributor, jobs of `kind` held back `delay`:
/// the cluster, the computation and the time of the launch.
fn launched_deferring(
    seed: u64,
    kind: &'static str,
    delay: u64,
) -> (Cluster, ComputationId, Micros) {
    launched_deferring_with(seed, kind, delay, |_| {})
}

/// As [`launched_deferring`], with `prepare` run on the cluster before the launch.
fn launched_deferring_with(
    seed: u64,
    kind: &'static str,
    delay: u64,
    prepare: impl FnOnce(&mut Cluster),
) -> (Cluster, ComputationId, Micros) {
    let q = compiled(SCALAR);
    let mut c = Cluster::new(HarnessConfig::new(NODES, seed));
    c.defer_jobs_of(kind, delay);
    prepare(&mut c);
    for i in 1..=CONTRIBUTORS {
        c.set_contribution(i, q.evaluate(&[scalar_record(i)]));
    }
    let mut p = LaunchParams::new(5, 3, 3, 2, 1);
    p.spec = q.spec().clone();
    let at = c.now;
    let id = c.launch_query(COMMISSIONER, &p, SCALAR);
    (c, id, at)
}

fn sent(c: &Cluster, kind: &str) -> u64 {
    c.traffic.by_kind.get(kind).map_or(0, |k| k.0)
}

/// While its proof is out, a contributor's shares have left and its validity shares have
/// not: the input that asked for the proof (its consent) did not do it. When the proofs come
/// back their validity shares leave, and every honest contributor is included, exactly. With
/// the proof done inside the input (the engine before it emitted jobs), the validity shares
/// leave with the shares and no job is out.
#[test]
fn while_its_proof_is_out_a_contributors_shares_leave_and_its_validity_shares_follow_it() {
    let (mut c, id, at) = launched(21);
    // The request reached every node within 40 ms; no proof is back before 155 ms.
    c.run_until(at.plus(100_000));
    for i in 1..=CONTRIBUTORS {
        assert_eq!(c.jobs_out_of(i, "prove"), 1, "node {i}");
    }
    assert!(sent(&c, "share") > 0);
    assert_eq!(sent(&c, "validity-share"), 0);
    let o = released(&mut c, &id);
    assert_eq!(o.included.len(), CONTRIBUTORS);
    assert_eq!(sent(&c, "validity-share"), sent(&c, "share"));
    assert!(every_result_back(&c));
}

/// A contributor that crashes while its proof is out loses the job (nothing of it was
/// persisted); restored, it re-sends its shares and asks for the proof again, and it is
/// included. Its leaf's members ignore the shares they already hold.
#[test]
fn a_contributor_restarted_while_its_proof_is_out_proves_again_and_is_included() {
    let (mut c, id, at) = launched(22);
    let victim = 7;
    c.run_until(at.plus(100_000));
    assert_eq!(c.jobs_out_of(victim, "prove"), 1);
    c.crash_at(victim, at.plus(100_001));
    c.restart_at(victim, at.plus(120_000));
    c.run_until(at.plus(110_000));
    assert_eq!(c.jobs_out_of(victim, "prove"), 0, "the crash lost the job");
    c.run_until(at.plus(130_000));
    assert_eq!(
        c.jobs_out_of(victim, "prove"),
        1,
        "the restored engine asked again"
    );
    let o = released(&mut c, &id);
    assert!(o.included.contains(&c.node_id(victim)));
    assert_eq!(o.included.len(), CONTRIBUTORS);
}

/// A proof that comes back after its computation ended (and was closed) sends nothing: the
/// result is dropped. No member held a share whose proof it had not checked.
#[test]
fn a_proof_back_after_its_computation_ended_sends_nothing() {
    let (mut c, _, _) = launched_deferring(23, "prove", 200_000_000);
    c.run(c.now.plus(300_000_000));
    assert!(every_result_back(&c), "every result came back");
    assert_eq!(sent(&c, "validity-share"), 0);
    assert_eq!(held(&c), 0);
}

/// Once every proof is back: the contributor, the leaf group it shares to, and the candidates
/// of position 2 there (the member first, then its backups), as cluster indices.
fn after_the_proofs(seed: u64) -> (Cluster, ComputationId, usize, ShareQueryMsg, Vec<usize>) {
    let (mut c, id, at) = launched(seed);
    c.run_until(at.plus(250_000));
    assert!(
        (0..NODES).all(|n| c.jobs_out_of(n, "prove") == 0),
        "a proof is still out"
    );
    let (query, candidates) = position_2_of(&c, id, 1);
    (c, id, 1, query, candidates)
}

/// The share query for position 2 of `contributor`'s leaf, and that position's candidates
/// (the member first, then its backups), as cluster indices.
fn position_2_of(
    c: &Cluster,
    id: ComputationId,
    contributor: usize,
) -> (ShareQueryMsg, Vec<usize>) {
    let plan = c.plan(&id).expect("plan");
    let leaf = plan.leaf_of(&c.node_id(contributor));
    let candidates = plan
        .candidates(leaf, 2)
        .map(|n| c.index_of(&n).expect("in the cluster"))
        .collect();
    let query = ShareQueryMsg {
        group: leaf,
        position: 2,
    };
    (query, candidates)
}

fn share_query(id: ComputationId, m: &ShareQueryMsg) -> Message {
    Message {
        computation: id,
        round: 0,
        to: None,
        body: Body::ShareQuery(m.clone()),
    }
}

/// `n` share queries from `from` to `contributor`, a millisecond apart, run until every one
/// is handled and well before a proof asked for now could come back.
fn flood(
    c: &mut Cluster,
    from: usize,
    contributor: usize,
    id: ComputationId,
    m: &ShareQueryMsg,
    n: u64,
) {
    for k in 0..n {
        c.inject(from, contributor, &share_query(id, m), 1_000 + k * 1_000);
    }
    let now = c.now;
    c.run_until(now.plus(PROOF_DELAY / 2));
}

/// A flood of share queries from the node serving a position, after the contributor's proof:
/// the first is answered with the share and the validity share kept since the proof, sealed
/// again, and none asks for another proof (before, each query after the proof cost a whole
/// one, tens of milliseconds at the largest vectors). The others, within a second of it, are
/// refused (each answer re-sends a whole share: unbounded, a flood of 40-byte queries bought
/// megabytes of the contributor's upload). The contributor is still included.
#[test]
fn share_queries_after_the_proof_are_answered_without_proving_again() {
    let (mut c, id, contributor, query, candidates) = after_the_proofs(24);
    let member = candidates[0];
    let (shares, validity) = (sent(&c, "share"), sent(&c, "validity-share"));
    const QUERIES: u64 = 10;
    flood(&mut c, member, contributor, id, &query, QUERIES);
    assert_eq!(
        c.jobs_out_of(contributor, "prove"),
        0,
        "a query asked for a proof"
    );
    assert_eq!(sent(&c, "share") - shares, 1);
    assert_eq!(sent(&c, "validity-share") - validity, 1);
    assert_eq!(
        c.rejections(contributor, "share-query", "less than a second ago"),
        QUERIES as usize - 1
    );
    let o = released(&mut c, &id);
    assert!(o.included.contains(&c.node_id(contributor)));
    assert_eq!(o.included.len(), CONTRIBUTORS);
}

/// A share query from a backup while the member serving the position lives (the contributor
/// did not fail over to it) gets nothing: no proof, no validity share, and only the identical
/// aggregated share re-sent to the member (it ignores it; were the member gone, that send
/// would fail the contributor over to the backup), once per second however many it sends.
#[test]
fn a_share_query_from_a_node_not_serving_the_position_costs_no_proof_and_no_validity_share() {
    let (mut c, id, contributor, query, candidates) = after_the_proofs(25);
    let backup = candidates[1];
    let (shares, validity) = (sent(&c, "share"), sent(&c, "validity-share"));
    const QUERIES: u64 = 5;
    flood(&mut c, backup, contributor, id, &query, QUERIES);
    assert_eq!(
        c.rejections(contributor, "share-query", "did not fail over"),
        1
    );
    assert_eq!(
        c.rejections(contributor, "share-query", "less than a second ago"),
        QUERIES as usize - 1
    );
    assert_eq!(
        c.jobs_out_of(contributor, "prove"),
        0,
        "a query asked for a proof"
    );
    assert_eq!(sent(&c, "validity-share") - validity, 0);
    assert_eq!(sent(&c, "share") - shares, 1);
    let o = released(&mut c, &id);
    assert_eq!(o.included.len(), CONTRIBUTORS);
}

/// `id` run to its end (every result and privacy check of the harness): its outcome, which
/// released a result.
fn released(c: &mut Cluster, id: &ComputationId) -> Outcome {
    let o = c.run_checked(id);
    assert!(o.released.is_some(), "nothing released: {:?}", o.failures);
    o
}

/// No job is out at any node: every result came back.
fn every_result_back(c: &Cluster) -> bool {
    (0..NODES).all(|n| c.jobs_out(n) == 0)
}

/// Held shares (`Record::ShareHeld`) persisted by every node.
fn held(c: &Cluster) -> usize {
    (0..NODES)
        .flat_map(|n| c.durable(n))
        .filter(|r| matches!(r, Durable::ShareHeld { .. }))
        .count()
}

/// A leaf member's verification of a contributor is a job too (`engine/validity.rs`, "The
/// member's verification as a job"): while its verifications are out the member goes on
/// handling inputs (later contributors' validity shares, each asking for its own job, so that
/// several are out at once) and has sent no verifier share; when they come back the verifier
/// shares leave, the members decide, and every honest contributor is included. Verified
/// inline (before), no verification job is ever out.
#[test]
fn while_its_verifications_are_out_a_member_handles_other_inputs() {
    let (mut c, id, at) = launched_deferring(26, "verify", 100_000);
    // The validity shares (proved inline) reached the members within 80 ms of the launch.
    c.run_until(at.plus(90_000));
    let most = (0..NODES)
        .map(|n| c.jobs_out_of(n, "verify"))
        .max()
        .unwrap_or(0);
    assert!(most >= 2, "at most {most} verification out at a member");
    assert_eq!(sent(&c, "verifier-share"), 0);
    assert_eq!(held(&c), 0, "a contribution was decided unverified");
    let o = released(&mut c, &id);
    assert_eq!(o.included.len(), CONTRIBUTORS);
    assert!(sent(&c, "verifier-share") > 0);
    assert!(every_result_back(&c));
}

/// A verification that comes back after its computation ended (its results past the
/// computation's lifetime) sends nothing and decides nothing: the result is dropped, no
/// verifier share leaves and no share is held.
#[test]
fn a_verification_back_after_its_computation_ended_sends_nothing() {
    let (mut c, _, _) = launched_deferring(27, "verify", 200_000_000);
    c.run(c.now.plus(300_000_000));
    assert!(every_result_back(&c), "every result came back");
    assert!(sent(&c, "validity-share") > 0);
    assert_eq!(sent(&c, "verifier-share"), 0);
    assert_eq!(held(&c), 0);
}

/// A verification that comes back after its member's collection ended (the share window is
/// 400 ms; the results come back at about 650 ms, while the computation lives on) is dropped:
/// no verifier share leaves and nothing is decided from it, as a validity share arriving after
/// the collection is refused.
#[test]
fn a_verification_back_after_the_collection_ended_sends_nothing() {
    let (mut c, id, at) = launched_deferring(28, "verify", 600_000);
    c.run_until(at.plus(1_000_000));
    assert!(every_result_back(&c), "every result came back");
    assert!(c.plan(&id).is_some());
    assert!(sent(&c, "validity-share") > 0);
    assert_eq!(sent(&c, "verifier-share"), 0);
    assert_eq!(held(&c), 0);
}

/// A proof job that panics (a bug in the proving code; here the test-only fault
/// `ValidityLie::ProofPanics`) reports it (`Panicked`) instead of leaving the contribution's
/// `proving` entry set: the next re-send (a share query from the member) asks for the proof
/// again. Before, the daemon's job runner caught the panic and dropped the result, and the
/// entry stayed set for the computation's life: no re-send ever proved again, and in the
/// harness the panic ended the run. The faulty contributor is left out (it never proves) and
/// every other is included, exactly.
#[test]
fn a_proof_job_that_panics_is_asked_for_again_by_the_next_re_send() {
    let faulty = 1;
    let (mut c, id, at) = launched_deferring_with(29, "prove", PROOF_DELAY, |c| {
        c.lie_in_contribution(faulty, ValidityLie::ProofPanics)
    });
    c.run_until(at.plus(250_000));
    assert!((0..NODES).all(|n| c.jobs_out_of(n, "prove") == 0));
    let (query, candidates) = position_2_of(&c, id, faulty);
    flood(&mut c, candidates[0], faulty, id, &query, 1);
    assert_eq!(
        c.jobs_out_of(faulty, "prove"),
        1,
        "the re-send did not ask for the proof again"
    );
    let o = released(&mut c, &id);
    assert!(!o.included.contains(&c.node_id(faulty)));
    assert_eq!(o.included.len(), CONTRIBUTORS - 1);
}

/// A verification job that panics (`ValidityLie::VerificationPanics` at one leaf member)
/// reports it instead of leaving the member's `verifying` entry set: the contributor's
/// validity share, re-sent (a share query from that member), is verified again (a new job).
/// Before, the entry stayed set and the member ignored every re-send as a duplicate: that
/// contributor was left out at that member for good. The other members decide without the
/// faulty one's verifier shares, and every contributor is included, exactly.
#[test]
fn a_verification_job_that_panics_is_asked_for_again_by_a_re_sent_validity_share() {
    let (mut c, id, at) = launched_deferring(30, "verify", 100_000);
    let contributor = 1;
    let (query, candidates) = position_2_of(&c, id, contributor);
    let member = candidates[0];
    c.lie_in_contribution(member, ValidityLie::VerificationPanics);
    // The validity shares reached the members within 80 ms; their jobs are back at 180.
    c.run_until(at.plus(250_000));
    assert_eq!(c.jobs_out_of(member, "verify"), 0);
    flood(&mut c, member, contributor, id, &query, 1);
    assert_eq!(
        c.jobs_out_of(member, "verify"),
        1,
        "the re-sent validity share was not verified again"
    );
    let o = released(&mut c, &id);
    assert_eq!(o.included.len(), CONTRIBUTORS);
}
