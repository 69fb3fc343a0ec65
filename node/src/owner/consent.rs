//! The owner's consent: whether this node contributes to a request, and which rule decided.
//!
//! Pure: the daemon passes the request, the commissioner's trust entry (if any) and the
//! commissioner's recent history of requests this node contributed to, and gets a
//! [`Decision`]. Rules are checked in the order of [`Rule`]; the first that fails declines.
//! ARCHITECTURE.md ("Consent") states the rules, the differencing rule among them.

use crate::owner::budget;
use crate::owner::defaults::{
    DEFAULT_DIFFERENCING_WINDOW_SECS, DEFAULT_MAX_GROUP_KEYS, DEFAULT_MAX_PER_DAY, DEFAULT_MIN_T,
};
use crate::owner::query::fields_read;
use crate::store::{ConsentEntry, TrustEntry};
use grove_protocol::encoding::ContributionSpec;
use grove_protocol::query::{CmpOp, Expr, Literal, Predicate, Query};
use grove_protocol::validity::circuit::CircuitType;
use std::cmp::Ordering;

/// Microseconds in a day: the rate limit's window.
pub const DAY_MICROS: u64 = 86_400_000_000;
/// Longest differencing window, in seconds (30 days); the consent history keeps this long.
pub const MAX_DIFFERENCING_WINDOW_SECS: u64 = 30 * 86_400;

// The consent history is also the privacy budget's ledger: keeping it this long keeps every
// contribution of the budget's period.
const _: () = assert!(budget::PERIOD_SECS <= MAX_DIFFERENCING_WINDOW_SECS);

/// The rule that decided. Its `name` is what the audit log records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The node already contributed to this computation.
    Duplicate,
    /// The commissioner's key is not in the trust list (default deny).
    Untrusted,
    /// The query text does not parse or compile on this node.
    Query,
    /// No contribution to the query can be proven valid: its validity circuit is over the
    /// validity limits (`CircuitError::TooLarge`) or cannot be built. Contributing would
    /// let every other contributor's value in unchecked, so an honest node declines.
    Validity,
    /// The query's collection is not one the trust allows.
    Collection,
    /// The query reads a field the trust does not allow.
    Fields,
    /// The query declares more `GROUP BY` keys (or buckets) than the trust allows.
    GroupKeys,
    /// The request's `k_min` is below the trust's floor.
    KMin,
    /// The request's threshold `t` is below the trust's minimum.
    Threshold,
    /// The commissioner already had this node in `max_per_day` computations in the last day.
    Rate,
    /// The same query (canonical text) ran with this node's contribution inside the
    /// differencing window, and the trust does not allow repeats.
    Repeat,
    /// The request differs from one this node contributed to, within the window, only by a
    /// narrowing or widening `WHERE` (see [`differencing_pair`]).
    Differencing,
    /// The trust has a privacy budget and the query would overspend it, or asks for no
    /// differential privacy (`owner/budget.rs`).
    PrivacyBudget,
    /// Every rule passed.
    Trusted,
    /// Trust mode "ask": the request waits for the owner's answer, or its share window ended
    /// before the owner answered (or the queue was full).
    Ask,
    /// The owner answered a waiting request (approved or declined).
    Owner,
    /// The node's store could not be read or written while deciding (the consent history, the
    /// records, the consent record itself): declined, never contributed on a guess.
    Store,
    /// The engine refused the contribution the rules accepted.
    Engine,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::Duplicate => "duplicate",
            Rule::Untrusted => "untrusted",
            Rule::Query => "query",
            Rule::Validity => "validity",
            Rule::Collection => "collection",
            Rule::Fields => "fields",
            Rule::GroupKeys => "group_keys",
            Rule::KMin => "k_min",
            Rule::Threshold => "t",
            Rule::Rate => "rate",
            Rule::Repeat => "repeat",
            Rule::Differencing => "differencing",
            Rule::PrivacyBudget => "privacy_budget",
            Rule::Trusted => "trusted",
            Rule::Ask => "ask",
            Rule::Owner => "owner",
            Rule::Store => "store",
            Rule::Engine => "engine",
        }
    }
}

/// The trust entry `grove trust add` stores: the limits given, each missing one at its
/// default (`k_min >= DEFAULT_MIN_K` is the control protocol's default, `t >= DEFAULT_MIN_T`,
/// at most `DEFAULT_MAX_GROUP_KEYS` keys, repeats declined), `k_min` at least 1, `t` at least 2
/// (requests refuse less anyway), the window at most `MAX_DIFFERENCING_WINDOW_SECS`.
pub fn trust_entry(
    key: String,
    collections: Vec<String>,
    label: String,
    min_contributors: u64,
    limits: crate::control::TrustLimits,
    now_micros: u64,
) -> TrustEntry {
    TrustEntry {
        key,
        collections,
        label,
        added_at_micros: now_micros,
        min_contributors: min_contributors.max(1),
        fields: limits.fields,
        max_per_day: limits.max_per_day.unwrap_or(DEFAULT_MAX_PER_DAY),
        min_t: limits.min_t.unwrap_or(DEFAULT_MIN_T).max(2),
        differencing_window_secs: limits
            .differencing_window_secs
            .unwrap_or(DEFAULT_DIFFERENCING_WINDOW_SECS)
            .min(MAX_DIFFERENCING_WINDOW_SECS),
        max_group_keys: limits.max_group_keys.unwrap_or(DEFAULT_MAX_GROUP_KEYS),
        allow_repeats: limits.allow_repeats,
        mode: limits.mode.unwrap_or_default(),
        epsilon_per_month_milli: limits
            .epsilon_per_month
            .map(|e| (e * 1000.0).round() as u64),
    }
}

/// What the node knows of a request when it decides.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    /// Hex computation id.
    pub computation: String,
    /// Hex commissioner key.
    pub commissioner: String,
    pub query: String,
    /// The request's contribution spec: it must be exactly what the query compiles to.
    pub spec: ContributionSpec,
    pub k_min: u64,
    pub t: u8,
    /// When the node decides, in microseconds since the epoch.
    pub now_micros: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub accept: bool,
    pub rule: Rule,
    /// Why, in words; never a value of the owner's records.
    pub reason: String,
}

fn decline(rule: Rule, reason: String) -> Decision {
    Decision {
        accept: false,
        rule,
        reason,
    }
}

/// Decides on `request`. `history` holds this commissioner's requests this node contributed
/// to (any order, any age); `contributed_here` says whether the node holds a contribution to
/// this very computation (its engine log or its history).
pub fn decide(
    request: &RequestInfo,
    trust: Option<&TrustEntry>,
    history: &[ConsentEntry],
    contributed_here: bool,
) -> Decision {
    let who = &request.commissioner;
    if contributed_here || history.iter().any(|h| h.computation == request.computation) {
        return decline(
            Rule::Duplicate,
            "this node already contributed to this computation".into(),
        );
    }
    let Some(trust) = trust else {
        return decline(
            Rule::Untrusted,
            format!("commissioner {who} is not trusted"),
        );
    };
    let compiled = match Query::parse(&request.query).and_then(|q| q.compile()) {
        Ok(c) if c.spec() == &request.spec => c,
        Ok(_) => {
            return decline(
                Rule::Query,
                "the request's contribution spec is not the one its query compiles to".into(),
            )
        }
        Err(e) => return decline(Rule::Query, format!("the query is not valid here: {e}")),
    };
    // Checked from the query's shape before anything per element is built.
    if let Err(e) = CircuitType::of_query(&compiled) {
        return decline(
            Rule::Validity,
            format!("no contribution to this query can be proven valid: {e}"),
        );
    }
    let query = compiled.query().clone();
    if !trust.collections.is_empty() && !trust.collections.contains(&query.collection) {
        return decline(
            Rule::Collection,
            format!(
                "commissioner {who} is not trusted with collection {:?}",
                query.collection
            ),
        );
    }
    if !trust.fields.is_empty() {
        let denied: Vec<String> = fields_read(&query)
            .into_iter()
            .filter(|f| !trust.fields.contains(f))
            .collect();
        if !denied.is_empty() {
            return decline(
                Rule::Fields,
                format!("commissioner {who} is not trusted with field(s) {denied:?}"),
            );
        }
    }
    let keys = if query.group_by.is_some() {
        compiled.rows().len()
    } else {
        0
    };
    if keys > trust.max_group_keys as usize {
        return decline(
            Rule::GroupKeys,
            format!(
                "the query declares {keys} GROUP BY keys, more than the {} this node allows commissioner {who}",
                trust.max_group_keys
            ),
        );
    }
    if request.k_min < trust.min_contributors {
        return decline(
            Rule::KMin,
            format!(
                "k_min = {} is below the {} contributors this node requires of commissioner {who}",
                request.k_min, trust.min_contributors
            ),
        );
    }
    if request.t < trust.min_t {
        return decline(
            Rule::Threshold,
            format!(
                "threshold t = {} is below the t >= {} this node requires of commissioner {who}",
                request.t, trust.min_t
            ),
        );
    }
    let since_day = request.now_micros.saturating_sub(DAY_MICROS);
    let today = history.iter().filter(|h| h.at_micros > since_day).count();
    if today >= trust.max_per_day as usize {
        return decline(
            Rule::Rate,
            format!(
                "commissioner {who} already had this node in {today} computations in the last 24 h (limit {})",
                trust.max_per_day
            ),
        );
    }
    let window = trust
        .differencing_window_secs
        .min(MAX_DIFFERENCING_WINDOW_SECS)
        .saturating_mul(1_000_000);
    let since = request.now_micros.saturating_sub(window);
    let canonical = query.to_string();
    for h in history.iter().filter(|h| h.at_micros > since) {
        let Ok(earlier) = Query::parse(&h.query) else {
            continue;
        };
        if !trust.allow_repeats && earlier.to_string() == canonical {
            return decline(
                Rule::Repeat,
                format!(
                    "the same query ran as computation {} {} s ago (window {} s): a repeat \
                     while membership changes isolates whoever joined or left",
                    h.computation,
                    request.now_micros.saturating_sub(h.at_micros) / 1_000_000,
                    trust.differencing_window_secs
                ),
            );
        }
        if differencing_pair(&earlier, &query) {
            return decline(
                Rule::Differencing,
                format!(
                    "differs from computation {} of {} s ago only by a narrower or wider WHERE \
                     (window {} s)",
                    h.computation,
                    request.now_micros.saturating_sub(h.at_micros) / 1_000_000,
                    trust.differencing_window_secs
                ),
            );
        }
    }
    let mut spend = String::new();
    if let Some(milli) = trust.epsilon_per_month_milli {
        match budget::check(milli as f64 / 1000.0, &query, history, request.now_micros) {
            Ok(status) => spend = format!("; {status}"),
            Err(reason) => return decline(Rule::PrivacyBudget, reason),
        }
    }
    Decision {
        accept: true,
        rule: Rule::Trusted,
        reason: format!("commissioner {who} is trusted and every limit holds{spend}"),
    }
}

/// The differencing rule. Two queries form a differencing pair when
/// 1. everything but `WHERE` is the same (collection, aggregates, `GROUP BY`, clips,
///    `LIMIT PER CONTRIBUTOR`, `SCALE`: their canonical texts without `WHERE` are equal),
/// 2. their `WHERE`s differ (canonical text; a missing `WHERE` is "true"), and
/// 3. one `WHERE` implies the other ([`implies`]).
///
/// Then the difference of the two results is the same aggregate over the records (and the
/// contributors) that one filter keeps and the other drops: the attack the rule refuses.
pub fn differencing_pair(a: &Query, b: &Query) -> bool {
    let rest = |q: &Query| {
        Query {
            filter: None,
            ..q.clone()
        }
        .to_string()
    };
    let text = |q: &Query| q.filter.as_ref().map(|p| p.to_string()).unwrap_or_default();
    if rest(a) != rest(b) || text(a) == text(b) {
        return false;
    }
    let (ca, cb) = (conjuncts(a), conjuncts(b));
    implies(&ca, &cb) || implies(&cb, &ca)
}

/// The top-level conjuncts of a query's `WHERE` (nested `AND`s flattened); none without one.
fn conjuncts(q: &Query) -> Vec<&Predicate> {
    fn flatten<'a>(p: &'a Predicate, out: &mut Vec<&'a Predicate>) {
        match p {
            Predicate::And(ps) => ps.iter().for_each(|p| flatten(p, out)),
            other => out.push(other),
        }
    }
    let mut out = Vec::new();
    if let Some(p) = &q.filter {
        flatten(p, &mut out);
    }
    out
}

/// A sound, incomplete test of "every record the conjuncts `a` keep, the conjuncts `b` keep
/// too": every conjunct of `b` is implied by some conjunct of `a` ([`implies_one`]). So a
/// missing `WHERE` is implied by every `WHERE`, and adding a conjunct narrows.
pub fn implies(a: &[&Predicate], b: &[&Predicate]) -> bool {
    b.iter().all(|y| a.iter().any(|x| implies_one(x, y)))
}

/// `x` implies `y` when they print the same, or both constrain the same expression to a set
/// of constants and `x`'s set is inside `y`'s: intervals from `<`, `<=`, `>`, `>=`, `=` and
/// `BETWEEN` over constants of one kind (numbers, dates `YYYY-MM-DD`, other texts), lists
/// from `IN` and `=`, and prefixes from `LIKE` (a longer prefix implies a shorter one).
pub fn implies_one(x: &Predicate, y: &Predicate) -> bool {
    if x.to_string() == y.to_string() {
        return true;
    }
    if let (Some((ex, sx)), Some((ey, sy))) = (list_of(x), list_of(y)) {
        if ex == ey && sx.iter().all(|v| sy.contains(v)) {
            return true;
        }
    }
    if let (
        Predicate::Like {
            expr: ex,
            prefix: px,
        },
        Predicate::Like {
            expr: ey,
            prefix: py,
        },
    ) = (x, y)
    {
        return ex == ey && px.starts_with(py.as_str());
    }
    match (interval_of(x), interval_of(y)) {
        (Some((ex, ix)), Some((ey, iy))) => ex == ey && ix.inside(&iy),
        _ => false,
    }
}

fn list_of(p: &Predicate) -> Option<(&Expr, Vec<String>)> {
    match p {
        Predicate::In { expr, values } => {
            Some((expr, values.iter().map(|v| v.to_string()).collect()))
        }
        Predicate::Compare {
            expr,
            op: CmpOp::Eq,
            value,
        } => Some((expr, vec![value.to_string()])),
        _ => None,
    }
}

/// An ordered constant: a number, a date text, or another text.
#[derive(Clone, Debug, PartialEq)]
enum Key {
    Number(f64),
    Date(String),
    Text(String),
}

impl Key {
    fn of(l: &Literal) -> Option<Key> {
        match l {
            Literal::Number(x) => Some(Key::Number(*x)),
            Literal::Text(t) if grove_protocol::query::Date::parse_iso(t).is_some() => {
                Some(Key::Date(t.clone()))
            }
            Literal::Text(t) => Some(Key::Text(t.clone())),
            Literal::Bool(_) => None,
        }
    }
    fn kind(&self) -> u8 {
        match self {
            Key::Number(_) => 0,
            Key::Date(_) => 1,
            Key::Text(_) => 2,
        }
    }
    fn cmp(&self, o: &Key) -> Option<Ordering> {
        match (self, o) {
            (Key::Number(a), Key::Number(b)) => a.partial_cmp(b),
            (Key::Date(a), Key::Date(b)) | (Key::Text(a), Key::Text(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// One end of an interval: the constant and whether it is included.
type End = Option<(Key, bool)>;

struct Interval {
    low: End,
    high: End,
}

impl Interval {
    /// Whether every constant in `self` is in `o` (`None` ends are unbounded; constants of
    /// different kinds are never compared).
    fn inside(&self, o: &Interval) -> bool {
        let low_ok = match (&self.low, &o.low) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some((a, ai)), Some((b, bi))) => match a.cmp(b) {
                Some(Ordering::Greater) => true,
                Some(Ordering::Equal) => *bi || !*ai,
                _ => false,
            },
        };
        let high_ok = match (&self.high, &o.high) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some((a, ai)), Some((b, bi))) => match a.cmp(b) {
                Some(Ordering::Less) => true,
                Some(Ordering::Equal) => *bi || !*ai,
                _ => false,
            },
        };
        let kinds: Vec<u8> = [&self.low, &self.high, &o.low, &o.high]
            .iter()
            .filter_map(|e| e.as_ref().map(|(k, _)| k.kind()))
            .collect();
        let kinds_agree = kinds.windows(2).all(|w| w[0] == w[1]);
        low_ok && high_ok && kinds_agree
    }
}

fn interval_of(p: &Predicate) -> Option<(&Expr, Interval)> {
    match p {
        Predicate::Compare { expr, op, value } => {
            let k = Key::of(value)?;
            let i = match op {
                CmpOp::Lt => Interval {
                    low: None,
                    high: Some((k, false)),
                },
                CmpOp::Le => Interval {
                    low: None,
                    high: Some((k, true)),
                },
                CmpOp::Gt => Interval {
                    low: Some((k, false)),
                    high: None,
                },
                CmpOp::Ge => Interval {
                    low: Some((k, true)),
                    high: None,
                },
                CmpOp::Eq => Interval {
                    low: Some((k.clone(), true)),
                    high: Some((k, true)),
                },
                CmpOp::Ne => return None,
            };
            Some((expr, i))
        }
        Predicate::Between { expr, low, high } => Some((
            expr,
            Interval {
                low: Some((Key::of(low)?, true)),
                high: Some((Key::of(high)?, true)),
            },
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The audit log and the console filter by these names: each rule has its own, and the
    /// daemon's own reasons (ask, owner, store, engine) keep the names the audit always had.
    #[test]
    fn every_rule_has_its_own_audit_name() {
        let all = [
            Rule::Duplicate,
            Rule::Untrusted,
            Rule::Query,
            Rule::Validity,
            Rule::Collection,
            Rule::Fields,
            Rule::GroupKeys,
            Rule::KMin,
            Rule::Threshold,
            Rule::Rate,
            Rule::Repeat,
            Rule::Differencing,
            Rule::Trusted,
            Rule::Ask,
            Rule::Owner,
            Rule::Store,
            Rule::Engine,
        ];
        let names: std::collections::BTreeSet<_> = all.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), all.len());
        let daemon = [Rule::Ask, Rule::Owner, Rule::Store, Rule::Engine].map(Rule::name);
        assert_eq!(daemon, ["ask", "owner", "store", "engine"]);
    }

    fn q(text: &str) -> Query {
        Query::parse(text).unwrap()
    }

    const BASE: &str = "SELECT sum(amount) FROM bank.operations";
    const TAIL: &str = "CLIP amount TO [0, 1000]";

    fn with(filter: &str) -> Query {
        if filter.is_empty() {
            q(&format!("{BASE} {TAIL}"))
        } else {
            q(&format!("{BASE} WHERE {filter} {TAIL}"))
        }
    }

    /// Safe defaults: a trust added without limits takes `k_min >= 10`, `t >= 3`, 64 keys and
    /// no repeats, and a `t` floor below 2 is raised to 2.
    #[test]
    fn a_trust_without_limits_takes_the_safe_defaults() {
        let request: crate::control::ControlRequest = serde_json::from_str(
            r#"{"op": "trust_add", "key": "k", "collections": [], "label": ""}"#,
        )
        .unwrap();
        let crate::control::ControlRequest::TrustAdd {
            key,
            collections,
            label,
            min_contributors,
            limits,
        } = request
        else {
            panic!("a trust_add");
        };
        let e = trust_entry(key, collections, label, min_contributors, limits, 1);
        assert_eq!(
            (
                e.min_contributors,
                e.min_t,
                e.max_group_keys,
                e.allow_repeats
            ),
            (10, 3, 64, false)
        );
        let low = crate::control::TrustLimits {
            min_t: Some(1),
            ..Default::default()
        };
        assert_eq!(
            trust_entry(String::new(), vec![], String::new(), 0, low, 1).min_t,
            2
        );
        assert_eq!(
            trust_entry(
                String::new(),
                vec![],
                String::new(),
                0,
                Default::default(),
                1
            )
            .min_contributors,
            1
        );
    }

    #[test]
    fn the_differencing_rule() {
        let pair = |a: &str, b: &str| differencing_pair(&with(a), &with(b));
        // The classic: everyone, then everyone but one person.
        assert!(pair("", "name != 'bob'"));
        assert!(pair("age >= 30", "age >= 30 AND name != 'bob'"));
        assert!(pair("age >= 30 AND name != 'bob'", "age >= 30"));
        // A range narrowed a little.
        assert!(pair("amount < 1000", "amount < 999"));
        assert!(pair(
            "amount BETWEEN 0 AND 100",
            "amount BETWEEN 0 AND 99.5"
        ));
        assert!(pair("date >= '2026-01-01'", "date >= '2026-01-02'"));
        assert!(pair("city IN ('a', 'b')", "city = 'a'"));
        assert!(pair("name LIKE 'bo%'", "name LIKE 'bob%'"));
        // Not pairs: the same query, disjoint or unrelated filters, other aggregates.
        assert!(!pair("amount < 1000", "amount < 1000"));
        assert!(!pair("city = 'a'", "city = 'b'"));
        assert!(!pair("amount < 10", "age < 10"));
        assert!(!pair("amount < 10", "amount > 5"));
        assert!(!pair("date >= '2026-01-01'", "date >= 'x'"));
        assert!(!differencing_pair(
            &with(""),
            &q(&format!(
                "SELECT avg(amount) FROM bank.operations WHERE name != 'bob' {TAIL}"
            ))
        ));
    }

    fn trust() -> TrustEntry {
        TrustEntry {
            key: "k".into(),
            collections: vec!["bank.operations".into()],
            label: String::new(),
            added_at_micros: 0,
            min_contributors: 3,
            fields: vec![],
            max_per_day: 2,
            min_t: 2,
            differencing_window_secs: 3600,
            max_group_keys: 3,
            allow_repeats: false,
            mode: Default::default(),
            epsilon_per_month_milli: None,
        }
    }

    /// A commissioner cannot shrink or drop the noise its query asks for: the request's noise
    /// is part of the spec, which must be exactly what the query compiles to.
    #[test]
    fn a_request_with_less_noise_than_its_query_asks_is_refused() {
        let now = 50 * DAY_MICROS;
        let dp = "SELECT count(*) FROM bank.operations LIMIT PER CONTRIBUTOR 1 \
                  WITH PRIVACY EPSILON 1 DELTA 1e-9";
        let honest = request(dp, now);
        assert!(honest.spec.noise.is_some(), "the DP query asks for noise");
        assert_eq!(
            decide(&honest, Some(&trust()), &[], false).rule,
            Rule::Trusted
        );
        let mut smaller = request(dp, now);
        if let Some(n) = smaller.spec.noise.as_mut() {
            n.sigma_milli.iter_mut().for_each(|s| *s /= 10);
        }
        assert_eq!(
            decide(&smaller, Some(&trust()), &[], false).rule,
            Rule::Query
        );
        let mut none = request(dp, now);
        none.spec.noise = None;
        assert_eq!(decide(&none, Some(&trust()), &[], false).rule, Rule::Query);
    }

    /// A query whose contributions cannot be proven valid (its validity circuit over the
    /// limits) is declined by its own rule, with the reason, even from a commissioner trusted
    /// with everything: contributing would let the other contributors in unchecked.
    #[test]
    fn a_query_whose_validity_circuit_is_over_the_limits_is_declined() {
        let now = 50 * DAY_MICROS;
        let t = TrustEntry {
            collections: vec![],
            ..trust()
        };
        let fits = request("SELECT sum_vector(w, 10000) FROM c CLIP NORM w TO 1", now);
        assert_eq!(decide(&fits, Some(&t), &[], false).rule, Rule::Trusted);
        // 4 rows of 1,000,000 coordinates: 4 million input elements.
        let over = request(
            "SELECT sum_vector(w, 1000000) FROM c GROUP BY k IN ('a', 'b', 'c', 'd') \
             CLIP NORM w TO 1",
            now,
        );
        let d = decide(&over, Some(&t), &[], false);
        assert_eq!(d.rule, Rule::Validity, "{}", d.reason);
        assert!(!d.accept);
        assert!(d.reason.contains("over the limit"), "{}", d.reason);
        assert_eq!(d.rule.name(), "validity");
    }

    /// A trust with a privacy budget takes queries WITH PRIVACY until the budget is spent
    /// (the history is the ledger), and no query without one.
    #[test]
    fn the_privacy_budget_rule() {
        let now = 50 * DAY_MICROS;
        let t = TrustEntry {
            epsilon_per_month_milli: Some(2000),
            max_per_day: 100,
            allow_repeats: true,
            ..trust()
        };
        let dp = "SELECT count(*) FROM bank.operations LIMIT PER CONTRIBUTOR 1 \
                  WITH PRIVACY EPSILON 1 DELTA 1e-9";
        let plain = "SELECT count(*) FROM bank.operations";
        let d = decide(&request(dp, now), Some(&t), &[], false);
        assert_eq!(d.rule, Rule::Trusted, "{}", d.reason);
        assert!(d.reason.contains("privacy budget"), "{}", d.reason);
        let d = decide(&request(plain, now), Some(&t), &[], false);
        assert_eq!(d.rule, Rule::PrivacyBudget);
        let spent: Vec<ConsentEntry> = (0..3)
            .map(|i| ConsentEntry {
                computation: format!("c{i}"),
                at_micros: now - 1000 - i,
                query: dp.into(),
            })
            .collect();
        let d = decide(&request(dp, now), Some(&t), &spent[..2], false);
        assert_eq!(d.rule, Rule::Trusted, "{}", d.reason);
        let d = decide(&request(dp, now), Some(&t), &spent, false);
        assert_eq!(d.rule, Rule::PrivacyBudget, "{}", d.reason);
        assert!(d.reason.contains("privacy budget spent"), "{}", d.reason);
        // Without a budget, neither is limited by it.
        assert_eq!(
            decide(&request(plain, now), Some(&trust()), &[], false).rule,
            Rule::Trusted
        );
    }

    fn request(query: &str, now: u64) -> RequestInfo {
        let spec = Query::parse(query)
            .and_then(|q| q.compile())
            .map(|c| c.spec().clone())
            .unwrap_or(ContributionSpec::uniform(0, 0.0, 0.0, 0));
        RequestInfo {
            computation: format!("c{now}"),
            commissioner: "k".into(),
            query: query.into(),
            spec,
            k_min: 3,
            t: 2,
            now_micros: now,
        }
    }

    fn earlier(query: &str, at: u64) -> ConsentEntry {
        ConsentEntry {
            computation: format!("c{at}"),
            at_micros: at,
            query: query.into(),
        }
    }

    #[test]
    fn each_rule_decides() {
        let t = trust();
        let good = format!("{BASE} {TAIL}");
        let hour = 3_600_000_000u64;
        let now = 100 * DAY_MICROS;
        let rule = |r: &RequestInfo, t: Option<&TrustEntry>, h: &[ConsentEntry]| {
            decide(r, t, h, false).rule
        };
        assert_eq!(rule(&request(&good, now), Some(&t), &[]), Rule::Trusted);
        // A spec wider than the query's: refused.
        let mut wide = request(&good, now);
        wide.spec.bounds[0].max *= 10.0;
        assert_eq!(rule(&wide, Some(&t), &[]), Rule::Query);
        assert_eq!(rule(&request(&good, now), None, &[]), Rule::Untrusted);
        assert_eq!(
            decide(&request(&good, now), Some(&t), &[], true).rule,
            Rule::Duplicate
        );
        assert_eq!(
            rule(&request(&good, now), Some(&t), &[earlier(&good, now)]),
            Rule::Duplicate
        );
        assert_eq!(
            rule(&request("SELECT summ(x) FROM c", now), Some(&t), &[]),
            Rule::Query
        );
        assert_eq!(
            rule(&request("SELECT count(*) FROM health", now), Some(&t), &[]),
            Rule::Collection
        );
        let fields = TrustEntry {
            fields: vec!["amount".into()],
            ..trust()
        };
        assert_eq!(
            rule(&request(&good, now), Some(&fields), &[]),
            Rule::Trusted
        );
        let q = format!("{BASE} WHERE name = 'x' {TAIL}");
        assert_eq!(rule(&request(&q, now), Some(&fields), &[]), Rule::Fields);
        let low_k = RequestInfo {
            k_min: 2,
            ..request(&good, now)
        };
        assert_eq!(rule(&low_k, Some(&t), &[]), Rule::KMin);
        let low_t = RequestInfo {
            t: 1,
            ..request(&good, now)
        };
        assert_eq!(rule(&low_t, Some(&t), &[]), Rule::Threshold);
        // Two computations in the last day: the third is declined; older ones do not count.
        let other = "SELECT count(*) FROM bank.operations";
        let two = [earlier(other, now - 2 * hour), earlier(other, now - hour)];
        assert_eq!(rule(&request(&good, now), Some(&t), &two), Rule::Rate);
        let old = [
            earlier(other, now - DAY_MICROS - 1),
            earlier(other, now - hour),
        ];
        assert_eq!(rule(&request(&good, now), Some(&t), &old), Rule::Trusted);
        // Differencing within the window (one hour), not after it.
        let narrow = format!("{BASE} WHERE name != 'bob' {TAIL}");
        let recent = [earlier(&good, now - hour / 2)];
        let d = decide(&request(&narrow, now), Some(&t), &recent, false);
        assert_eq!(d.rule, Rule::Differencing);
        assert!(!d.accept);
        let stale = [earlier(&good, now - hour - 1)];
        assert_eq!(
            rule(&request(&narrow, now), Some(&t), &stale),
            Rule::Trusted
        );
        // The same query again inside the window is a repeat, unless the trust allows them;
        // outside the window it is not. Its canonical text decides, not its spelling.
        let spelled = format!("select   sum(amount) from bank.operations {TAIL}");
        assert_eq!(
            rule(
                &request(&good, now),
                Some(&t),
                &[earlier(&spelled, now - hour / 2)]
            ),
            Rule::Repeat
        );
        let repeats = TrustEntry {
            allow_repeats: true,
            ..trust()
        };
        assert_eq!(
            rule(&request(&good, now), Some(&repeats), &recent),
            Rule::Trusted
        );
        assert_eq!(rule(&request(&good, now), Some(&t), &stale), Rule::Trusted);
        // GROUP BY keys: three allowed, four declined; buckets count as keys.
        let keys = |n: usize| {
            let list: Vec<String> = (0..n).map(|i| format!("'k{i}'")).collect();
            format!("{BASE} GROUP BY name IN ({}) {TAIL}", list.join(", "))
        };
        assert_eq!(rule(&request(&keys(3), now), Some(&t), &[]), Rule::Trusted);
        assert_eq!(
            rule(&request(&keys(4), now), Some(&t), &[]),
            Rule::GroupKeys
        );
        let buckets = format!("{BASE} GROUP BY bucket(age, [0, 1, 2, 3, 4]) {TAIL}");
        assert_eq!(
            rule(&request(&buckets, now), Some(&t), &[]),
            Rule::GroupKeys
        );
    }
}
