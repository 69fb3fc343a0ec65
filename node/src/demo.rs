//! `grove demo`: a local network of real `grove daemon` processes on 127.0.0.1, synthetic
//! records, one computation (optionally with aggregators SIGKILLed in the middle), and the
//! result printed beside the plaintext answer computed directly from the same records.

use crate::control::{self, ComputeParams, ControlRequest};
use crate::procs::Cluster;
use anyhow::{bail, Context};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

pub struct DemoArgs {
    pub nodes: usize,
    pub kill: usize,
    pub json: bool,
    pub seed: u64,
    pub g: u8,
    pub t: u8,
    pub share_window_ms: u64,
    pub keep: bool,
}

pub const COLLECTION: &str = "activity";
pub const FIELD: &str = "steps";

/// Synthetic records of node `i`: a few days of step counts.
pub fn synthetic_records(seed: u64, i: usize) -> Vec<serde_json::Map<String, Value>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9));
    let days = rng.gen_range(3..=8);
    (0..days)
        .map(|d| {
            let steps: i64 = rng.gen_range(500..=20_000);
            match json!({ "day": d + 1, FIELD: steps }) {
                Value::Object(m) => m,
                _ => unreachable!("a JSON object literal"),
            }
        })
        .collect()
}

fn say(json: bool, line: impl AsRef<str>) {
    if !json {
        eprintln!("{}", line.as_ref());
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.nodes < 2 {
        bail!("a demo needs at least 2 nodes");
    }
    let exe = std::env::current_exe().context("cannot locate the grove binary")?;
    let mut cluster = Cluster::new(&exe)?;
    let outcome = tokio::select! {
        r = demo(&mut cluster, &args) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if args.keep {
        if let Some(dir) = cluster.keep_dirs() {
            eprintln!("data dirs kept in {}", dir.display());
        }
    }
    // `cluster` drops here (or on unwinding): every process is killed, every dir removed.
    drop(cluster);
    outcome
}

async fn demo(cluster: &mut Cluster, args: &DemoArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let n = args.nodes;
    say(
        args.json,
        format!("starting {n} grove daemons on 127.0.0.1 ..."),
    );
    for _ in 0..n {
        cluster.add_node()?;
    }
    cluster.start(0, &[])?;
    cluster.wait_ready(0, Duration::from_secs(20)).await?;
    let boot = cluster.nodes[0]
        .addr
        .clone()
        .context("node 0 has no address")?;
    for i in 1..n {
        cluster.start(i, std::slice::from_ref(&boot))?;
    }
    for i in 1..n {
        cluster.wait_ready(i, Duration::from_secs(20)).await?;
    }
    cluster.wait_directory(n, Duration::from_secs(60)).await?;
    let network_ms = t0.elapsed().as_millis();
    say(
        args.json,
        format!("network up: every node sees {n} peers ({network_ms} ms)"),
    );

    // Records and the plaintext answer.
    let mut plain_sum = 0i64;
    let mut plain_records = 0u64;
    for i in 0..n {
        let records = synthetic_records(args.seed, i);
        for r in &records {
            plain_sum += r[FIELD].as_i64().unwrap_or(0);
        }
        plain_records += records.len() as u64;
        control::call(
            cluster.dir(i),
            &ControlRequest::Import {
                collection: COLLECTION.into(),
                records,
            },
            |_, _| {},
        )
        .await
        .with_context(|| format!("import into node {i}"))?;
    }
    let status0 = control::call(cluster.dir(0), &ControlRequest::Status, |_, _| {}).await?;
    let key = status0["commissioner_key"]
        .as_str()
        .context("no commissioner key")?
        .to_string();
    for i in 0..n {
        control::call(
            cluster.dir(i),
            &ControlRequest::TrustAdd {
                key: key.clone(),
                collections: vec![COLLECTION.into()],
                label: "demo commissioner".into(),
                min_contributors: 1,
            },
            |_, _| {},
        )
        .await?;
    }
    say(
        args.json,
        format!("imported {plain_records} synthetic records; every node trusts the commissioner (node 0)"),
    );

    let params = ComputeParams {
        collection: COLLECTION.into(),
        field: FIELD.into(),
        g: args.g,
        t: args.t,
        k_min: 1,
        leaf_groups: None,
        fan_in: 2,
        bound: 1e9,
        max_records: 1_000_000,
        scale_digits: 0,
        max_contributors: 100_000,
        share_window_ms: args.share_window_ms,
        lifetime_secs: 60,
        dimension: None,
    };
    let (plan_tx, mut plan_rx) = tokio::sync::mpsc::channel::<Value>(1);
    let dir0 = cluster.dir(0).to_path_buf();
    let started = Instant::now();
    let compute = tokio::spawn(async move {
        control::call(&dir0, &ControlRequest::Compute(params), |_, data| {
            if let Some(d) = data {
                let _ = plan_tx.try_send(d.clone());
            }
        })
        .await
    });
    let plan = plan_rx.recv().await;
    let mut killed = Vec::new();
    if let Some(plan) = &plan {
        say(
            args.json,
            format!(
                "computation {} launched: {} groups (g = {}, t = {}, {} leaf groups, depth {})",
                plan["computation"].as_str().unwrap_or("?"),
                plan["groups"].as_array().map_or(0, |g| g.len()),
                plan["g"],
                plan["t"],
                plan["leaf_groups"],
                plan["depth"]
            ),
        );
        if args.kill > 0 {
            let victims = choose_victims(cluster, plan, args.kill, args.g, args.t);
            // Mid-computation: after the shares went out, before the leaves close.
            tokio::time::sleep(Duration::from_millis(args.share_window_ms / 2)).await;
            for &(i, level, index) in &victims {
                cluster.kill(i);
                killed.push(json!({"node": i, "level": level, "group": index}));
                say(
                    args.json,
                    format!("SIGKILLed node {i}, an aggregator of group ({level}, {index})"),
                );
            }
        }
    }
    let result = compute.await.context("the compute task failed")?;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let result = result.context("the computation failed")?;
    let sum = result["sum"].as_f64().unwrap_or(f64::NAN);
    let records = result["records"].as_f64().unwrap_or(f64::NAN);
    let contributors = result["contributors"].as_u64().unwrap_or(0);
    let exact = sum == plain_sum as f64 && records == plain_records as f64;
    if args.json {
        println!(
            "{}",
            json!({
                "nodes": n,
                "killed": killed,
                "result": {"sum": sum, "records": records, "contributors": contributors},
                "plaintext": {"sum": plain_sum, "records": plain_records, "contributors": n},
                "exact": exact,
                "compute_ms": elapsed_ms,
                "network_ms": network_ms,
                "total_ms": t0.elapsed().as_millis() as u64,
            })
        );
    } else {
        println!("result:    sum of {FIELD} = {sum}, over {records} records from {contributors} of {n} contributors");
        println!("plaintext: sum of {FIELD} = {plain_sum}, over {plain_records} records from {n} contributors");
        println!(
            "{} (computed in {elapsed_ms} ms; total demo {} ms)",
            if exact {
                "exact: the aggregate equals the plaintext answer"
            } else {
                "differs: the result covers only the contributors it reports"
            },
            t0.elapsed().as_millis()
        );
    }
    Ok(())
}

/// Up to `kill` aggregators other than the commissioner (node 0), at most `g - t` per group,
/// spread over the groups from the leaves up.
fn choose_victims(
    cluster: &Cluster,
    plan: &Value,
    kill: usize,
    g: u8,
    t: u8,
) -> Vec<(usize, u64, u64)> {
    let index_of = |peer: &str| {
        cluster
            .nodes
            .iter()
            .position(|n| n.peer_id.as_deref() == Some(peer))
    };
    let groups = plan["groups"].as_array().cloned().unwrap_or_default();
    let per_group = g.saturating_sub(t) as usize;
    let mut chosen: Vec<(usize, u64, u64)> = Vec::new();
    let mut taken = BTreeSet::new();
    for round in 0..per_group {
        for grp in &groups {
            if chosen.len() >= kill {
                return chosen;
            }
            let members = grp["members"].as_array().cloned().unwrap_or_default();
            // The `round`-th member that is not the commissioner.
            let candidates: Vec<usize> = members
                .iter()
                .filter_map(|m| m.as_str().and_then(index_of))
                .filter(|&i| i != 0)
                .collect();
            if let Some(&i) = candidates.get(round) {
                if taken.insert(i) {
                    chosen.push((
                        i,
                        grp["level"].as_u64().unwrap_or(0),
                        grp["index"].as_u64().unwrap_or(0),
                    ));
                }
            }
        }
    }
    chosen
}
