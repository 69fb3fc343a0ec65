//! The trust mode "ask": a request of a commissioner trusted with `mode = ask` that passes
//! every consent rule and would use records waits for the owner's answer (the console's
//! requests page, `grove requests approve|decline`) instead of being answered at once.
//!
//! - It waits at most until the end of its share window (`created_at + share_window`): a share
//!   sent later no longer reaches its leaf group, so the request is then declined (rule `ask`).
//! - Waiting requests are in the store's pending table, so a restart keeps the queue; the
//!   daemon reconsiders accepted computations without a contribution after a restart, which
//!   finds them again.
//! - An approval runs every consent rule again (the rate limit or the differencing rule may
//!   decide otherwise by then) and contributes only if they all hold; a decline sends the leaf
//!   group a `Decline`, as any declined request does. Both are audited with the rule `owner`.
//! - At most [`MAX_PENDING_REQUESTS`] wait; beyond, a request is declined at once.

use super::Node;
use crate::clock::now_micros;
use crate::owner::consent;
use crate::store::{PendingRequest, TrustEntry};
use grove_protocol::engine::Command;
use grove_protocol::ids::{ComputationId, Micros};
use serde_json::{json, Value};

/// Largest number of requests waiting for the owner at once.
pub const MAX_PENDING_REQUESTS: usize = 256;

impl Node {
    /// Loads the waiting requests of the store (at start).
    pub(super) fn load_pending(&mut self) -> anyhow::Result<()> {
        for p in self.store.pending_list()? {
            match parse_computation_id(&p.computation) {
                Some(id) => {
                    self.pending.insert(id, Micros(p.answer_by_micros));
                }
                None => tracing::warn!("a pending request has a bad id: {}", p.computation),
            }
        }
        Ok(())
    }

    /// Every consent rule holds for `computation` and its commissioner is trusted in mode
    /// "ask": park it for the owner (once; a restart finds it parked already).
    pub(super) fn ask_owner(
        &mut self,
        computation: ComputationId,
        trust: &TrustEntry,
        collection: &str,
        used: u64,
    ) {
        if self.pending.contains_key(&computation) {
            return;
        }
        let Some(request) = self.engine.request(&computation).map(|s| s.request.clone()) else {
            return;
        };
        let now = now_micros();
        let end = share_window_end(&request);
        let decline = |node: &mut Node, why: String| {
            node.audit_rule(
                Some(&computation),
                "declined",
                consent::Rule::Ask,
                format!("{why}: no share was sent"),
            );
            node.tell_leaf(computation);
        };
        if end <= now {
            return decline(
                self,
                "the request's share window closed before the owner could answer".into(),
            );
        }
        if self.pending.len() >= MAX_PENDING_REQUESTS {
            return decline(
                self,
                format!("{MAX_PENDING_REQUESTS} requests already wait for the owner"),
            );
        }
        let entry = PendingRequest {
            computation: computation.to_string(),
            commissioner: grove_protocol::ids::hex(&request.commissioner.0),
            label: trust.label.clone(),
            query: request.query.clone(),
            collection: collection.to_string(),
            k_min: request.privacy.k_min,
            g: request.privacy.g,
            t: request.privacy.t,
            received_at_micros: now.0,
            answer_by_micros: end.0,
            records_used: used,
        };
        if let Err(e) = self.store.pending_put(&entry) {
            return decline(self, format!("cannot keep the request for the owner: {e}"));
        }
        self.pending.insert(computation, end);
        self.audit_rule(
            Some(&computation),
            "pending",
            consent::Rule::Ask,
            format!(
                "every rule holds; waiting for the owner's answer until the share window closes \
                 in {} s",
                (end.0 - now.0) / 1_000_000
            ),
        );
    }

    /// The owner's answer to a waiting request (`ControlRequest::RequestAnswer`); the caller
    /// drains.
    pub(super) fn answer_pending(
        &mut self,
        computation: &str,
        approve: bool,
    ) -> Result<Value, String> {
        let id = parse_computation_id(computation)
            .ok_or_else(|| format!("{computation:?} is not a computation id"))?;
        let Some(end) = self.pending.get(&id).copied() else {
            return Err(format!("no request {id} waits for an answer"));
        };
        if end <= now_micros() {
            // The tick has not declined it yet; a share now would reach no leaf.
            self.expire(id, "the owner's answer came after the share window closed");
            return Err(format!(
                "the share window of {id} closed before the answer: it was declined"
            ));
        }
        self.pending.remove(&id);
        let removed = self.store.pending_remove(&id.to_string());
        if let Err(e) = removed {
            return Err(format!("cannot update the pending requests: {e}"));
        }
        let outcome = if approve {
            self.audit_rule(
                Some(&id),
                "approved",
                consent::Rule::Owner,
                "the owner approved the request".into(),
            );
            self.consent_as(id, true);
            match self.store.consented_to(&id.to_string()) {
                Ok(true) => "contributed",
                _ => "declined",
            }
        } else {
            self.audit_rule(
                Some(&id),
                "declined",
                consent::Rule::Owner,
                "the owner declined the request: no share was sent".into(),
            );
            self.tell_leaf(id);
            "declined"
        };
        Ok(json!({ "computation": id.to_string(), "outcome": outcome }))
    }

    /// Declines every waiting request whose share window closed (at each loop tick).
    pub(super) fn expire_pending(&mut self) -> anyhow::Result<()> {
        let now = now_micros();
        let expired: Vec<ComputationId> = self
            .pending
            .iter()
            .filter(|(_, end)| **end <= now)
            .map(|(id, _)| *id)
            .collect();
        if expired.is_empty() {
            return Ok(());
        }
        for id in expired {
            self.expire(
                id,
                "the owner did not answer before the share window closed",
            );
        }
        self.drain()
    }

    /// A computation that closed (released, or its deadline passed) waits for nothing any
    /// more: if it still waited for the owner, it is declined (it may close right after its
    /// share window, before the next tick).
    pub(super) fn forget_pending(&mut self, computation: &ComputationId) {
        if self.pending.contains_key(computation) {
            self.expire(
                *computation,
                "the computation closed before the owner answered",
            );
        }
    }

    /// Declines a waiting request the owner did not answer in time (rule `ask`).
    fn expire(&mut self, id: ComputationId, why: &str) {
        self.pending.remove(&id);
        if let Err(e) = self.store.pending_remove(&id.to_string()) {
            tracing::warn!("cannot remove an expired pending request: {e}");
        }
        self.audit_rule(
            Some(&id),
            "declined",
            consent::Rule::Ask,
            format!("{why}: no share was sent"),
        );
        self.tell_leaf(id);
    }

    /// Tells the leaf group this node will not contribute (no value: only that no share
    /// comes), so it stops waiting for one.
    fn tell_leaf(&mut self, computation: ComputationId) {
        if let Err(e) = self
            .engine
            .handle_command(now_micros(), Command::Decline { computation })
        {
            tracing::debug!("cannot tell the leaf group of {computation}: {e}");
        }
    }
}

/// A computation id from its 64 hex digits.
pub(crate) fn parse_computation_id(text: &str) -> Option<ComputationId> {
    let t = text.trim();
    if t.len() != 64 || !t.is_ascii() {
        return None;
    }
    let mut id = [0u8; 32];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(ComputationId(id))
}

/// The end of a request's share window: the owner's answer must come before it, since a share
/// sent later reaches no leaf.
pub(crate) fn share_window_end(request: &grove_protocol::request::Request) -> Micros {
    request.created_at.plus(request.tree.timeouts.share_window)
}
