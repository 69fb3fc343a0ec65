//! The comparison tables with DISSEC (`grove-sim compare`): every protocol run by the same
//! engine under one config's models and budget, at its own operating point, with DISSEC's
//! completeness, medians and their 95% intervals, the physical floor and the completeness
//! ceiling, DISSEC's published medians and, when given, the figures of DISSEC's own simulator
//! (`scripts/dissec-own-sim.sh`).

use crate::config::{CpuConfig, LatencyModel, SimConfig, StrategyName};
use crate::models::{self, Carried};
use crate::report::{median, median_ci95, percent_with_ci, seconds_with_ci, Aggregate};
use grove_protocol::field::FieldVec;
use grove_protocol::ids::{ComputationId, Digest, GroupId, NodeId, Version};
use grove_protocol::message::{Body, Message, PartialMsg, ReleaseShareMsg, ShareMsg};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A failure rate (%/s), a completeness (%) and a latency (s).
pub type Point = (f64, f64, f64);

/// DISSEC's published medians (protocol design, section 7): completeness (%) and latency (s)
/// per strategy at 0, 0.25 and 1 %/s.
pub const PUBLISHED: [(&str, [Point; 3]); 3] = [
    (
        "S&P",
        [(0.0, 100.0, 4.27), (0.25, 95.31, 4.17), (1.0, 75.87, 4.15)],
    ),
    (
        "HighCmpl",
        [(0.0, 100.0, 4.14), (0.25, 99.22, 7.24), (1.0, 0.0, 30.5)],
    ),
    (
        "HyBlock",
        [(0.0, 100.0, 4.17), (0.25, 96.79, 4.94), (1.0, 85.93, 6.58)],
    ),
];

/// The tables `grove-sim compare` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    /// DISSEC's settings, models and cost constants; every protocol, DISSEC's figures beside.
    Dissec,
    /// The same with this machine's measured costs of the engine's work.
    Measured,
    /// The measured costs with a heavy-tailed (log-normal) latency.
    HeavyTail,
    /// Equal total nodes, Grove at several `(g, t)` beside the baselines, with each
    /// configuration's exposure to random colluders.
    Budget,
    /// The detection rule's fixed part swept from DISSEC's 660 ms to 10 s (the daemon's is 2 s).
    Detection,
}

impl TableKind {
    pub fn parse(s: &str) -> Result<TableKind, String> {
        Ok(match s {
            "dissec" => TableKind::Dissec,
            "measured" => TableKind::Measured,
            "heavy-tail" => TableKind::HeavyTail,
            "budget" => TableKind::Budget,
            "detection" => TableKind::Detection,
            _ => {
                return Err(format!(
                    "unknown table {s} (dissec, measured, heavy-tail, budget, detection)"
                ))
            }
        })
    }
}

/// The configs every table starts from.
#[derive(Clone, Debug)]
pub struct Bases {
    pub grove: SimConfig,
    pub sp: SimConfig,
    pub highcmpl: SimConfig,
    /// This machine's measured costs (`configs/sim/costs-measured.toml`).
    pub measured: CpuConfig,
    /// Timeouts fitted under the measured costs, per strategy (the same file).
    pub measured_timeouts: BTreeMap<String, crate::config::TimeoutsConfig>,
}

impl Bases {
    /// A protocol's config under this machine's measured costs, with the timeouts fitted to
    /// them for its strategy (if the file has them).
    pub fn measured(&self, cfg: &SimConfig) -> SimConfig {
        let mut c = cfg.clone();
        c.cpu = self.measured;
        if let Some(t) = self.measured_timeouts.get(&c.protocol.strategy.to_string()) {
            c.protocol.timeouts = *t;
        }
        c
    }
}

/// One protocol (a row) of a table.
#[derive(Clone, Debug)]
pub struct Protocol {
    pub name: String,
    pub cfg: SimConfig,
}

/// The protocols of the DISSEC tables: Grove, each baseline as DISSEC describes it and with
/// seed compression and send-ahead ("+"), each with its own timeouts.
pub fn protocols(b: &Bases) -> Vec<Protocol> {
    let plus = |cfg: &SimConfig| {
        let mut c = cfg.clone();
        c.protocol.seed_compression = true;
        c.protocol.send_ahead = true;
        c
    };
    vec![
        Protocol {
            name: format!(
                "Grove (g = {}, t = {})",
                b.grove.protocol.g, b.grove.protocol.t
            ),
            cfg: b.grove.clone(),
        },
        Protocol {
            name: "S&P here".into(),
            cfg: b.sp.clone(),
        },
        Protocol {
            name: "S&P + seeds, send-ahead".into(),
            cfg: plus(&b.sp),
        },
        Protocol {
            name: "HighCmpl here".into(),
            cfg: b.highcmpl.clone(),
        },
        Protocol {
            name: "HighCmpl + seeds, send-ahead".into(),
            cfg: plus(&b.highcmpl),
        },
    ]
}

/// The heavy-tailed latency of the third table: log-normal with DISSEC's 33 ms as its median
/// and `sigma = 1` (mean 54 ms, one message in a hundred above 337 ms).
pub const HEAVY_TAIL: LatencyModel = LatencyModel::LogNormal {
    median_ms: 33.0,
    sigma: 1.0,
};

/// Sets the failure rate (%/s) of a config.
pub fn at_rate(cfg: &SimConfig, rate: f64) -> SimConfig {
    let mut c = cfg.clone();
    c.failures.uniform.rate_percent_per_s = rate;
    c
}

/// Sets the detection delay of every mechanism (acknowledgement timeouts and the oracle).
pub fn with_detection(cfg: &SimConfig, delay_ms: f64) -> SimConfig {
    let mut c = cfg.clone();
    c.failures.detection_delay_ms = delay_ms;
    c.failures.oracle_delay_ms = delay_ms;
    c
}

/// Groups of the plan: leaves, then each level up to the root.
pub fn groups(cfg: &SimConfig) -> u64 {
    tree_shape(cfg).0
}

/// Levels of the plan (1 for a single leaf group).
pub fn depth(cfg: &SimConfig) -> u32 {
    tree_shape(cfg).1
}

fn tree_shape(cfg: &SimConfig) -> (u64, u32) {
    grove_protocol::planner::tree_size(
        u64::from(cfg.leaf_groups()),
        u64::from(cfg.protocol.fan_in.max(2)),
    )
}

/// `P[Bin(n, p) >= k]`.
fn binomial_tail(n: u32, p: f64, k: u32) -> f64 {
    let mut total = 0.0;
    for i in k..=n {
        let mut coef = 1.0f64;
        for j in 0..i {
            coef = coef * f64::from(n - j) / f64::from(j + 1);
        }
        total += coef * p.powi(i as i32) * (1.0 - p).powi((n - i) as i32);
    }
    total
}

/// The probability that colluders, each node independently with probability `fraction`, hold
/// `t` of the `g` positions of at least one of the plan's groups (and so learn a contributor's
/// value at a leaf, or a subtree's sum above): `1 - (1 - P[Bin(g, f) >= t])^groups`. It counts
/// the listed members; a backup that takes a position over after a failure adds to it.
pub fn exposure(g: u8, t: u8, groups: u64, fraction: f64) -> f64 {
    let group = binomial_tail(u32::from(g), fraction, u32::from(t));
    1.0 - (1.0 - group).powf(groups as f64)
}

/// The physical floor: the critical path of the fastest plan at a config's settings (its
/// threshold `t` with `g = t`, seed-compressed shares, its depth and fan-in, latency, bandwidth
/// and costs) with no agreement, no persistence and no waiting: the request's hops, the
/// contributor's sharing and sealing, one full vector uploaded (its seeds first) and its
/// latency; a leaf position opening its contributors' shares; at each level above, a partial
/// sum uploaded, its latency and the parent opening `fan_in` of them; the root's release share
/// to the commissioner, which opens `t` and reconstructs. That is the balanced plan (every
/// leaf with the average number of contributors, every child's partial arriving at once).
///
/// `bound_s` is below it for any plan of these settings: a parent can open its children's
/// partials while it waits for the slowest, so a level costs at least one partial's upload,
/// latency and opening after the slowest child (and the largest leaf holds at least the
/// average number of contributors). A run can beat the floor (a tree whose leaves differ in
/// size lets parents open the first partials early), never the bound.
#[derive(Clone, Debug, Serialize)]
pub struct Floor {
    pub request_s: f64,
    pub contributor_s: f64,
    pub leaf_s: f64,
    pub per_level_s: f64,
    pub levels: u32,
    pub release_s: f64,
    pub total_s: f64,
    pub bound_s: f64,
}

/// One latency: the fixed value or the model's median.
fn typical_latency_s(model: &LatencyModel) -> f64 {
    let ms = match *model {
        LatencyModel::Fixed { ms } => ms,
        // The median of Rayleigh(sigma) is sigma * sqrt(2 ln 2).
        LatencyModel::Rayleigh { mean_ms } => {
            mean_ms / (std::f64::consts::PI / 2.0).sqrt() * (2.0 * std::f64::consts::LN_2).sqrt()
        }
        LatencyModel::RayleighMedian { median_ms, .. } => median_ms,
        LatencyModel::LogNormal { median_ms, .. } => median_ms,
    };
    ms / 1000.0
}

pub fn floor(cfg: &SimConfig) -> Floor {
    let t = cfg.protocol.t;
    let n = u64::from(cfg.payload.vector_len);
    let declared = n * 8;
    let lat = typical_latency_s(&cfg.latency);
    let upload = |bytes: u64| bytes as f64 / (cfg.bandwidth.upload_kb_per_s * 1024.0);
    let down = |bytes: u64| {
        if cfg.bandwidth.charge_downlink {
            bytes as f64 / (cfg.bandwidth.download_kb_per_s * 1024.0)
        } else {
            0.0
        }
    };
    let us = |v: u64| v as f64 / 1e6;
    let id = ComputationId([0; 32]);
    let msg = |body: Body| Message {
        computation: id,
        round: 0,
        body,
        to: None,
    };
    let share = msg(Body::Share(ShareMsg {
        group: GroupId { level: 0, index: 0 },
        position: 1,
        contributor: NodeId([0; 32]),
        sealed: Vec::new(),
    }));
    let version = Version {
        digest: Digest([0; 32]),
        count: 1,
    };
    let partial = msg(Body::Partial(PartialMsg {
        child: GroupId { level: 0, index: 0 },
        position: 1,
        version,
        sum: FieldVec(vec![]),
    }));
    let release = msg(Body::ReleaseShare(ReleaseShareMsg {
        position: 1,
        version: version.digest,
        released: Vec::new(),
        share: FieldVec(vec![]),
    }));
    let full = Carried {
        bytes: declared,
        full_vectors: 1,
        elements: n,
    };
    let seed = Carried {
        bytes: 128,
        full_vectors: 0,
        elements: n,
    };
    let cpu = &cfg.cpu;
    let hops =
        grove_protocol::planner::gossip_hops(u64::from(cfg.network.nodes), cfg.gossip.fanout);
    let request_s = f64::from(hops) * lat;
    // Sharing into t shares, sealing t - 1 seeds and one full vector, uploading the vector.
    let contributor_s = us(models::contribute_us(t, n, cpu, cfg.privacy.as_ref()))
        + f64::from(t - 1) * us(models::send_us(&share, &seed, cpu))
        + us(models::send_us(&share, &full, cpu))
        + upload(declared)
        + lat;
    // A leaf position gets a full vector from one in t of its contributors (the rotation
    // spreads them) and a seed from the others, all at once; it opens them one after the other.
    let leaf_size = f64::from(cfg.protocol.contributors_per_leaf);
    let per_share = (f64::from(t - 1) * us(models::receive_us(&share, &seed, cpu))
        + us(models::receive_us(&share, &full, cpu)))
        / f64::from(t);
    let leaf_s = down(declared) + leaf_size * per_share;
    let levels = depth(cfg) - 1;
    let fan_in = f64::from(cfg.protocol.fan_in);
    let per_level_s = us(models::send_us(&partial, &full, cpu))
        + upload(declared)
        + lat
        + down(declared)
        + fan_in * us(models::receive_us(&partial, &full, cpu));
    let release_s = us(models::send_us(&release, &full, cpu))
        + upload(declared)
        + lat
        + f64::from(t) * (down(declared) + us(models::receive_us(&release, &full, cpu)));
    let pipelined_level =
        per_level_s - (fan_in - 1.0) * us(models::receive_us(&partial, &full, cpu));
    let pipelined_release = release_s
        - f64::from(t - 1) * (down(declared) + us(models::receive_us(&release, &full, cpu)));
    Floor {
        request_s,
        contributor_s,
        leaf_s,
        per_level_s,
        levels,
        release_s,
        total_s: request_s + contributor_s + leaf_s + f64::from(levels) * per_level_s + release_s,
        bound_s: request_s
            + contributor_s
            + leaf_s
            + f64::from(levels) * pipelined_level
            + pipelined_release,
    }
}

/// The completeness no protocol with threshold `t` can exceed at a failure rate: a contributor
/// whose `t`-th share has not left when it dies cannot be included. With the floor's timing
/// (the request, the sharing, `t - 1` seeds and one full vector), a node dies in that time with
/// probability `time / W`, `W = 100 / rate` s (DISSEC's uniform failures).
pub fn ceiling(cfg: &SimConfig, rate: f64) -> f64 {
    if rate <= 0.0 {
        return 1.0;
    }
    let f = floor(cfg);
    let window = 100.0 / rate;
    1.0 - (f.request_s + f.contributor_s) / window
}

/// Figures of DISSEC's own simulator, read from the CSV that `scripts/dissec-own-sim.sh`
/// writes: `strategy,failure_rate,seed,status,completeness,latency` (DISSEC's failure rate is
/// its window `W` in seconds, 0 for none; its completeness is in %).
#[derive(Clone, Debug, Default)]
pub struct OwnSim {
    /// (strategy, %/s in thousandths) -> (completeness fractions, latencies of the runs that
    /// succeeded).
    pub runs: BTreeMap<(String, u64), (Vec<f64>, Vec<f64>)>,
}

/// DISSEC's strategy names in its simulator, and ours.
pub const OWN_STRATEGIES: [(&str, &str); 3] = [
    ("ONESHOT", "S&P"),
    ("EAGER", "HighCmpl"),
    ("HYBRID_BLOCK", "HyBlock"),
];

fn rate_key(rate: f64) -> u64 {
    (rate * 1000.0).round() as u64
}

impl OwnSim {
    pub fn parse(text: &str) -> Result<OwnSim, String> {
        let mut own = OwnSim::default();
        for (i, line) in text.lines().enumerate().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').collect();
            if f.len() < 6 {
                return Err(format!("line {}: expected 6 fields: {line}", i + 1));
            }
            let name = OWN_STRATEGIES
                .iter()
                .find(|(own, _)| *own == f[0])
                .map_or(f[0], |(_, ours)| *ours);
            let window: f64 = f[1].parse().map_err(|e| format!("line {}: {e}", i + 1))?;
            let rate = if window > 0.0 { 100.0 / window } else { 0.0 };
            let completeness: f64 = f[4].parse().map_err(|e| format!("line {}: {e}", i + 1))?;
            let latency: f64 = f[5].parse().map_err(|e| format!("line {}: {e}", i + 1))?;
            let e = own
                .runs
                .entry((name.to_string(), rate_key(rate)))
                .or_default();
            e.0.push(completeness / 100.0);
            if f[3] == "Success" {
                e.1.push(latency);
            }
        }
        Ok(own)
    }

    fn cell(&self, name: &str, rate: f64) -> Option<(usize, Vec<f64>, Vec<f64>)> {
        let (c, l) = self.runs.get(&(name.to_string(), rate_key(rate)))?;
        Some((c.len(), c.clone(), l.clone()))
    }
}

/// One measured cell of a table.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    pub protocol: String,
    pub column: String,
    pub aggregate: Aggregate,
}

/// What a DISSEC-style table shows besides the measured cells.
pub struct RatesTable<'a> {
    pub title: &'a str,
    pub rates: &'a [f64],
    pub protocols: &'a [Protocol],
    pub floor: &'a Floor,
    /// The floor's config, for the completeness ceiling at each rate.
    pub floor_cfg: &'a SimConfig,
    pub own: Option<&'a OwnSim>,
    /// Whether to show DISSEC's published medians.
    pub published: bool,
}

/// Markdown for the DISSEC-style tables: one block of rows per failure rate.
pub fn render_rates(t: &RatesTable, cells: &BTreeMap<(usize, usize), Aggregate>) -> String {
    let (title, rates, protocols, floor, own, published) =
        (t.title, t.rates, t.protocols, t.floor, t.own, t.published);
    let ceiling_of = |rate| ceiling(t.floor_cfg, rate);
    let mut s = String::new();
    let _ = writeln!(s, "{title}\n");
    let _ = writeln!(
        s,
        "| failure %/s | protocol | included / all contributors | included / finished senders | latency | latency / floor | released |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for (ri, &rate) in rates.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {rate} | physical floor of latency, ceiling of completeness (balanced plan, t = {}, no agreement) | ceiling {:.3}% | | floor {:.3} s | 1.00 | |",
            protocols.first().map_or(0, |p| p.cfg.protocol.t),
            ceiling_of(rate) * 100.0,
            floor.total_s
        );
        let _ = writeln!(
            s,
            "| {rate} | lower bound (any plan, parents open partials while they wait) | | | {:.3} s | {:.2} | |",
            floor.bound_s,
            floor.bound_s / floor.total_s
        );
        for (pi, p) in protocols.iter().enumerate() {
            let Some(a) = cells.get(&(pi, ri)) else {
                continue;
            };
            let ratio = a
                .latency_s_median
                .map_or("-".into(), |l| format!("{:.2}", l / floor.total_s));
            let _ = writeln!(
                s,
                "| {rate} | {} | {} | {:.3}% | {} | {ratio} | {}/{} |",
                p.name,
                percent_with_ci(a.completeness_median, a.completeness_ci95),
                a.completeness_of_finished_median * 100.0,
                seconds_with_ci(a.latency_s_median, a.latency_s_ci95),
                a.released,
                a.runs
            );
        }
        if published {
            for (name, points) in PUBLISHED {
                if let Some(&(_, c, l)) = points.iter().find(|(r, _, _)| *r == rate) {
                    let _ = writeln!(
                        s,
                        "| {rate} | DISSEC {name}, published | {c:.2}% | | {l:.2} s | {:.2} | |",
                        l / floor.total_s
                    );
                }
                if let Some((runs, c, l)) = own.and_then(|o| o.cell(name, rate)) {
                    let lat = median(&l);
                    let _ = writeln!(
                        s,
                        "| {rate} | DISSEC {name}, DISSEC's simulator here | {} | | {} | {} | {}/{runs} |",
                        percent_with_ci(median(&c).unwrap_or(0.0), median_ci95(&c)),
                        seconds_with_ci(lat, median_ci95(&l)),
                        lat.map_or("-".into(), |l| format!("{:.2}", l / floor.total_s)),
                        l.len()
                    );
                }
            }
        }
    }
    s
}

/// Markdown for the equal-budget table: one row per configuration and failure rate.
pub fn render_budget(
    rates: &[f64],
    protocols: &[Protocol],
    cells: &BTreeMap<(usize, usize), Aggregate>,
    colluders: f64,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| configuration | nodes | groups x g = positions | listed backups per position | exposure at {:.0}% colluders | failure %/s | included / all contributors | latency | released |",
        colluders * 100.0
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for (pi, p) in protocols.iter().enumerate() {
        let c = &p.cfg;
        let groups = groups(c);
        for (ri, &rate) in rates.iter().enumerate() {
            let Some(a) = cells.get(&(pi, ri)) else {
                continue;
            };
            let _ = writeln!(
                s,
                "| {} | {} | {groups} x {} = {} | {} | {:.3}% | {rate} | {} | {} | {}/{} |",
                p.name,
                c.network.nodes,
                c.protocol.g,
                groups * u64::from(c.protocol.g),
                c.protocol.backups,
                exposure(c.protocol.g, c.protocol.t, groups, colluders) * 100.0,
                percent_with_ci(a.completeness_median, a.completeness_ci95),
                seconds_with_ci(a.latency_s_median, a.latency_s_ci95),
                a.released,
                a.runs
            );
        }
    }
    s
}

/// Markdown for the detection-delay sweep: one row per protocol and delay, per failure rate.
pub fn render_detection(
    rates: &[f64],
    delays_ms: &[f64],
    protocols: &[Protocol],
    cells: &BTreeMap<(usize, usize, usize), Aggregate>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| failure %/s | protocol | detection delay | included / all contributors | latency | timeouts of live receivers (median) | released |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for (ri, &rate) in rates.iter().enumerate() {
        for (pi, p) in protocols.iter().enumerate() {
            for (di, &d) in delays_ms.iter().enumerate() {
                let Some(a) = cells.get(&(pi, ri, di)) else {
                    continue;
                };
                let _ = writeln!(
                    s,
                    "| {rate} | {} | {} ms | {} | {} | {} | {}/{} |",
                    p.name,
                    d,
                    percent_with_ci(a.completeness_median, a.completeness_ci95),
                    seconds_with_ci(a.latency_s_median, a.latency_s_ci95),
                    a.spurious_timeouts_median,
                    a.released,
                    a.runs
                );
            }
        }
    }
    s
}

/// The configurations of the equal-budget table: Grove at several `(g, t)` on the same nodes,
/// and the two baselines.
pub fn budget_protocols(b: &Bases) -> Vec<Protocol> {
    let mut out = Vec::new();
    for (g, t) in [(5u8, 4u8), (6, 5), (7, 5), (7, 6), (5, 5)] {
        let mut cfg = b.grove.clone();
        cfg.protocol.g = g;
        cfg.protocol.t = t;
        out.push(Protocol {
            name: format!("Grove g = {g}, t = {t}"),
            cfg,
        });
    }
    out.push(Protocol {
        name: "S&P here (5-of-5)".into(),
        cfg: b.sp.clone(),
    });
    out.push(Protocol {
        name: "HighCmpl here (5-of-5)".into(),
        cfg: b.highcmpl.clone(),
    });
    out
}

/// Whether a protocol is one of DISSEC's (for the detection table's choice of rows).
pub fn is_baseline(p: &Protocol) -> bool {
    p.cfg.protocol.strategy != StrategyName::Grove
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_follows_the_binomial_tail() {
        // 5-of-5: all five members must collude.
        assert!((exposure(5, 5, 1, 0.1) - 1e-5).abs() < 1e-12);
        // 5-of-7: any of C(7,5) = 21 coalitions of 5, plus 6 and 7.
        let g75 = 21.0 * 1e-5 * 0.81 + 7.0 * 1e-6 * 0.9 + 1e-7;
        assert!((exposure(7, 5, 1, 0.1) - g75).abs() < 1e-12);
        let tree = 1.0 - (1.0 - g75).powi(585);
        assert!((exposure(7, 5, 585, 0.1) - tree).abs() < 1e-9);
    }

    #[test]
    fn the_floor_at_dissecs_costs_adds_up() {
        let cfg = SimConfig::from_toml(include_str!("../../configs/sim/dissec-2023.toml"))
            .expect("parses");
        let f = floor(&cfg);
        // Two hops of 33 ms; sharing at t = 5: 20 ms + 5 x 2 x 50 us per kB of 1,024 kB; one
        // 1,024 kB upload at 6,000 kB/s and 33 ms; 8 shares at 51.2 ms; 3 levels of an upload,
        // 33 ms and 8 partials; the release: an upload, 33 ms and 5 shares.
        let up = 1024.0 / 6000.0;
        assert!((f.request_s - 0.066).abs() < 1e-9);
        assert!((f.contributor_s - (0.020 + 0.512 + up + 0.033)).abs() < 1e-4);
        assert!((f.leaf_s - 8.0 * 0.0512).abs() < 1e-4);
        assert_eq!(f.levels, 3);
        assert!((f.per_level_s - (up + 0.033 + 8.0 * 0.0512)).abs() < 1e-4);
        assert!((f.release_s - (up + 0.033 + 5.0 * 0.0512)).abs() < 1e-4);
        let bound = f.request_s + f.contributor_s + f.leaf_s + 4.0 * (up + 0.033 + 0.0512);
        assert!((f.bound_s - bound).abs() < 1e-4, "{} {bound}", f.bound_s);
        assert!(f.bound_s < f.total_s);
    }
}
