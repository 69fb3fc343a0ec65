//! Plans are pushed in: the engine plans a request only over the directory snapshot its driver
//! hands in with it, records that snapshot before the request, and rebuilds the plan from its
//! own records on restore.

use ed25519_dalek::SigningKey;
use grove_protocol::engine::{sign_finish, Command, Engine, Event, Identity, Output, RefusalKind};
use grove_protocol::harness::LaunchParams;
use grove_protocol::ids::{ComputationId, Digest, Micros, NodeId};
use grove_protocol::message::{Body, Message};
use grove_protocol::plan::PlanCache;
use grove_protocol::record::Record;
use grove_protocol::request::{CommissionerKey, PrivacyParams, Request, SignedRequest, TreeParams};
use grove_protocol::seal;
use grove_protocol::snapshot::DirectorySnapshot;
use std::sync::Arc;

const NOW: Micros = Micros(1_000_000);

fn identity(i: u8) -> Identity {
    let secret = [i; 32];
    Identity {
        node: NodeId::from_public_bytes(&seal::x25519_public(&secret)),
        x25519_secret: secret,
        ed25519_secret: [i.wrapping_add(100); 32],
    }
}

/// Three nodes, and a signed 2-of-3 request over one group of them that names `named`.
fn setup(named: Option<Digest>) -> (Vec<Identity>, DirectorySnapshot, SignedRequest, SigningKey) {
    let ids: Vec<Identity> = (1..=3).map(identity).collect();
    let directory = DirectorySnapshot::new(ids.iter().map(|i| (i.node, i.keys())).collect());
    let p = LaunchParams::new(3, 2, 1, 2, 1);
    let key = SigningKey::from_bytes(&[9; 32]);
    let request = Request {
        id: ComputationId([4; 32]),
        commissioner: CommissionerKey(key.verifying_key().to_bytes()),
        commissioner_node: ids[0].node,
        directory: named,
        beacon: None,
        created_at: NOW,
        deadline: NOW.plus(p.lifetime),
        query: String::new(),
        contribution: p.spec.clone(),
        max_contributors: p.max_contributors,
        privacy: PrivacyParams {
            g: p.g,
            t: p.t,
            k_min: p.k_min,
        },
        tree: TreeParams {
            leaf_groups: p.leaf_groups,
            fan_in: p.fan_in,
            backups: 0,
            timeouts: p.timeouts,
        },
    };
    (ids, directory, SignedRequest::sign(request, &key), key)
}

fn engine(id: &Identity) -> Engine {
    Engine::new(id.clone(), [7; 32], Arc::new(PlanCache::default()))
}

/// Everything the engine emits until it is idle.
fn drain(engine: &mut Engine) -> (Vec<Record>, Vec<Event>) {
    let (mut records, mut events) = (Vec::new(), Vec::new());
    loop {
        match engine.poll_output() {
            Output::Persist(r) => records.push(r),
            Output::Event(e) => events.push(e),
            Output::Idle { .. } => return (records, events),
            _ => {}
        }
    }
}

fn refusal(events: &[Event]) -> Option<RefusalKind> {
    events.iter().find_map(|e| match e {
        Event::RequestRefused { reason, .. } => Some(reason.kind),
        _ => None,
    })
}

#[test]
fn a_request_is_planned_over_the_snapshot_handed_in_and_recorded_before_it() {
    let (ids, directory, signed, _) = setup(None);
    let mut e = engine(&ids[1]);
    e.handle_request(NOW, ids[0].node, signed.clone(), Some(directory.clone()));
    let (records, events) = drain(&mut e);
    assert_eq!(refusal(&events), None, "{events:?}");
    // The snapshot first, then the request: a restore meets them in that order.
    assert!(
        matches!(&records[..2], [Record::Directory { snapshot, .. }, Record::Accepted { .. }] if *snapshot == directory),
        "{records:?}"
    );
    let plan = e.plan(&signed.request.id).expect("accepted").clone();
    assert_eq!(plan.members(plan.root()).len(), 3);

    // Restored from its records alone, the engine has the same plan.
    let restored = Engine::restore(
        ids[1].clone(),
        [7; 32],
        Arc::new(PlanCache::default()),
        records,
        NOW,
    );
    assert_eq!(restored.plan(&signed.request.id), Some(&plan));
}

#[test]
fn a_request_without_a_snapshot_is_refused_and_a_held_one_needs_none() {
    let (ids, directory, signed, _) = setup(None);
    let mut e = engine(&ids[1]);
    // Delivered as a plain message, no snapshot came with it.
    e.handle_message(
        NOW,
        ids[0].node,
        Message {
            computation: signed.request.id,
            round: 0,
            body: Body::Request(Box::new(signed.clone())),
            to: None,
        },
    );
    let (records, events) = drain(&mut e);
    assert_eq!(refusal(&events), Some(RefusalKind::Plan), "{events:?}");
    assert!(records.is_empty());
    // The engine remembers the id it checked: a copy that comes later with its snapshot is a
    // replay (which is why the daemon parks a request until it holds its snapshot).
    assert!(e.knows_request(&signed.request.id));
    e.handle_request(NOW, ids[0].node, signed.clone(), Some(directory.clone()));
    assert_eq!(refusal(&drain(&mut e).1), Some(RefusalKind::Replayed));
    // With its snapshot it is accepted; once held, a copy without one is a mere duplicate.
    let mut f = engine(&ids[2]);
    f.handle_request(NOW, ids[0].node, signed.clone(), Some(directory));
    assert_eq!(refusal(&drain(&mut f).1), None);
    assert!(f.knows_request(&signed.request.id));
    f.handle_request(NOW, ids[0].node, signed, None);
    let (records, events) = drain(&mut f);
    assert!(records.is_empty() && events.is_empty(), "{events:?}");
}

#[test]
fn a_snapshot_other_than_the_one_the_request_names_is_refused() {
    let (ids, directory, _, _) = setup(None);
    // The request names another directory than the one handed in.
    let (_, _, signed, key) = setup(Some(Digest([1; 32])));
    let mut e = engine(&ids[1]);
    e.handle_request(NOW, ids[0].node, signed.clone(), Some(directory.clone()));
    let (records, events) = drain(&mut e);
    assert_eq!(refusal(&events), Some(RefusalKind::Plan), "{events:?}");
    assert!(records.is_empty());
    // The commissioner's launch is refused the same way.
    let mut c = engine(&ids[0]);
    let launched = c.handle_command(
        NOW,
        Command::Launch {
            request: Box::new(signed.clone()),
            finish_signature: sign_finish(&signed.request.id, &key),
            directory: directory.clone(),
        },
    );
    assert!(launched.is_err(), "{launched:?}");
    // Naming the right one, it is accepted (by a node that has not seen the id yet).
    let (_, _, signed, _) = setup(Some(directory.digest()));
    let mut other = engine(&ids[2]);
    other.handle_request(NOW, ids[0].node, signed, Some(directory));
    assert_eq!(refusal(&drain(&mut other).1), None);
}
