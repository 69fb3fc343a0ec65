//! What the owners allowed, through real processes: nine daemons, eight owners who each ran
//! `grove trust add KEY --collections bank.operations --min-k 5 --min-t 3`, and a commissioner
//! whose engine ignores `k_min` (the e2e binary's `GROVE_E2E_SKIP_K_MIN`): whatever the root
//! group releases, it shows. One network answers, in turn:
//!
//! 1. the attack of issue 13: `GROUP BY id IN (...)` over one operation of each owner at
//!    `k_min = 5`: every row counts one contributor, the root group releases nothing, and the
//!    commissioner learns that no cell met `k_min`;
//! 2. a `GROUP BY category` whose `food` row counts every owner and whose `rare` row counts
//!    one: `food` is exact, `rare` is suppressed (no value, no count);
//! 3. a query whose only cell counts 7 owners, answered exactly; the eighth owner's records
//!    match nothing: it sends zeros like everyone else's shares, is counted in no cell, and its
//!    audit says it sent zeros;
//! 4. the very same query again: every owner declines it as a `repeat`.

use grove_e2e::{ctl, grove_node, start_all, SKIP_K_MIN_ENV};
use grove_node::control::{ComputeParams, ControlRequest};
use grove_node::procs::Cluster;
use serde_json::{json, Value};
use std::path::Path;

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
const NODES: usize = 9;
/// Owners 1 to 8; owner 8's amounts are all negative.
const OWNERS: std::ops::RangeInclusive<usize> = 1..=8;
const NEGATIVE: usize = 8;

fn object(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("an object literal"),
    }
}

/// Owner `i`'s two operations: `op-i-0` (food) and `op-i-1` (food, or `rare` for owner 1).
fn operations(i: usize) -> Vec<serde_json::Map<String, Value>> {
    let sign = if i == NEGATIVE { -1.0 } else { 1.0 };
    (0..2)
        .map(|k| {
            let category = if i == 1 && k == 1 { "rare" } else { "food" };
            object(json!({
                "id": format!("op-{i}-{k}"),
                "category": category,
                "amount": sign * (1000.0 * i as f64 + 17.0 * k as f64 + 0.25),
            }))
        })
        .collect()
}

fn params(query: &str) -> ComputeParams {
    ComputeParams {
        query: query.into(),
        g: 3,
        t: 3,
        k_min: 5,
        leaf_groups: None,
        fan_in: 2,
        max_contributors: None,
        share_window_ms: 1500,
        lifetime_secs: 40,
    }
}

/// Each node's audit decision (`kind`, `rule`, `detail`) about one computation.
async fn decision(cluster: &Cluster, i: usize, computation: &str) -> anyhow::Result<Value> {
    let audit = ctl(cluster, i, ControlRequest::Audit).await?;
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    let mine: Vec<Value> = entries
        .into_iter()
        .filter(|e| {
            e["computation"] == computation
                && (e["kind"] == "declined" || e["kind"] == "contributed")
        })
        .collect();
    anyhow::ensure!(mine.len() == 1, "node {i}: {mine:?}");
    Ok(mine[0].clone())
}

/// The computation id of the latest `launched` audit entry of node 0.
async fn last_launched(cluster: &Cluster) -> anyhow::Result<String> {
    let audit = ctl(cluster, 0, ControlRequest::Audit).await?;
    audit["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "launched" || e["kind"] == "accepted")
        .filter_map(|e| e["computation"].as_str().map(str::to_string))
        .next_back()
        .ok_or_else(|| anyhow::anyhow!("node 0 launched nothing"))
}

async fn shares_sent(cluster: &Cluster) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::new();
    for i in 0..NODES {
        let s = ctl(cluster, i, ControlRequest::Status).await?;
        out.push(s["sent"]["share"].as_u64().unwrap_or(0));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_floors_hold_at_the_root_against_a_commissioner_ignoring_them() -> anyhow::Result<()>
{
    let _serial = grove_e2e::serial().await;
    let mut cluster = Cluster::new(Path::new(EXE))?;
    for _ in 0..NODES {
        cluster.add_node()?;
    }
    cluster.nodes[0]
        .env
        .push((SKIP_K_MIN_ENV.to_string(), "1".to_string()));
    start_all(&mut cluster).await?;
    let key = grove_e2e::commissioner_key(&cluster, 0).await?;
    for i in OWNERS {
        ctl(
            &cluster,
            i,
            ControlRequest::Import {
                collection: "bank.operations".into(),
                records: operations(i),
            },
        )
        .await?;
        // As a new user would: the CLI, which prints the limits it stored.
        let out = std::process::Command::new(EXE)
            .arg("--data-dir")
            .arg(cluster.dir(i))
            .args(["trust", "add", &key])
            .args([
                "--collections",
                "bank.operations",
                "--min-k",
                "5",
                "--min-t",
                "3",
            ])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(out.status.success(), "trust add: {text}");
        for line in [
            "collections: bank.operations",
            "k_min >= 5",
            "t >= 3",
            "GROUP BY keys <= 64",
            "repeats: declined",
        ] {
            assert!(text.contains(line), "`trust add` printed {text}");
        }
    }

    // 1. The attack: one row per person.
    let attack = "SELECT count(DISTINCT CONTRIBUTOR), sum(amount) FROM bank.operations \
                  GROUP BY id IN ('op-1-0', 'op-2-0', 'op-3-0', 'op-4-0', 'op-5-0', 'op-6-0') \
                  CLIP amount TO [-1000, 100000]";
    let answer = ctl(&cluster, 0, ControlRequest::Compute(params(attack))).await;
    let error = answer.expect_err("no row of one contributor may be released");
    eprintln!("{attack}\n{error}\n");
    assert!(
        error.to_string().contains("counts k_min = 5 contributors"),
        "{error}"
    );
    let computation = last_launched(&cluster).await?;
    for i in OWNERS {
        let d = decision(&cluster, i, &computation).await?;
        assert_eq!(d["kind"], "contributed", "node {i}: {d}");
    }

    // 2. One row of every owner, one row of a single owner.
    let mixed = "SELECT count(DISTINCT CONTRIBUTOR), count(*), sum(amount) FROM bank.operations \
                 GROUP BY category IN ('food', 'rare') CLIP amount TO [-1000, 100000]";
    let result = ctl(&cluster, 0, ControlRequest::Compute(params(mixed))).await?;
    eprintln!("{mixed}\n{}\n", result["text"].as_str().unwrap_or_default());
    let rows = result["table"]["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rows.len(), 2, "{result}");
    assert_eq!(rows[0]["suppressed"], false, "{result}");
    assert_eq!(rows[0]["cells"][0].as_f64(), Some(8.0), "{result}");
    assert_eq!(rows[0]["cells"][1].as_f64(), Some(15.0), "{result}");
    let food: f64 = OWNERS
        .flat_map(operations)
        .filter(|r| r["category"] == "food")
        .map(|r| r["amount"].as_f64().unwrap_or(0.0).max(-1000.0))
        .sum();
    let food_cell = rows[0]["cells"][2].as_f64().unwrap_or(f64::NAN);
    assert!((food_cell - food).abs() < 1e-6, "{food_cell} != {food}");
    assert_eq!(rows[1]["suppressed"], true, "{result}");
    assert!(
        rows[1]["cells"]
            .as_array()
            .is_some_and(|c| c.iter().all(Value::is_null)),
        "{result}"
    );
    // Nothing of the rare row, its count included, reached the commissioner.
    let values = result["values"].as_array().cloned().unwrap_or_default();
    let width = values.len() / 2;
    assert!(values[width..].iter().all(Value::is_null), "{result}");
    assert!(
        result["text"]
            .as_str()
            .is_some_and(|t| t.contains("rare") && t.contains("suppressed")),
        "{result}"
    );

    // 3. Large enough: 7 owners spent; owner 8's operations are refunds (negative).
    let spent = "SELECT count(DISTINCT CONTRIBUTOR), sum(amount) FROM bank.operations \
                 WHERE amount > 0 CLIP amount TO [-1000, 100000]";
    let before = shares_sent(&cluster).await?;
    let result = ctl(&cluster, 0, ControlRequest::Compute(params(spent))).await?;
    eprintln!("{spent}\n{}\n", result["text"].as_str().unwrap_or_default());
    let after = shares_sent(&cluster).await?;
    let computation = result["computation"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let total: f64 = OWNERS
        .filter(|i| *i != NEGATIVE)
        .flat_map(operations)
        .map(|r| r["amount"].as_f64().unwrap_or(0.0))
        .sum();
    assert_eq!(grove_e2e::cell(&result, 0, 0), Some(7.0), "{result}");
    let sum = grove_e2e::cell(&result, 0, 1).unwrap_or(f64::NAN);
    assert!((sum - total).abs() < 1e-6, "{sum} != {total}: {result}");
    // All eight owners contributed, owner 8 with zeros, sending its shares like the others.
    assert_eq!(result["contributors"].as_u64(), Some(8), "{result}");
    for i in OWNERS {
        let d = decision(&cluster, i, &computation).await?;
        assert_eq!(d["kind"], "contributed", "node {i}: {d}");
        let detail = d["detail"].as_str().unwrap_or_default();
        assert_eq!(
            detail.contains("sent zeros"),
            i == NEGATIVE,
            "node {i}: {d}"
        );
        let sent = after[i] - before[i];
        assert!(sent == 3 || sent == 2, "node {i} sent {sent} shares");
    }

    // 4. The same query again, inside the differencing window: a repeat, declined by all.
    let before = shares_sent(&cluster).await?;
    let again = ctl(&cluster, 0, ControlRequest::Compute(params(spent))).await;
    assert!(
        again.is_err(),
        "no one contributed to the repeat: {again:?}"
    );
    if let Err(e) = &again {
        eprintln!("the same query again: {e}");
    }
    let after = shares_sent(&cluster).await?;
    let computation = last_launched(&cluster).await?;
    for i in OWNERS {
        let d = decision(&cluster, i, &computation).await?;
        assert_eq!(d["kind"], "declined", "node {i}: {d}");
        assert_eq!(d["rule"], "repeat", "node {i}: {d}");
        assert_eq!(after[i], before[i], "node {i} sent shares to a repeat");
    }
    Ok(())
}
