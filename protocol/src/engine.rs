//! The Grove engine: one sans-IO state machine per node that plays every role the node holds
//! in every computation (contributor, aggregator at any level, commissioner).
//!
//! Contract (the drain rule): feed one input (`handle_message`, `handle_timeout`,
//! `handle_command`), then call `poll_output` until it returns [`Output::Idle`], which carries
//! the next deadline. Apply [`Output::Persist`] records durably before performing any later
//! [`Output::Send`]. Time and randomness are passed in; the same inputs give the same outputs.

use crate::beacon::{Beacon, BeaconError, Randomness, Round};
use crate::encoding::EncodingError;
use crate::field::Fp;
use crate::ids::{hash_parts, ComputationId, GroupId, Micros, NodeId, Position, Version};
use crate::limits::{MAX_AWAITING_BEACON, MAX_BEACON_ROUNDS, MAX_CLOCK_SKEW_MICROS};
use crate::membership::CandidateRule;
use crate::message::{AdoptionCertificate, Body, Manifest, Message, Slot};
use crate::plan::{request_seed, Plan, PlanCache, PlanError};
use crate::record::Record;
use crate::request::{Request, RequestError, RequestValidator, SignedRequest};
use crate::seal::{Envelope, NoiseEnvelope};
use crate::snapshot::DirectorySnapshot;
use aggregator::{advance_role, on_root_query, role_deadline, send_up};
use agreement::{
    adopted_report, apply_accepted, apply_promised, on_manifest, on_report, on_solicit, on_vote,
};
use collection::{
    apply_child_held, apply_share_held, on_decline, on_partial, on_partial_ahead,
    on_partial_confirm, on_share,
};
use commissioner::{
    advance_commissioner, apply_counts_opened, best_version, on_count_share, on_finish,
    on_release_ask, on_release_share, on_root_ready, Commissioner, Phase,
};
use contributor::Contribution;
use heal::{on_heal_go, on_heal_offer, on_heal_part, on_heal_query, take_over_adopted};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use role::{apply_adopted, apply_takeover, Acceptor, Role};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use thiserror::Error;

/// The output sink of the engine for one input, borrowing only the fields it needs (so a
/// computation can be borrowed mutably beside it).
macro_rules! ctx {
    ($engine:expr) => {
        Ctx {
            me: &$engine.identity,
            envelope: $engine.envelope.as_ref(),
            now: $engine.now,
            out: &mut $engine.out,
            rejections: &mut $engine.rejections,
        }
    };
}

mod aggregator;
mod agreement;
pub mod certificate;
mod collection;
mod commissioner;
mod contributor;
mod early;
mod failover;
mod heal;
pub mod manifest;
mod rejection;
mod role;
mod slots;
mod strategy;
mod validity;
pub use validity::{aggregated_shares_for_proof, ValidityLie};

pub use manifest::{alone, choose_manifest, version_of};
pub use rejection::Rejection;
pub use strategy::{Strategy, StrategyKind};

/// Who this node is: its id in plans, the secret of its static X25519 key, and the secret
/// (seed) of its Ed25519 key, which signs its accepts and votes (the node's libp2p identity
/// key).
#[derive(Clone)]
pub struct Identity {
    pub node: NodeId,
    pub x25519_secret: [u8; 32],
    pub ed25519_secret: [u8; 32],
}

impl Identity {
    /// The public keys a directory snapshot lists for this node.
    pub fn keys(&self) -> crate::plan::PeerKeys {
        crate::plan::PeerKeys {
            x25519: crate::seal::x25519_public(&self.x25519_secret),
            ed25519: ed25519_dalek::SigningKey::from_bytes(&self.ed25519_secret)
                .verifying_key()
                .to_bytes(),
        }
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// What the node's owner or driver asks the engine to do.
#[derive(Clone, Debug)]
pub enum Command {
    /// Launch a signed request as its commissioner. `finish_signature` is the commissioner's
    /// signature of the completion note (`finish_signing_bytes`), made by the driver that holds
    /// the key.
    Launch {
        request: Box<SignedRequest>,
        finish_signature: Vec<u8>,
        /// The directory to plan over (the one the request names, if it names one).
        directory: DirectorySnapshot,
    },
    /// Contribute these values (the owner consented) to a known computation.
    Contribute {
        computation: ComputationId,
        values: Vec<f64>,
    },
    /// This node will not contribute to a known computation: tell its leaf group, so that the
    /// leaf need not wait for its share window.
    Decline { computation: ComputationId },
}

#[derive(Debug, Error, PartialEq)]
pub enum CommandError {
    #[error("unknown computation {0}")]
    UnknownComputation(ComputationId),
    #[error("this node already contributed to computation {0}")]
    AlreadyContributed(ComputationId),
    #[error("the contribution does not fit the request: {0}")]
    Encoding(#[from] EncodingError),
    #[error("the request is refused: {0}")]
    Refused(Refusal),
}

/// Why a request was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{kind:?}: {detail}")]
pub struct Refusal {
    pub kind: RefusalKind,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RefusalKind {
    BadSignature,
    Malformed,
    Expired,
    FromTheFuture,
    Replayed,
    Plan,
    Busy,
    /// The request names no beacon round, another chain, a round not in its future, or one
    /// already published before the request arrived; or this engine has no beacon to verify
    /// the round it names.
    Beacon,
    /// The candidate set (the snapshot the request names) breaks the candidate-set rule
    /// (`membership::CandidateRule`).
    Candidates,
}

impl From<RequestError> for Refusal {
    fn from(e: RequestError) -> Refusal {
        let kind = match &e {
            RequestError::BadSignature => RefusalKind::BadSignature,
            RequestError::Malformed(_) => RefusalKind::Malformed,
            RequestError::Expired { .. } => RefusalKind::Expired,
            RequestError::FromTheFuture { .. } => RefusalKind::FromTheFuture,
            RequestError::Replayed(_) => RefusalKind::Replayed,
        };
        Refusal {
            kind,
            detail: e.to_string(),
        }
    }
}

impl From<PlanError> for Refusal {
    fn from(e: PlanError) -> Refusal {
        Refusal {
            kind: RefusalKind::Plan,
            detail: e.to_string(),
        }
    }
}

/// Why the commissioner got no result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No element of the result lies only in cells that count `k_min` contributors (for a
    /// query: no row does): the root members released nothing of its `cells` cells.
    KMinNotMet { k_min: u64, cells: usize },
    /// Differential privacy: the chosen version sums `summed` contributors, fewer than the
    /// `honest_sources` the query's noise was sized for, so it carries less noise than the
    /// guarantee needs and the root members released nothing of it (whatever its cells count).
    TooFewNoiseSources { summed: u64, honest_sources: u32 },
    /// No version was held by `t` root positions before the deadline.
    NoQuorum { best_holders: usize },
    /// A version held by `t` root positions was chosen, but fewer of its shares than a checked
    /// release needs (`t + 1` of one mask; `t` when `g = t`) arrived before the deadline, even
    /// after asking again: exactly `t` shares cannot be checked against each other, so a
    /// lying root member among them would go unseen. `missing`: the root positions whose
    /// share never came (dead, withholding, or never holding the version).
    SharesMissing {
        received: usize,
        missing: Vec<Position>,
    },
    /// The root shares of the chosen version lie on no one polynomial of degree `t - 1` that
    /// enough of them agree on to correct it: nothing is released, and these root positions
    /// are the ones whose shares disagree with the best-supported polynomial.
    InconsistentRootShares { positions: Vec<Position> },
}

/// The result the commissioner reconstructs.
#[derive(Clone, Debug, PartialEq)]
pub struct Released {
    pub computation: ComputationId,
    pub version: Version,
    /// The exact field sum over the contributors of `version`, at every released element
    /// (zero where `released` is false).
    pub sum: Vec<Fp>,
    /// The decoded sum, per element (zero where `released` is false).
    pub values: Vec<f64>,
    /// Which elements the root members released: those of cells that count at least
    /// `k_min` contributors (see `ContributionSpec::cells`).
    pub released: Vec<bool>,
    /// When the result was reconstructed.
    pub at: Micros,
    /// Root positions whose shares did not lie on the polynomial the others agree on: left out
    /// of the reconstruction (empty when every share agreed, or only `t` arrived).
    pub excluded: Vec<Position>,
}

/// What the commissioner of a computation knows of its progress ([`Engine::commissioner_progress`]):
/// a driver shows it; no private value is in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommissionerProgress {
    /// Root positions that reported a version.
    pub root_reports: usize,
    /// The most root positions that reported one same version.
    pub best_version_holders: usize,
    /// Whether the commissioner chose the version to release (and asked for its shares).
    pub version_chosen: bool,
    /// Root shares of the chosen version received so far.
    pub root_shares: usize,
    /// Whether the result was released (or the computation failed) and the commissioner is done.
    pub done: bool,
}

/// Something the driver may want to know, show or audit. Events carry no private values,
/// except the commissioner's released result.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    RequestAccepted {
        computation: ComputationId,
        /// Aggregator positions this node holds in the plan.
        roles: usize,
    },
    RequestRefused {
        computation: ComputationId,
        reason: Refusal,
    },
    /// A message was dropped because it broke the protocol; the reason says which rule.
    MessageRejected {
        from: NodeId,
        kind: &'static str,
        reason: String,
    },
    Contributed {
        computation: ComputationId,
        group: GroupId,
    },
    ManifestAdopted {
        computation: ComputationId,
        group: GroupId,
        position: Position,
        version: Version,
        manifest: Manifest,
        /// Whether this member holds every item (and so sends up).
        complete: bool,
    },
    /// A member sent its partial sum ahead of its group's agreement, of this version and
    /// manifest (which its group may never adopt: the harness's privacy checker needs it).
    SentAhead {
        computation: ComputationId,
        group: GroupId,
        position: Position,
        version: Version,
        manifest: Manifest,
    },
    HealDone {
        computation: ComputationId,
        child: GroupId,
        target: Position,
        version: Version,
    },
    HealGaveUp {
        computation: ComputationId,
        child: GroupId,
        target: Position,
    },
    Released(Box<Released>),
    Failed {
        computation: ComputationId,
        reason: Failure,
    },
    Closed {
        computation: ComputationId,
    },
}

/// One effect for the driver to carry out.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Send {
        to: NodeId,
        message: Message,
    },
    /// Spread to every node (gossip).
    Broadcast {
        message: Message,
    },
    Persist(Record),
    Event(Event),
    /// CPU work for the driver to run (a contributor's validity proof, a leaf member's
    /// verification of one contributor): a pure job that owns its inputs, run on any thread
    /// ([`Job::run`]) or inline, whose result comes back as a later input
    /// ([`Engine::handle_job_done`]). Nothing waits for it: the engine goes on handling other
    /// inputs meanwhile.
    Work(Job),
    /// Nothing more until the next input; call `handle_timeout` at `next_deadline`.
    Idle {
        next_deadline: Option<Micros>,
    },
}

/// A pure, self-contained piece of CPU work the engine hands its driver ([`Output::Work`]):
/// it owns its inputs and borrows no engine state, so a driver may run it on another thread.
/// Nothing about it is persisted: it is a deterministic function of persisted state, and the
/// engine asks for it again after a restart (see `engine/validity.rs`, "The proof as a job").
#[derive(Clone, Debug, PartialEq)]
pub struct Job(JobKind);

#[derive(Clone, Debug, PartialEq)]
enum JobKind {
    Prove(Box<validity::ProveJob>),
    Verify(Box<validity::VerifyJob>),
}

/// A [`Job`]'s result, for [`Engine::handle_job_done`].
#[derive(Clone, Debug, PartialEq)]
pub struct JobDone(DoneKind);

#[derive(Clone, Debug, PartialEq)]
enum DoneKind {
    Proved(Box<validity::Proved>),
    Verified(Box<validity::Verified>),
}

impl Job {
    fn prove(job: validity::ProveJob) -> Job {
        Job(JobKind::Prove(Box::new(job)))
    }

    fn verify(job: validity::VerifyJob) -> Job {
        Job(JobKind::Verify(Box::new(job)))
    }

    /// Does the work (milliseconds to about a hundred: a proof at the largest vectors).
    pub fn run(self) -> JobDone {
        match self.0 {
            JobKind::Prove(job) => JobDone(DoneKind::Proved(Box::new(job.run()))),
            JobKind::Verify(job) => JobDone(DoneKind::Verified(Box::new(job.run()))),
        }
    }

    /// What it does: `"prove"` (a contributor's validity proof) or `"verify"` (a leaf
    /// member's verifier share of one contributor).
    pub fn kind(&self) -> &'static str {
        match &self.0 {
            JobKind::Prove(_) => "prove",
            JobKind::Verify(_) => "verify",
        }
    }

    /// The computation it works for.
    pub fn computation(&self) -> ComputationId {
        match &self.0 {
            JobKind::Prove(job) => job.computation(),
            JobKind::Verify(job) => job.computation(),
        }
    }
}

/// The bytes a commissioner signs to close a computation.
pub fn finish_signing_bytes(computation: &ComputationId) -> [u8; 32] {
    hash_parts("grove/finish/v1", &[&computation.0])
}

/// The commissioner's signature of a computation's completion note (`Command::Launch` carries it).
pub fn sign_finish(computation: &ComputationId, key: &ed25519_dalek::SigningKey) -> Vec<u8> {
    use ed25519_dalek::Signer;
    key.sign(&finish_signing_bytes(computation))
        .to_bytes()
        .to_vec()
}

struct Computation {
    signed: Arc<SignedRequest>,
    plan: Arc<Plan>,
    contribution: Option<Contribution>,
    roles: BTreeMap<Slot, Role>,
    commissioner: Option<Commissioner>,
    /// X25519 shared secrets with other members, for heal masks.
    dh: BTreeMap<NodeId, [u8; 32]>,
    /// Positions this node failed over: index into the position's candidates.
    servers: BTreeMap<Slot, usize>,
    /// The engine's recovery strategy (Grove, or a DISSEC baseline in the simulator).
    strategy: Strategy,
    /// This node's acceptor state in each group it is a candidate of (member or backup).
    acceptors: BTreeMap<GroupId, Acceptor>,
    /// The candidate set the request was planned over (the directory snapshot it names):
    /// only these identities may send shares or declines (`Rejection::NotACandidate`).
    /// Cloning a snapshot shares its entries.
    candidates: DirectorySnapshot,
    /// The validity statement contributions must prove (`engine/validity.rs`), if this engine
    /// checks validity and the request has one.
    validity: Option<Arc<validity::Statement>>,
    /// Groups whose adopted manifest this backup asked for after a heal query for a position it
    /// did not serve, and when (`heal::ask_for_adoption`; never persisted).
    adoption_asked: BTreeMap<GroupId, Micros>,
    /// When this engine installed the request, on its own clock (persisted as
    /// `Record::RequestSeen`; after a restart from a log without one, when it replayed the
    /// request). `agreement::round_in_reach` counts from it when it is before the request's
    /// `created_at`, which is the commissioner's clock.
    seen_at: Micros,
}

impl Computation {
    fn request(&self) -> &Request {
        &self.signed.request
    }
    fn id(&self) -> ComputationId {
        self.signed.request.id
    }
    fn len(&self) -> usize {
        self.signed.request.contribution.length as usize
    }
    /// Whether `node` is in the candidate set the request was planned over (it may
    /// contribute or decline).
    fn is_candidate_set_member(&self, node: &NodeId) -> bool {
        self.candidates.directory().x25519_key(node).is_some()
    }
}

/// The node serving `slot` as far as this node knows.
fn server_of(plan: &Plan, servers: &BTreeMap<Slot, usize>, slot: Slot) -> NodeId {
    let rank = servers.get(&slot).copied().unwrap_or(0);
    plan.candidates(slot.group, slot.position)
        .nth(rank)
        .unwrap_or_else(|| plan.member(slot.group, slot.position))
}

fn slot(group: GroupId, position: Position) -> Slot {
    Slot { group, position }
}

fn count_rejection(counts: &mut BTreeMap<Rejection, u64>, reason: Rejection) {
    let n = counts.entry(reason).or_default();
    *n = n.saturating_add(1);
}

/// Applies a record of one computation and emits it at once, so that sends queued after it
/// depend on durable state (the persist-before-send rule, for handlers that send).
fn persist(comp: &mut Computation, ctx: &mut Ctx, record: Record) {
    match apply_to_computation(comp, &record) {
        Ok(()) => ctx.out.push_back(Output::Persist(record)),
        Err(reason) => {
            let me = ctx.me.node;
            ctx.reject(me, "record", reason);
        }
    }
}

/// Output sink and clock for one input.
struct Ctx<'a> {
    me: &'a Identity,
    envelope: &'a dyn Envelope,
    now: Micros,
    out: &'a mut VecDeque<Output>,
    rejections: &'a mut BTreeMap<Rejection, u64>,
}

impl Ctx<'_> {
    /// Sends to a node, for replies and messages to the commissioner.
    fn send(&mut self, to: NodeId, computation: ComputationId, round: u32, body: Body) {
        self.send_to(to, computation, round, body, None);
    }

    fn send_to(
        &mut self,
        to: NodeId,
        computation: ComputationId,
        round: u32,
        body: Body,
        slot: Option<Slot>,
    ) {
        self.out.push_back(Output::Send {
            to,
            message: Message {
                computation,
                round,
                body,
                to: slot,
            },
        });
    }

    /// Sends to whoever currently serves a position: its member, or the backup this node
    /// failed over to after the member was unreachable.
    fn send_slot(
        &mut self,
        plan: &Plan,
        servers: &BTreeMap<Slot, usize>,
        computation: ComputationId,
        slot: Slot,
        round: u32,
        body: Body,
    ) {
        let to = server_of(plan, servers, slot);
        self.send_to(to, computation, round, body, Some(slot));
    }

    /// Sends `body` to every position of `key`'s group but `key`'s own, each to whoever
    /// serves it.
    fn send_to_group(&mut self, comp: &Computation, key: Slot, round: u32, body: Body) {
        for p in (1..=comp.plan.g).filter(|p| *p != key.position) {
            self.send_slot(
                &comp.plan,
                &comp.servers,
                comp.id(),
                slot(key.group, p),
                round,
                body.clone(),
            );
        }
    }
    fn event(&mut self, event: Event) {
        self.out.push_back(Output::Event(event));
    }
    /// Refuses input (counted by reason) and tells the driver.
    fn reject(&mut self, from: NodeId, kind: &'static str, reason: Rejection) {
        count_rejection(self.rejections, reason);
        self.event(Event::MessageRejected {
            from,
            kind,
            reason: reason.to_string(),
        });
    }
}

/// The engine of one node.
pub struct Engine {
    identity: Identity,
    rng: ChaCha20Rng,
    plans: Arc<PlanCache>,
    /// Snapshots recorded for requests not installed yet: a `Directory` record waits here for
    /// the `Accepted` or `Launched` record that follows it.
    directories: BTreeMap<ComputationId, DirectorySnapshot>,
    validator: RequestValidator,
    /// Boxed: a map node holds room for eleven entries, and most engines hold one.
    computations: BTreeMap<ComputationId, Box<Computation>>,
    /// Messages for computations whose request has not arrived yet (`early`).
    early: early::EarlyQueue,
    out: VecDeque<Output>,
    now: Micros,
    envelope: Arc<dyn Envelope>,
    strategy: Strategy,
    /// The commissioner checks the counts of the cells it reconstructs (always, but in tests
    /// that play a commissioner ignoring the rule: [`Engine::skipping_k_min_check`]).
    check_k_min: bool,
    /// Test-only: the lie this node tells in its validity proofs (`validity::ValidityLie`).
    validity_lie: Option<ValidityLie>,
    /// Contributors prove their contributions valid and leaf members check the proofs
    /// (`Engine::checking_validity`; the daemon and the harness set it, issue 17).
    check_validity: bool,
    /// Input refused since this engine started, by reason (at most one entry per variant).
    rejections: BTreeMap<Rejection, u64>,
    /// The beacon chain whose rounds seed plans (`None`: requests must name no round, and
    /// plans are seeded by the request id).
    beacon: Option<Arc<Beacon>>,
    /// Verified rounds, by number (at most `MAX_BEACON_ROUNDS`).
    rounds: BTreeMap<u64, Randomness>,
    /// Validated requests waiting for the round they name (at most `MAX_AWAITING_BEACON`).
    awaiting: BTreeMap<ComputationId, Awaiting>,
    /// Beacon records applied for requests not installed yet (like `directories`).
    seeds: BTreeMap<ComputationId, Randomness>,
    /// The candidate-set rule applied at request intake (`None`: no membership view).
    candidate_rule: Option<Arc<dyn CandidateRule>>,
    /// The commissioners the owner trusts (`slots`); `None`: the driver makes no distinction.
    trusted: Option<std::collections::BTreeSet<crate::request::CommissionerKey>>,
}

/// A validated request waiting for its beacon round.
struct Awaiting {
    signed: SignedRequest,
    directory: Option<DirectorySnapshot>,
    /// Set if this node launched it: the commissioner's finish signature.
    finish: Option<Vec<u8>>,
}

impl Engine {
    /// A fresh engine. `seed` feeds its CSPRNG (sharing seeds, envelope ephemerals).
    /// `plans` memoises plans (pass a fresh one, or share one among the engines of a process).
    pub fn new(identity: Identity, seed: [u8; 32], plans: Arc<PlanCache>) -> Engine {
        Engine {
            identity,
            rng: ChaCha20Rng::from_seed(seed),
            plans,
            directories: BTreeMap::new(),
            validator: RequestValidator::new(),
            computations: BTreeMap::new(),
            early: early::EarlyQueue::default(),
            out: VecDeque::new(),
            now: Micros::ZERO,
            envelope: Arc::new(NoiseEnvelope),
            strategy: Strategy::default(),
            check_k_min: true,
            validity_lie: None,
            check_validity: false,
            rejections: BTreeMap::new(),
            beacon: None,
            rounds: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            seeds: BTreeMap::new(),
            candidate_rule: None,
            trusted: None,
        }
    }

    /// Seeds every plan from the beacon chain `beacon`: a request must name a future round of
    /// it, and is planned only once that round arrives (`handle_beacon`) and verifies.
    pub fn with_beacon(mut self, beacon: Arc<Beacon>) -> Engine {
        self.beacon = Some(beacon);
        self
    }

    /// Applies `rule` to every request's candidate set (the snapshot it comes with) before
    /// accepting it, and to the members of this node's leaf before it contributes.
    pub fn with_candidate_rule(mut self, rule: Arc<dyn CandidateRule>) -> Engine {
        self.candidate_rule = Some(rule);
        self
    }

    /// The beacon rounds this engine waits for (requests that name them are held): a driver
    /// fetches them when they are published and hands them in with `handle_beacon`.
    pub fn awaited_rounds(&self) -> Vec<u64> {
        let rounds: std::collections::BTreeSet<u64> = self
            .awaiting
            .values()
            .filter_map(|a| a.signed.request.beacon.map(|b| b.round))
            .collect();
        rounds.into_iter().collect()
    }

    /// A beacon round, as a relay (or the test chain) served it. It is verified against the
    /// configured chain's key; a round that does not verify (a bad signature, another chain's
    /// round) is refused and counted (`Rejection::BadBeaconRound`). A verified round plans
    /// every request waiting for it.
    pub fn handle_beacon(&mut self, now: Micros, round: Round) -> Result<(), BeaconError> {
        self.now = self.now.max(now);
        let Some(beacon) = self.beacon.clone() else {
            return Err(BeaconError::NotConfigured);
        };
        let randomness = match beacon.verify(round.round, &round) {
            Ok(r) => r,
            Err(e) => {
                let me = self.identity.node;
                self.reject(me, "beacon", Rejection::BadBeaconRound);
                return Err(e);
            }
        };
        if self.rounds.len() >= MAX_BEACON_ROUNDS && !self.rounds.contains_key(&round.round) {
            self.rounds.pop_first();
        }
        self.rounds.insert(round.round, randomness);
        let ready: Vec<ComputationId> = self
            .awaiting
            .iter()
            .filter(|(_, a)| {
                a.signed
                    .request
                    .beacon
                    .is_some_and(|b| b.round == round.round)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            if let Some(a) = self.awaiting.remove(&id) {
                self.admit(a.signed, a.directory, a.finish, Some(randomness), None);
            }
        }
        self.advance_all();
        Ok(())
    }

    /// Contributors send validity proofs and leaf members admit a contribution only once its
    /// proof is accepted, for requests whose query compiles to their spec
    /// (`engine/validity.rs`). Every node of a network must agree on it. Applies to
    /// computations installed after the call: set it before [`Engine::replay`].
    pub fn checking_validity(mut self) -> Engine {
        self.check_validity = true;
        self
    }

    /// Test only: a commissioner that ignores `k_min` (it shows every cell it can
    /// reconstruct). The root members' rule must still keep every cell below `k_min` from it.
    #[cfg(any(test, feature = "test-util"))]
    pub fn skipping_k_min_check(mut self) -> Engine {
        self.check_k_min = false;
        self
    }

    /// Plays a baseline recovery strategy instead of Grove's (the simulator's comparison with
    /// DISSEC); nodes keep the default. Applies to every computation, including restored ones.
    pub fn with_strategy(mut self, strategy: Strategy) -> Engine {
        for comp in self.computations.values_mut() {
            comp.strategy = strategy.clone();
        }
        self.strategy = strategy;
        self
    }

    /// Replaces how shares are sealed (the simulator's size-only mode); nodes keep the default
    /// Noise envelope.
    pub fn with_envelope(mut self, envelope: Arc<dyn Envelope>) -> Engine {
        self.envelope = envelope;
        self
    }

    /// Shares one set of verified request signatures with the other engines of this process
    /// (the simulator: every node checks the same signature); see
    /// [`crate::request::VerifiedSignatures`]. Nodes do not call it.
    pub fn with_verified_signatures(
        mut self,
        verified: Arc<crate::request::VerifiedSignatures>,
    ) -> Engine {
        self.validator.share_verified(verified);
        self
    }

    /// Rebuilds an engine from its persisted records (in the order they were emitted) and
    /// resumes its roles: it re-sends what its state implies and re-arms its timers. Drain
    /// `poll_output` afterwards. A record that no longer fits (for example a plan that cannot
    /// be rebuilt) is skipped and reported as a `MessageRejected` event from this node.
    pub fn restore(
        identity: Identity,
        seed: [u8; 32],
        plans: Arc<PlanCache>,
        records: impl IntoIterator<Item = Record>,
        now: Micros,
    ) -> Engine {
        Engine::new(identity, seed, plans).replay(records, now)
    }

    /// Rebuilds this fresh engine's state from its durable records (what [`Engine::restore`]
    /// does), after options that shape computations (`checking_validity`) are set, so that a
    /// restarted node checks validity exactly as its peers do.
    pub fn replay(self, records: impl IntoIterator<Item = Record>, now: Micros) -> Engine {
        let mut engine = self;
        engine.now = now;
        for record in records {
            if let Err(reason) = engine.apply_record(&record) {
                let me = engine.identity.node;
                engine.reject(me, "record", reason);
            }
        }
        // A snapshot whose request record never made it to the store plans nothing.
        engine.directories.clear();
        let ids: Vec<ComputationId> = engine.computations.keys().copied().collect();
        for id in ids {
            engine.resume(id);
        }
        engine.advance_all();
        engine
    }

    /// How many messages (and records) this engine refused since it started, by reason.
    pub fn rejections(&self) -> &BTreeMap<Rejection, u64> {
        &self.rejections
    }

    /// Refuses input (counted by reason) and tells the driver.
    fn reject(&mut self, from: NodeId, kind: &'static str, reason: Rejection) {
        count_rejection(&mut self.rejections, reason);
        self.out.push_back(Output::Event(Event::MessageRejected {
            from,
            kind,
            reason: reason.to_string(),
        }));
    }

    pub fn node_id(&self) -> NodeId {
        self.identity.node
    }

    /// Computations this node holds state for.
    pub fn computations(&self) -> impl Iterator<Item = &ComputationId> {
        self.computations.keys()
    }

    /// The signed request of a computation this engine accepted (signature, parameters,
    /// clock and replay checked) and holds state for: what an owner's consent must read.
    pub fn request(&self, id: &ComputationId) -> Option<&SignedRequest> {
        self.computations.get(id).map(|c| c.signed.as_ref())
    }

    /// The plan of a computation this engine holds state for.
    pub fn plan(&self, id: &ComputationId) -> Option<&Plan> {
        self.computations.get(id).map(|c| c.plan.as_ref())
    }

    /// The commissioner's view of a computation this node launched; `None` if this node is not
    /// its commissioner or holds no state for it. A getter: it changes nothing.
    pub fn commissioner_progress(&self, id: &ComputationId) -> Option<CommissionerProgress> {
        let c = self.computations.get(id)?.commissioner.as_ref()?;
        Some(CommissionerProgress {
            root_reports: c.ready.len(),
            best_version_holders: commissioner::best_version(&c.ready).map_or(0, |(_, n)| n),
            version_chosen: match &c.phase {
                Phase::Waiting { .. } => false,
                Phase::Releasing(_) => true,
                Phase::Done { chosen, .. } => *chosen,
            },
            root_shares: match &c.phase {
                Phase::Waiting { .. } => 0,
                Phase::Releasing(r) => r.shares.len(),
                Phase::Done { shares, .. } => *shares,
            },
            done: c.is_done(),
        })
    }

    /// The next effect, or `Idle` with the next deadline once everything is drained.
    pub fn poll_output(&mut self) -> Output {
        while let Some(o) = self.out.pop_front() {
            match o {
                // A node may serve a position it also sends to (a contributor that is a backup
                // of its own leaf): deliver locally, drivers never see a send to themselves.
                Output::Send { to, message } if to == self.identity.node => {
                    let now = self.now;
                    self.handle_message(now, to, message);
                }
                other => return other,
            }
        }
        // Drained: give the buffer back (an idle engine holds no output capacity; a simulator
        // holds a million idle engines).
        self.out = VecDeque::new();
        Output::Idle {
            next_deadline: self.next_deadline(),
        }
    }

    pub fn handle_timeout(&mut self, now: Micros) {
        self.now = self.now.max(now);
        self.expire();
        self.advance_all();
    }

    pub fn handle_command(&mut self, now: Micros, command: Command) -> Result<(), CommandError> {
        self.now = self.now.max(now);
        let result = match command {
            Command::Launch {
                request,
                finish_signature,
                directory,
            } => self.launch(*request, finish_signature, directory),
            Command::Contribute {
                computation,
                values,
            } => self.contribute(computation, &values),
            Command::Decline { computation } => self.decline(computation),
        };
        self.advance_all();
        result
    }

    /// The commissioners the owner trusts: those others share at most
    /// `MAX_UNTRUSTED_COMPUTATIONS` computation slots (`engine/slots.rs`). Bounded by the
    /// driver's trust list; the engine keeps the last set given.
    pub fn set_trusted(
        &mut self,
        trusted: impl IntoIterator<Item = crate::request::CommissionerKey>,
    ) {
        self.trusted = Some(trusted.into_iter().collect());
    }

    /// The result of a job this engine emitted ([`Output::Work`]), whenever it is done: the
    /// sends it was for leave now. A result the engine no longer waits for (its computation
    /// ended, or it is not the job of this engine's contribution) changes nothing.
    pub fn handle_job_done(&mut self, now: Micros, done: JobDone) {
        self.now = self.now.max(now);
        match done.0 {
            DoneKind::Proved(proved) => self.on_proved(*proved),
            DoneKind::Verified(verified) => self.on_verified(*verified),
        }
    }

    /// Runs `job` here and now and takes its result: the harness's and the simulator's way
    /// (the default of `drain::Effects::work`), where a job's outputs join the same drain.
    pub fn run_job_inline(&mut self, job: Job) {
        let now = self.now;
        self.handle_job_done(now, job.run());
    }

    /// One message from `from` (authenticated by the transport).
    pub fn handle_message(&mut self, now: Micros, from: NodeId, message: Message) {
        self.now = self.now.max(now);
        let id = message.computation;
        if let Body::Request(signed) = message.body {
            // A request comes with its directory snapshot (`handle_request`); without one the
            // engine cannot plan it, and refuses it unless it already holds it.
            self.on_request(from, *signed, None);
            self.advance_all();
            return;
        }
        if !self.computations.contains_key(&id) {
            if !self.validator.seen(&id) || self.awaiting.contains_key(&id) {
                // The request may still be on its way: keep it, within the early queue's
                // bounds (count and bytes, per sender and in total).
                let kind = message.kind();
                for reason in self.early.push(from, message) {
                    count_rejection(&mut self.rejections, reason);
                    self.out.push_back(Output::Event(Event::MessageRejected {
                        from,
                        kind,
                        reason: reason.to_string(),
                    }));
                }
            }
            return;
        }
        self.dispatch(from, message);
        self.advance(id);
    }

    /// A signed request (broadcast by its commissioner, authenticated by the transport as
    /// coming from `from`), with the directory snapshot the driver holds for it: the one the
    /// request names (`Request::directory`), or the driver's own directory if it names none.
    /// `None` if the driver has no such snapshot: the engine then refuses the request, unless
    /// it already holds it (a duplicate) or remembers it (a replay). The engine records the
    /// snapshot before the request and builds the plan from it.
    pub fn handle_request(
        &mut self,
        now: Micros,
        from: NodeId,
        signed: SignedRequest,
        directory: Option<DirectorySnapshot>,
    ) {
        self.now = self.now.max(now);
        self.on_request(from, signed, directory);
        self.advance_all();
    }

    /// Whether this engine holds or remembers the computation (its request needs no snapshot
    /// to be handled: a duplicate is dropped, a replay refused).
    pub fn knows_request(&self, id: &ComputationId) -> bool {
        self.computations.contains_key(id) || self.validator.seen(id)
    }

    /// A message this node sent could not be delivered to `to` (the transport reports a dial
    /// failure, a closed connection or a timeout). A message for a position goes to the next
    /// candidate of that position (its backups, in plan order); this node remembers the switch
    /// for every later message to that position.
    pub fn handle_unreachable(&mut self, now: Micros, to: NodeId, message: Message) {
        self.now = self.now.max(now);
        let id = message.computation;
        let Some(slot) = message.to else {
            return; // addressed to a node (the commissioner, a reply): nothing to fail over to
        };
        let Some(comp) = self.computations.get_mut(&id) else {
            return;
        };
        let Some(rank) = comp.plan.candidate_rank(slot.group, slot.position, &to) else {
            return;
        };
        let current = comp.servers.get(&slot).copied().unwrap_or(0);
        let next = current.max(rank + 1);
        let Some(server) = comp.plan.candidates(slot.group, slot.position).nth(next) else {
            // Every candidate failed: the position is lost to this node; the protocol heals it.
            return;
        };
        comp.servers.insert(slot, next);
        if let Body::Share(_) = message.body {
            // A share is sealed to one node's key: seal it again for the new server.
            self.send_shares_to(id, Some(slot.position));
        } else {
            self.out.push_back(Output::Send {
                to: server,
                message,
            });
        }
        self.advance(id);
    }

    /// A message to `slot` that this node had reported undelivered to `to`
    /// ([`handle_unreachable`](Self::handle_unreachable): no ack within its deadline) was
    /// acknowledged after all: `to` is alive and has handled it. If `to` ranks before the
    /// position's current server, later messages to the position go to `to` again. Nothing is
    /// sent: what the failover re-sent to the next candidate stays there (that candidate took
    /// the position over, as on any failover). Without this, one late ack moved a position for
    /// good: at 200 daemons on 2 cores, a leaf member whose verifier share to another member
    /// was acked 2.3 s late sent every later batch to that member's backup, so the member
    /// could not decide those contributions before the end of the share window.
    pub fn handle_late_ack(&mut self, now: Micros, to: NodeId, id: ComputationId, slot: Slot) {
        self.now = self.now.max(now);
        let Some(comp) = self.computations.get_mut(&id) else {
            return;
        };
        let Some(rank) = comp.plan.candidate_rank(slot.group, slot.position, &to) else {
            return;
        };
        if comp
            .servers
            .get(&slot)
            .is_some_and(|current| *current > rank)
        {
            comp.servers.insert(slot, rank);
        }
    }

    /// A failure detector reports that `dead` has failed (DISSEC's simulator has such an
    /// oracle; a deployment has none, and the simulator delivers these notices only when its
    /// config asks for that model). What this node does depends on the strategy:
    ///
    /// - as a sender, every strategy but S&P re-sends what it had sent to a position `dead`
    ///   served to the position's next candidate (a contributor its share, an aggregator its
    ///   adopted partial): DISSEC's "children re-send to the replacement";
    /// - as a waiter, S&P drops a child one of whose positions' servers died before its partial
    ///   reached this node: with `t = g` the child can no longer agree, so the parent stops
    ///   waiting for it (DISSEC's "drop").
    pub fn handle_failure_notice(&mut self, now: Micros, dead: NodeId) {
        self.now = self.now.max(now);
        let ids: Vec<ComputationId> = self.computations.keys().copied().collect();
        for id in ids {
            self.on_failure_notice(id, dead);
        }
    }

    /// Applies one persisted record to the state. Used live (right before the record is
    /// emitted) and on restore, so both paths build the same state.
    fn apply_record(&mut self, record: &Record) -> Result<(), Rejection> {
        match record {
            Record::Accepted { request } => self.install((**request).clone(), None),
            Record::Launched {
                request,
                finish_signature,
            } => self.install((**request).clone(), Some(finish_signature.clone())),
            Record::Directory {
                computation,
                snapshot,
            } => {
                self.directories.insert(*computation, snapshot.clone());
                Ok(())
            }
            Record::BeaconRound {
                computation,
                randomness,
                ..
            } => {
                self.seeds.insert(*computation, *randomness);
                Ok(())
            }
            Record::Launching {
                request,
                finish_signature,
                snapshot,
            } => {
                let id = request.request.id;
                self.validator.remember(id, request.request.deadline);
                self.awaiting.insert(
                    id,
                    Awaiting {
                        signed: (**request).clone(),
                        directory: Some(snapshot.clone()),
                        finish: Some(finish_signature.clone()),
                    },
                );
                Ok(())
            }
            Record::Closed {
                computation,
                deadline,
            } => {
                self.computations.remove(computation);
                self.validator.remember(*computation, *deadline);
                Ok(())
            }
            other => {
                let comp = self
                    .computations
                    .get_mut(&other.computation())
                    .ok_or(Rejection::UnknownComputation)?;
                apply_to_computation(comp, other)
            }
        }
    }

    fn install(&mut self, signed: SignedRequest, finish: Option<Vec<u8>>) -> Result<(), Rejection> {
        let id = signed.request.id;
        self.validator.remember(id, signed.request.deadline);
        let directory = self.directories.remove(&id);
        let randomness = self.seeds.remove(&id);
        self.awaiting.remove(&id);
        if let Some(comp) = self.computations.get_mut(&id) {
            if let Some(sig) = finish {
                comp.commissioner
                    .get_or_insert_with(|| Commissioner::new(sig));
            }
            return Ok(());
        }
        let seed = request_seed(&signed.request, randomness.as_ref());
        let plan = self
            .plan_of(&signed.request, directory.as_ref(), &seed)
            .map_err(|_| Rejection::PlanUnavailable)?;
        // `plan_of` plans only over a snapshot that came: it is `Some` here.
        let candidates = directory.ok_or(Rejection::PlanUnavailable)?;
        let validity = if self.check_validity {
            validity::statement(&signed.request).map(Arc::new)
        } else {
            None
        };
        let mut roles = BTreeMap::new();
        for &(group, position) in plan.roles_of(&self.identity.node) {
            roles.insert(slot(group, position), Role::new(group, true));
        }
        self.computations.insert(
            id,
            Box::new(Computation {
                signed: Arc::new(signed),
                plan,
                contribution: None,
                roles,
                commissioner: finish.map(Commissioner::new),
                dh: BTreeMap::new(),
                servers: BTreeMap::new(),
                strategy: self.strategy.clone(),
                acceptors: BTreeMap::new(),
                candidates,
                validity,
                adoption_asked: BTreeMap::new(),
                seen_at: self.now,
            }),
        );
        Ok(())
    }

    /// The plan of `request` from `seed` over the snapshot handed in with it (`None`: no
    /// snapshot came).
    fn plan_of(
        &self,
        request: &Request,
        directory: Option<&DirectorySnapshot>,
        seed: &[u8; 32],
    ) -> Result<Arc<Plan>, PlanError> {
        let directory = directory.ok_or(PlanError::NoSnapshot(request.directory))?;
        if let Some(expected) = request.directory {
            if expected != directory.digest() {
                return Err(PlanError::WrongSnapshot {
                    expected,
                    found: directory.digest(),
                });
            }
        }
        self.plans
            .plan(request, seed, directory.digest(), directory.directory())
    }

    /// The beacon and candidate-set checks of a validated request: it names a future round of
    /// this engine's chain that was not out before the request arrived (or names none, if this
    /// engine has no beacon), and its candidate set passes the candidate rule.
    fn check_selection(
        &self,
        request: &Request,
        directory: Option<&DirectorySnapshot>,
    ) -> Result<(), Refusal> {
        let refuse = |kind: RefusalKind, detail: String| Err(Refusal { kind, detail });
        match (&self.beacon, &request.beacon) {
            (None, None) => {}
            (Some(_), None) => {
                return refuse(
                    RefusalKind::Beacon,
                    "the request names no beacon round".into(),
                )
            }
            (None, Some(_)) => {
                return refuse(
                    RefusalKind::Beacon,
                    "the request names a beacon round and this node has no beacon chain".into(),
                )
            }
            (Some(beacon), Some(named)) => {
                if named.chain_hash != beacon.info().chain_hash {
                    return refuse(
                        RefusalKind::Beacon,
                        "the request names a round of another beacon chain".into(),
                    );
                }
                if let Err(e) = beacon.check_named_round(request.created_at, named.round) {
                    return refuse(RefusalKind::Beacon, e.to_string());
                }
                // A request first seen after its round was out may have been chosen among
                // others by its randomness: refuse it (up to the clock skew).
                let published = beacon.round_time(named.round);
                if self.now > published.plus(MAX_CLOCK_SKEW_MICROS) {
                    return refuse(
                        RefusalKind::Beacon,
                        format!(
                            "round {} was published at {published:?}, before the request arrived",
                            named.round
                        ),
                    );
                }
            }
        }
        if let Some(rule) = &self.candidate_rule {
            let directory =
                directory.ok_or(Refusal::from(PlanError::NoSnapshot(request.directory)))?;
            let candidates: Vec<NodeId> = directory.entries().iter().map(|(n, _)| *n).collect();
            if let Err(e) = rule.check(&candidates, request.created_at) {
                return refuse(RefusalKind::Candidates, e.to_string());
            }
        }
        Ok(())
    }

    /// The randomness the plan of `request` is seeded with: `Ok(None)` if it names no round,
    /// `Err(())` if the round it names has not arrived yet.
    fn randomness_for(&self, request: &Request) -> Result<Option<Randomness>, ()> {
        match &request.beacon {
            None => Ok(None),
            Some(named) => self.rounds.get(&named.round).copied().map(Some).ok_or(()),
        }
    }

    /// Plans a validated request whose randomness is known, records it, sends `then` (the
    /// commissioner's broadcast, after the records), and announces it (as its commissioner if
    /// `finish` is set). A plan that cannot be built refuses the request.
    fn admit(
        &mut self,
        signed: SignedRequest,
        directory: Option<DirectorySnapshot>,
        finish: Option<Vec<u8>>,
        randomness: Option<Randomness>,
        then: Option<Output>,
    ) {
        let id = signed.request.id;
        let seed = request_seed(&signed.request, randomness.as_ref());
        if let Err(e) = self.plan_of(&signed.request, directory.as_ref(), &seed) {
            if finish.is_some() {
                self.out.push_back(Output::Event(Event::Failed {
                    computation: id,
                    reason: Failure::NoQuorum { best_holders: 0 },
                }));
            }
            self.out.push_back(Output::Event(Event::RequestRefused {
                computation: id,
                reason: e.into(),
            }));
            return;
        }
        if let Some(snapshot) = directory {
            self.record(Record::Directory {
                computation: id,
                snapshot,
            });
        }
        if let (Some(named), Some(randomness)) = (signed.request.beacon, randomness) {
            self.record(Record::BeaconRound {
                computation: id,
                round: named.round,
                randomness,
            });
        }
        let new = !self.computations.contains_key(&id);
        match finish {
            Some(finish_signature) => self.record(Record::Launched {
                request: Box::new(signed),
                finish_signature,
            }),
            None => self.record(Record::Accepted {
                request: Box::new(signed),
            }),
        }
        if new && self.computations.contains_key(&id) {
            // In the same drain as the request's record: a restart counts the agreement
            // rounds in reach from this time, not from its replay.
            self.record(Record::RequestSeen {
                computation: id,
                at: self.now,
            });
        }
        self.out.extend(then);
        let roles = self.computations.get(&id).map_or(0, |c| c.roles.len());
        self.out.push_back(Output::Event(Event::RequestAccepted {
            computation: id,
            roles,
        }));
        self.replay_early(id);
    }

    /// Emits `record` after applying it.
    fn record(&mut self, record: Record) {
        match self.apply_record(&record) {
            Ok(()) => self.out.push_back(Output::Persist(record)),
            Err(reason) => {
                // Only reachable if the caller checked nothing; keep the node running.
                let me = self.identity.node;
                self.reject(me, "record", reason);
            }
        }
    }

    fn launch(
        &mut self,
        signed: SignedRequest,
        finish_signature: Vec<u8>,
        directory: DirectorySnapshot,
    ) -> Result<(), CommandError> {
        let id = signed.request.id;
        // The owner's own launch is trusted.
        if let Err((_, detail)) = slots::admit(
            &self.computations,
            self.awaiting
                .values()
                .map(|a| &a.signed.request.commissioner),
            None,
            &signed.request.commissioner,
        ) {
            return Err(CommandError::Refused(Refusal {
                kind: RefusalKind::Busy,
                detail,
            }));
        }
        self.validator
            .accept(&signed, self.now)
            .map_err(|e| CommandError::Refused(e.into()))?;
        self.check_selection(&signed.request, Some(&directory))
            .map_err(CommandError::Refused)?;
        let broadcast = Output::Broadcast {
            message: Message {
                computation: id,
                round: 0,
                body: Body::Request(Box::new(signed.clone())),
                to: None,
            },
        };
        let Ok(randomness) = self.randomness_for(&signed.request) else {
            // The round is not out: broadcast now (nodes refuse a request first seen after its
            // round), plan when it arrives. Recorded first, so a restart still waits for it.
            self.record(Record::Launching {
                request: Box::new(signed),
                finish_signature,
                snapshot: directory,
            });
            self.out.push_back(broadcast);
            return Ok(());
        };
        let seed = request_seed(&signed.request, randomness.as_ref());
        self.plan_of(&signed.request, Some(&directory), &seed)
            .map_err(|e| CommandError::Refused(e.into()))?;
        self.admit(
            signed,
            Some(directory),
            Some(finish_signature),
            randomness,
            Some(broadcast),
        );
        Ok(())
    }

    fn on_request(
        &mut self,
        _from: NodeId,
        signed: SignedRequest,
        directory: Option<DirectorySnapshot>,
    ) {
        let id = signed.request.id;
        if let Some(comp) = self.computations.get(&id) {
            if *comp.signed == signed {
                return; // the same request delivered twice by gossip
            }
        }
        if self.awaiting.get(&id).is_some_and(|a| a.signed == signed) {
            return; // already waiting for its round
        }
        let admitted = if self.awaiting.len() >= MAX_AWAITING_BEACON {
            Err((None, "too many computations in flight".to_string()))
        } else {
            slots::admit(
                &self.computations,
                self.awaiting
                    .values()
                    .map(|a| &a.signed.request.commissioner),
                self.trusted.as_ref(),
                &signed.request.commissioner,
            )
        };
        let refusal = if let Err((rejection, detail)) = admitted {
            if let Some(r) = rejection {
                count_rejection(&mut self.rejections, r);
            }
            Some(Refusal {
                kind: RefusalKind::Busy,
                detail,
            })
        } else if let Err(e) = self.validator.accept(&signed, self.now) {
            Some(e.into())
        } else {
            self.check_selection(&signed.request, directory.as_ref())
                .err()
        };
        if let Some(reason) = refusal {
            self.out.push_back(Output::Event(Event::RequestRefused {
                computation: id,
                reason,
            }));
            return;
        }
        match self.randomness_for(&signed.request) {
            Ok(randomness) => self.admit(signed, directory, None, randomness, None),
            Err(()) => {
                self.awaiting.insert(
                    id,
                    Awaiting {
                        signed,
                        directory,
                        finish: None,
                    },
                );
            }
        }
    }

    fn replay_early(&mut self, id: ComputationId) {
        for (from, message) in self.early.take(id) {
            self.dispatch(from, message);
        }
    }

    /// Re-sends after a restore what the persisted state implies.
    fn resume(&mut self, id: ComputationId) {
        self.send_shares(id);
        let Some(comp) = self.computations.get_mut(&id) else {
            return;
        };
        let mut ctx = ctx!(self);
        let keys: Vec<_> = comp.roles.keys().copied().collect();
        for key in keys {
            let Some(role) = comp.roles.get_mut(&key) else {
                continue;
            };
            // A root member that lost the count shares it held asks for them again.
            role.counts_sent = true;
            if role.adopted().is_some() {
                send_up(comp, key, &mut ctx);
            }
        }
        // A commissioner without a result lost the root reports it had: ask for them again.
        if comp.commissioner.as_ref().is_some_and(|c| !c.is_done()) {
            let root = comp.plan.root();
            for p in 1..=comp.plan.g {
                ctx.send_slot(
                    &comp.plan,
                    &comp.servers,
                    id,
                    slot(root, p),
                    0,
                    Body::RootQuery,
                );
            }
        }
    }

    fn dispatch(&mut self, from: NodeId, message: Message) {
        let id = message.computation;
        let me = self.identity.node;
        if let Body::ShareQuery(m) = &message.body {
            if let Err(reason) = self.on_share_query(from, id, m) {
                self.reject(from, "share-query", reason);
            }
            return;
        }
        if let Some(to) = message.to {
            let Some(comp) = self.computations.get(&id) else {
                return;
            };
            match comp.plan.candidate_rank(to.group, to.position, &me) {
                None => {
                    self.reject(from, message.kind(), Rejection::NotServable);
                    return;
                }
                // A backup takes the position over when a message for it arrives: a sender
                // found the member (or an earlier backup) unreachable.
                // Not on a heal query: it asks what the server holds, and a backup that has not
                // taken over holds nothing. Taking over on it (a parent's spurious timeout of a
                // live backup) made an empty server of the position, whose empty report could
                // reach the leader before the holder's and cut the whole leaf.
                Some(rank)
                    if rank > 0
                        && !comp.roles.contains_key(&to)
                        && !matches!(message.body, Body::HealQuery(_)) =>
                {
                    self.record(Record::Takeover {
                        computation: id,
                        group: to.group,
                        position: to.position,
                    });
                }
                Some(_) => {}
            }
        }
        let Some(comp) = self.computations.get_mut(&id) else {
            return;
        };
        let check_k_min = self.check_k_min;
        let validity_lie = self.validity_lie;
        let mut ctx = ctx!(self);
        let round = message.round;
        let kind = message.kind();
        let mut records = Vec::new();
        let result = match message.body {
            Body::Request(_) | Body::ShareQuery(_) => Ok(()),
            Body::Share(m) => on_share(comp, from, m, &mut ctx, &mut records),
            Body::Partial(m) => on_partial(comp, from, m, &mut ctx, &mut records),
            // A backup that asked for its group's adopted manifest (a heal query for a position
            // it did not serve) takes the position over on a certified answer.
            Body::Report(m) => match take_over_adopted(comp, from, &m, me, &mut records) {
                Ok(false) => on_report(comp, from, round, m, &mut ctx, &mut records),
                done => done.map(|_| ()),
            },
            Body::Solicit(m) => on_solicit(comp, from, round, m, &mut ctx, &mut records),
            Body::Manifest(m) => on_manifest(comp, from, round, m, &mut ctx, &mut records),
            Body::HealQuery(m) => on_heal_query(comp, from, m, &mut ctx),
            Body::HealOffer(m) => on_heal_offer(comp, from, m, &mut ctx),
            Body::HealGo(m) => on_heal_go(comp, from, round, m, &mut ctx),
            Body::HealPart(m) => on_heal_part(comp, from, round, m, &mut ctx, &mut records),
            Body::RootReady(m) => on_root_ready(comp, from, m),
            Body::ReleaseAsk(m) => on_release_ask(comp, from, m, &mut ctx),
            Body::RootQuery => on_root_query(comp, from, &mut ctx),
            Body::ReleaseShare(m) => {
                on_release_share(comp, from, m, &mut ctx, &mut records, check_k_min)
            }
            Body::CountShare(m) => on_count_share(comp, from, m, &mut ctx),
            Body::Finish(m) => on_finish(comp, from, m, &mut records),
            Body::Vote(m) => on_vote(comp, from, round, m, &mut ctx, &mut records),
            Body::Decline(m) => on_decline(comp, from, m),
            Body::PartialAhead(m) => on_partial_ahead(comp, from, m, &mut ctx, &mut records),
            Body::PartialConfirm(m) => on_partial_confirm(comp, from, m, &mut ctx, &mut records),
            Body::ValidityShare(m) => {
                validity::on_validity_share(comp, from, m, validity_lie, &mut ctx)
            }
            Body::VerifierShare(m) => {
                validity::on_verifier_share(comp, from, m, &mut ctx, &mut records)
            }
        };
        if let Err(reason) = result {
            ctx.reject(from, kind, reason);
        }
        self.commit(records);
    }

    /// Persists and applies records produced by a handler, then performs their follow-ups.
    /// Follow-ups that send (send up, heal offers) run after the record is emitted.
    fn commit(&mut self, records: Vec<Pending>) {
        for pending in records {
            match pending {
                Pending::Record(r) => self.record(r),
                Pending::Adopt {
                    id,
                    key,
                    manifest,
                    announce,
                    certificate,
                } => self.adopt(id, key, manifest, announce, certificate),
                Pending::Close { id } => self.close(id),
            }
        }
    }

    fn adopt(
        &mut self,
        id: ComputationId,
        key: Slot,
        manifest: Manifest,
        announce: bool,
        certificate: Option<AdoptionCertificate>,
    ) {
        {
            let Some(comp) = self.computations.get(&id) else {
                return;
            };
            let Some(role) = comp.roles.get(&key) else {
                return;
            };
            if role.adopted().is_some() {
                return;
            }
        }
        self.record(Record::ManifestAdopted {
            computation: id,
            group: key.group,
            position: key.position,
            manifest,
        });
        let Some(comp) = self.computations.get_mut(&id) else {
            return;
        };
        if let Some(role) = comp.roles.get_mut(&key) {
            role.certificate = certificate;
        }
        let mut ctx = ctx!(self);
        if let Some(role) = comp.roles.get(&key) {
            if let Some(adopted) = role.adopted() {
                ctx.event(adopted.event(id, key));
                if announce {
                    // The leader counted the quorum: its adopted report makes the others adopt.
                    let body = adopted_report(comp, key, role, adopted);
                    ctx.send_to_group(comp, key, role.round, body);
                }
            }
        }
        send_up(comp, key, &mut ctx);
    }

    fn close(&mut self, id: ComputationId) {
        let Some(comp) = self.computations.get(&id) else {
            return;
        };
        let deadline = comp.request().deadline;
        self.record(Record::Closed {
            computation: id,
            deadline,
        });
        self.out
            .push_back(Output::Event(Event::Closed { computation: id }));
    }

    fn expire(&mut self) {
        let now = self.now;
        let stale: Vec<ComputationId> = self
            .awaiting
            .iter()
            .filter(|(_, a)| now >= a.signed.request.deadline)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            // Its round never came: a commissioner reports the failure.
            if self
                .awaiting
                .remove(&id)
                .is_some_and(|a| a.finish.is_some())
            {
                self.out.push_back(Output::Event(Event::Failed {
                    computation: id,
                    reason: Failure::NoQuorum { best_holders: 0 },
                }));
            }
        }
        let expired: Vec<ComputationId> = self
            .computations
            .values()
            .filter(|c| now >= c.request().deadline)
            .map(|c| c.id())
            .collect();
        for id in expired {
            if let Some(comp) = self.computations.get(&id) {
                if let Some(commissioner) = &comp.commissioner {
                    let best_holders = best_version(&commissioner.ready).map_or(0, |(_, h)| h);
                    let reason = match &commissioner.phase {
                        Phase::Done { .. } => None,
                        Phase::Releasing(r) => Some(Failure::SharesMissing {
                            received: r.shares.len(),
                            missing: (1..=comp.plan.g)
                                .filter(|p| !r.shares.contains_key(p))
                                .collect(),
                        }),
                        Phase::Waiting { .. } => Some(Failure::NoQuorum { best_holders }),
                    };
                    if let Some(reason) = reason {
                        self.out.push_back(Output::Event(Event::Failed {
                            computation: id,
                            reason,
                        }));
                    }
                }
            }
            self.close(id);
        }
    }

    fn advance_all(&mut self) {
        let ids: Vec<ComputationId> = self.computations.keys().copied().collect();
        for id in ids {
            self.advance(id);
        }
    }

    /// Moves every role of one computation forward as far as time and state allow.
    fn advance(&mut self, id: ComputationId) {
        // Each step may emit records whose follow-ups change state again; loop until stable.
        for _ in 0..16 {
            let Some(comp) = self.computations.get_mut(&id) else {
                return;
            };
            let mut ctx = ctx!(self);
            let mut pending = Vec::new();
            let keys: Vec<_> = comp.roles.keys().copied().collect();
            for key in keys {
                advance_role(comp, key, &mut ctx, &mut pending);
            }
            advance_commissioner(comp, &mut ctx, &mut pending, self.check_k_min);
            if pending.is_empty() {
                return;
            }
            self.commit(pending);
        }
    }

    fn next_deadline(&self) -> Option<Micros> {
        let mut next: Option<Micros> = None;
        let mut consider = |d: Micros| {
            next = Some(next.map_or(d, |n: Micros| n.min(d)));
        };
        for a in self.awaiting.values() {
            consider(a.signed.request.deadline);
        }
        for comp in self.computations.values() {
            let req = comp.request();
            consider(req.deadline);
            for role in comp.roles.values() {
                if let Some(d) = role_deadline(comp, role) {
                    consider(d);
                }
            }
            if let Some(c) = &comp.commissioner {
                let window = req.tree.timeouts.release_window;
                match &c.phase {
                    Phase::Waiting {
                        first_ready: Some(first),
                        window_over: false,
                    } => consider(first.plus(window)),
                    Phase::Releasing(r) => consider(r.asked_at.plus(window)),
                    _ => {}
                }
            }
        }
        next
    }
}

/// State changes a handler asks for; applied by the engine after the handler returns.
enum Pending {
    Record(Record),
    Adopt {
        id: ComputationId,
        key: Slot,
        manifest: Manifest,
        /// This position counted the quorum of votes itself (it leads the round): it tells
        /// every other position, which adopts on its word.
        announce: bool,
        /// The signed accepts it adopted on (`engine/certificate.rs`), which its adopted
        /// reports carry.
        certificate: Option<AdoptionCertificate>,
    },
    Close {
        id: ComputationId,
    },
}

/// Applies one record of a computation to its state (live, right before the record is
/// emitted, and on restore); each kind of record is applied by the file of its topic.
fn apply_to_computation(comp: &mut Computation, record: &Record) -> Result<(), Rejection> {
    match record {
        Record::Contribution { seed, vector, .. } => {
            comp.contribution = Some(Contribution {
                seed: *seed,
                vector: vector.0.clone(),
                proving: None,
                proved: None,
                answered: Default::default(),
            });
            Ok(())
        }
        Record::ShareHeld {
            group,
            position,
            contributor,
            share,
            ..
        } => apply_share_held(comp, slot(*group, *position), *contributor, share),
        Record::ChildHeld {
            group,
            position,
            child,
            version,
            sum,
            ..
        } => apply_child_held(comp, slot(*group, *position), *child, *version, &sum.0),
        Record::ManifestAdopted {
            group,
            position,
            manifest,
            ..
        } => apply_adopted(comp, slot(*group, *position), manifest),
        Record::ManifestPromised {
            group,
            position,
            round,
            ..
        } => apply_promised(comp, slot(*group, *position), *round),
        Record::ManifestAccepted {
            group,
            position,
            round,
            manifest,
            ..
        } => apply_accepted(comp, slot(*group, *position), *round, manifest),
        Record::Released { .. } => {
            if let Some(c) = comp.commissioner.as_mut() {
                c.finish();
            }
            Ok(())
        }
        Record::Takeover {
            group, position, ..
        } => apply_takeover(comp, slot(*group, *position)),
        Record::CountsOpened {
            group,
            position,
            version,
            counts,
            ..
        } => apply_counts_opened(comp, slot(*group, *position), *version, &counts.0),
        Record::HealGoAnswered {
            group,
            position,
            target,
            answered,
            ..
        } => heal::apply_heal_go_answered(comp, slot(*group, *position), *target, *answered),
        Record::RequestSeen { at, .. } => {
            // Installing the request (live, or on replay) set the engine's time then; the
            // persisted time is no later, unless the clock went back across a restart (then
            // the earlier of the two keeps honest rounds in reach).
            comp.seen_at = comp.seen_at.min(*at);
            Ok(())
        }
        Record::Accepted { .. }
        | Record::Launched { .. }
        | Record::Closed { .. }
        | Record::Directory { .. }
        | Record::BeaconRound { .. }
        | Record::Launching { .. } => Ok(()),
    }
}
