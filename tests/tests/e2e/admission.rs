//! Admission across real processes: the test is the network's one issuer (`[admission]` in
//! every config, `grove_node::admission::configure_local`). Certificates travel in the signed
//! announcements and every daemon checks them.
//!
//! - An admitted commissioner freezes only admitted identities into its snapshot: a daemon
//!   without a certificate (or outside admission) is never placed, and its shares are refused
//!   (`NotACandidate`), so the sum covers the admitted contributors exactly.
//! - A commissioner outside admission plans over every identity it knows: every admitted
//!   daemon refuses the request ("not an admitted identity") and says so in its audit.
//! - An admitted daemon that starts after the broadcast finds the request in the DHT and
//!   refuses it, because the candidate set omits it ("omits this node").
//!
//! Node `i` holds the value `2^i`, so a released sum names exactly which contributors it
//! covers.

use grove_e2e::{ctl, grove_node, start_all, sum_params};
use grove_node::control::{self, ControlRequest};
use grove_node::procs::Cluster;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
/// Admitted daemons (serials 0..ADMITTED).
const ADMITTED: usize = 5;
/// Daemon `ADMITTED` knows the issuer but holds no certificate.
const UNCERTIFIED: usize = ADMITTED;
/// Daemon `ADMITTED + 1` has no `[admission]` section at all.
const OUTSIDER: usize = ADMITTED + 1;

fn record(x: u64) -> serde_json::Map<String, Value> {
    match json!({ "x": x }) {
        Value::Object(m) => m,
        _ => unreachable!("an object literal"),
    }
}

fn issuer() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[0x15; 32])
}

/// Imports `2^i` into node `i` and makes it trust the commissioner keys of `commissioners`.
async fn seed(cluster: &Cluster, nodes: &[usize], commissioners: &[usize]) -> anyhow::Result<()> {
    let mut keys = Vec::new();
    for &c in commissioners {
        keys.push(grove_e2e::commissioner_key(cluster, c).await?);
    }
    for &i in nodes {
        ctl(
            cluster,
            i,
            ControlRequest::Import {
                collection: "c".into(),
                records: vec![record(1 << i)],
            },
        )
        .await?;
        for key in &keys {
            grove_e2e::trust(cluster, i, key, &[]).await?;
        }
    }
    Ok(())
}

/// Whether node `i`'s audit holds a refusal whose reason contains `why`.
async fn refused(cluster: &Cluster, i: usize, why: &str) -> anyhow::Result<bool> {
    let audit = ctl(cluster, i, ControlRequest::Audit).await?;
    Ok(audit["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["kind"] == "refused" && e["detail"].as_str().unwrap_or_default().contains(why)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unadmitted_daemons_are_never_selected_nor_counted_and_their_requests_are_refused(
) -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let mut cluster = Cluster::new(Path::new(EXE))?;
    let issuer = issuer();
    let quota = ADMITTED as u32;
    for i in 0..=OUTSIDER {
        cluster.add_node()?;
        match i {
            OUTSIDER => {}
            UNCERTIFIED => {
                grove_node::admission::configure_local(cluster.dir(i), &issuer, quota, None)?
            }
            _ => grove_node::admission::configure_local(
                cluster.dir(i),
                &issuer,
                quota,
                Some(i as u32),
            )?,
        }
    }
    start_all(&mut cluster).await?;
    let all: Vec<usize> = (0..=OUTSIDER).collect();
    seed(&cluster, &all, &[0, OUTSIDER]).await?;
    // Every admitted daemon learnt the others' certificates from their announcements.
    let until = Instant::now() + Duration::from_secs(30);
    let admission = |s: &Value| {
        let a = &s["admission"];
        (a["known_eligible"].as_u64(), a["admitted"].as_bool())
    };
    let want = (Some(ADMITTED as u64), Some(true));
    grove_e2e::wait_status(&cluster, 0..ADMITTED, until, want, admission).await?;
    let uncertified = ctl(&cluster, UNCERTIFIED, ControlRequest::Status).await?;
    assert_eq!(uncertified["admission"]["admitted"], false, "{uncertified}");

    // 1. An admitted commissioner: the plan places admitted daemons only; the unadmitted
    //    daemons' shares are refused and the sum covers the admitted contributors exactly.
    let mut params = sum_params("c", "x", 3, 2);
    params.leaf_groups = Some(1);
    let (plan, compute) = grove_e2e::launch(&cluster, 0, params).await?;
    let result = compute.await??;
    eprintln!("plan {plan}\nresult {result}");
    let unadmitted: Vec<String> = [UNCERTIFIED, OUTSIDER]
        .iter()
        .filter_map(|&i| cluster.nodes[i].peer_id.clone())
        .collect();
    assert_eq!(unadmitted.len(), 2);
    let positions = grove_e2e::placed(&plan);
    assert!(!positions.is_empty(), "{plan}");
    for p in &unadmitted {
        assert!(!positions.contains(p), "unadmitted {p} is placed: {plan}");
    }
    assert_eq!(result["directory_peers"].as_u64(), Some(ADMITTED as u64));
    let admitted_sum = ((1u64 << ADMITTED) - 1) as f64;
    grove_e2e::assert_exact(&result, admitted_sum, ADMITTED);
    let mut not_candidates = 0;
    for i in 0..ADMITTED {
        let st = ctl(&cluster, i, ControlRequest::Status).await?;
        not_candidates += st["rejected"]["NotACandidate"].as_u64().unwrap_or(0);
    }
    assert!(
        not_candidates >= 1,
        "no node refused the unadmitted daemons' shares"
    );
    // Every daemon timed its directory pulls: the round trip `grove compute` plans with.
    for i in 0..ADMITTED {
        let st = ctl(&cluster, i, ControlRequest::Status).await?;
        assert!(st["latency"]["samples"].as_u64() >= Some(1), "{st}");
        assert!(st["latency"]["rtt_us"].as_u64() > Some(0), "{st}");
    }
    // `grove compute` plans over the admitted identities (5, not the 7 in the directory),
    // keeps the given g and t, and prints their exposure with a warning.
    let out = std::process::Command::new(EXE)
        .arg("--data-dir")
        .arg(cluster.dir(0))
        .args([
            "compute",
            "--g",
            "3",
            "--t",
            "2",
            "--leaf-groups",
            "1",
            "--k-min",
            "1",
            "--lifetime-secs",
            "20",
            "SELECT sum(x) FROM c CLIP x TO [0, 1e6] SCALE 0",
        ])
        .stdin(std::process::Stdio::null())
        .output()?;
    let said = String::from_utf8_lossy(&out.stderr);
    eprintln!("grove compute said:\n{said}");
    assert!(out.status.success(), "{said}");
    assert!(said.contains("5 available nodes"), "{said}");
    assert!(said.contains("probability 2.80e-2 if 10%"), "{said}");
    assert!(said.contains("warning: exposure 2.80e-2"), "{said}");

    // 2. A commissioner outside admission plans over every identity it knows: every admitted
    //    daemon refuses the request, and nothing is released.
    let mut params = sum_params("c", "x", 3, 2);
    params.lifetime_secs = 20;
    let dir = cluster.dir(OUTSIDER).to_path_buf();
    let compute = tokio::spawn(async move {
        control::call(&dir, &ControlRequest::Compute(params), |_, _| {}).await
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..ADMITTED {
        while !refused(&cluster, i, "is not an admitted identity").await? {
            anyhow::ensure!(
                Instant::now() < deadline,
                "node {i} did not refuse a candidate set with unadmitted identities: {}",
                ctl(&cluster, i, ControlRequest::Audit).await?
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let outcome = compute.await?;
    assert!(
        outcome.is_err(),
        "released over a refused request: {outcome:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admitted_daemon_left_out_of_the_candidate_set_refuses_the_request() -> anyhow::Result<()>
{
    let _serial = grove_e2e::serial().await;
    let mut cluster = Cluster::new(Path::new(EXE))?;
    let issuer = issuer();
    let quota = (ADMITTED + 1) as u32;
    for i in 0..ADMITTED {
        cluster.add_node()?;
        grove_node::admission::configure_local(cluster.dir(i), &issuer, quota, Some(i as u32))?;
    }
    start_all(&mut cluster).await?;
    // Admitted too, but started after the request is broadcast.
    let late = cluster.add_node()?;
    grove_node::admission::configure_local(cluster.dir(late), &issuer, quota, Some(late as u32))?;
    let on_time: Vec<usize> = (0..ADMITTED).collect();
    seed(&cluster, &on_time, &[0]).await?;

    let mut params = sum_params("c", "x", 3, 2);
    params.share_window_ms = 15_000;
    params.lifetime_secs = 90;
    let (plan, compute) = grove_e2e::launch(&cluster, 0, params).await?;
    // A leaf stops collecting once every candidate sent its shares: one candidate that serves
    // no position dies now, so the request stays active until the late node finds it.
    let positions = grove_e2e::placed(&plan);
    let silent = (1..ADMITTED)
        .rev()
        .find(|&i| {
            cluster.nodes[i]
                .peer_id
                .as_ref()
                .is_some_and(|p| !positions.contains(p))
        })
        .ok_or_else(|| anyhow::anyhow!("every node serves a position: {plan}"))?;
    cluster.kill(silent);
    let boot = cluster.nodes[0].addr.clone().unwrap_or_default();
    cluster.start(late, &[boot])?;
    cluster.wait_ready(late, Duration::from_secs(30)).await?;
    // Trusting the commissioner makes the node look up its active requests in the DHT.
    seed(&cluster, &[late], &[0]).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !refused(&cluster, late, "omits this node").await? {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the late node did not refuse a candidate set without it: {}",
            ctl(&cluster, late, ControlRequest::Audit).await?
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let result = compute.await??;
    eprintln!("result {result}");
    // The on-time contributors (the silent one may have sent its shares before it died),
    // without the late node, which refused and sent nothing.
    let sum = grove_e2e::cell(&result, 0, 0).unwrap_or(-1.0);
    let all = ((1u64 << ADMITTED) - 1) as f64;
    let without_silent = all - (1u64 << silent) as f64;
    assert!(sum == all || sum == without_silent, "{result}");
    let audit = ctl(&cluster, late, ControlRequest::Audit).await?;
    assert!(
        !audit["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["kind"] == "contributed"),
        "{audit}"
    );
    Ok(())
}
