//! A peer that opens many connections to a real daemon keeps at most
//! `MAX_CONNECTIONS_PER_PEER` of them: the daemon's inbound budget per connection
//! (`budget::MAX_INBOUND_BYTES_PER_CONNECTION`) bounds a peer's share of its memory only if the
//! number of its connections is bounded too.

use futures::StreamExt;
use grove_e2e::{ctl, start_network};
use grove_node::control::ControlRequest;
use grove_node::daemon::budget::MAX_CONNECTIONS_PER_PEER;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{dummy, SwarmEvent};
use libp2p::{Multiaddr, PeerId};
use std::path::Path;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
/// Connections the peer tries to open, each a separate dial of the same daemon.
const DIALS: u32 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_dialing_many_times_keeps_at_most_its_connection_quota() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let cluster = start_network(Path::new(EXE), 1).await?;
    let addr: Multiaddr = cluster.nodes[0].addr.clone().unwrap_or_default().parse()?;
    let status = ctl(&cluster, 0, ControlRequest::Status).await?;
    let victim: PeerId = status["peer_id"].as_str().unwrap_or_default().parse()?;

    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )?
        .with_behaviour(|_| dummy::Behaviour)?
        // Idle connections must outlive the test: only the daemon may close them.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    for _ in 0..DIALS {
        swarm.dial(
            DialOpts::peer_id(victim)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::Always)
                .build(),
        )?;
    }
    // Count the connections open at each moment, until every dial has settled and the
    // daemon had time to close what it refuses.
    let (mut open, mut most, mut established, mut ended) = (0i64, 0i64, 0u32, 0u32);
    let start = Instant::now();
    let mut settled_at: Option<Instant> = None;
    while start.elapsed() < Duration::from_secs(30) {
        if settled_at.is_some_and(|t| t.elapsed() > Duration::from_secs(3)) {
            break;
        }
        let Ok(event) =
            tokio::time::timeout(Duration::from_millis(200), swarm.select_next_some()).await
        else {
            continue;
        };
        match event {
            SwarmEvent::ConnectionEstablished { .. } => {
                open += 1;
                established += 1;
                most = most.max(open);
            }
            SwarmEvent::ConnectionClosed { .. } => {
                open -= 1;
                ended += 1;
            }
            SwarmEvent::OutgoingConnectionError { .. } => ended += 1,
            _ => {}
        }
        if settled_at.is_none() && established + ended >= DIALS {
            settled_at = Some(Instant::now());
        }
    }
    eprintln!(
        "peer_limits: {DIALS} dials, {established} established, {ended} refused or closed, \
         {open} open at the end, at most {most} at once"
    );
    anyhow::ensure!(open >= 1, "the peer could not connect at all");
    anyhow::ensure!(
        open <= i64::from(MAX_CONNECTIONS_PER_PEER),
        "the daemon keeps {open} connections of one peer (quota {MAX_CONNECTIONS_PER_PEER})"
    );
    Ok(())
}
