use super::*;
use crate::limits;
use std::collections::BTreeMap;

const EXAMPLE: &str = "SELECT count(*), sum(amount), avg(amount), var(amount), stddev(amount), \
    histogram(amount, [0, 10, 50, 100, 500]), count(DISTINCT CONTRIBUTOR), sum_vector(weights, 3)
FROM bank.operations
WHERE category = 'food' AND date >= '2026-01-01' AND NOT (amount < 0) AND label LIKE 'abc%' \
    AND x IN (1, 2) AND y BETWEEN 1 AND 5
GROUP BY month(date) IN ('2026-01', '2026-02', '2026-03')
CLIP amount TO [0, 1000]
CLIP NORM weights TO 5.0";

fn err(text: &str) -> QueryError {
    Query::parse(text).expect_err(text)
}

fn at(text: &str) -> (u32, u32) {
    let e = err(text);
    (e.line, e.column)
}

#[test]
fn example_parses_prints_and_round_trips() {
    let q = Query::parse(EXAMPLE).unwrap();
    assert_eq!(q.aggregates.len(), 8);
    assert_eq!(q.collection, "bank.operations");
    let Some(Predicate::And(items)) = &q.filter else {
        panic!("{:?}", q.filter)
    };
    assert_eq!(items.len(), 6);
    let printed = q.to_string();
    assert_eq!(Query::parse(&printed).unwrap(), q);
    assert_eq!(
        printed,
        "SELECT count(*), sum(amount), avg(amount), var(amount), stddev(amount), \
         histogram(amount, [0, 10, 50, 100, 500]), count(DISTINCT CONTRIBUTOR), \
         sum_vector(weights, 3)\n\
         FROM bank.operations\n\
         WHERE category = 'food' AND date >= '2026-01-01' AND NOT amount < 0 AND label LIKE \
         'abc%' AND x IN (1, 2) AND y BETWEEN 1 AND 5\n\
         GROUP BY month(date) IN ('2026-01', '2026-02', '2026-03')\n\
         CLIP amount TO [0, 1000]\n\
         CLIP NORM weights TO 5"
    );
}

#[test]
fn precedence_and_case() {
    let q = Query::parse(
        "select COUNT(*) from t where a = 1 or b = 2 and not c = 3 or (d = 4 or e = 5) and f = 6",
    )
    .unwrap();
    let w = q.filter.unwrap().to_string();
    assert_eq!(
        w,
        "a = 1 OR b = 2 AND NOT c = 3 OR (d = 4 OR e = 5) AND f = 6"
    );
    let Predicate::Or(items) =
        Query::parse("SELECT count(*) FROM t WHERE a = 1 OR b = 2 AND c = 3")
            .unwrap()
            .filter
            .unwrap()
    else {
        panic!()
    };
    assert_eq!(items.len(), 2);
    assert!(matches!(items[1], Predicate::And(_)));
    // Parentheses that precedence makes redundant disappear; the others stay.
    let q = Query::parse("SELECT count(*) FROM t WHERE ((a = 1)) AND (b = 2 AND c = 3)").unwrap();
    assert_eq!(
        q.filter.as_ref().unwrap().to_string(),
        "a = 1 AND (b = 2 AND c = 3)"
    );
    assert_eq!(Query::parse(&q.to_string()).unwrap(), q);
}

#[test]
fn error_positions_and_messages() {
    let e = err("SELECT count(*), summ(amount) FROM t");
    assert_eq!((e.line, e.column), (1, 18));
    assert_eq!(
        e.to_string(),
        "unknown aggregate 'summ' at line 1, column 18: expected one of count, sum, avg, var, \
         stddev, histogram, sum_vector"
    );
    assert_eq!(at("SELECT count(*)\nFROM t\nWHERE a = "), (3, 11));
    assert_eq!(at("SELECT count(*)\nFROM t\nWHERE a == 1"), (3, 10));
    assert_eq!(at("SELECT count(*) FROM select"), (1, 22));
    assert_eq!(at("SELECT sum(x) FROM t"), (1, 8));
    assert!(err("SELECT sum(x) FROM t")
        .to_string()
        .contains("CLIP x TO"));
    assert_eq!(at("SELECT count(*) FROM t CLIP x TO [0, 1]"), (1, 24));
    assert_eq!(at("SELECT sum(x) FROM t CLIP x TO [2, 1]"), (1, 36));
    assert_eq!(
        at("SELECT sum(x) FROM t CLIP x TO [0, 1] CLIP x TO [0, 2]"),
        (1, 39)
    );
    assert_eq!(at("SELECT histogram(x, [0, 5, 5]) FROM t"), (1, 28));
    assert_eq!(at("SELECT histogram(x, [0]) FROM t"), (1, 23));
    assert_eq!(
        at("SELECT count(*) FROM t GROUP BY k IN ('a', 'b', 'a')"),
        (1, 49)
    );
    assert_eq!(at("SELECT count(*) FROM t GROUP BY k"), (1, 34));
    assert_eq!(at("SELECT count(*) FROM t WHERE s LIKE 'a_%'"), (1, 37));
    assert_eq!(at("SELECT count(*) FROM t WHERE s LIKE '%a'"), (1, 37));
    assert_eq!(at("SELECT count(*) FROM t WHERE foo(d) = 1"), (1, 30));
    assert_eq!(at("SELECT count(*) FROM t SCALE 13"), (1, 30));
    assert_eq!(
        at("SELECT count(*) FROM t LIMIT PER CONTRIBUTOR 0"),
        (1, 46)
    );
    assert_eq!(
        at("SELECT count(*) FROM t LIMIT PER CONTRIBUTOR 1.5"),
        (1, 46)
    );
    assert_eq!(at("SELECT count(*) FROM t SCALE 2 WHERE a = 1"), (1, 32));
    assert_eq!(at("SELECT sum_vector(w, 3) FROM t"), (1, 8));
    assert_eq!(
        at("SELECT sum_vector(w, 3), sum_vector(w, 4) FROM t CLIP NORM w TO 1"),
        (1, 26)
    );
    assert_eq!(
        at("SELECT sum_vector(w, 3) FROM t CLIP NORM w TO 0"),
        (1, 47)
    );
    assert_eq!(at("SELECT count(x) FROM t"), (1, 14));
    assert_eq!(at(""), (1, 1));
    assert_eq!(at("SELECT count(*) FROM t WHERE a = 'x"), (1, 34));
    let deep = format!(
        "SELECT count(*) FROM t WHERE {}a = 1{}",
        "(".repeat(40),
        ")".repeat(40)
    );
    assert_eq!(at(&deep), (1, 30 + limits::MAX_QUERY_NESTING as u32));
    let nots = format!("SELECT count(*) FROM t WHERE {}a = 1", "NOT ".repeat(40));
    assert!(err(&nots).message.contains("nest"));
    let many = format!(
        "SELECT count(*) FROM t WHERE a = 1{}",
        " OR a = 1".repeat(limits::MAX_QUERY_CONDITIONS)
    );
    assert!(err(&many).message.contains("conditions"));
    let long = format!("SELECT count(*) FROM t WHERE a = '{}'", "x".repeat(70_000));
    assert!(err(&long).message.contains("limit"));
}

fn rec(fields: &[(&str, Value)]) -> Record {
    fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect::<BTreeMap<_, _>>()
}

#[test]
fn compile_layout_and_bounds() {
    let q = Query::parse(EXAMPLE).unwrap();
    let c = q.compile().unwrap();
    // count 1, sum 1, avg 2, var 3, stddev 3, histogram 4 + 4 hidden indicators, distinct 1,
    // vector 3 = 22 per group.
    assert_eq!(c.columns().len(), 22);
    assert_eq!(c.rows(), vec!["2026-01", "2026-02", "2026-03"]);
    assert_eq!(c.spec().length, 66);
    assert_eq!(c.spec().scale_digits, DEFAULT_SCALE_DIGITS);
    assert_eq!(c.records_per_contributor(), DEFAULT_RECORDS_PER_CONTRIBUTOR);
    let n = DEFAULT_RECORDS_PER_CONTRIBUTOR as f64;
    assert_eq!((c.columns()[0].min, c.columns()[0].max), (0.0, n));
    assert_eq!((c.columns()[1].min, c.columns()[1].max), (0.0, n * 1000.0));
    assert_eq!(c.columns()[5].kind, ColumnKind::SumOfSquares);
    assert_eq!(c.columns()[5].max, n * 1e6);
    assert_eq!(c.columns()[14].kind, ColumnKind::BucketContributor(0));
    assert_eq!((c.columns()[14].min, c.columns()[14].max), (0.0, 1.0));
    assert_eq!(c.columns()[18].kind, ColumnKind::Contributor);
    assert_eq!((c.columns()[21].min, c.columns()[21].max), (-5.0, 5.0));
    let total: u32 = c.spec().bounds.iter().map(|b| b.count).sum();
    assert_eq!(total, 66);
    // The cells: per row, the row (its indicator is the selected count(DISTINCT
    // CONTRIBUTOR)) and each histogram bucket (its hidden indicator, its count).
    let cells = &c.spec().cells;
    assert_eq!(cells.width, 22);
    assert_eq!(cells.cells.len(), 5);
    assert_eq!(
        (
            cells.cells[0].indicator,
            cells.cells[0].start,
            cells.cells[0].len
        ),
        (18, 0, 22)
    );
    assert_eq!(
        (
            cells.cells[2].indicator,
            cells.cells[2].start,
            cells.cells[2].len
        ),
        (15, 11, 1)
    );
    assert_eq!(c.spec().validate_cells(), Ok(()));
    c.spec().validate(10_000).unwrap();
    // 1000 records * 1e6 * 100 (scale) = 1e11 per contributor: 1e8 contributors would wrap
    // (the budget is (P - 1) / 2, about 9.2e18).
    assert!(c.spec().validate(100_000_000).is_err());
}

#[test]
fn evaluate_and_decode() {
    let q = Query::parse(
        "SELECT count(*), avg(amount), var(amount), histogram(amount, [0, 10, 100]), \
         count(DISTINCT CONTRIBUTOR), sum_vector(w, 2)
         FROM bank.ops WHERE date >= '2026-01-01' AND NOT amount < 0
         GROUP BY month(date) IN ('2026-01', '2026-02')
         CLIP amount TO [0, 50] CLIP NORM w TO 5 LIMIT PER CONTRIBUTOR 3",
    )
    .unwrap();
    let c = q.compile().unwrap();
    let records = vec![
        rec(&[
            ("date", Value::Text("2026-01-05T10:00".into())),
            ("amount", Value::Number(20.0)),
            ("w", Value::NumberArray(vec![3.0, 4.0])),
        ]),
        rec(&[
            ("date", Value::Date(Date::new(2026, 1, 9).unwrap())),
            ("amount", Value::Number(80.0)), // clipped to 50, histogram sees 80
            ("w", Value::NumberArray(vec![30.0, 40.0])), // clipped to (3, 4)
        ]),
        // Unknown amount: NOT (amount < 0) is unknown, the record is not used.
        rec(&[("date", Value::Text("2026-01-10".into()))]),
        rec(&[
            ("date", Value::Text("2025-12-31".into())),
            ("amount", Value::Number(1.0)),
        ]),
        rec(&[
            ("date", Value::Text("2026-02-01".into())),
            ("amount", Value::Number(5.0)),
            ("w", Value::NumberArray(vec![1.0])), // wrong dimension
        ]),
        // Over the limit of 3 used records.
        rec(&[
            ("date", Value::Text("2026-02-02".into())),
            ("amount", Value::Number(5.0)),
        ]),
    ];
    let v = c.evaluate(&records);
    let w = c.columns().len();
    assert_eq!(w, 1 + 2 + 3 + 2 * 2 + 1 + 2);
    // Group 2026-01: 2 records, sum 70, squares 400 + 2500, histogram [0, 2] (its bucket
    // indicators [0, 1]), vector (6, 8) clipped again to (3, 4).
    assert_eq!(
        &v[..w],
        &[2.0, 70.0, 2.0, 70.0, 2900.0, 2.0, 0.0, 2.0, 0.0, 1.0, 1.0, 3.0, 4.0]
    );
    assert_eq!(
        &v[w..],
        &[1.0, 5.0, 1.0, 5.0, 25.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    );
    // Two identical contributors.
    let sums: Vec<f64> = v.iter().map(|x| 2.0 * x).collect();
    let t = c.decode(&sums, 2);
    assert_eq!(t.rows.len(), 2);
    assert_eq!(t.rows[0].key.as_deref(), Some("2026-01"));
    assert_eq!(t.rows[0].cells[0], Cell::Number(4.0));
    assert_eq!(t.rows[0].cells[1], Cell::Number(35.0));
    assert_eq!(t.rows[0].cells[2], Cell::Number(225.0));
    assert_eq!(t.rows[0].cells[3], Cell::List(vec![Some(0.0), Some(4.0)]));
    assert_eq!(t.rows[0].cells[4], Cell::Number(2.0));
    assert_eq!(t.rows[0].cells[5], Cell::List(vec![Some(6.0), Some(8.0)]));
    assert_eq!(t.rows[1].cells[2], Cell::Number(0.0));
    let text = t.to_string();
    assert!(text.contains("month(date)"), "{text}");
    assert!(text.contains("(2 contributors)"), "{text}");
    let empty = c.decode(&vec![0.0; c.spec().length as usize], 0);
    assert_eq!(empty.rows[0].cells[1], Cell::Null);
    let short = c.decode(&[1.0], 1);
    assert_eq!(short.rows[0].cells[0], Cell::Number(1.0));
    assert_eq!(short.rows[1].cells[0], Cell::Null);
    // At k_min = 2 the two contributors' rows are released, and the histogram's empty
    // bucket 0 of row 2026-01 is not; at k_min = 3 nothing is.
    let released = c.released_at(&sums, 2);
    let t = c.decode_released(&sums, &released, 2);
    assert!(!t.rows[0].suppressed && !t.rows[1].suppressed);
    assert_eq!(t.rows[0].cells[3], Cell::List(vec![None, Some(4.0)]));
    assert_eq!(t.rows[1].cells[3], Cell::List(vec![Some(2.0), None]));
    assert!(t.to_string().contains("[suppressed, 4]"), "{t}");
    let released = c.released_at(&sums, 3);
    assert!(released.iter().all(|r| !r));
    let t = c.decode_released(&sums, &released, 2);
    assert!(t.rows.iter().all(|r| r.suppressed));
    assert_eq!(t.rows[0].cells, vec![Cell::Suppressed; 6]);
    assert!(t.to_string().contains("2026-01      suppressed"), "{t}");
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["rows"][0]["suppressed"], true);
    assert!(json["rows"][0]["cells"][0].is_null());
}

#[test]
fn dates_texts_and_unknowns() {
    let c = Query::parse(
        "SELECT count(*) FROM t WHERE d = '2026-03-01' OR (year(d) = 2025 AND day(d) LIKE \
         '2025-12%') OR s BETWEEN 'b' AND 'c' OR f = TRUE",
    )
    .unwrap()
    .compile()
    .unwrap();
    let yes = [
        rec(&[("d", Value::Text("2026-03-01T23:59".into()))]),
        rec(&[("d", Value::Date(Date::new(2026, 3, 1).unwrap()))]),
        rec(&[("d", Value::Text("2025-12-24".into()))]),
        rec(&[("s", Value::Text("bz".into()))]),
        rec(&[("f", Value::Bool(true))]),
    ];
    let no = [
        rec(&[]),
        rec(&[("d", Value::Text("2026-03-02".into()))]),
        rec(&[("d", Value::Number(2026.0))]),
        rec(&[("d", Value::Text("2025-11-24".into()))]),
        rec(&[("s", Value::Text("cz".into()))]),
        rec(&[("f", Value::Text("true".into()))]),
        rec(&[("d", Value::Null), ("s", Value::Number(f64::NAN))]),
    ];
    // count(*), then the row's hidden indicator.
    for r in &yes {
        assert_eq!(c.evaluate(std::slice::from_ref(r)), vec![1.0, 1.0], "{r:?}");
    }
    for r in &no {
        assert_eq!(c.evaluate(std::slice::from_ref(r)), vec![0.0, 0.0], "{r:?}");
    }
}

#[test]
fn buckets() {
    let c = Query::parse(
        "SELECT count(*) FROM t GROUP BY bucket(age, [0, 18, 30, 120]) LIMIT PER CONTRIBUTOR 100",
    )
    .unwrap()
    .compile()
    .unwrap();
    assert_eq!(c.rows(), vec!["[0, 18)", "[18, 30)", "[30, 120]"]);
    let ages = [-1.0, 0.0, 17.9, 18.0, 30.0, 120.0, 120.5];
    let records: Vec<Record> = ages
        .iter()
        .map(|a| rec(&[("age", Value::Number(*a))]))
        .collect();
    // Per row, count(*) and the row's hidden indicator.
    assert_eq!(c.evaluate(&records), vec![2.0, 1.0, 1.0, 1.0, 2.0, 1.0]);
}

#[test]
fn built_queries_are_checked_through_the_parser() {
    let mut q = Query::parse("SELECT sum(x) FROM t CLIP x TO [0, 1]").unwrap();
    assert!(q.compile().is_ok());
    q.clips[0] = Clip::Range {
        field: "x".into(),
        min: 0.0,
        max: f64::NAN,
    };
    assert!(q.compile().is_err());
    q.clips[0] = Clip::Range {
        field: "select".into(),
        min: 0.0,
        max: 1.0,
    };
    assert!(q.compile().is_err());
    q.clips[0] = Clip::Range {
        field: "x y".into(),
        min: 0.0,
        max: 1.0,
    };
    assert!(q.compile().is_err());
    let huge = Query::parse(
        "SELECT sum_vector(w, 1048576), sum_vector(v, 1048576) FROM t \
         GROUP BY k IN (1, 2, 3) CLIP NORM w TO 1 CLIP NORM v TO 1",
    )
    .unwrap();
    assert!(huge.compile().unwrap_err().message.contains("limit"));
}

#[test]
fn a_request_must_carry_the_spec_its_query_compiles_to() {
    let text = "SELECT avg(amount) FROM bank.operations CLIP amount TO [0, 100]";
    let compiled = Query::parse(text).unwrap().compile().unwrap();
    let mut request = crate::request::Request {
        query: text.into(),
        contribution: compiled.spec().clone(),
        ..crate::request::sample_request(1, 1, 2, 5, 3, 0)
    };
    assert_eq!(CompiledQuery::for_request(&request), Ok(compiled));
    request.contribution.scale_digits = 3;
    assert!(CompiledQuery::for_request(&request)
        .unwrap_err()
        .message
        .contains("differs"));
    request.query = "SELECT avg(amount) FROM t".into();
    assert_eq!(CompiledQuery::for_request(&request).unwrap_err().column, 8);
}

#[test]
fn numbers_print_short_and_exact() {
    for x in [
        0.0,
        -0.0,
        1500.0,
        0.1,
        1e300,
        -1e-300,
        5e-324,
        f64::MAX,
        f64::MIN_POSITIVE,
        123456789.123,
    ] {
        let q = Query::parse(&format!(
            "SELECT count(*) FROM t WHERE a = {x:e} AND b = {x}"
        ))
        .unwrap();
        let text = q.to_string();
        assert!(text.len() < 100, "{text}");
        assert_eq!(Query::parse(&text).unwrap(), q);
        let Some(Predicate::And(items)) = &q.filter else {
            panic!()
        };
        let value = |p: &Predicate| match p {
            Predicate::Compare { value, .. } => value.clone(),
            _ => panic!(),
        };
        assert_eq!(value(&items[0]), value(&items[1]));
    }
    // A dense query near the length limit prints longer, yet compiles.
    let dense = format!(
        "SELECT count(*) FROM t WHERE {}",
        vec!["a=1"; 200].join(" OR ")
    );
    let q = Query::parse(&dense).unwrap();
    assert!(q.to_string().len() > dense.len());
    assert!(q.compile().is_ok());
}

#[test]
fn row_labels_stay_distinct() {
    let c = Query::parse("SELECT count(*) FROM t GROUP BY k IN (1, '1', TRUE)")
        .unwrap()
        .compile()
        .unwrap();
    assert_eq!(c.rows(), vec!["1", "'1'", "TRUE"]);
    let c = Query::parse("SELECT count(*) FROM t GROUP BY k IN (1.5, 'a', FALSE)")
        .unwrap()
        .compile()
        .unwrap();
    assert_eq!(c.rows(), vec!["1.5", "a", "false"]);
}

#[test]
fn contribution_and_field_decoding() {
    let c = Query::parse("SELECT count(*), avg(x) FROM t CLIP x TO [-1, 1] SCALE 3")
        .unwrap()
        .compile()
        .unwrap();
    let records = vec![
        rec(&[("x", Value::Number(0.25))]),
        rec(&[("x", Value::Number(-7.0))]),
    ];
    let mine = c.contribution(&records).unwrap();
    let ints: Vec<i64> = mine.iter().map(|x| x.to_i64_centered()).collect();
    // count, sum, count of numbers, and the row's hidden indicator.
    assert_eq!(ints, vec![2000, -750, 2000, 1000]);
    let sum: Vec<crate::field::Fp> = mine.iter().map(|x| *x + *x).collect();
    let t = c.decode_field(&sum, 2);
    assert_eq!(
        t.rows[0].cells,
        vec![Cell::Number(4.0), Cell::Number(-0.375)]
    );
}
