//! One Delta table: created on first use with its schema and partition column, appended to by
//! commits that carry the Kafka offsets (`txn` actions) with the data.

use std::collections::{HashMap, HashSet};

use delta_kernel::table_features::{ColumnMappingMode, TableFeature};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitConflictError, CommitData, CommitProperties, TransactionError};
use deltalake::kernel::{Action, StructType, Transaction};
use deltalake::logstore::LogStoreRef;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{BlindDeltaTable, DeltaTableError};

use crate::fault::{Classify, Permanent};
use crate::pix::columns::Encodings;
use crate::probe::Probe;

/// What a commit attempt ended with. A fence is an expected outcome, not an error: the caller
/// must stop writing for the partitions named and re-read their offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The rows and offsets are durable at this table version, in `files` new Parquet files of
    /// `bytes` bytes in all; encoding and uploading them took `written` (the rest of the attempt
    /// went to the log).
    Committed { version: u64, files: u64, bytes: u64, written: std::time::Duration },
    /// Another writer committed offsets for one of our partitions since we read them.
    Fenced,
}

/// Failures talking to the table's storage or building its files. The message names the table
/// and what was being done, and ends with what to do; the storage's own error is the source.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot {doing} table {table}; {}", advice(source))]
    Delta {
        table: String,
        /// What was being done (`open`, `commit to`, `read the log of`…).
        doing: &'static str,
        #[source]
        source: Box<DeltaTableError>,
    },
    #[error("cannot list the warehouse at {root}; {}", advice(source))]
    Warehouse {
        root: String,
        #[source]
        source: Box<DeltaTableError>,
    },
    #[error("table {table} at {url} exists with a different schema; migrate it or point pipelines[].table elsewhere")]
    SchemaMismatch { table: String, url: super::Location },
}

impl SinkError {
    /// Wraps a delta-rs error of table `table` met while `doing` something to it.
    pub fn delta<'a>(table: &'a str, doing: &'static str) -> impl Fn(DeltaTableError) -> SinkError + Copy + 'a {
        move |source| SinkError::Delta { table: table.to_owned(), doing, source: Box::new(source) }
    }
}

/// The operator's next step for a storage failure: the permanent cause's fix, or where to look.
fn advice(source: &DeltaTableError) -> &'static str {
    if let DeltaTableError::InvalidJsonLog { .. } = source {
        return "a version in the table's _delta_log is not a Delta commit (written by another tool, or damaged; \
                the error names it): restore that file from a backup, then restart pixlake";
    }
    if log_not_json(source) {
        return "a file in the table's _delta_log is not JSON, or holds an action Delta cannot read (written by \
                another tool, or damaged); on a local warehouse, files that are not JSON show with \
                `for f in _delta_log/*.json; do jq -c . \"$f\" >/dev/null 2>&1 || echo \"$f\"; done` (copy \
                _delta_log down from object storage first); restore the file from a backup, then restart pixlake";
    }
    match classify(source) {
        Some(p) => p.hint(),
        None => "check the warehouse storage (space, permissions, reachability); retrying cures a passing failure",
    }
}

/// Which delta-rs failures retrying will not cure (see [`crate::fault`]).
fn classify(e: &DeltaTableError) -> Option<Permanent> {
    use delta_kernel::Error as Kernel;
    match e {
        DeltaTableError::Transaction { source: TransactionError::CommitConflict(conflict) } => match conflict {
            CommitConflictError::MetadataChanged => Some(Permanent::TableChanged),
            CommitConflictError::ProtocolChanged(_)
            | CommitConflictError::UnsupportedWriterVersion(_)
            | CommitConflictError::UnsupportedReaderVersion(_) => Some(Permanent::UnsupportedTable),
            _ => None,
        },
        DeltaTableError::Transaction {
            source: TransactionError::UnsupportedTableFeatures(_) | TransactionError::TableFeaturesRequired(_),
        } => Some(Permanent::UnsupportedTable),
        DeltaTableError::KernelError(k)
            if matches!(unwrapped(k), Kernel::Unsupported(_) | Kernel::InvalidProtocol(_)) =>
        {
            Some(Permanent::UnsupportedTable)
        }
        // A log entry that is not JSON (another writer's, read when judging a version that was
        // taken) reads the same at every attempt.
        DeltaTableError::SchemaMismatch { .. }
        | DeltaTableError::MetadataError(_)
        | DeltaTableError::InvalidJsonLog { .. } => Some(Permanent::TableChanged),
        _ if log_not_json(e) => Some(Permanent::TableChanged),
        DeltaTableError::InvalidTableLocation(_) | DeltaTableError::MissingFeature { .. } => {
            Some(Permanent::BadLocation)
        }
        other => crate::fault::in_causes(other),
    }
}

/// Whether the kernel could not read the log (at open or refresh; delta-rs's own reader says
/// [`DeltaTableError::InvalidJsonLog`] instead): a file that is not JSON, or JSON whose actions
/// do not have the fields and types Delta defines (a `schemaString` that is not a schema…). The
/// file is complete when it can be listed — commits are published whole, by put-if-absent or
/// rename — so reading it again gives the same answer.
fn log_not_json(e: &DeltaTableError) -> bool {
    use delta_kernel::Error as Kernel;
    let DeltaTableError::KernelError(k) = e else { return false };
    matches!(unwrapped(k), Kernel::MalformedJson(_) | Kernel::Arrow(deltalake::arrow::error::ArrowError::JsonError(_)))
}

/// A kernel error without the backtrace wrapper it gets when `RUST_BACKTRACE` is set.
fn unwrapped(mut e: &delta_kernel::Error) -> &delta_kernel::Error {
    while let delta_kernel::Error::Backtraced { source, .. } = e {
        e = source;
    }
    e
}

impl Classify for SinkError {
    fn permanent(&self) -> Option<Permanent> {
        match self {
            SinkError::Delta { source, .. } | SinkError::Warehouse { source, .. } => classify(source),
            SinkError::SchemaMismatch { .. } => Some(Permanent::TableChanged),
        }
    }
}

/// Writes one table by appends. Holds what an append needs and no more: the table's protocol,
/// metadata and properties (a metadata-only snapshot, read at open and at each [`refresh`]) and
/// the version its commits build on — never the list of the table's files, whose upkeep made
/// delta-rs's per-commit cost and memory grow with the table (see [`super::append`]).
///
/// The base version moves only through the writer's own commits (or a [`refresh`]): see the
/// module documentation for why it never jumps to the latest version on its own.
///
/// [`refresh`]: DeltaTableWriter::refresh
pub struct DeltaTableWriter {
    name: String,
    table: BlindDeltaTable,
    /// The version the next commit builds on: the writer's own last commit, or what the last
    /// open or refresh read (or a later one an append judged harmless and stepped over).
    version: u64,
    /// When `version` was last known to be in the log (see [`STALE_BASE`]).
    based_at: std::time::Instant,
    /// [`STALE_BASE`] (a field so that a test can make it short: `Instant`s cannot go back an
    /// hour on a machine up for less).
    stale_after: std::time::Duration,
    partition_by: Vec<String>,
    properties: WriterProperties,
    probe: Probe,
    checkpoints: super::checkpoint::Checkpoints,
}

/// The writer features an append by pixlake honours. Column mapping, check constraints,
/// generated and identity columns are listed because what they oblige a writer to do is ruled
/// out elsewhere: the mapping mode must be `none`, no constraint may be configured, and the
/// schema must equal pixlake's (no generation or identity expressions). Any other feature —
/// row tracking, in-commit timestamps, catalog-managed tables, ones newer than this build — is
/// refused: appending without honouring it would corrupt the table for its other writers.
const WRITABLE_FEATURES: &[&str] = &[
    "appendOnly",
    "invariants",
    "checkConstraints",
    "changeDataFeed",
    "generatedColumns",
    "identityColumns",
    "columnMapping",
    "timestampNtz",
    "deletionVectors",
    "domainMetadata",
    "v2Checkpoint",
    "vacuumProtocolCheck",
];

/// How long a writer's base version may go unconfirmed before a commit first checks it is still
/// in the log. `maintain` deletes log entries older than the table's log retention (30 days)
/// once a checkpoint covers them; a pipeline idle that long (a quiet topic, while the others keep
/// committing to `pix_quarantine`) would otherwise put its next commit into the deleted range —
/// "create if absent" succeeds there — where readers starting from the checkpoint never look.
/// A base found gone is treated as fenced: the engine re-reads its offsets from the latest
/// version. One GET per commit, only for a writer idle this long.
const STALE_BASE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Whether pixlake may append to `table` (see [`WRITABLE_FEATURES`]); the error names what it
/// does not honour.
fn ensure_writable(table: &BlindDeltaTable) -> Result<(), DeltaTableError> {
    let unsupported = |what: String| DeltaTableError::Transaction {
        source: TransactionError::UnsupportedTableFeatures(vec![TableFeature::Unknown(what)]),
    };
    let mode = table.table_properties().column_mapping_mode;
    if mode.is_some_and(|m| m != ColumnMappingMode::None) {
        return Err(unsupported(format!("columnMapping (mode {mode:?})")));
    }
    if let Some(key) = table.metadata().configuration().keys().find(|k| k.starts_with("delta.constraints.")) {
        return Err(unsupported(format!("checkConstraints ({key})")));
    }
    // The kernel keeps the protocol's accessors to itself; its serialised form is the protocol.
    let protocol = serde_json::to_value(table.protocol()).map_err(|e| DeltaTableError::Generic(e.to_string()))?;
    let Some(writer_version) = protocol.get("minWriterVersion").and_then(serde_json::Value::as_i64) else {
        return Err(unsupported("a protocol without minWriterVersion".to_owned()));
    };
    match writer_version {
        0..=6 => Ok(()),
        7 => {
            let features = protocol.get("writerFeatures").and_then(serde_json::Value::as_array);
            let unknown: Vec<TableFeature> = features
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_str)
                .filter(|f| !WRITABLE_FEATURES.contains(f))
                .map(|f| TableFeature::Unknown(f.to_owned()))
                .collect();
            if unknown.is_empty() {
                Ok(())
            } else {
                Err(DeltaTableError::Transaction { source: TransactionError::UnsupportedTableFeatures(unknown) })
            }
        }
        v => Err(unsupported(format!("writer version {v}"))),
    }
}

/// The metadata-only snapshot of the table at `log_store`'s latest version, checked writable.
async fn open_blind(log_store: LogStoreRef) -> Result<BlindDeltaTable, DeltaTableError> {
    let table = BlindDeltaTable::try_new_with_log_store(log_store).await?;
    ensure_writable(&table)?;
    Ok(table)
}

impl DeltaTableWriter {
    /// Opens the table at `url`, creating it with `schema` partitioned by `partition_by` if there
    /// is none yet. Two processes racing to create it both succeed: the loser opens the
    /// winner's table (any other failure to create is reported as it is).
    pub async fn open_or_create(
        name: &str,
        url: &super::Location,
        schema: SchemaRef,
        partition_by: &str,
    ) -> Result<Self, SinkError> {
        let err = SinkError::delta(name, "open");
        let log_store = super::files::unloaded(name, url)?.log_store();
        let exists = log_store.is_delta_table_location().await.map_err(SinkError::delta(name, "look for"))?;
        let table = match if exists { Some(open_blind(log_store.clone()).await) } else { None } {
            Some(Ok(table)) => table,
            Some(Err(e)) if !super::offsets::is_missing(&e) => return Err(err(e)),
            _ => {
                let err = SinkError::delta(name, "create");
                let columns: StructType =
                    schema.as_ref().try_into_kernel().map_err(|e| err(DeltaTableError::from(e)))?;
                let created = super::files::unloaded(name, url)?
                    .create()
                    .with_table_name(name)
                    .with_columns(columns.fields().cloned())
                    .with_partition_columns([partition_by])
                    .with_save_mode(SaveMode::Ignore)
                    // One attempt: a lost race must not be "resolved" by committing the creation
                    // again as version 1 — a second metadata action that every writer holding
                    // version 0 then sees as "metadata changed" and cannot commit past.
                    .with_commit_properties(CommitProperties::default().with_max_retries(0))
                    .await;
                // Created, or lost a creation race (the other process committed version 0
                // first): the table now exists; open it. Otherwise the creation failed for its
                // own reason.
                match (created, open_blind(log_store).await) {
                    (_, Ok(table)) => table,
                    (Err(e), Err(_)) => return Err(err(e)),
                    (Ok(_), Err(e)) => return Err(SinkError::delta(name, "open")(e)),
                }
            }
        };
        let wanted: StructType = schema.as_ref().try_into_kernel().map_err(|e| err(DeltaTableError::from(e)))?;
        if *table.schema() != wanted {
            return Err(SinkError::SchemaMismatch { table: name.to_owned(), url: url.clone() });
        }
        let checkpoints = super::checkpoint::Checkpoints::new(name, &table);
        Ok(DeltaTableWriter {
            name: name.to_owned(),
            version: table.version(),
            based_at: std::time::Instant::now(),
            stale_after: STALE_BASE,
            table,
            partition_by: vec![partition_by.to_owned()],
            properties: super::files::layout(&Encodings::default()).build(),
            probe: Probe::default(),
            checkpoints,
        })
    }

    /// Lays the data files' columns out as `encodings` says (dictionary, delta encoding, no
    /// compression); columns it does not name are plain and Snappy-compressed.
    pub fn with_encodings(mut self, encodings: &Encodings) -> Self {
        self.properties = super::files::layout(encodings).build();
        self
    }

    /// Marks the commit path's points (`encoded`, `files-written`) on `probe` (crash tests).
    pub fn with_probe(mut self, probe: Probe) -> Self {
        self.probe = probe;
        self
    }

    /// The table version this writer builds on.
    pub fn version(&self) -> Option<u64> {
        Some(self.version)
    }

    /// Moves this writer to the table's latest version, to see what other writers committed.
    ///
    /// This is the one place the writer's view jumps past commits it did not make. A caller that
    /// keeps writing partitions it owned before the refresh must re-read their offsets right
    /// after and compare them with what it committed itself: a difference means another writer
    /// committed for them in between (this writer is a zombie for those partitions), which the
    /// conflict check can no longer detect once the refresh has absorbed that commit.
    pub async fn refresh(&mut self) -> Result<(), SinkError> {
        let table = open_blind(self.table.log_store()).await.map_err(SinkError::delta(&self.name, "refresh"))?;
        self.version = table.version();
        self.based_at = std::time::Instant::now();
        // The checkpoint being written, if any, stays tracked: one at a time.
        self.checkpoints.reconfigure(&table);
        self.table = table;
        Ok(())
    }

    /// Waits for the checkpoint being written beside the commits, if any (see
    /// [`super::checkpoint`]).
    pub async fn settle(&mut self) {
        self.checkpoints.settle().await
    }

    /// The latest `txn` version of each of `app_ids` as of the writer's version (`None`: no
    /// txn for it).
    pub async fn txn_versions(&self, app_ids: &[String]) -> Result<Vec<Option<i64>>, SinkError> {
        let log_store = self.table.log_store();
        let (version, app_ids) = (self.version, app_ids.to_vec());
        let read = tokio::task::spawn_blocking(move || -> Result<Vec<Option<i64>>, DeltaTableError> {
            let engine = super::checkpoint::engine(log_store.as_ref());
            let snapshot = delta_kernel::Snapshot::builder_for(super::checkpoint::table_root(log_store.as_ref()))
                .at_version(version)
                .build(engine.as_ref())?;
            app_ids.iter().map(|a| Ok(snapshot.get_app_id_version(a, engine.as_ref())?)).collect()
        });
        read.await
            .map_err(|e| DeltaTableError::Generic(e.to_string()))
            .and_then(|r| r)
            .map_err(SinkError::delta(&self.name, "read the offsets in"))
    }

    /// Writes `batches` as Parquet files and commits them with the `(app id, next offset)` txn
    /// actions in one Delta commit, at the first version after the writer's that is free and
    /// not taken by a commit that fences it ([`super::append`]). Files written by a failed or
    /// fenced attempt are never referenced by the log (vacuum removes them).
    pub async fn commit(
        &mut self,
        batches: Vec<RecordBatch>,
        offsets: Vec<(String, i64)>,
        metadata: HashMap<String, serde_json::Value>,
    ) -> Result<CommitOutcome, SinkError> {
        let err = SinkError::delta(&self.name, "commit to");
        let started = std::time::Instant::now();
        self.probe.hit("encoded");
        let adds = super::datafiles::write(&self.table, &self.properties, batches).await.map_err(err)?;
        self.probe.hit("files-written");
        let written = started.elapsed();
        let (files, bytes) = (adds.len() as u64, adds.iter().map(|a| a.size.max(0) as u64).sum());
        let ours: HashSet<String> = offsets.iter().map(|(id, _)| id.clone()).collect();
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: Some(self.partition_by.clone()),
            predicate: None,
        };
        let data = CommitData::new(
            adds.into_iter().map(Action::Add).collect(),
            operation,
            metadata,
            offsets.into_iter().map(|(id, v)| Transaction::new(id, v)).collect(),
        );
        let bytes_of_log = data.get_bytes().map_err(|e| err(e.into()))?;
        let log_store = self.table.log_store();
        if self.based_at.elapsed() > self.stale_after
            && log_store.read_commit_entry(self.version).await.map_err(err)?.is_none()
        {
            tracing::warn!(table = %self.name, version = self.version,
                "the version this writer builds on was removed from the log (expired and cleaned up while this \
                 pipeline was idle); its offsets are read again from the table's latest version");
            return Ok(CommitOutcome::Fenced);
        }
        let entry = super::append::entry(log_store.as_ref(), bytes_of_log).await.map_err(err)?;
        let appended = super::append::append(log_store.as_ref(), &mut self.version, entry, &ours).await.map_err(err)?;
        match appended {
            super::append::Appended::At(version) => {
                // Advance to our own commit only (never to "latest"): the fence depends on it.
                self.version = version;
                self.based_at = std::time::Instant::now();
                // Checkpoints bound the log replay of every reader and of the offset lookups
                // at assignment; written beside the next commits, not in this one's latency.
                // Expired log entries are left to `maintain` (after its checkpoint): deleting
                // them lists all of `_delta_log`.
                self.checkpoints.after(version, &log_store);
                Ok(CommitOutcome::Committed { version, files, bytes, written })
            }
            super::append::Appended::Fenced => Ok(CommitOutcome::Fenced),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With `RUST_BACKTRACE` set the kernel wraps its errors in `Backtraced`: still classified.
    #[test]
    fn kernel_errors_are_classified_with_or_without_a_backtrace() {
        use delta_kernel::Error as Kernel;
        let wrapped = |e: Kernel| Kernel::Backtraced {
            source: Box::new(e),
            backtrace: Box::new(std::backtrace::Backtrace::disabled()),
        };
        let not_json = || Kernel::MalformedJson(serde_json::from_str::<()>("{").unwrap_err());
        let unsupported = || Kernel::Unsupported("rowTracking".into());
        for e in [not_json(), wrapped(not_json()), wrapped(wrapped(not_json()))] {
            let e = DeltaTableError::KernelError(e);
            assert_eq!(super::classify(&e), Some(Permanent::TableChanged), "{e:?}");
            assert!(super::advice(&e).contains("restore the file"), "{e:?}");
        }
        for e in [unsupported(), wrapped(unsupported())] {
            let e = DeltaTableError::KernelError(e);
            assert_eq!(super::classify(&e), Some(Permanent::UnsupportedTable), "{e:?}");
        }
        let passing = DeltaTableError::KernelError(wrapped(Kernel::generic("connection reset")));
        assert_eq!(super::classify(&passing), None);
    }

    /// A writer idle past [`STALE_BASE`] checks its base version is still in the log before
    /// committing on it; gone (cleaned up by `maintain` meanwhile), the commit is a fence: the
    /// engine re-reads its offsets from the latest version instead of writing into a range
    /// readers skip.
    #[tokio::test]
    async fn an_idle_writer_whose_base_was_cleaned_up_is_fenced() {
        let dir = tempfile::tempdir().unwrap();
        let url = deltalake::ensure_table_uri(dir.path().join("t").to_str().unwrap()).unwrap();
        let at = super::super::Location::from_url(url);
        let schema = crate::pix::quarantine_schema();
        let mut w = DeltaTableWriter::open_or_create("t", &at, schema, "ingest_date").await.unwrap();
        let txn = |v| vec![("pixlake:p:t:0".to_owned(), v)];
        let out = w.commit(vec![], txn(1), HashMap::new()).await.unwrap();
        assert!(matches!(out, CommitOutcome::Committed { version: 1, .. }), "{out:?}");
        let base = dir.path().join("t/_delta_log/00000000000000000001.json");
        std::fs::remove_file(&base).unwrap();
        // Recently confirmed: no check, the next version is free and the commit lands.
        let out = w.commit(vec![], txn(2), HashMap::new()).await.unwrap();
        assert!(matches!(out, CommitOutcome::Committed { version: 2, .. }), "{out:?}");
        std::fs::remove_file(dir.path().join("t/_delta_log/00000000000000000002.json")).unwrap();
        // Idle for longer than STALE_BASE: the base is looked for, found gone, and the commit is
        // a fence.
        w.stale_after = std::time::Duration::ZERO;
        assert_eq!(w.commit(vec![], txn(3), HashMap::new()).await.unwrap(), CommitOutcome::Fenced);
        assert!(!dir.path().join("t/_delta_log/00000000000000000003.json").exists(), "nothing committed");
    }
}
