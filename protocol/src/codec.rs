//! The wire codec: a 4-byte magic, a version byte, then the postcard body; size-checked both
//! ways and validated against the named limits after decoding.
//! STUB: to be implemented (keep every signature).

use crate::message::Message;
use thiserror::Error;

pub const MAGIC: [u8; 4] = *b"GRV\0";
pub const WIRE_VERSION: u8 = 1;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("message of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("not a Grove message")]
    BadMagic,
    #[error("unsupported wire version {0}")]
    UnsupportedVersion(u8),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("message violates a limit: {0}")]
    Limit(String),
}

pub fn encode(_message: &Message) -> Result<Vec<u8>, CodecError> {
    todo!()
}

pub fn decode(_bytes: &[u8]) -> Result<Message, CodecError> {
    todo!()
}
