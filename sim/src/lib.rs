//! # grove-sim
//!
//! A discrete-event simulator that runs the real Grove engine (`grove_protocol::engine`) at
//! every node, with network, CPU and failure models set in a TOML config. See `sim.rs` for the
//! life of a message and `models.rs` for the cost models.
//!
//! Determinism: every random draw of a run comes from one ChaCha20 stream seeded by the run's
//! seed, events are ordered by `(time, sequence)`, and no output depends on the iteration order
//! of a hash map; the same seed and config give the same trace hash.
//!
//! Payload modes: in `full` mode the engines carry vectors of the declared length and seal
//! shares with Noise; in `size-only` mode they carry vectors of length 1 and seal with the
//! plain envelope of Noise's exact length, while the links and CPUs are charged, byte for byte,
//! as if the declared length were carried. No protocol decision changes between the two: the engine
//! never looks at vector contents to decide anything (only at which messages arrived, and
//! when), and the arrival times are computed from the charged sizes, which are the same in
//! both modes. Only the values of the sums differ, which is why the sum checker still works
//! in size-only mode on the length-1 vectors.

pub mod byzantine;
pub mod compare;
pub mod config;
pub mod membership;
pub mod models;
pub mod plancheck;
pub mod queue;
pub mod report;
pub mod sim;

use config::SimConfig;
use report::RunReport;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Runs one seed.
pub fn run_one(cfg: &SimConfig, seed: u64) -> RunReport {
    run_one_with_progress(cfg, seed, None, |_, _| {})
}

/// Runs one seed, calling `progress(events, simulated time)` every 65,536 events, and stops
/// once `wall_budget` (counted from the start of the setup) is spent.
pub fn run_one_with_progress(
    cfg: &SimConfig,
    seed: u64,
    wall_budget: Option<Duration>,
    progress: impl FnMut(u64, grove_protocol::ids::Micros),
) -> RunReport {
    let start = Instant::now();
    match sim::Simulator::new(cfg, seed) {
        Ok(s) => {
            let setup_s = start.elapsed().as_secs_f64();
            let mut report = s.run(progress, wall_budget.map(|b| start + b));
            report.setup_s = setup_s;
            report
        }
        Err(e) => RunReport::setup_failure(seed, e),
    }
}

/// Runs one seed on a given network: node ids, contributions and computation id from outside
/// (see [`sim::Fixture`]); the report's `outcome` holds the released values and the contributors
/// they cover.
pub fn run_fixture(cfg: &SimConfig, seed: u64, fixture: &sim::Fixture) -> RunReport {
    match sim::Simulator::with_fixture(cfg, seed, fixture) {
        Ok(s) => s.run(|_, _| {}, None),
        Err(e) => RunReport::setup_failure(seed, e),
    }
}

/// Live counters of running simulations, for progress bars.
#[derive(Default)]
pub struct Progress {
    /// Events processed by all runs so far.
    pub events: AtomicU64,
    /// The latest simulated time any run reached, in microseconds after the launch.
    pub sim_us: AtomicU64,
}

/// Runs seeds `cfg.seed .. cfg.seed + count` on up to `threads` threads; reports come back in
/// seed order whatever the threads' timing.
pub fn run_seeds(
    cfg: &SimConfig,
    count: u64,
    threads: usize,
    wall_budget: Option<Duration>,
    progress: &Progress,
    mut on_done: impl FnMut(&RunReport) + Send,
) -> Vec<RunReport> {
    let events = &progress.events;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<RunReport>>> = Mutex::new(vec![None; count as usize]);
    let on_done = Mutex::new(&mut on_done);
    let threads = threads.clamp(1, count.max(1) as usize);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= count as usize {
                    break;
                }
                let mut last = 0;
                let report =
                    run_one_with_progress(cfg, cfg.seed + k as u64, wall_budget, |e, now| {
                        events.fetch_add(e - last, Ordering::Relaxed);
                        last = e;
                        let sim_us = now.0.saturating_sub(sim::LAUNCH_AT.0);
                        progress.sim_us.fetch_max(sim_us, Ordering::Relaxed);
                    });
                events.fetch_add(report.events.saturating_sub(last), Ordering::Relaxed);
                // A poisoned lock only means another run panicked; the data is still sound.
                (on_done.lock().unwrap_or_else(|e| e.into_inner()))(&report);
                results.lock().unwrap_or_else(|e| e.into_inner())[k] = Some(report);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
}
