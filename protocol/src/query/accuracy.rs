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
//!
//! **The ratio rule.** A ratio is printed only when its noisy count is at least
//! [`RATIO_MIN_DEVIATIONS`] of the count's noise deviations above zero; otherwise it prints
//! `-` (null in JSON) and has no interval, like a ratio over no record. Below that the count's
//! noise is more than a quarter of the count, `1/c` is far from linear over the count's
//! spread and the delta method's interval no longer holds its rate (at a count of about one
//! deviation it reports a narrow interval around noise divided by noise). A printed ratio and
//! its interval are clamped to what the clipped records allow: `avg` to the clip `[a, b]`,
//! `var` to `[0, ((b - a)/2)^2]` and `stddev` to `[0, (b - a)/2]` (Popoviciu's inequality);
//! clamping is post-processing, so it costs no privacy, and the truth lies in that range.

use super::ast::Aggregate;
use super::compile::{range_clip, CompiledQuery};
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

/// A ratio of noisy elements is printed only when its noisy count is at least this many of
/// the count's noise deviations (see the module's ratio rule).
pub const RATIO_MIN_DEVIATIONS: f64 = 4.0;

const ANY: (f64, f64) = (f64::NEG_INFINITY, f64::INFINITY);
const DIRECT: &str = "noise of the released sum";
const DELTA_METHOD: &str = "delta method from the noisy sums and count";

/// An `avg`, `var` or `stddev` of one row, from its released elements.
pub(super) struct Ratio {
    pub value: f64,
    /// The delta method's deviation (0 without noise).
    pub noise_sd: f64,
    /// What the clipped records allow the value to be.
    pub low: f64,
    pub high: f64,
}

impl CompiledQuery {
    /// Aggregate `i` (an `avg`, `var` or `stddev`) of row `g` from the released sum in real
    /// units: `None` when an element is missing, the count is not above zero, or (`noisy`, with
    /// noise)
    /// the count is below [`RATIO_MIN_DEVIATIONS`] of its deviations. The value is clamped to
    /// what the clipped records allow (the module's ratio rule).
    pub(super) fn ratio(
        &self,
        i: usize,
        g: usize,
        sums: &[f64],
        contributors: u64,
        noisy: bool,
    ) -> Option<Ratio> {
        let a = self.query().aggregates.get(i)?;
        let (offsets, _) = self.offsets();
        let base = g * self.columns().len() + offsets.get(i)?;
        let at = |k: usize| sums.get(base + k).copied();
        let unit = 10f64.powi(i32::from(self.spec().scale_digits));
        let sd = |k: usize| match self.spec().noise.as_ref() {
            Some(n) if noisy => n.total_sigma(base + k, contributors) / unit,
            _ => 0.0,
        };
        let (field, k) = match a {
            Aggregate::Avg(f) => (f, 1),
            Aggregate::Var(f) | Aggregate::Stddev(f) => (f, 2),
            _ => return None,
        };
        let (lo, hi) = range_clip(self.query(), field);
        let (s, c) = (at(0)?, at(k)?);
        let q = if k == 2 { at(1)? } else { 0.0 };
        if c <= 0.0 || c < RATIO_MIN_DEVIATIONS * sd(k) {
            return None;
        }
        let mean = s / c;
        if k == 1 {
            let v = (sd(0).powi(2) + (mean * sd(1)).powi(2)).sqrt() / c;
            return Some(Ratio {
                value: mean.clamp(lo, hi),
                noise_sd: v,
                low: lo,
                high: hi,
            });
        }
        let half_range = (hi - lo) / 2.0;
        let var = (q / c - mean * mean).clamp(0.0, half_range * half_range);
        let d_q = 1.0 / c;
        let d_s = -2.0 * s / (c * c);
        let d_c = -q / (c * c) + 2.0 * s * s / (c * c * c);
        let sd_var = ((d_q * sd(1)).powi(2) + (d_s * sd(0)).powi(2) + (d_c * sd(2)).powi(2)).sqrt();
        if matches!(a, Aggregate::Var(_)) {
            return Some(Ratio {
                value: var,
                noise_sd: sd_var,
                low: 0.0,
                high: half_range * half_range,
            });
        }
        let std = var.sqrt();
        // d sqrt(v) = dv / (2 sqrt(v)); at v = 0 the first order says nothing: sqrt(sd_var)
        // bounds the spread instead.
        let v = if std > 0.0 {
            sd_var / (2.0 * std)
        } else {
            sd_var.sqrt()
        };
        Some(Ratio {
            value: std,
            noise_sd: v,
            low: 0.0,
            high: half_range,
        })
    }

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
            // `bounds`: what the value can be; the interval is cut to it.
            let mut push =
                |column: String, value: f64, noise_sd: f64, derivation, bounds: (f64, f64)| {
                    let h = dp::half_width_95(noise_sd);
                    cells.push(CellAccuracy {
                        row: row.clone(),
                        column,
                        value,
                        noise_sd,
                        low: (value - h).max(bounds.0),
                        high: (value + h).min(bounds.1),
                        derivation,
                    });
                };
            for (i, a) in self.query().aggregates.iter().enumerate() {
                let o = offsets[i];
                let name = a.to_string();
                match a {
                    Aggregate::Count | Aggregate::CountContributors | Aggregate::Sum(_) => {
                        push(name, at(o), sd(o), DIRECT, ANY)
                    }
                    Aggregate::Avg(_) | Aggregate::Var(_) | Aggregate::Stddev(_) => {
                        if let Some(r) = self.ratio(i, g, sums, contributors, true) {
                            push(name, r.value, r.noise_sd, DELTA_METHOD, (r.low, r.high));
                        }
                    }
                    Aggregate::Histogram { edges, .. } => {
                        for b in 0..edges.len() - 1 {
                            if open(o + b) {
                                push(format!("{name}[{b}]"), at(o + b), sd(o + b), DIRECT, ANY);
                            }
                        }
                    }
                    Aggregate::SumVector { dimension, .. } => {
                        for j in 0..*dimension as usize {
                            push(format!("{name}[{j}]"), at(o + j), sd(o + j), DIRECT, ANY);
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
