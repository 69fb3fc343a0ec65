//! One prio [`Type`] for a whole [`ValidityCircuit`]: every check of a query's validity circuit
//! (`query/circuit.rs`) proven by one fully linear proof, on prio's own gadgets.
//!
//! **Input.** The contribution vector itself (`length` elements, in field units, the integers
//! of [`crate::field::Fp`]) followed by a *witness* of bits. [`Type::truncate`] is the prefix,
//! so the proven input's sharing can be the aggregated sharing itself on those coordinates
//! (the identity tie of `validity::prove_tied_and_share`); only the witness and the proof are
//! uploaded on top of the contribution.
//!
//! **Constraints.** Every *range* is one non-negative value `v` (an affine function of the
//! vector, minus a sum of squares for a norm) written as bits `b_j` with prio's weights (`1, 2,
//! ..., 2^(k-2)` and a last weight that makes every bit vector decode into `[0, span]`, as in
//! prio's `Sum`): `v = sum w_j b_j` and every `b_j` in {0, 1}. Per check:
//! - [`Check::Range`] `[min, max]` of `x`: bits of `x - min`, span `max - min`;
//! - [`Check::Indicator`] `x` in {0, `one`}: `x (x - one) = 0`;
//! - [`Check::IndicatorOf`] (indicator `i`, count `c`): `c (one - i) = 0` (a non-zero count
//!   forces the indicator to `one`) and bits of `c - i` (an indicator of `one` forces the count
//!   to at least `one`), span the count's maximum;
//! - [`Check::AtMost`] `sum x <= max` (of non-negative elements): bits of `max - sum x`, span
//!   `max`;
//! - [`Check::NormAtMost`] `sum x^2 <= bound^2` (coordinates range-checked, so the sum of
//!   squares cannot wrap around the modulus; checked at construction): bits of
//!   `bound^2 - sum x^2`, span `bound^2`.
//!
//! All products run through one prio gadget, `ParallelSum<Mul>` with a chunk length chosen to
//! minimise the proof: the quadratic constraints `a b = 0` as calls on `(r^i a, b)` with one
//! joint random `r` per call (prio's `SumVec` range check), the squares of each norm as calls
//! on `(x, x)` whose outputs are summed. The linear constraints (`v = sum w_j b_j` of every
//! range) are folded with one joint random element each. `valid` returns the two
//! sums; prio folds them with query randomness.
//!
//! **DP noise outside the proven vector** ([`CircuitType::with_noise`]). With `WITH PRIVACY` a
//! contributor shares its vector plus its noise. The input is then the vector, the noise
//! (`length` more elements) and the witness; the circuit proves the vector as above and each
//! noise element inside `[-bound, bound]` (bits of `noise + bound`), and [`Type::truncate`] is
//! `vector + noise`, the aggregated vector. So a noised contribution still validates, and a
//! liar can hide at most `bound` per element in its noise (the honest contributor keeps its
//! draw inside the bound: a discrete Gaussian cut at many deviations, a negligible change).
//! The tie to the aggregated sharing ([`CircuitType::tie`]) writes the noise share as the
//! aggregated share minus the vector share, a sharing of the noise.
//!
//! Soundness in `Field64`: an invalid input passes the folding with probability at most about
//! `chunk / 2^64` per joint randomness (powers of one element within a gadget call, one
//! element per linear constraint), and the FLP's own error (about `2 calls / 2^64`); see
//! ARCHITECTURE.md, "Validity proofs", for grinding.

use crate::field::Fp;
use crate::limits::{MAX_VALIDITY_CHUNK, MAX_VALIDITY_SHARE_LEN};
use crate::query::{Check, ValidityCircuit};
use prio::field::{Field64, FieldElement};
use prio::flp::gadgets::{Mul, ParallelSum, ParallelSumGadget};
use prio::flp::{Flp, FlpError, Gadget, Type};

/// The one gadget of a [`CircuitType`].
type Gadget64 = ParallelSum<Field64, Mul>;

/// Field64's modulus.
const P: i128 = crate::field::P as i128;

/// One range by bits: `constant + sum coef x_e - squares(norm) = sum w_j b_j` (module text).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Bits {
    constant: i128,
    terms: Vec<(u32, i64)>,
    /// The index of the norm whose sum of squares is subtracted, if any.
    norm: Option<usize>,
    span: u64,
    /// Index of the first bit in the input; `bits` of them.
    offset: usize,
    bits: usize,
}

/// A quadratic constraint `x_a (sign x_b + constant) = 0`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Quad {
    a: u32,
    b: u32,
    sign: i64,
    constant: i64,
}

/// The lengths of a [`CircuitType`]'s input, proof and verifier message, in field elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitLengths {
    pub input: usize,
    pub proof: usize,
    pub verifier: usize,
}

/// Why a [`ValidityCircuit`] has no [`CircuitType`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CircuitError {
    #[error("check {0} names an element outside the vector")]
    Element(usize),
    #[error("check {0} has an empty or negative range")]
    Span(usize),
    #[error("the count of check {0} has no range")]
    CountRange(usize),
    #[error("the sum of squares of check {0} could wrap around the modulus")]
    Norm(usize),
    #[error("a validity share of {0} elements is over the limit")]
    TooLarge(usize),
}

/// The validity circuit of one query as a prio type (module text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircuitType {
    length: usize,
    quads: Vec<Quad>,
    ranges: Vec<Bits>,
    /// `(start, len)` of each norm's coordinates.
    norms: Vec<(u32, u32)>,
    witness: usize,
    /// The bound of the noise part, if the contribution carries DP noise.
    noise: Option<u64>,
    chunk: usize,
    /// Gadget calls of the quadratic constraints (each with its joint random element).
    quad_calls: usize,
    calls: usize,
}

fn fe(x: i128) -> Field64 {
    Field64::from(x.rem_euclid(P) as u64)
}

fn centered(x: Field64) -> i128 {
    i128::from(Fp::from_field64(x).to_i64_centered())
}

/// Number of bits and the weight of the last bit for `[0, span]` (prio's `Sum` encoding).
fn bit_layout(span: u64) -> (usize, u64) {
    if span == 0 {
        return (0, 0);
    }
    let k = (64 - span.leading_zeros()) as usize;
    (k, span - ((1u64 << (k - 1)) - 1))
}

fn weight(j: usize, bits: usize, last: u64) -> u64 {
    if j + 1 == bits {
        last
    } else {
        1u64 << j
    }
}

/// Calls of `n` items in chunks of `chunk`.
fn calls_of(n: usize, chunk: usize) -> usize {
    n.div_ceil(chunk)
}

fn proof_len_of(chunk: usize, calls: usize) -> usize {
    chunk * 2 + 2 * ((1 + calls).next_power_of_two() - 1) + 1
}

impl CircuitType {
    /// The prio type of `circuit`.
    pub fn new(circuit: &ValidityCircuit) -> Result<CircuitType, CircuitError> {
        Self::build(circuit, None)
    }

    /// The prio type of `circuit` for a contribution that carries DP noise of at most `bound`
    /// (field units) per element, outside the proven vector (module text).
    pub fn with_noise(circuit: &ValidityCircuit, bound: u64) -> Result<CircuitType, CircuitError> {
        Self::build(circuit, Some(bound))
    }

    fn build(circuit: &ValidityCircuit, noise: Option<u64>) -> Result<CircuitType, CircuitError> {
        let length = circuit.length as usize;
        // The noise part, if any, sits between the vector and the witness.
        let noise_len = if noise.is_some() { length } else { 0 };
        let mut bounds: std::collections::BTreeMap<u32, (i64, i64)> = Default::default();
        for c in &circuit.checks {
            if let Check::Range {
                start,
                len,
                min,
                max,
            } = c
            {
                for e in *start..start.saturating_add(*len) {
                    bounds.insert(e, (*min, *max));
                }
            }
        }
        let mut quads = Vec::new();
        let mut ranges = Vec::new();
        let mut norms = Vec::new();
        let mut witness = 0usize;
        let mut push = |constant: i128, terms: Vec<(u32, i64)>, norm, span: i128, k: usize| {
            let span = u64::try_from(span).map_err(|_| CircuitError::Span(k))?;
            let (bits, _) = bit_layout(span);
            ranges.push(Bits {
                constant,
                terms,
                norm,
                span,
                offset: length + noise_len + witness,
                bits,
            });
            witness += bits;
            Ok::<(), CircuitError>(())
        };
        for (k, c) in circuit.checks.iter().enumerate() {
            let inside = |e: u32| {
                if (e as usize) < length {
                    Ok(e)
                } else {
                    Err(CircuitError::Element(k))
                }
            };
            match c {
                Check::Range {
                    start,
                    len,
                    min,
                    max,
                } => {
                    if max < min {
                        return Err(CircuitError::Span(k));
                    }
                    for e in *start..start.saturating_add(*len) {
                        inside(e)?;
                        let span = i128::from(*max) - i128::from(*min);
                        push(-i128::from(*min), vec![(e, 1)], None, span, k)?;
                    }
                }
                Check::Indicator { index, one } => quads.push(Quad {
                    a: inside(*index)?,
                    b: *index,
                    sign: 1,
                    constant: -one,
                }),
                Check::IndicatorOf {
                    indicator,
                    count,
                    one,
                } => {
                    let (i, c) = (inside(*indicator)?, inside(*count)?);
                    quads.push(Quad {
                        a: c,
                        b: i,
                        sign: -1,
                        constant: *one,
                    });
                    let (_, cmax) = bounds.get(&c).ok_or(CircuitError::CountRange(k))?;
                    push(0, vec![(c, 1), (i, -1)], None, i128::from(*cmax), k)?;
                }
                Check::AtMost { elements, max } => {
                    let terms = elements
                        .iter()
                        .map(|e| inside(*e).map(|e| (e, -1)))
                        .collect::<Result<Vec<_>, _>>()?;
                    push(i128::from(*max), terms, None, i128::from(*max), k)?;
                }
                Check::NormAtMost { start, len, bound } => {
                    let mut worst: i128 = 0;
                    for e in *start..start.saturating_add(*len) {
                        inside(e)?;
                        let (lo, hi) = bounds.get(&e).ok_or(CircuitError::Norm(k))?;
                        let m = i128::from(*lo).abs().max(i128::from(*hi).abs());
                        worst += m * m;
                    }
                    let b2 = i128::from(*bound) * i128::from(*bound);
                    // Squares at most `worst`, the bound at most `b2`: their difference must
                    // not reach half the modulus, or a sum of squares could wrap.
                    if worst.max(b2) >= P / 2 {
                        return Err(CircuitError::Norm(k));
                    }
                    norms.push((*start, *len));
                    push(b2, vec![], Some(norms.len() - 1), b2, k)?;
                }
            }
        }
        if let Some(bound) = noise {
            let k = circuit.checks.len();
            for e in 0..noise_len {
                let e = (length + e) as u32;
                let b = i128::from(bound);
                push(b, vec![(e, 1)], None, 2 * b, k)?;
            }
        }
        let mut typ = CircuitType {
            length,
            quads,
            ranges,
            norms,
            witness,
            noise,
            chunk: 1,
            quad_calls: 1,
            calls: 1,
        };
        if typ.input_len() > MAX_VALIDITY_SHARE_LEN {
            return Err(CircuitError::TooLarge(typ.input_len()));
        }
        typ.set_chunk(MAX_VALIDITY_CHUNK);
        let share = typ.input_len() + typ.proof_len();
        if share > MAX_VALIDITY_SHARE_LEN {
            return Err(CircuitError::TooLarge(share));
        }
        Ok(typ)
    }

    /// Chooses the chunk length, at most `max_chunk` (and [`MAX_VALIDITY_CHUNK`]), that
    /// minimises the proof (ties: the shorter chunk, a shorter verifier message). The verifier
    /// shares members exchange are `2 + 2 chunk` elements, the proof about
    /// `2 chunk + 2 calls`.
    fn set_chunk(&mut self, max_chunk: usize) {
        let n_quad = self.n_quad();
        let norm_lens: Vec<usize> = self.norms.iter().map(|(_, l)| *l as usize).collect();
        let largest = norm_lens
            .iter()
            .copied()
            .chain([n_quad, 1])
            .max()
            .unwrap_or(1)
            .min(max_chunk.clamp(1, MAX_VALIDITY_CHUNK));
        let calls_at = |chunk: usize| {
            calls_of(n_quad, chunk).max(1)
                + norm_lens.iter().map(|l| calls_of(*l, chunk)).sum::<usize>()
        };
        self.chunk = (1..=largest)
            .min_by_key(|c| (proof_len_of(*c, calls_at(*c)), *c))
            .unwrap_or(1);
        self.quad_calls = calls_of(n_quad, self.chunk).max(1);
        self.calls = calls_at(self.chunk);
    }

    /// Length of the contribution vector (the prefix of the input).
    pub fn vector_len(&self) -> usize {
        self.length
    }

    /// Length of the witness (bits) after the vector.
    pub fn witness_len(&self) -> usize {
        self.witness
    }

    /// Length of the noise part (the vector's length with noise, else 0).
    pub fn noise_len(&self) -> usize {
        if self.noise.is_some() {
            self.length
        } else {
            0
        }
    }

    /// First index of the witness in the input.
    fn witness_start(&self) -> usize {
        self.length + self.noise_len()
    }

    /// The tie of one position's input share to its aggregated share (`aggregated`, this
    /// position's share of the aggregated vector, `vector_len` elements): without noise the
    /// vector part *is* the aggregated share; with noise, the noise part becomes the
    /// aggregated share minus the vector share. Every position applies the same affine map to
    /// shares of degree `< t`, so the result is a sharing of the same input
    /// (`validity::prove_tied_and_share`); afterwards `truncate(input share)` is the
    /// aggregated share, which a member checks before holding it.
    pub fn tie(&self, aggregated: &[Field64], input_share: &mut [Field64]) {
        // Lengths are the caller's: a short share or aggregated share ties what it has.
        let (vector, rest) = input_share.split_at_mut(self.length.min(input_share.len()));
        if self.noise.is_some() {
            for ((n, v), a) in rest.iter_mut().zip(vector.iter()).zip(aggregated) {
                *n = *a - *v;
            }
        } else {
            for (v, a) in vector.iter_mut().zip(aggregated) {
                *v = *a;
            }
        }
    }

    /// The chunk length of the gadget.
    pub fn chunk_len(&self) -> usize {
        self.chunk
    }

    /// What travels per contributor and position (input and proof shares) and per member
    /// (its verifier share), in field elements: for cost models that do not run the proof.
    pub fn lengths(&self) -> CircuitLengths {
        CircuitLengths {
            input: self.input_len(),
            proof: self.proof_len(),
            verifier: self.verifier_len(),
        }
    }

    fn n_quad(&self) -> usize {
        self.quads.len() + self.witness
    }

    /// The `i`-th quadratic constraint's two factors.
    fn quad_pair(&self, input: &[Field64], i: usize) -> (Field64, Field64) {
        match self.quads.get(i) {
            Some(q) => (
                input[q.a as usize],
                fe(i128::from(q.sign)) * input[q.b as usize] + fe(i128::from(q.constant)),
            ),
            None => {
                let b = input[self.witness_start() + i - self.quads.len()];
                (b, b - Field64::one())
            }
        }
    }

    /// The sum of squares of norm `k` of a plaintext vector (integers, centered).
    fn squares(&self, vector: &[Field64], k: usize) -> i128 {
        let (start, len) = self.norms[k];
        (start..start + len)
            .map(|e| centered(vector[e as usize]).pow(2))
            .sum()
    }

    /// The value of `range` on a plaintext input (the witness is not read).
    fn value(&self, range: &Bits, input: &[Field64]) -> i128 {
        let mut v = range.constant;
        for (e, c) in &range.terms {
            v += i128::from(*c) * centered(input[*e as usize]);
        }
        if let Some(k) = range.norm {
            v -= self.squares(input, k);
        }
        v
    }

    /// The input for `vector` whether or not it is valid: the vector, then the bits of every
    /// range value (of the value modulo `2^bits` when it is outside its range, so the proof of
    /// an invalid vector fails). Test and attack code proves invalid vectors with it.
    pub fn encode_lenient(&self, vector: &[Field64]) -> Vec<Field64> {
        self.encode_noised_lenient(vector, &[])
    }

    /// [`Self::encode_lenient`] with a noise part (ignored without one; missing elements are
    /// zero).
    pub fn encode_noised_lenient(&self, vector: &[Field64], noise: &[Field64]) -> Vec<Field64> {
        let mut input = vec![Field64::zero(); self.input_len()];
        let n = vector.len().min(self.length);
        input[..n].copy_from_slice(&vector[..n]);
        let m = noise.len().min(self.noise_len());
        input[self.length..self.length + m].copy_from_slice(&noise[..m]);
        for r in &self.ranges {
            let v = self.value(r, &input);
            let (_, last) = bit_layout(r.span);
            let mut rest = if (0..=i128::from(r.span)).contains(&v) {
                v as u64
            } else {
                v as u64 & ((1u64 << r.bits.min(63)) - 1)
            };
            if r.bits > 0 && rest >= 1u64 << (r.bits - 1) {
                input[r.offset + r.bits - 1] = Field64::one();
                rest = rest.saturating_sub(last);
            }
            for j in 0..r.bits.saturating_sub(1) {
                if rest >> j & 1 == 1 {
                    input[r.offset + j] = Field64::one();
                }
            }
        }
        input
    }

    /// The honest input of `vector` with DP `noise` (one element per vector element): fails if
    /// the vector breaks a check or the noise leaves its bound.
    pub fn encode_noised(
        &self,
        vector: &[Field64],
        noise: &[Field64],
    ) -> Result<Vec<Field64>, FlpError> {
        if vector.len() != self.length || noise.len() != self.noise_len() {
            return Err(FlpError::Encode(format!(
                "vector of length {} and noise of length {}, expected {} and {}",
                vector.len(),
                noise.len(),
                self.length,
                self.noise_len()
            )));
        }
        let input = self.encode_noised_lenient(vector, noise);
        if !self.satisfied(&input) {
            return Err(FlpError::Encode(
                "the vector breaks its validity circuit or the noise its bound".into(),
            ));
        }
        Ok(input)
    }

    /// Whether every constraint holds on `input` (plaintext; what the proof establishes).
    pub fn satisfied(&self, input: &[Field64]) -> bool {
        if input.len() != self.input_len() {
            return false;
        }
        let quads_hold = (0..self.n_quad()).all(|i| {
            let (a, b) = self.quad_pair(input, i);
            a * b == Field64::zero()
        });
        quads_hold
            && self.ranges.iter().all(|r| {
                let (_, last) = bit_layout(r.span);
                let bits: Field64 = (0..r.bits)
                    .map(|j| fe(i128::from(weight(j, r.bits, last))) * input[r.offset + j])
                    .fold(Field64::zero(), |a, b| a + b);
                fe(self.value(r, input)) == bits
            })
    }
}

impl Flp for CircuitType {
    type Field = Field64;

    fn gadget(&self) -> Vec<Box<dyn Gadget<Field64>>> {
        vec![Box::new(Gadget64::new(Mul::new(self.calls), self.chunk))]
    }

    fn num_gadgets(&self) -> usize {
        1
    }

    fn valid(
        &self,
        g: &mut Vec<Box<dyn Gadget<Field64>>>,
        input: &[Field64],
        joint_rand: &[Field64],
        _num_shares: usize,
    ) -> Result<Vec<Field64>, FlpError> {
        // `num_shares` is ignored: on Shamir shares every share carries the constants in full
        // (`validity` module text), and Grove always proves and queries with 1.
        self.valid_call_check(input, joint_rand)?;
        let gadget = &mut g[0];
        let mut buf = vec![Field64::zero(); 2 * self.chunk];
        // Quadratic constraints, weighted by powers of one joint random element per call.
        let mut quad = Field64::zero();
        let n_quad = self.n_quad();
        for (call, r) in joint_rand[..self.quad_calls].iter().enumerate() {
            buf.iter_mut().for_each(|x| *x = Field64::zero());
            let mut power = *r;
            for (slot, i) in (call * self.chunk..((call + 1) * self.chunk).min(n_quad)).enumerate()
            {
                let (a, b) = self.quad_pair(input, i);
                buf[2 * slot] = power * a;
                buf[2 * slot + 1] = b;
                power *= *r;
            }
            quad += gadget.eval(&buf)?;
        }
        // Sums of squares, one per norm.
        let mut squares = Vec::with_capacity(self.norms.len());
        for (start, len) in &self.norms {
            let mut sum = Field64::zero();
            let coords = &input[*start as usize..(*start + *len) as usize];
            for chunk in coords.chunks(self.chunk) {
                buf.iter_mut().for_each(|x| *x = Field64::zero());
                for (slot, x) in chunk.iter().enumerate() {
                    buf[2 * slot] = *x;
                    buf[2 * slot + 1] = *x;
                }
                sum += gadget.eval(&buf)?;
            }
            squares.push(sum);
        }
        // Linear constraints, each weighted by its own joint random element (a nonzero
        // constraint then survives with probability 1 / p, not `ranges / p` as powers of one
        // element would give).
        let mut linear = Field64::zero();
        for (r, rand) in self.ranges.iter().zip(&joint_rand[self.quad_calls..]) {
            let mut v = fe(r.constant);
            for (e, c) in &r.terms {
                v += fe(i128::from(*c)) * input[*e as usize];
            }
            if let Some(k) = r.norm {
                v -= squares[k];
            }
            let (_, last) = bit_layout(r.span);
            for j in 0..r.bits {
                v -= fe(i128::from(weight(j, r.bits, last))) * input[r.offset + j];
            }
            linear += *rand * v;
        }
        Ok(vec![quad, linear])
    }

    fn input_len(&self) -> usize {
        self.witness_start() + self.witness
    }

    fn proof_len(&self) -> usize {
        proof_len_of(self.chunk, self.calls)
    }

    fn verifier_len(&self) -> usize {
        2 + self.chunk * 2
    }

    fn joint_rand_len(&self) -> usize {
        self.quad_calls + self.ranges.len()
    }

    fn eval_output_len(&self) -> usize {
        2
    }

    fn prove_rand_len(&self) -> usize {
        self.chunk * 2
    }
}

impl Type for CircuitType {
    /// The contribution vector, in field units.
    type Measurement = Vec<Field64>;
    type AggregateResult = Vec<Field64>;

    /// The honest input: fails for a vector that breaks a check.
    fn encode_measurement(&self, vector: &Vec<Field64>) -> Result<Vec<Field64>, FlpError> {
        if vector.len() != self.length {
            return Err(FlpError::Encode(format!(
                "vector of length {}, expected {}",
                vector.len(),
                self.length
            )));
        }
        let input = self.encode_noised_lenient(vector, &[]);
        if !self.satisfied(&input) {
            return Err(FlpError::Encode(
                "the vector breaks its validity circuit".into(),
            ));
        }
        Ok(input)
    }

    fn truncate(&self, input: Vec<Field64>) -> Result<Vec<Field64>, FlpError> {
        self.truncate_call_check(&input)?;
        let mut out = input[..self.length].to_vec();
        for (o, n) in out
            .iter_mut()
            .zip(&input[self.length..self.witness_start()])
        {
            *o += *n;
        }
        Ok(out)
    }

    fn decode_result(
        &self,
        data: &[Field64],
        _num_measurements: usize,
    ) -> Result<Vec<Field64>, FlpError> {
        Ok(data.to_vec())
    }

    fn output_len(&self) -> usize {
        self.length
    }
}
