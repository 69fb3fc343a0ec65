//! A query's sensitivity and its noise: what one owner's records can change in the
//! contribution vector, from the clips and `LIMIT PER CONTRIBUTOR`, and the noise its privacy
//! clause asks of each contributor (`dp::calibrate`).

use super::ast::{Aggregate, Query};
use crate::dp::{self, NoiseSpec};

/// The L2 sensitivity of a contributor's encoded vector (in encoded units, `value *
/// 10^scale`) when one owner's records are replaced by any others: `2 max ||x||_2` over the
/// vectors `x` a contributor can send (triangle inequality), where a contributor uses at most
/// `n` records and so touches at most `r = min(rows, n)` rows. Per aggregate (real units,
/// `m = max(|a|, |b|)` of its clip):
///
/// | aggregate | `max ||x||_2` |
/// |---|---|
/// | `count(*)` | `n` (the row counts add up to at most `n`) |
/// | `count(DISTINCT CONTRIBUTOR)`, a row's hidden indicator | `sqrt(r)` |
/// | `sum(f)` | `n m` (the row sums' absolute values add up to at most `n m`) |
/// | `avg(f)` | `sqrt((n m)^2 + n^2)` |
/// | `var(f)`, `stddev(f)` | `sqrt((n m)^2 + (n m^2)^2 + n^2)` |
/// | `histogram(f, k buckets)` | `sqrt(n^2 + min(k rows, n))` (counts, then indicators) |
/// | `sum_vector(f, d)`, `CLIP NORM f TO c` | `c sqrt(r)` |
///
/// The aggregates' norms add in squares. Rounding to the fixed point moves each element by at
/// most 1/2 encoded unit: `0.5 sqrt(r width)` more.
pub(super) fn l2_sensitivity(
    q: &Query,
    rows: usize,
    width: usize,
    n: u32,
    scale: f64,
    range_of: impl Fn(&str) -> (f64, f64),
    norm_of: impl Fn(&str) -> f64,
) -> f64 {
    let n = f64::from(n);
    let r = (rows as f64).min(n);
    let m = |f: &str| {
        let (a, b) = range_of(f);
        a.abs().max(b.abs())
    };
    let mut squares = 0.0;
    let mut selects_contributors = false;
    for a in &q.aggregates {
        squares += match a {
            Aggregate::Count => n * n,
            Aggregate::CountContributors => {
                selects_contributors = true;
                r
            }
            Aggregate::Sum(f) => (n * m(f)).powi(2),
            Aggregate::Avg(f) => (n * m(f)).powi(2) + n * n,
            Aggregate::Var(f) | Aggregate::Stddev(f) => {
                (n * m(f)).powi(2) + (n * m(f) * m(f)).powi(2) + n * n
            }
            Aggregate::Histogram { edges, .. } => {
                let k = (edges.len() - 1) as f64;
                n * n + (k * rows as f64).min(n)
            }
            Aggregate::SumVector { field, .. } => norm_of(field).powi(2) * r,
        };
    }
    if !selects_contributors {
        squares += r;
    }
    2.0 * (squares.sqrt() * scale + 0.5 * (r * width as f64).sqrt())
}

/// The noise of a query's privacy clause over a vector of `length` elements with L2
/// sensitivity `l2`, or why none fits.
pub(super) fn noise(q: &Query, l2: f64, length: u32) -> Result<Option<NoiseSpec>, String> {
    let Some(p) = &q.privacy else {
        return Ok(None);
    };
    dp::calibrate(l2, length, p.epsilon, p.delta, p.honest_sources)
        .map(Some)
        .map_err(|e| e.to_string())
}
