//! What travels between nodes. Every message carries its computation id and a round; what a
//! round means depends on the body (the agreement round for reports and manifests, the attempt
//! for heals, zero otherwise).

use crate::field::FieldVec;
use crate::ids::{ComputationId, Digest, GroupId, NodeId, Position, Version};
use crate::request::SignedRequest;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub computation: ComputationId,
    pub round: u32,
    pub body: Body,
    /// The position the message is for, when it is for a position of the plan rather than a
    /// node (a backup that serves the position receives it when the member is unreachable).
    pub to: Option<Slot>,
}

/// One position of one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Slot {
    pub group: GroupId,
    pub position: Position,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// A signed computation request, spread to every node.
    Request(Box<SignedRequest>),
    /// A contributor's share for one position of its leaf group, sealed to that member.
    Share(ShareMsg),
    /// A leaf position's server (a backup that took over) asks a contributor the manifest
    /// names to send its share for that position again, sealed to the asker.
    ShareQuery(ShareQueryMsg),
    /// A member's partial sum, sent to the same position of the parent group.
    Partial(PartialMsg),
    /// A member's report of what it holds, sent to the leader of the round.
    Report(ReportMsg),
    /// A new leader asks every acceptor to promise its round and report (Paxos' prepare).
    Solicit(SolicitMsg),
    /// The leader's proposal of the round: the manifest it asks every acceptor to accept
    /// (Paxos' accept request). The leader accepted it itself before sending.
    Manifest(ManifestMsg),
    /// A parent member that misses a child's partial sum asks the child's members for help.
    HealQuery(HealQueryMsg),
    /// A child member's answer: the version it can heal from.
    HealOffer(HealOfferMsg),
    /// The parent member picks `t` helpers and a version for one attempt.
    HealGo(HealGoMsg),
    /// One helper's masked Lagrange term.
    HealPart(HealPartMsg),
    /// A root member tells the commissioner which version and count it holds.
    RootReady(RootReadyMsg),
    /// The commissioner asks a root member for its share of the chosen version.
    ReleaseAsk(ReleaseAskMsg),
    /// A commissioner that restarted asks the root positions to report their version again.
    RootQuery,
    /// A root member's share of the result, sent only to the commissioner.
    ReleaseShare(ReleaseShareMsg),
    /// The commissioner's signed note that the computation is over.
    Finish(FinishMsg),
    /// An acceptor (a candidate of the group) accepted the round's manifest; sent to the
    /// round's leader, which adopts the manifest once a majority of acceptors voted for it in
    /// one round and then tells every other position.
    Vote(VoteMsg),
    /// A node that will not contribute (its owner declined, or it holds no matching records)
    /// tells each member of its leaf group, so that the leaf stops collecting once every node
    /// the directory maps to it has either sent its shares or declined.
    Decline(DeclineMsg),
    /// A member that holds every item of its group sends its partial sum over them to the same
    /// position of the parent as soon as it reports, before agreement, sealed under a key only
    /// the sender knows (`seal::seal_ahead`): the parent keeps it aside unopened, and opens and
    /// counts it only once a confirm names the same version and reveals that key.
    PartialAhead(PartialMsg),
    /// The group adopted the version of the partial sent ahead: the key opens it and the parent
    /// counts it as held.
    PartialConfirm(PartialConfirmMsg),
    /// A root member's share of the cells' counts (the indicator elements of its sum, nothing
    /// else), sent to every other root position: `t` of them open the counts, from which each
    /// root member decides which cells it releases.
    CountShare(CountShareMsg),
    /// A contributor's shares of its validity proof for one position of its leaf group, sealed
    /// to that member like its share (`ShareMsg::sealed` holds postcard(`ValidityPayload`)).
    ValidityShare(ShareMsg),
    /// A leaf member's verifier share of one contributor's proof, sent to every other position
    /// of the leaf: `t` of them decide whether the contribution may enter a manifest.
    VerifierShare(VerifierShareMsg),
}

/// The plaintext inside a sealed validity share: one share of each part of the statement
/// (`engine/validity.rs`), elements of prio's `Field64` (the integers of `Fp`) as 8 fixed
/// little-endian bytes each (`FieldVec`; a varint `u64` took 9.5 bytes for a uniform element).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidityPayload {
    pub computation: ComputationId,
    pub group: GroupId,
    pub position: Position,
    pub contributor: NodeId,
    pub parts: Vec<ValidityPart>,
}

/// One member's share of one proven part (`crate::validity::MemberShare`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidityPart {
    pub share: ValidityShare,
    pub blind: [u8; 32],
    pub commitments: Vec<[u8; 32]>,
    pub proof_commitments: Vec<[u8; 32]>,
}

/// A member's input and proof shares as they travel (`engine/validity.rs`). The elements of
/// the input share that the member's aggregated share gives (`CircuitType::tied`) never
/// travel: it writes them itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ValidityShare {
    /// Positions `1..t-1`: the seed the input and proof shares expand from
    /// (`validity::expand_seed_share`), as plain shares send seeds to `t - 1` positions.
    Seed([u8; 32]),
    /// The other positions: the input share without its tied elements, and the proof share.
    Full { input: FieldVec, proof: FieldVec },
}

/// A leaf member's verifier shares of the contributors it evaluated since its last such
/// message to the group (`engine/validity.rs`, "Batching"): one message per peer position
/// carries many contributors, instead of one acknowledged message per contributor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifierShareMsg {
    pub group: GroupId,
    /// The sender's position.
    pub position: Position,
    /// At most `limits::MAX_CONTRIBUTORS_PER_LEAF` entries, `limits::MAX_VERIFIER_BATCH_LEN`
    /// verifier elements in all.
    pub entries: Vec<VerifierEntry>,
}

/// One contributor's verifier share in a [`VerifierShareMsg`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifierEntry {
    pub contributor: NodeId,
    /// One verifier share per proven part (exactly one since the engine proves the query's
    /// whole circuit at once, `limits::MAX_VALIDITY_PARTS`), with the digest of the
    /// commitments it used.
    pub parts: Vec<(Vec<u64>, [u8; 32])>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CountShareMsg {
    /// The root position whose share this is.
    pub position: Position,
    /// The digest of the root's adopted version.
    pub version: Digest,
    /// The sender's share of each cell's indicator sum, in cell order.
    pub counts: FieldVec,
    /// The sender lacks the counts (it restarted, or shares were lost): answer with yours.
    pub ask: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartialConfirmMsg {
    pub child: GroupId,
    pub position: Position,
    pub version: Version,
    /// The key that opens the partial of `version` sent ahead (`seal::ahead_key`); the key of
    /// a version the group did not adopt is never sent.
    pub key: [u8; 32],
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeclineMsg {
    /// The sender's leaf group.
    pub group: GroupId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShareMsg {
    pub group: GroupId,
    pub position: Position,
    pub contributor: NodeId,
    /// `seal::seal` of postcard(`SharePayload`).
    pub sealed: Vec<u8>,
}

/// The plaintext inside a sealed share.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SharePayload {
    pub computation: ComputationId,
    pub group: GroupId,
    pub position: Position,
    pub contributor: NodeId,
    pub share: crate::sharing::CompressedShare,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShareQueryMsg {
    pub group: GroupId,
    pub position: Position,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartialMsg {
    pub child: GroupId,
    pub position: Position,
    pub version: Version,
    pub sum: FieldVec,
}

/// An item a group can sum: a contributor's share (leaf groups) or a child's partial sum of
/// one version (inner groups).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Item {
    Contributor(NodeId),
    Child { group: GroupId, version: Version },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Sorted, no duplicates, at most one version per child.
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportMsg {
    pub group: GroupId,
    /// The position the sender is a candidate of.
    pub position: Position,
    /// The sender serves the position and `items` is what it holds; otherwise (a backup that
    /// is only an acceptor) the report is its promise alone and `items` is empty.
    pub serving: bool,
    pub items: Vec<Item>,
    /// The manifest this acceptor accepted last and its round, if any: a leader must propose
    /// the one of the highest round among a quorum of promises (Paxos' promise).
    pub accepted: Option<(u32, Manifest)>,
    /// The manifest this member adopted (a quorum accepted it in one round), if any: the
    /// receiver may adopt it at once, on the certificate below.
    pub adopted: Option<Manifest>,
    /// The evidence for `adopted`: the signed accepts of one round that made the round's
    /// leader adopt it (`engine/certificate.rs`). A claimed adoption without one is refused.
    pub certificate: Option<AdoptionCertificate>,
}

/// One acceptor's signed word that it accepted a manifest in a round, as the position it is a
/// candidate of (and whether it serves that position).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAccept {
    pub voter: NodeId,
    pub position: Position,
    pub serving: bool,
    /// 64 bytes: the voter's signature (`certificate::sign_accept`) under its X25519 key.
    pub signature: Vec<u8>,
}

/// The accepts of one round for one manifest, from a quorum of the group's acceptors and the
/// servers of `t` positions: what a position needs to adopt on another's word.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptionCertificate {
    pub round: u32,
    pub accepts: Vec<SignedAccept>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SolicitMsg {
    pub group: GroupId,
    pub leader: Position,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestMsg {
    pub group: GroupId,
    pub leader: Position,
    pub manifest: Manifest,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoteMsg {
    pub group: GroupId,
    /// The position the voter is a candidate of.
    pub position: Position,
    pub manifest: Manifest,
    /// The voter serves `position` (its member, or a backup that took it over).
    pub serving: bool,
    /// The voter's signature of its accept (`certificate::sign_accept`): the leader puts it
    /// in its adoption certificate.
    pub signature: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealQueryMsg {
    pub child: GroupId,
    pub target: Position,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealOfferMsg {
    pub child: GroupId,
    pub target: Position,
    pub helper: Position,
    pub version: Version,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealGoMsg {
    pub child: GroupId,
    pub target: Position,
    pub version: Digest,
    /// Exactly `t` distinct positions of the child group, sorted.
    pub helpers: Vec<Position>,
    /// The node serving each helper position (a member or a backup), for the pairwise masks.
    pub helper_nodes: Vec<NodeId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealPartMsg {
    pub child: GroupId,
    pub target: Position,
    pub helper: Position,
    pub version: Digest,
    pub value: FieldVec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RootReadyMsg {
    pub position: Position,
    pub version: Version,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReleaseAskMsg {
    pub version: Digest,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReleaseShareMsg {
    pub position: Position,
    pub version: Digest,
    /// Which cells the root member releases: bit `c % 8` of byte `c / 8` for cell `c`
    /// ([`cell_bits`]). A cell below `k_min` is withheld, and so is every element it governs.
    pub released: Vec<u8>,
    /// The member's share of the released elements only, in element order.
    pub share: FieldVec,
}

/// Packs one flag per cell into bits (cell `c` is bit `c % 8` of byte `c / 8`).
pub fn cell_bits(flags: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; flags.len().div_ceil(8)];
    for (c, f) in flags.iter().enumerate() {
        if *f {
            out[c / 8] |= 1 << (c % 8);
        }
    }
    out
}

/// Unpacks the flags of `cells` cells; `None` unless `bits` has exactly the bytes they need
/// and no bit set beyond them.
pub fn cell_flags(bits: &[u8], cells: usize) -> Option<Vec<bool>> {
    if bits.len() != cells.div_ceil(8) {
        return None;
    }
    let flags: Vec<bool> = (0..cells)
        .map(|c| bits[c / 8] & (1 << (c % 8)) != 0)
        .collect();
    (cell_bits(&flags) == bits).then_some(flags)
}

/// Signed by the commissioner over `hash_parts("grove/finish/v1", [computation id])`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinishMsg {
    pub signature: Vec<u8>,
}

impl Message {
    /// Checks every count and length against `limits` (the codec calls this after decoding).
    /// Vector lengths against the request's spec are checked by the engine.
    pub fn check_limits(&self) -> Result<(), String> {
        use crate::limits::*;
        let vec_ok = |v: &FieldVec| v.0.len() <= MAX_VECTOR_LEN as usize;
        let pos_ok = |p: Position| (1..=MAX_GROUP_SIZE).contains(&p);
        if self.to.is_some_and(|s| !pos_ok(s.position)) {
            return Err("message addressed to an invalid position".into());
        }
        let ok = match &self.body {
            Body::Request(r) => r.request.query.len() <= MAX_QUERY_BYTES && r.signature.len() == 64,
            Body::Share(m) => pos_ok(m.position) && m.sealed.len() <= MAX_MESSAGE_BYTES,
            Body::ShareQuery(m) => pos_ok(m.position),
            Body::Partial(m) | Body::PartialAhead(m) => pos_ok(m.position) && vec_ok(&m.sum),
            Body::PartialConfirm(m) => pos_ok(m.position),
            Body::Report(m) => {
                pos_ok(m.position)
                    && m.items.len() <= MAX_MANIFEST_ITEMS
                    && m.adopted
                        .as_ref()
                        .is_none_or(|a| a.items.len() <= MAX_MANIFEST_ITEMS)
                    && m.accepted
                        .as_ref()
                        .is_none_or(|(_, a)| a.items.len() <= MAX_MANIFEST_ITEMS)
            }
            Body::Solicit(m) => pos_ok(m.leader),
            Body::Manifest(m) => pos_ok(m.leader) && m.manifest.items.len() <= MAX_MANIFEST_ITEMS,
            Body::HealQuery(m) => pos_ok(m.target),
            Body::HealOffer(m) => pos_ok(m.target) && pos_ok(m.helper),
            Body::HealGo(m) => {
                pos_ok(m.target)
                    && m.helpers.len() <= MAX_GROUP_SIZE as usize
                    && m.helper_nodes.len() == m.helpers.len()
                    && m.helpers.iter().all(|p| pos_ok(*p))
            }
            Body::HealPart(m) => pos_ok(m.target) && pos_ok(m.helper) && vec_ok(&m.value),
            Body::RootReady(m) => pos_ok(m.position),
            Body::ReleaseAsk(_) | Body::RootQuery => true,
            Body::ReleaseShare(m) => {
                pos_ok(m.position)
                    && vec_ok(&m.share)
                    && m.released.len() <= (MAX_VECTOR_LEN as usize).div_ceil(8)
            }
            Body::CountShare(m) => pos_ok(m.position) && vec_ok(&m.counts),
            Body::Finish(m) => m.signature.len() == 64,
            Body::Vote(m) => pos_ok(m.position) && m.manifest.items.len() <= MAX_MANIFEST_ITEMS,
            Body::Decline(_) => true,
            Body::ValidityShare(m) => pos_ok(m.position) && m.sealed.len() <= MAX_MESSAGE_BYTES,
            Body::VerifierShare(m) => {
                pos_ok(m.position)
                    && m.entries.len() <= MAX_CONTRIBUTORS_PER_LEAF
                    && m.entries.iter().all(|e| {
                        e.parts.len() <= MAX_VALIDITY_PARTS
                            && e.parts.iter().all(|(v, _)| v.len() <= MAX_VERIFIER_LEN)
                    })
                    && m.entries
                        .iter()
                        .flat_map(|e| &e.parts)
                        .map(|(v, _)| v.len())
                        .sum::<usize>()
                        <= MAX_VERIFIER_BATCH_LEN
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!("{} message out of bounds", self.kind()))
        }
    }

    /// A short name of the body, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match &self.body {
            Body::Request(_) => "request",
            Body::Share(_) => "share",
            Body::ShareQuery(_) => "share-query",
            Body::Partial(_) => "partial",
            Body::Report(_) => "report",
            Body::Solicit(_) => "solicit",
            Body::Manifest(_) => "manifest",
            Body::HealQuery(_) => "heal-query",
            Body::HealOffer(_) => "heal-offer",
            Body::HealGo(_) => "heal-go",
            Body::HealPart(_) => "heal-part",
            Body::RootReady(_) => "root-ready",
            Body::ReleaseAsk(_) => "release-ask",
            Body::RootQuery => "root-query",
            Body::ReleaseShare(_) => "release-share",
            Body::Finish(_) => "finish",
            Body::Vote(_) => "vote",
            Body::Decline(_) => "decline",
            Body::PartialAhead(_) => "partial-ahead",
            Body::PartialConfirm(_) => "partial-confirm",
            Body::CountShare(_) => "count-share",
            Body::ValidityShare(_) => "validity-share",
            Body::VerifierShare(_) => "verifier-share",
        }
    }
}
