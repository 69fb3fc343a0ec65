//! A node that starts after the request was broadcast finds it in the DHT (its commissioner's
//! active requests) and fetches the directory snapshot the request was planned over (its own
//! directory differs: it holds itself, the snapshot does not). That snapshot is the request's
//! candidate set, and the late node is not in it: it refuses the request at intake ("candidate
//! set omits this node"; its shares would be refused by the leaf as `Rejection::NotACandidate`),
//! sends no share and spends none of its owner's limits, and the released sum covers the other
//! contributors only.
//!
//! Node `i` holds the value `2^i`, so the released sum names exactly which contributors it
//! covers.

use grove_e2e::{ctl, grove_node, start_network, sum_params};
use grove_node::control::ControlRequest;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
/// Nodes present when the request is broadcast; one more joins later.
const NODES: usize = 8;

fn record(x: u64) -> serde_json::Map<String, Value> {
    match json!({ "x": x }) {
        Value::Object(m) => m,
        _ => unreachable!("an object literal"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_after_the_broadcast_joins_through_the_dht() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let mut cluster = start_network(Path::new(EXE), NODES).await?;
    let late = cluster.add_node()?;
    let key = grove_e2e::commissioner_key(&cluster, 0).await?;
    let trust = ControlRequest::TrustAdd {
        key,
        collections: vec![],
        label: String::new(),
        min_contributors: 1,
        limits: grove_e2e::test_limits(),
    };
    for i in 0..NODES {
        ctl(
            &cluster,
            i,
            ControlRequest::Import {
                collection: "c".into(),
                records: vec![record(1 << i)],
            },
        )
        .await?;
        ctl(&cluster, i, trust.clone()).await?;
    }

    // A share window long enough for a process to start on a loaded machine, and one leaf
    // group, so that every contributor, the late one included, sends to the same leaf.
    let mut params = sum_params("c", "x", 3, 2);
    params.share_window_ms = 15_000;
    params.lifetime_secs = 90;
    params.leaf_groups = Some(1);
    let (plan, compute) = grove_e2e::launch(&cluster, 0, params).await?;
    // A leaf stops collecting once every node of the commissioner's directory sent its shares
    // or declined, and the late node is not in that directory. One node that serves no
    // position dies now, so the leaf keeps collecting and the late node is in time.
    let serving: Vec<String> = plan["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["members"].as_array().cloned().unwrap_or_default())
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect();
    let silent = (1..NODES)
        .rev()
        .find(|&i| {
            cluster.nodes[i]
                .peer_id
                .as_deref()
                .is_some_and(|p| !serving.iter().any(|s| s == p))
        })
        .ok_or_else(|| anyhow::anyhow!("every node serves a position: {plan}"))?;
    cluster.kill(silent);
    // Past gossipsub's message history: the late node cannot get the request by gossip.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let boot = cluster.nodes[0].addr.clone().unwrap_or_default();
    cluster.start(late, &[boot])?;
    cluster.wait_ready(late, Duration::from_secs(30)).await?;
    ctl(
        &cluster,
        late,
        ControlRequest::Import {
            collection: "c".into(),
            records: vec![record(1 << late)],
        },
    )
    .await?;
    // Trusting the commissioner makes the node look up its active requests.
    ctl(&cluster, late, trust).await?;

    let result = compute.await??;
    let status = ctl(&cluster, late, ControlRequest::Status).await?;
    eprintln!("result {result}\nlate node {status}");
    let sum = grove_e2e::cell(&result, 0, 0).unwrap_or(-1.0);
    // Everyone but the silent node and the late node, which is not a candidate of the
    // request. (The silent node may have sent its shares before it died.)
    let all = ((1u64 << NODES) - 1) as f64;
    let without_silent = all - (1u64 << silent) as f64;
    assert!(sum == all || sum == without_silent, "{result}");
    let expected = if sum == all { NODES } else { NODES - 1 };
    assert_eq!(result["contributors"].as_u64(), Some(expected as u64));
    // The late node sent no share: it refused the request as soon as it had the snapshot.
    assert_eq!(status["sent"]["share"].as_u64().unwrap_or(0), 0, "{status}");
    let net = &status["network"];
    assert!(net["requests_found_in_dht"].as_u64() >= Some(1), "{status}");
    assert!(net["snapshots_fetched"].as_u64() >= Some(1), "{status}");
    let audit = ctl(&cluster, late, ControlRequest::Audit).await?;
    assert!(
        audit["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["kind"] == "refused"
                && e["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("omits this node")),
        "{audit}"
    );
    Ok(())
}
