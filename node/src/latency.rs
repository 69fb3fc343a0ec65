//! The daemon's estimate of its round-trip time to its peers, which `grove compute` gives the
//! planner (`owner::query::plan_compute`).
//!
//! Samples are the round trips of this node's directory pulls (`/grove/directory-sync/1`):
//! from the request's hand-over to the answer, so they include the peer's handling and the
//! answer's transfer (a few bytes once both directories agree, the whole directory on the
//! first pulls). Every node pulls twice at start and then every `directory_sync_secs`, so the
//! estimate exists a few seconds after the start and follows the peers it talks to. The
//! estimate is the smoothed mean of TCP's retransmission timer (RFC 6298: `srtt = 7/8 srtt +
//! 1/8 sample`), kept in two numbers.

use std::time::Duration;

/// A sample above this is dropped (a pull that waited behind a stalled peer or a 4 MB
/// directory says nothing of the link): `net::REQUEST_TIMEOUT`'s order.
pub const MAX_RTT_SAMPLE: Duration = Duration::from_secs(30);

/// The smoothed round-trip time and how many samples made it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttEstimate {
    srtt_us: Option<u64>,
    samples: u64,
}

impl RttEstimate {
    /// Adds one round trip.
    pub fn record(&mut self, rtt: Duration) {
        if rtt > MAX_RTT_SAMPLE {
            return;
        }
        let sample = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        self.srtt_us = Some(match self.srtt_us {
            None => sample,
            Some(s) => (s.saturating_mul(7).saturating_add(sample)) / 8,
        });
        self.samples = self.samples.saturating_add(1);
    }

    /// The smoothed round trip in microseconds, if any sample was taken.
    pub fn rtt_us(&self) -> Option<u64> {
        self.srtt_us
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// What `grove status` shows (`latency`), which `grove compute` reads.
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({ "rtt_us": self.srtt_us, "samples": self.samples })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_follows_the_samples_smoothly() {
        let mut e = RttEstimate::default();
        assert_eq!(e.rtt_us(), None);
        e.record(Duration::from_millis(80));
        assert_eq!(e.rtt_us(), Some(80_000));
        e.record(Duration::from_millis(0));
        assert_eq!(e.rtt_us(), Some(70_000));
        for _ in 0..100 {
            e.record(Duration::from_millis(20));
        }
        let rtt = e.rtt_us().unwrap_or_default();
        assert!((20_000..20_100).contains(&rtt), "{rtt}");
        // A stalled pull is no sample.
        e.record(Duration::from_secs(31));
        assert_eq!(e.samples(), 102);
        assert_eq!(e.status()["samples"], 102);
    }
}
