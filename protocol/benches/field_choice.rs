//! The field decision of issue 17, measured: the sharing kernel (difference-table sharing,
//! plain and seed-compressed, and reconstruction by Lagrange combination) on 100,000-element
//! vectors, in three fields:
//!
//! - `m61`: GF(2^61 - 1), the field Grove shares in today (`field.rs`); run both through the
//!   crate's own kernel (`crate_*`) and through the generic copy below, so that the generic
//!   copy's overhead is visible;
//! - `gl`: Goldilocks, GF(2^64 - 2^32 + 1), written here with canonical values and the
//!   `2^64 = 2^32 - 1` reduction (no Montgomery form); its values are prio's `Field64` values,
//!   converted only for proofs;
//! - `prio64`: prio's `Field64` (the same field, Montgomery form) used directly.
//!
//! `cargo bench -p grove-protocol --bench field_choice`; divide by 100,000 for ns per element.

use divan::{black_box, Bencher};
use grove_protocol::field::{random_vec, Fp};
use grove_protocol::sharing::{reconstruct, share_vector, share_vector_compressed, SharingParams};
use prio::field::{Field64, FieldElement};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

const LEN: usize = 100_000;
const PARAMS: [(u8, u8); 2] = [(5, 3), (7, 5)];
const CHUNK: usize = 1024;

fn main() {
    divan::main();
}

/// What the kernel needs from a field.
trait K: Copy + Send + Sync + PartialEq + std::fmt::Debug + 'static {
    fn zero() -> Self;
    fn one() -> Self;
    fn add(a: Self, b: Self) -> Self;
    fn sub(a: Self, b: Self) -> Self;
    fn mul(a: Self, b: Self) -> Self;
    fn inv(a: Self) -> Self;
    fn fill_random(rng: &mut ChaCha20Rng, out: &mut [Self]);
    /// `sum_k coeffs[k] * vecs[k]`; the default reduces every product.
    fn lincomb(coeffs: &[Self], vecs: &[&[Self]]) -> Vec<Self> {
        let n = vecs[0].len();
        let mut out: Vec<Self> = vecs[0].iter().map(|x| Self::mul(coeffs[0], *x)).collect();
        for (c, v) in coeffs.iter().zip(vecs).skip(1) {
            for (o, x) in out.iter_mut().zip(&v[..n]) {
                *o = Self::add(*o, Self::mul(*c, *x));
            }
        }
        out
    }
}

impl K for Fp {
    fn zero() -> Self {
        Fp::ZERO
    }
    fn one() -> Self {
        Fp::ONE
    }
    #[inline(always)]
    fn add(a: Self, b: Self) -> Self {
        a + b
    }
    #[inline(always)]
    fn sub(a: Self, b: Self) -> Self {
        a - b
    }
    #[inline(always)]
    fn mul(a: Self, b: Self) -> Self {
        a * b
    }
    fn inv(a: Self) -> Self {
        a.inv().unwrap()
    }
    fn fill_random(rng: &mut ChaCha20Rng, out: &mut [Self]) {
        grove_protocol::field::fill_random(rng, out)
    }
    fn lincomb(coeffs: &[Self], vecs: &[&[Self]]) -> Vec<Self> {
        grove_protocol::field::linear_combination(coeffs, vecs)
    }
}

/// Goldilocks, canonical (`< GL_P`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Gl(u64);
const GL_P: u64 = 0xffff_ffff_0000_0001;
/// `2^64 mod GL_P`.
const EPS: u64 = 0xffff_ffff;

#[inline(always)]
fn gl_canon(x: u64) -> u64 {
    let (r, borrow) = x.overflowing_sub(GL_P);
    if borrow {
        x
    } else {
        r
    }
}

/// Any `u128` to a canonical value.
#[inline(always)]
fn gl_reduce(x: u128) -> u64 {
    let lo = x as u64;
    let hi = (x >> 64) as u64;
    let (hh, hl) = (hi >> 32, hi & EPS);
    // 2^96 = -1: subtract hh.
    let (mut t0, borrow) = lo.overflowing_sub(hh);
    t0 = t0.wrapping_sub(EPS & (borrow as u64).wrapping_neg());
    // 2^64 = EPS: add hl * EPS (< 2^64).
    let (t2, carry) = t0.overflowing_add(hl * EPS);
    gl_canon(t2.wrapping_add(EPS & (carry as u64).wrapping_neg()))
}

impl K for Gl {
    fn zero() -> Self {
        Gl(0)
    }
    fn one() -> Self {
        Gl(1)
    }
    #[inline(always)]
    fn add(a: Self, b: Self) -> Self {
        let (s, carry) = a.0.overflowing_add(b.0);
        // a + b - 2^64 < GL_P, so adding EPS once cannot carry again.
        Gl(gl_canon(
            s.wrapping_add(EPS & (carry as u64).wrapping_neg()),
        ))
    }
    #[inline(always)]
    fn sub(a: Self, b: Self) -> Self {
        let (d, borrow) = a.0.overflowing_sub(b.0);
        Gl(d.wrapping_sub(EPS & (borrow as u64).wrapping_neg()))
    }
    #[inline(always)]
    fn mul(a: Self, b: Self) -> Self {
        Gl(gl_reduce(a.0 as u128 * b.0 as u128))
    }
    fn inv(a: Self) -> Self {
        let (mut base, mut e, mut acc) = (a, GL_P - 2, Gl(1));
        while e > 0 {
            if e & 1 == 1 {
                acc = Self::mul(acc, base);
            }
            base = Self::mul(base, base);
            e >>= 1;
        }
        acc
    }
    fn fill_random(rng: &mut ChaCha20Rng, out: &mut [Self]) {
        let mut buf = [0u8; 256 * 8];
        let mut filled = 0;
        while filled < out.len() {
            let n = (out.len() - filled).min(256);
            rng.fill_bytes(&mut buf[..n * 8]);
            let dst = &mut out[filled..filled + n];
            let mut w = 0;
            for word in buf[..n * 8].chunks_exact(8) {
                let v = u64::from_le_bytes(word.try_into().unwrap());
                dst[w] = Gl(v);
                w += (v < GL_P) as usize;
            }
            filled += w;
        }
    }
    /// Element by element, the `t` products accumulated in registers: with `c x = H 2^64 + L`,
    /// the sums of the `L` and of the `H` (below 2^69 each for at most 32 terms) give
    /// `sum L + (sum H) (2^32 - 1)` (below 2^102), reduced once per element.
    fn lincomb(coeffs: &[Self], vecs: &[&[Self]]) -> Vec<Self> {
        let n = vecs[0].len();
        let vecs: Vec<&[Self]> = vecs.iter().map(|v| &v[..n]).collect();
        (0..n)
            .map(|i| {
                let (mut lo, mut hi) = (0u128, 0u128);
                for (c, v) in coeffs.iter().zip(&vecs) {
                    let p = c.0 as u128 * v[i].0 as u128;
                    lo += p as u64 as u128;
                    hi += p >> 64;
                }
                Gl(gl_reduce(lo + (hi << 32) - hi))
            })
            .collect()
    }
}

impl K for Field64 {
    fn zero() -> Self {
        <Field64 as FieldElement>::zero()
    }
    fn one() -> Self {
        <Field64 as FieldElement>::one()
    }
    #[inline(always)]
    fn add(a: Self, b: Self) -> Self {
        a + b
    }
    #[inline(always)]
    fn sub(a: Self, b: Self) -> Self {
        a - b
    }
    #[inline(always)]
    fn mul(a: Self, b: Self) -> Self {
        a * b
    }
    fn inv(a: Self) -> Self {
        FieldElement::inv(&a)
    }
    fn fill_random(rng: &mut ChaCha20Rng, out: &mut [Self]) {
        let mut buf = [0u8; 256 * 8];
        let mut filled = 0;
        while filled < out.len() {
            let n = (out.len() - filled).min(256);
            rng.fill_bytes(&mut buf[..n * 8]);
            for word in buf[..n * 8].chunks_exact(8) {
                let v = u64::from_le_bytes(word.try_into().unwrap());
                if v < GL_P && filled < out.len() {
                    out[filled] = Field64::from(v);
                    filled += 1;
                }
            }
        }
    }
}

fn small<F: K>(x: u8) -> F {
    (0..x).fold(F::zero(), |a, _| F::add(a, F::one()))
}

fn lagrange<F: K>(points: &[u8], target: u8) -> Vec<F> {
    points
        .iter()
        .enumerate()
        .map(|(i, &pi)| {
            let (mut num, mut den) = (F::one(), F::one());
            for (j, &pj) in points.iter().enumerate() {
                if i != j {
                    num = F::mul(num, F::sub(small(target), small(pj)));
                    den = F::mul(den, F::sub(small(pi), small(pj)));
                }
            }
            F::mul(num, F::inv(den))
        })
        .collect()
}

fn add_assign<F: K>(a: &mut [F], b: &[F]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = F::add(*x, *y);
    }
}

fn step<F: K>(diffs: &mut [Vec<F>], len: usize) {
    for k in 1..diffs.len() {
        let (lo, hi) = diffs.split_at_mut(k);
        add_assign(&mut hi[0][..len], &lo[k - 1][..len]);
    }
}

/// The crate's `share_vector`, generic.
fn share_full<F: K>(secret: &[F], g: usize, t: usize, seed: [u8; 32]) -> Vec<Vec<F>> {
    let n = secret.len();
    let mut out: Vec<Vec<F>> = (0..g).map(|_| Vec::with_capacity(n)).collect();
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut diffs = vec![vec![F::zero(); CHUNK.min(n)]; t - 1];
    let mut start = 0;
    while start < n {
        let len = (n - start).min(CHUNK);
        let end = start + len;
        for d in &mut diffs {
            F::fill_random(&mut rng, &mut d[..len]);
        }
        for x in 0..g {
            step(&mut diffs, len);
            let (done, rest) = out.split_at_mut(x);
            let prev = match done.last() {
                Some(p) => &p[start..end],
                None => &secret[start..end],
            };
            rest[0].extend(
                prev.iter()
                    .zip(&diffs[t - 2][..len])
                    .map(|(a, b)| F::add(*a, *b)),
            );
        }
        start = end;
    }
    out
}

/// The crate's `share_vector_compressed`, generic: `t - 1` seeds, `g - t + 1` full vectors.
fn share_compressed<F: K>(secret: &[F], g: usize, t: usize, seed: [u8; 32]) -> Vec<Vec<F>> {
    let n = secret.len();
    let mut rngs: Vec<ChaCha20Rng> = (1..t)
        .map(|i| {
            let mut s = seed;
            s[0] ^= i as u8;
            ChaCha20Rng::from_seed(s)
        })
        .collect();
    let mut full: Vec<Vec<F>> = (t..=g).map(|_| Vec::with_capacity(n)).collect();
    let mut diffs = vec![vec![F::zero(); CHUNK.min(n)]; t];
    let mut start = 0;
    while start < n {
        let len = (n - start).min(CHUNK);
        let end = start + len;
        diffs[0][..len].copy_from_slice(&secret[start..end]);
        for (d, rng) in diffs[1..].iter_mut().zip(rngs.iter_mut()) {
            F::fill_random(rng, &mut d[..len]);
        }
        for k in 1..t {
            for i in 0..t - k {
                let (lo, hi) = diffs.split_at_mut(i + 1);
                for (a, b) in lo[i][..len].iter_mut().zip(&hi[0][..len]) {
                    *a = F::sub(*b, *a);
                }
            }
        }
        let (table, value) = diffs.split_at_mut(t - 1);
        for j in 0..full.len() {
            step(table, len);
            let (done, rest) = full.split_at_mut(j);
            let prev = match done.last() {
                Some(p) => &p[start..end],
                None => &value[0][..len],
            };
            rest[0].extend(
                prev.iter()
                    .zip(&table[t - 2][..len])
                    .map(|(a, b)| F::add(*a, *b)),
            );
        }
        start = end;
    }
    full
}

fn reconstruct_generic<F: K>(shares: &[(u8, &[F])], t: usize) -> Vec<F> {
    let points: Vec<u8> = shares[..t].iter().map(|(p, _)| *p).collect();
    let coeffs = lagrange::<F>(&points, 0);
    let vecs: Vec<&[F]> = shares[..t].iter().map(|(_, v)| *v).collect();
    F::lincomb(&coeffs, &vecs)
}

fn secret<F: K>() -> Vec<F> {
    let mut v = vec![F::zero(); LEN];
    F::fill_random(&mut ChaCha20Rng::from_seed([1; 32]), &mut v);
    v
}

/// The generic kernel is checked before it is timed: shares reconstruct the secret.
fn check<F: K>(g: usize, t: usize) {
    let s: Vec<F> = secret();
    let shares = share_full(&s, g, t, [7; 32]);
    let pairs: Vec<(u8, &[F])> = shares
        .iter()
        .enumerate()
        .rev()
        .map(|(i, v)| (i as u8 + 1, v.as_slice()))
        .collect();
    assert_eq!(reconstruct_generic(&pairs, t), s);
    let full = share_compressed(&s, g, t, [7; 32]);
    let pairs: Vec<(u8, &[F])> = full
        .iter()
        .enumerate()
        .map(|(i, v)| ((t + i) as u8, v.as_slice()))
        .collect();
    // Needs t of them: only g - t + 1 full vectors, so check the extension at t = g - t + 1
    // positions is a polynomial of degree < t by reconstructing when possible.
    if pairs.len() >= t {
        assert_eq!(reconstruct_generic(&pairs, t), s);
    }
}

macro_rules! field_benches {
    ($m:ident, $f:ty) => {
        mod $m {
            use super::*;

            #[divan::bench(args = PARAMS)]
            fn share_full(b: Bencher, (g, t): (u8, u8)) {
                check::<$f>(g as usize, t as usize);
                let s: Vec<$f> = secret();
                b.bench(|| super::share_full(black_box(&s), g as usize, t as usize, [7; 32]));
            }

            #[divan::bench(args = PARAMS)]
            fn share_compressed(b: Bencher, (g, t): (u8, u8)) {
                let s: Vec<$f> = secret();
                b.bench(|| super::share_compressed(black_box(&s), g as usize, t as usize, [7; 32]));
            }

            #[divan::bench(args = PARAMS)]
            fn reconstruct(b: Bencher, (g, t): (u8, u8)) {
                let s: Vec<$f> = secret();
                let shares = super::share_full(&s, g as usize, t as usize, [7; 32]);
                let pairs: Vec<(u8, &[$f])> = shares
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i as u8 + 1, v.as_slice()))
                    .collect();
                b.bench(|| reconstruct_generic(black_box(&pairs), t as usize));
            }
        }
    };
}

field_benches!(m61, Fp);
field_benches!(gl, Gl);
field_benches!(prio64, Field64);

/// The crate's own M61 kernel, for reference (the `sharing` bench times the same calls).
mod crate_m61 {
    use super::*;

    fn params((g, t): (u8, u8)) -> SharingParams {
        SharingParams::new(g, t).unwrap()
    }

    #[divan::bench(args = PARAMS)]
    fn share_full(b: Bencher, gt: (u8, u8)) {
        let s = random_vec(&mut ChaCha20Rng::from_seed([1; 32]), LEN);
        b.bench(|| share_vector(black_box(&s), params(gt), [7; 32]));
    }

    #[divan::bench(args = PARAMS)]
    fn share_compressed(b: Bencher, gt: (u8, u8)) {
        let s = random_vec(&mut ChaCha20Rng::from_seed([1; 32]), LEN);
        b.bench(|| share_vector_compressed(black_box(&s), params(gt), [7; 32]));
    }

    #[divan::bench(args = PARAMS)]
    fn reconstruct_secret(b: Bencher, gt: (u8, u8)) {
        let s = random_vec(&mut ChaCha20Rng::from_seed([1; 32]), LEN);
        let shares = share_vector(&s, params(gt), [7; 32]);
        let pairs: Vec<(u8, &[Fp])> = shares
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u8 + 1, v.as_slice()))
            .collect();
        b.bench(|| reconstruct(black_box(&pairs), gt.1).unwrap());
    }
}
