//! Signed fixed-point encoding, clipping to declared bounds, and the overflow budget.
//!
//! A real value `v` with bounds `[min, max]` and scale `s` is encoded as
//! `round_half_away_from_zero(clip(v, min, max) * 10^s)` mapped into the field with
//! [`Fp::from_i64`]. Sums of such values decode correctly as long as their absolute value stays
//! below `(P - 1) / 2`, which [`ContributionSpec::validate`] guarantees for a given number of
//! contributors.

use crate::dp::NoiseSpec;
use crate::field::{Fp, P};
use crate::limits;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// `count` consecutive elements of a contribution vector share the bounds `[min, max]`
/// (in real units, before scaling).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoundRange {
    pub count: u32,
    pub min: f64,
    pub max: f64,
}

/// What each contributor sends: a vector of `length` values, each clipped to its bounds and
/// encoded as `round(value * 10^scale_digits)` in the field, and the cells the root group
/// releases it by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContributionSpec {
    pub length: u32,
    /// Run-length bounds; the counts add up to `length`.
    pub bounds: Vec<BoundRange>,
    pub scale_digits: u8,
    /// The cells of the released result, each with the element that counts its contributors.
    pub cells: CellLayout,
    /// Differential privacy: the discrete Gaussian noise each contributor adds to every
    /// element before sharing (`dp.rs`); `None` for an exact sum.
    pub noise: Option<NoiseSpec>,
}

/// One cell of the released result, as offsets in a block of the vector: `indicator` is the
/// element each contributor sets to 1 if it is part of the cell and 0 otherwise (its bounds are
/// `[0, 1]`), so the sum of that element is the cell's count of contributors; the cell governs
/// its indicator and the `len` elements from `start`. The root group releases an element only
/// if every cell that governs it counts at least `k_min` contributors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountedCell {
    pub indicator: u32,
    pub start: u32,
    pub len: u32,
}

/// The cells of a contribution vector: the vector is `length / width` blocks of `width`
/// elements (a query's rows), and every block holds the same `cells` at the same offsets.
/// Cell `b * cells.len() + c` is cell `c` of block `b`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellLayout {
    pub width: u32,
    pub cells: Vec<CountedCell>,
}

impl CellLayout {
    /// No cell: a spec for arithmetic alone, which no request may carry.
    pub fn none(width: u32) -> CellLayout {
        CellLayout {
            width,
            cells: Vec::new(),
        }
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum EncodingError {
    #[error("contribution spec is invalid: {0}")]
    InvalidSpec(String),
    #[error("the cells of the contribution spec are invalid: {0}")]
    InvalidCells(String),
    #[error("vector has {got} values, the spec declares {expected}")]
    WrongLength { expected: u32, got: usize },
    #[error("value at index {index} is not a finite number")]
    NotFinite { index: usize },
    #[error(
        "worst-case sum of {max_contributors} contributors could wrap the field at element {index}"
    )]
    OverflowBudget { index: usize, max_contributors: u64 },
}

/// The largest absolute value a sum may reach, exclusive: `(P - 1) / 2 = 2^63 - 2^31`.
pub const SUM_BUDGET: u64 = (P - 1) / 2;

/// `10^digits` as an `f64` (exact for every allowed scale).
fn scale_factor(digits: u8) -> f64 {
    10f64.powi(digits as i32)
}

impl ContributionSpec {
    /// One range of bounds for every element, and no cell (arithmetic only: a request needs
    /// cells, see [`ContributionSpec::counted`]).
    pub fn uniform(length: u32, min: f64, max: f64, scale_digits: u8) -> ContributionSpec {
        ContributionSpec {
            length,
            bounds: vec![BoundRange {
                count: length,
                min,
                max,
            }],
            scale_digits,
            cells: CellLayout::none(length.max(1)),
            noise: None,
        }
    }

    /// A raw vector of `values` elements in `[min, max]` behind one indicator element: element
    /// 0 is the contributor's indicator (`[0, 1]`, a contributor sends 1) and one cell covers
    /// the whole vector, so the root releases it only if `k_min` contributors sent 1. Contribute
    /// [`counted_values`](Self::counted_values) of the values.
    pub fn counted(values: u32, min: f64, max: f64, scale_digits: u8) -> ContributionSpec {
        let length = values.saturating_add(1);
        let mut bounds = vec![BoundRange {
            count: 1,
            min: 0.0,
            max: 1.0,
        }];
        if values > 0 {
            bounds.push(BoundRange {
                count: values,
                min,
                max,
            });
        }
        ContributionSpec {
            length,
            bounds,
            scale_digits,
            cells: CellLayout {
                width: length,
                cells: vec![CountedCell {
                    indicator: 0,
                    start: 0,
                    len: length,
                }],
            },
            noise: None,
        }
    }

    /// What a contributor sends for a [`counted`](Self::counted) spec: its indicator (1), then
    /// its values.
    pub fn counted_values(values: &[f64]) -> Vec<f64> {
        let mut out = Vec::with_capacity(values.len() + 1);
        out.push(1.0);
        out.extend_from_slice(values);
        out
    }

    /// Number of cells of the whole vector (every block's).
    pub fn cell_count(&self) -> usize {
        self.length.checked_div(self.cells.width).unwrap_or(0) as usize * self.cells.cells.len()
    }

    /// The element holding each cell's indicator, in cell order (block after block).
    pub fn indicator_elements(&self) -> Vec<usize> {
        let width = self.cells.width as usize;
        let blocks = (self.length as usize).checked_div(width).unwrap_or(0);
        let mut out = Vec::with_capacity(self.cell_count());
        for b in 0..blocks {
            for c in &self.cells.cells {
                out.push(b * width + c.indicator as usize);
            }
        }
        out
    }

    /// Which elements are released when the cells flagged in `cell_released` (one per cell,
    /// in cell order) are: an element is released iff every cell governing it is. A short
    /// mask suppresses the cells it does not name.
    pub fn released_elements(&self, cell_released: &[bool]) -> Vec<bool> {
        let width = self.cells.width as usize;
        let mut out = vec![true; self.length as usize];
        if width == 0 || self.cells.cells.is_empty() {
            // No cell governs anything: nothing is released.
            out.iter_mut().for_each(|x| *x = false);
            return out;
        }
        let per_block = self.cells.cells.len();
        for (b, block) in out.chunks_mut(width).enumerate() {
            for (c, cell) in self.cells.cells.iter().enumerate() {
                if cell_released.get(b * per_block + c) != Some(&true) {
                    let start = cell.start as usize;
                    let end = (start + cell.len as usize).min(block.len());
                    block[start.min(end)..end]
                        .iter_mut()
                        .for_each(|x| *x = false);
                    if let Some(x) = block.get_mut(cell.indicator as usize) {
                        *x = false;
                    }
                }
            }
        }
        out
    }

    /// Whether a cell whose indicator sums to `count` (in the field) has at least `k_min`
    /// contributors: the centered value is compared with `k_min * 10^scale` in integers.
    pub fn cell_meets(&self, count: Fp, k_min: u64) -> bool {
        let scale = 10i128.pow(u32::from(self.scale_digits.min(limits::MAX_SCALE_DIGITS)));
        i128::from(count.to_i64_centered()) >= i128::from(k_min) * scale
    }

    /// Checks the cell layout: `width` divides `length`; every block has between 1 and
    /// `width` cells, each inside the block, indicators distinct; every element of a block is
    /// governed by some cell (its range or its indicator), and by at most
    /// `MAX_CELLS_PER_ELEMENT` cells on average (the cells' lengths add up to at most that
    /// many times `width`); every indicator element has bounds exactly `[0, 1]`. A request
    /// carries only a spec that passes (see `Request::validate_params`).
    pub fn validate_cells(&self) -> Result<(), EncodingError> {
        let bad = |m: String| Err(EncodingError::InvalidCells(m));
        let CellLayout { width, cells } = &self.cells;
        let width = *width;
        if width == 0 || self.length == 0 || !self.length.is_multiple_of(width) {
            return bad(format!(
                "a block of {width} elements does not divide a vector of {}",
                self.length
            ));
        }
        if cells.is_empty() || cells.len() > width as usize {
            return bad(format!(
                "{} cells in a block of {width} elements (need 1 to {width})",
                cells.len()
            ));
        }
        let mut covered: u64 = 0;
        for (i, c) in cells.iter().enumerate() {
            let end = u64::from(c.start) + u64::from(c.len);
            if c.len == 0 || end > u64::from(width) || c.indicator >= width {
                return bad(format!("cell {i} does not lie inside its block"));
            }
            covered += u64::from(c.len);
        }
        if covered > u64::from(width) * limits::MAX_CELLS_PER_ELEMENT {
            return bad(format!(
                "the cells cover {covered} elements of a block of {width}, over {} each",
                limits::MAX_CELLS_PER_ELEMENT
            ));
        }
        let mut indicators: Vec<u32> = cells.iter().map(|c| c.indicator).collect();
        indicators.sort_unstable();
        if indicators.windows(2).any(|w| w[0] == w[1]) {
            return bad("two cells share an indicator".into());
        }
        // Every element of a block is governed: sweep the cells in order of their start.
        let mut spans: Vec<(u32, u32)> = cells
            .iter()
            .flat_map(|c| [(c.start, c.start + c.len), (c.indicator, c.indicator + 1)])
            .collect();
        spans.sort_unstable();
        let mut reach = 0u32;
        for (start, end) in spans {
            if start > reach {
                return bad(format!("element {reach} of a block is in no cell"));
            }
            reach = reach.max(end);
        }
        if reach < width {
            return bad(format!("element {reach} of a block is in no cell"));
        }
        // Indicator bounds: walk the runs once, in element order.
        let mut wanted = self.indicator_elements();
        wanted.sort_unstable();
        let mut runs = self.bounds.iter();
        let mut run_start = 0usize;
        let mut run = runs.next();
        for e in wanted {
            while let Some(r) = run {
                if e < run_start + r.count as usize {
                    break;
                }
                run_start += r.count as usize;
                run = runs.next();
            }
            match run {
                Some(r) if r.min == 0.0 && r.max == 1.0 => {}
                Some(_) => return bad(format!("indicator element {e} is not bounded to [0, 1]")),
                None => return bad(format!("indicator element {e} has no bounds")),
            }
        }
        Ok(())
    }

    /// Checks lengths, ranges (`min <= max`, finite), limits, and that the worst-case sum of
    /// `max_contributors` clipped values cannot wrap the field (|sum| < (P-1)/2 per element).
    ///
    /// The worst case of one element is `ceil(max(|min|, |max|) * 10^scale)`, an upper bound
    /// of what [`encode`](Self::encode) can produce for it; it is multiplied by
    /// `max(max_contributors, 1)` in `u128` (so a single value must always fit, which also
    /// keeps `encode` inside `i64`). Ranges of count 0 hold no element and are not budgeted.
    pub fn validate(&self, max_contributors: u64) -> Result<(), EncodingError> {
        let invalid = |m: String| Err(EncodingError::InvalidSpec(m));
        if self.length > limits::MAX_VECTOR_LEN {
            return invalid(format!(
                "length {} exceeds the limit of {}",
                self.length,
                limits::MAX_VECTOR_LEN
            ));
        }
        if self.bounds.len() > limits::MAX_BOUND_RANGES {
            return invalid(format!(
                "{} bound ranges exceed the limit of {}",
                self.bounds.len(),
                limits::MAX_BOUND_RANGES
            ));
        }
        if self.scale_digits > limits::MAX_SCALE_DIGITS {
            return invalid(format!(
                "scale of {} digits exceeds the limit of {}",
                self.scale_digits,
                limits::MAX_SCALE_DIGITS
            ));
        }
        let total: u64 = self.bounds.iter().map(|b| b.count as u64).sum();
        if total != self.length as u64 {
            return invalid(format!(
                "bound counts add up to {total}, the length is {}",
                self.length
            ));
        }
        for (i, b) in self.bounds.iter().enumerate() {
            if !b.min.is_finite() || !b.max.is_finite() {
                return invalid(format!("bound range {i} is not finite"));
            }
            if b.min > b.max {
                return invalid(format!("bound range {i} has min {} > max {}", b.min, b.max));
            }
        }
        let scale = scale_factor(self.scale_digits);
        let contributors = max_contributors.max(1) as u128;
        // Each contributor's noise is at most its tail per element (`dp::noise` redraws
        // beyond it), so it is budgeted like part of the value.
        let noise_tail = match &self.noise {
            None => 0.0,
            Some(n) => {
                if n.sigma_milli.len() != self.cells.width as usize {
                    return invalid(format!(
                        "{} noise scales for blocks of {} elements",
                        n.sigma_milli.len(),
                        self.cells.width
                    ));
                }
                let max = crate::dp::MAX_SIGMA * crate::dp::SIGMA_DENOMINATOR as f64;
                if n.sigma_milli.iter().any(|s| *s == 0 || *s as f64 > max) {
                    return invalid(format!(
                        "a noise scale is not in (0, {}]",
                        crate::dp::MAX_SIGMA
                    ));
                }
                if n.honest_sources == 0 {
                    return invalid("the noise needs at least one honest source".into());
                }
                n.tail() as f64
            }
        };
        let mut index = 0usize;
        for b in &self.bounds {
            if b.count > 0 {
                let magnitude = b.min.abs().max(b.max.abs());
                let worst = (magnitude * scale).ceil() + noise_tail;
                // Anything at or above 2^64 is far beyond the budget; below, the cast is exact
                // enough because the budget comparison happens in integers.
                let fits = worst < 18_446_744_073_709_551_616.0
                    && contributors * (worst as u64 as u128) < SUM_BUDGET as u128;
                if !fits {
                    return Err(EncodingError::OverflowBudget {
                        index,
                        max_contributors,
                    });
                }
            }
            index += b.count as usize;
        }
        Ok(())
    }

    /// Clips each value to its bounds, scales, rounds and maps into the field.
    ///
    /// Rounding is half away from zero. The spec is expected to have passed
    /// [`validate`](Self::validate); on a spec that did not, this never panics (bounds that run
    /// short give `InvalidSpec`, out-of-range products saturate to the `i64` range).
    pub fn encode(&self, values: &[f64]) -> Result<Vec<Fp>, EncodingError> {
        if values.len() != self.length as usize {
            return Err(EncodingError::WrongLength {
                expected: self.length,
                got: values.len(),
            });
        }
        let scale = scale_factor(self.scale_digits);
        let mut out = Vec::with_capacity(values.len());
        let mut ranges = self.bounds.iter();
        let mut current: Option<&BoundRange> = None;
        let mut left = 0u32;
        for (index, &v) in values.iter().enumerate() {
            while left == 0 {
                match ranges.next() {
                    Some(b) => {
                        current = Some(b);
                        left = b.count;
                    }
                    None => {
                        return Err(EncodingError::InvalidSpec(
                            "bound counts are shorter than the length".into(),
                        ))
                    }
                }
            }
            left -= 1;
            if !v.is_finite() {
                return Err(EncodingError::NotFinite { index });
            }
            let b = current.expect("set above");
            let clipped = if v < b.min {
                b.min
            } else if v > b.max {
                b.max
            } else {
                v
            };
            // `f64::round` rounds half away from zero; `as i64` saturates.
            let scaled = (clipped * scale).round() as i64;
            out.push(Fp::from_i64(scaled));
        }
        Ok(out)
    }

    /// Decodes a sum (centered lift, then divided by 10^scale_digits).
    pub fn decode_sum(&self, sum: &[Fp]) -> Vec<f64> {
        let scale = scale_factor(self.scale_digits);
        sum.iter()
            .map(|x| x.to_i64_centered() as f64 / scale)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_round_decode() {
        let spec = ContributionSpec {
            length: 5,
            bounds: vec![
                BoundRange {
                    count: 3,
                    min: -1.0,
                    max: 1.0,
                },
                BoundRange {
                    count: 2,
                    min: 0.0,
                    max: 100.0,
                },
            ],
            scale_digits: 2,
            cells: CellLayout::none(5),
            noise: None,
        };
        spec.validate(1000).unwrap();
        let enc = spec.encode(&[-5.0, 0.125, -0.125, 1e9, 12.345]).unwrap();
        let ints: Vec<i64> = enc.iter().map(|x| x.to_i64_centered()).collect();
        // 0.125 * 100 = 12.5 rounds away from zero to 13.
        assert_eq!(ints, vec![-100, 13, -13, 10000, 1235]);
        let dec = spec.decode_sum(&enc);
        assert_eq!(dec, vec![-1.0, 0.13, -0.13, 100.0, 12.35]);
    }

    #[test]
    fn encode_errors() {
        let spec = ContributionSpec::uniform(3, -1.0, 1.0, 0);
        assert_eq!(
            spec.encode(&[0.0; 2]),
            Err(EncodingError::WrongLength {
                expected: 3,
                got: 2
            })
        );
        assert_eq!(
            spec.encode(&[0.0, f64::NAN, 0.0]),
            Err(EncodingError::NotFinite { index: 1 })
        );
        assert_eq!(
            spec.encode(&[0.0, 0.0, f64::INFINITY]),
            Err(EncodingError::NotFinite { index: 2 })
        );
        let short = ContributionSpec {
            length: 3,
            bounds: vec![BoundRange {
                count: 1,
                min: 0.0,
                max: 1.0,
            }],
            scale_digits: 0,
            cells: CellLayout::none(3),
            noise: None,
        };
        assert!(matches!(
            short.encode(&[0.0; 3]),
            Err(EncodingError::InvalidSpec(_))
        ));
        // Never panics on wild specs.
        let wild = ContributionSpec::uniform(2, f64::NAN, -1e300, 200);
        let _ = wild.encode(&[1.0, -1.0]);
    }

    #[test]
    fn validate_structure() {
        assert!(ContributionSpec::uniform(4, 0.0, 1.0, 3)
            .validate(10)
            .is_ok());
        assert!(ContributionSpec::uniform(4, 1.0, 0.0, 3)
            .validate(10)
            .is_err());
        assert!(ContributionSpec::uniform(4, 0.0, f64::INFINITY, 3)
            .validate(10)
            .is_err());
        assert!(ContributionSpec::uniform(4, f64::NAN, 1.0, 3)
            .validate(10)
            .is_err());
        assert!(ContributionSpec::uniform(4, 0.0, 1.0, 13)
            .validate(10)
            .is_err());
        assert!(
            ContributionSpec::uniform(limits::MAX_VECTOR_LEN + 1, 0.0, 1.0, 0)
                .validate(1)
                .is_err()
        );
        let mut s = ContributionSpec::uniform(4, 0.0, 1.0, 0);
        s.length = 5;
        assert!(s.validate(1).is_err());
        let many = ContributionSpec {
            length: limits::MAX_BOUND_RANGES as u32 + 1,
            bounds: vec![
                BoundRange {
                    count: 1,
                    min: 0.0,
                    max: 1.0
                };
                limits::MAX_BOUND_RANGES + 1
            ],
            scale_digits: 0,
            cells: CellLayout::none(1),
            noise: None,
        };
        assert!(many.validate(1).is_err());
    }

    #[test]
    fn overflow_budget() {
        // (P - 1) / 2 = 2^63 - 2^31 (about 9.22e18) is the budget; c contributors of
        // magnitude m fit iff c * m < 2^63 - 2^31.
        let ok = ContributionSpec::uniform(3, -1.0e6, 1.0e6, 6);
        assert!(ok.validate(9_000_000).is_ok()); // 9e6 * 1e6 * 1e6 = 9e18 < 9.22e18
        assert_eq!(
            ok.validate(10_000_000),
            Err(EncodingError::OverflowBudget {
                index: 0,
                max_contributors: 10_000_000
            })
        );
        let spec = ContributionSpec {
            length: 10,
            bounds: vec![
                BoundRange {
                    count: 4,
                    min: -1.0,
                    max: 1.0,
                },
                BoundRange {
                    count: 0,
                    min: -1e300,
                    max: 1e300,
                },
                BoundRange {
                    count: 6,
                    min: 0.0,
                    max: 2.0e9,
                },
            ],
            scale_digits: 0,
            cells: CellLayout::none(10),
            noise: None,
        };
        assert!(spec.validate(4_500_000_000).is_ok()); // 9e18 < 9.22e18
        assert_eq!(
            spec.validate(4_700_000_000), // 9.4e18
            Err(EncodingError::OverflowBudget {
                index: 4,
                max_contributors: 4_700_000_000
            })
        );
        // Exactly at the edge: m * c must be strictly below 2^63 - 2^31.
        let edge = ContributionSpec::uniform(1, 0.0, (SUM_BUDGET - 1) as f64, 0);
        // 2^63 - 2^31 - 1 is not representable in f64; it rounds to 2^63 - 2^31, the budget.
        assert!(edge.validate(1).is_err());
        let edge = ContributionSpec::uniform(1, 0.0, (1u64 << 62) as f64, 0);
        assert!(edge.validate(1).is_ok());
        assert!(edge.validate(2).is_err());
        // Huge magnitudes never panic.
        assert!(ContributionSpec::uniform(1, -1e300, 1e300, 12)
            .validate(1)
            .is_err());
    }

    #[test]
    fn cells_validate_and_mask() {
        let spec = ContributionSpec::counted(3, -5.0, 5.0, 2);
        assert_eq!(spec.length, 4);
        assert_eq!(spec.validate_cells(), Ok(()));
        assert_eq!(spec.cell_count(), 1);
        assert_eq!(spec.indicator_elements(), vec![0]);
        assert_eq!(spec.released_elements(&[true]), vec![true; 4]);
        assert_eq!(spec.released_elements(&[false]), vec![false; 4]);
        assert_eq!(spec.released_elements(&[]), vec![false; 4]);
        // Counts compare in integers at the spec's scale: 3 contributors are 300 at scale 2.
        assert!(spec.cell_meets(Fp::from_i64(300), 3));
        assert!(!spec.cell_meets(Fp::from_i64(299), 3));
        assert!(!spec.cell_meets(Fp::from_i64(-300), 1));
        // No cell, or cells that leave an element ungoverned, or an indicator not in [0, 1].
        assert!(ContributionSpec::uniform(3, 0.0, 1.0, 0)
            .validate_cells()
            .is_err());
        let with = |f: &dyn Fn(&mut ContributionSpec)| {
            let mut s = ContributionSpec::counted(3, -5.0, 5.0, 2);
            f(&mut s);
            s.validate_cells()
        };
        assert!(with(&|s| s.cells.cells[0].len = 3).is_err());
        assert!(with(&|s| s.cells.cells[0].len = 5).is_err());
        assert!(with(&|s| s.cells.cells[0].indicator = 1).is_err()); // bounds [-5, 5]
        assert!(with(&|s| s.cells.cells[0].indicator = 4).is_err()); // outside the block
        assert!(with(&|s| s.bounds[0].max = 2.0).is_err());
        assert!(with(&|s| s.cells.width = 3).is_err());
        assert!(with(&|s| s.cells.width = 0).is_err());
        assert!(with(&|s| s.cells.cells.push(CountedCell {
            indicator: 0,
            start: 0,
            len: 1
        }))
        .is_err());
        // Two blocks of two cells each: a row cell and a bucket cell inside it.
        let spec = ContributionSpec {
            length: 8,
            bounds: vec![
                BoundRange {
                    count: 2,
                    min: 0.0,
                    max: 1.0,
                },
                BoundRange {
                    count: 2,
                    min: 0.0,
                    max: 9.0,
                },
                BoundRange {
                    count: 2,
                    min: 0.0,
                    max: 1.0,
                },
                BoundRange {
                    count: 2,
                    min: 0.0,
                    max: 9.0,
                },
            ],
            scale_digits: 0,
            cells: CellLayout {
                width: 4,
                cells: vec![
                    CountedCell {
                        indicator: 0,
                        start: 0,
                        len: 4,
                    },
                    CountedCell {
                        indicator: 1,
                        start: 1,
                        len: 2,
                    },
                ],
            },
            noise: None,
        };
        assert_eq!(spec.validate_cells(), Ok(()));
        assert_eq!(spec.indicator_elements(), vec![0, 1, 4, 5]);
        assert_eq!(
            spec.released_elements(&[true, false, false, true]),
            vec![true, false, false, true, false, false, false, false]
        );
        // More cover than two cells per element is refused.
        let mut wide = spec.clone();
        wide.cells.cells[1] = CountedCell {
            indicator: 1,
            start: 0,
            len: 4,
        };
        wide.cells.cells.push(CountedCell {
            indicator: 2,
            start: 0,
            len: 4,
        });
        wide.bounds[1].max = 1.0;
        wide.bounds[3].max = 1.0;
        assert!(matches!(
            wide.validate_cells(),
            Err(EncodingError::InvalidCells(m)) if m.contains("cover")
        ));
    }
}
