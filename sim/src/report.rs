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
    /// Acknowledgement timeouts: messages their senders were told were not delivered.
    pub unreachable_notices: u64,
    /// Of those, timeouts whose receiver was alive (it had not handled the message yet): the
    /// sender failed over a message that was delivered.
    pub spurious_timeouts: u64,
    /// Failure notices the oracle (`failures.oracle`) delivered to live nodes.
    pub oracle_notices: u64,
    pub crashes: u64,
    pub rejoins: u64,
    pub heals_done: u64,
    pub heals_given_up: u64,
    /// Messages or commands an engine rejected (a few samples follow).
    pub rejected: u64,
    pub rejected_samples: Vec<String>,
    /// Byzantine nodes (`[byzantine]`), one `index:attacks` each (letters of
    /// `byzantine::short`).
    #[serde(default)]
    pub liars: Vec<String>,
    /// Root positions the commissioner named faulty: left out of its release, or the reason
    /// it released nothing (`Failure::InconsistentRootShares`).
    #[serde(default)]
    pub named_root_positions: Vec<u8>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Checks {
    /// The released sum equals the plaintext sum over the reported set (`None`: no result,
    /// or the check is off).
    pub sum_ok: Option<bool>,
    pub privacy_checked: bool,
    /// Every violation found (privacy, agreement, result, setup); empty on a clean run.
    pub violations: Vec<String>,
    /// Differential privacy's collusion bound on the released version (`None`: no DP, or
    /// nothing released).
    #[serde(default)]
    pub dp: Option<DpCheck>,
}

/// What the released version's noise still guarantees when the largest tolerated coalition
/// of its contributors removes its own noise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DpCheck {
    /// `HONEST SOURCES`: the guarantee needs this many contributors' noise.
    pub honest_sources: u32,
    /// Contributors whose vectors (each with its own noise) the released version sums.
    pub noise_sources: u64,
    /// `noise_sources - honest_sources`: contributors that may collude and subtract their noise.
    pub colluders_tolerated: u64,
    /// The zCDP `rho` of the noise the other `honest_sources` contributors added alone
    /// (`dp::rho_of_parts`), and the query's budget `rho_for(epsilon, delta)`.
    pub rho_left: f64,
    pub rho_budget: f64,
}

/// One run with one seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub seed: u64,
    pub nodes: u64,
    pub contributors: u64,
    /// Contributors whose `g` shares all left their uplink.
    pub finished_sending: u64,
    /// Contributors at least `t` of whose shares left their uplink: no protocol with threshold
    /// `t` can include any other contributor.
    pub reached_threshold: u64,
    /// Contributors the released version covers.
    pub included: u64,
    /// Included contributors over all contributors (DISSEC's definition; 0 without a result).
    pub completeness: f64,
    /// Included contributors that finished sending over contributors that finished sending
    /// (this simulator's earlier definition: a contributor that died before its last share
    /// left does not count).
    pub completeness_of_finished: f64,
    /// Contributors that reached the threshold over all contributors: the ceiling of
    /// `completeness` for this run's failures.
    pub ceiling: f64,
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

/// Medians and spreads over the seeds of one configuration. The 95% intervals are the
/// distribution-free confidence intervals of the median ([`median_ci95`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub runs: usize,
    pub released: usize,
    /// Included over all contributors (DISSEC's definition).
    pub completeness_median: f64,
    pub completeness_ci95: Option<(f64, f64)>,
    pub completeness_min: f64,
    /// Included over contributors that finished sending (the earlier definition).
    pub completeness_of_finished_median: f64,
    pub completeness_of_finished_min: f64,
    /// Contributors that reached the threshold, over all contributors.
    pub ceiling_median: f64,
    /// Over the released runs.
    pub latency_s_median: Option<f64>,
    pub latency_s_ci95: Option<(f64, f64)>,
    pub latency_s_max: Option<f64>,
    pub spurious_timeouts_median: f64,
    pub violations: usize,
}

/// `P[Bin(n, 1/2) <= k]`.
fn binomial_half_cdf(n: usize, k: usize) -> f64 {
    let mut coef = 1.0f64;
    let mut total = 0.0;
    for i in 0..=k.min(n) {
        if i > 0 {
            coef = coef * (n - i + 1) as f64 / i as f64;
        }
        total += coef;
    }
    total / 2f64.powi(n as i32)
}

/// The distribution-free 95% confidence interval of the median of `n` samples: the order
/// statistics `x(k)` and `x(n + 1 - k)` (1-based) with the largest `k` such that
/// `P[Bin(n, 1/2) <= k - 1] <= 0.025` (their coverage is at least 95%; for 20 samples,
/// `x(6)` and `x(15)`, 95.9%). `None` below 6 samples, where no such `k` exists.
pub fn median_ci95(values: &[f64]) -> Option<(f64, f64)> {
    let n = values.len();
    let mut k = 0;
    while k < n / 2 && binomial_half_cdf(n, k) <= 0.025 {
        k += 1;
    }
    if k == 0 {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some((v[k - 1], v[n - k]))
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
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
        let completeness: Vec<f64> = runs.iter().map(|r| r.completeness).collect();
        let of_finished: Vec<f64> = runs.iter().map(|r| r.completeness_of_finished).collect();
        let ceiling: Vec<f64> = runs.iter().map(|r| r.ceiling).collect();
        let latency: Vec<f64> = runs.iter().filter_map(|r| r.latency_s).collect();
        let spurious: Vec<f64> = runs
            .iter()
            .map(|r| r.summary.spurious_timeouts as f64)
            .collect();
        let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        Aggregate {
            runs: runs.len(),
            released: runs.iter().filter(|r| r.released).count(),
            completeness_min: min(&completeness),
            completeness_ci95: median_ci95(&completeness),
            completeness_median: median(&completeness).unwrap_or(0.0),
            completeness_of_finished_min: min(&of_finished),
            completeness_of_finished_median: median(&of_finished).unwrap_or(0.0),
            ceiling_median: median(&ceiling).unwrap_or(0.0),
            latency_s_max: latency.iter().copied().reduce(f64::max),
            latency_s_ci95: median_ci95(&latency),
            latency_s_median: median(&latency),
            spurious_timeouts_median: median(&spurious).unwrap_or(0.0),
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
            "  seed {:>4}: completeness {:>7.3}% ({} of {} contributors; {:.3}% of the {} finished senders; ceiling {:.3}%), latency {latency}, \
             {} msgs, {:.1} MiB, busy median {:.1} ms max {:.1} ms, {} crashes, {} heals, {} timeouts ({} spurious), {} events in {:.2} s ({:.0}/s), trace {}{}",
            r.seed,
            r.completeness * 100.0,
            r.included,
            r.contributors,
            r.completeness_of_finished * 100.0,
            r.finished_sending,
            r.ceiling * 100.0,
            r.summary.messages,
            r.summary.bytes as f64 / (1024.0 * 1024.0),
            r.busy_ms_median,
            r.busy_ms_max,
            r.summary.crashes,
            r.summary.heals_done,
            r.summary.unreachable_notices,
            r.summary.spurious_timeouts,
            r.events,
            r.wall_s,
            r.events_per_s,
            // A run that failed in its setup has no trace.
            r.trace_hash.get(..16).unwrap_or(&r.trace_hash),
            r.failure
                .as_ref()
                .map_or(String::new(), |f| format!(", FAILED: {f}")),
        );
        if !r.summary.liars.is_empty() {
            let _ = writeln!(
                s,
                "    {} Byzantine node(s); root positions named faulty: {:?}",
                r.summary.liars.len(),
                r.summary.named_root_positions,
            );
        }
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
        if let Some(dp) = &r.checks.dp {
            let _ = writeln!(
                s,
                "    differential privacy: the release sums {} contributors' noise, {} honest sources needed, up to {} colluders tolerated; rho of the honest noise {:.6} (budget {:.6})",
                dp.noise_sources, dp.honest_sources, dp.colluders_tolerated, dp.rho_left, dp.rho_budget
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
        "  median completeness {} (min {:.3}%; of finished senders {:.3}%, min {:.3}%; ceiling {:.3}%), median latency {}, released {}/{}, runs with violations {}, peak memory {:.0} MiB",
        percent_with_ci(agg.completeness_median, agg.completeness_ci95),
        agg.completeness_min * 100.0,
        agg.completeness_of_finished_median * 100.0,
        agg.completeness_of_finished_min * 100.0,
        agg.ceiling_median * 100.0,
        seconds_with_ci(agg.latency_s_median, agg.latency_s_ci95),
        agg.released,
        agg.runs,
        agg.violations,
        runs.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max),
    );
    s
}

/// `99.951% [99.902, 100.000]`: a median completeness and its 95% interval.
pub fn percent_with_ci(median: f64, ci: Option<(f64, f64)>) -> String {
    match ci {
        Some((lo, hi)) => format!(
            "{:.3}% [{:.3}, {:.3}]",
            median * 100.0,
            lo * 100.0,
            hi * 100.0
        ),
        None => format!("{:.3}%", median * 100.0),
    }
}

/// `4.123 s [4.010, 4.251]`: a median latency and its 95% interval.
pub fn seconds_with_ci(median: Option<f64>, ci: Option<(f64, f64)>) -> String {
    match (median, ci) {
        (Some(m), Some((lo, hi))) => format!("{m:.3} s [{lo:.3}, {hi:.3}]"),
        (Some(m), None) => format!("{m:.3} s"),
        (None, _) => "-".to_string(),
    }
}

/// The CSV header of sweep rows.
pub const CSV_HEADER: &str = "param,value,seed,released,completeness,completeness_of_finished,ceiling,latency_s,contributors,finished_sending,reached_threshold,included,messages,bytes,crashes,heals_done,unreachable_notices,spurious_timeouts,busy_ms_median,busy_ms_max,events,wall_s,events_per_s,peak_rss_mib,violations,trace_hash";

/// One CSV row of a sweep.
pub fn csv_row(param: &str, value: &str, r: &RunReport) -> String {
    format!(
        "{param},{value},{},{},{:.6},{:.6},{:.6},{},{},{},{},{},{},{},{},{},{},{},{:.3},{:.3},{},{:.3},{:.0},{:.1},{},{}",
        r.seed,
        r.released,
        r.completeness,
        r.completeness_of_finished,
        r.ceiling,
        r.latency_s.map_or(String::new(), |l| format!("{l:.6}")),
        r.contributors,
        r.finished_sending,
        r.reached_threshold,
        r.included,
        r.summary.messages,
        r.summary.bytes,
        r.summary.crashes,
        r.summary.heals_done,
        r.summary.unreachable_notices,
        r.summary.spurious_timeouts,
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
            reached_threshold: 0,
            included: 0,
            completeness: 0.0,
            completeness_of_finished: 0.0,
            ceiling: 0.0,
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
                dp: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_interval_is_the_usual_order_statistics() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        // For 20 samples, x(6) and x(15): coverage 95.9%.
        assert_eq!(median_ci95(&v), Some((6.0, 15.0)));
        let v: Vec<f64> = (1..=21).rev().map(f64::from).collect();
        assert_eq!(median_ci95(&v), Some((6.0, 16.0)));
        assert_eq!(median_ci95(&[1.0, 2.0, 3.0, 4.0, 5.0]), None);
        assert!(median_ci95(&[1.0; 6]).is_some());
        assert!(binomial_half_cdf(20, 5) <= 0.025 && binomial_half_cdf(20, 6) > 0.025);
    }
}
