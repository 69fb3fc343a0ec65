//! `grove sync` against a real WebDAV server (wsgidav) serving a Nextcloud-shaped account:
//! the records, idempotence, the incremental sync by ETag (GETs counted on the server), clear
//! errors, and an interrupted sync that resumes without duplicates.

use crate::pdms_support::*;
use grove_e2e::grove_node::procs::Cluster;
use std::path::Path;
use std::time::{Duration, Instant};

/// Files of the fixture a sync reads: four in Grove/ (one malformed), two calendars, two
/// address-book files. Documents/, the trash bin and the generated address book are not read.
const FIXTURE_FILES: usize = 8;

async fn one_node() -> anyhow::Result<Cluster> {
    let mut cluster = Cluster::new(Path::new(EXE))?;
    cluster.add_node()?;
    cluster.start(0, &[])?;
    cluster.wait_ready(0, Duration::from_secs(60)).await?;
    Ok(cluster)
}

fn account_root() -> anyhow::Result<tempfile::TempDir> {
    let root = tempfile::Builder::new().prefix("grove-nc-").tempdir()?;
    copy_tree(&fixtures().join("nextcloud"), root.path())?;
    Ok(root)
}

fn sync_json(dir: &Path, server: &DavServer, password: &Path) -> anyhow::Result<serde_json::Value> {
    let args = sync_args(&server.url(), password);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    grove_json(dir, &args)
}

fn bank_sum(dir: &Path) -> anyhow::Result<i64> {
    Ok(records(dir, "bank.operations")?
        .iter()
        .map(|r| cents(&r["amount"]))
        .sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_imports_the_account_then_only_what_changed() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let root = account_root()?;
    let server = DavServer::start(root.path(), None)?;
    let cluster = one_node().await?;
    let dir = cluster.dir(0).to_path_buf();
    let password = write_password(cluster.root(), PASSWORD)?;

    let first = sync_json(&dir, &server, &password)?;
    assert_eq!(first["listed"], FIXTURE_FILES, "{first}");
    assert_eq!(first["downloaded"], FIXTURE_FILES, "{first}");
    assert_eq!(first["error"], serde_json::Value::Null);
    let gets = server.gets();
    assert_eq!(gets.len(), FIXTURE_FILES, "{gets:?}");
    for g in &gets {
        assert!(
            !g.contains("/Documents/") && !g.contains("trashbin") && !g.contains("z-server"),
            "{g} is outside what a sync reads"
        );
    }
    // The malformed CSV and the undated event are skipped with their path and reason.
    let skipped = first["skipped"].as_array().cloned().unwrap_or_default();
    let reasons: Vec<String> = skipped
        .iter()
        .map(|s| format!("{} {}", s[0], s[1]))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("2024-03-partial.csv") && r.contains("line 3")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("2024-holidays.ics") && r.contains("no DTSTART")),
        "{reasons:?}"
    );
    let counts = collections(&dir)?;
    let expected_bank = nextcloud_bank_amounts(root.path())?;
    assert_eq!(counts["bank.operations"], expected_bank.len() as u64);
    assert_eq!(bank_sum(&dir)?, expected_bank.iter().sum::<i64>());
    assert_eq!(counts["steps"], 5);
    assert_eq!(counts["calendar.events"], 2);
    assert_eq!(counts["contacts"], 3);
    let events = records(&dir, "calendar.events")?;
    let dentist = events
        .iter()
        .find(|e| e["uid"] == "8c1d2f3a-4b5c-4d6e-8f70-1a2b3c4d5e6f")
        .expect("the dentist appointment");
    assert_eq!(dentist["start"], "2024-01-12T09:30:00");
    assert_eq!(dentist["duration_minutes"], 45);
    assert_eq!(dentist["summary"], "Dentiste, Dr Roux");
    let contacts = records(&dir, "contacts")?;
    assert!(contacts
        .iter()
        .any(|c| c["name"] == "Zoé Martin" && c["city"] == "Lyon"));

    // Nothing changed: nothing is downloaded and nothing is duplicated.
    let second = sync_json(&dir, &server, &password)?;
    assert_eq!(second["downloaded"], 0, "{second}");
    assert_eq!(second["unchanged"], FIXTURE_FILES, "{second}");
    assert_eq!(server.gets().len(), FIXTURE_FILES);
    assert_eq!(collections(&dir)?, counts);

    // One file changes, one appears, one goes: exactly two downloads, and the records follow.
    let grove = root.path().join("remote.php/dav/files/alice/Grove");
    let feb = grove.join("bank.operations/2024-02.json");
    let mut ops: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&feb)?)?;
    ops.push(
        serde_json::json!({"date": "2024-02-28", "label": "CB SNCF", "amount": -36.0,
        "categoryId": "400610", "currency": "EUR"}),
    );
    std::fs::write(&feb, serde_json::to_string_pretty(&ops)?)?;
    std::fs::write(
        grove.join("bank.operations/2024-03.csv"),
        "date,label,amount,categoryId,currency\n2024-03-01,CB CARREFOUR CITY,-17.30,400110,EUR\n2024-03-04,PRLV SEPA ENGIE,-64.00,401080,EUR\n",
    )?;
    std::fs::remove_file(grove.join("steps.ndjson"))?;
    let third = sync_json(&dir, &server, &password)?;
    assert_eq!(third["downloaded"], 2, "{third}");
    assert_eq!(third["removed"], 1, "{third}");
    let new_gets: Vec<String> = server.gets()[FIXTURE_FILES..].to_vec();
    assert_eq!(new_gets.len(), 2, "{new_gets:?}");
    assert!(new_gets.iter().any(|g| g.ends_with("2024-02.json")));
    assert!(new_gets.iter().any(|g| g.ends_with("2024-03.csv")));
    let counts = collections(&dir)?;
    let expected_bank = nextcloud_bank_amounts(root.path())?;
    assert_eq!(counts["bank.operations"], expected_bank.len() as u64);
    assert_eq!(bank_sum(&dir)?, expected_bank.iter().sum::<i64>());
    assert!(!counts.contains_key("steps"), "{counts:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_and_an_unreachable_server_are_clear_errors() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let root = account_root()?;
    let server = DavServer::start(root.path(), None)?;
    let cluster = one_node().await?;
    let dir = cluster.dir(0).to_path_buf();

    let wrong = write_password(cluster.root(), "not-the-app-password")?;
    let args = sync_args(&server.url(), &wrong);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = grove(&dir, &args)?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("HTTP 401") && err.contains("alice"), "{err}");
    assert!(err.contains(&wrong.display().to_string()), "{err}");
    assert!(server.gets().is_empty());

    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let password = write_password(cluster.root(), PASSWORD)?;
    let args = sync_args(&format!("http://127.0.0.1:{free}"), &password);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = grove(&dir, &args)?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot reach the server at http://127.0.0.1:"),
        "{err}"
    );

    // The password is never a flag: only a file is accepted.
    let out = grove(
        &dir,
        &[
            "sync",
            "--url",
            &server.url(),
            "--user",
            USER,
            "--password",
            "x",
        ],
    )?;
    assert!(!out.status.success());
    assert!(collections(&dir)?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_sync_resumes_without_duplicates() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    const BEFORE_KILL: u32 = 3;
    let root = account_root()?;
    let server = DavServer::start(root.path(), Some(BEFORE_KILL))?;
    let cluster = one_node().await?;
    let dir = cluster.dir(0).to_path_buf();
    let password = write_password(cluster.root(), PASSWORD)?;

    // The server stops answering at the fourth download; the sync is killed there.
    let args = sync_args(&server.url(), &password);
    let mut sync = std::process::Command::new(EXE)
        .arg("--data-dir")
        .arg(&dir)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let started = Instant::now();
    let hung = loop {
        if let Some(l) = server.requests().iter().find(|l| l.starts_with("HANG ")) {
            break l.clone();
        }
        if let Some(status) = sync.try_wait()? {
            anyhow::bail!("the sync ended ({status}) before the server held a download");
        }
        if started.elapsed() > Duration::from_secs(300) {
            let _ = sync.kill();
            anyhow::bail!("the sync never reached its fourth download");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    sync.kill()?;
    sync.wait()?;
    server.release()?;
    let before: Vec<String> = server.gets();
    assert_eq!(before.len(), BEFORE_KILL as usize, "{before:?}");
    assert!(hung.ends_with("steps.ndjson"), "{hung}");
    // The three files fetched before the kill are committed with their records, no more.
    let counts = collections(&dir)?;
    let bank = nextcloud_bank_amounts(root.path())?;
    assert_eq!(counts.get("bank.operations"), Some(&(bank.len() as u64)));
    assert!(!counts.contains_key("steps"), "{counts:?}");

    // Resume: only the files not yet committed are downloaded; nothing is duplicated.
    let resumed = sync_json(&dir, &server, &password)?;
    assert_eq!(
        resumed["downloaded"],
        FIXTURE_FILES - BEFORE_KILL as usize,
        "{resumed}"
    );
    let after = &server.gets()[before.len()..];
    for g in after {
        assert!(!before.contains(g), "{g} was downloaded twice");
    }
    let counts = collections(&dir)?;
    assert_eq!(counts["bank.operations"], bank.len() as u64);
    assert_eq!(bank_sum(&dir)?, bank.iter().sum::<i64>());
    assert_eq!(counts["steps"], 5);
    assert_eq!(counts["calendar.events"], 2);
    assert_eq!(counts["contacts"], 3);
    Ok(())
}
