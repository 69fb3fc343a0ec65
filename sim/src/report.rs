//! What a run reports, and the summaries over several seeds.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleTraffic {
    pub messages: u64,
    /// Charged bytes (in size-only mode, as if the declared vectors were carried).
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub messages: u64,
    pub bytes: u64,
    /// Messages whose receiver was dead.
    pub dropped_at_dead: u64,
    /// Messages whose sender died before their last byte left.
    pub dropped_sender_died: u64,
    /// Failure notices that would go back to senders once the engine can take them.
    pub unreachable_notices: u64,
    /// Failure notices the oracle (`failures.oracle`) delivered to live nodes.
    pub oracle_notices: u64,
    pub crashes: u64,
    pub rejoins: u64,
    pub heals_done: u64,
    pub heals_given_up: u64,
    /// Messages or commands an engine rejected (a few samples follow).
    pub rejected: u64,
    pub rejected_samples: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Checks {
    /// The released sum equals the plaintext sum over the reported set (`None`: no result,
    /// or the check is off).
    pub sum_ok: Option<bool>,
    pub privacy_checked: bool,
    /// Every violation found (privacy, agreement, result, setup); empty on a clean run.
    pub violations: Vec<String>,
}

/// One run with one seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub seed: u64,
    pub nodes: u64,
    pub contributors: u64,
    /// Contributors whose `g` shares all left their uplink.
    pub finished_sending: u64,
    /// Contributors the released version covers.
    pub included: u64,
    /// Included contributors over contributors that finished sending.
    pub completeness: f64,
    pub released: bool,
    pub failure: Option<String>,
    /// From the launch to the reconstruction at the commissioner.
    pub latency_s: Option<f64>,
    pub sim_end_s: f64,
    /// Why the run stopped before its end, if it did (a wall-clock budget).
    pub stopped: Option<String>,
    /// Wall time spent building the network (identities, directory, engines).
    pub setup_s: f64,
    /// CPU time of that setup, over every thread it used.
    pub setup_cpu_s: f64,
    pub summary: Summary,
    pub by_kind: BTreeMap<String, RoleTraffic>,
    pub by_role: BTreeMap<String, RoleTraffic>,
    /// When the last share's last byte left its contributor (seconds after the launch).
    pub last_share_sent_s: f64,
    /// First and last manifest adoption per level, leaves first (seconds after the launch).
    pub manifests_adopted_s: Vec<(f64, f64)>,
    /// CPU busy time over the nodes that did any work.
    pub busy_ms_mean: f64,
    pub busy_ms_median: f64,
    pub busy_ms_max: f64,
    pub events: u64,
    pub wall_s: f64,
    pub events_per_s: f64,
    /// CPU time the event loop (one thread) used: on a machine shared with other work, wall
    /// time measures the load as much as the simulator, CPU time does not.
    pub cpu_s: f64,
    pub events_per_cpu_s: f64,
    /// Peak resident memory of the whole process so far (all runs in it), from VmHWM.
    pub peak_rss_mib: f64,
    pub trace_hash: String,
    pub checks: Checks,
    /// The released values and the contributors they cover (hex node ids, sorted); only for
    /// runs on a given network (`sim::Fixture`), whose node ids mean something outside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// What a run on a given network released.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub values: Vec<f64>,
    pub included: Vec<String>,
}

impl RunReport {
    pub fn ok(&self) -> bool {
        self.checks.violations.is_empty() && self.checks.sum_ok != Some(false)
    }
}

/// CPU time the calling thread has used so far, in seconds (0 where `/proc` is missing).
pub fn thread_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

/// Peak resident set size of this process, in MiB (0 where `/proc` is missing).
pub fn peak_rss_mib() -> f64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0.0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Medians and spreads over the seeds of one configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub runs: usize,
    pub released: usize,
    pub completeness_median: f64,
    pub completeness_min: f64,
    pub latency_s_median: Option<f64>,
    pub latency_s_max: Option<f64>,
    pub violations: usize,
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

impl Aggregate {
    pub fn of(runs: &[RunReport]) -> Aggregate {
        let mut completeness: Vec<f64> = runs.iter().map(|r| r.completeness).collect();
        let mut latency: Vec<f64> = runs.iter().filter_map(|r| r.latency_s).collect();
        Aggregate {
            runs: runs.len(),
            released: runs.iter().filter(|r| r.released).count(),
            completeness_min: completeness.iter().copied().fold(f64::INFINITY, f64::min),
            completeness_median: median(&mut completeness).unwrap_or(0.0),
            latency_s_max: latency.iter().copied().reduce(f64::max),
            latency_s_median: median(&mut latency),
            violations: runs.iter().filter(|r| !r.ok()).count(),
        }
    }
}

/// A human summary of runs of one config.
pub fn human(name: &str, mode: &str, runs: &[RunReport]) -> String {
    let mut s = String::new();
    let agg = Aggregate::of(runs);
    let _ = writeln!(s, "config {name} ({mode}), {} run(s)", runs.len());
    for r in runs {
        let latency = r
            .latency_s
            .map_or("no result".to_string(), |l| format!("{l:.3} s"));
        let _ = writeln!(
            s,
            "  seed {:>4}: completeness {:>7.3}% ({}/{} finished senders, {} contributors), latency {latency}, \
             {} msgs, {:.1} MiB, busy median {:.1} ms max {:.1} ms, {} crashes, {} heals, {} events in {:.2} s ({:.0}/s), trace {}{}",
            r.seed,
            r.completeness * 100.0,
            r.included,
            r.finished_sending,
            r.contributors,
            r.summary.messages,
            r.summary.bytes as f64 / (1024.0 * 1024.0),
            r.busy_ms_median,
            r.busy_ms_max,
            r.summary.crashes,
            r.summary.heals_done,
            r.events,
            r.wall_s,
            r.events_per_s,
            &r.trace_hash[..16],
            r.failure
                .as_ref()
                .map_or(String::new(), |f| format!(", FAILED: {f}")),
        );
        let _ = writeln!(
            s,
            "    setup {:.1} s ({:.1} s of CPU); event loop {:.1} s of CPU ({:.0} events/s of CPU); peak {:.0} MiB{}",
            r.setup_s,
            r.setup_cpu_s,
            r.cpu_s,
            r.events_per_cpu_s,
            r.peak_rss_mib,
            r.stopped
                .as_ref()
                .map_or(String::new(), |w| format!("; STOPPED: {w}"))
        );
        if !r.manifests_adopted_s.is_empty() {
            let levels: Vec<String> = r
                .manifests_adopted_s
                .iter()
                .enumerate()
                .map(|(l, (a, b))| format!("L{l} {a:.2}-{b:.2}"))
                .collect();
            let _ = writeln!(
                s,
                "    timeline (s): last share sent {:.2}; manifests adopted {}",
                r.last_share_sent_s,
                levels.join(", ")
            );
        }
        for v in r.checks.violations.iter().take(5) {
            let _ = writeln!(s, "    VIOLATION: {v}");
        }
    }
    if let Some(r) = runs.first() {
        let _ = writeln!(s, "  traffic by role (seed {}):", r.seed);
        for (role, t) in &r.by_role {
            let _ = writeln!(
                s,
                "    {role:<13} {:>10} msgs {:>12.1} MiB",
                t.messages,
                t.bytes as f64 / (1024.0 * 1024.0)
            );
        }
    }
    let _ = writeln!(
        s,
        "  median completeness {:.3}% (min {:.3}%), median latency {}, released {}/{}, runs with violations {}, peak memory {:.0} MiB",
        agg.completeness_median * 100.0,
        agg.completeness_min * 100.0,
        agg.latency_s_median
            .map_or("-".to_string(), |l| format!("{l:.3} s")),
        agg.released,
        agg.runs,
        agg.violations,
        runs.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max),
    );
    s
}

/// The CSV header of sweep rows.
pub const CSV_HEADER: &str = "param,value,seed,released,completeness,latency_s,contributors,finished_sending,included,messages,bytes,crashes,heals_done,busy_ms_median,busy_ms_max,events,wall_s,events_per_s,peak_rss_mib,violations,trace_hash";

/// One CSV row of a sweep.
pub fn csv_row(param: &str, value: &str, r: &RunReport) -> String {
    format!(
        "{param},{value},{},{},{:.6},{},{},{},{},{},{},{},{},{:.3},{:.3},{},{:.3},{:.0},{:.1},{},{}",
        r.seed,
        r.released,
        r.completeness,
        r.latency_s.map_or(String::new(), |l| format!("{l:.6}")),
        r.contributors,
        r.finished_sending,
        r.included,
        r.summary.messages,
        r.summary.bytes,
        r.summary.crashes,
        r.summary.heals_done,
        r.busy_ms_median,
        r.busy_ms_max,
        r.events,
        r.wall_s,
        r.events_per_s,
        r.peak_rss_mib,
        r.checks.violations.len(),
        r.trace_hash,
    )
}

impl RunReport {
    /// A run that could not even be set up (for example a plan that does not fit the network).
    pub fn setup_failure(seed: u64, error: String) -> RunReport {
        RunReport {
            outcome: None,
            seed,
            nodes: 0,
            contributors: 0,
            finished_sending: 0,
            included: 0,
            completeness: 0.0,
            released: false,
            failure: Some(error.clone()),
            latency_s: None,
            sim_end_s: 0.0,
            stopped: None,
            setup_s: 0.0,
            setup_cpu_s: 0.0,
            last_share_sent_s: 0.0,
            manifests_adopted_s: Vec::new(),
            summary: Summary::default(),
            by_kind: BTreeMap::new(),
            by_role: BTreeMap::new(),
            busy_ms_mean: 0.0,
            busy_ms_median: 0.0,
            busy_ms_max: 0.0,
            events: 0,
            wall_s: 0.0,
            events_per_s: 0.0,
            cpu_s: 0.0,
            events_per_cpu_s: 0.0,
            peak_rss_mib: peak_rss_mib(),
            trace_hash: String::new(),
            checks: Checks {
                sum_ok: None,
                privacy_checked: false,
                violations: vec![format!("setup: {error}")],
            },
        }
    }
}
