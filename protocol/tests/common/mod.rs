//! Helpers shared by the protocol's scenario tests (each test file that needs them declares
//! `mod common;`; a file uses only some of them).
#![allow(dead_code)]

use grove_protocol::engine::Event;
use grove_protocol::harness::{Cluster, HarnessConfig};
use grove_protocol::ids::GroupId;
use grove_protocol::query::{CompiledQuery, Query, Record, Value};
use rand_chacha::rand_core::RngCore;
use std::collections::BTreeSet;

/// `query` parsed and compiled (a test's queries are valid).
pub fn compiled(query: &str) -> CompiledQuery {
    Query::parse(query).unwrap().compile().unwrap()
}

/// Contributor `i`'s one record for the scalar `sum(x)` queries: `x = 7 i mod 90`, inside
/// their `CLIP x TO [0, 100]`.
pub fn scalar_record(i: usize) -> Record {
    [("x".to_string(), Value::Number((i * 7 % 90) as f64))]
        .into_iter()
        .collect()
}

/// Rejections of one reason, over every node.
pub fn rejected(c: &Cluster, reason: &str) -> usize {
    c.events
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::MessageRejected { reason: r, .. } if r == reason))
        .count()
}

/// The contributor counts of the manifests `group` adopted, over its members.
pub fn adopted_counts(c: &Cluster, group: GroupId) -> BTreeSet<u64> {
    c.events
        .iter()
        .filter_map(|(_, _, e)| match e {
            Event::ManifestAdopted {
                group: g, version, ..
            } if *g == group => Some(version.count),
            _ => None,
        })
        .collect()
}

/// Leaf `index`.
pub fn leaf(index: u32) -> GroupId {
    GroupId { level: 0, index }
}

/// A cluster of `nodes` where nodes 1 to `contributors` each contribute four counted values
/// drawn from the cluster's seeded generator, in [-1000, 1000].
pub fn counted_cluster(nodes: usize, contributors: usize, seed: u64) -> Cluster {
    let mut c = Cluster::new(HarnessConfig::new(nodes, seed));
    for i in 1..=contributors {
        let values: Vec<f64> = (0..4)
            .map(|_| (c.rng().next_u64() % 2001) as f64 - 1000.0)
            .collect();
        c.set_counted_contribution(i, &values);
    }
    c
}
