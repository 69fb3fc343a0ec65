//! The aggregator role: the state of one position this node serves (its stage, what it
//! holds, what it adopted) and the machine that moves it forward; collection, agreement and
//! healing live in their own files. After adoption a complete member sends its partial sum up.

use super::agreement::{next_round_on_timeout, propose_when_ready, send_report, Leadership};
use super::collection::{ask_contributors, end_collection, send_ahead};
use super::commissioner::{open_counts, send_count_share};
use super::heal::{drive_heal_timeouts, heal_missing_items, Heal, HealState};
use super::{server_of, slot, version_of, Computation, Ctx, Event, Pending};
use crate::field::{add_assign_vec, FieldVec, Fp};
use crate::ids::{ComputationId, Digest, GroupId, Micros, NodeId, Position, Version};
use crate::limits::MAX_AGREE_ROUNDS;
use crate::message::{
    Body, HealOfferMsg, Item, Manifest, PartialConfirmMsg, PartialMsg, RootReadyMsg, Slot,
};
use crate::request::Request;
use crate::sharing::CompressedShare;
use std::collections::{BTreeMap, BTreeSet};

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

/// Moves one role forward as far as time and state allow: collection ends, heals finish,
/// reports time out into the next round, an adopted member sends up or recovers what it lacks,
/// and a leader proposes.
pub(super) fn advance_role(
    comp: &mut Computation,
    key: Slot,
    ctx: &mut Ctx,
    pending: &mut Vec<Pending>,
) {
    if !comp.roles.contains_key(&key) {
        return;
    }
    end_collection(comp, key, ctx);
    end_healing(comp, key, ctx);
    next_round_on_timeout(comp, key, ctx);
    if comp.roles.get(&key).is_some_and(|r| r.adopted().is_some()) {
        advance_adopted(comp, key, ctx);
        return;
    }
    propose_when_ready(comp, key, ctx, pending);
}

/// Healing: once no heal runs any more, report (and send ahead what the member holds).
fn end_healing(comp: &mut Computation, key: Slot, ctx: &mut Ctx) {
    if !comp
        .roles
        .get(&key)
        .is_some_and(|r| matches!(r.stage, Stage::Healing))
    {
        return;
    }
    drive_heal_timeouts(comp, key, ctx);
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    if role.heals.values().all(|h| h.state != HealState::Running) {
        role.stage = Stage::Reporting { since: ctx.now };
        send_report(comp, key, ctx);
        send_ahead(comp, key, ctx);
    }
}

/// Adopted: a member that completed its sum late sends up; one that lacks items gets them
/// again (a leaf asks its contributors, an inner member heals the versions it lacks).
fn advance_adopted(comp: &mut Computation, key: Slot, ctx: &mut Ctx) {
    let id = comp.id();
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    let Stage::Adopted(adopted) = &role.stage else {
        return;
    };
    if std::mem::take(&mut role.completed_late) {
        ctx.event(adopted.event(id, key));
        send_up(comp, key, ctx);
        return;
    }
    if key.group.level == 0 {
        if comp.strategy.recollects_shares() {
            ask_contributors(comp, key, ctx);
        }
    } else if comp.strategy.heals() {
        heal_missing_items(comp, key, ctx);
        drive_heal_timeouts(comp, key, ctx);
    }
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

pub(super) fn my_role_in(comp: &Computation, group: GroupId) -> Option<Slot> {
    comp.roles.keys().find(|s| s.group == group).copied()
}

/// Applies `Record::ManifestAdopted`: the member at `key` adopts `manifest` (and sums it, if
/// it holds every item).
pub(super) fn apply_adopted(
    comp: &mut Computation,
    key: Slot,
    manifest: &Manifest,
) -> Result<(), String> {
    let id = comp.id();
    let len = comp.len();
    let role = comp
        .roles
        .get_mut(&key)
        .ok_or("manifest for a role this node does not hold")?;
    let version = version_of(&id, key.group, manifest);
    let sum = sum_items(role, manifest, len);
    role.stage = Stage::Adopted(Adopted {
        manifest: manifest.clone(),
        version,
        sum,
    });
    Ok(())
}

/// Applies `Record::Takeover`: this node (a backup) serves `key` from now on.
pub(super) fn apply_takeover(comp: &mut Computation, key: Slot) -> Result<(), String> {
    if !comp.plan.contains(key.group) || key.position == 0 || key.position > comp.plan.g {
        return Err("takeover of a position outside the plan".into());
    }
    comp.roles
        .entry(key)
        .or_insert_with(|| Role::new(key.group, false));
    Ok(())
}
