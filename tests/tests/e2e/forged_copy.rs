//! A forged gossip copy of a pending request changes nothing. A hostile peer, holding the key
//! of a commissioner U that no node trusts, publishes U's signed request R naming a directory
//! snapshot the nodes lack (so they park R and fetch the snapshot, which the hostile peer
//! serves from its DHT store), and right behind it a copy F of R with the same id and the
//! name of commissioner T, whom every node trusts, under R's signature (which does not verify
//! for F). The engine refuses F; once the snapshot is in, it accepts R, and consent reads the
//! request the engine accepted: U's, untrusted. No node contributes.
//!
//! (Consent used to read the daemon's own copy of the last request seen with that id, stored
//! before any signature check: F's, naming T. Then every node contributed to U's request.)
//!
//! The snapshot holds the daemons' own signed announcements, which the hostile peer pulls from
//! them (`/grove/directory-sync/1`), and one made-up peer, so that it is a snapshot no daemon
//! holds: a candidate set that omitted the daemons would be refused at intake (this node not
//! among the candidates) before consent is ever asked, and the test would check nothing.

use ed25519_dalek::SigningKey;
use futures::StreamExt;
use grove_e2e::{ctl, grove_node, start_network, sum_params};
use grove_node::control::ControlRequest;
use grove_node::daemon::directory::{self, Announcement, Directory};
use grove_node::daemon::net::{self, BehaviourEvent};
use grove_node::owner::query;
use grove_protocol::codec;
use grove_protocol::ids::{hex, ComputationId, NodeId};
use grove_protocol::message::{Body, Message};
use grove_protocol::request::{CommissionerKey, SignedRequest};
use grove_protocol::seal;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::kad::{store::RecordStore, Record, RecordKey};
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use libp2p::Multiaddr;
use serde_json::json;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
const NODES: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_copy_naming_a_trusted_commissioner_makes_no_node_contribute() -> anyhow::Result<()>
{
    let _serial = grove_e2e::serial().await;
    let cluster = start_network(Path::new(EXE), NODES).await?;
    let trusted = SigningKey::from_bytes(&[9u8; 32]);
    let untrusted = SigningKey::from_bytes(&[7u8; 32]);
    for i in 0..NODES {
        grove_e2e::import(&cluster, i, "c", json!({"x": 5})).await?;
        grove_e2e::trust(&cluster, i, &hex(&trusted.verifying_key().to_bytes()), &[]).await?;
    }

    // The hostile peer: a real libp2p node speaking Grove's gossip and serving the snapshot
    // from its DHT store.
    let mut swarm = net::build_swarm(libp2p::identity::Keypair::generate_ed25519())
        .map_err(|e| anyhow::anyhow!(e))?;
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    let topic = IdentTopic::new(net::TOPIC_BROADCAST);
    swarm.behaviour_mut().gossipsub.subscribe(&topic)?;
    for i in 0..NODES {
        let addr: Multiaddr = cluster.nodes[i].addr.clone().unwrap_or_default().parse()?;
        swarm.dial(addr)?;
    }
    let mut subscribed = BTreeSet::new();
    let start = Instant::now();
    while subscribed.len() < NODES {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(30), "no gossip link");
        let event = tokio::time::timeout(Duration::from_secs(1), swarm.select_next_some()).await;
        if let Ok(SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(
            gossipsub::Event::Subscribed { peer_id, topic: t },
        ))) = event
        {
            if t == topic.hash() {
                subscribed.insert(peer_id);
            }
        }
    }
    // Let identify put this peer in the nodes' DHT routing tables.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(2) {
        let _ = tokio::time::timeout(Duration::from_millis(100), swarm.select_next_some()).await;
    }
    // The snapshot the request names: the daemons' own announcements, pulled from each of
    // them, and one made-up peer.
    let mut fake = Directory::default();
    for peer in &subscribed {
        swarm.behaviour_mut().sync.send_request(peer, [0u8; 32]);
    }
    let mut answered = 0;
    let start = Instant::now();
    while answered < NODES {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "no directory pulled"
        );
        let event = tokio::time::timeout(Duration::from_secs(1), swarm.select_next_some()).await;
        if let Ok(SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
            message: request_response::Message::Response { response, .. },
            ..
        }))) = event
        {
            answered += 1;
            for bytes in directory::decode_sync(&response)? {
                fake.insert_signed(directory::verify_announcement(&bytes)?, bytes);
            }
        }
    }
    for i in 0..NODES {
        let peer: libp2p::PeerId = cluster.nodes[i]
            .peer_id
            .clone()
            .unwrap_or_default()
            .parse()?;
        anyhow::ensure!(
            fake.get(&directory::node_id_of(&peer)).is_some(),
            "daemon {i}'s announcement was not pulled"
        );
    }
    let key = libp2p::identity::Keypair::generate_ed25519();
    let made_up = Announcement {
        peer: key.public().to_peer_id().to_bytes(),
        x25519_public: seal::x25519_public(&[40; 32]),
        addrs: vec![],
        issued_at_micros: 1,
        certificate: None,
    };
    let bytes = directory::sign_announcement(&key, &made_up)?;
    fake.insert_signed(directory::verify_announcement(&bytes)?, bytes);
    let snapshot = fake.freeze();
    anyhow::ensure!(
        snapshot.entries.len() == NODES + 1,
        "{:?}",
        snapshot.entries
    );
    let snapshot_bytes = snapshot
        .encode()
        .ok_or_else(|| anyhow::anyhow!("too large"))?;
    swarm.behaviour_mut().kad.store_mut().put(Record::new(
        RecordKey::new(&directory::snapshot_record_key(&snapshot.digest)),
        snapshot_bytes,
    ))?;
    let id = ComputationId([0x5a; 32]);
    let mut request = query::build_request(
        &sum_params("c", "x", 2, 2),
        id,
        CommissionerKey(untrusted.verifying_key().to_bytes()),
        NodeId([0x5a; 32]),
        grove_node::clock::now_micros(),
        snapshot.entries.len(),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    request.directory = Some(snapshot.digest);
    let real = SignedRequest::sign(request, &untrusted);
    let mut forged = real.clone();
    forged.request.commissioner = CommissionerKey(trusted.verifying_key().to_bytes());
    let message = |signed: SignedRequest| Message {
        computation: id,
        round: 0,
        body: Body::Request(Box::new(signed)),
        to: None,
    };

    // The real request, then the forged copy right behind it on the same link.
    swarm
        .behaviour_mut()
        .gossipsub
        .publish(topic.clone(), codec::encode(&message(real))?)?;
    swarm
        .behaviour_mut()
        .gossipsub
        .publish(topic, codec::encode(&message(forged))?)?;

    let start = Instant::now();
    let mut decided = vec![None; NODES];
    while decided.iter().any(Option::is_none) {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "no decision audited: {decided:?}"
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), swarm.select_next_some()).await;
        for (i, d) in decided.iter_mut().enumerate() {
            let audit = ctl(&cluster, i, ControlRequest::Audit).await?;
            *d = audit["entries"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| {
                    e["computation"] == id.to_string().as_str()
                        && (e["kind"] == "declined" || e["kind"] == "contributed")
                })
                .cloned();
        }
    }
    for (i, d) in decided.iter().enumerate() {
        let d = d.as_ref().expect("decided above");
        assert_eq!(d["kind"], "declined", "node {i}: {d}");
        assert_eq!(d["rule"], "untrusted", "node {i}: {d}");
        let status = ctl(&cluster, i, ControlRequest::Status).await?;
        assert_eq!(status["sent"]["share"].as_u64().unwrap_or(0), 0, "{status}");
        // The request really waited for the snapshot (and so for the forged copy to pass).
        assert!(
            status["network"]["snapshots_fetched"].as_u64() >= Some(1),
            "{status}"
        );
        let audit = ctl(&cluster, i, ControlRequest::Audit).await?;
        assert!(
            audit["entries"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| { e["computation"] == id.to_string().as_str() && e["kind"] == "refused" }),
            "node {i} never saw the forged copy: {audit}"
        );
    }
    Ok(())
}
