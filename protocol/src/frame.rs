//! Length-prefixed frames read incrementally: a `u32` little-endian length, then that many
//! bytes. The reader never trusts the claimed length for memory: it checks it against a limit,
//! then grows its buffer only as bytes arrive (at most doubling, in steps of at least
//! [`FRAME_CHUNK_BYTES`]), and asks a [`Budget`] before every growth. A peer that claims 32 MiB
//! and sends ten bytes holds ten bytes' worth of room, not 32 MiB; a peer that does send the
//! bytes stops at its budget.
//!
//! Sans-IO: the driver (the node's transport codec) reads from its stream and feeds the bytes;
//! the fuzz target `frame` and the tests here feed arbitrary bytes.

use crate::limits::FRAME_CHUNK_BYTES;
use thiserror::Error;

/// Why a frame is refused.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("a frame of {len} bytes is over the limit of {limit}")]
    OverLimit { len: usize, limit: usize },
    #[error("the reader's budget has no room for {wanted} more bytes")]
    OverBudget { wanted: usize },
    #[error("the stream ended inside a frame")]
    Truncated,
}

/// Room for buffered bytes, granted piece by piece. The node's budget is shared by the streams
/// of a connection and by the whole node; tests use [`Unlimited`] or a fixed amount.
pub trait Budget {
    /// Takes `bytes` more room, or refuses (and takes nothing).
    fn reserve(&mut self, bytes: usize) -> bool;
}

/// A budget that always has room (the reader's length limit still holds).
#[derive(Clone, Copy, Debug, Default)]
pub struct Unlimited;

impl Budget for Unlimited {
    fn reserve(&mut self, _: usize) -> bool {
        true
    }
}

/// A fixed amount of room (tests, the fuzz target).
#[derive(Clone, Copy, Debug)]
pub struct Fixed(pub usize);

impl Budget for Fixed {
    fn reserve(&mut self, bytes: usize) -> bool {
        match self.0.checked_sub(bytes) {
            Some(left) => {
                self.0 = left;
                true
            }
            None => false,
        }
    }
}

/// One frame being read.
#[derive(Debug)]
pub struct FrameReader {
    limit: usize,
    header: [u8; 4],
    header_len: usize,
    /// The claimed length, once the header is complete (and within `limit`).
    len: Option<usize>,
    buf: Vec<u8>,
    /// Room taken from the budget: the capacity asked for so far.
    reserved: usize,
}

impl FrameReader {
    /// A reader of one frame of at most `limit` bytes.
    pub fn new(limit: usize) -> FrameReader {
        FrameReader {
            limit,
            header: [0; 4],
            header_len: 0,
            len: None,
            buf: Vec::new(),
            reserved: 0,
        }
    }

    /// How many more bytes the frame needs (header included); zero once complete. A driver
    /// reads at most this many (and at most [`FRAME_CHUNK_BYTES`]) at a time.
    pub fn wanted(&self) -> usize {
        match self.len {
            None => 4 - self.header_len,
            Some(len) => len - self.buf.len(),
        }
    }

    /// Room taken from the budget so far (the buffer's capacity, never more than the bytes
    /// received rounded up to the next growth step).
    pub fn reserved(&self) -> usize {
        self.reserved
    }

    /// Feeds bytes of the stream; returns how many were used (the rest belong after the
    /// frame). An error leaves the reader unusable.
    pub fn feed(&mut self, bytes: &[u8], budget: &mut impl Budget) -> Result<usize, FrameError> {
        let mut used = 0;
        if self.len.is_none() {
            let n = (4 - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
            self.header_len += n;
            used += n;
            if self.header_len < 4 {
                return Ok(used);
            }
            let len = u32::from_le_bytes(self.header) as usize;
            if len > self.limit {
                return Err(FrameError::OverLimit {
                    len,
                    limit: self.limit,
                });
            }
            self.len = Some(len);
        }
        let rest = &bytes[used..];
        let take = rest.len().min(self.wanted());
        if take == 0 {
            return Ok(used);
        }
        let needed = self.buf.len() + take;
        if needed > self.buf.capacity() {
            // `len` is set above; `needed <= len` since `take <= wanted`.
            let len = self.len.unwrap_or(needed);
            let grown = (self.buf.capacity() * 2)
                .max(needed)
                .max(FRAME_CHUNK_BYTES)
                .min(len);
            let more = grown - self.reserved;
            if !budget.reserve(more) {
                return Err(FrameError::OverBudget { wanted: more });
            }
            self.reserved = grown;
            self.buf.reserve_exact(grown - self.buf.len());
        }
        self.buf.extend_from_slice(&rest[..take]);
        Ok(used + take)
    }

    /// Whether the whole frame has arrived.
    pub fn is_complete(&self) -> bool {
        self.len.is_some() && self.wanted() == 0
    }

    /// The frame's bytes, or [`FrameError::Truncated`] if it is not complete (the stream ended).
    pub fn finish(self) -> Result<Vec<u8>, FrameError> {
        if self.is_complete() {
            Ok(self.buf)
        } else {
            Err(FrameError::Truncated)
        }
    }
}

/// Reads one frame from a byte slice as a stream would deliver it in pieces of `piece` bytes
/// (at least one): the fuzz target's and the tests' driver. Returns the frame and the bytes
/// used.
pub fn read_frame(
    bytes: &[u8],
    piece: usize,
    limit: usize,
    budget: &mut impl Budget,
) -> Result<(Vec<u8>, usize), FrameError> {
    let mut reader = FrameReader::new(limit);
    let mut at = 0;
    while !reader.is_complete() && at < bytes.len() {
        let end = at + piece.max(1).min(reader.wanted()).min(bytes.len() - at);
        at += reader.feed(&bytes[at..end], budget)?;
    }
    reader.finish().map(|frame| (frame, at))
}

/// The frame of `bytes`: its `u32` little-endian length, then the bytes (`None` beyond
/// `u32::MAX`).
pub fn encode_frame(bytes: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(bytes.len()).ok()?;
    let mut out = Vec::with_capacity(4 + bytes.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    /// A number in `lo..hi` (`hi > lo`).
    fn below(rng: &mut ChaCha20Rng, lo: usize, hi: usize) -> usize {
        lo + (rng.next_u64() % (hi - lo) as u64) as usize
    }

    fn bytes(rng: &mut ChaCha20Rng, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        rng.fill_bytes(&mut b);
        b
    }

    #[test]
    fn a_frame_reads_back_whatever_the_pieces() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for _ in 0..200 {
            let n = below(&mut rng, 0, 300_000);
            let body = bytes(&mut rng, n);
            let mut wire = encode_frame(&body).expect("small");
            wire.extend_from_slice(b"after");
            let piece = below(&mut rng, 1, 100_000);
            let (frame, used) =
                read_frame(&wire, piece, 1 << 20, &mut Unlimited).expect("a whole frame");
            assert_eq!(frame, body);
            assert_eq!(used, 4 + n);
        }
    }

    /// The defence: a claim costs nothing until its bytes arrive. A reader that took room
    /// for the claimed length up front fails here.
    #[test]
    fn a_claimed_length_takes_no_room_before_its_bytes() {
        let mut reader = FrameReader::new(32 << 20);
        let mut budget = Fixed(FRAME_CHUNK_BYTES);
        let mut wire = (32u32 << 20).to_le_bytes().to_vec();
        wire.extend_from_slice(&[1; 10]);
        assert_eq!(reader.feed(&wire, &mut budget), Ok(14));
        assert!(!reader.is_complete());
        assert!(
            reader.reserved() <= FRAME_CHUNK_BYTES,
            "{}",
            reader.reserved()
        );
        assert_eq!(reader.finish(), Err(FrameError::Truncated));
    }

    /// Room grows with the bytes received, never more than twice them (plus one step), and a
    /// sender stops at its budget.
    #[test]
    fn room_follows_the_bytes_and_stops_at_the_budget() {
        let mut reader = FrameReader::new(32 << 20);
        let budget_bytes = 4 << 20;
        let mut budget = Fixed(budget_bytes);
        reader
            .feed(&(32u32 << 20).to_le_bytes(), &mut budget)
            .expect("header");
        let chunk = vec![0u8; 1000];
        let mut received = 0;
        let err = loop {
            match reader.feed(&chunk, &mut budget) {
                Ok(n) => received += n,
                Err(e) => break e,
            }
            assert!(reader.reserved() <= (2 * received).max(FRAME_CHUNK_BYTES));
        };
        assert!(matches!(err, FrameError::OverBudget { .. }));
        assert!(received <= budget_bytes);
        assert!(received >= budget_bytes / 2, "{received}");
    }

    #[test]
    fn a_length_over_the_limit_is_refused_before_any_room() {
        let mut budget = Fixed(0);
        let wire = 1001u32.to_le_bytes();
        assert_eq!(
            read_frame(&wire, 4, 1000, &mut budget),
            Err(FrameError::OverLimit {
                len: 1001,
                limit: 1000
            })
        );
        assert_eq!(
            read_frame(&[1, 0], 4, 1000, &mut budget),
            Err(FrameError::Truncated)
        );
    }

    /// Random bytes in random pieces under a random budget: never a panic, never more room
    /// than the budget, and a frame only when the bytes hold one.
    #[test]
    fn random_input_never_panics_or_overspends() {
        let mut rng = ChaCha20Rng::seed_from_u64(16);
        for _ in 0..2000 {
            let n = below(&mut rng, 0, 2048);
            let mut input = bytes(&mut rng, n);
            if rng.next_u32() % 2 == 0 && n >= 4 {
                let claim = below(&mut rng, 0, 2 * n) as u32;
                input[..4].copy_from_slice(&claim.to_le_bytes());
            }
            let limit = below(&mut rng, 0, 4096);
            let room = below(&mut rng, 0, 2 * FRAME_CHUNK_BYTES);
            let mut budget = Fixed(room);
            let piece = below(&mut rng, 1, 64);
            if let Ok((frame, used)) = read_frame(&input, piece, limit, &mut budget) {
                assert_eq!(used, 4 + frame.len());
                assert_eq!(&input[4..used], &frame[..]);
                assert!(frame.len() <= limit);
            }
            assert!(budget.0 <= room);
        }
    }
}
