//! A contributor's validity proof as a job (`Output::Work`, `engine/validity.rs`, "The proof
//! as a job"): the engine hands it to its driver instead of proving inside the input that
//! asked for it, and takes its result as a later input. The harness runs jobs here as the
//! daemon does (`Cluster::defer_jobs`: the result comes back later, while the node handles
//! other inputs), and every scenario runs its result and privacy checks.

use grove_protocol::harness::{Cluster, HarnessConfig, LaunchParams};
use grove_protocol::ids::{ComputationId, Micros};
use grove_protocol::query::{CompiledQuery, Query, Record, Value};
use grove_protocol::record::Record as Durable;

const COMMISSIONER: usize = 0;
const NODES: usize = 30;
/// Nodes 1..=CONTRIBUTORS contribute.
const CONTRIBUTORS: usize = 20;
const SCALAR: &str = "SELECT sum(x) FROM t CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1 SCALE 0";
/// How long a proof takes to come back: within the 400 ms share window.
const PROOF_DELAY: u64 = 150_000;

fn compiled(query: &str) -> CompiledQuery {
    Query::parse(query).unwrap().compile().unwrap()
}

fn record(i: usize) -> Record {
    [("x".to_string(), Value::Number((i * 7 % 90) as f64))]
        .into_iter()
        .collect()
}

/// Nodes 1..=CONTRIBUTORS contribute; proofs come back `PROOF_DELAY` after they are asked.
fn launched(seed: u64) -> (Cluster, ComputationId, Micros) {
    let q = compiled(SCALAR);
    let mut c = Cluster::new(HarnessConfig::new(NODES, seed));
    c.defer_jobs(PROOF_DELAY);
    for i in 1..=CONTRIBUTORS {
        c.set_contribution(i, q.evaluate(&[record(i)]));
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
        assert_eq!(c.jobs_out(i), 1, "node {i}");
    }
    assert!(sent(&c, "share") > 0);
    assert_eq!(sent(&c, "validity-share"), 0);
    let o = c.run_checked(&id);
    assert!(o.released.is_some(), "nothing released: {:?}", o.failures);
    assert_eq!(o.included.len(), CONTRIBUTORS);
    assert_eq!(sent(&c, "validity-share"), sent(&c, "share"));
    assert!((0..NODES).all(|n| c.jobs_out(n) == 0));
}

/// A contributor that crashes while its proof is out loses the job (nothing of it was
/// persisted); restored, it re-sends its shares and asks for the proof again, and it is
/// included. Its leaf's members ignore the shares they already hold.
#[test]
fn a_contributor_restarted_while_its_proof_is_out_proves_again_and_is_included() {
    let (mut c, id, at) = launched(22);
    let victim = 7;
    c.run_until(at.plus(100_000));
    assert_eq!(c.jobs_out(victim), 1);
    c.crash_at(victim, at.plus(100_001));
    c.restart_at(victim, at.plus(120_000));
    c.run_until(at.plus(110_000));
    assert_eq!(c.jobs_out(victim), 0, "the crash lost the job");
    c.run_until(at.plus(130_000));
    assert_eq!(c.jobs_out(victim), 1, "the restored engine asked again");
    let o = c.run_checked(&id);
    assert!(o.released.is_some(), "nothing released: {:?}", o.failures);
    assert!(o.included.contains(&c.node_id(victim)));
    assert_eq!(o.included.len(), CONTRIBUTORS);
}

/// A proof that comes back after its computation ended (and was closed) sends nothing: the
/// result is dropped. No member held a share whose proof it had not checked.
#[test]
fn a_proof_back_after_its_computation_ended_sends_nothing() {
    let q = compiled(SCALAR);
    let mut c = Cluster::new(HarnessConfig::new(NODES, 23));
    // Proofs come back after the computation's lifetime.
    c.defer_jobs(200_000_000);
    for i in 1..=CONTRIBUTORS {
        c.set_contribution(i, q.evaluate(&[record(i)]));
    }
    let mut p = LaunchParams::new(5, 3, 3, 2, 1);
    p.spec = q.spec().clone();
    c.launch_query(COMMISSIONER, &p, SCALAR);
    c.run(c.now.plus(300_000_000));
    assert!(
        (0..NODES).all(|n| c.jobs_out(n) == 0),
        "every result came back"
    );
    assert_eq!(sent(&c, "validity-share"), 0);
    let held = (0..NODES)
        .flat_map(|n| c.durable(n))
        .filter(|r| matches!(r, Durable::ShareHeld { .. }))
        .count();
    assert_eq!(held, 0);
}
