//! A network at rest (no computation) whose nodes all trust one commissioner: every node looks
//! up the commissioner's active requests in the DHT (the daemon's `agreement` module). No
//! request is active, so each lookup finds no record and asks the peers closest to the key,
//! dialing them, and every node asks the same peers. At a fixed 10 s that was 15 lookups per
//! node in 150 s, each answered by every other node of 16 (and, on a large network, the ~20
//! closest to the key answering N/10 per second). The lookups back off while they bring
//! nothing new (`agreement::Poll`): the test checks that no node made more lookups in the
//! window than the schedule allows with every wait at its shortest, then that a computation
//! launched after the back-off still reaches every node (gossip) and is exact.
//!
//! It prints, at each sample, the connections per node (mean and max), dials for Kademlia
//! queries, lookups started per node and the most lookups one node answered per second. The
//! network size and window can be raised for a measurement (more than 20 daemons: one heavy
//! run at a time on the machine):
//!
//! ```sh
//! GROVE_REST_NODES=60 GROVE_REST_SECS=240 cargo test --workspace --test e2e lookups_at_rest -- --nocapture
//! ```

use grove_e2e::{ctl, grove_node, sum_params};
use grove_node::control::ControlRequest;
use grove_node::procs::Cluster;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
/// Connections a node keeps beyond its mesh and work: low, so that the lookups' connections
/// show above it.
const TARGET: usize = 8;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The most lookups of one commissioner a node of a network of `peers` can start within
/// `window` of its last forced one (at start or on trust), counting that one, by the schedule
/// `agreement::Poll` documents (written out here, not read from it): waits of 10, 20, 40 s...
/// doubling up to the cap (a second per peer, within 60 s and 600 s), each at its shortest
/// (half), none bringing a new request.
fn most_lookups_within(window: Duration, peers: u64) -> u64 {
    let cap = peers.clamp(60, 600);
    let (mut at, mut wait, mut n) = (0, 10, 0);
    while at <= window.as_secs() {
        n += 1;
        at += wait.min(cap) / 2;
        wait *= 2;
    }
    n
}

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    connected: u64,
    dials_kad: u64,
    lookups: u64,
    answered: u64,
}

async fn sample(cluster: &Cluster, n: usize) -> anyhow::Result<Vec<Sample>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let s: Value = ctl(cluster, i, ControlRequest::Status).await?;
        let u = |v: &Value| v.as_u64().unwrap_or(0);
        out.push(Sample {
            connected: u(&s["connected_peers"]),
            dials_kad: u(&s["connections"]["dials"]["kademlia_query"]),
            lookups: u(&s["network"]["request_lookups"]),
            answered: u(&s["network"]["record_lookups_answered"]),
        });
    }
    Ok(out)
}

fn report(label: &str, secs: f64, first: &[Sample], now: &[Sample]) {
    let n = now.len() as f64;
    let mean_conn = now.iter().map(|s| s.connected as f64).sum::<f64>() / n;
    let max_conn = now.iter().map(|s| s.connected).max().unwrap_or(0);
    let d = |f: fn(&Sample) -> u64| -> Vec<u64> {
        now.iter().zip(first).map(|(a, b)| f(a) - f(b)).collect()
    };
    let dials: u64 = d(|s| s.dials_kad).iter().sum();
    let lookups = d(|s| s.lookups);
    let answered = d(|s| s.answered);
    let max_answered = answered.iter().max().copied().unwrap_or(0);
    eprintln!(
        "lookups_at_rest {label} t={secs:.0}s: connections mean {mean_conn:.1} max {max_conn}; \
         since start of window: kademlia-query dials {dials} ({:.2}/node/s), lookups per node \
         mean {:.1} max {}, lookups answered by the busiest node {max_answered} ({:.2}/s)",
        dials as f64 / n / secs.max(1.0),
        lookups.iter().sum::<u64>() as f64 / n,
        lookups.iter().max().copied().unwrap_or(0),
        max_answered as f64 / secs.max(1.0),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_at_rest_backs_off_its_request_lookups() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let nodes = env_or("GROVE_REST_NODES", 16) as usize;
    let window = Duration::from_secs(env_or("GROVE_REST_SECS", 150));
    let mut cluster = Cluster::new(Path::new(EXE))?;
    for i in 0..nodes {
        cluster.add_node()?;
        grove_e2e::set_config(&cluster, i, "connection_target", &TARGET.to_string())?;
    }
    grove_e2e::start_all(&mut cluster).await?;
    let values: Vec<Option<u64>> = (0..nodes as u64).map(|i| Some(i + 1)).collect();
    // Every node trusts node 0: each looks its requests up at once, then on its schedule.
    grove_e2e::import_and_trust(&cluster, &values).await?;
    let start = Instant::now();
    let first = sample(&cluster, nodes).await?;
    let step = Duration::from_secs(30).min(window);
    let mut last = first.clone();
    while start.elapsed() < window {
        tokio::time::sleep(step.min(window.saturating_sub(start.elapsed()))).await;
        last = sample(&cluster, nodes).await?;
        report("", start.elapsed().as_secs_f64(), &first, &last);
    }
    let elapsed = start.elapsed();
    // The window as the daemons saw it began at their trust (before `first`) and ends after
    // the last status: a few seconds either side.
    let bound = most_lookups_within(elapsed + Duration::from_secs(10), nodes as u64);
    let lookups: Vec<u64> = last
        .iter()
        .zip(&first)
        .skip(1) // node 0 looks up no one: it trusts only its own key
        .map(|(a, b)| a.lookups - b.lookups)
        .collect();
    assert!(
        lookups.iter().all(|&l| l <= bound),
        "lookups per node in {:.0} s: {lookups:?}; the back-off allows at most {bound}",
        elapsed.as_secs_f64()
    );
    assert!(
        lookups.iter().all(|&l| l >= 1),
        "a node stopped looking: {lookups:?}"
    );

    // Requests still reach every node at rest: by gossip, whatever the lookups' schedule.
    let plain: u64 = values.iter().flatten().sum();
    let mut params = sum_params("c", "x", 3, 2);
    params.share_window_ms = 5_000;
    let result = ctl(&cluster, 0, ControlRequest::Compute(params)).await?;
    grove_e2e::assert_exact(&result, plain as f64, nodes);
    Ok(())
}
