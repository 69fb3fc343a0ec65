//! The error of a result released with differential privacy: each released cell's noise
//! deviation and a 95% interval, and how it was derived.
//!
//! A count, a sum, a histogram bucket or a vector coordinate is one element of the released
//! sum: its noise is the sum of the `m` included contributors' independent discrete Gaussians
//! (`dp.rs`), of variance at most `m s^2` (a discrete Gaussian's variance is below its
//! parameter's square), so `sd = s sqrt(m) / 10^scale` and the interval `value ± 1.96 sd`
//! covers the true value with probability about 95% (the sum is within a negligible distance
//! of a normal for `s sqrt(m) >= 1`). `avg`, `var` and `stddev` are ratios of noisy elements:
//! their deviation is the delta method's (first-order propagation of the elements'
//! independent noise through the ratio), an approximation that is good when the count is far
//! larger than its noise, and says so.

use super::ast::Aggregate;
use super::compile::CompiledQuery;
use crate::dp;
use serde::Serialize;
use std::fmt;

/// One released value with its noise.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CellAccuracy {
    /// The row's key (`None` without `GROUP BY`).
    pub row: Option<String>,
    /// The aggregate, with `[i]` for a histogram bucket or vector coordinate.
    pub column: String,
    pub value: f64,
    /// The noise's standard deviation, in the value's units.
    pub noise_sd: f64,
    /// The 95% interval around the value.
    pub low: f64,
    pub high: f64,
    /// How `noise_sd` was derived.
    pub derivation: &'static str,
}

/// The accuracy of a result released with differential privacy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Accuracy {
    pub epsilon: f64,
    pub delta: f64,
    /// Contributors whose noise the released sum holds.
    pub noise_sources: u64,
    /// The guarantee holds while at least this many of them added their noise.
    pub honest_sources: u32,
    pub cells: Vec<CellAccuracy>,
}

const DIRECT: &str = "noise of the released sum";
const DELTA_METHOD: &str = "delta method from the noisy sums and count";

impl CompiledQuery {
    /// Each released cell's noise and 95% interval, for a query with a privacy clause
    /// (`None` without one). `sums` and `released` are as [`decode_released`] takes them,
    /// `contributors` the number of contributors the released sum covers.
    ///
    /// [`decode_released`]: CompiledQuery::decode_released
    pub fn accuracy(&self, sums: &[f64], released: &[bool], contributors: u64) -> Option<Accuracy> {
        let privacy = self.query().privacy?;
        let noise = self.spec().noise.as_ref()?;
        let unit = 10f64.powi(i32::from(self.spec().scale_digits));
        let width = self.columns().len();
        let (offsets, indicator) = self.offsets();
        let mut cells = Vec::new();
        for (g, label) in self.rows().iter().enumerate() {
            let open = |k: usize| released.get(g * width + k) == Some(&true);
            if !open(indicator) {
                continue;
            }
            let row = self.query().group_by.as_ref().map(|_| label.clone());
            let at = |k: usize| sums.get(g * width + k).copied().unwrap_or(0.0);
            let sd = |k: usize| noise.total_sigma(g * width + k, contributors) / unit;
            let mut push = |column: String, value: f64, noise_sd: f64, derivation| {
                let h = dp::half_width_95(noise_sd);
                cells.push(CellAccuracy {
                    row: row.clone(),
                    column,
                    value,
                    noise_sd,
                    low: value - h,
                    high: value + h,
                    derivation,
                });
            };
            for (i, a) in self.query().aggregates.iter().enumerate() {
                let o = offsets[i];
                let name = a.to_string();
                match a {
                    Aggregate::Count | Aggregate::CountContributors | Aggregate::Sum(_) => {
                        push(name, at(o), sd(o), DIRECT)
                    }
                    Aggregate::Avg(_) => {
                        let (s, c) = (at(o), at(o + 1));
                        if c > 0.0 {
                            let m = s / c;
                            let v = (sd(o).powi(2) + (m * sd(o + 1)).powi(2)).sqrt() / c;
                            push(name, m, v, DELTA_METHOD);
                        }
                    }
                    Aggregate::Var(_) | Aggregate::Stddev(_) => {
                        let (s, q, c) = (at(o), at(o + 1), at(o + 2));
                        if c > 0.0 {
                            let var = (q / c - (s / c).powi(2)).max(0.0);
                            let d_q = 1.0 / c;
                            let d_s = -2.0 * s / (c * c);
                            let d_c = -q / (c * c) + 2.0 * s * s / (c * c * c);
                            let sd_var = ((d_q * sd(o + 1)).powi(2)
                                + (d_s * sd(o)).powi(2)
                                + (d_c * sd(o + 2)).powi(2))
                            .sqrt();
                            if matches!(a, Aggregate::Var(_)) {
                                push(name, var, sd_var, DELTA_METHOD);
                            } else {
                                let std = var.sqrt();
                                // d sqrt(v) = dv / (2 sqrt(v)); at v = 0 the first order
                                // says nothing: sqrt(sd_var) bounds the spread instead.
                                let v = if std > 0.0 {
                                    sd_var / (2.0 * std)
                                } else {
                                    sd_var.sqrt()
                                };
                                push(name, std, v, DELTA_METHOD);
                            }
                        }
                    }
                    Aggregate::Histogram { edges, .. } => {
                        for b in 0..edges.len() - 1 {
                            if open(o + b) {
                                push(format!("{name}[{b}]"), at(o + b), sd(o + b), DIRECT);
                            }
                        }
                    }
                    Aggregate::SumVector { dimension, .. } => {
                        for j in 0..*dimension as usize {
                            push(format!("{name}[{j}]"), at(o + j), sd(o + j), DIRECT);
                        }
                    }
                }
            }
        }
        Some(Accuracy {
            epsilon: privacy.epsilon,
            delta: privacy.delta,
            noise_sources: contributors,
            honest_sources: privacy.honest_sources,
            cells,
        })
    }
}

impl fmt::Display for Accuracy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use super::result::format_number as n;
        writeln!(
            f,
            "differential privacy: epsilon {} delta {:e}, noise from {} contributors, \
             guaranteed while {} of them add theirs",
            self.epsilon, self.delta, self.noise_sources, self.honest_sources
        )?;
        for c in &self.cells {
            let row = c
                .row
                .as_deref()
                .map(|r| format!("{r}: "))
                .unwrap_or_default();
            writeln!(
                f,
                "  {row}{} = {}  noise sd {}  95% [{}, {}]  ({})",
                c.column,
                n(c.value),
                n(c.noise_sd),
                n(c.low),
                n(c.high),
                c.derivation
            )?;
        }
        Ok(())
    }
}
