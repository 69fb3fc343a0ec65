//! The query oracle: random records as a node stores them (JSON objects), random queries
//! from the grammar, and a direct, separately written evaluation of a query over the union
//! of every contributor's records, to compare Grove's results with.
//!
//! The generator builds each query as a small tree of its own ([`Q`]) and prints it as text;
//! the reference evaluator interprets that tree over JSON, without the protocol crate's
//! parser or evaluator. Randomness is a seeded SplitMix64.

use serde_json::Value;
use std::fmt::Write;

pub type Object = serde_json::Map<String, Value>;

/// A seeded SplitMix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    /// Uniform in `[lo, hi]`, rounded to `digits` decimals.
    pub fn real(&mut self, lo: f64, hi: f64, digits: i32) -> f64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let p = 10f64.powi(digits);
        ((lo + u * (hi - lo)) * p).round() / p
    }
}

pub const COLLECTION: &str = "oracle.data";
pub const CATEGORIES: [&str; 5] = ["food", "rent", "travel", "health", "fun"];
pub const MONTHS: [&str; 4] = ["2026-01", "2026-02", "2026-03", "2026-04"];
pub const DIM: u32 = 3;

/// Node `i`'s records: 0 to 14 of them with `amount` (number, sometimes missing, null or a
/// text), `category`, `date` (a day, sometimes with a time), `steps`, `flag` and `v` (a
/// vector of [`DIM`], sometimes of another length).
pub fn records(seed: u64, i: usize) -> Vec<Object> {
    let mut rng = Rng::new(seed ^ (i as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
    let n = rng.below(15);
    (0..n)
        .map(|_| {
            let mut r = Object::new();
            let amount = match rng.below(12) {
                0 => None,
                1 => Some(Value::Null),
                2 => Some(Value::String("12.5".into())),
                _ => Some(Value::from(rng.real(-50.0, 600.0, 2))),
            };
            if let Some(a) = amount {
                r.insert("amount".into(), a);
            }
            if !rng.chance(0.05) {
                r.insert("category".into(), Value::from(*rng.pick(&CATEGORIES)));
            }
            let month = 1 + rng.below(4);
            let day = 1 + rng.below(28);
            let date = if rng.chance(0.2) {
                format!("2026-{month:02}-{day:02}T08:30:00")
            } else {
                format!("2026-{month:02}-{day:02}")
            };
            if !rng.chance(0.05) {
                r.insert("date".into(), Value::from(date));
            }
            r.insert("steps".into(), Value::from(rng.below(25_000) as f64));
            r.insert("flag".into(), Value::from(rng.chance(0.5)));
            let len = if rng.chance(0.1) { 2 } else { DIM as usize };
            let v: Vec<Value> = (0..len)
                .map(|_| Value::from(rng.real(-2.0, 2.0, 3)))
                .collect();
            r.insert("v".into(), Value::Array(v));
            r
        })
        .collect()
}

/// What an expression reads.
#[derive(Clone, Debug)]
pub enum E {
    Field(&'static str),
    Year(&'static str),
    Month(&'static str),
    Day(&'static str),
}

#[derive(Clone, Debug)]
pub enum L {
    N(f64),
    T(String),
    B(bool),
}

#[derive(Clone, Debug)]
pub enum P {
    Cmp(E, &'static str, L),
    In(E, Vec<L>),
    Between(E, L, L),
    Like(E, String),
    Not(Box<P>),
    And(Vec<P>),
    Or(Vec<P>),
}

#[derive(Clone, Debug)]
pub enum A {
    Count,
    Distinct,
    Sum(&'static str),
    Avg(&'static str),
    Var(&'static str),
    Stddev(&'static str),
    Hist(&'static str, Vec<f64>),
    Vector(&'static str),
}

#[derive(Clone, Debug)]
pub enum G {
    Keys(E, Vec<L>),
    Buckets(&'static str, Vec<f64>),
}

/// A generated query.
#[derive(Clone, Debug)]
pub struct Q {
    pub aggregates: Vec<A>,
    pub filter: Option<P>,
    pub group: Option<G>,
    /// `(field, min, max)` for every field of sum, avg, var, stddev.
    pub clips: Vec<(&'static str, f64, f64)>,
    /// The norm bound of `v`, if a vector is summed.
    pub norm: Option<f64>,
    pub limit: Option<u32>,
    pub scale: u8,
}

const NUMERIC: [&str; 2] = ["amount", "steps"];

fn literal_for(rng: &mut Rng, e: &E) -> L {
    match e {
        E::Field("amount") => L::N(rng.real(-20.0, 500.0, 1)),
        E::Field("steps") => L::N(rng.below(25_000) as f64),
        E::Field("flag") => L::B(rng.chance(0.5)),
        E::Field("category") => L::T(rng.pick(&CATEGORIES).to_string()),
        E::Field(_) | E::Day(_) => L::T(format!(
            "2026-{:02}-{:02}",
            1 + rng.below(4),
            1 + rng.below(28)
        )),
        E::Year(_) => L::N(*rng.pick(&[2025.0, 2026.0])),
        E::Month(_) => L::T(rng.pick(&MONTHS).to_string()),
    }
}

fn expr(rng: &mut Rng) -> E {
    match rng.below(7) {
        0 => E::Field("amount"),
        1 => E::Field("steps"),
        2 => E::Field("category"),
        3 => E::Field("date"),
        4 => E::Month("date"),
        5 => E::Year("date"),
        _ => E::Field("flag"),
    }
}

fn predicate(rng: &mut Rng, depth: u32) -> P {
    let leaf = depth == 0 || rng.chance(0.5);
    if !leaf {
        return match rng.below(3) {
            0 => P::Not(Box::new(predicate(rng, depth - 1))),
            1 => P::And(
                (0..2 + rng.below(2))
                    .map(|_| predicate(rng, depth - 1))
                    .collect(),
            ),
            _ => P::Or((0..2).map(|_| predicate(rng, depth - 1)).collect()),
        };
    }
    let e = expr(rng);
    match rng.below(5) {
        0 if !matches!(e, E::Field("flag")) => {
            let a = literal_for(rng, &e);
            let b = literal_for(rng, &e);
            P::Between(e, a, b)
        }
        1 => {
            let n = 1 + rng.below(3);
            let values = (0..n).map(|_| literal_for(rng, &e)).collect();
            P::In(e, values)
        }
        2 if matches!(e, E::Field("category") | E::Month(_) | E::Field("date")) => {
            let prefix = match e {
                E::Field("category") => rng.pick(&["f", "fo", "r", "he", ""]).to_string(),
                _ => rng.pick(&["2026-0", "2026-02", "2026-03-1"]).to_string(),
            };
            P::Like(e, prefix)
        }
        _ => {
            let op = *rng.pick(&["=", "!=", "<", "<=", ">", ">="]);
            let l = literal_for(rng, &e);
            P::Cmp(e, op, l)
        }
    }
}

/// Strictly increasing edges within `[lo, hi]`.
fn edges(rng: &mut Rng, lo: f64, hi: f64) -> Vec<f64> {
    let k = 2 + rng.below(4) as usize;
    let mut e: Vec<f64> = (0..=k).map(|_| rng.real(lo, hi, 0)).collect();
    e.sort_by(f64::total_cmp);
    e.dedup();
    if e.len() < 2 {
        e = vec![lo, hi];
    }
    e
}

/// A random query of the grammar over [`COLLECTION`].
pub fn query(rng: &mut Rng) -> Q {
    let mut aggregates = Vec::new();
    let n = 1 + rng.below(4);
    for _ in 0..n {
        let f = *rng.pick(&NUMERIC);
        let a = match rng.below(8) {
            0 => A::Count,
            1 => A::Distinct,
            2 => A::Sum(f),
            3 => A::Avg(f),
            4 => A::Var(f),
            5 => A::Stddev(f),
            6 => A::Hist("amount", edges(rng, -50.0, 600.0)),
            _ => A::Vector("v"),
        };
        aggregates.push(a);
    }
    let filter = rng.chance(0.75).then(|| predicate(rng, 2));
    let group = match rng.below(4) {
        0 => None,
        1 => Some(G::Keys(
            E::Field("category"),
            CATEGORIES[..2 + rng.below(4) as usize]
                .iter()
                .map(|c| L::T(c.to_string()))
                .collect(),
        )),
        2 => Some(G::Keys(
            E::Month("date"),
            MONTHS[..1 + rng.below(4) as usize]
                .iter()
                .map(|m| L::T(m.to_string()))
                .collect(),
        )),
        _ => Some(G::Buckets("steps", edges(rng, 0.0, 25_000.0))),
    };
    let mut clips: Vec<(&'static str, f64, f64)> = Vec::new();
    let mut norm = None;
    for a in &aggregates {
        match a {
            A::Sum(f) | A::Avg(f) | A::Var(f) | A::Stddev(f)
                if !clips.iter().any(|c| c.0 == *f) =>
            {
                let (lo, hi) = if *f == "amount" {
                    (rng.real(-40.0, 0.0, 0), rng.real(100.0, 550.0, 0))
                } else {
                    (0.0, rng.real(5_000.0, 20_000.0, 0))
                };
                clips.push((f, lo, hi));
            }
            A::Vector(_) => norm = Some(rng.real(0.5, 3.0, 1)),
            _ => {}
        }
    }
    Q {
        aggregates,
        filter,
        group,
        clips,
        norm,
        limit: rng.chance(0.4).then(|| 1 + rng.below(10) as u32),
        scale: rng.below(4) as u8,
    }
}

fn fmt_e(e: &E) -> String {
    match e {
        E::Field(f) => f.to_string(),
        E::Year(f) => format!("year({f})"),
        E::Month(f) => format!("month({f})"),
        E::Day(f) => format!("day({f})"),
    }
}

fn fmt_l(l: &L) -> String {
    match l {
        L::N(x) => format!("{x}"),
        L::T(t) => format!("'{}'", t.replace('\'', "''")),
        L::B(b) => if *b { "TRUE" } else { "FALSE" }.into(),
    }
}

fn fmt_p(p: &P) -> String {
    match p {
        P::Cmp(e, op, l) => format!("{} {op} {}", fmt_e(e), fmt_l(l)),
        P::In(e, ls) => format!(
            "{} IN ({})",
            fmt_e(e),
            ls.iter().map(fmt_l).collect::<Vec<_>>().join(", ")
        ),
        P::Between(e, a, b) => format!("{} BETWEEN {} AND {}", fmt_e(e), fmt_l(a), fmt_l(b)),
        P::Like(e, prefix) => format!("{} LIKE '{prefix}%'", fmt_e(e)),
        P::Not(p) => format!("NOT ({})", fmt_p(p)),
        P::And(ps) => ps
            .iter()
            .map(|p| format!("({})", fmt_p(p)))
            .collect::<Vec<_>>()
            .join(" AND "),
        P::Or(ps) => ps
            .iter()
            .map(|p| format!("({})", fmt_p(p)))
            .collect::<Vec<_>>()
            .join(" OR "),
    }
}

fn fmt_edges(e: &[f64]) -> String {
    format!(
        "[{}]",
        e.iter()
            .map(|x| format!("{x}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

impl Q {
    /// The query as text (not canonical: the node prints it canonically).
    pub fn text(&self) -> String {
        let mut s = String::from("SELECT ");
        let aggs: Vec<String> = self
            .aggregates
            .iter()
            .map(|a| match a {
                A::Count => "count(*)".into(),
                A::Distinct => "count(DISTINCT CONTRIBUTOR)".into(),
                A::Sum(f) => format!("sum({f})"),
                A::Avg(f) => format!("avg({f})"),
                A::Var(f) => format!("var({f})"),
                A::Stddev(f) => format!("stddev({f})"),
                A::Hist(f, e) => format!("histogram({f}, {})", fmt_edges(e)),
                A::Vector(f) => format!("sum_vector({f}, {DIM})"),
            })
            .collect();
        s += &aggs.join(", ");
        let _ = write!(s, " FROM {COLLECTION}");
        if let Some(p) = &self.filter {
            let _ = write!(s, " WHERE {}", fmt_p(p));
        }
        match &self.group {
            Some(G::Keys(e, keys)) => {
                let _ = write!(
                    s,
                    " GROUP BY {} IN ({})",
                    fmt_e(e),
                    keys.iter().map(fmt_l).collect::<Vec<_>>().join(", ")
                );
            }
            Some(G::Buckets(f, e)) => {
                let _ = write!(s, " GROUP BY bucket({f}, {})", fmt_edges(e));
            }
            None => {}
        }
        for (f, lo, hi) in &self.clips {
            let _ = write!(s, " CLIP {f} TO [{lo}, {hi}]");
        }
        if let Some(c) = self.norm {
            let _ = write!(s, " CLIP NORM v TO {c}");
        }
        if let Some(n) = self.limit {
            let _ = write!(s, " LIMIT PER CONTRIBUTOR {n}");
        }
        let _ = write!(s, " SCALE {}", self.scale);
        s
    }

    pub fn rows(&self) -> usize {
        match &self.group {
            None => 1,
            Some(G::Keys(_, k)) => k.len(),
            Some(G::Buckets(_, e)) => e.len() - 1,
        }
    }

    fn clip_of(&self, f: &str) -> (f64, f64) {
        self.clips
            .iter()
            .find(|c| c.0 == f)
            .map(|c| (c.1, c.2))
            .unwrap_or((f64::NEG_INFINITY, f64::INFINITY))
    }
}

// ---- the reference evaluation

/// A value as the query sees it.
#[derive(Clone, Debug, PartialEq)]
enum V {
    N(f64),
    T(String),
    B(bool),
}

/// A `YYYY-MM-DD` day at the start of a text (alone, or followed by `T` or a space), as
/// `(year, month, day)`.
fn day_of(t: &str) -> Option<(u32, u32, u32)> {
    let b = t.as_bytes();
    if b.len() < 10 || (b.len() > 10 && b[10] != b'T' && b[10] != b' ') {
        return None;
    }
    let head = t.get(..10)?;
    let parts: Vec<&str> = head.split('-').collect();
    if parts.len() != 3 || parts[0].len() != 4 || parts[1].len() != 2 || parts[2].len() != 2 {
        return None;
    }
    if !head.chars().enumerate().all(|(i, c)| {
        if i == 4 || i == 7 {
            c == '-'
        } else {
            c.is_ascii_digit()
        }
    }) {
        return None;
    }
    let (y, m, d) = (
        parts[0].parse().ok()?,
        parts[1].parse().ok()?,
        parts[2].parse().ok()?,
    );
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let valid = (1..=12).contains(&m) && d >= 1 && d <= days[m as usize - 1];
    valid.then_some((y, m, d))
}

fn read(e: &E, r: &Object) -> Option<V> {
    let field = |f: &str| -> Option<V> {
        match r.get(f)? {
            Value::Number(n) => n.as_f64().filter(|x| x.is_finite()).map(V::N),
            Value::String(s) => Some(V::T(s.clone())),
            Value::Bool(b) => Some(V::B(*b)),
            _ => None,
        }
    };
    match e {
        E::Field(f) => field(f),
        E::Year(f) | E::Month(f) | E::Day(f) => {
            let V::T(t) = field(f)? else { return None };
            let (y, m, d) = day_of(&t)?;
            Some(match e {
                E::Year(_) => V::N(y as f64),
                E::Month(_) => V::T(format!("{y:04}-{m:02}")),
                _ => V::T(format!("{y:04}-{m:02}-{d:02}")),
            })
        }
    }
}

fn lit(l: &L) -> V {
    match l {
        L::N(x) => V::N(*x),
        L::T(t) => V::T(t.clone()),
        L::B(b) => V::B(*b),
    }
}

/// Compares a record's value with a constant: numbers as numbers, booleans as booleans, a
/// text constant that is a day with a value that starts with a day as days, other texts
/// byte by byte; anything else is unknown.
fn cmp(v: &V, l: &V) -> Option<std::cmp::Ordering> {
    match (v, l) {
        (V::N(a), V::N(b)) => a.partial_cmp(b),
        (V::B(a), V::B(b)) => Some(a.cmp(b)),
        (V::T(a), V::T(b)) => {
            if b.len() == 10 && day_of(b).is_some() {
                Some(day_of(a)?.cmp(&day_of(b)?))
            } else {
                Some(a.as_bytes().cmp(b.as_bytes()))
            }
        }
        _ => None,
    }
}

/// Three-valued truth: `None` is unknown.
fn truth(p: &P, r: &Object) -> Option<bool> {
    use std::cmp::Ordering::*;
    match p {
        P::Cmp(e, op, l) => {
            let o = cmp(&read(e, r)?, &lit(l))?;
            Some(match *op {
                "=" => o == Equal,
                "!=" => o != Equal,
                "<" => o == Less,
                "<=" => o != Greater,
                ">" => o == Greater,
                _ => o != Less,
            })
        }
        P::In(e, ls) => {
            let v = read(e, r)?;
            let mut unknown = false;
            for l in ls {
                match cmp(&v, &lit(l)) {
                    Some(Equal) => return Some(true),
                    None => unknown = true,
                    _ => {}
                }
            }
            if unknown {
                None
            } else {
                Some(false)
            }
        }
        P::Between(e, a, b) => {
            let v = read(e, r)?;
            let lo = cmp(&v, &lit(a))?;
            let hi = cmp(&v, &lit(b))?;
            Some(lo != Less && hi != Greater)
        }
        P::Like(e, prefix) => match read(e, r)? {
            V::T(t) => Some(t.starts_with(prefix.as_str())),
            _ => None,
        },
        P::Not(p) => truth(p, r).map(|b| !b),
        P::And(ps) => {
            let mut out = Some(true);
            for p in ps {
                match truth(p, r) {
                    Some(false) => return Some(false),
                    None => out = None,
                    Some(true) => {}
                }
            }
            out
        }
        P::Or(ps) => {
            let mut out = Some(false);
            for p in ps {
                match truth(p, r) {
                    Some(true) => return Some(true),
                    None => out = None,
                    Some(false) => {}
                }
            }
            out
        }
    }
}

/// Bucket of `x` among `edges`: `[e_i, e_{i+1})`, the last one closed.
fn bucket(edges: &[f64], x: f64) -> Option<usize> {
    let k = edges.len() - 1;
    if x < edges[0] || x > edges[k] {
        return None;
    }
    (0..k).find(|&i| x < edges[i + 1] || i == k - 1)
}

fn number(r: &Object, f: &str) -> Option<f64> {
    r.get(f)?.as_f64().filter(|x| x.is_finite())
}

fn row_of(q: &Q, r: &Object) -> Option<usize> {
    if let Some(p) = &q.filter {
        if truth(p, r) != Some(true) {
            return None;
        }
    }
    match &q.group {
        None => Some(0),
        Some(G::Keys(e, keys)) => {
            let v = read(e, r)?;
            keys.iter()
                .position(|k| cmp(&v, &lit(k)) == Some(std::cmp::Ordering::Equal))
        }
        Some(G::Buckets(f, edges)) => bucket(edges, number(r, f)?),
    }
}

fn clip_norm(v: &mut [f64], c: f64) {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if n > c {
        v.iter_mut().for_each(|x| *x *= c / n);
    }
}

/// Per row: what the union of the contributors' used records gives, before division.
#[derive(Clone, Debug, Default)]
struct Acc {
    count: f64,
    distinct: f64,
    /// Per field: (sum, sum of squares, count).
    moments: std::collections::BTreeMap<&'static str, (f64, f64, f64)>,
    hist: Vec<Vec<f64>>,
    /// Per histogram and bucket: contributors with a used record in it.
    hist_distinct: Vec<Vec<f64>>,
    vector: Vec<f64>,
}

/// Sum, sum of squares and count of a field's clipped values.
pub type Moments = (f64, f64, f64);

/// One cell of the reference result.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Number(f64),
    List(Vec<f64>),
    Null,
}

/// The reference result: cells per row, and how many contributors used at least one record.
#[derive(Clone, Debug)]
pub struct Expected {
    pub rows: Vec<Vec<Cell>>,
    pub contributors: u64,
    /// Per row: the contributors with a used record in it (a row below `k_min` is withheld).
    pub row_contributors: Vec<f64>,
    /// Per row, per aggregate (empty but for histograms), per bucket: the contributors with a
    /// used record in that bucket (a bucket below `k_min` is withheld).
    pub bucket_contributors: Vec<Vec<Vec<f64>>>,
    /// Per row: `(field, (sum, sum of squares, count))` of the clipped values used.
    pub moments: Vec<Vec<(&'static str, Moments)>>,
}

/// Whether a node with these records uses at least one of them (and so contributes).
pub fn uses_any(q: &Q, records: &[Object]) -> bool {
    records.iter().any(|r| row_of(q, r).is_some())
}

/// Evaluates `q` directly over every contributor's records.
pub fn evaluate(q: &Q, contributors: &[Vec<Object>]) -> Expected {
    let rows = q.rows();
    let hist_len: Vec<usize> = q
        .aggregates
        .iter()
        .map(|a| match a {
            A::Hist(_, e) => e.len() - 1,
            _ => 0,
        })
        .collect();
    let mut acc: Vec<Acc> = (0..rows)
        .map(|_| Acc {
            hist: hist_len.iter().map(|&k| vec![0.0; k]).collect(),
            hist_distinct: hist_len.iter().map(|&k| vec![0.0; k]).collect(),
            vector: vec![0.0; DIM as usize],
            ..Acc::default()
        })
        .collect();
    let limit = q.limit.unwrap_or(1000) as usize;
    let mut included = 0;
    for records in contributors {
        let used: Vec<(usize, &Object)> = records
            .iter()
            .filter_map(|r| row_of(q, r).map(|g| (g, r)))
            .take(limit)
            .collect();
        if used.is_empty() {
            continue;
        }
        included += 1;
        let mut mine: Vec<Vec<f64>> = vec![vec![0.0; DIM as usize]; rows];
        let mut seen = vec![false; rows];
        let mut seen_bucket: Vec<Vec<Vec<bool>>> = (0..rows)
            .map(|_| hist_len.iter().map(|&k| vec![false; k]).collect())
            .collect();
        for (g, r) in used {
            seen[g] = true;
            let a = &mut acc[g];
            a.count += 1.0;
            for f in NUMERIC {
                if let Some(x) = number(r, f) {
                    let (lo, hi) = q.clip_of(f);
                    let x = x.clamp(lo, hi);
                    let m = a.moments.entry(f).or_default();
                    m.0 += x;
                    m.1 += x * x;
                    m.2 += 1.0;
                }
            }
            for (k, agg) in q.aggregates.iter().enumerate() {
                if let A::Hist(f, e) = agg {
                    if let Some(b) = number(r, f).and_then(|x| bucket(e, x)) {
                        a.hist[k][b] += 1.0;
                        seen_bucket[g][k][b] = true;
                    }
                }
            }
            if let (Some(c), Some(Value::Array(items))) = (q.norm, r.get("v")) {
                let v: Option<Vec<f64>> = items.iter().map(|x| x.as_f64()).collect();
                if let Some(mut v) = v.filter(|v| v.len() == DIM as usize) {
                    clip_norm(&mut v, c);
                    for (m, x) in mine[g].iter_mut().zip(v) {
                        *m += x;
                    }
                }
            }
        }
        for g in 0..rows {
            if seen[g] {
                acc[g].distinct += 1.0;
            }
            for (k, buckets) in seen_bucket[g].iter().enumerate() {
                for (b, seen) in buckets.iter().enumerate() {
                    if *seen {
                        acc[g].hist_distinct[k][b] += 1.0;
                    }
                }
            }
            if let Some(c) = q.norm {
                clip_norm(&mut mine[g], c);
            }
            for (s, x) in acc[g].vector.iter_mut().zip(&mine[g]) {
                *s += x;
            }
        }
    }
    let rows = acc
        .iter()
        .map(|a| {
            q.aggregates
                .iter()
                .enumerate()
                .map(|(k, agg)| {
                    let m = |f: &str| a.moments.get(f).copied().unwrap_or((0.0, 0.0, 0.0));
                    let var = |f: &str| {
                        let (s, sq, n) = m(f);
                        (n > 0.0).then(|| (sq / n - (s / n) * (s / n)).max(0.0))
                    };
                    match agg {
                        A::Count => Cell::Number(a.count),
                        A::Distinct => Cell::Number(a.distinct),
                        A::Sum(f) => Cell::Number(m(f).0),
                        A::Avg(f) => {
                            let (s, _, n) = m(f);
                            if n > 0.0 {
                                Cell::Number(s / n)
                            } else {
                                Cell::Null
                            }
                        }
                        A::Var(f) => var(f).map_or(Cell::Null, Cell::Number),
                        A::Stddev(f) => var(f).map_or(Cell::Null, |v| Cell::Number(v.sqrt())),
                        A::Hist(..) => Cell::List(a.hist[k].clone()),
                        A::Vector(_) => Cell::List(a.vector.clone()),
                    }
                })
                .collect()
        })
        .collect();
    Expected {
        rows,
        contributors: included,
        row_contributors: acc.iter().map(|a| a.distinct).collect(),
        bucket_contributors: acc.iter().map(|a| a.hist_distinct.clone()).collect(),
        moments: acc
            .iter()
            .map(|a| a.moments.iter().map(|(f, m)| (*f, *m)).collect())
            .collect(),
    }
}

/// Whether the reference withholds everything at `k_min`: no row counts `k_min`
/// contributors (a row's cell governs every element of the row).
pub fn all_withheld(expected: &Expected, k_min: u64) -> bool {
    expected.row_contributors.iter().all(|c| *c < k_min as f64)
}

/// Compares a decoded Grove result (`table` as JSON: `rows[].cells[]`) with the reference,
/// within the fixed-point resolution, at `k_min`: a row of fewer than `k_min` contributors
/// must be withheld (`suppressed`, every cell null), and so must a histogram bucket of fewer
/// (null in its list); every other cell must match. Every contributor's element is rounded once, to within
/// `0.5 * 10^-scale`, so a sum, count or list element is off by at most `step =
/// contributors * 0.5 * 10^-scale`; an average over `n` values by `step / n`; a variance by
/// `e_q + 2 |mean| e_m + e_m^2` with `e_q = e_m = step / n`; a standard deviation `s` by
/// that over `s` (or its square root when `s` is 0). Plus `1e-9` relative, for the order of
/// floating-point additions. Returns the first mismatch.
pub fn compare(q: &Q, expected: &Expected, table: &Value, k_min: u64) -> Result<(), String> {
    let step = 0.5 * 10f64.powi(-(q.scale as i32)) * expected.contributors.max(1) as f64;
    let rows = table["rows"].as_array().ok_or("no rows")?;
    if rows.len() != expected.rows.len() {
        return Err(format!(
            "{} rows, expected {}",
            rows.len(),
            expected.rows.len()
        ));
    }
    for (g, (row, want)) in rows.iter().zip(&expected.rows).enumerate() {
        let cells = row["cells"].as_array().ok_or("no cells")?;
        if cells.len() != want.len() {
            return Err(format!(
                "row {g}: {} cells, expected {}",
                cells.len(),
                want.len()
            ));
        }
        let withheld = expected.row_contributors[g] < k_min as f64;
        if row["suppressed"].as_bool() != Some(withheld) {
            return Err(format!(
                "row {g} of {} contributors: suppressed is {}, k_min = {k_min}",
                expected.row_contributors[g], row["suppressed"]
            ));
        }
        if withheld {
            if cells.iter().any(|c| !c.is_null()) {
                return Err(format!("row {g} is suppressed but shows a value: {row}"));
            }
            continue;
        }
        for (k, (got, want)) in cells.iter().zip(want).enumerate() {
            let bad = |t: f64| {
                format!("row {g}, column {k}: got {got}, expected {want:?} (tolerance {t})")
            };
            let plain = |w: f64| step + 1e-9 * w.abs().max(1.0);
            match (want, got) {
                (Cell::Null, Value::Null) => {}
                (Cell::Number(w), Value::Number(x)) => {
                    let x = x.as_f64().unwrap_or(f64::NAN);
                    let t = match &q.aggregates[k] {
                        A::Avg(f) | A::Var(f) | A::Stddev(f) => {
                            let (s, _, n) = expected.moments[g]
                                .iter()
                                .find(|m| m.0 == *f)
                                .map(|m| m.1)
                                .unwrap_or((0.0, 0.0, 1.0));
                            let n = n.max(1.0);
                            let e = step / n;
                            let e_var = e + 2.0 * (s / n).abs() * e + e * e;
                            let t = match &q.aggregates[k] {
                                A::Avg(_) => e,
                                A::Var(_) => e_var,
                                _ if *w > 0.0 => e_var / w,
                                _ => e_var.sqrt(),
                            };
                            t + 1e-9 * w.abs().max(1.0) * (s / n).abs().max(1.0)
                        }
                        _ => plain(*w),
                    };
                    if (x - w).abs() > t {
                        return Err(bad(t));
                    }
                }
                (Cell::List(w), Value::Array(xs)) if w.len() == xs.len() => {
                    let counts = expected.bucket_contributors[g]
                        .get(k)
                        .filter(|c| !c.is_empty());
                    for (i, (a, b)) in w.iter().zip(xs).enumerate() {
                        // A histogram bucket of fewer than k_min contributors is withheld.
                        if counts.is_some_and(|c| c[i] < k_min as f64) {
                            if !b.is_null() {
                                return Err(format!(
                                    "row {g}, column {k}: bucket {i} of {} contributors shows {b}",
                                    counts.map_or(0.0, |c| c[i])
                                ));
                            }
                            continue;
                        }
                        let b = b.as_f64().unwrap_or(f64::NAN);
                        if (a - b).abs() > plain(*a) {
                            return Err(bad(plain(*a)));
                        }
                    }
                }
                _ => return Err(bad(0.0)),
            }
        }
    }
    Ok(())
}
