//! Shamir sharing of vectors over prio's fields, for inputs, proofs and verifier messages.
//!
//! This is the plain construction, not the difference-table kernel of [`crate::sharing`]: the
//! values at positions `1..t-1` are drawn from per-position seeds, and positions `t..=g` are the
//! Lagrange extension of the polynomial through `0` (the secret) and `1..t-1`. So the shares of
//! positions `1..t-1` depend only on the seed, never on the secret, and the polynomial is uniform
//! among those of degree `< t` with the secret at `0` (the same argument as
//! [`crate::sharing::share_vector_compressed`]).

use crate::sharing::{SharingError, SharingParams};
use prio::field::FieldElement;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Domain of the per-position seeds of a validity sharing.
const SEED_DOMAIN: &str = "grove/validity/share-seed";

/// `x` as a field element (`x` is a small position, at most 255).
pub(crate) fn small<F: FieldElement>(x: u8) -> F {
    let mut acc = F::zero();
    for _ in 0..x {
        acc += F::one();
    }
    acc
}

/// A uniform element drawn from `rng` by rejection on the encoded size (the definition
/// [`random_vector`] draws by blocks).
#[cfg(test)]
pub(crate) fn random_element<F: FieldElement>(rng: &mut impl RngCore) -> F {
    let mut buf = vec![0u8; F::ENCODED_SIZE];
    loop {
        rng.fill_bytes(&mut buf);
        // `try_from` rejects exactly the encodings at or above the modulus.
        if let Ok(x) = F::try_from(&buf[..]) {
            return x;
        }
    }
}

/// `len` uniform elements drawn from `rng`: the same elements as `len` calls of
/// [`random_element`] (the stream is read in blocks, then parsed `ENCODED_SIZE` bytes at a
/// time; a rejected encoding, probability below `2^-32` in `Field64`, is skipped and the next
/// bytes of the stream tried, exactly as the call by call draw does).
pub(crate) fn random_vector<F: FieldElement>(rng: &mut impl RngCore, len: usize) -> Vec<F> {
    let size = F::ENCODED_SIZE;
    let mut out = Vec::with_capacity(len);
    let mut buf = vec![0u8; size * len.min(4096)];
    while out.len() < len {
        let want = (len - out.len()).min(buf.len() / size);
        let bytes = &mut buf[..want * size];
        rng.fill_bytes(bytes);
        for chunk in bytes.chunks_exact(size) {
            if let Ok(x) = F::try_from(chunk) {
                out.push(x);
            }
        }
    }
    out
}

/// Coefficients that carry the values at `points` to the value at `target` (distinct points,
/// zero allowed; `target = 0` reconstructs the secret).
pub fn lagrange<F: FieldElement>(points: &[u8], target: u8) -> Result<Vec<F>, SharingError> {
    let mut seen = [false; 256];
    for &p in points {
        if seen[p as usize] {
            return Err(SharingError::BadPoint(p));
        }
        seen[p as usize] = true;
    }
    let tx: F = small(target);
    let mut out = Vec::with_capacity(points.len());
    for (i, &pi) in points.iter().enumerate() {
        let xi: F = small(pi);
        let (mut num, mut den) = (F::one(), F::one());
        for (j, &pj) in points.iter().enumerate() {
            if i != j {
                let xj: F = small(pj);
                num *= tx - xj;
                den *= xi - xj;
            }
        }
        // Distinct points below 256 and a modulus above 2^32: `den` is not zero.
        out.push(num * den.inv());
    }
    Ok(out)
}

/// `sum_k coeffs[k] * vecs[k]` (equal lengths).
pub(crate) fn combine<F: FieldElement>(coeffs: &[F], vecs: &[&[F]]) -> Vec<F> {
    let n = vecs.first().map_or(0, |v| v.len());
    let mut out = vec![F::zero(); n];
    for (c, v) in coeffs.iter().zip(vecs) {
        for (o, x) in out.iter_mut().zip(v.iter()) {
            *o += *c * *x;
        }
    }
    out
}

/// The seed of position `p` (`1..t`) of a sharing under `seed`: that position's share is
/// its expansion ([`expand_position`]).
pub fn position_seed(seed: &[u8; 32], p: u8) -> [u8; 32] {
    crate::ids::hash_parts(SEED_DOMAIN, &[seed, &[p]])
}

/// The `len` elements a position's seed expands to. A stream: the expansion to `n` elements
/// is the prefix of the expansion to more, so one seed can carry several shares in a row
/// (`validity::prove_tied_and_share` draws a position's input share, then its proof share).
pub fn expand_position<F: FieldElement>(position_seed: &[u8; 32], len: usize) -> Vec<F> {
    random_vector(&mut ChaCha20Rng::from_seed(*position_seed), len)
}

/// Shares `secret` at positions `1..=g` (index 0 is position 1); deterministic in `seed`.
pub fn share<F: FieldElement>(secret: &[F], params: SharingParams, seed: &[u8; 32]) -> Vec<Vec<F>> {
    let randoms: Vec<Vec<F>> = (1..params.t)
        .map(|p| expand_position(&position_seed(seed, p), secret.len()))
        .collect();
    share_with(secret, params, randoms)
}

/// Shares `secret` with the shares of positions `1..t-1` given (`randoms[p - 1]`, uniform and
/// independent of the secret, as long as it): positions `t..=g` are the Lagrange extension of
/// the polynomial through `0` (the secret) and `1..t-1`.
pub fn share_with<F: FieldElement>(
    secret: &[F],
    params: SharingParams,
    randoms: Vec<Vec<F>>,
) -> Vec<Vec<F>> {
    share_with_except(secret, params, randoms, 0..0)
}

/// [`share_with`] that leaves the elements `skip` of positions `t..=g` zero, for a caller that
/// overwrites them at every position afterwards (`validity::prove_staged_tied_and_share`: the
/// tie writes them from the aggregated shares): the Lagrange extension is computed only where it
/// is kept. Positions `1..t-1` are `randoms` as given, `skip` included.
pub fn share_with_except<F: FieldElement>(
    secret: &[F],
    params: SharingParams,
    randoms: Vec<Vec<F>>,
    skip: std::ops::Range<usize>,
) -> Vec<Vec<F>> {
    let (g, t) = (params.g, params.t);
    let n = secret.len();
    let skip = skip.start.min(n)..skip.end.min(n).max(skip.start.min(n));
    let mut out: Vec<Vec<F>> = randoms;
    out.truncate(usize::from(t.saturating_sub(1)));
    // Position 0 (the secret) and the positions given, as `share_with` always had them.
    let points: Vec<u8> = (0..=out.len() as u8).collect();
    let extended: Vec<Vec<F>> = {
        let mut refs: Vec<&[F]> = vec![secret];
        refs.extend(out.iter().map(|v| v.as_slice()));
        (t.max(1)..=g)
            .map(|p| {
                // The points 0..t-1 are distinct, so the coefficients exist.
                let coeffs = lagrange::<F>(&points, p).unwrap_or_default();
                let mut share = vec![F::zero(); n];
                for range in [0..skip.start, skip.end..n] {
                    combine_into(&coeffs, &refs, &mut share[range.clone()], range);
                }
                share
            })
            .collect()
    };
    out.extend(extended);
    out
}

/// Recomputes the elements `range` of positions `t..=g` of `shares` (a sharing of `secret`
/// by [`share_with_except`], positions `1..t-1` as drawn) after `secret` changed there: the
/// same values as sharing the new `secret` with the same randoms, without sharing it again
/// (`validity::prove_in_stages`: the witness is computed after the first stage is shared).
pub fn reshare_range<F: FieldElement>(
    secret: &[F],
    params: SharingParams,
    shares: &mut [Vec<F>],
    range: std::ops::Range<usize>,
) {
    let given = usize::from(params.t.saturating_sub(1)).min(shares.len());
    let points: Vec<u8> = (0..=given as u8).collect();
    let (randoms, extended) = shares.split_at_mut(given);
    let mut refs: Vec<&[F]> = vec![secret];
    refs.extend(randoms.iter().map(|v| v.as_slice()));
    for (p, share) in (params.t.max(1)..=params.g).zip(extended.iter_mut()) {
        // The points 0..t-1 are distinct, so the coefficients exist.
        let coeffs = lagrange::<F>(&points, p).unwrap_or_default();
        if let Some(out) = share.get_mut(range.clone()) {
            out.fill(F::zero());
            combine_into(&coeffs, &refs, out, range.clone());
        }
    }
}

/// `out = sum_k coeffs[k] * vecs[k][range]` (`out` as long as `range`, every vector long enough).
fn combine_into<F: FieldElement>(
    coeffs: &[F],
    vecs: &[&[F]],
    out: &mut [F],
    range: std::ops::Range<usize>,
) {
    for (c, v) in coeffs.iter().zip(vecs) {
        for (o, x) in out.iter_mut().zip(v.get(range.clone()).unwrap_or_default()) {
            *o += *c * *x;
        }
    }
}

/// The value at 0 of the polynomial through the first `t` of `shares` (`(position, share)`,
/// positions distinct and non-zero, equal lengths).
pub fn reconstruct<F: FieldElement>(shares: &[(u8, &[F])], t: u8) -> Result<Vec<F>, SharingError> {
    let t = t as usize;
    if t == 0 {
        return Err(SharingError::InvalidParams { g: 0, t: 0 });
    }
    if shares.len() < t {
        return Err(SharingError::NotEnoughShares {
            needed: t,
            got: shares.len(),
        });
    }
    let used = &shares[..t];
    if used.iter().any(|(p, _)| *p == 0) {
        return Err(SharingError::BadPoint(0));
    }
    let n = used[0].1.len();
    if used.iter().any(|(_, s)| s.len() != n) {
        return Err(SharingError::LengthMismatch);
    }
    let points: Vec<u8> = used.iter().map(|(p, _)| *p).collect();
    let coeffs = lagrange::<F>(&points, 0)?;
    let vecs: Vec<&[F]> = used.iter().map(|(_, s)| *s).collect();
    Ok(combine(&coeffs, &vecs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prio::field::Field64;

    /// A stream of fixed bytes, then ChaCha20's (rejections on demand).
    struct Scripted {
        head: Vec<u8>,
        rest: ChaCha20Rng,
    }

    impl RngCore for Scripted {
        fn next_u32(&mut self) -> u32 {
            let mut b = [0u8; 4];
            self.fill_bytes(&mut b);
            u32::from_le_bytes(b)
        }
        fn next_u64(&mut self) -> u64 {
            let mut b = [0u8; 8];
            self.fill_bytes(&mut b);
            u64::from_le_bytes(b)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            let n = dest.len().min(self.head.len());
            dest[..n].copy_from_slice(&self.head[..n]);
            self.head.drain(..n);
            self.rest.fill_bytes(&mut dest[n..]);
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_chacha::rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    /// Leaving a range to the caller changes nothing outside it, and leaves it zero at the
    /// extended positions (the given ones keep their randoms): the shares outside the range
    /// are still those of the secret.
    #[test]
    fn a_sharing_that_skips_a_range_is_the_sharing_outside_it() {
        let params = SharingParams::new(5, 3).unwrap();
        let secret: Vec<Field64> = (0..40u64).map(|i| Field64::from(i * 7 + 1)).collect();
        let randoms: Vec<Vec<Field64>> = (1..3u8)
            .map(|p| expand_position(&position_seed(&[4; 32], p), secret.len()))
            .collect();
        let full = share_with(&secret, params, randoms.clone());
        for skip in [0..0, 0..40, 10..25, 30..60, 35..35] {
            let part = share_with_except(&secret, params, randoms.clone(), skip.clone());
            assert_eq!(part.len(), full.len());
            for (p, (a, b)) in part.iter().zip(&full).enumerate() {
                assert_eq!(a.len(), b.len());
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    if p >= 2 && skip.contains(&i) {
                        assert_eq!(*x, Field64::zero(), "{skip:?} {p} {i}");
                    } else {
                        assert_eq!(x, y, "{skip:?} {p} {i}");
                    }
                }
            }
            // Outside the range any t shares give the secret back.
            let pairs: Vec<(u8, &[Field64])> =
                [(3u8, part[2].as_slice()), (1, &part[0]), (5, &part[4])].to_vec();
            let back = reconstruct(&pairs, 3).unwrap();
            for (i, (x, y)) in back.iter().zip(&secret).enumerate() {
                if !skip.contains(&i) {
                    assert_eq!(x, y);
                }
            }
        }
    }

    /// Drawing by blocks gives the elements of drawing one at a time, rejected encodings (at
    /// or above the modulus) included, for lengths around the block size.
    #[test]
    fn a_vector_drawn_by_blocks_is_the_elements_drawn_one_at_a_time() {
        let mut head = Vec::new();
        for k in 0..4u64 {
            head.extend_from_slice(&(u64::MAX - k).to_le_bytes()); // rejected
            head.extend_from_slice(&(k * 1_000_003).to_le_bytes());
        }
        for len in [0, 1, 7, 4095, 4096, 4097, 9000] {
            let scripted = || Scripted {
                head: head.clone(),
                rest: ChaCha20Rng::from_seed([len as u8; 32]),
            };
            let mut one = scripted();
            let expected: Vec<Field64> = (0..len).map(|_| random_element(&mut one)).collect();
            let mut blocks = scripted();
            assert_eq!(
                random_vector::<Field64>(&mut blocks, len),
                expected,
                "{len}"
            );
            // Both read the stream to the same point.
            assert_eq!(one.next_u64(), blocks.next_u64(), "{len}");
        }
    }
}
