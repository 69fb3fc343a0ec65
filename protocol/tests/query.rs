//! The declarative query language end to end: printing and parsing round trips, hostile text,
//! error positions, an oracle test of evaluate + encode + field sum + decode against a naive
//! interpreter over the union of the contributors' records, and the overflow budget.

use grove_protocol::encoding::EncodingError;
use grove_protocol::field::Fp;
use grove_protocol::query::*;
use proptest::prelude::*;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::cmp::Ordering;

// ---------------------------------------------------------------------------------------
// A generator of valid queries.

/// Fields the record generator fills (with the types it usually gives them), plus one that no
/// record has.
const NUMERIC: &[&str] = &["amount", "age", "nowhere"];
/// Vector fields and the dimension their records usually have.
const VECTORS: &[(&str, u32)] = &[("w", 3), ("v", 2)];

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec![
            "amount", "age", "category", "label", "date", "flag", "nowhere"
        ])
        .prop_map(String::from),
        1 => "[a-zA-Z_][a-zA-Z0-9_]{0,10}".prop_filter("not a keyword", |s| {
            !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(s))
        }),
    ]
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-300i32..1500).prop_map(f64::from),
        2 => (-4000i32..4000).prop_map(|x| f64::from(x) / 8.0),
        1 => -1e6f64..1e6,
        1 => any::<f64>().prop_filter("finite", |x| x.is_finite()),
    ]
}

fn date_text() -> impl Strategy<Value = String> {
    (2025u16..2027, 1u8..13, 1u8..29).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}"))
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["food", "rent", "travel", "fun", "abc", "ab", "xyz"])
            .prop_map(String::from),
        2 => date_text(),
        1 => (2025u16..2027, 1u8..13).prop_map(|(y, m)| format!("{y:04}-{m:02}")),
        1 => "[a-z' é%_\n-]{0,6}",
    ]
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        3 => number().prop_map(Literal::Number),
        3 => text().prop_map(Literal::Text),
        1 => any::<bool>().prop_map(Literal::Bool),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    prop_oneof![
        4 => field().prop_map(Expr::Field),
        1 => field().prop_map(Expr::Year),
        1 => field().prop_map(Expr::Month),
        1 => field().prop_map(Expr::Day),
    ]
}

fn op() -> impl Strategy<Value = CmpOp> {
    prop::sample::select(vec![
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ])
}

fn condition() -> impl Strategy<Value = Predicate> {
    prop_oneof![
        4 => (expr(), op(), literal()).prop_map(|(expr, op, value)| Predicate::Compare {
            expr,
            op,
            value
        }),
        1 => (expr(), prop::collection::vec(literal(), 1..4))
            .prop_map(|(expr, values)| Predicate::In { expr, values }),
        1 => (expr(), literal(), literal())
            .prop_map(|(expr, low, high)| Predicate::Between { expr, low, high }),
        1 => (expr(), "[a-z' é0-9-]{0,4}").prop_map(|(expr, prefix)| Predicate::Like { expr, prefix }),
    ]
}

fn predicate() -> impl Strategy<Value = Predicate> {
    condition().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            1 => inner.clone().prop_map(|p| Predicate::Not(Box::new(p))),
            2 => prop::collection::vec(inner.clone(), 2..4).prop_map(Predicate::And),
            2 => prop::collection::vec(inner, 2..4).prop_map(Predicate::Or),
        ]
    })
}

fn edges() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-100i32..1200, 2..8).prop_filter_map("two distinct edges", |mut v| {
        v.sort_unstable();
        v.dedup();
        (v.len() >= 2).then(|| v.into_iter().map(f64::from).collect())
    })
}

fn aggregate() -> impl Strategy<Value = Aggregate> {
    let numeric = || prop::sample::select(NUMERIC.to_vec()).prop_map(String::from);
    prop_oneof![
        2 => Just(Aggregate::Count),
        1 => Just(Aggregate::CountContributors),
        2 => numeric().prop_map(Aggregate::Sum),
        2 => numeric().prop_map(Aggregate::Avg),
        1 => numeric().prop_map(Aggregate::Var),
        1 => numeric().prop_map(Aggregate::Stddev),
        1 => (numeric(), edges()).prop_map(|(field, edges)| Aggregate::Histogram { field, edges }),
        1 => prop::sample::select(VECTORS.to_vec()).prop_map(|(f, d)| Aggregate::SumVector {
            field: f.into(),
            dimension: d
        }),
    ]
}

fn group_by() -> impl Strategy<Value = Option<GroupBy>> {
    let keys = prop_oneof![
        // Month keys, as the example.
        (
            Just(Expr::Month("date".into())),
            prop::collection::vec(
                (2025u16..2027, 1u8..13).prop_map(|(y, m)| Literal::Text(format!("{y:04}-{m:02}"))),
                1..5
            )
        ),
        (
            prop::sample::select(vec!["category", "label"]).prop_map(|f| Expr::Field(f.into())),
            prop::collection::vec(text().prop_map(Literal::Text), 1..5)
        ),
        (expr(), prop::collection::vec(literal(), 1..5)),
    ]
    .prop_map(|(expr, list)| {
        let mut keys: Vec<Literal> = Vec::new();
        for k in list {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        GroupBy::Keys { expr, keys }
    });
    prop_oneof![
        2 => Just(None),
        2 => keys.prop_map(Some),
        1 => (prop::sample::select(vec!["age", "amount"]), edges()).prop_map(|(f, edges)| {
            Some(GroupBy::Buckets {
                field: f.into(),
                edges,
            })
        }),
    ]
}

/// A valid query: every field that needs a CLIP gets exactly one, in order of first use.
fn query() -> impl Strategy<Value = Query> {
    (
        prop::collection::vec(aggregate(), 1..7),
        prop::sample::select(vec!["bank.operations", "health", "a.b.c"]),
        prop::option::weighted(0.8, predicate()),
        group_by(),
        prop::collection::vec(((-1000i32..1000), (0i32..1000)), 4),
        prop::collection::vec(1i32..20, 2),
        prop::option::of(prop_oneof![1u32..8, 8u32..2000]),
        prop::option::of(0u8..7),
        any::<bool>(),
    )
        .prop_map(
            |(aggregates, collection, filter, group_by, ranges, norms, limit, scale, reverse)| {
                let mut clips: Vec<Clip> = Vec::new();
                for a in &aggregates {
                    let has = |clips: &[Clip], norm: bool, f: &str| {
                        clips
                            .iter()
                            .any(|c| c.field() == f && matches!(c, Clip::Norm { .. }) == norm)
                    };
                    match a {
                        Aggregate::Sum(f)
                        | Aggregate::Avg(f)
                        | Aggregate::Var(f)
                        | Aggregate::Stddev(f)
                            if !has(&clips, false, f) =>
                        {
                            let (lo, width) = ranges[clips.len() % ranges.len()];
                            clips.push(Clip::Range {
                                field: f.clone(),
                                min: f64::from(lo),
                                max: f64::from(lo + width),
                            });
                        }
                        Aggregate::SumVector { field, .. } if !has(&clips, true, field) => {
                            clips.push(Clip::Norm {
                                field: field.clone(),
                                bound: f64::from(norms[clips.len() % 2]) / 4.0,
                            });
                        }
                        _ => {}
                    }
                }
                if reverse {
                    clips.reverse();
                }
                Query {
                    aggregates,
                    collection: collection.into(),
                    filter,
                    group_by,
                    clips,
                    limit_per_contributor: limit,
                    scale,
                    privacy: None,
                }
            },
        )
}

// ---------------------------------------------------------------------------------------
// Round trips, hostile text and error positions.

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn print_then_parse_is_identity(q in query()) {
        let text = q.to_string();
        let back = Query::parse(&text);
        prop_assert_eq!(back.as_ref(), Ok(&q), "{}", text);
        // Canonical: printing is a fixed point.
        prop_assert_eq!(back.unwrap().to_string(), text);
        let c = q.compile();
        prop_assert!(c.is_ok(), "{:?}", c);
    }

    #[test]
    fn a_stray_character_is_reported_where_it_stands(q in query(), at in any::<prop::sample::Index>()) {
        let text = q.to_string();
        // Char offsets outside text literals (a quote toggles; the middle of `''` counts as
        // outside, and there a stray character is indeed out of the literal), not just after
        // a '!' (which is then itself the error, being no operator without its '='), and not
        // inside a number's exponent (`1e#5` is a malformed number, reported where it starts).
        let mut outside = Vec::new();
        let mut inside = false;
        let (mut before, mut previous) = (' ', ' ');
        for (i, c) in text.chars().enumerate() {
            let in_exponent = (previous == 'e' && (before.is_ascii_digit() || before == '.'))
                || (previous == '-' && before == 'e');
            if !inside && previous != '!' && !in_exponent {
                outside.push(i);
            }
            (before, previous) = (previous, c);
            if c == '\'' {
                inside = !inside;
            }
        }
        outside.push(text.chars().count());
        let pos = outside[at.index(outside.len())];
        let mut bad: String = text.chars().take(pos).collect();
        let (mut line, mut column) = (1u32, 1u32);
        for c in bad.chars() {
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        bad.push('#');
        bad.extend(text.chars().skip(pos));
        let e = Query::parse(&bad).unwrap_err();
        prop_assert_eq!((e.line, e.column), (line, column), "{}\n{}", bad, e);
    }

    #[test]
    fn random_text_never_panics(s in any::<String>()) {
        check_hostile(&s);
    }

    #[test]
    fn token_soup_never_panics(words in prop::collection::vec(prop::sample::select(vec![
        "SELECT", "FROM", "WHERE", "GROUP", "BY", "CLIP", "NORM", "TO", "AND", "OR", "NOT", "IN",
        "BETWEEN", "LIKE", "DISTINCT", "CONTRIBUTOR", "LIMIT", "PER", "SCALE", "TRUE", "count",
        "sum", "avg", "var", "stddev", "histogram", "sum_vector", "bucket", "year", "month",
        "day", "amount", "w", "(", ")", "[", "]", ",", ".", "*", "-", "=", "!=", "<", "<=", ">",
        ">=", "'a%'", "'2026-01'", "1", "0", "2.5", "1e400", "'", "--", "\n", "#",
    ]), 0..40)) {
        check_hostile(&words.join(" "));
    }

    #[test]
    fn mutated_queries_never_panic(
        q in query(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..4, any::<char>(),
            prop::sample::select(vec!["(", ")", "'", "AND", "NOT", ",", "[", "-", "1e9", "IN", " "])), 1..4),
    ) {
        let mut chars: Vec<char> = q.to_string().chars().collect();
        for (at, kind, c, word) in edits {
            let i = at.index(chars.len() + 1);
            match kind {
                0 if i < chars.len() => { chars.remove(i); }
                1 => chars.insert(i, c),
                2 => { for (k, w) in word.chars().enumerate() { chars.insert(i + k, w); } }
                _ => chars.truncate(i),
            }
        }
        let text: String = chars.into_iter().collect();
        check_hostile(&text);
    }
}

/// Whatever the text: no panic; an error points inside the text; an accepted query prints
/// canonically and compiles or fails with an error, never a panic.
fn check_hostile(text: &str) {
    match Query::parse(text) {
        Ok(q) => {
            let printed = q.to_string();
            assert_eq!(Query::parse(&printed).as_ref(), Ok(&q), "{text:?}");
            let _ = q.compile();
        }
        Err(e) => {
            let lines: Vec<&str> = text.split('\n').collect();
            assert!(
                e.line >= 1 && e.line as usize <= lines.len(),
                "{e} in {text:?}"
            );
            let len = lines[e.line as usize - 1].chars().count() as u32;
            assert!(e.column >= 1 && e.column <= len + 1, "{e} in {text:?}");
            assert!(!e.message.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------------------
// The oracle: a naive interpreter over the union of the contributors' records.

const CONTRIBUTORS: usize = 40;

fn random_records(rng: &mut ChaCha20Rng) -> Vec<Record> {
    let pick = |rng: &mut ChaCha20Rng, n: u32| rng.next_u32() % n;
    let count = pick(rng, 30) as usize;
    (0..count)
        .map(|_| {
            let mut r = Record::new();
            let amount = match pick(rng, 20) {
                0 => None,
                1 => Some(Value::Text("12".into())),
                2 => Some(Value::Null),
                3 => Some(Value::Number(f64::NAN)),
                _ => Some(Value::Number(
                    f64::from(pick(rng, 170_000) as i32 - 20_000) / 100.0,
                )),
            };
            if let Some(a) = amount {
                r.insert("amount".into(), a);
            }
            if pick(rng, 10) > 0 {
                r.insert("age".into(), Value::Number(f64::from(pick(rng, 100))));
            }
            let cats = ["food", "rent", "travel", "fun"];
            r.insert(
                "category".into(),
                Value::Text(cats[pick(rng, 4) as usize].into()),
            );
            let labels = ["abc", "abd", "xyz", "ab", "é'"];
            r.insert(
                "label".into(),
                Value::Text(labels[pick(rng, 5) as usize].into()),
            );
            let (y, m, d) = (
                2025 + pick(rng, 2) as u16,
                1 + pick(rng, 12) as u8,
                1 + pick(rng, 28) as u8,
            );
            let date = Date::new(y, m, d).expect("day <= 28 exists in every month");
            match pick(rng, 8) {
                0 => {}
                1 => {
                    r.insert("date".into(), Value::Date(date));
                }
                2 => {
                    r.insert("date".into(), Value::Text(format!("{date}T12:30:00Z")));
                }
                3 => {
                    r.insert("date".into(), Value::Text("soon".into()));
                }
                _ => {
                    r.insert("date".into(), Value::Text(date.to_string()));
                }
            }
            r.insert("flag".into(), Value::Bool(pick(rng, 2) == 0));
            for (name, dim) in VECTORS {
                let dim = if pick(rng, 10) == 0 { dim + 1 } else { *dim };
                let v = (0..dim)
                    .map(|_| f64::from(pick(rng, 8001) as i32 - 4000) / 1000.0)
                    .collect();
                r.insert(name.to_string(), Value::NumberArray(v));
            }
            r
        })
        .collect()
}

/// The naive interpreter's view of a value: only what the language can compare.
#[derive(Debug)]
enum V {
    N(f64),
    T(String),
    B(bool),
    D(Date),
}

fn as_date_naive(v: &Value) -> Option<Date> {
    match v {
        Value::Date(d) => Some(*d),
        Value::Text(t) => {
            let head = t.get(..10)?;
            let tail = &t[10..];
            if tail.is_empty() || tail.starts_with('T') || tail.starts_with(' ') {
                Date::parse_iso(head)
            } else {
                None
            }
        }
        _ => None,
    }
}

fn value_of(e: &Expr, r: &Record) -> Option<V> {
    let get = |f: &String| r.get(f);
    Some(match e {
        Expr::Field(f) => match get(f)? {
            Value::Number(x) if x.is_finite() => V::N(*x),
            Value::Text(t) => V::T(t.clone()),
            Value::Bool(b) => V::B(*b),
            Value::Date(d) => V::D(*d),
            _ => return None,
        },
        Expr::Year(f) => V::N(as_date_naive(get(f)?)?.year as f64),
        Expr::Month(f) => {
            let d = as_date_naive(get(f)?)?;
            V::T(format!("{:04}-{:02}", d.year, d.month))
        }
        Expr::Day(f) => V::T(as_date_naive(get(f)?)?.to_string()),
    })
}

fn cmp_naive(v: &V, l: &Literal) -> Option<Ordering> {
    match (v, l) {
        (V::N(a), Literal::Number(b)) => a.partial_cmp(b),
        (V::B(a), Literal::Bool(b)) => Some(a.cmp(b)),
        (V::D(d), Literal::Text(t)) => Some(d.cmp(&Date::parse_iso(t)?)),
        (V::T(s), Literal::Text(t)) => {
            let as_value = Value::Text(s.clone());
            match (as_date_naive(&as_value), Date::parse_iso(t)) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => Some(s.as_str().cmp(t.as_str())),
            }
        }
        _ => None,
    }
}

/// 0 = false, 1 = unknown, 2 = true (Kleene logic as min / max).
fn holds(p: &Predicate, r: &Record) -> u8 {
    let tv = |o: Option<bool>| match o {
        None => 1,
        Some(true) => 2,
        Some(false) => 0,
    };
    match p {
        Predicate::Compare { expr, op, value } => tv(value_of(expr, r)
            .and_then(|v| cmp_naive(&v, value))
            .map(|o| match op {
                CmpOp::Eq => o.is_eq(),
                CmpOp::Ne => o.is_ne(),
                CmpOp::Lt => o.is_lt(),
                CmpOp::Le => o.is_le(),
                CmpOp::Gt => o.is_gt(),
                CmpOp::Ge => o.is_ge(),
            })),
        Predicate::In { expr, values } => match value_of(expr, r) {
            None => 1,
            Some(v) => values
                .iter()
                .map(|l| tv(cmp_naive(&v, l).map(|o| o.is_eq())))
                .max()
                .unwrap_or(0),
        },
        Predicate::Between { expr, low, high } => match value_of(expr, r) {
            None => 1,
            Some(v) => tv(cmp_naive(&v, low).map(|o| o.is_ge()))
                .min(tv(cmp_naive(&v, high).map(|o| o.is_le()))),
        },
        Predicate::Like { expr, prefix } => tv(match value_of(expr, r) {
            Some(V::T(s)) => Some(s.starts_with(prefix.as_str())),
            Some(V::D(d)) => Some(d.to_string().starts_with(prefix.as_str())),
            _ => None,
        }),
        Predicate::Not(p) => 2 - holds(p, r),
        Predicate::And(ps) => ps.iter().map(|p| holds(p, r)).min().unwrap_or(2),
        Predicate::Or(ps) => ps.iter().map(|p| holds(p, r)).max().unwrap_or(0),
    }
}

fn naive_bucket(edges: &[f64], x: f64) -> Option<usize> {
    let k = edges.len() - 1;
    (0..k).find(|&i| x >= edges[i] && (x < edges[i + 1] || (i + 1 == k && x == edges[k])))
}

fn naive_group(q: &Query, r: &Record) -> Option<usize> {
    if let Some(p) = &q.filter {
        if holds(p, r) != 2 {
            return None;
        }
    }
    match &q.group_by {
        None => Some(0),
        Some(GroupBy::Keys { expr, keys }) => {
            let v = value_of(expr, r)?;
            keys.iter()
                .position(|k| cmp_naive(&v, k) == Some(Ordering::Equal))
        }
        Some(GroupBy::Buckets { field, edges }) => match r.get(field)? {
            Value::Number(x) if x.is_finite() => naive_bucket(edges, *x),
            _ => None,
        },
    }
}

fn num(r: &Record, f: &str) -> Option<f64> {
    match r.get(f)? {
        Value::Number(x) if x.is_finite() => Some(*x),
        _ => None,
    }
}

fn clipped(q: &Query, f: &str, x: f64) -> f64 {
    for c in &q.clips {
        if let Clip::Range { field, min, max } = c {
            if field == f {
                return x.clamp(*min, *max);
            }
        }
    }
    panic!("no clip for {f}")
}

fn norm_bound(q: &Query, f: &str) -> f64 {
    for c in &q.clips {
        if let Clip::Norm { field, bound } = c {
            if field == f {
                return *bound;
            }
        }
    }
    panic!("no norm for {f}")
}

fn shrink_to(v: Vec<f64>, bound: f64) -> Vec<f64> {
    let norm: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm <= bound {
        v
    } else {
        v.iter().map(|x| x * bound / norm).collect()
    }
}

/// The expected table: for each row, for each aggregate, a cell.
fn naive(q: &Query, contributors: &[Vec<Record>]) -> Vec<Vec<Cell>> {
    let rows = match &q.group_by {
        None => 1,
        Some(GroupBy::Keys { keys, .. }) => keys.len(),
        Some(GroupBy::Buckets { edges, .. }) => edges.len() - 1,
    };
    let limit = q.limit_per_contributor.unwrap_or(1000) as usize;
    // used[c][g]: the records contributor c uses in row g.
    let used: Vec<Vec<Vec<&Record>>> = contributors
        .iter()
        .map(|records| {
            let mut by_row = vec![Vec::new(); rows];
            for (g, r) in records
                .iter()
                .filter_map(|r| naive_group(q, r).map(|g| (g, r)))
                .take(limit)
            {
                by_row[g].push(r);
            }
            by_row
        })
        .collect();
    (0..rows)
        .map(|g| {
            let all: Vec<&Record> = used.iter().flat_map(|c| c[g].iter().copied()).collect();
            q.aggregates
                .iter()
                .map(|a| {
                    let xs = |f: &str| -> Vec<f64> {
                        all.iter()
                            .filter_map(|r| num(r, f))
                            .map(|x| clipped(q, f, x))
                            .collect()
                    };
                    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
                    let variance = |v: &[f64]| {
                        let m = mean(v);
                        v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64
                    };
                    match a {
                        Aggregate::Count => Cell::Number(all.len() as f64),
                        Aggregate::CountContributors => {
                            Cell::Number(used.iter().filter(|c| !c[g].is_empty()).count() as f64)
                        }
                        Aggregate::Sum(f) => Cell::Number(xs(f).iter().sum()),
                        Aggregate::Avg(f) => {
                            let v = xs(f);
                            if v.is_empty() {
                                Cell::Null
                            } else {
                                Cell::Number(mean(&v))
                            }
                        }
                        Aggregate::Var(f) | Aggregate::Stddev(f) => {
                            let v = xs(f);
                            if v.is_empty() {
                                Cell::Null
                            } else if matches!(a, Aggregate::Var(_)) {
                                Cell::Number(variance(&v))
                            } else {
                                Cell::Number(variance(&v).sqrt())
                            }
                        }
                        Aggregate::Histogram { field, edges } => {
                            let mut h = vec![0.0; edges.len() - 1];
                            for r in &all {
                                if let Some(b) = num(r, field).and_then(|x| naive_bucket(edges, x))
                                {
                                    h[b] += 1.0;
                                }
                            }
                            Cell::List(h.into_iter().map(Some).collect())
                        }
                        Aggregate::SumVector { field, dimension } => {
                            let bound = norm_bound(q, field);
                            let mut total = vec![0.0; *dimension as usize];
                            for c in &used {
                                let mut mine = vec![0.0; *dimension as usize];
                                for r in &c[g] {
                                    if let Some(Value::NumberArray(v)) = r.get(field) {
                                        if v.len() == *dimension as usize
                                            && v.iter().all(|x| x.is_finite())
                                        {
                                            for (m, x) in
                                                mine.iter_mut().zip(shrink_to(v.clone(), bound))
                                            {
                                                *m += x;
                                            }
                                        }
                                    }
                                }
                                for (t, x) in total.iter_mut().zip(shrink_to(mine, bound)) {
                                    *t += x;
                                }
                            }
                            Cell::List(total.into_iter().map(Some).collect())
                        }
                    }
                })
                .collect()
        })
        .collect()
}

/// Runs the protocol's path: evaluate per contributor, encode, sum in the field, decode.
fn through_the_field(c: &CompiledQuery, contributors: &[Vec<Record>]) -> ResultTable {
    let mut sum = vec![Fp::default(); c.spec().length as usize];
    for records in contributors {
        let v = c.evaluate(records);
        assert_eq!(v.len(), c.spec().length as usize);
        for (k, x) in v.iter().enumerate() {
            let col = &c.columns()[k % c.columns().len()];
            assert!(
                *x >= col.min && *x <= col.max,
                "element {k} = {x} outside the per-contributor bounds [{}, {}]",
                col.min,
                col.max
            );
        }
        let encoded = c.spec().encode(&v).expect("evaluate gives finite values");
        for (s, e) in sum.iter_mut().zip(encoded) {
            *s += e;
        }
    }
    let decoded = c.spec().decode_sum(&sum);
    c.decode(&decoded, contributors.len() as u64)
}

fn close(expected: f64, got: f64, tol: f64) -> bool {
    (expected - got).abs() <= tol + 1e-9 * expected.abs().max(1.0)
}

/// Compares the protocol's path with the naive interpreter; gives the number of cells that
/// hold something other than zero or null (so that a test can show it is not vacuous).
fn compare_with_naive(q: &Query, contributors: &[Vec<Record>]) -> Result<usize, String> {
    let c = q.compile().map_err(|e| e.to_string())?;
    c.spec()
        .validate(contributors.len() as u64)
        .map_err(|e| e.to_string())?;
    let table = through_the_field(&c, contributors);
    let expected = naive(q, contributors);
    if table.rows.len() != expected.len() || table.contributors != contributors.len() as u64 {
        return Err(format!("shape differs: {table}"));
    }
    // One contributor's rounding is at most half a unit of the last digit.
    let unit = 10f64.powi(-i32::from(c.spec().scale_digits));
    let t_sum = contributors.len() as f64 * unit / 2.0;
    let mut nonzero = 0;
    for (g, (row, exp)) in table.rows.iter().zip(&expected).enumerate() {
        for ((a, got), want) in q.aggregates.iter().zip(&row.cells).zip(exp) {
            // Counts (and so the divisors below) are exact.
            let count = |f: &str| expected_count(q, contributors, g, f);
            let tol = match a {
                Aggregate::Sum(_) | Aggregate::SumVector { .. } => t_sum,
                Aggregate::Avg(f) => t_sum / count(f),
                Aggregate::Var(f) | Aggregate::Stddev(f) => {
                    let n = count(f);
                    let (lo, hi) = clip_of(q, f);
                    let m = lo.abs().max(hi.abs());
                    let t_var = t_sum / n + (2.0 * m + t_sum / n) * t_sum / n + 1e-6 * m * m;
                    if matches!(a, Aggregate::Var(_)) {
                        t_var
                    } else {
                        t_var.sqrt()
                    }
                }
                _ => 0.0,
            };
            let ok = match (want, got) {
                (Cell::Null, Cell::Null) => true,
                (Cell::Number(w), Cell::Number(g)) => {
                    nonzero += usize::from(*w != 0.0);
                    close(*w, *g, tol)
                }
                (Cell::List(w), Cell::List(g)) => {
                    nonzero += usize::from(w.iter().any(|x| *x != Some(0.0)));
                    w.len() == g.len()
                        && w.iter().zip(g).all(|(w, g)| match (w, g) {
                            (Some(w), Some(g)) => close(*w, *g, tol),
                            _ => false,
                        })
                }
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "{a}: {want:?} expected, {got:?} decoded (tolerance {tol}) in\n{q}\n{table}"
                ));
            }
        }
    }
    Ok(nonzero)
}

fn forty_contributors(seed: u64) -> Vec<Vec<Record>> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..CONTRIBUTORS)
        .map(|_| random_records(&mut rng))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 30, failure_persistence: None, ..ProptestConfig::default() })]

    /// 40 contributors' random records, 30 random queries: the decoded field sum equals the
    /// naive interpreter's result within fixed-point resolution.
    #[test]
    fn oracle(q in query(), seed in any::<u64>()) {
        let result = compare_with_naive(&q, &forty_contributors(seed));
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}

#[test]
fn oracle_on_realistic_queries() {
    let queries = [
        "SELECT count(*), sum(amount), avg(amount), var(amount), stddev(amount), \
         histogram(amount, [0, 10, 50, 100, 500]), count(DISTINCT CONTRIBUTOR) \
         FROM bank.operations \
         WHERE category = 'food' AND date >= '2025-06-01' AND NOT (amount < 0) \
         GROUP BY month(date) IN ('2025-06', '2025-07', '2025-12', '2026-01') \
         CLIP amount TO [0, 1000]",
        "SELECT count(*), avg(amount) FROM health GROUP BY bucket(age, [0, 18, 30, 50, 70, 120]) \
         CLIP amount TO [-50, 500] LIMIT PER CONTRIBUTOR 5 SCALE 3",
        "SELECT count(*), sum_vector(w, 3), sum_vector(v, 2) FROM model \
         WHERE label LIKE 'ab%' OR flag = TRUE CLIP NORM w TO 2.5 CLIP NORM v TO 1",
        "SELECT count(*) FROM t WHERE year(date) = 2026 AND category IN ('rent', 'fun') \
         AND age BETWEEN 20 AND 60",
    ];
    for (i, text) in queries.iter().enumerate() {
        let q = Query::parse(text).unwrap();
        let nonzero = compare_with_naive(&q, &forty_contributors(i as u64)).unwrap();
        assert!(
            nonzero >= q.aggregates.len(),
            "{nonzero} nonzero cells for\n{q}"
        );
    }
}

fn clip_of(q: &Query, f: &str) -> (f64, f64) {
    q.clips
        .iter()
        .find_map(|c| match c {
            Clip::Range { field, min, max } if field == f => Some((*min, *max)),
            _ => None,
        })
        .expect("a clip for every summed field")
}

/// The number of records of row `g` whose field `f` is a number (naively).
fn expected_count(q: &Query, contributors: &[Vec<Record>], g: usize, f: &str) -> f64 {
    let limit = q.limit_per_contributor.unwrap_or(1000) as usize;
    contributors
        .iter()
        .flat_map(|records| {
            records
                .iter()
                .filter_map(|r| naive_group(q, r).map(|gr| (gr, r)))
                .take(limit)
        })
        .filter(|(gr, r)| *gr == g && num(r, f).is_some())
        .count() as f64
}

// ---------------------------------------------------------------------------------------
// The overflow budget.

#[test]
fn the_budget_refuses_queries_whose_sums_could_wrap() {
    // var(amount) has a sum-of-squares column; one contributor adds at most
    // 1000 records * (10^6)^2 * 10^2 (scale) = 10^17, and (P - 1) / 2 is about 9.22 * 10^18.
    let q = Query::parse(
        "SELECT var(amount) FROM t CLIP amount TO [0, 1000000] LIMIT PER CONTRIBUTOR 1000",
    )
    .unwrap();
    let c = q.compile().unwrap();
    assert_eq!(c.columns()[1].kind, ColumnKind::SumOfSquares);
    assert_eq!(c.columns()[1].max, 1e15);
    assert_eq!(c.spec().validate(92), Ok(()));
    assert_eq!(
        c.spec().validate(93),
        Err(EncodingError::OverflowBudget {
            index: 1,
            max_contributors: 93
        })
    );
    // The bound is real: 93 worst-case contributors do wrap, 92 do not.
    let worst: Vec<Record> = (0..1500)
        .map(|_| Record::from([("amount".to_string(), Value::Number(5e6))]))
        .collect();
    let v = c.evaluate(&worst);
    // sum, sum of squares, count, and the row's hidden indicator.
    assert_eq!(v, vec![1e9, 1e15, 1000.0, 1.0]);
    let sum_of = |k: usize| {
        let e = c.spec().encode(&v).unwrap();
        let mut s = vec![Fp::default(); 4];
        for _ in 0..k {
            for (a, b) in s.iter_mut().zip(&e) {
                *a += *b;
            }
        }
        c.spec().decode_sum(&s)
    };
    assert_eq!(sum_of(92)[1], 9.2e16);
    assert!(sum_of(93)[1] < 0.0, "the field sum wrapped");
    // A smaller per-contributor limit buys contributors.
    let q = Query::parse(
        "SELECT var(amount) FROM t CLIP amount TO [0, 1000000] LIMIT PER CONTRIBUTOR 10",
    )
    .unwrap();
    assert!(q.compile().unwrap().spec().validate(1100).is_ok());
    // So does a coarser scale, and a narrower clip.
    let q = Query::parse(
        "SELECT var(amount) FROM t CLIP amount TO [0, 1000000] LIMIT PER CONTRIBUTOR 1000 SCALE 0",
    )
    .unwrap();
    assert!(q.compile().unwrap().spec().validate(1100).is_ok());
    // A bound too large for even one contributor is refused when compiling.
    let q = Query::parse(
        "SELECT var(amount) FROM t CLIP amount TO [0, 1e9] LIMIT PER CONTRIBUTOR 1000000 SCALE 6",
    )
    .unwrap();
    assert!(q.compile().is_err());
}

#[test]
fn result_table_serializes_and_prints() {
    let q = Query::parse(
        "SELECT count(*), avg(amount), histogram(amount, [0, 10, 100]) FROM bank.operations \
         GROUP BY category IN ('food', 'rent') CLIP amount TO [0, 100]",
    )
    .unwrap();
    let c = q.compile().unwrap();
    // Per row: count, sum and count of avg, the histogram's counts and bucket indicators, the
    // row's hidden indicator.
    let t = c.decode(
        &[
            3.0, 30.0, 3.0, 1.0, 2.0, 1.0, 1.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ],
        7,
    );
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "group_by": "category",
            "columns": ["count(*)", "avg(amount)", "histogram(amount, [0, 10, 100])"],
            "rows": [
                {"key": "food", "suppressed": false, "cells": [3.0, 10.0, [1.0, 2.0]]},
                {"key": "rent", "suppressed": false, "cells": [0.0, null, [0.0, 0.0]]},
            ],
            "contributors": 7,
        })
    );
    assert_eq!(
        t.to_string(),
        "category  count(*)  avg(amount)  histogram(amount, [0, 10, 100])\n\
         --------  --------  -----------  -------------------------------\n\
         food             3           10                           [1, 2]\n\
         rent             0            -                           [0, 0]\n\
         (7 contributors)"
    );
}
