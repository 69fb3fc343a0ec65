//! Vector Shamir sharing over Goldilocks (`crate::field`) with seed-compressed shares.
//!
//! Shares sit at evaluation points `1..=g` (the positions); the secret is the value at 0.
//!
//! Every element of a shared vector gets its own polynomial of degree `t - 1`. Rather than
//! evaluating the polynomials with multiplications, the sharing works with finite differences
//! at consecutive integer points, so that walking from one position to the next costs `t - 1`
//! field additions per element, all done as vector passes over cache-sized chunks:
//!
//! - [`share_vector`] draws the `t - 1` backward differences `∇^k f(0)` (`k = 1..t-1`) of
//!   each element's polynomial uniformly at random. These are the coefficients of `f` in a
//!   Newton basis, an invertible linear image of the monomial coefficients, so the polynomial
//!   is uniform among those of degree `< t` with `f(0) = secret`, exactly as with random
//!   monomial coefficients.
//! - [`share_vector_compressed`] fixes `f(1..t-1)` to pseudo-random vectors expanded from
//!   per-position seeds, then extends `f(0..t-1)` to positions `t..=g` (Lagrange
//!   interpolation through those `t` points, computed as a difference table).

use crate::field::{add_assign_vec, extend_sum, fill_random, linear_combination, FieldVec, Fp};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
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
    pub fn new(g: u8, t: u8) -> Result<SharingParams, SharingError> {
        if t == 0 || t > g || g > crate::limits::MAX_GROUP_SIZE {
            return Err(SharingError::InvalidParams { g, t });
        }
        Ok(SharingParams { g, t })
    }
}

/// Domain of the per-position seeds of compressed shares.
const SHARE_SEED_DOMAIN: &str = "grove/share-seed";

/// Elements processed per pass; `t` working vectors of this size stay in the L1/L2 cache.
const CHUNK: usize = 1024;

/// The seed of position `position` (`1..t`) of a compressed sharing under `seed`.
pub fn share_sub_seed(seed: &[u8; 32], position: u8) -> [u8; 32] {
    crate::ids::hash_parts(SHARE_SEED_DOMAIN, &[seed, &[position]])
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
    ///
    /// A `Seed` expands to `len` uniform elements drawn from `ChaCha20Rng::from_seed(seed)`
    /// with [`crate::field::random_vec`]. A `Full` share is returned as it is: its length is
    /// NOT checked against `len`, callers that take shares from the network must compare it
    /// themselves.
    pub fn expand(&self, len: usize) -> Vec<Fp> {
        match self {
            CompressedShare::Seed(_) => {
                let mut v = Vec::with_capacity(len);
                self.for_each_block(len, |block| v.extend_from_slice(block));
                v
            }
            CompressedShare::Full(v) => v.0.clone(),
        }
    }

    /// Calls `f` on the share's first `len` elements in order, in blocks of at most
    /// [`EXPAND_BLOCK`], without a vector of the whole share: a consumer that converts, hashes
    /// or adds the elements needs no buffer of its own (a seed's expansion is 1 MB at 131,072
    /// elements). A `Seed` gives the elements [`Self::expand`] returns: its stream is drawn a
    /// block at a time from one `ChaCha20Rng`, and [`fill_random`] draws its words in order
    /// whatever the blocks. A `Full` share gives its first `len` elements, or all of them if
    /// it is shorter.
    pub fn for_each_block(&self, len: usize, mut f: impl FnMut(&[Fp])) {
        match self {
            CompressedShare::Seed(s) => {
                let mut rng = ChaCha20Rng::from_seed(*s);
                let mut block = [Fp::ZERO; EXPAND_BLOCK];
                let mut done = 0;
                while done < len {
                    let n = (len - done).min(EXPAND_BLOCK);
                    fill_random(&mut rng, &mut block[..n]);
                    f(&block[..n]);
                    done += n;
                }
            }
            CompressedShare::Full(v) => {
                for block in v.0[..len.min(v.0.len())].chunks(EXPAND_BLOCK) {
                    f(block);
                }
            }
        }
    }
}

/// The most elements [`CompressedShare::for_each_block`] gives at a time (8 KB on the stack).
pub const EXPAND_BLOCK: usize = 1024;

/// Panics on parameters that [`SharingParams::new`] would reject; public functions take
/// `SharingParams` by value and its fields are public, so check once at the entry.
fn check_params(params: SharingParams) {
    assert!(
        SharingParams::new(params.g, params.t).is_ok(),
        "invalid sharing parameters {params:?}"
    );
}

/// Shares `secret` into `g` full vectors (index 0 is position 1). Deterministic in `seed`.
///
/// Panics if `params` are invalid (see [`SharingParams::new`]).
pub fn share_vector(secret: &[Fp], params: SharingParams, seed: [u8; 32]) -> Vec<Vec<Fp>> {
    check_params(params);
    let g = params.g as usize;
    let t = params.t as usize;
    let n = secret.len();
    if t == 1 {
        return vec![secret.to_vec(); g];
    }
    let mut out: Vec<Vec<Fp>> = (0..g).map(|_| Vec::with_capacity(n)).collect();
    let mut rng = ChaCha20Rng::from_seed(seed);
    // diffs[k] = ∇^(t-1-k) f(x) for k = 0..t-1 (so diffs[t-2] = ∇f(x)); the values f(x)
    // themselves are the shares.
    let mut diffs = vec![vec![Fp::ZERO; CHUNK.min(n)]; t - 1];
    let mut start = 0;
    while start < n {
        let len = (n - start).min(CHUNK);
        let end = start + len;
        for d in &mut diffs {
            fill_random(&mut rng, &mut d[..len]);
        }
        for x in 0..g {
            // From point x to x + 1.
            step(&mut diffs, len);
            let (done, rest) = out.split_at_mut(x);
            let prev = match done.last() {
                Some(p) => &p[start..end],
                None => &secret[start..end],
            };
            extend_sum(&mut rest[0], prev, &diffs[t - 2][..len]);
        }
        start = end;
    }
    out
}

/// Advances the differences of a backward-difference table by one point:
/// `diffs[k] = ∇^(m-k) f(x)` becomes `∇^(m-k) f(x+1)`, where `m = diffs.len()` and the top
/// difference `diffs[0]` is constant. The caller then adds `diffs[m-1] = ∇f(x+1)` to `f(x)`.
#[inline]
fn step(diffs: &mut [Vec<Fp>], len: usize) {
    for k in 1..diffs.len() {
        let (lo, hi) = diffs.split_at_mut(k);
        add_assign_vec(&mut hi[0][..len], &lo[k - 1][..len]);
    }
}

/// Shares `secret` into `g` compressed shares (index 0 is position 1): positions `1..t-1` get
/// seeds, positions `t..=g` full vectors. Deterministic in `seed`; every share expands to the
/// value of one degree `t-1` polynomial with the secret at 0.
///
/// Position `i < t` carries `share_sub_seed(seed, i)`; its vector is the expansion of that
/// seed (see [`CompressedShare::expand`]). Panics if `params` are invalid.
pub fn share_vector_compressed(
    secret: &[Fp],
    params: SharingParams,
    seed: [u8; 32],
) -> Vec<CompressedShare> {
    check_params(params);
    let g = params.g as usize;
    let t = params.t as usize;
    let n = secret.len();
    if t == 1 {
        return vec![CompressedShare::Full(FieldVec(secret.to_vec())); g];
    }
    let seeds: Vec<[u8; 32]> = (1..t as u8).map(|i| share_sub_seed(&seed, i)).collect();
    let mut rngs: Vec<ChaCha20Rng> = seeds.iter().map(|s| ChaCha20Rng::from_seed(*s)).collect();
    let mut full: Vec<Vec<Fp>> = (t..=g).map(|_| Vec::with_capacity(n)).collect();
    // diffs[k] starts as f(k) for k = 0..t-1 and is turned into diffs[k] = ∇^(t-1-k) f(t-1).
    let mut diffs = vec![vec![Fp::ZERO; CHUNK.min(n)]; t];
    let mut start = 0;
    while start < n {
        let len = (n - start).min(CHUNK);
        let end = start + len;
        diffs[0][..len].copy_from_slice(&secret[start..end]);
        for (d, rng) in diffs[1..].iter_mut().zip(rngs.iter_mut()) {
            fill_random(rng, &mut d[..len]);
        }
        // Forward differences, keeping the last entry of every level:
        // after level k, diffs[i] = Δ^k f(i) for i <= t-1-k.
        for k in 1..t {
            for i in 0..t - k {
                let (lo, hi) = diffs.split_at_mut(i + 1);
                rsub_assign(&mut lo[i][..len], &hi[0][..len]);
            }
        }
        let (table, value) = diffs.split_at_mut(t - 1);
        for j in 0..full.len() {
            // From point t-1+j to t+j.
            step(table, len);
            let (done, rest) = full.split_at_mut(j);
            let prev = match done.last() {
                Some(p) => &p[start..end],
                None => &value[0][..len],
            };
            extend_sum(&mut rest[0], prev, &table[t - 2][..len]);
        }
        start = end;
    }
    let mut out: Vec<CompressedShare> = seeds.into_iter().map(CompressedShare::Seed).collect();
    out.extend(full.into_iter().map(|v| CompressedShare::Full(FieldVec(v))));
    out
}

/// Domain of a contributor's rotation of its seed positions.
const ROTATION_DOMAIN: &str = "grove/share-rotation";

/// The rotation of a contributor's compressed sharing in a group of `g`: which `t - 1`
/// positions receive seeds (see [`share_vector_rotated`]). Derived from the contributor's id,
/// so that every node computes it and the full vectors of a leaf's contributors spread over
/// all its positions instead of always loading positions `t..=g`.
pub fn rotation_of(contributor: &[u8; 32], g: u8) -> u8 {
    crate::ids::hash_parts(ROTATION_DOMAIN, &[contributor])[0] % g.max(1)
}

/// Whether `position` receives a full vector (not a seed) under `rotation`: the seeds go to
/// the `t - 1` positions starting at `rotation % g + 1`, cyclically.
pub fn carries_full_vector(params: SharingParams, rotation: u8, position: u8) -> bool {
    let g = params.g.max(1);
    let offset = (position.wrapping_sub(1) % g + g - rotation % g) % g;
    params.t <= 1 || offset >= params.t - 1
}

/// Value-at-`target` coefficients of the polynomial of degree `< points.len()` through
/// `points` (distinct, zero allowed).
fn interpolation_coefficients(points: &[u8], target: u8) -> Vec<Fp> {
    let tx = Fp::new(target as u64);
    points
        .iter()
        .enumerate()
        .map(|(i, &pi)| {
            let xi = Fp::new(pi as u64);
            let (mut num, mut den) = (Fp::ONE, Fp::ONE);
            for (j, &pj) in points.iter().enumerate() {
                if i != j {
                    let xj = Fp::new(pj as u64);
                    num *= tx - xj;
                    den *= xi - xj;
                }
            }
            // Distinct points below P: no factor of `den` is zero.
            num * den.inv().unwrap_or(Fp::ZERO)
        })
        .collect()
}

/// [`share_vector_compressed`] with the seeds at the `t - 1` positions that `rotation` names
/// ([`carries_full_vector`]) rather than at `1..t-1`; rotation 0 is exactly
/// `share_vector_compressed`. Index 0 is position 1. The values at the seed positions are
/// pseudo-random and the secret sits at 0, so the polynomial of degree `t - 1` through them is
/// distributed as a random one with that secret, whichever positions hold the seeds.
///
/// Panics if `params` are invalid (see [`SharingParams::new`]).
pub fn share_vector_rotated(
    secret: &[Fp],
    params: SharingParams,
    seed: [u8; 32],
    rotation: u8,
) -> Vec<CompressedShare> {
    check_params(params);
    if params.t == 1 || rotation.is_multiple_of(params.g) {
        return share_vector_compressed(secret, params, seed);
    }
    let n = secret.len();
    let seeded: Vec<u8> = (1..=params.g)
        .filter(|p| !carries_full_vector(params, rotation, *p))
        .collect();
    let mut points = vec![0u8];
    let mut values: Vec<Vec<Fp>> = vec![secret.to_vec()];
    for &p in &seeded {
        points.push(p);
        values.push(CompressedShare::Seed(share_sub_seed(&seed, p)).expand(n));
    }
    let refs: Vec<&[Fp]> = values.iter().map(|v| v.as_slice()).collect();
    (1..=params.g)
        .map(|p| {
            if seeded.contains(&p) {
                CompressedShare::Seed(share_sub_seed(&seed, p))
            } else {
                let coeffs = interpolation_coefficients(&points, p);
                CompressedShare::Full(FieldVec(linear_combination(&coeffs, &refs)))
            }
        })
        .collect()
}

/// `a[i] = b[i] - a[i]`.
fn rsub_assign(a: &mut [Fp], b: &[Fp]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = *y - *x;
    }
}

/// Lagrange coefficients that carry the values at `points` to the value at `target`
/// (`target = 0` reconstructs the secret). Points must be distinct and non-zero.
pub fn lagrange_coefficients(points: &[u8], target: u8) -> Result<Vec<Fp>, SharingError> {
    let mut seen = [false; 256];
    for &p in points {
        if p == 0 || seen[p as usize] {
            return Err(SharingError::BadPoint(p));
        }
        seen[p as usize] = true;
    }
    let tx = Fp::new(target as u64);
    let mut out = Vec::with_capacity(points.len());
    for (i, &pi) in points.iter().enumerate() {
        let xi = Fp::new(pi as u64);
        let mut num = Fp::ONE;
        let mut den = Fp::ONE;
        for (j, &pj) in points.iter().enumerate() {
            if i != j {
                let xj = Fp::new(pj as u64);
                num *= tx - xj;
                den *= xi - xj;
            }
        }
        // Distinct points below P make every factor of `den` non-zero.
        let inv = den.inv().ok_or(SharingError::BadPoint(pi))?;
        out.push(num * inv);
    }
    Ok(out)
}

/// Reconstructs the secret from exactly the given `(position, share)` pairs (at least `t`).
///
/// Uses the first `t` pairs; their positions must be distinct and non-zero and their lengths
/// equal. `t = 0` is rejected as invalid parameters.
pub fn reconstruct(shares: &[(u8, &[Fp])], t: u8) -> Result<Vec<Fp>, SharingError> {
    if t == 0 || t > crate::limits::MAX_GROUP_SIZE {
        return Err(SharingError::InvalidParams {
            g: shares.len().min(u8::MAX as usize) as u8,
            t,
        });
    }
    let t = t as usize;
    if shares.len() < t {
        return Err(SharingError::NotEnoughShares {
            needed: t,
            got: shares.len(),
        });
    }
    let used = &shares[..t];
    let n = used[0].1.len();
    if used.iter().any(|(_, s)| s.len() != n) {
        return Err(SharingError::LengthMismatch);
    }
    let points: Vec<u8> = used.iter().map(|(p, _)| *p).collect();
    let coeffs = lagrange_coefficients(&points, 0)?;
    let vecs: Vec<&[Fp]> = used.iter().map(|(_, s)| *s).collect();
    Ok(linear_combination(&coeffs, &vecs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(n: usize) -> Vec<Fp> {
        (0..n as u64).map(|i| Fp::new(i * 1_000_003 + 7)).collect()
    }

    #[test]
    fn params() {
        assert!(SharingParams::new(1, 1).is_ok());
        assert!(SharingParams::new(32, 32).is_ok());
        assert!(SharingParams::new(33, 3).is_err());
        assert!(SharingParams::new(3, 0).is_err());
        assert!(SharingParams::new(3, 4).is_err());
    }

    #[test]
    fn a_seed_expands_block_by_block_to_its_whole_stream() {
        // The definition: `len` elements of `fill_random` over one `ChaCha20Rng` from the
        // seed, drawn at once. Lengths across block edges; a seed whose stream rejects words
        // is as likely as any (about 1 in 2^61 per word), so the draw order is what is tested.
        for (i, len) in [0, 1, 1023, 1024, 1025, 2 * EXPAND_BLOCK + 17, 5000]
            .into_iter()
            .enumerate()
        {
            let seed = [i as u8 + 9; 32];
            let want = crate::field::random_vec(&mut ChaCha20Rng::from_seed(seed), len);
            let share = CompressedShare::Seed(seed);
            let mut got = Vec::new();
            share.for_each_block(len, |b| {
                assert!(!b.is_empty() && b.len() <= EXPAND_BLOCK);
                got.extend_from_slice(b);
            });
            assert_eq!(got, want, "len {len}");
            assert_eq!(share.expand(len), want, "len {len}");
            // A full share gives its prefix, or all of it when shorter.
            let full = CompressedShare::Full(FieldVec(want.clone()));
            let mut prefix = Vec::new();
            full.for_each_block(len / 2, |b| prefix.extend_from_slice(b));
            assert_eq!(prefix, want[..len / 2]);
            prefix.clear();
            full.for_each_block(len + 5, |b| prefix.extend_from_slice(b));
            assert_eq!(prefix, want);
        }
    }

    #[test]
    fn rotated_shares_reconstruct_from_any_t_and_put_seeds_where_announced() {
        let s = secret(2_500);
        let p = SharingParams::new(7, 5).unwrap();
        for rotation in 0..7u8 {
            let shares = share_vector_rotated(&s, p, [4; 32], rotation);
            let mut seeds = 0;
            for (i, sh) in shares.iter().enumerate() {
                let full = carries_full_vector(p, rotation, i as u8 + 1);
                assert_eq!(
                    matches!(sh, CompressedShare::Full(_)),
                    full,
                    "{rotation} {i}"
                );
                seeds += usize::from(!full);
            }
            assert_eq!(seeds, 4);
            let expanded: Vec<Vec<Fp>> = shares.iter().map(|sh| sh.expand(s.len())).collect();
            // Every window of t consecutive positions, and the last t.
            for first in 0..3usize {
                let pairs: Vec<(u8, &[Fp])> = (first..first + 5)
                    .map(|i| (i as u8 + 1, expanded[i].as_slice()))
                    .collect();
                assert_eq!(reconstruct(&pairs, 5).unwrap(), s, "rotation {rotation}");
            }
        }
        // Rotation 0 is the plain compressed sharing.
        assert_eq!(
            share_vector_rotated(&s, p, [4; 32], 0),
            share_vector_compressed(&s, p, [4; 32])
        );
    }

    #[test]
    fn rotations_spread_full_vectors_over_every_position() {
        let p = SharingParams::new(7, 5).unwrap();
        let mut full = [0usize; 7];
        for c in 0..700u32 {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&c.to_le_bytes());
            let r = rotation_of(&id, 7);
            for (i, f) in full.iter_mut().enumerate() {
                *f += usize::from(carries_full_vector(p, r, i as u8 + 1));
            }
        }
        // 3 of 7 positions per contributor: 300 per position on average.
        assert!(full.iter().all(|f| (200..400).contains(f)), "{full:?}");
    }

    #[test]
    fn t1_shares_equal_secret() {
        let s = secret(10);
        let p = SharingParams::new(4, 1).unwrap();
        for sh in share_vector(&s, p, [1; 32]) {
            assert_eq!(sh, s);
        }
        for sh in share_vector_compressed(&s, p, [1; 32]) {
            assert_eq!(sh, CompressedShare::Full(FieldVec(s.clone())));
        }
    }

    #[test]
    fn long_vector_crosses_chunks() {
        let s = secret(3 * CHUNK + 17);
        let p = SharingParams::new(7, 5).unwrap();
        let shares = share_vector(&s, p, [3; 32]);
        let pairs: Vec<(u8, &[Fp])> = shares
            .iter()
            .enumerate()
            .rev()
            .map(|(i, v)| (i as u8 + 1, v.as_slice()))
            .collect();
        assert_eq!(reconstruct(&pairs, 5).unwrap(), s);
        let comp = share_vector_compressed(&s, p, [3; 32]);
        let exp: Vec<Vec<Fp>> = comp.iter().map(|c| c.expand(s.len())).collect();
        let pairs: Vec<(u8, &[Fp])> = exp
            .iter()
            .enumerate()
            .skip(2)
            .map(|(i, v)| (i as u8 + 1, v.as_slice()))
            .collect();
        assert_eq!(reconstruct(&pairs, 5).unwrap(), s);
    }

    #[test]
    fn errors() {
        let a = vec![Fp::ONE; 3];
        let b = vec![Fp::ONE; 4];
        assert_eq!(
            reconstruct(&[(1, &a)], 2),
            Err(SharingError::NotEnoughShares { needed: 2, got: 1 })
        );
        assert_eq!(
            reconstruct(&[(1, &a), (2, &b)], 2),
            Err(SharingError::LengthMismatch)
        );
        assert_eq!(
            reconstruct(&[(1, &a), (1, &a)], 2),
            Err(SharingError::BadPoint(1))
        );
        assert_eq!(
            reconstruct(&[(0, &a), (1, &a)], 2),
            Err(SharingError::BadPoint(0))
        );
        assert_eq!(
            lagrange_coefficients(&[1, 2, 2], 0),
            Err(SharingError::BadPoint(2))
        );
        assert_eq!(
            lagrange_coefficients(&[1, 2, 3], 2).unwrap(),
            vec![Fp::ZERO, Fp::ONE, Fp::ZERO]
        );
    }

    #[test]
    fn sub_seeds_distinct() {
        let a = share_sub_seed(&[0; 32], 1);
        let b = share_sub_seed(&[0; 32], 2);
        let c = share_sub_seed(&[1; 32], 1);
        assert_ne!(a, b);
        assert_ne!(a, c);
    }
}
