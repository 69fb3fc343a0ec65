//! Sharing throughput on 100,000-element vectors: `cargo bench -p grove-protocol --bench sharing`.
//! Divide the reported times by 100,000 for ns per element.

use divan::{black_box, Bencher};
use grove_protocol::field::{add_assign_vec, random_vec, Fp};
use grove_protocol::sharing::{reconstruct, share_vector, share_vector_compressed, SharingParams};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const LEN: usize = 100_000;
const PARAMS: [(u8, u8); 2] = [(5, 3), (7, 5)];

fn main() {
    divan::main();
}

fn secret() -> Vec<Fp> {
    random_vec(&mut ChaCha20Rng::from_seed([1; 32]), LEN)
}

fn params((g, t): (u8, u8)) -> SharingParams {
    SharingParams::new(g, t).unwrap()
}

#[divan::bench(args = PARAMS)]
fn share_full(b: Bencher, gt: (u8, u8)) {
    let s = secret();
    let p = params(gt);
    b.bench(|| share_vector(black_box(&s), p, black_box([7; 32])));
}

#[divan::bench(args = PARAMS)]
fn share_compressed(b: Bencher, gt: (u8, u8)) {
    let s = secret();
    let p = params(gt);
    b.bench(|| share_vector_compressed(black_box(&s), p, black_box([7; 32])));
}

#[divan::bench]
fn sum(b: Bencher) {
    let x = secret();
    let mut acc = random_vec(&mut ChaCha20Rng::from_seed([2; 32]), LEN);
    b.bench_local(|| add_assign_vec(black_box(&mut acc), black_box(&x)));
}

#[divan::bench(args = PARAMS)]
fn reconstruct_secret(b: Bencher, gt: (u8, u8)) {
    let s = secret();
    let p = params(gt);
    let shares = share_vector(&s, p, [7; 32]);
    let pairs: Vec<(u8, &[Fp])> = shares
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u8 + 1, v.as_slice()))
        .collect();
    b.bench(|| reconstruct(black_box(&pairs), gt.1).unwrap());
}

/// Expanding a seed-compressed share (ChaCha20 keystream to field elements).
#[divan::bench]
fn expand_seed(b: Bencher) {
    let share = grove_protocol::sharing::CompressedShare::Seed([3; 32]);
    b.bench(|| black_box(&share).expand(LEN));
}
