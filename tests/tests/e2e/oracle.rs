//! The query oracle on the protocol harness: 40 contributors' random records (as a node
//! stores them: JSON objects), 30 random queries of the grammar, each at a random `k_min`.
//! Each query goes the node's way — `grove_node::owner::query::build_request` makes the signed
//! request, each contributor's vector comes from `grove_node::owner::query::contribution` over its
//! stored records (a node with no used record sends zeros, as the daemon does), the real
//! engines share, aggregate and release it on the harness's virtual network (every message
//! through the real codec and Noise envelopes), and the commissioner decodes with the
//! compiled query — and its table must equal the reference evaluation (`grove_e2e::oracle`)
//! over the union of the contributors' records, within fixed-point resolution: every row and
//! histogram bucket that counts fewer than `k_min` contributors in the reference suppressed,
//! every other cell equal. `oracle_processes` runs a few of these queries through real
//! `grove` processes.

use grove_e2e::oracle::{self, Rng};
use grove_node::owner::query;
use grove_protocol::harness::{Cluster, HarnessConfig};
use grove_protocol::ids::ComputationId;
use grove_protocol::request::CommissionerKey;

const CONTRIBUTORS: usize = 40;
const NODES: usize = 50;
const QUERIES: usize = 30;
const SEED: u64 = 0x6772_6f76_655f_6f72;

#[test]
fn thirty_random_queries_over_forty_contributors_match_the_reference() {
    let _serial = grove_e2e::serial_blocking();
    let records: Vec<_> = (0..CONTRIBUTORS)
        .map(|i| oracle::records(SEED, i))
        .collect();
    let mut rng = Rng::new(SEED);
    // k_min from its own stream, so the queries are the ones drawn before k_min was.
    let mut k_rng = Rng::new(SEED ^ 0x006b_5f6d_696e);
    let mut kinds = std::collections::BTreeSet::new();
    let (mut n, mut skipped) = (0, 0);
    // Rows and buckets withheld and shown over the 30 queries, so the test is not vacuous.
    let (mut rows_withheld, mut rows_shown, mut buckets_withheld) = (0, 0, 0);
    while n < QUERIES {
        let q = oracle::query(&mut rng);
        // A query no record matches releases nothing (no node contributes): draw another.
        if !records.iter().any(|r| oracle::uses_any(&q, r)) {
            skipped += 1;
            continue;
        }
        let text = q.text();
        let compiled = query::compile(&text).unwrap_or_else(|e| panic!("query {n}: {e}\n{text}"));
        for a in &q.aggregates {
            let name = format!("{a:?}");
            kinds.insert(name.split('(').next().unwrap_or_default().to_string());
        }
        let mut cluster = Cluster::new(HarnessConfig::new(NODES, SEED + n as u64));
        // Node 0 commissions; nodes 1..=40 hold the records. A node whose records match
        // nothing contributes zeros, as a consenting daemon does.
        let mut contributing = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let (values, used) = query::contribution(&compiled, r);
            cluster.set_contribution(i + 1, values);
            if used > 0 {
                contributing.push(r.clone());
            }
        }
        let k_min = *k_rng.pick(&[1, 2, 3, 5, 8]);
        let params = grove_node::control::ComputeParams {
            query: text.clone(),
            g: 5,
            t: 3,
            k_min,
            share_window_ms: 1000,
            ..Default::default()
        };
        let request = query::build_request(
            &params,
            ComputationId([n as u8 + 1; 32]),
            CommissionerKey(cluster.commissioner_key().verifying_key().to_bytes()),
            cluster.node_id(0),
            cluster.now,
            NODES,
        )
        .unwrap_or_else(|e| panic!("query {n}: {e}\n{text}"));
        assert!(request.max_contributors >= CONTRIBUTORS as u64, "{text}");
        let id = cluster.launch_request(0, request);
        cluster.run(cluster.now.plus(60_000_000));
        let outcome = cluster
            .outcome(&id)
            .unwrap_or_else(|e| panic!("query {n}: {e}"));
        let expected = oracle::evaluate(&q, &contributing);
        assert!(cluster.privacy_violations().is_empty());
        let k = k_min as f64;
        rows_withheld += expected.row_contributors.iter().filter(|c| **c < k).count();
        rows_shown += expected
            .row_contributors
            .iter()
            .filter(|c| **c >= k)
            .count();
        buckets_withheld += expected
            .row_contributors
            .iter()
            .zip(&expected.bucket_contributors)
            .filter(|(c, _)| **c >= k)
            .flat_map(|(_, b)| b.iter().flatten())
            .filter(|b| **b < k)
            .count();
        let Some(released) = outcome.released else {
            // Nothing released: every row counts fewer than k_min contributors.
            assert!(
                oracle::all_withheld(&expected, k_min),
                "query {n}: nothing released: {:?}",
                outcome.failures
            );
            eprintln!("query {n}: no row of {k_min} contributors; nothing released");
            n += 1;
            continue;
        };
        let table =
            compiled.decode_released(&released.values, &released.released, released.version.count);
        // Every node consented: the version covers all of them, zeros included.
        assert_eq!(
            released.version.count, CONTRIBUTORS as u64,
            "query {n}: contributors"
        );
        let json = serde_json::to_value(&table).expect("a table serialises");
        if let Err(e) = oracle::compare(&q, &expected, &json, k_min) {
            panic!(
                "query {n} at k_min = {k_min}: {e}\n{}\n{table}",
                compiled.query()
            );
        }
        eprintln!(
            "query {n}: {} contributors, {} rows x {} aggregates match at k_min = {k_min}",
            expected.contributors,
            expected.rows.len(),
            q.aggregates.len()
        );
        n += 1;
    }
    assert!(skipped < QUERIES, "{skipped} queries matched no record");
    assert!(
        rows_withheld > 0 && rows_shown > 0 && buckets_withheld > 0,
        "withheld rows {rows_withheld}, shown rows {rows_shown}, withheld buckets {buckets_withheld}"
    );
    // The 30 queries used every aggregate of the grammar.
    assert_eq!(kinds.len(), 8, "aggregates used: {kinds:?}");
}

/// A query with differential privacy, the node's way (`build_request`, `contribution`, the
/// engines on the harness, the compiled query's `accuracy`), over 60 seeded runs of 40
/// contributors: each released count and sum must lie within its reported 95% interval of the
/// true (noiseless) value at the reported rate. Over the 240 cells, about 12 misses are
/// expected; fewer than 2 or more than 23 (each side below 0.1% for a correct 95% interval)
/// fails the test, so an interval too narrow or too wide (a wrong deviation) shows. The
/// `avg` of each row is printed where its noisy count is at least 4 deviations (row `a`,
/// about 80 records against a deviation of about 15, in at least half the runs) and must lie
/// in [0, 100] and cover the true avg at the 95% rate (misses at most the binomial's 0.1%
/// quantile).
#[test]
fn released_dp_cells_lie_in_their_intervals_at_the_reported_rate() {
    let _serial = grove_e2e::serial_blocking();
    use serde_json::{json, Map, Value};
    const RUNS: u64 = 60;
    let text =
        "SELECT count(*), sum(x), avg(x) FROM c GROUP BY k IN ('a', 'b') CLIP x TO [0, 100] \
                LIMIT PER CONTRIBUTOR 5 SCALE 0 \
                WITH PRIVACY EPSILON 8 DELTA 1e-9 HONEST SOURCES 36";
    let compiled = query::compile(text).expect("the DP query compiles");
    let mut rng = Rng::new(SEED ^ 0x6470);
    let (mut cells, mut misses) = (0u32, 0u32);
    let (mut ratios, mut ratio_misses) = (0u32, 0u32);
    for run in 0..RUNS {
        let records: Vec<Vec<Map<String, Value>>> = (0..CONTRIBUTORS)
            .map(|_| {
                (0..1 + rng.below(5))
                    .map(|_| {
                        let k = if rng.below(3) == 0 { "b" } else { "a" };
                        let v = json!({ "k": k, "x": rng.below(120) as f64 });
                        v.as_object().cloned().unwrap_or_default()
                    })
                    .collect()
            })
            .collect();
        let mut cluster = Cluster::new(HarnessConfig::new(NODES, SEED + 1000 + run));
        let mut plain = vec![0.0; compiled.spec().length as usize];
        for (i, r) in records.iter().enumerate() {
            let (values, _) = query::contribution(&compiled, r);
            for (p, v) in plain.iter_mut().zip(&values) {
                *p += v;
            }
            cluster.set_contribution(i + 1, values);
        }
        let params = grove_node::control::ComputeParams {
            query: text.into(),
            g: 5,
            t: 3,
            k_min: 1,
            share_window_ms: 1000,
            ..Default::default()
        };
        let request = query::build_request(
            &params,
            ComputationId([run as u8 + 100; 32]),
            CommissionerKey(cluster.commissioner_key().verifying_key().to_bytes()),
            cluster.node_id(0),
            cluster.now,
            NODES,
        )
        .unwrap_or_else(|e| panic!("run {run}: {e}"));
        let id = cluster.launch_request(0, request);
        cluster.run(cluster.now.plus(60_000_000));
        let outcome = cluster
            .outcome(&id)
            .unwrap_or_else(|e| panic!("run {run}: {e}"));
        assert!(cluster.privacy_violations().is_empty());
        let released = outcome
            .released
            .unwrap_or_else(|| panic!("run {run}: {:?}", outcome.failures));
        assert_eq!(released.version.count, CONTRIBUTORS as u64);
        let accuracy = compiled
            .accuracy(&released.values, &released.released, released.version.count)
            .expect("a DP query reports its accuracy");
        let truth = compiled.decode_plain(&plain, &vec![true; plain.len()], CONTRIBUTORS as u64);
        for cell in &accuracy.cells {
            let row = usize::from(cell.row.as_deref() == Some("b"));
            let c = truth
                .columns
                .iter()
                .position(|name| *name == cell.column)
                .unwrap_or_else(|| panic!("run {run}: no column for {cell:?}"));
            let Some(exact) = (match &truth.rows[row].cells[c] {
                grove_protocol::query::Cell::Number(x) => Some(*x),
                _ => None,
            }) else {
                panic!("run {run}: no exact value for {cell:?}");
            };
            let inside = (cell.low..=cell.high).contains(&exact);
            if cell.column.starts_with("avg") {
                assert!((0.0..=100.0).contains(&cell.value), "run {run}: {cell:?}");
                ratios += 1;
                ratio_misses += u32::from(!inside);
            } else {
                cells += 1;
                misses += u32::from(!inside);
            }
        }
    }
    eprintln!("{misses} of {cells} released DP cells outside their 95% interval");
    assert_eq!(cells, 240);
    assert!(
        (2..=23).contains(&misses),
        "{misses} of {cells} cells outside their 95% interval"
    );
    eprintln!("{ratio_misses} of {ratios} released avg cells outside their 95% interval");
    assert!(ratios >= RUNS as u32 / 2, "only {ratios} avg cells printed");
    let r = f64::from(ratios);
    let bound = 0.05 * r + 3.09 * (0.0475 * r).sqrt() + 1.0;
    assert!(
        f64::from(ratio_misses) <= bound,
        "{ratio_misses} of {ratios} avg cells outside their 95% interval"
    );
}
