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
        /// The first seed (default: the config's `seed`); fitting uses seeds disjoint from
        /// the reported ones.
        #[arg(long)]
        seed: Option<u64>,
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
        /// The first seed (default: the config's `seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Further options set on every point: `path=value`, comma-separated.
        #[arg(long, value_delimiter = ',')]
        set: Vec<String>,
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
        /// At every point, replace the config's `[protocol.timeouts]` by the planner's rule for
        /// that point's conditions and plan shape (as `planner-timeouts` prints them): windows
        /// chosen without any seed, so none of the reported seeds tuned them.
        #[arg(long)]
        planner_timeouts: bool,
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
    /// The comparison tables with DISSEC: every protocol through the same engine under one
    /// config's models and budget, DISSEC's completeness, medians with 95% intervals, the
    /// physical floor; `dissec` also DISSEC's published medians and, with `--dissec-own`, the
    /// figures of DISSEC's own simulator (`scripts/dissec-own-sim.sh`).
    Compare {
        /// dissec, measured (this machine's costs), heavy-tail (measured costs, log-normal
        /// latency), budget (equal nodes, several (g, t), exposure), detection (the detection
        /// delay swept).
        #[arg(long, default_value = "dissec")]
        table: String,
        #[arg(long, default_value_t = 20)]
        seeds: u64,
        /// The first seed (default: the configs' `seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Where dissec-2023.toml, dissec-sp.toml, dissec-highcmpl.toml and
        /// costs-measured.toml are.
        #[arg(long, default_value = "configs/sim")]
        configs: PathBuf,
        /// The CSV that scripts/dissec-own-sim.sh wrote from DISSEC's own simulator.
        #[arg(long)]
        dissec_own: Option<PathBuf>,
        /// Failure rates (%/s).
        #[arg(long, value_delimiter = ',')]
        rates: Vec<f64>,
        /// Detection delays (ms) of the detection table: the fixed part of the configs'
        /// deadline rule, whose size term stays (default 660, 1000, 2000, 5000, 10000).
        #[arg(long, value_delimiter = ',')]
        delays: Vec<f64>,
        /// Costs of the budget and detection tables: "dissec" (the configs') or "measured".
        #[arg(long, default_value = "dissec")]
        costs: String,
        /// Only the protocols whose name contains one of these (comma-separated).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Also write one CSV row per run here.
        #[arg(long)]
        csv: Option<PathBuf>,
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Print the timeouts the planner's rule gives a config's conditions and plan shape (its
    /// `g`, `t`, fan-in and contributors per leaf), as a `[protocol.timeouts]` table.
    PlannerTimeouts { config: PathBuf },
    /// Run the membership layer alone (one machine per node) and print its costs per node:
    /// traffic at rest, traffic and convergence time of a burst of joins, placement agreement.
    Membership {
        /// Comma-separated network sizes.
        #[arg(long, value_delimiter = ',', default_value = "1000")]
        nodes: Vec<u32>,
        /// New nodes joining in the burst.
        #[arg(long, default_value_t = 20)]
        joins: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Percent of membership messages lost.
        #[arg(long, default_value_t = 1)]
        loss_percent: u32,
    },
    /// Time the engine's work on this machine (one core): sealing and opening a share
    /// envelope, an X25519 public key, a request signature check (these run inside the real
    /// engine in every simulation, so they bound its speed at scale); then, per element of a
    /// vector of `--vector-len`, sharing at `(g, t)`, expanding a seed, a multiply-add, the
    /// authenticated encryption and the codec per byte; and a write and fsync of a file in
    /// `--persist-dir` per batch and per byte. Prints the `[cpu]` table of the work model.
    CryptoCost {
        #[arg(long, default_value_t = 2000)]
        iterations: u32,
        #[arg(long, default_value_t = 7)]
        g: u8,
        #[arg(long, default_value_t = 5)]
        t: u8,
        /// Elements per vector (131,072 of 8 bytes: DISSEC's 1,024 kB model).
        #[arg(long, default_value_t = 131_072)]
        vector_len: u32,
        /// Vector operations are timed this many times (median).
        #[arg(long, default_value_t = 15)]
        vector_iterations: u32,
        /// Where the fsync test writes its file (it is removed afterwards).
        #[arg(long, default_value = ".")]
        persist_dir: PathBuf,
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
                if bar.is_hidden() && ticks.is_multiple_of(50) {
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
        Cmd::Compare {
            table,
            seeds,
            seed,
            configs,
            dissec_own,
            rates,
            delays,
            costs,
            only,
            csv,
            threads: t,
        } => compare(CompareArgs {
            table: grove_sim::compare::TableKind::parse(&table).map_err(anyhow::Error::msg)?,
            seeds,
            seed,
            configs,
            dissec_own,
            rates,
            delays,
            costs,
            only,
            csv,
            threads: threads(t),
        })?,
        Cmd::Membership {
            nodes,
            joins,
            seed,
            loss_percent,
        } => {
            println!("{}", grove_sim::membership::TABLE_HEADER);
            for n in nodes {
                let mut run = grove_sim::membership::MembershipRun::new(n, joins, seed);
                run.loss_percent = loss_percent;
                let r = grove_sim::membership::run(&run);
                println!("{}", grove_sim::membership::table_row(&r));
            }
        }
        Cmd::PlannerTimeouts { config } => {
            let cfg = SimConfig::from_value(load(&config)?).map_err(anyhow::Error::msg)?;
            print!("{}", grove_sim::plancheck::timeouts_table(&cfg));
        }
        Cmd::CryptoCost {
            iterations,
            g,
            t,
            vector_len,
            vector_iterations,
            persist_dir,
        } => {
            crypto_cost(iterations.max(1));
            work_cost(g, t, vector_len, vector_iterations.max(1), &persist_dir)?;
        }
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
            seed,
            json,
            max_wall_s,
            csv,
            threads: t,
        } => {
            let value = load(&config)?;
            let mut cfg = SimConfig::from_value(value).map_err(anyhow::Error::msg)?;
            if let Some(seed) = seed {
                cfg.seed = seed;
            }
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
            seed,
            set,
            csv,
            plot,
            json,
            threads: t,
            planner_timeouts,
        } => {
            if values.is_empty() {
                bail!("--values needs at least one value");
            }
            let mut base = load(&config)?;
            for s in &set {
                let (path, raw) = s
                    .split_once('=')
                    .with_context(|| format!("--set {s}: expected path=value"))?;
                SimConfig::set_param(&mut base, path, raw).map_err(anyhow::Error::msg)?;
            }
            if let Some(seed) = seed {
                SimConfig::set_param(&mut base, "seed", &seed.to_string())
                    .map_err(anyhow::Error::msg)?;
            }
            let mut rows = vec![CSV_HEADER.to_string()];
            let mut points = Vec::new();
            let mut all = Vec::new();
            let mut violations = 0;
            for v in &values {
                let mut value = base.clone();
                SimConfig::set_param(&mut value, &param, v).map_err(anyhow::Error::msg)?;
                let mut cfg = SimConfig::from_value(value).map_err(anyhow::Error::msg)?;
                if planner_timeouts {
                    cfg.protocol.timeouts = grove_sim::plancheck::planner_timeouts(&cfg);
                    if !json {
                        let to = &cfg.protocol.timeouts;
                        println!(
                            "{param} = {v}: the planner's timeouts (ms): share window {:.0}, collect window {:.0}, level span {:.0}, report window {:.0}, manifest timeout {:.0}, heal attempt {:.0}, release window {:.0}",
                            to.share_window_ms,
                            to.collect_window_ms,
                            to.level_span_ms,
                            to.report_window_ms,
                            to.manifest_timeout_ms,
                            to.heal_attempt_ms,
                            to.release_window_ms
                        );
                    }
                }
                let reports = run_with_bar(&cfg, seeds, threads(t), None, &format!("{param}={v}"));
                let agg = Aggregate::of(&reports);
                violations += agg.violations;
                for r in &reports {
                    rows.push(csv_row(&param, v, r));
                }
                if !json {
                    println!(
                        "{param} = {v}: median completeness {} (min {:.3}%; of finished senders {:.3}%; ceiling {:.3}%), median latency {}, released {}/{}, spurious timeouts {}, violations {}",
                        grove_sim::report::percent_with_ci(agg.completeness_median, agg.completeness_ci95),
                        agg.completeness_min * 100.0,
                        agg.completeness_of_finished_median * 100.0,
                        agg.ceiling_median * 100.0,
                        grove_sim::report::seconds_with_ci(agg.latency_s_median, agg.latency_s_ci95),
                        agg.released,
                        agg.runs,
                        agg.spurious_timeouts_median,
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

struct CompareArgs {
    table: grove_sim::compare::TableKind,
    seeds: u64,
    seed: Option<u64>,
    configs: PathBuf,
    dissec_own: Option<PathBuf>,
    rates: Vec<f64>,
    delays: Vec<f64>,
    costs: String,
    only: Vec<String>,
    csv: Option<PathBuf>,
    threads: usize,
}

fn compare(a: CompareArgs) -> Result<()> {
    use grove_sim::compare::{self as cmp, Bases, TableKind};
    use std::collections::BTreeMap;
    let read = |name: &str| -> Result<SimConfig> {
        let mut cfg =
            SimConfig::from_value(load(&a.configs.join(name))?).map_err(anyhow::Error::msg)?;
        if let Some(seed) = a.seed {
            cfg.seed = seed;
        }
        Ok(cfg)
    };
    let costs = load(&a.configs.join("costs-measured.toml"))?;
    let measured: grove_sim::config::CpuConfig = costs
        .get("cpu")
        .cloned()
        .context("costs-measured.toml has no [cpu] table")?
        .try_into()
        .context("costs-measured.toml: [cpu]")?;
    let mut measured_timeouts = BTreeMap::new();
    if let Some(t) = costs.get("timeouts").and_then(|t| t.as_table()) {
        for (strategy, table) in t {
            let timeouts: grove_sim::config::TimeoutsConfig = table
                .clone()
                .try_into()
                .with_context(|| format!("costs-measured.toml: [timeouts.{strategy}]"))?;
            measured_timeouts.insert(strategy.clone(), timeouts);
        }
    }
    // Timeouts chosen for the heavy-tailed latency on held-out seeds, per strategy; a
    // strategy without its own keeps the ones fitted at a fixed 33 ms.
    let mut heavy_tail_timeouts = BTreeMap::new();
    if let Some(t) = costs.get("timeouts-heavy-tail").and_then(|t| t.as_table()) {
        for (strategy, table) in t {
            let timeouts: grove_sim::config::TimeoutsConfig =
                table.clone().try_into().with_context(|| {
                    format!("costs-measured.toml: [timeouts-heavy-tail.{strategy}]")
                })?;
            heavy_tail_timeouts.insert(strategy.clone(), timeouts);
        }
    }
    let bases = Bases {
        grove: read("dissec-2023.toml")?,
        sp: read("dissec-sp.toml")?,
        highcmpl: read("dissec-highcmpl.toml")?,
        measured,
        measured_timeouts,
    };
    let own = match &a.dissec_own {
        Some(path) => Some(
            cmp::OwnSim::parse(
                &std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
            )
            .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    let with_costs = |mut p: cmp::Protocol, measured: bool| {
        if measured {
            p.cfg = bases.measured(&p.cfg);
        }
        p
    };
    let measured_costs = match a.costs.as_str() {
        "dissec" => false,
        "measured" => true,
        other => bail!("--costs {other}: dissec or measured"),
    };
    let mut protocols: Vec<cmp::Protocol> = match a.table {
        TableKind::Dissec => cmp::protocols(&bases),
        TableKind::Measured => cmp::protocols(&bases)
            .into_iter()
            .map(|p| with_costs(p, true))
            .collect(),
        TableKind::HeavyTail => cmp::protocols(&bases)
            .into_iter()
            .map(|p| {
                let mut p = with_costs(p, true);
                p.cfg.latency = cmp::HEAVY_TAIL;
                if let Some(t) = heavy_tail_timeouts.get(&p.cfg.protocol.strategy.to_string()) {
                    p.cfg.protocol.timeouts = *t;
                }
                p
            })
            .collect(),
        TableKind::Budget => cmp::budget_protocols(&bases)
            .into_iter()
            .map(|p| with_costs(p, measured_costs))
            .collect(),
        TableKind::Detection => cmp::protocols(&bases)
            .into_iter()
            .filter(|p| !p.name.contains('+'))
            .map(|p| with_costs(p, measured_costs))
            .collect(),
    };
    if !a.only.is_empty() {
        protocols.retain(|p| a.only.iter().any(|o| p.name.contains(o.as_str())));
    }
    let rates = if a.rates.is_empty() {
        match a.table {
            TableKind::Budget | TableKind::Detection => vec![0.25, 1.0],
            _ => vec![0.0, 0.25, 1.0],
        }
    } else {
        a.rates.clone()
    };
    let delays = if a.delays.is_empty() {
        // From DISSEC's 660 ms to 10 s, around the fixed part of the daemon's deadline (2 s);
        // the configs' size and vector terms (`detection_min_kb_per_s`,
        // `detection_counts_vector`) are added to each.
        vec![660.0, 1000.0, 2000.0, 5000.0, 10_000.0]
    } else {
        a.delays.clone()
    };
    let mut rows = vec![CSV_HEADER.to_string()];
    let mut run = |cfg: &SimConfig, protocol: &str, column: &str| -> Aggregate {
        let label = format!("{protocol} @ {column}");
        let reports = run_with_bar(cfg, a.seeds, a.threads, None, &label);
        let agg = Aggregate::of(&reports);
        eprintln!(
            "{label}: {} / {}, released {}/{}, violations {}",
            grove_sim::report::percent_with_ci(agg.completeness_median, agg.completeness_ci95),
            grove_sim::report::seconds_with_ci(agg.latency_s_median, agg.latency_s_ci95),
            agg.released,
            agg.runs,
            agg.violations
        );
        for r in &reports {
            rows.push(csv_row(
                &protocol.replace(',', ";"),
                &column.replace(',', ";"),
                r,
            ));
        }
        agg
    };
    let mut violations = 0;
    let out = match a.table {
        TableKind::Detection => {
            let mut cells = BTreeMap::new();
            for (ri, &rate) in rates.iter().enumerate() {
                for (pi, p) in protocols.iter().enumerate() {
                    for (di, &d) in delays.iter().enumerate() {
                        let cfg = cmp::with_detection(&cmp::at_rate(&p.cfg, rate), d);
                        let agg = run(&cfg, &p.name, &format!("{rate} %/s, {d} ms"));
                        violations += agg.violations;
                        cells.insert((pi, ri, di), agg);
                    }
                }
            }
            cmp::render_detection(&rates, &delays, &protocols, &cells)
        }
        _ => {
            let mut cells = BTreeMap::new();
            for (ri, &rate) in rates.iter().enumerate() {
                for (pi, p) in protocols.iter().enumerate() {
                    let agg = run(&cmp::at_rate(&p.cfg, rate), &p.name, &format!("{rate} %/s"));
                    violations += agg.violations;
                    cells.insert((pi, ri), agg);
                }
            }
            if a.table == TableKind::Budget {
                cmp::render_budget(&rates, &protocols, &cells, 0.1)
            } else {
                let floor_cfg = protocols
                    .first()
                    .map_or(bases.grove.clone(), |p| p.cfg.clone());
                let floor = cmp::floor(&floor_cfg);
                let title = match a.table {
                    TableKind::Dissec => "DISSEC's settings, models and cost constants",
                    TableKind::Measured => "DISSEC's settings, this machine's measured costs",
                    _ => "DISSEC's settings, measured costs, log-normal latency (median 33 ms, sigma 1)",
                };
                cmp::render_rates(
                    &cmp::RatesTable {
                        title,
                        rates: &rates,
                        protocols: &protocols,
                        floor: &floor,
                        floor_cfg: &floor_cfg,
                        own: own.as_ref(),
                        published: a.table == TableKind::Dissec,
                    },
                    &cells,
                )
            }
        }
    };
    print!("{out}");
    if let Some(path) = &a.csv {
        std::fs::write(path, rows.join("\n") + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if violations > 0 {
        bail!("{violations} run(s) with checker violations");
    }
    Ok(())
}

/// The median of `runs` timings of `f`, in microseconds.
fn median_us(runs: u32, f: &mut dyn FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..runs)
        .map(|_| {
            let start = std::time::Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times the engine's vector work and a write and fsync, and prints the work model's costs.
fn work_cost(g: u8, t: u8, len: u32, runs: u32, persist_dir: &Path) -> Result<()> {
    use grove_protocol::codec;
    use grove_protocol::field::{mul_add_assign_vec, random_vec, FieldVec, Fp};
    use grove_protocol::ids::{ComputationId, Digest, GroupId, Version};
    use grove_protocol::message::{Body, Message, PartialMsg};
    use grove_protocol::seal;
    use grove_protocol::sharing::{share_vector_rotated, CompressedShare, SharingParams};
    use rand_chacha::rand_core::SeedableRng;
    use std::hint::black_box;
    use std::io::Write as _;
    let params = SharingParams::new(g, t).map_err(|e| anyhow::anyhow!("{e}"))?;
    let n = len as usize;
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([5; 32]);
    let secret = random_vec(&mut rng, n);
    let other = random_vec(&mut rng, n);
    // Rotation 1 takes the general path (rotation 0 is the plain compressed sharing).
    let share_us = median_us(runs, &mut || {
        black_box(share_vector_rotated(black_box(&secret), params, [7; 32], 1));
    });
    let expand_us = median_us(runs, &mut || {
        black_box(CompressedShare::Seed([3; 32]).expand(n));
    });
    let mut acc = secret.clone();
    let absorb_us = median_us(runs, &mut || {
        mul_add_assign_vec(black_box(&mut acc), Fp::new(3), black_box(&other));
    });
    // A share envelope of the vector's bytes: X25519 plus ChaCha20-Poly1305 over them.
    let secret_key = grove_protocol::ids::hash_parts("grove-sim/work-cost", &[b"recipient"]);
    let public = seal::x25519_public(&secret_key);
    let big = FieldVec(secret.clone()).to_bytes();
    let small = vec![7u8; 100];
    let seal_big_us = median_us(runs, &mut || {
        black_box(seal::seal(&public, black_box(&big), [9; 32]).ok());
    });
    let seal_small_us = median_us(runs.max(200), &mut || {
        black_box(seal::seal(&public, black_box(&small), [9; 32]).ok());
    });
    let sealed = seal::seal(&public, &big, [9; 32]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let open_big_us = median_us(runs, &mut || {
        black_box(seal::open(&secret_key, black_box(&sealed)).ok());
    });
    let sealed_small = seal::seal(&public, &small, [9; 32]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let open_small_us = median_us(runs.max(200), &mut || {
        black_box(seal::open(&secret_key, black_box(&sealed_small)).ok());
    });
    let aead_ns_per_byte = ((seal_big_us - seal_small_us) + (open_big_us - open_small_us)) / 2.0
        * 1000.0
        / big.len() as f64;
    let envelope_us = (seal_small_us + open_small_us) / 2.0;
    // The codec of a partial sum, per byte, and of a small message.
    let partial = Message {
        computation: ComputationId([1; 32]),
        round: 0,
        body: Body::Partial(PartialMsg {
            child: GroupId { level: 0, index: 1 },
            position: 1,
            version: Version {
                digest: Digest([2; 32]),
                count: 8,
            },
            sum: FieldVec(secret.clone()),
        }),
        to: None,
    };
    let encoded = codec::encode(&partial).map_err(|e| anyhow::anyhow!("{e}"))?;
    let codec_big_us = median_us(runs, &mut || {
        let bytes = codec::encode(black_box(&partial)).unwrap_or_default();
        black_box(codec::decode(&bytes).ok());
    });
    let small_message = Message {
        computation: ComputationId([1; 32]),
        round: 0,
        body: Body::RootQuery,
        to: None,
    };
    let message_us = median_us(runs.max(200), &mut || {
        let bytes = codec::encode(black_box(&small_message)).unwrap_or_default();
        black_box(codec::decode(&bytes).ok());
    });
    let codec_ns_per_byte = (codec_big_us - message_us).max(0.0) * 1000.0 / encoded.len() as f64;
    // A write and fsync of a record batch, as a plain file (the daemon commits a redb
    // transaction, which writes and syncs at least this).
    let path = persist_dir.join(format!("grove-sim-fsync-{}.tmp", std::process::id()));
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut fsync_us = |bytes: &[u8]| -> Result<f64> {
        let mut v = Vec::new();
        for _ in 0..runs.max(20) {
            let start = std::time::Instant::now();
            file.write_all(bytes)?;
            file.sync_data()?;
            v.push(start.elapsed().as_secs_f64() * 1e6);
        }
        v.sort_by(f64::total_cmp);
        Ok(v[v.len() / 2])
    };
    let small_record = vec![1u8; 128];
    let persist_small_us = fsync_us(&small_record)?;
    let persist_big_us = fsync_us(&big)?;
    drop(file);
    let _ = std::fs::remove_file(&path);
    let persist_ns_per_byte =
        (persist_big_us - persist_small_us).max(0.0) * 1000.0 / (big.len() - 128) as f64;
    let per_element = |us: f64| us * 1000.0 / n as f64;
    // Differential privacy: sampling each element's discrete Gaussian noise (`dp::noise`: the
    // fixed-width exact sampler up to about 6.8e5 units, prio's beyond; `dp::noise_prio`:
    // prio's at every scale, what `dp::noise` was), up to 16,384 elements.
    let noise_len = n.min(16_384);
    let noise_ns: Vec<(f64, f64, f64)> = [1.0, 1e3, 1.1e5, 1e6]
        .into_iter()
        .map(|sigma| {
            let spec = grove_protocol::dp::NoiseSpec {
                sigma_milli: vec![
                    (sigma * grove_protocol::dp::SIGMA_DENOMINATOR as f64) as u64 + 1,
                ],
                honest_sources: 1,
            };
            let us = median_us(runs.min(5), &mut || {
                black_box(grove_protocol::dp::noise(&[4; 32], &spec, noise_len));
            });
            let prio_us = median_us(runs.min(5), &mut || {
                black_box(grove_protocol::dp::noise_prio(&[4; 32], &spec, noise_len));
            });
            let per = |us: f64| us * 1000.0 / noise_len as f64;
            (sigma, per(us), per(prio_us))
        })
        .collect();
    let kb = big.len() as f64 / 1024.0;
    println!();
    println!("vector work, {len} elements ({kb:.0} kB), median of {runs}:");
    println!("share at (g, t) = ({g}, {t})          {share_us:>10.1} us  ({:.2} ns per element per share)", per_element(share_us) / f64::from(g));
    println!(
        "expand a seed                    {expand_us:>10.1} us  ({:.2} ns per element)",
        per_element(expand_us)
    );
    println!(
        "multiply-add into a sum          {absorb_us:>10.1} us  ({:.2} ns per element)",
        per_element(absorb_us)
    );
    println!("seal / open the vector           {seal_big_us:>10.1} / {open_big_us:.1} us  ({aead_ns_per_byte:.3} ns per byte over 100 B)");
    println!("encode + decode a partial sum    {codec_big_us:>10.1} us  ({codec_ns_per_byte:.3} ns per byte); a small message {message_us:.2} us");
    println!("write + fsync 128 B / {kb:.0} kB       {persist_small_us:>10.1} / {persist_big_us:.1} us  ({persist_ns_per_byte:.3} ns per byte) in {}", persist_dir.display());
    for (sigma, ns, prio_ns) in &noise_ns {
        println!(
            "DP noise at sigma {sigma:<8}         {ns:>10.1} ns per element (prio's sampler {prio_ns:.1}; over {noise_len})"
        );
    }
    println!();
    println!("[cpu]   # work model, measured by `grove-sim crypto-cost --g {g} --t {t} --vector-len {len}`");
    println!("model = \"work\"");
    println!("message_us = {message_us:.2}");
    println!(
        "wire_ns_per_byte = {:.3}",
        aead_ns_per_byte + codec_ns_per_byte
    );
    println!("envelope_us = {envelope_us:.1}");
    println!("contribute_us = 0.0   # the request's signature check: see above");
    println!(
        "share_ns_per_element = {:.3}",
        per_element(share_us) / f64::from(g)
    );
    println!("absorb_ns_per_element = {:.3}", per_element(absorb_us));
    println!("expand_ns_per_element = {:.3}", per_element(expand_us));
    println!("persist_us = {persist_small_us:.1}");
    println!("persist_ns_per_byte = {persist_ns_per_byte:.3}");
    // The scale of DISSEC's settings with 90% honest sources (the third one timed).
    let dp_ns = noise_ns.get(2).map_or(0.0, |(_, ns, _)| *ns);
    println!("# [privacy] noise_ns_per_element = {dp_ns:.1}   # at sigma 1.1e5 encoded units");
    // Validity proofs (`models::measure_validity`): the circuit the simulator charges for the
    // declared vector (a `sum_vector` under `CLIP NORM`), at the vector's length.
    let vlen = len.clamp(2, 131_072);
    let v = grove_sim::models::measure_validity(g, t, vlen, 1000.0, runs.min(5) as usize)
        .map_err(anyhow::Error::msg)?;
    let typ =
        grove_sim::models::declared_circuit(vlen, 1000.0, None).map_err(anyhow::Error::msg)?;
    let l = typ.lengths();
    println!(
        "[validity]   # per element of the proven input ({} for {vlen} elements, proof {}, verifier {}): `{}`",
        l.input,
        l.proof,
        l.verifier,
        grove_sim::models::declared_query(vlen, 1000.0)
    );
    println!("prove_ns_per_element = {:.1}", v.prove_ns_per_element);
    println!("verify_ns_per_element = {:.1}", v.verify_ns_per_element);
    Ok(())
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
        beacon: None,
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
