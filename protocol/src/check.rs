//! The checkers of a run, written once for the harness and the simulator (feature
//! `test-util`): privacy (no node other than the commissioner gathers `t` shares of one
//! contributor or subtree, and the commissioner gets no share of a cell below `k_min`),
//! agreement (the positions of a group adopt one manifest), exactness (the released sum is the
//! plaintext sum over the set its version names, and the released cells are those that count
//! `k_min`) and liveness (a computation none of whose groups lost more than `g - t` members
//! releases). Each checker says what is wrong; the driver decides where a violation goes (the
//! harness fails the result check or lists it, the simulator's report lists it).

use crate::encoding::ContributionSpec;
use crate::engine::Released;
use crate::field::{add_assign_vec, Fp};
use crate::ids::{ComputationId, Digest, GroupId, NodeId, Position, Version};
use crate::limits::MAX_GROUP_SIZE;
use crate::message::{Body, Item, Manifest, Message};
use crate::plan::Plan;
use std::collections::{BTreeSet, HashMap};

/// A subject whose shares must never gather `t` at one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    Contributor(ComputationId, NodeId),
    Subtree(ComputationId, GroupId, Digest),
}

/// What the receiver of `m` learns: a share of which subject, at which position. A release
/// share is the result when it reaches the commissioner (`to_commissioner`); anywhere else it
/// is a share of the root (`root`, asked only then).
pub fn learned(
    m: &Message,
    to_commissioner: bool,
    root: impl FnOnce() -> Option<GroupId>,
) -> Option<(Subject, Position)> {
    let c = m.computation;
    match &m.body {
        Body::Share(s) => Some((Subject::Contributor(c, s.contributor), s.position)),
        Body::Partial(p) => Some((Subject::Subtree(c, p.child, p.version.digest), p.position)),
        // A partial sent ahead is sealed under a key only its confirm reveals: the receiver
        // learns the point of the confirmed version then, and nothing of another version.
        Body::PartialAhead(_) => None,
        Body::PartialConfirm(p) => {
            Some((Subject::Subtree(c, p.child, p.version.digest), p.position))
        }
        Body::HealPart(h) => Some((Subject::Subtree(c, h.child, h.version), h.target)),
        Body::ReleaseShare(r) if !to_commissioner => {
            Some((Subject::Subtree(c, root()?, r.version), r.position))
        }
        _ => None,
    }
}

/// The privacy checker's memory: which positions of which subject each node held.
#[derive(Default)]
pub struct Holdings {
    /// Node index -> subject -> bit `p - 1` for position `p` (`p <= MAX_GROUP_SIZE`; no
    /// position lies outside, the engine refuses them).
    held: HashMap<usize, HashMap<Subject, u32>>,
}

impl Holdings {
    /// Node `node` now holds a share of `subject` at `position`; a violation once it holds
    /// `t` of them.
    pub fn hold(
        &mut self,
        node: usize,
        subject: Subject,
        position: Position,
        t: u8,
    ) -> Result<(), String> {
        if position == 0 || position > MAX_GROUP_SIZE {
            return Ok(());
        }
        let held = self
            .held
            .entry(node)
            .or_default()
            .entry(subject)
            .or_default();
        *held |= 1 << (position - 1);
        let count = held.count_ones();
        if count >= u32::from(t) {
            let positions: Vec<Position> = (1..=MAX_GROUP_SIZE)
                .filter(|p| *held & (1 << (p - 1)) != 0)
                .collect();
            return Err(format!(
                "node {node} holds {count} shares of {subject:?}: positions {positions:?}"
            ));
        }
        Ok(())
    }
}

/// A release share reaching the commissioner must carry no cell below `k_min`. `counts`: the
/// true count of each cell of the share's version (`None`: a version the checker never saw).
pub fn release_share(
    m: &Message,
    spec: &ContributionSpec,
    k_min: u64,
    counts: impl FnOnce(&Digest) -> Option<Vec<Fp>>,
) -> Vec<String> {
    let Body::ReleaseShare(r) = &m.body else {
        return Vec::new();
    };
    let Some(cells) = crate::message::cell_flags(&r.released, spec.cell_count()) else {
        return Vec::new();
    };
    let Some(counts) = counts(&r.version) else {
        return vec![format!(
            "a release share of an unknown version {:?} reached the commissioner",
            r.version
        )];
    };
    cells
        .iter()
        .zip(&counts)
        .enumerate()
        .filter(|(_, (released, count))| **released && !spec.cell_meets(**count, k_min))
        .map(|(c, (_, count))| {
            format!(
                "the commissioner received root position {}'s share of cell {c}, which counts {} contributors, below k_min = {k_min}",
                r.position,
                count.to_i64_centered()
            )
        })
        .collect()
}

/// The manifests adopted so far, by version, and the agreement checker: every position of a
/// group that adopts a manifest adopts the same one.
#[derive(Default)]
pub struct Versions {
    manifests: HashMap<Digest, Manifest>,
    adopted: HashMap<(ComputationId, GroupId), (Position, Digest)>,
}

impl Versions {
    /// Position `position` of `group` adopted `manifest` (of `version`): a violation if another
    /// position of the group adopted another one.
    pub fn adopt(
        &mut self,
        computation: ComputationId,
        group: GroupId,
        position: Position,
        version: &Version,
        manifest: Manifest,
    ) -> Result<(), String> {
        self.manifests.insert(version.digest, manifest);
        let (p0, first) = *self
            .adopted
            .entry((computation, group))
            .or_insert((position, version.digest));
        if first != version.digest {
            return Err(format!(
                "agreement: positions {p0} and {position} of {group:?} adopted different manifests ({first:?} and {:?})",
                version.digest
            ));
        }
        Ok(())
    }

    /// A version's manifest, known although no position adopted it (a partial sent ahead).
    pub fn know(&mut self, version: &Version, manifest: Manifest) {
        self.manifests.entry(version.digest).or_insert(manifest);
    }

    /// Contributors covered by a version, expanded through the manifests adopted.
    pub fn expand(&self, digest: &Digest) -> BTreeSet<NodeId> {
        let mut out = BTreeSet::new();
        let mut stack = vec![*digest];
        while let Some(d) = stack.pop() {
            if let Some(m) = self.manifests.get(&d) {
                for item in &m.items {
                    match item {
                        Item::Contributor(c) => {
                            out.insert(*c);
                        }
                        Item::Child { version, .. } => stack.push(version.digest),
                    }
                }
            }
        }
        out
    }
}

/// A version's count is the number of contributors it expands to.
pub fn count(version: &Version, included: usize) -> Result<(), String> {
    if included as u64 != version.count {
        return Err(format!(
            "version counts {} contributors but expands to {included}",
            version.count
        ));
    }
    Ok(())
}

/// The field sum of the vectors of `included` (`vector`: what each contributed, encoded; an
/// error names a contributor that should not be there).
pub fn sum_of(
    spec: &ContributionSpec,
    included: &BTreeSet<NodeId>,
    mut vector: impl FnMut(&NodeId) -> Result<Vec<Fp>, String>,
) -> Result<Vec<Fp>, String> {
    let mut sum = vec![Fp::ZERO; spec.length as usize];
    for c in included {
        add_assign_vec(&mut sum, &vector(c)?);
    }
    Ok(sum)
}

/// Exactness: the released cells are exactly those whose indicators sum to `k_min` over the
/// included set, and the released sum is that set's sum (`expected`, from [`sum_of`]) at every
/// released element.
pub fn exact(
    spec: &ContributionSpec,
    k_min: u64,
    released: &Released,
    mut expected: Vec<Fp>,
) -> Result<(), String> {
    let cells: Vec<bool> = spec
        .indicator_elements()
        .into_iter()
        .map(|e| spec.cell_meets(expected[e], k_min))
        .collect();
    if spec.released_elements(&cells) != released.released {
        return Err("released cells differ from the cells that count k_min".into());
    }
    for (x, open) in expected.iter_mut().zip(&released.released) {
        if !*open {
            *x = Fp::ZERO;
        }
    }
    if expected != released.sum {
        return Err(if spec.noise.is_some() {
            "released sum differs from the sum of the reported set's noisy vectors".into()
        } else {
            "released sum differs from the plaintext sum over the reported set".into()
        });
    }
    Ok(())
}

/// What contributor `c` must have shared: its `values` encoded, and for a request with
/// differential privacy plus exactly its own noise from the seed it persisted
/// (`dp::add_noise`), which must be the vector it persisted (`persisted`: its seed and vector).
pub fn contributed(
    spec: &ContributionSpec,
    c: &NodeId,
    values: &[f64],
    persisted: Option<&([u8; 32], Vec<Fp>)>,
) -> Result<Vec<Fp>, String> {
    let mut v = spec
        .encode(values)
        .map_err(|e| format!("cannot encode a contribution: {e}"))?;
    if let Some(noise) = &spec.noise {
        let Some((seed, vector)) = persisted else {
            return Err(format!("the result includes {c}, who persisted no vector"));
        };
        crate::dp::add_noise(&mut v, seed, noise);
        if v != *vector {
            return Err(format!(
                "differential privacy: {c} shared a vector other than its values plus its own noise"
            ));
        }
    }
    Ok(v)
}

/// Liveness: a computation that is over without a result is a violation if no group of `plan`
/// lost more than `g - t` members (`lost`: the member crashed at some time, which only makes the
/// premise harder to meet). `failure`: what the commissioner reported.
pub fn liveness(plan: &Plan, lost: impl Fn(&NodeId) -> bool, failure: &str) -> Option<String> {
    let tolerated = usize::from(plan.g - plan.t);
    let worst = plan
        .groups()
        .map(|group| plan.members(group).iter().filter(|m| lost(m)).count())
        .max()
        .unwrap_or(0);
    (worst <= tolerated).then(|| {
        format!(
            "liveness: no result although no group lost more than {tolerated} members (worst lost {worst}); {failure}"
        )
    })
}

/// Cap on the sums one node is tracked holding at one position of one computation (the checker
/// stops deriving past it; a run that reaches it is far outside what the harness builds).
const MAX_TRACKED_SUMS: usize = 256;

/// The privacy checker across versions and messages. A position `p` of a computation carries
/// points of one polynomial per set of contributors: a node that holds the point at `p` of the
/// sum over `A` and of the sum over `B ⊂ A` also holds, by subtraction, the point at `p` of the
/// sum over `A \ B`. Every such difference, and every single contributor's share, is a
/// *sensitive* combination: only its leaf group may ever hold `t` of its points. A coalition
/// the threat model allows holds fewer than `t` members of any one group (a node counts in
/// every group it is a candidate of); a sensitive combination is exposed when such a
/// coalition can pick `t` points of it: one node holds two of them, or two of its holders
/// share no group (the checker tests pairs: it would miss a coalition every two of whose
/// members share a group while all of them share none).
#[derive(Default)]
pub struct Combinations {
    /// (node, computation, position) -> the sums of contributor sets that node holds there.
    sums: HashMap<(usize, ComputationId, Position), BTreeSet<BTreeSet<NodeId>>>,
    /// (computation, sensitive set) -> position -> nodes holding its point there.
    sensitive: HashMap<(ComputationId, BTreeSet<NodeId>), HashMap<Position, BTreeSet<usize>>>,
    /// Sensitive combinations already reported (each once).
    flagged: BTreeSet<(ComputationId, BTreeSet<NodeId>)>,
}

impl Combinations {
    /// Node `node` learns the point at `position` of the sum over `set` (one contributor's share
    /// when `set` has one element). `groups(n)`: the groups node `n` is a candidate of; `t`:
    /// the threshold. Returns each exposure this makes possible.
    pub fn learn(
        &mut self,
        node: usize,
        computation: ComputationId,
        position: Position,
        set: BTreeSet<NodeId>,
        t: u8,
        groups: impl Fn(usize) -> BTreeSet<GroupId>,
    ) -> Vec<String> {
        if set.is_empty() || position == 0 {
            return Vec::new();
        }
        let held = self.sums.entry((node, computation, position)).or_default();
        if held.contains(&set) || held.len() >= MAX_TRACKED_SUMS {
            return Vec::new();
        }
        let mut sensitive = Vec::new();
        if set.len() == 1 {
            sensitive.push(set.clone());
        } else {
            // A difference with a sum held before: a combination no message carries.
            for other in held.iter().filter(|o| o.len() > 1) {
                if other.is_subset(&set) && other.len() < set.len() {
                    sensitive.push(set.difference(other).copied().collect());
                } else if set.is_subset(other) && set.len() < other.len() {
                    sensitive.push(other.difference(&set).copied().collect());
                }
            }
        }
        held.insert(set);
        let mut out = Vec::new();
        for s in sensitive {
            let key = (computation, s);
            self.sensitive
                .entry(key.clone())
                .or_default()
                .entry(position)
                .or_default()
                .insert(node);
            if self.flagged.contains(&key) {
                continue;
            }
            if let Some(how) = exposed(&self.sensitive[&key], t, &groups) {
                out.push(format!(
                    "a coalition below the threshold of every group can combine {t} points of the sum over {:?} of {:?}: {how}",
                    key.1, key.0
                ));
                self.flagged.insert(key);
            }
        }
        out
    }
}

/// Whether a coalition with fewer than `t` members in every group can pick `t` points of a
/// combination held as `holders` (position -> nodes); if so, how.
fn exposed(
    holders: &HashMap<Position, BTreeSet<usize>>,
    t: u8,
    groups: &impl Fn(usize) -> BTreeSet<GroupId>,
) -> Option<String> {
    if holders.len() < usize::from(t) || t < 2 {
        return None;
    }
    let mut positions: Vec<(&Position, &BTreeSet<usize>)> = holders.iter().collect();
    positions.sort();
    let mut seen: std::collections::BTreeMap<usize, Position> = std::collections::BTreeMap::new();
    for (p, nodes) in &positions {
        for n in *nodes {
            if let Some(q) = seen.insert(*n, **p) {
                return Some(format!("node {n} holds positions {q} and {p}"));
            }
        }
    }
    for (i, (p, a)) in positions.iter().enumerate() {
        for (q, b) in &positions[i + 1..] {
            for x in *a {
                for y in *b {
                    if groups(*x).is_disjoint(&groups(*y)) {
                        return Some(format!(
                            "node {x} (position {p}) and node {y} (position {q}) share no group, with {} positions held",
                            positions.len()
                        ));
                    }
                }
            }
        }
    }
    None
}
