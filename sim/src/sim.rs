//! The discrete-event core: one binary heap of events ordered by `(time, sequence)`, the real
//! Grove engine at every node driven by the drain rule, and the network, CPU and failure
//! models around it.
//!
//! The life of a message: the sender's engine emits `Output::Send` while it is being drained;
//! the message first costs the sender CPU time (crypto and per-kB compute), then waits for the
//! sender's uplink (messages leave one after the other), then travels for one latency draw. Its
//! first byte reaches the receiver's downlink (`Arrive`), which also takes messages one after
//! the other; once the last byte is in (`Received`) the message waits in the receiver's CPU
//! queue, costs CPU time, and only then is handed to the receiver's engine (`CpuDone`). Timer
//! expiries go through the same CPU queue at no cost, so a busy node also handles its timers
//! late, like a real single-threaded node.

use crate::byzantine;
use crate::config::{PayloadMode, SimConfig};
use crate::models::{
    charged_bytes, contribute_us, detection_timeout_us, persist_us, receive_us, record_bytes,
    send_us, transfer_bytes, transfer_us, vectors_carried, Carried, SimRng,
};
use crate::queue::RadixQueue;
use crate::report::{Checks, DpCheck, Outcome, RoleTraffic, RunReport, Summary};
use ed25519_dalek::SigningKey;
use grove_protocol::beacon::{Beacon, Round, Scheme, TestChain};
use grove_protocol::check::{self, Holdings, Subject, Versions};
use grove_protocol::codec;
use grove_protocol::dp;
use grove_protocol::drain::{self, Effects};
use grove_protocol::encoding::ContributionSpec;
use grove_protocol::engine::{
    sign_finish, Command, Engine, Event, Failure, Identity, Released, Strategy,
};
use grove_protocol::field::Fp;
use grove_protocol::harness::{sign_votes, Byzantine};
use grove_protocol::ids::{hash_parts, ComputationId, Digest, GroupId, Micros, NodeId, Position};
use grove_protocol::message::{Body, Message};
use grove_protocol::plan::{PeerKeys, Plan, PlanCache};
use grove_protocol::record::Record;
use grove_protocol::request::{
    BeaconRef, CommissionerKey, PrivacyParams, Request, SignedRequest, Timeouts, TreeParams,
    VerifiedSignatures,
};
use grove_protocol::seal::{self, Envelope, NoiseEnvelope, PlainEnvelope, SealError};
use grove_protocol::snapshot::DirectorySnapshot;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

/// When the commissioner launches, in virtual time.
pub const LAUNCH_AT: Micros = Micros(1_000_000);

/// Index of a node in the simulation.
type Ix = u32;

/// The commissioner is always node 0: it never contributes and never fails.
const COMMISSIONER: Ix = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Launch,
    /// The first byte of message `msg` reaches the downlink of its receiver.
    Arrive {
        msg: u32,
    },
    /// The last byte of message `msg` is in: it joins the receiver's CPU queue.
    Received {
        msg: u32,
    },
    /// The sender of the message of acknowledgement slot `ack` gives up waiting for the
    /// acknowledgement, unless it came.
    AckDeadline {
        ack: u32,
    },
    /// The node finished the CPU work of the input at the head of its queue.
    CpuDone {
        node: Ix,
        incarnation: u32,
    },
    /// The node finished the CPU work of producing its sends.
    CpuFree {
        node: Ix,
        incarnation: u32,
    },
    /// The node's timer, if it is still armed for this event's time.
    Timer {
        node: Ix,
        incarnation: u32,
    },
    Crash {
        node: Ix,
    },
    Rejoin {
        node: Ix,
    },
    /// `failures.oracle`: the nodes that wait on `dead` learn that it failed; `held` says
    /// whether it held data (shares or partial sums) when it died.
    Oracle {
        dead: Ix,
        held: bool,
    },
    /// The beacon round a node's engine waits for is published: its driver fetches it.
    RoundOut {
        node: Ix,
        incarnation: u32,
    },
}

/// The randomness beacon of a run: a local drand chain (quicknet's scheme, a round every 3 s)
/// whose key is drawn from the run's seed, its genesis at [`LAUNCH_AT`], so that the round the
/// request names is published at the launch. Every engine verifies rounds with the one shared
/// [`Beacon`] (which runs the pairing once per round) and plans from
/// `plan::request_seed(request, randomness)`, as in the daemon.
struct SimBeacon {
    chain: TestChain,
    beacon: Arc<Beacon>,
    /// Rounds signed so far, by number.
    rounds: BTreeMap<u64, Round>,
}

impl SimBeacon {
    const PERIOD_SECS: u32 = 3;

    fn new(seed: u64) -> SimBeacon {
        // Its own stream: the run's other draws stay those of a run without a beacon.
        let key = hash_parts("grove-sim/beacon-key", &[&seed.to_le_bytes()]);
        let chain = TestChain::new(
            Scheme::BlsUnchainedG1Rfc9380,
            &key,
            LAUNCH_AT.0 / 1_000_000,
            Self::PERIOD_SECS,
        );
        // A test chain's own parameters describe a valid chain.
        let beacon = Arc::new(Beacon::new(chain.info()).expect("a test chain's info is valid"));
        SimBeacon {
            chain,
            beacon,
            rounds: BTreeMap::new(),
        }
    }

    fn round(&mut self, round: u64) -> Round {
        let chain = &self.chain;
        self.rounds
            .entry(round)
            .or_insert_with(|| chain.round(round))
            .clone()
    }
}

/// One message on its way.
struct InFlight {
    from: Ix,
    to: Ix,
    /// The real codec encoding (shared between the receivers of a broadcast).
    bytes: Arc<[u8]>,
    /// Bytes charged on the links (the declared vector length in size-only mode), and the
    /// vectors the CPU model charges.
    carried: Carried,
    /// When the sender's engine produced it (its CPU then works on it first, then its uplink
    /// carries it), and when its last byte left. A sender that dies in between never sends it.
    created_at: Micros,
    up_end: Micros,
    /// When its last byte would be in at the receiver if the downlink were free.
    wire_end: Micros,
    kind: &'static str,
    /// The acknowledgement slot of a unicast message, and its generation.
    ack: Option<(u32, u32)>,
}

/// A unicast message whose sender waits for an acknowledgement (failure detection by timeout).
struct Ack {
    from: Ix,
    to: Ix,
    from_incarnation: u32,
    bytes: Arc<[u8]>,
    /// Bumped when the slot is reused, so that a late acknowledgement of an earlier message
    /// cannot mark a later one.
    generation: u32,
    /// The acknowledgement's way back: the forward message's latency draw.
    back_us: u64,
    /// When the acknowledgement reaches the sender.
    acked_at: Option<Micros>,
}

enum Input {
    Message {
        from: Ix,
        message: Message,
        /// The acknowledgement slot and generation (unicast messages).
        ack: Option<(u32, u32)>,
    },
    /// The transport tells the sender that `message` could not be delivered to `to`.
    Unreachable {
        to: Ix,
        message: Message,
    },
    Timer,
    /// The failure oracle tells this node that `dead` failed.
    FailureNotice {
        dead: Ix,
    },
}

struct SimNode {
    identity: Identity,
    engine: Option<Engine>,
    incarnation: u32,
    /// Records persisted so far (kept only when nodes may rejoin).
    durable: Vec<Record>,
    timer: Option<Micros>,
    inbox: VecDeque<(Input, u64)>,
    current: Option<Input>,
    cpu_busy: bool,
    uplink_free: Micros,
    downlink_free: Micros,
    /// When the bytes it handed over so far would have left an uplink of the detection's
    /// minimum rate: the daemon's count of the bytes ahead of a new send
    /// (`detection_counts_vector`, `PendingSends::deadline`).
    virtual_uplink_free: Micros,
    last_crash: Option<Micros>,
    busy_us: u64,
    /// Whether this node received a share or a partial sum (it held data for a position).
    held_data: bool,
    /// Whether a share or a partial sum was sent to it (its children finished their work).
    data_sent_to: bool,
    shares_sent: u32,
    contribution: Option<Vec<f64>>,
    /// The seed and vector of its `Record::Contribution` (its values plus, with differential
    /// privacy, its own noise): what the protocol must sum exactly.
    persisted: Option<([u8; 32], Vec<Fp>)>,
    kill_after_send: Option<String>,
}

/// Counters of one run.
#[derive(Default)]
struct Counters {
    events: u64,
    by_kind: BTreeMap<&'static str, (u64, u64)>,
    dropped_at_dead: u64,
    dropped_sender_died: u64,
    unreachable_notices: u64,
    /// Timeouts that fired although the receiver was alive (it had not handled the message
    /// yet): the sender failed over a message that was delivered.
    spurious_timeouts: u64,
    oracle_notices: u64,
    crashes: u64,
    rejoins: u64,
    heals_done: u64,
    heals_given_up: u64,
    rejected: u64,
    rejected_samples: Vec<String>,
    /// First and last time a manifest was adopted, per level.
    adopted_at: BTreeMap<u8, (Micros, Micros)>,
    /// When the last byte of the last share left its contributor.
    last_share_sent: Micros,
}

/// One simulation run.
pub struct Simulator {
    cfg: SimConfig,
    seed: u64,
    now: Micros,
    /// Events by `(time, sequence)`: the time in the key's high 64 bits.
    queue: RadixQueue<Action>,
    seq: u64,
    rng: SimRng,
    nodes: Vec<SimNode>,
    index: HashMap<NodeId, Ix>,
    /// One memo of plans for every engine (they plan the same request over the same directory).
    plans: Arc<PlanCache>,
    /// Every node's id and key: the directory the request is planned over.
    directory: DirectorySnapshot,
    in_flight: Vec<Option<InFlight>>,
    free_slots: Vec<u32>,
    acks: Vec<Ack>,
    free_acks: Vec<u32>,
    commissioner_key: SigningKey,
    request: Option<Request>,
    plan: Option<Arc<Plan>>,
    /// Manifests adopted, and the agreement checker: every position of a group must adopt
    /// the same one.
    versions: Versions,
    holdings: Holdings,
    violations: Vec<String>,
    released: Option<grove_protocol::engine::Released>,
    failure: Option<String>,
    counters: Counters,
    trace: Sha256,
    keep_records: bool,
    /// `GROVE_SIM_TRACE` set: every message but shares and declines, every crash and every
    /// engine event goes to standard error, one line each (for following one seed by hand).
    debug_trace: bool,
    gossip_hops: u32,
    /// Engine vector length: the declared one, or 1 in size-only mode.
    engine_len: u32,
    /// The recovery strategy every engine plays (set at launch, with the leaf rosters).
    strategy: Strategy,
    /// The computation id of a run on a given network ([`Fixture`]).
    fixed_id: Option<ComputationId>,
    /// How every engine seals shares: Noise in full mode, [`SimEnvelope`] in size-only mode.
    envelope: Arc<dyn Envelope>,
    /// Request signatures the engines already checked (see `VerifiedSignatures`).
    verified: Arc<VerifiedSignatures>,
    /// The beacon the plan is seeded from; `None` on a [`Fixture`] (the parity test's daemons
    /// run without one, and their request names no round).
    beacon: Option<SimBeacon>,
    /// CPU time of `new`, over every thread it used.
    setup_cpu_s: f64,
    /// Contributors per leaf group (for the failure oracle's notices).
    leaf_contributors: HashMap<GroupId, Vec<Ix>>,
    /// The most contributors a version the root group adopted sums.
    root_count: Option<u64>,
    /// Byzantine nodes and how they lie (`[byzantine]`, drawn at launch; `byzantine.rs`).
    liars: BTreeMap<Ix, Byzantine>,
    /// Liars that made their first send (and with it their votes ahead).
    liars_started: BTreeSet<Ix>,
    /// Root positions the commissioner named faulty (its release's `excluded`, or its failure).
    named_root_positions: Vec<Position>,
    /// Validity proofs' costs per contribution (`[validity]`), if charged.
    validity: Option<crate::models::ValidityLoad>,
}

/// A network given from outside instead of drawn from the seed: the parity test runs the
/// simulator on the node ids, contributions and computation id of a real network, so that the
/// plan (a function of the ids and the request) and the contributor set are the same. Node 0 is
/// the commissioner; the X25519 keys stay the seed's (the plan does not depend on them).
#[derive(Clone, Debug)]
pub struct Fixture {
    pub nodes: Vec<NodeId>,
    /// Each node's contribution (`payload.vector_len` values), `None` for non-contributors.
    pub values: Vec<Option<Vec<f64>>>,
    pub computation: ComputationId,
}

impl Simulator {
    /// Builds the network: identities, the directory and one engine per node.
    pub fn new(cfg: &SimConfig, seed: u64) -> Result<Simulator, String> {
        cfg.check()?;
        let cpu = crate::report::thread_cpu_s();
        let mut rng = SimRng::new(seed);
        let n = cfg.network.nodes as usize;
        let (peers, helpers_cpu_s) = identities(seed, n);
        let index: HashMap<NodeId, Ix> = peers
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (id.node, i as Ix))
            .collect();
        if index.len() != n {
            return Err("two nodes drew the same id".into());
        }
        let mut key_seed = [0u8; 32];
        rng.fill(&mut key_seed);
        let commissioner_key = SigningKey::from_bytes(&key_seed);
        let directory =
            DirectorySnapshot::new(peers.iter().map(|(id, keys)| (id.node, *keys)).collect());
        let plans = Arc::new(PlanCache::default());
        let keep_records = cfg.failures.churn.mean_up_s > 0.0 && cfg.failures.churn.rejoin;
        let envelope: Arc<dyn Envelope> = match cfg.payload.mode {
            PayloadMode::Full => Arc::new(NoiseEnvelope),
            PayloadMode::SizeOnly => Arc::new(SimEnvelope::new(
                peers
                    .iter()
                    .map(|(id, keys)| (id.x25519_secret, keys.x25519)),
            )),
        };
        // Every engine checks the request's signature; the curve arithmetic runs once.
        let verified = Arc::new(VerifiedSignatures::default());
        let beacon = SimBeacon::new(seed);
        let mut nodes = Vec::with_capacity(n);
        for (i, (identity, _)) in peers.into_iter().enumerate() {
            let engine = Engine::new(identity.clone(), engine_seed(seed, i, 0), plans.clone())
                .with_envelope(envelope.clone())
                .with_verified_signatures(verified.clone());
            let engine = if cfg.protocol.beacon {
                engine.with_beacon(beacon.beacon.clone())
            } else {
                engine
            };
            nodes.push(SimNode {
                identity,
                engine: Some(engine),
                incarnation: 0,
                durable: Vec::new(),
                timer: None,
                inbox: VecDeque::new(),
                current: None,
                cpu_busy: false,
                uplink_free: Micros::ZERO,
                downlink_free: Micros::ZERO,
                virtual_uplink_free: Micros::ZERO,
                last_crash: None,
                busy_us: 0,
                held_data: false,
                data_sent_to: false,
                shares_sent: 0,
                contribution: None,
                persisted: None,
                kill_after_send: None,
            });
        }
        let engine_len = match cfg.payload.mode {
            PayloadMode::Full => cfg.payload.vector_len,
            PayloadMode::SizeOnly => 1,
        };
        // Contributors: an exact count, drawn without replacement among nodes 1..n.
        let mut others: Vec<Ix> = (1..n as Ix).collect();
        let k = cfg.contributors() as usize;
        for i in 0..k {
            let j = i + (rng.next_u64() % (others.len() - i) as u64) as usize;
            others.swap(i, j);
        }
        // Values come from their own stream (derived from the same seed), so that the other
        // draws do not depend on the vector length and both payload modes see the same
        // latencies and failures.
        let max_abs = cfg.payload.value_max_abs.floor().max(0.0);
        let mut values_rng = SimRng::new(u64::from_le_bytes(
            hash_parts("grove-sim/values", &[&seed.to_le_bytes()])[..8]
                .try_into()
                .unwrap_or([0; 8]),
        ));
        // Element 0 is the contributor's indicator (`ContributionSpec::counted`): 1.
        for &c in &others[..k] {
            let values: Vec<f64> = (1..engine_len)
                .map(|_| (values_rng.unit() * (2.0 * max_abs + 1.0)).floor() - max_abs)
                .collect();
            nodes[c as usize].contribution = Some(ContributionSpec::counted_values(&values));
        }
        let gossip_hops = grove_protocol::planner::gossip_hops(n as u64, cfg.gossip.fanout);
        let validity = cfg
            .validity
            .map(|v| {
                let p = &cfg.payload;
                let params = grove_protocol::sharing::SharingParams {
                    g: cfg.protocol.g,
                    t: cfg.protocol.t,
                };
                // The engine proves the declared vector's noise too, at the declared length
                // (in size-only mode the engines' own vectors are one element long).
                let noise = cfg.noise_spec(p.vector_len)?;
                crate::models::ValidityLoad::of(
                    p.vector_len,
                    p.value_max_abs,
                    noise.as_ref(),
                    params,
                    &v,
                )
            })
            .transpose()?;
        let mut sim = Simulator {
            cfg: cfg.clone(),
            seed,
            now: Micros::ZERO,
            queue: RadixQueue::default(),
            seq: 0,
            rng,
            nodes,
            index,
            plans,
            directory,
            in_flight: Vec::new(),
            free_slots: Vec::new(),
            acks: Vec::new(),
            free_acks: Vec::new(),
            commissioner_key,
            request: None,
            plan: None,
            leaf_contributors: HashMap::new(),
            root_count: None,
            liars: BTreeMap::new(),
            liars_started: BTreeSet::new(),
            named_root_positions: Vec::new(),
            validity,
            versions: Versions::default(),
            holdings: Holdings::default(),
            violations: Vec::new(),
            released: None,
            failure: None,
            counters: Counters::default(),
            trace: Sha256::new(),
            keep_records,
            debug_trace: std::env::var_os("GROVE_SIM_TRACE").is_some(),
            gossip_hops,
            engine_len,
            strategy: Strategy::new(cfg.protocol.strategy.kind())
                .with_send_ahead(cfg.protocol.send_ahead),
            fixed_id: None,
            envelope,
            verified,
            beacon: cfg.protocol.beacon.then_some(beacon),
            setup_cpu_s: 0.0,
        };
        sim.schedule(LAUNCH_AT, Action::Launch);
        sim.schedule_failures();
        sim.setup_cpu_s = crate::report::thread_cpu_s() - cpu + helpers_cpu_s;
        Ok(sim)
    }

    /// A simulator on a given network (see [`Fixture`]); every model and failure comes from
    /// `cfg` and `seed` as in [`Simulator::new`]. Needs `network.nodes` ids, `payload.mode =
    /// "full"`, and values of `payload.vector_len` elements.
    pub fn with_fixture(
        cfg: &SimConfig,
        seed: u64,
        fixture: &Fixture,
    ) -> Result<Simulator, String> {
        let mut sim = Simulator::new(cfg, seed)?;
        let n = sim.nodes.len();
        if fixture.nodes.len() != n || fixture.values.len() != n {
            return Err(format!(
                "the fixture must give {n} node ids and {n} contributions"
            ));
        }
        if fixture.values[0].is_some() {
            return Err("node 0 is the commissioner and never contributes".into());
        }
        if fixture
            .values
            .iter()
            .flatten()
            .any(|v| v.len() != sim.engine_len as usize)
        {
            return Err(format!(
                "every contribution needs {} values",
                sim.engine_len
            ));
        }
        let mut directory = Vec::with_capacity(n);
        for (i, node) in fixture.nodes.iter().enumerate() {
            sim.nodes[i].identity.node = *node;
            directory.push((*node, sim.nodes[i].identity.keys()));
        }
        sim.index = fixture
            .nodes
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i as Ix))
            .collect();
        if sim.index.len() != n {
            return Err("the fixture names a node twice".into());
        }
        sim.directory = DirectorySnapshot::new(directory);
        sim.plans = Arc::new(PlanCache::default());
        for (i, values) in fixture.values.iter().enumerate() {
            let engine = Engine::new(
                sim.nodes[i].identity.clone(),
                engine_seed(seed, i, 0),
                sim.plans.clone(),
            );
            sim.nodes[i].engine = Some(engine);
            sim.nodes[i].contribution = values.clone();
        }
        sim.fixed_id = Some(fixture.computation);
        sim.beacon = None;
        Ok(sim)
    }

    fn schedule(&mut self, at: Micros, action: Action) {
        self.seq += 1;
        self.queue
            .push(u128::from(at.0) << 64 | u128::from(self.seq), action);
    }

    fn horizon(&self) -> Micros {
        LAUNCH_AT.plus((self.cfg.run.max_sim_s * 1e6) as u64)
    }

    /// Draws every failure of the run up front, from the run's one random stream.
    fn schedule_failures(&mut self) {
        let horizon = self.horizon();
        let uniform = self.cfg.failures.uniform;
        if uniform.rate_percent_per_s > 0.0 {
            let window_us = 100.0 / uniform.rate_percent_per_s * 1e6;
            for node in 1..self.nodes.len() as Ix {
                if self.rng.unit() < uniform.probability {
                    let at = LAUNCH_AT.plus((self.rng.unit() * window_us) as u64);
                    if at <= horizon {
                        self.schedule(at, Action::Crash { node });
                    }
                }
            }
        }
        let churn = self.cfg.failures.churn;
        if churn.mean_up_s > 0.0 {
            for node in 1..self.nodes.len() as Ix {
                let mut at = LAUNCH_AT;
                loop {
                    at = at.plus((self.rng.exponential(churn.mean_up_s) * 1e6) as u64);
                    if at > horizon {
                        break;
                    }
                    self.schedule(at, Action::Crash { node });
                    if !churn.rejoin {
                        break;
                    }
                    at = at.plus((self.rng.exponential(churn.mean_down_s) * 1e6) as u64);
                    if at > horizon {
                        break;
                    }
                    self.schedule(at, Action::Rejoin { node });
                }
            }
        }
    }

    fn build_request(&mut self) -> Request {
        let p = &self.cfg.protocol;
        let ms = |v: f64| (v * 1000.0).round() as u64;
        let to = &p.timeouts;
        let mut id = [0u8; 32];
        self.rng.fill(&mut id);
        let id = self.fixed_id.unwrap_or(ComputationId(id));
        let max_contributors = u64::from(self.cfg.contributors()).max(1);
        let bound = self.cfg.payload.value_max_abs.max(1.0);
        let mut contribution = declared_spec(self.engine_len, bound);
        // Invariant: `SimConfig::check` (run by `new`) calibrated this same noise already.
        contribution.noise = self.cfg.noise_spec(self.engine_len).unwrap_or(None);
        // With the beacon, the commissioner signs the request just before a round is out and
        // names that round; as in the daemon, the share window gets the wait for the round
        // (here 1 us) on top. The wait a deployment adds (up to a period) is not simulated.
        let (created_at, beacon) = match &self.beacon {
            Some(b) => {
                let created_at = Micros(self.now.0.saturating_sub(1));
                let round = b.beacon.first_round_after(created_at);
                let wait = b.beacon.round_time(round).0.saturating_sub(created_at.0);
                let named = BeaconRef {
                    chain_hash: b.beacon.info().chain_hash,
                    round,
                };
                (created_at, Some((named, wait)))
            }
            None => (self.now, None),
        };
        let wait = beacon.map_or(0, |(_, w)| w);
        Request {
            id,
            commissioner: CommissionerKey(self.commissioner_key.verifying_key().to_bytes()),
            commissioner_node: self.nodes[COMMISSIONER as usize].identity.node,
            directory: None,
            beacon: beacon.map(|(named, _)| named),
            created_at,
            deadline: created_at.plus((p.lifetime_s * 1e6) as u64),
            query: String::new(),
            contribution,
            max_contributors,
            privacy: PrivacyParams {
                g: p.g,
                t: p.t,
                k_min: p.k_min,
            },
            tree: TreeParams {
                leaf_groups: self.cfg.leaf_groups(),
                fan_in: p.fan_in,
                backups: p.backups,
                timeouts: Timeouts {
                    share_window: ms(to.share_window_ms) + wait,
                    collect_window: ms(to.collect_window_ms),
                    level_span: ms(to.level_span_ms),
                    report_window: ms(to.report_window_ms),
                    manifest_timeout: ms(to.manifest_timeout_ms),
                    heal_attempt: ms(to.heal_attempt_ms),
                    release_window: ms(to.release_window_ms),
                },
            },
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let request = self.build_request();
        // The seed every engine plans from: the round the request names, verified.
        let randomness = match (&mut self.beacon, &request.beacon) {
            (Some(b), Some(named)) => {
                let round = b.round(named.round);
                let randomness = b
                    .beacon
                    .verify(named.round, &round)
                    .map_err(|e| format!("beacon: {e}"))?;
                Some(randomness)
            }
            _ => None,
        };
        let plan = self
            .plans
            .plan(
                &request,
                &grove_protocol::plan::request_seed(&request, randomness.as_ref()),
                self.directory.digest(),
                self.directory.directory(),
            )
            .map_err(|e| format!("plan: {e}"))?;
        for kill in self.cfg.failures.kill.clone() {
            let group = GroupId {
                level: kill.level,
                index: kill.index,
            };
            if !plan.contains(group) || kill.position == 0 || kill.position > plan.g {
                return Err(format!("kill: no position {} of {group:?}", kill.position));
            }
            let member = plan.member(group, kill.position);
            let Some(&node) = self.index.get(&member) else {
                return Err(format!("kill: plan member {member} is not in the network"));
            };
            if let Some(at_ms) = kill.at_ms {
                self.schedule(
                    LAUNCH_AT.plus((at_ms * 1000.0) as u64),
                    Action::Crash { node },
                );
            } else {
                self.nodes[node as usize].kill_after_send = kill.after_send.clone();
            }
        }
        if self.cfg.protocol.leaf_roster {
            // DISSEC's leaf aggregators know their contributor list: count each leaf's.
            let mut roster = BTreeMap::new();
            for n in self.nodes.iter().filter(|n| n.contribution.is_some()) {
                *roster.entry(plan.leaf_of(&n.identity.node)).or_insert(0u32) += 1;
            }
            self.strategy = self.strategy.clone().with_leaf_roster(Arc::new(roster));
        }
        if self.strategy != Strategy::default() {
            for n in &mut self.nodes {
                n.engine = n
                    .engine
                    .take()
                    .map(|e| e.with_strategy(self.strategy.clone()));
            }
        }
        if self.cfg.failures.oracle {
            for (i, n) in self.nodes.iter().enumerate() {
                if n.contribution.is_some() {
                    let leaf = plan.leaf_of(&n.identity.node);
                    self.leaf_contributors
                        .entry(leaf)
                        .or_default()
                        .push(i as Ix);
                }
            }
        }
        if let Some(b) = &self.cfg.byzantine {
            let mut aggregators: Vec<Ix> = plan
                .groups()
                .flat_map(|g| (1..=plan.g).map(move |p| (g, p)))
                .filter_map(|(g, p)| self.index.get(&plan.member(g, p)).copied())
                .filter(|i| *i != COMMISSIONER)
                .collect();
            aggregators.sort_unstable();
            aggregators.dedup();
            self.liars = b.draw(self.seed, &aggregators).into_iter().collect();
        }
        self.plan = Some(plan);
        let id = request.id;
        let signed = SignedRequest::sign(request.clone(), &self.commissioner_key);
        let finish_signature = sign_finish(&id, &self.commissioner_key);
        self.request = Some(request);
        let now = self.now;
        let engine = self.nodes[COMMISSIONER as usize]
            .engine
            .as_mut()
            .ok_or("the commissioner is down at launch")?;
        engine
            .handle_command(
                now,
                Command::Launch {
                    request: Box::new(signed),
                    finish_signature,
                    directory: self.directory.clone(),
                },
            )
            .map_err(|e| format!("launch refused: {e}"))?;
        self.drain(COMMISSIONER, now);
        Ok(())
    }

    /// Runs to the end and reports.
    /// Runs to the end, or until the wall clock passes `wall_deadline` (then the report says
    /// so in `stopped` and carries what was measured so far).
    pub fn run(
        mut self,
        mut progress: impl FnMut(u64, Micros),
        wall_deadline: Option<Instant>,
    ) -> RunReport {
        let wall = Instant::now();
        let cpu = crate::report::thread_cpu_s();
        let horizon = self.horizon();
        let mut setup_error = None;
        let mut stopped = None;
        while let Some((key, action)) = self.queue.pop() {
            let at = Micros((key >> 64) as u64);
            if at > horizon {
                break;
            }
            self.now = self.now.max(at);
            self.counters.events += 1;
            if self.counters.events.is_multiple_of(65_536) {
                progress(self.counters.events, self.now);
                if wall_deadline.is_some_and(|d| Instant::now() >= d) {
                    stopped = Some(format!(
                        "wall-clock budget spent at simulated {:.3} s",
                        self.now.as_secs_f64() - LAUNCH_AT.as_secs_f64()
                    ));
                    break;
                }
            }
            if self.counters.events > self.cfg.run.max_events {
                self.failure = Some(format!(
                    "stopped after {} events (run.max_events): livelock?",
                    self.cfg.run.max_events
                ));
                break;
            }
            if let Err(e) = self.step(action, at) {
                setup_error = Some(e);
                break;
            }
            if self.cfg.run.stop_after_result && (self.released.is_some() || self.failure.is_some())
            {
                break;
            }
        }
        let wall_s = wall.elapsed().as_secs_f64();
        let cpu_s = crate::report::thread_cpu_s() - cpu;
        let setup_cpu_s = self.setup_cpu_s;
        let mut report = self.report(wall_s, setup_error);
        report.cpu_s = cpu_s;
        report.events_per_cpu_s = report.events as f64 / cpu_s.max(1e-9);
        report.setup_cpu_s = setup_cpu_s;
        report.stopped = stopped;
        report
    }

    fn step(&mut self, action: Action, at: Micros) -> Result<(), String> {
        match action {
            Action::Launch => self.launch()?,
            Action::Arrive { msg } => self.arrive(msg),
            Action::Received { msg } => self.received(msg),
            Action::AckDeadline { ack } => self.ack_deadline(ack),
            Action::CpuDone { node, incarnation } => {
                if self.nodes[node as usize].incarnation == incarnation {
                    self.cpu_done(node);
                }
            }
            Action::CpuFree { node, incarnation } => {
                if self.nodes[node as usize].incarnation == incarnation {
                    self.nodes[node as usize].cpu_busy = false;
                    self.start_next(node);
                }
            }
            Action::Timer { node, incarnation } => {
                let n = &mut self.nodes[node as usize];
                if n.incarnation == incarnation && n.timer == Some(at) && n.engine.is_some() {
                    n.timer = None;
                    self.enqueue(node, Input::Timer, 0);
                }
            }
            Action::Crash { node } => self.crash(node),
            Action::Rejoin { node } => self.rejoin(node),
            Action::RoundOut { node, incarnation } => {
                // Through the CPU queue, at no cost: the driver hands the round in after the
                // input it is working on (`drain` does, for every round then out).
                let n = &self.nodes[node as usize];
                if n.incarnation == incarnation && n.engine.is_some() {
                    self.enqueue(node, Input::Timer, 0);
                }
            }
            Action::Oracle { dead, held } => {
                // DISSEC cuts the subtree of a dead aggregator that held data, or whose
                // children had sent theirs by the time its replacement looks.
                let lost = held || self.nodes[dead as usize].data_sent_to;
                self.oracle(dead, lost)
            }
        }
        Ok(())
    }

    fn slot(&mut self, flight: InFlight) -> u32 {
        if let Some(i) = self.free_slots.pop() {
            self.in_flight[i as usize] = Some(flight);
            i
        } else {
            self.in_flight.push(Some(flight));
            (self.in_flight.len() - 1) as u32
        }
    }

    fn take(&mut self, msg: u32) -> Option<InFlight> {
        let f = self.in_flight[msg as usize].take();
        self.free_slots.push(msg);
        f
    }

    fn arrive(&mut self, msg: u32) {
        let Some(f) = self.in_flight[msg as usize].as_ref() else {
            return;
        };
        let to = f.to as usize;
        if self.nodes[to].engine.is_none() {
            // Nobody acknowledges it: its sender learns at its acknowledgement deadline.
            self.counters.dropped_at_dead += 1;
            // The share left its sender even though nobody received it.
            if let Some(f) = self.take(msg) {
                self.count_share_sent(&f);
            }
            return;
        }
        if !self.cfg.bandwidth.charge_downlink {
            // DISSEC's model: the transfer cost only the sender's uplink.
            self.schedule(f.wire_end, Action::Received { msg });
            return;
        }
        let down = transfer_us(f.carried.bytes, self.cfg.bandwidth.download_kb_per_s);
        let start = self.now.max(self.nodes[to].downlink_free);
        let end = start.plus(down).max(f.wire_end);
        self.nodes[to].downlink_free = end;
        self.schedule(end, Action::Received { msg });
    }

    /// Counts a contributor's share as sent once its last byte left a live sender.
    fn count_share_sent(&mut self, f: &InFlight) {
        if f.kind == "share" && !self.sender_died_mid_send(f) {
            self.nodes[f.from as usize].shares_sent += 1;
            self.counters.last_share_sent = self.counters.last_share_sent.max(f.up_end);
        }
    }

    fn sender_died_mid_send(&self, f: &InFlight) -> bool {
        self.nodes[f.from as usize]
            .last_crash
            .is_some_and(|c| c >= f.created_at && c < f.up_end)
    }

    fn received(&mut self, msg: u32) {
        let Some(f) = self.take(msg) else {
            return;
        };
        self.count_share_sent(&f);
        if self.sender_died_mid_send(&f) {
            self.counters.dropped_sender_died += 1;
            return;
        }
        if self.nodes[f.to as usize].engine.is_none() {
            // The receiver died while the message came in: no acknowledgement, as in `arrive`.
            self.counters.dropped_at_dead += 1;
            return;
        }
        self.trace.update(self.now.0.to_le_bytes());
        self.trace.update(f.from.to_le_bytes());
        self.trace.update(f.to.to_le_bytes());
        self.trace.update(&f.bytes[..]);
        match codec::decode(&f.bytes) {
            Ok(message) => {
                let mut cost = receive_us(&message, &f.carried, &self.cfg.cpu);
                if let (Body::Share(_), Some(v)) = (&message.body, self.validity) {
                    // The leaf member verifies and sends its verifier share to the g - 1
                    // others, in its batches (`VerifierShareMsg`: the entry's bytes; the
                    // batches' headers, shared by many contributors, and the wait for the
                    // others' shares are not modelled).
                    cost += v.verify_us;
                    let up = transfer_us(
                        v.verifier_bytes * u64::from(self.cfg.protocol.g - 1),
                        self.cfg.bandwidth.upload_kb_per_s,
                    );
                    let node = &mut self.nodes[f.to as usize];
                    node.uplink_free = node.uplink_free.max(self.now).plus(up);
                }
                let input = Input::Message {
                    from: f.from,
                    message,
                    ack: f.ack,
                };
                self.enqueue(f.to, input, cost);
            }
            Err(e) => self.reject(format!("node {}: undecodable bytes: {e}", f.to)),
        }
    }

    /// Opens an acknowledgement slot for a unicast message; returns it and its generation.
    fn open_ack(&mut self, from: Ix, to: Ix, bytes: Arc<[u8]>, back_us: u64) -> (u32, u32) {
        let from_incarnation = self.nodes[from as usize].incarnation;
        if let Some(i) = self.free_acks.pop() {
            let a = &mut self.acks[i as usize];
            let generation = a.generation.wrapping_add(1);
            *a = Ack {
                from,
                to,
                from_incarnation,
                bytes,
                generation,
                back_us,
                acked_at: None,
            };
            (i, generation)
        } else {
            self.acks.push(Ack {
                from,
                to,
                from_incarnation,
                bytes,
                generation: 0,
                back_us,
                acked_at: None,
            });
            ((self.acks.len() - 1) as u32, 0)
        }
    }

    /// The receiver's engine handled the message, and its drain ended at `done`: the
    /// acknowledgement leaves then and reaches the sender one latency later.
    fn acknowledge(&mut self, ack: (u32, u32), done: Micros) {
        let a = &mut self.acks[ack.0 as usize];
        if a.generation == ack.1 && a.acked_at.is_none() {
            a.acked_at = Some(done.plus(a.back_us));
        }
    }

    /// A sender's wait for an acknowledgement ends: if none came, the transport reports the
    /// message undeliverable to the sender's engine, which fails it over to the position's
    /// next candidate (a broadcast needs no failover: it is not addressed to a position).
    fn ack_deadline(&mut self, ack: u32) {
        let a = &mut self.acks[ack as usize];
        let (from, to, incarnation) = (a.from, a.to, a.from_incarnation);
        let acked = a.acked_at.is_some_and(|at| at <= self.now);
        let bytes = std::mem::replace(&mut a.bytes, Arc::from(Vec::new()));
        a.generation = a.generation.wrapping_add(1);
        self.free_acks.push(ack);
        if acked {
            return;
        }
        let sender = &self.nodes[from as usize];
        if sender.engine.is_none() || sender.incarnation != incarnation {
            return; // nobody waits any more
        }
        self.counters.unreachable_notices += 1;
        if self.nodes[to as usize].engine.is_some() {
            self.counters.spurious_timeouts += 1;
        }
        if self.debug_trace {
            eprintln!(
                "T {:.3} {from} timeout to {to}{}",
                self.now.0 as f64 / 1e6,
                if self.nodes[to as usize].engine.is_some() {
                    " (alive: spurious)"
                } else {
                    ""
                }
            );
        }
        if let Ok(message) = codec::decode(&bytes) {
            if message.to.is_some() {
                self.enqueue(from, Input::Unreachable { to, message }, 0);
            }
        }
    }

    fn enqueue(&mut self, node: Ix, input: Input, cost_us: u64) {
        self.nodes[node as usize].inbox.push_back((input, cost_us));
        if !self.nodes[node as usize].cpu_busy {
            self.start_next(node);
        }
    }

    fn start_next(&mut self, node: Ix) {
        let n = &mut self.nodes[node as usize];
        let Some((input, cost)) = n.inbox.pop_front() else {
            // Idle: give the queue's buffer back (most of a million nodes are idle).
            n.inbox = VecDeque::new();
            return;
        };
        n.cpu_busy = true;
        n.current = Some(input);
        n.busy_us += cost;
        let incarnation = n.incarnation;
        self.schedule(self.now.plus(cost), Action::CpuDone { node, incarnation });
    }

    fn cpu_done(&mut self, node: Ix) {
        let now = self.now;
        let Some(input) = self.nodes[node as usize].current.take() else {
            return;
        };
        let mut acked = None;
        match input {
            Input::Timer => {
                if let Some(engine) = self.nodes[node as usize].engine.as_mut() {
                    engine.handle_timeout(now);
                }
            }
            Input::FailureNotice { dead } => {
                let dead_id = self.nodes[dead as usize].identity.node;
                if let Some(engine) = self.nodes[node as usize].engine.as_mut() {
                    engine.handle_failure_notice(now, dead_id);
                }
            }
            Input::Unreachable { to, message } => {
                let to_id = self.nodes[to as usize].identity.node;
                if let Some(engine) = self.nodes[node as usize].engine.as_mut() {
                    engine.handle_unreachable(now, to_id, message);
                }
            }
            Input::Message { from, message, ack } => {
                if let Some(ack) = ack {
                    acked = Some(ack);
                }
                if matches!(
                    message.body,
                    Body::Share(_) | Body::Partial(_) | Body::PartialAhead(_) | Body::HealPart(_)
                ) {
                    self.nodes[node as usize].held_data = true;
                }
                let subject = self.observe(node, &message);
                let from_id = self.nodes[from as usize].identity.node;
                if let Some(engine) = self.nodes[node as usize].engine.as_mut() {
                    match message.body {
                        // The driver hands the engine its directory with each request.
                        Body::Request(signed) => engine.handle_request(
                            now,
                            from_id,
                            *signed,
                            Some(self.directory.clone()),
                        ),
                        _ => engine.handle_message(now, from_id, message),
                    }
                }
                if let Some((s, p)) = subject {
                    self.hold(node, s, p);
                }
            }
        }
        let free_at = self.drain(node, now);
        if let Some(ack) = acked {
            // Acknowledged once handled and whatever it caused persisted (as the daemon does).
            if self.nodes[node as usize].engine.is_some() {
                self.acknowledge(ack, free_at);
            }
        }
        let n = &mut self.nodes[node as usize];
        if n.engine.is_none() {
            return;
        }
        if free_at > now {
            let incarnation = n.incarnation;
            self.schedule(free_at, Action::CpuFree { node, incarnation });
        } else {
            n.cpu_busy = false;
            self.start_next(node);
        }
    }

    /// Drains the node's engine (the drain rule, [`drain::drain`]) and arms its timer. Its
    /// effects cost CPU one after the other from `now` ([`SimEffects`]); returns when the
    /// node's CPU is free again. A `failures.kill` after a send stops the drain.
    fn drain(&mut self, node: Ix, now: Micros) -> Micros {
        let Some(mut engine) = self.nodes[node as usize].engine.take() else {
            return now;
        };
        self.hand_rounds(node, &mut engine, now);
        let mut effects = SimEffects {
            sim: self,
            node,
            cpu_at: now,
            shared: false,
        };
        let drained = drain::drain(&mut engine, &mut effects);
        let cpu_at = effects.cpu_at;
        self.nodes[node as usize].engine = Some(engine);
        match drained {
            Ok(next_deadline) => {
                if let Some(d) = next_deadline {
                    let d = d.max(now);
                    let n = &mut self.nodes[node as usize];
                    if n.timer != Some(d) {
                        n.timer = Some(d);
                        let incarnation = n.incarnation;
                        self.schedule(d, Action::Timer { node, incarnation });
                    }
                }
            }
            Err(Killed) => self.crash(node),
        }
        cpu_at
    }

    /// The beacon rounds `engine` waits for, as the daemon's fetcher serves them: those
    /// published by `now` are handed in; for a later one, the node wakes when it is out.
    fn hand_rounds(&mut self, node: Ix, engine: &mut Engine, now: Micros) {
        let rounds = engine.awaited_rounds();
        let Some(b) = self.beacon.as_mut().filter(|_| !rounds.is_empty()) else {
            return;
        };
        let mut later = Vec::new();
        let mut refused = Vec::new();
        for r in rounds {
            let out = b.beacon.round_time(r);
            if out > now {
                later.push(out);
            } else if let Err(e) = engine.handle_beacon(now, b.round(r)) {
                refused.push(format!("node {node} refused beacon round {r}: {e}"));
            }
        }
        let incarnation = self.nodes[node as usize].incarnation;
        for out in later {
            self.schedule(out, Action::RoundOut { node, incarnation });
        }
        self.violations.extend(refused);
    }

    fn encode(&mut self, node: Ix, message: &Message) -> Option<Vec<u8>> {
        match codec::encode(message) {
            Ok(b) => Some(b),
            Err(e) => {
                self.violations
                    .push(format!("node {node} produced an unencodable message: {e}"));
                None
            }
        }
    }

    /// Queues one message on the sender's CPU and uplink; returns when the CPU is free.
    /// [`Simulator::transmit`], with the lies of a Byzantine sender (`byzantine.rs`): its
    /// votes ahead at its first send, then the message as it rewrites it, or nothing.
    fn transmit_as(&mut self, from: Ix, to: Ix, message: &Message, cpu_at: Micros) -> Micros {
        let Some(b) = self.liars.get(&from).cloned() else {
            return self.transmit(from, to, message, cpu_at);
        };
        let mut cpu_at = cpu_at;
        if self.liars_started.insert(from) {
            if let Some(plan) = self.plan.clone() {
                let me = self.nodes[from as usize].identity.node;
                for (to_id, mut m) in b.on_first_send(me, message.computation, &plan) {
                    sign_votes(&self.nodes[from as usize].identity, &mut m);
                    if let Some(&to_ix) = self.index.get(&to_id) {
                        cpu_at = self.transmit(from, to_ix, &m, cpu_at);
                    }
                }
            }
        }
        match b.rewrite(to as usize, message) {
            Some(mut m) => {
                // A liar signs its rewritten votes: they are refused as lies, not as forgeries.
                sign_votes(&self.nodes[from as usize].identity, &mut m);
                self.transmit(from, to, &m, cpu_at)
            }
            None => cpu_at,
        }
    }

    fn transmit(&mut self, from: Ix, to: Ix, message: &Message, cpu_at: Micros) -> Micros {
        let Some(bytes) = self.encode(from, message) else {
            return cpu_at;
        };
        let carried = self.carried(message, bytes.len() as u64);
        if matches!(
            message.body,
            Body::Share(_) | Body::Partial(_) | Body::PartialAhead(_) | Body::HealPart(_)
        ) {
            self.nodes[to as usize].data_sent_to = true;
        }
        let kind = message.kind();
        let e = self.counters.by_kind.entry(kind).or_default();
        e.0 += 1;
        e.1 += carried.bytes;
        let cost = send_us(message, &carried, &self.cfg.cpu);
        let ready = cpu_at.plus(cost);
        self.nodes[from as usize].busy_us += cost;
        let bytes: Arc<[u8]> = bytes.into();
        let (up_end, first_byte, wire_end, ack) = if from == to {
            (ready, ready, ready, None)
        } else {
            let up = transfer_us(carried.bytes, self.cfg.bandwidth.upload_kb_per_s);
            let start = ready.max(self.nodes[from as usize].uplink_free);
            let up_end = start.plus(up);
            self.nodes[from as usize].uplink_free = up_end;
            let latency = self.rng.latency_us(&self.cfg.latency);
            // The sender waits for the acknowledgement from the moment its last byte left, or,
            // as the daemon's request timeout does, from the moment it handed the message over.
            let ack = self.open_ack(from, to, bytes.clone(), latency);
            // The size-aware deadline counts the bytes the message waits behind and its own:
            // the uplink's queue, or under the daemon's whole rule, as the daemon does, the
            // queue of a virtual uplink of the rule's minimum rate fed with every send.
            let ahead = if self.cfg.failures.detection_counts_vector {
                let rate = self.cfg.failures.detection_min_kb_per_s;
                let n = &mut self.nodes[from as usize];
                let start = ready.max(n.virtual_uplink_free);
                n.virtual_uplink_free = start.plus(transfer_us(carried.bytes, rate));
                transfer_bytes(start.0 - ready.0, rate)
            } else {
                transfer_bytes(
                    start.0.saturating_sub(ready.0),
                    self.cfg.bandwidth.upload_kb_per_s,
                )
            };
            let vector_bytes = u64::from(self.cfg.payload.vector_len) * 8;
            let timeout =
                detection_timeout_us(&self.cfg.failures, ahead + carried.bytes, vector_bytes);
            let waits_from = if self.cfg.failures.detection_counts_upload {
                ready
            } else {
                up_end
            };
            self.schedule(waits_from.plus(timeout), Action::AckDeadline { ack: ack.0 });
            (up_end, start.plus(latency), up_end.plus(latency), Some(ack))
        };
        let msg = self.slot(InFlight {
            from,
            to,
            bytes,
            carried,
            created_at: self.now,
            up_end,
            wire_end,
            kind,
            ack,
        });
        self.schedule(first_byte, Action::Arrive { msg });
        ready
    }

    /// What a message is charged: its bytes on the links and the vectors it carries. Without
    /// seed compression (DISSEC's additive shares) every share is charged as a full vector, as
    /// if `t = 1`; with it, the positions below `t` receive 32-byte seeds.
    fn carried(&self, message: &Message, encoded_len: u64) -> Carried {
        let t = if self.cfg.protocol.seed_compression {
            self.cfg.protocol.t
        } else {
            1
        };
        let params = grove_protocol::sharing::SharingParams {
            g: self.cfg.protocol.g,
            t,
        };
        // With validity proofs each share carries its position's validity share too.
        let proof = match (&message.body, self.validity) {
            (Body::Share(_), Some(v)) => v.share_bytes,
            _ => 0,
        };
        Carried {
            bytes: charged_bytes(message, encoded_len, params, &self.cfg.payload) + proof,
            full_vectors: vectors_carried(message, params),
            elements: u64::from(self.cfg.payload.vector_len),
        }
    }

    /// Gossip: every other node gets the message after `gossip_hops` latency draws; no uplink
    /// is charged (the spreading load is shared by the whole network).
    fn broadcast(&mut self, from: Ix, message: &Message) {
        let Some(bytes) = self.encode(from, message) else {
            return;
        };
        let carried = self.carried(message, bytes.len() as u64);
        let bytes: Arc<[u8]> = bytes.into();
        let kind = message.kind();
        let n = self.nodes.len() as Ix;
        let e = self.counters.by_kind.entry(kind).or_default();
        e.0 += u64::from(n - 1);
        e.1 += carried.bytes * u64::from(n - 1);
        for to in 0..n {
            if to == from {
                continue;
            }
            let mut delay = 0;
            for _ in 0..self.gossip_hops {
                delay += self.rng.latency_us(&self.cfg.latency);
            }
            let at = self.now.plus(delay);
            let msg = self.slot(InFlight {
                from,
                to,
                bytes: bytes.clone(),
                carried,
                created_at: self.now,
                up_end: self.now,
                wire_end: at,
                kind,
                ack: None,
            });
            self.schedule(at, Action::Arrive { msg });
        }
    }

    fn on_event(&mut self, node: Ix, engine: &mut Engine, event: Event) {
        if self.debug_trace
            && !matches!(
                event,
                Event::RequestAccepted { .. } | Event::Contributed { .. }
            )
        {
            eprintln!("T {:.3} {node} event {event:?}", self.now.0 as f64 / 1e6);
        }
        match event {
            Event::RequestAccepted { computation, .. } => {
                // A node that does not contribute declines, so its leaf need not wait for it.
                let command = match self.nodes[node as usize].contribution.clone() {
                    Some(values) => Command::Contribute {
                        computation,
                        values,
                    },
                    None => Command::Decline { computation },
                };
                if let Err(e) = engine.handle_command(self.now, command) {
                    self.reject(format!("node {node}: contribute or decline: {e}"));
                }
            }
            Event::ManifestAdopted {
                computation,
                group,
                position,
                version,
                manifest,
                complete,
            } => {
                let now = self.now;
                if self.plan.as_ref().is_some_and(|p| p.root() == group) {
                    self.root_count = self.root_count.max(Some(version.count));
                }
                let span = self
                    .counters
                    .adopted_at
                    .entry(group.level)
                    .or_insert((now, now));
                span.1 = span.1.max(now);
                // Agreement binds honest positions: a liar's own adoption is only learnt, for
                // expanding versions (its engine may have adopted what other liars fed it).
                let adopted = if self.liars.contains_key(&node) {
                    self.versions.know(&version, manifest);
                    Ok(())
                } else {
                    self.versions
                        .adopt(computation, group, position, &version, manifest)
                };
                if let Err(violation) = adopted {
                    self.violation(violation);
                }
                if complete {
                    let subject = Subject::Subtree(computation, group, version.digest);
                    self.hold(node, subject, position);
                }
            }
            Event::HealDone { .. } => self.counters.heals_done += 1,
            Event::HealGaveUp { .. } => self.counters.heals_given_up += 1,
            Event::Released(r) => {
                if node == COMMISSIONER && self.released.is_none() {
                    self.named_root_positions = r.excluded.clone();
                    self.released = Some(*r);
                } else {
                    self.reject(format!("node {node} released a result"));
                }
            }
            Event::Failed { reason, .. } => {
                if node == COMMISSIONER {
                    if let Failure::InconsistentRootShares { positions } = &reason {
                        self.named_root_positions = positions.clone();
                    }
                    self.failure = Some(format!("{reason:?}"));
                }
            }
            Event::MessageRejected { kind, reason, .. } => {
                self.reject(format!("node {node}: {kind}: {reason}"))
            }
            Event::RequestRefused { reason, .. } => {
                self.reject(format!("node {node}: request refused: {reason}"))
            }
            Event::Contributed { .. } | Event::Closed { .. } | Event::SentAhead { .. } => {}
        }
    }

    fn reject(&mut self, what: String) {
        self.counters.rejected += 1;
        if self.counters.rejected_samples.len() < 8 {
            self.counters.rejected_samples.push(what);
        }
    }

    fn crash(&mut self, node: Ix) {
        let n = &mut self.nodes[node as usize];
        if n.engine.is_none() {
            return;
        }
        if self.debug_trace {
            eprintln!(
                "T {:.3} {node} crash{} after {} shares",
                self.now.0 as f64 / 1e6,
                if n.contribution.is_some() {
                    " (contributor)"
                } else {
                    ""
                },
                n.shares_sent
            );
        }
        n.engine = None;
        n.incarnation += 1;
        n.timer = None;
        n.inbox.clear();
        n.current = None;
        n.cpu_busy = false;
        n.last_crash = Some(self.now);
        n.uplink_free = self.now;
        n.downlink_free = self.now;
        n.virtual_uplink_free = self.now;
        self.counters.crashes += 1;
        if self.cfg.failures.oracle {
            let delay = (self.cfg.failures.oracle_delay_ms * 1000.0) as u64;
            let held = self.nodes[node as usize].held_data;
            self.schedule(self.now.plus(delay), Action::Oracle { dead: node, held });
        }
    }

    /// DISSEC's failure oracle: `oracle_delay_ms` after a node died, every node that waits
    /// on it or sends to it in the plan learns it: for each position it may serve, the
    /// candidates of the same position in the child groups (they sent it theirs) and a leaf's
    /// contributors (they sent it shares), the candidates of its own leaf group (a dead
    /// contributor sends no more shares), and, if data was lost with it (it held some when it
    /// died, or a child has sent it some since), every candidate of the parent group (they wait
    /// for its group's partials: DISSEC's local failure propagation). DISSEC's manager, which
    /// sees every node, replaces an aggregator whose children have not sent it anything instead
    /// of cutting its subtree; a parent that learns of such a death would cut it (S&P drops a
    /// child one of whose servers died).
    fn oracle(&mut self, dead: Ix, held: bool) {
        let Some(plan) = self.plan.clone() else {
            return;
        };
        let id = self.nodes[dead as usize].identity.node;
        let mut to: Vec<Ix> = Vec::new();
        let slots = plan.roles_of(&id).iter().chain(plan.backup_roles_of(&id));
        for &(group, position) in slots {
            if let (true, Some(parent)) = (held, plan.parent(group)) {
                for p in 1..=plan.g {
                    to.extend(
                        plan.candidates(parent, p)
                            .filter_map(|n| self.index.get(&n).copied()),
                    );
                }
            }
            for child in plan.children(group) {
                to.extend(
                    plan.candidates(child, position)
                        .filter_map(|n| self.index.get(&n).copied()),
                );
            }
            if group.level == 0 {
                to.extend(self.leaf_contributors.get(&group).into_iter().flatten());
            }
        }
        // Its leaf's members: a dead contributor sends no more shares (DISSEC's manager tells
        // a dead contributor's leaf aggregators).
        let leaf = plan.leaf_of(&id);
        for p in 1..=plan.g {
            to.extend(
                plan.candidates(leaf, p)
                    .filter_map(|n| self.index.get(&n).copied()),
            );
        }
        to.sort_unstable();
        to.dedup();
        for node in to {
            if node != dead && self.nodes[node as usize].engine.is_some() {
                self.counters.oracle_notices += 1;
                self.enqueue(node, Input::FailureNotice { dead }, 0);
            }
        }
    }

    fn rejoin(&mut self, node: Ix) {
        let i = node as usize;
        if self.nodes[i].engine.is_some() {
            return;
        }
        let seed = engine_seed(self.seed, i, self.nodes[i].incarnation);
        let engine = Engine::restore(
            self.nodes[i].identity.clone(),
            seed,
            self.plans.clone(),
            self.nodes[i].durable.clone(),
            self.now,
        )
        .with_strategy(self.strategy.clone())
        .with_envelope(self.envelope.clone())
        .with_verified_signatures(self.verified.clone());
        let engine = match &self.beacon {
            Some(b) => engine.with_beacon(b.beacon.clone()),
            None => engine,
        };
        self.nodes[i].engine = Some(engine);
        self.counters.rejoins += 1;
        let now = self.now;
        let free_at = self.drain(node, now);
        if free_at > now {
            self.nodes[i].cpu_busy = true;
            let incarnation = self.nodes[i].incarnation;
            self.schedule(free_at, Action::CpuFree { node, incarnation });
        }
    }

    /// What the receiver learns from a message, for the privacy checker.
    fn observe(&self, to: Ix, m: &Message) -> Option<(Subject, Position)> {
        if !self.cfg.checks.privacy {
            return None;
        }
        check::learned(m, to == COMMISSIONER, || {
            self.plan.as_ref().map(|plan| plan.root())
        })
    }

    fn hold(&mut self, node: Ix, subject: Subject, position: Position) {
        if !self.cfg.checks.privacy {
            return;
        }
        let t = self
            .cfg
            .checks
            .exposure_shares
            .unwrap_or(self.cfg.protocol.t);
        if let Err(violation) = self.holdings.hold(node as usize, subject, position, t) {
            self.violation(violation);
        }
    }

    /// Keeps the first 100 violations of a run.
    fn violation(&mut self, violation: String) {
        if self.violations.len() < 100 {
            self.violations.push(violation);
        }
    }

    /// Contributors covered by a version, expanded through the adopted manifests.
    fn expand(&self, digest: &Digest) -> BTreeSet<NodeId> {
        self.versions.expand(digest)
    }

    fn report(self, wall_s: f64, setup_error: Option<String>) -> RunReport {
        let contributors = self
            .nodes
            .iter()
            .filter(|n| n.contribution.is_some())
            .count() as u64;
        let g = u32::from(self.cfg.protocol.g);
        let t = u32::from(self.cfg.protocol.t);
        let reached_threshold = self
            .nodes
            .iter()
            .filter(|n| n.contribution.is_some() && n.shares_sent >= t)
            .count() as u64;
        let finished: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|n| n.contribution.is_some() && n.shares_sent >= g)
            .map(|n| n.identity.node)
            .collect();
        let mut checks = Checks {
            sum_ok: None,
            privacy_checked: self.cfg.checks.privacy,
            violations: self.violations.clone(),
            dp: None,
        };
        if let Some(e) = &setup_error {
            checks.violations.push(format!("setup: {e}"));
        }
        if let Some(v) = self.liveness_violation() {
            checks.violations.push(v);
        }
        let mut included_finished = 0u64;
        let mut included = 0u64;
        let mut latency_s = None;
        let mut outcome = None;
        if let Some(r) = &self.released {
            let set = self.expand(&r.version.digest);
            if self.fixed_id.is_some() {
                outcome = Some(Outcome {
                    values: r.values.clone(),
                    included: set.iter().map(|c| c.to_string()).collect(),
                });
            }
            included = set.len() as u64;
            if included != r.version.count {
                checks.violations.push(format!(
                    "version counts {} contributors but expands to {included}",
                    r.version.count
                ));
            }
            let mut finished_sorted = finished.clone();
            finished_sorted.sort_unstable();
            included_finished = set
                .iter()
                .filter(|c| finished_sorted.binary_search(c).is_ok())
                .count() as u64;
            latency_s = Some(r.at.as_secs_f64() - LAUNCH_AT.as_secs_f64());
            if self.cfg.checks.sum {
                checks.sum_ok = Some(self.sum_matches(&set, r, &mut checks.violations));
            }
            checks.dp = self.dp_check(included, &mut checks.violations);
        }
        let released = self.released.is_some();
        let fraction = |part: u64, whole: u64| match (whole, released) {
            (0, true) => 1.0,
            (_, false) => 0.0,
            _ => part as f64 / whole as f64,
        };
        let completeness = fraction(included, contributors);
        let completeness_of_finished = fraction(included_finished, finished.len() as u64);
        let ceiling = if contributors == 0 {
            1.0
        } else {
            reached_threshold as f64 / contributors as f64
        };
        let mut busy: Vec<u64> = self
            .nodes
            .iter()
            .map(|n| n.busy_us)
            .filter(|&b| b > 0)
            .collect();
        busy.sort_unstable();
        let by_kind: BTreeMap<String, RoleTraffic> = self
            .counters
            .by_kind
            .iter()
            .map(|(k, (m, b))| {
                (
                    k.to_string(),
                    RoleTraffic {
                        messages: *m,
                        bytes: *b,
                    },
                )
            })
            .collect();
        let mut by_role: BTreeMap<String, RoleTraffic> = BTreeMap::new();
        for (k, (m, b)) in &self.counters.by_kind {
            let e = by_role.entry(role_of_kind(k).to_string()).or_default();
            e.messages += m;
            e.bytes += b;
        }
        let events = self.counters.events;
        RunReport {
            outcome,
            seed: self.seed,
            nodes: self.nodes.len() as u64,
            contributors,
            finished_sending: finished.len() as u64,
            reached_threshold,
            included,
            completeness,
            completeness_of_finished,
            ceiling,
            released: self.released.is_some(),
            failure: self.failure.clone().or(setup_error),
            latency_s,
            sim_end_s: self.now.as_secs_f64() - LAUNCH_AT.as_secs_f64(),
            stopped: None,
            setup_s: 0.0,
            setup_cpu_s: 0.0,
            summary: Summary {
                messages: by_kind.values().map(|t| t.messages).sum(),
                bytes: by_kind.values().map(|t| t.bytes).sum(),
                dropped_at_dead: self.counters.dropped_at_dead,
                dropped_sender_died: self.counters.dropped_sender_died,
                unreachable_notices: self.counters.unreachable_notices,
                spurious_timeouts: self.counters.spurious_timeouts,
                oracle_notices: self.counters.oracle_notices,
                crashes: self.counters.crashes,
                rejoins: self.counters.rejoins,
                heals_done: self.counters.heals_done,
                heals_given_up: self.counters.heals_given_up,
                rejected: self.counters.rejected,
                rejected_samples: self.counters.rejected_samples.clone(),
                liars: self
                    .liars
                    .iter()
                    .map(|(i, b)| format!("{i}:{}", byzantine::short(b)))
                    .collect(),
                named_root_positions: self.named_root_positions.clone(),
            },
            by_kind,
            by_role,
            last_share_sent_s: self.counters.last_share_sent.as_secs_f64()
                - LAUNCH_AT.as_secs_f64(),
            manifests_adopted_s: self
                .counters
                .adopted_at
                .values()
                .map(|(a, b)| {
                    (
                        a.as_secs_f64() - LAUNCH_AT.as_secs_f64(),
                        b.as_secs_f64() - LAUNCH_AT.as_secs_f64(),
                    )
                })
                .collect(),
            busy_ms_mean: if busy.is_empty() {
                0.0
            } else {
                busy.iter().sum::<u64>() as f64 / busy.len() as f64 / 1000.0
            },
            busy_ms_median: busy.get(busy.len() / 2).map_or(0.0, |b| *b as f64 / 1000.0),
            busy_ms_max: busy.last().map_or(0.0, |b| *b as f64 / 1000.0),
            events,
            wall_s,
            events_per_s: events as f64 / wall_s.max(1e-9),
            cpu_s: 0.0,
            events_per_cpu_s: 0.0,
            peak_rss_mib: crate::report::peak_rss_mib(),
            trace_hash: grove_protocol::ids::hex(&self.trace.clone().finalize()),
            checks,
        }
    }

    /// Liveness: if no group of the plan lost more than `g - t` members (counting every member
    /// that crashed at any time, which only makes the premise harder to meet), the computation
    /// must release, once it is over (failed, or simulated past its deadline).
    fn liveness_violation(&self) -> Option<String> {
        let (plan, request) = (self.plan.as_ref()?, self.request.as_ref()?);
        let over = self.failure.is_some() || self.now >= request.deadline;
        if self.released.is_some() || !over {
            return None;
        }
        // Differential privacy: fewer contributors than its honest sources finished sharing, or
        // the root's versions sum fewer (late shares missed their windows), so no version
        // carries the noise the guarantee needs, and the root members rightly release nothing.
        if let Some(noise) = &request.contribution.noise {
            let h = u64::from(noise.honest_sources);
            if self.root_count.is_some_and(|c| c < h) {
                return None;
            }
            let g = u32::from(self.cfg.protocol.g);
            let finished = self
                .nodes
                .iter()
                .filter(|n| n.contribution.is_some() && n.shares_sent >= g)
                .count() as u64;
            if finished < h {
                return None;
            }
        }
        // A liar counts as lost: at worst it is a failed member (`byzantine.rs`).
        let lost = |m: &NodeId| {
            self.index.get(m).is_some_and(|&i| {
                self.nodes[i as usize].last_crash.is_some() || self.liars.contains_key(&i)
            })
        };
        let failure = self.failure.as_deref().unwrap_or("no failure reported");
        check::liveness(plan, lost, failure)
    }

    /// Differential privacy's collusion bound on a released version of `included`
    /// contributors: it must sum at least `HONEST SOURCES` contributors' noise, and the noise of
    /// any `honest_sources` of them alone (what is left when the other `included - h`
    /// collude and subtract theirs) must meet the query's zCDP budget.
    fn dp_check(&self, included: u64, violations: &mut Vec<String>) -> Option<DpCheck> {
        let (p, request) = (self.cfg.privacy.as_ref()?, self.request.as_ref()?);
        let noise = request.contribution.noise.as_ref()?;
        let h = noise.honest_sources;
        if included < u64::from(h) {
            violations.push(format!(
                "differential privacy: the commissioner received a version summing {included} contributors' noise, fewer than the {h} honest sources its guarantee needs"
            ));
        }
        let parts = self.cfg.dp_parts(self.engine_len);
        let rho_left = dp::rho_of_parts(&parts, 1, &noise.sigma_milli, h);
        let rho_budget = dp::rho_for(p.epsilon, p.delta).unwrap_or(0.0);
        if rho_left.is_nan() || rho_left > rho_budget {
            violations.push(format!(
                "differential privacy: {h} honest sources' noise gives rho {rho_left:.6}, above the budget {rho_budget:.6}"
            ));
        }
        Some(DpCheck {
            honest_sources: h,
            noise_sources: included,
            colluders_tolerated: included.saturating_sub(u64::from(h)),
            rho_left,
            rho_budget,
        })
    }

    /// The released sum against the plaintext sum over the reported set; with differential
    /// privacy, against the sum of the vectors the contributors persisted, each of which must
    /// be its values plus exactly its own noise of the request's scale (`dp::add_noise` from
    /// its persisted seed): the engine added it before sharing.
    fn sum_matches(
        &self,
        set: &BTreeSet<NodeId>,
        released: &Released,
        violations: &mut Vec<String>,
    ) -> bool {
        let Some(request) = &self.request else {
            return false;
        };
        let spec = &request.contribution;
        let checked = check::sum_of(spec, set, |c| {
            let node = self.index.get(c).map(|&i| &self.nodes[i as usize]);
            let Some(values) = node.and_then(|n| n.contribution.as_ref()) else {
                return Err(format!("the result includes {c}, who did not contribute"));
            };
            check::contributed(spec, c, values, node.and_then(|n| n.persisted.as_ref()))
        })
        .and_then(|expected| check::exact(spec, request.privacy.k_min, released, expected));
        match checked {
            Ok(()) => true,
            Err(violation) => {
                violations.push(violation);
                false
            }
        }
    }
}

/// A node killed in the middle of its drain (`failures.kill` with `after_send`).
struct Killed;

/// A node's effects in the simulation, each charged its CPU time one after the other from
/// the drain's start: a batch of records one write and fsync (`persist_us`, work model), the
/// contribution's sharing before its first share leaves, each send its CPU and uplink
/// ([`Simulator::transmit`]).
struct SimEffects<'a> {
    sim: &'a mut Simulator,
    node: Ix,
    /// When the node's CPU is free of the work charged so far.
    cpu_at: Micros,
    /// Whether this drain already paid for sharing the node's contribution.
    shared: bool,
}

impl SimEffects<'_> {
    fn charge(&mut self, cost: u64) {
        self.cpu_at = self.cpu_at.plus(cost);
        self.sim.nodes[self.node as usize].busy_us += cost;
    }
}

impl Effects for SimEffects<'_> {
    type Error = Killed;

    fn persist(&mut self, records: Vec<Record>) -> Result<(), Killed> {
        let work = matches!(self.sim.cfg.cpu, crate::config::CpuConfig::Work(_));
        let keep = self.sim.keep_records;
        let mut bytes = 0u64;
        for record in records {
            let n = &mut self.sim.nodes[self.node as usize];
            if let Record::Contribution { seed, vector, .. } = &record {
                if n.persisted.is_none() {
                    n.persisted = Some((*seed, vector.0.clone()));
                }
            }
            // The directory snapshot is not in the work model (a daemon writes it once per
            // computation, as it did before the engine recorded it; the model charged it
            // nothing then either).
            if work && !matches!(record, Record::Directory { .. }) {
                bytes += record_bytes(&record, &self.sim.cfg.payload).max(1);
            }
            if keep {
                n.durable.push(record);
            }
        }
        if bytes > 0 {
            let cost = persist_us(bytes, &self.sim.cfg.cpu);
            self.charge(cost);
        }
        Ok(())
    }

    fn send(&mut self, to: NodeId, message: Message) -> Result<(), Killed> {
        let node = self.node;
        let kind = message.kind();
        if let Body::Share(s) = &message.body {
            if !self.shared && s.contributor == self.sim.nodes[node as usize].identity.node {
                // The engine shares the whole vector before it sends any share.
                self.shared = true;
                let cfg = &self.sim.cfg;
                let cost = contribute_us(
                    cfg.protocol.g,
                    u64::from(cfg.payload.vector_len),
                    &cfg.cpu,
                    cfg.privacy.as_ref(),
                ) + self.sim.validity.map_or(0, |v| v.prove_us);
                self.charge(cost);
                // A contributor serving a position of its own leaf hands itself that share
                // inside its engine (drivers never see a send to oneself).
                if let Some(plan) = &self.sim.plan {
                    let own = plan
                        .roles_of(&s.contributor)
                        .iter()
                        .filter(|(group, _)| *group == s.group)
                        .count() as u32;
                    self.sim.nodes[node as usize].shares_sent += own;
                }
            }
        }
        let sim = &mut *self.sim;
        if sim.debug_trace && kind != "share" && kind != "decline" {
            let to = sim.index.get(&to);
            let at = sim.now.0 as f64 / 1e6;
            eprintln!(
                "T {at:.3} {node} send {kind} to {to:?} slot {:?}",
                message.to
            );
        }
        match sim.index.get(&to) {
            Some(&to) => self.cpu_at = sim.transmit_as(node, to, &message, self.cpu_at),
            None => sim.reject(format!("node {node} sent to an unknown node")),
        }
        let kill = sim.nodes[node as usize].kill_after_send.as_deref();
        if kill.is_some_and(|k| k.split('|').any(|k| k == kind)) {
            sim.nodes[node as usize].kill_after_send = None;
            return Err(Killed);
        }
        Ok(())
    }

    fn broadcast(&mut self, message: Message) -> Result<(), Killed> {
        self.sim.broadcast(self.node, &message);
        Ok(())
    }

    fn event(&mut self, engine: &mut Engine, event: Event) -> Result<(), Killed> {
        self.sim.on_event(self.node, engine, event);
        Ok(())
    }
}

/// Which role sends messages of a kind.
pub fn role_of_kind(kind: &str) -> &'static str {
    match kind {
        "share" => "contributor",
        "partial" | "partial-ahead" | "partial-confirm" | "report" | "solicit" | "manifest"
        | "vote" | "heal-query" | "heal-offer" | "heal-go" | "heal-part" => "aggregator",
        "root-ready" | "release-share" => "root",
        "request" | "release-ask" | "finish" => "commissioner",
        _ => "other",
    }
}

/// The contribution spec of a simulated request of `length` elements: element 0 is the
/// contributor's indicator and one cell covers the vector (`ContributionSpec::counted`), the
/// others are integers in `[-bound, bound]`.
pub fn declared_spec(length: u32, bound: f64) -> ContributionSpec {
    ContributionSpec::counted(length.saturating_sub(1), -bound, bound, 0)
}

/// The size-only mode's share envelope: [`PlainEnvelope`], whose bytes have exactly the Noise
/// envelope's length and framing (so the charged bytes do not change) and which opens only at
/// its recipient, as Noise does, so no protocol decision changes either (a test compares with
/// full mode's Noise). The CPU model charges the sealing and opening. To check the recipient
/// it looks the receiver's public key up among the identities the simulator generated, where
/// `PlainEnvelope` would compute it (one scalar multiplication per share).
struct SimEnvelope {
    /// (X25519 secret, public key), sorted by secret.
    keys: Vec<([u8; 32], [u8; 32])>,
}

impl SimEnvelope {
    fn new(keys: impl Iterator<Item = ([u8; 32], [u8; 32])>) -> SimEnvelope {
        let mut keys: Vec<_> = keys.collect();
        keys.sort_unstable();
        SimEnvelope { keys }
    }
}

impl Envelope for SimEnvelope {
    fn seal(
        &self,
        recipient_public: &[u8; 32],
        plaintext: &[u8],
        ephemeral_seed: [u8; 32],
    ) -> Result<Vec<u8>, SealError> {
        PlainEnvelope.seal(recipient_public, plaintext, ephemeral_seed)
    }
    fn open(&self, recipient_secret: &[u8; 32], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        match self.keys.binary_search_by(|(s, _)| s.cmp(recipient_secret)) {
            Ok(i) => PlainEnvelope::open_to(&self.keys[i].1, sealed),
            Err(_) => PlainEnvelope.open(recipient_secret, sealed),
        }
    }
}

/// The engine seed of node `i` in incarnation `incarnation`.
fn engine_seed(seed: u64, i: usize, incarnation: u32) -> [u8; 32] {
    hash_parts(
        "grove-sim/engine",
        &[
            &seed.to_le_bytes(),
            &(i as u64).to_le_bytes(),
            &incarnation.to_le_bytes(),
        ],
    )
}

/// A node's identity (id and secrets) and its public keys.
type Peer = (Identity, PeerKeys);

/// Node identities (ids, X25519 and Ed25519 secrets) and public keys, derived from the seed, and the CPU time of the
/// helper threads. The scalar multiplications run on every core (the result does not depend
/// on how they are split).
fn identities(seed: u64, n: usize) -> (Vec<Peer>, f64) {
    let one = |i: usize| {
        let secret = hash_parts(
            "grove-sim/x25519",
            &[&seed.to_le_bytes(), &(i as u64).to_le_bytes()],
        );
        let public = seal::x25519_public(&secret);
        let identity = Identity {
            node: NodeId::from_public_bytes(&public),
            x25519_secret: secret,
            ed25519_secret: hash_parts(
                "grove-sim/ed25519",
                &[&seed.to_le_bytes(), &(i as u64).to_le_bytes()],
            ),
        };
        let keys = identity.keys();
        (identity, keys)
    };
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    if n < 4096 || threads < 2 {
        return ((0..n).map(one).collect(), 0.0);
    }
    let chunk = n.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                s.spawn(move || {
                    let part: Vec<_> = (k * chunk..((k + 1) * chunk).min(n)).map(one).collect();
                    (part, crate::report::thread_cpu_s())
                })
            })
            .collect();
        let mut out: Vec<Peer> = Vec::with_capacity(n);
        let mut cpu_s = 0.0;
        for h in handles {
            // Invariant: the closure above does not panic (hashing and a scalar multiplication).
            let (part, cpu) = h.join().expect("identity thread panicked");
            out.extend(part);
            cpu_s += cpu;
        }
        (out, cpu_s)
    })
}
