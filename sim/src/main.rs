//! `grove-sim`: runs Grove computations with the real protocol engine under network, CPU and
//! failure models. `run` runs one config over several seeds; `sweep` varies one option.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use grove_sim::config::SimConfig;
use grove_sim::report::{csv_row, human, Aggregate, RunReport, CSV_HEADER};
use grove_sim::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Simulates Grove computations with the real protocol engine.
#[derive(Parser, Debug)]
#[command(name = "grove-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a config over several seeds (in parallel on every core).
    Run {
        config: PathBuf,
        /// Number of seeds: `seed`, `seed + 1`, ...
        #[arg(long, default_value_t = 1)]
        seeds: u64,
        /// Print the reports as JSON instead of the human summary.
        #[arg(long)]
        json: bool,
        /// Stop each run after this many wall-clock seconds (counted from its setup) and
        /// report what it reached: how far a big run gets within a budget.
        #[arg(long)]
        max_wall_s: Option<f64>,
        /// Also write one CSV row per seed here (the sweep's columns).
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Worker threads (default: every core).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Run a config for each value of one option, over several seeds each.
    Sweep {
        config: PathBuf,
        /// Dotted path of the option, for example `failures.uniform.rate_percent_per_s`.
        #[arg(long)]
        param: String,
        /// Comma-separated values.
        #[arg(long, value_delimiter = ',')]
        values: Vec<String>,
        #[arg(long, default_value_t = 1)]
        seeds: u64,
        /// Write one CSV row per run here.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Plot median completeness and latency against the option (SVG).
        #[arg(long)]
        plot: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Validate the adaptive planner: for each set of network conditions (the base config with
    /// one change each: latency, bandwidth, failure rate, network size), simulate the planner's
    /// choice and a grid of plan shapes, and compare the planner's median latency with the
    /// best of the grid that reaches the completeness target.
    PlanCheck {
        config: PathBuf,
        /// Completeness target given to the planner and required of the grid.
        #[arg(long, default_value_t = 0.99)]
        target: f64,
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        /// Only these scenarios (comma-separated names; default: all).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// A small grid (g = t, fan-in 4 and 8, leaves of 4 and 8): a quick check.
        #[arg(long)]
        quick: bool,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Time the engine's per-message cryptography on this machine (one core): sealing and
    /// opening a share envelope, an X25519 public key, a request signature check. These run
    /// inside the real engine in every simulation, so they bound its speed at scale.
    CryptoCost {
        #[arg(long, default_value_t = 2000)]
        iterations: u32,
    },
}

fn load(path: &Path) -> Result<toml::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn threads(opt: Option<usize>) -> usize {
    opt.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |p| p.get()))
}

/// Runs seeds with a progress bar (events so far) on standard error.
fn run_with_bar(
    cfg: &SimConfig,
    seeds: u64,
    threads: usize,
    budget: Option<Duration>,
    label: &str,
) -> Vec<RunReport> {
    let progress = Progress::default();
    let bar = ProgressBar::new(seeds);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {prefix} [{elapsed_precise}] seeds {pos}/{len} {msg}",
        )
        // Invariant: the template above is valid.
        .expect("valid progress template"),
    );
    bar.set_prefix(label.to_string());
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let ticker = s.spawn(|| {
            let mut ticks = 0u64;
            while !done.load(Ordering::Relaxed) {
                let e = progress.events.load(Ordering::Relaxed);
                let sim_s = progress.sim_us.load(Ordering::Relaxed) as f64 / 1e6;
                bar.set_message(format!(
                    "{e} events, simulated {sim_s:.2} s, peak {:.0} MiB",
                    grove_sim::report::peak_rss_mib()
                ));
                bar.tick();
                ticks += 1;
                if bar.is_hidden() && ticks % 50 == 0 {
                    // Not a terminal (a log file): a plain line every ten seconds.
                    eprintln!(
                        "[{:.0} s] {label}: seeds {}/{seeds}, {e} events, simulated {sim_s:.2} s, peak {:.0} MiB",
                        bar.elapsed().as_secs_f64(),
                        bar.position(),
                        grove_sim::report::peak_rss_mib()
                    );
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let reports = grove_sim::run_seeds(cfg, seeds, threads, budget, &progress, |_| bar.inc(1));
        done.store(true, Ordering::Relaxed);
        let _ = ticker.join();
        bar.finish_and_clear();
        reports
    })
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::CryptoCost { iterations } => crypto_cost(iterations.max(1)),
        Cmd::PlanCheck {
            config,
            target,
            seeds,
            only,
            quick,
            json,
            threads: t,
        } => {
            use grove_sim::plancheck::{self, Grid};
            let base = load(&config)?;
            let grid = if quick {
                Grid {
                    g_extra: vec![0],
                    fan_ins: vec![4, 8],
                    leaf_sizes: vec![4, 8],
                }
            } else {
                Grid::standard()
            };
            let mut results = Vec::new();
            for scenario in plancheck::default_scenarios() {
                if !only.is_empty() && !only.contains(&scenario.name) {
                    continue;
                }
                let result = plancheck::check(&base, &scenario, &grid, target, |cfg, label| {
                    Aggregate::of(&run_with_bar(cfg, seeds, threads(t), None, label))
                })
                .map_err(anyhow::Error::msg)?;
                if !json {
                    eprintln!(
                        "{}: planner {:?} s, best {:?} s, ratio {:?}",
                        scenario.name,
                        result.planner.latency_s_median,
                        result.best.as_ref().and_then(|b| b.latency_s_median),
                        result.ratio
                    );
                }
                results.push(result);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                print!("{}", plancheck::table(&results));
            }
            let off = results.iter().filter(|r| !r.within_10_percent).count();
            if off > 0 {
                bail!("{off} scenario(s) where the planner is not within 10% of the grid's best");
            }
        }
        Cmd::Run {
            config,
            seeds,
            json,
            max_wall_s,
            csv,
            threads: t,
        } => {
            let value = load(&config)?;
            let cfg = SimConfig::from_value(value).map_err(anyhow::Error::msg)?;
            let name = config.display().to_string();
            let budget = max_wall_s.map(Duration::from_secs_f64);
            let reports = run_with_bar(&cfg, seeds, threads(t), budget, &name);
            if json {
                let out = serde_json::json!({
                    "config": name,
                    "mode": cfg.payload.mode.to_string(),
                    "aggregate": Aggregate::of(&reports),
                    "runs": reports,
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{}", human(&name, &cfg.payload.mode.to_string(), &reports));
            }
            if let Some(path) = csv {
                let mut rows = vec![CSV_HEADER.to_string()];
                rows.extend(reports.iter().map(|r| csv_row("-", "-", r)));
                std::fs::write(&path, rows.join("\n") + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if reports.iter().any(|r| !r.ok()) {
                bail!("checker violations (see the report)");
            }
        }
        Cmd::Sweep {
            config,
            param,
            values,
            seeds,
            csv,
            plot,
            json,
            threads: t,
        } => {
            if values.is_empty() {
                bail!("--values needs at least one value");
            }
            let base = load(&config)?;
            let mut rows = vec![CSV_HEADER.to_string()];
            let mut points = Vec::new();
            let mut all = Vec::new();
            let mut violations = 0;
            for v in &values {
                let mut value = base.clone();
                SimConfig::set_param(&mut value, &param, v).map_err(anyhow::Error::msg)?;
                let cfg = SimConfig::from_value(value).map_err(anyhow::Error::msg)?;
                let reports = run_with_bar(&cfg, seeds, threads(t), None, &format!("{param}={v}"));
                let agg = Aggregate::of(&reports);
                violations += agg.violations;
                for r in &reports {
                    rows.push(csv_row(&param, v, r));
                }
                if !json {
                    println!(
                        "{param} = {v}: median completeness {:.3}% (min {:.3}%), median latency {}, released {}/{}, violations {}",
                        agg.completeness_median * 100.0,
                        agg.completeness_min * 100.0,
                        agg.latency_s_median.map_or("-".into(), |l| format!("{l:.3} s")),
                        agg.released,
                        agg.runs,
                        agg.violations
                    );
                }
                let x: f64 = v.parse().unwrap_or(points.len() as f64);
                points.push((x, agg.completeness_median, agg.latency_s_median));
                all.push(serde_json::json!({"value": v, "aggregate": agg, "runs": reports}));
            }
            if json {
                let out = serde_json::json!({"config": config.display().to_string(), "param": param, "points": all});
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
            if let Some(path) = csv {
                std::fs::write(&path, rows.join("\n") + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if let Some(path) = plot {
                plot_sweep(&path, &param, &points)?;
            }
            if violations > 0 {
                bail!("{violations} run(s) with checker violations");
            }
        }
    }
    Ok(())
}

/// Two panels: median completeness (%) and median latency (s) against the swept option.
fn plot_sweep(path: &Path, param: &str, points: &[(f64, f64, Option<f64>)]) -> Result<()> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (left, right) = root.split_horizontally(500);
    let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    let x_min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let mut x_max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if x_max <= x_min {
        x_max = x_min + 1.0;
    }
    let c_min = points
        .iter()
        .map(|p| p.1 * 100.0)
        .fold(100.0, f64::min)
        .min(95.0);
    let mut chart = ChartBuilder::on(&left)
        .caption("completeness (median)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(x_min..x_max, c_min.floor()..100.5)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc(param)
        .y_desc("%")
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let series: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.1 * 100.0)).collect();
    chart
        .draw_series(LineSeries::new(series.clone(), &BLUE))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .draw_series(series.iter().map(|p| Circle::new(*p, 3, BLUE.filled())))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let lat: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| p.2.map(|l| (p.0, l)))
        .collect();
    let l_max = lat.iter().map(|p| p.1).fold(0.0, f64::max).max(0.001) * 1.15;
    let mut chart = ChartBuilder::on(&right)
        .caption("latency (median)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(x_min..x_max, 0.0..l_max)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc(param)
        .y_desc("s")
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .draw_series(LineSeries::new(lat.clone(), &RED))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .draw_series(lat.iter().map(|p| Circle::new(*p, 3, RED.filled())))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Microseconds per call of the engine's cryptographic steps, measured here.
fn crypto_cost(iterations: u32) {
    use grove_protocol::ids::hash_parts;
    use grove_protocol::seal;
    use std::time::Instant;
    let secret = hash_parts("grove-sim/crypto-cost", &[b"recipient"]);
    let public = seal::x25519_public(&secret);
    // A share payload of a length-1 vector is about 100 bytes.
    let payload = vec![7u8; 100];
    let time = |f: &mut dyn FnMut(u32)| {
        let start = Instant::now();
        for i in 0..iterations {
            f(i);
        }
        start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations)
    };
    let mut sealed = Vec::new();
    let seal_us = time(&mut |i| {
        let eph = hash_parts("grove-sim/crypto-cost", &[&i.to_le_bytes()]);
        sealed = seal::seal(&public, &payload, eph).unwrap_or_default();
    });
    let open_us = time(&mut |_| {
        let _ = std::hint::black_box(seal::open(&secret, &sealed));
    });
    let x25519_us = time(&mut |i| {
        let s = hash_parts("grove-sim/crypto-cost", &[&i.to_le_bytes()]);
        std::hint::black_box(seal::x25519_public(&s));
    });
    let key = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let signed = grove_protocol::request::SignedRequest::sign(sample_request(&key), &key);
    let verify_us = time(&mut |_| {
        let _ = std::hint::black_box(signed.verify_signature());
    });
    println!("seal (share envelope, 100 B)   {seal_us:>8.1} us");
    println!("open (share envelope, 100 B)   {open_us:>8.1} us");
    println!("x25519 public key              {x25519_us:>8.1} us");
    println!("request signature check        {verify_us:>8.1} us");
    let g = 7.0;
    let per_contributor_s = g * (seal_us + open_us) / 1e6;
    println!(
        "per contributor at g = 7 (7 seals, 7 opens): {:.2} ms; a million contributors: {:.0} s of one core",
        per_contributor_s * 1e3,
        per_contributor_s * 1e6
    );
}

fn sample_request(key: &ed25519_dalek::SigningKey) -> grove_protocol::request::Request {
    use grove_protocol::encoding::ContributionSpec;
    use grove_protocol::ids::{ComputationId, Micros, NodeId};
    use grove_protocol::request::*;
    Request {
        id: ComputationId([1; 32]),
        commissioner: CommissionerKey(key.verifying_key().to_bytes()),
        commissioner_node: NodeId([2; 32]),
        directory: None,
        created_at: Micros(1_000_000),
        deadline: Micros(100_000_000),
        query: String::new(),
        contribution: ContributionSpec::counted(0, -1.0, 1.0, 0),
        max_contributors: 1000,
        privacy: PrivacyParams {
            g: 7,
            t: 5,
            k_min: 1,
        },
        tree: TreeParams {
            leaf_groups: 10,
            fan_in: 8,
            backups: 2,
            timeouts: grove_protocol::harness::LaunchParams::default_timeouts(),
        },
    }
}
