//! The wire codec against hostile input: whatever the bytes, `decode` returns (`Ok` or `Err`)
//! without panicking, and lengths declared by the input never drive allocation or time.

use grove_protocol::codec::{decode, encode, sample_messages, CodecError, HEADER_LEN, MAGIC};
use grove_protocol::limits::MAX_MESSAGE_BYTES;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::time::{Duration, Instant};

fn header() -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.push(grove_protocol::codec::WIRE_VERSION);
    h
}

/// Decodes, and if the bytes decode, checks that the message re-encodes, decodes again to the
/// same message and encodes to the same bytes. (Compared through the bytes as well: a request's
/// bounds may hold a NaN, which is not equal to itself.)
fn check(bytes: &[u8]) -> Result<(), CodecError> {
    let m = decode(bytes)?;
    let again = encode(&m).expect("a decoded message re-encodes");
    let m2 = decode(&again).expect("a re-encoded message decodes");
    assert_eq!(encode(&m2).as_ref(), Ok(&again));
    if m2 != m {
        assert_eq!(format!("{m2:?}"), format!("{m:?}"));
    }
    Ok(())
}

fn varint(mut x: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (x & 0x7f) as u8;
        x >>= 7;
        if x == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

#[test]
fn random_byte_strings() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut lengths: Vec<usize> = (0..300).collect();
    lengths.extend([511, 512, 1000, 4096, 65_535, 65_536, 1 << 20]);
    for &len in &lengths {
        for _ in 0..if len < 300 { 40 } else { 4 } {
            let mut b = vec![0u8; len];
            rng.fill_bytes(&mut b);
            // Raw: almost always bad magic.
            let _ = check(&b);
            // Behind a valid header, so that postcard sees the garbage.
            let mut h = header();
            h.extend_from_slice(&b);
            let _ = check(&h);
        }
    }
}

#[test]
fn random_bodies_behind_every_variant_tag() {
    // A valid computation id and round, then each variant index (including unknown ones),
    // then random bytes.
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    for tag in 0u8..20 {
        for len in [0usize, 1, 2, 5, 10, 33, 64, 100, 300, 1000, 10_000] {
            for _ in 0..30 {
                let mut b = header();
                b.extend_from_slice(&[0x11; 32]);
                b.push(0);
                b.push(tag);
                let start = b.len();
                b.resize(start + len, 0);
                rng.fill_bytes(&mut b[start..]);
                let _ = check(&b);
            }
        }
    }
}

#[test]
fn every_truncation_of_valid_encodings_fails() {
    for m in sample_messages() {
        let bytes = encode(&m).unwrap();
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut]).is_err(),
                "{} truncated at {cut} of {} decoded",
                m.kind(),
                bytes.len()
            );
        }
        // And every extension.
        for extra in [&[0u8][..], &[0xff], &[0, 0, 0, 0], &bytes] {
            let mut longer = bytes.clone();
            longer.extend_from_slice(extra);
            assert!(matches!(decode(&longer), Err(CodecError::Malformed(_))));
        }
    }
}

#[test]
fn bit_flips_of_valid_encodings() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    for m in sample_messages() {
        let bytes = encode(&m).unwrap();
        // Every single bit.
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                let _ = check(&b);
            }
        }
        // Random bursts of flips and overwrites.
        for _ in 0..2000 {
            let mut b = bytes.clone();
            let n = 1 + (rng.next_u32() % 8) as usize;
            for _ in 0..n {
                let i = (rng.next_u32() as usize) % b.len();
                if rng.next_u32() % 2 == 0 {
                    b[i] ^= 1 << (rng.next_u32() % 8);
                } else {
                    b[i] = rng.next_u32() as u8;
                }
            }
            let _ = check(&b);
        }
        // Valid prefix, random suffix.
        for cut in (HEADER_LEN..bytes.len()).step_by(3) {
            let mut b = bytes[..cut].to_vec();
            let mut tail = vec![0u8; bytes.len() - cut + (rng.next_u32() % 16) as usize];
            rng.fill_bytes(&mut tail);
            b.extend_from_slice(&tail);
            let _ = check(&b);
        }
    }
}

#[test]
fn huge_declared_lengths_fail_fast() {
    // Each prefix ends just before a length-prefixed field (Vec<u8>, Vec<Item>, String, FieldVec,
    // Vec<Position>); the field then claims an enormous length backed by a few bytes.
    let id = [0x11u8; 32];
    let mut prefixes: Vec<Vec<u8>> = Vec::new();
    let msg = |tag: u8, rest: &[u8]| {
        let mut b = header();
        b.extend_from_slice(&id);
        b.push(0); // round
        b.push(tag);
        b.extend_from_slice(rest);
        b
    };
    // Request: SignedRequest { Request { id, commissioner, commissioner_node, directory,
    // created_at, deadline, query: String, .. } }
    let mut req = [0x22u8; 96].to_vec();
    req.extend([0, 0, 1, 2]); // directory: None, beacon: None, created_at, deadline
    prefixes.push(msg(0, &req)); // query
                                 // Share: group (level, index), position, contributor, sealed: Vec<u8>
    let mut share = vec![0, 3, 1];
    share.extend_from_slice(&[0x33; 32]);
    prefixes.push(msg(1, &share));
    // Partial: child, position, version (digest, count), sum: FieldVec
    let mut partial = vec![0, 3, 1];
    partial.extend_from_slice(&[0x44; 32]);
    partial.push(7);
    prefixes.push(msg(2, &partial));
    // Report: group, position, items: Vec<Item>
    prefixes.push(msg(3, &[0, 3, 1]));
    // Report with no items and an adopted manifest: Some, items: Vec<Item>
    prefixes.push(msg(3, &[0, 3, 1, 0, 1]));
    // Manifest: group, leader, items
    prefixes.push(msg(5, &[1, 0, 2]));
    // HealGo: child, target, version digest, helpers: Vec<u8>
    let mut go = vec![0, 3, 2];
    go.extend_from_slice(&[0x55; 32]);
    prefixes.push(msg(8, &go));
    // Finish: signature: Vec<u8>
    prefixes.push(msg(13, &[]));

    let start = Instant::now();
    for p in &prefixes {
        for claimed in [
            1u64 << 20,
            1 << 32,
            1 << 40,
            1 << 60,
            u64::MAX,
            MAX_MESSAGE_BYTES as u64 + 1,
        ] {
            for tail in [&[][..], &[0u8; 3], &[0xffu8; 10], &[1u8; 100]] {
                let mut b = p.clone();
                b.extend_from_slice(&varint(claimed));
                b.extend_from_slice(tail);
                assert!(
                    check(&b).is_err(),
                    "claimed length {claimed} with {} bytes decoded",
                    tail.len()
                );
            }
        }
        // Over-long varints (more than 10 bytes of continuation) are refused too.
        let mut b = p.clone();
        b.extend_from_slice(&[0xff; 20]);
        assert!(check(&b).is_err());
    }
    // 8 prefixes x 25 inputs of at most ~250 bytes: anything that allocated or looped by the
    // claimed length would take far longer than this.
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn degenerate_patterns() {
    // Long runs of continuation bytes, all-ones, all-zeros and repeated "Some"/variant tags:
    // there is no recursion in the message types, so nesting cannot go deep, but postcard must
    // still walk these without trouble.
    for len in [1usize, 10, 100, 1000, 100_000] {
        for byte in [0x00u8, 0x01, 0x7f, 0x80, 0xff] {
            let mut b = header();
            b.resize(HEADER_LEN + len, byte);
            let _ = check(&b);
        }
        let mut b = header();
        for i in 0..len {
            b.push(if i % 2 == 0 { 0x01 } else { 0x03 });
        }
        let _ = check(&b);
    }
    // Over the size limit, refused before parsing.
    let big = vec![0x80u8; MAX_MESSAGE_BYTES + 1];
    assert_eq!(
        decode(&big),
        Err(CodecError::TooLarge(MAX_MESSAGE_BYTES + 1))
    );
}
