//! A hostile peer on the real network publishes forged, expired and future-dated requests:
//! the daemon refuses each, sends nothing for them, and its audit log says why.

use ed25519_dalek::SigningKey;
use futures::StreamExt;
use grove_e2e::{ctl, grove_node, start_network, sum_params};
use grove_node::control::ControlRequest;
use grove_node::daemon::net::{self, BehaviourEvent};
use grove_node::owner::query;
use grove_protocol::codec;
use grove_protocol::ids::{hex, ComputationId, Micros, NodeId};
use grove_protocol::message::{Body, Message};
use grove_protocol::request::{CommissionerKey, Request, SignedRequest};
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::swarm::SwarmEvent;
use libp2p::Multiaddr;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");

fn request(id: u8, commissioner: &SigningKey, now: Micros) -> Request {
    query::build_request(
        &sum_params("c", "x", 2, 2),
        ComputationId([id; 32]),
        CommissionerKey(commissioner.verifying_key().to_bytes()),
        NodeId([id; 32]),
        now,
        1,
    )
    .expect("the query compiles")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_future_requests_are_refused_and_audited() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let cluster = start_network(Path::new(EXE), 1).await?;
    let trusted = SigningKey::from_bytes(&[9u8; 32]);
    let impostor = SigningKey::from_bytes(&[7u8; 32]);
    grove_e2e::import(&cluster, 0, "c", json!({"x": 5})).await?;
    ctl(
        &cluster,
        0,
        ControlRequest::TrustAdd {
            key: hex(&trusted.verifying_key().to_bytes()),
            collections: vec![],
            label: "the real commissioner".into(),
            min_contributors: 1,
            limits: grove_e2e::test_limits(),
        },
    )
    .await?;

    let now = grove_node::clock::now_micros();
    // Claims to come from the trusted commissioner, signed by someone else.
    let mut forged = SignedRequest::sign(request(1, &impostor, now), &impostor);
    forged.request.commissioner = CommissionerKey(trusted.verifying_key().to_bytes());
    // Properly signed, but long expired.
    let mut old = request(2, &trusted, Micros(now.0 - 120_000_000));
    old.deadline = Micros(now.0 - 60_000_000);
    let expired = SignedRequest::sign(old, &trusted);
    // Properly signed, created ten minutes from now.
    let future = SignedRequest::sign(request(3, &trusted, now.plus(600_000_000)), &trusted);

    // The hostile peer: a real libp2p node speaking Grove's gossip.
    let mut swarm = net::build_swarm(libp2p::identity::Keypair::generate_ed25519())
        .map_err(|e| anyhow::anyhow!(e))?;
    let topic = IdentTopic::new(net::TOPIC_BROADCAST);
    swarm.behaviour_mut().gossipsub.subscribe(&topic)?;
    let addr: Multiaddr = cluster.nodes[0].addr.clone().unwrap_or_default().parse()?;
    swarm.dial(addr)?;
    let start = Instant::now();
    loop {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(15), "no gossip link");
        let event = tokio::time::timeout(Duration::from_secs(1), swarm.select_next_some()).await;
        if let Ok(SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(
            gossipsub::Event::Subscribed { topic: t, .. },
        ))) = event
        {
            if t == topic.hash() {
                break;
            }
        }
    }
    for signed in [&forged, &expired, &future] {
        let message = Message {
            computation: signed.request.id,
            round: 0,
            body: Body::Request(Box::new(signed.clone())),
            to: None,
        };
        swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic.clone(), codec::encode(&message)?)?;
    }

    let expect = [
        (ComputationId([1; 32]), "BadSignature"),
        (ComputationId([2; 32]), "Expired"),
        (ComputationId([3; 32]), "FromTheFuture"),
    ];
    let start = Instant::now();
    loop {
        // Keep the hostile swarm polled so that its messages leave.
        let _ = tokio::time::timeout(Duration::from_millis(100), swarm.select_next_some()).await;
        let audit = ctl(&cluster, 0, ControlRequest::Audit).await?;
        let entries = audit["entries"].as_array().cloned().unwrap_or_default();
        let refused = |id: &ComputationId, why: &str| {
            entries.iter().any(|e| {
                e["computation"] == id.to_string().as_str()
                    && e["kind"] == "refused"
                    && e["detail"].as_str().unwrap_or_default().contains(why)
            })
        };
        if expect.iter().all(|(id, why)| refused(id, why)) {
            for (id, _) in &expect {
                let other = entries
                    .iter()
                    .filter(|e| e["computation"] == id.to_string().as_str())
                    .count();
                assert_eq!(
                    other, 1,
                    "only the refusal is audited for {id}: {entries:?}"
                );
            }
            for e in entries.iter().filter(|e| e["kind"] == "refused") {
                eprintln!("audit: refused {}", e["detail"]);
            }
            break;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(15),
            "refusals not audited: {entries:?}"
        );
    }
    let status = ctl(&cluster, 0, ControlRequest::Status).await?;
    assert_eq!(status["sent"]["share"].as_u64().unwrap_or(0), 0, "{status}");
    assert_eq!(
        status["computations_in_flight"]
            .as_array()
            .map_or(0, |a| a.len()),
        0
    );
    Ok(())
}
