//! The contributor role: a node's own values, shared among the positions of its leaf group
//! (seeds first), sealed to whoever serves each position, sent again on request; or its
//! decline.

use super::{server_of, slot, CommandError, Ctx, Engine, Event, Refusal, RefusalKind, Rejection};
use crate::field::{FieldVec, Fp};
use crate::ids::{hash_parts, ComputationId, NodeId, Position};
use crate::message::{Body, DeclineMsg, ShareMsg, SharePayload, ShareQueryMsg};
use crate::record::Record;
use crate::sharing::{rotation_of, share_vector_rotated, CompressedShare, SharingParams};
use rand_chacha::rand_core::RngCore;

/// This node's contribution to one computation (persisted as `Record::Contribution`).
pub(super) struct Contribution {
    pub(super) seed: [u8; 32],
    pub(super) vector: Vec<Fp>,
    /// Its validity proof is out as a job (`Output::Work`), and the positions whose validity
    /// shares leave when it is done (`engine/validity.rs`). Never persisted: a restart loses
    /// the job, and restoring asks for it again.
    pub(super) proving: Option<super::validity::Wanted>,
    /// Its validity shares once its proof is done, one per position `1..=g` (empty if none
    /// could be made): every later send (a share query, a failover) seals them again instead
    /// of proving again. In memory only, like `proving`: after a restart it proves once more.
    pub(super) proved: Option<Vec<crate::message::ValidityPart>>,
    /// When it last answered a share query for each (position, rank of the asker among that
    /// position's candidates): a candidate gets at most one answer per `SHARE_QUERY_SPACING`,
    /// so a flood of queries costs at most one re-sent share per candidate and spacing. In
    /// memory only (a restart forgets it: one more answer each).
    pub(super) answered: std::collections::BTreeMap<(Position, usize), crate::ids::Micros>,
}

/// How often one candidate of a position gets its share query answered: once per second. An
/// honest backup asks each contributor once (`collection::ask_contributors`), again only after
/// a restart; each answer re-sends a whole share (about 1 MB at 131,072 coordinates), so
/// without a bound one 40-byte query bought a megabyte of the contributor's upload.
const SHARE_QUERY_SPACING: u64 = 1_000_000;

impl Engine {
    pub(super) fn contribute(
        &mut self,
        id: ComputationId,
        values: &[f64],
    ) -> Result<(), CommandError> {
        let comp = self
            .computations
            .get(&id)
            .ok_or(CommandError::UnknownComputation(id))?;
        if comp.contribution.is_some() {
            return Err(CommandError::AlreadyContributed(id));
        }
        // Every node that may receive this node's shares (its leaf's members and their backups)
        // must be a candidate this node can verify: admitted and old enough.
        if let Some(rule) = &self.candidate_rule {
            let plan = &comp.plan;
            let leaf = plan.leaf_of(&self.identity.node);
            let created_at = comp.request().created_at;
            for position in 1..=plan.g {
                if let Some(node) = plan
                    .candidates(leaf, position)
                    .find(|n| !rule.verifies(n, created_at))
                {
                    return Err(CommandError::Refused(Refusal {
                        kind: RefusalKind::Candidates,
                        detail: format!("leaf member {node:?} is not an admitted candidate"),
                    }));
                }
            }
        }
        let spec = &comp.request().contribution;
        let mut vector = spec.encode(values)?;
        if matches!(
            self.validity_lie,
            Some(super::ValidityLie::Unclipped | super::ValidityLie::KnowsQueryRandomness)
        ) {
            // Test-only: the values as they are, outside their bounds if they are.
            let scale = 10f64.powi(i32::from(spec.scale_digits));
            vector = values
                .iter()
                .map(|v| Fp::from_i64((v * scale).round() as i64))
                .collect();
        }
        if let Some(super::ValidityLie::Inflate(n)) = self.validity_lie {
            // Test-only: every element, indicators included, `n` times its honest value.
            let n = Fp::from_i64(i64::from(n));
            vector = vector.iter().map(|x| *x * n).collect();
        }
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        if let Some(noise) = &spec.noise {
            // Differential privacy: this contributor's own noise, from its persisted seed,
            // enters the vector before it is shared (`dp.rs`).
            crate::dp::add_noise(&mut vector, &seed, noise);
        }
        self.record(Record::Contribution {
            computation: id,
            seed,
            vector: FieldVec(vector),
        });
        self.send_shares(id);
        Ok(())
    }

    /// Tells each position of this node's leaf group that it will not contribute. Nothing is
    /// persisted: a lost decline only makes the leaf wait for its share window.
    pub(super) fn decline(&mut self, id: ComputationId) -> Result<(), CommandError> {
        let comp = self
            .computations
            .get(&id)
            .ok_or(CommandError::UnknownComputation(id))?;
        if comp.contribution.is_some() {
            return Ok(()); // it contributed: its shares speak for it
        }
        let plan = &comp.plan;
        let leaf = plan.leaf_of(&self.identity.node);
        let mut ctx = ctx!(self);
        for position in 1..=plan.g {
            let server = server_of(plan, &comp.servers, slot(leaf, position));
            ctx.send_to(
                server,
                id,
                0,
                Body::Decline(DeclineMsg { group: leaf }),
                None,
            );
        }
        Ok(())
    }

    /// Sends (or re-sends, identically) this node's shares to its leaf group.
    pub(super) fn send_shares(&mut self, id: ComputationId) {
        self.send_shares_to(id, None);
    }

    /// Sends this node's share for one position (or all), sealed to the node serving it, and
    /// its validity share (`send_validity_shares`).
    pub(super) fn send_shares_to(&mut self, id: ComputationId, only: Option<Position>) {
        if !self.send_aggregated_shares(id, only) {
            return;
        }
        self.send_validity_shares(id, only);
        let Some(comp) = self.computations.get(&id) else {
            return;
        };
        let leaf = comp.plan.leaf_of(&self.identity.node);
        let mut ctx = ctx!(self);
        if only.is_none() {
            ctx.event(Event::Contributed {
                computation: id,
                group: leaf,
            });
        }
    }

    /// The aggregated shares alone of [`send_shares_to`](Self::send_shares_to); `false` if
    /// this node holds no contribution to `id`.
    fn send_aggregated_shares(&mut self, id: ComputationId, only: Option<Position>) -> bool {
        let Some(comp) = self.computations.get(&id) else {
            return false;
        };
        let Some(contribution) = &comp.contribution else {
            return false;
        };
        let plan = &comp.plan;
        let me = self.identity.node;
        let leaf = plan.leaf_of(&me);
        let params = SharingParams {
            g: plan.g,
            t: plan.t,
        };
        // Which positions get seeds rotates with the contributor, spreading the full vectors.
        let rotation = rotation_of(&me.0, plan.g);
        let mut vector = std::borrow::Cow::Borrowed(&contribution.vector);
        if self.validity_lie == Some(super::ValidityLie::SharesOther) {
            // Test-only: shares another vector than the one it proves (`send_validity_shares`).
            if let Some(x) = vector.to_mut().first_mut() {
                *x += Fp::new(1_000_000);
            }
        }
        let shares = share_vector_rotated(&vector, params, contribution.seed, rotation);
        // Seeds first: the `t - 1` seeds leave at once and the first full vector completes
        // `t` positions, so a contributor that dies while its full vectors upload is still
        // included (a share counts once `t` members hold it).
        let mut shares: Vec<(Position, CompressedShare)> = (1..).zip(shares).collect();
        shares.sort_by_key(|(position, share)| {
            (matches!(share, CompressedShare::Full(_)), *position)
        });
        let mut ctx = ctx!(self);
        for (position, share) in shares {
            if only.is_some_and(|o| o != position) {
                continue;
            }
            let member = server_of(plan, &comp.servers, slot(leaf, position));
            let payload = SharePayload {
                computation: id,
                group: leaf,
                position,
                contributor: me,
                share,
            };
            // Invariant: postcard serialises these plain data types without error.
            let bytes = postcard::to_allocvec(&payload).expect("share payload serialises");
            let Some(key) = plan.x25519_key(&member) else {
                continue;
            };
            let eph = hash_parts(
                "grove/share-ephemeral",
                &[&contribution.seed, &[position], &member.0],
            );
            match self.envelope.seal(&key, &bytes, eph) {
                Ok(sealed) => ctx.send_to(
                    member,
                    id,
                    0,
                    Body::Share(ShareMsg {
                        group: leaf,
                        position,
                        contributor: me,
                        sealed,
                    }),
                    Some(slot(leaf, position)),
                ),
                Err(_) => ctx.reject(me, "share", Rejection::SealFailed),
            }
        }
        true
    }

    /// A node serving a position of this contributor's leaf group (a backup that took it over
    /// after the member died holding shares) asks for this node's share again. It gets it,
    /// with its validity share (kept since the proof, `Contribution::proved`: a query costs no
    /// proof), only if this contributor's own failover already routes the position to it: the
    /// asker's word that the member is gone is not enough (else every backup could pull each
    /// point while the member lives, exposing it to `b + 1` nodes). Otherwise the contributor
    /// re-sends only the identical aggregated share to the node it serves (a duplicate a live
    /// member ignores; no validity share, no proof): if that node is unreachable, the
    /// transport says so and the contributor fails over by itself (`handle_unreachable`, which
    /// sends both to the next candidate). Without that re-send a contributor whose shares were
    /// all delivered before the member died would never fail over to the asking backup.
    pub(super) fn on_share_query(
        &mut self,
        from: NodeId,
        id: ComputationId,
        m: &ShareQueryMsg,
    ) -> Result<(), Rejection> {
        let me = self.identity.node;
        let comp = self
            .computations
            .get_mut(&id)
            .ok_or(Rejection::UnknownComputation)?;
        if comp.contribution.is_none() {
            return Err(Rejection::ShareQueryWithoutContribution);
        }
        if comp.plan.leaf_of(&me) != m.group {
            return Err(Rejection::ShareQueryForOtherLeaf);
        }
        let rank = comp
            .plan
            .candidate_rank(m.group, m.position, &from)
            .ok_or(Rejection::NotFromPosition)?;
        let current = comp
            .servers
            .get(&slot(m.group, m.position))
            .copied()
            .unwrap_or(0);
        let now = self.now;
        let Some(contribution) = comp.contribution.as_mut() else {
            return Err(Rejection::ShareQueryWithoutContribution);
        };
        match contribution.answered.get(&(m.position, rank)) {
            Some(at) if now.0 < at.0.saturating_add(SHARE_QUERY_SPACING) => {
                return Err(Rejection::ShareQueryTooSoon);
            }
            _ => {
                contribution.answered.insert((m.position, rank), now);
            }
        }
        if rank != current {
            self.send_aggregated_shares(id, Some(m.position));
            return Err(Rejection::ShareQueryNotFailedOver);
        }
        self.send_shares_to(id, Some(m.position));
        Ok(())
    }
}
