//! Release. Root members open the counts of the cells among themselves, and each releases
//! to the commissioner only its shares of the cells that count `k_min` contributors. The
//! commissioner picks the root version, collects `t` root shares with one cell mask,
//! reconstructs, checks the counts it received, and closes the computation.

use super::role::{check_position, check_sender, is_candidate, my_role_in};
use super::{
    finish_signing_bytes, persist, slot, Computation, Ctx, Event, Failure, Output, Pending,
    Rejection, Released,
};
use crate::encoding::ContributionSpec;
use crate::field::linear_combination;
use crate::field::{FieldVec, Fp};
use crate::ids::{Digest, Micros, NodeId, Position, Version};
use crate::limits::MAX_RELEASE_DECODE_SUBSETS;
use crate::message::{
    cell_bits, cell_flags, Body, CountShareMsg, FinishMsg, Message, ReleaseAskMsg, ReleaseShareMsg,
    RootReadyMsg, Slot,
};
use crate::plan::Plan;
use crate::record::Record;
use crate::sharing::{lagrange_coefficients, reconstruct};
use std::collections::{BTreeMap, BTreeSet};

pub(super) struct Commissioner {
    pub(super) finish_signature: Vec<u8>,
    pub(super) ready: BTreeMap<Position, Version>,
    /// The node that reported each root position.
    pub(super) ready_from: BTreeMap<Position, NodeId>,
    pub(super) phase: Phase,
}

/// Where the commissioner is in the release; each phase owns what only it needs.
pub(super) enum Phase {
    /// Waiting for `t` root positions to report one version. `first_ready`: when the
    /// commissioner first saw a report (the release window runs from it); `window_over`: the
    /// window passed without such a version, so it chooses as soon as one appears.
    Waiting {
        first_ready: Option<Micros>,
        window_over: bool,
    },
    /// A version is chosen and its holders are asked for their shares.
    Releasing(Release),
    /// Released (or failed for want of `k_min`): nothing more to do. Keeps what the progress
    /// shows: whether a version had been chosen in this run and how many shares arrived.
    Done { chosen: bool, shares: usize },
}

/// The release of one chosen version.
pub(super) struct Release {
    pub(super) version: Version,
    /// When the holders of the chosen version were last asked for their shares.
    pub(super) asked_at: Micros,
    /// Root positions asked for their share of the chosen version since `asked_at`.
    pub(super) asked: BTreeSet<Position>,
    /// Each root position's share of the released elements, with its cell mask.
    pub(super) shares: BTreeMap<Position, (Vec<bool>, Vec<Fp>)>,
}

impl Commissioner {
    pub(super) fn new(finish_signature: Vec<u8>) -> Commissioner {
        Commissioner {
            finish_signature,
            ready: BTreeMap::new(),
            ready_from: BTreeMap::new(),
            phase: Phase::Waiting {
                first_ready: None,
                window_over: false,
            },
        }
    }

    pub(super) fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done { .. })
    }

    /// Ends the release (the result is out, or nothing can be).
    pub(super) fn finish(&mut self) {
        let (chosen, shares) = match &self.phase {
            Phase::Done { .. } => return,
            Phase::Releasing(r) => (true, r.shares.len()),
            Phase::Waiting { .. } => (false, 0),
        };
        self.phase = Phase::Done { chosen, shares };
    }

    /// The node that reported root position `p`, else the position's member.
    fn reporter(&self, plan: &Plan, p: Position) -> NodeId {
        self.ready_from
            .get(&p)
            .copied()
            .unwrap_or_else(|| plan.member(plan.root(), p))
    }
}

pub(super) fn on_root_ready(
    comp: &mut Computation,
    from: NodeId,
    m: RootReadyMsg,
) -> Result<(), Rejection> {
    check_position(comp, m.position)?;
    let root = comp.plan.root();
    if !is_candidate(comp, root, m.position, &from) {
        return Err(Rejection::NotFromPosition);
    }
    let rank = comp.plan.candidate_rank(root, m.position, &from);
    let Some(c) = comp.commissioner.as_mut() else {
        return Err(Rejection::NotTheCommissioner);
    };
    // The latest report of a position wins: a backup that took the position over reports
    // after its member died. Later messages to the position go to whoever reported.
    c.ready.insert(m.position, m.version);
    c.ready_from.insert(m.position, from);
    if let Some(rank) = rank {
        comp.servers.insert(slot(root, m.position), rank);
    }
    Ok(())
}

pub(super) fn best_version(ready: &BTreeMap<Position, Version>) -> Option<(Version, usize)> {
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

pub(super) fn advance_commissioner(
    comp: &mut Computation,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
    check_k_min: bool,
) {
    let Some(c) = comp.commissioner.as_ref() else {
        return;
    };
    if c.ready.is_empty() {
        return;
    }
    match c.phase {
        Phase::Done { .. } => {}
        Phase::Releasing(_) => advance_release(comp, ctx, records, check_k_min),
        Phase::Waiting { .. } => choose_version(comp, ctx),
    }
}

/// Waiting: chooses the version to release once `t` root positions report it (at once if no
/// other report can change the choice, else after the release window) and asks its holders.
fn choose_version(comp: &mut Computation, ctx: &mut Ctx) {
    let id = comp.id();
    let g = comp.plan.g as usize;
    let t = comp.plan.t as usize;
    let window = comp.request().tree.timeouts.release_window;
    let root = comp.plan.root();
    let plan = comp.plan.clone();
    let Some(c) = comp.commissioner.as_mut() else {
        return;
    };
    let Phase::Waiting {
        first_ready,
        window_over,
    } = &mut c.phase
    else {
        return;
    };
    let first = *first_ready.get_or_insert(ctx.now);
    let Some((version, holders)) = best_version(&c.ready) else {
        return;
    };
    // A root group adopts at most one manifest (Paxos), so a version that `t` positions report
    // is the only one any position can report: waiting for the others (a straggler that is
    // still healing, or a dead member's backup) cannot change the choice.
    if holders < t && c.ready.len() < g && ctx.now < first.plus(window) && !*window_over {
        return;
    }
    if holders < t {
        *window_over = true;
        return;
    }
    // No check of `version.count` here: a manifest's count is an inner leader's word. The
    // root members decide what is released, from the counts in the shared data.
    let mut release = Release {
        version,
        asked_at: ctx.now,
        asked: BTreeSet::new(),
        shares: BTreeMap::new(),
    };
    for (p, v) in &c.ready {
        if *v == version {
            release.asked.insert(*p);
            let body = Body::ReleaseAsk(ReleaseAskMsg {
                version: version.digest,
            });
            ctx.send_to(c.reporter(&plan, *p), id, 0, body, Some(slot(root, *p)));
        }
    }
    c.phase = Phase::Releasing(release);
}

/// Releasing: a holder of the chosen version that reported after the choice is asked at once
/// (its share may complete the `t` sooner than a slower holder's). Shares missing after a
/// release window (a holder died or lost the message): asks the root positions to report
/// again (dead members fail over to their backups, which take the positions over), and asks
/// again every holder of the best version known now.
fn advance_release(
    comp: &mut Computation,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
    check_k_min: bool,
) {
    let id = comp.id();
    let t = comp.plan.t as usize;
    let window = comp.request().tree.timeouts.release_window;
    let root = comp.plan.root();
    let plan = comp.plan.clone();
    let Some(c) = comp.commissioner.as_mut() else {
        return;
    };
    let reporters: Vec<(Position, NodeId)> =
        (1..=plan.g).map(|p| (p, c.reporter(&plan, p))).collect();
    let Phase::Releasing(r) = &mut c.phase else {
        return;
    };
    let chosen = r.version;
    for (p, to) in reporters {
        let late = c.ready.get(&p) == Some(&chosen);
        if late && !r.asked.contains(&p) && !r.shares.contains_key(&p) {
            r.asked.insert(p);
            let body = Body::ReleaseAsk(ReleaseAskMsg {
                version: chosen.digest,
            });
            ctx.send_to(to, id, 0, body, Some(slot(root, p)));
        }
    }
    if ctx.now < r.asked_at.plus(window) {
        return;
    }
    // The window passed without every holder's share: decode what came (a holder that
    // withholds cannot stall the release), but never from fewer than `t + 1` shares of one
    // mask (`checked_release`): `t` shares always lie on one polynomial of degree `t - 1`, so
    // one lying root member among exactly `t` would go unseen. Short of that, the root is
    // asked again below (a dead holder's backup takes its position over) until the deadline,
    // which reports the positions whose shares are missing.
    if r.shares.len() >= t {
        open_shares(comp, ctx, records, check_k_min, false);
        if comp.commissioner.as_ref().is_none_or(|c| c.is_done()) {
            return;
        }
    }
    let Some(c) = comp.commissioner.as_mut() else {
        return;
    };
    let Phase::Releasing(r) = &mut c.phase else {
        return;
    };
    if let Some((v, _)) = best_version(&c.ready).filter(|(v, h)| *h >= t && *v != chosen) {
        r.shares.clear();
        r.version = v;
    }
    let version = r.version;
    r.asked_at = ctx.now;
    r.asked.clear();
    for p in 1..=plan.g {
        ctx.send_slot(&plan, &comp.servers, id, slot(root, p), 0, Body::RootQuery);
    }
    for (p, v) in &c.ready {
        if *v == version {
            r.asked.insert(*p);
            let body = Body::ReleaseAsk(ReleaseAskMsg {
                version: version.digest,
            });
            ctx.send_slot(&plan, &comp.servers, id, slot(root, *p), 0, body);
        }
    }
}

pub(super) fn finish(comp: &mut Computation, ctx: &mut Ctx, pending: &mut Vec<Pending>) {
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

/// This root member's share of the cells' counts (the indicator elements of its sum), if it
/// holds the sum of an adopted version.
fn own_count_share(comp: &Computation, key: Slot) -> Option<(Digest, Vec<Fp>)> {
    let adopted = comp.roles.get(&key)?.adopted()?;
    let sum = adopted.sum.as_ref()?;
    let counts = comp
        .request()
        .contribution
        .indicator_elements()
        .into_iter()
        .map(|e| sum.get(e).copied().unwrap_or(Fp::ZERO))
        .collect();
    Some((adopted.version.digest, counts))
}

/// A root member sends its share of the cells' counts to every other root position (`ask`:
/// and asks for theirs). Counts are what the root group opens, and only they.
pub(super) fn send_count_share(comp: &mut Computation, key: Slot, ctx: &mut Ctx, ask: bool) {
    let opened = comp.roles.get(&key).is_some_and(|r| r.counts.is_some());
    let Some((version, counts)) = own_count_share(comp, key).filter(|_| !opened) else {
        return;
    };
    if let Some(role) = comp.roles.get_mut(&key) {
        role.counts_sent = true;
    }
    let body = Body::CountShare(CountShareMsg {
        position: key.position,
        version,
        counts: FieldVec(counts),
        ask,
    });
    ctx.send_to_group(comp, key, 0, body);
}

/// Another root position's share of the counts: kept (one per position), answered if it asks,
/// and the counts opened once `t` shares of this member's version are here.
pub(super) fn on_count_share(
    comp: &mut Computation,
    from: NodeId,
    m: CountShareMsg,
    ctx: &mut Ctx,
) -> Result<(), Rejection> {
    let root = comp.plan.root();
    check_sender(comp, root, m.position, from)?;
    let key = my_role_in(comp, root).ok_or(Rejection::NotInGroup)?;
    if m.position == key.position {
        return Err(Rejection::CountShareFromSelf);
    }
    if m.counts.0.len() != comp.request().contribution.cell_count() {
        return Err(Rejection::WrongCellCount);
    }
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
    role.count_shares
        .insert(m.position, (m.version, m.counts.0));
    if m.ask {
        if let Some((version, counts)) = own_count_share(comp, key) {
            if version == m.version {
                ctx.send_to(
                    from,
                    comp.id(),
                    0,
                    Body::CountShare(CountShareMsg {
                        position: key.position,
                        version,
                        counts: FieldVec(counts),
                        ask: false,
                    }),
                    Some(slot(root, m.position)),
                );
            }
        }
    }
    open_counts(comp, key, ctx);
    Ok(())
}

/// Opens the cells' counts once this member holds its own share and `t - 1` others of its
/// version; persists them before anything that depends on them is sent (its release share).
pub(super) fn open_counts(comp: &mut Computation, key: Slot, ctx: &mut Ctx) {
    let t = comp.plan.t;
    let Some(role) = comp.roles.get(&key) else {
        return;
    };
    if role.counts.is_some() {
        return;
    }
    let Some((version, own)) = own_count_share(comp, key) else {
        return;
    };
    let mut shares: Vec<(u8, &[Fp])> = vec![(key.position, own.as_slice())];
    shares.extend(
        role.count_shares
            .iter()
            .filter(|(p, (v, _))| **p != key.position && *v == version)
            .map(|(p, (_, c))| (*p, c.as_slice()))
            .take(t as usize - 1),
    );
    if shares.len() < t as usize {
        return;
    }
    let counts = match reconstruct(&shares, t) {
        Ok(c) => c,
        Err(_) => {
            let me = ctx.me.node;
            ctx.reject(me, "count-share", Rejection::CountsDoNotOpen);
            return;
        }
    };
    let id = comp.id();
    persist(
        comp,
        ctx,
        Record::CountsOpened {
            computation: id,
            group: key.group,
            position: key.position,
            version,
            counts: FieldVec(counts),
        },
    );
    if comp.roles.get(&key).is_some_and(|r| r.release_asked) {
        send_release_share(comp, key, ctx);
    }
}

/// Sends the commissioner this member's share of the cells that count at least `k_min`
/// contributors, with the mask of those cells; nothing of a cell below `k_min` leaves. Sends
/// nothing unless the counts of the member's adopted version are open.
fn send_release_share(comp: &mut Computation, key: Slot, ctx: &mut Ctx) {
    let commissioner = comp.request().commissioner_node;
    let k_min = comp.request().privacy.k_min;
    let spec = &comp.signed.request.contribution;
    let Some(role) = comp.roles.get(&key) else {
        return;
    };
    let Some(adopted) = role.adopted() else {
        return;
    };
    let (Some(sum), Some((opened, counts))) = (adopted.sum.as_ref(), role.counts.as_ref()) else {
        return;
    };
    if *opened != adopted.version.digest {
        return;
    }
    // Differential privacy: a version summing fewer contributors than the honest sources
    // the noise was sized for carries less noise than the guarantee needs; nothing leaves.
    let enough_noise = spec
        .noise
        .as_ref()
        .is_none_or(|n| adopted.version.count >= u64::from(n.honest_sources));
    let cells: Vec<bool> = counts
        .iter()
        .map(|c| enough_noise && spec.cell_meets(*c, k_min))
        .collect();
    let elements = spec.released_elements(&cells);
    let share: Vec<Fp> = sum
        .iter()
        .zip(&elements)
        .filter(|(_, r)| **r)
        .map(|(x, _)| *x)
        .collect();
    let body = Body::ReleaseShare(ReleaseShareMsg {
        position: key.position,
        version: adopted.version.digest,
        released: cell_bits(&cells),
        share: FieldVec(share),
    });
    let id = comp.id();
    ctx.send(commissioner, id, 0, body);
}

pub(super) fn on_release_ask(
    comp: &mut Computation,
    from: NodeId,
    m: ReleaseAskMsg,
    ctx: &mut Ctx,
) -> Result<(), Rejection> {
    if from != comp.request().commissioner_node {
        return Err(Rejection::NotFromCommissioner);
    }
    let root = comp.plan.root();
    let key = my_role_in(comp, root).ok_or(Rejection::NotInGroup)?;
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
    let holds = role
        .adopted()
        .is_some_and(|a| a.sum.is_some() && a.version.digest == m.version);
    if !holds {
        return Ok(());
    }
    if role.counts.is_some() {
        send_release_share(comp, key, ctx);
    } else {
        // Not yet open (the member restarted, or shares were lost): answer once they are,
        // and ask the other root positions for their count shares meanwhile.
        role.release_asked = true;
        send_count_share(comp, key, ctx, true);
    }
    Ok(())
}

pub(super) fn on_release_share(
    comp: &mut Computation,
    from: NodeId,
    m: ReleaseShareMsg,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
    check_k_min: bool,
) -> Result<(), Rejection> {
    check_position(comp, m.position)?;
    let root = comp.plan.root();
    if !is_candidate(comp, root, m.position, &from) {
        return Err(Rejection::NotFromPosition);
    }
    let spec = comp.signed.request.contribution.clone();
    let cells = cell_flags(&m.released, spec.cell_count()).ok_or(Rejection::MalformedCellMask)?;
    let elements = spec.released_elements(&cells);
    if m.share.0.len() != elements.iter().filter(|r| **r).count() {
        return Err(Rejection::ReleaseShareMismatch);
    }
    let Some(c) = comp.commissioner.as_mut() else {
        return Err(Rejection::NotTheCommissioner);
    };
    let Phase::Releasing(r) = &mut c.phase else {
        return Ok(()); // nothing chosen yet, or done
    };
    let version = r.version;
    if version.digest != m.version {
        return Ok(());
    }
    r.shares.insert(m.position, (cells, m.share.0));
    let holders: Vec<Position> = c
        .ready
        .iter()
        .filter(|(_, v)| **v == version)
        .map(|(p, _)| *p)
        .collect();
    // Every root position reported and every holder of the version answered: nothing more
    // can come to check the shares against.
    let all_in =
        c.ready.len() == comp.plan.g as usize && holders.iter().all(|p| r.shares.contains_key(p));
    open_shares(comp, ctx, records, check_k_min, !all_in);
    Ok(())
}

/// Shares of one mask the commissioner needs before it releases, early or past the window:
/// `t + 1`, so that one more than a reconstruction needs checks them (any `t` shares lie on
/// one polynomial of degree `t - 1`, a lying one among them included), except with `g = t`
/// (the DISSEC baselines), where no share can be checked and `t` are released as they come.
pub(super) fn checked_release(t: usize, g: usize) -> usize {
    (t + 1).min(g)
}

/// What the shares of the chosen version, taken together, say.
enum Decoded {
    /// Too few shares of one mask yet.
    Wait,
    /// The released elements, from shares that lie on one polynomial of degree `t - 1`, and the
    /// positions whose shares do not (left out).
    Open(Vec<bool>, Vec<Fp>, Vec<Position>),
    /// The shares lie on no polynomial of degree `t - 1` that a majority beyond `t` agrees
    /// on: these positions disagree with the best-supported one.
    Inconsistent(Vec<Position>),
}

/// Decodes the release shares as a whole, independently of their arrival order: the mask
/// most positions sent (ties: the smaller mask), then the polynomial of degree `t - 1` through
/// a `t`-subset of them (in position order) that at least `n - floor((n - t) / 2)` of the `n`
/// shares lie on. With `e` lying positions and `n >= t + 2e` shares the polynomial is unique
/// and the liars are named; with `t < n < t + 2e` the lie is detected and nothing is released.
/// With fewer than `checked` shares of one mask it waits: exactly `t` shares always decode, and
/// nothing checks them (a lying one among them would be released).
fn decode(shares: &BTreeMap<Position, (Vec<bool>, Vec<Fp>)>, t: usize, checked: usize) -> Decoded {
    let mut by_mask: BTreeMap<&Vec<bool>, Vec<(Position, &[Fp])>> = BTreeMap::new();
    for (p, (mask, s)) in shares {
        by_mask.entry(mask).or_default().push((*p, s.as_slice()));
    }
    let Some((mask, group)) = by_mask
        .into_iter()
        .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)))
    else {
        return Decoded::Wait;
    };
    let n = group.len();
    if n < t.max(checked) {
        return Decoded::Wait;
    }
    let need = n - (n - t) / 2;
    let mut best: Option<(usize, Vec<usize>)> = None;
    for subset in subsets(n, t).take(MAX_RELEASE_DECODE_SUBSETS) {
        let base: Vec<(u8, &[Fp])> = subset.iter().map(|i| group[*i]).collect();
        let agree: Vec<usize> = (0..n)
            .filter(|i| subset.contains(i) || on_polynomial(&base, group[*i]))
            .collect();
        if agree.len() >= need {
            let used: Vec<(u8, &[Fp])> = subset.iter().map(|i| group[*i]).collect();
            let Ok(opened) = reconstruct(&used, t as u8) else {
                continue;
            };
            let liars = (0..n)
                .filter(|i| !agree.contains(i))
                .map(|i| group[i].0)
                .collect();
            let liars_elsewhere = shares
                .iter()
                .filter(|(_, (m, _))| m != mask)
                .map(|(p, _)| *p);
            let mut named: Vec<Position> = liars;
            named.extend(liars_elsewhere);
            named.sort();
            return Decoded::Open(mask.clone(), opened, named);
        }
        if best.as_ref().is_none_or(|(k, _)| agree.len() > *k) {
            best = Some((agree.len(), agree));
        }
    }
    let agree = best.map(|(_, a)| a).unwrap_or_default();
    let mut named: Vec<Position> = shares
        .keys()
        .copied()
        .filter(|p| !agree.iter().any(|i| group[*i].0 == *p))
        .collect();
    named.sort();
    Decoded::Inconsistent(named)
}

/// Whether `share` lies on the polynomial of degree `t - 1` through `base` (`t` shares).
fn on_polynomial(base: &[(u8, &[Fp])], share: (u8, &[Fp])) -> bool {
    let points: Vec<u8> = base.iter().map(|(p, _)| *p).collect();
    let Ok(coeffs) = lagrange_coefficients(&points, share.0) else {
        return false;
    };
    let vecs: Vec<&[Fp]> = base.iter().map(|(_, s)| *s).collect();
    vecs.iter().all(|v| v.len() == share.1.len()) && linear_combination(&coeffs, &vecs) == share.1
}

/// The `k`-subsets of `0..n` in lexicographic order.
fn subsets(n: usize, k: usize) -> impl Iterator<Item = Vec<usize>> {
    let mut next = (k <= n).then(|| (0..k).collect::<Vec<usize>>());
    std::iter::from_fn(move || {
        let current = next.take()?;
        let mut c = current.clone();
        let mut i = k;
        while i > 0 {
            i -= 1;
            if c[i] < n - k + i {
                c[i] += 1;
                for j in i + 1..k {
                    c[j] = c[j - 1] + 1;
                }
                next = Some(c);
                break;
            }
        }
        Some(current)
    })
}

/// Opens the chosen version from the shares received so far, if they decode (see [`decode`]):
/// releases it, or fails naming the positions whose shares lie on no common polynomial.
///
/// `early`: not every holder answered yet, and the window is open. Then it opens only if at
/// least `t + 1` shares arrived and all of them lie on one polynomial: one lying share among
/// them cannot (the `t` honest ones fix the polynomial), so the result is the one every
/// holder's shares would give. Two colluding liars among the first `t + 1` could agree on
/// another polynomial; waiting for every holder would catch them, at the cost of a release
/// window each time a root holder dies.
fn open_shares(
    comp: &mut Computation,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
    check_k_min: bool,
    early: bool,
) {
    let t = comp.plan.t as usize;
    let g = comp.plan.g as usize;
    let k_min = comp.request().privacy.k_min;
    let spec = comp.signed.request.contribution.clone();
    let Some(c) = comp.commissioner.as_mut() else {
        return;
    };
    let Phase::Releasing(r) = &mut c.phase else {
        return;
    };
    let version = r.version;
    match decode(&r.shares, t, checked_release(t, g)) {
        Decoded::Wait => {}
        Decoded::Open(_, _, excluded) if early && !excluded.is_empty() => {}
        Decoded::Inconsistent(_) if early => {}
        Decoded::Open(cells, opened, excluded) => {
            c.finish();
            let (sum, cells) = open_release(&spec, opened, cells, check_k_min.then_some(k_min));
            publish(comp, ctx, records, version, sum, cells, excluded);
        }
        Decoded::Inconsistent(positions) => {
            c.finish();
            let id = comp.id();
            ctx.event(Event::Failed {
                computation: id,
                reason: Failure::InconsistentRootShares { positions },
            });
            finish(comp, ctx, records);
        }
    }
}

/// The sum at every element from the reconstructed released elements, and the cells shown:
/// with `k_min`, the commissioner's own check drops a cell released with fewer than `k_min`
/// contributors (root members that lie); the root members' rule does not rest on it. Elements
/// of cells not shown are zero.
fn open_release(
    spec: &ContributionSpec,
    opened: Vec<Fp>,
    mut cells: Vec<bool>,
    k_min: Option<u64>,
) -> (Vec<Fp>, Vec<bool>) {
    let elements = spec.released_elements(&cells);
    let mut sum = vec![Fp::ZERO; elements.len()];
    let mut next = opened.into_iter();
    for (x, released) in sum.iter_mut().zip(&elements) {
        if *released {
            *x = next.next().unwrap_or(Fp::ZERO);
        }
    }
    if let Some(k_min) = k_min {
        for (flag, e) in cells.iter_mut().zip(spec.indicator_elements()) {
            if *flag && !spec.cell_meets(sum[e], k_min) {
                *flag = false;
            }
        }
    }
    let released = spec.released_elements(&cells);
    for (x, r) in sum.iter_mut().zip(&released) {
        if !*r {
            *x = Fp::ZERO;
        }
    }
    (sum, cells)
}

/// Shows the result (or fails for want of a cell meeting `k_min`), persists it and closes.
fn publish(
    comp: &mut Computation,
    ctx: &mut Ctx,
    records: &mut Vec<Pending>,
    version: Version,
    sum: Vec<Fp>,
    cells: Vec<bool>,
    excluded: Vec<Position>,
) {
    let id = comp.id();
    let spec = &comp.signed.request.contribution;
    let released = spec.released_elements(&cells);
    if !released.iter().any(|r| *r) {
        // The root members withhold a version whose count is below the honest sources (the
        // rule of `send_release_share`) whatever its cells count: say so, not k_min.
        let reason = match spec.noise.as_ref() {
            Some(n) if version.count < u64::from(n.honest_sources) => Failure::TooFewNoiseSources {
                summed: version.count,
                honest_sources: n.honest_sources,
            },
            _ => Failure::KMinNotMet {
                k_min: comp.request().privacy.k_min,
                cells: cells.len(),
            },
        };
        ctx.event(Event::Failed {
            computation: id,
            reason,
        });
        finish(comp, ctx, records);
        return;
    }
    let values = spec.decode_sum(&sum);
    ctx.event(Event::Released(Box::new(Released {
        computation: id,
        version,
        sum: sum.clone(),
        values,
        released,
        at: ctx.now,
        excluded,
    })));
    records.push(Pending::Record(Record::Released {
        computation: id,
        version,
        sum: FieldVec(sum),
    }));
    finish(comp, ctx, records);
}

pub(super) fn on_finish(
    comp: &mut Computation,
    _from: NodeId,
    m: FinishMsg,
    records: &mut Vec<Pending>,
) -> Result<(), Rejection> {
    use ed25519_dalek::{Signature, VerifyingKey};
    let key = VerifyingKey::from_bytes(&comp.request().commissioner.0)
        .map_err(|_| Rejection::BadCommissionerKey)?;
    let sig =
        Signature::from_slice(&m.signature).map_err(|_| Rejection::MalformedFinishSignature)?;
    key.verify_strict(&finish_signing_bytes(&comp.id()), &sig)
        .map_err(|_| Rejection::FinishSignatureInvalid)?;
    records.push(Pending::Close { id: comp.id() });
    Ok(())
}

/// Applies `Record::CountsOpened`: the root member at `key` opened the cells' counts of
/// `version`.
pub(super) fn apply_counts_opened(
    comp: &mut Computation,
    key: Slot,
    version: Digest,
    counts: &[Fp],
) -> Result<(), Rejection> {
    if counts.len() != comp.request().contribution.cell_count() {
        return Err(Rejection::WrongCellCount);
    }
    let role = comp.roles.get_mut(&key).ok_or(Rejection::NoRole)?;
    role.counts = Some((version, counts.to_vec()));
    Ok(())
}
