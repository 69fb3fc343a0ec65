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
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

/// How a child version ranks among its group's versions: by holders, then count, then the
/// smaller digest.
type Rank = (usize, u64, Reverse<Digest>);

fn rank(holders: usize, version: &Version) -> Rank {
    (holders, version.count, Reverse(version.digest))
}

/// The reporting positions holding each item.
fn holders_of(reports: &[(Position, &[Item])]) -> BTreeMap<Item, BTreeSet<Position>> {
    let mut holders: BTreeMap<Item, BTreeSet<Position>> = BTreeMap::new();
    for (p, items) in reports {
        for item in *items {
            holders.entry(*item).or_default().insert(*p);
        }
    }
    holders
}

/// The manifest for these reports, or `None` with fewer than `t` reports.
pub fn choose_manifest(reports: &[(Position, &[Item])], t: usize) -> Option<Manifest> {
    let reporters: BTreeSet<Position> = reports.iter().map(|(p, _)| *p).collect();
    choose_from(reporters, &holders_of(reports), t)
}

/// [`choose_manifest`] of the reports of `reporters` whose items are held as `holders` says.
fn choose_from(
    reporters: BTreeSet<Position>,
    holders: &BTreeMap<Item, BTreeSet<Position>>,
    t: usize,
) -> Option<Manifest> {
    if reporters.len() < t || t == 0 {
        return None;
    }
    // One version per child: the most held.
    let mut best_child: BTreeMap<GroupId, Rank> = BTreeMap::new();
    for (item, hs) in holders {
        if let Item::Child { group, version } = item {
            let r = rank(hs.len(), version);
            let e = best_child.entry(*group).or_insert(r);
            if r > *e {
                *e = r;
            }
        }
    }
    let mut candidates: Vec<(&Item, &BTreeSet<Position>)> = holders
        .iter()
        .filter(|(item, hs)| {
            hs.len() >= t
                && match item {
                    Item::Contributor(_) => true,
                    Item::Child { group, version } => best_child
                        .get(group)
                        .is_some_and(|r| *r == rank(hs.len(), version)),
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

/// The manifest for these reports of a group of `g` positions when no report still missing
/// could add an item to it: [`choose_manifest`] over these reports and any reports of the
/// missing positions names only items this manifest names. `None` while a missing report
/// could still matter (or with fewer than `t` reports). A leader proposes it before its report
/// window ends (`agreement::propose_when_ready`).
///
/// Why it is safe. Let `m` be the number of positions that did not report. A missing report
/// adds at most one holder per item, so an item ends with at most `h + m` holders, `h` those
/// it has now. `choose_manifest` includes only items held by `t` or more. This returns the
/// manifest only if
/// - `m < t`: an item no report names could reach at most `m` holders, never `t`;
/// - every item with `h + m >= t` is held by `t` or more now and is in the manifest, except a
///   child version that, even with every missing report, ranks below the version of its group
///   the manifest names (which keeps its `h >= t` holders, and no unseen version can reach
///   `m < t`), so it stays passed over.
///
/// Stricter than the argument needs: at most `t - 2` positions may be missing. A member that
/// has not reported may still be collecting and holds nothing to check a proposal against
/// (`agreement::consistent`), so it accepts a lying leader's manifest of one; with the liar
/// that makes at most `t - 1` members, and a later round's leader passes over a manifest at
/// least `g - t + 1` members show they did not accept (`agreement::proposal`). With `m < t`
/// alone, the liar and two members still collecting accepted it in the harness's sweep of
/// 10 % Byzantine aggregators (seed 2), and every later round proposed it again and was
/// refused: the root never adopted.
///
/// So the items that can be candidates after any further reports are among the manifest's
/// items, and the final manifest (a greedy subset of its candidates, or empty by [`alone`])
/// names nothing this one leaves out. More reports can only make it smaller. A manifest
/// emptied by [`alone`] is never settled here (its contributor would fail the check): such a
/// leaf waits for its window as before.
pub fn settled_manifest(reports: &[(Position, &[Item])], g: usize, t: usize) -> Option<Manifest> {
    let reporters: BTreeSet<Position> = reports.iter().map(|(p, _)| *p).collect();
    let missing = g.checked_sub(reporters.len())?;
    // `m < t` is what the argument above needs; `m <= t - 2` also keeps a lying leader that
    // proposes at this moment from having its manifest accepted by `t` members (see below).
    if missing + 2 > t {
        return None;
    }
    let holders = holders_of(reports);
    let manifest = choose_from(reporters, &holders, t)?;
    let named = |item: &Item| manifest.items.binary_search(item).is_ok();
    for (item, hs) in &holders {
        let reach = hs.len() + missing;
        if reach < t || (hs.len() >= t && named(item)) {
            continue;
        }
        // A child version the manifest passes over: settled only if it cannot overtake the
        // version of its group the manifest names.
        let Item::Child { group, version } = item else {
            return None;
        };
        let chosen = manifest.items.iter().find_map(|i| match i {
            Item::Child {
                group: g2,
                version: v,
            } if g2 == group => Some(*v),
            _ => None,
        })?;
        let chosen_holders = holders.get(&Item::Child {
            group: *group,
            version: chosen,
        })?;
        if rank(reach, version) >= rank(chosen_holders.len(), &chosen) {
            return None;
        }
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
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha20Rng;

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

    fn child(group: u32, n: u8) -> Item {
        Item::Child {
            group: GroupId {
                level: 0,
                index: group,
            },
            version: Version {
                digest: Digest([n; 32]),
                count: u64::from(n % 3) + 1,
            },
        }
    }

    /// Items a group's reports can name: six contributors, and three versions of each of two
    /// children (in a leaf only contributors occur, in an inner group only children; mixing
    /// them exercises both rules at once).
    fn pool() -> Vec<Item> {
        let mut items: Vec<Item> = (1..=6).map(c).collect();
        for group in 0..2 {
            items.extend((1..=3).map(|n| child(group, 10 * group as u8 + n)));
        }
        items
    }

    /// Each item of `from` with probability `percent` %.
    fn some_of(rng: &mut ChaCha20Rng, from: &[Item], percent: u64) -> Vec<Item> {
        from.iter()
            .filter(|_| rng.next_u64() % 100 < percent)
            .copied()
            .collect()
    }

    /// Over random reports of random groups: whenever `settled_manifest` gives a manifest
    /// before every position reported, `choose_manifest` over those reports plus any reports of
    /// the missing positions (random ones, naming seen and unseen items and versions, and the
    /// one where every missing position holds everything) names nothing the early manifest
    /// leaves out. With every report in, it is `choose_manifest`'s.
    #[test]
    fn a_settled_manifest_names_everything_any_missing_reports_could_add() {
        let mut rng = ChaCha20Rng::seed_from_u64(22);
        let unseen = [c(40), c(41), child(0, 40), child(1, 41), child(2, 42)];
        let (mut settled, mut early, mut waiting) = (0, 0, 0);
        for _ in 0..10_000 {
            let g = 3 + (rng.next_u64() % 5) as usize;
            let t = 2 + (rng.next_u64() % (g as u64 - 1)) as usize;
            let pool = pool();
            // Items that most positions hold (a contributor that reached every position),
            // mixed with a few of the rest.
            let common = some_of(&mut rng, &pool, 40);
            let mut reports: Vec<(Position, Vec<Item>)> = Vec::new();
            for p in 1..=g as u8 {
                if rng.next_u64() % 100 < 85 {
                    let mut items = some_of(&mut rng, &common, 90);
                    items.extend(some_of(&mut rng, &pool, 15));
                    items.sort();
                    items.dedup();
                    reports.push((p, items));
                }
            }
            let view: Vec<(Position, &[Item])> =
                reports.iter().map(|(p, i)| (*p, i.as_slice())).collect();
            let Some(m) = settled_manifest(&view, g, t) else {
                waiting += 1;
                continue;
            };
            settled += 1;
            let missing: Vec<Position> = (1..=g as u8)
                .filter(|p| !reports.iter().any(|(q, _)| q == p))
                .collect();
            if missing.is_empty() {
                assert_eq!(Some(&m), choose_manifest(&view, t).as_ref());
                continue;
            }
            early += 1;
            let everything: Vec<Item> = pool.iter().chain(&unseen).copied().collect();
            for trial in 0..20 {
                let mut all = reports.clone();
                for p in &missing {
                    let mut items = if trial == 0 {
                        everything.clone()
                    } else {
                        some_of(&mut rng, &everything, 60)
                    };
                    items.sort();
                    all.push((*p, items));
                }
                let view: Vec<(Position, &[Item])> =
                    all.iter().map(|(p, i)| (*p, i.as_slice())).collect();
                let later = choose_manifest(&view, t).expect("more reports than before");
                for item in &later.items {
                    assert!(
                        m.items.contains(item),
                        "g {g} t {t}: a missing report adds {item:?} to {m:?}; reports {reports:?}"
                    );
                }
            }
        }
        // The property is not vacuous: many draws settle early, many must wait.
        assert!(early > 300 && waiting > 300, "{settled} {early} {waiting}");
    }

    #[test]
    fn a_report_that_could_add_an_item_keeps_the_leader_waiting() {
        let full = [c(1), c(2), c(3)];
        let part = [c(1), c(3)];
        // c2 held by 2 of the 4 reports, t = 3: the fifth report could make it 3.
        let reports = [(1, &full[..]), (2, &full), (3, &part), (4, &part)];
        assert_eq!(settled_manifest(&reports, 5, 3), None);
        // Held by 1: even with the fifth report it has 2.
        let reports = [(1, &full[..]), (2, &part), (3, &part), (4, &part)];
        let m = settled_manifest(&reports, 5, 3).expect("settled");
        assert_eq!(m.items, vec![c(1), c(3)]);
        // Two reports missing with t = 3: more than t - 2.
        assert_eq!(settled_manifest(&reports[..3], 5, 3), None);
        // A version of a child that the missing report could lift above the chosen one.
        let (a, b) = (child(0, 1), child(0, 2));
        let x = [a];
        let y = [b];
        let reports = [(1, &x[..]), (2, &x), (3, &x), (4, &y), (5, &y)];
        assert!(settled_manifest(&reports, 6, 3).is_none());
        let reports = [(1, &x[..]), (2, &x), (3, &x), (4, &x), (5, &y)];
        let m = settled_manifest(&reports, 6, 3).expect("b cannot overtake a");
        assert_eq!(m.items, vec![a]);
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
