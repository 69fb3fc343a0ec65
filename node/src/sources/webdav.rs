//! Pulling records from a Nextcloud account over WebDAV, incrementally by ETag.
//!
//! The walk lists collections with `PROPFIND` (`Depth: 1`, recursing into sub-collections)
//! under three roots of the account's DAV tree (`<url>/remote.php/dav/`):
//!
//! | root | files taken | collection |
//! |---|---|---|
//! | `files/<user>/<folder>/` | `.csv`, `.json`, `.ndjson`, `.jsonl` (the `records import` parsers) | the first folder below `<folder>` (`Grove/bank.operations/2024.csv` goes to `bank.operations`), or the file's name without extension for a file right in `<folder>` |
//! | `calendars/<user>/` | `.ics` (iCalendar `VEVENT`s, see [`crate::sources::ical`]) | `calendar.events` |
//! | `addressbooks/users/<user>/` | `.vcf` (vCards, see [`crate::sources::vcard`]) | `contacts` |
//!
//! Nextcloud's `inbox`, `outbox` and `trashbin` calendars and its generated address books
//! (`z-server-generated--…`, `z-app-generated--…`) are not read. A missing root (404) is
//! passed over.
//!
//! A file is downloaded (`GET`) only if the ETag listed for it differs from the one stored for
//! it. Its records and its new ETag are committed to the store in one transaction
//! ([`crate::store::Store::upsert_sources`], source `nextcloud:<account>:<path>`), replacing
//! what the file brought before. So an interrupted sync (killed, or the server gone) leaves
//! every file either fully imported with its ETag or untouched, and the next sync fetches
//! exactly the files that are not: no duplicates, nothing missed. A file that no longer
//! exists on a fully listed root has its records removed. A malformed file is skipped and
//! reported with its path and the reason; its ETag is kept with the reason, so it is not
//! downloaded again until it changes, and the records of its previous version stay.
//!
//! The app password is read from a file, never from the command line. Errors are plain:
//! HTTP 401 names the user and the password file; a connection failure names the server.

use crate::config::{default_folder, NextcloudConfig};
use crate::control::ControlRequest;
use crate::sources::import::{self, Format};
use crate::store::{SourcedRecords, SyncUpdate};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// Largest file downloaded, in bytes.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest PROPFIND answer, in bytes.
pub const MAX_LISTING_BYTES: u64 = 16 * 1024 * 1024;
/// Deepest folder nesting walked below a root.
pub const MAX_DEPTH: usize = 12;
/// Largest number of entries listed in one sync.
pub const MAX_ENTRIES: usize = 200_000;
/// Timeout of one HTTP request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

const PROPFIND_BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:getetag/></d:prop></d:propfind>"#;

#[derive(Debug, Error)]
pub enum SyncError {
    #[error("the server at {url} refused the credentials of user {user:?} (HTTP 401): check the app password in {password_file}")]
    BadCredentials {
        url: String,
        user: String,
        password_file: String,
    },
    #[error("cannot reach the server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{method} {path}: the server answered HTTP {status}")]
    Http {
        method: &'static str,
        path: String,
        status: u16,
    },
    #[error("{0}")]
    Other(String),
}

/// What one sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// Files of a known kind listed on the server.
    pub listed: u64,
    /// Files downloaded (one `GET` each).
    pub downloaded: u64,
    /// Files whose ETag had not changed.
    pub unchanged: u64,
    /// Records written by this sync.
    pub records: u64,
    /// Files gone from the server whose records were removed.
    pub removed: u64,
    /// `(path, reason)` of files and items skipped.
    pub skipped: Vec<(String, String)>,
}

/// An account ready to sync: its password read from its file.
pub struct Account {
    url: String,
    user: String,
    password: String,
    password_file: String,
    folder: String,
}

/// What the store keeps for a synced file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FileState {
    etag: String,
    collection: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// A listed entry: its path below the DAV root, whether it is a collection, its ETag.
type Entry = (String, bool, Option<String>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Table(Format),
    Calendar,
    Contacts,
}

impl Account {
    pub fn new(config: &NextcloudConfig) -> Result<Account, SyncError> {
        let text = std::fs::read_to_string(&config.password_file).map_err(|e| {
            SyncError::Other(format!(
                "cannot read the app password file {}: {e}",
                config.password_file.display()
            ))
        })?;
        let password = text.lines().next().unwrap_or_default().trim().to_string();
        if password.is_empty() {
            return Err(SyncError::Other(format!(
                "the app password file {} is empty",
                config.password_file.display()
            )));
        }
        let url = config.url.trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(SyncError::Other(format!(
                "the Nextcloud url {url:?} must start with https:// (or http://)"
            )));
        }
        if config.user.is_empty() || config.user.contains('/') {
            return Err(SyncError::Other(format!(
                "{:?} is not a user name",
                config.user
            )));
        }
        Ok(Account {
            url,
            user: config.user.clone(),
            password,
            password_file: config.password_file.display().to_string(),
            folder: config.folder.trim_matches('/').to_string(),
        })
    }

    /// The key of this account's sync state: `user@url`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.user, self.url)
    }

    fn roots(&self) -> Vec<String> {
        let mut files = format!("files/{}/", self.user);
        if !self.folder.is_empty() {
            files.push_str(&self.folder);
            files.push('/');
        }
        vec![
            files,
            format!("calendars/{}/", self.user),
            format!("addressbooks/users/{}/", self.user),
        ]
    }

    /// The kind and collection of a file, from its path below the DAV root.
    fn classify(&self, path: &str) -> Option<(Kind, String)> {
        let lower = path.to_ascii_lowercase();
        let ext = lower.rsplit_once('.').map(|(_, e)| e)?;
        let files_root = &self.roots()[0];
        if let Some(rel) = path.strip_prefix(files_root.as_str()) {
            let format = Format::from_path(std::path::Path::new(rel))?;
            let collection = match rel.split_once('/') {
                Some((folder, _)) => folder.to_string(),
                None => rel.rsplit_once('.').map(|(s, _)| s)?.to_string(),
            };
            return Some((Kind::Table(format), collection));
        }
        if path.starts_with(&self.roots()[1]) && ext == "ics" {
            return Some((Kind::Calendar, "calendar.events".into()));
        }
        if path.starts_with(&self.roots()[2]) && ext == "vcf" {
            return Some((Kind::Contacts, "contacts".into()));
        }
        None
    }

    fn url_of(&self, path: &str) -> String {
        format!("{}/remote.php/dav/{}", self.url, encode_path(path))
    }

    fn authorization(&self) -> String {
        format!(
            "Basic {}",
            base64(format!("{}:{}", self.user, self.password).as_bytes())
        )
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .allow_non_standard_methods(true)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .new_agent()
    }

    fn transport_error(&self, e: ureq::Error) -> SyncError {
        SyncError::Unreachable {
            url: self.url.clone(),
            reason: e.to_string(),
        }
    }

    fn check_auth(&self, status: u16) -> Result<(), SyncError> {
        if status == 401 {
            return Err(SyncError::BadCredentials {
                url: self.url.clone(),
                user: self.user.clone(),
                password_file: self.password_file.clone(),
            });
        }
        Ok(())
    }

    /// The entries of one collection (`(path, is collection, etag)`), without itself; `None`
    /// if it does not exist.
    fn propfind(&self, agent: &ureq::Agent, path: &str) -> Result<Option<Vec<Entry>>, SyncError> {
        let request = ureq::http::Request::builder()
            .method("PROPFIND")
            .uri(self.url_of(path))
            .header("Depth", "1")
            .header("Authorization", self.authorization())
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(PROPFIND_BODY)
            .map_err(|e| SyncError::Other(format!("bad request for {path}: {e}")))?;
        let mut response = agent.run(request).map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        self.check_auth(status)?;
        if status == 404 {
            return Ok(None);
        }
        if status != 207 {
            return Err(SyncError::Http {
                method: "PROPFIND",
                path: path.into(),
                status,
            });
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_LISTING_BYTES)
            .read_to_string()
            .map_err(|e| self.transport_error(e))?;
        let entries = parse_multistatus(&body)
            .map_err(|e| SyncError::Other(format!("PROPFIND {path}: {e}")))?;
        let me = path.trim_end_matches('/');
        Ok(Some(
            entries
                .into_iter()
                .filter_map(|(href, dir, etag)| {
                    let p = dav_path(&href)?;
                    (p.trim_end_matches('/') != me).then_some((p, dir, etag))
                })
                .collect(),
        ))
    }

    /// A file's bytes; `None` if it is gone.
    fn get(&self, agent: &ureq::Agent, path: &str) -> Result<Result<Vec<u8>, u16>, SyncError> {
        let request = ureq::http::Request::builder()
            .method("GET")
            .uri(self.url_of(path))
            .header("Authorization", self.authorization())
            .body(())
            .map_err(|e| SyncError::Other(format!("bad request for {path}: {e}")))?;
        let mut response = agent.run(request).map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        self.check_auth(status)?;
        if status != 200 {
            return Ok(Err(status));
        }
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_FILE_BYTES)
            .read_to_vec()
            .map_err(|e| self.transport_error(e))?;
        Ok(Ok(bytes))
    }
}

/// Runs one sync. `call` carries control requests to the node (the control socket from the
/// CLI, the event loop's queue inside the daemon); `progress` hears one line per file.
/// On an error, the report says what was done before it (all of which is committed).
pub fn sync(
    account: &Account,
    call: &mut dyn FnMut(ControlRequest) -> anyhow::Result<serde_json::Value>,
    progress: &mut dyn FnMut(&str),
) -> (SyncReport, Option<SyncError>) {
    let mut report = SyncReport::default();
    let error = sync_inner(account, call, progress, &mut report).err();
    (report, error)
}

fn sync_inner(
    account: &Account,
    call: &mut dyn FnMut(ControlRequest) -> anyhow::Result<serde_json::Value>,
    progress: &mut dyn FnMut(&str),
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let node_err = |e: anyhow::Error| SyncError::Other(format!("the node refused: {e:#}"));
    let id = account.id();
    let state = call(ControlRequest::SyncState {
        account: id.clone(),
    })
    .map_err(node_err)?;
    let mut known: BTreeMap<String, FileState> = BTreeMap::new();
    if let Some(files) = state["files"].as_object() {
        for (path, v) in files {
            if let Some(s) = v.as_str().and_then(|s| serde_json::from_str(s).ok()) {
                known.insert(path.clone(), s);
            }
        }
    }
    let agent = Account::agent();
    let mut seen = BTreeSet::new();
    let mut listed_roots = Vec::new();
    for root in account.roots() {
        // Breadth-first walk of this root.
        let mut queue = vec![(root.clone(), 0usize)];
        let mut files = Vec::new();
        let mut exists = true;
        while let Some((dir, depth)) = queue.pop() {
            let Some(entries) = account.propfind(&agent, &dir)? else {
                if dir == root {
                    exists = false;
                }
                continue;
            };
            for (path, is_dir, etag) in entries {
                if seen.len() + files.len() + queue.len() >= MAX_ENTRIES {
                    return Err(SyncError::Other(format!(
                        "more than {MAX_ENTRIES} entries on the server"
                    )));
                }
                if is_dir {
                    let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
                    let special = matches!(name, "inbox" | "outbox" | "trashbin")
                        || name.starts_with("z-server-generated--")
                        || name.starts_with("z-app-generated--");
                    if depth < MAX_DEPTH && !special {
                        queue.push((format!("{}/", path.trim_end_matches('/')), depth + 1));
                    }
                } else if let Some((kind, collection)) = account.classify(&path) {
                    files.push((path, kind, collection, etag));
                }
            }
        }
        if exists {
            listed_roots.push(root.clone());
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, kind, collection, etag) in files {
            report.listed += 1;
            seen.insert(path.clone());
            let etag = etag.unwrap_or_default();
            if let Some(old) = known.get(&path) {
                if !etag.is_empty() && old.etag == etag {
                    report.unchanged += 1;
                    if let Some(e) = &old.error {
                        report
                            .skipped
                            .push((path.clone(), format!("{e} (unchanged since)")));
                    }
                    continue;
                }
            }
            // A folder whose name is not a collection name is skipped, not fatal to the sync.
            if let Err(e) = crate::store::validate_collection_name(&collection) {
                report
                    .skipped
                    .push((path.clone(), format!("not imported: {e}")));
                continue;
            }
            let bytes = match account.get(&agent, &path)? {
                Ok(b) => b,
                Err(404) => continue,
                Err(status) => {
                    report.skipped.push((
                        path.clone(),
                        format!("the server answered HTTP {status} (tried again next sync)"),
                    ));
                    continue;
                }
            };
            report.downloaded += 1;
            let parsed = String::from_utf8(bytes)
                .map_err(|_| "not UTF-8 text".to_string())
                .and_then(|text| match kind {
                    Kind::Table(format) => import::parse(&text, format)
                        .map(|r| (r, Vec::new()))
                        .map_err(|e| e.to_string()),
                    Kind::Calendar => crate::sources::ical::parse(&text),
                    Kind::Contacts => crate::sources::vcard::parse(&text),
                });
            let mut new_state = FileState {
                etag: etag.clone(),
                collection: collection.clone(),
                error: None,
            };
            let (items, line) = match parsed {
                Ok((records, item_skips)) => {
                    for s in item_skips {
                        report.skipped.push((path.clone(), s));
                    }
                    let n = records.len() as u64;
                    let item = SourcedRecords {
                        source: format!("nextcloud:{id}:{path}"),
                        revision: None,
                        collection: collection.clone(),
                        records,
                    };
                    (
                        vec![item],
                        format!("imported {path}: {n} records into {collection}"),
                    )
                }
                Err(reason) => {
                    report.skipped.push((path.clone(), reason.clone()));
                    new_state.error = Some(reason.clone());
                    (Vec::new(), format!("skipped {path}: {reason}"))
                }
            };
            let state_text = serde_json::to_string(&new_state)
                .map_err(|e| SyncError::Other(format!("sync state: {e}")))?;
            let summary = call(ControlRequest::ImportSources {
                items,
                sync: vec![SyncUpdate {
                    account: id.clone(),
                    path: path.clone(),
                    state: Some(state_text),
                }],
            })
            .map_err(node_err)?;
            report.records += summary["records_written"].as_u64().unwrap_or(0);
            progress(&line);
        }
    }
    // Files gone from a fully listed root: their records go.
    for (path, old) in known {
        if seen.contains(&path) || !listed_roots.iter().any(|r| path.starts_with(r.as_str())) {
            continue;
        }
        call(ControlRequest::ImportSources {
            items: vec![SourcedRecords {
                source: format!("nextcloud:{id}:{path}"),
                revision: None,
                collection: old.collection.clone(),
                records: Vec::new(),
            }],
            sync: vec![SyncUpdate {
                account: id.clone(),
                path: path.clone(),
                state: None,
            }],
        })
        .map_err(node_err)?;
        report.removed += 1;
        progress(&format!("removed {path}: gone from the server"));
    }
    Ok(())
}

/// `grove sync` flags; each overrides the config file's `[nextcloud]` value.
#[derive(Clone, Debug, Default)]
pub struct SyncFlags {
    pub url: Option<String>,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    pub folder: Option<String>,
}

/// `grove sync`: one sync through the running daemon, progress on standard error.
pub async fn sync_command(
    dir: &std::path::Path,
    flags: SyncFlags,
    json: bool,
) -> anyhow::Result<()> {
    let from_file = crate::config::load_config(dir)?.nextcloud;
    let missing = |what: &str| {
        anyhow::anyhow!(
            "no Nextcloud {what}: pass --{what} or set it in the [nextcloud] table of {}",
            crate::config::config_path(dir).display()
        )
    };
    let config = NextcloudConfig {
        url: flags
            .url
            .or_else(|| from_file.as_ref().map(|c| c.url.clone()))
            .ok_or_else(|| missing("url"))?,
        user: flags
            .user
            .or_else(|| from_file.as_ref().map(|c| c.user.clone()))
            .ok_or_else(|| missing("user"))?,
        password_file: flags
            .password_file
            .or_else(|| from_file.as_ref().map(|c| c.password_file.clone()))
            .ok_or_else(|| missing("password-file"))?,
        folder: flags
            .folder
            .or_else(|| from_file.as_ref().map(|c| c.folder.clone()))
            .unwrap_or_else(default_folder),
        interval_secs: 0,
    };
    let account = Account::new(&config)?;
    let dir = dir.to_path_buf();
    let handle = tokio::runtime::Handle::current();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut call = |r: ControlRequest| {
            handle
                .block_on(crate::control::call(&dir, &r, |_, _| {}))
                .map_err(anyhow::Error::from)
        };
        let mut progress = |line: &str| {
            if !json {
                eprintln!("{line}");
            }
        };
        sync(&account, &mut call, &mut progress)
    })
    .await?;
    let (report, error) = outcome;
    if json {
        let mut v = serde_json::to_value(&report)?;
        v["error"] = error
            .as_ref()
            .map_or(serde_json::Value::Null, |e| e.to_string().into());
        println!("{v}");
    } else {
        println!(
            "{} files listed, {} downloaded, {} unchanged, {} removed; {} records written",
            report.listed, report.downloaded, report.unchanged, report.removed, report.records
        );
        if !report.skipped.is_empty() {
            println!("skipped {}:", report.skipped.len());
            for (p, r) in &report.skipped {
                println!("  {p}: {r}");
            }
        }
    }
    match error {
        None => Ok(()),
        Some(e) => Err(anyhow::anyhow!(
            "{e}\nwhat was imported before the error is kept; run `grove sync` again to resume"
        )),
    }
}

/// Runs a sync every `interval_secs` inside the daemon (if it is not 0), the first one right
/// away. Errors are logged and the next sync tries again.
pub fn spawn_periodic(
    config: NextcloudConfig,
    to_loop: tokio::sync::mpsc::Sender<crate::control::Incoming>,
) {
    if config.interval_secs == 0 {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(config.interval_secs));
        loop {
            tick.tick().await;
            let config = config.clone();
            let to_loop = to_loop.clone();
            let handle = tokio::runtime::Handle::current();
            let done = tokio::task::spawn_blocking(move || {
                let account = match Account::new(&config) {
                    Ok(a) => a,
                    Err(e) => return Err(e.to_string()),
                };
                let mut call = |r: ControlRequest| {
                    handle
                        .block_on(crate::control::call_local(&to_loop, r))
                        .map_err(anyhow::Error::from)
                };
                let mut progress = |line: &str| tracing::debug!("nextcloud sync: {line}");
                match sync(&account, &mut call, &mut progress) {
                    (r, None) => Ok(r),
                    (r, Some(e)) => Err(format!("{e} (before it: {r:?})")),
                }
            })
            .await;
            match done {
                Ok(Ok(r)) => tracing::info!(
                    "nextcloud sync: {} files listed, {} downloaded, {} records, {} skipped",
                    r.listed,
                    r.downloaded,
                    r.records,
                    r.skipped.len()
                ),
                Ok(Err(e)) => tracing::warn!("nextcloud sync failed: {e}"),
                Err(e) => tracing::warn!("nextcloud sync task failed: {e}"),
            }
        }
    });
}

/// Percent-encodes each segment of a path (keeping `/`).
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn decode_percent(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The path below `remote.php/dav/` of an href (an absolute path or a full URL).
fn dav_path(href: &str) -> Option<String> {
    let path = match href.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => href,
    };
    let decoded = decode_percent(path);
    let (_, rest) = decoded.split_once("/remote.php/dav/")?;
    Some(rest.to_string())
}

/// `(href, is collection, etag)` of every response of a multistatus answer, from its
/// `200` propstat.
fn parse_multistatus(xml: &str) -> Result<Vec<Entry>, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let (mut href, mut etag, mut dir) = (String::new(), None::<String>, false);
    let (mut p_etag, mut p_dir, mut p_status) = (None::<String>, false, String::new());
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("bad XML at byte {}: {e}", reader.buffer_position()))?;
        let is_start = matches!(event, Event::Start(_));
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let name = local(e.name().as_ref());
                if name == "collection" && stack.iter().any(|s| s == "resourcetype") {
                    p_dir = true;
                }
                match name.as_str() {
                    "response" => {
                        href.clear();
                        etag = None;
                        dir = false;
                    }
                    "propstat" => {
                        p_etag = None;
                        p_dir = false;
                        p_status.clear();
                    }
                    _ => {}
                }
                if is_start {
                    stack.push(name);
                }
            }
            Event::Text(t) => {
                let text = t
                    .unescape()
                    .map_err(|e| format!("bad XML text: {e}"))?
                    .into_owned();
                match stack.last().map(String::as_str) {
                    Some("href") if stack.iter().rev().nth(1).is_some_and(|s| s == "response") => {
                        href.push_str(text.trim())
                    }
                    Some("getetag") => p_etag = Some(text.trim().to_string()),
                    Some("status") => p_status.push_str(&text),
                    _ => {}
                }
            }
            Event::End(e) => {
                let name = local(e.name().as_ref());
                stack.pop();
                match name.as_str() {
                    "propstat" if p_status.contains(" 200") => {
                        etag = p_etag.take().or(etag.take());
                        dir |= p_dir;
                    }
                    "response" if !href.is_empty() => {
                        out.push((href.clone(), dir || href.ends_with('/'), etag.take()));
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

fn local(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    s.rsplit(':').next().unwrap_or(&s).to_ascii_lowercase()
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multistatus_is_read_whatever_the_prefixes() {
        let xml = r#"<?xml version="1.0"?>
<d:multistatus xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns">
 <d:response><d:href>/remote.php/dav/files/alice/Grove/</d:href>
  <d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype><d:getetag>"dir1"</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
 <d:response><d:href>/remote.php/dav/files/alice/Grove/bank%20ops.csv</d:href>
  <d:propstat><d:prop><d:resourcetype/><d:getetag>&quot;e1&quot;</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>
  <d:propstat><d:prop><oc:size/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat></d:response>
</d:multistatus>"#;
        let r = parse_multistatus(xml).unwrap();
        assert_eq!(r.len(), 2);
        assert!(r[0].1);
        assert_eq!(r[1].2.as_deref(), Some("\"e1\""));
        assert!(!r[1].1);
        assert_eq!(
            dav_path(&r[1].0).as_deref(),
            Some("files/alice/Grove/bank ops.csv")
        );
        assert_eq!(
            dav_path("https://h.example/nc/remote.php/dav/calendars/a/").as_deref(),
            Some("calendars/a/")
        );
        assert_eq!(encode_path("files/a b/é.csv"), "files/a%20b/%C3%A9.csv");
        assert_eq!(decode_percent("a%20b%C3%A9%2"), "a bé%2");
        assert_eq!(base64(b"alice:pw"), "YWxpY2U6cHc=");
        assert_eq!(base64(b"ab"), "YWI=");
    }
}
