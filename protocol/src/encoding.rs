//! Signed fixed-point encoding, clipping to declared bounds, and the overflow budget.
//!
//! A real value `v` with bounds `[min, max]` and scale `s` is encoded as
//! `round_half_away_from_zero(clip(v, min, max) * 10^s)` mapped into the field with
//! [`Fp::from_i64`]. Sums of such values decode correctly as long as their absolute value stays
//! below `(P - 1) / 2`, which [`ContributionSpec::validate`] guarantees for a given number of
//! contributors.

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
/// encoded as `round(value * 10^scale_digits)` in the field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContributionSpec {
    pub length: u32,
    /// Run-length bounds; the counts add up to `length`.
    pub bounds: Vec<BoundRange>,
    pub scale_digits: u8,
}

#[derive(Debug, Error, PartialEq)]
pub enum EncodingError {
    #[error("contribution spec is invalid: {0}")]
    InvalidSpec(String),
    #[error("vector has {got} values, the spec declares {expected}")]
    WrongLength { expected: u32, got: usize },
    #[error("value at index {index} is not a finite number")]
    NotFinite { index: usize },
    #[error(
        "worst-case sum of {max_contributors} contributors could wrap the field at element {index}"
    )]
    OverflowBudget { index: usize, max_contributors: u64 },
}

/// The largest absolute value a sum may reach, exclusive: `(P - 1) / 2 = 2^60 - 1`.
pub const SUM_BUDGET: u64 = (P - 1) / 2;

/// `10^digits` as an `f64` (exact for every allowed scale).
fn scale_factor(digits: u8) -> f64 {
    10f64.powi(digits as i32)
}

impl ContributionSpec {
    /// One range of bounds for every element.
    pub fn uniform(length: u32, min: f64, max: f64, scale_digits: u8) -> ContributionSpec {
        ContributionSpec {
            length,
            bounds: vec![BoundRange {
                count: length,
                min,
                max,
            }],
            scale_digits,
        }
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
        let mut index = 0usize;
        for b in &self.bounds {
            if b.count > 0 {
                let magnitude = b.min.abs().max(b.max.abs());
                let worst = (magnitude * scale).ceil();
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
        };
        assert!(many.validate(1).is_err());
    }

    #[test]
    fn overflow_budget() {
        // 2^60 - 1 is the budget; (2^60 - 1) / 1000 contributors of magnitude m fit iff
        // 1000 * m < 2^60 - 1.
        let ok = ContributionSpec::uniform(3, -1.0e6, 1.0e6, 6);
        assert!(ok.validate(1_000_000).is_ok()); // 1e6 * 1e6 * 1e6 = 1e18 < 1.15e18
        assert_eq!(
            ok.validate(2_000_000),
            Err(EncodingError::OverflowBudget {
                index: 0,
                max_contributors: 2_000_000
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
        };
        assert!(spec.validate(500_000_000).is_ok()); // 1e18 < 1.15e18
        assert_eq!(
            spec.validate(600_000_000), // 1.2e18
            Err(EncodingError::OverflowBudget {
                index: 4,
                max_contributors: 600_000_000
            })
        );
        // Exactly at the edge: m * c must be strictly below 2^60 - 1.
        let edge = ContributionSpec::uniform(1, 0.0, (SUM_BUDGET - 1) as f64, 0);
        // (2^60 - 2) is not representable in f64; it rounds to 2^60, which is over budget.
        assert!(edge.validate(1).is_err());
        let edge = ContributionSpec::uniform(1, 0.0, (1u64 << 59) as f64, 0);
        assert!(edge.validate(1).is_ok());
        assert!(edge.validate(2).is_err());
        // Huge magnitudes never panic.
        assert!(ContributionSpec::uniform(1, -1e300, 1e300, 12)
            .validate(1)
            .is_err());
    }
}
