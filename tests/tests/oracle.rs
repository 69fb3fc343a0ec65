//! The query oracle on the protocol harness: 40 contributors' random records (as a node
//! stores them: JSON objects), 30 random queries of the grammar. Each query goes the node's
//! way — `grove_node::query::build_request` makes the signed request, each contributor's
//! vector comes from `grove_node::query::contribution` over its stored records (a node with
//! no used record declines, as the daemon does), the real engines share, aggregate and
//! release it on the harness's virtual network (every message through the real codec and
//! Noise envelopes), and the commissioner decodes with the compiled query — and its table
//! must equal the reference evaluation (`grove_e2e::oracle`) over the union of the
//! contributors' records, within fixed-point resolution. `oracle_processes` runs a few of
//! these queries through real `grove` processes.

use grove_e2e::oracle::{self, Rng};
use grove_node::query;
use grove_protocol::harness::{Cluster, HarnessConfig};
use grove_protocol::ids::ComputationId;
use grove_protocol::request::CommissionerKey;

const CONTRIBUTORS: usize = 40;
const NODES: usize = 50;
const QUERIES: usize = 30;
const SEED: u64 = 0x6772_6f76_655f_6f72;

#[test]
fn thirty_random_queries_over_forty_contributors_match_the_reference() {
    let records: Vec<_> = (0..CONTRIBUTORS)
        .map(|i| oracle::records(SEED, i))
        .collect();
    let mut rng = Rng::new(SEED);
    let mut kinds = std::collections::BTreeSet::new();
    let (mut n, mut skipped) = (0, 0);
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
        // Node 0 commissions; nodes 1..=40 hold the records.
        let mut contributing = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let (values, used) = query::contribution(&compiled, r);
            if used > 0 {
                cluster.set_contribution(i + 1, values);
                contributing.push(r.clone());
            }
        }
        let params = grove_node::control::ComputeParams {
            query: text.clone(),
            g: 5,
            t: 3,
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
        let released = outcome
            .released
            .unwrap_or_else(|| panic!("query {n}: nothing released: {:?}", outcome.failures));
        let table = compiled.decode(&released.values, released.version.count);
        let expected = oracle::evaluate(&q, &contributing);
        assert_eq!(
            released.version.count, expected.contributors,
            "query {n}: contributors"
        );
        let json = serde_json::to_value(&table).expect("a table serialises");
        if let Err(e) = oracle::compare(&q, &expected, &json) {
            panic!("query {n}: {e}\n{}\n{table}", compiled.query());
        }
        assert!(cluster.privacy_violations().is_empty());
        eprintln!(
            "query {n}: {} contributors, {} rows x {} aggregates match",
            expected.contributors,
            expected.rows.len(),
            q.aggregates.len()
        );
        n += 1;
    }
    assert!(skipped < QUERIES, "{skipped} queries matched no record");
    // The 30 queries used every aggregate of the grammar.
    assert_eq!(kinds.len(), 8, "aggregates used: {kinds:?}");
}
