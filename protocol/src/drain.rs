//! The drain rule, written once. After feeding the engine one input, the driver calls
//! [`drain`]: it polls the engine until `Idle`, commits every pending `Persist` record
//! (consecutive ones together) before the next `Send` or `Broadcast` and at idle, and hands
//! each effect to the driver's [`Effects`] in the engine's order. The daemon (a redb
//! transaction, the swarm), the harness (a virtual network) and the simulator (a virtual
//! network whose CPU model charges each effect its time) all drain through it, so persist
//! before send holds the same way in all three.

use crate::engine::{Engine, Event, Job, Output};
use crate::ids::{Micros, NodeId};
use crate::message::Message;
use crate::record::Record;

/// Where the drain puts the engine's effects.
pub trait Effects {
    /// Why a drain stopped early: records that could not be made durable, or a driver that
    /// stops its node in the middle of a drain (the harness's and the simulator's crashes).
    type Error;

    /// Makes `records` durable, in order, before returning. An error stops the drain: nothing
    /// that depends on an unwritten record may leave.
    fn persist(&mut self, records: Vec<Record>) -> Result<(), Self::Error>;

    /// Sends `message` to `to` (never this node: the engine delivers those itself).
    fn send(&mut self, to: NodeId, message: Message) -> Result<(), Self::Error>;

    /// Spreads `message` to every node (gossip).
    fn broadcast(&mut self, message: Message) -> Result<(), Self::Error>;

    /// An event, in order with the effects around it; `engine` is the engine being drained,
    /// for a driver that answers it at once (a command's outputs join the same drain).
    fn event(&mut self, engine: &mut Engine, event: Event) -> Result<(), Self::Error>;

    /// CPU work the engine asks for (a contributor's proof): the driver runs it and hands
    /// the result back with `Engine::handle_job_done`, now or as a later input. By default it
    /// runs inline and its outputs join this drain (the harness and the simulator); the daemon
    /// runs it off its event loop.
    fn work(&mut self, engine: &mut Engine, job: Job) -> Result<(), Self::Error> {
        engine.run_job_inline(job);
        Ok(())
    }
}

/// The drain rule: polls `engine` until `Idle`, committing the pending records before each
/// send, broadcast and at idle. Returns the next deadline, for which the driver arms a timer.
pub fn drain<E: Effects>(engine: &mut Engine, effects: &mut E) -> Result<Option<Micros>, E::Error> {
    let mut pending: Vec<Record> = Vec::new();
    loop {
        match engine.poll_output() {
            Output::Persist(record) => pending.push(record),
            Output::Send { to, message } => {
                commit(effects, &mut pending)?;
                effects.send(to, message)?;
            }
            Output::Broadcast { message } => {
                commit(effects, &mut pending)?;
                effects.broadcast(message)?;
            }
            Output::Event(event) => effects.event(engine, event)?,
            Output::Work(job) => effects.work(engine, job)?,
            Output::Idle { next_deadline } => {
                commit(effects, &mut pending)?;
                return Ok(next_deadline);
            }
        }
    }
}

fn commit<E: Effects>(effects: &mut E, pending: &mut Vec<Record>) -> Result<(), E::Error> {
    if pending.is_empty() {
        return Ok(());
    }
    effects.persist(std::mem::take(pending))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::ContributionSpec;
    use crate::engine::{sign_finish, Command, Identity};
    use crate::harness::LaunchParams;
    use crate::ids::ComputationId;
    use crate::plan::PlanCache;
    use crate::request::{CommissionerKey, PrivacyParams, Request, SignedRequest, TreeParams};
    use crate::snapshot::DirectorySnapshot;
    use std::sync::Arc;

    /// What a drain did, in order: a batch of records, or an effect with the number of
    /// records durable when it left.
    #[derive(Debug, PartialEq)]
    enum Did {
        Persist(usize),
        Out(&'static str, usize),
        Event,
    }

    #[derive(Default)]
    struct Log {
        durable: usize,
        did: Vec<Did>,
        fail_persist: bool,
        stop_after_broadcast: bool,
    }

    #[derive(Debug, PartialEq)]
    struct Stop;

    impl Effects for Log {
        type Error = Stop;
        fn persist(&mut self, records: Vec<Record>) -> Result<(), Stop> {
            if self.fail_persist {
                return Err(Stop);
            }
            self.durable += records.len();
            self.did.push(Did::Persist(records.len()));
            Ok(())
        }
        fn send(&mut self, _to: NodeId, message: Message) -> Result<(), Stop> {
            self.did.push(Did::Out(message.kind(), self.durable));
            Ok(())
        }
        fn broadcast(&mut self, message: Message) -> Result<(), Stop> {
            self.did.push(Did::Out(message.kind(), self.durable));
            if self.stop_after_broadcast {
                return Err(Stop);
            }
            Ok(())
        }
        fn event(&mut self, _engine: &mut Engine, _event: Event) -> Result<(), Stop> {
            self.did.push(Did::Event);
            Ok(())
        }
    }

    /// A commissioner's engine that just launched a computation (it persists `Launched`, then
    /// broadcasts the request), on a network of two nodes.
    fn launched() -> Engine {
        let secrets = [[3u8; 32], [8u8; 32]];
        let nodes = [NodeId([5u8; 32]), NodeId([9u8; 32])];
        let identities: Vec<Identity> = nodes
            .iter()
            .zip(&secrets)
            .map(|(n, s)| Identity {
                node: *n,
                x25519_secret: *s,
                ed25519_secret: [s[0] + 1; 32],
            })
            .collect();
        let directory =
            DirectorySnapshot::new(identities.iter().map(|i| (i.node, i.keys())).collect());
        let plans = Arc::new(PlanCache::default());
        let identity = identities[0].clone();
        let mut engine = Engine::new(identity, [1u8; 32], plans);
        let key = ed25519_dalek::SigningKey::from_bytes(&[4u8; 32]);
        let id = ComputationId([6u8; 32]);
        let request = Request {
            id,
            commissioner: CommissionerKey(key.verifying_key().to_bytes()),
            commissioner_node: nodes[0],
            directory: None,
            beacon: None,
            created_at: Micros(1_000_000),
            deadline: Micros(61_000_000),
            query: String::new(),
            contribution: ContributionSpec::counted(1, 0.0, 1000.0, 0),
            max_contributors: 10,
            privacy: PrivacyParams {
                g: 2,
                t: 2,
                k_min: 1,
            },
            tree: TreeParams {
                leaf_groups: 1,
                fan_in: 2,
                backups: 0,
                timeouts: LaunchParams::default_timeouts(),
            },
        };
        let command = Command::Launch {
            request: Box::new(SignedRequest::sign(request, &key)),
            finish_signature: sign_finish(&id, &key),
            directory,
        };
        engine
            .handle_command(Micros(1_000_000), command)
            .expect("the launch is valid");
        engine
    }

    #[test]
    fn records_are_durable_before_the_broadcast_that_follows_them() {
        let mut engine = launched();
        let mut log = Log::default();
        let next = drain(&mut engine, &mut log).expect("nothing fails");
        let out = log
            .did
            .iter()
            .position(|d| matches!(d, Did::Out("request", _)))
            .expect("the request is broadcast");
        assert!(
            log.did[..out].iter().any(|d| matches!(d, Did::Persist(_))),
            "{:?}",
            log.did
        );
        assert!(matches!(log.did[out], Did::Out(_, durable) if durable > 0));
        assert!(next.is_some(), "a launched computation has a deadline");
    }

    #[test]
    fn a_failed_persist_stops_the_drain_before_any_send() {
        let mut engine = launched();
        let mut log = Log {
            fail_persist: true,
            ..Log::default()
        };
        assert_eq!(drain(&mut engine, &mut log), Err(Stop));
        assert!(
            !log.did.iter().any(|d| matches!(d, Did::Out(..))),
            "{:?}",
            log.did
        );
    }

    #[test]
    fn an_effect_that_fails_stops_the_drain_at_once() {
        let mut engine = launched();
        let mut log = Log {
            stop_after_broadcast: true,
            ..Log::default()
        };
        assert_eq!(drain(&mut engine, &mut log), Err(Stop));
        let last = log.did.last().expect("something happened");
        assert!(matches!(last, Did::Out("request", _)), "{:?}", log.did);
    }
}
