//! DP noise outside the proven vector (`validity::circuit::CircuitType::with_noise`): a query
//! `WITH PRIVACY` still validates. The contributor shares `vector + noise` with Grove's own
//! sharing kernel, ties its proven input to those shares (`CircuitType::tie`), and the group
//! checks the vector's circuit and the noise's bound; what a member holds is exactly the
//! proven `truncate`. A liar can move at most the noise bound per element through its noise.

use grove_protocol::field::Fp;
use grove_protocol::query::{CompiledQuery, Query, Record, Value};
use grove_protocol::sharing::{share_vector_compressed, SharingParams};
use grove_protocol::validity::circuit::CircuitType;
use grove_protocol::validity::{
    decide, derived_query_seed, prove_tied_and_share, verifier_share, SharedContribution,
};
use prio::field::Field64;
use prio::flp::Type;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

const CONTEXT: &[u8] = b"request 3 / contributor 11";
/// Noise bound in field units (SCALE 2: 50.00).
const BOUND: i64 = 5_000;
const DP_QUERIES: [&str; 2] = [
    "SELECT sum(x) FROM t CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1 \
     WITH PRIVACY EPSILON 1 DELTA 1e-9",
    "SELECT count(*), sum(x) FROM t GROUP BY k IN ('a', 'b', 'c', 'd') CLIP x TO [-5, 5] \
     LIMIT PER CONTRIBUTOR 1 WITH PRIVACY EPSILON 0.5 DELTA 1e-9",
];

fn params() -> SharingParams {
    SharingParams::new(5, 3).unwrap()
}

fn compiled(text: &str) -> (CompiledQuery, CircuitType) {
    let c = Query::parse(text).unwrap().compile().unwrap();
    let typ = CircuitType::with_noise(&c.validity_circuit(), BOUND as u64).unwrap();
    (c, typ)
}

fn record() -> Record {
    [
        ("k".to_string(), Value::Text("c".into())),
        ("x".to_string(), Value::Number(3.5)),
    ]
    .into_iter()
    .collect()
}

fn f64s(v: &[Fp]) -> Vec<Field64> {
    v.iter().map(|x| x.to_field64()).collect()
}

fn random_noise(rng: &mut ChaCha20Rng, len: usize) -> Vec<Fp> {
    (0..len)
        .map(|_| Fp::from_i64(i64::from(rng.next_u32() % (2 * BOUND as u32 + 1)) - BOUND))
        .collect()
}

/// Shares `vector + noise` with Grove's kernel and proves `(vector, noise)` tied to it; the
/// aggregated shares (as `Field64`) and the validity shares.
fn share_and_prove(
    typ: &CircuitType,
    vector: &[Fp],
    noise: &[Fp],
    seed: u8,
) -> (Vec<Vec<Field64>>, SharedContribution<Field64>) {
    let noised: Vec<Fp> = vector.iter().zip(noise).map(|(v, n)| *v + *n).collect();
    let aggregated: Vec<Vec<Field64>> = share_vector_compressed(&noised, params(), [seed; 32])
        .iter()
        .map(|s| f64s(&s.expand(noised.len())))
        .collect();
    let input = typ.encode_noised_lenient(&f64s(vector), &f64s(noise));
    let c = prove_tied_and_share(
        typ,
        &input,
        params(),
        CONTEXT,
        &[seed.wrapping_add(1); 32],
        false,
        |p, share| typ.tie(&aggregated[usize::from(p) - 1], share),
    )
    .unwrap();
    (aggregated, c)
}

/// The decisions of the first `t`, the last `t` and all `g` members.
fn decisions(typ: &CircuitType, c: &SharedContribution<Field64>) -> Vec<bool> {
    let p = params();
    let v: Vec<_> = c
        .shares
        .iter()
        .map(|s| verifier_share(typ, p, s, CONTEXT, &derived_query_seed(CONTEXT, s)).unwrap())
        .collect();
    let t = p.t as usize;
    [v[..t].to_vec(), v[v.len() - t..].to_vec(), v.clone()]
        .iter()
        .map(|set| decide(typ, p, set).unwrap())
        .collect()
}

#[test]
fn a_noised_contribution_validates_and_members_hold_exactly_the_proven_shares() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    for text in DP_QUERIES {
        let (c, typ) = compiled(text);
        assert!(c.query().privacy.is_some());
        let vector = c.contribution(&[record()]).unwrap();
        for seed in 0..8u8 {
            let noise = random_noise(&mut rng, vector.len());
            let input = typ.encode_noised(&f64s(&vector), &f64s(&noise)).unwrap();
            let noised: Vec<Field64> = vector
                .iter()
                .zip(&noise)
                .map(|(v, n)| (*v + *n).to_field64())
                .collect();
            assert_eq!(typ.truncate(input).unwrap(), noised);
            let (aggregated, shared) = share_and_prove(&typ, &vector, &noise, seed);
            assert!(decisions(&typ, &shared).iter().all(|d| *d), "{text}");
            // The tie: what each member would hold is its proven input share's truncate.
            for (share, agg) in shared.shares.iter().zip(&aggregated) {
                assert_eq!(&typ.truncate(share.input.clone()).unwrap(), agg);
            }
        }
    }
}

#[test]
fn noise_over_its_bound_is_rejected_and_a_lie_moves_at_most_the_bound() {
    for text in DP_QUERIES {
        let (c, typ) = compiled(text);
        let vector = c.contribution(&[record()]).unwrap();
        let mut noise = vec![Fp::ZERO; vector.len()];
        // A shift of the sum by 1,000,000 units hidden in the noise.
        noise[0] = Fp::from_i64(1_000_000);
        let (_, shared) = share_and_prove(&typ, &vector, &noise, 1);
        assert!(decisions(&typ, &shared).iter().all(|d| !*d), "{text}");
        noise[0] = Fp::from_i64(-BOUND - 1);
        let (_, shared) = share_and_prove(&typ, &vector, &noise, 2);
        assert!(decisions(&typ, &shared).iter().all(|d| !*d), "{text}");
        // Exactly the bound passes: that is what a liar can hide per element.
        noise[0] = Fp::from_i64(BOUND);
        let (_, shared) = share_and_prove(&typ, &vector, &noise, 3);
        assert!(decisions(&typ, &shared).iter().all(|d| *d), "{text}");
    }
}

#[test]
fn a_value_outside_its_clip_is_rejected_even_with_noise() {
    let (c, typ) = compiled(DP_QUERIES[0]);
    let mut vector = c.contribution(&[record()]).unwrap();
    vector[0] = Fp::from_i64(10_001);
    let noise = vec![Fp::from_i64(-1); vector.len()];
    let (_, shared) = share_and_prove(&typ, &vector, &noise, 4);
    assert!(decisions(&typ, &shared).iter().all(|d| !*d));
}

#[test]
fn a_member_share_off_the_proven_sharing_is_visible_to_its_member() {
    // A contributor that shares one vector and proves another: the tie makes every member
    // whose aggregated share differs see it (its truncate is not what it received).
    let (c, typ) = compiled(DP_QUERIES[0]);
    let vector = c.contribution(&[record()]).unwrap();
    let noise = vec![Fp::ZERO; vector.len()];
    let (_, shared) = share_and_prove(&typ, &vector, &noise, 6);
    let mut other = vector.clone();
    other[0] += Fp::from_i64(1_000_000);
    let sent: Vec<Vec<Field64>> = share_vector_compressed(&other, params(), [9; 32])
        .iter()
        .map(|s| f64s(&s.expand(other.len())))
        .collect();
    let mismatched = shared
        .shares
        .iter()
        .zip(&sent)
        .filter(|(s, a)| typ.truncate(s.input.clone()).unwrap() != **a)
        .count();
    // Two sharings of different vectors agree on at most t - 1 = 2 positions.
    assert!(mismatched >= 3, "{mismatched}");
}
