//! Moving partitions' committed offsets, in one Delta commit per table: the rows of each
//! partition at or past its new offset are removed (their files rewritten without them) and the
//! partition's `txn` version is set to the new offset, atomically. Re-ingestion from there then
//! recreates the removed rows exactly once. Moving forward removes nothing and only records the
//! new offset (the skipped records are a chosen gap, written in the commit's metadata).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use deltalake::DeltaTableError;
use deltalake::arrow::array::{Array, ArrayRef, BooleanArray, Date32Array, RecordBatch};
use deltalake::arrow::compute::filter_record_batch;
use deltalake::arrow::datatypes::{DataType, Schema};
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use deltalake::kernel::transaction::{CommitBuilder, CommitConflictError, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Transaction};
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};

use super::SinkError;
use super::files::FileRows;
use super::scan::SMALL_ROWS;
use crate::telemetry::progress::Progress;

/// The columns that say which record a row is.
const COORDINATES: [&str; 3] = ["kafka_topic", "kafka_partition", "kafka_offset"];

/// One partition's new offset in a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub topic: String,
    pub partition: i32,
    /// The partition's txn app id in this table.
    pub app_id: String,
    /// The new next offset to read: rows at or past it are removed.
    pub offset: i64,
}

/// What a rewind did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewound {
    /// The table version of the commit (`None`: no table, nothing to do).
    pub version: Option<u64>,
    pub removed_rows: u64,
    pub rewritten_files: u64,
}

/// Why a rewind failed.
#[derive(Debug, thiserror::Error)]
pub enum RewindError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(
        "table {0}: another writer committed offsets of these partitions meanwhile (is pixlake ingest running?); nothing was changed"
    )]
    Concurrent(String),
}

/// Removes the rows of every cut's partition at or past its offset and sets its txn version,
/// in one commit to the table at `url`.
pub async fn rewind(
    name: &str,
    url: &super::Location,
    cuts: &[Cut],
    metadata: HashMap<String, serde_json::Value>,
    progress: &dyn Progress,
) -> Result<Rewound, RewindError> {
    let predicate = cuts
        .iter()
        .map(|c| {
            format!(
                "(kafka_topic = '{}' AND kafka_partition = {} AND kafka_offset >= {})",
                c.topic, c.partition, c.offset
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ");
    let txns = cuts.iter().map(|c| Transaction::new(&c.app_id, c.offset)).collect();
    let cut = |t: &str, p: i32, o: i64| cuts.iter().any(|c| c.partition == p && o >= c.offset && c.topic == t);
    remove_matching(name, url, &cut, txns, metadata, predicate, progress).await
}

/// Removes the rows of `topic` with these (partition, offset) in one commit (no offset moves).
pub async fn delete_rows(
    name: &str,
    url: &super::Location,
    topic: &str,
    keys: &HashSet<(i32, i64)>,
    metadata: HashMap<String, serde_json::Value>,
    progress: &dyn Progress,
) -> Result<Rewound, RewindError> {
    let hit = |t: &str, p: i32, o: i64| t == topic && keys.contains(&(p, o));
    let predicate = format!("{} listed (kafka_partition, kafka_offset) of {topic}", keys.len());
    remove_matching(name, url, &hit, Vec::new(), metadata, predicate, progress).await
}

/// The rows `remove(topic, partition, offset)` selects leave the table in one commit that also
/// carries `txns`; files holding them are rewritten without them.
async fn remove_matching(
    name: &str,
    url: &super::Location,
    remove: &dyn Fn(&str, i32, i64) -> bool,
    txns: Vec<Transaction>,
    metadata: HashMap<String, serde_json::Value>,
    predicate: String,
    progress: &dyn Progress,
) -> Result<Rewound, RewindError> {
    let err = SinkError::delta(name, "rewrite");
    let Some(table) = super::files::open_existing(name, url).await? else { return Ok(Rewound::default()) };
    let snapshot = table.snapshot().map_err(err)?.clone();
    let schema: Schema = snapshot.schema().as_ref().try_into_arrow().map_err(|e| err(DeltaTableError::from(e)))?;
    let schema = Arc::new(schema);
    let store = table.object_store();
    let mut removes = Vec::new();
    let mut writer = RecordBatchWriter::for_table(&table)
        .map_err(err)?
        .with_writer_properties(super::files::writer_properties(&schema))
        .with_target_file_size(super::files::REWRITE_FILE_BYTES);
    let mut out = Rewound::default();
    let files: Vec<_> = snapshot.log_data().iter().collect();
    progress.step(&format!("rewriting {name}"), Some(files.len() as u64), "files");
    for file in files {
        progress.advance(1);
        let (path, size) = (file.object_store_path(), file.size().max(0) as u64);
        // First pass, the coordinates only: which rows go, and whether any stay.
        let mut coords = FileRows::open(name, &store, &path, size, Some(&COORDINATES), SMALL_ROWS).await?;
        let (mut removed, mut rows) = (0u64, 0u64);
        while let Some(batch) = coords.next().await? {
            removed += keep_mask(name, &batch, remove)?.false_count() as u64;
            rows += batch.num_rows() as u64;
        }
        if removed == 0 {
            continue;
        }
        out.removed_rows += removed;
        out.rewritten_files += 1;
        removes.push(Action::Remove(file.remove_action(true)));
        if removed == rows {
            continue;
        }
        // Second pass, every column, a batch at a time: the rows that stay go to new files.
        let partition_values = file.partition_values_map();
        let mut all = FileRows::open(name, &store, &path, size, None, SMALL_ROWS).await?;
        while let Some(batch) = all.next().await? {
            let keep = keep_mask(name, &batch, remove)?;
            let filtered = filter_record_batch(&batch, &keep).map_err(|e| err(DeltaTableError::from(e)))?;
            if filtered.num_rows() > 0 {
                let full = with_partition_columns(&filtered, &schema, &partition_values)
                    .map_err(|e| err(DeltaTableError::from(e)))?;
                writer.write(full).await.map_err(err)?;
            }
        }
    }
    let adds = writer.flush().await.map_err(err)?;
    let props = CommitProperties::default().with_application_transactions(txns).with_metadata(metadata);
    let actions: Vec<Action> = removes.into_iter().chain(adds.into_iter().map(Action::Add)).collect();
    let result = CommitBuilder::from(props)
        .with_actions(actions)
        .build(Some(&snapshot), table.log_store(), DeltaOperation::Delete { predicate: Some(predicate) })
        .await;
    match result {
        Ok(done) => {
            out.version = Some(done.version);
            Ok(out)
        }
        Err(DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(CommitConflictError::ConcurrentTransaction),
        }) => Err(RewindError::Concurrent(name.to_owned())),
        Err(e) => Err(err(e).into()),
    }
}

/// `false` for the rows `remove` selects (a batch without the coordinates is an error: its rows
/// cannot be told apart).
fn keep_mask(
    name: &str,
    batch: &RecordBatch,
    remove: &dyn Fn(&str, i32, i64) -> bool,
) -> Result<BooleanArray, SinkError> {
    let (t, p, o) = super::scan::coordinates(name, batch)?;
    Ok((0..batch.num_rows()).map(|i| Some(!(t.is_valid(i) && remove(t.value(i), p.value(i), o.value(i))))).collect())
}

/// Data files do not store partition columns; put them back (from the file's partition values)
/// so the rows can be written again with the table's full schema.
pub(super) fn with_partition_columns(
    batch: &RecordBatch,
    schema: &Arc<Schema>,
    values: &HashMap<String, Option<String>>,
) -> Result<RecordBatch, deltalake::arrow::error::ArrowError> {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        if let Some(c) = batch.column_by_name(field.name()) {
            columns.push(c.clone());
        } else {
            let value = values.get(field.name()).cloned().flatten();
            let array: ArrayRef = match field.data_type() {
                DataType::Date32 => {
                    let day = value
                        .and_then(|v| chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d").ok())
                        .map(|d| (d - epoch).num_days() as i32);
                    Arc::new(Date32Array::from(vec![day; batch.num_rows()]))
                }
                other => {
                    return Err(deltalake::arrow::error::ArrowError::SchemaError(format!(
                        "partition column {} of type {other} cannot be restored",
                        field.name()
                    )));
                }
            };
            columns.push(array);
        }
    }
    RecordBatch::try_new(schema.clone(), columns)
}
