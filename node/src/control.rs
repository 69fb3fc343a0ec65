//! Local control: newline-delimited JSON over a Unix socket in the data dir (mode 0600, in a
//! directory of mode 0700). The client writes one request line; the daemon answers with zero
//! or more `progress` lines and then exactly one `ok` or `error` line.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, Semaphore};

/// Name of the socket file inside the data dir.
pub const SOCKET_FILE: &str = "control.sock";
/// Longest request line (imports carry their records), in bytes.
pub const MAX_REQUEST_LINE_BYTES: u64 = 256 * 1024 * 1024;
/// Longest reply line, in bytes.
pub const MAX_REPLY_LINE_BYTES: u64 = 256 * 1024 * 1024;
/// Largest number of control connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Capacity of the channel from connections to the event loop.
pub const REQUEST_QUEUE: usize = 64;
/// Capacity of one connection's reply channel.
pub const REPLY_QUEUE: usize = 16;

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

/// The parameters of a `compute`: a query and how to run it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComputeParams {
    /// The query text (see ARCHITECTURE.md, "Declarative queries").
    pub query: String,
    pub g: u8,
    pub t: u8,
    pub k_min: u64,
    /// Leaf groups; `None` picks the most the directory can fill.
    pub leaf_groups: Option<u32>,
    pub fan_in: u32,
    /// Contributors the request allows; `None` takes the most the query's overflow budget
    /// allows.
    #[serde(default)]
    pub max_contributors: Option<u64>,
    /// How long leaf members collect shares after the request is created, in milliseconds.
    pub share_window_ms: u64,
    /// Lifetime of the computation, in seconds.
    pub lifetime_secs: u64,
}

impl Default for ComputeParams {
    fn default() -> ComputeParams {
        ComputeParams {
            query: String::new(),
            g: 5,
            t: 3,
            k_min: crate::owner::defaults::DEFAULT_MIN_K,
            leaf_groups: None,
            fan_in: 2,
            max_contributors: None,
            share_window_ms: 2000,
            lifetime_secs: 60,
        }
    }
}

/// The limits of a trust beyond its collections and `k_min` floor; `None` takes the node's
/// default (see `consent`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrustLimits {
    /// Fields a query may read; empty means every field.
    pub fields: Vec<String>,
    /// Computations per 24 hours.
    pub max_per_day: Option<u32>,
    /// Smallest group threshold `t` accepted.
    pub min_t: Option<u8>,
    /// The differencing rule's window, in seconds.
    pub differencing_window_secs: Option<u64>,
    /// Most `GROUP BY` keys (or buckets) a query may declare.
    pub max_group_keys: Option<u32>,
    /// The same query may run again inside the differencing window.
    pub allow_repeats: bool,
    /// Answer at once (`auto`, the default) or ask the owner first (`ask`).
    pub mode: Option<crate::store::TrustMode>,
    /// The privacy budget per 30 days, in epsilon (`owner/budget.rs`); `None`: no budget.
    pub epsilon_per_month: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlRequest {
    Import {
        collection: String,
        records: Vec<serde_json::Map<String, serde_json::Value>>,
    },
    /// Keyed records (Cozy documents, synced files, ingested records) and the sync state
    /// committed with them, in one transaction (`Store::upsert_sources`).
    ImportSources {
        items: Vec<crate::store::SourcedRecords>,
        #[serde(default)]
        sync: Vec<crate::store::SyncUpdate>,
    },
    /// The sync state of one account's files, by path.
    SyncState {
        account: String,
    },
    ListRecords {
        collection: Option<String>,
    },
    TrustAdd {
        key: String,
        collections: Vec<String>,
        label: String,
        /// Refuse requests whose `k_min` is below this (default
        /// `defaults::DEFAULT_MIN_K`).
        #[serde(default = "default_min_k")]
        min_contributors: u64,
        #[serde(default)]
        limits: TrustLimits,
    },
    TrustList,
    TrustRemove {
        key: String,
    },
    Status,
    Audit,
    Compute(ComputeParams),
    /// What the commissioner knows of the progress of a computation it launched.
    Progress {
        computation: String,
    },
    /// Requests waiting for the owner's answer (trust mode "ask").
    RequestsList,
    /// The owner's answer to a waiting request: contribute (if every rule still holds) or
    /// decline.
    RequestAnswer {
        computation: String,
        approve: bool,
    },
    /// A one-time login link to the owner's console.
    ConsoleLink,
    Shutdown,
}

fn default_min_k() -> u64 {
    crate::owner::defaults::DEFAULT_MIN_K
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlReply {
    Progress {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<serde_json::Value>,
    },
    Ok {
        data: serde_json::Value,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Error)]
pub enum ControlError {
    #[error("the daemon is not reachable at {path} (is `grove daemon` running?)")]
    Unreachable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the daemon answered with malformed JSON: {0}")]
    Protocol(String),
    #[error("{0}")]
    Daemon(String),
    #[error("the daemon closed the connection without an answer")]
    Closed,
}

/// Sends one request and waits for its final answer, passing progress lines to `progress`.
pub async fn call(
    data_dir: &Path,
    request: &ControlRequest,
    mut progress: impl FnMut(&str, Option<&serde_json::Value>),
) -> Result<serde_json::Value, ControlError> {
    let path = socket_path(data_dir);
    let stream = UnixStream::connect(&path)
        .await
        .map_err(|source| ControlError::Unreachable {
            path: path.clone(),
            source,
        })?;
    let (read, mut write) = stream.into_split();
    let mut line =
        serde_json::to_vec(request).map_err(|e| ControlError::Protocol(e.to_string()))?;
    line.push(b'\n');
    write.write_all(&line).await?;
    write.flush().await?;
    let mut reader = BufReader::new(read.take(MAX_REPLY_LINE_BYTES));
    loop {
        let mut buf = String::new();
        if reader.read_line(&mut buf).await? == 0 {
            return Err(ControlError::Closed);
        }
        let reply: ControlReply =
            serde_json::from_str(&buf).map_err(|e| ControlError::Protocol(e.to_string()))?;
        match reply {
            ControlReply::Progress { message, data } => progress(&message, data.as_ref()),
            ControlReply::Ok { data } => return Ok(data),
            ControlReply::Error { message } => return Err(ControlError::Daemon(message)),
        }
    }
}

/// Sends one request to the event loop from inside the daemon (the ingest endpoint, the
/// periodic sync) and waits for its final answer.
pub async fn call_local(
    to_loop: &mpsc::Sender<Incoming>,
    request: ControlRequest,
) -> Result<serde_json::Value, ControlError> {
    let (tx, mut rx) = mpsc::channel(REPLY_QUEUE);
    to_loop
        .send(Incoming { request, reply: tx })
        .await
        .map_err(|_| ControlError::Closed)?;
    while let Some(reply) = rx.recv().await {
        match reply {
            ControlReply::Progress { .. } => {}
            ControlReply::Ok { data } => return Ok(data),
            ControlReply::Error { message } => return Err(ControlError::Daemon(message)),
        }
    }
    Err(ControlError::Closed)
}

/// One request from a connection, with the channel its replies go back on.
pub struct Incoming {
    pub request: ControlRequest,
    pub reply: mpsc::Sender<ControlReply>,
}

/// Binds the socket (removing a stale one) and restricts it to the owner.
pub fn bind(data_dir: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data_dir);
    if path.exists() {
        std::fs::remove_file(&path)?;
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Accepts connections and forwards their requests to the event loop.
pub async fn serve(listener: UnixListener, to_loop: mpsc::Sender<Incoming>) {
    let slots = std::sync::Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let to_loop = to_loop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = connection(stream, to_loop).await {
                tracing::debug!("control connection: {e}");
            }
        });
    }
}

async fn connection(stream: UnixStream, to_loop: mpsc::Sender<Incoming>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(MAX_REQUEST_LINE_BYTES));
    let mut buf = String::new();
    if reader.read_line(&mut buf).await? == 0 {
        return Ok(());
    }
    let (tx, mut rx) = mpsc::channel(REPLY_QUEUE);
    match serde_json::from_str::<ControlRequest>(&buf) {
        Ok(request) => {
            if to_loop.send(Incoming { request, reply: tx }).await.is_err() {
                return Ok(());
            }
        }
        Err(e) => {
            let _ = tx
                .send(ControlReply::Error {
                    message: format!("malformed control request: {e}"),
                })
                .await;
        }
    }
    while let Some(reply) = rx.recv().await {
        let done = !matches!(reply, ControlReply::Progress { .. });
        let mut line = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
        line.push(b'\n');
        write.write_all(&line).await?;
        if done {
            break;
        }
    }
    write.flush().await?;
    Ok(())
}
/// A released result as text: the table, then who it covers.
pub fn result_text(d: &serde_json::Value) -> String {
    format!(
        "{}\ncontributors included: {} of {} nodes in the directory (completeness {:.1}%)\ncomputation {} took {} ms",
        str_of(&d["text"]),
        d["contributors"],
        d["directory_peers"],
        d["completeness"].as_f64().unwrap_or(0.0) * 100.0,
        str_of(&d["computation"]),
        d["elapsed_ms"]
    )
}

fn str_of(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
