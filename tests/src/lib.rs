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
//! - `consent`: one node per consent rule (untrusted, collection, k_min, t, rate,
//!   differencing) declines, sends no share and audits the rule.
//! - `oracle` (protocol harness, real engines) and `oracle_processes` (real processes):
//!   random queries over random records equal the reference evaluation of [`oracle`].
//! - `cozy_import`, `webdav_sync`, `pdms_e2e`: a Cozy export, `grove sync` against a real
//!   WebDAV server (wsgidav, see `tests/pdms_support`), and three nodes fed from Cozy,
//!   Nextcloud and the ingest endpoint computing an exact sum.

use grove_node::control::{self, ComputeParams, ControlRequest};
use grove_node::procs::Cluster;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

pub use grove_node;

pub mod oracle;

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

/// Parameters of a quick computation of `query` on a small local network.
pub fn query_params(query: &str, g: u8, t: u8) -> ComputeParams {
    ComputeParams {
        query: query.into(),
        g,
        t,
        k_min: 1,
        leaf_groups: None,
        fan_in: 2,
        max_contributors: None,
        share_window_ms: 1500,
        lifetime_secs: 40,
    }
}

/// Parameters of a quick `SELECT sum(field), count(*) FROM collection` (integers, values
/// clipped to plus or minus 10^12).
pub fn sum_params(collection: &str, field: &str, g: u8, t: u8) -> ComputeParams {
    query_params(
        &format!(
            "SELECT sum({field}), count(*) FROM {collection} CLIP {field} TO [-1e12, 1e12] SCALE 0"
        ),
        g,
        t,
    )
}

/// The number in row `row`, column `column` of a `compute` result's table.
pub fn cell(result: &Value, row: usize, column: usize) -> Option<f64> {
    result["table"]["rows"][row]["cells"][column].as_f64()
}

/// Trust `key` at node `i` for `collections` (empty: all), with the default limits.
pub async fn trust(
    cluster: &Cluster,
    i: usize,
    key: &str,
    collections: &[&str],
) -> anyhow::Result<()> {
    ctl(
        cluster,
        i,
        ControlRequest::TrustAdd {
            key: key.into(),
            collections: collections.iter().map(|c| c.to_string()).collect(),
            label: String::new(),
            min_contributors: 1,
            limits: Default::default(),
        },
    )
    .await?;
    Ok(())
}

/// Node `i`'s commissioner key.
pub async fn commissioner_key(cluster: &Cluster, i: usize) -> anyhow::Result<String> {
    ctl(cluster, i, ControlRequest::Status).await?["commissioner_key"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no commissioner key"))
}
