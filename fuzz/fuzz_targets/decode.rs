//! Decodes arbitrary bytes; whatever decodes must re-encode, decode again to the same message
//! and encode to the same bytes.
#![no_main]

use grove_protocol::codec::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = decode(data) else {
        return;
    };
    let bytes = encode(&message).expect("a decoded message re-encodes");
    let again = decode(&bytes).expect("a re-encoded message decodes");
    assert_eq!(encode(&again).as_ref(), Ok(&bytes));
    if again != message {
        // A request's bounds may hold a NaN, which is not equal to itself.
        assert_eq!(format!("{again:?}"), format!("{message:?}"));
    }
});
