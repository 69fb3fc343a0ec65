//! Declarative queries on the node: the request a commissioner's query text becomes, and a
//! node's stored records (JSON objects) as the query evaluator reads them.
//!
//! The language itself (parser, compiler, evaluator, decoder) is `grove_protocol::query`; a
//! node only converts its records and calls `CompiledQuery::evaluate` on them, in import order.

use crate::control::ComputeParams;
use grove_protocol::ids::{ComputationId, Micros, NodeId};
use grove_protocol::query::{CompiledQuery, Query, Record, Value};
use grove_protocol::request::{CommissionerKey, PrivacyParams, Request, Timeouts, TreeParams};
use grove_protocol::validity::circuit::CircuitType;

/// The most contributors a request declares when its commissioner names no number: the
/// request declares the largest number its overflow budget allows, up to this.
pub const DEFAULT_MAX_CONTRIBUTORS: u64 = 1_000_000;

/// Timeouts scaled from the share window (every other phase is a fraction of it).
pub fn timeouts(share_window_ms: u64) -> Timeouts {
    let w = share_window_ms.max(100) * 1000;
    Timeouts {
        share_window: w,
        collect_window: w / 2,
        level_span: w,
        report_window: w / 4,
        manifest_timeout: w / 2,
        heal_attempt: w / 2,
        release_window: w / 4,
    }
}

/// Directory peers each leaf group serves at least when the commissioner does not name the
/// number of leaf groups. A leaf whose consenting contributors come down to one leaves that
/// contributor out (`manifest::alone`: its partial would be its shares), and a leaf serving `m`
/// peers that each consent with probability `p` ends so with probability `m·p·(1 − p)^(m − 1)`:
/// at `m = 16`, 2.4e-4 for `p = 1/2` and 1.4e-14 for `p = 0.9`; at `m = 3` (ten peers over
/// the two leaves that fit them at `g = 3`, as before), 0.38 and 0.027.
pub const MIN_PEERS_PER_LEAF: usize = 16;

/// The number of leaf groups a request gets by default over `peers` directory peers: as many as
/// fit ([`fitting_leaf_groups`]) while each serves at least [`MIN_PEERS_PER_LEAF`] peers, at
/// least 1.
pub fn default_leaf_groups(peers: usize, g: u8, fan_in: u32) -> u32 {
    let served = u32::try_from((peers / MIN_PEERS_PER_LEAF).max(1)).unwrap_or(u32::MAX);
    fitting_leaf_groups(peers, g, fan_in).min(served)
}

/// The largest number of leaf groups whose plan fits `peers` distinct peers (every position
/// of every group is a distinct peer), at least 1.
pub fn fitting_leaf_groups(peers: usize, g: u8, fan_in: u32) -> u32 {
    let mut best = 1;
    for leaves in 1..=4096u32 {
        match grove_protocol::request::plan_group_count(leaves, fan_in) {
            Some(groups) if groups.saturating_mul(g as u64) <= peers as u64 => best = leaves,
            _ => break,
        }
    }
    best
}

/// What `grove compute` assumes of the network where it measures nothing (the planner's
/// other conditions): the share of directory peers that contribute (consent and `WHERE`), so
/// that a leaf of the planner's 8 contributors serves [`MIN_PEERS_PER_LEAF`] peers.
pub const ASSUMED_CONTRIBUTING_SHARE: f64 = 0.5;
/// One-way latency before any round trip was measured, microseconds.
pub const ASSUMED_LATENCY_US: u64 = 50_000;
/// A node's link, kB/s: the failure detector's slowest uplink (`net::MIN_SEND_BYTES_PER_S`).
pub const ASSUMED_BANDWIDTH_KB_PER_S: f64 = 1_024.0;
/// Work per kB of vector (DISSEC's figure), microseconds.
pub const ASSUMED_COMPUTE_US_PER_KB: f64 = 50.0;
/// One message's cryptography and its record's commit to the store, microseconds.
pub const ASSUMED_MESSAGE_US: f64 = 2_000.0;
/// Nodes failing per second (one crash per node every three hours).
pub const ASSUMED_FAILURE_PER_S: f64 = 1e-4;
/// The fraction of contributors the plan must include (failures and lone contributors).
pub const COMPLETENESS_TARGET: f64 = 0.99;
/// Spare members (`g - t`) of a planned group: one slow or dead member costs a failover, not
/// the group's subtree.
pub const MIN_SPARE_MEMBERS: u8 = 1;
/// The share window the daemon needs whatever the planner predicts, milliseconds: consent,
/// evaluation and a store commit per share, on a busy machine (the former fixed default).
pub const MIN_SHARE_WINDOW_MS: u64 = 2_000;
/// Gossip fan-out the planner counts hops with (gossipsub's mesh degree).
pub const GOSSIP_FANOUT: u32 = 6;

/// What `grove compute` knows of the network when it plans: from `grove status`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetworkEstimate {
    /// Nodes that can serve and contribute: the admitted identities eligible in this node's
    /// view with `[admission]`, else the directory's peers (this node included).
    pub nodes: u64,
    /// Smoothed round trip of this node's directory pulls (`crate::latency`), if measured.
    pub rtt_us: Option<u64>,
    pub rtt_samples: u64,
    /// The connections a node holds before it closes those it does not need (this node's
    /// `connection_target`): the planner keeps a leaf member's connections within it.
    pub connection_budget: u32,
}

impl NetworkEstimate {
    /// The estimate from the daemon's `status` answer: the admitted identities it counts
    /// eligible, else its directory's peers, and its measured round trip.
    pub fn from_status(status: &serde_json::Value) -> NetworkEstimate {
        let eligible = status["admission"]["known_eligible"].as_u64().unwrap_or(0);
        NetworkEstimate {
            nodes: if eligible > 0 {
                eligible
            } else {
                status["directory_peers"].as_u64().unwrap_or(1)
            },
            rtt_us: status["latency"]["rtt_us"].as_u64(),
            rtt_samples: status["latency"]["samples"].as_u64().unwrap_or(0),
            connection_budget: status["connections"]["target"]
                .as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .unwrap_or(crate::daemon::connections::CONNECTION_TARGET as u32),
        }
    }
}

/// The commissioner's choices on the command line (`None`: the planner's).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PlanFlags {
    pub g: Option<u8>,
    pub t: Option<u8>,
    pub fan_in: Option<u32>,
    pub leaf_groups: Option<u32>,
    pub share_window_ms: Option<u64>,
    pub goal: grove_protocol::planner::ExposureGoal,
}

/// What `grove compute` launches with, and what it says about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    pub g: u8,
    pub t: u8,
    pub fan_in: u32,
    pub leaf_groups: Option<u32>,
    pub share_window_ms: u64,
    /// One contributor's value exposed, at the goal's colluding fraction.
    pub exposure: f64,
    pub meets_goal: bool,
    /// Lines for the commissioner: the choice, its exposure, and a warning when the goal is
    /// not met.
    pub report: Vec<String>,
}

/// Chooses `g`, `t`, fan-in, leaf groups and the share window of a computation over `net`
/// for a vector of `vector_len` elements with `planner::plan_private`, keeping what `flags`
/// fix. Without a plan that fits (a network of a few nodes), the fixed values or `g = 3,
/// t = 2`, fan-in 2, and the directory's default leaves.
pub fn plan_compute(
    flags: &PlanFlags,
    net: &NetworkEstimate,
    vector_len: u32,
    k_min: u64,
) -> Result<Planned, String> {
    use grove_protocol::planner::{self, Conditions, Fixed, LinkModel};
    let nodes = net.nodes.max(1);
    let latency_us = net.rtt_us.map_or(ASSUMED_LATENCY_US, |r| (r / 2).max(1));
    let conditions = Conditions {
        expected_contributors: ((nodes as f64 * ASSUMED_CONTRIBUTING_SHARE).ceil() as u64).max(1),
        available_nodes: nodes,
        vector_len: vector_len.max(1),
        latency_us,
        broadcast_hops: planner::gossip_hops(nodes, GOSSIP_FANOUT),
        bandwidth_kb_per_s: ASSUMED_BANDWIDTH_KB_PER_S,
        link_model: LinkModel::PerNode,
        compute_us_per_kb: ASSUMED_COMPUTE_US_PER_KB,
        crypto_us: ASSUMED_MESSAGE_US,
        failure_per_s: ASSUMED_FAILURE_PER_S,
        min_threshold: 2,
        completeness_target: COMPLETENESS_TARGET,
        k_min,
        connection_budget: Some(net.connection_budget),
    };
    let fixed = Fixed {
        g: flags.g,
        t: flags.t,
        fan_in: flags.fan_in,
        min_spare: MIN_SPARE_MEMBERS,
    };
    let goal = flags.goal;
    let f_pct = goal.colluding_fraction * 100.0;
    let measured = match net.rtt_us {
        Some(r) => format!(
            "round trip {:.1} ms over {} pulls",
            r as f64 / 1e3,
            net.rtt_samples
        ),
        None => format!("latency assumed {} ms", ASSUMED_LATENCY_US / 1000),
    };
    let mut report = Vec::new();
    let planned = match planner::plan_private(&conditions, &goal, &fixed) {
        Ok(p) => {
            let c = &p.choice;
            let leaves = flags.leaf_groups.unwrap_or_else(|| {
                let fits = fitting_leaf_groups(nodes as usize, c.privacy.g, c.tree.fan_in);
                c.tree.leaf_groups.min(fits).max(1)
            });
            let window_ms = (c.tree.timeouts.share_window / 1000).max(MIN_SHARE_WINDOW_MS);
            report.push(format!(
                "planner: g = {}, t = {}, fan-in {}, {} leaf groups, share window {} ms \
                 ({} nodes, {measured}; predicted {:.0} ms, completeness {:.4})",
                c.privacy.g,
                c.privacy.t,
                c.tree.fan_in,
                leaves,
                flags.share_window_ms.unwrap_or(window_ms),
                nodes,
                c.predicted_latency_us as f64 / 1e3,
                c.predicted_completeness,
            ));
            // For the planner's leaves (a --leaf-groups flag may give others).
            let held = conditions.leaf_member_connections(c.privacy.g, c.leaf_size);
            let within = conditions.fits_connections(c.privacy.g, c.leaf_size);
            report.push(format!(
                "connections: a leaf member holds up to {held:.0} (about {:.0} nodes per leaf, \
                 {} in its group and its parent's), budget {}{}",
                nodes as f64 / f64::from(c.tree.leaf_groups.max(1)),
                2 * u32::from(c.privacy.g),
                net.connection_budget,
                if within {
                    ""
                } else {
                    " (above it: no shape within it meets the exposure target)"
                },
            ));
            Planned {
                g: c.privacy.g,
                t: c.privacy.t,
                fan_in: c.tree.fan_in,
                leaf_groups: Some(leaves),
                share_window_ms: flags.share_window_ms.unwrap_or(window_ms),
                exposure: p.exposure,
                meets_goal: p.meets_goal,
                report: Vec::new(),
            }
        }
        Err(planner::PlannerError::NoPlan(why)) => {
            let t = flags.t.unwrap_or(2);
            let g = flags.g.unwrap_or(t.saturating_add(MIN_SPARE_MEMBERS));
            let exposure = planner::exposure(g, t, goal.colluding_fraction);
            report.push(format!(
                "planner: no plan fits ({why}); g = {g}, t = {t}, fan-in {}, default leaves",
                flags.fan_in.unwrap_or(2)
            ));
            Planned {
                g,
                t,
                fan_in: flags.fan_in.unwrap_or(2),
                leaf_groups: flags.leaf_groups,
                share_window_ms: flags.share_window_ms.unwrap_or(MIN_SHARE_WINDOW_MS),
                exposure,
                meets_goal: goal.met_by(exposure),
                report: Vec::new(),
            }
        }
        Err(e) => return Err(format!("cannot plan: {e}")),
    };
    report.push(format!(
        "exposure: one contributor's value is revealed with probability {:.2e} if {f_pct:.0}% \
         of the nodes collude (target {:.0e})",
        planned.exposure, goal.target
    ));
    if !planned.meets_goal {
        let why = if flags.g.is_some() && flags.t.is_some() {
            "with the given --g and --t".to_string()
        } else {
            format!("{nodes} nodes are too few for groups that meet it")
        };
        report.push(format!(
            "warning: exposure {:.2e} is above the target {:.0e} ({why})",
            planned.exposure, goal.target
        ));
    }
    Ok(Planned { report, ..planned })
}

/// Parses and compiles a query text; the error says where and what (line and column).
pub fn compile(text: &str) -> Result<CompiledQuery, String> {
    Query::parse(text)
        .and_then(|q| q.compile())
        .map_err(|e| format!("query error: {e}"))
}

/// The largest number of contributors, at most `cap`, whose sum stays within the field's
/// overflow budget for `compiled`'s bounds (at least 1: `compile` checks that one fits).
pub fn budget_contributors(compiled: &CompiledQuery, cap: u64) -> u64 {
    let spec = compiled.spec();
    if spec.validate(cap).is_ok() {
        return cap;
    }
    let (mut lo, mut hi) = (1u64, cap);
    // Invariant: lo fits, hi does not.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if spec.validate(mid).is_ok() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Refuses a threshold below 2 (every member would hold its contributors' values in the
/// clear) or above the group size, with a message that says so.
pub fn check_threshold(g: u8, t: u8) -> Result<(), String> {
    if t < 2 {
        return Err(format!(
            "t = {t} is refused: a threshold below 2 would give every aggregator its \
             contributors' values in the clear; use t >= 2 (for example --g 5 --t 3)"
        ));
    }
    if t > g {
        return Err(format!(
            "t = {t} is above the group size g = {g}: no group could ever reconstruct"
        ));
    }
    Ok(())
}

/// Builds the request for `p.query`: its contribution spec is exactly what the query
/// compiles to, and `max_contributors` is `p.max_contributors` or else the most the overflow
/// budget allows (up to [`DEFAULT_MAX_CONTRIBUTORS`]).
pub fn build_request(
    p: &ComputeParams,
    id: ComputationId,
    commissioner: CommissionerKey,
    commissioner_node: NodeId,
    now: Micros,
    directory_size: usize,
) -> Result<Request, String> {
    let compiled = compile(&p.query)?;
    check_threshold(p.g, p.t)?;
    // Honest owners decline a query whose contributions cannot be proven valid, and leaves
    // hold none of them: refuse it here, with the reason.
    CircuitType::of_query(&compiled).map_err(|e| {
        format!(
            "no contribution to this query could be proven valid ({e}): \
             ask for fewer elements (a shorter sum_vector, fewer GROUP BY keys or buckets) \
             or narrower bounds (CLIP, SCALE)"
        )
    })?;
    let max_contributors = match p.max_contributors {
        Some(n) => n,
        None => budget_contributors(&compiled, DEFAULT_MAX_CONTRIBUTORS),
    };
    compiled.spec().validate(max_contributors).map_err(|e| {
        format!(
            "the query's bounds do not fit {max_contributors} contributors: {e} \
             (narrow a CLIP, lower LIMIT PER CONTRIBUTOR or SCALE)"
        )
    })?;
    let leaf_groups = p
        .leaf_groups
        .unwrap_or_else(|| default_leaf_groups(directory_size, p.g, p.fan_in));
    Ok(Request {
        id,
        commissioner,
        commissioner_node,
        created_at: now,
        deadline: now.plus(p.lifetime_secs.saturating_mul(1_000_000)),
        // The canonical form: every node parses exactly this text.
        query: compiled.query().to_string(),
        contribution: compiled.spec().clone(),
        max_contributors,
        privacy: PrivacyParams {
            g: p.g,
            t: p.t,
            k_min: p.k_min,
        },
        tree: TreeParams {
            leaf_groups,
            fan_in: p.fan_in,
            backups: 2,
            timeouts: timeouts(p.share_window_ms),
        },
        // The commissioner's daemon names its directory snapshot after building the request.
        directory: None,
        beacon: None,
    })
}

/// One stored JSON value as the evaluator reads it: numbers, text (dates are texts
/// `YYYY-MM-DD...`), booleans, null, and arrays of numbers (vectors). Anything else (objects,
/// mixed arrays) reads as `Null`, which the evaluator treats as unknown.
pub fn value_of(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => n.as_f64().map_or(Value::Null, Value::Number),
        J::String(s) => Value::Text(s.clone()),
        J::Array(items) => items
            .iter()
            .map(|x| x.as_f64())
            .collect::<Option<Vec<f64>>>()
            .map_or(Value::Null, Value::NumberArray),
        J::Object(_) => Value::Null,
    }
}

/// A stored record as the evaluator reads it.
pub fn record_of(r: &serde_json::Map<String, serde_json::Value>) -> Record {
    r.iter().map(|(k, v)| (k.clone(), value_of(v))).collect()
}

/// What this node contributes to `compiled` from its stored records (in import order), in
/// real units, and how many records the query used.
pub fn contribution(
    compiled: &CompiledQuery,
    records: &[serde_json::Map<String, serde_json::Value>],
) -> (Vec<f64>, u64) {
    let records: Vec<Record> = records.iter().map(record_of).collect();
    let used = records
        .iter()
        .filter(|r| compiled.row_of(r).is_some())
        .count()
        .min(compiled.records_per_contributor() as usize) as u64;
    (compiled.evaluate(&records), used)
}

/// Every field a query reads: its aggregates', `WHERE`'s and `GROUP BY`'s (sorted, distinct).
pub fn fields_read(q: &Query) -> Vec<String> {
    use grove_protocol::query::{Expr, GroupBy, Predicate};
    fn expr_field(e: &Expr) -> &str {
        match e {
            Expr::Field(f) | Expr::Year(f) | Expr::Month(f) | Expr::Day(f) => f,
        }
    }
    fn walk(p: &Predicate, out: &mut Vec<String>) {
        match p {
            Predicate::Compare { expr, .. }
            | Predicate::In { expr, .. }
            | Predicate::Between { expr, .. }
            | Predicate::Like { expr, .. } => out.push(expr_field(expr).to_string()),
            Predicate::Not(inner) => walk(inner, out),
            Predicate::And(ps) | Predicate::Or(ps) => ps.iter().for_each(|p| walk(p, out)),
        }
    }
    let mut out: Vec<String> = q
        .aggregates
        .iter()
        .filter_map(|a| a.field().map(str::to_string))
        .collect();
    if let Some(p) = &q.filter {
        walk(p, &mut out);
    }
    match &q.group_by {
        Some(GroupBy::Keys { expr, .. }) => out.push(expr_field(expr).to_string()),
        Some(GroupBy::Buckets { field, .. }) => out.push(field.clone()),
        None => {}
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        match v {
            serde_json::Value::Object(m) => m,
            _ => panic!("test values are objects"),
        }
    }

    #[test]
    fn leaf_groups_fit_the_directory() {
        // 20 peers, g = 5, fan-in 2: 2 leaves + 1 root = 15 positions; 3 leaves need 30.
        assert_eq!(fitting_leaf_groups(20, 5, 2), 2);
        // g = 3: 3 leaves + 2 + 1 = 6 groups = 18 positions.
        assert_eq!(fitting_leaf_groups(20, 3, 2), 3);
        assert_eq!(fitting_leaf_groups(2, 5, 2), 1);
    }

    #[test]
    fn default_leaves_serve_enough_peers_to_leave_no_one_alone() {
        // Ten peers fit two leaves at g = 3, but a leaf of about five peers too often ends
        // with one consenting contributor, who is then left out: one leaf.
        assert_eq!(fitting_leaf_groups(10, 3, 2), 2);
        assert_eq!(default_leaf_groups(10, 3, 2), 1);
        assert_eq!(default_leaf_groups(20, 3, 2), 1);
        assert_eq!(default_leaf_groups(40, 3, 2), 2);
        // Large directories: as many as fit, each serving at least 16 peers.
        assert_eq!(default_leaf_groups(1_000, 3, 2), 62);
        assert_eq!(default_leaf_groups(0, 3, 2), 1);
    }

    fn net(nodes: u64) -> NetworkEstimate {
        NetworkEstimate {
            nodes,
            rtt_us: Some(1_000),
            rtt_samples: 3,
            connection_budget: 48,
        }
    }

    #[test]
    fn compute_plans_groups_below_the_exposure_target_when_the_network_allows() {
        let flags = PlanFlags::default();
        // 200 nodes: g = 12, t = 11 (1.1e-10 at 10% colluders), leaves that fit.
        let p = plan_compute(&flags, &net(200), 3, 1).unwrap();
        assert_eq!((p.g, p.t), (12, 11), "{p:?}");
        assert!(p.meets_goal && p.exposure < 1e-9);
        let leaves = p.leaf_groups.unwrap();
        assert!(leaves >= 1 && leaves <= fitting_leaf_groups(200, 12, p.fan_in));
        assert!(p.share_window_ms >= MIN_SHARE_WINDOW_MS);
        assert!(
            p.report.iter().any(|l| l.contains("1.09e-10")),
            "{:?}",
            p.report
        );
        assert!(!p.report.iter().any(|l| l.starts_with("warning")));
        // 20 nodes (the demo's): too few; the least exposed plan that fits, with a warning.
        let p = plan_compute(&flags, &net(20), 3, 1).unwrap();
        assert!(!p.meets_goal && p.exposure > 1e-9, "{p:?}");
        assert_eq!((p.g, p.t), (10, 9), "{p:?}");
        assert!(
            p.report.iter().any(|l| l.contains("9.10e-9")),
            "{:?}",
            p.report
        );
        assert!(
            p.report.iter().any(|l| l.starts_with("warning")),
            "{:?}",
            p.report
        );
        // Flags win, and their exposure is printed.
        let fixed = PlanFlags {
            g: Some(5),
            t: Some(3),
            fan_in: Some(2),
            share_window_ms: Some(1500),
            ..PlanFlags::default()
        };
        let p = plan_compute(&fixed, &net(200), 3, 1).unwrap();
        assert_eq!((p.g, p.t, p.fan_in, p.share_window_ms), (5, 3, 2, 1500));
        assert!(
            p.report.iter().any(|l| l.contains("8.56e-3")),
            "{:?}",
            p.report
        );
        assert!(p.report.iter().any(|l| l.contains("--g and --t")));
        // Four nodes hold no planned tree: the flags (or g = 3, t = 2) as before.
        let p = plan_compute(&fixed, &net(4), 3, 1).unwrap();
        assert_eq!((p.g, p.t, p.leaf_groups), (5, 3, None));
        // A looser goal is met by 20 nodes.
        let loose = PlanFlags {
            goal: grove_protocol::planner::ExposureGoal {
                target: 1e-6,
                colluding_fraction: 0.1,
            },
            ..PlanFlags::default()
        };
        let p = plan_compute(&loose, &net(20), 3, 1).unwrap();
        assert!(p.meets_goal, "{p:?}");
    }

    #[test]
    fn json_records_read_as_query_values() {
        let r = record_of(&obj(json!({
            "n": 2.5, "s": "2026-01-05", "b": true, "z": null,
            "v": [1, 2.5], "mixed": [1, "a"], "o": {"a": 1}
        })));
        assert_eq!(r["n"], Value::Number(2.5));
        assert_eq!(r["s"], Value::Text("2026-01-05".into()));
        assert_eq!(r["b"], Value::Bool(true));
        assert_eq!(r["z"], Value::Null);
        assert_eq!(r["v"], Value::NumberArray(vec![1.0, 2.5]));
        assert_eq!(r["mixed"], Value::Null);
        assert_eq!(r["o"], Value::Null);
    }

    #[test]
    fn a_threshold_below_two_is_refused_with_a_reason() {
        for (g, t) in [(3, 1), (1, 1), (5, 0)] {
            let e = check_threshold(g, t).unwrap_err();
            assert!(e.contains("below 2") && e.contains("in the clear"), "{e}");
            let p = ComputeParams {
                query: "SELECT count(*) FROM c".into(),
                g,
                t,
                ..ComputeParams::default()
            };
            let r = build_request(
                &p,
                ComputationId([1; 32]),
                CommissionerKey([0; 32]),
                NodeId([2; 32]),
                Micros(1),
                10,
            );
            assert!(r.is_err_and(|e| e.contains("below 2")));
        }
        assert!(check_threshold(3, 4).is_err());
        assert_eq!(check_threshold(2, 2), Ok(()));
    }

    #[test]
    fn a_contribution_uses_the_first_records_that_match() {
        let c = compile(
            "SELECT count(*), sum(a) FROM c WHERE k = 'x' CLIP a TO [0, 10] LIMIT PER CONTRIBUTOR 2",
        )
        .unwrap();
        let records: Vec<_> = [
            json!({"k": "x", "a": 4}),
            json!({"k": "y", "a": 100}),
            json!({"k": "x", "a": 50}),
            json!({"k": "x", "a": 1}),
        ]
        .into_iter()
        .map(obj)
        .collect();
        // The first two matching records: 4 and 50 (clipped to 10); then the row's indicator.
        assert_eq!(contribution(&c, &records), (vec![2.0, 14.0, 1.0], 2));
    }

    #[test]
    fn requests_carry_the_canonical_query_and_a_budget_that_fits() {
        let p = ComputeParams {
            query: "select   sum(a) from c clip a to [0, 1e9]".into(),
            ..ComputeParams::default()
        };
        let r = build_request(
            &p,
            ComputationId([1; 32]),
            CommissionerKey([2; 32]),
            NodeId([3; 32]),
            Micros(0),
            10,
        )
        .unwrap();
        assert_eq!(r.query, "SELECT sum(a)\nFROM c\nCLIP a TO [0, 1000000000]");
        assert!(r.max_contributors < DEFAULT_MAX_CONTRIBUTORS);
        r.contribution.validate(r.max_contributors).unwrap();
        assert!(r.contribution.validate(r.max_contributors + 1).is_err());
        let bad = ComputeParams {
            query: "SELECT summ(a) FROM c".into(),
            ..ComputeParams::default()
        };
        let e = build_request(
            &bad,
            ComputationId([1; 32]),
            CommissionerKey([2; 32]),
            NodeId([3; 32]),
            Micros(0),
            10,
        )
        .unwrap_err();
        assert!(e.contains("line 1, column 8"), "{e}");
    }

    /// A query whose validity circuit is over the limits is refused before it is launched,
    /// with the reason (owners would decline it, leaves would hold no contribution).
    #[test]
    fn a_query_whose_contributions_cannot_be_proven_is_refused() {
        let build = |query: &str| {
            let p = ComputeParams {
                query: query.into(),
                ..ComputeParams::default()
            };
            build_request(
                &p,
                ComputationId([1; 32]),
                CommissionerKey([2; 32]),
                NodeId([3; 32]),
                Micros(0),
                10,
            )
        };
        build("SELECT sum_vector(w, 10000) FROM c CLIP NORM w TO 1").unwrap();
        // 4 rows of 1,000,000 coordinates: 4 million input elements.
        let e = build(
            "SELECT sum_vector(w, 1000000) FROM c GROUP BY k IN ('a', 'b', 'c', 'd') \
             CLIP NORM w TO 1",
        )
        .unwrap_err();
        assert!(
            e.contains("could be proven valid") && e.contains("over the limit"),
            "{e}"
        );
    }

    #[test]
    fn fields_read_cover_every_clause() {
        let q = Query::parse(
            "SELECT count(*), avg(a) FROM c WHERE NOT (b = 1 OR month(d) = '2026-01') \
             GROUP BY bucket(e, [0, 1]) CLIP a TO [0, 1]",
        )
        .unwrap();
        assert_eq!(fields_read(&q), vec!["a", "b", "d", "e"]);
    }
}
