//! Collection: a member receives its leaf's shares (or its children's partial sums, sent
//! after agreement or ahead of it), declines, and decides when collection is over.

use super::heal::start_heal;
use super::role::{
    check_position, is_candidate, level_deadline, sum_items, HealState, HeldPartial, Role, Stage,
};
use super::{alone, server_of, slot, version_of, Computation, Ctx, Event, Pending, Rejection};
use crate::field::{FieldVec, Fp};
use crate::ids::{ComputationId, GroupId, Micros, NodeId, Position, Version};
use crate::limits::{MAX_CONTRIBUTORS_PER_LEAF, MAX_VERSIONS_PER_CHILD};
use crate::message::{
    Body, DeclineMsg, Item, Manifest, PartialConfirmMsg, PartialMsg, ShareMsg, SharePayload,
    ShareQueryMsg, Slot,
};
use crate::record::Record;
use crate::seal;
use crate::sharing::CompressedShare;

pub(super) fn on_decline(
    comp: &mut Computation,
    from: NodeId,
    m: DeclineMsg,
) -> Result<(), Rejection> {
    if !comp.is_candidate_set_member(&from) {
        return Err(Rejection::NotACandidate);
    }
    if m.group.level != 0 || !comp.plan.contains(m.group) || comp.plan.leaf_of(&from) != m.group {
        return Err(Rejection::DeclineForOtherLeaf);
    }
    let keys: Vec<Slot> = comp
        .roles
        .keys()
        .filter(|s| s.group == m.group)
        .copied()
        .collect();
    if keys.is_empty() {
        return Err(Rejection::NotInGroup);
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

/// The checks every message a contributor seals for a leaf position passes (its share and its
/// validity share): a position of the plan, sent by the contributor itself, a member of the
/// request's candidate set, for the contributor's own leaf. Returns the position's slot.
pub(super) fn check_contributor_share(
    comp: &Computation,
    from: NodeId,
    m: &ShareMsg,
) -> Result<Slot, Rejection> {
    check_position(comp, m.position)?;
    if from != m.contributor {
        return Err(Rejection::ShareNotFromContributor);
    }
    if !comp.is_candidate_set_member(&from) {
        return Err(Rejection::NotACandidate);
    }
    if !comp.plan.contains(m.group) || comp.plan.leaf_of(&m.contributor) != m.group {
        return Err(Rejection::ShareForOtherLeaf);
    }
    Ok(slot(m.group, m.position))
}

/// Opens `m`'s envelope and decodes its payload, which must name the computation, group,
/// position and contributor the message is for (`header` reads them from the payload).
pub(super) fn open_payload<P: serde::de::DeserializeOwned>(
    ctx: &Ctx,
    id: ComputationId,
    m: &ShareMsg,
    header: impl Fn(&P) -> (ComputationId, GroupId, Position, NodeId),
) -> Result<P, Rejection> {
    let bytes = ctx
        .envelope
        .open(&ctx.me.x25519_secret, &m.sealed)
        .map_err(|_| Rejection::ShareDoesNotOpen)?;
    let payload: P = postcard::from_bytes(&bytes).map_err(|_| Rejection::ShareDoesNotDecode)?;
    if header(&payload) != (id, m.group, m.position, m.contributor) {
        return Err(Rejection::ShareMismatch);
    }
    Ok(payload)
}

pub(super) fn on_share(
    comp: &mut Computation,
    from: NodeId,
    m: ShareMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), Rejection> {
    let key = check_contributor_share(comp, from, &m)?;
    let len = comp.len();
    let id = comp.id();
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
    if role.shares.contains_key(&m.contributor) {
        return Ok(()); // a re-sent share
    }
    let wanted = role.adopted().is_some_and(|a| {
        a.sum.is_none() && a.manifest.items.contains(&Item::Contributor(m.contributor))
    });
    if !matches!(role.stage, Stage::Collecting) && !wanted {
        return Err(Rejection::ShareAfterCollection);
    }
    if role.shares.len() >= MAX_CONTRIBUTORS_PER_LEAF {
        return Err(Rejection::LeafFull);
    }
    let payload: SharePayload = open_payload(ctx, id, &m, |p: &SharePayload| {
        (p.computation, p.group, p.position, p.contributor)
    })?;
    if let CompressedShare::Full(v) = &payload.share {
        if v.0.len() != len {
            return Err(Rejection::WrongLength);
        }
    }
    // Held now, or once the leaf decides its contributor's validity proof (`validity.rs`).
    super::validity::hold_share(comp, key, m.contributor, payload.share, ctx, records)
}

pub(super) fn on_partial(
    comp: &mut Computation,
    from: NodeId,
    m: PartialMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), Rejection> {
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
) -> Result<(), Rejection> {
    let key = check_partial(comp, from, &m)?;
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
    // Only its own sender's confirm opens a partial: each server of the child position seals
    // under its own key (a member and its backup that took over both send).
    let sender = (m.child, from);
    if let Some((_, opener)) = role.confirmed.get(&sender).filter(|c| c.0 == m.version) {
        let opener = *opener;
        role.confirmed.remove(&sender);
        let mut m = m;
        seal::open_ahead(&opener, &mut m.sum.0);
        return hold_partial(comp, key, m, ctx, records);
    }
    role.ahead.insert(
        sender,
        HeldPartial {
            version: m.version,
            sum: m.sum.0,
        },
    );
    Ok(())
}

/// The child adopted the version its member sent ahead: open that partial with the key the
/// confirm reveals and hold it now.
pub(super) fn on_partial_confirm(
    comp: &mut Computation,
    from: NodeId,
    m: PartialConfirmMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), Rejection> {
    let key = check_child_sender(comp, from, m.child, m.position, m.version)?;
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
    let sender = (m.child, from);
    match role.ahead.remove(&sender) {
        Some(held) if held.version == m.version => {
            let mut sum = held.sum;
            seal::open_ahead(&m.key, &mut sum);
            hold_partial(
                comp,
                key,
                PartialMsg {
                    child: m.child,
                    position: m.position,
                    version: m.version,
                    sum: FieldVec(sum),
                },
                ctx,
                records,
            )
        }
        other => {
            // Another version's partial stays sealed: its key never comes.
            if let Some(held) = other {
                role.ahead.insert(sender, held);
            }
            role.confirmed.insert(sender, (m.version, m.key));
            Ok(())
        }
    }
}

/// Checks a partial's sender, length and count; returns the role it is for.
fn check_partial(comp: &Computation, from: NodeId, m: &PartialMsg) -> Result<Slot, Rejection> {
    let key = check_child_sender(comp, from, m.child, m.position, m.version)?;
    let len = comp.len();
    if m.sum.0.len() != len {
        return Err(Rejection::WrongLength);
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
) -> Result<Slot, Rejection> {
    check_position(comp, position)?;
    let parent = comp.plan.parent(child).ok_or(Rejection::NoParent)?;
    if !is_candidate(comp, child, position, &from) {
        return Err(Rejection::NotFromPosition);
    }
    if version.count > comp.request().max_contributors {
        return Err(Rejection::CountOverRequest);
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
) -> Result<(), Rejection> {
    let id = comp.id();
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
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
        return Err(Rejection::TooManyVersions);
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

/// Grove's send-ahead: a member that holds every item its group can expect (a leaf member every
/// share or decline of its leaf, an inner member one version of every child) sends the sum of
/// them to its parent position as it reports, before agreement. Without failures every member
/// holds the same items, so the leader's manifest is exactly this set and, once the group adopts
/// it, a small confirm replaces the partial: the transfer and the parent's opening of it overlap
/// agreement instead of following it. The parent counts the partial only once confirmed; if the
/// group adopts another version the member sends that partial as usual. The parent position
/// learns at most one extra value, its own point of a subtree's sum, as it would from a heal.
pub(super) fn send_ahead(comp: &mut Computation, key: Slot, ctx: &mut Ctx) {
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
    let mut manifest = Manifest { items };
    // As the leader would choose (`manifest::alone`): a contributor alone is left out.
    if alone(&manifest) {
        manifest.items.clear();
    }
    let Some(mut sum) = sum_items(role, &manifest, len) else {
        return;
    };
    let version = version_of(&id, key.group, &manifest);
    // Sealed: the parent opens it only with the key a confirm of this version reveals, so a
    // parent position never holds two versions' sums of one child (their difference would be
    // its point of the contributors one version left out).
    let sealing = ahead_key(&ctx.me.x25519_secret, &id, key, &version);
    seal::seal_ahead(&sealing, &mut sum);
    role.ahead_sent = Some((version, server));
    ctx.event(Event::SentAhead {
        computation: id,
        group: key.group,
        position: key.position,
        version,
        manifest,
    });
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

/// The key of the partial this member (at `key`) sends ahead of `version` ([`seal::ahead_key`]).
pub(super) fn ahead_key(
    secret: &[u8; 32],
    id: &crate::ids::ComputationId,
    key: Slot,
    version: &Version,
) -> [u8; 32] {
    seal::ahead_key(
        secret,
        &id.0,
        (key.group.level, key.group.index),
        key.position,
        &version.digest.0,
    )
}

/// A leaf member that adopted a manifest naming contributors whose shares it lacks (a backup
/// that took the position over after its member died holding them) asks those contributors
/// once to send their share for this position again. Contributors that went offline do not
/// answer; the position then stays silent and the parent heals it if it can.
pub(super) fn ask_contributors(comp: &mut Computation, key: Slot, ctx: &mut Ctx) {
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

/// Whether a collecting member has what it waits for, or waited long enough: a leaf every
/// share (or its window passed), an inner member every child (or its level's deadline, or its
/// collection window since the first item).
pub(super) fn collection_over(comp: &Computation, key: Slot, role: &Role, now: Micros) -> bool {
    let to = comp.request().tree.timeouts;
    let strategy = &comp.strategy;
    if key.group.level == 0 {
        now >= comp.request().created_at.plus(to.share_window)
            || strategy.leaf_complete(key.group, role.shares.len())
            || role.leaf_accounted(comp.plan.leaf_size(key.group))
    } else {
        let all = comp
            .plan
            .children(key.group)
            .iter()
            .all(|c| role.children.contains_key(c) || role.dropped.contains(c));
        all || now >= level_deadline(comp.request(), key.group.level)
            || (strategy.uses_collect_window()
                && role
                    .first_item_at
                    .is_some_and(|f| now >= f.plus(to.collect_window)))
    }
}

/// Collecting: once collection is over, heal every missing child (without heal, S&P, a
/// missing child is cut: it stays out of the manifest).
pub(super) fn end_collection(comp: &mut Computation, key: Slot, ctx: &mut Ctx) {
    let Some(role) = comp.roles.get(&key) else {
        return;
    };
    if !matches!(role.stage, Stage::Collecting) || !collection_over(comp, key, role, ctx.now) {
        return;
    }
    let missing: Vec<GroupId> = comp
        .plan
        .children(key.group)
        .into_iter()
        .filter(|c| comp.strategy.heals() && !role.children.contains_key(c))
        .collect();
    if let Some(role) = comp.roles.get_mut(&key) {
        role.stage = Stage::Healing;
    }
    for child in missing {
        start_heal(comp, key, child, None, 0, ctx);
    }
}

/// Applies `Record::ShareHeld`: the member at `key` holds `contributor`'s share.
pub(super) fn apply_share_held(
    comp: &mut Computation,
    key: Slot,
    contributor: NodeId,
    share: &CompressedShare,
) -> Result<(), Rejection> {
    let len = comp.len();
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
    role.shares.insert(contributor, share.clone());
    role.complete_if_possible(len);
    Ok(())
}

/// Applies `Record::ChildHeld`: the member at `key` holds `child`'s partial of `version`
/// (sent, or healed: a heal of that version is then done).
pub(super) fn apply_child_held(
    comp: &mut Computation,
    key: Slot,
    child: GroupId,
    version: Version,
    sum: &[Fp],
) -> Result<(), Rejection> {
    let len = comp.len();
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
    role.children.entry(child).or_default().insert(
        version.digest,
        HeldPartial {
            version,
            sum: sum.to_vec(),
        },
    );
    if let Some(heal) = role.heals.get_mut(&child) {
        if heal.want.is_none_or(|w| w == version.digest) {
            heal.state = HealState::Done;
        }
    }
    role.complete_if_possible(len);
    Ok(())
}
