//! The cost of validity proofs (issue 17): upload per contributor and CPU per leaf member, with
//! and without proofs, at `(g, t) = (5, 3)`, for a scalar query, a 16-key `GROUP BY`, and
//! `sum_vector` of 10,000 and 131,072 coordinates (`CLIP NORM 1`, default `SCALE 2`, so every
//! coordinate is in `[-100, 100]`).
//!
//! Without proofs a contributor uploads its compressed sharing (`t - 1` positions get a 32-byte
//! seed, `g - t + 1` the full vector of 8-byte elements) and a leaf member expands or decodes
//! its share and adds it to its sum. With proofs (`validity::circuit::CircuitType`, the whole
//! circuit in one prio proof) the contributor also uploads, per position, its shares of the
//! witness bits and of the proof (the vector prefix of the proven input is the aggregated
//! sharing itself, not sent twice), its blind and the `2 g` commitments; a leaf member also
//! checks its commitments, computes its verifier share and decides from `t` of them. Two
//! upload figures: as `validity::MemberShare` travels today (every position gets full witness
//! and proof shares), and with the seed compression the aggregated shares already use
//! (positions `1..t-1` of `validity::shamir::share` are seed expansions). Not counted in
//! either: sealing, framing, the verifier shares members exchange (`2 + 2 chunk` elements
//! each; `pf@v<=64` is the proof length when the chunk is cut so that a verifier share fits
//! `limits::MAX_VERIFIER_LEN`), and the network.
//!
//! CPU is the median of several runs on one core; the machine may be shared, so the load
//! average is printed. Run (optimised like the test profile, nice):
//! `nice cargo run --profile test -p grove-protocol --example validity_cost [RUNS]`.

use grove_protocol::field::{add_assign_vec, FieldVec, Fp};
use grove_protocol::query::{Query, Record, Value};
use grove_protocol::sharing::{share_vector_compressed, CompressedShare, SharingParams};
use grove_protocol::validity::circuit::CircuitType;
use grove_protocol::validity::{
    decide, derived_query_seed, prove_adjusted_and_share, verifier_share,
};
use prio::field::Field64;
use prio::flp::Flp;
use std::time::Instant;

const G: u8 = 5;
const T: u8 = 3;
const CONTEXT: &[u8] = b"cost / contributor";

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

fn main() {
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
        "{:<28} {:>7} {:>8} {:>7} {:>6} {:>8} | {:>10} {:>10} {:>6} {:>10} {:>6} | {:>9} {:>9} {:>6} | {:>9}",
        "query",
        "L",
        "witness",
        "proof",
        "chunk",
        "pf@v<=64",
        "up plain",
        "up proof",
        "ratio",
        "up cmpr.",
        "ratio",
        "leaf plain",
        "leaf proof",
        "ratio",
        "prove",
    );
    for (name, text, record) in &cases {
        let compiled = Query::parse(text)
            .expect("query parses")
            .compile()
            .expect("query compiles");
        let circuit = compiled.validity_circuit();
        let typ = CircuitType::new(&circuit).expect("circuit fits");
        let vector = compiled
            .contribution(std::slice::from_ref(record))
            .expect("contribution encodes");
        let l = vector.len();
        let w = typ.witness_len();
        let proof = typ.proof_len();
        let (g, t) = (usize::from(G), usize::from(T));

        // Upload without proofs: t - 1 seeds and g - t + 1 full vectors.
        let up_plain = (t - 1) * 32 + (g - t + 1) * l * 8;
        // With proofs, per position: witness and proof shares, blind, 2 g commitments.
        let per_position_extra = 32 + 2 * g * 32;
        let up_full = up_plain + g * ((w + proof) * 8 + per_position_extra);
        let up_compressed =
            up_plain + (g - t + 1) * (w + proof) * 8 + (t - 1) * 32 + g * per_position_extra;

        // The contributor's work.
        let seed = [9u8; 32];
        let f64v: Vec<Field64> = vector.iter().map(|x| x.to_field64()).collect();
        let shares = share_vector_compressed(&vector, params, seed);
        let aggregated: Vec<Vec<Fp>> = shares.iter().map(|s| s.expand(l)).collect();
        let input = {
            use prio::flp::Type;
            typ.encode_measurement(&f64v).expect("honest vector")
        };
        let prove = || {
            prove_adjusted_and_share(
                &typ,
                &input,
                params,
                CONTEXT,
                &seed,
                false,
                |p, share| {
                    // The tie: the vector prefix is the aggregated share of that position.
                    for (x, y) in share.iter_mut().zip(&aggregated[usize::from(p) - 1]) {
                        *x = y.to_field64();
                    }
                },
                |_, _| {},
            )
            .expect("proves")
        };
        let prove_secs = time(runs.min(3), prove);
        let contribution = prove();

        // A leaf member without proofs: expand or decode its share, add it to its sum.
        let wire: Vec<Vec<u8>> = shares
            .iter()
            .map(|s| match s {
                CompressedShare::Seed(x) => x.to_vec(),
                CompressedShare::Full(v) => v.to_bytes(),
            })
            .collect();
        let plain_member = |p: usize| {
            let mut sum = vec![Fp::ZERO; l];
            let share = if p < t - 1 {
                let s: [u8; 32] = wire[p].as_slice().try_into().expect("a seed");
                CompressedShare::Seed(s).expand(l)
            } else {
                FieldVec::from_bytes(&wire[p]).expect("canonical").0
            };
            add_assign_vec(&mut sum, &share);
            sum
        };
        let plain_secs = median((0..g).map(|p| time(runs, || plain_member(p))).collect());

        // With proofs: the same, then its verifier share, then the decision from t of them.
        let verifiers: Vec<_> = contribution
            .shares
            .iter()
            .map(|s| {
                verifier_share(&typ, params, s, CONTEXT, &derived_query_seed(CONTEXT, s))
                    .expect("verifier share")
            })
            .collect();
        assert!(decide(&typ, params, &verifiers[..t]).expect("decides"));
        let proof_member = |p: usize| {
            let sum = plain_member(p);
            let s = &contribution.shares[p];
            let v = verifier_share(&typ, params, s, CONTEXT, &derived_query_seed(CONTEXT, s))
                .expect("verifier share");
            let ok = decide(&typ, params, &verifiers[..t]).expect("decides");
            (sum, v, ok)
        };
        let proof_secs = median((0..g).map(|p| time(runs, || proof_member(p))).collect());

        println!(
            "{:<28} {:>7} {:>8} {:>7} {:>6} {:>8} | {:>9.1}k {:>9.1}k {:>5.2}x {:>9.1}k {:>5.2}x | {:>7.3}ms {:>7.3}ms {:>5.0}x | {:>7.1}ms",
            name,
            l,
            w,
            proof,
            typ.chunk_len(),
            typ.clone().with_verifier_len_at_most(64).proof_len(),
            up_plain as f64 / 1000.0,
            up_full as f64 / 1000.0,
            up_full as f64 / up_plain as f64,
            up_compressed as f64 / 1000.0,
            up_compressed as f64 / up_plain as f64,
            plain_secs * 1e3,
            proof_secs * 1e3,
            proof_secs / plain_secs,
            prove_secs * 1e3,
        );
    }
    println!("load average after: {}", load());
}
