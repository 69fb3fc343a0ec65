//! Random draws and cost models. Every draw comes from the run's single ChaCha20 stream.

use crate::config::{
    CpuConfig, CryptoOn, LatencyModel, PayloadConfig, PayloadMode, PrivacyConfig, WorkCosts,
};
use grove_protocol::message::{Body, Message};
use grove_protocol::record::Record;
use grove_protocol::seal;
use grove_protocol::sharing::CompressedShare;
use grove_protocol::sharing::{carries_full_vector, rotation_of, SharingParams};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

/// The run's one source of randomness.
pub struct SimRng(ChaCha20Rng);

impl SimRng {
    pub fn new(seed: u64) -> SimRng {
        SimRng(ChaCha20Rng::seed_from_u64(seed))
    }

    /// Uniform in `[0, 1)`, 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `(0, 1]`, safe under a logarithm.
    pub fn open_unit(&mut self) -> f64 {
        1.0 - self.unit()
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        self.0.fill_bytes(out)
    }

    /// Standard normal (Box-Muller, one of the pair).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.open_unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Exponential with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.open_unit().ln()
    }

    /// One latency draw, in microseconds.
    pub fn latency_us(&mut self, model: &LatencyModel) -> u64 {
        let ms = match *model {
            LatencyModel::Fixed { ms } => ms,
            LatencyModel::Rayleigh { mean_ms } => {
                // Mean of Rayleigh(sigma) is sigma * sqrt(pi / 2).
                let sigma = mean_ms / (std::f64::consts::PI / 2.0).sqrt();
                sigma * (-2.0 * self.open_unit().ln()).sqrt()
            }
            LatencyModel::RayleighMedian { median_ms, max_ms } => {
                let sigma = median_ms / (2.0 * std::f64::consts::LN_2).sqrt();
                (sigma * (-2.0 * self.open_unit().ln()).sqrt()).min(max_ms)
            }
            LatencyModel::LogNormal { median_ms, sigma } => {
                (median_ms.ln() + sigma * self.normal()).exp()
            }
        };
        (ms * 1000.0).round().max(0.0) as u64
    }
}

/// Microseconds to move `bytes` at `kb_per_s` (1 kB = 1,024 bytes), rounded up.
pub fn transfer_us(bytes: u64, kb_per_s: f64) -> u64 {
    (bytes as f64 * 1e6 / (kb_per_s * 1024.0)).ceil() as u64
}

/// Bytes a link of `kb_per_s` carries in `us` microseconds (the inverse of `transfer_us`).
pub fn transfer_bytes(us: u64, kb_per_s: f64) -> u64 {
    if kb_per_s.is_finite() {
        (us as f64 * kb_per_s * 1024.0 / 1e6) as u64
    } else {
        0
    }
}

/// How long a sender waits for a message's acknowledgement: the fixed detection delay, plus,
/// with a size-aware deadline (`detection_min_kb_per_s > 0`, the daemon's
/// `net::message_deadline`), `bytes` (the message's and those it waits behind) and, with
/// `detection_counts_vector`, one vector of `vector_bytes` (the computation's length: the
/// receiver's work ahead of the acknowledgement) over that minimum rate.
pub fn detection_timeout_us(
    failures: &crate::config::FailureConfig,
    bytes: u64,
    vector_bytes: u64,
) -> u64 {
    let fixed = (failures.detection_delay_ms * 1000.0) as u64;
    if failures.detection_min_kb_per_s > 0.0 {
        let vector = if failures.detection_counts_vector {
            vector_bytes
        } else {
            0
        };
        fixed + transfer_us(bytes + vector, failures.detection_min_kb_per_s)
    } else {
        fixed
    }
}

/// Bytes of a postcard varint holding `n`.
fn varint_len(n: u64) -> u64 {
    let mut len = 1;
    let mut n = n >> 7;
    while n > 0 {
        len += 1;
        n >>= 7;
    }
    len
}

/// How many vectors of the contribution's length a message carries: a share carries a full
/// vector at the `g - t + 1` positions its contributor's rotation names (the others get a
/// 32-byte seed), partial sums (sent ahead or not), heal parts and release shares carry one (a
/// release share none if the root withheld the vector's one cell); everything else none (a
/// count share carries one count per cell, whatever the vector's length).
pub fn vectors_carried(message: &Message, params: SharingParams) -> u64 {
    match &message.body {
        Body::Share(s)
            if carries_full_vector(params, rotation_of(&s.contributor.0, params.g), s.position) =>
        {
            1
        }
        Body::Partial(_) | Body::PartialAhead(_) | Body::HealPart(_) => 1,
        Body::ReleaseShare(r) => u64::from(!r.share.0.is_empty()),
        _ => 0,
    }
}

/// The bytes a message is charged on the links: its real encoded length, plus in size-only
/// mode exactly the bytes the declared vector length adds to the encoding (the engine carries
/// length-1 vectors): a vector's 8 bytes per element and its longer length prefix; for a
/// sealed share also the envelope's extra Noise frames and the sealed bytes' longer prefix; for
/// the request, the two length fields of its contribution spec. So a size-only run is charged
/// byte for byte what a full run of the same declared length is.
pub fn charged_bytes(
    message: &Message,
    encoded_len: u64,
    params: SharingParams,
    payload: &PayloadConfig,
) -> u64 {
    if payload.mode == PayloadMode::Full {
        return encoded_len;
    }
    let declared = u64::from(payload.vector_len) * 8;
    // One vector: 8 bytes per element and its length prefix, against one element.
    let vector_extra = declared - 8 + varint_len(declared) - varint_len(8);
    let extra = match &message.body {
        Body::Share(s) if vectors_carried(message, params) == 1 => {
            // The engine's envelope holds one Noise frame; the declared one may hold several.
            let sealed = s.sealed.len();
            let plain = sealed.saturating_sub(seal::sealed_len(0)) as u64;
            let declared_sealed = seal::sealed_len((plain + vector_extra) as usize) as u64;
            declared_sealed - sealed as u64 + varint_len(declared_sealed)
                - varint_len(sealed as u64)
        }
        Body::Request(_) => {
            // The declared spec against the engine's one-element spec (`declared_spec`): the
            // length, a second bound range, the cells' width and length.
            // A second range is a varint count and two 8-byte floats.
            let n = u64::from(payload.vector_len);
            let second_range = if n > 1 { varint_len(n - 1) + 16 } else { 0 };
            3 * (varint_len(n) - varint_len(1)) + second_range
        }
        _ => vectors_carried(message, params) * vector_extra,
    };
    encoded_len + extra
}

/// Whether a message pays the crypto cost (the per-kB model).
pub fn pays_crypto(message: &Message, crypto_on: CryptoOn) -> bool {
    match crypto_on {
        CryptoOn::All => true,
        CryptoOn::Payload => matches!(
            message.body,
            Body::Share(_)
                | Body::Partial(_)
                | Body::PartialAhead(_)
                | Body::HealPart(_)
                | Body::ReleaseShare(_)
        ),
    }
}

/// What a message carries, for the CPU model: its charged bytes and how many vectors of the
/// declared length it carries in full (a seed share carries none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Carried {
    pub bytes: u64,
    pub full_vectors: u64,
    /// Elements of a vector of the declared length (`payload.vector_len`).
    pub elements: u64,
}

fn ns_to_us(ns: f64) -> f64 {
    ns / 1000.0
}

/// Work on one message's vector at its receiver: a share is opened and taken into the sum
/// (and expanded first if it is a seed); a partial sum, heal part or release share is taken
/// into a sum.
fn absorb_us(message: &Message, c: &Carried, w: &WorkCosts) -> f64 {
    let n = c.elements as f64;
    match &message.body {
        Body::Share(_) => {
            let expand = if c.full_vectors == 0 {
                w.expand_ns_per_element * n
            } else {
                0.0
            };
            w.envelope_us
                + ns_to_us(w.wire_ns_per_byte * c.bytes as f64)
                + ns_to_us(w.absorb_ns_per_element * n + expand)
        }
        Body::Partial(_) | Body::PartialAhead(_) | Body::HealPart(_) | Body::ReleaseShare(_) => {
            ns_to_us(w.absorb_ns_per_element * n)
        }
        _ => 0.0,
    }
}

/// CPU time to produce (send) one message, in microseconds. The contribution's sharing is
/// charged separately ([`contribute_us`]), once per drain that sends shares.
pub fn send_us(message: &Message, c: &Carried, cpu: &CpuConfig) -> u64 {
    match *cpu {
        CpuConfig::PerKb { .. } => per_kb_us(message, c.bytes, cpu),
        CpuConfig::Work(w) => {
            let n = c.elements as f64;
            let own = match &message.body {
                // Sealing the envelope: X25519 and the encryption of its bytes.
                Body::Share(_) => w.envelope_us + ns_to_us(w.wire_ns_per_byte * c.bytes as f64),
                // A helper's masked Lagrange term: a mask expanded and a multiply-add.
                Body::HealPart(_) => {
                    ns_to_us((w.expand_ns_per_element + w.absorb_ns_per_element) * n)
                }
                _ => 0.0,
            };
            (w.message_us + ns_to_us(w.wire_ns_per_byte * c.bytes as f64) + own).round() as u64
        }
    }
}

/// CPU time to consume (receive) one message before its engine sees it, in microseconds.
pub fn receive_us(message: &Message, c: &Carried, cpu: &CpuConfig) -> u64 {
    match *cpu {
        CpuConfig::PerKb { .. } => per_kb_us(message, c.bytes, cpu),
        CpuConfig::Work(w) => (w.message_us
            + ns_to_us(w.wire_ns_per_byte * c.bytes as f64)
            + absorb_us(message, c, &w))
        .round() as u64,
    }
}

/// CPU time of sharing a contribution of `elements` elements into `g` shares (work model; the
/// per-kB model charges it on the share messages' bytes instead).
pub fn contribute_us(
    g: u8,
    elements: u64,
    cpu: &CpuConfig,
    privacy: Option<&PrivacyConfig>,
) -> u64 {
    // With differential privacy the contributor first samples each element's noise.
    let noise_ns = privacy.map_or(0.0, |p| p.noise_ns_per_element);
    match *cpu {
        CpuConfig::PerKb { .. } => 0,
        CpuConfig::Work(w) => (w.contribute_us
            + ns_to_us((w.share_ns_per_element * f64::from(g) + noise_ns) * elements as f64))
        .round() as u64,
    }
}

/// CPU time of writing and fsyncing one batch of `bytes` of records (work model only).
pub fn persist_us(bytes: u64, cpu: &CpuConfig) -> u64 {
    match *cpu {
        CpuConfig::PerKb { .. } => 0,
        CpuConfig::Work(w) => {
            (w.persist_us + ns_to_us(w.persist_ns_per_byte * bytes as f64)).round() as u64
        }
    }
}

/// The bytes a record takes in the store: its encoding (as the daemon writes it), with every
/// vector it holds at the declared length in size-only mode.
pub fn record_bytes(record: &Record, payload: &PayloadConfig) -> u64 {
    // Invariant: postcard serialises these plain data types without error.
    let encoded = postcard::to_allocvec(record).map_or(0, |b| b.len()) as u64;
    if payload.mode == PayloadMode::Full {
        return encoded;
    }
    let declared = u64::from(payload.vector_len) * 8;
    let vector_extra = declared - 8 + varint_len(declared) - varint_len(8);
    let vectors = match record {
        Record::Contribution { .. } | Record::ChildHeld { .. } | Record::Released { .. } => 1,
        Record::ShareHeld { share, .. } => u64::from(matches!(share, CompressedShare::Full(_))),
        _ => 0,
    };
    encoded + vectors * vector_extra
}

/// The per-kB model: crypto per message, compute per kB of charged bytes.
fn per_kb_us(message: &Message, charged: u64, cpu: &CpuConfig) -> u64 {
    let CpuConfig::PerKb {
        crypto_ms_per_message,
        crypto_on,
        compute_us_per_kb,
    } = *cpu
    else {
        return 0;
    };
    let crypto = if pays_crypto(message, crypto_on) {
        crypto_ms_per_message * 1000.0
    } else {
        0.0
    };
    let compute = compute_us_per_kb * charged as f64 / 1024.0;
    (crypto + compute).round() as u64
}

/// Validity proofs (issue 17) in the cost model (`[validity]`; absent, contributions travel
/// unproven as the simulated engines run them): every share also carries its position's
/// validity share message (as `engine/validity.rs` sends it: a 32-byte seed for positions
/// `1..t-1`, the untied input share and the proof share at 8 bytes per element for the others,
/// with the blind and the commitments), its contributor first proves, and each leaf member
/// verifies it and sends its verifier share to the `g - 1` others. The statement is the real
/// circuit of the query the declared vector stands for ([`declared_query`]: a `sum_vector`
/// under `CLIP NORM`, proven PINE-style); sizes are the encoded messages of that circuit
/// ([`ValidityLoad::of_type`]), CPU per element of its proven input is measured on the same
/// circuit by `grove-sim crypto-cost` ([`measure_validity`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidityConfig {
    /// A contributor's proof job (the vector's aggregated shares again, then proving and
    /// sharing input and proof, both stages: the vector's shares and commitments, then its
    /// witness at the wraparound seed, with the projections), ns per input element.
    pub prove_ns_per_element: f64,
    /// A leaf member's verifier share (commitment checks, the wraparound projections of its
    /// input share, the FLP query) and decision on `g` verifier shares, ns per input element.
    pub verify_ns_per_element: f64,
}

/// Mean postcard bytes of a uniform `Field64` element sent as a `u64` varint (10 bytes at or
/// above 2^63, 9 from 2^56: about half each): the verifier share's elements
/// (`VerifierEntry::parts`) still travel so.
const FIELD_VARINT_BYTES: f64 = 9.5;

/// What the validity proof of the declared vector costs per contribution: the circuit of
/// [`declared_query`] (an indicator and a norm, no range per coordinate; with `[privacy]`, the
/// noise part and its ranges, as `CircuitType::of_query` builds it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ValidityLoad {
    /// Elements of the proven input (vector, noise and witness).
    pub input: u64,
    /// Bytes of one contributor's `g` validity share messages on the wire.
    pub upload_bytes: u64,
    /// Bytes charged on each of the `g` shares (`upload_bytes / g`, rounded up): the sim adds
    /// the validity share to its position's share, so the contributor's upload is right but
    /// its split is even, where the engine sends seeds to `1..t-1` and full shares to the
    /// rest.
    pub share_bytes: u64,
    /// Bytes one verifier share adds to a leaf member's batch to each other member (its
    /// entry in a `VerifierShareMsg`; the batch's header is shared by many contributors and
    /// not charged).
    pub verifier_bytes: u64,
    /// CPU of the contributor's proof, and of one member's verification, in microseconds.
    pub prove_us: u64,
    pub verify_us: u64,
}

impl ValidityLoad {
    /// The load of the declared vector's circuit ([`declared_circuit`]), with the DP noise of
    /// `noise` outside the proven vector if the request has any.
    pub fn of(
        vector_len: u32,
        value_max_abs: f64,
        noise: Option<&grove_protocol::dp::NoiseSpec>,
        params: SharingParams,
        cfg: &ValidityConfig,
    ) -> Result<ValidityLoad, String> {
        let typ = declared_circuit(vector_len, value_max_abs, noise)?;
        Ok(Self::of_type(&typ, params, cfg))
    }

    /// The load of contributions proving `typ` at `params`: the bytes are those of the
    /// messages `ValidityShare` and `VerifierShare` the engine encodes
    /// ([`validity_share_message_bytes`], [`verifier_entry_bytes`]).
    pub fn of_type(
        typ: &grove_protocol::validity::circuit::CircuitType,
        params: SharingParams,
        cfg: &ValidityConfig,
    ) -> ValidityLoad {
        let upload_bytes: u64 = (1..=params.g)
            .map(|p| validity_share_message_bytes(typ, params, p))
            .sum();
        let input = typ.lengths().input as u64;
        ValidityLoad {
            input,
            upload_bytes,
            share_bytes: upload_bytes.div_ceil(u64::from(params.g)),
            verifier_bytes: verifier_entry_bytes(typ),
            prove_us: (cfg.prove_ns_per_element * input as f64 / 1000.0).round() as u64,
            verify_us: (cfg.verify_ns_per_element * input as f64 / 1000.0).round() as u64,
        }
    }
}

/// Identifiers of the size the engine's are (fixed 32 bytes; a leaf's `GroupId` index is a
/// varint, taken at 1,000, two bytes, as in the large plans).
fn wire_ids() -> (
    grove_protocol::ids::ComputationId,
    grove_protocol::ids::GroupId,
    grove_protocol::ids::NodeId,
) {
    use grove_protocol::ids::{ComputationId, GroupId, NodeId};
    (
        ComputationId([0xa5; 32]),
        GroupId {
            level: 0,
            index: 1000,
        },
        NodeId([0x5a; 32]),
    )
}

/// The encoded bytes of the validity share message position `position` receives, built as
/// `engine/validity.rs` (`to_wire`, `send_validity_shares`) builds it: a
/// `ValidityShare::Seed` for positions `1..t` (`SharedContribution::seeds`), else the input
/// share without its tied elements (`CircuitType::untied`) and the proof share; sealed
/// (`seal::sealed_len`) and encoded (`codec::encode`).
pub fn validity_share_message_bytes(
    typ: &grove_protocol::validity::circuit::CircuitType,
    params: SharingParams,
    position: u8,
) -> u64 {
    use grove_protocol::field::{FieldVec, Fp};
    use grove_protocol::message::{ShareMsg, Slot, ValidityPart, ValidityPayload, ValidityShare};
    let (computation, group, contributor) = wire_ids();
    let l = typ.lengths();
    let share = if position < params.t {
        ValidityShare::Seed([0; 32])
    } else {
        let zeros = |n: usize| FieldVec(vec![Fp::from_i64(0); n]);
        ValidityShare::Full {
            input: zeros(l.input - typ.tied().len()),
            proof: zeros(l.proof),
        }
    };
    let g = usize::from(params.g);
    // A circuit with a norm commits to the vector's shares first (the wraparound seed's
    // stage, `validity::prove_staged_and_share`): `g` more commitments.
    let stages = if typ.has_wraparound() { 2 } else { 1 };
    let payload = ValidityPayload {
        computation,
        group,
        position,
        contributor,
        parts: vec![ValidityPart {
            share,
            blind: [0; 32],
            commitments: vec![[0; 32]; stages * g],
            proof_commitments: vec![[0; 32]; g],
        }],
    };
    // Invariant: postcard serialises these plain data types without error.
    let plain = postcard::to_allocvec(&payload).map_or(0, |b| b.len());
    let message = Message {
        computation,
        round: 0,
        body: Body::ValidityShare(ShareMsg {
            group,
            position,
            contributor,
            sealed: vec![0; seal::sealed_len(plain)],
        }),
        to: Some(Slot { group, position }),
    };
    grove_protocol::codec::encode(&message).map_or(0, |b| b.len()) as u64
}

/// The encoded bytes of a batch of `entries` verifier shares (`VerifierShareMsg`, one part
/// each, `engine/validity.rs` "Batching") of zeros: 1 byte per element.
fn verifier_batch_zeros(
    typ: &grove_protocol::validity::circuit::CircuitType,
    entries: usize,
) -> u64 {
    use grove_protocol::message::{VerifierEntry, VerifierShareMsg};
    let (computation, group, contributor) = wire_ids();
    let n = typ.lengths().verifier;
    let message = Message {
        computation,
        round: 0,
        body: Body::VerifierShare(VerifierShareMsg {
            group,
            position: 1,
            entries: vec![
                VerifierEntry {
                    contributor,
                    parts: vec![(vec![0; n], [0; 32])],
                };
                entries
            ],
        }),
        to: Some(grove_protocol::message::Slot { group, position: 2 }),
    };
    grove_protocol::codec::encode(&message).map_or(0, |b| b.len()) as u64
}

/// The bytes one contributor's verifier share adds to a leaf member's batch
/// (`VerifierShareMsg`): its entry, whose elements are `u64` varints, charged at
/// [`FIELD_VARINT_BYTES`] (uniform elements) instead of the 1 byte of the zeros encoded here.
pub fn verifier_entry_bytes(typ: &grove_protocol::validity::circuit::CircuitType) -> u64 {
    let n = typ.lengths().verifier;
    let entry = verifier_batch_zeros(typ, 2).saturating_sub(verifier_batch_zeros(typ, 1)) as f64;
    (entry + (FIELD_VARINT_BYTES - 1.0) * n as f64).round() as u64
}

/// The bytes of a batch's message around its entries (identifiers, routing, framing).
pub fn verifier_batch_header_bytes(typ: &grove_protocol::validity::circuit::CircuitType) -> u64 {
    let one = verifier_batch_zeros(typ, 1);
    let entry = verifier_batch_zeros(typ, 2).saturating_sub(one);
    one.saturating_sub(entry)
}

/// The query the declared vector stands for: `sum_vector` of its `vector_len - 1` values
/// under `CLIP NORM` at the largest norm they reach (`value_max_abs` each:
/// `value_max_abs sqrt(vector_len - 1)`, the norm `config::PrivacyConfig`'s sensitivity
/// assumes), in integers (`SCALE 0`); its compiled vector is the values and the contributor's
/// indicator, `vector_len` elements.
pub fn declared_query(vector_len: u32, value_max_abs: f64) -> String {
    let dims = vector_len.saturating_sub(1).max(1);
    let norm = value_max_abs.max(1.0) * f64::from(dims).sqrt();
    format!("SELECT sum_vector(w, {dims}) FROM t CLIP NORM w TO {norm:.3} SCALE 0")
}

/// [`declared_query`] compiled by the query compiler.
pub fn declared_compiled(
    vector_len: u32,
    value_max_abs: f64,
) -> Result<grove_protocol::query::CompiledQuery, String> {
    use grove_protocol::query::Query;
    let text = declared_query(vector_len, value_max_abs);
    let compiled = Query::parse(&text)
        .and_then(|q| q.compile())
        .map_err(|e| format!("validity: {text}: {e}"))?;
    if compiled.spec().length != vector_len.max(2) {
        return Err(format!(
            "validity: {text} compiles to {} elements, the payload declares {vector_len}",
            compiled.spec().length
        ));
    }
    Ok(compiled)
}

/// The validity circuit of the declared vector, as the engine builds it for
/// [`declared_query`] (`CircuitType::of_query`: the compiler's validity circuit, with the
/// request's DP noise outside the proven vector, bounded by its tail, if it has any).
pub fn declared_circuit(
    vector_len: u32,
    value_max_abs: f64,
    noise: Option<&grove_protocol::dp::NoiseSpec>,
) -> Result<grove_protocol::validity::circuit::CircuitType, String> {
    use grove_protocol::validity::circuit::CircuitType;
    let circuit = declared_compiled(vector_len, value_max_abs)?.validity_circuit();
    match noise {
        None => CircuitType::new(&circuit),
        Some(n) => CircuitType::with_noise(&circuit, n.tail()),
    }
    .map_err(|e| format!("validity: {e}"))
}

/// Measures [`ValidityConfig`] on this machine (`grove-sim crypto-cost`): the median of `runs`
/// proofs and verifications of the declared vector's circuit ([`declared_circuit`], no noise)
/// at `vector_len` elements, at `(g, t)`, per element of the proven input. The engine's
/// calls, as its proof job makes them (`engine/validity.rs`, `ProveJob`): the vector's
/// aggregated shares again, each converted into prio's field with its first-stage commitment
/// hashed on the way (`engine::aggregated_shares_for_proof`, the job's own function), then
/// `validity::prove_staged_tied_and_share_committed` (both stages, tied to those shares) for
/// the contributor; `verifier_share_staged` of one member's share and `decide_naming` on the
/// `g` verifier shares for a member (the engine hashes the member's own stage commitment
/// while it converts the held share; here `verifier_share_staged` hashes it).
pub fn measure_validity(
    g: u8,
    t: u8,
    vector_len: u32,
    value_max_abs: f64,
    runs: usize,
) -> Result<ValidityConfig, String> {
    use grove_protocol::engine::aggregated_shares_for_proof;
    use grove_protocol::query::{Record, Value};
    use grove_protocol::validity::{
        decide_naming, derived_query_seed, prove_staged_tied_and_share_committed,
        verifier_share_staged, MemberShare,
    };
    use std::time::Instant;
    let params = SharingParams::new(g, t).map_err(|e| e.to_string())?;
    let compiled = declared_compiled(vector_len, value_max_abs)?;
    let typ = declared_circuit(vector_len, value_max_abs, None)?;
    // Values spread over `[-value_max_abs, value_max_abs]`, inside the norm.
    let m = value_max_abs.round().max(1.0) as i64;
    let record: Record = [(
        "w".to_string(),
        Value::NumberArray(
            (0..i64::from(vector_len.saturating_sub(1).max(1)))
                .map(|i| (i % (2 * m + 1) - m) as f64)
                .collect(),
        ),
    )]
    .into_iter()
    .collect();
    let vector = compiled
        .contribution(std::slice::from_ref(&record))
        .map_err(|e| e.to_string())?;
    let ctx = b"grove-sim/validity-cost";
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // The proof job's work (`ProveJob::run` without DP noise): the aggregated shares as the
    // contributor sent them, converted with their stage commitments hashed, the input
    // encoded straight from the engine's elements, the tied proof.
    let seed = [7; 32];
    let prove = || {
        let (shares, stages) = aggregated_shares_for_proof(&vector, params, seed, 0, Some(&seed));
        let input = typ.encode_for_proof_from(vector.iter().map(|x| x.to_field64()), []);
        prove_staged_tied_and_share_committed(
            &typ, input, params, ctx, &seed, false, &shares, stages,
        )
    };
    let verify = |s: &MemberShare<_>| {
        verifier_share_staged(&typ, params, s, ctx, &derived_query_seed(ctx, s))
    };
    let mut prove_s = Vec::new();
    let mut verify_s = Vec::new();
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let shared = prove().map_err(|e| e.to_string())?;
        prove_s.push(start.elapsed().as_secs_f64());
        let start = Instant::now();
        let own = verify(&shared.shares[0]).map_err(|e| e.to_string())?;
        let own_s = start.elapsed().as_secs_f64();
        let mut all = vec![own];
        for s in &shared.shares[1..] {
            all.push(verify(s).map_err(|e| e.to_string())?);
        }
        let start = Instant::now();
        let (valid, _) = decide_naming(&typ, params, &all).map_err(|e| e.to_string())?;
        verify_s.push(own_s + start.elapsed().as_secs_f64());
        if !valid {
            return Err("the honest proof was rejected".into());
        }
    }
    let per = |s: f64| s * 1e9 / typ.lengths().input as f64;
    Ok(ValidityConfig {
        prove_ns_per_element: per(median(prove_s)),
        verify_ns_per_element: per(median(verify_s)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rayleigh_mean_matches() {
        let mut rng = SimRng::new(7);
        let model = LatencyModel::Rayleigh { mean_ms: 33.0 };
        let n = 200_000;
        let sum: u64 = (0..n).map(|_| rng.latency_us(&model)).sum();
        let mean_ms = sum as f64 / n as f64 / 1000.0;
        assert!((mean_ms - 33.0).abs() < 0.3, "mean {mean_ms}");
    }

    #[test]
    fn lognormal_median_matches() {
        let mut rng = SimRng::new(8);
        let model = LatencyModel::LogNormal {
            median_ms: 20.0,
            sigma: 0.5,
        };
        let mut draws: Vec<u64> = (0..100_001).map(|_| rng.latency_us(&model)).collect();
        draws.sort_unstable();
        let median_ms = draws[50_000] as f64 / 1000.0;
        assert!((median_ms - 20.0).abs() < 0.4, "median {median_ms}");
    }

    #[test]
    fn rayleigh_median_matches_and_is_capped() {
        let mut rng = SimRng::new(9);
        let model = LatencyModel::RayleighMedian {
            median_ms: 33.0,
            max_ms: 80.0,
        };
        let mut draws: Vec<u64> = (0..100_001).map(|_| rng.latency_us(&model)).collect();
        draws.sort_unstable();
        let median_ms = draws[50_000] as f64 / 1000.0;
        assert!((median_ms - 33.0).abs() < 0.4, "median {median_ms}");
        assert_eq!(draws[100_000], 80_000);
    }

    /// The validity bytes the simulator charges per contributor ([`ValidityLoad::of`], the
    /// call `sim.rs` makes for its declared vector) are those the engine sends for the query
    /// that vector stands for: [`declared_query`] (a `sum_vector` of 2,000 values in
    /// `[-1000, 1000]` under `CLIP NORM`, proven PINE-style) run by the protocol harness at
    /// `(g, t) = (5, 3)`, its `validity-share` and `verifier-share` bytes counted by the harness
    /// (the latter batched: the messages' headers apart, the entries' bytes).
    /// A change of the validity wire breaks it, and so does a model back on a range per
    /// coordinate (11 bits each here: about 22,000 more input elements per full share).
    #[test]
    fn validity_bytes_match_the_engine() {
        use grove_protocol::harness::{Cluster, HarnessConfig, LaunchParams};
        use grove_protocol::query::{Query, Record, Value};
        let (g, t, contributors) = (5u8, 3u8, 3usize);
        let (vector_len, max_abs) = (2001u32, 1000.0);
        let text = declared_query(vector_len, max_abs);
        let compiled = Query::parse(&text).unwrap().compile().unwrap();
        assert_eq!(compiled.spec().length, vector_len);
        let record: Record = [(
            "w".to_string(),
            Value::NumberArray((0..2000).map(|i| f64::from(i - 1000)).collect()),
        )]
        .into_iter()
        .collect();
        // Enough nodes that no contributor serves a position of its own leaf.
        let mut c = Cluster::new(HarnessConfig::new(60, 17));
        let values = compiled.evaluate(std::slice::from_ref(&record));
        for i in 1..=contributors {
            c.set_contribution(i, values.clone());
        }
        let mut p = LaunchParams::new(g, t, 1, 2, 1);
        p.spec = compiled.spec().clone();
        let id = c.launch_query(0, &p, &text);
        let o = c.run_checked(&id);
        assert!(o.released.is_some(), "nothing released: {:?}", o.failures);
        assert_eq!(o.included.len(), contributors);
        let sent = |kind: &str| c.traffic.by_kind.get(kind).copied().unwrap_or_default();
        assert_eq!(sent("share").0, (contributors * usize::from(g)) as u64);
        assert_eq!(
            sent("validity-share").0,
            (contributors * usize::from(g)) as u64
        );
        let cfg = ValidityConfig {
            prove_ns_per_element: 0.0,
            verify_ns_per_element: 0.0,
        };
        let load =
            ValidityLoad::of(vector_len, max_abs, None, SharingParams { g, t }, &cfg).unwrap();
        let engine = sent("validity-share").1 / contributors as u64;
        // The ids' varints may differ by a byte or two per message (leaf index, round).
        let slack = 4 * u64::from(g);
        assert!(
            load.upload_bytes.abs_diff(engine) <= slack,
            "model {} bytes per contributor, engine {engine}",
            load.upload_bytes
        );
        assert!(load.share_bytes * u64::from(g) - load.upload_bytes < u64::from(g));
        // Batched: each member sends its peers a few messages, not one per contributor, so
        // the model charges the entries and not the messages' headers.
        let verifier = sent("verifier-share");
        let pairs = u64::from(g) * u64::from(g - 1);
        assert!(verifier.0 <= 2 * pairs, "{} verifier messages", verifier.0);
        let typ = declared_circuit(vector_len, max_abs, None).unwrap();
        let headers = verifier.0 * verifier_batch_header_bytes(&typ);
        let entries = contributors as u64 * pairs;
        let per_entry = verifier.1.saturating_sub(headers) as f64 / entries as f64;
        assert!(
            (load.verifier_bytes as f64 - per_entry).abs() <= 8.0,
            "model {} bytes per verifier share, engine {per_entry}",
            load.verifier_bytes
        );
    }

    #[test]
    fn transfer_time() {
        // 6,000 kB at 6,000 kB/s is one second.
        assert_eq!(transfer_us(6000 * 1024, 6000.0), 1_000_000);
    }
}
