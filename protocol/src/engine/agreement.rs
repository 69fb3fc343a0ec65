//! Agreement: the members of a group agree on one manifest (single-decree Paxos over the
//! group's candidates: reports, promises, proposals, votes), so that every position sums the
//! same items.

use super::certificate;
use super::manifest::settled_manifest;
use super::role::{
    check_position, check_sender, group_member_position, my_role_in, Adopted, Leadership, Role,
    Stage,
};
use super::{
    alone, choose_manifest, persist, slot, version_of, Computation, Ctx, Pending, Rejection,
};
use crate::ids::{Digest, GroupId, Micros, NodeId, Position};
use crate::limits::{MAX_AGREE_ROUNDS, MAX_MANIFEST_ITEMS};
use crate::message::{
    AdoptionCertificate, Body, Item, Manifest, ManifestMsg, ReportMsg, SignedAccept, Slot,
    SolicitMsg, VoteMsg,
};
use crate::plan::Plan;
use crate::record::Record;
use crate::sharing::CompressedShare;
use std::collections::BTreeMap;

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
        certificate: role.certificate.clone(),
    })
}

pub(super) fn acceptor_state(comp: &Computation, group: GroupId) -> (u32, Option<(u32, Manifest)>) {
    comp.acceptors
        .get(&group)
        .map_or((0, None), |a| (a.promised, a.accepted.clone()))
}

/// Persists this node's promise of `round` in `group` (at `position`, the one it is a
/// candidate of) if it promised less so far.
pub(super) fn promise(
    comp: &mut Computation,
    ctx: &mut Ctx,
    group: GroupId,
    position: Position,
    round: u32,
) {
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
        promised_now(comp, group, round, ctx.now);
    }
}

/// Notes when this node's promise in `group` rose to `round` (`round_in_reach`).
fn promised_now(comp: &mut Computation, group: GroupId, round: u32, now: Micros) {
    if let Some(a) = comp.acceptors.get_mut(&group) {
        if a.promised == round {
            a.promised_at = Some(now);
        }
    }
}

/// Whether this acceptor may promise (or accept in) `round` of `group` at another candidate's
/// request (a solicit, a proposal, a member's report that would make it lead): one round past
/// its promise at once, and one more per manifest timeout since that promise (if it promised
/// nothing while running: since the request's creation or since this engine had the request,
/// whichever its clock puts first). An honest round starts on a member's manifest timeout in
/// the round before it (or on its leader's), so a round `k` past the promise comes `k - 1`
/// timeouts after it at the earliest. Without the bound, a lying member asked for promises of
/// the last round it leads (63, for position 4 of 5): the honest acceptors promised it and
/// refused every lower round's leader, and no member's timeout goes past `MAX_AGREE_ROUNDS`, so
/// its group never adopted; so did its proposal in that round, and its reports to each member
/// in that member's last round (`liar_jumping_ahead`, three scenarios in `tests/byzantine.rs`).
///
/// `created_at` is on the commissioner's clock, up to `MAX_CLOCK_SKEW_MICROS` ahead of this
/// node's. Counted from it alone, an acceptor whose clock was behind the members' by more than
/// about a share window and a manifest timeout refused every honest round past 1 for good
/// (the rounds and the bound move on together, one per timeout): a leaf whose first two
/// leaders were silent, with its backups 50 s behind, never adopted (`tests/clock_skew.rs`).
/// No node has a request before it is created, so the time this engine had it is, on its own
/// clock, no earlier than the creation: a liar can make it jump no further than on a clock
/// that agrees with the commissioner's.
fn round_in_reach(comp: &Computation, group: GroupId, round: u32, now: Micros) -> bool {
    let acceptor = comp.acceptors.get(&group);
    let promised = acceptor.map_or(0, |a| a.promised);
    if round <= promised.saturating_add(1) {
        return true;
    }
    let since = acceptor
        .and_then(|a| a.promised_at)
        .unwrap_or(comp.request().created_at.min(comp.seen_at));
    let timeout = comp.request().tree.timeouts.manifest_timeout.max(1);
    let timeouts = now.0.saturating_sub(since.0) / timeout;
    u64::from(round) <= u64::from(promised) + 1 + timeouts
}

pub(super) fn leader_of(round: u32, g: u8) -> Position {
    (round % g as u32) as u8 + 1
}

/// Reporting: a round whose manifest did not come within the manifest timeout gives way to the
/// next round (up to the limit), and the member reports again.
pub(super) fn next_round_on_timeout(comp: &mut Computation, key: Slot, ctx: &mut Ctx) {
    let to = comp.request().tree.timeouts;
    let Some(role) = comp.roles.get_mut(&key) else {
        return;
    };
    if let Stage::Reporting { since } = role.stage {
        if ctx.now >= since.plus(to.manifest_timeout) && role.round + 1 < MAX_AGREE_ROUNDS {
            role.round += 1;
            role.stage = Stage::Reporting { since: ctx.now };
            send_report(comp, key, ctx);
        }
    }
}

/// Leadership: proposes the round's manifest once the reports are in (or the report window
/// passed).
pub(super) fn propose_when_ready(
    comp: &mut Computation,
    key: Slot,
    ctx: &mut Ctx,
    pending: &mut Vec<Pending>,
) {
    let to = comp.request().tree.timeouts;
    let g = comp.plan.g;
    let t = comp.plan.t as usize;
    let (promised, own_accepted) = acceptor_state(comp, key.group);
    let quorum = quorum(&comp.plan, key.group);
    let Some(role) = comp.roles.get(&key) else {
        return;
    };
    if role.adopted().is_some() {
        return;
    }
    let Some(lead) = role.leader.as_ref() else {
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
    let early = key.group.level == 0 && settled(lead, g, t);
    if !all_in && !early && ctx.now < lead.since.plus(to.report_window) {
        return;
    }
    let fits = |m: &Manifest| consistent(comp, Some(key), m);
    let not_in = |r: u32, m: &Manifest| members_not_accepting(&comp.plan, key.group, lead, r, m);
    let passable = g as usize + 1 - positions_needed(g, t as u8);
    let chosen = proposal(lead, own_accepted, quorum, t, fits, not_in, passable);
    let Some(lead) = comp.roles.get_mut(&key).and_then(|r| r.leader.as_mut()) else {
        return;
    };
    let Some(manifest) = chosen else {
        lead.window_over = true;
        return;
    };
    lead.proposed = true;
    propose(comp, key, round, manifest, ctx, pending);
}

/// Whether the leader of round 0 may propose before its report window ends although reports
/// are missing: no missing report could add an item to the manifest it would choose now
/// (`manifest::settled_manifest`, which gives the argument). Waiting longer could then only
/// make the manifest smaller, and the members' wait for adoption (and the level above's for
/// this group) is the report window, seconds at 200 daemons. Only round 0: before it nothing
/// can have been accepted, so the proposal is the fresh manifest (or, after a restart, the one
/// the leader accepted in round 0, proposed again whatever the reports). In a later round the
/// leader needs a quorum of promises and may have to pass over an accepted manifest by counting
/// members' promises (`proposal`), which more replies can change: it keeps the window. Only
/// leaves (the caller): a missing inner member is usually waiting for a child's partial, and
/// adopting without it turns that wait into a heal (the scenario
/// `partials_sent_ahead_count_once_confirmed_in_either_order` saw one, a 250 ms slow partial
/// sent ahead, then healed). Not a
/// new power for a lying leader: members check a proposal against what they hold
/// (`consistent`), never against when it came, and a lying leader could always propose at
/// once. A member still collecting holds nothing to check against, which is why at most
/// `t - 2` reports may be missing (`settled_manifest`).
fn settled(lead: &Leadership, g: u8, t: usize) -> bool {
    if lead.round != 0 {
        return false;
    }
    settled_manifest(&reports_of(lead), g as usize, t).is_some()
}

/// The reports a leader holds, as the manifest rules take them.
fn reports_of(lead: &Leadership) -> Vec<(Position, &[Item])> {
    lead.reports
        .iter()
        .map(|(p, items)| (*p, items.as_slice()))
        .collect()
}

/// What the leader of `lead.round` may propose (Paxos' rule), or `None` while it cannot yet.
///
/// `fits` says whether a manifest is consistent with what the leader holds; `members_not_in`
/// counts the group's members whose promise shows they did not accept a manifest in a round.
/// A manifest accepted earlier that leaves out what the leader holds (a lying leader's
/// manifest of one, accepted by backups that hold nothing to check it against) is passed over
/// when at least `t` members show they did not accept it: adoption needs `g - t + 1`
/// positions' votes, so it cannot have been adopted.
pub(super) fn proposal(
    lead: &Leadership,
    own_accepted: Option<(u32, Manifest)>,
    quorum: usize,
    t: usize,
    fits: impl Fn(&Manifest) -> bool,
    members_not_in: impl Fn(u32, &Manifest) -> usize,
    passable: usize,
) -> Option<Manifest> {
    let round = lead.round;
    // The manifest of the highest round an acceptor of the quorum accepted, if any: it may
    // have been adopted, so it is the only value this round may propose.
    let mut accepted: Vec<&(u32, Manifest)> = lead.promises.values().flatten().collect();
    accepted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.items.cmp(&b.1.items)));
    let prior = accepted
        .into_iter()
        .find(|(r, m)| fits(m) || members_not_in(*r, m) < passable)
        .map(|(_, m)| m.clone());
    match (own_accepted, prior) {
        // Proposed in this round before a restart: the same manifest again.
        (Some((r, m)), _) if r == round => Some(m),
        // Round 0 is the first: nothing can have been accepted before it.
        _ if round > 0 && lead.promises.len() < quorum => None,
        (_, Some(m)) if round > 0 => Some(m),
        _ if lead.reports.len() < t => None,
        _ => choose_manifest(&reports_of(lead), t),
    }
}

/// Positions whose servers must vote for a manifest before it is adopted: `t`, so that
/// `g - t + 1` honest members refusing it leave too few; with `g = t` (the DISSEC baselines,
/// where asking every member would let one dead member stop its group) one.
pub(super) fn positions_needed(g: u8, t: u8) -> usize {
    if g == t {
        1
    } else {
        t as usize
    }
}

/// Whether the position `key` serves may accept or adopt `manifest`: the manifest leaves out
/// at most half of the contributors whose full share the position holds (a contributor sends
/// its `t - 1` seed shares first, so a full share means its shares reached `t` positions), and
/// no child of which it holds a version (a parent position heals a missing child before it
/// reports, so an honest manifest leaves a held child out only when its heal failed). A leader cannot drop most of what
/// the members hold: a manifest of one where a member holds three or more full shares is
/// refused. Not all: an honest leader leaves out an item that fewer than `t` of the reports it
/// filed hold (a member slow to report holds it), and such a member must still adopt. A
/// candidate that serves no position has nothing to check against.
pub(super) fn consistent(comp: &Computation, key: Option<Slot>, manifest: &Manifest) -> bool {
    // A manifest of one contributor alone would hand its shares to the parent group as the
    // group's partial sum (`manifest::alone`): no position sums it, whatever `g` and `t`.
    if alone(manifest) {
        return false;
    }
    // With `g = t` (the simulator's DISSEC baselines, which model crashes only) an item some
    // position lacks is always left out, and the baselines cut subtrees on purpose.
    if comp.plan.g == comp.plan.t {
        return true;
    }
    let Some(role) = key.and_then(|k| comp.roles.get(&k)) else {
        return true;
    };
    let full: Vec<&NodeId> = role
        .shares
        .iter()
        .filter(|(_, share)| matches!(share, CompressedShare::Full(_)))
        .map(|(c, _)| c)
        .collect();
    let full_left_out = full
        .iter()
        .filter(|c| {
            manifest
                .items
                .binary_search(&Item::Contributor(***c))
                .is_err()
        })
        .count();
    let children_left_out = role
        .children
        .iter()
        .filter(|(child, versions)| {
            !versions.is_empty()
                && !manifest
                    .items
                    .iter()
                    .any(|i| matches!(i, Item::Child { group, .. } if group == *child))
        })
        .count();
    // The empty leaf manifest stands for a manifest of one (`choose_manifest` empties it), so
    // it is accepted only where the position holds the shares of at most one contributor, the
    // one such a manifest would have kept. Before, it was accepted where it left out at most
    // one full share besides that one: a lying leader emptied a leaf of two contributors,
    // since most members hold at most one full share each (`g - t + 1` of `g` positions get a
    // contributor's full share) and a seed share of the other. Any share counts here: a seed
    // share means the contributor's shares went out, so an honest leader keeps it unless the
    // reports show fewer than `t` holders (the contributor was cut off mid-send, or reports
    // are missing); the leaf would then sum nothing, and refusing loses nothing it would
    // have summed (the group may not adopt; its parent leaves it out).
    if key.is_some_and(|k| k.group.level == 0) && manifest.items.is_empty() {
        return role.shares.len() <= 1;
    }
    2 * full_left_out <= full.len() && children_left_out == 0
}

/// Members of `group` whose promise to this leader shows they did not accept `manifest` in
/// `round` (their last acceptance is of an earlier round, of another manifest in that round,
/// or none).
fn members_not_accepting(
    plan: &Plan,
    group: GroupId,
    lead: &Leadership,
    round: u32,
    manifest: &Manifest,
) -> usize {
    (1..=plan.g)
        .filter(|p| {
            lead.promises
                .get(&plan.member(group, *p))
                .is_some_and(|a| match a {
                    None => true,
                    Some((r, m)) => *r < round || (*r == round && m != manifest),
                })
        })
        .count()
}

/// The leader of `round` accepts its proposal (persisted first), sends it to every other
/// acceptor and counts its own vote.
pub(super) fn propose(
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
    let accept = certificate::sign_manifest_accept(
        ctx.me,
        &id,
        key.group,
        round,
        &manifest,
        key.position,
        true,
    );
    // Its own proposal cannot conflict: it proposes once per round.
    let _ = count_vote(
        comp,
        key,
        round,
        me,
        manifest,
        VoteKind::Proposal,
        Some(accept),
        pending,
    );
}

/// The votes of one round as a position hears them. Only the round leader's proposal can be
/// adopted: a vote counts only if it names that proposal, so a candidate that votes ahead for
/// rounds it does not lead (vote poisoning) fixes nothing. Votes that arrive before the proposal
/// is known wait as digests, one per voter (bounded by the group's acceptors).
#[derive(Default)]
pub(super) struct Tally {
    /// The round leader's proposal, once known (its own, or its `Manifest` message).
    proposal: Option<(Digest, Manifest)>,
    /// Each voter's vote in this round, by the digest of the manifest it named (its first),
    /// with its signed accept (none for a proposal heard from the leader's `Manifest`, which
    /// carries no signature: the leader counts its own signed accept).
    votes: BTreeMap<NodeId, (Digest, Option<SignedAccept>)>,
}

/// What a vote is: the leader's proposal (its own vote), or another acceptor's vote.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum VoteKind {
    Proposal,
    Vote,
}

/// Files one acceptor's vote of `round` (or the round leader's proposal, which is its vote)
/// with its signed accept (already verified); adopts the round's proposal once the signed
/// accepts for it make a certificate (`certificate::complete`: a quorum of acceptors and the
/// servers of `t` positions). A vote that names another manifest than the proposal, or a
/// second proposal, is refused.
#[allow(clippy::too_many_arguments)]
pub(super) fn count_vote(
    comp: &mut Computation,
    key: Slot,
    round: u32,
    voter: NodeId,
    manifest: Manifest,
    kind: VoteKind,
    accept: Option<SignedAccept>,
    pending: &mut Vec<Pending>,
) -> Result<(), Rejection> {
    let id = comp.id();
    let digest = version_of(&id, key.group, &manifest).digest;
    let plan = comp.plan.clone();
    let Some(role) = comp.roles.get_mut(&key) else {
        return Ok(());
    };
    if role.adopted().is_some() {
        return Ok(());
    }
    let tally = role.votes.entry(round).or_default();
    if kind == VoteKind::Proposal {
        match &tally.proposal {
            Some((d, _)) if *d != digest => return Err(Rejection::ConflictingManifest),
            Some(_) => {}
            None => tally.proposal = Some((digest, manifest)),
        }
    }
    let filed = tally.votes.entry(voter).or_insert((digest, None));
    if filed.0 == digest && filed.1.is_none() {
        filed.1 = accept; // the leader's own signed accept after its proposal was heard
    }
    let Some((proposed, manifest)) = tally.proposal.as_ref() else {
        return Ok(()); // kept until the proposal is known
    };
    let (proposed, manifest) = (*proposed, manifest.clone());
    // Positions whose server voted for it: every position checked the manifest against what
    // it holds, and `t` of them must have accepted it (backups that serve no position hold
    // nothing to check against, so a majority of acceptors alone is not enough).
    let accepts: Vec<SignedAccept> = tally
        .votes
        .values()
        .filter(|(d, _)| *d == proposed)
        .filter_map(|(_, a)| a.clone())
        .collect();
    if certificate::complete(&plan, key.group, &accepts) {
        pending.push(Pending::Adopt {
            id,
            key,
            manifest,
            announce: true,
            certificate: Some(AdoptionCertificate { round, accepts }),
        });
    }
    if digest != proposed {
        return Err(Rejection::VoteNotForProposal);
    }
    Ok(())
}

/// Makes the member at `key` lead `round` (after promising it), keeping what it collected if it
/// already leads that round, and files its own promise. A leader that starts a round above 0
/// (by its own timeout or because a member's report of that round reached it first) asks every
/// acceptor for its promise.
pub(super) fn lead_round(comp: &mut Computation, key: Slot, round: u32, ctx: &mut Ctx) {
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
            certificate: None,
        }),
    );
}

/// Records a position's report for the manifest. Two candidates can serve one position (a
/// member, and a backup a contributor failed over to while the member looked unreachable);
/// the manifest can only count on the one holding more, and a later, smaller report must not
/// replace it: that once cut a whole leaf's contributors down to the backup's one share.
pub(super) fn keep_larger_report(
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

pub(super) fn on_report(
    comp: &mut Computation,
    from: NodeId,
    round: u32,
    m: ReportMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), Rejection> {
    check_sender(comp, m.group, m.position, from)?;
    if m.items.len() > MAX_MANIFEST_ITEMS || (!m.serving && !m.items.is_empty()) {
        return Err(Rejection::ReportTooLong);
    }
    if round >= MAX_AGREE_ROUNDS {
        return Err(Rejection::RoundPastLimit);
    }
    let id = comp.id();
    let g = comp.plan.g;
    let key = my_role_in(comp, m.group).ok_or(Rejection::NotInGroup)?;
    let role = comp.roles.get(&key).ok_or(Rejection::NoRole)?;
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
        // A quorum accepted it in one round: it is the group's only manifest, adopted on its
        // certificate alone, whatever this position holds. The honest servers among the `t`
        // positions that signed accepts checked their own holdings (`consistent`), so fewer
        // than `t` lying positions get no certificate for a manifest of one; and refusing a
        // certified manifest changes nothing the group sends up, it only keeps this position
        // out of it. A position that healed a child after reporting, or a backup that took a
        // dead member's position over and healed a child that adopted after the group did,
        // holds what the manifest leaves out: refusing it left the root without `t` holders
        // (seed 16 at 1 %/s, DISSEC's settings) or short of its `t + 1` release shares (the
        // heavy-tail run of seed 12).
        check_manifest(comp, key.group, &manifest)?;
        return claimed_adoption(comp, key, manifest, m.certificate, records);
    }
    if let Some((accepted_in, manifest)) = &m.accepted {
        check_manifest(comp, key.group, manifest)?;
        if *accepted_in > round {
            return Err(Rejection::AcceptedRoundAhead); // no honest acceptor accepts ahead
        }
    }
    let (promised, _) = acceptor_state(comp, key.group);
    if leader_of(round, g) != key.position || !role.member || round < promised {
        return Ok(()); // for another round's leader, or a round this member promised past
    }
    if role.leader.as_ref().is_some_and(|l| round < l.round) {
        return Ok(()); // stale
    }
    if !round_in_reach(comp, key.group, round, ctx.now) {
        return Err(Rejection::RoundPastLimit);
    }
    let was = role.round;
    lead_round(comp, key, round, ctx);
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
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

/// Another candidate's word that the group adopted `manifest` (consistent with what this
/// position holds): the position adopts it only on a valid certificate, the signed accepts of
/// one round from a quorum of acceptors and the servers of `t` positions (`certificate.rs`).
/// A claim without one is refused (`AdoptionUnproven`): before, a position that could not
/// vouch for a claim adopted on the claims of two positions, and two colluding members split
/// their group (`two_colluding_members_claiming_adoption_do_not_split_a_position_holding_nothing`).
fn claimed_adoption(
    comp: &mut Computation,
    key: Slot,
    manifest: Manifest,
    cert: Option<AdoptionCertificate>,
    records: &mut Vec<Pending>,
) -> Result<(), Rejection> {
    let id = comp.id();
    let cert = cert.ok_or(Rejection::AdoptionUnproven)?;
    let digest = version_of(&id, key.group, &manifest).digest;
    certificate::check(&comp.plan, &id, key.group, &digest, &cert)?;
    records.push(Pending::Adopt {
        id,
        key,
        manifest,
        announce: false,
        certificate: Some(cert),
    });
    Ok(())
}

/// A solicit or a manifest must come from the member at the position that leads `round` of
/// its group, and the round must be within the limit.
fn check_from_leader(
    comp: &Computation,
    from: NodeId,
    round: u32,
    group: GroupId,
    leader: Position,
) -> Result<(), Rejection> {
    check_position(comp, leader)?;
    if !comp.plan.contains(group)
        || comp.plan.member(group, leader) != from
        || leader_of(round, comp.plan.g) != leader
    {
        return Err(Rejection::NotFromLeader);
    }
    if round >= MAX_AGREE_ROUNDS {
        return Err(Rejection::RoundPastLimit);
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
) -> Result<(), Rejection> {
    check_from_leader(comp, from, round, m.group, m.leader)?;
    let id = comp.id();
    let mine = group_member_position(comp, m.group, ctx.me.node).ok_or(Rejection::NotCandidate)?;
    let key = my_role_in(comp, m.group);
    let role = key.and_then(|k| comp.roles.get(&k));
    let (promised, _) = acceptor_state(comp, m.group);
    let report = |items: Vec<Item>, serving: bool, accepted, adopted| {
        Body::Report(ReportMsg {
            group: m.group,
            position: mine,
            serving,
            items,
            accepted,
            adopted,
            certificate: None,
        })
    };
    if let (Some(key), Some(role)) = (key, role) {
        if let Some(adopted) = role.adopted() {
            let body = adopted_report(comp, key, role, adopted);
            ctx.send_to(from, id, round, body, None);
            return Ok(());
        }
    }
    if round < promised {
        return Ok(()); // promised a later round already
    }
    if !round_in_reach(comp, m.group, round, ctx.now) {
        return Err(Rejection::RoundPastLimit);
    }
    // Before the promise: its record, applied at once, raises the role's round too, and a
    // member that moved to the round must wait a whole timeout in it.
    let was = key.and_then(|k| comp.roles.get(&k)).map_or(0, |r| r.round);
    promise(comp, ctx, m.group, mine, round);
    let (_, accepted) = acceptor_state(comp, m.group);
    match key.and_then(|k| comp.roles.get_mut(&k)) {
        // A backup that serves no position of the group: its promise only.
        None => ctx.send_to(from, id, round, report(vec![], false, accepted, None), None),
        Some(role) => {
            let moved = round > was;
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
) -> Result<(), Rejection> {
    if manifest.items.len() > MAX_MANIFEST_ITEMS {
        return Err(Rejection::ManifestTooLong);
    }
    if !manifest.items.windows(2).all(|w| w[0] < w[1]) {
        return Err(Rejection::ManifestUnsorted);
    }
    let mut last_child = None;
    for item in &manifest.items {
        match item {
            Item::Contributor(c) => {
                if group.level != 0 || comp.plan.leaf_of(c) != group {
                    return Err(Rejection::ManifestForeignContributor);
                }
            }
            Item::Child { group: child, .. } => {
                if !comp.plan.is_child_of(*child, group) {
                    return Err(Rejection::ManifestNotAChild);
                }
                if last_child == Some(*child) {
                    return Err(Rejection::ManifestTwoVersions);
                }
                last_child = Some(*child);
            }
        }
    }
    Ok(())
}

/// Whether the position `role` serves may accept a proposal: only once its collection is
/// over (it reported, or is healing the children it lacks after its collection window), so
/// that it holds what `consistent` checks a proposal against. A member still collecting holds
/// nothing, and accepted whatever a leader proposed: a lying round-0 leader that proposed at
/// once got its nearly empty manifest accepted by every member, no later leader could pass
/// over it (`proposal`: so many acceptances may mean it was adopted), and the members, once
/// they held shares, refused it, so the group never adopted (`tests/accept_after_report.rs`).
///
/// A proposal that comes early is refused, not kept to be answered after the report. An
/// honest leader proposes from `t` reports (`proposal`; with `g = t`, from all `g`), or in a
/// later round from a quorum of promises, which only reporting members and backups send: the
/// members whose reports it counted accept, so it gets its `t` positions without the late
/// ones, and those learn the adoption from the leader's certificate like any position that
/// did not vote. Keeping the proposal would add state a liar fills (one per round) and an
/// answer after the report that only the round's timeout would otherwise give, for no
/// adoption the refusal loses; a round that still fails (a proposal from promises of fewer
/// than `t` members) times out, and the members that since reported accept the next round's.
/// Backups that serve no position keep accepting (they hold nothing to check at any time;
/// their accepts alone make no certificate, `certificate::complete`).
fn collection_over(role: &Role) -> bool {
    !matches!(role.stage, Stage::Collecting)
}

pub(super) fn on_manifest(
    comp: &mut Computation,
    from: NodeId,
    round: u32,
    m: ManifestMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
) -> Result<(), Rejection> {
    check_from_leader(comp, from, round, m.group, m.leader)?;
    check_manifest(comp, m.group, &m.manifest)?;
    if !round_in_reach(comp, m.group, round, ctx.now) {
        return Err(Rejection::RoundPastLimit);
    }
    let id = comp.id();
    let me = ctx.me.node;
    let mine = group_member_position(comp, m.group, me).ok_or(Rejection::NotCandidate)?;
    let key = my_role_in(comp, m.group);
    if !consistent(comp, key, &m.manifest) {
        return Err(Rejection::ManifestOmitsHeldItem);
    }
    if let Some(key) = key {
        let role = comp.roles.get(&key).ok_or(Rejection::NoRole)?;
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
        if !collection_over(role) {
            return Ok(()); // nothing to check it against yet: refused (`collection_over`)
        }
        // The leader's proposal is also its vote (its signed accept reaches only itself).
        count_vote(
            comp,
            key,
            round,
            from,
            m.manifest.clone(),
            VoteKind::Proposal,
            None,
            records,
        )?;
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
    if round > promised {
        promised_now(comp, m.group, round, ctx.now);
    }
    // The vote goes to the round's leader alone, which counts the quorum and tells every
    // other position (its adopted report, with the signed accepts it counted): 2g messages a
    // round instead of g per acceptor.
    let accept = certificate::sign_manifest_accept(
        ctx.me,
        &id,
        m.group,
        round,
        &m.manifest,
        mine,
        key.is_some(),
    );
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
                serving: accept.serving,
                signature: accept.signature.clone(),
            }),
        );
    }
    if let Some(key) = key {
        count_vote(
            comp,
            key,
            round,
            me,
            m.manifest,
            VoteKind::Vote,
            Some(accept),
            records,
        )?;
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
) -> Result<(), Rejection> {
    check_sender(comp, m.group, m.position, from)?;
    if round >= MAX_AGREE_ROUNDS {
        return Err(Rejection::RoundPastLimit);
    }
    check_manifest(comp, m.group, &m.manifest)?;
    let key = my_role_in(comp, m.group).ok_or(Rejection::NotInGroup)?;
    if comp.roles.get(&key).is_none_or(|r| r.adopted().is_some()) {
        return Ok(()); // counted no more: no signature to check
    }
    // Verified on receipt: the leader's certificate carries it, and one bad signature in it
    // would make every position refuse the certificate.
    let id = comp.id();
    let digest = version_of(&id, m.group, &m.manifest).digest;
    let accept = SignedAccept {
        voter: from,
        position: m.position,
        serving: m.serving,
        signature: m.signature,
    };
    let public = comp
        .plan
        .ed25519_key(&from)
        .ok_or(Rejection::AcceptSignatureInvalid)?;
    if !certificate::accept_verifies(&public, &id, m.group, round, &digest, &accept) {
        return Err(Rejection::AcceptSignatureInvalid);
    }
    count_vote(
        comp,
        key,
        round,
        from,
        m.manifest,
        VoteKind::Vote,
        Some(accept),
        records,
    )
}

/// Agreement records are only ever about a group and position of the plan.
fn check_acceptor(comp: &Computation, key: Slot) -> Result<(), Rejection> {
    if comp.plan.contains(key.group) && (1..=comp.plan.g).contains(&key.position) {
        Ok(())
    } else {
        Err(Rejection::OutsidePlan)
    }
}

/// Applies `Record::ManifestPromised`: this node, a candidate of `key`, promised `round`.
pub(super) fn apply_promised(
    comp: &mut Computation,
    key: Slot,
    round: u32,
) -> Result<(), Rejection> {
    check_acceptor(comp, key)?;
    let a = comp.acceptors.entry(key.group).or_default();
    a.promised = a.promised.max(round);
    if let Some(role) = comp.roles.get_mut(&key) {
        role.round = role.round.max(round);
    }
    Ok(())
}

/// Applies `Record::ManifestAccepted`: this node, a candidate of `key`, accepted `manifest`
/// in `round` (which promises the round too).
pub(super) fn apply_accepted(
    comp: &mut Computation,
    key: Slot,
    round: u32,
    manifest: &Manifest,
) -> Result<(), Rejection> {
    check_acceptor(comp, key)?;
    let a = comp.acceptors.entry(key.group).or_default();
    a.promised = a.promised.max(round);
    a.accepted = Some((round, manifest.clone()));
    if let Some(role) = comp.roles.get_mut(&key) {
        role.round = role.round.max(round);
    }
    Ok(())
}
