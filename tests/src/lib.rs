//! End-to-end test support: real `grove` processes on 127.0.0.1, real sockets, real disk.
//!
//! The tests start the binary `grove-e2e-node` of this package, which is the `grove` CLI
//! itself (`grove_node::cli::main`); cargo builds it before running the tests and passes its
//! path as `CARGO_BIN_EXE_grove-e2e-node`. Processes and temporary data dirs are owned by a
//! [`grove_node::procs::Cluster`] guard that SIGKILLs every process group and removes every
//! dir when dropped, so a failing test cleans up too; daemons also exit when the test process
//! dies (they watch their standard input). Every daemon listens on an ephemeral port of
//! 127.0.0.1.
//!
//! The tests (each its own binary, so cargo runs them one after another):
//! - `import_crash`: SIGKILL during a stream of imports; every acknowledged record survives.
//! - `compute_sum`: 25 processes compute an exact sum.
//! - `kill_restart`: aggregators SIGKILLed mid-computation, one restarted from its data dir;
//!   the result is exact over the contributor set it reports.
//! - `untrusted`: nodes that do not trust the commissioner send no share and audit why.
//! - `hostile_requests`: forged, expired and future requests from a hostile libp2p peer are
//!   refused and audited.
//! - `cozy_import`, `webdav_sync`, `pdms_e2e`: a Cozy export, `grove sync` against a real
//!   WebDAV server (wsgidav, see `tests/pdms_support`), and three nodes fed from Cozy,
//!   Nextcloud and the ingest endpoint computing an exact sum.

use grove_node::control::{self, ComputeParams, ControlRequest};
use grove_node::procs::Cluster;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

pub use grove_node;

/// Starts `n` daemons (node 0 first, the others bootstrapping from it) and waits until every
/// directory holds all of them.
pub async fn start_network(exe: &Path, n: usize) -> anyhow::Result<Cluster> {
    let mut cluster = Cluster::new(exe)?;
    for _ in 0..n {
        cluster.add_node()?;
    }
    cluster.start(0, &[])?;
    cluster.wait_ready(0, Duration::from_secs(20)).await?;
    let boot = cluster.nodes[0]
        .addr
        .clone()
        .ok_or_else(|| anyhow::anyhow!("node 0 has no address"))?;
    for i in 1..n {
        cluster.start(i, std::slice::from_ref(&boot))?;
    }
    for i in 1..n {
        cluster.wait_ready(i, Duration::from_secs(20)).await?;
    }
    cluster.wait_directory(n, Duration::from_secs(30)).await?;
    Ok(cluster)
}

/// One control request to node `i`.
pub async fn ctl(cluster: &Cluster, i: usize, request: ControlRequest) -> anyhow::Result<Value> {
    Ok(control::call(cluster.dir(i), &request, |_, _| {}).await?)
}

/// Parameters of a quick sum computation on a small local network.
pub fn sum_params(collection: &str, field: &str, g: u8, t: u8) -> ComputeParams {
    ComputeParams {
        collection: collection.into(),
        field: field.into(),
        g,
        t,
        k_min: 1,
        leaf_groups: None,
        fan_in: 2,
        bound: 1e9,
        max_records: 1_000_000,
        scale_digits: 0,
        max_contributors: 100_000,
        share_window_ms: 1500,
        lifetime_secs: 40,
    }
}
