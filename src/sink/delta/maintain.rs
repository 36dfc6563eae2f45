//! Table upkeep that runs beside `ingest`: compaction of small files, checkpoints, vacuum.
//!
//! Compaction rewrites small files of one partition value into fewer, larger ones in a commit
//! with `dataChange = false` and no `txn` action: readers see the same rows, the offsets do not
//! move, and concurrent appends by `ingest` do not conflict with it (it only removes files it
//! read; if another commit removed one of them meanwhile, the compaction fails and is retried
//! later). Vacuum deletes files no version within the retention period references — including
//! files written by commits that never landed — and refuses a retention shorter than the
//! table's (`delta.deletedFileRetentionDuration`, 7 days by default) unless forced, because a
//! shorter one can delete the data file of a commit `ingest` is about to make.

use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::arrow::datatypes::Schema;
use deltalake::kernel::Action;
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};

use super::SinkError;
use super::rewind::with_partition_columns;
use crate::telemetry::progress::Progress;

/// What maintenance did to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Maintained {
    pub table: String,
    /// `None`: no table.
    pub version: Option<u64>,
    pub files_before: u64,
    pub files_after: u64,
    pub compacted_files: u64,
    pub checkpoint_version: Option<u64>,
    /// Log files older than the table's log retention (30 days by default) and covered by a
    /// checkpoint, deleted after the checkpoint (ingest's commits never list the log for them).
    pub log_files_removed: u64,
    pub vacuumed_files: u64,
}

/// What to do.
#[derive(Debug, Clone, Copy)]
pub struct Upkeep {
    /// Compact files smaller than half of this (bytes) into files of about this size.
    pub compact_target: Option<u64>,
    pub checkpoint: bool,
    /// Vacuum with this retention (hours); `force` allows one below the table's.
    pub vacuum_retention_hours: Option<u64>,
    pub force: bool,
}

/// Runs `upkeep` on the table at `url`.
pub async fn maintain(
    name: &str,
    url: &super::Location,
    upkeep: Upkeep,
    progress: &dyn Progress,
) -> Result<Maintained, SinkError> {
    let err = SinkError::delta(name, "maintain");
    let mut out = Maintained { table: name.to_owned(), ..Maintained::default() };
    let Some(mut table) = super::files::open_existing(name, url).await? else { return Ok(out) };
    out.files_before = table.snapshot().map_err(err)?.log_data().num_files() as u64;
    if let Some(target) = upkeep.compact_target {
        out.compacted_files = compact(name, &mut table, target, progress).await?;
    }
    if upkeep.checkpoint {
        progress.step(&format!("checkpointing {name}"), None, "checkpoints");
        table.update_incremental(None).await.map_err(err)?;
        deltalake::checkpoints::create_checkpoint(&table, None).await.map_err(err)?;
        out.checkpoint_version = table.version();
        // As delta-rs would after a commit, unless the table says not to.
        if deltalake::table::config::TablePropertiesExt::enable_expired_log_cleanup(
            table.snapshot().map_err(err)?.table_config(),
        ) {
            out.log_files_removed = deltalake::checkpoints::cleanup_metadata(&table, None).await.map_err(err)? as u64;
        }
    }
    if let Some(hours) = upkeep.vacuum_retention_hours {
        progress.step(&format!("vacuuming {name}"), None, "files");
        table.update_incremental(None).await.map_err(err)?;
        let (t, metrics) = table
            .vacuum()
            .with_retention_period(chrono::Duration::hours(hours as i64))
            .with_enforce_retention_duration(!upkeep.force)
            .with_mode(VacuumMode::Full)
            .await
            .map_err(err)?;
        table = t;
        out.vacuumed_files = metrics.files_deleted.len() as u64;
    }
    table.update_incremental(None).await.map_err(err)?;
    out.version = table.version();
    out.files_after = table.snapshot().map_err(err)?.log_data().num_files() as u64;
    Ok(out)
}

/// Rewrites each partition value's small files into files of about `target` bytes; returns how
/// many files were replaced.
async fn compact(name: &str, table: &mut DeltaTable, target: u64, progress: &dyn Progress) -> Result<u64, SinkError> {
    let err = SinkError::delta(name, "compact");
    let snapshot = table.snapshot().map_err(err)?.clone();
    let schema: Schema = snapshot.schema().as_ref().try_into_arrow().map_err(|e| err(DeltaTableError::from(e)))?;
    let schema = Arc::new(schema);
    let mut groups: BTreeMap<Vec<(String, Option<String>)>, Vec<_>> = BTreeMap::new();
    for file in snapshot.log_data().iter() {
        if (file.size() as u64) < target / 2 {
            let mut key: Vec<_> = file.partition_values_map().into_iter().collect();
            key.sort();
            groups.entry(key).or_default().push(file);
        }
    }
    let store = table.object_store();
    let mut removes = Vec::new();
    let mut writer = RecordBatchWriter::for_table(table)
        .map_err(err)?
        .with_writer_properties(super::files::writer_properties(&schema))
        .with_target_file_size(target);
    groups.retain(|_, f| f.len() >= 2);
    progress.step(&format!("compacting {name}"), Some(groups.values().map(Vec::len).sum::<usize>() as u64), "files");
    for files in groups.into_values() {
        for file in files {
            progress.advance(1);
            let (path, size) = (file.object_store_path(), file.size().max(0) as u64);
            let mut rows =
                super::files::FileRows::open(name, &store, &path, size, None, super::scan::SMALL_ROWS).await?;
            let values = file.partition_values_map();
            while let Some(batch) = rows.next().await? {
                let full =
                    with_partition_columns(&batch, &schema, &values).map_err(|e| err(DeltaTableError::from(e)))?;
                writer.write(full).await.map_err(err)?;
            }
            removes.push(Action::Remove(file.remove_action(false)));
        }
    }
    if removes.is_empty() {
        return Ok(0);
    }
    let replaced = removes.len() as u64;
    let adds = writer.flush().await.map_err(err)?;
    let actions: Vec<Action> = removes
        .into_iter()
        .chain(adds.into_iter().map(|mut a| {
            a.data_change = false;
            Action::Add(a)
        }))
        .collect();
    let operation = DeltaOperation::Optimize { predicate: None, target_size: target as i64 };
    let props = CommitProperties::default()
        .with_metadata([("pixlake.operation".to_owned(), serde_json::Value::from("compaction"))]);
    let done = CommitBuilder::from(props)
        .with_actions(actions)
        .build(Some(&snapshot), table.log_store(), operation)
        .await
        .map_err(err)?;
    table.update_incremental(Some(done.version)).await.map_err(err)?;
    Ok(replaced)
}
