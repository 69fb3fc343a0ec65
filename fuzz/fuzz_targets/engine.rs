#![no_main]
//! Feeds hostile messages to live engines. The input is a sequence of frames
//! `[to: u8][from: u8][sample: u8][flips: u8][offset: u16 LE, xor: u8] * flips`: each frame takes
//! one valid sample message of the codec, aims it at the running computation, flips the given
//! bytes of its encoding, and (if it still decodes) delivers it from node `from` to node `to` of
//! a small cluster in the middle of a computation. Starting from valid messages lets most
//! frames reach the engines' handlers. No input may make an engine panic, and a released result
//! must stay exact over its reported set.

use grove_protocol::codec;
use grove_protocol::harness::{Cluster, HarnessConfig, LaunchParams};
use libfuzzer_sys::fuzz_target;

const NODES: usize = 24;

fuzz_target!(|data: &[u8]| {
    let mut c = Cluster::new(HarnessConfig {
        plain_envelope: true,
        ..HarnessConfig::new(NODES, 1)
    });
    for i in 1..=12 {
        c.set_counted_contribution(i, &[i as f64, -(i as f64)]);
    }
    let id = c.launch(0, &LaunchParams::new(3, 2, 2, 2, 2));
    let samples = codec::sample_messages();
    let mut rest = data;
    let mut delay = 1_000u64;
    while rest.len() >= 4 {
        let (to, from) = (rest[0] as usize % NODES, rest[1] as usize % NODES);
        let mut message = samples[rest[2] as usize % samples.len()].clone();
        message.computation = id;
        let flips = (rest[3] % 8) as usize;
        rest = &rest[4..];
        let mut bytes = match codec::encode(&message) {
            Ok(b) => b,
            Err(_) => continue,
        };
        for _ in 0..flips {
            if rest.len() < 3 {
                break;
            }
            let at = u16::from_le_bytes([rest[0], rest[1]]) as usize % bytes.len();
            bytes[at] ^= rest[2];
            rest = &rest[3..];
        }
        if let Ok(m) = codec::decode(&bytes) {
            c.inject(from, to, &m, delay);
        }
        delay += 29_000;
    }
    c.run(c.now.plus(60_000_000));
    if let Err(e) = c.outcome(&id) {
        panic!("result check failed under hostile input: {e}");
    }
});
