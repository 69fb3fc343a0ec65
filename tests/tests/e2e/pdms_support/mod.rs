//! Support of the personal-cloud tests (`cozy_import`, `webdav_sync`, `pdms_e2e`): the
//! fixtures, a real WebDAV server (wsgidav) on 127.0.0.1, and the `grove` CLI run as a
//! separate process.
//!
//! The server is `tests/fixtures/webdav/serve.py` run by the Python of `GROVE_WEBDAV_PYTHON`,
//! else of the virtual environment `target/webdav-venv` (which `.ci/run` makes, and which the
//! tests make themselves on a fresh checkout when python3 and the Python package index are reachable), else
//! `python3`. If wsgidav cannot be imported the test fails and says how to install it.

#![allow(dead_code)]

use anyhow::{bail, Context};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
pub const USER: &str = "alice";
pub const PASSWORD: &str = "grove-test-app-password";

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

/// The pinned server packages, as `.ci/run` installs them.
const WEBDAV_PACKAGES: [&str; 2] = ["wsgidav==4.4.0", "cheroot==11.1.2"];

fn has_wsgidav(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import wsgidav, cheroot"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("GROVE_WEBDAV_PYTHON") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/webdav-venv");
    let venv = root.join("bin/python");
    // One installer per test process; test binaries run one after the other.
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if has_wsgidav(&venv) {
        return venv;
    }
    // A fresh checkout: make the virtual environment `.ci/run` would make (needs python3 with
    // its venv module and access to the Python package index). If that fails, `DavServer::start` says how to fix it.
    eprintln!("installing the WebDAV test server into {}", root.display());
    let made = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&root)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(root.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(WEBDAV_PACKAGES)
            .status()
            .is_ok_and(|s| s.success());
    if made && has_wsgidav(&venv) {
        return venv;
    }
    PathBuf::from("python3")
}

/// A wsgidav server serving a folder; killed (and its folder removed) on drop.
pub struct DavServer {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl DavServer {
    /// Serves `root` for user `alice`. With `hang_after_gets`, the GET after that many
    /// successful ones waits until [`DavServer::release`].
    pub fn start(root: &Path, hang_after_gets: Option<u32>) -> anyhow::Result<DavServer> {
        let python = python();
        let check = Command::new(&python)
            .args(["-c", "import wsgidav, cheroot"])
            .output();
        if !check.as_ref().is_ok_and(|o| o.status.success()) {
            bail!(
                "the WebDAV test server needs wsgidav and cheroot for {} ({}). Install them with \
                 `python3 -m venv target/webdav-venv && target/webdav-venv/bin/pip install wsgidav cheroot` \
                 (what .ci/run does), or point GROVE_WEBDAV_PYTHON at a Python that has them",
                python.display(),
                match &check {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                }
            );
        }
        let dir = tempfile::Builder::new().prefix("grove-dav-").tempdir()?;
        let port_file = dir.path().join("port");
        let log = dir.path().join("requests.log");
        let script = fixtures().join("webdav/serve.py");
        let mut cmd = Command::new(&python);
        cmd.arg(&script)
            .arg(root)
            .args([USER, PASSWORD])
            .arg(&port_file)
            .arg(&log);
        if let Some(n) = hang_after_gets {
            cmd.arg(n.to_string());
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("server.err"))?)
            .spawn()
            .with_context(|| format!("cannot run {}", python.display()))?;
        let mut server = DavServer {
            child,
            port: 0,
            log,
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                server.port = text.trim().parse()?;
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                let err = std::fs::read_to_string(server._dir.path().join("server.err"))
                    .unwrap_or_default();
                bail!("the WebDAV server exited ({status}): {err}");
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("the WebDAV server did not start within 120 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Logged requests, as `METHOD STATUS PATH` (and `HANG PATH`).
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The paths of the successful GETs so far.
    pub fn gets(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter_map(|l| l.strip_prefix("GET 200 ").map(str::to_string))
            .collect()
    }

    pub fn release(&self) -> anyhow::Result<()> {
        let mut p = self.log.clone().into_os_string();
        p.push(".release");
        std::fs::write(PathBuf::from(p), b"")?;
        Ok(())
    }
}

impl Drop for DavServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `grove` CLI on a node's data dir.
pub fn grove(dir: &Path, args: &[&str]) -> anyhow::Result<Output> {
    Command::new(EXE)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run grove")
}

/// Runs the CLI with `--json`, requires success and returns the JSON it printed.
pub fn grove_json(dir: &Path, args: &[&str]) -> anyhow::Result<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = grove(dir, &all)?;
    if !out.status.success() {
        bail!(
            "grove {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout)?;
    serde_json::from_str(text.trim()).with_context(|| format!("grove printed {text:?}"))
}

/// `grove sync` arguments for a server, with the password in a file.
pub fn sync_args(server_url: &str, password_file: &Path) -> Vec<String> {
    vec![
        "sync".into(),
        "--url".into(),
        server_url.into(),
        "--user".into(),
        USER.into(),
        "--password-file".into(),
        password_file.display().to_string(),
    ]
}

pub fn write_password(dir: &Path, password: &str) -> anyhow::Result<PathBuf> {
    let p = dir.join("nextcloud-app-password");
    std::fs::write(&p, format!("{password}\n"))?;
    Ok(p)
}

/// Record counts by collection, from `grove records list`.
pub fn collections(dir: &Path) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    let v = grove_json(dir, &["records", "list"])?;
    let mut out = std::collections::BTreeMap::new();
    for c in v["collections"].as_array().context("no collections")? {
        out.insert(
            c["name"].as_str().unwrap_or_default().to_string(),
            c["records"].as_u64().unwrap_or(0),
        );
    }
    Ok(out)
}

/// The records of one collection.
pub fn records(dir: &Path, collection: &str) -> anyhow::Result<Vec<Value>> {
    let v = grove_json(dir, &["records", "list", "--collection", collection])?;
    Ok(v["records"].as_array().cloned().unwrap_or_default())
}

/// An amount in cents (fixture amounts have at most two decimals).
pub fn cents(v: &Value) -> i64 {
    let f = match v {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => s.trim().parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    };
    assert!(f.is_finite(), "not an amount: {v}");
    (f * 100.0).round() as i64
}

/// The plaintext oracle of the Nextcloud fixture's `bank.operations` files, read here
/// independently of the node's parsers: the amounts of every CSV and JSON file of the folder,
/// a CSV file with a row of the wrong width counting for nothing (it is skipped whole).
pub fn nextcloud_bank_amounts(root: &Path) -> anyhow::Result<Vec<i64>> {
    let dir = root.join("remote.php/dav/files/alice/Grove/bank.operations");
    let mut names: Vec<_> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    names.sort();
    let mut out = Vec::new();
    for p in names {
        let text = std::fs::read_to_string(&p)?;
        match p.extension().and_then(|e| e.to_str()) {
            Some("csv") => {
                let mut lines = text.lines().filter(|l| !l.trim().is_empty());
                let header: Vec<&str> = lines.next().context("empty csv")?.split(',').collect();
                let col = header
                    .iter()
                    .position(|h| *h == "amount")
                    .context("amount")?;
                let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
                if rows.iter().all(|r| r.len() == header.len()) {
                    for r in rows {
                        out.push(cents(&Value::String(r[col].to_string())));
                    }
                }
            }
            Some("json") => {
                let v: Value = serde_json::from_str(&text)?;
                for r in v.as_array().context("array")? {
                    out.push(cents(&r["amount"]));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The plaintext oracle of the Cozy fixture's bank operations: per `_id`, the document of
/// the highest revision generation.
pub fn cozy_bank_amounts(export: &Path) -> anyhow::Result<Vec<i64>> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for e in std::fs::read_dir(p)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                walk(&e.path(), out)?;
            } else {
                out.push(e.path());
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(&export.join("metadata/io.cozy.bank.operations"), &mut files)?;
    let mut best: std::collections::BTreeMap<String, (u64, i64)> = Default::default();
    for f in files {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&f)?)?;
        let id = doc["_id"].as_str().context("_id")?.to_string();
        let generation: u64 = doc["_rev"]
            .as_str()
            .and_then(|r| r.split('-').next())
            .context("_rev")?
            .parse()?;
        let amount = cents(&doc["amount"]);
        let e = best.entry(id).or_insert((generation, amount));
        if generation > e.0 {
            *e = (generation, amount);
        }
    }
    Ok(best.values().map(|(_, a)| *a).collect())
}

/// Zips a folder (a Cozy export) under `cozy-export/`, deflated.
pub fn zip_folder(from: &Path, to: &Path) -> anyhow::Result<()> {
    fn add(zip: &mut zip::ZipWriter<std::fs::File>, root: &Path, dir: &Path) -> anyhow::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let name = p.strip_prefix(root)?.to_string_lossy().to_string();
            if e.file_type()?.is_dir() {
                add(zip, root, &p)?;
            } else {
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated);
                zip.start_file(format!("cozy-export/{name}"), options)?;
                std::io::Write::write_all(zip, &std::fs::read(&p)?)?;
            }
        }
        Ok(())
    }
    let mut zip = zip::ZipWriter::new(std::fs::File::create(to)?);
    add(&mut zip, from, from)?;
    zip.finish()?;
    Ok(())
}
