//! Reading a Cozy data export: a folder or a zip of JSON documents grouped by doctype.
//!
//! A JSON file belongs to the doctype named by the file itself (`io.cozy.bills.json`) or by
//! the nearest folder above it that is named like a doctype (`io.cozy.bills/<id>.json`, at any
//! depth, as in `metadata/io.cozy.bills/…`). A doctype is a reverse domain name of at least
//! three labels. Other files are not read (an export also holds the owner's files). A file
//! holds one document, an array of documents, `{"docs": [...]}` or CouchDB's
//! `{"rows": [{"doc": ...}]}`.
//!
//! Doctypes map to collections by dropping the `io.cozy.` prefix (`io.cozy.bank.operations` is
//! `bank.operations`, `io.cozy.bills` is `bills`, `io.cozy.files` is `files`); other doctypes
//! keep their name. A document is one record with its top-level fields as they are, plus:
//! - `io.cozy.bank.operations`: `categoryId`, the owner's `manualCategoryId` if set, else the
//!   bank's `automaticCategoryId`;
//! - `io.cozy.files`: `size` as a number (the stack writes it as text).
//!
//! Each document is keyed by `cozy:<doctype>/<_id>` and carries its `_rev`, so importing an
//! export again changes nothing, a newer revision replaces the record and an older one is
//! ignored; a document with `_deleted: true` removes it. Design documents (`_design/…`) are
//! not data and are passed over. A file that is not JSON, or a document without an `_id`, is
//! skipped and reported with its path and reason; the rest is imported.

use crate::store::SourcedRecords;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Largest JSON file read from an export, in bytes.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Largest number of files read from one export.
pub const MAX_FILES: usize = 1_000_000;

/// What was read from an export.
#[derive(Debug, Default)]
pub struct Export {
    /// One item per document, in the order read.
    pub items: Vec<SourcedRecords>,
    /// Documents read per doctype.
    pub doctypes: BTreeMap<String, u64>,
    /// `(path, reason)` of every file or document skipped.
    pub skipped: Vec<(String, String)>,
    /// Files that are not documents of a doctype (the owner's files, notes).
    pub ignored_files: u64,
    pub design_documents: u64,
}

/// Whether a name is a doctype: a reverse domain name of at least three labels.
pub fn is_doctype(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    labels.len() >= 3
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        })
        && labels[0].chars().all(|c| c.is_ascii_lowercase())
}

/// The collection a doctype's documents go to.
pub fn collection_for(doctype: &str) -> String {
    doctype
        .strip_prefix("io.cozy.")
        .unwrap_or(doctype)
        .to_string()
}

/// The doctype a JSON file of the export belongs to, from its path (`/`-separated).
fn doctype_of(path: &str) -> Option<String> {
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let file = segments.pop()?;
    let stem = file.strip_suffix(".json")?;
    if is_doctype(stem) {
        return Some(stem.to_string());
    }
    segments
        .into_iter()
        .rev()
        .find(|s| is_doctype(s))
        .map(str::to_string)
}

/// Reads an export: a folder, or a `.zip` file.
pub fn read(path: &Path) -> anyhow::Result<Export> {
    let mut export = Export::default();
    if path.is_dir() {
        let mut files = Vec::new();
        walk(path, path, &mut files)?;
        files.sort();
        for rel in files {
            let full = path.join(&rel);
            export.file(&rel, || {
                let meta = std::fs::metadata(&full)?;
                if meta.len() > MAX_FILE_BYTES {
                    return Err(std::io::Error::other(format!(
                        "larger than {MAX_FILE_BYTES} bytes"
                    )));
                }
                std::fs::read(&full)
            });
        }
    } else {
        let file = std::fs::File::open(path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        export = read_zip(file)
            .map_err(|e| anyhow::anyhow!("{} is not a folder or a zip: {e}", path.display()))?;
    }
    Ok(export)
}

/// Reads an export from a zip (a file, or bytes uploaded to the console).
pub fn read_zip(reader: impl std::io::Read + std::io::Seek) -> anyhow::Result<Export> {
    let mut export = Export::default();
    {
        let mut zip = zip::ZipArchive::new(reader)?;
        let mut names: Vec<(String, usize)> = (0..zip.len())
            .filter_map(|i| {
                let f = zip.by_index(i).ok()?;
                (!f.is_dir()).then(|| (f.name().to_string(), i))
            })
            .collect();
        if names.len() > MAX_FILES {
            anyhow::bail!("the export holds more than {MAX_FILES} files");
        }
        names.sort();
        for (name, i) in names {
            export.file(&name, || {
                let f = zip.by_index(i).map_err(std::io::Error::other)?;
                let mut buf = Vec::new();
                f.take(MAX_FILE_BYTES + 1).read_to_end(&mut buf)?;
                if buf.len() as u64 > MAX_FILE_BYTES {
                    return Err(std::io::Error::other(format!(
                        "larger than {MAX_FILE_BYTES} bytes"
                    )));
                }
                Ok(buf)
            });
        }
    }
    Ok(export)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if e.file_type()?.is_dir() {
            walk(root, &p, out)?;
        } else if let Ok(rel) = p.strip_prefix(root) {
            if out.len() >= MAX_FILES {
                anyhow::bail!("the export holds more than {MAX_FILES} files");
            }
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

impl Export {
    fn file(&mut self, path: &str, read: impl FnOnce() -> std::io::Result<Vec<u8>>) {
        let Some(doctype) = doctype_of(path) else {
            self.ignored_files += 1;
            return;
        };
        let bytes = match read() {
            Ok(b) => b,
            Err(e) => {
                self.skipped
                    .push((path.into(), format!("cannot read: {e}")));
                return;
            }
        };
        let value: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                self.skipped.push((path.into(), format!("not JSON: {e}")));
                return;
            }
        };
        let docs = match value {
            Value::Array(a) => a,
            Value::Object(mut m) => match (m.remove("docs"), m.remove("rows")) {
                (Some(Value::Array(d)), _) => d,
                (_, Some(Value::Array(rows))) => rows
                    .into_iter()
                    .map(|r| match r {
                        Value::Object(mut r) => r.remove("doc").unwrap_or(Value::Null),
                        other => other,
                    })
                    .collect(),
                (docs, rows) => {
                    if let Some(d) = docs {
                        m.insert("docs".into(), d);
                    }
                    if let Some(r) = rows {
                        m.insert("rows".into(), r);
                    }
                    vec![Value::Object(m)]
                }
            },
            other => {
                self.skipped.push((
                    path.into(),
                    format!("holds {other:.20}, not a document or a list of documents"),
                ));
                return;
            }
        };
        let several = docs.len() > 1;
        for (i, doc) in docs.into_iter().enumerate() {
            let at = if several {
                format!("{path} (document {})", i + 1)
            } else {
                path.to_string()
            };
            match document(&doctype, doc) {
                Ok(Some(item)) => {
                    *self.doctypes.entry(doctype.clone()).or_default() += 1;
                    self.items.push(item);
                }
                Ok(None) => self.design_documents += 1,
                Err(reason) => self.skipped.push((at, reason)),
            }
        }
    }
}

/// One document as a keyed item; `None` for a design document.
fn document(doctype: &str, doc: Value) -> Result<Option<SourcedRecords>, String> {
    let Value::Object(mut doc) = doc else {
        return Err("a document must be a JSON object".into());
    };
    let id = match doc.get("_id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(_) => return Err("its _id is not a non-empty string".into()),
        None => return Err("it has no _id".into()),
    };
    if id.starts_with("_design/") {
        return Ok(None);
    }
    let revision = match doc.get("_rev") {
        None => None,
        Some(Value::String(r)) if !r.is_empty() => Some(r.clone()),
        Some(_) => return Err(format!("document {id}: its _rev is not a string")),
    };
    let deleted = doc.get("_deleted") == Some(&Value::Bool(true));
    let collection = collection_for(doctype);
    crate::store::validate_collection_name(&collection).map_err(|e| e.to_string())?;
    let records = if deleted {
        Vec::new()
    } else {
        derive(doctype, &mut doc);
        vec![doc]
    };
    Ok(Some(SourcedRecords {
        source: format!("cozy:{doctype}/{id}"),
        revision,
        collection,
        records,
    }))
}

fn derive(doctype: &str, doc: &mut Map<String, Value>) {
    match doctype {
        "io.cozy.bank.operations" => {
            let category = ["manualCategoryId", "automaticCategoryId"]
                .iter()
                .find_map(|f| doc.get(*f).filter(|v| !v.is_null()).cloned());
            if let Some(c) = category {
                doc.insert("categoryId".into(), c);
            }
        }
        "io.cozy.files" => {
            if let Some(Value::String(s)) = doc.get("size") {
                if let Ok(n) = s.trim().parse::<u64>() {
                    doc.insert("size".into(), Value::from(n));
                }
            }
        }
        _ => {}
    }
}

/// Documents sent to the node in one control request (one store transaction).
pub const ITEMS_PER_REQUEST: usize = 5000;

/// `grove records import-cozy EXPORT`: reads the export and sends its documents to the daemon.
pub async fn import_command(dir: &Path, export: &Path, json: bool) -> anyhow::Result<()> {
    let read = read(export)?;
    let mut total = crate::store::UpsertSummary::default();
    for chunk in read.items.chunks(ITEMS_PER_REQUEST) {
        let data = crate::control::call(
            dir,
            &crate::control::ControlRequest::ImportSources {
                items: chunk.to_vec(),
                sync: Vec::new(),
            },
            |_, _| {},
        )
        .await?;
        let s: crate::store::UpsertSummary = serde_json::from_value(data)?;
        total.add(&s);
    }
    let documents = read.items.len();
    if json {
        let skipped: Vec<Value> = read
            .skipped
            .iter()
            .map(|(p, r)| serde_json::json!({"path": p, "reason": r}))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "documents": documents,
                "doctypes": read.doctypes,
                "added": total.added,
                "replaced": total.replaced,
                "unchanged": total.unchanged,
                "records_written": total.records_written,
                "records_removed": total.records_removed,
                "skipped": skipped,
                "ignored_files": read.ignored_files,
            })
        );
    } else {
        let by: Vec<String> = read
            .doctypes
            .iter()
            .map(|(d, n)| format!("{} {n}", collection_for(d)))
            .collect();
        println!(
            "cozy export {}: {documents} documents ({})",
            export.display(),
            by.join(", ")
        );
        println!(
            "added {}, replaced by a newer revision {}, unchanged {} ({} records written, {} removed)",
            total.added, total.replaced, total.unchanged, total.records_written, total.records_removed
        );
        if !read.skipped.is_empty() {
            println!("skipped {}:", read.skipped.len());
            for (p, r) in &read.skipped {
                println!("  {p}: {r}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doctypes_come_from_paths() {
        assert_eq!(
            doctype_of("export/metadata/io.cozy.bills/abc.json").as_deref(),
            Some("io.cozy.bills")
        );
        assert_eq!(
            doctype_of("io.cozy.bank.operations.json").as_deref(),
            Some("io.cozy.bank.operations")
        );
        assert_eq!(doctype_of("My Cozy/Documents/notes.json"), None);
        assert_eq!(doctype_of("io.cozy.bills/readme.txt"), None);
        assert_eq!(collection_for("io.cozy.bank.operations"), "bank.operations");
        assert_eq!(
            collection_for("com.bitwarden.ciphers"),
            "com.bitwarden.ciphers"
        );
    }

    #[test]
    fn documents_are_keyed_and_derived() {
        let doc = serde_json::json!({"_id": "op1", "_rev": "3-ab", "amount": -12.5,
            "automaticCategoryId": "400110", "manualCategoryId": null});
        let item = document("io.cozy.bank.operations", doc).unwrap().unwrap();
        assert_eq!(item.source, "cozy:io.cozy.bank.operations/op1");
        assert_eq!(item.revision.as_deref(), Some("3-ab"));
        assert_eq!(item.records[0]["categoryId"], "400110");
        let file = serde_json::json!({"_id": "f", "type": "file", "size": "2048"});
        let item = document("io.cozy.files", file).unwrap().unwrap();
        assert_eq!(item.records[0]["size"], 2048);
        let gone = serde_json::json!({"_id": "f", "_rev": "4-x", "_deleted": true});
        assert!(document("io.cozy.files", gone)
            .unwrap()
            .unwrap()
            .records
            .is_empty());
        let design = serde_json::json!({"_id": "_design/by-date"});
        assert!(document("io.cozy.files", design).unwrap().is_none());
        assert!(document("io.cozy.files", serde_json::json!({"name": "x"})).is_err());
    }
}
