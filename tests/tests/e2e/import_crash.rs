//! A daemon SIGKILLed while records are being imported loses no acknowledged record.

use grove_e2e::{ctl, grove_node};
use grove_node::control::{self, ControlRequest};
use grove_node::procs::Cluster;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
const PER_BATCH: u64 = 5;
/// Acknowledged imports before the kill.
const ACKED_BEFORE_KILL: u64 = 150;

fn batch(b: u64) -> Vec<serde_json::Map<String, Value>> {
    (0..PER_BATCH)
        .map(|j| match json!({"batch": b, "j": j, "v": b * 10 + j}) {
            Value::Object(m) => m,
            _ => unreachable!("an object literal"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_record_survives_a_sigkill_during_import() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let mut cluster = Cluster::new(Path::new(EXE))?;
    cluster.add_node()?;
    cluster.start(0, &[])?;
    cluster.wait_ready(0, Duration::from_secs(20)).await?;

    let dir = cluster.dir(0).to_path_buf();
    let acked_count = Arc::new(AtomicU64::new(0));
    let counter = acked_count.clone();
    let importer = tokio::spawn(async move {
        let mut acked = Vec::new();
        for b in 0..1_000_000u64 {
            let request = ControlRequest::Import {
                collection: "crash".into(),
                records: batch(b),
            };
            match control::call(&dir, &request, |_, _| {}).await {
                Ok(_) => {
                    acked.push(b);
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                Err(_) => break, // the daemon is dead
            }
        }
        acked
    });
    // Kill while the importer is still going.
    let waited = std::time::Instant::now();
    while acked_count.load(Ordering::SeqCst) < ACKED_BEFORE_KILL {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "imports are too slow"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.kill(0);
    let acked = importer.await?;
    assert!(acked.len() as u64 >= ACKED_BEFORE_KILL);

    cluster.start(0, &[])?;
    cluster.wait_ready(0, Duration::from_secs(20)).await?;
    let listed = ctl(
        &cluster,
        0,
        ControlRequest::ListRecords {
            collection: Some("crash".into()),
        },
    )
    .await?;
    let mut per_batch: BTreeMap<u64, u64> = BTreeMap::new();
    for r in listed["records"].as_array().cloned().unwrap_or_default() {
        *per_batch
            .entry(r["batch"].as_u64().unwrap_or(u64::MAX))
            .or_default() += 1;
    }
    for b in &acked {
        assert_eq!(
            per_batch.get(b).copied(),
            Some(PER_BATCH),
            "acknowledged batch {b} is missing after the restart"
        );
    }
    // Each import is one transaction: whole or absent. At most the batch in flight at the
    // kill may be present without its acknowledgement.
    assert!(per_batch.values().all(|&n| n == PER_BATCH));
    let unacked = per_batch.len() - acked.len();
    assert!(unacked <= 1, "{unacked} unacknowledged batches present");
    eprintln!(
        "{} batches acknowledged before the kill, all present after restart",
        acked.len()
    );
    Ok(())
}
