//! Differential privacy inside the shared sum: calibration, each contributor's discrete
//! Gaussian noise, and zero-concentrated (zCDP) accounting.
//!
//! **Mechanism.** A query `WITH PRIVACY EPSILON e DELTA d HONEST SOURCES h` asks that the
//! released vector be `(e, d)`-differentially private for one owner's records, as long as at
//! least `h` of the contributors whose vectors the root sums added their noise honestly.
//! Every contributor adds, to every element of its encoded vector and before sharing it, an
//! independent sample of the discrete Gaussian `N_Z(0, s^2)` (Canonne, Kamath, Steinke 2020:
//! "The Discrete Gaussian for Differential Privacy", Algorithm 3, sampled in 128-bit integers
//! by `dp/sampler.rs` where every intermediate value provably fits, by `prio::dp` otherwise). The
//! noise is an integer added in the field; no floating point ever
//! touches a share. A coalition of colluding contributors (and the commissioner, and any
//! member) can subtract at most its own noise; what remains is the sum of at least `h`
//! independent `N_Z(0, s^2)`, which is post-processed by any further honest noise.
//!
//! **Calibration.** `(e, d)` is turned into a zCDP budget `rho` with
//! `e = rho + 2 sqrt(rho ln(1/d))` (Bun and Steinke 2016, Proposition 1.3: `rho`-zCDP implies
//! `(rho + 2 sqrt(rho ln(1/d)), d)`-DP), solved exactly for `rho`. The sum of `h` independent
//! `N_Z(0, s^2)` in `k` dimensions is `rho'`-zCDP for L2 sensitivity `D` with
//! `2 rho' = D^2 / (h s^2) + tau k / 2`, `tau = 10 sum_{j=1}^{h-1} exp(-2 pi^2 s^2 j/(j+1))`
//! (Kairouz, Liu, Steinke 2021: "The Distributed Discrete Gaussian Mechanism for Federated
//! Learning with Secure Aggregation", Theorem 1). [`calibrate`] picks the smallest `s` (in
//! thousandths, rounded up) with `rho' <= rho`.
//!
//! **Sensitivity** (`query::CompiledQuery::l2_sensitivity`) is for substitution of one
//! owner's records (participation is not hidden: a leaf sees who sends shares), from the
//! clips and `LIMIT PER CONTRIBUTOR`.
//!
//! **Accounting.** zCDP composes by adding `rho` (Bun and Steinke 2016, Lemma 2.3); an
//! owner's budget of `E` per period at `BUDGET_DELTA` is `rho_for(E, BUDGET_DELTA)`, and each
//! DP query it contributes to spends the query's `rho` (node's consent rule `privacy_budget`).

use crate::field::Fp;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

mod sampler;

/// A contributor's noise sample is redrawn if it lies beyond `NOISE_TAIL` standard
/// deviations (probability below `exp(-800)`), so that the overflow budget can count it.
/// The conditioned distribution is within total variation `2 exp(-800)` of the discrete
/// Gaussian, which adds that much to `delta`.
pub const NOISE_TAIL: u64 = 40;

/// The `delta` at which an owner's budget, stated as an epsilon, is read.
pub const BUDGET_DELTA: f64 = 1e-9;

/// The per-contributor standard deviation is carried in thousandths of an encoded unit.
pub const SIGMA_DENOMINATOR: u64 = 1000;

/// The smallest and largest epsilon and delta a query may ask for.
pub const MIN_EPSILON: f64 = 1e-3;
pub const MAX_EPSILON: f64 = 100.0;
pub const MIN_DELTA: f64 = 1e-30;
pub const MAX_DELTA: f64 = 0.1;

/// The largest per-contributor standard deviation, in encoded units (`2^40`): with the
/// noise tail it keeps one contributor's noise far inside the field's sum budget.
pub const MAX_SIGMA: f64 = 1_099_511_627_776.0;

/// The noise each contributor adds, as the signed request carries it (part of the
/// contribution spec, so a node contributes only if it is exactly what the query's privacy
/// clause compiles to).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoiseSpec {
    /// Per column of a block (`cells.width` entries; element `e` is column `e % width`): the
    /// standard deviation of each contributor's discrete Gaussian noise, in encoded units
    /// (`value * 10^scale`), times [`SIGMA_DENOMINATOR`].
    pub sigma_milli: Vec<u64>,
    /// The guarantee holds while at least this many summed contributors added their noise:
    /// the root releases nothing of a version that sums fewer contributors.
    pub honest_sources: u32,
}

impl NoiseSpec {
    /// The per-contributor standard deviation of element `e`, in encoded units.
    pub fn sigma(&self, e: usize) -> f64 {
        let w = self.sigma_milli.len().max(1);
        self.sigma_milli.get(e % w).copied().unwrap_or(0) as f64 / SIGMA_DENOMINATOR as f64
    }

    /// The largest absolute noise one contributor adds to any element, in encoded units.
    pub fn tail(&self) -> u64 {
        let max = self.sigma_milli.iter().copied().max().unwrap_or(0);
        (max.saturating_mul(NOISE_TAIL)).div_ceil(SIGMA_DENOMINATOR)
    }

    /// The standard deviation of element `e`'s noise in a sum over `sources` contributors, in
    /// encoded units (each adds an independent `N_Z(0, s^2)`, whose variance is at most
    /// `s^2`).
    pub fn total_sigma(&self, e: usize, sources: u64) -> f64 {
        self.sigma(e) * (sources as f64).sqrt()
    }
}

/// One part of a block whose sensitivity is bounded on its own (one aggregate's columns, or
/// a row's hidden indicator): its columns and the L2 bound of a change to them, in encoded
/// units.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    pub columns: std::ops::Range<usize>,
    pub l2: f64,
}

#[derive(Debug, Error, PartialEq)]
pub enum DpError {
    #[error("{0}")]
    Invalid(String),
}

/// The zCDP `rho` whose `(epsilon, delta)` conversion (Bun and Steinke, Proposition 1.3) is
/// exactly `epsilon`: `sqrt(rho) = sqrt(L + epsilon) - sqrt(L)`, `L = ln(1/delta)`.
pub fn rho_for(epsilon: f64, delta: f64) -> Result<f64, DpError> {
    if !(MIN_EPSILON..=MAX_EPSILON).contains(&epsilon) {
        return Err(DpError::Invalid(format!(
            "EPSILON must be from {MIN_EPSILON} to {MAX_EPSILON}, found {epsilon}"
        )));
    }
    if !(MIN_DELTA..=MAX_DELTA).contains(&delta) {
        return Err(DpError::Invalid(format!(
            "DELTA must be from {MIN_DELTA:e} to {MAX_DELTA}, found {delta:e}"
        )));
    }
    let l = (1.0 / delta).ln();
    let root = (l + epsilon).sqrt() - l.sqrt();
    Ok(root * root)
}

/// The epsilon that `rho`-zCDP gives at `delta` (Bun and Steinke, Proposition 1.3).
pub fn epsilon_for(rho: f64, delta: f64) -> f64 {
    rho + 2.0 * (rho * (1.0 / delta).ln()).sqrt()
}

/// Kairouz, Liu, Steinke's `tau` for the sum of `n` discrete Gaussians of scale `sigma`.
pub fn tau(sigma: f64, n: u32) -> f64 {
    let s2 = sigma * sigma;
    let mut t = 0.0;
    for j in 1..n {
        let term =
            (-2.0 * std::f64::consts::PI.powi(2) * s2 * f64::from(j) / f64::from(j + 1)).exp();
        t += term;
        if term == 0.0 {
            break; // every later term is smaller still
        }
    }
    10.0 * t
}

/// The zCDP `rho` that the sum of `honest` contributors' noise gives one part of `dims`
/// elements with L2 sensitivity `l2` and per-source scale `sigma` (Kairouz, Liu, Steinke,
/// Theorem 1, in `rho = eps^2 / 2` form).
pub fn rho_of(l2: f64, dims: u32, sigma: f64, honest: u32) -> f64 {
    let h = f64::from(honest.max(1));
    (l2 * l2 / (h * sigma * sigma) + tau(sigma, honest) * f64::from(dims) / 2.0) / 2.0
}

/// The zCDP `rho` of a whole vector: its parts' noise is independent, so their `rho`s add
/// (each part holds `rows` blocks' worth of its columns).
pub fn rho_of_parts(parts: &[Part], rows: u32, sigma_milli: &[u64], honest: u32) -> f64 {
    parts
        .iter()
        .map(|p| {
            let s = sigma_milli.get(p.columns.start).copied().unwrap_or(0) as f64
                / SIGMA_DENOMINATOR as f64;
            rho_of(p.l2, rows * p.columns.len() as u32, s, honest)
        })
        .sum()
}

/// The noise a query's privacy clause asks for. The budget `rho = rho_for(epsilon, delta)`
/// is split evenly over the `parts` (zCDP composes by adding), and each part gets the
/// smallest per-source scale, proportional to its own sensitivity, whose honest sum meets
/// its share: so a count is not drowned in the noise a sum of large values needs. Scales
/// are in thousandths, rounded up.
pub fn calibrate(
    parts: &[Part],
    width: usize,
    rows: u32,
    epsilon: f64,
    delta: f64,
    honest: u32,
) -> Result<NoiseSpec, DpError> {
    let rho = rho_for(epsilon, delta)?;
    if honest == 0 {
        return Err(DpError::Invalid("HONEST SOURCES must be at least 1".into()));
    }
    if parts.is_empty() || parts.iter().any(|p| !(p.l2.is_finite() && p.l2 > 0.0)) {
        return Err(DpError::Invalid(
            "every part of the vector needs a positive, finite sensitivity".into(),
        ));
    }
    let share = rho / parts.len() as f64;
    let h = f64::from(honest);
    // Without tau's term: each part's Gaussian mechanism, split over the honest sources.
    let mut factor = 1.0 / (2.0 * share * h).sqrt();
    for _ in 0..64 {
        let mut sigma_milli = vec![0u64; width];
        let mut too_large = false;
        for p in parts {
            let s = p.l2 * factor;
            too_large |= s > MAX_SIGMA;
            let milli = (s * SIGMA_DENOMINATOR as f64).ceil().clamp(1.0, 1e18) as u64;
            for c in p.columns.clone() {
                if let Some(x) = sigma_milli.get_mut(c) {
                    *x = milli;
                }
            }
        }
        if too_large {
            break;
        }
        if sigma_milli.contains(&0) {
            return Err(DpError::Invalid(
                "a column of the vector has no noise".into(),
            ));
        }
        if rho_of_parts(parts, rows, &sigma_milli, honest) <= rho {
            return Ok(NoiseSpec {
                sigma_milli,
                honest_sources: honest,
            });
        }
        // tau's term is too large: some part's noise per source is too fine (about one
        // encoded unit or less); larger scales make tau vanish.
        factor *= 1.25;
    }
    Err(DpError::Invalid(format!(
        "no noise scale meets EPSILON {epsilon} DELTA {delta:e} over {honest} honest sources \
         for this sensitivity; raise SCALE or lower HONEST SOURCES"
    )))
}

/// A rand 0.10 view of the seeded ChaCha20 stream (prio's sampler speaks rand 0.10).
struct Stream(ChaCha20Rng);

impl rand_core_010::TryRng for Stream {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.0.next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.0.next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}

/// One column's sampler: the fixed-width exact one where its bounds allow, prio's otherwise.
enum Sampler {
    Zero,
    Exact(sampler::Exact),
    Prio(prio::dp::distributions::DiscreteGaussian),
}

impl Sampler {
    fn new(sigma_milli: u64, tail: u64) -> Sampler {
        if sigma_milli == 0 {
            return Sampler::Zero;
        }
        if let Some(exact) = sampler::Exact::new(sigma_milli, SIGMA_DENOMINATOR, tail) {
            return Sampler::Exact(exact);
        }
        prio::dp::Rational::from_unsigned(sigma_milli, SIGMA_DENOMINATOR)
            .ok()
            .and_then(|sigma| prio::dp::distributions::DiscreteGaussian::new(sigma).ok())
            .map_or(Sampler::Zero, Sampler::Prio)
    }

    /// One sample within `tail` (prio's is redrawn beyond it; the exact sampler rejects such
    /// proposals itself: the same law, `N_Z(0, s^2)` conditioned on `|z| <= tail`).
    fn sample(&self, rng: &mut Stream, tail: i64) -> i64 {
        use rand_010::distr::Distribution;
        match self {
            Sampler::Zero => 0,
            Sampler::Exact(exact) => exact.sample(&mut rng.0),
            Sampler::Prio(gauss) => loop {
                let z = gauss.sample(rng);
                if let Ok(z) = i64::try_from(z) {
                    if z.abs() <= tail {
                        break z;
                    }
                }
            },
        }
    }
}

/// `len` independent samples, element `e` of `N_Z(0, s_e^2)` (each redrawn beyond the
/// tail), from a stream derived from `seed` alone: the same seed gives the same noise.
pub fn noise(seed: &[u8; 32], spec: &NoiseSpec, len: usize) -> Vec<i64> {
    let key: [u8; 32] = Sha256::new()
        .chain_update(b"grove/dp-noise/v2")
        .chain_update(seed)
        .finalize()
        .into();
    let mut rng = Stream(ChaCha20Rng::from_seed(key));
    let tail_units = spec.tail();
    let samplers: Vec<Sampler> = spec
        .sigma_milli
        .iter()
        .map(|m| Sampler::new(*m, tail_units))
        .collect();
    draw(&mut rng, &samplers, tail_units, len)
}

/// `len` samples, column `e % width` drawn by `samplers[e % width]` from `rng`.
fn draw(rng: &mut Stream, samplers: &[Sampler], tail_units: u64, len: usize) -> Vec<i64> {
    let tail = i64::try_from(tail_units).unwrap_or(i64::MAX);
    let width = samplers.len().max(1);
    (0..len)
        .map(|e| samplers.get(e % width).map_or(0, |s| s.sample(rng, tail)))
        .collect()
}

/// Whether column `c`'s noise is drawn by the fixed-width exact sampler (`dp/sampler.rs`)
/// rather than prio's: every intermediate value fits 128 bits at its scale and tail.
pub fn fixed_width(spec: &NoiseSpec, c: usize) -> bool {
    let m = spec.sigma_milli.get(c).copied().unwrap_or(0);
    matches!(Sampler::new(m, spec.tail()), Sampler::Exact(_))
}

/// `len` samples as [`noise`] drew them before the fixed-width sampler: prio's sampler for
/// every column. Kept for the measurement of both (`grove-sim crypto-cost`) and the test
/// that both draw the same law.
pub fn noise_prio(seed: &[u8; 32], spec: &NoiseSpec, len: usize) -> Vec<i64> {
    let key: [u8; 32] = Sha256::new()
        .chain_update(b"grove/dp-noise/prio")
        .chain_update(seed)
        .finalize()
        .into();
    let mut rng = Stream(ChaCha20Rng::from_seed(key));
    let samplers: Vec<Sampler> = spec
        .sigma_milli
        .iter()
        .map(|m| {
            prio::dp::Rational::from_unsigned(*m, SIGMA_DENOMINATOR)
                .ok()
                .and_then(|sigma| prio::dp::distributions::DiscreteGaussian::new(sigma).ok())
                .map_or(Sampler::Zero, Sampler::Prio)
        })
        .collect();
    draw(&mut rng, &samplers, spec.tail(), len)
}

/// Adds `seed`'s noise to an encoded vector, in the field.
pub fn add_noise(vector: &mut [Fp], seed: &[u8; 32], spec: &NoiseSpec) {
    let z = noise(seed, spec, vector.len());
    for (x, z) in vector.iter_mut().zip(z) {
        *x += Fp::from_i64(z);
    }
}

/// The half-width of a two-sided 95% interval of a centred normal of deviation `sigma`.
pub fn half_width_95(sigma: f64) -> f64 {
    1.959_963_984_540_054 * sigma
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rho_and_epsilon_convert_both_ways() {
        let rho = rho_for(1.0, 1e-9).unwrap();
        assert!((epsilon_for(rho, 1e-9) - 1.0).abs() < 1e-12);
        assert!((rho - 0.011_76).abs() < 1e-4, "{rho}");
        assert!(rho_for(0.0, 1e-9).is_err());
        assert!(rho_for(1.0, 0.5).is_err());
    }

    #[test]
    fn calibration_meets_the_budget_with_the_honest_part_alone() {
        for (l2, honest) in [(200.0, 1u32), (200.0, 900), (2.0, 900), (1e6, 90_000)] {
            let parts = [
                Part {
                    columns: 0..1,
                    l2: 3.0,
                },
                Part { columns: 1..3, l2 },
            ];
            let spec = calibrate(&parts, 3, 4, 1.0, 1e-9, honest).unwrap();
            let rho = rho_for(1.0, 1e-9).unwrap();
            assert!(rho_of_parts(&parts, 4, &spec.sigma_milli, honest) <= rho);
            // Each part's noise follows its own sensitivity.
            assert_eq!(spec.sigma_milli[1], spec.sigma_milli[2]);
            let ratio = spec.sigma(1) / spec.sigma(0);
            assert!((ratio - l2 / 3.0).abs() / (l2 / 3.0) < 0.01 || spec.sigma(0) < 2.0);
        }
    }

    #[test]
    fn noise_is_a_function_of_the_seed() {
        let spec = NoiseSpec {
            sigma_milli: vec![5_500, 700],
            honest_sources: 1,
        };
        assert_eq!(noise(&[1; 32], &spec, 50), noise(&[1; 32], &spec, 50));
        assert_ne!(noise(&[1; 32], &spec, 50), noise(&[2; 32], &spec, 50));
        assert!(noise(&[3; 32], &spec, 1000)
            .iter()
            .all(|z| z.unsigned_abs() <= spec.tail()));
    }
}
