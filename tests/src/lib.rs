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
//! The tests, modules of one test binary (`tests/tests/e2e/`, libp2p and redb linked once),
//! each holding [`serial`] so that one network runs at a time:
//! - `import_crash`: SIGKILL during a stream of imports; every acknowledged record survives.
//! - `compute_sum`: 25 processes compute an exact sum.
//! - `beacon`: six processes following a local drand chain served by a relay task compute an
//!   exact sum from the round the request names; a relay serving rounds signed with another
//!   key gets them refused by every node, and no node plans or shares.
//! - `late_eligible`: with an identity age of two 5-second epochs, a daemon that joins late
//!   with a fresh certificate is admitted everywhere but left out of a computation's candidate
//!   set until its age, then is a candidate, holds a position and is counted exactly.
//! - `kill_restart`: aggregators SIGKILLed mid-computation, one restarted from its data dir;
//!   the result is exact over the contributor set it reports.
//! - `phase_kill_leaf`, `phase_kill_inner`, `phase_kill_root`: on 20 processes (three
//!   levels), an aggregator of that level SIGKILLs itself at an exact point of collection,
//!   agreement (leader and member) and heal ([`phase`]); every result is exact over the set
//!   it reports, and its completeness is printed.
//! - `silent_member`: a leaf member SIGSTOPped right after the launch keeps its connections
//!   but acknowledges nothing; its peers fail it over after the receiver's grace and the
//!   result is exact, every other node included.
//! - `untrusted`: nodes that do not trust the commissioner send no share and audit why.
//! - `hostile_requests`: forged, expired and future requests from a hostile libp2p peer are
//!   refused and audited.
//! - `consent`: one node per consent rule (untrusted, collection, k_min, t, rate,
//!   differencing) declines, sends no share and audits the rule.
//! - `oracle` (protocol harness, real engines) and `oracle_processes` (real processes):
//!   random queries over random records equal the reference evaluation of [`oracle`], rows
//!   and histogram buckets below `k_min` suppressed.
//!   `oracle` also checks that released differentially private cells lie in their reported
//!   95% intervals at the reported rate.
//! - `privacy_budget`: a node whose budget for a commissioner is spent declines with the rule
//!   `privacy_budget` in its audit, still after a SIGKILL and restart, and shows the spend.
//! - `release_rules`: owners at `--min-k 5` and a commissioner that ignores `k_min`
//!   ([`SKIP_K_MIN_ENV`]): the `GROUP BY id` attack gets nothing, a row of one contributor is
//!   suppressed beside an exact one, a node matching nothing sends zeros and says so, an
//!   identical repeat is declined.
//! - `forged_copy`: a forged gossip copy (same id, a trusted commissioner's key) of a request
//!   waiting for its snapshot makes no node contribute.
//! - `cozy_import`, `webdav_sync`, `pdms_e2e`: a Cozy export, `grove sync` against a real
//!   WebDAV server (wsgidav, see `tests/tests/e2e/pdms_support`), and three nodes fed from Cozy,
//!   Nextcloud and the ingest endpoint computing an exact sum.
//! - `replay_after_close`: a real request's bytes published again after the computation
//!   closed are refused as a replay, audited, and cause no share.
//! - `parity`: one seeded scenario with a kill gives the same result and included set in real
//!   processes and in `grove-sim`.
//! - `scale60` (only with `GROVE_E2E_LARGE=1`): 60 daemons with admission on and a local
//!   beacon, then a late 61st, known and eligible at every daemon by gossip; one computation
//!   counts all 61 exactly; connections and CPU per node printed.
//! - `lookups_at_rest`: 16 daemons at rest trusting one commissioner back off their lookups
//!   of its active requests (none active), within the documented schedule; a computation
//!   afterwards still reaches every node. `GROVE_REST_NODES` and `GROVE_REST_SECS` scale it up
//!   for a measurement.
//! - `cleanup`: a test that panics while its daemons run leaves no process and no directory.
//! - `console`: the owner's console in headless Chromium ([`browser`]): login, trust,
//!   forged changes, the trust mode "ask", the audit, a query from the commissioner's page.
//!
//! Kill points: the e2e binary installs a `grove_node::daemon::hook` observer when
//! [`TRIGGERS_ENV`] names a directory; a test arms a [`TriggerSpec`] there (`persist
//! ManifestAdopted 0 3`: die right after persisting the adoption of a manifest at leaf
//! position 3), and the first armed daemon to reach that point claims it and SIGKILLs itself.
//! Kill points are read at every effect, so they can be armed while a computation runs.

use grove_node::control::{self, ComputeParams, ControlRequest, TrustLimits};
use grove_node::procs::Cluster;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use grove_node;

pub mod browser;
pub mod oracle;
pub mod phase;

/// One end-to-end test at a time. The tests are one binary whose harness runs tests on
/// several threads; each test holds this lock while it runs, so that one network of daemons
/// runs at a time on the machine, as when every test file was a binary and cargo ran them one
/// after another (their timeouts were set for that load).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for the other end-to-end tests to end; the guard lets the next one start.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// [`serial`] for a test that is not async (it must not be called inside a runtime).
pub fn serial_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.blocking_lock()
}

/// Starts `n` daemons (node 0 first, the others bootstrapping from it) and waits until every
/// directory holds all of them.
pub async fn start_network(exe: &Path, n: usize) -> anyhow::Result<Cluster> {
    let mut cluster = Cluster::new(exe)?;
    for _ in 0..n {
        cluster.add_node()?;
    }
    start_all(&mut cluster).await?;
    Ok(cluster)
}

/// Like [`start_network`], with kill points: every node but node 0 (the commissioner of the
/// tests) watches the returned [`Triggers`].
pub async fn start_armed_network(exe: &Path, n: usize) -> anyhow::Result<(Cluster, Triggers)> {
    let mut cluster = Cluster::new(exe)?;
    let triggers = Triggers::new(cluster.root())?;
    for i in 0..n {
        cluster.add_node()?;
        if i != 0 {
            cluster.nodes[i].env.push((
                TRIGGERS_ENV.to_string(),
                triggers.dir.to_string_lossy().into_owned(),
            ));
        }
    }
    start_all(&mut cluster).await?;
    Ok((cluster, triggers))
}

/// Sets `key = value` in node `i`'s config file, in place of the line `grove init` wrote.
pub fn set_config(cluster: &Cluster, i: usize, key: &str, value: &str) -> anyhow::Result<()> {
    let path = cluster.dir(i).join(grove_node::config::CONFIG_FILE);
    let text = std::fs::read_to_string(&path)?;
    let prefix = format!("{key} = ");
    anyhow::ensure!(
        text.lines().any(|l| l.starts_with(&prefix)),
        "{} has no line `{key} = ...`",
        path.display()
    );
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                format!("{key} = {value}")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n")?;
    Ok(())
}

/// Starts every node of the cluster: node 0 first, then the others with it as bootstrap;
/// returns once every directory holds every node.
pub async fn start_all(cluster: &mut Cluster) -> anyhow::Result<()> {
    let n = cluster.nodes.len();
    cluster.start(0, &[])?;
    cluster.wait_ready(0, Duration::from_secs(20)).await?;
    let boot = boot_addr(cluster)?;
    for i in 1..n {
        cluster.start(i, std::slice::from_ref(&boot))?;
    }
    for i in 1..n {
        cluster.wait_ready(i, Duration::from_secs(20)).await?;
    }
    cluster.wait_directory(n, Duration::from_secs(30)).await?;
    Ok(())
}

/// Node 0's address, to bootstrap from.
pub fn boot_addr(cluster: &Cluster) -> anyhow::Result<String> {
    cluster.nodes[0]
        .addr
        .clone()
        .ok_or_else(|| anyhow::anyhow!("node 0 has no address"))
}

/// One control request to node `i`.
pub async fn ctl(cluster: &Cluster, i: usize, request: ControlRequest) -> anyhow::Result<Value> {
    Ok(control::call(cluster.dir(i), &request, |_, _| {}).await?)
}

/// Node `i` imports `record` (a JSON object) into `collection`.
pub async fn import(
    cluster: &Cluster,
    i: usize,
    collection: &str,
    record: Value,
) -> anyhow::Result<Value> {
    let Value::Object(record) = record else {
        anyhow::bail!("a record is a JSON object, not {record}");
    };
    ctl(
        cluster,
        i,
        ControlRequest::Import {
            collection: collection.into(),
            records: vec![record],
        },
    )
    .await
}

/// Launches `params` as a computation from node `i` and waits for its plan (the first progress
/// message that carries data). Returns the plan and the running call, whose output is the
/// result; when no plan comes, the call's own error says why.
pub async fn launch(
    cluster: &Cluster,
    i: usize,
    params: ComputeParams,
) -> anyhow::Result<(
    Value,
    tokio::task::JoinHandle<Result<Value, control::ControlError>>,
)> {
    let (plan_tx, mut plan_rx) = tokio::sync::mpsc::channel::<Value>(1);
    let dir = cluster.dir(i).to_path_buf();
    let compute = tokio::spawn(async move {
        control::call(&dir, &ControlRequest::Compute(params), |_, data| {
            if let Some(d) = data {
                let _ = plan_tx.try_send(d.clone());
            }
        })
        .await
    });
    match plan_rx.recv().await {
        Some(plan) => Ok((plan, compute)),
        None => match compute.await? {
            Ok(result) => anyhow::bail!("the computation gave no plan: {result}"),
            Err(e) => anyhow::bail!("the computation was not launched: {e}"),
        },
    }
}

/// Waits until `seen(status)` is `want` at every node of `nodes` that runs; past `until`, fails
/// naming each node that lags and what it saw.
pub async fn wait_status<T: PartialEq + std::fmt::Debug>(
    cluster: &Cluster,
    nodes: std::ops::Range<usize>,
    until: Instant,
    want: T,
    seen: impl Fn(&Value) -> T,
) -> anyhow::Result<()> {
    loop {
        let mut lagging = Vec::new();
        for i in nodes.clone().filter(|i| cluster.is_running(*i)) {
            let got = seen(&ctl(cluster, i, ControlRequest::Status).await?);
            if got != want {
                lagging.push((i, got));
            }
        }
        if lagging.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < until,
            "not every node sees {want:?}: (node, what it sees) {lagging:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until every running node holds `n` peers in its directory and `n` eligible identities
/// in its admission view (itself included in both); past `until`, fails naming the nodes that
/// lag, with (directory, eligible) of each.
pub async fn wait_eligible(cluster: &Cluster, n: u64, until: Instant) -> anyhow::Result<()> {
    wait_status(
        cluster,
        0..cluster.nodes.len(),
        until,
        (Some(n), Some(n)),
        |s| {
            (
                s["directory_peers"].as_u64(),
                s["admission"]["known_eligible"].as_u64(),
            )
        },
    )
    .await
}

/// The peer ids the plan of a launch reply places.
pub fn placed(plan: &Value) -> Vec<String> {
    plan["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["members"].as_array().cloned().unwrap_or_default())
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect()
}

/// Launches `params` from node 0 over values seeded as powers of two ([`exact_set`]) on a
/// network of `nodes`, and waits for the result: returns the plan, the result and the set of
/// contributors it covers exactly.
pub async fn launch_exact(
    cluster: &Cluster,
    params: ComputeParams,
    nodes: usize,
) -> anyhow::Result<(Value, Value, u64)> {
    let (plan, compute) = launch(cluster, 0, params).await?;
    let result = compute.await??;
    eprintln!("plan {plan}\nresult {result}");
    let set = exact_set(&result, nodes)?;
    Ok((plan, result, set))
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

/// The index in `cluster` of the node whose peer id is `peer`.
pub fn index_of_peer(cluster: &Cluster, peer: &str) -> Option<usize> {
    cluster
        .nodes
        .iter()
        .position(|n| n.peer_id.as_deref() == Some(peer))
}

/// Asserts that a `compute` result is exact: its first cell is `sum` and it counts
/// `contributors` contributors (the whole result in the message otherwise).
#[track_caller]
pub fn assert_exact(result: &Value, sum: f64, contributors: usize) {
    assert_eq!(cell(result, 0, 0), Some(sum), "{result}");
    assert_eq!(
        result["contributors"].as_u64(),
        Some(contributors as u64),
        "{result}"
    );
}

/// The trust limits of the tests' small networks: `t >= 2` (the requests use `g = 3, t = 2`
/// and few contributors) and repeats allowed (the phase tests run one query per phase on one
/// network; `release_rules` tests the repeat rule with the CLI's defaults), every other limit
/// at the node's default. (The trust helpers pass `k_min >= 1` themselves.)
pub fn test_limits() -> TrustLimits {
    TrustLimits {
        min_t: Some(2),
        allow_repeats: true,
        ..TrustLimits::default()
    }
}

/// Trust `key` at node `i` for `collections` (empty: all), with [`test_limits`].
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
            limits: test_limits(),
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

/// The environment variable naming the trigger directory of a daemon of the e2e binary.
pub const TRIGGERS_ENV: &str = "GROVE_E2E_TRIGGERS";

/// Set (to anything) for a daemon of the e2e binary whose engine, as commissioner, ignores
/// `k_min`: whatever the root group releases to it, it shows.
pub const SKIP_K_MIN_ENV: &str = "GROVE_E2E_SKIP_K_MIN";

/// Set to a number `n` for a daemon of the e2e binary that inflates its contributions `n`
/// times, indicators included (`ValidityLie::Inflate`; `inflate`).
pub const INFLATE_ENV: &str = "GROVE_E2E_INFLATE";

/// A kill point: `WHEN KIND LEVEL [POSITION [PID]]` (see `src/bin/grove-e2e-node.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerSpec {
    /// `persist`, `send` or `recv`.
    pub when: String,
    /// A record kind (`ManifestAdopted`) or a message kind (`heal-go`); `a|b` matches either
    /// (`partial|partial-confirm`: once the member handed its sum up, sent ahead or not).
    pub kind: String,
    /// The level of the group concerned; `None` matches any.
    pub level: Option<u8>,
    /// The position in that group; `None` matches any.
    pub position: Option<u8>,
    /// Only the daemon with this process id; `None`: any armed daemon.
    pub pid: Option<u32>,
}

impl TriggerSpec {
    pub fn new(when: &str, kind: &str, level: Option<u8>, position: Option<u8>) -> TriggerSpec {
        TriggerSpec {
            when: when.into(),
            kind: kind.into(),
            level,
            position,
            pid: None,
        }
    }

    /// The same kill point, for one daemon only.
    pub fn for_pid(self, pid: u32) -> TriggerSpec {
        TriggerSpec {
            pid: Some(pid),
            ..self
        }
    }

    pub fn parse(text: &str) -> Option<TriggerSpec> {
        let mut words = text.split_whitespace();
        let when = words.next()?;
        let kind = words.next()?;
        let level = match words.next()? {
            "*" => None,
            l => Some(l.parse().ok()?),
        };
        let position = match words.next() {
            None | Some("*") => None,
            Some(p) => Some(p.parse().ok()?),
        };
        let pid = match words.next() {
            None | Some("*") => None,
            Some(p) => Some(p.parse().ok()?),
        };
        if words.next().is_some() || !matches!(when, "persist" | "send" | "recv") {
            return None;
        }
        Some(TriggerSpec {
            pid,
            ..TriggerSpec::new(when, kind, level, position)
        })
    }

    pub fn line(&self) -> String {
        let any = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
        format!(
            "{} {} {} {} {}\n",
            self.when,
            self.kind,
            any(self.level.map(u32::from)),
            any(self.position.map(u32::from)),
            any(self.pid)
        )
    }

    /// Whether an effect of kind `kind` about `slot` (level, position) in process `pid`
    /// matches.
    pub fn matches(&self, pid: u32, when: &str, kind: &str, slot: Option<(u8, u8)>) -> bool {
        let level = slot.map(|s| s.0);
        let position = slot.map(|s| s.1);
        self.pid.is_none_or(|p| p == pid)
            && self.when == when
            && self.kind.split('|').any(|k| k == kind)
            && (self.level.is_none() || self.level == level)
            && (self.position.is_none() || self.position == position)
    }
}

/// The trigger directory the armed daemons watch.
pub struct Triggers {
    pub dir: PathBuf,
}

/// A trigger some daemon claimed before it killed itself.
#[derive(Clone, Debug)]
pub struct Fired {
    pub pid: u32,
    /// `WHEN KIND LEVEL` of the effect that matched.
    pub effect: String,
}

impl Triggers {
    pub fn new(root: &Path) -> anyhow::Result<Triggers> {
        let dir = root.join("triggers");
        std::fs::create_dir_all(&dir)?;
        Ok(Triggers { dir })
    }

    /// Arms trigger `name` (written aside, then renamed, so no daemon reads half a line),
    /// forgetting who claimed an earlier trigger of that name.
    pub fn arm(&self, name: &str, spec: &TriggerSpec) -> anyhow::Result<()> {
        for stale in [format!("fired-{name}.who"), format!("fired-{name}")] {
            let _ = std::fs::remove_file(self.dir.join(stale));
        }
        let tmp = self.dir.join(format!("tmp-{name}"));
        std::fs::write(&tmp, spec.line())?;
        std::fs::rename(&tmp, self.dir.join(format!("kill-{name}")))?;
        Ok(())
    }

    /// Removes trigger `name` if no daemon claimed it; returns whether it was still armed.
    pub fn disarm(&self, name: &str) -> bool {
        std::fs::remove_file(self.dir.join(format!("kill-{name}"))).is_ok()
    }

    /// Who claimed trigger `name`, once it wrote down who it is.
    pub fn fired(&self, name: &str) -> Option<Fired> {
        let who = std::fs::read_to_string(self.dir.join(format!("fired-{name}.who"))).ok()?;
        let mut lines = who.lines();
        let pid = lines.next()?.trim().parse().ok()?;
        let effect = lines.next()?.to_string();
        Some(Fired { pid, effect })
    }
}

/// Imports `{"x": 2^i}` into collection `c` of every node `i` and makes every node trust node
/// 0's commissioner key: a released sum then names exactly the contributors it covers.
pub async fn seed_powers_of_two(cluster: &Cluster) -> anyhow::Result<()> {
    let n = cluster.nodes.len();
    anyhow::ensure!(n <= 40, "2^i must stay exact in the sum");
    let values: Vec<Option<u64>> = (0..n).map(|i| Some(1u64 << i)).collect();
    import_and_trust(cluster, &values).await
}

/// Node `i` imports `{"x": values[i]}` into collection `c` and trusts node 0, if it holds a
/// value; a node without one trusts no one (so it declines, as a simulated non-contributor
/// does, rather than sending zeros).
pub async fn import_and_trust(cluster: &Cluster, values: &[Option<u64>]) -> anyhow::Result<()> {
    let key = commissioner_key(cluster, 0).await?;
    for (i, value) in values.iter().enumerate() {
        if let Some(v) = value {
            import(cluster, i, "c", serde_json::json!({ "x": v })).await?;
            trust(cluster, i, &key, &[]).await?;
        }
    }
    Ok(())
}

/// The contributors a result over [`seed_powers_of_two`] covers, as a bit set, after checking
/// that the result is exact over them: the sum is a whole number below `2^nodes`, it has as
/// many bits as the reported count of contributors, and the record count agrees.
pub fn exact_set(result: &Value, nodes: usize) -> anyhow::Result<u64> {
    let sum = cell(result, 0, 0).ok_or_else(|| anyhow::anyhow!("no sum in {result}"))?;
    let contributors = result["contributors"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no count in {result}"))?;
    anyhow::ensure!(
        sum >= 0.0 && sum.fract() == 0.0 && sum < (1u64 << nodes) as f64,
        "the sum is not a set of these {nodes} contributors: {result}"
    );
    let set = sum as u64;
    anyhow::ensure!(
        u64::from(set.count_ones()) == contributors,
        "the sum {set:#b} does not match the reported count {contributors}"
    );
    anyhow::ensure!(
        cell(result, 0, 1) == Some(contributors as f64),
        "the record count disagrees with the contributors: {result}"
    );
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::TriggerSpec;

    #[test]
    fn trigger_lines_round_trip_and_match() {
        let spec = TriggerSpec::new("persist", "ManifestAdopted", Some(0), Some(3));
        assert_eq!(TriggerSpec::parse(&spec.line()), Some(spec.clone()));
        assert!(spec.matches(7, "persist", "ManifestAdopted", Some((0, 3))));
        assert!(!spec.matches(7, "persist", "ManifestAdopted", Some((0, 1))));
        assert!(!spec.matches(7, "persist", "ManifestAdopted", Some((1, 3))));
        assert!(!spec.matches(7, "send", "ManifestAdopted", Some((0, 3))));
        let one = spec.clone().for_pid(9);
        assert_eq!(TriggerSpec::parse(&one.line()), Some(one.clone()));
        assert!(one.matches(9, "persist", "ManifestAdopted", Some((0, 3))));
        assert!(!one.matches(7, "persist", "ManifestAdopted", Some((0, 3))));
        let any = TriggerSpec::parse("recv heal-go *").expect("a valid line");
        assert!(any.matches(7, "recv", "heal-go", Some((2, 1))));
        assert!(any.matches(7, "recv", "heal-go", None));
        assert_eq!(TriggerSpec::parse("later heal-go 1"), None);
        assert_eq!(TriggerSpec::parse("recv heal-go 1 2 3 4"), None);
    }
}
