//! The commissioner role: pick the root version, check `k_min`, collect `t` root shares,
//! reconstruct, and close the computation.

use super::*;

pub(super) struct Commissioner {
    pub(super) finish_signature: Vec<u8>,
    pub(super) ready: BTreeMap<Position, Version>,
    /// The node that reported each root position.
    pub(super) ready_from: BTreeMap<Position, NodeId>,
    pub(super) first_ready: Option<Micros>,
    pub(super) window_over: bool,
    pub(super) chosen: Option<Version>,
    /// When the holders of the chosen version were last asked for their shares.
    pub(super) asked_at: Option<Micros>,
    /// Root positions asked for their share of the chosen version since `asked_at`.
    pub(super) asked: BTreeSet<Position>,
    pub(super) shares: BTreeMap<Position, Vec<Fp>>,
    pub(super) done: bool,
}

impl Commissioner {
    pub(super) fn new(finish_signature: Vec<u8>) -> Commissioner {
        Commissioner {
            finish_signature,
            ready: BTreeMap::new(),
            ready_from: BTreeMap::new(),
            first_ready: None,
            window_over: false,
            chosen: None,
            asked_at: None,
            asked: BTreeSet::new(),
            shares: BTreeMap::new(),
            done: false,
        }
    }
}

pub(super) fn on_root_ready(
    comp: &mut Computation,
    from: NodeId,
    m: RootReadyMsg,
) -> Result<(), String> {
    check_position(comp, m.position)?;
    let root = comp.plan.root();
    if !is_candidate(comp, root, m.position, &from) {
        return Err("root report not sent by the root member at its position".into());
    }
    let rank = comp.plan.candidate_rank(root, m.position, &from);
    let Some(c) = comp.commissioner.as_mut() else {
        return Err("root report to a node that is not the commissioner".into());
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
    pending: &mut Vec<Pending>,
) {
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
    if c.done || c.ready.is_empty() {
        return;
    }
    if let Some(chosen) = c.chosen {
        // A holder of the chosen version that reported after the choice is asked at once: its
        // share may complete the `t` sooner than a slower holder's.
        let late: Vec<(Position, NodeId)> = c
            .ready
            .iter()
            .filter(|(p, v)| **v == chosen && !c.asked.contains(p) && !c.shares.contains_key(p))
            .map(|(p, _)| {
                (
                    *p,
                    c.ready_from
                        .get(p)
                        .copied()
                        .unwrap_or_else(|| plan.member(root, *p)),
                )
            })
            .collect();
        for (p, to) in late {
            c.asked.insert(p);
            ctx.send_to(
                to,
                id,
                0,
                Body::ReleaseAsk(ReleaseAskMsg {
                    version: chosen.digest,
                }),
                Some(slot(root, p)),
            );
        }
        // Shares missing after a release window: a holder died or lost the message. Ask the
        // root positions to report again (dead members fail over to their backups, which take
        // the positions over), and ask again every holder of the best version known now.
        let Some(asked) = c.asked_at else {
            return;
        };
        if ctx.now < asked.plus(window) {
            return;
        }
        let best = best_version(&c.ready)
            .filter(|(_, h)| *h >= t)
            .map(|(v, _)| v);
        let version = match best {
            Some(v) if v != chosen && v.count >= k_min => {
                c.shares.clear();
                v
            }
            _ => chosen,
        };
        c.chosen = Some(version);
        c.asked_at = Some(ctx.now);
        c.asked.clear();
        let holders: Vec<Position> = c
            .ready
            .iter()
            .filter(|(_, v)| **v == version)
            .map(|(p, _)| *p)
            .collect();
        for p in 1..=plan.g {
            ctx.send_slot(&plan, &comp.servers, id, slot(root, p), 0, Body::RootQuery);
        }
        for p in holders {
            c.asked.insert(p);
            ctx.send_slot(
                &plan,
                &comp.servers,
                id,
                slot(root, p),
                0,
                Body::ReleaseAsk(ReleaseAskMsg {
                    version: version.digest,
                }),
            );
        }
        return;
    }
    let first = *c.first_ready.get_or_insert(ctx.now);
    let Some((version, holders)) = best_version(&c.ready) else {
        return;
    };
    // A root group adopts at most one manifest (Paxos), so a version that `t` positions report
    // is the only one any position can report: waiting for the others (a straggler that is
    // still healing, or a dead member's backup) cannot change the choice.
    if holders < t && c.ready.len() < g && ctx.now < first.plus(window) && !c.window_over {
        return;
    }
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
    c.asked_at = Some(ctx.now);
    for (p, v) in &c.ready {
        if *v == version {
            c.asked.insert(*p);
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

pub(super) fn on_release_ask(
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

pub(super) fn on_release_share(
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

pub(super) fn on_finish(
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

/// A restarted commissioner asks again: a complete root member repeats its report.
pub(super) fn on_root_query(
    comp: &mut Computation,
    from: NodeId,
    ctx: &mut Ctx,
) -> Result<(), String> {
    if from != comp.request().commissioner_node {
        return Err("root query from a node that is not the commissioner".into());
    }
    let root = comp.plan.root();
    let key = my_role_in(comp, root).ok_or("root query to a node not in the root group")?;
    if comp
        .roles
        .get(&key)
        .is_some_and(|r| r.adopted.as_ref().is_some_and(|a| a.sum.is_some()))
    {
        send_up(comp, key, ctx);
    }
    Ok(())
}
