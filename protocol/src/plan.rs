//! The tree plan: a deterministic function of the request, its seed and a set of candidates.
//!
//! Groups sit at `(level, index)`; level 0 holds the leaf groups and the top level the single
//! root group. Level `l + 1` has `ceil(groups(l) / fan_in)` groups and the parent of `(l, x)` is
//! `(l + 1, x / fan_in)`. Position `i` of group `(l, x)` has the flat index
//! `k = flat(l, x) * g + i - 1`; its member is the first candidate the plan has not used yet at
//! or after the point `H("grove/select/v1", seed, k)` of the id ring (the rule of
//! `Membership::select`, over the candidate set), visiting groups level by level and positions
//! in order; the next unused candidates on the ring are its ordered backups. A contributor's
//! leaf group is `H(seed, contributor id) mod leaf_groups`. The seed is [`request_seed`]: with a
//! beacon, a hash of the signed request and the randomness of the round it names.

use crate::beacon::{plan_seed, Randomness};
use crate::ids::{hash_parts, ComputationId, Digest, GroupId, NodeId, Position};
use crate::limits::{MAX_BACKUPS, MAX_CACHED_PLANS, MAX_PLAN_GROUPS};
use crate::membership::{ring_key, selection_point};
use crate::request::Request;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("the directory has too few peers for the plan: {needed} positions, found only {found} distinct peers")]
    NotEnoughPeers { needed: usize, found: usize },
    #[error("tree parameters are invalid: {0}")]
    InvalidTree(String),
    #[error("peer {0} has no keys in the directory")]
    MissingKey(NodeId),
    #[error("the directory snapshot {} the request names is not on this node", .0.unwrap_or_default())]
    NoSnapshot(Option<Digest>),
    #[error("the directory snapshot has digest {found}, not the {expected} the request names")]
    WrongSnapshot { expected: Digest, found: Digest },
}

/// The seed a request's plan is drawn from. With the randomness of the beacon round the
/// request names, `beacon::plan_seed` of the request's signing bytes (which cover the round
/// and the chain), so no one knew it when the request was signed. Without a beacon (a request
/// that names none, accepted only by engines configured without one) a hash of the request id,
/// which the commissioner chooses: such plans are steerable by grinding ids.
pub fn request_seed(request: &Request, randomness: Option<&Randomness>) -> [u8; 32] {
    match (&request.beacon, randomness) {
        (Some(beacon), Some(randomness)) => plan_seed(
            &request.signing_bytes(),
            &beacon.chain_hash,
            beacon.round,
            randomness,
        ),
        _ => hash_parts("grove/plan-seed/unbeaconed/v1", &[&request.id.0]),
    }
}

/// A peer's public keys as a directory snapshot lists them: the static X25519 key it receives
/// sealed shares under, and the Ed25519 key (its libp2p identity key, which its node id
/// hashes) it signs its accepts and votes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PeerKeys {
    pub x25519: [u8; 32],
    pub ed25519: [u8; 32],
}

/// The candidates a plan draws its members from: the node answers from the snapshot the
/// request names, the harness and the simulator from a global table.
pub trait PeerDirectory: Send + Sync {
    /// Visits every candidate once, in id order from the first at or after `point`, wrapping
    /// around (the id ring), until `visit` returns `false`.
    fn for_each_from(&self, point: &NodeId, visit: &mut dyn FnMut(NodeId) -> bool);
    /// A peer's public keys.
    fn keys(&self, node: &NodeId) -> Option<PeerKeys>;
    /// The static X25519 key a peer receives sealed shares under.
    fn x25519_key(&self, node: &NodeId) -> Option<[u8; 32]> {
        self.keys(node).map(|k| k.x25519)
    }
    /// The Ed25519 key a peer signs its accepts and votes with.
    fn ed25519_key(&self, node: &NodeId) -> Option<[u8; 32]> {
        self.keys(node).map(|k| k.ed25519)
    }
}

/// A directory held entirely in memory, sorted by id: a ring walk starts in `O(log n)`.
#[derive(Debug, Clone, Default)]
pub struct SortedDirectory {
    /// Sorted by id, unique.
    peers: Vec<(NodeId, PeerKeys)>,
}

impl SortedDirectory {
    pub fn new(mut peers: Vec<(NodeId, PeerKeys)>) -> SortedDirectory {
        peers.sort_by_key(|a| a.0);
        peers.dedup_by(|a, b| a.0 == b.0);
        SortedDirectory { peers }
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The peers and their keys, sorted by id.
    pub fn entries(&self) -> &[(NodeId, PeerKeys)] {
        &self.peers
    }
}

impl PeerDirectory for SortedDirectory {
    fn for_each_from(&self, point: &NodeId, visit: &mut dyn FnMut(NodeId) -> bool) {
        let start = self.peers.partition_point(|(id, _)| id < point);
        let (head, tail) = self.peers.split_at(start);
        for (id, _) in tail.iter().chain(head) {
            if !visit(*id) {
                return;
            }
        }
    }

    fn keys(&self, node: &NodeId) -> Option<PeerKeys> {
        self.peers
            .binary_search_by(|(id, _)| id.cmp(node))
            .ok()
            .map(|i| self.peers[i].1)
    }
}

/// Number of groups per level, leaves first, root last.
pub fn level_sizes(leaf_groups: u32, fan_in: u32) -> Result<Vec<u32>, PlanError> {
    if leaf_groups == 0 {
        return Err(PlanError::InvalidTree("no leaf groups".into()));
    }
    if fan_in < 2 {
        return Err(PlanError::InvalidTree("fan-in below 2".into()));
    }
    let mut sizes = vec![leaf_groups];
    let mut total = leaf_groups as u64;
    while *sizes.last().unwrap_or(&1) > 1 {
        let next = sizes[sizes.len() - 1].div_ceil(fan_in);
        total += next as u64;
        sizes.push(next);
    }
    if total > MAX_PLAN_GROUPS as u64 {
        return Err(PlanError::InvalidTree(format!(
            "{total} groups exceed the limit of {MAX_PLAN_GROUPS}"
        )));
    }
    if sizes.len() > u8::MAX as usize {
        return Err(PlanError::InvalidTree("tree too deep".into()));
    }
    Ok(sizes)
}

/// The tree of one computation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub computation: ComputationId,
    /// The seed positions and leaves are drawn from ([`request_seed`]).
    pub seed: [u8; 32],
    pub g: u8,
    pub t: u8,
    pub fan_in: u32,
    /// Groups per level, leaves first; the last level has one group, the root.
    pub level_sizes: Vec<u32>,
    /// Flat index of the first group of each level.
    level_offsets: Vec<u32>,
    /// `members[flat(group) * g + position - 1]`.
    members: Vec<NodeId>,
    backups_per_position: u8,
    /// `backups[(flat(group) * g + position - 1) * backups_per_position + k]`.
    backups: Vec<NodeId>,
    /// Keys of every member and backup. The maps keyed by node are only looked up,
    /// never iterated, so their order never reaches an output; hashing beats a B-tree's
    /// dozen 32-byte comparisons when a million engines share one plan.
    keys: HashMap<NodeId, PeerKeys>,
    /// Every (group, position) each peer holds, members only.
    roles: HashMap<NodeId, Vec<(GroupId, Position)>>,
    /// Every (group, position) each peer is a backup for.
    backup_roles: HashMap<NodeId, Vec<(GroupId, Position)>>,
    /// How many directory peers each leaf group serves (`leaf_of` over the whole directory):
    /// a leaf stops collecting once that many have sent shares or declined.
    leaf_sizes: Vec<u32>,
}

impl Plan {
    /// Builds the plan of `request` over the candidates of `directory`, drawn from `seed`
    /// ([`request_seed`]).
    pub fn build(
        request: &Request,
        seed: &[u8; 32],
        directory: &dyn PeerDirectory,
    ) -> Result<Plan, PlanError> {
        let g = request.privacy.g;
        let t = request.privacy.t;
        if t == 0 || t > g {
            return Err(PlanError::InvalidTree(format!("g = {g}, t = {t}")));
        }
        let backups_per_position = request.tree.backups.min(MAX_BACKUPS);
        let level_sizes = level_sizes(request.tree.leaf_groups, request.tree.fan_in)?;
        let mut level_offsets = Vec::with_capacity(level_sizes.len());
        let mut total = 0u32;
        for s in &level_sizes {
            level_offsets.push(total);
            total += s;
        }
        let positions = total as usize * g as usize;
        let mut used: HashSet<NodeId> = HashSet::with_capacity(positions);
        let mut members = Vec::with_capacity(positions);
        let mut backups = Vec::with_capacity(positions * backups_per_position as usize);
        let id = request.id;
        let point = |flat: u32, position: Position| {
            selection_point(
                seed,
                u64::from(flat) * u64::from(g) + u64::from(position) - 1,
            )
        };
        // The candidates on the ring re-keyed by this seed: where an identity sits (and so the
        // gap before it, which is its chance of being selected) is unknown until the round is
        // out, so no one can choose ids that sit after large gaps.
        let ring = Ring::new(seed, directory);
        for (level, &size) in level_sizes.iter().enumerate() {
            for index in 0..size {
                for position in 1..=g {
                    let key = point(level_offsets[level] + index, position);
                    let mut chosen = None;
                    ring.for_each_from(&key, &mut |peer| {
                        if used.contains(&peer) {
                            return true;
                        }
                        chosen = Some(peer);
                        false
                    });
                    let Some(member) = chosen else {
                        return Err(PlanError::NotEnoughPeers {
                            needed: positions,
                            found: used.len(),
                        });
                    };
                    used.insert(member);
                    members.push(member);
                }
            }
        }
        // Backups: the next closest peers to each position's key that are not members or
        // backups of the same group, nor members of its parent or children (so serving a
        // position never hands a node a second share of one subject). Peers that are members
        // nowhere are preferred; backups are listed, not reserved.
        let flat_of = |gr: GroupId| (level_offsets[gr.level as usize] + gr.index) as usize;
        let members_of =
            |gr: GroupId| &members[flat_of(gr) * g as usize..(flat_of(gr) + 1) * g as usize];
        for (level, &size) in level_sizes.iter().enumerate() {
            for index in 0..size {
                let group = GroupId {
                    level: level as u8,
                    index,
                };
                let mut excluded: HashSet<NodeId> = members_of(group).iter().copied().collect();
                if level + 1 < level_sizes.len() {
                    let parent = GroupId {
                        level: group.level + 1,
                        index: index / request.tree.fan_in,
                    };
                    excluded.extend(members_of(parent).iter().copied());
                }
                if level > 0 {
                    let below = level_sizes[level - 1];
                    let start = index * request.tree.fan_in;
                    for child in start..(start + request.tree.fan_in).min(below) {
                        let child = GroupId {
                            level: group.level - 1,
                            index: child,
                        };
                        excluded.extend(members_of(child).iter().copied());
                    }
                }
                for position in 1..=g {
                    let key = point(flat_of(group) as u32, position);
                    let want = backups_per_position as usize;
                    let mut alternates: Vec<NodeId> = Vec::with_capacity(want);
                    for allow_members in [false, true] {
                        if alternates.len() >= want {
                            break;
                        }
                        ring.for_each_from(&key, &mut |peer| {
                            if excluded.contains(&peer)
                                || (!allow_members && used.contains(&peer))
                                || alternates.contains(&peer)
                            {
                                return true;
                            }
                            alternates.push(peer);
                            alternates.len() < want
                        });
                    }
                    // A small network may not have enough eligible peers: the position then
                    // gets fewer backups (the list is padded with the member, which
                    // `candidates` skips).
                    excluded.extend(alternates.iter().copied());
                    let member = members[flat_of(group) * g as usize + position as usize - 1];
                    alternates.resize(want, member);
                    backups.extend(alternates);
                }
            }
        }
        let mut keys = HashMap::new();
        for peer in members.iter().chain(backups.iter()) {
            if !keys.contains_key(peer) {
                let key = directory.keys(peer).ok_or(PlanError::MissingKey(*peer))?;
                keys.insert(*peer, key);
            }
        }
        let mut roles: HashMap<NodeId, Vec<(GroupId, Position)>> = HashMap::new();
        for (flat, chunk) in members.chunks(g as usize).enumerate() {
            let group = group_of_flat(&level_offsets, &level_sizes, flat as u32);
            for (i, peer) in chunk.iter().enumerate() {
                roles.entry(*peer).or_default().push((group, i as u8 + 1));
            }
        }
        let mut backup_roles: HashMap<NodeId, Vec<(GroupId, Position)>> = HashMap::new();
        if backups_per_position > 0 {
            for (slot, chunk) in backups.chunks(backups_per_position as usize).enumerate() {
                let group = group_of_flat(&level_offsets, &level_sizes, (slot / g as usize) as u32);
                let position = (slot % g as usize) as u8 + 1;
                for peer in chunk {
                    backup_roles
                        .entry(*peer)
                        .or_default()
                        .push((group, position));
                }
            }
        }
        let mut plan = Plan {
            computation: id,
            seed: *seed,
            g,
            t,
            fan_in: request.tree.fan_in,
            level_sizes,
            level_offsets,
            members,
            backups_per_position,
            backups,
            keys,
            roles,
            backup_roles,
            leaf_sizes: Vec::new(),
        };
        let mut leaf_sizes = vec![0u32; plan.level_sizes[0] as usize];
        directory.for_each_from(&NodeId([0u8; 32]), &mut |peer| {
            leaf_sizes[plan.leaf_of(&peer).index as usize] += 1;
            true
        });
        plan.leaf_sizes = leaf_sizes;
        Ok(plan)
    }

    /// How many directory peers a leaf group serves (0 for a group that is not a leaf).
    pub fn leaf_size(&self, group: GroupId) -> u32 {
        if group.level != 0 {
            return 0;
        }
        self.leaf_sizes
            .get(group.index as usize)
            .copied()
            .unwrap_or(0)
    }

    pub fn depth(&self) -> u8 {
        self.level_sizes.len() as u8
    }

    pub fn root(&self) -> GroupId {
        GroupId {
            level: self.depth() - 1,
            index: 0,
        }
    }

    pub fn is_root(&self, group: GroupId) -> bool {
        group == self.root()
    }

    pub fn leaf_groups(&self) -> u32 {
        self.level_sizes[0]
    }

    /// Whether `group` exists in this plan.
    pub fn contains(&self, group: GroupId) -> bool {
        (group.level as usize) < self.level_sizes.len()
            && group.index < self.level_sizes[group.level as usize]
    }

    fn flat(&self, group: GroupId) -> usize {
        (self.level_offsets[group.level as usize] + group.index) as usize
    }

    /// The member at `position` (1-based) of `group`. Callers check `contains` and the
    /// position range first.
    pub fn member(&self, group: GroupId, position: Position) -> NodeId {
        self.members[self.flat(group) * self.g as usize + position as usize - 1]
    }

    /// All members of `group`, position 1 first.
    pub fn members(&self, group: GroupId) -> &[NodeId] {
        let start = self.flat(group) * self.g as usize;
        &self.members[start..start + self.g as usize]
    }

    /// The ordered backups of one position (in a small network, padded with the member itself:
    /// use [`Plan::candidates`] to walk who may serve a position).
    pub fn backups(&self, group: GroupId, position: Position) -> &[NodeId] {
        let b = self.backups_per_position as usize;
        let start = (self.flat(group) * self.g as usize + position as usize - 1) * b;
        &self.backups[start..start + b]
    }

    /// Who may serve a position, in order: the member, then its backups.
    pub fn candidates(
        &self,
        group: GroupId,
        position: Position,
    ) -> impl Iterator<Item = NodeId> + '_ {
        let member = self.member(group, position);
        std::iter::once(member).chain(
            self.backups(group, position)
                .iter()
                .copied()
                .filter(move |b| *b != member),
        )
    }

    /// The rank of `node` among the candidates of a position (0 for the member).
    pub fn candidate_rank(
        &self,
        group: GroupId,
        position: Position,
        node: &NodeId,
    ) -> Option<usize> {
        if !self.contains(group) || position == 0 || position > self.g {
            return None;
        }
        self.candidates(group, position).position(|c| c == *node)
    }

    /// The positions `node` is a backup for.
    pub fn backup_roles_of(&self, node: &NodeId) -> &[(GroupId, Position)] {
        self.backup_roles
            .get(node)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn x25519_key(&self, node: &NodeId) -> Option<[u8; 32]> {
        self.keys.get(node).map(|k| k.x25519)
    }

    /// The Ed25519 key `node` signs its accepts and votes with.
    pub fn ed25519_key(&self, node: &NodeId) -> Option<[u8; 32]> {
        self.keys.get(node).map(|k| k.ed25519)
    }

    /// The (group, position) pairs `node` holds, in plan order.
    pub fn roles_of(&self, node: &NodeId) -> &[(GroupId, Position)] {
        self.roles.get(node).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The parent of a group of this plan (`None` for the root and for groups outside the plan).
    pub fn parent(&self, group: GroupId) -> Option<GroupId> {
        if self.is_root(group) || !self.contains(group) {
            None
        } else {
            Some(GroupId {
                level: group.level + 1,
                index: group.index / self.fan_in,
            })
        }
    }

    /// Children of an inner group, in index order (empty for a leaf group).
    pub fn children(&self, group: GroupId) -> Vec<GroupId> {
        if group.level == 0 || !self.contains(group) {
            return Vec::new();
        }
        let below = self.level_sizes[group.level as usize - 1];
        let start = group.index * self.fan_in;
        let end = (start + self.fan_in).min(below);
        (start..end)
            .map(|index| GroupId {
                level: group.level - 1,
                index,
            })
            .collect()
    }

    /// Whether `child` is a child of `group`.
    pub fn is_child_of(&self, child: GroupId, group: GroupId) -> bool {
        self.contains(child) && self.parent(child) == Some(group)
    }

    /// The leaf group a contributor sends its shares to.
    pub fn leaf_of(&self, contributor: &NodeId) -> GroupId {
        let h = hash_parts("grove/leaf", &[&self.seed, &contributor.0]);
        let x = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        GroupId {
            level: 0,
            index: (x % self.level_sizes[0] as u64) as u32,
        }
    }

    /// Every group, leaves first.
    pub fn groups(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.level_sizes
            .iter()
            .enumerate()
            .flat_map(|(level, &size)| {
                (0..size).map(move |index| GroupId {
                    level: level as u8,
                    index,
                })
            })
    }
}

/// The candidates in the order of their ring keys under one seed (`membership::ring_key`).
struct Ring {
    /// Sorted by key.
    keys: Vec<(NodeId, NodeId)>,
}

impl Ring {
    fn new(seed: &[u8; 32], directory: &dyn PeerDirectory) -> Ring {
        let mut keys = Vec::new();
        directory.for_each_from(&NodeId([0u8; 32]), &mut |peer| {
            keys.push((ring_key(seed, &peer), peer));
            true
        });
        keys.sort_unstable();
        Ring { keys }
    }

    /// Visits every candidate once, from the first whose key is at or after `point`, wrapping
    /// around, until `visit` returns `false`.
    fn for_each_from(&self, point: &NodeId, visit: &mut dyn FnMut(NodeId) -> bool) {
        let start = self.keys.partition_point(|(key, _)| key < point);
        let (head, tail) = self.keys.split_at(start);
        for (_, peer) in tail.iter().chain(head) {
            if !visit(*peer) {
                return;
            }
        }
    }
}

fn group_of_flat(offsets: &[u32], sizes: &[u32], flat: u32) -> GroupId {
    let level = offsets.partition_point(|&o| o <= flat) - 1;
    debug_assert!(flat - offsets[level] < sizes[level]);
    GroupId {
        level: level as u8,
        index: flat - offsets[level],
    }
}

/// A memoised plan's key: the computation, the snapshot's digest and the seed.
type PlanKey = (ComputationId, Digest, [u8; 32]);

/// Builds each computation's plan once per directory snapshot: a memo of a pure function
/// (no IO), that the engines of one process (the harness, the simulator) may share; a node's
/// engine holds its own. Past [`MAX_CACHED_PLANS`] the plan with the smallest key goes (it is
/// built again from the same snapshot if it is asked for again; engines keep their own `Arc`).
#[derive(Default)]
pub struct PlanCache {
    plans: Mutex<BTreeMap<PlanKey, Arc<Plan>>>,
}

impl PlanCache {
    /// The plan of `request` from `seed` over `directory`, whose digest is `digest` (the key
    /// of the memo with the id and the seed: a `snapshot::DirectorySnapshot` carries both).
    /// The caller checks that it is the directory the request names, if it names one.
    pub fn plan(
        &self,
        request: &Request,
        seed: &[u8; 32],
        digest: Digest,
        directory: &dyn PeerDirectory,
    ) -> Result<Arc<Plan>, PlanError> {
        let key = (request.id, digest, *seed);
        // A poisoned lock only means another thread panicked while inserting; the map itself
        // is still consistent (insertions are atomic), so recover it.
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(plan) = plans.get(&key) {
            return Ok(plan.clone());
        }
        let plan = Arc::new(Plan::build(request, seed, directory)?);
        if plans.len() >= MAX_CACHED_PLANS {
            if let Some(first) = plans.keys().next().copied() {
                plans.remove(&first);
            }
        }
        plans.insert(key, plan.clone());
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::sample_request as request;

    fn ids(n: usize) -> Vec<(NodeId, PeerKeys)> {
        (0..n)
            .map(|i| {
                (
                    NodeId(hash_parts("test", &[&(i as u64).to_le_bytes()])),
                    PeerKeys {
                        x25519: [i as u8; 32],
                        ed25519: [!(i as u8); 32],
                    },
                )
            })
            .collect()
    }

    #[test]
    fn ring_walk_visits_every_peer_once_from_the_point_on() {
        let dir = SortedDirectory::new(ids(500));
        for k in 0..20u64 {
            let point = NodeId(hash_parts("key", &[&k.to_le_bytes()]));
            let mut seen = Vec::new();
            dir.for_each_from(&point, &mut |id| {
                seen.push(id);
                true
            });
            assert_eq!(seen.len(), 500);
            // In ring order: ascending from the point, then ascending from the smallest id.
            let wrap = seen.windows(2).filter(|w| w[1] < w[0]).count();
            assert!(wrap <= 1);
            assert!(seen[0] >= point || seen.iter().all(|id| *id < point));
        }
    }

    fn seed(request: &Request) -> [u8; 32] {
        request_seed(request, None)
    }

    #[test]
    fn the_plan_is_deterministic_and_every_position_has_a_distinct_member() {
        let dir = SortedDirectory::new(ids(400));
        let req = request(3, 10, 3, 7, 5, 2);
        let a = Plan::build(&req, &seed(&req), &dir).unwrap();
        let b = Plan::build(
            &req,
            &seed(&req),
            &SortedDirectory::new(ids(400).into_iter().rev().collect()),
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.level_sizes, vec![10, 4, 2, 1]);
        let all: Vec<NodeId> = a.groups().flat_map(|g| a.members(g).to_vec()).collect();
        let distinct: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(all.len(), distinct.len());
        assert_eq!(all.len(), 17 * 7);
        // Another computation id gives another plan.
        assert_ne!(
            a.members(a.root()),
            Plan::build(
                &request(4, 10, 3, 7, 5, 2),
                &seed(&request(4, 10, 3, 7, 5, 2)),
                &dir
            )
            .unwrap()
            .members(a.root())
        );
    }

    #[test]
    fn backups_never_sit_in_the_same_group_its_parent_or_its_children() {
        let dir = SortedDirectory::new(ids(300));
        let plan = Plan::build(
            &request(5, 9, 3, 5, 3, 3),
            &seed(&request(5, 9, 3, 5, 3, 3)),
            &dir,
        )
        .unwrap();
        for group in plan.groups() {
            let mut near: Vec<NodeId> = plan.members(group).to_vec();
            if let Some(p) = plan.parent(group) {
                near.extend_from_slice(plan.members(p));
            }
            for c in plan.children(group) {
                near.extend_from_slice(plan.members(c));
            }
            let mut seen = std::collections::BTreeSet::new();
            for position in 1..=plan.g {
                let backups = plan.backups(group, position);
                assert_eq!(backups.len(), 3);
                for b in backups {
                    assert!(!near.contains(b), "{group:?} backup is a nearby member");
                    assert!(
                        seen.insert(*b),
                        "{group:?} backup listed twice in the group"
                    );
                    assert_eq!(
                        plan.candidate_rank(group, position, b).map(|r| r > 0),
                        Some(true)
                    );
                }
            }
        }
    }

    #[test]
    fn parents_children_and_leaves_are_consistent() {
        let dir = SortedDirectory::new(ids(300));
        let plan = Plan::build(
            &request(6, 11, 4, 3, 2, 1),
            &seed(&request(6, 11, 4, 3, 2, 1)),
            &dir,
        )
        .unwrap();
        for group in plan.groups() {
            for c in plan.children(group) {
                assert_eq!(plan.parent(c), Some(group));
                assert!(plan.is_child_of(c, group));
            }
            for (p, m) in plan.members(group).iter().enumerate() {
                assert!(plan.roles_of(m).contains(&(group, p as u8 + 1)));
            }
        }
        assert_eq!(plan.parent(plan.root()), None);
        for (id, _) in ids(50) {
            let leaf = plan.leaf_of(&id);
            assert_eq!(leaf.level, 0);
            assert!(leaf.index < plan.leaf_groups());
        }
    }

    #[test]
    fn a_small_network_gets_fewer_backups_not_an_error() {
        let dir = SortedDirectory::new(ids(12));
        let plan = Plan::build(
            &request(8, 2, 2, 3, 2, 2),
            &seed(&request(8, 2, 2, 3, 2, 2)),
            &dir,
        )
        .unwrap();
        for group in plan.groups() {
            for position in 1..=plan.g {
                let c: Vec<NodeId> = plan.candidates(group, position).collect();
                assert!(!c.is_empty() && c.len() <= 3);
                let distinct: std::collections::BTreeSet<_> = c.iter().collect();
                assert_eq!(distinct.len(), c.len());
            }
        }
        let root = plan.root();
        assert!((1..=plan.g).any(|p| plan.candidates(root, p).count() < 3));
    }

    #[test]
    fn too_few_peers_is_an_error_not_a_panic() {
        let dir = SortedDirectory::new(ids(20));
        assert!(matches!(
            Plan::build(
                &request(7, 8, 2, 5, 3, 1),
                &seed(&request(7, 8, 2, 5, 3, 1)),
                &dir
            ),
            Err(PlanError::NotEnoughPeers { .. })
        ));
    }

    #[test]
    fn level_sizes_shrink_to_one_root() {
        assert_eq!(level_sizes(512, 8).unwrap(), vec![512, 64, 8, 1]);
        assert_eq!(level_sizes(1, 8).unwrap(), vec![1]);
        assert_eq!(level_sizes(9, 8).unwrap(), vec![9, 2, 1]);
        assert!(level_sizes(0, 8).is_err());
        assert!(level_sizes(4, 1).is_err());
    }
}
