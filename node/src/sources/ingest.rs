//! The local ingest endpoint: a small HTTP/1.1 server on a loopback address where a
//! personal-cloud app or connector pushes records as JSON.
//!
//! ```text
//! POST /v1/collections/<collection>/records
//! Authorization: Bearer <the token in DIR/ingest.token>
//! Content-Type: application/json          (or application/x-ndjson)
//! Content-Length: <n>
//!
//! [{"_id": "op-1", "_rev": "1-a", "amount": -12.5, ...}, ...]    (or one object, or NDJSON)
//! ```
//!
//! A record with a string `_id` is keyed by it (source `ingest:<collection>/<_id>`): pushing
//! it again replaces it, unless its `_rev` is not newer than the stored one (as for a Cozy
//! document). Records without `_id` are appended. One request is one store transaction: all
//! of it is imported or none. The answer is JSON: `200` with `received`, `added`,
//! `replaced`, `unchanged`, `records_written`; `400` (malformed JSON, with its line and
//! column, or a bad collection name), `401` (missing or wrong token), `404`, `405`, `411` (no
//! `Content-Length`), `413` (over [`MAX_BODY_BYTES`]). Every connection serves one request.
//!
//! The token is 32 random bytes in hex, created with mode 0600 the first time the endpoint
//! starts; delete the file and restart the daemon to change it. The daemon writes the address
//! it is bound to into `DIR/ingest.addr`.

use crate::control::{self, ControlRequest, Incoming};
use crate::sources::import::{self, Format};
use crate::store::SourcedRecords;
use anyhow::{bail, Context};
use rand::RngCore;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

pub const TOKEN_FILE: &str = "ingest.token";
pub const ADDR_FILE: &str = "ingest.addr";
/// Largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Largest request head (request line and headers), in bytes.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Time a client has to send its whole request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads the token, creating it (mode 0600) if there is none.
pub fn ensure_token(dir: &Path) -> anyhow::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(TOKEN_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let t = text.trim().to_string();
        if t.len() < 32 {
            bail!(
                "{} holds a token shorter than 32 characters",
                path.display()
            );
        }
        return Ok(t);
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = grove_protocol::ids::hex(&bytes);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(f, "{token}")?;
    f.sync_all()?;
    Ok(token)
}

/// Binds a local endpoint of the daemon (the ingest endpoint, the console) on a loopback
/// address only, and writes the address bound to `DIR/addr_file` (atomically). `what` names
/// the setting in errors, `port` the example port.
pub async fn bind_local(
    dir: &Path,
    listen: &str,
    what: &str,
    port: &str,
    addr_file: &str,
) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("{what} {listen:?} is not an address such as 127.0.0.1:{port}"))?;
    if !addr.ip().is_loopback() {
        bail!("{what} {listen:?} is not a loopback address: this endpoint is local only");
    }
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({what})"))?;
    let bound = listener.local_addr()?;
    let tmp = dir.join(format!("{addr_file}.tmp"));
    std::fs::write(&tmp, format!("{bound}\n"))?;
    std::fs::rename(&tmp, dir.join(addr_file))?;
    Ok((listener, bound))
}

/// Binds the endpoint (loopback addresses only), writes `ingest.addr` and serves in the
/// background, handing records to the event loop through `to_loop`.
pub async fn start(
    dir: &Path,
    listen: &str,
    to_loop: mpsc::Sender<Incoming>,
) -> anyhow::Result<SocketAddr> {
    let token = ensure_token(dir)?;
    let (listener, bound) = bind_local(dir, listen, "ingest_listen", "7380", ADDR_FILE).await?;
    tokio::spawn(serve(listener, Arc::new(token), to_loop));
    Ok(bound)
}

async fn serve(listener: TcpListener, token: Arc<String>, to_loop: mpsc::Sender<Incoming>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (token, to_loop) = (token.clone(), to_loop.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = connection(stream, &token, &to_loop).await {
                tracing::debug!("ingest connection: {e}");
            }
        });
    }
}

struct Reply {
    status: u16,
    body: Value,
}

fn reply(status: u16, message: impl Into<String>) -> Reply {
    Reply {
        status,
        body: json!({ "error": message.into() }),
    }
}

async fn connection(
    mut stream: TcpStream,
    token: &str,
    to_loop: &mpsc::Sender<Incoming>,
) -> std::io::Result<()> {
    let answer =
        match tokio::time::timeout(REQUEST_TIMEOUT, handle(&mut stream, token, to_loop)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(e),
            Err(_) => reply(408, "the request took too long"),
        };
    let reason = match answer.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        _ => "Internal Server Error",
    };
    let body = format!("{}\n", answer.body);
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        body.len()
    );
    if answer.status == 401 {
        head.push_str("WWW-Authenticate: Bearer realm=\"grove\"\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await?;
    let _ = stream.shutdown().await;
    Ok(())
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle(
    stream: &mut TcpStream,
    token: &str,
    to_loop: &mpsc::Sender<Incoming>,
) -> std::io::Result<Reply> {
    // The head, up to the blank line.
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Ok(reply(400, "request head too large"));
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed in the request head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut length = None;
    let (mut auth, mut ndjson, mut expect_continue, mut chunked) = (None, false, false, false);
    for l in lines {
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "authorization" => auth = Some(value.to_string()),
            "content-type" => ndjson = value.to_ascii_lowercase().contains("ndjson"),
            "expect" => expect_continue = value.eq_ignore_ascii_case("100-continue"),
            "transfer-encoding" => chunked = true,
            _ => {}
        }
    }
    let given = auth
        .as_deref()
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
        })
        .unwrap_or("");
    if !same(given.trim().as_bytes(), token.as_bytes()) {
        return Ok(reply(
            401,
            "missing or wrong token: send Authorization: Bearer <the token in DIR/ingest.token>",
        ));
    }
    let path = target.split('?').next().unwrap_or("");
    let collection = match path
        .strip_prefix("/v1/collections/")
        .and_then(|p| p.strip_suffix("/records"))
    {
        Some(c) if !c.contains('/') => c.to_string(),
        _ => {
            return Ok(reply(
                404,
                format!("no such endpoint {path:?}: POST /v1/collections/<collection>/records"),
            ))
        }
    };
    if method != "POST" {
        return Ok(reply(
            405,
            format!("{method} is not allowed here: use POST"),
        ));
    }
    if let Err(e) = crate::store::validate_collection_name(&collection) {
        return Ok(reply(400, e.to_string()));
    }
    let Some(length) = length.filter(|_| !chunked) else {
        return Ok(reply(411, "send the body with a Content-Length"));
    };
    if length > MAX_BODY_BYTES {
        return Ok(reply(
            413,
            format!("the body is larger than {MAX_BODY_BYTES} bytes: send it in parts"),
        ));
    }
    if expect_continue {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let mut body = buf[head_end..].to_vec();
    body.truncate(length);
    let mut rest = vec![0u8; length - body.len()];
    stream.read_exact(&mut rest).await?;
    body.extend_from_slice(&rest);
    let Ok(text) = String::from_utf8(body) else {
        return Ok(reply(400, "the body is not UTF-8"));
    };
    let records = if ndjson {
        match import::parse(&text, Format::Ndjson) {
            Ok(r) => r,
            Err(e) => return Ok(reply(400, e.to_string())),
        }
    } else {
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(m)) => vec![m],
            Ok(Value::Array(_)) => match import::parse(&text, Format::Json) {
                Ok(r) => r,
                Err(e) => return Ok(reply(400, e.to_string())),
            },
            Ok(_) => return Ok(reply(400, "send a JSON object or an array of objects")),
            Err(e) => return Ok(reply(400, format!("malformed JSON: {e}"))),
        }
    };
    let received = records.len();
    let mut items = Vec::new();
    let mut loose = Vec::new();
    for r in records {
        match r.get("_id") {
            Some(Value::String(id)) if !id.is_empty() => {
                let revision = r.get("_rev").and_then(Value::as_str).map(str::to_string);
                items.push(SourcedRecords {
                    source: format!("ingest:{collection}/{id}"),
                    revision,
                    collection: collection.clone(),
                    records: vec![r],
                });
            }
            _ => loose.push(r),
        }
    }
    if !loose.is_empty() {
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        items.push(SourcedRecords {
            source: format!(
                "ingest:{collection}:batch:{}",
                grove_protocol::ids::hex(&id)
            ),
            revision: None,
            collection: collection.clone(),
            records: loose,
        });
    }
    match control::call_local(
        to_loop,
        ControlRequest::ImportSources {
            items,
            sync: Vec::new(),
        },
    )
    .await
    {
        Ok(mut summary) => {
            summary["received"] = json!(received);
            summary["collection"] = json!(collection);
            Ok(Reply {
                status: 200,
                body: summary,
            })
        }
        Err(e) => Ok(reply(
            500,
            format!("the node could not store the records: {e}"),
        )),
    }
}
