//! Computation slots shared among commissioners. A node holds state for at most
//! [`MAX_COMPUTATIONS`] computations; without shares, one key signing valid seven-day requests
//! would take them all and every later request, a trusted commissioner's included, would be
//! refused as busy. So:
//!
//! - one commissioner holds at most [`MAX_COMPUTATIONS_PER_COMMISSIONER`] slots
//!   ([`Rejection::CommissionerOverQuota`]);
//! - commissioners the owner does not trust hold at most [`MAX_UNTRUSTED_COMPUTATIONS`]
//!   together ([`Rejection::UntrustedOverQuota`]), so the rest stays free for trusted ones.
//!
//! The driver names the trusted commissioners ([`crate::engine::Engine::set_trusted`]); until
//! it does (the harness, the simulator) every commissioner counts as trusted. A computation the
//! node launches itself (its owner's command) is always trusted.

use super::{Computation, Rejection};
use crate::ids::ComputationId;
use crate::limits::{
    MAX_COMPUTATIONS, MAX_COMPUTATIONS_PER_COMMISSIONER, MAX_UNTRUSTED_COMPUTATIONS,
};
use crate::request::CommissionerKey;
use std::collections::{BTreeMap, BTreeSet};

/// Whether a request of `commissioner` may take a slot: `Ok`, or why not (the detail for the
/// refusal, and the rejection counted). `trusted`: `None` if every commissioner is. `waiting`:
/// the commissioners of the requests held for their beacon round, which hold slots too and
/// count against their commissioner's quotas like planned ones (else one key could park any
/// number of requests until their round comes out).
pub(super) fn admit<'a>(
    computations: &'a BTreeMap<ComputationId, Box<Computation>>,
    waiting: impl ExactSizeIterator<Item = &'a CommissionerKey>,
    trusted: Option<&BTreeSet<CommissionerKey>>,
    commissioner: &CommissionerKey,
) -> Result<(), (Option<Rejection>, String)> {
    if computations.len() + waiting.len() >= MAX_COMPUTATIONS {
        return Err((None, "too many computations in flight".into()));
    }
    let is_trusted = |k: &CommissionerKey| trusted.is_none_or(|t| t.contains(k));
    let mut own = 0;
    let mut untrusted = 0;
    let planned = computations
        .values()
        .map(|c| &c.signed.request.commissioner);
    for k in planned.chain(waiting) {
        if k == commissioner {
            own += 1;
        }
        if !is_trusted(k) {
            untrusted += 1;
        }
    }
    if own >= MAX_COMPUTATIONS_PER_COMMISSIONER {
        return Err((
            Some(Rejection::CommissionerOverQuota),
            format!("this commissioner already has {own} computations in flight"),
        ));
    }
    if !is_trusted(commissioner) && untrusted >= MAX_UNTRUSTED_COMPUTATIONS {
        return Err((
            Some(Rejection::UntrustedOverQuota),
            format!("untrusted commissioners already have {untrusted} computations in flight"),
        ));
    }
    Ok(())
}
