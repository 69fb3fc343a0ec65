//! The cluster harness: N real engines, a virtual clock, per-link latency, message loss, and
//! crash and restart-from-persisted-records of any node at any moment, including in the middle
//! of draining its outputs. Every message goes through the real codec. A privacy checker
//! watches every delivery; the result checker compares the released sum with the plaintext
//! sum over the exact contributor set the result reports.
//!
//! Enabled by the `test-util` feature; the simulator builds its models on top of the same idea.

use crate::check::{self, Combinations, Holdings, Subject, Versions};
use crate::codec;
use crate::drain::{self, Effects};
use crate::encoding::ContributionSpec;
use crate::engine::{sign_finish, Command, Engine, Event, Failure, Identity, Released};
use crate::field::Fp;
use crate::ids::{hash_parts, ComputationId, Digest, GroupId, Micros, NodeId, Position};
use crate::message::{Body, Message};
use crate::plan::{Plan, PlanCache};
use crate::record::Record;
use crate::request::{
    CommissionerKey, PrivacyParams, Request, SignedRequest, Timeouts, TreeParams,
};
use crate::seal::{self, Envelope, NoiseEnvelope, PlainEnvelope};
use crate::snapshot::DirectorySnapshot;
use ed25519_dalek::SigningKey;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest as _, Sha256};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;

mod byzantine;
mod selection;
pub use byzantine::{sign_votes, Byzantine};

/// Upper bound on events one harness run may process.
pub const MAX_STEPS: u64 = 200_000_000;

/// Network of the harness.
#[derive(Clone, Debug)]
pub struct HarnessConfig {
    pub nodes: usize,
    pub seed: u64,
    /// One-way latency of each message, uniform in `[min, max]` microseconds.
    pub latency_min: u64,
    pub latency_max: u64,
    /// Probability that a message is lost.
    pub loss: f64,
    /// How long a sender takes to learn that a message could not be delivered to a crashed
    /// node (a refused or reset connection), in microseconds.
    pub unreachable_delay: u64,
    /// Seal shares with the simulation-only plain envelope instead of Noise (large runs).
    pub plain_envelope: bool,
}

impl HarnessConfig {
    pub fn new(nodes: usize, seed: u64) -> HarnessConfig {
        HarnessConfig {
            nodes,
            seed,
            latency_min: 5_000,
            latency_max: 40_000,
            loss: 0.0,
            unreachable_delay: 100_000,
            plain_envelope: false,
        }
    }
}

/// What a test asks the commissioner to compute.
#[derive(Clone, Debug)]
pub struct LaunchParams {
    pub g: u8,
    pub t: u8,
    pub k_min: u64,
    pub leaf_groups: u32,
    pub fan_in: u32,
    pub spec: ContributionSpec,
    pub max_contributors: u64,
    pub timeouts: Timeouts,
    pub lifetime: u64,
}

impl LaunchParams {
    /// Timeouts fitted to the harness's default latencies (5 to 40 ms).
    pub fn default_timeouts() -> Timeouts {
        Timeouts {
            share_window: 400_000,
            collect_window: 300_000,
            level_span: 3_000_000,
            report_window: 150_000,
            manifest_timeout: 500_000,
            heal_attempt: 300_000,
            release_window: 200_000,
        }
    }

    /// The parameters the adaptive planner chose.
    pub fn from_choice(choice: &crate::planner::Choice, spec: ContributionSpec) -> LaunchParams {
        LaunchParams {
            g: choice.privacy.g,
            t: choice.privacy.t,
            k_min: choice.privacy.k_min,
            leaf_groups: choice.tree.leaf_groups,
            fan_in: choice.tree.fan_in,
            spec,
            max_contributors: 1 << 20,
            timeouts: choice.tree.timeouts,
            lifetime: 120_000_000,
        }
    }

    /// A raw vector of `values` elements in `[-10^6, 10^6]` behind one indicator (the spec is
    /// [`ContributionSpec::counted`]: contributors use [`Cluster::set_counted_contribution`]).
    pub fn new(g: u8, t: u8, leaf_groups: u32, fan_in: u32, values: u32) -> LaunchParams {
        LaunchParams {
            g,
            t,
            k_min: 1,
            leaf_groups,
            fan_in,
            spec: ContributionSpec::counted(values, -1_000_000.0, 1_000_000.0, 0),
            max_contributors: 1 << 20,
            timeouts: LaunchParams::default_timeouts(),
            lifetime: 120_000_000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Deliver {
        to: usize,
        from: usize,
        msg: usize,
    },
    Unreachable {
        sender: usize,
        dead: usize,
        msg: usize,
    },
    Timer {
        node: usize,
        at: Micros,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    /// The beacon round `round` is published (`use_beacon`).
    Beacon {
        round: u64,
    },
    /// A job deferred by `defer_jobs` is done.
    JobDone {
        job: usize,
    },
    /// A message `sender` was told it could not deliver to `to` is acknowledged after all
    /// (`ack_late`).
    LateAck {
        sender: usize,
        to: usize,
        computation: ComputationId,
        slot: crate::message::Slot,
    },
}

struct Slot {
    identity: Identity,
    engine: Option<Engine>,
    durable: Vec<Record>,
    timer: Option<Micros>,
    restarts: u32,
    /// Computations this node finished sending all its shares to.
    shares_sent: BTreeMap<ComputationId, usize>,
    /// Sends counted for crash triggers, by message kind.
    sends_by_kind: BTreeMap<&'static str, usize>,
    /// How far this node's clock is behind the cluster's (`Cluster::set_clock_behind`).
    clock_behind: u64,
}

/// Counters of what crossed the network.
#[derive(Clone, Debug, Default)]
pub struct Traffic {
    pub messages: u64,
    pub bytes: u64,
    pub by_kind: BTreeMap<&'static str, (u64, u64)>,
    pub lost: u64,
    pub dropped_at_dead_nodes: u64,
}

/// What a run produced for one computation, checked against the plaintext.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub released: Option<Released>,
    pub failures: Vec<Failure>,
    /// Contributors the result covers (expanded from its version).
    pub included: BTreeSet<NodeId>,
    /// Contributors that were asked to contribute.
    pub contributors: BTreeSet<NodeId>,
    /// Contributors that sent all `g` shares.
    pub finished_sending: BTreeSet<NodeId>,
}

impl Outcome {
    /// Included contributors over contributors that finished sending.
    pub fn completeness(&self) -> f64 {
        if self.finished_sending.is_empty() {
            return 1.0;
        }
        let n = self.finished_sending.intersection(&self.included).count();
        n as f64 / self.finished_sending.len() as f64
    }
}

/// N engines on a virtual network.
pub struct Cluster {
    pub now: Micros,
    cfg: HarnessConfig,
    nodes: Vec<Slot>,
    index: BTreeMap<NodeId, usize>,
    queue: BinaryHeap<Reverse<(Micros, u64, Action)>>,
    in_flight: BTreeMap<usize, Vec<u8>>,
    next_msg: usize,
    seq: u64,
    rng: ChaCha20Rng,
    plans: Arc<PlanCache>,
    /// Every node's id and key: the directory every request is planned over.
    directory: DirectorySnapshot,
    commissioner_key: SigningKey,
    contributions: BTreeMap<usize, Vec<f64>>,
    requests: BTreeMap<ComputationId, Request>,
    launched_by: BTreeMap<ComputationId, usize>,
    /// Every event, with when and where it happened.
    pub events: Vec<(Micros, usize, Event)>,
    /// Manifests adopted, and the agreement checker.
    versions: Versions,
    /// The first agreement violation of each computation (its result check fails).
    disagreements: BTreeMap<ComputationId, String>,
    crash_after: BTreeMap<(usize, &'static str), usize>,
    slow: BTreeMap<(usize, &'static str), u64>,
    cut: BTreeSet<(usize, usize)>,
    late_acks: BTreeSet<(usize, usize)>,
    crash_on_receive: Option<(BTreeSet<usize>, &'static str, usize)>,
    holdings: Holdings,
    combinations: Combinations,
    privacy_violations: Vec<String>,
    /// Nodes whose engine, as commissioner, ignores `k_min` (`Engine::skipping_k_min_check`).
    skip_k_min: BTreeSet<usize>,
    /// Child groups whose members all lie about their version's count (to this number).
    count_lies: BTreeMap<GroupId, u64>,
    /// Byzantine nodes and how they lie (`harness/byzantine.rs`).
    byzantine: BTreeMap<usize, Byzantine>,
    /// Byzantine nodes that already sent something of a computation.
    byzantine_started: BTreeSet<(usize, ComputationId)>,
    pub traffic: Traffic,
    trace: Sha256,
    steps: u64,
    /// Print every delivery to stderr (set `GROVE_TRACE=1`).
    trace_deliveries: bool,
    /// The test chain, once `use_beacon` turned it on.
    beacon: Option<selection::HarnessBeacon>,
    /// `defer_jobs`: how long after it is emitted a job's result comes back (`None`: jobs
    /// run inline, in the drain that emits them).
    job_delay: Option<u64>,
    /// `defer_jobs_of`: the delay of one kind of job (`Job::kind`), over `job_delay`.
    job_delays: BTreeMap<&'static str, u64>,
    /// Deferred jobs out: node, its restarts when the job was emitted, and the job.
    jobs: BTreeMap<usize, (usize, u32, crate::engine::Job)>,
    next_job: usize,
}

impl Cluster {
    pub fn new(cfg: HarnessConfig) -> Cluster {
        let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed);
        let mut nodes = Vec::with_capacity(cfg.nodes);
        let mut peers = Vec::with_capacity(cfg.nodes);
        for i in 0..cfg.nodes {
            let secret = hash_parts(
                "harness/x25519",
                &[&cfg.seed.to_le_bytes(), &(i as u64).to_le_bytes()],
            );
            let public = seal::x25519_public(&secret);
            let node = NodeId::from_public_bytes(&public);
            let identity = Identity {
                node,
                x25519_secret: secret,
                ed25519_secret: hash_parts(
                    "harness/ed25519",
                    &[&cfg.seed.to_le_bytes(), &(i as u64).to_le_bytes()],
                ),
            };
            peers.push((node, identity.keys()));
            nodes.push(Slot {
                identity,
                engine: None,
                durable: Vec::new(),
                timer: None,
                restarts: 0,
                shares_sent: BTreeMap::new(),
                sends_by_kind: BTreeMap::new(),
                clock_behind: 0,
            });
        }
        let index = peers
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (*id, i))
            .collect();
        let directory = DirectorySnapshot::new(peers);
        let plans = Arc::new(PlanCache::default());
        let mut key_seed = [0u8; 32];
        rng.fill_bytes(&mut key_seed);
        let commissioner_key = SigningKey::from_bytes(&key_seed);
        let mut cluster = Cluster {
            now: Micros(1_000_000),
            cfg,
            nodes,
            index,
            queue: BinaryHeap::new(),
            in_flight: BTreeMap::new(),
            next_msg: 0,
            seq: 0,
            rng,
            plans,
            directory,
            commissioner_key,
            contributions: BTreeMap::new(),
            requests: BTreeMap::new(),
            launched_by: BTreeMap::new(),
            events: Vec::new(),
            versions: Versions::default(),
            disagreements: BTreeMap::new(),
            crash_after: BTreeMap::new(),
            slow: BTreeMap::new(),
            cut: BTreeSet::new(),
            late_acks: BTreeSet::new(),
            crash_on_receive: None,
            holdings: Holdings::default(),
            combinations: Combinations::default(),
            privacy_violations: Vec::new(),
            skip_k_min: BTreeSet::new(),
            count_lies: BTreeMap::new(),
            byzantine: BTreeMap::new(),
            byzantine_started: BTreeSet::new(),
            traffic: Traffic::default(),
            trace: Sha256::new(),
            steps: 0,
            trace_deliveries: std::env::var_os("GROVE_TRACE").is_some(),
            beacon: None,
            job_delay: None,
            job_delays: BTreeMap::new(),
            jobs: BTreeMap::new(),
            next_job: 0,
        };
        for i in 0..cluster.nodes.len() {
            let seed = cluster.engine_seed(i);
            let engine = Engine::new(
                cluster.nodes[i].identity.clone(),
                seed,
                cluster.plans.clone(),
            )
            .with_envelope(cluster.envelope())
            .checking_validity();
            cluster.nodes[i].engine = Some(engine);
        }
        cluster
    }

    /// Node `i`'s engine, as commissioner, ignores `k_min`: it shows every cell it can
    /// reconstruct (also after a restart). The root members must still keep every cell below
    /// `k_min` from it; the privacy checker fails a run in which one reaches it.
    pub fn skip_k_min_check(&mut self, i: usize) {
        self.skip_k_min.insert(i);
        if let Some(engine) = self.nodes[i].engine.take() {
            self.nodes[i].engine = Some(engine.skipping_k_min_check());
        }
    }

    /// Every member of `child` lies about its version's contributor count: every partial,
    /// confirm and heal offer it sends names `count` instead (an inner leader's manifest then
    /// carries it up to the root). Nothing released may change; the result check then does
    /// not compare the released version's count with its contributors.
    pub fn lie_about_count(&mut self, child: GroupId, count: u64) {
        self.count_lies.insert(child, count);
    }

    /// Node `i`'s engine lies in its validity proofs as a contributor (not kept across a
    /// restart).
    pub fn lie_in_contribution(&mut self, i: usize, lie: crate::engine::ValidityLie) {
        if let Some(engine) = self.nodes[i].engine.as_mut() {
            engine.lie_in_contribution(lie);
        }
    }

    fn envelope(&self) -> Arc<dyn Envelope> {
        if self.cfg.plain_envelope {
            Arc::new(PlainEnvelope)
        } else {
            Arc::new(NoiseEnvelope)
        }
    }

    fn engine_seed(&mut self, i: usize) -> [u8; 32] {
        hash_parts(
            "harness/engine",
            &[
                &self.cfg.seed.to_le_bytes(),
                &(i as u64).to_le_bytes(),
                &self.nodes[i].restarts.to_le_bytes(),
            ],
        )
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node_id(&self, i: usize) -> NodeId {
        self.nodes[i].identity.node
    }

    pub fn index_of(&self, id: &NodeId) -> Option<usize> {
        self.index.get(id).copied()
    }

    pub fn is_alive(&self, i: usize) -> bool {
        self.nodes[i].engine.is_some()
    }

    /// Node `i`'s engine, while it runs (tests read its counters).
    pub fn engine(&self, i: usize) -> Option<&Engine> {
        self.nodes[i].engine.as_ref()
    }

    /// How many times node `i` restarted from its records.
    pub fn restarts(&self, i: usize) -> u32 {
        self.nodes[i].restarts
    }

    /// The harness's deterministic randomness, for tests that draw crash times or values.
    pub fn rng(&mut self) -> &mut ChaCha20Rng {
        &mut self.rng
    }

    /// Node `i` contributes `values` to every computation it hears of (the whole vector, its
    /// indicators included).
    pub fn set_contribution(&mut self, i: usize, values: Vec<f64>) {
        self.contributions.insert(i, values);
    }

    /// Node `i` contributes `values` behind an indicator of 1, for a
    /// [`ContributionSpec::counted`] spec such as [`LaunchParams::new`]'s.
    pub fn set_counted_contribution(&mut self, i: usize, values: &[f64]) {
        self.set_contribution(i, ContributionSpec::counted_values(values));
    }

    /// The values node `i` contributes, if it does.
    pub fn contribution(&self, i: usize) -> Option<&[f64]> {
        self.contributions.get(&i).map(Vec::as_slice)
    }

    /// Builds, signs and launches a request from node `commissioner`.
    pub fn launch(&mut self, commissioner: usize, p: &LaunchParams) -> ComputationId {
        self.launch_query(commissioner, p, "")
    }

    /// [`Cluster::launch`] with the request's query text (`p.spec` must be its compiled spec
    /// for the engine to check validity proofs, `engine/validity.rs`).
    pub fn launch_query(
        &mut self,
        commissioner: usize,
        p: &LaunchParams,
        query: &str,
    ) -> ComputationId {
        let mut id = [0u8; 32];
        self.rng.fill_bytes(&mut id);
        let now = self.local_now(commissioner);
        let request = Request {
            id: ComputationId(id),
            commissioner: CommissionerKey(self.commissioner_key.verifying_key().to_bytes()),
            commissioner_node: self.node_id(commissioner),
            directory: None,
            beacon: None,
            created_at: now,
            deadline: now.plus(p.lifetime),
            query: query.to_string(),
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
                backups: 2,
                timeouts: p.timeouts,
            },
        };
        self.launch_request(commissioner, request)
    }

    /// Launches an already built request (tests that forge or tweak requests use this).
    pub fn launch_request(&mut self, commissioner: usize, mut request: Request) -> ComputationId {
        if request.beacon.is_none() {
            request.beacon = self.name_round();
        }
        let id = request.id;
        let signed = SignedRequest::sign(request.clone(), &self.commissioner_key);
        let finish_signature = sign_finish(&id, &self.commissioner_key);
        self.requests.insert(id, request);
        self.launched_by.insert(id, commissioner);
        let now = self.local_now(commissioner);
        if let Some(engine) = self.nodes[commissioner].engine.as_mut() {
            if let Err(e) = engine.handle_command(
                now,
                Command::Launch {
                    request: Box::new(signed),
                    finish_signature,
                    directory: self.directory.clone(),
                },
            ) {
                self.events.push((
                    self.now,
                    commissioner,
                    Event::MessageRejected {
                        from: self.nodes[commissioner].identity.node,
                        kind: "launch",
                        reason: e.to_string(),
                    },
                ));
            }
        }
        self.drain(commissioner);
        id
    }

    /// The commissioner's signing key (tests that build their own requests use it).
    pub fn commissioner_key(&self) -> &SigningKey {
        &self.commissioner_key
    }

    /// Takes node `i` out of the directory later requests are planned over: it stays on the
    /// network (it receives the requests and may contribute), but it is in no request's
    /// candidate set (a peer that was never admitted). Call it before `launch`.
    pub fn leave_out_of_directory(&mut self, i: usize) {
        let left_out = self.nodes[i].identity.node;
        let entries = self
            .directory
            .entries()
            .iter()
            .filter(|(n, _)| *n != left_out)
            .copied()
            .collect();
        self.directory = DirectorySnapshot::new(entries);
    }

    /// Delivers a message to node `to` as if sent by node `from` (hostile-input tests).
    pub fn inject(&mut self, from: usize, to: usize, message: &Message, delay: u64) {
        if let Ok(bytes) = codec::encode(message) {
            self.schedule_bytes(from, to, bytes, delay);
        }
    }

    pub fn plan(&self, id: &ComputationId) -> Option<Arc<Plan>> {
        self.requests.get(id).and_then(|r| {
            let seed = crate::plan::request_seed(r, self.randomness_of(r).as_ref());
            self.plans
                .plan(
                    r,
                    &seed,
                    self.directory.digest(),
                    self.directory.directory(),
                )
                .ok()
        })
    }

    /// Runs every engine job (`Output::Work`) as the daemon does, off the drain: its result
    /// comes back as an input `delay` microseconds after the job is emitted, and the node
    /// handles every other input meanwhile. A crash loses the node's jobs (their results never
    /// come). By default jobs run inline, in the drain that emits them.
    pub fn defer_jobs(&mut self, delay: u64) {
        self.job_delay = Some(delay);
    }

    /// As [`defer_jobs`](Self::defer_jobs) for the jobs of one `kind` only (`Job::kind`:
    /// `"prove"`, `"verify"`); the others run as before.
    pub fn defer_jobs_of(&mut self, kind: &'static str, delay: u64) {
        self.job_delays.insert(kind, delay);
    }

    /// Node `n`'s deferred jobs whose results have not come back yet (`defer_jobs`).
    pub fn jobs_out(&self, n: usize) -> usize {
        self.jobs.values().filter(|(node, _, _)| *node == n).count()
    }

    /// Node `n`'s deferred jobs of `kind` (`Job::kind`) whose results have not come back yet.
    pub fn jobs_out_of(&self, n: usize, kind: &str) -> usize {
        self.jobs
            .values()
            .filter(|(node, _, job)| *node == n && job.kind() == kind)
            .count()
    }

    /// Node `node`'s clock reads `behind` microseconds less than the cluster's (`now`): every
    /// time its engine is handed (messages, timers, jobs, commands, a restart) is its own, and
    /// the deadline its engine asks for fires when its own clock reaches it. The commissioner's
    /// clock stamps its requests' `created_at`. Beacon rounds are handed over at the cluster's
    /// time. Set it before the node takes part in anything (its armed timer is not moved).
    pub fn set_clock_behind(&mut self, node: usize, behind: u64) {
        self.nodes[node].clock_behind = behind;
    }

    /// What node `n`'s clock reads now.
    pub fn local_now(&self, n: usize) -> Micros {
        Micros(self.now.0.saturating_sub(self.nodes[n].clock_behind))
    }

    pub fn crash_at(&mut self, node: usize, at: Micros) {
        self.schedule(at, Action::Crash { node });
    }

    pub fn restart_at(&mut self, node: usize, at: Micros) {
        self.schedule(at, Action::Restart { node });
    }

    /// Crashes `node` right after its `count`-th send of messages of `kind` (for example
    /// `"share"` or `"manifest"`), in the middle of draining its outputs.
    pub fn crash_after_sends(&mut self, node: usize, kind: &'static str, count: usize) {
        self.crash_after.insert((node, kind), count);
    }

    /// Every message of `kind` that `node` sends takes `extra` more microseconds to arrive (a
    /// slow or congested sender, for example a leader whose manifests arrive late).
    pub fn slow_sends(&mut self, node: usize, kind: &'static str, extra: u64) {
        self.slow.insert((node, kind), extra);
    }

    /// `from` cannot reach `to` although `to` is alive (a failed dial, a broken route): every
    /// message it sends there comes back undelivered, as from a dead peer.
    pub fn cut_link(&mut self, from: usize, to: usize) {
        self.cut.insert((from, to));
    }

    /// `to` acknowledges what `from` sends it too late (a receiver whose loaded machine
    /// handles its messages after the sender's deadline): every message arrives, and its
    /// sender also gets it back undelivered after `unreachable_delay` (`handle_unreachable`,
    /// its failover) and, just after, its late ack (`handle_late_ack`).
    pub fn ack_late(&mut self, from: usize, to: usize) {
        self.late_acks.insert((from, to));
    }

    /// The first of `nodes` to receive a message of `kind` crashes as it arrives, before
    /// handling it (for example a heal helper dying mid-heal).
    pub fn crash_first_receiver(
        &mut self,
        nodes: impl IntoIterator<Item = usize>,
        kind: &'static str,
    ) {
        self.crash_first_receivers(nodes, kind, 1);
    }

    /// The first `count` of `nodes` to receive a message of `kind` crash as it arrives.
    pub fn crash_first_receivers(
        &mut self,
        nodes: impl IntoIterator<Item = usize>,
        kind: &'static str,
        count: usize,
    ) {
        self.crash_on_receive = Some((nodes.into_iter().collect(), kind, count));
    }

    fn schedule(&mut self, at: Micros, action: Action) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, action)));
    }

    fn schedule_bytes(&mut self, from: usize, to: usize, bytes: Vec<u8>, delay: u64) {
        let msg = self.next_msg;
        self.next_msg += 1;
        self.in_flight.insert(msg, bytes);
        self.schedule(self.now.plus(delay), Action::Deliver { to, from, msg });
    }

    /// `to` cannot be reached: after `unreachable_delay` the sender's engine gets the message
    /// back through `handle_unreachable`.
    fn hand_back(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        let msg = self.next_msg;
        self.next_msg += 1;
        self.in_flight.insert(msg, bytes);
        let at = self.now.plus(self.cfg.unreachable_delay);
        self.schedule(
            at,
            Action::Unreachable {
                sender: from,
                dead: to,
                msg,
            },
        );
    }

    fn latency(&mut self) -> u64 {
        let span = self.cfg.latency_max.saturating_sub(self.cfg.latency_min) + 1;
        self.cfg.latency_min + self.rng.next_u64() % span
    }

    fn lost(&mut self) -> bool {
        self.cfg.loss > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < self.cfg.loss
    }

    /// Runs events until the queue is empty or `until` is reached.
    pub fn run_until(&mut self, until: Micros) {
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at > until {
                break;
            }
            let Some(Reverse((at, _, action))) = self.queue.pop() else {
                break;
            };
            self.now = self.now.max(at);
            self.step(action);
        }
        self.now = self.now.max(until);
    }

    /// Runs until nothing is scheduled before `limit` (every computation finished or expired).
    pub fn run(&mut self, limit: Micros) {
        self.run_until(limit);
    }

    fn step(&mut self, action: Action) {
        self.steps += 1;
        // A livelock (a deadline that never makes progress) must fail loudly, not hang.
        assert!(
            self.steps < MAX_STEPS,
            "harness exceeded {MAX_STEPS} steps at {:?}: livelock",
            self.now
        );
        match action {
            Action::Deliver { to, from, msg } => {
                let Some(bytes) = self.in_flight.remove(&msg) else {
                    return;
                };
                self.trace.update(self.now.0.to_le_bytes());
                self.trace.update((from as u64).to_le_bytes());
                self.trace.update((to as u64).to_le_bytes());
                self.trace.update(&bytes);
                let now = self.local_now(to);
                let from_id = self.nodes[from].identity.node;
                let Some(engine) = self.nodes[to].engine.as_mut() else {
                    self.traffic.dropped_at_dead_nodes += 1;
                    // The sender's transport notices the dead peer and hands the message back.
                    self.hand_back(from, to, bytes);
                    return;
                };
                match codec::decode(&bytes) {
                    Ok(message) => {
                        if let Some((nodes, kind, left)) = &mut self.crash_on_receive {
                            if *kind == message.kind() && nodes.remove(&to) {
                                *left -= 1;
                                if *left == 0 {
                                    self.crash_on_receive = None;
                                }
                                self.crash(to);
                                return;
                            }
                        }
                        if self.trace_deliveries {
                            eprintln!(
                                "{:>12} {from:>5} -> {to:<5} r{} {:?}",
                                now.0, message.round, message.body
                            );
                        }
                        let subject = self
                            .observe_delivery(to, &message)
                            // A share from anyone but its contributor carries none of its data.
                            .filter(
                                |(s, _)| !matches!(s, Subject::Contributor(_, x) if *x != from_id),
                            );
                        if self.launched_by.get(&message.computation) == Some(&to) {
                            self.check_release_share(&message);
                        }
                        let engine = self.nodes[to].engine.as_mut().expect("checked alive above");
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
                        if let Some((s, p)) = subject {
                            self.hold(to, s, p);
                        }
                    }
                    Err(e) => {
                        let _ = engine;
                        self.events.push((
                            self.now,
                            to,
                            Event::MessageRejected {
                                from: from_id,
                                kind: "bytes",
                                reason: e.to_string(),
                            },
                        ));
                    }
                }
                self.drain(to);
            }
            Action::Unreachable { sender, dead, msg } => {
                let Some(bytes) = self.in_flight.remove(&msg) else {
                    return;
                };
                let now = self.local_now(sender);
                let dead_id = self.nodes[dead].identity.node;
                let Some(engine) = self.nodes[sender].engine.as_mut() else {
                    return;
                };
                if let Ok(message) = codec::decode(&bytes) {
                    engine.handle_unreachable(now, dead_id, message);
                    self.drain(sender);
                }
            }
            Action::Timer { node, at } => {
                if self.nodes[node].timer != Some(at) {
                    return;
                }
                self.nodes[node].timer = None;
                let behind = self.nodes[node].clock_behind;
                let Some(engine) = self.nodes[node].engine.as_mut() else {
                    return;
                };
                engine.handle_timeout(Micros(at.0.saturating_sub(behind)));
                self.drain(node);
            }
            Action::Crash { node } => self.crash(node),
            Action::Restart { node } => {
                if self.nodes[node].engine.is_some() {
                    return;
                }
                self.nodes[node].restarts += 1;
                let seed = self.engine_seed(node);
                // Validity on before the replay, so restored computations check it too.
                let mut engine =
                    Engine::new(self.nodes[node].identity.clone(), seed, self.plans.clone())
                        .checking_validity()
                        .replay(self.nodes[node].durable.clone(), self.local_now(node))
                        .with_envelope(self.envelope());
                if self.skip_k_min.contains(&node) {
                    engine = engine.skipping_k_min_check();
                }
                self.nodes[node].engine = Some(engine);
                self.rejoin_beacon(node);
                self.drain(node);
            }
            Action::Beacon { round } => self.publish_round(round),
            Action::LateAck {
                sender,
                to,
                computation,
                slot,
            } => {
                let now = self.local_now(sender);
                let to_id = self.nodes[to].identity.node;
                if let Some(engine) = self.nodes[sender].engine.as_mut() {
                    engine.handle_late_ack(now, to_id, computation, slot);
                    self.drain(sender);
                }
            }
            Action::JobDone { job } => {
                let Some((node, restarts, job)) = self.jobs.remove(&job) else {
                    return;
                };
                if self.nodes[node].restarts != restarts {
                    return; // emitted before a crash: lost with the process
                }
                let now = self.local_now(node);
                let Some(engine) = self.nodes[node].engine.as_mut() else {
                    return;
                };
                engine.handle_job_done(now, job.run());
                self.drain(node);
            }
        }
    }

    fn crash(&mut self, node: usize) {
        self.nodes[node].engine = None;
        self.nodes[node].timer = None;
        self.jobs.retain(|_, (n, _, _)| *n != node);
    }

    /// What the receiver learns from a message, for the privacy checker.
    fn observe_delivery(&self, to: usize, m: &Message) -> Option<(Subject, Position)> {
        // The commissioner is meant to reconstruct the root: that is the result, of cells
        // that count at least `k_min` contributors only.
        let to_commissioner = self.launched_by.get(&m.computation) == Some(&to);
        check::learned(m, to_commissioner, || {
            self.plan(&m.computation).map(|plan| plan.root())
        })
    }

    /// The true count of contributors of each cell of a version (from the plaintext
    /// contributions of the contributors it expands to), as field sums of the indicators.
    /// What node `i` contributed to `id`, encoded: its values' encoding, or, for a request
    /// with differential privacy, the vector it persisted (its values plus its own noise), which
    /// is what the protocol must sum exactly.
    pub fn encoded_contribution(&self, id: &ComputationId, i: usize) -> Option<Vec<Fp>> {
        let spec = &self.requests.get(id)?.contribution;
        if spec.noise.is_some() {
            return self.nodes[i].durable.iter().find_map(|r| match r {
                Record::Contribution {
                    computation,
                    vector,
                    ..
                } if computation == id => Some(vector.0.clone()),
                _ => None,
            });
        }
        spec.encode(self.contributions.get(&i)?).ok()
    }

    pub fn true_cell_counts(&self, id: &ComputationId, digest: &Digest) -> Option<Vec<Fp>> {
        let request = self.requests.get(id)?;
        let spec = &request.contribution;
        let mut counts = vec![Fp::ZERO; spec.cell_count()];
        let indicators = spec.indicator_elements();
        for c in self.expand(digest) {
            let v = self.encoded_contribution(id, *self.index.get(&c)?)?;
            for (k, e) in indicators.iter().enumerate() {
                counts[k] += v[*e];
            }
        }
        Some(counts)
    }

    /// A release share reaching the commissioner: it must carry no cell below `k_min`.
    fn check_release_share(&mut self, m: &Message) {
        let Some(request) = self.requests.get(&m.computation) else {
            return;
        };
        let (spec, k_min) = (&request.contribution, request.privacy.k_min);
        let violations = check::release_share(m, spec, k_min, |version| {
            self.true_cell_counts(&m.computation, version)
        });
        self.privacy_violations.extend(violations);
    }

    fn hold(&mut self, node: usize, subject: Subject, position: Position) {
        let (Subject::Contributor(c, _) | Subject::Subtree(c, _, _)) = subject;
        let Some(t) = self.requests.get(&c).map(|r| r.privacy.t) else {
            return;
        };
        if let Err(violation) = self.holdings.hold(node, subject, position, t) {
            self.privacy_violations.push(violation);
        }
        self.combine(node, subject, position, t);
    }

    /// The privacy checker across versions: what `node` can now combine with what it held.
    fn combine(&mut self, node: usize, subject: Subject, position: Position, t: u8) {
        let (c, set) = match subject {
            Subject::Contributor(c, x) => (c, BTreeSet::from([x])),
            Subject::Subtree(c, _, digest) => (c, self.expand(&digest)),
        };
        let Some(plan) = self.plan(&c) else {
            return;
        };
        let nodes = &self.nodes;
        let groups = |n: usize| -> BTreeSet<GroupId> {
            let id = &nodes[n].identity.node;
            let roles = plan.roles_of(id).iter().chain(plan.backup_roles_of(id));
            roles.map(|(g, _)| *g).collect()
        };
        let exposures = self.combinations.learn(node, c, position, set, t, groups);
        self.privacy_violations.extend(exposures);
    }

    /// Drains node `n`'s engine (the drain rule, [`drain::drain`]) and arms its timer; a
    /// crash triggered by one of its sends ([`Cluster::crash_after_sends`]) stops the drain.
    fn drain(&mut self, n: usize) {
        let Some(mut engine) = self.nodes[n].engine.take() else {
            return;
        };
        let drained = drain::drain(&mut engine, &mut HarnessEffects { cluster: self, n });
        self.nodes[n].engine = Some(engine);
        match drained {
            Ok(next_deadline) => {
                if let Some(d) = next_deadline {
                    // The engine's deadline is on its own clock.
                    let d = d.plus(self.nodes[n].clock_behind).max(self.now);
                    if self.nodes[n].timer != Some(d) {
                        self.nodes[n].timer = Some(d);
                        self.schedule(d, Action::Timer { node: n, at: d });
                    }
                }
            }
            Err(Crashed) => self.crash(n),
        }
    }

    fn transmit(&mut self, from: usize, to: usize, message: &Message) {
        if let Some(b) = self.byzantine.get(&from).cloned() {
            if self.byzantine_started.insert((from, message.computation)) {
                let me = self.nodes[from].identity.node;
                let added = self
                    .plan(&message.computation)
                    .map(|plan| b.on_first_send(me, message.computation, &plan))
                    .unwrap_or_default();
                for (to_id, mut m) in added {
                    b.sign(&self.nodes[from].identity, &mut m);
                    if let Some(&to_i) = self.index.get(&to_id) {
                        self.send_bytes(from, to_i, &m);
                    }
                }
            }
            if let Some(mut m) = b.rewrite(to, message) {
                b.sign(&self.nodes[from].identity, &mut m);
                self.transmit_honest(from, to, &m);
            }
            return;
        }
        self.transmit_honest(from, to, message);
    }

    fn transmit_honest(&mut self, from: usize, to: usize, message: &Message) {
        if self.count_lies.is_empty() {
            self.send_bytes(from, to, message);
        } else {
            let lied = self.lie(message);
            self.send_bytes(from, to, &lied);
        }
    }

    fn send_bytes(&mut self, from: usize, to: usize, message: &Message) {
        let bytes = match codec::encode(message) {
            Ok(b) => b,
            Err(e) => {
                self.privacy_violations
                    .push(format!("node {from} produced an unencodable message: {e}"));
                return;
            }
        };
        self.traffic.messages += 1;
        self.traffic.bytes += bytes.len() as u64;
        let e = self.traffic.by_kind.entry(message.kind()).or_default();
        e.0 += 1;
        e.1 += bytes.len() as u64;
        if self.lost() {
            self.traffic.lost += 1;
            return;
        }
        if self.cut.contains(&(from, to)) {
            self.hand_back(from, to, bytes);
            return;
        }
        let extra = self.slow.get(&(from, message.kind())).copied().unwrap_or(0);
        let delay = self.latency() + extra;
        if self.late_acks.contains(&(from, to)) {
            self.hand_back(from, to, bytes.clone());
            if let Some(slot) = message.to {
                let at = self.now.plus(self.cfg.unreachable_delay + 1);
                let computation = message.computation;
                self.schedule(
                    at,
                    Action::LateAck {
                        sender: from,
                        to,
                        computation,
                        slot,
                    },
                );
            }
        }
        self.schedule_bytes(from, to, bytes, delay);
    }

    /// `message` as a lying child group's member sends it (see [`Cluster::lie_about_count`]).
    fn lie(&self, message: &Message) -> Message {
        let mut m = message.clone();
        let lie = |child: &GroupId, version: &mut crate::ids::Version| {
            if let Some(count) = self.count_lies.get(child) {
                version.count = *count;
            }
        };
        match &mut m.body {
            Body::Partial(p) | Body::PartialAhead(p) => lie(&p.child, &mut p.version),
            Body::PartialConfirm(p) => lie(&p.child, &mut p.version),
            Body::HealOffer(h) => lie(&h.child, &mut h.version),
            _ => {}
        }
        m
    }

    fn on_event(&mut self, n: usize, engine: &mut Engine, event: Event) {
        match &event {
            // Emitted after the contributor's last share left (a crash mid-drain cuts it off).
            Event::Contributed { computation, .. } => {
                *self.nodes[n].shares_sent.entry(*computation).or_default() += 1;
            }
            Event::RequestAccepted { computation, .. } => {
                // A node without a contribution declines, as a real node's owner would.
                let command = match self.contributions.get(&n).cloned() {
                    Some(values) => Command::Contribute {
                        computation: *computation,
                        values,
                    },
                    None => Command::Decline {
                        computation: *computation,
                    },
                };
                let now = self.local_now(n);
                if let Err(e) = engine.handle_command(now, command) {
                    let me = self.nodes[n].identity.node;
                    self.events.push((
                        self.now,
                        n,
                        Event::MessageRejected {
                            from: me,
                            kind: "contribute",
                            reason: e.to_string(),
                        },
                    ));
                }
            }
            Event::SentAhead {
                version, manifest, ..
            } => self.versions.know(version, manifest.clone()),
            Event::ManifestAdopted {
                computation,
                group,
                position,
                version,
                manifest,
                complete,
            } => {
                let adopted =
                    self.versions
                        .adopt(*computation, *group, *position, version, manifest.clone());
                if let Err(violation) = adopted {
                    self.disagreements.entry(*computation).or_insert(violation);
                }
                if *complete {
                    self.hold(
                        n,
                        Subject::Subtree(*computation, *group, version.digest),
                        *position,
                    );
                }
            }
            _ => {}
        }
        self.events.push((self.now, n, event));
    }

    /// Contributors covered by a version, expanded through the manifests seen.
    pub fn expand(&self, digest: &Digest) -> BTreeSet<NodeId> {
        self.versions.expand(digest)
    }

    pub fn privacy_violations(&self) -> &[String] {
        &self.privacy_violations
    }

    /// Hash of every delivery so far (time, endpoints, bytes): equal seeds give equal hashes.
    pub fn trace_hash(&self) -> [u8; 32] {
        self.trace.clone().finalize().into()
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The outcome of a computation. Fails if two positions of one group adopted different
    /// manifests, if the result is not exactly the plaintext sum over the contributor set its
    /// version names, or if that set's size is not the reported count.
    pub fn outcome(&self, id: &ComputationId) -> Result<Outcome, String> {
        let request = self.requests.get(id).ok_or("unknown computation")?;
        let mut released = None;
        let mut failures = Vec::new();
        for (_, _, e) in &self.events {
            match e {
                Event::Released(r) if r.computation == *id => {
                    if released.is_some() {
                        return Err("released twice".into());
                    }
                    released = Some((**r).clone());
                }
                Event::Failed {
                    computation,
                    reason,
                } if computation == id => failures.push(reason.clone()),
                _ => {}
            }
        }
        // Agreement: every position of a group that adopts a manifest adopts the same one.
        if let Some(violation) = self.disagreements.get(id) {
            return Err(violation.clone());
        }
        // Root members opened the true counts of their version's cells (their indicators'
        // sums, and nothing else of the vector).
        for (n, slot) in self.nodes.iter().enumerate() {
            for r in &slot.durable {
                if let Record::CountsOpened {
                    computation,
                    version,
                    counts,
                    ..
                } = r
                {
                    if computation == id
                        && self.true_cell_counts(id, version).as_ref() != Some(&counts.0)
                    {
                        return Err(format!(
                            "node {n} opened counts that are not its version's cell counts"
                        ));
                    }
                }
            }
        }
        let mut contributors = BTreeSet::new();
        let mut finished_sending = BTreeSet::new();
        for &i in self.contributions.keys() {
            let node = self.nodes[i].identity.node;
            contributors.insert(node);
            if self.nodes[i].shares_sent.get(id).copied().unwrap_or(0) > 0 {
                finished_sending.insert(node);
            }
        }
        let mut included = BTreeSet::new();
        if let Some(r) = &released {
            included = self.expand(&r.version.digest);
            if self.count_lies.is_empty() {
                check::count(&r.version, included.len())?;
            }
            let spec = &request.contribution;
            let expected = check::sum_of(spec, &included, |c| {
                let i = *self
                    .index
                    .get(c)
                    .ok_or("included a node outside the cluster")?;
                self.encoded_contribution(id, i)
                    .ok_or_else(|| "included a node that did not contribute".to_string())
            })?;
            check::exact(spec, request.privacy.k_min, r, expected)?;
        }
        Ok(Outcome {
            released,
            failures,
            included,
            contributors,
            finished_sending,
        })
    }

    /// Runs a minute of virtual time and returns the computation's outcome; panics if the
    /// result check fails or the privacy checker saw a violation (the scenario tests' run).
    pub fn run_checked(&mut self, id: &ComputationId) -> Outcome {
        self.run(self.now.plus(60_000_000));
        let outcome = self
            .outcome(id)
            .unwrap_or_else(|e| panic!("result check failed: {e}"));
        assert!(
            self.privacy_violations.is_empty(),
            "privacy: {:?}",
            self.privacy_violations
        );
        outcome
    }

    /// Records node `n` persisted so far.
    pub fn durable(&self, n: usize) -> &[Record] {
        &self.nodes[n].durable
    }

    /// Events of one kind at one node, for assertions.
    pub fn events_at(&self, n: usize) -> impl Iterator<Item = &Event> {
        self.events
            .iter()
            .filter(move |(_, i, _)| *i == n)
            .map(|(_, _, e)| e)
    }

    /// Node `n`'s rejections of messages of `kind` whose reason contains `reason`.
    pub fn rejections(&self, n: usize, kind: &str, reason: &str) -> usize {
        self.events_at(n)
            .filter(|e| {
                matches!(e, Event::MessageRejected { kind: k, reason: r, .. }
                    if *k == kind && r.contains(reason))
            })
            .count()
    }
}

/// A node crashed in the middle of its drain ([`Cluster::crash_after_sends`]).
struct Crashed;

/// Node `n`'s effects on the virtual network: records join its durable log, sends and
/// broadcasts cross the codec to the other engines, events go to the checkers.
struct HarnessEffects<'a> {
    cluster: &'a mut Cluster,
    n: usize,
}

impl Effects for HarnessEffects<'_> {
    type Error = Crashed;

    fn persist(&mut self, records: Vec<Record>) -> Result<(), Crashed> {
        self.cluster.nodes[self.n].durable.extend(records);
        Ok(())
    }

    fn send(&mut self, to: NodeId, message: Message) -> Result<(), Crashed> {
        let (c, n) = (&mut *self.cluster, self.n);
        let kind = message.kind();
        if let Some(&to_i) = c.index.get(&to) {
            c.transmit(n, to_i, &message);
        }
        let count = c.nodes[n].sends_by_kind.entry(kind).or_default();
        *count += 1;
        if c.crash_after.get(&(n, kind)) == Some(count) {
            return Err(Crashed);
        }
        Ok(())
    }

    fn broadcast(&mut self, message: Message) -> Result<(), Crashed> {
        for to in 0..self.cluster.nodes.len() {
            if to != self.n {
                self.cluster.transmit(self.n, to, &message);
            }
        }
        Ok(())
    }

    fn event(&mut self, engine: &mut Engine, event: Event) -> Result<(), Crashed> {
        self.cluster.on_event(self.n, engine, event);
        Ok(())
    }

    fn work(&mut self, engine: &mut Engine, job: crate::engine::Job) -> Result<(), Crashed> {
        let c = &mut *self.cluster;
        let Some(delay) = c.job_delays.get(job.kind()).copied().or(c.job_delay) else {
            engine.run_job_inline(job);
            return Ok(());
        };
        let id = c.next_job;
        c.next_job += 1;
        c.jobs.insert(id, (self.n, c.nodes[self.n].restarts, job));
        c.schedule(c.now.plus(delay), Action::JobDone { job: id });
        Ok(())
    }
}
