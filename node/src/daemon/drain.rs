//! The daemon's side of the drain rule: its `Effects` (the store's engine log, the swarm, the
//! loopback queue), the drain after each input with the events it collected, and the
//! unreachable hook (a send that failed goes back to the engine).

use super::directory::Directory;
use super::jobs::Jobs;
use super::net::{self, Behaviour};
use super::sends::{LateAck, Outgoing, PendingSends};
use super::transport::slot_text;
use super::MAX_LOOPBACK;
use super::{agreement, hook, Node};
use crate::clock::now_micros;
use crate::store::Store;
use anyhow::Context;
use grove_protocol::codec;
use grove_protocol::drain::{drain as drain_engine, Effects};
use grove_protocol::engine::{Engine, Event, Job, JobDone};
use grove_protocol::ids::{ComputationId, NodeId};
use grove_protocol::message::{Body, Message};
use grove_protocol::record::Record;
use libp2p::gossipsub::IdentTopic;
use libp2p::{PeerId, Swarm};
use std::collections::{BTreeMap, VecDeque};

/// The daemon's effects: the store, the swarm and the loopback queue.
struct NodeEffects<'a> {
    me: NodeId,
    store: &'a Store,
    swarm: &'a mut Swarm<Behaviour>,
    directory: &'a Directory,
    pending_sends: &'a mut PendingSends,
    loopback: &'a mut VecDeque<Message>,
    sent_by_kind: &'a mut BTreeMap<&'static str, u64>,
    /// Sends that could not be attempted, for the unreachable hook after the drain.
    unreachable: &'a mut Vec<(NodeId, Message, String)>,
    agreement: &'a mut agreement::State,
    /// Each known computation's vector size in bytes, for the sends' deadlines
    /// (`net::message_deadline`).
    vector_bytes: &'a BTreeMap<ComputationId, usize>,
    /// Events, for the daemon to handle after the drain.
    events: &'a mut Vec<Event>,
    /// The engine's CPU work, run off the event loop (`jobs`).
    jobs: &'a mut Jobs,
}

/// Each computation the engine knows, with its vector's size in bytes (8 per element): the
/// receiver's share of a send's deadline (`net::message_deadline`).
fn vector_bytes(engine: &Engine) -> BTreeMap<ComputationId, usize> {
    engine
        .computations()
        .filter_map(|id| {
            let r = engine.request(id)?;
            Some((*id, net::vector_bytes(r.request.contribution.length)))
        })
        .collect()
}

impl Effects for NodeEffects<'_> {
    type Error = anyhow::Error;

    fn persist(&mut self, records: Vec<Record>) -> anyhow::Result<()> {
        self.store
            .append_engine_records(&records)
            .context("cannot persist engine records; stopping before any dependent send")?;
        records
            .iter()
            .for_each(|r| hook::observe(hook::Effect::Persisted(r)));
        Ok(())
    }

    fn send(&mut self, to: NodeId, message: Message) -> anyhow::Result<()> {
        hook::observe(hook::Effect::Sending(&message));
        tracing::debug!(
            "send {} to {to}{}",
            message.kind(),
            slot_text(message.to.as_ref())
        );
        *self.sent_by_kind.entry(message.kind()).or_default() += 1;
        if to == self.me {
            if self.loopback.len() >= MAX_LOOPBACK {
                tracing::warn!("loopback queue full; dropping a {} message", message.kind());
                return Ok(());
            }
            self.loopback.push_back(message);
            return Ok(());
        }
        let bytes = match codec::encode(&message) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("cannot encode a {} message: {e}", message.kind());
                return Ok(());
            }
        };
        // The directory's addresses go with the request: the swarm dials through its
        // behaviours' address books, and Kademlia's routing table keeps only 20 peers per
        // distance bucket, so in a network of a few hundred nodes it lacks most of them (at 200
        // daemons, sends to never-met peers failed to dial and their slots failed over).
        let peer = self
            .directory
            .get(&to)
            .map(|p| (p.peer_id, p.addrs.clone()));
        let Some((peer, addrs)) = peer else {
            self.unreachable
                .push((to, message, "the node is not in the directory".into()));
            return Ok(());
        };
        self.agreement.stats.bytes_sent += bytes.len() as u64;
        if matches!(message.body, Body::Share(_)) {
            self.agreement.stats.share_bytes_sent += bytes.len() as u64;
        }
        // Its computation's vector (the receiver's work before it acknowledges) counts in
        // the size-aware deadline, which starts when the send leaves its peer's window and
        // its connection is up.
        let vector_bytes = self
            .vector_bytes
            .get(&message.computation)
            .copied()
            .unwrap_or(0);
        let out = Outgoing {
            to,
            peer,
            addrs,
            bytes,
            vector_bytes,
            position: message.to.map(|slot| (message.computation, slot)),
        };
        if !self.pending_sends.push(out, std::time::Instant::now()) {
            self.unreachable
                .push((to, message, "too many sends await their acks".into()));
            return Ok(());
        }
        hand_over(self.swarm, self.pending_sends, &peer);
        Ok(())
    }

    fn broadcast(&mut self, message: Message) -> anyhow::Result<()> {
        *self.sent_by_kind.entry(message.kind()).or_default() += 1;
        let bytes = match codec::encode(&message) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("cannot encode a {} broadcast: {e}", message.kind());
                return Ok(());
            }
        };
        self.agreement.stats.bytes_sent += bytes.len() as u64;
        self.agreement.note_broadcast(&message, &bytes);
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(IdentTopic::new(net::TOPIC_BROADCAST), bytes)
        {
            tracing::warn!("cannot broadcast a {} message: {e}", message.kind());
        }
        Ok(())
    }

    fn event(&mut self, _engine: &mut Engine, event: Event) -> anyhow::Result<()> {
        self.events.push(event);
        Ok(())
    }

    /// Off the event loop: its result comes back as an input (`Node::on_job_done`).
    fn work(&mut self, _engine: &mut Engine, job: Job) -> anyhow::Result<()> {
        self.jobs.submit(job);
        Ok(())
    }
}

impl Node {
    /// A job's result (`jobs`), handed to the engine like any other input; the next waiting
    /// job starts.
    pub(super) fn on_job_done(&mut self, done: Option<JobDone>) -> anyhow::Result<()> {
        self.jobs.finished();
        let Some(done) = done else {
            return Ok(());
        };
        self.engine.handle_job_done(now_micros(), done);
        self.drain()
    }

    /// Messages the engine sent to this very node, handled like any other input.
    pub(super) fn run_loopback(&mut self) -> anyhow::Result<()> {
        while let Some(message) = self.transport.loopback.pop_front() {
            self.count_received(&message);
            self.engine.handle_message(now_micros(), self.me, message);
            self.drain()?;
        }
        Ok(())
    }

    /// The drain rule (see [`drain_engine`]), then the events it collected, in order; an
    /// event may lead to a command (consent) whose outputs are drained in turn. Sends that
    /// could not even be attempted go to the unreachable hook afterwards.
    pub(super) fn drain(&mut self) -> anyhow::Result<()> {
        loop {
            let mut events = Vec::new();
            let mut unreachable = Vec::new();
            let vector_bytes = vector_bytes(&self.engine);
            let mut effects = NodeEffects {
                me: self.me,
                store: &self.store,
                swarm: &mut self.transport.swarm,
                directory: &self.membership.directory,
                pending_sends: &mut self.transport.pending_sends,
                loopback: &mut self.transport.loopback,
                sent_by_kind: &mut self.transport.sent_by_kind,
                unreachable: &mut unreachable,
                agreement: &mut self.membership.agreement,
                vector_bytes: &vector_bytes,
                events: &mut events,
                jobs: &mut self.jobs,
            };
            self.next_deadline = drain_engine(&mut self.engine, &mut effects)?;
            self.publish_outgoing_requests();
            // Failed sends go back to the engine (which fails over to backups): drain again.
            let failed = !unreachable.is_empty();
            for (to, message, why) in unreachable {
                self.on_unreachable(to, message, &why);
            }
            if events.is_empty() && !failed {
                return Ok(());
            }
            for event in events {
                self.on_event(event)?;
            }
        }
    }

    /// THE place where a `Send` that could not be delivered ends up (request-response
    /// `OutboundFailure`, or a node missing from the directory): the engine re-sends it to the
    /// position's next candidate. The caller drains afterwards.
    /// Sends past their deadline (`net::message_deadline`) go back to the engine as
    /// unreachable, in deadline order (then request order: the pending map's own order never
    /// reaches the engine); libp2p's own timeout for them finds nothing left, and their late
    /// ack goes to the engine (`on_late_ack`).
    pub(super) fn expire_sends(&mut self) -> anyhow::Result<()> {
        let now = std::time::Instant::now();
        let failed = self.transport.pending_sends.expire(now);
        if failed.is_empty() {
            return Ok(());
        }
        for (to, bytes, why) in failed {
            match codec::decode(&bytes) {
                Ok(message) => self.on_unreachable(to, message, why),
                Err(e) => tracing::warn!("a send past its deadline does not decode: {e}"),
            }
        }
        self.drain()
    }

    /// A send failed at its deadline was acknowledged after all (`sends::LateAck`): the engine
    /// sends the position's later messages to its receiver again. It sends nothing at once.
    pub(super) fn on_late_ack(&mut self, late: LateAck) {
        tracing::debug!(
            "late ack from node {} for a message of computation {}",
            late.to,
            late.computation
        );
        self.engine
            .handle_late_ack(now_micros(), late.to, late.computation, late.slot);
    }

    pub(super) fn on_unreachable(&mut self, to: NodeId, message: Message, why: &str) {
        tracing::warn!(
            "cannot deliver a {} message of computation {} to node {to}: {why}",
            message.kind(),
            message.computation
        );
        self.engine.handle_unreachable(now_micros(), to, message);
    }
}

/// Hands to the transport every send to `peer` that its window has room for
/// (`sends::MAX_IN_FLIGHT_PER_PEER`); their deadlines start now if the peer is connected,
/// else when its connection is up (`PendingSends::connected`).
pub(super) fn hand_over(swarm: &mut Swarm<Behaviour>, pending: &mut PendingSends, peer: &PeerId) {
    let now = std::time::Instant::now();
    while let Some(out) = pending.next_ready(peer) {
        let connected = swarm.is_connected(peer);
        let id = swarm.behaviour_mut().messages.send_request_with_addresses(
            peer,
            net::Frame::outbound(out.bytes.clone()),
            out.addrs.clone(),
        );
        pending.handed_over(id, out, connected, now);
    }
}
