//! The cluster's beacon mode: every engine verifies rounds of a local [`TestChain`], every
//! request names the next round, and the cluster publishes each named round to every live
//! engine at its time (as a relay would serve it).

use super::{Action, Cluster};
use crate::beacon::{Beacon, Randomness, Scheme, TestChain};
use crate::ids::Micros;
use crate::request::{BeaconRef, Request};
use std::sync::Arc;

/// The chain the cluster's engines trust: genesis at time zero, a round every second.
pub(super) struct HarnessBeacon {
    chain: TestChain,
    beacon: Arc<Beacon>,
}

impl Cluster {
    /// Turns the beacon on: every engine (also after a restart) verifies rounds of a test
    /// chain and refuses requests that name none; `launch` names the next round, which the
    /// cluster publishes at its time. Plans wait for it: give the share window a second more.
    pub fn use_beacon(&mut self) {
        let chain = TestChain::new(Scheme::BlsUnchainedG1Rfc9380, b"grove harness chain", 0, 1);
        // Invariant: the test chain's key is a valid point and its period is not zero.
        let beacon = Arc::new(Beacon::new(chain.info()).expect("the test chain's key parses"));
        for slot in &mut self.nodes {
            slot.engine = slot.engine.take().map(|e| e.with_beacon(beacon.clone()));
        }
        self.beacon = Some(HarnessBeacon { chain, beacon });
    }

    /// The round a request launched now names (and its publication, scheduled), if the
    /// beacon is on.
    pub(super) fn name_round(&mut self) -> Option<BeaconRef> {
        let b = self.beacon.as_ref()?;
        let round = b.beacon.first_round_after(self.now);
        let at = b.beacon.round_time(round);
        let named = BeaconRef {
            chain_hash: b.beacon.info().chain_hash,
            round,
        };
        self.schedule(at, Action::Beacon { round });
        Some(named)
    }

    /// Hands round `round` to every live engine.
    pub(super) fn publish_round(&mut self, round: u64) {
        let Some(b) = &self.beacon else {
            return;
        };
        let signed = b.chain.round(round);
        for n in 0..self.nodes.len() {
            if let Some(engine) = self.nodes[n].engine.as_mut() {
                // Invariant: the round is the chain's own, so it verifies.
                engine
                    .handle_beacon(self.now, signed.clone())
                    .expect("the harness chain's round verifies");
                self.drain(n);
            }
        }
    }

    /// A restarted engine trusts the chain again and gets the published rounds it waits for.
    pub(super) fn rejoin_beacon(&mut self, n: usize) {
        let Some(b) = &self.beacon else {
            return;
        };
        let beacon = b.beacon.clone();
        let Some(engine) = self.nodes[n].engine.take() else {
            return;
        };
        let mut engine = engine.with_beacon(beacon.clone());
        for round in engine.awaited_rounds() {
            if beacon.round_time(round) <= self.now {
                let signed = b.chain.round(round);
                // Invariant: the round is the chain's own, so it verifies.
                engine
                    .handle_beacon(self.now, signed)
                    .expect("the harness chain's round verifies");
            }
        }
        self.nodes[n].engine = Some(engine);
    }

    /// The randomness of the round `request` names (for the cluster's own view of its plan).
    pub(super) fn randomness_of(&self, request: &Request) -> Option<Randomness> {
        let b = self.beacon.as_ref()?;
        let round = request.beacon?.round;
        b.beacon.verify(round, &b.chain.round(round)).ok()
    }

    /// When round `round` is published (test helper: schedule around it).
    pub fn round_time(&self, round: u64) -> Option<Micros> {
        Some(self.beacon.as_ref()?.beacon.round_time(round))
    }
}
