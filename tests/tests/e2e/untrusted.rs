//! Nodes that do not trust the commissioner send no share, and their audit log says why;
//! the result covers exactly the nodes that trust it.

use grove_e2e::{ctl, grove_node, start_network, sum_params};
use grove_node::control::ControlRequest;
use serde_json::json;
use std::path::Path;

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
const NODES: usize = 8;
const TRUSTING: [usize; 3] = [1, 2, 3];
/// Trusts the commissioner only for k_min >= 5 (the request has k_min = 1).
const STRICT: usize = 4;

/// Distinctive values, so that a leak into the audit log would be visible.
fn value_of(i: usize) -> i64 {
    7_770_001 + 13 * i as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_commissioner_gets_no_share() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let cluster = start_network(Path::new(EXE), NODES).await?;
    let mut trusted_sum = 0i64;
    for i in 0..NODES {
        let v = value_of(i);
        if TRUSTING.contains(&i) {
            trusted_sum += v;
        }
        grove_e2e::import(&cluster, i, "c", json!({"x": v})).await?;
    }
    let key = grove_e2e::commissioner_key(&cluster, 0).await?;
    for &i in &TRUSTING {
        grove_e2e::trust(&cluster, i, &key, &[]).await?;
    }
    // Node 4 trusts the commissioner, but only with results over at least 5 contributors.
    ctl(
        &cluster,
        STRICT,
        ControlRequest::TrustAdd {
            key: key.clone(),
            collections: vec![],
            label: String::new(),
            min_contributors: 5,
            limits: grove_e2e::test_limits(),
        },
    )
    .await?;
    let result = ctl(
        &cluster,
        0,
        ControlRequest::Compute(sum_params("c", "x", 3, 2)),
    )
    .await?;
    grove_e2e::assert_exact(&result, trusted_sum as f64, TRUSTING.len());
    let computation = result["computation"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    for i in 0..NODES {
        let status = ctl(&cluster, i, ControlRequest::Status).await?;
        let shares = status["sent"]["share"].as_u64().unwrap_or(0);
        let audit = ctl(&cluster, i, ControlRequest::Audit).await?;
        let entries = audit["entries"].as_array().cloned().unwrap_or_default();
        let about = |kind: &str| {
            entries
                .iter()
                .filter(|e| e["computation"] == computation.as_str() && e["kind"] == kind)
                .map(|e| e["detail"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        };
        if TRUSTING.contains(&i) {
            // g = 3 shares, or g - 1 over the network when the contributor holds a position of
            // its own leaf group (the engine delivers that share to itself).
            assert!(
                shares == 3 || shares == 2,
                "node {i} sent {shares} shares, not g = 3 or g - 1"
            );
            assert_eq!(about("contributed").len(), 1, "node {i}: {entries:?}");
        } else {
            assert_eq!(shares, 0, "untrusting node {i} sent a share");
            let declined = about("declined");
            let why = if i == STRICT {
                "is below the 5 contributors"
            } else {
                "is not trusted"
            };
            assert!(
                declined.iter().any(|d| d.contains(why)),
                "node {i} does not say why it declined: {entries:?}"
            );
            assert!(about("contributed").is_empty());
        }
        // The audit log never holds a value.
        for e in &entries {
            let detail = e["detail"].as_str().unwrap_or_default();
            assert!(
                !detail.contains(&value_of(i).to_string()),
                "node {i} audit leaks its value: {detail}"
            );
        }
    }
    Ok(())
}
