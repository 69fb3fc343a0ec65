//! A lying contributor through real processes (issue 17): eight daemons, a commissioner whose
//! engine ignores `k_min` (`GROVE_E2E_SKIP_K_MIN`: it shows whatever the root group releases),
//! six honest owners and one owner running the e2e binary with `GROVE_E2E_INFLATE=5`: it
//! multiplies its encoded vector by 5, indicators included, and proves that vector.
//!
//! The query groups by category at `k_min = 5`: five honest owners spent on `food`, one honest
//! owner and the liar on `rare`. Without validity proofs the liar's `rare` indicator of 5 lifts
//! that cell to 6 contributors, the root releases it, and the cell's sum minus the liar's own
//! (known) part is the one honest owner's amount. With them, the liar's leaf rejects its
//! contribution (counted as `InvalidContribution`), `rare` counts one owner and is suppressed,
//! and `food` is exact over the honest owners.

use grove_e2e::{ctl, grove_node, start_all, INFLATE_ENV, SKIP_K_MIN_ENV};
use grove_node::control::{ComputeParams, ControlRequest};
use grove_node::procs::Cluster;
use serde_json::{json, Value};
use std::path::Path;

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
const NODES: usize = 8;
/// Owners 1 to 7: 1..=5 spent on food, 6 (the honest owner of `rare`) and 7 (the liar) on rare.
const OWNERS: std::ops::RangeInclusive<usize> = 1..=7;
const HONEST_RARE: usize = 6;
const LIAR: usize = 7;

fn operation(i: usize) -> serde_json::Map<String, Value> {
    let category = if i >= HONEST_RARE { "rare" } else { "food" };
    match json!({
        "id": format!("op-{i}"),
        "category": category,
        "amount": 1000.0 * i as f64 + 0.25,
    }) {
        Value::Object(m) => m,
        _ => unreachable!("an object literal"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inflated_group_by_indicator_is_rejected_and_its_cell_stays_suppressed(
) -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let mut cluster = Cluster::new(Path::new(EXE))?;
    for _ in 0..NODES {
        cluster.add_node()?;
    }
    cluster.nodes[0]
        .env
        .push((SKIP_K_MIN_ENV.to_string(), "1".to_string()));
    cluster.nodes[LIAR]
        .env
        .push((INFLATE_ENV.to_string(), "5".to_string()));
    start_all(&mut cluster).await?;
    let key = grove_e2e::commissioner_key(&cluster, 0).await?;
    for i in OWNERS {
        ctl(
            &cluster,
            i,
            ControlRequest::Import {
                collection: "bank.operations".into(),
                records: vec![operation(i)],
            },
        )
        .await?;
        let out = std::process::Command::new(EXE)
            .arg("--data-dir")
            .arg(cluster.dir(i))
            .args(["trust", "add", &key])
            .args(["--collections", "bank.operations", "--min-k", "5"])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "trust add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let query = "SELECT count(DISTINCT CONTRIBUTOR), sum(amount) FROM bank.operations \
                 GROUP BY category IN ('food', 'rare') CLIP amount TO [0, 100000]";
    let params = ComputeParams {
        query: query.into(),
        g: 3,
        t: 3,
        k_min: 5,
        leaf_groups: None,
        fan_in: 2,
        max_contributors: None,
        share_window_ms: 1500,
        lifetime_secs: 40,
    };
    let result = ctl(&cluster, 0, ControlRequest::Compute(params)).await?;
    eprintln!("{query}\n{}\n", result["text"].as_str().unwrap_or_default());

    // The liar is left out: six contributors, and its leaf counted it as invalid.
    assert_eq!(result["contributors"].as_u64(), Some(6), "{result}");
    let mut invalid = 0;
    for i in 0..NODES {
        let st = ctl(&cluster, i, ControlRequest::Status).await?;
        invalid += st["rejected"]["InvalidContribution"].as_u64().unwrap_or(0);
    }
    assert!(invalid >= 1, "no node rejected the inflated contribution");

    let rows = result["table"]["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rows.len(), 2, "{result}");
    // `food`: the five honest owners, exact.
    assert_eq!(rows[0]["suppressed"], false, "{result}");
    assert_eq!(rows[0]["cells"][0].as_f64(), Some(5.0), "{result}");
    let food: f64 = (1..HONEST_RARE).map(|i| 1000.0 * i as f64 + 0.25).sum();
    let food_cell = rows[0]["cells"][1].as_f64().unwrap_or(f64::NAN);
    assert!((food_cell - food).abs() < 1e-6, "{food_cell} != {food}");
    // `rare`: one honest owner, suppressed; nothing of it reached the commissioner.
    assert_eq!(rows[1]["suppressed"], true, "{result}");
    let values = result["values"].as_array().cloned().unwrap_or_default();
    let width = values.len() / 2;
    assert!(
        values[width..].iter().all(Value::is_null),
        "the honest owner's rare amount was released: {result}"
    );
    Ok(())
}
