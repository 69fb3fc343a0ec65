//! Connections that follow the work (`grove_node::daemon::connections`): sixteen daemons with a
//! connection target of 2 compute an exact sum; once the computation's connections are past
//! their linger, every connection a daemon holds beyond the target is one of its gossipsub mesh
//! peers or the peer of a recent directory pull, the commissioner never looks its own requests
//! up in the DHT, and the mean is at most `MEAN_BOUND`. Without the pruning every daemon holds
//! one to each of the 15 others (gossipsub keeps a stream open on each) while its mesh has 6 to
//! 12. A second computation, whose peers must be dialed again, is exact too. No send of either fails because its connection closed under it
//! (`sends_cut`): no daemon stops, so each such failure is a connection the pruning closed
//! while a peer of the computation was sending on it.
//!
//! One run (2-core machine, loaded): 15 connections per node right after the first
//! computation; after the linger, connections equal to mesh peers on every node (6 to 12, mean
//! 8.1); 59 peers pruned in all.

use grove_e2e::{ctl, grove_node, sum_params};
use grove_node::control::ControlRequest;
use grove_node::daemon::connections::{CONNECTION_LINGER, PRUNE_TICK};
use grove_node::procs::Cluster;
use std::path::Path;

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
const NODES: usize = 16;
const TARGET: usize = 2;
/// Mean connections per daemon once idle: the mesh peers of two topics (6 to 12 each,
/// overlapping), well below the 15 of a full mesh.
const MEAN_BOUND: f64 = 12.0;

/// (connected peers, gossipsub mesh peers, directory pulls sent so far) of every daemon.
async fn connections(cluster: &Cluster) -> anyhow::Result<Vec<(u64, u64, u64)>> {
    let mut out = Vec::with_capacity(NODES);
    for i in 0..NODES {
        let status = ctl(cluster, i, ControlRequest::Status).await?;
        out.push((
            status["connected_peers"].as_u64().unwrap_or(0),
            status["connections"]["mesh_peers"].as_u64().unwrap_or(0),
            status["membership_traffic"]["pulls_sent"]
                .as_u64()
                .unwrap_or(0),
        ));
    }
    Ok(out)
}

async fn compute(cluster: &Cluster, plain: u64) -> anyhow::Result<()> {
    let mut params = sum_params("c", "x", 3, 2);
    params.share_window_ms = 3_000;
    // Every daemon finds the commissioner's active requests in its own store (each took a
    // copy) until the request's deadline; past it, each poll finds no copy and asks the peers
    // closest to the key, dialing them. The idle check comes well before that.
    params.lifetime_secs = 120;
    let result = ctl(cluster, 0, ControlRequest::Compute(params)).await?;
    grove_e2e::assert_exact(&result, plain as f64, NODES);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_down_to_the_target_and_computations_still_complete(
) -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let mut cluster = Cluster::new(Path::new(EXE))?;
    for i in 0..NODES {
        cluster.add_node()?;
        grove_e2e::set_config(&cluster, i, "connection_target", &TARGET.to_string())?;
    }
    grove_e2e::start_all(&mut cluster).await?;
    let values: Vec<Option<u64>> = (0..NODES as u64).map(|i| Some((i + 1) * 11)).collect();
    let plain: u64 = values.iter().flatten().sum();
    grove_e2e::import_and_trust(&cluster, &values).await?;
    compute(&cluster, plain).await?;
    let right_after = connections(&cluster).await?;
    tokio::time::sleep(CONNECTION_LINGER + 3 * PRUNE_TICK).await;
    let idle = connections(&cluster).await?;
    let (pruned, _) = pruned_and_cut(&cluster).await?;
    eprintln!(
        "connection_target: (connected, mesh, pulls sent) per node right after the computation \
         {right_after:?}, after the linger {idle:?}; {pruned} peers pruned in all"
    );
    // Beyond the target and the mesh, a daemon holds only the peers of directory pulls: a pull
    // goes to a random connected peer (before the pruning, any of them) and keeps it, at both
    // ends, for `CONNECTION_LINGER` (up to a `PRUNE_TICK` more) like any use. So every extra
    // connection is one end of a pull sent since the computation ended (an older one is past
    // its linger), and there are at most two per pull. Daemons without `[admission]` pull
    // every `directory_sync_secs`, all at about the same time here (they started together),
    // so how many pulls one daemon answers is a matter of chance: the bound is on the sum.
    let extra: Vec<u64> = idle
        .iter()
        .map(|(c, mesh, _)| c.saturating_sub((TARGET as u64).max(*mesh)))
        .collect();
    let pulls: u64 = idle
        .iter()
        .zip(&right_after)
        .map(|(now, then)| now.2 - then.2)
        .sum();
    assert!(
        extra.iter().sum::<u64>() <= 2 * pulls,
        "connections beyond the target and the mesh per node {extra:?}, and only {pulls} \
         directory pulls since the computation: {idle:?}"
    );
    // The commissioner trusts its own key: it never looks its own requests up in the DHT
    // (each lookup, once the computation closed and its record left the commissioner's store,
    // dialed the peers closest to the key for nothing: node 0 held 15 connections, 12 of them
    // mesh peers).
    let commissioner = ctl(&cluster, 0, ControlRequest::Status).await?;
    assert_eq!(
        commissioner["network"]["requests_found_in_dht"], 0,
        "the commissioner looked up its own requests: {}",
        commissioner["network"]
    );
    let mean = idle.iter().map(|(c, _, _)| *c as f64).sum::<f64>() / NODES as f64;
    assert!(
        mean <= MEAN_BOUND,
        "{mean:.1} connections per node once idle: {idle:?}"
    );
    assert!(pruned > 0, "no connection was closed");
    // The peers of the next computation are dialed again.
    compute(&cluster, plain).await?;
    let (_, cut) = pruned_and_cut(&cluster).await?;
    assert_eq!(
        cut, 0,
        "sends failed because their connection was closed under them"
    );
    Ok(())
}

/// Peers pruned and sends cut by a closing connection, summed over the daemons.
async fn pruned_and_cut(cluster: &Cluster) -> anyhow::Result<(u64, u64)> {
    let (mut pruned, mut cut) = (0, 0);
    for i in 0..NODES {
        let status = ctl(cluster, i, ControlRequest::Status).await?;
        pruned += status["connections"]["pruned"].as_u64().unwrap_or(0);
        cut += status["connections"]["sends_cut"].as_u64().unwrap_or(0);
    }
    Ok((pruned, cut))
}
