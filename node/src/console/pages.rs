//! The console's pages: one handler per page or form, each reading or changing the node
//! through the daemon's control requests, and an askama template per page (`templates/`).

use super::auth::{cleared_cookie, session_cookie, Change, Owner};
use super::chart::{self, Chart};
use super::render::{refusal, render, render_with};
use super::runs;
use super::time::{day_start, utc};
use super::{lock, Shared, MAX_AUDIT_SHOWN};
use crate::control::{self, ComputeParams, ControlRequest, TrustLimits};
use crate::store::{AuditEntry, CollectionInfo, PendingRequest, TrustEntry, TrustMode};
use askama::Template;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use grove_protocol::query::{Cell, Query as ParsedQuery, ResultTable};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

type App = State<Arc<Shared>>;

/// One control request to the daemon's loop.
async fn ask(shared: &Shared, request: ControlRequest) -> Result<Value, String> {
    control::call_local(&shared.to_loop, request)
        .await
        .map_err(|e| e.to_string())
}

/// The list under `key` in the answer to a control request, or the page that says why there
/// is none.
async fn list<T: serde::de::DeserializeOwned>(
    shared: &Shared,
    request: ControlRequest,
    key: &str,
) -> Result<Vec<T>, Box<Response>> {
    match ask(shared, request).await {
        Ok(d) => Ok(serde_json::from_value(d[key].clone()).unwrap_or_default()),
        Err(e) => Err(Box::new(daemon_error(e))),
    }
}

/// A page that shows a form's error answers `400`.
fn status_for(error: &Option<String>) -> StatusCode {
    if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    }
}

fn daemon_error(e: String) -> Response {
    refusal(
        StatusCode::BAD_GATEWAY,
        &format!("The daemon could not answer: {e}"),
    )
}

pub(super) async fn not_found() -> Response {
    refusal(
        StatusCode::NOT_FOUND,
        "There is no such page in this console.",
    )
}

pub(super) async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("static/console.css"),
    )
        .into_response()
}

/// What every page's frame shows: where we are, the sign-out form's token, how many requests
/// wait for the owner.
struct Frame {
    page: &'static str,
    csrf: String,
    pending: usize,
}

async fn frame(shared: &Shared, owner: &Owner, page: &'static str) -> Frame {
    let pending = ask(shared, ControlRequest::RequestsList)
        .await
        .ok()
        .and_then(|d| d["pending"].as_array().map(Vec::len))
        .unwrap_or(0);
    Frame {
        page,
        csrf: owner.csrf.clone(),
        pending,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn short(key: &str) -> String {
    if key.len() > 16 {
        format!("{}…", &key[..16])
    } else {
        key.to_string()
    }
}

// ---- login

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    #[serde(default)]
    token: String,
}

pub(super) async fn login(State(shared): App, Query(q): Query<LoginQuery>) -> Response {
    let Some(session) = lock(&shared.auth).redeem(&q.token, Instant::now()) else {
        return refusal(
            StatusCode::FORBIDDEN,
            "This login link is not valid: it was used already, it is more than 10 minutes \
             old, or the daemon restarted since. Run `grove console` for a new one.",
        );
    };
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&shared.cookie, &session)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
pub(super) struct Empty {}

pub(super) async fn logout(State(shared): App, Change(owner, _): Change<Empty>) -> Response {
    lock(&shared.auth).sign_out(&owner.session);
    let mut r = refusal(
        StatusCode::OK,
        "You are signed out. Run `grove console` for a new login link.",
    );
    if let Ok(v) = HeaderValue::from_str(&cleared_cookie(&shared.cookie)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

// ---- the node

struct InFlight {
    computation: String,
    role: String,
    progress: String,
}

#[derive(Template)]
#[template(path = "node.html")]
struct NodePage {
    frame: Frame,
    peer_id: String,
    node_id: String,
    commissioner_key: String,
    listen: Vec<String>,
    connected_peers: String,
    directory_peers: String,
    directory_digest: String,
    uptime: String,
    bytes_sent: String,
    bytes_received: String,
    in_flight: Vec<InFlight>,
}

fn progress_text(p: &Value) -> String {
    format!(
        "root positions reported: {} (best version held by {}, t = {}); root shares received: {}",
        p["root_reports"],
        p["best_version_holders"],
        text(&p["t"]),
        p["root_shares"]
    )
}

pub(super) async fn node(State(shared): App, owner: Owner) -> Response {
    let status = match ask(&shared, ControlRequest::Status).await {
        Ok(s) => s,
        Err(e) => return daemon_error(e),
    };
    let mut in_flight = Vec::new();
    for c in status["computations_in_flight"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let id = text(&c);
        let p = ask(
            &shared,
            ControlRequest::Progress {
                computation: id.clone(),
            },
        )
        .await
        .unwrap_or_default();
        // Only a commissioner holds progress of its computation.
        let (role, progress) = if p["in_flight"].as_bool().unwrap_or(false) {
            ("commissioner".to_string(), progress_text(&p))
        } else {
            ("aggregator or contributor".to_string(), String::new())
        };
        in_flight.push(InFlight {
            computation: id,
            role,
            progress,
        });
    }
    let uptime_s = status["uptime_ms"].as_u64().unwrap_or(0) / 1000;
    let page = NodePage {
        frame: frame(&shared, &owner, "node").await,
        peer_id: text(&status["peer_id"]),
        node_id: text(&status["node_id"]),
        commissioner_key: text(&status["commissioner_key"]),
        listen: status["listen"]
            .as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default(),
        connected_peers: text(&status["connected_peers"]),
        directory_peers: text(&status["directory_peers"]),
        directory_digest: text(&status["directory_digest"]),
        uptime: format!(
            "{} h {:02} min {:02} s",
            uptime_s / 3600,
            uptime_s / 60 % 60,
            uptime_s % 60
        ),
        bytes_sent: text(&status["network"]["bytes_sent"]),
        bytes_received: text(&status["network"]["bytes_received"]),
        in_flight,
    };
    render(&page)
}

// ---- records

struct CollectionRow {
    name: String,
    records: u64,
    sources: String,
    last_update: String,
}

#[derive(Template)]
#[template(path = "records.html")]
struct RecordsPage {
    frame: Frame,
    collections: Vec<CollectionRow>,
    message: Option<String>,
    error: Option<String>,
}

async fn records_page(
    shared: &Shared,
    owner: &Owner,
    message: Option<String>,
    error: Option<String>,
) -> Response {
    let infos: Vec<CollectionInfo> = match list(
        shared,
        ControlRequest::ListRecords { collection: None },
        "collections",
    )
    .await
    {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let collections = infos
        .into_iter()
        .map(|c| CollectionRow {
            sources: c
                .sources
                .iter()
                .map(|(kind, n)| format!("{kind} {n}"))
                .collect::<Vec<_>>()
                .join(" · "),
            last_update: c
                .last_update
                .map(|u| format!("{} UTC ({})", utc(u.at_micros), u.via))
                .unwrap_or_else(|| "before updates were recorded".into()),
            name: c.name,
            records: c.records,
        })
        .collect();
    render_with(
        status_for(&error),
        &RecordsPage {
            frame: frame(shared, owner, "records").await,
            collections,
            message,
            error,
        },
    )
}

pub(super) async fn records(State(shared): App, owner: Owner) -> Response {
    records_page(&shared, &owner, None, None).await
}

/// The fields of an upload form, in order; the CSRF token must come first, so that nothing of
/// a forged upload is read past it.
struct Upload {
    fields: Vec<(String, String)>,
    file_name: String,
    file: Vec<u8>,
}

async fn read_upload(owner: &Owner, mut form: Multipart) -> Result<Upload, Box<Response>> {
    let bad = |e: String| {
        Box::new(refusal(
            StatusCode::BAD_REQUEST,
            &format!("bad upload: {e}"),
        ))
    };
    let mut first = true;
    let mut upload = Upload {
        fields: Vec::new(),
        file_name: String::new(),
        file: Vec::new(),
    };
    while let Some(field) = form.next_field().await.map_err(|e| bad(e.to_string()))? {
        let name = field.name().unwrap_or_default().to_string();
        if first {
            let token = if name == "csrf" {
                field.text().await.map_err(|e| bad(e.to_string()))?
            } else {
                String::new()
            };
            owner.check_csrf(&token)?;
            first = false;
            continue;
        }
        if name == "file" {
            upload.file_name = field.file_name().unwrap_or_default().to_string();
            upload.file = field
                .bytes()
                .await
                .map_err(|e| bad(e.to_string()))?
                .to_vec();
        } else {
            let value = field.text().await.map_err(|e| bad(e.to_string()))?;
            upload.fields.push((name, value));
        }
    }
    if first {
        owner.check_csrf("")?;
    }
    Ok(upload)
}

pub(super) async fn import_file(State(shared): App, owner: Owner, form: Multipart) -> Response {
    let upload = match read_upload(&owner, form).await {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let field = |n: &str| {
        upload
            .fields
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let collection = field("collection");
    let format = match field("format").as_str() {
        "csv" => Some(crate::sources::import::Format::Csv),
        "json" => Some(crate::sources::import::Format::Json),
        "ndjson" => Some(crate::sources::import::Format::Ndjson),
        _ => crate::sources::import::Format::from_path(std::path::Path::new(&upload.file_name)),
    };
    let fail = |e: String| records_page(&shared, &owner, None, Some(e));
    let Some(format) = format else {
        return fail(format!(
            "cannot tell the format of {:?}: choose csv, json or ndjson",
            upload.file_name
        ))
        .await;
    };
    let Ok(text) = String::from_utf8(upload.file) else {
        return fail(format!("{} is not UTF-8 text", upload.file_name)).await;
    };
    let records = match crate::sources::import::parse(&text, format) {
        Ok(r) => r,
        Err(e) => return fail(format!("{}: {e}; nothing was imported", upload.file_name)).await,
    };
    match ask(
        &shared,
        ControlRequest::Import {
            collection: collection.clone(),
            records,
        },
    )
    .await
    {
        Ok(d) => {
            let message = format!(
                "imported {} records from {} into collection {collection}",
                d["imported"], upload.file_name
            );
            records_page(&shared, &owner, Some(message), None).await
        }
        Err(e) => fail(format!("{e}; nothing was imported")).await,
    }
}

pub(super) async fn import_cozy(State(shared): App, owner: Owner, form: Multipart) -> Response {
    let upload = match read_upload(&owner, form).await {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let export = match crate::sources::cozy::read_zip(std::io::Cursor::new(upload.file)) {
        Ok(e) => e,
        Err(e) => {
            return records_page(
                &shared,
                &owner,
                None,
                Some(format!("{} is not a zip: {e}", upload.file_name)),
            )
            .await
        }
    };
    let mut total = crate::store::UpsertSummary::default();
    for chunk in export.items.chunks(crate::sources::cozy::ITEMS_PER_REQUEST) {
        let answer = ask(
            &shared,
            ControlRequest::ImportSources {
                items: chunk.to_vec(),
                sync: Vec::new(),
            },
        )
        .await
        .and_then(|d| serde_json::from_value(d).map_err(|e| e.to_string()));
        match answer {
            Ok(s) => total.add(&s),
            Err(e) => return records_page(&shared, &owner, None, Some(e)).await,
        }
    }
    let skipped: Vec<String> = export
        .skipped
        .iter()
        .map(|(p, r)| format!("{p}: {r}"))
        .collect();
    let message = format!(
        "Cozy export {}: {} documents; added {}, replaced {}, unchanged {} ({} records \
         written, {} removed){}",
        upload.file_name,
        export.items.len(),
        total.added,
        total.replaced,
        total.unchanged,
        total.records_written,
        total.records_removed,
        if skipped.is_empty() {
            String::new()
        } else {
            format!("; skipped: {}", skipped.join("; "))
        }
    );
    records_page(&shared, &owner, Some(message), None).await
}

// ---- trust

struct TrustRow {
    key: String,
    label: String,
    mode: &'static str,
    collections: String,
    fields: String,
    min_k: u64,
    min_t: u8,
    max_per_day: u32,
    window: u64,
    max_group_keys: u32,
    repeats: &'static str,
    budget: String,
    added: String,
}

/// The trust form as typed: every field is text until the daemon's validation has it.
#[derive(Clone, Default, Deserialize)]
pub(super) struct TrustForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    collections: String,
    #[serde(default)]
    fields: String,
    #[serde(default)]
    min_k: String,
    #[serde(default)]
    min_t: String,
    #[serde(default)]
    max_per_day: String,
    #[serde(default)]
    window: String,
    #[serde(default)]
    max_group_keys: String,
    /// The privacy budget in epsilon per 30 days; empty: none.
    #[serde(default)]
    epsilon_per_month: String,
    /// `1` when the checkbox is ticked (absent otherwise).
    #[serde(default)]
    allow_repeats: String,
    #[serde(default)]
    mode: String,
    /// Set when the form edits an existing trust.
    #[serde(default)]
    editing: String,
}

impl TrustForm {
    fn blank() -> TrustForm {
        TrustForm {
            min_k: crate::owner::defaults::DEFAULT_MIN_K.to_string(),
            min_t: crate::owner::defaults::DEFAULT_MIN_T.to_string(),
            max_per_day: crate::owner::defaults::DEFAULT_MAX_PER_DAY.to_string(),
            window: crate::owner::defaults::DEFAULT_DIFFERENCING_WINDOW_SECS.to_string(),
            max_group_keys: crate::owner::defaults::DEFAULT_MAX_GROUP_KEYS.to_string(),
            mode: "auto".into(),
            ..TrustForm::default()
        }
    }

    fn of(e: &TrustEntry) -> TrustForm {
        TrustForm {
            key: e.key.clone(),
            label: e.label.clone(),
            collections: e.collections.join(", "),
            fields: e.fields.join(", "),
            min_k: e.min_contributors.to_string(),
            min_t: e.min_t.to_string(),
            max_per_day: e.max_per_day.to_string(),
            window: e.differencing_window_secs.to_string(),
            max_group_keys: e.max_group_keys.to_string(),
            epsilon_per_month: e
                .epsilon_per_month_milli
                .map(|m| (m as f64 / 1000.0).to_string())
                .unwrap_or_default(),
            allow_repeats: if e.allow_repeats {
                "1".into()
            } else {
                String::new()
            },
            mode: e.mode.name().into(),
            editing: "1".into(),
        }
    }

    fn ask(&self) -> bool {
        self.mode == "ask"
    }

    fn repeats(&self) -> bool {
        self.allow_repeats == "1"
    }

    /// The control request this form asks for; numbers that do not parse are the form's own
    /// errors, everything else is the daemon's (`crate::owner::trust::entry`).
    fn request(&self) -> Result<ControlRequest, String> {
        fn number<T: std::str::FromStr>(v: &str, what: &str) -> Result<T, String> {
            v.trim()
                .parse()
                .map_err(|_| format!("{what} must be a whole number, not {v:?}"))
        }
        let list = |v: &str| -> Vec<String> {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        let mode = match self.mode.as_str() {
            "ask" => TrustMode::Ask,
            "auto" | "" => TrustMode::Auto,
            other => return Err(format!("unknown mode {other:?}")),
        };
        Ok(ControlRequest::TrustAdd {
            key: self.key.clone(),
            collections: list(&self.collections),
            label: self.label.trim().to_string(),
            min_contributors: number(&self.min_k, "the smallest k_min")?,
            limits: TrustLimits {
                fields: list(&self.fields),
                max_per_day: Some(number(&self.max_per_day, "computations per day")?),
                min_t: Some(number(&self.min_t, "the smallest t")?),
                differencing_window_secs: Some(number(&self.window, "the differencing window")?),
                max_group_keys: Some(number(&self.max_group_keys, "the GROUP BY keys")?),
                allow_repeats: self.repeats(),
                mode: Some(mode),
                // Empty: no budget; the range is the daemon's check.
                epsilon_per_month: match self.epsilon_per_month.trim() {
                    "" => None,
                    v => Some(v.parse().map_err(|_| {
                        format!("the privacy budget must be a number (epsilon), not {v:?}")
                    })?),
                },
            },
        })
    }
}

#[derive(Template)]
#[template(path = "trust.html")]
struct TrustPage {
    frame: Frame,
    trusted: Vec<TrustRow>,
    form: TrustForm,
    error: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct TrustQuery {
    #[serde(default)]
    edit: String,
}

async fn trust_page(
    shared: &Shared,
    owner: &Owner,
    form: Option<TrustForm>,
    edit: &str,
    error: Option<String>,
) -> Response {
    let entries: Vec<TrustEntry> = match list(shared, ControlRequest::TrustList, "trusted").await {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let all = |v: &[String], what: &str| {
        if v.is_empty() {
            format!("all {what}")
        } else {
            v.join(", ")
        }
    };
    let form = form.unwrap_or_else(|| {
        entries
            .iter()
            .find(|e| !edit.is_empty() && e.key == edit)
            .map(TrustForm::of)
            .unwrap_or_else(TrustForm::blank)
    });
    let trusted = entries
        .iter()
        .map(|e| TrustRow {
            key: e.key.clone(),
            label: e.label.clone(),
            mode: e.mode.name(),
            collections: all(&e.collections, "collections"),
            fields: all(&e.fields, "fields"),
            min_k: e.min_contributors,
            min_t: e.min_t,
            max_per_day: e.max_per_day,
            window: e.differencing_window_secs,
            max_group_keys: e.max_group_keys,
            repeats: if e.allow_repeats {
                "allowed"
            } else {
                "declined"
            },
            budget: e
                .epsilon_per_month_milli
                .map(|m| format!("ε {} / 30 days", m as f64 / 1000.0))
                .unwrap_or_else(|| "none".into()),
            added: utc(e.added_at_micros),
        })
        .collect();
    render_with(
        status_for(&error),
        &TrustPage {
            frame: frame(shared, owner, "trust").await,
            trusted,
            form,
            error,
        },
    )
}

pub(super) async fn trust(
    State(shared): App,
    owner: Owner,
    Query(q): Query<TrustQuery>,
) -> Response {
    trust_page(&shared, &owner, None, &q.edit, None).await
}

pub(super) async fn trust_save(
    State(shared): App,
    Change(owner, form): Change<TrustForm>,
) -> Response {
    let result = match form.request() {
        Ok(request) => ask(&shared, request).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Redirect::to("/trust").into_response(),
        Err(e) => trust_page(&shared, &owner, Some(form), "", Some(e)).await,
    }
}

#[derive(Deserialize)]
pub(super) struct KeyForm {
    key: String,
}

pub(super) async fn trust_remove(
    State(shared): App,
    Change(owner, form): Change<KeyForm>,
) -> Response {
    match ask(&shared, ControlRequest::TrustRemove { key: form.key }).await {
        Ok(_) => Redirect::to("/trust").into_response(),
        Err(e) => trust_page(&shared, &owner, None, "", Some(e)).await,
    }
}

// ---- requests waiting for the owner

struct PendingRow {
    computation: String,
    commissioner: String,
    label: String,
    query: String,
    collection: String,
    k_min: u64,
    g: u8,
    t: u8,
    records_used: u64,
    received: String,
    answer_by: String,
    seconds_left: u64,
}

#[derive(Template)]
#[template(path = "requests.html")]
struct RequestsPage {
    frame: Frame,
    pending: Vec<PendingRow>,
    message: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RequestsQuery {
    #[serde(default)]
    answered: String,
    #[serde(default)]
    outcome: String,
}

pub(super) async fn requests(
    State(shared): App,
    owner: Owner,
    Query(q): Query<RequestsQuery>,
) -> Response {
    let waiting: Vec<PendingRequest> =
        match list(&shared, ControlRequest::RequestsList, "pending").await {
            Ok(l) => l,
            Err(r) => return *r,
        };
    let now = crate::clock::now_micros().0;
    let pending = waiting
        .into_iter()
        .map(|p| PendingRow {
            commissioner: short(&p.commissioner),
            seconds_left: p.answer_by_micros.saturating_sub(now) / 1_000_000,
            received: utc(p.received_at_micros),
            answer_by: utc(p.answer_by_micros),
            computation: p.computation,
            label: p.label,
            query: p.query,
            collection: p.collection,
            k_min: p.k_min,
            g: p.g,
            t: p.t,
            records_used: p.records_used,
        })
        .collect();
    let message = (!q.answered.is_empty()).then(|| {
        let outcome = match q.outcome.as_str() {
            "contributed" => "approved: this node sent its shares",
            _ => "declined: this node sent no share",
        };
        format!("Request {}: {outcome}.", short(&q.answered))
    });
    render(&RequestsPage {
        frame: frame(&shared, &owner, "requests").await,
        pending,
        message,
    })
}

#[derive(Deserialize)]
pub(super) struct AnswerForm {
    computation: String,
    answer: String,
}

pub(super) async fn requests_answer(
    State(shared): App,
    Change(_, form): Change<AnswerForm>,
) -> Response {
    let approve = match form.answer.as_str() {
        "approve" => true,
        "decline" => false,
        other => {
            return refusal(
                StatusCode::BAD_REQUEST,
                &format!("unknown answer {other:?}"),
            )
        }
    };
    match ask(
        &shared,
        ControlRequest::RequestAnswer {
            computation: form.computation.clone(),
            approve,
        },
    )
    .await
    {
        Ok(d) => Redirect::to(&format!(
            "/requests?answered={}&outcome={}",
            form.computation,
            text(&d["outcome"])
        ))
        .into_response(),
        Err(e) => refusal(StatusCode::CONFLICT, &e),
    }
}

// ---- audit

struct AuditRow {
    at: String,
    kind: String,
    rule: String,
    commissioner: String,
    computation: String,
    detail: String,
}

#[derive(Clone, Default, Deserialize)]
pub(super) struct AuditFilter {
    #[serde(default)]
    commissioner: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    frame: Frame,
    filter: AuditFilter,
    commissioners: Vec<String>,
    rules: Vec<String>,
    rows: Vec<AuditRow>,
    matching: usize,
    total: usize,
    error: Option<String>,
}

pub(super) async fn audit(
    State(shared): App,
    owner: Owner,
    Query(filter): Query<AuditFilter>,
) -> Response {
    let entries: Vec<AuditEntry> = match list(&shared, ControlRequest::Audit, "entries").await {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let commissioners: Vec<String> = entries
        .iter()
        .filter(|e| !e.commissioner.is_empty())
        .map(|e| e.commissioner.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let rules: Vec<String> = entries
        .iter()
        .filter(|e| !e.rule.is_empty())
        .map(|e| e.rule.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut error = None;
    let bound = |v: &str, what: &str, error: &mut Option<String>| {
        if v.trim().is_empty() {
            return None;
        }
        let day = day_start(v);
        if day.is_none() {
            *error = Some(format!("{what} {v:?} is not a date YYYY-MM-DD"));
        }
        day
    };
    let from = bound(&filter.from, "from", &mut error);
    // `to` is inclusive: up to the end of that day.
    let to = bound(&filter.to, "to", &mut error).map(|d| d + 86_400_000_000);
    let keep = |e: &&AuditEntry| {
        (filter.commissioner.is_empty() || e.commissioner == filter.commissioner)
            && (filter.rule.is_empty() || e.rule == filter.rule)
            && from.is_none_or(|f| e.at_micros >= f)
            && to.is_none_or(|t| e.at_micros < t)
    };
    let matching: Vec<&AuditEntry> = entries.iter().filter(keep).collect();
    let rows = matching
        .iter()
        .rev()
        .take(MAX_AUDIT_SHOWN)
        .map(|e| AuditRow {
            at: utc(e.at_micros),
            kind: e.kind.clone(),
            rule: e.rule.clone(),
            commissioner: short(&e.commissioner),
            computation: short(&e.computation),
            detail: e.detail.clone(),
        })
        .collect();
    render(&AuditPage {
        frame: frame(&shared, &owner, "audit").await,
        matching: matching.len(),
        total: entries.len(),
        filter,
        commissioners,
        rules,
        rows,
        error,
    })
}

// ---- the commissioner's page

/// The launch form as typed. `g`, `t`, fan-in, leaf groups and the share window left empty
/// are the planner's choice, as `grove compute` makes it when its flags leave them open.
#[derive(Clone, Deserialize)]
pub(super) struct ComputeForm {
    #[serde(default)]
    query: String,
    #[serde(default)]
    g: String,
    #[serde(default)]
    t: String,
    #[serde(default)]
    k_min: String,
    #[serde(default)]
    fan_in: String,
    #[serde(default)]
    leaf_groups: String,
    #[serde(default)]
    share_window_ms: String,
    #[serde(default)]
    lifetime_secs: String,
    #[serde(default)]
    exposure_target: String,
    #[serde(default)]
    colluding_fraction: String,
}

impl Default for ComputeForm {
    fn default() -> ComputeForm {
        let d = ComputeParams::default();
        let goal = grove_protocol::planner::ExposureGoal::default();
        ComputeForm {
            query: String::new(),
            g: String::new(),
            t: String::new(),
            k_min: d.k_min.to_string(),
            fan_in: String::new(),
            leaf_groups: String::new(),
            share_window_ms: String::new(),
            lifetime_secs: d.lifetime_secs.to_string(),
            exposure_target: goal.target.to_string(),
            colluding_fraction: goal.colluding_fraction.to_string(),
        }
    }
}

/// What the form fixes: the planner's flags, `k_min` and the lifetime.
#[derive(Debug)]
struct LaunchChoices {
    flags: crate::owner::query::PlanFlags,
    k_min: u64,
    lifetime_secs: u64,
}

impl ComputeForm {
    fn choices(&self) -> Result<LaunchChoices, String> {
        fn number<T: std::str::FromStr>(v: &str, what: &str) -> Result<T, String> {
            v.trim()
                .parse()
                .map_err(|_| format!("{what} must be a whole number, not {v:?}"))
        }
        fn optional<T: std::str::FromStr>(v: &str, what: &str) -> Result<Option<T>, String> {
            if v.trim().is_empty() {
                Ok(None)
            } else {
                number(v, what).map(Some)
            }
        }
        fn fraction(v: &str, what: &str) -> Result<f64, String> {
            match v.trim().parse::<f64>() {
                Ok(x) if x > 0.0 && x < 1.0 => Ok(x),
                _ => Err(format!(
                    "{what} must be a number between 0 and 1, not {v:?}"
                )),
            }
        }
        let (g, t) = (optional(&self.g, "g")?, optional(&self.t, "t")?);
        if let (Some(g), Some(t)) = (g, t) {
            crate::owner::query::check_threshold(g, t)?;
        }
        Ok(LaunchChoices {
            flags: crate::owner::query::PlanFlags {
                g,
                t,
                fan_in: optional(&self.fan_in, "fan-in")?,
                leaf_groups: optional(&self.leaf_groups, "leaf groups")?,
                share_window_ms: optional(&self.share_window_ms, "the share window")?,
                goal: grove_protocol::planner::ExposureGoal {
                    target: fraction(&self.exposure_target, "the exposure target")?,
                    colluding_fraction: fraction(
                        &self.colluding_fraction,
                        "the colluding fraction",
                    )?,
                },
            },
            k_min: number(&self.k_min, "k_min")?,
            lifetime_secs: number(&self.lifetime_secs, "the lifetime")?,
        })
    }
}

/// A query error placed in its text: the lines up to the error's, and a caret under its
/// column.
struct ErrorPlace {
    lines: Vec<(usize, String)>,
    caret: String,
}

fn place_error(query: &str) -> Option<ErrorPlace> {
    let e = match ParsedQuery::parse(query).and_then(|q| q.compile()) {
        Ok(_) => return None,
        Err(e) => e,
    };
    let lines: Vec<(usize, String)> = query
        .lines()
        .enumerate()
        .take(e.line as usize)
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect();
    let line = lines.last().map(|(_, l)| l.as_str()).unwrap_or("");
    let before: String = line
        .chars()
        .take((e.column as usize).saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    Some(ErrorPlace {
        lines,
        caret: format!("{before}^"),
    })
}

struct RunRow {
    computation: String,
    query: String,
    state: &'static str,
    launched: String,
}

#[derive(Template)]
#[template(path = "compute.html")]
struct ComputePage {
    frame: Frame,
    form: ComputeForm,
    error: Option<String>,
    place: Option<ErrorPlace>,
    runs: Vec<RunRow>,
    examples: Vec<(&'static str, &'static str)>,
}

fn compute_page(
    frame: Frame,
    shared: &Shared,
    form: ComputeForm,
    error: Option<String>,
) -> Response {
    let place = error.as_ref().and_then(|_| place_error(&form.query));
    let runs = lock(&shared.runs)
        .newest_first()
        .map(|r| RunRow {
            computation: r.computation.clone(),
            query: r.compiled.query().to_string(),
            state: match &r.outcome {
                None => "running",
                Some(Ok(_)) => "released",
                Some(Err(_)) => "failed",
            },
            launched: utc(r.launched_at_micros),
        })
        .collect();
    render_with(
        status_for(&error),
        &ComputePage {
            frame,
            form,
            error,
            place,
            runs,
            examples: vec![
                ("Spending by month", crate::demo::BANK_BY_MONTH),
                ("Daily steps by age band", crate::demo::STEPS_BY_AGE),
                ("One FedAvg round", crate::demo::FEDAVG_ROUND),
            ],
        },
    )
}

#[derive(Deserialize)]
pub(super) struct ComputeQuery {
    #[serde(default)]
    example: Option<usize>,
}

pub(super) async fn compute(
    State(shared): App,
    owner: Owner,
    Query(q): Query<ComputeQuery>,
) -> Response {
    let mut form = ComputeForm::default();
    let examples = [
        crate::demo::BANK_BY_MONTH,
        crate::demo::STEPS_BY_AGE,
        crate::demo::FEDAVG_ROUND,
    ];
    if let Some(text) = q.example.and_then(|i| examples.get(i)) {
        form.query = text.to_string();
    }
    let frame = frame(&shared, &owner, "compute").await;
    compute_page(frame, &shared, form, None)
}

pub(super) async fn compute_launch(
    State(shared): App,
    Change(owner, form): Change<ComputeForm>,
) -> Response {
    let frame = frame(&shared, &owner, "compute").await;
    // The query first, with its line and column, exactly as `grove compute` reports it.
    let compiled = match crate::owner::query::compile(&form.query) {
        Ok(c) => c,
        Err(e) => return compute_page(frame, &shared, form, Some(e)),
    };
    let choices = match form.choices() {
        Ok(c) => c,
        Err(e) => return compute_page(frame, &shared, form, Some(e)),
    };
    // The planner picks what the form leaves open, from the daemon's view of the network,
    // exactly as `grove compute` does.
    let status = match ask(&shared, ControlRequest::Status).await {
        Ok(s) => s,
        Err(e) => return compute_page(frame, &shared, form, Some(e)),
    };
    let net = crate::owner::query::NetworkEstimate::from_status(&status);
    let planned = match crate::owner::query::plan_compute(
        &choices.flags,
        &net,
        compiled.spec().length,
        choices.k_min,
    )
    .and_then(|p| crate::owner::query::check_threshold(p.g, p.t).map(|()| p))
    {
        Ok(p) => p,
        Err(e) => return compute_page(frame, &shared, form, Some(e)),
    };
    let params = ComputeParams {
        query: form.query.clone(),
        g: planned.g,
        t: planned.t,
        k_min: choices.k_min,
        leaf_groups: planned.leaf_groups,
        fan_in: planned.fan_in,
        max_contributors: None,
        share_window_ms: planned.share_window_ms,
        lifetime_secs: choices.lifetime_secs,
    };
    match runs::launch(&shared, params, compiled, planned.report).await {
        Ok(id) => Redirect::to(&format!("/runs/{id}")).into_response(),
        Err(e) => compute_page(frame, &shared, form, Some(e)),
    }
}

struct Phase {
    name: &'static str,
    state: &'static str,
    detail: String,
}

struct GroupRow {
    level: String,
    index: String,
    members: String,
}

struct ResultView {
    columns: Vec<String>,
    group_by: String,
    rows: Vec<(String, Vec<String>)>,
    cli_text: String,
    charts: Vec<Chart>,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    frame: Frame,
    computation: String,
    query: String,
    running: bool,
    plan: Vec<(&'static str, String)>,
    groups: Vec<GroupRow>,
    phases: Vec<Phase>,
    result: Option<ResultView>,
    failure: Option<String>,
}

/// One line of the planner's report (`owner::query::Planned::report`) as a row of the plan:
/// its leading word ("planner", "exposure", "warning") as the heading.
fn planner_row(line: &str) -> (&'static str, String) {
    match line.split_once(": ") {
        Some(("planner", rest)) => ("planner's choice", rest.to_string()),
        Some(("exposure", rest)) => ("exposure", rest.to_string()),
        Some(("warning", rest)) => ("warning", rest.to_string()),
        _ => ("planner", line.to_string()),
    }
}

fn table_of(run: &runs::Run, data: &Value) -> ResultTable {
    let values: Vec<f64> = data["values"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect())
        .unwrap_or_default();
    run.compiled
        .decode(&values, data["contributors"].as_u64().unwrap_or(0))
}

pub(super) async fn run(State(shared): App, owner: Owner, Path(id): Path<String>) -> Response {
    let view = {
        let runs = lock(&shared.runs);
        let Some(run) = runs.get(&id) else {
            drop(runs);
            return refusal(
                StatusCode::NOT_FOUND,
                "This console launched no such computation (or forgot it: it keeps the latest \
                 runs only, until the daemon restarts).",
            );
        };
        let result = match &run.outcome {
            Some(Ok(data)) => {
                let table = table_of(run, data);
                Some(ResultView {
                    columns: table.columns.clone(),
                    group_by: table.group_by.clone().unwrap_or_default(),
                    rows: table
                        .rows
                        .iter()
                        .map(|r| {
                            (
                                r.key.clone().unwrap_or_default(),
                                r.cells.iter().map(Cell::to_string).collect(),
                            )
                        })
                        .collect(),
                    cli_text: crate::control::result_text(data),
                    charts: chart::charts(&table),
                })
            }
            _ => None,
        };
        let failure = match &run.outcome {
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        };
        let p = &run.plan;
        let timeouts = crate::owner::query::timeouts(run.params.share_window_ms);
        let plan = vec![
            ("g (group size)", text(&p["g"])),
            ("t (threshold)", text(&p["t"])),
            ("k_min", run.params.k_min.to_string()),
            ("leaf groups", text(&p["leaf_groups"])),
            ("fan-in", run.params.fan_in.to_string()),
            ("depth (levels)", text(&p["depth"])),
            ("directory peers", text(&p["directory_peers"])),
            (
                "share window",
                format!("{} ms", timeouts.share_window / 1000),
            ),
            (
                "collect / report / release windows",
                format!(
                    "{} / {} / {} ms",
                    timeouts.collect_window / 1000,
                    timeouts.report_window / 1000,
                    timeouts.release_window / 1000
                ),
            ),
            ("lifetime", format!("{} s", run.params.lifetime_secs)),
        ]
        .into_iter()
        .chain(run.planner.iter().map(|line| planner_row(line)))
        .collect();
        let groups = p["groups"]
            .as_array()
            .map(|gs| {
                gs.iter()
                    .map(|g| GroupRow {
                        level: text(&g["level"]),
                        index: text(&g["index"]),
                        members: g["members"]
                            .as_array()
                            .map(|m| m.iter().map(|x| short(&text(x))).collect::<Vec<_>>())
                            .unwrap_or_default()
                            .join(", "),
                    })
                    .collect()
            })
            .unwrap_or_default();
        (
            run.compiled.query().to_string(),
            run.outcome.is_none(),
            plan,
            groups,
            result,
            failure,
            run.launched_at_micros,
            timeouts.share_window,
            p["t"].as_u64().unwrap_or(0),
            p["g"].as_u64().unwrap_or(0),
            p["depth"].as_u64().unwrap_or(0),
        )
    };
    let (query, running, plan, groups, result, failure, launched, window, t, g, depth) = view;
    let progress = if running {
        ask(
            &shared,
            ControlRequest::Progress {
                computation: id.clone(),
            },
        )
        .await
        .unwrap_or_default()
    } else {
        Value::Null
    };
    let phases = phases(
        &progress,
        running,
        failure.is_some(),
        launched,
        window,
        (g, t, depth),
    );
    render(&RunPage {
        frame: frame(&shared, &owner, "compute").await,
        computation: id,
        query,
        running,
        plan,
        groups,
        phases,
        result,
        failure,
    })
}

/// The phases of a computation as its commissioner sees them: the request, the leaves'
/// share window (known by time only), the levels up to the root (done once the root
/// reports), the root's reports and the release's shares.
fn phases(
    p: &Value,
    running: bool,
    failed: bool,
    launched_micros: u64,
    share_window_micros: u64,
    (g, t, depth): (u64, u64, u64),
) -> Vec<Phase> {
    let now = crate::clock::now_micros().0;
    let window_end = launched_micros + share_window_micros;
    let reports = p["root_reports"].as_u64().unwrap_or(0);
    let best = p["best_version_holders"].as_u64().unwrap_or(0);
    let chosen = p["version_chosen"].as_bool().unwrap_or(false);
    let shares = p["root_shares"].as_u64().unwrap_or(0);
    let finished = !running;
    let state = |done: bool, active: bool| {
        if done {
            "done"
        } else if failed {
            "failed"
        } else if active {
            "active"
        } else {
            "waiting"
        }
    };
    let window_done = finished || reports > 0 || now >= window_end;
    let levels_done = finished || reports > 0;
    let root_done = finished || chosen;
    vec![
        Phase {
            name: "Request signed and sent",
            state: "done",
            detail: format!("at {} UTC", utc(launched_micros)),
        },
        Phase {
            name: "Contributors share, leaf groups collect",
            state: state(window_done, true),
            detail: if window_done {
                "the share window is over (or every leaf closed early)".into()
            } else {
                format!(
                    "leaf groups collect until {} UTC, or until every node they serve sent \
                     shares or declined ({} s left at most)",
                    utc(window_end),
                    (window_end - now) / 1_000_000
                )
            },
        },
        Phase {
            name: "Groups agree and send up, level by level",
            state: state(levels_done, window_done),
            detail: match depth {
                1 => "one level: the leaf group is the root".into(),
                d => format!("{d} levels from the leaves to the root"),
            },
        },
        Phase {
            name: "The root reports to the commissioner",
            state: state(root_done, levels_done),
            detail: if finished {
                format!("the root's {g} positions agreed on one version; {t} of them suffice")
            } else {
                format!(
                    "{reports} of {g} root positions reported; the best version is held by \
                     {best} (t = {t} needed)"
                )
            },
        },
        Phase {
            name: "Release: root shares reconstructed",
            state: state(finished && !failed, root_done),
            detail: if finished && !failed {
                "released to this node only".into()
            } else {
                format!("{shares} of {t} root shares received")
            },
        },
    ]
}

fn run_result(shared: &Shared, id: &str) -> Result<(ResultTable, Value), Box<Response>> {
    let runs = lock(&shared.runs);
    match runs.get(id) {
        Some(run) => match &run.outcome {
            Some(Ok(data)) => Ok((table_of(run, data), data.clone())),
            _ => Err(Box::new(refusal(
                StatusCode::NOT_FOUND,
                "This computation has no result (yet).",
            ))),
        },
        None => Err(Box::new(refusal(
            StatusCode::NOT_FOUND,
            "This console launched no such computation.",
        ))),
    }
}

fn attachment(content_type: &'static str, name: String, body: Vec<u8>) -> Response {
    let mut r = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// The result table as CSV: a header of the `GROUP BY` expression (or `row`) and the
/// columns, then one line per row; lists are written as the table writes them.
pub(super) fn csv_of(table: &ResultTable) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec![table.group_by.clone().unwrap_or_else(|| "row".into())];
    header.extend(table.columns.iter().cloned());
    w.write_record(&header).map_err(|e| e.to_string())?;
    for r in &table.rows {
        let mut line = vec![r.key.clone().unwrap_or_else(|| "all".into())];
        line.extend(r.cells.iter().map(Cell::to_string));
        w.write_record(&line).map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

pub(super) async fn run_csv(State(shared): App, _owner: Owner, Path(id): Path<String>) -> Response {
    let (table, _) = match run_result(&shared, &id) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    match csv_of(&table) {
        Ok(body) => attachment(
            "text/csv; charset=utf-8",
            format!("grove-{}.csv", short(&id).trim_end_matches('…')),
            body,
        ),
        Err(e) => refusal(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

pub(super) async fn run_json(
    State(shared): App,
    _owner: Owner,
    Path(id): Path<String>,
) -> Response {
    let (table, data) = match run_result(&shared, &id) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let body = serde_json::json!({
        "computation": id,
        "query": data["query"],
        "table": table,
        "contributors": data["contributors"],
        "directory_peers": data["directory_peers"],
        "completeness": data["completeness"],
        "version": data["version"],
        "elapsed_ms": data["elapsed_ms"],
    });
    attachment(
        "application/json",
        format!("grove-{}.json", short(&id).trim_end_matches('…')),
        serde_json::to_vec_pretty(&body).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use grove_protocol::query::ResultRow;

    /// The launch form as first shown leaves the tree's shape to the planner, with the CLI's
    /// exposure goal; what is typed is kept, and a threshold below 2 or a fraction outside
    /// (0, 1) is refused before anything is launched.
    #[test]
    fn the_launch_form_leaves_the_shape_to_the_planner() {
        let form = ComputeForm::default();
        let c = form.choices().expect("the default form is valid");
        assert_eq!(c.flags.g, None);
        assert_eq!(c.flags.t, None);
        assert_eq!(c.flags.fan_in, None);
        assert_eq!(c.flags.share_window_ms, None);
        assert_eq!(
            c.flags.goal,
            grove_protocol::planner::ExposureGoal::default()
        );
        let typed = ComputeForm {
            g: "7".into(),
            t: " 5 ".into(),
            ..ComputeForm::default()
        };
        let c = typed.choices().expect("g = 7, t = 5 is valid");
        assert_eq!((c.flags.g, c.flags.t), (Some(7), Some(5)));
        let low = ComputeForm {
            g: "3".into(),
            t: "1".into(),
            ..ComputeForm::default()
        };
        assert!(low.choices().unwrap_err().contains("t = 1 is refused"));
        let everyone = ComputeForm {
            colluding_fraction: "1.5".into(),
            ..ComputeForm::default()
        };
        assert!(everyone
            .choices()
            .unwrap_err()
            .contains("colluding fraction"));
    }

    /// Editing a trust in the console keeps every limit, the privacy budget included (a form
    /// without the field would save the trust without its budget).
    #[test]
    fn editing_a_trust_keeps_its_privacy_budget() {
        let entry = TrustEntry {
            key: "ab".into(),
            collections: vec!["c".into()],
            label: "city".into(),
            added_at_micros: 5,
            min_contributors: 7,
            fields: vec!["x".into()],
            max_per_day: 3,
            min_t: 4,
            differencing_window_secs: 60,
            max_group_keys: 9,
            allow_repeats: true,
            mode: TrustMode::Ask,
            epsilon_per_month_milli: Some(2_500),
        };
        let Ok(ControlRequest::TrustAdd { limits, .. }) = TrustForm::of(&entry).request() else {
            panic!("the form of a stored trust is a valid request");
        };
        assert_eq!(limits.epsilon_per_month, Some(2.5));
        assert_eq!(limits.max_group_keys, Some(9));
        let mut none = entry.clone();
        none.epsilon_per_month_milli = None;
        let Ok(ControlRequest::TrustAdd { limits, .. }) = TrustForm::of(&none).request() else {
            panic!("the form of a stored trust is a valid request");
        };
        assert_eq!(limits.epsilon_per_month, None);
        let mut form = TrustForm::of(&entry);
        form.epsilon_per_month = "lots".into();
        assert!(form.request().unwrap_err().contains("privacy budget"));
    }

    #[test]
    fn a_query_error_is_placed_at_its_line_and_column() {
        let place = place_error("SELECT count(*)\nFROM c\nWHERE x ~ 3").unwrap();
        assert_eq!(place.lines.len(), 3);
        assert_eq!(place.lines[2].1, "WHERE x ~ 3");
        assert_eq!(place.caret, "        ^");
        assert!(place_error("SELECT count(*) FROM c").is_none());
    }

    #[test]
    fn csv_quotes_lists_and_labels() {
        let table = ResultTable {
            group_by: Some("month(date)".into()),
            columns: vec!["count(*)".into(), "histogram(x, [0, 1, 2])".into()],
            rows: vec![ResultRow {
                key: Some("2026-01".into()),
                suppressed: false,
                cells: vec![Cell::Number(3.0), Cell::List(vec![Some(1.0), Some(2.0)])],
            }],
            contributors: 2,
        };
        let text = String::from_utf8(csv_of(&table).unwrap()).unwrap();
        assert_eq!(
            text,
            "month(date),count(*),\"histogram(x, [0, 1, 2])\"\n2026-01,3,\"[1, 2]\"\n"
        );
    }
}
