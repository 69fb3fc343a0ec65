//! The node's redb store: keys, records by collection, trusted commissioners, the engine's
//! append-only record log, plan directory snapshots, peer announcements and the audit log.
//!
//! Every write is one redb write transaction committed (durably: redb's default immediate
//! durability fsyncs on commit) before the method returns, so a caller that acknowledges after
//! a successful return never acknowledges something a crash could lose.

use grove_protocol::ids::ComputationId;
use grove_protocol::record::Record;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::Path;
use thiserror::Error;

/// Key material by name (`libp2p_keypair`, `x25519_secret`, `commissioner_secret`).
const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
/// `(collection, sequence) -> record as JSON object text`.
const RECORDS: TableDefinition<(&str, u64), &str> = TableDefinition::new("records");
/// Commissioner public key (hex) -> trust entry as JSON.
const TRUST: TableDefinition<&str, &str> = TableDefinition::new("trust");
/// Sequence -> postcard bytes of one `grove_protocol::record::Record`, in emission order.
const ENGINE_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("engine_log");
/// Computation id -> postcard bytes of the directory snapshot its plan was built from.
/// PeerId (base58) -> the peer's signed announcement bytes, as received.
const DIRECTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("directory");
/// Sequence -> audit entry as JSON.
const AUDIT: TableDefinition<u64, &str> = TableDefinition::new("audit");
/// `(commissioner key hex, sequence) -> ConsentEntry` as JSON: every request this node
/// contributed to, for the rate limit, the differencing rule and "never twice".
const CONSENTS: TableDefinition<(&str, u64), &str> = TableDefinition::new("consents");
/// `(source, sequence) -> collection`: the records each keyed source wrote (a Cozy document,
/// a synced file, an ingested record with an `_id`), so a new version replaces them.
const SOURCE_RECORDS: TableDefinition<(&str, u64), &str> = TableDefinition::new("source_records");
/// Source -> its revision (Cozy's `_rev`), for sources that carry one.
const SOURCE_REVS: TableDefinition<&str, &str> = TableDefinition::new("source_revs");
/// `(account, path) -> state` of a synced remote file (JSON text owned by the connector: its
/// ETag, and why it was skipped if it was).
const SYNC_STATE: TableDefinition<(&str, &str), &str> = TableDefinition::new("sync_state");
/// Computation id (hex) -> `PendingRequest` as JSON: requests of commissioners trusted in mode
/// "ask" that wait for the owner's answer (kept across restarts).
const PENDING: TableDefinition<&str, &str> = TableDefinition::new("pending");
/// Collection -> `CollectionUpdate` as JSON: when its records last changed, and through what.
const COLLECTION_UPDATES: TableDefinition<&str, &str> = TableDefinition::new("collection_updates");
/// Counters (`records_next`, `consents_next`).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Largest number of records one import may carry.
pub const MAX_IMPORT_RECORDS: usize = 1_000_000;
/// Longest collection name, in bytes.
pub const MAX_COLLECTION_NAME_BYTES: usize = 128;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Redb(Box<redb::Error>),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("invalid input: {0}")]
    Invalid(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError {
                StoreError::Redb(Box::new(e.into()))
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A trusted commissioner and the limits of that trust.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustEntry {
    /// ed25519 verifying key, hex.
    pub key: String,
    /// Collections this commissioner may compute over; empty means every collection.
    pub collections: Vec<String>,
    pub label: String,
    pub added_at_micros: u64,
    /// The smallest `k_min` (fewest contributors a result may cover) this node accepts.
    #[serde(default = "one")]
    pub min_contributors: u64,
    /// Fields a query may read (aggregates, `WHERE`, `GROUP BY`); empty means every field.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Computations per 24 hours this commissioner may have this node contribute to.
    #[serde(default = "default_max_per_day")]
    pub max_per_day: u32,
    /// The smallest group threshold `t` this node accepts.
    #[serde(default = "one_u8")]
    pub min_t: u8,
    /// The differencing rule's window, in seconds.
    #[serde(default = "default_window")]
    pub differencing_window_secs: u64,
    /// The most `GROUP BY` keys (or buckets) a query may declare. Entries stored before this
    /// limit existed read the default.
    #[serde(default = "default_max_group_keys")]
    pub max_group_keys: u32,
    /// Whether the same query may run again inside the differencing window (by default a
    /// repeat is declined: re-running a query while membership changes isolates whoever
    /// joined or left). Entries stored before this rule existed read `false`.
    #[serde(default)]
    pub allow_repeats: bool,
    /// Whether a request that passes every rule is answered at once or waits for the owner.
    #[serde(default)]
    pub mode: TrustMode,
    /// The privacy budget per 30 days, in thousandths of epsilon (`owner/budget.rs`); `None`: no
    /// budget (queries with or without a privacy clause are not limited by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon_per_month_milli: Option<u64>,
}

/// How a trusted commissioner's requests are answered once every consent rule holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustMode {
    /// Contribute at once.
    #[default]
    Auto,
    /// Wait, within the request's share window, until the owner approves or declines it
    /// (the console's requests page, `grove requests`).
    Ask,
}

impl TrustMode {
    pub fn name(self) -> &'static str {
        match self {
            TrustMode::Auto => "auto",
            TrustMode::Ask => "ask",
        }
    }
}

/// A request waiting for its owner's answer (trust mode "ask"). Holds what the owner needs to
/// decide, never a value of the records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    /// Hex computation id.
    pub computation: String,
    /// Hex commissioner key, and the name the owner gave it.
    pub commissioner: String,
    pub label: String,
    /// The request's query text (canonical).
    pub query: String,
    pub collection: String,
    pub k_min: u64,
    pub g: u8,
    pub t: u8,
    pub received_at_micros: u64,
    /// The end of the request's share window: an answer after it could no longer reach the
    /// leaf group, so the request is then declined.
    pub answer_by_micros: u64,
    /// Records of the collection the query would use.
    pub records_used: u64,
}

/// When a collection's records last changed, and through what (`file`, `cozy`, `nextcloud`,
/// `ingest`, ...: the first part of a source key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionUpdate {
    pub at_micros: u64,
    pub via: String,
}

/// One collection as the owner's console shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionInfo {
    pub name: String,
    pub records: u64,
    /// Records by source kind (`cozy`, `nextcloud`, `ingest`, `file` for plain imports).
    pub sources: std::collections::BTreeMap<String, u64>,
    pub last_update: Option<CollectionUpdate>,
}

/// The kind of a keyed source: the part of its key before the first `:`.
pub fn source_kind(source: &str) -> &str {
    source.split_once(':').map_or(source, |(kind, _)| kind)
}

fn one() -> u64 {
    1
}
fn one_u8() -> u8 {
    1
}
fn default_max_per_day() -> u32 {
    crate::owner::defaults::DEFAULT_MAX_PER_DAY
}
fn default_window() -> u64 {
    crate::owner::defaults::DEFAULT_DIFFERENCING_WINDOW_SECS
}
fn default_max_group_keys() -> u32 {
    crate::owner::defaults::DEFAULT_MAX_GROUP_KEYS
}

/// A request this node contributed to, kept for the consent rules (its own query text, never
/// a value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEntry {
    /// Hex computation id.
    pub computation: String,
    pub at_micros: u64,
    /// The request's query text.
    pub query: String,
}

/// One line of the audit log. Never holds a value from the owner's records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at_micros: u64,
    /// Hex computation id (empty for entries about no computation).
    pub computation: String,
    /// `accepted`, `contributed`, `declined`, `refused`, `launched`, `released`, `failed`,
    /// `closed`, `imported`, `trust`.
    pub kind: String,
    /// For a consent decision (`contributed`, `declined`): the rule that decided
    /// (`consent::Rule::name`); empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rule: String,
    /// Hex key of the commissioner of the computation, when the node knows it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub commissioner: String,
    pub detail: String,
}

pub struct Store {
    db: Database,
}

/// The records one keyed source holds now. A source's records replace what it wrote before
/// (an empty list removes them), unless `revision` is not newer than the stored one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourcedRecords {
    /// Stable key of the source, e.g. `cozy:io.cozy.bills/<_id>`.
    pub source: String,
    /// CouchDB-style revision `N-hash`; `None` always replaces.
    #[serde(default)]
    pub revision: Option<String>,
    pub collection: String,
    pub records: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// A change of one synced file's state, committed with the records it brought.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncUpdate {
    pub account: String,
    pub path: String,
    /// The new state; `None` forgets the file.
    pub state: Option<String>,
}

/// What [`Store::upsert_sources`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpsertSummary {
    /// Sources seen for the first time.
    pub added: u64,
    /// Sources whose records were replaced by a newer version.
    pub replaced: u64,
    /// Sources left alone: their stored revision is the same or newer.
    pub unchanged: u64,
    pub records_written: u64,
    pub records_removed: u64,
}

impl UpsertSummary {
    /// Adds what another import did (an import sent in several requests).
    pub fn add(&mut self, other: &UpsertSummary) {
        self.added += other.added;
        self.replaced += other.replaced;
        self.unchanged += other.unchanged;
        self.records_written += other.records_written;
        self.records_removed += other.records_removed;
    }
}

/// Whether revision `new` supersedes `old`: CouchDB revisions `N-hash` compare by `N`, then by
/// the hash (CouchDB's own winner rule); other texts compare as text.
pub fn revision_is_newer(new: &str, old: &str) -> bool {
    fn split(r: &str) -> (Option<u64>, &str) {
        match r.split_once('-') {
            Some((n, rest)) => match n.parse::<u64>() {
                Ok(n) => (Some(n), rest),
                Err(_) => (None, r),
            },
            None => (None, r),
        }
    }
    match (split(new), split(old)) {
        ((Some(a), ra), (Some(b), rb)) => (a, ra) > (b, rb),
        _ => new > old,
    }
}

pub fn validate_collection_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > MAX_COLLECTION_NAME_BYTES {
        return Err(StoreError::Invalid(format!(
            "collection names have 1 to {MAX_COLLECTION_NAME_BYTES} bytes"
        )));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(StoreError::Invalid(format!(
            "collection name {name:?} may only hold ASCII letters, digits, '_', '-' and '.'"
        )));
    }
    Ok(())
}

/// Notes a change of `collection`'s records inside a write transaction.
fn note_update(
    txn: &redb::WriteTransaction,
    collection: &str,
    via: &str,
    at_micros: u64,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(&CollectionUpdate {
        at_micros,
        via: via.to_string(),
    })
    .map_err(|e| StoreError::Invalid(format!("collection update: {e}")))?;
    txn.open_table(COLLECTION_UPDATES)?
        .insert(collection, text.as_str())?;
    Ok(())
}

impl Store {
    /// Opens (or creates) the store and makes sure every table exists.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        {
            txn.open_table(KEYS)?;
            txn.open_table(RECORDS)?;
            txn.open_table(TRUST)?;
            txn.open_table(ENGINE_LOG)?;
            txn.open_table(DIRECTORY)?;
            txn.open_table(AUDIT)?;
            txn.open_table(META)?;
            txn.open_table(CONSENTS)?;
            txn.open_table(SOURCE_RECORDS)?;
            txn.open_table(SOURCE_REVS)?;
            txn.open_table(SYNC_STATE)?;
            txn.open_table(PENDING)?;
            txn.open_table(COLLECTION_UPDATES)?;
        }
        txn.commit()?;
        Ok(Store { db })
    }

    // ---- keys

    pub fn key(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(KEYS)?;
        Ok(table.get(name)?.map(|v| v.value().to_vec()))
    }

    /// Stores a key only if none of that name exists; returns whether it was stored.
    pub fn put_key_if_absent(&self, name: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let stored = {
            let mut table = txn.open_table(KEYS)?;
            if table.get(name)?.is_some() {
                false
            } else {
                table.insert(name, bytes)?;
                true
            }
        };
        txn.commit()?;
        Ok(stored)
    }

    // ---- records

    /// Appends records (JSON objects) to a collection in one committed transaction, noting
    /// the time (`at_micros`) as the collection's last update.
    pub fn import_records(
        &self,
        collection: &str,
        records: &[serde_json::Map<String, serde_json::Value>],
        at_micros: u64,
    ) -> Result<u64, StoreError> {
        validate_collection_name(collection)?;
        if records.len() > MAX_IMPORT_RECORDS {
            return Err(StoreError::Invalid(format!(
                "{} records in one import exceed the limit of {MAX_IMPORT_RECORDS}",
                records.len()
            )));
        }
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let mut next = meta.get("records_next")?.map(|v| v.value()).unwrap_or(0);
            let mut table = txn.open_table(RECORDS)?;
            for r in records {
                let text = serde_json::to_string(r)
                    .map_err(|e| StoreError::Invalid(format!("record does not serialise: {e}")))?;
                table.insert((collection, next), text.as_str())?;
                next += 1;
            }
            meta.insert("records_next", next)?;
            note_update(&txn, collection, "file", at_micros)?;
        }
        txn.commit()?;
        Ok(records.len() as u64)
    }

    /// Writes keyed sources and sync state in one committed transaction: each source's
    /// records replace the ones it wrote before, unless its revision is not newer than the
    /// stored one. So importing the same export twice changes nothing, and a file's records and
    /// its ETag are durable together or not at all.
    pub fn upsert_sources(
        &self,
        items: &[SourcedRecords],
        sync: &[SyncUpdate],
        at_micros: u64,
    ) -> Result<UpsertSummary, StoreError> {
        let total: usize = items.iter().map(|i| i.records.len()).sum();
        if total > MAX_IMPORT_RECORDS {
            return Err(StoreError::Invalid(format!(
                "{total} records in one import exceed the limit of {MAX_IMPORT_RECORDS}"
            )));
        }
        for item in items {
            validate_collection_name(&item.collection)?;
            if item.source.is_empty() {
                return Err(StoreError::Invalid("a source key is empty".into()));
            }
        }
        let mut summary = UpsertSummary::default();
        let mut changed = std::collections::BTreeSet::new();
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let mut next = meta.get("records_next")?.map(|v| v.value()).unwrap_or(0);
            let mut records = txn.open_table(RECORDS)?;
            let mut sources = txn.open_table(SOURCE_RECORDS)?;
            let mut revs = txn.open_table(SOURCE_REVS)?;
            for item in items {
                let source = item.source.as_str();
                let stored = revs.get(source)?.map(|v| v.value().to_string());
                if let (Some(new), Some(old)) = (&item.revision, &stored) {
                    if !revision_is_newer(new, old) {
                        summary.unchanged += 1;
                        continue;
                    }
                }
                let mut old = Vec::new();
                for row in sources.range((source, 0u64)..=(source, u64::MAX))? {
                    let (k, v) = row?;
                    old.push((k.value().1, v.value().to_string()));
                }
                if old.is_empty() && stored.is_none() {
                    summary.added += 1;
                } else {
                    summary.replaced += 1;
                }
                for (seq, collection) in &old {
                    records.remove((collection.as_str(), *seq))?;
                    sources.remove((source, *seq))?;
                    summary.records_removed += 1;
                    changed.insert((collection.clone(), source_kind(source).to_string()));
                }
                changed.insert((item.collection.clone(), source_kind(source).to_string()));
                for r in &item.records {
                    let text = serde_json::to_string(r).map_err(|e| {
                        StoreError::Invalid(format!("record does not serialise: {e}"))
                    })?;
                    records.insert((item.collection.as_str(), next), text.as_str())?;
                    sources.insert((source, next), item.collection.as_str())?;
                    next += 1;
                    summary.records_written += 1;
                }
                match &item.revision {
                    Some(r) => {
                        revs.insert(source, r.as_str())?;
                    }
                    None => {
                        revs.remove(source)?;
                    }
                }
            }
            meta.insert("records_next", next)?;
            for (collection, via) in &changed {
                note_update(&txn, collection, via, at_micros)?;
            }
            let mut state = txn.open_table(SYNC_STATE)?;
            for u in sync {
                let key = (u.account.as_str(), u.path.as_str());
                match &u.state {
                    Some(s) => {
                        state.insert(key, s.as_str())?;
                    }
                    None => {
                        state.remove(key)?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(summary)
    }

    /// The sync state of every file of one account, by path.
    pub fn sync_state(
        &self,
        account: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SYNC_STATE)?;
        let mut out = std::collections::BTreeMap::new();
        for row in table.range((account, "")..)? {
            let (k, v) = row?;
            let (a, path) = k.value();
            if a != account {
                break;
            }
            out.insert(path.to_string(), v.value().to_string());
        }
        Ok(out)
    }

    /// Every record of one collection, in import order.
    pub fn records(
        &self,
        collection: &str,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RECORDS)?;
        let mut out = Vec::new();
        for row in table.range((collection, 0u64)..=(collection, u64::MAX))? {
            let (_, v) = row?;
            let map = serde_json::from_str(v.value())
                .map_err(|e| StoreError::Corrupt(format!("record is not JSON: {e}")))?;
            out.push(map);
        }
        Ok(out)
    }

    /// Collections and their record counts, by name.
    pub fn collections(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RECORDS)?;
        let mut out: Vec<(String, u64)> = Vec::new();
        for row in table.iter()? {
            let (k, _) = row?;
            let (name, _) = k.value();
            match out.last_mut() {
                Some((last, n)) if last == name => *n += 1,
                _ => out.push((name.to_string(), 1)),
            }
        }
        Ok(out)
    }

    /// Every collection with its record count, its records by source kind and its last
    /// update, by name (the console's records page).
    pub fn collection_overview(&self) -> Result<Vec<CollectionInfo>, StoreError> {
        let counts = self.collections()?;
        let txn = self.db.begin_read()?;
        let mut by_source: std::collections::BTreeMap<(String, String), u64> =
            std::collections::BTreeMap::new();
        for row in txn.open_table(SOURCE_RECORDS)?.iter()? {
            let (k, v) = row?;
            let (source, _) = k.value();
            *by_source
                .entry((v.value().to_string(), source_kind(source).to_string()))
                .or_default() += 1;
        }
        let updates = txn.open_table(COLLECTION_UPDATES)?;
        let mut out = Vec::with_capacity(counts.len());
        for (name, records) in counts {
            let mut sources: std::collections::BTreeMap<String, u64> = by_source
                .range((name.clone(), String::new())..)
                .take_while(|((c, _), _)| *c == name)
                .map(|((_, kind), n)| (kind.clone(), *n))
                .collect();
            let keyed: u64 = sources.values().sum();
            if records > keyed {
                sources.insert("file".into(), records - keyed);
            }
            let last_update = match updates.get(name.as_str())? {
                Some(v) => Some(
                    serde_json::from_str(v.value())
                        .map_err(|e| StoreError::Corrupt(format!("collection update: {e}")))?,
                ),
                None => None,
            };
            out.push(CollectionInfo {
                name,
                records,
                sources,
                last_update,
            });
        }
        Ok(out)
    }

    // ---- requests waiting for the owner (trust mode "ask")

    pub fn pending_put(&self, entry: &PendingRequest) -> Result<(), StoreError> {
        let text = serde_json::to_string(entry)
            .map_err(|e| StoreError::Invalid(format!("pending request: {e}")))?;
        let txn = self.db.begin_write()?;
        txn.open_table(PENDING)?
            .insert(entry.computation.as_str(), text.as_str())?;
        txn.commit()?;
        Ok(())
    }

    /// Removes a waiting request; returns it if it was there.
    pub fn pending_remove(&self, computation: &str) -> Result<Option<PendingRequest>, StoreError> {
        let txn = self.db.begin_write()?;
        let removed = match txn.open_table(PENDING)?.remove(computation)? {
            Some(v) => Some(
                serde_json::from_str(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("pending request: {e}")))?,
            ),
            None => None,
        };
        txn.commit()?;
        Ok(removed)
    }

    /// Every waiting request, by computation id.
    pub fn pending_list(&self) -> Result<Vec<PendingRequest>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PENDING)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, v) = row?;
            out.push(
                serde_json::from_str(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("pending request: {e}")))?,
            );
        }
        Ok(out)
    }

    // ---- trust

    pub fn trust_add(&self, entry: &TrustEntry) -> Result<(), StoreError> {
        let text = serde_json::to_string(entry)
            .map_err(|e| StoreError::Invalid(format!("trust entry: {e}")))?;
        let txn = self.db.begin_write()?;
        txn.open_table(TRUST)?
            .insert(entry.key.as_str(), text.as_str())?;
        txn.commit()?;
        Ok(())
    }

    pub fn trust_remove(&self, key: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let removed = txn.open_table(TRUST)?.remove(key)?.is_some();
        txn.commit()?;
        Ok(removed)
    }

    pub fn trust_get(&self, key: &str) -> Result<Option<TrustEntry>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TRUST)?;
        match table.get(key)? {
            None => Ok(None),
            Some(v) => serde_json::from_str(v.value())
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("trust entry: {e}"))),
        }
    }

    pub fn trust_list(&self) -> Result<Vec<TrustEntry>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TRUST)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, v) = row?;
            out.push(
                serde_json::from_str(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("trust entry: {e}")))?,
            );
        }
        Ok(out)
    }

    // ---- consent history

    /// Records that this node contributes to a request of `commissioner`, committed before
    /// the contribution leaves. Entries older than `keep_micros` before `entry.at_micros` are
    /// dropped in the same transaction.
    pub fn consent_add(
        &self,
        commissioner: &str,
        entry: &ConsentEntry,
        keep_micros: u64,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(entry)
            .map_err(|e| StoreError::Invalid(format!("consent entry: {e}")))?;
        let horizon = entry.at_micros.saturating_sub(keep_micros);
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let next = meta.get("consents_next")?.map(|v| v.value()).unwrap_or(0);
            let mut table = txn.open_table(CONSENTS)?;
            let mut stale = Vec::new();
            for row in table.iter()? {
                let (k, v) = row?;
                let old: ConsentEntry = serde_json::from_str(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("consent entry: {e}")))?;
                if old.at_micros < horizon {
                    let (c, s) = k.value();
                    stale.push((c.to_string(), s));
                }
            }
            for (c, s) in &stale {
                table.remove((c.as_str(), *s))?;
            }
            table.insert((commissioner, next), text.as_str())?;
            meta.insert("consents_next", next + 1)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The requests of `commissioner` this node contributed to (oldest first), as kept.
    pub fn consents(&self, commissioner: &str) -> Result<Vec<ConsentEntry>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CONSENTS)?;
        let mut out = Vec::new();
        for row in table.range((commissioner, 0u64)..=(commissioner, u64::MAX))? {
            let (_, v) = row?;
            out.push(
                serde_json::from_str(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("consent entry: {e}")))?,
            );
        }
        Ok(out)
    }

    /// Whether this node contributed to `computation` (hex id), for any commissioner.
    pub fn consented_to(&self, computation: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CONSENTS)?;
        for row in table.iter()? {
            let (_, v) = row?;
            let e: ConsentEntry = serde_json::from_str(v.value())
                .map_err(|e| StoreError::Corrupt(format!("consent entry: {e}")))?;
            if e.computation == computation {
                return Ok(true);
            }
        }
        Ok(false)
    }

    // ---- engine log

    /// Appends engine records in order, in one committed transaction. A `Closed` record
    /// compacts the log in the same transaction: every other record of that computation (its
    /// directory snapshot among them) goes (the `Closed` record stays, for replay protection on
    /// restore).
    pub fn append_engine_records(&self, records: &[Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let closed: std::collections::BTreeSet<ComputationId> = records
            .iter()
            .filter(|r| matches!(r, Record::Closed { .. }))
            .map(Record::computation)
            .collect();
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(ENGINE_LOG)?;
            let first = table.last()?.map(|(k, _)| k.value() + 1).unwrap_or(0);
            for (seq, r) in (first..).zip(records) {
                let bytes = postcard::to_allocvec(r)
                    .map_err(|e| StoreError::Invalid(format!("engine record: {e}")))?;
                table.insert(seq, bytes.as_slice())?;
            }
            if !closed.is_empty() {
                let mut dead = Vec::new();
                for row in table.iter()? {
                    let (k, v) = row?;
                    let record: Record = postcard::from_bytes(v.value()).map_err(|e| {
                        StoreError::Corrupt(format!("engine record {}: {e}", k.value()))
                    })?;
                    if closed.contains(&record.computation())
                        && !matches!(record, Record::Closed { .. })
                    {
                        dead.push(k.value());
                    }
                }
                for k in dead {
                    table.remove(k)?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    pub fn engine_records(&self) -> Result<Vec<Record>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ENGINE_LOG)?;
        let mut out = Vec::with_capacity(table.len()? as usize);
        for row in table.iter()? {
            let (k, v) = row?;
            let record = postcard::from_bytes(v.value()).map_err(|e| {
                StoreError::Corrupt(format!("engine record {} does not decode: {e}", k.value()))
            })?;
            out.push(record);
        }
        Ok(out)
    }

    // ---- directory

    /// Stores peers' signed announcements (peer id in base58, bytes) in one transaction: a
    /// directory pull of a hundred peers costs one durable write, not a hundred.
    pub fn put_announcements(&self, announcements: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        if announcements.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(DIRECTORY)?;
            for (peer, bytes) in announcements {
                table.insert(peer.as_str(), bytes.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    pub fn announcements(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DIRECTORY)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, v) = row?;
            out.push(v.value().to_vec());
        }
        Ok(out)
    }

    // ---- audit

    pub fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let text = serde_json::to_string(entry)
            .map_err(|e| StoreError::Invalid(format!("audit entry: {e}")))?;
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(AUDIT)?;
            let next = table.last()?.map(|(k, _)| k.value() + 1).unwrap_or(0);
            table.insert(next, text.as_str())?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn audit_entries(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(AUDIT)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, v) = row?;
            out.push(
                serde_json::from_str(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("audit entry: {e}")))?,
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grove_protocol::ids::Micros;

    fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        match v {
            serde_json::Value::Object(m) => m,
            _ => panic!("test values are objects"),
        }
    }

    /// A trust entry stored before `max_group_keys` and `allow_repeats` existed reads with
    /// its limits intact and the new rules at their defaults.
    #[test]
    fn trust_entries_stored_by_an_older_version_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        let old = r#"{"key":"ab","collections":["c"],"label":"old","added_at_micros":5,"min_contributors":7,"fields":["x"],"max_per_day":3,"min_t":4,"differencing_window_secs":60}"#;
        {
            let txn = store.db.begin_write().unwrap();
            txn.open_table(TRUST).unwrap().insert("ab", old).unwrap();
            txn.commit().unwrap();
        }
        let entry = store.trust_get("ab").unwrap().expect("the old entry");
        assert_eq!(
            entry,
            TrustEntry {
                key: "ab".into(),
                collections: vec!["c".into()],
                label: "old".into(),
                added_at_micros: 5,
                min_contributors: 7,
                fields: vec!["x".into()],
                max_per_day: 3,
                min_t: 4,
                differencing_window_secs: 60,
                max_group_keys: crate::owner::defaults::DEFAULT_MAX_GROUP_KEYS,
                allow_repeats: false,
                mode: TrustMode::Auto,
                epsilon_per_month_milli: None,
            }
        );
        assert_eq!(store.trust_list().unwrap(), vec![entry]);
    }

    #[test]
    fn records_survive_reopening_and_stay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        {
            let store = Store::open(&path).unwrap();
            store
                .import_records(
                    "steps",
                    &[
                        obj(serde_json::json!({"n": 1})),
                        obj(serde_json::json!({"n": 2})),
                    ],
                    1,
                )
                .unwrap();
            store
                .import_records("other", &[obj(serde_json::json!({"x": "a"}))], 2)
                .unwrap();
            store
                .import_records("steps", &[obj(serde_json::json!({"n": 3}))], 3)
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let steps = store.records("steps").unwrap();
        let ns: Vec<i64> = steps.iter().map(|r| r["n"].as_i64().unwrap()).collect();
        assert_eq!(ns, vec![1, 2, 3]);
        assert_eq!(
            store.collections().unwrap(),
            vec![("other".to_string(), 1), ("steps".to_string(), 3)]
        );
        assert!(store.import_records("bad name", &[], 4).is_err());
    }

    fn sourced(source: &str, rev: Option<&str>, ns: &[i64]) -> SourcedRecords {
        SourcedRecords {
            source: source.into(),
            revision: rev.map(str::to_string),
            collection: "c".into(),
            records: ns
                .iter()
                .map(|n| obj(serde_json::json!({ "n": n })))
                .collect(),
        }
    }

    fn ns(store: &Store) -> Vec<i64> {
        let mut v: Vec<i64> = store
            .records("c")
            .unwrap()
            .iter()
            .map(|r| r["n"].as_i64().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn sources_replace_by_revision_and_keep_sync_state_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        store
            .import_records("c", &[obj(serde_json::json!({"n": 0}))], 1)
            .unwrap();
        let s = store
            .upsert_sources(
                &[sourced("a", Some("2-b"), &[1]), sourced("f", None, &[2, 3])],
                &[],
                2,
            )
            .unwrap();
        assert_eq!((s.added, s.records_written), (2, 3));
        // Same or older revision: ignored. Newer: replaces.
        let s = store
            .upsert_sources(
                &[
                    sourced("a", Some("2-b"), &[9]),
                    sourced("a", Some("1-z"), &[9]),
                ],
                &[],
                3,
            )
            .unwrap();
        assert_eq!(s.unchanged, 2);
        assert_eq!(ns(&store), vec![0, 1, 2, 3]);
        let update = SyncUpdate {
            account: "acc".into(),
            path: "x.csv".into(),
            state: Some("etag1".into()),
        };
        store
            .upsert_sources(
                &[sourced("a", Some("10-a"), &[4]), sourced("f", None, &[5])],
                std::slice::from_ref(&update),
                4,
            )
            .unwrap();
        assert_eq!(ns(&store), vec![0, 4, 5]);
        assert_eq!(store.sync_state("acc").unwrap()["x.csv"], "etag1");
        assert!(store.sync_state("ac").unwrap().is_empty());
        // An empty list removes a source's records; a None state forgets the file.
        store
            .upsert_sources(
                &[sourced("f", None, &[])],
                &[SyncUpdate {
                    state: None,
                    ..update
                }],
                5,
            )
            .unwrap();
        assert_eq!(ns(&store), vec![0, 4]);
        assert!(store.sync_state("acc").unwrap().is_empty());
        assert!(revision_is_newer("10-a", "9-z"));
        assert!(!revision_is_newer("9-z", "10-a"));
    }

    #[test]
    fn the_overview_counts_records_by_source_kind_with_the_last_update() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        store
            .import_records("c", &[obj(serde_json::json!({"n": 0}))], 10)
            .unwrap();
        store
            .upsert_sources(
                &[
                    sourced("cozy:io.cozy.x/1", Some("1-a"), &[1, 2]),
                    sourced("ingest:c/7", None, &[3]),
                ],
                &[],
                20,
            )
            .unwrap();
        let overview = store.collection_overview().unwrap();
        assert_eq!(overview.len(), 1);
        let c = &overview[0];
        assert_eq!((c.name.as_str(), c.records), ("c", 4));
        let sources: Vec<(&str, u64)> = c.sources.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        assert_eq!(sources, vec![("cozy", 2), ("file", 1), ("ingest", 1)]);
        let last = c.last_update.clone().unwrap();
        assert_eq!(last.at_micros, 20);
        assert!(last.via == "cozy" || last.via == "ingest", "{last:?}");
    }

    #[test]
    fn pending_requests_survive_reopening_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let entry = PendingRequest {
            computation: "ab".into(),
            commissioner: "cd".into(),
            label: "study".into(),
            query: "SELECT count(*) FROM c".into(),
            collection: "c".into(),
            k_min: 3,
            g: 5,
            t: 3,
            received_at_micros: 1,
            answer_by_micros: 2,
            records_used: 4,
        };
        Store::open(&path).unwrap().pending_put(&entry).unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.pending_list().unwrap(), vec![entry.clone()]);
        assert_eq!(store.pending_remove("ab").unwrap(), Some(entry));
        assert_eq!(store.pending_remove("ab").unwrap(), None);
        assert!(store.pending_list().unwrap().is_empty());
    }

    #[test]
    fn engine_log_keeps_emission_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let a = Record::Closed {
            computation: ComputationId([1; 32]),
            deadline: Micros(5),
        };
        let b = Record::Closed {
            computation: ComputationId([2; 32]),
            deadline: Micros(6),
        };
        store
            .append_engine_records(std::slice::from_ref(&a))
            .unwrap();
        store
            .append_engine_records(&[b.clone(), a.clone()])
            .unwrap();
        assert_eq!(store.engine_records().unwrap(), vec![a.clone(), b, a]);
    }

    #[test]
    fn closing_a_computation_compacts_its_records() {
        use grove_protocol::field::FieldVec;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let (a, b) = (ComputationId([1; 32]), ComputationId([2; 32]));
        let contribution = |c| Record::Contribution {
            computation: c,
            seed: [0; 32],
            vector: FieldVec(vec![]),
        };
        // The directory snapshot the engine recorded with the request goes with the rest.
        let snapshot = Record::Directory {
            computation: a,
            snapshot: grove_protocol::snapshot::DirectorySnapshot::new(vec![(
                grove_protocol::ids::NodeId([3; 32]),
                grove_protocol::plan::PeerKeys {
                    x25519: [4; 32],
                    ed25519: [5; 32],
                },
            )]),
        };
        store
            .append_engine_records(&[snapshot, contribution(a), contribution(b)])
            .unwrap();
        let closed = Record::Closed {
            computation: a,
            deadline: Micros(9),
        };
        store
            .append_engine_records(std::slice::from_ref(&closed))
            .unwrap();
        assert_eq!(
            store.engine_records().unwrap(),
            vec![contribution(b), closed]
        );
    }

    #[test]
    fn consent_history_is_per_commissioner_and_forgets_old_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let entry = |c: &str, at| ConsentEntry {
            computation: c.into(),
            at_micros: at,
            query: "SELECT count(*) FROM c".into(),
        };
        store.consent_add("a", &entry("1", 10), 1000).unwrap();
        store.consent_add("b", &entry("2", 20), 1000).unwrap();
        store.consent_add("a", &entry("3", 30), 1000).unwrap();
        assert_eq!(
            store.consents("a").unwrap(),
            vec![entry("1", 10), entry("3", 30)]
        );
        assert!(store.consented_to("2").unwrap());
        assert!(!store.consented_to("4").unwrap());
        // 1015 - 1000 = 15: the entry at 10 goes.
        store.consent_add("a", &entry("4", 1015), 1000).unwrap();
        assert_eq!(
            store.consents("a").unwrap(),
            vec![entry("3", 30), entry("4", 1015)]
        );
    }

    #[test]
    fn keys_are_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        assert!(store.put_key_if_absent("k", b"one").unwrap());
        assert!(!store.put_key_if_absent("k", b"two").unwrap());
        assert_eq!(store.key("k").unwrap().unwrap(), b"one");
    }
}
