//! The adaptive planner: chooses the group size `g`, the threshold `t`, the fan-in, the number of
//! leaf groups and every timeout of a computation from the conditions it will run under.
//!
//! Model (section 4 of the design). Let `V` be the bytes of one vector, `B` the per-node
//! bandwidth, `L` the one-way latency, `c` the compute cost per kB and `k` the cost of one
//! cryptographic operation (a seal, an open, a signature check).
//!
//! - The request reaches a contributor after `h` gossip hops (`h·L`); the contributor shares
//!   its vector (`g` evaluations), seals `g` envelopes and uploads `g - t + 1` full vectors
//!   (seed-compressed shares): `h·L + g·c·V + g·k + (g - t + 1)·V/B + L`.
//! - A leaf member receives up to `leaf_size` shares: `leaf_size·(V/B + c·V + k)`. It stops
//!   collecting once every node it serves sent shares or declined, so the contributor and leaf
//!   phases count, not the share window (the timeout below, twice them, bounds only a leaf that
//!   waits on a late or dead contributor).
//! - Agreement within a group: report and manifest (`2L` plus small messages), then the vote and
//!   the leader's adopted report (`2L`).
//! - One level up: a member sends its partial sum ahead as it reports (one vector, `V/B + L`),
//!   and the parent member downloads `fan_in` of them (`fan_in·V/B`) and adds them up
//!   (`fan_in·c·V`) while the child group agrees; the parent counts a child once its confirm
//!   arrives (`L` after adoption). A level takes the longer of the two paths.
//! - Release: the root group agrees, then the commissioner downloads `t` vectors and
//!   reconstructs (`t·(V/B + c·V)`).
//!
//! Failures: each node fails at rate `λ` per second. A position is lost if its node fails while
//! it holds data that has not moved up, a window of about one level's duration `w`, so with
//! `q = 1 - e^{-λw}` a group survives with probability `P[Bin(g, q) <= g - t]`. A contributor is
//! included if every group on its path survives: completeness is the product over levels.
//! A contributor alone in its leaf is left out (`manifest::alone`): completeness is also
//! multiplied by `1 - P(alone)`, about `1 - e^{-leaf_size}`.
//!
//! Connections: a leaf member holds one to every node its leaf serves (each sends shares or
//! declines), to its group and to its parent group (`leaf_member_connections`). With a
//! connection budget (the daemon's `connection_target`), shapes beyond it are chosen only
//! when none within it exists (or, under an exposure goal, none below the goal's target).
//! `plan` enumerates `g` from `t` to `t + 4`, fan-ins and leaf sizes, and keeps the fastest
//! choice whose predicted completeness meets the target (or the most complete one if none
//! does). `plan_private` also chooses `t`: under an exposure goal (one contributor's value
//! exposed with probability below `1e-9` when 10% of identities collude, by default) it keeps
//! the fastest shape below both targets, or the least exposed one when the network is too
//! small for any.

use crate::limits::{MAX_FAN_IN, MAX_GROUP_SIZE};
use crate::request::{PrivacyParams, Timeouts, TreeParams};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The conditions a computation will run under.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conditions {
    /// Network size times selectivity.
    pub expected_contributors: u64,
    /// Nodes available to serve positions (the network size).
    pub available_nodes: u64,
    /// Elements per contribution vector.
    pub vector_len: u32,
    /// One-way link latency, microseconds.
    pub latency_us: u64,
    /// Link latencies before a node hears the request (gossip hops; 1 for a direct send).
    pub broadcast_hops: u32,
    /// Bandwidth, kB per second (1 kB = 1,000 bytes): of each node's link, or of each link
    /// between two nodes, as `link_model` says.
    pub bandwidth_kb_per_s: f64,
    pub link_model: LinkModel,
    /// Compute cost, microseconds per kB of vector handled.
    pub compute_us_per_kb: f64,
    /// Cost of one cryptographic operation, microseconds.
    pub crypto_us: f64,
    /// Node failure rate, fraction of nodes per second.
    pub failure_per_s: f64,
    /// The required collusion threshold: the smallest acceptable `t`.
    pub min_threshold: u8,
    /// The completeness the plan must reach (for example 0.99).
    pub completeness_target: f64,
    /// Minimum contributors for a release.
    pub k_min: u64,
    /// The connections a node can hold for a computation's work (the daemon's
    /// `connection_target`): no shape whose leaf members would hold more
    /// ([`Conditions::leaf_member_connections`]) is chosen while one within it exists. `None`:
    /// no bound (the simulator models no connections).
    #[serde(default)]
    pub connection_budget: Option<u32>,
}

/// How bandwidth is shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkModel {
    /// Each node has one link: what it receives (or sends) is serialised on it. Realistic for
    /// home connections.
    PerNode,
    /// Each pair of nodes has its own link: a node receives from several peers at full speed
    /// in parallel (the model DISSEC's published simulation results fit).
    PerLink,
}

/// The planner's choice and its predictions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub privacy: PrivacyParams,
    pub tree: TreeParams,
    pub depth: u8,
    pub leaf_size: u32,
    /// Predicted request-to-result latency without failures, microseconds.
    pub predicted_latency_us: u64,
    /// Predicted fraction of contributors included.
    pub predicted_completeness: f64,
}

#[derive(Debug, Error, PartialEq)]
pub enum PlannerError {
    #[error("conditions are invalid: {0}")]
    Invalid(String),
    #[error("no plan fits: {0}")]
    NoPlan(String),
}

const LEAF_SIZES: [u32; 6] = [4, 8, 16, 32, 64, 128];
/// Standard deviations above its mean at which the planner counts the nodes one leaf serves
/// (`Conditions::leaf_member_connections`). Nodes hash uniformly over the leaves, so a leaf's
/// count is binomial; one leaf in several hundred goes beyond three standard deviations
/// (about one computation in 30 with 13 leaves has such a leaf), and then only by a few
/// nodes, which the pruning keeps while the computation lasts (a node's 64-connection goal
/// leaves 16 above the default target of 48).
pub const LEAF_SPREAD_SD: f64 = 3.0;
const FAN_INS: [u32; 7] = [2, 4, 8, 16, 32, 64, 128];
/// Timeouts are the predicted duration of their phase times this factor (and at least
/// `MIN_TIMEOUT_US`), so that ordinary jitter never fires them.
const TIMEOUT_SAFETY: f64 = 2.0;
const MIN_TIMEOUT_US: f64 = 20_000.0;

/// Times of the phases of one plan, microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhaseTimes {
    pub contributor: f64,
    pub leaf_collect: f64,
    pub agree: f64,
    pub inner_collect: f64,
    pub send_up: f64,
    pub release: f64,
}

impl Conditions {
    fn validate(&self) -> Result<(), PlannerError> {
        let bad = |m: &str| Err(PlannerError::Invalid(m.into()));
        if self.expected_contributors == 0 {
            return bad("no expected contributors");
        }
        if self.vector_len == 0 {
            return bad("empty vector");
        }
        if !self.bandwidth_kb_per_s.is_finite() || self.bandwidth_kb_per_s <= 0.0 {
            return bad("bandwidth must be positive");
        }
        for (v, name) in [
            (self.compute_us_per_kb, "compute cost"),
            (self.crypto_us, "crypto cost"),
            (self.failure_per_s, "failure rate"),
        ] {
            if !v.is_finite() || v < 0.0 {
                return bad(&format!("{name} must be finite and non-negative"));
            }
        }
        if self.min_threshold == 0 || self.min_threshold > MAX_GROUP_SIZE {
            return bad("threshold outside 1..=32");
        }
        if self.completeness_target.is_nan()
            || self.completeness_target <= 0.0
            || self.completeness_target > 1.0
        {
            return bad("completeness target outside (0, 1]");
        }
        Ok(())
    }

    fn vector_kb(&self) -> f64 {
        self.vector_len as f64 * 8.0 / 1000.0
    }

    fn transfer_us(&self) -> f64 {
        self.vector_kb() / self.bandwidth_kb_per_s * 1e6
    }

    fn compute_us(&self) -> f64 {
        self.vector_kb() * self.compute_us_per_kb
    }

    /// The connections one leaf member holds for a plan of groups of `g` and `leaf_size`
    /// expected contributors per leaf, counted high: one to every node its leaf serves (each
    /// sends its shares or a decline; the `available_nodes` hash uniformly over the leaves,
    /// counted at the binomial mean plus [`LEAF_SPREAD_SD`] standard deviations), to the other
    /// `g - 1` members of its group, to the `g` members of the parent group and to the
    /// commissioner. Counting contributors only would miss the decliners: a single leaf of
    /// 200 nodes (the planner's choice for 100 expected contributors at a 537 ms round trip)
    /// had all 199 others dial its 5 members at once.
    pub fn leaf_member_connections(&self, g: u8, leaf_size: u32) -> f64 {
        let leaves = self
            .expected_contributors
            .div_ceil(u64::from(leaf_size.max(1)))
            .max(1) as f64;
        let nodes = self.available_nodes.max(1) as f64;
        let p = 1.0 / leaves;
        let served = nodes * p + LEAF_SPREAD_SD * (nodes * p * (1.0 - p)).sqrt();
        served + 2.0 * f64::from(g)
    }

    /// Whether a shape's leaf members stay within the connection budget (always, without one).
    pub fn fits_connections(&self, g: u8, leaf_size: u32) -> bool {
        self.connection_budget
            .is_none_or(|b| self.leaf_member_connections(g, leaf_size) <= f64::from(b))
    }

    /// Phase times of a plan with these parameters.
    pub fn phase_times(&self, g: u8, t: u8, fan_in: u32, leaf_size: u32) -> PhaseTimes {
        let g = g as f64;
        let t = t as f64;
        let lat = self.latency_us as f64;
        let x = self.transfer_us();
        let c = self.compute_us();
        let k = self.crypto_us;
        // Uploads from one contributor (and downloads into one member) share its link when
        // links are per node; with per-pair links they proceed in parallel.
        let (up, down_leaf, down_inner) = match self.link_model {
            LinkModel::PerNode => ((g - t + 1.0) * x, leaf_size as f64 * x, fan_in as f64 * x),
            LinkModel::PerLink => (x, x, x),
        };
        // The request first reaches the contributor, then its shares reach the leaf.
        let contributor = self.broadcast_hops.max(1) as f64 * lat + g * c + g * k + up + lat;
        // Seed compression: a position receives a full vector from `g - t + 1` of every `g`
        // contributors (the rotation spreads them) and a 32-byte seed from the others, every
        // one of them sealed.
        let full = (g - t + 1.0) / g;
        let leaf_collect = full * down_leaf + leaf_size as f64 * (full * c + k);
        let agree = 2.0 * lat + 2.0 * k;
        let inner_collect = down_inner + fan_in as f64 * c;
        let send_up = x + lat + k;
        let release = t * (x + c) + lat;
        PhaseTimes {
            contributor,
            leaf_collect,
            agree,
            inner_collect,
            send_up,
            release,
        }
    }

    /// Predicted failure-free latency and completeness of one plan shape.
    pub fn predict(&self, g: u8, t: u8, fan_in: u32, leaf_size: u32) -> (f64, f64, u8) {
        let p = self.phase_times(g, t, fan_in, leaf_size);
        let leaves = self.expected_contributors.div_ceil(leaf_size as u64).max(1);
        let level = p.agree + p.send_up;
        let lat = self.latency_us as f64;
        // Agreement runs beside the partials sent ahead, and a child counts once confirmed.
        // The children finish at different times: the parent opens the others' partials while
        // it waits for the slowest, whose lag over the first grows with their number (fitted
        // on the simulator: about one latency per factor e of fan-in), then opens that one.
        let agreed = p.agree + 2.0 * lat;
        let one = self.compute_us() + self.crypto_us;
        let down = match self.link_model {
            LinkModel::PerNode => self.transfer_us(),
            LinkModel::PerLink => 0.0,
        };
        // About half of a parent's downloading and opening overlaps the wait for its slowest
        // child; with many children the rest of it sets the pace.
        let step = |children: f64| {
            let paced = p.send_up.max(agreed + lat) + one + lat * children.ln();
            paced.max(0.5 * children * (down + one))
        };
        // Each level's real number of children (the top levels may have fewer than fan_in).
        let mut inner = 0.0;
        let mut depth = 1u8;
        let mut groups = leaves;
        while groups > 1 {
            let parents = groups.div_ceil(fan_in as u64);
            inner += step(groups as f64 / parents as f64);
            groups = parents;
            depth += 1;
        }
        let latency = p.contributor + p.leaf_collect + inner + agreed + p.release;
        // Exposure of one group: its own level's duration (collect, agree, send up).
        let window_s = |collect: f64| (collect + level) / 1e6;
        let survive = |window: f64| {
            let q = 1.0 - (-self.failure_per_s * window).exp();
            binomial_cdf(g as u32, q, (g - t) as u32)
        };
        let leaf_survival = survive(window_s(p.leaf_collect));
        let inner_survival = survive(window_s(p.inner_collect));
        // A contributor alone in its leaf is left out (no manifest names one contributor
        // alone: its partial would be its shares), whatever fails.
        let not_alone = 1.0 - lone_probability(self.expected_contributors, leaves);
        let completeness = leaf_survival * inner_survival.powi(depth as i32 - 1) * not_alone;
        (latency, completeness, depth)
    }
}

/// The probability that a given contributor is alone in its leaf, `contributors` hashing
/// uniformly over `leaves` leaves: `(1 - 1/leaves)^(contributors - 1)`, about
/// `e^(-leaf_size)` (1.8e-2 at 4 contributors per leaf, 3.4e-4 at 8, 1.1e-7 at 16). Such a
/// contributor is left out of the result (`manifest::alone`).
pub fn lone_probability(contributors: u64, leaves: u64) -> f64 {
    if contributors <= 1 {
        return 1.0;
    }
    if leaves <= 1 {
        return 0.0;
    }
    let others = (contributors - 1) as f64;
    (others * (-1.0 / leaves as f64).ln_1p()).exp()
}

/// The probability that one contributor's value is exposed: at least `t` of the `g` members
/// of its leaf collude, each independently with probability `colluding_fraction` (positions
/// drawn from the beacon seed over admitted identities): `sum_{k=t..g} C(g,k) f^k (1-f)^(g-k)`,
/// summed exactly term by term. Drawing members without replacement from a finite network
/// (hypergeometric) gives less; this is the bound for any network size.
pub fn exposure(g: u8, t: u8, colluding_fraction: f64) -> f64 {
    let f = colluding_fraction.clamp(0.0, 1.0);
    if t == 0 {
        return 1.0;
    }
    if t > g {
        return 0.0;
    }
    let (g, t) = (u32::from(g), u32::from(t));
    let mut total = 0.0;
    for k in t..=g {
        total += binomial(g, k) * f.powi(k as i32) * (1.0 - f).powi((g - k) as i32);
    }
    total.min(1.0)
}

/// `C(n, k)` as a float (exact for the group sizes allowed: `n <= 32`).
fn binomial(n: u32, k: u32) -> f64 {
    let k = k.min(n - k.min(n));
    let mut c = 1.0f64;
    for i in 0..k {
        c = c * f64::from(n - i) / f64::from(i + 1);
    }
    c
}

/// The privacy goal of a plan: one contributor's value exposed with probability below
/// `target` when `colluding_fraction` of the eligible identities collude.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExposureGoal {
    pub target: f64,
    pub colluding_fraction: f64,
}

/// The default goal: below one in a billion with 10% of the identities colluding.
pub const DEFAULT_EXPOSURE_TARGET: f64 = 1e-9;
/// The colluding fraction the default goal assumes.
pub const DEFAULT_COLLUDING_FRACTION: f64 = 0.10;

impl Default for ExposureGoal {
    fn default() -> ExposureGoal {
        ExposureGoal {
            target: DEFAULT_EXPOSURE_TARGET,
            colluding_fraction: DEFAULT_COLLUDING_FRACTION,
        }
    }
}

impl ExposureGoal {
    /// Whether `exposure` is below the target. A margin of one part in a million keeps shapes
    /// that sit exactly on the target (`g = t = 9` and `g = 11, t = 10` give 1e-9 at 10%) out
    /// whichever way the float rounds.
    pub fn met_by(&self, exposure: f64) -> bool {
        exposure <= self.target * (1.0 - 1e-6)
    }

    fn validate(&self) -> Result<(), PlannerError> {
        if !(self.target > 0.0 && self.target <= 1.0) {
            return Err(PlannerError::Invalid(
                "exposure target outside (0, 1]".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.colluding_fraction) {
            return Err(PlannerError::Invalid(
                "colluding fraction outside [0, 1)".into(),
            ));
        }
        Ok(())
    }
}

/// Parameters the commissioner fixed (the planner chooses the others), and the fewest spare
/// members (`g - t`) a chosen group keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fixed {
    pub g: Option<u8>,
    pub t: Option<u8>,
    pub fan_in: Option<u32>,
    /// `g - t` of a chosen shape is at least this (not applied when both `g` and `t` are
    /// fixed). The failure model counts only crashes inside one level's window; a member the
    /// failure detector wrongly times out, or one that dies while the group waits on it, costs
    /// a group without spares its whole subtree.
    pub min_spare: u8,
}

/// A choice under an exposure goal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrivateChoice {
    pub choice: Choice,
    /// The exposure of one contributor's value at the goal's colluding fraction.
    pub exposure: f64,
    /// Whether that is below the goal's target; when not, no shape that fits the network
    /// (or the fixed parameters) meets it and this is the least exposed one.
    pub meets_goal: bool,
}

/// One plan shape the planners consider, with what `Conditions::predict` gives for it and
/// where it stands against the connection budget.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    g: u8,
    t: u8,
    fan_in: u32,
    leaf_size: u32,
    /// Predicted failure-free latency, microseconds.
    latency: f64,
    /// Predicted fraction of contributors included.
    completeness: f64,
    /// `completeness` reaches the conditions' target.
    meets_completeness: bool,
    /// Its leaf members stay within the connection budget (`Conditions::fits_connections`).
    within_budget: bool,
    /// The connections one of its leaf members holds (`Conditions::leaf_member_connections`).
    connections: f64,
}

impl Candidate {
    fn new(conditions: &Conditions, g: u8, t: u8, fan_in: u32, leaf_size: u32) -> Candidate {
        let (latency, completeness, _) = conditions.predict(g, t, fan_in, leaf_size);
        Candidate {
            g,
            t,
            fan_in,
            leaf_size,
            latency,
            completeness,
            meets_completeness: completeness >= conditions.completeness_target,
            within_budget: conditions.fits_connections(g, leaf_size),
            connections: conditions.leaf_member_connections(g, leaf_size),
        }
    }

    /// The connection-budget rule, the same in `plan` and `plan_private`: a shape within the
    /// budget comes before one beyond it, and of two beyond it the one whose leaf members hold
    /// fewer connections. `Some(true)` if it puts `self` before `other`, `Some(false)` if
    /// after, `None` if it does not tell them apart.
    fn budget_order(&self, other: &Candidate) -> Option<bool> {
        if self.within_budget != other.within_budget {
            return Some(self.within_budget);
        }
        if !self.within_budget && self.connections != other.connections {
            return Some(self.connections < other.connections);
        }
        None
    }

    /// A shape that meets the completeness target comes before one that does not (as
    /// `budget_order`).
    fn completeness_order(&self, other: &Candidate) -> Option<bool> {
        (self.meets_completeness != other.meets_completeness).then_some(self.meets_completeness)
    }

    /// Whether `self` comes before `other`, both meeting the completeness target or neither:
    /// the faster if both do, else the more complete.
    fn speed_order(&self, other: &Candidate) -> bool {
        if self.meets_completeness {
            self.latency < other.latency
        } else {
            self.completeness > other.completeness
        }
    }

    /// The full choice for this shape.
    fn choice(&self, conditions: &Conditions) -> Choice {
        conditions.choice(self.g, self.t, self.fan_in, self.leaf_size)
    }
}

/// A shape `plan_private` considers: its `Candidate` and its exposure under the goal.
#[derive(Clone, Copy, Debug)]
struct PrivateCandidate {
    shape: Candidate,
    /// The exposure of one contributor's value at the goal's colluding fraction.
    exposure: f64,
    /// `exposure` is below the goal's target.
    meets_goal: bool,
}

/// Chooses the plan for `conditions` under the exposure `goal`, with the parameters in
/// `fixed` as given. Candidates: every `t` from `max(min_threshold, 2)` to 32 and `g` from
/// `t + min_spare` to `t + 4` (or the fixed ones), every fan-in and leaf size, over trees that fit the
/// network (`tree_fits`). Among the shapes whose exposure is below the target, whose leaf
/// members stay within the connection budget (`Conditions::fits_connections`) and whose
/// completeness meets its target, the fastest; when none is below the exposure target (a
/// network too small for groups that large, or fixed `g, t`), the least exposed shape within
/// the budget that meets the completeness target (then the fastest of those), and
/// `meets_goal` is false. The exposure goal comes before the budget: when no shape below the
/// target fits the budget (groups of 12 need leaves of at least 24 nodes to fit the network,
/// and 24 + 23 connections to their group and parent, before any spread, fill a budget of 48),
/// the shape below the target with the fewest leaf member connections.
pub fn plan_private(
    conditions: &Conditions,
    goal: &ExposureGoal,
    fixed: &Fixed,
) -> Result<PrivateChoice, PlannerError> {
    conditions.validate()?;
    goal.validate()?;
    let min_t = conditions.min_threshold.max(2);
    let ts: Vec<u8> = match fixed.t {
        Some(t) => vec![t],
        None => (min_t..=MAX_GROUP_SIZE).collect(),
    };
    let fan_ins: Vec<u32> = match fixed.fan_in {
        Some(f) => vec![f],
        None => FAN_INS
            .iter()
            .copied()
            .filter(|f| *f <= MAX_FAN_IN)
            .collect(),
    };
    // Whether `c` comes before `b`: below the exposure target first, then the connection
    // budget, then the completeness target, then (both above the exposure target) the less
    // exposed, then the faster or the more complete.
    let rank = |c: &PrivateCandidate, b: &PrivateCandidate| -> bool {
        let (cs, bs) = (&c.shape, &b.shape);
        (c.meets_goal != b.meets_goal)
            .then_some(c.meets_goal)
            .or_else(|| cs.budget_order(bs))
            .or_else(|| cs.completeness_order(bs))
            .or_else(|| {
                (!c.meets_goal && c.exposure != b.exposure).then_some(c.exposure < b.exposure)
            })
            .unwrap_or_else(|| cs.speed_order(bs))
    };
    let mut best: Option<PrivateCandidate> = None;
    for &t in &ts {
        if !(2..=MAX_GROUP_SIZE).contains(&t) {
            return Err(PlannerError::Invalid(format!(
                "threshold {t} outside 2..=32"
            )));
        }
        let gs: Vec<u8> = match fixed.g {
            Some(g) if g < t || g > MAX_GROUP_SIZE => {
                return Err(PlannerError::Invalid(format!(
                    "group size {g} outside {t}..=32"
                )))
            }
            Some(g) => vec![g],
            None => (t..=t.saturating_add(4).min(MAX_GROUP_SIZE)).collect(),
        };
        for &g in &gs {
            let both_fixed = fixed.g.is_some() && fixed.t.is_some();
            if !both_fixed && g - t < fixed.min_spare {
                continue;
            }
            let exposed = exposure(g, t, goal.colluding_fraction);
            for &fan_in in &fan_ins {
                if fan_in < 2 {
                    return Err(PlannerError::Invalid("fan-in below 2".into()));
                }
                for &leaf_size in &LEAF_SIZES {
                    let leaves = conditions.expected_contributors.div_ceil(leaf_size as u64);
                    let (groups, _) = tree_size(leaves, fan_in as u64);
                    if !tree_fits(groups, g, conditions.available_nodes) {
                        continue;
                    }
                    let c = PrivateCandidate {
                        shape: Candidate::new(conditions, g, t, fan_in, leaf_size),
                        exposure: exposed,
                        meets_goal: goal.met_by(exposed),
                    };
                    if best.as_ref().is_none_or(|b| rank(&c, b)) {
                        best = Some(c);
                    }
                }
            }
        }
    }
    let Some(best) = best else {
        return Err(PlannerError::NoPlan(format!(
            "{} available nodes cannot hold even the smallest tree of the allowed groups",
            conditions.available_nodes
        )));
    };
    Ok(PrivateChoice {
        choice: best.shape.choice(conditions),
        exposure: best.exposure,
        meets_goal: best.meets_goal,
    })
}

/// `P[Bin(n, q) <= k]`.
fn binomial_cdf(n: u32, q: f64, k: u32) -> f64 {
    let mut total = 0.0;
    let mut coef = 1.0f64;
    for i in 0..=k.min(n) {
        if i > 0 {
            coef = coef * (n - i + 1) as f64 / i as f64;
        }
        total += coef * q.powi(i as i32) * (1.0 - q).powi((n - i) as i32);
    }
    total.min(1.0)
}

/// Chooses the plan for `conditions` at `t = min_threshold`: among the shapes that fit the
/// network and the connection budget, the fastest that meets the completeness target (else
/// the most complete); without a shape within the budget, the one with the fewest leaf member
/// connections.
pub fn plan(conditions: &Conditions) -> Result<Choice, PlannerError> {
    conditions.validate()?;
    let t = conditions.min_threshold;
    let mut best: Option<Candidate> = None;
    for g in t..=(t.saturating_add(4)).min(MAX_GROUP_SIZE) {
        for &fan_in in FAN_INS.iter().filter(|f| **f <= MAX_FAN_IN) {
            for &leaf_size in &LEAF_SIZES {
                let leaves = conditions.expected_contributors.div_ceil(leaf_size as u64);
                let (groups, _) = tree_size(leaves, fan_in as u64);
                if !tree_fits(groups, g, conditions.available_nodes) {
                    continue;
                }
                let c = Candidate::new(conditions, g, t, fan_in, leaf_size);
                // The connection budget, then the completeness target, then the faster or the
                // more complete.
                let better = best.as_ref().is_none_or(|b| {
                    c.budget_order(b)
                        .or_else(|| c.completeness_order(b))
                        .unwrap_or_else(|| c.speed_order(b))
                });
                if better {
                    best = Some(c);
                }
            }
        }
    }
    let Some(best) = best else {
        return Err(PlannerError::NoPlan(format!(
            "{} available nodes cannot hold even the smallest tree",
            conditions.available_nodes
        )));
    };
    Ok(best.choice(conditions))
}

impl Conditions {
    /// The timeouts of one plan shape: each is its phase's predicted duration times
    /// `TIMEOUT_SAFETY` (and at least `MIN_TIMEOUT_US`).
    pub fn timeouts(&self, g: u8, t: u8, fan_in: u32, leaf_size: u32) -> Timeouts {
        let p = self.phase_times(g, t, fan_in, leaf_size);
        let timeout = |us: f64| (us * TIMEOUT_SAFETY).max(MIN_TIMEOUT_US) as u64;
        let level = p.agree + p.send_up;
        Timeouts {
            share_window: timeout(p.contributor + p.leaf_collect),
            collect_window: timeout(p.inner_collect + self.latency_us as f64),
            level_span: timeout(p.inner_collect + level + p.agree),
            report_window: timeout(self.latency_us as f64 + self.crypto_us),
            manifest_timeout: timeout(p.agree + self.latency_us as f64),
            heal_attempt: timeout(p.agree + p.send_up),
            release_window: timeout(p.release),
        }
    }

    /// The full choice (parameters, timeouts, predictions) for one plan shape: what `plan`
    /// returns for the shape it picks, and what a grid search evaluates for every other.
    pub fn choice(&self, g: u8, t: u8, fan_in: u32, leaf_size: u32) -> Choice {
        let (latency, completeness, depth) = self.predict(g, t, fan_in, leaf_size);
        let leaf_groups = self.expected_contributors.div_ceil(leaf_size as u64).max(1);
        Choice {
            privacy: PrivacyParams {
                g,
                t,
                k_min: self.k_min,
            },
            tree: TreeParams {
                leaf_groups: leaf_groups.min(u32::MAX as u64) as u32,
                fan_in,
                backups: 2,
                timeouts: self.timeouts(g, t, fan_in, leaf_size),
            },
            depth,
            leaf_size,
            predicted_latency_us: latency as u64,
            predicted_completeness: completeness,
        }
    }
}

/// The shape of a tree of `leaf_groups` leaf groups and fan-in `fan_in` (at least 2): its
/// groups over every level, leaves to root, and its depth in levels (1 for a single leaf
/// group). The plan's `level_sizes` without its limits; the planner, the simulator's
/// comparison and its planner check all count trees with it.
pub fn tree_size(leaf_groups: u64, fan_in: u64) -> (u64, u32) {
    let mut level = leaf_groups;
    let mut groups = level;
    let mut depth = 1;
    while level > 1 {
        level = level.div_ceil(fan_in);
        groups += level;
        depth += 1;
    }
    (groups, depth)
}

/// Whether a tree of `groups` groups of `g` members fits the network: members must be
/// distinct and every position needs a backup outside its neighbourhood, so the planner keeps
/// the plan within half of the available nodes.
pub fn tree_fits(groups: u64, g: u8, available_nodes: u64) -> bool {
    groups.saturating_mul(u64::from(g)).saturating_mul(2) <= available_nodes.max(1)
}

/// Gossip hops for a broadcast to reach all `nodes` with fan-out `fanout` (at least 2):
/// `ceil(log_fanout(nodes))`, and at least 1. The simulator delays a broadcast by that many
/// latency draws; the planner's `Conditions::broadcast_hops` is this number.
pub fn gossip_hops(nodes: u64, fanout: u32) -> u32 {
    let mut hops = 1u32;
    let mut reach = u64::from(fanout);
    while reach < nodes {
        reach = reach.saturating_mul(u64::from(fanout));
        hops += 1;
    }
    hops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_size_counts_the_plans_levels() {
        for leaves in 1..300u32 {
            for fan_in in 2..12u32 {
                let levels = crate::plan::level_sizes(leaves, fan_in).unwrap();
                let groups = levels.iter().map(|&s| u64::from(s)).sum::<u64>();
                assert_eq!(
                    tree_size(u64::from(leaves), u64::from(fan_in)),
                    (groups, levels.len() as u32)
                );
            }
        }
    }

    #[test]
    fn gossip_hops_is_the_ceiling_of_the_log() {
        assert_eq!(gossip_hops(1, 8), 1);
        assert_eq!(gossip_hops(8, 8), 1);
        assert_eq!(gossip_hops(9, 8), 2);
        assert_eq!(gossip_hops(7607, 8), 5);
        assert_eq!(gossip_hops(7607, 100_000), 1);
    }

    fn dissec() -> Conditions {
        Conditions {
            expected_contributors: 4096,
            available_nodes: 20_000,
            vector_len: 128_000,
            latency_us: 33_000,
            broadcast_hops: 1,
            bandwidth_kb_per_s: 6_000.0,
            link_model: LinkModel::PerNode,
            compute_us_per_kb: 50.0,
            crypto_us: 10_000.0,
            failure_per_s: 0.0025,
            min_threshold: 5,
            completeness_target: 0.995,
            k_min: 100,
            connection_budget: None,
        }
    }

    /// What `grove compute` told the planner in the failed 200-node benchmark: 200 nodes, a
    /// measured round trip of 537 ms, the node's default assumptions, a budget of 48.
    fn bench200(contributors: u64) -> Conditions {
        Conditions {
            expected_contributors: contributors,
            available_nodes: 200,
            vector_len: 1000,
            latency_us: 268_500,
            broadcast_hops: gossip_hops(200, 6),
            bandwidth_kb_per_s: 1_024.0,
            link_model: LinkModel::PerNode,
            compute_us_per_kb: 50.0,
            crypto_us: 2_000.0,
            failure_per_s: 1e-4,
            min_threshold: 2,
            completeness_target: 0.99,
            k_min: 1,
            connection_budget: Some(48),
        }
    }

    #[test]
    fn leaf_members_hold_no_more_connections_than_the_budget() {
        let bench = Fixed {
            g: Some(5),
            t: Some(3),
            fan_in: None,
            min_spare: 1,
        };
        let loose = ExposureGoal {
            target: 1e-2,
            colluding_fraction: 0.1,
        };
        for contributors in [100, 200] {
            let c = bench200(contributors);
            for (fixed, goal) in [(bench, ExposureGoal::default()), (Fixed::default(), loose)] {
                let p = plan_private(&c, &goal, &fixed).unwrap().choice;
                let (g, leaf) = (p.privacy.g, p.leaf_size);
                let held = c.leaf_member_connections(g, leaf);
                assert!(held <= 48.0, "{held} connections: {p:?}");
                assert!(p.tree.leaf_groups > 1, "{p:?}");
                assert!(p.predicted_completeness >= c.completeness_target, "{p:?}");
            }
            let p = plan(&c).unwrap();
            assert!(c.leaf_member_connections(p.privacy.g, p.leaf_size) <= 48.0);
            // Without the bound the same conditions give larger leaves: for 100 expected
            // contributors (what `grove compute` assumes of 200 nodes) one leaf, whose 5
            // members would hold a connection to each of the 200 nodes; for 200, 7 leaves.
            let free = Conditions {
                connection_budget: None,
                ..c
            };
            let p = plan_private(&free, &ExposureGoal::default(), &bench).unwrap();
            assert!(
                free.leaf_member_connections(5, p.choice.leaf_size) > 48.0,
                "{p:?}"
            );
            if contributors == 100 {
                assert_eq!(p.choice.tree.leaf_groups, 1, "{p:?}");
            }
        }
    }

    #[test]
    fn leaf_member_connections_count_the_served_nodes_their_spread_and_two_groups() {
        let c = bench200(100);
        // One leaf: every node, no spread, plus 2g.
        assert!((c.leaf_member_connections(5, 128) - 210.0).abs() < 1e-9);
        // 13 leaves of 200 nodes: 15.4 on average, sd 3.7.
        let p: f64 = 1.0 / 13.0;
        let want = 200.0 * p + 3.0 * (200.0 * p * (1.0 - p)).sqrt() + 10.0;
        assert!((c.leaf_member_connections(5, 8) - want).abs() < 1e-9);
        assert!(c.fits_connections(5, 8) && !c.fits_connections(5, 16));
        let unbounded = Conditions {
            connection_budget: None,
            ..c
        };
        assert!(unbounded.fits_connections(5, 128));
    }

    #[test]
    fn the_exposure_goal_comes_before_the_connection_budget() {
        // Groups of 12 fit 200 nodes only with leaves of 24 nodes or more: no shape below
        // 1e-9 fits a budget of 48; the planner keeps the goal and the fewest connections.
        let c = bench200(100);
        let p = plan_private(&c, &ExposureGoal::default(), &Fixed::default()).unwrap();
        assert!(p.meets_goal, "{p:?}");
        let (g, leaf) = (p.choice.privacy.g, p.choice.leaf_size);
        let held = c.leaf_member_connections(g, leaf);
        assert!(held > 48.0, "{p:?}");
        for s in shapes(&c, &ExposureGoal::default(), 0) {
            if ExposureGoal::default().met_by(s.4) {
                assert!(c.leaf_member_connections(s.0, s.3) >= held - 1e-9, "{s:?}");
            }
        }
    }

    #[test]
    fn binomial_cdf_is_a_distribution() {
        assert!((binomial_cdf(7, 0.1, 7) - 1.0).abs() < 1e-12);
        assert!((binomial_cdf(7, 0.0, 0) - 1.0).abs() < 1e-12);
        let p0 = 0.9f64.powi(7);
        assert!((binomial_cdf(7, 0.1, 0) - p0).abs() < 1e-12);
        assert!(binomial_cdf(7, 0.1, 2) > binomial_cdf(7, 0.1, 1));
    }

    #[test]
    fn the_plan_meets_the_threshold_and_the_target_when_it_can() {
        let c = dissec();
        let choice = plan(&c).unwrap();
        assert_eq!(choice.privacy.t, 5);
        assert!(choice.privacy.g >= 5);
        assert!(choice.predicted_completeness >= 0.995, "{choice:?}");
        let t = choice.tree.timeouts;
        assert!(t.share_window > 0 && t.heal_attempt > 0 && t.release_window > 0);
    }

    #[test]
    fn without_failures_the_fastest_plan_uses_g_equal_t() {
        let mut c = dissec();
        c.failure_per_s = 0.0;
        let choice = plan(&c).unwrap();
        assert_eq!(choice.privacy.g, choice.privacy.t);
        // Only contributors alone in their leaf are missing.
        let leaves = u64::from(choice.tree.leaf_groups);
        let lone = lone_probability(c.expected_contributors, leaves);
        assert!((choice.predicted_completeness - (1.0 - lone)).abs() < 1e-12);
    }

    #[test]
    fn more_failures_never_lower_the_group_size_or_redundancy() {
        let mut c = dissec();
        let mut last = 0u8;
        for rate in [0.0, 0.0025, 0.01, 0.05] {
            c.failure_per_s = rate;
            let choice = plan(&c).unwrap();
            assert!(choice.privacy.g - choice.privacy.t >= last.saturating_sub(1));
            last = choice.privacy.g - choice.privacy.t;
        }
        assert!(last >= 1);
    }

    #[test]
    fn bigger_vectors_take_longer() {
        let mut c = dissec();
        let small = plan(&c).unwrap().predicted_latency_us;
        c.vector_len *= 4;
        let big = plan(&c).unwrap().predicted_latency_us;
        assert!(big > small);
    }

    #[test]
    fn parallel_links_make_wide_trees_cheaper() {
        let mut c = dissec();
        let serial = plan(&c).unwrap();
        c.link_model = LinkModel::PerLink;
        let parallel = plan(&c).unwrap();
        assert!(parallel.predicted_latency_us < serial.predicted_latency_us);
        assert!(parallel.tree.fan_in >= serial.tree.fan_in);
    }

    #[test]
    fn exposure_is_the_binomial_tail() {
        // ARCHITECTURE.md's table, at 10% colluders.
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-3 * b;
        assert!(
            close(exposure(5, 3, 0.1), 8.56e-3),
            "{}",
            exposure(5, 3, 0.1)
        );
        assert!(close(exposure(12, 11, 0.1), 1.09e-10));
        assert!(close(exposure(10, 10, 0.1), 1e-10));
        assert!(close(exposure(16, 10, 0.1), 4.526e-7));
        // Exactly on the default target: not below it, whichever way the float rounds.
        let goal = ExposureGoal::default();
        assert!(close(exposure(11, 10, 0.1), 1e-9));
        assert!(!goal.met_by(exposure(11, 10, 0.1)) && !goal.met_by(exposure(9, 9, 0.1)));
        assert!(goal.met_by(exposure(12, 11, 0.1)));
        assert_eq!(exposure(3, 4, 0.5), 0.0);
        assert!((exposure(4, 1, 0.3) - (1.0 - 0.7f64.powi(4))).abs() < 1e-12);
    }

    #[test]
    fn a_contributor_is_alone_with_about_e_to_the_minus_leaf_size() {
        let p = lone_probability(1_000_000, 1_000_000 / 4);
        assert!((p - (-4.0f64).exp()).abs() < 1e-4, "{p}");
        assert_eq!(lone_probability(10, 1), 0.0);
        assert_eq!(lone_probability(1, 5), 1.0);
        // The prediction carries it: with nothing failing, leaves of 4 lose about 1.8%.
        let mut c = dissec();
        c.failure_per_s = 0.0;
        let (_, four, _) = c.predict(5, 5, 8, 4);
        let (_, sixteen, _) = c.predict(5, 5, 8, 16);
        assert!(four < 0.983 && four > 0.98, "{four}");
        assert!(sixteen > 1.0 - 1e-6, "{sixteen}");
        // So no plan with a 99% target takes leaves of 4.
        c.completeness_target = 0.99;
        assert!(plan(&c).unwrap().leaf_size > 4);
    }

    /// Every shape `plan_private` considers, with its exposure, latency and completeness.
    fn shapes(
        c: &Conditions,
        goal: &ExposureGoal,
        min_spare: u8,
    ) -> Vec<(u8, u8, u32, u32, f64, f64, f64)> {
        let mut out = Vec::new();
        for t in c.min_threshold.max(2)..=MAX_GROUP_SIZE {
            for g in (t + min_spare)..=(t + 4).min(MAX_GROUP_SIZE) {
                for &fan_in in &FAN_INS {
                    for &leaf in &LEAF_SIZES {
                        let leaves = c.expected_contributors.div_ceil(u64::from(leaf));
                        if !tree_fits(tree_size(leaves, u64::from(fan_in)).0, g, c.available_nodes)
                        {
                            continue;
                        }
                        let (latency, completeness, _) = c.predict(g, t, fan_in, leaf);
                        let e = exposure(g, t, goal.colluding_fraction);
                        out.push((g, t, fan_in, leaf, e, latency, completeness));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_private_plan_is_the_fastest_below_the_exposure_target() {
        let goal = ExposureGoal::default();
        for min_spare in [0, 1] {
            for failure in [0.0, 0.0025, 0.01] {
                let mut c = dissec();
                c.min_threshold = 2;
                c.failure_per_s = failure;
                let rules = Fixed {
                    min_spare,
                    ..Fixed::default()
                };
                let p = plan_private(&c, &goal, &rules).unwrap();
                assert!(p.meets_goal && p.exposure < 1e-9, "{p:?}");
                let (g, t) = (p.choice.privacy.g, p.choice.privacy.t);
                assert_eq!(p.exposure, exposure(g, t, 0.1));
                assert!(g - t >= min_spare, "{p:?}");
                assert!(p.choice.predicted_completeness >= c.completeness_target);
                // No other shape below both targets is faster.
                let mut rivals = 0;
                for s in shapes(&c, &goal, min_spare) {
                    if goal.met_by(s.4) && s.6 >= c.completeness_target {
                        rivals += 1;
                        assert!(
                            s.5 >= p.choice.predicted_latency_us as f64 - 1.0,
                            "{s:?} beats {p:?}"
                        );
                    }
                }
                assert!(rivals > 10, "{rivals}");
            }
        }
        // Without failures: one full vector and the smallest threshold below 1e-9 (g = t =
        // 10: 1e-10; 9 sits on the target). With one spare member: g = 12, t = 11 (1.1e-10;
        // g = 11, t = 10 sits on the target), two full vectors per contributor.
        let mut c = dissec();
        c.min_threshold = 2;
        c.failure_per_s = 0.0;
        let p = plan_private(&c, &goal, &Fixed::default()).unwrap();
        assert_eq!((p.choice.privacy.g, p.choice.privacy.t), (10, 10), "{p:?}");
        let spare = Fixed {
            min_spare: 1,
            ..Fixed::default()
        };
        let p = plan_private(&c, &goal, &spare).unwrap();
        assert_eq!((p.choice.privacy.g, p.choice.privacy.t), (12, 11), "{p:?}");
        assert!((p.exposure - 1.09e-10).abs() < 1e-12, "{p:?}");
    }

    #[test]
    fn a_network_too_small_for_the_goal_gets_the_least_exposed_plan_that_fits() {
        let goal = ExposureGoal::default();
        let mut c = dissec();
        c.min_threshold = 2;
        c.expected_contributors = 6;
        c.available_nodes = 12;
        let p = plan_private(&c, &goal, &Fixed::default()).unwrap();
        assert!(!p.meets_goal, "{p:?}");
        // One group of at most 6 members fits 12 nodes (half of them for backups).
        let best = shapes(&c, &goal, 0)
            .into_iter()
            .filter(|s| s.6 >= c.completeness_target)
            .map(|s| s.4)
            .fold(f64::INFINITY, f64::min);
        assert_eq!(p.exposure, best);
        assert!(p.choice.privacy.g <= 6 && p.exposure > 1e-9, "{p:?}");
    }

    #[test]
    fn fixed_parameters_are_kept_and_their_exposure_reported() {
        let goal = ExposureGoal::default();
        let mut c = dissec();
        c.min_threshold = 2;
        let fixed = Fixed {
            g: Some(5),
            t: Some(3),
            fan_in: Some(4),
            min_spare: 1,
        };
        let p = plan_private(&c, &goal, &fixed).unwrap();
        assert_eq!((p.choice.privacy.g, p.choice.privacy.t), (5, 3));
        assert_eq!(p.choice.tree.fan_in, 4);
        assert!(
            !p.meets_goal && (p.exposure - 8.56e-3).abs() < 1e-5,
            "{p:?}"
        );
        // A fixed threshold alone: the planner picks g around it.
        let fixed = Fixed {
            t: Some(12),
            ..Fixed::default()
        };
        let p = plan_private(&c, &goal, &fixed).unwrap();
        assert_eq!(p.choice.privacy.t, 12);
        assert!(p.meets_goal);
        // A looser goal allows smaller groups.
        let loose = ExposureGoal {
            target: 1e-2,
            colluding_fraction: 0.1,
        };
        let p = plan_private(&c, &loose, &Fixed::default()).unwrap();
        assert!(p.choice.privacy.t < 10, "{p:?}");
        let bad = Fixed {
            g: Some(3),
            t: Some(5),
            ..Fixed::default()
        };
        assert!(plan_private(&c, &goal, &bad).is_err());
    }

    #[test]
    fn invalid_conditions_are_errors() {
        let mut c = dissec();
        c.bandwidth_kb_per_s = 0.0;
        assert!(plan(&c).is_err());
        let mut c = dissec();
        c.min_threshold = 0;
        assert!(plan(&c).is_err());
        let mut c = dissec();
        c.available_nodes = 3;
        assert!(matches!(plan(&c), Err(PlannerError::NoPlan(_))));
    }
}
