//! Prints what `[validity]` charges per contributor for the declared vector
//! (`models::declared_circuit`, no noise): the circuit's lengths, the encoded validity share
//! message of every position (`models::validity_share_message_bytes`), their total, and what
//! one verifier share adds to a member's batch (`models::verifier_entry_bytes`) with the
//! batch's header (`models::verifier_batch_header_bytes`). Sizes only, no timing: a debug
//! build gives the same figures.
//!
//! ```sh
//! cargo run -p grove-sim --example validity_sizes -- 131072 7 5
//! ```

use grove_protocol::sharing::SharingParams;
use grove_sim::models;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut next = |default: u32| -> Result<u32, String> {
        args.next()
            .map_or(Ok(default), |a| a.parse().map_err(|e| format!("{a}: {e}")))
    };
    let vector_len = next(131_072)?;
    let g = u8::try_from(next(7)?).map_err(|e| e.to_string())?;
    let t = u8::try_from(next(5)?).map_err(|e| e.to_string())?;
    let params = SharingParams { g, t };
    let typ = models::declared_circuit(vector_len, 1000.0, None)?;
    let l = typ.lengths();
    println!("query: {}", models::declared_query(vector_len, 1000.0));
    println!(
        "input {} (vector {}, witness {}), proof {}, chunk {}, verifier {}; tied {}",
        l.input,
        typ.vector_len(),
        typ.witness_len(),
        l.proof,
        typ.chunk_len(),
        l.verifier,
        typ.tied().len()
    );
    let mut total = 0;
    for p in 1..=g {
        let b = models::validity_share_message_bytes(&typ, params, p);
        total += b;
        println!("position {p}: {b} bytes");
    }
    println!("per contributor: {total} bytes");
    println!(
        "verifier share: {} bytes in a batch, whose header is {} bytes",
        models::verifier_entry_bytes(&typ),
        models::verifier_batch_header_bytes(&typ)
    );
    Ok(())
}
