//! The field decision of issue 17, measured: the sharing kernel (difference-table sharing,
//! plain and seed-compressed, and reconstruction by Lagrange combination) on 100,000-element
//! vectors, in four fields:
//!
//! - `m61`: GF(2^61 - 1), the field Grove shared in before the switch to Goldilocks, kept here
//!   (a copy of its arithmetic: Mersenne folds, `u128` accumulation) so that the comparison can
//!   be re-run;
//! - `gl`: the crate's field (`field.rs`), Goldilocks `GF(2^64 - 2^32 + 1)` with canonical
//!   values, which are prio's `Field64` values;
//! - `prio64`: prio's `Field64` (the same field, Montgomery form) used directly;
//! - `prio128`: prio's `Field128` (`2^128 - 28 * 2^64 + 1`, Montgomery form), the field Prio3
//!   uses when a 64-bit soundness error is too weak; 16 bytes per element.
//!
//! All four run the same generic copy of the kernel; `crate_kernel` runs the crate's own
//! `share_vector`, `share_vector_compressed` and `reconstruct` (the `sharing` bench times the
//! same calls). `cargo bench -p grove-protocol --bench field_choice`; divide by 100,000 for ns
//! per element.

use divan::{black_box, Bencher};
use grove_protocol::field::{random_vec, Fp};
use grove_protocol::sharing::{reconstruct, share_vector, share_vector_compressed, SharingParams};
use prio::field::{Field128, Field64, FieldElement};
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

/// GF(2^61 - 1), canonical (`< M61_P`): the arithmetic of `field.rs` before the switch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct M61(u64);
const M61_P: u64 = (1u64 << 61) - 1;

#[inline(always)]
fn m61_sub_p_if_ge(x: u64) -> u64 {
    let r = x.wrapping_sub(M61_P);
    let mask = (r >> 63).wrapping_neg();
    r.wrapping_add(mask & M61_P)
}

#[inline(always)]
fn m61_reduce128(x: u128) -> u64 {
    let a = (x as u64) & M61_P;
    let b = ((x >> 61) as u64) & M61_P;
    let c = (x >> 122) as u64;
    let s = a + b + c;
    m61_sub_p_if_ge((s & M61_P) + (s >> 61))
}

impl K for M61 {
    fn zero() -> Self {
        M61(0)
    }
    fn one() -> Self {
        M61(1)
    }
    #[inline(always)]
    fn add(a: Self, b: Self) -> Self {
        M61(m61_sub_p_if_ge(a.0 + b.0))
    }
    #[inline(always)]
    fn sub(a: Self, b: Self) -> Self {
        let d = a.0.wrapping_sub(b.0);
        let mask = (d >> 63).wrapping_neg();
        M61(d.wrapping_add(mask & M61_P))
    }
    #[inline(always)]
    fn mul(a: Self, b: Self) -> Self {
        let x = a.0 as u128 * b.0 as u128;
        let s = ((x as u64) & M61_P) + ((x >> 61) as u64);
        M61(m61_sub_p_if_ge((s & M61_P) + (s >> 61)))
    }
    fn inv(a: Self) -> Self {
        let (mut base, mut e, mut acc) = (a, M61_P - 2, M61(1));
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
                let v = u64::from_le_bytes(word.try_into().unwrap()) & M61_P;
                dst[w] = M61(v);
                w += (v != M61_P) as usize;
            }
            filled += w;
        }
    }
    /// Products below 2^122 summed directly in `u128` (up to 32 terms), blocks of 512.
    fn lincomb(coeffs: &[Self], vecs: &[&[Self]]) -> Vec<Self> {
        const BLOCK: usize = 512;
        let n = vecs[0].len();
        let mut out = Vec::with_capacity(n);
        let mut acc = [0u128; BLOCK];
        let mut start = 0;
        while start < n {
            let len = (n - start).min(BLOCK);
            let acc = &mut acc[..len];
            acc.fill(0);
            for (c, v) in coeffs.iter().zip(vecs) {
                let c = c.0 as u128;
                for (a, x) in acc.iter_mut().zip(&v[start..start + len]) {
                    *a += c * x.0 as u128;
                }
            }
            out.extend(acc.iter().map(|a| M61(m61_reduce128(*a))));
            start += len;
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
                if v < grove_protocol::field::P && filled < out.len() {
                    out[filled] = Field64::from(v);
                    filled += 1;
                }
            }
        }
    }
}

impl K for Field128 {
    fn zero() -> Self {
        <Field128 as FieldElement>::zero()
    }
    fn one() -> Self {
        <Field128 as FieldElement>::one()
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
        let mut buf = [0u8; 256 * 16];
        let mut filled = 0;
        while filled < out.len() {
            let n = (out.len() - filled).min(256);
            rng.fill_bytes(&mut buf[..n * 16]);
            for word in buf[..n * 16].chunks_exact(16) {
                // prio's own rejection sampling (values at or above the modulus refused).
                if let Ok(v) = Field128::try_from_random(word) {
                    if filled < out.len() {
                        out[filled] = v;
                        filled += 1;
                    }
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

field_benches!(m61, M61);
field_benches!(gl, Fp);
field_benches!(prio64, Field64);
field_benches!(prio128, Field128);

/// The crate's own kernel, in the crate's field (the `sharing` bench times the same calls).
mod crate_kernel {
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
