//! Budgets against hostile commissioners and peers at the engine's intake: computation slots
//! shared among commissioners with a quota for untrusted ones (`engine/slots.rs`), and the
//! early queue bounded in bytes (`engine/early.rs`).

use ed25519_dalek::SigningKey;
use grove_protocol::beacon::{Beacon, Scheme, TestChain};
use grove_protocol::engine::{Engine, Event, Identity, Output, RefusalKind, Rejection};
use grove_protocol::harness::LaunchParams;
use grove_protocol::ids::{ComputationId, GroupId, Micros, NodeId};
use grove_protocol::limits::{
    MAX_COMPUTATIONS_PER_COMMISSIONER, MAX_EARLY_BYTES, MAX_UNTRUSTED_COMPUTATIONS,
};
use grove_protocol::message::{Body, Message, ShareMsg};
use grove_protocol::plan::PlanCache;
use grove_protocol::request::{
    BeaconRef, CommissionerKey, PrivacyParams, Request, SignedRequest, TreeParams,
};
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

struct Net {
    ids: Vec<Identity>,
    directory: DirectorySnapshot,
}

fn net() -> Net {
    let ids: Vec<Identity> = (1..=3).map(identity).collect();
    let directory = DirectorySnapshot::new(ids.iter().map(|i| (i.node, i.keys())).collect());
    Net { ids, directory }
}

/// A valid 2-of-3 request number `n` of `key`.
fn request(net: &Net, key: &SigningKey, n: u32) -> SignedRequest {
    request_naming(net, key, n, None)
}

/// [`request`], naming beacon round `beacon` (it waits for that round before it is planned).
fn request_naming(net: &Net, key: &SigningKey, n: u32, beacon: Option<BeaconRef>) -> SignedRequest {
    let p = LaunchParams::new(3, 2, 1, 2, 1);
    let mut id = [0u8; 32];
    id[..32].copy_from_slice(&key.verifying_key().to_bytes());
    id[..4].copy_from_slice(&n.to_le_bytes());
    let request = Request {
        id: ComputationId(id),
        commissioner: CommissionerKey(key.verifying_key().to_bytes()),
        commissioner_node: net.ids[0].node,
        directory: None,
        beacon,
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
    SignedRequest::sign(request, key)
}

/// Hands `signed` to `e`; `None` if accepted, else the refusal.
fn offer(e: &mut Engine, net: &Net, signed: SignedRequest) -> Option<RefusalKind> {
    e.handle_request(NOW, net.ids[0].node, signed, Some(net.directory.clone()));
    let mut refused = None;
    loop {
        match e.poll_output() {
            Output::Event(Event::RequestRefused { reason, .. }) => refused = Some(reason.kind),
            Output::Idle { .. } => return refused,
            _ => {}
        }
    }
}

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i; 32])
}

/// Untrusted keys fill their quota of slots and no more: a trusted commissioner's request is
/// still accepted. Without the quota the untrusted keys take every slot and it is refused.
#[test]
fn untrusted_commissioners_cannot_take_the_slots_of_trusted_ones() {
    let net = net();
    let mut e = Engine::new(net.ids[1].clone(), [7; 32], Arc::new(PlanCache::default()));
    let trusted = key(200);
    e.set_trusted([CommissionerKey(trusted.verifying_key().to_bytes())]);
    let mut accepted = 0;
    'fill: for k in 1..=16u8 {
        for n in 0..MAX_COMPUTATIONS_PER_COMMISSIONER as u32 {
            match offer(&mut e, &net, request(&net, &key(k), n)) {
                None => accepted += 1,
                Some(RefusalKind::Busy) => break 'fill,
                Some(other) => panic!("refused as {other:?}"),
            }
        }
    }
    assert_eq!(accepted, MAX_UNTRUSTED_COMPUTATIONS);
    assert_eq!(e.rejections().get(&Rejection::UntrustedOverQuota), Some(&1));
    assert_eq!(offer(&mut e, &net, request(&net, &trusted, 0)), None);
}

/// One commissioner holds at most its share of slots, trusted or not; another still gets in.
#[test]
fn one_commissioner_holds_at_most_its_share_of_slots() {
    let net = net();
    let mut e = Engine::new(net.ids[1].clone(), [7; 32], Arc::new(PlanCache::default()));
    let greedy = key(1);
    let mut accepted = 0;
    for n in 0..(MAX_COMPUTATIONS_PER_COMMISSIONER as u32 + 10) {
        if offer(&mut e, &net, request(&net, &greedy, n)).is_none() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, MAX_COMPUTATIONS_PER_COMMISSIONER);
    assert_eq!(
        e.rejections().get(&Rejection::CommissionerOverQuota),
        Some(&10)
    );
    assert_eq!(offer(&mut e, &net, request(&net, &key(2), 0)), None);
}

/// A flood of large messages for computations that never come is held within the early
/// queue's bytes, and the flooder is refused past its own quota.
#[test]
fn a_flood_for_unknown_computations_is_held_within_its_bytes() {
    let net = net();
    let mut e = Engine::new(net.ids[1].clone(), [7; 32], Arc::new(PlanCache::default()));
    let hostile = NodeId([66; 32]);
    let big = 1 << 20;
    let sent = 2 * MAX_EARLY_BYTES / big;
    for n in 0..sent as u32 {
        let mut id = [9u8; 32];
        id[..4].copy_from_slice(&n.to_le_bytes());
        e.handle_message(
            NOW,
            hostile,
            Message {
                computation: ComputationId(id),
                round: 0,
                body: Body::Share(ShareMsg {
                    group: GroupId { level: 0, index: 0 },
                    position: 1,
                    contributor: hostile,
                    sealed: vec![0; big],
                }),
                to: None,
            },
        );
        while !matches!(e.poll_output(), Output::Idle { .. }) {}
    }
    let refused = e.rejections().get(&Rejection::EarlySenderFull).copied();
    assert!(
        refused.unwrap_or(0) as usize >= sent - MAX_EARLY_BYTES / big,
        "{refused:?}"
    );
}

/// Requests waiting for their beacon round hold slots, and they count against their
/// commissioner's quota: one key cannot park more than its share of requests waiting for a
/// round (they would take every slot once the round is out), and an untrusted key no more
/// than the untrusted share. Without the charge both keys are admitted past their quotas.
#[test]
fn requests_waiting_for_their_round_count_against_their_commissioners_quota() {
    let net = net();
    let chain = TestChain::new(Scheme::BlsUnchainedG1Rfc9380, b"grove budgets chain", 0, 1);
    // Invariant: the test chain's key is a valid point and its period is not zero.
    let beacon = Arc::new(Beacon::new(chain.info()).expect("the test chain's key parses"));
    let round = BeaconRef {
        chain_hash: beacon.info().chain_hash,
        round: beacon.first_round_after(NOW),
    };
    let mut e = Engine::new(net.ids[1].clone(), [7; 32], Arc::new(PlanCache::default()))
        .with_beacon(beacon);
    let greedy = key(1);
    let mut waiting = 0;
    for n in 0..(MAX_COMPUTATIONS_PER_COMMISSIONER as u32 + 10) {
        if offer(&mut e, &net, request_naming(&net, &greedy, n, Some(round))).is_none() {
            waiting += 1;
        }
    }
    assert_eq!(
        e.awaited_rounds().len(),
        1,
        "the requests wait for their round"
    );
    assert_eq!(waiting, MAX_COMPUTATIONS_PER_COMMISSIONER);
    assert_eq!(
        e.rejections().get(&Rejection::CommissionerOverQuota),
        Some(&10)
    );
    // Untrusted keys parking requests fill the untrusted share and no more.
    e.set_trusted([CommissionerKey(key(200).verifying_key().to_bytes())]);
    let mut untrusted = 0;
    'fill: for k in 2..=16u8 {
        for n in 0..MAX_COMPUTATIONS_PER_COMMISSIONER as u32 {
            match offer(&mut e, &net, request_naming(&net, &key(k), n, Some(round))) {
                None => untrusted += 1,
                Some(RefusalKind::Busy) => break 'fill,
                Some(other) => panic!("refused as {other:?}"),
            }
        }
    }
    // `greedy` is untrusted now too: its waiting requests count in the untrusted share.
    assert_eq!(
        untrusted + MAX_COMPUTATIONS_PER_COMMISSIONER,
        MAX_UNTRUSTED_COMPUTATIONS
    );
    assert_eq!(e.rejections().get(&Rejection::UntrustedOverQuota), Some(&1));
}
