//! Reading back what a table holds, streamed: the (topic, partition, offset) of every row in the
//! version loaded ([`scan`]; its offsets come from `read_offsets` over the same table value, so
//! the two agree), and any columns of every row, a batch at a time ([`TableBatches`]). Reads only
//! the columns asked for, through the table's own object store (local disk or S3 alike).

use std::collections::HashMap;

use deltalake::arrow::array::{Array, AsArray, Int32Array, Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{Int32Type, Int64Type};
use deltalake::logstore::ObjectStoreRef;
use deltalake::{DeltaTable, DeltaTableError, Path};

use super::SinkError;
use super::files::FileRows;
use crate::telemetry::progress::Progress;

/// Rows per batch when only small columns are read.
pub const SMALL_ROWS: usize = 8192;

/// The source coordinates found in one table version.
#[derive(Debug, Default, Clone)]
pub struct TableRows {
    /// The version read (`None`: no table yet).
    pub version: Option<u64>,
    /// Offsets per (topic, partition), in file order (unsorted, duplicates kept).
    pub offsets: HashMap<(String, i32), Vec<i64>>,
}

impl TableRows {
    /// The offsets of `topic`/`partition`'s rows (empty when it has none).
    pub fn of(&self, topic: &str, partition: i32) -> &[i64] {
        self.offsets.get(&(topic.to_owned(), partition)).map_or(&[], Vec::as_slice)
    }
}

/// The `kafka_topic`, `kafka_partition` and `kafka_offset` columns of a batch.
pub type Coordinates<'b> = (&'b StringArray, &'b Int32Array, &'b Int64Array);

/// The Kafka coordinates columns of a batch read with them.
pub fn coordinates<'b>(name: &str, b: &'b RecordBatch) -> Result<Coordinates<'b>, SinkError> {
    let column = |c: &str| b.column_by_name(c);
    let typed = (
        column("kafka_topic").and_then(|t| t.as_string_opt::<i32>()),
        column("kafka_partition").and_then(|p| p.as_primitive_opt::<Int32Type>()),
        column("kafka_offset").and_then(|o| o.as_primitive_opt::<Int64Type>()),
    );
    match typed {
        (Some(t), Some(p), Some(o)) => Ok((t, p, o)),
        _ => Err(SinkError::delta(name, "scan")(DeltaTableError::Generic(
            "a data file lacks kafka_topic (string), kafka_partition (int) or kafka_offset (long): was it \
             written by another tool?"
                .into(),
        ))),
    }
}

/// Every row's Kafka coordinates in `table` (named `name`) as loaded; `None`: no table yet.
pub async fn scan(name: &str, table: Option<&DeltaTable>, progress: &dyn Progress) -> Result<TableRows, SinkError> {
    let Some(table) = table else { return Ok(TableRows::default()) };
    progress.step(&format!("reading {name}"), None, "rows");
    let mut offsets: HashMap<(String, i32), Vec<i64>> = HashMap::new();
    let mut rows = TableBatches::new(name, table, &["kafka_topic", "kafka_partition", "kafka_offset"], SMALL_ROWS)?;
    while let Some(b) = rows.next().await? {
        let (t, p, o) = coordinates(name, &b)?;
        progress.advance(b.num_rows() as u64);
        for i in 0..b.num_rows() {
            if t.is_valid(i) {
                offsets.entry((t.value(i).to_owned(), p.value(i))).or_default().push(o.value(i));
            }
        }
    }
    Ok(TableRows { version: table.version(), offsets })
}

/// The rows of a table as loaded, file after file, `columns` only, at most `batch_rows` rows at
/// a time: whatever the table's size, one batch is in memory. Columns are found by name in each
/// batch (`column_by_name`); partition columns are not in the data files.
pub struct TableBatches {
    name: String,
    store: ObjectStoreRef,
    /// Files still to read, last first.
    files: Vec<(Path, u64)>,
    columns: Vec<String>,
    batch_rows: usize,
    current: Option<FileRows>,
}

impl TableBatches {
    /// Reads `columns` of `table` (named `name`) as loaded.
    pub fn new(name: &str, table: &DeltaTable, columns: &[&str], batch_rows: usize) -> Result<Self, SinkError> {
        let snapshot = table.snapshot().map_err(SinkError::delta(name, "read"))?;
        let mut files: Vec<(Path, u64)> =
            snapshot.log_data().iter().map(|f| (f.object_store_path(), f.size().max(0) as u64)).collect();
        files.reverse();
        Ok(TableBatches {
            name: name.to_owned(),
            store: table.object_store(),
            files,
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            batch_rows,
            current: None,
        })
    }

    /// The number of data files (for progress).
    pub fn files_left(&self) -> usize {
        self.files.len() + usize::from(self.current.is_some())
    }

    /// The next batch; `None` after the last file.
    pub async fn next(&mut self) -> Result<Option<RecordBatch>, SinkError> {
        loop {
            if let Some(file) = &mut self.current {
                if let Some(b) = file.next().await? {
                    return Ok(Some(b));
                }
                self.current = None;
            }
            let Some((path, size)) = self.files.pop() else { return Ok(None) };
            let columns: Vec<&str> = self.columns.iter().map(String::as_str).collect();
            self.current =
                Some(FileRows::open(&self.name, &self.store, &path, size, Some(&columns), self.batch_rows).await?);
        }
    }
}
