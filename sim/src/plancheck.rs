//! Validation of the adaptive planner (`grove_protocol::planner`) in the simulator: for a set
//! of network conditions, run the planner's choice and a grid of other plan shapes (group size,
//! fan-in, leaf size, each with the planner's timeouts for that shape), and compare the
//! planner's median latency with the best median latency of the grid among the shapes that
//! reach the completeness target.

use crate::config::{LatencyModel, SimConfig};
use crate::report::Aggregate;
use grove_protocol::planner::{self, Choice, Conditions, LinkModel};
use serde::Serialize;

/// One set of network conditions: overrides of the base config at dotted paths.
#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    pub name: String,
    pub overrides: Vec<(String, String)>,
}

impl Scenario {
    pub fn new(name: &str, overrides: &[(&str, &str)]) -> Scenario {
        Scenario {
            name: name.to_string(),
            overrides: overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// The default conditions: the base config, then one change of latency, bandwidth, failure
/// rate and network size each.
pub fn default_scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("base", &[]),
        Scenario::new(
            "latency-100ms",
            &[("latency.model", "fixed"), ("latency.ms", "100")],
        ),
        Scenario::new(
            "bandwidth-1000",
            &[
                ("bandwidth.upload_kb_per_s", "1000"),
                ("bandwidth.download_kb_per_s", "1000"),
            ],
        ),
        Scenario::new(
            "failures-0.25",
            &[("failures.uniform.rate_percent_per_s", "0.25")],
        ),
        Scenario::new("nodes-x4", &[("network.nodes", "4096")]),
    ]
}

/// The grid searched per scenario.
#[derive(Clone, Debug, Serialize)]
pub struct Grid {
    /// Extra group members over the threshold: `g = t + extra`.
    pub g_extra: Vec<u8>,
    pub fan_ins: Vec<u32>,
    pub leaf_sizes: Vec<u32>,
}

impl Grid {
    pub fn standard() -> Grid {
        Grid {
            g_extra: vec![0, 1, 2],
            fan_ins: vec![4, 8, 16],
            leaf_sizes: vec![4, 8, 16, 32],
        }
    }
}

/// One simulated plan shape.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    pub g: u8,
    pub t: u8,
    pub fan_in: u32,
    pub leaf_size: u32,
    pub depth: u8,
    pub predicted_latency_s: f64,
    pub predicted_completeness: f64,
    pub latency_s_median: Option<f64>,
    pub completeness_median: f64,
    pub violations: usize,
    pub meets_target: bool,
}

/// The result for one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    pub scenario: Scenario,
    pub conditions: Conditions,
    pub target: f64,
    pub planner: Point,
    /// The fastest grid shape meeting the target (the planner's own shape counts too).
    pub best: Option<Point>,
    /// Planner's median latency over the best's (1.0 = the planner found the best).
    pub ratio: Option<f64>,
    pub within_10_percent: bool,
    pub grid: Vec<Point>,
}

/// What the planner is told about a sim config's network.
pub fn conditions_of(cfg: &SimConfig, target: f64) -> Conditions {
    let latency_ms = match cfg.latency {
        LatencyModel::Fixed { ms } => ms,
        LatencyModel::Rayleigh { mean_ms } => mean_ms,
        LatencyModel::RayleighMedian { median_ms, .. } => median_ms,
        LatencyModel::LogNormal { median_ms, .. } => median_ms,
    };
    // The simulator's kB is 1,024 bytes; the planner's is 1,000.
    let kib = 1.024;
    Conditions {
        expected_contributors: u64::from(cfg.contributors()).max(1),
        available_nodes: u64::from(cfg.network.nodes),
        vector_len: cfg.payload.vector_len,
        latency_us: (latency_ms * 1000.0).round() as u64,
        broadcast_hops: planner::gossip_hops(u64::from(cfg.network.nodes), cfg.gossip.fanout),
        bandwidth_kb_per_s: cfg.bandwidth.upload_kb_per_s * kib,
        link_model: if cfg.bandwidth.charge_downlink {
            LinkModel::PerNode
        } else {
            LinkModel::PerLink
        },
        compute_us_per_kb: cfg.cpu.compute_us_per_kb() / kib,
        crypto_us: cfg.cpu.crypto_us(),
        failure_per_s: cfg.failures.uniform.rate_percent_per_s / 100.0
            * cfg.failures.uniform.probability,
        min_threshold: cfg.protocol.t,
        completeness_target: target,
        k_min: cfg.protocol.k_min,
        // The simulator models no connections (a message costs the same to any peer).
        connection_budget: None,
    }
}

/// The planner's timeouts for a config's own conditions and plan shape, in milliseconds.
pub fn planner_timeouts(cfg: &SimConfig) -> crate::config::TimeoutsConfig {
    let conditions = conditions_of(cfg, 0.99);
    let p = &cfg.protocol;
    let to = conditions.timeouts(p.g, p.t, p.fan_in, p.contributors_per_leaf);
    let ms = |us: u64| us as f64 / 1000.0;
    crate::config::TimeoutsConfig {
        share_window_ms: ms(to.share_window),
        collect_window_ms: ms(to.collect_window),
        level_span_ms: ms(to.level_span),
        report_window_ms: ms(to.report_window),
        manifest_timeout_ms: ms(to.manifest_timeout),
        heal_attempt_ms: ms(to.heal_attempt),
        release_window_ms: ms(to.release_window),
    }
}

/// [`planner_timeouts`] as a `[protocol.timeouts]` TOML table.
pub fn timeouts_table(cfg: &SimConfig) -> String {
    let t = planner_timeouts(cfg);
    format!(
        "[protocol.timeouts]\nshare_window_ms = {:.1}\ncollect_window_ms = {:.1}\nlevel_span_ms = {:.1}\nreport_window_ms = {:.1}\nmanifest_timeout_ms = {:.1}\nheal_attempt_ms = {:.1}\nrelease_window_ms = {:.1}\n",
        t.share_window_ms,
        t.collect_window_ms,
        t.level_span_ms,
        t.report_window_ms,
        t.manifest_timeout_ms,
        t.heal_attempt_ms,
        t.release_window_ms
    )
}

/// The config with a plan shape and its timeouts applied.
pub fn apply(cfg: &SimConfig, choice: &Choice) -> SimConfig {
    let mut c = cfg.clone();
    let ms = |us: u64| us as f64 / 1000.0;
    let to = &choice.tree.timeouts;
    c.protocol.g = choice.privacy.g;
    c.protocol.t = choice.privacy.t;
    c.protocol.fan_in = choice.tree.fan_in;
    c.protocol.contributors_per_leaf = choice.leaf_size;
    c.protocol.backups = choice.tree.backups;
    let t = &mut c.protocol.timeouts;
    t.share_window_ms = ms(to.share_window);
    t.collect_window_ms = ms(to.collect_window);
    t.level_span_ms = ms(to.level_span);
    t.report_window_ms = ms(to.report_window);
    t.manifest_timeout_ms = ms(to.manifest_timeout);
    t.heal_attempt_ms = ms(to.heal_attempt);
    t.release_window_ms = ms(to.release_window);
    c
}

/// Runs the planner's choice and the grid for one scenario. `run` simulates a config over the
/// seeds and returns their aggregate (the caller decides threads and progress display).
pub fn check(
    base: &toml::Value,
    scenario: &Scenario,
    grid: &Grid,
    target: f64,
    mut run: impl FnMut(&SimConfig, &str) -> Aggregate,
) -> Result<ScenarioResult, String> {
    let mut value = base.clone();
    for (path, raw) in &scenario.overrides {
        set_or_insert(&mut value, path, raw)?;
    }
    let cfg = SimConfig::from_value(value)?;
    let conditions = conditions_of(&cfg, target);
    let planned = planner::plan(&conditions).map_err(|e| e.to_string())?;
    let t = conditions.min_threshold;
    let mut simulate = |choice: &Choice, label: &str| -> Point {
        let agg = run(&apply(&cfg, choice), label);
        Point {
            g: choice.privacy.g,
            t: choice.privacy.t,
            fan_in: choice.tree.fan_in,
            leaf_size: choice.leaf_size,
            depth: choice.depth,
            predicted_latency_s: choice.predicted_latency_us as f64 / 1e6,
            predicted_completeness: choice.predicted_completeness,
            latency_s_median: agg.latency_s_median,
            completeness_median: agg.completeness_median,
            violations: agg.violations,
            meets_target: agg.released * 2 > agg.runs && agg.completeness_median >= target,
        }
    };
    let planner_point = simulate(&planned, &format!("{} planner", scenario.name));
    let mut points = Vec::new();
    for &extra in &grid.g_extra {
        for &fan_in in &grid.fan_ins {
            for &leaf_size in &grid.leaf_sizes {
                let g = t.saturating_add(extra);
                let same = g == planned.privacy.g
                    && fan_in == planned.tree.fan_in
                    && leaf_size == planned.leaf_size;
                let choice = conditions.choice(g, t, fan_in, leaf_size);
                // Same feasibility rule as the planner: the tree fits in half the nodes.
                let (groups, _) =
                    planner::tree_size(u64::from(choice.tree.leaf_groups), u64::from(fan_in));
                if !planner::tree_fits(groups, g, conditions.available_nodes) {
                    continue;
                }
                if same {
                    points.push(planner_point.clone());
                    continue;
                }
                let label = format!("{} g={g} f={fan_in} leaf={leaf_size}", scenario.name);
                points.push(simulate(&choice, &label));
            }
        }
    }
    let best = points
        .iter()
        .chain(std::iter::once(&planner_point))
        .filter(|p| p.meets_target && p.latency_s_median.is_some())
        .min_by(|a, b| {
            a.latency_s_median
                .partial_cmp(&b.latency_s_median)
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .cloned();
    let ratio = match (&best, planner_point.latency_s_median) {
        (Some(b), Some(l)) if planner_point.meets_target => b.latency_s_median.map(|bl| l / bl),
        _ => None,
    };
    Ok(ScenarioResult {
        scenario: scenario.clone(),
        conditions,
        target,
        within_10_percent: ratio.is_some_and(|r| r <= 1.10),
        planner: planner_point,
        best,
        ratio,
        grid: points,
    })
}

/// Sets a dotted option, creating it in its table if absent (a latency model switch brings
/// keys the old model did not have, and drops the old model's keys).
fn set_or_insert(value: &mut toml::Value, path: &str, raw: &str) -> Result<(), String> {
    if path == "latency.model" {
        let table = value
            .get_mut("latency")
            .and_then(|v| v.as_table_mut())
            .ok_or("config has no [latency] table")?;
        table.clear();
        table.insert("model".into(), toml::Value::String(raw.into()));
        return Ok(());
    }
    if SimConfig::set_param(value, path, raw).is_ok() {
        return Ok(());
    }
    let (table_path, key) = path.rsplit_once('.').ok_or("not a dotted path")?;
    let mut cur = &mut *value;
    for k in table_path.split('.') {
        cur = cur
            .get_mut(k)
            .ok_or_else(|| format!("no table {table_path}"))?;
    }
    let parsed = raw
        .parse::<f64>()
        .map(toml::Value::Float)
        .unwrap_or_else(|_| toml::Value::String(raw.into()));
    cur.as_table_mut()
        .ok_or_else(|| format!("{table_path} is not a table"))?
        .insert(key.into(), parsed);
    Ok(())
}

/// A plain table of the results.
pub fn table(results: &[ScenarioResult]) -> String {
    let mut out = String::from(
        "| conditions | planner (g, fan-in, leaf, depth) | planner latency / completeness | best grid (g, fan-in, leaf, depth) | best latency / completeness | ratio |\n|---|---|---|---|---|---|\n",
    );
    let shape = |p: &Point| format!("{}, {}, {}, {}", p.g, p.fan_in, p.leaf_size, p.depth);
    let perf = |p: &Point| {
        format!(
            "{} / {:.2}%",
            p.latency_s_median
                .map_or("-".into(), |l| format!("{l:.2} s")),
            p.completeness_median * 100.0
        )
    };
    for r in results {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.scenario.name,
            shape(&r.planner),
            perf(&r.planner),
            r.best.as_ref().map_or("-".into(), shape),
            r.best.as_ref().map_or("-".into(), perf),
            r.ratio.map_or("-".into(), |x| format!("{x:.3}")),
        ));
    }
    out
}
