//! Byzantine aggregators in the simulator (`[byzantine]` in a config).
//!
//! As in the harness (`grove_protocol::harness::Byzantine`), the engine of a lying node stays
//! honest and its lies are made on the wire: the simulator rewrites, drops or adds to what the
//! node's engine sends, before the message is encoded and charged. A defence in the engine can
//! thus never be switched off by the attack's own code path, and every lie costs its sender the
//! same CPU and uplink time as the honest message would.
//!
//! The attacks are the harness's, made by its own code (`Byzantine::rewrite` over the
//! simulator's node indices, `Byzantine::on_first_send`): votes sent ahead for every round, a
//! manifest of one, withholding, equivocation, root shares off the polynomial. Which nodes lie, and how, is drawn at launch from a stream
//! of its own (derived from the run's seed), so the other draws of a run, its latencies and
//! failures, are those of the same seed without Byzantine nodes: the two are like for like.

use crate::models::SimRng;
use grove_protocol::harness::Byzantine;
use grove_protocol::ids::hash_parts;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Which aggregators lie, and with which attacks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByzantineConfig {
    /// Fraction of the plan's aggregators (the nodes at a member position of any group, the
    /// commissioner excepted) that lie, rounded up; 0 makes none.
    pub fraction: f64,
    /// The attacks a liar draws from, by name: "pre-vote", "manifest-of-one", "withhold",
    /// "equivocate", "bad-root-share". Each liar takes each listed attack with probability 1/2,
    /// "withhold" with 1/8 (as the harness's Byzantine sweep draws them).
    pub attacks: Vec<String>,
}

/// The attack names [`ByzantineConfig::attacks`] takes.
pub const ATTACKS: [&str; 5] = [
    "pre-vote",
    "manifest-of-one",
    "withhold",
    "equivocate",
    "bad-root-share",
];

impl ByzantineConfig {
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.fraction) {
            return Err(format!(
                "byzantine.fraction must be in [0, 1], got {}",
                self.fraction
            ));
        }
        if let Some(a) = self.attacks.iter().find(|a| !ATTACKS.contains(&a.as_str())) {
            return Err(format!(
                "byzantine.attacks: unknown attack {a:?} (known: {ATTACKS:?})"
            ));
        }
        Ok(())
    }

    /// Draws the liars among `aggregators` (sorted, deduplicated node indices) and how each
    /// lies, from a stream of their own derived from `seed`.
    pub fn draw(&self, seed: u64, aggregators: &[u32]) -> Vec<(u32, Byzantine)> {
        let mut rng = SimRng::new(u64::from_le_bytes(
            hash_parts("grove-sim/byzantine", &[&seed.to_le_bytes()])[..8]
                .try_into()
                .unwrap_or([0; 8]),
        ));
        let n = ((aggregators.len() as f64 * self.fraction).ceil() as usize).min(aggregators.len());
        let mut liars = BTreeSet::new();
        while liars.len() < n {
            liars.insert(aggregators[(rng.next_u64() % aggregators.len() as u64) as usize]);
        }
        let on = |name: &str| self.attacks.iter().any(|a| a == name);
        liars
            .into_iter()
            .map(|liar| {
                let bits = rng.next_u64();
                let b = Byzantine {
                    pre_vote: on("pre-vote") && bits & 1 != 0,
                    manifest_of_one: on("manifest-of-one") && bits & 2 != 0,
                    withhold: on("withhold") && bits & 28 == 0,
                    equivocate: on("equivocate") && bits & 32 != 0,
                    bad_root_share: on("bad-root-share") && bits & 64 != 0,
                    propose_empty: false,
                    claim_held: false,
                    bad_vote_signature: false,
                };
                (liar, b)
            })
            .collect()
    }
}

/// The attacks of one liar, one letter each (v: pre-vote, 1: manifest of one, w: withhold,
/// e: equivocate, s: bad root share; `-`: none drawn).
pub fn short(b: &Byzantine) -> String {
    let mut s: String = [
        (b.pre_vote, 'v'),
        (b.manifest_of_one, '1'),
        (b.withhold, 'w'),
        (b.equivocate, 'e'),
        (b.bad_root_share, 's'),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, c)| *c)
    .collect();
    if s.is_empty() {
        s.push('-');
    }
    s
}
