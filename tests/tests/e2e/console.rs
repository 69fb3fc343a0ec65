//! The owner's console in a real browser (headless Chromium over WebDriver) against real
//! daemons: the one-time login link, records and uploads, trust added and edited in the page
//! and listed by the CLI, forged changes (no session, a bad CSRF token, another origin or
//! host) that change nothing, the trust mode "ask" (one request approved, one declined, one
//! left to expire, the queue kept across a restart), the audit's filters, and a query run from
//! the commissioner's page whose table is the one the CLI prints. Each page's screenshot goes
//! to `target/console-screenshots/`.
//!
//! Each test starts its own daemons and browser and, like every end-to-end test, holds
//! `grove_e2e::serial` while it runs.

use crate::pdms_support::{fixtures, grove, grove_json, zip_folder, EXE};
use anyhow::Context;
use fantoccini::Locator;
use grove_e2e::browser::{console_addr, http, Browser};
use grove_e2e::{commissioner_key, ctl, query_params, start_all};
use grove_node::control::ControlRequest;
use grove_node::procs::Cluster;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// `n` daemons, those in `consoles` serving their console on a free loopback port.
async fn network(n: usize, consoles: &[usize]) -> anyhow::Result<Cluster> {
    let mut cluster = Cluster::new(Path::new(EXE))?;
    for i in 0..n {
        cluster.add_node()?;
        if consoles.contains(&i) {
            cluster.nodes[i].args = vec!["--console".into(), "127.0.0.1:0".into()];
        }
    }
    start_all(&mut cluster).await?;
    Ok(cluster)
}

/// A fresh one-time login link from `grove console`.
fn login_link(dir: &Path) -> anyhow::Result<String> {
    let v = grove_json(dir, &["console"])?;
    Ok(v["link"].as_str().context("no link")?.to_string())
}

/// What the CLI prints (standard output), requiring success.
fn cli(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = grove(dir, args)?;
    anyhow::ensure!(
        out.status.success(),
        "grove {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// The error the CLI prints for a failing command (standard error, without `error: `).
fn cli_error(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = grove(dir, args)?;
    anyhow::ensure!(!out.status.success(), "grove {args:?} succeeded");
    let err = String::from_utf8(out.stderr)?;
    Ok(err.trim().trim_start_matches("error: ").to_string())
}

/// The session cookie the browser holds for a console, as a `Cookie` header value.
async fn session_cookie(browser: &Browser, addr: &str) -> anyhow::Result<String> {
    let port = addr.rsplit(':').next().unwrap_or_default();
    let name = format!("grove_console_{port}");
    let c = browser.client.get_named_cookie(&name).await?;
    Ok(format!("{name}={}", c.value()))
}

/// Text with every run of white space made one space (a table's cells read as words).
fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn object(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("an object literal"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_signs_in_once_and_forged_changes_change_nothing() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let Some(browser) = Browser::start().await? else {
        return Ok(());
    };
    let cluster = network(3, &[0]).await?;
    let dir = cluster.dir(0).to_path_buf();
    let addr = console_addr(&dir)?;
    let base = format!("http://{addr}");

    // Without a session, no page.
    let (status, _, body) = http(&addr, "GET", "/trust", &[], "").await?;
    assert_eq!(status, 401, "{body}");

    // The one-time link signs in, once.
    let link = login_link(&dir)?;
    browser.goto(&link).await?;
    let status = ctl(&cluster, 0, ControlRequest::Status).await?;
    let facts = browser.text("#node-facts").await?;
    assert!(
        facts.contains(status["peer_id"].as_str().unwrap_or("?")),
        "{facts}"
    );
    browser.screenshot("node").await?;
    browser.goto(&link).await?;
    let message = browser.text("#message").await?;
    assert!(message.contains("not valid"), "{message}");
    let path = link.trim_start_matches(&base);
    let (status, _, _) = http(&addr, "GET", path, &[], "").await?;
    assert_eq!(status, 403, "a used link signed in again");
    // The session itself still works.
    browser.goto(&format!("{base}/records")).await?;
    browser
        .wait_for("#import-file", Duration::from_secs(5))
        .await?;

    // Records: a CSV file and a Cozy export, uploaded.
    let tmp = tempfile::tempdir()?;
    let csv = tmp.path().join("steps.csv");
    std::fs::write(
        &csv,
        "date,steps\n2026-03-01,8123\n2026-03-02,10412\n2026-03-03,6032\n",
    )?;
    browser
        .type_into("#import-file", "collection", "steps")
        .await?;
    browser
        .client
        .find(Locator::Css("#import-file [name='file']"))
        .await?
        .send_keys(&csv.display().to_string())
        .await?;
    browser.submit("#import-file button").await?;
    let message = browser.text("#message").await?;
    assert!(
        message.contains("imported 3 records from steps.csv into collection steps"),
        "{message}"
    );
    let zip = tmp.path().join("cozy-export.zip");
    zip_folder(&fixtures().join("cozy-export"), &zip)?;
    browser
        .client
        .find(Locator::Css("#import-cozy [name='file']"))
        .await?
        .send_keys(&zip.display().to_string())
        .await?;
    browser.submit("#import-cozy button").await?;
    let message = browser.text("#message").await?;
    assert!(message.contains("Cozy export cozy-export.zip"), "{message}");
    let table = squash(&browser.text("#collections").await?);
    let listed = grove_json(&dir, &["records", "list"])?;
    for c in listed["collections"].as_array().context("collections")? {
        let line = format!(
            "{} {}",
            c["name"].as_str().unwrap_or_default(),
            c["records"]
        );
        assert!(table.contains(&line), "{line} not in {table}");
    }
    assert!(table.contains("steps 3 file 3"), "{table}");
    assert!(table.contains("cozy"), "{table}");
    browser.screenshot("records").await?;

    // Trust, with every limit, in mode ask: the CLI lists exactly that.
    let key1 = commissioner_key(&cluster, 1).await?;
    let key2 = commissioner_key(&cluster, 2).await?;
    browser.goto(&format!("{base}/trust")).await?;
    let form = "#trust-form";
    browser.type_into(form, "key", &key1).await?;
    browser
        .type_into(form, "label", "City health study")
        .await?;
    browser.type_into(form, "collections", "activity").await?;
    browser
        .type_into(form, "fields", "date, age_band, steps")
        .await?;
    browser.type_into(form, "min_k", "5").await?;
    browser.type_into(form, "min_t", "2").await?;
    browser.type_into(form, "max_per_day", "7").await?;
    browser.type_into(form, "window", "3600").await?;
    browser.type_into(form, "max_group_keys", "12").await?;
    browser.click("#trust-form [name='allow_repeats']").await?;
    browser
        .click("#trust-form [name='mode'][value='ask']")
        .await?;
    browser.submit("#trust-save").await?;
    browser.wait_for("#trusted", Duration::from_secs(5)).await?;
    let listed = cli(&dir, &["trust", "list"])?;
    let expected = format!(
        "{key1}\tCity health study\tcollections: activity; fields: date,age_band,steps; \
         k_min >= 5; t >= 2; GROUP BY keys <= 12; computations per day <= 7; \
         differencing window: 3600 s; repeats: allowed; mode: ask"
    );
    assert_eq!(listed.trim(), expected);

    // Edited in the page: the CLI sees the new limit and the rest unchanged.
    browser.goto(&format!("{base}/trust?edit={key1}")).await?;
    browser.type_into(form, "max_per_day", "9").await?;
    browser.submit("#trust-save").await?;
    browser.wait_for("#trusted", Duration::from_secs(5)).await?;
    let listed = cli(&dir, &["trust", "list"])?;
    assert_eq!(
        listed.trim(),
        expected.replace("per day <= 7", "per day <= 9")
    );

    // The same validation as the CLI: the very same error, and nothing trusted.
    browser.goto(&format!("{base}/trust")).await?;
    browser.type_into(form, "key", &key2).await?;
    browser.type_into(form, "collections", "bad name").await?;
    browser.submit("#trust-save").await?;
    let page_error = browser.text("#error").await?;
    let cli_said = cli_error(&dir, &["trust", "add", &key2, "--collections", "bad name"])?;
    assert_eq!(page_error, cli_said);
    assert!(!cli(&dir, &["trust", "list"])?.contains(&key2));

    // A name that is markup is shown as text; no script runs (none is allowed anyway).
    let hostile =
        "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>";
    browser.goto(&format!("{base}/trust")).await?;
    browser.type_into(form, "key", &key2).await?;
    browser.type_into(form, "label", hostile).await?;
    browser.submit("#trust-save").await?;
    browser.wait_for("#trusted", Duration::from_secs(5)).await?;
    assert_eq!(browser.client.title().await?, "Trust · Grove console");
    let labels = squash(&browser.text("#trusted").await?);
    assert!(labels.contains(hostile), "{labels}");
    // Removed from the page.
    browser
        .submit(&format!("tr[data-key='{key2}'] button.danger"))
        .await?;
    browser.wait_for("#trusted", Duration::from_secs(5)).await?;
    assert!(!cli(&dir, &["trust", "list"])?.contains(&key2));
    browser.screenshot("trust").await?;

    // Forged changes change nothing. A bad CSRF token:
    let before = cli(&dir, &["trust", "list"])?;
    browser.goto(&format!("{base}/trust")).await?;
    browser.type_into(form, "key", &key2).await?;
    browser.type_into(form, "label", "forged").await?;
    browser
        .client
        .execute(
            "document.querySelector('#trust-form [name=csrf]').value = 'forged'",
            vec![],
        )
        .await?;
    browser.submit("#trust-save").await?;
    let message = browser.text("#message").await?;
    assert!(message.contains("stale or forged"), "{message}");
    assert_eq!(cli(&dir, &["trust", "list"])?, before);
    // Raw requests: no token, the wrong origin, the wrong host.
    let cookie = session_cookie(&browser, &addr).await?;
    browser.goto(&format!("{base}/trust")).await?;
    let csrf = browser
        .client
        .find(Locator::Css("#trust-form [name='csrf']"))
        .await?
        .prop("value")
        .await?
        .unwrap_or_default();
    let form_body = |csrf: &str| {
        format!(
            "csrf={csrf}&key={key2}&label=forged&min_k=1&min_t=1&max_per_day=5&window=60&max_group_keys=64&mode=auto"
        )
    };
    let urlencoded = ("Content-Type", "application/x-www-form-urlencoded");
    let (status, _, _) = http(
        &addr,
        "POST",
        "/trust",
        &[("Cookie", &cookie), urlencoded],
        &form_body(""),
    )
    .await?;
    assert_eq!(status, 403, "a change without the CSRF token");
    let (status, _, _) = http(
        &addr,
        "POST",
        "/trust",
        &[
            ("Cookie", &cookie),
            urlencoded,
            ("Origin", "http://evil.example"),
        ],
        &form_body(&csrf),
    )
    .await?;
    assert_eq!(status, 403, "a change from another origin");
    let (status, _, _) = http(
        &addr,
        "POST",
        "/trust",
        &[("Host", "evil.example"), ("Cookie", &cookie), urlencoded],
        &form_body(&csrf),
    )
    .await?;
    assert_eq!(status, 421, "a request for another host (DNS rebinding)");
    let (status, _, _) = http(
        &addr,
        "POST",
        "/trust/remove",
        &[("Cookie", &cookie), urlencoded],
        &format!("csrf=bad&key={key1}"),
    )
    .await?;
    assert_eq!(status, 403, "a removal with a bad token");
    assert_eq!(cli(&dir, &["trust", "list"])?, before);
    // An upload with a bad token imports nothing.
    let records_before = grove_json(&dir, &["records", "list"])?;
    let multipart = |csrf: &str| {
        format!(
            "--b\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
             --b\r\nContent-Disposition: form-data; name=\"collection\"\r\n\r\nforged\r\n\
             --b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.csv\"\r\n\
             Content-Type: text/csv\r\n\r\nsteps\n1\n\r\n--b--\r\n"
        )
    };
    let (status, _, _) = http(
        &addr,
        "POST",
        "/records/import",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "multipart/form-data; boundary=b"),
        ],
        &multipart("forged"),
    )
    .await?;
    assert_eq!(status, 403, "an upload with a bad token");
    assert_eq!(grove_json(&dir, &["records", "list"])?, records_before);
    // The right token from a client without a browser's Origin is a change: the token is
    // what lets it through (so the refusals above are the token's and the origin's doing).
    let (status, _, _) = http(
        &addr,
        "POST",
        "/trust",
        &[("Cookie", &cookie), urlencoded],
        &form_body(&csrf),
    )
    .await?;
    assert_eq!(status, 303);
    assert!(cli(&dir, &["trust", "list"])?.contains(&key2));
    cli(&dir, &["trust", "remove", &key2])?;
    // Every answer carries the policy and the other headers.
    let (status, headers, _) = http(&addr, "GET", "/trust", &[("Cookie", &cookie)], "").await?;
    assert_eq!(status, 200);
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        header("content-security-policy"),
        grove_node::console::CONTENT_SECURITY_POLICY
    );
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-store");
    // Without the session: the browser's cookie gone, the same form changes nothing.
    browser.goto(&format!("{base}/trust")).await?;
    browser.type_into(form, "key", &key2).await?;
    browser.client.delete_all_cookies().await?;
    browser.submit("#trust-save").await?;
    let message = browser.text("#message").await?;
    assert!(message.contains("not signed in"), "{message}");
    assert_eq!(cli(&dir, &["trust", "list"])?, before);

    // Signing out ends the session.
    browser.goto(&login_link(&dir)?).await?;
    browser.submit("form.signout button").await?;
    assert!(browser.text("#message").await?.contains("signed out"));
    browser.goto(&format!("{base}/")).await?;
    assert!(browser.text("#message").await?.contains("not signed in"));
    browser.close().await;
    Ok(())
}

/// Node `i`'s step counts: distinctive values, so that a leak into a page would show.
fn steps_of(i: usize) -> Vec<i64> {
    vec![7_130_017 + 101 * i as i64, 7_250_023 + 103 * i as i64]
}

const STEPS: &str =
    "SELECT count(*), sum(steps) FROM activity CLIP steps TO [0, 100000000] SCALE 0";

async fn shares_sent(cluster: &Cluster, i: usize) -> anyhow::Result<u64> {
    let s = ctl(cluster, i, ControlRequest::Status).await?;
    Ok(s["sent"]["share"].as_u64().unwrap_or(0))
}

async fn pending(dir: &Path) -> anyhow::Result<Vec<Value>> {
    Ok(grove_json(dir, &["requests", "list"])?["pending"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// Launches a computation from node 0 in the background.
fn launch(
    cluster: &Cluster,
    share_window_ms: u64,
) -> tokio::task::JoinHandle<anyhow::Result<Value>> {
    let dir = cluster.dir(0).to_path_buf();
    tokio::spawn(async move {
        let mut params = query_params(STEPS, 3, 2);
        params.share_window_ms = share_window_ms;
        params.lifetime_secs = 240;
        Ok(grove_node::control::call(&dir, &ControlRequest::Compute(params), |_, _| {}).await?)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_approves_one_request_and_declines_another() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let Some(browser) = Browser::start().await? else {
        return Ok(());
    };
    const ASKING: usize = 3;
    let mut cluster = network(4, &[ASKING]).await?;
    let key = commissioner_key(&cluster, 0).await?;
    for i in 1..4 {
        let records = steps_of(i)
            .into_iter()
            .map(|s| object(json!({ "steps": s })))
            .collect();
        ctl(
            &cluster,
            i,
            ControlRequest::Import {
                collection: "activity".into(),
                records,
            },
        )
        .await?;
    }
    for i in 1..ASKING {
        grove_e2e::trust(&cluster, i, &key, &[]).await?;
    }
    let dir = cluster.dir(ASKING).to_path_buf();
    cli(
        &dir,
        &[
            "trust",
            "add",
            &key,
            "--name",
            "Node 0's study",
            "--ask",
            "--min-k",
            "1",
            "--min-t",
            "2",
            "--allow-repeats",
        ],
    )?;

    // Unanswered within its share window: declined by the node itself. The window must also
    // hold the two trusting owners' shares: 3 s did not under a clean-clone CI run's load (the
    // root released nothing, once), so 10 s.
    let expired = launch(&cluster, 10_000).await??;
    assert_eq!(expired["contributors"], 2, "{expired}");
    let expired_id = expired["computation"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(pending(&dir).await?.is_empty());
    assert_eq!(shares_sent(&cluster, ASKING).await?, 0);

    // Two requests wait for the owner.
    let first = launch(&cluster, 90_000);
    let second = launch(&cluster, 90_000);
    let started = Instant::now();
    while pending(&dir).await?.len() < 2 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the requests did not reach the owner"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The queue survives a restart of the daemon.
    cluster.kill(ASKING);
    let boot = grove_e2e::boot_addr(&cluster)?;
    cluster.start(ASKING, &[boot])?;
    cluster.wait_ready(ASKING, Duration::from_secs(20)).await?;
    let waiting = pending(&dir).await?;
    assert_eq!(waiting.len(), 2, "{waiting:?}");
    assert_eq!(shares_sent(&cluster, ASKING).await?, 0);
    let listed = cli(&dir, &["requests", "list"])?;
    let ids: Vec<String> = waiting
        .iter()
        .map(|p| p["computation"].as_str().unwrap_or_default().to_string())
        .collect();
    for id in &ids {
        assert!(listed.contains(id.as_str()), "{listed}");
    }

    // The owner answers in the console.
    let addr = console_addr(&dir)?;
    let base = format!("http://{addr}");
    browser.goto(&login_link(&dir)?).await?;
    browser.goto(&format!("{base}/requests")).await?;
    assert_eq!(browser.text("#pending-count").await?, "2");
    browser.screenshot("requests").await?;
    let (approve, decline) = (&ids[0], &ids[1]);
    browser
        .submit(&format!("#request-{approve} button[value='approve']"))
        .await?;
    assert!(browser.text("#message").await?.contains("approved"));
    browser
        .submit(&format!("#request-{decline} button[value='decline']"))
        .await?;
    assert!(browser.text("#message").await?.contains("declined"));
    browser
        .wait_for("#no-requests", Duration::from_secs(5))
        .await?;

    let mut results = Vec::new();
    for task in [first, second] {
        results.push(task.await??);
    }
    let of = |id: &str| {
        results
            .iter()
            .find(|r| r["computation"] == id)
            .cloned()
            .unwrap_or_default()
    };
    // Only the approved request got this node's shares.
    assert_eq!(of(approve)["contributors"], 3, "{:?}", of(approve));
    assert_eq!(of(decline)["contributors"], 2, "{:?}", of(decline));
    let sent = shares_sent(&cluster, ASKING).await?;
    assert!((1..=3).contains(&sent), "{sent} shares for one computation");
    let sum: f64 = (1..4).flat_map(steps_of).map(|v| v as f64).sum();
    assert_eq!(grove_e2e::cell(&of(approve), 0, 1), Some(sum));

    // The audit, filtered: the owner's two answers; never a value.
    browser.goto(&format!("{base}/audit?rule=owner")).await?;
    let count = browser.text("#audit-count").await?;
    assert!(count.starts_with("2 of"), "{count}");
    let rows = browser.text("#audit").await?;
    assert!(
        rows.contains("approved") && rows.contains("declined"),
        "{rows}"
    );
    // The request left unanswered: declined by the rule "ask" when its window closed.
    browser.goto(&format!("{base}/audit?rule=ask")).await?;
    let mut expired_declined = false;
    for tr in browser
        .client
        .find_all(Locator::Css("#audit tr.kind-declined"))
        .await?
    {
        let row = tr.text().await?;
        expired_declined |= row.contains(&expired_id[..16]) && row.contains("no share was sent");
    }
    assert!(expired_declined, "{}", browser.text("#audit").await?);
    browser
        .goto(&format!("{base}/audit?commissioner={key}&from=2000-01-01"))
        .await?;
    let all = browser.text("#audit-count").await?;
    browser
        .goto(&format!("{base}/audit?commissioner={key}&from=9999-12-31"))
        .await?;
    assert!(browser.text("#audit-count").await?.starts_with("0 of"));
    browser
        .goto(&format!("{base}/audit?commissioner={key}"))
        .await?;
    assert_eq!(browser.text("#audit-count").await?, all);
    let source = browser.client.source().await?;
    for v in steps_of(ASKING) {
        assert!(
            !source.contains(&v.to_string()),
            "value {v} in the audit page"
        );
    }
    browser.screenshot("audit").await?;
    assert!(cli(&dir, &["requests", "list"])?.contains("no request waits"));
    browser.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_run_from_the_page_reads_as_the_cli_prints_it() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let Some(browser) = Browser::start().await? else {
        return Ok(());
    };
    let cluster = network(4, &[0]).await?;
    let dir = cluster.dir(0).to_path_buf();
    let key = commissioner_key(&cluster, 0).await?;
    for i in 1..4 {
        for (collection, records) in grove_node::demo::datasets(7, i) {
            ctl(
                &cluster,
                i,
                ControlRequest::Import {
                    collection: collection.into(),
                    records,
                },
            )
            .await?;
        }
        grove_e2e::trust(&cluster, i, &key, &[]).await?;
    }
    let addr = console_addr(&dir)?;
    let base = format!("http://{addr}");
    browser.goto(&login_link(&dir)?).await?;

    // A mistake is shown at its line and column, in the CLI's words.
    let wrong = "SELECT count(*), avg(steps)\nFROM activity\nWHERE steps ~ 5";
    browser.goto(&format!("{base}/compute")).await?;
    browser.type_into("#compute-form", "query", wrong).await?;
    browser.submit("#launch").await?;
    let shown = browser.text("#error p").await?;
    let cli_said = cli_error(&dir, &["compute", wrong])?;
    assert_eq!(shown, cli_said);
    assert!(shown.contains("line 3, column"), "{shown}");
    let placed = browser.text("#error pre").await?;
    assert!(
        placed.contains("WHERE steps ~ 5") && placed.contains('^'),
        "{placed}"
    );
    browser.screenshot("compute-error").await?;

    // A query from the examples, launched from the page; the planner chooses g and t.
    browser.goto(&format!("{base}/compute?example=0")).await?;
    for (name, value) in [("k_min", "2"), ("share_window_ms", "1500")] {
        browser.type_into("#compute-form", name, value).await?;
    }
    browser.screenshot("compute").await?;
    browser.submit("#launch").await?;
    browser.wait_for("#phases", Duration::from_secs(10)).await?;
    let phases = browser
        .client
        .find_all(Locator::Css("#phases li"))
        .await?
        .len();
    assert_eq!(phases, 5);
    browser.wait_for("#result", Duration::from_secs(60)).await?;
    for li in browser.client.find_all(Locator::Css("#phases li")).await? {
        assert_eq!(li.attr("class").await?.as_deref(), Some("phase done"));
    }
    browser.screenshot("run").await?;
    let page_text = browser.text("#cli-text").await?;
    // The run page says what the planner chose and the exposure it gives, as the CLI does.
    let plan = browser.text("#plan").await?;
    assert!(plan.contains("planner's choice"), "{plan}");
    assert!(
        plan.contains("one contributor's value is revealed with probability"),
        "{plan}"
    );

    // The CLI runs the same query: the same table, the same contributors.
    let out = cli(
        &dir,
        &[
            "compute",
            "--g",
            "3",
            "--t",
            "2",
            "--k-min",
            "2",
            "--share-window-ms",
            "1500",
            grove_node::demo::BANK_BY_MONTH,
        ],
    )?;
    let table = |t: &str| -> Vec<String> {
        t.lines()
            .take_while(|l| !l.starts_with("computation "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        table(&page_text),
        table(&out),
        "page:\n{page_text}\ncli:\n{out}"
    );
    assert!(out.contains("contributors included: 3 of 4"), "{out}");
    // The HTML table holds the same rows, cell for cell.
    let cli_rows: Vec<Vec<String>> = out
        .lines()
        .skip(2)
        .take_while(|l| !l.starts_with('('))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    let mut html_rows = Vec::new();
    for tr in browser
        .client
        .find_all(Locator::Css("#result tr"))
        .await?
        .into_iter()
        .skip(1)
    {
        let mut cells = Vec::new();
        for td in tr.find_all(Locator::Css("td")).await? {
            cells.push(td.text().await?);
        }
        html_rows.push(cells);
    }
    assert_eq!(html_rows, cli_rows);
    // One chart per numeric column, one bar per row with a number (an average over no
    // record is null).
    let charts = browser
        .client
        .find_all(Locator::Css("figure.chart"))
        .await?;
    assert_eq!(charts.len(), 4);
    for (c, chart) in charts.iter().enumerate() {
        let numbers = html_rows
            .iter()
            .filter(|r| r[c + 1].parse::<f64>().is_ok())
            .count();
        assert_eq!(chart.find_all(Locator::Css("rect")).await?.len(), numbers);
    }

    // CSV and JSON exports of the same table.
    let cookie = session_cookie(&browser, &addr).await?;
    let id = browser.text("#computation").await?;
    let (status, headers, csv) = http(
        &addr,
        "GET",
        &format!("/runs/{id}/result.csv"),
        &[("Cookie", &cookie)],
        "",
    )
    .await?;
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-type" && v.starts_with("text/csv")));
    let csv_rows: Vec<Vec<String>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(csv_rows, cli_rows);
    let (status, _, json) = http(
        &addr,
        "GET",
        &format!("/runs/{id}/result.json"),
        &[("Cookie", &cookie)],
        "",
    )
    .await?;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&json)?;
    assert_eq!(v["contributors"], 3);
    assert_eq!(v["table"]["rows"].as_array().map(Vec::len), Some(3));
    // Exports need the session too.
    let (status, _, _) = http(&addr, "GET", &format!("/runs/{id}/result.csv"), &[], "").await?;
    assert_eq!(status, 401);
    browser.close().await;
    Ok(())
}
