//! Arithmetic in the Goldilocks prime field GF(2^64 - 2^32 + 1), the field of prio's `Field64`.
//!
//! Elements are kept canonical (`< P`) at all times, as plain integers (no Montgomery form), so
//! that an element's value is the integer prio's `Field64` holds for it: [`Fp::to_field64`] and
//! [`Fp::from_field64`] convert without arithmetic, and a validity proof over `Field64` is a
//! proof about the very shares Grove sums. Products go through a `u128` and are reduced with
//! `2^64 = 2^32 - 1` and `2^96 = -1 (mod P)`; additions and subtractions use one carry and one
//! correction by `2^32 - 1`.

use rand_core::RngCore;
use serde::{Deserialize, Serialize};

/// The modulus, 2^64 - 2^32 + 1 (prio's `Field64`).
pub const P: u64 = 0xffff_ffff_0000_0001;

/// `2^64 mod P = 2^32 - 1`.
const EPSILON: u64 = 0xffff_ffff;

/// A field element, always canonical (`< P`).
///
/// Deserialisation rejects non-canonical values with a serde error.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize)]
pub struct Fp(u64);

/// `x - P` if `x >= P`, else `x`: any `u64` to a canonical value (`2^64 < 2P`).
#[inline(always)]
fn canonical(x: u64) -> u64 {
    let (r, borrow) = x.overflowing_sub(P);
    if borrow {
        x
    } else {
        r
    }
}

/// Sum of two canonical values, canonical.
#[inline(always)]
fn add_raw(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    // With a carry, a + b - 2^64 <= 2^64 - 2^33: adding 2^64 mod P = EPSILON cannot carry,
    // and the result (a + b - P) is already canonical.
    canonical(s.wrapping_add(EPSILON & (carry as u64).wrapping_neg()))
}

/// Difference of two canonical values, canonical.
#[inline(always)]
fn sub_raw(a: u64, b: u64) -> u64 {
    let (d, borrow) = a.overflowing_sub(b);
    // With a borrow, d = a - b + 2^64 > EPSILON, and d - EPSILON = a - b + P < P.
    d.wrapping_sub(EPSILON & (borrow as u64).wrapping_neg())
}

/// Reduces any `u128` to a canonical value.
#[inline(always)]
fn reduce128(x: u128) -> u64 {
    // x = lo + 2^64 (hh 2^32 + hl), with 2^96 = -1 and 2^64 = EPSILON (mod P).
    let lo = x as u64;
    let hi = (x >> 64) as u64;
    let (hh, hl) = (hi >> 32, hi & EPSILON);
    let (mut t, borrow) = lo.overflowing_sub(hh);
    // A borrow added 2^64 = EPSILON too much; t >= 2^64 - 2^32 + 1 > EPSILON then.
    t = t.wrapping_sub(EPSILON & (borrow as u64).wrapping_neg());
    // hl * EPSILON < 2^64; a carry is 2^64 = EPSILON, and t + hl EPSILON - 2^64 + EPSILON
    // stays below 2^64.
    let (s, carry) = t.overflowing_add(hl * EPSILON);
    canonical(s.wrapping_add(EPSILON & (carry as u64).wrapping_neg()))
}

impl Fp {
    pub const ZERO: Fp = Fp(0);
    pub const ONE: Fp = Fp(1);
    /// Reduces any u64 into the field.
    #[inline]
    pub fn new(x: u64) -> Fp {
        Fp(canonical(x))
    }
    /// `Some` only for canonical values (`< P`); used on decoding remote input.
    #[inline]
    pub fn from_canonical(x: u64) -> Option<Fp> {
        if x < P {
            Some(Fp(x))
        } else {
            None
        }
    }
    #[inline]
    pub fn value(self) -> u64 {
        self.0
    }
    /// Signed integers map to `x mod P` (negative values wrap to the top half).
    #[inline]
    pub fn from_i64(x: i64) -> Fp {
        let m = Fp::new(x.unsigned_abs());
        if x < 0 {
            -m
        } else {
            m
        }
    }
    /// Inverse of `from_i64` for values in `(-P/2, P/2]`.
    ///
    /// Canonical values `0..=(P-1)/2` map to themselves, values above to `value - P`, so the
    /// result lies in `[-(P-1)/2, (P-1)/2]`.
    #[inline]
    pub fn to_i64_centered(self) -> i64 {
        if self.0 > P / 2 {
            // P - value <= (P - 1) / 2 < 2^63.
            -((P - self.0) as i64)
        } else {
            self.0 as i64
        }
    }
    /// The same element in prio's `Field64` (the same integer; no arithmetic).
    #[inline]
    pub fn to_field64(self) -> prio::field::Field64 {
        prio::field::Field64::from(self.0)
    }
    /// The same element as prio's `Field64` holds it (always canonical).
    #[inline]
    pub fn from_field64(x: prio::field::Field64) -> Fp {
        Fp(u64::from(x))
    }
    pub fn pow(self, mut e: u64) -> Fp {
        let mut base = self;
        let mut acc = Fp::ONE;
        while e > 0 {
            if e & 1 == 1 {
                acc *= base;
            }
            base *= base;
            e >>= 1;
        }
        acc
    }
    /// `None` for zero.
    pub fn inv(self) -> Option<Fp> {
        if self.0 == 0 {
            None
        } else {
            // Fermat: x^(P-2) = x^-1.
            Some(self.pow(P - 2))
        }
    }
    /// Uniform element (rejection sampling on 64 bits: values `>= P`, a `2^-32` fraction,
    /// are drawn again).
    #[inline]
    pub fn random(rng: &mut impl RngCore) -> Fp {
        loop {
            let v = rng.next_u64();
            if v < P {
                return Fp(v);
            }
        }
    }
}

impl std::ops::Add for Fp {
    type Output = Fp;
    #[inline(always)]
    fn add(self, o: Fp) -> Fp {
        Fp(add_raw(self.0, o.0))
    }
}
impl std::ops::Sub for Fp {
    type Output = Fp;
    #[inline(always)]
    fn sub(self, o: Fp) -> Fp {
        Fp(sub_raw(self.0, o.0))
    }
}
impl std::ops::Mul for Fp {
    type Output = Fp;
    #[inline(always)]
    fn mul(self, o: Fp) -> Fp {
        Fp(reduce128(self.0 as u128 * o.0 as u128))
    }
}
impl std::ops::Neg for Fp {
    type Output = Fp;
    #[inline(always)]
    fn neg(self) -> Fp {
        Fp(sub_raw(0, self.0))
    }
}
impl std::ops::AddAssign for Fp {
    fn add_assign(&mut self, o: Fp) {
        *self = *self + o
    }
}
impl std::ops::SubAssign for Fp {
    fn sub_assign(&mut self, o: Fp) {
        *self = *self - o
    }
}
impl std::ops::MulAssign for Fp {
    fn mul_assign(&mut self, o: Fp) {
        *self = *self * o
    }
}

impl std::iter::Sum for Fp {
    fn sum<I: Iterator<Item = Fp>>(iter: I) -> Fp {
        iter.fold(Fp::ZERO, |a, b| a + b)
    }
}

impl<'de> Deserialize<'de> for Fp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FpVisitor;
        impl<'de> serde::de::Visitor<'de> for FpVisitor {
            type Value = Fp;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a canonical element of GF(2^64 - 2^32 + 1)")
            }
            fn visit_newtype_struct<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Fp, D::Error> {
                let v = u64::deserialize(d)?;
                Fp::from_canonical(v)
                    .ok_or_else(|| serde::de::Error::custom("non-canonical field element"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Fp, E> {
                Fp::from_canonical(v).ok_or_else(|| E::custom("non-canonical field element"))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Fp, A::Error> {
                let v: u64 = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
                Fp::from_canonical(v)
                    .ok_or_else(|| serde::de::Error::custom("non-canonical field element"))
            }
        }
        d.deserialize_newtype_struct("Fp", FpVisitor)
    }
}

/// `acc[i] += x[i]`. Panics if lengths differ (callers check lengths first).
pub fn add_assign_vec(acc: &mut [Fp], x: &[Fp]) {
    assert_eq!(acc.len(), x.len(), "add_assign_vec: length mismatch");
    for (a, b) in acc.iter_mut().zip(x) {
        a.0 = add_raw(a.0, b.0);
    }
}
/// `acc[i] -= x[i]`.
pub fn sub_assign_vec(acc: &mut [Fp], x: &[Fp]) {
    assert_eq!(acc.len(), x.len(), "sub_assign_vec: length mismatch");
    for (a, b) in acc.iter_mut().zip(x) {
        a.0 = sub_raw(a.0, b.0);
    }
}
/// `acc[i] += c * x[i]`.
pub fn mul_add_assign_vec(acc: &mut [Fp], c: Fp, x: &[Fp]) {
    assert_eq!(acc.len(), x.len(), "mul_add_assign_vec: length mismatch");
    let c = c.0 as u128;
    for (a, b) in acc.iter_mut().zip(x) {
        // c * b + a <= (P - 1)^2 + P - 1 < 2^128.
        a.0 = reduce128(c * b.0 as u128 + a.0 as u128);
    }
}

/// `sum_i coeffs[i] * vecs[i]`, element-wise, in one pass over the output.
///
/// Each element's products (each below `P^2 < 2^128`) are summed in a wrapping `u128` whose
/// overflows are counted, and reduced once: `2^128 = -2^32 (mod P)`, so `c` overflows
/// subtract `c 2^32` (below `P` for fewer than `2^31` terms). Panics if `coeffs` and `vecs`
/// differ in length or the vectors differ in length. An empty combination is an empty vector.
pub fn linear_combination(coeffs: &[Fp], vecs: &[&[Fp]]) -> Vec<Fp> {
    assert_eq!(
        coeffs.len(),
        vecs.len(),
        "linear_combination: arity mismatch"
    );
    let Some(first) = vecs.first() else {
        return Vec::new();
    };
    let n = first.len();
    assert!(
        vecs.iter().all(|v| v.len() == n),
        "linear_combination: length mismatch"
    );
    assert!(coeffs.len() < 1 << 31, "linear_combination: too many terms");
    (0..n)
        .map(|i| {
            let (mut acc, mut overflows) = (0u128, 0u64);
            for (c, v) in coeffs.iter().zip(vecs) {
                let (s, o) = acc.overflowing_add(c.0 as u128 * v[i].0 as u128);
                acc = s;
                overflows += o as u64;
            }
            Fp(sub_raw(reduce128(acc), overflows << 32))
        })
        .collect()
}

/// `out.extend(a[i] + b[i])`: writes each sum once (no zero-fill first).
pub fn extend_sum(out: &mut Vec<Fp>, a: &[Fp], b: &[Fp]) {
    assert_eq!(a.len(), b.len(), "extend_sum: length mismatch");
    out.extend(a.iter().zip(b).map(|(x, y)| Fp(add_raw(x.0, y.0))));
}

/// How many words [`fill_random`] draws from the generator at once.
const RANDOM_CHUNK: usize = 256;

/// Fills `out` with uniform elements drawn from `rng`.
///
/// The draw is defined element by element, exactly like repeated [`Fp::random`] on a byte
/// stream: every element takes the next 8 little-endian bytes and rejects values `>= P`. Randomness is drawn in bulk with `fill_bytes`, always in
/// multiples of 8 bytes, so filling a slice in pieces gives the same result as filling it at
/// once (for generators whose `fill_bytes` is a plain stream, such as ChaCha).
pub fn fill_random(rng: &mut impl RngCore, out: &mut [Fp]) {
    let mut buf = [0u8; RANDOM_CHUNK * 8];
    let mut filled = 0;
    while filled < out.len() {
        let n = (out.len() - filled).min(RANDOM_CHUNK);
        let bytes = &mut buf[..n * 8];
        rng.fill_bytes(bytes);
        let dst = &mut out[filled..filled + n];
        let mut w = 0;
        for word in bytes.chunks_exact(8) {
            let mut le = [0u8; 8];
            le.copy_from_slice(word);
            let v = u64::from_le_bytes(le);
            // `w <= index of this word < n`, so the write is in bounds; a rejected draw is
            // overwritten by the next accepted one (and is never read: `w` does not move).
            dst[w] = Fp(v);
            w += (v < P) as usize;
        }
        filled += w;
    }
}

/// A vector of `len` uniform elements drawn from `rng` (see [`fill_random`]).
pub fn random_vec(rng: &mut impl RngCore, len: usize) -> Vec<Fp> {
    let mut v = vec![Fp::ZERO; len];
    fill_random(rng, &mut v);
    v
}

/// A vector of field elements whose serde form is a byte string of 8 little-endian bytes per
/// element (compact and fixed-size on the wire); decoding rejects non-canonical elements.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct FieldVec(pub Vec<Fp>);

impl FieldVec {
    /// Little-endian bytes, 8 per element.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * 8);
        for x in &self.0 {
            out.extend_from_slice(&x.0.to_le_bytes());
        }
        out
    }
    /// Parses 8 little-endian bytes per element; `None` for a length that is not a multiple
    /// of 8 or a non-canonical element.
    pub fn from_bytes(bytes: &[u8]) -> Option<FieldVec> {
        if !bytes.len().is_multiple_of(8) {
            return None;
        }
        let mut out = Vec::with_capacity(bytes.len() / 8);
        for word in bytes.chunks_exact(8) {
            let mut le = [0u8; 8];
            le.copy_from_slice(word);
            out.push(Fp::from_canonical(u64::from_le_bytes(le))?);
        }
        Some(FieldVec(out))
    }
}

impl From<Vec<Fp>> for FieldVec {
    fn from(v: Vec<Fp>) -> FieldVec {
        FieldVec(v)
    }
}

impl Serialize for FieldVec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.to_bytes())
    }
}

struct FieldVecVisitor;

impl FieldVecVisitor {
    fn parse<E: serde::de::Error>(bytes: &[u8]) -> Result<FieldVec, E> {
        if !bytes.len().is_multiple_of(8) {
            return Err(E::invalid_length(
                bytes.len(),
                &"a multiple of 8 bytes (8 little-endian bytes per element)",
            ));
        }
        FieldVec::from_bytes(bytes).ok_or_else(|| E::custom("non-canonical field element"))
    }
}

impl<'de> serde::de::Visitor<'de> for FieldVecVisitor {
    type Value = FieldVec;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a byte string of 8 little-endian bytes per field element")
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<FieldVec, E> {
        Self::parse(v)
    }
    fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<FieldVec, E> {
        Self::parse(v)
    }
    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<FieldVec, E> {
        Self::parse(&v)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<FieldVec, A::Error> {
        // Bounded preallocation: never trust a remote size hint beyond the protocol limit.
        let cap = seq
            .size_hint()
            .unwrap_or(0)
            .min(crate::limits::MAX_MESSAGE_BYTES);
        let mut bytes = Vec::with_capacity(cap);
        while let Some(b) = seq.next_element::<u8>()? {
            bytes.push(b);
        }
        Self::parse(&bytes)
    }
}

impl<'de> Deserialize<'de> for FieldVec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_bytes(FieldVecVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges() {
        assert_eq!(Fp::new(P), Fp::ZERO);
        assert_eq!(Fp::new(P + 1), Fp::ONE);
        assert_eq!(Fp::new(u64::MAX), Fp::new(u64::MAX % P));
        assert_eq!(Fp::new(u64::MAX).0, EPSILON - 1);
        assert_eq!(Fp::from_canonical(P), None);
        assert_eq!(Fp::from_canonical(u64::MAX), None);
        assert_eq!(Fp::from_canonical(P - 1), Some(Fp(P - 1)));
        let m1 = Fp(P - 1);
        assert_eq!(m1 + Fp::ONE, Fp::ZERO);
        assert_eq!(m1 + m1, Fp(P - 2));
        assert_eq!(Fp::ZERO - Fp::ONE, m1);
        assert_eq!(-Fp::ZERO, Fp::ZERO);
        assert_eq!(-Fp::ONE, m1);
        assert_eq!(m1 * m1, Fp::ONE);
        assert_eq!(Fp::ZERO * m1, Fp::ZERO);
        assert_eq!(Fp::ZERO.inv(), None);
        assert_eq!(m1.inv(), Some(m1));
        // 2^64 = 2^32 - 1 and 2^96 = -1 (mod P); 2^192 = 1.
        assert_eq!(Fp(1 << 63) * Fp(2), Fp(EPSILON));
        assert_eq!(Fp(1 << 48) * Fp(1 << 48), m1);
        assert_eq!(Fp(2).pow(192), Fp::ONE);
        assert_eq!(Fp(7).pow(P - 1), Fp::ONE);
        assert_eq!(Fp(3).pow(0), Fp::ONE);
    }

    #[test]
    fn reductions_match_naive() {
        let samples = [
            0u64,
            1,
            2,
            EPSILON,
            EPSILON + 1,
            1 << 32,
            1 << 63,
            (1 << 63) - 1,
            P - 2,
            P - 1,
            P - EPSILON,
            12345678901234567,
            0xdead_beef_cafe_f00d % P,
        ];
        let p = P as u128;
        for &a in &samples {
            for &b in &samples {
                let naive = ((a as u128 * b as u128) % p) as u64;
                assert_eq!((Fp(a) * Fp(b)).0, naive, "{a} * {b}");
                assert_eq!((Fp(a) + Fp(b)).0, ((a as u128 + b as u128) % p) as u64);
                assert_eq!((Fp(a) - Fp(b)).0, ((a as u128 + p - b as u128) % p) as u64);
                let mut acc = [Fp(a)];
                mul_add_assign_vec(&mut acc, Fp(b), &[Fp(b)]);
                let naive = ((a as u128 + b as u128 * b as u128) % p) as u64;
                assert_eq!(acc[0].0, naive);
            }
        }
        for x in [
            u128::MAX,
            u128::MAX - 1,
            (p - 1) * (p - 1),
            p << 64,
            (1u128 << 96) - 1,
            1u128 << 96,
            (EPSILON as u128) << 64,
            0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
        ] {
            assert_eq!(reduce128(x), (x % p) as u64, "{x:#x}");
        }
    }

    /// The field is prio's `Field64`, value for value: the same integers give the same sums,
    /// differences, products and inverses, so a proof over `Field64` speaks of Grove's shares.
    #[test]
    fn agrees_with_prio_field64() {
        use prio::field::{Field64, FieldElement};
        use rand_chacha::rand_core::SeedableRng;
        assert_eq!(
            <Field64 as prio::field::FieldElementWithInteger>::modulus(),
            P
        );
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([5; 32]);
        let mut xs = vec![Fp::ZERO, Fp::ONE, Fp(P - 1), Fp(EPSILON), Fp(1 << 63)];
        xs.extend(random_vec(&mut rng, 60));
        for &a in &xs {
            let fa = a.to_field64();
            assert_eq!(Fp::from_field64(fa), a);
            assert_eq!(Fp::from_field64(-fa), -a);
            if a != Fp::ZERO {
                assert_eq!(Fp::from_field64(fa.inv()), a.inv().unwrap());
            }
            for &b in &xs {
                let fb = b.to_field64();
                assert_eq!(Fp::from_field64(fa + fb), a + b);
                assert_eq!(Fp::from_field64(fa - fb), a - b);
                assert_eq!(Fp::from_field64(fa * fb), a * b);
            }
        }
        for x in [0i64, 1, -1, 1 << 40, -(1 << 40), i64::MAX, i64::MIN + 1] {
            let m = Field64::from(x.unsigned_abs());
            let f = if x < 0 { -m } else { m };
            assert_eq!(Fp::from_field64(f), Fp::from_i64(x));
        }
    }

    #[test]
    fn small_inverses() {
        for x in 1..=2000u64 {
            let f = Fp::new(x);
            assert_eq!(f * f.inv().unwrap(), Fp::ONE, "x = {x}");
            let g = Fp(P - x);
            assert_eq!(g * g.inv().unwrap(), Fp::ONE);
        }
    }

    #[test]
    fn signed_roundtrip() {
        let half = (P / 2) as i64; // 2^63 - 2^31
        for x in [0i64, 1, -1, 42, -42, half, -half, half - 1, -(half - 1)] {
            assert_eq!(Fp::from_i64(x).to_i64_centered(), x, "x = {x}");
        }
        assert_eq!(Fp::from_i64(half + 1).to_i64_centered(), -half);
        assert_eq!(Fp::from_i64(-1), Fp(P - 1));
        // Outside the representable range the mapping is still x mod P.
        assert_eq!(Fp::from_i64(i64::MAX).0, (i64::MAX as u64) % P);
        assert_eq!(
            Fp::from_i64(i64::MIN).0,
            ((P as i128 + (i64::MIN as i128 % P as i128)) % P as i128) as u64
        );
        assert_eq!(Fp::from_i64(i64::MIN) + Fp::from_i64(i64::MAX), -Fp::ONE);
    }

    struct Constant(u64);
    impl RngCore for Constant {
        fn next_u32(&mut self) -> u32 {
            self.0 as u32
        }
        fn next_u64(&mut self) -> u64 {
            let v = self.0;
            self.0 = self.0.wrapping_add(1);
            v
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for c in dest.chunks_mut(8) {
                let v = self.next_u64().to_le_bytes();
                c.copy_from_slice(&v[..c.len()]);
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    #[test]
    fn random_rejects_p_and_above() {
        // Draws at or above P are rejected (the counter wraps from u64::MAX to 0).
        let mut rng = Constant(P);
        assert_eq!(Fp::random(&mut rng), Fp(0));
        let mut rng = Constant(P - 1);
        let v = random_vec(&mut rng, 4);
        assert_eq!(v, vec![Fp(P - 1), Fp(0), Fp(1), Fp(2)]);
        // A rejected draw at the end of a chunk is not left behind.
        let mut rng = Constant(u64::MAX - (RANDOM_CHUNK as u64) + 2);
        let v = random_vec(&mut rng, RANDOM_CHUNK);
        assert_eq!(v[0], Fp(0));
        assert!(v.iter().all(|x| x.0 < P));
    }

    #[test]
    fn linear_combination_matches_mul_add() {
        use rand_chacha::rand_core::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([9; 32]);
        // More than 32 terms and more than one block; extreme coefficients and values (the
        // u128 sum overflows, so the overflow count is exercised).
        for (terms, n) in [(1usize, 0usize), (3, 5), (40, 1100), (70, 600)] {
            let vecs: Vec<Vec<Fp>> = (0..terms)
                .map(|k| {
                    if k % 3 == 0 {
                        vec![Fp(P - 1); n]
                    } else {
                        random_vec(&mut rng, n)
                    }
                })
                .collect();
            let coeffs: Vec<Fp> = (0..terms)
                .map(|k| {
                    if k % 2 == 0 {
                        Fp(P - 1)
                    } else {
                        Fp::random(&mut rng)
                    }
                })
                .collect();
            let refs: Vec<&[Fp]> = vecs.iter().map(|v| v.as_slice()).collect();
            let mut expect = vec![Fp::ZERO; n];
            for (c, v) in coeffs.iter().zip(&vecs) {
                mul_add_assign_vec(&mut expect, *c, v);
            }
            assert_eq!(linear_combination(&coeffs, &refs), expect);
        }
        assert!(linear_combination(&[], &[]).is_empty());
        let mut out = vec![Fp::ONE];
        extend_sum(&mut out, &[Fp(P - 1), Fp(5)], &[Fp(1), Fp(P - 2)]);
        assert_eq!(out, vec![Fp::ONE, Fp::ZERO, Fp(3)]);
    }

    #[test]
    fn random_vec_is_chunk_independent() {
        use rand_chacha::rand_core::SeedableRng;
        let mut a = rand_chacha::ChaCha20Rng::from_seed([7; 32]);
        let whole = random_vec(&mut a, 1000);
        let mut b = rand_chacha::ChaCha20Rng::from_seed([7; 32]);
        let mut parts = random_vec(&mut b, 3);
        parts.extend(random_vec(&mut b, 500));
        parts.extend(random_vec(&mut b, 497));
        assert_eq!(whole, parts);
        let mut c = rand_chacha::ChaCha20Rng::from_seed([7; 32]);
        let single: Vec<Fp> = (0..1000).map(|_| Fp::random(&mut c)).collect();
        assert_eq!(whole, single);
    }
}
