//! Validity proofs in the engine (issue 17): a contributor proves that its contribution
//! satisfies the query's validity circuit, each member of its leaf group computes its verifier
//! share, the members exchange them, and every share heard (all `g`, or at least `t` when
//! collection ends) decides whether the contribution may enter a manifest, a member off the
//! polynomial most of them lie on being named ([`try_decide`]) (`crate::validity` has the
//! proof system on Shamir shares).
//!
//! **Statement.** Validity is on for a request whose query text compiles to exactly its
//! contribution spec. The statement is the query's whole validity circuit
//! (`query::circuit`) as one prio type, [`CircuitType`]: one fully linear proof covers every
//! range (by bits), indicator, `IndicatorOf`, `AtMost` (`LIMIT PER CONTRIBUTOR`, one `GROUP BY`
//! key per record) and `NormAtMost` check (a norm without a per-coordinate witness: its
//! wraparound checks draw their projections from a seed derived from commitments to the
//! vector's shares, `validity::prove_staged_tied_and_share` and `verifier_share_staged`). With DP
//! noise (`WITH PRIVACY`) the contributor's noise travels as a separate part of the proven input, each element within the noise's tail
//! (`CircuitType::with_noise(circuit, NoiseSpec::tail)`, the bound at which `dp::noise` cuts
//! every honest draw), and the aggregated vector is the vector plus its noise.
//!
//! **The proven vector is the aggregated one (the tie).** Grove's shares live in prio's
//! `Field64` (`field.rs`: the same integers). The proven input starts with the contribution
//! vector (then the noise part, then the witness bits) and its `truncate` is the aggregated
//! vector; the contributor writes, at every position, the vector part of the input share as the
//! aggregated share itself (with noise: the noise part as the aggregated share minus the vector
//! share), `CircuitType::tie` through `validity::prove_staged_tied_and_share`, so that `truncate` of
//! the input share *is* the aggregated share, position by position. The tied elements do not
//! travel: each member rebuilds them from the aggregated share it holds (`CircuitType::retie`;
//! positions `1..t` get a seed for the rest, `validity::expand_seed_share_untied`: the tied
//! elements are never drawn), so it verifies
//! once both shares are here (a validity share that comes first waits in
//! `LeafValidity::waiting`). A contributor that proves one vector and shares another fails its
//! own commitment at every position where the two sharings differ (at least `g - t + 1` of
//! them, since two different polynomials of degree `< t` agree on at most `t - 1` points), so
//! at most `t - 1` members hold its share and it is in no manifest.
//!
//! **Query randomness.** Derived from the contribution (`validity::derived_query_seed`: the
//! hash of the context and of the commitments to every input and proof share, Prio3's
//! derivation), so the members need no extra round; the contributor can grind it
//! (ARCHITECTURE.md, "Validity proofs").
//!
//! **State and the drain rule.** A member keeps a contributor's share aside (`pending`) until
//! the decision; only then is it persisted (`Record::ShareHeld`) and counted as held, so
//! `Role::items` and the leaf's accounting see valid contributions only. The pending share,
//! this member's verifier share and those heard are never persisted (like count shares): a
//! restart loses them, and the contributor is then missing from this member's report (a
//! liveness cost, never a wrong inclusion). Verifier shares are a deterministic function of
//! what the contributor sent, so nothing sent can contradict a later restart.

use super::collection::{check_contributor_share, open_payload};
use super::role::{check_position, is_candidate, my_role_in, Stage};
use super::{slot, Computation, Ctx, Engine, Pending, Rejection};
use crate::dp::NoiseSpec;
use crate::field::{FieldVec, Fp};
use crate::ids::{hash_parts, ComputationId, GroupId, Micros, NodeId, Position};
use crate::limits::{MAX_CONTRIBUTORS_PER_LEAF, MAX_VERIFIER_BATCH_LEN};
use crate::message::{
    Body, ShareMsg, ValidityPart, ValidityPayload, ValidityShare, VerifierEntry, VerifierShareMsg,
};
use crate::query::Query;
use crate::record::Record;
use crate::request::Request;
use crate::sharing::{rotation_of, share_vector_rotated, CompressedShare, SharingParams};
use crate::validity::circuit::{CircuitError, CircuitType};
use crate::validity::{self, MemberShare, VerifierShare};
use prio::field::{Field64, FieldElement};
use prio::flp::{Flp, FlpError, Type};
use std::collections::BTreeMap;

/// One member's verifier share of a contribution: elements and the digest of the commitments
/// it used (on the wire, the one entry of `VerifierShareMsg::parts`).
type Verifier = (Vec<u64>, [u8; 32]);

/// A test-only lie of a contributor (`Engine::lie_in_contribution`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidityLie {
    /// Encodes its values without clipping them to their bounds (indicators included).
    Unclipped,
    /// Proves its (honest) vector with a forged proof: its first element plus one, shared and
    /// committed to like an honest proof (`validity::prove_staged_tied_and_share` with `forge`).
    ForgedProof,
    /// Proves its honest vector, and sends as its aggregated shares a sharing of another one
    /// (its first element plus 1,000,000; same seed): the gap a proof on a copy leaves open.
    SharesOther,
    /// As a leaf member: sends the other positions verifier shares off by one at their first
    /// element (its own decisions stay honest), to get honest contributions rejected.
    WrongVerifierShare,
    /// Multiplies every element of its encoded vector by this factor before sharing and
    /// proving (an honest proof of the inflated vector): a `GROUP BY` cell's contributor
    /// indicator of `n` lifts that cell towards `k_min` beside a single honest owner.
    Inflate(u32),
    /// Encodes its values unclipped (as `Unclipped`) and forges a proof that passes at the
    /// query randomness it would know if that randomness were fixed when the request is
    /// (`request_time_seed`): it solves the verifier's affine equations for two coordinates of
    /// its proof (`forge_at`). It fails when the randomness comes after its proof is fixed, as
    /// it does (`validity::derived_query_seed`).
    KnowsQueryRandomness,
    /// A fault, not a lie: this node's proof jobs panic (a bug in the proving code, as the
    /// driver must survive). The job reports the failure (`Panicked`) and the contribution's
    /// proof is asked for again by the next re-send.
    ProofPanics,
    /// A fault, not a lie: this node's verification jobs panic, as a leaf member. The job
    /// reports the failure and the contributor's validity share, re-sent, is verified again.
    VerificationPanics,
}

/// A job that panicked (a bug in the code it runs): it reports this instead of its result, so
/// that the engine clears its bookkeeping (`Contribution::proving`, `LeafValidity::
/// verifying`) and the work can be asked for again; without it a panicking job left that
/// entry set for the computation's life, and the contribution out at that node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Panicked;

/// Runs `work`, catching a panic (`Panicked`): the job's inputs are its own, so nothing of
/// the engine is left half-changed by it.
fn caught<R>(work: impl FnOnce() -> R) -> Result<R, Panicked> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|_| Panicked)
}

/// What a valid contribution to one request satisfies: the query's validity circuit as one
/// prio type, and the DP noise the contributor adds (outside the proven vector), if any.
#[derive(Debug, PartialEq)]
pub(super) struct Statement {
    /// `Err` when the query requires proofs but none can be made (its circuit is over the
    /// validity limits, `CircuitError::TooLarge`, or cannot be built): then no contribution
    /// is held, since none could be checked ([`hold_share`]).
    typ: Result<CircuitType, CircuitError>,
    noise: Option<NoiseSpec>,
}

/// The validity statement of `request`, if validity is on for it (see the module text): `None`
/// for a request without query text, or whose query does not compile to its contribution
/// spec. A query that compiles to its spec requires proofs: if its circuit cannot be proven
/// (`CircuitType::of_query` fails) the statement says so, and the leaf holds nothing.
pub(super) fn statement(request: &Request) -> Option<Statement> {
    if request.query.is_empty() {
        return None;
    }
    let compiled = Query::parse(&request.query).ok()?.compile().ok()?;
    if compiled.spec() != &request.contribution {
        return None;
    }
    Some(Statement {
        typ: CircuitType::of_query(&compiled),
        noise: request.contribution.noise.clone(),
    })
}

fn context(id: &ComputationId, contributor: &NodeId) -> Vec<u8> {
    let mut c = Vec::with_capacity(64);
    c.extend_from_slice(&id.0);
    c.extend_from_slice(&contributor.0);
    c
}

/// Position `s.position`'s validity share as it travels: its seed if it has one (positions
/// `1..t`), else its input share without the tied elements, and its proof share.
fn to_wire(typ: &CircuitType, s: MemberShare<Field64>, seed: Option<[u8; 32]>) -> ValidityPart {
    let fixed = |v: Vec<Field64>| FieldVec(v.into_iter().map(Fp::from_field64).collect());
    let share = match seed {
        Some(seed) => ValidityShare::Seed(seed),
        None => ValidityShare::Full {
            input: fixed(typ.untied(&s.input)),
            proof: fixed(s.proof),
        },
    };
    ValidityPart {
        share,
        blind: s.blind,
        commitments: s.commitments,
        proof_commitments: s.proof_commitments,
    }
}

/// Canonical `u64`s as `Field64` elements; `None` if one is not canonical.
fn from_wire(v: &[u64]) -> Option<Vec<Field64>> {
    v.iter()
        .map(|x| Field64::try_from(x.to_le_bytes().as_slice()).ok())
        .collect()
}

fn f64s(v: &[Fp]) -> Vec<Field64> {
    v.iter().map(|x| x.to_field64()).collect()
}

/// The contributor's validity shares, one per position `1..=g`: its proven `vector` and
/// `noise` (empty without DP), tied to its aggregated shares (`shares[p - 1]`, the full share
/// of position `p` of `vector + noise`).
#[allow(clippy::too_many_arguments)]
fn prove(
    st: &Statement,
    id: ComputationId,
    me: NodeId,
    params: SharingParams,
    vector: &[Fp],
    noise: &[Fp],
    shares: &[Vec<Field64>],
    seed: &[u8; 32],
    lie: Option<ValidityLie>,
    stage_commitments: Option<Vec<[u8; 32]>>,
) -> Option<Vec<ValidityPart>> {
    let typ = st.typ.as_ref().ok()?;
    let input = typ.encode_for_proof_from(
        vector.iter().map(|x| x.to_field64()),
        noise.iter().map(|x| x.to_field64()),
    );
    let ctx = context(&id, &me);
    let shared = if lie == Some(ValidityLie::KnowsQueryRandomness) {
        // Test-only: a proof made for the randomness it expects (see `forge_at`).
        let fixed = FixedProof {
            inner: typ.clone(),
            query: validity::query_randomness(typ, &request_time_seed(&ctx), &ctx),
        };
        validity::prove_staged_tied_and_share_committed(
            &fixed,
            input,
            params,
            &ctx,
            seed,
            false,
            shares,
            stage_commitments,
        )
    } else {
        let forge = lie == Some(ValidityLie::ForgedProof);
        validity::prove_staged_tied_and_share_committed(
            typ,
            input,
            params,
            &ctx,
            seed,
            forge,
            shares,
            stage_commitments,
        )
    }
    .ok()?;
    let seeds = shared.seeds;
    Some(
        shared
            .shares
            .into_iter()
            .map(|sh| {
                let seed = seeds.get(usize::from(sh.position).wrapping_sub(1)).copied();
                to_wire(typ, sh, seed)
            })
            .collect(),
    )
}

/// The query seed a contributor would know when it proves if the query randomness were fixed
/// when the request is (a function of the request and the contributor only). Grove does not
/// use it: members derive theirs after the proof is fixed (`validity::derived_query_seed`).
/// Only the test lie `KnowsQueryRandomness` computes it.
fn request_time_seed(ctx: &[u8]) -> [u8; 32] {
    hash_parts("grove/validity/request-time-query-seed", &[ctx])
}

/// Test-only: a proof of `input` (invalid) that prio's decision accepts at the query
/// randomness `query` and joint randomness `joint`. For fixed randomness the verifier is an
/// affine map of the proof; among the proof's coordinates that move only the circuit's output
/// (entry 0) and the gadget check (last entry), not the wire checks, it takes two and solves
/// the 2x2 system that makes the output zero and the gadget check equal the gadget of the
/// wires. `None` if no such pair is found.
fn forge_at<T: Type<Field = Field64>>(
    typ: &T,
    input: &[Field64],
    query: &[Field64],
    joint: &[Field64],
) -> Option<Vec<Field64>> {
    let prove_rand = vec![Field64::one(); typ.prove_rand_len()];
    let p0 = typ.prove(input, &prove_rand, joint).ok()?;
    let v0 = typ.query(input, &p0, query, joint, 1).ok()?;
    let last = v0.len().checked_sub(1)?;
    let wires = v0.get(1..last)?.to_vec();
    let g0 = typ.gadget().first_mut()?.eval(&wires).ok()?;
    let mut cols = Vec::new();
    for j in 0..p0.len() {
        let mut p = p0.clone();
        p[j] += Field64::one();
        let v = typ.query(input, &p, query, joint, 1).ok()?;
        let d: Vec<Field64> = v.iter().zip(&v0).map(|(a, b)| *a - *b).collect();
        if d[1..last].iter().all(|x| *x == Field64::zero()) {
            cols.push((j, d[0], d[last]));
        }
    }
    let (e1, e2) = (-v0[0], g0 - v0[last]);
    for (a, &(j1, o1, l1)) in cols.iter().enumerate() {
        for &(j2, o2, l2) in &cols[a + 1..] {
            let det = o1 * l2 - o2 * l1;
            if det == Field64::zero() {
                continue;
            }
            let x = (e1 * l2 - o2 * e2) * det.inv();
            let y = (o1 * e2 - e1 * l1) * det.inv();
            let mut p = p0.clone();
            p[j1] += x;
            p[j2] += y;
            let v = typ.query(input, &p, query, joint, 1).ok()?;
            if typ.decide(&v).ok()? {
                return Some(p);
            }
        }
    }
    None
}

/// Test-only: a circuit that proves with `forge_at`'s proof for the query randomness `query`,
/// so that `validity::prove_staged_tied_and_share` shares and commits to it as to an honest one (it
/// passes it the joint randomness of the committed input shares).
#[derive(Clone, Debug, PartialEq, Eq)]
struct FixedProof {
    inner: CircuitType,
    query: Vec<Field64>,
}

impl Flp for FixedProof {
    type Field = Field64;
    fn gadget(&self) -> Vec<Box<dyn prio::flp::Gadget<Field64>>> {
        self.inner.gadget()
    }
    fn num_gadgets(&self) -> usize {
        self.inner.num_gadgets()
    }
    fn valid(
        &self,
        gadgets: &mut Vec<Box<dyn prio::flp::Gadget<Field64>>>,
        input: &[Field64],
        joint_rand: &[Field64],
        num_shares: usize,
    ) -> Result<Vec<Field64>, FlpError> {
        self.inner.valid(gadgets, input, joint_rand, num_shares)
    }
    fn input_len(&self) -> usize {
        self.inner.input_len()
    }
    fn proof_len(&self) -> usize {
        self.inner.proof_len()
    }
    fn verifier_len(&self) -> usize {
        self.inner.verifier_len()
    }
    fn joint_rand_len(&self) -> usize {
        self.inner.joint_rand_len()
    }
    fn eval_output_len(&self) -> usize {
        self.inner.eval_output_len()
    }
    fn prove_rand_len(&self) -> usize {
        self.inner.prove_rand_len()
    }
    fn prove(
        &self,
        input: &[Field64],
        _prove_rand: &[Field64],
        joint_rand: &[Field64],
    ) -> Result<Vec<Field64>, FlpError> {
        forge_at(&self.inner, input, &self.query, joint_rand)
            .ok_or_else(|| FlpError::Prove("no forgery at this randomness".into()))
    }
}

impl validity::Staged for FixedProof {
    fn stage_len(&self) -> usize {
        self.inner.stage_len()
    }
    fn staged(&self, seed: &[u8; 32]) -> FixedProof {
        FixedProof {
            inner: self.inner.staged(seed),
            query: self.query.clone(),
        }
    }
    fn complete(&self, input: &mut [Field64]) {
        self.inner.complete(input)
    }
}

impl validity::Tied for FixedProof {
    fn tied(&self) -> std::ops::Range<usize> {
        self.inner.tied()
    }
    fn tie(&self, aggregated: &[Field64], input_share: &mut [Field64]) {
        self.inner.tie(aggregated, input_share)
    }
}

impl Type for FixedProof {
    type Measurement = Vec<Field64>;
    type AggregateResult = Vec<Field64>;
    fn encode_measurement(&self, m: &Vec<Field64>) -> Result<Vec<Field64>, FlpError> {
        self.inner.encode_measurement(m)
    }
    fn truncate(&self, input: Vec<Field64>) -> Result<Vec<Field64>, FlpError> {
        self.inner.truncate(input)
    }
    fn decode_result(&self, data: &[Field64], n: usize) -> Result<Vec<Field64>, FlpError> {
        self.inner.decode_result(data, n)
    }
    fn output_len(&self) -> usize {
        self.inner.output_len()
    }
}

/// The first `len` elements of a share (fewer if a full vector is shorter): a seed's
/// expansion is a stream, so its prefix is the expansion of the prefix.
fn share_prefix(share: &CompressedShare, len: usize) -> Vec<Fp> {
    match share {
        CompressedShare::Seed(_) => share.expand(len),
        CompressedShare::Full(v) => v.0[..len.min(v.0.len())].to_vec(),
    }
}

/// Which positions' validity shares leave when the proof job is done
/// (`Contribution::proving`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Wanted {
    All,
    Only(std::collections::BTreeSet<Position>),
}

impl Wanted {
    fn of(only: Option<Position>) -> Wanted {
        match only {
            None => Wanted::All,
            Some(p) => Wanted::Only([p].into()),
        }
    }

    /// Adds `only`'s positions (every position if `None`).
    fn add(&mut self, only: Option<Position>) {
        match (&mut *self, only) {
            (Wanted::All, _) => {}
            (Wanted::Only(_), None) => *self = Wanted::All,
            (Wanted::Only(set), Some(p)) => {
                set.insert(p);
            }
        }
    }

    fn contains(&self, position: Position) -> bool {
        match self {
            Wanted::All => true,
            Wanted::Only(set) => set.contains(&position),
        }
    }
}

/// **The proof as a job.** A contributor's proof is CPU work (tens of milliseconds at the
/// largest vectors) that the engine does not do while it handles an input: it emits it as a
/// job (`Output::Work`) that owns its inputs, the driver runs it (the daemon off its event
/// loop, the harness and the simulator inline), and its result comes back as an input
/// (`Engine::handle_job_done`), whose validity shares then leave. Meanwhile the engine handles
/// every other input; the shares themselves leave at once (a member keeps one pending until
/// its validity share comes). At most one job per contribution is out (`Contribution::
/// proving`): a re-send asked for meanwhile (a share query, a failover) only adds its position
/// to those the job is for. Its validity shares are kept in memory once it is done
/// (`Contribution::proved`), so a later re-send seals them again and proves nothing: a flood
/// of share queries or failovers costs no proof. Nothing is persisted: a restart loses the job
/// and the kept shares, and restoring re-sends the shares, which asks for the proof once
/// again; a result for a computation that ended or for another contribution is dropped
/// (`on_proved`).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct ProveJob {
    st: std::sync::Arc<Statement>,
    id: ComputationId,
    me: NodeId,
    params: SharingParams,
    /// The contributor's rotation of the positions that get seeds (`sharing::rotation_of`).
    rotation: u8,
    /// The persisted contribution: its vector (with its DP noise) and seed.
    vector: Vec<Fp>,
    seed: [u8; 32],
    lie: Option<ValidityLie>,
}

/// A proof job's result: the validity shares of every position, `None` if none could be made;
/// `Err` if the job panicked.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Proved {
    id: ComputationId,
    /// The seed of the contribution it proves.
    seed: [u8; 32],
    parts: Result<Option<Vec<ValidityPart>>, Panicked>,
}

impl ProveJob {
    pub(super) fn computation(&self) -> ComputationId {
        self.id
    }

    /// The proof: the validity shares of every position, tied to the aggregated shares (a
    /// panic is reported, `Panicked`).
    pub(super) fn run(self) -> Proved {
        Proved {
            id: self.id,
            seed: self.seed,
            parts: caught(|| self.parts()),
        }
    }

    fn parts(&self) -> Option<Vec<ValidityPart>> {
        if self.lie == Some(ValidityLie::ProofPanics) {
            panic!("test-only fault: a proof job panics");
        }
        let st = &self.st;
        let proof_seed = hash_parts("grove/validity/contribution", &[&self.seed]);
        // The proven vector is the persisted one minus its DP noise, which is a function of
        // the persisted seed (`dp::noise`, as `contribute` added it).
        let noise: Vec<Fp> = st.noise.as_ref().map_or_else(Vec::new, |spec| {
            crate::dp::noise(&self.seed, spec, self.vector.len())
                .into_iter()
                .map(Fp::from_i64)
                .collect()
        });
        let vector: std::borrow::Cow<[Fp]> = if noise.is_empty() {
            std::borrow::Cow::Borrowed(&self.vector)
        } else {
            self.vector
                .iter()
                .zip(&noise)
                .map(|(x, n)| *x - *n)
                .collect()
        };
        // The aggregated shares exactly as `send_shares_to` makes them (honest ones under the
        // `SharesOther` lie, which changes only what that function sends).
        let len = self.vector.len();
        // Without noise the first stage of every position's input share is its aggregated
        // share (the tie writes it there): its stage commitment is hashed from the engine's
        // canonical elements as they are converted, as a member's own is
        // (`validity::prove_staged_tied_and_share_committed`).
        let hash_stages = noise.is_empty()
            && len > 0
            && st.typ.as_ref().is_ok_and(|typ| {
                validity::Staged::stage_len(typ) == len && validity::Tied::tied(typ) == (0..len)
            });
        let (shares, stages) = aggregated_shares_for_proof(
            &self.vector,
            self.params,
            self.seed,
            self.rotation,
            hash_stages.then_some(&proof_seed),
        );
        prove(
            st,
            self.id,
            self.me,
            self.params,
            &vector,
            &noise,
            &shares,
            &proof_seed,
            self.lie,
            stages,
        )
    }
}

/// A contributor's aggregated shares of `vector` exactly as `send_shares_to` makes them (from
/// `seed`, at `rotation`), each in prio's field, for its proof (the proof job's first step;
/// `grove-sim crypto-cost` times it with the proof). With `stage_blind_seed`, each position's
/// first-stage commitment is hashed from the engine's canonical elements on the way
/// (`validity::stage_commitment_hasher` at `validity::blind(stage_blind_seed, p)`): one per
/// position, `None` if a share was short or without the seed.
pub fn aggregated_shares_for_proof(
    vector: &[Fp],
    params: SharingParams,
    seed: [u8; 32],
    rotation: u8,
    stage_blind_seed: Option<&[u8; 32]>,
) -> (Vec<Vec<Field64>>, Option<Vec<[u8; 32]>>) {
    let len = vector.len();
    let mut stages = Vec::new();
    let shares = share_vector_rotated(vector, params, seed, rotation)
        .iter()
        .zip(1..)
        .map(|(s, position)| {
            let mut h = stage_blind_seed.map(|b| {
                validity::stage_commitment_hasher(position, &validity::blind(b, position), len * 8)
            });
            let share = share_prefix_f64_in(s, len, len, h.as_mut());
            stages.extend(h.map(validity::ElementsHash::finish));
            share
        })
        .collect();
    let stages = stage_blind_seed.and_then(|_| stages.into_iter().collect());
    (shares, stages)
}

/// [`share_prefix`] in prio's field, converted without an intermediate copy, in a vector of
/// at least `capacity` elements: a verification appends the rest of the input share to it
/// (`CircuitType::retie_owned`), which then needs no reallocation (a copy of the whole share,
/// 1 MB at 131,072). A seed is expanded a block at a time into it
/// (`CompressedShare::for_each_block`), not into a vector of its own first. With `hash`, the
/// canonical encodings of the elements are hashed into it on the way
/// (`validity::stage_commitment_hasher`: this field's elements are canonical `u64`s,
/// `Field64`'s encoding, so prio's elements need no conversion out of their Montgomery form
/// to be hashed).
fn share_prefix_f64_in(
    share: &CompressedShare,
    len: usize,
    capacity: usize,
    mut hash: Option<&mut validity::ElementsHash>,
) -> Vec<Field64> {
    let mut bytes = [0u8; crate::sharing::EXPAND_BLOCK * 8];
    let full_len = match share {
        CompressedShare::Seed(_) => len,
        CompressedShare::Full(v) => len.min(v.0.len()),
    };
    let mut out = Vec::with_capacity(capacity.max(full_len));
    share.for_each_block(len, |block| {
        out.extend(block.iter().map(|x| x.to_field64()));
        if let Some(h) = hash.as_deref_mut() {
            for (b, x) in bytes.chunks_exact_mut(8).zip(block) {
                b.copy_from_slice(&x.value().to_le_bytes());
            }
            h.update(&bytes[..block.len() * 8]);
        }
    });
    out
}

/// Whether `a` and `b` have the same first `len` elements (both at least that long, or
/// equally short): equal shares without expanding them.
fn same_prefix(a: &CompressedShare, b: &CompressedShare, len: usize) -> bool {
    if a == b {
        return true;
    }
    match (a, b) {
        (CompressedShare::Full(x), CompressedShare::Full(y)) => {
            x.0[..len.min(x.0.len())] == y.0[..len.min(y.0.len())]
        }
        _ => share_prefix(a, len) == share_prefix(b, len),
    }
}

/// A leaf member's validity bookkeeping for one position (`Role::validity`).
#[derive(Default)]
pub(super) struct LeafValidity {
    /// Shares received whose contributor is not decided yet.
    pending: BTreeMap<NodeId, CompressedShare>,
    /// Validity shares received before their contributor's aggregated share (with the lie
    /// this member tells, test-only): verified when it comes (`hold_share`).
    waiting: BTreeMap<NodeId, (Vec<ValidityPart>, Option<ValidityLie>)>,
    /// Contributors whose verification is out as a job (`VerifyJob`), with the lie this
    /// member tells (test-only): at most one job per contributor. Never persisted.
    verifying: BTreeMap<NodeId, Option<ValidityLie>>,
    /// This member's verifier share, per contributor.
    own: BTreeMap<NodeId, Verifier>,
    /// The aggregated share this member's input share was rebuilt from, with its length (the
    /// vector's), per contributor: the share it holds must be this one. Its input share
    /// implies exactly it (`truncate` of the retied input share is the aggregated share it was
    /// tied to, `CircuitType::retie`), so the share is kept instead of the implied vector:
    /// comparing a seed is 32 bytes, not an expansion.
    implied: BTreeMap<NodeId, (CompressedShare, usize)>,
    /// Other positions' verifier shares, per contributor, with the node that sent each.
    heard: BTreeMap<NodeId, BTreeMap<Position, (NodeId, Verifier)>>,
    /// Decisions: `true` valid.
    decided: BTreeMap<NodeId, bool>,
    /// Verifier shares computed and not sent yet (the batch, as sent: with this member's
    /// test-only lie), in the order computed; at most one per contributor, since `own` is.
    unsent: Vec<(NodeId, Verifier)>,
    /// Verifier elements in `unsent`.
    unsent_len: usize,
    /// When the oldest entry of `unsent` was computed.
    unsent_since: Option<Micros>,
}

/// The hook of `collection::on_share`: a share that passed its checks is held (persisted) at
/// once when validity is off for the request, or its contributor was decided valid, or it is
/// re-sent for a manifest already adopted; kept aside until the decision otherwise; dropped
/// if the contributor was decided invalid.
pub(super) fn hold_share(
    comp: &mut Computation,
    key: crate::message::Slot,
    contributor: NodeId,
    share: CompressedShare,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), Rejection> {
    let id = comp.id();
    let on = comp.validity.is_some();
    let unprovable = comp.validity.as_ref().is_some_and(|st| st.typ.is_err());
    let Some(role) = comp.roles.get_mut(&key) else {
        return Ok(());
    };
    let collecting = matches!(role.stage, Stage::Collecting);
    if unprovable {
        // The query requires proofs and none can be made: no contribution is held (nor can
        // a re-sent one be, for a manifest: none names it). Accounted like a decline, so the
        // leaf does not wait for it.
        if role.validity.decided.len() < MAX_CONTRIBUTORS_PER_LEAF {
            role.validity.decided.insert(contributor, false);
        }
        if role.declined.len() < MAX_CONTRIBUTORS_PER_LEAF {
            role.declined.insert(contributor);
        }
        return Err(Rejection::UnprovableRequest);
    }
    match role.validity.decided.get(&contributor) {
        _ if !on || !collecting => {}
        Some(true) => {
            if !role.validity.tie_holds(&contributor, &share) {
                // The proof was about another vector than this share's: not held.
                role.validity.decided.insert(contributor, false);
                if role.declined.len() < MAX_CONTRIBUTORS_PER_LEAF {
                    role.declined.insert(contributor);
                }
                return Err(Rejection::InvalidContribution);
            }
        }
        Some(false) => return Ok(()),
        None => {
            if role.validity.pending.len() < MAX_CONTRIBUTORS_PER_LEAF {
                role.validity.pending.insert(contributor, share);
            }
            // Its validity share came first: verified now that its input share can be rebuilt.
            if let Some((parts, lie)) = role.validity.waiting.remove(&contributor) {
                return start_verify(comp, key, contributor, parts, lie, ctx);
            }
            return Ok(());
        }
    }
    records.push(Pending::Record(Record::ShareHeld {
        computation: id,
        group: key.group,
        position: key.position,
        contributor,
        share,
    }));
    Ok(())
}

impl LeafValidity {
    /// Whether `share` is the aggregated share that this member's input share of
    /// `contributor` implies (`truncate` of it); `false` if it is not known yet.
    fn tie_holds(&self, contributor: &NodeId, share: &CompressedShare) -> bool {
        let Some((implied, len)) = self.implied.get(contributor) else {
            return false;
        };
        same_prefix(share, implied, *len)
    }
}

/// A contributor's validity share for this member's position: checked, and its verification
/// asked for (`start_verify`) once its aggregated share is here too.
pub(super) fn on_validity_share(
    comp: &mut Computation,
    from: NodeId,
    m: ShareMsg,
    lie: Option<ValidityLie>,
    ctx: &mut Ctx,
) -> Result<(), Rejection> {
    let key = check_contributor_share(comp, from, &m)?;
    let id = comp.id();
    if comp.validity.is_none() {
        return Err(Rejection::MalformedValidityShare);
    }
    {
        let role = comp.roles.get(&key).ok_or(Rejection::NoRole)?;
        if role.validity.own.contains_key(&m.contributor)
            || role.validity.verifying.contains_key(&m.contributor)
            || role.validity.decided.contains_key(&m.contributor)
            || role.validity.waiting.contains_key(&m.contributor)
        {
            return Ok(()); // re-sent
        }
        if !matches!(role.stage, Stage::Collecting) {
            return Err(Rejection::ShareAfterCollection);
        }
        if role.validity.own.len() + role.validity.verifying.len() >= MAX_CONTRIBUTORS_PER_LEAF
            || role.validity.waiting.len() >= MAX_CONTRIBUTORS_PER_LEAF
        {
            return Err(Rejection::LeafFull);
        }
    }
    let payload: ValidityPayload = open_payload(ctx, id, &m, |p: &ValidityPayload| {
        (p.computation, p.group, p.position, p.contributor)
    })?;
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
    if !role.validity.pending.contains_key(&m.contributor) {
        // Its input share is rebuilt from the aggregated share (`CircuitType::retie`): it waits
        // for it (bounded like `own`, checked above).
        role.validity
            .waiting
            .insert(m.contributor, (payload.parts, lie));
        return Ok(());
    }
    start_verify(comp, key, m.contributor, payload.parts, lie, ctx)
}

/// The computation's validity statement (none: no validity share can fit) and its sharing.
fn statement_and_params(
    comp: &Computation,
) -> Result<(std::sync::Arc<Statement>, SharingParams), Rejection> {
    let st = comp
        .validity
        .clone()
        .ok_or(Rejection::MalformedValidityShare)?;
    let params = SharingParams {
        g: comp.plan.g,
        t: comp.plan.t,
    };
    Ok((st, params))
}

/// Asks for this member's verifier share of `contributor` (whose aggregated share is pending
/// here) from its validity share `parts`: a job (`VerifyJob`, see "The member's verification
/// as a job"), at most one per contributor; its result comes back to [`Engine::on_verified`].
fn start_verify(
    comp: &mut Computation,
    key: crate::message::Slot,
    contributor: NodeId,
    parts: Vec<ValidityPart>,
    lie: Option<ValidityLie>,
    ctx: &mut Ctx,
) -> Result<(), Rejection> {
    let id = comp.id();
    let (st, params) = statement_and_params(comp)?;
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
    let Some(share) = role.validity.pending.get(&contributor).cloned() else {
        // No aggregated share to rebuild its input share from (the pending ones were at their
        // bound): decided invalid at once, as the inline verification did.
        decide_now(role, key, id, contributor, false, ctx, &mut Vec::new());
        return Err(Rejection::MalformedValidityShare);
    };
    if role.validity.verifying.contains_key(&contributor) {
        return Ok(());
    }
    role.validity.verifying.insert(contributor, lie);
    let job = VerifyJob {
        st,
        id,
        key,
        contributor,
        params,
        parts,
        share,
        panics: lie == Some(ValidityLie::VerificationPanics),
    };
    ctx.out
        .push_back(super::Output::Work(super::Job::verify(job)));
    Ok(())
}

/// **The member's verification as a job.** A leaf member's verifier share of one contributor
/// (`verify_own`: 1 to 16 ms at the largest vectors) is CPU work done off the input that
/// brought the validity share, like the contributor's proof: `start_verify` emits it as a job
/// that owns its inputs (the validity share and a copy of the pending aggregated share), the
/// driver runs it, and its result comes back through `Engine::handle_job_done` to
/// [`Engine::on_verified`], which sends the verifier share (batched) and tries the decision
/// exactly as the inline verification did. Meanwhile the member handles every other input.
/// At most one job per (role, contributor) is out (`LeafValidity::verifying`; a validity share
/// re-sent meanwhile is ignored). A result is dropped if its computation ended, the role is
/// no longer held (or no longer collecting), the contributor was decided meanwhile, or the job
/// was not asked for by this engine since its start (a restart). Nothing is persisted: the
/// pending share and the validity share were not either, so a restart loses them as before
/// (the contributor is missing from this member's report unless it sends them again).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct VerifyJob {
    st: std::sync::Arc<Statement>,
    id: ComputationId,
    key: crate::message::Slot,
    contributor: NodeId,
    params: SharingParams,
    /// The contributor's validity share for this position.
    parts: Vec<ValidityPart>,
    /// The aggregated share this member holds (pending) from the contributor.
    share: CompressedShare,
    /// Test-only fault (`ValidityLie::VerificationPanics`): the job panics.
    panics: bool,
}

/// A verification job's result: this member's verifier share with the length of the vector
/// (`None` if the validity share does not fit; `Err` if the job panicked), and the aggregated
/// share it was tied to.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Verified {
    id: ComputationId,
    key: crate::message::Slot,
    contributor: NodeId,
    share: CompressedShare,
    verifier: Result<Option<(Verifier, usize)>, Panicked>,
}

impl VerifyJob {
    pub(super) fn computation(&self) -> ComputationId {
        self.id
    }

    /// The verification: the aggregated share expanded to the vector's length, the input share
    /// rebuilt from it, and this member's verifier share (a panic is reported, `Panicked`).
    pub(super) fn run(self) -> Verified {
        let verifier = caught(|| self.verifier());
        Verified {
            id: self.id,
            key: self.key,
            contributor: self.contributor,
            share: self.share,
            verifier,
        }
    }

    fn verifier(&self) -> Option<(Verifier, usize)> {
        if self.panics {
            panic!("test-only fault: a verification job panics");
        }
        self.st.typ.as_ref().ok().and_then(|typ| {
            let len = typ.vector_len();
            // Without noise the first stage of the input share is the aggregated share itself
            // (the tie writes it there, `CircuitType::retie_owned`): this member's stage
            // commitment is hashed from it as it is converted.
            let mut stage = match &self.parts[..] {
                [w] if typ.noise_len() == 0
                    && validity::Staged::stage_len(typ) == len
                    && len > 0 =>
                {
                    Some(validity::stage_commitment_hasher(
                        self.key.position,
                        &w.blind,
                        len * 8,
                    ))
                }
                _ => None,
            };
            let held = share_prefix_f64_in(&self.share, len, typ.input_len(), stage.as_mut());
            if held.len() != len {
                return None;
            }
            verify_own(
                &self.st,
                self.id,
                self.contributor,
                self.key.position,
                self.params,
                &self.parts,
                held,
                stage.and_then(validity::ElementsHash::finish),
            )
            .map(|v| (v, len))
        })
    }
}

impl Engine {
    /// A verification job's result (`Engine::handle_job_done`, see "The member's verification
    /// as a job"): the verifier share is kept, sent (batched) and a decision tried; a validity
    /// share that did not fit decides the contributor invalid. Dropped if this engine no longer
    /// waits for it. A job that panicked (`Panicked`) only clears its entry: nothing is
    /// decided (a bug here says nothing of the contributor), the aggregated share stays
    /// pending, and the validity share, when re-sent (a share query, a failover), is verified
    /// again.
    pub(super) fn on_verified(&mut self, v: Verified) {
        let id = v.id;
        let Some(comp) = self.computations.get_mut(&id) else {
            return;
        };
        let Some(role) = comp.roles.get_mut(&v.key) else {
            return;
        };
        let Some(lie) = role.validity.verifying.remove(&v.contributor) else {
            return;
        };
        let Ok(verifier) = v.verifier else {
            self.advance(id);
            return;
        };
        if role.validity.decided.contains_key(&v.contributor)
            || !matches!(role.stage, Stage::Collecting)
        {
            return;
        }
        let mut ctx = ctx!(self);
        let mut records = Vec::new();
        let contributor = v.contributor;
        let verified = verifier.map(|(verifier, len)| (verifier, (v.share, len)));
        if let Err(reason) = finish_verify(
            comp,
            v.key,
            contributor,
            verified,
            lie,
            &mut ctx,
            &mut records,
        ) {
            ctx.reject(contributor, "validity-share", reason);
        }
        self.commit(records);
        self.advance(id);
    }
}

/// The rest of the verification, once its job is done: keeps this member's verifier share
/// `verified` of `contributor` (with the aggregated share its input share implies), sends it
/// to the other positions (batched) and tries to decide; decides invalid at once if the
/// validity share did not fit (`None`).
fn finish_verify(
    comp: &mut Computation,
    key: crate::message::Slot,
    contributor: NodeId,
    verified: Option<(Verifier, (CompressedShare, usize))>,
    lie: Option<ValidityLie>,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), Rejection> {
    let id = comp.id();
    let (st, params) = statement_and_params(comp)?;
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
    let Some((verifier, implied)) = verified else {
        // Its own share does not fit: the contributor is faulty, whatever the others hold.
        decide_now(role, key, id, contributor, false, ctx, records);
        return Err(Rejection::MalformedValidityShare);
    };
    role.validity.own.insert(contributor, verifier.clone());
    // Bounded like `own` (checked when the job was asked for); `verify_own` checked the
    // input's length.
    role.validity.implied.insert(contributor, implied);
    let mut sent = verifier;
    if lie == Some(ValidityLie::WrongVerifierShare) {
        if let Some(x) = sent.0.first_mut() {
            *x = u64::from(from_wire(&[*x]).map_or(Field64::one(), |f| f[0] + Field64::one()));
        }
    }
    // Batched (see [`flush_verifier_shares`]): a full batch leaves first, so that no message
    // exceeds `MAX_VERIFIER_BATCH_LEN` (one share is far below it, `MAX_VERIFIER_LEN`).
    if role.validity.unsent_len + sent.0.len() > BATCH_FLUSH_LEN {
        send_batch(comp, key, ctx);
    }
    if let Some(role) = comp.roles.get_mut(&key) {
        let v = &mut role.validity;
        v.unsent_len += sent.0.len();
        v.unsent.push((contributor, sent));
        v.unsent_since.get_or_insert(ctx.now);
    }
    try_decide(comp, key, contributor, params, &st, false, ctx, records);
    Ok(())
}

/// Verifier elements at which a leaf member sends its batch at once (about 650 kB on the
/// wire): 356 contributors of a `sum_vector` of 10,000 coordinates, 6 of the largest circuit.
const BATCH_FLUSH_LEN: usize = if MAX_VERIFIER_BATCH_LEN < 1 << 16 {
    MAX_VERIFIER_BATCH_LEN
} else {
    1 << 16
};

/// How long a verifier share waits for others to share its message: 100 ms, or a tenth of
/// the share window if that is shorter.
fn batch_delay(comp: &Computation) -> u64 {
    (comp.request().tree.timeouts.share_window / 10).min(100_000)
}

/// When this member's batch of verifier shares leaves if nothing sends it earlier (the
/// oldest unsent share plus [`batch_delay`]); `None` with nothing unsent. For
/// `aggregator::role_deadline`.
pub(super) fn flush_deadline(comp: &Computation, role: &super::role::Role) -> Option<Micros> {
    role.validity
        .unsent_since
        .map(|since| since.plus(batch_delay(comp)))
}

/// **Batching.** A leaf member sends the verifier shares it computed since its last batch in
/// one `VerifierShareMsg` per other position of its leaf, instead of one per contributor: an
/// acknowledged, persisted message over Noise costs more than the share it carries. The
/// batch leaves at the first of:
///
/// - the oldest share in it waited [`batch_delay`];
/// - nothing more is expected here: every node the directory maps to the leaf was verified,
///   decided or declined at this member (so the last contributor's decision is not delayed);
/// - the leaf's collection is over (the share window ended, or the role left `Collecting`):
///   it leaves before `decide_at_collection_end`, like the shares sent at once did;
/// - it reached `BATCH_FLUSH_LEN` elements (in `finish_verify`).
///
/// A batch is sent once, like a single share was (the driver's acknowledged delivery re-sends
/// it and fails it over to a position's next candidate whole); each entry is checked and
/// counted on its own by the receiver (`on_verifier_share`), so one bad entry costs only
/// itself, and the decision rule (every share heard, each off the polynomial named) is the
/// one the shares had one by one. Batches are not persisted, as the shares were not: a
/// restart loses the unsent ones with the verifier shares they come from.
pub(super) fn flush_verifier_shares(
    comp: &mut Computation,
    key: crate::message::Slot,
    ctx: &mut Ctx,
) {
    let Some(role) = comp.roles.get(&key) else {
        return;
    };
    let Some(since) = role.validity.unsent_since else {
        return;
    };
    let due = ctx.now >= since.plus(batch_delay(comp))
        || !matches!(role.stage, Stage::Collecting)
        || super::collection::collection_over(comp, key, role, ctx.now)
        || nothing_more_expected(comp, key, role);
    if due {
        send_batch(comp, key, ctx);
    }
}

/// Whether every node the directory maps to `key`'s leaf was verified, decided or declined
/// at this member (never without a directory: the leaf's size is unknown).
fn nothing_more_expected(
    comp: &Computation,
    key: crate::message::Slot,
    role: &super::role::Role,
) -> bool {
    let size = comp.plan.leaf_size(key.group) as usize;
    if size == 0 {
        return false;
    }
    let v = &role.validity;
    let mut seen: std::collections::BTreeSet<&NodeId> = v.own.keys().collect();
    seen.extend(v.decided.keys());
    seen.extend(role.declined.iter());
    seen.extend(role.shares.keys());
    seen.len() >= size
}

/// Sends this member's unsent verifier shares, one message to each other position.
fn send_batch(comp: &mut Computation, key: crate::message::Slot, ctx: &mut Ctx) {
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    let v = &mut role.validity;
    let entries: Vec<VerifierEntry> = std::mem::take(&mut v.unsent)
        .into_iter()
        .map(|(contributor, verifier)| VerifierEntry {
            contributor,
            parts: vec![verifier],
        })
        .collect();
    v.unsent_len = 0;
    v.unsent_since = None;
    if entries.is_empty() {
        return;
    }
    let body = Body::VerifierShare(VerifierShareMsg {
        group: key.group,
        position: key.position,
        entries,
    });
    ctx.send_to_group(comp, key, 0, body);
}

/// This member's verifier share of the contribution whose aggregated share here is
/// `aggregated`, or `None` if its validity share does not fit the statement (one part, lengths,
/// canonical elements, its own commitments). Its input share is rebuilt from `aggregated`
/// (`CircuitType::retie`), so that it implies (`truncate`) exactly `aggregated`. `own_stage`:
/// this member's stage commitment if the caller hashed it from `aggregated` already.
#[allow(clippy::too_many_arguments)]
fn verify_own(
    st: &Statement,
    id: ComputationId,
    contributor: NodeId,
    position: Position,
    params: SharingParams,
    parts: &[ValidityPart],
    aggregated: Vec<Field64>,
    own_stage: Option<[u8; 32]>,
) -> Option<Verifier> {
    let [w] = parts else {
        return None;
    };
    let typ = st.typ.as_ref().ok()?;
    let (input, proof) = match &w.share {
        ValidityShare::Seed(seed) => {
            // The stream is the input share without its tied elements, then the proof share
            // (`expand_seed_share_untied` with nothing tied returns the two as drawn): the
            // input share is rebuilt from it in the aggregated share's allocation, as a full
            // position's, instead of in a zeroed buffer that the tie then overwrites.
            let untied_len = typ.input_len().checked_sub(typ.tied().len())?;
            let (untied, proof) =
                validity::expand_seed_share_untied(seed, untied_len, typ.proof_len(), 0..0);
            (typ.retie_owned(&untied, aggregated)?, proof)
        }
        // `FieldVec` decoding refused non-canonical elements.
        ValidityShare::Full { input, proof } => (
            typ.retie_owned(&f64s(&input.0), aggregated)?,
            f64s(&proof.0),
        ),
    };
    let share = MemberShare {
        position,
        input,
        proof,
        blind: w.blind,
        commitments: w.commitments.clone(),
        proof_commitments: w.proof_commitments.clone(),
    };
    let ctx = context(&id, &contributor);
    let seed = validity::derived_query_seed(&ctx, &share);
    let v = validity::verifier_share_staged_committed(typ, params, &share, &ctx, &seed, own_stage)
        .ok()?;
    Some((
        v.verifier.into_iter().map(u64::from).collect(),
        v.commitments_digest,
    ))
}

/// Another leaf position's batch of verifier shares (see [`flush_verifier_shares`]). The
/// message's sender and position are checked once; each entry on its own: one whose
/// contributor is not of this leaf, or whose share has the wrong shape, is refused and counted
/// (`Rejection::UnexpectedVerifierShare`) and the others count. The first share heard from a
/// position for a contributor is kept (a re-sent batch changes nothing).
pub(super) fn on_verifier_share(
    comp: &mut Computation,
    from: NodeId,
    m: VerifierShareMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), Rejection> {
    check_position(comp, m.position)?;
    if m.group.level != 0 || !is_candidate(comp, m.group, m.position, &from) {
        return Err(Rejection::NotFromPosition);
    }
    let key = my_role_in(comp, m.group).ok_or(Rejection::NotInGroup)?;
    if key.position == m.position {
        return Err(Rejection::UnexpectedVerifierShare);
    }
    let st = comp
        .validity
        .clone()
        .ok_or(Rejection::UnexpectedVerifierShare)?;
    let verifier_len = st
        .typ
        .as_ref()
        .map_err(|_| Rejection::UnexpectedVerifierShare)?
        .verifier_len();
    // At most one entry per node of the leaf when the plan knows its size (a directory).
    let cap = match comp.plan.leaf_size(m.group) as usize {
        0 => MAX_CONTRIBUTORS_PER_LEAF,
        n => n.min(MAX_CONTRIBUTORS_PER_LEAF),
    };
    let params = SharingParams {
        g: comp.plan.g,
        t: comp.plan.t,
    };
    for entry in m.entries {
        let contributor = entry.contributor;
        if comp.plan.leaf_of(&contributor) != m.group {
            ctx.reject(from, "verifier-share", Rejection::UnexpectedVerifierShare);
            continue;
        }
        // One part: the whole circuit is one proof (`limits::MAX_VALIDITY_PARTS`).
        let verifier = match <[Verifier; 1]>::try_from(entry.parts) {
            Ok([v]) if v.0.len() == verifier_len => v,
            _ => {
                ctx.reject(from, "verifier-share", Rejection::UnexpectedVerifierShare);
                continue;
            }
        };
        let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
        if !role.validity.heard.contains_key(&contributor) && role.validity.heard.len() >= cap {
            ctx.reject(from, "verifier-share", Rejection::LeafFull);
            continue;
        }
        role.validity
            .heard
            .entry(contributor)
            .or_default()
            .entry(m.position)
            .or_insert((from, verifier));
        try_decide(comp, key, contributor, params, &st, false, ctx, records);
    }
    Ok(())
}

/// At the end of a leaf's collection (the share window, or every contributor accounted for):
/// decides every contributor this member verified with the verifier shares heard so far, if
/// at least `t` (before then a decision waits for all `g`, see [`try_decide`]). One call from
/// `aggregator::advance_role`, before the collection ends.
pub(super) fn decide_at_collection_end(
    comp: &mut Computation,
    key: crate::message::Slot,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) {
    let Some(st) = comp.validity.clone() else {
        return;
    };
    let Some(role) = comp.roles.get(&key) else {
        return;
    };
    if key.group.level != 0
        || !matches!(role.stage, Stage::Collecting)
        || !super::collection::collection_over(comp, key, role, ctx.now)
    {
        return;
    }
    let open: Vec<NodeId> = role
        .validity
        .own
        .keys()
        .filter(|c| !role.validity.decided.contains_key(*c))
        .copied()
        .collect();
    let params = SharingParams {
        g: comp.plan.g,
        t: comp.plan.t,
    };
    for contributor in open {
        try_decide(comp, key, contributor, params, &st, true, ctx, records);
    }
}

/// The decision on every verifier share heard (see [`try_decide`]).
enum Decision {
    /// Decided on the shares that lie on one polynomial; `off` are the positions whose
    /// shares do not (they lied, or their contributor sent them an inconsistent share).
    Decided { valid: bool, off: Vec<Position> },
    /// No polynomial of degree `< t` passes through enough of the shares to tell which are
    /// wrong: more liars than the shares heard can correct, or an inconsistent sharing.
    Undecidable,
}

/// Decides on every verifier share heard, not the first `t`: once this member has its own
/// and those of all `g - 1` other positions, or (`at_end`) at the end of collection with at
/// least `t`. The decision is [`validity::decide_naming`]'s: prio's decision on the polynomial
/// through at least `ceil((n + t) / 2)` of the `n` shares (unique when it exists: two such
/// polynomials would share `t` points), and each position off it is named
/// (`Rejection::WrongVerifierShare`, counted against the node serving it): a member lying
/// about its verifier share cannot get an honest contribution rejected unnamed while the
/// shares heard can correct it (`n >= t + 2e` for `e` liars). Beyond that the contribution is
/// rejected, and the disagreement counted (`Rejection::VerifierSharesDisagree`).
#[allow(clippy::too_many_arguments)]
fn try_decide(
    comp: &mut Computation,
    key: crate::message::Slot,
    contributor: NodeId,
    params: SharingParams,
    st: &Statement,
    at_end: bool,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) {
    let id = comp.id();
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    if role.validity.decided.contains_key(&contributor) {
        return;
    }
    let Some(own) = role.validity.own.get(&contributor) else {
        return;
    };
    let heard = role.validity.heard.get(&contributor);
    let mut sets: Vec<(Position, Option<NodeId>, &Verifier)> = vec![(key.position, None, own)];
    if let Some(h) = heard {
        sets.extend(h.iter().map(|(p, (n, v))| (*p, Some(*n), v)));
    }
    if sets.len() < params.t as usize || (!at_end && sets.len() < params.g as usize) {
        return;
    }
    let shares: Option<Vec<VerifierShare<Field64>>> = sets
        .iter()
        .map(|(p, _, (verifier, digest))| {
            Some(VerifierShare {
                position: *p,
                verifier: from_wire(verifier)?,
                commitments_digest: *digest,
            })
        })
        .collect();
    let Ok(typ) = &st.typ else {
        return;
    };
    let decision = match shares.map(|s| validity::decide_naming(typ, params, &s)) {
        Some(Ok((valid, off))) => Decision::Decided { valid, off },
        _ => Decision::Undecidable,
    };
    let (valid, off) = match decision {
        Decision::Decided { valid, off } => (valid, off),
        Decision::Undecidable => {
            ctx.reject(contributor, "validity", Rejection::VerifierSharesDisagree);
            (false, Vec::new())
        }
    };
    let named: Vec<NodeId> = sets
        .iter()
        .filter(|(p, _, _)| off.contains(p))
        .filter_map(|(_, n, _)| *n)
        .collect();
    for node in named {
        ctx.reject(node, "verifier-share", Rejection::WrongVerifierShare);
    }
    decide_now(role, key, id, contributor, valid, ctx, records);
}

fn decide_now(
    role: &mut super::role::Role,
    key: crate::message::Slot,
    id: ComputationId,
    contributor: NodeId,
    valid: bool,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) {
    if role.validity.decided.len() >= MAX_CONTRIBUTORS_PER_LEAF {
        return;
    }
    role.validity.heard.remove(&contributor);
    role.validity.waiting.remove(&contributor);
    let pending = role.validity.pending.remove(&contributor);
    // The proof speaks of the aggregated share only if the share is the one the proven
    // input's share implies (the tie; a share not here yet is checked in `hold_share`).
    let valid = valid
        && pending
            .as_ref()
            .is_none_or(|share| role.validity.tie_holds(&contributor, share));
    role.validity.decided.insert(contributor, valid);
    if valid {
        if let Some(share) = pending {
            records.push(Pending::Record(Record::ShareHeld {
                computation: id,
                group: key.group,
                position: key.position,
                contributor,
                share,
            }));
        }
    } else {
        // Accounted like a decline, so the leaf does not wait for it.
        if role.declined.len() < MAX_CONTRIBUTORS_PER_LEAF {
            role.declined.insert(contributor);
        }
        ctx.reject(contributor, "validity", Rejection::InvalidContribution);
    }
}

impl Engine {
    /// Test-only: this contributor lies in its next contributions (see [`ValidityLie`]).
    pub fn lie_in_contribution(&mut self, lie: ValidityLie) {
        self.validity_lie = Some(lie);
    }

    /// The contributor's side: its validity shares, sealed and sent with its shares (one call
    /// from `send_shares_to`) once its proof is done. The proof is a job (`Output::Work`, see
    /// "The proof as a job" above): this asks for it, or, if it is already out, adds `only`'s
    /// positions to those it is for; once it is done, its validity shares are kept
    /// (`Contribution::proved`) and sealed again from there, without another proof. Nothing
    /// new is persisted: the proof is a deterministic function of the persisted contribution
    /// (vector and seed).
    pub(super) fn send_validity_shares(&mut self, id: ComputationId, only: Option<Position>) {
        let me = self.identity.node;
        let lie = self.validity_lie;
        let Some(comp) = self.computations.get_mut(&id) else {
            return;
        };
        let Some(st) = comp.validity.clone() else {
            return;
        };
        let plan = comp.plan.clone();
        let Some(contribution) = comp.contribution.as_mut() else {
            return;
        };
        if contribution.proved.is_some() {
            self.seal_validity_shares(id, &Wanted::of(only));
            return;
        }
        if let Some(wanted) = &mut contribution.proving {
            wanted.add(only);
            return;
        }
        contribution.proving = Some(Wanted::of(only));
        let job = ProveJob {
            st,
            id,
            me,
            params: SharingParams {
                g: plan.g,
                t: plan.t,
            },
            rotation: rotation_of(&me.0, plan.g),
            vector: contribution.vector.clone(),
            seed: contribution.seed,
            lie,
        };
        self.out
            .push_back(super::Output::Work(super::Job::prove(job)));
    }

    /// A proof job's result (`Engine::handle_job_done`): kept (`Contribution::proved`), and
    /// the validity shares of the positions it was for sealed to whoever serves each now, and
    /// sent. Dropped if this engine no longer waits for it: its computation ended, this node
    /// holds no contribution to it, or the proof is of another contribution than the one held
    /// (a seed that differs). A job that panicked (`Panicked`) only clears `proving`: nothing is
    /// kept or sent, and the next re-send (a share query, a failover) asks for the proof again.
    pub(super) fn on_proved(&mut self, proved: Proved) {
        let Some(comp) = self.computations.get_mut(&proved.id) else {
            return;
        };
        let Some(contribution) = comp.contribution.as_mut() else {
            return;
        };
        if proved.seed != contribution.seed {
            return;
        }
        let Some(wanted) = contribution.proving.take() else {
            return;
        };
        let Ok(parts) = proved.parts else {
            return;
        };
        contribution.proved = Some(parts.unwrap_or_default());
        self.seal_validity_shares(proved.id, &wanted);
    }

    /// Seals the kept validity shares (`Contribution::proved`) of the `wanted` positions to
    /// whoever serves each now, and sends them.
    fn seal_validity_shares(&mut self, id: ComputationId, wanted: &Wanted) {
        let Some(comp) = self.computations.get(&id) else {
            return;
        };
        let Some(contribution) = comp.contribution.as_ref() else {
            return;
        };
        let Some(per_position) = contribution.proved.as_ref() else {
            return;
        };
        let seed = contribution.seed;
        let plan = &comp.plan;
        let me = self.identity.node;
        let leaf: GroupId = plan.leaf_of(&me);
        let mut ctx = ctx!(self);
        for (position, part) in (1..).zip(per_position) {
            if !wanted.contains(position) {
                continue;
            }
            let member = super::server_of(plan, &comp.servers, slot(leaf, position));
            let payload = ValidityPayload {
                computation: id,
                group: leaf,
                position,
                contributor: me,
                parts: vec![part.clone()],
            };
            // Invariant: postcard serialises these plain data types without error.
            let bytes = postcard::to_allocvec(&payload).expect("validity payload serialises");
            let Some(key) = plan.x25519_key(&member) else {
                continue;
            };
            let eph = hash_parts("grove/validity-ephemeral", &[&seed, &[position], &member.0]);
            match ctx.envelope.seal(&key, &bytes, eph) {
                Ok(sealed) => ctx.send_to(
                    member,
                    id,
                    0,
                    Body::ValidityShare(ShareMsg {
                        group: leaf,
                        position,
                        contributor: me,
                        sealed,
                    }),
                    Some(slot(leaf, position)),
                ),
                Err(_) => ctx.reject(me, "validity-share", Rejection::SealFailed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The held share a verification rebuilds its input share in is the share's first `len`
    /// elements, whether a seed (expanded a block at a time) or a full vector, in a vector
    /// with room for the whole input share.
    #[test]
    fn the_held_share_is_the_shares_prefix_with_room_for_the_input() {
        let seed = CompressedShare::Seed([7; 32]);
        // Lengths around and across the expansion's blocks.
        for len in [0, 1, 1023, 1024, 1025, 3000] {
            let want: Vec<Field64> = seed.expand(len).into_iter().map(Fp::to_field64).collect();
            let got = share_prefix_f64_in(&seed, len, len + 40, None);
            assert_eq!(got, want, "seed, {len} elements");
            assert!(got.capacity() >= len + 40);
        }
        let full = CompressedShare::Full(FieldVec((0..100).map(Fp::new).collect()));
        let got = share_prefix_f64_in(&full, 60, 90, None);
        assert_eq!(got, f64s(&(0..60).map(Fp::new).collect::<Vec<_>>()));
        assert!(got.capacity() >= 90);
        assert_eq!(share_prefix_f64_in(&full, 200, 90, None).len(), 100);
    }

    /// A proof job hashes its shares' first-stage commitments from the engine's elements as it
    /// converts its aggregated shares (`validity::prove_staged_tied_and_share_committed`): its
    /// validity shares are those the module makes when it commits itself, with the seeds at
    /// positions 1..t-1 and rotated.
    #[test]
    fn a_proof_with_its_stage_commitments_hashed_on_the_way_is_the_modules() {
        let q = Query::parse("SELECT sum_vector(v, 1500) FROM t CLIP NORM v TO 1 SCALE 2")
            .unwrap()
            .compile()
            .unwrap();
        let st = std::sync::Arc::new(Statement {
            typ: CircuitType::of_query(&q),
            noise: None,
        });
        // A first stage, the vector (1,500 coordinates and the row's indicator): the
        // commitments hashed on the way are used.
        let typ = st.typ.as_ref().unwrap();
        let len = typ.vector_len();
        assert_eq!(validity::Staged::stage_len(typ), len);
        assert_eq!(validity::Tied::tied(typ), 0..len);
        let params = SharingParams::new(5, 3).unwrap();
        let vector: Vec<Fp> = (0..len as u64).map(|i| Fp::new(i % 2)).collect();
        for rotation in [0, 2] {
            let job = ProveJob {
                st: st.clone(),
                id: ComputationId([1; 32]),
                me: NodeId([2; 32]),
                params,
                rotation,
                vector: vector.clone(),
                seed: [3; 32],
                lie: None,
            };
            let got = job.parts().expect("a proof");
            let proof_seed = hash_parts("grove/validity/contribution", &[&job.seed]);
            let shares: Vec<Vec<Field64>> =
                share_vector_rotated(&vector, params, job.seed, rotation)
                    .iter()
                    .map(|s| share_prefix_f64_in(s, len, len, None))
                    .collect();
            let want = prove(
                &st,
                job.id,
                job.me,
                params,
                &vector,
                &[],
                &shares,
                &proof_seed,
                None,
                None,
            )
            .expect("a proof");
            assert_eq!(got, want, "rotation {rotation}");
        }
    }

    /// The stage commitment hashed from the engine's elements as they are converted is the
    /// one the validity module computes from prio's (`verifier_share_staged`), for a seed and
    /// a full share across the expansion's blocks; a share shorter than announced gives none.
    #[test]
    fn the_stage_commitment_hashed_on_the_way_is_the_modules() {
        let blind = [9; 32];
        for share in [
            CompressedShare::Seed([4; 32]),
            CompressedShare::Full(FieldVec(
                (0..2500u64)
                    .map(|i| Fp::new(i.wrapping_mul(u64::MAX / 7)))
                    .collect(),
            )),
        ] {
            let len = 2100;
            let mut h = validity::stage_commitment_hasher(3, &blind, len * 8);
            let held = share_prefix_f64_in(&share, len, len, Some(&mut h));
            assert_eq!(
                h.finish(),
                Some(validity::stage_commitment_of(3, &blind, &held))
            );
            let mut short = validity::stage_commitment_hasher(3, &blind, 3000 * 8);
            share_prefix_f64_in(&share, 2500, 2500, Some(&mut short));
            assert_eq!(short.finish(), None);
        }
    }
}
