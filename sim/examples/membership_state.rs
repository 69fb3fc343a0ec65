//! Measures the membership state one node holds, as the growth of the process's resident
//! memory (allocator overhead included) while it builds it, for a checkpoint of N admitted
//! identities plus J certificates learnt since (gossiped, verified, stored as recent).
//!
//! ```sh
//! cargo run --release -p grove-sim --example membership_state -- 100000 1000000
//! ```
//!
//! The checkpoint's certificates carry 64 bytes of signature made from a hash, not a real
//! ed25519 signature: the checkpoint stores what it is given (a node checks a checkpoint's
//! certificates before it builds it) and the bytes held do not depend on the signature's value.
//! The J recent certificates are really issued and verified by the machine.

use ed25519_dalek::SigningKey;
use grove_protocol::ids::{hash_parts, Micros, NodeId};
use grove_protocol::membership::{
    AdmissionPolicy, Certificate, Checkpoint, IssuerKey, MemberMessage, Membership,
    MembershipConfig,
};
use std::sync::Arc;

const ISSUERS: u32 = 10;
const JOINS: u32 = 1_000;

/// Resident bytes of this process (Linux `/proc/self/statm`, 4 kB pages): what the
/// structures cost with the allocator's own overhead.
fn live() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .expect("statm's second field is the resident page count");
    pages * 4096
}

fn main() {
    let sizes: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("sizes are node counts"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100_000]
    } else {
        sizes
    };
    let issuers: Vec<SigningKey> = (0..ISSUERS)
        .map(|i| SigningKey::from_bytes(&hash_parts("issuer", &[&i.to_be_bytes()])))
        .collect();
    let keys: Vec<IssuerKey> = issuers
        .iter()
        .map(|k| IssuerKey(k.verifying_key().to_bytes()))
        .collect();
    println!("| identities | checkpoint B | B/identity | recent certs | recent B | B/recent | total MB |");
    println!("|---|---|---|---|---|---|---|");
    for n in sizes {
        let quota = n.div_ceil(ISSUERS) + JOINS;
        let policy = AdmissionPolicy::new(keys.iter().map(|k| (*k, quota)).collect(), 2)
            .expect("ten issuers");
        let node = |i: u32| NodeId::from_public_bytes(&i.to_be_bytes());
        let before = live();
        let checkpoint = Arc::new(Checkpoint::new(
            0,
            (0..n).map(|i| {
                let h = hash_parts("signature", &[&i.to_be_bytes()]);
                Certificate {
                    node: node(i),
                    issuer: keys[(i % ISSUERS) as usize],
                    serial: i / ISSUERS,
                    epoch: 0,
                    signature: [h, h].concat(),
                }
            }),
        ));
        let checkpoint_bytes = live().saturating_sub(before);
        let before = live();
        let mut m = Membership::new(
            node(0),
            policy,
            MembershipConfig::default(),
            checkpoint,
            [7; 32],
            Micros(10 * 120_000_000),
        );
        let joins: Vec<Certificate> = (0..JOINS)
            .map(|j| {
                let i = n + j;
                Certificate::issue(&issuers[(i % ISSUERS) as usize], node(i), i / ISSUERS, 9)
            })
            .collect();
        for chunk in joins.chunks(64) {
            m.handle_message(
                node(1),
                MemberMessage::Push {
                    entries: chunk.to_vec(),
                },
                Micros(10 * 120_000_000),
            )
            .expect("valid pushes");
            while m.poll_output().is_some() {}
        }
        drop(joins);
        // What is left once the pushed certificates are gone: the machine's own heap.
        let recent_bytes = live().saturating_sub(before);
        assert_eq!(m.len(), (n + JOINS) as usize, "every join admitted");
        println!(
            "| {n} | {checkpoint_bytes} | {:.1} | {JOINS} | {recent_bytes} | {:.1} | {:.1} |",
            checkpoint_bytes as f64 / n as f64,
            recent_bytes as f64 / f64::from(JOINS),
            (checkpoint_bytes + recent_bytes) as f64 / 1e6,
        );
    }
}
