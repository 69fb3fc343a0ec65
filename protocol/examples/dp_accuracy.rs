//! Accuracy of Grove's distributed discrete Gaussian against the central Gaussian mechanism
//! (a trusted curator adding the noise once), at epsilon 1 and delta 1e-9, for a count and a
//! sum over 1,000 and 100,000 contributors, tolerating 10% colluding noise sources
//! (`HONEST SOURCES` = 90% of the contributors).
//!
//! Like for like: both release the same query's vector under the same budget, split the same
//! way over its parts, with the same sensitivity bound (`CompiledQuery::privacy_parts`); the
//! central mechanism adds `N_Z(0, s^2)` once with `s = D / sqrt(2 rho_part)`, Grove's
//! contributors each add their calibrated share (`dp::noise`, the sampler the nodes run) and
//! the released noise is their sum. RMSE is measured over seeded trials for Grove and computed
//! exactly for the central mechanism (its deviation; a discrete Gaussian's is slightly below
//! its parameter, so the ratio is slightly conservative for Grove).
//!
//! The queries keep the default `SCALE 2`: each source's noise must be about one encoded
//! unit or more for the sum of discrete Gaussians to be as private as one (Kairouz, Liu,
//! Steinke's `tau`), and at `SCALE 0` a count over 1,000 contributors would need about four
//! times the central noise for that alone.
//!
//! Run: `cargo run --profile test -p grove-protocol --example dp_accuracy [TRIALS]`.

use grove_protocol::dp;
use grove_protocol::query::Query;

fn main() {
    let trials: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let rho = dp::rho_for(1.0, 1e-9).expect("valid budget");
    println!("epsilon 1, delta 1e-9 (zCDP rho {rho:.5}); 10% of noise sources colluding");
    println!(
        "{:<44} {:>7} {:>9} {:>5} {:>12} {:>12} {:>7}",
        "query (element)", "n", "L2 sens.", "parts", "central RMSE", "grove RMSE", "ratio"
    );
    for n in [1_000u64, 100_000] {
        let h = (n * 9 / 10) as u32;
        for (name, text) in [
            (
                "count(DISTINCT CONTRIBUTOR)",
                "SELECT count(DISTINCT CONTRIBUTOR) FROM t LIMIT PER CONTRIBUTOR 1",
            ),
            (
                "count(*) (with the row's hidden indicator)",
                "SELECT count(*) FROM t LIMIT PER CONTRIBUTOR 1",
            ),
            (
                "sum(x), x in [0, 100] (with the indicator)",
                "SELECT sum(x) FROM t CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1",
            ),
        ] {
            let q = Query::parse(&format!(
                "{text} WITH PRIVACY EPSILON 1 DELTA 1e-9 HONEST SOURCES {h}"
            ))
            .expect("parses")
            .compile()
            .expect("compiles");
            let parts = q.privacy_parts();
            let noise = q.spec().noise.clone().expect("noise");
            // Element 0: the selected aggregate.
            let part = parts.iter().find(|p| p.columns.contains(&0)).expect("part");
            let unit = 10f64.powi(i32::from(q.spec().scale_digits));
            let central = part.l2 / (2.0 * rho / parts.len() as f64).sqrt() / unit;
            // Trials cost n samples each (about half a microsecond per sample).
            let t = trials.max(5);
            let mut squares = 0.0;
            for trial in 0..t {
                let mut total: i64 = 0;
                for c in 0..n {
                    let mut seed = [0u8; 32];
                    seed[..8].copy_from_slice(&trial.to_le_bytes());
                    seed[8..16].copy_from_slice(&c.to_le_bytes());
                    total += dp::noise(&seed, &noise, 1)[0];
                }
                squares += (total as f64).powi(2);
            }
            let rmse = (squares / t as f64).sqrt() / unit;
            println!(
                "{:<44} {:>7} {:>9} {:>5} {:>12.3} {:>12.3} {:>7.3}   ({t} trials)",
                name,
                n,
                part.l2 / unit,
                parts.len(),
                central,
                rmse,
                rmse / central
            );
        }
    }
}
