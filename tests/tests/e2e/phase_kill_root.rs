//! SIGKILLs of root aggregators (level 2 of three) at the worst moments of each phase:
//! - collection: a root member dies right after persisting a child's partial sum, before it
//!   acknowledges it (the child fails over to a backup of that root position);
//! - agreement, leader: root position 1 dies right after persisting the root manifest it
//!   derived, before sending it;
//! - agreement, member: root position 3 dies right after adopting the manifest the leader
//!   sent it, before acknowledging it or reporting to the commissioner (the leader fails over
//!   to a backup; the commissioner releases from the root positions that report);
//! - heal: inner positions 2 and 3 die as they send their partial sums up, so the values
//!   the root needs must be healed; the first node to start a heal dies as it sends its first
//!   heal query. That node is not always a root member: in the runs so far, backups took the
//!   dead inner positions over (on the next message addressed to them) and healed from the
//!   leaves before the root's collection closed, so the root itself never started a heal and
//!   the victim was such a backup. The printed roles say which.
//!
//! Each phase is one computation on the same network (see `grove_e2e::phase`); each gets an
//! exact result over the contributor set it reports, and prints its completeness.

use grove_e2e::phase::{run_phases, Phase};
use grove_e2e::TriggerSpec;
use std::path::Path;

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_aggregators_killed_in_each_phase() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let outcomes = run_phases(
        Path::new(EXE),
        vec![
            Phase::new("collection", &[("persist", "ChildHeld", 2, None)]),
            Phase::new(
                "agreement-leader",
                &[("persist", "ManifestAdopted", 2, Some(1))],
            ),
            Phase::new(
                "agreement-member",
                &[("persist", "ManifestAdopted", 2, Some(3))],
            ),
            Phase {
                name: "heal",
                kills: vec![
                    TriggerSpec::new("send", "partial|partial-confirm", Some(2), Some(2)),
                    TriggerSpec::new("send", "partial|partial-confirm", Some(2), Some(3)),
                    TriggerSpec::new("send", "heal-query", None, None),
                ],
            },
        ],
    )
    .await?;
    assert_eq!(outcomes.len(), 4);
    Ok(())
}
