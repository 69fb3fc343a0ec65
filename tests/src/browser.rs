//! A real browser for the console's tests: Debian's headless Chromium driven over WebDriver
//! (its `chromedriver`) with `fantoccini`, plus a raw HTTP client for what a browser will not
//! send (a forged `Host` or `Origin`), and the `grove` CLI run as a process.
//!
//! The browser is required: without `chromium` and `chromedriver` a test fails, unless
//! [`SKIP_ENV`] is set to `1`, which lets it skip with a message (for a machine that cannot
//! install them; `.ci/run` installs them, so CI always runs the browser tests).

use anyhow::{bail, Context};
use fantoccini::{Client, ClientBuilder, Locator};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::json;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Set to `1` to let the browser tests skip when Chromium or its driver is missing.
pub const SKIP_ENV: &str = "GROVE_SKIP_BROWSER_TESTS";
/// Chromium's flags: headless, no sandbox (CI runs as root), and none of its background
/// connections (this machine's network is closed; they would be refused, many at a time).
pub const CHROMIUM_ARGS: [&str; 10] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
];

fn binary(env: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    path.exists().then_some(path)
}

/// Where the tests write their screenshots: `target/console-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("console-screenshots")
}

/// A headless Chromium with its own empty profile, and the chromedriver that drives it.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a browser session; `None` if they are missing and
    /// [`SKIP_ENV`] allows skipping (the caller then returns).
    pub async fn start() -> anyhow::Result<Option<Browser>> {
        let chromium = binary("GROVE_CHROMIUM", "/usr/bin/chromium");
        let driver = binary("GROVE_CHROMEDRIVER", "/usr/bin/chromedriver");
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            if std::env::var(SKIP_ENV).as_deref() == Ok("1") {
                eprintln!(
                    "SKIPPED: the console's browser tests need Debian's chromium and \
                     chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver); {SKIP_ENV}=1 \
                     allows skipping them"
                );
                return Ok(None);
            }
            bail!(
                "the console's browser tests need Debian's chromium and chromium-driver \
                 (apt-get install -y chromium chromium-driver, as .ci/run does); set \
                 {SKIP_ENV}=1 to skip them on a machine without them"
            );
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let profile = tempfile::Builder::new()
            .prefix("grove-chromium-")
            .tempdir()?;
        let mut child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", driver.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if started.elapsed() > Duration::from_secs(20) {
                kill_group(&mut child);
                bail!("chromedriver did not listen on port {port} within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!("an object literal")
        };
        let client =
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect(&url)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    kill_group(&mut child);
                    bail!("cannot open a browser session: {e}");
                }
            };
        Ok(Some(Browser {
            client,
            driver: child,
            _profile: profile,
        }))
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        Ok(self.client.goto(url).await?)
    }

    /// The text of the first element matching a CSS selector.
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => Ok(e.text().await?),
            Err(e) => {
                let url = self.client.current_url().await?;
                let page = match self.client.find(Locator::Css("body")).await {
                    Ok(b) => b.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                bail!("no element {css} on {url} ({e}); the page reads:\n{page}")
            }
        }
    }

    /// Waits for an element (the page may refresh itself meanwhile).
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if self.client.find(Locator::Css(css)).await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!(
                    "no element {css} within {timeout:?}; the page is {}",
                    self.client.current_url().await?
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Types `value` into the form field named `name` (after clearing it), as a person would.
    pub async fn type_into(&self, form: &str, name: &str, value: &str) -> anyhow::Result<()> {
        let field = self
            .client
            .find(Locator::Css(&format!("{form} [name='{name}']")))
            .await
            .with_context(|| format!("no field {name} in {form}"))?;
        field.clear().await?;
        field.send_keys(value).await?;
        Ok(())
    }

    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("no element {css}"))?
            .click()
            .await?;
        Ok(())
    }

    /// Clicks a button or link that loads a new page, and waits until the new page replaced
    /// the old one (a post to the same address keeps the URL, so the old document's going
    /// stale is what tells).
    pub async fn submit(&self, css: &str) -> anyhow::Result<()> {
        let old = self.client.find(Locator::Css("html")).await?;
        self.click(css).await?;
        let started = Instant::now();
        while old.tag_name().await.is_ok() {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("clicking {css} loaded no new page within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The new document exists; wait until it has loaded.
        let started = Instant::now();
        loop {
            let state = self
                .client
                .execute("return document.readyState", vec![])
                .await
                .ok();
            if state.as_ref().and_then(|s| s.as_str()) == Some("complete") {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the page after {css} did not finish loading");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Writes a screenshot of the whole page to `target/console-screenshots/NAME.png`.
    /// The window grows to the page's height for it (up to 2,400 pixels), then shrinks back.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight", vec![])
            .await?
            .as_u64()
            .unwrap_or(1000)
            .clamp(600, 2400);
        // The window's frame takes some of its height: add it.
        let inner = self
            .client
            .execute("return window.outerHeight - window.innerHeight", vec![])
            .await?
            .as_u64()
            .unwrap_or(0);
        self.client
            .set_window_size(1280, (height + inner) as u32)
            .await?;
        let png = self.client.screenshot().await;
        self.client.set_window_size(1280, 1000).await?;
        let png = png?;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// Ends the browser session and its driver.
    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = client.close().await;
        kill_group(&mut self.driver);
    }
}

fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium runs in chromedriver's process group: one signal ends both.
        kill_group(&mut self.driver);
    }
}

/// One HTTP/1.1 request on a fresh connection; returns the status, the headers (lowercase
/// names) and the body. For requests a browser would not make.
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<(u16, Vec<(String, String)>, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, body.to_string()))
}

/// The console's address of a node (`DIR/console.addr`).
pub fn console_addr(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join(grove_node::console::ADDR_FILE);
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .trim()
        .to_string())
}
