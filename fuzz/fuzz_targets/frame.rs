//! Reads one length-prefixed frame (`grove_protocol::frame`, what the daemon's transport codec
//! runs on every inbound stream) from arbitrary bytes, delivered in pieces whose size and the
//! reader's budget come from the input's first bytes. No input may panic; the room taken never
//! exceeds the budget nor, beyond one growth step, twice the bytes received; a frame read back
//! is exactly the bytes after its length.
#![no_main]

use grove_protocol::frame::{read_frame, Budget, Fixed};
use grove_protocol::limits::FRAME_CHUNK_BYTES;
use libfuzzer_sys::fuzz_target;

/// A budget that records the most room ever taken.
struct Watched {
    inner: Fixed,
    taken: usize,
}

impl Budget for Watched {
    fn reserve(&mut self, bytes: usize) -> bool {
        let ok = self.inner.reserve(bytes);
        if ok {
            self.taken += bytes;
        }
        ok
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let piece = 1 + data[0] as usize * 7;
    let limit = u16::from_le_bytes([data[1], data[2]]) as usize * 16;
    let room = data[3] as usize * 1024;
    let wire = &data[4..];
    let mut budget = Watched {
        inner: Fixed(room),
        taken: 0,
    };
    let result = read_frame(wire, piece, limit, &mut budget);
    assert!(budget.taken <= room);
    assert!(budget.taken <= (2 * wire.len()).max(FRAME_CHUNK_BYTES));
    if let Ok((frame, used)) = result {
        assert!(frame.len() <= limit);
        assert_eq!(used, 4 + frame.len());
        assert_eq!(&wire[4..used], &frame[..]);
    }
});
