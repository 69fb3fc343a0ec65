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
//! Signatures are XEdDSA (Signal's scheme, deterministic nonce) under the node's static X25519
//! key, the one the signed directory already binds to its node id and the plan already holds:
//! no new key to distribute. The X25519 secret gives the Edwards key pair whose public point
//! has sign bit 0; the signature is an Ed25519 signature under that point, so
//! `ed25519-dalek` verifies it (`verify_strict`) once the verifier has turned the Montgomery
//! public key into that Edwards point.

use super::agreement::{acceptors, positions_needed, quorum};
use super::{version_of, Identity, Rejection};
use crate::ids::{hash_parts, ComputationId, Digest, GroupId, NodeId, Position};
use crate::limits::MAX_AGREE_ROUNDS;
use crate::message::{AdoptionCertificate, Manifest, SignedAccept};
use crate::plan::Plan;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::{clamp_integer, Scalar};
use sha2::{Digest as _, Sha512};
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
        signature: xeddsa_sign(secret, &msg).to_vec(),
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
        &me.x25519_secret,
        me.node,
        computation,
        group,
        round,
        &digest,
        position,
        serving,
    )
}

/// Whether `accept` is `accept.voter`'s signature (under its X25519 key `public`) of its accept
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
    xeddsa_verify(public, &msg, &accept.signature)
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
            .x25519_key(&a.voter)
            .ok_or(Rejection::AcceptSignatureInvalid)?;
        if !accept_verifies(&key, computation, group, cert.round, digest, a) {
            return Err(Rejection::AcceptSignatureInvalid);
        }
    }
    Ok(())
}

/// The Edwards key pair of an X25519 secret with the public point's sign bit 0 (XEdDSA's
/// `calculate_key_pair`): the scalar, negated if `k B` has sign bit 1, and the point's bytes.
fn key_pair(secret: &[u8; 32]) -> (Scalar, [u8; 32]) {
    let k = Scalar::from_bytes_mod_order(clamp_integer(*secret));
    let mut public = EdwardsPoint::mul_base(&k).compress().to_bytes();
    let negate = public[31] & 0x80 != 0;
    public[31] &= 0x7f;
    (if negate { -k } else { k }, public)
}

fn wide(h: Sha512) -> Scalar {
    let mut bytes = [0u8; 64];
    bytes.copy_from_slice(&h.finalize());
    Scalar::from_bytes_mod_order_wide(&bytes)
}

/// An XEdDSA signature of `msg` under the X25519 secret `secret` (`R || s`), with the nonce
/// derived from the secret scalar and the message (XEdDSA's `hash_1` prefix, without its
/// random input: the engine has no randomness, and a deterministic nonce is Ed25519's).
fn xeddsa_sign(secret: &[u8; 32], msg: &[u8]) -> [u8; 64] {
    let (a, public) = key_pair(secret);
    let mut h = Sha512::new();
    h.update([0xFE]);
    h.update([0xFF; 31]);
    h.update(a.as_bytes());
    h.update(msg);
    let r = wide(h);
    let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
    let mut h = Sha512::new();
    h.update(big_r);
    h.update(public);
    h.update(msg);
    let s = r + wide(h) * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&big_r);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

/// Verifies an XEdDSA signature against the X25519 public key `public`: the Edwards point of
/// sign bit 0 with that Montgomery `u`, then Ed25519's strict verification.
fn xeddsa_verify(public: &[u8; 32], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
        return false;
    };
    if public[31] & 0x80 != 0 {
        return false; // not a canonical u
    }
    let Some(point) = MontgomeryPoint(*public).to_edwards(0) else {
        return false;
    };
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&point.compress().to_bytes()) else {
        return false;
    };
    key.verify_strict(msg, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::x25519_public;

    #[test]
    fn a_signature_verifies_under_the_x25519_public_key_and_nothing_else() {
        for i in 0..32u8 {
            let secret = hash_parts("test/xeddsa", &[&[i]]);
            let public = x25519_public(&secret);
            let sig = xeddsa_sign(&secret, b"accept");
            assert!(xeddsa_verify(&public, b"accept", &sig), "key {i}");
            assert!(!xeddsa_verify(&public, b"accepT", &sig));
            let other = x25519_public(&hash_parts("test/xeddsa", &[&[i, 1]]));
            assert!(!xeddsa_verify(&other, b"accept", &sig));
            let mut bad = sig;
            bad[40] ^= 1;
            assert!(!xeddsa_verify(&public, b"accept", &bad));
            assert!(!xeddsa_verify(&public, b"accept", &sig[..63]));
        }
    }

    #[test]
    fn an_accept_is_bound_to_its_round_manifest_position_and_serving() {
        let secret = [9u8; 32];
        let public = x25519_public(&secret);
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
