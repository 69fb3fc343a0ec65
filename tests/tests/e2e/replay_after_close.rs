//! A request replayed after its computation closed: a peer on the network keeps the bytes of a
//! real request it saw on gossip and publishes them again, unchanged, once every node closed
//! the computation. Every node refuses it as a replay, audits the refusal, and sends no share.

use futures::StreamExt;
use grove_e2e::{ctl, grove_node, seed_powers_of_two, start_network, sum_params};
use grove_node::control::{self, ComputeParams, ControlRequest};
use grove_node::daemon::net::{self, BehaviourEvent};
use grove_protocol::codec;
use grove_protocol::message::Body;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::swarm::SwarmEvent;
use libp2p::Multiaddr;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
const NODES: usize = 3;

fn entries_for(audit: &Value, id: &str) -> Vec<Value> {
    audit["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["computation"] == id)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_replayed_after_close_is_refused_and_audited() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let cluster = start_network(Path::new(EXE), NODES).await?;
    seed_powers_of_two(&cluster).await?;

    // The replaying peer: a real libp2p node on Grove's gossip topic.
    let mut swarm = net::build_swarm(libp2p::identity::Keypair::generate_ed25519())
        .map_err(|e| anyhow::anyhow!(e))?;
    let topic = IdentTopic::new(net::TOPIC_BROADCAST);
    swarm.behaviour_mut().gossipsub.subscribe(&topic)?;
    let addr: Multiaddr = cluster.nodes[0].addr.clone().unwrap_or_default().parse()?;
    swarm.dial(addr)?;
    let start = Instant::now();
    loop {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(30), "no gossip link");
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
    // Node 0 learns of our subscription from a message that may still be in flight (the full
    // suite once published the request before it had): give it time, still driving the swarm.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(2) {
        let _ = tokio::time::timeout(Duration::from_millis(100), swarm.select_next_some()).await;
    }

    // A real computation, while the peer records the request's bytes as they pass by.
    let params = ComputeParams {
        leaf_groups: Some(1),
        ..sum_params("c", "x", 3, 2)
    };
    let dir0 = cluster.dir(0).to_path_buf();
    let compute = tokio::spawn(async move {
        control::call(&dir0, &ControlRequest::Compute(params), |_, _| {}).await
    });
    tokio::pin!(compute);
    let mut captured: Option<Vec<u8>> = None;
    let result = loop {
        tokio::select! {
            event = swarm.select_next_some() => {
                if let SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(
                    gossipsub::Event::Message { message, .. },
                )) = event
                {
                    if let Ok(m) = codec::decode(&message.data) {
                        if matches!(m.body, Body::Request(_)) {
                            captured = Some(message.data.clone());
                        }
                    }
                }
            }
            r = &mut compute => break r??,
        }
    };
    let id = result["computation"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no computation id in {result}"))?
        .to_string();
    let bytes = captured.ok_or_else(|| anyhow::anyhow!("the request never passed by"))?;
    assert_eq!(
        result["contributors"].as_u64(),
        Some(NODES as u64),
        "{result}"
    );

    // Every node closes the computation (the completion note) before the replay.
    let start = Instant::now();
    let mut before = Vec::new();
    for i in 0..NODES {
        loop {
            let _ =
                tokio::time::timeout(Duration::from_millis(100), swarm.select_next_some()).await;
            let status = ctl(&cluster, i, ControlRequest::Status).await?;
            let open = status["computations_in_flight"]
                .as_array()
                .is_some_and(|a| a.iter().any(|c| c == id.as_str()));
            if !open {
                let audit = ctl(&cluster, i, ControlRequest::Audit).await?;
                before.push((status["sent"]["share"].as_u64().unwrap_or(0), audit));
                break;
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(60),
                "node {i} never closed {id}"
            );
        }
    }
    for (i, (shares, audit)) in before.iter().enumerate() {
        assert!(
            *shares > 0,
            "node {i} sent its shares during the computation"
        );
        let kinds: Vec<_> = entries_for(audit, &id)
            .iter()
            .map(|e| e["kind"].clone())
            .collect();
        assert!(
            kinds.iter().any(|k| k == "contributed"),
            "node {i}: {kinds:?}"
        );
    }

    // The replay: the very bytes, published again.
    swarm
        .behaviour_mut()
        .gossipsub
        .publish(topic.clone(), bytes)?;
    let start = Instant::now();
    for (i, (_, audit_before)) in before.iter().enumerate() {
        loop {
            let _ =
                tokio::time::timeout(Duration::from_millis(100), swarm.select_next_some()).await;
            let audit = ctl(&cluster, i, ControlRequest::Audit).await?;
            let entries = entries_for(&audit, &id);
            let refused: Vec<_> = entries.iter().filter(|e| e["kind"] == "refused").collect();
            if let Some(r) = refused.first() {
                let detail = r["detail"].as_str().unwrap_or_default();
                assert!(detail.contains("Replayed"), "node {i}: {detail}");
                assert_eq!(refused.len(), 1, "node {i}: {entries:?}");
                // Nothing else new for this computation: no second acceptance or contribution.
                let old = entries_for(audit_before, &id);
                assert_eq!(entries.len(), old.len() + 1, "node {i}: {entries:?}");
                eprintln!("node {i}: refused the replay: {detail}");
                break;
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(30),
                "node {i} did not audit the replay: {entries:?}"
            );
        }
    }
    for (i, (shares, _)) in before.iter().enumerate() {
        let status = ctl(&cluster, i, ControlRequest::Status).await?;
        assert_eq!(
            status["sent"]["share"].as_u64().unwrap_or(0),
            *shares,
            "node {i} sent a share after the replay: {status}"
        );
        let open = status["computations_in_flight"]
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c == id.as_str()));
        assert!(!open, "node {i} reopened {id}");
    }
    Ok(())
}
