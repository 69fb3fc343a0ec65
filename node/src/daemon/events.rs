//! The engine's events: the audit log, the owner's consent on an accepted request, and the
//! answer to a waiting `compute` (the released table, or why it failed).

use super::{Node, Waiter};
use crate::control::ControlReply;
use grove_protocol::engine::{Event, Failure, Released};
use grove_protocol::ids::{hex, ComputationId};
use serde_json::json;

impl Node {
    /// One event the drain collected; an accepted request goes to the owner's consent.
    pub(super) fn on_event(&mut self, event: Event) -> anyhow::Result<()> {
        match event {
            Event::RequestAccepted { computation, roles } => {
                let commissioner = self
                    .engine
                    .request(&computation)
                    .map(|s| hex(&s.request.commissioner.0))
                    .unwrap_or_default();
                self.audit(
                    Some(&computation),
                    "accepted",
                    format!("request from commissioner {commissioner}; {roles} aggregator positions here"),
                );
                self.consent(computation);
            }
            Event::RequestRefused {
                computation,
                reason,
            } => {
                self.audit(Some(&computation), "refused", reason.to_string());
                self.answer_waiter(
                    &computation,
                    Err(format!("the request was refused: {reason}")),
                );
            }
            Event::Released(r) => self.on_released(&r),
            Event::Failed {
                computation,
                reason,
            } => {
                let why = failure_text(&reason);
                self.audit(Some(&computation), "failed", why.clone());
                self.answer_waiter(&computation, Err(why));
            }
            Event::Closed { computation } => {
                self.forget_pending(&computation);
                self.unpublish_request(&computation);
                tracing::info!("computation {computation} closed");
            }
            other => log_event(&other),
        }
        Ok(())
    }

    /// Answers the `compute` waiting for this computation, if any.
    fn answer_waiter(
        &mut self,
        computation: &ComputationId,
        answer: Result<serde_json::Value, String>,
    ) {
        if let Some(w) = self.control.waiters.remove(computation) {
            let _ = w.reply.try_send(match answer {
                Ok(data) => ControlReply::Ok { data },
                Err(message) => ControlReply::Error { message },
            });
        }
    }

    /// The commissioner released a result: audit it and answer the waiting `compute` with
    /// the table.
    fn on_released(&mut self, r: &Released) {
        let contributors = r.version.count;
        self.audit(
            Some(&r.computation),
            "released",
            format!("result released over {contributors} contributors"),
        );
        if let Some(w) = self.control.waiters.remove(&r.computation) {
            let data = released_data(&w, r);
            let _ = w.reply.try_send(ControlReply::Ok { data });
        }
    }
}

/// What `compute` answers for a released result: the decoded table (a withheld element has
/// no value: null), each noisy cell's accuracy, and the completeness.
fn released_data(w: &Waiter, r: &Released) -> serde_json::Value {
    let contributors = r.version.count;
    let table = w
        .compiled
        .decode_released(&r.values, &r.released, contributors);
    let values: Vec<Option<f64>> = r
        .values
        .iter()
        .zip(&r.released)
        .map(|(v, open)| open.then_some(*v))
        .collect();
    // Differential privacy: each noisy cell's deviation and 95% interval.
    let accuracy = w.compiled.accuracy(&r.values, &r.released, contributors);
    let text = match &accuracy {
        Some(a) => format!("{table}\n{}", a.to_string().trim_end()),
        None => table.to_string(),
    };
    let completeness = if w.directory_peers == 0 {
        0.0
    } else {
        contributors as f64 / w.directory_peers as f64
    };
    json!({
        "computation": r.computation.to_string(),
        "query": w.compiled.query().to_string(),
        "table": table,
        "text": text,
        "accuracy": accuracy,
        "values": values,
        "contributors": contributors,
        "directory_peers": w.directory_peers,
        "completeness": completeness,
        "version": r.version.digest.to_string(),
        "elapsed_ms": w.started.elapsed().as_millis() as u64,
    })
}

/// Why a computation failed, in the owner's words.
fn failure_text(reason: &Failure) -> String {
    match reason {
        Failure::KMinNotMet { k_min, cells } => format!(
            "none of the {cells} cells of the result counts k_min = {k_min} contributors: the root group released nothing"
        ),
        Failure::TooFewNoiseSources { summed, honest_sources } => format!(
            "the root's version sums {summed} contributors, fewer than the {honest_sources} honest sources its noise was sized for: the root group released nothing (differential privacy)"
        ),
        Failure::NoQuorum { best_holders } => format!(
            "no version reached the threshold of root positions before the deadline (best: {best_holders})"
        ),
        Failure::SharesMissing { received, missing } => format!(
            "the root agreed, but only {received} root shares arrived before the deadline, fewer than a checked release needs (one more than the threshold); positions {missing:?} sent none"
        ),
        Failure::InconsistentRootShares { positions } => format!(
            "the root shares lie on no one polynomial: positions {positions:?} disagree; nothing was released"
        ),
    }
}

/// The events that only go to the log.
fn log_event(event: &Event) {
    match event {
        Event::Contributed { computation, group } => tracing::info!(
            "computation {computation}: shares sent to leaf group {}",
            group.index
        ),
        Event::MessageRejected { from, kind, reason } => {
            tracing::debug!("rejected a {kind} message from {from}: {reason}");
        }
        Event::ManifestAdopted {
            computation,
            group,
            position,
            version,
            ..
        } => tracing::debug!(
            "computation {computation}: group ({}, {}) position {position} adopted a manifest of {} contributors",
            group.level, group.index, version.count
        ),
        Event::HealDone {
            computation,
            child,
            target,
            ..
        } => tracing::info!(
            "computation {computation}: healed position {target} of group ({}, {})",
            child.level,
            child.index
        ),
        Event::HealGaveUp {
            computation,
            child,
            target,
        } => tracing::warn!(
            "computation {computation}: gave up healing position {target} of group ({}, {})",
            child.level,
            child.index
        ),
        _ => {}
    }
}
