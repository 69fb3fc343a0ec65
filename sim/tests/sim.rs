//! Seeded simulator tests: determinism, checkers, a small failure sweep and the latency model.

use grove_sim::config::{KillConfig, LatencyModel, PayloadMode, SimConfig};
use grove_sim::run_one;

fn small() -> SimConfig {
    let text = include_str!("../../configs/sim/small.toml");
    // Invariant: the shipped config parses (this is what the test checks first).
    SimConfig::from_toml(text).expect("configs/sim/small.toml parses")
}

#[test]
fn same_seed_same_trace_hash_and_different_seed_different_hash() {
    let cfg = small();
    let a = run_one(&cfg, 11);
    let b = run_one(&cfg, 11);
    let c = run_one(&cfg, 12);
    assert!(a.released && c.released, "{:?} {:?}", a.failure, c.failure);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.events, b.events);
    assert_eq!(a.latency_s, b.latency_s);
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn checkers_pass_on_a_small_full_vector_run() {
    let cfg = small();
    let r = run_one(&cfg, 3);
    assert!(r.released, "{:?}", r.failure);
    assert_eq!(r.checks.sum_ok, Some(true));
    assert!(r.checks.privacy_checked);
    assert!(r.checks.violations.is_empty(), "{:?}", r.checks.violations);
    assert_eq!(r.completeness, 1.0);
    assert_eq!(r.included, r.contributors);
}

#[test]
fn size_only_mode_makes_the_same_decisions_as_full_mode() {
    // The same declared length in both modes; full mode seals shares with Noise, size-only
    // mode with the plain envelope of the same length. Arrival times come from the charged
    // sizes, which agree byte for byte, so the runs see the same events at the same times and
    // reach the same result set. A lost member makes the runs heal and fail over, too.
    // Without the beacon: its plan seed covers the signed request, whose declared vector
    // length differs between the modes (1 element in size-only mode), so each mode would draw
    // its own plan.
    let mut full = small();
    full.protocol.beacon = false;
    full.payload.vector_len = 64;
    full.failures.detection_delay_ms = 100.0;
    full.failures.kill = vec![KillConfig {
        level: 0,
        index: 1,
        position: 2,
        at_ms: Some(120.0),
        after_send: None,
    }];
    let mut size_only = full.clone();
    size_only.payload.mode = PayloadMode::SizeOnly;
    let a = run_one(&full, 5);
    let b = run_one(&size_only, 5);
    assert!(a.ok() && b.ok(), "{:?} {:?}", a.checks, b.checks);
    assert!(a.summary.crashes == 1 && a.summary.unreachable_notices > 0);
    assert_eq!(a.latency_s, b.latency_s);
    assert_eq!(a.events, b.events);
    assert_eq!(a.included, b.included);
    assert_eq!(a.summary.messages, b.summary.messages);
    assert_eq!(a.summary.heals_done, b.summary.heals_done);
    assert_eq!(a.manifests_adopted_s, b.manifests_adopted_s);
    assert_eq!(a.busy_ms_mean, b.busy_ms_mean);
    for (kind, traffic) in &a.by_kind {
        assert_eq!(
            (traffic.messages, traffic.bytes),
            (b.by_kind[kind].messages, b.by_kind[kind].bytes),
            "{kind}"
        );
    }
    // With 160 kB vectors a share spans 3 Noise frames: still charged exactly.
    let mut big = full.clone();
    big.network.nodes = 60;
    big.payload.vector_len = 20_000;
    let mut big_size_only = big.clone();
    big_size_only.payload.mode = PayloadMode::SizeOnly;
    let (a, b) = (run_one(&big, 6), run_one(&big_size_only, 6));
    assert!(a.ok() && b.ok(), "{:?} {:?}", a.checks, b.checks);
    assert_eq!(a.latency_s, b.latency_s);
    assert_eq!(a.summary.bytes, b.summary.bytes);
    assert_eq!(a.events, b.events);
}

#[test]
fn a_small_failure_sweep_stays_correct() {
    let mut cfg = small();
    for (rate, seed) in [(0.5, 21), (2.0, 22), (5.0, 23)] {
        cfg.failures.uniform.rate_percent_per_s = rate;
        let r = run_one(&cfg, seed);
        assert!(r.ok(), "rate {rate}: {:?}", r.checks.violations);
        if r.released {
            assert!(r.completeness > 0.5, "rate {rate}: {}", r.completeness);
        }
    }
}

#[test]
fn a_killed_leaf_member_is_healed() {
    let mut cfg = small();
    cfg.failures.kill = vec![grove_sim::config::KillConfig {
        level: 0,
        index: 0,
        position: 1,
        at_ms: None,
        after_send: Some("partial|partial-confirm".into()),
    }];
    let r = run_one(&cfg, 4);
    assert!(r.ok(), "{:?}", r.checks.violations);
    assert!(r.released, "{:?}", r.failure);
    assert_eq!(r.summary.crashes, 1);
}

#[test]
fn failure_free_latency_fits_the_latency_model() {
    // Fixed 33 ms links, no CPU cost: a result needs at least one hop per level plus the
    // contributor's hop and the release round trip, and should not take hundreds of hops.
    let mut cfg = small();
    cfg.latency = LatencyModel::Fixed { ms: 33.0 };
    cfg.cpu = grove_sim::config::CpuConfig::PerKb {
        crypto_ms_per_message: 0.0,
        crypto_on: grove_sim::config::CryptoOn::Payload,
        compute_us_per_kb: 0.0,
    };
    let r = run_one(&cfg, 6);
    let latency = r.latency_s.expect("a failure-free run releases");
    // The plan of `small` has 15 leaf groups and fan-in 4: depth 3.
    let depth = 3.0;
    assert!(latency > (depth + 1.0) * 0.033, "latency {latency}");
    assert!(latency < 100.0 * 0.033, "latency {latency}");
}

#[test]
fn shipped_configs_parse_and_have_the_documented_shape() {
    let dissec = dissec();
    assert_eq!(dissec.contributors(), 4096);
    assert_eq!(dissec.network.nodes, 7607);
    assert_eq!(dissec.latency, LatencyModel::Fixed { ms: 33.0 });
    assert_eq!(dissec.leaf_groups(), 512);
    assert_eq!((dissec.protocol.g, dissec.protocol.t), (7, 5));
    assert_eq!(dissec.payload.vector_len * 8, 1024 * 1024);
    let scale =
        SimConfig::from_toml(include_str!("../../configs/sim/scale-1m.toml")).expect("parses");
    assert_eq!(scale.contributors(), 1_000_000);
    assert_eq!(scale.payload.mode, PayloadMode::SizeOnly);
}

#[test]
fn sweep_parameters_are_set_by_dotted_path() {
    let mut value: toml::Value =
        toml::from_str(include_str!("../../configs/sim/small.toml")).expect("parses");
    SimConfig::set_param(&mut value, "failures.uniform.rate_percent_per_s", "0.25")
        .expect("known option");
    SimConfig::set_param(&mut value, "network.nodes", "300").expect("known option");
    let cfg = SimConfig::from_value(value.clone()).expect("still valid");
    assert_eq!(cfg.failures.uniform.rate_percent_per_s, 0.25);
    assert_eq!(cfg.network.nodes, 300);
    assert!(SimConfig::set_param(&mut value, "network.nope", "1").is_err());
    assert!(SimConfig::set_param(&mut value, "network.nodes", "many").is_err());
}

#[test]
fn churn_with_rejoin_restores_engines_and_stays_correct() {
    let mut cfg = small();
    cfg.failures.churn.mean_up_s = 10.0;
    cfg.failures.churn.rejoin = true;
    cfg.failures.churn.mean_down_s = 0.3;
    let r = run_one(&cfg, 9);
    assert!(
        r.summary.crashes > 0 && r.summary.rejoins > 0,
        "{:?}",
        r.summary
    );
    assert!(r.ok(), "{:?}", r.checks.violations);
    assert!(r.released, "{:?}", r.failure);
}

fn dissec() -> SimConfig {
    SimConfig::from_toml(include_str!("../../configs/sim/dissec-2023.toml")).expect("parses")
}

/// DISSEC's settings at 0.25 and 1 %/s, seed 1, in CI, as shipped (`dissec-2023.toml`: the
/// daemon's deadline rule, the fitted windows): completeness as DISSEC defines it, included
/// over every contributor, those that died before their shares left included. At 0.25 %/s
/// some contributors die before their last share left, so the check tells DISSEC's metric
/// from the earlier one (included over finished senders), and it fails if `completeness` is
/// computed over finished senders again. The floors are this commit's figures (`INCLUDED`):
/// the check fails when the metric regresses. Lower a figure only with the reason in the
/// commit.
#[test]
fn dissec_settings_count_every_contributor() {
    for (rate, least) in INCLUDED {
        let mut cfg = dissec();
        cfg.failures.uniform.rate_percent_per_s = rate;
        let r = run_one(&cfg, 1);
        assert!(r.ok(), "{:?}", r.checks.violations);
        assert!(r.released, "rate {rate}: {:?}", r.failure);
        assert!(r.summary.crashes > 0);
        assert_eq!(r.contributors, 4096);
        // DISSEC's denominator: every contributor, not only those whose shares all left.
        assert!(r.finished_sending < r.contributors, "rate {rate}: {r:?}");
        assert_eq!(r.completeness, r.included as f64 / 4096.0);
        assert!(r.completeness < r.completeness_of_finished, "rate {rate}");
        assert!(r.included <= r.reached_threshold);
        assert!(
            r.included >= least,
            "rate {rate}: {} contributors included, {least} before",
            r.included
        );
    }
}

/// Contributors of 4,096 that seed 1 includes at `dissec-2023.toml` as shipped, per failure
/// rate (%/s).
/// 0.25 %/s: 4088 since the plan is seeded from a beacon round (4089 with the id's hash): the
/// same failures over another draw of the plan.
const INCLUDED: [(f64, u64); 2] = [(0.25, 4088), (1.0, 3927)];

/// The same at the 1 s detection delay from the last byte, with no size term (the rule the
/// windows were first fitted at): the floors catch a regression of two contributors at
/// 0.25 %/s (contributors sending full vectors before their seeds).
#[test]
fn dissec_settings_at_a_one_second_delay_keep_their_contributors() {
    // 1%/s: 4041 since the Byzantine checks of issue 16 (4042 before; one contributor of
    // 4096, cause not yet traced); 4052 since a contributor alone in its leaf's manifest is
    // left out. 0.25%/s: 4089 since then (4091 before): two contributors that failures left
    // alone in their leaf's manifest, whose shares the parent group would otherwise hold.
    // 0.25%/s: 4088 since the plan is seeded from a beacon round (another draw of the plan).
    for (rate, least) in [(0.25, 4088), (1.0, 4041)] {
        let mut cfg = dissec();
        cfg.failures.detection_delay_ms = 1000.0;
        cfg.failures.oracle_delay_ms = 1000.0;
        cfg.failures.detection_counts_upload = false;
        cfg.failures.detection_min_kb_per_s = 0.0;
        cfg.failures.detection_counts_vector = false;
        cfg.failures.uniform.rate_percent_per_s = rate;
        let r = run_one(&cfg, 1);
        assert!(r.ok(), "{:?}", r.checks.violations);
        assert!(r.released, "{:?}", r.failure);
        assert_eq!(r.completeness, r.included as f64 / 4096.0);
        assert!(
            r.included >= least,
            "rate {rate}: {} contributors included, {least} before",
            r.included
        );
    }
}

/// The DISSEC settings over a few seeds at each of DISSEC's failure rates. Takes minutes in
/// release mode: runs only with `GROVE_SIM_LARGE=1` (seeds from `GROVE_SIM_SEEDS`, default 2).
/// Checks DISSEC's completeness against the ceiling of each run and the goals where
/// DISSEC's cost constants allow them (sim/README.md, "Comparison with DISSEC").
#[test]
fn dissec_settings_over_seeds_when_asked() {
    if std::env::var_os("GROVE_SIM_LARGE").is_none() {
        return;
    }
    let seeds: u64 = std::env::var("GROVE_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let mut cfg = dissec();
    for (rate, least) in [(0.0, 1.0), (0.25, 0.995), (1.0, 0.98)] {
        cfg.failures.uniform.rate_percent_per_s = rate;
        let progress = grove_sim::Progress::default();
        let runs = grove_sim::run_seeds(&cfg, seeds, 2, None, &progress, |_| {});
        let agg = grove_sim::report::Aggregate::of(&runs);
        eprintln!("rate {rate} %/s: {agg:?}");
        assert_eq!(agg.violations, 0, "rate {rate}");
        assert_eq!(agg.released, agg.runs, "rate {rate}");
        assert!(agg.completeness_median >= least, "rate {rate}: {agg:?}");
        for r in &runs {
            assert_eq!(r.completeness, r.included as f64 / r.contributors as f64);
        }
    }
}

#[test]
fn parallel_seeds_match_sequential_runs() {
    let mut cfg = small();
    cfg.seed = 40;
    let progress = grove_sim::Progress::default();
    let parallel = grove_sim::run_seeds(&cfg, 3, 2, None, &progress, |_| {});
    let hashes: Vec<&str> = parallel.iter().map(|r| r.trace_hash.as_str()).collect();
    let sequential: Vec<String> = (40..43).map(|s| run_one(&cfg, s).trace_hash).collect();
    assert_eq!(hashes, sequential);
    assert_eq!(
        parallel.iter().map(|r| r.seed).collect::<Vec<_>>(),
        vec![40, 41, 42]
    );
}

#[test]
fn the_privacy_checker_catches_a_threshold_of_one() {
    // With t = 1 every share would be the contribution itself: requests refuse it, so the
    // checker is shown to count holdings by lowering its own threshold to one share.
    let mut cfg = small();
    cfg.protocol.g = 3;
    cfg.protocol.t = 2;
    cfg.checks.exposure_shares = Some(1);
    let r = run_one(&cfg, 2);
    assert!(!r.ok());
    assert!(r
        .checks
        .violations
        .iter()
        .any(|v| v.contains("holds 1 shares")));
    // And a request with t = 1 is refused: nothing is released.
    let mut cfg = small();
    cfg.protocol.g = 3;
    cfg.protocol.t = 1;
    let r = run_one(&cfg, 2);
    assert!(!r.ok());
    assert!(!r.released);
}

fn work(cfg: &mut SimConfig, contribute_us: f64, absorb_ns: f64) {
    cfg.cpu = grove_sim::config::CpuConfig::Work(grove_sim::config::WorkCosts {
        message_us: 0.0,
        wire_ns_per_byte: 0.0,
        envelope_us: 0.0,
        contribute_us,
        share_ns_per_element: 0.0,
        absorb_ns_per_element: absorb_ns,
        expand_ns_per_element: 0.0,
        persist_us: 0.0,
        persist_ns_per_byte: 0.0,
    });
}

#[test]
fn completeness_counts_every_contributor_and_the_old_figure_stays_beside_it() {
    let mut cfg = small();
    cfg.failures.uniform.rate_percent_per_s = 5.0;
    let r = run_one(&cfg, 31);
    assert!(r.ok() && r.released, "{:?} {:?}", r.checks, r.failure);
    assert!(r.summary.crashes > 0);
    // DISSEC's definition: included over all contributors.
    assert_eq!(r.completeness, r.included as f64 / r.contributors as f64);
    // The earlier figure leaves out contributors that died before their last share left.
    assert!(r.finished_sending < r.contributors, "{r:?}");
    assert!(r.completeness_of_finished >= r.completeness);
    // Nobody includes a contributor fewer than t of whose shares left.
    assert!(r.included <= r.reached_threshold);
    assert_eq!(
        r.ceiling,
        r.reached_threshold as f64 / r.contributors as f64
    );
}

#[test]
fn a_contributor_dying_while_it_shares_sends_nothing() {
    // Sharing takes 3 s of CPU before any share leaves; at 2 %/s about 6% of the contributors
    // die meanwhile. Their engines produced the shares at once, but the shares would only have
    // left after the CPU work: none of them may arrive.
    let mut cfg = small();
    work(&mut cfg, 3_000_000.0, 0.0);
    cfg.protocol.timeouts.share_window_ms = 4000.0;
    cfg.failures.uniform.rate_percent_per_s = 2.0;
    let r = run_one(&cfg, 32);
    assert!(r.ok() && r.released, "{:?} {:?}", r.checks, r.failure);
    assert!(r.ceiling < 0.98, "ceiling {}", r.ceiling);
    assert!(r.included <= r.reached_threshold);
}

#[test]
fn senders_learn_of_a_dead_receiver_by_timeout_only() {
    // A leaf member dies while its contributors' 800 kB shares are on their way to it (each
    // takes 80 ms to leave at 10,000 kB/s). Its senders learn only when their timeout
    // expires, however early the receiver died: with a timeout longer than the run, none of
    // them is ever told, although their messages reached a dead node.
    let mut cfg = small();
    cfg.payload.mode = PayloadMode::SizeOnly;
    cfg.payload.vector_len = 100_000;
    cfg.cpu = grove_sim::config::CpuConfig::PerKb {
        crypto_ms_per_message: 0.0,
        crypto_on: grove_sim::config::CryptoOn::Payload,
        compute_us_per_kb: 0.0,
    };
    cfg.protocol.timeouts.share_window_ms = 3000.0;
    cfg.failures.kill = vec![KillConfig {
        level: 0,
        index: 0,
        position: 1,
        at_ms: Some(100.0),
        after_send: None,
    }];
    let run = |delay: f64| {
        let mut c = cfg.clone();
        c.failures.detection_delay_ms = delay;
        let r = run_one(&c, 33);
        assert!(r.ok() && r.released, "{:?} {:?}", r.checks, r.failure);
        r
    };
    let long = run(60_000.0);
    assert!(long.summary.dropped_at_dead > 0);
    assert_eq!(long.summary.unreachable_notices, 0);
    let short = run(500.0);
    assert!(short.summary.unreachable_notices > 0);
}

#[test]
fn a_slow_receiver_times_out_too() {
    // Every received vector costs 30 ms of CPU: a leaf member with several shares to open
    // acknowledges late, and a sender with a short timeout fails over although it is alive
    // (counted as spurious). The result stays correct; a long timeout never fires.
    let mut cfg = small();
    work(&mut cfg, 0.0, 30_000_000.0 / 16.0);
    cfg.protocol.timeouts.share_window_ms = 3000.0;
    cfg.protocol.timeouts.collect_window_ms = 2000.0;
    cfg.failures.detection_delay_ms = 100.0;
    let short = run_one(&cfg, 34);
    assert!(short.ok() && short.released, "{:?}", short.checks);
    assert!(short.summary.spurious_timeouts > 0);
    assert_eq!(short.summary.crashes, 0);
    cfg.failures.detection_delay_ms = 20_000.0;
    let long = run_one(&cfg, 34);
    assert!(long.ok() && long.released, "{:?}", long.checks);
    assert_eq!(long.summary.unreachable_notices, 0);
}

#[test]
fn the_work_model_charges_a_seed_share_its_expansion_and_persisting_its_fsync() {
    let mut cfg = small();
    cfg.payload.mode = PayloadMode::SizeOnly;
    cfg.payload.vector_len = 100_000;
    // Windows long enough that no leaf misses a share (no heal, whose parts cost work too).
    cfg.protocol.timeouts.share_window_ms = 3000.0;
    cfg.protocol.timeouts.collect_window_ms = 2000.0;
    let mut costs = grove_sim::config::WorkCosts {
        message_us: 0.0,
        wire_ns_per_byte: 0.0,
        envelope_us: 0.0,
        contribute_us: 0.0,
        share_ns_per_element: 0.0,
        absorb_ns_per_element: 0.0,
        expand_ns_per_element: 0.0,
        persist_us: 0.0,
        persist_ns_per_byte: 0.0,
    };
    let busy = |costs: grove_sim::config::WorkCosts| {
        let mut c = cfg.clone();
        c.cpu = grove_sim::config::CpuConfig::Work(costs);
        let r = run_one(&c, 35);
        assert!(r.ok() && r.released, "{:?}", r.checks);
        r.busy_ms_mean
    };
    let free = busy(costs);
    assert_eq!(free, 0.0, "nothing costs anything");
    costs.expand_ns_per_element = 1000.0;
    let expand = busy(costs);
    // 119 contributors, each with t - 1 = 2 seed shares of 100,000 elements at 1 us each.
    // About 238 x 100 ms over some 200 busy nodes.
    assert!(expand > free + 60.0, "{free} ms then {expand} ms");
    costs.expand_ns_per_element = 0.0;
    costs.persist_us = 1000.0;
    let persist = busy(costs);
    assert!(persist > free + 1.0, "{free} ms then {persist} ms");
}

fn with_dp(cfg: &mut SimConfig, honest_sources: u32) {
    cfg.privacy = Some(grove_sim::config::PrivacyConfig {
        epsilon: 1.0,
        delta: 1e-9,
        honest_sources,
        noise_ns_per_element: 0.0,
    });
}

fn kill_leaf_zero(cfg: &mut SimConfig) {
    cfg.failures.kill = (1..=cfg.protocol.g)
        .map(|position| KillConfig {
            level: 0,
            index: 0,
            position,
            at_ms: Some(0.0),
            after_send: None,
        })
        .collect();
}

#[test]
fn a_dp_run_releases_the_sum_of_each_contributors_values_plus_its_own_noise() {
    // The sum checker accepts the release only if it is the sum of the included contributors'
    // persisted vectors and each of those is its values plus exactly its own noise of the
    // request's scale: an engine that shared without noise fails it.
    let mut cfg = small();
    with_dp(&mut cfg, 100);
    let r = run_one(&cfg, 3);
    assert!(r.released, "{:?}", r.failure);
    assert!(r.ok(), "{:?}", r.checks.violations);
    assert_eq!(r.checks.sum_ok, Some(true));
    let dp = r.checks.dp.expect("a DP run reports its collusion bound");
    assert_eq!(dp.noise_sources, r.included);
    assert_eq!(dp.colluders_tolerated, r.included - 100);
    assert!(dp.rho_left <= dp.rho_budget, "{dp:?}");
}

#[test]
fn a_dp_version_summing_fewer_contributors_than_the_honest_sources_releases_nothing() {
    // Leaf 0 killed whole: the root's version sums 107 of 119 contributors (seed 3). With 100
    // honest sources it is released; with 110 the root members release nothing of it, as
    // 110 - 107 of the guarantee's noise sources are missing.
    let mut cfg = small();
    kill_leaf_zero(&mut cfg);
    with_dp(&mut cfg, 100);
    let r = run_one(&cfg, 3);
    assert!(
        r.released && r.ok(),
        "{:?} {:?}",
        r.failure,
        r.checks.violations
    );
    assert!(r.included < 110 && r.included >= 100, "{}", r.included);
    with_dp(&mut cfg, 110);
    let r = run_one(&cfg, 3);
    assert!(r.checks.violations.is_empty(), "{:?}", r.checks.violations);
    assert!(
        !r.released,
        "released a version of {} contributors",
        r.included
    );
    // The commissioner says why: too few noise sources, not k_min (k_min is 1).
    assert!(
        r.failure
            .as_deref()
            .is_some_and(|f| f.starts_with("TooFewNoiseSources")),
        "{:?}",
        r.failure
    );
}

#[test]
fn sampling_the_noise_is_charged_and_late_shares_leave_too_few_noise_sources() {
    // The work model charges each contributor its sampling per declared element before it
    // shares: at 40 ms per element (16 elements) every share misses the 600 ms share window,
    // the root's version sums fewer than the 100 honest sources and nothing is released; the
    // liveness checker accepts that (the root members rightly withhold), and nothing else fires.
    let mut cfg = small();
    work(&mut cfg, 0.0, 0.0);
    with_dp(&mut cfg, 100);
    let r = run_one(&cfg, 3);
    assert!(
        r.released && r.ok(),
        "{:?} {:?}",
        r.failure,
        r.checks.violations
    );
    if let Some(p) = cfg.privacy.as_mut() {
        p.noise_ns_per_element = 40e6;
    }
    let r = run_one(&cfg, 3);
    assert!(
        !r.released,
        "released a version of {} contributors",
        r.included
    );
    assert!(r.checks.violations.is_empty(), "{:?}", r.checks.violations);
    assert!(r.busy_ms_median >= 640.0, "{}", r.busy_ms_median);
}

/// Every shipped config parses: the README and sim/README name them as commands to run, and a
/// config that stops parsing when the model gains a field is found here, not by a reader.
#[test]
fn every_shipped_config_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/sim");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("configs/sim exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        // Not a config: the measured costs and fitted timeouts `compare` lays over one.
        .filter(|p| !p.ends_with("costs-measured.toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    // The DP query at DISSEC's settings is among them, and asks for differential privacy.
    let dp = dir.join("dissec-2023-dp.toml");
    assert!(names.contains(&dp), "{names:?}");
    let text = std::fs::read_to_string(&dp).expect("readable");
    let cfg = SimConfig::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        cfg.privacy.is_some(),
        "dissec-2023-dp.toml has no [privacy]"
    );
    let failures: Vec<String> = names
        .iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(p).expect("readable");
            SimConfig::from_toml(&text)
                .err()
                .map(|e| format!("{}: {e}", p.display()))
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// `costs-measured.toml` is the overlay `grove-sim compare` lays over the configs: its `[cpu]`
/// must be a work model and every `[timeouts.*]` table a full set of timeouts for a strategy
/// the configs name (a typo would silently leave a strategy on its DISSEC-cost timeouts), and
/// so must every `[timeouts-heavy-tail.*]` table.
#[test]
fn the_measured_costs_overlay_parses() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/sim/costs-measured.toml");
    let text = std::fs::read_to_string(path).expect("readable");
    let value: toml::Value = toml::from_str(&text).expect("TOML");
    let cpu: grove_sim::config::CpuConfig = value
        .get("cpu")
        .cloned()
        .expect("a [cpu] table")
        .try_into()
        .expect("a [cpu] table the work model reads");
    assert!(
        matches!(cpu, grove_sim::config::CpuConfig::Work(_)),
        "{cpu:?}"
    );
    let mut seen = 0;
    for (strategy, table) in value
        .get("timeouts")
        .and_then(|t| t.as_table())
        .into_iter()
        .flatten()
    {
        assert!(
            ["grove", "sp", "highcmpl"].contains(&strategy.as_str()),
            "[timeouts.{strategy}]"
        );
        let _: grove_sim::config::TimeoutsConfig = table
            .clone()
            .try_into()
            .unwrap_or_else(|e| panic!("[timeouts.{strategy}]: {e}"));
        seen += 1;
    }
    assert!(seen >= 3, "{seen} timeout tables");
    // The heavy-tail table's own timeouts (chosen on held-out seeds), where a strategy has them.
    for (strategy, table) in value
        .get("timeouts-heavy-tail")
        .and_then(|t| t.as_table())
        .into_iter()
        .flatten()
    {
        assert!(
            ["grove", "sp", "highcmpl"].contains(&strategy.as_str()),
            "[timeouts-heavy-tail.{strategy}]"
        );
        let _: grove_sim::config::TimeoutsConfig = table
            .clone()
            .try_into()
            .unwrap_or_else(|e| panic!("[timeouts-heavy-tail.{strategy}]: {e}"));
    }
}

/// Byzantine aggregators in the simulator (`[byzantine]`, `sim/src/byzantine.rs`): 10% of the
/// small network's aggregators lie on the wire with a random mix of the harness's attacks
/// (votes ahead, manifests of one, withholding, equivocation, root shares off the polynomial).
/// Every seed must either release the exact sum over its reported set or name the faulty root
/// positions, with no privacy or agreement violation, and the engines must have refused lies.
#[test]
fn byzantine_aggregators_are_survived_or_named() {
    let mut cfg = small();
    cfg.byzantine = Some(grove_sim::byzantine::ByzantineConfig {
        fraction: 0.1,
        attacks: grove_sim::byzantine::ATTACKS
            .iter()
            .map(|a| a.to_string())
            .collect(),
    });
    let mut rejected = 0;
    let mut attacks = String::new();
    for seed in 1..=4 {
        let r = run_one(&cfg, seed);
        println!(
            "seed {seed}: {} of {} contributors ({} reached t), latency {:?}, liars {:?}, named {:?}, rejected {}",
            r.included,
            r.contributors,
            r.reached_threshold,
            r.latency_s,
            r.summary.liars,
            r.summary.named_root_positions,
            r.summary.rejected
        );
        assert!(!r.summary.liars.is_empty());
        attacks.push_str(&r.summary.liars.join(" "));
        assert!(r.ok(), "seed {seed}: {:?}", r.checks.violations);
        assert!(
            (r.released && r.checks.sum_ok == Some(true))
                || !r.summary.named_root_positions.is_empty(),
            "seed {seed}: no exact result and no faulty position named: {:?}",
            r.failure
        );
        rejected += r.summary.rejected;
    }
    // The lies reached the engines: some were refused (a lie nobody sees tests nothing).
    assert!(rejected > 0, "no lie was refused; liars {attacks}");
}

/// With `[validity]` every share carries its position's share of the validity messages the
/// engine sends for the declared vector's query (`models::ValidityLoad::of`: a `CLIP NORM`
/// `sum_vector`, whose circuit has nothing per coordinate): the bytes charged on `share`
/// messages grow by exactly that per share, so `src/sim.rs` charges the model the byte test
/// of `src/models.rs` checks against the engine. At 2,001 elements of `[-1000, 1000]` a range
/// per coordinate would charge about 22,000 input elements more per full share.
#[test]
fn validity_proofs_charge_the_norm_circuit_on_every_share() {
    let mut plain = small();
    plain.payload.mode = PayloadMode::SizeOnly;
    plain.payload.vector_len = 2001;
    plain.payload.value_max_abs = 1000.0;
    let mut proven = plain.clone();
    proven.validity = Some(grove_sim::models::ValidityConfig {
        prove_ns_per_element: 0.0,
        verify_ns_per_element: 0.0,
    });
    let a = run_one(&plain, 4);
    let b = run_one(&proven, 4);
    assert!(a.released && b.released, "{:?} {:?}", a.failure, b.failure);
    let (sa, sb) = (&a.by_kind["share"], &b.by_kind["share"]);
    assert_eq!(sa.messages, sb.messages);
    let params = grove_protocol::sharing::SharingParams {
        g: plain.protocol.g,
        t: plain.protocol.t,
    };
    let load = grove_sim::models::ValidityLoad::of(
        2001,
        1000.0,
        None,
        params,
        proven.validity.as_ref().unwrap(),
    )
    .unwrap();
    // The declared circuit: the vector, the norm's bits and projections; no bits per value.
    assert!(load.input < 2001 + 3_000, "input {}", load.input);
    assert_eq!(sb.bytes - sa.bytes, sb.messages * load.share_bytes);
}
