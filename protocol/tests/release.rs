//! Release scenarios on the cluster harness: the root members, not the commissioner, decide
//! which cells leave. Every run's privacy checker fails it if a root member's share of a cell
//! that counts fewer than `k_min` contributors reaches the commissioner, and its result check
//! fails it unless the released cells are exactly those that count `k_min` contributors, each
//! exact.
//!
//! The computations are a real query's: `GROUP BY` rows and histogram buckets are cells,
//! each with its indicator of contributors (`ContributionSpec::cells`).

use grove_protocol::engine::Failure;
use grove_protocol::harness::{Cluster, HarnessConfig, LaunchParams, Outcome};
use grove_protocol::ids::{ComputationId, GroupId};
use grove_protocol::query::{CompiledQuery, Query, Record, Value};

const COMMISSIONER: usize = 0;

/// Three rows and a histogram in each: row `a` has 30 contributors (2 of them in the
/// histogram's first bucket), `b` 4, `c` 6, and nodes 41 to 44 hold records of no row.
const QUERY: &str = "SELECT count(*), sum(x), histogram(x, [0, 100, 1000]) FROM t \
                     GROUP BY k IN ('a', 'b', 'c') CLIP x TO [0, 1000] SCALE 0";

fn compiled() -> CompiledQuery {
    Query::parse(QUERY).unwrap().compile().unwrap()
}

/// Node `i`'s records.
fn records_of(i: usize) -> Vec<Record> {
    let key = match i {
        1..=30 => "a",
        31..=34 => "b",
        35..=40 => "c",
        _ => "z",
    };
    let x = if i <= 2 { 50.0 } else { 100.0 + i as f64 };
    vec![[
        ("k".to_string(), Value::Text(key.into())),
        ("x".to_string(), Value::Number(x)),
    ]
    .into_iter()
    .collect()]
}

/// 60 nodes; nodes 1 to 44 contribute the query's evaluation of their records.
fn cluster(seed: u64) -> Cluster {
    let q = compiled();
    let mut c = Cluster::new(HarnessConfig::new(60, seed));
    for i in 1..=44 {
        c.set_contribution(i, q.evaluate(&records_of(i)));
    }
    c
}

fn params(k_min: u64) -> LaunchParams {
    let mut p = LaunchParams::new(5, 3, 4, 2, 1);
    p.spec = compiled().spec().clone();
    p.k_min = k_min;
    p
}

fn run(c: &mut Cluster, id: &ComputationId) -> Outcome {
    c.run_checked(id)
}

/// Release shares that reached the commissioner.
fn shares_to_commissioner(c: &Cluster) -> u64 {
    c.traffic.by_kind.get("release-share").map_or(0, |k| k.0)
}

fn leaves() -> Vec<GroupId> {
    (0..4).map(|index| GroupId { level: 0, index }).collect()
}

/// The commissioner ignores `k_min` (a test-only switch of its engine): it shows whatever it
/// can reconstruct. The root members still release only rows `a` (30) and `c` (6) at
/// `k_min = 5`, and in row `a` not the histogram's first bucket (2): the privacy checker saw
/// no share of row `b` or of that bucket reach the commissioner. The released cells are exact.
#[test]
fn a_commissioner_ignoring_k_min_gets_no_share_of_a_row_or_bucket_below_it() {
    let mut c = cluster(31);
    c.skip_k_min_check(COMMISSIONER);
    let id = c.launch(COMMISSIONER, &params(5));
    let o = run(&mut c, &id);
    assert!(shares_to_commissioner(&c) >= 3);
    let r = o.released.as_ref().expect("rows a and c are released");
    let q = compiled();
    let table = q.decode_released(&r.values, &r.released, r.version.count);
    let rows: Vec<bool> = table.rows.iter().map(|row| row.suppressed).collect();
    assert_eq!(rows, vec![false, true, false], "{table}");
    // Row a: 30 records, their sum, and the histogram without its 2-contributor bucket.
    let sum_a: f64 = (1..=30)
        .map(|i| records_of(i)[0]["x"].as_number().unwrap())
        .sum();
    assert_eq!(table.rows[0].cells[0].to_string(), "30");
    assert_eq!(table.rows[0].cells[1].to_string(), sum_a.to_string());
    assert_eq!(table.rows[0].cells[2].to_string(), "[suppressed, 28]");
    assert_eq!(table.rows[2].cells[0].to_string(), "6");
    // The nodes of no row sent zeros and count in no cell, but in the version.
    assert_eq!(r.version.count, 44);
}

/// Overall: at `k_min = 31` no cell counts enough contributors (row `a` has 30; the 4 nodes of
/// no row count in the version's 44 but in no cell). The commissioner ignoring `k_min` gets no share of
/// anything and reports that nothing met `k_min`.
#[test]
fn a_commissioner_ignoring_k_min_gets_nothing_when_no_cell_meets_it() {
    let mut c = cluster(32);
    c.skip_k_min_check(COMMISSIONER);
    let id = c.launch(COMMISSIONER, &params(31));
    let o = run(&mut c, &id);
    assert!(o.released.is_none());
    assert_eq!(
        o.failures,
        vec![Failure::KMinNotMet {
            k_min: 31,
            cells: 3 * 3
        }]
    );
    assert!(shares_to_commissioner(&c) >= 3);
}

/// At `k_min = 2` every row counts enough contributors, and so does every histogram bucket but
/// the empty ones (rows `b` and `c` have no `x` below 100): each released element is exactly
/// the plaintext, and only the empty buckets are withheld.
#[test]
fn cells_at_or_above_k_min_are_released_exactly() {
    let mut c = cluster(33);
    let id = c.launch(COMMISSIONER, &params(2));
    let o = run(&mut c, &id);
    let r = o.released.as_ref().expect("released");
    let q = compiled();
    let mut plain = vec![0.0; q.spec().length as usize];
    for i in 1..=44 {
        for (p, v) in plain.iter_mut().zip(q.evaluate(&records_of(i))) {
            *p += v;
        }
    }
    let expected = q.released_at(&plain, 2);
    assert_eq!(r.released, expected);
    let table = q.decode_released(&r.values, &r.released, r.version.count);
    assert!(table.rows.iter().all(|row| !row.suppressed), "{table}");
    assert_eq!(table.rows[1].cells[2].to_string(), "[suppressed, 4]");
    let withheld = r.released.iter().filter(|x| !**x).count();
    assert_eq!(
        withheld,
        2 * 2,
        "two empty buckets: their count and indicator each"
    );
    for ((got, want), open) in r.values.iter().zip(&plain).zip(&r.released) {
        assert_eq!(*got, if *open { *want } else { 0.0 });
    }
}

/// Every leaf group lies about its contributor count, down to 0 and up to 10,000, so the
/// root's version counts 0 or 40,000. Nothing released changes: the root members decide on
/// the counts in the shared data, and the commissioner never on the version's count.
#[test]
fn a_manifest_lying_about_its_count_changes_nothing_released() {
    let honest = {
        let mut c = cluster(34);
        let id = c.launch(COMMISSIONER, &params(5));
        let o = run(&mut c, &id);
        o.released.expect("released")
    };
    for lie in [0, 10_000] {
        let mut c = cluster(34);
        for l in leaves() {
            c.lie_about_count(l, lie);
        }
        let id = c.launch(COMMISSIONER, &params(5));
        let o = run(&mut c, &id);
        let r = o.released.expect("released");
        assert_eq!(r.version.count, 4 * lie, "the lie reached the root");
        assert_eq!(
            (r.released.clone(), r.sum.clone()),
            (honest.released.clone(), honest.sum.clone())
        );
    }
}

/// Root members are asked for their shares before they could open the counts (every root
/// member's count shares are slow), and three of them crash as the ask arrives and restart
/// later, so that the result needs a restarted member's share: none releases anything before
/// its counts are open, the restarted ones included, and the result still comes, exact, with
/// row `b` withheld.
#[test]
fn root_members_asked_before_their_counts_are_open_release_nothing_early() {
    let mut c = cluster(35);
    c.skip_k_min_check(COMMISSIONER);
    let id = c.launch(COMMISSIONER, &params(5));
    let plan = c.plan(&id).expect("plan");
    let root: Vec<usize> = (1..=plan.g)
        .map(|p| c.index_of(&plan.member(plan.root(), p)).expect("member"))
        .collect();
    for &m in &root {
        c.slow_sends(m, "count-share", 1_000_000);
    }
    let crashed: Vec<usize> = root
        .iter()
        .copied()
        .filter(|m| *m != COMMISSIONER)
        .take(3)
        .collect();
    c.crash_first_receivers(crashed.clone(), "release-ask", 3);
    for &m in &crashed {
        c.restart_at(m, c.now.plus(RESTART_AFTER));
    }
    let o = run(&mut c, &id);
    let r = o.released.as_ref().expect("released");
    let q = compiled();
    let table = q.decode_released(&r.values, &r.released, r.version.count);
    assert!(table.rows[1].suppressed, "{table}");
    // They crashed before the restart (a restart of a live node does nothing), and at least
    // one restarted member opened the counts and answered (two live root members are fewer
    // than t = 3).
    for &m in &crashed {
        assert_eq!(
            c.restarts(m),
            1,
            "root member {m} did not crash and restart"
        );
    }
    assert!(crashed.iter().any(|&m| c
        .durable(m)
        .iter()
        .any(|r| matches!(r, grove_protocol::record::Record::CountsOpened { .. }))));
}

/// When the crashed root members restart, from the launch: after the root's adoption.
const RESTART_AFTER: u64 = 3_000_000;
