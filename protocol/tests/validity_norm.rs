//! `sum_vector ... CLIP NORM` proven without a per-coordinate witness (PINE's norm check,
//! `validity::circuit`): the sum of squares by prio's `ParallelSum<Mul>` gadget, its slack to
//! the bound by bits, and the field's wraparound excluded by `WRAP_CHECKS` random projections
//! drawn from a *wraparound seed* that the members derive from the commitments to the vector's
//! shares (`validity::prove_staged_and_share`, `verifier_share_staged`).
//!
//! Each test drives the staged path at `(5, 3)`: proven by the contributor, queried by every
//! member at the seed it derives, decided by every `t`-subset and by all `g`.

use grove_protocol::query::Query;
use grove_protocol::sharing::SharingParams;
use grove_protocol::validity::circuit::{CircuitType, WRAP_CHECKS};
use grove_protocol::validity::{
    decide, derived_query_seed, prove_staged_with, verifier_share_staged, SharedContribution,
    Staged,
};
use prio::field::{Field64, FieldElement};
use prio::flp::Flp;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

const CONTEXT: &[u8] = b"request 3 / contributor 8";
const P: u64 = 0xffff_ffff_0000_0001;
const DIM: u32 = 64;

fn params() -> SharingParams {
    SharingParams::new(5, 3).unwrap()
}

/// The circuit of a `sum_vector` of `DIM` under `CLIP NORM 1` (`SCALE 2`), and its norm bound
/// in field units (100 plus the rounding slack `sqrt(DIM) / 2`).
fn typ() -> (CircuitType, i64) {
    let text = format!("SELECT sum_vector(w, {DIM}) FROM t CLIP NORM w TO 1");
    let c = Query::parse(&text).unwrap().compile().unwrap();
    let circuit = c.validity_circuit();
    let bound = circuit
        .checks
        .iter()
        .find_map(|c| match c {
            grove_protocol::query::Check::NormAtMost { bound, .. } => Some(*bound),
            _ => None,
        })
        .unwrap();
    let typ = CircuitType::new(&circuit).unwrap();
    assert_eq!(typ.vector_len(), DIM as usize + 1);
    (typ, bound)
}

fn fe(x: i64) -> Field64 {
    Field64::from(if x < 0 {
        P - x.unsigned_abs()
    } else {
        x as u64
    })
}

fn seed(i: u64) -> [u8; 32] {
    let mut s = [3u8; 32];
    s[..8].copy_from_slice(&i.to_le_bytes());
    s
}

/// The contribution's vector as `DIM + 1` elements (coordinates, then the row's indicator).
fn vector(coords: &[i64]) -> Vec<Field64> {
    let mut v: Vec<Field64> = coords.iter().map(|x| fe(*x)).collect();
    v.push(fe(100));
    v
}

/// The group's decisions (first `t`, last `t`, all `g`) on `vector` proven with the witness
/// `witness` writes at the staged type (the honest one completes, attacks forge after).
fn decisions(
    typ: &CircuitType,
    vector: &[Field64],
    s: u64,
    witness: impl FnOnce(&CircuitType, &mut [Field64]),
) -> Vec<bool> {
    let p = params();
    let mut input = vec![Field64::zero(); typ.input_len()];
    input[..vector.len()].copy_from_slice(vector);
    let c: SharedContribution<Field64> =
        prove_staged_with(typ, &input, p, CONTEXT, &seed(s), false, |_, _| {}, witness).unwrap();
    let v: Vec<_> = c
        .shares
        .iter()
        .map(|m| {
            verifier_share_staged(typ, p, m, CONTEXT, &derived_query_seed(CONTEXT, m)).unwrap()
        })
        .collect();
    let t = p.t as usize;
    [v[..t].to_vec(), v[v.len() - t..].to_vec(), v.clone()]
        .iter()
        .map(|set| decide(typ, p, set).unwrap())
        .collect()
}

fn accepted(typ: &CircuitType, vector: &[Field64], s: u64) -> bool {
    let d = decisions(typ, vector, s, |t, x| t.complete(x));
    assert!(d.iter().all(|x| *x == d[0]), "subsets disagree: {d:?}");
    d[0]
}

/// A random integer vector of `DIM` coordinates with norm at most `bound` (a random
/// direction, a random length up to the bound, every coordinate rounded towards zero).
fn honest(rng: &mut ChaCha20Rng, bound: i64) -> Vec<i64> {
    let dir: Vec<f64> = (0..DIM)
        .map(|_| (rng.next_u32() as f64 / u32::MAX as f64) * 2.0 - 1.0)
        .collect();
    let n = dir.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-9);
    let len = bound as f64 * (rng.next_u32() as f64 / u32::MAX as f64);
    dir.iter().map(|x| (x / n * len).trunc() as i64).collect()
}

/// Honest vectors up to the norm always pass: random ones over many seeds, and the extreme
/// ones (the whole norm on one coordinate, spread evenly, alternating signs).
#[test]
fn honest_vectors_up_to_the_norm_always_pass() {
    let (typ, bound) = typ();
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    for s in 0..120 {
        let coords = honest(&mut rng, bound);
        assert!(coords.iter().map(|x| x * x).sum::<i64>() <= bound * bound);
        assert!(accepted(&typ, &vector(&coords), s), "seed {s}: {coords:?}");
    }
    let even = bound / (DIM as f64).sqrt() as i64;
    let mut extreme = vec![vec![0; DIM as usize], vec![0; DIM as usize]];
    extreme[0][0] = bound;
    extreme[1][DIM as usize - 1] = -bound;
    extreme.push(vec![even; DIM as usize]);
    extreme.push(
        (0..DIM)
            .map(|i| if i % 2 == 0 { even } else { -even })
            .collect(),
    );
    for (s, coords) in extreme.iter().enumerate() {
        assert!(
            accepted(&typ, &vector(coords), 1000 + s as u64),
            "{coords:?}"
        );
    }
}

/// A vector over its norm, by one unit, is rejected (the slack `bound^2 - sum x^2` has no bits).
#[test]
fn a_vector_over_its_norm_is_rejected() {
    let (typ, bound) = typ();
    let mut coords = vec![0; DIM as usize];
    coords[5] = bound;
    assert!(accepted(&typ, &vector(&coords), 1));
    coords[5] = bound + 1;
    assert!(!accepted(&typ, &vector(&coords), 1));
    coords[5] = 3;
    coords[7] = bound;
    assert!(!accepted(&typ, &vector(&coords), 2));
}

/// In Goldilocks `2^96 = -1`, so `(2^48)^2 + c^2 = c^2 - 1` modulo `p`: a vector with a
/// coordinate of `2^48` (about `3 10^14` field units) whose sum of squares, computed in the
/// field, is tiny and inside the bound. The norm's range alone accepts it; the wraparound
/// checks reject it (a projection with `z_0 != 0`, half of them, is about `2^48`, far outside
/// `[-(W - 1), W]`), over many seeds.
#[test]
fn a_vector_that_wraps_around_the_field_is_rejected_by_the_wraparound_checks() {
    let (typ, bound) = typ();
    let big = 1i64 << 48;
    let mut coords = vec![0; DIM as usize];
    coords[0] = big;
    coords[1] = 10;
    coords[2] = -7;
    let v = vector(&coords);
    // The field's sum of squares is small: the norm's range by bits holds.
    let squares = v[..DIM as usize]
        .iter()
        .fold(Field64::zero(), |a, x| a + *x * *x);
    assert_eq!(u64::from(squares), 100 + 49 - 1);
    assert!((u64::from(squares) as i64) <= bound * bound);
    for s in 0..20 {
        assert!(!accepted(&typ, &v, s), "seed {s}");
    }
    // Every coordinate huge and still a tiny field sum of squares: pairs (2^48 k, k).
    let coords: Vec<i64> = (0..DIM as i64)
        .map(|i| {
            if i % 2 == 0 {
                big * (i / 2 + 1)
            } else {
                (i / 2) + 1
            }
        })
        .collect();
    let v = vector(&coords);
    let squares = v[..DIM as usize]
        .iter()
        .fold(Field64::zero(), |a, x| a + *x * *x);
    assert_eq!(u64::from(squares), 0);
    for s in 0..20 {
        assert!(!accepted(&typ, &v, 100 + s), "seed {s}");
    }
    // The liar claims every check succeeded, with projections inside the bound whose bits
    // are consistent: the members' own projections of its shares disagree.
    for s in 0..10 {
        let forged = decisions(&typ, &v, 200 + s, |t, x| {
            t.complete(x);
            for j in 0..WRAP_CHECKS {
                let w = t.wraparound_positions(0, j).unwrap();
                x[w.projection] = Field64::zero();
                set_bits(x, &w.v_bits, w.bound - 1);
                x[w.success] = Field64::one();
            }
        });
        assert!(forged.iter().all(|d| !d), "seed {s}");
        // Or it claims the true projections, every check a success, and bits inside the
        // bound: a success bit of 1 forces the projection to be those bits minus `W - 1`.
        let forged = decisions(&typ, &v, 300 + s, |t, x| {
            t.complete(x);
            for j in 0..WRAP_CHECKS {
                let w = t.wraparound_positions(0, j).unwrap();
                set_bits(x, &w.v_bits, w.bound - 1);
                x[w.success] = Field64::one();
            }
        });
        assert!(forged.iter().all(|d| !d), "seed {s}");
    }
}

fn set_bits(x: &mut [Field64], bits: &std::ops::Range<usize>, v: u64) {
    for (k, i) in bits.clone().enumerate() {
        x[i] = Field64::from(v >> k & 1);
    }
}

/// A forged witness for an honest vector is rejected: a wrong projection (with consistent
/// bits), a wrong `v` (bits that do not decode to the projection plus `W - 1`), a success bit
/// cleared (fewer than `WRAP_SUCCESSES`), a success bit of 2 with one cleared (the count
/// kept), and a witness computed at a wraparound seed other than the one the members derive.
#[test]
fn a_forged_witness_is_rejected() {
    let (typ, bound) = typ();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    type Forge = fn(&CircuitType, &mut [Field64]);
    let forgeries: [(&str, Forge); 5] = [
        ("projection", |t, x| {
            t.complete(x);
            let w = t.wraparound_positions(0, 3).unwrap();
            x[w.projection] += Field64::one();
            let v = u64::from(x[w.projection] + Field64::from(w.bound - 1));
            set_bits(x, &w.v_bits, v);
        }),
        ("v bits", |t, x| {
            t.complete(x);
            let w = t.wraparound_positions(0, 9).unwrap();
            x[w.v_bits.start] = Field64::one() - x[w.v_bits.start];
        }),
        ("success cleared", |t, x| {
            t.complete(x);
            let w = t.wraparound_positions(0, 0).unwrap();
            x[w.success] = Field64::zero();
        }),
        ("success of 2", |t, x| {
            t.complete(x);
            let w = t.wraparound_positions(0, 0).unwrap();
            x[w.success] = Field64::from(2u64);
            let w = t.wraparound_positions(0, 1).unwrap();
            x[w.success] = Field64::zero();
        }),
        ("other seed", |t, x| {
            t.staged(&[0; 32]).complete(x);
        }),
    ];
    for s in 0..8 {
        let coords = honest(&mut rng, bound);
        let v = vector(&coords);
        assert!(accepted(&typ, &v, 300 + s));
        for (name, forge) in &forgeries {
            let d = decisions(&typ, &v, 300 + s, forge);
            assert!(d.iter().all(|x| !x), "{name}, seed {s}: {d:?}");
        }
    }
}

/// The witness is small: bits of the norm's slack, and per wraparound check the bits of its
/// projection, a success bit and the projection, nothing per coordinate.
#[test]
fn the_witness_has_nothing_per_coordinate() {
    for dim in [64u32, 10_000] {
        let text = format!("SELECT sum_vector(w, {dim}) FROM t CLIP NORM w TO 1");
        let c = Query::parse(&text).unwrap().compile().unwrap();
        let typ = CircuitType::new(&c.validity_circuit()).unwrap();
        let w = typ.wraparound_positions(0, 0).unwrap();
        let per_check = w.v_bits.len() + 2;
        assert!(typ.witness_len() <= WRAP_CHECKS * per_check + 64, "{dim}");
        assert!(typ.has_wraparound());
    }
}

/// The wraparound seed is bound to the vector's shares: a member checks its own commitment to
/// the first stage of its input share, so a contributor cannot name stage commitments of its
/// choosing (and so pick its projections) without committing to the vector it shares.
#[test]
fn a_stage_commitment_that_does_not_match_the_share_is_refused() {
    let (typ, _) = typ();
    let p = params();
    let mut input = vec![Field64::zero(); typ.input_len()];
    input[..DIM as usize + 1].copy_from_slice(&vector(&[1; DIM as usize]));
    let mut c = prove_staged_with(
        &typ,
        &input,
        p,
        CONTEXT,
        &seed(4),
        false,
        |_, _| {},
        |t, x| t.complete(x),
    )
    .unwrap();
    let first = &c.shares[0];
    assert!(
        verifier_share_staged(&typ, p, first, CONTEXT, &derived_query_seed(CONTEXT, first)).is_ok()
    );
    // The vector part is hashed once, by the stage commitment; the input commitment binds the
    // rest (the witness): a share whose vector or witness differs from what its commitments
    // name is refused, each by its own commitment.
    let last = typ.input_len() - 1;
    for i in [0, DIM as usize - 1, typ.vector_len(), last] {
        let mut other = c.shares[0].clone();
        other.input[i] += Field64::one();
        assert!(
            matches!(
                verifier_share_staged(
                    &typ,
                    p,
                    &other,
                    CONTEXT,
                    &derived_query_seed(CONTEXT, &other)
                ),
                Err(grove_protocol::validity::ValidityError::Commitment(1))
            ),
            "element {i}"
        );
    }
    for s in &mut c.shares {
        s.commitments[0][0] ^= 1;
    }
    let first = &c.shares[0];
    assert!(matches!(
        verifier_share_staged(&typ, p, first, CONTEXT, &derived_query_seed(CONTEXT, first)),
        Err(grove_protocol::validity::ValidityError::Commitment(1))
    ));
}

/// With the type's own tie (`prove_staged_tied_and_share`, the engine's path), a position
/// below `t` gets a seed that expands to its input share without the tied vector part
/// (`expand_seed_share_untied`), which the tie then writes from its aggregated share: the
/// member rebuilds exactly the share that was committed to, every position's vector part is
/// its aggregated share, and the honest contribution is accepted.
#[test]
fn a_seed_position_expands_only_what_the_tie_does_not_write() {
    use grove_protocol::validity::{
        decide, expand_seed_share_untied, prove_staged_tied_and_share, verifier_share_staged,
    };
    let (typ, _) = typ();
    let p = params();
    let mut input = vec![Field64::zero(); typ.input_len()];
    input[..DIM as usize + 1].copy_from_slice(&vector(&[1; DIM as usize]));
    let sharing = grove_protocol::validity::shamir::share(&input[..typ.vector_len()], p, &seed(9));
    let c =
        prove_staged_tied_and_share(&typ, &input, p, CONTEXT, &seed(8), false, &sharing).unwrap();
    assert_eq!(c.seeds.len(), 2);
    for (s, (share, aggregated)) in c.seeds.iter().zip(c.shares.iter().zip(&sharing)) {
        let (mut rebuilt, proof) =
            expand_seed_share_untied(s, typ.input_len(), typ.proof_len(), typ.tied());
        assert!(rebuilt[typ.tied()].iter().all(|x| *x == Field64::zero()));
        typ.tie(aggregated, &mut rebuilt);
        assert_eq!((&rebuilt, &proof), (&share.input, &share.proof));
    }
    for (share, aggregated) in c.shares.iter().zip(&sharing) {
        assert_eq!(&share.input[typ.tied()], aggregated.as_slice());
    }
    let v: Vec<_> = c
        .shares
        .iter()
        .map(|s| {
            verifier_share_staged(&typ, p, s, CONTEXT, &derived_query_seed(CONTEXT, s)).unwrap()
        })
        .collect();
    assert!(decide(&typ, p, &v).unwrap());
    // The wrong number of aggregated shares is refused.
    assert!(
        prove_staged_tied_and_share(&typ, &input, p, CONTEXT, &seed(8), false, &sharing[1..])
            .is_err()
    );
}
