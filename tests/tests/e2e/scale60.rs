//! A larger network of real processes: 60 daemons with admission on (every one certified by the
//! issuer its config names) and following a local randomness beacon, then a late 61st daemon
//! certified by the same issuer. The late daemon becomes known and eligible at every daemon by
//! the membership gossip alone, and one computation over the 61 counts every one of them
//! exactly; the test prints the connections each node holds and the CPU time each used for the
//! computation. Runs only with `GROVE_E2E_LARGE=1` (61 daemons take a few minutes on a 2-core
//! machine):
//!
//! ```sh
//! GROVE_E2E_LARGE=1 cargo test -p grove-e2e --test e2e scale60:: -- --nocapture
//! ```
//!
//! Every wait is for a condition (every daemon ready, every daemon knowing every admitted
//! identity); its deadline is generous, for a loaded 2-core machine, and only bounds a hang.
//!
//! Connections are counted before the computation, right after it, and once
//! `net::IDLE_CONNECTION_TIMEOUT` has passed; every count must stay within the issue's bound of
//! 64 per node (which 61 nodes cannot exceed: the assertion guards against duplicate
//! connections, not against a full mesh; `connection_target` is the test that fails without
//! the closing of unneeded connections, which is off by default).

use ed25519_dalek::SigningKey;
use grove_e2e::{ctl, grove_node, sum_params};
use grove_node::admission::configure_local;
use grove_node::beacon::start_local_relay;
use grove_node::control::ControlRequest;
use grove_node::daemon::net::IDLE_CONNECTION_TIMEOUT;
use grove_node::procs::Cluster;
use std::path::Path;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
/// Daemons started together; one more joins once they know each other.
const NODES: usize = 60;
const ALL: usize = NODES + 1;
const CHAIN_KEY: u64 = 15;
/// The goal of issue 15 for any node at any time (at 200 nodes).
const MAX_CONNECTIONS: u64 = 64;
/// Bounds a hang, not a measurement: 61 daemons on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(600);

fn enabled() -> bool {
    std::env::var("GROVE_E2E_LARGE").as_deref() == Ok("1")
}

/// The network's one issuer; it certifies serials `0..ALL`.
fn issuer() -> SigningKey {
    SigningKey::from_bytes(&[0x60; 32])
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

/// The machine's load averages (1, 5 and 15 minutes), as `/proc/loadavg` gives them.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn connections(cluster: &Cluster) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::with_capacity(cluster.nodes.len());
    for i in 0..cluster.nodes.len() {
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

/// Adds a node certified by [`issuer`] with serial `i` (its index), on the beacon, closing
/// connections down to 32.
fn add_admitted(
    cluster: &mut Cluster,
    beacon: &grove_node::beacon::BeaconConfig,
) -> anyhow::Result<()> {
    let i = cluster.add_node()?;
    configure_local(cluster.dir(i), &issuer(), ALL as u32, Some(i as u32))?;
    grove_node::config::append_beacon(cluster.dir(i), beacon)?;
    // Closing unneeded connections is off by default; measure it on.
    grove_e2e::set_config(cluster, i, "connection_target", "32")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_admitted_daemons_on_the_beacon_and_a_late_one_compute_exactly() -> anyhow::Result<()>
{
    if !enabled() {
        eprintln!("scale60: skipped (set GROVE_E2E_LARGE=1)");
        return Ok(());
    }
    let _serial = grove_e2e::serial().await;
    let mut cluster = Cluster::new(Path::new(EXE))?;
    let (_relay, section) = start_local_relay(CHAIN_KEY, None).await?;
    for _ in 0..ALL {
        add_admitted(&mut cluster, &section)?;
    }
    let started = Instant::now();
    cluster.start(0, &[])?;
    cluster.wait_ready(0, DEADLINE).await?;
    let boot = grove_e2e::boot_addr(&cluster)?;
    for i in 1..NODES {
        cluster.start(i, std::slice::from_ref(&boot))?;
    }
    for i in 1..NODES {
        cluster.wait_ready(i, DEADLINE).await?;
    }
    grove_e2e::wait_eligible(&cluster, NODES as u64, Instant::now() + DEADLINE).await?;
    eprintln!(
        "scale60: {NODES} admitted daemons up, every one known and eligible everywhere after \
         {:.1} s (load {})",
        started.elapsed().as_secs_f64(),
        load()
    );

    // The late node: its certificate and announcement reach every daemon by gossip.
    let late = NODES;
    let joined = Instant::now();
    cluster.start(late, std::slice::from_ref(&boot))?;
    cluster.wait_ready(late, DEADLINE).await?;
    grove_e2e::wait_eligible(&cluster, ALL as u64, Instant::now() + DEADLINE).await?;
    eprintln!(
        "scale60: the late daemon is known and eligible at all {ALL} after {:.1} s (load {})",
        joined.elapsed().as_secs_f64(),
        load()
    );

    let values: Vec<Option<u64>> = (0..ALL as u64).map(|i| Some((i + 1) * 7)).collect();
    let plain: u64 = values.iter().flatten().sum();
    grove_e2e::import_and_trust(&cluster, &values).await?;

    let before = connections(&cluster).await?;
    let ticks = ticks_per_s();
    let pids: Vec<u32> = (0..ALL).filter_map(|i| cluster.pid(i)).collect();
    assert_eq!(pids.len(), ALL, "every daemon runs");
    let cpu0: Vec<u64> = pids.iter().map(|p| cpu_ms(*p, ticks)).collect();
    let load0 = load();
    let t0 = Instant::now();
    let mut params = sum_params("c", "x", 5, 3);
    params.lifetime_secs = 180;
    params.share_window_ms = 5_000;
    let result = ctl(&cluster, 0, ControlRequest::Compute(params)).await?;
    let wall = t0.elapsed();
    let cpu1: Vec<u64> = pids.iter().map(|p| cpu_ms(*p, ticks)).collect();
    let load1 = load();
    let after = connections(&cluster).await?;
    // Exact over every daemon, the late one included: a share from an identity outside the
    // candidate set is refused, so the late daemon's value counts only if it was eligible.
    grove_e2e::assert_exact(&result, plain as f64, ALL);
    let cpu: Vec<u64> = cpu0.iter().zip(&cpu1).map(|(a, b)| b - a).collect();

    // Let the computation's connections go idle and close.
    tokio::time::sleep(IDLE_CONNECTION_TIMEOUT + Duration::from_secs(15)).await;
    let idle = connections(&cluster).await?;
    eprintln!(
        "scale60: exact sum {plain} over {ALL} admitted daemons in {:.1} s (load {load0} before, \
         {load1} after); CPU per node for the computation mean {} ms, max {} ms; connections \
         per node before {}, right after {}, {} s later {}; {:.0} s in all",
        wall.as_secs_f64(),
        cpu.iter().sum::<u64>() / ALL as u64,
        cpu.iter().copied().max().unwrap_or(0),
        summary(&before),
        summary(&after),
        (IDLE_CONNECTION_TIMEOUT + Duration::from_secs(15)).as_secs(),
        summary(&idle),
        started.elapsed().as_secs_f64(),
    );
    for (i, c) in before.iter().chain(&after).chain(&idle).enumerate() {
        assert!(
            *c <= MAX_CONNECTIONS,
            "node {} holds {c} connections",
            i % ALL
        );
    }
    Ok(())
}
