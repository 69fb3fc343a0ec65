//! A late ack is not a dead receiver (`Engine::handle_late_ack`). A loaded receiver that
//! handles a message after its sender's deadline makes the sender fail the position over to
//! its next candidate; when the ack comes after all, the sender's later messages for that
//! position go back to the member, which is alive and holds everything else of its leaf.
//! Before, one late ack moved the position for good: at 200 daemons on 2 cores a leaf member
//! whose verifier share to another member was acknowledged 2.3 s late sent every later
//! verifier share to that member's backup, and the member, lacking them, could not decide
//! those contributions before its share window ended (ARCHITECTURE.md, "200 nodes").

mod common;

use common::{compiled, scalar_record};
use grove_protocol::engine::Event;
use grove_protocol::harness::{Cluster, HarnessConfig, LaunchParams};
use grove_protocol::ids::GroupId;

const COMMISSIONER: usize = 0;
const NODES: usize = 30;
const CONTRIBUTORS: usize = 24;
const SCALAR: &str = "SELECT sum(x) FROM t CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1 SCALE 0";

/// A member of a leaf acknowledges late everything another member sends it (the sender's own
/// share first, then its verifier shares and its report). The sender fails the position over
/// to the member's backup each time; with the late ack its later messages still reach the
/// member, which therefore decides every contribution and holds every item of the manifest
/// its leaf adopts. With the failover kept for good, the member got none of the sender's
/// verifier shares, could decide none of the contributions it holds, and adopted a manifest
/// it could not sum (it then asks the contributors again).
#[test]
fn after_a_late_ack_the_member_still_gets_what_its_leaf_sends_it() {
    let q = compiled(SCALAR);
    let mut cfg = HarnessConfig::new(NODES, 15);
    // Contributions arrive over 300 ms, so the members' verifier shares leave in several
    // batches (100 ms apart here), after the failover (10 ms after the first send).
    cfg.latency_max = 300_000;
    cfg.unreachable_delay = 10_000;
    let mut c = Cluster::new(cfg);
    for i in 1..=CONTRIBUTORS {
        c.set_contribution(i, q.evaluate(&[scalar_record(i)]));
    }
    let mut p = LaunchParams::new(5, 3, 2, 2, 1);
    p.spec = q.spec().clone();
    // Every contribution arrives within the window at these latencies.
    p.timeouts.share_window = 2_000_000;
    let id = c.launch_query(COMMISSIONER, &p, SCALAR);
    let plan = c.plan(&id).expect("the commissioner plans at launch");
    let leaf = GroupId { level: 0, index: 0 };
    let (late, sender) = (plan.member(leaf, 1), plan.member(leaf, 3));
    let (late, sender) = (c.index_of(&late).unwrap(), c.index_of(&sender).unwrap());
    assert_ne!(late, sender);
    c.ack_late(sender, late);
    let o = c.run_checked(&id);
    assert!(o.released.is_some(), "nothing released: {:?}", o.failures);
    assert_eq!(o.included.len(), CONTRIBUTORS);
    let complete = c
        .events
        .iter()
        .find_map(|(_, n, e)| match e {
            Event::ManifestAdopted {
                computation,
                group,
                position: 1,
                complete,
                ..
            } if *n == late && *computation == id && *group == leaf => Some(*complete),
            _ => None,
        })
        .expect("the member acknowledging late adopts its leaf's manifest");
    assert!(
        complete,
        "the member adopted its leaf's manifest without the items it names"
    );
}
