//! Byzantine nodes of the harness: the engine of a Byzantine node stays honest, and its lies are
//! made on the wire, by rewriting, dropping or adding to what it sends. A defence in the engine
//! can thus never be switched off by the attack's own code path.
//!
//! Each attack is one field of [`Byzantine`]; a node may combine them, and
//! [`Cluster::byzantine`] makes a node lie. To add an attack (a heal with chosen helpers, a
//! share pull): add a field, rewrite or add messages in [`Byzantine::rewrite`] (called with each
//! message the node sends, before it is encoded) or in [`Byzantine::on_first_send`] (called once
//! per computation, at the node's first send for it), or leave the struct alone and drive the
//! attack from a test with [`Cluster::inject`] (a message sent as if from any node).

use super::Cluster;
use crate::engine::certificate::sign_manifest_accept;
use crate::engine::Identity;
use crate::ids::{ComputationId, GroupId, NodeId, Position};
use crate::limits::MAX_AGREE_ROUNDS;
use crate::message::{Body, Manifest, Message, SignedAccept, VoteMsg};
use crate::plan::Plan;
use std::collections::BTreeSet;

/// How one Byzantine node lies. `Default` is honest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Byzantine {
    /// Vote poisoning: at its first send of a computation, the node votes, for every round
    /// `0..MAX_AGREE_ROUNDS` of every group it is a candidate of, for an empty manifest, to the
    /// member leading that round.
    pub pre_vote: bool,
    /// As a round leader, it proposes a manifest of one (the first item of its honest
    /// proposal), and every report it sends claims that manifest as accepted and adopted.
    pub manifest_of_one: bool,
    /// It drops every message it would send (a silent member that looks alive: sends to it
    /// never come back undelivered).
    pub withhold: bool,
    /// It sends different things to different receivers: its proposals, votes and reports go
    /// out honest to receivers at even node indices, and to the others as `manifest_of_one`
    /// sends them (a manifest of one, claimed as accepted and adopted).
    pub equivocate: bool,
    /// As a root member, its release shares to the commissioner are off by one at every
    /// element (a share not on the polynomial of the others).
    pub bad_root_share: bool,
    /// As `manifest_of_one`, with the empty manifest in place of the manifest of one: in a leaf,
    /// the stand-in for a manifest of one (`manifest::alone`), which drops every contributor.
    pub propose_empty: bool,
    /// Every report it sends claims the items it holds as adopted (in a leaf of one
    /// contributor: a manifest of that contributor alone, which no position may sum).
    pub claim_held: bool,
    /// Every vote it sends carries a signature that does not verify for that vote: its own
    /// signature of the same vote in the next round (a well-formed signature, by the right key,
    /// of something else). A leader that counted it would put it in its certificate, and every
    /// position would refuse the certificate.
    pub bad_vote_signature: bool,
}

impl Byzantine {
    /// Every attack at once.
    pub fn all() -> Byzantine {
        Byzantine {
            pre_vote: true,
            manifest_of_one: true,
            withhold: false,
            equivocate: true,
            bad_root_share: true,
            propose_empty: false,
            claim_held: false,
            bad_vote_signature: false,
        }
    }

    pub fn is_honest(&self) -> bool {
        *self == Byzantine::default()
    }

    /// What the node sends to `to_index` instead of `message` (`None`: nothing). Public for
    /// the simulator's Byzantine mode, which lies the same way over its node indices.
    pub fn rewrite(&self, to_index: usize, message: &Message) -> Option<Message> {
        if self.withhold {
            return None;
        }
        let mut m = message.clone();
        let one =
            self.manifest_of_one || self.propose_empty || (self.equivocate && to_index % 2 == 1);
        let lie = |m: &Manifest| {
            if self.propose_empty {
                Manifest { items: Vec::new() }
            } else {
                of_one(m)
            }
        };
        match &mut m.body {
            Body::Manifest(p) if one => p.manifest = lie(&p.manifest),
            Body::Vote(v) if one => v.manifest = lie(&v.manifest),
            Body::Report(r) if self.claim_held => {
                let mut items = r.items.clone();
                items.sort();
                r.adopted = Some(Manifest { items });
            }
            Body::Report(r) if one => {
                if let Some((_, accepted)) = r.accepted.as_mut() {
                    *accepted = lie(accepted);
                }
                if let Some(adopted) = r.adopted.as_mut() {
                    *adopted = lie(adopted);
                } else if let Some((_, accepted)) = &r.accepted {
                    r.adopted = Some(accepted.clone());
                }
            }
            Body::ReleaseShare(s) if self.bad_root_share => {
                for x in s.share.0.iter_mut() {
                    *x += crate::field::Fp::ONE;
                }
            }
            _ => {}
        }
        Some(m)
    }

    /// Messages the node adds at its first send of `computation` (as `(receiver, message)`).
    pub fn on_first_send(
        &self,
        me: NodeId,
        computation: ComputationId,
        plan: &Plan,
    ) -> Vec<(NodeId, Message)> {
        if !self.pre_vote || self.withhold {
            return Vec::new();
        }
        let mut out = Vec::new();
        for group in plan.groups() {
            let Some(position) = (1..=plan.g).find(|p| plan.candidates(group, *p).any(|c| c == me))
            else {
                continue;
            };
            let empty = Manifest { items: Vec::new() };
            let leaders: BTreeSet<(u32, NodeId)> = (0..MAX_AGREE_ROUNDS)
                .map(|r| (r, plan.member(group, (r % plan.g as u32) as u8 + 1)))
                .collect();
            for (round, leader) in leaders {
                if leader == me {
                    continue;
                }
                out.push((
                    leader,
                    Message {
                        computation,
                        round,
                        body: Body::Vote(VoteMsg {
                            group,
                            position,
                            manifest: empty.clone(),
                            serving: true,
                            signature: Vec::new(),
                        }),
                        to: None,
                    },
                ));
            }
        }
        out
    }
}

/// A liar signs what it sends with its own key, lies included: a vote it rewrote or sent ahead
/// carries its valid signature of what it names (`engine/certificate.rs`), so that the
/// defences are tested against signed lies, not refused for a stale signature. The simulator's
/// Byzantine mode calls it too.
pub fn sign_votes(identity: &Identity, m: &mut Message) {
    if let Body::Vote(v) = &mut m.body {
        v.signature = sign_manifest_accept(
            identity,
            &m.computation,
            v.group,
            m.round,
            &v.manifest,
            v.position,
            v.serving,
        )
        .signature;
    }
}

impl Byzantine {
    /// Signs the votes in `m` as this liar sends them: validly (`sign_votes`), or, with
    /// `bad_vote_signature`, with its signature of the same vote in the next round.
    pub fn sign(&self, identity: &Identity, m: &mut Message) {
        if !self.bad_vote_signature {
            return sign_votes(identity, m);
        }
        if let Body::Vote(v) = &mut m.body {
            v.signature = sign_manifest_accept(
                identity,
                &m.computation,
                v.group,
                m.round + 1,
                &v.manifest,
                v.position,
                v.serving,
            )
            .signature;
        }
    }
}

/// The first item of `m` alone (a manifest of one; empty stays empty).
fn of_one(m: &Manifest) -> Manifest {
    Manifest {
        items: m.items.iter().take(1).copied().collect(),
    }
}

impl Cluster {
    /// Node `i` lies as `b` says from now on (see [`Byzantine`]).
    pub fn byzantine(&mut self, i: usize, b: Byzantine) {
        if b.is_honest() {
            self.byzantine.remove(&i);
        } else {
            self.byzantine.insert(i, b);
        }
    }

    /// The Byzantine nodes and how they lie.
    pub fn byzantine_nodes(&self) -> impl Iterator<Item = (usize, &Byzantine)> {
        self.byzantine.iter().map(|(i, b)| (*i, b))
    }

    /// Node `i`'s signed accept of `manifest` in `round` of `group`, as a candidate of
    /// `position`: what a liar can sign itself (its own accepts of anything), for tests that
    /// forge adoption certificates.
    #[allow(clippy::too_many_arguments)]
    pub fn signed_accept(
        &self,
        i: usize,
        computation: ComputationId,
        group: GroupId,
        round: u32,
        manifest: &Manifest,
        position: Position,
        serving: bool,
    ) -> SignedAccept {
        sign_manifest_accept(
            &self.nodes[i].identity,
            &computation,
            group,
            round,
            manifest,
            position,
            serving,
        )
    }
}
