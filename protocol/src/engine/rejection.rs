//! Why the engine refuses a piece of input it did not make itself: a message that breaks the
//! protocol (the sender may be broken or hostile), or a persisted record that no longer fits.
//! The engine counts every refusal by its reason ([`crate::engine::Engine::rejections`]); a
//! driver shows the counts (the node's `grove status`).

use thiserror::Error;

/// One reason to refuse remote input. Fieldless, so that counts per reason are a small map
/// whose size is bounded by the number of variants.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rejection {
    // Who may send what.
    #[error("addressed to a position this node cannot serve")]
    NotServable,
    #[error("a position outside 1..=g")]
    PositionOutOfRange,
    #[error("not sent by a node serving its position")]
    NotFromPosition,
    #[error("not sent by the parent member at its target")]
    NotFromParent,
    #[error("not sent by the leader of its round")]
    NotFromLeader,
    #[error("not sent by the commissioner")]
    NotFromCommissioner,
    #[error("sent to a node that is not the commissioner")]
    NotTheCommissioner,
    #[error("about a group with no parent")]
    NoParent,
    #[error("for a role this node does not hold")]
    NoRole,
    #[error("for a group this node does not serve")]
    NotInGroup,
    #[error("for a group this node is no candidate of")]
    NotCandidate,
    #[error("for an unknown computation")]
    UnknownComputation,
    #[error("a share or decline from an identity outside the request's candidate set")]
    NotACandidate,
    #[error("a round past the limit")]
    RoundPastLimit,
    #[error("a beacon round that does not verify under the configured chain's key")]
    BadBeaconRound,
    // Contributions.
    #[error("share not sent by its contributor")]
    ShareNotFromContributor,
    #[error("share for a group that is not the contributor's leaf")]
    ShareForOtherLeaf,
    #[error("share arrived after collection ended")]
    ShareAfterCollection,
    #[error("leaf member is full")]
    LeafFull,
    #[error("sealed share does not open")]
    ShareDoesNotOpen,
    #[error("sealed share does not decode")]
    ShareDoesNotDecode,
    #[error("sealed share does not match its envelope")]
    ShareMismatch,
    #[error("decline for a group that is not the sender's leaf")]
    DeclineForOtherLeaf,
    #[error("share query to a node that did not contribute")]
    ShareQueryWithoutContribution,
    #[error("share query for another leaf group")]
    ShareQueryForOtherLeaf,
    #[error("share query from a node this contributor did not fail over to")]
    ShareQueryNotFailedOver,
    #[error("share query from a candidate answered less than a second ago")]
    ShareQueryTooSoon,
    // Partial sums.
    #[error("a vector of the wrong length")]
    WrongLength,
    #[error("partial covers more contributors than the request allows")]
    CountOverRequest,
    #[error("too many versions of one child")]
    TooManyVersions,
    // Agreement.
    #[error("report too long")]
    ReportTooLong,
    #[error("manifest too long")]
    ManifestTooLong,
    #[error("manifest items not sorted and unique")]
    ManifestUnsorted,
    #[error("manifest lists a contributor of another group")]
    ManifestForeignContributor,
    #[error("manifest lists a group that is not a child")]
    ManifestNotAChild,
    #[error("manifest lists two versions of one child")]
    ManifestTwoVersions,
    #[error("two manifests in one round")]
    ConflictingManifest,
    #[error("a vote for another manifest than its round leader's proposal")]
    VoteNotForProposal,
    #[error("a manifest that leaves out an item this position holds")]
    ManifestOmitsHeldItem,
    #[error("a promise naming an acceptance of a later round")]
    AcceptedRoundAhead,
    #[error("a claimed adoption without a certificate of accepts from a quorum and t positions")]
    AdoptionUnproven,
    #[error("an accept whose signature does not verify under its voter's key")]
    AcceptSignatureInvalid,
    // Heals.
    #[error("heal go must name exactly t distinct sorted helpers")]
    HealGoHelpers,
    #[error("heal go names a helper that cannot serve its position")]
    HealGoBadHelper,
    #[error("heal go does not name this member")]
    HealGoWithoutMe,
    #[error("heal go names another node for this position")]
    HealGoOtherNode,
    #[error("no key for a helper")]
    NoHelperKey,
    #[error("heal go names a helper node this member has not seen serving its position")]
    HealGoNotServing,
    #[error("heal go past the bound of answers per target")]
    HealGoOverBound,
    // Release.
    #[error("count share from this node's own position")]
    CountShareFromSelf,
    #[error("counts of the wrong number of cells")]
    WrongCellCount,
    #[error("cannot open the counts")]
    CountsDoNotOpen,
    #[error("malformed cell mask")]
    MalformedCellMask,
    #[error("release share does not match its cell mask")]
    ReleaseShareMismatch,
    #[error("release shares do not reconstruct")]
    ReleaseDoesNotOpen,
    #[error("bad commissioner key")]
    BadCommissionerKey,
    #[error("malformed finish signature")]
    MalformedFinishSignature,
    #[error("finish signature does not verify")]
    FinishSignatureInvalid,
    // Records and this node's own sends.
    #[error("record about a position outside the plan")]
    OutsidePlan,
    #[error("the plan of a recorded request cannot be rebuilt")]
    PlanUnavailable,
    #[error("cannot seal a share")]
    SealFailed,
    // Budgets (`engine/early.rs`, computation slots).
    #[error("the sender's early messages are over its quota")]
    EarlySenderFull,
    #[error("an early message dropped to make room")]
    EarlyEvicted,
    #[error("the commissioner holds its share of computation slots")]
    CommissionerOverQuota,
    #[error("untrusted commissioners hold their share of computation slots")]
    UntrustedOverQuota,
    // Validity proofs (`engine/validity.rs`).
    #[error("a contribution whose validity proof the leaf group rejected")]
    InvalidContribution,
    #[error("a share for a request whose query requires validity proofs none can make")]
    UnprovableRequest,
    #[error("a validity share that does not fit the request's statement or its commitments")]
    MalformedValidityShare,
    #[error("a verifier share for a contribution this member cannot place")]
    UnexpectedVerifierShare,
    #[error("a verifier share off the polynomial most of its leaf's verifier shares lie on")]
    WrongVerifierShare,
    #[error("verifier shares of a contribution that no polynomial of degree below t fits")]
    VerifierSharesDisagree,
}
