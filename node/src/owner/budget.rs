//! The owner's privacy budget per commissioner (`grove trust add --epsilon-per-month E`).
//!
//! Each contribution to a query `WITH PRIVACY EPSILON e DELTA d` spends that query's
//! zero-concentrated budget `rho = dp::rho_for(e, d)` from the commissioner's budget; zCDP
//! composes by adding `rho` (Bun and Steinke 2016, Lemma 2.3). The budget of `E` per period
//! is `dp::rho_for(E, dp::BUDGET_DELTA)`: everything the commissioner obtains from this
//! owner over the period is then `(E, 1e-9)`-DP with respect to the owner's records (taking
//! no credit for other owners' noise or for the period's queries' own deltas). The period is a
//! rolling 30 days, not a calendar month (a calendar month would give twice the budget over
//! two days around its turn). The ledger is the consent history itself: every contribution's
//! entry (with its query text) is committed to the store before the contribution is sent, and
//! kept for the period, so what was spent survives a restart and cannot be forgotten.
//!
//! A commissioner whose trust has a budget gets no contribution to a query without a privacy
//! clause: its result would spend without bound.

use crate::store::ConsentEntry;
use grove_protocol::dp;
use grove_protocol::query::Query;

/// The period over which a budget is spent, in seconds (a rolling 30 days). The consent
/// history (the ledger) must be kept at least this long: `consent.rs` asserts it where it
/// sets how long the history is kept.
pub const PERIOD_SECS: u64 = 30 * 86_400;

/// The smallest and largest budget a trust may state, in epsilon per period.
pub const MIN_BUDGET_EPSILON: f64 = dp::MIN_EPSILON;
pub const MAX_BUDGET_EPSILON: f64 = dp::MAX_EPSILON;

/// The zCDP `rho` a query spends: `None` for a query without a privacy clause (or one that
/// does not parse).
pub fn query_rho(query: &Query) -> Option<f64> {
    let p = query.privacy.as_ref()?;
    dp::rho_for(p.epsilon, p.delta).ok()
}

/// The `rho` of a budget of `epsilon` per period.
pub fn budget_rho(epsilon: f64) -> f64 {
    dp::rho_for(epsilon, dp::BUDGET_DELTA).unwrap_or(0.0)
}

/// What the commissioner's contributions in `history` (this commissioner's) spent over the
/// period that ends at `now_micros`, in `rho`.
pub fn spent(history: &[ConsentEntry], now_micros: u64) -> f64 {
    let since = now_micros.saturating_sub(PERIOD_SECS * 1_000_000);
    history
        .iter()
        .filter(|h| h.at_micros > since)
        .filter_map(|h| Query::parse(&h.query).ok())
        .filter_map(|q| query_rho(&q))
        .sum()
}

/// A `rho` as the epsilon it gives at the budget's delta, and as itself.
pub fn describe(rho: f64) -> String {
    format!(
        "epsilon {:.3} at delta {:e} (zCDP rho {:.5})",
        dp::epsilon_for(rho, dp::BUDGET_DELTA),
        dp::BUDGET_DELTA,
        rho
    )
}

/// Whether `query` fits a budget of `epsilon` per period after `history`: `Ok` with what
/// will have been spent, or why not.
pub fn check(
    epsilon: f64,
    query: &Query,
    history: &[ConsentEntry],
    now_micros: u64,
) -> Result<String, String> {
    let limit = budget_rho(epsilon);
    let Some(cost) = query_rho(query) else {
        return Err(format!(
            "this commissioner has a privacy budget of epsilon {epsilon} per 30 days and the \
             query asks for no WITH PRIVACY"
        ));
    };
    let spent = spent(history, now_micros);
    if spent + cost > limit {
        return Err(format!(
            "privacy budget spent: {} of {} used in the last 30 days, the query needs {}",
            describe(spent),
            describe(limit),
            describe(cost)
        ));
    }
    Ok(format!(
        "privacy budget: {} of {} spent in the last 30 days with this query",
        describe(spent + cost),
        describe(limit)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: u64, q: &str) -> ConsentEntry {
        ConsentEntry {
            computation: format!("{at}"),
            at_micros: at,
            query: q.into(),
        }
    }

    const DP: &str = "SELECT count(*) FROM t LIMIT PER CONTRIBUTOR 1 \
                      WITH PRIVACY EPSILON 1 DELTA 1e-9";

    #[test]
    fn spending_composes_and_ages_out() {
        let q = Query::parse(DP).unwrap();
        let day = 86_400_000_000u64;
        let now = 100 * day;
        // A budget of 4 at delta 1e-9 holds 14 queries at epsilon 1 (zCDP adds rho: 14 of
        // them are (3.86, 1e-9)-DP together), where basic composition would allow 4.
        let mut history = Vec::new();
        let mut fits = 0;
        while check(4.0, &q, &history, now).is_ok() {
            history.push(entry(now - 1, DP));
            fits += 1;
        }
        assert_eq!(fits, 14);
        let e = check(4.0, &q, &history, now).unwrap_err();
        assert!(e.contains("privacy budget spent"), "{e}");
        // 31 days later the period holds none of them.
        assert!(check(4.0, &q, &history, now + 31 * day).is_ok());
        // Queries without a privacy clause spend nothing, and are refused under a budget.
        let plain = Query::parse("SELECT count(*) FROM t").unwrap();
        assert!(check(4.0, &plain, &[], now).is_err());
        assert_eq!(spent(&[entry(now - 1, "SELECT count(*) FROM t")], now), 0.0);
    }
}
