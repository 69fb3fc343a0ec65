//! Vector Shamir sharing over GF(2^61 - 1) with seed-compressed shares.
//! STUB: to be implemented (keep every signature).
//!
//! Shares sit at evaluation points `1..=g` (the positions); the secret is the value at 0.

use crate::field::{FieldVec, Fp};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharingParams {
    pub g: u8,
    pub t: u8,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SharingError {
    #[error("invalid sharing parameters g = {g}, t = {t} (need 1 <= t <= g <= 32)")]
    InvalidParams { g: u8, t: u8 },
    #[error("need {needed} shares, got {got}")]
    NotEnoughShares { needed: usize, got: usize },
    #[error("duplicate or invalid evaluation point {0}")]
    BadPoint(u8),
    #[error("shares have different lengths")]
    LengthMismatch,
}

impl SharingParams {
    pub fn new(_g: u8, _t: u8) -> Result<SharingParams, SharingError> {
        todo!()
    }
}

/// One position's share as it travels: positions `1..t-1` may carry only a 32-byte seed from
/// which the receiver expands a pseudo-random vector; the others carry the full vector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompressedShare {
    Seed([u8; 32]),
    Full(FieldVec),
}

impl CompressedShare {
    /// The share as a vector of `len` elements.
    pub fn expand(&self, _len: usize) -> Vec<Fp> {
        todo!()
    }
}

/// Shares `secret` into `g` full vectors (index 0 is position 1). Deterministic in `seed`.
pub fn share_vector(_secret: &[Fp], _params: SharingParams, _seed: [u8; 32]) -> Vec<Vec<Fp>> {
    todo!()
}

/// Shares `secret` into `g` compressed shares (index 0 is position 1): positions `1..t-1` get
/// seeds, positions `t..=g` full vectors. Deterministic in `seed`; every share expands to the
/// value of one degree `t-1` polynomial with the secret at 0.
pub fn share_vector_compressed(
    _secret: &[Fp],
    _params: SharingParams,
    _seed: [u8; 32],
) -> Vec<CompressedShare> {
    todo!()
}

/// Lagrange coefficients that carry the values at `points` to the value at `target`
/// (`target = 0` reconstructs the secret). Points must be distinct and non-zero.
pub fn lagrange_coefficients(_points: &[u8], _target: u8) -> Result<Vec<Fp>, SharingError> {
    todo!()
}

/// Reconstructs the secret from exactly the given `(position, share)` pairs (at least `t`).
pub fn reconstruct(_shares: &[(u8, &[Fp])], _t: u8) -> Result<Vec<Fp>, SharingError> {
    todo!()
}
