//! A query's sensitivity and its noise: what one owner's records can change in the
//! contribution vector, from the clips and `LIMIT PER CONTRIBUTOR`, and the noise its privacy
//! clause asks of each contributor (`dp::calibrate`).

use super::ast::{Aggregate, Query};
use super::column::{Column, ColumnKind};
use crate::dp::{self, NoiseSpec, Part};

/// The parts of a block (each aggregate's columns, and the row's hidden indicator) with the
/// L2 sensitivity of each, in encoded units (`value * 10^scale`), when one owner's records are
/// replaced by any others: `f M` with `M = max ||x||_2` over what a contributor can send to
/// the part, where a contributor uses at most `n` records and so touches at most
/// `r = min(rows, n)` rows. `f = 2` in general (triangle inequality); for a part whose
/// elements are never negative `|x_e - x'_e| <= max(x_e, x'_e)`, so `f = sqrt(2)`, and `f = 1`
/// if the part is a single element of the whole vector. Per aggregate (real units,
/// `m = max(|a|, |b|)` of its clip):
///
/// | aggregate | `max ||x||_2` |
/// |---|---|
/// | `count(*)` | `n` (the row counts add up to at most `n`) |
/// | `count(DISTINCT CONTRIBUTOR)`, a row's hidden indicator | `sqrt(r)` |
/// | `sum(f)` | `n m` (the row sums' absolute values add up to at most `n m`) |
/// | `avg(f)`, `var(f)`, `stddev(f)`: each column its own part | sum `n m`, sum of squares `n m^2`, count `n` |
/// | `histogram(f, k buckets)` | `sqrt(n^2 + min(k rows, n))` (counts, then indicators) |
/// | `sum_vector(f, d)`, `CLIP NORM f TO c` | `c sqrt(r)` |
///
/// Each part's noise is calibrated on its own bound (`dp::calibrate`): the parts' noises are
/// independent, so their zCDP `rho`s add for any one change of an owner's records, each
/// bounded by its part's worst case. A ratio's columns are parts of their own because their
/// bounds differ by the clip's magnitude: under one joint bound the count beside a sum of
/// amounts up to 2,000 got the sum's noise, thousands of times its own sensitivity.
///
/// Rounding to the fixed point moves each element by at most 1/2 encoded unit: `0.5
/// sqrt(r columns)` more per part (`M` grows by that), except for counts and indicators,
/// whole numbers that encode exactly.
pub(super) fn parts(
    q: &Query,
    columns: &[Column],
    rows: usize,
    n: u32,
    scale: f64,
    range_of: impl Fn(&str) -> (f64, f64),
    norm_of: impl Fn(&str) -> f64,
) -> Vec<Part> {
    let n = f64::from(n);
    let r = (rows as f64).min(n);
    let m = |f: &str| {
        let (a, b) = range_of(f);
        a.abs().max(b.abs())
    };
    let norm = |a: Option<&Aggregate>| match a {
        None | Some(Aggregate::CountContributors) => r.sqrt(),
        Some(Aggregate::Count) => n,
        Some(Aggregate::Sum(f)) => n * m(f),
        // Split per column below; this joint bound is what the parts' bounds add up to.
        Some(Aggregate::Avg(f)) => ((n * m(f)).powi(2) + n * n).sqrt(),
        Some(Aggregate::Var(f)) | Some(Aggregate::Stddev(f)) => {
            ((n * m(f)).powi(2) + (n * m(f) * m(f)).powi(2) + n * n).sqrt()
        }
        Some(Aggregate::Histogram { edges, .. }) => {
            let k = (edges.len() - 1) as f64;
            (n * n + (k * rows as f64).min(n)).sqrt()
        }
        Some(Aggregate::SumVector { field, .. }) => norm_of(field) * r.sqrt(),
    };
    // `avg`, `var` and `stddev`: one part per column, so that each column's noise follows
    // its own sensitivity (the count beside a sum of large values is not drowned in the
    // sum's noise, which made the ratio noise over noise).
    let column_norm = |c: &Column, f: &str| match c.kind {
        ColumnKind::Sum => n * m(f),
        ColumnKind::SumOfSquares => n * m(f) * m(f),
        _ => n,
    };
    let mut out: Vec<Part> = Vec::new();
    let mut start = 0;
    while start < columns.len() {
        let which = columns[start].aggregate;
        let a = which.and_then(|i| q.aggregates.get(i));
        if let Some(Aggregate::Avg(f) | Aggregate::Var(f) | Aggregate::Stddev(f)) = a {
            let c = &columns[start];
            let whole = !matches!(c.kind, ColumnKind::Sum | ColumnKind::SumOfSquares);
            let rounding = if whole { 0.0 } else { 0.5 * r.sqrt() };
            // One element per row: `|x_e - x'_e| <= max(x_e, x'_e)` for a non-negative one.
            let f_ = if c.min < 0.0 {
                2.0
            } else if rows == 1 {
                1.0
            } else {
                std::f64::consts::SQRT_2
            };
            out.push(Part {
                columns: start..start + 1,
                l2: f_ * (column_norm(c, f) * scale + rounding),
            });
            start += 1;
            continue;
        }
        let mut end = start + 1;
        while end < columns.len() && columns[end].aggregate == which {
            end += 1;
        }
        let width = (end - start) as f64;
        let whole = matches!(
            a,
            None | Some(Aggregate::Count)
                | Some(Aggregate::CountContributors)
                | Some(Aggregate::Histogram { .. })
        );
        let rounding = if whole { 0.0 } else { 0.5 * (r * width).sqrt() };
        let non_negative = columns[start..end].iter().all(|c| c.min >= 0.0);
        let f = if !non_negative {
            2.0
        } else if rows == 1 && end - start == 1 {
            1.0
        } else {
            std::f64::consts::SQRT_2
        };
        out.push(Part {
            columns: start..end,
            l2: f * (norm(a) * scale + rounding),
        });
        start = end;
    }
    out
}

/// The noise of a query's privacy clause, or why none fits.
pub(super) fn noise(
    q: &Query,
    parts: &[Part],
    width: usize,
    rows: usize,
) -> Result<Option<NoiseSpec>, String> {
    let Some(p) = &q.privacy else {
        return Ok(None);
    };
    dp::calibrate(
        parts,
        width,
        rows as u32,
        p.epsilon,
        p.delta,
        p.honest_sources,
    )
    .map(Some)
    .map_err(|e| e.to_string())
}
