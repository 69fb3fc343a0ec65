//! End-to-end share envelopes: a Noise one-way `N` pattern (`Noise_N_25519_ChaChaPoly_BLAKE2s`)
//! through `snow`, to the receiving member's static X25519 key, chunked for payloads larger
//! than one Noise message. The ephemeral key comes from a seed the caller passes in (the engine's
//! seeded CSPRNG), never from the operating system.
//! STUB: to be implemented (keep every signature).

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

/// The X25519 public key of a 32-byte secret.
pub fn x25519_public(_secret: &[u8; 32]) -> [u8; 32] {
    todo!()
}

/// X25519 Diffie-Hellman; symmetric: `shared(a, B) == shared(b, A)`.
pub fn x25519_shared(_secret: &[u8; 32], _public: &[u8; 32]) -> [u8; 32] {
    todo!()
}

/// Seals `plaintext` to `recipient_public`. Deterministic in `ephemeral_seed`.
pub fn seal(
    _recipient_public: &[u8; 32],
    _plaintext: &[u8],
    _ephemeral_seed: [u8; 32],
) -> Result<Vec<u8>, SealError> {
    todo!()
}

/// Opens an envelope sealed to the public key of `recipient_secret`.
pub fn open(_recipient_secret: &[u8; 32], _sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    todo!()
}
