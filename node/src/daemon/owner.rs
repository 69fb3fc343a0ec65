//! The owner's side of the daemon: the consent decision on a request the engine accepted
//! (`consent::decide` over the trust entry, the consent history and the records), its record
//! in the consent history, and the audit log that says which rule decided. Requests a
//! commissioner trusted in mode "ask" wait in `pending`.

use super::Node;
use crate::clock::now_micros;
use crate::owner::consent::{self, RequestInfo};
use crate::owner::query;
use crate::store::{AuditEntry, ConsentEntry, TrustMode};
use grove_protocol::engine::Command;
use grove_protocol::ids::{hex, ComputationId};

impl Node {
    pub(super) fn audit(&self, computation: Option<&ComputationId>, kind: &str, detail: String) {
        self.write_audit(computation, kind, "", detail)
    }

    /// An audit entry that names the consent rule that decided.
    pub(super) fn audit_rule(
        &self,
        computation: Option<&ComputationId>,
        kind: &str,
        rule: consent::Rule,
        detail: String,
    ) {
        self.write_audit(computation, kind, rule.name(), detail)
    }

    pub(super) fn write_audit(
        &self,
        computation: Option<&ComputationId>,
        kind: &str,
        rule: &str,
        detail: String,
    ) {
        let entry = AuditEntry {
            at_micros: now_micros().0,
            computation: computation.map(|c| c.to_string()).unwrap_or_default(),
            kind: kind.to_string(),
            rule: rule.to_string(),
            commissioner: computation
                .and_then(|c| self.engine.request(c))
                .map(|s| hex(&s.request.commissioner.0))
                .unwrap_or_default(),
            detail,
        };
        if let Err(e) = self.store.audit(&entry) {
            tracing::warn!("cannot write the audit log: {e}");
        }
    }

    /// The owner's policy (`consent::decide`) on the signed request the engine verified and
    /// holds (never on a copy that merely passed by: a forged or replayed copy with the same
    /// id changes nothing): contribute only when every rule holds, and record in the audit
    /// log which rule decided; values never go there. A consenting node whose records match
    /// nothing contributes a vector of zeros (zero indicators), which the network cannot tell
    /// from a matching one; only a refusal by the owner's policy sends a `Decline` (it carries
    /// no reason). The consent history entry is committed before the contribution's outputs
    /// are drained, so a node never contributes twice to one computation (a crash in between
    /// errs towards not contributing).
    pub(super) fn consent(&mut self, computation: ComputationId) {
        self.consent_as(computation, false)
    }

    /// [`Node::consent`]; `owner_approved`: the owner approved this request (trust mode
    /// "ask"), so it is not parked again once every rule holds.
    pub(super) fn consent_as(&mut self, computation: ComputationId, owner_approved: bool) {
        let Some(signed) = self.engine.request(&computation) else {
            // The engine holds no state for it (closed or expired): nothing to decide.
            tracing::debug!("computation {computation}: no request to decide on");
            return;
        };
        let request = &signed.request;
        let info = RequestInfo {
            computation: computation.to_string(),
            commissioner: hex(&request.commissioner.0),
            query: request.query.clone(),
            spec: request.contribution.clone(),
            k_min: request.privacy.k_min,
            t: request.privacy.t,
            now_micros: now_micros().0,
        };
        let lookups = (|| {
            Ok::<_, crate::store::StoreError>((
                self.store.trust_get(&info.commissioner)?,
                self.store.consents(&info.commissioner)?,
                self.store.consented_to(&info.computation)?,
            ))
        })();
        let (trust, history, contributed) = match lookups {
            Ok(x) => x,
            Err(e) => {
                let why = format!("the consent store is unreadable: {e}");
                return self.decline(computation, consent::Rule::Store, why);
            }
        };
        let decision = consent::decide(&info, trust.as_ref(), &history, contributed);
        if !decision.accept {
            return self.decline(computation, decision.rule, decision.reason);
        }
        // Accepted: `decide` compiled the query already.
        let compiled = match query::compile(&info.query) {
            Ok(c) => c,
            Err(e) => return self.decline(computation, consent::Rule::Query, e),
        };
        let collection = compiled.query().collection.clone();
        let records = match self.store.records(&collection) {
            Ok(r) => r,
            Err(e) => {
                let why = format!("records unreadable: {e}");
                return self.decline(computation, consent::Rule::Store, why);
            }
        };
        // Zero used records give a vector of zeros: sent like any other, so the leaf learns
        // nothing of whether this node's records match.
        let (values, used) = query::contribution(&compiled, &records);
        // Trust mode "ask": the owner answers first, whether or not records match (a node
        // that waited only when they match would tell its leaf so by its delay).
        if let Some(trust) = trust.filter(|t| t.mode == TrustMode::Ask && !owner_approved) {
            return self.ask_owner(computation, &trust, &collection, used);
        }
        let why = match used {
            0 => format!(
                "{}; no record of collection {collection:?} matches the query: sent zeros",
                decision.reason
            ),
            n => format!(
                "{}; {n} records of collection {collection:?} used",
                decision.reason
            ),
        };
        self.contribute(computation, &info, values, decision.rule, why);
    }

    /// Records the consent in the history (committed before the contribution's outputs are
    /// drained), then contributes `values`.
    fn contribute(
        &mut self,
        computation: ComputationId,
        info: &RequestInfo,
        values: Vec<f64>,
        rule: consent::Rule,
        why: String,
    ) {
        let entry = ConsentEntry {
            computation: info.computation.clone(),
            at_micros: info.now_micros,
            query: info.query.clone(),
        };
        let keep = consent::MAX_DIFFERENCING_WINDOW_SECS.max(86_400) * 1_000_000;
        if let Err(e) = self.store.consent_add(&info.commissioner, &entry, keep) {
            let why = format!("cannot record the consent: {e}");
            return self.decline(computation, consent::Rule::Store, why);
        }
        match self.engine.handle_command(
            now_micros(),
            Command::Contribute {
                computation,
                values,
            },
        ) {
            Ok(()) => self.audit_rule(Some(&computation), "contributed", rule, why),
            Err(e) => self.decline(
                computation,
                consent::Rule::Engine,
                format!("cannot contribute: {e}"),
            ),
        }
    }

    /// A declining node tells its leaf group (no value and no reason, only that it will not
    /// send), so the leaf stops collecting once every node it serves has sent shares or
    /// declined; the audit log says which rule decided.
    fn decline(&mut self, computation: ComputationId, rule: consent::Rule, why: String) {
        self.audit_rule(
            Some(&computation),
            "declined",
            rule,
            format!("{why}: no share was sent"),
        );
        if let Err(e) = self
            .engine
            .handle_command(now_micros(), Command::Decline { computation })
        {
            tracing::debug!("cannot tell the leaf group of {computation}: {e}");
        }
    }
}
