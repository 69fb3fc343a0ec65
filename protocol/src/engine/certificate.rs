//! Adoption certificates: the evidence on which a position adopts its group's manifest on
//! another position's word.
//!
//! Every accept is signed by its acceptor (its vote to the round leader carries the
//! signature), and the leader that counted a quorum sends the accepts it counted with its
//! adopted report. A position adopts on a report only if that certificate holds accepts of
//! one round for that manifest from `q` distinct acceptors of the group and from the servers
//! of `positions_needed` distinct positions (the leader's own adoption rule), each signature
//! valid. Before, a position that could not vouch for a claim adopted on the word of two
//! positions, and two colluding members split their group that way; now a coalition of fewer
//! than `t` members cannot make a certificate, since it needs the accept of an honest position's
//! server, and an honest server accepts only its round leader's proposal after checking it
//! against what it holds.
//!
//! Signatures are Ed25519 (`ed25519-dalek`, verified with `verify_strict`) under the node's
//! libp2p identity key, the key its node id hashes; the directory snapshot lists it beside the
//! node's X25519 key, and the plan holds both.

use super::agreement::{acceptors, positions_needed, quorum};
use super::{version_of, Identity, Rejection};
use crate::ids::{hash_parts, ComputationId, Digest, GroupId, NodeId, Position};
use crate::limits::MAX_AGREE_ROUNDS;
use crate::message::{AdoptionCertificate, Manifest, SignedAccept};
use crate::plan::Plan;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::collections::BTreeSet;

/// What an acceptor signs: it accepted the manifest of version digest `digest` in `round`, as
/// a candidate of `position` (serving it or not).
fn accept_bytes(
    computation: &ComputationId,
    group: GroupId,
    round: u32,
    digest: &Digest,
    position: Position,
    serving: bool,
) -> [u8; 32] {
    hash_parts(
        "grove/accept",
        &[
            &computation.0,
            &[group.level],
            &group.index.to_le_bytes(),
            &round.to_le_bytes(),
            &digest.0,
            &[position, serving as u8],
        ],
    )
}

/// This node's signed accept of the manifest of version digest `digest` in `round`.
#[allow(clippy::too_many_arguments)]
pub fn sign_accept(
    secret: &[u8; 32],
    voter: NodeId,
    computation: &ComputationId,
    group: GroupId,
    round: u32,
    digest: &Digest,
    position: Position,
    serving: bool,
) -> SignedAccept {
    let msg = accept_bytes(computation, group, round, digest, position, serving);
    SignedAccept {
        voter,
        position,
        serving,
        signature: SigningKey::from_bytes(secret).sign(&msg).to_vec(),
    }
}

/// `me`'s signed accept of `manifest` (its version digest in `group`) in `round`, as a
/// candidate of `position`: what an acceptor sends with its vote, and what the harness's liars
/// sign for the lies they send.
#[allow(clippy::too_many_arguments)]
pub fn sign_manifest_accept(
    me: &Identity,
    computation: &ComputationId,
    group: GroupId,
    round: u32,
    manifest: &Manifest,
    position: Position,
    serving: bool,
) -> SignedAccept {
    let digest = version_of(computation, group, manifest).digest;
    sign_accept(
        &me.ed25519_secret,
        me.node,
        computation,
        group,
        round,
        &digest,
        position,
        serving,
    )
}

/// Whether `accept` is `accept.voter`'s signature (under its Ed25519 key `public`) of its accept
/// of `digest` in `round`.
pub(super) fn accept_verifies(
    public: &[u8; 32],
    computation: &ComputationId,
    group: GroupId,
    round: u32,
    digest: &Digest,
    accept: &SignedAccept,
) -> bool {
    let msg = accept_bytes(
        computation,
        group,
        round,
        digest,
        accept.position,
        accept.serving,
    );
    let Ok(signature) = Signature::from_slice(&accept.signature) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(public) else {
        return false;
    };
    key.verify_strict(&msg, &signature).is_ok()
}

/// Whether these accepts (signatures not checked here) make a certificate: `q` distinct
/// acceptors, and `positions_needed` distinct positions whose member or serving backup
/// accepted. The leader adopts on the same count over the votes it verified on receipt.
pub(super) fn complete(plan: &Plan, group: GroupId, accepts: &[SignedAccept]) -> bool {
    let voters: BTreeSet<NodeId> = accepts.iter().map(|a| a.voter).collect();
    let positions: BTreeSet<Position> = accepts
        .iter()
        .filter(|a| a.serving || plan.member(group, a.position) == a.voter)
        .map(|a| a.position)
        .collect();
    voters.len() >= quorum(plan, group) && positions.len() >= positions_needed(plan.g, plan.t)
}

/// Checks a claimed adoption's certificate for the manifest of version digest `digest`: at
/// most one accept per acceptor of the group, each from a candidate of the position it names,
/// each signature valid, and enough of them (`complete`).
pub(super) fn check(
    plan: &Plan,
    computation: &ComputationId,
    group: GroupId,
    digest: &Digest,
    cert: &AdoptionCertificate,
) -> Result<(), Rejection> {
    if cert.round >= MAX_AGREE_ROUNDS {
        return Err(Rejection::RoundPastLimit);
    }
    if cert.accepts.len() > acceptors(plan, group).len() {
        return Err(Rejection::AdoptionUnproven);
    }
    let mut seen = BTreeSet::new();
    for a in &cert.accepts {
        if !(1..=plan.g).contains(&a.position)
            || !plan.candidates(group, a.position).any(|c| c == a.voter)
        {
            return Err(Rejection::NotFromPosition);
        }
        if !seen.insert(a.voter) {
            return Err(Rejection::AdoptionUnproven);
        }
    }
    // Counted first (cheap), verified after: a certificate too small costs no signature check.
    if !complete(plan, group, &cert.accepts) {
        return Err(Rejection::AdoptionUnproven);
    }
    for a in &cert.accepts {
        let key = plan
            .ed25519_key(&a.voter)
            .ok_or(Rejection::AcceptSignatureInvalid)?;
        if !accept_verifies(&key, computation, group, cert.round, digest, a) {
            return Err(Rejection::AcceptSignatureInvalid);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(secret: &[u8; 32]) -> [u8; 32] {
        SigningKey::from_bytes(secret).verifying_key().to_bytes()
    }

    #[test]
    fn an_accept_verifies_under_its_signers_key_and_no_other() {
        let id = ComputationId([1; 32]);
        let g = GroupId { level: 1, index: 0 };
        let d = Digest([5; 32]);
        for i in 0..8u8 {
            let secret = hash_parts("test/ed25519", &[&[i]]);
            let a = sign_accept(&secret, NodeId([3; 32]), &id, g, 2, &d, 4, true);
            assert!(
                accept_verifies(&public(&secret), &id, g, 2, &d, &a),
                "key {i}"
            );
            let other = public(&hash_parts("test/ed25519", &[&[i, 1]]));
            assert!(!accept_verifies(&other, &id, g, 2, &d, &a));
            let mut bad = a.clone();
            bad.signature[40] ^= 1;
            assert!(!accept_verifies(&public(&secret), &id, g, 2, &d, &bad));
            bad.signature = a.signature[..63].to_vec();
            assert!(!accept_verifies(&public(&secret), &id, g, 2, &d, &bad));
        }
    }

    #[test]
    fn an_accept_is_bound_to_its_round_manifest_position_and_serving() {
        let secret = [9u8; 32];
        let public = public(&secret);
        let id = ComputationId([1; 32]);
        let g = GroupId { level: 1, index: 0 };
        let d = Digest([5; 32]);
        let a = sign_accept(&secret, NodeId([3; 32]), &id, g, 2, &d, 4, true);
        assert!(accept_verifies(&public, &id, g, 2, &d, &a));
        assert!(!accept_verifies(&public, &id, g, 3, &d, &a));
        assert!(!accept_verifies(&public, &id, g, 2, &Digest([6; 32]), &a));
        let other_group = GroupId { level: 1, index: 1 };
        assert!(!accept_verifies(&public, &id, other_group, 2, &d, &a));
        for (position, serving) in [(3, true), (4, false)] {
            let b = SignedAccept {
                position,
                serving,
                ..a.clone()
            };
            assert!(!accept_verifies(&public, &id, g, 2, &d, &b));
        }
    }
}
