//! Healing: rebuilding a parent position's missing value from `t` masked Lagrange terms of
//! the child's members.

use super::agreement::{acceptor_state, check_manifest};
use super::certificate;
use super::role::{
    check_parent_sender, check_position, check_sender, group_member_position, is_candidate,
    my_role_in, Adopted, Heal, HealAttempt, HealState,
};
use super::{
    persist, server_of, slot, version_of, Computation, Ctx, Event, Identity, Pending, Rejection,
};
use crate::field::{add_assign_vec, mul_add_assign_vec, random_vec, sub_assign_vec, FieldVec, Fp};
use crate::ids::{hash_parts, ComputationId, Digest, GroupId, Micros, NodeId, Position, Version};
use crate::limits::{MAX_HEAL_ATTEMPTS, MAX_HEAL_GO_ANSWERS, MAX_PENDING_HEAL_QUERIES};
use crate::message::{
    Body, HealGoMsg, HealOfferMsg, HealPartMsg, HealQueryMsg, Item, ReportMsg, Slot,
};
use crate::plan::Plan;
use crate::record::Record;
use crate::seal;
use crate::sharing::lagrange_coefficients;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::collections::{BTreeMap, BTreeSet};

/// An adopted member that lacks child versions the manifest names heals exactly those
/// versions, then sends up (instead of staying silent and leaving the heal to the parent).
pub(super) fn heal_missing_items(comp: &mut Computation, key: Slot, ctx: &mut Ctx) {
    let Some(role) = comp.roles.get(&key) else {
        return;
    };
    let Some(adopted) = role.adopted().filter(|a| a.sum.is_none()) else {
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
        let attempt = comp
            .roles
            .get(&key)
            .and_then(|r| r.heals.get(&child))
            .map_or(0, |h| h.attempt + 1);
        start_heal(comp, key, child, Some(version), attempt, ctx);
    }
}

/// Starts healing `child` for the member at `key` (`want`: the version a manifest names, if
/// any; `attempt`: where its attempt numbers go on) and asks every position of the child.
pub(super) fn start_heal(
    comp: &mut Computation,
    key: Slot,
    child: GroupId,
    want: Option<Digest>,
    attempt: u32,
    ctx: &mut Ctx,
) {
    let id = comp.id();
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    role.heals.insert(
        child,
        Heal {
            want,
            attempt,
            since: ctx.now,
            offers: BTreeMap::new(),
            go: None,
            excluded: BTreeSet::new(),
            state: HealState::Running,
        },
    );
    for p in 1..=comp.plan.g {
        let body = Body::HealQuery(HealQueryMsg {
            child,
            target: key.position,
        });
        ctx.send_slot(&comp.plan, &comp.servers, id, slot(child, p), 0, body);
    }
}

pub(super) fn on_heal_query(
    comp: &mut Computation,
    from: NodeId,
    m: HealQueryMsg,
    ctx: &mut Ctx,
) -> Result<(), Rejection> {
    let id = comp.id();
    let parent = check_parent_sender(comp, m.child, m.target, &from)?;
    let Some(key) = my_role_in(comp, m.child) else {
        let mine =
            group_member_position(comp, m.child, ctx.me.node).ok_or(Rejection::NotInGroup)?;
        ask_for_adoption(comp, slot(m.child, mine), ctx);
        return Ok(());
    };
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
    match role.adopted() {
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
                helper: key.position,
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

/// A heal query reached this backup for a position of `to.group` it does not serve: the parent
/// found the member unreachable. A child that adopted and then lost members this way never
/// re-sends anything to their backups, so without them fewer than `t` positions can offer and
/// every heal of the child fails (`MAX_HEAL_ATTEMPTS` later the parent gives up, and a parent
/// that lost it refuses manifests that leave it out). The backup does not take the position
/// over on the query itself (an empty server's report, if the group is still agreeing, could
/// reach the leader before the holder's and cut the group); it asks the group's other
/// positions' servers for the manifest they adopted (a report naming no items and no new
/// promise: its acceptor state as it is), at most once per `heal_attempt`, and takes the
/// position over only on a certified adoption (`take_over_adopted`).
pub(super) fn ask_for_adoption(comp: &mut Computation, to: Slot, ctx: &mut Ctx) {
    let id = comp.id();
    let attempt = comp.request().tree.timeouts.heal_attempt;
    if comp.roles.keys().any(|s| s.group == to.group) {
        return;
    }
    if comp
        .adoption_asked
        .get(&to.group)
        .is_some_and(|at| ctx.now < at.plus(attempt))
    {
        return;
    }
    comp.adoption_asked.insert(to.group, ctx.now);
    let (promised, accepted) = acceptor_state(comp, to.group);
    for p in (1..=comp.plan.g).filter(|p| *p != to.position) {
        let body = Body::Report(ReportMsg {
            group: to.group,
            position: to.position,
            serving: false,
            items: Vec::new(),
            accepted: accepted.clone(),
            adopted: None,
            certificate: None,
        });
        // Without a slot: a dead server's backup must not take its position over on this ask
        // (the takeover rule of `Engine::dispatch`), which would make another empty server.
        let server = server_of(&comp.plan, &comp.servers, slot(to.group, p));
        ctx.send_to(server, id, promised, body, None);
    }
}

/// The answer to `ask_for_adoption`: another position's report of the manifest the group
/// adopted, with its certificate (the signed accepts of a quorum, `certificate.rs`). This
/// backup takes its position of the group over (`Takeover`, persisted first) and adopts the
/// manifest at once, then heals exactly the child versions it names (`heal_missing_items`)
/// or, in a leaf, asks the manifest's contributors (`ShareQuery`, answered only by those whose
/// own failover routes to it), and answers the parent's heal queries once its sum is ready.
/// `Ok(false)`: not such an answer (the report goes the usual way).
pub(super) fn take_over_adopted(
    comp: &mut Computation,
    from: NodeId,
    m: &ReportMsg,
    me: NodeId,
    records: &mut Vec<Pending>,
) -> Result<bool, Rejection> {
    let Some(manifest) = m.adopted.as_ref() else {
        return Ok(false);
    };
    if !comp.adoption_asked.contains_key(&m.group) || my_role_in(comp, m.group).is_some() {
        return Ok(false);
    }
    let Some(position) = group_member_position(comp, m.group, me) else {
        return Ok(false);
    };
    check_sender(comp, m.group, m.position, from)?;
    check_manifest(comp, m.group, manifest)?;
    let cert = m.certificate.clone().ok_or(Rejection::AdoptionUnproven)?;
    let id = comp.id();
    let digest = version_of(&id, m.group, manifest).digest;
    certificate::check(&comp.plan, &id, m.group, &digest, &cert)?;
    comp.adoption_asked.remove(&m.group);
    records.push(Pending::Record(Record::Takeover {
        computation: id,
        group: m.group,
        position,
    }));
    records.push(Pending::Adopt {
        id,
        key: slot(m.group, position),
        manifest: manifest.clone(),
        announce: false,
        certificate: Some(cert),
    });
    Ok(true)
}

pub(super) fn my_role_as_parent_of(
    comp: &Computation,
    child: GroupId,
    target: Position,
) -> Option<Slot> {
    let parent = comp.plan.parent(child)?;
    let key = slot(parent, target);
    comp.roles.contains_key(&key).then_some(key)
}

pub(super) fn on_heal_offer(
    comp: &mut Computation,
    from: NodeId,
    m: HealOfferMsg,
    ctx: &mut Ctx,
) -> Result<(), Rejection> {
    check_position(comp, m.helper)?;
    check_position(comp, m.target)?;
    check_sender(comp, m.child, m.helper, from)?;
    let key = my_role_as_parent_of(comp, m.child, m.target).ok_or(Rejection::NoRole)?;
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
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
pub(super) fn try_heal_go(comp: &mut Computation, key: Slot, child: GroupId, ctx: &mut Ctx) {
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
    let go_id = heal_go_id(ctx.me.node, &id, child, key.position, heal.attempt, ctx.now);
    for (p, node) in helpers.iter().zip(&helper_nodes) {
        ctx.send_to(
            *node,
            id,
            go_id,
            Body::HealGo(HealGoMsg {
                child,
                target: key.position,
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
pub(super) fn drive_heal_timeouts(comp: &mut Computation, key: Slot, ctx: &mut Ctx) {
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
                target: key.position,
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
                        target: key.position,
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

pub(super) fn heal_go_id(
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

pub(super) fn heal_mask_seed(
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

pub(super) fn on_heal_go(
    comp: &mut Computation,
    from: NodeId,
    attempt: u32,
    m: HealGoMsg,
    ctx: &mut Ctx,
) -> Result<(), Rejection> {
    let id = comp.id();
    let (parent, key, index) = check_heal_go(comp, from, &m, ctx.me.node)?;
    let plan = comp.plan.clone();
    let role = comp.roles.get(&key).ok_or(Rejection::NoRole)?;
    let Some(Adopted {
        version,
        sum: Some(sum),
        ..
    }) = role.adopted()
    else {
        return Ok(()); // nothing to heal from (yet)
    };
    if version.digest != m.version {
        return Ok(()); // another version: cannot help this attempt
    }
    // Each answer gives the requester one masked term: a bound per target keeps a parent
    // member from asking again and again with other helper sets.
    let answered = role.heal_go_answers.get(&m.target).copied().unwrap_or(0);
    if answered >= MAX_HEAL_GO_ANSWERS {
        return Err(Rejection::HealGoOverBound);
    }
    let sum = sum.clone();
    // Persisted before the answer goes out (drain rule): a restart keeps the count.
    persist(
        comp,
        ctx,
        Record::HealGoAnswered {
            computation: id,
            group: key.group,
            position: key.position,
            target: m.target,
            answered: answered + 1,
        },
    );
    let go = HealGo {
        id,
        attempt,
        m: &m,
        index,
        position: key.position,
    };
    let value = masked_part(&mut comp.dh, &plan, ctx.me, &go, &sum)?;
    ctx.send_to(
        from,
        id,
        attempt,
        Body::HealPart(HealPartMsg {
            child: m.child,
            target: m.target,
            helper: key.position,
            version: m.version,
            value: FieldVec(value),
        }),
        Some(slot(parent, m.target)),
    );
    Ok(())
}

/// Checks a heal go: sent by the parent member at its target, naming exactly `t` distinct
/// sorted helpers that can serve their positions, this node among them. Returns the parent,
/// this node's role in the child and its index among the helpers.
fn check_heal_go(
    comp: &Computation,
    from: NodeId,
    m: &HealGoMsg,
    me: NodeId,
) -> Result<(GroupId, Slot, usize), Rejection> {
    let t = comp.plan.t as usize;
    let parent = check_parent_sender(comp, m.child, m.target, &from)?;
    if m.helpers.len() != t
        || m.helper_nodes.len() != t
        || !m.helpers.windows(2).all(|w| w[0] < w[1])
    {
        return Err(Rejection::HealGoHelpers);
    }
    for (p, node) in m.helpers.iter().zip(&m.helper_nodes) {
        if !is_candidate(comp, m.child, *p, node) {
            return Err(Rejection::HealGoBadHelper);
        }
    }
    // The other helpers must be the positions' plan members or the nodes this member sees
    // serving them, not whoever the requester names: a parent member naming backups that
    // collude with it would learn their pairwise masks and unmask this member's term, one
    // honest helper at a time. The plan member is always allowed: it is the helper a run
    // without failures has anyway, and this node's own failover may be spurious (a slow member
    // timed out while alive still serves, offers, and is the one the parent names; refusing it
    // left every attempt without helpers and the child unhealed).
    for (p, node) in m.helpers.iter().zip(&m.helper_nodes) {
        if *node != me
            && *node != comp.plan.member(m.child, *p)
            && server_of(&comp.plan, &comp.servers, slot(m.child, *p)) != *node
        {
            return Err(Rejection::HealGoNotServing);
        }
    }
    for p in &m.helpers {
        check_position(comp, *p)?;
    }
    let key = my_role_in(comp, m.child).ok_or(Rejection::NotInGroup)?;
    let Some(index) = m.helpers.iter().position(|p| *p == key.position) else {
        return Err(Rejection::HealGoWithoutMe);
    };
    if m.helper_nodes[index] != me {
        return Err(Rejection::HealGoOtherNode);
    }
    Ok((parent, key, index))
}

/// One heal attempt as a helper sees it.
struct HealGo<'a> {
    id: ComputationId,
    attempt: u32,
    m: &'a HealGoMsg,
    /// This helper's index among `m.helpers`.
    index: usize,
    position: Position,
}

/// This helper's Lagrange term of the target's value, masked pairwise with every other helper
/// (the masks cancel in the sum of the `t` parts, so the parent learns only that sum).
fn masked_part(
    dh: &mut BTreeMap<NodeId, [u8; 32]>,
    plan: &Plan,
    me: &Identity,
    go: &HealGo,
    sum: &[Fp],
) -> Result<Vec<Fp>, Rejection> {
    let m = go.m;
    let len = sum.len();
    let lambdas =
        lagrange_coefficients(&m.helpers, m.target).map_err(|_| Rejection::HealGoHelpers)?;
    let mut value = vec![Fp::ZERO; len];
    mul_add_assign_vec(&mut value, lambdas[go.index], sum);
    for (other, peer) in m.helpers.iter().zip(&m.helper_nodes) {
        if *other == go.position {
            continue;
        }
        let peer = *peer;
        let shared = match dh.get(&peer) {
            Some(s) => *s,
            None => {
                let Some(public) = plan.x25519_key(&peer) else {
                    return Err(Rejection::NoHelperKey);
                };
                let s = seal::x25519_shared(&me.x25519_secret, &public);
                dh.insert(peer, s);
                s
            }
        };
        let seed = heal_mask_seed(
            &shared, &go.id, m.child, m.target, &m.version, go.attempt, &m.helpers,
        );
        let mask = random_vec(&mut ChaCha20Rng::from_seed(seed), len);
        if go.position < *other {
            add_assign_vec(&mut value, &mask);
        } else {
            sub_assign_vec(&mut value, &mask);
        }
    }
    Ok(value)
}

pub(super) fn on_heal_part(
    comp: &mut Computation,
    from: NodeId,
    attempt: u32,
    m: HealPartMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), Rejection> {
    check_position(comp, m.helper)?;
    check_position(comp, m.target)?;
    let id = comp.id();
    let len = comp.len();
    check_sender(comp, m.child, m.helper, from)?;
    if m.value.0.len() != len {
        return Err(Rejection::WrongLength);
    }
    let key = my_role_as_parent_of(comp, m.child, m.target).ok_or(Rejection::NoRole)?;
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
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
        group: key.group,
        position: key.position,
        child: m.child,
        version,
        sum: FieldVec(sum),
    }));
    Ok(())
}

/// Applies `Record::HealGoAnswered`: the member at `key` answered `answered` heal gos for
/// `target` (a count only grows).
pub(super) fn apply_heal_go_answered(
    comp: &mut Computation,
    key: Slot,
    target: Position,
    answered: u32,
) -> Result<(), Rejection> {
    if target == 0 || target > comp.plan.g {
        return Err(Rejection::OutsidePlan);
    }
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
    let count = role.heal_go_answers.entry(target).or_insert(0);
    *count = (*count).max(answered);
    Ok(())
}
