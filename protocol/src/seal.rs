//! End-to-end share envelopes: a Noise one-way `N` pattern (`Noise_N_25519_ChaChaPoly_BLAKE2s`)
//! through `snow`, to the receiving member's static X25519 key, chunked for payloads larger
//! than one Noise message. The ephemeral key comes from a seed the caller passes in (the engine's
//! seeded CSPRNG), never from the operating system.
//!
//! Envelope layout (all lengths little-endian `u32`):
//!
//! ```text
//! chunks: u32                          number of frames that follow, 1..=MAX_CHUNKS
//! len: u32, handshake message          ephemeral public key ++ AEAD(first chunk)
//! len: u32, transport message          AEAD(next chunk)          (chunks - 1 times)
//! ```
//!
//! The chunk count is the Noise prologue, so it is authenticated by the handshake: dropping or
//! adding whole frames, reordering them (transport nonces) or appending bytes all fail.

use crate::limits::MAX_MESSAGE_BYTES;
use curve25519_dalek::montgomery::MontgomeryPoint;
use rand_chacha::rand_core::{RngCore as _, SeedableRng as _};
use rand_chacha::ChaCha20Rng;
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed envelope is malformed")]
    Malformed,
    #[error("sealed envelope does not open with this key")]
    Decrypt,
    #[error("payload too large")]
    TooLarge,
}

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_N_25519_ChaChaPoly_BLAKE2s";
/// Largest Noise message.
const NOISE_MAX: usize = 65_535;
const TAG: usize = 16;
const DH_LEN: usize = 32;
/// Plaintext bytes carried by the handshake message.
pub const FIRST_CHUNK_BYTES: usize = NOISE_MAX - DH_LEN - TAG;
/// Plaintext bytes carried by each transport message.
pub const CHUNK_BYTES: usize = NOISE_MAX - TAG;
/// Largest plaintext that can be sealed.
pub const MAX_PLAINTEXT_BYTES: usize = MAX_MESSAGE_BYTES;
/// Largest number of frames in an envelope.
pub const MAX_CHUNKS: usize = 1 + (MAX_PLAINTEXT_BYTES - FIRST_CHUNK_BYTES).div_ceil(CHUNK_BYTES);

const PROLOGUE_TAG: &[u8] = b"grove/seal/v1";

/// The X25519 public key of a 32-byte secret.
pub fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    MontgomeryPoint::mul_base_clamped(*secret).to_bytes()
}

/// X25519 Diffie-Hellman; symmetric: `shared(a, B) == shared(b, A)`.
pub fn x25519_shared(secret: &[u8; 32], public: &[u8; 32]) -> [u8; 32] {
    MontgomeryPoint(*public).mul_clamped(*secret).to_bytes()
}

/// snow's randomness, drawn from a ChaCha20 stream seeded by the caller.
struct SeededRandom(ChaCha20Rng);

impl Random for SeededRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

/// snow's pure-Rust default resolver, except that the RNG is a seeded ChaCha20 stream.
struct SeededResolver {
    seed: [u8; 32],
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRandom(ChaCha20Rng::from_seed(self.seed))))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

fn builder(seed: [u8; 32]) -> snow::Builder<'static> {
    let params = NOISE_PARAMS
        .parse()
        .expect("the Noise protocol name is valid");
    snow::Builder::with_resolver(params, Box::new(SeededResolver { seed }))
}

fn prologue(chunks: u32) -> Vec<u8> {
    let mut p = PROLOGUE_TAG.to_vec();
    p.extend_from_slice(&chunks.to_le_bytes());
    p
}

fn chunk_count(len: usize) -> usize {
    if len <= FIRST_CHUNK_BYTES {
        1
    } else {
        1 + (len - FIRST_CHUNK_BYTES).div_ceil(CHUNK_BYTES)
    }
}

fn push_frame(out: &mut Vec<u8>, frame: &[u8]) {
    out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    out.extend_from_slice(frame);
}

/// Seals `plaintext` to `recipient_public`. Deterministic in `ephemeral_seed`.
pub fn seal(
    recipient_public: &[u8; 32],
    plaintext: &[u8],
    ephemeral_seed: [u8; 32],
) -> Result<Vec<u8>, SealError> {
    if plaintext.len() > MAX_PLAINTEXT_BYTES {
        return Err(SealError::TooLarge);
    }
    let chunks = chunk_count(plaintext.len());
    let chunks_u32 = u32::try_from(chunks).map_err(|_| SealError::TooLarge)?;
    let prologue = prologue(chunks_u32);
    // The seed is hashed under its own domain, so that a caller who also uses it elsewhere does
    // not leak the ephemeral secret.
    let seed = crate::ids::hash_parts("grove/seal/ephemeral", &[&ephemeral_seed]);
    let mut handshake = builder(seed)
        .prologue(&prologue)
        .and_then(|b| b.remote_public_key(recipient_public))
        .and_then(|b| b.build_initiator())
        .map_err(|_| SealError::Malformed)?;

    let (first, rest) = plaintext.split_at(plaintext.len().min(FIRST_CHUNK_BYTES));
    let mut out = Vec::with_capacity(4 + plaintext.len() + chunks * (4 + TAG) + DH_LEN);
    out.extend_from_slice(&chunks_u32.to_le_bytes());
    let mut buf = vec![0u8; NOISE_MAX];
    let n = handshake
        .write_message(first, &mut buf)
        .map_err(|_| SealError::Malformed)?;
    push_frame(&mut out, &buf[..n]);
    let mut transport = handshake
        .into_transport_mode()
        .map_err(|_| SealError::Malformed)?;
    for chunk in rest.chunks(CHUNK_BYTES) {
        let n = transport
            .write_message(chunk, &mut buf)
            .map_err(|_| SealError::Malformed)?;
        push_frame(&mut out, &buf[..n]);
    }
    Ok(out)
}

/// Reads a little-endian `u32` and advances, or `Malformed`.
fn take_u32(bytes: &mut &[u8]) -> Result<usize, SealError> {
    let (head, tail) = bytes.split_first_chunk::<4>().ok_or(SealError::Malformed)?;
    *bytes = tail;
    Ok(u32::from_le_bytes(*head) as usize)
}

/// Reads one length-prefixed frame of at least `min` and at most `NOISE_MAX` bytes.
fn take_frame<'a>(bytes: &mut &'a [u8], min: usize) -> Result<&'a [u8], SealError> {
    let len = take_u32(bytes)?;
    if len < min || len > NOISE_MAX || len > bytes.len() {
        return Err(SealError::Malformed);
    }
    let (frame, tail) = bytes.split_at(len);
    *bytes = tail;
    Ok(frame)
}

/// Opens an envelope sealed to the public key of `recipient_secret`.
pub fn open(recipient_secret: &[u8; 32], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() > MAX_PLAINTEXT_BYTES + 4 + MAX_CHUNKS * (4 + TAG) + DH_LEN {
        return Err(SealError::TooLarge);
    }
    let mut input = sealed;
    let chunks = take_u32(&mut input)?;
    if chunks == 0 || chunks > MAX_CHUNKS {
        return Err(SealError::Malformed);
    }
    // Check the framing before any cryptography: exactly `chunks` frames, nothing after.
    {
        let mut probe = input;
        take_frame(&mut probe, DH_LEN + TAG)?;
        for _ in 1..chunks {
            take_frame(&mut probe, TAG)?;
        }
        if !probe.is_empty() {
            return Err(SealError::Malformed);
        }
    }
    let prologue = prologue(chunks as u32);
    // The responder of `N` never draws randomness; the resolver still wants an RNG.
    let mut handshake = builder([0u8; 32])
        .prologue(&prologue)
        .and_then(|b| b.local_private_key(recipient_secret))
        .and_then(|b| b.build_responder())
        .map_err(|_| SealError::Malformed)?;
    let mut out = Vec::with_capacity(sealed.len());
    let mut buf = vec![0u8; NOISE_MAX];
    let frame = take_frame(&mut input, DH_LEN + TAG)?;
    let n = handshake
        .read_message(frame, &mut buf)
        .map_err(|_| SealError::Decrypt)?;
    out.extend_from_slice(&buf[..n]);
    let mut transport = handshake
        .into_transport_mode()
        .map_err(|_| SealError::Malformed)?;
    for _ in 1..chunks {
        let frame = take_frame(&mut input, TAG)?;
        let n = transport
            .read_message(frame, &mut buf)
            .map_err(|_| SealError::Decrypt)?;
        out.extend_from_slice(&buf[..n]);
    }
    Ok(out)
}

/// How the engine seals shares. Nodes always use [`NoiseEnvelope`]; the simulator may use
/// [`PlainEnvelope`] (feature `test-util`) in its size-only mode, where it charges the cost of
/// sealing through its CPU model instead. Sealing never changes a protocol decision.
pub trait Envelope: Send + Sync {
    fn seal(
        &self,
        recipient_public: &[u8; 32],
        plaintext: &[u8],
        ephemeral_seed: [u8; 32],
    ) -> Result<Vec<u8>, SealError>;
    fn open(&self, recipient_secret: &[u8; 32], sealed: &[u8]) -> Result<Vec<u8>, SealError>;
}

/// The real envelope: Noise `N` to the recipient's static key.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoiseEnvelope;

impl Envelope for NoiseEnvelope {
    fn seal(
        &self,
        recipient_public: &[u8; 32],
        plaintext: &[u8],
        ephemeral_seed: [u8; 32],
    ) -> Result<Vec<u8>, SealError> {
        seal(recipient_public, plaintext, ephemeral_seed)
    }
    fn open(&self, recipient_secret: &[u8; 32], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        open(recipient_secret, sealed)
    }
}

/// Bytes of the envelope that seals `plaintext_len` bytes: the chunk count, then per frame a
/// length and a tag, and the ephemeral key once.
pub fn sealed_len(plaintext_len: usize) -> usize {
    4 + DH_LEN + plaintext_len + chunk_count(plaintext_len) * (4 + TAG)
}

/// For simulation only: the Noise envelope's exact framing and length (so that every byte the
/// simulator charges is the same), with the recipient's public key where the ephemeral key
/// goes and zeros where the tags go. A share still opens only at the node it was meant for.
/// Provides no confidentiality.
#[cfg(feature = "test-util")]
#[derive(Clone, Copy, Debug, Default)]
pub struct PlainEnvelope;

#[cfg(feature = "test-util")]
impl PlainEnvelope {
    /// Opens an envelope sealed to `recipient_public` (what [`Envelope::open`] does after
    /// deriving the public key from the secret: a caller that already knows the key pair skips
    /// that scalar multiplication).
    pub fn open_to(recipient_public: &[u8; 32], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() > sealed_len(MAX_PLAINTEXT_BYTES) {
            return Err(SealError::TooLarge);
        }
        let mut input = sealed;
        let chunks = take_u32(&mut input)?;
        if chunks == 0 || chunks > MAX_CHUNKS {
            return Err(SealError::Malformed);
        }
        let mut out = Vec::with_capacity(sealed.len());
        for i in 0..chunks {
            let frame = take_frame(&mut input, if i == 0 { DH_LEN + TAG } else { TAG })?;
            let frame = if i == 0 {
                let (key, rest) = frame.split_at(DH_LEN);
                if key != recipient_public {
                    return Err(SealError::Decrypt);
                }
                rest
            } else {
                frame
            };
            let (body, tag) = frame.split_at(frame.len() - TAG);
            if tag != [0u8; TAG] {
                return Err(SealError::Decrypt);
            }
            out.extend_from_slice(body);
        }
        if !input.is_empty() || chunks != chunk_count(out.len()) {
            return Err(SealError::Malformed);
        }
        Ok(out)
    }
}

#[cfg(feature = "test-util")]
impl Envelope for PlainEnvelope {
    fn seal(
        &self,
        recipient_public: &[u8; 32],
        plaintext: &[u8],
        _ephemeral_seed: [u8; 32],
    ) -> Result<Vec<u8>, SealError> {
        if plaintext.len() > MAX_PLAINTEXT_BYTES {
            return Err(SealError::TooLarge);
        }
        let chunks = chunk_count(plaintext.len());
        let mut out = Vec::with_capacity(sealed_len(plaintext.len()));
        out.extend_from_slice(&(chunks as u32).to_le_bytes());
        let (first, rest) = plaintext.split_at(plaintext.len().min(FIRST_CHUNK_BYTES));
        out.extend_from_slice(&((DH_LEN + first.len() + TAG) as u32).to_le_bytes());
        out.extend_from_slice(recipient_public);
        out.extend_from_slice(first);
        out.extend_from_slice(&[0u8; TAG]);
        for chunk in rest.chunks(CHUNK_BYTES) {
            out.extend_from_slice(&((chunk.len() + TAG) as u32).to_le_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(&[0u8; TAG]);
        }
        Ok(out)
    }
    fn open(&self, recipient_secret: &[u8; 32], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        PlainEnvelope::open_to(&x25519_public(recipient_secret), sealed)
    }
}

/// The key of a partial sum sent ahead of agreement: derived from the sender's secret, the
/// computation, the child group, its position and the version, so only the sender knows it
/// before its `PartialConfirm` reveals it, a restarted sender derives the same one, and the key
/// of one version says nothing about another's.
pub fn ahead_key(
    secret: &[u8; 32],
    computation: &[u8; 32],
    child: (u8, u32),
    position: u8,
    version: &[u8; 32],
) -> [u8; 32] {
    crate::ids::hash_parts(
        "grove/ahead-key/v1",
        &[
            secret,
            computation,
            &[child.0],
            &child.1.to_le_bytes(),
            &[position],
            version,
        ],
    )
}

/// Seals a partial sum sent ahead: adds a one-time pad of field elements drawn from `key`
/// (ChaCha20), so the vector says nothing about the sum without the key.
pub fn seal_ahead(key: &[u8; 32], sum: &mut [crate::field::Fp]) {
    let pad = crate::field::random_vec(&mut ChaCha20Rng::from_seed(*key), sum.len());
    crate::field::add_assign_vec(sum, &pad);
}

/// Opens a partial sum sealed by [`seal_ahead`] with the key its confirm revealed.
pub fn open_ahead(key: &[u8; 32], sealed: &mut [crate::field::Fp]) {
    let pad = crate::field::random_vec(&mut ChaCha20Rng::from_seed(*key), sealed.len());
    crate::field::sub_assign_vec(sealed, &pad);
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_partial_sent_ahead_opens_only_with_its_versions_key() {
        use crate::field::Fp;
        let sum: Vec<Fp> = (0..64u64).map(Fp::new).collect();
        let key = ahead_key(&[7; 32], &[1; 32], (0, 3), 2, &[9; 32]);
        let other = ahead_key(&[7; 32], &[1; 32], (0, 3), 2, &[8; 32]);
        assert_ne!(key, other, "each version has its own key");
        let mut sealed = sum.clone();
        seal_ahead(&key, &mut sealed);
        assert!(
            sealed.iter().zip(&sum).all(|(a, b)| a != b),
            "no element of the sum shows through"
        );
        let mut wrong = sealed.clone();
        open_ahead(&other, &mut wrong);
        assert_ne!(wrong, sum);
        open_ahead(&key, &mut sealed);
        assert_eq!(sealed, sum);
    }
    use super::*;

    const SECRET: [u8; 32] = [0x42; 32];

    fn public() -> [u8; 32] {
        x25519_public(&SECRET)
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
    }

    fn unhex(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn x25519_matches_rfc7748() {
        let a = unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let b = unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        let a_pub = x25519_public(&a);
        let b_pub = x25519_public(&b);
        assert_eq!(
            a_pub,
            unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert_eq!(
            b_pub,
            unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
        let shared = unhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(x25519_shared(&a, &b_pub), shared);
        assert_eq!(x25519_shared(&b, &a_pub), shared);
    }

    #[test]
    fn round_trips_across_chunk_boundaries() {
        let sizes = [
            0,
            1,
            100,
            FIRST_CHUNK_BYTES - 1,
            FIRST_CHUNK_BYTES,
            FIRST_CHUNK_BYTES + 1,
            NOISE_MAX - 1,
            NOISE_MAX,
            NOISE_MAX + 1,
            FIRST_CHUNK_BYTES + CHUNK_BYTES - 1,
            FIRST_CHUNK_BYTES + CHUNK_BYTES,
            FIRST_CHUNK_BYTES + CHUNK_BYTES + 1,
            1 << 20,
        ];
        for (i, &len) in sizes.iter().enumerate() {
            let p = payload(len);
            let sealed = seal(&public(), &p, [i as u8; 32]).unwrap();
            let chunks = chunk_count(len);
            assert_eq!(sealed[..4], (chunks as u32).to_le_bytes());
            assert_eq!(
                sealed.len(),
                4 + len + chunks * (4 + TAG) + DH_LEN,
                "len {len}"
            );
            assert_eq!(sealed.len(), sealed_len(len), "len {len}");
            let plain = PlainEnvelope.seal(&public(), &p, [i as u8; 32]).unwrap();
            assert_eq!(plain.len(), sealed.len(), "len {len}");
            assert_eq!(plain[..4], sealed[..4]);
            assert_eq!(
                PlainEnvelope.open(&SECRET, &plain),
                Ok(p.clone()),
                "len {len}"
            );
            assert_eq!(open(&SECRET, &sealed), Ok(p), "len {len}");
        }
        assert_eq!(chunk_count(FIRST_CHUNK_BYTES), 1);
        assert_eq!(chunk_count(FIRST_CHUNK_BYTES + 1), 2);
        assert_eq!(chunk_count(FIRST_CHUNK_BYTES + CHUNK_BYTES), 2);
        assert_eq!(chunk_count(FIRST_CHUNK_BYTES + CHUNK_BYTES + 1), 3);
    }

    #[test]
    fn the_plain_envelope_opens_only_at_its_recipient_and_only_whole() {
        for len in [0, 50, FIRST_CHUNK_BYTES + 10] {
            let sealed = PlainEnvelope
                .seal(&public(), &payload(len), [3; 32])
                .unwrap();
            assert_eq!(
                PlainEnvelope.open(&[0x43; 32], &sealed),
                Err(SealError::Decrypt)
            );
            for cut in [0, 3, 4, 8, sealed.len() / 2, sealed.len() - 1] {
                assert!(
                    PlainEnvelope.open(&SECRET, &sealed[..cut]).is_err(),
                    "cut {cut}"
                );
            }
            let mut longer = sealed.clone();
            longer.push(0);
            assert!(PlainEnvelope.open(&SECRET, &longer).is_err());
        }
    }

    #[test]
    fn largest_payload_seals_and_larger_does_not() {
        let p = vec![7u8; MAX_PLAINTEXT_BYTES];
        let sealed = seal(&public(), &p, [1; 32]).unwrap();
        assert_eq!(sealed[..4], (MAX_CHUNKS as u32).to_le_bytes());
        assert_eq!(open(&SECRET, &sealed), Ok(p));
        let p = vec![7u8; MAX_PLAINTEXT_BYTES + 1];
        assert_eq!(seal(&public(), &p, [1; 32]), Err(SealError::TooLarge));
    }

    #[test]
    fn deterministic_in_the_seed() {
        let p = payload(70_000);
        let a = seal(&public(), &p, [5; 32]).unwrap();
        let b = seal(&public(), &p, [5; 32]).unwrap();
        let c = seal(&public(), &p, [6; 32]).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        // The ephemeral public key differs, and so does every ciphertext.
        assert_ne!(a[8..40], c[8..40]);
        assert_eq!(open(&SECRET, &c), Ok(p));
        // The ephemeral key is not the raw seed's public key.
        assert_ne!(a[8..40], x25519_public(&[5; 32]));
    }

    #[test]
    fn wrong_key_does_not_open() {
        for len in [0, 10, 100_000] {
            let sealed = seal(&public(), &payload(len), [3; 32]).unwrap();
            assert_eq!(open(&[0x43; 32], &sealed), Err(SealError::Decrypt));
            assert_eq!(open(&[0; 32], &sealed), Err(SealError::Decrypt));
        }
    }

    #[test]
    fn truncated_or_extended_envelopes_are_rejected() {
        for len in [0, 33, FIRST_CHUNK_BYTES + 10] {
            let sealed = seal(&public(), &payload(len), [4; 32]).unwrap();
            let cuts: Vec<usize> = if sealed.len() < 200 {
                (0..sealed.len()).collect()
            } else {
                (0..sealed.len())
                    .step_by(97)
                    .chain([sealed.len() - 1])
                    .collect()
            };
            for cut in cuts {
                assert!(open(&SECRET, &sealed[..cut]).is_err(), "cut at {cut}");
            }
            for extra in [&[0u8][..], &[0, 0, 0, 0], &[16, 0, 0, 0], &[0xff; 40]] {
                let mut longer = sealed.clone();
                longer.extend_from_slice(extra);
                assert_eq!(open(&SECRET, &longer), Err(SealError::Malformed));
            }
        }
    }

    #[test]
    fn frames_cannot_be_dropped_added_or_swapped() {
        let p = payload(FIRST_CHUNK_BYTES + 2 * CHUNK_BYTES + 5);
        let sealed = seal(&public(), &p, [8; 32]).unwrap();
        // Split into frames.
        let mut rest = &sealed[4..];
        let mut frames = Vec::new();
        while !rest.is_empty() {
            frames.push(take_frame(&mut rest, 0).unwrap().to_vec());
        }
        assert_eq!(frames.len(), 4);
        let build = |count: u32, frames: &[Vec<u8>]| {
            let mut out = count.to_le_bytes().to_vec();
            for f in frames {
                push_frame(&mut out, f);
            }
            out
        };
        assert_eq!(open(&SECRET, &build(4, &frames)), Ok(p.clone()));
        // Drop the last frame and fix the count: the count is authenticated.
        assert_eq!(
            open(&SECRET, &build(3, &frames[..3])),
            Err(SealError::Decrypt)
        );
        // Duplicate a frame.
        let mut dup = frames.clone();
        dup.push(frames[3].clone());
        assert_eq!(open(&SECRET, &build(5, &dup)), Err(SealError::Decrypt));
        // Swap two transport frames.
        let mut swapped = frames.clone();
        swapped.swap(1, 2);
        assert_eq!(open(&SECRET, &build(4, &swapped)), Err(SealError::Decrypt));
        // Wrong counts with the original frames are framing errors.
        assert_eq!(open(&SECRET, &build(3, &frames)), Err(SealError::Malformed));
        assert_eq!(open(&SECRET, &build(5, &frames)), Err(SealError::Malformed));
        assert_eq!(open(&SECRET, &build(0, &frames)), Err(SealError::Malformed));
        assert_eq!(
            open(&SECRET, &build(u32::MAX, &frames)),
            Err(SealError::Malformed)
        );
    }

    #[test]
    fn bit_flips_are_rejected() {
        let small = seal(&public(), &payload(50), [9; 32]).unwrap();
        for i in 0..small.len() {
            for bit in 0..8 {
                let mut b = small.clone();
                b[i] ^= 1 << bit;
                assert!(open(&SECRET, &b).is_err(), "byte {i} bit {bit}");
            }
        }
        let big = seal(&public(), &payload(FIRST_CHUNK_BYTES + 1000), [9; 32]).unwrap();
        for i in (0..big.len())
            .step_by(1013)
            .chain(big.len() - 20..big.len())
        {
            let mut b = big.clone();
            b[i] ^= 0x20;
            assert!(open(&SECRET, &b).is_err(), "byte {i}");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        for len in (0..200).chain([1000, 65_535, 65_600, 200_000]) {
            for _ in 0..20 {
                let mut b = vec![0u8; len];
                rng.fill_bytes(&mut b);
                assert!(open(&SECRET, &b).is_err());
                // With a plausible count and first length.
                if len >= 8 {
                    b[..4].copy_from_slice(&1u32.to_le_bytes());
                    b[4..8].copy_from_slice(&((len - 8) as u32).to_le_bytes());
                    assert!(open(&SECRET, &b).is_err());
                }
            }
        }
    }
}
