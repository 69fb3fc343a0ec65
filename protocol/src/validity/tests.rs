use super::*;
use prio::field::{Field128, Field64};
use prio::flp::gadgets::{Mul, ParallelSum};
use prio::flp::types::{Count, Histogram, Sum, SumVec};
use prio::flp::Flp;

const CONTEXT: &[u8] = b"request 1 / contributor 7";
const BEACON: [u8; 32] = [42; 32];
const GROUPS: [(u8, u8); 2] = [(5, 3), (7, 5)];

type Vec128 = SumVec<Field128, ParallelSum<Field128, Mul>>;
type Hist128 = Histogram<Field128, ParallelSum<Field128, Mul>>;
type Hist64 = Histogram<Field64, ParallelSum<Field64, Mul>>;

fn params((g, t): (u8, u8)) -> SharingParams {
    SharingParams::new(g, t).unwrap()
}

fn seed(i: u64) -> [u8; 32] {
    crate::ids::hash_parts("test/validity", &[&i.to_le_bytes()])
}

/// Every member's verifier share.
fn all_verifier_shares<T: Type>(
    typ: &T,
    p: SharingParams,
    c: &SharedContribution<T::Field>,
) -> Vec<VerifierShare<T::Field>> {
    c.shares
        .iter()
        .map(|s| verifier_share(typ, p, s, CONTEXT, &BEACON).unwrap())
        .collect()
}

/// Decides with several subsets of the members: the first t, the last t, every member.
fn decisions<T: Type>(typ: &T, p: SharingParams, c: &SharedContribution<T::Field>) -> Vec<bool> {
    let v = all_verifier_shares(typ, p, c);
    let t = p.t as usize;
    let mut last: Vec<_> = v[v.len() - t..].to_vec();
    last.reverse();
    [v[..t].to_vec(), last, v.clone()]
        .iter()
        .map(|set| decide(typ, p, set).unwrap())
        .collect()
}

fn accepted<T: Type>(typ: &T, p: SharingParams, m: &T::Measurement, s: u64) -> bool {
    let c = prove_and_share(typ, m, p, CONTEXT, &seed(s)).unwrap();
    let d = decisions(typ, p, &c);
    assert!(d.iter().all(|x| *x == d[0]), "subsets disagree: {d:?}");
    d[0]
}

fn encoded_accepted<T: Type>(typ: &T, p: SharingParams, input: &[T::Field], s: u64) -> bool {
    let c = prove_encoded_and_share(typ, input, p, CONTEXT, &seed(s)).unwrap();
    let d = decisions(typ, p, &c);
    assert!(d.iter().all(|x| *x == d[0]), "subsets disagree: {d:?}");
    d[0]
}

fn f64_(x: u64) -> Field64 {
    Field64::from(x)
}
fn f128(x: u128) -> Field128 {
    Field128::from(x)
}

#[test]
fn valid_contributions_are_accepted() {
    for gt in GROUPS {
        let p = params(gt);
        let count = Count::<Field64>::new();
        assert!(accepted(&count, p, &true, 1));
        assert!(accepted(&count, p, &false, 2));
        let sum = Sum::<Field64>::new(100).unwrap();
        for (i, m) in [0u64, 1, 37, 100].into_iter().enumerate() {
            assert!(accepted(&sum, p, &m, 10 + i as u64), "sum {m}");
        }
        let vec = Vec128::new(15, 20, 5).unwrap();
        let m: Vec<u128> = (0..20).map(|i| i % 16).collect();
        assert!(accepted(&vec, p, &m, 3));
        let hist = Hist128::new(16, 4).unwrap();
        for key in [0usize, 7, 15] {
            assert!(accepted(&hist, p, &key, 20 + key as u64), "key {key}");
        }
        let hist = Hist64::new(16, 4).unwrap();
        assert!(accepted(&hist, p, &3, 4));
    }
}

#[test]
fn out_of_range_contributions_are_rejected() {
    for gt in GROUPS {
        let p = params(gt);
        // Count: an indicator of 2 and one of 1,000.
        let count = Count::<Field64>::new();
        assert!(!encoded_accepted(&count, p, &[f64_(2)], 1));
        assert!(!encoded_accepted(&count, p, &[f64_(1000)], 2));
        // Sum up to 100 (bits weighted so that any bit vector decodes to at most 100): a bit
        // of 2, and a bit of -1 (a negative value, or a huge one after the wrap).
        let sum = Sum::<Field64>::new(100).unwrap();
        let mut bad = sum.encode_measurement(&37).unwrap();
        bad[0] = f64_(2);
        assert!(!encoded_accepted(&sum, p, &bad, 3));
        let mut neg = sum.encode_measurement(&0).unwrap();
        neg[6] = -f64_(1);
        assert!(!encoded_accepted(&sum, p, &neg, 4));
        // A vector element with a bit of 2 (a value over its bound).
        let vec = Vec128::new(15, 20, 5).unwrap();
        let mut bad = vec.encode_measurement(&vec![1; 20]).unwrap();
        bad[41] = f128(2);
        assert!(!encoded_accepted(&vec, p, &bad, 5));
        // Histogram: two keys, no key, and a cell of 2.
        let hist = Hist128::new(16, 4).unwrap();
        let mut two = hist.encode_measurement(&3).unwrap();
        two[9] = f128(1);
        assert!(!encoded_accepted(&hist, p, &two, 6));
        let none = vec![f128(0); 16];
        assert!(!encoded_accepted(&hist, p, &none, 7));
        let mut cell2 = vec![f128(0); 16];
        cell2[4] = f128(2);
        cell2[5] = -f128(1);
        assert!(!encoded_accepted(&hist, p, &cell2, 8));
    }
}

#[test]
fn fewer_than_t_verifier_shares_decide_nothing() {
    let typ = Count::<Field64>::new();
    for gt in GROUPS {
        let p = params(gt);
        let c = prove_and_share(&typ, &true, p, CONTEXT, &seed(1)).unwrap();
        let v = all_verifier_shares(&typ, p, &c);
        let few = &v[..p.t as usize - 1];
        assert!(matches!(
            decide(&typ, p, few),
            Err(ValidityError::Sharing(SharingError::NotEnoughShares { .. }))
        ));
    }
}

/// Members holding `t - 1` positions see the same input shares, proof shares and verifier
/// shares whatever the value, valid or not: for a sharing of a valid value and any other value
/// (here an invalid one), there is a sharing of the other value that agrees with the first at
/// those positions, and the verifier shares are functions of a member's own shares and the
/// public randomness only. The full group's decision still tells the two apart.
#[test]
fn verifier_shares_of_t_minus_1_members_do_not_depend_on_the_value() {
    let typ = Hist128::new(8, 3).unwrap();
    let joint = expand::<Field128>(seed(100), typ.joint_rand_len());
    let query = expand::<Field128>(seed(101), typ.query_rand_len());
    let prove_rand = expand::<Field128>(seed(102), typ.prove_rand_len());
    let valid = typ.encode_measurement(&5).unwrap();
    let mut invalid = valid.clone();
    invalid[2] = f128(1);
    let proof = typ.prove(&valid, &prove_rand, &joint).unwrap();
    let proof_bad = typ.prove(&invalid, &prove_rand, &joint).unwrap();
    for gt in GROUPS {
        let p = params(gt);
        let t = p.t as usize;
        let xs = shamir::share(&valid, p, &seed(1));
        let ps = shamir::share(&proof, p, &seed(2));
        // Every (t-1)-subset of the positions, as a bit mask.
        for mask in 0u32..(1 << p.g) {
            if mask.count_ones() as usize != t - 1 {
                continue;
            }
            let coalition: Vec<u8> = (1..=p.g).filter(|q| mask & (1 << (q - 1)) != 0).collect();
            // The sharing of the invalid input (and its proof) through the coalition's shares.
            let mut points = vec![0u8];
            points.extend(&coalition);
            let reshare = |secret: &[Field128], shares: &[Vec<Field128>]| -> Vec<Vec<Field128>> {
                let mut refs: Vec<&[Field128]> = vec![secret];
                refs.extend(coalition.iter().map(|q| shares[*q as usize - 1].as_slice()));
                (1..=p.g)
                    .map(|q| shamir::combine(&shamir::lagrange(&points, q).unwrap(), &refs))
                    .collect()
            };
            let xs_bad = reshare(&invalid, &xs);
            let ps_bad = reshare(&proof_bad, &ps);
            let verify =
                |x: &[Vec<Field128>], pr: &[Vec<Field128>]| -> Vec<VerifierShare<Field128>> {
                    (1..=p.g)
                        .map(|q| VerifierShare {
                            position: q,
                            verifier: query_share(
                                &typ,
                                &x[q as usize - 1],
                                &pr[q as usize - 1],
                                &query,
                                &joint,
                            )
                            .unwrap(),
                            commitments_digest: [0; 32],
                        })
                        .collect()
                };
            let good = verify(&xs, &ps);
            let bad = verify(&xs_bad, &ps_bad);
            for q in &coalition {
                let i = *q as usize - 1;
                assert_eq!(xs[i], xs_bad[i]);
                assert_eq!(ps[i], ps_bad[i]);
                assert_eq!(good[i], bad[i], "coalition {coalition:?}");
            }
            // The coalition alone decides nothing; t members decide, and differently.
            let coalition_good: Vec<_> = coalition
                .iter()
                .map(|q| good[*q as usize - 1].clone())
                .collect();
            assert!(decide(&typ, p, &coalition_good).is_err());
            assert!(decide(&typ, p, &good).unwrap());
            assert!(!decide(&typ, p, &bad).unwrap());
        }
    }
}

#[test]
fn a_share_that_differs_from_its_commitment_is_refused_by_its_member() {
    let typ = Count::<Field64>::new();
    let p = params((5, 3));
    let mut c = prove_and_share(&typ, &true, p, CONTEXT, &seed(1)).unwrap();
    c.shares[1].input[0] += f64_(1);
    assert!(matches!(
        verifier_share(&typ, p, &c.shares[1], CONTEXT, &BEACON),
        Err(ValidityError::Commitment(2))
    ));
}

/// Corrupting one element of one member's input or proof share (with the commitment made to
/// match, as a contributor that shares inconsistently would) never gets through: the group
/// either rejects or finds the verifier shares off one polynomial.
#[test]
fn corrupted_shares_are_never_accepted() {
    let typ = Hist128::new(16, 4).unwrap();
    for gt in GROUPS {
        let p = params(gt);
        let t = p.t as usize;
        for s in 0..40u64 {
            let mut c = prove_and_share(&typ, &((s % 16) as usize), p, CONTEXT, &seed(s)).unwrap();
            let who = (s % p.g as u64) as usize;
            let delta = f128(1 + s as u128 * 7919);
            let m = &mut c.shares[who];
            if s % 2 == 0 {
                let i = (s as usize * 3) % m.input.len();
                m.input[i] += delta;
            } else {
                let i = (s as usize * 5) % m.proof.len();
                m.proof[i] += delta;
            }
            // Keep the commitment list consistent with the corrupted share, for everyone.
            let own = commitment(m.position, &m.blind, &m.input);
            let own_proof = proof_commitment(m.position, &m.blind, &m.proof);
            for sh in &mut c.shares {
                sh.commitments[who] = own;
                sh.proof_commitments[who] = own_proof;
            }
            let v = all_verifier_shares(&typ, p, &c);
            // A t-subset holding the corrupted share: the decision is "invalid".
            let mut set: Vec<_> = vec![v[who].clone()];
            set.extend(
                v.iter()
                    .filter(|x| x.position as usize != who + 1)
                    .take(t - 1)
                    .cloned(),
            );
            assert!(!decide(&typ, p, &set).unwrap(), "seed {s}");
            // The whole group: rejected or disagreement, never accepted.
            assert!(!matches!(decide(&typ, p, &v), Ok(true)), "seed {s}");
        }
    }
}

#[test]
fn a_member_lying_about_its_verifier_share_is_noticed_when_more_than_t_speak() {
    let typ = Count::<Field64>::new();
    let p = params((7, 5));
    let c = prove_and_share(&typ, &false, p, CONTEXT, &seed(9)).unwrap();
    let mut v = all_verifier_shares(&typ, p, &c);
    v[6].verifier[0] += f64_(1);
    assert!(matches!(
        decide(&typ, p, &v),
        Err(ValidityError::Disagreement(ref at)) if at == &vec![7u8]
    ));
}

#[test]
fn malformed_remote_input_is_an_error_not_a_panic() {
    let typ = Count::<Field64>::new();
    let p = params((5, 3));
    let c = prove_and_share(&typ, &true, p, CONTEXT, &seed(1)).unwrap();
    let mut s = c.shares[0].clone();
    s.proof.pop();
    assert!(matches!(
        verifier_share(&typ, p, &s, CONTEXT, &BEACON),
        Err(ValidityError::Length { .. })
    ));
    let mut s = c.shares[0].clone();
    s.position = 9;
    assert!(verifier_share(&typ, p, &s, CONTEXT, &BEACON).is_err());
    let mut v = all_verifier_shares(&typ, p, &c);
    v[0].verifier.push(f64_(0));
    assert!(decide(&typ, p, &v).is_err());
    let mut v = all_verifier_shares(&typ, p, &c);
    v[1].position = v[0].position;
    assert!(decide(&typ, p, &v[..3]).is_err());
}

/// A proof share that does not match the proof commitment every member received is refused
/// by its member: the commitments fix the proof before the query randomness derived from them.
#[test]
fn a_proof_share_off_its_commitment_is_refused() {
    let typ = Sum::<Field64>::new(100).unwrap();
    let p = params((5, 3));
    let c = prove_and_share(&typ, &37, p, CONTEXT, &seed(3)).unwrap();
    let mut s = c.shares[1].clone();
    s.proof[0] += f64_(1);
    let query = derived_query_seed(CONTEXT, &s);
    assert!(matches!(
        verifier_share(&typ, p, &s, CONTEXT, &query),
        Err(ValidityError::Commitment(2))
    ));
    // The derived seed changes with any commitment.
    let mut other = c.shares[1].clone();
    other.proof_commitments[0][0] ^= 1;
    assert_ne!(
        derived_query_seed(CONTEXT, &other),
        derived_query_seed(CONTEXT, &c.shares[1])
    );
}

/// Positions `1..t-1` can receive their seed instead of their shares: it expands to exactly
/// their input and proof shares (so the wire's seed compression loses nothing), the others
/// get none, and the seeds do not depend on the value (another value, same seed: same seeds).
#[test]
fn the_seed_of_a_position_below_t_expands_to_its_input_and_proof_shares() {
    let typ = Vec128::new(4, 3, 2).unwrap();
    for gt in GROUPS {
        let p = params(gt);
        let a = prove_and_share(&typ, &vec![1, 0, 1], p, CONTEXT, &seed(5)).unwrap();
        let b = prove_and_share(&typ, &vec![0, 1, 0], p, CONTEXT, &seed(5)).unwrap();
        assert_eq!(a.seeds.len(), usize::from(p.t) - 1);
        assert_eq!(a.seeds, b.seeds);
        for (s, share) in a.seeds.iter().zip(&a.shares) {
            let (input, proof) = expand_seed_share(s, typ.input_len(), typ.proof_len());
            assert_eq!((input, proof), (share.input.clone(), share.proof.clone()));
        }
        // The honest contribution is still accepted (the proof shares of the seeded
        // positions are the stream's continuation).
        assert!(decisions(&typ, p, &a).iter().all(|d| *d));
    }
}
