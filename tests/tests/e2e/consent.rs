//! Consent through real processes: every rule that declines a request is exercised by one
//! node of a ten-node network. A declining node sends no share, its audit log names the rule
//! and never a value, and the result covers exactly the nodes that consented.

use grove_e2e::{cell, commissioner_key, ctl, grove_node, query_params, start_network};
use grove_node::control::{self, ControlRequest, TrustLimits};
use grove_node::procs::Cluster;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
const NODES: usize = 10;

/// Fully trusting nodes (one day of differencing window, 50 computations a day).
const TRUSTING: [usize; 3] = [1, 2, 3];
/// No trust entry at all (node 0, the commissioner, trusts no one either).
const UNTRUSTING: usize = 4;
/// Trusts the commissioner with collection `c` only.
const ONLY_C: usize = 5;
/// Requires k_min >= 5 (the requests have k_min = 1).
const STRICT_K: usize = 6;
/// Requires t >= 3 (the requests have t = 2).
const STRICT_T: usize = 7;
/// One computation a day.
const ONCE_A_DAY: usize = 8;
/// No differencing window.
const NO_WINDOW: usize = 9;

/// Distinctive values, so a leak into an audit log would show.
fn value_of(i: usize) -> i64 {
    9_130_017 + 101 * i as i64
}

fn object(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("an object literal"),
    }
}

async fn trust(
    cluster: &Cluster,
    i: usize,
    key: &str,
    collections: &[&str],
    min_k: u64,
    limits: TrustLimits,
) -> anyhow::Result<()> {
    ctl(
        cluster,
        i,
        ControlRequest::TrustAdd {
            key: key.into(),
            collections: collections.iter().map(|c| c.to_string()).collect(),
            label: format!("commissioner as seen by node {i}"),
            min_contributors: min_k,
            limits: TrustLimits {
                // The requests have t = 2; STRICT_T asks for 3 itself.
                min_t: limits.min_t.or(Some(2)),
                ..limits
            },
        },
    )
    .await?;
    Ok(())
}

/// Shares each node has sent so far.
async fn shares_sent(cluster: &Cluster) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::new();
    for i in 0..NODES {
        let s = ctl(cluster, i, ControlRequest::Status).await?;
        out.push(s["sent"]["share"].as_u64().unwrap_or(0));
    }
    Ok(out)
}

/// Runs `query` from node 0 and checks, for every node, its decision: `Some(rule)` for a
/// decline, `None` for a contribution. Returns the result.
async fn run_and_check(
    cluster: &Cluster,
    query: &str,
    expected: &BTreeMap<usize, Option<&str>>,
) -> anyhow::Result<Value> {
    let before = shares_sent(cluster).await?;
    // The launch's plan names the computation, also when nothing is released.
    let mut launched = None;
    let outcome = control::call(
        cluster.dir(0),
        &ControlRequest::Compute(query_params(query, 3, 2)),
        |_, data| {
            if let Some(id) = data.and_then(|d| d["computation"].as_str()) {
                launched.get_or_insert_with(|| id.to_string());
            }
        },
    )
    .await;
    let after = shares_sent(cluster).await?;
    let contributors = expected.values().filter(|r| r.is_none()).count() as u64;
    // One contributor alone is never summed (a group's manifest of one contributor would
    // hand its shares to the parent group): such a computation releases nothing.
    let result = match outcome {
        Ok(result) => {
            assert!(
                contributors > 1,
                "{query}: one contributor released: {result}"
            );
            assert_eq!(
                result["contributors"].as_u64(),
                Some(contributors),
                "{query}: {result}"
            );
            result
        }
        Err(e) => {
            assert_eq!(contributors, 1, "{query}: {e}");
            assert!(e.to_string().contains("released nothing"), "{query}: {e}");
            json!({ "computation": launched.clone(), "released": false })
        }
    };
    let computation = launched.unwrap_or_default();
    for (&i, rule) in expected {
        let audit = ctl(cluster, i, ControlRequest::Audit).await?;
        let entries = audit["entries"].as_array().cloned().unwrap_or_default();
        let decisions: Vec<&Value> = entries
            .iter()
            .filter(|e| {
                e["computation"] == computation
                    && (e["kind"] == "declined" || e["kind"] == "contributed")
            })
            .collect();
        assert_eq!(decisions.len(), 1, "node {i}, {query}: {entries:?}");
        let d = decisions[0];
        let sent = after[i] - before[i];
        match rule {
            Some(rule) => {
                assert_eq!(d["kind"], "declined", "node {i}, {query}: {d}");
                assert_eq!(d["rule"], *rule, "node {i}, {query}: {d}");
                assert!(
                    d["detail"]
                        .as_str()
                        .is_some_and(|s| s.contains("no share was sent")),
                    "{d}"
                );
                assert_eq!(sent, 0, "node {i} declined ({rule}) but sent {sent} shares");
            }
            None => {
                assert_eq!(d["kind"], "contributed", "node {i}, {query}: {d}");
                assert_eq!(d["rule"], "trusted", "{d}");
                // g = 3 shares, or g - 1 over the network when the node holds a position of
                // its own leaf group.
                assert!(
                    sent == 3 || sent == 2,
                    "node {i} sent {sent} shares, not g or g - 1"
                );
            }
        }
        // No audit entry ever holds a value of the node's records.
        for e in &entries {
            let text = e.to_string();
            assert!(
                !text.contains(&value_of(i).to_string()),
                "node {i} audit leaks a value: {text}"
            );
        }
    }
    Ok(result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_consent_rule_keeps_shares_home_and_says_why() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let cluster = start_network(Path::new(EXE), NODES).await?;
    for i in 0..NODES {
        for (collection, record) in [
            ("c", json!({"x": value_of(i), "kind": "a"})),
            ("d", json!({"y": value_of(i)})),
        ] {
            ctl(
                &cluster,
                i,
                ControlRequest::Import {
                    collection: collection.into(),
                    records: vec![object(record)],
                },
            )
            .await?;
        }
    }
    let key = commissioner_key(&cluster, 0).await?;
    for &i in &TRUSTING {
        trust(&cluster, i, &key, &[], 1, TrustLimits::default()).await?;
    }
    trust(&cluster, ONLY_C, &key, &["c"], 1, TrustLimits::default()).await?;
    trust(&cluster, STRICT_K, &key, &[], 5, TrustLimits::default()).await?;
    let min_t = TrustLimits {
        min_t: Some(3),
        ..TrustLimits::default()
    };
    trust(&cluster, STRICT_T, &key, &[], 1, min_t).await?;
    let once = TrustLimits {
        max_per_day: Some(1),
        ..TrustLimits::default()
    };
    trust(&cluster, ONCE_A_DAY, &key, &[], 1, once).await?;
    let no_window = TrustLimits {
        differencing_window_secs: Some(0),
        ..TrustLimits::default()
    };
    trust(&cluster, NO_WINDOW, &key, &[], 1, no_window).await?;

    let base = BTreeMap::from([
        (0, Some("untrusted")),
        (UNTRUSTING, Some("untrusted")),
        (STRICT_K, Some("k_min")),
        (STRICT_T, Some("t")),
    ]);

    // 1. A sum over `c`: the trusting nodes, ONLY_C, ONCE_A_DAY and NO_WINDOW contribute.
    let q1 = "SELECT sum(x), count(*) FROM c CLIP x TO [0, 1e9] SCALE 0";
    let mut expected = base.clone();
    for i in TRUSTING.into_iter().chain([ONLY_C, ONCE_A_DAY, NO_WINDOW]) {
        expected.insert(i, None);
    }
    let r1 = run_and_check(&cluster, q1, &expected).await?;
    let sum: i64 = expected
        .iter()
        .filter(|(_, r)| r.is_none())
        .map(|(&i, _)| value_of(i))
        .sum();
    assert_eq!(cell(&r1, 0, 0), Some(sum as f64), "{r1}");

    // 2. A count over `d`: ONLY_C is not trusted with it; ONCE_A_DAY had its computation.
    let q2 = "SELECT count(*) FROM d";
    let mut expected = base.clone();
    for i in TRUSTING.into_iter().chain([NO_WINDOW]) {
        expected.insert(i, None);
    }
    expected.insert(ONLY_C, Some("collection"));
    expected.insert(ONCE_A_DAY, Some("rate"));
    run_and_check(&cluster, q2, &expected).await?;

    // 3. The sum of 1 again, without one person: the differencing rule declines it
    //    everywhere but at the node with no window.
    let q3 = format!(
        "SELECT sum(x), count(*) FROM c WHERE x != {} CLIP x TO [0, 1e9] SCALE 0",
        value_of(2)
    );
    let mut expected = base.clone();
    for i in TRUSTING.into_iter().chain([ONLY_C]) {
        expected.insert(i, Some("differencing"));
    }
    expected.insert(ONCE_A_DAY, Some("rate"));
    expected.insert(NO_WINDOW, None);
    // Only the node with no window contributes, and one contributor alone is never summed:
    // the root releases nothing (before the lone-contributor rule, its value came out).
    let r3 = run_and_check(&cluster, &q3, &expected).await?;
    assert_eq!(r3["released"], false, "{r3}");
    Ok(())
}
