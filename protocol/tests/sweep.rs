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
}

fn run_seed(seed: u64, contributors: usize, crash_fraction: f64, window: u64) -> Run {
    let nodes = contributors + 1;
    let mut c = Cluster::new(HarnessConfig::new(nodes, seed));
    for i in 1..=contributors {
        let values: Vec<f64> = (0..4).map(|_| (c.rng().next_u64() % 1001) as f64).collect();
        c.set_contribution(i, values);
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
        let r = run_seed(1000 + seed, contributors, 0.10, window);
        eprintln!(
            "seed {:>4}: {} crashed, {}/{} included ({:.2}%), latency {:.2} s",
            r.seed,
            r.crashed,
            r.included,
            r.finished,
            100.0 * r.completeness,
            r.latency.as_secs_f64()
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
#[ignore]
fn diagnose_seed() {
    let seed = env_or("GROVE_DIAG_SEED", 1000);
    let contributors = 2000usize;
    let nodes = contributors + 1;
    let mut c = Cluster::new(HarnessConfig::new(nodes, seed));
    for i in 1..=contributors {
        let values: Vec<f64> = (0..4).map(|_| (c.rng().next_u64() % 1001) as f64).collect();
        c.set_contribution(i, values);
    }
    let leaf_groups = (contributors as u32).div_ceil(16);
    let params = LaunchParams::new(7, 5, leaf_groups, 8, 4);
    let start = c.now;
    let mut victims = std::collections::BTreeMap::new();
    while victims.len() < 200 {
        let v = 1 + (c.rng().next_u64() % contributors as u64) as usize;
        victims.entry(v).or_insert(0);
    }
    let keys: Vec<usize> = victims.keys().copied().collect();
    for v in keys {
        let at = start.plus(c.rng().next_u64() % 1_800_000);
        victims.insert(v, at.0 - start.0);
        c.crash_at(v, at);
    }
    let id = c.launch(0, &params);
    c.run(start.plus(120_000_000));
    let plan = c.plan(&id).unwrap();
    for g in plan.groups() {
        let dead: Vec<(u8, u64)> = plan
            .members(g)
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                victims
                    .get(&c.index_of(m).unwrap())
                    .map(|t| (i as u8 + 1, *t / 1000))
            })
            .collect();
        if dead.len() >= 2 {
            eprintln!("{g:?} dead (pos, ms): {dead:?}");
        }
    }
    for (t, n, e) in &c.events {
        if let grove_protocol::engine::Event::ManifestAdopted {
            group,
            position,
            version,
            complete,
            ..
        } = e
        {
            if group.level >= 1 {
                eprintln!(
                    "{:>6}ms node {n} {group:?} p{position} count {} complete {complete}",
                    (t.0 - start.0) / 1000,
                    version.count
                );
            }
        }
        if let grove_protocol::engine::Event::HealGaveUp { child, target, .. } = e {
            eprintln!(
                "{:>6}ms node {n} gave up healing {child:?} at {target}",
                (t.0 - start.0) / 1000
            );
        }
    }
}
