//! One Delta table: created on first use with its schema and partition column, appended to by
//! commits that carry the Kafka offsets (`txn` actions) with the data.

use std::collections::HashMap;

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitConflictError, CommitProperties, TransactionError};
use deltalake::kernel::{Action, StructType, Transaction};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::{EnabledStatistics, WriterProperties};
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};

use crate::fault::{Classify, Permanent};
use crate::probe::Probe;

/// What a commit attempt ended with. A fence is an expected outcome, not an error: the caller
/// must stop writing for the partitions named and re-read their offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The rows and offsets are durable at this table version, in `files` new Parquet files of
    /// `bytes` bytes in all.
    Committed { version: u64, files: u64, bytes: u64 },
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
        DeltaTableError::KernelError(Kernel::Unsupported(_) | Kernel::InvalidProtocol(_)) => {
            Some(Permanent::UnsupportedTable)
        }
        DeltaTableError::SchemaMismatch { .. } | DeltaTableError::MetadataError(_) => Some(Permanent::TableChanged),
        DeltaTableError::InvalidTableLocation(_) | DeltaTableError::MissingFeature { .. } => {
            Some(Permanent::BadLocation)
        }
        other => crate::fault::in_causes(other),
    }
}

impl Classify for SinkError {
    fn permanent(&self) -> Option<Permanent> {
        match self {
            SinkError::Delta { source, .. } | SinkError::Warehouse { source, .. } => classify(source),
            SinkError::SchemaMismatch { .. } => Some(Permanent::TableChanged),
        }
    }
}

/// Writes one table. Holds the table state as of its own last commit (or open): see the module
/// documentation for why it never refreshes to the latest version on its own.
pub struct DeltaTableWriter {
    name: String,
    table: DeltaTable,
    partition_by: Vec<String>,
    properties: WriterProperties,
    probe: Probe,
}

/// How the data files are encoded: Snappy pages, statistics per column chunk (what Delta's
/// file statistics and readers' row-group pruning use; page-level ones cost CPU on every value
/// for no reader of these tables), and dictionary encoding only for `dictionary` columns.
///
/// Dictionary encoding pays off on columns with few distinct values (statuses, ISPBs, types)
/// and is wasted on unique ones (ids, offsets, timestamps, names): there the writer hashes
/// every value into a dictionary that overflows and is then dropped for plain encoding — in a
/// profile of `ingest` that hashing was a tenth of the CPU time.
fn writer_properties<'a>(dictionary: impl IntoIterator<Item = &'a str>) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_created_by(concat!("pixlake ", env!("CARGO_PKG_VERSION")).to_owned())
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_dictionary_enabled(false);
    for column in dictionary {
        b = b.set_column_dictionary_enabled(ColumnPath::from(column), true);
    }
    b.build()
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
        let table = match super::files::open_existing(name, url).await? {
            Some(table) => table,
            None => {
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
                match created {
                    Ok(t) => t,
                    // Lost a creation race (the other process committed version 0 first): the
                    // table now exists; open it. Otherwise the creation failed for its own reason.
                    Err(e) => match super::files::open_existing(name, url).await {
                        Ok(Some(t)) => t,
                        _ => return Err(err(e)),
                    },
                }
            }
        };
        let err = SinkError::delta(name, "open");
        let existing: StructType = table.snapshot().map_err(err)?.schema().as_ref().clone();
        let wanted: StructType = schema.as_ref().try_into_kernel().map_err(|e| err(DeltaTableError::from(e)))?;
        if existing != wanted {
            return Err(SinkError::SchemaMismatch { table: name.to_owned(), url: url.clone() });
        }
        Ok(DeltaTableWriter {
            name: name.to_owned(),
            table,
            partition_by: vec![partition_by.to_owned()],
            properties: writer_properties([]),
            probe: Probe::default(),
        })
    }

    /// Dictionary-encodes these columns (paths as in the Parquet schema, e.g.
    /// `quality_flags.list.element`) and no other.
    pub fn with_dictionary<'a>(mut self, columns: impl IntoIterator<Item = &'a str>) -> Self {
        self.properties = writer_properties(columns);
        self
    }

    /// Marks the commit path's points (`encoded`, `files-written`) on `probe` (crash tests).
    pub fn with_probe(mut self, probe: Probe) -> Self {
        self.probe = probe;
        self
    }

    /// The table version this writer last saw.
    pub fn version(&self) -> Option<u64> {
        self.table.version()
    }

    /// Moves this writer to the table's latest version, to see what other writers committed.
    ///
    /// This is the one place the writer's view jumps past commits it did not make. A caller that
    /// keeps writing partitions it owned before the refresh must re-read their offsets right
    /// after and compare them with what it committed itself: a difference means another writer
    /// committed for them in between (this writer is a zombie for those partitions), which the
    /// conflict check can no longer detect once the refresh has absorbed that commit.
    pub async fn refresh(&mut self) -> Result<(), SinkError> {
        self.table.update_incremental(None).await.map_err(SinkError::delta(&self.name, "refresh"))
    }

    /// The table as this writer last saw it (for `read_offsets`: offsets as of that version).
    pub fn loaded(&self) -> super::Loaded<'_> {
        super::Loaded { name: &self.name, table: Some(&self.table) }
    }

    /// Writes `batches` as Parquet files and commits them with the `(app id, next offset)` txn
    /// actions in one Delta commit. Files written by a failed or fenced attempt are never
    /// referenced by the log (vacuum removes them).
    pub async fn commit(
        &mut self,
        batches: Vec<RecordBatch>,
        offsets: Vec<(String, i64)>,
        metadata: HashMap<String, serde_json::Value>,
    ) -> Result<CommitOutcome, SinkError> {
        let err = SinkError::delta(&self.name, "commit to");
        let mut writer =
            RecordBatchWriter::for_table(&self.table).map_err(err)?.with_writer_properties(self.properties.clone());
        for batch in batches {
            writer.write(batch).await.map_err(err)?;
        }
        self.probe.hit("encoded");
        let adds = writer.flush().await.map_err(err)?;
        self.probe.hit("files-written");
        // The commit's own cost must not grow with the table's history: delta-rs's expired-log
        // cleanup lists all of `_delta_log` after every commit (a LIST per thousand versions on
        // S3), so it is left to `maintain`, after its checkpoint. Checkpoints stay in the commit
        // path, every `delta.checkpointInterval` (100) versions, which bounds the log replay of
        // every reader and of the offset lookups at assignment.
        let props = CommitProperties::default()
            .with_application_transactions(offsets.into_iter().map(|(id, v)| Transaction::new(id, v)).collect())
            .with_metadata(metadata)
            .with_cleanup_expired_logs(Some(false));
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: Some(self.partition_by.clone()),
            predicate: None,
        };
        let (files, bytes) = (adds.len() as u64, adds.iter().map(|a| a.size.max(0) as u64).sum());
        let snapshot = self.table.snapshot().map_err(err)?;
        let result = CommitBuilder::from(props)
            .with_actions(adds.into_iter().map(Action::Add).collect())
            .build(Some(snapshot), self.table.log_store(), operation)
            .await;
        match result {
            Ok(done) => {
                // Advance to our own commit only (never to "latest"): the fence depends on it.
                self.table.update_incremental(Some(done.version)).await.map_err(err)?;
                Ok(CommitOutcome::Committed { version: done.version, files, bytes })
            }
            Err(DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(CommitConflictError::ConcurrentTransaction),
            }) => Ok(CommitOutcome::Fenced),
            Err(e) => Err(err(e)),
        }
    }
}
