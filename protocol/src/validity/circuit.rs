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

/// The chunk length, at most `max_chunk` (and [`MAX_VALIDITY_CHUNK`]), that minimises the
/// proof of `n_quad` quadratic constraints and norms of `norm_lens` coordinates (ties: the
/// shorter chunk, a shorter verifier message), with the gadget calls of the quadratic
/// constraints and of all: `(chunk, quad_calls, calls)`. The verifier shares members exchange
/// are `2 + 2 chunk` elements, the proof about `2 chunk + 2 calls`.
fn chunk_for(n_quad: usize, norm_lens: &[usize], max_chunk: usize) -> (usize, usize, usize) {
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
    let chunk = (1..=largest)
        .min_by_key(|c| (proof_len_of(*c, calls_at(*c)), *c))
        .unwrap_or(1);
    (chunk, calls_of(n_quad, chunk).max(1), calls_at(chunk))
}

/// The `Range` runs of a circuit by first element, for the bounds of one element without a
/// map entry per element. The compiler's runs do not overlap; of overlapping runs, an element
/// takes the bounds of the last run starting at or before it, if that run holds it.
struct Runs(std::collections::BTreeMap<u32, (u32, i64, i64)>);

impl Runs {
    fn of(circuit: &ValidityCircuit) -> Runs {
        let mut runs = std::collections::BTreeMap::new();
        for c in &circuit.checks {
            if let Check::Range {
                start,
                len,
                min,
                max,
            } = c
            {
                runs.insert(*start, (start.saturating_add(*len), *min, *max));
            }
        }
        Runs(runs)
    }

    /// `(min, max)` of element `e`, if a run holds it.
    fn bounds(&self, e: u32) -> Option<(i64, i64)> {
        let (_, (end, min, max)) = self.0.range(..=e).next_back()?;
        (e < *end).then_some((*min, *max))
    }
}

/// What [`CircuitType::build`] makes of a circuit, counted from its checks alone (no walk over
/// the elements of a run): the size limit is checked on it before anything per element is
/// built. The element, span and count checks here are the build's own, on whole runs.
struct Shape {
    /// Vector and noise elements.
    prefix: usize,
    witness: usize,
    n_quad: usize,
    norm_lens: Vec<usize>,
}

impl Shape {
    fn input_len(&self) -> usize {
        self.prefix + self.witness
    }

    fn of(circuit: &ValidityCircuit, noise: Option<u64>) -> Result<Shape, CircuitError> {
        let length = circuit.length as usize;
        let runs = Runs::of(circuit);
        let mut witness = 0usize;
        let mut quads = 0usize;
        let mut norm_lens = Vec::new();
        let bits = |span: i128, k: usize| -> Result<usize, CircuitError> {
            let span = u64::try_from(span).map_err(|_| CircuitError::Span(k))?;
            Ok(bit_layout(span).0)
        };
        let inside = |start: u32, len: u32, k: usize| {
            if u64::from(start) + u64::from(len) <= length as u64 {
                Ok(())
            } else {
                Err(CircuitError::Element(k))
            }
        };
        for (k, c) in circuit.checks.iter().enumerate() {
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
                    inside(*start, *len, k)?;
                    let span = i128::from(*max) - i128::from(*min);
                    witness =
                        witness.saturating_add((*len as usize).saturating_mul(bits(span, k)?));
                }
                Check::Indicator { index, .. } => {
                    inside(*index, 1, k)?;
                    quads += 1;
                }
                Check::IndicatorOf {
                    indicator, count, ..
                } => {
                    inside(*indicator, 1, k)?;
                    inside(*count, 1, k)?;
                    quads += 1;
                    let (_, cmax) = runs.bounds(*count).ok_or(CircuitError::CountRange(k))?;
                    witness = witness.saturating_add(bits(i128::from(cmax), k)?);
                }
                Check::AtMost { elements, max } => {
                    for e in elements {
                        inside(*e, 1, k)?;
                    }
                    witness = witness.saturating_add(bits(i128::from(*max), k)?);
                }
                Check::NormAtMost { start, len, bound } => {
                    inside(*start, *len, k)?;
                    let b2 = i128::from(*bound) * i128::from(*bound);
                    witness = witness.saturating_add(bits(b2, k)?);
                    norm_lens.push(*len as usize);
                }
            }
        }
        let mut prefix = length;
        if let Some(bound) = noise {
            let k = circuit.checks.len();
            prefix = 2 * length;
            witness =
                witness.saturating_add(length.saturating_mul(bits(2 * i128::from(bound), k)?));
        }
        Ok(Shape {
            prefix,
            witness,
            n_quad: quads.saturating_add(witness),
            norm_lens,
        })
    }
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

    /// The prio type a contribution to `compiled` proves: its validity circuit, with the
    /// request's DP noise outside the proven vector if it has any (bounded by the noise's
    /// tail, `dp::NoiseSpec::tail`, where `dp::noise` cuts every honest draw). An error means
    /// no contribution to this query can be proven: the engine holds none, honest owners
    /// decline it, and commissioners refuse to launch it.
    pub fn of_query(compiled: &crate::query::CompiledQuery) -> Result<CircuitType, CircuitError> {
        let circuit = compiled.validity_circuit();
        match &compiled.spec().noise {
            None => Self::new(&circuit),
            Some(n) => Self::with_noise(&circuit, n.tail()),
        }
    }

    fn build(circuit: &ValidityCircuit, noise: Option<u64>) -> Result<CircuitType, CircuitError> {
        // The size first, from the checks alone: a request's circuit is built by every member
        // of every leaf, and the walk below costs a range per element.
        let shape = Shape::of(circuit, noise)?;
        if shape.input_len() > MAX_VALIDITY_SHARE_LEN {
            return Err(CircuitError::TooLarge(shape.input_len()));
        }
        let (chunk, quad_calls, calls) =
            chunk_for(shape.n_quad, &shape.norm_lens, MAX_VALIDITY_CHUNK);
        let share = shape.input_len() + proof_len_of(chunk, calls);
        if share > MAX_VALIDITY_SHARE_LEN {
            return Err(CircuitError::TooLarge(share));
        }
        let length = circuit.length as usize;
        // The noise part, if any, sits between the vector and the witness.
        let noise_len = if noise.is_some() { length } else { 0 };
        let runs = Runs::of(circuit);
        let mut quads = Vec::new();
        let mut ranges = Vec::new();
        let mut norms = Vec::new();
        let mut witness = 0usize;
        let mut push = |constant: i128, terms: Vec<(u32, i64)>, norm, span: i128, k: usize| {
            let span = u64::try_from(span).map_err(|_| CircuitError::Span(k))?;
            let (bits, _) = bit_layout(span);
            #[cfg(test)]
            tests::WALKED.with(|w| w.set(w.get() + 1));
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
                    let (_, cmax) = runs.bounds(c).ok_or(CircuitError::CountRange(k))?;
                    push(0, vec![(c, 1), (i, -1)], None, i128::from(cmax), k)?;
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
                        let (lo, hi) = runs.bounds(e).ok_or(CircuitError::Norm(k))?;
                        let m = i128::from(lo).abs().max(i128::from(hi).abs());
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
        let typ = CircuitType {
            length,
            quads,
            ranges,
            norms,
            witness,
            noise,
            chunk,
            quad_calls,
            calls,
        };
        // `Shape::of` counts what this walk builds (of overlapping runs, which the compiler does
        // not emit, the count may differ: the limit holds on what was built).
        debug_assert_eq!(typ.input_len(), shape.input_len());
        debug_assert_eq!(typ.n_quad(), shape.n_quad);
        if typ.input_len() + typ.proof_len() > MAX_VALIDITY_SHARE_LEN {
            return Err(CircuitError::TooLarge(typ.input_len() + typ.proof_len()));
        }
        Ok(typ)
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

    /// The elements of an input share that [`Self::tie`] writes from the aggregated share (the
    /// vector part without noise, the noise part with): a member computes them from the
    /// aggregated share it holds, so they do not travel in the validity share.
    pub fn tied(&self) -> std::ops::Range<usize> {
        match self.noise {
            Some(_) => self.length..2 * self.length,
            None => 0..self.length,
        }
    }

    /// What travels of an input share: the share without its [`Self::tied`] elements.
    pub fn untied(&self, input_share: &[Field64]) -> Vec<Field64> {
        let r = self.tied();
        let mut out = input_share[..r.start.min(input_share.len())].to_vec();
        out.extend_from_slice(input_share.get(r.end..).unwrap_or_default());
        out
    }

    /// A member's input share from what travelled ([`Self::untied`]) and its share of the
    /// aggregated vector (`vector_len` elements): the tied elements written by [`Self::tie`].
    /// `None` if a length is wrong.
    pub fn retie(&self, untied: &[Field64], aggregated: &[Field64]) -> Option<Vec<Field64>> {
        let r = self.tied();
        if untied.len() + r.len() != self.input_len() || aggregated.len() != self.length {
            return None;
        }
        let mut input = untied[..r.start].to_vec();
        input.resize(r.end, Field64::zero());
        input.extend_from_slice(&untied[r.start..]);
        self.tie(aggregated, &mut input);
        Some(input)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Query;
    use std::cell::Cell;

    thread_local! {
        /// Ranges the build made on this thread (one per element of a `Range` run).
        pub(super) static WALKED: Cell<usize> = const { Cell::new(0) };
    }

    /// `MAX_VECTOR_LEN` elements: 4 rows of the largest `sum_vector` and its indicator.
    pub(crate) const LARGEST: &str = "SELECT sum_vector(w, 1048575) FROM t \
        GROUP BY k IN ('a', 'b', 'c', 'd') CLIP NORM w TO 1";

    fn walked_by<R>(f: impl FnOnce() -> R) -> (R, usize) {
        WALKED.with(|w| w.set(0));
        let r = f();
        (r, WALKED.with(|w| w.get()))
    }

    /// The largest `sum_vector` contribution (`MAX_VECTOR_LEN` elements: the largest
    /// dimension in 4 `GROUP BY` rows) is refused from the query's shape, before a single range
    /// is built (the walk would build one per coordinate, a large allocation at every leaf
    /// member for every such request).
    #[test]
    fn a_circuit_over_the_limit_is_refused_before_anything_per_element_is_built() {
        let c = Query::parse(LARGEST).unwrap().compile().unwrap();
        assert_eq!(c.spec().length, crate::limits::MAX_VECTOR_LEN);
        let circuit = c.validity_circuit();
        let (r, walked) = walked_by(|| CircuitType::new(&circuit));
        assert!(
            matches!(r, Err(CircuitError::TooLarge(n)) if n > MAX_VALIDITY_SHARE_LEN),
            "{r:?}"
        );
        assert_eq!(walked, 0);
        // Just under the limit, the build walks every coordinate, and the shape counted
        // exactly what it built.
        let c = Query::parse("SELECT sum_vector(w, 300000) FROM t CLIP NORM w TO 1")
            .unwrap()
            .compile()
            .unwrap();
        let circuit = c.validity_circuit();
        let (typ, walked) = walked_by(|| CircuitType::new(&circuit).unwrap());
        assert!(walked > 300_000);
        let shape = Shape::of(&circuit, None).unwrap();
        assert_eq!(shape.input_len(), typ.input_len());
    }

    /// The shape counts exactly what the build makes, for every aggregate kind, with and
    /// without noise.
    #[test]
    fn the_shape_counts_what_the_build_makes() {
        for text in [
            "SELECT sum(x) FROM t CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1",
            "SELECT count(*), sum(a), avg(a), var(a), histogram(a, [0, 10, 50, 100]), \
             count(DISTINCT CONTRIBUTOR), sum_vector(w, 3) FROM t \
             GROUP BY m IN ('x', 'y', 'z') CLIP a TO [-20, 80] CLIP NORM w TO 5 \
             LIMIT PER CONTRIBUTOR 3",
        ] {
            let circuit = Query::parse(text)
                .unwrap()
                .compile()
                .unwrap()
                .validity_circuit();
            for noise in [None, Some(1000)] {
                let typ = CircuitType::build(&circuit, noise).unwrap();
                let shape = Shape::of(&circuit, noise).unwrap();
                assert_eq!(shape.input_len(), typ.input_len(), "{text}");
                assert_eq!(shape.n_quad, typ.n_quad(), "{text}");
            }
        }
    }
}
