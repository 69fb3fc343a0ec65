//! The cost of validity proofs (issue 17) on the engine's path: upload per contributor and CPU
//! per leaf member, with and without proofs, at `(g, t) = (5, 3)`, for a scalar query, a
//! 16-key `GROUP BY`, and `sum_vector` of 10,000 and 131,072 coordinates (`CLIP NORM 1`,
//! default `SCALE 2`: a norm of at most 100 field units plus the rounding slack).
//!
//! **Upload** is what the engine sends, counted by the harness (`Cluster::traffic`): the same
//! query launched with its text (validity on: `share` and `validity-share` messages) and
//! without (the same spec, no proofs: `share` only), `CONTRIBUTORS` contributors, divided by
//! them. Every byte is an encoded message: sealed payloads, envelopes, headers. The
//! `verifier-share` column is what one leaf member sends per contributor (its verifier share
//! to the `g - 1` others).
//!
//! **CPU per leaf member** replays, on one core, what a member does per contributor. Without
//! proofs: expand its seed share or decode its full share, add it to its sum. With proofs, also
//! (as `engine/validity.rs`): decode its validity share, check its commitments and compute its
//! verifier share (`validity::verifier_share_staged`: for a `CLIP NORM` vector, the
//! wraparound projections of its input share too), `truncate` its input share and compare it with
//! the aggregated share it holds (the tie), and decide on all `g` verifier shares
//! (`validity::decide_naming`). Sealing and opening are not in these two columns (`leaf plain`,
//! `leaf proof`): the plain one is the bare arithmetic floor, a few ns per element.
//!
//! **A member's whole work per contributor** (`member`, `member+pf`, like for like): without
//! proofs, opening the sealed share (`seal::open`, the engine's Noise envelope), decoding it
//! (postcard, as `collection::open_payload`), expanding or reading it and adding it; with
//! proofs, the same plus opening and decoding the sealed validity part and all of the
//! `leaf proof` work. Persisting the held share (`Record::ShareHeld`, the same in both) is in
//! neither, nor are message headers. Median of several runs; the machine may be shared, so
//! the load average is printed. Run (optimised like the test profile, nice):
//! `nice cargo run --profile test -p grove-protocol --example validity_cost [RUNS]`.
//!
//! **Measured** (session 16, `validity_cost 9`, three runs alternating with the binary
//! before the session's changes, load 6; ms per contributor, `member` / `member+pf` / ratio;
//! ARCHITECTURE.md, "Validity proofs", "Costs", for the table and the floor):
//! - scalar `sum`: 0.058-0.065 / 0.125-0.135 / 2.1-2.2x (before 0.130-0.140, 2.1-2.2x);
//! - 16-key `GROUP BY`: 0.058-0.065 / 0.173-0.190 / 2.8-3.0x (before 2.9-3.1x);
//! - `sum_vector` 10,000: 0.22-0.25 / 0.93-1.04 / 4.2-4.3x (before 1.55-1.67, 6.3-6.7x);
//!   upload 278 kB against 241 kB plain, 1.15x (before 289 kB, 1.20x); verifier share
//!   0.56-0.64 (before 1.10-1.15), of which the wraparound projections 0.29-0.32 (before
//!   0.48-0.53) and their ChaCha20 stream 0.09-0.10 (before 0.14-0.16);
//! - `sum_vector` 131,072: 1.27-1.44 / 16-25 / 12.5-18x (before 40-43, 31-33x; runs this
//!   long are preempted at that load); upload 3,212 kB against 3,148 kB, 1.02x.

use grove_protocol::field::{add_assign_vec, FieldVec, Fp};
use grove_protocol::harness::{Cluster, HarnessConfig, LaunchParams};
use grove_protocol::message::{ValidityPart, ValidityShare};
use grove_protocol::query::{CompiledQuery, Query, Record, Value};
use grove_protocol::seal;
use grove_protocol::sharing::{share_vector_compressed, CompressedShare, SharingParams};
use grove_protocol::validity::circuit::CircuitType;
use grove_protocol::validity::circuit::WRAP_CHECKS;
use grove_protocol::validity::{
    decide_naming, derived_query_seed, expand_seed_share_untied, prove_staged_tied_and_share,
    verifier_share_staged, wraparound_seed, MemberShare, Staged,
};
use prio::field::Field64;
use prio::flp::{Flp, Type};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::time::Instant;

const G: u8 = 5;
const T: u8 = 3;
const CONTEXT: &[u8] = b"cost / contributor";
/// Contributors of the harness runs that count the engine's bytes.
const CONTRIBUTORS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time<R>(runs: usize, mut f: impl FnMut() -> R) -> f64 {
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(f());
                start.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn rec(fields: Vec<(&str, Value)>) -> Record {
    fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// Bytes the engine sent per contributor for `text`, with proofs (`with_text`) or without:
/// `(share, validity-share, verifier-share)` summed over the run, over `CONTRIBUTORS`.
fn engine_bytes(
    compiled: &CompiledQuery,
    text: &str,
    record: &Record,
    with_text: bool,
) -> [f64; 3] {
    // Enough nodes that no contributor serves a position of its own leaf (a share it hands
    // itself is no message): checked below.
    let mut c = Cluster::new(HarnessConfig::new(60, 17));
    let values = compiled.evaluate(std::slice::from_ref(record));
    for i in 1..=CONTRIBUTORS {
        c.set_contribution(i, values.clone());
    }
    let mut p = LaunchParams::new(G, T, 1, 2, 1);
    p.spec = compiled.spec().clone();
    let id = c.launch_query(0, &p, if with_text { text } else { "" });
    let o = c.run_checked(&id);
    assert!(o.released.is_some(), "nothing released: {:?}", o.failures);
    assert_eq!(o.included.len(), CONTRIBUTORS, "a contributor was left out");
    let sent = |kind: &str| c.traffic.by_kind.get(kind).copied().unwrap_or_default();
    assert_eq!(
        sent("share").0,
        (CONTRIBUTORS * usize::from(G)) as u64,
        "a contributor served its own leaf"
    );
    let bytes = |kind: &str| sent(kind).1 as f64;
    let n = CONTRIBUTORS as f64;
    [
        bytes("share") / n,
        bytes("validity-share") / n,
        bytes("verifier-share") / n,
    ]
}

/// Peak resident memory of this process so far, in MiB (`VmHWM`).
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// `validity_cost build`: what a leaf member spends on the statement of the largest
/// `sum_vector` request (`MAX_VECTOR_LEN` elements, 4 `GROUP BY` rows of 1,048,575
/// coordinates and an indicator), whose circuit is over the validity limits: compiling the
/// query, its validity circuit, and the prio type's build (which refuses it). Peak memory is
/// the process's, read after each step.
fn build_cost() {
    let text = "SELECT sum_vector(w, 1048575) FROM t GROUP BY k IN ('a', 'b', 'c', 'd') \
                CLIP NORM w TO 1";
    println!("peak memory at start: {:.0} MiB", peak_mib());
    let start = Instant::now();
    let compiled = Query::parse(text)
        .expect("query parses")
        .compile()
        .expect("query compiles");
    println!(
        "compile: {:.1} ms, peak {:.0} MiB ({} elements)",
        start.elapsed().as_secs_f64() * 1e3,
        peak_mib(),
        compiled.spec().length
    );
    let start = Instant::now();
    let circuit = compiled.validity_circuit();
    println!(
        "validity circuit: {:.1} ms, peak {:.0} MiB",
        start.elapsed().as_secs_f64() * 1e3,
        peak_mib()
    );
    let start = Instant::now();
    let typ = CircuitType::new(&circuit);
    println!(
        "circuit type: {:.1} ms, peak {:.0} MiB: {:?}",
        start.elapsed().as_secs_f64() * 1e3,
        peak_mib(),
        typ.map(|t| t.lengths())
    );
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("build") {
        build_cost();
        return;
    }
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let params = SharingParams::new(G, T).expect("valid parameters");
    let keys: Vec<String> = (0..16).map(|i| format!("'k{i}'")).collect();
    let cases: Vec<(&str, String, Record)> = vec![
        (
            "scalar sum",
            "SELECT sum(x) FROM t CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1".into(),
            rec(vec![("x", Value::Number(42.5))]),
        ),
        (
            "16-key GROUP BY count, sum",
            format!(
                "SELECT count(*), sum(x) FROM t GROUP BY k IN ({}) CLIP x TO [0, 100] \
                 LIMIT PER CONTRIBUTOR 1",
                keys.join(", ")
            ),
            rec(vec![
                ("k", Value::Text("k5".into())),
                ("x", Value::Number(42.5)),
            ]),
        ),
        (
            "sum_vector 10,000",
            "SELECT sum_vector(w, 10000) FROM t CLIP NORM w TO 1".into(),
            rec(vec![(
                "w",
                Value::NumberArray(
                    (0..10_000)
                        .map(|i| ((i % 7) as f64 - 3.0) / 400.0)
                        .collect(),
                ),
            )]),
        ),
        (
            "sum_vector 131,072",
            "SELECT sum_vector(w, 131072) FROM t CLIP NORM w TO 1".into(),
            rec(vec![(
                "w",
                Value::NumberArray(
                    (0..131_072)
                        .map(|i| ((i % 7) as f64 - 3.0) / 1000.0)
                        .collect(),
                ),
            )]),
        ),
    ];
    println!("validity proof costs at (g, t) = ({G}, {T}), median of {runs} runs");
    println!("load average before: {}", load());
    println!(
        "{:<28} {:>7} {:>8} {:>6} {:>5} {:>5} | {:>10} {:>10} {:>6} {:>9} | {:>9} {:>9} {:>6} | {:>9} {:>9} {:>6} | {:>9}",
        "query",
        "L",
        "witness",
        "proof",
        "chunk",
        "verif",
        "up plain",
        "up proofs",
        "ratio",
        "verif/ctr",
        "leaf plain",
        "leaf proof",
        "ratio",
        "member",
        "member+pf",
        "ratio",
        "prove",
    );
    let mut breakdown = Vec::new();
    for (name, text, record) in &cases {
        let compiled = Query::parse(text)
            .expect("query parses")
            .compile()
            .expect("query compiles");
        // The engine's statement (`engine/validity.rs`): the whole circuit, one proof.
        let typ = CircuitType::new(&compiled.validity_circuit()).expect("circuit fits");
        let lengths = typ.lengths();
        let vector = compiled
            .contribution(std::slice::from_ref(record))
            .expect("contribution encodes");
        let l = vector.len();
        let t = usize::from(T);

        let plain = engine_bytes(&compiled, text, record, false);
        let proofs = engine_bytes(&compiled, text, record, true);
        let up_plain = plain[0];
        let up_proofs = proofs[0] + proofs[1];
        let verifier_per_member = proofs[2] / f64::from(G);

        // The contributor's proof, tied to its aggregated shares as the engine ties it.
        let seed = [9u8; 32];
        let f64v: Vec<Field64> = vector.iter().map(|x| x.to_field64()).collect();
        let shares = share_vector_compressed(&vector, params, seed);
        let aggregated: Vec<Vec<Field64>> = shares
            .iter()
            .map(|s| s.expand(l).iter().map(|x| x.to_field64()).collect())
            .collect();
        let input = typ.encode_measurement(&f64v).expect("honest vector");
        let prove = || {
            prove_staged_tied_and_share(&typ, &input, params, CONTEXT, &seed, false, &aggregated)
                .expect("proves")
        };
        let prove_secs = time(runs.min(3), prove);
        let contribution = prove();
        // Each position's validity share as the engine's wire carries it: a seed for
        // positions 1..t-1, else the input share without its tied elements and the proof.
        let fixed = |v: &[Field64]| FieldVec(v.iter().map(|x| Fp::from_field64(*x)).collect());
        let wire: Vec<Vec<u8>> = contribution
            .shares
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let share = match contribution.seeds.get(i) {
                    Some(seed) => ValidityShare::Seed(*seed),
                    None => ValidityShare::Full {
                        input: fixed(&typ.untied(&s.input)),
                        proof: fixed(&s.proof),
                    },
                };
                postcard::to_allocvec(&ValidityPart {
                    share,
                    blind: s.blind,
                    commitments: s.commitments.clone(),
                    proof_commitments: s.proof_commitments.clone(),
                })
                .expect("encodes")
            })
            .collect();

        // A leaf member without proofs: expand or decode its share, add it to its sum.
        let share_wire: Vec<Vec<u8>> = shares
            .iter()
            .map(|s| match s {
                CompressedShare::Seed(x) => x.to_vec(),
                CompressedShare::Full(v) => v.to_bytes(),
            })
            .collect();
        let held = |p: usize| {
            if p < t - 1 {
                let s: [u8; 32] = share_wire[p].as_slice().try_into().expect("a seed");
                CompressedShare::Seed(s).expand(l)
            } else {
                FieldVec::from_bytes(&share_wire[p]).expect("canonical").0
            }
        };
        let plain_member = |p: usize| {
            let mut sum = vec![Fp::ZERO; l];
            add_assign_vec(&mut sum, &held(p));
            sum
        };
        let plain_secs = median(
            (0..usize::from(G))
                .map(|p| time(runs, || plain_member(p)))
                .collect(),
        );

        // With proofs: the same, then its verifier share, the tie, the decision on all g.
        let verifiers: Vec<_> = contribution
            .shares
            .iter()
            .map(|s| {
                verifier_share_staged(&typ, params, s, CONTEXT, &derived_query_seed(CONTEXT, s))
                    .expect("verifier share")
            })
            .collect();
        // What a member adds with proofs, from its validity part's bytes and the aggregated
        // share it holds: its verifier share, the tie, the decision on all g.
        let proof_work = |p: usize, part: &[u8], held: &[Fp]| {
            let part: ValidityPart = postcard::from_bytes(part).expect("decodes");
            let aggregated: Vec<Field64> = held.iter().map(|x| x.to_field64()).collect();
            let (input, proof) = match part.share {
                ValidityShare::Seed(seed) => {
                    let (mut input, proof) = expand_seed_share_untied(
                        &seed,
                        typ.input_len(),
                        typ.proof_len(),
                        typ.tied(),
                    );
                    typ.tie(&aggregated, &mut input);
                    (input, proof)
                }
                ValidityShare::Full { input, proof } => {
                    let input: Vec<Field64> = input.0.iter().map(|x| x.to_field64()).collect();
                    (
                        typ.retie(&input, &aggregated).expect("lengths"),
                        proof.0.iter().map(|x| x.to_field64()).collect(),
                    )
                }
            };
            let s = MemberShare {
                position: contribution.shares[p].position,
                input,
                proof,
                blind: part.blind,
                commitments: part.commitments,
                proof_commitments: part.proof_commitments,
            };
            let v =
                verifier_share_staged(&typ, params, &s, CONTEXT, &derived_query_seed(CONTEXT, &s))
                    .expect("verifier share");
            let implied = typ.truncate(s.input).expect("truncates");
            let tie = aggregated.into_iter().eq(implied);
            let (ok, off) = decide_naming(&typ, params, &verifiers).expect("decides");
            assert!(
                ok && tie && off.is_empty(),
                "the honest contribution was rejected"
            );
            v
        };
        let proof_member = |p: usize| {
            let sum = plain_member(p);
            (sum, proof_work(p, &wire[p], &held(p)))
        };
        let per_position: Vec<f64> = (0..usize::from(G))
            .map(|p| time(runs, || proof_member(p)))
            .collect();
        let proof_secs = median(per_position.clone());

        // The member's whole work per contributor, as the engine does it: open the sealed
        // share (`seal::open`, the Noise envelope), decode the payload (postcard), expand or
        // read the share, add it; with proofs, also open and decode the sealed validity
        // part, then the work above. Persisting is in neither.
        let secret = [3u8; 32];
        let public = seal::x25519_public(&secret);
        let sealed_shares: Vec<Vec<u8>> = shares
            .iter()
            .zip(0u8..)
            .map(|(s, i)| {
                let bytes = postcard::to_allocvec(s).expect("encodes");
                seal::seal(&public, &bytes, [i; 32]).expect("seals")
            })
            .collect();
        let sealed_parts: Vec<Vec<u8>> = wire
            .iter()
            .zip(100u8..)
            .map(|(w, i)| seal::seal(&public, w, [i; 32]).expect("seals"))
            .collect();
        let whole_plain = |p: usize| {
            let bytes = seal::open(&secret, &sealed_shares[p]).expect("opens");
            let share: CompressedShare = postcard::from_bytes(&bytes).expect("decodes");
            let held = share.expand(l);
            let mut sum = vec![Fp::ZERO; l];
            add_assign_vec(&mut sum, &held);
            (sum, held)
        };
        let whole_proof = |p: usize| {
            let (sum, held) = whole_plain(p);
            let part = seal::open(&secret, &sealed_parts[p]).expect("opens");
            (sum, proof_work(p, &part, &held))
        };
        let whole_plain_secs = median(
            (0..usize::from(G))
                .map(|p| time(runs, || whole_plain(p)))
                .collect(),
        );
        let whole_proof_secs = median(
            (0..usize::from(G))
                .map(|p| time(runs, || whole_proof(p)))
                .collect(),
        );

        // Where a member's proof work goes, for a norm: its whole verifier share, the
        // wraparound projections inside it, the ChaCha20 stream they read alone (2 bits per
        // check and coordinate), and the decision.
        if typ.has_wraparound() {
            // Positions below `t` receive a seed (their input share is expanded, its vector
            // part written by the tie), the others their full share.
            breakdown.push(format!(
                "{name}: leaf proof by position (seed positions 1..{}): {}",
                t - 1,
                per_position
                    .iter()
                    .map(|s| format!("{:.3} ms", s * 1e3))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            let s = &contribution.shares[usize::from(G) - 1];
            let query_seed = derived_query_seed(CONTEXT, s);
            let verify = time(runs, || {
                verifier_share_staged(&typ, params, s, CONTEXT, &query_seed).expect("verifies")
            });
            let staged = typ.staged(&wraparound_seed(CONTEXT, &s.commitments[..usize::from(G)]));
            let projections = time(runs, || staged.wraparound_projections(&s.input));
            let mut stream = vec![0u8; l.div_ceil(8) * 2 * WRAP_CHECKS];
            let chacha = time(runs, || {
                ChaCha20Rng::from_seed([1; 32]).fill_bytes(&mut stream);
                stream[0]
            });
            let decide = time(runs, || decide_naming(&typ, params, &verifiers));
            breakdown.push(format!(
                "{name}: verifier share {:.3} ms, of which projections {:.3} ms (their ChaCha20 \
                 stream alone {:.3} ms, {} bytes); decision on {G} shares {:.3} ms",
                verify * 1e3,
                projections * 1e3,
                chacha * 1e3,
                stream.len(),
                decide * 1e3
            ));
        }

        println!(
            "{:<28} {:>7} {:>8} {:>6} {:>5} {:>5} | {:>9.1}k {:>9.1}k {:>5.2}x {:>8.1}k | {:>7.3}ms {:>7.3}ms {:>5.0}x | {:>7.3}ms {:>7.3}ms {:>5.1}x | {:>7.1}ms",
            name,
            l,
            typ.witness_len(),
            lengths.proof,
            typ.chunk_len(),
            lengths.verifier,
            up_plain / 1000.0,
            up_proofs / 1000.0,
            up_proofs / up_plain,
            verifier_per_member / 1000.0,
            plain_secs * 1e3,
            proof_secs * 1e3,
            proof_secs / plain_secs,
            whole_plain_secs * 1e3,
            whole_proof_secs * 1e3,
            whole_proof_secs / whole_plain_secs,
            prove_secs * 1e3,
        );
    }
    for line in &breakdown {
        println!("{line}");
    }
    println!("load average after: {}", load());
}
