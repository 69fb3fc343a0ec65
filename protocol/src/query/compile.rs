//! From a query to the layout of every contributor's vector; local evaluation; decoding.

use super::ast::*;
use super::column::{Column, ColumnKind};
use super::result::{Cell, ResultRow, ResultTable};
use super::value::{cmp_f64, Date, Record, Value};
use super::{QueryError, DEFAULT_RECORDS_PER_CONTRIBUTOR, DEFAULT_SCALE_DIGITS};
use crate::encoding::{BoundRange, CellLayout, ContributionSpec, CountedCell, EncodingError};
use crate::field::Fp;
use crate::limits;
use crate::request::Request;
use std::borrow::Cow;
use std::cmp::Ordering;

/// A query with its layout. The contribution vector has `rows().len()` blocks of
/// `columns().len()` elements each, row after row: element `r * columns().len() + c` holds
/// column `c` of row `r`. (A `GROUP BY` key or bucket makes a *row* of the result; the word
/// *group* is kept for the protocol's groups of positions.) Only [`Query::compile`] makes one, so the parts always
/// agree with each other.
///
/// Every row counts its contributors in one indicator column (the first `count(DISTINCT
/// CONTRIBUTOR)`, or a hidden column at the end of the block), and every histogram bucket in
/// one hidden column after the histogram's counts: these are the cells of the spec
/// ([`CellLayout`]), which the root group releases only when they count `k_min`
/// contributors.
#[derive(Clone, Debug, PartialEq)]
pub struct CompiledQuery {
    query: Query,
    spec: ContributionSpec,
    privacy_parts: Vec<crate::dp::Part>,
    records_per_contributor: u32,
    rows: Vec<String>,
    columns: Vec<Column>,
    /// The block offset of the row's indicator column.
    row_indicator: usize,
    /// Per aggregate, the block offset of its first column.
    offsets: Vec<usize>,
}

fn layout_error(message: String) -> QueryError {
    QueryError::new(1, 1, message)
}

impl Query {
    /// Fixes the layout and the per-contributor bounds (see [`CompiledQuery`]).
    ///
    /// A query built by hand goes through the printer and the parser first, so it is checked
    /// exactly like the text a request carries (an error then points into the printed text);
    /// a query that does not survive that round trip is refused. Layout errors (the vector
    /// would exceed `MAX_VECTOR_LEN` elements or `MAX_BOUND_RANGES` runs) point at line 1,
    /// column 1. The overflow budget depends on the request's `max_contributors` and is
    /// checked by [`ContributionSpec::validate`] on `spec`.
    pub fn compile(&self) -> Result<CompiledQuery, QueryError> {
        let text = self.to_string();
        // Without the length limit: a query accepted from text near the limit may print a
        // little longer (the printer adds spaces).
        let reparsed = super::parser::parse(&text, false)?;
        if reparsed != *self {
            return Err(layout_error(format!(
                "the query does not survive printing and parsing; it prints as:\n{text}"
            )));
        }
        let n = self
            .limit_per_contributor
            .unwrap_or(DEFAULT_RECORDS_PER_CONTRIBUTOR);
        let nf = f64::from(n);
        let rows: Vec<String> = match &self.group_by {
            None => vec![String::new()],
            Some(GroupBy::Keys { keys, .. }) => key_labels(keys),
            Some(GroupBy::Buckets { edges, .. }) => bucket_labels(edges),
        };
        // Count the block before building it: a wild dimension must not allocate.
        let mut width: u64 = 0;
        for a in &self.aggregates {
            width += match a {
                Aggregate::Count | Aggregate::CountContributors | Aggregate::Sum(_) => 1,
                Aggregate::Avg(_) => 2,
                Aggregate::Var(_) | Aggregate::Stddev(_) => 3,
                // A count and a hidden indicator per bucket.
                Aggregate::Histogram { edges, .. } => 2 * (edges.len() as u64 - 1),
                Aggregate::SumVector { dimension, .. } => u64::from(*dimension),
            };
        }
        let selects_contributors = self.aggregates.contains(&Aggregate::CountContributors);
        if !selects_contributors {
            width += 1; // the row's hidden indicator
        }
        let length = width * rows.len() as u64;
        if length > u64::from(limits::MAX_VECTOR_LEN) {
            return Err(layout_error(format!(
                "the contribution vector would hold {length} elements ({} rows of {width}), \
                 over the limit of {}",
                rows.len(),
                limits::MAX_VECTOR_LEN
            )));
        }
        let range_of = |field: &str| range_clip(self, field);
        let norm_of = |field: &str| norm_clip(self, field);
        let mut columns = Vec::with_capacity(width as usize);
        let mut cells: Vec<CountedCell> = Vec::new();
        for (i, a) in self.aggregates.iter().enumerate() {
            let first = columns.len() as u32;
            let mut push = |kind, min: f64, max: f64| {
                columns.push(Column {
                    aggregate: Some(i),
                    kind,
                    min,
                    max,
                })
            };
            let sum_bounds = |f: &str| {
                let (a, b) = range_of(f);
                ((nf * a).min(0.0), (nf * b).max(0.0))
            };
            let square_bound = |f: &str| {
                let (a, b) = range_of(f);
                nf * (a * a).max(b * b)
            };
            match a {
                Aggregate::Count => push(ColumnKind::Records, 0.0, nf),
                Aggregate::CountContributors => push(ColumnKind::Contributor, 0.0, 1.0),
                Aggregate::Sum(f) => {
                    let (lo, hi) = sum_bounds(f);
                    push(ColumnKind::Sum, lo, hi);
                }
                Aggregate::Avg(f) => {
                    let (lo, hi) = sum_bounds(f);
                    push(ColumnKind::Sum, lo, hi);
                    push(ColumnKind::Count, 0.0, nf);
                }
                Aggregate::Var(f) | Aggregate::Stddev(f) => {
                    let (lo, hi) = sum_bounds(f);
                    push(ColumnKind::Sum, lo, hi);
                    push(ColumnKind::SumOfSquares, 0.0, square_bound(f));
                    push(ColumnKind::Count, 0.0, nf);
                }
                Aggregate::Histogram { edges, .. } => {
                    let k = edges.len() as u32 - 1;
                    for b in 0..k {
                        push(ColumnKind::Bucket(b), 0.0, nf);
                    }
                    for b in 0..k {
                        push(ColumnKind::BucketContributor(b), 0.0, 1.0);
                        cells.push(CountedCell {
                            indicator: first + k + b,
                            start: first + b,
                            len: 1,
                        });
                    }
                }
                Aggregate::SumVector { field, dimension } => {
                    let c = norm_of(field);
                    for j in 0..*dimension {
                        push(ColumnKind::Coordinate(j), -c, c);
                    }
                }
            }
        }
        if !selects_contributors {
            columns.push(Column {
                aggregate: None,
                kind: ColumnKind::Contributor,
                min: 0.0,
                max: 1.0,
            });
        }
        let row_indicator = columns
            .iter()
            .position(|c| c.kind == ColumnKind::Contributor)
            .unwrap_or(columns.len().saturating_sub(1));
        // The row's cell first: it governs the whole block.
        cells.insert(
            0,
            CountedCell {
                indicator: row_indicator as u32,
                start: 0,
                len: width as u32,
            },
        );
        let mut offsets = vec![0usize; self.aggregates.len()];
        for (c, col) in columns.iter().enumerate().rev() {
            if let Some(a) = col.aggregate {
                offsets[a] = c;
            }
        }
        let mut bounds: Vec<BoundRange> = Vec::new();
        for _ in &rows {
            for c in &columns {
                match bounds.last_mut() {
                    Some(b) if b.min == c.min && b.max == c.max => b.count += 1,
                    _ => {
                        if bounds.len() == limits::MAX_BOUND_RANGES {
                            return Err(layout_error(format!(
                                "the layout needs more than {} runs of bounds; use fewer \
                                 rows or aggregates",
                                limits::MAX_BOUND_RANGES
                            )));
                        }
                        bounds.push(BoundRange {
                            count: 1,
                            min: c.min,
                            max: c.max,
                        })
                    }
                }
            }
        }
        let scale_digits = self.scale.unwrap_or(DEFAULT_SCALE_DIGITS);
        let parts = super::privacy::parts(
            self,
            &columns,
            rows.len(),
            n,
            10f64.powi(i32::from(scale_digits)),
            range_of,
            norm_of,
        );
        let noise = super::privacy::noise(self, &parts, width as usize, rows.len())
            .map_err(layout_error)?;
        let spec = ContributionSpec {
            // At most MAX_VECTOR_LEN, checked above.
            length: length as u32,
            bounds,
            scale_digits,
            // At most MAX_VECTOR_LEN, checked above.
            cells: CellLayout {
                width: width as u32,
                cells,
            },
            noise,
        };
        // Structure only (one contributor): bounds too large for a single value are refused
        // here; the request checks the budget for its max_contributors.
        spec.validate(1)
            .and_then(|()| spec.validate_cells())
            .map_err(|e| layout_error(e.to_string()))?;
        Ok(CompiledQuery {
            query: self.clone(),
            spec,
            privacy_parts: parts,
            records_per_contributor: n,
            rows,
            columns,
            row_indicator,
            offsets,
        })
    }
}

/// Row labels of declared keys: texts as they are, numbers and booleans printed; if two keys
/// would then read the same (`1` and `'1'`), every key is labelled as the query writes it
/// (`1` and `'1'`), which is unambiguous because the keys are distinct.
fn key_labels(keys: &[Literal]) -> Vec<String> {
    let plain: Vec<String> = keys
        .iter()
        .map(|k| match k {
            Literal::Text(s) => s.clone(),
            Literal::Number(x) => format!("{x}"),
            Literal::Bool(b) => b.to_string(),
        })
        .collect();
    let mut sorted: Vec<&String> = plain.iter().collect();
    sorted.sort();
    sorted.dedup();
    if sorted.len() == plain.len() {
        plain
    } else {
        keys.iter().map(|k| k.to_string()).collect()
    }
}

fn bucket_labels(edges: &[f64]) -> Vec<String> {
    let k = edges.len() - 1;
    (0..k)
        .map(|i| {
            let close = if i + 1 == k { ']' } else { ')' };
            format!("[{}, {}{close}", edges[i], edges[i + 1])
        })
        .collect()
}

/// Which bucket of `edges` holds `x`: `[e_i, e_{i+1})`, the last one closed; `None` outside.
pub(crate) fn bucket_of(edges: &[f64], x: f64) -> Option<usize> {
    let below = edges.partition_point(|&e| e <= x);
    if below == 0 {
        None
    } else if below == edges.len() {
        (edges.last() == Some(&x)).then(|| edges.len() - 2)
    } else {
        Some(below - 1)
    }
}

/// What an expression reads from a record.
#[derive(Debug, PartialEq)]
enum Operand<'a> {
    Number(f64),
    Text(Cow<'a, str>),
    Bool(bool),
    Date(Date),
}

fn read<'a>(expr: &Expr, r: &'a Record) -> Option<Operand<'a>> {
    match expr {
        Expr::Field(f) => match r.get(f)? {
            Value::Number(x) if x.is_finite() => Some(Operand::Number(*x)),
            Value::Text(s) => Some(Operand::Text(Cow::Borrowed(s))),
            Value::Bool(b) => Some(Operand::Bool(*b)),
            Value::Date(d) => Some(Operand::Date(*d)),
            _ => None,
        },
        Expr::Year(f) => Some(Operand::Number(f64::from(r.get(f)?.as_date()?.year))),
        Expr::Month(f) => Some(Operand::Text(Cow::Owned(r.get(f)?.as_date()?.month_text()))),
        Expr::Day(f) => Some(Operand::Text(Cow::Owned(r.get(f)?.as_date()?.to_string()))),
    }
}

/// Compares a value with a literal; `None` when they are not comparable. Numbers compare with
/// numbers, booleans with booleans (false < true). A date (or a text that starts with a date)
/// compares as a date with a text literal that is a date `YYYY-MM-DD`; other texts compare
/// byte by byte.
fn compare(v: &Operand, lit: &Literal) -> Option<Ordering> {
    match (v, lit) {
        (Operand::Number(a), Literal::Number(b)) => Some(cmp_f64(*a, *b)),
        (Operand::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        (Operand::Date(d), Literal::Text(t)) => Date::parse_iso(t).map(|l| d.cmp(&l)),
        (Operand::Text(s), Literal::Text(t)) => match (Date::parse_prefix(s), Date::parse_iso(t)) {
            (Some(d), Some(l)) => Some(d.cmp(&l)),
            _ => Some(s.as_bytes().cmp(t.as_bytes())),
        },
        _ => None,
    }
}

fn test(op: CmpOp, o: Ordering) -> bool {
    match op {
        CmpOp::Eq => o == Ordering::Equal,
        CmpOp::Ne => o != Ordering::Equal,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::Le => o != Ordering::Greater,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::Ge => o != Ordering::Less,
    }
}

/// Kleene AND / OR over unknowns.
fn all(items: impl Iterator<Item = Option<bool>>) -> Option<bool> {
    let mut unknown = false;
    for x in items {
        match x {
            Some(false) => return Some(false),
            None => unknown = true,
            Some(true) => {}
        }
    }
    if unknown {
        None
    } else {
        Some(true)
    }
}

fn any(items: impl Iterator<Item = Option<bool>>) -> Option<bool> {
    all(items.map(|x| x.map(|b| !b))).map(|b| !b)
}

/// Three-valued truth of a predicate on a record: `None` is unknown (a field missing or of
/// the wrong type).
pub(crate) fn truth(p: &Predicate, r: &Record) -> Option<bool> {
    match p {
        Predicate::Compare { expr, op, value } => {
            let v = read(expr, r)?;
            compare(&v, value).map(|o| test(*op, o))
        }
        Predicate::In { expr, values } => {
            let v = read(expr, r)?;
            any(values
                .iter()
                .map(|l| compare(&v, l).map(|o| o == Ordering::Equal)))
        }
        Predicate::Between { expr, low, high } => {
            let v = read(expr, r)?;
            all([
                compare(&v, low).map(|o| o != Ordering::Less),
                compare(&v, high).map(|o| o != Ordering::Greater),
            ]
            .into_iter())
        }
        Predicate::Like { expr, prefix } => match read(expr, r)? {
            Operand::Text(s) => Some(s.starts_with(prefix.as_str())),
            Operand::Date(d) => Some(d.to_string().starts_with(prefix.as_str())),
            _ => None,
        },
        Predicate::Not(p) => truth(p, r).map(|b| !b),
        Predicate::And(ps) => all(ps.iter().map(|p| truth(p, r))),
        Predicate::Or(ps) => any(ps.iter().map(|p| truth(p, r))),
    }
}

/// The `CLIP field TO [min, max]` of a field. The parser guarantees one for every field of
/// `sum`, `avg`, `var` and `stddev`, the only callers' fields; `(0, 0)` otherwise.
pub(super) fn range_clip(q: &Query, field: &str) -> (f64, f64) {
    q.clips
        .iter()
        .find_map(|c| match c {
            Clip::Range { field: f, min, max } if f == field => Some((*min, *max)),
            _ => None,
        })
        .unwrap_or((0.0, 0.0))
}

/// The `CLIP NORM field TO bound` of a field. The parser guarantees one for every field of
/// `sum_vector`, the only callers' fields; `0` otherwise.
fn norm_clip(q: &Query, field: &str) -> f64 {
    q.clips
        .iter()
        .find_map(|c| match c {
            Clip::Norm { field: f, bound } if f == field => Some(*bound),
            _ => None,
        })
        .unwrap_or(0.0)
}

fn clip(x: f64, min: f64, max: f64) -> f64 {
    x.max(min).min(max)
}

/// Scales `v` down to L2 norm at most `bound` (unchanged if already inside).
fn clip_norm(v: &mut [f64], bound: f64) {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > bound {
        let k = bound / norm;
        for x in v.iter_mut() {
            *x *= k;
        }
    }
}

impl CompiledQuery {
    /// The query as compiled.
    pub fn query(&self) -> &Query {
        &self.query
    }
    /// The request's contribution spec: length, run-length bounds, scale.
    pub fn spec(&self) -> &ContributionSpec {
        &self.spec
    }
    /// The parts of a block with their L2 sensitivity in encoded units, for one owner's
    /// records replaced by others (`query/privacy.rs`); the noise is calibrated on them.
    pub fn privacy_parts(&self) -> &[crate::dp::Part] {
        &self.privacy_parts
    }
    /// Per aggregate, the block offset of its first column; and the row indicator's offset.
    pub(super) fn offsets(&self) -> (&[usize], usize) {
        (&self.offsets, self.row_indicator)
    }
    /// At most this many records of one contributor are used (`LIMIT PER CONTRIBUTOR`).
    pub fn records_per_contributor(&self) -> u32 {
        self.records_per_contributor
    }
    /// One label per row: the `GROUP BY` key as text, or the bucket as `[lo, hi)` (one empty
    /// label without `GROUP BY`).
    pub fn rows(&self) -> &[String] {
        &self.rows
    }
    /// The columns of one row's block, with their per-contributor bounds.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// What a contributor sends before sharing: [`evaluate`](Self::evaluate), then
    /// `spec.encode` (fixed point, in the field).
    pub fn contribution(&self, records: &[Record]) -> Result<Vec<Fp>, EncodingError> {
        self.spec.encode(&self.evaluate(records))
    }

    /// [`decode`](Self::decode) of a released field sum.
    pub fn decode_field(&self, sum: &[Fp], contributors: u64) -> ResultTable {
        self.decode(&self.spec.decode_sum(sum), contributors)
    }

    /// Which elements the root group releases from a plaintext sum in real units (as
    /// `evaluate` sums give, or `spec.decode_sum`) at `k_min`: every cell whose indicator sums
    /// to at least `k_min` contributors, and what only such cells govern. For plaintext
    /// references (the demo, the oracle tests); the root group decides on shares, not on this.
    pub fn released_at(&self, sums: &[f64], k_min: u64) -> Vec<bool> {
        let cells: Vec<bool> = self
            .spec
            .indicator_elements()
            .into_iter()
            .map(|e| sums.get(e).is_some_and(|c| *c >= k_min as f64 - 0.5))
            .collect();
        self.spec.released_elements(&cells)
    }

    /// Parses and compiles a request's query, and checks that the request's contribution
    /// spec is exactly the one the query compiles to (a node evaluates a request only
    /// through this). A mismatch is reported at line 1, column 1. The overflow budget for the
    /// request's `max_contributors` is checked by `Request::validate_params`.
    pub fn for_request(request: &Request) -> Result<CompiledQuery, QueryError> {
        let compiled = Query::parse(&request.query)?.compile()?;
        if compiled.spec != request.contribution {
            return Err(layout_error(
                "the request's contribution spec differs from the one its query compiles to".into(),
            ));
        }
        Ok(compiled)
    }

    /// The row a record falls in, if it is used at all (passes `WHERE`, and its key is one
    /// of the declared keys or falls in a bucket).
    pub fn row_of(&self, r: &Record) -> Option<usize> {
        if let Some(p) = &self.query.filter {
            if truth(p, r) != Some(true) {
                return None;
            }
        }
        match &self.query.group_by {
            None => Some(0),
            Some(GroupBy::Keys { expr, keys }) => {
                let v = read(expr, r)?;
                keys.iter()
                    .position(|k| compare(&v, k) == Some(Ordering::Equal))
            }
            Some(GroupBy::Buckets { field, edges }) => bucket_of(edges, r.get(field)?.as_number()?),
        }
    }

    /// The vector this contributor sends, in real units (the node encodes it with
    /// `spec.encode`). Pure and total: a record that does not match, or whose aggregated
    /// field is missing or of the wrong type, is skipped (see [`Value`]). Only the first
    /// `records_per_contributor` used records, in the order given, count; a node passes its
    /// records in a stable order. Every element is within its column's bounds.
    pub fn evaluate(&self, records: &[Record]) -> Vec<f64> {
        let width = self.columns.len();
        let mut out = vec![0.0; self.spec.length as usize];
        let mut used: u32 = 0;
        let offsets = &self.offsets;
        let mut scratch: Vec<f64> = Vec::new();
        for r in records {
            if used >= self.records_per_contributor {
                break;
            }
            let Some(g) = self.row_of(r) else {
                continue;
            };
            used += 1;
            let block = &mut out[g * width..(g + 1) * width];
            block[self.row_indicator] = 1.0;
            for (i, a) in self.query.aggregates.iter().enumerate() {
                let o = offsets[i];
                let number = |f: &str| r.get(f).and_then(Value::as_number);
                match a {
                    Aggregate::Count => block[o] += 1.0,
                    Aggregate::CountContributors => block[o] = 1.0,
                    Aggregate::Sum(f) => {
                        if let Some(x) = number(f) {
                            block[o] += clip(x, self.range(f).0, self.range(f).1);
                        }
                    }
                    Aggregate::Avg(f) => {
                        if let Some(x) = number(f) {
                            block[o] += clip(x, self.range(f).0, self.range(f).1);
                            block[o + 1] += 1.0;
                        }
                    }
                    Aggregate::Var(f) | Aggregate::Stddev(f) => {
                        if let Some(x) = number(f) {
                            let x = clip(x, self.range(f).0, self.range(f).1);
                            block[o] += x;
                            block[o + 1] += x * x;
                            block[o + 2] += 1.0;
                        }
                    }
                    Aggregate::Histogram { field, edges } => {
                        if let Some(b) = number(field).and_then(|x| bucket_of(edges, x)) {
                            block[o + b] += 1.0;
                            block[o + edges.len() - 1 + b] = 1.0;
                        }
                    }
                    Aggregate::SumVector { field, dimension } => {
                        let Some(Value::NumberArray(v)) = r.get(field) else {
                            continue;
                        };
                        if v.len() != *dimension as usize || !v.iter().all(|x| x.is_finite()) {
                            continue;
                        }
                        scratch.clear();
                        scratch.extend_from_slice(v);
                        clip_norm(&mut scratch, self.norm(field));
                        for (acc, x) in block[o..o + v.len()].iter_mut().zip(&scratch) {
                            *acc += x;
                        }
                    }
                }
            }
        }
        // A contributor's sum of vectors in a row is clipped again, so one contributor moves the
        // result by at most the norm bound.
        for (i, a) in self.query.aggregates.iter().enumerate() {
            if let Aggregate::SumVector { field, dimension } = a {
                let bound = self.norm(field);
                for g in 0..self.rows.len() {
                    let start = g * width + offsets[i];
                    clip_norm(&mut out[start..start + *dimension as usize], bound);
                }
            }
        }
        // Floating-point sums of clipped values may pass a bound by an ulp; `encode` clips
        // too, but the promise here is exact.
        for (k, x) in out.iter_mut().enumerate() {
            let c = &self.columns[k % width];
            *x = clip(*x, c.min, c.max);
        }
        out
    }

    fn range(&self, field: &str) -> (f64, f64) {
        range_clip(&self.query, field)
    }

    fn norm(&self, field: &str) -> f64 {
        norm_clip(&self.query, field)
    }

    /// Turns a plaintext sum (decoded to real units, `spec.decode_sum`), every cell of it
    /// released, into a table; see [`decode_released`](Self::decode_released).
    pub fn decode(&self, sums: &[f64], contributors: u64) -> ResultTable {
        self.decode_released(sums, &vec![true; self.spec.length as usize], contributors)
    }

    /// Turns the released sum (decoded to real units, `spec.decode_sum`) into a table:
    /// `avg = sum / count`, `var = max(0, E[x^2] - E[x]^2)` over records, `stddev = sqrt(var)`
    /// (null over no record; with noise, null too where the noisy count is below
    /// `accuracy::RATIO_MIN_DEVIATIONS` of its deviations; each clamped to what the clipped
    /// records allow), `histogram` and `sum_vector` as lists. `released` says which
    /// elements the root group released (one flag per element): a row whose indicator was
    /// withheld is suppressed (every cell [`Cell::Suppressed`]), a histogram bucket withheld
    /// reads `None` in its list. Elements past the end of a short `sums` decode as null; extra
    /// elements are ignored.
    pub fn decode_released(
        &self,
        sums: &[f64],
        released: &[bool],
        contributors: u64,
    ) -> ResultTable {
        self.decode_with(sums, released, contributors, true)
    }

    /// [`decode_released`](Self::decode_released) of a plaintext reference sum (the demo's
    /// and the oracle tests' noiseless truth): a ratio is printed wherever its count is above
    /// zero, without the noisy count's rule, since no noise is in these sums.
    pub fn decode_plain(&self, sums: &[f64], released: &[bool], contributors: u64) -> ResultTable {
        self.decode_with(sums, released, contributors, false)
    }

    fn decode_with(
        &self,
        sums: &[f64],
        released: &[bool],
        contributors: u64,
        noisy: bool,
    ) -> ResultTable {
        let width = self.columns.len();
        let offsets = &self.offsets;
        let rows = self
            .rows
            .iter()
            .enumerate()
            .map(|(g, label)| {
                let key = self.query.group_by.as_ref().map(|_| label.clone());
                let open = |k: usize| released.get(g * width + k) == Some(&true);
                if !open(self.row_indicator) {
                    return ResultRow {
                        key,
                        suppressed: true,
                        cells: vec![Cell::Suppressed; self.query.aggregates.len()],
                    };
                }
                let at = |k: usize| sums.get(g * width + k).copied();
                let cells = self
                    .query
                    .aggregates
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        let o = offsets[i];
                        let cell = match a {
                            Aggregate::Count | Aggregate::CountContributors | Aggregate::Sum(_) => {
                                at(o).map(Cell::Number)
                            }
                            Aggregate::Avg(_) | Aggregate::Var(_) | Aggregate::Stddev(_) => self
                                .ratio(i, g, sums, contributors, noisy)
                                .map(|r| Cell::Number(r.value)),
                            Aggregate::Histogram { edges, .. } => (0..edges.len() - 1)
                                .map(|b| at(o + b).map(|x| open(o + b).then_some(x)))
                                .collect::<Option<Vec<_>>>()
                                .map(Cell::List),
                            Aggregate::SumVector { dimension, .. } => (0..*dimension as usize)
                                .map(|j| at(o + j).map(Some))
                                .collect::<Option<Vec<_>>>()
                                .map(Cell::List),
                        };
                        cell.unwrap_or(Cell::Null)
                    })
                    .collect();
                ResultRow {
                    key,
                    suppressed: false,
                    cells,
                }
            })
            .collect();
        ResultTable {
            group_by: self.query.group_by.as_ref().map(|g| match g {
                GroupBy::Keys { expr, .. } => expr.to_string(),
                GroupBy::Buckets { field, .. } => format!("bucket({field})"),
            }),
            columns: self
                .query
                .aggregates
                .iter()
                .map(|a| a.to_string())
                .collect(),
            rows,
            contributors,
        }
    }
}
