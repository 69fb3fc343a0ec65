//! The Grove engine: one sans-IO state machine per node that plays every role the node holds
//! in every computation (contributor, aggregator at any level, commissioner).
//!
//! Contract (the drain rule): feed one input (`handle_message`, `handle_timeout`,
//! `handle_command`), then call `poll_output` until it returns [`Output::Idle`], which carries
//! the next deadline. Apply [`Output::Persist`] records durably before performing any later
//! [`Output::Send`]. Time and randomness are passed in; the same inputs give the same outputs.

pub mod manifest;

use crate::encoding::EncodingError;
use crate::field::{add_assign_vec, mul_add_assign_vec, random_vec, sub_assign_vec, FieldVec, Fp};
use crate::ids::{hash_parts, ComputationId, Digest, GroupId, Micros, NodeId, Position, Version};
use crate::limits::*;
use crate::message::*;
use crate::plan::{Plan, PlanError, PlanProvider};
use crate::record::Record;
use crate::request::{Request, RequestError, RequestValidator, SignedRequest};
use crate::seal::{self, Envelope, NoiseEnvelope};
use crate::sharing::{
    lagrange_coefficients, reconstruct, share_vector_compressed, CompressedShare, SharingParams,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use thiserror::Error;

pub use manifest::{choose_manifest, version_of};

/// Who this node is: its id in plans and the secret of its static X25519 key.
#[derive(Clone)]
pub struct Identity {
    pub node: NodeId,
    pub x25519_secret: [u8; 32],
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
    },
    /// Contribute these values (the owner consented) to a known computation.
    Contribute {
        computation: ComputationId,
        values: Vec<f64>,
    },
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
    /// The root agreed on a version covering fewer contributors than `k_min`: nothing released.
    KMinNotMet { count: u64, k_min: u64 },
    /// No version was held by `t` root positions before the deadline.
    NoQuorum { best_holders: usize },
}

/// The result the commissioner reconstructs.
#[derive(Clone, Debug, PartialEq)]
pub struct Released {
    pub computation: ComputationId,
    pub version: Version,
    /// The exact field sum over the contributors of `version`.
    pub sum: Vec<Fp>,
    /// The decoded sum, per element.
    pub values: Vec<f64>,
    /// When the result was reconstructed.
    pub at: Micros,
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
    /// Nothing more until the next input; call `handle_timeout` at `next_deadline`.
    Idle {
        next_deadline: Option<Micros>,
    },
}

/// The bytes a commissioner signs to close a computation.
pub fn finish_signing_bytes(computation: &ComputationId) -> [u8; 32] {
    hash_parts("grove/finish/v1", &[&computation.0])
}

struct Contribution {
    seed: [u8; 32],
    vector: Vec<Fp>,
}

struct HeldPartial {
    version: Version,
    sum: Vec<Fp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Receiving shares or partial sums.
    Collecting,
    /// Waiting for heals of missing children.
    Healing,
    /// Report sent to the leader of `round`, waiting for a manifest since `since`.
    Reporting { since: Micros },
    /// Manifest adopted: the member's part in agreement is over.
    Adopted,
}

struct Adopted {
    manifest: Manifest,
    version: Version,
    /// The member's share of the group's sum; `None` when it lacks a manifest item.
    sum: Option<Vec<Fp>>,
}

struct Leadership {
    round: u32,
    since: Micros,
    reports: BTreeMap<Position, (Vec<Item>, Option<Manifest>)>,
    /// The report window passed without `t` reports: fix as soon as `t` arrive.
    window_over: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HealState {
    Running,
    Done,
    GaveUp,
}

struct HealAttempt {
    /// Unique id of this attempt (the round of its messages).
    id: u32,
    version: Version,
    helpers: Vec<Position>,
    helper_nodes: Vec<NodeId>,
    parts: BTreeMap<Position, Vec<Fp>>,
}

struct Heal {
    /// The version to heal, once a manifest names it; before that, any version `t` offer.
    want: Option<Digest>,
    attempt: u32,
    since: Micros,
    /// Offers by helper position: the version and the node serving that position.
    offers: BTreeMap<Position, (Version, NodeId)>,
    go: Option<HealAttempt>,
    excluded: BTreeSet<Position>,
    state: HealState,
}

struct Role {
    group: GroupId,
    position: Position,
    stage: Stage,
    round: u32,
    first_item_at: Option<Micros>,
    shares: BTreeMap<NodeId, CompressedShare>,
    children: BTreeMap<GroupId, BTreeMap<Digest, HeldPartial>>,
    heals: BTreeMap<GroupId, Heal>,
    leader: Option<Leadership>,
    /// Heal queries to answer once this member's sum is ready: target position -> requester.
    pending_queries: BTreeMap<Position, NodeId>,
    adopted: Option<Adopted>,
    /// A missing manifest item was healed after adoption: the sum is ready to send up.
    completed_late: bool,
}

struct Commissioner {
    finish_signature: Vec<u8>,
    ready: BTreeMap<Position, Version>,
    /// The node that reported each root position.
    ready_from: BTreeMap<Position, NodeId>,
    first_ready: Option<Micros>,
    window_over: bool,
    chosen: Option<Version>,
    shares: BTreeMap<Position, Vec<Fp>>,
    done: bool,
}

struct Computation {
    signed: Arc<SignedRequest>,
    plan: Arc<Plan>,
    contribution: Option<Contribution>,
    roles: BTreeMap<(GroupId, Position), Role>,
    commissioner: Option<Commissioner>,
    /// X25519 shared secrets with other members, for heal masks.
    dh: BTreeMap<NodeId, [u8; 32]>,
    /// Positions this node failed over: index into the position's candidates.
    servers: BTreeMap<Slot, usize>,
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

/// Output sink and clock for one input.
struct Ctx<'a> {
    me: &'a Identity,
    envelope: &'a dyn Envelope,
    now: Micros,
    out: &'a mut VecDeque<Output>,
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
    fn event(&mut self, event: Event) {
        self.out.push_back(Output::Event(event));
    }
    fn reject(&mut self, from: NodeId, kind: &'static str, reason: impl Into<String>) {
        self.event(Event::MessageRejected {
            from,
            kind,
            reason: reason.into(),
        });
    }
}

/// The engine of one node.
pub struct Engine {
    identity: Identity,
    rng: ChaCha20Rng,
    plans: Arc<dyn PlanProvider>,
    validator: RequestValidator,
    computations: BTreeMap<ComputationId, Computation>,
    early: VecDeque<(NodeId, Message)>,
    out: VecDeque<Output>,
    now: Micros,
    envelope: Arc<dyn Envelope>,
}

impl Engine {
    /// A fresh engine. `seed` feeds its CSPRNG (sharing seeds, envelope ephemerals).
    pub fn new(identity: Identity, seed: [u8; 32], plans: Arc<dyn PlanProvider>) -> Engine {
        Engine {
            identity,
            rng: ChaCha20Rng::from_seed(seed),
            plans,
            validator: RequestValidator::new(),
            computations: BTreeMap::new(),
            early: VecDeque::new(),
            out: VecDeque::new(),
            now: Micros::ZERO,
            envelope: Arc::new(NoiseEnvelope),
        }
    }

    /// Replaces how shares are sealed (the simulator's size-only mode); nodes keep the default
    /// Noise envelope.
    pub fn with_envelope(mut self, envelope: Arc<dyn Envelope>) -> Engine {
        self.envelope = envelope;
        self
    }

    /// Rebuilds an engine from its persisted records (in the order they were emitted) and
    /// resumes its roles: it re-sends what its state implies and re-arms its timers. Drain
    /// `poll_output` afterwards. A record that no longer fits (for example a plan that cannot
    /// be rebuilt) is skipped and reported as a `MessageRejected` event from this node.
    pub fn restore(
        identity: Identity,
        seed: [u8; 32],
        plans: Arc<dyn PlanProvider>,
        records: impl IntoIterator<Item = Record>,
        now: Micros,
    ) -> Engine {
        let mut engine = Engine::new(identity, seed, plans);
        engine.now = now;
        for record in records {
            if let Err(reason) = engine.apply_record(&record) {
                let me = engine.identity.node;
                engine.out.push_back(Output::Event(Event::MessageRejected {
                    from: me,
                    kind: "record",
                    reason,
                }));
            }
        }
        let ids: Vec<ComputationId> = engine.computations.keys().copied().collect();
        for id in ids {
            engine.resume(id);
        }
        engine.advance_all();
        engine
    }

    pub fn node_id(&self) -> NodeId {
        self.identity.node
    }

    /// Computations this node holds state for.
    pub fn computations(&self) -> impl Iterator<Item = &ComputationId> {
        self.computations.keys()
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
            } => self.launch(*request, finish_signature),
            Command::Contribute {
                computation,
                values,
            } => self.contribute(computation, &values),
        };
        self.advance_all();
        result
    }

    /// One message from `from` (authenticated by the transport).
    pub fn handle_message(&mut self, now: Micros, from: NodeId, message: Message) {
        self.now = self.now.max(now);
        let id = message.computation;
        if let Body::Request(signed) = message.body {
            self.on_request(from, *signed);
            self.advance_all();
            return;
        }
        if !self.computations.contains_key(&id) {
            if !self.validator.seen(&id) {
                // The request may still be on its way: keep a bounded number of early messages.
                if self.early.len() >= MAX_EARLY_MESSAGES {
                    self.early.pop_front();
                }
                self.early.push_back((from, message));
            }
            return;
        }
        self.dispatch(from, message);
        self.advance(id);
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

    /// Applies one persisted record to the state. Used live (right before the record is
    /// emitted) and on restore, so both paths build the same state.
    fn apply_record(&mut self, record: &Record) -> Result<(), String> {
        match record {
            Record::Accepted { request } => self.install((**request).clone(), None),
            Record::Launched {
                request,
                finish_signature,
            } => self.install((**request).clone(), Some(finish_signature.clone())),
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
                    .ok_or("record for an unknown computation")?;
                apply_to_computation(comp, other)
            }
        }
    }

    fn install(&mut self, signed: SignedRequest, finish: Option<Vec<u8>>) -> Result<(), String> {
        let id = signed.request.id;
        self.validator.remember(id, signed.request.deadline);
        if let Some(comp) = self.computations.get_mut(&id) {
            if let Some(sig) = finish {
                comp.commissioner
                    .get_or_insert_with(|| Commissioner::new(sig));
            }
            return Ok(());
        }
        let plan = self
            .plans
            .plan_for(&signed.request)
            .map_err(|e| e.to_string())?;
        let mut roles = BTreeMap::new();
        for &(group, position) in plan.roles_of(&self.identity.node) {
            roles.insert((group, position), Role::new(group, position));
        }
        self.computations.insert(
            id,
            Computation {
                signed: Arc::new(signed),
                plan,
                contribution: None,
                roles,
                commissioner: finish.map(Commissioner::new),
                dh: BTreeMap::new(),
                servers: BTreeMap::new(),
            },
        );
        Ok(())
    }

    /// Emits `record` after applying it.
    fn record(&mut self, record: Record) {
        match self.apply_record(&record) {
            Ok(()) => self.out.push_back(Output::Persist(record)),
            Err(reason) => {
                // Only reachable if the caller checked nothing; keep the node running.
                let me = self.identity.node;
                self.out.push_back(Output::Event(Event::MessageRejected {
                    from: me,
                    kind: "record",
                    reason,
                }));
            }
        }
    }

    fn launch(
        &mut self,
        signed: SignedRequest,
        finish_signature: Vec<u8>,
    ) -> Result<(), CommandError> {
        let id = signed.request.id;
        if self.computations.len() >= MAX_COMPUTATIONS {
            return Err(CommandError::Refused(Refusal {
                kind: RefusalKind::Busy,
                detail: "too many computations in flight".into(),
            }));
        }
        self.validator
            .accept(&signed, self.now)
            .map_err(|e| CommandError::Refused(e.into()))?;
        self.plans
            .plan_for(&signed.request)
            .map_err(|e| CommandError::Refused(e.into()))?;
        self.record(Record::Launched {
            request: Box::new(signed.clone()),
            finish_signature,
        });
        let roles = self.computations.get(&id).map_or(0, |c| c.roles.len());
        self.out.push_back(Output::Broadcast {
            message: Message {
                computation: id,
                round: 0,
                body: Body::Request(Box::new(signed)),
                to: None,
            },
        });
        self.out.push_back(Output::Event(Event::RequestAccepted {
            computation: id,
            roles,
        }));
        self.replay_early(id);
        Ok(())
    }

    fn on_request(&mut self, _from: NodeId, signed: SignedRequest) {
        let id = signed.request.id;
        if let Some(comp) = self.computations.get(&id) {
            if *comp.signed == signed {
                return; // the same request delivered twice by gossip
            }
        }
        let refusal = if self.computations.len() >= MAX_COMPUTATIONS {
            Some(Refusal {
                kind: RefusalKind::Busy,
                detail: "too many computations in flight".into(),
            })
        } else if let Err(e) = self.validator.accept(&signed, self.now) {
            Some(e.into())
        } else if let Err(e) = self.plans.plan_for(&signed.request) {
            Some(e.into())
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.out.push_back(Output::Event(Event::RequestRefused {
                computation: id,
                reason,
            }));
            return;
        }
        self.record(Record::Accepted {
            request: Box::new(signed),
        });
        let roles = self.computations.get(&id).map_or(0, |c| c.roles.len());
        self.out.push_back(Output::Event(Event::RequestAccepted {
            computation: id,
            roles,
        }));
        self.replay_early(id);
    }

    fn replay_early(&mut self, id: ComputationId) {
        let (mine, rest): (Vec<_>, Vec<_>) =
            self.early.drain(..).partition(|(_, m)| m.computation == id);
        self.early = rest.into();
        for (from, message) in mine {
            self.dispatch(from, message);
        }
    }

    fn contribute(&mut self, id: ComputationId, values: &[f64]) -> Result<(), CommandError> {
        let comp = self
            .computations
            .get(&id)
            .ok_or(CommandError::UnknownComputation(id))?;
        if comp.contribution.is_some() {
            return Err(CommandError::AlreadyContributed(id));
        }
        let vector = comp.request().contribution.encode(values)?;
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        self.record(Record::Contribution {
            computation: id,
            seed,
            vector: FieldVec(vector),
        });
        self.send_shares(id);
        Ok(())
    }

    /// Sends (or re-sends, identically) this node's shares to its leaf group.
    fn send_shares(&mut self, id: ComputationId) {
        self.send_shares_to(id, None);
    }

    /// Sends this node's share for one position (or all), sealed to the node serving it.
    fn send_shares_to(&mut self, id: ComputationId, only: Option<Position>) {
        let Some(comp) = self.computations.get(&id) else {
            return;
        };
        let Some(contribution) = &comp.contribution else {
            return;
        };
        let plan = &comp.plan;
        let me = self.identity.node;
        let leaf = plan.leaf_of(&me);
        let params = SharingParams {
            g: plan.g,
            t: plan.t,
        };
        let shares = share_vector_compressed(&contribution.vector, params, contribution.seed);
        let mut ctx = Ctx {
            me: &self.identity,
            envelope: self.envelope.as_ref(),
            now: self.now,
            out: &mut self.out,
        };
        for (i, share) in shares.into_iter().enumerate() {
            let position = i as u8 + 1;
            if only.is_some_and(|o| o != position) {
                continue;
            }
            let member = server_of(plan, &comp.servers, slot(leaf, position));
            let payload = SharePayload {
                computation: id,
                group: leaf,
                position,
                contributor: me,
                share,
            };
            // Invariant: postcard serialises these plain data types without error.
            let bytes = postcard::to_allocvec(&payload).expect("share payload serialises");
            let Some(key) = plan.x25519_key(&member) else {
                continue;
            };
            let eph = hash_parts(
                "grove/share-ephemeral",
                &[&contribution.seed, &[position], &member.0],
            );
            match self.envelope.seal(&key, &bytes, eph) {
                Ok(sealed) => ctx.send_to(
                    member,
                    id,
                    0,
                    Body::Share(ShareMsg {
                        group: leaf,
                        position,
                        contributor: me,
                        sealed,
                    }),
                    Some(slot(leaf, position)),
                ),
                Err(e) => ctx.reject(me, "share", format!("cannot seal share: {e}")),
            }
        }
        if only.is_none() {
            ctx.event(Event::Contributed {
                computation: id,
                group: leaf,
            });
        }
    }

    /// Re-sends after a restore what the persisted state implies.
    fn resume(&mut self, id: ComputationId) {
        self.send_shares(id);
        let Some(comp) = self.computations.get_mut(&id) else {
            return;
        };
        let mut ctx = Ctx {
            me: &self.identity,
            envelope: self.envelope.as_ref(),
            now: self.now,
            out: &mut self.out,
        };
        let keys: Vec<_> = comp.roles.keys().copied().collect();
        for key in keys {
            let Some(role) = comp.roles.get(&key) else {
                continue;
            };
            if role.adopted.is_some() {
                send_up(comp, key, &mut ctx);
            }
        }
    }

    fn dispatch(&mut self, from: NodeId, message: Message) {
        let id = message.computation;
        let me = self.identity.node;
        if let Some(to) = message.to {
            let Some(comp) = self.computations.get(&id) else {
                return;
            };
            match comp.plan.candidate_rank(to.group, to.position, &me) {
                None => {
                    self.out.push_back(Output::Event(Event::MessageRejected {
                        from,
                        kind: message.kind(),
                        reason: "addressed to a position this node cannot serve".into(),
                    }));
                    return;
                }
                // A backup takes the position over when a message for it arrives: a sender
                // found the member (or an earlier backup) unreachable.
                Some(rank) if rank > 0 && !comp.roles.contains_key(&(to.group, to.position)) => {
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
        let mut ctx = Ctx {
            me: &self.identity,
            envelope: self.envelope.as_ref(),
            now: self.now,
            out: &mut self.out,
        };
        let round = message.round;
        let kind = message.kind();
        let mut records = Vec::new();
        let result = match message.body {
            Body::Request(_) => Ok(()),
            Body::Share(m) => on_share(comp, from, m, &mut ctx, &mut records),
            Body::Partial(m) => on_partial(comp, from, m, &mut ctx, &mut records),
            Body::Report(m) => on_report(comp, from, round, m, &mut ctx, &mut records),
            Body::Solicit(m) => on_solicit(comp, from, round, m, &mut ctx),
            Body::Manifest(m) => on_manifest(comp, from, m, &mut ctx, &mut records),
            Body::HealQuery(m) => on_heal_query(comp, from, m, &mut ctx),
            Body::HealOffer(m) => on_heal_offer(comp, from, m, &mut ctx),
            Body::HealGo(m) => on_heal_go(comp, from, round, m, &mut ctx),
            Body::HealPart(m) => on_heal_part(comp, from, round, m, &mut ctx, &mut records),
            Body::RootReady(m) => on_root_ready(comp, from, m),
            Body::ReleaseAsk(m) => on_release_ask(comp, from, m, &mut ctx),
            Body::ReleaseShare(m) => on_release_share(comp, from, m, &mut ctx, &mut records),
            Body::Finish(m) => on_finish(comp, from, m, &mut records),
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
                Pending::Adopt { id, key, manifest } => self.adopt(id, key, manifest),
                Pending::Close { id } => self.close(id),
            }
        }
    }

    fn adopt(&mut self, id: ComputationId, key: (GroupId, Position), manifest: Manifest) {
        {
            let Some(comp) = self.computations.get(&id) else {
                return;
            };
            let Some(role) = comp.roles.get(&key) else {
                return;
            };
            if role.adopted.is_some() {
                return;
            }
        }
        self.record(Record::ManifestAdopted {
            computation: id,
            group: key.0,
            position: key.1,
            manifest,
        });
        let Some(comp) = self.computations.get_mut(&id) else {
            return;
        };
        let mut ctx = Ctx {
            me: &self.identity,
            envelope: self.envelope.as_ref(),
            now: self.now,
            out: &mut self.out,
        };
        if let Some(role) = comp.roles.get(&key) {
            if let Some(adopted) = &role.adopted {
                ctx.event(Event::ManifestAdopted {
                    computation: id,
                    group: key.0,
                    position: key.1,
                    version: adopted.version,
                    manifest: adopted.manifest.clone(),
                    complete: adopted.sum.is_some(),
                });
            }
        }
        // A leader passes the manifest on to every other member.
        let lead = comp
            .roles
            .get(&key)
            .and_then(|r| r.leader.as_ref().map(|l| l.round));
        if let Some(round) = lead {
            broadcast_manifest(comp, key, round, &mut ctx);
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
        let expired: Vec<ComputationId> = self
            .computations
            .values()
            .filter(|c| now >= c.request().deadline)
            .map(|c| c.id())
            .collect();
        for id in expired {
            if let Some(comp) = self.computations.get(&id) {
                if let Some(commissioner) = &comp.commissioner {
                    if !commissioner.done {
                        let best_holders = best_version(&commissioner.ready).map_or(0, |(_, h)| h);
                        self.out.push_back(Output::Event(Event::Failed {
                            computation: id,
                            reason: Failure::NoQuorum { best_holders },
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
            let mut ctx = Ctx {
                me: &self.identity,
                envelope: self.envelope.as_ref(),
                now: self.now,
                out: &mut self.out,
            };
            let mut pending = Vec::new();
            let keys: Vec<_> = comp.roles.keys().copied().collect();
            for key in keys {
                advance_role(comp, key, &mut ctx, &mut pending);
            }
            advance_commissioner(comp, &mut ctx, &mut pending);
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
        for comp in self.computations.values() {
            let req = comp.request();
            consider(req.deadline);
            for role in comp.roles.values() {
                if let Some(d) = role_deadline(comp, role) {
                    consider(d);
                }
            }
            if let Some(c) = &comp.commissioner {
                if !c.done && c.chosen.is_none() && !c.window_over {
                    if let Some(first) = c.first_ready {
                        consider(first.plus(req.tree.timeouts.release_window));
                    }
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
        key: (GroupId, Position),
        manifest: Manifest,
    },
    Close {
        id: ComputationId,
    },
}

impl Commissioner {
    fn new(finish_signature: Vec<u8>) -> Commissioner {
        Commissioner {
            finish_signature,
            ready: BTreeMap::new(),
            ready_from: BTreeMap::new(),
            first_ready: None,
            window_over: false,
            chosen: None,
            shares: BTreeMap::new(),
            done: false,
        }
    }
}

impl Role {
    fn new(group: GroupId, position: Position) -> Role {
        Role {
            group,
            position,
            stage: Stage::Collecting,
            round: 0,
            first_item_at: None,
            shares: BTreeMap::new(),
            children: BTreeMap::new(),
            heals: BTreeMap::new(),
            leader: None,
            pending_queries: BTreeMap::new(),
            adopted: None,
            completed_late: false,
        }
    }

    /// What this member holds, as report items.
    fn items(&self) -> Vec<Item> {
        if self.group.level == 0 {
            self.shares.keys().map(|c| Item::Contributor(*c)).collect()
        } else {
            self.children
                .iter()
                .flat_map(|(group, versions)| {
                    versions.values().map(move |h| Item::Child {
                        group: *group,
                        version: h.version,
                    })
                })
                .collect()
        }
    }
}

fn apply_to_computation(comp: &mut Computation, record: &Record) -> Result<(), String> {
    let len = comp.len();
    match record {
        Record::Contribution { seed, vector, .. } => {
            comp.contribution = Some(Contribution {
                seed: *seed,
                vector: vector.0.clone(),
            });
        }
        Record::ShareHeld {
            group,
            position,
            contributor,
            share,
            ..
        } => {
            let role = comp
                .roles
                .get_mut(&(*group, *position))
                .ok_or("share for a role this node does not hold")?;
            role.shares.insert(*contributor, share.clone());
        }
        Record::ChildHeld {
            group,
            position,
            child,
            version,
            sum,
            ..
        } => {
            let role = comp
                .roles
                .get_mut(&(*group, *position))
                .ok_or("partial for a role this node does not hold")?;
            role.children.entry(*child).or_default().insert(
                version.digest,
                HeldPartial {
                    version: *version,
                    sum: sum.0.clone(),
                },
            );
            if let Some(heal) = role.heals.get_mut(child) {
                if heal.want.is_none_or(|w| w == version.digest) {
                    heal.state = HealState::Done;
                }
            }
            if let Some(adopted) = role.adopted.as_ref().filter(|a| a.sum.is_none()) {
                let sum = sum_items(role, &adopted.manifest, len);
                if sum.is_some() {
                    role.completed_late = true;
                    if let Some(a) = role.adopted.as_mut() {
                        a.sum = sum;
                    }
                }
            }
        }
        Record::ManifestAdopted {
            group,
            position,
            manifest,
            ..
        } => {
            let id = comp.id();
            let role = comp
                .roles
                .get_mut(&(*group, *position))
                .ok_or("manifest for a role this node does not hold")?;
            let version = version_of(&id, *group, manifest);
            let sum = sum_items(role, manifest, len);
            role.adopted = Some(Adopted {
                manifest: manifest.clone(),
                version,
                sum,
            });
            role.stage = Stage::Adopted;
        }
        Record::Released { .. } => {
            if let Some(c) = comp.commissioner.as_mut() {
                c.done = true;
            }
        }
        Record::Takeover {
            group, position, ..
        } => {
            if !comp.plan.contains(*group) || *position == 0 || *position > comp.plan.g {
                return Err("takeover of a position outside the plan".into());
            }
            comp.roles
                .entry((*group, *position))
                .or_insert_with(|| Role::new(*group, *position));
        }
        Record::Accepted { .. } | Record::Launched { .. } | Record::Closed { .. } => {}
    }
    Ok(())
}

/// The member's sum over exactly the manifest's items, or `None` if it lacks one.
fn sum_items(role: &Role, manifest: &Manifest, len: usize) -> Option<Vec<Fp>> {
    let mut acc = vec![Fp::ZERO; len];
    for item in &manifest.items {
        match item {
            Item::Contributor(c) => {
                let share = role.shares.get(c)?;
                match share {
                    CompressedShare::Full(v) if v.0.len() == len => add_assign_vec(&mut acc, &v.0),
                    CompressedShare::Full(_) => return None,
                    CompressedShare::Seed(_) => add_assign_vec(&mut acc, &share.expand(len)),
                }
            }
            Item::Child { group, version } => {
                let held = role.children.get(group)?.get(&version.digest)?;
                add_assign_vec(&mut acc, &held.sum);
            }
        }
    }
    Some(acc)
}

fn leader_of(round: u32, g: u8) -> Position {
    (round % g as u32) as u8 + 1
}

fn role_deadline(comp: &Computation, role: &Role) -> Option<Micros> {
    let req = comp.request();
    let to = req.tree.timeouts;
    let mut next: Option<Micros> = None;
    let mut consider = |d: Micros| next = Some(next.map_or(d, |n: Micros| n.min(d)));
    match role.stage {
        Stage::Collecting => {
            if role.group.level == 0 {
                consider(req.created_at.plus(to.share_window));
            } else {
                consider(level_deadline(req, role.group.level));
                if let Some(first) = role.first_item_at {
                    consider(first.plus(to.collect_window));
                }
            }
        }
        Stage::Healing => {
            for heal in role.heals.values() {
                if heal.state == HealState::Running {
                    consider(heal.since.plus(to.heal_attempt));
                }
            }
        }
        Stage::Reporting { since } => {
            if role.round + 1 < MAX_AGREE_ROUNDS {
                consider(since.plus(to.manifest_timeout));
            }
        }
        Stage::Adopted => {
            for heal in role.heals.values() {
                if heal.state == HealState::Running {
                    consider(heal.since.plus(to.heal_attempt));
                }
            }
        }
    }
    if let Some(l) = &role.leader {
        if role.adopted.is_none() && !l.window_over && l.reports.contains_key(&role.position) {
            consider(l.since.plus(to.report_window));
        }
    }
    next
}

fn level_deadline(req: &Request, level: u8) -> Micros {
    let to = req.tree.timeouts;
    req.created_at
        .plus(to.share_window)
        .plus(to.level_span.saturating_mul(level as u64))
}

fn advance_role(
    comp: &mut Computation,
    key: (GroupId, Position),
    ctx: &mut Ctx,
    pending: &mut Vec<Pending>,
) {
    let id = comp.id();
    let now = ctx.now;
    let to = comp.request().tree.timeouts;
    let g = comp.plan.g;
    let t = comp.plan.t as usize;
    let leaf_deadline = comp.request().created_at.plus(to.share_window);
    let level_cap = level_deadline(comp.request(), key.0.level);
    let children = comp.plan.children(key.0);
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };

    if role.stage == Stage::Collecting {
        let done = if key.0.level == 0 {
            now >= leaf_deadline
        } else {
            let all = children.iter().all(|c| role.children.contains_key(c));
            all || now >= level_cap
                || role
                    .first_item_at
                    .is_some_and(|f| now >= f.plus(to.collect_window))
        };
        if done {
            role.stage = Stage::Healing;
            for child in &children {
                if !role.children.contains_key(child) {
                    role.heals.insert(
                        *child,
                        Heal {
                            want: None,
                            attempt: 0,
                            since: now,
                            offers: BTreeMap::new(),
                            go: None,
                            excluded: BTreeSet::new(),
                            state: HealState::Running,
                        },
                    );
                    for p in 1..=g {
                        ctx.send_slot(
                            &comp.plan,
                            &comp.servers,
                            id,
                            slot(*child, p),
                            0,
                            Body::HealQuery(HealQueryMsg {
                                child: *child,
                                target: key.1,
                            }),
                        );
                    }
                }
            }
        }
    }

    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    if role.stage == Stage::Healing {
        drive_heal_timeouts(comp, key, ctx);
        let Some(role) = comp.roles.get_mut(&key) else {
            return;
        };
        if role.heals.values().all(|h| h.state != HealState::Running) {
            role.stage = Stage::Reporting { since: now };
            send_report(comp, key, ctx);
        }
    }

    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    if let Stage::Reporting { since } = role.stage {
        if now >= since.plus(to.manifest_timeout) && role.round + 1 < MAX_AGREE_ROUNDS {
            role.round += 1;
            role.stage = Stage::Reporting { since: now };
            send_report(comp, key, ctx);
        }
    }

    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    if role.stage == Stage::Adopted {
        if std::mem::take(&mut role.completed_late) {
            if let Some(adopted) = &role.adopted {
                ctx.event(Event::ManifestAdopted {
                    computation: id,
                    group: key.0,
                    position: key.1,
                    version: adopted.version,
                    manifest: adopted.manifest.clone(),
                    complete: true,
                });
            }
            send_up(comp, key, ctx);
            return;
        }
        heal_missing_items(comp, key, ctx);
        drive_heal_timeouts(comp, key, ctx);
        return;
    }

    // Leadership: fix the manifest once the reports are in.
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    if role.adopted.is_some() {
        return;
    }
    let Some(lead) = role.leader.as_mut() else {
        return;
    };
    if !lead.reports.contains_key(&key.1) {
        return; // the leader's own report is not ready yet
    }
    let all_in = lead.reports.len() == g as usize;
    if !all_in && now < lead.since.plus(to.report_window) {
        return;
    }
    if let Some(adopted) = lead
        .reports
        .values()
        .find_map(|(_, adopted)| adopted.clone())
    {
        pending.push(Pending::Adopt {
            id,
            key,
            manifest: adopted,
        });
        return;
    }
    if lead.reports.len() < t {
        lead.window_over = true;
        return;
    }
    let reports: Vec<(Position, &[Item])> = lead
        .reports
        .iter()
        .map(|(p, (items, _))| (*p, items.as_slice()))
        .collect();
    if let Some(manifest) = choose_manifest(&reports, t) {
        pending.push(Pending::Adopt { id, key, manifest });
    }
}

/// An adopted member that lacks child versions the manifest names heals exactly those
/// versions, then sends up (instead of staying silent and leaving the heal to the parent).
fn heal_missing_items(comp: &mut Computation, key: (GroupId, Position), ctx: &mut Ctx) {
    let id = comp.id();
    let plan = comp.plan.clone();
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    let Some(adopted) = role.adopted.as_ref().filter(|a| a.sum.is_none()) else {
        return;
    };
    let mut start = Vec::new();
    for item in &adopted.manifest.items {
        if let Item::Child { group, version } = item {
            let held = role
                .children
                .get(group)
                .is_some_and(|v| v.contains_key(&version.digest));
            let healing = role
                .heals
                .get(group)
                .is_some_and(|h| h.want == Some(version.digest));
            if !held && !healing {
                start.push((*group, version.digest));
            }
        }
    }
    for (child, version) in start {
        // Attempt numbers keep counting across the replaced heal, so go ids never repeat.
        let attempt = role.heals.get(&child).map_or(0, |h| h.attempt + 1);
        role.heals.insert(
            child,
            Heal {
                want: Some(version),
                attempt,
                since: ctx.now,
                offers: BTreeMap::new(),
                go: None,
                excluded: BTreeSet::new(),
                state: HealState::Running,
            },
        );
        for p in 1..=plan.g {
            ctx.send_slot(
                &plan,
                &comp.servers,
                id,
                slot(child, p),
                0,
                Body::HealQuery(HealQueryMsg {
                    child,
                    target: key.1,
                }),
            );
        }
    }
}

/// Sends this member's report to the leader of its round (or files it locally when it is the
/// leader), and makes it leader when the round says so.
fn send_report(comp: &mut Computation, key: (GroupId, Position), ctx: &mut Ctx) {
    let id = comp.id();
    let g = comp.plan.g;
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    let round = role.round;
    let leader = leader_of(round, g);
    let items = role.items();
    if leader == key.1 {
        let lead = role.leader.get_or_insert_with(|| Leadership {
            round,
            since: ctx.now,
            reports: BTreeMap::new(),
            window_over: false,
        });
        if lead.round < round {
            lead.round = round;
            lead.since = ctx.now;
            lead.window_over = false;
        }
        lead.reports.insert(key.1, (items, None));
        if round > 0 {
            for p in 1..=g {
                if p != key.1 {
                    ctx.send_slot(
                        &comp.plan,
                        &comp.servers,
                        id,
                        slot(key.0, p),
                        round,
                        Body::Solicit(SolicitMsg {
                            group: key.0,
                            leader: key.1,
                        }),
                    );
                }
            }
        }
    } else {
        ctx.send_slot(
            &comp.plan,
            &comp.servers,
            id,
            slot(key.0, leader),
            round,
            Body::Report(ReportMsg {
                group: key.0,
                position: key.1,
                items,
                adopted: None,
            }),
        );
    }
}

fn broadcast_manifest(comp: &Computation, key: (GroupId, Position), round: u32, ctx: &mut Ctx) {
    let Some(role) = comp.roles.get(&key) else {
        return;
    };
    let Some(adopted) = &role.adopted else {
        return;
    };
    for p in 1..=comp.plan.g {
        if p != key.1 {
            ctx.send_slot(
                &comp.plan,
                &comp.servers,
                comp.id(),
                slot(key.0, p),
                round,
                Body::Manifest(ManifestMsg {
                    group: key.0,
                    leader: key.1,
                    manifest: adopted.manifest.clone(),
                }),
            );
        }
    }
}

/// After adoption: a complete member sends its partial sum to the same position of the parent
/// (or its readiness to the commissioner, at the root) and answers pending heal queries.
fn send_up(comp: &mut Computation, key: (GroupId, Position), ctx: &mut Ctx) {
    let id = comp.id();
    let plan = comp.plan.clone();
    let commissioner = comp.request().commissioner_node;
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    let Some(adopted) = &role.adopted else {
        return;
    };
    let Some(sum) = &adopted.sum else {
        return; // lacks an item: stays silent; the parent heals this position
    };
    match plan.parent(key.0) {
        Some(parent) => {
            ctx.send_slot(
                &plan,
                &comp.servers,
                id,
                slot(parent, key.1),
                0,
                Body::Partial(PartialMsg {
                    child: key.0,
                    position: key.1,
                    version: adopted.version,
                    sum: FieldVec(sum.clone()),
                }),
            );
            for (target, requester) in std::mem::take(&mut role.pending_queries) {
                ctx.send_to(
                    requester,
                    id,
                    0,
                    Body::HealOffer(HealOfferMsg {
                        child: key.0,
                        target,
                        helper: key.1,
                        version: adopted.version,
                    }),
                    Some(slot(parent, target)),
                );
            }
        }
        None => ctx.send(
            commissioner,
            id,
            0,
            Body::RootReady(RootReadyMsg {
                position: key.1,
                version: adopted.version,
            }),
        ),
    }
}

fn check_position(comp: &Computation, p: Position) -> Result<(), String> {
    if p == 0 || p > comp.plan.g {
        Err(format!("position {p} outside 1..={}", comp.plan.g))
    } else {
        Ok(())
    }
}

fn on_share(
    comp: &mut Computation,
    from: NodeId,
    m: ShareMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), String> {
    check_position(comp, m.position)?;
    let key = (m.group, m.position);
    if from != m.contributor {
        return Err("share not sent by its contributor".into());
    }
    if !comp.plan.contains(m.group) || comp.plan.leaf_of(&m.contributor) != m.group {
        return Err("share for a group that is not the contributor's leaf".into());
    }
    let len = comp.len();
    let id = comp.id();
    let role = comp
        .roles
        .get_mut(&key)
        .ok_or("share for a role this node does not hold")?;
    if role.shares.contains_key(&m.contributor) {
        return Ok(()); // a re-sent share
    }
    if role.stage != Stage::Collecting {
        return Err("share arrived after collection ended".into());
    }
    if role.shares.len() >= MAX_CONTRIBUTORS_PER_LEAF {
        return Err("leaf member is full".into());
    }
    let bytes = ctx
        .envelope
        .open(&ctx.me.x25519_secret, &m.sealed)
        .map_err(|e| e.to_string())?;
    let payload: SharePayload = postcard::from_bytes(&bytes).map_err(|e| e.to_string())?;
    if payload.computation != id
        || payload.group != m.group
        || payload.position != m.position
        || payload.contributor != m.contributor
    {
        return Err("sealed share does not match its envelope".into());
    }
    if let CompressedShare::Full(v) = &payload.share {
        if v.0.len() != len {
            return Err(format!("share has {} elements, expected {len}", v.0.len()));
        }
    }
    records.push(Pending::Record(Record::ShareHeld {
        computation: id,
        group: m.group,
        position: m.position,
        contributor: m.contributor,
        share: payload.share,
    }));
    Ok(())
}

fn on_partial(
    comp: &mut Computation,
    from: NodeId,
    m: PartialMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), String> {
    check_position(comp, m.position)?;
    let id = comp.id();
    let len = comp.len();
    let max = comp.request().max_contributors;
    let parent = comp
        .plan
        .parent(m.child)
        .filter(|_| comp.plan.contains(m.child))
        .ok_or("partial from a group with no parent")?;
    if !is_candidate(comp, m.child, m.position, &from) {
        return Err("partial not sent by the member at its position".into());
    }
    if m.sum.0.len() != len {
        return Err(format!(
            "partial has {} elements, expected {len}",
            m.sum.0.len()
        ));
    }
    if m.version.count > max {
        return Err("partial covers more contributors than the request allows".into());
    }
    let key = (parent, m.position);
    let role = comp
        .roles
        .get_mut(&key)
        .ok_or("partial for a role this node does not hold")?;
    if let Some(adopted) = &role.adopted {
        let wanted = Item::Child {
            group: m.child,
            version: m.version,
        };
        if adopted.sum.is_some() || !adopted.manifest.items.contains(&wanted) {
            return Ok(()); // too late to matter
        }
    }
    let versions = role.children.entry(m.child).or_default();
    if versions.contains_key(&m.version.digest) {
        return Ok(());
    }
    if versions.len() >= MAX_VERSIONS_PER_CHILD {
        return Err("too many versions of one child".into());
    }
    if role.first_item_at.is_none() {
        role.first_item_at = Some(ctx.now);
    }
    records.push(Pending::Record(Record::ChildHeld {
        computation: id,
        group: parent,
        position: m.position,
        child: m.child,
        version: m.version,
        sum: m.sum,
    }));
    Ok(())
}

/// The position of `group` that `from` may serve (as its member or one of its backups). A
/// node is a candidate for at most one position per group.
fn group_member_position(comp: &Computation, group: GroupId, from: NodeId) -> Option<Position> {
    if !comp.plan.contains(group) {
        return None;
    }
    (1..=comp.plan.g).find(|p| comp.plan.candidate_rank(group, *p, &from).is_some())
}

fn is_candidate(comp: &Computation, group: GroupId, position: Position, from: &NodeId) -> bool {
    comp.plan.candidate_rank(group, position, from).is_some()
}

fn my_role_in(comp: &Computation, group: GroupId) -> Option<(GroupId, Position)> {
    comp.roles.keys().find(|(g, _)| *g == group).copied()
}

fn on_report(
    comp: &mut Computation,
    from: NodeId,
    round: u32,
    m: ReportMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), String> {
    check_position(comp, m.position)?;
    if group_member_position(comp, m.group, from) != Some(m.position) {
        return Err("report not sent by the member at its position".into());
    }
    if m.items.len() > MAX_MANIFEST_ITEMS {
        return Err("report too long".into());
    }
    let id = comp.id();
    let g = comp.plan.g;
    let key = my_role_in(comp, m.group).ok_or("report for a group this node is not in")?;
    let role = comp.roles.get_mut(&key).ok_or("no role")?;
    if let Some(adopted) = &role.adopted {
        // Already agreed: tell the sender.
        ctx.send_to(
            from,
            id,
            round,
            Body::Manifest(ManifestMsg {
                group: key.0,
                leader: key.1,
                manifest: adopted.manifest.clone(),
            }),
            Some(slot(key.0, m.position)),
        );
        return Ok(());
    }
    if let Some(manifest) = m.adopted.clone() {
        check_manifest(comp, key.0, &manifest)?;
        records.push(Pending::Adopt { id, key, manifest });
        return Ok(());
    }
    if leader_of(round, g) != key.1 {
        return Ok(()); // a report for another round's leader: stale, harmless
    }
    let lead = role.leader.get_or_insert_with(|| Leadership {
        round,
        since: ctx.now,
        reports: BTreeMap::new(),
        window_over: false,
    });
    if round > lead.round {
        lead.round = round;
        lead.since = ctx.now;
        lead.window_over = false;
    }
    lead.reports.insert(m.position, (m.items, None));
    // A member that is already reporting to an older round follows the leader's round.
    if round > role.round {
        role.round = round;
        if let Stage::Reporting { .. } = role.stage {
            role.stage = Stage::Reporting { since: ctx.now };
            let own = role.items();
            if let Some(lead) = role.leader.as_mut() {
                lead.reports.insert(key.1, (own, None));
            }
        }
    }
    Ok(())
}

fn on_solicit(
    comp: &mut Computation,
    from: NodeId,
    round: u32,
    m: SolicitMsg,
    ctx: &mut Ctx,
) -> Result<(), String> {
    check_position(comp, m.leader)?;
    if group_member_position(comp, m.group, from) != Some(m.leader)
        || leader_of(round, comp.plan.g) != m.leader
    {
        return Err("solicit not sent by the leader of its round".into());
    }
    let id = comp.id();
    let key = my_role_in(comp, m.group).ok_or("solicit for a group this node is not in")?;
    let role = comp.roles.get_mut(&key).ok_or("no role")?;
    if let Some(adopted) = &role.adopted {
        ctx.send_to(
            from,
            id,
            round,
            Body::Report(ReportMsg {
                group: key.0,
                position: key.1,
                items: role.items(),
                adopted: Some(adopted.manifest.clone()),
            }),
            Some(slot(key.0, m.leader)),
        );
        return Ok(());
    }
    if round > role.round {
        role.round = round;
        if let Stage::Reporting { .. } = role.stage {
            role.stage = Stage::Reporting { since: ctx.now };
            ctx.send_to(
                from,
                id,
                round,
                Body::Report(ReportMsg {
                    group: key.0,
                    position: key.1,
                    items: role.items(),
                    adopted: None,
                }),
                Some(slot(key.0, m.leader)),
            );
        }
    }
    Ok(())
}

fn check_manifest(comp: &Computation, group: GroupId, manifest: &Manifest) -> Result<(), String> {
    if manifest.items.len() > MAX_MANIFEST_ITEMS {
        return Err("manifest too long".into());
    }
    if !manifest.items.windows(2).all(|w| w[0] < w[1]) {
        return Err("manifest items not sorted and unique".into());
    }
    let mut last_child = None;
    for item in &manifest.items {
        match item {
            Item::Contributor(c) => {
                if group.level != 0 || comp.plan.leaf_of(c) != group {
                    return Err("manifest lists a contributor of another group".into());
                }
            }
            Item::Child { group: child, .. } => {
                if !comp.plan.is_child_of(*child, group) {
                    return Err("manifest lists a group that is not a child".into());
                }
                if last_child == Some(*child) {
                    return Err("manifest lists two versions of one child".into());
                }
                last_child = Some(*child);
            }
        }
    }
    Ok(())
}

fn on_manifest(
    comp: &mut Computation,
    from: NodeId,
    m: ManifestMsg,
    _ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), String> {
    check_position(comp, m.leader)?;
    if group_member_position(comp, m.group, from) != Some(m.leader) {
        return Err("manifest not sent by a member of the group".into());
    }
    check_manifest(comp, m.group, &m.manifest)?;
    let id = comp.id();
    let key = my_role_in(comp, m.group).ok_or("manifest for a group this node is not in")?;
    let role = comp.roles.get(&key).ok_or("no role")?;
    if role.adopted.is_some() {
        return Ok(());
    }
    records.push(Pending::Adopt {
        id,
        key,
        manifest: m.manifest,
    });
    Ok(())
}

fn on_heal_query(
    comp: &mut Computation,
    from: NodeId,
    m: HealQueryMsg,
    ctx: &mut Ctx,
) -> Result<(), String> {
    check_position(comp, m.target)?;
    let id = comp.id();
    let parent = comp
        .plan
        .parent(m.child)
        .filter(|_| comp.plan.contains(m.child))
        .ok_or("no parent")?;
    if !is_candidate(comp, parent, m.target, &from) {
        return Err("heal query not sent by the parent member at its target".into());
    }
    let key = my_role_in(comp, m.child).ok_or("heal query for a group this node is not in")?;
    let role = comp.roles.get_mut(&key).ok_or("no role")?;
    match &role.adopted {
        Some(Adopted {
            version,
            sum: Some(_),
            ..
        }) => ctx.send_to(
            from,
            id,
            0,
            Body::HealOffer(HealOfferMsg {
                child: m.child,
                target: m.target,
                helper: key.1,
                version: *version,
            }),
            Some(slot(parent, m.target)),
        ),
        // Not ready (or lacking an item it is healing): answer once the sum is ready.
        _ => {
            if role.pending_queries.len() < MAX_PENDING_HEAL_QUERIES {
                role.pending_queries.insert(m.target, from);
            }
        }
    }
    Ok(())
}

fn my_role_as_parent_of(
    comp: &Computation,
    child: GroupId,
    target: Position,
) -> Option<(GroupId, Position)> {
    let parent = comp.plan.parent(child)?;
    comp.roles
        .contains_key(&(parent, target))
        .then_some((parent, target))
}

fn on_heal_offer(
    comp: &mut Computation,
    from: NodeId,
    m: HealOfferMsg,
    ctx: &mut Ctx,
) -> Result<(), String> {
    check_position(comp, m.helper)?;
    check_position(comp, m.target)?;
    if group_member_position(comp, m.child, from) != Some(m.helper) {
        return Err("heal offer not sent by the child member at its position".into());
    }
    let key = my_role_as_parent_of(comp, m.child, m.target)
        .ok_or("heal offer for a role this node does not hold")?;
    let role = comp.roles.get_mut(&key).ok_or("no role")?;
    let Some(heal) = role.heals.get_mut(&m.child) else {
        return Ok(());
    };
    if heal.state != HealState::Running {
        return Ok(());
    }
    heal.offers.insert(m.helper, (m.version, from));
    try_heal_go(comp, key, m.child, ctx);
    Ok(())
}

/// Starts a heal attempt when `t` helpers offer one version.
fn try_heal_go(comp: &mut Computation, key: (GroupId, Position), child: GroupId, ctx: &mut Ctx) {
    let id = comp.id();
    let t = comp.plan.t as usize;
    let plan = comp.plan.clone();
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    let Some(heal) = role.heals.get_mut(&child) else {
        return;
    };
    if heal.go.is_some() || heal.state != HealState::Running {
        return;
    }
    let mut by_version: BTreeMap<Version, Vec<Position>> = BTreeMap::new();
    for (p, (v, _)) in &heal.offers {
        if !heal.excluded.contains(p) && heal.want.is_none_or(|w| w == v.digest) {
            by_version.entry(*v).or_default().push(*p);
        }
    }
    // The version offered by the most helpers; ties go to the larger count, then the digest.
    let Some((version, helpers)) = by_version
        .into_iter()
        .filter(|(_, ps)| ps.len() >= t)
        .max_by(|a, b| {
            (a.1.len(), a.0.count, std::cmp::Reverse(a.0.digest)).cmp(&(
                b.1.len(),
                b.0.count,
                std::cmp::Reverse(b.0.digest),
            ))
        })
    else {
        return;
    };
    let helpers: Vec<Position> = helpers.into_iter().take(t).collect();
    let helper_nodes: Vec<NodeId> = helpers
        .iter()
        .map(|p| {
            heal.offers
                .get(p)
                .map_or_else(|| plan.member(child, *p), |o| o.1)
        })
        .collect();
    heal.since = ctx.now;
    // Every attempt gets its own id, carried as the round of the go and of its parts: parts of
    // an earlier attempt (other helpers, other masks), even from before a restart, never mix in.
    let go_id = heal_go_id(ctx.me.node, &id, child, key.1, heal.attempt, ctx.now);
    for (p, node) in helpers.iter().zip(&helper_nodes) {
        ctx.send_to(
            *node,
            id,
            go_id,
            Body::HealGo(HealGoMsg {
                child,
                target: key.1,
                version: version.digest,
                helpers: helpers.clone(),
                helper_nodes: helper_nodes.clone(),
            }),
            Some(slot(child, *p)),
        );
    }
    heal.go = Some(HealAttempt {
        id: go_id,
        version,
        helpers,
        helper_nodes,
        parts: BTreeMap::new(),
    });
}

/// Retries timed-out heal attempts with fresh masks and other helpers, or gives up.
fn drive_heal_timeouts(comp: &mut Computation, key: (GroupId, Position), ctx: &mut Ctx) {
    let id = comp.id();
    let to = comp.request().tree.timeouts;
    let plan = comp.plan.clone();
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    let mut retry = Vec::new();
    for (child, heal) in role.heals.iter_mut() {
        if heal.state != HealState::Running || ctx.now < heal.since.plus(to.heal_attempt) {
            continue;
        }
        if let Some(go) = heal.go.take() {
            for p in &go.helpers {
                if !go.parts.contains_key(p) {
                    heal.excluded.insert(*p);
                    heal.offers.remove(p);
                }
            }
        }
        heal.attempt += 1;
        heal.since = ctx.now;
        if heal.attempt >= MAX_HEAL_ATTEMPTS {
            heal.state = HealState::GaveUp;
            ctx.event(Event::HealGaveUp {
                computation: id,
                child: *child,
                target: key.1,
            });
            continue;
        }
        // Ask again everyone not excluded: members may have become ready since.
        for p in 1..=plan.g {
            if !heal.excluded.contains(&p) {
                ctx.send_slot(
                    &plan,
                    &comp.servers,
                    id,
                    slot(*child, p),
                    heal.attempt,
                    Body::HealQuery(HealQueryMsg {
                        child: *child,
                        target: key.1,
                    }),
                );
            }
        }
        retry.push(*child);
    }
    for child in retry {
        try_heal_go(comp, key, child, ctx);
    }
}

fn heal_go_id(
    me: NodeId,
    id: &ComputationId,
    child: GroupId,
    target: Position,
    attempt: u32,
    now: Micros,
) -> u32 {
    let h = hash_parts(
        "grove/heal-go-id",
        &[
            &me.0,
            &id.0,
            &[child.level],
            &child.index.to_le_bytes(),
            &[target],
            &attempt.to_le_bytes(),
            &now.0.to_le_bytes(),
        ],
    );
    u32::from_le_bytes([h[0], h[1], h[2], h[3]])
}

fn heal_mask_seed(
    shared: &[u8; 32],
    id: &ComputationId,
    child: GroupId,
    target: Position,
    version: &Digest,
    attempt: u32,
    helpers: &[Position],
) -> [u8; 32] {
    hash_parts(
        "grove/heal-mask",
        &[
            shared,
            &id.0,
            &[child.level],
            &child.index.to_le_bytes(),
            &[target],
            &version.0,
            &attempt.to_le_bytes(),
            helpers,
        ],
    )
}

fn on_heal_go(
    comp: &mut Computation,
    from: NodeId,
    attempt: u32,
    m: HealGoMsg,
    ctx: &mut Ctx,
) -> Result<(), String> {
    check_position(comp, m.target)?;
    let id = comp.id();
    let t = comp.plan.t as usize;
    let len = comp.len();
    let parent = comp
        .plan
        .parent(m.child)
        .filter(|_| comp.plan.contains(m.child))
        .ok_or("no parent")?;
    if !is_candidate(comp, parent, m.target, &from) {
        return Err("heal go not sent by the parent member at its target".into());
    }
    if m.helpers.len() != t
        || m.helper_nodes.len() != t
        || !m.helpers.windows(2).all(|w| w[0] < w[1])
    {
        return Err("heal go must name exactly t distinct sorted helpers".into());
    }
    for (p, node) in m.helpers.iter().zip(&m.helper_nodes) {
        if !is_candidate(comp, m.child, *p, node) {
            return Err("heal go names a helper that cannot serve its position".into());
        }
    }
    for p in &m.helpers {
        check_position(comp, *p)?;
    }
    let key = my_role_in(comp, m.child).ok_or("heal go for a group this node is not in")?;
    let Some(index) = m.helpers.iter().position(|p| *p == key.1) else {
        return Err("heal go does not name this member".into());
    };
    if m.helper_nodes[index] != ctx.me.node {
        return Err("heal go names another node for this position".into());
    }
    let plan = comp.plan.clone();
    let role = comp.roles.get(&key).ok_or("no role")?;
    let Some(Adopted {
        version,
        sum: Some(sum),
        ..
    }) = &role.adopted
    else {
        return Ok(()); // nothing to heal from (yet)
    };
    if version.digest != m.version {
        return Ok(()); // another version: cannot help this attempt
    }
    let lambdas = lagrange_coefficients(&m.helpers, m.target).map_err(|e| e.to_string())?;
    let mut value = vec![Fp::ZERO; len];
    mul_add_assign_vec(&mut value, lambdas[index], sum);
    for (other, peer) in m.helpers.iter().zip(&m.helper_nodes) {
        if *other == key.1 {
            continue;
        }
        let peer = *peer;
        let shared = match comp.dh.get(&peer) {
            Some(s) => *s,
            None => {
                let Some(public) = plan.x25519_key(&peer) else {
                    return Err("no key for a helper".into());
                };
                let s = seal::x25519_shared(&ctx.me.x25519_secret, &public);
                comp.dh.insert(peer, s);
                s
            }
        };
        let seed = heal_mask_seed(
            &shared, &id, m.child, m.target, &m.version, attempt, &m.helpers,
        );
        let mask = random_vec(&mut ChaCha20Rng::from_seed(seed), len);
        if key.1 < *other {
            add_assign_vec(&mut value, &mask);
        } else {
            sub_assign_vec(&mut value, &mask);
        }
    }
    ctx.send_to(
        from,
        id,
        attempt,
        Body::HealPart(HealPartMsg {
            child: m.child,
            target: m.target,
            helper: key.1,
            version: m.version,
            value: FieldVec(value),
        }),
        Some(slot(parent, m.target)),
    );
    Ok(())
}

fn on_heal_part(
    comp: &mut Computation,
    from: NodeId,
    attempt: u32,
    m: HealPartMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), String> {
    check_position(comp, m.helper)?;
    check_position(comp, m.target)?;
    let id = comp.id();
    let len = comp.len();
    if group_member_position(comp, m.child, from) != Some(m.helper) {
        return Err("heal part not sent by the child member at its position".into());
    }
    if m.value.0.len() != len {
        return Err("heal part has the wrong length".into());
    }
    let key = my_role_as_parent_of(comp, m.child, m.target)
        .ok_or("heal part for a role this node does not hold")?;
    let role = comp.roles.get_mut(&key).ok_or("no role")?;
    let Some(heal) = role.heals.get_mut(&m.child) else {
        return Ok(());
    };
    if heal.state != HealState::Running {
        return Ok(());
    }
    let Some(go) = heal.go.as_mut() else {
        return Ok(());
    };
    if go.id != attempt {
        return Ok(()); // a part of another attempt
    }
    let named = go
        .helpers
        .iter()
        .zip(&go.helper_nodes)
        .any(|(p, n)| *p == m.helper && *n == from);
    if go.version.digest != m.version || !named {
        return Ok(());
    }
    go.parts.insert(m.helper, m.value.0);
    if go.parts.len() < go.helpers.len() {
        return Ok(());
    }
    let mut sum = vec![Fp::ZERO; len];
    for part in go.parts.values() {
        add_assign_vec(&mut sum, part);
    }
    let version = go.version;
    heal.state = HealState::Done;
    ctx.event(Event::HealDone {
        computation: id,
        child: m.child,
        target: m.target,
        version,
    });
    records.push(Pending::Record(Record::ChildHeld {
        computation: id,
        group: key.0,
        position: key.1,
        child: m.child,
        version,
        sum: FieldVec(sum),
    }));
    Ok(())
}

fn on_root_ready(comp: &mut Computation, from: NodeId, m: RootReadyMsg) -> Result<(), String> {
    check_position(comp, m.position)?;
    let root = comp.plan.root();
    if !is_candidate(comp, root, m.position, &from) {
        return Err("root report not sent by the root member at its position".into());
    }
    let Some(c) = comp.commissioner.as_mut() else {
        return Err("root report to a node that is not the commissioner".into());
    };
    c.ready.entry(m.position).or_insert(m.version);
    c.ready_from.entry(m.position).or_insert(from);
    Ok(())
}

fn best_version(ready: &BTreeMap<Position, Version>) -> Option<(Version, usize)> {
    let mut holders: BTreeMap<Version, usize> = BTreeMap::new();
    for v in ready.values() {
        *holders.entry(*v).or_default() += 1;
    }
    holders.into_iter().max_by(|a, b| {
        (a.1, a.0.count, std::cmp::Reverse(a.0.digest)).cmp(&(
            b.1,
            b.0.count,
            std::cmp::Reverse(b.0.digest),
        ))
    })
}

fn advance_commissioner(comp: &mut Computation, ctx: &mut Ctx, pending: &mut Vec<Pending>) {
    let id = comp.id();
    let g = comp.plan.g as usize;
    let t = comp.plan.t as usize;
    let k_min = comp.request().privacy.k_min;
    let window = comp.request().tree.timeouts.release_window;
    let root = comp.plan.root();
    let plan = comp.plan.clone();
    let Some(c) = comp.commissioner.as_mut() else {
        return;
    };
    if c.done || c.chosen.is_some() || c.ready.is_empty() {
        return;
    }
    let first = *c.first_ready.get_or_insert(ctx.now);
    if c.ready.len() < g && ctx.now < first.plus(window) && !c.window_over {
        return;
    }
    let Some((version, holders)) = best_version(&c.ready) else {
        return;
    };
    if holders < t {
        c.window_over = true;
        return;
    }
    if version.count < k_min {
        c.done = true;
        ctx.event(Event::Failed {
            computation: id,
            reason: Failure::KMinNotMet {
                count: version.count,
                k_min,
            },
        });
        finish(comp, ctx, pending);
        return;
    }
    c.chosen = Some(version);
    for (p, v) in &c.ready {
        if *v == version {
            let to = c
                .ready_from
                .get(p)
                .copied()
                .unwrap_or_else(|| plan.member(root, *p));
            ctx.send_to(
                to,
                id,
                0,
                Body::ReleaseAsk(ReleaseAskMsg {
                    version: version.digest,
                }),
                Some(slot(root, *p)),
            );
        }
    }
}

fn finish(comp: &mut Computation, ctx: &mut Ctx, pending: &mut Vec<Pending>) {
    let id = comp.id();
    let Some(c) = comp.commissioner.as_ref() else {
        return;
    };
    ctx.out.push_back(Output::Broadcast {
        message: Message {
            computation: id,
            round: 0,
            body: Body::Finish(FinishMsg {
                signature: c.finish_signature.clone(),
            }),
            to: None,
        },
    });
    pending.push(Pending::Close { id });
}

fn on_release_ask(
    comp: &mut Computation,
    from: NodeId,
    m: ReleaseAskMsg,
    ctx: &mut Ctx,
) -> Result<(), String> {
    if from != comp.request().commissioner_node {
        return Err("release asked by a node that is not the commissioner".into());
    }
    let id = comp.id();
    let root = comp.plan.root();
    let key = my_role_in(comp, root).ok_or("release asked of a node not in the root group")?;
    let role = comp.roles.get(&key).ok_or("no role")?;
    if let Some(Adopted {
        version,
        sum: Some(sum),
        ..
    }) = &role.adopted
    {
        if version.digest == m.version {
            ctx.send(
                from,
                id,
                0,
                Body::ReleaseShare(ReleaseShareMsg {
                    position: key.1,
                    version: m.version,
                    share: FieldVec(sum.clone()),
                }),
            );
        }
    }
    Ok(())
}

fn on_release_share(
    comp: &mut Computation,
    from: NodeId,
    m: ReleaseShareMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), String> {
    check_position(comp, m.position)?;
    let id = comp.id();
    let t = comp.plan.t;
    let len = comp.len();
    let root = comp.plan.root();
    if !is_candidate(comp, root, m.position, &from) {
        return Err("release share not sent by the root member at its position".into());
    }
    if m.share.0.len() != len {
        return Err("release share has the wrong length".into());
    }
    let Some(c) = comp.commissioner.as_mut() else {
        return Err("release share to a node that is not the commissioner".into());
    };
    let Some(version) = c.chosen else {
        return Ok(());
    };
    if c.done || version.digest != m.version {
        return Ok(());
    }
    c.shares.insert(m.position, m.share.0);
    if c.shares.len() < t as usize {
        return Ok(());
    }
    let shares: Vec<(u8, &[Fp])> = c.shares.iter().map(|(p, s)| (*p, s.as_slice())).collect();
    let sum = reconstruct(&shares, t).map_err(|e| e.to_string())?;
    let values = comp.request().contribution.decode_sum(&sum);
    ctx.event(Event::Released(Box::new(Released {
        computation: id,
        version,
        sum: sum.clone(),
        values,
        at: ctx.now,
    })));
    records.push(Pending::Record(Record::Released {
        computation: id,
        version,
        sum: FieldVec(sum),
    }));
    finish(comp, ctx, records);
    Ok(())
}

fn on_finish(
    comp: &mut Computation,
    _from: NodeId,
    m: FinishMsg,
    records: &mut Vec<Pending>,
) -> Result<(), String> {
    use ed25519_dalek::{Signature, VerifyingKey};
    let key = VerifyingKey::from_bytes(&comp.request().commissioner.0)
        .map_err(|_| "bad commissioner key")?;
    let sig = Signature::from_slice(&m.signature).map_err(|_| "malformed finish signature")?;
    key.verify_strict(&finish_signing_bytes(&comp.id()), &sig)
        .map_err(|_| "finish signature does not verify")?;
    records.push(Pending::Close { id: comp.id() });
    Ok(())
}
