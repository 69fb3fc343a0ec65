//! Validity proofs on Shamir shares: a contributor proves that its encoded vector satisfies a
//! validity circuit, and a leaf group checks the proof on shares without learning the vector.
//!
//! The proof system is prio's fully linear proofs (`prio::flp`, the FLPs of Boneh, Boyle,
//! Corrigan-Gibbs, Gilboa and Ishai, as used by Prio3); this module only moves them from
//! additive shares between two servers to Shamir shares inside a group of `g` with threshold `t`:
//!
//! 1. The contributor encodes its measurement, derives the joint randomness from blinded
//!    commitments to its input shares, proves as a single party (`num_shares = 1`), and
//!    Shamir-shares the input and the proof ([`prove_and_share`]); positions `1..t-1` draw
//!    both from one seed each, which can travel instead ([`SharedContribution::seeds`]).
//! 2. Each member checks its own commitment, then runs the FLP query on its input and proof
//!    shares with `num_shares = 1` ([`verifier_share`]). The query is an affine map of
//!    (input, proof) for fixed randomness, with its constants added in full; the Lagrange
//!    coefficients to position 0 sum to 1, so the Lagrange combination of the members' verifier
//!    shares is exactly the query of the shared input and proof.
//! 3. Any `t` verifier shares are combined ([`decide`]) and prio's `decide` runs on the result.
//!    Shares beyond `t` must lie on the same polynomial, so a member that lies about its
//!    verifier share while others speak is noticed.
//!
//! Randomness. The *query* randomness must be unknown to the contributor (and to any member it
//! colludes with) when it proves: it is expanded from a `query_seed` that the caller must take
//! from a beacon round drawn after the share window closes. The *joint* randomness is used by
//! the prover, so it is bound to the input instead (Prio3's derivation): it is a hash of blinded
//! commitments to every input share, which every member receives and checks for its own share.
//! Both are bound to a `context` (the request and the contributor) so that a proof cannot be
//! replayed elsewhere.

pub mod circuit;
pub mod shamir;

#[cfg(test)]
mod tests;

use crate::sharing::{SharingError, SharingParams};
use prio::field::FieldElement;
use prio::flp::{FlpError, Type};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::ops::Range;
use thiserror::Error;

const COMMIT_DOMAIN: &str = "grove/validity/commit";
const BLIND_DOMAIN: &str = "grove/validity/blind";
const JOINT_DOMAIN: &str = "grove/validity/joint-rand";
const QUERY_DOMAIN: &str = "grove/validity/query-rand";
const PROVE_DOMAIN: &str = "grove/validity/prove-rand";
const INPUT_DOMAIN: &str = "grove/validity/input-seed";
const PROOF_COMMIT_DOMAIN: &str = "grove/validity/proof-commit";
const BOUND_DOMAIN: &str = "grove/validity/bound";
const DERIVED_QUERY_DOMAIN: &str = "grove/validity/derived-query-seed";
const STAGE_COMMIT_DOMAIN: &str = "grove/validity/stage-commit";
const STAGE_DOMAIN: &str = "grove/validity/wraparound-seed";

/// A type whose input is fixed in two stages (PINE's wraparound joint randomness): the first
/// `stage_len` elements (the vector) are shared and committed to first, a *wraparound seed*
/// is derived from those commitments, and only then is the rest of the input (the witness)
/// computed, at that seed. [`prove_staged_and_share`] and [`verifier_share_staged`] run it;
/// with `stage_len() == 0` they are [`prove_tied_and_share`] and [`verifier_share`].
pub trait Staged: Type + Sized {
    /// Elements of the input fixed before the wraparound seed (0: one stage).
    fn stage_len(&self) -> usize;
    /// This type at wraparound seed `seed` (what proves and queries).
    fn staged(&self, seed: &[u8; 32]) -> Self;
    /// Writes the input after the first stage from the first stage (the honest witness).
    fn complete(&self, input: &mut [Self::Field]);
    /// This type for proving only: prio's `prove` runs `valid` to record the gadget's inputs
    /// and discards its output, so a type may skip there what does not call the gadget
    /// (`CircuitType`: the wraparound projections, a linear check). The proof is the same
    /// ([`prove_in_stages`] proves with it and never queries with it; queries use
    /// [`Staged::staged`], which checks everything).
    fn for_proving(&self) -> Self {
        self.clone()
    }
}

/// Test-only: [`stage_commitment`], for the engine's test of [`stage_commitment_hasher`].
#[cfg(test)]
pub(crate) fn stage_commitment_of<F: FieldElement>(
    position: u8,
    blind: &[u8; 32],
    prefix: &[F],
) -> [u8; 32] {
    stage_commitment(position, blind, prefix)
}

/// The commitment to the first stage of the input share of `position`.
fn stage_commitment<F: FieldElement>(position: u8, blind: &[u8; 32], prefix: &[F]) -> [u8; 32] {
    hash_with_elements(STAGE_COMMIT_DOMAIN, &[&[position], blind], prefix)
}

/// The blind of `position`'s commitments in a contribution proven from `seed` (the one the
/// prover draws): for a caller that hashes that position's stage commitment itself
/// ([`stage_commitment_hasher`], [`prove_staged_tied_and_share_committed`]).
pub fn blind(seed: &[u8; 32], position: u8) -> [u8; 32] {
    crate::ids::hash_parts(BLIND_DOMAIN, &[seed, &[position]])
}

/// The commitment to the first stage of the input share of `position` from the encodings of
/// its elements, fed a block at a time ([`ElementsHash::update`]): the same hash as
/// [`stage_commitment`] of those elements, for a caller that holds them in another form
/// (the engine's own field, whose canonical `u64`s are `Field64`'s encodings: no conversion
/// out of prio's Montgomery form to hash them).
pub fn stage_commitment_hasher(position: u8, blind: &[u8; 32], encoded_len: usize) -> ElementsHash {
    ElementsHash::new(STAGE_COMMIT_DOMAIN, &[&[position], blind], encoded_len)
}

/// `ids::hash_parts(domain, parts ++ [bytes])` where `bytes` (`encoded_len` of them, the
/// encoding of some elements) come a block at a time.
pub struct ElementsHash {
    h: sha2::Sha256,
    left: usize,
}

impl ElementsHash {
    fn new(domain: &str, parts: &[&[u8]], encoded_len: usize) -> ElementsHash {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update((domain.len() as u32).to_le_bytes());
        h.update(domain.as_bytes());
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
        h.update((encoded_len as u64).to_le_bytes());
        ElementsHash {
            h,
            left: encoded_len,
        }
    }

    /// The next bytes of the encoding.
    pub fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest;
        self.left = self.left.saturating_sub(bytes.len());
        self.h.update(bytes);
    }

    /// The hash; `None` if fewer bytes came than announced (more are not noticed here: the
    /// length is part of what is hashed, so either differs from the honest hash).
    pub fn finish(self) -> Option<[u8; 32]> {
        use sha2::Digest;
        (self.left == 0).then(|| self.h.finalize().into())
    }
}

/// `ids::hash_parts(domain, parts ++ [encoding of elements])`, without the encoding's copy:
/// the elements are encoded and hashed a block at a time.
fn hash_with_elements<F: FieldElement>(domain: &str, parts: &[&[u8]], elements: &[F]) -> [u8; 32] {
    let mut h = ElementsHash::new(domain, parts, elements.len() * F::ENCODED_SIZE);
    let mut buf = Vec::with_capacity(512 * F::ENCODED_SIZE);
    for block in elements.chunks(512) {
        buf.clear();
        for x in block {
            // Encoding a field element into a Vec cannot fail.
            x.encode(&mut buf).unwrap_or_default();
        }
        h.update(&buf);
    }
    // Every byte announced came.
    h.finish().unwrap_or_default()
}

/// The wraparound seed of a contribution: the hash of the context and of the commitments to
/// every position's first stage, so it is fixed once the vector is, and known to the
/// contributor when it computes its witness (it can grind it; ARCHITECTURE.md, "Validity
/// proofs").
pub fn wraparound_seed(context: &[u8], stage_commitments: &[[u8; 32]]) -> [u8; 32] {
    let mut parts: Vec<&[u8]> = vec![context];
    parts.extend(stage_commitments.iter().map(|c| c.as_slice()));
    crate::ids::hash_parts(STAGE_DOMAIN, &parts)
}

#[derive(Debug, Error)]
pub enum ValidityError {
    #[error(transparent)]
    Sharing(#[from] SharingError),
    #[error("proof system: {0}")]
    Flp(#[from] FlpError),
    #[error("{what} has length {got}, expected {expected}")]
    Length {
        what: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("position {0} is outside the group")]
    Position(u8),
    #[error("the input share of position {0} does not match its commitment")]
    Commitment(u8),
    #[error("verifier shares disagree (positions {0:?} are off the polynomial of the first t)")]
    Disagreement(Vec<u8>),
    #[error("no polynomial agrees with enough verifier shares to name the liars")]
    Undecodable,
}

/// What one member (at `position`) receives from a contributor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberShare<F> {
    pub position: u8,
    pub input: Vec<F>,
    pub proof: Vec<F>,
    /// The blinding of this member's commitment (sent to this member only).
    pub blind: [u8; 32],
    /// The commitments to every position's input share, index 0 is position 1 (the same
    /// list goes to every member).
    pub commitments: Vec<[u8; 32]>,
    /// The commitments to every position's proof share (same blinds, same order): they fix
    /// the proof before any query randomness derived from them ([`derived_query_seed`]).
    pub proof_commitments: Vec<[u8; 32]>,
}

/// A contributor's shared input and proof: `shares[i]` goes to position `i + 1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedContribution<F> {
    pub shares: Vec<MemberShare<F>>,
    /// `seeds[p - 1]` for positions `p` in `1..t`: the seed that position's input share
    /// (before the tie) and proof share expand from ([`expand_seed_share`]), so that it can
    /// travel instead of them (seed compression, as plain shares travel).
    pub seeds: Vec<[u8; 32]>,
}

/// The input share (before any tie) and proof share of a position that received a seed
/// ([`SharedContribution::seeds`]): one stream, the input's elements then the proof's.
pub fn expand_seed_share<F: FieldElement>(
    seed: &[u8; 32],
    input_len: usize,
    proof_len: usize,
) -> (Vec<F>, Vec<F>) {
    expand_seed_share_untied(seed, input_len, proof_len, 0..0)
}

/// [`expand_seed_share`] of a contribution proven with [`prove_staged_tied_and_share`]: the
/// stream holds the input share without its `tied` elements (zeros here, which the tie then
/// writes), then the proof share.
pub fn expand_seed_share_untied<F: FieldElement>(
    seed: &[u8; 32],
    input_len: usize,
    proof_len: usize,
    tied: Range<usize>,
) -> (Vec<F>, Vec<F>) {
    let tied = tied.start.min(input_len)..tied.end.min(input_len);
    let drawn = input_len - tied.len();
    let mut stream = shamir::expand_position::<F>(seed, drawn + proof_len);
    let proof = stream.split_off(drawn);
    if tied.is_empty() {
        return (stream, proof);
    }
    let mut input = Vec::with_capacity(input_len);
    input.extend_from_slice(&stream[..tied.start]);
    input.resize(tied.end, F::zero());
    input.extend_from_slice(&stream[tied.start..]);
    (input, proof)
}

/// One member's verifier share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierShare<F> {
    pub position: u8,
    pub verifier: Vec<F>,
    /// Hash of the commitment list the member used: all members must have used the same.
    pub commitments_digest: [u8; 32],
}

fn expand<F: FieldElement>(seed: [u8; 32], len: usize) -> Vec<F> {
    shamir::random_vector(&mut ChaCha20Rng::from_seed(seed), len)
}

/// The commitment to the input share of `position` (of a [`Staged`] type: to the input share
/// after its first stage, which the stage commitment binds).
fn commitment<F: FieldElement>(position: u8, blind: &[u8; 32], input: &[F]) -> [u8; 32] {
    hash_with_elements(COMMIT_DOMAIN, &[&[position], blind], input)
}

fn proof_commitment<F: FieldElement>(position: u8, blind: &[u8; 32], proof: &[F]) -> [u8; 32] {
    hash_with_elements(PROOF_COMMIT_DOMAIN, &[&[position], blind], proof)
}

/// What a verifier share is bound to: the input commitments' digest and the proof commitments.
fn bound_digest(digest: [u8; 32], proof_commitments: &[[u8; 32]]) -> [u8; 32] {
    let mut parts: Vec<&[u8]> = vec![&digest];
    parts.extend(proof_commitments.iter().map(|c| c.as_slice()));
    crate::ids::hash_parts(BOUND_DOMAIN, &parts)
}

/// A query seed derived from the contribution itself (Fiat–Shamir, as Prio3 derives its joint
/// randomness): the hash of the context and of the commitments to every input and proof share,
/// so it is fixed only once input and proof are. The contributor can compute it, so it can
/// grind (retry proofs until one passes for an invalid input): each try passes with the FLP's
/// soundness error (about `(2 (L - 1) + chunk) / 2^64` in `Field64`, `L` the wire polynomials'
/// points: `2^-54` to `2^-60`, `validity::circuit::WRAP_CHECKS`). A beacon round drawn after the share
/// window removes that; see ARCHITECTURE.md, "Validity proofs".
pub fn derived_query_seed<F>(context: &[u8], share: &MemberShare<F>) -> [u8; 32] {
    let mut parts: Vec<&[u8]> = vec![context];
    parts.extend(share.commitments.iter().map(|c| c.as_slice()));
    parts.extend(share.proof_commitments.iter().map(|c| c.as_slice()));
    crate::ids::hash_parts(DERIVED_QUERY_DOMAIN, &parts)
}

fn commitments_digest(context: &[u8], commitments: &[[u8; 32]]) -> [u8; 32] {
    let mut parts: Vec<&[u8]> = vec![context];
    parts.extend(commitments.iter().map(|c| c.as_slice()));
    crate::ids::hash_parts(JOINT_DOMAIN, &parts)
}

/// The joint randomness of a contribution, from its commitments.
fn joint_rand<T: Type>(typ: &T, digest: [u8; 32]) -> Vec<T::Field> {
    expand(digest, typ.joint_rand_len())
}

/// The query randomness for a contribution: `query_seed` must be drawn after the
/// contributor's shares are fixed (a beacon round after the share window).
fn query_rand<T: Type>(typ: &T, query_seed: &[u8; 32], context: &[u8]) -> Vec<T::Field> {
    let seed = crate::ids::hash_parts(QUERY_DOMAIN, &[query_seed, context]);
    expand(seed, typ.query_rand_len())
}

/// The query randomness members expand from `query_seed` for `context` (what
/// [`verifier_share`] uses): public so that a test can play a contributor that knows it when
/// it proves (`engine/validity.rs`, `ValidityLie::KnowsQueryRandomness`).
pub fn query_randomness<T: Type>(typ: &T, query_seed: &[u8; 32], context: &[u8]) -> Vec<T::Field> {
    query_rand(typ, query_seed, context)
}

/// Encodes `measurement`, proves it valid and shares input and proof (see the module text).
/// Deterministic in `seed`, which must be secret and fresh for every contribution.
pub fn prove_and_share<T: Type>(
    typ: &T,
    measurement: &T::Measurement,
    params: SharingParams,
    context: &[u8],
    seed: &[u8; 32],
) -> Result<SharedContribution<T::Field>, ValidityError> {
    let input = typ.encode_measurement(measurement)?;
    prove_encoded_and_share(typ, &input, params, context, seed)
}

/// [`prove_and_share`] of an already encoded input. Proving an input that does not satisfy the
/// circuit succeeds, and gives a proof that the group rejects.
pub fn prove_encoded_and_share<T: Type>(
    typ: &T,
    input: &[T::Field],
    params: SharingParams,
    context: &[u8],
    seed: &[u8; 32],
) -> Result<SharedContribution<T::Field>, ValidityError> {
    prove_tied_and_share(typ, input, params, context, seed, false, |_, _| {})
}

/// Test-only: [`prove_encoded_and_share`] with a forged proof (its first element plus one),
/// shared and committed to as an honest one is: only the proof system can reject it.
pub fn forge_and_share<T: Type>(
    typ: &T,
    input: &[T::Field],
    params: SharingParams,
    context: &[u8],
    seed: &[u8; 32],
) -> Result<SharedContribution<T::Field>, ValidityError> {
    prove_tied_and_share(typ, input, params, context, seed, true, |_, _| {})
}

/// [`prove_encoded_and_share`] where the caller adjusts the input shares before they are
/// committed to: `tie(position, share)` may overwrite coordinates of the share of `position`
/// (1-based), and must keep the shares a sharing of `input` (every adjusted coordinate an
/// affine function, the same at every position, of values that are themselves shares of
/// degree `< t`, with `input`'s value at 0). This is how the proven input and the aggregated
/// vector become one sharing (`engine/validity.rs`): the coordinate that `truncate` maps to an
/// aggregated element is computed from that element's share. `forge` is test-only.
pub fn prove_tied_and_share<T: Type>(
    typ: &T,
    input: &[T::Field],
    params: SharingParams,
    context: &[u8],
    seed: &[u8; 32],
    forge: bool,
    tie: impl FnMut(u8, &mut [T::Field]),
) -> Result<SharedContribution<T::Field>, ValidityError> {
    prove_adjusted_and_share(typ, input, params, context, seed, forge, tie, |_, _| {})
}

/// Test-only: [`prove_tied_and_share`] where `adjust_proof(position, share)` may also change
/// the proof share of a position before it is committed to: a contributor that sends one
/// member a proof share off the polynomial (the property tests corrupt one share this way).
#[allow(clippy::too_many_arguments)]
pub fn prove_adjusted_and_share<T: Type>(
    typ: &T,
    input: &[T::Field],
    params: SharingParams,
    context: &[u8],
    seed: &[u8; 32],
    forge: bool,
    tie: impl FnMut(u8, &mut [T::Field]),
    adjust_proof: impl FnMut(u8, &mut [T::Field]),
) -> Result<SharedContribution<T::Field>, ValidityError> {
    prove_in_stages(
        typ,
        input.to_vec(),
        params,
        context,
        seed,
        forge,
        tie,
        adjust_proof,
        0,
        |_, _| None,
        0..0,
        None,
    )
}

/// [`prove_tied_and_share`] of a [`Staged`] type: the first `stage_len` elements of `input`
/// are shared, tied and committed to first, the wraparound seed derived from those
/// commitments ([`wraparound_seed`]), the rest of the input computed at that seed
/// ([`Staged::complete`]), and the whole input shared and proven at that seed. The commitment
/// list is then the first stage's `g` commitments followed by `g` commitments to the rest of
/// each input share (after the first stage, which its stage commitment already binds: the
/// vector part is hashed once).
pub fn prove_staged_and_share<T: Staged>(
    typ: &T,
    input: &[T::Field],
    params: SharingParams,
    context: &[u8],
    seed: &[u8; 32],
    forge: bool,
    tie: impl FnMut(u8, &mut [T::Field]),
) -> Result<SharedContribution<T::Field>, ValidityError> {
    prove_staged_with(typ, input, params, context, seed, forge, tie, |t, x| {
        t.complete(x)
    })
}

/// Test-only: [`prove_staged_and_share`] where `witness(staged type, input)` computes the
/// second stage instead of [`Staged::complete`] (a contributor that forges its witness at the
/// seed it learnt).
#[allow(clippy::too_many_arguments)]
pub fn prove_staged_with<T: Staged>(
    typ: &T,
    input: &[T::Field],
    params: SharingParams,
    context: &[u8],
    seed: &[u8; 32],
    forge: bool,
    tie: impl FnMut(u8, &mut [T::Field]),
    witness: impl FnOnce(&T, &mut [T::Field]),
) -> Result<SharedContribution<T::Field>, ValidityError> {
    prove_in_stages(
        typ,
        input.to_vec(),
        params,
        context,
        seed,
        forge,
        tie,
        |_, _| {},
        typ.stage_len(),
        |wrap, x| {
            let staged = typ.staged(wrap);
            witness(&staged, x);
            Some(staged)
        },
        0..0,
        None,
    )
}

/// A [`Staged`] type whose input shares are tied to aggregated shares by a fixed rule: `tie`
/// overwrites exactly the elements `tied()` of an input share (at every position the same
/// affine map of the position's aggregated share and its other elements, as
/// [`prove_tied_and_share`] requires).
pub trait Tied: Staged {
    /// The elements of an input share that [`Tied::tie`] overwrites.
    fn tied(&self) -> Range<usize>;
    /// Writes the tied elements of `input_share` from `aggregated`, this position's share of
    /// the aggregated vector.
    fn tie(&self, aggregated: &[Self::Field], input_share: &mut [Self::Field]);
}

/// [`prove_staged_and_share`] with the type's own tie to `aggregated` (`aggregated[p - 1]` is
/// position `p`'s aggregated share). The elements the tie overwrites are never drawn: the seed
/// of a position below `t` expands to the rest of its input share only
/// ([`expand_seed_share_untied`] with [`Tied::tied`]), so neither the contributor nor that
/// member draws randomness that the tie then discards. Every position's tied elements are
/// then its aggregated share's (a sharing of degree `< t`), so the sharing stays uniform.
pub fn prove_staged_tied_and_share<T: Tied>(
    typ: &T,
    input: &[T::Field],
    params: SharingParams,
    context: &[u8],
    seed: &[u8; 32],
    forge: bool,
    aggregated: &[Vec<T::Field>],
) -> Result<SharedContribution<T::Field>, ValidityError> {
    prove_staged_tied_and_share_committed(
        typ,
        input.to_vec(),
        params,
        context,
        seed,
        forge,
        aggregated,
        None,
    )
}

/// [`prove_staged_tied_and_share`] of an input given by value (the engine's: the witness is
/// written in it, not in a copy, 1 MB at 131,072), optionally given the first stage's `g`
/// commitments (`stage_commitments[p - 1]` of position `p`, [`stage_commitment_hasher`] at
/// [`blind`]`(seed, p)` over the encodings of its aggregated share), for a type whose first
/// stage is exactly its tied elements (`tied() == 0..stage_len()`, a norm without noise):
/// each position's first stage is then its aggregated share, which the caller hashed while
/// it held it in another form (the engine's field, whose canonical `u64`s are `Field64`'s
/// encodings: no conversion out of prio's Montgomery form, 131,072 elements per position).
/// The same result as without them; for any other type, or a list of another length, they
/// are not used.
#[allow(clippy::too_many_arguments)]
pub fn prove_staged_tied_and_share_committed<T: Tied>(
    typ: &T,
    input: Vec<T::Field>,
    params: SharingParams,
    context: &[u8],
    seed: &[u8; 32],
    forge: bool,
    aggregated: &[Vec<T::Field>],
    stage_commitments: Option<Vec<[u8; 32]>>,
) -> Result<SharedContribution<T::Field>, ValidityError> {
    if aggregated.len() != usize::from(params.g) {
        return Err(ValidityError::Length {
            what: "aggregated shares",
            got: aggregated.len(),
            expected: usize::from(params.g),
        });
    }
    prove_in_stages(
        typ,
        input,
        params,
        context,
        seed,
        forge,
        |p, share| typ.tie(&aggregated[usize::from(p) - 1], share),
        |_, _| {},
        typ.stage_len(),
        |wrap, x| {
            let staged = typ.staged(wrap);
            staged.complete(x);
            Some(staged.for_proving())
        },
        typ.tied(),
        stage_commitments,
    )
}

#[allow(clippy::too_many_arguments)]
fn prove_in_stages<T: Type>(
    typ: &T,
    mut input: Vec<T::Field>,
    params: SharingParams,
    context: &[u8],
    seed: &[u8; 32],
    forge: bool,
    mut tie: impl FnMut(u8, &mut [T::Field]),
    mut adjust_proof: impl FnMut(u8, &mut [T::Field]),
    stage_len: usize,
    stage: impl FnOnce(&[u8; 32], &mut [T::Field]) -> Option<T>,
    tied: Range<usize>,
    stage_commitments: Option<Vec<[u8; 32]>>,
) -> Result<SharedContribution<T::Field>, ValidityError> {
    let params = SharingParams::new(params.g, params.t)?;
    if input.len() != typ.input_len() || stage_len > input.len() || tied.end > input.len() {
        return Err(ValidityError::Length {
            what: "input",
            got: input.len(),
            expected: typ.input_len(),
        });
    }
    // Positions 1..t-1 draw their input share and then their proof share from one seed
    // each (uniform and independent of the secret, as `shamir::share` draws them).
    let input_seed = crate::ids::hash_parts(INPUT_DOMAIN, &[seed]);
    let seeds: Vec<[u8; 32]> = (1..params.t)
        .map(|p| shamir::position_seed(&input_seed, p))
        .collect();
    let mut randoms: Vec<Vec<T::Field>> = Vec::with_capacity(seeds.len());
    let mut proof_randoms: Vec<Vec<T::Field>> = Vec::with_capacity(seeds.len());
    for s in &seeds {
        let (input, proof) =
            expand_seed_share_untied(s, typ.input_len(), typ.proof_len(), tied.clone());
        randoms.push(input);
        proof_randoms.push(proof);
    }
    let blinds: Vec<[u8; 32]> = (1..=params.g).map(|p| blind(seed, p)).collect();
    let mut commitments: Vec<[u8; 32]> = Vec::new();
    let mut staged = None;
    // The whole input is shared once (the tied elements are left to the tie: every position's
    // are overwritten), and tied.
    let mut input_shares = shamir::share_with_except(&input, params, randoms, tied.clone());
    for (position, share) in (1..).zip(input_shares.iter_mut()) {
        tie(position, share);
    }
    if stage_len > 0 {
        // The first stage: its shares are the prefixes of the whole input's (a sharing is
        // element by element, with the same randoms), tied as the whole shares are; they are
        // committed to before the rest of the input is computed.
        // Given by the caller only when each position's first stage is its tied elements,
        // that is its aggregated share (`prove_staged_tied_and_share_committed`).
        commitments = match stage_commitments {
            Some(given) if tied == (0..stage_len) && given.len() == input_shares.len() => given,
            _ => input_shares
                .iter()
                .zip(&blinds)
                .zip(1..=params.g)
                .map(|((x, b), p)| stage_commitment(p, b, &x[..stage_len]))
                .collect(),
        };
        staged = stage(&wraparound_seed(context, &commitments), &mut input);
        // The rest of the input changed: its shares are computed again (positions `t..=g`;
        // below `t` they are the randoms), not the whole sharing (the first stage's shares
        // were a second sharing and tie of the vector, about 10 MB of writes for `g = 5` at
        // 131,072). A tie that writes only inside the first stage (`Tied`) stands; any other
        // is applied again, as on a fresh sharing.
        shamir::reshare_range(&input, params, &mut input_shares, stage_len..input.len());
        if tied.is_empty() || tied.end > stage_len {
            for (position, share) in (1..).zip(input_shares.iter_mut()) {
                tie(position, share);
            }
        }
    }
    let typ = staged.as_ref().unwrap_or(typ);
    commitments.extend(
        input_shares
            .iter()
            .zip(&blinds)
            .zip(1..=params.g)
            .map(|((x, b), p)| commitment(p, b, &x[stage_len..])),
    );
    let joint = joint_rand(typ, commitments_digest(context, &commitments));
    let prove_rand = expand(
        crate::ids::hash_parts(PROVE_DOMAIN, &[seed]),
        typ.prove_rand_len(),
    );
    let mut proof = typ.prove(&input, &prove_rand, &joint)?;
    if forge {
        if let Some(x) = proof.first_mut() {
            *x += T::Field::one();
        }
    }
    if proof.len() != typ.proof_len() {
        return Err(ValidityError::Length {
            what: "proof",
            got: proof.len(),
            expected: typ.proof_len(),
        });
    }
    let mut proof_shares = shamir::share_with(&proof, params, proof_randoms);
    for (position, share) in (1..).zip(proof_shares.iter_mut()) {
        adjust_proof(position, share);
    }
    let proof_commitments: Vec<[u8; 32]> = proof_shares
        .iter()
        .zip(&blinds)
        .zip(1..=params.g)
        .map(|((x, b), p)| proof_commitment(p, b, x))
        .collect();
    let shares = input_shares
        .into_iter()
        .zip(proof_shares)
        .zip(blinds)
        .zip(1..=params.g)
        .map(|(((input, proof), blind), position)| MemberShare {
            position,
            input,
            proof,
            blind,
            commitments: commitments.clone(),
            proof_commitments: proof_commitments.clone(),
        })
        .collect();
    Ok(SharedContribution { shares, seeds })
}

/// A member's verifier share of the contribution it holds `share` of: checks its own
/// commitment and the lengths, then queries its input and proof shares.
pub fn verifier_share<T: Type>(
    typ: &T,
    params: SharingParams,
    share: &MemberShare<T::Field>,
    context: &[u8],
    query_seed: &[u8; 32],
) -> Result<VerifierShare<T::Field>, ValidityError> {
    verifier_share_at(typ, params, share, context, query_seed, 0, 0)
}

/// [`verifier_share`] of a [`Staged`] type: checks this member's commitment to the first
/// stage of its input share (the first `g` commitments of the list), derives the wraparound
/// seed from those commitments, and queries at that seed.
pub fn verifier_share_staged<T: Staged>(
    typ: &T,
    params: SharingParams,
    share: &MemberShare<T::Field>,
    context: &[u8],
    query_seed: &[u8; 32],
) -> Result<VerifierShare<T::Field>, ValidityError> {
    verifier_share_staged_committed(typ, params, share, context, query_seed, None)
}

/// [`verifier_share_staged`] given this member's own stage commitment (`own_stage`, if
/// `Some`): the caller hashed the first stage of `share.input` itself
/// ([`stage_commitment_hasher`], from the same elements in another form), so it is not
/// encoded and hashed again here. It is checked against the list as the computed one is.
pub fn verifier_share_staged_committed<T: Staged>(
    typ: &T,
    params: SharingParams,
    share: &MemberShare<T::Field>,
    context: &[u8],
    query_seed: &[u8; 32],
    own_stage: Option<[u8; 32]>,
) -> Result<VerifierShare<T::Field>, ValidityError> {
    let stage_len = typ.stage_len();
    if stage_len == 0 {
        return verifier_share(typ, params, share, context, query_seed);
    }
    let g = params.g as usize;
    if share.position == 0 || share.position > params.g {
        return Err(ValidityError::Position(share.position));
    }
    if share.commitments.len() != 2 * g || share.input.len() != typ.input_len() {
        return Err(ValidityError::Length {
            what: "commitment list or input share",
            got: share.commitments.len(),
            expected: 2 * g,
        });
    }
    let p = usize::from(share.position);
    let own = own_stage.unwrap_or_else(|| {
        stage_commitment(share.position, &share.blind, &share.input[..stage_len])
    });
    if share.commitments[p - 1] != own {
        return Err(ValidityError::Commitment(share.position));
    }
    let staged = typ.staged(&wraparound_seed(context, &share.commitments[..g]));
    verifier_share_at(&staged, params, share, context, query_seed, g, stage_len)
}

/// [`verifier_share`] with `offset` commitments (of a first stage) before the input's, and
/// the first `stage_len` elements of the input share bound by those (not hashed again).
fn verifier_share_at<T: Type>(
    typ: &T,
    params: SharingParams,
    share: &MemberShare<T::Field>,
    context: &[u8],
    query_seed: &[u8; 32],
    offset: usize,
    stage_len: usize,
) -> Result<VerifierShare<T::Field>, ValidityError> {
    if share.position == 0 || share.position > params.g {
        return Err(ValidityError::Position(share.position));
    }
    for (what, got, expected) in [
        ("input share", share.input.len(), typ.input_len()),
        ("proof share", share.proof.len(), typ.proof_len()),
        (
            "commitment list",
            share.commitments.len(),
            offset + params.g as usize,
        ),
        (
            "proof commitment list",
            share.proof_commitments.len(),
            params.g as usize,
        ),
    ] {
        if got != expected {
            return Err(ValidityError::Length {
                what,
                got,
                expected,
            });
        }
    }
    let own = commitment(share.position, &share.blind, &share.input[stage_len..]);
    if share.commitments[offset + share.position as usize - 1] != own {
        return Err(ValidityError::Commitment(share.position));
    }
    let own = proof_commitment(share.position, &share.blind, &share.proof);
    if share.proof_commitments[share.position as usize - 1] != own {
        return Err(ValidityError::Commitment(share.position));
    }
    let digest = commitments_digest(context, &share.commitments);
    let joint = joint_rand(typ, digest);
    let query = query_rand(typ, query_seed, context);
    let verifier = query_share(typ, &share.input, &share.proof, &query, &joint)?;
    Ok(VerifierShare {
        position: share.position,
        verifier,
        commitments_digest: bound_digest(digest, &share.proof_commitments),
    })
}

/// The FLP query of one member's input and proof shares.
fn query_share<T: Type>(
    typ: &T,
    input: &[T::Field],
    proof: &[T::Field],
    query: &[T::Field],
    joint: &[T::Field],
) -> Result<Vec<T::Field>, ValidityError> {
    // num_shares = 1: every Shamir share carries the circuit's constants in full (module text).
    Ok(typ.query(input, proof, query, joint, 1)?)
}

/// Combines verifier shares (at least `t`, distinct positions of the group) and decides.
///
/// The first `t` shares are combined; every further share must lie on the same polynomial and
/// every share must name the same commitments, otherwise the shares disagree and nothing is
/// decided. Fewer than `t` shares decide nothing.
pub fn decide<T: Type>(
    typ: &T,
    params: SharingParams,
    shares: &[VerifierShare<T::Field>],
) -> Result<bool, ValidityError> {
    let t = params.t as usize;
    if shares.len() < t {
        return Err(SharingError::NotEnoughShares {
            needed: t,
            got: shares.len(),
        }
        .into());
    }
    for s in shares {
        if s.position == 0 || s.position > params.g {
            return Err(ValidityError::Position(s.position));
        }
        if s.verifier.len() != typ.verifier_len() {
            return Err(ValidityError::Length {
                what: "verifier share",
                got: s.verifier.len(),
                expected: typ.verifier_len(),
            });
        }
    }
    let digest = shares[0].commitments_digest;
    let other_digest: Vec<u8> = shares
        .iter()
        .filter(|s| s.commitments_digest != digest)
        .map(|s| s.position)
        .collect();
    if !other_digest.is_empty() {
        return Err(ValidityError::Disagreement(other_digest));
    }
    let pairs: Vec<(u8, &[T::Field])> = shares
        .iter()
        .map(|s| (s.position, s.verifier.as_slice()))
        .collect();
    let points: Vec<u8> = pairs[..t].iter().map(|(p, _)| *p).collect();
    let first: Vec<&[T::Field]> = pairs[..t].iter().map(|(_, v)| *v).collect();
    let mut off = Vec::new();
    for (p, v) in &pairs[t..] {
        let coeffs = shamir::lagrange::<T::Field>(&points, *p)?;
        if shamir::combine(&coeffs, &first) != *v {
            off.push(*p);
        }
    }
    if !off.is_empty() {
        return Err(ValidityError::Disagreement(off));
    }
    let verifier = shamir::reconstruct(&pairs, params.t)?;
    Ok(typ.decide(&verifier)?)
}

/// The next `t`-subset of `0..k` in lexicographic order, `false` after the last.
fn next_subset(idx: &mut [usize], k: usize) -> bool {
    let t = idx.len();
    for i in (0..t).rev() {
        if idx[i] < k - t + i {
            idx[i] += 1;
            for j in i + 1..t {
                idx[j] = idx[j - 1] + 1;
            }
            return true;
        }
    }
    false
}

/// [`decide`] that survives members lying about their verifier shares, and names them.
///
/// Of `k` shares (distinct positions), the decision uses a polynomial through `t` of them that
/// at least `ceil((k + t) / 2)` shares lie on (same commitments digest included): two such
/// polynomials share `t` points, so it is unique, and it exists whenever at most
/// `(k - t) / 2` members lie. The shares off it are returned as the liars; an honest
/// contribution is then accepted however those members lie. With more liars nothing is
/// decided ([`ValidityError::Undecodable`]), and nobody is named.
pub fn decide_naming<T: Type>(
    typ: &T,
    params: SharingParams,
    shares: &[VerifierShare<T::Field>],
) -> Result<(bool, Vec<u8>), ValidityError> {
    let t = params.t as usize;
    let k = shares.len();
    if k < t || t == 0 {
        return Err(SharingError::NotEnoughShares {
            needed: t,
            got: shares.len(),
        }
        .into());
    }
    let mut seen = [false; 256];
    for s in shares {
        if s.position == 0 || s.position > params.g || seen[usize::from(s.position)] {
            return Err(ValidityError::Position(s.position));
        }
        seen[usize::from(s.position)] = true;
        if s.verifier.len() != typ.verifier_len() {
            return Err(ValidityError::Length {
                what: "verifier share",
                got: s.verifier.len(),
                expected: typ.verifier_len(),
            });
        }
    }
    let needed = (k + t).div_ceil(2);
    let mut idx: Vec<usize> = (0..t).collect();
    for _ in 0..crate::limits::MAX_VALIDITY_DECODE_SUBSETS {
        let digest = shares[idx[0]].commitments_digest;
        if idx.iter().all(|i| shares[*i].commitments_digest == digest) {
            let points: Vec<u8> = idx.iter().map(|i| shares[*i].position).collect();
            let first: Vec<&[T::Field]> =
                idx.iter().map(|i| shares[*i].verifier.as_slice()).collect();
            let mut off = Vec::new();
            for (j, s) in shares.iter().enumerate() {
                if idx.contains(&j) {
                    continue;
                }
                let coeffs = shamir::lagrange::<T::Field>(&points, s.position)?;
                if s.commitments_digest != digest || shamir::combine(&coeffs, &first) != s.verifier
                {
                    off.push(s.position);
                }
            }
            if k - off.len() >= needed {
                let pairs: Vec<(u8, &[T::Field])> = points.iter().copied().zip(first).collect();
                let verifier = shamir::reconstruct(&pairs, params.t)?;
                off.sort_unstable();
                return Ok((typ.decide(&verifier)?, off));
            }
        }
        if !next_subset(&mut idx, k) {
            break;
        }
    }
    Err(ValidityError::Undecodable)
}
