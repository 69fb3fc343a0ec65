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
//! - [`Check::NormAtMost`] `sum x^2 <= bound^2`, after the PINE draft: bits of
//!   `bound^2 - sum x^2` (span `bound^2`), the squares computed by the gadget on the
//!   coordinates themselves; and [`WRAP_CHECKS`] *wraparound checks* that the field's sum of
//!   squares did not wrap around the modulus: projections `y_j = <z_j, x>` with `z_j` in
//!   {-1, 0, 1} drawn from the *wraparound seed* (fixed after the vector's shares are
//!   committed to: [`crate::validity::Staged`]), each claimed in the witness with the bits of
//!   `y_j + W - 1` and a success bit `g_j`: `y_j` equal to the projection (linear),
//!   `g_j (y_j - v_j + W - 1) = 0`, and [`WRAP_SUCCESSES`] success bits set. Nothing is per
//!   coordinate but the gadget's squares and the projections (ARCHITECTURE.md, "Validity
//!   proofs", for the parameters, soundness and grinding).
//!
//! All products run through one prio gadget, `ParallelSum<Mul>` with a chunk length chosen for
//! a short proof and a cheap query (`chunk_for`): the quadratic constraints `a b = 0` as calls on `(r^i a, b)` with one
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
//! element per linear constraint), and the FLP's own error (about `2 (L - 1) / 2^64` for wire
//! polynomials of `L` points, a power of two above the gadget calls); see
//! ARCHITECTURE.md, "Validity proofs", for grinding.

use crate::field::Fp;
use crate::limits::{MAX_VALIDITY_CHUNK, MAX_VALIDITY_SHARE_LEN};
use crate::query::{Check, ValidityCircuit};
use aes::cipher::StreamCipher;
use prio::field::{Field64, FieldElement};
use prio::flp::gadgets::{Mul, ParallelSum, ParallelSumGadget};
use prio::flp::{Flp, FlpError, Gadget, Type};

/// Domain of the `{-1, 0, 1}` projection vectors, drawn from the wraparound seed.
const WRAP_Z_DOMAIN: &str = "grove/validity/wraparound-z";

/// The stream the `{-1, 0, 1}` projection vectors of norm `norm` are drawn from
/// ([`CircuitType::projections`]): AES-256 in counter mode (128-bit big-endian counter from 0)
/// keyed by the hash of the wraparound seed and the norm's index. A pseudorandom stream under a
/// key fixed after the vector's shares are committed to, as ChaCha20 was before (session 20):
/// both are full-round standard ciphers, and AES runs in hardware on the machines Grove targets
/// (about 4 times ChaCha20's speed here, ARCHITECTURE.md, "Costs").
fn wrap_z_stream(seed: &[u8; 32], norm: usize) -> ctr::Ctr128BE<aes::Aes256> {
    use aes::cipher::KeyIvInit;
    let index = (norm as u64).to_le_bytes();
    let key = crate::ids::hash_parts(WRAP_Z_DOMAIN, &[seed, &index]);
    ctr::Ctr128BE::<aes::Aes256>::new(&key.into(), &[0u8; 16].into())
}

/// Groups of [`PROJECTION_GROUP`] coordinates whose stream [`CircuitType::projections`] draws
/// at once.
const PROJECTION_BLOCK: usize = 32;

/// Coordinates per table of subset sums in [`CircuitType::projections`]: a table of
/// `2^PROJECTION_GROUP` entries serves `2 WRAP_CHECKS` lookups, so per coordinate the work is
/// about `(2^k + 2 WRAP_CHECKS) / k` (twice, for the two 32-bit halves): 6 has the fewest
/// operations (session 21: 8 before).
const PROJECTION_GROUP: usize = 6;

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

/// PINE's wraparound checks (module text): `alpha` (the CFRG draft's, draft-chen-cfrg-vdaf-pine),
/// the number of random projections and the number that must succeed (all of them).
///
/// Error bounds (the draft's analysis, after Lemma 4.3 and Claim 4.9 of the PINE paper):
/// - *Soundness*: a vector whose sum of squares wraps around the modulus passes one check with
///   probability at most 1/2 over `z`, so all `WRAP_CHECKS` with at most `2^-64` per wraparound
///   seed. That is below the FLP's own soundness error per try in `Field64` (about
///   `(2 (L - 1) + chunk) / 2^64` for wire polynomials of `L` points: `2^-55.8` for a
///   `sum_vector` of 10,000, `2^-54` for 131,072; ARCHITECTURE.md, "Validity proofs"), which
///   bounds the whole proof's: more checks would not make the proof harder to cheat. The
///   draft's 100 checks (`2^-100`) cost a member about 1.6 times the lookups and the stream of
///   these for no gain in `Field64`.
/// - *Completeness*: an honest vector (`||x|| <= c`) fails one check with probability at most
///   `2 exp(-alpha^2)` = `2^-108` (its projection is sub-Gaussian with variance proxy `c^2 / 2`,
///   and `W - 1 >= alpha c`), so an honest contributor cannot prove with probability at most
///   `WRAP_CHECKS 2^-108` = `2^-102`.
pub const WRAP_ALPHA: f64 = 8.7;
pub const WRAP_CHECKS: usize = 64;
pub const WRAP_SUCCESSES: usize = WRAP_CHECKS;

/// The wraparound checks of one norm: `WRAP_CHECKS` projections `y_j = <z_j, x>`, each with
/// the bits of `v_j = y_j + bound - 1` (`vbits` of them, plain binary weights, so `v_j` in
/// `[0, 2 bound - 1]`) and a success bit `g_j` at `bits + j (vbits + 1)` (the bits after
/// `v_j`'s), and the claimed projection `y_j` at `results + j`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Wrap {
    norm: usize,
    /// The projection bound `W`, a power of two: a check succeeds when `y_j` is in
    /// `[-(W - 1), W]`.
    bound: u64,
    vbits: usize,
    bits: usize,
    results: usize,
}

/// The projection bound of a norm bound (`W = 2^ceil(log2(ceil(alpha bound) + 1))`, as the
/// draft), and its bits; `None` if the field cannot hold the checks (the draft's requirements:
/// `3 bound^2 + 2 < p` for the norm's range, `p / W >= 2600` for the projections).
fn wrap_bound(bound: i64) -> Option<(u64, usize)> {
    let b = i128::from(bound);
    if b < 0 || 3 * b * b + 2 >= P {
        return None;
    }
    let w = ((WRAP_ALPHA * bound as f64).ceil() as u64 + 1).checked_next_power_of_two()?;
    if (P as u64) / w < 2600 {
        return None;
    }
    Some((w, (64 - (2 * w - 1).leading_zeros()) as usize))
}

/// Where one wraparound check sits in a [`CircuitType`]'s input
/// ([`CircuitType::wraparound_positions`]), and its projection bound `W`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrapPositions {
    pub v_bits: std::ops::Range<usize>,
    pub success: usize,
    pub projection: usize,
    pub bound: u64,
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
    wraps: Vec<Wrap>,
    /// The bits of the witness (every one proven in {0, 1}).
    witness: usize,
    /// The claimed projections after the bits (`WRAP_CHECKS` per norm).
    results: usize,
    /// The wraparound randomness the projections are drawn from (`Staged::staged`).
    wrap_seed: [u8; 32],
    /// Set only on the type `validity::prove_in_stages` proves with (`Staged::for_proving`):
    /// `valid` then skips the wraparound projections, whose linear check does not call the
    /// gadget and whose output prio's `prove` discards. Never set on a type that queries.
    proving: bool,
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

/// `v_j` of wraparound check `j` from its bits (plain binary weights).
fn wrap_v(input: &[Field64], w: &Wrap, j: usize) -> Field64 {
    let first = w.bits + j * (w.vbits + 1);
    let mut v = Field64::zero();
    for b in input[first..first + w.vbits].iter().rev() {
        v = v + v + *b;
    }
    v
}

/// Calls of `n` items in chunks of `chunk`.
fn calls_of(n: usize, chunk: usize) -> usize {
    n.div_ceil(chunk)
}

fn proof_len_of(chunk: usize, calls: usize) -> usize {
    chunk * 2 + 2 * ((1 + calls).next_power_of_two() - 1) + 1
}

/// The cap on wire polynomial points of [`chunk_for`] is never below this.
const MIN_WIRE_POINTS_CAP: usize = 32;

/// The chunk length, at most `max_chunk` (and [`MAX_VALIDITY_CHUNK`]), for `n_quad` quadratic
/// constraints and norms of `norm_lens` coordinates, with the gadget calls of the quadratic
/// constraints and of all: `(chunk, quad_calls, calls)`. The proof is about `2 chunk + 2 L`
/// elements and the verifier shares members exchange `2 + 2 chunk`, for wire polynomials of
/// `L = (calls + 1).next_power_of_two()` points.
///
/// A member's query costs `O(n)` for `n` gadget inputs whatever the chunk (the circuit, and
/// the wire polynomials' `2 chunk L` points), plus prio's extension of the gadget polynomial
/// to a power of two (`QueryShimGadget::new`), `O(L^2)` multiplications: about `4 L^2`, which
/// at `L = 1024` (a `sum_vector` of 131,072 at the shortest proof) is 4 million, more than all
/// the rest. So `L` is capped at the largest power of two whose square is at most `n` (the
/// query's `O(L^2)` then at most its `O(n)`; never below [`MIN_WIRE_POINTS_CAP`], where it
/// costs microseconds), and the chunk minimises the proof under that cap (ties: the shorter
/// chunk, a shorter verifier share). The proof stays near the shortest (`2 chunk + 2 L` with
/// `chunk L` about `n`, both about `sqrt n`). If no chunk up to `max_chunk` meets the cap, the
/// chunk minimises the proof.
fn chunk_for(n_quad: usize, norm_lens: &[usize], max_chunk: usize) -> (usize, usize, usize) {
    let cap = max_chunk.clamp(1, MAX_VALIDITY_CHUNK);
    let largest = norm_lens
        .iter()
        .copied()
        .chain([n_quad, 1])
        .max()
        .unwrap_or(1)
        .min(cap);
    let calls_at = |chunk: usize| {
        calls_of(n_quad, chunk).max(1)
            + norm_lens.iter().map(|l| calls_of(*l, chunk)).sum::<usize>()
    };
    let inputs = n_quad + norm_lens.iter().sum::<usize>();
    let mut points = 1usize;
    while (2 * points) * (2 * points) <= inputs.max(1) {
        points *= 2;
    }
    let points = points.max(MIN_WIRE_POINTS_CAP);
    let shortest = |admit: &dyn Fn(usize) -> bool| {
        (1..=largest)
            .filter(|c| admit(*c))
            .min_by_key(|c| (proof_len_of(*c, calls_at(*c)), *c))
    };
    let chunk = shortest(&|c| (1 + calls_at(c)).next_power_of_two() <= points)
        .or_else(|| shortest(&|_| true))
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
    results: usize,
    n_quad: usize,
    norm_lens: Vec<usize>,
}

impl Shape {
    fn input_len(&self) -> usize {
        self.prefix + self.witness + self.results
    }

    fn of(circuit: &ValidityCircuit, noise: Option<u64>) -> Result<Shape, CircuitError> {
        let length = circuit.length as usize;
        let runs = Runs::of(circuit);
        let mut witness = 0usize;
        let mut results = 0usize;
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
                    let (_, vbits) = wrap_bound(*bound).ok_or(CircuitError::Norm(k))?;
                    let b2 = i128::from(*bound) * i128::from(*bound);
                    witness = witness
                        .saturating_add(bits(b2, k)?)
                        .saturating_add(WRAP_CHECKS * (vbits + 1));
                    results += WRAP_CHECKS;
                    quads += WRAP_CHECKS;
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
            results,
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
        let mut wraps: Vec<Wrap> = Vec::new();
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
                    // No walk over the coordinates: nothing of the proof is per coordinate
                    // but the gadget's squares and the projections.
                    inside(*start)?;
                    if *len > 0 {
                        inside(start.saturating_add(*len - 1))?;
                    }
                    let (w, vbits) = wrap_bound(*bound).ok_or(CircuitError::Norm(k))?;
                    let b2 = i128::from(*bound) * i128::from(*bound);
                    norms.push((*start, *len));
                    push(b2, vec![], Some(norms.len() - 1), b2, k)?;
                    wraps.push(Wrap {
                        norm: norms.len() - 1,
                        bound: w,
                        vbits,
                        bits: 0,
                        results: 0,
                    });
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
        // The wraparound bits after every range's, then the claimed projections.
        let mut results = 0;
        for w in &mut wraps {
            w.bits = length + noise_len + witness;
            witness += WRAP_CHECKS * (w.vbits + 1);
        }
        for w in &mut wraps {
            w.results = length + noise_len + witness + results;
            results += WRAP_CHECKS;
        }
        let typ = CircuitType {
            length,
            quads,
            ranges,
            norms,
            wraps,
            witness,
            results,
            wrap_seed: [0; 32],
            proving: false,
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

    /// Length of the witness after the vector (and noise): its bits, then the claimed
    /// projections of the wraparound checks.
    pub fn witness_len(&self) -> usize {
        self.witness + self.results
    }

    /// Where wraparound check `j` of norm `norm` sits in the input: the bits of `v_j`, the
    /// success bit `g_j` and the claimed projection `y_j` (test and attack code forges them).
    pub fn wraparound_positions(&self, norm: usize, j: usize) -> Option<WrapPositions> {
        let w = self.wraps.get(norm)?;
        (j < WRAP_CHECKS).then(|| {
            let first = w.bits + j * (w.vbits + 1);
            WrapPositions {
                v_bits: first..first + w.vbits,
                success: first + w.vbits,
                projection: w.results + j,
                bound: w.bound,
            }
        })
    }

    /// Whether the circuit has wraparound checks (a `NormAtMost`), so its input is fixed in
    /// two stages (`validity::Staged`).
    pub fn has_wraparound(&self) -> bool {
        !self.wraps.is_empty()
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

    /// [`Self::retie`] that takes the aggregated share by value: without noise the input share
    /// begins with it, so its allocation is the input share's (no copy of the vector part).
    pub fn retie_owned(
        &self,
        untied: &[Field64],
        aggregated: Vec<Field64>,
    ) -> Option<Vec<Field64>> {
        if self.noise.is_some() {
            return self.retie(untied, &aggregated);
        }
        if untied.len() + self.length != self.input_len() || aggregated.len() != self.length {
            return None;
        }
        // Without noise the tied part is the vector (`0..length`), which the tie sets to
        // `aggregated`: the input share is `aggregated` followed by what travelled.
        let mut input = aggregated;
        input.extend_from_slice(untied);
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
        self.quads.len() + self.witness + self.wraps.len() * WRAP_CHECKS
    }

    /// The `i`-th quadratic constraint's two factors: the circuit's own, then every bit of
    /// the witness in {0, 1}, then every wraparound check's `g_j (y_j - (v_j - (W - 1))) = 0`
    /// (a success bit of 1 forces the claimed projection into `[-(W - 1), W]`).
    fn quad_pair(&self, input: &[Field64], i: usize) -> (Field64, Field64) {
        if let Some(q) = self.quads.get(i) {
            return (
                input[q.a as usize],
                fe(i128::from(q.sign)) * input[q.b as usize] + fe(i128::from(q.constant)),
            );
        }
        let i = i - self.quads.len();
        if i < self.witness {
            let b = input[self.witness_start() + i];
            return (b, b - Field64::one());
        }
        let i = i - self.witness;
        let (w, j) = (&self.wraps[i / WRAP_CHECKS], i % WRAP_CHECKS);
        let v = wrap_v(input, w, j);
        let y = input[w.results + j];
        (
            y - v + fe(i128::from(w.bound) - 1),
            input[w.bits + j * (w.vbits + 1) + w.vbits],
        )
    }

    /// The wraparound projections of every norm of `input` at this type's wraparound seed (what
    /// a member computes on its input share inside its query): for cost reports.
    pub fn wraparound_projections(&self, input: &[Field64]) -> Vec<Vec<Field64>> {
        if input.len() != self.input_len() {
            return Vec::new();
        }
        self.wraps
            .iter()
            .map(|w| self.projections(input, w))
            .collect()
    }

    /// The projections `<z_j, x>` of norm `w`'s coordinates of `input` (shares or plaintext:
    /// a linear map), `z_j` in {-1, 0, 1} with probabilities 1/4, 1/2, 1/4 from the
    /// wraparound seed: `z_j,i = l + h - 1` for two independent bits. The stream
    /// ([`wrap_z_stream`]) keyed by the seed (and the norm's index) gives, for each group of
    /// [`PROJECTION_GROUP`] coordinates and each check `j`, a byte of the `l` bits then a byte
    /// of the `h` bits (bit `k` for coordinate `PROJECTION_GROUP group + k`; the bits above
    /// are not used).
    ///
    /// `<z, x> = <l, x> + <h, x> - sum x`: per group, the `2^PROJECTION_GROUP` subset sums of
    /// its values are tabulated once (from the subset sums of each half's 3 values, row by
    /// row), and each check adds two of them (a lookup instead of a multiply-add per
    /// coordinate). Values below 2^64 are split into 32-bit halves summed in `u64` (at most
    /// `2^(32 + 3) n / 6` each, no overflow below `2^25` coordinates).
    fn projections(&self, input: &[Field64], w: &Wrap) -> Vec<Field64> {
        self.projections_k::<PROJECTION_GROUP>(input, w)
    }

    /// [`Self::projections`] with groups of `K` coordinates (`K` at most 8): per group and
    /// check, a byte of the stream for the `l` bits and one for the `h` bits, their low `K`
    /// bits used; the subset sums of the group's two halves (`K / 2` and `K - K / 2` values)
    /// tabulated first, then every subset's, row by row.
    fn projections_k<const K: usize>(&self, input: &[Field64], w: &Wrap) -> Vec<Field64> {
        let (start, len) = self.norms[w.norm];
        let mut stream = wrap_z_stream(&self.wrap_seed, w.norm);
        let mut lo = [0u64; WRAP_CHECKS];
        let mut hi = [0u64; WRAP_CHECKS];
        let mut total = 0u128;
        let mut buf = [0u8; PROJECTION_BLOCK * 2 * WRAP_CHECKS];
        let mut table_lo = [0u64; 256];
        let mut table_hi = [0u64; 256];
        let a = K / 2;
        let b = K - a;
        let mask = (1usize << K) - 1;
        let coords = &input[start as usize..(start + len) as usize];
        for run in coords.chunks(K * PROJECTION_BLOCK) {
            let buf = &mut buf[..run.len().div_ceil(K) * 2 * WRAP_CHECKS];
            buf.fill(0);
            stream.apply_keystream(buf);
            for (group, bytes) in run.chunks(K).zip(buf.chunks_exact(2 * WRAP_CHECKS)) {
                let mut xs = [0u64; 8];
                for (v, x) in xs.iter_mut().zip(group) {
                    *v = u64::from(*x);
                    total += u128::from(*v);
                }
                let mut parts = [[0u64; 16]; 4];
                for (half, n) in parts.iter_mut().enumerate() {
                    let (shift, m32) = if half % 2 == 0 {
                        (0, 0xffff_ffff)
                    } else {
                        (32, u64::MAX)
                    };
                    let (off, cnt) = if half / 2 == 0 { (0, a) } else { (a, b) };
                    let part = &xs[off..off + cnt];
                    for m in 1..(1usize << cnt) {
                        let k = m.trailing_zeros() as usize;
                        n[m] = n[m & (m - 1)] + ((part[k] >> shift) & m32);
                    }
                }
                let [low_lo, low_hi, high_lo, high_hi] = &parts;
                let rows = 1usize << a;
                for (h, (row_lo, row_hi)) in table_lo[..1 << K]
                    .chunks_exact_mut(rows)
                    .zip(table_hi[..1 << K].chunks_exact_mut(rows))
                    .enumerate()
                {
                    let (add_lo, add_hi) = (high_lo[h], high_hi[h]);
                    for (t, x) in row_lo.iter_mut().zip(&low_lo[..rows]) {
                        *t = x + add_lo;
                    }
                    for (t, x) in row_hi.iter_mut().zip(&low_hi[..rows]) {
                        *t = x + add_hi;
                    }
                }
                for ((l, h), bb) in lo.iter_mut().zip(hi.iter_mut()).zip(bytes.chunks_exact(2)) {
                    let (x, c) = (usize::from(bb[0]) & mask, usize::from(bb[1]) & mask);
                    *l += table_lo[x] + table_lo[c];
                    *h += table_hi[x] + table_hi[c];
                }
            }
        }
        let p = P as u128;
        let total = Field64::from((total % p) as u64);
        lo.iter()
            .zip(&hi)
            .map(|(l, h)| {
                let sum = u128::from(*l) + (u128::from(*h) << 32);
                Field64::from((sum % p) as u64) - total
            })
            .collect()
    }

    /// The sum of squares of norm `k` of a plaintext vector, computed in the field (as the
    /// circuit computes it) and centered: for a vector whose squares wrap around the modulus
    /// this is what a liar writes in bits, and only the wraparound checks reject it.
    fn squares(&self, vector: &[Field64], k: usize) -> i128 {
        let (start, len) = self.norms[k];
        centered(
            vector[start as usize..(start + len) as usize]
                .iter()
                .fold(Field64::zero(), |a, x| a + *x * *x),
        )
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
        self.write_witness(&mut input);
        input
    }

    /// Writes the witness of `input` (`input_len` elements, the witness part zero) from its
    /// vector and noise parts: the bits of every range value, then the wraparound checks.
    fn write_witness(&self, input: &mut [Field64]) {
        for r in &self.ranges {
            let v = self.value(r, input);
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
        // The wraparound checks at this type's wraparound seed: every projection claimed as
        // it is; a check inside `[-(W - 1), W]` succeeds (until `WRAP_SUCCESSES` have) with
        // the bits of `y + W - 1`, any other has a success bit of 0 and bits of 0.
        for w in &self.wraps {
            let mut successes = 0;
            for (j, y) in self.projections(input, w).into_iter().enumerate() {
                input[w.results + j] = y;
                let c = centered(y);
                let bound = i128::from(w.bound);
                if (-(bound - 1)..=bound).contains(&c) && successes < WRAP_SUCCESSES {
                    successes += 1;
                    let first = w.bits + j * (w.vbits + 1);
                    let v = (c + bound - 1) as u64;
                    for b in 0..w.vbits {
                        if v >> b & 1 == 1 {
                            input[first + b] = Field64::one();
                        }
                    }
                    input[first + w.vbits] = Field64::one();
                }
            }
        }
    }

    /// What a contributor passes to `validity::prove_staged_tied_and_share` for `vector` and
    /// `noise`: with wraparound checks only the first stage (vector and noise, the witness
    /// zero), since the prover computes the witness at the wraparound seed
    /// (`Staged::complete`) and an encoding at the unstaged seed is discarded (its projections
    /// cost as much as a member's); without, [`Self::encode_noised_lenient`]. The shares and
    /// proof are the same either way.
    pub fn encode_for_proof(&self, vector: &[Field64], noise: &[Field64]) -> Vec<Field64> {
        self.encode_for_proof_from(vector.iter().copied(), noise.iter().copied())
    }

    /// [`Self::encode_for_proof`] of elements as they come (the engine converts its own
    /// field's elements straight into the input, without a vector of them first).
    pub fn encode_for_proof_from(
        &self,
        vector: impl IntoIterator<Item = Field64>,
        noise: impl IntoIterator<Item = Field64>,
    ) -> Vec<Field64> {
        use crate::validity::Staged;
        if self.stage_len() == 0 {
            let vector: Vec<Field64> = vector.into_iter().collect();
            let noise: Vec<Field64> = noise.into_iter().collect();
            return self.encode_noised_lenient(&vector, &noise);
        }
        let mut input = vec![Field64::zero(); self.input_len()];
        let (vector_part, rest) = input.split_at_mut(self.length);
        for (x, v) in vector_part.iter_mut().zip(vector) {
            *x = v;
        }
        for (x, n) in rest[..self.noise_len()].iter_mut().zip(noise) {
            *x = n;
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
        let wraps_hold = self.wraps.iter().all(|w| {
            let projections = self.projections(input, w);
            let successes = (0..WRAP_CHECKS)
                .map(|j| input[w.bits + j * (w.vbits + 1) + w.vbits])
                .fold(Field64::zero(), |a, b| a + b);
            successes == fe(WRAP_SUCCESSES as i128)
                && projections
                    .iter()
                    .enumerate()
                    .all(|(j, y)| input[w.results + j] == *y)
        });
        quads_hold
            && wraps_hold
            && self.ranges.iter().all(|r| {
                let (_, last) = bit_layout(r.span);
                let bits: Field64 = (0..r.bits)
                    .map(|j| fe(i128::from(weight(j, r.bits, last))) * input[r.offset + j])
                    .fold(Field64::zero(), |a, b| a + b);
                fe(self.value(r, input)) == bits
            })
    }
}

/// The vector (and noise) part is fixed first; the wraparound seed is derived from its
/// commitments; the witness, projections included, is then computed at that seed
/// (`validity::prove_staged_and_share`). Without a norm there is no first stage.
impl crate::validity::Staged for CircuitType {
    fn stage_len(&self) -> usize {
        if self.wraps.is_empty() {
            0
        } else {
            self.witness_start()
        }
    }

    fn staged(&self, seed: &[u8; 32]) -> CircuitType {
        let mut t = self.clone();
        t.wrap_seed = *seed;
        t.proving = false;
        t
    }

    fn for_proving(&self) -> CircuitType {
        let mut t = self.clone();
        t.proving = true;
        t
    }

    fn complete(&self, input: &mut [Field64]) {
        if input.len() != self.input_len() {
            return;
        }
        // In place: `encode_noised_lenient` of the vector and noise parts, without a new
        // input and two copies of it (1 MB each at 131,072).
        input[self.witness_start()..].fill(Field64::zero());
        self.write_witness(input);
    }
}

/// The tie of [`CircuitType::tie`]: the vector part (without noise) or the noise part (with)
/// of an input share is written from the aggregated share.
impl crate::validity::Tied for CircuitType {
    fn tied(&self) -> std::ops::Range<usize> {
        CircuitType::tied(self)
    }

    fn tie(&self, aggregated: &[Field64], input_share: &mut [Field64]) {
        CircuitType::tie(self, aggregated, input_share)
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
        // Wraparound checks: every claimed projection is the projection of the vector
        // (linear), and exactly `WRAP_SUCCESSES` success bits are set.
        let mut rands = joint_rand[self.quad_calls + self.ranges.len()..].iter();
        // Proving (`Staged::for_proving`): prio discards this output, and what follows calls
        // no gadget.
        let wraps: &[Wrap] = if self.proving { &[] } else { &self.wraps };
        for w in wraps {
            for (j, dot) in self.projections(input, w).into_iter().enumerate() {
                let r = rands.next().copied().unwrap_or_default();
                linear += r * (input[w.results + j] - dot);
            }
            let successes = (0..WRAP_CHECKS)
                .map(|j| input[w.bits + j * (w.vbits + 1) + w.vbits])
                .fold(Field64::zero(), |a, b| a + b);
            let r = rands.next().copied().unwrap_or_default();
            linear += r * (successes - fe(WRAP_SUCCESSES as i128));
        }
        Ok(vec![quad, linear])
    }

    fn input_len(&self) -> usize {
        self.witness_start() + self.witness + self.results
    }

    fn proof_len(&self) -> usize {
        proof_len_of(self.chunk, self.calls)
    }

    fn verifier_len(&self) -> usize {
        2 + self.chunk * 2
    }

    fn joint_rand_len(&self) -> usize {
        self.quad_calls + self.ranges.len() + self.wraps.len() * (WRAP_CHECKS + 1)
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
        // Just under the limit, the build walks nothing per coordinate (a norm's proof has no
        // per-coordinate witness: the squares are gadget calls, the wraparound checks
        // projections), and the shape counts exactly what it built.
        let c = Query::parse("SELECT sum_vector(w, 300000) FROM t CLIP NORM w TO 1")
            .unwrap()
            .compile()
            .unwrap();
        let circuit = c.validity_circuit();
        let (typ, walked) = walked_by(|| CircuitType::new(&circuit).unwrap());
        assert!(walked < 10, "{walked}");
        let shape = Shape::of(&circuit, None).unwrap();
        assert_eq!(shape.input_len(), typ.input_len());
        assert!(typ.witness_len() < 2_000, "{}", typ.witness_len());
    }

    /// `complete` (in place) writes the witness `encode_noised_lenient` computes, whatever the
    /// witness part held before, with and without noise, for a vector inside and one outside
    /// its norm bound.
    #[test]
    fn completing_in_place_is_the_lenient_encoding() {
        use crate::validity::Staged;
        let c = Query::parse("SELECT sum_vector(w, 21) FROM t CLIP NORM w TO 3")
            .unwrap()
            .compile()
            .unwrap();
        let circuit = c.validity_circuit();
        for typ in [
            CircuitType::new(&circuit).unwrap(),
            CircuitType::with_noise(&circuit, 50).unwrap(),
        ] {
            let typ = typ.staged(&[3; 32]);
            for scale in [1i128, 1_000] {
                let vector: Vec<Field64> = (0..21).map(|i| fe((i % 3 - 1) * scale)).collect();
                let noise: Vec<Field64> = (0..typ.noise_len()).map(|i| fe(i as i128 - 4)).collect();
                let want = typ.encode_noised_lenient(&vector, &noise);
                // The vector and noise parts as the encoding lays them out, the witness
                // part anything.
                let mut input = vec![fe(5); typ.input_len()];
                let length = typ.vector_len();
                input[..length].fill(Field64::zero());
                input[..21].copy_from_slice(&vector);
                input[length..length + noise.len()].copy_from_slice(&noise);
                typ.complete(&mut input);
                assert_eq!(input, want, "noise {}, scale {scale}", typ.noise_len());
            }
        }
    }

    /// The tabulated projections are the plain sums `sum_i z_j,i x_i` of the stream's
    /// definition (bit `k` of a group's two bytes per check), on plaintext vectors with
    /// negative coordinates, field-wide values and a partial last group.
    #[test]
    fn projections_are_the_streams_sums() {
        use crate::validity::Staged;
        use rand_chacha::rand_core::{RngCore, SeedableRng};
        let c = Query::parse("SELECT sum_vector(w, 21) FROM t CLIP NORM w TO 1")
            .unwrap()
            .compile()
            .unwrap();
        let typ = CircuitType::new(&c.validity_circuit())
            .unwrap()
            .staged(&[7; 32]);
        let w = &typ.wraps[0];
        let mut input = vec![Field64::zero(); typ.input_len()];
        for (i, x) in input[..21].iter_mut().enumerate() {
            *x = match i % 3 {
                0 => fe(-(i as i128) - 1),
                1 => Field64::from(u64::MAX - (P as u64) + (P as u64 - 1)),
                _ => fe(i as i128 * 1_000_003),
            };
        }
        assert_eq!(
            typ.projections(&input, w),
            plain_projections(&input[..21], &[7; 32])
        );
        // Longer vectors (several of the stream's runs of `PROJECTION_BLOCK` groups, a partial
        // last run and group) of field-wide values, at several seeds.
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([1; 32]);
        for (dim, seed) in [
            (PROJECTION_GROUP * PROJECTION_BLOCK, 1u8),
            (PROJECTION_GROUP * PROJECTION_BLOCK * 3 + 13, 2),
            (700, 3),
        ] {
            let c = Query::parse(&format!(
                "SELECT sum_vector(w, {dim}) FROM t CLIP NORM w TO 1"
            ))
            .unwrap()
            .compile()
            .unwrap();
            let typ = CircuitType::new(&c.validity_circuit())
                .unwrap()
                .staged(&[seed; 32]);
            let mut input = vec![Field64::zero(); typ.input_len()];
            for x in &mut input[..dim] {
                *x = fe(i128::from(rng.next_u64()));
            }
            assert_eq!(
                typ.projections(&input, &typ.wraps[0]),
                plain_projections(&input[..dim], &[seed; 32])
            );
        }
    }

    /// `sum_i z_j,i x_i` for every check `j`, straight from the stream's definition: AES-256 in
    /// counter mode (a 128-bit big-endian counter from 0) keyed by the hash of the seed and the
    /// norm's index (0), 128 bytes per group of `PROJECTION_GROUP` (6) coordinates, for check
    /// `j` a byte of `l` bits then a byte of `h` bits (bit `k` for coordinate `6 group + k`, the
    /// two top bits unused), `z = l + h - 1`.
    fn plain_projections(coords: &[Field64], seed: &[u8; 32]) -> Vec<Field64> {
        use aes::cipher::{BlockEncrypt, KeyInit};
        let key = crate::ids::hash_parts(WRAP_Z_DOMAIN, &[seed, &0u64.to_le_bytes()]);
        let aes = aes::Aes256::new(&key.into());
        let mut expected = vec![Field64::zero(); WRAP_CHECKS];
        let mut counter = 0u128;
        const K: usize = PROJECTION_GROUP;
        for g in 0..coords.len().div_ceil(K) {
            let mut bytes = Vec::new();
            while bytes.len() < 2 * WRAP_CHECKS {
                let mut b = aes::Block::from(counter.to_be_bytes());
                aes.encrypt_block(&mut b);
                bytes.extend_from_slice(&b);
                counter += 1;
            }
            for k in 0..K {
                let Some(x) = coords.get(K * g + k) else {
                    continue;
                };
                for (j, e) in expected.iter_mut().enumerate() {
                    let z = i128::from(bytes[2 * j] >> k & 1)
                        + i128::from(bytes[2 * j + 1] >> k & 1)
                        - 1;
                    *e += fe(z) * *x;
                }
            }
        }
        expected
    }

    /// The input share a member rebuilds from what travelled and its aggregated share implies
    /// exactly that aggregated share (`truncate`), with and without noise, and taking the
    /// aggregated share by value rebuilds the same share: `engine/validity.rs` keeps the
    /// aggregated share instead of computing `truncate` of every input share.
    #[test]
    fn a_retied_input_share_implies_its_aggregated_share() {
        use rand_chacha::rand_core::SeedableRng;
        let c = Query::parse("SELECT sum_vector(w, 6) FROM t CLIP NORM w TO 1")
            .unwrap()
            .compile()
            .unwrap()
            .validity_circuit();
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([3; 32]);
        for typ in [
            CircuitType::new(&c).unwrap(),
            CircuitType::with_noise(&c, 1000).unwrap(),
        ] {
            let share: Vec<Field64> =
                crate::validity::shamir::random_vector(&mut rng, typ.input_len());
            let aggregated: Vec<Field64> =
                crate::validity::shamir::random_vector(&mut rng, typ.vector_len());
            let untied = typ.untied(&share);
            let input = typ.retie(&untied, &aggregated).unwrap();
            assert_eq!(
                typ.retie_owned(&untied, aggregated.clone()),
                Some(input.clone())
            );
            assert_eq!(typ.truncate(input).unwrap(), aggregated);
            // Wrong lengths are refused by both.
            assert_eq!(typ.retie(&untied[1..], &aggregated), None);
            assert_eq!(typ.retie_owned(&untied[1..], aggregated.clone()), None);
            assert_eq!(typ.retie_owned(&untied, aggregated[1..].to_vec()), None);
            // A seed position (`engine/validity.rs`, `verify_own`): its stream drawn without
            // the tied elements and retied in the aggregated share's allocation is the input
            // share expanded with zeros there and then tied.
            let (mut tied, proof) = crate::validity::expand_seed_share_untied::<Field64>(
                &[4; 32],
                typ.input_len(),
                7,
                typ.tied(),
            );
            typ.tie(&aggregated, &mut tied);
            let (drawn, proof_drawn) = crate::validity::expand_seed_share_untied::<Field64>(
                &[4; 32],
                typ.input_len() - typ.tied().len(),
                7,
                0..0,
            );
            assert_eq!(typ.retie_owned(&drawn, aggregated.clone()), Some(tied));
            assert_eq!(proof_drawn, proof);
        }
    }

    /// The prover's shortcuts change no share and no proof: proving with the type that skips
    /// the projections in `valid` (`Staged::for_proving`, what `prove_staged_tied_and_share`
    /// uses) gives the proof of the type that computes them, and proving from
    /// `encode_for_proof` (first stage only) the shares of proving from the full encoding. (The
    /// skipped check is still a member's: `validity_norm`'s `a_forged_witness_is_rejected`.)
    #[test]
    fn the_provers_shortcuts_change_no_share_and_no_proof() {
        use crate::sharing::SharingParams;
        use crate::validity::{prove_staged_tied_and_share, Staged};
        let c = Query::parse("SELECT sum_vector(w, 40) FROM t CLIP NORM w TO 1 SCALE 2")
            .unwrap()
            .compile()
            .unwrap()
            .validity_circuit();
        let params = SharingParams::new(5, 3).unwrap();
        for (typ, noise) in [
            (CircuitType::new(&c).unwrap(), vec![]),
            (
                CircuitType::with_noise(&c, 1000).unwrap(),
                (0..40).map(|i| fe(i - 20)).collect::<Vec<_>>(),
            ),
        ] {
            let vector: Vec<Field64> = (0..40).map(|i| fe(i % 3 - 1)).collect();
            let staged = typ.staged(&[5; 32]);
            let input = staged.encode_noised_lenient(&vector, &noise);
            let joint: Vec<Field64> = (0..staged.joint_rand_len())
                .map(|i| fe(i as i128 * 7 + 3))
                .collect();
            let prove_rand: Vec<Field64> = (0..staged.prove_rand_len())
                .map(|i| fe(i as i128 * 11 + 5))
                .collect();
            assert_eq!(
                staged
                    .for_proving()
                    .prove(&input, &prove_rand, &joint)
                    .unwrap(),
                staged.prove(&input, &prove_rand, &joint).unwrap()
            );
            let aggregated: Vec<Vec<Field64>> = (1..=5u8)
                .map(|p| (0..40).map(|i| fe(i128::from(p) * 1000 + i)).collect())
                .collect();
            let prove = |input: &[Field64]| {
                prove_staged_tied_and_share(
                    &typ,
                    input,
                    params,
                    b"ctx",
                    &[8; 32],
                    false,
                    &aggregated,
                )
                .unwrap()
            };
            let full = prove(&typ.encode_noised_lenient(&vector, &noise));
            assert_eq!(prove(&typ.encode_for_proof(&vector, &noise)), full);
        }
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
