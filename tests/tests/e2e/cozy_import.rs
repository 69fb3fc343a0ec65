//! `grove records import-cozy` on a fixture export with realistic doctypes (bank operations
//! with categories and amounts, bills, files metadata), as a folder and as a zip: the records,
//! the skipped files with their reasons, idempotent re-imports and revisions.

use crate::pdms_support::*;
use grove_e2e::grove_node::procs::Cluster;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn export() -> std::path::PathBuf {
    fixtures().join("cozy-export")
}

/// Every record of the collections a Cozy import writes, sorted, for comparisons.
fn snapshot(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for c in ["bank.operations", "bills", "files"] {
        for r in records(dir, c)? {
            out.push(format!("{c} {r}"));
        }
    }
    out.sort();
    Ok(out)
}

fn import(dir: &Path, path: &Path) -> anyhow::Result<Value> {
    grove_json(
        dir,
        &["records", "import-cozy", &path.display().to_string()],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cozy_export_imports_once_from_a_folder_or_a_zip() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let mut cluster = Cluster::new(Path::new(EXE))?;
    cluster.add_node()?;
    cluster.add_node()?;
    cluster.start(0, &[])?;
    cluster.start(1, &[])?;
    cluster.wait_ready(0, Duration::from_secs(60)).await?;
    cluster.wait_ready(1, Duration::from_secs(60)).await?;
    let (a, b) = (cluster.dir(0).to_path_buf(), cluster.dir(1).to_path_buf());

    let first = import(&a, &export())?;
    // 8 operation documents (one an older revision of another), 2 bills, 3 files.
    assert_eq!(first["doctypes"]["io.cozy.bank.operations"], 8, "{first}");
    assert_eq!(first["doctypes"]["io.cozy.bills"], 2, "{first}");
    assert_eq!(first["doctypes"]["io.cozy.files"], 3, "{first}");
    assert_eq!(first["added"], 12, "{first}");
    assert_eq!(
        first["unchanged"], 1,
        "the older revision is ignored: {first}"
    );
    assert_eq!(
        first["ignored_files"], 1,
        "the owner's own notes.json: {first}"
    );
    let skipped: Vec<String> = first["skipped"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| format!("{}: {}", s["path"], s["reason"]))
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped
        .iter()
        .any(|s| s.contains("io.cozy.bills/broken.json") && s.contains("not JSON")));
    assert!(skipped
        .iter()
        .any(|s| s.contains("io.cozy.bills.json (document 3)") && s.contains("no _id")));

    let counts = collections(&a)?;
    assert_eq!(counts["bank.operations"], 7);
    assert_eq!(counts["bills"], 2);
    assert_eq!(counts["files"], 3);
    let ops = records(&a, "bank.operations")?;
    let expected = cozy_bank_amounts(&export())?;
    let mut got: Vec<i64> = ops.iter().map(|r| cents(&r["amount"])).collect();
    let mut want = expected.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let sncf = ops
        .iter()
        .find(|r| r["_id"] == "f1a0c3e2b7d94c1e8a5b2c3d4e5f6a03")
        .expect("operation 03");
    assert_eq!(sncf["_rev"], "3-77d0");
    assert_eq!(
        sncf["categoryId"], "400620",
        "the owner's manual category wins"
    );
    let files = records(&a, "files")?;
    assert!(files
        .iter()
        .any(|f| f["name"] == "EDF_2024-01.pdf" && f["size"] == 183412));

    // The same export again, as a folder or as a zip: nothing changes.
    let before = snapshot(&a)?;
    let again = import(&a, &export())?;
    assert_eq!(
        (again["added"].as_u64(), again["replaced"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(again["unchanged"], 13, "{again}");
    let tmp = tempfile::Builder::new().prefix("grove-cozy-").tempdir()?;
    let zip = tmp.path().join("cozy-export.zip");
    zip_folder(&export(), &zip)?;
    let zipped = import(&a, &zip)?;
    assert_eq!(zipped["unchanged"], 13, "{zipped}");
    assert_eq!(snapshot(&a)?, before);

    // The zip alone gives a fresh node exactly the same records.
    let fresh = import(&b, &zip)?;
    assert_eq!(fresh["added"], 12, "{fresh}");
    assert_eq!(snapshot(&b)?, before);

    // A later export: a newer revision replaces, a deletion removes, an older one is ignored.
    let later = tmp.path().join("later");
    let dir = later.join("io.cozy.bank.operations");
    std::fs::create_dir_all(&dir)?;
    let read = |id: &str| -> anyhow::Result<Value> {
        let p = export().join(format!("metadata/io.cozy.bank.operations/{id}.json"));
        Ok(serde_json::from_str(&std::fs::read_to_string(p)?)?)
    };
    let mut edited = read("f1a0c3e2b7d94c1e8a5b2c3d4e5f6a01")?;
    edited["_rev"] = "3-e1".into();
    edited["amount"] = (-60.12).into();
    edited["manualCategoryId"] = "400100".into();
    let deleted = serde_json::json!({"_id": "f1a0c3e2b7d94c1e8a5b2c3d4e5f6a02", "_rev": "2-d1", "_deleted": true});
    let mut stale = read("f1a0c3e2b7d94c1e8a5b2c3d4e5f6a06")?;
    stale["_rev"] = "1-00".into();
    stale["amount"] = (-999.0).into();
    std::fs::write(
        dir.join("changes.json"),
        serde_json::to_string(&vec![edited, deleted, stale])?,
    )?;
    let update = import(&a, &later)?;
    assert_eq!(update["replaced"], 2, "{update}");
    assert_eq!(update["unchanged"], 1, "{update}");
    let ops = records(&a, "bank.operations")?;
    assert_eq!(ops.len(), 6);
    let one = ops
        .iter()
        .find(|r| r["_id"] == "f1a0c3e2b7d94c1e8a5b2c3d4e5f6a01")
        .expect("operation 01");
    assert_eq!(cents(&one["amount"]), -6012);
    assert_eq!(one["categoryId"], "400100");
    assert!(!ops
        .iter()
        .any(|r| r["_id"] == "f1a0c3e2b7d94c1e8a5b2c3d4e5f6a02"));
    assert!(ops.iter().all(|r| cents(&r["amount"]) != -99900));
    Ok(())
}
