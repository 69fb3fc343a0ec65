//! A leaf member that goes silent while keeping its connections: SIGSTOPped right after the
//! launch, its process holds its sockets open (the kernel still accepts the bytes sent to it)
//! but acknowledges nothing. Its peers' sends to it must still fail over once the receiver's
//! grace (`daemon::sends::patience`) is over, so that a backup takes its position and the
//! result is exact over the contributor set it reports. A failure detector that waited for
//! the connection to close would wait for the whole computation here: a stopped process's
//! connection never closes (nothing on it is idle long enough, and no ping runs).
//!
//! Node `i` holds the value `2^i`, so the released sum names exactly which contributors it
//! covers, and that set must have the reported count.

use grove_e2e::{ctl, grove_node, sum_params};
use grove_node::control::{ComputeParams, ControlRequest};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::path::Path;

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
const NODES: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_leaf_member_that_keeps_its_connections_is_failed_over() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let cluster = grove_e2e::start_network(Path::new(EXE), NODES).await?;
    grove_e2e::seed_powers_of_two(&cluster).await?;
    // Twelve daemons stay below the connection target: every node is connected to the
    // victim when it stops, so its peers' sends go out on a live connection.
    let connected = ctl(&cluster, 0, ControlRequest::Status).await?["connected_peers"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(
        connected,
        (NODES - 1) as u64,
        "node 0 is not connected to every peer"
    );

    // A share window longer than the grace at its floor (twice the 2 s ack delay): the
    // senders' failovers to a backup land inside it, so no contributor other than the victim
    // is lost to the window.
    let params = ComputeParams {
        leaf_groups: Some(2),
        share_window_ms: 8_000,
        lifetime_secs: 60,
        ..sum_params("c", "x", 3, 2)
    };
    let (plan, compute) = grove_e2e::launch(&cluster, 0, params).await?;
    let index_of = |peer: &str| grove_e2e::index_of_peer(&cluster, peer);
    let groups = plan["groups"].as_array().cloned().unwrap_or_default();
    let victim = groups
        .first()
        .and_then(|g| g["members"].as_array().cloned())
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().and_then(index_of))
        .find(|&i| i != 0)
        .ok_or_else(|| anyhow::anyhow!("no leaf member other than the commissioner: {plan}"))?;
    let pid = cluster
        .pid(victim)
        .ok_or_else(|| anyhow::anyhow!("node {victim} does not run"))?;
    // The daemon leads its own process group (`procs`); the cluster's guard SIGKILLs it at the
    // end, which a stopped process receives too.
    killpg(Pid::from_raw(i32::try_from(pid)?), Signal::SIGSTOP)?;

    let result = compute.await??;
    let included = grove_e2e::exact_set(&result, NODES)?;
    let contributors = included.count_ones();
    // Every node but the stopped one contributes (the victim's own shares may have left
    // before it stopped).
    let others = (0..NODES).filter(|&i| i != victim).map(|i| 1u64 << i);
    let missing: Vec<usize> = others
        .clone()
        .filter(|bit| included & bit == 0)
        .map(|bit| bit.trailing_zeros() as usize)
        .collect();
    assert!(
        missing.is_empty(),
        "contributors {missing:?} are missing with only node {victim} stopped: {result}"
    );
    eprintln!("stopped {victim}: {contributors} of {NODES} included, set {included:#014b}");
    Ok(())
}
