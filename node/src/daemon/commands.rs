//! The local commands: one control request from the CLI, the console or the ingest endpoint
//! answered on the loop (`on_control`), the status and a computation's progress, and `compute`
//! (the commissioner's launch: plan over a frozen directory snapshot, then the engine's
//! `Command::Start`).

use super::{pending, Node, Waiter, MAX_LISTED_RECORDS, MAX_WAITERS};
use crate::clock::now_micros;
use crate::config;
use crate::control::{ComputeParams, ControlReply, ControlRequest, Incoming};
use crate::owner::{budget, query};
use crate::store::{SourcedRecords, SyncUpdate, TrustEntry};
use grove_protocol::engine::{sign_finish, Command};
use grove_protocol::ids::{hex, ComputationId};
use grove_protocol::request::{CommissionerKey, Request, SignedRequest};
use grove_protocol::snapshot::DirectorySnapshot;
use serde_json::json;
use std::time::Instant;
use tokio::sync::mpsc;

impl Node {
    /// One local command: answered here, but `compute` (answered as it progresses) and the
    /// owner's answer to a waiting request (whose outputs are drained).
    pub(super) fn on_control(&mut self, incoming: Incoming) -> anyhow::Result<()> {
        let Incoming { request, reply } = incoming;
        let now = now_micros().0;
        let result = match request {
            ControlRequest::Import {
                collection,
                records,
            } => self.import(&collection, &records),
            ControlRequest::ImportSources { items, sync } => self.import_sources(&items, &sync),
            ControlRequest::SyncState { account } => answer_or_fail(
                self.store
                    .sync_state(&account)
                    .map(|f| json!({ "files": f })),
            ),
            ControlRequest::ListRecords { collection } => self.list_records(collection),
            ControlRequest::TrustAdd {
                key,
                collections,
                label,
                min_contributors,
                limits,
            } => self.trust_add(crate::owner::trust::entry(
                &key,
                collections,
                label,
                min_contributors,
                limits,
                now,
            )),
            ControlRequest::TrustList => self.trust_list(),
            ControlRequest::TrustRemove { key } => self.trust_remove(&key),
            ControlRequest::Status => ControlReply::Ok {
                data: self.status(),
            },
            ControlRequest::Audit => answer_or_fail(
                self.store
                    .audit_entries()
                    .map(|entries| json!({ "entries": entries })),
            ),
            ControlRequest::Compute(params) => return self.on_compute(params, reply),
            ControlRequest::Progress { computation } => ControlReply::Ok {
                data: self.progress(&computation),
            },
            ControlRequest::RequestsList => answer_or_fail(
                self.store
                    .pending_list()
                    .map(|list| json!({ "pending": list })),
            ),
            ControlRequest::RequestAnswer {
                computation,
                approve,
            } => {
                let result = match self.answer_pending(&computation, approve) {
                    Ok(data) => ControlReply::Ok { data },
                    Err(message) => ControlReply::Error { message },
                };
                self.reply(reply, result)?;
                return self.drain();
            }
            ControlRequest::ConsoleLink => self.console_link(),
            ControlRequest::Shutdown => {
                self.control.shutdown = true;
                ControlReply::Ok {
                    data: json!({ "shutting_down": true }),
                }
            }
        };
        self.reply(reply, result)
    }

    fn import(
        &mut self,
        collection: &str,
        records: &[serde_json::Map<String, serde_json::Value>],
    ) -> ControlReply {
        let n = match self
            .store
            .import_records(collection, records, now_micros().0)
        {
            Ok(n) => n,
            Err(e) => return fail(e),
        };
        self.audit(
            None,
            "imported",
            format!("{n} records into collection {collection:?}"),
        );
        ControlReply::Ok {
            data: json!({ "imported": n, "collection": collection }),
        }
    }

    fn import_sources(&mut self, items: &[SourcedRecords], sync: &[SyncUpdate]) -> ControlReply {
        let summary = match self.store.upsert_sources(items, sync, now_micros().0) {
            Ok(summary) => summary,
            Err(e) => return fail(e),
        };
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
        ControlReply::Ok {
            data: serde_json::to_value(&summary).unwrap_or_default(),
        }
    }

    fn list_records(&self, collection: Option<String>) -> ControlReply {
        let Some(c) = collection else {
            return answer_or_fail(
                self.store
                    .collection_overview()
                    .map(|cs| json!({ "collections": cs })),
            );
        };
        answer_or_fail(self.store.records(&c).map(|r| {
            let total = r.len();
            let shown: Vec<_> = r.into_iter().take(MAX_LISTED_RECORDS).collect();
            json!({ "collection": c, "total": total, "records": shown })
        }))
    }

    fn trust_add(&mut self, entry: Result<TrustEntry, String>) -> ControlReply {
        let entry = match entry {
            Ok(entry) => entry,
            Err(message) => return ControlReply::Error { message },
        };
        if let Err(e) = self.store.trust_add(&entry) {
            return fail(e);
        }
        self.audit(
            None,
            "trust",
            format!(
                "trusted commissioner {} (mode {})",
                entry.key,
                entry.mode.name()
            ),
        );
        self.refresh_trusted();
        // Its computations already under way may still take shares.
        self.look_for_requests();
        ControlReply::Ok {
            data: serde_json::to_value(&entry).unwrap_or_default(),
        }
    }

    /// Tells the engine which commissioners the owner trusts (this node's own key and the
    /// trust list): the others share at most `MAX_UNTRUSTED_COMPUTATIONS` computation slots.
    pub(super) fn refresh_trusted(&mut self) {
        let list = match self.store.trust_list() {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!("cannot read the trust list: {e}");
                return;
            }
        };
        let own = CommissionerKey(self.keys.commissioner.verifying_key().to_bytes());
        let keys = list.iter().filter_map(|t| {
            let bytes: Vec<u8> = (0..t.key.len() / 2)
                .map(|i| {
                    t.key
                        .get(2 * i..2 * i + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                })
                .collect::<Option<_>>()?;
            Some(CommissionerKey(bytes.try_into().ok()?))
        });
        self.engine
            .set_trusted(std::iter::once(own).chain(keys).collect::<Vec<_>>());
    }

    /// The trusted commissioners, each budget with what its commissioner spent
    /// (`owner::budget`).
    fn trust_list(&self) -> ControlReply {
        let list = match self.store.trust_list() {
            Ok(list) => list,
            Err(e) => return fail(e),
        };
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
        ControlReply::Ok {
            data: json!({ "trusted": list }),
        }
    }

    fn trust_remove(&mut self, key: &str) -> ControlReply {
        match self.store.trust_remove(key) {
            Ok(true) => {
                self.refresh_trusted();
                self.audit(
                    None,
                    "trust",
                    format!("no longer trusts commissioner {key}"),
                );
                ControlReply::Ok {
                    data: json!({ "removed": key }),
                }
            }
            Ok(false) => ControlReply::Error {
                message: format!("commissioner {key} was not trusted"),
            },
            Err(e) => fail(e),
        }
    }

    fn console_link(&self) -> ControlReply {
        match &self.control.console {
            Some(console) => ControlReply::Ok {
                data: json!({ "link": console.login_link() }),
            },
            None => ControlReply::Error {
                message: "the console is off: set console_listen in the config or start the \
                          daemon with --console"
                    .into(),
            },
        }
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
        let dir = &self.membership.directory;
        let listen: Vec<String> = self
            .membership
            .listen_addrs
            .iter()
            .map(|a| format!("{a}/p2p/{}", self.peer_id))
            .collect();
        let computations: Vec<String> = self.engine.computations().map(|c| c.to_string()).collect();
        // Messages (and records) the engine refused, by reason: a broken or hostile peer shows.
        let rejected: serde_json::Map<String, serde_json::Value> = self
            .engine
            .rejections()
            .iter()
            .map(|(reason, n)| (format!("{reason:?}"), json!(n)))
            .collect();
        json!({
            "peer_id": self.peer_id.to_base58(),
            "node_id": self.me.to_string(),
            "listen": listen,
            "connected_peers": self.transport.swarm.connected_peers().count(),
            // Connections that follow the work (`daemon::connections`): the target above which
            // unneeded ones close, the peers closed so far, and the gossipsub mesh peers.
            "connections": {
                "target": self.transport.connections.target,
                "pruned": self.transport.connections.pruned,
                "sends_cut": self.transport.connections.sends_cut,
                "dials": self.transport.connections.dials,
                "redials": self.transport.connections.redials,
                "query_dials": self.transport.connections.query_dials,
                "mesh_peers": self.transport.swarm.behaviour().gossipsub.all_mesh_peers().count(),
            },
            "directory_peers": dir.len(),
            "computations_in_flight": computations,
            "commissioner_key": hex(&self.keys.commissioner.verifying_key().to_bytes()),
            "sent": self.transport.sent_by_kind,
            "network": self.membership.agreement.stats,
            "membership_traffic": self.membership.gossip.traffic,
            "directory_digest": dir.digest().to_string(),
            "received": self.transport.received_by_kind,
            "rejected": rejected,
            // Inbound streams cut by a budget (`daemon::budget`), by reason, and the room
            // received messages hold now.
            "inbound_rejected": self
                .transport
                .inbound
                .rejections()
                .into_iter()
                .map(|(reason, n)| (format!("{reason:?}"), json!(n)))
                .collect::<serde_json::Map<String, serde_json::Value>>(),
            "inbound_bytes_held": self.transport.inbound.used(),
            // Protocol sends awaiting their acks, and those waiting for room in their
            // receiver's window (`daemon::sends`).
            "sends": {
                "on_wire": self.transport.pending_sends.counts().0,
                "waiting": self.transport.pending_sends.counts().1,
            },
            "uptime_ms": self.control.started.elapsed().as_millis() as u64,
            "beacon": self.beacon.as_ref().map(|b| b.status()),
            "admission": self.admission.as_ref().map(|a| a.status(now_micros())),
            // Round trips of this node's directory pulls, for `grove compute`'s planner.
            "latency": self.membership.sync.rtt.status(),
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
        if self.control.waiters.len() >= MAX_WAITERS {
            return self.reply(
                reply,
                ControlReply::Error {
                    message: "too many computations are waiting for results".into(),
                },
            );
        }
        let (request, planned) = match self.request_over_snapshot(&params) {
            Ok(r) => r,
            Err(message) => return self.reply(reply, ControlReply::Error { message }),
        };
        let id = request.id;
        let directory_size = planned.len();
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
                self.control.waiters.insert(
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

    /// A new request over a frozen snapshot of this node's directory, which every node can
    /// fetch by the digest the request names (stored in the DHT here, and kept for the
    /// engine).
    fn request_over_snapshot(
        &mut self,
        params: &ComputeParams,
    ) -> Result<(Request, DirectorySnapshot), String> {
        if self
            .membership
            .directory
            .get(&self.me)
            .is_none_or(|p| p.addrs.is_empty())
        {
            self.announce();
        }
        // With admission on, only identities admitted and old enough enter the candidate set.
        let now = now_micros();
        let snapshot = match &self.admission {
            Some(a) => self
                .membership
                .directory
                .freeze_where(|n| a.eligible(n, now)),
            None => self.membership.directory.freeze(),
        };
        let mut request = query::build_request(
            params,
            ComputationId(config::random_id()),
            CommissionerKey(self.keys.commissioner.verifying_key().to_bytes()),
            self.me,
            now_micros(),
            snapshot.entries.len(),
        )?;
        request.directory = Some(snapshot.digest);
        // With a beacon, the plan's seed is the randomness of a round no one knows yet.
        if let Some(fetcher) = &self.beacon {
            let round = fetcher.round_to_name(request.created_at);
            // No node plans (nor shares) before the round is out, and the share window counts
            // from the request's creation: it gets the wait for the round on top.
            let wait = fetcher
                .beacon()
                .round_time(round)
                .0
                .saturating_sub(request.created_at.0);
            let timeouts = &mut request.tree.timeouts;
            timeouts.share_window = timeouts.share_window.saturating_add(wait);
            request.beacon = Some(grove_protocol::request::BeaconRef {
                chain_hash: fetcher.beacon().info().chain_hash,
                round,
            });
        }
        self.publish_snapshot(&snapshot, request.deadline)
            .map_err(|e| e.to_string())?;
        self.membership.snapshots.add(&snapshot);
        Ok((request, snapshot.for_plan()))
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
                        self.membership
                            .directory
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

fn fail(e: impl std::fmt::Display) -> ControlReply {
    ControlReply::Error {
        message: e.to_string(),
    }
}

fn answer_or_fail<E: std::fmt::Display>(r: Result<serde_json::Value, E>) -> ControlReply {
    match r {
        Ok(data) => ControlReply::Ok { data },
        Err(e) => fail(e),
    }
}
