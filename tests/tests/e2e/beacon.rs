//! The randomness beacon across real processes: a local drand chain (a test key) served over
//! HTTP by a relay task of this test process, every daemon following it (`[beacon]` in its
//! config). The commissioner's request names a future round; every node fetches it from the
//! relay, verifies its BLS signature and plans from it. A relay that serves rounds signed with
//! another key gets them refused by every node, and nothing is computed.

use grove_e2e::{ctl, grove_node, start_all, sum_params};
use grove_node::beacon::start_local_relay;
use grove_node::control::ControlRequest;
use grove_node::procs::Cluster;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
const NODES: usize = 6;
/// The key seed of the chain every node follows.
const CHAIN_KEY: u64 = 15;
/// The key a lying relay signs with.
const FORGER_KEY: u64 = 16;

/// `NODES` daemons following a local chain served by a relay of this process (lying if
/// `forge` is set), each with records and trusting node 0; returns the plain sum.
async fn network(
    forge: Option<u64>,
) -> anyhow::Result<(Cluster, grove_node::beacon::RelayTask, i64)> {
    let mut cluster = Cluster::new(Path::new(EXE))?;
    let (relay, section) = start_local_relay(CHAIN_KEY, forge).await?;
    for i in 0..NODES {
        cluster.add_node()?;
        grove_node::config::append_beacon(cluster.dir(i), &section)?;
    }
    start_all(&mut cluster).await?;
    let mut plain = 0i64;
    for i in 0..NODES {
        let v = (i as i64 + 1) * 101;
        plain += v;
        grove_e2e::import(&cluster, i, "money", json!({"balance": v})).await?;
    }
    let key = grove_e2e::commissioner_key(&cluster, 0).await?;
    for i in 0..NODES {
        ctl(
            &cluster,
            i,
            ControlRequest::TrustAdd {
                key: key.clone(),
                collections: vec!["money".into()],
                label: "test".into(),
                min_contributors: 1,
                limits: grove_e2e::test_limits(),
            },
        )
        .await?;
    }
    Ok((cluster, relay, plain))
}

fn beacon_count(status: &Value, field: &str) -> u64 {
    status["beacon"][field].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_on_the_beacon_computes_exactly() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let (cluster, _relay, plain) = network(None).await?;
    let result = ctl(
        &cluster,
        0,
        ControlRequest::Compute(sum_params("money", "balance", 3, 2)),
    )
    .await?;
    grove_e2e::assert_exact(&result, plain as f64, NODES);
    // Every node planned from the round it fetched and verified, and refused none.
    for i in 0..NODES {
        let status = ctl(&cluster, i, ControlRequest::Status).await?;
        assert!(
            beacon_count(&status, "rounds_verified") >= 1,
            "node {i} verified no round: {}",
            status["beacon"]
        );
        assert_eq!(beacon_count(&status, "rounds_refused"), 0, "node {i}");
    }
    eprintln!("exact sum over {NODES} processes on the beacon: {result}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_refuses_a_forged_round() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let (cluster, _relay, _) = network(Some(FORGER_KEY)).await?;
    // The compute waits for a round that never verifies: run it aside and watch the nodes.
    let dir = cluster.dir(0).to_path_buf();
    let compute = tokio::spawn(async move {
        grove_node::control::call(
            &dir,
            &ControlRequest::Compute(sum_params("money", "balance", 3, 2)),
            |_, _| {},
        )
        .await
    });
    let start = Instant::now();
    let mut refused_by_all = false;
    while start.elapsed() < Duration::from_secs(30) {
        let mut all = true;
        for i in 0..NODES {
            let status = ctl(&cluster, i, ControlRequest::Status).await?;
            all &= beacon_count(&status, "rounds_refused") >= 2;
        }
        if all {
            refused_by_all = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(refused_by_all, "not every node refused the forged rounds");
    for i in 0..NODES {
        let status = ctl(&cluster, i, ControlRequest::Status).await?;
        assert_eq!(beacon_count(&status, "rounds_verified"), 0, "node {i}");
        assert!(
            status["rejected"]["BadBeaconRound"].as_u64().unwrap_or(0) >= 2,
            "node {i}: {}",
            status["rejected"]
        );
        // No node planned the request: nothing in flight, no share sent.
        assert_eq!(
            status["computations_in_flight"].as_array().map(Vec::len),
            Some(0),
            "node {i}"
        );
        assert!(
            status["sent"].get("share").is_none(),
            "node {i} sent shares: {}",
            status["sent"]
        );
    }
    assert!(
        !compute.is_finished(),
        "the computation ended: {:?}",
        compute
    );
    compute.abort();
    Ok(())
}
