//! Seeded sweep: 2,000 contributors, g = 7, t = 5, 10% of the nodes crash at uniformly random
//! times over the computation. Every run must be exact over its reported set and include at
//! least 99% of the contributors that finished sending their shares.
//!
//! `GROVE_SWEEP_SEEDS` sets the number of seeds (default 20); `GROVE_SWEEP_CONTRIBUTORS` the
//! number of contributors (default 2,000).

use grove_protocol::harness::{Cluster, HarnessConfig, LaunchParams};
use grove_protocol::ids::Micros;
use rand_chacha::rand_core::RngCore;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    seed: u64,
    completeness: f64,
    included: usize,
    finished: usize,
    crashed: usize,
    latency: Micros,
    /// The first bytes of the harness's trace hash, in hex: same seed and code, same trace.
    trace: String,
}

fn run_seed(
    seed: u64,
    contributors: usize,
    crash_fraction: f64,
    window: u64,
    restart_after: Option<u64>,
) -> Run {
    let nodes = contributors + 1;
    let mut c = Cluster::new(HarnessConfig::new(nodes, seed));
    for i in 1..=contributors {
        let values: Vec<f64> = (0..4).map(|_| (c.rng().next_u64() % 1001) as f64).collect();
        c.set_counted_contribution(i, &values);
    }
    // About 16 contributors per leaf group, fan-in 8.
    let leaf_groups = (contributors as u32).div_ceil(16);
    let params = LaunchParams::new(7, 5, leaf_groups, 8, 4);
    let start = c.now;
    // Node 0 is the commissioner and does not crash; any other node may, at any time.
    let crashes = (nodes as f64 * crash_fraction).round() as usize;
    let mut victims = std::collections::BTreeSet::new();
    while victims.len() < crashes {
        victims.insert(1 + (c.rng().next_u64() % contributors as u64) as usize);
    }
    for v in &victims {
        let at = start.plus(c.rng().next_u64() % window);
        c.crash_at(*v, at);
        if let Some(after) = restart_after {
            c.restart_at(*v, at.plus(after));
        }
    }
    let id = c.launch(0, &params);
    c.run(start.plus(120_000_000));
    let o = c
        .outcome(&id)
        .unwrap_or_else(|e| panic!("seed {seed}: result check failed: {e}"));
    assert!(
        c.privacy_violations().is_empty(),
        "seed {seed}: {:?}",
        c.privacy_violations()
    );
    let released = o
        .released
        .as_ref()
        .unwrap_or_else(|| panic!("seed {seed}: no result ({:?})", o.failures));
    Run {
        seed,
        completeness: o.completeness(),
        included: o.included.len(),
        finished: o.finished_sending.len(),
        crashed: victims.len(),
        latency: Micros(released.at.0 - start.0),
        trace: c.trace_hash()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    }
}

#[test]
fn sweep_2000_contributors_10_percent_crashes_g7_t5() {
    let seeds = env_or("GROVE_SWEEP_SEEDS", 20);
    let contributors = env_or("GROVE_SWEEP_CONTRIBUTORS", 2000) as usize;
    // Crash times are uniform over the first 1.8 seconds: a failure-free run releases its
    // result after about 1.5 s here, so every crash lands while the computation is live.
    let window = 1_800_000;
    let mut worst = 1.0f64;
    for seed in 0..seeds {
        let r = run_seed(1000 + seed, contributors, 0.10, window, None);
        eprintln!(
            "seed {:>4}: {} crashed, {}/{} included ({:.2}%), latency {:.2} s, trace {}",
            r.seed,
            r.crashed,
            r.included,
            r.finished,
            100.0 * r.completeness,
            r.latency.as_secs_f64(),
            r.trace
        );
        worst = worst.min(r.completeness);
        assert!(
            r.completeness >= 0.99,
            "seed {}: completeness {:.4} below 99%",
            r.seed,
            r.completeness
        );
    }
    eprintln!(
        "worst completeness over {seeds} seeds: {:.2}%",
        100.0 * worst
    );
}

#[test]
fn sweep_crashed_nodes_restarting_from_their_records_lose_nothing_they_acknowledged() {
    // 10% of the nodes crash at random moments and restart 300 ms later from their persisted
    // records: the engines must resume their roles; results stay exact.
    let seeds = env_or("GROVE_SWEEP_SEEDS", 20).min(5);
    for seed in 0..seeds {
        let r = run_seed(2000 + seed, 1000, 0.10, 1_800_000, Some(300_000));
        eprintln!(
            "restart seed {:>4}: {}/{} included ({:.2}%), latency {:.2} s, trace {}",
            r.seed,
            r.included,
            r.finished,
            100.0 * r.completeness,
            r.latency.as_secs_f64(),
            r.trace
        );
        assert!(
            r.completeness >= 0.99,
            "seed {}: {:.4}",
            r.seed,
            r.completeness
        );
    }
}
