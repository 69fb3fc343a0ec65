//! The aggregator role: collect, report, agree on a manifest, send the partial sum up.

use super::*;

pub(super) struct HeldPartial {
    pub(super) version: Version,
    pub(super) sum: Vec<Fp>,
}

pub(super) enum Stage {
    /// Receiving shares or partial sums.
    Collecting,
    /// Waiting for heals of missing children.
    Healing,
    /// Report sent to the leader of `round`, waiting for a manifest since `since`.
    Reporting { since: Micros },
    /// Manifest adopted: the member's part in agreement is over; the adopted manifest, its
    /// version and the member's sum live here and nowhere else.
    Adopted(Adopted),
}

pub(super) struct Adopted {
    pub(super) manifest: Manifest,
    pub(super) version: Version,
    /// The member's share of the group's sum; `None` when it lacks a manifest item.
    pub(super) sum: Option<Vec<Fp>>,
}

impl Adopted {
    /// The event that tells the driver (and the harness's version map) about this adoption.
    pub(super) fn event(&self, computation: ComputationId, key: Slot) -> Event {
        Event::ManifestAdopted {
            computation,
            group: key.group,
            position: key.position,
            version: self.version,
            manifest: self.manifest.clone(),
            complete: self.sum.is_some(),
        }
    }
}

/// A node's acceptor state for one group (Paxos' acceptor): every candidate of the group, its
/// members and their backups, is an acceptor, so that agreement survives members dying.
#[derive(Default)]
pub(super) struct Acceptor {
    /// The highest round promised (persisted as `ManifestPromised`).
    pub(super) promised: u32,
    /// The manifest accepted last and its round (persisted as `ManifestAccepted`).
    pub(super) accepted: Option<(u32, Manifest)>,
}

/// A member leading one agreement round (Paxos' proposer of that round).
pub(super) struct Leadership {
    pub(super) round: u32,
    pub(super) since: Micros,
    /// What each position reported holding in this round.
    pub(super) reports: BTreeMap<Position, Vec<Item>>,
    /// Acceptors that promised this round, with the manifest each accepted last. A report of
    /// another round is no promise of this one.
    pub(super) promises: BTreeMap<NodeId, Option<(u32, Manifest)>>,
    /// The report window passed without enough reports: propose as soon as they arrive.
    pub(super) window_over: bool,
    /// The round's manifest was proposed (at most one per round).
    pub(super) proposed: bool,
}

impl Leadership {
    fn new(round: u32, since: Micros) -> Leadership {
        Leadership {
            round,
            since,
            reports: BTreeMap::new(),
            promises: BTreeMap::new(),
            window_over: false,
            proposed: false,
        }
    }
}

/// Every acceptor of a group: the candidates (member, then backups) of each position.
pub(super) fn acceptors(plan: &Plan, group: GroupId) -> Vec<NodeId> {
    (1..=plan.g)
        .flat_map(|p| plan.candidates(group, p).collect::<Vec<_>>())
        .collect()
}

/// Acceptors that must accept a manifest in one round before it is adopted: a majority of the
/// group's acceptors, so that any two such sets share one.
pub(super) fn quorum(plan: &Plan, group: GroupId) -> usize {
    acceptors(plan, group).len() / 2 + 1
}

/// The report of a position that already adopted: what it holds, what it accepted and the
/// manifest it adopted, so that its reader stops waiting for it.
pub(super) fn adopted_report(
    comp: &Computation,
    key: Slot,
    role: &Role,
    adopted: &Adopted,
) -> Body {
    let (_, accepted) = acceptor_state(comp, key.group);
    Body::Report(ReportMsg {
        group: key.group,
        position: key.position,
        serving: true,
        items: role.items(),
        accepted,
        adopted: Some(adopted.manifest.clone()),
    })
}

fn acceptor_state(comp: &Computation, group: GroupId) -> (u32, Option<(u32, Manifest)>) {
    comp.acceptors
        .get(&group)
        .map_or((0, None), |a| (a.promised, a.accepted.clone()))
}

/// Persists this node's promise of `round` in `group` (at `position`, the one it is a
/// candidate of) if it promised less so far.
fn promise(comp: &mut Computation, ctx: &mut Ctx, group: GroupId, position: Position, round: u32) {
    if round > acceptor_state(comp, group).0 {
        let id = comp.id();
        persist(
            comp,
            ctx,
            Record::ManifestPromised {
                computation: id,
                group,
                position,
                round,
            },
        );
    }
}

pub(super) struct Role {
    pub(super) group: GroupId,
    pub(super) stage: Stage,
    pub(super) round: u32,
    pub(super) first_item_at: Option<Micros>,
    pub(super) shares: BTreeMap<NodeId, CompressedShare>,
    pub(super) children: BTreeMap<GroupId, BTreeMap<Digest, HeldPartial>>,
    pub(super) heals: BTreeMap<GroupId, Heal>,
    pub(super) leader: Option<Leadership>,
    /// This node is the position's member, which alone may lead its rounds (a backup serving
    /// the position reports, accepts, learns and sends up, but never proposes).
    pub(super) member: bool,
    /// Votes heard, per round: the round's manifest and the acceptors that accepted it.
    pub(super) votes: BTreeMap<u32, (Manifest, BTreeSet<NodeId>)>,
    /// Heal queries to answer once this member's sum is ready: target position -> requester.
    pub(super) pending_queries: BTreeMap<Position, NodeId>,
    /// A missing manifest item was healed after adoption: the sum is ready to send up.
    pub(super) completed_late: bool,
    /// A leaf position's server asked the manifest's contributors for the shares it lacks.
    pub(super) asked_contributors: bool,
    /// Children given up on a failure notice (S&P drops a child whose server died): collection
    /// no longer waits for them.
    pub(super) dropped: BTreeSet<GroupId>,
    /// Nodes of this leaf that declined to contribute (never persisted: after a restart the
    /// leaf waits for its share window).
    pub(super) declined: BTreeSet<NodeId>,
    /// The version this member sent ahead to its parent position, and the node serving that
    /// position it went to (never persisted: after a restart the member sends the full partial).
    pub(super) ahead_sent: Option<(Version, NodeId)>,
    /// Partials children sent ahead of their agreement, one per child, not yet confirmed
    /// (never persisted: lost on a restart, the child is then healed like a silent one).
    pub(super) ahead: BTreeMap<GroupId, HeldPartial>,
    /// Confirms that arrived before the partial they confirm.
    pub(super) confirmed: BTreeMap<GroupId, Version>,
    /// Root members: the other root positions' shares of the cells' counts, one per position
    /// with the version it is of (never persisted: after a restart the member asks again).
    pub(super) count_shares: BTreeMap<Position, (Digest, Vec<Fp>)>,
    /// Root members: the opened counts of each cell of a version (persisted as
    /// `CountsOpened`); the member releases only the cells that count `k_min` contributors.
    pub(super) counts: Option<(Digest, Vec<Fp>)>,
    /// Root members: the commissioner asked for this member's share before its counts were
    /// open; it answers once they are.
    pub(super) release_asked: bool,
    /// Root members: this member already sent its count share, so a later send asks the
    /// others for theirs (it may have lost them, or they it).
    pub(super) counts_sent: bool,
}

impl Role {
    /// The manifest this member adopted, if it did.
    pub(super) fn adopted(&self) -> Option<&Adopted> {
        match &self.stage {
            Stage::Adopted(a) => Some(a),
            _ => None,
        }
    }

    pub(super) fn new(group: GroupId, member: bool) -> Role {
        Role {
            group,
            stage: Stage::Collecting,
            round: 0,
            first_item_at: None,
            shares: BTreeMap::new(),
            children: BTreeMap::new(),
            heals: BTreeMap::new(),
            leader: None,
            member,
            votes: BTreeMap::new(),
            pending_queries: BTreeMap::new(),
            completed_late: false,
            asked_contributors: false,
            dropped: BTreeSet::new(),
            declined: BTreeSet::new(),
            ahead_sent: None,
            ahead: BTreeMap::new(),
            confirmed: BTreeMap::new(),
            count_shares: BTreeMap::new(),
            counts: None,
            release_asked: false,
            counts_sent: false,
        }
    }

    /// Whether every directory peer of this leaf has sent its share or declined.
    pub(super) fn leaf_accounted(&self, leaf_size: u32) -> bool {
        let declined = self
            .declined
            .iter()
            .filter(|n| !self.shares.contains_key(n))
            .count();
        leaf_size > 0 && self.shares.len() + declined >= leaf_size as usize
    }

    /// After a late item arrived: if the adopted manifest's sum can now be computed, compute it
    /// and mark it ready to send up.
    pub(super) fn complete_if_possible(&mut self, len: usize) {
        let Some(adopted) = self.adopted().filter(|a| a.sum.is_none()) else {
            return;
        };
        let sum = sum_items(self, &adopted.manifest, len);
        if sum.is_some() {
            self.completed_late = true;
            if let Stage::Adopted(a) = &mut self.stage {
                a.sum = sum;
            }
        }
    }

    /// What this member holds, as report items.
    pub(super) fn items(&self) -> Vec<Item> {
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

/// The member's sum over exactly the manifest's items, or `None` if it lacks one.
pub(super) fn sum_items(role: &Role, manifest: &Manifest, len: usize) -> Option<Vec<Fp>> {
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

pub(super) fn leader_of(round: u32, g: u8) -> Position {
    (round % g as u32) as u8 + 1
}

pub(super) fn role_deadline(comp: &Computation, role: &Role) -> Option<Micros> {
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
                if let Some(first) = role
                    .first_item_at
                    .filter(|_| comp.strategy.uses_collect_window())
                {
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
        Stage::Adopted(_) => {
            for heal in role.heals.values() {
                if heal.state == HealState::Running {
                    consider(heal.since.plus(to.heal_attempt));
                }
            }
        }
    }
    if let Some(l) = &role.leader {
        if role.adopted().is_none()
            && !l.window_over
            && !l.proposed
            && comp
                .acceptors
                .get(&role.group)
                .is_none_or(|a| a.promised <= l.round)
        {
            consider(l.since.plus(to.report_window));
        }
    }
    next
}

pub(super) fn level_deadline(req: &Request, level: u8) -> Micros {
    let to = req.tree.timeouts;
    req.created_at
        .plus(to.share_window)
        .plus(to.level_span.saturating_mul(level as u64))
}

pub(super) fn advance_role(
    comp: &mut Computation,
    key: Slot,
    ctx: &mut Ctx,
    pending: &mut Vec<Pending>,
) {
    let id = comp.id();
    let now = ctx.now;
    let to = comp.request().tree.timeouts;
    let g = comp.plan.g;
    let t = comp.plan.t as usize;
    let leaf_deadline = comp.request().created_at.plus(to.share_window);
    let leaf_size = comp.plan.leaf_size(key.group);
    let level_cap = level_deadline(comp.request(), key.group.level);
    let children = comp.plan.children(key.group);
    let strategy = comp.strategy.clone();
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };

    if matches!(role.stage, Stage::Collecting) {
        let done = if key.group.level == 0 {
            now >= leaf_deadline
                || strategy.leaf_complete(key.group, role.shares.len())
                || role.leaf_accounted(leaf_size)
        } else {
            let all = children
                .iter()
                .all(|c| role.children.contains_key(c) || role.dropped.contains(c));
            all || now >= level_cap
                || (strategy.uses_collect_window()
                    && role
                        .first_item_at
                        .is_some_and(|f| now >= f.plus(to.collect_window)))
        };
        if done {
            role.stage = Stage::Healing;
            // Without heal (S&P), a missing child is cut: it stays out of the manifest.
            for child in children.iter().filter(|_| strategy.heals()) {
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
                                target: key.position,
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
    if matches!(role.stage, Stage::Healing) {
        drive_heal_timeouts(comp, key, ctx);
        let Some(role) = comp.roles.get_mut(&key) else {
            return;
        };
        if role.heals.values().all(|h| h.state != HealState::Running) {
            role.stage = Stage::Reporting { since: now };
            send_report(comp, key, ctx);
            send_ahead(comp, key, ctx);
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
    if let Stage::Adopted(adopted) = &role.stage {
        if std::mem::take(&mut role.completed_late) {
            ctx.event(adopted.event(id, key));
            send_up(comp, key, ctx);
            return;
        }
        if key.group.level == 0 {
            if strategy.recollects_shares() {
                ask_contributors(comp, key, ctx);
            }
        } else if strategy.heals() {
            heal_missing_items(comp, key, ctx);
            drive_heal_timeouts(comp, key, ctx);
        }
        return;
    }

    // Leadership: propose the round's manifest once the reports are in.
    let (promised, own_accepted) = acceptor_state(comp, key.group);
    let quorum = quorum(&comp.plan, key.group);
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    if role.adopted().is_some() {
        return;
    }
    let Some(lead) = role.leader.as_mut() else {
        return;
    };
    // A member that promised a later round may not propose in this one. A leader whose own
    // report is not ready (it is still collecting or healing) does not hold its group back: it
    // proposes from the others' reports once the window passed, as it would without a report
    // of any other member, and heals what it lacks after adoption like any member.
    if lead.proposed || promised > lead.round {
        return;
    }
    let round = lead.round;
    let all_in = lead.reports.len() == g as usize;
    if !all_in && now < lead.since.plus(to.report_window) {
        return;
    }
    // The manifest of the highest round an acceptor of the quorum accepted, if any (Paxos'
    // rule): it may have been adopted, so it is the only value this round may propose.
    let prior = lead
        .promises
        .values()
        .flatten()
        .max_by_key(|(r, _)| *r)
        .map(|(_, m)| m.clone());
    let manifest = match (own_accepted, prior) {
        // Proposed in this round before a restart: the same manifest again.
        (Some((r, m)), _) if r == round => Some(m),
        // Round 0 is the first: nothing can have been accepted before it.
        _ if round > 0 && lead.promises.len() < quorum => None,
        (_, Some(m)) if round > 0 => Some(m),
        _ if lead.reports.len() < t => None,
        _ => {
            let reports: Vec<(Position, &[Item])> = lead
                .reports
                .iter()
                .map(|(p, items)| (*p, items.as_slice()))
                .collect();
            choose_manifest(&reports, t)
        }
    };
    let Some(manifest) = manifest else {
        lead.window_over = true;
        return;
    };
    lead.proposed = true;
    propose(comp, key, round, manifest, ctx, pending);
}

/// The leader of `round` accepts its proposal (persisted first), sends it to every other
/// acceptor and counts its own vote.
fn propose(
    comp: &mut Computation,
    key: Slot,
    round: u32,
    manifest: Manifest,
    ctx: &mut Ctx,
    pending: &mut Vec<Pending>,
) {
    let id = comp.id();
    persist(
        comp,
        ctx,
        Record::ManifestAccepted {
            computation: id,
            group: key.group,
            position: key.position,
            round,
            manifest: manifest.clone(),
        },
    );
    let me = ctx.me.node;
    for node in acceptors(&comp.plan, key.group) {
        if node != me {
            ctx.send_to(
                node,
                id,
                round,
                Body::Manifest(ManifestMsg {
                    group: key.group,
                    leader: key.position,
                    manifest: manifest.clone(),
                }),
                None,
            );
        }
    }
    count_vote(comp, key, round, me, manifest, pending);
}

/// Files one acceptor's vote of `round`; adopts the round's manifest once a quorum voted.
fn count_vote(
    comp: &mut Computation,
    key: Slot,
    round: u32,
    voter: NodeId,
    manifest: Manifest,
    pending: &mut Vec<Pending>,
) -> bool {
    let id = comp.id();
    let quorum = quorum(&comp.plan, key.group);
    let Some(role) = comp.roles.get_mut(&key) else {
        return true;
    };
    if role.adopted().is_some() {
        return true;
    }
    let (m, voters) = role
        .votes
        .entry(round)
        .or_insert_with(|| (manifest.clone(), BTreeSet::new()));
    if *m != manifest {
        return false; // one proposal per round: only a broken acceptor votes otherwise
    }
    voters.insert(voter);
    if voters.len() >= quorum {
        pending.push(Pending::Adopt {
            id,
            key,
            manifest,
            announce: true,
        });
    }
    true
}

/// Makes the member at `key` lead `round` (after promising it), keeping what it collected if it
/// already leads that round, and files its own promise. A leader that starts a round above 0
/// (by its own timeout or because a member's report of that round reached it first) asks every
/// acceptor for its promise.
fn lead_round(comp: &mut Computation, key: Slot, round: u32, ctx: &mut Ctx) {
    promise(comp, ctx, key.group, key.position, round);
    let (_, accepted) = acceptor_state(comp, key.group);
    let me = ctx.me.node;
    let id = comp.id();
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    let fresh = role.leader.as_ref().is_none_or(|l| l.round < round);
    if fresh {
        role.leader = Some(Leadership::new(round, ctx.now));
    }
    if let Some(lead) = role.leader.as_mut() {
        lead.promises.insert(me, accepted);
    }
    if fresh && round > 0 {
        for node in acceptors(&comp.plan, key.group) {
            if node != me {
                ctx.send_to(
                    node,
                    id,
                    round,
                    Body::Solicit(SolicitMsg {
                        group: key.group,
                        leader: key.position,
                    }),
                    None,
                );
            }
        }
    }
}

/// A leaf member that adopted a manifest naming contributors whose shares it lacks (a backup
/// that took the position over after its member died holding them) asks those contributors
/// once to send their share for this position again. Contributors that went offline do not
/// answer; the position then stays silent and the parent heals it if it can.
fn ask_contributors(comp: &mut Computation, key: Slot, ctx: &mut Ctx) {
    let id = comp.id();
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    if role.asked_contributors {
        return;
    }
    let Stage::Adopted(adopted) = &role.stage else {
        return;
    };
    if adopted.sum.is_some() {
        return;
    }
    role.asked_contributors = true;
    for item in &adopted.manifest.items {
        if let Item::Contributor(c) = item {
            if !role.shares.contains_key(c) {
                ctx.send(
                    *c,
                    id,
                    0,
                    Body::ShareQuery(ShareQueryMsg {
                        group: key.group,
                        position: key.position,
                    }),
                );
            }
        }
    }
}

/// Sends this member's report to the leader of its round (or files it locally when it is the
/// leader), after promising the round, and makes it leader when the round says so.
pub(super) fn send_report(comp: &mut Computation, key: Slot, ctx: &mut Ctx) {
    let id = comp.id();
    let g = comp.plan.g;
    let Some(role) = comp.roles.get(&key) else {
        return;
    };
    let round = role.round;
    let leader = leader_of(round, g);
    if leader == key.position {
        if !role.member {
            return; // a backup never leads: the round passes without a leader
        }
        let items = role.items();
        lead_round(comp, key, round, ctx);
        if let Some(lead) = comp.roles.get_mut(&key).and_then(|r| r.leader.as_mut()) {
            keep_larger_report(&mut lead.reports, key.position, items);
        }
        return;
    }
    promise(comp, ctx, key.group, key.position, round);
    let (_, accepted) = acceptor_state(comp, key.group);
    let Some(role) = comp.roles.get(&key) else {
        return;
    };
    ctx.send_slot(
        &comp.plan,
        &comp.servers,
        id,
        slot(key.group, leader),
        round,
        Body::Report(ReportMsg {
            group: key.group,
            position: key.position,
            serving: true,
            items: role.items(),
            accepted,
            adopted: None,
        }),
    );
}

/// Grove's send-ahead: a member that holds every item its group can expect (a leaf member every
/// share or decline of its leaf, an inner member one version of every child) sends the sum of
/// them to its parent position as it reports, before agreement. Without failures every member
/// holds the same items, so the leader's manifest is exactly this set and, once the group adopts
/// it, a small confirm replaces the partial: the transfer and the parent's opening of it overlap
/// agreement instead of following it. The parent counts the partial only once confirmed; if the
/// group adopts another version the member sends that partial as usual. The parent position
/// learns at most one extra value, its own point of a subtree's sum, as it would from a heal.
fn send_ahead(comp: &mut Computation, key: Slot, ctx: &mut Ctx) {
    if !comp.strategy.sends_ahead() {
        return;
    }
    let Some(parent) = comp.plan.parent(key.group) else {
        return;
    };
    let id = comp.id();
    let len = comp.len();
    let leaf_size = comp.plan.leaf_size(key.group);
    let children = comp.plan.children(key.group);
    let to = slot(parent, key.position);
    let server = server_of(&comp.plan, &comp.servers, to);
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    if role.adopted().is_some() || role.ahead_sent.is_some() {
        return;
    }
    let complete = if key.group.level == 0 {
        !role.shares.is_empty() && role.leaf_accounted(leaf_size)
    } else {
        !children.is_empty()
            && children
                .iter()
                .all(|c| role.children.get(c).is_some_and(|v| v.len() == 1))
    };
    if !complete {
        return;
    }
    let mut items = role.items();
    items.sort();
    let manifest = Manifest { items };
    let Some(sum) = sum_items(role, &manifest, len) else {
        return;
    };
    let version = version_of(&id, key.group, &manifest);
    role.ahead_sent = Some((version, server));
    ctx.send_slot(
        &comp.plan,
        &comp.servers,
        id,
        to,
        0,
        Body::PartialAhead(PartialMsg {
            child: key.group,
            position: key.position,
            version,
            sum: FieldVec(sum),
        }),
    );
}

/// After adoption: a complete member sends its partial sum to the same position of the parent
/// (or its readiness to the commissioner, at the root) and answers pending heal queries.
pub(super) fn send_up(comp: &mut Computation, key: Slot, ctx: &mut Ctx) {
    let id = comp.id();
    let plan = comp.plan.clone();
    let commissioner = comp.request().commissioner_node;
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    let Stage::Adopted(adopted) = &role.stage else {
        return;
    };
    let Some(sum) = &adopted.sum else {
        return; // lacks an item: stays silent; the parent heals this position
    };
    match plan.parent(key.group) {
        Some(parent) => {
            // The same version went ahead to the node that serves the slot still: confirm it.
            let to = slot(parent, key.position);
            let server = server_of(&plan, &comp.servers, to);
            let body = if role.ahead_sent.take() == Some((adopted.version, server)) {
                Body::PartialConfirm(PartialConfirmMsg {
                    child: key.group,
                    position: key.position,
                    version: adopted.version,
                })
            } else {
                Body::Partial(PartialMsg {
                    child: key.group,
                    position: key.position,
                    version: adopted.version,
                    sum: FieldVec(sum.clone()),
                })
            };
            ctx.send_slot(&plan, &comp.servers, id, to, 0, body);
            for (target, requester) in std::mem::take(&mut role.pending_queries) {
                ctx.send_to(
                    requester,
                    id,
                    0,
                    Body::HealOffer(HealOfferMsg {
                        child: key.group,
                        target,
                        helper: key.position,
                        version: adopted.version,
                    }),
                    Some(slot(parent, target)),
                );
            }
        }
        None => {
            ctx.send(
                commissioner,
                id,
                0,
                Body::RootReady(RootReadyMsg {
                    position: key.position,
                    version: adopted.version,
                }),
            );
            // The root opens its cells' counts before it releases anything.
            let ask = role.counts_sent;
            send_count_share(comp, key, ctx, ask);
            open_counts(comp, key, ctx);
        }
    }
}

pub(super) fn check_position(comp: &Computation, p: Position) -> Result<(), String> {
    if p == 0 || p > comp.plan.g {
        Err(format!("position {p} outside 1..={}", comp.plan.g))
    } else {
        Ok(())
    }
}

pub(super) fn on_decline(
    comp: &mut Computation,
    from: NodeId,
    m: DeclineMsg,
) -> Result<(), String> {
    if m.group.level != 0 || !comp.plan.contains(m.group) || comp.plan.leaf_of(&from) != m.group {
        return Err("decline for a group that is not the sender's leaf".into());
    }
    let keys: Vec<Slot> = comp
        .roles
        .keys()
        .filter(|s| s.group == m.group)
        .copied()
        .collect();
    if keys.is_empty() {
        return Err("decline for a group this node does not serve".into());
    }
    for key in keys {
        if let Some(role) = comp.roles.get_mut(&key) {
            if matches!(role.stage, Stage::Collecting)
                && role.declined.len() < MAX_CONTRIBUTORS_PER_LEAF
            {
                role.declined.insert(from);
            }
        }
    }
    Ok(())
}

pub(super) fn on_share(
    comp: &mut Computation,
    from: NodeId,
    m: ShareMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), String> {
    check_position(comp, m.position)?;
    let key = slot(m.group, m.position);
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
    let wanted = role.adopted().is_some_and(|a| {
        a.sum.is_none() && a.manifest.items.contains(&Item::Contributor(m.contributor))
    });
    if !matches!(role.stage, Stage::Collecting) && !wanted {
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

pub(super) fn on_partial(
    comp: &mut Computation,
    from: NodeId,
    m: PartialMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), String> {
    let key = check_partial(comp, from, &m)?;
    hold_partial(comp, key, m, ctx, records)
}

/// A partial sent ahead of its group's agreement: kept aside until a confirm names its version
/// (held at once if the confirm came first).
pub(super) fn on_partial_ahead(
    comp: &mut Computation,
    from: NodeId,
    m: PartialMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), String> {
    let key = check_partial(comp, from, &m)?;
    let role = comp
        .roles
        .get_mut(&key)
        .ok_or("partial for a role this node does not hold")?;
    if role.confirmed.get(&m.child) == Some(&m.version) {
        role.confirmed.remove(&m.child);
        return hold_partial(comp, key, m, ctx, records);
    }
    role.ahead.insert(
        m.child,
        HeldPartial {
            version: m.version,
            sum: m.sum.0,
        },
    );
    Ok(())
}

/// The child adopted the version its member sent ahead: hold that partial now.
pub(super) fn on_partial_confirm(
    comp: &mut Computation,
    from: NodeId,
    m: PartialConfirmMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), String> {
    let key = check_child_sender(comp, from, m.child, m.position, m.version)?;
    let role = comp
        .roles
        .get_mut(&key)
        .ok_or("confirm for a role this node does not hold")?;
    match role.ahead.remove(&m.child) {
        Some(held) if held.version == m.version => hold_partial(
            comp,
            key,
            PartialMsg {
                child: m.child,
                position: m.position,
                version: m.version,
                sum: FieldVec(held.sum),
            },
            ctx,
            records,
        ),
        _ => {
            role.confirmed.insert(m.child, m.version);
            Ok(())
        }
    }
}

/// Checks a partial's sender, length and count; returns the role it is for.
fn check_partial(comp: &Computation, from: NodeId, m: &PartialMsg) -> Result<Slot, String> {
    let key = check_child_sender(comp, from, m.child, m.position, m.version)?;
    let len = comp.len();
    if m.sum.0.len() != len {
        return Err(format!(
            "partial has {} elements, expected {len}",
            m.sum.0.len()
        ));
    }
    Ok(key)
}

/// Checks that `from` may speak for `position` of `child` and that `version` fits the
/// request; returns the parent role a partial or confirm is for.
fn check_child_sender(
    comp: &Computation,
    from: NodeId,
    child: GroupId,
    position: Position,
    version: Version,
) -> Result<Slot, String> {
    check_position(comp, position)?;
    let parent = comp
        .plan
        .parent(child)
        .ok_or("partial from a group with no parent")?;
    if !is_candidate(comp, child, position, &from) {
        return Err("partial not sent by the member at its position".into());
    }
    if version.count > comp.request().max_contributors {
        return Err("partial covers more contributors than the request allows".into());
    }
    Ok(slot(parent, position))
}

/// Holds a child's partial of one version (persisted first), unless it is too late to matter.
fn hold_partial(
    comp: &mut Computation,
    key: Slot,
    m: PartialMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), String> {
    let id = comp.id();
    let role = comp
        .roles
        .get_mut(&key)
        .ok_or("partial for a role this node does not hold")?;
    if let Some(adopted) = role.adopted() {
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
        group: key.group,
        position: key.position,
        child: m.child,
        version: m.version,
        sum: m.sum,
    }));
    Ok(())
}

/// The position of `group` that `from` may serve (as its member or one of its backups). A
/// node is a candidate for at most one position per group.
pub(super) fn group_member_position(
    comp: &Computation,
    group: GroupId,
    from: NodeId,
) -> Option<Position> {
    if !comp.plan.contains(group) {
        return None;
    }
    (1..=comp.plan.g).find(|p| comp.plan.candidate_rank(group, *p, &from).is_some())
}

/// Checks that `from` serves `position` of `group` (as its member or one of its backups).
pub(super) fn check_sender(
    comp: &Computation,
    group: GroupId,
    position: Position,
    from: NodeId,
    what: &str,
) -> Result<(), String> {
    check_position(comp, position)?;
    if group_member_position(comp, group, from) == Some(position) {
        Ok(())
    } else {
        Err(format!("{what} not sent by a node serving its position"))
    }
}

/// The parent of `child`, after checking that `from` serves position `target` of it.
pub(super) fn check_parent_sender(
    comp: &Computation,
    child: GroupId,
    target: Position,
    from: &NodeId,
    what: &str,
) -> Result<GroupId, String> {
    check_position(comp, target)?;
    let parent = comp.plan.parent(child).ok_or("no parent")?;
    if is_candidate(comp, parent, target, from) {
        Ok(parent)
    } else {
        Err(format!(
            "{what} not sent by the parent member at its target"
        ))
    }
}

pub(super) fn is_candidate(
    comp: &Computation,
    group: GroupId,
    position: Position,
    from: &NodeId,
) -> bool {
    comp.plan.candidate_rank(group, position, from).is_some()
}

/// Records a position's report for the manifest. Two candidates can serve one position (a
/// member, and a backup a contributor failed over to while the member looked unreachable);
/// the manifest can only count on the one holding more, and a later, smaller report must not
/// replace it: that once cut a whole leaf's contributors down to the backup's one share.
fn keep_larger_report(
    reports: &mut BTreeMap<Position, Vec<Item>>,
    position: Position,
    items: Vec<Item>,
) {
    match reports.get(&position) {
        Some(held) if held.len() >= items.len() => {}
        _ => {
            reports.insert(position, items);
        }
    }
}

pub(super) fn my_role_in(comp: &Computation, group: GroupId) -> Option<Slot> {
    comp.roles.keys().find(|s| s.group == group).copied()
}

pub(super) fn on_report(
    comp: &mut Computation,
    from: NodeId,
    round: u32,
    m: ReportMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), String> {
    check_sender(comp, m.group, m.position, from, "report")?;
    if m.items.len() > MAX_MANIFEST_ITEMS || (!m.serving && !m.items.is_empty()) {
        return Err("report too long".into());
    }
    if round >= MAX_AGREE_ROUNDS {
        return Err("report of a round past the limit".into());
    }
    let id = comp.id();
    let g = comp.plan.g;
    let key = my_role_in(comp, m.group).ok_or("report for a group this node is not in")?;
    let role = comp.roles.get(&key).ok_or("no role")?;
    if let Some(adopted) = role.adopted() {
        // Already adopted: tell the sender, unless it told us (no echo between adopters).
        if m.adopted.is_none() {
            ctx.send_to(
                from,
                id,
                round,
                adopted_report(comp, key, role, adopted),
                None,
            );
        }
        return Ok(());
    }
    if let Some(manifest) = m.adopted.clone() {
        // A quorum accepted it in one round: it is the group's only manifest.
        check_manifest(comp, key.group, &manifest)?;
        records.push(Pending::Adopt {
            id,
            key,
            manifest,
            announce: false,
        });
        return Ok(());
    }
    if let Some((_, manifest)) = &m.accepted {
        check_manifest(comp, key.group, manifest)?;
    }
    let (promised, _) = acceptor_state(comp, key.group);
    if leader_of(round, g) != key.position || !role.member || round < promised {
        return Ok(()); // for another round's leader, or a round this member promised past
    }
    if role.leader.as_ref().is_some_and(|l| round < l.round) {
        return Ok(()); // stale
    }
    let was = role.round;
    lead_round(comp, key, round, ctx);
    let role = comp.roles.get_mut(&key).ok_or("no role")?;
    role.round = role.round.max(round);
    let following = round > was && matches!(role.stage, Stage::Reporting { .. });
    if following {
        // A member that is already reporting to an older round follows the leader's round.
        role.stage = Stage::Reporting { since: ctx.now };
    }
    let own = following.then(|| role.items());
    if let Some(lead) = role.leader.as_mut() {
        lead.promises.insert(from, m.accepted);
        if m.serving {
            keep_larger_report(&mut lead.reports, m.position, m.items);
        }
        if let Some(own) = own {
            keep_larger_report(&mut lead.reports, key.position, own);
        }
    }
    Ok(())
}

pub(super) fn on_solicit(
    comp: &mut Computation,
    from: NodeId,
    round: u32,
    m: SolicitMsg,
    ctx: &mut Ctx,
    _records: &mut Vec<Pending>,
) -> Result<(), String> {
    check_position(comp, m.leader)?;
    if !comp.plan.contains(m.group)
        || comp.plan.member(m.group, m.leader) != from
        || leader_of(round, comp.plan.g) != m.leader
    {
        return Err("solicit not sent by the leader of its round".into());
    }
    if round >= MAX_AGREE_ROUNDS {
        return Err("solicit of a round past the limit".into());
    }
    let id = comp.id();
    let mine = group_member_position(comp, m.group, ctx.me.node)
        .ok_or("solicit for a group this node is no candidate of")?;
    let key = my_role_in(comp, m.group);
    let role = key.and_then(|k| comp.roles.get(&k));
    let (promised, accepted) = acceptor_state(comp, m.group);
    let report = |items: Vec<Item>, serving: bool, accepted, adopted| {
        Body::Report(ReportMsg {
            group: m.group,
            position: mine,
            serving,
            items,
            accepted,
            adopted,
        })
    };
    if let Some(adopted) = role.and_then(|r| r.adopted()) {
        let body = report(
            role.map(|r| r.items()).unwrap_or_default(),
            true,
            accepted,
            Some(adopted.manifest.clone()),
        );
        ctx.send_to(from, id, round, body, None);
        return Ok(());
    }
    if round < promised {
        return Ok(()); // promised a later round already
    }
    promise(comp, ctx, m.group, mine, round);
    let (_, accepted) = acceptor_state(comp, m.group);
    match key.and_then(|k| comp.roles.get_mut(&k)) {
        // A backup that serves no position of the group: its promise only.
        None => ctx.send_to(from, id, round, report(vec![], false, accepted, None), None),
        Some(role) => {
            let moved = round > role.round;
            role.round = role.round.max(round);
            if let Stage::Reporting { .. } = role.stage {
                if moved {
                    role.stage = Stage::Reporting { since: ctx.now };
                }
                let body = report(role.items(), true, accepted, None);
                ctx.send_to(from, id, round, body, None);
            }
        }
    }
    Ok(())
}

pub(super) fn check_manifest(
    comp: &Computation,
    group: GroupId,
    manifest: &Manifest,
) -> Result<(), String> {
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

pub(super) fn on_manifest(
    comp: &mut Computation,
    from: NodeId,
    round: u32,
    m: ManifestMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), String> {
    check_position(comp, m.leader)?;
    if !comp.plan.contains(m.group)
        || comp.plan.member(m.group, m.leader) != from
        || leader_of(round, comp.plan.g) != m.leader
    {
        return Err("manifest not sent by the leader of its round".into());
    }
    if round >= MAX_AGREE_ROUNDS {
        return Err("manifest of a round past the limit".into());
    }
    check_manifest(comp, m.group, &m.manifest)?;
    let id = comp.id();
    let me = ctx.me.node;
    let mine = group_member_position(comp, m.group, me)
        .ok_or("manifest for a group this node is no candidate of")?;
    let key = my_role_in(comp, m.group);
    if let Some(key) = key {
        let role = comp.roles.get(&key).ok_or("no role")?;
        if let Some(adopted) = role.adopted() {
            // Tell the leader what was adopted, so that it stops waiting.
            ctx.send_to(
                from,
                id,
                round,
                adopted_report(comp, key, role, adopted),
                None,
            );
            return Ok(());
        }
        // The leader's proposal is also its vote.
        if !count_vote(comp, key, round, from, m.manifest.clone(), records) {
            return Err("two manifests proposed in one round".into());
        }
    }
    let (promised, accepted) = acceptor_state(comp, m.group);
    let duplicate = accepted.as_ref().is_some_and(|(r, _)| *r == round);
    if round < promised || duplicate {
        return Ok(()); // a round this acceptor promised past, or a repeat
    }
    persist(
        comp,
        ctx,
        Record::ManifestAccepted {
            computation: id,
            group: m.group,
            position: mine,
            round,
            manifest: m.manifest.clone(),
        },
    );
    // The vote goes to the round's leader alone, which counts the quorum and tells every
    // other position (its adopted report): 2g messages a round instead of g per acceptor.
    let leader = leader_of(round, comp.plan.g);
    if key.is_none_or(|k| k.position != leader) {
        ctx.send_slot(
            &comp.plan,
            &comp.servers,
            id,
            slot(m.group, leader),
            round,
            Body::Vote(VoteMsg {
                group: m.group,
                position: mine,
                manifest: m.manifest.clone(),
            }),
        );
    }
    if let Some(key) = key {
        count_vote(comp, key, round, me, m.manifest, records);
    }
    Ok(())
}

pub(super) fn on_vote(
    comp: &mut Computation,
    from: NodeId,
    round: u32,
    m: VoteMsg,
    _ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), String> {
    check_sender(comp, m.group, m.position, from, "vote")?;
    if round >= MAX_AGREE_ROUNDS {
        return Err("vote of a round past the limit".into());
    }
    check_manifest(comp, m.group, &m.manifest)?;
    let key = my_role_in(comp, m.group).ok_or("vote for a group this node is not in")?;
    if !count_vote(comp, key, round, from, m.manifest, records) {
        return Err("a vote for another manifest than its round's".into());
    }
    Ok(())
}
