//! An exact sampler of the discrete Gaussian in fixed-width integers.
//!
//! This is Canonne, Kamath and Steinke's Algorithm 3 ("The Discrete Gaussian for Differential
//! Privacy", 2020), step for step as `prio::dp` implements it (Bernoulli, `Bernoulli(exp(-g))`
//! for `g` in `[0, 1]` and above, the geometric and discrete Laplace samplers), with every
//! rational held as a pair of `u128` instead of a big rational. prio's sampler costs 14 to
//! 28 us per element (its big-integer allocations), which put 3.7 s of sampling on each
//! contributor's critical path at DISSEC's settings; this one costs about a hundredth of
//! that (`grove-sim crypto-cost`). It is used only for a scale whose every intermediate value
//! provably fits (`Exact::new` checks the largest one); any other scale keeps prio's sampler.
//!
//! Two differences from a literal reading, neither of which changes the law:
//! - `Bernoulli(g / k)` is drawn as `Bernoulli(g)` and `Bernoulli(1 / k)`, independent (their
//!   conjunction has probability `g / k`), so no product of denominators can overflow;
//! - a discrete Laplace proposal beyond the noise tail is rejected like a refused one. The
//!   accepted value's law is then `N_Z(0, s^2)` conditioned on `|z| <= tail`, which is what
//!   `dp::noise` already released (it redraws a sample beyond the tail).

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;

/// A uniform integer in `[0, n)`, `n >= 1`, by rejection of masked draws (exact).
fn uniform_below(rng: &mut ChaCha20Rng, n: u128) -> u128 {
    if n <= 1 {
        return 0;
    }
    let bits = 128 - (n - 1).leading_zeros();
    if bits <= 64 {
        let mask = u64::MAX >> (64 - bits);
        loop {
            let x = u128::from(rng.next_u64() & mask);
            if x < n {
                return x;
            }
        }
    }
    let mask = u128::MAX >> (128 - bits);
    loop {
        let x = ((u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())) & mask;
        if x < n {
            return x;
        }
    }
}

/// `Bernoulli(num / den)`, `num <= den`, `den >= 1`.
fn bernoulli(rng: &mut ChaCha20Rng, num: u128, den: u128) -> bool {
    uniform_below(rng, den) < num
}

/// `Bernoulli(exp(-num / den))` for `num <= den` (CKS Algorithm 1, the `[0, 1]` branch).
fn bernoulli_exp1(rng: &mut ChaCha20Rng, num: u128, den: u128) -> bool {
    let mut k: u128 = 1;
    loop {
        // Bernoulli(gamma / k), as the conjunction of two independent draws.
        if bernoulli(rng, num, den) && bernoulli(rng, 1, k) {
            k += 1;
        } else {
            return k % 2 == 1;
        }
    }
}

/// `Bernoulli(exp(-(whole + num / den)))`, `num < den` (CKS Algorithm 1, above 1).
fn bernoulli_exp(rng: &mut ChaCha20Rng, whole: u128, num: u128, den: u128) -> bool {
    for _ in 0..whole {
        if !bernoulli_exp1(rng, 1, 1) {
            return false;
        }
    }
    bernoulli_exp1(rng, num, den)
}

/// `Geometric(1 - exp(-1 / t))` (CKS Algorithm 2 without its last lines), saturating.
fn geometric(rng: &mut ChaCha20Rng, t: u128) -> u128 {
    let mut u = uniform_below(rng, t);
    while !bernoulli_exp1(rng, u, t) {
        u = uniform_below(rng, t);
    }
    let mut v: u128 = 0;
    while bernoulli_exp1(rng, 1, 1) {
        v = v.saturating_add(1);
    }
    u.saturating_add(t.saturating_mul(v))
}

/// The discrete Laplace of scale `t`, as a sign and a magnitude (CKS Algorithm 2).
fn laplace(rng: &mut ChaCha20Rng, t: u128) -> (bool, u128) {
    loop {
        let negative = bernoulli(rng, 1, 2);
        let y = geometric(rng, t);
        if !(negative && y == 0) {
            return (negative, y);
        }
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `N_Z(0, s^2)` conditioned on `|z| <= tail`, for `s = p / q` in lowest terms.
#[derive(Clone, Debug)]
pub(super) struct Exact {
    /// `t = floor(s) + 1`, the Laplace proposal's scale.
    t: u128,
    tail: u128,
    /// `q^2 t` and `p^2`: `|y| - s^2 / t = (|y| q^2 t - p^2) / (q^2 t)`.
    q2t: u128,
    p2: u128,
    /// `2 p^2 q^2 t^2`: the acceptance exponent is `(|y| q^2 t - p^2)^2 / (2 p^2 q^2 t^2)`.
    den: u128,
}

impl Exact {
    /// The sampler for `s = numer / denom` (`numer > 0`), or `None` if some intermediate value
    /// for a proposal within `tail` could exceed `u128`.
    pub(super) fn new(numer: u64, denom: u64, tail: u64) -> Option<Exact> {
        let (numer, denom) = (u128::from(numer), u128::from(denom));
        if numer == 0 || denom == 0 {
            return None;
        }
        let g = gcd(numer, denom);
        let (p, q) = (numer / g, denom / g);
        let t = p / q + 1;
        let tail = u128::from(tail);
        let q2t = q.checked_mul(q)?.checked_mul(t)?;
        let p2 = p.checked_mul(p)?;
        // The largest |y q^2 t - p^2| for |y| <= tail, and its square, must fit.
        let a_max = tail.checked_mul(q2t)?.max(p2);
        a_max.checked_mul(a_max)?;
        let den = p2
            .checked_mul(2)?
            .checked_mul(q.checked_mul(q)?)?
            .checked_mul(t.checked_mul(t)?)?;
        Some(Exact {
            t,
            tail,
            q2t,
            p2,
            den,
        })
    }

    /// One sample (CKS Algorithm 3).
    pub(super) fn sample(&self, rng: &mut ChaCha20Rng) -> i64 {
        loop {
            let (negative, y) = laplace(rng, self.t);
            if y > self.tail {
                continue; // beyond the tail: rejected, as `dp::noise` redraws such a sample
            }
            // No overflow: y <= tail, so y q^2 t and the square are within `new`'s check.
            let a = (y * self.q2t).abs_diff(self.p2);
            let a2 = a * a;
            if bernoulli_exp(rng, a2 / self.den, a2 % self.den, self.den) {
                // y <= tail, which `NoiseSpec::tail` keeps below 2^63.
                let y = i64::try_from(y).unwrap_or(i64::MAX);
                return if negative { -y } else { y };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn bounds_decide_which_scales_are_exact_here() {
        // DISSEC's settings: about 1.1e5 encoded units per source (not a whole number of
        // units: q = 1000), a tail of 40 times that.
        assert!(Exact::new(110_000_001, 1000, 4_400_001).is_some());
        // Beyond about 6.8e5 units at a thousandth's resolution, prio's sampler takes over.
        assert!(Exact::new(650_000_001, 1000, 26_000_001).is_some());
        assert!(Exact::new(700_000_001, 1000, 28_000_001).is_none());
        // A whole number of units reduces to q = 1 and goes much further.
        assert!(Exact::new(10_000_000_000, 1000, 400_000_000).is_some());
        assert!(Exact::new(u64::MAX / 2, 1, u64::MAX / 4).is_none());
        assert!(Exact::new(0, 1000, 0).is_none());
    }

    /// A proposal beyond the tail is rejected (the bound `new` checks the arithmetic for):
    /// with a tail of half a deviation every sample lies within it, both ends reached.
    #[test]
    fn proposals_beyond_the_tail_are_rejected() {
        let exact = Exact::new(10_000, 1000, 5).unwrap();
        let mut rng = ChaCha20Rng::from_seed([3; 32]);
        let z: Vec<i64> = (0..5_000).map(|_| exact.sample(&mut rng)).collect();
        assert!(z.iter().all(|z| z.abs() <= 5), "{:?}", z.iter().max());
        assert!(z.contains(&5) && z.contains(&-5));
    }

    #[test]
    fn bernoulli_exp_matches_its_probability() {
        let mut rng = ChaCha20Rng::from_seed([9; 32]);
        let n = 200_000;
        for (whole, num, den) in [(0u128, 0u128, 1u128), (0, 1, 3), (0, 1, 1), (2, 1, 2)] {
            let hits = (0..n)
                .filter(|_| bernoulli_exp(&mut rng, whole, num, den))
                .count() as f64;
            let p = (-(whole as f64 + num as f64 / den as f64)).exp();
            let sd = (p * (1.0 - p) / f64::from(n)).sqrt().max(1e-9);
            assert!(
                (hits / f64::from(n) - p).abs() < 5.0 * sd,
                "{whole} + {num}/{den}: {} against {p}",
                hits / f64::from(n)
            );
        }
    }
}
