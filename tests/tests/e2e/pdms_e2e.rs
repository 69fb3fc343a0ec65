//! Three real nodes fed the way their owners would feed them — one from a Cozy export, one by
//! `grove sync` from a WebDAV server, one through the local ingest endpoint — answer a spending
//! query over `bank.operations` exactly: the result equals the plaintext sum read from the fixtures.

use crate::pdms_support::*;
use grove_e2e::grove_node::control::{self, ComputeParams, ControlRequest};
use grove_e2e::grove_node::procs::Cluster;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// One HTTP/1.1 request to the ingest endpoint; returns the status and the JSON body.
fn post(addr: &str, path: &str, token: &str, body: &str) -> anyhow::Result<(u16, Value)> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let status: u16 = answer
        .split(' ')
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("no status in {answer:?}"))?
        .parse()?;
    let (_, json) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no body in {answer:?}"))?;
    Ok((status, serde_json::from_str(json.trim())?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_fed_from_cozy_nextcloud_and_the_ingest_api_sum_exactly() -> anyhow::Result<()>
{
    let _serial = grove_e2e::serial().await;
    let nc_root = tempfile::Builder::new().prefix("grove-nc-").tempdir()?;
    copy_tree(&fixtures().join("nextcloud"), nc_root.path())?;
    let server = DavServer::start(nc_root.path(), None)?;

    let mut cluster = Cluster::new(Path::new(EXE))?;
    for _ in 0..3 {
        cluster.add_node()?;
    }
    // Node 2 opens the ingest endpoint on a free loopback port.
    let config = grove_e2e::grove_node::config::config_path(cluster.dir(2));
    let mut text = std::fs::read_to_string(&config)?;
    text.insert_str(0, "ingest_listen = \"127.0.0.1:0\"\n");
    std::fs::write(&config, text)?;
    cluster.start(0, &[])?;
    cluster.wait_ready(0, Duration::from_secs(60)).await?;
    let boot = cluster.nodes[0]
        .addr
        .clone()
        .ok_or_else(|| anyhow::anyhow!("node 0 has no address"))?;
    for i in 1..3 {
        cluster.start(i, std::slice::from_ref(&boot))?;
        cluster.wait_ready(i, Duration::from_secs(60)).await?;
    }
    cluster.wait_directory(3, Duration::from_secs(120)).await?;

    // Node 0: the Cozy export.
    let cozy = fixtures().join("cozy-export");
    grove_json(
        cluster.dir(0),
        &["records", "import-cozy", &cozy.display().to_string()],
    )?;
    // Node 1: the Nextcloud account.
    let password = write_password(cluster.root(), PASSWORD)?;
    let args = sync_args(&server.url(), &password);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let synced = grove_json(cluster.dir(1), &args)?;
    assert_eq!(synced["error"], Value::Null, "{synced}");
    // Node 2: a connector pushes its operations, twice (the second push changes nothing),
    // and a push with a wrong token is refused.
    let addr = std::fs::read_to_string(cluster.dir(2).join("ingest.addr"))?
        .trim()
        .to_string();
    let token = std::fs::read_to_string(cluster.dir(2).join("ingest.token"))?
        .trim()
        .to_string();
    let payload = std::fs::read_to_string(fixtures().join("ingest/bank.operations.json"))?;
    let path = "/v1/collections/bank.operations/records";
    let (status, first) = post(&addr, path, &token, &payload)?;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["added"], 5, "{first}");
    let (status, again) = post(&addr, path, &token, &payload)?;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (
            again["unchanged"].as_u64(),
            again["records_written"].as_u64()
        ),
        (Some(5), Some(0))
    );
    let (status, refused) = post(&addr, path, "0000", &payload)?;
    assert_eq!(status, 401, "{refused}");
    let (status, bad) = post(&addr, path, &token, "[{\"amount\": 1},\n oops]")?;
    assert_eq!(status, 400, "{bad}");

    // The plaintext answer, read from the fixtures independently of the nodes.
    let ingest: Vec<i64> = serde_json::from_str::<Vec<Value>>(&payload)?
        .iter()
        .map(|r| cents(&r["amount"]))
        .collect();
    let per_node = [
        cozy_bank_amounts(&cozy)?,
        nextcloud_bank_amounts(nc_root.path())?,
        ingest,
    ];
    for (i, amounts) in per_node.iter().enumerate() {
        assert_eq!(
            records(cluster.dir(i), "bank.operations")?.len(),
            amounts.len(),
            "node {i}"
        );
    }
    // Spending: the debits (negative amounts).
    let spending: Vec<i64> = per_node
        .iter()
        .flatten()
        .copied()
        .filter(|&c| c < 0)
        .collect();
    let plain: i64 = spending.iter().sum();
    let plain_records = spending.len();
    assert!(plain_records > 0, "the fixtures hold debits");

    let status = control::call(cluster.dir(0), &ControlRequest::Status, |_, _| {}).await?;
    let key = status["commissioner_key"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no commissioner key"))?
        .to_string();
    for i in 0..3 {
        control::call(
            cluster.dir(i),
            &ControlRequest::TrustAdd {
                key: key.clone(),
                collections: vec!["bank.operations".into()],
                label: "household budget study".into(),
                min_contributors: 1,
                limits: grove_e2e::test_limits(),
            },
            |_, _| {},
        )
        .await?;
    }
    let params = ComputeParams {
        query: "SELECT sum(amount), count(*) FROM bank.operations WHERE amount < 0 \
                CLIP amount TO [-1000000, 0]"
            .into(),
        g: 3,
        t: 2,
        k_min: 3,
        fan_in: 2,
        max_contributors: Some(1000),
        share_window_ms: 3000,
        lifetime_secs: 120,
        ..ComputeParams::default()
    };
    let result = control::call(cluster.dir(0), &ControlRequest::Compute(params), |_, _| {}).await?;
    let sum =
        grove_e2e::cell(&result, 0, 0).ok_or_else(|| anyhow::anyhow!("no sum in {result}"))?;
    assert_eq!((sum * 100.0).round() as i64, plain, "{result}");
    assert_eq!(
        grove_e2e::cell(&result, 0, 1),
        Some(plain_records as f64),
        "{result}"
    );
    assert_eq!(result["contributors"].as_u64(), Some(3), "{result}");
    eprintln!(
        "spending over bank.operations on 3 nodes: {sum:.2} (plaintext {:.2}, {plain_records} debits)",
        plain as f64 / 100.0
    );
    Ok(())
}
