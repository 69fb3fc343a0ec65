//! Property tests for field arithmetic, Shamir sharing and fixed-point encoding.

use grove_protocol::encoding::{BoundRange, ContributionSpec, EncodingError};
use grove_protocol::field::{
    add_assign_vec, mul_add_assign_vec, random_vec, sub_assign_vec, FieldVec, Fp, P,
};
use grove_protocol::sharing::{
    lagrange_coefficients, reconstruct, share_vector, share_vector_compressed, CompressedShare,
    SharingParams,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// Deterministic runner: fixed RNG seed for reproducible properties.
fn runner(cases: u32) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[42; 32]),
    )
}

fn fp() -> impl Strategy<Value = Fp> {
    prop_oneof![
        (0..P).prop_map(|x| Fp::from_canonical(x).unwrap()),
        (0u64..16).prop_map(|x| Fp::new(P - 1 - x)),
        (0u64..16).prop_map(Fp::new),
    ]
}

fn vec_of(len: usize, seed: u64) -> Vec<Fp> {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    random_vec(&mut ChaCha20Rng::from_seed(s), len)
}

/// (g, t, a permutation-derived subset order seed, len, secret seed, sharing seed).
fn sharing_case() -> impl Strategy<Value = (u8, u8, Vec<u8>, usize, u64, [u8; 32])> {
    (1u8..=12)
        .prop_flat_map(|g| (Just(g), 1..=g))
        .prop_flat_map(|(g, t)| {
            let positions: Vec<u8> = (1..=g).collect();
            (
                Just(g),
                Just(t),
                Just(positions).prop_shuffle(),
                0usize..=64,
                any::<u64>(),
                any::<[u8; 32]>(),
            )
        })
}

fn naive_mod(x: u128) -> u64 {
    (x % P as u128) as u64
}

#[test]
fn field_laws() {
    runner(2000)
        .run(&(fp(), fp(), fp()), |(a, b, c)| {
            prop_assert_eq!((a + b) + c, a + (b + c));
            prop_assert_eq!((a * b) * c, a * (b * c));
            prop_assert_eq!(a * (b + c), a * b + a * c);
            prop_assert_eq!(a + b, b + a);
            prop_assert_eq!(a * b, b * a);
            prop_assert_eq!((a - b) + b, a);
            prop_assert_eq!(a + (-a), Fp::ZERO);
            prop_assert!((a * b).value() < P && (a + b).value() < P && (a - b).value() < P);
            prop_assert_eq!(
                (a * b).value(),
                naive_mod(a.value() as u128 * b.value() as u128)
            );
            if a != Fp::ZERO {
                prop_assert_eq!(a * a.inv().unwrap(), Fp::ONE);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn signed_roundtrip() {
    let half = (P / 2) as i64;
    runner(2000)
        .run(&(-half..=half), |x| {
            prop_assert_eq!(Fp::from_i64(x).to_i64_centered(), x);
            Ok(())
        })
        .unwrap();
    runner(500)
        .run(&any::<i64>(), |x| {
            let expect = (x as i128).rem_euclid(P as i128) as u64;
            prop_assert_eq!(Fp::from_i64(x).value(), expect);
            Ok(())
        })
        .unwrap();
}

#[test]
fn vector_helpers_match_scalar() {
    runner(200)
        .run(&(0usize..300, any::<u64>(), fp()), |(len, seed, c)| {
            let a = vec_of(len, seed);
            let b = vec_of(len, seed ^ 0xdead_beef);
            let mut s = a.clone();
            add_assign_vec(&mut s, &b);
            let mut d = a.clone();
            sub_assign_vec(&mut d, &b);
            let mut m = a.clone();
            mul_add_assign_vec(&mut m, c, &b);
            for i in 0..len {
                prop_assert_eq!(s[i], a[i] + b[i]);
                prop_assert_eq!(d[i], a[i] - b[i]);
                prop_assert_eq!(m[i], a[i] + c * b[i]);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn share_then_reconstruct_any_subset() {
    runner(300)
        .run(&sharing_case(), |(g, t, order, len, sseed, seed)| {
            let params = SharingParams::new(g, t).unwrap();
            let secret = vec_of(len, sseed);
            let shares = share_vector(&secret, params, seed);
            prop_assert_eq!(shares.len(), g as usize);
            prop_assert_eq!(&shares, &share_vector(&secret, params, seed));
            // Any t positions (the first t of a random permutation) reconstruct.
            let pairs: Vec<(u8, &[Fp])> = order
                .iter()
                .map(|&p| (p, shares[p as usize - 1].as_slice()))
                .collect();
            prop_assert_eq!(
                reconstruct(&pairs[..t as usize], t).unwrap(),
                secret.clone()
            );
            // More than t shares: only the first t are used, still correct.
            prop_assert_eq!(reconstruct(&pairs, t).unwrap(), secret.clone());
            // Fewer than t shares is refused.
            if t > 1 {
                prop_assert!(reconstruct(&pairs[..t as usize - 1], t).is_err());
            }
            // Degree check: t+1 shares are consistent (the value at a further point predicted
            // from the first t matches).
            if (t as usize) < order.len() {
                let pts: Vec<u8> = order[..t as usize].to_vec();
                let target = order[t as usize];
                let c = lagrange_coefficients(&pts, target).unwrap();
                let mut pred = vec![Fp::ZERO; len];
                for (p, ci) in pts.iter().zip(&c) {
                    mul_add_assign_vec(&mut pred, *ci, &shares[*p as usize - 1]);
                }
                prop_assert_eq!(&pred, &shares[target as usize - 1]);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn t_minus_one_shares_look_independent_of_secret() {
    // Not a proof of privacy, but catches gross mistakes: with t >= 2, a share is not the
    // secret and changes with the seed.
    let secret = vec_of(16, 1);
    let p = SharingParams::new(5, 3).unwrap();
    let a = share_vector(&secret, p, [1; 32]);
    let b = share_vector(&secret, p, [2; 32]);
    for i in 0..5 {
        assert_ne!(a[i], secret);
        assert_ne!(a[i], b[i]);
    }
}

#[test]
fn compressed_shares_lie_on_one_polynomial() {
    runner(300)
        .run(&sharing_case(), |(g, t, order, len, sseed, seed)| {
            let params = SharingParams::new(g, t).unwrap();
            let secret = vec_of(len, sseed);
            let comp = share_vector_compressed(&secret, params, seed);
            prop_assert_eq!(comp.len(), g as usize);
            for (i, c) in comp.iter().enumerate() {
                let is_seed = matches!(c, CompressedShare::Seed(_));
                prop_assert_eq!(is_seed, i + 1 < t as usize);
            }
            let expanded: Vec<Vec<Fp>> = comp.iter().map(|c| c.expand(len)).collect();
            let pairs: Vec<(u8, &[Fp])> = order
                .iter()
                .map(|&p| (p, expanded[p as usize - 1].as_slice()))
                .collect();
            prop_assert_eq!(
                reconstruct(&pairs[..t as usize], t).unwrap(),
                secret.clone()
            );
            if (t as usize) < order.len() {
                let pts: Vec<u8> = order[..t as usize].to_vec();
                let target = order[t as usize];
                let c = lagrange_coefficients(&pts, target).unwrap();
                let mut pred = vec![Fp::ZERO; len];
                for (p, ci) in pts.iter().zip(&c) {
                    mul_add_assign_vec(&mut pred, *ci, &expanded[*p as usize - 1]);
                }
                prop_assert_eq!(&pred, &expanded[target as usize - 1]);
            }
            // Deterministic.
            prop_assert_eq!(&comp, &share_vector_compressed(&secret, params, seed));
            Ok(())
        })
        .unwrap();
}

#[test]
fn compressed_seeds_are_independent() {
    let secret = vec_of(32, 9);
    let p = SharingParams::new(8, 6).unwrap();
    let comp = share_vector_compressed(&secret, p, [5; 32]);
    let seeds: Vec<&[u8; 32]> = comp
        .iter()
        .filter_map(|c| match c {
            CompressedShare::Seed(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(seeds.len(), 5);
    for i in 0..seeds.len() {
        for j in 0..i {
            assert_ne!(seeds[i], seeds[j]);
        }
        assert_ne!(seeds[i], &[5; 32]);
    }
    let other = share_vector_compressed(&secret, p, [6; 32]);
    assert_ne!(comp[0], other[0]);
}

#[test]
fn sharing_is_linear() {
    runner(200)
        .run(
            &(sharing_case(), 1usize..5),
            |((g, t, order, len, sseed, seed), contributors)| {
                let params = SharingParams::new(g, t).unwrap();
                let mut total_secret = vec![Fp::ZERO; len];
                let mut total_shares = vec![vec![Fp::ZERO; len]; g as usize];
                for k in 0..contributors {
                    let secret = vec_of(len, sseed.wrapping_add(k as u64));
                    add_assign_vec(&mut total_secret, &secret);
                    let mut s = seed;
                    s[0] ^= k as u8;
                    let shares: Vec<Vec<Fp>> = if k % 2 == 0 {
                        share_vector(&secret, params, s)
                    } else {
                        share_vector_compressed(&secret, params, s)
                            .iter()
                            .map(|c| c.expand(len))
                            .collect()
                    };
                    for (acc, sh) in total_shares.iter_mut().zip(&shares) {
                        add_assign_vec(acc, sh);
                    }
                }
                let pairs: Vec<(u8, &[Fp])> = order
                    .iter()
                    .map(|&p| (p, total_shares[p as usize - 1].as_slice()))
                    .collect();
                prop_assert_eq!(reconstruct(&pairs, t).unwrap(), total_secret);
                Ok(())
            },
        )
        .unwrap();
}

/// Direct evaluation of a polynomial with the given monomial coefficients.
fn eval(coeffs: &[Fp], x: u8) -> Fp {
    coeffs
        .iter()
        .rev()
        .fold(Fp::ZERO, |acc, c| acc * Fp::new(x as u64) + *c)
}

#[test]
fn lagrange_matches_direct_evaluation() {
    let strat = (1usize..=10)
        .prop_flat_map(|t| {
            (
                proptest::collection::vec(fp(), t),
                Just((1u8..=40).collect::<Vec<u8>>()).prop_shuffle(),
                0u8..=60,
            )
        })
        .prop_map(|(coeffs, pts, target)| {
            let t = coeffs.len();
            (coeffs, pts[..t].to_vec(), target)
        });
    runner(500)
        .run(&strat, |(coeffs, pts, target)| {
            let c = lagrange_coefficients(&pts, target).unwrap();
            let v: Fp = pts
                .iter()
                .zip(&c)
                .map(|(p, ci)| *ci * eval(&coeffs, *p))
                .sum();
            prop_assert_eq!(v, eval(&coeffs, target));
            Ok(())
        })
        .unwrap();
}

#[test]
fn fieldvec_postcard_roundtrip() {
    runner(200)
        .run(&(0usize..200, any::<u64>()), |(len, seed)| {
            let v = FieldVec(vec_of(len, seed));
            let bytes = postcard::to_allocvec(&v).unwrap();
            // varint length prefix + 8 bytes per element.
            prop_assert!(bytes.len() >= 8 * len && bytes.len() <= 8 * len + 3);
            let back: FieldVec = postcard::from_bytes(&bytes).unwrap();
            prop_assert_eq!(back, v);
            Ok(())
        })
        .unwrap();
}

#[test]
fn fieldvec_rejects_bad_input() {
    let v = FieldVec(vec![Fp::new(1), Fp::new(P - 1), Fp::new(3)]);
    let mut bytes = postcard::to_allocvec(&v).unwrap();
    assert_eq!(bytes[0], 24);
    assert_eq!(&bytes[9..17], &(P - 1).to_le_bytes());
    // Non-canonical element: P itself.
    let mut bad = bytes.clone();
    bad[9..17].copy_from_slice(&P.to_le_bytes());
    assert!(postcard::from_bytes::<FieldVec>(&bad).is_err());
    bad[9..17].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(postcard::from_bytes::<FieldVec>(&bad).is_err());
    // Length not a multiple of 8.
    let mut odd = bytes.clone();
    odd[0] = 23;
    odd.pop();
    assert!(postcard::from_bytes::<FieldVec>(&odd).is_err());
    // Truncated buffer (the prefix claims more than there is).
    bytes.truncate(20);
    assert!(postcard::from_bytes::<FieldVec>(&bytes).is_err());
    assert!(postcard::from_bytes::<FieldVec>(&[]).is_err());
    // Every truncation of a valid buffer fails cleanly, never panics.
    let full = postcard::to_allocvec(&v).unwrap();
    for cut in 0..full.len() {
        assert!(postcard::from_bytes::<FieldVec>(&full[..cut]).is_err());
    }
}

#[test]
fn fp_deserialize_rejects_non_canonical() {
    let ok = postcard::to_allocvec(&Fp::new(P - 1)).unwrap();
    assert_eq!(postcard::from_bytes::<Fp>(&ok).unwrap(), Fp::new(P - 1));
    let bad = postcard::to_allocvec(&P).unwrap();
    assert!(postcard::from_bytes::<Fp>(&bad).is_err());
}

#[test]
fn compressed_share_postcard_roundtrip() {
    let secret = vec_of(10, 3);
    let comp = share_vector_compressed(&secret, SharingParams::new(4, 3).unwrap(), [8; 32]);
    for c in comp {
        let bytes = postcard::to_allocvec(&c).unwrap();
        let back: CompressedShare = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, c);
    }
}

#[test]
fn encoding_roundtrips() {
    // Values within bounds round-trip to within half a unit of the last digit; sums decode.
    let strat = (
        0u8..=6,
        proptest::collection::vec(-1000.0f64..1000.0, 0..40),
        1usize..20,
    );
    runner(300)
        .run(&strat, |(scale, values, contributors)| {
            let spec = ContributionSpec::uniform(values.len() as u32, -500.0, 500.0, scale);
            spec.validate(contributors as u64).unwrap();
            let enc = spec.encode(&values).unwrap();
            let unit = 10f64.powi(-(scale as i32));
            let dec = spec.decode_sum(&enc);
            for (d, v) in dec.iter().zip(&values) {
                let clipped = v.clamp(-500.0, 500.0);
                prop_assert!(
                    (d - clipped).abs() <= unit / 2.0 + 1e-9,
                    "{} vs {}",
                    d,
                    clipped
                );
            }
            // Sum of `contributors` copies.
            let mut sum = vec![Fp::ZERO; values.len()];
            for _ in 0..contributors {
                add_assign_vec(&mut sum, &enc);
            }
            let dsum = spec.decode_sum(&sum);
            for (s, d) in dsum.iter().zip(&dec) {
                let expect = d * contributors as f64;
                prop_assert!((s - expect).abs() <= 1e-6 * expect.abs().max(1.0));
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn encoding_rounds_half_away_from_zero() {
    let spec = ContributionSpec::uniform(4, -10.0, 10.0, 1);
    let enc = spec.encode(&[0.25, -0.25, 0.35, -0.049]).unwrap();
    let ints: Vec<i64> = enc.iter().map(|x| x.to_i64_centered()).collect();
    // 0.25 * 10 = 2.5 -> 3; 0.35 * 10 = 3.5 (in f64, 3.4999999999999996 -> 3).
    assert_eq!(ints[0], 3);
    assert_eq!(ints[1], -3);
    assert_eq!(ints[2], (0.35f64 * 10.0).round() as i64);
    assert_eq!(ints[3], 0);
}

#[test]
fn overflow_budget_rejects_wrapping_and_accepts_safe() {
    // A spec that could wrap: the worst case really does wrap when summed.
    let c = 9300u64;
    let bad = ContributionSpec::uniform(2, -1e9, 1e9, 6); // 1e15 per value
    assert_eq!(
        bad.validate(c),
        Err(EncodingError::OverflowBudget {
            index: 0,
            max_contributors: c
        })
    );
    let enc = bad.encode(&[1e9, 1e9]).unwrap();
    let mut sum = vec![Fp::ZERO; 2];
    for _ in 0..c {
        add_assign_vec(&mut sum, &enc);
    }
    // 9.3e18 > (P - 1) / 2 (about 9.22e18): the decoded sum is wrong (wrapped), which is what validate prevents.
    assert!(bad.decode_sum(&sum)[0] < 0.0);

    // A spec that cannot wrap: the worst case with the allowed contributors decodes exactly.
    let c = 9200u64;
    assert!(bad.validate(c).is_ok());
    for v in [1e9, -1e9] {
        let enc = bad.encode(&[v, -v]).unwrap();
        let mut sum = vec![Fp::ZERO; 2];
        for _ in 0..c {
            add_assign_vec(&mut sum, &enc);
        }
        let d = bad.decode_sum(&sum);
        assert_eq!(d, vec![v * c as f64, -v * c as f64]);
    }

    // The first offending element is reported, after safe ranges.
    let mixed = ContributionSpec {
        length: 7,
        bounds: vec![
            BoundRange {
                count: 5,
                min: 0.0,
                max: 1.0,
            },
            BoundRange {
                count: 2,
                min: -1e18,
                max: 0.0,
            },
        ],
        scale_digits: 0,
        cells: grove_protocol::encoding::CellLayout::none(7),
        noise: None,
    };
    // 10 * 1e18 reaches (P - 1) / 2 (about 9.22e18), 9 * 1e18 does not.
    assert_eq!(
        mixed.validate(10),
        Err(EncodingError::OverflowBudget {
            index: 5,
            max_contributors: 10
        })
    );
    assert!(mixed.validate(9).is_ok());
}

#[test]
fn budget_property() {
    // Whenever validate accepts, the worst-case sum decodes without wrapping.
    let strat = (0u8..=12, 0.0f64..1e12, 1u64..1_000_000);
    runner(500)
        .run(&strat, |(scale, m, c)| {
            let spec = ContributionSpec::uniform(1, -m, m, scale);
            if spec.validate(c).is_ok() {
                let enc = spec.encode(&[m]).unwrap()[0].to_i64_centered() as i128;
                prop_assert!(enc * (c as i128) < ((P - 1) / 2) as i128);
            } else {
                let worst = (m * 10f64.powi(scale as i32)).ceil();
                prop_assert!(worst * c as f64 >= ((P - 1) / 2) as f64 * 0.999_999);
            }
            Ok(())
        })
        .unwrap();
}
