//! Randomness beacon rounds: verification of a drand round and the plan seed drawn from it.
//!
//! A request names a future round of a drand chain. When that round is published, every node
//! verifies its BLS signature against the chain's public key (with the `drand-verify` crate)
//! and derives the plan seed from the signed request and the round's randomness. No party knows
//! the randomness when the request is signed (the round lies in the future), and every node can
//! check it (the signature is public), so no one can steer the placement of aggregators.
//!
//! Sans-IO: the node fetches rounds over HTTP from any relay and passes them in; the simulator
//! draws them from its seed; tests and the demo sign them with [`TestChain`] (a known test key).

use crate::ids::{hash_parts, Micros};
use crate::limits::{MAX_BEACON_LEAD_MICROS, MAX_BEACON_SIGNATURE_BYTES};
use drand_verify::{G1Pubkey, G2PubkeyFastnet, G2PubkeyRfc, Pubkey};
use serde::{Deserialize, Serialize};

/// The drand signature schemes `drand-verify` supports, by their drand scheme id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scheme {
    /// `pedersen-bls-chained`: key on G1, signature on G2 over `sha256(previous || round)`.
    PedersenBlsChained,
    /// `pedersen-bls-unchained`: key on G1, signature on G2 over `sha256(round)`.
    PedersenBlsUnchained,
    /// `bls-unchained-on-g1` (fastnet, retired): key on G2, signature on G1.
    BlsUnchainedOnG1,
    /// `bls-unchained-g1-rfc9380` (quicknet): key on G2, signature on G1, RFC 9380 domain.
    BlsUnchainedG1Rfc9380,
}

impl Scheme {
    /// drand's name of the scheme, as a chain's `info` gives it.
    pub fn id(self) -> &'static str {
        match self {
            Scheme::PedersenBlsChained => "pedersen-bls-chained",
            Scheme::PedersenBlsUnchained => "pedersen-bls-unchained",
            Scheme::BlsUnchainedOnG1 => "bls-unchained-on-g1",
            Scheme::BlsUnchainedG1Rfc9380 => "bls-unchained-g1-rfc9380",
        }
    }

    /// The scheme named by drand's id.
    pub fn from_id(id: &str) -> Option<Scheme> {
        [
            Scheme::PedersenBlsChained,
            Scheme::PedersenBlsUnchained,
            Scheme::BlsUnchainedOnG1,
            Scheme::BlsUnchainedG1Rfc9380,
        ]
        .into_iter()
        .find(|s| s.id() == id)
    }

    /// Whether each round's message includes the previous round's signature.
    pub fn is_chained(self) -> bool {
        matches!(self, Scheme::PedersenBlsChained)
    }

    fn public_key_len(self) -> usize {
        match self {
            Scheme::PedersenBlsChained | Scheme::PedersenBlsUnchained => 48,
            Scheme::BlsUnchainedOnG1 | Scheme::BlsUnchainedG1Rfc9380 => 96,
        }
    }

    fn signature_len(self) -> usize {
        match self {
            Scheme::PedersenBlsChained | Scheme::PedersenBlsUnchained => 96,
            Scheme::BlsUnchainedOnG1 | Scheme::BlsUnchainedG1Rfc9380 => 48,
        }
    }
}

/// What a node knows of a drand chain (from its config; drand's `/info`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainInfo {
    /// The chain's hash (drand's `hash`), which names it; it goes into every plan seed.
    pub chain_hash: [u8; 32],
    /// The group public key, compressed (48 bytes on G1, 96 on G2, by scheme).
    pub public_key: Vec<u8>,
    /// Seconds between rounds.
    pub period_secs: u32,
    /// Unix time of round 1, in seconds.
    pub genesis_time_secs: u64,
    pub scheme: Scheme,
}

/// One published round, as a relay serves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    pub round: u64,
    pub signature: Vec<u8>,
    /// The previous round's signature: present for chained schemes only.
    pub previous_signature: Vec<u8>,
}

/// The verified randomness of one round: `sha256(signature)`, as drand derives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Randomness(pub [u8; 32]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BeaconError {
    #[error("chain public key is not a valid point for scheme {scheme:?}")]
    BadPublicKey { scheme: Scheme },
    #[error("chain period is zero")]
    ZeroPeriod,
    #[error("round {got} given where round {expected} is named")]
    WrongRound { expected: u64, got: u64 },
    #[error("signature of {len} bytes (scheme wants {want})")]
    SignatureLength { len: usize, want: usize },
    #[error("previous signature of {len} bytes (scheme wants {want})")]
    PreviousSignatureLength { len: usize, want: usize },
    #[error("signature is not a valid curve point")]
    MalformedSignature,
    #[error("signature does not verify under the chain key")]
    BadSignature,
    #[error("round 0 does not exist")]
    RoundZero,
    #[error("this node has no beacon chain configured")]
    NotConfigured,
    #[error("round {round} is published at {published:?}, not after the request's creation {created_at:?}")]
    RoundNotInFuture {
        round: u64,
        published: Micros,
        created_at: Micros,
    },
    #[error("round {round} is published at {published:?}, more than the allowed lead after {created_at:?}")]
    RoundTooFarAhead {
        round: u64,
        published: Micros,
        created_at: Micros,
    },
}

/// A chain whose key parsed: verifies its rounds.
pub struct Beacon {
    info: ChainInfo,
    key: Key,
    /// The last round that verified, with its randomness. The engines of one process (the
    /// simulator's thousands, the harness's) share one `Beacon` and are each handed the same
    /// round: the pairing runs once. Only a round equal in every byte to the one that verified
    /// is answered from here.
    last: std::sync::Mutex<Option<(Round, Randomness)>>,
}

enum Key {
    G1(G1Pubkey),
    G2Fastnet(G2PubkeyFastnet),
    G2Rfc(G2PubkeyRfc),
}

impl Beacon {
    /// Parses the chain's key (a subgroup-checked point of the scheme's curve).
    pub fn new(info: ChainInfo) -> Result<Beacon, BeaconError> {
        if info.period_secs == 0 {
            return Err(BeaconError::ZeroPeriod);
        }
        let bad = BeaconError::BadPublicKey {
            scheme: info.scheme,
        };
        if info.public_key.len() != info.scheme.public_key_len() {
            return Err(bad);
        }
        let key = match info.scheme {
            Scheme::PedersenBlsChained | Scheme::PedersenBlsUnchained => {
                Key::G1(G1Pubkey::from_variable(&info.public_key).map_err(|_| bad)?)
            }
            Scheme::BlsUnchainedOnG1 => {
                Key::G2Fastnet(G2PubkeyFastnet::from_variable(&info.public_key).map_err(|_| bad)?)
            }
            Scheme::BlsUnchainedG1Rfc9380 => {
                Key::G2Rfc(G2PubkeyRfc::from_variable(&info.public_key).map_err(|_| bad)?)
            }
        };
        Ok(Beacon {
            info,
            key,
            last: std::sync::Mutex::new(None),
        })
    }

    pub fn info(&self) -> &ChainInfo {
        &self.info
    }

    /// When `round` is published (round 1 at genesis).
    pub fn round_time(&self, round: u64) -> Micros {
        let periods = round.saturating_sub(1);
        let secs = self
            .info
            .genesis_time_secs
            .saturating_add(periods.saturating_mul(u64::from(self.info.period_secs)));
        Micros(secs.saturating_mul(1_000_000))
    }

    /// The first round published strictly after `time`.
    pub fn first_round_after(&self, time: Micros) -> u64 {
        let genesis = self.info.genesis_time_secs.saturating_mul(1_000_000);
        if time.0 < genesis {
            return 1;
        }
        let period = u64::from(self.info.period_secs) * 1_000_000;
        // Round r is published at genesis + (r-1)*period; the last one at or before `time` is
        // 1 + (time-genesis)/period, so the next is one more.
        (time.0 - genesis) / period + 2
    }

    /// Checks that the named round is published after the request was created (so its
    /// randomness was unknown when the request was signed, up to clock skew, which the request
    /// validator bounds) and not absurdly later.
    pub fn check_named_round(&self, created_at: Micros, round: u64) -> Result<(), BeaconError> {
        if round == 0 {
            return Err(BeaconError::RoundZero);
        }
        let published = self.round_time(round);
        if published <= created_at {
            return Err(BeaconError::RoundNotInFuture {
                round,
                published,
                created_at,
            });
        }
        if published.0 - created_at.0 > MAX_BEACON_LEAD_MICROS {
            return Err(BeaconError::RoundTooFarAhead {
                round,
                published,
                created_at,
            });
        }
        Ok(())
    }

    /// Verifies that `round` is the `expected` round of this chain, signed by its key, and
    /// returns its randomness. Remote input: never panics.
    pub fn verify(&self, expected: u64, round: &Round) -> Result<Randomness, BeaconError> {
        if round.round != expected {
            return Err(BeaconError::WrongRound {
                expected,
                got: round.round,
            });
        }
        if round.round == 0 {
            return Err(BeaconError::RoundZero);
        }
        let want = self.info.scheme.signature_len();
        if round.signature.len() != want || want > MAX_BEACON_SIGNATURE_BYTES {
            return Err(BeaconError::SignatureLength {
                len: round.signature.len(),
                want,
            });
        }
        let previous: &[u8] = if self.info.scheme.is_chained() {
            if round.previous_signature.len() != want {
                return Err(BeaconError::PreviousSignatureLength {
                    len: round.previous_signature.len(),
                    want,
                });
            }
            &round.previous_signature
        } else {
            if !round.previous_signature.is_empty() {
                return Err(BeaconError::PreviousSignatureLength {
                    len: round.previous_signature.len(),
                    want: 0,
                });
            }
            b""
        };
        // A poisoned lock only means a thread panicked while storing a verified pair.
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((verified, randomness)) = last.as_ref() {
            if verified == round {
                return Ok(*randomness);
            }
        }
        let ok = match &self.key {
            Key::G1(k) => k.verify(round.round, previous, &round.signature),
            Key::G2Fastnet(k) => k.verify(round.round, previous, &round.signature),
            Key::G2Rfc(k) => k.verify(round.round, previous, &round.signature),
        }
        .map_err(|_| BeaconError::MalformedSignature)?;
        if !ok {
            return Err(BeaconError::BadSignature);
        }
        let randomness = Randomness(drand_verify::derive_randomness(&round.signature));
        *last = Some((round.clone(), randomness));
        Ok(randomness)
    }
}

/// The plan seed: a domain-separated hash of the signed request's bytes, the chain, the round
/// and its verified randomness. Every node computes the same seed; no one knew it at signing.
pub fn plan_seed(
    signed_request_bytes: &[u8],
    chain_hash: &[u8; 32],
    round: u64,
    randomness: &Randomness,
) -> [u8; 32] {
    hash_parts(
        "grove/plan-seed/beacon/v1",
        &[
            signed_request_bytes,
            chain_hash,
            &round.to_be_bytes(),
            &randomness.0,
        ],
    )
}

/// A local drand chain with a known test key: signs valid rounds so that tests, the simulator
/// and the demo need no network. Its key is derived from a public seed: never use it for a
/// real deployment.
#[cfg(any(test, feature = "beacon-signer"))]
pub struct TestChain {
    scheme: Scheme,
    secret: bls12_381::Scalar,
    genesis_time_secs: u64,
    period_secs: u32,
}

#[cfg(any(test, feature = "beacon-signer"))]
impl TestChain {
    const DST_G2: &'static [u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_";
    const DST_G1: &'static [u8] = b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_";

    pub fn new(scheme: Scheme, key_seed: &[u8], genesis_time_secs: u64, period_secs: u32) -> Self {
        let lo = hash_parts("grove/test-beacon-key/0", &[key_seed]);
        let hi = hash_parts("grove/test-beacon-key/1", &[key_seed]);
        let mut wide = [0u8; 64];
        wide[..32].copy_from_slice(&lo);
        wide[32..].copy_from_slice(&hi);
        TestChain {
            scheme,
            secret: bls12_381::Scalar::from_bytes_wide(&wide),
            genesis_time_secs,
            period_secs,
        }
    }

    pub fn info(&self) -> ChainInfo {
        let public_key = match self.scheme {
            Scheme::PedersenBlsChained | Scheme::PedersenBlsUnchained => {
                bls12_381::G1Affine::from(bls12_381::G1Affine::generator() * self.secret)
                    .to_compressed()
                    .to_vec()
            }
            Scheme::BlsUnchainedOnG1 | Scheme::BlsUnchainedG1Rfc9380 => {
                bls12_381::G2Affine::from(bls12_381::G2Affine::generator() * self.secret)
                    .to_compressed()
                    .to_vec()
            }
        };
        let chain_hash = hash_parts(
            "grove/test-beacon-chain",
            &[
                &public_key,
                self.scheme.id().as_bytes(),
                &self.genesis_time_secs.to_be_bytes(),
                &self.period_secs.to_be_bytes(),
            ],
        );
        ChainInfo {
            chain_hash,
            public_key,
            period_secs: self.period_secs,
            genesis_time_secs: self.genesis_time_secs,
            scheme: self.scheme,
        }
    }

    fn sign(&self, round: u64, previous: &[u8]) -> Vec<u8> {
        use bls12_381::hash_to_curve::{ExpandMsgXmd, HashToCurve};
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(previous);
        h.update(round.to_be_bytes());
        let msg: [u8; 32] = h.finalize().into();
        match self.scheme {
            Scheme::PedersenBlsChained | Scheme::PedersenBlsUnchained => {
                let p = <bls12_381::G2Projective as HashToCurve<ExpandMsgXmd<sha2_09::Sha256>>>::hash_to_curve(
                    msg,
                    Self::DST_G2,
                );
                bls12_381::G2Affine::from(p * self.secret)
                    .to_compressed()
                    .to_vec()
            }
            Scheme::BlsUnchainedOnG1 | Scheme::BlsUnchainedG1Rfc9380 => {
                // Fastnet hashed to G1 with the G2 domain tag (a drand bug `drand-verify` keeps).
                let dst = if self.scheme == Scheme::BlsUnchainedOnG1 {
                    Self::DST_G2
                } else {
                    Self::DST_G1
                };
                let p = <bls12_381::G1Projective as HashToCurve<ExpandMsgXmd<sha2_09::Sha256>>>::hash_to_curve(
                    msg, dst,
                );
                bls12_381::G1Affine::from(p * self.secret)
                    .to_compressed()
                    .to_vec()
            }
        }
    }

    /// The signed round `round`. For the chained scheme the previous signature is that of
    /// round `round - 1` (round 0's is a fixed genesis seed), so producing round `n` costs `n`
    /// signatures: keep chained test rounds small.
    pub fn round(&self, round: u64) -> Round {
        if !self.scheme.is_chained() {
            return Round {
                round,
                signature: self.sign(round, b""),
                previous_signature: Vec::new(),
            };
        }
        let mut previous = self.sign(0, b"grove test chain genesis");
        for r in 1..round {
            previous = self.sign(r, &previous);
        }
        Round {
            round,
            signature: self.sign(round, &previous),
            previous_signature: previous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Scheme; 4] = [
        Scheme::PedersenBlsChained,
        Scheme::PedersenBlsUnchained,
        Scheme::BlsUnchainedOnG1,
        Scheme::BlsUnchainedG1Rfc9380,
    ];

    fn chain(scheme: Scheme, key: &[u8]) -> TestChain {
        TestChain::new(scheme, key, 1_700_000_000, 3)
    }

    #[test]
    fn valid_rounds_of_every_scheme_are_accepted() {
        for scheme in ALL {
            let c = chain(scheme, b"test key");
            let beacon = Beacon::new(c.info()).unwrap();
            for r in [1, 2, 5] {
                let round = c.round(r);
                let randomness = beacon.verify(r, &round).unwrap();
                assert_eq!(
                    randomness.0,
                    drand_verify::derive_randomness(&round.signature)
                );
            }
        }
    }

    /// A real round of drand's quicknet (round 123, from drand-verify's own documentation):
    /// our verifier accepts the production chain, not only our own signer.
    #[test]
    fn a_real_quicknet_round_verifies() {
        fn unhex(s: &str) -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        }
        let info = ChainInfo {
            chain_hash: [0; 32],
            public_key: unhex("83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a"),
            period_secs: 3,
            genesis_time_secs: 1_692_803_367,
            scheme: Scheme::BlsUnchainedG1Rfc9380,
        };
        let beacon = Beacon::new(info).unwrap();
        let round = Round {
            round: 123,
            signature: unhex("b75c69d0b72a5d906e854e808ba7e2accb1542ac355ae486d591aa9d43765482e26cd02df835d3546d23c4b13e0dfc92"),
            previous_signature: Vec::new(),
        };
        assert!(beacon.verify(123, &round).is_ok());
        let mut other = round.clone();
        other.round = 124;
        assert_eq!(beacon.verify(124, &other), Err(BeaconError::BadSignature));
    }

    #[test]
    fn a_bad_signature_is_refused() {
        for scheme in ALL {
            let c = chain(scheme, b"test key");
            let beacon = Beacon::new(c.info()).unwrap();
            // Another round's valid signature, presented as round 3's.
            let mut round = c.round(3);
            round.signature = c.round(4).signature;
            assert_eq!(beacon.verify(3, &round), Err(BeaconError::BadSignature));
            // Garbage bytes of the right length: not a curve point.
            let mut garbage = c.round(3);
            garbage.signature = vec![0x5a; garbage.signature.len()];
            assert!(beacon.verify(3, &garbage).is_err());
            // Truncated.
            let mut short = c.round(3);
            short.signature.pop();
            assert!(matches!(
                beacon.verify(3, &short),
                Err(BeaconError::SignatureLength { .. })
            ));
        }
    }

    #[test]
    fn a_remembered_round_answers_only_for_the_same_bytes() {
        let c = chain(Scheme::BlsUnchainedG1Rfc9380, b"test key");
        let beacon = Beacon::new(c.info()).unwrap();
        let good = c.round(3);
        let randomness = beacon.verify(3, &good).unwrap();
        assert_eq!(beacon.verify(3, &good), Ok(randomness));
        // The same round number with another signature is verified, and refused.
        let mut forged = c.round(3);
        forged.signature = chain(Scheme::BlsUnchainedG1Rfc9380, b"other")
            .round(3)
            .signature;
        assert_eq!(beacon.verify(3, &forged), Err(BeaconError::BadSignature));
        assert_eq!(
            beacon.verify(4, &good),
            Err(BeaconError::WrongRound {
                expected: 4,
                got: 3
            })
        );
        assert_eq!(beacon.verify(3, &good), Ok(randomness));
    }

    #[test]
    fn a_chained_round_with_a_forged_previous_signature_is_refused() {
        let c = chain(Scheme::PedersenBlsChained, b"test key");
        let beacon = Beacon::new(c.info()).unwrap();
        let mut round = c.round(3);
        round.previous_signature = c.round(1).signature;
        assert_eq!(beacon.verify(3, &round), Err(BeaconError::BadSignature));
    }

    #[test]
    fn a_different_round_than_the_named_one_is_refused() {
        for scheme in ALL {
            let c = chain(scheme, b"test key");
            let beacon = Beacon::new(c.info()).unwrap();
            // A valid round, but not the one the request named.
            assert_eq!(
                beacon.verify(4, &c.round(3)),
                Err(BeaconError::WrongRound {
                    expected: 4,
                    got: 3
                })
            );
        }
    }

    #[test]
    fn a_round_of_another_chain_is_refused() {
        for scheme in ALL {
            let ours = Beacon::new(chain(scheme, b"test key").info()).unwrap();
            let theirs = chain(scheme, b"the commissioner's own key");
            assert_eq!(
                ours.verify(3, &theirs.round(3)),
                Err(BeaconError::BadSignature)
            );
        }
    }

    #[test]
    fn a_key_of_the_wrong_length_or_off_curve_is_refused() {
        let mut info = chain(Scheme::BlsUnchainedG1Rfc9380, b"k").info();
        info.public_key.pop();
        assert!(Beacon::new(info.clone()).is_err());
        info.public_key = vec![0x11; 96];
        assert!(Beacon::new(info).is_err());
    }

    #[test]
    fn the_named_round_must_lie_after_the_request() {
        let beacon = Beacon::new(chain(Scheme::BlsUnchainedG1Rfc9380, b"k").info()).unwrap();
        let created = Micros(1_700_000_100 * 1_000_000);
        let next = beacon.first_round_after(created);
        assert!(beacon.round_time(next) > created);
        assert!(beacon.round_time(next - 1) <= created);
        assert_eq!(beacon.check_named_round(created, next), Ok(()));
        assert!(matches!(
            beacon.check_named_round(created, next - 1),
            Err(BeaconError::RoundNotInFuture { .. })
        ));
        let far = next + MAX_BEACON_LEAD_MICROS / 3_000_000 + 1;
        assert!(matches!(
            beacon.check_named_round(created, far),
            Err(BeaconError::RoundTooFarAhead { .. })
        ));
    }

    #[test]
    fn the_seed_depends_on_the_round_the_request_and_the_chain() {
        let c = chain(Scheme::BlsUnchainedG1Rfc9380, b"test key");
        let info = c.info();
        let beacon = Beacon::new(info.clone()).unwrap();
        let r5 = beacon.verify(5, &c.round(5)).unwrap();
        let r6 = beacon.verify(6, &c.round(6)).unwrap();
        let s = plan_seed(b"request", &info.chain_hash, 5, &r5);
        assert_eq!(s, plan_seed(b"request", &info.chain_hash, 5, &r5));
        assert_ne!(s, plan_seed(b"request", &info.chain_hash, 6, &r6));
        assert_ne!(s, plan_seed(b"request!", &info.chain_hash, 5, &r5));
        assert_ne!(s, plan_seed(b"request", &[1; 32], 5, &r5));
    }
}
