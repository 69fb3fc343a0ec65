//! The state of one position this node serves: its stage (the adopted manifest lives in
//! `Stage::Adopted` and nowhere else), what it holds, its heals and its leadership of agreement
//! rounds; and the checks of who may speak for a position. Every topic file reads this one; it
//! reads none of them.

use super::{version_of, Computation, Event, Rejection};
use crate::field::{add_assign_vec, Fp};
use crate::ids::{ComputationId, Digest, GroupId, Micros, NodeId, Position, Version};
use crate::message::{Item, Manifest, Slot};
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
    /// Votes heard, per round: the round leader's proposal once known, and each voter's vote
    /// (only votes for that proposal count).
    pub(super) votes: BTreeMap<u32, super::agreement::Tally>,
    /// The certificate of the manifest this position adopted (`engine/certificate.rs`): the
    /// signed accepts it counted as the round's leader, or those it adopted on. Its adopted
    /// reports carry it. Never persisted: a restarted adopter's reports carry none, and the
    /// positions it tells adopt on the leader's word or a later round's instead.
    pub(super) certificate: Option<crate::message::AdoptionCertificate>,
    /// Heal gos this member answered, per target position of the parent (at most
    /// `MAX_HEAL_GO_ANSWERS` each; persisted as `HealGoAnswered` before each answer).
    pub(super) heal_go_answers: BTreeMap<Position, u32>,
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
    /// Partials children sent ahead of their agreement, one per child and sender, not yet confirmed, still
    /// sealed (`seal::seal_ahead`: unreadable until the confirm reveals the key)
    /// (never persisted: lost on a restart, the child is then healed like a silent one).
    /// Keyed by the child and the node that sent it: a member and a backup that took its
    /// position over (a spurious timeout is enough) both send theirs, each sealed under its
    /// own key, and a confirm opens only its own sender's partial.
    pub(super) ahead: BTreeMap<(GroupId, NodeId), HeldPartial>,
    /// Confirms that arrived before the partial they confirm, with the key that opens it.
    pub(super) confirmed: BTreeMap<(GroupId, NodeId), (Version, [u8; 32])>,
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
    /// Leaf members: validity proofs of this leaf's contributors (`engine/validity.rs`).
    pub(super) validity: super::validity::LeafValidity,
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
            certificate: None,
            heal_go_answers: BTreeMap::new(),
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
            validity: Default::default(),
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

pub(super) fn level_deadline(req: &Request, level: u8) -> Micros {
    let to = req.tree.timeouts;
    req.created_at
        .plus(to.share_window)
        .plus(to.level_span.saturating_mul(level as u64))
}

pub(super) fn check_position(comp: &Computation, p: Position) -> Result<(), Rejection> {
    if p == 0 || p > comp.plan.g {
        Err(Rejection::PositionOutOfRange)
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
) -> Result<(), Rejection> {
    check_position(comp, position)?;
    if group_member_position(comp, group, from) == Some(position) {
        Ok(())
    } else {
        Err(Rejection::NotFromPosition)
    }
}

/// The parent of `child`, after checking that `from` serves position `target` of it.
pub(super) fn check_parent_sender(
    comp: &Computation,
    child: GroupId,
    target: Position,
    from: &NodeId,
) -> Result<GroupId, Rejection> {
    check_position(comp, target)?;
    let parent = comp.plan.parent(child).ok_or(Rejection::NoParent)?;
    if is_candidate(comp, parent, target, from) {
        Ok(parent)
    } else {
        Err(Rejection::NotFromParent)
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
) -> Result<(), Rejection> {
    let id = comp.id();
    let len = comp.len();
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
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
pub(super) fn apply_takeover(comp: &mut Computation, key: Slot) -> Result<(), Rejection> {
    if !comp.plan.contains(key.group) || key.position == 0 || key.position > comp.plan.g {
        return Err(Rejection::OutsidePlan);
    }
    comp.roles
        .entry(key)
        .or_insert_with(|| Role::new(key.group, false));
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HealState {
    Running,
    Done,
    GaveUp,
}

pub(super) struct HealAttempt {
    /// Unique id of this attempt (the round of its messages).
    pub(super) id: u32,
    pub(super) version: Version,
    pub(super) helpers: Vec<Position>,
    pub(super) helper_nodes: Vec<NodeId>,
    pub(super) parts: BTreeMap<Position, Vec<Fp>>,
}

pub(super) struct Heal {
    /// The version to heal, once a manifest names it; before that, any version `t` offer.
    pub(super) want: Option<Digest>,
    pub(super) attempt: u32,
    pub(super) since: Micros,
    /// Offers by helper position: the version and the node serving that position.
    pub(super) offers: BTreeMap<Position, (Version, NodeId)>,
    pub(super) go: Option<HealAttempt>,
    pub(super) excluded: BTreeSet<Position>,
    pub(super) state: HealState,
}

/// A node's acceptor state for one group (Paxos' acceptor): every candidate of the group, its
/// members and their backups, is an acceptor, so that agreement survives members dying.
#[derive(Default)]
pub(super) struct Acceptor {
    /// The highest round promised (persisted as `ManifestPromised`).
    pub(super) promised: u32,
    /// The manifest accepted last and its round (persisted as `ManifestAccepted`).
    pub(super) accepted: Option<(u32, Manifest)>,
    /// When `promised` last rose while this engine ran (never persisted: after a restart, the
    /// earlier of the request's creation and the time the engine first had it, persisted as
    /// `RequestSeen`, stands for it; `agreement::round_in_reach`).
    pub(super) promised_at: Option<Micros>,
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
    pub(super) fn new(round: u32, since: Micros) -> Leadership {
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
