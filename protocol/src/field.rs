//! Arithmetic in the Mersenne prime field GF(2^61 - 1).
//! STUB: to be implemented (see the API below; keep every signature).

use rand_core::RngCore;
use serde::{Deserialize, Serialize};

/// The modulus, 2^61 - 1.
pub const P: u64 = (1u64 << 61) - 1;

/// A field element, always canonical (`< P`).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
pub struct Fp(u64);

impl Fp {
    pub const ZERO: Fp = Fp(0);
    pub const ONE: Fp = Fp(1);
    /// Reduces any u64 into the field.
    pub fn new(_x: u64) -> Fp {
        todo!()
    }
    /// `Some` only for canonical values (`< P`); used on decoding remote input.
    pub fn from_canonical(_x: u64) -> Option<Fp> {
        todo!()
    }
    pub fn value(self) -> u64 {
        self.0
    }
    /// Signed integers map to `x mod P` (negative values wrap to the top half).
    pub fn from_i64(_x: i64) -> Fp {
        todo!()
    }
    /// Inverse of `from_i64` for values in `(-P/2, P/2]`.
    pub fn to_i64_centered(self) -> i64 {
        todo!()
    }
    pub fn pow(self, _e: u64) -> Fp {
        todo!()
    }
    /// `None` for zero.
    pub fn inv(self) -> Option<Fp> {
        todo!()
    }
    /// Uniform element (rejection sampling on 61 bits).
    pub fn random(_rng: &mut impl RngCore) -> Fp {
        todo!()
    }
}

impl std::ops::Add for Fp {
    type Output = Fp;
    fn add(self, _o: Fp) -> Fp {
        todo!()
    }
}
impl std::ops::Sub for Fp {
    type Output = Fp;
    fn sub(self, _o: Fp) -> Fp {
        todo!()
    }
}
impl std::ops::Mul for Fp {
    type Output = Fp;
    fn mul(self, _o: Fp) -> Fp {
        todo!()
    }
}
impl std::ops::Neg for Fp {
    type Output = Fp;
    fn neg(self) -> Fp {
        todo!()
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

/// `acc[i] += x[i]`. Panics if lengths differ (callers check lengths first).
pub fn add_assign_vec(_acc: &mut [Fp], _x: &[Fp]) {
    todo!()
}
/// `acc[i] -= x[i]`.
pub fn sub_assign_vec(_acc: &mut [Fp], _x: &[Fp]) {
    todo!()
}
/// `acc[i] += c * x[i]`.
pub fn mul_add_assign_vec(_acc: &mut [Fp], _c: Fp, _x: &[Fp]) {
    todo!()
}
/// A vector of `len` uniform elements drawn from `rng`.
pub fn random_vec(_rng: &mut impl RngCore, _len: usize) -> Vec<Fp> {
    todo!()
}

/// A vector of field elements whose serde form is a byte string of 8 little-endian bytes per
/// element (compact and fixed-size on the wire); decoding rejects non-canonical elements.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct FieldVec(pub Vec<Fp>);

impl Serialize for FieldVec {
    fn serialize<S: serde::Serializer>(&self, _s: S) -> Result<S::Ok, S::Error> {
        todo!()
    }
}
impl<'de> Deserialize<'de> for FieldVec {
    fn deserialize<D: serde::Deserializer<'de>>(_d: D) -> Result<Self, D::Error> {
        todo!()
    }
}
