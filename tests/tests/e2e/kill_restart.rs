//! Aggregators SIGKILLed in the middle of a computation, one of them restarted from its data
//! dir: the result is exact over the contributor set it reports.
//!
//! Node `i` holds the value `2^i`, so the released sum names exactly which contributors it
//! covers, and that set must have the reported count.

use grove_e2e::{grove_node, sum_params};
use grove_node::control::ComputeParams;
use std::path::Path;
use std::time::Duration;

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
const NODES: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_aggregators_and_a_restart_still_give_an_exact_result() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let mut cluster = grove_e2e::start_network(Path::new(EXE), NODES).await?;
    grove_e2e::seed_powers_of_two(&cluster).await?;

    // Two leaves and a root over twelve peers (the default plans one leaf for so few): the
    // victims below are one member of each of the first two groups.
    let params = ComputeParams {
        leaf_groups: Some(2),
        ..sum_params("c", "x", 3, 2)
    };
    let share_window = Duration::from_millis(params.share_window_ms);
    let (plan, compute) = grove_e2e::launch(&cluster, 0, params).await?;
    // One member of each of the first two groups (never the commissioner, node 0).
    let index_of = |peer: &str| grove_e2e::index_of_peer(&cluster, peer);
    let groups = plan["groups"].as_array().cloned().unwrap_or_default();
    assert!(groups.len() >= 3, "expected an inner level: {plan}");
    let mut victims = Vec::new();
    for g in groups.iter().take(2) {
        let member = g["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str().and_then(index_of))
            .find(|&i| i != 0)
            .ok_or_else(|| anyhow::anyhow!("no victim in {g}"))?;
        victims.push(member);
    }
    tokio::time::sleep(share_window / 3).await;
    for &v in &victims {
        cluster.kill(v);
    }
    // The first victim comes back from its data dir while the computation is still on.
    tokio::time::sleep(share_window / 3).await;
    let boot = cluster.nodes[0].addr.clone().unwrap_or_default();
    cluster.start(victims[0], &[boot])?;
    cluster
        .wait_ready(victims[0], Duration::from_secs(20))
        .await?;

    let result = compute.await??;
    let included = grove_e2e::exact_set(&result, NODES)?;
    let contributors = u64::from(included.count_ones());
    assert!(
        contributors >= (NODES - victims.len()) as u64,
        "too few contributors: {result}"
    );
    eprintln!(
        "killed {victims:?}, restarted {}: {contributors} of {NODES} included, set {included:#014b}",
        victims[0]
    );
    Ok(())
}
