//! A late node becomes eligible, across real processes. Admission is on with an identity age
//! (`min_age_epochs = 2` of 5-second epochs, small for the test): five daemons hold
//! certificates issued long enough ago, and a sixth starts later with a certificate of the
//! current epoch.
//!
//! 1. Before its age, every daemon admits the late node (its certificate travelled in its
//!    announcement) but none counts it eligible: a computation launched then freezes the five
//!    others into its candidate set, and the released sum leaves the late node's value out.
//! 2. Once its age is reached, with no restart and nothing re-sent by the test, a computation
//!    with `g = 6` over one leaf group lists it among the six candidates and places it (every
//!    candidate holds a position), it contributes, and the sum is exact over all six.
//!
//! Node `i` holds the value `2^i`, so a released sum names exactly which contributors it
//! covers.

use grove_e2e::{ctl, grove_node, start_all, sum_params};
use grove_node::admission::{append_admission, encode_certificate, node_id_in, AdmissionConfig};
use grove_node::control::ControlRequest;
use grove_node::procs::Cluster;
use grove_protocol::membership::{Certificate, DEFAULT_MIN_KNOWN_PPM};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
/// Daemons admitted long ago; one more joins later.
const ON_TIME: usize = 5;
const EPOCH_SECS: u64 = 5;
const MIN_AGE_EPOCHS: u64 = 2;
/// The late node's age is reached at least this long after it is configured: time to start
/// it, spread its certificate and run the first computation before it is eligible.
const YOUNG_FOR: Duration = Duration::from_secs(12);

fn issuer() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[0x51; 32])
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Writes `[admission]` (one issuer, the test's age rule) to node `i`'s config, with a
/// certificate of serial `i` issued in `epoch`.
fn admit(cluster: &Cluster, i: usize, epoch: u64) -> anyhow::Result<()> {
    let issuer = issuer();
    let cert = Certificate::issue(&issuer, node_id_in(cluster.dir(i))?, i as u32, epoch);
    append_admission(
        cluster.dir(i),
        &AdmissionConfig {
            issuers: vec![grove_node::admission::IssuerConfig {
                key: grove_protocol::ids::hex(&issuer.verifying_key().to_bytes()),
                quota: (ON_TIME + 1) as u32,
            }],
            min_age_epochs: MIN_AGE_EPOCHS,
            epoch_secs: EPOCH_SECS,
            min_known_ppm: DEFAULT_MIN_KNOWN_PPM,
            certificate: Some(encode_certificate(&cert)),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_node_becomes_eligible_at_its_age_and_is_then_selected() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let mut cluster = Cluster::new(Path::new(EXE))?;
    let epoch_now = || unix_now().as_secs() / EPOCH_SECS;
    for i in 0..ON_TIME {
        cluster.add_node()?;
        admit(&cluster, i, epoch_now() - MIN_AGE_EPOCHS - 1)?;
    }
    start_all(&mut cluster).await?;
    let mut values: Vec<Option<u64>> = (0..ON_TIME).map(|i| Some(1 << i)).collect();
    grove_e2e::import_and_trust(&cluster, &values).await?;

    // The late node's certificate: of the current epoch, or of the next one (within the
    // issuer's one epoch of allowed skew) if that leaves too little time before its age.
    let late = cluster.add_node()?;
    let now = unix_now();
    let mut issued = now.as_secs() / EPOCH_SECS;
    let eligible_at = |issued: u64| Duration::from_secs((issued + MIN_AGE_EPOCHS) * EPOCH_SECS);
    if eligible_at(issued) < now + YOUNG_FOR {
        issued += 1;
    }
    let eligible_at = eligible_at(issued);
    admit(&cluster, late, issued)?;
    let boot = grove_e2e::boot_addr(&cluster)?;
    cluster.start(late, &[boot])?;
    cluster.wait_ready(late, Duration::from_secs(20)).await?;
    values.push(Some(1 << late));
    let mut late_only = vec![None; ON_TIME];
    late_only.push(Some(1 << late));
    grove_e2e::import_and_trust(&cluster, &late_only).await?;
    let late_peer = cluster.nodes[late]
        .peer_id
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the late node has no peer id"))?;

    // 1. Admitted by everyone, eligible to no one yet.
    let until = Instant::now() + Duration::from_secs(20);
    let admission = |s: &Value| {
        let a = &s["admission"];
        (a["known_admitted"].as_u64(), a["known_eligible"].as_u64())
    };
    let (admitted, eligible) = (Some((ON_TIME + 1) as u64), Some(ON_TIME as u64));
    grove_e2e::wait_status(
        &cluster,
        0..late + 1,
        until,
        (admitted, eligible),
        admission,
    )
    .await?;
    anyhow::ensure!(
        unix_now() + Duration::from_secs(1) < eligible_at,
        "the late node reached its age before the first computation could start"
    );
    let mut params = sum_params("c", "x", 5, 2);
    params.leaf_groups = Some(1);
    params.lifetime_secs = 30;
    eprintln!("before its age:");
    let (plan, result, set) = grove_e2e::launch_exact(&cluster, params, late + 1).await?;
    assert_eq!(
        plan["directory_peers"].as_u64(),
        Some(ON_TIME as u64),
        "{plan}"
    );
    assert!(!grove_e2e::placed(&plan).contains(&late_peer), "{plan}");
    assert_eq!(set, (1 << ON_TIME) - 1, "{result}");

    // 2. Past its age: eligible everywhere, a candidate, placed, and counted.
    let wait = eligible_at.saturating_sub(unix_now());
    eprintln!("waiting {wait:?} for the late node's age");
    tokio::time::sleep(wait + Duration::from_millis(200)).await;
    let until = Instant::now() + Duration::from_secs(10);
    grove_e2e::wait_eligible(&cluster, (ON_TIME + 1) as u64, until).await?;
    let mut params = sum_params("c", "x", 6, 2);
    params.leaf_groups = Some(1);
    params.lifetime_secs = 30;
    eprintln!("after its age:");
    let (plan, result, set) = grove_e2e::launch_exact(&cluster, params, late + 1).await?;
    assert_eq!(
        plan["directory_peers"].as_u64(),
        Some((ON_TIME + 1) as u64),
        "{plan}"
    );
    assert!(grove_e2e::placed(&plan).contains(&late_peer), "{plan}");
    assert_eq!(set, (1 << (late + 1)) - 1, "{result}");
    let audit = ctl(&cluster, late, ControlRequest::Audit).await?;
    assert!(
        audit["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["kind"] == "contributed"),
        "{audit}"
    );
    Ok(())
}
