//! The planner check in small: the planner's choice against a small grid, on the small config.

use grove_sim::plancheck::{self, Grid, Scenario};
use grove_sim::report::Aggregate;

#[test]
fn the_planner_is_within_ten_percent_of_a_small_grid() {
    let base: toml::Value =
        toml::from_str(include_str!("../../configs/sim/small.toml")).expect("parses");
    let grid = Grid {
        g_extra: vec![0, 1],
        fan_ins: vec![4, 8],
        leaf_sizes: vec![4, 8],
    };
    let mut runs = 0;
    let result = plancheck::check(
        &base,
        &Scenario::new("small", &[]),
        &grid,
        0.99,
        |cfg, _| {
            runs += 1;
            Aggregate::of(&[grove_sim::run_one(cfg, cfg.seed)])
        },
    )
    .expect("the check runs");
    // The planner's own shape and every grid shape that fits were simulated.
    assert!(runs >= 2, "{runs} runs");
    assert!(!result.grid.is_empty());
    assert_eq!(result.planner.violations, 0);
    assert!(result.grid.iter().all(|p| p.violations == 0));
    assert!(result.planner.meets_target, "{:?}", result.planner);
    let ratio = result.ratio.expect("a ratio");
    assert!(
        result.within_10_percent,
        "planner {:?} s against the grid's best {:?}: ratio {ratio:.3}",
        result.planner.latency_s_median,
        result.best.as_ref().and_then(|b| b.latency_s_median)
    );
}

#[test]
fn conditions_follow_the_config() {
    let mut cfg =
        grove_sim::config::SimConfig::from_toml(include_str!("../../configs/sim/dissec-sp.toml"))
            .expect("parses");
    cfg.failures.uniform.rate_percent_per_s = 1.0;
    let c = plancheck::conditions_of(&cfg, 0.95);
    assert_eq!(c.expected_contributors, 4096);
    assert_eq!(c.min_threshold, 5);
    assert!((c.failure_per_s - 0.01).abs() < 1e-12);
    // The config charges only uplinks: parallel links in the planner's terms.
    assert_eq!(c.link_model, grove_protocol::planner::LinkModel::PerLink);
    assert_eq!(c.latency_us, 33_000);
}
