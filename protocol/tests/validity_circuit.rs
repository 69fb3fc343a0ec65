//! The whole validity circuit of a query as one prio proof (`validity::circuit::CircuitType`),
//! proven by a contributor and checked by a leaf group of `(5, 3)` on Shamir shares.
//!
//! Scenarios (each attack below fails when its constraint is removed from the circuit; the
//! report of issue 17 lists the mutation checks): a value outside its `CLIP` bounds, an
//! indicator of 1,000, two `GROUP BY` keys for one record, an indicator of 1 without a
//! record, a histogram row with two buckets, a vector over its `CLIP NORM`, and a forged
//! proof are rejected; every honest contribution is accepted, and the proven vector is the
//! contribution itself (`truncate`).
//!
//! Properties (seeded, deterministic): for random queries and random records (every other case
//! with DP noise outside the proven vector), the proof of the
//! honest contribution is accepted by every `t`-subset; a random change of one member's input
//! or proof share (made by the contributor before it commits) is rejected.

use grove_protocol::field::Fp;
use grove_protocol::query::{CompiledQuery, Query, Record, Value};
use grove_protocol::sharing::SharingParams;
use grove_protocol::validity::circuit::CircuitType;
use grove_protocol::validity::{
    decide, decide_naming, derived_query_seed, forge_and_share, prove_adjusted_and_share,
    prove_encoded_and_share, verifier_share, SharedContribution, ValidityError,
};
use prio::field::{Field64, FieldElement};
use prio::flp::{Flp, Type};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

const CONTEXT: &[u8] = b"request 9 / contributor 4";

fn params() -> SharingParams {
    SharingParams::new(5, 3).unwrap()
}

fn compiled(text: &str) -> (CompiledQuery, CircuitType) {
    let c = Query::parse(text).unwrap().compile().unwrap();
    let typ = CircuitType::new(&c.validity_circuit()).unwrap();
    (c, typ)
}

fn seed(i: u64) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&i.to_le_bytes());
    s[31] = 7;
    s
}

fn rec(fields: &[(&str, Value)]) -> Record {
    fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn f64s(v: &[Fp]) -> Vec<Field64> {
    v.iter().map(|x| x.to_field64()).collect()
}

/// The decisions of the first `t`, the last `t` and all `g` members; the query seed is derived
/// from the contribution (as the engine does today).
fn decisions(typ: &CircuitType, c: &SharedContribution<Field64>) -> Vec<Result<bool, String>> {
    let p = params();
    let v: Vec<_> = c
        .shares
        .iter()
        .map(|s| verifier_share(typ, p, s, CONTEXT, &derived_query_seed(CONTEXT, s)).unwrap())
        .collect();
    let t = p.t as usize;
    [v[..t].to_vec(), v[v.len() - t..].to_vec(), v.clone()]
        .iter()
        .map(|set| decide(typ, p, set).map_err(|e| e.to_string()))
        .collect()
}

/// Proves `vector` (valid or not) and returns the group's decision; all subsets must agree.
fn accepted(typ: &CircuitType, vector: &[Field64], s: u64) -> bool {
    let input = typ.encode_lenient(vector);
    let c = prove_encoded_and_share(typ, &input, params(), CONTEXT, &seed(s)).unwrap();
    let d = decisions(typ, &c);
    assert!(d.iter().all(|x| *x == d[0]), "subsets disagree: {d:?}");
    d[0].clone().unwrap()
}

fn honest(c: &CompiledQuery, records: &[Record]) -> Vec<Field64> {
    f64s(&c.contribution(records).unwrap())
}

fn set(v: &mut [Field64], i: usize, x: i64) {
    v[i] = Fp::from_i64(x).to_field64();
}

fn column(c: &CompiledQuery, kind: grove_protocol::query::ColumnKind) -> usize {
    c.columns().iter().position(|x| x.kind == kind).unwrap()
}

#[test]
fn honest_contributions_of_every_aggregate_kind_are_accepted_and_are_the_proven_vector() {
    let queries = [
        "SELECT sum(x) FROM t CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1 SCALE 2",
        "SELECT count(*), sum(x), avg(x), var(x), stddev(x), count(DISTINCT CONTRIBUTOR) \
         FROM t GROUP BY k IN ('a', 'b', 'c') CLIP x TO [-5, 5] LIMIT PER CONTRIBUTOR 3",
        "SELECT histogram(x, [0, 10, 50, 100]) FROM t LIMIT PER CONTRIBUTOR 2 SCALE 0",
        "SELECT sum_vector(w, 4) FROM t CLIP NORM w TO 2 LIMIT PER CONTRIBUTOR 1",
    ];
    let records = [
        vec![],
        vec![rec(&[
            ("k", Value::Text("b".into())),
            ("x", Value::Number(4.25)),
            ("w", Value::NumberArray(vec![1.0, -1.0, 0.5, 0.25])),
        ])],
        vec![
            rec(&[
                ("k", Value::Text("a".into())),
                ("x", Value::Number(-9.0)),
                ("w", Value::NumberArray(vec![9.0, 9.0, 9.0, 9.0])),
            ]),
            rec(&[("k", Value::Text("a".into())), ("x", Value::Number(60.0))]),
            rec(&[("k", Value::Text("c".into())), ("x", Value::Number(1e6))]),
        ],
    ];
    for (q, text) in queries.iter().enumerate() {
        let (c, typ) = compiled(text);
        for (r, recs) in records.iter().enumerate() {
            let v = honest(&c, recs);
            let input = typ.encode_measurement(&v).unwrap();
            assert_eq!(typ.truncate(input).unwrap(), v);
            assert!(accepted(&typ, &v, (q * 10 + r) as u64), "{text} / {recs:?}");
        }
    }
}

#[test]
fn a_value_outside_its_clip_bounds_is_rejected() {
    let (c, typ) =
        compiled("SELECT sum(x) FROM t CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1 SCALE 2");
    let mut v = honest(&c, &[rec(&[("x", Value::Number(7.0))])]);
    assert!(accepted(&typ, &v, 1));
    set(&mut v, 0, 10_001); // 100.01
    assert!(!accepted(&typ, &v, 2));
    set(&mut v, 0, -1);
    assert!(!accepted(&typ, &v, 3));
    set(&mut v, 0, 10_000); // exactly the bound
    assert!(accepted(&typ, &v, 4));
}

/// A witness for a value outside its range that satisfies the linear constraint: the bits
/// of the value modulo 2^(k-1) and a last "bit" that makes up the rest. Only the check that
/// every bit is 0 or 1 rejects it.
#[test]
fn a_crafted_witness_with_a_non_binary_bit_is_rejected() {
    let (c, typ) =
        compiled("SELECT sum(x) FROM t CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1 SCALE 0");
    let mut v = honest(&c, &[rec(&[("x", Value::Number(7.0))])]);
    set(&mut v, 0, 1_000_000);
    // Range [0, 100]: 7 bits, weights 1..32 and 37 for the last.
    let mut input = typ.encode_lenient(&v);
    let base = typ.vector_len();
    assert_eq!(typ.witness_len(), 7);
    for j in 0..7 {
        input[base + j] = Field64::zero();
    }
    input[base + 6] = Field64::from(1_000_000u64) * Field64::from(37u64).inv();
    let cs = prove_encoded_and_share(&typ, &input, params(), CONTEXT, &seed(5)).unwrap();
    assert!(decisions(&typ, &cs).iter().all(|d| *d == Ok(false)));
}

#[test]
fn an_indicator_of_1000_is_rejected() {
    let keys: Vec<String> = (0..16).map(|i| format!("'k{i}'")).collect();
    for text in [
        "SELECT sum(x) FROM t CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1 SCALE 0".to_string(),
        format!(
            "SELECT count(*), sum(x) FROM t GROUP BY k IN ({}) CLIP x TO [-5, 5] \
             LIMIT PER CONTRIBUTOR 1 SCALE 0",
            keys.join(", ")
        ),
    ] {
        let (c, typ) = compiled(&text);
        let ind = column(&c, grove_protocol::query::ColumnKind::Contributor);
        let mut v = honest(
            &c,
            &[rec(&[
                ("k", Value::Text("k3".into())),
                ("x", Value::Number(2.0)),
            ])],
        );
        assert!(accepted(&typ, &v, 10));
        // Row 0 (k0 or the scalar row): for GROUP BY, k3's row holds the record.
        let row = if c.rows().len() > 1 { 3 } else { 0 };
        set(&mut v, row * c.columns().len() + ind, 1000);
        assert!(!accepted(&typ, &v, 11), "{text}");
    }
}

#[test]
fn two_group_by_keys_for_one_record_are_rejected() {
    let keys: Vec<String> = (0..16).map(|i| format!("'k{i}'")).collect();
    let text = format!(
        "SELECT count(*), sum(x) FROM t GROUP BY k IN ({}) CLIP x TO [-5, 5] \
         LIMIT PER CONTRIBUTOR 1",
        keys.join(", ")
    );
    let (c, typ) = compiled(&text);
    let w = c.columns().len();
    let v = honest(
        &c,
        &[rec(&[
            ("k", Value::Text("k3".into())),
            ("x", Value::Number(-2.0)),
        ])],
    );
    assert!(accepted(&typ, &v, 20));
    // The same record under key 9 as well: every row is valid on its own.
    let mut two = v.clone();
    two.copy_within(3 * w..4 * w, 9 * w);
    assert!(!accepted(&typ, &two, 21));
    // A record counted without its indicator (a count hidden from k_min).
    let ind = column(&c, grove_protocol::query::ColumnKind::Contributor);
    let mut hidden = v.clone();
    set(&mut hidden, 3 * w + ind, 0);
    assert!(!accepted(&typ, &hidden, 23));
}

#[test]
fn an_indicator_of_1_without_a_record_is_rejected() {
    // Two records allowed: two indicators across rows pass the at-most check, so only
    // "indicator 1 means a record in this row" rejects the second one.
    let (c, typ) = compiled(
        "SELECT count(*), sum(x) FROM t GROUP BY k IN ('a', 'b', 'c') CLIP x TO [-5, 5] \
         LIMIT PER CONTRIBUTOR 2",
    );
    let w = c.columns().len();
    let ind = column(&c, grove_protocol::query::ColumnKind::Contributor);
    let mut v = honest(
        &c,
        &[rec(&[
            ("k", Value::Text("a".into())),
            ("x", Value::Number(1.0)),
        ])],
    );
    assert!(accepted(&typ, &v, 24));
    set(&mut v, 2 * w + ind, 100); // SCALE 2: 1 is 100
    assert!(!accepted(&typ, &v, 25));
}

#[test]
fn a_histogram_row_with_two_buckets_is_rejected() {
    let (c, typ) =
        compiled("SELECT histogram(x, [0, 10, 50, 100]) FROM t LIMIT PER CONTRIBUTOR 1 SCALE 0");
    let v = honest(&c, &[rec(&[("x", Value::Number(12.0))])]);
    assert!(accepted(&typ, &v, 30));
    // Buckets 0..3, their indicators 3..6, the row's indicator 6.
    let mut two = v.clone();
    set(&mut two, 2, 1);
    set(&mut two, 5, 1);
    assert!(!accepted(&typ, &two, 31));
}

#[test]
fn a_vector_over_its_norm_is_rejected() {
    let (c, typ) =
        compiled("SELECT sum_vector(w, 4) FROM t CLIP NORM w TO 1 LIMIT PER CONTRIBUTOR 1");
    let v = honest(
        &c,
        &[rec(&[("w", Value::NumberArray(vec![0.6, 0.0, -0.8, 0.0]))])],
    );
    assert!(accepted(&typ, &v, 40));
    // Every coordinate within [-1, 1] (SCALE 2: [-100, 100]), the norm 2.
    let mut over = v.clone();
    for i in 0..4 {
        set(&mut over, i, 100);
    }
    assert!(!accepted(&typ, &over, 41));
}

#[test]
fn a_forged_proof_is_rejected() {
    let (c, typ) =
        compiled("SELECT sum(x) FROM t CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1 SCALE 2");
    let v = honest(&c, &[rec(&[("x", Value::Number(7.0))])]);
    let input = typ.encode_measurement(&v).unwrap();
    let cs = forge_and_share(&typ, &input, params(), CONTEXT, &seed(50)).unwrap();
    assert!(decisions(&typ, &cs).iter().all(|d| *d == Ok(false)));
}

// ---------------------------------------------------------------------------------------
// Properties.

/// A random query of the compiler's aggregate kinds and the records to go with it.
fn random_query(rng: &mut ChaCha20Rng) -> (String, Vec<Record>) {
    let n = 1 + rng.next_u32() % 3;
    let scale = rng.next_u32() % 3;
    let lo = -(i64::from(rng.next_u32() % 50));
    let hi = i64::from(rng.next_u32() % 50) + 1;
    let keys = 1 + rng.next_u32() % 6;
    let dim = 1 + rng.next_u32() % 5;
    let norm = 1 + rng.next_u32() % 4;
    let kind = rng.next_u32() % 5;
    let group = if kind != 4 && rng.next_u32().is_multiple_of(2) {
        let list: Vec<String> = (0..keys).map(|i| format!("'k{i}'")).collect();
        format!(" GROUP BY k IN ({})", list.join(", "))
    } else {
        String::new()
    };
    let select = match kind {
        0 => "sum(x)".to_string(),
        1 => "count(*), avg(x), count(DISTINCT CONTRIBUTOR)".to_string(),
        2 => "var(x), stddev(x)".to_string(),
        3 => "histogram(x, [-10, 0, 10, 40])".to_string(),
        _ => format!("sum_vector(w, {dim})"),
    };
    let clip = if kind == 4 {
        format!(" CLIP NORM w TO {norm}")
    } else if kind == 3 {
        String::new()
    } else {
        format!(" CLIP x TO [{lo}, {hi}]")
    };
    let text =
        format!("SELECT {select} FROM t{group}{clip} LIMIT PER CONTRIBUTOR {n} SCALE {scale}");
    let records = (0..rng.next_u32() % 5)
        .map(|_| {
            let x = f64::from(rng.next_u32() % 20_000) / 100.0 - 100.0;
            let w: Vec<f64> = (0..dim)
                .map(|_| f64::from(rng.next_u32() % 600) / 100.0 - 3.0)
                .collect();
            rec(&[
                (
                    "k",
                    Value::Text(format!("k{}", rng.next_u32() % (keys + 1))),
                ),
                ("x", Value::Number(x)),
                ("w", Value::NumberArray(w)),
            ])
        })
        .collect();
    (text, records)
}

/// Whether the group rejects: the first `t` (which include the changed position) decide
/// `false`, and all `g` either decide `false` or find the shares off one polynomial.
fn rejected(typ: &CircuitType, c: &SharedContribution<Field64>) -> bool {
    let d = decisions(typ, c);
    d[0] == Ok(false)
        && match &d[2] {
            Ok(false) => true,
            Ok(true) => false,
            Err(e) => e.contains("disagree"),
        }
}

#[test]
fn random_queries_honest_proofs_verify_and_one_corrupted_share_is_rejected() {
    let cases: u64 = std::env::var("GROVE_VALIDITY_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    for case in 0..cases {
        let (text, records) = random_query(&mut rng);
        let (c, plain) = compiled(&text);
        let v = honest(&c, &records);
        // Every other case carries DP noise outside the proven vector, within a random bound.
        let (typ, input) = if case % 2 == 1 {
            let bound = 1 + u64::from(rng.next_u32() % 1000);
            let typ = CircuitType::with_noise(&c.validity_circuit(), bound).unwrap();
            let noise: Vec<Field64> = (0..v.len())
                .map(|_| {
                    let n = i64::from(rng.next_u32()) % (2 * bound as i64 + 1) - bound as i64;
                    Fp::from_i64(n).to_field64()
                })
                .collect();
            let input = typ.encode_noised(&v, &noise).unwrap();
            (typ, input)
        } else {
            let input = plain
                .encode_measurement(&v)
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            (plain, input)
        };
        let honest_c =
            prove_encoded_and_share(&typ, &input, params(), CONTEXT, &seed(case)).unwrap();
        let d = decisions(&typ, &honest_c);
        assert!(
            d.iter().all(|x| *x == Ok(true)),
            "case {case}: {text}: {d:?}"
        );

        // One member's share (position 1..=3, inside the first t) changed before commitment.
        let position = 1 + (rng.next_u32() % 3) as u8;
        let delta = Field64::from(1 + u64::from(rng.next_u32()));
        let in_input = rng.next_u32().is_multiple_of(2);
        let at_input = rng.next_u32() as usize % typ.input_len();
        let at_proof = rng.next_u32() as usize % typ.proof_len();
        let bad = prove_adjusted_and_share(
            &typ,
            &input,
            params(),
            CONTEXT,
            &seed(case),
            false,
            |p, share| {
                if in_input && p == position {
                    share[at_input] += delta;
                }
            },
            |p, share| {
                if !in_input && p == position {
                    share[at_proof] += delta;
                }
            },
        )
        .unwrap();
        let what = if in_input { "input" } else { "proof" };
        assert!(
            rejected(&typ, &bad),
            "case {case}: {text}: {what} share of {position} changed, {:?}",
            decisions(&typ, &bad)
        );
    }
}

/// A norm whose checks the field cannot hold is refused: its square bound must stay below a
/// third of the modulus (the range of the sum of squares) and its projection bound below
/// `p / 2600` (the wraparound checks' requirement).
#[test]
fn a_circuit_that_could_wrap_is_refused() {
    let c = Query::parse("SELECT sum_vector(w, 3) FROM t CLIP NORM w TO 100000000")
        .unwrap()
        .compile()
        .unwrap();
    assert!(matches!(
        CircuitType::new(&c.validity_circuit()),
        Err(grove_protocol::validity::circuit::CircuitError::Norm(_))
    ));
    let c = Query::parse("SELECT sum_vector(w, 3) FROM t CLIP NORM w TO 10000")
        .unwrap()
        .compile()
        .unwrap();
    assert!(CircuitType::new(&c.validity_circuit()).is_ok());
}

// ---------------------------------------------------------------------------------------
// Members lying about their verifier shares.

/// Every member's verifier share of `c` under `p`.
fn verifier_shares(
    typ: &CircuitType,
    p: SharingParams,
    c: &SharedContribution<Field64>,
) -> Vec<grove_protocol::validity::VerifierShare<Field64>> {
    c.shares
        .iter()
        .map(|s| verifier_share(typ, p, s, CONTEXT, &derived_query_seed(CONTEXT, s)).unwrap())
        .collect()
}

#[test]
fn a_member_lying_about_its_verifier_share_is_named_and_cannot_flip_the_decision() {
    let (c, typ) = compiled(
        "SELECT count(*), sum(x) FROM t GROUP BY k IN ('a', 'b', 'c') CLIP x TO [-5, 5] \
         LIMIT PER CONTRIBUTOR 1",
    );
    let good = honest(
        &c,
        &[rec(&[
            ("k", Value::Text("b".into())),
            ("x", Value::Number(2.0)),
        ])],
    );
    let mut bad = good.clone();
    bad[0] = Fp::from_i64(1_000_000).to_field64(); // a count far outside [0, 1]
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    for (g, t) in [(5u8, 3u8), (7, 5), (7, 3)] {
        let p = SharingParams::new(g, t).unwrap();
        for (vector, valid) in [(&good, true), (&bad, false)] {
            let input = typ.encode_lenient(vector);
            let shared = prove_encoded_and_share(&typ, &input, p, CONTEXT, &seed(70)).unwrap();
            let honest_v = verifier_shares(&typ, p, &shared);
            assert_eq!(decide_naming(&typ, p, &honest_v).unwrap(), (valid, vec![]));
            let correctable = (usize::from(g) - usize::from(t)) / 2;
            for liar in 1..=g {
                let mut v = honest_v.clone();
                let at = rng.next_u32() as usize % v[0].verifier.len();
                v[usize::from(liar) - 1].verifier[at] +=
                    Field64::from(1 + u64::from(rng.next_u32()));
                // The plain decision with the liar among the first t: wrong positions named.
                if liar <= t && g > t {
                    match decide(&typ, p, &v) {
                        Err(ValidityError::Disagreement(named)) => {
                            assert!(!named.contains(&liar))
                        }
                        other => panic!("{other:?}"),
                    }
                }
                assert_eq!(
                    decide_naming(&typ, p, &v).unwrap(),
                    (valid, vec![liar]),
                    "({g}, {t}) liar {liar}"
                );
            }
            // More liars than can be corrected: nothing decided, nobody named.
            let mut v = honest_v.clone();
            for share in v.iter_mut().take(correctable + 1) {
                share.verifier[0] += Field64::from(7u64);
            }
            assert!(matches!(
                decide_naming(&typ, p, &v),
                Err(ValidityError::Undecodable)
            ));
        }
    }
}

/// The limits the engine bounds validity messages with derive from the circuit: the chunk
/// that minimises the proof of the largest query is under `MAX_VALIDITY_CHUNK`, so its
/// verifier share fits `MAX_VERIFIER_LEN`; a query whose validity share would be over
/// `MAX_VALIDITY_SHARE_LEN` has no circuit.
#[test]
fn validity_limits_hold_the_largest_queries_and_refuse_larger_ones() {
    use grove_protocol::limits::{MAX_VALIDITY_CHUNK, MAX_VALIDITY_SHARE_LEN, MAX_VERIFIER_LEN};
    use grove_protocol::validity::circuit::CircuitError;
    let (_, typ) = compiled("SELECT sum_vector(w, 131072) FROM t CLIP NORM w TO 1");
    assert!(typ.chunk_len() < MAX_VALIDITY_CHUNK);
    assert!(typ.verifier_len() <= MAX_VERIFIER_LEN);
    assert!(typ.input_len() + typ.proof_len() <= MAX_VALIDITY_SHARE_LEN);
    // 400,000 coordinates fit (no per-coordinate witness under a norm); 4 rows of 1,048,575
    // are over the limit by their input alone.
    let (_, typ) = compiled("SELECT sum_vector(w, 400000) FROM t CLIP NORM w TO 1");
    assert!(typ.input_len() + typ.proof_len() <= MAX_VALIDITY_SHARE_LEN);
    let c = Query::parse(
        "SELECT sum_vector(w, 1048575) FROM t GROUP BY k IN ('a', 'b', 'c', 'd') \
         CLIP NORM w TO 1",
    )
    .unwrap()
    .compile()
    .unwrap();
    assert!(matches!(
        CircuitType::new(&c.validity_circuit()),
        Err(CircuitError::TooLarge(n)) if n > MAX_VALIDITY_SHARE_LEN
    ));
}
