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
    /// The request's `k_min`, and every node's floor: rows and buckets of fewer contributors
    /// are withheld by the root group.
    pub k_min: u64,
    pub share_window_ms: u64,
    pub keep: bool,
    /// The query to run (default: [`BANK_BY_MONTH`]).
    pub query: Option<String>,
    /// Keep the network running afterwards with node 0's console open, until Ctrl-C.
    pub console: bool,
    /// Run a local drand chain (a test key) and seed every plan from its rounds.
    pub beacon: bool,
}

/// The step-count collection.
pub const COLLECTION: &str = "activity";
pub const FIELD: &str = "steps";
/// Bank operations: `date`, `category`, `amount` (spending is positive).
pub const BANK: &str = "bank.operations";
/// One local model update per node: `round`, `samples`, `update` (a vector of [`MODEL_DIM`]).
pub const MODEL: &str = "model.updates";
pub const MODEL_DIM: usize = 8;
pub const CATEGORIES: [&str; 5] = ["food", "transport", "housing", "leisure", "health"];
pub const AGE_BANDS: [&str; 4] = ["18-29", "30-44", "45-64", "65+"];

/// Spending by month (every operation but income): the demo's default query.
pub const BANK_BY_MONTH: &str =
    "SELECT count(DISTINCT CONTRIBUTOR), count(*), sum(amount), avg(amount)
FROM bank.operations
WHERE category != 'income' AND amount > 0
GROUP BY month(date) IN ('2026-01', '2026-02', '2026-03')
CLIP amount TO [0, 2000]";

/// Daily steps by age band.
pub const STEPS_BY_AGE: &str =
    "SELECT count(DISTINCT CONTRIBUTOR), count(*), avg(steps), stddev(steps)
FROM activity
WHERE date BETWEEN '2026-03-01' AND '2026-03-31'
GROUP BY age_band IN ('18-29', '30-44', '45-64', '65+')
CLIP steps TO [0, 40000]
LIMIT PER CONTRIBUTOR 31";

/// One FedAvg round: the sum of the clipped local updates and how many there are.
pub const FEDAVG_ROUND: &str = "SELECT count(*), sum_vector(update, 8)
FROM model.updates
WHERE round = 1
CLIP NORM update TO 1
LIMIT PER CONTRIBUTOR 1
SCALE 6";

type Object = serde_json::Map<String, Value>;

fn object(v: Value) -> Object {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("a JSON object literal"),
    }
}

fn rng_for(seed: u64, i: usize, salt: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(
        seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03),
    )
}

/// Synthetic step counts of node `i`: March 2026 (and a few February days), each day
/// with the owner's age band; daily steps around an owner's habit, lower with age.
pub fn synthetic_records(seed: u64, i: usize) -> Vec<Object> {
    let mut rng = rng_for(seed, i, 1);
    let band = rng.gen_range(0..AGE_BANDS.len());
    let habit = 9_500.0 - 1_300.0 * band as f64 + rng.gen_range(-2_500.0..2_500.0);
    let first = rng.gen_range(20..=28u32);
    let mut out = Vec::new();
    for d in first..=28 {
        out.push((2, d));
    }
    let days = rng.gen_range(10..=31u32);
    for d in 1..=days {
        out.push((3, d));
    }
    out.into_iter()
        .map(|(m, d)| {
            let steps = (habit * rng.gen_range(0.4..1.6f64)).round().max(0.0) as i64;
            object(json!({
                "date": format!("2026-{m:02}-{d:02}"),
                "age_band": AGE_BANDS[band],
                FIELD: steps,
            }))
        })
        .collect()
}

/// Synthetic bank operations of node `i`, January to March 2026: groceries every few days,
/// rent, transport, leisure, health, and a salary (a negative amount, category `income`).
pub fn bank_records(seed: u64, i: usize) -> Vec<Object> {
    let mut rng = rng_for(seed, i, 2);
    let appetite = rng.gen_range(0.6..1.6f64);
    let rent = (rng.gen_range(450.0..1_400.0f64) * 100.0).round() / 100.0;
    let mut out = Vec::new();
    for month in 1..=3u32 {
        let days = [31u32, 28, 31][month as usize - 1];
        out.push(object(json!({
            "date": format!("2026-{month:02}-01"), "category": "housing", "amount": rent,
        })));
        out.push(object(json!({
            "date": format!("2026-{month:02}-27"), "category": "income",
            "amount": -((rng.gen_range(1_600.0..4_200.0f64) * 100.0).round() / 100.0),
        })));
        let operations = rng.gen_range(8..=20);
        for _ in 0..operations {
            let day = rng.gen_range(1..=days);
            let category = CATEGORIES[rng.gen_range(0..CATEGORIES.len())];
            let amount = match category {
                "food" => rng.gen_range(8.0..140.0) * appetite,
                "transport" => rng.gen_range(2.0..60.0),
                "housing" => rng.gen_range(20.0..200.0),
                "leisure" => rng.gen_range(5.0..250.0),
                _ => rng.gen_range(10.0..90.0),
            };
            out.push(object(json!({
                "date": format!("2026-{month:02}-{day:02}"),
                "category": category,
                "amount": (amount * 100.0f64).round() / 100.0,
            })));
        }
    }
    out
}

/// Node `i`'s local model update for round 1: a step of local training towards the node's
/// own optimum (a shared direction plus the node's drift), after `samples` examples.
pub fn model_records(seed: u64, i: usize) -> Vec<Object> {
    let mut rng = rng_for(seed, i, 3);
    let shared = [0.30, -0.20, 0.10, 0.05, -0.15, 0.25, 0.00, -0.05];
    let update: Vec<f64> = shared
        .iter()
        .map(|s| ((s + rng.gen_range(-0.12..0.12f64)) * 1e6).round() / 1e6)
        .collect();
    vec![object(json!({
        "round": 1,
        "samples": rng.gen_range(40..400),
        "update": update,
    }))]
}

/// Every dataset of node `i`: `(collection, records)`.
pub fn datasets(seed: u64, i: usize) -> Vec<(&'static str, Vec<Object>)> {
    vec![
        (BANK, bank_records(seed, i)),
        (COLLECTION, synthetic_records(seed, i)),
        (MODEL, model_records(seed, i)),
    ]
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
        _ = tokio::signal::ctrl_c() => if args.console {
            eprintln!("stopping the demo network");
            Ok(())
        } else {
            Err(anyhow::anyhow!("interrupted"))
        },
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
    if args.console {
        cluster.nodes[0].args = vec!["--console".into(), "127.0.0.1:0".into()];
    }
    // The local beacon: a relay task of this process, serving a chain with a test key; every
    // node's config names it.
    // With kills the demo picks its victims from the plan the launch returns, which a beacon
    // round only fixes later: such a demo runs without the beacon (and says so).
    let _relay = if args.beacon && args.kill > 0 {
        say(
            args.json,
            "no beacon with --kill: the victims are picked from the plan at launch",
        );
        None
    } else if args.beacon {
        let (relay, section) = crate::beacon::start_local_relay(args.seed, None).await?;
        for i in 0..n {
            crate::config::append_beacon(cluster.dir(i), &section)?;
        }
        say(
            args.json,
            format!(
                "local randomness beacon (test key, one round a second) at {}",
                section.relays[0]
            ),
        );
        Some(relay)
    } else {
        None
    };
    // Admission: the demo is the network's one issuer and certifies every node (quota: the
    // number of nodes), so every node checks every candidate set against certificates.
    let issuer = ed25519_dalek::SigningKey::from_bytes(&crate::config::random_id());
    for i in 0..n {
        let quota = u32::try_from(n).context("too many nodes")?;
        crate::admission::configure_local(cluster.dir(i), &issuer, quota, Some(i as u32))?;
    }
    say(
        args.json,
        format!(
            "admission: the demo is the one issuer ({}), every node holds its certificate",
            &grove_protocol::ids::hex(&issuer.verifying_key().to_bytes())[..16]
        ),
    );
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

    // The query first: a mistake in it is reported before any import.
    let query_text = args
        .query
        .clone()
        .unwrap_or_else(|| BANK_BY_MONTH.to_string());
    let compiled = crate::owner::query::compile(&query_text).map_err(|e| anyhow::anyhow!(e))?;
    // Records, and the plaintext answer: the same query over every node's records, summed
    // in the clear. Every node trusts the commissioner, so every node contributes (zeros if
    // none of its records match).
    let mut plain = vec![0.0; compiled.spec().length as usize];
    let plain_contributors = n as u64;
    let mut imported = 0usize;
    for i in 0..n {
        for (collection, records) in datasets(args.seed, i) {
            if collection == compiled.query().collection {
                let (values, _) = crate::owner::query::contribution(&compiled, &records);
                for (p, v) in plain.iter_mut().zip(values) {
                    *p += v;
                }
            }
            imported += records.len();
            control::call(
                cluster.dir(i),
                &ControlRequest::Import {
                    collection: collection.into(),
                    records,
                },
                |_, _| {},
            )
            .await
            .with_context(|| format!("import into node {i}"))?;
        }
    }
    // What the root group releases of the plaintext at k_min: rows and buckets of fewer
    // contributors are withheld.
    let plain_released = compiled.released_at(&plain, args.k_min);
    let plain_table = compiled.decode_plain(&plain, &plain_released, plain_contributors);
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
                collections: vec![BANK.into(), COLLECTION.into(), MODEL.into()],
                label: "demo commissioner".into(),
                min_contributors: args.k_min,
                limits: crate::control::TrustLimits {
                    min_t: Some(args.t),
                    ..Default::default()
                },
            },
            |_, _| {},
        )
        .await?;
    }
    say(
        args.json,
        format!("imported {imported} synthetic records ({BANK}, {COLLECTION}, {MODEL}); every node trusts the commissioner (node 0) for k_min >= {}, t >= {}", args.k_min, args.t),
    );

    let params = ComputeParams {
        query: query_text,
        g: args.g,
        t: args.t,
        k_min: args.k_min,
        share_window_ms: args.share_window_ms,
        ..ComputeParams::default()
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
    if let Some(plan) = plan.as_ref().filter(|p| p["groups"].is_null()) {
        say(
            args.json,
            format!(
                "computation {} launched; its plan waits for the beacon round it names",
                plan["computation"].as_str().unwrap_or("?")
            ),
        );
    } else if let Some(plan) = &plan {
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
    let contributors = result["contributors"].as_u64().unwrap_or(0);
    // A withheld element is null.
    let values: Vec<Option<f64>> = result["values"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    // Exact up to the fixed-point resolution: each contributor's value is rounded once, to
    // within half of 10^-scale; and withheld exactly where the plaintext counts fewer than
    // k_min contributors.
    let resolution = 10f64.powi(-(compiled.spec().scale_digits as i32));
    let tolerance = 0.5 * resolution * plain_contributors.max(1) as f64;
    let exact = contributors == plain_contributors
        && values.len() == plain.len()
        && values
            .iter()
            .zip(&plain)
            .zip(&plain_released)
            .all(|((a, b), open)| match a {
                Some(a) => *open && (a - b).abs() <= tolerance,
                None => !*open,
            });
    let values: Vec<f64> = values.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
    if args.json {
        println!(
            "{}",
            json!({
                "nodes": n,
                "killed": killed,
                "query": compiled.query().to_string(),
                "result": result,
                "plaintext": {"table": plain_table, "values": plain, "contributors": plain_contributors},
                "exact": exact,
                "compute_ms": elapsed_ms,
                "network_ms": network_ms,
                "total_ms": t0.elapsed().as_millis() as u64,
            })
        );
    } else {
        println!("{}\n", compiled.query());
        println!("grove result:");
        println!("{}", result["text"].as_str().unwrap_or_default());
        if let Some(mean) = fedavg_mean(&compiled, &values) {
            println!("FedAvg: mean update = {mean}");
        }
        println!(
            "contributors included: {contributors} of {n} nodes (completeness {:.1}%)\n",
            result["completeness"].as_f64().unwrap_or(0.0) * 100.0
        );
        println!("plaintext answer from the same records:");
        println!("{plain_table}");
        if let Some(mean) = fedavg_mean(&compiled, &plain) {
            println!("FedAvg: mean update = {mean}");
        }
        println!(
            "\n{} (computed in {elapsed_ms} ms; total demo {} ms)",
            if compiled.query().privacy.is_some() {
                "differential privacy: the plaintext answer plus the contributors' noise (each \
                 cell's 95% interval above)"
            } else if exact {
                "exact: the aggregate equals the plaintext answer"
            } else {
                "differs: the result covers only the contributors it reports"
            },
            t0.elapsed().as_millis()
        );
    }
    if args.console {
        let link = control::call(cluster.dir(0), &ControlRequest::ConsoleLink, |_, _| {}).await?;
        let link = link["link"].as_str().unwrap_or_default();
        if args.json {
            println!("{}", json!({ "console": link }));
        } else {
            println!("\nnode 0's console (the commissioner; every node trusts it): {link}");
            println!("the link works once; the network runs until Ctrl-C");
        }
        // Until Ctrl-C (`run` turns it into the end of the demo and cleans up).
        std::future::pending::<()>().await;
    }
    Ok(())
}

/// For a query of `count(*)` and `sum_vector` without `GROUP BY`: the mean vector (FedAvg's
/// new update), formatted.
fn fedavg_mean(compiled: &grove_protocol::query::CompiledQuery, values: &[f64]) -> Option<String> {
    use grove_protocol::query::Aggregate;
    let q = compiled.query();
    if q.group_by.is_some() {
        return None;
    }
    let count_at = q.aggregates.iter().position(|a| *a == Aggregate::Count)?;
    let vector_at = q
        .aggregates
        .iter()
        .position(|a| matches!(a, Aggregate::SumVector { .. }))?;
    let table = compiled.decode(values, 0);
    let count = match table.rows.first()?.cells.get(count_at)? {
        grove_protocol::query::Cell::Number(c) if *c > 0.0 => *c,
        _ => return None,
    };
    let grove_protocol::query::Cell::List(sum) = table.rows.first()?.cells.get(vector_at)? else {
        return None;
    };
    let mean: Vec<String> = sum
        .iter()
        .map(|x| x.map_or("-".into(), |x| format!("{:.4}", x / count)))
        .collect();
    Some(format!("[{}]", mean.join(", ")))
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
