//! Twenty-five separate daemons compute an exact sum over their records.

use grove_e2e::{ctl, grove_node, start_network, sum_params};
use grove_node::control::ControlRequest;
use serde_json::{json, Value};
use std::path::Path;

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
const NODES: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_five_processes_compute_an_exact_sum() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let cluster = start_network(Path::new(EXE), NODES).await?;
    let mut plain_sum = 0i64;
    let mut plain_records = 0u64;
    for i in 0..NODES {
        let records: Vec<_> = (0..(i % 4 + 1))
            .map(|d| {
                let v = (i * 1000 + d * 17) as i64 - 3000;
                plain_sum += v;
                plain_records += 1;
                match json!({"day": d, "balance": v}) {
                    Value::Object(m) => m,
                    _ => unreachable!("an object literal"),
                }
            })
            .collect();
        ctl(
            &cluster,
            i,
            ControlRequest::Import {
                collection: "money".into(),
                records,
            },
        )
        .await?;
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
    let result = ctl(
        &cluster,
        0,
        ControlRequest::Compute(sum_params("money", "balance", 3, 2)),
    )
    .await?;
    assert_eq!(
        grove_e2e::cell(&result, 0, 0),
        Some(plain_sum as f64),
        "{result}"
    );
    assert_eq!(grove_e2e::cell(&result, 0, 1), Some(plain_records as f64));
    assert_eq!(result["contributors"].as_u64(), Some(NODES as u64));
    eprintln!("exact sum over {NODES} processes: {result}");
    Ok(())
}
