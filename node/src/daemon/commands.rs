//! The local commands: one control request from the CLI, the console or the ingest endpoint
//! answered on the loop (`on_control`), the status and a computation's progress, and `compute`
//! (the commissioner's launch: plan over a frozen directory snapshot, then the engine's
//! `Command::Start`).

use super::{pending, Node, Waiter, MAX_LISTED_RECORDS, MAX_WAITERS};
use crate::clock::now_micros;
use crate::config::{self};
use crate::control::{ComputeParams, ControlReply, ControlRequest, Incoming};
use crate::owner::{budget, query};
use grove_protocol::engine::{sign_finish, Command};
use grove_protocol::ids::{hex, ComputationId};
use grove_protocol::request::{CommissionerKey, SignedRequest};
use serde_json::json;
use std::time::Instant;
use tokio::sync::mpsc;

impl Node {
    pub(super) fn on_control(&mut self, incoming: Incoming) -> anyhow::Result<()> {
        let Incoming { request, reply } = incoming;
        let answer = |data: serde_json::Value| ControlReply::Ok { data };
        let fail = |message: String| ControlReply::Error { message };
        let result = match request {
            ControlRequest::Import {
                collection,
                records,
            } => match self
                .store
                .import_records(&collection, &records, now_micros().0)
            {
                Ok(n) => {
                    self.audit(
                        None,
                        "imported",
                        format!("{n} records into collection {collection:?}"),
                    );
                    answer(json!({ "imported": n, "collection": collection }))
                }
                Err(e) => fail(e.to_string()),
            },
            ControlRequest::ImportSources { items, sync } => {
                match self.store.upsert_sources(&items, &sync, now_micros().0) {
                    Ok(summary) => {
                        if summary.records_written + summary.records_removed > 0 {
                            self.audit(
                                None,
                                "imported",
                                format!(
                                    "{} records written, {} removed, from {} keyed sources",
                                    summary.records_written,
                                    summary.records_removed,
                                    items.len()
                                ),
                            );
                        }
                        answer(serde_json::to_value(&summary).unwrap_or_default())
                    }
                    Err(e) => fail(e.to_string()),
                }
            }
            ControlRequest::SyncState { account } => match self.store.sync_state(&account) {
                Ok(files) => answer(json!({ "files": files })),
                Err(e) => fail(e.to_string()),
            },
            ControlRequest::ListRecords { collection } => match collection {
                Some(c) => match self.store.records(&c) {
                    Ok(r) => {
                        let total = r.len();
                        let shown: Vec<_> = r.into_iter().take(MAX_LISTED_RECORDS).collect();
                        answer(json!({ "collection": c, "total": total, "records": shown }))
                    }
                    Err(e) => fail(e.to_string()),
                },
                None => match self.store.collection_overview() {
                    Ok(cs) => answer(json!({ "collections": cs })),
                    Err(e) => fail(e.to_string()),
                },
            },
            ControlRequest::TrustAdd {
                key,
                collections,
                label,
                min_contributors,
                limits,
            } => {
                match crate::owner::trust::entry(
                    &key,
                    collections,
                    label,
                    min_contributors,
                    limits,
                    now_micros().0,
                ) {
                    Err(e) => fail(e),
                    Ok(entry) => match self.store.trust_add(&entry) {
                        Ok(()) => {
                            self.audit(
                                None,
                                "trust",
                                format!(
                                    "trusted commissioner {} (mode {})",
                                    entry.key,
                                    entry.mode.name()
                                ),
                            );
                            // Its computations already under way may still take shares.
                            self.look_for_requests();
                            answer(serde_json::to_value(&entry).unwrap_or_default())
                        }
                        Err(e) => fail(e.to_string()),
                    },
                }
            }
            ControlRequest::TrustList => match self.store.trust_list() {
                Ok(list) => {
                    // With each budget, what its commissioner spent (`owner::budget`).
                    let now = now_micros().0;
                    let list: Vec<serde_json::Value> = list
                        .iter()
                        .map(|t| {
                            let mut v = serde_json::to_value(t).unwrap_or_default();
                            if t.epsilon_per_month_milli.is_some() {
                                let history = self.store.consents(&t.key).unwrap_or_default();
                                let spent = budget::spent(&history, now);
                                v["privacy_spent"] = json!(budget::describe(spent));
                            }
                            v
                        })
                        .collect();
                    answer(json!({ "trusted": list }))
                }
                Err(e) => fail(e.to_string()),
            },
            ControlRequest::TrustRemove { key } => match self.store.trust_remove(&key) {
                Ok(true) => {
                    self.audit(
                        None,
                        "trust",
                        format!("no longer trusts commissioner {key}"),
                    );
                    answer(json!({ "removed": key }))
                }
                Ok(false) => fail(format!("commissioner {key} was not trusted")),
                Err(e) => fail(e.to_string()),
            },
            ControlRequest::Status => answer(self.status()),
            ControlRequest::Audit => match self.store.audit_entries() {
                Ok(entries) => answer(json!({ "entries": entries })),
                Err(e) => fail(e.to_string()),
            },
            ControlRequest::Compute(params) => return self.on_compute(params, reply),
            ControlRequest::Progress { computation } => answer(self.progress(&computation)),
            ControlRequest::RequestsList => match self.store.pending_list() {
                Ok(list) => answer(json!({ "pending": list })),
                Err(e) => fail(e.to_string()),
            },
            ControlRequest::RequestAnswer {
                computation,
                approve,
            } => {
                let result = match self.answer_pending(&computation, approve) {
                    Ok(data) => answer(data),
                    Err(e) => fail(e),
                };
                self.reply(reply, result)?;
                return self.drain();
            }
            ControlRequest::ConsoleLink => match &self.console {
                Some(console) => answer(json!({ "link": console.login_link() })),
                None => fail(
                    "the console is off: set console_listen in the config or start the daemon \
                     with --console"
                        .into(),
                ),
            },
            ControlRequest::Shutdown => {
                self.shutdown = true;
                answer(json!({ "shutting_down": true }))
            }
        };
        self.reply(reply, result)
    }

    pub(super) fn reply(
        &self,
        reply: mpsc::Sender<ControlReply>,
        r: ControlReply,
    ) -> anyhow::Result<()> {
        // The connection may be gone; its reply channel is never full for a single answer.
        let _ = reply.try_send(r);
        Ok(())
    }

    /// What this node, as commissioner, knows of a computation's progress (the console's
    /// run page): the root's reports and shares; `in_flight` is false once it closed.
    pub(super) fn progress(&self, computation: &str) -> serde_json::Value {
        let id = pending::parse_computation_id(computation);
        let request = id
            .and_then(|id| self.engine.request(&id))
            .map(|s| &s.request);
        let progress = id.and_then(|id| self.engine.commissioner_progress(&id));
        json!({
            "computation": computation,
            "in_flight": progress.is_some(),
            "root_reports": progress.as_ref().map_or(0, |p| p.root_reports),
            "best_version_holders": progress.as_ref().map_or(0, |p| p.best_version_holders),
            "version_chosen": progress.as_ref().is_some_and(|p| p.version_chosen),
            "root_shares": progress.as_ref().map_or(0, |p| p.root_shares),
            "done": progress.as_ref().is_some_and(|p| p.done),
            "g": request.map(|r| r.privacy.g),
            "t": request.map(|r| r.privacy.t),
            "share_window_end_micros": request.map(|r| pending::share_window_end(r).0),
            "now_micros": now_micros().0,
        })
    }

    pub(super) fn status(&self) -> serde_json::Value {
        let dir = &self.directory;
        let listen: Vec<String> = self
            .listen_addrs
            .iter()
            .map(|a| format!("{a}/p2p/{}", self.peer_id))
            .collect();
        let computations: Vec<String> = self.engine.computations().map(|c| c.to_string()).collect();
        json!({
            "peer_id": self.peer_id.to_base58(),
            "node_id": self.me.to_string(),
            "listen": listen,
            "connected_peers": self.swarm.connected_peers().count(),
            "directory_peers": dir.len(),
            "computations_in_flight": computations,
            "commissioner_key": hex(&self.keys.commissioner.verifying_key().to_bytes()),
            "sent": self.sent_by_kind,
            "network": self.agreement.stats,
            "directory_digest": dir.digest().to_string(),
            "received": self.received_by_kind,
            "uptime_ms": self.started.elapsed().as_millis() as u64,
        })
    }

    pub(super) fn on_compute(
        &mut self,
        params: ComputeParams,
        reply: mpsc::Sender<ControlReply>,
    ) -> anyhow::Result<()> {
        let compiled = match query::compile(&params.query) {
            Ok(c) => c,
            Err(message) => return self.reply(reply, ControlReply::Error { message }),
        };
        if self.waiters.len() >= MAX_WAITERS {
            return self.reply(
                reply,
                ControlReply::Error {
                    message: "too many computations are waiting for results".into(),
                },
            );
        }
        let id = ComputationId(config::random_id());
        // Plan over a frozen snapshot that every node can fetch by its digest.
        if self
            .directory
            .get(&self.me)
            .is_none_or(|p| p.addrs.is_empty())
        {
            self.announce();
        }
        let snapshot = self.directory.freeze();
        let directory_size = snapshot.entries.len();
        let mut request = match query::build_request(
            &params,
            id,
            CommissionerKey(self.keys.commissioner.verifying_key().to_bytes()),
            self.me,
            now_micros(),
            directory_size,
        ) {
            Ok(r) => r,
            Err(message) => return self.reply(reply, ControlReply::Error { message }),
        };
        request.directory = Some(snapshot.digest);
        if let Err(e) = self.publish_snapshot(&snapshot, request.deadline) {
            return self.reply(
                reply,
                ControlReply::Error {
                    message: e.to_string(),
                },
            );
        }
        self.snapshots.add(&snapshot);
        let planned = snapshot.for_plan();
        let max_contributors = request.max_contributors;
        let signed = SignedRequest::sign(request, &self.keys.commissioner);
        let finish_signature = sign_finish(&id, &self.keys.commissioner);
        match self.engine.handle_command(
            now_micros(),
            Command::Launch {
                request: Box::new(signed),
                finish_signature,
                directory: planned,
            },
        ) {
            Ok(()) => {
                self.audit(
                    Some(&id),
                    "launched",
                    format!(
                        "query over collection {:?} (g = {}, t = {}, k_min = {}, at most {} contributors)",
                        compiled.query().collection, params.g, params.t, params.k_min, max_contributors
                    ),
                );
                let _ = reply.try_send(ControlReply::Progress {
                    message: format!(
                        "launched computation {id} over a directory of {directory_size} peers"
                    ),
                    data: Some(self.plan_info(&id, directory_size)),
                });
                self.waiters.insert(
                    id,
                    Waiter {
                        reply,
                        started: Instant::now(),
                        compiled,
                        directory_peers: directory_size,
                    },
                );
            }
            Err(e) => {
                let _ = reply.try_send(ControlReply::Error {
                    message: format!("cannot launch: {e}"),
                });
            }
        }
        self.drain()
    }

    /// The plan of a computation this node launched, as `grove compute` shows it.
    fn plan_info(&self, id: &ComputationId, directory_size: usize) -> serde_json::Value {
        let Some(plan) = self.engine.plan(id) else {
            return json!({"computation": id.to_string()});
        };
        let groups: Vec<serde_json::Value> = plan
            .groups()
            .map(|g| {
                let members: Vec<String> = plan
                    .members(g)
                    .iter()
                    .map(|n| {
                        self.directory
                            .get(n)
                            .map(|p| p.peer_id.to_base58())
                            .unwrap_or_default()
                    })
                    .collect();
                json!({"level": g.level, "index": g.index, "members": members})
            })
            .collect();
        json!({
            "computation": id.to_string(),
            "g": plan.g, "t": plan.t,
            "leaf_groups": plan.leaf_groups(),
            "depth": plan.depth(),
            "directory_peers": directory_size,
            "groups": groups,
        })
    }
}
