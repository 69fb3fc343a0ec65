//! SIGKILLs of leaf aggregators (level 0 of three) at the worst moments of each phase:
//! - collection: a leaf member dies right after persisting a share it received, before it
//!   acknowledges it (the contributor fails over to a backup, which takes the position over);
//! - agreement, leader: position 1 (the leader of round 0) dies right after persisting the
//!   manifest it derived, before sending it (the members move to round 1 after
//!   `manifest_timeout`);
//! - agreement, member: position 3 dies right after adopting the manifest the leader sent it,
//!   before acknowledging it (the leader fails over to a backup, which takes the position
//!   over and asks the contributors for their shares again);
//! - heal: position 3 dies as it sends its partial sum up (nobody fails over: the parent's
//!   position 3 must heal it), and then a leaf member dies as the parent's heal query reaches
//!   it (the parent heals from the members that offer, or a backup that takes the position
//!   over; or it gives up and keeps the version its other positions hold).
//!
//! Each phase is one computation on the same network (see `grove_e2e::phase`); each gets an
//! exact result over the contributor set it reports, and prints its completeness.

use grove_e2e::phase::{run_phases, Phase};
use std::path::Path;

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaf_aggregators_killed_in_each_phase() -> anyhow::Result<()> {
    let outcomes = run_phases(
        Path::new(EXE),
        vec![
            Phase::new("collection", &[("persist", "ShareHeld", 0, None)]),
            Phase::new(
                "agreement-leader",
                &[("persist", "ManifestAdopted", 0, Some(1))],
            ),
            Phase::new(
                "agreement-member",
                &[("persist", "ManifestAdopted", 0, Some(3))],
            ),
            Phase::new(
                "heal",
                &[
                    ("send", "partial", 1, Some(3)),
                    ("recv", "heal-query", 0, None),
                ],
            ),
        ],
    )
    .await?;
    assert_eq!(outcomes.len(), 4);
    Ok(())
}
