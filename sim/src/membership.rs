//! The membership layer at scale: runs one `grove_protocol::membership::Membership` machine
//! per node (the very code a daemon would drive) over a latency-and-loss network, and
//! measures what it costs each node: messages and bytes per second at rest, messages and bytes
//! per node for a burst of joins, the time until every node knows every new identity, and how
//! many positions every node places identically afterwards.
//!
//! Setup: `nodes` identities admitted in a shared genesis checkpoint (epoch 0, certificates of
//! ten issuers), every machine starting from it at epoch 5. Phase 1 (`rest_s` seconds): no
//! joins, only anti-entropy. Phase 2: `joins` new nodes, each with a fresh certificate,
//! announce themselves at random moments of the first `join_spread_s` seconds; the phase lasts
//! until every node knows every join or `max_s` passes. Bytes are postcard-encoded message
//! sizes (no transport framing). Deterministic: one ChaCha20 stream from the seed, events
//! ordered by (time, sequence). The placements compared are drawn from a beacon round of a
//! local test chain (key and round from the seed), verified as a node verifies it.

pub mod adversary;

use ed25519_dalek::SigningKey;
use grove_protocol::ids::{Micros, NodeId};
use grove_protocol::membership::{
    AdmissionPolicy, Certificate, Checkpoint, IssuerKey, MemberMessage, MemberOutput, Membership,
    MembershipConfig, VerifiedCertificates, CHECKPOINT_BYTES_PER_ENTRY,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::time::Instant;

/// What one membership run is asked to do.
#[derive(Clone, Debug)]
pub struct MembershipRun {
    pub nodes: u32,
    pub joins: u32,
    pub seed: u64,
    pub rest_s: u64,
    pub join_spread_s: u64,
    pub max_s: u64,
    pub latency_min_ms: u64,
    pub latency_max_ms: u64,
    pub loss_percent: u32,
    pub min_age_epochs: u64,
    pub config: MembershipConfig,
    /// Nodes whose placements are compared, and positions per node.
    pub agreement_nodes: usize,
    pub agreement_positions: u64,
}

impl MembershipRun {
    pub fn new(nodes: u32, joins: u32, seed: u64) -> MembershipRun {
        MembershipRun {
            nodes,
            joins,
            seed,
            rest_s: 60,
            join_spread_s: 10,
            max_s: 600,
            latency_min_ms: 20,
            latency_max_ms: 150,
            loss_percent: 1,
            min_age_epochs: 2,
            config: MembershipConfig::default(),
            agreement_nodes: 200,
            agreement_positions: 2_000,
        }
    }
}

/// What it measured.
#[derive(Clone, Debug, Default)]
pub struct MembershipReport {
    pub nodes: u32,
    pub joins: u32,
    /// At rest (phase 1): messages and bytes sent per node per second.
    pub rest_messages_per_node_s: f64,
    pub rest_bytes_per_node_s: f64,
    /// The join burst (phase 2): messages and bytes sent per node, per join.
    pub join_messages_per_node_per_join: f64,
    pub join_bytes_per_node_per_join: f64,
    /// Seconds from a join's announcement until every node knows it: median and worst.
    pub converge_median_s: f64,
    pub converge_max_s: f64,
    /// Joins every node knew by the end.
    pub joins_converged: u32,
    /// Most distinct peers one node sent to during the whole run.
    pub max_peers_per_node: usize,
    /// Newcomers' pushes refused over the push budget, all nodes together (the view's rule,
    /// `Membership::screen_newcomer`, which the daemon applies too).
    pub pushes_over_budget: u64,
    /// Fraction of (node, position) placements equal to the placement over the full set,
    /// once the joins are old enough to be eligible.
    pub agreement: f64,
    /// When a join becomes eligible for selection, seconds after its announcement (worst).
    pub eligible_after_s: f64,
    /// Membership state per node, bytes per admitted identity (see `state_bytes_per_entry`).
    pub state_bytes_per_entry: u64,
    /// Simulated seconds of phase 2 (its messages include that long a stretch of anti-entropy).
    pub phase2_s: f64,
    pub wall_s: f64,
    pub events: u64,
}

/// Bytes one admitted identity costs a node as the machine stores it in its checkpoint: the
/// flat entry, its 64-byte signature and its serial index entry
/// (`grove_protocol::membership::CHECKPOINT_BYTES_PER_ENTRY`; `examples/membership_state.rs`
/// measures the process's resident memory for the same).
pub fn state_bytes_per_entry() -> u64 {
    CHECKPOINT_BYTES_PER_ENTRY as u64
}

enum Event {
    Deliver {
        from: u32,
        to: u32,
        message: MemberMessage,
    },
    Timer {
        node: u32,
    },
    Join {
        node: u32,
    },
}

const ISSUERS: u32 = 10;
const START_EPOCH: u64 = 5;

pub fn run(cfg: &MembershipRun) -> MembershipReport {
    let wall = Instant::now();
    let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed);
    let total = cfg.nodes + cfg.joins;
    let issuers: Vec<SigningKey> = (0..ISSUERS)
        .map(|i| {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_be_bytes());
            k[31] = 0x5e;
            SigningKey::from_bytes(&k)
        })
        .collect();
    let quota = total / ISSUERS + 1;
    let policy = AdmissionPolicy::new(
        issuers
            .iter()
            .map(|k| (IssuerKey(k.verifying_key().to_bytes()), quota))
            .collect(),
        cfg.min_age_epochs,
    )
    // Invariant: ten issuers (under MAX_ISSUERS) and a quota of nodes/10 + 1, under
    // MAX_ISSUER_QUOTA for any network below ten million nodes.
    .expect("ten issuers within the limits");
    let epoch_micros = cfg.config.epoch_micros;
    let start = Micros(START_EPOCH * epoch_micros);
    let ids: Vec<NodeId> = (0..total)
        .map(|i| {
            NodeId::from_public_bytes(&[&cfg.seed.to_be_bytes()[..], &i.to_be_bytes()].concat())
        })
        .collect();
    let index: BTreeMap<NodeId, u32> = ids
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, i as u32))
        .collect();
    let cert_of = |i: u32, epoch: u64| {
        Certificate::issue(
            &issuers[(i % ISSUERS) as usize],
            ids[i as usize],
            i / ISSUERS,
            epoch,
        )
    };
    let checkpoint = Arc::new(Checkpoint::new(0, (0..cfg.nodes).map(|i| cert_of(i, 0))));
    let verified = Arc::new(VerifiedCertificates::default());
    let mut machines: Vec<Membership> = (0..total)
        .map(|i| {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            let mut m = Membership::new(
                ids[i as usize],
                policy.clone(),
                cfg.config.clone(),
                checkpoint.clone(),
                seed,
                start,
            );
            m.share_verified(verified.clone());
            m
        })
        .collect();
    // Genesis certificates are in the checkpoint: the shared set need not hold them.

    let mut queue: BinaryHeap<Reverse<(Micros, u64, usize)>> = BinaryHeap::new();
    let mut events: Vec<Option<Event>> = Vec::new();
    let mut seq = 0u64;
    let mut push = |queue: &mut BinaryHeap<Reverse<(Micros, u64, usize)>>,
                    events: &mut Vec<Option<Event>>,
                    at: Micros,
                    ev: Event| {
        seq += 1;
        // Slots are reused: the queue holds indices into `events`.
        events.push(Some(ev));
        queue.push(Reverse((at, seq, events.len() - 1)));
    };
    for i in 0..cfg.nodes {
        let at = machines[i as usize].poll_timeout();
        push(&mut queue, &mut events, at, Event::Timer { node: i });
    }
    let rest_end = start.plus(cfg.rest_s * 1_000_000);
    let mut join_at = vec![Micros::MAX; cfg.joins as usize];
    for j in 0..cfg.joins {
        let at = rest_end.plus(rng.next_u64() % (cfg.join_spread_s * 1_000_000).max(1));
        join_at[j as usize] = at;
        push(
            &mut queue,
            &mut events,
            at,
            Event::Join {
                node: cfg.nodes + j,
            },
        );
    }
    let end = rest_end.plus(cfg.max_s * 1_000_000);

    let mut know_count = vec![0u32; cfg.joins as usize];
    let mut converged_at = vec![Micros::MAX; cfg.joins as usize];
    let mut active = vec![false; total as usize];
    for a in active.iter_mut().take(cfg.nodes as usize) {
        *a = true;
    }
    let (mut rest_msgs, mut rest_bytes, mut join_msgs, mut join_bytes) = (0u64, 0u64, 0u64, 0u64);
    let mut peers: Vec<std::collections::BTreeSet<u32>> = vec![Default::default(); total as usize];
    let mut processed = 0u64;
    let mut all_converged_at = Micros::MAX;
    let mut last_now = start;

    while let Some(Reverse((now, _, slot))) = queue.pop() {
        if now > end {
            break;
        }
        let Some(ev) = events[slot].take() else {
            continue;
        };
        processed += 1;
        let rearm = !matches!(ev, Event::Deliver { .. });
        let node = match ev {
            Event::Deliver { from, to, message } => {
                if !active[to as usize] {
                    continue;
                }
                let _ = machines[to as usize].handle_message(ids[from as usize], message, now);
                to
            }
            Event::Timer { node } => {
                machines[node as usize].handle_timeout(now);
                node
            }
            Event::Join { node } => {
                active[node as usize] = true;
                let epoch = now.0 / epoch_micros;
                let _ = machines[node as usize].announce(cert_of(node, epoch), now);
                node
            }
        };
        // Drain the machine's outputs.
        while let Some(out) = machines[node as usize].poll_output() {
            match out {
                MemberOutput::Send { to, message } => {
                    let Some(&to) = index.get(&to) else { continue };
                    let bytes = postcard::to_allocvec(&message)
                        .map(|b| b.len())
                        .unwrap_or(0) as u64;
                    if now < rest_end {
                        rest_msgs += 1;
                        rest_bytes += bytes;
                    } else {
                        join_msgs += 1;
                        join_bytes += bytes;
                    }
                    peers[node as usize].insert(to);
                    if rng.next_u32() % 100 < cfg.loss_percent {
                        continue;
                    }
                    let span = cfg.latency_max_ms.saturating_sub(cfg.latency_min_ms) * 1000 + 1;
                    let at = now.plus(cfg.latency_min_ms * 1000 + rng.next_u64() % span);
                    push(
                        &mut queue,
                        &mut events,
                        at,
                        Event::Deliver {
                            from: node,
                            to,
                            message,
                        },
                    );
                }
                MemberOutput::Admitted { node: admitted } => {
                    if let Some(&a) = index.get(&admitted) {
                        if a >= cfg.nodes {
                            let j = (a - cfg.nodes) as usize;
                            know_count[j] += 1;
                            if know_count[j] == total && converged_at[j] == Micros::MAX {
                                converged_at[j] = now;
                            }
                        }
                    }
                }
            }
        }
        if rearm {
            let next = machines[node as usize].poll_timeout().max(now.plus(1));
            push(&mut queue, &mut events, next, Event::Timer { node });
        }
        if all_converged_at == Micros::MAX
            && cfg.joins > 0
            && converged_at.iter().all(|t| *t != Micros::MAX)
        {
            all_converged_at = now;
        }
        last_now = now;
        if all_converged_at != Micros::MAX {
            break;
        }
    }
    let phase2_s = last_now.0.saturating_sub(rest_end.0) as f64 / 1e6;

    // Placement agreement once every join is old enough to be eligible.
    let latest_join_epoch = join_at
        .iter()
        .map(|t| t.0 / epoch_micros)
        .max()
        .unwrap_or(START_EPOCH);
    let eligible_epoch = latest_join_epoch + cfg.min_age_epochs;
    let truth_node = (0..total as usize)
        .find(|i| machines[*i].recent_len() == cfg.joins as usize)
        .unwrap_or(0);
    let sel_seed = beacon_seed(&mut rng);
    let truth: Vec<Option<NodeId>> = (0..cfg.agreement_positions)
        .map(|p| machines[truth_node].select(&sel_seed, p, eligible_epoch))
        .collect();
    let mut same = 0u64;
    let mut compared = 0u64;
    for _ in 0..cfg.agreement_nodes {
        let n = (rng.next_u64() % u64::from(total)) as usize;
        for (p, t) in truth.iter().enumerate() {
            compared += 1;
            if machines[n].select(&sel_seed, p as u64, eligible_epoch) == *t {
                same += 1;
            }
        }
    }
    let mut times: Vec<f64> = converged_at
        .iter()
        .zip(&join_at)
        .filter(|(c, _)| **c != Micros::MAX)
        .map(|(c, j)| (c.0 - j.0) as f64 / 1e6)
        .collect();
    times.sort_by(f64::total_cmp);
    let eligible_after_s = join_at
        .iter()
        .map(|j| {
            let e = j.0 / epoch_micros + cfg.min_age_epochs;
            (e * epoch_micros).saturating_sub(j.0) as f64 / 1e6
        })
        .fold(0.0, f64::max);
    let nodes_f = f64::from(cfg.nodes);
    MembershipReport {
        nodes: cfg.nodes,
        joins: cfg.joins,
        rest_messages_per_node_s: rest_msgs as f64 / nodes_f / cfg.rest_s.max(1) as f64,
        rest_bytes_per_node_s: rest_bytes as f64 / nodes_f / cfg.rest_s.max(1) as f64,
        join_messages_per_node_per_join: join_msgs as f64
            / f64::from(total)
            / f64::from(cfg.joins.max(1)),
        join_bytes_per_node_per_join: join_bytes as f64
            / f64::from(total)
            / f64::from(cfg.joins.max(1)),
        converge_median_s: times.get(times.len() / 2).copied().unwrap_or(f64::NAN),
        converge_max_s: times.last().copied().unwrap_or(f64::NAN),
        joins_converged: times.len() as u32,
        max_peers_per_node: peers.iter().map(|p| p.len()).max().unwrap_or(0),
        pushes_over_budget: machines.iter().map(|m| m.stats().refused_over_budget).sum(),
        agreement: same as f64 / compared.max(1) as f64,
        eligible_after_s,
        state_bytes_per_entry: state_bytes_per_entry(),
        phase2_s,
        wall_s: wall.elapsed().as_secs_f64(),
        events: processed,
    }
}

/// The header of [`table_row`]'s Markdown table.
pub const TABLE_HEADER: &str = "| nodes | joins | rest msg/node/s | rest B/node/s | burst msg/node/join | burst B/node/join | burst s | converge median s | converge max s | converged | max peers/node | over budget | agreement | eligible after s | state B/identity | events | wall s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// A local drand chain (quicknet's scheme, a round every 3 s from time zero) with its key
/// drawn from the run's stream, and the `Beacon` a node verifies its rounds with.
fn test_beacon(
    rng: &mut ChaCha20Rng,
) -> (
    grove_protocol::beacon::TestChain,
    grove_protocol::beacon::Beacon,
) {
    use grove_protocol::beacon::{Beacon, Scheme, TestChain};
    let mut key = [0u8; 32];
    rng.fill_bytes(&mut key);
    let chain = TestChain::new(Scheme::BlsUnchainedG1Rfc9380, &key, 0, 3);
    // The test chain's own parameters describe a valid chain.
    let beacon = Beacon::new(chain.info()).expect("a test chain's info is valid");
    (chain, beacon)
}

/// The selection seed, drawn as a deployment draws it: a round of a local drand chain (its key
/// and the round drawn from the run's seed), verified as a node verifies it, hashed into a
/// plan seed (`grove_protocol::beacon::plan_seed`; no request in this run: empty bytes).
fn beacon_seed(rng: &mut ChaCha20Rng) -> [u8; 32] {
    use grove_protocol::beacon::plan_seed;
    let (chain, beacon) = test_beacon(rng);
    let info = beacon.info().clone();
    let round = 1 + rng.next_u64() % 1_000_000;
    // A round signed with the chain's own key verifies under it.
    let randomness = beacon
        .verify(round, &chain.round(round))
        .expect("the test chain's round verifies");
    plan_seed(&[], &info.chain_hash, round, &randomness)
}

/// One report as a Markdown table row.
pub fn table_row(r: &MembershipReport) -> String {
    format!(
        "| {} | {} | {:.3} | {:.1} | {:.2} | {:.0} | {:.1} | {:.2} | {:.2} | {}/{} | {} | {} | {:.5} | {:.0} | {} | {} | {:.1} |",
        r.nodes,
        r.joins,
        r.rest_messages_per_node_s,
        r.rest_bytes_per_node_s,
        r.join_messages_per_node_per_join,
        r.join_bytes_per_node_per_join,
        r.phase2_s,
        r.converge_median_s,
        r.converge_max_s,
        r.joins_converged,
        r.joins,
        r.max_peers_per_node,
        r.pushes_over_budget,
        r.agreement,
        r.eligible_after_s,
        r.state_bytes_per_entry,
        r.events,
        r.wall_s
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small network converges: every join reaches every node, no node talks to more than
    /// twice its routing set, and every sampled node places every position like the full view.
    #[test]
    fn a_burst_of_joins_converges_at_small_scale() {
        let mut run = MembershipRun::new(300, 5, 7);
        run.rest_s = 20;
        run.agreement_nodes = 50;
        run.agreement_positions = 500;
        let r = super::run(&run);
        assert_eq!(r.joins_converged, 5, "{r:?}");
        assert!(
            r.max_peers_per_node <= 2 * grove_protocol::limits::MAX_ROUTING_PEERS,
            "{r:?}"
        );
        assert_eq!(r.agreement, 1.0, "{r:?}");
        assert!(r.rest_bytes_per_node_s > 0.0);
    }

    /// 1,000 to 100,000 nodes: `GROVE_MEMBERSHIP_SCALE=1` (minutes at 100,000).
    #[test]
    fn membership_costs_at_scale() {
        if std::env::var("GROVE_MEMBERSHIP_SCALE").is_err() {
            return;
        }
        println!("{TABLE_HEADER}");
        for n in [1_000, 10_000, 100_000] {
            let r = super::run(&MembershipRun::new(n, 20, 1));
            println!("{}", table_row(&r));
        }
    }
}
