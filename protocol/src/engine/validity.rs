//! Validity proofs in the engine (issue 17, first slice): a contributor proves that its
//! contribution satisfies the query's validity circuit, each member of its leaf group computes
//! its verifier share, the members exchange them, and every share heard (all `g`, or at least
//! `t` when collection ends) decides whether the contribution may enter a manifest, a member
//! off the polynomial most of them lie on being named ([`try_decide`]) (`crate::validity` has the proof system on Shamir shares).
//!
//! **Statement.** Validity is on for a request whose query text compiles to exactly its
//! contribution spec, without DP noise (noise is added to the vector before sharing, and a
//! noised vector fails the ranges; it must move outside the proven vector first). The statement
//! is made of *parts*, each a prio type proven separately, built from
//! [`crate::query::circuit`]'s checks:
//! - every element of a `Range` that is not an indicator: prio's `Sum` of `value - min`, exact
//!   bounds `[min, max]`;
//! - the indicators that an `AtMost` with bound `one` covers (every row's contributor
//!   indicator of a `GROUP BY` with `LIMIT PER CONTRIBUTOR 1`): one `Histogram` of those
//!   indicators and a last "no row" slot, one-hot: each indicator in {0, 1}, at most one row;
//! - every other indicator: a `Sum` with maximum 1 (in units of `one`).
//!
//! Not proven yet: `IndicatorOf` (needs a custom gadget), `AtMost` with a bound over `one`,
//! `NormAtMost`.
//!
//! **The proven vector is the aggregated one (the tie).** Grove's shares live in prio's
//! `Field64` (`field.rs`: the same integers), and each part's input sharing is tied to the
//! aggregated sharing: the contributor computes, at every position, the input coordinate that
//! `truncate` maps to an aggregated element from that element's aggregated share (`Part::tie`,
//! `validity::prove_tied_and_share`), so `unit * truncate(input share) + offset` *is* the
//! aggregated share, position by position. Each member checks that equality on the share it
//! holds (`Part::implied`, `LeafValidity::tie_holds`) before holding it; a contributor that
//! proves one vector and shares another fails it at every position where the two sharings
//! differ (at least `g - t + 1` of them, since two different polynomials of degree `< t` agree
//! on at most `t - 1` points), so at most `t - 1` members hold its share and it is in no
//! manifest. Each part's input is the honest prio encoding when the value fits, otherwise a
//! preimage of the value under `truncate` (a lie keeps its size; the proof then fails).
//!
//! **Query randomness.** Derived from the contribution (`validity::derived_query_seed`: the
//! hash of the context and of the commitments to every input and proof share), so the members
//! need no extra round; the contributor can grind it (ARCHITECTURE.md, "Validity proofs").
//!
//! **State and the drain rule.** A member keeps a contributor's share aside (`pending`) until
//! the decision; only then is it persisted (`Record::ShareHeld`) and counted as held, so
//! `Role::items` and the leaf's accounting see valid contributions only. The pending share,
//! this member's verifier shares and those heard are never persisted (like count shares): a
//! restart loses them, and the contributor is then missing from this member's report (a
//! liveness cost, never a wrong inclusion). Verifier shares are a deterministic function of
//! what the contributor sent, so nothing sent can contradict a later restart.

use super::collection::{check_contributor_share, open_payload};
use super::role::{check_position, is_candidate, my_role_in, Stage};
use super::{slot, Computation, Ctx, Engine, Pending, Rejection};
use crate::field::Fp;
use crate::ids::{hash_parts, ComputationId, GroupId, NodeId, Position};
use crate::limits::{MAX_CONTRIBUTORS_PER_LEAF, MAX_VALIDITY_PARTS};
use crate::message::{Body, ShareMsg, ValidityPart, ValidityPayload, VerifierShareMsg};
use crate::query::Check;
use crate::query::Query;
use crate::record::Record;
use crate::request::Request;
use crate::sharing::{rotation_of, share_vector_rotated, CompressedShare, SharingParams};
use crate::validity::{self, MemberShare, VerifierShare};
use prio::field::{Field64, FieldElement};
use prio::flp::gadgets::{Mul, ParallelSum};
use prio::flp::types::{Histogram, Sum};
use prio::flp::{Flp, Type};
use std::collections::{BTreeMap, BTreeSet};

type Hist = Histogram<Field64, ParallelSum<Field64, Mul>>;
/// One member's verifier shares of a contribution, one per part: elements and digest.
type Verifiers = Vec<(Vec<u64>, [u8; 32])>;

/// A test-only lie of a contributor (`Engine::lie_in_contribution`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidityLie {
    /// Encodes its values without clipping them to their bounds (indicators included).
    Unclipped,
    /// Proves its (honest) range parts with a forged proof: its first element plus one, shared
    /// and committed to like an honest proof (`validity::forge_and_share`).
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
    /// Encodes its values unclipped (as `Unclipped`) and, for every range part, forges a proof
    /// that passes at the query randomness it would know if that randomness were fixed when
    /// the request is (`request_time_seed`): it solves the verifier's affine equations for
    /// two coordinates of its proof (`forge_at`). It fails when the randomness comes after
    /// its proof is fixed, as it does (`validity::derived_query_seed`).
    KnowsQueryRandomness,
}

enum PartType {
    Sum(Sum<Field64>),
    Hist(Hist),
}

impl Part {
    fn verifier_len(&self) -> usize {
        match &self.typ {
            PartType::Sum(t) => t.verifier_len(),
            PartType::Hist(t) => t.verifier_len(),
        }
    }

    /// The contributor's tie (`validity::prove_tied_and_share`): overwrites the coordinates
    /// of one position's input share that map to aggregated elements, from that position's
    /// shares `y` of those elements (in `elements` order), so that `truncate` of the input
    /// share, times `unit`, plus `offset`, is the aggregated share. `Sum`: coordinate 0 (its
    /// weight `w0` is not zero); `Hist`: the coordinates of the rows.
    fn tie(&self, y: &[Fp], input: &mut [Field64]) {
        let unit_inv = field(self.unit).inv();
        match &self.typ {
            PartType::Sum(typ) => {
                let (Some(y), Some(_)) = (y.first(), input.first()) else {
                    return;
                };
                let target = (y.to_field64() - field(self.offset)) * unit_inv;
                input[0] = Field64::zero();
                let rest = sum_truncate(typ, input);
                let mut e0 = vec![Field64::zero(); input.len()];
                e0[0] = Field64::one();
                let w0 = sum_truncate(typ, &e0);
                input[0] = (target - rest) * w0.inv();
            }
            PartType::Hist(_) => {
                for (x, y) in input.iter_mut().zip(y) {
                    *x = y.to_field64() * unit_inv;
                }
            }
        }
    }

    /// A member's check of the tie: the aggregated shares of this part's elements that this
    /// member's input share implies, `(element, share)`.
    fn implied(&self, input: &[Field64]) -> Vec<(u32, Fp)> {
        let unit = field(self.unit);
        match &self.typ {
            PartType::Sum(typ) => {
                let m = sum_truncate(typ, input);
                vec![(
                    self.elements[0],
                    Fp::from_field64(unit * m + field(self.offset)),
                )]
            }
            PartType::Hist(_) => self
                .elements
                .iter()
                .zip(input)
                .map(|(e, x)| (*e, Fp::from_field64(unit * *x)))
                .collect(),
        }
    }
}

/// prio's `truncate` of a `Sum` input (linear; the value the input encodes); zero for an
/// input of the wrong length (lengths are checked before).
fn sum_truncate(typ: &Sum<Field64>, input: &[Field64]) -> Field64 {
    typ.truncate(input.to_vec())
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(Field64::zero())
}

/// One separately proven part of a statement.
struct Part {
    typ: PartType,
    /// The elements of the contribution it covers.
    elements: Vec<u32>,
    /// `Sum`: the measurement is `(value - offset) / unit`; `Hist`: each element over `unit`.
    offset: i64,
    unit: i64,
}

/// What a valid contribution to one request satisfies, as prio parts.
pub(super) struct Statement {
    parts: Vec<Part>,
}

/// The validity statement of `request`, if validity is on for it (see the module text).
pub(super) fn statement(request: &Request) -> Option<Statement> {
    if request.query.is_empty() || request.contribution.noise.is_some() {
        return None;
    }
    let compiled = Query::parse(&request.query).ok()?.compile().ok()?;
    if compiled.spec() != &request.contribution {
        return None;
    }
    let circuit = compiled.validity_circuit();
    let mut indicators: BTreeMap<u32, i64> = BTreeMap::new();
    for c in &circuit.checks {
        if let Check::Indicator { index, one } = c {
            indicators.insert(*index, *one);
        }
    }
    let mut parts = Vec::new();
    let mut in_hist: BTreeSet<u32> = BTreeSet::new();
    for c in &circuit.checks {
        if let Check::AtMost { elements, max } = c {
            let one = elements.first().and_then(|e| indicators.get(e)).copied();
            if let Some(one) =
                one.filter(|o| *o == *max && elements.iter().all(|e| indicators.get(e) == Some(o)))
            {
                let chunk = ((elements.len() + 1) as f64).sqrt().ceil() as usize;
                let typ = Hist::new(elements.len() + 1, chunk.max(1)).ok()?;
                in_hist.extend(elements.iter().copied());
                parts.push(Part {
                    typ: PartType::Hist(typ),
                    elements: elements.clone(),
                    offset: 0,
                    unit: one,
                });
            }
        }
    }
    for c in &circuit.checks {
        match c {
            Check::Range {
                start,
                len,
                min,
                max,
            } => {
                for e in *start..start + len {
                    if indicators.contains_key(&e) || max <= min {
                        continue;
                    }
                    let span = u64::try_from(max - min).ok()?;
                    parts.push(Part {
                        typ: PartType::Sum(Sum::new(span).ok()?),
                        elements: vec![e],
                        offset: *min,
                        unit: 1,
                    });
                }
            }
            Check::Indicator { index, one } if !in_hist.contains(index) => parts.push(Part {
                typ: PartType::Sum(Sum::new(1).ok()?),
                elements: vec![*index],
                offset: 0,
                unit: *one,
            }),
            _ => {}
        }
    }
    (parts.len() <= MAX_VALIDITY_PARTS).then_some(Statement { parts })
}

fn field(x: i64) -> Field64 {
    let m = Field64::from(x.unsigned_abs());
    if x < 0 {
        -m
    } else {
        m
    }
}

/// `value / unit` when it divides, else `value` itself (a lie keeps its size).
fn in_units(value: i64, unit: i64) -> i64 {
    if unit > 0 && value % unit == 0 {
        value / unit
    } else {
        value
    }
}

/// The input of `part` for `vector`: prio's encoding when the value fits, else a preimage of
/// the value under the part's `truncate` (module text).
fn input_of(part: &Part, vector: &[Fp]) -> Vec<Field64> {
    let v = |e: u32| vector.get(e as usize).map_or(0, |x| x.to_i64_centered());
    match &part.typ {
        PartType::Sum(typ) => {
            let m = in_units(v(part.elements[0]) - part.offset, part.unit);
            if let Ok(Ok(input)) = u64::try_from(m).map(|m| typ.encode_measurement(&m)) {
                return input;
            }
            let mut input = vec![Field64::zero(); typ.input_len()];
            input[0] = field(m);
            input
        }
        PartType::Hist(typ) => {
            let ms: Vec<i64> = part
                .elements
                .iter()
                .map(|e| in_units(v(*e), part.unit))
                .collect();
            let ones: Vec<usize> = (0..ms.len()).filter(|i| ms[*i] == 1).collect();
            if ms.iter().all(|m| *m == 0 || *m == 1) && ones.len() <= 1 {
                let index = ones.first().copied().unwrap_or(ms.len());
                if let Ok(input) = typ.encode_measurement(&index) {
                    return input;
                }
            }
            let mut input: Vec<Field64> = ms.iter().map(|m| field(*m)).collect();
            input.push(field(1 - ms.iter().sum::<i64>()));
            input
        }
    }
}

fn context(id: &ComputationId, contributor: &NodeId, part: usize) -> Vec<u8> {
    let mut c = Vec::with_capacity(72);
    c.extend_from_slice(&id.0);
    c.extend_from_slice(&contributor.0);
    c.extend_from_slice(&(part as u64).to_le_bytes());
    c
}

fn to_wire(s: MemberShare<Field64>) -> ValidityPart {
    ValidityPart {
        input: s.input.into_iter().map(u64::from).collect(),
        proof: s.proof.into_iter().map(u64::from).collect(),
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

/// The contributor's validity shares of `vector`, one payload per position `1..=g`, tied to
/// its aggregated shares: `shares[p - 1]` holds (a prefix of) the aggregated share of position
/// `p`, covering every element a part proves.
#[allow(clippy::too_many_arguments)]
fn prove(
    st: &Statement,
    id: ComputationId,
    me: NodeId,
    params: SharingParams,
    vector: &[Fp],
    shares: &[Vec<Fp>],
    seed: &[u8; 32],
    lie: Option<ValidityLie>,
) -> Option<Vec<Vec<ValidityPart>>> {
    let mut per_position: Vec<Vec<ValidityPart>> = vec![Vec::new(); params.g as usize];
    for (k, part) in st.parts.iter().enumerate() {
        let input = input_of(part, vector);
        let ctx = context(&id, &me, k);
        let part_seed = hash_parts(
            "grove/validity/part-seed",
            &[seed, &(k as u64).to_le_bytes()],
        );
        let forge = lie == Some(ValidityLie::ForgedProof) && matches!(part.typ, PartType::Sum(_));
        let tie = |position: u8, x: &mut [Field64]| {
            let y: Vec<Fp> = part
                .elements
                .iter()
                .map(|e| {
                    shares
                        .get(usize::from(position) - 1)
                        .and_then(|s| s.get(*e as usize))
                        .copied()
                        .unwrap_or(Fp::ZERO)
                })
                .collect();
            part.tie(&y, x);
        };
        let shared = match (&part.typ, lie) {
            (PartType::Sum(t), Some(ValidityLie::KnowsQueryRandomness)) => {
                // Test-only: a proof made for the randomness it expects (see `forge_at`).
                let known = validity::query_randomness(t, &request_time_seed(&ctx), &ctx);
                let fixed = FixedProof {
                    inner: t.clone(),
                    proof: forge_at(t, &input, &known)?,
                };
                validity::prove_tied_and_share(&fixed, &input, params, &ctx, &part_seed, false, tie)
            }
            (PartType::Sum(t), _) => {
                validity::prove_tied_and_share(t, &input, params, &ctx, &part_seed, forge, tie)
            }
            (PartType::Hist(t), _) => {
                validity::prove_tied_and_share(t, &input, params, &ctx, &part_seed, forge, tie)
            }
        }
        .ok()?;
        for (p, s) in shared.shares.into_iter().enumerate() {
            per_position[p].push(to_wire(s));
        }
    }
    Some(per_position)
}

/// The query seed a contributor would know when it proves if the query randomness were fixed
/// when the request is (a function of the request and the contributor only). Grove does not
/// use it: members derive theirs after the proof is fixed (`validity::derived_query_seed`).
/// Only the test lie `KnowsQueryRandomness` computes it.
fn request_time_seed(ctx: &[u8]) -> [u8; 32] {
    hash_parts("grove/validity/request-time-query-seed", &[ctx])
}

/// Test-only: a proof of `input` (invalid) that prio's decision accepts at the query
/// randomness `query`, for a `Sum` (no joint randomness). For fixed randomness the verifier
/// is an affine map of the proof; among the proof's coordinates that move only the circuit's
/// output (entry 0) and the gadget check (last entry), not the wire checks, it takes two and
/// solves the 2x2 system that makes the output zero and the gadget check equal the gadget of
/// the wires. `None` if no such pair is found.
fn forge_at(typ: &Sum<Field64>, input: &[Field64], query: &[Field64]) -> Option<Vec<Field64>> {
    let prove_rand = vec![Field64::one(); typ.prove_rand_len()];
    let p0 = typ.prove(input, &prove_rand, &[]).ok()?;
    let v0 = typ.query(input, &p0, query, &[], 1).ok()?;
    let last = v0.len().checked_sub(1)?;
    let wires = v0.get(1..last)?.to_vec();
    let g0 = typ.gadget().first_mut()?.eval(&wires).ok()?;
    let mut cols = Vec::new();
    for j in 0..p0.len() {
        let mut p = p0.clone();
        p[j] += Field64::one();
        let v = typ.query(input, &p, query, &[], 1).ok()?;
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
            let v = typ.query(input, &p, query, &[], 1).ok()?;
            if typ.decide(&v).ok()? {
                return Some(p);
            }
        }
    }
    None
}

/// Test-only: a prio type that proves with a given proof (`forge_at`'s), so that
/// `validity::prove_tied_and_share` shares and commits to it as to an honest one.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FixedProof {
    inner: Sum<Field64>,
    proof: Vec<Field64>,
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
    ) -> Result<Vec<Field64>, prio::flp::FlpError> {
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
        _input: &[Field64],
        _prove_rand: &[Field64],
        _joint_rand: &[Field64],
    ) -> Result<Vec<Field64>, prio::flp::FlpError> {
        Ok(self.proof.clone())
    }
}

impl Type for FixedProof {
    type Measurement = u64;
    type AggregateResult = u64;
    fn encode_measurement(&self, m: &u64) -> Result<Vec<Field64>, prio::flp::FlpError> {
        self.inner.encode_measurement(m)
    }
    fn truncate(&self, input: Vec<Field64>) -> Result<Vec<Field64>, prio::flp::FlpError> {
        self.inner.truncate(input)
    }
    fn decode_result(&self, data: &[Field64], n: usize) -> Result<u64, prio::flp::FlpError> {
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

impl Statement {
    /// One past the largest element a part proves.
    fn elements_end(&self) -> usize {
        self.parts
            .iter()
            .flat_map(|p| p.elements.iter())
            .map(|e| *e as usize + 1)
            .max()
            .unwrap_or(0)
    }
}

/// A leaf member's validity bookkeeping for one position (`Role::validity`).
#[derive(Default)]
pub(super) struct LeafValidity {
    /// Shares received whose contributor is not decided yet.
    pending: BTreeMap<NodeId, CompressedShare>,
    /// This member's verifier shares, per contributor (one per part).
    own: BTreeMap<NodeId, Verifiers>,
    /// The aggregated shares this member's input shares imply, per contributor, as
    /// `(element, share)` (`Part::implied`): the share it holds must match them.
    implied: BTreeMap<NodeId, Vec<(u32, Fp)>>,
    /// Other positions' verifier shares, per contributor, with the node that sent each.
    heard: BTreeMap<NodeId, BTreeMap<Position, (NodeId, Verifiers)>>,
    /// Decisions: `true` valid.
    decided: BTreeMap<NodeId, bool>,
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
    records: &mut Vec<Pending>,
) -> Result<(), Rejection> {
    let id = comp.id();
    let on = comp.validity.is_some();
    let Some(role) = comp.roles.get_mut(&key) else {
        return Ok(());
    };
    let collecting = matches!(role.stage, Stage::Collecting);
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
    /// Whether `share` is the aggregated share that this member's input shares of
    /// `contributor` imply (`Part::implied`); `false` if they are not known yet.
    fn tie_holds(&self, contributor: &NodeId, share: &CompressedShare) -> bool {
        let Some(implied) = self.implied.get(contributor) else {
            return false;
        };
        let end = implied
            .iter()
            .map(|(e, _)| *e as usize + 1)
            .max()
            .unwrap_or(0);
        let prefix = share_prefix(share, end);
        implied
            .iter()
            .all(|(e, y)| prefix.get(*e as usize) == Some(y))
    }
}

/// A contributor's validity share for this member's position: checked, its verifier share
/// computed and sent to the other positions of the leaf, and a decision tried.
pub(super) fn on_validity_share(
    comp: &mut Computation,
    from: NodeId,
    m: ShareMsg,
    lie: Option<ValidityLie>,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), Rejection> {
    let key = check_contributor_share(comp, from, &m)?;
    let id = comp.id();
    let st = comp
        .validity
        .clone()
        .ok_or(Rejection::MalformedValidityShare)?;
    let params = SharingParams {
        g: comp.plan.g,
        t: comp.plan.t,
    };
    {
        let role = comp.roles.get(&key).ok_or(Rejection::NoRole)?;
        if role.validity.own.contains_key(&m.contributor)
            || role.validity.decided.contains_key(&m.contributor)
        {
            return Ok(()); // re-sent
        }
        if !matches!(role.stage, Stage::Collecting) {
            return Err(Rejection::ShareAfterCollection);
        }
        if role.validity.own.len() >= MAX_CONTRIBUTORS_PER_LEAF {
            return Err(Rejection::LeafFull);
        }
    }
    let payload: ValidityPayload = open_payload(ctx, id, &m, |p: &ValidityPayload| {
        (p.computation, p.group, p.position, p.contributor)
    })?;
    let verifiers = verify_own(&st, id, m.contributor, m.position, params, &payload.parts);
    let implied: Option<Vec<(u32, Fp)>> = st
        .parts
        .iter()
        .zip(&payload.parts)
        .map(|(part, w)| Some(part.implied(&from_wire(&w.input)?)))
        .collect::<Option<Vec<_>>>()
        .map(|v| v.concat());
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
    let Some(verifiers) = verifiers else {
        // Its own share does not fit: the contributor is faulty, whatever the others hold.
        decide_now(role, key, id, m.contributor, false, ctx, records);
        return Err(Rejection::MalformedValidityShare);
    };
    role.validity.own.insert(m.contributor, verifiers.clone());
    if let Some(implied) = implied {
        // Bounded like `own` (checked above); `verify_own` checked every input's length.
        role.validity.implied.insert(m.contributor, implied);
    }
    let mut parts = verifiers;
    if lie == Some(ValidityLie::WrongVerifierShare) {
        for (v, _) in &mut parts {
            if let Some(x) = v.first_mut() {
                *x = u64::from(from_wire(&[*x]).map_or(Field64::one(), |f| f[0] + Field64::one()));
            }
        }
    }
    let body = Body::VerifierShare(VerifierShareMsg {
        group: m.group,
        position: m.position,
        contributor: m.contributor,
        parts,
    });
    ctx.send_to_group(comp, key, 0, body);
    try_decide(comp, key, m.contributor, params, &st, false, ctx, records);
    Ok(())
}

/// This member's verifier shares of every part, or `None` if a part does not fit.
fn verify_own(
    st: &Statement,
    id: ComputationId,
    contributor: NodeId,
    position: Position,
    params: SharingParams,
    parts: &[ValidityPart],
) -> Option<Verifiers> {
    if parts.len() != st.parts.len() {
        return None;
    }
    let mut out = Vec::with_capacity(parts.len());
    for (k, (part, w)) in st.parts.iter().zip(parts).enumerate() {
        let share = MemberShare {
            position,
            input: from_wire(&w.input)?,
            proof: from_wire(&w.proof)?,
            blind: w.blind,
            commitments: w.commitments.clone(),
            proof_commitments: w.proof_commitments.clone(),
        };
        let ctx = context(&id, &contributor, k);
        let seed = validity::derived_query_seed(&ctx, &share);
        let v = match &part.typ {
            PartType::Sum(t) => validity::verifier_share(t, params, &share, &ctx, &seed),
            PartType::Hist(t) => validity::verifier_share(t, params, &share, &ctx, &seed),
        }
        .ok()?;
        out.push((
            v.verifier.into_iter().map(u64::from).collect(),
            v.commitments_digest,
        ));
    }
    Some(out)
}

/// Another leaf position's verifier share of a contributor.
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
    if comp.plan.leaf_of(&m.contributor) != m.group {
        return Err(Rejection::UnexpectedVerifierShare);
    }
    let key = my_role_in(comp, m.group).ok_or(Rejection::NotInGroup)?;
    if key.position == m.position {
        return Err(Rejection::UnexpectedVerifierShare);
    }
    let st = comp
        .validity
        .clone()
        .ok_or(Rejection::UnexpectedVerifierShare)?;
    if m.parts.len() != st.parts.len()
        || st
            .parts
            .iter()
            .zip(&m.parts)
            .any(|(part, (v, _))| v.len() != part.verifier_len())
    {
        return Err(Rejection::UnexpectedVerifierShare);
    }
    // At most one entry per node of the leaf when the plan knows its size (a directory).
    let cap = match comp.plan.leaf_size(m.group) as usize {
        0 => MAX_CONTRIBUTORS_PER_LEAF,
        n => n.min(MAX_CONTRIBUTORS_PER_LEAF),
    };
    let params = SharingParams {
        g: comp.plan.g,
        t: comp.plan.t,
    };
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
    if !role.validity.heard.contains_key(&m.contributor) && role.validity.heard.len() >= cap {
        return Err(Rejection::LeafFull);
    }
    role.validity
        .heard
        .entry(m.contributor)
        .or_default()
        .entry(m.position)
        .or_insert((from, m.parts));
    try_decide(comp, key, m.contributor, params, &st, false, ctx, records);
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

/// One part's decision from every verifier share heard (see [`try_decide`]).
enum PartDecision {
    /// Decided on the shares that lie on one polynomial; `off` are the positions whose
    /// shares do not (they lied, or their contributor sent them an inconsistent share).
    Decided { valid: bool, off: Vec<Position> },
    /// No polynomial of degree `< t` passes through enough of the shares to tell which are
    /// wrong: more liars than the shares heard can correct, or an inconsistent sharing.
    Undecidable,
}

/// Decides one part on all its verifier shares ([`validity::decide_naming`]): prio's decision
/// on the polynomial through at least `ceil((n + t) / 2)` of the `n` shares (unique when it
/// exists: two such polynomials would share `t` points), and the positions off it. When none
/// exists (more liars than the shares heard correct, or an inconsistent sharing) the part is
/// undecidable.
fn decide_part<T: Type<Field = Field64>>(
    typ: &T,
    params: SharingParams,
    shares: &[VerifierShare<Field64>],
) -> PartDecision {
    match validity::decide_naming(typ, params, shares) {
        Ok((valid, off)) => PartDecision::Decided { valid, off },
        Err(_) => PartDecision::Undecidable,
    }
}

/// Decides on every verifier share heard, not the first `t`: once this member has its own
/// and those of all `g - 1` other positions, or (`at_end`) at the end of collection with at
/// least `t`. Every part must be accepted. A part whose shares do not lie on one polynomial is
/// decided on the polynomial most of them lie on ([`decide_part`]), and each position off it is
/// named (`Rejection::WrongVerifierShare`, counted against the node serving it): a member lying
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
    let mut sets: Vec<(Position, Option<NodeId>, &Verifiers)> = vec![(key.position, None, own)];
    if let Some(h) = heard {
        sets.extend(h.iter().map(|(p, (n, v))| (*p, Some(*n), v)));
    }
    if sets.len() < params.t as usize || (!at_end && sets.len() < params.g as usize) {
        return;
    }
    let mut valid = true;
    let mut undecidable = false;
    let mut off: BTreeSet<Position> = BTreeSet::new();
    for (k, part) in st.parts.iter().enumerate() {
        let shares: Option<Vec<VerifierShare<Field64>>> = sets
            .iter()
            .map(|(p, _, v)| {
                let (verifier, digest) = v.get(k)?;
                Some(VerifierShare {
                    position: *p,
                    verifier: from_wire(verifier)?,
                    commitments_digest: *digest,
                })
            })
            .collect();
        let decision = match (shares, &part.typ) {
            (None, _) => PartDecision::Undecidable,
            (Some(s), PartType::Sum(t)) => decide_part(t, params, &s),
            (Some(s), PartType::Hist(t)) => decide_part(t, params, &s),
        };
        match decision {
            PartDecision::Decided { valid: v, off: o } => {
                valid &= v;
                off.extend(o);
            }
            PartDecision::Undecidable => {
                valid = false;
                undecidable = true;
            }
        }
    }
    let named: Vec<NodeId> = sets
        .iter()
        .filter(|(p, _, _)| off.contains(p))
        .filter_map(|(_, n, _)| *n)
        .collect();
    for node in named {
        ctx.reject(node, "verifier-share", Rejection::WrongVerifierShare);
    }
    if undecidable {
        ctx.reject(contributor, "validity", Rejection::VerifierSharesDisagree);
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
    /// from `send_shares_to`). Nothing new is persisted: they are a deterministic function of
    /// the persisted contribution (vector and seed).
    pub(super) fn send_validity_shares(&mut self, id: ComputationId, only: Option<Position>) {
        let Some(comp) = self.computations.get(&id) else {
            return;
        };
        let Some(contribution) = &comp.contribution else {
            return;
        };
        let Some(st) = comp.validity.clone() else {
            return;
        };
        let plan = comp.plan.clone();
        let me = self.identity.node;
        let leaf: GroupId = plan.leaf_of(&me);
        let params = SharingParams {
            g: plan.g,
            t: plan.t,
        };
        let seed = hash_parts("grove/validity/contribution", &[&contribution.seed]);
        // The aggregated shares exactly as `send_shares_to` makes them (honest ones under the
        // `SharesOther` lie, which changes only what that function sends).
        let end = st.elements_end().min(contribution.vector.len());
        let shares: Vec<Vec<Fp>> = share_vector_rotated(
            &contribution.vector,
            params,
            contribution.seed,
            rotation_of(&me.0, plan.g),
        )
        .iter()
        .map(|s| share_prefix(s, end))
        .collect();
        let Some(per_position) = prove(
            &st,
            id,
            me,
            params,
            &contribution.vector,
            &shares,
            &seed,
            self.validity_lie,
        ) else {
            return;
        };
        let servers = comp.servers.clone();
        let mut ctx = ctx!(self);
        for (position, parts) in (1..).zip(per_position) {
            if only.is_some_and(|o| o != position) {
                continue;
            }
            let member = super::server_of(&plan, &servers, slot(leaf, position));
            let payload = ValidityPayload {
                computation: id,
                group: leaf,
                position,
                contributor: me,
                parts,
            };
            // Invariant: postcard serialises these plain data types without error.
            let bytes = postcard::to_allocvec(&payload).expect("validity payload serialises");
            let Some(key) = plan.x25519_key(&member) else {
                continue;
            };
            let eph = hash_parts(
                "grove/validity-ephemeral",
                &[&contribution.seed, &[position], &member.0],
            );
            match self.envelope.seal(&key, &bytes, eph) {
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
