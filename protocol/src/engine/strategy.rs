//! How an engine recovers from failures: Grove's own strategy, or one of the two baselines of
//! DISSEC (Mirval et al.) that the simulator compares Grove with. A baseline is the same engine
//! with a few behaviours switched off or changed, never a separate implementation:
//!
//! - **Grove**: a member that misses a child heals it from `t` of the child's members (masked
//!   Lagrange terms); a backup that took over a leaf position asks the contributors for their
//!   shares again; an inner member stops collecting `collect_window` after its first item.
//! - **S&P** (DISSEC's "Safe and Precise": drop, stop, full synchronisation), run with
//!   `g = t`: a missing child position is never healed, so its whole subtree is cut from the
//!   parent's manifest (an item must be held by `t = g` reporters); a backup that takes a
//!   position over after its member held data does not re-collect it (its group is cut); an
//!   inner member waits for every child (or its level's fallback deadline), never for a
//!   collection window.
//! - **HighCmpl** (DISSEC's "High Completeness": replace, stay, non-blocking), run with
//!   `g = t`: a failed member is replaced by a backup, and the replacement gets its children's
//!   values for its position again (a leaf asks its contributors for their shares, an inner
//!   member rebuilds each child's value from the child's members); collection stops after the
//!   window as in Grove.
//!
//! Either baseline may know its leaf rosters (DISSEC's leaf aggregators know their contributor
//! list and stop collecting once every share is in). Every strategy also stops once every node
//! the directory maps to the leaf has sent shares or declined (`Body::Decline`); the roster is
//! DISSEC's model of the same knowledge.

use crate::ids::GroupId;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Which recovery behaviour the engine plays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StrategyKind {
    #[default]
    Grove,
    /// DISSEC's S&P: cut the failed subtree, full synchronisation.
    SafePrecise,
    /// DISSEC's HighCmpl: replace failed members, children re-send to the replacement.
    HighCompleteness,
}

/// The engine's recovery strategy and, optionally, the number of contributors each leaf group
/// expects (its roster).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Strategy {
    pub kind: StrategyKind,
    /// Contributors expected per leaf group: a leaf member stops collecting once it holds that
    /// many shares (or at its share window). `None`: always wait for the share window.
    pub leaf_roster: Option<Arc<BTreeMap<GroupId, u32>>>,
    /// Whether a member that holds every item of its group sends its partial sum ahead of
    /// agreement. Grove's own optimisation, not specific to its recovery: on for Grove, off
    /// for the baselines as DISSEC describes them, and settable for either (the simulator runs
    /// each baseline with it too, to separate what the recovery gains from what the generic
    /// optimisation gains).
    pub send_ahead: bool,
}

impl Default for Strategy {
    fn default() -> Strategy {
        Strategy::new(StrategyKind::Grove)
    }
}

impl Strategy {
    pub fn new(kind: StrategyKind) -> Strategy {
        Strategy {
            kind,
            leaf_roster: None,
            send_ahead: kind == StrategyKind::Grove,
        }
    }

    /// Turns sending partial sums ahead of agreement on or off.
    pub fn with_send_ahead(mut self, on: bool) -> Strategy {
        self.send_ahead = on;
        self
    }

    /// Sets the contributors expected per leaf group.
    pub fn with_leaf_roster(mut self, roster: Arc<BTreeMap<GroupId, u32>>) -> Strategy {
        self.leaf_roster = Some(roster);
        self
    }

    /// Whether a member rebuilds a missing child's value from the child's members.
    pub(super) fn heals(&self) -> bool {
        self.kind != StrategyKind::SafePrecise
    }

    /// Whether a member holding every item of its group sends its partial sum ahead of
    /// agreement (and only a confirm once the group adopts that version).
    pub(super) fn sends_ahead(&self) -> bool {
        self.send_ahead
    }

    /// Whether a leaf position's server asks contributors again for shares it lacks.
    pub(super) fn recollects_shares(&self) -> bool {
        self.kind != StrategyKind::SafePrecise
    }

    /// Whether an inner member stops collecting `collect_window` after its first item (else it
    /// waits for every child or its level's fallback deadline: full synchronisation).
    pub(super) fn uses_collect_window(&self) -> bool {
        self.kind != StrategyKind::SafePrecise
    }

    /// Whether a leaf member holding `shares` shares has every share its roster expects.
    pub(super) fn leaf_complete(&self, group: GroupId, shares: usize) -> bool {
        self.leaf_roster
            .as_ref()
            .and_then(|r| r.get(&group))
            .is_some_and(|&expected| shares >= expected as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_precise_cuts_and_waits() {
        let grove = Strategy::default();
        let sp = Strategy::new(StrategyKind::SafePrecise);
        let hc = Strategy::new(StrategyKind::HighCompleteness);
        assert!(grove.heals() && grove.recollects_shares() && grove.uses_collect_window());
        assert!(!sp.heals() && !sp.recollects_shares() && !sp.uses_collect_window());
        assert!(hc.heals() && hc.recollects_shares() && hc.uses_collect_window());
    }

    #[test]
    fn only_grove_sends_ahead_unless_told() {
        assert!(Strategy::default().sends_ahead());
        assert!(!Strategy::new(StrategyKind::SafePrecise).sends_ahead());
        assert!(!Strategy::new(StrategyKind::HighCompleteness).sends_ahead());
        let sp = Strategy::new(StrategyKind::SafePrecise).with_send_ahead(true);
        assert!(sp.sends_ahead() && !sp.heals());
        assert!(!Strategy::default().with_send_ahead(false).sends_ahead());
    }

    #[test]
    fn a_roster_completes_a_leaf_once_every_share_is_in() {
        let leaf = GroupId { level: 0, index: 3 };
        let other = GroupId { level: 0, index: 4 };
        let s = Strategy::new(StrategyKind::SafePrecise)
            .with_leaf_roster(Arc::new(BTreeMap::from([(leaf, 2)])));
        assert!(!s.leaf_complete(leaf, 1));
        assert!(s.leaf_complete(leaf, 2));
        assert!(
            !s.leaf_complete(other, 100),
            "no roster entry: wait for the window"
        );
        assert!(!Strategy::default().leaf_complete(leaf, 100));
    }
}
