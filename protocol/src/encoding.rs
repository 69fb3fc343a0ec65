//! Signed fixed-point encoding, clipping to declared bounds, and the overflow budget.
//! STUB: to be implemented (keep every signature).

use crate::field::Fp;
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

impl ContributionSpec {
    /// One range of bounds for every element.
    pub fn uniform(_length: u32, _min: f64, _max: f64, _scale_digits: u8) -> ContributionSpec {
        todo!()
    }
    /// Checks lengths, ranges (`min <= max`, finite), limits, and that the worst-case sum of
    /// `max_contributors` clipped values cannot wrap the field (|sum| < (P-1)/2 per element).
    pub fn validate(&self, _max_contributors: u64) -> Result<(), EncodingError> {
        todo!()
    }
    /// Clips each value to its bounds, scales, rounds and maps into the field.
    pub fn encode(&self, _values: &[f64]) -> Result<Vec<Fp>, EncodingError> {
        todo!()
    }
    /// Decodes a sum (centered lift, then divided by 10^scale_digits).
    pub fn decode_sum(&self, _sum: &[Fp]) -> Vec<f64> {
        todo!()
    }
}
