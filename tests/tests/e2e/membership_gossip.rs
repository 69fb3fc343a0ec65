//! The admission view's own gossip between real daemons (`grove_node::daemon::membership`),
//! in place of the directory topic's all-to-all announcements.
//!
//! - A late admitted node becomes known to every daemon, admitted and eligible, and is placed
//!   and counted by a computation, while no daemon publishes or receives a single announcement
//!   on the directory topic: its announcement went to its routing set and was forwarded, its
//!   view came from one bootstrap pull.
//! - A hostile libp2p peer sends membership messages to a daemon: an oversized one, a push of
//!   too many announcements, garbage; while not admitted, anti-entropy and a push of another
//!   node's announcement. Each is refused and counted; the daemon's directory and view are
//!   unchanged. Its own certified announcement is then admitted (how a node joins); admitted,
//!   its flood of anti-entropy is answered at most once per kind per interval, and a push of
//!   an announcement with a stranger's certificate, a forged one and a genuine one is refused
//!   up to the forged one (the genuine one is never checked) and silences it.
//! - `background_bytes_at_rest` (ignored; `GROVE_REST_NODES`, `GROVE_REST_SECS`,
//!   `GROVE_REST_ADMISSION=0` for the directory topic alone) prints what membership costs each
//!   daemon per second once the network is idle.

use ed25519_dalek::SigningKey;
use futures::StreamExt;
use grove_e2e::{ctl, grove_node, start_all, sum_params};
use grove_node::admission::{admit, configure_local, DEFAULT_EPOCH_SECS};
use grove_node::control::ControlRequest;
use grove_node::daemon::directory::{self, node_id_of, Announcement};
use grove_node::daemon::membership::{encode_gossip, GossipWire, GOSSIP_MAGIC, GOSSIP_VERSION};
use grove_node::daemon::net::{self, BehaviourEvent, Frame};
use grove_node::procs::Cluster;
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");

fn issuer() -> SigningKey {
    SigningKey::from_bytes(&[0x6d; 32])
}

/// Adds `n` nodes admitted by [`issuer`] (serials `first..first + n`, quota `quota`).
fn add_admitted(cluster: &mut Cluster, n: usize, quota: u32) -> anyhow::Result<()> {
    for _ in 0..n {
        let i = cluster.add_node()?;
        configure_local(cluster.dir(i), &issuer(), quota, Some(i as u32))?;
    }
    Ok(())
}

async fn status(cluster: &Cluster, i: usize) -> anyhow::Result<Value> {
    ctl(cluster, i, ControlRequest::Status).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_node_is_known_and_eligible_by_gossip_alone() -> anyhow::Result<()> {
    const ON_TIME: usize = 6;
    let _serial = grove_e2e::serial().await;
    let mut cluster = Cluster::new(Path::new(EXE))?;
    add_admitted(&mut cluster, ON_TIME, (ON_TIME + 1) as u32)?;
    start_all(&mut cluster).await?;
    let mut values: Vec<Option<u64>> = (0..ON_TIME).map(|i| Some(1 << i)).collect();
    grove_e2e::import_and_trust(&cluster, &values).await?;

    add_admitted(&mut cluster, 1, (ON_TIME + 1) as u32)?;
    let late = ON_TIME;
    let boot = grove_e2e::boot_addr(&cluster)?;
    cluster.start(late, &[boot])?;
    cluster.wait_ready(late, Duration::from_secs(20)).await?;
    let until = Instant::now() + Duration::from_secs(30);
    grove_e2e::wait_eligible(&cluster, (ON_TIME + 1) as u64, until).await?;
    values.push(Some(1 << late));
    let mut late_only = vec![None; ON_TIME];
    late_only.push(Some(1 << late));
    grove_e2e::import_and_trust(&cluster, &late_only).await?;
    let late_peer = cluster.nodes[late]
        .peer_id
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the late node has no peer id"))?;

    // Nothing travelled on the directory topic: the late node is known by gossip alone.
    for i in 0..=late {
        let t = &status(&cluster, i).await?["membership_traffic"];
        eprintln!("node {i}: {t}");
        assert_eq!(t["topic_published"], 0, "node {i}: {t}");
        assert_eq!(t["topic_received"], 0, "node {i}: {t}");
        if i == late {
            // It pushed its announcement; it learnt the others from its bootstrap pull.
            assert!(t["gossip_sent"].as_u64() > Some(0), "node {i}: {t}");
        } else {
            assert!(t["gossip_received"].as_u64() > Some(0), "node {i}: {t}");
        }
    }
    let t = &status(&cluster, late).await?["membership_traffic"];
    assert!(
        t["pulls_sent"].as_u64() <= Some(3),
        "the late node pulled its bootstrap set about twice, no more: {t}"
    );

    // Eligible and selected: one group of every node, all of them placed and counted.
    let mut params = sum_params("c", "x", (ON_TIME + 1) as u8, 2);
    params.leaf_groups = Some(1);
    params.lifetime_secs = 30;
    let (plan, result, set) = grove_e2e::launch_exact(&cluster, params, late + 1).await?;
    assert_eq!(
        plan["directory_peers"].as_u64(),
        Some((ON_TIME + 1) as u64),
        "{plan}"
    );
    assert!(grove_e2e::placed(&plan).contains(&late_peer), "{plan}");
    assert_eq!(set, (1 << (late + 1)) - 1, "{result}");
    // Every node's directory equalled the commissioner's snapshot: none fetched it.
    for i in 0..=late {
        let s = status(&cluster, i).await?;
        eprintln!(
            "node {i}: snapshots fetched {}",
            s["network"]["snapshots_fetched"]
        );
    }
    Ok(())
}

/// A libp2p peer of `key` that speaks the message protocol, connected to `addr`.
async fn hostile_peer(
    key: libp2p::identity::Keypair,
    addr: &str,
) -> anyhow::Result<(libp2p::Swarm<net::Behaviour>, PeerId)> {
    let mut swarm = net::build_swarm(key).map_err(|e| anyhow::anyhow!(e))?;
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    let addr: Multiaddr = addr.parse()?;
    swarm.dial(addr)?;
    let start = Instant::now();
    loop {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(20), "no connection");
        if let Ok(SwarmEvent::ConnectionEstablished { peer_id, .. }) =
            tokio::time::timeout(Duration::from_secs(1), swarm.select_next_some()).await
        {
            return Ok((swarm, peer_id));
        }
    }
}

/// Sends `bytes` on the message protocol and waits for the daemon's acknowledgement (it
/// acknowledges once the message is handled, refused or not). The daemon's own messages to
/// this peer meanwhile are acknowledged.
async fn send(
    swarm: &mut libp2p::Swarm<net::Behaviour>,
    to: PeerId,
    bytes: Vec<u8>,
) -> anyhow::Result<()> {
    let id = swarm
        .behaviour_mut()
        .messages
        .send_request(&to, Frame::outbound(bytes));
    let start = Instant::now();
    loop {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(20), "no answer");
        let event = tokio::time::timeout(Duration::from_secs(1), swarm.select_next_some()).await;
        match event {
            Ok(SwarmEvent::Behaviour(BehaviourEvent::Messages(
                request_response::Event::Message {
                    message: request_response::Message::Response { request_id, .. },
                    ..
                },
            ))) if request_id == id => return Ok(()),
            Ok(SwarmEvent::Behaviour(BehaviourEvent::Messages(
                request_response::Event::OutboundFailure {
                    request_id, error, ..
                },
            ))) if request_id == id => anyhow::bail!("send failed: {error}"),
            Ok(SwarmEvent::Behaviour(BehaviourEvent::Messages(
                request_response::Event::Message {
                    message: request_response::Message::Request { channel, .. },
                    ..
                },
            ))) => {
                let _ = swarm.behaviour_mut().messages.send_response(channel, ());
            }
            _ => {}
        }
    }
}

/// A signed announcement of `key` with `cert` (its peer id returned).
fn announcement_of(
    key: &libp2p::identity::Keypair,
    cert_for: impl FnOnce(
        grove_protocol::ids::NodeId,
    ) -> Option<grove_protocol::membership::Certificate>,
) -> anyhow::Result<(Vec<u8>, PeerId)> {
    let peer = key.public().to_peer_id();
    let a = Announcement {
        peer: peer.to_bytes(),
        x25519_public: [9; 32],
        addrs: vec!["/ip4/127.0.0.1/tcp/9".into()],
        issued_at_micros: 1,
        certificate: cert_for(node_id_of(&peer)),
    };
    Ok((directory::sign_announcement(key, &a)?, peer))
}

/// A signed announcement of a fresh key (its peer id and node id returned), with `cert`.
fn announcement(
    cert_for: impl FnOnce(
        grove_protocol::ids::NodeId,
    ) -> Option<grove_protocol::membership::Certificate>,
) -> anyhow::Result<(Vec<u8>, PeerId)> {
    announcement_of(&libp2p::identity::Keypair::generate_ed25519(), cert_for)
}

fn push(announcements: Vec<Vec<u8>>) -> anyhow::Result<Vec<u8>> {
    encode_gossip(&GossipWire::Push(announcements)).ok_or_else(|| anyhow::anyhow!("too large"))
}

fn wire(w: &GossipWire) -> anyhow::Result<Vec<u8>> {
    encode_gossip(w).ok_or_else(|| anyhow::anyhow!("too large"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_membership_messages_are_refused() -> anyhow::Result<()> {
    const NODES: usize = 3;
    const QUOTA: u32 = 8;
    const FLOOD: u64 = 50;
    let _serial = grove_e2e::serial().await;
    let mut cluster = Cluster::new(Path::new(EXE))?;
    add_admitted(&mut cluster, NODES, QUOTA)?;
    start_all(&mut cluster).await?;
    let until = Instant::now() + Duration::from_secs(30);
    grove_e2e::wait_eligible(&cluster, NODES as u64, until).await?;
    let hostile_key = libp2p::identity::Keypair::generate_ed25519();
    let (mut hostile, victim) =
        hostile_peer(hostile_key.clone(), &grove_e2e::boot_addr(&cluster)?).await?;
    let before = status(&cluster, 0).await?;
    let count = |s: &Value, what: &str| s["membership_traffic"][what].as_u64().unwrap_or(0);
    let rejected = |s: &Value, why: &str| s["inbound_rejected"][why].as_u64().unwrap_or(0);
    let delta = |after: &Value, what: &str| count(after, what) - count(&before, what);
    let epoch =
        grove_node::admission::epoch_at(grove_node::clock::now_micros(), DEFAULT_EPOCH_SECS);
    let from_epoch = epoch.saturating_sub(4);

    // Whole messages refused: oversized, too many announcements, malformed.
    let mut oversized = GOSSIP_MAGIC.to_vec();
    oversized.push(GOSSIP_VERSION);
    oversized.resize(grove_node::daemon::membership::MAX_GOSSIP_BYTES + 1, 0);
    send(&mut hostile, victim, oversized).await?;
    // Encoding checks only the size; the daemon checks the count.
    let many = push(vec![
        vec![0; 8];
        grove_node::daemon::membership::MAX_GOSSIP_ANNOUNCEMENTS
            + 1
    ])?;
    send(&mut hostile, victim, many).await?;
    let mut garbage = GOSSIP_MAGIC.to_vec();
    garbage.extend([GOSSIP_VERSION, 0xff, 0xff, 0xff]);
    send(&mut hostile, victim, garbage).await?;
    // From a peer the view does not admit: no anti-entropy (a summary would be answered with
    // bucket digests, a pull with every certificate of the window), and no push but its own
    // announcement (here, another node's genuine one).
    let summary = GossipWire::Summary {
        from_epoch,
        count: 0,
        digest: 1,
    };
    send(&mut hostile, victim, wire(&summary)?).await?;
    let pull = GossipWire::Pull {
        from_epoch,
        buckets: (0..grove_protocol::limits::MEMBERSHIP_BUCKETS as u16).collect(),
    };
    send(&mut hostile, victim, wire(&pull)?).await?;
    let (someone_elses, _) =
        announcement(|node| Some(admit(&issuer(), node, QUOTA - 2, DEFAULT_EPOCH_SECS)))?;
    send(&mut hostile, victim, push(vec![someone_elses.clone()])?).await?;
    let after = status(&cluster, 0).await?;
    eprintln!(
        "before {}\nafter {}",
        before["membership_traffic"], after["membership_traffic"]
    );
    assert_eq!(delta(&after, "gossip_refused"), 6, "{after}");
    assert_eq!(
        rejected(&after, "GossipUnadmitted") - rejected(&before, "GossipUnadmitted"),
        3,
        "{after}"
    );
    assert_eq!(after["directory_peers"], NODES, "{after}");
    assert_eq!(after["admission"]["known_admitted"], NODES, "{after}");

    // Its own announcement, certified: admitted (how a new node joins).
    let (own, _) = announcement_of(&hostile_key, |node| {
        Some(admit(&issuer(), node, QUOTA - 1, DEFAULT_EPOCH_SECS))
    })?;
    send(&mut hostile, victim, push(vec![own])?).await?;
    let after = status(&cluster, 0).await?;
    assert_eq!(after["directory_peers"], NODES + 1, "{after}");
    assert_eq!(after["admission"]["known_admitted"], NODES + 1, "{after}");

    // Admitted, it floods anti-entropy: each kind is answered at most once per interval
    // (half the 10 s anti-entropy period).
    let flood_before = status(&cluster, 0).await?;
    let start = Instant::now();
    for _ in 0..FLOOD {
        send(&mut hostile, victim, wire(&summary)?).await?;
        send(&mut hostile, victim, wire(&pull)?).await?;
    }
    let intervals = start.elapsed().as_secs() / 5 + 2;
    let after = status(&cluster, 0).await?;
    let refused = rejected(&after, "GossipRate") - rejected(&flood_before, "GossipRate");
    eprintln!(
        "flood of {} in {:?}: {refused} refused",
        2 * FLOOD,
        start.elapsed()
    );
    assert!(
        refused >= 2 * FLOOD - 2 * intervals.min(FLOOD),
        "at most one answer of each kind per interval: {after}"
    );

    // Announcements refused one by one: certified by a stranger (the view refuses it; honest
    // views can differ, so no fault), then a forged one, which no honest peer sends:
    // verification stops there (the genuine one after it is never checked).
    let stranger = SigningKey::from_bytes(&[0x77; 32]);
    let (strangers, _) = announcement(|node| Some(admit(&stranger, node, 0, DEFAULT_EPOCH_SECS)))?;
    let mut forged = someone_elses;
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let (genuine, _) =
        announcement(|node| Some(admit(&issuer(), node, QUOTA - 3, DEFAULT_EPOCH_SECS)))?;
    let before = status(&cluster, 0).await?;
    let bad_at = Instant::now();
    send(
        &mut hostile,
        victim,
        push(vec![strangers, forged, genuine.clone()])?,
    )
    .await?;
    let after = status(&cluster, 0).await?;
    assert_eq!(
        count(&after, "announcements_refused") - count(&before, "announcements_refused"),
        2,
        "{after}"
    );
    assert_eq!(
        count(&after, "gossip_misbehaving") - count(&before, "gossip_misbehaving"),
        1,
        "{after}"
    );
    assert!(
        after["admission"]["certificates_refused"].as_u64()
            > before["admission"]["certificates_refused"].as_u64(),
        "{after}"
    );
    assert_eq!(after["directory_peers"], NODES + 1, "{after}");
    // Its next push within the window is refused unread.
    send(&mut hostile, victim, push(vec![genuine])?).await?;
    let after = status(&cluster, 0).await?;
    if bad_at.elapsed() < grove_node::daemon::membership::GOSSIP_WINDOW {
        assert_eq!(
            rejected(&after, "GossipMisbehaving") - rejected(&before, "GossipMisbehaving"),
            2,
            "{after}"
        );
        assert_eq!(after["directory_peers"], NODES + 1, "{after}");
    }
    Ok(())
}

/// Bytes of membership traffic (gossip, directory topic, pulls), sent and received.
fn bytes(s: &Value) -> (u64, u64) {
    let t = &s["membership_traffic"];
    let get = |k: &str| t[k].as_u64().unwrap_or(0);
    (
        get("gossip_bytes_sent") + get("topic_bytes_published") + get("pull_bytes_sent"),
        get("gossip_bytes_received") + get("topic_bytes_received") + get("pull_bytes_received"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: GROVE_REST_NODES daemons idle for GROVE_REST_SECS"]
async fn background_bytes_at_rest() -> anyhow::Result<()> {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let n = env("GROVE_REST_NODES", 20) as usize;
    let secs = env("GROVE_REST_SECS", 120);
    let admission = env("GROVE_REST_ADMISSION", 1) == 1;
    let _serial = grove_e2e::serial().await;
    let mut cluster = Cluster::new(Path::new(EXE))?;
    if admission {
        add_admitted(&mut cluster, n, n as u32)?;
    } else {
        for _ in 0..n {
            cluster.add_node()?;
        }
    }
    // `start_all`, with more time to converge (60 daemons on a loaded machine).
    cluster.start(0, &[])?;
    cluster.wait_ready(0, Duration::from_secs(60)).await?;
    let boot = grove_e2e::boot_addr(&cluster)?;
    for i in 1..n {
        cluster.start(i, std::slice::from_ref(&boot))?;
    }
    for i in 1..n {
        cluster.wait_ready(i, Duration::from_secs(60)).await?;
    }
    cluster.wait_directory(n, Duration::from_secs(180)).await?;
    if admission {
        let until = Instant::now() + Duration::from_secs(120);
        grove_e2e::wait_eligible(&cluster, n as u64, until).await?;
    }
    // Past the start-up pulls and pushes.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let mut first = Vec::new();
    for i in 0..n {
        first.push(bytes(&status(&cluster, i).await?));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let mut sent = 0u64;
    let mut received = 0u64;
    let mut fetched = 0u64;
    for (i, (s0, r0)) in first.iter().enumerate() {
        let s = status(&cluster, i).await?;
        let (s1, r1) = bytes(&s);
        sent += s1 - s0;
        received += r1 - r0;
        fetched += s["network"]["snapshots_fetched"].as_u64().unwrap_or(0);
        if i == 0 {
            eprintln!("node 0: {}", s["membership_traffic"]);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let per = |b: u64| b as f64 / n as f64 / elapsed;
    println!(
        "membership at rest: {n} daemons, admission {admission}, {elapsed:.0} s: {:.2} B/s sent, {:.2} B/s received per node; snapshots fetched {fetched}",
        per(sent),
        per(received)
    );
    Ok(())
}
