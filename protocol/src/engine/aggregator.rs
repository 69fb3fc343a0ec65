//! The aggregator role's machine: it moves a served position (`role.rs`) through its stages,
//! calling on collection, healing, agreement and release; after adoption a complete member
//! sends its partial sum up (or, at the root, its readiness to the commissioner).

use super::agreement::{next_round_on_timeout, propose_when_ready, send_report};
use super::collection::{ahead_key, ask_contributors, end_collection, send_ahead};
use super::commissioner::{open_counts, send_count_share};
use super::heal::{drive_heal_timeouts, heal_missing_items};
use super::role::{level_deadline, my_role_in, HealState, Role, Stage};
use super::{server_of, slot, Computation, Ctx, Pending, Rejection};
use crate::field::FieldVec;
use crate::ids::{Micros, NodeId};
use crate::limits::MAX_AGREE_ROUNDS;
use crate::message::{Body, HealOfferMsg, PartialConfirmMsg, PartialMsg, RootReadyMsg, Slot};

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
    if let Some(d) = super::validity::flush_deadline(comp, role) {
        consider(d);
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
    super::validity::flush_verifier_shares(comp, key, ctx);
    super::validity::decide_at_collection_end(comp, key, ctx, pending);
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
                    key: ahead_key(&ctx.me.x25519_secret, &id, key, &adopted.version),
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

/// A restarted commissioner asks again: a complete root member repeats its report.
pub(super) fn on_root_query(
    comp: &mut Computation,
    from: NodeId,
    ctx: &mut Ctx,
) -> Result<(), Rejection> {
    if from != comp.request().commissioner_node {
        return Err(Rejection::NotFromCommissioner);
    }
    let root = comp.plan.root();
    let key = my_role_in(comp, root).ok_or(Rejection::NotInGroup)?;
    if comp
        .roles
        .get(&key)
        .is_some_and(|r| r.adopted().is_some_and(|a| a.sum.is_some()))
    {
        send_up(comp, key, ctx);
    }
    Ok(())
}
