//! The manifest: the exact set of items a group sums, chosen by its leader as a deterministic
//! function of the members' reports, and the version that names it.
//!
//! Rule: with reports from at least `t` positions, keep for each child group only the version
//! held by the most reporters (ties: the larger count, then the smaller digest). Then take the
//! candidate items in order of holders (most first, ties by item order) and add an item only if
//! at least `t` reporters still hold *every* item taken so far. The result is the largest set,
//! greedily, that `t` members can sum, so the parent can always heal a missing position from
//! members holding this version. An item held by fewer than `t` reporters is never included.
//! A manifest that would name one contributor alone is empty instead ([`alone`]).

use crate::ids::{hash_parts, ComputationId, Digest, GroupId, Position, Version};
use crate::message::{Item, Manifest};
use std::collections::{BTreeMap, BTreeSet};

/// The manifest for these reports, or `None` with fewer than `t` reports.
pub fn choose_manifest(reports: &[(Position, &[Item])], t: usize) -> Option<Manifest> {
    let reporters: BTreeSet<Position> = reports.iter().map(|(p, _)| *p).collect();
    if reporters.len() < t || t == 0 {
        return None;
    }
    let mut holders: BTreeMap<Item, BTreeSet<Position>> = BTreeMap::new();
    for (p, items) in reports {
        for item in *items {
            holders.entry(*item).or_default().insert(*p);
        }
    }
    // One version per child: the most held.
    let mut best_child: BTreeMap<GroupId, (usize, u64, std::cmp::Reverse<Digest>)> =
        BTreeMap::new();
    for (item, hs) in &holders {
        if let Item::Child { group, version } = item {
            let rank = (hs.len(), version.count, std::cmp::Reverse(version.digest));
            let e = best_child.entry(*group).or_insert(rank);
            if rank > *e {
                *e = rank;
            }
        }
    }
    let mut candidates: Vec<(&Item, &BTreeSet<Position>)> = holders
        .iter()
        .filter(|(item, hs)| {
            hs.len() >= t
                && match item {
                    Item::Contributor(_) => true,
                    Item::Child { group, version } => best_child.get(group).is_some_and(|r| {
                        *r == (hs.len(), version.count, std::cmp::Reverse(version.digest))
                    }),
                }
        })
        .collect();
    candidates.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    let mut complete = reporters;
    let mut items = Vec::new();
    for (item, hs) in candidates {
        let next: BTreeSet<Position> = complete.intersection(hs).copied().collect();
        if next.len() >= t {
            complete = next;
            items.push(*item);
        }
    }
    items.sort();
    let mut manifest = Manifest { items };
    if alone(&manifest) {
        manifest.items.clear();
    }
    Some(manifest)
}

/// Whether a manifest names one contributor and nothing else. Its partial sum is that
/// contributor's share at each position, and the partial goes to the parent group: `t` points
/// across leaf and parent members (a coalition below the threshold of each) would rebuild the
/// value. So no group sums such a manifest: the leader chooses the empty manifest instead (the
/// contributor is left out, as one whose shares never reached `t` positions), and members
/// refuse it (`agreement::consistent`).
pub fn alone(manifest: &Manifest) -> bool {
    matches!(manifest.items.as_slice(), [Item::Contributor(_)])
}

/// The version a manifest names: a digest of the computation, the group and the items, and the
/// number of contributors the items cover.
pub fn version_of(computation: &ComputationId, group: GroupId, manifest: &Manifest) -> Version {
    let mut bytes = Vec::with_capacity(manifest.items.len() * 77);
    let mut count = 0u64;
    for item in &manifest.items {
        match item {
            Item::Contributor(c) => {
                bytes.push(0);
                bytes.extend_from_slice(&c.0);
                count += 1;
            }
            Item::Child { group, version } => {
                bytes.push(1);
                bytes.push(group.level);
                bytes.extend_from_slice(&group.index.to_le_bytes());
                bytes.extend_from_slice(&version.digest.0);
                bytes.extend_from_slice(&version.count.to_le_bytes());
                count = count.saturating_add(version.count);
            }
        }
    }
    Version {
        digest: Digest(hash_parts(
            "grove/version",
            &[
                &computation.0,
                &[group.level],
                &group.index.to_le_bytes(),
                &bytes,
            ],
        )),
        count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeId;

    fn c(i: u8) -> Item {
        Item::Contributor(NodeId([i; 32]))
    }

    #[test]
    fn fewer_than_t_reports_give_no_manifest() {
        let a = [c(1)];
        assert_eq!(choose_manifest(&[(1, &a), (2, &a)], 3), None);
    }

    #[test]
    fn items_held_by_everyone_are_all_included() {
        let a = [c(1), c(2), c(3)];
        let m = choose_manifest(&[(1, &a), (2, &a), (3, &a)], 2).unwrap();
        assert_eq!(m.items, a.to_vec());
    }

    #[test]
    fn an_item_held_by_fewer_than_t_is_left_out() {
        let full = [c(1), c(2), c(3)];
        let part = [c(1), c(3)];
        let m = choose_manifest(&[(1, &full), (2, &part), (3, &part)], 2).unwrap();
        assert_eq!(m.items, vec![c(1), c(3)]);
    }

    #[test]
    fn a_contributor_alone_is_left_out() {
        let full = [c(1), c(2)];
        let part = [c(1)];
        let m = choose_manifest(&[(1, &full), (2, &part), (3, &part)], 2).unwrap();
        assert!(m.items.is_empty(), "{m:?}");
    }

    #[test]
    fn greedy_keeps_t_complete_members() {
        // c1 held by 1..=5, c2 by 3..=7: both have 5 holders but together only 3 complete.
        let r: Vec<Vec<Item>> = (1..=7u8)
            .map(|p| {
                let mut v = vec![c(9)];
                if p <= 5 {
                    v.push(c(1));
                }
                if p >= 3 {
                    v.push(c(2));
                }
                v.sort();
                v
            })
            .collect();
        let reports: Vec<(Position, &[Item])> = r
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u8 + 1, v.as_slice()))
            .collect();
        let m = choose_manifest(&reports, 5).unwrap();
        assert_eq!(m.items, vec![c(1), c(9)]);
    }

    #[test]
    fn one_version_per_child_the_most_held() {
        let g = GroupId { level: 0, index: 0 };
        let v1 = Version {
            digest: Digest([1; 32]),
            count: 3,
        };
        let v2 = Version {
            digest: Digest([2; 32]),
            count: 4,
        };
        let a = [Item::Child {
            group: g,
            version: v1,
        }];
        let b = [Item::Child {
            group: g,
            version: v2,
        }];
        let m = choose_manifest(&[(1, &a), (2, &a), (3, &b)], 2).unwrap();
        assert_eq!(m.items, a.to_vec());
    }

    #[test]
    fn the_manifest_does_not_depend_on_report_order() {
        let x = [c(1), c(2)];
        let y = [c(2), c(3)];
        let z = [c(1), c(2), c(3)];
        let m1 = choose_manifest(&[(1, &x), (2, &y), (3, &z)], 2);
        let m2 = choose_manifest(&[(3, &z), (1, &x), (2, &y)], 2);
        assert_eq!(m1, m2);
    }
}
