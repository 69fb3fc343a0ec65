//! Declarative queries on the node: the request a commissioner's query text becomes, and a
//! node's stored records (JSON objects) as the query evaluator reads them.
//!
//! The language itself (parser, compiler, evaluator, decoder) is `grove_protocol::query`; a
//! node only converts its records and calls `CompiledQuery::evaluate` on them, in import order.

use crate::control::ComputeParams;
use grove_protocol::ids::{ComputationId, Micros, NodeId};
use grove_protocol::query::{CompiledQuery, Query, Record, Value};
use grove_protocol::request::{CommissionerKey, PrivacyParams, Request, Timeouts, TreeParams};

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
