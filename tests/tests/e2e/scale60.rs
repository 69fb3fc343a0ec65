//! A larger network of real processes: 60 daemons following a local randomness beacon compute
//! an exact sum, and the test prints the connections each node holds and the CPU time each
//! used for the computation. Runs only with `GROVE_E2E_LARGE=1` (60 daemons take a few
//! minutes on a 2-core machine):
//!
//! ```sh
//! GROVE_E2E_LARGE=1 cargo test -p grove-e2e --test e2e scale60:: -- --nocapture
//! ```
//!
//! Connections are counted before the computation, right after it, and once
//! `net::IDLE_CONNECTION_TIMEOUT` has passed; every count must stay within the issue's bound of
//! 64 per node (which 60 nodes cannot exceed: the assertion guards against duplicate
//! connections, not against a full mesh; `connection_target` is the test that fails without
//! the closing of unneeded connections, which is off by default). Measured (2-core machine,
//! loaded), with `connection_target = 32`: 59 per node before the computation (every connection
//! still within its linger), mean 32.0 and max 49 right after it, mean 29.4 and max 43
//! 45 s later; without the closing, 59 per node throughout, because gossipsub keeps a stream
//! open on each connection to a subscriber (ARCHITECTURE.md, "What remains to wire it in").

use grove_e2e::{ctl, grove_node, sum_params};
use grove_node::beacon::start_local_relay;
use grove_node::control::ControlRequest;
use grove_node::daemon::net::IDLE_CONNECTION_TIMEOUT;
use grove_node::procs::Cluster;
use std::path::Path;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
const NODES: usize = 60;
const CHAIN_KEY: u64 = 15;
/// The goal of issue 15 for any node at any time (at 200 nodes).
const MAX_CONNECTIONS: u64 = 64;

fn enabled() -> bool {
    std::env::var("GROVE_E2E_LARGE").as_deref() == Ok("1")
}

/// CPU time (user + system) of a process so far, from `/proc/PID/stat`, in milliseconds.
fn cpu_ms(pid: u32, ticks_per_s: u64) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|x| x.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    ticks * 1000 / ticks_per_s.max(1)
}

fn ticks_per_s() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

async fn connections(cluster: &Cluster) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::with_capacity(NODES);
    for i in 0..NODES {
        let status = ctl(cluster, i, ControlRequest::Status).await?;
        out.push(status["connected_peers"].as_u64().unwrap_or(0));
    }
    Ok(out)
}

fn summary(counts: &[u64]) -> String {
    let max = counts.iter().copied().max().unwrap_or(0);
    let mean = counts.iter().sum::<u64>() as f64 / counts.len().max(1) as f64;
    format!("mean {mean:.1}, max {max}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_daemons_on_the_beacon_compute_exactly_and_print_their_connections(
) -> anyhow::Result<()> {
    if !enabled() {
        eprintln!("scale60: skipped (set GROVE_E2E_LARGE=1)");
        return Ok(());
    }
    let _serial = grove_e2e::serial().await;
    let mut cluster = Cluster::new(Path::new(EXE))?;
    let (_relay, section) = start_local_relay(CHAIN_KEY, None).await?;
    for i in 0..NODES {
        cluster.add_node()?;
        grove_node::config::append_beacon(cluster.dir(i), &section)?;
        // Closing unneeded connections is off by default; measure it on.
        grove_e2e::set_config(&cluster, i, "connection_target", "32")?;
    }
    let started = Instant::now();
    cluster.start(0, &[])?;
    cluster.wait_ready(0, Duration::from_secs(60)).await?;
    let boot = grove_e2e::boot_addr(&cluster)?;
    for i in 1..NODES {
        cluster.start(i, std::slice::from_ref(&boot))?;
    }
    for i in 1..NODES {
        cluster.wait_ready(i, Duration::from_secs(120)).await?;
    }
    cluster
        .wait_directory(NODES, Duration::from_secs(300))
        .await?;
    eprintln!(
        "scale60: {NODES} daemons up, directories complete after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let values: Vec<Option<u64>> = (0..NODES as u64).map(|i| Some((i + 1) * 7)).collect();
    let plain: u64 = values.iter().flatten().sum();
    grove_e2e::import_and_trust(&cluster, &values).await?;

    let before = connections(&cluster).await?;
    let ticks = ticks_per_s();
    let pids: Vec<u32> = (0..NODES).filter_map(|i| cluster.pid(i)).collect();
    assert_eq!(pids.len(), NODES, "every daemon runs");
    let cpu0: u64 = pids.iter().map(|p| cpu_ms(*p, ticks)).sum();
    let t0 = Instant::now();
    let mut params = sum_params("c", "x", 5, 3);
    params.lifetime_secs = 180;
    params.share_window_ms = 5_000;
    let result = ctl(&cluster, 0, ControlRequest::Compute(params)).await?;
    let wall = t0.elapsed();
    let cpu1: u64 = pids.iter().map(|p| cpu_ms(*p, ticks)).sum();
    let after = connections(&cluster).await?;
    assert_eq!(
        grove_e2e::cell(&result, 0, 0),
        Some(plain as f64),
        "{result}"
    );
    assert_eq!(
        result["contributors"].as_u64(),
        Some(NODES as u64),
        "{result}"
    );

    // Let the computation's connections go idle and close.
    tokio::time::sleep(IDLE_CONNECTION_TIMEOUT + Duration::from_secs(15)).await;
    let idle = connections(&cluster).await?;
    eprintln!(
        "scale60: exact sum {plain} over {NODES} daemons in {:.1} s; CPU per node for the \
         computation {} ms; connections per node before {}, right after {}, {} s later {}",
        wall.as_secs_f64(),
        (cpu1 - cpu0) / NODES as u64,
        summary(&before),
        summary(&after),
        (IDLE_CONNECTION_TIMEOUT + Duration::from_secs(15)).as_secs(),
        summary(&idle),
    );
    for (i, c) in before.iter().chain(&after).chain(&idle).enumerate() {
        assert!(
            *c <= MAX_CONNECTIONS,
            "node {} holds {c} connections",
            i % NODES
        );
    }
    Ok(())
}
