//! What a node persists so that it can resume its roles after a crash.
//!
//! The engine emits a [`Record`] as [`crate::engine::Output::Persist`] *before* any send that
//! depends on it; the driver makes it durable before it performs a later send. An engine
//! rebuilt with [`crate::engine::Engine::restore`] from the records, in order, resumes every
//! role: it applies them through the same function the live engine uses, then re-sends what
//! its state implies (receivers ignore duplicates).

use crate::beacon::Randomness;
use crate::field::FieldVec;
use crate::ids::{ComputationId, Digest, GroupId, Micros, NodeId, Position, Version};
use crate::message::Manifest;
use crate::request::SignedRequest;
use crate::sharing::CompressedShare;
use crate::snapshot::DirectorySnapshot;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// This node accepted a request (as a possible contributor and for its aggregator roles).
    Accepted { request: Box<SignedRequest> },
    /// This node launched a request as its commissioner.
    Launched {
        request: Box<SignedRequest>,
        finish_signature: Vec<u8>,
    },
    /// This node contributes: the encoded vector and the seed of its sharing polynomial, so a
    /// re-sent share is identical to the first.
    Contribution {
        computation: ComputationId,
        seed: [u8; 32],
        vector: FieldVec,
    },
    /// A leaf member received a contributor's share.
    ShareHeld {
        computation: ComputationId,
        group: GroupId,
        position: Position,
        contributor: NodeId,
        share: CompressedShare,
    },
    /// An inner member received (or healed) a child's partial sum of one version.
    ChildHeld {
        computation: ComputationId,
        group: GroupId,
        position: Position,
        child: GroupId,
        version: Version,
        sum: FieldVec,
    },
    /// A member adopted its group's manifest; it sums exactly these items from now on.
    ManifestAdopted {
        computation: ComputationId,
        group: GroupId,
        position: Position,
        manifest: Manifest,
    },
    /// This node, a backup, took over a position after a sender found its member unreachable.
    Takeover {
        computation: ComputationId,
        group: GroupId,
        position: Position,
    },
    /// The commissioner reconstructed the result.
    Released {
        computation: ComputationId,
        version: Version,
        sum: FieldVec,
    },
    /// The computation is over for this node (finished or expired); its state can go.
    Closed {
        computation: ComputationId,
        deadline: Micros,
    },
    // Appended last so that the encoding of earlier records does not change.
    /// A member promised the agreement round `round` of its group: it accepts no manifest of
    /// an earlier round from now on.
    ManifestPromised {
        computation: ComputationId,
        group: GroupId,
        position: Position,
        round: u32,
    },
    /// A member accepted the manifest its group's leader proposed in `round` (which implies the
    /// promise of that round); a later leader that hears of it proposes it again.
    ManifestAccepted {
        computation: ComputationId,
        group: GroupId,
        position: Position,
        round: u32,
        manifest: Manifest,
    },
    /// A root member opened the counts of the cells of its adopted version (from `t` root
    /// members' shares of them): it releases exactly the cells that count `k_min`
    /// contributors, also after a restart.
    CountsOpened {
        computation: ComputationId,
        group: GroupId,
        position: Position,
        /// The digest of the version the counts are of.
        version: Digest,
        /// Each cell's indicator sum, in cell order.
        counts: FieldVec,
    },
    /// The directory snapshot the driver handed in with a request, recorded right before the
    /// request's `Accepted` or `Launched`: the plan is built from it, live and on restore.
    Directory {
        computation: ComputationId,
        snapshot: DirectorySnapshot,
    },
    /// The verified randomness of the beacon round the request names, recorded before its
    /// `Accepted` or `Launched`: the plan's seed is drawn from it, live and on restore.
    BeaconRound {
        computation: ComputationId,
        round: u64,
        randomness: Randomness,
    },
    /// A commissioner launched a request whose beacon round is not out yet: it broadcast the
    /// request and plans (then records `Launched`) when the round arrives, also after a restart.
    Launching {
        request: Box<SignedRequest>,
        finish_signature: Vec<u8>,
        snapshot: DirectorySnapshot,
    },
    /// A child member answered its `answered`-th heal go for `target`, a position of its
    /// parent (recorded before the answer goes out), so that the bound on answers per target
    /// (`MAX_HEAL_GO_ANSWERS`) survives a restart: a parent member cannot crash this member to
    /// ask for more masked terms.
    HealGoAnswered {
        computation: ComputationId,
        group: GroupId,
        position: Position,
        target: Position,
        answered: u32,
    },
    /// When this engine installed the request (recorded right after its `Accepted` or
    /// `Launched`), on its own clock: `agreement::round_in_reach` counts from it when it is
    /// before the request's `created_at` (the commissioner's clock), also after a restart.
    /// Without it (a log an older binary wrote) a restarted engine counts from its replay.
    RequestSeen {
        computation: ComputationId,
        at: Micros,
    },
}

impl Record {
    pub fn computation(&self) -> ComputationId {
        match self {
            Record::Accepted { request }
            | Record::Launched { request, .. }
            | Record::Launching { request, .. } => request.request.id,
            Record::Contribution { computation, .. }
            | Record::ShareHeld { computation, .. }
            | Record::ChildHeld { computation, .. }
            | Record::ManifestAdopted { computation, .. }
            | Record::ManifestPromised { computation, .. }
            | Record::ManifestAccepted { computation, .. }
            | Record::CountsOpened { computation, .. }
            | Record::Takeover { computation, .. }
            | Record::Released { computation, .. }
            | Record::Closed { computation, .. }
            | Record::Directory { computation, .. }
            | Record::BeaconRound { computation, .. }
            | Record::HealGoAnswered { computation, .. }
            | Record::RequestSeen { computation, .. } => *computation,
        }
    }
}
