//! Failover on a failure notice (the simulator's failure oracle, DISSEC's model): a sender
//! re-sends what a dead node held to the position's next candidate, and a waiter stops waiting
//! for what the dead node would have sent (see `Engine::handle_failure_notice`).

use super::aggregator::send_up;
use super::role::Stage;
use super::{server_of, slot, Computation, Ctx, Engine};
use crate::ids::{ComputationId, NodeId};
use crate::limits::MAX_CONTRIBUTORS_PER_LEAF;
use crate::message::Slot;

impl Engine {
    /// One computation's reaction to the notice that `dead` failed.
    pub(super) fn on_failure_notice(&mut self, id: ComputationId, dead: NodeId) {
        let me = self.identity.node;
        let Some(comp) = self.computations.get_mut(&id) else {
            return;
        };
        let drops = !comp.strategy.heals();
        let (resend_shares, resend_up) = if drops {
            (Vec::new(), Vec::new())
        } else {
            served_by(comp, me, dead)
        };
        if drops {
            redirect(comp, me, dead);
        }
        let moved: Vec<Slot> = resend_shares
            .into_iter()
            .filter(|s| fail_over(comp, *s, dead))
            .collect();
        for s in moved {
            self.send_shares_to(id, Some(s.position));
        }
        let Some(comp) = self.computations.get_mut(&id) else {
            return;
        };
        if !resend_up.is_empty() {
            let mut ctx = ctx!(self);
            for (key, s) in resend_up {
                if fail_over(comp, s, dead) {
                    send_up(comp, key, &mut ctx);
                }
            }
        }
        let Some(comp) = self.computations.get_mut(&id) else {
            return;
        };
        stop_waiting_for(comp, dead, drops);
        self.advance(id);
    }
}

/// The slots this node sent to that `dead` serves as far as it knows: its leaf's positions
/// (if it contributed), and the parent positions its complete roles sent their partials to
/// (with the role that sent).
fn served_by(comp: &Computation, me: NodeId, dead: NodeId) -> (Vec<Slot>, Vec<(Slot, Slot)>) {
    let plan = &comp.plan;
    let mut shares = Vec::new();
    if comp.contribution.is_some() {
        let leaf = plan.leaf_of(&me);
        for p in 1..=plan.g {
            if server_of(plan, &comp.servers, slot(leaf, p)) == dead {
                shares.push(slot(leaf, p));
            }
        }
    }
    let mut up = Vec::new();
    for (key, role) in &comp.roles {
        let sends_up = role.adopted().is_some_and(|a| a.sum.is_some());
        if let (true, Some(parent)) = (sends_up, plan.parent(key.group)) {
            if server_of(plan, &comp.servers, slot(parent, key.position)) == dead {
                up.push((*key, slot(parent, key.position)));
            }
        }
    }
    (shares, up)
}

/// S&P (DISSEC's drop): the dead member is replaced, so this node's later sends to its
/// position go to the next candidate; nothing already sent is sent again, so a child whose
/// data it held is cut, as DISSEC cuts it.
fn redirect(comp: &mut Computation, me: NodeId, dead: NodeId) {
    let plan = comp.plan.clone();
    let mut slots = Vec::new();
    if comp.contribution.is_some() {
        let leaf = plan.leaf_of(&me);
        slots.extend((1..=plan.g).map(|p| slot(leaf, p)));
    }
    for key in comp.roles.keys() {
        if let Some(parent) = plan.parent(key.group) {
            slots.push(slot(parent, key.position));
        }
    }
    for s in slots {
        if server_of(&plan, &comp.servers, s) == dead {
            fail_over(comp, s, dead);
        }
    }
}

/// Moves `s` past `dead` to its next candidate; `false` if `dead` is no candidate of it or
/// none is left.
fn fail_over(comp: &mut Computation, s: Slot, dead: NodeId) -> bool {
    let plan = &comp.plan;
    let Some(rank) = plan.candidate_rank(s.group, s.position, &dead) else {
        return false;
    };
    let next = comp.servers.get(&s).copied().unwrap_or(0).max(rank + 1);
    if plan.candidates(s.group, s.position).nth(next).is_none() {
        return false;
    }
    comp.servers.insert(s, next);
    true
}

/// A dead node of a leaf this node serves will send no share: count it as declined, so the
/// leaf stops waiting for it (DISSEC's leaf aggregators drop a dead contributor). With S&P
/// (`drops`), a collecting parent also stops waiting for a child one of whose positions the
/// dead node served.
fn stop_waiting_for(comp: &mut Computation, dead: NodeId, drops: bool) {
    let plan = comp.plan.clone();
    let dead_leaf = plan.leaf_of(&dead);
    for (key, role) in comp.roles.iter_mut() {
        if key.group == dead_leaf
            && matches!(role.stage, Stage::Collecting)
            && !role.shares.contains_key(&dead)
            && role.declined.len() < MAX_CONTRIBUTORS_PER_LEAF
        {
            role.declined.insert(dead);
        }
    }
    if !drops {
        return;
    }
    for (key, role) in comp.roles.iter_mut() {
        if key.group.level == 0 || !matches!(role.stage, Stage::Collecting) {
            continue;
        }
        for child in plan.children(key.group) {
            let lost =
                (1..=plan.g).any(|p| server_of(&plan, &comp.servers, slot(child, p)) == dead);
            if lost && !role.children.contains_key(&child) {
                role.dropped.insert(child);
            }
        }
    }
}
